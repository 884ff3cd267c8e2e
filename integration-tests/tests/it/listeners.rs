//! Every kind of listener survives live upgrades: a Unix socket (its path and mode kept, a
//! stale one from a crash replaced at first start), a Unix socket in Linux's abstract namespace
//! (`unix:@name`), IPv6 loopback, dual-stack `[::]` with and without IPV6_V6ONLY, and 64
//! listeners handed over together. Real `hello` processes, real clients, zero failed requests
//! across `UPGRADES_LISTENERS` (default 5) upgrades each.

use integration_tests::hello::{
    exited_cleanly, upgrade, upgrade_probed, wait_startup, Hello, UpgradeOpts,
};
use integration_tests::http::{get_once, FailKind};
use integration_tests::{
    env_usize, fixture_bin, heavy_lock, hello_bin, sleep_ms, Load, LoadConfig, LoadReport, Target,
    TempDir,
};
use nix::sys::signal::Signal;
use std::io::{Read as _, Write as _};
use std::os::unix::fs::{FileTypeExt as _, MetadataExt as _, PermissionsExt as _};
use std::process::Command;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

const T: Duration = Duration::from_secs(15);

fn upgrades() -> usize {
    env_usize("UPGRADES_LISTENERS", 5)
}

fn light(target: &Target, h: &Hello) -> Load {
    let mut cfg = LoadConfig::light(target.clone()).pids_into(h.family.pid_set());
    cfg.max_duration = Duration::from_secs(120);
    Load::start(cfg)
}

fn assert_no_failures(what: &str, rep: &LoadReport) {
    println!("{what}: {}", rep.summary());
    assert!(rep.total > 0, "{what}: no request was made");
    assert_eq!(
        rep.failed(),
        0,
        "{what}: {}\n{:#?}",
        rep.summary(),
        rep.samples
    );
}

/// `n` upgrades of `h` (probing `probe`), each waited for until the old process exited 0;
/// `after` runs after each with the new pid. Returns the pids, first to last.
fn upgrade_n(h: &Hello, probe: &Target, n: usize, mut after: impl FnMut(i32)) -> Vec<i32> {
    let mut pids = vec![h.pid()];
    for i in 0..n {
        let old = *pids.last().unwrap();
        let u = upgrade(&h.family, probe, old, &UpgradeOpts::default())
            .unwrap_or_else(|e| panic!("upgrade {i}: {e}\n{}", h.family.output_tail(30)));
        assert!(exited_cleanly(&u), "old {old} ended with {:?}", u.old_exit);
        after(u.new);
        pids.push(u.new);
    }
    pids
}

#[test]
fn unix_socket_path_and_mode_survive_upgrades() {
    let _g = heavy_lock();
    let dir = TempDir::new("uds");
    let path = dir.join("app.sock");
    let spec = format!("unix:{}", path.display());
    let h = Hello::start(&hello_bin(), &["--listen", &spec]);
    // An operator's chmod after start: the socket file is never recreated, so it must stick.
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o660)).unwrap();
    let before = std::fs::symlink_metadata(&path).unwrap();
    let target = Target::Unix(path.clone());
    let load = light(&target, &h);
    sleep_ms(200);
    upgrade_n(&h, &target, upgrades(), |new| {
        let meta = std::fs::symlink_metadata(&path).expect("the socket path survives");
        assert!(meta.file_type().is_socket());
        assert_eq!(meta.ino(), before.ino(), "the socket file was recreated");
        assert_eq!(meta.mode() & 0o777, 0o660, "the mode changed");
        let r = get_once(&target, "/", Duration::from_secs(5)).expect("request on the socket");
        assert_eq!(r.pid, Some(new));
    });
    assert_no_failures("unix socket", &load.stop());
}

#[test]
fn a_stale_unix_socket_from_a_crash_is_replaced_at_first_start() {
    let _g = heavy_lock();
    let dir = TempDir::new("stale");
    let path = dir.join("app.sock");
    // What a crashed server leaves: the socket file, nobody listening.
    drop(std::os::unix::net::UnixListener::bind(&path).unwrap());
    assert!(std::fs::symlink_metadata(&path).is_ok());
    let spec = format!("unix:{}", path.display());
    let h = Hello::start(&hello_bin(), &["--listen", &spec]);
    assert!(!h.startup.listeners[0].inherited, "{}", h.startup.line);
    let r = get_once(&Target::Unix(path.clone()), "/", Duration::from_secs(5)).unwrap();
    assert_eq!(r.pid, Some(h.pid()));
    // A live one is never stolen: a second server on the same path fails to start.
    let second = integration_tests::ServerFamily::spawn("second", {
        let mut c = std::process::Command::new(hello_bin());
        c.args(["--listen", &spec]);
        c
    })
    .unwrap();
    let gone = second.wait_gone(second.root(), Duration::from_secs(20));
    assert!(
        matches!(gone, Some(integration_tests::reaper::Gone::Reaped(e)) if !e.success()),
        "a second server on a live socket: {gone:?}\n{}",
        second.output_tail(10)
    );
    assert!(
        second.output_tail(10).contains("in use"),
        "{}",
        second.output_tail(10)
    );
    let r = get_once(&Target::Unix(path), "/", Duration::from_secs(5)).unwrap();
    assert_eq!(r.pid, Some(h.pid()), "the first server still owns the path");
}

#[test]
fn ipv6_loopback_survives_upgrades() {
    let _g = heavy_lock();
    let h = Hello::start(&hello_bin(), &["--listen", "[::1]:0"]);
    assert!(
        matches!(h.target, Target::Tcp(a) if a.is_ipv6()),
        "{}",
        h.startup.line
    );
    let load = light(&h.target, &h);
    sleep_ms(200);
    upgrade_n(&h, &h.target, upgrades(), |_| {});
    assert_no_failures("[::1]", &load.stop());
}

/// `[::]:0` with IPV6_V6ONLY `on`/`off`: the option is the socket's, so every successor keeps
/// it. Dual-stack: IPv4 clients are served throughout; v6-only: IPv4 is refused throughout.
fn dual_stack(v6only: &str) {
    let _g = heavy_lock();
    let h = Hello::start(
        &fixture_bin(),
        &["--listen", "[::]:0", "--ipv6-only", v6only],
    );
    let port = h.target.port().unwrap();
    let v6 = Target::Tcp(format!("[::1]:{port}").parse().unwrap());
    let v4 = Target::Tcp(format!("127.0.0.1:{port}").parse().unwrap());
    let load6 = light(&v6, &h);
    let load4 = (v6only == "off").then(|| light(&v4, &h));
    sleep_ms(200);
    upgrade_n(&h, &v6, upgrades(), |new| {
        let r4 = get_once(&v4, "/", Duration::from_secs(5));
        if v6only == "off" {
            assert_eq!(r4.expect("IPv4 on a dual-stack socket").pid, Some(new));
        } else {
            let f = r4.expect_err("IPv4 on a v6-only socket");
            assert_eq!(f.kind, FailKind::ConnectRefused, "{f}");
        }
    });
    assert_no_failures("[::1]", &load6.stop());
    if let Some(load4) = load4 {
        assert_no_failures("127.0.0.1 on [::]", &load4.stop());
    }
}

#[test]
fn dual_stack_without_v6only_serves_ipv4_across_upgrades() {
    dual_stack("off");
}

#[test]
fn v6only_stays_v6only_across_upgrades() {
    dual_stack("on");
}

#[test]
fn sixty_four_listeners_are_all_handed_over_in_one_upgrade() {
    const N: usize = 64;
    let _g = heavy_lock();
    let specs: Vec<String> = (0..N).map(|i| format!("l{i}=127.0.0.1:0")).collect();
    let mut args: Vec<&str> = vec![];
    for s in &specs {
        args.extend(["--listen", s]);
    }
    let h = Hello::start(&hello_bin(), &args);
    let targets: Vec<Target> = h.startup.listeners.iter().map(|l| l.target()).collect();
    assert_eq!(targets.len(), N, "{}", h.startup.line);

    // One loop over every listener, a fresh connection each (bounded: 2 minutes).
    let stop = Arc::new(AtomicBool::new(false));
    let looper = {
        let (stop, targets) = (stop.clone(), targets.clone());
        std::thread::spawn(move || {
            let (mut ok, mut failed) = (0u64, Vec::new());
            let deadline = std::time::Instant::now() + Duration::from_secs(120);
            while !stop.load(Ordering::SeqCst) && std::time::Instant::now() < deadline {
                for t in &targets {
                    match get_once(t, "/", Duration::from_secs(5)) {
                        Ok(r) if r.status == 200 => ok += 1,
                        Ok(r) => failed.push(format!("{t}: status {}", r.status)),
                        Err(f) => failed.push(format!("{t}: {f}")),
                    }
                }
            }
            (ok, failed)
        })
    };
    sleep_ms(200);
    let mut stdout_mark = h.family.stdout.len();
    upgrade_n(&h, &targets[0], upgrades(), |new| {
        let s = wait_startup(&h.family, stdout_mark, Duration::from_secs(10))
            .expect("the successor's startup line");
        stdout_mark = h.family.stdout.len();
        assert_eq!(s.pid, new);
        assert_eq!(s.listeners.len(), N, "{}", s.line);
        assert!(s.listeners.iter().all(|l| l.inherited), "{}", s.line);
        let now: Vec<Target> = s.listeners.iter().map(|l| l.target()).collect();
        assert_eq!(
            now, targets,
            "every listener keeps its address and its name"
        );
        for t in &targets {
            let r = get_once(t, "/", Duration::from_secs(5)).unwrap_or_else(|f| panic!("{t}: {f}"));
            assert_eq!(r.pid, Some(new), "{t}");
        }
    });
    stop.store(true, Ordering::SeqCst);
    let (ok, failed) = looper.join().unwrap();
    println!("64 listeners: {ok} requests ok, {} failed", failed.len());
    assert!(ok > 0);
    assert!(
        failed.is_empty(),
        "{} failed: {:?}",
        failed.len(),
        &failed[..failed.len().min(10)]
    );
}

/// `GET /` over the abstract socket `name` (without the `@`); the pid that answered.
fn get_abstract(name: &str) -> Option<i32> {
    use std::os::linux::net::SocketAddrExt as _;
    let addr = std::os::unix::net::SocketAddr::from_abstract_name(name).ok()?;
    let mut s = std::os::unix::net::UnixStream::connect_addr(&addr).ok()?;
    s.set_read_timeout(Some(Duration::from_secs(5))).ok()?;
    s.write_all(b"GET / HTTP/1.0\r\nHost: x\r\n\r\n").ok()?;
    let mut out = String::new();
    s.read_to_string(&mut out).ok()?;
    out.lines()
        .find_map(|l| l.strip_prefix("pid="))
        .and_then(|p| p.trim().parse().ok())
}

/// `--listen unix:@name`: before, a file called `@name` appeared in the working directory
/// (while `ListenAddr` and `NOTIFY_SOCKET` read `@` as abstract). Now it is the abstract
/// socket, no file, and a successor inherits it.
#[test]
fn at_name_is_the_abstract_namespace_and_survives_an_upgrade() {
    let _g = heavy_lock();
    let dir = TempDir::new("abstract");
    let name = format!("ag-abstract-{}", std::process::id());
    let spec = format!("unix:@{name}");
    let mut cmd = Command::new(hello_bin());
    cmd.args(["--listen", &spec]).current_dir(dir.path());
    let h = Hello::start_cmd("abstract", cmd);
    let (fam, st) = (&h.family, &h.startup);
    println!("{}", st.line);
    let files: Vec<_> = std::fs::read_dir(dir.path())
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    assert!(
        files.is_empty(),
        "files in hello's working directory: {files:?}"
    );
    assert_eq!(st.listeners[0].addr, spec);
    assert_eq!(
        get_abstract(&name),
        Some(st.pid),
        "served over the abstract socket"
    );
    let mark = fam.stdout.len();
    let u = upgrade_probed(
        fam,
        st.pid,
        Signal::SIGUSR2,
        &UpgradeOpts::default(),
        |new| {
            let deadline = Instant::now() + T;
            while Instant::now() < deadline {
                if get_abstract(&name) == Some(new) {
                    return true;
                }
                std::thread::sleep(Duration::from_millis(20));
            }
            false
        },
    )
    .unwrap_or_else(|e| panic!("upgrade: {e}\n{}", fam.output_tail(30)));
    let next = wait_startup(fam, mark, T).expect("successor's startup line");
    assert_eq!(next.pid, u.new);
    assert_eq!(next.listeners[0].addr, spec);
    assert!(next.listeners[0].inherited, "{}", next.line);
}
