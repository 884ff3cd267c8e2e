//! Running an actix-web server under the crate's control: [`run`] and `serve` start it,
//! announce it and hand it to the [`Controller`](controller) (signals, upgrades, the drain);
//! keeper mode's keeper is started here too. The thin actix glue over the process core: the
//! protocol work (handoff, counting connections, the keeper) stays in `process`.

use actix_web::dev::ServerHandle;
use std::{
    future::{poll_fn, Future},
    io,
    pin::Pin,
    task::Poll,
    time::{Duration, Instant},
};

mod builder;
mod controller;
mod drain;
mod gate;
mod handle;
mod phase;
mod probation;
mod probe;
mod signals;
mod successor;

pub use self::{
    builder::Graceful,
    handle::{UpgradeHandle, Upgraded},
    probation::ErrorRate,
};
use self::{controller::Controller, probation::Probation, probe::SelfProbe, signals::Signals};
use crate::{
    drain as drain_state, events,
    glue::{sealed::Token, HttpServerExt},
    process::{
        self, announce, handoff, inherit,
        keeper::{self, Role},
        registry,
    },
    protocol::{
        notify::{self, PidFile},
        report::Report,
    },
};

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
/// catches SIGUSR2, takes the handed-over channels), then keeper mode's roles, the signals, the
/// readiness check, actix's start (behind the self-probe), the serving announcement, and the
/// controller.
async fn serve(mut config: Graceful, server: impl HttpServerExt) -> io::Result<()> {
    let begun = Instant::now();
    process::init();
    if let Some(reason) = handoff::refusal() {
        return Err(io::Error::new(io::ErrorKind::InvalidInput, reason));
    }
    if let Some(callback) = config.on_event.take() {
        events::set(callback.0);
    }
    let link = match config.keeper.then(keeper::role).transpose()? {
        Some(Role::Keeper) => return keep(config, server).await,
        Some(Role::Generation(keeper)) => Some(keeper::attach(keeper)?),
        None => None,
    };
    // Under a keeper, the pid file is the keeper's.
    let pid_file = config.pid_file.clone().filter(|_| link.is_none());
    let mut signals = Signals::install(config.upgrade_signal)?;
    let check = config.ready_when.take().map(|hook| hook.0);
    if let Err(reason) = gate::pass(check, config.upgrade_timeout, &mut signals).await {
        return Err(not_ready(reason));
    }
    let Some((handle, task)) = start(&config, server).await? else {
        return Ok(()); // actix stopped in its first poll
    };
    let probation = serving(&mut config, pid_file.as_ref(), begun);
    Controller::new(config, pid_file, handle, signals, link, probation)
        .run(task)
        .await
}

/// Starts actix: its first poll starts the workers, builds their services and registers the
/// listeners, and only after it does this process serve. With a self-probe, actix serves its
/// private listener alone until the probe passed. `None`: actix ended in its first poll
/// without an error.
async fn start(
    config: &Graceful,
    server: impl HttpServerExt,
) -> io::Result<Option<(ServerHandle, actix_rt::task::JoinHandle<io::Result<()>>)>> {
    let (probe, server) = match &config.self_probe {
        Some(path) => {
            let (probe, server) = SelfProbe::prepare(path, server)?;
            (Some(probe), server)
        }
        None => (None, server),
    };
    let shutdown_secs = config
        .shutdown_timeout
        .map(|t| t.as_secs() + u64::from(t.subsec_nanos() > 0));
    let mut server = server.start_without_signals(Token, shutdown_secs);
    let handle = server.handle();
    let first = poll_fn(|cx| Poll::Ready(Pin::new(&mut server).poll(cx))).await;
    if let Poll::Ready(result) = first {
        return result.map(|()| None);
    }
    let task = actix_rt::spawn(server);
    if let Some(probe) = probe {
        if let Err(reason) = probe.pass(&handle, config.upgrade_timeout).await {
            return Err(not_ready(reason));
        }
    }
    Ok(Some((handle, task)))
}

/// This process is not ready (its readiness check or self-probe failed): tells the process
/// waiting for it why, and returns the error for `run` (the process then exits).
fn not_ready(reason: String) -> io::Error {
    log::error!("not ready: {reason}");
    if handoff::has_predecessor() {
        handoff::verdict(&Report::Failed {
            pid: nix::unistd::Pid::this(),
            reason: reason.clone(),
        });
    } else {
        notify::sd_notify(&status(&format!("not ready: {reason}")));
    }
    io::Error::other(format!("not ready: {reason}"))
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

/// Announces that this process serves (pid file, fd store, ready report or `READY=1`) and
/// starts its probation when a fallback waits for its verdict.
fn serving(config: &mut Graceful, pid_file: Option<&PidFile>, begun: Instant) -> Option<Probation> {
    inherit::settle();
    if !drain_state::installed() {
        log::warn!(
            "the LameDuck middleware is not installed: keep-alive clients may see a reset \
             connection during a handoff, and a probation counts no response; wrap your App \
             with actix_graceful::LameDuck"
        );
    }
    let probation = if handoff::has_predecessor() {
        config.probation
    } else {
        Duration::ZERO
    };
    announce::serving(pid_file, config.fd_store, &status("serving"), probation);
    let generation = process::startup().generation;
    log::info!("serving, pid={}", std::process::id());
    events::emit(events::Event::Serving {
        pid: std::process::id(),
        generation,
        after: begun.elapsed(),
    });
    if probation.is_zero() || !handoff::on_probation() {
        return None;
    }
    log::info!("on probation for {} ms", probation.as_millis());
    let check = config.probation_check.take().map(|hook| hook.0);
    Some(Probation::start(probation, config.error_rate, check))
}

/// `STATUS=` for this process in `state`.
fn status(state: &str) -> String {
    notify::status(process::startup().generation, std::process::id(), state)
}
