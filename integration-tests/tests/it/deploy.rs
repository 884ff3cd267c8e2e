//! Deployment shapes around a live upgrade: a `current -> releases/N` symlink flipped before
//! the signal, a relative start path with its own working directory, another upgrade signal
//! (SIGHUP), and the `--admin` endpoint (`POST /admin/upgrade`). Every test holds the global
//! heavy lock and runs a light load that must see no failed request.

use integration_tests::hello::{
    exited_cleanly, upgrade, upgrade_with_signal, wait_spawned, Hello, Upgrade, UpgradeOpts,
};
use integration_tests::http::{post_once, wait_for_pid};
use integration_tests::reaper::{Exit, Gone};
use integration_tests::{
    copy_hello, heavy_lock, hello_bin, replace_file, shell_quote, sleep_ms, Client, Load,
    LoadConfig, LoadReport, TempDir,
};
use nix::sys::signal::Signal;
use std::path::PathBuf;
use std::process::Command;
use std::time::{Duration, Instant};

const ARGS: [&str; 4] = ["--listen", "127.0.0.1:0", "--workers", "2"];

/// `<tmp>/releases/{1,2}/hello` (copies of hello) and `current -> releases/1`.
struct Releases {
    dir: TempDir,
}

impl Releases {
    fn new(tag: &str) -> Releases {
        let dir = TempDir::new(tag);
        for n in [1, 2] {
            let d = dir.join(&format!("releases/{n}"));
            std::fs::create_dir_all(&d).expect("mkdir release");
            let exe = d.join("hello");
            copy_hello(&exe);
        }
        std::os::unix::fs::symlink("releases/1", dir.join("current")).expect("symlink current");
        Releases { dir }
    }

    /// The real path of release `n`'s directory.
    fn release_dir(&self, n: u32) -> PathBuf {
        std::fs::canonicalize(self.dir.join(&format!("releases/{n}"))).expect("canonicalize")
    }

    /// The real path of release `n`'s binary.
    fn release_exe(&self, n: u32) -> PathBuf {
        self.release_dir(n).join("hello")
    }

    /// Point `current` at release `n` atomically (new symlink, renamed over the old one).
    fn flip(&self, n: u32) {
        let tmp = self.dir.join("current.itest-new");
        let _ = std::fs::remove_file(&tmp);
        std::os::unix::fs::symlink(format!("releases/{n}"), &tmp).expect("symlink");
        std::fs::rename(&tmp, self.dir.join("current")).expect("rename symlink over current");
        assert_eq!(
            std::fs::canonicalize(self.dir.join("current")).unwrap(),
            self.release_dir(n)
        );
    }
}

fn exe_of(pid: i32) -> PathBuf {
    std::fs::read_link(format!("/proc/{pid}/exe")).unwrap_or_else(|e| panic!("exe of {pid}: {e}"))
}

fn cwd_of(pid: i32) -> PathBuf {
    std::fs::read_link(format!("/proc/{pid}/cwd")).unwrap_or_else(|e| panic!("cwd of {pid}: {e}"))
}

fn light_load(h: &Hello) -> Load {
    let load = Load::start(LoadConfig::light(h.target.clone()).pids_into(h.family.pid_set()));
    sleep_ms(300);
    load
}

fn must(load: &Load, what: &str, r: Result<Upgrade, String>) -> Upgrade {
    let u = r.unwrap_or_else(|e| panic!("{what}: {e}\nload so far: {}", load.report().summary()));
    println!(
        "{what}: {} -> {} ready(logged)={:?}ms serving after {:.1}ms, old gone after {:?}",
        u.old,
        u.new,
        u.ready_ms_logged,
        u.serving_after.as_secs_f64() * 1e3,
        u.old_gone_after
    );
    assert!(
        exited_cleanly(&u),
        "{what}: old {} ended with {:?}",
        u.old,
        u.old_exit
    );
    u
}

fn finish(h: &Hello, load: Load, last: i32) -> LoadReport {
    sleep_ms(200);
    let rep = load.stop();
    println!("load: {}", rep.summary());
    assert_eq!(rep.failed(), 0, "failed requests: {}", rep.summary());
    assert!(rep.total > 0 && rep.ok == rep.total, "{}", rep.summary());
    assert!(
        rep.pids.contains(&last),
        "the last generation {last} never answered the load: {:?}",
        rep.pids
    );
    assert_eq!(h.family.live_pids(), vec![last], "live server processes");
    let z = h.family.lasting_zombies();
    assert!(z.is_empty(), "zombies left: {z:?}");
    rep
}

// (a) -----------------------------------------------------------------------------------

/// Started as `<dir>/current/hello`; `current` flipped to release 2 (then back to 1) before
/// each SIGUSR2: the successor runs the release the symlink names at upgrade time.
#[test]
fn symlink_flip_upgrades_to_the_release_current_names() {
    let _g = heavy_lock();
    let r = Releases::new("flip");
    let h = Hello::start(&r.dir.join("current/hello"), &ARGS);
    println!("started: {}", h.startup.line);
    assert_eq!(exe_of(h.pid()), r.release_exe(1));
    let load = light_load(&h);

    r.flip(2);
    let u = must(
        &load,
        "flip to 2",
        upgrade(&h.family, &h.target, h.pid(), &UpgradeOpts::default()),
    );
    assert_eq!(
        exe_of(u.new),
        r.release_exe(2),
        "successor should run release 2"
    );

    // Rollback: flip back and upgrade again.
    r.flip(1);
    let u2 = must(
        &load,
        "roll back to 1",
        upgrade(&h.family, &h.target, u.new, &UpgradeOpts::default()),
    );
    assert_eq!(
        exe_of(u2.new),
        r.release_exe(1),
        "successor should run release 1 again"
    );
    let rep = finish(&h, load, u2.new);
    assert!(rep.pids.contains(&u.new), "release 2 never answered");
}

// (b) -----------------------------------------------------------------------------------

/// Started as `./current/hello` in `<dir>` (a relative path, resolved in the working
/// directory): the upgrade finds the binary (release 2 after a flip) and the successor runs in
/// the same working directory.
#[test]
fn relative_start_path_and_working_directory_are_kept() {
    let _g = heavy_lock();
    let r = Releases::new("relative");
    let mut cmd = Command::new("./current/hello");
    cmd.args(ARGS).current_dir(r.dir.path());
    let h = Hello::start_cmd("hello", cmd);
    println!("started: {}", h.startup.line);
    let cwd = cwd_of(h.pid());
    assert_eq!(
        cwd,
        std::fs::canonicalize(r.dir.path()).unwrap(),
        "hello's cwd"
    );
    assert_eq!(exe_of(h.pid()), r.release_exe(1));
    let load = light_load(&h);

    let u = must(
        &load,
        "same release",
        upgrade(&h.family, &h.target, h.pid(), &UpgradeOpts::default()),
    );
    assert_eq!(cwd_of(u.new), cwd, "successor's cwd");
    assert_eq!(exe_of(u.new), r.release_exe(1));

    r.flip(2);
    let u2 = must(
        &load,
        "flip to 2",
        upgrade(&h.family, &h.target, u.new, &UpgradeOpts::default()),
    );
    assert_eq!(cwd_of(u2.new), cwd, "successor's cwd after the flip");
    assert_eq!(exe_of(u2.new), r.release_exe(2));
    finish(&h, load, u2.new);
}

/// Started as `./hello` inside `<dir>/current` (with `PWD` naming that logical path, as a
/// shell sets it): after `current` is flipped, the successor starts in the new release's
/// directory and runs its binary, since the start-up directory is re-resolved.
#[test]
fn working_directory_through_current_symlink_follows_the_flip() {
    let _g = heavy_lock();
    let r = Releases::new("cwdlink");
    let current = r.dir.join("current");
    let mut cmd = Command::new("./hello");
    cmd.args(ARGS).current_dir(&current).env("PWD", &current);
    let h = Hello::start_cmd("hello", cmd);
    println!("started: {}", h.startup.line);
    assert_eq!(cwd_of(h.pid()), r.release_dir(1));
    assert_eq!(exe_of(h.pid()), r.release_exe(1));
    let load = light_load(&h);

    r.flip(2);
    let u = must(
        &load,
        "flip to 2",
        upgrade(&h.family, &h.target, h.pid(), &UpgradeOpts::default()),
    );
    assert_eq!(cwd_of(u.new), r.release_dir(2), "successor's cwd");
    assert_eq!(exe_of(u.new), r.release_exe(2), "successor's binary");
    finish(&h, load, u.new);
}

// (c) -----------------------------------------------------------------------------------

/// `--upgrade-signal HUP`: SIGHUP upgrades (twice: the successor keeps the option) and
/// neither SIGHUP kills anybody.
#[test]
fn sighup_as_the_upgrade_signal() {
    let _g = heavy_lock();
    let mut args = ARGS.to_vec();
    args.extend(["--upgrade-signal", "HUP"]);
    let h = Hello::start(&hello_bin(), &args);
    println!("started: {}", h.startup.line);
    let load = light_load(&h);
    let u = must(
        &load,
        "SIGHUP 1",
        upgrade_with_signal(
            &h.family,
            &h.target,
            h.pid(),
            Signal::SIGHUP,
            &UpgradeOpts::default(),
        ),
    );
    let u2 = must(
        &load,
        "SIGHUP 2",
        upgrade_with_signal(
            &h.family,
            &h.target,
            u.new,
            Signal::SIGHUP,
            &UpgradeOpts::default(),
        ),
    );
    sleep_ms(300);
    assert_eq!(
        wait_for_pid(
            &h.target,
            "/health",
            |p| p == u2.new,
            Duration::from_secs(5)
        ),
        Some(u2.new),
        "the second successor should still serve"
    );
    finish(&h, load, u2.new);
}

// (d) -----------------------------------------------------------------------------------

/// `--admin`: `POST /admin/upgrade` answers 200 `upgraded to pid=N` once N is ready; a second
/// POST while the first upgrade runs gets 409 `in progress`, and one sent to the old process
/// while it drains (on a keep-alive connection opened before) gets 409 `draining`.
///
/// The new binary is a wrapper script that sleeps 1 s before it execs hello (same pid, same
/// fds), which holds the first upgrade open long enough for the second POST.
#[test]
fn admin_endpoint_upgrades_and_refuses_concurrent_and_draining() {
    let _g = heavy_lock();
    let dir = TempDir::new("admin");
    let exe = dir.join("hello");
    let real = dir.join("hello.real");
    for p in [&exe, &real] {
        copy_hello(p);
    }
    let mut args = ARGS.to_vec();
    args.extend(["--admin", "--drain-timeout-ms", "3000"]);
    let h = Hello::start(&exe, &args);
    let old = h.pid();
    println!("started: {}", h.startup.line);
    let load = light_load(&h);

    // A keep-alive connection to the old process, for the POST during its drain.
    let mut kept = Client::new(h.target.clone()).timeout(Duration::from_secs(10));
    let r = kept
        .get("/health")
        .expect("GET /health on the kept connection");
    assert_eq!((r.status, r.pid, r.close), (200, Some(old), false));

    replace_file(
        &exe,
        format!("#!/bin/sh\nsleep 1\nexec {} \"$@\"\n", shell_quote(&real)).as_bytes(),
    );
    let mark = h.family.stderr.len();
    let t0 = Instant::now();
    let target = h.target.clone();
    let first =
        std::thread::spawn(move || post_once(&target, "/admin/upgrade", Duration::from_secs(30)));
    let spawned = wait_spawned(&h.family, mark, Duration::from_secs(15))
        .unwrap_or_else(|| panic!("no successor spawned\n{}", h.family.output_tail(20)));

    let second = post_once(&h.target, "/admin/upgrade", Duration::from_secs(10))
        .unwrap_or_else(|f| panic!("second POST failed: {f}"));
    let second_at = t0.elapsed();
    println!(
        "second POST after {second_at:?}: {} {:?}",
        second.status,
        second.text()
    );
    assert_eq!(second.status, 409, "second POST: {:?}", second.text());
    assert!(
        second.text().contains("in progress"),
        "second POST: {:?}",
        second.text()
    );

    // Use the kept connection now (the old process is still the only one accepting), so its
    // idle time before the POST below stays well under actix's 5 s keep-alive.
    let r = kept
        .get("/health")
        .expect("GET /health on the kept connection");
    assert_eq!((r.status, r.pid, r.close), (200, Some(old), false));
    let kept_used = Instant::now();

    let first = first
        .join()
        .expect("first POST thread")
        .unwrap_or_else(|f| panic!("first POST failed: {f}"));
    println!(
        "first POST after {:?}: {} {:?}",
        t0.elapsed(),
        first.status,
        first.text()
    );
    assert_eq!(first.status, 200, "first POST: {:?}", first.text());
    assert_eq!(
        first.text().trim_end(),
        format!("upgraded to pid={spawned}")
    );
    assert!(
        t0.elapsed() >= Duration::from_secs(1),
        "the POST answered before the successor could be ready"
    );

    // The old process drains (held by the kept connection, up to 3 s): a POST on it reaches it.
    let third = kept.post("/admin/upgrade").unwrap_or_else(|f| {
        panic!(
            "POST to the draining process failed: {f} (connection idle for {:?})",
            kept_used.elapsed()
        )
    });
    println!(
        "POST to the draining process: {} {:?} (Connection: close = {})",
        third.status,
        third.text(),
        third.close
    );
    assert_eq!(third.status, 409, "{:?}", third.text());
    assert!(third.text().contains("draining"), "{:?}", third.text());
    assert!(
        third.close,
        "a draining process should answer with Connection: close"
    );

    assert_eq!(
        wait_for_pid(
            &h.target,
            "/health",
            |p| p == spawned,
            Duration::from_secs(10)
        ),
        Some(spawned),
        "the successor named by the POST should serve"
    );
    let g = h.family.wait_gone(old, Duration::from_secs(20));
    assert_eq!(g, Some(Gone::Reaped(Exit::Code(0))), "old process {old}");
    let log = h.family.stderr.lines_from(mark);
    let count = |s: &str| log.iter().filter(|l| l.contains(s)).count();
    assert_eq!(count("spawned successor pid="), 1, "one upgrade only");
    assert_eq!(count("upgrade refused"), 2, "two refusals");
    finish(&h, load, spawned);
}
