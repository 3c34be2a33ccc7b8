//! One sink's delivery loop over the event log: take the sink's lease, read
//! the committed events after its cursor in commit order, deliver them one
//! at a time, and move the cursor after each success. A failure stops the
//! sink (head-of-line blocking) until its backoff has passed, so no later
//! event ever overtakes an earlier one: order per invitation holds because
//! the whole log's order holds.

use std::sync::Arc;
use std::time::Duration;

use rand::RngExt as _;
use uuid::Uuid;

use super::WireEvent;
use super::sinks::Sink;
use crate::domain::retry::RetryPolicy;
use crate::store::{Store, StoreError};

/// What a run left to do.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    /// Caught up: nothing until the next wake-up.
    Idle,
    /// A full batch went out: more may be waiting.
    More,
    /// The next event failed (now or earlier): try again after this long.
    RetryAfter(Duration),
    /// Another replica holds this sink's lease.
    NotOurs,
}

pub struct SinkPublisher {
    pub store: Arc<dyn Store>,
    pub sink: Arc<dyn Sink>,
    /// This replica's lease identity.
    pub owner: Uuid,
    pub lease: Duration,
    /// Backoff between failed attempts; `give_up_after` is not used: events
    /// are retried until delivered.
    pub retry: RetryPolicy,
    pub batch: u32,
}

impl SinkPublisher {
    pub fn name(&self) -> &str {
        self.sink.name()
    }

    /// One pass. No row lock is held while the sink talks to the network:
    /// the lease is a column, taken and renewed by single statements.
    pub async fn run_once(&self) -> Result<Outcome, StoreError> {
        let name = self.sink.name();
        let Some(cursor) = self
            .store
            .lease_event_cursor(name, self.owner, self.lease)
            .await?
        else {
            return Ok(Outcome::NotOurs);
        };
        if !cursor.wait.is_zero() {
            return Ok(Outcome::RetryAfter(cursor.wait));
        }
        let events = self.store.events_after(cursor.position, self.batch).await?;
        let mut attempts = cursor.attempts;
        for event in &events {
            let body = WireEvent::from_record(event).to_body();
            match self.sink.deliver(event, &body).await {
                Ok(()) => {
                    attempts = 0;
                    if !self
                        .store
                        .advance_event_cursor(name, self.owner, event.position, self.lease)
                        .await?
                    {
                        // The lease lapsed mid-batch: another replica carries on
                        // from the cursor (this event may reach the sink twice).
                        return Ok(Outcome::NotOurs);
                    }
                }
                Err(error) => {
                    attempts += 1;
                    let jitter: f64 = rand::rng().random();
                    let wait = self.retry.backoff(attempts, jitter);
                    tracing::warn!(
                        sink = name,
                        event_id = %event.id,
                        event_type = %event.event_type,
                        business_id = %event.business_id,
                        invitation_id = event.invitation_id.map(|i| i.to_string()),
                        attempt = attempts,
                        retry_in_ms = wait.as_millis() as u64,
                        %error,
                        "event delivery failed; retrying"
                    );
                    self.store
                        .event_delivery_failed(name, self.owner, &error.0, wait)
                        .await?;
                    return Ok(Outcome::RetryAfter(wait));
                }
            }
        }
        Ok(if events.len() as u32 >= self.batch {
            Outcome::More
        } else {
            Outcome::Idle
        })
    }

    /// Gives the lease up (shutdown).
    pub async fn release(&self) {
        if let Err(error) = self
            .store
            .release_event_cursor(self.sink.name(), self.owner)
            .await
        {
            tracing::debug!(sink = self.sink.name(), %error, "could not release the sink's lease");
        }
    }
}
