//! The outbox statements SQLite runs its own way: times computed here
//! (SQLite has no interval arithmetic), and a plain claim under the write
//! lock instead of `SKIP LOCKED`.

use std::time::Duration;

use chrono::{DateTime, Utc};
use uuid::Uuid;

use super::{SqliteTx, minute_start, plus};
use crate::store::sql::{Arg, Conn as _, StoredRow as _, id, int, opt_text, rows, text};
use crate::store::{AttemptOutcome, ClaimedEmail, EmailAttempt, StoreResult};

/// Records one attempt and the outbox row's new state.
pub(super) async fn finish_attempt(tx: &mut SqliteTx, a: &EmailAttempt) -> StoreResult<()> {
    let at = tx.at;
    tx.execute(
        "INSERT INTO email_attempts (id, outbox_id, business_id, attempted_at, outcome, smtp_code, detail,
                                     duration_ms)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8)",
        vec![
            id(Uuid::now_v7()),
            id(a.outbox_id),
            id(a.business_id.0),
            Arg::Time(Some(at)),
            text(a.kind),
            Arg::Int(a.smtp_code.map(i64::from)),
            opt_text(a.detail.as_deref()),
            int(a.duration.as_millis().min(i32::MAX as u128) as i64),
        ],
    )
    .await?;
    // Sent: no error, `sent_at`; retrying: available again after the delay.
    let (status, sent_at, available_at) = match a.outcome {
        AttemptOutcome::Sent => ("sent", Some(at), None),
        AttemptOutcome::Retry { after } => ("retrying", None, Some(plus(at, after))),
        AttemptOutcome::Failed => ("failed", None, None),
    };
    tx.execute(
        "UPDATE email_outbox
            SET status = $2, sent_at = coalesce($3, sent_at), lease_until = NULL,
                last_error = CASE WHEN $2 = 'sent' THEN NULL ELSE $4 END,
                available_at = coalesce($5, available_at), updated_at = $6
          WHERE id = $1",
        vec![
            id(a.outbox_id),
            text(status),
            Arg::Time(sent_at),
            opt_text(a.detail.as_deref()),
            Arg::Time(available_at),
            Arg::Time(Some(at)),
        ],
    )
    .await?;
    Ok(())
}

/// Adds a batch's sent and failed-for-good attempts to the console chart's
/// count of the minute, once per batch (one writer on SQLite: writer 0).
pub(super) async fn count_attempts_of_minute(
    tx: &mut SqliteTx,
    attempts: &[EmailAttempt],
) -> StoreResult<()> {
    let count = |kind: &str| attempts.iter().filter(|a| a.kind == kind).count() as i64;
    let (sent, failed) = (count("sent"), count("permanent"));
    if sent == 0 && failed == 0 {
        return Ok(());
    }
    tx.execute(
        "INSERT INTO email_minutes (minute, writer, sent, failed) VALUES ($1, 0, $2, $3)
         ON CONFLICT (minute, writer) DO UPDATE
            SET sent = email_minutes.sent + excluded.sent,
                failed = email_minutes.failed + excluded.failed",
        vec![Arg::Time(Some(minute_start(tx.at))), int(sent), int(failed)],
    )
    .await?;
    Ok(())
}

/// Under the write lock nobody else claims: a plain claim, committed before
/// any SMTP exchange, of the due rows and of every `sending` row whose lease
/// lapsed or that another instance leased: one process serves the file (its
/// lock), so that instance is gone, killed mid-send, and the row need not
/// wait out its lease.
pub(super) async fn claim(
    mut tx: SqliteTx,
    limit: u32,
    lease: Duration,
    owner: Uuid,
) -> StoreResult<Vec<ClaimedEmail>> {
    let at = tx.at;
    let rows = tx
        .fetch_all(
            "UPDATE email_outbox
                SET status = 'sending', attempts = attempts + 1, lease_until = $3, lease_owner = $4,
                    updated_at = $1
              WHERE id IN (SELECT id FROM email_outbox
                            WHERE (status IN ('queued', 'retrying') AND available_at <= $1)
                               OR (status = 'sending'
                                   AND (lease_until < $1 OR lease_owner IS NULL OR lease_owner <> $4))
                            ORDER BY available_at, id
                            LIMIT $2)
             RETURNING id, business_id, invitation_id, template, locale, recipient, recipient_name,
                       context, message_id, attempts, created_at, available_at",
            vec![
                Arg::Time(Some(at)),
                crate::store::sql::limit(limit),
                Arg::Time(Some(plus(at, lease))),
                id(owner),
            ],
        )
        .await?;
    tx.commit_inner().await?;
    let mut claimed = rows
        .iter()
        .map(|row| Ok((row.time("available_at")?, rows::claimed_email(row)?)))
        .collect::<StoreResult<Vec<(DateTime<Utc>, ClaimedEmail)>>>()?;
    // RETURNING has no order: hand them out oldest first.
    claimed.sort_by_key(|(available, email)| (*available, email.id));
    Ok(claimed.into_iter().map(|(_, email)| email).collect())
}

/// Undoes this process's claim of `ids` (see the Postgres store's `release`):
/// due again, the attempt count and the status as before the claim.
pub(super) async fn release(mut tx: SqliteTx, ids: &[Uuid], owner: Uuid) -> StoreResult<()> {
    let at = tx.at;
    for email in ids {
        tx.execute(
            "UPDATE email_outbox
                SET status = CASE WHEN attempts <= 1 THEN 'queued' ELSE 'retrying' END,
                    attempts = max(attempts - 1, 0), lease_until = NULL, lease_owner = NULL,
                    updated_at = $3
              WHERE id = $1 AND status = 'sending' AND lease_owner = $2",
            vec![id(*email), id(owner), Arg::Time(Some(at))],
        )
        .await?;
    }
    tx.commit_inner().await?;
    Ok(())
}
