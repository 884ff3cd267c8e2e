//! Checks on raw file descriptors: is it open, is it a listening stream socket (or a UDP socket),
//! of which family and address, which file is it. Only queries: nothing here takes ownership
//! of, changes or closes a descriptor, except [`prepare`], which is called once the descriptor
//! is ours, and [`claim_announced_pipe`], which makes a pipe a parent handed over ours.

use std::{
    ffi::OsStr,
    os::{
        fd::{BorrowedFd, FromRawFd as _, OwnedFd, RawFd},
        unix::ffi::OsStrExt,
    },
    path::PathBuf,
};

use nix::{
    errno::Errno,
    fcntl::{fcntl, FcntlArg, FdFlag, OFlag},
    sys::{
        socket::{
            getsockname, getsockopt, sockopt, AddressFamily, SockType, SockaddrLike,
            SockaddrStorage,
        },
        stat::{fstat, SFlag},
    },
};

use crate::{addr::ListenAddr, BindError};

/// What an inherited descriptor turned out to be: a listening stream socket at `addr`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Probe {
    pub(crate) addr: ListenAddr,
}

/// Whether `fd` is an open descriptor of this process.
pub(crate) fn is_open(fd: RawFd) -> bool {
    // F_GETFD only reads the descriptor flags; EBADF means "not open".
    fcntl(fd, FcntlArg::F_GETFD) != Err(Errno::EBADF)
}

/// Whether `fd` is marked close-on-exec. A descriptor inherited across `exec` never is (the
/// `exec` would have closed it); one this process opened since almost always is (Rust's std,
/// mio and tokio open everything with `O_CLOEXEC`), and so is one another library already took
/// over (libsystemd's `sd_listen_fds` sets it).
pub(crate) fn is_cloexec(fd: RawFd) -> bool {
    fcntl(fd, FcntlArg::F_GETFD)
        .is_ok_and(|f| FdFlag::from_bits_truncate(f).contains(FdFlag::FD_CLOEXEC))
}

/// Checks that `fd` is a listening stream socket and returns its local address.
///
/// # Errors
/// [`BindError::NotASocket`], [`BindError::NotAStreamSocket`], [`BindError::NotListening`], or
/// [`BindError::Os`] when a query fails.
pub(crate) fn probe(fd: RawFd) -> Result<Probe, BindError> {
    let stat = fstat(fd).map_err(|e| BindError::os("fstat", fd, e))?;
    let file_type = SFlag::from_bits_truncate(stat.st_mode) & SFlag::S_IFMT;
    if file_type != SFlag::S_IFSOCK {
        return Err(BindError::NotASocket {
            fd,
            found: describe_file_type(file_type),
        });
    }

    // SAFETY: `fd` is open (fstat succeeded) and is only borrowed for these queries.
    let borrowed = unsafe { BorrowedFd::borrow_raw(fd) };
    let sock_type = getsockopt(&borrowed, sockopt::SockType)
        .map_err(|e| BindError::os("getsockopt(SO_TYPE)", fd, e))?;
    if sock_type != SockType::Stream {
        return Err(BindError::NotAStreamSocket {
            fd,
            found: describe_sock_type(sock_type),
        });
    }
    let listening = getsockopt(&borrowed, sockopt::AcceptConn)
        .map_err(|e| BindError::os("getsockopt(SO_ACCEPTCONN)", fd, e))?;
    if !listening {
        return Err(BindError::NotListening { fd });
    }

    let addr: SockaddrStorage = getsockname(fd).map_err(|e| BindError::os("getsockname", fd, e))?;
    let addr = listen_addr(fd, &addr)?;
    Ok(Probe { addr })
}

/// The listening address of the socket at `fd`, whose `getsockname` is `addr`: TCP (v4, v6)
/// or Unix (a path, or `@name` for an abstract one).
fn listen_addr(fd: RawFd, addr: &SockaddrStorage) -> Result<ListenAddr, BindError> {
    match addr.family() {
        Some(AddressFamily::Inet) | Some(AddressFamily::Inet6) => addr
            .as_sockaddr_in()
            .map(|a| std::net::SocketAddr::V4((*a).into()))
            .or_else(|| {
                addr.as_sockaddr_in6()
                    .map(|a| std::net::SocketAddr::V6((*a).into()))
            })
            .map(ListenAddr::Tcp)
            .ok_or_else(|| BindError::os("getsockname", fd, Errno::EAFNOSUPPORT)),
        Some(AddressFamily::Unix) => {
            let unix = addr.as_unix_addr();
            let path = unix
                .and_then(|u| u.path())
                .map(PathBuf::from)
                .or_else(|| {
                    unix.and_then(|u| u.as_abstract()).map(|name| {
                        let mut p = std::ffi::OsString::from("@");
                        p.push(std::ffi::OsStr::from_bytes(name));
                        PathBuf::from(p)
                    })
                })
                .unwrap_or_default();
            Ok(ListenAddr::Unix(path))
        }
        _ => Err(BindError::WrongFamily {
            fd,
            name: String::new(),
            expected: "TCP or Unix",
            found: "another family's",
        }),
    }
}

/// Checks that `fd` is a UDP socket (datagram, IPv4 or IPv6) and returns its local address.
///
/// # Errors
/// [`BindError::NotAUdpSocket`] naming what it is instead, or [`BindError::Os`] when a query fails.
pub(crate) fn probe_udp(fd: RawFd, name: &str) -> Result<std::net::SocketAddr, BindError> {
    let not_udp = |found: &'static str| BindError::NotAUdpSocket {
        fd,
        name: name.to_owned(),
        found,
    };
    let stat = fstat(fd).map_err(|e| BindError::os("fstat", fd, e))?;
    let file_type = SFlag::from_bits_truncate(stat.st_mode) & SFlag::S_IFMT;
    if file_type != SFlag::S_IFSOCK {
        return Err(not_udp(describe_file_type(file_type)));
    }
    // SAFETY: `fd` is open (fstat succeeded) and is only borrowed for these queries.
    let borrowed = unsafe { BorrowedFd::borrow_raw(fd) };
    let sock_type = getsockopt(&borrowed, sockopt::SockType)
        .map_err(|e| BindError::os("getsockopt(SO_TYPE)", fd, e))?;
    if sock_type != SockType::Datagram {
        return Err(not_udp(match sock_type {
            SockType::Stream => "a stream socket",
            other => describe_sock_type(other),
        }));
    }
    let addr: SockaddrStorage = getsockname(fd).map_err(|e| BindError::os("getsockname", fd, e))?;
    addr.as_sockaddr_in()
        .map(|a| std::net::SocketAddr::V4((*a).into()))
        .or_else(|| {
            addr.as_sockaddr_in6()
                .map(|a| std::net::SocketAddr::V6((*a).into()))
        })
        .ok_or_else(|| not_udp("a datagram socket of another family (Unix?)"))
}

/// Which file `fd` refers to: device and inode (unique per socket, memfd or pipe). Tells whether
/// a descriptor number still refers to the file it did when it was registered.
#[allow(clippy::unnecessary_cast)] // dev_t and ino_t are u64 on Linux only
pub(crate) fn identity(fd: RawFd) -> Result<(u64, u64), Errno> {
    fstat(fd).map(|st| (st.st_dev as u64, st.st_ino as u64))
}

/// What `fd` is, for log lines: `"a listening socket at 127.0.0.1:80"`, `"a UDP socket at
/// 127.0.0.1:53"`, `"a pipe"`...
pub(crate) fn describe(fd: RawFd) -> String {
    if let Ok(probe) = probe(fd) {
        return format!("a listening socket at {}", probe.addr);
    }
    if let Ok(addr) = probe_udp(fd, "") {
        return format!("a UDP socket at {addr}");
    }
    match fstat(fd) {
        Ok(st) => {
            let t = SFlag::from_bits_truncate(st.st_mode) & SFlag::S_IFMT;
            if t != SFlag::S_IFSOCK {
                return describe_file_type(t).to_owned();
            }
            // SAFETY: `fd` is open (fstat succeeded) and is only borrowed for this query.
            let borrowed = unsafe { BorrowedFd::borrow_raw(fd) };
            match getsockopt(&borrowed, sockopt::SockType) {
                Ok(SockType::Stream) => "a stream socket that is not listening".to_owned(),
                Ok(other) => describe_sock_type(other).to_owned(),
                Err(_) => "a socket".to_owned(),
            }
        }
        Err(_) => "not open".to_owned(),
    }
}

/// Makes a descriptor we now own ready for actix: non-blocking (tokio requires it) and
/// close-on-exec (a later child of the app must not inherit it by accident).
///
/// # Errors
/// [`BindError::Os`] when `fcntl` fails.
pub(crate) fn prepare(fd: RawFd) -> Result<(), BindError> {
    let fl = fcntl(fd, FcntlArg::F_GETFL).map_err(|e| BindError::os("fcntl(F_GETFL)", fd, e))?;
    let fl = OFlag::from_bits_truncate(fl) | OFlag::O_NONBLOCK;
    fcntl(fd, FcntlArg::F_SETFL(fl)).map_err(|e| BindError::os("fcntl(F_SETFL)", fd, e))?;
    set_cloexec(fd, true).map_err(|e| BindError::os("fcntl(F_SETFD)", fd, e))
}

/// Sets or clears FD_CLOEXEC on `fd`.
pub(crate) fn set_cloexec(fd: RawFd, on: bool) -> Result<(), Errno> {
    let flags = FdFlag::from_bits_truncate(fcntl(fd, FcntlArg::F_GETFD)?);
    let flags = if on {
        flags | FdFlag::FD_CLOEXEC
    } else {
        flags - FdFlag::FD_CLOEXEC
    };
    fcntl(fd, FcntlArg::F_SETFD(flags)).map(drop)
}

/// Takes the pipe end a parent announced in `var` (`value`, a decimal fd number; the caller
/// checked that `LISTEN_PID` is ours): it must be at `first_free` or above (`after` names what
/// lies below, for the warning) and an open FIFO; it becomes close-on-exec and ours. `None`,
/// with a warning, when it is anything else. The readiness pipe and the keeper's control pipe
/// both come this way.
pub(crate) fn claim_announced_pipe(
    var: &str,
    value: &OsStr,
    first_free: RawFd,
    after: &str,
) -> Option<OwnedFd> {
    let Some(fd) = announced_fd(value, first_free) else {
        log::warn!("ignoring {var}={value:?}: not an fd after {after}");
        return None;
    };
    match fstat(fd) {
        Ok(st) if SFlag::from_bits_truncate(st.st_mode) & SFlag::S_IFMT == SFlag::S_IFIFO => {}
        _ => {
            log::warn!("ignoring {var}={fd}: not an open pipe");
            return None;
        }
    }
    let _ = set_cloexec(fd, true);
    // SAFETY: the parent put this pipe at `fd` for us (the caller checked LISTEN_PID is ours)
    // and it is an open FIFO; nothing else in the process knows the number, so we own it.
    Some(unsafe { OwnedFd::from_raw_fd(fd) })
}

/// The fd a `value` names: a decimal number, at `first_free` or above.
fn announced_fd(value: &OsStr, first_free: RawFd) -> Option<RawFd> {
    let fd = value.to_str()?.parse::<RawFd>().ok()?;
    (fd >= first_free).then_some(fd)
}

fn describe_file_type(t: SFlag) -> &'static str {
    match t {
        SFlag::S_IFREG => "a regular file",
        SFlag::S_IFDIR => "a directory",
        SFlag::S_IFCHR => "a character device",
        SFlag::S_IFBLK => "a block device",
        SFlag::S_IFIFO => "a pipe",
        SFlag::S_IFLNK => "a symbolic link",
        _ => "something else",
    }
}

fn describe_sock_type(t: SockType) -> &'static str {
    match t {
        SockType::Datagram => "a datagram (UDP) socket",
        SockType::SeqPacket => "a seqpacket socket",
        SockType::Raw => "a raw socket",
        _ => "a socket of another type",
    }
}

#[cfg(test)]
mod tests {
    use std::{
        net::{TcpListener, TcpStream, UdpSocket},
        os::{
            fd::AsRawFd,
            unix::net::{UnixDatagram, UnixListener},
        },
    };

    use super::*;

    #[test]
    fn accepts_listening_tcp_and_reports_its_address() {
        let l = TcpListener::bind("127.0.0.1:0").unwrap();
        let p = probe(l.as_raw_fd()).unwrap();
        assert_eq!(p.addr, ListenAddr::Tcp(l.local_addr().unwrap()));
    }

    #[test]
    fn accepts_listening_unix_socket_with_its_path() {
        let dir = std::env::temp_dir().join(format!("ag-fd-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("probe.sock");
        let _ = std::fs::remove_file(&path);
        let l = UnixListener::bind(&path).unwrap();
        assert_eq!(
            probe(l.as_raw_fd()).unwrap().addr,
            ListenAddr::Unix(path.clone())
        );
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn rejects_a_regular_file() {
        let f = std::fs::File::open("/proc/self/status").unwrap();
        let err = probe(f.as_raw_fd()).unwrap_err();
        assert!(
            matches!(
                err,
                BindError::NotASocket {
                    found: "a regular file",
                    ..
                }
            ),
            "{err}"
        );
    }

    #[test]
    fn rejects_a_pipe() {
        let (r, _w) = nix::unistd::pipe2(nix::fcntl::OFlag::O_CLOEXEC).unwrap();
        let err = probe(r.as_raw_fd()).unwrap_err();
        assert!(
            matches!(
                err,
                BindError::NotASocket {
                    found: "a pipe",
                    ..
                }
            ),
            "{err}"
        );
    }

    #[test]
    fn rejects_udp_and_unix_datagram_sockets() {
        let u = UdpSocket::bind("127.0.0.1:0").unwrap();
        let err = probe(u.as_raw_fd()).unwrap_err();
        assert!(matches!(err, BindError::NotAStreamSocket { .. }), "{err}");
        assert!(err.to_string().contains("datagram"), "{err}");
        let (a, _b) = UnixDatagram::pair().unwrap();
        assert!(matches!(
            probe(a.as_raw_fd()),
            Err(BindError::NotAStreamSocket { .. })
        ));
    }

    #[test]
    fn rejects_a_connected_stream() {
        let l = TcpListener::bind("127.0.0.1:0").unwrap();
        let s = TcpStream::connect(l.local_addr().unwrap()).unwrap();
        let err = probe(s.as_raw_fd()).unwrap_err();
        assert_eq!(err, BindError::NotListening { fd: s.as_raw_fd() });
    }

    #[test]
    fn udp_probe_accepts_udp_only_and_identity_tells_files_apart() {
        let u = UdpSocket::bind("127.0.0.1:0").unwrap();
        assert_eq!(
            probe_udp(u.as_raw_fd(), "dns").unwrap(),
            u.local_addr().unwrap()
        );
        let l = TcpListener::bind("127.0.0.1:0").unwrap();
        let err = probe_udp(l.as_raw_fd(), "dns").unwrap_err();
        assert!(err.to_string().contains("a stream socket"), "{err}");
        assert!(err.to_string().contains("\"dns\""), "{err}");
        let (a, _b) = UnixDatagram::pair().unwrap();
        assert!(probe_udp(a.as_raw_fd(), "x").is_err());
        let dup = u.try_clone().unwrap();
        assert_eq!(identity(u.as_raw_fd()), identity(dup.as_raw_fd()));
        assert_ne!(identity(u.as_raw_fd()), identity(l.as_raw_fd()));
        assert!(describe(u.as_raw_fd()).starts_with("a UDP socket at 127.0.0.1:"));
        assert!(describe(l.as_raw_fd()).starts_with("a listening socket at"));
    }

    #[test]
    fn open_check() {
        let l = TcpListener::bind("127.0.0.1:0").unwrap();
        assert!(is_open(l.as_raw_fd()));
        assert!(!is_open(1_000_000));
        assert!(!is_open(-1));
    }

    #[test]
    fn prepare_sets_nonblocking_and_cloexec() {
        let l = TcpListener::bind("127.0.0.1:0").unwrap();
        set_cloexec(l.as_raw_fd(), false).unwrap();
        prepare(l.as_raw_fd()).unwrap();
        let fl = OFlag::from_bits_truncate(fcntl(l.as_raw_fd(), FcntlArg::F_GETFL).unwrap());
        assert!(fl.contains(OFlag::O_NONBLOCK));
        let fd = FdFlag::from_bits_truncate(fcntl(l.as_raw_fd(), FcntlArg::F_GETFD).unwrap());
        assert!(fd.contains(FdFlag::FD_CLOEXEC));
    }
}

/// Property test of the announced-pipe number on arbitrary input. Bounded: it runs in
/// `cargo test`.
#[cfg(test)]
mod proptests {
    use super::*;
    use crate::protocol::listen_fds::first_after;
    use proptest::prelude::*;

    fn fd_values() -> impl Strategy<Value = Vec<u8>> {
        prop_oneof![
            proptest::collection::vec(any::<u8>(), 0..12),
            any::<i64>().prop_map(|n| n.to_string().into_bytes()),
            (0u32..64).prop_map(|n| n.to_string().into_bytes()),
        ]
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(512))]

        #[test]
        fn an_announced_pipe_is_after_the_listeners_or_none(value in fd_values(), n in 0usize..20_000) {
            let got = announced_fd(OsStr::from_bytes(&value), first_after(n));
            if let Some(fd) = got {
                prop_assert!(fd as usize >= 3 + n);
                let parsed = std::str::from_utf8(&value).ok().and_then(|v| v.parse::<RawFd>().ok());
                prop_assert_eq!(parsed, Some(fd));
            }
        }
    }
}
