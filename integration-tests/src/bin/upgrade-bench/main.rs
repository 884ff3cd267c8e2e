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

const USAGE: &str = "\
usage: upgrade-bench [options]
  --upgrades N          restarts per strategy, spread evenly (10)
  --seconds S           load duration per strategy (30)
  --keepalive K         keep-alive client connections (56)
  --per-request M       connection-per-request clients (8)
  --slow N              slow requests fired before each restart (4; 0: none)
  --slow-path PATH      their path (/sleep?ms=2000)
  --slow-lead-ms MS     how long before a restart they are fired (500)
  --path PATH           path of the ordinary requests (/)
  --pause-ms MS         pause between two requests of one client (0)
  --think-ms MIN-MAX    instead: a random pause, uniform in MIN..MAX ms, before each request
  --timeout-ms MS       client connect/read/write timeout (5000; slow requests: + their time)
  --workers W           workers of the default servers (2)
  --strategies LIST     comma-separated: graceful,naive,reuseport,nginx (all; nginx is
                        skipped when not installed)
  --nginx PATH          the nginx binary (/usr/sbin/nginx)
  --drain-timeouts MS,... extra graceful runs with `--drain-timeout-ms MS` (default hello only)
  --port P              port on 127.0.0.1 (a free one)
  --cmd 'CMD ARGS'      the graceful server command; `{port}` is replaced. Default:
                        <hello> --listen 127.0.0.1:{port} --workers W
  --plain-cmd 'CMD'     the naive-restart and overhead baseline (default <hello-plain> ...;
                        with --cmd and no --plain-cmd: --cmd itself, overhead skipped)
  --reuseport-cmd 'CMD' the SO_REUSEPORT baseline (default <hello-plain> ... --reuseport;
                        with --cmd and no --reuseport-cmd: skipped)
  --ready-line TEXT     a new process serves once it prints a line containing TEXT (serving)
  --upgrade-signal SIG  USR2 (default), USR1 or HUP
  --overhead-rounds R   alternating graceful/plain steady runs (10; 0: skip)
  --overhead-seconds S  length of each (3)
  --idle-upgrades N     upgrades without load, for the idle handoff time (10; 0: skip)
  --svg-dir DIR         where the timelines (NAME.svg) and the servers' output (NAME.log)
                        go (target/upgrade-bench)
  --verbose             failure samples and every handoff
Commands are split at whitespace (no shell quoting); use a wrapper script that execs for more.";

fn usage(msg: &str) -> ! {
    eprintln!("upgrade-bench: {msg}\n{USAGE}");
    std::process::exit(2)
}

struct Args {
    upgrades: usize,
    seconds: f64,
    keepalive: usize,
    per_request: usize,
    slow: usize,
    slow_path: String,
    slow_lead_ms: u64,
    path: String,
    pause_ms: u64,
    pause_max_ms: u64,
    timeout_ms: u64,
    workers: usize,
    strategies: Vec<String>,
    nginx: PathBuf,
    drain_timeouts: Vec<u64>,
    port: u16,
    cmd: Option<String>,
    plain_cmd: Option<String>,
    reuseport_cmd: Option<String>,
    ready_line: String,
    upgrade_signal: Signal,
    overhead_rounds: usize,
    overhead_seconds: f64,
    idle_upgrades: usize,
    svg_dir: PathBuf,
    verbose: bool,
}

fn parse_args() -> Args {
    let mut a = Args {
        upgrades: 10,
        seconds: 30.0,
        keepalive: 56,
        per_request: 8,
        slow: 4,
        slow_path: "/sleep?ms=2000".into(),
        slow_lead_ms: 500,
        path: "/".into(),
        pause_ms: 0,
        pause_max_ms: 0,
        timeout_ms: 5000,
        workers: 2,
        strategies: ["graceful", "naive", "reuseport", "nginx"]
            .map(String::from)
            .to_vec(),
        nginx: PathBuf::from("/usr/sbin/nginx"),
        drain_timeouts: Vec::new(),
        port: 0,
        cmd: None,
        plain_cmd: None,
        reuseport_cmd: None,
        ready_line: "serving".into(),
        upgrade_signal: Signal::SIGUSR2,
        overhead_rounds: 10,
        overhead_seconds: 3.0,
        idle_upgrades: 10,
        svg_dir: PathBuf::from("target/upgrade-bench"),
        verbose: false,
    };
    let mut it = std::env::args().skip(1);
    while let Some(k) = it.next() {
        let mut v = || {
            it.next()
                .unwrap_or_else(|| usage(&format!("{k} needs a value")))
        };
        fn num<T: std::str::FromStr>(k: &str, v: String) -> T {
            v.parse()
                .unwrap_or_else(|_| usage(&format!("{k}: {v:?} is not a number")))
        }
        match k.as_str() {
            "--upgrades" => a.upgrades = num(&k, v()),
            "--seconds" => a.seconds = num(&k, v()),
            "--keepalive" => a.keepalive = num(&k, v()),
            "--per-request" => a.per_request = num(&k, v()),
            "--slow" => a.slow = num(&k, v()),
            "--slow-path" => a.slow_path = v(),
            "--slow-lead-ms" => a.slow_lead_ms = num(&k, v()),
            "--path" => a.path = v(),
            "--pause-ms" => {
                a.pause_ms = num(&k, v());
                a.pause_max_ms = a.pause_ms;
            }
            "--think-ms" => {
                let v = v();
                let (lo, hi) = v
                    .split_once('-')
                    .unwrap_or_else(|| usage(&format!("--think-ms: {v:?} is not MIN-MAX")));
                a.pause_ms = num(&k, lo.trim().to_owned());
                a.pause_max_ms = num(&k, hi.trim().to_owned());
                if a.pause_max_ms < a.pause_ms {
                    usage(&format!("--think-ms: {v:?}: MAX is below MIN"));
                }
            }
            "--timeout-ms" => a.timeout_ms = num(&k, v()),
            "--workers" => a.workers = num(&k, v()),
            "--strategies" => a.strategies = v().split(',').map(|s| s.trim().to_owned()).collect(),
            "--nginx" => a.nginx = PathBuf::from(v()),
            "--drain-timeouts" => {
                a.drain_timeouts = v()
                    .split(',')
                    .map(|ms| num(&k, ms.trim().to_owned()))
                    .collect()
            }
            "--port" => a.port = num(&k, v()),
            "--cmd" => a.cmd = Some(v()),
            "--plain-cmd" => a.plain_cmd = Some(v()),
            "--reuseport-cmd" => a.reuseport_cmd = Some(v()),
            "--ready-line" => a.ready_line = v(),
            "--upgrade-signal" => {
                a.upgrade_signal = match v().to_ascii_uppercase().trim_start_matches("SIG") {
                    "USR2" => Signal::SIGUSR2,
                    "USR1" => Signal::SIGUSR1,
                    "HUP" => Signal::SIGHUP,
                    other => usage(&format!("--upgrade-signal: {other:?}")),
                }
            }
            "--overhead-rounds" => a.overhead_rounds = num(&k, v()),
            "--overhead-seconds" => a.overhead_seconds = num(&k, v()),
            "--idle-upgrades" => a.idle_upgrades = num(&k, v()),
            "--svg-dir" => a.svg_dir = PathBuf::from(v()),
            "--verbose" | "-v" => a.verbose = true,
            "--help" | "-h" => {
                println!("{USAGE}");
                std::process::exit(0)
            }
            other => usage(&format!("unknown argument {other:?}")),
        }
    }
    for s in &a.strategies {
        if !["graceful", "naive", "reuseport", "nginx"].contains(&s.as_str()) {
            usage(&format!("unknown strategy {s:?}"));
        }
    }
    if a.upgrades > 10_000
        || !(a.seconds > 0.0 && a.seconds <= 3600.0)
        || a.keepalive + a.per_request == 0
        || a.keepalive + a.per_request > 1024
        || a.slow > 64
        || a.pause_max_ms > 10_000
        || a.timeout_ms == 0
        || a.timeout_ms > 600_000
        || a.overhead_rounds > 100
        || !(a.overhead_seconds > 0.5 && a.overhead_seconds <= 600.0)
        || a.idle_upgrades > 1000
    {
        usage("out of bounds: upgrades <= 10000, 0 < seconds <= 3600, 1 <= keepalive + per-request <= 1024, slow <= 64, 0 < timeout-ms <= 600000, 0.5 < overhead-seconds <= 600");
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
    let wants = |name: &str| a.strategies.iter().any(|s| s == name);
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
        pause: Duration::from_millis(a.pause_ms),
        pause_max: Duration::from_millis(a.pause_max_ms),
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
        if a.pause_max_ms > a.pause_ms { format!("{}-{} ms (random)", a.pause_ms, a.pause_max_ms) } else { format!("{} ms", a.pause_ms) },
        loadavg(), cpu_pressure()
    );
    if wants("graceful") && !graceful_cmd.contains("/release/") && !own_app {
        println!("note: not a release build of the servers ({graceful_cmd})");
    }

    let mut strategies = Vec::new();
    for name in &a.strategies {
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

    if a.idle_upgrades > 0 && a.strategies.iter().any(|s| s == "graceful") {
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
