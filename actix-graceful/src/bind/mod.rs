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

#[cfg(any(feature = "rustls-0_23", feature = "openssl", feature = "http2"))]
mod tls;

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
    only_v6: Option<bool>,
}

#[derive(Debug)]
enum Target {
    Tcp(io::Result<Vec<SocketAddr>>),
    #[cfg_attr(not(unix), allow(dead_code))]
    Unix(PathBuf),
}

/// A listener made by [`Binding::bind`]: inherited or freshly bound, ready for actix.
///
/// # Examples
///
/// ```no_run
/// use actix_graceful::{Binding, Listener};
/// use actix_web::{App, HttpServer};
///
/// # fn main() -> std::io::Result<()> {
/// let mut server = HttpServer::new(App::new);
/// for listener in Binding::uds("/run/app.sock").bind()? {
///     server = match listener {
///         Listener::Tcp(tcp) => server.listen(tcp)?,
///         Listener::Unix(uds) => server.listen_uds(uds)?,
///         _ => unreachable!("no other kind of listener on Unix"),
///     };
/// }
/// # Ok(()) }
/// ```
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
            only_v6: None,
        }
    }

    /// Listens on a Unix-domain socket at `path`. `@name` is a name in Linux's abstract
    /// namespace (no file; as in `NOTIFY_SOCKET`, and as [`ListenAddr`](crate::ListenAddr)
    /// shows it); write `./@name` for a file of that name.
    pub fn uds(path: impl AsRef<Path>) -> Self {
        Binding {
            target: Target::Unix(path.as_ref().to_owned()),
            name: None,
            backlog: DEFAULT_BACKLOG,
            only_v6: None,
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

    /// `IPV6_V6ONLY` of a freshly bound IPv6 socket: `true` serves IPv6 only, `false` makes
    /// `[::]` dual-stack (IPv4 clients too, as `::ffff:a.b.c.d`). Default: the system's
    /// (`net.ipv6.bindv6only`, 0 on Linux: dual-stack). No effect on IPv4 addresses; an
    /// inherited socket keeps the option its creator set (it lives on the socket, so it
    /// survives every handoff).
    ///
    /// # Examples
    ///
    /// ```no_run
    /// use actix_graceful::{Binding, GracefulBind as _};
    /// use actix_web::{App, HttpServer};
    ///
    /// # fn main() -> std::io::Result<()> {
    /// // IPv6 on [::], IPv4 on its own socket on the same port.
    /// let server = HttpServer::new(App::new)
    ///     .graceful_bind_with(Binding::tcp("[::]:8080").ipv6_only(true))?
    ///     .graceful_bind("0.0.0.0:8080")?;
    /// # Ok(()) }
    /// ```
    pub fn ipv6_only(mut self, only: bool) -> Self {
        self.only_v6 = Some(only);
        self
    }

    /// Whether this binding is for a Unix-domain socket.
    #[cfg_attr(
        not(any(feature = "rustls-0_23", feature = "openssl", feature = "http2")),
        allow(dead_code)
    )]
    pub(crate) fn is_unix(&self) -> bool {
        matches!(self.target, Target::Unix(_))
    }

    /// How many addresses it resolved to (0 when resolution failed).
    #[cfg_attr(not(feature = "openssl"), allow(dead_code))]
    pub(crate) fn address_count(&self) -> usize {
        match &self.target {
            Target::Tcp(Ok(addrs)) => addrs.len(),
            Target::Tcp(Err(_)) => 0,
            Target::Unix(_) => 1,
        }
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
            // Returned, not logged as well: the caller reports it once.
            unix::bind(self)
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
        os::{
            fd::{AsRawFd as _, OwnedFd},
            unix::net::UnixListener,
        },
        path::Path,
    };

    use socket2::{Domain, SockAddr, Socket, Type};

    use super::{Binding, Listener, Target};
    use crate::{
        addr::ListenAddr,
        process::{
            inherit::{self, Taken, Wanted},
            registry,
        },
        protocol::listen_fds::{self, UNKNOWN_NAME},
        Error,
    };

    pub(super) fn bind(binding: Binding) -> io::Result<Vec<Listener>> {
        let name = binding.name.as_deref();
        if let Some(bad) = name.filter(|n| !listen_fds::name_is_valid(n)) {
            return Err(Error::InvalidFdName {
                name: bad.to_owned(),
            }
            .into());
        }
        let wanted: Vec<ListenAddr> = match &binding.target {
            Target::Tcp(Err(err)) => return Err(io::Error::new(err.kind(), err.to_string())),
            Target::Tcp(Ok(addrs)) if addrs.is_empty() => {
                return Err(io::Error::new(
                    io::ErrorKind::InvalidInput,
                    "the address resolved to nothing",
                ))
            }
            Target::Tcp(Ok(addrs)) => addrs.iter().copied().map(ListenAddr::Tcp).collect(),
            Target::Unix(path) => vec![ListenAddr::Unix(path.clone())],
        };
        let mut bound = Vec::with_capacity(wanted.len());
        for want in wanted {
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
        Ok(bound
            .into_iter()
            .zip(dups)
            .map(|(b, dup)| {
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
            })
            .collect())
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
        let taken = inherit::take(&Wanted {
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
        let socket = fresh(&wanted).map_err(|e| Error::bind(&wanted, &e))?;
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
}

/// Adds fd-aware binding to [`actix_web::HttpServer`]: each method takes over a listening socket
/// handed to the process (systemd socket activation, or a predecessor during a live upgrade)
/// and binds a fresh one only when none matches.
///
/// Matching: a named call takes the inherited socket of that name; otherwise the requested
/// address is compared with the inherited sockets' local addresses (`0.0.0.0` and `[::]` count
/// as the same wildcard; an exact address wins, and port 0 matches any port of that IP, so
/// bind explicit ports before port-0 ones, or name the sockets).
///
/// The first call also holds SIGUSR2 (blocks it) until [`run`](crate::run) handles it, so an
/// early upgrade signal cannot kill the process. An app that binds this way but runs the server
/// itself keeps SIGUSR2 blocked.
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

    /// Listens on TCP at `addrs` for HTTPS with rustls 0.23 (HTTP/1.1, and `h2` by ALPN with
    /// the `http2` feature), inheriting when possible. Feature `rustls-0_23`.
    ///
    /// The process builds `config` itself, and so does its successor: a renewed certificate on
    /// disk is served from the first connection the upgraded process accepts, while the old
    /// process finishes its connections with the old one.
    ///
    /// # Errors
    /// As [`graceful_bind`](Self::graceful_bind).
    ///
    /// # Examples
    ///
    /// ```no_run
    /// use actix_graceful::GracefulBind as _;
    /// use actix_web::{App, HttpServer};
    /// use rustls::pki_types::{pem::PemObject as _, CertificateDer, PrivateKeyDer};
    ///
    /// # fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// // Read at start-up: a successor reads the files again and serves a renewed certificate.
    /// let certs = CertificateDer::pem_file_iter("/etc/app/cert.pem")?
    ///     .collect::<Result<Vec<_>, _>>()?;
    /// let key = PrivateKeyDer::from_pem_file("/etc/app/key.pem")?;
    /// let config = rustls::ServerConfig::builder()
    ///     .with_no_client_auth()
    ///     .with_single_cert(certs, key)?;
    /// let server = HttpServer::new(App::new).graceful_bind_rustls("127.0.0.1:8443", config)?;
    /// # Ok(()) }
    /// ```
    #[cfg(feature = "rustls-0_23")]
    fn graceful_bind_rustls<A: ToSocketAddrs>(
        self,
        addrs: A,
        config: rustls::ServerConfig,
    ) -> io::Result<Self> {
        self.graceful_bind_rustls_with(Binding::tcp(addrs), config)
    }

    /// [`graceful_bind_rustls`](Self::graceful_bind_rustls) as `binding` describes (TCP only).
    ///
    /// # Errors
    /// As [`Binding::bind`]; a Unix binding is `InvalidInput` (actix-web serves TLS on TCP only).
    #[cfg(feature = "rustls-0_23")]
    fn graceful_bind_rustls_with(
        self,
        binding: Binding,
        config: rustls::ServerConfig,
    ) -> io::Result<Self> {
        crate::bind::tls::bind_rustls(self, binding, config)
    }

    /// Listens on TCP at `addrs` for HTTPS with OpenSSL (HTTP/1.1, and `h2` by ALPN with the
    /// `http2` feature), inheriting when possible. Feature `openssl`. As with rustls, each
    /// process builds its own acceptor, so an upgrade picks up a renewed certificate.
    ///
    /// `addrs` must resolve to one address: an `SslAcceptorBuilder` serves one listener.
    ///
    /// # Errors
    /// As [`graceful_bind`](Self::graceful_bind); `InvalidInput` when `addrs` resolves to more
    /// than one address.
    ///
    /// # Examples
    ///
    /// ```no_run
    /// use actix_graceful::GracefulBind as _;
    /// use actix_web::{App, HttpServer};
    /// use openssl::ssl::{SslAcceptor, SslFiletype, SslMethod};
    ///
    /// # fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// let mut tls = SslAcceptor::mozilla_intermediate_v5(SslMethod::tls())?;
    /// tls.set_private_key_file("key.pem", SslFiletype::PEM)?;
    /// tls.set_certificate_chain_file("cert.pem")?;
    /// let server = HttpServer::new(App::new).graceful_bind_openssl("127.0.0.1:8443", tls)?;
    /// # Ok(()) }
    /// ```
    #[cfg(feature = "openssl")]
    fn graceful_bind_openssl<A: ToSocketAddrs>(
        self,
        addrs: A,
        builder: openssl::ssl::SslAcceptorBuilder,
    ) -> io::Result<Self> {
        self.graceful_bind_openssl_with(Binding::tcp(addrs), builder)
    }

    /// [`graceful_bind_openssl`](Self::graceful_bind_openssl) as `binding` describes (one TCP
    /// address).
    ///
    /// # Errors
    /// As [`graceful_bind_openssl`](Self::graceful_bind_openssl); a Unix binding is
    /// `InvalidInput`.
    #[cfg(feature = "openssl")]
    fn graceful_bind_openssl_with(
        self,
        binding: Binding,
        builder: openssl::ssl::SslAcceptorBuilder,
    ) -> io::Result<Self> {
        crate::bind::tls::bind_openssl(self, binding, builder)
    }

    /// Listens on TCP at `addrs` for plaintext HTTP/1.x and HTTP/2 with prior knowledge (h2c)
    /// on the same port, as actix-web's `bind_auto_h2c`. Feature `http2`.
    ///
    /// # Errors
    /// As [`graceful_bind`](Self::graceful_bind).
    ///
    /// # Examples
    ///
    /// ```no_run
    /// use actix_graceful::GracefulBind as _;
    /// use actix_web::{App, HttpServer};
    ///
    /// # fn main() -> std::io::Result<()> {
    /// let server = HttpServer::new(App::new).graceful_bind_auto_h2c("127.0.0.1:8080")?;
    /// # Ok(()) }
    /// ```
    #[cfg(feature = "http2")]
    fn graceful_bind_auto_h2c<A: ToSocketAddrs>(self, addrs: A) -> io::Result<Self> {
        self.graceful_bind_auto_h2c_with(Binding::tcp(addrs))
    }

    /// [`graceful_bind_auto_h2c`](Self::graceful_bind_auto_h2c) as `binding` describes (TCP
    /// only).
    ///
    /// # Errors
    /// As [`Binding::bind`]; a Unix binding is `InvalidInput`.
    #[cfg(feature = "http2")]
    fn graceful_bind_auto_h2c_with(self, binding: Binding) -> io::Result<Self> {
        crate::bind::tls::bind_auto_h2c(self, binding)
    }
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

#[cfg(all(test, unix))]
mod tests {
    use super::*;
    use crate::ListenAddr;
    use std::net::SocketAddr;

    #[test]
    fn a_name_systemd_would_reject_is_refused_before_binding() {
        for bad in ["api:v2", "tab\there", &"x".repeat(256)] {
            let err = Binding::tcp("127.0.0.1:0").name(bad).bind().unwrap_err();
            assert_eq!(err.kind(), io::ErrorKind::InvalidInput, "{bad:?}");
            assert!(err.to_string().contains("LISTEN_FDNAMES"), "{err}");
        }
    }

    #[test]
    fn fresh_tcp_reports_the_real_port_and_registers_it() {
        let listeners = Binding::tcp("127.0.0.1:0").name("itest").bind().unwrap();
        let Listener::Tcp(l) = &listeners[0] else {
            panic!("not TCP")
        };
        let addr = l.local_addr().unwrap();
        assert_ne!(addr.port(), 0);
        let info = crate::listeners()
            .into_iter()
            .find(|i| i.addr() == &ListenAddr::Tcp(addr))
            .expect("registered");
        assert_eq!(info.name(), Some("itest"));
        assert!(!info.is_inherited());
    }

    /// The socket behind a descriptor, as `/proc` names it (`socket:[inode]`).
    fn socket_of(fd: i32) -> String {
        std::fs::read_link(format!("/proc/self/fd/{fd}"))
            .map(|p| p.display().to_string())
            .unwrap_or_default()
    }

    /// Issue 12, 7b: a dropped `HttpServer`'s listener no longer goes to a successor, and a
    /// rebuilt server on the same address gets the very same socket back (before: the dropped
    /// one stayed in the handoff set, and the rebuild failed with "address in use" against the
    /// registry's own duplicate).
    #[test]
    fn a_dropped_server_is_not_handed_over_and_a_rebuilt_one_gets_its_socket_back() {
        use actix_web::{App, HttpServer};
        let name = "rebuilt-server";
        let server = HttpServer::new(App::new)
            .graceful_bind_named(name, "127.0.0.1:0")
            .unwrap();
        let ours = |name: &str| {
            crate::process::registry::handoff_set()
                .into_iter()
                .filter(|(_, n)| n == name)
                .map(|(fd, _)| socket_of(fd))
                .collect::<Vec<_>>()
        };
        let addr = crate::listeners()
            .into_iter()
            .find(|l| l.name() == Some(name))
            .map(|l| l.addr().clone())
            .unwrap();
        let before = ours(name);
        assert_eq!(before.len(), 1);
        drop(server);
        assert!(
            crate::listeners().iter().all(|l| l.name() != Some(name)),
            "dropped: no longer listed"
        );

        let other = HttpServer::new(App::new)
            .graceful_bind("127.0.0.1:0")
            .unwrap();
        drop(other); // a dropped server with nothing to take back
        let ListenAddr::Tcp(sa) = addr else {
            panic!("tcp")
        };
        let server = HttpServer::new(App::new).graceful_bind_named(name, sa);
        let server = server.expect("the rebuilt server binds the same address");
        assert_eq!(ours(name), before, "the same socket, taken back");
        drop(server);
        assert_eq!(ours(name), Vec::<String>::new(), "dropped: not handed over");
        let free = std::net::TcpListener::bind(sa);
        assert!(free.is_ok(), "pruned: the port is free again ({free:?})");
    }

    /// Issue 12, 7a (child side): run by the parent with fd 3 = a listener at 127.0.0.1:P
    /// (`LISTEN_FDS=1`) while it holds 127.0.0.2:P itself.
    #[test]
    fn child_multi_address_bind_fails_after_claiming() {
        let Ok(port) = std::env::var("AG_7A_PORT") else {
            return;
        };
        let port: u16 = port.parse().unwrap();
        let a1: SocketAddr = ([127, 0, 0, 1], port).into();
        let a2: SocketAddr = ([127, 0, 0, 2], port).into();
        let err = Binding::tcp(&[a1, a2][..]).bind().unwrap_err();
        println!("\nAG7A first {:?}", err.kind());
        let fallback = Binding::tcp(a1).bind();
        match fallback {
            Ok(ls) => {
                let Listener::Tcp(l) = &ls[0] else {
                    panic!("tcp")
                };
                let info = crate::listeners();
                println!(
                    "AG7A fallback {} inherited={}",
                    socket_of(std::os::fd::AsRawFd::as_raw_fd(l)),
                    info.iter().any(|i| i.is_inherited())
                );
            }
            Err(err) => println!("AG7A fallback error {err}"),
        }
    }

    /// Issue 12, 7a: an address resolving to several (127.0.0.1:P, 127.0.0.2:P), the first
    /// inherited, the second in use: the call fails, and the inherited socket is put back, so
    /// the app's fallback bind of 127.0.0.1:P gets that same socket (before: it was closed, and
    /// the fallback could only bind afresh or, with the socket still held elsewhere, fail).
    #[cfg(target_os = "linux")]
    #[test]
    fn a_failed_multi_address_bind_puts_the_inherited_socket_back() {
        if std::env::var_os("AG_7A_PORT").is_some() {
            return;
        }
        let inherited = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let port = inherited.local_addr().unwrap().port();
        let _blocker = std::net::TcpListener::bind(("127.0.0.2", port)).unwrap();
        let want = socket_of(std::os::fd::AsRawFd::as_raw_fd(&inherited));
        let port_text = port.to_string();
        let out = crate::process::inherit::tests::child::run(
            "bind::tests::child_multi_address_bind_fails_after_claiming",
            &[("LISTEN_FDS", "1"), ("AG_7A_PORT", &port_text)],
            Some(("", "")),
            &[std::os::fd::AsRawFd::as_raw_fd(&inherited)],
        );
        let text = String::from_utf8_lossy(&out.stdout);
        let line = |tag: &str| {
            text.lines()
                .find_map(|l| l.split_once(tag).map(|(_, r)| r.to_owned()))
                .unwrap_or_else(|| panic!("no {tag} in\n{text}"))
        };
        assert_eq!(line("AG7A first "), "AddrInUse");
        assert_eq!(
            line("AG7A fallback "),
            format!("{want} inherited=true"),
            "the fallback gets the inherited socket"
        );
    }

    /// Issue 12, 7d: `@name` is Linux's abstract namespace, as in `NOTIFY_SOCKET` and
    /// `ListenAddr`: no file appears, and the address reads back as `@name`.
    #[cfg(target_os = "linux")]
    #[test]
    fn an_at_name_binds_the_abstract_namespace() {
        let name = format!("@ag-bind-test-{}", std::process::id());
        let cwd_file = std::path::Path::new(&name);
        let listeners = Binding::uds(&name).bind().unwrap();
        let Listener::Unix(l) = &listeners[0] else {
            panic!("unix")
        };
        assert!(
            !cwd_file.exists(),
            "no file named {name} in the working directory"
        );
        let addr = l.local_addr().unwrap();
        use std::os::linux::net::SocketAddrExt as _;
        assert_eq!(
            addr.as_abstract_name(),
            Some(&name.as_bytes()[1..]),
            "{addr:?}"
        );
        assert!(crate::listeners()
            .iter()
            .any(|i| i.addr() == &ListenAddr::Unix(name.clone().into())));
        let err = Binding::uds(&name).bind().unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::AddrInUse, "{err}");
    }

    #[test]
    fn a_live_unix_socket_is_never_replaced_but_a_stale_one_is() {
        let dir = std::env::temp_dir().join(format!("ag-bind-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("live.sock");
        let live = std::os::unix::net::UnixListener::bind(&path).unwrap();
        let err = Binding::uds(&path).bind().unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::AddrInUse, "{err}");
        drop(live); // the file stays, nothing listens: stale
        assert_eq!(Binding::uds(&path).bind().unwrap().len(), 1);
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
