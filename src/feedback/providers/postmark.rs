//! Postmark: the webhook URL carries HTTP basic credentials
//! (`https://user:pass@host/feedback/postmark`), the only authentication
//! Postmark offers; the body is one record, `RecordType` `Bounce` (with its
//! `Type`: `HardBounce`, `SoftBounce`, …) or `SpamComplaint`.

use base64::Engine as _;
use serde::Deserialize;

use super::keys::PostmarkCredentials;
use super::{Provider, Refused, Webhook, feedback, json, same, status_in};
use crate::feedback::{Feedback, FeedbackKind, FeedbackSource};

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
struct Record {
    record_type: String,
    #[serde(rename = "Type")]
    kind: Option<String>,
    email: Option<String>,
    description: Option<String>,
    details: Option<String>,
}

pub(super) fn read(
    creds: &PostmarkCredentials,
    hook: &Webhook<'_>,
) -> Result<Vec<Feedback>, Refused> {
    let presented = hook
        .header("authorization")
        .and_then(|v| v.strip_prefix("Basic "))
        .and_then(|b| {
            base64::engine::general_purpose::STANDARD
                .decode(b.trim())
                .ok()
        })
        .ok_or_else(|| Refused::Unauthenticated("no basic credentials".into()))?;
    let expected = format!("{}:{}", creds.username, creds.password);
    if !same(&presented, expected.as_bytes()) {
        return Err(Refused::Unauthenticated("wrong basic credentials".into()));
    }
    let record: Record = json(Provider::Postmark, hook.body)?;
    let kind = match (record.record_type.as_str(), record.kind.as_deref()) {
        ("SpamComplaint", _) => FeedbackKind::Complaint,
        ("Bounce", Some("HardBounce" | "BadEmailAddress")) => FeedbackKind::HardBounce,
        (
            "Bounce",
            Some("SoftBounce" | "Transient" | "DnsError" | "Blocked" | "Undeliverable" | "Unknown"),
        ) => FeedbackKind::SoftBounce,
        // Auto-responders, subscription notices, delivery and open events:
        // not news about a failure.
        _ => return Ok(Vec::new()),
    };
    if record.email.is_none() {
        return Err(Refused::Malformed(
            "a Postmark bounce without its Email".into(),
        ));
    }
    let detail = [record.description.as_deref(), record.details.as_deref()]
        .into_iter()
        .flatten()
        .filter(|t| !t.trim().is_empty())
        .collect::<Vec<_>>()
        .join(" ");
    let status = match kind {
        FeedbackKind::Complaint => Some("abuse".to_owned()),
        _ => status_in(&detail).or(record.kind.clone()),
    };
    Ok(vec![feedback(
        FeedbackSource::Postmark,
        kind,
        record.email,
        None,
        status,
        Some(detail),
    )])
}
