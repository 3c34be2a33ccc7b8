//! The store's part of runtime webhook endpoints (R48): the endpoints the API
//! manages, beside the configured `[[webhooks]]`, and every delivery attempt
//! to them. Each endpoint's cursor is an ordinary `event_cursors` row named
//! [`endpoint_sink`], so the publisher drives it like any other sink.

use std::time::Duration;

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use uuid::Uuid;

use super::StoreResult;

/// The cursor name of a runtime endpoint.
pub fn endpoint_sink(id: Uuid) -> String {
    format!("endpoint:{id}")
}

/// One endpoint as stored, secrets included (only the publisher and the
/// create and rotate answers ever see them).
#[derive(Clone, Debug, PartialEq)]
pub struct WebhookEndpointRecord {
    pub id: Uuid,
    pub url: String,
    pub description: Option<String>,
    /// The event types it wants; `None`: every type.
    pub event_types: Option<Vec<String>>,
    pub secret: String,
    /// The secret before the last rotation and until when it still signs.
    pub previous_secret: Option<(String, DateTime<Utc>)>,
    pub disabled: bool,
    pub disabled_reason: Option<String>,
    pub failing_since: Option<DateTime<Utc>>,
    pub last_error: Option<String>,
    pub last_success_at: Option<DateTime<Utc>>,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

#[derive(Clone, Debug)]
pub struct NewWebhookEndpoint {
    pub id: Uuid,
    pub url: String,
    pub description: Option<String>,
    pub event_types: Option<Vec<String>>,
    pub secret: String,
}

/// A `PATCH`: each `Some` replaces the stored value.
#[derive(Clone, Debug, Default)]
pub struct WebhookEndpointChange {
    pub url: Option<String>,
    /// `Some(None)`: every type again.
    pub event_types: Option<Option<Vec<String>>>,
    pub disabled: Option<bool>,
}

/// One delivery attempt to a runtime endpoint.
#[derive(Clone, Debug)]
pub struct WebhookAttempt {
    pub endpoint: Uuid,
    pub event_id: Uuid,
    pub attempted_at: DateTime<Utc>,
    /// The HTTP status the endpoint answered; `None` without an answer.
    pub status: Option<u16>,
    pub duration: Duration,
    /// `None` for a success.
    pub error: Option<String>,
    /// The endpoint answered `410 Gone`: disable it.
    pub gone: bool,
}

/// What an attempt meant for its endpoint.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum AttemptVerdict {
    /// Still enabled: carry on (or retry).
    Enabled,
    /// This attempt disabled it, for this reason.
    DisabledNow(String),
    /// It was already disabled (or deleted): stop delivering to it.
    AlreadyOff,
}

/// An attempt as `GET /v1/webhooks/{id}/deliveries` shows it.
#[derive(Clone, Debug, PartialEq)]
pub struct WebhookDeliveryRecord {
    pub id: Uuid,
    pub event_id: Uuid,
    pub attempted_at: DateTime<Utc>,
    pub status: Option<u16>,
    pub duration_ms: u64,
    pub error: Option<String>,
}

#[async_trait]
pub trait WebhookStore: Send + Sync {
    /// Stores the endpoint with its cursor at the end of the event log, so it
    /// gets the events from now on.
    async fn insert_webhook_endpoint(
        &self,
        endpoint: &NewWebhookEndpoint,
    ) -> StoreResult<WebhookEndpointRecord>;
    /// Every endpoint, oldest first.
    async fn webhook_endpoints(&self) -> StoreResult<Vec<WebhookEndpointRecord>>;
    async fn webhook_endpoint(&self, id: Uuid) -> StoreResult<Option<WebhookEndpointRecord>>;
    /// Applies the change; re-enabling clears the reason and the run of
    /// failures and makes the next attempt due at once. `None`: no such
    /// endpoint.
    async fn update_webhook_endpoint(
        &self,
        id: Uuid,
        change: &WebhookEndpointChange,
    ) -> StoreResult<Option<WebhookEndpointRecord>>;
    /// Deletes the endpoint, its attempts and its cursor; `false` if there
    /// was none.
    async fn delete_webhook_endpoint(&self, id: Uuid) -> StoreResult<bool>;
    /// Installs `secret`; the current one keeps signing until `old_until`.
    async fn rotate_webhook_secret(
        &self,
        id: Uuid,
        secret: &str,
        old_until: DateTime<Utc>,
    ) -> StoreResult<Option<WebhookEndpointRecord>>;
    /// Moves the endpoint's cursor back to just before the first event (in
    /// commit order) that occurred at or after `since`, never forward, and
    /// makes the next attempt due at once. `false`: no such endpoint.
    async fn replay_webhook_endpoint(&self, id: Uuid, since: DateTime<Utc>) -> StoreResult<bool>;
    /// Records an attempt and what it means for the endpoint: a success ends
    /// a run of failures; a failure starts or extends one, and disables the
    /// endpoint when it answered `410` or has failed for `disable_after`.
    async fn record_webhook_attempt(
        &self,
        attempt: &WebhookAttempt,
        disable_after: Duration,
    ) -> StoreResult<AttemptVerdict>;
    /// Forgets the attempts made before `before` (the chores keep 30 days).
    async fn purge_webhook_deliveries(&self, before: DateTime<Utc>) -> StoreResult<u64>;
    /// The endpoint's attempts in the order they were made, after the
    /// attempt `after`, at most `limit`.
    async fn webhook_deliveries(
        &self,
        endpoint: Uuid,
        after: Option<Uuid>,
        limit: u32,
    ) -> StoreResult<Vec<WebhookDeliveryRecord>>;
}
