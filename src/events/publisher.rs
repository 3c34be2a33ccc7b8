//! One sink's delivery loop over the event log: take the sink's lease, read
//! the committed events after its cursor in commit order, deliver them one
//! at a time, and move the cursor after each success. A failure stops the
//! sink (head-of-line blocking) until its backoff has passed, so no later
//! event ever overtakes an earlier one: order per invitation holds because
//! the whole log's order holds.

use std::sync::Arc;
use std::time::Duration;

use chrono::Utc;
use rand::RngExt as _;
use uuid::Uuid;

use super::WireEvent;
use super::sinks::Sink;
use crate::domain::retry::RetryPolicy;
use crate::metrics;
use crate::store::{AttemptVerdict, EventPosition, Store, StoreError, WebhookAttempt};

/// The longest `Retry-After` honoured: a receiver cannot park a sink for
/// longer than a day at a time.
const MAX_RETRY_AFTER: Duration = Duration::from_secs(24 * 3600);

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
    /// The runtime endpoint was disabled by this pass (R48).
    Disabled,
}

/// What one pass delivered and failed to deliver.
#[derive(Debug, Default, Clone, Copy)]
struct Tally {
    sent: u32,
    failed: u32,
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
    /// `webhooks.disable_after` (runtime endpoints only).
    pub disable_after: Duration,
}

impl SinkPublisher {
    pub fn name(&self) -> &str {
        self.sink.name()
    }

    /// One pass. No row lock is held while the sink talks to the network:
    /// the lease is a column, taken and renewed by single statements.
    ///
    /// Every sink adds the pass's deliveries and failures to its counts of
    /// the minute afterwards, in one statement (the console's charts, R49,
    /// read these counts, never the attempts; a runtime endpoint keeps its
    /// attempt rows too, for its own list of attempts).
    pub async fn run_once(&self) -> Result<Outcome, StoreError> {
        let mut tally = Tally::default();
        let outcome = self.pass(&mut tally).await;
        if tally.sent > 0 || tally.failed > 0 {
            // The deliveries happened and their cursor moved: a count the
            // chart misses is no reason to fail the pass.
            if let Err(error) = self
                .store
                .record_sink_minute(self.sink.name(), tally.sent, tally.failed)
                .await
            {
                tracing::warn!(sink = self.sink.name(), %error, "could not count the sink's deliveries");
            }
        }
        outcome
    }

    async fn pass(&self, tally: &mut Tally) -> Result<Outcome, StoreError> {
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
        if events.is_empty() {
            return Ok(Outcome::Idle);
        }
        // An endpoint of the API is read afresh for every pass, after the
        // events, so a change (a rotated secret, a new URL or filter, a
        // pause) applies to every event committed after it, not from
        // whenever the actor reloads the endpoints.
        let fresh: Arc<dyn Sink>;
        let sink: &dyn Sink = match self.sink.endpoint() {
            None => &*self.sink,
            Some(id) => match self.store.webhook_endpoint(id).await? {
                Some(endpoint) if !endpoint.disabled => match self.sink.refreshed(&endpoint) {
                    Some(refreshed) => {
                        fresh = refreshed;
                        &*fresh
                    }
                    None => &*self.sink,
                },
                Some(_) => return Ok(Outcome::Disabled),
                None => {
                    // Deleted meanwhile: the lease above may have made its
                    // cursor again; remove it with whatever else is left.
                    self.store.delete_webhook_endpoint(id).await?;
                    return Ok(Outcome::Disabled);
                }
            },
        };
        let mut attempts = cursor.attempts;
        // Events the sink does not take: the cursor moves past them with the
        // next delivery, or at the end of the batch.
        let mut skipped: Option<EventPosition> = None;
        for event in &events {
            if !sink.wants(event) {
                skipped = Some(event.position);
                continue;
            }
            let body = WireEvent::from_record(event).to_body();
            let attempted_at = Utc::now();
            let started = std::time::Instant::now();
            let result = sink.deliver(event, &body).await;
            // Counted as soon as it happened, whatever ends the pass below
            // (an endpoint paused meanwhile still recorded this attempt).
            match &result {
                Ok(_) => tally.sent += 1,
                Err(_) => tally.failed += 1,
            }
            if let Some(endpoint) = sink.endpoint() {
                let attempt = WebhookAttempt {
                    endpoint,
                    event_id: event.id,
                    attempted_at,
                    status: match &result {
                        Ok(status) => *status,
                        Err(error) => error.status,
                    },
                    duration: started.elapsed(),
                    error: result.as_ref().err().map(|e| e.reason.clone()),
                    gone: result.as_ref().err().is_some_and(|e| e.gone()),
                };
                metrics::webhook_attempt(if result.is_ok() {
                    "delivered"
                } else {
                    "failed"
                });
                match self
                    .store
                    .record_webhook_attempt(&attempt, self.disable_after)
                    .await?
                {
                    AttemptVerdict::Enabled => {}
                    AttemptVerdict::DisabledNow(reason) => {
                        tracing::warn!(sink = name, %reason, "webhook endpoint disabled");
                        metrics::webhook_endpoint_disabled(if attempt.gone {
                            "gone"
                        } else {
                            "failing"
                        });
                        return Ok(Outcome::Disabled);
                    }
                    // Disabled or deleted meanwhile (by an operator, or by
                    // another replica's attempt). An event the endpoint took
                    // before the pause was seen is behind it: the cursor
                    // moves past it, so a resume does not send it again.
                    AttemptVerdict::AlreadyOff => {
                        if result.is_ok() {
                            self.store
                                .advance_event_cursor(name, self.owner, event.position, self.lease)
                                .await?;
                        }
                        return Ok(Outcome::Disabled);
                    }
                }
            }
            match result {
                Ok(_) => {
                    attempts = 0;
                    skipped = None;
                    if !self
                        .store
                        .advance_event_cursor(name, self.owner, event.position, self.lease)
                        .await?
                    {
                        // The lease lapsed mid-batch (or a replay moved the
                        // cursor): another pass carries on from the cursor
                        // (this event may reach the sink twice).
                        return Ok(Outcome::NotOurs);
                    }
                }
                Err(error) => {
                    attempts += 1;
                    let jitter: f64 = rand::rng().random();
                    let mut wait = self.retry.backoff(attempts, jitter);
                    if let Some(asked) = error.retry_after {
                        wait = wait.max(asked.min(MAX_RETRY_AFTER));
                    }
                    tracing::warn!(
                        sink = name,
                        event_id = %event.id,
                        event_type = %event.event_type,
                        business_id = event.business_id.map(|b| b.to_string()),
                        invitation_id = event.invitation_id.map(|i| i.to_string()),
                        attempt = attempts,
                        retry_in_ms = wait.as_millis() as u64,
                        %error,
                        "event delivery failed; retrying"
                    );
                    self.store
                        .event_delivery_failed(name, self.owner, &error.reason, wait)
                        .await?;
                    return Ok(Outcome::RetryAfter(wait));
                }
            }
        }
        if let Some(position) = skipped
            && !self
                .store
                .advance_event_cursor(name, self.owner, position, self.lease)
                .await?
        {
            return Ok(Outcome::NotOurs);
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
