//! The example app: answers with its pid, so a client sees which generation served it.
//!
//! ```text
//! cargo run -p examples --bin hello -- --listen 127.0.0.1:8080
//! kill -USR2 <pid>     # live upgrade to the binary now at the same path
//! kill -TERM <pid>     # graceful stop
//! ```
//!
//! Routes (`examples::routes::hello`): `/` (`pid=<pid>`, header `X-Pid`), `/sleep?ms=N` (the
//! same after N ms), `POST /echo` (`len=<body bytes> pid=<pid>`), `/health` (200 while the
//! process answers), `/ready` (the readiness probe, `actix_graceful::readiness`: 503 from
//! SIGTERM on), `/env?name=X` (the value of environment variable X, 404 when unset); with
//! `--admin`, `POST /admin/upgrade` (an upgrade through an `UpgradeHandle`, answered with its
//! outcome), served only on the listener named `admin`, or, when no listener is named, on the
//! loopback and Unix-socket ones (`examples::admin`).
//!
//! Flags (`--help` lists them; a bad value is an error naming the flag, exit status 2):
//! where to listen (`--listen`, repeatable, `NAME=ADDR` for a systemd fd name; default from
//! `HELLO_LISTEN`, comma-separated, else `127.0.0.1:8080`), actix-graceful's settings (the
//! timeouts, `--probation-ms`, `--pid-file`, `--upgrade-signal`, `--pre-stop-ms`,
//! `--fd-store`, `--keeper`, `--env-file`; over the `ACTIX_GRACEFUL_*` variables), an upgrade
//! endpoint (`--admin`), and other inherited fds (`--udp-echo`, `--keep-unclaimed`). Logs with
//! `RUST_LOG`. The test-only knobs are `hello-fixture`'s.
//!
//! Every check the crate offers is on: the readiness check (`Graceful::ready_when`), the
//! self-probe `GET /health` (`Graceful::self_probe`), and the probation (10 s, with its
//! error-rate rule; `--probation-ms`). Environment variables that make `hello` a bad build, as
//! a deploy would install one behind a wrapper script (`examples::knobs`): `HELLO_UNHEALTHY=1`
//! (`/health` answers 503 and the readiness check fails), `HELLO_FAIL_STATUS=CODE` (every `/`
//! answers CODE), `HELLO_WARMUP_MS=N` (the readiness check passes after N ms).

use std::{process::ExitCode, time::Duration};

use actix_graceful::{Graceful, GracefulBind as _};
use actix_web::{App, HttpServer};
use examples::{admin, knobs, listen, routes, udp, UpgradeSignal};

/// The example app: answers with its pid; SIGUSR2 upgrades it live to the binary now at its path.
#[derive(Debug, clap::Parser)]
#[command(name = "hello", args_override_self = true, after_help = BAD_BUILD_HELP)]
struct Options {
    /// `[NAME=]ADDR` or `[NAME=]unix:/path` (repeatable; NAME: a systemd fd name). Default:
    /// `HELLO_LISTEN` (comma-separated), else 127.0.0.1:8080
    #[arg(long, value_name = "[NAME=]ADDR")]
    listen: Vec<String>,
    /// Worker threads
    #[arg(long, value_name = "N", default_value_t = 2)]
    workers: usize,
    /// How long a successor may take to report ready
    #[arg(long, value_name = "N")]
    upgrade_timeout_ms: Option<u64>,
    /// The drain's cap once the successor serves
    #[arg(long, value_name = "N")]
    drain_timeout_ms: Option<u64>,
    /// A new build's probation (0: none): the old process stands by to take back meanwhile
    #[arg(long, value_name = "N")]
    probation_ms: Option<u64>,
    /// actix's shutdown timeout (seconds)
    #[arg(long, value_name = "N")]
    shutdown_timeout_s: Option<u64>,
    /// Write the serving process's pid here
    #[arg(long, value_name = "PATH")]
    pid_file: Option<String>,
    /// The signal that upgrades
    #[arg(long, value_name = "SIG", value_enum, ignore_case = true)]
    upgrade_signal: Option<UpgradeSignal>,
    /// On SIGTERM, serve N ms more before draining
    #[arg(long, value_name = "N")]
    pre_stop_ms: Option<u64>,
    /// Hand the listeners to systemd's fd store
    #[arg(long)]
    fd_store: bool,
    /// Keeper mode: this process stays, holds the sockets and runs the server as its child
    #[arg(long)]
    keeper: bool,
    /// `KEY=VALUE` lines set over a successor's environment, re-read at every upgrade
    #[arg(long, value_name = "PATH")]
    env_file: Option<String>,
    /// Add `POST /admin/upgrade` (upgrades through an `UpgradeHandle`), on the listener named
    /// `admin`, else on loopback and Unix-socket listeners
    #[arg(long)]
    admin: bool,
    /// A UDP echo service: the inherited UDP socket NAME, else one bound at ADDR (repeatable)
    #[arg(long, value_name = "NAME=ADDR")]
    udp_echo: Vec<String>,
    /// Leave inherited fds nothing claimed open (default: close them)
    #[arg(long)]
    keep_unclaimed: bool,
}

/// `--help`'s last words: the environment that makes a bad build.
const BAD_BUILD_HELP: &str = "Checks: hello runs its readiness check and the self-probe GET \
/health before it serves, and a new build is on probation (10 s, --probation-ms) with the \
error-rate rule.

Environment (a bad build, as a deploy would install one behind a wrapper script):
  HELLO_UNHEALTHY=1        /health answers 503 and the readiness check fails
  HELLO_FAIL_STATUS=CODE   every / answers CODE (e.g. 500)
  HELLO_WARMUP_MS=N        the readiness check passes only after N ms
  ACTIX_GRACEFUL_*         actix-graceful's settings (the flags win over them)";

fn main() -> ExitCode {
    examples::main("hello", serve)
}

async fn serve(opts: Options) -> std::io::Result<()> {
    let graceful = graceful(&opts)?;
    let upgrades = opts.admin.then(|| graceful.handle());
    let mut server = HttpServer::new(move || {
        App::new()
            .wrap(actix_graceful::LameDuck) // Connection: close while handing over
            .configure(routes::hello)
            .configure(admin::routes(upgrades.clone()))
    })
    .on_connect(admin::on_connect) // which listener a connection came in on
    .workers(opts.workers);
    for spec in listen::specs(&opts.listen) {
        server = server.graceful_bind(listen::binding(&spec))?; // was: .bind(addr)?
    }
    for spec in &opts.udp_echo {
        udp::echo(spec)?;
    }
    if !opts.keep_unclaimed {
        // hello knows it claimed all it wants: close the rest (e.g. a listener a new version no
        // longer serves, which would queue connections nobody accepts).
        let _ = actix_graceful::close_unclaimed();
    }
    examples::print_serving()?;
    graceful.run(server).await // was: server.run().await
}

/// actix-graceful's settings: the operators' `ACTIX_GRACEFUL_*` variables first
/// (`Graceful::with_env`), the flags win over them; the library's defaults for the rest.
fn graceful(opts: &Options) -> std::io::Result<Graceful> {
    let ms = Duration::from_millis;
    // Every check the crate offers: the app's readiness check, then GET /health over a private
    // socket, before this process takes its first connection; the probation's error-rate rule
    // is on by default.
    let mut graceful = Graceful::new()
        .ready_when(knobs::readiness_check)
        .self_probe("/health")
        .with_env()?;
    graceful = graceful.fd_store(opts.fd_store).keeper(opts.keeper);
    if let Some(t) = opts.upgrade_timeout_ms {
        graceful = graceful.upgrade_timeout(ms(t));
    }
    if let Some(t) = opts.drain_timeout_ms {
        graceful = graceful.drain_timeout(ms(t));
    }
    if let Some(t) = opts.probation_ms {
        graceful = graceful.probation(ms(t));
    }
    if let Some(t) = opts.shutdown_timeout_s {
        graceful = graceful.shutdown_timeout(Duration::from_secs(t));
    }
    if let Some(t) = opts.pre_stop_ms {
        graceful = graceful.pre_stop_delay(ms(t));
    }
    if let Some(p) = &opts.pid_file {
        graceful = graceful.pid_file(p);
    }
    if let Some(p) = &opts.env_file {
        graceful = graceful.successor_env_file(p);
    }
    if let Some(signal) = opts.upgrade_signal {
        graceful = graceful.upgrade_signal(signal.number());
    }
    Ok(graceful)
}
