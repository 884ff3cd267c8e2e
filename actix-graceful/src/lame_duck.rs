//! The lame-duck middleware: once the process hands over, every response tells its client to
//! close the connection, so keep-alive clients reconnect (to the successor) at a moment of their
//! choosing instead of racing a server-side close.

use std::{
    future::{ready, Ready},
    sync::atomic::{AtomicBool, Ordering},
};

use actix_web::{
    dev::{forward_ready, Service, ServiceRequest, ServiceResponse, Transform},
    http::ConnectionType,
    Error,
};
use futures::future::LocalBoxFuture;

static DRAINING: AtomicBool = AtomicBool::new(false);
static INSTALLED: AtomicBool = AtomicBool::new(false);

/// Turns on `Connection: close` for every further response of this process.
pub(crate) fn begin() {
    DRAINING.store(true, Ordering::SeqCst);
}

/// Turns `Connection: close` off again (the successor died during the handoff).
pub(crate) fn end() {
    DRAINING.store(false, Ordering::SeqCst);
}

/// Whether any worker built an app wrapped in [`LameDuck`].
pub(crate) fn installed() -> bool {
    INSTALLED.load(Ordering::SeqCst)
}

/// Middleware that answers with `Connection: close` once the process is handing over to a
/// successor or stopping, so keep-alive clients move over without a failed request.
///
/// Wrap every `App` served through [`run`](crate::run) with it: actix offers no other hook on
/// responses. Without it a handoff still works, but a keep-alive client that sends a request
/// just as the old process closes its idle connection sees that connection reset (actix-web
/// #929, #3169); [`run`](crate::run) warns at start-up when it is missing.
///
/// Handler errors are responses by the time they reach it and get the header too; an `Err`
/// returned by a middleware wrapped inside it is rendered later by actix without it, so call
/// `.wrap(LameDuck)` after the app's other `.wrap`s (the last one is the outermost). This covers HTTP/1.x; HTTP/2
/// connections get no GOAWAY from it (actix does not drain them).
/// HTTP/1.1 has no server-initiated goodbye: a pooled connection that stays idle through the
/// whole lame-duck period can still race the final close. Clients that retry idempotent
/// requests on a reused connection (most do) never notice.
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
        let fut = self.service.call(req);
        Box::pin(async move {
            let mut res = fut.await?;
            if DRAINING.load(Ordering::Relaxed) {
                res.response_mut()
                    .head_mut()
                    .set_connection_type(ConnectionType::Close);
            }
            Ok(res)
        })
    }
}
