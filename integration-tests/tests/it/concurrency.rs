//! Upgrade triggers that race: SIGUSR2 and `POST /admin/upgrade` (an `UpgradeHandle`) fired at
//! the same instant, and an upgrade asked for while a SIGTERM drain runs.

use integration_tests::hello::{wait_spawned, Hello};
use integration_tests::http::{post_once, wait_for_pid, Client};
use integration_tests::load::{join_slow, spawn_slow};
use integration_tests::reaper::{Exit, Gone};
use integration_tests::{
    heavy_lock, private_copy, procfs, replace_file, shell_quote, signal, sleep_ms, Load, LoadConfig,
};
use nix::sys::signal::Signal;
use std::sync::{Arc, Barrier};
use std::time::Duration;

/// 4 SIGUSR2 and 4 POSTs released together by a barrier, while the successor takes 1 s to
/// start: exactly one successor; every other trigger is refused as "in progress"; a POST
/// answered 200 names that successor.
#[test]
fn signal_and_api_triggers_at_once_give_one_successor() {
    let _g = heavy_lock();
    let (dir, exe) = private_copy("triggers");
    let real = dir.join("hello.real");
    std::fs::copy(&exe, &real).expect("copy");
    let h = Hello::start(&exe, &["--listen", "127.0.0.1:0", "--admin"]);
    let old = h.pid();
    let load = Load::start(LoadConfig::light(h.target.clone()).pids_into(h.family.pid_set()));
    sleep_ms(300);
    replace_file(
        &exe,
        format!(
            "#!/bin/sh\nsleep 1 3>&- 4>&-\nexec {} \"$@\"\n",
            shell_quote(&real)
        )
        .as_bytes(),
    );
    let mark = h.family.stderr.len();
    let barrier = Arc::new(Barrier::new(8));
    let posts: Vec<_> = (0..4)
        .map(|_| {
            let (b, t) = (barrier.clone(), h.target.clone());
            std::thread::spawn(move || {
                b.wait();
                post_once(&t, "/admin/upgrade", Duration::from_secs(30))
            })
        })
        .collect();
    let signals: Vec<_> = (0..4)
        .map(|_| {
            let b = barrier.clone();
            std::thread::spawn(move || {
                b.wait();
                signal(old, Signal::SIGUSR2)
            })
        })
        .collect();
    for s in signals {
        assert!(s.join().unwrap(), "SIGUSR2 to {old}");
    }
    let succ = wait_spawned(&h.family, mark, Duration::from_secs(10)).expect("a successor");
    let replies: Vec<(u16, String)> = posts
        .into_iter()
        .map(|p| {
            let r = p
                .join()
                .unwrap()
                .unwrap_or_else(|f| panic!("POST failed: {f}"));
            (r.status, r.text().trim().to_owned())
        })
        .collect();
    println!("POST replies: {replies:?}");
    assert_eq!(
        h.family.wait_gone(old, Duration::from_secs(20)),
        Some(Gone::Reaped(Exit::Code(0)))
    );
    let log = h.family.stderr.lines_from(mark);
    let count = |s: &str| log.iter().filter(|l| l.contains(s)).count();
    println!(
        "spawned={} refused={} ready={}",
        count("spawned successor pid="),
        count("upgrade refused"),
        count("ready after")
    );
    assert_eq!(count("spawned successor pid="), 1, "exactly one successor");
    assert_eq!(count("ready after"), 1);
    let ok: Vec<_> = replies.iter().filter(|(s, _)| *s == 200).collect();
    assert!(ok.len() <= 1, "{replies:?}");
    for (_, text) in &ok {
        assert_eq!(text, &format!("upgraded to pid={succ}"));
    }
    for (status, text) in replies.iter().filter(|(s, _)| *s != 200) {
        assert_eq!(*status, 409, "{text}");
        assert!(text.contains("in progress"), "{text}");
    }
    // Signals arriving together may be merged by the kernel (one pending SIGUSR2): at least
    // every trigger that was not merged and did not win is refused.
    assert!(count("upgrade refused") >= replies.len() - ok.len());
    assert_eq!(
        wait_for_pid(&h.target, "/health", |p| p == succ, Duration::from_secs(5)),
        Some(succ)
    );
    let rep = load.stop();
    println!("load: {}", rep.summary());
    assert_eq!(rep.failed(), 0, "{}", rep.summary());
    assert_eq!(h.family.live_pids(), vec![succ]);
}

/// An upgrade asked for during the SIGTERM drain (by signal, and by POST on a connection
/// opened before) is refused; the in-flight request completes, no successor is started, the
/// process exits 0 and nothing listens on the port any more.
#[test]
fn upgrade_during_the_sigterm_drain_is_refused() {
    let _g = heavy_lock();
    let (_dir, exe) = private_copy("term-drain");
    let h = Hello::start(
        &exe,
        &[
            "--listen",
            "127.0.0.1:0",
            "--admin",
            "--drain-timeout-ms",
            "2000",
        ],
    );
    let pid = h.pid();
    let port = h.target.port().expect("TCP");
    let mut kept = Client::new(h.target.clone()).timeout(Duration::from_secs(10));
    assert_eq!(kept.get("/health").expect("GET").status, 200);
    let slow = spawn_slow(&h.target, 3000, 1, Some(h.family.pid_set()));
    sleep_ms(300);
    let mark = h.family.stderr.len();
    assert!(signal(pid, Signal::SIGTERM));
    h.family
        .stderr
        .wait_for_line(mark, |l| l.contains("SIGTERM"), Duration::from_secs(5))
        .expect("SIGTERM logged");
    assert!(signal(pid, Signal::SIGUSR2));
    let r = kept.post("/admin/upgrade").expect("POST during the drain");
    println!("POST during the drain: {} {:?}", r.status, r.text());
    assert_eq!(r.status, 409);
    assert!(r.text().contains("draining"), "{:?}", r.text());
    let slow = join_slow(slow)
        .remove(0)
        .expect("the in-flight request completes");
    assert_eq!((slow.status, slow.pid), (200, Some(pid)));
    assert_eq!(
        h.family.wait_gone(pid, Duration::from_secs(15)),
        Some(Gone::Reaped(Exit::Code(0)))
    );
    let log = h.family.stderr.lines_from(mark);
    let refused = log.iter().filter(|l| l.contains("upgrade refused")).count();
    assert_eq!(
        refused,
        2,
        "signal and POST both refused:\n{}",
        log.join("\n")
    );
    assert!(!log.iter().any(|l| l.contains("spawned successor")));
    assert!(
        procfs::tcp_listen_inodes(port).is_empty(),
        "port {port} still listening"
    );
    assert!(h.family.live_pids().is_empty());
}
