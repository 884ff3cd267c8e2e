//! `hello` over TLS (rustls 0.23 or OpenSSL) or auto-h2c, for the upgrade tests of those
//! binders. Answers with its pid, like `hello`.
//!
//! ```text
//! cargo run -p examples --bin hello-tls -- --tls rustls --cert cert.pem --key key.pem --listen 127.0.0.1:8443
//! curl --cacert ca.pem https://localhost:8443/     # pid=...
//! kill -USR2 <pid>                                 # the successor reads cert.pem and key.pem anew
//! ```
//!
//! The certificate and key are read at start-up, so replacing the files and upgrading serves
//! the renewed certificate from the successor on.
//!
//! Routes: `/` and `/health` (`pid=<pid>`, header `X-Pid`), `/sleep?ms=N` (the same after N ms).
//! Options (`--help` lists them; a bad value is an error naming the flag, exit status 2): `--tls rustls|openssl|h2c` (default rustls; `h2c` is plaintext HTTP/1.x plus
//! prior-knowledge HTTP/2 on one port; `openssl` needs this package's `openssl` feature,
//! `cargo build -p examples --features openssl`, and a system OpenSSL), `--cert PATH` and
//! `--key PATH` (PEM; not for h2c), `--listen ADDR` (repeatable, TCP; default
//! `127.0.0.1:8443`), `--workers N`, `--drain-timeout-ms N`, `--shutdown-timeout-s N`. Prints
//! `hello pid=<pid> serving <addr> (bound|inherited), ...` once bound.

use std::{process::ExitCode, sync::Arc, time::Duration};

use actix_graceful::{Graceful, GracefulBind as _};
use actix_web::{web, App, HttpServer};

use examples::routes::{reply, sleep};

/// `hello` over TLS (rustls or OpenSSL) or auto-h2c; SIGUSR2 upgrades it live.
#[derive(Debug, clap::Parser)]
#[command(name = "hello-tls", args_override_self = true)]
struct Options {
    /// `h2c`: plaintext HTTP/1.x plus prior-knowledge HTTP/2 on one port; `openssl` needs
    /// this package's `openssl` feature
    #[arg(long, value_enum, default_value_t = Tls::Rustls)]
    tls: Tls,
    /// The certificate chain (PEM; not for h2c)
    #[arg(long, value_name = "PATH")]
    cert: Option<String>,
    /// The private key (PEM; not for h2c)
    #[arg(long, value_name = "PATH")]
    key: Option<String>,
    /// A TCP address (repeatable)
    #[arg(long, value_name = "ADDR", default_value = "127.0.0.1:8443")]
    listen: Vec<String>,
    /// Worker threads (default: actix's, one per CPU)
    #[arg(long, value_name = "N")]
    workers: Option<usize>,
    /// The drain's cap once the successor serves
    #[arg(long, value_name = "N")]
    drain_timeout_ms: Option<u64>,
    /// actix's shutdown timeout (seconds)
    #[arg(long, value_name = "N")]
    shutdown_timeout_s: Option<u64>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
enum Tls {
    Rustls,
    Openssl,
    H2c,
}

fn cert_and_key(opts: &Options) -> std::io::Result<(&str, &str)> {
    match (&opts.cert, &opts.key) {
        (Some(cert), Some(key)) => Ok((cert, key)),
        _ => Err(std::io::Error::new(
            std::io::ErrorKind::InvalidInput,
            format!(
                "--tls {} needs --cert and --key",
                format!("{:?}", opts.tls).to_lowercase()
            ),
        )),
    }
}

/// A rustls server config from PEM files, with the `ring` provider.
fn rustls_config(cert: &str, key: &str) -> std::io::Result<rustls::ServerConfig> {
    use rustls::pki_types::{pem::PemObject as _, CertificateDer, PrivateKeyDer};
    let bad = |what: &str, e: &dyn std::fmt::Display| {
        std::io::Error::new(std::io::ErrorKind::InvalidData, format!("{what}: {e}"))
    };
    let certs = CertificateDer::pem_file_iter(cert)
        .and_then(Iterator::collect::<Result<Vec<_>, _>>)
        .map_err(|e| bad(cert, &e))?;
    let key = PrivateKeyDer::from_pem_file(key).map_err(|e| bad(key, &e))?;
    rustls::ServerConfig::builder_with_provider(Arc::new(rustls::crypto::ring::default_provider()))
        .with_safe_default_protocol_versions()
        .map_err(|e| bad("rustls", &e))?
        .with_no_client_auth()
        .with_single_cert(certs, key)
        .map_err(|e| bad("rustls", &e))
}

/// An OpenSSL acceptor from PEM files.
#[cfg(feature = "openssl")]
fn openssl_acceptor(cert: &str, key: &str) -> std::io::Result<openssl::ssl::SslAcceptorBuilder> {
    use openssl::ssl::{SslAcceptor, SslFiletype, SslMethod};
    let bad = |e: openssl::error::ErrorStack| {
        std::io::Error::new(std::io::ErrorKind::InvalidData, format!("openssl: {e}"))
    };
    let mut builder = SslAcceptor::mozilla_intermediate_v5(SslMethod::tls()).map_err(bad)?;
    builder
        .set_private_key_file(key, SslFiletype::PEM)
        .map_err(bad)?;
    builder.set_certificate_chain_file(cert).map_err(bad)?;
    Ok(builder)
}

async fn serve(opts: Options) -> std::io::Result<()> {
    #[cfg(not(feature = "openssl"))]
    if opts.tls == Tls::Openssl {
        return Err(std::io::Error::new(
            std::io::ErrorKind::Unsupported,
            "--tls openssl: built without the `openssl` feature; build with \
             `cargo build -p examples --features openssl` (needs a system OpenSSL: libssl-dev, pkg-config)",
        ));
    }
    // The operators' ACTIX_GRACEFUL_* variables first; the flags win over them.
    let mut graceful = Graceful::new().with_env()?;
    if let Some(t) = opts.drain_timeout_ms.map(Duration::from_millis) {
        graceful = graceful.drain_timeout(t);
    }
    if let Some(t) = opts.shutdown_timeout_s.map(Duration::from_secs) {
        graceful = graceful.shutdown_timeout(t);
    }
    let mut server = HttpServer::new(|| {
        App::new()
            .wrap(actix_graceful::LameDuck)
            .route("/", web::get().to(|| async { reply() }))
            .route("/health", web::get().to(|| async { reply() }))
            .route("/sleep", web::get().to(sleep))
    });
    if let Some(n) = opts.workers {
        server = server.workers(n);
    }
    for addr in &opts.listen {
        server = match opts.tls {
            Tls::H2c => server.graceful_bind_auto_h2c(addr.as_str())?,
            #[cfg(feature = "openssl")]
            Tls::Openssl => {
                let (cert, key) = cert_and_key(&opts)?;
                server.graceful_bind_openssl(addr.as_str(), openssl_acceptor(cert, key)?)?
            }
            _ => {
                let (cert, key) = cert_and_key(&opts)?;
                server.graceful_bind_rustls(addr.as_str(), rustls_config(cert, key)?)?
            }
        };
    }
    examples::print_serving()?;
    graceful.run(server).await
}

fn main() -> ExitCode {
    examples::main("hello-tls", serve)
}
