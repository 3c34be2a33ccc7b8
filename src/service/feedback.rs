//! R43, R44: applying a bounce or complaint. The feedback is tied to its
//! email (by the return path's outbox id, else by the Message-ID, else, for
//! a provider's webhook, by the latest email sent to the address), kept in
//! `email_feedback` whatever happens to it, and, for a hard bounce or a
//! complaint about a sent email, marks the email `bounced`/`complained` and
//! publishes `notification.bounced`/`notification.complained`, in one
//! transaction. The mark also stops the invitation's reminders: the
//! scheduler queues none for an invitation with a marked email, and a
//! reminder already queued is withdrawn when its turn comes (`delivery.rs`).
//! A soft bounce is kept (and shows in the timeline), nothing more.
//!
//! Not built yet (issue 14, later items): the suppression list (R45) and
//! the inviter's "We couldn't deliver" email.

use uuid::Uuid;

use super::{ServiceResult, Services, event};
use crate::events::catalog::{DeliveryFeedback, Event};
use crate::feedback::{Feedback, FeedbackKind, FeedbackSource, MatchedBy, Unreadable};
use crate::metrics;
use crate::store::{FeedbackEmail, FeedbackLookup, NewFeedback, OutboxStatus};

/// What applying one piece of feedback did.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum FeedbackOutcome {
    /// Tied to an email; `marked` when this report marked it (the first hard
    /// bounce or complaint about a sent email).
    Applied {
        email: Uuid,
        matched_by: MatchedBy,
        marked: bool,
    },
    /// No email of ours: kept and dropped.
    Unmatched,
}

impl Services {
    pub async fn apply_feedback(&self, feedback: &Feedback) -> ServiceResult<FeedbackOutcome> {
        let mut tx = self.store.begin().await?;
        let mut found: Option<(FeedbackEmail, MatchedBy)> = None;
        if let Some(id) = feedback.refs.outbox_id {
            found = tx
                .feedback_email(FeedbackLookup::OutboxId(id))
                .await?
                .map(|e| (e, MatchedBy::ReturnPath));
        }
        if found.is_none()
            && let Some(message_id) = &feedback.refs.message_id
        {
            found = tx
                .feedback_email(FeedbackLookup::MessageId(message_id))
                .await?
                .map(|e| (e, MatchedBy::MessageId));
        }
        if found.is_none()
            && let Some(address) = &feedback.refs.address
        {
            found = tx
                .feedback_email(FeedbackLookup::Recipient(address))
                .await?
                .map(|e| (e, MatchedBy::Address));
        }
        let mut row = NewFeedback {
            id: Uuid::now_v7(),
            source: feedback.source.as_str().to_owned(),
            kind: Some(feedback.kind.as_str()),
            outcome: "unmatched",
            outbox_id: None,
            matched_by: None,
            status_code: feedback.status_code.clone(),
            detail: feedback.detail.clone(),
            recipient: feedback.recipient.clone(),
            envelope_to: feedback.envelope_to.clone(),
            message_id: feedback.refs.message_id.clone(),
            error: None,
        };
        let Some((email, matched_by)) = found else {
            row.error =
                Some("no email of this daemon has this return path, Message-ID or address".into());
            tx.insert_feedback(&row).await?;
            tx.commit().await?;
            metrics::email_feedback("unmatched", feedback.source.as_str());
            tracing::info!(source = %feedback.source, kind = feedback.kind.as_str(),
                message_id = ?feedback.refs.message_id, "feedback about an unknown email: recorded and dropped");
            return Ok(FeedbackOutcome::Unmatched);
        };
        row.outcome = "applied";
        row.outbox_id = Some(email.id);
        row.matched_by = Some(matched_by.as_str());
        tx.insert_feedback(&row).await?;

        let mark = match feedback.kind {
            FeedbackKind::HardBounce => Some(OutboxStatus::Bounced),
            FeedbackKind::Complaint => Some(OutboxStatus::Complained),
            FeedbackKind::SoftBounce => None,
        };
        let mut marked = false;
        if let Some(mark) = mark {
            marked = tx.mark_email_feedback(email.id, mark).await?;
            if marked {
                let data = DeliveryFeedback {
                    template: email.template,
                    message_id: email.message_id.clone(),
                    recipient: email.recipient.clone(),
                    status_code: feedback.status_code.clone(),
                    detail: feedback.detail.clone(),
                    source: feedback.source.as_str().to_owned(),
                };
                let event_data = match mark {
                    OutboxStatus::Bounced => Event::NotificationBounced(data),
                    _ => Event::NotificationComplained(data),
                };
                tx.insert_event(&event(
                    email.business_id,
                    email.invitation_id,
                    None,
                    None,
                    event_data,
                ))
                .await?;
            }
        }
        tx.commit().await?;
        metrics::email_feedback(feedback.kind.as_str(), feedback.source.as_str());
        tracing::info!(email_id = %email.id, invitation_id = ?email.invitation_id.map(|i| i.0),
            source = %feedback.source, kind = feedback.kind.as_str(), matched_by = matched_by.as_str(),
            status = ?feedback.status_code, marked, "feedback applied");
        Ok(FeedbackOutcome::Applied {
            email: email.id,
            matched_by,
            marked,
        })
    }

    /// Keeps a report the daemon could not read or does not act on, with
    /// why; it changes nothing else.
    pub async fn record_unreadable_feedback(
        &self,
        source: FeedbackSource,
        envelope_to: Option<&str>,
        why: &Unreadable,
    ) -> ServiceResult<()> {
        let row = NewFeedback {
            id: Uuid::now_v7(),
            source: source.as_str().to_owned(),
            kind: None,
            outcome: why.outcome(),
            outbox_id: None,
            matched_by: None,
            status_code: None,
            detail: None,
            recipient: None,
            envelope_to: envelope_to.map(str::to_owned),
            message_id: None,
            error: Some(why.to_string()),
        };
        let mut tx = self.store.begin().await?;
        tx.insert_feedback(&row).await?;
        tx.commit().await?;
        if let Unreadable::Malformed(_) = why {
            metrics::email_feedback("malformed", source.as_str());
        }
        tracing::warn!(%source, envelope_to, error = %why, "feedback not applied: recorded");
        Ok(())
    }
}
