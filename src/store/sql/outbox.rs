//! What a transaction appends for later: events (R16, R17), queued emails
//! (R29) and reminder marks (R32); and an invitation's timeline read back
//! from them.

use std::time::Duration;

use chrono::{DateTime, Utc};
use uuid::Uuid;

use super::{Arg, Conn, EnumType, StoredRow as _, id, offset_secs, opt_id, opt_text, rows, text};
use crate::domain::{BusinessId, InvitationId};
use crate::store::stored::corrupt;
use crate::store::{NewEmail, NewEvent, StoreResult, TimelineEntry};

pub(crate) async fn insert_event(c: &mut impl Conn, e: &NewEvent) -> StoreResult<()> {
    let at = c.stamp();
    c.execute(
        &format!(
            "{INSERT_EVENTS} ($1, $2, $3, $4, $5, $6, $7, $8, coalesce($9, CURRENT_TIMESTAMP), $10)"
        ),
        event_row(e, at),
    )
    .await?;
    Ok(())
}

pub(super) async fn enqueue_email(c: &mut impl Conn, m: &NewEmail) -> StoreResult<()> {
    let at = c.stamp();
    c.execute(
        &format!(
            "{INSERT_EMAILS} ($1, $2, $3, $4, $5, $6, $7, $8, $9, coalesce($10, CURRENT_TIMESTAMP),
                 coalesce($11, CURRENT_TIMESTAMP), coalesce($12, CURRENT_TIMESTAMP), $13)"
        ),
        email_row(m, at),
    )
    .await?;
    Ok(())
}

/// The insert of events with their time, up to its `VALUES`; each row is
/// [`event_row`] (a time of `None` stands for the database's
/// `CURRENT_TIMESTAMP`, as with [`Conn::stamp`]). The single inserts and
/// SQLite's batches; Postgres batches through `UNNEST`.
pub(crate) const INSERT_EVENTS: &str =
    "INSERT INTO events (id, business_id, invitation_id, type, actor_user_id, from_status, to_status, data,
                         occurred_at, join_request_id)
     VALUES";

pub(crate) fn event_row(e: &NewEvent, at: Option<DateTime<Utc>>) -> Vec<Arg> {
    let status = |s: Option<crate::domain::InvitationStatus>| {
        Arg::Enum(EnumType::InvitationStatus, s.map(|s| s.as_str()))
    };
    vec![
        id(e.id),
        opt_id(e.business_id.map(|b| b.0)),
        opt_id(e.invitation_id.map(|i| i.0)),
        text(&e.event_type),
        opt_text(e.actor_user_id.as_ref().map(|u| u.as_str())),
        status(e.from_status),
        status(e.to_status),
        Arg::Json(e.data.clone()),
        Arg::Time(at),
        opt_id(e.join_request_id.map(|j| j.0)),
    ]
}

/// The insert of outbox rows queued at `at`, up to its `VALUES`; each row
/// is [`email_row`]. As [`INSERT_EVENTS`], for SQLite's batches.
pub(crate) const INSERT_EMAILS: &str =
    "INSERT INTO email_outbox (id, business_id, invitation_id, template, locale, recipient, recipient_name,
                               context, message_id, available_at, created_at, updated_at, join_request_id)
     VALUES";

pub(crate) fn email_row(m: &NewEmail, at: Option<DateTime<Utc>>) -> Vec<Arg> {
    vec![
        id(m.id),
        id(m.business_id.0),
        opt_id(m.invitation_id.map(|i| i.0)),
        text(m.template.as_str()),
        text(m.locale.as_str()),
        text(m.recipient.as_str()),
        opt_text(m.recipient_name.as_deref()),
        Arg::Json(m.context.clone()),
        text(&m.message_id),
        Arg::Time(at),
        Arg::Time(at),
        Arg::Time(at),
        opt_id(m.join_request_id.map(|j| j.0)),
    ]
}

pub(super) async fn cancel_email(c: &mut impl Conn, email: Uuid, reason: &str) -> StoreResult<()> {
    let at = c.stamp();
    c.execute(
        "UPDATE email_outbox SET status = 'cancelled', lease_until = NULL, last_error = $2,
                updated_at = coalesce($3, CURRENT_TIMESTAMP)
         WHERE id = $1",
        vec![id(email), text(reason), Arg::Time(at)],
    )
    .await?;
    Ok(())
}

pub(super) async fn record_reminder(
    c: &mut impl Conn,
    invitation: InvitationId,
    business: BusinessId,
    offset: Duration,
    outbox_id: Uuid,
) -> StoreResult<bool> {
    let at = c.stamp();
    let n = c
        .execute(
            "INSERT INTO invitation_reminders (invitation_id, business_id, offset_secs, outbox_id, queued_at)
             VALUES ($1, $2, $3, $4, coalesce($5, CURRENT_TIMESTAMP))
             ON CONFLICT (invitation_id, offset_secs) DO NOTHING",
            vec![
                id(invitation.0),
                id(business.0),
                offset_secs(offset),
                id(outbox_id),
                Arg::Time(at),
            ],
        )
        .await?;
    Ok(n == 1)
}

/// Whose story a timeline tells: the rows naming it in `events` and
/// `email_outbox` (the column is the same in both tables).
#[derive(Clone, Copy)]
pub(super) enum TimelineOf {
    Invitation(InvitationId),
    /// R53: a join request's events and the emails it caused.
    JoinRequest(crate::domain::JoinRequestId),
}

impl TimelineOf {
    fn column_and_id(self) -> (&'static str, Arg) {
        match self {
            TimelineOf::Invitation(i) => ("invitation_id", id(i.0)),
            TimelineOf::JoinRequest(r) => ("join_request_id", id(r.0)),
        }
    }
}

/// The events naming `of`, and the delivery attempts and feedback of its
/// emails, oldest first (R34), in one statement: three branches of one
/// `UNION ALL`, each served by its own index, with the columns of the other
/// two as typed NULLs (`src` says which branch a row came from; at the
/// same instant events come first, then attempts, then feedback).
pub(super) async fn timeline(c: &mut impl Conn, of: TimelineOf) -> StoreResult<Vec<TimelineEntry>> {
    // The column is one of two names fixed above, never input.
    let (column, subject) = of.column_and_id();
    let sql = format!(
        "SELECT 0 AS src, id, occurred_at AS at, type, actor_user_id,
                CAST(from_status AS TEXT) AS from_status, CAST(to_status AS TEXT) AS to_status, data,
                CAST(NULL AS TEXT) AS template, CAST(NULL AS TEXT) AS recipient,
                CAST(NULL AS TEXT) AS outcome, CAST(NULL AS smallint) AS smtp_code,
                CAST(NULL AS TEXT) AS detail, CAST(NULL AS integer) AS duration_ms,
                CAST(NULL AS TEXT) AS kind, CAST(NULL AS TEXT) AS source, CAST(NULL AS TEXT) AS status_code
           FROM events WHERE {column} = $1
         UNION ALL
         SELECT 1, a.id, a.attempted_at, NULL, NULL, NULL, NULL, NULL,
                o.template, o.recipient, a.outcome, a.smtp_code, a.detail, a.duration_ms, NULL, NULL, NULL
           FROM email_attempts a JOIN email_outbox o ON o.id = a.outbox_id
          WHERE o.{column} = $1
         UNION ALL
         SELECT 2, f.id, f.received_at, NULL, NULL, NULL, NULL, NULL,
                o.template, o.recipient, NULL, NULL, f.detail, NULL, f.kind, f.source, f.status_code
           FROM email_feedback f JOIN email_outbox o ON o.id = f.outbox_id
          WHERE o.{column} = $1 AND f.kind IS NOT NULL
         ORDER BY at, src, id"
    );
    let mut out = c
        .fetch_all(&sql, vec![subject])
        .await?
        .iter()
        .map(|row| match row.int("src")? {
            0 => rows::timeline_event(row),
            1 => rows::timeline_delivery(row),
            2 => rows::timeline_feedback(row),
            other => Err(corrupt("timeline branch", &other.to_string())),
        })
        .collect::<StoreResult<Vec<_>>>()?;
    // By the instant itself, whatever text form a dialect keeps it in; the
    // sort is stable, so rows of one instant stay in the statement's order.
    out.sort_by_key(|e| e.at());
    Ok(out)
}
