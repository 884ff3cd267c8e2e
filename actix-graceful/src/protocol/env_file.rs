//! The successor's environment file ([`Graceful::successor_env_file`]): `KEY=VALUE` lines,
//! re-read at every upgrade, whose entries override the environment the successor inherits.
//!
//! Read and parsed in the parent before `fork`, so a bad file aborts the upgrade with a precise
//! error while this process keeps serving, and the child allocates nothing.
//!
//! [`Graceful::successor_env_file`]: crate::Graceful::successor_env_file

use std::{ffi::OsString, io, os::unix::ffi::OsStringExt as _, path::Path};

use super::env;

/// Files larger than this are not configuration: refuse them rather than read them whole.
pub(crate) const MAX_ENV_FILE: u64 = 1 << 20;

/// Reads and parses the environment file at `path`.
///
/// # Errors
/// The file cannot be read, is larger than 1 MiB, or a line is malformed (see [`parse`]); the
/// error names the path and, for a malformed line, its number.
pub(crate) fn read(path: &Path) -> io::Result<Vec<(OsString, OsString)>> {
    let with_path = |err: io::Error| {
        io::Error::new(
            err.kind(),
            format!("environment file {}: {err}", path.display()),
        )
    };
    let len = std::fs::metadata(path).map_err(with_path)?.len();
    if len > MAX_ENV_FILE {
        return Err(with_path(io::Error::new(
            io::ErrorKind::InvalidData,
            format!("{len} bytes, more than the {MAX_ENV_FILE} allowed"),
        )));
    }
    let bytes = std::fs::read(path).map_err(with_path)?;
    parse(&bytes).map_err(with_path)
}

/// Parses `KEY=VALUE` lines.
///
/// - Blank lines and lines whose first non-blank byte is `#` are skipped.
/// - `KEY` is `[A-Za-z_][A-Za-z0-9_]*`, optionally preceded by `export ` and blanks; no blank
///   between `KEY` and `=`.
/// - `VALUE` is the rest of the line, byte for byte (no quoting, no escapes, no expansion;
///   a trailing `\r` is dropped). It may be empty and may hold any byte but NUL.
/// - A later line for the same key wins.
/// - The handoff's own variables (`LISTEN_FDS`, `LISTEN_PID`, `LISTEN_FDNAMES`,
///   `ACTIX_GRACEFUL_READY_FD`, ...: every name in [`env::HANDOFF`]) are refused.
///
/// # Errors
/// [`io::ErrorKind::InvalidData`] naming the first bad line (1-based) and why.
pub(crate) fn parse(bytes: &[u8]) -> io::Result<Vec<(OsString, OsString)>> {
    let mut out: Vec<(OsString, OsString)> = Vec::new();
    for (index, raw) in bytes.split(|&b| b == b'\n').enumerate() {
        let bad = |why: &str| {
            io::Error::new(
                io::ErrorKind::InvalidData,
                format!("line {}: {why}", index + 1),
            )
        };
        let line = raw.strip_suffix(b"\r").unwrap_or(raw);
        let trimmed = trim_start(line);
        if trimmed.is_empty() || trimmed[0] == b'#' {
            continue;
        }
        let trimmed = match trimmed.strip_prefix(b"export") {
            Some(rest) if rest.first().is_some_and(|b| matches!(b, b' ' | b'\t')) => {
                trim_start(rest)
            }
            _ => trimmed,
        };
        let Some(eq) = trimmed.iter().position(|&b| b == b'=') else {
            return Err(bad("expected KEY=VALUE"));
        };
        let (key, value) = (&trimmed[..eq], &trimmed[eq + 1..]);
        if !key_is_valid(key) {
            return Err(bad(&format!(
                "{:?} is not a variable name ([A-Za-z_][A-Za-z0-9_]*)",
                String::from_utf8_lossy(key)
            )));
        }
        if value.contains(&0) {
            return Err(bad("the value holds a NUL byte"));
        }
        let key_str = std::str::from_utf8(key).unwrap_or_default();
        if env::HANDOFF.contains(&key_str) {
            return Err(bad(&format!(
                "{key_str} is set by the handoff itself and cannot be overridden"
            )));
        }
        out.retain(|(k, _)| k.as_encoded_bytes() != key);
        out.push((
            OsString::from_vec(key.to_vec()),
            OsString::from_vec(value.to_vec()),
        ));
    }
    Ok(out)
}

fn trim_start(mut s: &[u8]) -> &[u8] {
    while let [b' ' | b'\t', rest @ ..] = s {
        s = rest;
    }
    s
}

fn key_is_valid(key: &[u8]) -> bool {
    match key {
        [first, rest @ ..] => {
            (first.is_ascii_alphabetic() || *first == b'_')
                && rest.iter().all(|b| b.is_ascii_alphanumeric() || *b == b'_')
        }
        [] => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn kv(v: &[(OsString, OsString)]) -> Vec<(String, String)> {
        v.iter()
            .map(|(k, v)| {
                (
                    k.to_string_lossy().into_owned(),
                    v.to_string_lossy().into_owned(),
                )
            })
            .collect()
    }

    #[test]
    fn parses_lines_comments_export_and_overrides() {
        let text = b"# comment\n\nA=1\n  export B=two words \r\nC=\nA=3\n\t# x=y\nD==x#y\n";
        assert_eq!(
            kv(&parse(text).unwrap()),
            vec![
                ("B".into(), "two words ".into()),
                ("C".into(), String::new()),
                ("A".into(), "3".into()),
                ("D".into(), "=x#y".into()),
            ]
        );
        assert!(parse(b"").unwrap().is_empty());
        assert_eq!(
            kv(&parse(b"exportX=1").unwrap()),
            vec![("exportX".into(), "1".into())]
        );
    }

    #[test]
    fn rejects_bad_lines_with_their_number() {
        for (text, want) in [
            (&b"A=1\nnot a pair\n"[..], "line 2: expected KEY=VALUE"),
            (b"1A=x", "line 1: \"1A\" is not a variable name"),
            (b"A B=x", "line 1: \"A B\" is not a variable name"),
            (b"=x", "line 1: \"\" is not a variable name"),
            (b"A =x", "line 1: \"A \" is not a variable name"),
            (b"\n\nA=\0", "line 3: the value holds a NUL byte"),
            (b"LISTEN_FDS=3", "line 1: LISTEN_FDS is set by the handoff"),
            (
                b"ACTIX_GRACEFUL_READY_FD=9",
                "line 1: ACTIX_GRACEFUL_READY_FD is set",
            ),
        ] {
            let err = parse(text).unwrap_err();
            assert_eq!(err.kind(), io::ErrorKind::InvalidData);
            assert!(err.to_string().starts_with(want), "{err} / {want}");
        }
    }

    /// The one list of handoff variables is what the file may not set: every one of them.
    #[test]
    fn no_handoff_variable_can_be_set() {
        for name in env::HANDOFF {
            let err = parse(format!("# a comment\nexport {name}=1\n").as_bytes()).unwrap_err();
            assert!(
                err.to_string()
                    .starts_with(&format!("line 2: {name} is set by the handoff")),
                "{name}: {err}"
            );
        }
    }

    #[test]
    fn read_names_the_path() {
        let err = read(Path::new("/nonexistent/actix-graceful.env")).unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::NotFound);
        assert!(
            err.to_string().contains("/nonexistent/actix-graceful.env"),
            "{err}"
        );
    }
}

/// Property tests of the environment-file parser. Bounded case counts: they run in `cargo test`.
#[cfg(test)]
mod proptests {
    use super::*;
    use proptest::prelude::*;

    fn key() -> impl Strategy<Value = String> {
        let first: Vec<char> = ('A'..='Z').chain('a'..='z').chain(['_']).collect();
        let rest: Vec<char> = first.iter().copied().chain('0'..='9').collect();
        (
            proptest::sample::select(first),
            proptest::collection::vec(proptest::sample::select(rest), 0..12),
        )
            .prop_map(|(f, r)| std::iter::once(f).chain(r).collect())
            .prop_filter("reserved", |k: &String| !env::HANDOFF.contains(&k.as_str()))
    }

    /// Any bytes but newline and NUL, not ending in `\r`.
    fn value() -> impl Strategy<Value = Vec<u8>> {
        proptest::collection::vec(
            any::<u8>().prop_filter("nl/nul", |b| *b != b'\n' && *b != 0),
            0..30,
        )
        .prop_filter("trailing CR", |v| v.last() != Some(&b'\r'))
    }

    /// Lines that look like env files: pairs, comments, blanks, garbage.
    fn lines() -> impl Strategy<Value = Vec<u8>> {
        let line = prop_oneof![
            (key(), value()).prop_map(|(k, v)| [k.into_bytes(), b"=".to_vec(), v].concat()),
            value().prop_map(|v| [b"#".to_vec(), v].concat()),
            Just(b"  ".to_vec()),
            proptest::collection::vec(any::<u8>(), 0..20),
        ];
        proptest::collection::vec(line, 0..10).prop_map(|ls| ls.join(&b'\n'))
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(1024))]

        #[test]
        fn arbitrary_input_never_panics_and_ok_means_valid(bytes in lines()) {
            if let Ok(pairs) = parse(&bytes) {
                for (k, v) in &pairs {
                    prop_assert!(key_is_valid(k.as_encoded_bytes()));
                    prop_assert!(!v.as_encoded_bytes().contains(&0));
                    prop_assert!(!env::HANDOFF.contains(&k.to_str().unwrap()));
                }
                let mut keys: Vec<_> = pairs.iter().map(|(k, _)| k).collect();
                keys.sort();
                keys.dedup();
                prop_assert_eq!(keys.len(), pairs.len(), "one entry per key");
            }
        }

        #[test]
        fn written_pairs_read_back_last_wins(
            pairs in proptest::collection::vec((key(), value()), 0..12)
        ) {
            let text: Vec<u8> = pairs
                .iter()
                .flat_map(|(k, v)| [k.as_bytes(), b"=", v, b"\n"].concat())
                .collect();
            let mut want: Vec<(OsString, OsString)> = Vec::new();
            for (k, v) in &pairs {
                want.retain(|(wk, _)| wk.to_str() != Some(k.as_str()));
                want.push((OsString::from(k), OsString::from_vec(v.clone())));
            }
            prop_assert_eq!(parse(&text).unwrap(), want);
        }
    }
}
