//! The store's part of the operator console (R49): its sessions, the reads
//! its pages make (each bounded by a `LIMIT`), and, in a transaction
//! ([`ConsoleTx`]), its actions: putting failed emails back in the outbox,
//! pausing, resuming and replaying webhook endpoints.

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use uuid::Uuid;

use super::{InviteeInvitationRecord, StoreResult};
use crate::domain::{BusinessId, InvitationId};

/// A signed-in console session as stored: never its id, only its hash.
#[derive(Clone, Debug, PartialEq)]
pub struct ConsoleSession {
    /// SHA-256 of the session id the cookie carries.
    pub id_hash: Vec<u8>,
    /// The API key that signed in, by name.
    pub key_name: String,
    /// That key's scope when it signed in (`read`, `write`, `admin`).
    pub scope: String,
    /// The session's form token (CSRF): every form carries it.
    pub csrf_token: String,
    pub expires_at: DateTime<Utc>,
}

/// One invitation found by the console's search.
#[derive(Clone, Debug)]
pub struct ConsoleInvitationRow {
    pub id: InvitationId,
    pub business_id: BusinessId,
    pub business_name: String,
    pub kind: String,
    pub email: Option<String>,
    pub status: String,
    pub created_at: DateTime<Utc>,
    pub expires_at: DateTime<Utc>,
}

/// One business found by the console's search.
#[derive(Clone, Debug)]
pub struct ConsoleBusinessRow {
    pub id: BusinessId,
    pub public_id: String,
    pub name: String,
    pub created_at: DateTime<Utc>,
}

/// One email of the outbox, as the console lists it.
#[derive(Clone, Debug)]
pub struct ConsoleEmailRow {
    pub id: Uuid,
    pub business_id: BusinessId,
    pub invitation_id: Option<InvitationId>,
    pub template: String,
    pub recipient: String,
    pub message_id: String,
    pub status: String,
    pub attempts: u32,
    pub last_error: Option<String>,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

/// Which failed emails an operator means: all of them, or those whose
/// recipient contains `recipient` and whose template is `template`.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct FailedFilter {
    pub recipient: Option<String>,
    pub template: Option<String>,
}

/// The email attempts of one minute, from the recorder's counters
/// (`email_minutes`), for the outbox chart.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct MinuteTally {
    /// The minute's start, by the database's clock.
    pub minute: DateTime<Utc>,
    /// Attempts that got through (the server accepted the email).
    pub sent: u64,
    /// Emails given up for good (a `transient` attempt, to be retried, is
    /// neither).
    pub failed: u64,
}

/// One event sink's counts in one minute, for the outbox charts of the
/// sinks that keep no per-attempt rows (NATS, the configured webhooks).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SinkMinute {
    pub sink: String,
    /// The minute's start, by the database's clock.
    pub minute: DateTime<Utc>,
    pub sent: u64,
    pub failed: u64,
}

/// An operator's `console.action` event about no business (R49: a
/// webhook endpoint's pause, resume or replay), as stored: its `data`'s
/// fields read out, not yet parsed.
#[derive(Clone, Debug, PartialEq)]
pub struct OperatorActionRow {
    pub occurred_at: DateTime<Utc>,
    pub action: Option<String>,
    pub key_name: Option<String>,
    pub target: Option<String>,
    pub since: Option<String>,
}

/// How many rows of each kind a console page reads at most.
pub const CONSOLE_LIMIT: u32 = 100;

#[async_trait]
pub trait ConsoleStore: Send + Sync {
    /// Stores a new session (and forgets the expired ones).
    async fn insert_console_session(&self, session: &ConsoleSession) -> StoreResult<()>;
    /// The session with this id hash, unless it expired (by the database's
    /// clock).
    async fn console_session(&self, id_hash: &[u8]) -> StoreResult<Option<ConsoleSession>>;
    /// Signs out: forgets the session.
    async fn delete_console_session(&self, id_hash: &[u8]) -> StoreResult<()>;

    /// Invitations by id or by address (case-insensitive), newest first,
    /// at most [`CONSOLE_LIMIT`].
    async fn console_search_invitations(
        &self,
        id: Option<InvitationId>,
        email: Option<&str>,
    ) -> StoreResult<Vec<ConsoleInvitationRow>>;
    /// One invitation of any kind with its business's and inviter's names
    /// (the invitation page's head, in one read).
    async fn console_invitation(
        &self,
        id: InvitationId,
    ) -> StoreResult<Option<InviteeInvitationRecord>>;
    /// Businesses by id, public id or a part of their name.
    async fn console_search_businesses(
        &self,
        id: Option<BusinessId>,
        text: &str,
    ) -> StoreResult<Vec<ConsoleBusinessRow>>;
    /// A business's pending invitations, newest first.
    async fn console_pending_invitations(
        &self,
        business: BusinessId,
    ) -> StoreResult<Vec<ConsoleInvitationRow>>;
    /// How many pending member invitations a business has (its seats, R9).
    async fn console_pending_member_count(&self, business: BusinessId) -> StoreResult<u64>;
    /// The emails of one invitation, oldest first.
    async fn console_invitation_emails(
        &self,
        invitation: InvitationId,
    ) -> StoreResult<Vec<ConsoleEmailRow>>;
    /// Failed emails matching `filter`, newest first, at most `limit`.
    async fn console_failed_emails(
        &self,
        filter: &FailedFilter,
        limit: u32,
    ) -> StoreResult<Vec<ConsoleEmailRow>>;
    /// How many failed emails match `filter`.
    async fn console_count_failed(&self, filter: &FailedFilter) -> StoreResult<u64>;
    /// The email attempts per minute since `since` (a minute's start), from
    /// the counters the recorder keeps (minutes without attempts are left
    /// out).
    async fn console_email_minutes(&self, since: DateTime<Utc>) -> StoreResult<Vec<MinuteTally>>;
    /// The database's clock.
    async fn console_now(&self) -> StoreResult<DateTime<Utc>>;
    /// The emails waiting to be sent and the age of the oldest, in seconds
    /// (never below 0, whatever the clocks say; also `stats()`'s).
    async fn console_email_depth(&self) -> StoreResult<(u64, f64)>;
    /// The sinks' counts per minute since `since` (a minute's start), at
    /// most `limit` rows, newest first.
    async fn console_sink_minutes_since(
        &self,
        since: DateTime<Utc>,
        limit: u32,
    ) -> StoreResult<Vec<SinkMinute>>;
    /// Forgets the sinks' and the emails' counts of the minutes before
    /// `before`.
    async fn purge_chart_minutes(&self, before: DateTime<Utc>) -> StoreResult<u64>;
    /// The latest operator events (`console.action` with no business),
    /// newest first, at most `limit`.
    async fn console_operator_actions(&self, limit: u32) -> StoreResult<Vec<OperatorActionRow>>;
}

/// The console's writes inside a service transaction.
#[async_trait]
pub trait ConsoleTx: Send {
    /// Puts the failed emails matching `filter` (or just `only`, when given)
    /// back in the outbox, due now with their attempts reset, and returns
    /// them; at most `limit`. The dispatcher is woken at commit.
    async fn requeue_failed_emails(
        &mut self,
        only: Option<Uuid>,
        filter: &FailedFilter,
        limit: u32,
    ) -> StoreResult<Vec<ConsoleEmailRow>>;
    /// Pauses (`true`) or resumes a runtime webhook endpoint, as the API's
    /// change of `disabled` does; `None` when there is no such endpoint.
    async fn pause_webhook_endpoint(
        &mut self,
        id: Uuid,
        paused: bool,
    ) -> StoreResult<Option<crate::store::WebhookEndpointRecord>>;
    /// Puts an endpoint's cursor back at `to` (R48's replay); `false` when
    /// there is no such endpoint.
    async fn replay_webhook_endpoint_to(
        &mut self,
        id: Uuid,
        to: crate::store::EventPosition,
    ) -> StoreResult<bool>;
}
