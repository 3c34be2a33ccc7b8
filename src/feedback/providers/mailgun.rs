//! Mailgun: the JSON body carries `signature: {timestamp, token,
//! signature}`, the hex HMAC-SHA256 of timestamp + token under the webhook
//! signing key; `event-data` is one event: `failed` (`severity` `permanent`
//! or `temporary`) or `complained`.

use serde::Deserialize;

use super::keys::HmacSecret;
use super::{Provider, Refused, Webhook, feedback, fresh, hmac_sha256, json, same, status_in};
use crate::feedback::{Feedback, FeedbackKind, FeedbackSource};

#[derive(Deserialize)]
struct Body {
    signature: Signature,
    #[serde(rename = "event-data")]
    event_data: serde_json::Value,
}

#[derive(Deserialize)]
struct Signature {
    timestamp: serde_json::Value,
    token: String,
    signature: String,
}

#[derive(Deserialize)]
struct EventData {
    event: String,
    severity: Option<String>,
    recipient: Option<String>,
    reason: Option<String>,
    #[serde(rename = "delivery-status", default)]
    delivery_status: DeliveryStatus,
    #[serde(default)]
    message: Message,
}

#[derive(Deserialize, Default)]
struct DeliveryStatus {
    code: Option<serde_json::Value>,
    message: Option<String>,
    description: Option<String>,
    #[serde(rename = "enhanced-code")]
    enhanced_code: Option<String>,
}

#[derive(Deserialize, Default)]
struct Message {
    #[serde(default)]
    headers: Headers,
}

#[derive(Deserialize, Default)]
struct Headers {
    #[serde(rename = "message-id")]
    message_id: Option<String>,
}

pub(super) fn read(key: &HmacSecret, hook: &Webhook<'_>) -> Result<Vec<Feedback>, Refused> {
    // The signature is inside the body: an unparsable body has none.
    let body: Body = serde_json::from_slice(hook.body)
        .map_err(|_| Refused::Unauthenticated("no Mailgun signature in the body".into()))?;
    let timestamp = match &body.signature.timestamp {
        serde_json::Value::String(s) => s.clone(),
        serde_json::Value::Number(n) => n.to_string(),
        _ => String::new(),
    };
    fresh(Some(&timestamp), hook.now)?;
    let tag = hmac_sha256(
        &key.0,
        &[timestamp.as_bytes(), body.signature.token.as_bytes()],
    );
    let presented = hex::decode(body.signature.signature.trim())
        .map_err(|_| Refused::Unauthenticated("the signature is not hex".into()))?;
    if !same(tag.as_ref(), &presented) {
        return Err(Refused::Unauthenticated(
            "the signature does not verify".into(),
        ));
    }

    let event: EventData = json(Provider::Mailgun, body.event_data.to_string().as_bytes())?;
    let kind = match (event.event.as_str(), event.severity.as_deref()) {
        ("failed", Some("permanent")) => FeedbackKind::HardBounce,
        ("failed", _) => FeedbackKind::SoftBounce,
        ("complained", _) => FeedbackKind::Complaint,
        _ => return Ok(Vec::new()),
    };
    if event.recipient.is_none() {
        return Err(Refused::Malformed(format!(
            "a Mailgun {} event without its recipient",
            event.event
        )));
    }
    let ds = event.delivery_status;
    let detail = [
        ds.code.map(|c| c.to_string().trim_matches('"').to_owned()),
        ds.message.filter(|m| !m.trim().is_empty()),
        ds.description.filter(|m| !m.trim().is_empty()),
    ]
    .into_iter()
    .flatten()
    .collect::<Vec<_>>()
    .join(" ");
    let status = match kind {
        FeedbackKind::Complaint => Some("abuse".to_owned()),
        _ => ds
            .enhanced_code
            .filter(|c| status_in(c).is_some())
            .or_else(|| status_in(&detail)),
    };
    let detail = Some(detail).filter(|d| !d.is_empty()).or(event.reason);
    Ok(vec![feedback(
        FeedbackSource::Mailgun,
        kind,
        event.recipient,
        event.message.headers.message_id,
        status,
        detail,
    )])
}
