//! Inbound commands from NATS JetStream (docs/events.md, "Commands in"): a
//! durable pull consumer on `<prefix>.commands.>`. Each command is turned
//! into the HTTP request it stands for and run through the same router, so
//! the bodies, the strict parsing, the roles, the actors and the problem
//! documents are exactly the HTTP API's: nothing is parsed or validated twice.
//!
//! `Nats-Msg-Id` is the idempotency key, run through the same protocol as
//! HTTP's `Idempotency-Key` ([`crate::http::idempotency::runner`]) under the
//! scope [`IDEMPOTENCY_SCOPE`]: a repeated id replays the stored result and
//! changes nothing. The result goes to
//! `<prefix>.results.<Nats-Msg-Id>`, then the message is acknowledged, so a
//! command is acknowledged only after its change has committed. A malformed
//! command is answered with a problem and acknowledged; only a failure of
//! ours (`5xx`, or the same id still running elsewhere) is redelivered, at
//! most [`MAX_DELIVERIES`] times.

use std::sync::Arc;
use std::time::Duration;

use async_nats::jetstream::{self, AckKind, consumer::pull};
use axum::body::Body;
use axum::http::{Request, header};
use axum::response::{IntoResponse as _, Response};
use futures::StreamExt as _;
use tower::ServiceExt as _;

use crate::events::bus::{Bus, BusError};
use crate::http::auth::Caller;
use crate::http::error::ApiError;
use crate::http::idempotency::{Keyed, Outcome, request_hash, run_once};
use crate::store::Store;

pub mod wire;

pub use wire::{Target, message_id, result_payload, target};

/// The idempotency scope of queue commands: an API key of this name would
/// share its `Idempotency-Key`s with `Nats-Msg-Id`s.
pub const IDEMPOTENCY_SCOPE: &str = "nats";
/// The durable consumer's name on the commands stream.
pub const CONSUMER: &str = "invited";
/// A command that keeps failing on our side is answered with its last
/// problem after this many deliveries, instead of being redelivered forever.
pub const MAX_DELIVERIES: i64 = 20;
/// Where the problem goes when a message has no usable `Nats-Msg-Id`.
pub const UNIDENTIFIED: &str = "unidentified";
/// Commands handled at once by one replica.
const CONCURRENCY: usize = 16;

/// The answer to one message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verdict {
    /// Publish this result (HTTP status and body) and acknowledge.
    Answer { status: u16, body: Vec<u8> },
    /// Not done, not answered: deliver the message again after this long.
    Retry(Duration),
}

async fn problem(error: ApiError) -> Verdict {
    let response = error.into_response();
    let status = response.status().as_u16();
    let body = axum::body::to_bytes(response.into_body(), usize::MAX)
        .await
        .map(|b| b.to_vec())
        .unwrap_or_default();
    Verdict::Answer { status, body }
}

/// A wait before redelivery that grows with the deliveries: 1s, 2s, 4s, …
/// up to a minute.
fn redelivery_delay(delivered: i64) -> Duration {
    let exp = (delivered.max(1) - 1).min(6) as u32;
    Duration::from_secs(2u64.pow(exp)).min(Duration::from_secs(60))
}

/// The consumer: the NATS connection, the HTTP router it feeds, the store
/// for idempotency keys.
pub struct Commands {
    pub bus: Bus,
    pub router: axum::Router,
    pub store: Arc<dyn Store>,
    pub max_body: usize,
}

impl Commands {
    /// Consumes until the process stops; reconnects after any failure.
    pub async fn run(self: Arc<Self>) {
        loop {
            if let Err(error) = self.consume().await {
                tracing::warn!(%error, "the command consumer stopped; starting it again");
            }
            tokio::time::sleep(Duration::from_secs(2)).await;
        }
    }

    async fn consume(&self) -> Result<(), BusError> {
        let stream = self.bus.commands_stream().await?;
        let consumer: jetstream::consumer::Consumer<pull::Config> = stream
            .get_or_create_consumer(
                CONSUMER,
                pull::Config {
                    durable_name: Some(CONSUMER.to_string()),
                    ack_policy: jetstream::consumer::AckPolicy::Explicit,
                    ack_wait: Duration::from_secs(60),
                    // We answer and acknowledge ourselves after MAX_DELIVERIES.
                    max_deliver: -1,
                    ..Default::default()
                },
            )
            .await
            .map_err(BusError::from)?;
        let messages = consumer.messages().await.map_err(BusError::from)?;
        tracing::info!(subject = %self.bus.commands_subject(), "consuming commands");
        messages
            .for_each_concurrent(CONCURRENCY, |message| async move {
                match message {
                    Ok(message) => self.handle(message).await,
                    Err(error) => tracing::warn!(%error, "command stream error"),
                }
            })
            .await;
        Err(BusError("the message stream ended".into()))
    }

    async fn handle(&self, message: jetstream::Message) {
        let subject = message.subject.to_string();
        let name = self.bus.command_name(&subject).unwrap_or("").to_string();
        let raw_id = message
            .headers
            .as_ref()
            .and_then(|h| h.get(async_nats::header::NATS_MESSAGE_ID))
            .map(|v| v.as_str().to_string());
        let delivered = message.info().map(|i| i.delivered).unwrap_or(1);
        let (result_id, verdict) = match message_id(raw_id.as_deref()) {
            Ok(id) => {
                let verdict = self.execute(&name, &id, &message.payload, delivered).await;
                (id, verdict)
            }
            Err(error) => (UNIDENTIFIED.to_string(), problem(error).await),
        };
        match verdict {
            Verdict::Answer { status, body } => {
                tracing::info!(command = %name, status, "command answered");
                let (payload, content_type) = result_payload(status, &body);
                let mut headers = async_nats::HeaderMap::new();
                headers.insert("Content-Type", content_type);
                headers.insert("Invited-Status", status.to_string().as_str());
                headers.insert("Invited-Command", name.as_str());
                let subject = self.bus.result_subject(&result_id);
                if let Err(error) = self
                    .bus
                    .client
                    .publish_with_headers(subject, headers, payload.into())
                    .await
                {
                    tracing::warn!(%error, command = %name, "could not publish a command's result");
                }
                if let Err(error) = message.double_ack().await {
                    // Redelivered later: the stored result is replayed then.
                    tracing::warn!(%error, command = %name, "could not acknowledge a command");
                }
            }
            Verdict::Retry(delay) => {
                if let Err(error) = message.ack_with(AckKind::Nak(Some(delay))).await {
                    tracing::warn!(%error, command = %name, "could not return a command for redelivery");
                }
            }
        }
    }

    /// Runs one command: idempotency first, then the router.
    pub async fn execute(&self, name: &str, id: &str, payload: &[u8], delivered: i64) -> Verdict {
        let target = match target(name, payload, self.max_body) {
            Ok(target) => target,
            Err(error) => return problem(error).await,
        };
        let keyed = Keyed {
            scope: IDEMPOTENCY_SCOPE.to_string(),
            key: id.to_string(),
            hash: request_hash(&target.method, &target.path, payload),
        };
        // Our failures are not answers while deliveries remain.
        let retry_or = |error: ApiError| async move {
            if delivered < MAX_DELIVERIES {
                Verdict::Retry(redelivery_delay(delivered))
            } else {
                problem(error).await
            }
        };
        match run_once(self.store.clone(), keyed, call(self.router.clone(), target)).await {
            Outcome::Ran(response) => {
                let status = response.status().as_u16();
                if status >= 500 && delivered < MAX_DELIVERIES {
                    Verdict::Retry(redelivery_delay(delivered))
                } else {
                    Verdict::Answer {
                        status,
                        body: response.into_body().to_vec(),
                    }
                }
            }
            Outcome::Replayed(stored) => Verdict::Answer {
                status: stored.status,
                body: stored.body,
            },
            Outcome::Mismatch => {
                problem(ApiError::validation(
                    "Nats-Msg-Id",
                    "was already used for a different command (name, ids or body)",
                ))
                .await
            }
            Outcome::InProgress => {
                retry_or(ApiError::conflict(
                    "a command with this Nats-Msg-Id is still running",
                ))
                .await
            }
            Outcome::Unavailable => retry_or(ApiError::unavailable()).await,
        }
    }
}

/// Sends the request through the HTTP router as the caller `nats`.
async fn call(router: axum::Router, target: Target) -> Response {
    let mut request = Request::builder()
        .method(target.method)
        .uri(&target.path)
        .header(header::CONTENT_TYPE, "application/json")
        .body(Body::from(target.body))
        .expect("a valid request");
    // The commands are an app's writes, never an operator's.
    request.extensions_mut().insert(Caller {
        key_name: IDEMPOTENCY_SCOPE.to_string(),
        scope: crate::config::Scope::Write,
    });
    match router.oneshot(request).await {
        Ok(response) => response,
        Err(never) => match never {},
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn redeliveries_back_off_up_to_a_minute() {
        assert_eq!(redelivery_delay(1), Duration::from_secs(1));
        assert_eq!(redelivery_delay(3), Duration::from_secs(4));
        assert_eq!(redelivery_delay(50), Duration::from_secs(60));
    }
}
