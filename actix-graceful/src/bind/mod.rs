//! Binding: [`GracefulBind`] (one method per kind of server: plain, rustls, OpenSSL, auto-h2c),
//! the [`Binding`] each takes, and the binder that takes over an inherited listener or binds a
//! fresh one and registers a duplicate of it for the handoff.

use std::io;

use crate::glue::{sealed::Token, HttpServerExt};

mod binding;
#[cfg(unix)]
mod socket;
#[cfg(all(test, unix))]
mod tests;
#[cfg(any(feature = "rustls-0_23", feature = "openssl", feature = "http2"))]
mod tls;

pub use binding::{Binding, Listener};

/// actix's own default listen backlog.
pub(crate) const DEFAULT_BACKLOG: u32 = 1024;

/// Adds fd-aware binding to [`actix_web::HttpServer`]: each method takes over a listening socket
/// handed to the process (systemd socket activation, or a predecessor during a live upgrade)
/// and binds a fresh one only when none matches.
///
/// Each method takes `impl Into<`[`Binding`]`>`: a TCP address (`"127.0.0.1:8080"`, a
/// `SocketAddr`, `("::1", 8080)`...), or a [`Binding`] for a Unix socket, a systemd fd name, a
/// backlog or `IPV6_V6ONLY`.
///
/// Matching: a named binding takes the inherited socket of that name; otherwise the requested
/// address is compared with the inherited sockets' local addresses (`0.0.0.0` and `[::]` count
/// as the same wildcard; an exact address wins, and port 0 matches any port of that IP, so
/// bind explicit ports before port-0 ones, or name the sockets).
///
/// The first call (as any first use of the crate) installs a process-wide handler that records
/// SIGUSR2, so an upgrade signal that comes before [`run`](crate::run) cannot kill the process:
/// `run` acts on it once it serves. An app that binds this way but runs the server itself
/// gets SIGUSR2's earlier disposition back only through `run`.
///
/// Implemented for every `actix_web::HttpServer` (and only for it).
///
/// # Examples
///
/// ```no_run
/// use actix_graceful::{Binding, GracefulBind as _};
/// use actix_web::{web, App, HttpServer};
///
/// #[actix_web::main]
/// async fn main() -> std::io::Result<()> {
///     let server = HttpServer::new(|| App::new().route("/", web::get().to(|| async { "hi" })))
///         .graceful_bind("127.0.0.1:8080")? // was: .bind("127.0.0.1:8080")?
///         .graceful_bind(Binding::uds("/run/app.sock").name("local"))?;
///     actix_graceful::run(server).await
/// }
/// ```
///
/// Code generic over the server bounds it by `GracefulBind`:
///
/// ```no_run
/// async fn serve(server: impl actix_graceful::GracefulBind) -> std::io::Result<()> {
///     actix_graceful::run(server.graceful_bind("127.0.0.1:8080")?).await
/// }
/// ```
pub trait GracefulBind: HttpServerExt {
    /// Listens as `binding` says (TCP at every address it resolves to, or a Unix socket),
    /// inheriting when possible.
    ///
    /// # Errors
    /// As [`Binding::bind`]: a [`BindError`](crate::BindError) inside the `io::Error` when the
    /// inherited sockets are malformed or of the other family, or the fresh bind failed (a live
    /// Unix socket at the path is an `AddrInUse` error; a stale one left by a crash is
    /// replaced).
    ///
    /// # Examples
    ///
    /// ```no_run
    /// use actix_graceful::{Binding, GracefulBind as _};
    /// use actix_web::{App, HttpServer};
    ///
    /// # fn main() -> std::io::Result<()> {
    /// let server = HttpServer::new(App::new)
    ///     .graceful_bind("0.0.0.0:8080")?
    ///     .graceful_bind(Binding::tcp("0.0.0.0:9090").name("metrics"))?;
    /// # Ok(()) }
    /// ```
    fn graceful_bind(mut self, binding: impl Into<Binding>) -> io::Result<Self> {
        for listener in binding.into().bind()? {
            self = match listener {
                Listener::Tcp(l) => self.listen_tcp(Token, l)?,
                #[cfg(unix)]
                Listener::Unix(l) => self.listen_unix(Token, l)?,
            };
        }
        Ok(self)
    }

    /// Listens on TCP as `binding` says for HTTPS with rustls 0.23 (HTTP/1.1, and `h2` by ALPN
    /// with the `http2` feature), inheriting when possible. Feature `rustls-0_23`.
    ///
    /// The process builds `config` itself, and so does its successor: a renewed certificate on
    /// disk is served from the first connection the upgraded process accepts, while the old
    /// process finishes its connections with the old one.
    ///
    /// # Errors
    /// As [`graceful_bind`](Self::graceful_bind); a Unix binding is `InvalidInput` (actix-web
    /// serves TLS on TCP only).
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
    fn graceful_bind_rustls(
        self,
        binding: impl Into<Binding>,
        config: rustls::ServerConfig,
    ) -> io::Result<Self> {
        tls::bind_rustls(self, binding.into(), config)
    }

    /// Listens on TCP as `binding` says for HTTPS with OpenSSL (HTTP/1.1, and `h2` by ALPN with
    /// the `http2` feature), inheriting when possible. Feature `openssl`. As with rustls, each
    /// process builds its own acceptor, so an upgrade picks up a renewed certificate.
    ///
    /// The binding must resolve to one address: an `SslAcceptorBuilder` serves one listener.
    ///
    /// # Errors
    /// As [`graceful_bind`](Self::graceful_bind); `InvalidInput` when the binding is a Unix one
    /// or resolves to more than one address.
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
    fn graceful_bind_openssl(
        self,
        binding: impl Into<Binding>,
        builder: openssl::ssl::SslAcceptorBuilder,
    ) -> io::Result<Self> {
        tls::bind_openssl(self, binding.into(), builder)
    }

    /// Listens on TCP as `binding` says for plaintext HTTP/1.x and HTTP/2 with prior knowledge
    /// (h2c) on the same port, as actix-web's `bind_auto_h2c`. Feature `http2`.
    ///
    /// # Errors
    /// As [`graceful_bind`](Self::graceful_bind); a Unix binding is `InvalidInput`.
    ///
    /// # Examples
    ///
    /// ```no_run
    /// use actix_graceful::{Binding, GracefulBind as _};
    /// use actix_web::{App, HttpServer};
    ///
    /// # fn main() -> std::io::Result<()> {
    /// let server = HttpServer::new(App::new)
    ///     .graceful_bind_auto_h2c(Binding::tcp("127.0.0.1:8080").name("h2c"))?;
    /// # Ok(()) }
    /// ```
    #[cfg(feature = "http2")]
    fn graceful_bind_auto_h2c(self, binding: impl Into<Binding>) -> io::Result<Self> {
        tls::bind_auto_h2c(self, binding.into())
    }
}

impl<T: HttpServerExt> GracefulBind for T {}
