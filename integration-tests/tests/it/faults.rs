//! Processes killed at each step of a handoff. The surviving process must keep serving, and
//! the only requests lost are the ones the killed process held: each test freezes the victim
//! with SIGSTOP, counts the connections it accepted (its fds ∩ established TCP sockets on the
//! port, /proc), then SIGKILLs it, and compares that count with the failed requests.
//!
//! The steps are hit deterministically with real processes: a successor that takes 1 s to
//! start (a shell wrapper that sleeps, then execs hello: same pid, same fds), the old process
//! held with SIGSTOP while its successor gets ready, a long drain (an idle keep-alive connection
//! held open), slow requests. And a successor that never gets ready because it is a wrapper
//! script with a child of its own: the whole group is killed, nothing is left on the port.

use integration_tests::hello::{upgrade, wait_spawned, Hello, UpgradeOpts};
use integration_tests::http::get_once;
use integration_tests::load::{join_slow, spawn_slow};
use integration_tests::reaper::{Exit, Gone};
use integration_tests::{
    copy_hello, heavy_lock, private_copy, procfs, replace_file, replace_with_copy, shell_quote,
    signal, sleep_ms, FailKind, Load, LoadConfig, LoadReport, TempDir,
};
use nix::sys::signal::Signal;
use std::collections::BTreeSet;
use std::path::PathBuf;
use std::time::{Duration, Instant};

/// Slow requests sent to the process that gets killed.
const SLOW: usize = 3;

/// A `hello` started from `<tmp>/hello`, a copy of the real binary at `<tmp>/hello.real`.
struct Rig {
    _dir: TempDir,
    exe: PathBuf,
    real: PathBuf,
    h: Hello,
    port: u16,
}

impl Rig {
    fn start(tag: &str, extra: &[&str]) -> Rig {
        let dir = TempDir::new(tag);
        let exe = dir.join("hello");
        let real = dir.join("hello.real");
        copy_hello(&exe);
        copy_hello(&real);
        let mut args = vec!["--listen", "127.0.0.1:0", "--workers", "2"];
        args.extend_from_slice(extra);
        let h = Hello::start(&exe, &args);
        println!("started: {}", h.startup.line);
        let port = h.target.port().expect("a TCP listener");
        Rig {
            _dir: dir,
            exe,
            real,
            h,
            port,
        }
    }

    /// The next binary sleeps `secs` before it execs hello. The `sleep` gets neither the
    /// listener (fd 3) nor the readiness pipe (fd 4), so it holds no socket open.
    fn slow_start(&self, secs: u32) {
        replace_file(
            &self.exe,
            format!(
                "#!/bin/sh\nsleep {secs} 3>&- 4>&-\nexec {} \"$@\"\n",
                shell_quote(&self.real)
            )
            .as_bytes(),
        );
    }

    /// [`Rig::slow_start`], then SIGUSR2: returns the stderr mark and the successor's pid,
    /// once it is spawned (and sleeping).
    fn start_slow_upgrade(&self, secs: u32) -> (usize, i32) {
        self.slow_start(secs);
        let mark = self.h.family.stderr.len();
        assert!(signal(self.h.pid(), Signal::SIGUSR2));
        let succ = wait_spawned(&self.h.family, mark, Duration::from_secs(10)).expect("spawned");
        (mark, succ)
    }

    fn restore(&self) {
        replace_with_copy(&self.exe, &self.real);
    }

    /// Connection-per-request loops only: every request is in flight in exactly one process,
    /// and no idle keep-alive connection sits in the process that gets killed.
    fn per_request_load(&self, loops: usize) -> Load {
        Load::start(LoadConfig {
            keepalive_clients: 0,
            per_request_loops: loops,
            ..LoadConfig::light(self.h.target.clone()).pids_into(self.h.family.pid_set())
        })
    }

    /// An idle keep-alive connection to the old process (it keeps the drain going), then an
    /// upgrade not waiting for the old process's exit: the connection, the stderr mark before
    /// the upgrade, the upgrade.
    fn upgrade_keeping_an_idle_connection(
        &self,
    ) -> (
        integration_tests::Client,
        usize,
        integration_tests::hello::Upgrade,
    ) {
        let old = self.h.pid();
        let mut idle = integration_tests::http::Client::new(self.h.target.clone());
        assert_eq!(idle.get("/health").expect("GET").pid, Some(old));
        sleep_ms(300);
        let mark = self.h.family.stderr.len();
        let no_wait = UpgradeOpts {
            wait_old_exit: None,
            ..UpgradeOpts::default()
        };
        let u = upgrade(&self.h.family, &self.h.target, old, &no_wait).expect("upgrade");
        (idle, mark, u)
    }

    fn wait_line(&self, from: usize, needle: &str, secs: u64) -> String {
        self.h.wait_line(from, needle, secs)
    }

    fn serves(&self, pid: i32, what: &str) {
        self.h.serves(pid, what);
    }
}

/// Waits until `pid` is stopped (state T), at most 2 s.
fn wait_state(pid: i32, want: impl Fn(char) -> bool) {
    let deadline = Instant::now() + Duration::from_secs(2);
    while Instant::now() < deadline {
        match procfs::stat(pid) {
            Some(s) if want(s.state) => return,
            None => return,
            _ => sleep_ms(5),
        }
    }
    panic!(
        "pid {pid} did not reach the expected state: {:?}",
        procfs::stat(pid)
    );
}

/// SIGSTOPs `pid`, counts the connections on `port` it has accepted (exact: it is frozen),
/// SIGKILLs it and waits until it is dead. Returns the count.
fn freeze_count_kill(pid: i32, port: u16) -> usize {
    assert!(signal(pid, Signal::SIGSTOP), "SIGSTOP {pid}");
    wait_state(pid, |s| s == 'T');
    sleep_ms(50); // every thread of the group has stopped
    let held = procfs::accepted_connections(pid, port);
    assert!(signal(pid, Signal::SIGKILL), "SIGKILL {pid}");
    wait_state(pid, |s| s == 'Z' || s == 'X');
    println!("killed pid {pid} holding {held} accepted connection(s)");
    held
}

fn slow_failures(
    slow: Vec<
        std::thread::JoinHandle<Result<integration_tests::Response, integration_tests::Failure>>,
    >,
) -> usize {
    join_slow(slow).iter().filter(|r| r.is_err()).count()
}

fn assert_only_held_lost(rep: &LoadReport, slow_failed: usize, held: usize, loops: usize) {
    println!(
        "lost: {slow_failed} slow + {} load requests; the killed process held {held} connections",
        rep.failed()
    );
    assert_eq!(
        slow_failed, SLOW,
        "every slow request in the killed process fails"
    );
    assert!(
        slow_failed + rep.failed() as usize <= held,
        "more requests failed ({slow_failed} + {}) than the killed process held ({held}): {}",
        rep.failed(),
        rep.summary()
    );
    assert!(
        held <= SLOW + loops,
        "the killed process held {held} connections, more than {SLOW} slow + {loops} in flight"
    );
}

fn assert_clean(r: &Rig, survivor: i32) {
    assert_eq!(
        r.h.family.live_pids(),
        vec![survivor],
        "exactly one generation left"
    );
    let z = r.h.family.lasting_zombies();
    assert!(z.is_empty(), "zombies left: {z:?}");
}

// ---------------------------------------------------------------------------------------

/// The successor is SIGKILLed just after it was spawned (during its 1 s start): the upgrade
/// fails with its exit status, the old process serves on; nothing was in flight in it.
#[test]
fn successor_killed_just_after_spawn() {
    let _g = heavy_lock();
    let r = Rig::start("kill-spawned", &[]);
    let old = r.h.pid();
    let load = Load::start(LoadConfig::light(r.h.target.clone()).pids_into(r.h.family.pid_set()));
    sleep_ms(300);
    let (mark, succ) = r.start_slow_upgrade(1);
    assert!(signal(succ, Signal::SIGKILL));
    let line = r.wait_line(mark, "upgrade failed", 10);
    println!("{line}");
    assert!(line.contains("killed by signal SIGKILL"), "{line}");
    r.serves(old, "after the kill");
    r.restore();
    sleep_ms(300);
    let rep = load.stop();
    println!("load: {}", rep.summary());
    assert_eq!(rep.failed(), 0, "{}", rep.summary());
    assert_clean(&r, old);
}

/// The successor reported ready and serves, but is SIGKILLed before the old process stopped
/// accepting. The old process is held with SIGSTOP from the spawn on, so the ready byte waits
/// in the pipe while the successor alone accepts; once the old process runs again it finds its
/// successor dead (failing the upgrade, or taking back in the drain) and keeps accepting. Lost: the requests the successor held.
#[test]
fn successor_killed_after_ready_before_the_old_stops_accepting() {
    let _g = heavy_lock();
    let r = Rig::start("kill-ready", &[]);
    let old = r.h.pid();
    let loops = 2;
    let load = r.per_request_load(loops);
    sleep_ms(300);
    let (mark, succ) = r.start_slow_upgrade(1);
    assert!(signal(old, Signal::SIGSTOP));
    r.serves(succ, "successor while the old process is stopped");
    let slow = spawn_slow(&r.h.target, 20_000, SLOW, Some(r.h.family.pid_set()));
    sleep_ms(300);
    let held = freeze_count_kill(succ, r.port);
    assert!(signal(old, Signal::SIGCONT));
    // A killed multi-threaded process shows as a zombie before its last thread is gone and
    // `waitpid` can report it: the old process finds it dead either at once ("upgrade failed
    // ... right after it reported ready") or as it watches the successor's probation
    // ("rolled back: ... accepting again"). Both keep the old process in charge.
    let (_, line) =
        r.h.family
            .stderr
            .wait_for_line(
                mark,
                |l| l.contains("upgrade failed") || l.contains("rolled back: successor pid="),
                Duration::from_secs(10),
            )
            .unwrap_or_else(|| {
                panic!(
                    "the old process did not notice its dead successor\n{}",
                    r.h.family.output_tail(30)
                )
            });
    println!("{line}");
    assert!(
        line.contains("right after it reported ready") || line.contains("accepting again"),
        "{line}"
    );
    r.serves(old, "old process after its successor died");
    let slow_failed = slow_failures(slow);
    sleep_ms(500);
    let rep = load.stop();
    println!("load: {}", rep.summary());
    assert_only_held_lost(&rep, slow_failed, held, loops);
    assert_clean(&r, old);
}

/// The successor is SIGKILLed during its probation while the old process drains (an idle
/// keep-alive connection keeps it draining up to its 3 s drain timeout): the old process, its
/// fallback, notices, accepts again and is in charge, with the idle connection kept and
/// answered without `Connection: close` again; a later upgrade works. Lost: the requests the
/// successor held.
#[test]
fn successor_killed_during_the_drain_old_takes_back() {
    let _g = heavy_lock();
    let args = ["--drain-timeout-ms", "3000", "--probation-ms", "5000"];
    let r = Rig::start("kill-draining-succ", &args);
    let old = r.h.pid();
    let loops = 2;
    let load = r.per_request_load(loops);
    let (mut idle, mark, u) = r.upgrade_keeping_an_idle_connection();
    let slow = spawn_slow(&r.h.target, 20_000, SLOW, Some(r.h.family.pid_set()));
    sleep_ms(300);
    let held = freeze_count_kill(u.new, r.port);
    let line = r.wait_line(mark, "rolled back: successor pid=", 5);
    println!("{line}");
    r.serves(old, "old process after taking back");
    let kept = idle
        .get("/health")
        .expect("GET on the idle connection after the take-back");
    assert_eq!(kept.pid, Some(old));
    assert!(
        !kept.close,
        "Connection: close after the take-back ended the drain"
    );
    assert_eq!(idle.connections, 1, "the idle connection was not kept");
    let slow_failed = slow_failures(slow);
    sleep_ms(3500); // past the drain timeout: the old process must still be there
    assert!(
        procfs::stat(old).is_some_and(|s| s.state != 'Z'),
        "old process {old} gone after taking back"
    );
    let rep = load.stop();
    println!("load: {}", rep.summary());
    assert_only_held_lost(&rep, slow_failed, held, loops);

    let load = Load::start(LoadConfig::light(r.h.target.clone()).pids_into(r.h.family.pid_set()));
    let u2 = upgrade(&r.h.family, &r.h.target, old, &UpgradeOpts::default())
        .expect("upgrade after taking back");
    assert_eq!(u2.old_exit, Some(Gone::Reaped(Exit::Code(0))));
    let rep = load.stop();
    println!("load across the next upgrade: {}", rep.summary());
    assert_eq!(rep.failed(), 0, "{}", rep.summary());
    assert_clean(&r, u2.new);
}

/// The successor passed its probation (300 ms), but dies while the old process still drains
/// (an idle keep-alive connection keeps it draining up to its 3 s drain timeout): the old
/// process still holds the listeners, so it takes back instead of exiting, and the service
/// stays up. Lost: the requests the successor held.
#[test]
fn successor_killed_after_its_probation_while_the_old_drains_old_takes_back() {
    let _g = heavy_lock();
    let args = ["--drain-timeout-ms", "3000", "--probation-ms", "300"];
    let r = Rig::start("kill-passed-succ", &args);
    let old = r.h.pid();
    let loops = 2;
    let load = r.per_request_load(loops);
    let (mut idle, mark, u) = r.upgrade_keeping_an_idle_connection();
    r.wait_line(
        mark,
        &format!("successor pid={} passed its probation", u.new),
        5,
    );
    let held = freeze_count_kill(u.new, r.port);
    let line = r.wait_line(mark, "rolled back: successor pid=", 5);
    println!("{line}");
    assert!(
        line.contains("after its probation, while this process still drained"),
        "{line}"
    );
    r.serves(old, "old process after taking back");
    assert_eq!(
        idle.get("/health").expect("GET on the idle connection").pid,
        Some(old)
    );
    sleep_ms(3500); // past the drain timeout: the old process must still be there
    assert!(
        procfs::stat(old).is_some_and(|s| s.state != 'Z'),
        "old process {old} gone after taking back"
    );
    let rep = load.stop();
    println!("load: {}", rep.summary());
    assert!(
        rep.failed() as usize <= held && held <= loops,
        "lost more than the killed process held ({held}): {}",
        rep.summary()
    );
    assert_clean(&r, old);
}

/// The old process is SIGKILLed during its drain (drain timeout over, slow requests still
/// running): the successor serves on; lost are exactly the slow requests the old one held.
#[test]
fn old_killed_during_its_drain() {
    let _g = heavy_lock();
    let r = Rig::start("kill-draining", &["--drain-timeout-ms", "300"]);
    let old = r.h.pid();
    let load = Load::start(LoadConfig::light(r.h.target.clone()).pids_into(r.h.family.pid_set()));
    let slow = spawn_slow(&r.h.target, 20_000, SLOW, Some(r.h.family.pid_set()));
    sleep_ms(300);
    let no_wait = UpgradeOpts {
        wait_old_exit: None,
        ..UpgradeOpts::default()
    };
    let u = upgrade(&r.h.family, &r.h.target, old, &no_wait).expect("upgrade");
    sleep_ms(800); // drain timeout over: the old process only waits for its slow requests
    let held = freeze_count_kill(old, r.port);
    r.serves(u.new, "successor after the old process was killed");
    let slow_failed = slow_failures(slow);
    sleep_ms(300);
    let rep = load.stop();
    println!("load: {}", rep.summary());
    assert_eq!(slow_failed, SLOW);
    assert_eq!(
        held, SLOW,
        "the draining process should hold only the slow requests"
    );
    assert_eq!(rep.failed(), 0, "{}", rep.summary());
    assert_clean(&r, u.new);
}

/// The old process is SIGKILLed while its successor is still starting: the successor starts
/// anyway, finds nobody to report to (a warning), and serves alone; connections that arrived
/// in between waited in the listener's queue. Lost: what the old process held.
#[test]
fn old_killed_while_its_successor_starts() {
    let _g = heavy_lock();
    let r = Rig::start("kill-old-starting", &[]);
    let old = r.h.pid();
    let loops = 2;
    let load = r.per_request_load(loops);
    sleep_ms(300);
    let (mark, succ) = r.start_slow_upgrade(1);
    let held = freeze_count_kill(old, r.port);
    r.serves(succ, "orphaned successor");
    let line = r.wait_line(mark, "cannot report readiness", 5);
    println!("{line}");
    sleep_ms(500);
    let rep = load.stop();
    println!("load: {}", rep.summary());
    assert!(
        rep.failed() as usize <= held && held <= loops,
        "failed {} / held {held}: {}",
        rep.failed(),
        rep.summary()
    );
    assert_clean(&r, succ);
}

/// SIGTERM while the successor starts (see also `stop.rs`): both stop, and no process is left
/// holding the listening socket.
#[test]
fn sigterm_mid_upgrade_leaves_no_listener_behind() {
    let _g = heavy_lock();
    let r = Rig::start("term-mid-upgrade", &[]);
    let old = r.h.pid();
    let (_, succ) = r.start_slow_upgrade(2);
    assert!(signal(old, Signal::SIGTERM));
    let gone = r.h.family.wait_gone(old, Duration::from_secs(15));
    assert_eq!(gone, Some(Gone::Reaped(Exit::Code(0))), "old process {old}");
    assert!(
        !procfs::exists(succ) || procfs::is_zombie(succ),
        "successor {succ} outlived the stop"
    );
    let deadline = Instant::now() + Duration::from_secs(3);
    while !procfs::tcp_listen_inodes(r.port).is_empty() && Instant::now() < deadline {
        sleep_ms(20);
    }
    assert!(
        procfs::tcp_listen_inodes(r.port).is_empty(),
        "port {} still listening after the stop",
        r.port
    );
    assert!(
        r.h.family.live_pids().is_empty(),
        "{:?}",
        r.h.family.live_pids()
    );
}

/// The successor dies after its probation, once the old process has stopped its workers: too
/// late to take back. The old process finishes its in-flight request and exits; nothing serves
/// any more (keeper mode, or a supervisor's restart, is the cure). This test documents that
/// limit: new connections wait unanswered, then are refused once the old process is gone.
#[test]
fn successor_killed_after_its_probation_leaves_nobody_serving() {
    let _g = heavy_lock();
    let args = ["--drain-timeout-ms", "200", "--probation-ms", "200"];
    let r = Rig::start("kill-late", &args);
    let old = r.h.pid();
    let slow = spawn_slow(&r.h.target, 3000, 1, Some(r.h.family.pid_set()));
    sleep_ms(300);
    let no_wait = UpgradeOpts {
        wait_old_exit: None,
        ..UpgradeOpts::default()
    };
    let u = upgrade(&r.h.family, &r.h.target, old, &no_wait).expect("upgrade");
    sleep_ms(600); // probation over: the old process is stopping its workers
    let held = freeze_count_kill(u.new, r.port);
    let mark = r.h.family.stderr.len();
    let probe = integration_tests::http::get_once(&r.h.target, "/health", Duration::from_secs(1));
    println!("request while the old process drains and the successor is dead: {probe:?}");
    assert!(probe.is_err(), "nobody should answer: {probe:?}");
    let slow = join_slow(slow)
        .remove(0)
        .expect("the old process's in-flight request");
    assert_eq!((slow.status, slow.pid), (200, Some(old)));
    assert_eq!(
        r.h.family.wait_gone(old, Duration::from_secs(15)),
        Some(Gone::Reaped(Exit::Code(0)))
    );
    let after = integration_tests::http::get_once(&r.h.target, "/health", Duration::from_secs(1));
    println!("after the old process exited: {after:?}");
    assert!(
        matches!(&after, Err(f) if f.kind == integration_tests::FailKind::ConnectRefused),
        "{after:?}"
    );
    assert!(r
        .h
        .family
        .stderr
        .find(mark, |l| l.contains("rolled back"))
        .is_empty());
    println!("successor held {held} connection(s)");
    assert!(r.h.family.live_pids().is_empty());
}

/// Every process (but the test itself) with an open fd on a socket listening on `port`.
fn holders(port: u16) -> BTreeSet<i32> {
    let listening: BTreeSet<u64> = procfs::tcp_listen_inodes(port).into_iter().collect();
    let me = std::process::id() as i32;
    procfs::all_pids()
        .into_iter()
        .filter(|&p| p != me)
        .filter(|&p| !procfs::socket_inodes(p).is_disjoint(&listening))
        .collect()
}

/// The successor is a wrapper script that starts a child without `exec` and never gets
/// ready. After the timeout the library kills the script's whole process group: nothing but
/// the server holds the listener, and once the server stops the port refuses connections.
/// Before the fix, the orphaned `sleep` kept fd 3 and connections hung in its accept queue.
#[test]
fn failed_wrapper_successor_leaves_nothing_holding_the_port() {
    let _g = heavy_lock();
    let (_dir, exe) = private_copy("wrapper");
    let h = Hello::start(
        &exe,
        &[
            "--listen",
            "127.0.0.1:0",
            "--workers",
            "1",
            "--upgrade-timeout-ms",
            "1000",
        ],
    );
    let server = h.pid();
    let port = h.target.port().expect("tcp port");
    replace_file(&exe, b"#!/bin/sh\nsleep 3600\n");
    let mark = h.family.stderr.len();
    assert!(signal(server, Signal::SIGUSR2));
    let failed = h
        .family
        .stderr
        .wait_for_line(
            mark,
            |l| l.contains("upgrade failed"),
            Duration::from_secs(15),
        )
        .map(|(_, l)| l)
        .unwrap_or_else(|| panic!("no `upgrade failed`\n{}", h.family.output_tail(30)));
    println!("{failed}");
    // The kill and the reaping are done when the line is logged; give /proc a moment.
    sleep_ms(200);
    let after_failure = holders(port);
    println!("holding port {port} after the failed upgrade: {after_failure:?}");
    assert!(signal(server, Signal::SIGTERM));
    let gone = h.family.wait_gone(server, Duration::from_secs(20));
    sleep_ms(200);
    let after_stop = holders(port);
    let connect = get_once(&h.target, "/", Duration::from_secs(2));
    println!("server {gone:?}; holding after the stop: {after_stop:?}; connect: {connect:?}");
    for pid in &after_stop {
        signal(*pid, Signal::SIGKILL); // what the old code left behind
    }
    assert_eq!(
        after_failure,
        BTreeSet::from([server]),
        "only the server holds the port"
    );
    assert!(
        after_stop.is_empty(),
        "left holding the port: {after_stop:?}"
    );
    assert!(
        matches!(&connect, Err(f) if f.kind == FailKind::ConnectRefused),
        "connect after the stop: {connect:?}"
    );
    std::net::TcpListener::bind(("127.0.0.1", port)).expect("the port is free again");
}
