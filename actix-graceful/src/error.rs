//! The crate's error types.

use std::{fmt, io, path::PathBuf, time::Duration};

/// An error in the sockets handed to this process, or in binding a fresh one.
///
/// Converts into [`io::Error`], so `?` works in a `main` returning `io::Result`.
///
/// # Examples
///
/// ```
/// use std::io;
///
/// let err = actix_graceful::Error::FdNotOpen { fd: 7 };
/// assert_eq!(err.to_string(), "LISTEN_FDS names fd 7, which is not open");
/// let io_err: io::Error = err.into();
/// assert_eq!(io_err.kind(), io::ErrorKind::InvalidInput);
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum Error {
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

impl Error {
    #[cfg(unix)]
    pub(crate) fn os(op: &'static str, fd: i32, errno: nix::errno::Errno) -> Self {
        Error::Os {
            op,
            fd,
            errno: errno as i32,
        }
    }

    pub(crate) fn bind(addr: impl fmt::Display, err: &io::Error) -> Self {
        Error::Bind {
            addr: addr.to_string(),
            kind: err.kind(),
            message: err.to_string(),
        }
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Error::InvalidListenFds { value, reason } => {
                write!(f, "LISTEN_FDS={value:?} is {reason}")
            }
            Error::InvalidListenPid { value } => {
                write!(f, "LISTEN_PID={value:?} is not a process id")
            }
            Error::FdNamesMismatch { names, fds } => write!(
                f,
                "LISTEN_FDNAMES holds {names} name(s) but LISTEN_FDS announces {fds} fd(s)"
            ),
            Error::InvalidFdName { name } => write!(
                f,
                "LISTEN_FDNAMES holds the invalid name {name:?} (printable ASCII, at most 255 bytes)"
            ),
            Error::FdNotOpen { fd } => write!(f, "LISTEN_FDS names fd {fd}, which is not open"),
            Error::FdNotInherited { fd } => write!(
                f,
                "LISTEN_FDS names fd {fd}, which this process did not inherit (it is \
                 close-on-exec: opened here, or already taken over by another library)"
            ),
            Error::NotASocket { fd, found } => {
                write!(f, "inherited fd {fd} is not a socket but {found}")
            }
            Error::NotAStreamSocket { fd, found } => {
                write!(f, "inherited fd {fd} is not a stream socket but {found}")
            }
            Error::NotAUdpSocket { fd, name, found } => write!(
                f,
                "inherited fd {fd} (name {name:?}) is not a UDP socket but {found}"
            ),
            Error::NotListening { fd } => write!(
                f,
                "inherited fd {fd} is a stream socket that is not listening (a connected stream?)"
            ),
            Error::WrongFamily {
                fd,
                name,
                expected,
                found,
            } => write!(
                f,
                "inherited fd {fd} (name {name:?}) is {found} socket where {expected} was asked for"
            ),
            Error::Bind { addr, message, .. } => write!(f, "cannot bind {addr}: {message}"),
            Error::Os { op, fd, errno } => write!(
                f,
                "{op} on fd {fd} failed: {}",
                io::Error::from_raw_os_error(*errno)
            ),
        }
    }
}

impl std::error::Error for Error {}

impl From<Error> for io::Error {
    fn from(err: Error) -> Self {
        let kind = match &err {
            Error::Bind { kind, .. } => *kind,
            Error::Os { errno, .. } => io::Error::from_raw_os_error(*errno).kind(),
            _ => io::ErrorKind::InvalidInput,
        };
        io::Error::new(kind, err)
    }
}

/// Why a live upgrade did not happen. The running server keeps serving in every case.
///
/// # Examples
///
/// ```
/// let err = actix_graceful::UpgradeError::InProgress;
/// assert_eq!(err.to_string(), "an upgrade is already in progress");
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
        pid: i32,
        /// The `execve` error.
        error: io::Error,
    },
    /// The successor exited before it reported ready.
    Exited {
        /// The successor's process id (it was reaped).
        pid: i32,
        /// How it ended, e.g. `"exit status 1"` or `"killed by signal SIGSEGV"`.
        status: String,
    },
    /// The successor did not report ready in time; it was killed and reaped.
    Timeout {
        /// The successor's process id.
        pid: i32,
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
        keeper: i32,
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
