//! The flags (clap): every option with its default and bounds; an out-of-bounds value is an
//! error naming the flag (exit status 2), as a bad flag is.

use nix::sys::signal::Signal;
use std::path::PathBuf;

/// Restart strategies side by side under the same HTTP/1.1 load, every request counted once.
///
/// Commands are split at whitespace (no shell quoting); use a wrapper script that execs for
/// more. Out-of-bounds values are errors (exit status 2), as a bad flag is.
#[derive(clap::Parser)]
#[command(name = "upgrade-bench", args_override_self = true)]
pub struct Args {
    /// Restarts per strategy, spread evenly (at most 10000)
    #[arg(long, value_name = "N", default_value_t = 10, value_parser = at_most(10_000usize))]
    pub upgrades: usize,
    /// Load duration per strategy (0 < S <= 3600)
    #[arg(long, value_name = "S", default_value_t = 30.0, value_parser = secs(0.0, 3600.0))]
    pub seconds: f64,
    /// Keep-alive client connections (keepalive + per-request: 1..=1024)
    #[arg(long, value_name = "K", default_value_t = 56)]
    pub keepalive: usize,
    /// Connection-per-request clients
    #[arg(long, value_name = "M", default_value_t = 8)]
    pub per_request: usize,
    /// Slow requests fired before each restart (0: none; at most 64)
    #[arg(long, value_name = "N", default_value_t = 4, value_parser = at_most(64usize))]
    pub slow: usize,
    /// Their path
    #[arg(long, value_name = "PATH", default_value = "/sleep?ms=2000")]
    pub slow_path: String,
    /// How long before a restart they are fired
    #[arg(long, value_name = "MS", default_value_t = 500)]
    pub slow_lead_ms: u64,
    /// Path of the ordinary requests
    #[arg(long, value_name = "PATH", default_value = "/")]
    pub path: String,
    /// Pause between two requests of one client (at most 10000)
    #[arg(long, value_name = "MS", default_value_t = 0, value_parser = at_most(10_000u64),
          conflicts_with = "think_ms")]
    pub pause_ms: u64,
    /// Instead: a random pause, uniform in MIN..MAX ms, before each request (MAX at most 10000)
    #[arg(long, value_name = "MIN-MAX", value_parser = think)]
    pub think_ms: Option<(u64, u64)>,
    /// Client connect/read/write timeout (1..=600000; slow requests: + their time)
    #[arg(long, value_name = "MS", default_value_t = 5000, value_parser = between(1, 600_000u64))]
    pub timeout_ms: u64,
    /// Workers of the default servers
    #[arg(long, value_name = "W", default_value_t = 2)]
    pub workers: usize,
    /// Comma-separated: graceful,keeper,naive,reuseport,nginx, or none (nginx is skipped when
    /// not installed). Default: graceful,naive,reuseport,nginx; with --bad-build, keeper too
    #[arg(long, value_name = "LIST", value_parser = strategies)]
    pub strategies: Option<Strategies>,
    /// Every restart deploys a bad build instead of the same one: crash-after-ready[=MS] (a
    /// SIGKILL of the new server MS ms after it serves, default 1000), unhealthy (/health 503,
    /// hello's readiness check fails) or status=CODE (every / answers CODE, 400..=599); the
    /// flag alone is crash-after-ready
    #[arg(long, value_name = "KIND", num_args = 0..=1,
          default_missing_value = "crash-after-ready", value_parser = crate::badbuild::parse)]
    pub bad_build: Option<crate::badbuild::BadBuild>,
    /// The probation of the servers the bench starts (ACTIX_GRACEFUL_PROBATION; default: the
    /// library's own, 10 s)
    #[arg(long, value_name = "MS", value_parser = at_most(3_600_000u64))]
    pub probation_ms: Option<u64>,
    /// The nginx binary
    #[arg(long, value_name = "PATH", default_value = "/usr/sbin/nginx")]
    pub nginx: PathBuf,
    /// Extra graceful runs with `--drain-timeout-ms MS` (default: hello's only)
    #[arg(long, value_name = "MS,...", value_delimiter = ',', value_parser = trimmed::<u64>)]
    pub drain_timeouts: Vec<u64>,
    /// Port on 127.0.0.1 (0: a free one)
    #[arg(long, value_name = "P", default_value_t = 0)]
    pub port: u16,
    /// The graceful server command; `{port}` is replaced. Default:
    /// <hello> --listen 127.0.0.1:{port} --workers W
    #[arg(long, value_name = "CMD ARGS")]
    pub cmd: Option<String>,
    /// The naive-restart and overhead baseline (default <hello-plain> ...; with --cmd and no
    /// --plain-cmd: --cmd itself, overhead skipped)
    #[arg(long, value_name = "CMD")]
    pub plain_cmd: Option<String>,
    /// The SO_REUSEPORT baseline (default <hello-plain> ... --reuseport; with --cmd and no
    /// --reuseport-cmd: skipped)
    #[arg(long, value_name = "CMD")]
    pub reuseport_cmd: Option<String>,
    /// A new process serves once it prints a line containing TEXT
    #[arg(long, value_name = "TEXT", default_value = "serving")]
    pub ready_line: String,
    /// The signal that upgrades (`SIG` prefix and any case accepted)
    #[arg(long, value_name = "SIG", default_value = "USR2", value_parser = signal)]
    pub upgrade_signal: Signal,
    /// Alternating graceful/plain steady runs (0: skip; at most 100)
    #[arg(long, value_name = "R", default_value_t = 10, value_parser = at_most(100usize))]
    pub overhead_rounds: usize,
    /// Length of each (0.5 < S <= 600)
    #[arg(long, value_name = "S", default_value_t = 3.0, value_parser = secs(0.5, 600.0))]
    pub overhead_seconds: f64,
    /// Upgrades without load, for the idle handoff time (0: skip; at most 1000)
    #[arg(long, value_name = "N", default_value_t = 10, value_parser = at_most(1000usize))]
    pub idle_upgrades: usize,
    /// The fallback's cost: N idle keep-alive connections, one upgrade, the old process's CPU
    /// and RSS every 100 ms through its drain and its probation (0: skip; at most 10000)
    #[arg(long, value_name = "N", default_value_t = 0, value_parser = at_most(10_000usize))]
    pub fallback_cost: usize,
    /// A graceful server to measure side by side in the idle handoffs and the fallback's cost
    /// (repeatable; `{port}` replaced). Given, these are measured instead of the graceful
    /// command, in this order; the first is the reference of the ratios
    #[arg(long, value_name = "NAME=CMD", value_parser = named)]
    pub compare: Vec<(String, String)>,
    /// Where the timelines (NAME.svg) and the servers' output (NAME.log) go
    #[arg(long, value_name = "DIR", default_value = "target/upgrade-bench")]
    pub svg_dir: PathBuf,
    /// Failure samples and every handoff
    #[arg(long, short)]
    pub verbose: bool,
    /// The strategies to run, in order: `--strategies`, or its default.
    #[arg(skip)]
    pub chosen: Vec<String>,
}

/// The chosen strategies, in order.
#[derive(Clone)]
pub struct Strategies(pub Vec<String>);

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

/// Every strategy, in the default order.
const STRATEGIES: [&str; 5] = ["graceful", "keeper", "naive", "reuseport", "nginx"];

/// `--strategies`: known names only; `none` is the empty list.
fn strategies(v: &str) -> Result<Strategies, String> {
    if v.trim() == "none" {
        return Ok(Strategies(Vec::new()));
    }
    let names: Vec<String> = v.split(',').map(|s| s.trim().to_owned()).collect();
    match names.iter().find(|s| !STRATEGIES.contains(&s.as_str())) {
        Some(s) => Err(format!(
            "unknown strategy {s:?} ({}, or none)",
            STRATEGIES.join(", ")
        )),
        None => Ok(Strategies(names)),
    }
}

/// `--compare NAME=CMD`: a name without `=` or blanks, and a command.
fn named(v: &str) -> Result<(String, String), String> {
    match v.split_once('=') {
        Some((name, cmd)) if !name.trim().is_empty() && !cmd.trim().is_empty() => {
            Ok((name.trim().to_owned(), cmd.trim().to_owned()))
        }
        _ => Err("not NAME=CMD".into()),
    }
}

/// `--upgrade-signal`: USR2, USR1 or HUP, any case, `SIG` prefix or not.
fn signal(v: &str) -> Result<Signal, String> {
    match v.to_ascii_uppercase().trim_start_matches("SIG") {
        "USR2" => Ok(Signal::SIGUSR2),
        "USR1" => Ok(Signal::SIGUSR1),
        "HUP" => Ok(Signal::SIGHUP),
        _ => Err("not USR2, USR1 or HUP".into()),
    }
}

/// The arguments; exits with status 2 on a bad one, as clap does.
pub fn parse_args() -> Args {
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
    a.chosen = match &a.strategies {
        Some(Strategies(names)) => names.clone(),
        None => STRATEGIES
            .iter()
            .filter(|&&s| s != "keeper" || a.bad_build.is_some())
            .map(|&s| s.to_owned())
            .collect(),
    };
    a
}

/// The failure line and exit status 2 for something a chosen strategy needs.
pub fn missing(what: &str) -> ! {
    eprintln!("upgrade-bench: {what}");
    std::process::exit(2)
}

impl Args {
    /// Whether `name` is among the chosen strategies.
    pub fn wants(&self, name: &str) -> bool {
        self.chosen.iter().any(|s| s == name)
    }
}
