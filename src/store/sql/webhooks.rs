//! [`WebhookStore`] once for both adapters (R48). Changes to an endpoint
//! commit with an events wake-up, so every publisher reloads the endpoints
//! at once rather than at its next poll.

use std::time::Duration;

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use uuid::Uuid;

use super::{Arg, Conn, SqlStore, SqlTx, StoredRow, Wake, id, int, opt_text, text};
use crate::store::{
    AttemptVerdict, EventPosition, NewWebhookEndpoint, StoreResult, WebhookAttempt,
    WebhookDeliveryRecord, WebhookEndpointChange, WebhookEndpointRecord, WebhookStore,
    endpoint_sink,
};

const ENDPOINT_COLUMNS: &str = "id, url, description, event_types, secret, previous_secret,
    previous_secret_until, disabled, disabled_reason, failing_since, last_error, last_success_at,
    created_at, updated_at";

/// `event_types` as stored: comma-separated (type names hold no commas).
fn types_arg(types: Option<&Vec<String>>) -> Arg {
    Arg::Text(types.map(|t| t.join(",")))
}

fn endpoint(row: &impl StoredRow) -> StoreResult<WebhookEndpointRecord> {
    let previous = match (
        row.text_opt("previous_secret")?,
        row.time_opt("previous_secret_until")?,
    ) {
        (Some(secret), Some(until)) => Some((secret, until)),
        _ => None,
    };
    Ok(WebhookEndpointRecord {
        id: row.uuid("id")?,
        url: row.text("url")?,
        description: row.text_opt("description")?,
        event_types: row.text_opt("event_types")?.map(|t| {
            t.split(',')
                .filter(|s| !s.is_empty())
                .map(str::to_owned)
                .collect()
        }),
        secret: row.text("secret")?,
        previous_secret: previous,
        disabled: row.flag("disabled")?,
        disabled_reason: row.text_opt("disabled_reason")?,
        failing_since: row.time_opt("failing_since")?,
        last_error: row.text_opt("last_error")?,
        last_success_at: row.time_opt("last_success_at")?,
        created_at: row.time("created_at")?,
        updated_at: row.time("updated_at")?,
    })
}

async fn read(c: &mut impl Conn, endpoint_id: Uuid) -> StoreResult<Option<WebhookEndpointRecord>> {
    c.fetch_optional(
        &format!("SELECT {ENDPOINT_COLUMNS} FROM webhook_endpoints WHERE id = $1"),
        vec![id(endpoint_id)],
    )
    .await?
    .map(|row| endpoint(&row))
    .transpose()
}

/// Changes an endpoint inside `tx` (the API's change, and the console's
/// pause and resume, whose `console.action` event commits with it). A
/// resumed endpoint's cursor is due at once. `None`: no such endpoint.
pub(super) async fn update_in<T: SqlTx>(
    tx: &mut T,
    endpoint_id: Uuid,
    change: &WebhookEndpointChange,
) -> StoreResult<Option<WebhookEndpointRecord>> {
    let at = tx.stamp();
    let Some(current) = read(tx, endpoint_id).await? else {
        return Ok(None);
    };
    let url = change.url.as_deref().unwrap_or(&current.url);
    let types = match &change.event_types {
        Some(types) => types.as_ref(),
        None => current.event_types.as_ref(),
    };
    let disabled = change.disabled.unwrap_or(current.disabled);
    let reason = match (current.disabled, disabled) {
        (false, true) => Some("disabled by an operator".to_owned()),
        (true, true) => current.disabled_reason.clone(),
        (_, false) => None,
    };
    let resumed = current.disabled && !disabled;
    let row = tx
        .fetch_one(
            &format!(
                "UPDATE webhook_endpoints
                    SET url = $2, event_types = $3, disabled = $4, disabled_reason = $5,
                        failing_since = CASE WHEN $6 THEN NULL ELSE failing_since END,
                        updated_at = coalesce($7, CURRENT_TIMESTAMP)
                  WHERE id = $1
              RETURNING {ENDPOINT_COLUMNS}"
            ),
            vec![
                id(endpoint_id),
                text(url),
                types_arg(types),
                Arg::Bool(disabled),
                opt_text(reason.as_deref()),
                Arg::Bool(resumed),
                Arg::Time(at),
            ],
        )
        .await?;
    if resumed {
        // Where it stopped, without waiting out the last backoff.
        tx.execute(
            "UPDATE event_cursors SET attempts = 0, available_at = coalesce($2, CURRENT_TIMESTAMP)
              WHERE sink = $1",
            vec![text(&endpoint_sink(endpoint_id)), Arg::Time(at)],
        )
        .await?;
    }
    let record = endpoint(&row)?;
    tx.wrote(Wake::Events);
    Ok(Some(record))
}

/// Puts an endpoint's cursor back at `to` inside `tx` (R48's replay; `to`
/// from [`EventLog::event_position_before`](crate::store::EventLog), read
/// before the transaction). `false`: no such endpoint.
pub(super) async fn replay_in<T: SqlTx>(
    tx: &mut T,
    endpoint_id: Uuid,
    to: EventPosition,
) -> StoreResult<bool> {
    if read(tx, endpoint_id).await?.is_none() {
        return Ok(false);
    }
    place_cursor(tx, &endpoint_sink(endpoint_id), to).await?;
    tx.wrote(Wake::Events);
    Ok(true)
}

/// Puts `sink`'s cursor at `to` (creating it), only ever backwards, with the
/// lease dropped (a pass in flight cannot move it forward again) and the
/// next attempt due now.
async fn place_cursor(c: &mut impl Conn, sink: &str, to: EventPosition) -> StoreResult<()> {
    let at = c.stamp();
    c.execute(
        "INSERT INTO event_cursors (sink, commit_seq, event_seq, available_at, updated_at)
         VALUES ($1, $2, $3, coalesce($4, CURRENT_TIMESTAMP), coalesce($4, CURRENT_TIMESTAMP))
         ON CONFLICT (sink) DO UPDATE
            SET commit_seq = excluded.commit_seq, event_seq = excluded.event_seq, attempts = 0,
                last_error = NULL, available_at = excluded.available_at, lease_owner = NULL,
                lease_until = NULL, updated_at = excluded.updated_at
          WHERE (event_cursors.commit_seq, event_cursors.event_seq)
                > (excluded.commit_seq, excluded.event_seq)",
        vec![
            text(sink),
            int(to.commit_seq),
            int(to.event_seq),
            Arg::Time(at),
        ],
    )
    .await?;
    Ok(())
}

#[async_trait]
impl<S: SqlStore> WebhookStore for S {
    async fn insert_webhook_endpoint(
        &self,
        new: &NewWebhookEndpoint,
    ) -> StoreResult<WebhookEndpointRecord> {
        let start = self.event_position_before(Utc::now()).await?;
        let mut tx = self.begin_tx().await?;
        let at = tx.stamp();
        let row = tx
            .fetch_one(
                &format!(
                    "INSERT INTO webhook_endpoints (id, url, description, event_types, secret,
                            created_at, updated_at)
                     VALUES ($1, $2, $3, $4, $5, coalesce($6, CURRENT_TIMESTAMP),
                            coalesce($6, CURRENT_TIMESTAMP))
                     RETURNING {ENDPOINT_COLUMNS}"
                ),
                vec![
                    id(new.id),
                    text(&new.url),
                    opt_text(new.description.as_deref()),
                    types_arg(new.event_types.as_ref()),
                    text(&new.secret),
                    Arg::Time(at),
                ],
            )
            .await?;
        let record = endpoint(&row)?;
        place_cursor(&mut tx, &endpoint_sink(new.id), start).await?;
        tx.wrote(Wake::Events);
        tx.commit_tx().await?;
        Ok(record)
    }

    async fn webhook_endpoints(&self) -> StoreResult<Vec<WebhookEndpointRecord>> {
        self.reader()
            .fetch_all(
                &format!("SELECT {ENDPOINT_COLUMNS} FROM webhook_endpoints ORDER BY id"),
                vec![],
            )
            .await?
            .iter()
            .map(endpoint)
            .collect()
    }

    async fn webhook_endpoint(
        &self,
        endpoint_id: Uuid,
    ) -> StoreResult<Option<WebhookEndpointRecord>> {
        read(&mut self.reader(), endpoint_id).await
    }

    async fn update_webhook_endpoint(
        &self,
        endpoint_id: Uuid,
        change: &WebhookEndpointChange,
    ) -> StoreResult<Option<WebhookEndpointRecord>> {
        let mut tx = self.begin_tx().await?;
        let Some(record) = update_in(&mut tx, endpoint_id, change).await? else {
            return Ok(None);
        };
        tx.commit_tx().await?;
        Ok(Some(record))
    }

    async fn delete_webhook_endpoint(&self, endpoint_id: Uuid) -> StoreResult<bool> {
        let mut tx = self.begin_tx().await?;
        tx.execute(
            "DELETE FROM webhook_deliveries WHERE endpoint_id = $1",
            vec![id(endpoint_id)],
        )
        .await?;
        tx.execute(
            "DELETE FROM event_cursors WHERE sink = $1",
            vec![text(&endpoint_sink(endpoint_id))],
        )
        .await?;
        let deleted = tx
            .execute(
                "DELETE FROM webhook_endpoints WHERE id = $1",
                vec![id(endpoint_id)],
            )
            .await?;
        tx.wrote(Wake::Events);
        tx.commit_tx().await?;
        Ok(deleted == 1)
    }

    async fn rotate_webhook_secret(
        &self,
        endpoint_id: Uuid,
        secret: &str,
        old_until: DateTime<Utc>,
    ) -> StoreResult<Option<WebhookEndpointRecord>> {
        let mut tx = self.begin_tx().await?;
        let at = tx.stamp();
        let row = tx
            .fetch_optional(
                &format!(
                    "UPDATE webhook_endpoints
                        SET previous_secret = secret, previous_secret_until = $3, secret = $2,
                            updated_at = coalesce($4, CURRENT_TIMESTAMP)
                      WHERE id = $1
                  RETURNING {ENDPOINT_COLUMNS}"
                ),
                vec![
                    id(endpoint_id),
                    text(secret),
                    Arg::Time(Some(old_until)),
                    Arg::Time(at),
                ],
            )
            .await?;
        let record = row.map(|row| endpoint(&row)).transpose()?;
        tx.wrote(Wake::Events);
        tx.commit_tx().await?;
        Ok(record)
    }

    async fn replay_webhook_endpoint(
        &self,
        endpoint_id: Uuid,
        since: DateTime<Utc>,
    ) -> StoreResult<bool> {
        let to = self.event_position_before(since).await?;
        let mut tx = self.begin_tx().await?;
        if !replay_in(&mut tx, endpoint_id, to).await? {
            return Ok(false);
        }
        tx.commit_tx().await?;
        Ok(true)
    }

    async fn record_webhook_attempt(
        &self,
        attempt: &WebhookAttempt,
        disable_after: Duration,
    ) -> StoreResult<AttemptVerdict> {
        let mut tx = self.begin_tx().await?;
        let at = Arg::Time(Some(attempt.attempted_at));
        tx.execute(
            // Nothing when the endpoint was deleted during the attempt.
            "INSERT INTO webhook_deliveries
                    (id, endpoint_id, event_id, attempted_at, status, duration_ms, error)
             SELECT $1, $2, $3, $4, $5, $6, $7
              WHERE EXISTS (SELECT 1 FROM webhook_endpoints WHERE id = $2)",
            vec![
                id(Uuid::now_v7()),
                id(attempt.endpoint),
                id(attempt.event_id),
                at.clone(),
                Arg::Int(attempt.status.map(i64::from)),
                int(attempt.duration.as_millis().min(i64::MAX as u128) as i64),
                opt_text(attempt.error.as_deref()),
            ],
        )
        .await?;
        let Some(error) = &attempt.error else {
            let updated = tx
                .execute(
                    "UPDATE webhook_endpoints
                        SET failing_since = NULL, last_error = NULL, last_success_at = $2
                      WHERE id = $1 AND NOT disabled",
                    vec![id(attempt.endpoint), at],
                )
                .await?;
            tx.commit_tx().await?;
            return Ok(if updated == 1 {
                AttemptVerdict::Enabled
            } else {
                AttemptVerdict::AlreadyOff
            });
        };
        let row = tx
            .fetch_optional(
                "UPDATE webhook_endpoints
                    SET failing_since = coalesce(failing_since, $2), last_error = $3
                  WHERE id = $1 AND NOT disabled
              RETURNING failing_since",
                vec![id(attempt.endpoint), at.clone(), text(error)],
            )
            .await?;
        let mut verdict = AttemptVerdict::AlreadyOff;
        if let Some(row) = row {
            verdict = AttemptVerdict::Enabled;
            let since = row.time("failing_since")?;
            let failing_for = (attempt.attempted_at - since).to_std().unwrap_or_default();
            let reason = if attempt.gone {
                Some("the endpoint answered 410 Gone".to_owned())
            } else if failing_for >= disable_after {
                Some(format!(
                    "failing since {} (webhooks.disable_after); last error: {error}",
                    since.to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
                ))
            } else {
                None
            };
            if let Some(reason) = reason {
                tx.execute(
                    "UPDATE webhook_endpoints
                        SET disabled = $2, disabled_reason = $3, updated_at = $4
                      WHERE id = $1",
                    vec![id(attempt.endpoint), Arg::Bool(true), text(&reason), at],
                )
                .await?;
                tx.wrote(Wake::Events);
                verdict = AttemptVerdict::DisabledNow(reason);
            }
        }
        tx.commit_tx().await?;
        Ok(verdict)
    }

    async fn purge_webhook_deliveries(&self, before: DateTime<Utc>) -> StoreResult<u64> {
        let mut w = self.writer().await?;
        let purged = w
            .execute(
                "DELETE FROM webhook_deliveries WHERE attempted_at < $1",
                vec![Arg::Time(Some(before))],
            )
            .await?;
        S::finish_write(w).await?;
        Ok(purged)
    }

    async fn webhook_deliveries(
        &self,
        endpoint_id: Uuid,
        after: Option<Uuid>,
        limit: u32,
    ) -> StoreResult<Vec<WebhookDeliveryRecord>> {
        self.reader()
            .fetch_all(
                "SELECT id, event_id, attempted_at, status, duration_ms, error
                   FROM webhook_deliveries
                  WHERE endpoint_id = $1 AND ($2 IS NULL OR id > $2)
                  ORDER BY id LIMIT $3",
                vec![id(endpoint_id), Arg::Uuid(after), super::limit(limit)],
            )
            .await?
            .iter()
            .map(|row| {
                Ok(WebhookDeliveryRecord {
                    id: row.uuid("id")?,
                    event_id: row.uuid("event_id")?,
                    attempted_at: row.time("attempted_at")?,
                    status: row.int_opt("status")?.map(|s| s.clamp(0, 999) as u16),
                    duration_ms: row.int("duration_ms")?.max(0) as u64,
                    error: row.text_opt("error")?,
                })
            })
            .collect()
    }
}
