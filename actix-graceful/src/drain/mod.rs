//! What requests see of the drain, in one place: [`State`] (serving, stopping, draining), the
//! [`draining`] notification and the [`LameDuck`] middleware's `Connection: close` all read one
//! watch channel, which the server sets ([`stopping`], [`begin`], and [`resume`] when a
//! process takes its listeners back). The middleware also counts responses for a probation's
//! error-rate rule (`lame_duck.rs`). It must not decide when to drain (the server's controller
//! does; the drain procedure itself is `server/drain.rs`) nor touch the process core.

mod lame_duck;

use std::{
    future::{ready, Future, Ready},
    pin::Pin,
    sync::OnceLock,
    task::{Context, Poll},
};

use actix_web::{dev::Payload, http::header, Error, FromRequest, HttpRequest, HttpResponse};
use futures::future::BoxFuture;
use tokio::sync::watch;

pub use self::lame_duck::LameDuck;
pub(crate) use self::lame_duck::{forget_http2_peers, http2_peers_seen, installed, ErrorCount};

/// The one drain state of this process: every reader ([`state`], [`draining`], [`LameDuck`])
/// looks here, every change goes through here, so they never disagree.
fn channel() -> &'static watch::Sender<State> {
    static CHANNEL: OnceLock<watch::Sender<State>> = OnceLock::new();
    CHANNEL.get_or_init(|| watch::channel(State::Serving).0)
}

/// What this process is doing, as [`state`] reports it.
///
/// # Examples
///
/// ```
/// use actix_graceful::State;
///
/// match actix_graceful::state() {
///     State::Serving => println!("taking traffic"),
///     other => println!("on the way out: {other}"),
/// }
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum State {
    /// Serving and meant to go on serving.
    Serving,
    /// Asked to stop (SIGTERM) and serving normally through the pre-stop delay (see
    /// [`Graceful::pre_stop_delay`](crate::Graceful::pre_stop_delay)) so that load balancers
    /// can take it out of rotation first.
    Stopping,
    /// No longer accepting: handed over to a successor or stopping, finishing what is in flight.
    Draining,
}

impl State {
    /// `serving`, `stopping` or `draining`.
    ///
    /// # Examples
    ///
    /// ```
    /// assert_eq!(actix_graceful::State::Draining.as_str(), "draining");
    /// ```
    #[must_use]
    pub const fn as_str(self) -> &'static str {
        match self {
            State::Serving => "serving",
            State::Stopping => "stopping",
            State::Draining => "draining",
        }
    }
}

impl std::fmt::Display for State {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Asked to stop (SIGTERM): [`State::Stopping`] until the drain begins (a drain already under
/// way stays [`State::Draining`]).
pub(crate) fn stopping() {
    channel().send_if_modified(|state| {
        let serving = *state == State::Serving;
        if serving {
            *state = State::Stopping;
        }
        serving
    });
}

/// Turns on `Connection: close` for every further response of this process, and wakes every
/// [`Draining`] future.
pub(crate) fn begin() {
    channel().send_replace(State::Draining);
}

/// This process takes its listeners back (its successor failed) and serves on, in one call:
/// `Connection: close` off, [`state`] serving again, and [`draining`] futures made from now on
/// wait for the next drain. (A process asked to stop never takes back: a drain that ends this
/// way is always one after a handoff.)
pub(crate) fn resume() {
    channel().send_replace(State::Serving);
}

/// What this process is doing: [`State::Serving`] until it is asked to stop or hands over.
///
/// # Examples
///
/// ```
/// use actix_graceful::State;
///
/// assert_eq!(actix_graceful::state(), State::Serving);
/// let draining = actix_graceful::state() == State::Draining;
/// # assert!(!draining);
/// ```
#[must_use]
pub fn state() -> State {
    *channel().borrow()
}

/// A future that resolves once this process starts its drain: a successor serves (after an
/// upgrade) or SIGTERM asked it to stop. At that moment the listeners are already paused and
/// the drain begins: the process exits once no client connection is left, or at
/// [`Graceful::drain_timeout`](crate::Graceful::drain_timeout), so a stream that never ends holds
/// the old process until then.
///
/// For connections that no `Connection: close` header can move to the successor: a streaming
/// response, server-sent events, a WebSocket. Select on it in the stream and end the stream
/// cleanly (for SSE: after the last complete event, so the client reconnects with its
/// `Last-Event-ID` to the successor; for a WebSocket: a Close frame with code 1012, "service
/// restart"). Connections still open at the end of the drain timeout get actix's graceful stop,
/// and are closed by force when [`Graceful::shutdown_timeout`](crate::Graceful::shutdown_timeout)
/// ends too.
///
/// Resolves at once when the drain has already begun. Cheap to create, `Send`, usable on any
/// worker; also an extractor: take a `Draining` argument in a handler.
///
/// # Examples
///
/// ```
/// use std::time::Duration;
/// use actix_web::{web::Bytes, HttpResponse};
/// use futures::{stream, StreamExt as _};
///
/// // A stream of ticks that ends cleanly when the process starts to drain.
/// async fn ticks(draining: actix_graceful::Draining) -> HttpResponse {
///     let ticks = stream::unfold(0u64, |n| async move {
///         actix_web::rt::time::sleep(Duration::from_secs(1)).await;
///         Some((Ok::<_, actix_web::Error>(Bytes::from(format!("{n}\n"))), n + 1))
///     });
///     HttpResponse::Ok().streaming(ticks.take_until(draining))
/// }
/// ```
pub fn draining() -> Draining {
    let mut rx = channel().subscribe();
    Draining {
        wait: Box::pin(async move {
            // The sender lives in a static and is never dropped: `wait_for` only returns Ok.
            let _ = rx.wait_for(|state| *state == State::Draining).await;
        }),
    }
}

/// The future returned by [`draining`]; also an actix-web extractor.
///
/// # Examples
///
/// ```
/// async fn handler(draining: actix_graceful::Draining) -> &'static str {
///     draining.await;
///     "this process is draining"
/// }
/// # let _ = actix_web::web::get().to(handler);
/// ```
#[must_use = "a Draining future does nothing unless awaited or polled"]
pub struct Draining {
    wait: BoxFuture<'static, ()>,
}

impl std::fmt::Debug for Draining {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Draining")
            .field("draining", &(state() == State::Draining))
            .finish()
    }
}

impl Future for Draining {
    type Output = ();

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        self.wait.as_mut().poll(cx)
    }
}

impl FromRequest for Draining {
    type Error = Error;
    type Future = Ready<Result<Self, Error>>;

    fn from_request(_: &HttpRequest, _: &mut Payload) -> Self::Future {
        ready(Ok(draining()))
    }
}

/// A ready-made readiness-probe handler: `200 serving` while the process takes traffic,
/// `503 stopping` or `503 draining` from the moment it is asked to stop or hands over, with
/// `Cache-Control: no-store`.
///
/// Mount it where the orchestrator probes readiness. With Kubernetes, a pod answering 503 is
/// taken out of its Services' endpoints while the pre-stop delay keeps it serving.
///
/// # Examples
///
/// ```
/// use actix_web::{web, App};
///
/// let app = App::new()
///     .wrap(actix_graceful::LameDuck)
///     .route("/health", web::get().to(actix_graceful::readiness));
/// ```
pub async fn readiness() -> HttpResponse {
    let state = state();
    let mut response = if state == State::Serving {
        HttpResponse::Ok()
    } else {
        HttpResponse::ServiceUnavailable()
    };
    response
        .insert_header((header::CACHE_CONTROL, "no-store"))
        .body(format!("{state}\n"))
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    /// One test: the state is the process's, and the unit tests share the process.
    #[actix_rt::test]
    async fn one_state_for_readiness_draining_and_take_back() {
        assert_eq!(State::Stopping.to_string(), "stopping");
        let early = draining();
        let waiter = actix_rt::spawn(early);
        actix_rt::time::sleep(Duration::from_millis(20)).await;
        assert!(!waiter.is_finished() && state() == State::Serving);
        begin();
        actix_rt::time::timeout(Duration::from_secs(5), waiter)
            .await
            .expect("woken")
            .expect("joined");
        assert_eq!(state(), State::Draining);
        stopping();
        assert_eq!(state(), State::Draining, "a drain under way stays draining");
        actix_rt::time::timeout(Duration::from_secs(5), draining())
            .await
            .expect("a future made after begin resolves at once");

        // A take-back ends the drain: futures made afterwards wait for the next one.
        resume();
        assert_eq!(state(), State::Serving);
        let after = actix_rt::spawn(draining());
        actix_rt::time::sleep(Duration::from_millis(50)).await;
        assert!(
            !after.is_finished(),
            "draining() resolved after the drain ended"
        );
        // SIGTERM: stopping, not yet draining; then the drain.
        stopping();
        assert_eq!(state(), State::Stopping);
        assert!(!after.is_finished(), "stopping is not draining");
        begin();
        actix_rt::time::timeout(Duration::from_secs(5), after)
            .await
            .expect("woken by the next drain")
            .expect("joined");
        resume();
    }
}
