//! Signal ownership: the upgrade signal is held (blocked) until the server's handler exists,
//! so an early one is acted on later instead of killing the process (the default action of
//! SIGUSR2 and SIGHUP). SIGUSR2 is held from the crate's first use, another upgrade signal from
//! the moment it is configured, and in a successor from its very first instruction (it starts
//! with the signal blocked across `exec`).

use std::{
    io,
    sync::Once,
    task::{Context, Poll},
};

use actix_rt::signal::unix::{signal, Signal as Stream, SignalKind};
use nix::sys::signal::{pthread_sigmask, SigSet, SigmaskHow, Signal};

/// The default upgrade signal.
pub(crate) const DEFAULT_UPGRADE: i32 = libc::SIGUSR2;

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

/// Blocks the default upgrade signal on the calling thread (and so on every thread it starts
/// later), once. The server's [`Signals::install`] unblocks it.
pub(crate) fn hold_early() {
    static ONCE: Once = Once::new();
    ONCE.call_once(|| hold(DEFAULT_UPGRADE));
}

/// Blocks `signal` on the calling thread (and the threads it starts later) until
/// [`Signals::install`] handles it.
pub(crate) fn hold(signal: i32) {
    if let Err(err) = pthread_sigmask(SigmaskHow::SIG_BLOCK, Some(&set_of(signal)), None) {
        log::warn!("cannot hold signal {signal} until the server runs: {err}");
    }
}

/// The signal mask a successor starts with: the upgrade signal blocked, nothing else. Built
/// before `fork`, applied between `fork` and `exec`.
pub(crate) fn successor_mask(upgrade: i32) -> SigSet {
    set_of(upgrade)
}

fn set_of(signal: i32) -> SigSet {
    let mut set = SigSet::empty();
    if let Ok(sig) = Signal::try_from(signal) {
        set.add(sig);
    }
    set
}

/// Whether `signal` may trigger upgrades: a real, catchable signal that means nothing else to
/// the server.
pub(crate) fn is_valid_upgrade_signal(signal: i32) -> bool {
    Signal::try_from(signal).is_ok()
        && ![
            libc::SIGKILL,
            libc::SIGSTOP,
            libc::SIGTERM,
            libc::SIGINT,
            libc::SIGQUIT,
            libc::SIGCHLD,
            libc::SIGSEGV,
            libc::SIGBUS,
            libc::SIGFPE,
            libc::SIGILL,
            libc::SIGPIPE,
        ]
        .contains(&signal)
}

/// The server's signal handlers.
pub(crate) struct Signals {
    upgrade: Stream,
    term: Stream,
    int: Stream,
    quit: Stream,
}

impl Signals {
    /// Installs the handlers, then unblocks the upgrade signal (and SIGUSR2, held since start-up)
    /// on this thread, so one that arrived while held is delivered now. When the upgrade signal
    /// is another one, SIGUSR2 gets its ordinary meaning back (by default: terminate).
    ///
    /// # Errors
    /// Installing a handler failed (no signal driver in the runtime).
    pub(crate) fn install(upgrade: i32) -> io::Result<Self> {
        let signals = Signals {
            upgrade: signal(SignalKind::from_raw(upgrade))?,
            term: signal(SignalKind::terminate())?,
            int: signal(SignalKind::interrupt())?,
            quit: signal(SignalKind::quit())?,
        };
        let mut unblock = set_of(upgrade);
        unblock.add(Signal::SIGUSR2);
        pthread_sigmask(SigmaskHow::SIG_UNBLOCK, Some(&unblock), None)?;
        Ok(signals)
    }

    /// Polls for the next signal.
    pub(crate) fn poll_next(&mut self, cx: &mut Context<'_>) -> Poll<Event> {
        if self.upgrade.poll_recv(cx).is_ready() {
            return Poll::Ready(Event::Upgrade);
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn upgrade_signal_choices() {
        assert!(is_valid_upgrade_signal(libc::SIGUSR2));
        assert!(is_valid_upgrade_signal(libc::SIGHUP));
        assert!(is_valid_upgrade_signal(libc::SIGUSR1));
        for bad in [libc::SIGKILL, libc::SIGTERM, libc::SIGINT, 0, -1, 9999] {
            assert!(!is_valid_upgrade_signal(bad), "{bad}");
        }
    }
}
