//! The [`Controller`]: the state machine of a running server, one [`Phase`] at a time. Its loop
//! collects the next [`Step`] (the server's end, the successor's start, the drain's end, the
//! successor's verdict, the keeper's word, this process's own probation, an upgrade request,
//! a signal) and hands it to the handler of its kind; the handlers act and move the phase
//! along. The protocol work (starting and watching a successor, counting connections) stays
//! in `process`, what requests see in [`crate::drain`].

use std::{
    future::{poll_fn, Future},
    io,
    os::fd::{AsRawFd, OwnedFd},
    pin::Pin,
    task::{Context, Poll},
    time::{Duration, Instant},
};

use actix_web::dev::ServerHandle;
use futures::{channel::mpsc, StreamExt as _};
use nix::{sys::signal::Signal, unistd::Pid};

use super::{
    drain::{Drain, Drained},
    handle::Reply,
    phase::Phase,
    probation::Probation,
    signals::{Event, Signals},
    status,
    successor::Successor,
    Graceful,
};
use crate::{
    drain,
    events::{self, Event as AppEvent},
    process::{
        handoff::{self, Cancel, Plan, Started},
        keeper::{self, KeeperLink},
        registry,
    },
    protocol::{
        control::Control,
        notify::{self, sd_notify, PidFile},
        report::Report,
    },
    UpgradeError,
};

/// A successor being started.
pub(super) struct Upgrade {
    started: Instant,
    cancel: Cancel,
    result: actix_rt::task::JoinHandle<Result<Started, UpgradeError>>,
    waiter: Option<Reply>,
    /// This process is on probation and handed its fallback's channel to the successor (a dup,
    /// open until the start ends): the successor's fallback is that process, not this one.
    fallback_passed_on: Option<OwnedFd>,
}

/// Whose verdict a process handed over waits for.
pub(super) enum Watch {
    /// Its own successor, on probation.
    Successor(Successor),
    /// The keeper's word: a newer generation is on probation.
    Keeper,
}

type ServerPhase = Phase<Upgrade, Watch, Drain>;

/// What happened, for the controller to act on.
enum Step {
    Stopped(io::Result<()>),
    Upgraded(Result<Started, UpgradeError>),
    Drained(Drained),
    Verdict(super::successor::Verdict),
    Keeper(Option<Control>),
    Probation(Result<(), String>),
    Command(Option<Reply>),
    Signal(Event),
}

/// The state machine of a running server.
pub(super) struct Controller {
    config: Graceful,
    /// This process's pid file (none under a keeper: the keeper's).
    pid_file: Option<PidFile>,
    handle: ServerHandle,
    signals: Signals,
    plan: Plan,
    phase: ServerPhase,
    /// This process's own probation, after it reported ready to a fallback.
    probation: Option<Probation>,
    /// Under a keeper: its words.
    keeper: Option<KeeperLink>,
    /// Upgrade requests from `UpgradeHandle`s, until every handle is gone.
    commands: Option<mpsc::UnboundedReceiver<Reply>>,
    /// actix was asked to stop: gracefully (`true`) or at once.
    actix_stop: Option<bool>,
    /// Why this process failed its own probation: `run` returns it.
    failed: Option<String>,
}

impl Controller {
    pub(super) fn new(
        mut config: Graceful,
        pid_file: Option<PidFile>,
        handle: ServerHandle,
        signals: Signals,
        keeper: Option<KeeperLink>,
        probation: Option<Probation>,
    ) -> Self {
        let plan = config.plan();
        let (_, idle) = mpsc::unbounded();
        let commands = std::mem::replace(&mut config.commands, idle);
        Controller {
            config,
            pid_file,
            handle,
            signals,
            plan,
            phase: Phase::Serving,
            probation,
            keeper,
            commands: Some(commands),
            actix_stop: None,
            failed: None,
        }
    }

    /// Runs until actix has stopped (after a handoff and its drain, or asked to stop).
    pub(super) async fn run(
        mut self,
        mut task: actix_rt::task::JoinHandle<io::Result<()>>,
    ) -> io::Result<()> {
        loop {
            match poll_fn(|cx| self.poll_step(&mut task, cx)).await {
                Step::Stopped(result) => return self.stopped(result).await,
                Step::Upgraded(result) => self.finish_upgrade(result),
                Step::Drained(drained) => self.drained(drained).await,
                Step::Verdict(verdict) => self.verdict(verdict).await,
                Step::Keeper(word) => self.keeper_says(word).await,
                Step::Probation(result) => self.own_probation_ended(result),
                Step::Command(Some(reply)) => self.start_upgrade(Some(reply)),
                Step::Command(None) => self.commands = None,
                Step::Signal(Event::Upgrade) => self.start_upgrade(None),
                Step::Signal(Event::Terminate) => self.terminate(),
                Step::Signal(Event::Force(name)) => {
                    if self.force(name).await {
                        return Ok(());
                    }
                }
            }
        }
    }

    /// The next step: the first source that has one, in a fixed order.
    fn poll_step(
        &mut self,
        task: &mut actix_rt::task::JoinHandle<io::Result<()>>,
        cx: &mut Context<'_>,
    ) -> Poll<Step> {
        if let Poll::Ready(result) = Pin::new(task).poll(cx) {
            let result = result.unwrap_or_else(|e| Err(io::Error::other(e)));
            return Poll::Ready(Step::Stopped(result));
        }
        if let Some(upgrade) = self.phase.upgrade_mut() {
            if let Poll::Ready(result) = Pin::new(&mut upgrade.result).poll(cx) {
                let result =
                    result.unwrap_or_else(|e| Err(UpgradeError::Spawn(io::Error::other(e))));
                return Poll::Ready(Step::Upgraded(result));
            }
        }
        if let Some(drain) = self.phase.drain_mut() {
            if let Poll::Ready(drained) = Pin::new(drain).poll(cx) {
                return Poll::Ready(Step::Drained(drained));
            }
        }
        if let Some(Watch::Successor(successor)) = self.phase.fallback_mut() {
            if let Poll::Ready(verdict) = successor.poll_verdict(cx) {
                return Poll::Ready(Step::Verdict(verdict));
            }
        }
        if let Some(link) = &mut self.keeper {
            if let Poll::Ready(word) = link.words.poll_next_unpin(cx) {
                return Poll::Ready(Step::Keeper(word));
            }
        }
        // Its verdict waits while an upgrade runs: the successor may take the fallback over.
        if let (Phase::Serving, Some(probation)) = (&self.phase, &mut self.probation) {
            if let Poll::Ready(result) = Pin::new(probation).poll(cx) {
                return Poll::Ready(Step::Probation(result));
            }
        }
        if let Some(commands) = &mut self.commands {
            if let Poll::Ready(command) = commands.poll_next_unpin(cx) {
                return Poll::Ready(Step::Command(command));
            }
        }
        self.signals.poll_next(cx).map(Step::Signal)
    }

    /// actix has stopped: a successor still being started is stopped too; the pid file goes.
    async fn stopped(mut self, result: io::Result<()>) -> io::Result<()> {
        self.phase = std::mem::replace(&mut self.phase, Phase::Serving).force_stop();
        self.abandon_upgrade(Signal::SIGTERM).await;
        self.give_up_probation(Report::Stopping { pid: Pid::this() });
        if let Some(pid_file) = &self.pid_file {
            pid_file.remove_if_ours();
        }
        log::info!("drained, exiting (pid={})", std::process::id());
        match self.failed {
            Some(reason) => Err(io::Error::other(format!(
                "this build failed its probation: {reason}"
            ))),
            None => result,
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
        if let Some(link) = &self.keeper {
            keeper::forward_upgrade(link.keeper, self.config.upgrade_signal);
            if let Some(reply) = reply {
                let keeper = crate::error::public_pid(link.keeper);
                let _ = reply.send(Err(UpgradeError::UnderKeeper { keeper }));
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
        let generation = self.plan.generation;
        log::info!("upgrade: starting {}", self.plan.exe.display());
        sd_notify(&format!(
            "RELOADING=1\nMONOTONIC_USEC={}\n{}",
            notify::monotonic_usec(),
            status(&format!("upgrading: starting generation {generation}"))
        ));
        events::emit(AppEvent::UpgradeStarted { generation });
        // On probation: the successor's fallback is this process's (see `handoff::report`).
        let fallback_passed_on = handoff::fallback_for_successor();
        let mut plan = self.plan.clone().with_listeners(registry::handoff_set());
        plan.fallback = fallback_passed_on.as_ref().map(AsRawFd::as_raw_fd);
        let cancel = Cancel::default();
        let waiting = cancel.clone();
        self.phase = Phase::Upgrading(Upgrade {
            started: Instant::now(),
            cancel,
            result: actix_rt::task::spawn_blocking(move || handoff::hand_over(&plan, &waiting)),
            waiter: reply,
            fallback_passed_on,
        });
    }

    fn finish_upgrade(&mut self, result: Result<Started, UpgradeError>) {
        let Some(upgrade) = self.phase.take_upgrade() else {
            return;
        };
        // A successor that died between its ready report and now must not be handed over to.
        let result = result.and_then(|started| {
            use crate::process::child::{try_reap, Group};
            match try_reap(started.pid, Group::KillOnFailure) {
                Some(status) => Err(UpgradeError::ExitedAfterReady {
                    pid: crate::error::public_pid(started.pid),
                    status,
                }),
                None => Ok(started),
            }
        });
        match result {
            Ok(started) if self.phase.stopping() => {
                // SIGTERM arrived mid-upgrade: the service is meant to stop, successor too.
                log::info!(
                    "upgrade: stopping successor pid={} as SIGTERM asked",
                    started.pid
                );
                crate::process::child::signal(started.pid, Signal::SIGTERM);
                drop(super::successor::reap_when_it_ends(started.pid));
                if let Some(waiter) = upgrade.waiter {
                    let _ = waiter.send(Err(UpgradeError::Draining));
                }
            }
            Ok(started) => self.hand_over(started, upgrade),
            Err(err) => self.upgrade_failed(err, upgrade.started.elapsed(), upgrade.waiter),
        }
    }

    /// The successor serves: tell the service manager, drain, and watch its probation as its
    /// fallback (unless this process is on probation itself, or the successor has none).
    fn hand_over(&mut self, started: Started, upgrade: Upgrade) {
        let after = upgrade.started.elapsed();
        let pid = started.pid;
        let probation = started.probation.unwrap_or(self.config.probation);
        log::info!(
            "upgrade: successor pid={pid} ready after {:.1} ms; draining{}",
            after.as_secs_f64() * 1000.0,
            if upgrade.fallback_passed_on.is_some() {
                " (this process is on probation: its fallback watches the successor)"
            } else if probation.is_zero() {
                ""
            } else {
                " and standing by as the fallback during its probation"
            }
        );
        let state = format!("serving; pid {} draining", std::process::id());
        let status = notify::status(self.plan.generation, pid.as_raw() as u32, &state);
        sd_notify(&format!("MAINPID={pid}\nREADY=1\n{status}"));
        events::emit(AppEvent::SuccessorReady {
            pid: crate::error::public_pid(pid),
            after,
            probation,
        });
        let (tx, outcome) = futures::channel::oneshot::channel();
        let mut fallback = None;
        if upgrade.fallback_passed_on.is_some() {
            handoff::probation_handed_over();
            self.probation = None;
        } else if !probation.is_zero() {
            match Successor::watch(pid, started.channel, probation) {
                Ok(mut successor) => {
                    successor.reply_to(tx);
                    fallback = Some(Watch::Successor(successor));
                }
                Err(err) => log::error!("cannot watch successor pid={pid}'s probation: {err}"),
            }
        }
        if fallback.is_none() {
            drop(super::successor::reap_when_it_ends(pid));
        }
        let drain = Drain::start(
            self.handle.clone(),
            Duration::ZERO,
            self.config.drain_timeout,
        );
        let phase = std::mem::replace(&mut self.phase, Phase::Serving);
        self.phase = phase.handed_over(drain, fallback);
        if let Some(waiter) = upgrade.waiter {
            let pid = crate::error::public_pid(pid);
            let _ = waiter.send(Ok(super::handle::Upgraded {
                pid,
                probation: outcome,
            }));
        }
    }

    /// The upgrade failed: this process serves on, and says so.
    fn upgrade_failed(&mut self, err: UpgradeError, after: Duration, waiter: Option<Reply>) {
        let ms = after.as_secs_f64() * 1000.0;
        if waiter.as_ref().is_some_and(|w| !w.is_canceled()) {
            // The caller gets the error and reports it: not logged twice.
            log::info!(
                "upgrade failed after {ms:.1} ms; still serving (the error goes to the \
                 UpgradeHandle caller)"
            );
        } else {
            log::error!("upgrade failed after {ms:.1} ms: {err}; still serving");
        }
        // The successor may have written its pid before it failed.
        self.write_pid_file();
        sd_notify(&format!(
            "READY=1\n{}",
            status(&format!("serving; upgrade failed: {err}"))
        ));
        events::emit(AppEvent::UpgradeFailed {
            reason: err.to_string(),
            after,
        });
        if let Some(waiter) = waiter {
            let _ = waiter.send(Err(err));
        }
    }

    async fn drained(&mut self, drained: Drained) {
        let (after, left) = match drained {
            Drained::Empty { after } => {
                log::info!(
                    "drained: no client connection left after {:.1} ms",
                    after.as_secs_f64() * 1000.0
                );
                (after, Some(0))
            }
            Drained::TimedOut { after, left } => {
                let n = left.map_or_else(|| "?".to_owned(), |n| n.to_string());
                log::info!(
                    "drain timeout ({} ms) reached with {n} client connection(s) left",
                    after.as_millis()
                );
                (after, left)
            }
        };
        events::emit(AppEvent::Drained { after, left });
        let passed =
            matches!(self.phase.fallback_mut(), Some(Watch::Successor(s)) if s.has_passed());
        if self.phase.drained() {
            self.stop_actix(true);
        } else if passed {
            // The successor passed its probation while this process drained: it goes now,
            // unless the successor died meanwhile (then this process takes back).
            self.verdict(super::successor::Verdict::Passed).await;
        } else if self.phase.fallback_mut().is_some() {
            log::info!("standing by as the fallback until the successor's probation ends");
        }
    }

    /// The successor's probation ended.
    async fn verdict(&mut self, verdict: super::successor::Verdict) {
        use super::successor::Verdict;
        let Some((Watch::Successor(mut successor), stop_now)) = self.phase.take_fallback() else {
            return;
        };
        let pid = successor.serving();
        let after = successor.served();
        // Its report and its death can be read together (by a busy or stopped process): while
        // this process holds the listeners, a dead successor is a failed one.
        let verdict = match (verdict, successor.died()) {
            (Verdict::Passed, Some(status)) => {
                Verdict::Failed(format!("it died ({status}) as its probation ended"))
            }
            (verdict, _) => verdict,
        };
        match verdict {
            Verdict::Failed(reason) => {
                let err = UpgradeError::RolledBack {
                    pid: crate::error::public_pid(pid),
                    reason: reason.clone(),
                };
                self.take_back(pid, &reason, after).await;
                successor.answer(Err(err));
            }
            Verdict::Passed if successor.has_passed() => self.stop_actix(true),
            Verdict::Passed => {
                log::info!(
                    "successor pid={pid} passed its probation after {:.1} s",
                    after.as_secs_f64()
                );
                events::emit(AppEvent::ProbationPassed {
                    pid: crate::error::public_pid(pid),
                    after,
                });
                successor.answer(Ok(()));
                if stop_now {
                    self.stop_actix(true);
                } else {
                    // Still draining: its death meanwhile would still be taken back.
                    successor.pass();
                    self.phase.put_back_fallback(Watch::Successor(successor));
                }
            }
            Verdict::Stopping => {
                log::info!("successor pid={pid} stops for good: so does this process");
                successor.answer(Ok(()));
                if stop_now {
                    self.stop_actix(true);
                }
            }
        }
    }

    /// The successor failed: accept again, serve on, say so.
    async fn take_back(&mut self, pid: Pid, reason: &str, after: Duration) {
        log::error!(
            "rolled back: successor pid={pid} failed its probation after {:.1} s ({reason}); \
             accepting again, pid={} serves",
            after.as_secs_f64(),
            std::process::id()
        );
        self.resume_serving().await;
        self.write_pid_file();
        // systemd hears this only with NotifyAccess=all: MAINPID= named the successor.
        sd_notify(&format!(
            "MAINPID={}\nREADY=1\n{}",
            std::process::id(),
            status(&format!(
                "rolled back: successor pid {pid} failed ({reason})"
            ))
        ));
        events::emit(AppEvent::RolledBack {
            pid: crate::error::public_pid(pid),
            reason: reason.to_owned(),
            after,
        });
    }

    /// Accepts again and answers without `Connection: close`: the drain is over.
    async fn resume_serving(&mut self) {
        let phase = std::mem::replace(&mut self.phase, Phase::Serving);
        self.phase = phase.taken_back();
        self.handle.resume().await;
        drain::resume();
    }

    /// A word of the keeper (`None`: the keeper is gone).
    async fn keeper_says(&mut self, word: Option<Control>) {
        match word {
            None => {
                log::warn!("the keeper's control pipe closed: the keeper is gone");
                self.keeper = None;
            }
            Some(Control::Replaced) if matches!(self.phase, Phase::Serving) => {
                log::info!("the keeper serves through a newer generation: draining");
                self.give_up_probation(Report::Stopping { pid: Pid::this() });
                let drain = Drain::start(
                    self.handle.clone(),
                    Duration::ZERO,
                    self.config.drain_timeout,
                );
                let phase = std::mem::replace(&mut self.phase, Phase::Serving);
                self.phase = phase.handed_over(drain, Some(Watch::Keeper));
            }
            Some(Control::TakeBack) => {
                if let Some((Watch::Keeper, _)) = self.phase.take_fallback() {
                    log::error!("the keeper rolled the newer generation back: accepting again");
                    self.resume_serving().await;
                }
            }
            Some(Control::Release) => {
                if let Some((_, stop_now)) = self.phase.take_fallback() {
                    log::info!("the keeper released this generation");
                    if stop_now {
                        self.stop_actix(true);
                    }
                }
            }
            Some(word) => log::debug!("keeper: {word:?} ignored while {}", drain::state()),
        }
    }

    /// This process's own probation ended: tell the fallback; on a failure, drain and exit.
    fn own_probation_ended(&mut self, result: Result<(), String>) {
        self.probation = None;
        let pid = Pid::this();
        match result {
            Ok(()) => {
                log::info!("this build passed its probation");
                handoff::verdict(&Report::Passed { pid });
            }
            Err(reason) => {
                handoff::verdict(&Report::Failed {
                    pid,
                    reason: reason.clone(),
                });
                log::error!("this build failed its probation ({reason}): draining and exiting");
                events::emit(AppEvent::ProbationFailed {
                    reason: reason.clone(),
                });
                self.failed = Some(reason);
                let (handle, cap) = (self.handle.clone(), self.config.drain_timeout);
                let phase = std::mem::replace(&mut self.phase, Phase::Serving);
                self.phase = phase.stop(|| Drain::start(handle, Duration::ZERO, cap)).0;
            }
        }
    }

    /// Ends this process's probation without a verdict of its own: `report` says why.
    fn give_up_probation(&mut self, report: Report) {
        if self.probation.take().is_some() {
            handoff::verdict(&report);
        }
    }

    /// SIGTERM: stop with the careful drain (after the pre-stop delay), unless one runs.
    fn terminate(&mut self) {
        log::info!("SIGTERM: stopping with a graceful drain");
        self.give_up_probation(Report::Stopping { pid: Pid::this() });
        let starts_drain = matches!(self.phase, Phase::Serving | Phase::Upgrading(_));
        let (handle, delay, cap) = (
            self.handle.clone(),
            self.config.pre_stop_delay,
            self.config.drain_timeout,
        );
        let phase = std::mem::replace(&mut self.phase, Phase::Serving);
        let (phase, stop_now) = phase.stop(|| Drain::start(handle, delay, cap));
        self.phase = phase;
        if let Some(upgrade) = self.phase.upgrade_mut() {
            upgrade.cancel.stop_successor(Signal::SIGTERM);
        }
        if starts_drain {
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
        }
        if stop_now {
            self.stop_actix(true);
        }
    }

    /// SIGINT or SIGQUIT: stop at once. Whether `run` returns now (actix is already stopping
    /// gracefully and reads no further command: the process ends when `main` returns).
    async fn force(&mut self, name: &'static str) -> bool {
        log::info!("{name}: stopping at once");
        self.give_up_probation(Report::Stopping { pid: Pid::this() });
        let phase = std::mem::replace(&mut self.phase, Phase::Serving);
        self.phase = phase.force_stop();
        self.abandon_upgrade(Signal::SIGKILL).await;
        if self.actix_stop == Some(true) {
            log::info!(
                "{name} while stopping: exiting now (pid={})",
                std::process::id()
            );
            return true;
        }
        self.stop_actix(false);
        false
    }

    /// Asks actix to stop (once); its task's end comes back as [`Step::Stopped`].
    fn stop_actix(&mut self, graceful: bool) {
        if self.actix_stop.is_some() {
            return;
        }
        self.actix_stop = Some(graceful);
        let handle = self.handle.clone();
        actix_rt::spawn(async move { handle.stop(graceful).await });
    }

    fn write_pid_file(&self) {
        if let Some(pid_file) = &self.pid_file {
            if let Err(e) = pid_file.write() {
                log::error!("cannot rewrite pid file {}: {e}", pid_file.path().display());
            }
        }
    }
}
