//! The Unix binder behind [`Binding::bind`]: takes over the inherited socket for each address
//! (or the one of a dropped server), else binds a fresh one (stale Unix socket files replaced,
//! `@name` abstract), and registers a duplicate of each for the handoff.

use std::{
    io,
    net::{SocketAddr, TcpListener},
    os::{
        fd::{AsRawFd as _, OwnedFd},
        unix::net::UnixListener,
    },
    path::Path,
};

use socket2::{Domain, SockAddr, Socket, Type};

use super::{binding::Target, Binding, Listener};
use crate::{
    addr::ListenAddr,
    process::{
        inherit::{self, Taken, Wanted},
        registry,
    },
    protocol::listen_fds::{self, UNKNOWN_NAME},
    BindError,
};

pub(super) fn bind(binding: Binding) -> io::Result<Vec<Listener>> {
    let name = binding.name.as_deref();
    if let Some(bad) = name.filter(|n| !listen_fds::name_is_valid(n)) {
        return Err(BindError::InvalidFdName {
            name: bad.to_owned(),
        }
        .into());
    }
    let mut bound = Vec::new();
    for want in wanted(&binding)? {
        let result = take_or(name, want, |want| match want {
            ListenAddr::Tcp(addr) => fresh_tcp(*addr, binding.backlog, binding.only_v6),
            ListenAddr::Unix(path) => fresh_unix(path, binding.backlog),
        });
        match result {
            Ok(b) => bound.push(b),
            Err(err) => {
                give_back(bound);
                return Err(err);
            }
        }
    }
    // Register only once every address is bound, so a failed call leaves no listener
    // behind that actix never serves but a successor would inherit.
    let dups = match bound
        .iter()
        .map(|b| b.fd.try_clone())
        .collect::<io::Result<Vec<_>>>()
    {
        Ok(dups) => dups,
        Err(err) => {
            give_back(bound);
            return Err(err);
        }
    };
    Ok(bound.into_iter().zip(dups).map(register).collect())
}

/// The addresses `binding` asks for.
fn wanted(binding: &Binding) -> io::Result<Vec<ListenAddr>> {
    match &binding.target {
        Target::Tcp(Err(err)) => Err(io::Error::new(err.kind(), err.to_string())),
        Target::Tcp(Ok(addrs)) if addrs.is_empty() => Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            "the address resolved to nothing",
        )),
        Target::Tcp(Ok(addrs)) => Ok(addrs.iter().copied().map(ListenAddr::Tcp).collect()),
        Target::Unix(path) => Ok(vec![ListenAddr::Unix(path.clone())]),
    }
}

/// Registers the bound listener `b` (with `dup`, the registry's copy) and makes it a
/// [`Listener`] for actix.
fn register((b, dup): (Bound, OwnedFd)) -> Listener {
    log::info!(
        "listening on {} ({}, fd {}{})",
        b.addr,
        match b.origin {
            Origin::Inherited => "inherited",
            Origin::Reclaimed { .. } => "taken back from a dropped server",
            Origin::Fresh => "bound",
        },
        b.fd.as_raw_fd(),
        b.name
            .as_deref()
            .map(|n| format!(", name {n:?}"))
            .unwrap_or_default()
    );
    let tcp = matches!(b.addr, ListenAddr::Tcp(_));
    let inherited = match b.origin {
        Origin::Inherited => true,
        Origin::Reclaimed { inherited } => inherited,
        Origin::Fresh => false,
    };
    registry::register(b.name, b.addr, inherited, b.fd.as_raw_fd(), dup);
    if tcp {
        Listener::Tcp(TcpListener::from(b.fd))
    } else {
        Listener::Unix(UnixListener::from(b.fd))
    }
}

/// Where a listener came from.
#[derive(Debug, Clone, Copy)]
enum Origin {
    /// Handed over to this process (systemd, or a predecessor).
    Inherited,
    /// Ours already: the listener of a dropped server, taken back.
    Reclaimed { inherited: bool },
    /// Bound by this call.
    Fresh,
}

/// A listener taken over or freshly bound, not yet registered.
struct Bound {
    fd: OwnedFd,
    addr: ListenAddr,
    name: Option<String>,
    origin: Origin,
    /// The name it was inherited under (for a put-back).
    inherited_name: String,
}

/// A bind call failed after it took some sockets: the inherited ones go back to the
/// inherited set and the reclaimed ones to the registry, unclaimed and open, so a later
/// call (the app's fallback) and later generations still get them. Fresh ones are closed.
fn give_back(bound: Vec<Bound>) {
    for b in bound {
        match b.origin {
            Origin::Inherited => inherit::put_back(Taken {
                fd: b.fd,
                name: b.inherited_name,
                addr: b.addr,
            }),
            Origin::Reclaimed { inherited } => registry::restore(registry::Reclaimed {
                fd: b.fd,
                info: registry::ListenerInfo::new(b.name, b.addr, inherited),
            }),
            Origin::Fresh => drop(b.fd),
        }
    }
}

/// Takes the inherited socket for `wanted`, else the one of a dropped server, else binds
/// one with `fresh`.
fn take_or(
    name: Option<&str>,
    wanted: ListenAddr,
    fresh: impl FnOnce(&ListenAddr) -> io::Result<Socket>,
) -> io::Result<Bound> {
    let taken = inherit::claim_listener(&Wanted {
        name,
        addr: &wanted,
    })?;
    if let Some(taken) = taken {
        return Ok(Bound {
            name: name
                .map(str::to_owned)
                .or((taken.name != UNKNOWN_NAME).then(|| taken.name.clone())),
            fd: taken.fd,
            addr: taken.addr,
            origin: Origin::Inherited,
            inherited_name: taken.name,
        });
    }
    if let Some(back) = registry::reclaim(name, &wanted) {
        return Ok(Bound {
            name: name
                .map(str::to_owned)
                .or(back.info.name().map(str::to_owned)),
            addr: back.info.addr().clone(),
            origin: Origin::Reclaimed {
                inherited: back.info.is_inherited(),
            },
            fd: back.fd,
            inherited_name: String::new(),
        });
    }
    let socket = fresh(&wanted).map_err(|e| BindError::bind(&wanted, &e))?;
    Ok(Bound {
        addr: local_addr(&socket).unwrap_or(wanted),
        fd: OwnedFd::from(socket),
        name: name.map(str::to_owned),
        origin: Origin::Fresh,
        inherited_name: String::new(),
    })
}

fn local_addr(socket: &Socket) -> Option<ListenAddr> {
    let addr = socket.local_addr().ok()?;
    if let Some(sa) = addr.as_socket() {
        return Some(ListenAddr::Tcp(sa));
    }
    if let Some(p) = addr.as_pathname() {
        return Some(ListenAddr::Unix(p.to_owned()));
    }
    #[cfg(any(target_os = "linux", target_os = "android"))]
    if let Some(name) = addr.as_abstract_namespace() {
        use std::os::unix::ffi::OsStrExt as _;
        let mut p = std::ffi::OsString::from("@");
        p.push(std::ffi::OsStr::from_bytes(name));
        return Some(ListenAddr::Unix(p.into()));
    }
    None
}

/// As actix's own `bind`: SO_REUSEADDR, then listen with `backlog`. Close-on-exec.
/// `only_v6` sets IPV6_V6ONLY on an IPv6 socket (before `bind`, as it must be).
fn fresh_tcp(addr: SocketAddr, backlog: u32, only_v6: Option<bool>) -> io::Result<Socket> {
    let socket = Socket::new(Domain::for_address(addr), Type::STREAM.cloexec(), None)?;
    socket.set_reuse_address(true)?;
    if let (Some(only), true) = (only_v6, addr.is_ipv6()) {
        socket.set_only_v6(only)?;
    }
    socket.bind(&addr.into())?;
    socket.listen(backlog_i32(backlog))?;
    socket.set_nonblocking(true)?;
    Ok(socket)
}

/// Binds `path`, first removing a stale socket file that nothing listens on any more
/// (a crashed previous run); a live one is an `AddrInUse` error, never stolen.
fn fresh_unix(path: &Path, backlog: u32) -> io::Result<Socket> {
    use std::os::unix::fs::FileTypeExt as _;
    if let Some(name) = abstract_name(path) {
        return fresh_abstract(name?, backlog);
    }
    if let Ok(meta) = std::fs::symlink_metadata(path) {
        if !meta.file_type().is_socket() {
            return Err(io::Error::new(
                io::ErrorKind::AddrInUse,
                "the path exists and is not a socket",
            ));
        }
        // Only a refused connection proves the socket stale; anything else (accepted,
        // backlog full, permission denied) may be a live server: never steal its path.
        let probe = Socket::new(Domain::UNIX, Type::STREAM.cloexec(), None)?;
        probe.set_nonblocking(true)?;
        match probe.connect(&SockAddr::unix(path)?) {
            Err(e) if e.raw_os_error() == Some(libc::ECONNREFUSED) => {
                log::info!("removing stale socket file {}", path.display());
                std::fs::remove_file(path)?;
            }
            _ => {
                return Err(io::Error::new(
                    io::ErrorKind::AddrInUse,
                    "the socket may be in use by another process (connect was not refused)",
                ))
            }
        }
    }
    let socket = Socket::new(Domain::UNIX, Type::STREAM.cloexec(), None)?;
    socket.bind(&SockAddr::unix(path)?)?;
    socket.listen(backlog_i32(backlog))?;
    socket.set_nonblocking(true)?;
    Ok(socket)
}

/// `@name`: the abstract namespace, as in `NOTIFY_SOCKET` and [`ListenAddr`]. `None` for a
/// path; an error where there is no abstract namespace (not Linux). A file whose name
/// starts with `@` is still reachable as `./@name`.
fn abstract_name(path: &Path) -> Option<io::Result<&[u8]>> {
    use std::os::unix::ffi::OsStrExt as _;
    let name = path.as_os_str().as_bytes().strip_prefix(b"@")?;
    if cfg!(any(target_os = "linux", target_os = "android")) {
        Some(Ok(name))
    } else {
        Some(Err(io::Error::new(
            io::ErrorKind::Unsupported,
            "`@name` is a Linux abstract socket name; for a file named so, write ./@name",
        )))
    }
}

/// Binds the abstract name `name` (no file; it disappears with the last descriptor).
fn fresh_abstract(name: &[u8], backlog: u32) -> io::Result<Socket> {
    use std::os::unix::ffi::OsStrExt as _;
    // socket2 reads a path that starts with NUL as an abstract name.
    let mut raw = vec![0u8];
    raw.extend_from_slice(name);
    let addr = SockAddr::unix(std::ffi::OsStr::from_bytes(&raw))?;
    let socket = Socket::new(Domain::UNIX, Type::STREAM.cloexec(), None)?;
    socket.bind(&addr)?;
    socket.listen(backlog_i32(backlog))?;
    socket.set_nonblocking(true)?;
    Ok(socket)
}

fn backlog_i32(backlog: u32) -> i32 {
    i32::try_from(backlog).unwrap_or(i32::MAX)
}
