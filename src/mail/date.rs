//! Locale-aware formatting of the dates and times shown in emails (the `date`
//! and `datetime` template filters).
//!
//! chrono's `%B` only knows English month names (its localisation sits behind an
//! unstable feature), so month names for the other shipped languages are kept
//! here. `date` shows the calendar date in the offset the RFC 3339 string
//! carries; `datetime` (R41) shows date and time in the reader's time zone and
//! names the zone, because "expires on December 9" is a day early or late for
//! most of the world.

use chrono::{DateTime, Datelike, FixedOffset, Offset as _, Timelike};
use chrono_tz::{OffsetName as _, Tz};

use super::templates::BRITISH_ENGLISH_REGIONS;

const EN_MONTHS: [&str; 12] = [
    "January",
    "February",
    "March",
    "April",
    "May",
    "June",
    "July",
    "August",
    "September",
    "October",
    "November",
    "December",
];

const FR_MONTHS: [&str; 12] = [
    "janvier",
    "février",
    "mars",
    "avril",
    "mai",
    "juin",
    "juillet",
    "août",
    "septembre",
    "octobre",
    "novembre",
    "décembre",
];

/// Formats an RFC 3339 timestamp as a calendar date for `locale` (a BCP 47 tag
/// such as `en-US`). Unknown locales get the en-US form rather than an error,
/// matching the template fallback (R25).
///
/// * `en-US` (and other `en`): `November 29, 2026`
/// * `en-GB` and the other regions that write British English (`en-AU`,
///   `en-IE`, `en-IN`, ...; the ones `Templates::resolve_locale` sends to
///   `en-GB`): `29 November 2026`
/// * `fr-*`: `29 novembre 2026` (`1er` on the first of the month), with a
///   no-break space (U+00A0) between the day and the month, which French
///   typography never separates
/// * `zh-*`: `2026年11月29日`
pub fn format_date(rfc3339: &str, locale: &str) -> Result<String, chrono::ParseError> {
    let dt = DateTime::parse_from_rfc3339(rfc3339.trim())?;
    Ok(calendar_date(&dt, Style::of(locale)))
}

/// How a locale writes dates and times.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Style {
    /// `December 8, 2026 at 7:39 PM PST`
    AmericanEnglish,
    /// `8 December 2026 at 19:39 PST`
    BritishEnglish,
    /// `8 décembre 2026 à 19 h 39 UTC−8`
    French,
    /// `2026年12月8日 下午7:39（UTC−8）`
    Chinese,
}

impl Style {
    /// Unknown languages get the en-US form rather than an error, matching
    /// the template fallback (R25).
    fn of(locale: &str) -> Style {
        let tag = locale.replace('_', "-").to_ascii_lowercase();
        let mut subtags = tag.split('-');
        match subtags.next().unwrap_or_default() {
            "fr" => Style::French,
            "zh" => Style::Chinese,
            "en" if subtags.next().is_some_and(|region| {
                BRITISH_ENGLISH_REGIONS
                    .iter()
                    .any(|r| r.eq_ignore_ascii_case(region))
            }) =>
            {
                Style::BritishEnglish
            }
            _ => Style::AmericanEnglish,
        }
    }
}

fn calendar_date<T: chrono::TimeZone>(dt: &DateTime<T>, style: Style) -> String {
    let (year, month0, day) = (dt.year(), dt.month0() as usize, dt.day());
    match style {
        Style::French if day == 1 => format!("1er\u{a0}{} {year}", FR_MONTHS[month0]),
        Style::French => format!("{day}\u{a0}{} {year}", FR_MONTHS[month0]),
        Style::Chinese => format!("{year}年{}月{day}日", month0 + 1),
        Style::BritishEnglish => format!("{day} {} {year}", EN_MONTHS[month0]),
        Style::AmericanEnglish => format!("{} {day}, {year}", EN_MONTHS[month0]),
    }
}

/// Formats an RFC 3339 timestamp as date and time in `zone` (UTC when
/// `None`), followed by the zone, the way `locale` writes them (R41):
///
/// * `en-US` (and other `en`): `December 8, 2026 at 7:39 PM PST`
/// * `en-GB` and the British English regions: `8 December 2026 at 19:39 PST`
/// * `fr-*`: `8 décembre 2026 à 19 h 39 UTC−8`: 24-hour, `h` between hours
///   and minutes, no-break spaces where French never breaks a line (day and
///   month, around `h`, before the zone); the zone as an offset from UTC,
///   because the abbreviations (PST, CET) are English
/// * `zh-*`: `2026年12月8日 下午7:39（UTC−8）`: 上午/下午 before a 12-hour
///   time, the zone as an offset
///
/// English names the zone by its abbreviation when the zone database has a
/// lettered one (PST, CET, GMT), else by its offset (`UTC−3`). The zone UTC
/// itself (and no zone) is written `UTC` in every locale.
pub fn format_datetime(
    rfc3339: &str,
    locale: &str,
    zone: Option<Tz>,
) -> Result<String, chrono::ParseError> {
    let utc = DateTime::parse_from_rfc3339(rfc3339.trim())?;
    let zone = zone.unwrap_or(Tz::UTC);
    let local = utc.with_timezone(&zone);
    let style = Style::of(locale);
    let date = calendar_date(&local, style);
    let offset = local.offset().fix();
    let is_utc = matches!(
        zone,
        Tz::UTC
            | Tz::Etc__UTC
            | Tz::Etc__UCT
            | Tz::UCT
            | Tz::Universal
            | Tz::Etc__Universal
            | Tz::Zulu
            | Tz::Etc__Zulu
    );
    let zone_name = || {
        if is_utc {
            return "UTC".to_string();
        }
        match local.offset().abbreviation() {
            Some(abbr) if abbr.chars().all(|c| c.is_ascii_alphabetic()) => abbr.to_string(),
            _ => utc_offset(offset),
        }
    };
    let as_offset = || {
        if is_utc {
            "UTC".to_string()
        } else {
            utc_offset(offset)
        }
    };
    let (hour, minute) = (local.hour(), local.minute());
    let hour12 = match hour % 12 {
        0 => 12,
        h => h,
    };
    Ok(match style {
        Style::AmericanEnglish => {
            let meridiem = if hour < 12 { "AM" } else { "PM" };
            format!("{date} at {hour12}:{minute:02} {meridiem} {}", zone_name())
        }
        Style::BritishEnglish => format!("{date} at {hour:02}:{minute:02} {}", zone_name()),
        Style::French => format!(
            "{date} à {hour}\u{a0}h\u{a0}{minute:02}\u{a0}{}",
            as_offset()
        ),
        Style::Chinese => {
            let meridiem = if hour < 12 { "上午" } else { "下午" };
            format!("{date} {meridiem}{hour12}:{minute:02}（{}）", as_offset())
        }
    })
}

/// `UTC−8`, `UTC+5:30`, `UTC+0`: the offset as people write it, with a true
/// minus sign (U+2212).
fn utc_offset(offset: FixedOffset) -> String {
    let seconds = offset.local_minus_utc();
    let sign = if seconds < 0 { '\u{2212}' } else { '+' };
    let minutes = seconds.unsigned_abs() / 60;
    match minutes % 60 {
        0 => format!("UTC{sign}{}", minutes / 60),
        m => format!("UTC{sign}{}:{m:02}", minutes / 60),
    }
}

/// The zone database's zone for a stored name; `None` (so UTC) for a name it
/// does not know, e.g. a zone a later database release removed: the email
/// then says UTC, which is true, rather than failing.
pub fn zone_named(name: &str) -> Option<Tz> {
    name.parse().ok()
}

#[cfg(test)]
mod tests {
    use super::{format_date, format_datetime, zone_named};

    #[test]
    fn formats_per_locale() {
        let ts = "2026-11-29T10:15:00Z";
        assert_eq!(format_date(ts, "en-US").unwrap(), "November 29, 2026");
        assert_eq!(format_date(ts, "en-GB").unwrap(), "29 November 2026");
        assert_eq!(format_date(ts, "fr-CA").unwrap(), "29\u{a0}novembre 2026");
        assert_eq!(format_date(ts, "zh-TW").unwrap(), "2026年11月29日");
        assert_eq!(format_date(ts, "de-DE").unwrap(), "November 29, 2026");
        assert_eq!(
            format_date("2026-03-01T00:00:00+01:00", "fr-FR").unwrap(),
            "1er\u{a0}mars 2026"
        );
    }

    /// The five shipped locales (R25), on the first of a month and on a
    /// two-digit day, and the tags that write English the British way.
    #[test]
    fn formats_every_shipped_locale() {
        let first = "2027-02-01T09:00:00Z";
        let late = "2026-12-31T23:59:59Z";
        for (locale, on_first, on_late) in [
            ("en-US", "February 1, 2027", "December 31, 2026"),
            ("en-GB", "1 February 2027", "31 December 2026"),
            ("fr-FR", "1er\u{a0}février 2027", "31\u{a0}décembre 2026"),
            ("fr-CA", "1er\u{a0}février 2027", "31\u{a0}décembre 2026"),
            ("zh-TW", "2027年2月1日", "2026年12月31日"),
        ] {
            assert_eq!(format_date(first, locale).unwrap(), on_first, "{locale}");
            assert_eq!(format_date(late, locale).unwrap(), on_late, "{locale}");
        }
        for locale in ["en-au", "en_IE", "en-IN", "en-NZ", "en-150"] {
            assert_eq!(format_date(late, locale).unwrap(), "31 December 2026");
        }
        assert_eq!(format_date(late, "en-CA").unwrap(), "December 31, 2026");
        assert_eq!(format_date(late, "en").unwrap(), "December 31, 2026");
    }

    #[test]
    fn matches_chrono_english_format() {
        // The brief's reference format for en-US is chrono's "%B %-d, %Y".
        let ts = "2027-01-05T23:59:59-05:00";
        let chrono_form = chrono::DateTime::parse_from_rfc3339(ts)
            .unwrap()
            .format("%B %-d, %Y")
            .to_string();
        assert_eq!(format_date(ts, "en-US").unwrap(), chrono_form);
    }

    #[test]
    fn rejects_non_rfc3339() {
        assert!(format_date("next tuesday", "en-US").is_err());
        assert!(format_datetime("next tuesday", "en-US", None).is_err());
    }

    /// R41, issue 13's case: 2026-12-09 03:39 UTC is still December 8 in Los
    /// Angeles, and each locale says so with the zone; without a zone every
    /// locale writes UTC and says UTC.
    #[test]
    fn datetime_in_the_readers_zone_per_locale() {
        let ts = "2026-12-09T03:39:00+00:00";
        let la = Some(chrono_tz::America::Los_Angeles);
        for (locale, in_la, in_utc) in [
            (
                "en-US",
                "December 8, 2026 at 7:39 PM PST",
                "December 9, 2026 at 3:39 AM UTC",
            ),
            (
                "en-GB",
                "8 December 2026 at 19:39 PST",
                "9 December 2026 at 03:39 UTC",
            ),
            (
                "fr-FR",
                "8\u{a0}décembre 2026 à 19\u{a0}h\u{a0}39\u{a0}UTC\u{2212}8",
                "9\u{a0}décembre 2026 à 3\u{a0}h\u{a0}39\u{a0}UTC",
            ),
            (
                "fr-CA",
                "8\u{a0}décembre 2026 à 19\u{a0}h\u{a0}39\u{a0}UTC\u{2212}8",
                "9\u{a0}décembre 2026 à 3\u{a0}h\u{a0}39\u{a0}UTC",
            ),
            (
                "zh-TW",
                "2026年12月8日 下午7:39（UTC\u{2212}8）",
                "2026年12月9日 上午3:39（UTC）",
            ),
        ] {
            assert_eq!(format_datetime(ts, locale, la).unwrap(), in_la, "{locale}");
            assert_eq!(
                format_datetime(ts, locale, None).unwrap(),
                in_utc,
                "{locale}"
            );
            assert_eq!(
                format_datetime(ts, locale, Some(chrono_tz::UTC)).unwrap(),
                in_utc,
                "{locale}"
            );
        }
    }

    /// Summer time, half-hour offsets, zones without a lettered
    /// abbreviation, midnight and noon, the first of the month in French.
    #[test]
    fn datetime_edge_cases() {
        let summer = "2026-07-01T07:05:00Z";
        assert_eq!(
            format_datetime(summer, "en-US", Some(chrono_tz::America::Los_Angeles)).unwrap(),
            "July 1, 2026 at 12:05 AM PDT"
        );
        assert_eq!(
            format_datetime(summer, "fr-FR", Some(chrono_tz::Europe::Paris)).unwrap(),
            "1er\u{a0}juillet 2026 à 9\u{a0}h\u{a0}05\u{a0}UTC+2"
        );
        assert_eq!(
            format_datetime(summer, "en-GB", Some(chrono_tz::Europe::London)).unwrap(),
            "1 July 2026 at 08:05 BST"
        );
        assert_eq!(
            format_datetime(summer, "en-US", Some(chrono_tz::Asia::Kolkata)).unwrap(),
            "July 1, 2026 at 12:35 PM IST"
        );
        assert_eq!(
            format_datetime(summer, "zh-TW", Some(chrono_tz::Asia::Kolkata)).unwrap(),
            "2026年7月1日 下午12:35（UTC+5:30）"
        );
        // The zone database has no letters for São Paulo: the offset it is.
        assert_eq!(
            format_datetime(summer, "en-US", Some(chrono_tz::America::Sao_Paulo)).unwrap(),
            "July 1, 2026 at 4:05 AM UTC\u{2212}3"
        );
        assert_eq!(
            format_datetime("2026-07-01T12:00:00Z", "en-US", None).unwrap(),
            "July 1, 2026 at 12:00 PM UTC"
        );
        assert_eq!(
            zone_named("America/Los_Angeles"),
            Some(chrono_tz::America::Los_Angeles)
        );
        assert_eq!(zone_named("Atlantis/Capital"), None);
    }
}
