//! Locale-aware formatting of dates shown in emails (the `date` template filter).
//!
//! chrono's `%B` only knows English month names (its localisation sits behind an
//! unstable feature), so month names for the other shipped languages are kept
//! here. The date is shown in the offset the RFC 3339 string carries: the daemon
//! stores UTC, and a calendar date is what a reader needs from "expires on".

use chrono::{DateTime, Datelike};

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
/// * `fr-*`: `29 novembre 2026` (`1er` on the first of the month)
/// * `zh-*`: `2026年11月29日`
pub fn format_date(rfc3339: &str, locale: &str) -> Result<String, chrono::ParseError> {
    let dt = DateTime::parse_from_rfc3339(rfc3339.trim())?;
    let (year, month0, day) = (dt.year(), dt.month0() as usize, dt.day());
    let tag = locale.replace('_', "-").to_ascii_lowercase();
    let language = tag.split('-').next().unwrap_or_default();
    Ok(match language {
        "fr" if day == 1 => format!("1er {} {year}", FR_MONTHS[month0]),
        "fr" => format!("{day} {} {year}", FR_MONTHS[month0]),
        "zh" => format!("{year}年{}月{day}日", month0 + 1),
        "en" if tag.split('-').nth(1).is_some_and(|region| {
            BRITISH_ENGLISH_REGIONS
                .iter()
                .any(|r| r.eq_ignore_ascii_case(region))
        }) =>
        {
            format!("{day} {} {year}", EN_MONTHS[month0])
        }
        _ => format!("{} {day}, {year}", EN_MONTHS[month0]),
    })
}

#[cfg(test)]
mod tests {
    use super::format_date;

    #[test]
    fn formats_per_locale() {
        let ts = "2026-11-29T10:15:00Z";
        assert_eq!(format_date(ts, "en-US").unwrap(), "November 29, 2026");
        assert_eq!(format_date(ts, "en-GB").unwrap(), "29 November 2026");
        assert_eq!(format_date(ts, "fr-CA").unwrap(), "29 novembre 2026");
        assert_eq!(format_date(ts, "zh-TW").unwrap(), "2026年11月29日");
        assert_eq!(format_date(ts, "de-DE").unwrap(), "November 29, 2026");
        assert_eq!(
            format_date("2026-03-01T00:00:00+01:00", "fr-FR").unwrap(),
            "1er mars 2026"
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
            ("fr-FR", "1er février 2027", "31 décembre 2026"),
            ("fr-CA", "1er février 2027", "31 décembre 2026"),
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
    }
}
