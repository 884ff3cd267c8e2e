//! Server-sent events and a WebSocket that survive live upgrades: `/events` streams numbered
//! events and ends the stream cleanly when the process starts its drain
//! (`actix_graceful::Draining`), so the client reconnects with `Last-Event-ID`, lands on the
//! successor and resumes at the next id; `/ws` sends the same numbers as text messages and,
//! on the drain, a Close frame with code 1012 (service restart), after which the client
//! reconnects with `?from=<next>`.
//!
//! ```text
//! cargo run -p examples --bin events -- --listen 127.0.0.1:8080
//! curl -N 127.0.0.1:8080/events        # id: 0 / data: pid=... n=0, ...
//! kill -USR2 <pid>                     # the stream ends; a browser's EventSource reconnects
//! curl -N -H 'Last-Event-ID: 41' 127.0.0.1:8080/events    # resumes at 42
//! websocat 'ws://127.0.0.1:8080/ws?from=42'                 # event 42, event 43, ...
//! ```
//!
//! Routes: `/events` (`text/event-stream`: `retry: 100`, then `id: N` + `data: pid=<pid> n=N`
//! every `--interval-ms`, starting after `Last-Event-ID`; `?ignore_drain=1` keeps streaming
//! through the drain, to show the force-close at the shutdown timeout), `/ws` (WebSocket, handshake
//! header `X-Pid`: text messages `event N` every `--interval-ms` from `?from=N` (default 0),
//! pings answered, Close 1012 on the drain), `/health` (`X-Pid`).
//! Options (`--help` lists them; a bad value is an error naming the flag, exit status 2): `--listen ADDR` (repeatable; `unix:/path` too), `--interval-ms N` (default 20),
//! `--shutdown-timeout-s N`, `--drain-timeout-ms N`. Prints
//! `hello pid=<pid> serving <addr> (bound|inherited), ...` once bound.

use std::{pin::pin, process::ExitCode, time::Duration};

use actix_graceful::{Binding, Draining, Graceful, GracefulBind as _};
use actix_web::{http::header, web, App, HttpRequest, HttpResponse, HttpServer};
use actix_ws::{CloseCode, CloseReason, Message};
use futures::{
    future::{select, Either},
    stream, StreamExt as _,
};

use examples::routes::health;

/// Server-sent events and a WebSocket that survive live upgrades (SIGUSR2).
#[derive(Debug, Clone, clap::Parser)]
#[command(name = "events", args_override_self = true)]
struct Options {
    /// ADDR or `unix:/path` (repeatable)
    #[arg(long, value_name = "ADDR", default_value = "127.0.0.1:8080")]
    listen: Vec<String>,
    /// Milliseconds between two events (at least 1)
    #[arg(long, value_name = "N", default_value_t = 20)]
    interval_ms: u64,
    /// The drain's cap once the successor serves
    #[arg(long, value_name = "N")]
    drain_timeout_ms: Option<u64>,
    /// actix's shutdown timeout (seconds)
    #[arg(long, value_name = "N")]
    shutdown_timeout_s: Option<u64>,
}

/// One SSE event: `id: N` and `data: pid=<pid> n=N`.
fn event(n: u64) -> web::Bytes {
    web::Bytes::from(format!(
        "id: {n}\ndata: pid={} n={n}\n\n",
        std::process::id()
    ))
}

async fn events(
    req: HttpRequest,
    interval: web::Data<Duration>,
    draining: Draining,
) -> HttpResponse {
    let first = req
        .headers()
        .get("last-event-id")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.trim().parse::<u64>().ok())
        .map_or(0, |last| last + 1);
    let ignore_drain = req.query_string().contains("ignore_drain=1");
    let every = **interval;
    // `retry: 100`: reconnect 100 ms after the stream ends (EventSource's default is ~3 s).
    let head = stream::once(async { web::Bytes::from_static(b"retry: 100\n\n") });
    let ticks = stream::unfold(first, move |n| async move {
        if n > first {
            actix_web::rt::time::sleep(every).await;
        }
        Some((event(n), n + 1))
    });
    let body = head.chain(ticks);
    let body = if ignore_drain {
        body.boxed_local()
    } else {
        // Every event is one chunk: ending the stream between two of them leaves the client a
        // whole last event to resume after.
        body.take_until(draining).boxed_local()
    };
    HttpResponse::Ok()
        .insert_header((header::CONTENT_TYPE, "text/event-stream"))
        .insert_header((header::CACHE_CONTROL, "no-cache"))
        .insert_header(("X-Pid", std::process::id().to_string()))
        .streaming(body.map(Ok::<_, actix_web::Error>))
}

/// `/ws`: `event N` text messages from `?from=N`, pongs for pings, and Close 1012 ("service
/// restart") once the process drains, so the client reconnects to the successor and resumes.
async fn ws(
    req: HttpRequest,
    body: web::Payload,
    interval: web::Data<Duration>,
    draining: Draining,
) -> actix_web::Result<HttpResponse> {
    let from = req
        .query_string()
        .split('&')
        .find_map(|kv| kv.strip_prefix("from="))
        .map_or(Ok(0), str::parse::<u64>)
        .map_err(|_| actix_web::error::ErrorBadRequest("from: not a number"))?;
    let (mut res, mut session, mut incoming) = actix_ws::handle(&req, body)?;
    res.headers_mut().insert(
        header::HeaderName::from_static("x-pid"),
        header::HeaderValue::from(std::process::id()),
    );
    let every = **interval;
    actix_web::rt::spawn(async move {
        let mut pong = session.clone();
        // The client's frames: pings answered; its Close (or a broken stream) ends the session.
        let from_client = async move {
            while let Some(Ok(msg)) = incoming.recv().await {
                match msg {
                    Message::Ping(data) if pong.pong(&data).await.is_err() => return None,
                    Message::Close(reason) => return reason,
                    _ => {}
                }
            }
            None
        };
        let ticks = async {
            for n in from.. {
                if n > from {
                    actix_web::rt::time::sleep(every).await;
                }
                // Each message is one whole frame: a Close after it leaves none half-sent.
                if session.text(format!("event {n}")).await.is_err() {
                    break;
                }
            }
        };
        let reason = {
            let (ticks, from_client) = (pin!(ticks), pin!(from_client));
            match select(draining, select(ticks, from_client)).await {
                Either::Left(_) => Some(CloseReason {
                    code: CloseCode::Restart,
                    description: Some("draining".into()),
                }),
                Either::Right((Either::Right((reason, _)), _)) => reason,
                Either::Right((Either::Left(_), _)) => None,
            }
        };
        // Already closed when the client went away: nothing left to tell it.
        let _ = session.close(reason).await;
    });
    Ok(res)
}

async fn serve(opts: Options) -> std::io::Result<()> {
    // The operators' ACTIX_GRACEFUL_* variables first; the flags win over them.
    let mut graceful = Graceful::new().with_env()?;
    if let Some(t) = opts.drain_timeout_ms.map(Duration::from_millis) {
        graceful = graceful.drain_timeout(t);
    }
    if let Some(t) = opts.shutdown_timeout_s.map(Duration::from_secs) {
        graceful = graceful.shutdown_timeout(t);
    }
    let interval = Duration::from_millis(opts.interval_ms.max(1));
    let mut server = HttpServer::new(move || {
        App::new()
            .wrap(actix_graceful::LameDuck)
            .app_data(web::Data::new(interval))
            .route("/events", web::get().to(events))
            .route("/ws", web::get().to(ws))
            .route("/health", web::get().to(health))
    })
    .workers(2);
    for spec in &opts.listen {
        server = server.graceful_bind(match spec.strip_prefix("unix:") {
            Some(path) => Binding::uds(path),
            None => Binding::tcp(spec.as_str()),
        })?;
    }
    examples::print_serving()?;
    graceful.run(server).await
}

fn main() -> ExitCode {
    examples::main("events", serve)
}
