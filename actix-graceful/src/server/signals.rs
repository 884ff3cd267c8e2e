//! The server's signals, as a stream of [`Event`]s: the process-wide recording handler and bit
//! set of [`process::signals`](crate::process::signals), for every signal the server handles,
//! woken by the same self-pipe as keeper mode ([`Wake`]), read through the runtime's reactor.
//! It installs no handler of its own and decides nothing: the controller acts on the events.

use std::{
    collections::VecDeque,
    io,
    os::fd::BorrowedFd,
    task::{Context, Poll},
};

use tokio::io::{unix::AsyncFd, Interest};

use crate::process::signals::{arrived, release_usr2_unless, Wake};

/// What a signal asks of the server.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Event {
    /// The upgrade signal: hand over to a successor.
    Upgrade,
    /// SIGTERM: stop with the careful drain.
    Terminate,
    /// SIGINT or SIGQUIT: actix's forced stop.
    Force(&'static str),
}

/// The server's signals: caught into the bit set, the pipe watched by the reactor.
pub(crate) struct Signals {
    upgrade_signal: i32,
    wake: Wake,
    pipe: AsyncFd<BorrowedFd<'static>>,
    /// Taken from the bit set, not handed out yet (an upgrade signal recorded before the server
    /// ran is the first).
    events: VecDeque<Event>,
}

impl Signals {
    /// Catches SIGTERM, SIGINT, SIGQUIT and `upgrade` with the recording handler, then takes an
    /// upgrade signal that arrived before: it is acted on at the first poll. When the upgrade
    /// signal is another one, SIGUSR2 gets its ordinary meaning back.
    ///
    /// # Errors
    /// A handler or the pipe cannot be set up, or the runtime has no I/O driver.
    pub(crate) fn install(upgrade: i32) -> io::Result<Self> {
        let caught = [upgrade, libc::SIGTERM, libc::SIGINT, libc::SIGQUIT];
        let wake = Wake::install(&caught)?;
        // Newer tokio deprecates `with_interest` for its `unsafe` replacement (tokio#8587: the fd
        // must stay open while registered), which tokio 1.28, the lowest we allow, lacks. The
        // contract holds: the pipe lives in a static and is never closed.
        #[allow(deprecated)]
        let pipe = AsyncFd::with_interest(wake.fd(), Interest::READABLE)?;
        let mut signals = Signals {
            upgrade_signal: upgrade,
            wake,
            pipe,
            events: VecDeque::new(),
        };
        let early = arrived(upgrade);
        release_usr2_unless(upgrade);
        if early {
            log::info!("upgrade signal {upgrade} arrived before the server ran: upgrading now");
            signals.events.push_back(Event::Upgrade);
        }
        Ok(signals)
    }

    /// Polls for the next signal.
    pub(crate) fn poll_next(&mut self, cx: &mut Context<'_>) -> Poll<Event> {
        loop {
            if let Some(event) = self.events.pop_front() {
                return Poll::Ready(event);
            }
            match self.pipe.poll_read_ready(cx) {
                Poll::Ready(Ok(mut guard)) => {
                    // Empty the pipe, then take the bits: a signal after the take writes the
                    // pipe again and wakes the reactor (a spurious wake-up at worst).
                    self.wake.clear();
                    guard.clear_ready();
                    self.collect();
                }
                // The reactor is gone (the runtime shuts down): nothing more comes.
                Poll::Ready(Err(_)) => return Poll::Pending,
                Poll::Pending => {
                    // Registered for the next wake-up; a signal recorded before that is taken now.
                    self.collect();
                    return self.events.pop_front().map_or(Poll::Pending, Poll::Ready);
                }
            }
        }
    }

    /// Hands `event` out again at the next poll (taken meanwhile, to be acted on later).
    pub(crate) fn defer(&mut self, event: Event) {
        self.events.push_front(event);
    }

    /// Takes the recorded signals into events, in a fixed order.
    fn collect(&mut self) {
        self.events.extend(events(
            arrived(self.upgrade_signal),
            arrived(libc::SIGTERM),
            arrived(libc::SIGINT),
            arrived(libc::SIGQUIT),
        ));
    }
}

/// The events for the signals taken at once, in the order they are acted on.
fn events(upgrade: bool, term: bool, int: bool, quit: bool) -> impl Iterator<Item = Event> {
    [
        (upgrade, Event::Upgrade),
        (term, Event::Terminate),
        (int, Event::Force("SIGINT")),
        (quit, Event::Force("SIGQUIT")),
    ]
    .into_iter()
    .filter_map(|(taken, event)| taken.then_some(event))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn signals_taken_together_come_in_order() {
        assert_eq!(
            events(true, true, false, true).collect::<Vec<_>>(),
            [Event::Upgrade, Event::Terminate, Event::Force("SIGQUIT")]
        );
        assert_eq!(events(false, false, false, false).count(), 0);
    }
}
