//! The server's signals, as a stream of [`Event`]s: the process-wide recording handler of
//! [`process::signals`](crate::process::signals), woken through actix-rt's signal streams.

use std::{
    io,
    task::{Context, Poll},
};

use actix_rt::signal::unix::{signal as signal_stream, Signal as Stream, SignalKind};

use crate::process::signals::{catch, release_usr2_unless, take};

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

/// The server's signal handlers.
pub(crate) struct Signals {
    upgrade_signal: i32,
    upgrade: Stream,
    term: Stream,
    int: Stream,
    quit: Stream,
    /// An upgrade signal recorded before the server ran, not acted on yet.
    early: bool,
}

impl Signals {
    /// Installs the handlers (tokio's, chained after ours for the upgrade signal, so the
    /// recorded bit stays the one truth), then takes an upgrade signal that arrived before: it is
    /// acted on at the first poll. When the upgrade signal is another one, SIGUSR2 gets its
    /// ordinary meaning back.
    ///
    /// # Errors
    /// Installing a handler failed (no signal driver in the runtime).
    pub(crate) fn install(upgrade: i32) -> io::Result<Self> {
        catch(upgrade)?;
        let signals = Signals {
            upgrade_signal: upgrade,
            upgrade: signal_stream(SignalKind::from_raw(upgrade))?,
            term: signal_stream(SignalKind::terminate())?,
            int: signal_stream(SignalKind::interrupt())?,
            quit: signal_stream(SignalKind::quit())?,
            early: take(upgrade),
        };
        release_usr2_unless(upgrade);
        if signals.early {
            log::info!("upgrade signal {upgrade} arrived before the server ran: upgrading now");
        }
        Ok(signals)
    }

    /// Polls for the next signal.
    pub(crate) fn poll_next(&mut self, cx: &mut Context<'_>) -> Poll<Event> {
        if std::mem::take(&mut self.early) {
            return Poll::Ready(Event::Upgrade);
        }
        // tokio's stream wakes; the bit says whether the signal is still to be acted on (it was
        // not, when the wake-up is for a signal already taken as an early one).
        while let Poll::Ready(Some(())) = self.upgrade.poll_recv(cx) {
            if take(self.upgrade_signal) {
                return Poll::Ready(Event::Upgrade);
            }
        }
        if self.term.poll_recv(cx).is_ready() {
            return Poll::Ready(Event::Terminate);
        }
        if self.int.poll_recv(cx).is_ready() {
            return Poll::Ready(Event::Force("SIGINT"));
        }
        if self.quit.poll_recv(cx).is_ready() {
            return Poll::Ready(Event::Force("SIGQUIT"));
        }
        Poll::Pending
    }
}

/// The future a generation under an older keeper waits on: resolves once `signal` arrives.
///
/// # Errors
/// Installing the handler failed (no signal driver in the runtime).
pub(crate) fn replaced_by(signal: i32) -> io::Result<crate::process::keeper::Replaced> {
    let mut stream = signal_stream(SignalKind::from_raw(signal))?;
    Ok(Box::pin(async move { stream.recv().await.is_some() }))
}
