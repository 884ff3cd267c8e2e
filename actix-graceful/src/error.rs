//! The crate's error types: [`BindError`] (binding, and the sockets handed to this process),
//! [`UpgradeError`] (why a live upgrade did not happen) and the [`ExitStatus`] it reports for
//! a successor that ended.

use std::{fmt, io, path::PathBuf, time::Duration};

/// Why `graceful_bind*`, [`Binding::bind`](crate::Binding::bind), [`take_fd`](crate::take_fd)
/// or [`take_udp`](crate::take_udp) failed: the sockets handed to this process are malformed or
/// not what was asked for, or binding a fresh one failed.
///
/// Those functions return [`io::Error`] (so `?` works in a `main` returning `io::Result`), with
/// a `BindError` inside: [`BindError::from_io`] gets it back. Its [`io::ErrorKind`] is the OS
/// error's for [`Bind`](BindError::Bind) and [`Os`](BindError::Os), `InvalidInput` for the rest.
///
/// # Examples
///
/// ```no_run
/// use actix_graceful::{BindError, GracefulBind as _};
/// use actix_web::{App, HttpServer};
///
/// match HttpServer::new(App::new).graceful_bind("127.0.0.1:8080") {
///     Ok(server) => drop(server),
///     Err(err) => match BindError::from_io(&err) {
///         // The same as: err.get_ref().and_then(|e| e.downcast_ref::<BindError>())
///         Some(BindError::Bind { addr, .. }) => eprintln!("{addr} is taken: {err}"),
///         Some(other) => eprintln!("the inherited sockets are malformed: {other}"),
///         None => eprintln!("{err}"),
///     },
/// }
/// ```
///
/// ```
/// use std::io;
/// use actix_graceful::BindError;
///
/// let err = BindError::FdNotOpen { fd: 7 };
/// assert_eq!(err.to_string(), "LISTEN_FDS names fd 7, which is not open");
/// let io_err: io::Error = err.clone().into();
/// assert_eq!(io_err.kind(), io::ErrorKind::InvalidInput);
/// assert_eq!(BindError::from_io(&io_err), Some(&err));
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum BindError {
    /// `LISTEN_FDS` is not a decimal count of file descriptors.
    InvalidListenFds {
        /// The value as found in the environment (lossily decoded).
        value: String,
        /// Why it was rejected.
        reason: &'static str,
    },
    /// `LISTEN_PID` is set but is not a process id.
    InvalidListenPid {
        /// The value as found in the environment (lossily decoded).
        value: String,
    },
    /// `LISTEN_FDNAMES` does not hold one name per descriptor.
    FdNamesMismatch {
        /// How many names `LISTEN_FDNAMES` holds.
        names: usize,
        /// How many descriptors `LISTEN_FDS` announces.
        fds: usize,
    },
    /// A name in `LISTEN_FDNAMES` breaks systemd's rules (ASCII, printable, at most 255 bytes).
    InvalidFdName {
        /// The offending name (lossily decoded).
        name: String,
    },
    /// `LISTEN_FDS` names a descriptor that is not open in this process.
    FdNotOpen {
        /// The descriptor number.
        fd: i32,
    },
    /// `LISTEN_FDS` names a descriptor that did not come through `exec`: it is close-on-exec, so
    /// this process opened it (the count is larger than what was passed) or another library
    /// took it over already.
    FdNotInherited {
        /// The descriptor number.
        fd: i32,
    },
    /// An inherited descriptor is not a socket.
    NotASocket {
        /// The descriptor number.
        fd: i32,
        /// What it is instead, e.g. `"a regular file"`.
        found: &'static str,
    },
    /// An inherited socket is not a stream socket (e.g. UDP).
    NotAStreamSocket {
        /// The descriptor number.
        fd: i32,
        /// Its type, e.g. `"a datagram (UDP) socket"`.
        found: &'static str,
    },
    /// The inherited descriptor claimed as a UDP socket ([`take_udp`](crate::take_udp)) is
    /// something else.
    NotAUdpSocket {
        /// The descriptor number.
        fd: i32,
        /// Its name from `LISTEN_FDNAMES`.
        name: String,
        /// What it is instead, e.g. `"a stream socket"`.
        found: &'static str,
    },
    /// An inherited stream socket is not listening (e.g. a connected TCP stream).
    NotListening {
        /// The descriptor number.
        fd: i32,
    },
    /// An inherited socket is of another family than the one asked for.
    WrongFamily {
        /// The descriptor number.
        fd: i32,
        /// Its name from `LISTEN_FDNAMES`.
        name: String,
        /// The family the caller asked for.
        expected: &'static str,
        /// The socket's family.
        found: &'static str,
    },
    /// Resolving or binding a fresh listener failed.
    Bind {
        /// The address as the caller wrote it.
        addr: String,
        /// The OS error kind.
        kind: io::ErrorKind,
        /// The OS error message.
        message: String,
    },
    /// A system call on an inherited descriptor failed.
    Os {
        /// What was being done, e.g. `"fcntl(F_SETFL)"`.
        op: &'static str,
        /// The descriptor involved.
        fd: i32,
        /// The errno value.
        errno: i32,
    },
}

impl BindError {
    /// The `BindError` inside an [`io::Error`] returned by this crate, if it carries one.
    ///
    /// # Examples
    ///
    /// ```
    /// use actix_graceful::BindError;
    ///
    /// let err = std::io::Error::from(BindError::NotListening { fd: 3 });
    /// assert!(matches!(BindError::from_io(&err), Some(BindError::NotListening { fd: 3 })));
    /// assert_eq!(BindError::from_io(&std::io::Error::other("other")), None);
    /// ```
    #[must_use]
    pub fn from_io(err: &io::Error) -> Option<&BindError> {
        err.get_ref()?.downcast_ref()
    }

    #[cfg(unix)]
    pub(crate) fn os(op: &'static str, fd: i32, errno: nix::errno::Errno) -> Self {
        BindError::Os {
            op,
            fd,
            errno: errno as i32,
        }
    }

    pub(crate) fn bind(addr: impl fmt::Display, err: &io::Error) -> Self {
        BindError::Bind {
            addr: addr.to_string(),
            kind: err.kind(),
            message: err.to_string(),
        }
    }
}

impl fmt::Display for BindError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            BindError::InvalidListenFds { value, reason } => {
                write!(f, "LISTEN_FDS={value:?} is {reason}")
            }
            BindError::InvalidListenPid { value } => {
                write!(f, "LISTEN_PID={value:?} is not a process id")
            }
            BindError::FdNamesMismatch { names, fds } => write!(
                f,
                "LISTEN_FDNAMES holds {names} name(s) but LISTEN_FDS announces {fds} fd(s)"
            ),
            BindError::InvalidFdName { name } => write!(
                f,
                "LISTEN_FDNAMES holds the invalid name {name:?} (printable ASCII, at most 255 bytes)"
            ),
            BindError::FdNotOpen { fd } => write!(f, "LISTEN_FDS names fd {fd}, which is not open"),
            BindError::FdNotInherited { fd } => write!(
                f,
                "LISTEN_FDS names fd {fd}, which this process did not inherit (it is \
                 close-on-exec: opened here, or already taken over by another library)"
            ),
            BindError::NotASocket { fd, found } => {
                write!(f, "inherited fd {fd} is not a socket but {found}")
            }
            BindError::NotAStreamSocket { fd, found } => {
                write!(f, "inherited fd {fd} is not a stream socket but {found}")
            }
            BindError::NotAUdpSocket { fd, name, found } => write!(
                f,
                "inherited fd {fd} (name {name:?}) is not a UDP socket but {found}"
            ),
            BindError::NotListening { fd } => write!(
                f,
                "inherited fd {fd} is a stream socket that is not listening (a connected stream?)"
            ),
            BindError::WrongFamily {
                fd,
                name,
                expected,
                found,
            } => write!(
                f,
                "inherited fd {fd} (name {name:?}) is {found} socket where {expected} was asked for"
            ),
            BindError::Bind { addr, message, .. } => write!(f, "cannot bind {addr}: {message}"),
            BindError::Os { op, fd, errno } => write!(
                f,
                "{op} on fd {fd} failed: {}",
                io::Error::from_raw_os_error(*errno)
            ),
        }
    }
}

impl std::error::Error for BindError {}

impl From<BindError> for io::Error {
    fn from(err: BindError) -> Self {
        let kind = match &err {
            BindError::Bind { kind, .. } => *kind,
            BindError::Os { errno, .. } => io::Error::from_raw_os_error(*errno).kind(),
            _ => io::ErrorKind::InvalidInput,
        };
        io::Error::new(kind, err)
    }
}

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
    /// The successor closed its readiness pipe without reporting ready and stayed alive: it
    /// would never report, so it was killed and reaped.
    ClosedReadinessPipe {
        /// The successor's process id.
        pid: u32,
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
                "successor pid={pid} exited before it was ready ({status}, right after it \
                 reported ready)"
            ),
            UpgradeError::ClosedReadinessPipe { pid } => write!(
                f,
                "successor pid={pid} exited before it was ready (closed its readiness pipe \
                 without reporting ready; killed)"
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

    /// The texts logs, `STATUS=` lines and the integration tests read, as they were when the
    /// status was a `String`.
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
            "successor pid=7 exited before it was ready (exit status 0, right after it reported \
             ready)"
        );
        assert_eq!(
            UpgradeError::ClosedReadinessPipe { pid: 7 }.to_string(),
            "successor pid=7 exited before it was ready (closed its readiness pipe without \
             reporting ready; killed)"
        );
    }
}
