//! Signal ownership, process-wide.
//!
//! From the crate's first use, the upgrade signal has a handler of ours ([`catch`]): a
//! `sigaction` disposition is the same for every thread, so a thread the app started before
//! (a log appender, an exporter, a runtime of its own) can take the signal without it killing
//! the process (the default action of SIGUSR2 and SIGHUP). The handler only records the signal
//! in an atomic bit set and wakes a self-pipe ([`Wake`]). Every signal the crate handles goes
//! this one way: `run` catches SIGTERM, SIGINT, SIGQUIT and the upgrade signal here and waits on
//! the pipe through the runtime's reactor (`server::signals`), keeper mode waits on it blocking;
//! a recorded upgrade signal from before `run` is acted on once `run` serves. A successor starts with the upgrade signal blocked across `exec` (a signal
//! between `exec` and its handler would kill it) and unblocks it once the handler exists.
//!
//! In the child of a `fork`, [`reset_in_child`] gives every caught signal its default back
//! before `exec`, so nothing between `fork` and `exec` runs a handler of the parent's.

use std::{
    io,
    os::fd::{AsFd, AsRawFd, BorrowedFd, OwnedFd},
    sync::{
        atomic::{AtomicI32, AtomicU64, Ordering},
        Mutex, Once, OnceLock,
    },
};

use nix::{
    errno::Errno,
    fcntl::OFlag,
    sys::signal::{
        pthread_sigmask, sigaction, SaFlags, SigAction, SigHandler, SigSet, SigmaskHow, Signal,
    },
    unistd::pipe2,
};

/// The default upgrade signal.
pub(crate) const DEFAULT_UPGRADE: i32 = libc::SIGUSR2;

// ---- the handler: records, wakes ----

/// Signals received and not yet taken, one bit per signal number (1..64).
static PENDING: AtomicU64 = AtomicU64::new(0);
/// The write end of the wake-up pipe ([`Wake`]), or -1.
static WAKE_FD: AtomicI32 = AtomicI32::new(-1);
/// Signals whose disposition is [`record`], one bit per number.
static CAUGHT: AtomicU64 = AtomicU64::new(0);
/// SIGUSR2's disposition before [`catch_early`], given back when another signal upgrades.
static USR2_BEFORE: Mutex<Option<SigAction>> = Mutex::new(None);

extern "C" fn record(signal: libc::c_int) {
    let saved = Errno::last_raw();
    if (1..64).contains(&signal) {
        PENDING.fetch_or(1 << signal, Ordering::SeqCst);
    }
    wake();
    Errno::set_raw(saved);
}

/// Wakes whoever waits on the [`Wake`] pipe (keeper mode, and the server's signal stream).
/// Async-signal-safe.
pub(crate) fn wake() {
    let fd = WAKE_FD.load(Ordering::SeqCst);
    if fd >= 0 {
        // SAFETY: writes one byte from a live buffer to our own non-blocking pipe, which is never
        // closed; a full pipe (EAGAIN) already means "wake up".
        unsafe {
            libc::write(fd, [1u8].as_ptr().cast(), 1);
        }
    }
}

/// Whether `signal` arrived since the last call for it (the record is cleared).
pub(crate) fn arrived(signal: i32) -> bool {
    (1..64).contains(&signal)
        && PENDING.fetch_and(!(1 << signal), Ordering::SeqCst) & (1 << signal) != 0
}

/// Installs [`record`] as the process-wide disposition of `signal` (once per signal), then
/// unblocks it on the calling thread (a successor starts with it blocked).
///
/// # Errors
/// `signal` is not a signal, or `sigaction` refused it.
pub(crate) fn catch(signal: i32) -> io::Result<()> {
    let sig = Signal::try_from(signal)?;
    let bit = 1u64 << signal;
    if CAUGHT.fetch_or(bit, Ordering::SeqCst) & bit == 0 {
        let action = SigAction::new(
            SigHandler::Handler(record),
            SaFlags::SA_RESTART | SaFlags::SA_NOCLDSTOP,
            SigSet::empty(),
        );
        // SAFETY: `record` only touches atomics, errno and `write(2)`: async-signal-safe.
        match unsafe { sigaction(sig, &action) } {
            Ok(old) if sig == Signal::SIGUSR2 => {
                *USR2_BEFORE.lock().unwrap_or_else(|e| e.into_inner()) = Some(old);
            }
            Ok(_) => {}
            Err(err) => {
                CAUGHT.fetch_and(!bit, Ordering::SeqCst);
                return Err(err.into());
            }
        }
    }
    pthread_sigmask(SigmaskHow::SIG_UNBLOCK, Some(&set_of(signal)), None)?;
    Ok(())
}

/// Catches the default upgrade signal from the crate's first use, once.
pub(crate) fn catch_early() {
    static ONCE: Once = Once::new();
    ONCE.call_once(|| {
        if let Err(err) = catch(DEFAULT_UPGRADE) {
            log::warn!("cannot catch SIGUSR2 until the server runs: {err}");
        }
    });
}

/// When `upgrade` is not SIGUSR2, SIGUSR2 gets back the disposition it had before the crate's
/// first use (by default: terminate). A SIGUSR2 recorded meanwhile is dropped with a log line.
pub(crate) fn release_usr2_unless(upgrade: i32) {
    if upgrade == libc::SIGUSR2 {
        return;
    }
    let bit = 1u64 << libc::SIGUSR2;
    if CAUGHT.fetch_and(!bit, Ordering::SeqCst) & bit == 0 {
        return;
    }
    let before = USR2_BEFORE.lock().unwrap_or_else(|e| e.into_inner()).take();
    let before = before
        .unwrap_or_else(|| SigAction::new(SigHandler::SigDfl, SaFlags::empty(), SigSet::empty()));
    // SAFETY: puts back the disposition found at the crate's first use.
    if let Err(err) = unsafe { sigaction(Signal::SIGUSR2, &before) } {
        log::warn!("cannot give SIGUSR2 its default back: {err}");
    }
    if arrived(libc::SIGUSR2) {
        log::warn!("SIGUSR2 arrived before the server ran; ignored: another signal upgrades");
    }
}

/// The signal mask a successor starts with: the upgrade signal blocked, nothing else. Built
/// before `fork`, applied between `fork` and `exec`.
pub(crate) fn successor_mask(upgrade: i32) -> SigSet {
    set_of(upgrade)
}

/// Every signal blocked: the mask around `fork`, so the child runs no handler before it has
/// reset them ([`reset_in_child`]).
pub(crate) fn all() -> SigSet {
    SigSet::all()
}

/// In the child of a `fork`, before `exec`: every signal with a handler (ours, tokio's, the
/// app's) gets its default action back, and SIGPIPE too (the Rust runtime ignores it, and an
/// ignored signal stays ignored across `exec`; std's `Command` resets it the same way).
///
/// # Safety
/// Only async-signal-safe calls (`sigaction`); meant for the child between `fork` and `exec`,
/// with every signal blocked.
pub(crate) unsafe fn reset_in_child() {
    for signal in 1..65 {
        // SAFETY: `sigaction` is plain old data, for which all-zero bytes are a valid value.
        let mut old: libc::sigaction = unsafe { std::mem::zeroed() };
        // SAFETY: reads the disposition into a live struct of ours (a null new action).
        if unsafe { libc::sigaction(signal, std::ptr::null(), &mut old) } != 0 {
            continue;
        }
        let handled = old.sa_sigaction != libc::SIG_DFL && old.sa_sigaction != libc::SIG_IGN;
        if handled || signal == libc::SIGPIPE {
            // SAFETY: as above: plain old data.
            let mut dfl: libc::sigaction = unsafe { std::mem::zeroed() };
            dfl.sa_sigaction = libc::SIG_DFL;
            // SAFETY: sets the default disposition from a live struct of ours.
            unsafe { libc::sigaction(signal, &dfl, std::ptr::null_mut()) };
        }
    }
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

// ---- the self-pipe: keeper mode waits on it blocking, the server through its reactor ----

/// The pipe, never closed: a handler may run on any thread at any time.
static PIPE: OnceLock<(OwnedFd, OwnedFd)> = OnceLock::new();

/// Signals caught into the bit set, with a pipe that wakes whoever waits on it ([`Wake::fd`]).
pub(crate) struct Wake {
    read: &'static OwnedFd,
}

impl Wake {
    /// Catches `signals` (see [`catch`]) and makes [`record`] wake the pipe.
    ///
    /// # Errors
    /// The pipe or a handler cannot be set up.
    pub(crate) fn install(signals: &[i32]) -> io::Result<Wake> {
        if PIPE.get().is_none() {
            let pipe = pipe2(OFlag::O_CLOEXEC | OFlag::O_NONBLOCK)?;
            let _ = PIPE.set(pipe);
        }
        let (read, write) = PIPE
            .get()
            .ok_or_else(|| io::Error::other("wake-up pipe missing"))?;
        WAKE_FD.store(write.as_raw_fd(), Ordering::SeqCst);
        for &signal in signals {
            catch(signal)?;
        }
        Ok(Wake { read })
    }

    /// Empties the pipe without waiting (it is non-blocking): for a caller that waits on
    /// [`fd`](Self::fd) in its own event loop (the server through the runtime's reactor, the
    /// keeper in its `poll`), then takes the signals.
    pub(crate) fn clear(&self) {
        let mut buf = [0u8; 64];
        while let Ok(n) = nix::unistd::read(self.read.as_raw_fd(), &mut buf) {
            if n == 0 {
                break;
            }
        }
    }

    /// The pipe's read end, readable once a signal or [`wake`] came: the server waits on it
    /// through the runtime's reactor, the keeper in its `poll`. It lives as long as the process.
    pub(crate) fn fd(&self) -> BorrowedFd<'static> {
        self.read.as_fd()
    }

    /// The caught signals received since the last call, in signal-number order.
    pub(crate) fn arrived(&self) -> Vec<Signal> {
        let caught = CAUGHT.load(Ordering::SeqCst);
        let bits = PENDING.fetch_and(!caught, Ordering::SeqCst) & caught;
        (1..64)
            .filter(|n| bits & (1 << n) != 0)
            .filter_map(|n| Signal::try_from(n).ok())
            .collect()
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

    #[test]
    fn a_caught_signal_is_recorded_whatever_thread_takes_it() {
        catch(libc::SIGUSR1).unwrap();
        // A thread that blocks nothing, as one started before the crate's first use.
        std::thread::spawn(|| {
            // SAFETY: raise to this very process; SIGUSR1 has our handler.
            unsafe { libc::kill(libc::getpid(), libc::SIGUSR1) };
        })
        .join()
        .unwrap();
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(5);
        while !arrived(libc::SIGUSR1) {
            assert!(std::time::Instant::now() < deadline, "SIGUSR1 not recorded");
            std::thread::sleep(std::time::Duration::from_millis(1));
        }
        assert!(!arrived(libc::SIGUSR1), "taken once");
    }
}
