//! [`EventLog`] for SQLite. SQLite commits one write transaction at a time
//! (the adapter's write lock, then the database's), so the autoincrement
//! `events.seq` is already in commit order: when a reader sees `seq = n`,
//! every smaller number is committed (or was rolled back and never seen).
//! A position is `(seq, seq)`; no `event_commits` table is needed.

use std::time::Duration;

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use sqlx::sqlite::SqliteRow;
use uuid::Uuid;

use super::{OrStore as _, SqliteStore, SqliteWakeups, minute_start, now, plus};
use crate::store::sql::{StoredRow as _, rows};
use crate::store::stored::corrupt;
use crate::store::{
    EventCursor, EventLog, EventPosition, EventRecord, SinkLag, SinkTaking, StoreResult, Wakeups,
};

fn event_from_row(row: &SqliteRow) -> StoreResult<EventRecord> {
    let seq = row.int("seq")?;
    rows::event(
        row,
        EventPosition {
            commit_seq: seq,
            event_seq: seq,
        },
    )
}

fn h(id: Uuid) -> uuid::fmt::Hyphenated {
    id.hyphenated()
}

/// Each sink's lag: the events after its cursor (one process, a small
/// log: a join is enough here). `$extra` adds columns after the lag's three
/// (sink, depth, the oldest event's time).
macro_rules! lag_of_sinks {
    ($extra:literal) => {
        concat!(
            "SELECT k.sink, count(e.seq), min(e.occurred_at)",
            $extra,
            " FROM event_cursors k
               LEFT JOIN events e ON e.seq > k.commit_seq
              GROUP BY k.sink ORDER BY k.sink"
        )
    };
}

fn sink_lag(sink: String, depth: i64, oldest: Option<DateTime<Utc>>, at: DateTime<Utc>) -> SinkLag {
    SinkLag {
        sink,
        depth: depth.max(0) as u64,
        oldest_age_seconds: oldest
            .map(|t| (at - t).num_milliseconds() as f64 / 1000.0)
            .unwrap_or(0.0)
            .max(0.0),
    }
}

#[async_trait]
impl EventLog for SqliteStore {
    async fn lease_event_cursor(
        &self,
        sink: &str,
        owner: Uuid,
        lease: Duration,
    ) -> StoreResult<Option<EventCursor>> {
        let mut tx = self.write_tx().await?;
        let at = now();
        sqlx::query(
            "INSERT INTO event_cursors (sink, available_at, updated_at) VALUES ($1, $2, $2)
             ON CONFLICT (sink) DO NOTHING",
        )
        .bind(sink)
        .bind(at)
        .execute(&mut *tx.tx)
        .await
        .st()?;
        let row = sqlx::query(
            "UPDATE event_cursors
                SET lease_owner = $2, lease_until = $4, updated_at = $3
              WHERE sink = $1 AND (lease_owner IS NULL OR lease_until < $3 OR lease_owner = $2)
          RETURNING commit_seq, event_seq, attempts, available_at",
        )
        .bind(sink)
        .bind(h(owner))
        .bind(at)
        .bind(plus(at, lease))
        .fetch_optional(&mut *tx.tx)
        .await
        .st()?;
        tx.commit_inner().await?;
        row.map(|row| {
            let available = row.time("available_at")?;
            Ok(EventCursor {
                position: EventPosition {
                    commit_seq: row.int("commit_seq")?,
                    event_seq: row.int("event_seq")?,
                },
                attempts: row.int("attempts")?.max(0) as u32,
                wait: (available - at).to_std().unwrap_or(Duration::ZERO),
            })
        })
        .transpose()
    }

    async fn events_after(
        &self,
        after: EventPosition,
        limit: u32,
    ) -> StoreResult<Vec<EventRecord>> {
        let rows = sqlx::query(
            "SELECT seq, id, type, occurred_at, business_id, invitation_id, actor_user_id,
                    from_status, to_status, data
               FROM events WHERE seq > $1 ORDER BY seq LIMIT $2",
        )
        .bind(after.commit_seq.max(after.event_seq))
        .bind(i64::from(limit))
        .fetch_all(&self.pool)
        .await
        .st()?;
        rows.iter().map(event_from_row).collect()
    }

    async fn advance_event_cursor(
        &self,
        sink: &str,
        owner: Uuid,
        to: EventPosition,
        lease: Duration,
    ) -> StoreResult<bool> {
        let mut tx = self.write_tx().await?;
        let at = now();
        let done = sqlx::query(
            "UPDATE event_cursors
                SET commit_seq = $3, event_seq = $4, attempts = 0, last_error = NULL, available_at = $5,
                    lease_until = $6, updated_at = $5
              WHERE sink = $1 AND lease_owner = $2",
        )
        .bind(sink)
        .bind(h(owner))
        .bind(to.commit_seq)
        .bind(to.event_seq)
        .bind(at)
        .bind(plus(at, lease))
        .execute(&mut *tx.tx)
        .await
        .st()?;
        tx.commit_inner().await?;
        Ok(done.rows_affected() == 1)
    }

    async fn event_delivery_failed(
        &self,
        sink: &str,
        owner: Uuid,
        error: &str,
        retry_after: Duration,
    ) -> StoreResult<bool> {
        let mut tx = self.write_tx().await?;
        let at = now();
        let done = sqlx::query(
            "UPDATE event_cursors
                SET attempts = attempts + 1, last_error = $3, available_at = $4, updated_at = $5
              WHERE sink = $1 AND lease_owner = $2",
        )
        .bind(sink)
        .bind(h(owner))
        .bind(error)
        .bind(plus(at, retry_after))
        .bind(at)
        .execute(&mut *tx.tx)
        .await
        .st()?;
        tx.commit_inner().await?;
        Ok(done.rows_affected() == 1)
    }

    async fn record_sink_minute(&self, sink: &str, sent: u32, failed: u32) -> StoreResult<()> {
        let minute = minute_start(now());
        let mut tx = self.write_tx().await?;
        sqlx::query(
            "INSERT INTO sink_minutes (sink, minute, sent, failed) VALUES ($1, $2, $3, $4)
             ON CONFLICT (sink, minute) DO UPDATE
                SET sent = sink_minutes.sent + excluded.sent,
                    failed = sink_minutes.failed + excluded.failed",
        )
        .bind(sink)
        .bind(minute)
        .bind(i64::from(sent))
        .bind(i64::from(failed))
        .execute(&mut *tx.tx)
        .await
        .st()?;
        tx.commit_inner().await
    }

    async fn release_event_cursor(&self, sink: &str, owner: Uuid) -> StoreResult<()> {
        let mut tx = self.write_tx().await?;
        sqlx::query(
            "UPDATE event_cursors SET lease_owner = NULL, lease_until = NULL, updated_at = $3
              WHERE sink = $1 AND lease_owner = $2",
        )
        .bind(sink)
        .bind(h(owner))
        .bind(now())
        .execute(&mut *tx.tx)
        .await
        .st()?;
        tx.commit_inner().await
    }

    async fn subscribe_events(&self) -> StoreResult<Box<dyn Wakeups>> {
        Ok(Box::new(SqliteWakeups {
            rx: self.events.subscribe(),
        }))
    }

    async fn event_position_before(&self, since: DateTime<Utc>) -> StoreResult<EventPosition> {
        let first: Option<i64> =
            sqlx::query_scalar("SELECT min(seq) FROM events WHERE occurred_at >= $1")
                .bind(since)
                .fetch_one(&self.pool)
                .await
                .st()?;
        let seq = match first {
            Some(seq) => seq - 1,
            None => sqlx::query_scalar("SELECT coalesce(max(seq), 0) FROM events")
                .fetch_one(&self.pool)
                .await
                .st()?,
        };
        Ok(EventPosition {
            commit_seq: seq,
            event_seq: seq,
        })
    }

    async fn event_lag(&self) -> StoreResult<Vec<SinkLag>> {
        let rows: Vec<(String, i64, Option<DateTime<Utc>>)> = sqlx::query_as(lag_of_sinks!(""))
            .fetch_all(&self.pool)
            .await
            .st()?;
        let at = now();
        Ok(rows
            .into_iter()
            .map(|(sink, depth, oldest)| sink_lag(sink, depth, oldest, at))
            .collect())
    }

    async fn event_lag_taking(
        &self,
        invitation: crate::domain::InvitationId,
    ) -> StoreResult<Vec<SinkTaking>> {
        // An event's position here is its `seq`, both halves; a cursor is
        // read as `events_after` reads it. The ids come as one JSON array
        // per sink (SQLite has no arrays).
        let rows: Vec<(String, i64, Option<DateTime<Utc>>, String)> =
            sqlx::query_as(lag_of_sinks!(
                ", (SELECT json_group_array(t.id) FROM
                      (SELECT t.id FROM events t
                        WHERE t.invitation_id = $1 AND max(k.commit_seq, k.event_seq) >= t.seq
                        ORDER BY t.seq) t)"
            ))
            .bind(h(invitation.0))
            .fetch_all(&self.pool)
            .await
            .st()?;
        let at = now();
        rows.into_iter()
            .map(|(sink, depth, oldest, taken)| {
                Ok(SinkTaking {
                    lag: sink_lag(sink, depth, oldest, at),
                    taken: serde_json::from_str(&taken)
                        .map_err(|_| corrupt("ids of events taken", &taken))?,
                })
            })
            .collect()
    }
}
