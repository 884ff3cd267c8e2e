//! The socket-activation variables (`LISTEN_FDS`, `LISTEN_PID`, `LISTEN_FDNAMES`) read as
//! libsystemd's `sd_listen_fds_with_names` reads them. Pure parsing: it owns no descriptor and
//! reads no environment (the values come from the [`Snapshot`](super::env::Snapshot)).
//!
//! Numbers are read as systemd's `safe_atoi`/`parse_pid` read them: leading blanks, a sign,
//! `0x`/`0o`/`0b` prefixes, a leading `0` for octal. The parser differs from libsystemd on
//! purpose in three points, each tested against the real libsystemd
//! (`process::inherit`'s `libsystemd` test): a missing `LISTEN_PID` is accepted (systemfd's
//! `--no-pid`, for cargo-watch, where the consuming pid is not the launched one);
//! `LISTEN_FDS=0` means "nothing handed over" rather than an error (some launchers set it when
//! a socket unit has no sockets); and names systemd itself would refuse (control characters,
//! non-ASCII, over 255 bytes) are an error rather than passed on, since this crate passes the
//! names on to a successor.

use std::{ffi::OsStr, os::fd::RawFd};

use crate::BindError;

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
/// [`BindError::InvalidListenFds`], [`BindError::InvalidListenPid`], [`BindError::FdNamesMismatch`],
/// [`BindError::InvalidFdName`].
pub(crate) fn parse(
    listen_fds: Option<&OsStr>,
    listen_pid: Option<&OsStr>,
    fd_names: Option<&OsStr>,
    own_pid: u32,
) -> Result<Vec<String>, BindError> {
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
                return Err(BindError::InvalidListenPid {
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
                return Err(BindError::FdNamesMismatch {
                    names: names.len(),
                    fds: count,
                });
            }
            if let Some(bad) = names.iter().find(|n| !name_is_valid(n)) {
                return Err(BindError::InvalidFdName { name: bad.clone() });
            }
            names
        }
    };
    Ok(names)
}

fn parse_count(value: &OsStr) -> Result<usize, BindError> {
    let text = value.to_string_lossy();
    let invalid = |reason| BindError::InvalidListenFds {
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

/// The first fd after `count` descriptors handed over at [`LISTEN_FDS_START`].
pub(crate) fn first_after(count: usize) -> RawFd {
    RawFd::try_from(count)
        .ok()
        .and_then(|n| n.checked_add(LISTEN_FDS_START))
        .unwrap_or(RawFd::MAX)
}

/// Whether a `LISTEN_PID` value names `own_pid`, read as [`parse`] reads it. The variables this
/// crate sets beside `LISTEN_*` (the readiness pipe, the keeper's control pipe, the keeper's
/// pid) are for this process only when this is true.
pub(crate) fn names_pid(listen_pid: Option<&OsStr>, own_pid: u32) -> bool {
    listen_pid
        .and_then(|pid| systemd_number(pid.as_encoded_bytes(), false))
        .is_some_and(|pid| pid == i64::from(own_pid))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p(
        fds: Option<&str>,
        pid: Option<&str>,
        names: Option<&str>,
    ) -> Result<Vec<String>, BindError> {
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
            Err(BindError::InvalidListenPid { .. })
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
            Err(BindError::FdNamesMismatch { names: 1, fds: 2 })
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
                Err(BindError::InvalidListenFds {
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
                Err(BindError::InvalidListenPid {
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
            Err(BindError::FdNamesMismatch { names: 1, fds: 2 })
        );
        assert_eq!(
            p(Some("1"), Some("4242"), Some("a:b:c")),
            Err(BindError::FdNamesMismatch { names: 3, fds: 1 })
        );
    }

    #[test]
    fn invalid_names() {
        let long = "x".repeat(256);
        for name in [long.as_str(), "tab\there", "é"] {
            assert!(
                matches!(
                    p(Some("1"), Some("4242"), Some(name)),
                    Err(BindError::InvalidFdName { .. })
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
