//! The binders beyond plain HTTP/1: TLS (rustls 0.23, OpenSSL) and auto-h2c. Each takes its
//! listeners from [`Binding::bind`] (inherited or fresh, registered for the handoff) and hands
//! them to the matching actix-web `listen_*` method.
//!
//! The TLS configuration never crosses the handoff: only the listening socket does. Each
//! process builds its own configuration from the files on disk at start-up, so an upgrade is
//! also how a renewed certificate goes live.

use std::{io, net::TcpListener};

use crate::{
    bind::{Binding, Listener},
    glue::{sealed::Token, HttpServerExt},
};

/// The TCP listeners of `binding`; `what` names the binder in errors.
fn tcp_listeners(binding: Binding, what: &str) -> io::Result<Vec<TcpListener>> {
    if binding.is_unix() {
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            format!("{what} needs a TCP address: actix-web serves it on TCP listeners only"),
        ));
    }
    binding
        .bind()?
        .into_iter()
        .map(|listener| match listener {
            Listener::Tcp(tcp) => Ok(tcp),
            #[allow(unreachable_patterns)]
            _ => Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                format!("{what} needs a TCP listener"),
            )),
        })
        .collect()
}

#[cfg(feature = "rustls-0_23")]
pub(crate) fn bind_rustls<S: HttpServerExt>(
    mut server: S,
    binding: Binding,
    config: rustls::ServerConfig,
) -> io::Result<S> {
    for tcp in tcp_listeners(binding, "rustls")? {
        server = server.listen_tcp_rustls_0_23(Token, tcp, config.clone())?;
    }
    Ok(server)
}

#[cfg(feature = "openssl")]
pub(crate) fn bind_openssl<S: HttpServerExt>(
    server: S,
    binding: Binding,
    builder: openssl::ssl::SslAcceptorBuilder,
) -> io::Result<S> {
    let count = binding.address_count();
    if count > 1 {
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            format!(
                "openssl: the address resolved to {count} addresses; an SslAcceptorBuilder \
                 serves one listener: bind each address with its own builder"
            ),
        ));
    }
    let mut listeners = tcp_listeners(binding, "openssl")?;
    match listeners.pop() {
        Some(tcp) => server.listen_tcp_openssl(Token, tcp, builder),
        None => Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            "openssl: the address resolved to nothing",
        )),
    }
}

#[cfg(feature = "http2")]
pub(crate) fn bind_auto_h2c<S: HttpServerExt>(mut server: S, binding: Binding) -> io::Result<S> {
    for tcp in tcp_listeners(binding, "auto-h2c")? {
        server = server.listen_tcp_auto_h2c(Token, tcp)?;
    }
    Ok(server)
}
