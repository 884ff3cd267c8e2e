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
                        "probation" => settings.probation = Some(d),
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
