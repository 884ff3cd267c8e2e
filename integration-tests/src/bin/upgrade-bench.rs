//! Side-by-side benchmark of restart strategies for the `hello` example under load.
//!
//! ```text
//! cargo build --release -p examples
//! cargo run --release -p integration-tests --bin upgrade-bench -- --upgrades 10 --seconds 20
//! ```
//!
//! Modes (all in one run, one after the other, same load):
//! - `A` actix-graceful: SIGUSR2 live upgrade with the library's default lame duck;
//! - `B` no lame duck: the same with `--lame-duck-ms 0` (pause, then actix's graceful stop);
//! - `C` naive restart: SIGTERM the old process, start a new one on the same port as fast
//!   as possible (retrying while the port is still taken).
//!
//! Load: `--keepalive` (32) keep-alive clients + `--per-request` (4) connection-per-request
//! loops against 127.0.0.1 only, for `--seconds` per mode, with the upgrades spread evenly.
//! Every process is killed and reaped at the end of each mode.

use integration_tests::hello::{self, parse_startup, upgrade, Hello, UpgradeOpts};
use integration_tests::http::FailKind;
use integration_tests::reaper::{self, Gone};
use integration_tests::{
    median_p90, procfs, signal, Load, LoadConfig, LoadReport, ServerFamily, Target,
};
use nix::sys::signal::Signal;
use std::path::PathBuf;
use std::process::Command;
use std::time::{Duration, Instant};

struct Args {
    upgrades: usize,
    seconds: f64,
    keepalive: usize,
    per_request: usize,
    workers: usize,
    modes: String,
    lame_ducks: Vec<u64>,
    pause_ms: u64,
    hello: PathBuf,
    verbose: bool,
}

fn usage() -> ! {
    eprintln!(
        "usage: upgrade-bench [--upgrades N (10)] [--seconds S per mode (20)] [--keepalive K (32)] \
         [--per-request M (4)] [--workers W (2)] [--modes ABC] [--lame-ducks MS,MS,... (extra A runs with these lame-duck periods)] [--pause-ms MS (pause between a client's requests, 0)] [--hello PATH] [--verbose]"
    );
    std::process::exit(2)
}

fn parse_args() -> Args {
    let mut a = Args {
        upgrades: 10,
        seconds: 20.0,
        keepalive: 32,
        per_request: 4,
        workers: 2,
        modes: "ABC".into(),
        lame_ducks: Vec::new(),
        pause_ms: 0,
        hello: PathBuf::new(),
        verbose: false,
    };
    let mut it = std::env::args().skip(1);
    while let Some(k) = it.next() {
        let mut v = || it.next().unwrap_or_else(|| usage());
        match k.as_str() {
            "--upgrades" => a.upgrades = v().parse().unwrap_or_else(|_| usage()),
            "--seconds" => a.seconds = v().parse().unwrap_or_else(|_| usage()),
            "--keepalive" => a.keepalive = v().parse().unwrap_or_else(|_| usage()),
            "--per-request" => a.per_request = v().parse().unwrap_or_else(|_| usage()),
            "--workers" => a.workers = v().parse().unwrap_or_else(|_| usage()),
            "--modes" => a.modes = v().to_ascii_uppercase(),
            "--pause-ms" => a.pause_ms = v().parse().unwrap_or_else(|_| usage()),
            "--lame-ducks" => {
                a.lame_ducks = v()
                    .split(',')
                    .map(|ms| ms.trim().parse().unwrap_or_else(|_| usage()))
                    .collect()
            }
            "--hello" => a.hello = PathBuf::from(v()),
            "--verbose" | "-v" => a.verbose = true,
            _ => usage(),
        }
    }
    if a.hello.as_os_str().is_empty() {
        // HELLO_BIN, else target/<profile>/hello, built first when run by cargo.
        a.hello = integration_tests::hello_bin();
    }
    if a.upgrades > 1000
        || a.seconds <= 0.0
        || a.seconds > 3600.0
        || a.keepalive + a.per_request > 512
        || a.pause_ms > 10_000
    {
        eprintln!("bounds: upgrades <= 1000, 0 < seconds <= 3600, keepalive + per-request <= 512");
        usage();
    }
    a
}

#[derive(Default)]
struct ModeResult {
    name: String,
    upgrades: usize,
    upgrade_errors: Vec<String>,
    report: LoadReport,
    /// A/B: ready after (ms) as logged by the library; C: SIGTERM -> new process serving.
    ready_ms: Vec<f64>,
    /// Signal -> old process reaped (ms).
    old_gone_ms: Vec<f64>,
    peak_rss_kb: u64,
}

fn main() {
    let args = parse_args();
    assert!(
        args.hello.is_file(),
        "{} not found: run `cargo build --release -p examples` first (or pass --hello)",
        args.hello.display()
    );
    if !args.hello.to_string_lossy().contains("/release/") {
        eprintln!(
            "note: {} does not look like a release build",
            args.hello.display()
        );
    }
    reaper::ensure();
    println!(
        "upgrade-bench: hello={} upgrades={} seconds/mode={} load={} keep-alive + {} per-request clients, workers={}",
        args.hello.display(),
        args.upgrades,
        args.seconds,
        args.keepalive,
        args.per_request,
        args.workers
    );
    let mut results = Vec::new();
    for m in args.modes.chars() {
        let r = match m {
            'A' => run_graceful(&args, "A actix-graceful", &[]),
            'B' => run_graceful(&args, "B no lame duck", &["--lame-duck-ms", "0"]),
            'C' => run_naive(&args),
            _ => usage(),
        };
        print_result_detail(&r, args.verbose);
        results.push(r);
    }
    for ms in &args.lame_ducks {
        let name = format!("A lame duck {ms} ms");
        let ms = ms.to_string();
        let r = run_graceful(&args, &name, &["--lame-duck-ms", ms.as_str()]);
        print_result_detail(&r, args.verbose);
        results.push(r);
    }
    print_table(&results);
}

fn load_config(args: &Args, target: Target) -> LoadConfig {
    LoadConfig {
        keepalive_clients: args.keepalive,
        per_request_loops: args.per_request,
        max_duration: Duration::from_secs_f64(args.seconds + 60.0),
        pause: Duration::from_millis(args.pause_ms),
        ..LoadConfig::heavy(target)
    }
}

fn schedule(args: &Args, i: usize) -> Duration {
    Duration::from_secs_f64(args.seconds * (i as f64 + 1.0) / (args.upgrades as f64 + 1.0))
}

fn run_graceful(args: &Args, name: &str, extra: &[&str]) -> ModeResult {
    let workers = args.workers.to_string();
    let mut hargs = vec!["--listen", "127.0.0.1:0", "--workers", workers.as_str()];
    hargs.extend_from_slice(extra);
    let h = Hello::start(&args.hello, &hargs);
    let load = Load::start(load_config(args, h.target.clone()).pids_into(h.family.pid_set()));
    let t0 = Instant::now();
    let mut res = ModeResult {
        name: name.to_owned(),
        ..Default::default()
    };
    let opts = UpgradeOpts {
        wait_old_exit: None,
        ..UpgradeOpts::default()
    };
    let mut cur = h.pid();
    let mut signalled = Vec::new();
    for i in 0..args.upgrades {
        let at = schedule(args, i);
        if let Some(d) = at.checked_sub(t0.elapsed()) {
            std::thread::sleep(d);
        }
        res.peak_rss_kb = res.peak_rss_kb.max(procfs::vm_hwm_kb(cur).unwrap_or(0));
        match upgrade(&h.family, &h.target, cur, &opts) {
            Ok(u) => {
                res.upgrades += 1;
                if let Some(ms) = u.ready_ms_logged {
                    res.ready_ms.push(ms);
                }
                signalled.push((u.old, u.signalled_at));
                cur = u.new;
            }
            Err(e) => {
                res.upgrade_errors.push(format!("upgrade {i}: {e}"));
                break;
            }
        }
    }
    if let Some(d) = Duration::from_secs_f64(args.seconds).checked_sub(t0.elapsed()) {
        std::thread::sleep(d);
    }
    res.peak_rss_kb = res.peak_rss_kb.max(procfs::vm_hwm_kb(cur).unwrap_or(0));
    res.report = load.stop();
    for (old, at) in signalled {
        match h.family.wait_gone(old, Duration::from_secs(40)) {
            Some(Gone::Reaped(_)) => {
                if let Some((_, when)) = reaper::reaped_at(old, at) {
                    res.old_gone_ms.push((when - at).as_secs_f64() * 1e3);
                }
            }
            other => res.upgrade_errors.push(format!("old {old}: {other:?}")),
        }
    }
    res
}

fn run_naive(args: &Args) -> ModeResult {
    let workers = args.workers.to_string();
    let start = |listen: &str| -> ServerFamily {
        let mut cmd = Command::new(&args.hello);
        cmd.args(["--listen", listen, "--workers", workers.as_str()]);
        ServerFamily::spawn("naive", cmd).expect("spawn hello")
    };
    let first = start("127.0.0.1:0");
    let st = hello::wait_startup(&first, 0, Duration::from_secs(20)).expect("startup line");
    let target = st.listeners[0].target();
    let listen = st.listeners[0].addr.clone();
    let mut families = vec![(first, st.pid)];
    let load = Load::start(load_config(args, target.clone()));
    let t0 = Instant::now();
    let mut res = ModeResult {
        name: "C naive restart".to_owned(),
        ..Default::default()
    };
    let mut signalled = Vec::new();
    'outer: for i in 0..args.upgrades {
        let at = schedule(args, i);
        if let Some(d) = at.checked_sub(t0.elapsed()) {
            std::thread::sleep(d);
        }
        let cur = families.last().unwrap().1;
        res.peak_rss_kb = res.peak_rss_kb.max(procfs::vm_hwm_kb(cur).unwrap_or(0));
        let ts = Instant::now();
        signal(cur, Signal::SIGTERM);
        signalled.push((families.len() - 1, cur, ts));
        // Start a new one as fast as possible; retry while the port is still taken.
        loop {
            if ts.elapsed() > Duration::from_secs(30) {
                res.upgrade_errors
                    .push(format!("restart {i}: no new server within 30 s"));
                break 'outer;
            }
            let fam = start(&listen);
            let pid = fam.root();
            let deadline = Instant::now() + Duration::from_secs(10);
            let started = loop {
                if fam
                    .stdout
                    .lines()
                    .iter()
                    .any(|l| parse_startup(l).is_some())
                {
                    break true;
                }
                if !procfs::exists(pid) || procfs::is_zombie(pid) || Instant::now() > deadline {
                    break false;
                }
                std::thread::sleep(Duration::from_micros(200));
            };
            if started {
                res.ready_ms.push(ts.elapsed().as_secs_f64() * 1e3);
                res.upgrades += 1;
                families.push((fam, pid));
                break;
            }
            drop(fam);
        }
    }
    if let Some(d) = Duration::from_secs_f64(args.seconds).checked_sub(t0.elapsed()) {
        std::thread::sleep(d);
    }
    res.report = load.stop();
    for (idx, pid, at) in signalled {
        match families[idx].0.wait_gone(pid, Duration::from_secs(40)) {
            Some(Gone::Reaped(_)) => {
                if let Some((_, when)) = reaper::reaped_at(pid, at) {
                    res.old_gone_ms.push((when - at).as_secs_f64() * 1e3);
                }
            }
            other => res.upgrade_errors.push(format!("old {pid}: {other:?}")),
        }
    }
    res
}

fn fmt_mp(v: &[f64]) -> String {
    match median_p90(v) {
        Some((m, p)) => format!("{m:.1}/{p:.1}"),
        None => "-".into(),
    }
}

fn print_result_detail(r: &ModeResult, verbose: bool) {
    println!("\n== {}: {} upgrades", r.name, r.upgrades);
    println!(
        "   load: {}",
        if verbose {
            r.report.summary()
        } else {
            r.report.summary().lines().next().unwrap_or("").to_string()
        }
    );
    for e in &r.upgrade_errors {
        println!("   error: {e}");
    }
}

fn print_table(rs: &[ModeResult]) {
    println!();
    println!(
        "{:<22} {:>4} {:>10} {:>7} {:>8} {:>6} {:>6} {:>7} {:>6} {:>6} {:>6} {:>16} {:>18} {:>9}",
        "mode",
        "upg",
        "requests",
        "failed",
        "refused",
        "reset",
        "eof",
        "timeout",
        "malf",
        "other",
        "non200",
        "ready ms med/p90",
        "old gone ms med/p90",
        "peak RSS"
    );
    for r in rs {
        let c = |k| r.report.count(k);
        println!(
            "{:<22} {:>4} {:>10} {:>7} {:>8} {:>6} {:>6} {:>7} {:>6} {:>6} {:>6} {:>16} {:>18} {:>7.1}MB",
            r.name,
            r.upgrades,
            r.report.total,
            r.report.failed(),
            c(FailKind::ConnectRefused),
            c(FailKind::Reset),
            c(FailKind::EofBeforeResponse),
            c(FailKind::Timeout),
            c(FailKind::Malformed),
            c(FailKind::Other),
            r.report.non_200,
            fmt_mp(&r.ready_ms),
            fmt_mp(&r.old_gone_ms),
            r.peak_rss_kb as f64 / 1024.0
        );
    }
    println!(
        "\nready: A/B = signal -> successor ready as logged by the library; C = SIGTERM -> new process printed its startup line.\n\
         old gone: signal -> old process reaped. peak RSS: max VmHWM of the server generations."
    );
}
