//! Many consecutive upgrades under light load: every generation, once it serves, has the same
//! number of fds (not counting the client connections it holds at that instant), threads,
//! environment size and about the same RSS; no request fails; at the end exactly one process is
//! left, and no zombie.
//!
//! `SOAK_UPGRADES` (default 50) upgrades; the README quotes a 1,000-upgrade release run:
//! `SOAK_UPGRADES=1000 cargo test --release -p integration-tests --test it soak:: -- --nocapture`.

use integration_tests::hello::{upgrade, wait_exit_0, Hello, UpgradeOpts};
use integration_tests::reaper::{Exit, Gone};
use integration_tests::{env_usize, heavy_lock, hello_bin, procfs, Load, LoadConfig};
use std::time::{Duration, Instant};

#[derive(Clone, Copy, Debug)]
struct Sample {
    /// Open fds, client connections excluded.
    fds: usize,
    /// Client connections held at that instant.
    conns: usize,
    threads: usize,
    rss_kb: u64,
    /// The environment's size, but for the channel to a probation's fallback, which only a
    /// successor of a process on probation gets (`ACTIX_GRACEFUL_FALLBACK_FD`).
    environ: usize,
}

fn sample(pid: i32, port: u16) -> Sample {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    let threads = status
        .lines()
        .find_map(|l| l.strip_prefix("Threads:"))
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or(0);
    // Connections come and go under load: retry until the fd table did not change while the
    // TCP table was read.
    let (total, conns) = (0..50)
        .find_map(|_| {
            let before = procfs::fd_targets(pid);
            let tcp = procfs::tcp_connection_inodes(port);
            let after = procfs::fd_targets(pid);
            (before == after).then(|| {
                let conns = after
                    .iter()
                    .filter_map(|(_, t)| {
                        t.strip_prefix("socket:[")?.strip_suffix(']')?.parse().ok()
                    })
                    .filter(|ino: &u64| tcp.contains(ino))
                    .count();
                (after.len(), conns)
            })
        })
        .unwrap_or_default();
    Sample {
        fds: total.saturating_sub(conns),
        conns,
        threads,
        rss_kb: procfs::vm_rss_kb(pid).unwrap_or(0),
        environ: std::fs::read(format!("/proc/{pid}/environ"))
            .map(|e| {
                e.split(|b| *b == 0)
                    .filter(|v| !v.starts_with(b"ACTIX_GRACEFUL_FALLBACK_FD="))
                    .map(|v| v.len() + 1)
                    .sum()
            })
            .unwrap_or(0),
    }
}

fn stats<T: Copy + Ord + std::fmt::Debug>(name: &str, v: &[T]) -> (T, T) {
    let (min, max) = (*v.iter().min().unwrap(), *v.iter().max().unwrap());
    println!(
        "{name:>8}: first {:?} last {:?} min {min:?} max {max:?}",
        v[0],
        v[v.len() - 1]
    );
    (min, max)
}

#[test]
fn consecutive_upgrades_keep_fds_threads_and_memory_flat() {
    let _g = heavy_lock();
    let n = env_usize("SOAK_UPGRADES", 50).max(2);
    let h = Hello::start(&hello_bin(), &["--listen", "127.0.0.1:0", "--workers", "2"]);
    let port = h.target.port().expect("TCP");
    let load = Load::start(LoadConfig::light(h.target.clone()).pids_into(h.family.pid_set()));
    std::thread::sleep(Duration::from_millis(300));
    let opts = UpgradeOpts {
        wait_old_exit: None,
        ..UpgradeOpts::default()
    };
    let t0 = Instant::now();
    let mut pids = vec![h.pid()];
    let mut samples = vec![sample(h.pid(), port)];
    for i in 0..n {
        let old = *pids.last().unwrap();
        let u = upgrade(&h.family, &h.target, old, &opts)
            .unwrap_or_else(|e| panic!("upgrade {i}: {e}\nload: {}", load.report().summary()));
        // At most three older generations draining at once.
        if pids.len() >= 3 {
            let older = pids[pids.len() - 3];
            // Reaped by the test, or by its parent standing by as a probation's fallback.
            wait_exit_0(&h.family, older, Duration::from_secs(20))
                .unwrap_or_else(|e| panic!("generation {older}: {e}"));
        }
        pids.push(u.new);
        samples.push(sample(u.new, port));
        if (i + 1) % 100 == 0 {
            println!(
                "{} upgrades in {:.1} s: {:?}",
                i + 1,
                t0.elapsed().as_secs_f64(),
                samples.last().unwrap()
            );
        }
    }
    let elapsed = t0.elapsed();
    let rep = load.stop();
    let last = *pids.last().unwrap();
    for &p in &pids[..pids.len() - 1] {
        let g = h.family.wait_gone(p, Duration::from_secs(20));
        assert!(
            matches!(
                g,
                Some(Gone::Reaped(Exit::Code(0))) | Some(Gone::ReapedElsewhere)
            ),
            "generation {p}: {g:?}"
        );
    }
    println!(
        "{n} upgrades in {:.1} s ({:.0} ms each); load: {}",
        elapsed.as_secs_f64(),
        elapsed.as_secs_f64() * 1e3 / n.max(1) as f64,
        rep.summary()
    );
    // The first generation, started by the test, has no LISTEN_* variables and whatever fds
    // the test harness leaked to it (none cross an upgrade): the figures are from the second on.
    println!("generation 1: {:?}", samples[0]);
    let col = |f: fn(&Sample) -> u64| samples[1..].iter().map(f).collect::<Vec<u64>>();
    let (fd_min, fd_max) = stats("fds", &col(|s| s.fds as u64));
    stats("conns", &col(|s| s.conns as u64));
    let (th_min, th_max) = stats("threads", &col(|s| s.threads as u64));
    let (_, rss_max) = stats("rss_kb", &col(|s| s.rss_kb));
    let (env_min, env_max) = stats("environ", &col(|s| s.environ as u64));

    assert_eq!(rep.failed(), 0, "{}", rep.summary());
    assert!(
        fd_max - fd_min <= 1,
        "fd count not flat: {fd_min}..{fd_max}"
    );
    assert!(
        th_max - th_min <= 1,
        "thread count not flat: {th_min}..{th_max}"
    );
    // LISTEN_PID may gain a digit.
    assert!(
        env_max - env_min <= 2,
        "the environment grows: {env_min}..{env_max}"
    );
    assert!(
        rss_max <= samples[1].rss_kb * 2,
        "RSS grew: first {} KiB, max {rss_max} KiB",
        samples[1].rss_kb
    );
    assert_eq!(h.family.live_pids(), vec![last], "exactly one process left");
    let z = h.family.lasting_zombies();
    assert!(z.is_empty(), "zombies: {z:?}");
}
