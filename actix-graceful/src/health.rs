//! Where the process is in its life, for load balancers and orchestrators: a readiness probe
//! turns 503 as soon as the process is asked to stop, while it still serves everything else.

use std::sync::atomic::{AtomicU8, Ordering};

use actix_web::{http::header, HttpResponse};

static STATE: AtomicU8 = AtomicU8::new(State::Serving as u8);

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
#[repr(u8)]
pub enum State {
    /// Serving and meant to go on serving.
    Serving = 0,
    /// Asked to stop (SIGTERM) and serving normally through the pre-stop delay (see
    /// [`Graceful::pre_stop_delay`](crate::Graceful::pre_stop_delay)) so that load balancers
    /// can take it out of rotation first.
    Stopping = 1,
    /// No longer accepting: handed over to a successor or stopping, finishing what is in flight.
    Draining = 2,
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

/// Moves the process to `next`; never back to an earlier state (but see [`resume`]).
pub(crate) fn advance(next: State) {
    STATE.fetch_max(next as u8, Ordering::SeqCst);
}

/// Back to [`State::Serving`]: a successor died during the handoff and this process took the
/// listeners back.
pub(crate) fn resume() {
    STATE.store(State::Serving as u8, Ordering::SeqCst);
}

/// What this process is doing: [`State::Serving`] until it is asked to stop or hands over.
///
/// # Examples
///
/// ```
/// assert_eq!(actix_graceful::state(), actix_graceful::State::Serving);
/// ```
#[must_use]
pub fn state() -> State {
    match STATE.load(Ordering::SeqCst) {
        0 => State::Serving,
        1 => State::Stopping,
        _ => State::Draining,
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
    use super::*;

    #[test]
    fn state_only_moves_forward() {
        assert_eq!(state(), State::Serving);
        advance(State::Draining);
        advance(State::Stopping);
        assert_eq!(state(), State::Draining);
        assert_eq!(State::Stopping.to_string(), "stopping");
    }
}
