//! `hello` for the integration tests that need what an app does around the server, or a
//! setting `hello` leaves at the library's default: not an example to start from.
//!
//! Serves `hello`'s routes (`examples::routes::hello`) and prints its start-up line. Flags
//! (`--help` lists them): `--listen [NAME=]ADDR` (repeatable; default as `hello`'s),
//! `--workers N`, `--keeper`, and the test knobs: `--ready-after-ms N` (a successor that
//! cannot report readiness, such as a foreign binary, counts as ready N ms after its start:
//! `Graceful::successor_ready_after`), `--ipv6-only on|off` (IPV6_V6ONLY of freshly bound
//! IPv6 sockets: `Binding::ipv6_only`), `--early-thread` (start a thread before the crate's
//! first use, as a log appender or an exporter would), `--delay-run-ms N` (wait N ms between
//! binding and `run`), `--child-wait-ms N` (on a thread started before `run`, spawn a child
//! that exits 7, wait for it N ms later and print `hello pid=<pid> child: <status>`),
//! `--self-probe PATH` (the self-probe alone, without `hello`'s readiness check:
//! `Graceful::self_probe`), `--env-file PATH` (`Graceful::successor_env_file`).

use std::{process::ExitCode, time::Duration};

use actix_graceful::{Graceful, GracefulBind as _};
use actix_web::{App, HttpServer};
use examples::{listen, routes};

/// `hello`'s routes with the knobs of the integration tests.
#[derive(Debug, clap::Parser)]
#[command(name = "hello-fixture", args_override_self = true)]
struct Options {
    /// `[NAME=]ADDR` or `[NAME=]unix:/path` (repeatable). Default: `HELLO_LISTEN`
    /// (comma-separated), else 127.0.0.1:8080
    #[arg(long, value_name = "[NAME=]ADDR")]
    listen: Vec<String>,
    /// Worker threads
    #[arg(long, value_name = "N", default_value_t = 2)]
    workers: usize,
    /// Keeper mode
    #[arg(long)]
    keeper: bool,
    /// A successor counts as ready this long after its start
    #[arg(long, value_name = "N")]
    ready_after_ms: Option<u64>,
    /// IPV6_V6ONLY of freshly bound IPv6 sockets
    #[arg(long, value_name = "on|off", value_parser = examples::on_off())]
    ipv6_only: Option<bool>,
    /// Start a thread before the crate's first use
    #[arg(long)]
    early_thread: bool,
    /// Wait N ms between binding and `run`
    #[arg(long, value_name = "N")]
    delay_run_ms: Option<u64>,
    /// Spawn a child that exits 7 and wait for it N ms later, on a thread
    #[arg(long, value_name = "N")]
    child_wait_ms: Option<u64>,
    /// The self-probe alone (no readiness check): GET PATH before serving
    #[arg(long, value_name = "PATH")]
    self_probe: Option<String>,
    /// `KEY=VALUE` lines set over a successor's environment, re-read at every upgrade
    #[arg(long, value_name = "PATH")]
    env_file: Option<String>,
}

fn main() -> ExitCode {
    examples::main("hello-fixture", serve)
}

async fn serve(opts: Options) -> std::io::Result<()> {
    if opts.early_thread {
        // Before the crate's first use: its signal mask is the one the process started with.
        std::thread::spawn(|| loop {
            std::thread::park();
        });
    }
    // The `ACTIX_GRACEFUL_*` variables (the tests' probation), as `hello` reads them.
    let mut graceful = Graceful::new().with_env()?.keeper(opts.keeper);
    if let Some(t) = opts.ready_after_ms {
        graceful = graceful.successor_ready_after(Duration::from_millis(t));
    }
    if let Some(path) = &opts.self_probe {
        graceful = graceful.self_probe(path);
    }
    if let Some(path) = &opts.env_file {
        graceful = graceful.successor_env_file(path);
    }
    let mut server = HttpServer::new(|| {
        App::new()
            .wrap(actix_graceful::LameDuck)
            .configure(routes::hello)
    })
    .workers(opts.workers);
    for spec in listen::specs(&opts.listen) {
        let binding = listen::binding(&spec);
        server = server.graceful_bind(match opts.ipv6_only {
            Some(only) => binding.ipv6_only(only),
            None => binding,
        })?;
    }
    examples::print_serving()?;
    if let Some(after) = opts.child_wait_ms {
        child_wait(Duration::from_millis(after));
    }
    if let Some(delay) = opts.delay_run_ms {
        actix_web::rt::time::sleep(Duration::from_millis(delay)).await;
    }
    graceful.run(server).await
}

/// `--child-wait-ms`: a child of the app's own, waited for by the app on a thread.
fn child_wait(after: Duration) {
    let spawned = std::process::Command::new("/bin/sh")
        .args(["-c", "exit 7"])
        .spawn();
    std::thread::spawn(move || {
        let status = spawned.and_then(|mut child| {
            std::thread::sleep(after);
            child.wait()
        });
        let status = match status {
            Ok(status) => status.to_string(),
            Err(err) => format!("error: {err}"),
        };
        println!("hello pid={} child: {status}", std::process::id());
    });
}
