//! `Email`: an address parsed once at the edge. The parse is deliberately strict
//! about anything that could smuggle a header (R30): no whitespace, no control
//! characters, no angle brackets or commas.

use std::fmt;

use super::DomainError;

/// A syntactically valid email address, stored lower-cased so that uniqueness
/// ("one pending invitation per address", R13) is case-insensitive.
#[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord, serde::Serialize)]
#[serde(transparent)]
pub struct Email(String);

impl Email {
    pub fn parse(raw: &str) -> Result<Email, String> {
        if raw.is_empty() {
            return Err("must not be empty".into());
        }
        if raw.len() > 254 {
            return Err("must be at most 254 characters".into());
        }
        if raw
            .chars()
            .any(|c| c.is_control() || c.is_whitespace() || "<>()[],;:\\\"".contains(c))
        {
            return Err("contains a character an address may not hold".into());
        }
        let (local, domain) = raw
            .rsplit_once('@')
            .ok_or_else(|| "must contain @".to_string())?;
        if local.is_empty() || local.len() > 64 || local.contains('@') {
            return Err("has an invalid local part".into());
        }
        if local.starts_with('.') || local.ends_with('.') || local.contains("..") {
            return Err("has an invalid local part".into());
        }
        let labels: Vec<&str> = domain.split('.').collect();
        if labels.len() < 2
            || labels.iter().any(|l| {
                l.is_empty()
                    || l.len() > 63
                    || l.starts_with('-')
                    || l.ends_with('-')
                    || !l.chars().all(|c| c.is_alphanumeric() || c == '-')
            })
        {
            return Err("has an invalid domain".into());
        }
        Ok(Email(raw.to_lowercase()))
    }

    /// Parses and names the field on failure.
    pub fn parse_field(raw: &str, field: &str) -> Result<Email, DomainError> {
        Email::parse(raw)
            .map_err(|m| DomainError::validation(field, format!("not an email address: {m}")))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for Email {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl fmt::Debug for Email {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Email({})", self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accepts_ordinary_addresses_and_lowercases_them() {
        for (raw, want) in [
            ("a@b.example", "a@b.example"),
            ("First.Last+tag@Example.COM", "first.last+tag@example.com"),
            ("x@sub.domain.example", "x@sub.domain.example"),
        ] {
            assert_eq!(Email::parse(raw).unwrap().as_str(), want, "{raw}");
        }
    }

    #[test]
    fn refuses_malformed_and_header_smuggling_addresses() {
        for raw in [
            "",
            "no-at-sign",
            "@b.example",
            "a@",
            "a@localhost",
            "a@b..example",
            "a b@c.example",
            "a@b.example\r\nBcc: x@y.example",
            "a@b.example\n",
            "<a@b.example>",
            "a,b@c.example",
            ".a@b.example",
            "a..b@c.example",
            "a@-b.example",
        ] {
            assert!(Email::parse(raw).is_err(), "{raw:?} should be refused");
        }
    }
}
