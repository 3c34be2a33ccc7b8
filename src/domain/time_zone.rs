//! `TimeZone`: an IANA time zone name (`America/Los_Angeles`) the zone
//! database knows, in its canonical spelling. Emails write the expiry in the
//! recipient's zone (R41); a name the database does not know is refused at
//! the edge rather than shown as a wrong time later.

use std::fmt;

use super::DomainError;

#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct TimeZone(chrono_tz::Tz);

impl TimeZone {
    /// The zone `raw` names, matched exactly as the database spells it
    /// (trimmed); `Etc/UTC`, `UTC` and the legacy links (`US/Pacific`) count.
    pub fn parse(raw: &str) -> Result<TimeZone, String> {
        let name = raw.trim();
        name.parse::<chrono_tz::Tz>().map(TimeZone).map_err(|_| {
            format!("{name:?} is not an IANA time zone (like America/Los_Angeles or Europe/Paris)")
        })
    }

    pub fn parse_field(raw: &str, field: &str) -> Result<TimeZone, DomainError> {
        TimeZone::parse(raw).map_err(|m| DomainError::validation(field, m))
    }

    pub fn tz(&self) -> chrono_tz::Tz {
        self.0
    }

    pub fn as_str(&self) -> &'static str {
        self.0.name()
    }
}

impl fmt::Display for TimeZone {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl fmt::Debug for TimeZone {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "TimeZone({})", self.as_str())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn known_zones_parse_and_unknown_ones_are_refused() {
        for name in [
            "America/Los_Angeles",
            "Europe/Paris",
            "Asia/Taipei",
            "UTC",
            "Etc/UTC",
        ] {
            assert_eq!(TimeZone::parse(name).unwrap().as_str(), name);
        }
        assert_eq!(
            TimeZone::parse(" Europe/Paris ").unwrap().as_str(),
            "Europe/Paris"
        );
        for bad in [
            "",
            "Mars/Olympus_Mons",
            "PST8",
            "america/los_angeles",
            "+02:00",
        ] {
            assert!(TimeZone::parse(bad).is_err(), "{bad:?}");
        }
        let e = TimeZone::parse_field("Nowhere", "time_zone").unwrap_err();
        assert!(e.to_string().contains("time_zone"), "{e}");
    }
}
