//! Identifier newtypes, so a business id can never be passed where an invitation
//! id is expected.

use std::fmt;

use rand::RngExt as _;
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use super::DomainError;

macro_rules! uuid_id {
    ($(#[$doc:meta])* $name:ident) => {
        $(#[$doc])*
        #[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
        #[serde(transparent)]
        pub struct $name(pub Uuid);

        impl $name {
            /// A new time-ordered (v7) id.
            pub fn new() -> Self {
                Self(Uuid::now_v7())
            }

            pub fn parse_field(raw: &str, field: &str) -> Result<Self, DomainError> {
                Uuid::parse_str(raw)
                    .map(Self)
                    .map_err(|_| DomainError::validation(field, "not a UUID"))
            }
        }

        impl Default for $name {
            fn default() -> Self {
                Self::new()
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                self.0.fmt(f)
            }
        }

        impl fmt::Debug for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                write!(f, "{}({})", stringify!($name), self.0)
            }
        }
    };
}

uuid_id!(
    /// The internal id of a business (a tenant).
    BusinessId
);
uuid_id!(
    /// The id of one invitation.
    InvitationId
);
uuid_id!(
    /// The id of one invite link (R50).
    InviteLinkId
);
uuid_id!(
    /// The id of a profile, an asset of one business (R23).
    ProfileId
);
uuid_id!(
    /// The id of one grant of a permission on a profile (R23).
    GrantId
);
uuid_id!(
    /// The id of one partnership between two businesses (R19).
    PartnershipId
);

/// The app's own id of a user: an opaque string, non-empty, without control
/// characters, at most 200 characters.
#[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(transparent)]
pub struct UserId(String);

impl UserId {
    pub fn parse(raw: &str) -> Result<UserId, String> {
        if raw.is_empty() || raw.chars().count() > 200 {
            return Err("must be 1 to 200 characters".into());
        }
        if raw.chars().any(char::is_control) {
            return Err("must not contain control characters".into());
        }
        Ok(UserId(raw.to_string()))
    }

    pub fn parse_field(raw: &str, field: &str) -> Result<UserId, DomainError> {
        UserId::parse(raw).map_err(|m| DomainError::validation(field, m))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for UserId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl fmt::Debug for UserId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "UserId({})", self.0)
    }
}

/// The public, hard-to-guess Business ID that another business types in to partner
/// with this one: 24 characters of an unambiguous alphabet, about 119 bits.
#[derive(Clone, PartialEq, Eq, Hash, Debug, Serialize, Deserialize)]
#[serde(transparent)]
pub struct PublicBusinessId(String);

const PUBLIC_ID_ALPHABET: &[u8] = b"23456789abcdefghjkmnpqrstuvwxyz";
const PUBLIC_ID_LEN: usize = 24;

impl PublicBusinessId {
    pub fn generate() -> PublicBusinessId {
        let mut rng = rand::rng();
        let id = (0..PUBLIC_ID_LEN)
            .map(|_| PUBLIC_ID_ALPHABET[rng.random_range(0..PUBLIC_ID_ALPHABET.len())] as char)
            .collect();
        PublicBusinessId(id)
    }

    pub fn parse(raw: &str) -> Result<PublicBusinessId, String> {
        if raw.len() == PUBLIC_ID_LEN && raw.bytes().all(|b| PUBLIC_ID_ALPHABET.contains(&b)) {
            Ok(PublicBusinessId(raw.to_string()))
        } else {
            Err("not a Business ID".into())
        }
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn public_ids_are_long_random_and_parse_back() {
        let a = PublicBusinessId::generate();
        let b = PublicBusinessId::generate();
        assert_ne!(a, b);
        assert_eq!(PublicBusinessId::parse(a.as_str()).unwrap(), a);
        assert!(PublicBusinessId::parse("short").is_err());
    }

    #[test]
    fn user_ids_refuse_empty_and_control_characters() {
        assert!(UserId::parse("").is_err());
        assert!(UserId::parse("a\nb").is_err());
        assert!(UserId::parse(&"x".repeat(201)).is_err());
        assert_eq!(UserId::parse("user-42").unwrap().as_str(), "user-42");
    }
}
