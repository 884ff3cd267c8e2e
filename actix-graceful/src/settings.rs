//! Configuration from where applications keep it: [`Settings`] (deserializable from the app's
//! own configuration with the `serde` feature) and the environment ([`Graceful::with_env`]).
//! Everything here goes through `Graceful`'s public builder methods.

use std::{ffi::OsString, fmt, io, path::PathBuf, time::Duration};

/// The knobs an operator changes without rebuilding, each `None` unless set: applied over a
/// [`Graceful`](crate::Graceful) with [`Graceful::with_settings`](crate::Graceful::with_settings),
/// read from the environment with [`Settings::from_env`], or, with the `serde` feature,
/// deserialized from the application's own configuration (TOML, JSON, YAML, `config`,
/// `figment`, `envy`, ...).
///
/// Durations are written as text with units: `"30s"`, `"500ms"`, `"1m30s"`, `"1.5s"`, `"2h"`
/// (units `ns`, `us`, `ms`, `s`, `m`, `h`; `"0"` alone is zero). A bare number other than 0
/// is refused, as its unit would be a guess.
///
/// | field | builder method | environment variable |
/// |---|---|---|
/// | `upgrade_timeout` | [`upgrade_timeout`](crate::Graceful::upgrade_timeout) | `ACTIX_GRACEFUL_UPGRADE_TIMEOUT` |
/// | `drain_timeout` | [`drain_timeout`](crate::Graceful::drain_timeout) | `ACTIX_GRACEFUL_DRAIN_TIMEOUT` |
/// | `shutdown_timeout` | [`shutdown_timeout`](crate::Graceful::shutdown_timeout) | `ACTIX_GRACEFUL_SHUTDOWN_TIMEOUT` |
/// | `pre_stop_delay` | [`pre_stop_delay`](crate::Graceful::pre_stop_delay) | `ACTIX_GRACEFUL_PRE_STOP_DELAY` |
/// | `pid_file` | [`pid_file`](crate::Graceful::pid_file) | `ACTIX_GRACEFUL_PID_FILE` |
/// | `keeper_mode` | [`keeper`](crate::Graceful::keeper) | `ACTIX_GRACEFUL_KEEPER_MODE` (`true`/`false`, `1`/`0`, `yes`/`no`, `on`/`off`) |
///
/// With serde, the keys are the field names; unknown keys are ignored (so that `envy` or
/// `config` with the prefix `ACTIX_GRACEFUL_` may see the handoff's own variables), and a bad
/// value is an error naming the key and the value.
///
/// # Examples
///
/// ```
/// use std::time::Duration;
/// use actix_graceful::Settings;
///
/// let mut settings = Settings::default();
/// settings.drain_timeout = Some(Duration::from_secs(2));
/// let graceful = actix_graceful::Graceful::new().with_settings(&settings);
/// ```
#[derive(Debug, Clone, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct Settings {
    /// How long a successor may take to get ready.
    pub upgrade_timeout: Option<Duration>,
    /// The cap on the drain of the open connections after the successor is ready.
    pub drain_timeout: Option<Duration>,
    /// How long in-flight requests may run once the process stops.
    pub shutdown_timeout: Option<Duration>,
    /// Time to keep serving after SIGTERM before the drain starts.
    pub pre_stop_delay: Option<Duration>,
    /// Where to write the serving process's pid.
    pub pid_file: Option<PathBuf>,
    /// Keeper mode on or off.
    pub keeper_mode: Option<bool>,
}

/// The prefix of the environment variables read by [`Settings::from_env`].
const PREFIX: &str = "ACTIX_GRACEFUL_";

/// The keys, in the order of the fields (serde keys; upper-cased after [`PREFIX`] in the
/// environment).
const KEYS: [&str; 6] = [
    "upgrade_timeout",
    "drain_timeout",
    "shutdown_timeout",
    "pre_stop_delay",
    "pid_file",
    "keeper_mode",
];

impl Settings {
    /// Reads the `ACTIX_GRACEFUL_*` variables listed on [`Settings`]; an unset or empty variable
    /// leaves its field `None`.
    ///
    /// # Errors
    /// A variable that is not valid UTF-8 (the pid file aside) or not a valid value: an
    /// [`io::Error`] of kind [`InvalidInput`](io::ErrorKind::InvalidInput) naming the variable
    /// and the value, e.g. `ACTIX_GRACEFUL_DRAIN_TIMEOUT="5x": unknown unit "x" ...`.
    ///
    /// # Examples
    ///
    /// ```
    /// let settings = actix_graceful::Settings::from_env()?;
    /// # Ok::<(), std::io::Error>(())
    /// ```
    pub fn from_env() -> io::Result<Settings> {
        Settings::from_lookup(|name| std::env::var_os(name))
    }

    /// [`from_env`](Self::from_env) with `lookup` in place of the process environment.
    pub(crate) fn from_lookup(lookup: impl Fn(&str) -> Option<OsString>) -> io::Result<Settings> {
        let mut settings = Settings::default();
        for key in KEYS {
            let var = format!("{PREFIX}{}", key.to_ascii_uppercase());
            let Some(raw) = lookup(&var).filter(|v| !v.is_empty()) else {
                continue;
            };
            let invalid = |why: &dyn fmt::Display| {
                let err =
                    io::Error::new(io::ErrorKind::InvalidInput, format!("{var}={raw:?}: {why}"));
                log::error!("{err}");
                err
            };
            if key == "pid_file" {
                settings.pid_file = Some(PathBuf::from(raw));
                continue;
            }
            let text = raw.to_str().ok_or_else(|| invalid(&"not valid UTF-8"))?;
            settings.set(key, text).map_err(|why| invalid(&why))?;
        }
        Ok(settings)
    }

    /// Sets the field `key` from `text`; `Err` says what is wrong with the value.
    fn set(&mut self, key: &str, text: &str) -> Result<(), ValueError> {
        match key {
            "upgrade_timeout" => self.upgrade_timeout = Some(parse_duration(text)?),
            "drain_timeout" => self.drain_timeout = Some(parse_duration(text)?),
            "shutdown_timeout" => self.shutdown_timeout = Some(parse_duration(text)?),
            "pre_stop_delay" => self.pre_stop_delay = Some(parse_duration(text)?),
            "pid_file" => self.pid_file = Some(PathBuf::from(text)),
            "keeper_mode" => self.keeper_mode = Some(parse_bool(text)?),
            _ => {}
        }
        Ok(())
    }
}

#[cfg(unix)]
impl crate::Graceful {
    /// Applies every field of `settings` that is set over this configuration, through the
    /// builder methods listed on [`Settings`]; unset fields keep the values built so far.
    ///
    /// # Examples
    ///
    /// ```
    /// let settings = actix_graceful::Settings::default();
    /// let graceful = actix_graceful::Graceful::new().with_settings(&settings);
    /// ```
    pub fn with_settings(mut self, settings: &Settings) -> Self {
        if let Some(t) = settings.upgrade_timeout {
            self = self.upgrade_timeout(t);
        }
        if let Some(t) = settings.drain_timeout {
            self = self.drain_timeout(t);
        }
        if let Some(t) = settings.shutdown_timeout {
            self = self.shutdown_timeout(t);
        }
        if let Some(t) = settings.pre_stop_delay {
            self = self.pre_stop_delay(t);
        }
        if let Some(path) = &settings.pid_file {
            self = self.pid_file(path.clone());
        }
        if let Some(on) = settings.keeper_mode {
            self = self.keeper(on);
        }
        self
    }

    /// Applies the `ACTIX_GRACEFUL_*` environment variables listed on [`Settings`] over this
    /// configuration: the values built so far (in code, or from the app's configuration with
    /// [`with_settings`](Self::with_settings)) are the defaults, and a variable wins where it is
    /// set. Call it last, before [`run`](Self::run). Successors inherit the environment, and an
    /// [environment file](Self::successor_env_file) can change a variable for the next one.
    ///
    /// # Errors
    /// A bad value: an [`io::Error`] of kind [`InvalidInput`](io::ErrorKind::InvalidInput) naming
    /// the variable and the value (also logged), as from [`Settings::from_env`].
    ///
    /// # Examples
    ///
    /// ```no_run
    /// use std::time::Duration;
    /// use actix_graceful::{Graceful, GracefulBind as _};
    /// use actix_web::{App, HttpServer};
    ///
    /// #[actix_web::main]
    /// async fn main() -> std::io::Result<()> {
    ///     let server = HttpServer::new(|| App::new().wrap(actix_graceful::LameDuck))
    ///         .graceful_bind("127.0.0.1:8080")?;
    ///     // 10 s unless ACTIX_GRACEFUL_UPGRADE_TIMEOUT says otherwise:
    ///     Graceful::new()
    ///         .upgrade_timeout(Duration::from_secs(10))
    ///         .with_env()?
    ///         .run(server)
    ///         .await
    /// }
    /// ```
    pub fn with_env(self) -> io::Result<Self> {
        Ok(self.with_settings(&Settings::from_env()?))
    }
}

/// What is wrong with a value.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct ValueError(String);

impl fmt::Display for ValueError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

fn value_error(why: impl Into<String>) -> ValueError {
    ValueError(why.into())
}

const DURATION_HELP: &str = r#"(e.g. "500ms", "30s", "1m30s"; units ns, us, ms, s, m, h)"#;

/// Parses a duration: one or more `<number><unit>` parts, optionally separated by spaces,
/// summed; the number may have a decimal fraction (`"1.5s"`); `"0"` alone is zero.
pub(crate) fn parse_duration(text: &str) -> Result<Duration, ValueError> {
    let text = text.trim();
    if text.is_empty() {
        return Err(value_error(format!("an empty duration {DURATION_HELP}")));
    }
    if text == "0" {
        return Ok(Duration::ZERO);
    }
    let too_large = || value_error("duration too large");
    let mut total: u128 = 0; // nanoseconds
    let mut rest = text;
    while !rest.is_empty() {
        let digits = rest
            .find(|c: char| !(c.is_ascii_digit() || c == '.'))
            .unwrap_or(rest.len());
        let (number, after) = rest.split_at(digits);
        let units = after
            .find(|c: char| c.is_ascii_digit() || c == '.' || c.is_whitespace())
            .unwrap_or(after.len());
        let (unit, after) = after.split_at(units);
        if number.is_empty() {
            return Err(value_error(format!(
                "expected a number before {unit:?} {DURATION_HELP}"
            )));
        }
        let nanos_per: u128 = match unit {
            "ns" => 1,
            "us" | "µs" => 1_000,
            "ms" => 1_000_000,
            "s" => 1_000_000_000,
            "m" => 60_000_000_000,
            "h" => 3_600_000_000_000,
            "" => {
                return Err(value_error(format!(
                    "{number:?} has no unit {DURATION_HELP}"
                )))
            }
            other => {
                return Err(value_error(format!(
                    "unknown unit {other:?} {DURATION_HELP}"
                )))
            }
        };
        let (whole, fraction) = number.split_once('.').unwrap_or((number, ""));
        if whole.is_empty() && fraction.is_empty() || fraction.contains('.') {
            return Err(value_error(format!(
                "{number:?} is not a number {DURATION_HELP}"
            )));
        }
        let whole: u128 = if whole.is_empty() {
            0
        } else {
            whole.parse().map_err(|_| too_large())?
        };
        let mut part = whole.checked_mul(nanos_per).ok_or_else(too_large)?;
        // The fraction, exact to the nanosecond (digits beyond are dropped).
        let mut scale = nanos_per;
        for digit in fraction.bytes() {
            scale /= 10;
            part += u128::from(digit - b'0') * scale;
        }
        total = total.checked_add(part).ok_or_else(too_large)?;
        rest = after.trim_start();
    }
    let secs = u64::try_from(total / 1_000_000_000).map_err(|_| too_large())?;
    // The remainder is below 10^9 and fits.
    let nanos = (total % 1_000_000_000) as u32;
    Ok(Duration::new(secs, nanos))
}

/// Parses `true`/`false`, `1`/`0`, `yes`/`no`, `on`/`off` (any case).
pub(crate) fn parse_bool(text: &str) -> Result<bool, ValueError> {
    match text.trim().to_ascii_lowercase().as_str() {
        "true" | "1" | "yes" | "on" => Ok(true),
        "false" | "0" | "no" | "off" => Ok(false),
        _ => Err(value_error(
            "not a boolean (true/false, 1/0, yes/no, on/off)",
        )),
    }
}

#[cfg(feature = "serde")]
mod de {
    //! `Deserialize` for [`Settings`] by hand: every key's error names the key and the value,
    //! and no derive macro is needed (serde itself is already in every actix-web build).

    use std::{fmt, path::PathBuf, time::Duration};

    use serde::de::{self, Deserializer, IgnoredAny, MapAccess, Visitor};

    use super::{parse_bool, parse_duration, Settings, DURATION_HELP, KEYS};

    #[cfg_attr(docsrs, doc(cfg(feature = "serde")))]
    impl<'de> serde::Deserialize<'de> for Settings {
        fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
            deserializer.deserialize_struct("Settings", &KEYS, SettingsVisitor)
        }
    }

    struct SettingsVisitor;

    impl<'de> Visitor<'de> for SettingsVisitor {
        type Value = Settings;

        fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            f.write_str("a map of actix-graceful settings")
        }

        fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Settings, A::Error> {
            let mut settings = Settings::default();
            let mut seen = [false; KEYS.len()];
            while let Some(key) = map.next_key::<Key>()? {
                let Key(Some(i)) = key else {
                    map.next_value::<IgnoredAny>()?;
                    continue;
                };
                if seen[i] {
                    return Err(de::Error::duplicate_field(KEYS[i]));
                }
                seen[i] = true;
                match KEYS[i] {
                    "pid_file" => settings.pid_file = Some(map.next_value::<PathBuf>()?),
                    "keeper_mode" => {
                        settings.keeper_mode = Some(map.next_value_seed(Value::bool(KEYS[i]))?);
                    }
                    key => {
                        let d = map.next_value_seed(Value::duration(key))?;
                        match key {
                            "upgrade_timeout" => settings.upgrade_timeout = Some(d),
                            "drain_timeout" => settings.drain_timeout = Some(d),
                            "shutdown_timeout" => settings.shutdown_timeout = Some(d),
                            _ => settings.pre_stop_delay = Some(d),
                        }
                    }
                }
            }
            Ok(settings)
        }
    }

    /// A key: the index into [`KEYS`], `None` for one that is not ours.
    struct Key(Option<usize>);

    impl<'de> serde::Deserialize<'de> for Key {
        fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
            struct KeyVisitor;
            impl Visitor<'_> for KeyVisitor {
                type Value = Key;
                fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                    f.write_str("a setting name")
                }
                fn visit_str<E: de::Error>(self, v: &str) -> Result<Key, E> {
                    Ok(Key(KEYS.iter().position(|k| *k == v)))
                }
            }
            deserializer.deserialize_identifier(KeyVisitor)
        }
    }

    /// The value of `key`: a duration (text, or the number 0) or a boolean (a bool, or text
    /// that [`parse_bool`] takes), with errors naming the key and the value.
    struct Value<T> {
        key: &'static str,
        parse: fn(&str) -> Result<T, super::ValueError>,
        from_bool: Option<fn(bool) -> T>,
        from_zero: Option<T>,
    }

    impl Value<Duration> {
        fn duration(key: &'static str) -> Self {
            Value {
                key,
                parse: parse_duration,
                from_bool: None,
                from_zero: Some(Duration::ZERO),
            }
        }
    }

    impl Value<bool> {
        fn bool(key: &'static str) -> Self {
            Value {
                key,
                parse: parse_bool,
                from_bool: Some(|b| b),
                from_zero: None,
            }
        }
    }

    impl<'de, T> de::DeserializeSeed<'de> for Value<T> {
        type Value = T;
        fn deserialize<D: Deserializer<'de>>(self, deserializer: D) -> Result<T, D::Error> {
            deserializer.deserialize_any(self)
        }
    }

    /// The error for `key`'s `value`.
    fn bad<E: de::Error>(key: &str, value: &dyn fmt::Debug, why: &dyn fmt::Display) -> E {
        E::custom(format_args!("{key}: {value:?}: {why}"))
    }

    impl<T> Visitor<'_> for Value<T> {
        type Value = T;

        fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            if self.from_bool.is_some() {
                write!(f, "{}: a boolean", self.key)
            } else {
                write!(f, "{}: a duration as text {DURATION_HELP}", self.key)
            }
        }

        fn visit_str<E: de::Error>(self, v: &str) -> Result<T, E> {
            (self.parse)(v).map_err(|why| bad(self.key, &v, &why))
        }

        fn visit_bool<E: de::Error>(self, v: bool) -> Result<T, E> {
            match self.from_bool {
                Some(from) => Ok(from(v)),
                None => Err(bad(
                    self.key,
                    &v,
                    &format_args!("not a duration {DURATION_HELP}"),
                )),
            }
        }

        fn visit_u64<E: de::Error>(self, v: u64) -> Result<T, E> {
            if let Some(from) = self.from_bool {
                return match v {
                    0 | 1 => Ok(from(v == 1)),
                    _ => Err(bad(self.key, &v, &"not a boolean")),
                };
            }
            match (v, self.from_zero) {
                (0, Some(zero)) => Ok(zero),
                _ => Err(bad(
                    self.key,
                    &v,
                    &format_args!("a number without a unit {DURATION_HELP}"),
                )),
            }
        }

        fn visit_i64<E: de::Error>(self, v: i64) -> Result<T, E> {
            match u64::try_from(v) {
                Ok(v) => self.visit_u64(v),
                Err(_) => Err(bad(self.key, &v, &"negative")),
            }
        }

        fn visit_f64<E: de::Error>(self, v: f64) -> Result<T, E> {
            Err(bad(
                self.key,
                &v,
                &format_args!("a number without a unit {DURATION_HELP}"),
            ))
        }
    }
}

#[cfg(test)]
mod tests {
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
                ("generation", "3"),
            ];
            let s = Settings::deserialize(MapDeserializer::<_, serde::de::value::Error>::new(
                vars.into_iter(),
            ))
            .unwrap();
            assert_eq!(s.keeper_mode, Some(false));
            assert_eq!(s.pre_stop_delay, Some(Duration::from_millis(1500)));
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
}
