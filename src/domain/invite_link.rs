//! Invite links (R50): a code many users can redeem, each redemption a
//! membership. The code is 256 random bits, shown once at creation; only
//! its SHA-256 is stored. What a redemption needs besides seats (R9), 2FA
//! (R15) and the inviter's rules (R3), which have their own modules, is
//! here: the link's own state as of a time, and its allowed domains.

use std::fmt;

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use chrono::{DateTime, Utc};
use rand::RngExt as _;
use sha2::{Digest, Sha256};

use super::{DomainError, Email, TokenHash};

/// The fewest and most uses a link may be created with.
pub const MIN_USES: u32 = 1;
pub const MAX_USES: u32 = 1000;
/// The most domains a link may allow.
pub const MAX_ALLOWED_DOMAINS: usize = 50;

const CODE_BYTES: usize = 32;
const CODE_CHARS: usize = 43; // base64url of 32 bytes, no padding

/// The secret of a link. `Debug` never prints it.
#[derive(Clone, PartialEq, Eq)]
pub struct InviteLinkCode(String);

impl InviteLinkCode {
    /// A new code: 256 bits from the OS-seeded generator.
    pub fn generate() -> InviteLinkCode {
        let bytes: [u8; CODE_BYTES] = rand::rng().random();
        InviteLinkCode(URL_SAFE_NO_PAD.encode(bytes))
    }

    /// A presented code. A string that cannot be a code is refused before
    /// any lookup, with the same answer as an unknown one.
    pub fn parse(raw: &str) -> Option<InviteLinkCode> {
        let ok = raw.len() == CODE_CHARS
            && raw
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_');
        ok.then(|| InviteLinkCode(raw.to_string()))
    }

    pub fn hash(&self) -> TokenHash {
        TokenHash(Sha256::digest(self.0.as_bytes()).to_vec())
    }

    /// The secret itself, for the one answer that shows it.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for InviteLinkCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("InviteLinkCode(<redacted>)")
    }
}

/// R50: `max_uses` is 1 to 1,000.
pub fn check_max_uses(max_uses: i64) -> Result<u32, DomainError> {
    if (i64::from(MIN_USES)..=i64::from(MAX_USES)).contains(&max_uses) {
        Ok(max_uses as u32)
    } else {
        Err(DomainError::validation(
            "max_uses",
            format!("must be from {MIN_USES} to {MAX_USES}"),
        ))
    }
}

/// The domains a redeeming user's address must be at; empty for any. Kept
/// in lower case, each once, without a leading `@`.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct AllowedDomains(Vec<String>);

impl AllowedDomains {
    /// Parses the request's list, naming `allowed_domains[i]` on a bad one.
    pub fn parse(raw: &[String]) -> Result<AllowedDomains, DomainError> {
        if raw.len() > MAX_ALLOWED_DOMAINS {
            return Err(DomainError::validation(
                "allowed_domains",
                format!("may name at most {MAX_ALLOWED_DOMAINS} domains"),
            ));
        }
        let mut out: Vec<String> = Vec::with_capacity(raw.len());
        for (i, d) in raw.iter().enumerate() {
            let field = format!("allowed_domains[{i}]");
            let domain = d.trim_start_matches('@').to_lowercase();
            // The same rules as the domain of an address.
            if Email::parse(&format!("x@{domain}")).is_err() || d.trim() != d {
                return Err(DomainError::validation(field, "is not a domain name"));
            }
            if out.contains(&domain) {
                return Err(DomainError::validation(field, "is listed twice"));
            }
            out.push(domain);
        }
        Ok(AllowedDomains(out))
    }

    /// As stored: already parsed once.
    pub fn from_stored(domains: Vec<String>) -> AllowedDomains {
        AllowedDomains(domains)
    }

    pub fn as_slice(&self) -> &[String] {
        &self.0
    }

    /// R50: the address is at one of the domains (exactly: a subdomain is
    /// another domain), or the list is empty.
    pub fn check(&self, email: &Email) -> Result<(), DomainError> {
        if self.0.is_empty() {
            return Ok(());
        }
        let domain = email
            .as_str()
            .rsplit_once('@')
            .map(|(_, d)| d)
            .unwrap_or_default();
        if self.0.iter().any(|d| d == domain) {
            Ok(())
        } else {
            Err(DomainError::DomainNotAllowed)
        }
    }
}

/// What a link's state says about redeeming it, as of a time.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct LinkView {
    pub max_uses: u32,
    pub uses: u32,
    pub expires_at: DateTime<Utc>,
    pub revoked: bool,
}

/// Why a link can no longer be redeemed; each its own problem code.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Unredeemable {
    Revoked,
    Expired,
    Exhausted,
}

impl Unredeemable {
    pub const ALL: [Unredeemable; 3] = [
        Unredeemable::Revoked,
        Unredeemable::Expired,
        Unredeemable::Exhausted,
    ];

    /// The problem code a redemption gets, also the preview's `reason`.
    pub fn as_str(self) -> &'static str {
        match self {
            Unredeemable::Revoked => "link_revoked",
            Unredeemable::Expired => "link_expired",
            Unredeemable::Exhausted => "link_exhausted",
        }
    }

    pub fn error(self) -> DomainError {
        match self {
            Unredeemable::Revoked => DomainError::LinkRevoked,
            Unredeemable::Expired => DomainError::LinkExpired,
            Unredeemable::Exhausted => DomainError::LinkExhausted,
        }
    }
}

impl LinkView {
    pub fn remaining(&self) -> u32 {
        self.max_uses.saturating_sub(self.uses)
    }

    /// `None` while the link can be redeemed at `now`. Revoked wins over
    /// expired, expired over exhausted: the first is the owner's decision,
    /// the second holds whatever the uses.
    pub fn unredeemable(&self, now: DateTime<Utc>) -> Option<Unredeemable> {
        if self.revoked {
            Some(Unredeemable::Revoked)
        } else if now >= self.expires_at {
            Some(Unredeemable::Expired)
        } else if self.uses >= self.max_uses {
            Some(Unredeemable::Exhausted)
        } else {
            None
        }
    }

    pub fn check(&self, now: DateTime<Utc>) -> Result<(), DomainError> {
        match self.unredeemable(now) {
            None => Ok(()),
            Some(why) => Err(why.error()),
        }
    }
}

#[cfg(test)]
mod tests {
    use chrono::TimeZone;

    use super::*;

    fn at(secs: i64) -> DateTime<Utc> {
        Utc.timestamp_opt(1_800_000_000 + secs, 0).unwrap()
    }

    #[test]
    fn codes_carry_256_bits_parse_back_and_never_print() {
        let a = InviteLinkCode::generate();
        let b = InviteLinkCode::generate();
        assert_ne!(a, b);
        assert_eq!(a.expose().len(), CODE_CHARS);
        let parsed = InviteLinkCode::parse(a.expose()).unwrap();
        assert_eq!(parsed.hash(), a.hash());
        assert_eq!(a.hash().0.len(), 32);
        assert!(!format!("{a:?}").contains(a.expose()));
        assert!(InviteLinkCode::parse("").is_none());
        assert!(InviteLinkCode::parse(&"!".repeat(CODE_CHARS)).is_none());
        assert!(InviteLinkCode::parse(&"a".repeat(CODE_CHARS + 1)).is_none());
    }

    #[test]
    fn max_uses_is_one_to_a_thousand() {
        assert_eq!(check_max_uses(1).unwrap(), 1);
        assert_eq!(check_max_uses(1000).unwrap(), 1000);
        for bad in [0, -1, 1001, i64::MAX] {
            assert!(check_max_uses(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn allowed_domains_parse_and_match_exactly() {
        let d = AllowedDomains::parse(&["Example.com".into(), "@corp.example".into()]).unwrap();
        assert_eq!(d.as_slice(), ["example.com", "corp.example"]);
        assert!(d.check(&Email::parse("a@example.com").unwrap()).is_ok());
        assert!(d.check(&Email::parse("A@CORP.example").unwrap()).is_ok());
        assert_eq!(
            d.check(&Email::parse("a@sub.example.com").unwrap()),
            Err(DomainError::DomainNotAllowed)
        );
        assert_eq!(
            d.check(&Email::parse("a@gmail.com").unwrap()),
            Err(DomainError::DomainNotAllowed)
        );
        assert!(
            AllowedDomains::default()
                .check(&Email::parse("a@any.example").unwrap())
                .is_ok()
        );
        for bad in ["", "nodot", "a b.example", "x..example", " example.com"] {
            assert!(AllowedDomains::parse(&[bad.into()]).is_err(), "{bad:?}");
        }
        assert!(AllowedDomains::parse(&["a.example".into(), "A.example".into()]).is_err());
    }

    #[test]
    fn revoked_then_expired_then_exhausted() {
        let open = LinkView {
            max_uses: 3,
            uses: 2,
            expires_at: at(100),
            revoked: false,
        };
        assert_eq!(open.unredeemable(at(99)), None);
        assert_eq!(open.remaining(), 1);
        assert_eq!(
            open.unredeemable(at(100)),
            Some(Unredeemable::Expired),
            "expired at its expiry"
        );
        let full = LinkView { uses: 3, ..open };
        assert_eq!(full.unredeemable(at(0)), Some(Unredeemable::Exhausted));
        assert_eq!(full.unredeemable(at(100)), Some(Unredeemable::Expired));
        let revoked = LinkView {
            revoked: true,
            ..full
        };
        assert_eq!(revoked.unredeemable(at(100)), Some(Unredeemable::Revoked));
        assert_eq!(revoked.check(at(0)), Err(DomainError::LinkRevoked));
    }
}
