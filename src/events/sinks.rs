//! Where events go: a webhook (`POST`, signed with `Invited-Signature` and
//! the Standard Webhooks headers) or NATS JetStream (publish with
//! `Nats-Msg-Id`, awaiting the stream's acknowledgement). A delivery either
//! succeeds or fails with a reason fit for a log line and the cursor row:
//! never a secret, never a URL's password.

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use tokio::sync::OnceCell;
use uuid::Uuid;

use super::bus::Bus;
use super::{
    SIGNATURE_HEADER, WEBHOOK_ID, WEBHOOK_SIGNATURE, WEBHOOK_TIMESTAMP, signature, standard_key,
    standard_signature,
};
use crate::store::{EventRecord, WebhookEndpointRecord, endpoint_sink};

/// Why a delivery failed; the event is retried after a backoff.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{reason}")]
pub struct SinkError {
    pub reason: String,
    /// The HTTP status a webhook answered, if it answered.
    pub status: Option<u16>,
    /// The receiver's `Retry-After` on a `429` or `503`: no attempt before
    /// it has passed.
    pub retry_after: Option<Duration>,
}

impl SinkError {
    pub fn new(reason: impl Into<String>) -> SinkError {
        SinkError {
            reason: reason.into(),
            status: None,
            retry_after: None,
        }
    }

    /// `410 Gone`: the receiver says the endpoint is no more (R48).
    pub fn gone(&self) -> bool {
        self.status == Some(410)
    }
}

#[async_trait]
pub trait Sink: Send + Sync {
    /// The cursor's key: stable across restarts and replicas.
    fn name(&self) -> &str;
    /// The `channel` label of the outbox metrics: `webhook` or `nats`.
    fn channel(&self) -> &'static str;
    /// Delivers one event whose wire body is `body`. `Ok` only once the
    /// receiver has it (a 2xx answer, a JetStream ack), with the HTTP status
    /// of a webhook's answer.
    async fn deliver(&self, event: &EventRecord, body: &[u8]) -> Result<Option<u16>, SinkError>;
    /// Whether the sink takes this event at all (an endpoint's event-type
    /// filter); the cursor moves past the others without sending them.
    fn wants(&self, _event: &EventRecord) -> bool {
        true
    }
    /// The runtime endpoint (R48) behind the sink, whose attempts are
    /// recorded; `None` for configured sinks.
    fn endpoint(&self) -> Option<Uuid> {
        None
    }
    /// The same sink for the endpoint as stored now (its URL, filter and
    /// secrets); `None` when it cannot be built or is not an endpoint's.
    fn refreshed(&self, _endpoint: &WebhookEndpointRecord) -> Option<Arc<dyn Sink>> {
        None
    }
}

/// A webhook: one of `[[webhooks]]`, or an endpoint added through the API.
pub struct WebhookSink {
    name: String,
    url: String,
    /// The secrets that sign, newest first, each with the time it stops
    /// signing (`None`: never).
    secrets: Vec<(String, Option<DateTime<Utc>>)>,
    event_types: Option<Vec<String>>,
    endpoint: Option<Uuid>,
    client: reqwest::Client,
}

fn client(timeout: Duration) -> Result<reqwest::Client, SinkError> {
    reqwest::Client::builder()
        .timeout(timeout)
        .user_agent(concat!("invited/", env!("CARGO_PKG_VERSION")))
        // A redirect would re-send a signed body somewhere not configured.
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .map_err(|e| SinkError::new(format!("cannot build the HTTP client: {e}")))
}

/// `Retry-After`: delay-seconds or an HTTP-date.
fn retry_after(headers: &reqwest::header::HeaderMap) -> Option<Duration> {
    let value = headers
        .get(reqwest::header::RETRY_AFTER)?
        .to_str()
        .ok()?
        .trim();
    if let Ok(secs) = value.parse::<u64>() {
        return Some(Duration::from_secs(secs));
    }
    let at = DateTime::parse_from_rfc2822(value).ok()?;
    Some(
        (at.with_timezone(&Utc) - Utc::now())
            .to_std()
            .unwrap_or_default(),
    )
}

impl WebhookSink {
    /// A configured `[[webhooks]]` entry: every event, its cursor named by
    /// the URL.
    pub fn new(url: &str, secret: &str, timeout: Duration) -> Result<WebhookSink, SinkError> {
        Ok(WebhookSink {
            name: format!("webhook:{url}"),
            url: url.to_string(),
            secrets: vec![(secret.to_string(), None)],
            event_types: None,
            endpoint: None,
            client: client(timeout)?,
        })
    }

    /// An endpoint of the API (R48): its filter, and during a rotation both
    /// of its secrets.
    pub fn for_endpoint(
        endpoint: &WebhookEndpointRecord,
        timeout: Duration,
    ) -> Result<WebhookSink, SinkError> {
        Ok(WebhookSink::with_client(endpoint, client(timeout)?))
    }

    fn with_client(endpoint: &WebhookEndpointRecord, client: reqwest::Client) -> WebhookSink {
        let mut secrets = vec![(endpoint.secret.clone(), None)];
        if let Some((old, until)) = &endpoint.previous_secret {
            secrets.push((old.clone(), Some(*until)));
        }
        WebhookSink {
            name: endpoint_sink(endpoint.id),
            url: endpoint.url.clone(),
            secrets,
            event_types: endpoint.event_types.clone(),
            endpoint: Some(endpoint.id),
            client,
        }
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

    fn wants(&self, event: &EventRecord) -> bool {
        self.event_types
            .as_ref()
            .is_none_or(|types| types.contains(&event.event_type))
    }

    fn endpoint(&self) -> Option<Uuid> {
        self.endpoint
    }

    fn refreshed(&self, endpoint: &WebhookEndpointRecord) -> Option<Arc<dyn Sink>> {
        // The client (its connection pool) is shared: cheap to clone.
        (self.endpoint == Some(endpoint.id))
            .then(|| Arc::new(WebhookSink::with_client(endpoint, self.client.clone())) as _)
    }

    async fn deliver(&self, event: &EventRecord, body: &[u8]) -> Result<Option<u16>, SinkError> {
        let at = Utc::now();
        let now = at.timestamp();
        let id = event.id.to_string();
        let signing: Vec<&str> = self
            .secrets
            .iter()
            .filter(|(_, until)| until.is_none_or(|until| until > at))
            .map(|(secret, _)| secret.as_str())
            .collect();
        // `Invited-Signature` with the current secret; `webhook-signature`
        // with each secret still signing, space-separated (R48).
        let invited = signature(signing[0].as_bytes(), now, body);
        let standard = signing
            .iter()
            .map(|secret| standard_signature(&standard_key(secret), &id, now, body))
            .collect::<Vec<_>>()
            .join(" ");
        let response = self
            .client
            .post(&self.url)
            .header(reqwest::header::CONTENT_TYPE, "application/json")
            .header(SIGNATURE_HEADER, invited)
            .header("Invited-Event-Id", id.as_str())
            .header("Invited-Event-Type", event.event_type.as_str())
            .header(WEBHOOK_ID, id.as_str())
            .header(WEBHOOK_TIMESTAMP, now.to_string())
            .header(WEBHOOK_SIGNATURE, standard)
            .body(body.to_vec())
            .send()
            .await
            // Without the URL: it may carry credentials.
            .map_err(|e| SinkError::new(format!("request failed: {}", e.without_url())))?;
        let status = response.status();
        if status.is_success() {
            return Ok(Some(status.as_u16()));
        }
        let honoured = matches!(status.as_u16(), 429 | 503);
        Err(SinkError {
            reason: format!("answered HTTP {}", status.as_u16()),
            status: Some(status.as_u16()),
            retry_after: honoured.then(|| retry_after(response.headers())).flatten(),
        })
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

    async fn deliver(&self, event: &EventRecord, body: &[u8]) -> Result<Option<u16>, SinkError> {
        self.stream_ready
            .get_or_try_init(|| async {
                self.bus
                    .events_stream()
                    .await
                    .map(|_| ())
                    .map_err(|e| SinkError::new(format!("events stream: {e}")))
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
            .map_err(|e| SinkError::new(format!("publish failed: {e}")))?;
        ack.await
            .map_err(|e| SinkError::new(format!("not acknowledged: {e}")))?;
        Ok(None)
    }
}
