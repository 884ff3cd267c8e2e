//! The successor's side of the report channel: the pipes a predecessor (or keeper) handed to
//! this process, taken at the crate's first use, and the [`Report`]s this process sends on them.
//!
//! Two channels at most:
//! - to the parent ([`READY_FD`]): the parent waits for `ready` (or `failed`) to finish its
//!   upgrade;
//! - to the fallback ([`FALLBACK_FD`]), when the parent was itself on probation and so is not
//!   the one to fall back to: the fallback is the last process that passed its probation.
//!
//! After `ready`, the channel to the fallback (the parent's, without a [`FALLBACK_FD`]) stays
//! open for the probation: `passed`, `failed` or `stopping` end it, and its end without one of
//! them tells the fallback that this process died. Only this module writes on them.

use std::{
    io,
    os::fd::OwnedFd,
    sync::{Mutex, MutexGuard},
    time::Duration,
};

use nix::{errno::Errno, unistd::Pid};

use crate::protocol::{
    env::{self, FALLBACK_FD, PROTOCOL, PROTOCOL_VERSION, READY_FD},
    fd, listen_fds,
    report::Report,
};

/// This process's report channels.
#[derive(Debug, Default)]
struct Channels {
    /// To the parent, until `ready`.
    parent: Option<OwnedFd>,
    /// To the fallback: before `ready` only when it is not the parent ([`FALLBACK_FD`]); after
    /// `ready`, for the probation (the parent's channel, or that one).
    fallback: Option<OwnedFd>,
    /// Why this process may not serve for its parent (another protocol version).
    refused: Option<String>,
}

static CHANNELS: Mutex<Channels> = Mutex::new(Channels {
    parent: None,
    fallback: None,
    refused: None,
});

fn channels() -> MutexGuard<'static, Channels> {
    CHANNELS.lock().unwrap_or_else(|e| e.into_inner())
}

/// Takes the channels handed to this process, if any: only with a `LISTEN_PID` that is
/// explicitly ours (so the variables are for us), each a pipe after the fds before it. Marks
/// them close-on-exec so the app's own children do not inherit them. A parent that speaks
/// another protocol version is recorded ([`refusal`]).
pub(crate) fn claim_channels(listen_fds: usize) {
    let snapshot = env::snapshot();
    if !snapshot.is_for_us() {
        return;
    }
    let Some(value) = &snapshot.ready_fd else {
        return;
    };
    let first_free = listen_fds::first_after(listen_fds);
    let mut channels = channels();
    channels.parent = fd::claim_announced_pipe(READY_FD, value, first_free, "the listeners");
    if let Some(value) = &snapshot.fallback_fd {
        let after = "the readiness pipe";
        channels.fallback = fd::claim_announced_pipe(FALLBACK_FD, value, first_free + 1, after);
    }
    let version = snapshot.protocol.as_ref().and_then(|v| v.to_str());
    if channels.parent.is_some() && version != Some(&PROTOCOL_VERSION.to_string()) {
        channels.refused = Some(match version {
            Some(v) => format!(
                "the process that started this one speaks handoff protocol {PROTOCOL}={v}, \
                 this build speaks {PROTOCOL_VERSION}"
            ),
            None => format!(
                "the process that started this one does not say its handoff protocol \
                 ({PROTOCOL} is not set or not text); this build speaks {PROTOCOL_VERSION}"
            ),
        });
    }
}

/// Why this process must not serve for the process that started it, if it must not: that
/// process speaks another version of the handoff protocol.
pub(crate) fn refusal() -> Option<String> {
    channels().refused.clone()
}

/// Whether a predecessor waits for this process's readiness.
pub(crate) fn has_predecessor() -> bool {
    channels().parent.is_some()
}

/// Whether this process is on probation: it reported `ready` and a fallback waits for its
/// verdict.
pub(crate) fn on_probation() -> bool {
    let channels = channels();
    channels.parent.is_none() && channels.fallback.is_some()
}

/// Tells the predecessor (and a fallback that is another process) that this process serves, on
/// probation for `probation` (zero: none, and every channel is closed). The channel to the
/// fallback stays open for the probation's verdict; the parent's, when it is not the fallback,
/// is closed: it has nothing more to hear.
pub(crate) fn ready(probation: Duration) {
    let mut channels = channels();
    let report = Report::Ready {
        pid: Pid::this(),
        probation,
    };
    let parent = channels.parent.take();
    if let Some(parent) = &parent {
        send(parent, &report);
    }
    match &channels.fallback {
        Some(fallback) => send(fallback, &report),
        None => channels.fallback = parent,
    }
    if probation.is_zero() {
        channels.fallback = None;
    }
}

/// Sends `report` to whoever waits for this process's verdict (before `ready` the parent, then
/// the fallback) and closes every channel: nothing follows a verdict.
pub(crate) fn verdict(report: &Report) {
    let mut channels = channels();
    let fallback = channels.fallback.take();
    let parent = channels.parent.take();
    if let Some(to) = fallback.as_ref().or(parent.as_ref()) {
        send(to, report);
    }
}

/// A copy of the channel to this process's fallback, while it is on probation: a successor
/// started now takes it over ([`FALLBACK_FD`]), since this process has not proven itself. The
/// copy stays open while the successor starts, whatever this process sends meanwhile.
pub(crate) fn fallback_for_successor() -> Option<OwnedFd> {
    let channels = channels();
    let fallback = match (&channels.parent, &channels.fallback) {
        (None, Some(fallback)) => fallback,
        _ => return None,
    };
    match fallback.try_clone() {
        Ok(copy) => Some(copy),
        Err(err) => {
            log::warn!("cannot hand the fallback's channel on ({err}); this process stays it");
            None
        }
    }
}

/// A successor that took over the channel to the fallback is ready: this process drops its
/// copy (the channel's end must mean that the successor died).
pub(crate) fn probation_handed_over() {
    let mut channels = channels();
    channels.fallback = None;
    channels.parent = None;
}

/// Writes `report` on `to` in one `write` (a line is at most `PIPE_BUF`, so it is atomic).
fn send(to: &OwnedFd, report: &Report) {
    let line = report.encode();
    loop {
        match nix::unistd::write(to, &line) {
            Ok(n) if n == line.len() => return,
            Ok(_) => {
                log::warn!("report {report:?} written in part");
                return;
            }
            Err(Errno::EINTR) => continue,
            // The reader is gone (EPIPE): the process that waited has ended, nobody to tell.
            Err(err) => {
                let err = io::Error::from(err);
                match report {
                    Report::Ready { .. } => {
                        log::warn!("cannot report readiness to the predecessor: {err}");
                    }
                    _ => log::warn!("cannot tell the fallback {report:?}: {err}"),
                }
                return;
            }
        }
    }
}
