//! What the example apps share: the handlers and `hello`'s routes ([`routes`]), the
//! `--listen [NAME=]ADDR` specs ([`listen`]), the UDP echo of `hello --udp-echo` ([`udp`]),
//! `hello --admin`'s upgrade endpoint and where it is served ([`admin`]), the knobs that make
//! `hello` a bad build for the deploy tests ([`knobs`]), and
//! the frame of every example's `main` ([`main`]: flags, logging, exit status; the start-up
//! line [`print_serving`] the tests and the benchmark wait for).
//!
//! The apps are the binaries in `src/bin/`: `hello` (the example to start from), its test
//! fixture `hello-fixture`, `hello-plain` (the benchmark's baseline, plain actix), `hello-tls`,
//! `events`, `hello-config` and `plain-listenfd`.

pub mod admin;
pub mod knobs;
pub mod listen;
pub mod routes;
pub mod udp;

use std::{future::Future, io::Write as _, process::ExitCode};

/// Success, or the error on stderr prefixed with `name` (the library returns errors and does
/// not log them: this is their one report) and a failure status: keeper mode's own
/// ([`actix_graceful::KeeperExit`]), else 1.
pub fn exit(name: &str, result: std::io::Result<()>) -> ExitCode {
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => {
            eprintln!("{name}: error: {err}");
            match actix_graceful::KeeperExit::from_io(&err) {
                Some(exit) => ExitCode::from(exit.code()),
                None => ExitCode::FAILURE,
            }
        }
    }
}

/// Prints `hello pid=<pid> serving <addr> (inherited|bound), ...`: the line the tests and the
/// benchmark wait for, once every listener is bound.
pub fn print_serving() -> std::io::Result<()> {
    let serving = actix_graceful::listeners()
        .iter()
        .map(|l| {
            let origin = if l.is_inherited() {
                "inherited"
            } else {
                "bound"
            };
            format!("{} ({origin})", l.addr())
        })
        .collect::<Vec<_>>()
        .join(", ");
    let mut out = std::io::stdout().lock();
    writeln!(out, "hello pid={} serving {serving}", std::process::id())?;
    out.flush()
}

/// `main` of an example: logs with millisecond timestamps (`RUST_LOG`, default `info`), parses
/// the arguments with clap (`--help`; an unknown flag or a bad value is clap's error naming the
/// flag, exit status 2), runs `serve` on an actix system, and turns the result into the exit
/// status.
pub fn main<O, F>(name: &str, serve: impl FnOnce(O) -> F) -> ExitCode
where
    O: clap::Parser,
    F: Future<Output = std::io::Result<()>>,
{
    let opts = O::parse();
    env_logger::Builder::from_env(env_logger::Env::default().default_filter_or("info"))
        .format_timestamp_millis()
        .init();
    exit(name, actix_web::rt::System::new().block_on(serve(opts)))
}

/// `--ipv6-only on|off`: exactly `on` or `off`.
pub fn on_off() -> impl clap::builder::TypedValueParser<Value = bool> {
    use clap::builder::TypedValueParser as _;
    clap::builder::PossibleValuesParser::new(["on", "off"]).map(|v| v == "on")
}

/// `--upgrade-signal`: `USR2`, `USR1` or `HUP`, in any case, with or without `SIG`.
#[derive(Debug, Clone, Copy, clap::ValueEnum)]
#[value(rename_all = "UPPER")]
pub enum UpgradeSignal {
    // SIGUSR2, the library's default.
    #[value(alias = "SIGUSR2")]
    Usr2,
    // SIGUSR1.
    #[value(alias = "SIGUSR1")]
    Usr1,
    // SIGHUP.
    #[value(alias = "SIGHUP")]
    Hup,
}

impl UpgradeSignal {
    /// The signal number.
    pub fn number(self) -> i32 {
        match self {
            Self::Usr2 => libc::SIGUSR2,
            Self::Usr1 => libc::SIGUSR1,
            Self::Hup => libc::SIGHUP,
        }
    }
}
