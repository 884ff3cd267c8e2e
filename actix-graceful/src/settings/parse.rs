//! The values' syntax, shared by the environment and serde: durations as text with units
//! (`"1m30s"`, `"500ms"`) and booleans (`true`/`1`/`yes`/`on`), with errors that say what is
//! wrong.

use std::{fmt, time::Duration};

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

pub(crate) const DURATION_HELP: &str =
    r#"(e.g. "500ms", "30s", "1m30s"; units ns, us, ms, s, m, h)"#;

/// One `<number><unit>` part of a duration, in nanoseconds.
fn nanos(number: &str, unit: &str) -> Result<u128, ValueError> {
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
    let too_large = || value_error("duration too large");
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
    Ok(part)
}

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
        let part = nanos(number, unit)?;
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
