//! Parsing, the environment and serde: accepted and refused values, and errors naming the key.

use super::*;

fn ms(n: u64) -> Duration {
    Duration::from_millis(n)
}

#[test]
fn durations() {
    for (text, want) in [
        ("30s", Duration::from_secs(30)),
        ("500ms", ms(500)),
        ("1m30s", Duration::from_secs(90)),
        ("1m 30s", Duration::from_secs(90)),
        (" 2h ", Duration::from_secs(7200)),
        ("1.5s", ms(1500)),
        (".25s", ms(250)),
        ("0", Duration::ZERO),
        ("0s", Duration::ZERO),
        ("10us", Duration::from_micros(10)),
        ("10µs", Duration::from_micros(10)),
        ("7ns", Duration::from_nanos(7)),
        ("1.0000000019s", Duration::new(1, 1)),
        ("18446744073709551615s", Duration::from_secs(u64::MAX)),
    ] {
        assert_eq!(parse_duration(text), Ok(want), "{text:?}");
    }
}

#[test]
fn bad_durations_say_why() {
    for (text, why) in [
        ("", "empty"),
        ("30", "no unit"),
        ("5x", "unknown unit \"x\""),
        ("s", "expected a number"),
        ("1.2.3s", "not a number"),
        (".s", "not a number"),
        ("-1s", "expected a number"),
        ("30 s", "no unit"),
        ("18446744073709551616s", "too large"),
        ("99999999999999999999999999999999999999999h", "too large"),
    ] {
        let err = parse_duration(text).expect_err(text).to_string();
        assert!(err.contains(why), "{text:?}: {err}");
    }
}

#[test]
fn booleans() {
    for t in ["true", "1", "yes", "ON", " on "] {
        assert_eq!(parse_bool(t), Ok(true), "{t}");
    }
    for t in ["false", "0", "no", "Off"] {
        assert_eq!(parse_bool(t), Ok(false), "{t}");
    }
    assert!(parse_bool("maybe").is_err());
    assert!(parse_bool("").is_err());
}

fn env(vars: &[(&str, &str)]) -> io::Result<Settings> {
    let vars: Vec<(String, OsString)> = vars
        .iter()
        .map(|(k, v)| (k.to_string(), OsString::from(v)))
        .collect();
    Settings::from_lookup(|name| vars.iter().find(|(k, _)| k == name).map(|(_, v)| v.clone()))
}

#[test]
fn environment_sets_what_is_set() {
    let s = env(&[
        ("ACTIX_GRACEFUL_UPGRADE_TIMEOUT", "10s"),
        ("ACTIX_GRACEFUL_DRAIN_TIMEOUT", "2s"),
        ("ACTIX_GRACEFUL_SHUTDOWN_TIMEOUT", "1m"),
        ("ACTIX_GRACEFUL_PRE_STOP_DELAY", "5s"),
        ("ACTIX_GRACEFUL_PROBATION", "30s"),
        ("ACTIX_GRACEFUL_PID_FILE", "/run/app.pid"),
        ("ACTIX_GRACEFUL_KEEPER_MODE", "yes"),
        // The handoff's own variables are not settings.
        ("ACTIX_GRACEFUL_KEEPER", "1234"),
        ("ACTIX_GRACEFUL_GENERATION", "3"),
    ])
    .unwrap();
    assert_eq!(
        s,
        Settings {
            upgrade_timeout: Some(Duration::from_secs(10)),
            drain_timeout: Some(Duration::from_secs(2)),
            shutdown_timeout: Some(Duration::from_secs(60)),
            pre_stop_delay: Some(Duration::from_secs(5)),
            probation: Some(Duration::from_secs(30)),
            pid_file: Some("/run/app.pid".into()),
            keeper_mode: Some(true),
        }
    );
    assert_eq!(env(&[]).unwrap(), Settings::default());
    assert_eq!(
        env(&[("ACTIX_GRACEFUL_DRAIN_TIMEOUT", "")]).unwrap(),
        Settings::default(),
        "empty is unset"
    );
}

#[test]
fn a_bad_variable_is_named_with_its_value() {
    let err = env(&[("ACTIX_GRACEFUL_DRAIN_TIMEOUT", "5x")]).unwrap_err();
    assert_eq!(err.kind(), io::ErrorKind::InvalidInput);
    let msg = err.to_string();
    assert!(
        msg.starts_with(r#"ACTIX_GRACEFUL_DRAIN_TIMEOUT="5x": unknown unit "x""#),
        "{msg}"
    );
    let err = env(&[("ACTIX_GRACEFUL_KEEPER_MODE", "sometimes")]).unwrap_err();
    assert!(
        err.to_string()
            .starts_with(r#"ACTIX_GRACEFUL_KEEPER_MODE="sometimes": not a boolean"#),
        "{err}"
    );
}

#[cfg(unix)]
#[test]
fn non_utf8_is_refused_except_for_the_pid_file() {
    use std::os::unix::ffi::OsStringExt as _;
    let bad = OsString::from_vec(vec![b'1', 0xff, b's']);
    let lookup = |want: &'static str| {
        let bad = bad.clone();
        move |name: &str| (name == want).then(|| bad.clone())
    };
    let err = Settings::from_lookup(lookup("ACTIX_GRACEFUL_UPGRADE_TIMEOUT")).unwrap_err();
    assert!(err.to_string().contains("not valid UTF-8"), "{err}");
    let s = Settings::from_lookup(lookup("ACTIX_GRACEFUL_PID_FILE")).unwrap();
    assert_eq!(s.pid_file, Some(PathBuf::from(bad.clone())));
}

proptest::proptest! {
    #![proptest_config(proptest::prelude::ProptestConfig::with_cases(512))]

    /// Any text: an answer, never a panic.
    #[test]
    fn any_text_is_an_answer(text in "\\PC{0,24}") {
        let _ = parse_duration(&text);
        let _ = parse_bool(&text);
    }

    /// Milliseconds and seconds written as text come back exactly.
    #[test]
    fn written_durations_come_back(secs in 0u64..1_000_000, millis in 0u32..1000) {
        let d = Duration::new(secs, millis * 1_000_000);
        proptest::prop_assert_eq!(parse_duration(&format!("{secs}s{millis}ms")), Ok(d));
        proptest::prop_assert_eq!(parse_duration(&format!("{secs}.{millis:03}s")), Ok(d));
    }
}

#[cfg(feature = "serde")]
mod serde_input {
    use super::*;

    #[test]
    fn from_a_json_config() {
        let s: Settings = serde_json::from_str(
            r#"{"drain_timeout": "2s", "upgrade_timeout": "1m", "shutdown_timeout": 0,
                "keeper_mode": true, "pid_file": "/run/app.pid", "other": [1, 2]}"#,
        )
        .unwrap();
        assert_eq!(s.drain_timeout, Some(Duration::from_secs(2)));
        assert_eq!(s.upgrade_timeout, Some(Duration::from_secs(60)));
        assert_eq!(s.shutdown_timeout, Some(Duration::ZERO));
        assert_eq!(s.pre_stop_delay, None);
        assert_eq!(s.keeper_mode, Some(true));
        assert_eq!(s.pid_file, Some("/run/app.pid".into()));
    }

    /// As `envy` and `config`'s `Environment` present variables: every value a string.
    #[test]
    fn from_strings_as_environment_loaders_give_them() {
        use serde::de::{value::MapDeserializer, Deserialize as _};
        let vars = [
            ("keeper_mode", "off"),
            ("pre_stop_delay", "1.5s"),
            ("probation", "0"),
            ("generation", "3"),
        ];
        let s = Settings::deserialize(MapDeserializer::<_, serde::de::value::Error>::new(
            vars.into_iter(),
        ))
        .unwrap();
        assert_eq!(s.keeper_mode, Some(false));
        assert_eq!(s.pre_stop_delay, Some(Duration::from_millis(1500)));
        assert_eq!(s.probation, Some(Duration::ZERO));
    }

    #[test]
    fn a_bad_value_is_named_with_its_key() {
        for (json, want) in [
            (
                r#"{"drain_timeout": "5x"}"#,
                r#"drain_timeout: "5x": unknown unit "x""#,
            ),
            (
                r#"{"drain_timeout": 30}"#,
                "drain_timeout: 30: a number without a unit",
            ),
            (
                r#"{"upgrade_timeout": true}"#,
                "upgrade_timeout: true: not a duration",
            ),
            (
                r#"{"keeper_mode": "maybe"}"#,
                r#"keeper_mode: "maybe": not a boolean"#,
            ),
            (r#"{"pre_stop_delay": -1}"#, "pre_stop_delay: -1: negative"),
            (
                r#"{"drain_timeout": "1s", "drain_timeout": "2s"}"#,
                "duplicate field `drain_timeout`",
            ),
        ] {
            let err = serde_json::from_str::<Settings>(json)
                .unwrap_err()
                .to_string();
            assert!(err.contains(want), "{json}: {err}");
        }
    }
}
