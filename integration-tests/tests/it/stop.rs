//! Stopping while something else is under way: SIGTERM in the middle of an upgrade (the
//! successor must not outlive the stop), and SIGINT during a graceful drain (it must end the
//! process at once, as in actix, instead of waiting for the drain), and the orchestrator's stop:
//! SIGTERM with a pre-stop delay (readiness 503 at once, normal service through the delay, then
//! the drain).

use integration_tests::hello::{wait_spawned, Hello};
use integration_tests::http::get_once;
use integration_tests::load::{join_slow, spawn_slow, Load, LoadConfig};
use integration_tests::reaper::{Exit, Gone};
use integration_tests::{
    copy_hello, heavy_lock, hello_bin, procfs, replace_file, shell_quote, signal, sleep_ms, TempDir,
};
use nix::sys::signal::Signal;
use std::time::{Duration, Instant};

#[test]
fn sigterm_during_an_upgrade_stops_the_successor_too() {
    let _g = heavy_lock();
    let dir = TempDir::new("stop-mid-upgrade");
    let exe = dir.join("hello");
    let real = dir.join("hello.real");
    copy_hello(&real);
    copy_hello(&exe);

    let h = Hello::start(
        &exe,
        &[
            "--listen",
            "127.0.0.1:0",
            "--workers",
            "2",
            "--upgrade-timeout-ms",
            "20000",
        ],
    );
    let old = h.pid();
    // The next binary takes 3 s to start: SIGTERM lands while the upgrade waits for it.
    replace_file(
        &exe,
        format!("#!/bin/sh\nsleep 3\nexec {} \"$@\"\n", shell_quote(&real)).as_bytes(),
    );
    let from = h.family.stderr.len();
    assert!(signal(old, Signal::SIGUSR2));
    let successor =
        wait_spawned(&h.family, from, Duration::from_secs(10)).expect("successor spawned");
    let t = Instant::now();
    assert!(signal(old, Signal::SIGTERM));

    let gone = h.family.wait_gone(old, Duration::from_secs(15));
    println!(
        "old {old} gone after {:?}: {gone:?}; successor {successor}",
        t.elapsed()
    );
    assert_eq!(gone, Some(Gone::Reaped(Exit::Code(0))), "old process {old}");
    assert!(
        t.elapsed() < Duration::from_secs(10),
        "the stop waited for the whole upgrade timeout"
    );
    // The successor was the old process's child: stopped and reaped by it, never serving.
    assert!(
        !procfs::exists(successor) || procfs::is_zombie(successor),
        "successor {successor} outlived the stop"
    );
    // Nothing of ours serves on (the wrapper's own `sleep` child may still be counting down).
    sleep_ms(300);
    let servers: Vec<i32> = h
        .family
        .live_pids()
        .into_iter()
        .filter(|p| {
            std::fs::read_to_string(format!("/proc/{p}/comm")).is_ok_and(|c| c.trim() != "sleep")
        })
        .collect();
    assert!(
        servers.is_empty(),
        "left alive: {servers:?}\n{}",
        h.family.output_tail(30)
    );
    let log = h.family.stderr.lines().join("\n");
    assert!(
        log.contains("cancelled, sending SIGTERM"),
        "no cancellation in the log:\n{}",
        h.family.output_tail(30)
    );
    assert!(
        log.contains("upgrade failed"),
        "the abandoned upgrade is not reported"
    );
}

#[test]
fn sigint_during_a_drain_exits_at_once() {
    let _g = heavy_lock();
    let h = Hello::start(&hello_bin(), &["--listen", "127.0.0.1:0", "--workers", "2"]);
    let pid = h.pid();
    // An 8 s request keeps the graceful drain busy.
    let slow = spawn_slow(&h.target, 8000, 1, None);
    sleep_ms(300);
    assert!(signal(pid, Signal::SIGTERM));
    sleep_ms(1000);
    assert!(
        procfs::exists(pid) && !procfs::is_zombie(pid),
        "the drain should still wait for the slow request"
    );
    let t = Instant::now();
    assert!(signal(pid, Signal::SIGINT));
    let gone = h.family.wait_gone(pid, Duration::from_secs(10));
    let took = t.elapsed();
    println!("gone {took:?} after SIGINT: {gone:?}");
    assert!(
        matches!(gone, Some(Gone::Reaped(_))),
        "not gone after SIGINT: {gone:?}"
    );
    assert!(
        took < Duration::from_secs(3),
        "SIGINT during a drain took {took:?}"
    );
    // The slow request was cut by the forced stop: that is what SIGINT means.
    let _ = join_slow(slow);
}

/// Kubernetes-style stop: `--pre-stop-ms 1500`. On SIGTERM `/ready` (actix_graceful::readiness)
/// answers 503 at once while `/` keeps answering 200 on new and kept-alive connections for the
/// whole delay; then the process drains (a request started inside the delay completes) and
/// exits 0. No request of the load fails.
#[test]
fn sigterm_fails_readiness_at_once_and_serves_through_the_pre_stop_delay() {
    let _g = heavy_lock();
    let h = Hello::start(
        &hello_bin(),
        &[
            "--listen",
            "127.0.0.1:0",
            "--workers",
            "2",
            "--pre-stop-ms",
            "1500",
            "--drain-timeout-ms",
            "300",
        ],
    );
    let pid = h.pid();
    let probe = |path: &str| get_once(&h.target, path, Duration::from_secs(2));
    let ready = probe("/ready").expect("GET /ready before the stop");
    assert_eq!((ready.status, ready.text()), (200, "serving\n".to_string()));

    let load = Load::start(LoadConfig::light(h.target.clone()));
    sleep_ms(300);
    let t = Instant::now();
    assert!(signal(pid, Signal::SIGTERM));

    // Readiness fails at once.
    let unready_after = loop {
        let r = probe("/ready").expect("GET /ready during the pre-stop delay");
        if r.status == 503 {
            assert_eq!(r.text(), "stopping\n");
            break t.elapsed();
        }
        assert!(
            t.elapsed() < Duration::from_secs(1),
            "/ready still {}",
            r.status
        );
        sleep_ms(5);
    };
    println!("/ready answered 503 {unready_after:?} after SIGTERM");
    assert!(unready_after < Duration::from_millis(500));

    // Still serving new connections late in the delay; a request started now outlives it.
    sleep_ms(900u64.saturating_sub(t.elapsed().as_millis() as u64));
    let late = probe("/").expect("GET / on a new connection late in the pre-stop delay");
    assert_eq!((late.status, late.pid), (200, Some(pid)));
    let slow = spawn_slow(&h.target, 1000, 2, None);
    sleep_ms(1200u64.saturating_sub(t.elapsed().as_millis() as u64));
    assert!(
        procfs::exists(pid) && !procfs::is_zombie(pid),
        "the process left before its pre-stop delay"
    );
    let report = load.stop();
    println!("load during the delay: {}", report.summary());
    assert_eq!(report.failed(), 0, "{}", report.summary());
    assert!(report.ok > 0);

    let gone = h.family.wait_gone(pid, Duration::from_secs(15));
    let took = t.elapsed();
    println!("exited {took:?} after SIGTERM: {gone:?}");
    assert_eq!(gone, Some(Gone::Reaped(Exit::Code(0))));
    assert!(
        took >= Duration::from_millis(1500),
        "exited before the pre-stop delay ended"
    );
    for r in join_slow(slow) {
        let r = r.expect("request started in the pre-stop delay");
        assert_eq!((r.status, r.pid), (200, Some(pid)));
    }
}
