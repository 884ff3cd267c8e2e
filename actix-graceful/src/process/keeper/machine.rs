//! The keeper as a pure state machine: [`Event`]s in (a signal, a start's result, a generation
//! that exited, time passed, each with the `Instant` it happened at), [`Action`]s out. It owns
//! every decision and text (log lines, `sd_notify` messages, exit status) and must not call
//! `kill`, `waitpid`, `sd_notify`, pipes, threads or clocks: the driver does, and reports back.

use std::time::{Duration, Instant};

use log::Level;
use nix::{sys::signal::Signal, unistd::Pid};

use crate::protocol::notify;

/// A generation that served this long before it died counts as a one-off crash, not a loop.
pub(crate) const STABLE: Duration = Duration::from_secs(10);
/// Failed generations in a row the keeper replaces; one more and it gives up.
pub(crate) const MAX_FAILURES: u32 = 5;
/// The delay before the second replacement in a row; doubled for each further one.
const FIRST_BACKOFF: Duration = Duration::from_millis(250);

/// What happens to the keeper. `C` is a started generation's control pipe (its write end).
#[derive(Debug)]
pub(super) enum Event<C> {
    /// The keeper begins: start the first generation.
    Begin,
    /// A caught signal arrived.
    Signal(Signal),
    /// The start requested by [`Action::Spawn`] ended: the generation is ready (its pid and
    /// control pipe), or why it is not.
    Started(Result<(Pid, C), String>),
    /// [`Action::Spawn`] could not be passed to the start thread (it is gone).
    StarterGone,
    /// A child of the keeper ended: its status for the process and how it ended.
    Exited { pid: Pid, code: i32, how: String },
    /// The end of a round of the driver's loop: time to act on what is due.
    Tick,
}

/// What the driver does for the keeper, in order.
#[derive(Debug, PartialEq, Eq)]
pub(super) enum Action<C> {
    /// A log line.
    Log(Level, String),
    /// `sd_notify` this message as it is.
    Notify(String),
    /// `sd_notify` `RELOADING=1` with the current `MONOTONIC_USEC=` and this `STATUS=` line.
    Reloading(String),
    /// The keeper serves as a whole (`announce::serving`) with this `STATUS=` line.
    Announce(String),
    /// Start generation number `n` (one start at a time; its result comes back as
    /// [`Event::Started`]).
    Spawn(u64),
    /// Stop the generation being started with this signal (the start still reports).
    CancelStart(Signal),
    /// Send a signal to a generation (its failure is of no interest).
    Kill(Pid, Signal),
    /// Tell the generation through its control pipe that a newer one serves; then close it.
    Replaced(Pid, C),
    /// Every generation has exited: the keeper ends with this status, for this reason.
    Exit { code: i32, why: String },
}

/// Which start this is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    First,
    Upgrade,
    Restart,
}

/// The start in flight.
struct Starting {
    kind: Kind,
    since: Instant,
}

/// The generation that serves.
struct Generation<C> {
    pid: Pid,
    number: u64,
    ready_at: Instant,
    /// The write end of its control pipe.
    control: C,
}

/// The keeper's whole state.
pub(super) struct Machine<C> {
    /// The keeper's pid, for the texts.
    me: u32,
    upgrade: i32,
    /// Also sent to a replaced generation, for one of an older version of this crate.
    legacy: Option<Signal>,
    /// Generations started so far (each start gets the next number, from 1).
    started: u64,
    /// The generation that serves.
    current: Option<Generation<C>>,
    /// Generations told to stop, still draining.
    old: Vec<Pid>,
    starting: Option<Starting>,
    /// When to start a replacement for a generation that died.
    restart_at: Option<Instant>,
    /// Failed generations in a row.
    failures: u32,
    /// The stop signal received, if any.
    stopping: Option<Signal>,
    /// The exit status of the last current generation that exited, and how it ended.
    exit_code: i32,
    exit_how: String,
    gave_up: bool,
    /// Whether the first generation got ready (READY=1, pid file).
    announced: bool,
    /// What the event being handled asks for.
    out: Vec<Action<C>>,
}

impl<C> Machine<C> {
    /// A keeper with pid `me`, whose upgrade signal is `upgrade`, and which also sends `legacy`
    /// to a replaced generation.
    pub(super) fn new(me: u32, upgrade: i32, legacy: Option<Signal>) -> Self {
        Machine {
            me,
            upgrade,
            legacy,
            started: 0,
            current: None,
            old: Vec::new(),
            starting: None,
            restart_at: None,
            failures: 0,
            stopping: None,
            exit_code: 0,
            exit_how: "exit status 0".to_owned(),
            gave_up: false,
            announced: false,
            out: Vec::new(),
        }
    }

    /// Handles `event`, which happened at `now`: what the driver must do, in order.
    pub(super) fn handle(&mut self, now: Instant, event: Event<C>) -> Vec<Action<C>> {
        match event {
            Event::Begin => {
                self.log(
                    Level::Info,
                    format!("keeper pid={}: starting the first generation", self.me),
                );
                self.start(now, Kind::First);
            }
            Event::Signal(signal) => self.on_signal(now, signal),
            Event::Started(result) => self.on_started(now, result),
            Event::StarterGone => {
                self.starting = None;
                self.log(
                    Level::Error,
                    "keeper: the start thread is gone; cannot start a generation",
                );
                self.failed(now);
                self.finish();
            }
            Event::Exited { pid, code, how } => self.ended(now, pid, code, how),
            Event::Tick => self.tick(now),
        }
        std::mem::take(&mut self.out)
    }

    /// The generations to reap: the current one and those draining.
    pub(super) fn generations(&self) -> Vec<Pid> {
        self.current
            .iter()
            .map(|g| g.pid)
            .chain(self.old.iter().copied())
            .collect()
    }

    /// Whether a start is in flight (its own `waitpid` must find its child).
    pub(super) fn is_starting(&self) -> bool {
        self.starting.is_some()
    }

    /// When a replacement is due, if one is: the driver wakes then at the latest.
    pub(super) fn deadline(&self) -> Option<Instant> {
        self.restart_at
    }

    fn log(&mut self, level: Level, text: impl Into<String>) {
        self.out.push(Action::Log(level, text.into()));
    }

    fn tick(&mut self, now: Instant) {
        if let Some(at) = self.restart_at {
            if self.starting.is_none() && self.stopping.is_none() && now >= at {
                self.restart_at = None;
                self.start(now, Kind::Restart);
            }
        }
        if let Some(current) = &self.current {
            if self.failures > 0 && now.saturating_duration_since(current.ready_at) >= STABLE {
                self.failures = 0;
            }
        }
        self.finish();
    }

    /// Once stopping and every generation has exited: [`Action::Exit`].
    fn finish(&mut self) {
        if self.stopping.is_none()
            || self.current.is_some()
            || !self.old.is_empty()
            || self.starting.is_some()
        {
            return;
        }
        let (code, why) = if self.gave_up {
            let why = format!(
                "gave up after {} failed generations in a row",
                self.failures
            );
            (1, why)
        } else {
            let why = format!("the last generation ended with {}", self.exit_how);
            (self.exit_code, why)
        };
        self.out.push(Action::Exit { code, why });
    }

    fn on_signal(&mut self, now: Instant, signal: Signal) {
        match signal {
            _ if signal as i32 == self.upgrade => self.on_upgrade_signal(now),
            Signal::SIGCHLD => {}
            Signal::SIGTERM | Signal::SIGINT | Signal::SIGQUIT => self.stop(signal),
            Signal::SIGHUP => {
                self.log(
                    Level::Info,
                    "keeper: SIGHUP (hang-up): stopping as on SIGTERM",
                );
                self.stop(Signal::SIGTERM);
            }
            other => self.log(Level::Debug, format!("keeper: ignoring {other}")),
        }
    }

    fn on_upgrade_signal(&mut self, now: Instant) {
        if self.stopping.is_some() {
            self.log(Level::Warn, "upgrade refused: the keeper is stopping");
        } else if let Some(starting) = &self.starting {
            let what = match starting.kind {
                Kind::Upgrade => "an upgrade is already in progress",
                Kind::First | Kind::Restart => "a generation is being started",
            };
            self.log(Level::Warn, format!("upgrade refused: {what}"));
        } else if self.current.is_none() {
            self.log(
                Level::Info,
                "upgrade signal while no generation runs: starting one now",
            );
            self.restart_at = Some(now);
        } else {
            self.start(now, Kind::Upgrade);
        }
    }

    /// `STATUS=` for systemd: the serving generation's number and pid, the keeper, `state`.
    fn status(&self, state: &str) -> String {
        let (number, pid) = self
            .current
            .as_ref()
            .map_or((0, 0), |g| (g.number, g.pid.as_raw() as u32));
        notify::status(number, pid, &format!("{state} (keeper pid {})", self.me))
    }

    fn start(&mut self, now: Instant, kind: Kind) {
        self.started += 1;
        if kind == Kind::Upgrade {
            self.log(
                Level::Info,
                format!("upgrade: starting generation {}", self.started),
            );
            let state = format!("upgrading: starting generation {}", self.started);
            let status = self.status(&state);
            self.out.push(Action::Reloading(status));
        }
        self.starting = Some(Starting { kind, since: now });
        self.out.push(Action::Spawn(self.started));
    }

    fn on_started(&mut self, now: Instant, result: Result<(Pid, C), String>) {
        let Some(starting) = self.starting.take() else {
            return;
        };
        let ms = now.saturating_duration_since(starting.since).as_secs_f64() * 1000.0;
        if let Some(signal) = self.stopping {
            match result {
                Ok((pid, _)) => {
                    // Got ready just as the stop came: it stops too.
                    self.log(
                        Level::Info,
                        format!(
                            "keeper: generation pid={pid} got ready while stopping: sending {signal}"
                        ),
                    );
                    self.out.push(Action::Kill(pid, signal));
                    self.old.push(pid);
                }
                Err(err) => self.log(
                    Level::Info,
                    format!("keeper: start abandoned for the stop: {err}"),
                ),
            }
            return;
        }
        match (starting.kind, result) {
            (Kind::Upgrade, Ok((pid, control))) => {
                self.restart_at = None;
                let new = Generation {
                    pid,
                    number: self.started,
                    ready_at: now,
                    control,
                };
                let state = match self.current.replace(new) {
                    Some(prev) => {
                        self.log(
                            Level::Info,
                            format!(
                                "upgrade: successor pid={pid} ready after {ms:.1} ms; draining generation pid={}",
                                prev.pid
                            ),
                        );
                        let state = format!("serving; generation {} draining", prev.number);
                        self.old.push(prev.pid);
                        self.out.push(Action::Replaced(prev.pid, prev.control));
                        if let Some(signal) = self.legacy {
                            self.out.push(Action::Kill(prev.pid, signal));
                        }
                        state
                    }
                    None => {
                        self.log(
                            Level::Info,
                            format!("upgrade: successor pid={pid} ready after {ms:.1} ms"),
                        );
                        "serving".to_owned()
                    }
                };
                let status = self.status(&state);
                self.out.push(Action::Notify(format!("READY=1\n{status}")));
            }
            (Kind::Upgrade, Err(err)) => {
                let serving = self
                    .current
                    .as_ref()
                    .map_or("no generation".to_owned(), |g| {
                        format!("generation pid={}", g.pid)
                    });
                self.log(
                    Level::Error,
                    format!("upgrade failed after {ms:.1} ms: {err}; {serving} keeps serving"),
                );
                let status = self.status(&format!("serving; upgrade failed: {err}"));
                self.out.push(Action::Notify(format!("READY=1\n{status}")));
            }
            (Kind::First | Kind::Restart, Ok((pid, control))) => {
                self.restart_at = None;
                self.log(
                    Level::Info,
                    format!("keeper: generation pid={pid} ready after {ms:.1} ms"),
                );
                self.current = Some(Generation {
                    pid,
                    number: self.started,
                    ready_at: now,
                    control,
                });
                let status = self.status("serving");
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
            (Kind::First | Kind::Restart, Err(err)) => {
                self.log(
                    Level::Error,
                    format!("keeper: starting a generation failed after {ms:.1} ms: {err}"),
                );
                self.failed(now);
            }
        }
    }

    /// A generation failed to start or died unasked: schedule a replacement, or give up.
    fn failed(&mut self, now: Instant) {
        self.failures += 1;
        if self.failures > MAX_FAILURES {
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
        self.restart_at = Some(now + delay);
    }

    fn stop(&mut self, signal: Signal) {
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
        self.restart_at = None;
        if self.starting.is_some() {
            self.out.push(Action::CancelStart(signal));
        }
        for pid in self.generations() {
            self.out.push(Action::Kill(pid, signal));
        }
    }

    fn ended(&mut self, now: Instant, pid: Pid, code: i32, how: String) {
        if self.current.as_ref().is_some_and(|g| g.pid == pid) {
            let Some(gen) = self.current.take() else {
                return;
            };
            self.exit_code = code;
            self.exit_how.clone_from(&how);
            if self.stopping.is_some() {
                self.log(
                    Level::Info,
                    format!("keeper: generation pid={pid} stopped ({how})"),
                );
                return;
            }
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
            self.failed(now);
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
}

/// The delay before a replacement after `failures` failures in a row: none for the first,
/// then 250 ms doubling.
fn backoff(failures: u32) -> Duration {
    match failures {
        0 | 1 => Duration::ZERO,
        n => FIRST_BACKOFF * 2u32.saturating_pow((n - 2).min(16)),
    }
}

#[cfg(test)]
mod tests;
