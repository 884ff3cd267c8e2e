//! `upgrade-bench`: restart strategies side by side under the same HTTP/1.1 load, every
//! request counted once, with a table and a timeline picture per strategy.
//!
//! ```text
//! cargo run --release -p integration-tests --bin upgrade-bench -- --upgrades 10 --seconds 30
//! ```
//!
//! Strategies (`--strategies`, all by default, one after the other in one run):
//! - `graceful`: actix-graceful's live upgrade (`hello`, SIGUSR2: the listeners are handed to
//!   the successor, the old process drains);
//! - `naive`: SIGTERM the old process, then start a new one on the port (`hello-plain`,
//!   plain actix `bind`), retrying while the port is still taken;
//! - `reuseport`: start the new process with SO_REUSEPORT next to the old one, and SIGTERM
//!   the old one once the new one serves (`hello-plain --reuseport`);
//! - `nginx`: nginx's binary upgrade, the peer a user would pick instead (nginx answers
//!   `pid=<worker pid>` itself from a config the bench writes; USR2 to the master, wait for
//!   the new master's workers, QUIT the old master). Skipped with a message without nginx.
//!
//! Load: `--keepalive` keep-alive clients + `--per-request` connection-per-request clients
//! (56 + 8 by default), each a thread driving the harness's raw HTTP/1.1 client, which never
//! retries; `--slow` requests to `/sleep?ms=2000` fired shortly before each restart. Every
//! request is recorded with its start, duration and outcome (2xx, or a named failure:
//! refused, reset, EOF before any response byte, timeout, non-2xx, malformed, other; on a
//! new or a reused keep-alive connection).
//!
//! Also measured: the steady-state throughput of `hello` (graceful_bind + LameDuck) against
//! `hello-plain` (plain actix), alternating runs (`--overhead-rounds`), and the handoff time
//! of upgrades without load (`--idle-upgrades`).
//!
//! Own app: `--cmd 'PATH ARGS... {port}' --port P` (see `--help` and the README).
//! Every process started is killed and reaped at the end of each phase, also on a panic.

mod loadgen;
mod stats;
mod strategy;
mod svg;

use loadgen::{Spec, FAIL_KINDS};
use nix::sys::signal::Signal;
use stats::{median_p90, Lat, Summary};
use std::path::PathBuf;
use std::time::Duration;
use strategy::{Kind, ProcSample, Run, RunCfg, Strategy};

/// Restart strategies side by side under the same HTTP/1.1 load, every request counted once.
///
/// Commands are split at whitespace (no shell quoting); use a wrapper script that execs for
/// more. Out-of-bounds values are errors (exit status 2), as a bad flag is.
#[derive(clap::Parser)]
#[command(name = "upgrade-bench", args_override_self = true)]
struct Args {
    /// Restarts per strategy, spread evenly (at most 10000)
    #[arg(long, value_name = "N", default_value_t = 10, value_parser = at_most(10_000usize))]
    upgrades: usize,
    /// Load duration per strategy (0 < S <= 3600)
    #[arg(long, value_name = "S", default_value_t = 30.0, value_parser = secs(0.0, 3600.0))]
    seconds: f64,
    /// Keep-alive client connections (keepalive + per-request: 1..=1024)
    #[arg(long, value_name = "K", default_value_t = 56)]
    keepalive: usize,
    /// Connection-per-request clients
    #[arg(long, value_name = "M", default_value_t = 8)]
    per_request: usize,
    /// Slow requests fired before each restart (0: none; at most 64)
    #[arg(long, value_name = "N", default_value_t = 4, value_parser = at_most(64usize))]
    slow: usize,
    /// Their path
    #[arg(long, value_name = "PATH", default_value = "/sleep?ms=2000")]
    slow_path: String,
    /// How long before a restart they are fired
    #[arg(long, value_name = "MS", default_value_t = 500)]
    slow_lead_ms: u64,
    /// Path of the ordinary requests
    #[arg(long, value_name = "PATH", default_value = "/")]
    path: String,
    /// Pause between two requests of one client (at most 10000)
    #[arg(long, value_name = "MS", default_value_t = 0, value_parser = at_most(10_000u64),
          conflicts_with = "think_ms")]
    pause_ms: u64,
    /// Instead: a random pause, uniform in MIN..MAX ms, before each request (MAX at most 10000)
    #[arg(long, value_name = "MIN-MAX", value_parser = think)]
    think_ms: Option<(u64, u64)>,
    /// Client connect/read/write timeout (1..=600000; slow requests: + their time)
    #[arg(long, value_name = "MS", default_value_t = 5000, value_parser = between(1, 600_000u64))]
    timeout_ms: u64,
    /// Workers of the default servers
    #[arg(long, value_name = "W", default_value_t = 2)]
    workers: usize,
    /// Comma-separated: graceful,naive,reuseport,nginx (nginx is skipped when not installed)
    #[arg(long, value_name = "LIST", default_value = "graceful,naive,reuseport,nginx",
          value_parser = strategies)]
    strategies: Strategies,
    /// The nginx binary
    #[arg(long, value_name = "PATH", default_value = "/usr/sbin/nginx")]
    nginx: PathBuf,
    /// Extra graceful runs with `--drain-timeout-ms MS` (default: hello's only)
    #[arg(long, value_name = "MS,...", value_delimiter = ',', value_parser = trimmed::<u64>)]
    drain_timeouts: Vec<u64>,
    /// Port on 127.0.0.1 (0: a free one)
    #[arg(long, value_name = "P", default_value_t = 0)]
    port: u16,
    /// The graceful server command; `{port}` is replaced. Default:
    /// <hello> --listen 127.0.0.1:{port} --workers W
    #[arg(long, value_name = "CMD ARGS")]
    cmd: Option<String>,
    /// The naive-restart and overhead baseline (default <hello-plain> ...; with --cmd and no
    /// --plain-cmd: --cmd itself, overhead skipped)
    #[arg(long, value_name = "CMD")]
    plain_cmd: Option<String>,
    /// The SO_REUSEPORT baseline (default <hello-plain> ... --reuseport; with --cmd and no
    /// --reuseport-cmd: skipped)
    #[arg(long, value_name = "CMD")]
    reuseport_cmd: Option<String>,
    /// A new process serves once it prints a line containing TEXT
    #[arg(long, value_name = "TEXT", default_value = "serving")]
    ready_line: String,
    /// The signal that upgrades (`SIG` prefix and any case accepted)
    #[arg(long, value_name = "SIG", default_value = "USR2", value_parser = signal)]
    upgrade_signal: Signal,
    /// Alternating graceful/plain steady runs (0: skip; at most 100)
    #[arg(long, value_name = "R", default_value_t = 10, value_parser = at_most(100usize))]
    overhead_rounds: usize,
    /// Length of each (0.5 < S <= 600)
    #[arg(long, value_name = "S", default_value_t = 3.0, value_parser = secs(0.5, 600.0))]
    overhead_seconds: f64,
    /// Upgrades without load, for the idle handoff time (0: skip; at most 1000)
    #[arg(long, value_name = "N", default_value_t = 10, value_parser = at_most(1000usize))]
    idle_upgrades: usize,
    /// Where the timelines (NAME.svg) and the servers' output (NAME.log) go
    #[arg(long, value_name = "DIR", default_value = "target/upgrade-bench")]
    svg_dir: PathBuf,
    /// Failure samples and every handoff
    #[arg(long, short)]
    verbose: bool,
}

/// The chosen strategies, in order.
#[derive(Clone)]
struct Strategies(Vec<String>);

/// `v`, trimmed, as a `T`.
fn trimmed<T: std::str::FromStr>(v: &str) -> Result<T, String>
where
    T::Err: std::fmt::Display,
{
    v.trim().parse().map_err(|e| format!("{e}"))
}

/// A number from `lo` to `hi`, both included.
fn between<T>(lo: T, hi: T) -> impl Fn(&str) -> Result<T, String> + Clone + Send + Sync + 'static
where
    T: std::str::FromStr + PartialOrd + std::fmt::Display + Copy + Send + Sync + 'static,
    T::Err: std::fmt::Display,
{
    move |v| match trimmed::<T>(v)? {
        n if lo <= n && n <= hi => Ok(n),
        n => Err(format!("{n} is not in {lo}..={hi}")),
    }
}

/// A count of at most `max`.
fn at_most<T>(max: T) -> impl Fn(&str) -> Result<T, String> + Clone + Send + Sync + 'static
where
    T: std::str::FromStr + PartialOrd + std::fmt::Display + Copy + Default + Send + Sync + 'static,
    T::Err: std::fmt::Display,
{
    between(T::default(), max)
}

/// Seconds, more than `lo`, at most `hi` (NaN is neither).
fn secs(lo: f64, hi: f64) -> impl Fn(&str) -> Result<f64, String> + Clone + Send + Sync + 'static {
    move |v| match trimmed::<f64>(v)? {
        s if s > lo && s <= hi => Ok(s),
        s => Err(format!("{s} is not more than {lo} and at most {hi}")),
    }
}

/// `MIN-MAX` milliseconds, MIN <= MAX <= 10000.
fn think(v: &str) -> Result<(u64, u64), String> {
    let (lo, hi) = v.split_once('-').ok_or("not MIN-MAX")?;
    let (lo, hi) = (trimmed::<u64>(lo)?, at_most(10_000u64)(hi)?);
    if hi < lo {
        return Err("MAX is below MIN".into());
    }
    Ok((lo, hi))
}

fn strategies(v: &str) -> Result<Strategies, String> {
    let names: Vec<String> = v.split(',').map(|s| s.trim().to_owned()).collect();
    match names
        .iter()
        .find(|s| !["graceful", "naive", "reuseport", "nginx"].contains(&s.as_str()))
    {
        Some(s) => Err(format!(
            "unknown strategy {s:?} (graceful, naive, reuseport, nginx)"
        )),
        None => Ok(Strategies(names)),
    }
}

fn signal(v: &str) -> Result<Signal, String> {
    match v.to_ascii_uppercase().trim_start_matches("SIG") {
        "USR2" => Ok(Signal::SIGUSR2),
        "USR1" => Ok(Signal::SIGUSR1),
        "HUP" => Ok(Signal::SIGHUP),
        _ => Err("not USR2, USR1 or HUP".into()),
    }
}

fn parse_args() -> Args {
    use clap::{CommandFactory as _, Parser as _};
    let mut a = Args::parse();
    let clients = a.keepalive + a.per_request;
    if !(1..=1024).contains(&clients) {
        Args::command()
            .error(
                clap::error::ErrorKind::ValueValidation,
                format!(
                    "--keepalive {} + --per-request {} = {clients} clients: not in 1..=1024",
                    a.keepalive, a.per_request
                ),
            )
            .exit();
    }
    if a.port == 0 {
        a.port = integration_tests::free_port();
    }
    a
}

/// The failure line and exit status 2 for something a chosen strategy needs.
fn missing(what: &str) -> ! {
    eprintln!("upgrade-bench: {what}");
    std::process::exit(2)
}

/// nginx serving what `hello` serves (`pid=<pid>` and `X-Pid`, the worker's pid), on
/// 127.0.0.1:`port`, as a daemon (it ignores USR2 in the foreground) with everything under
/// `dir`. Slow requests are answered at once: nginx has no sleep of its own.
fn nginx_config(dir: &std::path::Path, port: u16, workers: usize) -> String {
    let d = dir.display();
    format!(
        "daemon on;\nmaster_process on;\nworker_processes {workers};\npid {d}/nginx.pid;\n\
         error_log {d}/error.log notice;\nevents {{ worker_connections 4096; }}\n\
         http {{\n  access_log off;\n  default_type text/plain;\n  keepalive_timeout 5s;\n  \
         client_body_temp_path {d}/body;\n  proxy_temp_path {d}/proxy;\n  \
         fastcgi_temp_path {d}/fastcgi;\n  uwsgi_temp_path {d}/uwsgi;\n  scgi_temp_path {d}/scgi;\n  \
         server {{\n    listen 127.0.0.1:{port};\n    location / {{\n      \
         add_header X-Pid $pid always;\n      return 200 \"pid=$pid\\n\";\n    }}\n  }}\n}}\n"
    )
}

/// `template` split at whitespace, `{port}` replaced.
fn command(template: &str, port: u16) -> Vec<String> {
    template
        .split_whitespace()
        .map(|w| w.replace("{port}", &port.to_string()))
        .collect()
}

/// Milliseconds of `v`'s median / p90, or `-`.
fn mp(v: &[f64]) -> String {
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

fn lat_row(name: &str, l: &Lat) -> String {
    format!(
        "  {name:<22} {:>8.2} {:>8.2} {:>9.1}   (n={})",
        l.p50, l.p99, l.max, l.n
    )
}

/// What one strategy's run came to.
struct Outcome {
    strategy: Strategy,
    summary: Summary,
    run: Run,
    svg: Option<PathBuf>,
}

fn print_strategy(o: &Outcome, verbose: bool) {
    let s = &o.summary;
    let r = &o.run;
    println!(
        "\n== {} ({}): {}",
        o.strategy.name,
        match o.strategy.kind {
            Kind::Graceful => "live upgrade by signal, listeners handed over",
            Kind::Naive => "SIGTERM, then start a new process",
            Kind::ReusePort => "new process with SO_REUSEPORT, then SIGTERM the old",
            Kind::Nginx => "nginx binary upgrade: USR2, new master's workers up, QUIT the old",
        },
        o.strategy.cmd.join(" ")
    );
    println!("  restarts               {}", r.handoffs.len());
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
    let ready: Vec<f64> = r.handoffs.iter().filter_map(|h| h.ready_ms).collect();
    let gone: Vec<f64> = r.handoffs.iter().filter_map(|h| h.gone_ms).collect();
    let max = |v: &[f64]| v.iter().copied().fold(f64::NAN, f64::max);
    println!(
        "  trigger → ready ms     {} median / p90, max {:.1}  ({})",
        mp(&ready),
        max(&ready),
        match o.strategy.kind {
            Kind::Graceful => "the library's log: signal handled → successor's ready byte",
            Kind::Nginx => "USR2 → the new master runs its workers",
            _ => "trigger → the new process's ready line",
        }
    );
    let exited: Vec<f64> = r.handoffs.iter().filter_map(|h| h.exited_ms).collect();
    println!(
        "  trigger → old exited   {} median / p90, max {:.1} ms (zombie or gone, /proc polled every 2 ms)",
        mp(&exited),
        max(&exited)
    );
    let drained: Vec<f64> = r
        .handoffs
        .iter()
        .filter_map(|h| Some(h.exited_ms? - h.ready_ms?))
        .collect();
    println!(
        "  old process lifetime   trigger → exited {}; ready → exited (the drain) {} ms",
        dist(&exited),
        dist(&drained)
    );
    println!(
        "  generations alive      {}",
        stats::alive_shares(&r.handoffs, s.seconds)
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
    print_successor_cpu(&r.handoffs);
    print_samples(&r.samples);
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
}

/// Where the handoff time went (graceful only).
fn print_successor_cpu(h: &[strategy::Handoff]) {
    let v: Vec<strategy::Sched> = h.iter().filter_map(|h| h.sched.clone()).collect();
    if v.is_empty() {
        return;
    }
    let col = |f: fn(&strategy::Sched) -> f64| mp(&v.iter().map(f).collect::<Vec<_>>());
    println!(
        "  where it went, ms      successor on a CPU {}, successor waiting for a CPU {}, predecessor waiting for a CPU {} (median / p90; /proc/PID/task/*/schedstat); successor's major page faults {}",
        col(|s| s.successor_cpu),
        col(|s| s.successor_wait),
        col(|s| s.predecessor_wait),
        col(|s| s.major_faults.map_or(f64::NAN, |n| n as f64))
    );
    // The slow ones, one by one.
    let mut slow: Vec<&strategy::Handoff> = h
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
fn print_overview(outs: &[Outcome]) {
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
fn cpu_pressure() -> String {
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

fn loadavg() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .map(|s| s.split_whitespace().take(3).collect::<Vec<_>>().join(" "))
        .unwrap_or_default()
}

fn main() {
    let a = parse_args();
    let (pause_ms, pause_max_ms) = a.think_ms.unwrap_or((a.pause_ms, a.pause_ms));
    integration_tests::reaper::ensure();
    let target = integration_tests::Target::Tcp(([127, 0, 0, 1], a.port).into());
    let own_app = a.cmd.is_some();
    let workers = a.workers.to_string();
    let default_cmd = |bin: PathBuf, extra: &str| {
        format!(
            "{} --listen 127.0.0.1:{{port}} --workers {workers}{extra}",
            bin.display()
        )
    };
    // Each binary is looked for only when a chosen strategy needs it; a missing one is one
    // line with the command that builds it, and exit status 2.
    let wants = |name: &str| a.strategies.0.iter().any(|s| s == name);
    let graceful_cmd = match &a.cmd {
        Some(c) => c.clone(),
        None if wants("graceful") => default_cmd(
            integration_tests::bins::find("hello", "HELLO_BIN").unwrap_or_else(|e| missing(&e)),
            "",
        ),
        None => String::new(),
    };
    let hello_plain = || integration_tests::bins::find("hello-plain", "HELLO_PLAIN_BIN");
    // A baseline: the command given, else hello-plain unless the user runs their own app.
    let baseline = |given: &Option<String>, extra: &str, needed: bool| match (given, own_app) {
        (Some(c), _) => Some(c.clone()),
        (None, true) => None,
        (None, false) if needed => Some(default_cmd(
            hello_plain().unwrap_or_else(|e| missing(&e)),
            extra,
        )),
        (None, false) => None,
    };
    let plain_cmd = baseline(&a.plain_cmd, "", wants("naive"));
    let reuseport_cmd = baseline(&a.reuseport_cmd, " --reuseport", wants("reuseport"));
    // The overhead comparison is not a strategy: without hello-plain it is skipped.
    let overhead_plain = match (
        &plain_cmd,
        own_app,
        a.overhead_rounds > 0 && wants("graceful"),
    ) {
        (_, _, false) => None,
        (Some(c), _, true) => Some(c.clone()),
        (None, true, true) => None,
        (None, false, true) => match hello_plain() {
            Ok(p) => Some(default_cmd(p, "")),
            Err(e) => {
                println!("note: overhead comparison skipped: {e}");
                None
            }
        },
    };
    let load = Spec {
        target: target.clone(),
        keepalive: a.keepalive,
        per_request: a.per_request,
        path: a.path.clone(),
        pause: Duration::from_millis(pause_ms),
        pause_max: Duration::from_millis(pause_max_ms),
        timeout: Duration::from_millis(a.timeout_ms),
        max_duration: Duration::from_secs_f64(a.seconds + 60.0),
    };
    let slow_ms: u64 = a
        .slow_path
        .split("ms=")
        .nth(1)
        .and_then(|v| v.split('&').next()?.parse().ok())
        .unwrap_or(0);
    let cfg = RunCfg {
        upgrades: a.upgrades,
        seconds: a.seconds,
        load: load.clone(),
        slow: a.slow,
        slow_path: a.slow_path.clone(),
        slow_timeout: Duration::from_millis(a.timeout_ms + slow_ms),
        slow_lead: Duration::from_millis(a.slow_lead_ms),
        ready_line: a.ready_line.clone(),
        upgrade_signal: a.upgrade_signal,
        step_timeout: Duration::from_secs(30),
    };
    println!(
        "upgrade-bench: port {} | {} restarts in {} s per strategy | {} keep-alive + {} per-request clients, {} slow requests ({}) {} ms before each restart | pause {} | load average {}, {}",
        a.port, a.upgrades, a.seconds, a.keepalive, a.per_request, a.slow, a.slow_path, a.slow_lead_ms,
        if pause_max_ms > pause_ms { format!("{pause_ms}-{pause_max_ms} ms (random)") } else { format!("{pause_ms} ms") },
        loadavg(), cpu_pressure()
    );
    if wants("graceful") && !graceful_cmd.contains("/release/") && !own_app {
        println!("note: not a release build of the servers ({graceful_cmd})");
    }

    let mut strategies = Vec::new();
    for name in &a.strategies.0 {
        if name == "nginx" {
            if !a.nginx.is_file() {
                println!(
                    "note: nginx skipped: {} not found (Debian: apt-get install nginx-light; \
                     or --nginx PATH)",
                    a.nginx.display()
                );
                continue;
            }
            let dir = std::env::current_dir()
                .unwrap_or_default()
                .join(&a.svg_dir)
                .join("nginx");
            let conf = dir.join("nginx.conf");
            if let Err(e) = std::fs::create_dir_all(&dir)
                .and_then(|()| std::fs::write(&conf, nginx_config(&dir, a.port, a.workers)))
            {
                missing(&format!("cannot write {}: {e}", conf.display()));
            }
            let (d, c, e) = (dir.display(), conf.display(), dir.join("error.log"));
            strategies.push(Strategy {
                name: name.clone(),
                kind: Kind::Nginx,
                nginx: Some(strategy::NginxRun {
                    pid_file: dir.join("nginx.pid"),
                }),
                cmd: command(
                    &format!("{} -p {d} -e {} -c {c}", a.nginx.display(), e.display()),
                    a.port,
                ),
            });
            continue;
        }
        let (kind, template) = match name.as_str() {
            "graceful" => (Kind::Graceful, Some(graceful_cmd.clone())),
            "naive" => (
                Kind::Naive,
                plain_cmd.clone().or_else(|| Some(graceful_cmd.clone())),
            ),
            _ => (Kind::ReusePort, reuseport_cmd.clone()),
        };
        match template {
            Some(t) => strategies.push(Strategy {
                name: name.clone(),
                kind,
                nginx: None,
                cmd: command(&t, a.port),
            }),
            None => println!("note: {name} skipped (give --reuseport-cmd)"),
        }
        if kind == Kind::Graceful {
            for ms in &a.drain_timeouts {
                strategies.push(Strategy {
                    name: format!("graceful-drain-timeout-{ms}ms"),
                    kind,
                    nginx: None,
                    cmd: command(&format!("{graceful_cmd} --drain-timeout-ms {ms}"), a.port),
                });
            }
        }
    }

    let mut outs = Vec::new();
    for s in strategies {
        let run = match strategy::run(&s, &target, &cfg) {
            Ok(r) => r,
            Err(e) => {
                println!("\n== {}: could not run: {e}", s.name);
                continue;
            }
        };
        let triggers: Vec<f64> = run.handoffs.iter().map(|h| h.at).collect();
        let secs = run.recorded.elapsed.as_secs_f64();
        let summary = stats::summarize(&run.recorded.recs, &triggers, secs);
        let (ok, fails) = stats::timeline(&run.recorded.recs, secs);
        let picture = svg::timeline(
            &format!("{}: {}", s.name, s.cmd.first().map(|p| p.rsplit('/').next().unwrap_or(p)).unwrap_or("")),
            &format!(
                "{} restarts, {} requests, {} failed, {} keep-alive + {} per-request clients + {} slow before each restart",
                run.handoffs.len(),
                summary.total,
                summary.failed(),
                a.keepalive,
                a.per_request,
                a.slow
            ),
            &ok,
            &fails,
            &triggers,
        );
        let path = a.svg_dir.join(format!("{}.svg", s.name));
        let svg = match std::fs::create_dir_all(&a.svg_dir)
            .and_then(|()| std::fs::write(&path, picture))
        {
            Ok(()) => Some(path),
            Err(e) => {
                println!("cannot write {}: {e}", path.display());
                None
            }
        };
        let log_path = a.svg_dir.join(format!("{}.log", s.name));
        if let Err(e) = std::fs::write(&log_path, run.log.join("\n") + "\n") {
            println!("cannot write {}: {e}", log_path.display());
        }
        let o = Outcome {
            strategy: s,
            summary,
            run,
            svg,
        };
        print_strategy(&o, a.verbose);
        // The records are big; keep only what the overview needs.
        outs.push(Outcome {
            run: Run {
                recorded: loadgen::Recorded {
                    recs: Vec::new(),
                    ..o.run.recorded
                },
                log: Vec::new(),
                ..o.run
            },
            ..o
        });
    }

    if a.idle_upgrades > 0 && a.strategies.0.iter().any(|s| s == "graceful") {
        match strategy::idle_handoffs(
            &command(&graceful_cmd, a.port),
            a.idle_upgrades,
            Duration::from_millis(300),
            &cfg,
        ) {
            Ok(h) => {
                let v: Vec<f64> = h.iter().filter_map(|h| h.ready_ms).collect();
                println!(
                    "\nidle handoff (no load, {} upgrades 300 ms apart): trigger → ready ms {} median / p90, min {:.1} (load average {}, {})",
                    v.len(),
                    mp(&v),
                    v.iter().copied().fold(f64::INFINITY, f64::min),
                    loadavg(),
                    cpu_pressure()
                );
                print_successor_cpu(&h);
            }
            Err(e) => println!("\nidle handoff: {e}"),
        }
    }

    if let Some(plain) = &overhead_plain {
        overhead(
            &a,
            &command(&graceful_cmd, a.port),
            &command(plain, a.port),
            &target,
            &load,
        );
    }

    print_overview(&outs);
}

/// Steady-state throughput and server CPU per request, graceful vs plain, alternating which
/// goes first.
fn overhead(
    a: &Args,
    graceful: &[String],
    plain: &[String],
    target: &integration_tests::Target,
    load: &Spec,
) {
    let (mut rate_ratios, mut cpu_ratios) = (Vec::new(), Vec::new());
    let (mut g_all, mut p_all) = (Vec::new(), Vec::new());
    for round in 0..a.overhead_rounds {
        let order: [(&[String], bool); 2] = if round % 2 == 0 {
            [(graceful, true), (plain, false)]
        } else {
            [(plain, false), (graceful, true)]
        };
        let (mut g, mut p) = (None, None);
        for (cmd, is_graceful) in order {
            match strategy::steady(cmd, target, load, &a.ready_line, a.overhead_seconds) {
                Ok(r) if is_graceful => g = Some(r),
                Ok(r) => p = Some(r),
                Err(e) => {
                    println!("\noverhead: {e}");
                    return;
                }
            }
        }
        if let (Some(g), Some(p)) = (g, p) {
            rate_ratios.push(g.rate / p.rate);
            cpu_ratios.push(p.cpu_us / g.cpu_us);
            g_all.push(g);
            p_all.push(p);
        }
    }
    let med = |v: &[f64]| median_p90(v).map(|x| x.0).unwrap_or(f64::NAN);
    let list = |v: &[f64]| {
        v.iter()
            .map(|r| format!("{r:.3}"))
            .collect::<Vec<_>>()
            .join(" ")
    };
    let rate = |v: &[strategy::Steady]| med(&v.iter().map(|s| s.rate).collect::<Vec<_>>());
    let cpu = |v: &[strategy::Steady]| med(&v.iter().map(|s| s.cpu_us).collect::<Vec<_>>());
    println!(
        "\nsteady-state overhead ({} alternating rounds of {} s each, no restarts; medians):\n  \
         throughput: graceful {:.0} ok/s, plain {:.0} ok/s; ratio graceful/plain per round {} → median {:.3}\n  \
         server CPU per request: graceful {:.2} µs, plain {:.2} µs; ratio plain/graceful per round {} → median {:.3}",
        rate_ratios.len(),
        a.overhead_seconds,
        rate(&g_all),
        rate(&p_all),
        list(&rate_ratios),
        med(&rate_ratios),
        cpu(&g_all),
        cpu(&p_all),
        list(&cpu_ratios),
        med(&cpu_ratios),
    );
}
