//! Live upgrades of `hello` (SIGUSR2) under load, with broken, foreign and impatient
//! successors, and an upgrade signal that arrives before the server runs. Every test holds the
//! global heavy lock: they never run concurrently.
//!
//! Knobs: `UPGRADES` (default 20) upgrades in the zero-failure test, `UPGRADES_FD` (default
//! 20) in the fd-leak test. `ITEST_ECHO=1` echoes the servers' output live.

use integration_tests::hello::{exited_cleanly, upgrade, wait_exit_0, Hello, Upgrade, UpgradeOpts};
use integration_tests::http::wait_for_pid;
use integration_tests::load::{join_slow, spawn_slow};
use integration_tests::reaper::{Exit, Gone};
use integration_tests::{
    env_usize, fixture_bin, heavy_lock, hello_bin, plain_listenfd_bin, private_copy,
    private_copy_of, procfs, replace_file, replace_with_copy, signal, sleep_ms, Load, LoadConfig,
    LoadReport, TempDir,
};
use nix::sys::signal::Signal;
use std::collections::BTreeSet;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::Path;
use std::time::{Duration, Instant};

fn start(exe: &Path, extra: &[&str]) -> Hello {
    let mut args = vec!["--listen", "127.0.0.1:0", "--workers", "2"];
    args.extend_from_slice(extra);
    let h = Hello::start(exe, &args);
    println!("started: {}", h.startup.line);
    h
}

fn must(load: &Load, what: &str, r: Result<Upgrade, String>) -> Upgrade {
    r.unwrap_or_else(|e| panic!("{what}: {e}\nload so far: {}", load.report().summary()))
}

fn describe(i: usize, u: &Upgrade) -> String {
    format!(
        "upgrade {i:>3}: {} -> {} ready(logged)={:?}ms ready(seen)={:.1}ms serving={:.1}ms old gone={:?} ({})",
        u.old,
        u.new,
        u.ready_ms_logged,
        u.ready_seen.as_secs_f64() * 1e3,
        u.serving_after.as_secs_f64() * 1e3,
        u.old_gone_after.map(|d| format!("{:.0}ms", d.as_secs_f64() * 1e3)),
        u.old_exit.map(|g| g.to_string()).unwrap_or_else(|| "not waited".into()),
    )
}

fn assert_no_failures(rep: &LoadReport) {
    assert_eq!(rep.failed(), 0, "failed requests: {}", rep.summary());
    assert_eq!(rep.ok, rep.total, "{}", rep.summary());
    assert!(rep.total > 0, "no request was made");
}

fn assert_no_zombies(h: &Hello) {
    let z = h.family.lasting_zombies();
    assert!(z.is_empty(), "zombies left: {z:?}");
}

/// The fd count of `pid` once it stays the same for 200 ms (at most 5 s).
fn stable_fd_count(pid: i32) -> usize {
    let deadline = Instant::now() + Duration::from_secs(5);
    let mut last = procfs::fd_count(pid).unwrap_or(0);
    loop {
        sleep_ms(200);
        let now = procfs::fd_count(pid).unwrap_or(0);
        if now == last || Instant::now() > deadline {
            return now;
        }
        last = now;
    }
}

// (1) -----------------------------------------------------------------------------------

#[test]
fn zero_failed_requests_across_upgrades_under_load() {
    let _g = heavy_lock();
    let n = env_usize("UPGRADES", 20);
    let h = start(&hello_bin(), &[]);
    let load = Load::start(LoadConfig::heavy(h.target.clone()).pids_into(h.family.pid_set()));
    sleep_ms(500);
    let mut cur = h.pid();
    let mut pids = vec![cur];
    for i in 0..n {
        // Two slow requests on the old generation, in flight during the handoff.
        let slow = spawn_slow(&h.target, 2000, 2, Some(h.family.pid_set()));
        sleep_ms(300);
        let u = must(
            &load,
            &format!("upgrade {i}"),
            upgrade(&h.family, &h.target, cur, &UpgradeOpts::default()),
        );
        println!("{}", describe(i, &u));
        assert!(
            exited_cleanly(&u),
            "old {} ended with {:?}",
            u.old,
            u.old_exit
        );
        for (j, r) in join_slow(slow).into_iter().enumerate() {
            let r = r.unwrap_or_else(|f| panic!("slow request {j} of upgrade {i} failed: {f}"));
            assert_eq!(r.status, 200, "slow request {j} of upgrade {i}");
            assert_eq!(
                r.pid,
                Some(cur),
                "slow request {j} of upgrade {i} answered by the wrong pid"
            );
        }
        assert_ne!(u.new, cur);
        cur = u.new;
        pids.push(cur);
    }
    sleep_ms(300);
    let rep = load.stop();
    println!("load: {}", rep.summary());
    assert_no_failures(&rep);
    let distinct: std::collections::BTreeSet<_> = pids.iter().collect();
    assert_eq!(
        distinct.len(),
        n + 1,
        "pid did not change at every upgrade: {pids:?}"
    );
    assert_eq!(
        h.family.live_pids(),
        vec![cur],
        "exactly the last generation should be alive"
    );
    assert_no_zombies(&h);
}

// (2) -----------------------------------------------------------------------------------

/// SIGUSR2 `pid`, wait for the `upgrade failed` line; returns (line, successor pid from the
/// line if any, seconds from signal to line).
fn failed_upgrade(h: &Hello, pid: i32, timeout: Duration) -> (String, Option<i32>, f64) {
    let mark = h.family.stderr.len();
    let t0 = Instant::now();
    assert!(signal(pid, Signal::SIGUSR2));
    let (_, line) = h
        .family
        .stderr
        .wait_for_line(mark, |l| l.contains("upgrade failed"), timeout)
        .unwrap_or_else(|| {
            panic!(
                "no `upgrade failed` line within {timeout:?}\n{}",
                h.family.output_tail(30)
            )
        });
    let secs = t0.elapsed().as_secs_f64();
    let child = integration_tests::family::pids_in_line(&line)
        .into_iter()
        .find(|&p| p != pid);
    let child = child.or_else(|| {
        h.family
            .stderr
            .find(mark, |l| l.contains("spawned successor pid="))
            .first()
            .and_then(|l| integration_tests::hello::number_after(l, "pid="))
            .map(|n| n as i32)
    });
    (line, child, secs)
}

/// The failed successor must be gone (reaped by the server, not left a zombie).
fn assert_reaped_by_server(server: i32, child: Option<i32>, what: &str) {
    let Some(c) = child else { return };
    let deadline = Instant::now() + Duration::from_secs(3);
    while procfs::exists(c) && Instant::now() < deadline {
        sleep_ms(20);
    }
    if let Some(st) = procfs::stat(c) {
        panic!("{what}: failed successor {c} still exists 3 s after the failure: {st:?} (server {server})");
    }
}

fn assert_still_serving(h: &Hello, pid: i32, what: &str) {
    let p = wait_for_pid(&h.target, "/health", |p| p == pid, Duration::from_secs(3));
    assert_eq!(p, Some(pid), "{what}: {pid} should still serve");
}

#[test]
fn broken_successors_are_killed_and_old_keeps_serving() {
    let _g = heavy_lock();
    let (_dir, exe) = private_copy("broken");
    let h = start(&exe, &["--upgrade-timeout-ms", "1500"]);
    let pid = h.pid();
    let load = Load::start(LoadConfig::light(h.target.clone()).pids_into(h.family.pid_set()));
    sleep_ms(300);

    // a) the new binary exits at once
    replace_file(&exe, b"#!/bin/sh\nexit 1\n");
    let (line, child, secs) = failed_upgrade(&h, pid, Duration::from_secs(10));
    println!("exit 1      -> after {secs:.3}s: {line}");
    assert!(
        child.is_some(),
        "the failure line should name the successor pid: {line}"
    );
    assert_reaped_by_server(pid, child, "exit 1");
    assert_still_serving(&h, pid, "after exit-1 successor");

    // b) the new binary never gets ready
    replace_file(&exe, b"#!/bin/sh\nexec sleep 30\n");
    let (line, child, secs) = failed_upgrade(&h, pid, Duration::from_secs(10));
    println!("never ready -> after {secs:.3}s: {line}");
    assert!(
        child.is_some(),
        "the failure line should name the successor pid: {line}"
    );
    assert!(
        (1.3..8.0).contains(&secs),
        "timeout failure after {secs:.3}s, want ~1.5 s"
    );
    assert_reaped_by_server(pid, child, "never ready");
    assert_still_serving(&h, pid, "after never-ready successor");

    // c) the file is gone
    std::fs::remove_file(&exe).unwrap();
    let (line, child, secs) = failed_upgrade(&h, pid, Duration::from_secs(10));
    println!("missing     -> after {secs:.3}s: {line}");
    assert_reaped_by_server(pid, child, "missing binary");
    assert_still_serving(&h, pid, "after missing binary");

    // d) the good binary is back
    replace_with_copy(&exe, &hello_bin());
    let u = must(
        &load,
        "upgrade to restored binary",
        upgrade(&h.family, &h.target, pid, &UpgradeOpts::default()),
    );
    println!("{}", describe(0, &u));
    assert!(exited_cleanly(&u), "old ended with {:?}", u.old_exit);

    sleep_ms(200);
    let rep = load.stop();
    println!("load: {}", rep.summary());
    assert_no_failures(&rep);
    assert_eq!(h.family.live_pids(), vec![u.new]);
    assert_no_zombies(&h);
}

// (3) -----------------------------------------------------------------------------------

#[test]
fn upgrade_to_a_foreign_listenfd_successor() {
    let _g = heavy_lock();
    let (_dir, exe) = private_copy_of(&fixture_bin(), "foreign");
    let h = start(&exe, &["--ready-after-ms", "500"]);
    let load = Load::start(LoadConfig::light(h.target.clone()).pids_into(h.family.pid_set()));
    sleep_ms(300);
    replace_with_copy(&exe, &plain_listenfd_bin());
    let plain_ino = std::fs::metadata(&exe).unwrap().ino();
    let opts = UpgradeOpts {
        probe_path: "/".into(),
        ..UpgradeOpts::default()
    };
    let u = must(
        &load,
        "upgrade to plain-listenfd",
        upgrade(&h.family, &h.target, h.pid(), &opts),
    );
    println!("{}", describe(0, &u));
    assert!(exited_cleanly(&u), "old ended with {:?}", u.old_exit);
    if let Some(ms) = u.ready_ms_logged {
        assert!(ms >= 400.0, "ready after {ms} ms with --ready-after-ms 500");
    }
    let running = std::fs::metadata(format!("/proc/{}/exe", u.new))
        .unwrap()
        .ino();
    assert_eq!(
        running, plain_ino,
        "the successor should be running plain-listenfd"
    );
    sleep_ms(300);
    let rep = load.stop();
    println!("load: {}", rep.summary());
    assert_no_failures(&rep);
    assert!(
        rep.pids.contains(&u.new),
        "plain-listenfd {} never answered the load",
        u.new
    );
    assert_eq!(h.family.live_pids(), vec![u.new]);
    assert_no_zombies(&h);
}

// (4) -----------------------------------------------------------------------------------

#[test]
fn sigusr2_storm_gives_one_successor() {
    let _g = heavy_lock();
    let h = start(&hello_bin(), &[]);
    let old = h.pid();
    sleep_ms(300);
    let baseline_fds = stable_fd_count(old);
    let load = Load::start(LoadConfig::light(h.target.clone()).pids_into(h.family.pid_set()));
    sleep_ms(300);
    let mark = h.family.stderr.len();
    let t0 = Instant::now();
    let mut delivered = 0;
    // 10 back-to-back, then 40 spread over the rest of the second.
    for i in 0..50 {
        if signal(old, Signal::SIGUSR2) {
            delivered += 1;
        }
        sleep_ms(if i < 10 { 1 } else { 22 });
    }
    println!(
        "sent 50 SIGUSR2 in {:?}, {delivered} delivered",
        t0.elapsed()
    );
    let gone = h.family.wait_gone(old, Duration::from_secs(20));
    assert_eq!(gone, Some(Gone::Reaped(Exit::Code(0))), "old process {old}");
    sleep_ms(500);
    let err = h.family.stderr.lines_from(mark);
    let spawned: Vec<i32> = err
        .iter()
        .filter_map(|l| integration_tests::hello::number_after(l, "spawned successor pid="))
        .map(|n| n as i32)
        .collect();
    let ready = err.iter().filter(|l| l.contains("ready after")).count();
    let refused = err.iter().filter(|l| l.contains("upgrade refused")).count();
    let failed = err.iter().filter(|l| l.contains("upgrade failed")).count();
    println!("spawned={spawned:?} ready={ready} refused={refused} failed={failed}");
    assert_eq!(
        spawned.len(),
        1,
        "one upgrade should be accepted, the rest refused"
    );
    assert_eq!(ready, 1);
    assert_eq!(failed, 0);
    assert!(refused >= 1, "the log should show refusals");
    let new = spawned[0];
    assert_eq!(
        wait_for_pid(&h.target, "/health", |p| p == new, Duration::from_secs(5)),
        Some(new)
    );
    let rep = load.stop();
    println!("load: {}", rep.summary());
    assert_no_failures(&rep);
    assert_eq!(h.family.live_pids(), vec![new]);
    assert_no_zombies(&h);
    let fds = stable_fd_count(new);
    println!("fds: first generation idle {baseline_fds}, successor after the load {fds}");
    assert!(
        fds <= baseline_fds + 2,
        "successor has {fds} fds, first generation had {baseline_fds}: {:?}",
        procfs::fd_targets(new)
    );
}

/// Find a new child of `parent` as early as possible: new entries of /proc whose parent is
/// `parent` (this can catch it between fork and exec), or the `spawned successor` log line.
fn catch_newborn(
    h: &Hello,
    parent: i32,
    mark: usize,
    known: &BTreeSet<i32>,
    timeout: Duration,
) -> (i32, &'static str) {
    let deadline = Instant::now() + timeout;
    loop {
        for p in procfs::all_pids() {
            if !known.contains(&p) && procfs::stat(p).map(|s| s.ppid == parent).unwrap_or(false) {
                return (p, "proc scan");
            }
        }
        if let Some(l) = h
            .family
            .stderr
            .find(mark, |l| l.contains("spawned successor pid="))
            .first()
        {
            let p =
                integration_tests::hello::number_after(l, "spawned successor pid=").unwrap() as i32;
            return (p, "log line");
        }
        assert!(
            Instant::now() < deadline,
            "no successor of {parent} appeared"
        );
    }
}

/// A SIGUSR2 that reaches a successor while it starts (before or right after its `exec`,
/// before its handler exists) must not kill it. Several rounds sweep the delay between
/// spotting the newborn and signalling it (`NEWBORN_ROUNDS`, default 8).
#[test]
fn sigusr2_to_a_newborn_successor_does_not_kill_it() {
    let _g = heavy_lock();
    let rounds = env_usize("NEWBORN_ROUNDS", 8);
    let delays_us = [0u64, 0, 500, 1000, 2000, 3000, 5000, 8000, 12000, 20000];
    let h = start(&hello_bin(), &[]);
    let load = Load::start(LoadConfig::light(h.target.clone()).pids_into(h.family.pid_set()));
    sleep_ms(300);
    let mut cur = h.pid();
    for round in 0..rounds {
        let delay = Duration::from_micros(delays_us[round % delays_us.len()]);
        let mark = h.family.stderr.len();
        let known: BTreeSet<i32> = procfs::all_pids().into_iter().collect();
        let t0 = Instant::now();
        assert!(signal(cur, Signal::SIGUSR2));
        let (succ, how) = catch_newborn(&h, cur, mark, &known, Duration::from_secs(10));
        std::thread::sleep(delay);
        let comm = procfs::stat(succ).map(|s| s.comm);
        let hit = signal(succ, Signal::SIGUSR2);
        let after = t0.elapsed();
        h.family.add_pid(succ);
        // The old process must hand over and exit 0.
        let gone_old = h.family.wait_gone(cur, Duration::from_secs(20));
        assert_eq!(
            gone_old,
            Some(Gone::Reaped(Exit::Code(0))),
            "round {round}: old {cur}"
        );
        // The successor must not have died of the signal: alive, or exited 0 after
        // performing the upgrade the signal asked for.
        let deadline = Instant::now() + Duration::from_secs(20);
        let live = loop {
            let live = h.family.live_pids();
            if live.len() == 1 || Instant::now() > deadline {
                break live;
            }
            sleep_ms(50);
        };
        let fate = match procfs::stat(succ) {
            Some(st) if st.state != 'Z' => "alive".to_string(),
            _ => {
                wait_exit_0(&h.family, succ, Duration::from_secs(5))
                    .unwrap_or_else(|e| panic!("round {round}: successor died: {e}"));
                "exited 0 after upgrading again".to_string()
            }
        };
        let log = h.family.stderr.lines_from(mark);
        let spawned = log
            .iter()
            .filter(|l| l.contains("spawned successor pid="))
            .count();
        let refused = log.iter().filter(|l| l.contains("upgrade refused")).count();
        println!(
            "round {round}: successor {succ} ({comm:?}) found by {how}, signalled {} after {:.3} ms (+{delay:?}); \
             it is {fate}; spawned={spawned} refused={refused}; live={live:?}",
            if hit { "" } else { "(gone!)" },
            after.as_secs_f64() * 1e3
        );
        assert_eq!(
            live.len(),
            1,
            "round {round}: live server processes: {live:?}"
        );
        let serving = wait_for_pid(
            &h.target,
            "/health",
            |p| p == live[0],
            Duration::from_secs(5),
        );
        assert_eq!(serving, Some(live[0]), "round {round}");
        cur = live[0];
    }
    let rep = load.stop();
    println!("load: {}", rep.summary());
    assert_no_failures(&rep);
    assert_no_zombies(&h);
}

// (5) -----------------------------------------------------------------------------------

#[test]
fn upgrade_again_while_the_predecessor_drains() {
    let _g = heavy_lock();
    let h = start(&hello_bin(), &[]);
    let load = Load::start(LoadConfig::light(h.target.clone()).pids_into(h.family.pid_set()));
    let no_wait = UpgradeOpts {
        wait_old_exit: None,
        ..UpgradeOpts::default()
    };
    let g1 = h.pid();
    let s1 = spawn_slow(&h.target, 5000, 1, Some(h.family.pid_set()));
    sleep_ms(300);
    let u1 = must(
        &load,
        "gen1 -> gen2",
        upgrade(&h.family, &h.target, g1, &no_wait),
    );
    println!("{}", describe(1, &u1));
    let g2 = u1.new;
    sleep_ms(100);
    let s2 = spawn_slow(&h.target, 5000, 1, Some(h.family.pid_set()));
    sleep_ms(300);
    assert!(
        procfs::stat(g1).map(|s| s.state != 'Z').unwrap_or(false),
        "gen1 should still be draining its 5 s request"
    );
    let u2 = must(
        &load,
        "gen2 -> gen3 while gen1 drains",
        upgrade(&h.family, &h.target, g2, &no_wait),
    );
    println!("{}", describe(2, &u2));
    let g3 = u2.new;
    sleep_ms(100);
    let s3 = spawn_slow(&h.target, 5000, 1, Some(h.family.pid_set()));
    for (name, hs, want) in [("gen1", s1, g1), ("gen2", s2, g2), ("gen3", s3, g3)] {
        let r = join_slow(hs)
            .remove(0)
            .unwrap_or_else(|f| panic!("{name} slow request failed: {f}"));
        println!("{name} slow request: status {} pid {:?}", r.status, r.pid);
        assert_eq!(r.status, 200, "{name}");
        assert_eq!(
            r.pid,
            Some(want),
            "{name} slow request answered by the wrong generation"
        );
    }
    // gen2 is gen1's child: gen1, standing by as the fallback of gen3's probation, reaps it.
    for (name, p) in [("gen1", g1), ("gen2", g2)] {
        wait_exit_0(&h.family, p, Duration::from_secs(30))
            .unwrap_or_else(|e| panic!("{name}: {e}"));
    }
    let rep = load.stop();
    println!("load: {}", rep.summary());
    assert_no_failures(&rep);
    assert_eq!(h.family.live_pids(), vec![g3]);
    assert_no_zombies(&h);
}

// (6) -----------------------------------------------------------------------------------

#[test]
fn no_fd_leak_across_upgrades() {
    let _g = heavy_lock();
    let n = env_usize("UPGRADES_FD", 20).max(2);
    let h = start(&hello_bin(), &[]);
    let mut cur = h.pid();
    let mut counts = Vec::new();
    let mut first_fds = Vec::new();
    for i in 0..n {
        let u = upgrade(&h.family, &h.target, cur, &UpgradeOpts::default())
            .unwrap_or_else(|e| panic!("upgrade {i}: {e}"));
        assert!(
            exited_cleanly(&u),
            "upgrade {i}: old ended with {:?}",
            u.old_exit
        );
        cur = u.new;
        let c = stable_fd_count(cur);
        if i == 0 {
            first_fds = procfs::fd_targets(cur);
        }
        counts.push(c);
    }
    println!("fd counts of the serving process after each upgrade: {counts:?}");
    assert_eq!(
        counts.first(),
        counts.last(),
        "fd count grew\nafter upgrade 1: {first_fds:?}\nafter upgrade {n}: {:?}",
        procfs::fd_targets(cur)
    );
    assert_eq!(h.family.live_pids(), vec![cur]);
    assert_no_zombies(&h);
}

// (7) -----------------------------------------------------------------------------------

/// Two listeners, TCP and Unix (named), both handed over; the Unix socket file survives the
/// old generation's exit.
#[test]
fn upgrade_hands_over_tcp_and_unix_listeners() {
    let _g = heavy_lock();
    let dir = TempDir::new("two");
    let sock = dir.join("hello.sock");
    let unix_arg = format!("admin=unix:{}", sock.display());
    let h = start(&hello_bin(), &["--listen", unix_arg.as_str()]);
    assert_eq!(h.startup.listeners.len(), 2, "{}", h.startup.line);
    let unix = integration_tests::Target::Unix(sock.clone());
    let load_tcp = Load::start(LoadConfig::light(h.target.clone()).pids_into(h.family.pid_set()));
    let load_unix = Load::start(LoadConfig::light(unix.clone()).pids_into(h.family.pid_set()));
    sleep_ms(300);
    let mark = h.family.stdout.len();
    let u = upgrade(&h.family, &h.target, h.pid(), &UpgradeOpts::default())
        .unwrap_or_else(|e| panic!("upgrade: {e}"));
    println!("{}", describe(0, &u));
    assert!(exited_cleanly(&u), "old ended with {:?}", u.old_exit);
    let st = integration_tests::hello::wait_startup(&h.family, mark, Duration::from_secs(5))
        .expect("successor startup line");
    println!("successor: {}", st.line);
    assert_eq!(st.pid, u.new);
    let addrs: Vec<_> = h.startup.listeners.iter().map(|l| l.addr.clone()).collect();
    let new_addrs: Vec<_> = st.listeners.iter().map(|l| l.addr.clone()).collect();
    assert_eq!(
        new_addrs, addrs,
        "the successor should serve the same addresses"
    );
    assert!(st.listeners.iter().all(|l| l.inherited), "{}", st.line);
    assert!(
        sock.exists(),
        "the Unix socket file vanished with the old generation"
    );
    let p = wait_for_pid(&unix, "/health", |p| p == u.new, Duration::from_secs(5));
    assert_eq!(p, Some(u.new), "successor not answering on the Unix socket");
    sleep_ms(200);
    let (rt, ru) = (load_tcp.stop(), load_unix.stop());
    println!("load tcp:  {}\nload unix: {}", rt.summary(), ru.summary());
    assert_no_failures(&rt);
    assert_no_failures(&ru);
    assert_no_zombies(&h);
}

// (8) -----------------------------------------------------------------------------------

/// SIGTERM: in-flight requests complete, no successor, exit 0.
#[test]
fn sigterm_drains_in_flight_requests_and_exits_0() {
    let _g = heavy_lock();
    let h = start(&hello_bin(), &[]);
    let pid = h.pid();
    let slow = spawn_slow(&h.target, 2000, 2, Some(h.family.pid_set()));
    sleep_ms(300);
    let mark = h.family.stderr.len();
    let t0 = Instant::now();
    assert!(signal(pid, Signal::SIGTERM));
    for r in join_slow(slow) {
        let r = r.unwrap_or_else(|f| panic!("in-flight request failed on SIGTERM: {f}"));
        assert_eq!((r.status, r.pid), (200, Some(pid)));
    }
    let g = h.family.wait_gone(pid, Duration::from_secs(20));
    println!("SIGTERM -> gone after {:?}: {g:?}", t0.elapsed());
    assert_eq!(g, Some(Gone::Reaped(Exit::Code(0))));
    assert_eq!(
        h.family.stderr.count_containing(mark, "spawned successor"),
        0
    );
    assert!(
        h.family.live_pids().is_empty(),
        "{:?}",
        h.family.live_pids()
    );
}

// (9) -----------------------------------------------------------------------------------

/// `--pid-file`: holds the serving pid, rewritten by the successor's handoff.
#[test]
fn pid_file_follows_the_serving_process() {
    let _g = heavy_lock();
    let dir = TempDir::new("pidfile");
    let pf = dir.join("hello.pid");
    let pf_arg = pf.display().to_string();
    let h = start(&hello_bin(), &["--pid-file", pf_arg.as_str()]);
    let read = || {
        std::fs::read_to_string(&pf)
            .ok()
            .and_then(|s| s.trim().parse::<i32>().ok())
    };
    let wait_for = |want: i32| {
        let deadline = Instant::now() + Duration::from_secs(5);
        while read() != Some(want) && Instant::now() < deadline {
            sleep_ms(20);
        }
        read()
    };
    assert_eq!(wait_for(h.pid()), Some(h.pid()), "pid file after start");
    let u = upgrade(&h.family, &h.target, h.pid(), &UpgradeOpts::default())
        .unwrap_or_else(|e| panic!("upgrade: {e}"));
    assert_eq!(wait_for(u.new), Some(u.new), "pid file after the upgrade");
    println!("pid file: {} then {}", h.pid(), u.new);
}

// (10) ----------------------------------------------------------------------------------

/// Ten failed upgrades in a row (the new binary exits 1, is missing, or is not executable)
/// leave the old process exactly as it was: same fd count, no child, no zombie, serving.
#[test]
fn failed_upgrades_leak_no_fd_and_leave_no_child() {
    let _g = heavy_lock();
    let (_dir, exe) = private_copy("failleak");
    let h = start(&exe, &["--upgrade-timeout-ms", "3000"]);
    let pid = h.pid();
    assert_still_serving(&h, pid, "before");
    let before = stable_fd_count(pid);
    let before_targets = procfs::fd_targets(pid);
    let t0 = Instant::now();
    for i in 0..10 {
        let what = match i % 3 {
            0 => {
                replace_file(&exe, b"#!/bin/sh\nexit 1\n");
                "exit 1"
            }
            1 => {
                let _ = std::fs::remove_file(&exe);
                "missing"
            }
            _ => {
                replace_file(&exe, b"#!/bin/sh\nexit 0\n");
                std::fs::set_permissions(&exe, std::fs::Permissions::from_mode(0o644)).unwrap();
                "not executable"
            }
        };
        let (line, child, secs) = failed_upgrade(&h, pid, Duration::from_secs(10));
        println!("failed upgrade {i} ({what}) after {secs:.3}s: {line}");
        assert_reaped_by_server(pid, child, what);
        let children = procfs::children_of(pid);
        assert!(
            children.is_empty(),
            "failed upgrade {i} ({what}): {pid} still has children {children:?}"
        );
        assert_still_serving(&h, pid, what);
    }
    let after = stable_fd_count(pid);
    println!(
        "10 failed upgrades in {:.1}s; fds of {pid}: {before} before, {after} after",
        t0.elapsed().as_secs_f64()
    );
    assert_eq!(
        after,
        before,
        "fds leaked by failed upgrades\nbefore: {before_targets:?}\nafter:  {:?}",
        procfs::fd_targets(pid)
    );
    assert_eq!(h.family.live_pids(), vec![pid]);
    assert_no_zombies(&h);

    // Still upgradable.
    replace_with_copy(&exe, &hello_bin());
    let u = upgrade(&h.family, &h.target, pid, &UpgradeOpts::default())
        .unwrap_or_else(|e| panic!("upgrade after the failures: {e}"));
    assert!(exited_cleanly(&u), "old ended with {:?}", u.old_exit);
    assert_eq!(h.family.live_pids(), vec![u.new]);
}

/// The app starts a thread before the crate's first use (so with the signal mask the
/// process started with) and gets SIGUSR2 between binding and `run`. The process must not die
/// (the default action of SIGUSR2), and the upgrade happens once `run` serves.
#[test]
fn early_upgrade_signal_with_a_thread_started_before_bind() {
    let _g = heavy_lock();
    let knobs = ["--workers", "1", "--early-thread", "--delay-run-ms", "1500"];
    let h = start(&fixture_bin(), &knobs);
    let old = h.pid();
    // The startup line comes before the delay: this SIGUSR2 arrives before `run`.
    let u = upgrade(&h.family, &h.target, old, &UpgradeOpts::default()).unwrap_or_else(|e| {
        let exit = h.family.wait_gone(old, Duration::from_secs(1));
        panic!("{e}; first process: {exit:?}\n{}", h.family.output_tail(30))
    });
    println!(
        "SIGUSR2 before run: successor {} serving {:.0} ms after the signal; old {:?}",
        u.new,
        u.serving_after.as_secs_f64() * 1e3,
        u.old_exit
    );
    assert_eq!(
        h.family
            .stderr
            .count_containing(0, "arrived before the server ran"),
        1,
        "{}",
        h.family.output_tail(30)
    );
    assert_eq!(u.old_exit, Some(Gone::Reaped(Exit::Code(0))));
}
