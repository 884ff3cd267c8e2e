//! The crate's error types: [`BindError`] (binding, and the sockets handed to this process),
//! [`UpgradeError`] (why a live upgrade did not happen) and the [`ExitStatus`] it reports for
//! a successor that ended.

mod upgrade;

use std::{fmt, io};

pub use upgrade::{ExitStatus, UpgradeError};

/// A process id as the public API gives it (`u32`, as [`std::process::id`]): the one place the
/// crate's own pid type, nix's `Pid`, becomes one.
#[cfg(unix)]
pub(crate) fn public_pid(pid: nix::unistd::Pid) -> u32 {
    u32::try_from(pid.as_raw()).unwrap_or(0)
}

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
