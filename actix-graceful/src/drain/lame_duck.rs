//! The [`LameDuck`] middleware: `Connection: close` on every response once the process drains,
//! and, while this process is on probation, the count of its responses and of its 5xx for the
//! error-rate rule ([`ErrorCount`]).

use std::{
    future::{ready, Ready},
    net::SocketAddr,
    sync::{
        atomic::{AtomicBool, AtomicU32, Ordering},
        Mutex, OnceLock,
    },
};

use actix_web::{
    dev::{forward_ready, Service, ServiceRequest, ServiceResponse, Transform},
    http::{ConnectionType, StatusCode, Version},
    Error,
};
use futures::future::LocalBoxFuture;
use tokio::sync::Notify;

use super::{state, State};

/// Whether any worker built an app wrapped in [`LameDuck`].
static INSTALLED: AtomicBool = AtomicBool::new(false);

/// Whether any worker built an app wrapped in [`LameDuck`].
pub(crate) fn installed() -> bool {
    INSTALLED.load(Ordering::SeqCst)
}

/// Middleware that answers with `Connection: close` once the process is handing over to a
/// successor or stopping, so keep-alive clients move over without a failed request. While the
/// process is on probation after an upgrade, it also counts the responses and the 5xx among
/// them for the error-rate rule ([`Graceful::error_rate`](crate::Graceful::error_rate)).
///
/// Wrap every `App` served through [`run`](crate::run) with it: actix offers no other hook on
/// responses. Without it a handoff still works, but a keep-alive client that sends a request
/// just as the old process closes its idle connection sees that connection reset (actix-web
/// #929, #3169), and the error-rate rule sees nothing; [`run`](crate::run) warns at start-up
/// when it is missing.
///
/// Handler errors are responses by the time they reach it and get the header too; an `Err`
/// returned by a middleware wrapped inside it is rendered later by actix without it (it counts
/// as a 5xx), so call `.wrap(LameDuck)` after the app's other `.wrap`s (the last one is the
/// outermost). This covers HTTP/1.x; HTTP/2 connections get no GOAWAY from it (actix does not
/// drain them). HTTP/1.1 has no server-initiated goodbye, so an idle connection is never closed
/// by the drain: it moves over with its next request, or actix closes it when its keep-alive
/// time runs out, exactly as it would without an upgrade (see
/// [`Graceful::drain_timeout`](crate::Graceful::drain_timeout)).
///
/// # Examples
///
/// ```
/// use actix_web::{web, App};
///
/// let app = App::new()
///     .wrap(actix_graceful::LameDuck)
///     .route("/", web::get().to(|| async { "hi" }));
/// ```
#[derive(Debug, Clone, Copy, Default)]
pub struct LameDuck;

impl<S, B> Transform<S, ServiceRequest> for LameDuck
where
    S: Service<ServiceRequest, Response = ServiceResponse<B>, Error = Error>,
    S::Future: 'static,
    B: 'static,
{
    type Response = ServiceResponse<B>;
    type Error = Error;
    type Transform = LameDuckService<S>;
    type InitError = ();
    type Future = Ready<Result<Self::Transform, Self::InitError>>;

    fn new_transform(&self, service: S) -> Self::Future {
        INSTALLED.store(true, Ordering::SeqCst);
        ready(Ok(LameDuckService { service }))
    }
}

/// The service [`LameDuck`] wraps around an app.
#[doc(hidden)]
#[derive(Debug)]
pub struct LameDuckService<S> {
    service: S,
}

impl<S, B> Service<ServiceRequest> for LameDuckService<S>
where
    S: Service<ServiceRequest, Response = ServiceResponse<B>, Error = Error>,
    S::Future: 'static,
    B: 'static,
{
    type Response = ServiceResponse<B>;
    type Error = Error;
    type Future = LocalBoxFuture<'static, Result<Self::Response, Self::Error>>;

    forward_ready!(service);

    fn call(&self, req: ServiceRequest) -> Self::Future {
        if req.version() == Version::HTTP_2 && state() == State::Draining {
            if let Some(peer) = req.peer_addr() {
                http2_peer(peer);
            }
        }
        let fut = self.service.call(req);
        Box::pin(async move {
            let result = fut.await;
            ErrorCount::record(match &result {
                Ok(res) => res.status(),
                Err(_) => StatusCode::INTERNAL_SERVER_ERROR,
            });
            let mut res = result?;
            // A 101 hands the connection to another protocol (WebSocket): it is not reused for
            // HTTP/1 requests, and the app ends it through `draining()` instead.
            let upgrade = res.status() == StatusCode::SWITCHING_PROTOCOLS;
            if !upgrade && state() == State::Draining {
                res.response_mut()
                    .head_mut()
                    .set_connection_type(ConnectionType::Close);
            }
            Ok(res)
        })
    }
}

/// The peers of the HTTP/2 connections that sent a request during this drain: `Connection:
/// close` cannot move them (only a GOAWAY can, which actix's graceful stop sends them with
/// the actix-http patch in `patches/`), so the drain's HTTP/1 part need not wait for them.
fn http2_peers() -> &'static Mutex<Vec<SocketAddr>> {
    static PEERS: Mutex<Vec<SocketAddr>> = Mutex::new(Vec::new());
    &PEERS
}

fn http2_peer(peer: SocketAddr) {
    let mut peers = http2_peers().lock().unwrap_or_else(|e| e.into_inner());
    if !peers.contains(&peer) {
        peers.push(peer);
    }
}

/// The HTTP/2 connections seen during this drain, by peer ([`forget_http2_peers`] at its
/// start: after the pause no connection is accepted, so no peer address can be reused).
pub(crate) fn http2_peers_seen() -> Vec<SocketAddr> {
    http2_peers()
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .clone()
}

/// Starts a drain's record of HTTP/2 peers afresh.
pub(crate) fn forget_http2_peers() {
    http2_peers()
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .clear();
}

/// The responses of this process and the 5xx among them, counted while a probation watches
/// them ([`ErrorCount::start`]); at most one count at a time, process-wide.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct ErrorCount {
    /// Responses since the count started.
    pub(crate) responses: u32,
    /// Those with a 5xx status (or an error rendered as one).
    pub(crate) errors: u32,
}

static COUNTING: AtomicBool = AtomicBool::new(false);
static RESPONSES: AtomicU32 = AtomicU32::new(0);
static ERRORS: AtomicU32 = AtomicU32::new(0);

/// Woken after every counted response, for the probation to apply its rule.
fn counted() -> &'static Notify {
    static COUNTED: OnceLock<Notify> = OnceLock::new();
    COUNTED.get_or_init(Notify::new)
}

impl ErrorCount {
    /// Starts counting from zero.
    pub(crate) fn start() {
        RESPONSES.store(0, Ordering::SeqCst);
        ERRORS.store(0, Ordering::SeqCst);
        COUNTING.store(true, Ordering::SeqCst);
    }

    /// Stops counting.
    pub(crate) fn stop() {
        COUNTING.store(false, Ordering::SeqCst);
    }

    /// The count so far.
    pub(crate) fn now() -> ErrorCount {
        ErrorCount {
            responses: RESPONSES.load(Ordering::SeqCst),
            errors: ERRORS.load(Ordering::SeqCst),
        }
    }

    /// Resolves after a response counted since the last call returned (a permit is kept for
    /// one that came while nobody waited).
    pub(crate) async fn changed() {
        counted().notified().await;
    }

    fn record(status: StatusCode) {
        if !COUNTING.load(Ordering::Relaxed) {
            return;
        }
        RESPONSES.fetch_add(1, Ordering::SeqCst);
        if status.is_server_error() {
            ERRORS.fetch_add(1, Ordering::SeqCst);
        }
        counted().notify_one();
    }
}
