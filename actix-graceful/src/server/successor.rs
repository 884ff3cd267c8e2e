//! Watching a successor that serves, as its fallback, until its probation's verdict: its report
//! channel (read through the runtime's reactor) and its exit (a thread blocked in `waitid`
//! reaps it). No timer polls anything: each event wakes the controller. It decides nothing:
//! the controller takes back or stops on the [`Verdict`].

use std::{
    future::Future,
    io,
    pin::Pin,
    task::{Context, Poll},
    time::{Duration, Instant},
};

use futures::{channel::oneshot, FutureExt as _};
use nix::unistd::Pid;
use tokio::io::unix::AsyncFd;

use crate::{
    process::{
        child::{self, Group},
        handoff::{Channel, Heard},
    },
    protocol::report::Report,
    ExitStatus, UpgradeError,
};

/// How long after its announced probation a successor may still send its verdict: a verdict
/// that never comes (a wedged successor) counts as passed then.
const VERDICT_GRACE: Duration = Duration::from_secs(5);

/// How a successor's probation ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) enum Verdict {
    /// It passed: the fallback may go.
    Passed,
    /// It failed (it said why, or died): the fallback takes the listeners back.
    Failed(String),
    /// It was asked to stop for good: the fallback stops too.
    Stopping,
}

/// Reaps the child `pid` on a thread of its own whenever it ends (killing what is left of its
/// process group unless it exited 0), and says how it ended.
pub(super) fn reap_when_it_ends(pid: Pid) -> oneshot::Receiver<ExitStatus> {
    let (tx, rx) = oneshot::channel();
    let spawned = std::thread::Builder::new()
        .name(format!("reap-{pid}"))
        .spawn(move || {
            let status = child::wait(pid, Group::KillOnFailure);
            log::info!("successor pid={pid} exited ({status})");
            let _ = tx.send(status);
        });
    if let Err(err) = spawned {
        log::warn!("cannot watch successor pid={pid}'s exit: {err}");
    }
    rx
}

/// A successor on probation, watched by this process, its fallback.
pub(super) struct Successor {
    /// The child this process started.
    child: Pid,
    /// The generation that serves and owes the verdict: the child, or a successor it started
    /// while on probation (which took over the channel).
    serving: Pid,
    ready_at: Instant,
    channel: Option<AsyncFd<Channel>>,
    exit: Option<oneshot::Receiver<ExitStatus>>,
    /// When no verdict came by then, the probation counts as passed.
    deadline: Pin<Box<actix_rt::time::Sleep>>,
    /// The `UpgradeHandle` caller waiting for the probation's end.
    reply: Option<oneshot::Sender<Result<(), UpgradeError>>>,
    /// It passed its probation; this process still drains and watches only for its death.
    passed: bool,
}

impl Successor {
    /// Watches `child`, ready now, on probation for `probation`, through `channel`.
    ///
    /// # Errors
    /// The runtime cannot watch the channel.
    pub(super) fn watch(child: Pid, channel: Channel, probation: Duration) -> io::Result<Self> {
        // Newer tokio deprecates `new` for `register` (tokio#8587: the fd must stay open while
        // registered), which tokio 1.28, the lowest we allow, lacks. The contract holds: the
        // `AsyncFd` owns the channel, which owns the fd.
        #[allow(deprecated)]
        let channel = AsyncFd::new(channel)?;
        let deadline = Instant::now() + probation + VERDICT_GRACE;
        Ok(Successor {
            child,
            serving: child,
            ready_at: Instant::now(),
            channel: Some(channel),
            exit: Some(reap_when_it_ends(child)),
            deadline: Box::pin(actix_rt::time::sleep_until(deadline.into())),
            reply: None,
            passed: false,
        })
    }

    /// The generation that serves now.
    pub(super) fn serving(&self) -> Pid {
        self.serving
    }

    /// How long it has served.
    pub(super) fn served(&self) -> Duration {
        self.ready_at.elapsed()
    }

    /// Who gets the probation's outcome.
    pub(super) fn reply_to(&mut self, reply: oneshot::Sender<Result<(), UpgradeError>>) {
        self.reply = Some(reply);
    }

    /// Hands the probation's outcome to the caller waiting for it, if any.
    pub(super) fn answer(&mut self, outcome: Result<(), UpgradeError>) {
        if let Some(reply) = self.reply.take() {
            let _ = reply.send(outcome);
        }
    }

    /// It passed its probation: from now on only its death is a verdict (see
    /// [`poll_verdict`](Self::poll_verdict)).
    pub(super) fn pass(&mut self) {
        self.passed = true;
    }

    /// Whether it passed its probation.
    pub(super) fn has_passed(&self) -> bool {
        self.passed
    }

    /// How our child ended, if it died by a failure ([`failed`]) and is known to have by now;
    /// never blocks.
    pub(super) fn died(&mut self) -> Option<ExitStatus> {
        if self.serving != self.child {
            return None;
        }
        match self.exit.as_mut()?.try_recv() {
            Ok(Some(status)) if failed(status) => Some(status),
            Ok(Some(_)) | Err(_) => {
                self.exit = None;
                None
            }
            Ok(None) => None,
        }
    }

    /// Polls for the verdict. Once it passed, the only verdict left is a death by failure (the
    /// probation's report and the death can arrive together, read late by a busy process):
    /// while this process still holds the listeners, taking them back keeps the service up.
    pub(super) fn poll_verdict(&mut self, cx: &mut Context<'_>) -> Poll<Verdict> {
        if self.passed {
            return self.poll_death_after_passing(cx);
        }
        while let Some(channel) = &mut self.channel {
            match poll_channel(channel, cx) {
                Poll::Ready(heard) => {
                    if let Some(verdict) = self.heard(heard) {
                        return Poll::Ready(verdict);
                    }
                }
                Poll::Pending => break,
            }
        }
        if let Some(exit) = &mut self.exit {
            if let Poll::Ready(status) = exit.poll_unpin(cx) {
                self.exit = None;
                if self.serving == self.child {
                    let status = status.unwrap_or(ExitStatus::Unknown);
                    return Poll::Ready(Verdict::Failed(format!("it died ({status})")));
                }
            }
        }
        if self.channel.is_none() && self.exit.is_none() && self.serving == self.child {
            return Poll::Ready(Verdict::Failed("it died".to_owned()));
        }
        if self.deadline.as_mut().poll(cx).is_ready() {
            log::warn!(
                "successor pid={}: no verdict {} s after its probation's end; taking it as passed",
                self.serving,
                VERDICT_GRACE.as_secs()
            );
            return Poll::Ready(Verdict::Passed);
        }
        Poll::Pending
    }

    /// After the probation passed: [`Verdict::Failed`] on our child's death by failure.
    fn poll_death_after_passing(&mut self, cx: &mut Context<'_>) -> Poll<Verdict> {
        let Some(exit) = &mut self.exit else {
            return Poll::Pending;
        };
        let Poll::Ready(status) = exit.poll_unpin(cx) else {
            return Poll::Pending;
        };
        self.exit = None;
        match status {
            Ok(status) if self.serving == self.child && failed(status) => {
                Poll::Ready(Verdict::Failed(format!(
                    "it died ({status}) after its probation, while this process still drained"
                )))
            }
            _ => Poll::Pending,
        }
    }

    /// What a message (or the channel's end) means; `None`: keep watching.
    fn heard(&mut self, heard: Heard) -> Option<Verdict> {
        match heard {
            Heard::Report(Report::Ready { pid, probation }) => {
                log::info!(
                    "generation pid={pid} serves, started by pid={} while on probation; \
                     its probation is {} ms and this process stays the fallback",
                    self.serving,
                    probation.as_millis()
                );
                self.serving = pid;
                let deadline = Instant::now() + probation + VERDICT_GRACE;
                self.deadline = Box::pin(actix_rt::time::sleep_until(deadline.into()));
                None
            }
            Heard::Report(Report::Passed { .. }) => Some(Verdict::Passed),
            Heard::Report(Report::Failed { reason, .. }) => Some(Verdict::Failed(reason)),
            Heard::Report(Report::Stopping { .. }) => Some(Verdict::Stopping),
            Heard::Bad(bad) => Some(Verdict::Failed(format!("it broke the protocol: {bad}"))),
            Heard::Closed => {
                self.channel = None;
                // Our child's own exit says how it ended; another generation's cannot.
                (self.serving != self.child)
                    .then(|| Verdict::Failed(format!("generation pid={} died", self.serving)))
            }
        }
    }
}

/// A death by failure: a signal or a non-zero code. Not an exit 0 (a generation that handed over
/// to a successor of its own, or stopped as asked), nor an unknown end (reaped by other code).
fn failed(status: ExitStatus) -> bool {
    match status {
        ExitStatus::Code(code) => code != 0,
        ExitStatus::Signal { .. } => true,
        _ => false,
    }
}

/// The next thing heard on the channel, once there is one.
fn poll_channel(channel: &mut AsyncFd<Channel>, cx: &mut Context<'_>) -> Poll<Heard> {
    loop {
        if let Some(heard) = channel.get_mut().next() {
            return Poll::Ready(heard);
        }
        match channel.poll_read_ready_mut(cx) {
            Poll::Ready(Ok(mut guard)) => guard.clear_ready(),
            Poll::Ready(Err(err)) => {
                log::warn!("cannot watch the successor's report channel: {err}");
                return Poll::Ready(Heard::Closed);
            }
            Poll::Pending => return Poll::Pending,
        }
    }
}
