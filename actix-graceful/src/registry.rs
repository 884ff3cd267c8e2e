//! The process-wide list of listeners handed to actix, each with a duplicate descriptor kept
//! for the handoff (actix never exposes the descriptors it owns).

use std::{
    os::fd::{AsRawFd, OwnedFd, RawFd},
    sync::Mutex,
};

use crate::{addr::ListenAddr, inherit::UNKNOWN_NAME};

/// A listener this process serves, as reported by [`listeners`](crate::listeners).
///
/// # Examples
///
/// ```no_run
/// for l in actix_graceful::listeners() {
///     println!("{} {} inherited={}", l.name().unwrap_or("-"), l.addr(), l.is_inherited());
/// }
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ListenerInfo {
    name: Option<String>,
    addr: ListenAddr,
    inherited: bool,
}

impl ListenerInfo {
    /// The systemd fd name it was bound or inherited under, if any.
    #[must_use]
    pub fn name(&self) -> Option<&str> {
        self.name.as_deref()
    }

    /// The address it listens on (the real port when port 0 was asked).
    #[must_use]
    pub fn addr(&self) -> &ListenAddr {
        &self.addr
    }

    /// Whether it was handed over (socket activation or a predecessor) rather than freshly bound.
    #[must_use]
    pub fn is_inherited(&self) -> bool {
        self.inherited
    }
}

struct Entry {
    info: ListenerInfo,
    fd: OwnedFd,
}

static REGISTRY: Mutex<Vec<Entry>> = Mutex::new(Vec::new());

fn entries() -> std::sync::MutexGuard<'static, Vec<Entry>> {
    REGISTRY.lock().unwrap_or_else(|e| e.into_inner())
}

/// Records a listener handed to actix; `fd` is our own duplicate of it (close-on-exec).
pub(crate) fn register(name: Option<String>, addr: ListenAddr, inherited: bool, fd: OwnedFd) {
    entries().push(Entry {
        info: ListenerInfo {
            name,
            addr,
            inherited,
        },
        fd,
    });
}

/// Every listener registered so far, in bind order.
pub(crate) fn snapshot() -> Vec<ListenerInfo> {
    entries().iter().map(|e| e.info.clone()).collect()
}

/// The descriptors and `LISTEN_FDNAMES` names to hand to a successor, in bind order.
///
/// The descriptors stay valid for the life of the process: entries are never removed.
pub(crate) fn handoff_set() -> Vec<(RawFd, String)> {
    descriptors(UNKNOWN_NAME)
}

/// The descriptors and `FDNAME=` names for systemd's fd store: unnamed listeners are `stored`,
/// the name systemd gives a stored fd without one.
pub(crate) fn fd_store_set() -> Vec<(RawFd, String)> {
    descriptors("stored")
}

fn descriptors(unnamed: &str) -> Vec<(RawFd, String)> {
    entries()
        .iter()
        .map(|e| {
            let name = e.info.name.as_deref().unwrap_or(unnamed).to_owned();
            (e.fd.as_raw_fd(), name)
        })
        .collect()
}
