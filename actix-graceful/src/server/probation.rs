//! This process's own probation, after it reported ready to a fallback: it passes when the time
//! is up, and fails as soon as its error-rate rule trips ([`ErrorRate`], over the responses
//! the [`LameDuck`](crate::LameDuck) middleware counts) or the app's probation check says so.
//! It decides nothing else: the controller reports the verdict and acts on it.

use std::{
    fmt,
    future::Future,
    pin::Pin,
    task::{Context, Poll},
    time::{Duration, Instant},
};

use futures::future::{FutureExt as _, LocalBoxFuture};

use super::builder::Check;

use crate::drain::ErrorCount;

/// The error-rate rule of a probation: the new build fails it when at least `share` of its
/// responses are 5xx, once it has given at least `min_responses`.
///
/// The default ([`ErrorRate::default`]) is half of at least 20 responses: a build that
/// answers 500 to everything is rolled back after its 20th response, while one failed request
/// among few never trips it. Set it with [`Graceful::error_rate`](crate::Graceful::error_rate).
///
/// # Examples
///
/// ```
/// use actix_graceful::ErrorRate;
///
/// // Roll back once 10 % of at least 200 responses are 5xx.
/// let strict = ErrorRate::new(0.1, 200);
/// assert_eq!(strict.to_string(), "10% of at least 200 responses");
/// assert_eq!(ErrorRate::default().to_string(), "50% of at least 20 responses");
/// assert_eq!(ErrorRate::off().to_string(), "off");
/// ```
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct ErrorRate {
    share: f64,
    min_responses: u32,
}

impl ErrorRate {
    /// Fails the probation once at least `share` (0 < `share` ≤ 1) of the responses are 5xx,
    /// counted from `min_responses` responses on (at least 1).
    ///
    /// # Panics
    /// When `share` is not in `(0, 1]` or `min_responses` is 0.
    ///
    /// # Examples
    ///
    /// ```
    /// let rule = actix_graceful::ErrorRate::new(0.5, 20);
    /// # drop(rule);
    /// ```
    #[must_use]
    pub fn new(share: f64, min_responses: u32) -> Self {
        assert!(
            share > 0.0 && share <= 1.0,
            "share {share} is not in (0, 1]"
        );
        assert!(min_responses > 0, "min_responses must be at least 1");
        ErrorRate {
            share,
            min_responses,
        }
    }

    /// No error-rate rule: the probation fails only when the new build dies, or by the app's
    /// own check ([`Graceful::probation_check`](crate::Graceful::probation_check)).
    ///
    /// # Examples
    ///
    /// ```
    /// let graceful = actix_graceful::Graceful::new().error_rate(actix_graceful::ErrorRate::off());
    /// # drop(graceful);
    /// ```
    #[must_use]
    pub const fn off() -> Self {
        ErrorRate {
            share: 0.0,
            min_responses: 0,
        }
    }

    fn is_off(&self) -> bool {
        self.min_responses == 0
    }

    /// Whether `count` breaks the rule.
    pub(crate) fn tripped(&self, count: ErrorCount) -> bool {
        !self.is_off()
            && count.responses >= self.min_responses
            && f64::from(count.errors) >= self.share * f64::from(count.responses)
    }
}

impl Default for ErrorRate {
    fn default() -> Self {
        ErrorRate::new(0.5, 20)
    }
}

impl fmt::Display for ErrorRate {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.is_off() {
            return f.write_str("off");
        }
        let percent = (self.share * 1000.0).round() / 10.0;
        write!(f, "{percent}% of at least {} responses", self.min_responses)
    }
}

/// This process's probation under way: resolves to `Ok` when it passed, `Err(reason)` when it
/// failed.
pub(crate) struct Probation {
    until: Pin<Box<actix_rt::time::Sleep>>,
    rule: ErrorRate,
    check: Option<LocalBoxFuture<'static, Result<(), String>>>,
    counted: LocalBoxFuture<'static, ()>,
}

impl Probation {
    /// Starts a probation of `length` with the `rule` over the responses counted from now and
    /// the app's `check`, if any.
    pub(crate) fn start(length: Duration, rule: ErrorRate, check: Option<Check>) -> Probation {
        ErrorCount::start();
        let until = actix_rt::time::sleep_until((Instant::now() + length).into());
        Probation {
            until: Box::pin(until),
            rule,
            check: check.map(|check| check()),
            counted: ErrorCount::changed().boxed_local(),
        }
    }
}

impl Drop for Probation {
    fn drop(&mut self) {
        ErrorCount::stop();
    }
}

impl Future for Probation {
    type Output = Result<(), String>;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        while self.counted.poll_unpin(cx).is_ready() {
            let count = ErrorCount::now();
            if self.rule.tripped(count) {
                return Poll::Ready(Err(format!(
                    "{} of its {} responses were 5xx (error-rate rule: {})",
                    count.errors, count.responses, self.rule
                )));
            }
            self.counted = ErrorCount::changed().boxed_local();
        }
        if let Some(check) = &mut self.check {
            match check.poll_unpin(cx) {
                Poll::Ready(Err(reason)) => {
                    return Poll::Ready(Err(format!("probation check: {reason}")))
                }
                Poll::Ready(Ok(())) => self.check = None,
                Poll::Pending => {}
            }
        }
        self.until.as_mut().poll(cx).map(Ok)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn count(responses: u32, errors: u32) -> ErrorCount {
        ErrorCount { responses, errors }
    }

    #[test]
    fn the_rule_trips_at_its_share_of_enough_responses() {
        let rule = ErrorRate::default();
        assert!(!rule.tripped(count(19, 19)), "fewer than 20 responses");
        assert!(rule.tripped(count(20, 10)));
        assert!(!rule.tripped(count(20, 9)));
        assert!(rule.tripped(count(1000, 500)));
        assert!(!ErrorRate::off().tripped(count(1000, 1000)));
        assert!(ErrorRate::new(1.0, 1).tripped(count(1, 1)));
        assert!(!ErrorRate::new(1.0, 1).tripped(count(2, 1)));
    }

    #[test]
    #[should_panic(expected = "is not in (0, 1]")]
    fn a_share_above_one_is_refused() {
        let _ = ErrorRate::new(1.5, 10);
    }
}
