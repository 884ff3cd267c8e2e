//! Handing the listeners to a successor process: start it with the standard socket-activation
//! protocol, then wait until it reports ready. Blocking code, free of actix types; the server
//! runs it on a blocking thread. Everything it hands over comes in its [`Plan`]: it reads no
//! registry and no start-up state of its own.

mod ready;
mod spawn;
#[cfg(all(test, target_os = "linux"))]
mod tests;

use std::{ffi::OsString, io, os::fd::RawFd, path::PathBuf, time::Duration};

pub(crate) use ready::{
    exit_status, has_predecessor, report_ready, take_report_fd, Cancel, Readiness,
};

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
    /// The successor's generation number (`ACTIX_GRACEFUL_GENERATION`), unless `env` sets it.
    pub(crate) generation: u64,
    pub(crate) exe: PathBuf,
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
/// Returns the successor's pid. On any failure the successor has been killed (if it ran) and
/// reaped, with every process left in its process group (a wrapper script's child that would
/// hold the listeners), and this process's listeners are untouched.
///
/// # Errors
/// See [`UpgradeError`].
pub(crate) fn hand_over(plan: &Plan, cancel: &Cancel) -> Result<i32, UpgradeError> {
    log::debug!("upgrade: preparing the successor's start");
    let listeners = &plan.listeners;
    if listeners.is_empty() {
        return Err(UpgradeError::NoListeners);
    }
    // The environment file first, then the crate's own changes (keeper mode), which win.
    let mut env_changes: Vec<(OsString, Option<OsString>)> = match &plan.env_file {
        Some(path) => env_file::read(path)
            .map_err(UpgradeError::EnvFile)?
            .into_iter()
            .map(|(k, v)| (k, Some(v)))
            .collect(),
        None => Vec::new(),
    };
    env_changes.retain(|(k, _)| !plan.env.iter().any(|(name, _)| k == name));
    env_changes.extend(
        plan.env
            .iter()
            .map(|(k, v)| (OsString::from(k), v.as_ref().map(OsString::from))),
    );
    let spawn = spawn::Spawn::new(
        plan,
        &env_changes,
        signals::successor_mask(plan.upgrade_signal),
    )
    .map_err(UpgradeError::Spawn)?;
    let path = spawn.path();
    let child = match spawn.run() {
        Ok(child) => child,
        Err(Err(err)) => return Err(UpgradeError::Spawn(err)),
        Err(Ok(failed)) => {
            let error = match failed.step {
                spawn::ChildStep::Exec => failed.error,
                spawn::ChildStep::Chdir => io::Error::new(
                    failed.error.kind(),
                    format!(
                        "cannot enter the start-up directory {}: {}",
                        plan.cwd.display(),
                        failed.error
                    ),
                ),
                spawn::ChildStep::Dup => io::Error::new(
                    failed.error.kind(),
                    format!("cannot place the listeners at fds 3..: {}", failed.error),
                ),
            };
            return Err(UpgradeError::Exec {
                path,
                pid: failed.pid.as_raw() as u32,
                error,
            });
        }
    };
    log::info!(
        "upgrade: spawned successor pid={} ({}) with {} listener(s)",
        child.pid,
        path.display(),
        listeners.len()
    );
    // On a failure, the successor's process group is killed before it is reaped.
    ready::wait_ready(
        child.pid,
        &child.ready,
        plan.readiness,
        plan.timeout,
        cancel,
    )?;
    Ok(child.pid.as_raw())
}
