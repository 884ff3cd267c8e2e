//! Configuration from where applications keep it: [`Settings`] (deserializable from the app's
//! own configuration with the `serde` feature) and the environment
//! ([`Graceful::with_env`](crate::Graceful::with_env)).
//! Everything here goes through `Graceful`'s public builder methods. Parsing of the values
//! (durations with units, booleans) is in `parse`, serde's `Deserialize` in `de`.

use std::{ffi::OsString, fmt, io, path::PathBuf, time::Duration};

#[cfg(feature = "serde")]
mod de;
mod parse;
#[cfg(test)]
mod tests;

#[cfg(feature = "serde")]
use parse::DURATION_HELP;
use parse::{parse_bool, parse_duration, ValueError};

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
/// | `probation` | [`probation`](crate::Graceful::probation) | `ACTIX_GRACEFUL_PROBATION` |
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
    /// How long a new build stays on probation (zero: none).
    pub probation: Option<Duration>,
    /// Where to write the serving process's pid.
    pub pid_file: Option<PathBuf>,
    /// Keeper mode on or off.
    pub keeper_mode: Option<bool>,
}

/// The prefix of the environment variables read by [`Settings::from_env`].
const PREFIX: &str = "ACTIX_GRACEFUL_";

/// The keys, in the order of the fields (serde keys; upper-cased after [`PREFIX`] in the
/// environment).
const KEYS: [&str; 7] = [
    "upgrade_timeout",
    "drain_timeout",
    "shutdown_timeout",
    "pre_stop_delay",
    "probation",
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
            // Returned, not logged: the caller reports it once.
            let invalid = |why: &dyn fmt::Display| {
                io::Error::new(io::ErrorKind::InvalidInput, format!("{var}={raw:?}: {why}"))
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
            "probation" => self.probation = Some(parse_duration(text)?),
            "pid_file" => self.pid_file = Some(PathBuf::from(text)),
            "keeper_mode" => self.keeper_mode = Some(parse_bool(text)?),
            _ => {}
        }
        Ok(())
    }
}
