//! Delivering one claimed email: render it, send it, and record the attempt
//! with its outcome (sent, retry later, or failed for good) in one transaction
//! with the event it causes (`invitation.sent`, `notification.failed`).

use std::sync::Arc;
use std::time::Instant;

use chrono::{DateTime, Utc};
use rand::RngExt as _;
use serde_json::json;

use super::emails::{MEMBER_INVITATION, TOKEN_NONCE_KEY};
use super::{ServiceResult, Services, event};
use crate::domain::TokenNonce;
use crate::domain::retry::RetryPolicy;
use crate::mail::{Mailer, TemplateName, Templates, build_message};
use crate::metrics;
use crate::store::{AttemptOutcome, ClaimedEmail, EmailAttempt};

/// What delivery needs besides the store.
pub struct Delivery {
    pub services: Services,
    pub templates: Arc<Templates>,
    pub mailer: Mailer,
    pub from: String,
    /// `links.accept_url`, with `{token}` to replace.
    pub accept_url: String,
    pub retry: RetryPolicy,
}

impl Delivery {
    /// Sends one email and records the attempt. An error here means the outcome
    /// could not be recorded; the lease then runs out and the email is tried
    /// again (at least once, R29).
    pub async fn deliver(&self, email: &ClaimedEmail) -> ServiceResult<AttemptOutcome> {
        let started = Instant::now();
        let sent = match self.compose(email) {
            Ok(message) => self.mailer.send(&message).await,
            Err(e) => Err(e),
        };
        let elapsed = started.elapsed();
        let now = Utc::now();
        let (outcome, kind, code, detail) = match &sent {
            Ok(reply) => (
                AttemptOutcome::Sent,
                "sent",
                Some(reply.code),
                Some(reply.to_string()),
            ),
            Err(error) => {
                let detail = Some(error.failure().to_string());
                let outcome = if error.is_transient() {
                    let deadline = self.retry.deadline(email.created_at, expires_at(email));
                    match self.retry.next_retry(
                        email.attempts,
                        rand::rng().random::<f64>(),
                        now,
                        deadline,
                    ) {
                        Some(after) => AttemptOutcome::Retry { after },
                        None => AttemptOutcome::Failed,
                    }
                } else {
                    AttemptOutcome::Failed
                };
                (outcome, error.kind(), error.code(), detail)
            }
        };
        metrics::email_attempt(&email.template, kind, elapsed.as_secs_f64());

        let mut tx = self.services.store.begin().await?;
        tx.finish_email_attempt(&EmailAttempt {
            outbox_id: email.id,
            business_id: email.business_id,
            outcome: outcome.clone(),
            kind,
            smtp_code: code,
            detail: detail.clone(),
            duration: elapsed,
        })
        .await?;
        match &outcome {
            AttemptOutcome::Sent if email.template == MEMBER_INVITATION => {
                tx.insert_event(&event(
                    email.business_id,
                    email.invitation_id,
                    "invitation.sent",
                    None,
                    None,
                    json!({"message_id": email.message_id, "attempts": email.attempts, "smtp_reply": detail}),
                ))
                .await?;
            }
            AttemptOutcome::Failed => {
                tx.insert_event(&event(
                    email.business_id,
                    email.invitation_id,
                    "notification.failed",
                    None,
                    None,
                    json!({"template": email.template, "message_id": email.message_id,
                           "attempts": email.attempts, "smtp_code": code, "error": detail}),
                ))
                .await?;
            }
            _ => {}
        }
        tx.commit().await?;
        match &outcome {
            AttemptOutcome::Sent => metrics::email_sent(&email.template, &email.locale),
            AttemptOutcome::Failed => metrics::email_failed(&email.template),
            AttemptOutcome::Retry { .. } => {}
        }
        Ok(outcome)
    }

    /// Renders the stored context into a message. The token is derived again
    /// here and exists only in the message (see `domain::token`).
    fn compose(&self, email: &ClaimedEmail) -> Result<lettre::Message, crate::mail::MailError> {
        let permanent =
            |what: String| crate::mail::MailError::Permanent(crate::mail::Failure::Other(what));
        let template: TemplateName = email
            .template
            .parse()
            .map_err(|_| permanent(format!("unknown template {}", email.template)))?;
        let mut context = email.context.clone();
        if let Some(map) = context.as_object_mut()
            && let Some(nonce) = map.remove(TOKEN_NONCE_KEY)
        {
            let nonce = nonce
                .as_str()
                .and_then(|n| hex::decode(n).ok())
                .ok_or_else(|| permanent("stored token nonce is not hex".into()))?;
            let invitation = email
                .invitation_id
                .ok_or_else(|| permanent("token without invitation".into()))?;
            let token = self.services.token_for(invitation.0, &TokenNonce(nonce));
            map.insert(
                "accept_url".into(),
                json!(self.accept_url.replace("{token}", token.expose())),
            );
        }
        let rendered = self
            .templates
            .render(template, &email.locale, &context)
            .map_err(|e| permanent(e.to_string()))?;
        Ok(build_message(
            &self.from,
            &email.recipient,
            email.recipient_name.as_deref(),
            &email.message_id,
            &rendered,
        )?)
    }
}

fn expires_at(email: &ClaimedEmail) -> Option<DateTime<Utc>> {
    email
        .context
        .get("expires_at")
        .and_then(|v| v.as_str())
        .and_then(|s| DateTime::parse_from_rfc3339(s).ok())
        .map(|d| d.with_timezone(&Utc))
}
