//! The process-wide list of descriptors to hand to a successor: the listeners handed to actix,
//! and other descriptors the app claimed or registered (UDP sockets, memfds), each with a
//! duplicate kept for the handoff (actix never exposes the descriptors it owns).
//!
//! Liveness: an entry is handed over only while the descriptor number the app holds (the one
//! given to actix, or to the app) still refers to the same open file as our duplicate (same
//! device and inode). Dropping or rebuilding an `HttpServer` closes its listeners, so they
//! drop out of the handoff; a later bind call for the same address or name takes the same
//! socket back (no gap, and no "address in use" against our own duplicate). Dead entries are
//! closed when the server starts serving and at every handoff. Keeper mode pins every entry:
//! the keeper holds the sockets alone, for its generations.

use std::{
    io,
    os::fd::{AsRawFd, BorrowedFd, OwnedFd, RawFd},
    sync::{
        atomic::{AtomicBool, Ordering},
        Mutex,
    },
};

use crate::{
    addr::ListenAddr,
    protocol::{fd, listen_fds::UNKNOWN_NAME},
};

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
    pub(crate) fn new(name: Option<String>, addr: ListenAddr, inherited: bool) -> Self {
        ListenerInfo {
            name,
            addr,
            inherited,
        }
    }

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

#[derive(Debug)]
enum What {
    Listener(ListenerInfo),
    /// Claimed with `take_fd`/`take_udp` or registered with `register_fd`.
    Other {
        name: String,
    },
}

#[derive(Debug)]
struct Entry {
    what: What,
    /// Our duplicate, close-on-exec: what the successor gets.
    dup: OwnedFd,
    /// The descriptor number the app (or actix) holds; `None` once known closed, or pinned.
    served: Option<RawFd>,
    /// Device and inode of the open file, to tell whether `served` still refers to it.
    id: (u64, u64),
    /// Held by the registry for good (keeper mode), whatever the app closed.
    pinned: bool,
}

impl Entry {
    fn alive(&self) -> bool {
        self.pinned
            || (HELD.load(Ordering::SeqCst) && matches!(self.what, What::Listener(_)))
            || self
                .served
                .is_some_and(|fd| fd::identity(fd) == Ok(self.id))
    }

    fn label(&self) -> String {
        match &self.what {
            What::Listener(info) => format!("listener {}", info.addr),
            What::Other { name } => format!("fd {name:?}"),
        }
    }
}

static REGISTRY: Mutex<Vec<Entry>> = Mutex::new(Vec::new());

/// Every listener counts as alive, whatever its served number refers to: while the self-probe
/// puts placeholders there (`process::probe`).
static HELD: AtomicBool = AtomicBool::new(false);

/// Keeps every listener (`true`) while the numbers actix serves them at hold placeholders, or
/// lets the liveness check see them again (`false`).
pub(crate) fn hold_listeners(held: bool) {
    HELD.store(held, Ordering::SeqCst);
}

/// The listeners actix serves: the number actix holds, the registry's duplicate (the real
/// listener), and whether it is a Unix socket.
pub(crate) fn served_listeners() -> Vec<(RawFd, RawFd, bool)> {
    entries()
        .iter()
        .filter_map(|e| match (&e.what, e.served) {
            (What::Listener(info), Some(served)) => Some((
                served,
                e.dup.as_raw_fd(),
                matches!(info.addr, ListenAddr::Unix(_)),
            )),
            _ => None,
        })
        .collect()
}

fn entries() -> std::sync::MutexGuard<'static, Vec<Entry>> {
    REGISTRY.lock().unwrap_or_else(|e| e.into_inner())
}

/// Records a listener handed to actix at descriptor `served`; `dup` is our own duplicate of it
/// (close-on-exec).
pub(crate) fn register(
    name: Option<String>,
    addr: ListenAddr,
    inherited: bool,
    served: RawFd,
    dup: OwnedFd,
) {
    let id = fd::identity(dup.as_raw_fd()).unwrap_or_default();
    entries().push(Entry {
        what: What::Listener(ListenerInfo::new(name, addr, inherited)),
        dup,
        served: Some(served),
        id,
        pinned: false,
    });
}

/// Records a descriptor that is not an actix listener, to hand over under `name`.
pub(crate) fn register_fd(name: String, fd: BorrowedFd<'_>) -> io::Result<()> {
    let id = fd::identity(fd.as_raw_fd()).map_err(io::Error::from)?;
    let mut entries = entries();
    if entries.iter().any(|e| e.id == id && e.alive()) {
        return Ok(());
    }
    let dup = fd.try_clone_to_owned()?;
    log::debug!(
        "registered fd {} as {name:?} for the handoff",
        fd.as_raw_fd()
    );
    entries.push(Entry {
        what: What::Other { name },
        dup,
        served: Some(fd.as_raw_fd()),
        id,
        pinned: false,
    });
    Ok(())
}

/// A listener whose server was dropped: our duplicate, taken back by a bind call.
#[derive(Debug)]
pub(crate) struct Reclaimed {
    pub(crate) fd: OwnedFd,
    pub(crate) info: ListenerInfo,
}

/// Takes out a dead listener (the app closed its descriptor: its `HttpServer` was dropped) that
/// serves a bind call for `name` / `wanted`: by name first, then by address.
pub(crate) fn reclaim(name: Option<&str>, wanted: &ListenAddr) -> Option<Reclaimed> {
    let mut entries = entries();
    fn dead_listener(e: &Entry) -> Option<&ListenerInfo> {
        match &e.what {
            What::Listener(info) if !e.alive() => Some(info),
            _ => None,
        }
    }
    let by_name = name.and_then(|n| {
        entries.iter().position(|e| {
            dead_listener(e).is_some_and(|i| i.name.as_deref() == Some(n) && same_family(i, wanted))
        })
    });
    let index = by_name.or_else(|| {
        entries
            .iter()
            .position(|e| dead_listener(e).is_some_and(|i| i.addr == *wanted))
            .or_else(|| {
                entries
                    .iter()
                    .position(|e| dead_listener(e).is_some_and(|i| i.addr.serves(wanted)))
            })
    })?;
    let entry = entries.remove(index);
    let What::Listener(info) = entry.what else {
        return None;
    };
    log::debug!("taking back {} (its server was dropped)", info.addr);
    Some(Reclaimed {
        fd: entry.dup,
        info,
    })
}

fn same_family(info: &ListenerInfo, wanted: &ListenAddr) -> bool {
    std::mem::discriminant(&info.addr) == std::mem::discriminant(wanted)
}

/// Puts back what [`reclaim`] took (its bind call failed): dead, for a later call.
pub(crate) fn restore(reclaimed: Reclaimed) {
    let id = fd::identity(reclaimed.fd.as_raw_fd()).unwrap_or_default();
    entries().push(Entry {
        what: What::Listener(reclaimed.info),
        dup: reclaimed.fd,
        served: None,
        id,
        pinned: false,
    });
}

/// Closes the entries whose descriptor the app closed, logging each.
pub(crate) fn prune() {
    entries().retain(|e| {
        let alive = e.alive();
        if !alive {
            log::info!(
                "{} was closed by the app (its server or socket dropped): no longer handed over",
                e.label()
            );
        }
        alive
    });
}

/// Keeper mode: the keeper drops its `HttpServer` and holds the sockets for its generations.
pub(crate) fn pin_all() {
    prune();
    for e in entries().iter_mut() {
        e.pinned = true;
    }
}

/// The listeners this process serves through `graceful_bind*`, in bind order, with their real
/// addresses and whether each was inherited. A dropped server's listeners are not among them
/// (nor handed to a successor).
///
/// # Examples
///
/// ```no_run
/// use actix_graceful::GracefulBind as _;
/// # fn main() -> std::io::Result<()> {
/// let server = actix_web::HttpServer::new(actix_web::App::new).graceful_bind("127.0.0.1:0")?;
/// for l in actix_graceful::listeners() {
///     println!("serving {} ({})", l.addr(), if l.is_inherited() { "inherited" } else { "bound" });
/// }
/// # drop(server); Ok(()) }
/// ```
#[must_use]
pub fn listeners() -> Vec<ListenerInfo> {
    entries()
        .iter()
        .filter(|e| e.alive())
        .filter_map(|e| match &e.what {
            What::Listener(info) => Some(info.clone()),
            What::Other { .. } => None,
        })
        .collect()
}

/// The descriptors and `LISTEN_FDNAMES` names to hand to a successor, in registration order:
/// the live entries (dead ones are closed first). Besides the listeners, these may be UDP
/// sockets, FIFOs or memfds the app claimed or registered.
///
/// The descriptors stay valid until the next call of a function that prunes.
pub(crate) fn handoff_set() -> Vec<(RawFd, String)> {
    descriptors(UNKNOWN_NAME)
}

/// The descriptors and `FDNAME=` names for systemd's fd store: unnamed listeners are `stored`,
/// the name systemd gives a stored fd without one.
pub(crate) fn fd_store_set() -> Vec<(RawFd, String)> {
    descriptors("stored")
}

fn descriptors(unnamed: &str) -> Vec<(RawFd, String)> {
    prune();
    entries()
        .iter()
        .map(|e| {
            let name = match &e.what {
                What::Listener(info) => info.name.as_deref().unwrap_or(unnamed),
                What::Other { name } => name,
            };
            (e.dup.as_raw_fd(), name.to_owned())
        })
        .collect()
}

/// The registry is the whole test binary's, and any test that binds, registers or lists the
/// handoff set may prune it. A test that drops a socket and then looks for its entry holds
/// this, as does every test that binds or prunes, so no other test prunes that entry first.
#[cfg(test)]
pub(crate) fn one_test_at_a_time() -> std::sync::MutexGuard<'static, ()> {
    static LOCK: Mutex<()> = Mutex::new(());
    LOCK.lock().unwrap_or_else(|e| e.into_inner())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::{TcpListener, UdpSocket};
    use std::os::fd::AsFd as _;

    fn has(fd: RawFd) -> bool {
        let id = fd::identity(fd).unwrap();
        handoff_set()
            .iter()
            .any(|(d, _)| fd::identity(*d) == Ok(id))
    }

    #[test]
    fn a_closed_descriptor_leaves_the_handoff_and_its_listener_can_be_taken_back() {
        let _registry = one_test_at_a_time();
        let l = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = ListenAddr::Tcp(l.local_addr().unwrap());
        let dup = l.try_clone().unwrap();
        register(
            Some("t".into()),
            addr.clone(),
            false,
            l.as_raw_fd(),
            dup.into(),
        );
        assert!(has(l.as_raw_fd()));
        let id = fd::identity(l.as_raw_fd()).unwrap();
        drop(l);
        let back = reclaim(None, &addr).expect("the dropped listener is reclaimable");
        assert_eq!(fd::identity(back.fd.as_raw_fd()), Ok(id), "the same socket");
        assert_eq!(back.info.name(), Some("t"));
        restore(back);
        prune();
        assert!(reclaim(None, &addr).is_none(), "pruned: closed for good");
    }

    #[test]
    fn registering_twice_keeps_one_entry_and_closing_drops_it() {
        let _registry = one_test_at_a_time();
        let u = UdpSocket::bind("127.0.0.1:0").unwrap();
        register_fd("u1".into(), u.as_fd()).unwrap();
        register_fd("u1".into(), u.as_fd()).unwrap();
        let id = fd::identity(u.as_raw_fd()).unwrap();
        let count = || {
            handoff_set()
                .iter()
                .filter(|(d, _)| fd::identity(*d) == Ok(id))
                .count()
        };
        assert_eq!(count(), 1);
        drop(u);
        assert_eq!(count(), 0);
    }
}
