//! The small value syntaxes of the configuration file: durations (`30s`), byte
//! sizes (`64KiB`), send rates (`50/s`) and rate limits (`5 per 24h`), each with
//! the formatter that writes it back for `invited check-config`.

use std::fmt;
use std::time::Duration;

use super::{RateLimit, SendRate};

/// What the operator is told whenever a duration does not parse; the examples
/// are the whole syntax, so they are the most useful hint.
const DURATION_HINT: &str = "use 30s, 10m, 24h, 7d";

/// A duration that is not written as `<whole number><unit>`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ParseDurationError {
    input: String,
}

impl fmt::Display for ParseDurationError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:?} is not a duration ({DURATION_HINT})", self.input)
    }
}

impl std::error::Error for ParseDurationError {}

/// Parses `500ms`, `30s`, `10m`, `24h` or `7d`: one whole number and one unit.
///
/// Compound forms (`1h30m`) and fractions are refused rather than guessed at:
/// every setting in docs/configuration.md fits a single unit, and a strict syntax keeps
/// `check-config` output and the file the operator wrote identical.
pub fn parse_duration(raw: &str) -> Result<Duration, ParseDurationError> {
    let error = || ParseDurationError {
        input: raw.to_owned(),
    };
    let text = raw.trim();
    let split = text.find(|c: char| !c.is_ascii_digit()).ok_or_else(error)?;
    let (digits, unit) = text.split_at(split);
    if digits.is_empty() {
        return Err(error());
    }
    let value: u64 = digits.parse().map_err(|_| error())?;
    let millis_per_unit: u64 = match unit {
        "ms" => 1,
        "s" => 1_000,
        "m" => 60_000,
        "h" => 3_600_000,
        "d" => 86_400_000,
        _ => return Err(error()),
    };
    let millis = value.checked_mul(millis_per_unit).ok_or_else(error)?;
    Ok(Duration::from_millis(millis))
}

/// Writes a duration in the largest unit that represents it exactly, so that
/// `parse_duration(&format_duration(d)) == d` for whole milliseconds.
pub fn format_duration(duration: Duration) -> String {
    let millis = duration.as_millis();
    if millis == 0 {
        return "0s".to_owned();
    }
    for (unit, size) in [
        ("d", 86_400_000),
        ("h", 3_600_000),
        ("m", 60_000),
        ("s", 1_000),
    ] {
        if millis.is_multiple_of(size) {
            return format!("{}{unit}", millis / size);
        }
    }
    format!("{millis}ms")
}

/// Parses a byte count: `65536`, `512B`, `64KiB`, `1MiB`, `1GiB`, or the
/// decimal `KB`/`MB`/`GB` (units are case-insensitive).
pub(super) fn parse_byte_size(raw: &str) -> Result<usize, String> {
    let error = || format!("{raw:?} is not a size (use 65536, 64KiB, 1MiB)");
    let text = raw.trim();
    let split = text
        .find(|c: char| !c.is_ascii_digit())
        .unwrap_or(text.len());
    let (digits, unit) = text.split_at(split);
    if digits.is_empty() {
        return Err(error());
    }
    let value: u64 = digits.parse().map_err(|_| error())?;
    let multiplier: u64 = match unit.trim().to_ascii_lowercase().as_str() {
        "" | "b" => 1,
        "kib" => 1 << 10,
        "mib" => 1 << 20,
        "gib" => 1 << 30,
        "kb" => 1_000,
        "mb" => 1_000_000,
        "gb" => 1_000_000_000,
        _ => return Err(error()),
    };
    value
        .checked_mul(multiplier)
        .and_then(|bytes| usize::try_from(bytes).ok())
        .ok_or_else(error)
}

/// Writes a byte count in the largest binary unit that represents it exactly.
pub(super) fn format_byte_size(bytes: usize) -> String {
    for (unit, size) in [("GiB", 1usize << 30), ("MiB", 1 << 20), ("KiB", 1 << 10)] {
        if bytes != 0 && bytes.is_multiple_of(size) {
            return format!("{}{unit}", bytes / size);
        }
    }
    bytes.to_string()
}

/// Parses `50/s`, `10/m`, `100/h`, `1000/d`, or a count over any duration
/// (`5/10s`). The count must be at least 1 and the period longer than zero.
pub(super) fn parse_send_rate(raw: &str) -> Result<SendRate, String> {
    let error = || format!("{raw:?} is not a rate (use 50/s, 10/m, 100/h)");
    let (count, per) = raw.trim().split_once('/').ok_or_else(error)?;
    let count = parse_count(count.trim()).ok_or_else(error)?;
    let per = per.trim();
    // A bare unit means "one of it": `50/s` reads as fifty per second.
    let per = if per.bytes().all(|b| b.is_ascii_alphabetic()) {
        parse_duration(&format!("1{per}"))
    } else {
        parse_duration(per)
    }
    .map_err(|_| error())?;
    if per.is_zero() {
        return Err(format!("{raw:?} has a period of zero"));
    }
    Ok(SendRate { count, per })
}

/// Parses `5 per 24h`.
pub(super) fn parse_rate_limit(raw: &str) -> Result<RateLimit, String> {
    let error = || format!("{raw:?} is not a rate limit (use 5 per 24h)");
    let mut words = raw.split_whitespace();
    let (Some(count), Some("per"), Some(window), None) =
        (words.next(), words.next(), words.next(), words.next())
    else {
        return Err(error());
    };
    let count = parse_count(count).ok_or_else(error)?;
    let window = parse_duration(window).map_err(|_| error())?;
    if window.is_zero() {
        return Err(format!("{raw:?} has a window of zero"));
    }
    Ok(RateLimit { count, window })
}

/// A count of events: a whole number of at least 1.
fn parse_count(raw: &str) -> Option<u32> {
    raw.parse::<u32>().ok().filter(|&count| count >= 1)
}

impl fmt::Display for SendRate {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let per = format_duration(self.per);
        // Write `50/s` rather than `50/1s`, mirroring what the parser accepts.
        match per.strip_prefix('1') {
            Some(unit) if unit.bytes().all(|b| b.is_ascii_alphabetic()) => {
                write!(f, "{}/{unit}", self.count)
            }
            _ => write!(f, "{}/{per}", self.count),
        }
    }
}

impl fmt::Display for RateLimit {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} per {}", self.count, format_duration(self.window))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn config_parses_durations_in_every_unit() {
        for (raw, want) in [
            ("500ms", Duration::from_millis(500)),
            ("30s", Duration::from_secs(30)),
            ("10m", Duration::from_secs(600)),
            ("24h", Duration::from_secs(86_400)),
            ("7d", Duration::from_secs(7 * 86_400)),
            ("0s", Duration::ZERO),
            (" 5s ", Duration::from_secs(5)),
        ] {
            assert_eq!(parse_duration(raw), Ok(want), "{raw:?}");
        }
    }

    #[test]
    fn config_refuses_malformed_durations() {
        for raw in [
            "",
            "7",
            "7x",
            "d",
            "-1s",
            "1.5h",
            "1h30m",
            "7 d",
            "7D",
            "s5",
            "99999999999999999999d",
        ] {
            assert!(parse_duration(raw).is_err(), "{raw:?}");
        }
        assert_eq!(
            parse_duration("7x").unwrap_err().to_string(),
            r#""7x" is not a duration (use 30s, 10m, 24h, 7d)"#
        );
    }

    #[test]
    fn config_formats_durations_back_to_parseable_text() {
        for (raw, want) in [
            ("500ms", "500ms"),
            ("1500ms", "1500ms"),
            ("60s", "1m"),
            ("90s", "90s"),
            ("24h", "1d"),
            ("0ms", "0s"),
        ] {
            let duration = parse_duration(raw).unwrap();
            assert_eq!(format_duration(duration), want);
            assert_eq!(parse_duration(want).unwrap(), duration);
        }
    }

    #[test]
    fn config_parses_byte_sizes() {
        for (raw, want) in [
            ("65536", 65_536),
            ("64KiB", 65_536),
            ("64kib", 65_536),
            ("1MiB", 1 << 20),
            ("1 MiB", 1 << 20),
            ("2GiB", 2 << 30),
            ("10KB", 10_000),
            ("512B", 512),
        ] {
            assert_eq!(parse_byte_size(raw), Ok(want), "{raw:?}");
        }
        for raw in ["", "KiB", "1.5MiB", "64 kilobytes", "-1"] {
            assert!(parse_byte_size(raw).is_err(), "{raw:?}");
        }
        assert_eq!(format_byte_size(65_536), "64KiB");
        assert_eq!(format_byte_size(1 << 20), "1MiB");
        assert_eq!(format_byte_size(1000), "1000");
        assert_eq!(format_byte_size(0), "0");
    }

    #[test]
    fn config_parses_send_rates() {
        let rate = |count, secs| SendRate {
            count,
            per: Duration::from_secs(secs),
        };
        assert_eq!(parse_send_rate("50/s"), Ok(rate(50, 1)));
        assert_eq!(parse_send_rate("10/m"), Ok(rate(10, 60)));
        assert_eq!(parse_send_rate("5 / 10s"), Ok(rate(5, 10)));
        for raw in ["", "50", "0/s", "50/x", "50/0s", "-1/s", "/s"] {
            assert!(parse_send_rate(raw).is_err(), "{raw:?}");
        }
        assert_eq!(rate(50, 1).to_string(), "50/s");
        assert_eq!(rate(10, 60).to_string(), "10/m");
        assert_eq!(rate(5, 10).to_string(), "5/10s");
    }

    #[test]
    fn config_parses_rate_limits() {
        assert_eq!(
            parse_rate_limit("5 per 24h"),
            Ok(RateLimit {
                count: 5,
                window: Duration::from_secs(86_400)
            })
        );
        for raw in [
            "",
            "5",
            "5 per",
            "5 every 24h",
            "0 per 24h",
            "5 per 0s",
            "5 per 24h x",
        ] {
            assert!(parse_rate_limit(raw).is_err(), "{raw:?}");
        }
        assert_eq!(
            parse_rate_limit("5 per 90m").unwrap().to_string(),
            "5 per 90m"
        );
    }
}
