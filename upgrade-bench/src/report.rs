//! What the bench prints: a table per strategy, the side-by-side overview (Markdown, for the
//! README), and one machine-readable `summary` line per strategy.

use crate::loadgen::{Recorded, FAIL_KINDS};
use crate::stats::{self, median_p90, Lat, Summary};
use crate::strategy::{Handoff, Kind, ProcSample, Run, Sched, Strategy};
use std::path::PathBuf;

/// Milliseconds of `v`'s median / p90, or `-`.
pub fn mp(v: &[f64]) -> String {
    match median_p90(v) {
        Some((m, p)) => format!("{m:.1} / {p:.1}"),
        None => "-".into(),
    }
}

/// min / median / p90 / p99 / max of `v`, or `-`.
fn dist(v: &[f64]) -> String {
    let mut v: Vec<f64> = v.iter().copied().filter(|x| x.is_finite()).collect();
    if v.is_empty() {
        return "-".into();
    }
    v.sort_by(f64::total_cmp);
    let q = |p: f64| v[((v.len() - 1) as f64 * p).round() as usize];
    format!(
        "min {:.1} / median {:.1} / p90 {:.1} / p99 {:.1} / max {:.1} (n={})",
        v[0],
        q(0.5),
        q(0.9),
        q(0.99),
        v[v.len() - 1],
        v.len()
    )
}

/// One latency row: p50, p99, max (ms) and the count.
fn lat_row(name: &str, l: &Lat) -> String {
    format!(
        "  {name:<22} {:>8.2} {:>8.2} {:>9.1}   (n={})",
        l.p50, l.p99, l.max, l.n
    )
}

/// What one strategy's run came to.
pub struct Outcome {
    /// The strategy.
    pub strategy: Strategy,
    /// Its requests, counted.
    pub summary: Summary,
    /// Its restarts and records.
    pub run: Run,
    /// The timeline picture written, if any.
    pub svg: Option<PathBuf>,
    /// With `--bad-build`: the gaps between successful requests.
    pub outage: Option<crate::badrun::Outage>,
}

impl Outcome {
    /// The same without the request records and the servers' output (big; the overview needs
    /// only the counts).
    pub fn without_records(self) -> Outcome {
        Outcome {
            run: Run {
                recorded: Recorded {
                    recs: Vec::new(),
                    ..self.run.recorded
                },
                log: Vec::new(),
                ..self.run
            },
            ..self
        }
    }
}

/// One strategy's table: requests and failures, latency, the restarts' timing, the serving
/// processes, and (`verbose`) failure samples and every restart.
pub fn print_strategy(o: &Outcome, verbose: bool) {
    print_requests(o);
    let r = &o.run;
    if r.end.is_some() {
        crate::badreport::print_deploys(o);
    } else {
        print_restarts(o);
        print_successor_cpu(&r.handoffs);
        print_samples(&r.samples);
    }
    println!(
        "  machine at the end     load average {}, {}",
        loadavg(),
        cpu_pressure()
    );
    for e in &r.errors {
        println!("  ERROR {e}");
    }
    if let Some(p) = &o.svg {
        println!(
            "  timeline               {} (server output: {})",
            p.display(),
            p.with_extension("log").display()
        );
    }
    if verbose {
        print_details(r);
    }
}

/// The heading, then the requests: counts, failures by kind, throughput and latency.
fn print_requests(o: &Outcome) {
    let s = &o.summary;
    println!(
        "\n== {} ({}): {}",
        o.strategy.name,
        match o.strategy.kind {
            Kind::Graceful => "live upgrade by signal, listeners handed over",
            Kind::Keeper => "keeper mode: the keeper starts a new generation with the listeners",
            Kind::Naive => "SIGTERM, then start a new process",
            Kind::ReusePort => "new process with SO_REUSEPORT, then SIGTERM the old",
            Kind::Nginx => "nginx binary upgrade: USR2, new master's workers up, QUIT the old",
        },
        o.strategy.cmd.join(" ")
    );
    println!("  restarts               {}", o.run.handoffs.len());
    println!(
        "  requests               {} (keep-alive {}, per-request {}, slow {}) in {:.1} s",
        s.total, s.by_class[0], s.by_class[1], s.by_class[2], s.seconds
    );
    println!(
        "  failed                 {}   (slow requests: {} of {} ok)",
        s.failed(),
        s.slow.1,
        s.slow.0
    );
    println!("  {:<22} {:>8} {:>8}", "  by kind", "new conn", "reused");
    for (i, (_, name)) in FAIL_KINDS.iter().enumerate() {
        println!("    {name:<20} {:>8} {:>8}", s.fails[i][0], s.fails[i][1]);
    }
    println!(
        "  throughput             {:.0} req/s ({:.0} ok/s)",
        s.rate(),
        s.ok_rate()
    );
    println!(
        "  latency ms             {:>8} {:>8} {:>9}",
        "p50", "p99", "max"
    );
    println!("{}", lat_row("steady", &s.steady));
    println!("{}", lat_row("upgrade windows ±1 s", &s.window));
    if s.steady.p99 > 0.0 && s.window.n > 0 {
        println!(
            "  p99 window / steady    {:.2}",
            s.window.p99 / s.steady.p99
        );
    }
}

/// The restarts: trigger → ready, the old processes' lifetime, how many generations were
/// alive, and how the old processes ended.
fn print_restarts(o: &Outcome) {
    let r = &o.run;
    let ms = |f: fn(&Handoff) -> Option<f64>| r.handoffs.iter().filter_map(f).collect::<Vec<_>>();
    let (ready, gone, exited) = (ms(|h| h.ready_ms), ms(|h| h.gone_ms), ms(|h| h.exited_ms));
    let max = |v: &[f64]| v.iter().copied().fold(f64::NAN, f64::max);
    println!(
        "  trigger → ready ms     {} median / p90, max {:.1}  ({})",
        mp(&ready),
        max(&ready),
        match o.strategy.kind {
            Kind::Graceful | Kind::Keeper => {
                "the library's log: signal handled → successor's ready byte"
            }
            Kind::Nginx => "USR2 → the new master runs its workers",
            _ => "trigger → the new process's ready line",
        }
    );
    println!(
        "  trigger → old exited   {} median / p90, max {:.1} ms (zombie or gone, /proc polled every 2 ms)",
        mp(&exited),
        max(&exited)
    );
    let drained = ms(|h| Some(h.exited_ms? - h.ready_ms?));
    println!(
        "  old process lifetime   trigger → exited {}; ready → exited (the drain) {} ms",
        dist(&exited),
        dist(&drained)
    );
    println!(
        "  generations alive      {}",
        stats::alive_shares(&r.handoffs, o.summary.seconds)
            .iter()
            .map(|(n, share)| format!("{n}: {:.2} % of the time", share * 100.0))
            .collect::<Vec<_>>()
            .join(", ")
    );
    println!(
        "  trigger → old reaped   {} median / p90, max {:.1} ms (an orphan is reaped once its parent has exited too)",
        mp(&gone),
        max(&gone)
    );
    let mut exits = std::collections::BTreeMap::<String, usize>::new();
    for h in &r.handoffs {
        *exits
            .entry(h.old_exit.clone().unwrap_or_else(|| "?".into()))
            .or_default() += 1;
    }
    println!(
        "  old processes ended    {}",
        exits
            .iter()
            .map(|(k, n)| format!("{n} × {k}"))
            .collect::<Vec<_>>()
            .join(", ")
    );
}

/// `--verbose`: the first failure samples and every restart.
fn print_details(r: &Run) {
    for smp in r.recorded.samples.iter().take(30) {
        println!("  failure t={:.3}s {}: {}", smp.at, smp.thread, smp.detail);
    }
    for h in &r.handoffs {
        println!(
            "  restart at {:.3}s ready {:?} ms, old gone {:?} ms, {}",
            h.at,
            h.ready_ms,
            h.gone_ms,
            h.old_exit.as_deref().unwrap_or("?")
        );
    }
}

/// Where the handoff time went (graceful only).
pub fn print_successor_cpu(h: &[Handoff]) {
    let v: Vec<Sched> = h.iter().filter_map(|h| h.sched.clone()).collect();
    if v.is_empty() {
        return;
    }
    let col = |f: fn(&Sched) -> f64| mp(&v.iter().map(f).collect::<Vec<_>>());
    println!(
        "  where it went, ms      successor on a CPU {}, successor waiting for a CPU {}, predecessor waiting for a CPU {} (median / p90; /proc/PID/task/*/schedstat); successor's major page faults {}",
        col(|s| s.successor_cpu),
        col(|s| s.successor_wait),
        col(|s| s.predecessor_wait),
        col(|s| s.major_faults.map_or(f64::NAN, |n| n as f64))
    );
    // The slow ones, one by one.
    let mut slow: Vec<&Handoff> = h
        .iter()
        .filter(|h| h.ready_ms.is_some_and(|ms| ms > 100.0))
        .collect();
    slow.sort_by(|a, b| {
        b.ready_ms
            .partial_cmp(&a.ready_ms)
            .unwrap_or(std::cmp::Ordering::Equal)
    });
    for h in slow.iter().take(5) {
        if let (Some(ms), Some(s)) = (h.ready_ms, &h.sched) {
            println!(
                "  slow handoff at {:.1} s: ready after {ms:.1} ms; successor on a CPU {:.1}, waiting for a CPU {:.1}, asleep or blocked {:.0}; predecessor waiting for a CPU {:.1}; successor's major page faults {}; seen meanwhile: {}",
                h.at, s.successor_cpu, s.successor_wait, s.successor_blocked, s.predecessor_wait,
                s.major_faults.map_or("?".into(), |n| n.to_string()), s.stuck
            );
        }
    }
}

/// fds and RSS of the serving generations, read before each trigger.
fn print_samples(v: &[ProcSample]) {
    if v.is_empty() {
        return;
    }
    let fds: Vec<usize> = v.iter().map(|p| p.fds).collect();
    let other: Vec<usize> = v.iter().map(|p| p.non_socket_fds).collect();
    let rss: Vec<f64> = v.iter().map(|p| p.rss_kb as f64 / 1024.0).collect();
    let hwm = v.iter().map(|p| p.hwm_kb).max().unwrap_or(0) as f64 / 1024.0;
    println!(
        "  serving process fds    first {}, last {}, min {}, max {}; not sockets: min {}, max {}  ({} generations, read before each trigger)",
        fds[0],
        fds[fds.len() - 1],
        fds.iter().min().unwrap_or(&0),
        fds.iter().max().unwrap_or(&0),
        other.iter().min().unwrap_or(&0),
        other.iter().max().unwrap_or(&0),
        v.len()
    );
    println!(
        "  serving process RSS MB first {:.1}, last {:.1}, max {:.1}; peak (VmHWM) {:.1}",
        rss[0],
        rss[rss.len() - 1],
        rss.iter().copied().fold(0.0, f64::max),
        hwm
    );
}

/// The side-by-side table (Markdown, for the README) and one machine-readable line each.
pub fn print_overview(outs: &[Outcome]) {
    let bad = outs.iter().any(|o| o.run.end.is_some());
    if bad {
        crate::badreport::print_table(outs);
    } else {
        print_table(outs);
    }
    print_lines(outs);
    if bad {
        crate::badreport::print_lines(outs);
    }
}

/// The side-by-side table of restarts with the same build.
fn print_table(outs: &[Outcome]) {
    println!("\n| strategy | restarts | requests | failed | refused | reset | EOF before response | timeout | non-2xx | req/s | p99 ms steady / windows | trigger → ready ms, median / p90 |");
    println!("|---|---|---|---|---|---|---|---|---|---|---|---|");
    for o in outs {
        let s = &o.summary;
        let k = |i: usize| {
            let [n, r] = s.fails[i];
            if r > 0 {
                format!("{} ({r} reused)", n + r)
            } else {
                n.to_string()
            }
        };
        let ready: Vec<f64> = o.run.handoffs.iter().filter_map(|h| h.ready_ms).collect();
        println!(
            "| {} | {} | {} | {} | {} | {} | {} | {} | {} | {:.0} | {:.2} / {:.2} | {} |",
            o.strategy.name,
            o.run.handoffs.len(),
            s.total,
            s.failed(),
            k(0),
            k(1),
            k(2),
            k(3),
            k(4),
            s.rate(),
            s.steady.p99,
            s.window.p99,
            mp(&ready)
        );
    }
}

/// A machine-readable `summary` line per strategy.
fn print_lines(outs: &[Outcome]) {
    for o in outs {
        println!(
            "summary strategy={} restarts={} errors={} requests={} failed={} slow_ok={}/{}",
            o.strategy.name,
            o.run.handoffs.len(),
            o.run.errors.len(),
            o.summary.total,
            o.summary.failed(),
            o.summary.slow.1,
            o.summary.slow.0
        );
    }
}

/// The `some` line of /proc/pressure/cpu: the share of time (%, over 10, 60, 300 s) in which
/// a runnable task waited for a CPU.
pub fn cpu_pressure() -> String {
    std::fs::read_to_string("/proc/pressure/cpu")
        .ok()
        .and_then(|s| {
            let some = s.lines().find(|l| l.starts_with("some"))?;
            let avgs: Vec<&str> = some
                .split_whitespace()
                .filter(|f| f.starts_with("avg"))
                .collect();
            Some(format!("CPU pressure % {}", avgs.join(" ")))
        })
        .unwrap_or_default()
}

/// The load average over 1, 5 and 15 minutes.
pub fn loadavg() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .map(|s| s.split_whitespace().take(3).collect::<Vec<_>>().join(" "))
        .unwrap_or_default()
}
