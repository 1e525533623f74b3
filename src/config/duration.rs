//! Go `time.ParseDuration` syntax, used by every duration-valued etcd flag.
//!
//! A duration is an optional sign followed by one or more `<decimal><unit>` terms, e.g. `"5s"`,
//! `"100ms"`, `"1h30m"`, `"1.5s"`, `"2h45m0.5s"`. Units: `ns`, `us` (also `µs`, `μs`), `ms`, `s`,
//! `m`, `h`. A bare `"0"` is the only value allowed without a unit. The algorithm follows Go's
//! `time/format.go` step by step so that the same strings are accepted and rejected, with the
//! same error texts.

use std::time::Duration;

/// Nanoseconds in one Go `time.Duration` range: Go durations are `int64` nanoseconds, so a
/// positive duration may not exceed `i64::MAX` ns (about 292 years).
const MAX_NANOS: u64 = i64::MAX as u64;

/// Why a duration string was rejected. `Display` gives Go's error text, e.g.
/// `time: unknown unit "x" in duration "5x"`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DurationError {
    /// Malformed or out of range (Go: `time: invalid duration "<s>"`).
    #[error("time: invalid duration {}", go_quote(.0))]
    Invalid(String),
    /// A number without a unit (Go: `time: missing unit in duration "<s>"`).
    #[error("time: missing unit in duration {}", go_quote(.0))]
    MissingUnit(String),
    /// An unknown unit (Go: `time: unknown unit "<u>" in duration "<s>"`).
    #[error("time: unknown unit {} in duration {}", go_quote(.unit), go_quote(.input))]
    UnknownUnit {
        /// The unit as written.
        unit: String,
        /// The whole input.
        input: String,
    },
    /// A negative duration. Go accepts these, but no etcd duration flag gives them a meaning
    /// and `std::time::Duration` cannot hold one, so Mainstay rejects them.
    #[error("time: negative duration {} is not supported", go_quote(.0))]
    Negative(String),
}

/// Parses a Go duration string such as `"1h30m"` or `"1.5s"`.
///
/// # Errors
/// Returns [`DurationError`] for anything Go's `time.ParseDuration` rejects, and for negative
/// durations other than `-0`.
pub fn parse_go_duration(input: &str) -> Result<Duration, DurationError> {
    let invalid = || DurationError::Invalid(input.to_owned());
    let mut s = input;
    let mut negative = false;
    if let Some(rest) = s.strip_prefix('-') {
        negative = true;
        s = rest;
    } else if let Some(rest) = s.strip_prefix('+') {
        s = rest;
    }
    if s == "0" {
        return Ok(Duration::ZERO);
    }
    if s.is_empty() {
        return Err(invalid());
    }
    let mut total: u64 = 0;
    while !s.is_empty() {
        // The next character must be [0-9.].
        if !s.starts_with(|c: char| c == '.' || c.is_ascii_digit()) {
            return Err(invalid());
        }
        // Consume [0-9]*.
        let before = s.len();
        let (whole, rest) = leading_int(s).ok_or_else(invalid)?;
        s = rest;
        let had_whole = before != s.len();
        // Consume (\.[0-9]*)?.
        let (mut fraction, mut scale, mut had_fraction) = (0u64, 1f64, false);
        if let Some(rest) = s.strip_prefix('.') {
            let before = rest.len();
            let (f, sc, rest) = leading_fraction(rest);
            (fraction, scale, s) = (f, sc, rest);
            had_fraction = before != s.len();
        }
        if !had_whole && !had_fraction {
            // No digits at all, e.g. "." or ".s".
            return Err(invalid());
        }
        // Consume the unit: everything up to the next digit or '.'.
        let unit_len = s
            .find(|c: char| c == '.' || c.is_ascii_digit())
            .unwrap_or(s.len());
        if unit_len == 0 {
            return Err(DurationError::MissingUnit(input.to_owned()));
        }
        let (unit, rest) = s.split_at(unit_len);
        s = rest;
        let unit_nanos = unit_nanos(unit).ok_or_else(|| DurationError::UnknownUnit {
            unit: unit.to_owned(),
            input: input.to_owned(),
        })?;
        if whole > (1u64 << 63) / unit_nanos {
            return Err(invalid());
        }
        let mut value = whole * unit_nanos;
        if fraction > 0 {
            // Go converts through float64 here; do the same so rounding matches.
            value += (fraction as f64 * (unit_nanos as f64 / scale)) as u64;
            if value > 1u64 << 63 {
                return Err(invalid());
            }
        }
        total = total.checked_add(value).ok_or_else(invalid)?;
        if total > 1u64 << 63 {
            return Err(invalid());
        }
    }
    if negative {
        if total == 0 {
            return Ok(Duration::ZERO);
        }
        return Err(DurationError::Negative(input.to_owned()));
    }
    if total > MAX_NANOS {
        return Err(invalid());
    }
    Ok(Duration::from_nanos(total))
}

/// Nanoseconds per unit, as in Go's `unitMap`.
fn unit_nanos(unit: &str) -> Option<u64> {
    Some(match unit {
        "ns" => 1,
        "us" | "\u{b5}s" | "\u{3bc}s" => 1_000,
        "ms" => 1_000_000,
        "s" => 1_000_000_000,
        "m" => 60 * 1_000_000_000,
        "h" => 60 * 60 * 1_000_000_000,
        _ => return None,
    })
}

/// Consumes leading decimal digits. Returns `None` on overflow past 2^63 (Go's
/// `errLeadingInt`).
fn leading_int(s: &str) -> Option<(u64, &str)> {
    let (digits, rest) = split_digits(s);
    let mut x: u64 = 0;
    for b in digits.bytes() {
        if x > (1u64 << 63) / 10 {
            return None;
        }
        x = x * 10 + u64::from(b - b'0');
        if x > 1u64 << 63 {
            return None;
        }
    }
    Some((x, rest))
}

/// Splits `s` after its leading ASCII digits.
fn split_digits(s: &str) -> (&str, &str) {
    let n = s.bytes().take_while(u8::is_ascii_digit).count();
    s.split_at_checked(n).unwrap_or((s, ""))
}

/// Consumes the digits after a decimal point. Digits beyond what fits are consumed but
/// ignored, as in Go's `leadingFraction`. Returns (value, scale, rest).
fn leading_fraction(s: &str) -> (u64, f64, &str) {
    let (digits, rest) = split_digits(s);
    let (mut x, mut scale, mut overflow) = (0u64, 1f64, false);
    for b in digits.bytes() {
        if overflow {
            continue;
        }
        if x > (i64::MAX as u64) / 10 {
            overflow = true;
            continue;
        }
        let y = x * 10 + u64::from(b - b'0');
        if y > i64::MAX as u64 {
            overflow = true;
            continue;
        }
        x = y;
        scale *= 10.0;
    }
    (x, scale, rest)
}

/// Quotes a string the way Go's `%q` / `strconv.Quote` does for printable ASCII and common
/// escapes, so error texts match Go's byte for byte in the usual cases.
pub fn go_quote(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 2);
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            c if (c as u32) < 0x20 || c as u32 == 0x7f => out.push_str(&format!("\\x{:02x}", c as u32)),
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ok(s: &str) -> Duration {
        parse_go_duration(s).unwrap_or_else(|e| panic!("{s}: {e}"))
    }

    #[test]
    fn simple_units_parse_like_go() {
        assert_eq!(ok("5s"), Duration::from_secs(5));
        assert_eq!(ok("100ms"), Duration::from_millis(100));
        assert_eq!(ok("10m"), Duration::from_secs(600));
        assert_eq!(ok("2h"), Duration::from_secs(7200));
        assert_eq!(ok("7ns"), Duration::from_nanos(7));
        assert_eq!(ok("3us"), Duration::from_micros(3));
        assert_eq!(ok("3\u{b5}s"), Duration::from_micros(3));
        assert_eq!(ok("3\u{3bc}s"), Duration::from_micros(3));
    }

    #[test]
    fn compound_and_fractional_durations_parse_like_go() {
        assert_eq!(ok("1h30m"), Duration::from_secs(5400));
        assert_eq!(ok("1.5s"), Duration::from_millis(1500));
        assert_eq!(ok(".5s"), Duration::from_millis(500));
        assert_eq!(ok("1.s"), Duration::from_secs(1));
        assert_eq!(
            ok("2h45m0.5s"),
            Duration::from_millis((2 * 3600 + 45 * 60) * 1000 + 500)
        );
        assert_eq!(ok("1m0s"), Duration::from_secs(60));
        assert_eq!(ok("+5s"), Duration::from_secs(5));
        // Go keeps 0.1 + 0.2 exact because each term is scaled to integer nanoseconds.
        assert_eq!(ok("0.1s0.2s"), Duration::from_millis(300));
    }

    #[test]
    fn bare_zero_is_the_only_unitless_value() {
        assert_eq!(ok("0"), Duration::ZERO);
        assert_eq!(ok("-0"), Duration::ZERO);
        assert_eq!(ok("+0"), Duration::ZERO);
        assert_eq!(ok("0s"), Duration::ZERO);
        assert_eq!(
            parse_go_duration("5").unwrap_err().to_string(),
            "time: missing unit in duration \"5\""
        );
        assert_eq!(
            parse_go_duration("00").unwrap_err().to_string(),
            "time: missing unit in duration \"00\""
        );
    }

    #[test]
    fn malformed_durations_give_go_error_texts() {
        assert_eq!(
            parse_go_duration("").unwrap_err().to_string(),
            "time: invalid duration \"\""
        );
        assert_eq!(
            parse_go_duration("s").unwrap_err().to_string(),
            "time: invalid duration \"s\""
        );
        assert_eq!(
            parse_go_duration(".s").unwrap_err().to_string(),
            "time: invalid duration \".s\""
        );
        assert_eq!(
            parse_go_duration("-").unwrap_err().to_string(),
            "time: invalid duration \"-\""
        );
        assert_eq!(
            parse_go_duration("5x").unwrap_err().to_string(),
            "time: unknown unit \"x\" in duration \"5x\""
        );
        assert_eq!(
            parse_go_duration("1S").unwrap_err().to_string(),
            "time: unknown unit \"S\" in duration \"1S\""
        );
        assert!(matches!(
            parse_go_duration("5 s"),
            Err(DurationError::UnknownUnit { .. })
        ));
    }

    #[test]
    fn durations_beyond_int64_nanoseconds_are_rejected() {
        assert_eq!(ok("2562047h"), Duration::from_secs(2_562_047 * 3600));
        assert!(matches!(
            parse_go_duration("2562048h"),
            Err(DurationError::Invalid(_))
        ));
        assert!(matches!(
            parse_go_duration("9223372036854775808ns"),
            Err(DurationError::Invalid(_))
        ));
        assert!(matches!(
            parse_go_duration("99999999999999999999s"),
            Err(DurationError::Invalid(_))
        ));
    }

    #[test]
    fn negative_durations_are_rejected() {
        assert!(matches!(
            parse_go_duration("-5s"),
            Err(DurationError::Negative(_))
        ));
    }

    #[test]
    fn go_quote_escapes_like_strconv_quote() {
        assert_eq!(go_quote("a\"b\\c\n"), "\"a\\\"b\\\\c\\n\"");
        assert_eq!(go_quote("\u{1}"), "\"\\x01\"");
    }
}
