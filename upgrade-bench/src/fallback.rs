//! The fallback's cost (`--fallback-cost N`): the server with N idle keep-alive connections,
//! one upgrade, and the old process's CPU time (utime + stime, `/proc/<pid>/stat`) and RSS
//! every 100 ms through its drain and its probation, until it exits. The drain ends at its
//! `drained` or `drain timeout` log line, the probation at `passed its probation` (or the
//! exit); the lines' timestamps mark the phases.
//!
//! Each subject is measured twice: the connections opened at once just before the upgrade
//! (their keep-alive timers end together, at the end of the drain), and opened evenly over the
//! [`SPREAD`] before it, as a real population of idle clients would have (their timers end one
//! after another through the drain).

use crate::badrun::log_time;
use crate::compare::Subject;
use crate::procinfo::cpu_seconds;
use crate::report::{cpu_pressure, loadavg};
use crate::strategy::{self, Gens, RunCfg};
use integration_tests::http::{Client, Target};
use integration_tests::procfs;
use std::time::{Duration, Instant, SystemTime};

/// Sampling period.
const PERIOD: Duration = Duration::from_millis(100);
/// Bound on the sampling of one old process.
const BOUND: Duration = Duration::from_secs(120);
/// The second way of opening the connections: evenly over this time before the upgrade (less
/// than the servers' 5 s keep-alive).
const SPREAD: Duration = Duration::from_secs(4);

/// One reading of the old process.
#[derive(Clone, Copy)]
struct Sample {
    at: SystemTime,
    cpu_s: f64,
    rss_kb: u64,
}

/// What one subject's old process cost.
struct Cost {
    /// How the connections were opened.
    opened: String,
    /// Client connections it held at the upgrade.
    held: usize,
    /// The drain: how long, and CPU % of one core.
    drain: Option<(f64, f64)>,
    /// The idle probation after the drain: the same.
    probation: Option<(f64, f64)>,
    /// Ready → exit: the same.
    whole: Option<(f64, f64)>,
    /// RSS min, max, first and last, KiB.
    rss: (u64, u64, u64, u64),
    /// How the sampling ended.
    ended: String,
}

/// Measures and prints the fallback's cost of each subject, one after the other, with `conns`
/// idle keep-alive connections opened at once, then the same opened over [`SPREAD`].
pub fn run(subjects: &[Subject], conns: usize, target: &Target, cfg: &RunCfg) {
    raise_nofile(conns as u64 + 512);
    let mut rows = Vec::new();
    for spread in [Duration::ZERO, SPREAD] {
        for s in subjects {
            match measure(s, conns, spread, target, cfg) {
                Ok(c) => rows.push((s.name.as_str(), c)),
                Err(e) => println!("\nfallback cost of {}: {e}", s.name),
            }
        }
    }
    println!(
        "\nthe fallback's cost ({conns} idle keep-alive connections, one upgrade; the old process's utime+stime and RSS every 100 ms until it exits; load average {}, {}):",
        loadavg(),
        cpu_pressure()
    );
    println!("| command | connections opened | held at the upgrade | drain: ms, CPU % of a core | after the drain (idle probation): ms, CPU % | ready → exit: ms, CPU % | RSS MB: min / max (first → last) | sampling ended |");
    println!("|---|---|---|---|---|---|---|---|");
    let phase =
        |p: Option<(f64, f64)>| p.map_or("-".into(), |(ms, pct)| format!("{ms:.0}, {pct:.2} %"));
    let mb = |kb: u64| kb as f64 / 1024.0;
    for (name, c) in rows {
        println!(
            "| {name} | {} | {} | {} | {} | {} | {:.1} / {:.1} ({:.1} → {:.1}) | {} |",
            c.opened,
            c.held,
            phase(c.drain),
            phase(c.probation),
            phase(c.whole),
            mb(c.rss.0),
            mb(c.rss.1),
            mb(c.rss.2),
            mb(c.rss.3),
            c.ended
        );
    }
}

/// One subject: start it, open the connections, upgrade, sample the old process.
fn measure(
    s: &Subject,
    conns: usize,
    spread: Duration,
    target: &Target,
    cfg: &RunCfg,
) -> Result<Cost, String> {
    let fam = strategy::spawn("fallback", &s.cmd).map_err(|e| format!("cannot start: {e}"))?;
    strategy::wait_ready(&fam, &cfg.ready_line, cfg.step_timeout)?;
    let old = fam.root();
    let begun = Instant::now();
    let clients = open(target, conns, spread)?;
    let opened = format!("over {:.0} ms", begun.elapsed().as_secs_f64() * 1e3);
    let held = target
        .port()
        .map_or(0, |port| procfs::accepted_connections(old, port));
    let mut gens = Gens {
        cur: old,
        families: vec![fam],
    };
    let mark = gens.families[0].stderr.len();
    strategy::graceful(&mut gens, cfg)?;
    let (samples, ended) = sample_until_gone(old);
    let lines = gens.families[0].stderr.lines_from(mark);
    let at = |needles: &[&str]| {
        lines
            .iter()
            .find(|l| needles.iter().any(|n| l.contains(n)))
            .and_then(|l| log_time(l))
    };
    let drained = at(&["drained: no client connection left", "drain timeout ("]);
    let passed = at(&["passed its probation"]);
    drop(clients);
    drop(gens);
    let first = samples.first().ok_or("no sample of the old process")?;
    let last = samples.last().copied().unwrap_or(*first);
    let rss = samples.iter().map(|s| s.rss_kb);
    Ok(Cost {
        opened,
        held,
        drain: drained.and_then(|d| cpu_between(&samples, first.at, d)),
        probation: drained.and_then(|d| cpu_between(&samples, d, passed.unwrap_or(last.at))),
        whole: cpu_between(&samples, first.at, last.at),
        rss: (
            rss.clone().min().unwrap_or(0),
            rss.max().unwrap_or(0),
            first.rss_kb,
            last.rss_kb,
        ),
        ended,
    })
}

/// `n` keep-alive connections, each with one request answered and left open, opened evenly
/// over `spread`.
fn open(target: &Target, n: usize, spread: Duration) -> Result<Vec<Client>, String> {
    let start = Instant::now();
    (0..n)
        .map(|i| {
            strategy::sleep_until(start + spread.mul_f64(i as f64 / n as f64));
            let mut c = Client::new(target.clone())
                .keep_alive(true)
                .timeout(Duration::from_secs(5));
            match c.get("/") {
                Ok(r) if (200..300).contains(&r.status) && c.connected() => Ok(c),
                Ok(r) => Err(format!(
                    "connection {i}: status {}, kept {}",
                    r.status,
                    c.connected()
                )),
                Err(f) => Err(format!("connection {i}: {f}")),
            }
        })
        .collect()
}

/// Reads `pid` every [`PERIOD`] until it exits (or [`BOUND`]); the samples and how it ended.
fn sample_until_gone(pid: i32) -> (Vec<Sample>, String) {
    let start = Instant::now();
    let mut out = Vec::new();
    loop {
        let read = (cpu_seconds(pid), procfs::vm_rss_kb(pid));
        let alive = procfs::stat(pid).is_some_and(|s| s.state != 'Z');
        match read {
            (Some(cpu_s), Some(rss_kb)) if alive => out.push(Sample {
                at: SystemTime::now(),
                cpu_s,
                rss_kb,
            }),
            _ => {
                return (
                    out,
                    format!("exited after {:.1} s", start.elapsed().as_secs_f64()),
                )
            }
        }
        if start.elapsed() > BOUND {
            return (out, format!("still alive after {BOUND:?}"));
        }
        std::thread::sleep(PERIOD);
    }
}

/// From `a` to `b`: milliseconds, and the CPU used over that time in % of one core, from the
/// last samples at or before each (`None` when fewer than 200 ms apart).
fn cpu_between(samples: &[Sample], a: SystemTime, b: SystemTime) -> Option<(f64, f64)> {
    let at = |t: SystemTime| samples.iter().rev().find(|s| s.at <= t).or(samples.first());
    let (sa, sb) = (at(a)?, at(b)?);
    let secs = sb.at.duration_since(sa.at).ok()?.as_secs_f64();
    let ms = b.duration_since(a).ok()?.as_secs_f64() * 1e3;
    (secs >= 0.2).then(|| (ms, (sb.cpu_s - sa.cpu_s) / secs * 100.0))
}

/// Raises this process's soft `RLIMIT_NOFILE` to `want` (at most the hard limit): the bench
/// holds the connections, and the servers it starts inherit the limit.
fn raise_nofile(want: u64) {
    let mut lim = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit and setrlimit only read and write the struct passed.
    unsafe {
        if libc::getrlimit(libc::RLIMIT_NOFILE, &mut lim) == 0 && lim.rlim_cur < want {
            lim.rlim_cur = want.min(lim.rlim_max);
            if libc::setrlimit(libc::RLIMIT_NOFILE, &lim) != 0 {
                println!("note: cannot raise RLIMIT_NOFILE to {want}");
            }
        }
    }
}
