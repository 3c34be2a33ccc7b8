//! The outbox statements only Postgres has: batches through `UNNEST`, and
//! the `SKIP LOCKED` claim and the outcome batch through their PL/pgSQL
//! functions (`email_outbox_claim`, `email_outbox_record`).

use std::time::Duration;

use sqlx::postgres::PgPool;
use uuid::Uuid;

use super::PgTx;
use super::conn::Bounded as _;
use crate::store::sql::{Conn as _, rows};
use crate::store::{AttemptOutcome, ClaimedEmail, EmailAttempt, NewEmail, NewEvent, StoreResult};

/// Several events in one statement; `WITH ORDINALITY` keeps the order, so
/// `seq` (insertion order inside the transaction) follows the slice.
pub(super) async fn insert_events(tx: &mut PgTx, events: &[NewEvent]) -> StoreResult<()> {
    sqlx::query(
        "INSERT INTO events (id, business_id, invitation_id, type, actor_user_id, from_status, to_status, data,
                             join_request_id)
         SELECT id, business_id, invitation_id, type, actor_user_id, from_status::invitation_status,
                to_status::invitation_status, data, join_request_id
           FROM unnest($1::uuid[], $2::uuid[], $3::uuid[], $4::text[], $5::text[], $6::text[], $7::text[],
                       $8::jsonb[], $9::uuid[])
                WITH ORDINALITY AS e(id, business_id, invitation_id, type, actor_user_id, from_status,
                                     to_status, data, join_request_id, n)
          ORDER BY n",
    )
    .bind(events.iter().map(|e| e.id).collect::<Vec<_>>())
    .bind(events.iter().map(|e| e.business_id.map(|b| b.0)).collect::<Vec<_>>())
    .bind(events.iter().map(|e| e.invitation_id.map(|i| i.0)).collect::<Vec<_>>())
    .bind(events.iter().map(|e| e.event_type.as_str()).collect::<Vec<_>>())
    .bind(events.iter().map(|e| e.actor_user_id.as_ref().map(|u| u.as_str())).collect::<Vec<_>>())
    .bind(events.iter().map(|e| e.from_status.map(|s| s.as_str())).collect::<Vec<_>>())
    .bind(events.iter().map(|e| e.to_status.map(|s| s.as_str())).collect::<Vec<_>>())
    .bind(events.iter().map(|e| &e.data).collect::<Vec<_>>())
    .bind(events.iter().map(|e| e.join_request_id.map(|j| j.0)).collect::<Vec<_>>())
    .execute(&mut *tx.tx)
    .bounded()
    .await?;
    Ok(())
}

/// Several outbox rows in one statement, each as `sql::outbox::enqueue_email`
/// writes one: due at once, stamped with the transaction's time.
pub(super) async fn enqueue_emails(tx: &mut PgTx, emails: &[NewEmail]) -> StoreResult<()> {
    sqlx::query(
        "INSERT INTO email_outbox (id, business_id, invitation_id, template, locale, recipient, recipient_name,
                                   context, message_id, available_at, created_at, updated_at, join_request_id)
         SELECT id, business_id, invitation_id, template, locale, recipient, recipient_name, context, message_id,
                now(), now(), now(), join_request_id
           FROM unnest($1::uuid[], $2::uuid[], $3::uuid[], $4::text[], $5::text[], $6::text[], $7::text[],
                       $8::jsonb[], $9::text[], $10::uuid[])
                AS m(id, business_id, invitation_id, template, locale, recipient, recipient_name, context,
                     message_id, join_request_id)",
    )
    .bind(emails.iter().map(|m| m.id).collect::<Vec<_>>())
    .bind(emails.iter().map(|m| m.business_id.0).collect::<Vec<_>>())
    .bind(emails.iter().map(|m| m.invitation_id.map(|i| i.0)).collect::<Vec<_>>())
    .bind(emails.iter().map(|m| m.template.as_str()).collect::<Vec<_>>())
    .bind(emails.iter().map(|m| m.locale.as_str()).collect::<Vec<_>>())
    .bind(emails.iter().map(|m| m.recipient.as_str()).collect::<Vec<_>>())
    .bind(emails.iter().map(|m| m.recipient_name.as_deref()).collect::<Vec<_>>())
    .bind(emails.iter().map(|m| &m.context).collect::<Vec<_>>())
    .bind(emails.iter().map(|m| m.message_id.as_str()).collect::<Vec<_>>())
    .bind(emails.iter().map(|m| m.join_request_id.map(|j| j.0)).collect::<Vec<_>>())
    .execute(&mut *tx.tx)
    .bounded()
    .await?;
    Ok(())
}

/// The ends of several attempts in one round trip (`email_outbox_record`):
/// the attempt rows, the console chart's counts of the minute (this
/// session's row of it, see migration 20261206020000_email_minutes), then
/// each outbox row's new state (the columns each outcome sets there, and no
/// others). The arrays are parallel, one element per attempt.
pub(super) async fn finish_attempts(tx: &mut PgTx, attempts: &[EmailAttempt]) -> StoreResult<()> {
    let status = |a: &EmailAttempt| match a.outcome {
        AttemptOutcome::Sent => "sent",
        AttemptOutcome::Retry { .. } => "retrying",
        AttemptOutcome::Failed => "failed",
    };
    let after = |a: &EmailAttempt| match a.outcome {
        AttemptOutcome::Retry { after } => after.as_secs_f64(),
        _ => 0.0,
    };
    // One function (migration 20261207040000_email_claim_in_one_function)
    // whose planner settings make the update find each outbox row by its
    // key: left to choose, a cached generic plan read the whole outbox for
    // every batch (see `claim`).
    sqlx::query("SELECT email_outbox_record($1, $2, $3, $4, $5, $6, $7, $8, $9)")
        .bind(attempts.iter().map(|_| Uuid::now_v7()).collect::<Vec<_>>())
        .bind(attempts.iter().map(|a| a.outbox_id).collect::<Vec<_>>())
        .bind(attempts.iter().map(|a| a.business_id.0).collect::<Vec<_>>())
        .bind(attempts.iter().map(|a| a.kind).collect::<Vec<_>>())
        .bind(
            attempts
                .iter()
                .map(|a| a.smtp_code.map(|c| c as i16))
                .collect::<Vec<_>>(),
        )
        .bind(
            attempts
                .iter()
                .map(|a| a.detail.as_deref())
                .collect::<Vec<_>>(),
        )
        .bind(
            attempts
                .iter()
                .map(|a| a.duration.as_millis().min(i32::MAX as u128) as i32)
                .collect::<Vec<_>>(),
        )
        .bind(attempts.iter().map(status).collect::<Vec<_>>())
        .bind(attempts.iter().map(after).collect::<Vec<_>>())
        .execute(&mut *tx.tx)
        .bounded()
        .await?;
    Ok(())
}

/// One statement: pick due rows (queued, retrying, or sending with a lapsed
/// lease or under a dead owner), skip rows another replica holds, mark them
/// sending under `owner`, commit.
pub(super) async fn claim(
    pool: &mut PgPool,
    limit: u32,
    lease: Duration,
    owner: Uuid,
) -> StoreResult<Vec<ClaimedEmail>> {
    // The claim is `email_outbox_claim` (migration
    // 20261207040000_email_claim_in_one_function), which keeps the planner
    // to the due index read in order, stopping at the limit, and to the
    // outbox's key for the rows it updates, whatever its statistics say.
    // Left to choose, it sorted every due row for each claim (a bitmap scan;
    // migration 20261207020000_email_claim_in_index_order) and, once a
    // generic plan was cached, found the picked rows by reading the whole
    // outbox (20 ms a claim of one email beside 6,000 sent; BENCHMARKS.md).
    // The two kinds of due rows are read apart, each through its partial
    // index: one `OR` made every claim a bitmap scan. Rows locked but not
    // picked are free again when the statement commits.
    //
    // The claim's commit does not wait for its WAL flush (the function sets
    // `synchronous_commit` off for this one transaction). A claim is a
    // lease, visible to every replica at once either way; only a crash of
    // Postgres itself can lose it, and then its rows are simply due again,
    // as after a lapsed lease: still at least once, with duplicates only
    // for sends in flight at the crash. The outcome's own commit flushes
    // the WAL up to itself, the claim included. Waiting for the flush
    // (about 1 ms under load here) was half of create -> email (p50 57 vs
    // 22-28 ms, BENCHMARKS.md).
    //
    // A `sending` row whose owner's heartbeat stopped is taken before its
    // lease lapses (see `heartbeat`); one of a build without heartbeats (no
    // owner) waits for its lease. And nothing is claimed unless our own beat
    // is fresh, so no live owner ever looks dead to the others.
    pool.fetch_all(
        "SELECT id, business_id, invitation_id, template, locale, recipient, recipient_name,
                context, message_id, attempts, created_at
           FROM email_outbox_claim($1, $2, $3, $4, $5)",
        vec![
            crate::store::sql::limit(limit),
            super::conn::secs(Some(lease)),
            crate::store::sql::id(owner),
            super::conn::secs(Some(super::heartbeat::DEAD_AFTER)),
            super::conn::secs(Some(super::heartbeat::CLAIM_IF_BEAT_WITHIN)),
        ],
    )
    .await?
    .iter()
    .map(rows::claimed_email)
    .collect()
}

/// Undoes this process's claim of `ids`: due again at once (`available_at`
/// is as the claim found it), the attempt count back to what it was, the
/// status back to `queued` for an email never attempted and to `retrying`
/// otherwise. Only rows still `sending` under `owner`: a row whose lease
/// lapsed and that another replica took is theirs now.
pub(super) async fn release(pool: &PgPool, ids: &[Uuid], owner: Uuid) -> StoreResult<()> {
    sqlx::query(
        "UPDATE email_outbox
            SET status = (CASE WHEN attempts <= 1 THEN 'queued' ELSE 'retrying' END)::email_status,
                attempts = greatest(attempts - 1, 0), lease_until = NULL, lease_owner = NULL,
                updated_at = now()
          WHERE id = ANY($1) AND status = 'sending' AND lease_owner = $2",
    )
    .bind(ids)
    .bind(owner)
    .execute(pool)
    .bounded()
    .await?;
    Ok(())
}
