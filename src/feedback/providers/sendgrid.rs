//! SendGrid's signed event webhook: an ECDSA P-256 signature (ASN.1 DER,
//! base64, header `X-Twilio-Email-Event-Webhook-Signature`) over the
//! timestamp header (`X-Twilio-Email-Event-Webhook-Timestamp`) followed by
//! the raw body; the body is a JSON array of events. `bounce` (its `type`
//! `bounce` is permanent, `blocked` temporary), `dropped` (SendGrid did not
//! even try: its own suppression of a bad address), `deferred` and
//! `spamreport` are read; other events are skipped.

use base64::Engine as _;
use serde::Deserialize;

use super::keys::SendgridKey;
use super::{Provider, Refused, Webhook, feedback, fresh, json, status_in};
use crate::feedback::{Feedback, FeedbackKind, FeedbackSource};

pub(super) const SIGNATURE: &str = "x-twilio-email-event-webhook-signature";
pub(super) const TIMESTAMP: &str = "x-twilio-email-event-webhook-timestamp";

#[derive(Deserialize)]
struct Event {
    event: String,
    email: Option<String>,
    #[serde(rename = "smtp-id")]
    smtp_id: Option<String>,
    #[serde(rename = "type")]
    bounce_type: Option<String>,
    status: Option<String>,
    reason: Option<String>,
    response: Option<String>,
}

pub(super) fn read(key: &SendgridKey, hook: &Webhook<'_>) -> Result<Vec<Feedback>, Refused> {
    let signature = hook
        .header(SIGNATURE)
        .and_then(|s| {
            base64::engine::general_purpose::STANDARD
                .decode(s.trim())
                .ok()
        })
        .ok_or_else(|| Refused::Unauthenticated("no signature".into()))?;
    let timestamp = hook.header(TIMESTAMP);
    fresh(timestamp, hook.now)?;
    let mut signed = timestamp.unwrap_or_default().as_bytes().to_vec();
    signed.extend_from_slice(hook.body);
    ring::signature::UnparsedPublicKey::new(&ring::signature::ECDSA_P256_SHA256_ASN1, &key.point)
        .verify(&signed, &signature)
        .map_err(|_| Refused::Unauthenticated("the signature does not verify".into()))?;

    let events: Vec<Event> = json(Provider::Sendgrid, hook.body)?;
    let mut out = Vec::new();
    for e in events {
        let kind = match (e.event.as_str(), e.bounce_type.as_deref()) {
            ("bounce", Some("blocked")) | ("deferred", _) => FeedbackKind::SoftBounce,
            ("bounce", _) | ("dropped", _) => FeedbackKind::HardBounce,
            ("spamreport", _) => FeedbackKind::Complaint,
            _ => continue,
        };
        if e.email.is_none() {
            return Err(Refused::Malformed(format!(
                "a SendGrid {} event without its email",
                e.event
            )));
        }
        let detail = e.reason.or(e.response);
        let status = match kind {
            FeedbackKind::Complaint => Some("abuse".to_owned()),
            _ => e
                .status
                .filter(|s| status_in(s).is_some())
                .or_else(|| detail.as_deref().and_then(status_in)),
        };
        out.push(feedback(
            FeedbackSource::Sendgrid,
            kind,
            e.email,
            e.smtp_id,
            status,
            detail,
        ));
    }
    Ok(out)
}
