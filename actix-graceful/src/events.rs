//! [`Event`]: what happened to the service, as the app sees it through
//! [`Graceful::on_event`](crate::Graceful::on_event) (for its metrics or its own log). Plain
//! data and the registered callback; nothing here decides anything.

use std::{
    sync::{Arc, OnceLock},
    time::Duration,
};

/// Something that happened to the service, handed to the callback of
/// [`Graceful::on_event`](crate::Graceful::on_event) in the process where it happened.
///
/// Every outcome of an upgrade is one: the successor ready (or not, and why), its probation
/// passed or failed (and the rollback), the drain's end. Process ids are `u32`, as
/// [`std::process::id`].
///
/// # Examples
///
/// ```
/// use actix_graceful::Event;
///
/// fn record(event: &Event) {
///     match event {
///         Event::SuccessorReady { pid, after, .. } => {
///             println!("upgrade: pid {pid} ready after {} ms", after.as_millis())
///         }
///         Event::RolledBack { reason, .. } => println!("rolled back: {reason}"),
///         other => println!("{other:?}"),
///     }
/// }
/// let graceful = actix_graceful::Graceful::new().on_event(record);
/// # drop(graceful);
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum Event {
    /// This process serves: it passed its readiness checks and reported ready (to its
    /// predecessor, keeper or service manager). `after`: since `run` was called.
    Serving {
        /// This process.
        pid: u32,
        /// Its generation (1 for the first).
        generation: u64,
        /// Time from `run` to ready, readiness check and self-probe included.
        after: Duration,
    },
    /// An upgrade started: a successor is being started.
    UpgradeStarted {
        /// The successor's generation.
        generation: u64,
    },
    /// The successor serves; this process drains (and, with a probation, stays ready to take
    /// the listeners back).
    SuccessorReady {
        /// The successor.
        pid: u32,
        /// Time from the upgrade's start to the successor's ready report.
        after: Duration,
        /// The successor's probation (zero: none).
        probation: Duration,
    },
    /// The upgrade failed before the successor served (it was not ready, said why, exited,
    /// hung...): this process serves on.
    UpgradeFailed {
        /// Why, as [`UpgradeError`](crate::UpgradeError)'s text.
        reason: String,
        /// Time from the upgrade's start to the failure.
        after: Duration,
    },
    /// This process's drain ended: no client connection was left, or its timeout came.
    Drained {
        /// Time from the drain's start (after any pre-stop delay).
        after: Duration,
        /// Client connections still open (`None`: they could not be counted).
        left: Option<usize>,
    },
    /// The successor passed its probation: this process, its fallback, stops.
    ProbationPassed {
        /// The successor.
        pid: u32,
        /// Time from its ready report.
        after: Duration,
    },
    /// The successor failed its probation (it died, answered too many 5xx, or the app's check
    /// failed): this process took the listeners back and serves again.
    RolledBack {
        /// The successor.
        pid: u32,
        /// What happened to it.
        reason: String,
        /// Time from its ready report to the take-back.
        after: Duration,
    },
    /// This process failed its own probation and said so to its fallback: it stops accepting,
    /// drains its clients and exits.
    ProbationFailed {
        /// Why.
        reason: String,
    },
}

/// The app's event callback.
pub(crate) type Callback = Arc<dyn Fn(&Event) + Send + Sync>;

static CALLBACK: OnceLock<Callback> = OnceLock::new();

/// Makes `callback` the receiver of every [`Event`] of this process (the first one set wins:
/// one `Graceful` runs per process).
pub(crate) fn set(callback: Callback) {
    if CALLBACK.set(callback).is_err() {
        log::warn!("an event callback is already set in this process; keeping the first");
    }
}

/// Hands `event` to the app's callback, if it set one.
pub(crate) fn emit(event: Event) {
    if let Some(callback) = CALLBACK.get() {
        callback(&event);
    }
}
