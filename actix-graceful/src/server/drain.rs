//! The server's drain, as one future ([`Drain`]): after an optional pre-stop delay of normal
//! service, stop accepting (a successor shares the accept queue), answer every response with
//! `Connection: close` ([`drain::begin`]), and wait until this process holds no client
//! connection, or the drain timeout. It neither stops actix nor watches the successor: the
//! controller decides what follows ([`Drained`]).
//!
//! Its end counts HTTP/1 connections only: an HTTP/2 connection that sent a request during the
//! drain is left out, since `Connection: close` cannot move it; the graceful stop that follows
//! the drain sends it GOAWAY (with the actix-http patch in `patches/`; stock actix-http closes
//! it at the shutdown timeout). With a probation, that stop comes once the probation passed.
//!
//! The client connections are counted from the descriptor table (`process::connections`): at
//! 5 ms while their number falls, backing off to 100 ms while it stands still, and then never
//! more often than 1 % of a core allows (1 000 idle keep-alive connections: a count every
//! 250 ms or so); once none is seen it must hold for 10 ms: connections the accept thread took
//! just before its pause applied are in the table by then.

use std::{
    future::Future,
    pin::Pin,
    task::{Context, Poll},
    time::{Duration, Instant},
};

use actix_web::dev::ServerHandle;
use futures::future::{FutureExt as _, LocalBoxFuture};

use crate::{
    drain,
    process::{connections::ClientConnections, registry},
};

/// The first and shortest wait between two counts.
const FIRST_TICK: Duration = Duration::from_millis(5);
/// The longest wait between two counts, while the count stands still.
const LONGEST_TICK: Duration = Duration::from_millis(100);
/// While the count stands still, the wait is at least this many times as long as the count
/// took: counting then costs at most 1 % of a core, whatever the number of connections (1 000
/// take about 2.5 ms to count, mostly the kernel listing `/proc/self/fd`).
const STILL_WAIT_PER_COUNT: u32 = 100;
/// While the count falls, at least this many times as long.
const FALLING_WAIT_PER_COUNT: u32 = 4;
/// How long "no client connection" must hold before the drain ends.
const QUIET: Duration = Duration::from_millis(10);

/// How a drain ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Drained {
    /// No client connection was left, `after` this long.
    Empty { after: Duration },
    /// The drain timeout came with `left` client connections (`None`: they cannot be counted).
    TimedOut {
        after: Duration,
        left: Option<usize>,
    },
}

/// The drain under way (see the module docs); resolves once it ended.
#[must_use = "a drain does nothing unless polled"]
pub(crate) struct Drain {
    run: LocalBoxFuture<'static, Drained>,
}

impl Drain {
    /// Starts a drain of the server behind `handle` capped at `cap`, after `delay` of normal
    /// service (the pre-stop delay; zero after a handoff).
    pub(crate) fn start(handle: ServerHandle, delay: Duration, cap: Duration) -> Drain {
        let run = async move {
            if !delay.is_zero() {
                log::info!("pre-stop delay: serving {} ms more", delay.as_millis());
                actix_rt::time::sleep(delay).await;
            }
            handle.pause().await;
            drain::forget_http2_peers();
            drain::begin();
            until_no_client(cap).await
        };
        Drain {
            run: run.boxed_local(),
        }
    }
}

impl Future for Drain {
    type Output = Drained;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Drained> {
        self.run.poll_unpin(cx)
    }
}

/// Counts the client connections until none is left (for [`QUIET`]) or `cap` has passed.
async fn until_no_client(cap: Duration) -> Drained {
    let started = Instant::now();
    let end = started + cap;
    let mut clients = ClientConnections::new(registry::handoff_set().into_iter().map(|(fd, _)| fd));
    let mut tick = FIRST_TICK;
    let mut last = None;
    let mut quiet_since = None;
    loop {
        let now = Instant::now();
        if now >= end {
            let left = clients.count().ok();
            return Drained::TimedOut {
                after: started.elapsed(),
                left,
            };
        }
        // HTTP/2 connections wait for the graceful stop's GOAWAY, not for the drain.
        let count = match clients.count_but(&drain::http2_peers_seen()) {
            Ok(count) => count,
            Err(err) => {
                // Without a count, the timeout is the only end: never sooner than a client's
                // keep-alive allows.
                log::warn!("cannot count client connections ({err}); draining until the timeout");
                actix_rt::time::sleep_until(end.into()).await;
                return Drained::TimedOut {
                    after: started.elapsed(),
                    left: None,
                };
            }
        };
        let per_count = if count == 0 {
            let since = *quiet_since.get_or_insert(now);
            if now.duration_since(since) >= QUIET {
                return Drained::Empty {
                    after: started.elapsed(),
                };
            }
            tick = QUIET / 2;
            FALLING_WAIT_PER_COUNT
        } else {
            quiet_since = None;
            tick = next_tick(tick, last, count);
            if last == Some(count) {
                STILL_WAIT_PER_COUNT
            } else {
                FALLING_WAIT_PER_COUNT
            }
        };
        last = Some(count);
        // A count over very many connections takes a while: wait a multiple of it.
        let tick = tick.max(now.elapsed() * per_count);
        actix_rt::time::sleep(end.saturating_duration_since(Instant::now()).min(tick)).await;
    }
}

/// The wait before the next count: back to [`FIRST_TICK`] when the count fell, doubled (up to
/// [`LONGEST_TICK`]) when it stood still or rose.
fn next_tick(tick: Duration, last: Option<usize>, count: usize) -> Duration {
    match last {
        Some(last) if count < last => FIRST_TICK,
        Some(_) => (tick * 2).min(LONGEST_TICK),
        None => FIRST_TICK,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_tick_backs_off_while_the_count_stands_still() {
        let mut tick = next_tick(FIRST_TICK, None, 1000);
        assert_eq!(tick, FIRST_TICK);
        for _ in 0..10 {
            tick = next_tick(tick, Some(1000), 1000);
        }
        assert_eq!(tick, LONGEST_TICK);
        assert_eq!(next_tick(tick, Some(1000), 999), FIRST_TICK);
    }
}
