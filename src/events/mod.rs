//! Outbound events (R17): the wire format of an event, the webhook signature,
//! the sinks that deliver events (webhooks, NATS JetStream) and the cursor
//! loop that feeds each sink from the event log in commit order.
//!
//! The `events` rows are the outbox: they are written in the transaction of
//! the change (R16), so nothing is sent for an uncommitted change, and every
//! committed one is sent at least once to every sink. See ARCHITECTURE.md,
//! "Events".

pub mod bus;
pub mod catalog;
pub mod publisher;
pub mod sinks;

use chrono::{DateTime, Utc};
use hmac::{Hmac, KeyInit, Mac};
use serde::Serialize;
use sha2::Sha256;
use uuid::Uuid;

use crate::store::EventRecord;

/// The header that carries a webhook's signature.
pub const SIGNATURE_HEADER: &str = "Invited-Signature";

/// The Standard Webhooks headers (R48): the event id, the unix time of the
/// delivery, and the signatures.
pub const WEBHOOK_ID: &str = "webhook-id";
pub const WEBHOOK_TIMESTAMP: &str = "webhook-timestamp";
pub const WEBHOOK_SIGNATURE: &str = "webhook-signature";

/// The prefix of a Standard Webhooks secret: `whsec_<base64 of the key>`.
pub const SECRET_PREFIX: &str = "whsec_";

/// A new endpoint secret: `whsec_` and the base64 of 32 random bytes (the
/// spec asks for 24 to 64).
pub fn generate_secret() -> String {
    use base64::Engine as _;
    let key: [u8; 32] = rand::random();
    format!(
        "{SECRET_PREFIX}{}",
        base64::engine::general_purpose::STANDARD.encode(key)
    )
}

/// The HMAC key of a secret for `webhook-signature`: the base64-decoded part
/// after `whsec_`, as the spec's verifiers read it. A configured secret in
/// any other form (or whose `whsec_` part is not base64) signs with its own
/// bytes, as `Invited-Signature` does; verifiers take such a key as raw
/// bytes (docs/events.md).
pub fn standard_key(secret: &str) -> Vec<u8> {
    use base64::Engine as _;
    secret
        .strip_prefix(SECRET_PREFIX)
        .and_then(|b64| {
            base64::engine::general_purpose::STANDARD
                .decode(b64)
                .ok()
                .filter(|key| !key.is_empty())
        })
        .unwrap_or_else(|| secret.as_bytes().to_vec())
}

/// One `webhook-signature` entry: `v1,<base64 HMAC-SHA256 of
/// "<id>.<timestamp>.<body>">`. Several are joined by spaces.
pub fn standard_signature(key: &[u8], id: &str, unix_seconds: i64, body: &[u8]) -> String {
    use base64::Engine as _;
    let mut mac = Hmac::<Sha256>::new_from_slice(key).expect("HMAC takes keys of any length");
    mac.update(id.as_bytes());
    mac.update(b".");
    mac.update(unix_seconds.to_string().as_bytes());
    mac.update(b".");
    mac.update(body);
    format!(
        "v1,{}",
        base64::engine::general_purpose::STANDARD.encode(mac.finalize().into_bytes())
    )
}

/// One event as apps receive it (docs/events.md).
#[derive(Debug, Serialize)]
pub struct WireEvent<'a> {
    pub id: Uuid,
    #[serde(rename = "type")]
    pub event_type: &'a str,
    pub occurred_at: DateTime<Utc>,
    /// `null` for an operator's event about no business (R49: a console
    /// action on a webhook endpoint); always present, so a receiver can
    /// tell the two apart without guessing.
    pub business_id: Option<Uuid>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub invitation_id: Option<Uuid>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub actor_user_id: Option<&'a str>,
    pub data: serde_json::Value,
}

impl<'a> WireEvent<'a> {
    /// The wire form of a stored event. A state change's `from_status` and
    /// `to_status` are part of `data` (unless the event's own data already
    /// names them).
    pub fn from_record(event: &'a EventRecord) -> WireEvent<'a> {
        let mut data = match &event.data {
            serde_json::Value::Object(map) => map.clone(),
            serde_json::Value::Null => serde_json::Map::new(),
            other => {
                let mut map = serde_json::Map::new();
                map.insert("value".into(), other.clone());
                map
            }
        };
        for (key, value) in [
            ("from_status", &event.from_status),
            ("to_status", &event.to_status),
        ] {
            if let Some(value) = value {
                data.entry(key)
                    .or_insert_with(|| serde_json::Value::String(value.clone()));
            }
        }
        WireEvent {
            id: event.id,
            event_type: &event.event_type,
            occurred_at: event.occurred_at,
            business_id: event.business_id.map(|b| b.0),
            invitation_id: event.invitation_id.map(|i| i.0),
            actor_user_id: event.actor_user_id.as_deref(),
            data: serde_json::Value::Object(data),
        }
    }

    /// The body sent to every sink: the same bytes everywhere.
    pub fn to_body(&self) -> Vec<u8> {
        serde_json::to_vec(self).expect("an event serialises")
    }
}

/// `Invited-Signature: t=<unix seconds>,v1=<hex HMAC-SHA256 of "<t>.<body>">`.
/// The timestamp is inside the signed text, so a receiver can refuse replays
/// of old deliveries.
pub fn signature(secret: &[u8], unix_seconds: i64, body: &[u8]) -> String {
    let mut mac = Hmac::<Sha256>::new_from_slice(secret).expect("HMAC takes keys of any length");
    mac.update(unix_seconds.to_string().as_bytes());
    mac.update(b".");
    mac.update(body);
    let digest = mac.finalize().into_bytes();
    format!("t={unix_seconds},v1={}", hex::encode(digest))
}

/// Checks a signature header as a receiver would (used by the tests and
/// handy for apps written in Rust): the `v1` part must be the HMAC of
/// `"<t>.<body>"`. Compares in constant time.
pub fn verify_signature(secret: &[u8], header: &str, body: &[u8]) -> bool {
    let mut t = None;
    let mut v1 = None;
    for part in header.split(',') {
        match part.split_once('=') {
            Some(("t", value)) => t = value.parse::<i64>().ok(),
            Some(("v1", value)) => v1 = hex::decode(value).ok(),
            _ => {}
        }
    }
    let (Some(t), Some(v1)) = (t, v1) else {
        return false;
    };
    let mut mac = Hmac::<Sha256>::new_from_slice(secret).expect("HMAC takes keys of any length");
    mac.update(t.to_string().as_bytes());
    mac.update(b".");
    mac.update(body);
    mac.verify_slice(&v1).is_ok()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::{BusinessId, InvitationId};
    use crate::store::EventPosition;

    #[test]
    fn signatures_match_a_reference_hmac() {
        // Reference: Python's hmac.new(b"whsec_test", b'1700000000.{"a":1}', sha256).
        let header = signature(b"whsec_test", 1_700_000_000, br#"{"a":1}"#);
        assert_eq!(
            header,
            "t=1700000000,v1=38877139021993b830af32feea6e18a8da83eb2f6e49ee50bd9e4cf4ca4d3789"
        );
        assert!(verify_signature(b"whsec_test", &header, br#"{"a":1}"#));
        assert!(!verify_signature(b"whsec_other", &header, br#"{"a":1}"#));
        assert!(!verify_signature(b"whsec_test", &header, br#"{"a":2}"#));
        let replayed = header.replace("t=1700000000", "t=1700000001");
        assert!(!verify_signature(b"whsec_test", &replayed, br#"{"a":1}"#));
        assert!(!verify_signature(b"whsec_test", "v1=00", b""));
    }

    #[test]
    fn standard_signatures_match_the_spec() {
        // The example of the Standard Webhooks spec (and its reference
        // libraries' tests).
        let key = standard_key("whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw");
        let body = br#"{"test": 2432232314}"#;
        assert_eq!(
            standard_signature(&key, "msg_p5jXN8AQM9LWM0D4loKWxJek", 1614265330, body),
            "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE="
        );
        // Anything else signs with its own bytes.
        assert_eq!(
            standard_key("whsec-0123456789abcdef"),
            b"whsec-0123456789abcdef"
        );
        assert_eq!(standard_key("whsec_!!!"), b"whsec_!!!");
        let secret = generate_secret();
        assert!(secret.starts_with("whsec_"));
        assert_eq!(standard_key(&secret).len(), 32);
        assert_ne!(secret, generate_secret());
    }

    #[test]
    fn the_wire_event_has_the_documented_fields() {
        let record = EventRecord {
            position: EventPosition::START,
            id: Uuid::nil(),
            event_type: "invitation.cancelled".into(),
            occurred_at: DateTime::from_timestamp(1_700_000_000, 0).unwrap(),
            business_id: Some(BusinessId(Uuid::nil())),
            invitation_id: Some(InvitationId(Uuid::nil())),
            actor_user_id: Some("olive".into()),
            from_status: Some("pending".into()),
            to_status: Some("cancelled".into()),
            data: serde_json::json!({"email": "a@b.example"}),
        };
        let body: serde_json::Value =
            serde_json::from_slice(&WireEvent::from_record(&record).to_body()).unwrap();
        assert_eq!(
            body,
            serde_json::json!({
                "id": Uuid::nil(), "type": "invitation.cancelled",
                "occurred_at": "2023-11-14T22:13:20Z", "business_id": Uuid::nil(),
                "invitation_id": Uuid::nil(), "actor_user_id": "olive",
                "data": {"email": "a@b.example", "from_status": "pending", "to_status": "cancelled"}
            })
        );
        let bare = EventRecord {
            invitation_id: None,
            actor_user_id: None,
            from_status: None,
            to_status: None,
            data: serde_json::json!({}),
            ..record
        };
        let body: serde_json::Value =
            serde_json::from_slice(&WireEvent::from_record(&bare).to_body()).unwrap();
        assert!(body.get("invitation_id").is_none() && body.get("actor_user_id").is_none());
        // An operator's event (R49) says `null`: the field is always there.
        let operator = EventRecord {
            business_id: None,
            ..bare
        };
        let body: serde_json::Value =
            serde_json::from_slice(&WireEvent::from_record(&operator).to_body()).unwrap();
        assert_eq!(body["business_id"], serde_json::Value::Null);
        assert!(body.as_object().unwrap().contains_key("business_id"));
    }
}
