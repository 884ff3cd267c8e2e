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
//! Options: `--tls rustls|openssl|h2c` (default rustls; `h2c` is plaintext HTTP/1.x plus
//! prior-knowledge HTTP/2 on one port; `openssl` needs this package's `openssl` feature,
//! `cargo build -p examples --features openssl`, and a system OpenSSL), `--cert PATH` and
//! `--key PATH` (PEM; not for h2c), `--listen ADDR` (repeatable, TCP; default
//! `127.0.0.1:8443`), `--workers N`, `--drain-timeout-ms N`, `--shutdown-timeout-s N`. Prints
//! `hello pid=<pid> serving <addr> (bound|inherited), ...` once bound.

use std::{process::ExitCode, sync::Arc, time::Duration};

use actix_graceful::{Graceful, GracefulBind as _};
use actix_web::{web, App, HttpServer};

#[path = "../shared.rs"]
mod shared;
use shared::{reply, sleep};

#[derive(Debug, Default)]
struct Options {
    tls: String,
    cert: Option<String>,
    key: Option<String>,
    listen: Vec<String>,
    workers: Option<usize>,
    drain_timeout: Option<Duration>,
    shutdown_timeout: Option<Duration>,
}

fn parse_args() -> Result<Options, String> {
    let mut opts = Options {
        tls: "rustls".into(),
        ..Options::default()
    };
    let mut args = std::env::args().skip(1);
    while let Some(flag) = args.next() {
        let mut value = || args.next().ok_or(format!("{flag} needs a value"));
        let number = |v: String| {
            v.parse::<u64>()
                .map_err(|_| format!("{flag}: {v:?} is not a number"))
        };
        match flag.as_str() {
            "--tls" => opts.tls = value()?,
            "--cert" => opts.cert = Some(value()?),
            "--key" => opts.key = Some(value()?),
            "--listen" => opts.listen.push(value()?),
            "--workers" => opts.workers = Some(number(value()?)? as usize),
            "--drain-timeout-ms" => {
                opts.drain_timeout = Some(Duration::from_millis(number(value()?)?))
            }
            "--shutdown-timeout-s" => {
                opts.shutdown_timeout = Some(Duration::from_secs(number(value()?)?))
            }
            "-h" | "--help" => {
                println!("usage: hello-tls [--tls rustls|openssl|h2c] [--cert PATH --key PATH] [--listen ADDR]... [--workers N] [--drain-timeout-ms N] [--shutdown-timeout-s N]");
                std::process::exit(0);
            }
            other => return Err(format!("unknown argument {other:?} (try --help)")),
        }
    }
    if !matches!(opts.tls.as_str(), "rustls" | "openssl" | "h2c") {
        return Err(format!(
            "--tls: {:?} is not rustls, openssl or h2c",
            opts.tls
        ));
    }
    if opts.listen.is_empty() {
        opts.listen.push("127.0.0.1:8443".into());
    }
    Ok(opts)
}

fn cert_and_key(opts: &Options) -> std::io::Result<(&str, &str)> {
    match (&opts.cert, &opts.key) {
        (Some(cert), Some(key)) => Ok((cert, key)),
        _ => Err(std::io::Error::new(
            std::io::ErrorKind::InvalidInput,
            format!("--tls {} needs --cert and --key", opts.tls),
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
    if opts.tls == "openssl" {
        return Err(std::io::Error::new(
            std::io::ErrorKind::Unsupported,
            "--tls openssl: built without the `openssl` feature; build with \
             `cargo build -p examples --features openssl` (needs a system OpenSSL: libssl-dev, pkg-config)",
        ));
    }
    let mut graceful = Graceful::new();
    if let Some(t) = opts.drain_timeout {
        graceful = graceful.drain_timeout(t);
    }
    if let Some(t) = opts.shutdown_timeout {
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
        server = match opts.tls.as_str() {
            "h2c" => server.graceful_bind_auto_h2c(addr.as_str())?,
            #[cfg(feature = "openssl")]
            "openssl" => {
                let (cert, key) = cert_and_key(&opts)?;
                server.graceful_bind_openssl(addr.as_str(), openssl_acceptor(cert, key)?)?
            }
            _ => {
                let (cert, key) = cert_and_key(&opts)?;
                server.graceful_bind_rustls(addr.as_str(), rustls_config(cert, key)?)?
            }
        };
    }
    shared::print_serving()?;
    graceful.run(server).await
}

fn main() -> ExitCode {
    shared::main("hello-tls", parse_args, serve)
}
