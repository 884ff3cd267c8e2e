//! Handing the listeners to a successor process: start it with the standard socket-activation
//! protocol, then wait until it reports that it serves. Blocking code, free of actix types; the
//! server runs it on a blocking thread, keeper mode on its start thread. Everything it hands
//! over comes in its [`Plan`]: it reads no registry and no start-up state of its own.
//!
//! Files: `spawn.rs` (fork and exec), `wait.rs` (the parent's wait for the first report),
//! `channel.rs` (reading a report channel), `report.rs` (the successor's side: its channels to
//! the predecessor and the fallback).

mod channel;
mod report;
mod spawn;
#[cfg(all(test, target_os = "linux"))]
mod tests;
mod wait;

use std::{ffi::OsString, os::fd::RawFd, path::PathBuf, time::Duration};

pub(crate) use channel::{Channel, Heard};
pub(crate) use report::{
    claim_channels, fallback_for_successor, has_predecessor, on_probation, probation_handed_over,
    ready, refusal, verdict,
};
pub(crate) use wait::{Cancel, Readiness, Started};

use super::signals;
use crate::{protocol::env_file, UpgradeError};

/// How to start a successor.
#[derive(Debug, Clone)]
pub(crate) struct Plan {
    /// The descriptors to hand over, in order, with their names (fds `3..` and
    /// `LISTEN_FDNAMES` in the successor). The caller takes them from the registry right
    /// before the handoff ([`with_listeners`](Plan::with_listeners)), so a socket the app
    /// registered or dropped since the plan was made is counted as it is now.
    pub(crate) listeners: Vec<(RawFd, String)>,
    /// The successor's generation number (`ACTIX_GRACEFUL_GENERATION`).
    pub(crate) generation: u64,
    /// The executable, as a path (also what the successor sees as its path).
    pub(crate) exe: PathBuf,
    /// Executed instead of the path when set: an open file of the build to run (keeper mode's
    /// last good build, whose path may hold another file by now).
    pub(crate) exe_fd: Option<RawFd>,
    pub(crate) args: Vec<OsString>,
    pub(crate) cwd: PathBuf,
    pub(crate) upgrade_signal: i32,
    pub(crate) readiness: Readiness,
    pub(crate) timeout: Duration,
    /// Variables to set (`Some`) or remove (`None`) in the successor's environment, on top of
    /// this process's own (keeper mode uses it).
    pub(crate) env: Vec<(&'static str, Option<String>)>,
    /// `KEY=VALUE` file re-read at each upgrade, overriding the successor's environment.
    pub(crate) env_file: Option<PathBuf>,
    /// Keeper mode: the read end of the generation's control pipe, handed over after the
    /// readiness pipe.
    pub(crate) control: Option<RawFd>,
    /// A process on probation hands its channel to the fallback on, after the readiness pipe
    /// (never together with `control`: a keeper's generations start no successor).
    pub(crate) fallback: Option<RawFd>,
}

impl Plan {
    /// This plan with `listeners` to hand over.
    #[must_use]
    pub(crate) fn with_listeners(mut self, listeners: Vec<(RawFd, String)>) -> Plan {
        self.listeners = listeners;
        self
    }
}

/// Starts the successor with the plan's listeners and waits until it is ready, or until
/// `cancel` asks to stop it.
///
/// On any failure the successor has been killed (if it ran) and reaped, with every process left
/// in its process group (a wrapper script's child that would hold the listeners), and this
/// process's listeners are untouched.
///
/// # Errors
/// See [`UpgradeError`].
pub(crate) fn hand_over(plan: &Plan, cancel: &Cancel) -> Result<Started, UpgradeError> {
    log::debug!("upgrade: preparing the successor's start");
    if plan.listeners.is_empty() {
        return Err(UpgradeError::NoListeners);
    }
    let env_changes = env_changes(plan)?;
    let spawn = spawn::Spawn::new(
        plan,
        &env_changes,
        signals::successor_mask(plan.upgrade_signal),
    )
    .map_err(UpgradeError::Spawn)?;
    let path = spawn.path();
    let child = spawn.run()?;
    log::info!(
        "upgrade: spawned successor pid={} ({}{}) with {} listener(s)",
        child.pid,
        path.display(),
        if plan.exe_fd.is_some() {
            ", the held build"
        } else {
            ""
        },
        plan.listeners.len()
    );
    let channel = Channel::new(child.channel).map_err(|err| {
        crate::process::child::kill_and_reap(child.pid);
        UpgradeError::Spawn(err)
    })?;
    wait::wait_ready(child.pid, channel, plan.readiness, plan.timeout, cancel)
}

/// The environment file first, then the crate's own changes (keeper mode), which win.
fn env_changes(plan: &Plan) -> Result<Vec<(OsString, Option<OsString>)>, UpgradeError> {
    let mut changes: Vec<(OsString, Option<OsString>)> = match &plan.env_file {
        Some(path) => env_file::read(path)
            .map_err(UpgradeError::EnvFile)?
            .into_iter()
            .map(|(k, v)| (k, Some(v)))
            .collect(),
        None => Vec::new(),
    };
    changes.retain(|(k, _)| !plan.env.iter().any(|(name, _)| k == name));
    changes.extend(
        plan.env
            .iter()
            .map(|(k, v)| (OsString::from(k), v.as_ref().map(OsString::from))),
    );
    Ok(changes)
}
