//! [`EventLog`] for Postgres: the commit-ordered read of `events` (through
//! `event_commits`, up to `event_commits_horizon()`) and the per-sink
//! cursors with their leases. Every
//! statement here is its own short transaction; none is open while a sink
//! talks to the network.

use std::time::Duration;

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use sqlx::postgres::PgRow;
use uuid::Uuid;

use super::PgStore;
use super::conn::{self, Bounded as _};
use super::wake::Channel;
use crate::store::sql::{StoredRow as _, rows};
use crate::store::{
    EventCursor, EventLog, EventPosition, EventRecord, SinkLag, SinkTaking, StoreResult, Wakeups,
};

fn event_from_row(row: &PgRow) -> StoreResult<EventRecord> {
    let position = EventPosition {
        commit_seq: row.int("commit_seq")?,
        event_seq: row.int("seq")?,
    };
    rows::event(row, position)
}

/// Each sink's lag: what is left of the cursor's own commit (its events
/// after the cursor), then the later commits by their counts: one row per
/// transaction behind, never a join per event (see migration
/// 20261206010000_event_commit_counts). `$extra` adds columns after the
/// lag's three (sink, depth, age in seconds).
macro_rules! lag_of_sinks {
    ($extra:literal) => {
        concat!(
            "SELECT k.sink, rest.n + coalesce(later.n, 0),
                    coalesce(extract(epoch FROM now() - least(rest.at, later.at)), 0)::float8",
            $extra,
            " FROM event_cursors k
               CROSS JOIN LATERAL (
                   SELECT count(*) AS n, min(c.committed_at) AS at
                     FROM event_commits c JOIN events e ON e.txid = c.txid
                    WHERE c.commit_seq = k.commit_seq AND e.seq > k.event_seq) rest
               CROSS JOIN LATERAL (
                   SELECT sum(c.event_count) AS n, min(c.committed_at) AS at
                     FROM event_commits c
                    WHERE c.commit_seq > k.commit_seq) later
              ORDER BY k.sink"
        )
    };
}

fn sink_lag(sink: String, depth: i64, age: f64) -> SinkLag {
    SinkLag {
        sink,
        depth: depth.max(0) as u64,
        oldest_age_seconds: age.max(0.0),
    }
}

#[async_trait]
impl EventLog for PgStore {
    async fn lease_event_cursor(
        &self,
        sink: &str,
        owner: Uuid,
        lease: Duration,
    ) -> StoreResult<Option<EventCursor>> {
        sqlx::query("INSERT INTO event_cursors (sink) VALUES ($1) ON CONFLICT (sink) DO NOTHING")
            .bind(sink)
            .execute(&self.pool)
            .bounded()
            .await?;
        let row = sqlx::query(
            "UPDATE event_cursors
                SET lease_owner = $2, lease_until = now() + make_interval(secs => $3), updated_at = now()
              WHERE sink = $1 AND (lease_owner IS NULL OR lease_until < now() OR lease_owner = $2)
          RETURNING commit_seq, event_seq, attempts,
                    greatest(extract(epoch FROM available_at - now()), 0)::float8 AS wait",
        )
        .bind(sink)
        .bind(owner)
        .bind(lease.as_secs_f64())
        .fetch_optional(&self.pool)
        .bounded()
        .await?;
        row.map(|row| {
            Ok(EventCursor {
                position: EventPosition {
                    commit_seq: row.int("commit_seq")?,
                    event_seq: row.int("event_seq")?,
                },
                attempts: row.int("attempts")?.max(0) as u32,
                wait: Duration::from_secs_f64(
                    conn::float_opt(&row, "wait")?.unwrap_or(0.0).max(0.0),
                ),
            })
        })
        .transpose()
    }

    async fn events_after(
        &self,
        after: EventPosition,
        limit: u32,
    ) -> StoreResult<Vec<EventRecord>> {
        // Only up to the horizon: a number above it may belong to a commit
        // still on its way, and one below it that is not visible yet would
        // be skipped for good once the cursor moved past it (see the
        // `event_commits_shared` migration). Its own statement, so the read
        // below takes its snapshot after it.
        let horizon: i64 = sqlx::query_scalar("SELECT event_commits_horizon()")
            .fetch_one(&self.pool)
            .bounded()
            .await?;
        let rows = sqlx::query(
            "SELECT c.commit_seq, e.seq, e.id, e.type, e.occurred_at, e.business_id, e.invitation_id,
                    e.actor_user_id, e.from_status, e.to_status, e.data
               FROM event_commits c JOIN events e ON e.txid = c.txid
              WHERE c.commit_seq >= $1 AND c.commit_seq <= $4 AND (c.commit_seq, e.seq) > ($1, $2)
              ORDER BY c.commit_seq, e.seq
              LIMIT $3",
        )
        .bind(after.commit_seq)
        .bind(after.event_seq)
        .bind(limit as i64)
        .bind(horizon)
        .fetch_all(&self.pool)
        .bounded()
        .await?;
        rows.iter().map(event_from_row).collect()
    }

    async fn advance_event_cursor(
        &self,
        sink: &str,
        owner: Uuid,
        to: EventPosition,
        lease: Duration,
    ) -> StoreResult<bool> {
        let done = sqlx::query(
            "UPDATE event_cursors
                SET commit_seq = $3, event_seq = $4, attempts = 0, last_error = NULL, available_at = now(),
                    lease_until = now() + make_interval(secs => $5), updated_at = now()
              WHERE sink = $1 AND lease_owner = $2",
        )
        .bind(sink)
        .bind(owner)
        .bind(to.commit_seq)
        .bind(to.event_seq)
        .bind(lease.as_secs_f64())
        .execute(&self.pool)
        .bounded()
        .await?;
        Ok(done.rows_affected() == 1)
    }

    async fn event_delivery_failed(
        &self,
        sink: &str,
        owner: Uuid,
        error: &str,
        retry_after: Duration,
    ) -> StoreResult<bool> {
        let done = sqlx::query(
            "UPDATE event_cursors
                SET attempts = attempts + 1, last_error = $3,
                    available_at = now() + make_interval(secs => $4), updated_at = now()
              WHERE sink = $1 AND lease_owner = $2",
        )
        .bind(sink)
        .bind(owner)
        .bind(error)
        .bind(retry_after.as_secs_f64())
        .execute(&self.pool)
        .bounded()
        .await?;
        Ok(done.rows_affected() == 1)
    }

    async fn record_sink_minute(&self, sink: &str, sent: u32, failed: u32) -> StoreResult<()> {
        sqlx::query(
            "INSERT INTO sink_minutes (sink, minute, sent, failed)
             VALUES ($1, date_trunc('minute', now()), $2, $3)
             ON CONFLICT (sink, minute) DO UPDATE
                SET sent = sink_minutes.sent + excluded.sent,
                    failed = sink_minutes.failed + excluded.failed",
        )
        .bind(sink)
        .bind(i64::from(sent))
        .bind(i64::from(failed))
        .execute(&self.pool)
        .bounded()
        .await?;
        Ok(())
    }

    async fn release_event_cursor(&self, sink: &str, owner: Uuid) -> StoreResult<()> {
        sqlx::query(
            "UPDATE event_cursors SET lease_owner = NULL, lease_until = NULL, updated_at = now()
              WHERE sink = $1 AND lease_owner = $2",
        )
        .bind(sink)
        .bind(owner)
        .execute(&self.pool)
        .bounded()
        .await?;
        Ok(())
    }

    async fn subscribe_events(&self) -> StoreResult<Box<dyn Wakeups>> {
        self.signals.subscribe(&self.pool, Channel::Events).await
    }

    async fn event_position_before(&self, since: DateTime<Utc>) -> StoreResult<EventPosition> {
        let first: Option<(i64, i64)> = sqlx::query_as(
            "SELECT c.commit_seq, e.seq FROM event_commits c JOIN events e ON e.txid = c.txid
              WHERE e.occurred_at >= $1 ORDER BY c.commit_seq, e.seq LIMIT 1",
        )
        .bind(since)
        .fetch_optional(&self.pool)
        .bounded()
        .await?;
        if let Some((commit_seq, seq)) = first {
            // Positions compare as (commit, seq): one less is just before it.
            return Ok(EventPosition {
                commit_seq,
                event_seq: seq - 1,
            });
        }
        // The end is the last event at or below the horizon: a commit still
        // on its way may take a lower number than one already visible, and
        // a cursor past it would skip it (see `events_after`).
        let horizon: i64 = sqlx::query_scalar("SELECT event_commits_horizon()")
            .fetch_one(&self.pool)
            .bounded()
            .await?;
        let last: Option<(i64, i64)> = sqlx::query_as(
            "SELECT c.commit_seq, e.seq FROM event_commits c JOIN events e ON e.txid = c.txid
              WHERE c.commit_seq <= $1
              ORDER BY c.commit_seq DESC, e.seq DESC LIMIT 1",
        )
        .bind(horizon)
        .fetch_optional(&self.pool)
        .bounded()
        .await?;
        Ok(
            last.map_or(EventPosition::START, |(commit_seq, event_seq)| {
                EventPosition {
                    commit_seq,
                    event_seq,
                }
            }),
        )
    }

    async fn event_lag(&self) -> StoreResult<Vec<SinkLag>> {
        let rows: Vec<(String, i64, f64)> = sqlx::query_as(lag_of_sinks!(""))
            .fetch_all(&self.pool)
            .bounded()
            .await?;
        Ok(rows
            .into_iter()
            .map(|(sink, depth, age)| sink_lag(sink, depth, age))
            .collect())
    }

    async fn event_lag_taking(
        &self,
        invitation: crate::domain::InvitationId,
    ) -> StoreResult<Vec<SinkTaking>> {
        // Positions compare as (commit number, event number), as
        // `EventPosition`'s order does.
        let rows: Vec<(String, i64, f64, Vec<Uuid>)> = sqlx::query_as(lag_of_sinks!(
            ", ARRAY(SELECT e.id FROM events e JOIN event_commits c ON c.txid = e.txid
                      WHERE e.invitation_id = $1
                        AND (k.commit_seq, k.event_seq) >= (c.commit_seq, e.seq)
                      ORDER BY c.commit_seq, e.seq)"
        ))
        .bind(invitation.0)
        .fetch_all(&self.pool)
        .bounded()
        .await?;
        Ok(rows
            .into_iter()
            .map(|(sink, depth, age, taken)| SinkTaking {
                lag: sink_lag(sink, depth, age),
                taken,
            })
            .collect())
    }
}
