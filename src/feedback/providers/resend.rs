//! Resend signs through Svix: headers `svix-id`, `svix-timestamp` and
//! `svix-signature` (space-separated `v1,<base64>` entries, any of which may
//! match), each the HMAC-SHA256 of `{id}.{timestamp}.{body}` under the
//! decoded `whsec_` secret. Events `email.bounced` (`data.bounce.type`
//! `Permanent` or else) and `email.complained` are read.

use base64::Engine as _;
use serde::Deserialize;

use super::keys::HmacSecret;
use super::{Provider, Refused, Webhook, feedback, fresh, hmac_sha256, json, same, status_in};
use crate::feedback::{Feedback, FeedbackKind, FeedbackSource};

#[derive(Deserialize)]
struct Event {
    #[serde(rename = "type")]
    kind: String,
    data: Data,
}

#[derive(Deserialize)]
struct Data {
    #[serde(default)]
    to: Vec<String>,
    bounce: Option<Bounce>,
    #[serde(default)]
    headers: Vec<Header>,
}

#[derive(Deserialize)]
struct Bounce {
    #[serde(rename = "type")]
    kind: Option<String>,
    #[serde(rename = "subType")]
    sub_type: Option<String>,
    message: Option<String>,
}

#[derive(Deserialize)]
struct Header {
    name: String,
    value: String,
}

pub(super) fn read(key: &HmacSecret, hook: &Webhook<'_>) -> Result<Vec<Feedback>, Refused> {
    let id = hook.header("svix-id").unwrap_or_default();
    let timestamp = hook.header("svix-timestamp");
    let signatures = hook
        .header("svix-signature")
        .ok_or_else(|| Refused::Unauthenticated("no svix-signature".into()))?;
    if id.is_empty() {
        return Err(Refused::Unauthenticated("no svix-id".into()));
    }
    fresh(timestamp, hook.now)?;
    let tag = hmac_sha256(
        &key.0,
        &[
            id.as_bytes(),
            b".",
            timestamp.unwrap_or_default().as_bytes(),
            b".",
            hook.body,
        ],
    );
    let verified = signatures.split(' ').any(|entry| {
        entry
            .strip_prefix("v1,")
            .and_then(|b| base64::engine::general_purpose::STANDARD.decode(b).ok())
            .is_some_and(|sig| same(tag.as_ref(), &sig))
    });
    if !verified {
        return Err(Refused::Unauthenticated("no signature verifies".into()));
    }

    let event: Event = json(Provider::Resend, hook.body)?;
    let kind = match event.kind.as_str() {
        "email.bounced" => match event.data.bounce.as_ref().and_then(|b| b.kind.as_deref()) {
            Some("Permanent") => FeedbackKind::HardBounce,
            _ => FeedbackKind::SoftBounce,
        },
        "email.complained" => FeedbackKind::Complaint,
        _ => return Ok(Vec::new()),
    };
    if event.data.to.is_empty() {
        return Err(Refused::Malformed(format!(
            "a Resend {} event without data.to",
            event.kind
        )));
    }
    let message_id = event
        .data
        .headers
        .iter()
        .find(|h| h.name.eq_ignore_ascii_case("message-id"))
        .map(|h| h.value.clone());
    let (status, detail) = match (&kind, &event.data.bounce) {
        (FeedbackKind::Complaint, _) => (Some("abuse".to_owned()), None),
        (_, Some(b)) => {
            let detail = [
                b.kind.as_deref(),
                b.sub_type.as_deref(),
                b.message.as_deref(),
            ]
            .into_iter()
            .flatten()
            .collect::<Vec<_>>()
            .join(": ");
            (status_in(&detail), Some(detail))
        }
        (_, None) => (None, None),
    };
    // One event per email; an email to several addresses names them all.
    Ok(event
        .data
        .to
        .into_iter()
        .map(|to| {
            feedback(
                FeedbackSource::Resend,
                kind,
                Some(to),
                message_id.clone(),
                status.clone(),
                detail.clone(),
            )
        })
        .collect())
}
