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
//! Options: `--listen ADDR` (one TCP address, default `127.0.0.1:8080`), `--workers N`
//! (default 2), `--reuseport` (bind with `SO_REUSEPORT` + `SO_REUSEADDR` and `listen()`, so
//! a second process can bind the same port while this one runs). SIGTERM is actix's own
//! graceful stop. Prints `hello pid=<pid> serving <addr> (bound)` once listening, like `hello`.

use std::{
    future::Future as _, io::Write as _, net::SocketAddr, pin::Pin, process::ExitCode, task::Poll,
};

use actix_web::{web, App, HttpServer};

use socket2::{Domain, Protocol, Socket, Type};

#[path = "../shared.rs"]
mod shared;
use shared::{echo, health, reply, sleep};

/// actix's own default listen backlog.
const BACKLOG: i32 = 1024;

struct Options {
    listen: SocketAddr,
    workers: usize,
    reuseport: bool,
}

fn parse_args() -> Result<Options, String> {
    let mut opts = Options {
        listen: SocketAddr::from(([127, 0, 0, 1], 8080)),
        workers: 2,
        reuseport: false,
    };
    let mut args = std::env::args().skip(1);
    while let Some(flag) = args.next() {
        let mut value = || args.next().ok_or(format!("{flag} needs a value"));
        match flag.as_str() {
            "--listen" => {
                let v = value()?;
                opts.listen = v
                    .parse()
                    .map_err(|_| format!("--listen: {v:?} is not an IP:port address"))?;
            }
            "--workers" => {
                opts.workers = value()?.parse().map_err(|_| "--workers: not a number")?
            }
            "--reuseport" => opts.reuseport = true,
            "-h" | "--help" => {
                println!("usage: hello-plain [--listen IP:PORT] [--workers N] [--reuseport]");
                std::process::exit(0);
            }
            other => return Err(format!("unknown argument {other:?} (try --help)")),
        }
    }
    Ok(opts)
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
            .route("/", web::get().to(|| async { reply() }))
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
    let result = parse_args()
        .map_err(|e| std::io::Error::new(std::io::ErrorKind::InvalidInput, e))
        .and_then(|opts| actix_web::rt::System::new().block_on(serve(opts)));
    shared::exit("hello-plain", result)
}
