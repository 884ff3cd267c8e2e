//! Running an actix-web server under the crate's control: [`run`] and `serve` start it,
//! announce it and hand it to the [`Controller`](controller) (signals, upgrades, the drain);
//! keeper mode's keeper is started here too. The thin actix glue over the process core: the
//! protocol work (handoff, counting connections, the keeper) stays in `process`.

use std::{
    future::{poll_fn, Future},
    io,
    pin::Pin,
    task::Poll,
    time::{Duration, Instant},
};

mod builder;
mod controller;
mod handle;
mod phase;
mod signals;

pub use self::{builder::Graceful, handle::UpgradeHandle};
use self::{controller::Controller, signals::Signals};
use crate::{
    drain,
    glue::{sealed::Token, HttpServerExt},
    process::{
        self, announce,
        connections::ClientConnections,
        handoff, inherit,
        keeper::{self, Mode, Replacement, Role},
        registry,
    },
    protocol::notify,
};

/// How often the drain looks at the client connections (and at the successor).
const DRAIN_TICK: Duration = Duration::from_millis(5);
/// How long "no client connection" must hold before the drain ends: connections the accept
/// thread took just before its pause applied are in the descriptor table by then.
const DRAIN_QUIET: Duration = Duration::from_millis(10);

/// Runs `server` with the default [`Graceful`] configuration.
///
/// `server` is any `actix_web::HttpServer`: [`GracefulBind`](crate::GracefulBind) is
/// implemented for every one of them (and only for them).
///
/// # Errors
/// As [`Graceful::run`].
///
/// # Examples
///
/// ```no_run
/// use actix_graceful::GracefulBind as _;
/// use actix_web::{App, HttpServer};
///
/// #[actix_web::main]
/// async fn main() -> std::io::Result<()> {
///     let server = HttpServer::new(|| App::new().wrap(actix_graceful::LameDuck))
///         .graceful_bind("127.0.0.1:8080")?;
///     actix_graceful::run(server).await
/// }
/// ```
pub async fn run(server: impl crate::GracefulBind) -> io::Result<()> {
    Graceful::new().run(server).await
}

/// [`Graceful::run`]: the crate's first use if nothing came before (records the start-up,
/// catches SIGUSR2, takes the readiness fd), then keeper mode's roles, the signals, actix's
/// first poll, the serving announcement, and the controller.
async fn serve(mut config: Graceful, server: impl HttpServerExt) -> io::Result<()> {
    process::init();
    let mut replaced = None;
    let mut legacy = None;
    if config.keeper == Mode::On {
        match keeper::role()? {
            Role::Keeper => return keep(config, server).await,
            Role::Generation(pid) => {
                match keeper::attach(pid, config.upgrade_signal)? {
                    Replacement::Pipe(by_pipe) => replaced = Some(by_pipe),
                    Replacement::Signal(signal) => legacy = Some(signal),
                }
                config.keeper = Mode::Under(pid);
                config.pid_file = None; // the keeper's
            }
        }
    }
    let signals = Signals::install(config.upgrade_signal, legacy)?;
    let shutdown_secs = config
        .shutdown_timeout
        .map(|t| t.as_secs() + u64::from(t.subsec_nanos() > 0));
    let mut server = server.start_without_signals(Token, shutdown_secs);
    let handle = server.handle();

    // actix starts its workers, builds their services and registers the listeners in the
    // first poll: only after it does this process serve.
    let first = poll_fn(|cx| Poll::Ready(Pin::new(&mut server).poll(cx))).await;
    if let Poll::Ready(result) = first {
        return result;
    }
    let task = actix_rt::spawn(server);
    serving(&config);
    Controller::new(config, handle, signals, replaced)
        .run(task)
        .await
}

/// Keeper mode's keeper: never starts `server` (no worker runs here); the registry holds the
/// listeners for the generations.
async fn keep(config: Graceful, server: impl HttpServerExt) -> io::Result<()> {
    // The keeper's server never runs: the registry alone holds the sockets, for good.
    registry::pin_all();
    drop(server);
    inherit::settle();
    let config = keeper::Config {
        plan: config.plan(),
        pid_file: config.pid_file.clone(),
        fd_store: config.fd_store,
    };
    actix_rt::task::spawn_blocking(move || keeper::run(config))
        .await
        .map_err(io::Error::other)?
}

fn serving(config: &Graceful) {
    inherit::settle();
    if !drain::installed() {
        log::warn!(
            "the LameDuck middleware is not installed: keep-alive clients may see a reset \
             connection during a handoff; wrap your App with actix_graceful::LameDuck"
        );
    }
    announce::serving(
        config.pid_file.as_ref(),
        config.fd_store,
        &status("serving"),
    );
    log::info!("serving, pid={}", std::process::id());
}

/// `STATUS=` for this process in `state`.
fn status(state: &str) -> String {
    notify::status(process::startup().generation, std::process::id(), state)
}

/// Waits until this process holds no client connection, or `cap` has passed, watching
/// `successor` (a child of this process) meanwhile; returns its pid and exit status if it died.
///
/// Never takes back after `cap` (checked first, so a task that wakes late does not), nor for an
/// exit with status 0: that successor drained on purpose (it was stopped, or handed over in
/// turn), and taking back would put two generations in charge; this process then drains on
/// as before, its connections are still its clients'.
async fn drain_connections(mut successor: Option<i32>, cap: Duration) -> Option<(i32, String)> {
    let started = Instant::now();
    let end = started + cap;
    let clients = ClientConnections::new(registry::handoff_set().into_iter().map(|(fd, _)| fd));
    let mut quiet_since = None;
    let mut cannot_count = false;
    loop {
        let now = Instant::now();
        if now >= end {
            let left = clients
                .count()
                .map_or_else(|_| "?".to_owned(), |n| n.to_string());
            log::info!(
                "drain timeout ({} ms) reached with {left} client connection(s) left; \
                 stopping gracefully",
                cap.as_millis()
            );
            return None;
        }
        if let Some(pid) = successor {
            match handoff::exit_status(pid) {
                Some((status, true)) => {
                    log::info!("successor pid={pid} drained and exited ({status})");
                    successor = None;
                }
                Some((status, false)) => return Some((pid, status.to_string())),
                None => {}
            }
        }
        match clients.count() {
            Ok(0) => {
                let since = *quiet_since.get_or_insert(now);
                if now.duration_since(since) >= DRAIN_QUIET {
                    log::info!(
                        "drained: no client connection left after {:.1} ms",
                        started.elapsed().as_secs_f64() * 1000.0
                    );
                    return None;
                }
            }
            Ok(_) => quiet_since = None,
            Err(err) if !cannot_count => {
                // Without a count, the timeout is the only end: never sooner than a client's
                // keep-alive allows.
                log::warn!("cannot count client connections ({err}); draining until the timeout");
                cannot_count = true;
            }
            Err(_) => {}
        }
        // A process with very many connections spends a while counting them: tick at least
        // four times as long as the count took, so the count stays a small share of a CPU.
        let tick = DRAIN_TICK.max(now.elapsed() * 4);
        actix_rt::time::sleep(end.saturating_duration_since(Instant::now()).min(tick)).await;
    }
}
