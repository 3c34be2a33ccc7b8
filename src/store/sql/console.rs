//! [`ConsoleStore`] and [`ConsoleTx`] once for both adapters (R49). Every
//! read is served by an index and every list is bounded by a `LIMIT`:
//! sessions by their primary key, failed emails by `email_outbox_failed`,
//! the endpoints' actions by `events_operator`; the charts read counters
//! per minute (`sink_minutes_minute`, `email_minutes`' key), never the
//! attempts themselves.

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use uuid::Uuid;

use super::{
    Arg, Conn, SqlStore, SqlTx, StoredRow, Wake, id, limit, opt_id, opt_text, text, webhooks,
};
use crate::domain::{BusinessId, InvitationId};
use crate::store::{
    CONSOLE_LIMIT, ConsoleBusinessRow, ConsoleEmailRow, ConsoleInvitationRow, ConsoleSession,
    ConsoleStore, ConsoleTx, EventPosition, FailedFilter, InviteeInvitationRecord, MinuteTally,
    OperatorActionRow, SinkMinute, StoreResult, WebhookEndpointChange, WebhookEndpointRecord,
};

const EMAIL_COLUMNS: &str = "id, business_id, invitation_id, template, recipient, message_id, \
     status, attempts, last_error, created_at, updated_at";

const INVITATION_ROW: &str = "SELECT i.id, i.business_id, b.name AS business_name, i.kind, i.email, \
     i.status, i.created_at, i.expires_at FROM invitations i JOIN businesses b ON b.id = i.business_id";

/// The failed emails a filter names: `$1` one id or NULL, `$2` a part of
/// the recipient (lower case, LIKE pattern) or NULL, `$3` a template or NULL.
const FAILED_WHERE: &str = "status = 'failed' AND ($1 IS NULL OR id = $1)
     AND ($2 IS NULL OR lower(recipient) LIKE $2) AND ($3 IS NULL OR template = $3)";

fn filter_args(only: Option<Uuid>, filter: &FailedFilter) -> Vec<Arg> {
    let pattern = filter
        .recipient
        .as_deref()
        .map(str::trim)
        .filter(|r| !r.is_empty())
        .map(|r| format!("%{}%", escape_like(&r.to_lowercase())));
    let template = filter
        .template
        .as_deref()
        .map(str::trim)
        .filter(|t| !t.is_empty());
    vec![opt_id(only), Arg::Text(pattern), opt_text(template)]
}

/// `%` and `_` in what an operator typed match themselves. Neither dialect
/// has a default LIKE escape character, so they are dropped instead: an
/// address holds `_` rarely, and `%` never.
fn escape_like(s: &str) -> String {
    s.chars().filter(|c| *c != '%' && *c != '_').collect()
}

fn email_row(row: &impl StoredRow) -> StoreResult<ConsoleEmailRow> {
    Ok(ConsoleEmailRow {
        id: row.uuid("id")?,
        business_id: BusinessId(row.uuid("business_id")?),
        invitation_id: row.uuid_opt("invitation_id")?.map(InvitationId),
        template: row.text("template")?,
        recipient: row.text("recipient")?,
        message_id: row.text("message_id")?,
        status: row.text("status")?,
        attempts: row.int("attempts")?.max(0) as u32,
        last_error: row.text_opt("last_error")?,
        created_at: row.time("created_at")?,
        updated_at: row.time("updated_at")?,
    })
}

fn invitation_row(row: &impl StoredRow) -> StoreResult<ConsoleInvitationRow> {
    Ok(ConsoleInvitationRow {
        id: InvitationId(row.uuid("id")?),
        business_id: BusinessId(row.uuid("business_id")?),
        business_name: row.text("business_name")?,
        kind: row.text("kind")?,
        email: row.text_opt("email")?,
        status: row.text("status")?,
        created_at: row.time("created_at")?,
        expires_at: row.time("expires_at")?,
    })
}

#[async_trait]
impl<S: SqlStore> ConsoleStore for S {
    async fn insert_console_session(&self, session: &ConsoleSession) -> StoreResult<()> {
        let mut w = self.writer().await?;
        let at = w.stamp();
        w.execute(
            "DELETE FROM console_sessions WHERE expires_at <= coalesce($1, CURRENT_TIMESTAMP)",
            vec![Arg::Time(at)],
        )
        .await?;
        w.execute(
            "INSERT INTO console_sessions (id_hash, key_name, scope, csrf_token, created_at, expires_at)
             VALUES ($1, $2, $3, $4, coalesce($5, CURRENT_TIMESTAMP), $6)",
            vec![
                Arg::Bytes(session.id_hash.clone()),
                text(&session.key_name),
                text(&session.scope),
                text(&session.csrf_token),
                Arg::Time(at),
                Arg::Time(Some(session.expires_at)),
            ],
        )
        .await?;
        S::finish_write(w).await
    }

    async fn console_session(&self, id_hash: &[u8]) -> StoreResult<Option<ConsoleSession>> {
        let mut r = self.reader();
        let at = r.stamp();
        r.fetch_optional(
            "SELECT id_hash, key_name, scope, csrf_token, expires_at FROM console_sessions
              WHERE id_hash = $1 AND expires_at > coalesce($2, CURRENT_TIMESTAMP)",
            vec![Arg::Bytes(id_hash.to_vec()), Arg::Time(at)],
        )
        .await?
        .map(|row| {
            Ok(ConsoleSession {
                id_hash: row.bytes("id_hash")?,
                key_name: row.text("key_name")?,
                scope: row.text("scope")?,
                csrf_token: row.text("csrf_token")?,
                expires_at: row.time("expires_at")?,
            })
        })
        .transpose()
    }

    async fn delete_console_session(&self, id_hash: &[u8]) -> StoreResult<()> {
        let mut w = self.writer().await?;
        w.execute(
            "DELETE FROM console_sessions WHERE id_hash = $1",
            vec![Arg::Bytes(id_hash.to_vec())],
        )
        .await?;
        S::finish_write(w).await
    }

    async fn console_invitation(
        &self,
        invitation: InvitationId,
    ) -> StoreResult<Option<InviteeInvitationRecord>> {
        super::invitations::named(&mut self.reader(), S::Tx::INVITATION_SELECT, invitation).await
    }

    async fn console_search_invitations(
        &self,
        invitation: Option<InvitationId>,
        email: Option<&str>,
    ) -> StoreResult<Vec<ConsoleInvitationRow>> {
        let (sql, args) = match (invitation, email) {
            (Some(i), _) => (format!("{INVITATION_ROW} WHERE i.id = $1"), vec![id(i.0)]),
            // Only member invitations have an address (a CHECK says so);
            // saying it lets their index serve the search
            // (`invitations_member_email_lower`, partial on the kind).
            (None, Some(e)) => (
                format!(
                    "{INVITATION_ROW} WHERE i.kind = 'member' AND lower(i.email) = $1
                      ORDER BY i.created_at DESC, i.id DESC LIMIT $2"
                ),
                vec![text(&e.to_lowercase()), limit(CONSOLE_LIMIT)],
            ),
            (None, None) => return Ok(Vec::new()),
        };
        self.reader()
            .fetch_all(&sql, args)
            .await?
            .iter()
            .map(invitation_row)
            .collect()
    }

    async fn console_search_businesses(
        &self,
        business: Option<BusinessId>,
        name: &str,
    ) -> StoreResult<Vec<ConsoleBusinessRow>> {
        let pattern = format!("%{}%", escape_like(&name.trim().to_lowercase()));
        self.reader()
            .fetch_all(
                "SELECT id, public_id, name, created_at FROM businesses
                  WHERE id = $1 OR public_id = $2 OR lower(name) LIKE $3
                  ORDER BY name, id LIMIT $4",
                vec![
                    opt_id(business.map(|b| b.0)),
                    text(name.trim()),
                    text(&pattern),
                    limit(CONSOLE_LIMIT),
                ],
            )
            .await?
            .iter()
            .map(|row| {
                Ok(ConsoleBusinessRow {
                    id: BusinessId(row.uuid("id")?),
                    public_id: row.text("public_id")?,
                    name: row.text("name")?,
                    created_at: row.time("created_at")?,
                })
            })
            .collect()
    }

    async fn console_pending_invitations(
        &self,
        business: BusinessId,
    ) -> StoreResult<Vec<ConsoleInvitationRow>> {
        self.reader()
            .fetch_all(
                &format!(
                    "{INVITATION_ROW} WHERE i.business_id = $1 AND i.status = 'pending'
                      ORDER BY i.created_at DESC, i.id DESC LIMIT $2"
                ),
                vec![id(business.0), limit(CONSOLE_LIMIT)],
            )
            .await?
            .iter()
            .map(invitation_row)
            .collect()
    }

    async fn console_pending_member_count(&self, business: BusinessId) -> StoreResult<u64> {
        let row = self
            .reader()
            .fetch_one(
                "SELECT count(*) AS n FROM invitations
                  WHERE business_id = $1 AND status = 'pending' AND kind = 'member'",
                vec![id(business.0)],
            )
            .await?;
        Ok(row.int("n")?.max(0) as u64)
    }

    async fn console_invitation_emails(
        &self,
        invitation: InvitationId,
    ) -> StoreResult<Vec<ConsoleEmailRow>> {
        self.reader()
            .fetch_all(
                &format!(
                    "SELECT {EMAIL_COLUMNS} FROM email_outbox WHERE invitation_id = $1
                      ORDER BY created_at, id LIMIT $2"
                ),
                vec![id(invitation.0), limit(CONSOLE_LIMIT)],
            )
            .await?
            .iter()
            .map(email_row)
            .collect()
    }

    async fn console_failed_emails(
        &self,
        filter: &FailedFilter,
        max: u32,
    ) -> StoreResult<Vec<ConsoleEmailRow>> {
        let mut args = filter_args(None, filter);
        args.push(limit(max));
        self.reader()
            .fetch_all(
                &format!(
                    "SELECT {EMAIL_COLUMNS} FROM email_outbox WHERE {FAILED_WHERE}
                      ORDER BY updated_at DESC, id DESC LIMIT $4"
                ),
                args,
            )
            .await?
            .iter()
            .map(email_row)
            .collect()
    }

    async fn console_count_failed(&self, filter: &FailedFilter) -> StoreResult<u64> {
        let row = self
            .reader()
            .fetch_one(
                &format!("SELECT count(*) AS n FROM email_outbox WHERE {FAILED_WHERE}"),
                filter_args(None, filter),
            )
            .await?;
        Ok(row.int("n")?.max(0) as u64)
    }

    async fn console_email_minutes(&self, since: DateTime<Utc>) -> StoreResult<Vec<MinuteTally>> {
        // One row per minute and recorder session: the minute's rows summed.
        self.reader()
            .fetch_all(
                "SELECT minute, CAST(sum(sent) AS BIGINT) AS sent, CAST(sum(failed) AS BIGINT) AS failed
                   FROM email_minutes WHERE minute >= $1 GROUP BY minute",
                vec![Arg::Time(Some(since))],
            )
            .await?
            .iter()
            .map(|row| {
                Ok(MinuteTally {
                    minute: row.time("minute")?,
                    sent: row.int("sent")?.max(0) as u64,
                    failed: row.int("failed")?.max(0) as u64,
                })
            })
            .collect()
    }

    async fn console_sink_minutes_since(
        &self,
        since: DateTime<Utc>,
        max: u32,
    ) -> StoreResult<Vec<SinkMinute>> {
        self.reader()
            .fetch_all(
                "SELECT sink, minute, sent, failed FROM sink_minutes WHERE minute >= $1
                  ORDER BY minute DESC, sink LIMIT $2",
                vec![Arg::Time(Some(since)), limit(max)],
            )
            .await?
            .iter()
            .map(|row| {
                Ok(SinkMinute {
                    sink: row.text("sink")?,
                    minute: row.time("minute")?,
                    sent: row.int("sent")?.max(0) as u64,
                    failed: row.int("failed")?.max(0) as u64,
                })
            })
            .collect()
    }

    async fn purge_chart_minutes(&self, before: DateTime<Utc>) -> StoreResult<u64> {
        let mut w = self.writer().await?;
        let mut purged = 0;
        for table in ["sink_minutes", "email_minutes"] {
            purged += w
                .execute(
                    &format!("DELETE FROM {table} WHERE minute < $1"),
                    vec![Arg::Time(Some(before))],
                )
                .await?;
        }
        S::finish_write(w).await?;
        Ok(purged)
    }

    async fn console_operator_actions(&self, max: u32) -> StoreResult<Vec<OperatorActionRow>> {
        // Served by `events_operator` (occurred_at, WHERE business_id IS NULL).
        self.reader()
            .fetch_all(
                "SELECT occurred_at, data ->> 'action' AS action, data ->> 'key_name' AS key_name,
                        data ->> 'target' AS target, data ->> 'since' AS since
                   FROM events WHERE business_id IS NULL AND type = 'console.action'
                  ORDER BY occurred_at DESC LIMIT $1",
                vec![limit(max)],
            )
            .await?
            .iter()
            .map(|row| {
                Ok(OperatorActionRow {
                    occurred_at: row.time("occurred_at")?,
                    action: row.text_opt("action")?,
                    key_name: row.text_opt("key_name")?,
                    target: row.text_opt("target")?,
                    since: row.text_opt("since")?,
                })
            })
            .collect()
    }

    async fn console_now(&self) -> StoreResult<DateTime<Utc>> {
        let mut r = self.reader();
        let at = r.stamp();
        r.fetch_one(
            "SELECT coalesce($1, CURRENT_TIMESTAMP) AS now",
            vec![Arg::Time(at)],
        )
        .await?
        .time("now")
    }

    async fn console_email_depth(&self) -> StoreResult<(u64, f64)> {
        let (depth, age) = self.outbox_depth().await?;
        Ok((depth, age.max(0.0)))
    }
}

#[async_trait]
impl<T: SqlTx> ConsoleTx for T {
    async fn requeue_failed_emails(
        &mut self,
        only: Option<Uuid>,
        filter: &FailedFilter,
        max: u32,
    ) -> StoreResult<Vec<ConsoleEmailRow>> {
        let at = self.stamp();
        let mut args = filter_args(only, filter);
        args.push(limit(max));
        args.push(Arg::Time(at));
        // `status = 'failed'` outside the subquery too: on Postgres a row
        // another transaction requeued meanwhile is checked again after its
        // lock and left alone.
        let rows = self
            .fetch_all(
                &format!(
                    "UPDATE email_outbox
                        SET status = 'queued', attempts = 0, lease_until = NULL, lease_owner = NULL,
                            available_at = coalesce($5, CURRENT_TIMESTAMP),
                            updated_at = coalesce($5, CURRENT_TIMESTAMP)
                      WHERE status = 'failed'
                        AND id IN (SELECT id FROM email_outbox WHERE {FAILED_WHERE}
                                    ORDER BY updated_at DESC, id DESC LIMIT $4)
                  RETURNING {EMAIL_COLUMNS}"
                ),
                args,
            )
            .await?;
        let mut out = rows
            .iter()
            .map(email_row)
            .collect::<StoreResult<Vec<_>>>()?;
        if !out.is_empty() {
            self.wrote(Wake::Outbox);
        }
        out.sort_by_key(|e| (e.created_at, e.id));
        Ok(out)
    }

    async fn pause_webhook_endpoint(
        &mut self,
        endpoint_id: Uuid,
        paused: bool,
    ) -> StoreResult<Option<WebhookEndpointRecord>> {
        let change = WebhookEndpointChange {
            disabled: Some(paused),
            ..Default::default()
        };
        webhooks::update_in(self, endpoint_id, &change).await
    }

    async fn replay_webhook_endpoint_to(
        &mut self,
        endpoint_id: Uuid,
        to: EventPosition,
    ) -> StoreResult<bool> {
        webhooks::replay_in(self, endpoint_id, to).await
    }
}
