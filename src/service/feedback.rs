//! R43, R44: applying a bounce or complaint. The feedback is tied to its
//! email (by the return path's outbox id, else by the Message-ID, else, for
//! a provider's webhook, by the latest email sent to the address), kept in
//! `email_feedback` whatever happens to it, and, for a hard bounce or a
//! complaint about a sent email, marks the email `bounced`/`complained` and
//! publishes `notification.bounced`/`notification.complained`, in one
//! transaction. The mark also stops the invitation's reminders: the
//! scheduler queues none for an invitation with a marked email, and a
//! reminder already queued is withdrawn when its turn comes (`delivery.rs`).
//! The same transaction puts the recipient on the suppression list (R45),
//! reason `hard_bounce` or `complaint`, with the feedback's source and its
//! status and diagnostic as the detail: whichever report about the address
//! comes first, marked or not (a second report about an already marked
//! email still lists an address taken off since). A soft bounce is kept
//! (and shows in the timeline), nothing more.
//!
//! A hard bounce or a complaint that marks the latest invitation email of a
//! pending member invitation also queues, in the same transaction, "We
//! couldn't deliver your invitation to …" to the inviter (R44), who may then
//! correct the address (R46). Delivery queues the same email when it gives an
//! invitation email up (`delivery.rs`, through [`Services::queue_undelivered_notice`]).

use uuid::Uuid;

use super::invitations::undelivered;
use super::{ServiceResult, Services, event};
use crate::domain::{
    Email, InvitationId, InvitationKind, InvitationStatus, SuppressionReason, TemplateName,
};
use crate::events::catalog::{DeliveryFeedback, Event};
use crate::feedback::{Feedback, FeedbackKind, FeedbackSource, MatchedBy, Unreadable};
use crate::mail::contexts::UndeliveredReason;
use crate::metrics;
use crate::store::{
    FeedbackEmail, FeedbackLookup, NewFeedback, NewSuppression, OutboxStatus, StoreTx,
};

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
        let mut suppressed = false;
        if let Some(mark) = mark {
            marked = tx.mark_email_feedback(email.id, mark).await?;
            suppressed = self
                .suppress_recipient(tx.as_mut(), &email, feedback)
                .await?;
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
                if email.template == TemplateName::MemberInvitation
                    && let Some(invitation) = email.invitation_id
                {
                    let (reason, detail) = match feedback.kind {
                        // A complaint's feedback type (`abuse`) tells the
                        // inviter nothing.
                        FeedbackKind::Complaint => (UndeliveredReason::Complained, None),
                        _ => (
                            UndeliveredReason::Bounced,
                            feedback
                                .detail
                                .as_deref()
                                .or(feedback.status_code.as_deref()),
                        ),
                    };
                    self.queue_undelivered_notice(tx.as_mut(), invitation, reason, detail)
                        .await?;
                }
            }
        }
        tx.commit().await?;
        metrics::email_feedback(feedback.kind.as_str(), feedback.source.as_str());
        tracing::info!(email_id = %email.id, invitation_id = ?email.invitation_id.map(|i| i.0),
            source = %feedback.source, kind = feedback.kind.as_str(), matched_by = matched_by.as_str(),
            status = ?feedback.status_code, marked, suppressed, "feedback applied");
        Ok(FeedbackOutcome::Applied {
            email: email.id,
            matched_by,
            marked,
        })
    }

    /// R45: lists the address the email went to (the outbox's recipient:
    /// the address we sent to, whatever the report spells). `false` when it
    /// was already listed, or is not an address `Email` reads (then it is
    /// logged: nothing could invite it anyway).
    async fn suppress_recipient(
        &self,
        tx: &mut dyn crate::store::StoreTx,
        email: &FeedbackEmail,
        feedback: &Feedback,
    ) -> ServiceResult<bool> {
        let reason = match feedback.kind {
            FeedbackKind::HardBounce => SuppressionReason::HardBounce,
            FeedbackKind::Complaint => SuppressionReason::Complaint,
            FeedbackKind::SoftBounce => return Ok(false),
        };
        let address = match Email::parse(&email.recipient) {
            Ok(address) => address,
            Err(why) => {
                tracing::warn!(email_id = %email.id, recipient = %email.recipient, %why,
                    "feedback names an email whose recipient is not an address: not suppressed");
                return Ok(false);
            }
        };
        let detail = match (&feedback.status_code, &feedback.detail) {
            (Some(code), Some(text)) => Some(format!("{code} {text}")),
            (Some(code), None) => Some(code.clone()),
            (None, text) => text.clone(),
        };
        Ok(tx
            .add_suppression(&NewSuppression {
                email: address,
                reason,
                source: feedback.source.as_str().to_owned(),
                detail,
            })
            .await?)
    }

    /// R44, R46: queues "We couldn't deliver your invitation to …" to the
    /// inviter, in the caller's transaction, when the invitation is a
    /// pending member invitation whose latest invitation email is now
    /// undelivered (the caller marked or failed it in this transaction), so
    /// the email names the address that failed and the invitation can still
    /// be corrected. Answers whether it queued one.
    pub(crate) async fn queue_undelivered_notice(
        &self,
        tx: &mut dyn StoreTx,
        invitation: InvitationId,
        reason: UndeliveredReason,
        detail: Option<&str>,
    ) -> ServiceResult<bool> {
        let Some(inv) = tx.lock_invitation(invitation).await? else {
            return Ok(false);
        };
        let now = tx.now().await?;
        if inv.kind != InvitationKind::Member
            || inv.view().effective_status(now) != InvitationStatus::Pending
            || !undelivered(&inv)
        {
            return Ok(false);
        }
        let (Some(inviter), Some(business)) = (
            tx.get_user(&inv.invited_by).await?,
            tx.read_business(inv.business_id).await?,
        ) else {
            return Ok(false);
        };
        tx.enqueue_email(&self.delivery_failed_email(
            &inv,
            &business.name,
            &inviter,
            reason,
            detail,
        ))
        .await?;
        Ok(true)
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
