//! Sockets handed to this process by the systemd socket-activation protocol
//! (`LISTEN_FDS`, `LISTEN_PID`, `LISTEN_FDNAMES`), read once per process.
//!
//! The environment is read, never changed: changing it is unsound once other threads exist.
//! A child the app starts later sees the variables too, but with a `LISTEN_PID` that is not its
//! own, which every consumer (this crate, libsystemd) reads as "nothing for me".

use std::{
    ffi::OsStr,
    os::fd::{FromRawFd, OwnedFd, RawFd},
    sync::{Mutex, OnceLock},
};

use crate::{addr::ListenAddr, fd, Error};

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
/// accepted (systemfd's `--no-pid`).
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
    let Some(listen_fds) = listen_fds else {
        return Ok(Vec::new());
    };
    if let Some(pid) = listen_pid {
        let text = pid.to_string_lossy();
        match text.parse::<u32>() {
            Ok(pid) if pid > 0 && text.bytes().all(|b| b.is_ascii_digit()) => {
                if pid != own_pid {
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

    let count = parse_count(listen_fds)?;
    let names: Vec<String> = match fd_names {
        None => vec![UNKNOWN_NAME.to_owned(); count],
        Some(names) => {
            let text = names.to_string_lossy();
            let names: Vec<String> = if text.is_empty() && count == 0 {
                Vec::new()
            } else {
                text.split(':').map(str::to_owned).collect()
            };
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
    if let Some(rest) = text.strip_prefix('-') {
        if !rest.is_empty() && rest.bytes().all(|b| b.is_ascii_digit()) {
            return Err(invalid("negative"));
        }
    }
    if !text.bytes().all(|b| b.is_ascii_digit()) {
        return Err(invalid("not a number"));
    }
    match text.parse::<usize>() {
        Ok(n) if n <= MAX_LISTEN_FDS => Ok(n),
        _ => Err(invalid("absurdly large (more than 16384 fds)")),
    }
}

/// systemd's `fdname_is_valid`: ASCII without control characters (nor `:`), at most 255 bytes.
pub(crate) fn name_is_valid(name: &str) -> bool {
    name.len() <= 255
        && name
            .bytes()
            .all(|b| (b' '..=b'~').contains(&b) && b != b':')
}

/// One handed-over descriptor, validated but not yet claimed by a bind call.
#[derive(Debug)]
pub(crate) struct Slot {
    pub(crate) fd: RawFd,
    pub(crate) name: String,
    pub(crate) addr: ListenAddr,
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
                "inherited {} listener(s): {}",
                slots.len(),
                slots
                    .iter()
                    .map(|s| format!("fd {} {:?} {}", s.fd, s.name, s.addr))
                    .collect::<Vec<_>>()
                    .join(", ")
            ),
            Ok(_) => {}
            Err(err) => log::error!("rejected the inherited sockets: {err}"),
        }
        result.map(Mutex::new)
    })
}

/// Reads the environment and validates every announced descriptor, owning none of them yet.
fn load() -> Result<Vec<Slot>, Error> {
    let names = parse(
        std::env::var_os("LISTEN_FDS").as_deref(),
        std::env::var_os("LISTEN_PID").as_deref(),
        std::env::var_os("LISTEN_FDNAMES").as_deref(),
        std::process::id(),
    )?;
    // Check that every fd is open before probing any, so a short count gets its own message.
    if let Some(fd) = (LISTEN_FDS_START..)
        .take(names.len())
        .find(|&fd| !fd::is_open(fd))
    {
        return Err(Error::FdNotOpen { fd });
    }
    names
        .into_iter()
        .zip(LISTEN_FDS_START..)
        .map(|(name, fd)| {
            let probe = fd::probe(fd)?;
            Ok(Slot {
                fd,
                name,
                addr: probe.addr,
                claimed: false,
            })
        })
        .collect()
}

/// How many descriptors were handed over (0 when none, or when they were rejected).
pub(crate) fn count() -> usize {
    match set() {
        Ok(slots) => slots.lock().unwrap_or_else(|e| e.into_inner()).len(),
        Err(_) => 0,
    }
}

/// Takes the inherited socket that serves `wanted`, if any.
///
/// A named request takes a socket of that name (preferring one whose address matches), else
/// falls back to matching by address; an unnamed one matches by address only.
///
/// # Errors
/// The error found when the inherited set was read (every call gets it), or
/// [`Error::WrongFamily`] when the socket of the asked name is of the other family.
pub(crate) fn take(wanted: &Wanted<'_>) -> Result<Option<Taken>, Error> {
    let set = set().as_ref().map_err(Clone::clone)?;
    let mut slots = set.lock().unwrap_or_else(|e| e.into_inner());
    let by_name = |s: &&mut Slot| wanted.name == Some(s.name.as_str());
    let pick = slots
        .iter_mut()
        .filter(|s| !s.claimed)
        .filter(by_name)
        .max_by_key(|s| s.addr.serves(wanted.addr));
    let pick = match pick {
        Some(slot) => {
            if std::mem::discriminant(&slot.addr) != std::mem::discriminant(wanted.addr) {
                return Err(Error::WrongFamily {
                    fd: slot.fd,
                    name: slot.name.clone(),
                    expected: wanted.addr.family(),
                    found: slot.addr.family(),
                });
            }
            Some(slot)
        }
        // An exact address first: a port-0 request must not take the socket that a later,
        // explicit request for that port is waiting for.
        None => {
            let exact = slots
                .iter()
                .position(|s| !s.claimed && s.addr == *wanted.addr);
            match exact {
                Some(i) => slots.get_mut(i),
                None => slots
                    .iter_mut()
                    .find(|s| !s.claimed && s.addr.serves(wanted.addr)),
            }
        }
    };
    let Some(slot) = pick else {
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
        addr: slot.addr.clone(),
    }))
}

/// Removes and closes every inherited socket no bind call claimed, warning about each.
pub(crate) fn close_unclaimed() {
    let Some(Ok(set)) = INHERITED.get() else {
        return;
    };
    let mut slots = set.lock().unwrap_or_else(|e| e.into_inner());
    for slot in slots.iter_mut().filter(|s| !s.claimed) {
        log::warn!(
            "inherited fd {} (name {:?}, {}) was not claimed by any graceful_bind; closing it",
            slot.fd,
            slot.name,
            slot.addr
        );
        slot.claimed = true;
        // SAFETY: handed to this process by the protocol, validated, and claimed by no one:
        // we own it, and marking it claimed above means it is closed exactly once.
        drop(unsafe { OwnedFd::from_raw_fd(slot.fd) });
    }
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
            (" 1", "not a number"),
            ("", "empty"),
            ("-1", "negative"),
            ("16385", "absurdly large (more than 16384 fds)"),
            (
                "99999999999999999999999",
                "absurdly large (more than 16384 fds)",
            ),
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
    fn malformed_pids() {
        for value in ["", "abc", "-5", "0", "+4242", "4242 "] {
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
                    let count: usize = std::str::from_utf8(fds.as_deref().unwrap())
                        .unwrap()
                        .parse()
                        .unwrap();
                    prop_assert_eq!(got.len(), count);
                }
            }
        }

        #[test]
        fn well_formed_input_round_trips(
            names in proptest::collection::vec(name(), 0..20), own in 1u32..
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
