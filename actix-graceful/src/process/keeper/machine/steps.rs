//! The keeper's transitions: starts and their results, upgrades and their probation (passed,
//! or rolled back to the generation standing by, or to the last good build), deaths and the
//! crash loop, stops.

use std::time::Instant;

use log::Level;
use nix::{sys::signal::Signal, unistd::Pid};

use super::{
    backoff, Action, BuildId, Generation, Kind, Machine, Ready, Restart, Starting, MAX_FAILURES,
    STABLE, VERDICT_GRACE,
};
use crate::{
    error::public_pid,
    events::Event as AppEvent,
    protocol::{control::Control, notify},
    ExitStatus,
};

impl Machine {
    pub(super) fn on_upgrade_signal(&mut self, now: Instant) {
        if self.stopping.is_some() {
            self.log(Level::Warn, "upgrade refused: the keeper is stopping");
        } else if let Some(starting) = &self.starting {
            let what = match starting.kind {
                Kind::Upgrade => "an upgrade is already in progress",
                Kind::First | Kind::Restart | Kind::Rollback => "a generation is being started",
            };
            self.log(Level::Warn, format!("upgrade refused: {what}"));
        } else if self.current.is_none() {
            self.log(
                Level::Info,
                "upgrade signal while no generation runs: starting one now",
            );
            let kind = Kind::Restart;
            self.restart = Some(Restart {
                at: now,
                kind,
                build: None,
            });
        } else {
            self.start(now, Kind::Upgrade, None);
        }
    }

    pub(super) fn start(&mut self, now: Instant, kind: Kind, build: Option<BuildId>) {
        self.started += 1;
        if kind == Kind::Upgrade {
            self.log(
                Level::Info,
                format!("upgrade: starting generation {}", self.started),
            );
            let state = format!("upgrading: starting generation {}", self.started);
            let status = self.status(&state);
            self.out.push(Action::Reloading(status));
            let generation = self.started;
            self.events.push(AppEvent::UpgradeStarted { generation });
        }
        self.starting = Some(Starting {
            kind,
            since: now,
            build,
        });
        self.out.push(Action::Spawn(self.started, build));
    }

    pub(super) fn on_started(&mut self, now: Instant, result: Result<Ready, String>) {
        let Some(starting) = self.starting.take() else {
            return;
        };
        let ms = now.saturating_duration_since(starting.since).as_secs_f64() * 1000.0;
        if let Some(signal) = self.stopping {
            match result {
                Ok(ready) => {
                    // Got ready just as the stop came: it stops too.
                    self.log(
                        Level::Info,
                        format!(
                            "keeper: generation pid={} got ready while stopping: sending {signal}",
                            ready.pid
                        ),
                    );
                    self.out.push(Action::Kill(ready.pid, signal));
                    self.old.push(ready.pid);
                }
                Err(err) => self.log(
                    Level::Info,
                    format!("keeper: start abandoned for the stop: {err}"),
                ),
            }
            return;
        }
        match (starting.kind, result) {
            (Kind::Upgrade, Ok(ready)) => {
                self.events.push(AppEvent::SuccessorReady {
                    pid: public_pid(ready.pid),
                    after: now.saturating_duration_since(starting.since),
                    probation: ready.probation,
                });
                self.upgraded(now, ms, ready);
            }
            (Kind::Upgrade, Err(err)) => {
                self.events.push(AppEvent::UpgradeFailed {
                    reason: err.clone(),
                    after: now.saturating_duration_since(starting.since),
                });
                let serving = self.current.map_or("no generation".to_owned(), |g| {
                    format!("generation pid={}", g.pid)
                });
                self.log(
                    Level::Error,
                    format!("upgrade failed after {ms:.1} ms: {err}; {serving} keeps serving"),
                );
                let status = self.status(&format!("serving; upgrade failed: {err}"));
                self.out.push(Action::Notify(format!("READY=1\n{status}")));
            }
            (kind, Ok(ready)) => self.serving(now, ms, kind, ready),
            (_, Err(err)) => {
                self.log(
                    Level::Error,
                    format!("keeper: starting a generation failed after {ms:.1} ms: {err}"),
                );
                self.failed(now, starting.build);
            }
        }
    }

    /// A new generation is ready after an upgrade: the one it replaces drains, and stands by
    /// as the fallback when the new one is on probation and the replaced one had passed its
    /// own or none stands by yet (else the fallback already standing by stays it).
    fn upgraded(&mut self, now: Instant, ms: f64, ready: Ready) {
        self.restart = None;
        let new = self.generation(now, &ready);
        let Some(prev) = self.current.replace(new) else {
            self.log(
                Level::Info,
                format!("upgrade: successor pid={} ready after {ms:.1} ms", new.pid),
            );
            self.after_ready(new);
            return;
        };
        self.log(
            Level::Info,
            format!(
                "upgrade: successor pid={} ready after {ms:.1} ms; draining generation pid={}",
                new.pid, prev.pid
            ),
        );
        self.control(prev.pid, Control::Replaced);
        // The one to fall back to: the last generation that passed its probation; with none
        // standing by, the one replaced, proven or not (it served, the new one has not yet).
        let stands_by = prev.probation_until.is_none() || self.fallback.is_none();
        if new.probation_until.is_some() && stands_by {
            self.release_fallback();
            self.fallback = Some(prev);
        } else {
            self.control(prev.pid, Control::Release);
            self.old.push(prev.pid);
        }
        self.after_ready(new);
        let state = format!("serving; generation {} draining", prev.number);
        let status = self.status(&state);
        self.out.push(Action::Notify(format!("READY=1\n{status}")));
    }

    /// A generation started anew (first, restart, rollback) is ready.
    fn serving(&mut self, now: Instant, ms: f64, kind: Kind, ready: Ready) {
        self.restart = None;
        let pid = ready.pid;
        self.log(
            Level::Info,
            format!("keeper: generation pid={pid} ready after {ms:.1} ms"),
        );
        let new = self.generation(now, &ready);
        self.current = Some(new);
        self.after_ready(new);
        let status = if kind == Kind::Rollback {
            self.status("serving; rolled back to the previous build")
        } else {
            self.status("serving")
        };
        if self.announced {
            self.out.push(Action::Notify(status));
        } else {
            // The first generation serves: the keeper is ready as a whole.
            self.announced = true;
            self.out.push(Action::Announce(status));
            self.log(
                Level::Info,
                format!(
                    "keeper pid={}: serving through generation pid={pid}",
                    self.me
                ),
            );
        }
    }

    fn generation(&self, now: Instant, ready: &Ready) -> Generation {
        Generation {
            pid: ready.pid,
            number: self.started,
            ready_at: now,
            build: ready.build,
            probation_until: (!ready.probation.is_zero())
                .then(|| now + ready.probation + VERDICT_GRACE),
        }
    }

    /// A generation without a probation is good at once; with one, once it passes.
    fn after_ready(&mut self, new: Generation) {
        if new.probation_until.is_none() {
            self.good_is(new.build);
            self.release_fallback();
        }
    }

    fn release_fallback(&mut self) {
        if let Some(fallback) = self.fallback.take() {
            self.control(fallback.pid, Control::Release);
            self.old.push(fallback.pid);
        }
    }

    /// The current generation passed its probation: its build is the good one now.
    pub(super) fn passed(&mut self, now: Instant) {
        let Some(current) = &mut self.current else {
            return;
        };
        if current.probation_until.take().is_none() {
            return;
        }
        let (pid, served) = (current.pid, now.saturating_duration_since(current.ready_at));
        let build = current.build;
        self.events.push(AppEvent::ProbationPassed {
            pid: public_pid(pid),
            after: served,
        });
        self.good_is(build);
        self.log(
            Level::Info,
            format!(
                "keeper: generation pid={pid} passed its probation after {:.1} s",
                served.as_secs_f64()
            ),
        );
        self.release_fallback();
        let status = self.status("serving; probation passed");
        self.out.push(Action::Notify(status));
    }

    /// The current generation failed its probation (`alive`: it said so and exits by itself):
    /// the fallback takes back, else the last good build starts, else it is a failure.
    pub(super) fn rolled_back(&mut self, now: Instant, reason: &str, alive: bool) {
        let Some(failed) = self.current.take() else {
            return;
        };
        if alive {
            self.old.push(failed.pid);
        }
        self.events.push(AppEvent::RolledBack {
            pid: public_pid(failed.pid),
            reason: reason.to_owned(),
            after: now.saturating_duration_since(failed.ready_at),
        });
        let status_text = format!("rolled back to the previous build ({reason})");
        if let Some(fallback) = self.fallback.take() {
            self.log(
                Level::Error,
                format!(
                    "keeper: generation pid={} failed its probation ({reason}); rolled back to \
                     the previous build: generation pid={} serves again",
                    failed.pid, fallback.pid
                ),
            );
            self.control(fallback.pid, Control::TakeBack);
            self.current = Some(fallback);
            let status = self.status(&status_text);
            self.out.push(Action::Notify(format!("READY=1\n{status}")));
        } else if let Some(good) = self.good_but(failed.build) {
            self.log(
                Level::Error,
                format!(
                    "keeper: generation pid={} failed its probation ({reason}) and no generation \
                     stands by: starting the previous build",
                    failed.pid
                ),
            );
            let status = notify::status(failed.number, failed.pid.as_raw() as u32, &status_text);
            self.out.push(Action::Notify(status));
            self.restart = Some(Restart {
                at: now,
                kind: Kind::Rollback,
                build: Some(good),
            });
        } else {
            self.log(
                Level::Error,
                format!(
                    "keeper: generation pid={} failed its probation ({reason})",
                    failed.pid
                ),
            );
            self.failed(now, failed.build);
        }
    }

    /// A generation failed to start or died unasked: schedule a replacement of the same
    /// `build`, roll back to the good build once this one failed too often, or give up.
    pub(super) fn failed(&mut self, now: Instant, build: Option<BuildId>) {
        self.failures += 1;
        self.failing = build;
        if self.failures > MAX_FAILURES {
            if let Some(good) = self.good_but(build) {
                self.log(
                    Level::Error,
                    format!(
                        "keeper: {} generations of this build failed in a row; rolled back to \
                         the previous build",
                        self.failures
                    ),
                );
                self.failures = 0;
                self.restart = Some(Restart {
                    at: now,
                    kind: Kind::Rollback,
                    build: Some(good),
                });
                return;
            }
            self.give_up();
            return;
        }
        let delay = backoff(self.failures);
        let when = if delay.is_zero() {
            "now".to_owned()
        } else {
            format!("in {delay:?}")
        };
        self.log(
            Level::Warn,
            format!(
                "keeper: starting a new generation {when} (failure {} of at most {MAX_FAILURES} in a row)",
                self.failures
            ),
        );
        self.restart = Some(Restart {
            at: now + delay,
            kind: Kind::Restart,
            build,
        });
    }

    fn give_up(&mut self) {
        self.log(
            Level::Error,
            format!(
                "keeper: {} generations failed in a row; giving up",
                self.failures
            ),
        );
        let status = self.status("crash loop: giving up");
        self.out.push(Action::Notify(status));
        self.gave_up = true;
        self.stop(Signal::SIGTERM);
    }

    pub(super) fn stop(&mut self, signal: Signal) {
        if self.stopping.is_none() {
            self.log(
                Level::Info,
                format!("keeper: {signal}: stopping every generation"),
            );
            let status = self.status("stopping");
            self.out
                .push(Action::Notify(format!("STOPPING=1\n{status}")));
        }
        self.stopping = Some(signal);
        self.restart = None;
        if self.starting.is_some() {
            self.out.push(Action::CancelStart(signal));
        }
        for pid in self.generations() {
            self.out.push(Action::Kill(pid, signal));
        }
    }

    pub(super) fn ended(&mut self, now: Instant, pid: Pid, how: ExitStatus) {
        if self.current.is_some_and(|g| g.pid == pid) {
            self.current_ended(now, how);
        } else if self.fallback.is_some_and(|g| g.pid == pid) {
            self.fallback = None;
            self.log(
                Level::Warn,
                format!("keeper: generation pid={pid}, standing by, exited ({how})"),
            );
        } else if let Some(i) = self.old.iter().position(|&p| p == pid) {
            self.old.remove(i);
            self.log(
                Level::Info,
                format!("keeper: old generation pid={pid} exited ({how})"),
            );
        } else {
            self.log(Level::Debug, format!("keeper: reaped pid={pid} ({how})"));
        }
    }

    fn current_ended(&mut self, now: Instant, how: ExitStatus) {
        let Some(gen) = self.current else {
            return;
        };
        self.last_exit = how;
        let pid = gen.pid;
        if self.stopping.is_some() {
            self.current = None;
            self.log(
                Level::Info,
                format!("keeper: generation pid={pid} stopped ({how})"),
            );
            return;
        }
        if gen.probation_until.is_some() {
            self.rolled_back(now, &format!("it died ({how})"), false);
            return;
        }
        self.current = None;
        let up = now.saturating_duration_since(gen.ready_at);
        self.log(
            Level::Error,
            format!(
                "keeper: generation pid={pid} exited unasked ({how}) after {:.1} s of serving; \
                 the keeper holds the sockets, clients queue",
                up.as_secs_f64()
            ),
        );
        self.out.push(Action::Notify(notify::status(
            gen.number,
            pid.as_raw() as u32,
            &format!(
                "died ({how}); starting a new generation (keeper pid {})",
                self.me
            ),
        )));
        if up >= STABLE {
            self.failures = 0;
        }
        self.failed(now, gen.build);
    }
}
