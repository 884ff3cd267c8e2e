//! The fd-aware binder: take over an inherited listener, or bind a fresh one, and register a
//! duplicate of it for the handoff.

use std::{
    io,
    net::{SocketAddr, TcpListener, ToSocketAddrs},
    path::{Path, PathBuf},
};

#[cfg(unix)]
use std::os::unix::net::UnixListener;

use crate::glue::{sealed::Token, HttpServerExt};

/// actix's own default listen backlog.
pub(crate) const DEFAULT_BACKLOG: u32 = 1024;

/// What to listen on: built by value, then passed to
/// [`GracefulBind::graceful_bind_with`] or turned into listeners with [`Binding::bind`].
///
/// # Examples
///
/// ```no_run
/// use actix_graceful::{Binding, GracefulBind as _};
/// use actix_web::{App, HttpServer};
///
/// # fn main() -> std::io::Result<()> {
/// let server = HttpServer::new(App::new)
///     .graceful_bind_with(Binding::tcp("0.0.0.0:443").name("https").backlog(4096))?;
/// # Ok(()) }
/// ```
#[derive(Debug)]
#[must_use = "a Binding does nothing until it is bound"]
pub struct Binding {
    target: Target,
    name: Option<String>,
    backlog: u32,
}

#[derive(Debug)]
enum Target {
    Tcp(io::Result<Vec<SocketAddr>>),
    #[cfg_attr(not(unix), allow(dead_code))]
    Unix(PathBuf),
}

/// A listener made by [`Binding::bind`]: inherited or freshly bound, ready for actix.
#[derive(Debug)]
#[non_exhaustive]
pub enum Listener {
    /// A TCP listener, for `HttpServer::listen` (or `listen_rustls_*`, `listen_openssl`).
    Tcp(TcpListener),
    /// A Unix-domain listener, for `HttpServer::listen_uds`.
    #[cfg(unix)]
    Unix(UnixListener),
}

impl Binding {
    /// Listens on TCP at every address `addrs` resolves to, like `HttpServer::bind`.
    ///
    /// Resolution happens here; its error is returned by the bind call.
    pub fn tcp(addrs: impl ToSocketAddrs) -> Self {
        let resolved = addrs.to_socket_addrs().map(Iterator::collect);
        Binding {
            target: Target::Tcp(resolved),
            name: None,
            backlog: DEFAULT_BACKLOG,
        }
    }

    /// Listens on a Unix-domain socket at `path`.
    pub fn uds(path: impl AsRef<Path>) -> Self {
        Binding {
            target: Target::Unix(path.as_ref().to_owned()),
            name: None,
            backlog: DEFAULT_BACKLOG,
        }
    }

    /// Takes the inherited socket of this systemd fd name (`FileDescriptorName=`,
    /// `systemd-socket-activate --fdname=`) when there is one, whatever its address.
    ///
    /// The name also travels with the socket to a successor.
    pub fn name(mut self, name: impl Into<String>) -> Self {
        self.name = Some(name.into());
        self
    }

    /// Listen backlog of a freshly bound socket (default 1024, as actix). An inherited socket
    /// keeps the backlog its creator gave it.
    pub fn backlog(mut self, backlog: u32) -> Self {
        self.backlog = backlog;
        self
    }

    /// Takes over the matching inherited sockets or binds fresh ones, registers them for the
    /// handoff, and returns them for an `HttpServer::listen*` call of your choice (TLS).
    ///
    /// # Errors
    /// The inherited sockets are malformed ([`Error`](crate::Error)), the one of the asked
    /// name is of the other family, or a fresh bind fails.
    ///
    /// # Examples
    ///
    /// ```no_run
    /// use actix_graceful::{Binding, Listener};
    ///
    /// # fn main() -> std::io::Result<()> {
    /// for listener in Binding::tcp("127.0.0.1:8443").bind()? {
    ///     if let Listener::Tcp(tcp) = listener {
    ///         // server = server.listen_rustls_0_23(tcp, tls_config.clone())?;
    ///         # drop(tcp);
    ///     }
    /// }
    /// # Ok(()) }
    /// ```
    pub fn bind(self) -> io::Result<Vec<Listener>> {
        #[cfg(unix)]
        {
            crate::process::init();
            let result = unix::bind(self);
            if let Err(err) = &result {
                log::error!("graceful_bind: {err}");
            }
            result
        }
        #[cfg(not(unix))]
        {
            match self.target {
                Target::Tcp(addrs) => addrs?
                    .into_iter()
                    .map(|a| TcpListener::bind(a).map(Listener::Tcp))
                    .collect(),
                Target::Unix(_) => Err(io::Error::new(
                    io::ErrorKind::Unsupported,
                    "Unix sockets need a Unix target",
                )),
            }
        }
    }
}

#[cfg(unix)]
mod unix {
    use std::{
        io,
        net::{SocketAddr, TcpListener},
        os::{fd::OwnedFd, unix::net::UnixListener},
        path::Path,
    };

    use socket2::{Domain, SockAddr, Socket, Type};

    use super::{Binding, Listener, Target};
    use crate::{
        addr::ListenAddr,
        inherit::{self, Wanted, UNKNOWN_NAME},
        registry, Error,
    };

    pub(super) fn bind(binding: Binding) -> io::Result<Vec<Listener>> {
        let name = binding.name.as_deref();
        match binding.target {
            Target::Tcp(addrs) => {
                let addrs = addrs?;
                if addrs.is_empty() {
                    return Err(io::Error::new(
                        io::ErrorKind::InvalidInput,
                        "the address resolved to nothing",
                    ));
                }
                addrs
                    .into_iter()
                    .map(|addr| {
                        let fd = take_or(name, ListenAddr::Tcp(addr), || {
                            fresh_tcp(addr, binding.backlog)
                        })?;
                        Ok(Listener::Tcp(TcpListener::from(fd)))
                    })
                    .collect()
            }
            Target::Unix(path) => {
                let fd = take_or(name, ListenAddr::Unix(path.clone()), || {
                    fresh_unix(&path, binding.backlog)
                })?;
                Ok(vec![Listener::Unix(UnixListener::from(fd))])
            }
        }
    }

    /// Takes the inherited socket for `wanted`, else binds one with `fresh`; registers a
    /// duplicate either way. Returns the descriptor for actix.
    fn take_or(
        name: Option<&str>,
        wanted: ListenAddr,
        fresh: impl FnOnce() -> io::Result<Socket>,
    ) -> io::Result<OwnedFd> {
        let (fd, addr, reg_name, inherited) = match inherit::take(&Wanted {
            name,
            addr: &wanted,
        })? {
            Some(taken) => {
                let reg_name = name
                    .map(str::to_owned)
                    .or((taken.name != UNKNOWN_NAME).then_some(taken.name));
                (taken.fd, taken.addr, reg_name, true)
            }
            None => {
                let socket = fresh().map_err(|e| Error::bind(&wanted, &e))?;
                let addr = local_addr(&socket).unwrap_or(wanted);
                (OwnedFd::from(socket), addr, name.map(str::to_owned), false)
            }
        };
        let dup = fd.try_clone()?;
        log::info!(
            "listening on {addr} ({}, fd {}{})",
            if inherited { "inherited" } else { "bound" },
            std::os::fd::AsRawFd::as_raw_fd(&fd),
            reg_name
                .as_deref()
                .map(|n| format!(", name {n:?}"))
                .unwrap_or_default()
        );
        registry::register(reg_name, addr, inherited, dup);
        Ok(fd)
    }

    fn local_addr(socket: &Socket) -> Option<ListenAddr> {
        let addr = socket.local_addr().ok()?;
        if let Some(sa) = addr.as_socket() {
            return Some(ListenAddr::Tcp(sa));
        }
        addr.as_pathname().map(|p| ListenAddr::Unix(p.to_owned()))
    }

    /// As actix's own `bind`: SO_REUSEADDR, then listen with `backlog`. Close-on-exec.
    fn fresh_tcp(addr: SocketAddr, backlog: u32) -> io::Result<Socket> {
        let socket = Socket::new(Domain::for_address(addr), Type::STREAM.cloexec(), None)?;
        socket.set_reuse_address(true)?;
        socket.bind(&addr.into())?;
        socket.listen(backlog_i32(backlog))?;
        socket.set_nonblocking(true)?;
        Ok(socket)
    }

    /// Binds `path`, first removing a stale socket file that nothing listens on any more
    /// (a crashed previous run); a live one is an `AddrInUse` error, never stolen.
    fn fresh_unix(path: &Path, backlog: u32) -> io::Result<Socket> {
        use std::os::unix::fs::FileTypeExt as _;
        if let Ok(meta) = std::fs::symlink_metadata(path) {
            let live = std::os::unix::net::UnixStream::connect(path).is_ok();
            if !meta.file_type().is_socket() || live {
                return Err(io::Error::new(
                    io::ErrorKind::AddrInUse,
                    if live {
                        "a process is listening on this socket already"
                    } else {
                        "the path exists and is not a socket"
                    },
                ));
            }
            log::info!("removing stale socket file {}", path.display());
            std::fs::remove_file(path)?;
        }
        let socket = Socket::new(Domain::UNIX, Type::STREAM.cloexec(), None)?;
        socket.bind(&SockAddr::unix(path)?)?;
        socket.listen(backlog_i32(backlog))?;
        socket.set_nonblocking(true)?;
        Ok(socket)
    }

    fn backlog_i32(backlog: u32) -> i32 {
        i32::try_from(backlog).unwrap_or(i32::MAX)
    }
}

/// Adds fd-aware binding to [`actix_web::HttpServer`]: each method takes over a listening socket
/// handed to the process (systemd socket activation, or a predecessor during a live upgrade)
/// and binds a fresh one only when none matches.
///
/// Matching: a named call takes the inherited socket of that name; otherwise the requested
/// address is compared with the inherited sockets' local addresses (`0.0.0.0` and `[::]` count
/// as the same wildcard, and port 0 matches any port of that IP).
///
/// # Examples
///
/// ```no_run
/// use actix_graceful::GracefulBind as _;
/// use actix_web::{web, App, HttpServer};
///
/// #[actix_web::main]
/// async fn main() -> std::io::Result<()> {
///     let server = HttpServer::new(|| App::new().route("/", web::get().to(|| async { "hi" })))
///         .graceful_bind("127.0.0.1:8080")?; // was: .bind("127.0.0.1:8080")?
///     actix_graceful::run(server).await
/// }
/// ```
pub trait GracefulBind: HttpServerExt {
    /// Listens on TCP at `addrs` (every address it resolves to), inheriting when possible.
    ///
    /// # Errors
    /// Malformed inherited sockets ([`Error`](crate::Error)), or the fresh bind failed.
    fn graceful_bind<A: ToSocketAddrs>(self, addrs: A) -> io::Result<Self> {
        self.graceful_bind_with(Binding::tcp(addrs))
    }

    /// Like [`graceful_bind`](Self::graceful_bind), taking the inherited socket named `name`
    /// (systemd's `FileDescriptorName=`) when one exists, whatever its address.
    ///
    /// # Errors
    /// As [`graceful_bind`](Self::graceful_bind); also [`Error::WrongFamily`](crate::Error)
    /// when the socket of that name is a Unix socket.
    fn graceful_bind_named<A: ToSocketAddrs>(self, name: &str, addrs: A) -> io::Result<Self> {
        self.graceful_bind_with(Binding::tcp(addrs).name(name))
    }

    /// Listens on a Unix-domain socket at `path`, inheriting when possible.
    ///
    /// # Errors
    /// Malformed inherited sockets, or the fresh bind failed (a live socket at `path` is an
    /// `AddrInUse` error; a stale one left by a crash is replaced).
    fn graceful_bind_uds<P: AsRef<Path>>(self, path: P) -> io::Result<Self> {
        self.graceful_bind_with(Binding::uds(path))
    }

    /// Listens as `binding` describes (name, backlog, TCP or Unix).
    ///
    /// # Errors
    /// As [`Binding::bind`].
    fn graceful_bind_with(self, binding: Binding) -> io::Result<Self>;
}

impl<T: HttpServerExt> GracefulBind for T {
    fn graceful_bind_with(mut self, binding: Binding) -> io::Result<Self> {
        for listener in binding.bind()? {
            self = match listener {
                Listener::Tcp(l) => self.listen_tcp(Token, l)?,
                #[cfg(unix)]
                Listener::Unix(l) => self.listen_unix(Token, l)?,
            };
        }
        Ok(self)
    }
}
