//! Where events go: a webhook (`POST`, signed) or NATS JetStream (publish with
//! `Nats-Msg-Id`, awaiting the stream's acknowledgement). A delivery either
//! succeeds or fails with a reason fit for a log line and the cursor row:
//! never a secret, never a URL's password.

use std::time::Duration;

use async_trait::async_trait;
use tokio::sync::OnceCell;

use super::bus::Bus;
use super::{SIGNATURE_HEADER, signature};
use crate::store::EventRecord;

/// Why a delivery failed; the event is retried after a backoff.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct SinkError(pub String);

#[async_trait]
pub trait Sink: Send + Sync {
    /// The cursor's key: stable across restarts and replicas.
    fn name(&self) -> &str;
    /// The `channel` label of the outbox metrics: `webhook` or `nats`.
    fn channel(&self) -> &'static str;
    /// Delivers one event whose wire body is `body`. `Ok` only once the
    /// receiver has it (a 2xx answer, a JetStream ack).
    async fn deliver(&self, event: &EventRecord, body: &[u8]) -> Result<(), SinkError>;
}

/// One configured webhook.
pub struct WebhookSink {
    name: String,
    url: String,
    secret: Vec<u8>,
    client: reqwest::Client,
}

impl WebhookSink {
    pub fn new(url: &str, secret: &str, timeout: Duration) -> Result<WebhookSink, SinkError> {
        let client = reqwest::Client::builder()
            .timeout(timeout)
            .user_agent(concat!("invited/", env!("CARGO_PKG_VERSION")))
            // A redirect would re-send a signed body somewhere not configured.
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .map_err(|e| SinkError(format!("cannot build the HTTP client: {e}")))?;
        Ok(WebhookSink {
            name: format!("webhook:{url}"),
            url: url.to_string(),
            secret: secret.as_bytes().to_vec(),
            client,
        })
    }
}

#[async_trait]
impl Sink for WebhookSink {
    fn name(&self) -> &str {
        &self.name
    }

    fn channel(&self) -> &'static str {
        "webhook"
    }

    async fn deliver(&self, event: &EventRecord, body: &[u8]) -> Result<(), SinkError> {
        let now = chrono::Utc::now().timestamp();
        let response = self
            .client
            .post(&self.url)
            .header(reqwest::header::CONTENT_TYPE, "application/json")
            .header(SIGNATURE_HEADER, signature(&self.secret, now, body))
            .header("Invited-Event-Id", event.id.to_string())
            .header("Invited-Event-Type", event.event_type.as_str())
            .body(body.to_vec())
            .send()
            .await
            // Without the URL: it may carry credentials.
            .map_err(|e| SinkError(format!("request failed: {}", e.without_url())))?;
        let status = response.status();
        if status.is_success() {
            Ok(())
        } else {
            Err(SinkError(format!("answered HTTP {}", status.as_u16())))
        }
    }
}

/// NATS JetStream: `<prefix>.events.<type>`, `Nats-Msg-Id` = the event id, so
/// the stream drops a re-publish within its duplicate window.
pub struct NatsSink {
    bus: Bus,
    stream_ready: OnceCell<()>,
}

impl NatsSink {
    pub fn new(bus: Bus) -> NatsSink {
        NatsSink {
            bus,
            stream_ready: OnceCell::new(),
        }
    }
}

#[async_trait]
impl Sink for NatsSink {
    fn name(&self) -> &str {
        "nats"
    }

    fn channel(&self) -> &'static str {
        "nats"
    }

    async fn deliver(&self, event: &EventRecord, body: &[u8]) -> Result<(), SinkError> {
        self.stream_ready
            .get_or_try_init(|| async {
                self.bus
                    .events_stream()
                    .await
                    .map(|_| ())
                    .map_err(|e| SinkError(format!("events stream: {e}")))
            })
            .await?;
        let mut headers = async_nats::HeaderMap::new();
        headers.insert(async_nats::header::NATS_MESSAGE_ID, event.id.to_string());
        headers.insert("Content-Type", "application/json");
        let ack = self
            .bus
            .js
            .publish_with_headers(
                self.bus.event_subject(&event.event_type),
                headers,
                body.to_vec().into(),
            )
            .await
            .map_err(|e| SinkError(format!("publish failed: {e}")))?;
        ack.await
            .map_err(|e| SinkError(format!("not acknowledged: {e}")))?;
        Ok(())
    }
}
