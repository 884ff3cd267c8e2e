//! Keeper mode (`hello --keeper`): the pid a foreground supervisor sees never changes. Live
//! upgrades through the keeper under load, a SIGKILLed generation replaced from the sockets the
//! keeper holds, a failed upgrade and a crash loop, SIGTERM to the keeper, and the app's own
//! children left to the app. Every test holds the global heavy lock.
//!
//! Knob: `KEEPER_UPGRADES` (default 5) upgrades in the load test.

use integration_tests::hello::{number_after, upgrade, Hello, UpgradeOpts};
use integration_tests::http::{get_once, wait_for_pid};
use integration_tests::load::{join_slow, spawn_slow};
use integration_tests::reaper::{Exit, Gone};
use integration_tests::{
    copy_hello, env_usize, fixture_bin, heavy_lock, hello_bin, private_copy, procfs, replace_file,
    shell_quote, signal, sleep_ms, FailKind, Load, LoadConfig, TempDir,
};
use nix::sys::signal::Signal;
use std::path::Path;
use std::time::{Duration, Instant};

/// Starts `exe --keeper` on a free port; returns it with the first generation's pid.
fn start_keeper(exe: &Path, extra: &[&str]) -> (Hello, i32) {
    let mut args = vec!["--keeper", "--listen", "127.0.0.1:0", "--workers", "2"];
    args.extend_from_slice(extra);
    let h = Hello::start(exe, &args);
    let generation = first_generation(&h);
    (h, generation)
}

/// Waits until the keeper reports its first generation ready; returns that generation's pid.
fn first_generation(h: &Hello) -> i32 {
    let (keeper, generation) = (h.pid(), h.first_generation());
    println!("keeper {keeper}, first generation {generation}");
    assert_child_of(generation, keeper);
    generation
}

fn assert_child_of(pid: i32, keeper: i32) {
    let st = procfs::stat(pid).unwrap_or_else(|| panic!("generation {pid} does not exist"));
    assert_eq!(
        st.ppid, keeper,
        "generation {pid} is not the keeper's child"
    );
}

fn assert_alive(pid: i32, what: &str) {
    assert!(
        procfs::exists(pid) && !procfs::is_zombie(pid),
        "{what} {pid} is gone"
    );
}

/// Waits for the keeper's line saying old generation `pid` exited; returns the line.
fn wait_old_exit(h: &Hello, from: usize, pid: i32) -> String {
    let key = format!("old generation pid={pid} exited");
    h.family
        .stderr
        .wait_for_line(from, |l| l.contains(&key), Duration::from_secs(20))
        .map(|(_, l)| l)
        .unwrap_or_else(|| panic!("`{key}` not logged\n{}", h.family.output_tail(30)))
}

#[test]
fn keeper_pid_stays_across_upgrades_under_load() {
    let _g = heavy_lock();
    let n = env_usize("KEEPER_UPGRADES", 5);
    let (h, mut cur) = start_keeper(&hello_bin(), &[]);
    let keeper = h.pid();
    let load = Load::start(LoadConfig::heavy(h.target.clone()).pids_into(h.family.pid_set()));
    sleep_ms(500);
    let mut generations = vec![cur];
    for i in 0..n {
        // Two slow requests on the current generation, in flight during the handoff.
        let slow = spawn_slow(&h.target, 2000, 2, Some(h.family.pid_set()));
        sleep_ms(300);
        // Odd rounds signal the generation itself: it must pass the request to the keeper.
        let signalled = if i % 2 == 0 { keeper } else { cur };
        let mark = h.family.stderr.len();
        let opts = UpgradeOpts {
            wait_old_exit: None,
            ..UpgradeOpts::default()
        };
        let u = upgrade(&h.family, &h.target, signalled, &opts).unwrap_or_else(|e| {
            panic!(
                "upgrade {i}: {e}\nload so far: {}\n{}",
                load.report().summary(),
                h.family.output_tail(30)
            )
        });
        let old_line = wait_old_exit(&h, mark, cur);
        let old_exit = old_line.rsplit_once(" exited ").map_or("?", |(_, s)| s);
        println!(
            "upgrade {i:>2} (signal to {}): {cur} -> {} ready(logged)={:?}ms serving={:.1}ms; old exited {old_exit}",
            if signalled == keeper { "keeper" } else { "generation" },
            u.new,
            u.ready_ms_logged,
            u.serving_after.as_secs_f64() * 1e3,
        );
        assert!(
            old_line.contains("exit status 0"),
            "old generation did not exit 0"
        );
        if signalled == cur {
            assert!(
                h.family
                    .stderr
                    .find(mark, |l| l.contains("passed on to the keeper"))
                    .len()
                    == 1,
                "the generation did not pass the upgrade on"
            );
        }
        assert_child_of(u.new, keeper);
        for (j, r) in join_slow(slow).into_iter().enumerate() {
            let r = r.unwrap_or_else(|f| panic!("slow request {j} of upgrade {i} failed: {f}"));
            assert_eq!(r.status, 200, "slow request {j} of upgrade {i}");
            assert_eq!(r.pid, Some(cur), "slow request {j} of upgrade {i}");
        }
        assert_alive(keeper, "keeper");
        cur = u.new;
        generations.push(cur);
    }
    sleep_ms(300);
    let rep = load.stop();
    println!("load: {}", rep.summary());
    println!("keeper {keeper}; generations {generations:?}");
    assert_eq!(rep.failed(), 0, "failed requests: {}", rep.summary());
    assert!(rep.total > 0);
    assert!(!rep.pids.contains(&keeper), "the keeper answered a request");
    let distinct: std::collections::BTreeSet<_> = generations.iter().collect();
    assert_eq!(distinct.len(), n + 1, "generation pids: {generations:?}");
    let mut live = h.family.live_pids();
    live.sort();
    let mut want = vec![keeper, cur];
    want.sort();
    assert_eq!(live, want, "only the keeper and the last generation live");
    let z = h.family.lasting_zombies();
    assert!(z.is_empty(), "zombies: {z:?}");
}

#[test]
fn sigkilled_generation_is_replaced_and_no_connection_is_refused() {
    let _g = heavy_lock();
    let dir = TempDir::new("keeper-kill");
    let (exe, real) = (dir.join("hello"), dir.join("hello.real"));
    copy_hello(&exe);
    copy_hello(&real);
    let (h, gen) = start_keeper(&exe, &[]);
    let keeper = h.pid();
    // The replacement takes a second to start: a gap that connections surely fall into.
    replace_file(
        &exe,
        format!("#!/bin/sh\nsleep 1\nexec {} \"$@\"\n", shell_quote(&real)).as_bytes(),
    );
    let load = Load::start(LoadConfig::light(h.target.clone()).pids_into(h.family.pid_set()));
    sleep_ms(500);
    let mark = h.family.stderr.len();
    let t0 = Instant::now();
    assert!(signal(gen, Signal::SIGKILL));
    let _ = h.family.wait_gone(gen, Duration::from_secs(5));
    let dead_after = t0.elapsed();
    // Fresh connections made while no generation runs: they queue in the kernel.
    let gap: Vec<_> = (0..16)
        .map(|_| {
            let target = h.target.clone();
            std::thread::spawn(move || get_once(&target, "/", Duration::from_secs(15)))
        })
        .collect();
    let gap_made_after = t0.elapsed();
    let key = "keeper: generation pid=";
    let (_, line) = h
        .family
        .stderr
        .wait_for_line(
            mark,
            |l| l.contains(key) && l.contains("ready after"),
            Duration::from_secs(20),
        )
        .unwrap_or_else(|| panic!("no replacement\n{}", h.family.output_tail(30)));
    let replaced_after = t0.elapsed();
    let new = number_after(&line, key).expect("pid") as i32;
    h.family.add_pid(new);
    let mut answered = 0;
    for r in gap {
        let r = r
            .join()
            .expect("gap thread")
            .unwrap_or_else(|f| panic!("a connection made in the gap failed: {f}"));
        assert_eq!(r.status, 200);
        assert_eq!(r.pid, Some(new), "answered by the replacement");
        answered += 1;
    }
    sleep_ms(300);
    let rep = load.stop();
    println!(
        "SIGKILL {gen}: gone after {:.1} ms, 16 connections opened by {:.1} ms, replacement {new} \
         ready after {:.1} ms; {answered}/16 gap connections answered",
        dead_after.as_secs_f64() * 1e3,
        gap_made_after.as_secs_f64() * 1e3,
        replaced_after.as_secs_f64() * 1e3
    );
    assert!(
        replaced_after > gap_made_after,
        "the connections were not made in the gap"
    );
    println!("load: {}", rep.summary());
    assert_eq!(
        rep.count(FailKind::ConnectRefused),
        0,
        "refused: {}",
        rep.summary()
    );
    // Only requests in flight on the killed process's connections may fail: every failure
    // happened while it died, none during the second-long gap that followed.
    let died_by = t0 + dead_after + Duration::from_millis(100);
    assert!(
        rep.samples.iter().all(|f| f.instant <= died_by),
        "failures after the killed process was gone: {}",
        rep.summary()
    );
    assert_alive(keeper, "keeper");
    assert_child_of(new, keeper);
    assert_eq!(
        h.family.wait_gone(gen, Duration::from_secs(5)),
        Some(Gone::ReapedElsewhere),
        "the keeper reaps the killed generation"
    );
}

#[test]
fn failed_upgrade_keeps_the_generation_and_a_crash_loop_ends_the_keeper() {
    let _g = heavy_lock();
    let (dir, exe) = private_copy("keeper-broken");
    let env_file = dir.join("env");
    std::fs::write(&env_file, "").expect("env file");
    let env_arg = env_file.to_string_lossy().into_owned();
    let args = ["--upgrade-timeout-ms", "3000", "--env-file", &env_arg];
    let (h, gen) = start_keeper(&exe, &args);
    let keeper = h.pid();
    replace_file(&exe, b"#!/bin/sh\nexit 3\n");

    // A failed upgrade: the generation serves on.
    let mark = h.family.stderr.len();
    assert!(signal(keeper, Signal::SIGUSR2));
    let line = h.wait_line(mark, "upgrade failed", 10);
    println!("{line}");
    assert!(line.contains(&format!("generation pid={gen} keeps serving")));
    assert_eq!(
        wait_for_pid(&h.target, "/", |p| p == gen, Duration::from_secs(3)),
        Some(gen)
    );

    // The generation dies and every replacement fails: bounded retries, then exit 1. (A
    // restart runs the build that crashed, which the keeper holds open, not the broken file
    // now at the path: it fails here by a bad setting in the environment file.)
    std::fs::write(&env_file, "ACTIX_GRACEFUL_DRAIN_TIMEOUT=bogus\n").expect("env file");
    let mark = h.family.stderr.len();
    let t0 = Instant::now();
    assert!(signal(gen, Signal::SIGKILL));
    let gone = h.family.wait_gone(keeper, Duration::from_secs(30));
    let took = t0.elapsed();
    // Its last words may still be in the pipe.
    let last = h.family.stderr.wait_for_line(
        mark,
        |l| l.contains("every generation has exited"),
        Duration::from_secs(5),
    );
    assert!(last.is_some(), "{}", h.family.output_tail(30));
    let attempts = h
        .family
        .stderr
        .count_containing(mark, "starting a generation failed");
    println!(
        "crash loop: keeper gone after {:.2} s with {gone:?}, {attempts} failed starts",
        took.as_secs_f64()
    );
    assert_eq!(gone, Some(Gone::Reaped(Exit::Code(1))));
    assert_eq!(attempts, 5, "{}", h.family.output_tail(30));
    assert!(h.family.stderr.count_containing(mark, "giving up") == 1);
    assert!(h.family.live_pids().is_empty(), "left behind");
}

#[test]
fn sigterm_to_the_keeper_drains_and_everything_exits_0() {
    let _g = heavy_lock();
    let dir = TempDir::new("keeper-stop");
    let pid_file = dir.join("hello.pid");
    let pid_file_arg = pid_file.to_string_lossy().into_owned();
    const PRE_STOP_MS: u64 = 3000;
    let pre_stop = PRE_STOP_MS.to_string();
    let (h, first) = start_keeper(
        &hello_bin(),
        &["--pid-file", &pid_file_arg, "--pre-stop-ms", &pre_stop],
    );
    let keeper = h.pid();
    let read_pid = || std::fs::read_to_string(&pid_file).map(|s| s.trim().to_owned());
    assert_eq!(
        read_pid().ok(),
        Some(keeper.to_string()),
        "pid file names the keeper"
    );

    let opts = UpgradeOpts {
        wait_old_exit: None,
        ..UpgradeOpts::default()
    };
    let mark = h.family.stderr.len();
    let u = upgrade(&h.family, &h.target, keeper, &opts).expect("upgrade");
    assert_ne!(u.new, first);
    // The replaced generation drains at once (SIGWINCH), without the pre-stop delay, which is
    // for a service that stops.
    wait_old_exit(&h, mark, first);
    let old_gone = u.signalled_at.elapsed();
    println!(
        "replaced generation {first} gone {:.0} ms after the upgrade signal",
        old_gone.as_secs_f64() * 1e3
    );
    assert!(
        old_gone < Duration::from_millis(PRE_STOP_MS),
        "the replaced generation waited the pre-stop delay"
    );
    assert_eq!(
        read_pid().ok(),
        Some(keeper.to_string()),
        "pid file after an upgrade"
    );

    // A slow request in flight: SIGTERM drains it.
    let slow = spawn_slow(&h.target, 4000, 1, Some(h.family.pid_set()));
    sleep_ms(300);
    let t0 = Instant::now();
    assert!(signal(keeper, Signal::SIGTERM));
    // A stop is passed on as SIGTERM: the generation's pre-stop delay applies (readiness 503,
    // service as usual).
    sleep_ms(300);
    let ready = get_once(&h.target, "/ready", Duration::from_secs(5)).expect("/ready");
    let plain = get_once(&h.target, "/", Duration::from_secs(5)).expect("/");
    assert_eq!(
        (ready.status, plain.status),
        (503, 200),
        "during the pre-stop delay"
    );
    let gone = h.family.wait_gone(keeper, Duration::from_secs(20));
    let took = t0.elapsed();
    println!("keeper gone {took:?} after SIGTERM: {gone:?}");
    assert_eq!(gone, Some(Gone::Reaped(Exit::Code(0))));
    assert!(
        took >= Duration::from_millis(PRE_STOP_MS),
        "no pre-stop delay"
    );
    let r = join_slow(slow)
        .pop()
        .expect("one")
        .unwrap_or_else(|f| panic!("slow request failed: {f}"));
    assert_eq!((r.status, r.pid), (200, Some(u.new)));
    // The keeper's last lines may still be in the pipe when its exit is seen: read to EOF.
    let stopped = format!("generation pid={} stopped (exit status 0)", u.new);
    assert!(
        h.family
            .stderr
            .wait_for_line(0, |l| l.contains(&stopped), Duration::from_secs(5))
            .is_some(),
        "{}",
        h.family.output_tail(20)
    );
    assert!(h.family.live_pids().is_empty(), "left behind");
    assert!(!pid_file.exists(), "pid file left behind");
    let refused = get_once(&h.target, "/", Duration::from_secs(2));
    assert!(
        matches!(&refused, Err(f) if f.kind == FailKind::ConnectRefused),
        "the port is still open: {refused:?}"
    );
}

/// Every datagram queued on `sock`: (sender pid from SCM_CREDENTIALS, text).
fn drain_datagrams(sock: &std::os::unix::net::UnixDatagram) -> Vec<(Option<i32>, String)> {
    use nix::sys::socket::{recvmsg, ControlMessageOwned, MsgFlags, UnixCredentials};
    use std::os::fd::AsRawFd;
    let mut out = Vec::new();
    loop {
        let mut buf = [0u8; 4096];
        let mut iov = [std::io::IoSliceMut::new(&mut buf)];
        let mut cmsg = nix::cmsg_space!(UnixCredentials);
        let Ok(msg) = recvmsg::<()>(
            sock.as_raw_fd(),
            &mut iov,
            Some(&mut cmsg),
            MsgFlags::MSG_DONTWAIT,
        ) else {
            return out;
        };
        let pid = msg.cmsgs().ok().and_then(|mut c| {
            c.find_map(|c| match c {
                ControlMessageOwned::ScmCredentials(cred) => Some(cred.pid()),
                _ => None,
            })
        });
        let n = msg.bytes;
        out.push((pid, String::from_utf8_lossy(&buf[..n]).into_owned()));
    }
}

#[test]
fn only_the_keeper_notifies_systemd() {
    let _g = heavy_lock();
    let dir = TempDir::new("keeper-notify");
    let path = dir.join("notify.sock");
    let sock = std::os::unix::net::UnixDatagram::bind(&path).expect("bind notify socket");
    nix::sys::socket::setsockopt(&sock, nix::sys::socket::sockopt::PassCred, &true)
        .expect("SO_PASSCRED");
    let exe = dir.join("hello");
    copy_hello(&exe);
    // An environment file for the generations cannot undo what keeper mode sets (and cannot
    // name a handoff variable at all: `protocol::env_file`'s tests).
    let env_file = dir.join("env");
    std::fs::write(&env_file, format!("NOTIFY_SOCKET={}\n", path.display()))
        .expect("write env file");
    let mut cmd = std::process::Command::new(&exe);
    cmd.args(["--keeper", "--listen", "127.0.0.1:0", "--workers", "1"])
        .arg("--env-file")
        .arg(&env_file)
        .env("NOTIFY_SOCKET", &path);
    let h = Hello::start_cmd("hello", cmd);
    let keeper = h.pid();
    let first = first_generation(&h);
    let opts = UpgradeOpts {
        wait_old_exit: None,
        ..UpgradeOpts::default()
    };
    // One upgrade asked of the generation (passed on), one failed upgrade, then SIGTERM.
    let u = upgrade(&h.family, &h.target, first, &opts).expect("upgrade");
    replace_file(&exe, b"#!/bin/sh\nexit 1\n");
    let mark = h.family.stderr.len();
    assert!(signal(keeper, Signal::SIGUSR2));
    assert!(h
        .family
        .stderr
        .wait_for_line(
            mark,
            |l| l.contains("upgrade failed"),
            Duration::from_secs(10)
        )
        .is_some());
    assert!(signal(keeper, Signal::SIGTERM));
    assert_eq!(
        h.family.wait_gone(keeper, Duration::from_secs(20)),
        Some(Gone::Reaped(Exit::Code(0)))
    );
    let got = drain_datagrams(&sock);
    for (pid, text) in &got {
        println!("from {pid:?}: {:?}", text);
    }
    assert!(
        got.iter().all(|(pid, _)| *pid == Some(keeper)),
        "a datagram not from the keeper {keeper} (generations {first}, {})",
        u.new
    );
    let kinds: Vec<&str> = got
        .iter()
        .map(|(_, t)| t.lines().next().unwrap_or(""))
        .collect();
    assert_eq!(
        kinds,
        [
            "READY=1",
            "RELOADING=1",
            "READY=1",
            "RELOADING=1",
            "READY=1",
            "STOPPING=1"
        ],
        "{got:?}"
    );
    assert!(got[0].1.contains(&format!("MAINPID={keeper}")));
    assert!(got[2]
        .1
        .contains(&format!("generation 2 (pid {}): serving", u.new)));
    assert!(got[4].1.contains("upgrade failed"));
    assert!(!got
        .iter()
        .any(|(_, t)| t.contains(&format!("MAINPID={}", u.new))));
}

/// Waits (at most `timeout`) for a line of the file at `path` containing `needle`.
fn wait_file_line(path: &Path, needle: &str, timeout: Duration) -> Option<String> {
    let deadline = Instant::now() + timeout;
    loop {
        let text = std::fs::read_to_string(path).unwrap_or_default();
        if let Some(line) = text.lines().find(|l| l.contains(needle)) {
            return Some(line.to_owned());
        }
        if Instant::now() >= deadline {
            return None;
        }
        sleep_ms(20);
    }
}

/// The keeper as PID 1 of a fresh pid namespace (`unshare --pid --fork`), as in a container:
/// upgrades work, an orphan reparented to it is reaped, SIGTERM ends it with status 0. Its
/// output goes to a file: the pids it prints are the namespace's, which must not reach the
/// harness's pid set. Skipped (with a message) where pid namespaces cannot be made.
#[test]
fn keeper_as_pid_1_reaps_orphans() {
    let _g = heavy_lock();
    let dir = TempDir::new("keeper-pid1");
    let log = dir.join("log");
    let mut cmd = std::process::Command::new("unshare");
    cmd.args(["--pid", "--fork", "--kill-child", "/bin/sh", "-c"])
        .arg("exec \"$0\" --keeper --listen 127.0.0.1:0 --workers 1 >\"$1\" 2>&1")
        .arg(hello_bin())
        .arg(&log);
    let family = match integration_tests::ServerFamily::spawn("pid1", cmd) {
        Ok(f) => f,
        Err(e) => {
            println!("skipped: cannot run unshare: {e}");
            return;
        }
    };
    let Some(start) = wait_file_line(&log, "hello pid=1 serving", Duration::from_secs(20)) else {
        let why = family.wait_gone(family.root(), Duration::from_secs(1));
        println!(
            "skipped: no keeper as PID 1 ({why:?}): {}",
            std::fs::read_to_string(&log).unwrap_or_default()
        );
        return;
    };
    let target = integration_tests::hello::parse_startup(&start)
        .expect("startup line")
        .listeners[0]
        .target();
    let keeper = procfs::children_of(family.root())
        .into_iter()
        .next()
        .expect("the keeper, child of unshare");
    let ns = std::fs::read_to_string(format!("/proc/{keeper}/status")).unwrap_or_default();
    let nspid = ns.lines().find(|l| l.starts_with("NSpid:")).unwrap_or("");
    println!("keeper: host pid {keeper}, {nspid}");
    assert!(nspid.trim_end().ends_with("\t1"), "not PID 1: {nspid}");
    assert!(wait_file_line(
        &log,
        "keeper pid=1: serving through",
        Duration::from_secs(20)
    )
    .is_some());
    let r = get_once(&target, "/", Duration::from_secs(5)).expect("served");
    assert_eq!(r.status, 200);

    // An upgrade through PID 1.
    assert!(signal(keeper, Signal::SIGUSR2));
    let ready = wait_file_line(&log, "draining generation pid=", Duration::from_secs(20));
    assert!(ready.is_some(), "no upgrade as PID 1");

    // An orphan: `sh` starts `sleep` in the namespace and exits; `sleep` is reparented to PID 1.
    let mut orphan_maker = std::process::Command::new("nsenter");
    orphan_maker
        .args([
            "--target",
            &keeper.to_string(),
            "--pid",
            "--",
            "/bin/sh",
            "-c",
        ])
        .arg("sleep 1 & exit 0");
    let maker = integration_tests::ServerFamily::spawn("orphan", orphan_maker).expect("nsenter");
    let deadline = Instant::now() + Duration::from_secs(5);
    let orphan = loop {
        let found = procfs::children_of(keeper)
            .into_iter()
            .find(|&p| procfs::stat(p).is_some_and(|s| s.comm == "sleep"));
        if let Some(p) = found {
            break p;
        }
        assert!(
            Instant::now() < deadline,
            "no orphan reparented to the keeper"
        );
        sleep_ms(10);
    };
    let t = Instant::now();
    while procfs::exists(orphan) && t.elapsed() < Duration::from_secs(5) {
        sleep_ms(20);
    }
    println!(
        "orphan host pid {orphan} (child of the keeper) gone {:.0} ms after it was found",
        t.elapsed().as_secs_f64() * 1e3
    );
    assert!(
        !procfs::exists(orphan),
        "the keeper left orphan {orphan} a zombie"
    );
    drop(maker);

    assert!(signal(keeper, Signal::SIGTERM));
    let gone = family.wait_gone(family.root(), Duration::from_secs(20));
    assert_eq!(
        gone,
        Some(Gone::Reaped(Exit::Code(0))),
        "unshare (the keeper's status)"
    );
    assert!(procfs::children_of(keeper).is_empty() && !procfs::exists(keeper));
}

/// A keeper killed outright (SIGKILL, OOM) must not leave its generation serving unsupervised on
/// the port: the generation gets SIGTERM from the kernel (parent-death signal) and drains.
#[test]
fn a_killed_keeper_takes_its_generation_down_gracefully() {
    let _g = heavy_lock();
    let (h, gen) = start_keeper(&hello_bin(), &[]);
    let slow = spawn_slow(&h.target, 1000, 1, Some(h.family.pid_set()));
    sleep_ms(300);
    assert!(signal(h.pid(), Signal::SIGKILL));
    // The test process is a subreaper: the orphaned generation is reaped here.
    let gone = h.family.wait_gone(gen, Duration::from_secs(20));
    println!("generation {gen} after the keeper's SIGKILL: {gone:?}");
    assert_eq!(gone, Some(Gone::Reaped(Exit::Code(0))));
    let r = join_slow(slow)
        .pop()
        .expect("one")
        .unwrap_or_else(|f| panic!("in-flight request failed: {f}"));
    assert_eq!((r.status, r.pid), (200, Some(gen)));
    assert!(h.family.live_pids().is_empty(), "left behind");
}

/// In keeper mode the app (here: a thread of `main`, started before `run`) waits for a
/// child of its own; it gets the child's status, not ECHILD from a keeper that reaped it.
#[test]
fn keeper_leaves_the_apps_children_to_the_app() {
    let _g = heavy_lock();
    let knobs = ["--workers", "1", "--child-wait-ms", "2500"];
    let (h, generation) = start_keeper(&fixture_bin(), &knobs);
    let keeper = h.pid();
    let key = format!("hello pid={keeper} child: ");
    let (_, line) = h
        .family
        .stdout
        .wait_for_line(0, |l| l.contains(&key), Duration::from_secs(15))
        .unwrap_or_else(|| panic!("no child line\n{}", h.family.output_tail(30)));
    println!("keeper {keeper}, generation {generation}: {line}");
    assert!(line.ends_with("exit status: 7"), "{line}");
    assert_eq!(
        wait_for_pid(&h.target, "/", |p| p == generation, Duration::from_secs(3)),
        Some(generation),
        "the generation serves on"
    );
}
