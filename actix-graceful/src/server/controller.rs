//! The [`Controller`]: the state machine of a running server, one [`Phase`] at a time. It acts
//! on signals, upgrade requests, the successor's start and the drain's end; the protocol work
//! (starting and watching a successor, counting connections) stays in `process`, the drain
//! state that requests see in [`crate::drain`].

use std::{
    future::{poll_fn, Future},
    io, mem,
    pin::Pin,
    task::Poll,
    time::{Duration, Instant},
};

use actix_web::dev::ServerHandle;
use futures::{channel::oneshot, future::Fuse, FutureExt as _, StreamExt as _};
use nix::{
    sys::signal::{kill, Signal},
    unistd::Pid,
};

use super::{
    drain_connections,
    handle::Reply,
    phase::{Back, Phase, TakeBack},
    signals::{Event, Signals},
    status, Graceful,
};
use crate::{
    drain,
    process::{
        self,
        handoff::{self, Cancel, Plan},
        keeper::{self, Mode},
    },
    protocol::notify::{self, sd_notify},
    UpgradeError,
};

/// A successor being started.
pub(super) struct Upgrade {
    pub(super) started: Instant,
    pub(super) cancel: Cancel,
    pub(super) result: actix_rt::task::JoinHandle<Result<i32, UpgradeError>>,
    pub(super) waiter: Option<Reply>,
}

enum Step {
    Signal(Event),
    Command(Option<Reply>),
    Upgraded(Result<i32, UpgradeError>),
    TakenBack(Back),
    Stopped(io::Result<()>),
    Replaced,
}

/// The state machine of a running server.
pub(super) struct Controller {
    config: Graceful,
    handle: ServerHandle,
    signals: Signals,
    plan: Plan,
    phase: Phase,
    /// Under a keeper: resolves once the keeper says a newer generation serves (drain at once).
    replaced: Option<keeper::Replaced>,
}

impl Controller {
    pub(super) fn new(
        config: Graceful,
        handle: ServerHandle,
        signals: Signals,
        replaced: Option<keeper::Replaced>,
    ) -> Self {
        let plan = config.plan();
        Controller {
            config,
            handle,
            signals,
            plan,
            phase: Phase::Serving,
            replaced,
        }
    }

    fn advance(&mut self, to: impl FnOnce(Phase) -> Phase) {
        self.phase = to(mem::replace(&mut self.phase, Phase::Serving));
    }

    pub(super) async fn run(
        mut self,
        mut task: actix_rt::task::JoinHandle<io::Result<()>>,
    ) -> io::Result<()> {
        let mut commands_open = true;
        loop {
            let step = poll_fn(|cx| {
                if let Poll::Ready(result) = Pin::new(&mut task).poll(cx) {
                    let result = result.unwrap_or_else(|e| Err(io::Error::other(e)));
                    return Poll::Ready(Step::Stopped(result));
                }
                if let Some(upgrade) = self.phase.upgrade_mut() {
                    if let Poll::Ready(result) = Pin::new(&mut upgrade.result).poll(cx) {
                        let result = result
                            .unwrap_or_else(|e| Err(UpgradeError::Spawn(io::Error::other(e))));
                        return Poll::Ready(Step::Upgraded(result));
                    }
                }
                if let Some(take_back) = self.phase.take_back_mut() {
                    if let Poll::Ready(Ok(back)) = take_back.poll_unpin(cx) {
                        return Poll::Ready(Step::TakenBack(back));
                    }
                }
                if let Some(replaced) = &mut self.replaced {
                    if let Poll::Ready(replaced) = replaced.as_mut().poll(cx) {
                        self.replaced = None;
                        if replaced {
                            return Poll::Ready(Step::Replaced);
                        }
                    }
                }
                if commands_open {
                    if let Poll::Ready(cmd) = self.config.commands.poll_next_unpin(cx) {
                        return Poll::Ready(Step::Command(cmd));
                    }
                }
                self.signals.poll_next(cx).map(Step::Signal)
            })
            .await;

            match step {
                Step::Stopped(result) => {
                    self.advance(Phase::stop);
                    self.abandon_upgrade(Signal::SIGTERM).await;
                    if let Some(pid_file) = &self.config.pid_file {
                        pid_file.remove_if_ours();
                    }
                    log::info!("drained, exiting (pid={})", std::process::id());
                    return result;
                }
                Step::Signal(Event::Upgrade) => self.start_upgrade(None),
                Step::Command(Some(reply)) => self.start_upgrade(Some(reply)),
                Step::Command(None) => commands_open = false,
                Step::Upgraded(result) => self.finish_upgrade(result),
                Step::TakenBack((pid, status)) => self.take_back(pid, &status),
                Step::Replaced | Step::Signal(Event::Replaced) => {
                    // As after our own handoff: no pre-stop delay, the newer one serves. No
                    // take-back either: should the newer one die, the keeper starts another.
                    log::info!("the keeper serves through a newer generation: draining");
                    self.advance(Phase::stop);
                    self.drain_to_stop(Duration::ZERO);
                }
                Step::Signal(Event::Terminate) => {
                    log::info!("SIGTERM: stopping with a graceful drain");
                    self.advance(Phase::stop);
                    if let Some(upgrade) = self.phase.upgrade_mut() {
                        upgrade.cancel.stop_successor(Signal::SIGTERM);
                    }
                    if !self.phase.draining() {
                        let delay = self.config.pre_stop_delay;
                        drain::stopping();
                        let state = if delay.is_zero() {
                            "stopping: draining".to_owned()
                        } else {
                            format!(
                                "stopping: serving {} ms more, then draining",
                                delay.as_millis()
                            )
                        };
                        sd_notify(&format!("STOPPING=1\n{}", status(&state)));
                        self.drain_to_stop(delay);
                    }
                }
                Step::Signal(Event::Force(name)) => {
                    log::info!("{name}: stopping at once");
                    self.advance(Phase::stop);
                    self.abandon_upgrade(Signal::SIGKILL).await;
                    if self.phase.draining() {
                        // actix is awaiting its graceful worker stop and reads no further
                        // command: leave it behind, the process ends when `main` returns.
                        log::info!(
                            "{name} while draining: exiting now (pid={})",
                            std::process::id()
                        );
                        return Ok(());
                    }
                    let handle = self.handle.clone();
                    actix_rt::spawn(async move { handle.stop(false).await });
                }
            }
        }
    }

    /// Stops a successor still being started (with `signal`) and waits until it is reaped.
    async fn abandon_upgrade(&mut self, signal: Signal) {
        let Some(upgrade) = self.phase.upgrade_mut() else {
            return;
        };
        upgrade.cancel.stop_successor(signal);
        let result = (&mut upgrade.result)
            .await
            .unwrap_or_else(|e| Err(UpgradeError::Spawn(io::Error::other(e))));
        self.finish_upgrade(result);
    }

    fn start_upgrade(&mut self, reply: Option<Reply>) {
        if let Mode::Under(keeper) = self.config.keeper {
            keeper::forward_upgrade(keeper, self.config.upgrade_signal);
            if let Some(reply) = reply {
                let _ = reply.send(Err(UpgradeError::UnderKeeper {
                    keeper: keeper.as_raw() as u32,
                }));
            }
            return;
        }
        if let Some(err) = self.phase.refusal() {
            match reply.filter(|r| !r.is_canceled()) {
                // The caller gets the error and reports it: not logged twice.
                Some(reply) => {
                    log::info!("upgrade refused (the error goes to the UpgradeHandle caller)");
                    let _ = reply.send(Err(err));
                }
                None => log::warn!("upgrade refused: {err}"),
            }
            return;
        }
        log::info!("upgrade: starting {}", self.plan.exe.display());
        sd_notify(&format!(
            "RELOADING=1\nMONOTONIC_USEC={}\n{}",
            notify::monotonic_usec(),
            status(&format!(
                "upgrading: starting generation {}",
                process::startup().generation + 1
            ))
        ));
        let plan = self
            .plan
            .clone()
            .with_listeners(crate::process::registry::handoff_set());
        let cancel = Cancel::default();
        let waiting = cancel.clone();
        self.phase = Phase::Upgrading(Upgrade {
            started: Instant::now(),
            cancel,
            result: actix_rt::task::spawn_blocking(move || handoff::hand_over(&plan, &waiting)),
            waiter: reply,
        });
    }

    fn finish_upgrade(&mut self, result: Result<i32, UpgradeError>) {
        let Some(upgrade) = self.phase.take_upgrade() else {
            return;
        };
        let ms = upgrade.started.elapsed().as_secs_f64() * 1000.0;
        // A successor that died between its ready report and now must not be handed over to.
        let result = result.and_then(|pid| match handoff::exit_status(pid) {
            Some((status, _)) => Err(UpgradeError::ExitedAfterReady {
                pid: pid as u32,
                status,
            }),
            None => Ok(pid),
        });
        let reply = match result {
            Ok(pid) => {
                log::info!("upgrade: successor pid={pid} ready after {ms:.1} ms; draining");
                if self.phase.stopping() {
                    // SIGTERM arrived mid-upgrade: the service is meant to stop, successor too.
                    log::info!("upgrade: stopping successor pid={pid} as SIGTERM asked");
                    let _ = kill(Pid::from_raw(pid), Signal::SIGTERM);
                } else {
                    sd_notify(&format!(
                        "MAINPID={pid}\nREADY=1\n{}",
                        notify::status(
                            process::startup().generation + 1,
                            pid as u32,
                            &format!("serving; pid {} draining", std::process::id())
                        )
                    ));
                    let take_back = self.start_drain(Duration::ZERO, Some(pid));
                    self.phase = Phase::Draining {
                        successor: pid,
                        take_back,
                    };
                }
                Ok(pid as u32)
            }
            Err(err) => {
                if upgrade.waiter.as_ref().is_some_and(|w| !w.is_canceled()) {
                    // The caller gets the error and reports it: not logged twice.
                    log::info!(
                        "upgrade failed after {ms:.1} ms; still serving (the error goes to the \
                         UpgradeHandle caller)"
                    );
                } else {
                    log::error!("upgrade failed after {ms:.1} ms: {err}; still serving");
                }
                if let Some(pid_file) = &self.config.pid_file {
                    // The successor may have written its pid before it was killed.
                    if let Err(e) = pid_file.write() {
                        log::error!("cannot rewrite pid file {}: {e}", pid_file.path().display());
                    }
                }
                sd_notify(&format!(
                    "READY=1\n{}",
                    status(&format!("serving; upgrade failed: {err}"))
                ));
                Err(err)
            }
        };
        if let Some(waiter) = upgrade.waiter {
            let _ = waiter.send(reply);
        }
    }

    /// Stopping: starts the drain, unless one is under way.
    fn drain_to_stop(&mut self, delay: Duration) {
        if self.phase.draining() {
            return;
        }
        let take_back = self.start_drain(delay, None);
        self.advance(|phase| phase.stop_drained(take_back));
    }

    /// After `delay` of normal service, stops accepting (a successor shares the accept queue),
    /// answers with `Connection: close` until no client connection is left or the drain timeout
    /// ends, then stops the workers gracefully. If `successor` dies during the drain, accepts
    /// again instead, and the returned future resolves ([`Self::take_back`]).
    fn start_drain(&self, delay: Duration, successor: Option<i32>) -> TakeBack {
        let handle = self.handle.clone();
        let cap = self.config.drain_timeout;
        let (died, taken_back) = oneshot::channel();
        actix_rt::spawn(async move {
            if !delay.is_zero() {
                log::info!("pre-stop delay: serving {} ms more", delay.as_millis());
                actix_rt::time::sleep(delay).await;
            }
            handle.pause().await;
            drain::begin();
            if let Some(back) = drain_connections(successor, cap).await {
                handle.resume().await;
                drain::end();
                let _ = died.send(back);
                return;
            }
            handle.stop(true).await;
        });
        if successor.is_some() {
            taken_back.fuse()
        } else {
            Fuse::terminated()
        }
    }

    /// The successor died while this process was draining: it accepts again (see
    /// [`Self::start_drain`]) and is in charge once more, with the connections it still holds.
    fn take_back(&mut self, pid: i32, exit: &str) {
        log::error!(
            "upgrade: successor pid={pid} died during the handoff ({exit}); \
             accepting again, still serving"
        );
        if let Phase::Draining { successor, .. } = self.phase {
            debug_assert_eq!(successor, pid, "taken back from another successor");
        }
        self.advance(Phase::taken_back);
        if let Some(pid_file) = &self.config.pid_file {
            if let Err(e) = pid_file.write() {
                log::error!("cannot rewrite pid file {}: {e}", pid_file.path().display());
            }
        }
        // systemd hears this only with NotifyAccess=all: MAINPID= already named the successor.
        sd_notify(&format!(
            "MAINPID={}\nREADY=1\n{}",
            std::process::id(),
            status(&format!("serving again; successor pid {pid} died ({exit})"))
        ));
        if self.phase.stopping() {
            self.drain_to_stop(Duration::ZERO);
        }
    }
}
