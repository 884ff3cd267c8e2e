//! The one place that names actix-web's `HttpServer` bounds: everything else in the crate
//! talks to a server through [`HttpServerExt`], a sealed trait outside the public API (this
//! module is private) that only appears as the bound of `run` and `GracefulBind`.

use std::{io, net::TcpListener};

use actix_http::{body::MessageBody, Request, Response};
use actix_service::{IntoServiceFactory, Service, ServiceFactory};
use actix_web::{dev::AppConfig, dev::Server, Error, HttpServer};

/// What the crate needs of an actix-web [`HttpServer`]; implemented for it only. `pub` in a
/// private module: nameable by no user, so `run(server)` and `GracefulBind` take any
/// `HttpServer` while the trait stays out of the API (and each method also needs a
/// [`sealed::Token`], so a generic `T: GracefulBind` cannot call them either).
pub trait HttpServerExt: Sized {
    #[doc(hidden)]
    fn listen_tcp(self, _: sealed::Token, listener: TcpListener) -> io::Result<Self>;

    #[doc(hidden)]
    #[cfg(unix)]
    fn listen_unix(
        self,
        _: sealed::Token,
        listener: std::os::unix::net::UnixListener,
    ) -> io::Result<Self>;

    #[doc(hidden)]
    #[cfg(feature = "rustls-0_23")]
    fn listen_tcp_rustls_0_23(
        self,
        _: sealed::Token,
        listener: TcpListener,
        config: rustls::ServerConfig,
    ) -> io::Result<Self>;

    #[doc(hidden)]
    #[cfg(feature = "openssl")]
    fn listen_tcp_openssl(
        self,
        _: sealed::Token,
        listener: TcpListener,
        builder: openssl::ssl::SslAcceptorBuilder,
    ) -> io::Result<Self>;

    #[doc(hidden)]
    #[cfg(feature = "http2")]
    fn listen_tcp_auto_h2c(self, _: sealed::Token, listener: TcpListener) -> io::Result<Self>;

    /// Starts the server with actix's signal handling off; `shutdown_secs` overrides actix's
    /// shutdown timeout.
    #[doc(hidden)]
    fn start_without_signals(self, _: sealed::Token, shutdown_secs: Option<u64>) -> Server;
}

pub(crate) mod sealed {
    /// Only this crate can call (and so implement) `HttpServerExt`'s methods.
    #[derive(Debug, Clone, Copy)]
    pub struct Token;
}

impl<F, I, S, B> HttpServerExt for HttpServer<F, I, S, B>
where
    F: Fn() -> I + Send + Clone + 'static,
    I: IntoServiceFactory<S, Request>,
    S: ServiceFactory<Request, Config = AppConfig> + 'static,
    S::Error: Into<Error> + 'static,
    S::InitError: std::fmt::Debug,
    S::Response: Into<Response<B>> + 'static,
    <S::Service as Service<Request>>::Future: 'static,
    S::Service: 'static,
    B: MessageBody + 'static,
{
    fn listen_tcp(self, _: sealed::Token, listener: TcpListener) -> io::Result<Self> {
        self.listen(listener)
    }

    #[cfg(unix)]
    fn listen_unix(
        self,
        _: sealed::Token,
        listener: std::os::unix::net::UnixListener,
    ) -> io::Result<Self> {
        self.listen_uds(listener)
    }

    #[cfg(feature = "rustls-0_23")]
    fn listen_tcp_rustls_0_23(
        self,
        _: sealed::Token,
        listener: TcpListener,
        config: rustls::ServerConfig,
    ) -> io::Result<Self> {
        self.listen_rustls_0_23(listener, config)
    }

    #[cfg(feature = "openssl")]
    fn listen_tcp_openssl(
        self,
        _: sealed::Token,
        listener: TcpListener,
        builder: openssl::ssl::SslAcceptorBuilder,
    ) -> io::Result<Self> {
        self.listen_openssl(listener, builder)
    }

    #[cfg(feature = "http2")]
    fn listen_tcp_auto_h2c(self, _: sealed::Token, listener: TcpListener) -> io::Result<Self> {
        self.listen_auto_h2c(listener)
    }

    fn start_without_signals(self, _: sealed::Token, shutdown_secs: Option<u64>) -> Server {
        let server = self.disable_signals();
        match shutdown_secs {
            Some(secs) => server.shutdown_timeout(secs).run(),
            None => server.run(),
        }
    }
}
