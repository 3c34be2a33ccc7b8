//! R52: verified email domains. [`MailDomain`] is a domain name parsed once
//! at the edge (lower case, ASCII labels, no trailing dot); [`DomainMode`]
//! is what a verified domain does for users with an address at it; the
//! verification value is what the business publishes in a TXT record.

use std::fmt;

use super::{DomainError, Email};

/// The public mail providers no business may claim, built into the binary.
const PUBLIC_MAIL_DOMAINS: &str = include_str!("public_mail_domains.txt");

/// The prefix of the TXT record that proves a claim.
pub const TXT_PREFIX: &str = "invited-verification=";

/// A domain name as a business claims it: `example.com`.
#[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord, serde::Serialize)]
#[serde(transparent)]
pub struct MailDomain(String);

impl MailDomain {
    /// At least two labels of letters, digits and hyphens (1–63 each, not
    /// starting or ending with a hyphen), 253 characters at most, a top
    /// level that is not all digits (an IP address is not a domain). Upper
    /// case is folded and one trailing dot dropped. International names are
    /// given in their ASCII form (`xn--…`).
    pub fn parse(raw: &str) -> Result<MailDomain, String> {
        let trimmed = raw.strip_suffix('.').unwrap_or(raw);
        if trimmed.is_empty() {
            return Err("must not be empty".into());
        }
        if trimmed.len() > 253 {
            return Err("must be at most 253 characters".into());
        }
        let lower = trimmed.to_ascii_lowercase();
        let labels: Vec<&str> = lower.split('.').collect();
        if labels.len() < 2 {
            return Err("must have at least two labels, like example.com".into());
        }
        for label in &labels {
            if label.is_empty() || label.len() > 63 {
                return Err("each label must have 1 to 63 characters".into());
            }
            if !label
                .chars()
                .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-')
            {
                return Err(
                    "may hold only letters, digits, hyphens and dots (international names in their xn-- form)"
                        .into(),
                );
            }
            if label.starts_with('-') || label.ends_with('-') {
                return Err("a label may not start or end with a hyphen".into());
            }
        }
        if labels
            .last()
            .is_some_and(|tld| tld.chars().all(|c| c.is_ascii_digit()))
        {
            return Err("is an IP address, not a domain".into());
        }
        Ok(MailDomain(lower))
    }

    /// Parses and names the field on failure.
    pub fn parse_field(raw: &str, field: &str) -> Result<MailDomain, DomainError> {
        MailDomain::parse(raw)
            .map_err(|m| DomainError::validation(field, format!("not a domain name: {m}")))
    }

    /// A claim's domain: a domain name that is not a public mail
    /// provider's.
    pub fn parse_claim(raw: &str, field: &str) -> Result<MailDomain, DomainError> {
        let domain = MailDomain::parse_field(raw, field)?;
        if domain.is_public_mail_provider() {
            return Err(DomainError::validation(
                field,
                format!(
                    "{domain} is a public mail provider: anyone can have an address there, so no business can claim it"
                ),
            ));
        }
        Ok(domain)
    }

    /// The domain of an address (`Email` already checked its syntax); `None`
    /// for one whose domain this type would not take.
    pub fn of_email(email: &Email) -> Option<MailDomain> {
        let (_, domain) = email.as_str().rsplit_once('@')?;
        MailDomain::parse(domain).ok()
    }

    /// On the built-in list of public mail providers.
    pub fn is_public_mail_provider(&self) -> bool {
        PUBLIC_MAIL_DOMAINS
            .lines()
            .map(str::trim)
            .any(|line| line == self.0)
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// A stored value, trusted (the store checks it parses).
    pub fn from_stored(raw: &str) -> Option<MailDomain> {
        MailDomain::parse(raw).ok().filter(|d| d.0 == raw)
    }
}

impl fmt::Display for MailDomain {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl fmt::Debug for MailDomain {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "MailDomain({})", self.0)
    }
}

/// What a verified domain does for a user with an address at it (R52).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum DomainMode {
    /// The user sees the business in their suggestions.
    Suggest,
    /// Registering or updating the user creates a member invitation.
    AutoInvite,
}

impl DomainMode {
    pub const ALL: [DomainMode; 2] = [DomainMode::Suggest, DomainMode::AutoInvite];

    pub const fn as_str(self) -> &'static str {
        match self {
            DomainMode::Suggest => "suggest",
            DomainMode::AutoInvite => "auto_invite",
        }
    }

    pub fn parse(raw: &str) -> Option<DomainMode> {
        Self::ALL.into_iter().find(|m| m.as_str() == raw)
    }

    pub fn parse_field(raw: &str, field: &str) -> Result<DomainMode, DomainError> {
        Self::parse(raw)
            .ok_or_else(|| DomainError::validation(field, "must be `suggest` or `auto_invite`"))
    }
}

/// The value a business publishes to prove a claim: 128 random bits,
/// hex-encoded.
#[derive(Clone, PartialEq, Eq)]
pub struct VerificationValue(String);

impl VerificationValue {
    /// A fresh value from the thread's CSPRNG (as the token nonce, R12).
    pub fn generate() -> VerificationValue {
        use rand::RngExt as _;
        VerificationValue::from_random(rand::rng().random())
    }

    /// From 16 random bytes.
    pub fn from_random(bytes: [u8; 16]) -> VerificationValue {
        VerificationValue(bytes.iter().map(|b| format!("{b:02x}")).collect())
    }

    pub fn from_stored(raw: String) -> VerificationValue {
        VerificationValue(raw)
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The whole TXT record: `invited-verification=<value>`.
    pub fn txt_record(&self) -> String {
        format!("{TXT_PREFIX}{}", self.0)
    }

    /// Whether one of the TXT strings found is this claim's record
    /// (surrounding whitespace ignored; the value compared exactly).
    pub fn found_in<'a>(&self, answers: impl IntoIterator<Item = &'a str>) -> bool {
        let wanted = self.txt_record();
        answers.into_iter().any(|a| a.trim() == wanted)
    }
}

impl fmt::Debug for VerificationValue {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "VerificationValue({})", self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn domains_parse_strictly() {
        assert_eq!(
            MailDomain::parse("Example.COM.").unwrap().as_str(),
            "example.com"
        );
        assert_eq!(
            MailDomain::parse("a-b.xn--p1ai").unwrap().as_str(),
            "a-b.xn--p1ai"
        );
        for bad in [
            "",
            "localhost",
            "example..com",
            "-a.example",
            "a-.example",
            "exa mple.com",
            "user@example.com",
            "10.0.0.1",
            "例え.jp",
            "https://example.com",
            &format!("{}.com", "a".repeat(64)),
            &format!("{}com", "a.".repeat(127)),
        ] {
            assert!(MailDomain::parse(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn public_mail_providers_are_refused() {
        for public in [
            "gmail.com",
            "GMAIL.com",
            "outlook.com",
            "qq.com",
            "yahoo.co.uk",
        ] {
            let e = MailDomain::parse_claim(public, "domain").unwrap_err();
            assert!(
                e.to_string().contains("public mail provider"),
                "{public}: {e}"
            );
        }
        assert!(MailDomain::parse_claim("acme.example", "domain").is_ok());
        // Comments in the list are no domain.
        assert!(
            !MailDomain::parse("public.mail")
                .unwrap()
                .is_public_mail_provider()
        );
    }

    #[test]
    fn an_email_has_its_domain() {
        let email = Email::parse("Ann@Sub.Acme.Example").unwrap();
        assert_eq!(
            MailDomain::of_email(&email).unwrap().as_str(),
            "sub.acme.example"
        );
    }

    #[test]
    fn the_txt_record_matches_exactly() {
        let v = VerificationValue::from_random([0xab; 16]);
        assert_eq!(v.as_str().len(), 32);
        let record = v.txt_record();
        assert!(record.starts_with("invited-verification="));
        assert!(v.found_in(["v=spf1 -all", record.as_str()]));
        assert!(v.found_in([format!(" {record} ").as_str()]));
        assert!(!v.found_in(["invited-verification=other"]));
        assert!(!v.found_in([]));
    }

    #[test]
    fn modes_keep_their_names() {
        for m in DomainMode::ALL {
            assert_eq!(DomainMode::parse(m.as_str()), Some(m));
        }
        assert!(DomainMode::parse_field("auto", "mode").is_err());
    }
}
