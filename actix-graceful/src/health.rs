//! Where the process is in its life, for load balancers and orchestrators: a readiness probe
//! turns 503 as soon as the process is asked to stop, while it still serves everything else.

use std::sync::atomic::{AtomicBool, Ordering};

use actix_web::{http::header, HttpResponse};

/// Set on SIGTERM; draining is the lame-duck flag itself (`lame_duck::is_draining`), so the two
/// never disagree, also when a take-back ends the drain.
static STOPPING: AtomicBool = AtomicBool::new(false);

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

/// Asked to stop (SIGTERM): [`State::Stopping`] until the drain begins.
pub(crate) fn stopping() {
    STOPPING.store(true, Ordering::SeqCst);
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
    if crate::lame_duck::is_draining() {
        State::Draining
    } else if STOPPING.load(Ordering::SeqCst) {
        State::Stopping
    } else {
        State::Serving
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
    fn stopping_is_no_longer_serving() {
        // Draining is the lame-duck flag, tested with the middleware (tests share the process).
        assert_eq!(State::Stopping.to_string(), "stopping");
        stopping();
        assert_ne!(state(), State::Serving);
    }
}
