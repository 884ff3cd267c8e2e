//! The readiness gate: the app's readiness check ([`Graceful::ready_when`]), run before this
//! process accepts anything, bounded by the upgrade timeout and ended by a stop signal. It
//! decides only "ready or not, and why": reporting it is `serve`'s.
//!
//! [`Graceful::ready_when`]: crate::Graceful::ready_when

use std::{
    future::{poll_fn, Future},
    task::Poll,
    time::{Duration, Instant},
};

use futures::FutureExt as _;

use super::builder::Check;

use super::signals::{Event, Signals};

/// Runs `check` (if any) until it answers, `timeout` passes, or a stop signal comes; upgrade
/// signals meanwhile are kept for later. `Err`: why this process is not ready.
pub(crate) async fn pass(
    check: Option<Check>,
    timeout: Duration,
    signals: &mut Signals,
) -> Result<(), String> {
    let Some(check) = check else {
        return Ok(());
    };
    let started = Instant::now();
    log::info!("readiness check: running");
    let mut check = check();
    let mut timer = Box::pin(actix_rt::time::sleep(timeout));
    let mut upgrades = 0;
    let result = poll_fn(|cx| {
        if let Poll::Ready(result) = check.poll_unpin(cx) {
            return Poll::Ready(result.map_err(|reason| format!("readiness check: {reason}")));
        }
        if timer.as_mut().poll(cx).is_ready() {
            return Poll::Ready(Err(format!(
                "readiness check: no answer within the upgrade timeout ({timeout:?})"
            )));
        }
        while let Poll::Ready(event) = signals.poll_next(cx) {
            match event {
                Event::Upgrade => upgrades += 1,
                Event::Terminate => {
                    return Poll::Ready(Err("stopped (SIGTERM) before ready".into()))
                }
                Event::Force(name) => {
                    return Poll::Ready(Err(format!("stopped ({name}) before ready")))
                }
            }
        }
        Poll::Pending
    })
    .await;
    if upgrades > 0 {
        signals.defer(Event::Upgrade);
    }
    if result.is_ok() {
        log::info!(
            "readiness check: passed after {:.1} ms",
            started.elapsed().as_secs_f64() * 1000.0
        );
    }
    result
}
