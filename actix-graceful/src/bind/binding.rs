//! [`Binding`], what to listen on (TCP addresses or a Unix path, with a name, backlog and
//! `IPV6_V6ONLY`), its conversions from addresses, and the [`Listener`]s it binds to.

use std::{
    io,
    net::{
        IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr, SocketAddrV4, SocketAddrV6, TcpListener,
        ToSocketAddrs,
    },
    path::{Path, PathBuf},
};

#[cfg(unix)]
use std::os::unix::net::UnixListener;

#[cfg(doc)]
use super::GracefulBind;
use super::DEFAULT_BACKLOG;

/// What to listen on: built by value, then passed to any binder of [`GracefulBind`] or turned
/// into listeners with [`Binding::bind`].
///
/// The binders take `impl Into<Binding>`: a TCP address as [`ToSocketAddrs`] writes it
/// (`"127.0.0.1:8080"`, `("::1", 8080)`, a [`SocketAddr`], `&[SocketAddr]`...) converts into
/// [`Binding::tcp`] of it; anything else is spelt out: [`Binding::uds`], [`Binding::name`],
/// [`Binding::backlog`], [`Binding::ipv6_only`].
///
/// # Examples
///
/// ```no_run
/// use actix_graceful::{Binding, GracefulBind as _};
/// use actix_web::{App, HttpServer};
///
/// # fn main() -> std::io::Result<()> {
/// let server = HttpServer::new(App::new)
///     .graceful_bind(Binding::tcp("0.0.0.0:443").name("https").backlog(4096))?
///     .graceful_bind(Binding::uds("/run/app.sock"))?
///     .graceful_bind("127.0.0.1:8080")?; // the same as Binding::tcp("127.0.0.1:8080")
/// # Ok(()) }
/// ```
#[derive(Debug)]
#[must_use = "a Binding does nothing until it is bound"]
pub struct Binding {
    pub(super) target: Target,
    pub(super) name: Option<String>,
    pub(super) backlog: u32,
    pub(super) only_v6: Option<bool>,
}

#[derive(Debug)]
pub(super) enum Target {
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
    ///
    /// # Examples
    ///
    /// ```
    /// let binding = actix_graceful::Binding::tcp(("127.0.0.1", 8080));
    /// ```
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
    ///
    /// # Examples
    ///
    /// ```
    /// let binding = actix_graceful::Binding::uds("/run/app.sock");
    /// ```
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
    /// The name also travels with the socket to a successor. A name systemd would reject
    /// (printable ASCII, no `:`, at most 255 bytes) fails the bind call with
    /// [`BindError::InvalidFdName`](crate::BindError::InvalidFdName).
    ///
    /// # Examples
    ///
    /// ```
    /// let binding = actix_graceful::Binding::tcp("0.0.0.0:443").name("https");
    /// ```
    pub fn name(mut self, name: impl Into<String>) -> Self {
        self.name = Some(name.into());
        self
    }

    /// Listen backlog of a freshly bound socket (default 1024, as actix). An inherited socket
    /// keeps the backlog its creator gave it.
    ///
    /// # Examples
    ///
    /// ```
    /// let binding = actix_graceful::Binding::tcp("0.0.0.0:8080").backlog(4096);
    /// ```
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
    ///     .graceful_bind(Binding::tcp("[::]:8080").ipv6_only(true))?
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
    /// A [`BindError`](crate::BindError) inside the [`io::Error`]: the inherited sockets are
    /// malformed, the one of the asked name is of the other family
    /// ([`WrongFamily`](crate::BindError::WrongFamily)), or a fresh bind fails
    /// ([`Bind`](crate::BindError::Bind)); the address did not resolve (the resolver's error).
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
            super::socket::bind(self)
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

/// `From` for every type [`ToSocketAddrs`] is implemented for by value (and `&str`, `&String`,
/// `&[SocketAddr]`), so `graceful_bind("127.0.0.1:8080")` reads as `Binding::tcp(..)`. Spelt
/// out type by type: a blanket `impl<A: ToSocketAddrs> From<A>` would overlap `From<Binding>`.
macro_rules! tcp_from {
    ($($t:ty),* $(,)?) => {$(
        impl From<$t> for Binding {
            /// [`Binding::tcp`] of the address.
            fn from(addrs: $t) -> Self {
                Binding::tcp(addrs)
            }
        }
    )*};
}

tcp_from!(
    SocketAddr,
    SocketAddrV4,
    SocketAddrV6,
    (IpAddr, u16),
    (Ipv4Addr, u16),
    (Ipv6Addr, u16),
    (String, u16),
    String,
);

impl From<&str> for Binding {
    /// [`Binding::tcp`] of the address.
    fn from(addrs: &str) -> Self {
        Binding::tcp(addrs)
    }
}

impl From<(&str, u16)> for Binding {
    /// [`Binding::tcp`] of the address.
    fn from(addrs: (&str, u16)) -> Self {
        Binding::tcp(addrs)
    }
}

impl From<&String> for Binding {
    /// [`Binding::tcp`] of the address.
    fn from(addrs: &String) -> Self {
        Binding::tcp(addrs)
    }
}

impl From<&[SocketAddr]> for Binding {
    /// [`Binding::tcp`] of the addresses.
    fn from(addrs: &[SocketAddr]) -> Self {
        Binding::tcp(addrs)
    }
}
