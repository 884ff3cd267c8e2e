//! Descriptors handed to this process by the systemd socket-activation protocol
//! (`LISTEN_FDS`, `LISTEN_PID`, `LISTEN_FDNAMES`), read once per process.
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
//!
//! The parser follows libsystemd's `sd_listen_fds_with_names` (numbers as systemd's
//! `safe_atoi`/`parse_pid` read them: leading blanks, a sign, `0x`/`0o`/`0b` prefixes, a leading
//! `0` for octal), and differs from it on purpose in three points, each tested against the real
//! libsystemd: a missing `LISTEN_PID` is accepted (systemfd's `--no-pid`, for cargo-watch,
//! where the consuming pid is not the launched one); `LISTEN_FDS=0` means "nothing handed over"
//! rather than an error (some launchers set it when a socket unit has no sockets); and names
//! systemd itself would refuse (control characters, non-ASCII, over 255 bytes) are an error
//! rather than passed on, since this crate passes the names on to a successor.

use std::{
    ffi::OsStr,
    io,
    net::UdpSocket,
    os::fd::{AsFd, FromRawFd, IntoRawFd as _, OwnedFd, RawFd},
    sync::{Mutex, OnceLock},
};

use crate::{addr::ListenAddr, fd, registry, Error};

/// The first inherited descriptor (`SD_LISTEN_FDS_START`).
pub(crate) const LISTEN_FDS_START: RawFd = 3;

/// More descriptors than this is not a socket activation but garbage in the environment.
pub(crate) const MAX_LISTEN_FDS: usize = 16_384;

/// The name systemd gives a socket that has none.
pub(crate) const UNKNOWN_NAME: &str = "unknown";

/// Parses the three variables with systemd's semantics.
///
/// Returns the names of the descriptors at `3..3+n` (`"unknown"` when `LISTEN_FDNAMES` is
/// unset), or an empty list when nothing was handed to `own_pid`. A `LISTEN_PID` of another
/// process means "not for us", not an error (as in libsystemd); a missing `LISTEN_PID` is
/// accepted (systemfd's `--no-pid`), and so is `LISTEN_FDS=0` (nothing).
///
/// # Errors
/// [`Error::InvalidListenFds`], [`Error::InvalidListenPid`], [`Error::FdNamesMismatch`],
/// [`Error::InvalidFdName`].
pub(crate) fn parse(
    listen_fds: Option<&OsStr>,
    listen_pid: Option<&OsStr>,
    fd_names: Option<&OsStr>,
    own_pid: u32,
) -> Result<Vec<String>, Error> {
    // libsystemd's order: LISTEN_PID first (a malformed one is an error even without
    // LISTEN_FDS), then LISTEN_FDS.
    if let Some(pid) = listen_pid {
        let text = pid.to_string_lossy();
        match systemd_number(pid.as_encoded_bytes(), false) {
            Some(pid) if pid > 0 && pid <= i64::from(i32::MAX) => {
                if pid != i64::from(own_pid) {
                    log::debug!("LISTEN_PID={pid} is not this process ({own_pid}): no fds for us");
                    return Ok(Vec::new());
                }
            }
            _ => {
                return Err(Error::InvalidListenPid {
                    value: text.into_owned(),
                })
            }
        }
    }
    let Some(listen_fds) = listen_fds else {
        return Ok(Vec::new());
    };

    let count = parse_count(listen_fds)?;
    if count == 0 {
        return Ok(Vec::new());
    }
    let names: Vec<String> = match fd_names {
        None => vec![UNKNOWN_NAME.to_owned(); count],
        Some(names) => {
            let text = names.to_string_lossy();
            // As systemd's strv_split with EXTRACT_DONT_COALESCE_SEPARATORS: "" is one empty
            // name, "a::b" three names.
            let names: Vec<String> = text.split(':').map(str::to_owned).collect();
            if names.len() != count {
                return Err(Error::FdNamesMismatch {
                    names: names.len(),
                    fds: count,
                });
            }
            if let Some(bad) = names.iter().find(|n| !name_is_valid(n)) {
                return Err(Error::InvalidFdName { name: bad.clone() });
            }
            names
        }
    };
    Ok(names)
}

fn parse_count(value: &OsStr) -> Result<usize, Error> {
    let text = value.to_string_lossy();
    let invalid = |reason| Error::InvalidListenFds {
        value: text.clone().into_owned(),
        reason,
    };
    if text.is_empty() {
        return Err(invalid("empty"));
    }
    match systemd_number(value.as_encoded_bytes(), true) {
        None => Err(invalid("not a number")),
        Some(n) if n < 0 => Err(invalid("negative")),
        Some(n) => match usize::try_from(n) {
            Ok(n) if n <= MAX_LISTEN_FDS => Ok(n),
            _ => Err(invalid("absurdly large (more than 16384 fds)")),
        },
    }
}

/// A number as systemd's `safe_atoi` (`signed`) or `safe_atolu` (for `LISTEN_PID`) reads it:
/// blanks (` \t\n\r`) skipped, a `0b`/`0o` prefix (systemd's `mangle_base`), then C's `strtol`
/// with base 0 (blanks, a sign, `0x` for hex, a leading `0` for octal), nothing after the
/// digits. `None` for anything else, or a value out of range (`int` for a count).
fn systemd_number(bytes: &[u8], signed: bool) -> Option<i64> {
    let mut s = bytes;
    while let [b' ' | b'\t' | b'\n' | b'\r', rest @ ..] = s {
        s = rest;
    }
    let mut base = 0;
    if let [b'0', b'b' | b'B', rest @ ..] = s {
        (base, s) = (2, rest);
    } else if let [b'0', b'o' | b'O', rest @ ..] = s {
        (base, s) = (8, rest);
    }
    if !signed && s.first() == Some(&b'-') {
        // safe_atolu: a minus sign is only accepted for "-0" (strtoul wraps the rest around).
        return strtol(&s[1..], base).filter(|&n| n == 0);
    }
    let n = strtol(s, base)?;
    if signed {
        i32::try_from(n).ok().map(i64::from)
    } else if n < 0 {
        None
    } else {
        Some(n)
    }
}

/// C's `strtol(s, &end, base)` that must consume all of `s`; `None` when nothing was converted,
/// something follows the digits, or the value overflows `long`.
fn strtol(mut s: &[u8], mut base: u32) -> Option<i64> {
    while let [b' ' | b'\t' | b'\n' | b'\r' | 0x0b | 0x0c, rest @ ..] = s {
        s = rest;
    }
    let negative = match s {
        [b'-', rest @ ..] => {
            s = rest;
            true
        }
        [b'+', rest @ ..] => {
            s = rest;
            false
        }
        _ => false,
    };
    let hex_prefix = matches!(s, [b'0', b'x' | b'X', d, ..] if d.is_ascii_hexdigit());
    if (base == 0 || base == 16) && hex_prefix {
        (base, s) = (16, &s[2..]);
    } else if base == 0 {
        base = if s.first() == Some(&b'0') { 8 } else { 10 };
    }
    if s.is_empty() {
        return None;
    }
    let mut value: i128 = 0;
    for &b in s {
        let digit = char::from(b).to_digit(base)?;
        value = (value * i128::from(base) + i128::from(digit)).min(i128::from(u64::MAX) + 1);
    }
    let value = if negative { -value } else { value };
    i64::try_from(value).ok()
}

/// systemd's `fdname_is_valid`: ASCII without control characters (nor `:`), at most 255 bytes.
pub(crate) fn name_is_valid(name: &str) -> bool {
    name.len() <= 255
        && name
            .bytes()
            .all(|b| (b' '..=b'~').contains(&b) && b != b':')
}

/// One handed-over descriptor, looked at but not yet claimed.
#[derive(Debug)]
pub(crate) struct Slot {
    pub(crate) fd: RawFd,
    pub(crate) name: String,
    /// A listening stream socket at this address, or why it is not one (the error a bind call
    /// that claims it by name gets).
    listener: Result<ListenAddr, Error>,
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

type Set = Result<Mutex<Vec<Slot>>, Error>;

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
fn load() -> Result<Vec<Slot>, Error> {
    let names = parse(
        std::env::var_os("LISTEN_FDS").as_deref(),
        std::env::var_os("LISTEN_PID").as_deref(),
        std::env::var_os("LISTEN_FDNAMES").as_deref(),
        std::process::id(),
    )?;
    // An announced fd that is not open is a broken launcher, not a mixed unit: refuse the set.
    // So is one that is close-on-exec: it did not come through `exec` (a count larger than
    // what was passed, where the number now belongs to something this process opened, like
    // the runtime's epoll), or another library took it over already. Either way it is not ours
    // to claim or to close.
    for fd in (LISTEN_FDS_START..).take(names.len()) {
        if !fd::is_open(fd) {
            return Err(Error::FdNotOpen { fd });
        }
        if fd::is_cloexec(fd) {
            return Err(Error::FdNotInherited { fd });
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

/// Takes the inherited listening socket that serves `wanted`, if any.
///
/// A named request takes a descriptor of that name (preferring a listening socket whose address
/// matches) and checks it now: one that is not a listening stream socket of the asked family
/// is an error. Without a match by name, and for an unnamed request, only listening sockets
/// whose address serves the request are considered.
///
/// # Errors
/// The error found when the inherited set was read (every call gets it); for the descriptor of
/// the asked name, [`Error::NotASocket`], [`Error::NotAStreamSocket`], [`Error::NotListening`]
/// or [`Error::WrongFamily`].
pub(crate) fn take(wanted: &Wanted<'_>) -> Result<Option<Taken>, Error> {
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
                return Err(Error::WrongFamily {
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

/// Gives back a descriptor [`take`] returned (a bind call failed after it took it): it is
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
    check: impl FnOnce(RawFd) -> Result<T, Error>,
) -> io::Result<Option<(OwnedFd, T)>> {
    crate::process::init();
    let set = set().as_ref().map_err(Clone::clone)?;
    let mut slots = slots(set);
    let Some(slot) = slots.iter_mut().find(|s| !s.claimed && s.name == name) else {
        return Ok(None);
    };
    let checked = check(slot.fd)?;
    fd::set_cloexec(slot.fd, true).map_err(|e| Error::os("fcntl(F_SETFD)", slot.fd, e))?;
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
/// The inherited set is malformed (the same [`Error`] every bind call gets), or `fcntl`/`dup`
/// fails on the descriptor.
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
/// The inherited set is malformed (the same [`Error`] every bind call gets), or the descriptor
/// of that name is not a UDP socket ([`Error::NotAUdpSocket`]; it stays unclaimed, for
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
    if !name_is_valid(name) {
        return Err(Error::InvalidFdName {
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

#[cfg(test)]
mod tests {
    use super::*;

    fn p(fds: Option<&str>, pid: Option<&str>, names: Option<&str>) -> Result<Vec<String>, Error> {
        parse(
            fds.map(OsStr::new),
            pid.map(OsStr::new),
            names.map(OsStr::new),
            4242,
        )
    }

    #[test]
    fn nothing_handed_over() {
        assert_eq!(p(None, None, None), Ok(vec![]));
        assert_eq!(p(None, Some("4242"), Some("a")), Ok(vec![]));
        assert_eq!(p(Some("0"), Some("4242"), None), Ok(vec![]));
        assert_eq!(p(Some("0"), Some("4242"), Some("")), Ok(vec![]));
    }

    #[test]
    fn a_malformed_pid_is_an_error_even_without_listen_fds_as_in_libsystemd() {
        assert!(matches!(
            p(None, Some("abc"), None),
            Err(Error::InvalidListenPid { .. })
        ));
    }

    #[test]
    fn empty_names_are_names() {
        assert_eq!(
            p(Some("1"), Some("4242"), Some("")),
            Ok(vec![String::new()])
        );
        assert_eq!(
            p(Some("2"), Some("4242"), Some("")),
            Err(Error::FdNamesMismatch { names: 1, fds: 2 })
        );
        assert_eq!(
            p(Some("3"), Some("4242"), Some("a::b")),
            Ok(vec!["a".to_owned(), String::new(), "b".to_owned()])
        );
    }

    #[test]
    fn ours_with_and_without_names() {
        assert_eq!(
            p(Some("2"), Some("4242"), None),
            Ok(vec!["unknown".to_owned(), "unknown".to_owned()])
        );
        assert_eq!(
            p(Some("2"), Some("4242"), Some("public:admin")),
            Ok(vec!["public".to_owned(), "admin".to_owned()])
        );
    }

    #[test]
    fn missing_pid_is_accepted_like_systemfd_no_pid() {
        assert_eq!(p(Some("1"), None, None), Ok(vec!["unknown".to_owned()]));
    }

    #[test]
    fn other_pid_means_not_ours_even_with_garbage_after_it() {
        assert_eq!(p(Some("1"), Some("1"), None), Ok(vec![]));
        assert_eq!(p(Some("abc"), Some("77"), Some("x:y")), Ok(vec![]));
    }

    #[test]
    fn malformed_counts() {
        for (value, reason) in [
            ("abc", "not a number"),
            ("1x", "not a number"),
            ("1 ", "not a number"),
            ("08", "not a number"),
            ("0x", "not a number"),
            (" ", "not a number"),
            ("", "empty"),
            ("-1", "negative"),
            ("16385", "absurdly large (more than 16384 fds)"),
            ("99999999999999999999999", "not a number"),
            ("2147483648", "not a number"),
        ] {
            assert_eq!(
                p(Some(value), Some("4242"), None),
                Err(Error::InvalidListenFds {
                    value: value.into(),
                    reason
                }),
                "{value:?}"
            );
        }
    }

    #[test]
    fn numbers_as_systemd_reads_them() {
        for (text, want) in [
            (" 1", Some(1)),
            ("+1", Some(1)),
            ("01", Some(1)),
            ("010", Some(8)),
            ("0x10", Some(16)),
            ("0b11", Some(3)),
            ("0o17", Some(15)),
            ("\t\n 2", Some(2)),
            ("-3", Some(-3)),
            ("1 ", None),
            ("", None),
            ("0b", None),
            ("9x", None),
        ] {
            assert_eq!(systemd_number(text.as_bytes(), true), want, "{text:?}");
        }
        assert_eq!(systemd_number(b"-0", false), Some(0));
        assert_eq!(systemd_number(b"-5", false), None);
        assert_eq!(systemd_number(b" +4242", false), Some(4242));
        assert_eq!(
            p(Some(" 2"), Some("+4242"), Some("a:b")),
            Ok(vec!["a".to_owned(), "b".to_owned()])
        );
    }

    #[test]
    fn malformed_pids() {
        for value in ["", "abc", "-5", "0", "4242 ", "-0"] {
            assert_eq!(
                p(Some("1"), Some(value), None),
                Err(Error::InvalidListenPid {
                    value: value.into()
                }),
                "{value:?}"
            );
        }
    }

    #[test]
    fn name_count_must_match() {
        assert_eq!(
            p(Some("2"), Some("4242"), Some("only-one")),
            Err(Error::FdNamesMismatch { names: 1, fds: 2 })
        );
        assert_eq!(
            p(Some("1"), Some("4242"), Some("a:b:c")),
            Err(Error::FdNamesMismatch { names: 3, fds: 1 })
        );
    }

    #[test]
    fn invalid_names() {
        let long = "x".repeat(256);
        for name in [long.as_str(), "tab\there", "é"] {
            assert!(
                matches!(
                    p(Some("1"), Some("4242"), Some(name)),
                    Err(Error::InvalidFdName { .. })
                ),
                "{name:?}"
            );
        }
        assert_eq!(
            p(Some("1"), Some("4242"), Some(&"y".repeat(255))).map(|v| v.len()),
            Ok(1)
        );
    }
}

/// `take_fd`, `take_udp`, `close_unclaimed` and the registry on a real inherited set (a child
/// process with fds 3..5: a FIFO named `state`, a UDP socket `dns`, a TCP listener `web`).
#[cfg(all(test, target_os = "linux"))]
mod claims {
    use super::*;
    use std::os::fd::AsRawFd as _;

    const VAR: &str = "AG_CLAIMS_CHILD";

    #[test]
    fn child() {
        if std::env::var_os(VAR).is_none() {
            return;
        }
        let names = || {
            registry::handoff_set()
                .into_iter()
                .map(|(_, n)| n)
                .collect::<Vec<_>>()
        };
        println!();
        match take_udp("state") {
            Err(err) => println!("AGC udp-on-fifo {err}"),
            Ok(got) => println!("AGC udp-on-fifo took {got:?}"),
        }
        let state = take_fd("state").unwrap().expect("state");
        println!(
            "AGC state fd {} cloexec={}",
            state.as_raw_fd(),
            fd::is_cloexec(3)
        );
        println!("AGC state again {:?}", take_fd("state").unwrap());
        let dns = take_udp("dns").unwrap().expect("dns");
        println!("AGC dns {}", dns.local_addr().unwrap());
        println!("AGC handoff {:?}", names());
        drop(state);
        println!("AGC after drop {:?}", names());
        println!(
            "AGC closed {} open3={} open5={}",
            close_unclaimed(),
            fd::is_open(3),
            fd::is_open(5)
        );
        drop(dns);
    }

    #[test]
    fn claims_by_name_of_any_kind_and_handoff_follows_what_stays_open() {
        if std::env::var_os(VAR).is_some() {
            return;
        }
        let (fifo, _w) = nix::unistd::pipe().unwrap();
        let udp = UdpSocket::bind("127.0.0.1:0").unwrap();
        let web = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let out = super::child::run(
            "inherit::claims::child",
            &[
                (VAR, "1"),
                ("LISTEN_FDS", "3"),
                ("LISTEN_FDNAMES", "state:dns:web"),
            ],
            Some(("", "")),
            &[fifo.as_raw_fd(), udp.as_raw_fd(), web.as_raw_fd()],
        );
        let text = String::from_utf8_lossy(&out.stdout);
        let line = |tag: &str| {
            text.lines()
                .find_map(|l| l.strip_prefix(tag))
                .unwrap_or_else(|| {
                    panic!(
                        "no {tag:?} in\n{text}\n{}",
                        String::from_utf8_lossy(&out.stderr)
                    )
                })
                .to_owned()
        };
        assert_eq!(
            line("AGC udp-on-fifo "),
            "inherited fd 3 (name \"state\") is not a UDP socket but a pipe"
        );
        assert_eq!(line("AGC state fd "), "3 cloexec=true");
        assert_eq!(line("AGC state again "), "None");
        assert_eq!(line("AGC dns "), udp.local_addr().unwrap().to_string());
        assert_eq!(line("AGC handoff "), r#"["state", "dns"]"#);
        assert_eq!(
            line("AGC after drop "),
            r#"["dns"]"#,
            "a closed fd is not handed over"
        );
        assert_eq!(
            line("AGC closed "),
            "1 open3=false open5=false",
            "only web was unclaimed"
        );
    }
}

/// Property tests of the `LISTEN_*` parser on arbitrary and on well-formed input. Bounded case
/// counts: they run in `cargo test`.
#[cfg(test)]
mod proptests {
    use super::*;
    use proptest::prelude::*;
    use std::os::unix::ffi::OsStrExt as _;

    /// Garbage, numbers (also huge and negative), and colon-joined names.
    fn value() -> impl Strategy<Value = Option<Vec<u8>>> {
        proptest::option::of(prop_oneof![
            proptest::collection::vec(any::<u8>(), 0..40),
            any::<i64>().prop_map(|n| n.to_string().into_bytes()),
            (0u32..40).prop_map(|n| n.to_string().into_bytes()),
            proptest::collection::vec(name(), 0..6).prop_map(|v| v.join(":").into_bytes()),
        ])
    }

    /// A valid fd name: printable ASCII without `:`, up to 255 bytes.
    fn name() -> impl Strategy<Value = String> {
        let chars: Vec<char> = (b' '..=b'~')
            .filter(|&b| b != b':')
            .map(char::from)
            .collect();
        proptest::collection::vec(proptest::sample::select(chars), 0..40)
            .prop_map(|v| v.into_iter().collect())
    }

    fn os(v: &Option<Vec<u8>>) -> Option<&OsStr> {
        v.as_deref().map(OsStr::from_bytes)
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(1024))]

        #[test]
        fn arbitrary_input_never_panics_and_ok_means_consistent(
            fds in value(), pid in value(), names in value(), own in any::<u32>()
        ) {
            if let Ok(got) = parse(os(&fds), os(&pid), os(&names), own) {
                prop_assert!(got.len() <= MAX_LISTEN_FDS);
                prop_assert!(got.iter().all(|n| name_is_valid(n)));
                if !got.is_empty() {
                    let count = systemd_number(fds.as_deref().unwrap(), true).unwrap();
                    prop_assert_eq!(got.len() as i64, count);
                }
            }
        }

        #[test]
        fn well_formed_input_round_trips(
            names in proptest::collection::vec(name(), 0..20), own in 1u32..=i32::MAX as u32
        ) {
            let count = names.len().to_string();
            let joined = names.join(":");
            let pid = own.to_string();
            let got = parse(
                Some(OsStr::new(&count)),
                Some(OsStr::new(&pid)),
                Some(OsStr::new(&joined)),
                own,
            );
            prop_assert_eq!(got, Ok(names));
            // Another process's variables are not ours, whatever they say.
            let other = parse(Some(OsStr::new(&count)), Some(OsStr::new(&pid)), None, own ^ 1);
            prop_assert_eq!(other, Ok(vec![]));
        }
    }
}

/// Running one unit test of this binary in a child process with a prepared environment and fds
/// at 3.., as a service manager starts a service: for tests of what reads the process
/// environment once (the inherited set).
#[cfg(all(test, target_os = "linux"))]
pub(crate) mod child {
    use std::{io, os::fd::RawFd, os::unix::process::CommandExt as _, process::Command};

    /// Runs test `test` (its full path) of this binary with `env` set (every `LISTEN_*` removed
    /// first), `fds` placed at 3.. (nothing else open from there on) and, with `own_pid`,
    /// `LISTEN_PID` set by `/bin/sh` to the child's own pid between the two texts.
    pub(crate) fn run(
        test: &str,
        env: &[(&str, &str)],
        own_pid: Option<(&str, &str)>,
        fds: &[RawFd],
    ) -> std::process::Output {
        assert!(fds.len() <= 16);
        let exe = std::env::current_exe().expect("current_exe");
        let pid_line = match own_pid {
            Some((before, after)) => {
                format!("LISTEN_PID='{before}'$$'{after}'; export LISTEN_PID; ")
            }
            None => String::new(),
        };
        let mut cmd = Command::new("/bin/sh");
        cmd.arg("-c")
            .arg(format!("{pid_line}exec \"$0\" \"$@\""))
            .arg(exe)
            .args([test, "--exact", "--nocapture", "--test-threads=1"])
            .env_remove("LISTEN_PID")
            .env_remove("LISTEN_FDNAMES")
            .env_remove("LISTEN_FDS")
            .envs(env.iter().copied());
        let raw = fds.to_vec();
        // SAFETY: only async-signal-safe calls (fcntl, dup2, close, close_range) between fork
        // and exec, on memory allocated before the fork.
        unsafe {
            cmd.pre_exec(move || {
                let mut high = [0 as RawFd; 16];
                for (i, &fd) in raw.iter().enumerate() {
                    high[i] = libc::fcntl(fd, libc::F_DUPFD, 100);
                    if high[i] < 0 {
                        return Err(io::Error::last_os_error());
                    }
                }
                for (i, &h) in high.iter().take(raw.len()).enumerate() {
                    if libc::dup2(h, 3 + i as RawFd) < 0 {
                        return Err(io::Error::last_os_error());
                    }
                }
                // Nothing else open from 3+n on (a huge count must meet closed fds).
                let first = 3 + raw.len() as libc::c_uint;
                if libc::syscall(libc::SYS_close_range, first, libc::c_uint::MAX, 0) != 0 {
                    for fd in first..1024 {
                        libc::close(fd as libc::c_int);
                    }
                }
                Ok(())
            });
        }
        cmd.output().expect("run the child")
    }
}

/// The parser against libsystemd itself: `sd_listen_fds_with_names(0, &names)` from
/// `libsystemd.so.0` (loaded with `dlopen`) and [`load`] on the same environment and fds, each
/// case in a child process (this test binary re-executed, since both read the process
/// environment), with the fds placed at 3.. and `LISTEN_PID` set by `/bin/sh` to the child's
/// own pid where a case asks. Where we differ on purpose the case says so and asserts both
/// answers. Under `CI=true` a missing libsystemd fails the test; elsewhere it is skipped.
#[cfg(all(test, target_os = "linux"))]
mod libsystemd {
    use super::*;
    use std::ffi::{c_char, c_int, CStr};

    const CHILD_VAR: &str = "AG_LIBSYSTEMD_CHILD";
    const SO: &[u8] = b"libsystemd.so.0\0";

    type SdListenFdsWithNames = unsafe extern "C" fn(c_int, *mut *mut *mut c_char) -> c_int;

    /// `sd_listen_fds_with_names` of the loaded libsystemd, or `None` when it is not there.
    fn sd_listen_fds_with_names() -> Option<SdListenFdsWithNames> {
        // SAFETY: dlopen/dlsym with NUL-terminated names; the library is never unloaded, so
        // the symbol stays valid; its C signature is `int (int, char ***)` (sd-daemon.h).
        unsafe {
            let lib = libc::dlopen(SO.as_ptr().cast(), libc::RTLD_NOW | libc::RTLD_LOCAL);
            if lib.is_null() {
                return None;
            }
            let sym = libc::dlsym(lib, b"sd_listen_fds_with_names\0".as_ptr().cast());
            if sym.is_null() {
                return None;
            }
            Some(std::mem::transmute::<*mut libc::c_void, SdListenFdsWithNames>(sym))
        }
    }

    /// What one side answered: the names (their `Debug` text), or an error.
    #[derive(Debug, Clone, PartialEq, Eq)]
    enum Answer {
        Names(String),
        Error(String),
    }

    /// Child side: prints both answers for the environment it was started with.
    #[test]
    fn child() {
        if std::env::var_os(CHILD_VAR).is_none() {
            return;
        }
        let ours = match load() {
            Ok(slots) => format!("ok {:?}", slots.iter().map(|s| &s.name).collect::<Vec<_>>()),
            Err(err) => format!("err {err}"),
        };
        println!("\nAGDIFF ours {ours}");
        let f = sd_listen_fds_with_names().expect("libsystemd vanished");
        let mut names: *mut *mut c_char = std::ptr::null_mut();
        // SAFETY: unset_environment=0 leaves the environment alone; `names` receives a
        // NULL-terminated array of malloc'd strings (or stays NULL), freed below with free().
        let n = unsafe { f(0, &mut names) };
        let sd = if n < 0 {
            format!("err errno {}", -n)
        } else {
            let mut got = Vec::new();
            if !names.is_null() {
                // SAFETY: a NULL-terminated array from libsystemd, each entry a C string we
                // own now; each is read once and freed, then the array.
                unsafe {
                    let mut p = names;
                    while !(*p).is_null() {
                        got.push(CStr::from_ptr(*p).to_string_lossy().into_owned());
                        libc::free((*p).cast());
                        p = p.add(1);
                    }
                    libc::free(names.cast());
                }
            }
            assert_eq!(usize::try_from(n).ok(), Some(got.len()), "one name per fd");
            format!("ok {got:?}")
        };
        println!("AGDIFF sd {sd}");
    }

    /// `ok ["a", ""]` (the names, as `Debug` prints them) or `err ...`.
    fn answer(line: &str) -> Answer {
        match line.strip_prefix("ok ") {
            Some(names) => Answer::Names(names.to_owned()),
            None => Answer::Error(line.to_owned()),
        }
    }

    /// How `LISTEN_PID` is set for a case.
    #[derive(Clone, Copy)]
    enum Pid {
        Unset,
        /// The child's own pid with this text before and after it (`$$` in the shell).
        Own(&'static str, &'static str),
        Literal(&'static str),
    }

    struct Case {
        what: &'static str,
        fds: &'static str,
        pid: Pid,
        names: Option<&'static str>,
        open: usize,
        /// `None`: both must agree. `Some((ours_ok, sd_ok))`: a deliberate difference.
        differs: Option<(&'static str, bool, bool)>,
    }

    fn run(case: &Case, sockets: &[std::net::UdpSocket]) -> (Answer, Answer) {
        let mut env = vec![(CHILD_VAR, "1")];
        if case.fds != "<unset>" {
            env.push(("LISTEN_FDS", case.fds));
        }
        if let Pid::Literal(v) = case.pid {
            env.push(("LISTEN_PID", v));
        }
        if let Some(n) = case.names {
            env.push(("LISTEN_FDNAMES", n));
        }
        let own = match case.pid {
            Pid::Own(before, after) => Some((before, after)),
            _ => None,
        };
        let raw: Vec<RawFd> = sockets[..case.open]
            .iter()
            .map(|s| {
                use std::os::fd::AsRawFd as _;
                s.as_raw_fd()
            })
            .collect();
        let out = super::child::run("inherit::libsystemd::child", &env, own, &raw);
        let text = String::from_utf8_lossy(&out.stdout);
        let pick = |tag: &str| {
            text.lines()
                .find_map(|l| l.split_once(tag).map(|(_, rest)| rest))
                .map(answer)
                .unwrap_or_else(|| {
                    panic!(
                        "[{}] no {tag:?} line in:\n{text}\n{}",
                        case.what,
                        String::from_utf8_lossy(&out.stderr)
                    )
                })
        };
        (pick("AGDIFF ours "), pick("AGDIFF sd "))
    }

    #[test]
    fn parser_agrees_with_libsystemd_except_where_documented() {
        if std::env::var_os(CHILD_VAR).is_some() {
            return;
        }
        if sd_listen_fds_with_names().is_none() {
            let msg = "libsystemd.so.0 cannot be loaded (install libsystemd0)";
            assert!(std::env::var("CI").as_deref() != Ok("true"), "{msg}");
            println!("SKIPPED: {msg}");
            return;
        }
        let sockets: Vec<_> = (0..10)
            .map(|_| std::net::UdpSocket::bind("127.0.0.1:0").unwrap())
            .collect();
        let own = Pid::Own("", "");
        let c = |what, fds, pid, names, open| Case {
            what,
            fds,
            pid,
            names,
            open,
            differs: None,
        };
        let mut cases = vec![
            c("nothing set", "<unset>", Pid::Unset, None, 0),
            c("LISTEN_FDS unset, own pid", "<unset>", own, Some("a"), 1),
            c("1 fd, no names", "1", own, None, 1),
            c("2 fds, named", "2", own, Some("web:dns"), 2),
            c("other pid", "1", Pid::Literal("1"), None, 1),
            c(
                "other pid, garbage count",
                "abc",
                Pid::Literal("1"),
                Some("x:y"),
                1,
            ),
            c("-1", "-1", own, None, 1),
            c("+1", "+1", own, None, 1),
            c("' 1'", " 1", own, None, 1),
            c("'1 '", "1 ", own, None, 1),
            c("01", "01", own, None, 1),
            c("010 (octal 8)", "010", own, None, 8),
            c("0x2 (hex)", "0x2", own, None, 2),
            c("0b10 (binary)", "0b10", own, None, 2),
            c("08 (not octal)", "08", own, None, 8),
            c("abc", "abc", own, None, 1),
            c("empty count", "", own, None, 1),
            c("2 names for 1 fd", "1", own, Some("a:b"), 1),
            c("1 name for 2 fds", "2", own, Some("a"), 2),
            c("empty LISTEN_FDNAMES, 1 fd", "1", own, Some(""), 1),
            c("empty LISTEN_FDNAMES, 2 fds", "2", own, Some(""), 2),
            c("':' for 2 fds", "2", own, Some(":"), 2),
            c("a::b for 3 fds", "3", own, Some("a::b"), 3),
            c("count beyond the open fds", "3", own, None, 2),
            c("huge count 100000", "100000", own, None, 1),
            c("huge count 2147483647", "2147483647", own, None, 1),
            c("count beyond int", "99999999999", own, None, 1),
            c("pid garbage", "1", Pid::Literal("abc"), None, 1),
            c(
                "pid garbage, LISTEN_FDS unset",
                "<unset>",
                Pid::Literal("abc"),
                None,
                0,
            ),
            c("pid 0", "1", Pid::Literal("0"), None, 1),
            c("pid -1", "1", Pid::Literal("-1"), None, 1),
            c("pid '+own'", "1", Pid::Own("+", ""), None, 1),
            c("pid ' own'", "1", Pid::Own(" ", ""), None, 1),
            c("pid 'own '", "1", Pid::Own("", " "), None, 1),
        ];
        let d = |what, fds, pid, names, open, why, ours_ok, sd_ok| Case {
            what,
            fds,
            pid,
            names,
            open,
            differs: Some((why, ours_ok, sd_ok)),
        };
        cases.extend([
            d(
                "no LISTEN_PID",
                "1",
                Pid::Unset,
                None,
                1,
                "systemfd --no-pid: fds without LISTEN_PID are ours",
                true,
                true,
            ),
            d(
                "no LISTEN_PID, garbage count",
                "abc",
                Pid::Unset,
                None,
                1,
                "without LISTEN_PID we read the count (systemfd); libsystemd stops at the pid",
                false,
                true,
            ),
            d(
                "LISTEN_FDS=0",
                "0",
                own,
                None,
                0,
                "0 means nothing handed over, not an error",
                true,
                false,
            ),
            d(
                "invalid name (tab)",
                "1",
                own,
                Some("tab\there"),
                1,
                "names systemd itself refuses are refused (we pass names on)",
                false,
                true,
            ),
            d(
                "invalid name (256 bytes)",
                "1",
                own,
                Some(Box::leak("x".repeat(256).into_boxed_str())),
                1,
                "names systemd itself refuses are refused (we pass names on)",
                false,
                true,
            ),
        ]);
        let mut table = Vec::new();
        let mut bad = Vec::new();
        for case in &cases {
            let (ours, sd) = run(case, &sockets);
            table.push(format!(
                "{:<32} ours {:<40} libsystemd {:?}",
                case.what,
                format!("{ours:?}"),
                sd
            ));
            match case.differs {
                None => {
                    let agree = match (&ours, &sd) {
                        (Answer::Names(a), Answer::Names(b)) => a == b,
                        (Answer::Error(_), Answer::Error(_)) => true,
                        _ => false,
                    };
                    if !agree {
                        bad.push(format!("{}: ours {ours:?}, libsystemd {sd:?}", case.what));
                    }
                }
                Some((why, ours_ok, sd_ok)) => {
                    let ours_names = matches!(&ours, Answer::Names(_));
                    let sd_names = matches!(&sd, Answer::Names(_));
                    // A deliberate difference: both answers as documented, and really different.
                    if ours_names != ours_ok || sd_names != sd_ok || ours == sd {
                        bad.push(format!(
                            "{} ({why}): ours {ours:?}, libsystemd {sd:?}",
                            case.what
                        ));
                    }
                }
            }
        }
        println!("{}", table.join("\n"));
        assert!(
            bad.is_empty(),
            "disagreements with libsystemd:\n{}",
            bad.join("\n")
        );
    }
}
