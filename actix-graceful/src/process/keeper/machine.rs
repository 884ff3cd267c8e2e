//! The keeper as a pure state machine: [`Event`]s in (a signal, a start's result, a
//! generation's report, a generation that exited, time passed, each with the `Instant` it
//! happened at), [`Action`]s out. It owns every decision and text (log lines, `sd_notify`
//! messages, exit status) and must not call `kill`, `waitpid`, `sd_notify`, pipes, threads or
//! clocks: the driver does, and reports back. Its transitions are in `machine/steps.rs`; this
//! file holds its state and the events' dispatch.
//!
//! Builds: every start runs a build, which the driver holds open ([`BuildId`]): the file at the
//! started path for an upgrade (a new deploy), the build that crashed for a restart, the last
//! good build (the newest that passed a probation) for a rollback. So a rollback runs the good
//! build even after its file was replaced on disk.

use std::time::{Duration, Instant};

use log::Level;
use nix::{sys::signal::Signal, unistd::Pid};

use crate::{
    events::Event as AppEvent,
    process::handoff::Heard,
    protocol::{control::Control, notify, report::Report},
    ExitStatus,
};

mod steps;

/// A generation that served this long before it died counts as a one-off crash, not a loop.
pub(crate) const STABLE: Duration = Duration::from_secs(10);
/// Failed generations in a row the keeper replaces; one more and it rolls back to the last good
/// build, or, with none at hand, gives up.
pub(crate) const MAX_FAILURES: u32 = 5;
/// The delay before the second replacement in a row; doubled for each further one.
const FIRST_BACKOFF: Duration = Duration::from_millis(250);
/// How long after its probation's end a generation may still send its verdict: none by then
/// counts as passed (a wedged generation does not keep its fallback forever).
const VERDICT_GRACE: Duration = Duration::from_secs(5);

/// A build the driver holds open, by number.
pub(super) type BuildId = u64;

/// A start that got ready.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct Ready {
    pub(super) pid: Pid,
    /// The build it runs, if the driver holds it.
    pub(super) build: Option<BuildId>,
    /// The probation it announced (zero: none).
    pub(super) probation: Duration,
}

/// What happens to the keeper.
#[derive(Debug)]
pub(super) enum Event {
    /// The keeper begins: start the first generation.
    Begin,
    /// A caught signal arrived.
    Signal(Signal),
    /// The start requested by [`Action::Spawn`] ended: the generation is ready, or why not.
    Started(Result<Ready, String>),
    /// [`Action::Spawn`] could not be passed to the start thread (it is gone).
    StarterGone,
    /// A generation said something on its report channel.
    Report { pid: Pid, heard: Heard },
    /// A child of the keeper ended, so.
    Exited { pid: Pid, status: ExitStatus },
    /// The end of a round of the driver's loop: time to act on what is due.
    Tick,
}

/// What the driver does for the keeper, in order.
#[derive(Debug, PartialEq, Eq)]
pub(super) enum Action {
    /// A log line.
    Log(Level, String),
    /// `sd_notify` this message as it is.
    Notify(String),
    /// `sd_notify` `RELOADING=1` with the current `MONOTONIC_USEC=` and this `STATUS=` line.
    Reloading(String),
    /// The keeper serves as a whole (`announce::serving`) with this `STATUS=` line.
    Announce(String),
    /// Start generation number `n` from `build` (none: the file at the started path, a new
    /// deploy), one start at a time; its result comes back as [`Event::Started`].
    Spawn(u64, Option<BuildId>),
    /// Stop the generation being started with this signal (the start still reports).
    CancelStart(Signal),
    /// Send a signal to a generation (its failure is of no interest).
    Kill(Pid, Signal),
    /// Say a word on a generation's control pipe.
    Control(Pid, Control),
    /// Every generation has exited: the keeper ends with this status, for this reason.
    Exit { code: i32, why: String },
}

/// Which start this is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    First,
    Upgrade,
    Restart,
    /// A start of the last good build after the current one failed.
    Rollback,
}

/// The start in flight.
struct Starting {
    kind: Kind,
    since: Instant,
    build: Option<BuildId>,
}

/// A generation that serves, or stands by.
#[derive(Debug, Clone, Copy)]
struct Generation {
    pid: Pid,
    number: u64,
    ready_at: Instant,
    build: Option<BuildId>,
    /// Until when it is on probation (with the grace for its verdict); none once it passed.
    probation_until: Option<Instant>,
}

/// A replacement to start once due.
#[derive(Debug, Clone, Copy)]
struct Restart {
    at: Instant,
    kind: Kind,
    build: Option<BuildId>,
}

/// The keeper's whole state.
pub(super) struct Machine {
    /// The keeper's pid, for the texts.
    me: u32,
    upgrade: i32,
    /// Generations started so far (each start gets the next number, from 1).
    started: u64,
    /// The generation that serves.
    current: Option<Generation>,
    /// While `current` is on probation: the generation it replaced, stopped accepting and
    /// drained, standing by to take back.
    fallback: Option<Generation>,
    /// Generations told to stop, still draining.
    old: Vec<Pid>,
    starting: Option<Starting>,
    restart: Option<Restart>,
    /// Failed generations in a row, and the build they ran.
    failures: u32,
    failing: Option<BuildId>,
    /// The builds that passed a probation (or had none), the newest last: the last two, so
    /// that a good build that crash-loops later still has one to go back to.
    good: Vec<BuildId>,
    /// The stop signal received, if any.
    stopping: Option<Signal>,
    /// How the last current generation that exited ended.
    last_exit: ExitStatus,
    gave_up: bool,
    /// Whether the first generation got ready (READY=1, pid file).
    announced: bool,
    /// What the event being handled asks for.
    out: Vec<Action>,
    /// What the app's event callback is to hear ([`Machine::take_events`]).
    events: Vec<AppEvent>,
}

impl Machine {
    /// A keeper with pid `me`, whose upgrade signal is `upgrade`.
    pub(super) fn new(me: u32, upgrade: i32) -> Self {
        Machine {
            me,
            upgrade,
            started: 0,
            current: None,
            fallback: None,
            old: Vec::new(),
            starting: None,
            restart: None,
            failures: 0,
            failing: None,
            good: Vec::new(),
            stopping: None,
            last_exit: ExitStatus::Code(0),
            gave_up: false,
            announced: false,
            out: Vec::new(),
            events: Vec::new(),
        }
    }

    /// Handles `event`, which happened at `now`: what the driver must do, in order.
    pub(super) fn handle(&mut self, now: Instant, event: Event) -> Vec<Action> {
        match event {
            Event::Begin => {
                self.log(
                    Level::Info,
                    format!("keeper pid={}: starting the first generation", self.me),
                );
                self.start(now, Kind::First, None);
            }
            Event::Signal(signal) => self.on_signal(now, signal),
            Event::Started(result) => self.on_started(now, result),
            Event::StarterGone => {
                self.starting = None;
                self.log(
                    Level::Error,
                    "keeper: the start thread is gone; cannot start a generation",
                );
                self.failed(now, None);
                self.finish();
            }
            Event::Report { pid, heard } => self.on_report(now, pid, heard),
            Event::Exited { pid, status } => self.ended(now, pid, status),
            Event::Tick => self.tick(now),
        }
        std::mem::take(&mut self.out)
    }

    /// The app's events since the last call, in order.
    pub(super) fn take_events(&mut self) -> Vec<AppEvent> {
        std::mem::take(&mut self.events)
    }

    /// The generations to reap: the current one, the fallback, and those draining.
    pub(super) fn generations(&self) -> Vec<Pid> {
        self.current
            .iter()
            .chain(&self.fallback)
            .map(|g| g.pid)
            .chain(self.old.iter().copied())
            .collect()
    }

    /// The builds to keep open.
    pub(super) fn builds(&self) -> Vec<BuildId> {
        let mut builds: Vec<BuildId> = [
            self.current.and_then(|g| g.build),
            self.fallback.and_then(|g| g.build),
            self.starting.as_ref().and_then(|s| s.build),
            self.restart.and_then(|r| r.build),
            self.failing,
        ]
        .into_iter()
        .flatten()
        .chain(self.good.iter().copied())
        .collect();
        builds.sort_unstable();
        builds.dedup();
        builds
    }

    /// Whether a start is in flight (its own `waitpid` must find its child).
    pub(super) fn is_starting(&self) -> bool {
        self.starting.is_some()
    }

    /// When something is due (a replacement, a verdict's deadline): the driver wakes then at
    /// the latest.
    pub(super) fn deadline(&self) -> Option<Instant> {
        let verdict = self.current.and_then(|g| g.probation_until);
        [self.restart.map(|r| r.at), verdict]
            .into_iter()
            .flatten()
            .min()
    }

    /// `build` passed: the newest good build.
    fn good_is(&mut self, build: Option<BuildId>) {
        if let Some(build) = build {
            self.good.retain(|b| *b != build);
            self.good.push(build);
            if self.good.len() > 2 {
                self.good.remove(0);
            }
        }
    }

    /// The newest good build other than `failed`, to roll back to.
    fn good_but(&self, failed: Option<BuildId>) -> Option<BuildId> {
        self.good.iter().rev().copied().find(|b| Some(*b) != failed)
    }

    fn log(&mut self, level: Level, text: impl Into<String>) {
        self.out.push(Action::Log(level, text.into()));
    }

    fn control(&mut self, pid: Pid, word: Control) {
        self.out.push(Action::Control(pid, word));
    }

    /// `STATUS=` for systemd: the serving generation's number and pid, the keeper, `state`.
    fn status(&self, state: &str) -> String {
        let (number, pid) = self
            .current
            .as_ref()
            .map_or((0, 0), |g| (g.number, g.pid.as_raw() as u32));
        notify::status(number, pid, &format!("{state} (keeper pid {})", self.me))
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

    /// A generation's report: only the current one's verdict matters (a replaced one that gives
    /// up its own probation says `stopping`; nothing to do).
    fn on_report(&mut self, now: Instant, pid: Pid, heard: Heard) {
        let current = self.current.is_some_and(|g| g.pid == pid);
        match heard {
            Heard::Report(Report::Passed { .. }) if current => self.passed(now),
            Heard::Report(Report::Failed { reason, .. }) if current => {
                self.rolled_back(now, &reason, true);
            }
            Heard::Bad(bad) => {
                self.log(Level::Warn, format!("keeper: generation pid={pid}: {bad}"))
            }
            _ => {}
        }
    }

    fn tick(&mut self, now: Instant) {
        if let Some(restart) = self.restart {
            if self.starting.is_none() && self.stopping.is_none() && now >= restart.at {
                self.restart = None;
                self.start(now, restart.kind, restart.build);
            }
        }
        if let Some(current) = self.current {
            if self.failures > 0 && now.saturating_duration_since(current.ready_at) >= STABLE {
                self.failures = 0;
                self.failing = None;
            }
            if current.probation_until.is_some_and(|until| now >= until) {
                self.log(
                    Level::Warn,
                    format!(
                        "keeper: no verdict from generation pid={} {} s after its probation's \
                         end; taking it as passed",
                        current.pid,
                        VERDICT_GRACE.as_secs()
                    ),
                );
                self.passed(now);
            }
        }
        self.finish();
    }

    /// Once stopping and every generation has exited: [`Action::Exit`].
    fn finish(&mut self) {
        if self.stopping.is_none() || !self.generations().is_empty() || self.starting.is_some() {
            return;
        }
        let (code, why) = if self.gave_up {
            let why = format!(
                "gave up after {} failed generations in a row",
                self.failures
            );
            (1, why)
        } else {
            let why = format!("the last generation ended with {}", self.last_exit);
            (self.last_exit.status_for_process(), why)
        };
        self.out.push(Action::Exit { code, why });
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
