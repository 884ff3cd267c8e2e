//! `upgrade-bench`: restart strategies side by side under the same HTTP/1.1 load, every
//! request counted once, with a table and a timeline picture per strategy.
//!
//! ```text
//! cargo run --release -p upgrade-bench -- --upgrades 10 --seconds 30
//! ```
//!
//! Strategies (`--strategies`, one after the other in one run; all but `keeper` by default):
//! - `graceful`: actix-graceful's live upgrade (`hello`, SIGUSR2: the listeners are handed to
//!   the successor, the old process drains);
//! - `keeper`: the same in keeper mode (`hello --keeper`: the upgrade signal goes to the
//!   keeper, which starts a new generation);
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
//! `--bad-build KIND`: every restart deploys a bad build instead of the same one (all five
//! strategies by default): a crash a set time after it serves, an unhealthy build, or one that
//! answers an error status (`badbuild`, `badrun`); the table gives the failed requests by
//! kind, the longest time without a successful request, what serves at the end, and
//! actix-graceful's take-back time (`badreport`).
//!
//! Also measured: the steady-state throughput of `hello` (graceful_bind + LameDuck) against
//! `hello-plain` (plain actix), alternating runs (`--overhead-rounds`); the handoff time of
//! upgrades without load (`--idle-upgrades`); the old process's CPU and RSS through its drain
//! and probation with idle keep-alive connections (`--fallback-cost`, `fallback`); the last two
//! for several builds side by side with `--compare NAME=CMD` (`compare`).
//!
//! Own app: `--cmd 'PATH ARGS... {port}' --port P` (see `--help` and the README).
//! Every process started is killed and reaped at the end of each phase, also on a panic.

mod badbuild;
mod badreport;
mod badrun;
mod cli;
mod compare;
mod fallback;
mod loadgen;
mod nginx;
mod plan;
mod procinfo;
mod report;
mod stats;
mod strategy;
mod svg;

use cli::Args;
use integration_tests::Target;
use loadgen::Spec;
use plan::{command, Commands};
use report::{cpu_pressure, loadavg, Outcome};
use stats::median_p90;
use std::path::PathBuf;
use std::time::Duration;
use strategy::{RunCfg, Strategy};

fn main() {
    let a = cli::parse_args();
    if let Some(ms) = a.probation_ms {
        // Before any thread: every server the bench starts gets it (strategy::spawn).
        std::env::set_var(integration_tests::family::PROBATION_VAR, format!("{ms}ms"));
    }
    integration_tests::reaper::ensure();
    let target = Target::Tcp(([127, 0, 0, 1], a.port).into());
    let cmds = Commands::new(&a);
    let cfg = run_cfg(&a, &target);
    print_header(&a, &cmds);
    let outs: Vec<Outcome> = plan::strategies(&a, &cmds)
        .into_iter()
        .filter_map(|s| run_strategy(s, &a, &target, &cfg))
        .collect();
    let subjects = compare::subjects(&a, &cmds.graceful);
    if a.idle_upgrades > 0 && !subjects.is_empty() {
        compare::idle_handoffs(&subjects, a.idle_upgrades, &cfg);
    }
    if a.fallback_cost > 0 && !subjects.is_empty() {
        fallback::run(&subjects, a.fallback_cost, &target, &cfg);
    }
    if let Some(plain) = &cmds.overhead_plain {
        overhead(
            &a,
            &command(&cmds.graceful, a.port),
            &command(plain, a.port),
            &target,
            &cfg.load,
        );
    }
    report::print_overview(&outs);
}

/// `--pause-ms`, or `--think-ms`' range: the pause before each request, from MIN to MAX ms.
fn pauses(a: &Args) -> (u64, u64) {
    a.think_ms.unwrap_or((a.pause_ms, a.pause_ms))
}

/// The load and the restarts of every strategy's run.
fn run_cfg(a: &Args, target: &Target) -> RunCfg {
    let (pause_ms, pause_max_ms) = pauses(a);
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
    // A slow request's client timeout: the usual one plus the time it asks the server for.
    let slow_ms: u64 = a
        .slow_path
        .split("ms=")
        .nth(1)
        .and_then(|v| v.split('&').next()?.parse().ok())
        .unwrap_or(0);
    RunCfg {
        upgrades: a.upgrades,
        seconds: a.seconds,
        load,
        slow: a.slow,
        slow_path: a.slow_path.clone(),
        slow_timeout: Duration::from_millis(a.timeout_ms + slow_ms),
        slow_lead: Duration::from_millis(a.slow_lead_ms),
        ready_line: a.ready_line.clone(),
        upgrade_signal: a.upgrade_signal,
        step_timeout: Duration::from_secs(30),
        bad: a.bad_build,
    }
}

/// The run's parameters and the machine's load, in one line.
fn print_header(a: &Args, cmds: &Commands) {
    let (pause_ms, pause_max_ms) = pauses(a);
    println!(
        "upgrade-bench: port {} | {} restarts in {} s per strategy | {} keep-alive + {} per-request clients, {} slow requests ({}) {} ms before each restart | pause {} | load average {}, {}",
        a.port, a.upgrades, a.seconds, a.keepalive, a.per_request, a.slow, a.slow_path, a.slow_lead_ms,
        if pause_max_ms > pause_ms { format!("{pause_ms}-{pause_max_ms} ms (random)") } else { format!("{pause_ms} ms") },
        loadavg(), cpu_pressure()
    );
    if let Some(bad) = a.bad_build {
        println!(
            "bad build: every restart deploys a build that {} | probation {}",
            bad.describe(),
            a.probation_ms
                .map_or("the library's default".into(), |ms| format!("{ms} ms"))
        );
    }
    if !cmds.graceful.is_empty() && !cmds.graceful.contains("/release/") && a.cmd.is_none() {
        println!(
            "note: not a release build of the servers ({})",
            cmds.graceful
        );
    }
}

/// Runs `s` under load, writes its timeline and the servers' output, prints its table;
/// `None` (with a line saying why) when it could not run.
fn run_strategy(s: Strategy, a: &Args, target: &Target, cfg: &RunCfg) -> Option<Outcome> {
    let run = match strategy::run(&s, target, cfg) {
        Ok(r) => r,
        Err(e) => {
            println!("\n== {}: could not run: {e}", s.name);
            return None;
        }
    };
    let triggers: Vec<f64> = run.handoffs.iter().map(|h| h.at).collect();
    let secs = run.recorded.elapsed.as_secs_f64();
    let summary = stats::summarize(&run.recorded.recs, &triggers, secs);
    let outage = run
        .end
        .is_some()
        .then(|| badrun::outage(&run.recorded.recs, secs));
    let o = Outcome {
        svg: write_timeline(&s, &run, &summary, &triggers, a),
        strategy: s,
        summary,
        run,
        outage,
    };
    let log_path = a.svg_dir.join(format!("{}.log", o.strategy.name));
    if let Err(e) = std::fs::write(&log_path, o.run.log.join("\n") + "\n") {
        println!("cannot write {}: {e}", log_path.display());
    }
    report::print_strategy(&o, a.verbose);
    Some(o.without_records())
}

/// The timeline picture of a run, `--svg-dir/NAME.svg`; `None` (with a line) if it cannot be
/// written.
fn write_timeline(
    s: &Strategy,
    run: &strategy::Run,
    summary: &stats::Summary,
    triggers: &[f64],
    a: &Args,
) -> Option<PathBuf> {
    let (ok, fails) = stats::timeline(&run.recorded.recs, run.recorded.elapsed.as_secs_f64());
    let program = s.cmd.first().map(|p| p.rsplit('/').next().unwrap_or(p));
    let picture = svg::timeline(
        &format!("{}: {}", s.name, program.unwrap_or("")),
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
        triggers,
    );
    let path = a.svg_dir.join(format!("{}.svg", s.name));
    match std::fs::create_dir_all(&a.svg_dir).and_then(|()| std::fs::write(&path, picture)) {
        Ok(()) => Some(path),
        Err(e) => {
            println!("cannot write {}: {e}", path.display());
            None
        }
    }
}

/// Steady-state throughput and server CPU per request, graceful vs plain, alternating which
/// goes first.
fn overhead(a: &Args, graceful: &[String], plain: &[String], target: &Target, load: &Spec) {
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
