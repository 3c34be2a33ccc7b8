//! The store's part of outbound events (R17): the event log read as an
//! outbox, one cursor per sink. Events are read in the order their
//! transactions committed (see the `event_delivery` migration), so a cursor
//! never skips a late commit and the events of one invitation come in the
//! order its row lock gave them.

use std::time::Duration;

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use uuid::Uuid;

use super::{StoreResult, Wakeups};
use crate::domain::{BusinessId, InvitationId};

/// A place in the commit-ordered event log: the committing transaction's
/// number, then the event's insertion number. `EventPosition::START` is
/// before every event.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord)]
pub struct EventPosition {
    pub commit_seq: i64,
    pub event_seq: i64,
}

impl EventPosition {
    pub const START: EventPosition = EventPosition {
        commit_seq: 0,
        event_seq: 0,
    };
}

/// One committed event, as a sink delivers it.
#[derive(Clone, Debug, PartialEq)]
pub struct EventRecord {
    pub position: EventPosition,
    pub id: Uuid,
    pub event_type: String,
    pub occurred_at: DateTime<Utc>,
    /// `None` for an operator's event about no business (R49).
    pub business_id: Option<BusinessId>,
    pub invitation_id: Option<InvitationId>,
    pub actor_user_id: Option<String>,
    pub from_status: Option<String>,
    pub to_status: Option<String>,
    pub data: serde_json::Value,
}

/// A sink's cursor, as its lease holder sees it.
#[derive(Clone, Debug, PartialEq)]
pub struct EventCursor {
    /// The last event delivered.
    pub position: EventPosition,
    /// Failed attempts at the next event.
    pub attempts: u32,
    /// How long until the next attempt is due (zero when due now), by the
    /// database's clock.
    pub wait: Duration,
}

/// How far behind a sink is (for `invited_outbox_depth` and
/// `invited_outbox_oldest_age_seconds`).
#[derive(Clone, Debug, PartialEq)]
pub struct SinkLag {
    pub sink: String,
    /// Committed events after the cursor.
    pub depth: u64,
    /// Seconds since the oldest of them committed (0 when there is none).
    pub oldest_age_seconds: f64,
}

/// A sink's lag, with the events of one invitation it has taken.
#[derive(Clone, Debug, PartialEq)]
pub struct SinkTaking {
    pub lag: SinkLag,
    /// The invitation's events at or before the sink's cursor, by id.
    pub taken: Vec<Uuid>,
}

#[async_trait]
pub trait EventLog: Send + Sync {
    /// Takes the lease on `sink`'s cursor for `owner` (creating the cursor at
    /// [`EventPosition::START`] if it is new), or renews it if `owner` holds
    /// it. `None` while another owner's lease runs.
    async fn lease_event_cursor(
        &self,
        sink: &str,
        owner: Uuid,
        lease: Duration,
    ) -> StoreResult<Option<EventCursor>>;

    /// Up to `limit` committed events after `after`, in commit order.
    async fn events_after(&self, after: EventPosition, limit: u32)
    -> StoreResult<Vec<EventRecord>>;

    /// Moves the cursor to `to` after a delivery, resets the attempts and
    /// renews the lease. `false` if `owner` no longer holds the lease (then
    /// nothing changed and the caller stops).
    async fn advance_event_cursor(
        &self,
        sink: &str,
        owner: Uuid,
        to: EventPosition,
        lease: Duration,
    ) -> StoreResult<bool>;

    /// Records a failed delivery of the next event: one more attempt, the
    /// error, and no new attempt before `retry_after` has passed.
    async fn event_delivery_failed(
        &self,
        sink: &str,
        owner: Uuid,
        error: &str,
        retry_after: Duration,
    ) -> StoreResult<bool>;

    /// Adds a pass's outcome to `sink`'s counts of the current minute (by
    /// the database's clock): `sent` events delivered, `failed` attempts
    /// that failed. For the console's charts of the sinks that keep no
    /// per-attempt rows (R49); purged by [`ConsoleStore::purge_chart_minutes`](crate::store::ConsoleStore::purge_chart_minutes).
    async fn record_sink_minute(&self, sink: &str, sent: u32, failed: u32) -> StoreResult<()>;

    /// Gives the lease up (shutdown), so another replica need not wait for it
    /// to lapse.
    async fn release_event_cursor(&self, sink: &str, owner: Uuid) -> StoreResult<()>;

    /// Wakes when a transaction that wrote events commits.
    async fn subscribe_events(&self) -> StoreResult<Box<dyn Wakeups>>;

    /// The position just before the first event (in commit order) that
    /// occurred at or after `since`; the end of the log when there is none.
    /// A cursor put there gets the events from `since` on (R48's replay, and
    /// a new endpoint's start).
    async fn event_position_before(&self, since: DateTime<Utc>) -> StoreResult<EventPosition>;

    /// The lag of every sink that has a cursor.
    async fn event_lag(&self) -> StoreResult<Vec<SinkLag>>;

    /// [`EventLog::event_lag`] with, for each sink, which of one
    /// invitation's committed events its cursor is at or past: those it
    /// took (the console's invitation page, R49), in one statement. An event
    /// whose commit is not numbered yet is in no sink's list.
    async fn event_lag_taking(&self, invitation: InvitationId) -> StoreResult<Vec<SinkTaking>>;
}
