//! Pooled keep-alive connections that sit idle between requests, the traffic shape of HTTP
//! client pools and proxies under ordinary load, across live upgrades: the drain must never
//! close a connection earlier than the server would have without an upgrade.
//!
//! Clients: `ureq` (crates.io) with its agent's connection pool, and the harness's raw client,
//! which never checks a pooled connection before reuse and never retries (the strict case).
//! Each thread waits a random 200–3000 ms between requests (below actix's 5 s keep-alive, as a
//! well-behaved pool is). Knob: `POOLED_UPGRADES` (default 10).

use integration_tests::hello::{upgrade, wait_exit_0, Hello, UpgradeOpts};
use integration_tests::http::{Client, Target};
use integration_tests::{env_usize, heavy_lock, hello_bin, procfs, sleep_ms};
use std::collections::BTreeSet;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// Think time between two requests of one client thread.
const THINK_MS: (u64, u64) = (200, 3000);

/// What the client threads saw.
#[derive(Default)]
struct Tally {
    ok: u64,
    failed: Vec<String>,
    pids: BTreeSet<i32>,
}

/// A think time in `THINK_MS` from a per-thread xorshift state.
fn think(state: &mut u64) -> Duration {
    *state ^= *state << 13;
    *state ^= *state >> 7;
    *state ^= *state << 17;
    Duration::from_millis(THINK_MS.0 + *state % (THINK_MS.1 - THINK_MS.0 + 1))
}

/// Sleeps `d` in steps, returning early once `stop` is set.
fn pause(d: Duration, stop: &AtomicBool) {
    let until = Instant::now() + d;
    while !stop.load(Ordering::Relaxed) && Instant::now() < until {
        std::thread::sleep(Duration::from_millis(20).min(until - Instant::now()));
    }
}

#[test]
fn pooled_clients_with_think_times_lose_nothing_across_upgrades() {
    let _g = heavy_lock();
    let upgrades = env_usize("POOLED_UPGRADES", 10);
    let h = Hello::start(&hello_bin(), &["--listen", "127.0.0.1:0", "--workers", "2"]);
    println!("started: {}", h.startup.line);
    let Target::Tcp(addr) = h.target.clone() else {
        panic!("a TCP listener")
    };
    let url = format!("http://{addr}/");
    let agent: ureq::Agent = ureq::Agent::config_builder()
        .max_idle_connections_per_host(64)
        .max_idle_connections(64)
        .timeout_global(Some(Duration::from_secs(10)))
        .http_status_as_error(false)
        .build()
        .into();

    let stop = Arc::new(AtomicBool::new(false));
    let tally = Arc::new(Mutex::new(Tally::default()));
    let deadline = Instant::now() + Duration::from_secs(120);
    let mut threads = Vec::new();
    for i in 0..24u64 {
        let (stop, tally, agent, url, target) = (
            stop.clone(),
            tally.clone(),
            agent.clone(),
            url.clone(),
            h.target.clone(),
        );
        threads.push(std::thread::spawn(move || {
            let mut rng = 0x9e37_79b9_7f4a_7c15 ^ (i + 1).wrapping_mul(0x1000_0000_01b3);
            let mut raw = Client::new(target).timeout(Duration::from_secs(10));
            while !stop.load(Ordering::Relaxed) && Instant::now() < deadline {
                // Threads 0..16 share the ureq agent's pool; 16..24 each hold one raw
                // keep-alive connection.
                let result = if i < 16 {
                    agent
                        .get(&url)
                        .call()
                        .map_err(|e| format!("ureq: {e}"))
                        .and_then(|r| {
                            let pid = r
                                .headers()
                                .get("x-pid")
                                .and_then(|v| v.to_str().ok()?.parse().ok());
                            match r.status().as_u16() {
                                200 => Ok(pid),
                                s => Err(format!("ureq: status {s}")),
                            }
                        })
                } else {
                    let reused = raw.connected();
                    raw.get("/")
                        .map_err(|f| format!("raw (reused={reused}): {f}"))
                        .and_then(|r| match r.status {
                            200 => Ok(r.pid),
                            s => Err(format!("raw: status {s}")),
                        })
                };
                {
                    let mut t = tally.lock().unwrap_or_else(|e| e.into_inner());
                    match result {
                        Ok(pid) => {
                            t.ok += 1;
                            t.pids.extend(pid);
                        }
                        Err(e) => t.failed.push(e),
                    }
                }
                pause(think(&mut rng), &stop);
            }
        }));
    }

    sleep_ms(3500); // every client has sent, and most connections sit idle in their pools
    let no_wait = UpgradeOpts {
        wait_old_exit: None,
        ..UpgradeOpts::default()
    };
    let mut current = h.pid();
    let mut olds = Vec::new();
    // Successor ready → old process exited (a zombie or gone), seen by polling /proc.
    let watched: Arc<Mutex<Vec<(i32, Instant)>>> = Arc::default();
    let exits: Arc<Mutex<Vec<Duration>>> = Arc::default();
    let watcher = {
        let (watched, exits, stop) = (watched.clone(), exits.clone(), stop.clone());
        std::thread::spawn(move || {
            let until = Instant::now() + Duration::from_secs(150);
            loop {
                let mut w = watched.lock().unwrap_or_else(|e| e.into_inner());
                w.retain(|&(pid, at)| {
                    let alive = procfs::stat(pid).is_some_and(|s| s.state != 'Z');
                    if !alive {
                        exits
                            .lock()
                            .unwrap_or_else(|e| e.into_inner())
                            .push(at.elapsed());
                    }
                    alive
                });
                let done = w.is_empty() && stop.load(Ordering::Relaxed);
                drop(w);
                if done || Instant::now() > until {
                    break;
                }
                sleep_ms(2);
            }
        })
    };
    for i in 0..upgrades {
        let u = upgrade(&h.family, &h.target, current, &no_wait)
            .unwrap_or_else(|e| panic!("upgrade {}: {e}", i + 1));
        println!(
            "upgrade {:>2}: {} -> {} ready after {:?} ms",
            i + 1,
            u.old,
            u.new,
            u.ready_ms_logged
        );
        olds.push((u.old, u.signalled_at));
        // From the successor's ready report on (when its drain starts): a starved machine
        // may take seconds before that.
        watched
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .push((u.old, u.signalled_at + u.ready_seen));
        current = u.new;
        sleep_ms(1200);
    }
    sleep_ms(3500); // the last old process drains its idle connections
    stop.store(true, Ordering::Relaxed);
    for t in threads {
        t.join().expect("client thread");
    }
    watcher.join().expect("exit watcher");

    // Each old process exited 0, within the 5 s drain timeout (+1 s) of its successor's ready
    // report. One that exits while its own predecessor still drains is reaped by that
    // predecessor, which logs the status.
    for (old, _) in &olds {
        wait_exit_0(&h.family, *old, Duration::from_secs(10))
            .unwrap_or_else(|e| panic!("old process: {e}\n{}", h.family.output_tail(40)));
    }
    let lifetimes: Vec<f64> = exits
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .iter()
        .map(|d| d.as_secs_f64() * 1e3)
        .collect();
    println!("old processes, successor ready → exited ms: {lifetimes:.0?}");
    assert_eq!(
        lifetimes.len(),
        olds.len(),
        "an old process's exit was not seen"
    );
    assert!(
        lifetimes.iter().all(|&ms| ms <= 6000.0),
        "an old process outlived the drain timeout + 1 s: {lifetimes:?}"
    );

    let t = tally.lock().unwrap_or_else(|e| e.into_inner());
    println!(
        "{} requests ok, {} failed, answered by {} pids over {upgrades} upgrades",
        t.ok,
        t.failed.len(),
        t.pids.len()
    );
    assert!(
        t.failed.is_empty(),
        "failed requests: {:?}",
        &t.failed[..t.failed.len().min(10)]
    );
    assert!(t.ok >= 100, "too few requests to mean anything: {}", t.ok);
    assert!(
        t.pids.len() > upgrades,
        "requests reached only {} of {} generations",
        t.pids.len(),
        upgrades + 1
    );
    assert_eq!(h.family.live_pids(), vec![current]);
}
