//! What the creator of a member invitation may choose besides the invitees
//! (R38, R39): how it reaches the invitee, how long it lives, and what the app
//! keeps with it.

use std::time::Duration;

use serde_json::{Map, Value};

use super::DomainError;

/// How the invitation reaches the invitee (R38).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum DeliveryMode {
    /// The daemon emails it, and reminds (R32).
    #[default]
    Email,
    /// The app delivers the link itself: no email, no reminder; the creation
    /// answer carries the accept link, once.
    None,
}

impl DeliveryMode {
    pub fn as_str(self) -> &'static str {
        match self {
            DeliveryMode::Email => "email",
            DeliveryMode::None => "none",
        }
    }

    pub fn parse(raw: &str) -> Option<DeliveryMode> {
        [DeliveryMode::Email, DeliveryMode::None]
            .into_iter()
            .find(|m| m.as_str() == raw)
    }

    pub fn parse_field(raw: &str, field: &str) -> Result<DeliveryMode, DomainError> {
        DeliveryMode::parse(raw)
            .ok_or_else(|| DomainError::validation(field, "must be \"email\" or \"none\""))
    }

    /// Does the daemon send this invitation's emails (invitation, resend,
    /// reminders)?
    pub fn sends_email(self) -> bool {
        self == DeliveryMode::Email
    }
}

/// The app's own data kept with an invitation (R39): a JSON object of at most
/// [`Metadata::MAX_BYTES`] serialised. Returned with the invitation and in
/// its events, never put into an email.
#[derive(Clone, Debug, PartialEq, Default)]
pub struct Metadata(Map<String, Value>);

impl Metadata {
    /// 4 KiB, counted on the compact serialisation (what the store keeps).
    pub const MAX_BYTES: usize = 4096;

    pub fn parse_field(value: Value, field: &str) -> Result<Metadata, DomainError> {
        let Value::Object(map) = value else {
            return Err(DomainError::validation(field, "must be a JSON object"));
        };
        let size = serde_json::to_vec(&map)
            .expect("a JSON map serialises")
            .len();
        if size > Self::MAX_BYTES {
            return Err(DomainError::validation(
                field,
                format!(
                    "must be at most {} bytes serialised, not {size}",
                    Self::MAX_BYTES
                ),
            ));
        }
        Ok(Metadata(map))
    }

    /// A stored value, as written by [`Metadata::to_value`]; anything else is
    /// `None` (a corrupt row).
    pub fn from_stored(value: Value) -> Option<Metadata> {
        match value {
            Value::Object(map) => Some(Metadata(map)),
            _ => None,
        }
    }

    pub fn to_value(&self) -> Value {
        Value::Object(self.0.clone())
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

impl serde::Serialize for Metadata {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        self.0.serialize(s)
    }
}

/// The shortest lifetime an invitation may be given (R39); the longest is
/// `invitations.max_ttl`.
pub const MIN_TTL: Duration = Duration::from_secs(3600);

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn delivery_modes_keep_their_names() {
        for mode in [DeliveryMode::Email, DeliveryMode::None] {
            assert_eq!(DeliveryMode::parse(mode.as_str()), Some(mode));
        }
        assert_eq!(DeliveryMode::default(), DeliveryMode::Email);
        for bad in ["", "Email", "sms", "NONE"] {
            assert!(DeliveryMode::parse_field(bad, "delivery").is_err(), "{bad}");
        }
    }

    #[test]
    fn metadata_is_an_object_of_at_most_4_kib() {
        assert!(Metadata::parse_field(json!({"a": [1, 2]}), "metadata").is_ok());
        for bad in [json!([1]), json!("x"), json!(null), json!(3)] {
            let e = Metadata::parse_field(bad.clone(), "metadata").unwrap_err();
            assert!(matches!(e, DomainError::Validation { ref field, .. } if field == "metadata"));
        }
        // {"k":"…"} is 8 bytes besides the value.
        let exactly = json!({"k": "x".repeat(Metadata::MAX_BYTES - 8)});
        assert!(Metadata::parse_field(exactly, "metadata").is_ok());
        let over = json!({"k": "x".repeat(Metadata::MAX_BYTES - 7)});
        assert!(Metadata::parse_field(over, "metadata").is_err());
    }
}
