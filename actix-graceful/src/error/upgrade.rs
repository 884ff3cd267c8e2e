//! [`UpgradeError`], why a live upgrade did not happen, and the [`ExitStatus`] it reports for a
//! successor that ended. Plain data with its messages: nothing here starts or reaps a process.

use std::{fmt, io, path::PathBuf, time::Duration};

/// Why a live upgrade did not happen. The running server keeps serving in every case.
///
/// Returned by [`UpgradeHandle::upgrade`](crate::UpgradeHandle::upgrade); process ids are
/// `u32`, as [`std::process::id`].
///
/// # Examples
///
/// ```
/// use actix_graceful::{ExitStatus, UpgradeError};
///
/// let err = UpgradeError::InProgress;
/// assert_eq!(err.to_string(), "an upgrade is already in progress");
/// let err = UpgradeError::Exited { pid: 42, status: ExitStatus::Code(1) };
/// assert_eq!(err.to_string(), "successor pid=42 exited before it was ready (exit status 1)");
/// ```
#[derive(Debug)]
#[non_exhaustive]
pub enum UpgradeError {
    /// Another upgrade is under way; one runs at a time.
    InProgress,
    /// This process is stopping: it handed over to a successor, or was told to stop.
    Draining,
    /// Nothing to hand over: no listener was bound with `graceful_bind*`.
    NoListeners,
    /// Preparing or forking the successor failed.
    Spawn(io::Error),
    /// The successor could not `exec` the binary (missing, not executable, bad format...).
    Exec {
        /// The path that was executed.
        path: PathBuf,
        /// The successor's process id (it was reaped).
        pid: u32,
        /// The `execve` error.
        error: io::Error,
    },
    /// The successor exited before it reported ready.
    Exited {
        /// The successor's process id (it was reaped).
        pid: u32,
        /// How it ended.
        status: ExitStatus,
    },
    /// The successor reported ready but exited before the handoff completed; this process
    /// keeps its listeners.
    ExitedAfterReady {
        /// The successor's process id (it was reaped).
        pid: u32,
        /// How it ended.
        status: ExitStatus,
    },
    /// The successor closed its report channel without reporting ready and stayed alive: it
    /// would never report, so it was killed and reaped.
    ClosedReadinessPipe {
        /// The successor's process id.
        pid: u32,
    },
    /// The successor is not ready, and said why: its readiness check
    /// ([`Graceful::ready_when`](crate::Graceful::ready_when)) or its self-probe
    /// ([`Graceful::self_probe`](crate::Graceful::self_probe)) failed. It exited (and was
    /// reaped); this process serves on.
    NotReady {
        /// The successor's process id.
        pid: u32,
        /// Why, in the successor's words.
        reason: String,
    },
    /// The successor served, then failed its probation ([`Graceful::probation`]): it died,
    /// declared itself failed (too many 5xx responses, or the app's probation check), and this
    /// process took the listeners back and serves again.
    ///
    /// [`Graceful::probation`]: crate::Graceful::probation
    RolledBack {
        /// The failed successor's process id.
        pid: u32,
        /// What happened to it.
        reason: String,
    },
    /// The successor sent a report that makes no sense at this point of the handoff protocol
    /// (a different build of it?); it was killed and reaped.
    Protocol {
        /// The successor's process id.
        pid: u32,
        /// What it sent.
        what: String,
    },
    /// The successor did not report ready in time; it was killed and reaped.
    Timeout {
        /// The successor's process id.
        pid: u32,
        /// The timeout that ran out.
        timeout: Duration,
    },
    /// The server is not running (it stopped, or the handle outlived it).
    NotRunning,
    /// This process is a generation run by a keeper (see [`Graceful::keeper`]): the upgrade
    /// was passed on to the keeper, which logs how it went.
    ///
    /// [`Graceful::keeper`]: crate::Graceful::keeper
    UnderKeeper {
        /// The keeper's process id.
        keeper: u32,
    },
    /// The successor's environment file (`Graceful::successor_env_file`) cannot be read or
    /// holds a malformed line; no successor was started.
    EnvFile(io::Error),
}

impl fmt::Display for UpgradeError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            UpgradeError::InProgress => f.write_str("an upgrade is already in progress"),
            UpgradeError::Draining => {
                f.write_str("this process is draining (handed over, or stopping)")
            }
            UpgradeError::NoListeners => {
                f.write_str("no listener was bound with graceful_bind, nothing to hand over")
            }
            UpgradeError::Spawn(err) => write!(f, "cannot start the successor: {err}"),
            UpgradeError::Exec { path, pid, error } => write!(
                f,
                "successor pid={pid} could not execute {}: {error}",
                path.display()
            ),
            UpgradeError::Exited { pid, status } => {
                write!(
                    f,
                    "successor pid={pid} exited before it was ready ({status})"
                )
            }
            UpgradeError::ExitedAfterReady { pid, status } => write!(
                f,
                "successor pid={pid} exited right after it reported ready ({status})"
            ),
            UpgradeError::ClosedReadinessPipe { pid } => write!(
                f,
                "successor pid={pid} closed its report channel without reporting ready and \
                 lived on; killed it"
            ),
            UpgradeError::NotReady { pid, reason } => {
                write!(f, "successor pid={pid} is not ready: {reason}")
            }
            UpgradeError::RolledBack { pid, reason } => {
                write!(
                    f,
                    "rolled back: successor pid={pid} failed its probation ({reason})"
                )
            }
            UpgradeError::Protocol { pid, what } => write!(
                f,
                "successor pid={pid} broke the handoff protocol ({what}); killed it"
            ),
            UpgradeError::Timeout { pid, timeout } => write!(
                f,
                "successor pid={pid} was not ready within {timeout:?}; killed it"
            ),
            UpgradeError::NotRunning => f.write_str("the server is not running"),
            UpgradeError::UnderKeeper { keeper } => write!(
                f,
                "this process runs under the keeper pid={keeper}: the upgrade was passed on to it"
            ),
            UpgradeError::EnvFile(err) => write!(f, "successor not started: {err}"),
        }
    }
}

impl std::error::Error for UpgradeError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            UpgradeError::Spawn(err)
            | UpgradeError::Exec { error: err, .. }
            | UpgradeError::EnvFile(err) => Some(err),
            _ => None,
        }
    }
}

impl From<UpgradeError> for io::Error {
    fn from(err: UpgradeError) -> Self {
        io::Error::other(err)
    }
}

/// How a successor ended, as [`UpgradeError`] reports it.
///
/// Displays as `exit status 1`, `killed by signal SIGKILL` (with ` (core dumped)` when it
/// dumped core), or, when other code of this process reaped it first, `gone, reaped by other
/// code of this process (status unknown)`.
///
/// # Examples
///
/// ```
/// use actix_graceful::ExitStatus;
///
/// assert_eq!(ExitStatus::Code(1).to_string(), "exit status 1");
/// let killed = ExitStatus::Signal { signal: 9, core_dumped: false };
/// assert_eq!(killed.to_string(), "killed by signal SIGKILL");
/// assert_eq!(killed.code(), None);
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum ExitStatus {
    /// It exited with this status code.
    Code(i32),
    /// A signal killed it.
    Signal {
        /// The signal's number (`9` for `SIGKILL`).
        signal: i32,
        /// Whether it dumped core.
        core_dumped: bool,
    },
    /// Other code of this process reaped it first (or `SIGCHLD` is ignored): how it ended is
    /// unknown.
    Unknown,
}

impl ExitStatus {
    /// The exit code, if it exited rather than being killed.
    ///
    /// # Examples
    ///
    /// ```
    /// assert_eq!(actix_graceful::ExitStatus::Code(3).code(), Some(3));
    /// ```
    #[must_use]
    pub fn code(self) -> Option<i32> {
        match self {
            ExitStatus::Code(code) => Some(code),
            _ => None,
        }
    }
}

impl ExitStatus {
    /// The status for a process that ends because this child did (a keeper's): its exit code,
    /// 128 + the signal number when a signal killed it, 1 when unknown.
    pub(crate) fn status_for_process(self) -> i32 {
        match self {
            ExitStatus::Code(code) => code,
            ExitStatus::Signal { signal, .. } => 128 + signal,
            ExitStatus::Unknown => 1,
        }
    }
}

impl fmt::Display for ExitStatus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match *self {
            ExitStatus::Code(code) => write!(f, "exit status {code}"),
            ExitStatus::Signal {
                signal,
                core_dumped,
            } => {
                f.write_str("killed by signal ")?;
                #[cfg(unix)]
                match nix::sys::signal::Signal::try_from(signal) {
                    Ok(sig) => f.write_str(sig.as_str())?,
                    Err(_) => write!(f, "{signal}")?,
                }
                #[cfg(not(unix))]
                write!(f, "{signal}")?;
                if core_dumped {
                    f.write_str(" (core dumped)")?;
                }
                Ok(())
            }
            ExitStatus::Unknown => {
                f.write_str("gone, reaped by other code of this process (status unknown)")
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The texts logs, `STATUS=` lines and the integration tests read.
    #[test]
    fn upgrade_messages_keep_their_texts() {
        let exited = |status| UpgradeError::Exited { pid: 7, status }.to_string();
        assert_eq!(
            exited(ExitStatus::Code(1)),
            "successor pid=7 exited before it was ready (exit status 1)"
        );
        let killed = ExitStatus::Signal {
            signal: 9,
            core_dumped: false,
        };
        assert_eq!(
            exited(killed),
            "successor pid=7 exited before it was ready (killed by signal SIGKILL)"
        );
        let segv = ExitStatus::Signal {
            signal: 11,
            core_dumped: true,
        };
        assert_eq!(segv.to_string(), "killed by signal SIGSEGV (core dumped)");
        assert_eq!(
            UpgradeError::ExitedAfterReady {
                pid: 7,
                status: ExitStatus::Code(0)
            }
            .to_string(),
            "successor pid=7 exited right after it reported ready (exit status 0)"
        );
        assert_eq!(
            UpgradeError::ClosedReadinessPipe { pid: 7 }.to_string(),
            "successor pid=7 closed its report channel without reporting ready and lived on; \
             killed it"
        );
        assert_eq!(
            UpgradeError::NotReady {
                pid: 7,
                reason: "readiness check: no database".into()
            }
            .to_string(),
            "successor pid=7 is not ready: readiness check: no database"
        );
    }
}
