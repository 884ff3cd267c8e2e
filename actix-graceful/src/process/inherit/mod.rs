//! Descriptors handed to this process by the socket-activation protocol, read once per
//! process (parsed by [`protocol::listen_fds`](crate::protocol::listen_fds)).
//!
//! Every announced descriptor is looked at when the set is read, but checked against what a
//! caller wants only when it is *claimed*: a listening stream socket by a bind call, any
//! descriptor by [`take_fd`], a UDP socket by [`take_udp`]. Descriptors nobody claims are left
//! alone (another library in the process may own them) until the app closes them explicitly
//! with [`close_unclaimed`]. Claimed descriptors are registered for the handoff, so they reach
//! a successor under the same name.
//!
//! The environment is read, never changed: changing it is unsound once other threads exist.
//! A child the app starts later sees the variables too, but with a `LISTEN_PID` that is not its
//! own, which every consumer (this crate, libsystemd) reads as "nothing for me".

#[cfg(test)]
pub(crate) mod tests;

use std::{
    io,
    net::UdpSocket,
    os::fd::{AsFd, FromRawFd, IntoRawFd as _, OwnedFd, RawFd},
    sync::{Mutex, OnceLock},
};

use super::registry;
use crate::{
    addr::ListenAddr,
    protocol::{
        env, fd,
        listen_fds::{self, LISTEN_FDS_START},
    },
    BindError,
};

/// One handed-over descriptor, looked at but not yet claimed.
#[derive(Debug)]
pub(crate) struct Slot {
    pub(crate) fd: RawFd,
    pub(crate) name: String,
    /// A listening stream socket at this address, or why it is not one (the error a bind call
    /// that claims it by name gets).
    listener: Result<ListenAddr, BindError>,
    claimed: bool,
}

/// A descriptor taken over by a bind call: owned, non-blocking and close-on-exec.
#[derive(Debug)]
pub(crate) struct Taken {
    pub(crate) fd: OwnedFd,
    pub(crate) name: String,
    pub(crate) addr: ListenAddr,
}

/// What a bind call asks for.
pub(crate) struct Wanted<'a> {
    pub(crate) name: Option<&'a str>,
    pub(crate) addr: &'a ListenAddr,
}

type Set = Result<Mutex<Vec<Slot>>, BindError>;

static INHERITED: OnceLock<Set> = OnceLock::new();

fn set() -> &'static Set {
    INHERITED.get_or_init(|| {
        let result = load();
        match &result {
            Ok(slots) if !slots.is_empty() => log::info!(
                "inherited {} fd(s): {}",
                slots.len(),
                slots
                    .iter()
                    .map(|s| format!("fd {} {:?} {}", s.fd, s.name, fd::describe(s.fd)))
                    .collect::<Vec<_>>()
                    .join(", ")
            ),
            // A rejected set is returned by every bind that asks for it, and reported by its
            // caller; logging it here too would say it twice.
            _ => {}
        }
        result.map(Mutex::new)
    })
}

fn slots(set: &Mutex<Vec<Slot>>) -> std::sync::MutexGuard<'_, Vec<Slot>> {
    set.lock().unwrap_or_else(|e| e.into_inner())
}

/// Reads the environment and looks at every announced descriptor, owning none of them yet.
fn load() -> Result<Vec<Slot>, BindError> {
    let snapshot = env::snapshot();
    let names = listen_fds::parse(
        snapshot.listen_fds.as_deref(),
        snapshot.listen_pid.as_deref(),
        snapshot.listen_fdnames.as_deref(),
        snapshot.pid,
    )?;
    // An announced fd that is not open is a broken launcher, not a mixed unit: refuse the set.
    // So is one that is close-on-exec: it did not come through `exec` (a count larger than
    // what was passed, where the number now belongs to something this process opened, like
    // the runtime's epoll), or another library took it over already. Either way it is not ours
    // to claim or to close.
    for fd in (LISTEN_FDS_START..).take(names.len()) {
        if !fd::is_open(fd) {
            return Err(BindError::FdNotOpen { fd });
        }
        if fd::is_cloexec(fd) {
            return Err(BindError::FdNotInherited { fd });
        }
    }
    Ok(names
        .into_iter()
        .zip(LISTEN_FDS_START..)
        .map(|(name, fd)| Slot {
            fd,
            name,
            listener: fd::probe(fd).map(|p| p.addr),
            claimed: false,
        })
        .collect())
}

/// How many descriptors were handed over (0 when none, or when they were rejected).
pub(crate) fn count() -> usize {
    match set() {
        Ok(set) => slots(set).len(),
        Err(_) => 0,
    }
}

/// Claims the inherited listening socket that serves `wanted`, if any.
///
/// A named request takes a descriptor of that name (preferring a listening socket whose address
/// matches) and checks it now: one that is not a listening stream socket of the asked family
/// is an error. Without a match by name, and for an unnamed request, only listening sockets
/// whose address serves the request are considered.
///
/// # Errors
/// The error found when the inherited set was read (every call gets it); for the descriptor of
/// the asked name, [`BindError::NotASocket`], [`BindError::NotAStreamSocket`], [`BindError::NotListening`]
/// or [`BindError::WrongFamily`].
pub(crate) fn claim_listener(wanted: &Wanted<'_>) -> Result<Option<Taken>, BindError> {
    let set = set().as_ref().map_err(Clone::clone)?;
    let mut slots = slots(set);
    let serves = |s: &Slot| s.listener.as_ref().is_ok_and(|a| a.serves(wanted.addr));
    let named = slots
        .iter()
        .enumerate()
        .filter(|(_, s)| !s.claimed && wanted.name == Some(s.name.as_str()))
        .max_by_key(|(_, s)| (s.listener.is_ok(), serves(s)))
        .map(|(i, _)| i);
    let pick = match named {
        Some(i) => {
            let slot = &slots[i];
            let addr = slot.listener.as_ref().map_err(Clone::clone)?;
            if std::mem::discriminant(addr) != std::mem::discriminant(wanted.addr) {
                return Err(BindError::WrongFamily {
                    fd: slot.fd,
                    name: slot.name.clone(),
                    expected: wanted.addr.family(),
                    found: addr.family(),
                });
            }
            Some(i)
        }
        // An exact address first: a port-0 request must not take the socket that a later,
        // explicit request for that port is waiting for.
        None => slots
            .iter()
            .position(|s| !s.claimed && s.listener.as_ref() == Ok(wanted.addr))
            .or_else(|| slots.iter().position(|s| !s.claimed && serves(s))),
    };
    let Some(slot) = pick.and_then(|i| slots.get_mut(i)) else {
        return Ok(None);
    };
    let Ok(addr) = slot.listener.clone() else {
        return Ok(None);
    };
    fd::prepare(slot.fd)?;
    slot.claimed = true;
    // SAFETY: the protocol hands descriptors 3..3+n to this process; this one was validated
    // as an open listening socket and is marked claimed, so it is owned exactly once.
    let fd = unsafe { OwnedFd::from_raw_fd(slot.fd) };
    Ok(Some(Taken {
        fd,
        name: slot.name.clone(),
        addr,
    }))
}

/// Gives back a descriptor [`claim_listener`] returned (a bind call failed after it took it): it is
/// unclaimed again, open, for a later call.
pub(crate) fn put_back(taken: Taken) {
    let Some(Ok(set)) = INHERITED.get() else {
        return;
    };
    let raw = taken.fd.into_raw_fd();
    if let Some(slot) = slots(set).iter_mut().find(|s| s.fd == raw) {
        log::debug!(
            "inherited fd {raw} ({:?}) put back: its bind call failed",
            slot.name
        );
        slot.claimed = false;
    }
}

/// Claims the inherited descriptor `name` with `check`, marks it close-on-exec and registers it
/// for the handoff.
fn claim<T>(
    name: &str,
    check: impl FnOnce(RawFd) -> Result<T, BindError>,
) -> io::Result<Option<(OwnedFd, T)>> {
    crate::process::init();
    let set = set().as_ref().map_err(Clone::clone)?;
    let mut slots = slots(set);
    let Some(slot) = slots.iter_mut().find(|s| !s.claimed && s.name == name) else {
        return Ok(None);
    };
    let checked = check(slot.fd)?;
    fd::set_cloexec(slot.fd, true).map_err(|e| BindError::os("fcntl(F_SETFD)", slot.fd, e))?;
    slot.claimed = true;
    // SAFETY: handed to this process by the protocol (3..3+n, checked open when the set was
    // read) and now marked claimed under the lock, so it is owned exactly once.
    let fd = unsafe { OwnedFd::from_raw_fd(slot.fd) };
    registry::register_fd(name.to_owned(), fd.as_fd())?;
    log::info!(
        "claimed inherited fd {} ({name:?}, {})",
        slot.fd,
        fd::describe(slot.fd)
    );
    Ok(Some((fd, checked)))
}

/// Takes the inherited descriptor named `name` (`LISTEN_FDNAMES`; `"unknown"` for one without),
/// whatever it is: a socket of any kind, a FIFO, a memfd from systemd's fd store. It is marked
/// close-on-exec, its blocking mode is left as it is (it lives on the open file, shared with
/// whoever else holds it), and it is registered: a successor gets it under the same name, as
/// long as the descriptor stays open in this process. With several descriptors of one name,
/// each call takes the next one.
///
/// `Ok(None)` when no unclaimed descriptor has that name.
///
/// # Errors
/// The inherited set is malformed (the same [`BindError`](crate::BindError) every bind call
/// gets), or `fcntl`/`dup` fails on the descriptor.
///
/// # Examples
///
/// ```no_run
/// use std::io::Read as _;
///
/// # fn main() -> std::io::Result<()> {
/// // A memfd this service stored in systemd's fd store (FDSTORE=1, FDNAME=state). Keep the
/// // file open (in the app's state): a successor gets it as long as this process holds it.
/// let state_file: Option<std::fs::File> = actix_graceful::take_fd("state")?.map(Into::into);
/// if let Some(mut file) = state_file.as_ref() {
///     let mut state = String::new();
///     file.read_to_string(&mut state)?;
/// }
/// # Ok(()) }
/// ```
pub fn take_fd(name: &str) -> io::Result<Option<OwnedFd>> {
    Ok(claim(name, |_| Ok(()))?.map(|(fd, ())| fd))
}

/// Takes the inherited UDP socket named `name` (a `ListenDatagram=` of the socket unit, or one
/// a predecessor registered with [`register_fd`]) and registers it for the handoff, so the same
/// socket (same port, same receive queue) goes to a successor.
///
/// The socket keeps its blocking mode; for tokio call `set_nonblocking(true)` first. That mode
/// lives on the socket, shared with the process that handed it over, which may still be
/// receiving while it drains: stop receiving once [`draining()`](crate::draining) resolves.
/// `Ok(None)` when no unclaimed descriptor has that name.
///
/// # Errors
/// The inherited set is malformed (the same [`BindError`](crate::BindError) every bind call
/// gets), or the descriptor of that name is not a UDP socket
/// ([`BindError::NotAUdpSocket`](crate::BindError::NotAUdpSocket); it stays unclaimed, for
/// [`take_fd`]).
///
/// # Examples
///
/// ```no_run
/// use std::net::UdpSocket;
///
/// # fn main() -> std::io::Result<()> {
/// let socket = match actix_graceful::take_udp("dns")? {
///     Some(socket) => socket, // from the socket unit, or from the predecessor
///     None => {
///         let socket = UdpSocket::bind("127.0.0.1:5353")?;
///         actix_graceful::register_fd("dns", &socket)?; // hand it to successors too
///         socket
///     }
/// };
/// # drop(socket); Ok(()) }
/// ```
pub fn take_udp(name: &str) -> io::Result<Option<UdpSocket>> {
    Ok(claim(name, |fd| fd::probe_udp(fd, name))?.map(|(fd, _)| UdpSocket::from(fd)))
}

/// Registers a descriptor the application made (a UDP socket, a memfd, any fd) to be handed to
/// every successor under `name`, next to the listeners: the successor finds it in
/// `LISTEN_FDNAMES` and takes it with [`take_fd`] or [`take_udp`]. A duplicate is kept
/// (close-on-exec) and handed over only while `fd` itself stays open in this process: close
/// it and it is dropped from the handoff. Registering the same open file twice does nothing.
///
/// # Errors
/// `InvalidInput` when `name` is not a valid fd name (printable ASCII without `:`, at most 255
/// bytes), or the duplicate cannot be made.
///
/// # Examples
///
/// ```no_run
/// # fn main() -> std::io::Result<()> {
/// let metrics = std::net::UdpSocket::bind("127.0.0.1:8125")?;
/// actix_graceful::register_fd("metrics", &metrics)?;
/// # Ok(()) }
/// ```
pub fn register_fd(name: &str, fd: impl AsFd) -> io::Result<()> {
    crate::process::init();
    if !listen_fds::name_is_valid(name) {
        return Err(BindError::InvalidFdName {
            name: name.to_owned(),
        }
        .into());
    }
    registry::register_fd(name.to_owned(), fd.as_fd())
}

/// Closes every inherited descriptor that nothing claimed so far, and returns how many. The
/// crate never does this by itself: an unclaimed descriptor may belong to another library in
/// the process. An app that knows it claims everything it wants (it bound its listeners and
/// took its other fds) calls this to close the rest, e.g. a listener a new version no longer
/// serves, which would otherwise keep queueing connections nobody accepts.
///
/// # Examples
///
/// ```no_run
/// use actix_graceful::GracefulBind as _;
/// # fn main() -> std::io::Result<()> {
/// let server = actix_web::HttpServer::new(actix_web::App::new).graceful_bind("127.0.0.1:8080")?;
/// let closed = actix_graceful::close_unclaimed();
/// # drop((server, closed)); Ok(()) }
/// ```
#[must_use = "the count says how many were closed; `let _ =` to ignore it"]
pub fn close_unclaimed() -> usize {
    let Ok(set) = set() else {
        return 0;
    };
    let mut slots = slots(set);
    let mut closed = 0;
    for slot in slots.iter_mut().filter(|s| !s.claimed) {
        log::warn!(
            "inherited fd {} (name {:?}, {}) was not claimed; closing it (close_unclaimed)",
            slot.fd,
            slot.name,
            fd::describe(slot.fd)
        );
        slot.claimed = true;
        closed += 1;
        // SAFETY: handed to this process by the protocol and claimed by no one: the app asked
        // to close it, and marking it claimed above means it is closed exactly once.
        drop(unsafe { OwnedFd::from_raw_fd(slot.fd) });
    }
    closed
}

/// The server starts serving: says which inherited descriptors nothing claimed (left open, not
/// handed to a successor), once, and drops from the registry what the app closed.
pub(crate) fn settle() {
    if let Some(Ok(set)) = INHERITED.get() {
        for slot in slots(set).iter().filter(|s| !s.claimed) {
            log::warn!(
                "inherited fd {} (name {:?}, {}) was not claimed: left open (another part of \
                 the app may own it) and not handed to a successor; claim it with \
                 actix_graceful::take_fd/take_udp or a graceful_bind, or close it with \
                 actix_graceful::close_unclaimed()",
                slot.fd,
                slot.name,
                fd::describe(slot.fd)
            );
        }
    }
    registry::prune();
}
