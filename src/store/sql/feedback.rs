//! Bounces and complaints (R43, R44): the email a report names, the report
//! as received, and the mark it leaves on its email.

use uuid::Uuid;

use super::{Arg, Conn, id, opt_id, opt_text, text};
use crate::domain::{BusinessId, InvitationId};
use crate::store::stored::{outbox_status, template};
use crate::store::{
    FeedbackEmail, FeedbackLookup, NewFeedback, OutboxStatus, StoreError, StoreResult,
};

use super::StoredRow as _;

pub(super) async fn email(
    c: &mut impl Conn,
    by: FeedbackLookup<'_>,
) -> StoreResult<Option<FeedbackEmail>> {
    let (filter, arg) = match by {
        FeedbackLookup::OutboxId(outbox) => ("id = $1", id(outbox)),
        FeedbackLookup::MessageId(message_id) => ("message_id = $1", text(message_id)),
        FeedbackLookup::Recipient(address) => (
            "lower(recipient) = lower($1) AND status = 'sent'
             ORDER BY sent_at DESC, id DESC LIMIT 1",
            text(address),
        ),
    };
    let sql = format!(
        "SELECT id, business_id, invitation_id, template, message_id, recipient,
                coalesce(feedback, CAST(status AS TEXT)) AS status
         FROM email_outbox WHERE {filter}"
    );
    let Some(row) = c.fetch_optional(&sql, vec![arg]).await? else {
        return Ok(None);
    };
    Ok(Some(FeedbackEmail {
        id: row.uuid("id")?,
        business_id: BusinessId(row.uuid("business_id")?),
        invitation_id: row.uuid_opt("invitation_id")?.map(InvitationId),
        template: template(row.text("template")?)?,
        message_id: row.text("message_id")?,
        recipient: row.text("recipient")?,
        status: outbox_status(row.text("status")?)?,
    }))
}

pub(super) async fn insert(c: &mut impl Conn, f: &NewFeedback) -> StoreResult<()> {
    let at = c.stamp();
    c.execute(
        "INSERT INTO email_feedback (id, received_at, source, kind, outcome, outbox_id, matched_by,
                                     status_code, detail, recipient, envelope_to, message_id, error)
         VALUES ($1, coalesce($2, CURRENT_TIMESTAMP), $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13)",
        vec![
            id(f.id),
            Arg::Time(at),
            text(&f.source),
            opt_text(f.kind),
            text(f.outcome),
            opt_id(f.outbox_id),
            opt_text(f.matched_by),
            opt_text(f.status_code.as_deref()),
            opt_text(f.detail.as_deref()),
            opt_text(f.recipient.as_deref()),
            opt_text(f.envelope_to.as_deref()),
            opt_text(f.message_id.as_deref()),
            opt_text(f.error.as_deref()),
        ],
    )
    .await?;
    Ok(())
}

pub(super) async fn mark(c: &mut impl Conn, outbox: Uuid, mark: OutboxStatus) -> StoreResult<bool> {
    if !matches!(mark, OutboxStatus::Bounced | OutboxStatus::Complained) {
        return Err(StoreError::Other(format!(
            "{} is not a feedback mark",
            mark.as_str()
        )));
    }
    let at = c.stamp();
    let n = c
        .execute(
            "UPDATE email_outbox SET feedback = $2, updated_at = coalesce($3, CURRENT_TIMESTAMP)
             WHERE id = $1 AND feedback IS NULL AND status = 'sent'",
            vec![id(outbox), text(mark.as_str()), Arg::Time(at)],
        )
        .await?;
    Ok(n == 1)
}
