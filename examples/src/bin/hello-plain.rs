//! `hello` without actix-graceful: the same routes and replies, served with plain actix
//! `bind` (or `listen` on a socket bound with `SO_REUSEPORT`). It is the baseline of
//! `upgrade-bench`: the naive restart, the SO_REUSEPORT overlap, and the steady-state
//! overhead comparison.
//!
//! ```text
//! cargo run -p examples --bin hello-plain -- --listen 127.0.0.1:8080 [--reuseport]
//! ```
//!
//! Routes: `/` (`pid=<pid>`, header `X-Pid`), `/sleep?ms=N` (the same after N ms), `/health`.
//! `hello`'s bad-build knobs (`examples::knobs`) work here too, so that the benchmark's
//! baselines deploy the same bad builds: `HELLO_UNHEALTHY=1` (`/health` answers 503; there is
//! no readiness check to fail) and `HELLO_FAIL_STATUS=CODE` (every `/` answers CODE).
//! Options (`--help` lists them; a bad value is an error naming the flag, exit status 2): `--listen ADDR` (one TCP address, default `127.0.0.1:8080`), `--workers N`
//! (default 2), `--reuseport` (bind with `SO_REUSEPORT` + `SO_REUSEADDR` and `listen()`, so
//! a second process can bind the same port while this one runs). SIGTERM is actix's own
//! graceful stop. Prints `hello pid=<pid> serving <addr> (bound)` once listening, like `hello`.

use std::{
    future::Future as _, io::Write as _, net::SocketAddr, pin::Pin, process::ExitCode, task::Poll,
};

use actix_web::{web, App, HttpServer};

use socket2::{Domain, Protocol, Socket, Type};

use examples::knobs::{health, root};
use examples::routes::{echo, sleep};

/// actix's own default listen backlog.
const BACKLOG: i32 = 1024;

/// `hello` without actix-graceful (plain actix `bind`): upgrade-bench's baseline.
#[derive(clap::Parser)]
#[command(name = "hello-plain", args_override_self = true)]
struct Options {
    /// One TCP address
    #[arg(long, value_name = "IP:PORT", default_value = "127.0.0.1:8080")]
    listen: SocketAddr,
    /// Worker threads
    #[arg(long, value_name = "N", default_value_t = 2)]
    workers: usize,
    /// Bind with SO_REUSEPORT + SO_REUSEADDR, so a second process can bind the same port
    #[arg(long)]
    reuseport: bool,
}

/// A listening socket with `SO_REUSEADDR` + `SO_REUSEPORT`.
fn reuseport_listener(addr: SocketAddr) -> std::io::Result<std::net::TcpListener> {
    let socket = Socket::new(Domain::for_address(addr), Type::STREAM, Some(Protocol::TCP))?;
    socket.set_reuse_address(true)?;
    socket.set_reuse_port(true)?;
    socket.bind(&addr.into())?;
    socket.listen(BACKLOG)?;
    Ok(socket.into())
}

async fn serve(opts: Options) -> std::io::Result<()> {
    let server = HttpServer::new(|| {
        App::new()
            .route("/", web::get().to(root))
            .route("/sleep", web::get().to(sleep))
            .route("/echo", web::post().to(echo))
            .route("/health", web::get().to(health))
    })
    .workers(opts.workers);
    let server = if opts.reuseport {
        server.listen(reuseport_listener(opts.listen)?)?
    } else {
        server.bind(opts.listen)?
    };
    let addr = server
        .addrs()
        .first()
        .copied()
        .ok_or_else(|| std::io::Error::other("no address bound"))?;
    let mut server = server.run();
    // actix starts its workers and registers the listener in the server's first poll: only
    // then does this process serve (the same moment `hello` reports ready).
    let first = std::future::poll_fn(|cx| Poll::Ready(Pin::new(&mut server).poll(cx))).await;
    if let Poll::Ready(result) = first {
        return result;
    }
    let mut out = std::io::stdout().lock();
    writeln!(
        out,
        "hello pid={} serving {addr} (bound)",
        std::process::id()
    )?;
    out.flush()?;
    drop(out);
    server.await
}

fn main() -> ExitCode {
    // No logging set up: the baseline is plain actix.
    let opts = <Options as clap::Parser>::parse();
    examples::exit(
        "hello-plain",
        actix_web::rt::System::new().block_on(serve(opts)),
    )
}
