//! Delivering one claimed email: render it, send it, and record the attempt
//! with its outcome (sent, retry later, or failed for good) in one transaction
//! with the event it causes (`invitation.sent`, `notification.failed`).

use std::sync::Arc;
use std::time::Instant;

use chrono::{DateTime, Utc};
use rand::RngExt as _;
use serde_json::json;

use super::emails::{MEMBER_INVITATION, REMINDER, TOKEN_NONCE_KEY};
use super::partners::{PARTNER_INVITATION, PARTNER_REQUEST};
use super::{ServiceResult, Services, event};
use crate::domain::TokenNonce;
use crate::domain::retry::RetryPolicy;
use crate::mail::{Mailer, TemplateName, Templates, build_message};
use crate::metrics;
use crate::store::{AttemptOutcome, ClaimedEmail, EmailAttempt};

/// `mail.send_rate` as one token bucket. Every mailer worker of a process
/// shares it: the dispatcher takes a token per email before claiming it, so a
/// lease never runs while an email waits for its turn (R28).
pub type SendLimiter = governor::DefaultDirectRateLimiter;

/// The limiter of a configured rate: `count` per `per`, with a burst of
/// `count` (so `50/s` sends at most 50 in any second).
pub fn send_limiter(rate: crate::config::SendRate) -> SendLimiter {
    let count = std::num::NonZeroU32::new(rate.count.max(1)).expect("at least 1");
    let period = (rate.per / count.get()).max(std::time::Duration::from_nanos(1));
    let quota = governor::Quota::with_period(period)
        .expect("a positive period")
        .allow_burst(count);
    governor::RateLimiter::direct(quota)
}

/// What delivery needs besides the store.
pub struct Delivery {
    pub services: Services,
    pub templates: Arc<Templates>,
    pub mailer: Mailer,
    pub from: String,
    /// `links.accept_url`, with `{token}` to replace.
    pub accept_url: String,
    pub retry: RetryPolicy,
    pub send_rate: Arc<SendLimiter>,
}

impl Delivery {
    /// Sends one email and records the attempt. An error here means the outcome
    /// could not be recorded; the lease then runs out and the email is tried
    /// again (at least once, R29).
    /// `None`: nothing was attempted (a reminder whose invitation is over).
    pub async fn deliver(&self, email: &ClaimedEmail) -> ServiceResult<Option<AttemptOutcome>> {
        if email.template == REMINDER && self.reminder_moot(email).await? {
            return Ok(None);
        }
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
            // The invitation itself reached someone: the member invitation, or
            // a partner invitation/request to one of the receiving managers.
            AttemptOutcome::Sent
                if [MEMBER_INVITATION, PARTNER_INVITATION, PARTNER_REQUEST]
                    .contains(&email.template.as_str()) =>
            {
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
        Ok(Some(outcome))
    }

    /// A reminder is never sent once its invitation left `pending` or passed
    /// its expiry (R32): checked under the invitation's row lock, by database
    /// time, just before the send. The row is marked `cancelled` (no attempt
    /// was made) with an event for the timeline.
    async fn reminder_moot(&self, email: &ClaimedEmail) -> ServiceResult<bool> {
        let Some(invitation) = email.invitation_id else {
            return Ok(false);
        };
        let mut tx = self.services.store.begin().await?;
        let inv = tx.lock_invitation(invitation).await?;
        let now = tx.now().await?;
        let status = inv.as_ref().map(|i| i.view().effective_status(now));
        if status == Some(crate::domain::InvitationStatus::Pending) {
            return Ok(false);
        }
        let why = format!(
            "not sent: the invitation is {}",
            status.map_or("gone", |s| s.as_str())
        );
        tx.cancel_email(email.id, &why).await?;
        tx.insert_event(&event(
            email.business_id,
            email.invitation_id,
            "notification.cancelled",
            None,
            None,
            json!({"template": email.template, "message_id": email.message_id, "reason": why}),
        ))
        .await?;
        tx.commit().await?;
        Ok(true)
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
