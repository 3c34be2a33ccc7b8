//! Inbound commands from NATS JetStream (API.md "Inbound commands"): a
//! durable pull consumer on `<prefix>.commands.>`. Each command is turned
//! into the HTTP request it stands for and run through the same router, so
//! the bodies, the strict parsing, the roles, the actors and the problem
//! documents are exactly the HTTP API's: nothing is parsed or validated twice.
//!
//! `Nats-Msg-Id` is the idempotency key, kept in the HTTP `idempotency_keys`
//! table under the scope [`IDEMPOTENCY_SCOPE`]: a repeated id replays the
//! stored result and changes nothing. The result goes to
//! `<prefix>.results.<Nats-Msg-Id>`, then the message is acknowledged, so a
//! command is acknowledged only after its change has committed. A malformed
//! command is answered with a problem and acknowledged; only a failure of
//! ours (`5xx`, or the same id still running elsewhere) is redelivered, at
//! most [`MAX_DELIVERIES`] times.

use std::sync::Arc;
use std::time::Duration;

use async_nats::jetstream::{self, AckKind, consumer::pull};
use axum::body::Body;
use axum::http::{Method, Request, header};
use axum::response::IntoResponse as _;
use futures::StreamExt as _;
use serde_json::{Map, Value};
use tower::ServiceExt as _;

use crate::events::bus::{Bus, BusError};
use crate::http::auth::Caller;
use crate::http::error::ApiError;
use crate::http::idempotency::{parse_key, request_hash};
use crate::http::json::parse_strict;
use crate::store::{IdempotencyClaim, Store, StoredResponse};

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

/// The HTTP request a command stands for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Target {
    pub method: Method,
    pub path: String,
    /// The body without the fields that went into the path.
    pub body: Vec<u8>,
}

/// The answer to one message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verdict {
    /// Publish this result (HTTP status and body) and acknowledge.
    Answer { status: u16, body: Vec<u8> },
    /// Not done, not answered: deliver the message again after this long.
    Retry(Duration),
}

/// Maps a command and its body to the HTTP request (API.md's table). The
/// path ids are fields of the body: `business_id`, `invitation_id`,
/// `user_id` (of `put_user`). Refusals are the problems HTTP would give.
pub fn target(name: &str, payload: &[u8], max_body: usize) -> Result<Target, ApiError> {
    if payload.len() > max_body {
        return Err(ApiError::payload_too_large(max_body));
    }
    // The same parser as HTTP bodies: malformed JSON is 400, another type 422.
    let mut body: Map<String, Value> = parse_strict(payload)?;
    let (method, path) = match name {
        "create_business" => (Method::POST, "/v1/businesses".to_string()),
        "create_invitations" => (
            Method::POST,
            format!(
                "/v1/businesses/{}/invitations",
                take(&mut body, "business_id")?
            ),
        ),
        "create_partner" => (
            Method::POST,
            format!(
                "/v1/businesses/{}/partners",
                take(&mut body, "business_id")?
            ),
        ),
        "resend" | "cancel" | "renew" => (
            Method::POST,
            format!(
                "/v1/invitations/{}/{name}",
                take(&mut body, "invitation_id")?
            ),
        ),
        // With `invitation_id`: a partner invitation answered by its
        // business; without: a member invitation answered with its token.
        "accept" | "decline" => match take_optional(&mut body, "invitation_id")? {
            Some(id) => (Method::POST, format!("/v1/invitations/{id}/{name}")),
            None => (Method::POST, format!("/v1/invitations/{name}")),
        },
        "put_user" => (
            Method::PUT,
            format!("/v1/users/{}", take(&mut body, "user_id")?),
        ),
        _ => {
            return Err(ApiError::not_found(format!(
                "no such command {name:?} (create_business, create_invitations, create_partner, \
                 resend, cancel, renew, accept, decline, put_user)"
            )));
        }
    };
    Ok(Target {
        method,
        path,
        body: serde_json::to_vec(&Value::Object(body)).expect("a JSON map serialises"),
    })
}

/// A required path field, percent-encoded for the path.
fn take(body: &mut Map<String, Value>, field: &str) -> Result<String, ApiError> {
    take_optional(body, field)?.ok_or_else(|| ApiError::validation(field, "is required"))
}

fn take_optional(body: &mut Map<String, Value>, field: &str) -> Result<Option<String>, ApiError> {
    match body.remove(field) {
        None => Ok(None),
        Some(Value::String(s)) if !s.is_empty() => Ok(Some(encode_segment(&s))),
        Some(_) => Err(ApiError::validation(field, "must be a non-empty string")),
    }
}

/// Percent-encodes all but letters, digits, `-`, `_` and `~`: an id can
/// never add a path segment or a query.
fn encode_segment(raw: &str) -> String {
    let mut out = String::with_capacity(raw.len());
    for b in raw.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'~') {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// A usable `Nats-Msg-Id`: an idempotency key (1 to 255 visible ASCII
/// characters) that also makes a valid results subject.
pub fn message_id(raw: Option<&str>) -> Result<String, ApiError> {
    let raw = raw.ok_or_else(|| {
        ApiError::validation("Nats-Msg-Id", "is required: it is the idempotency key")
    })?;
    let value = axum::http::HeaderValue::from_str(raw)
        .map_err(|_| ApiError::validation("Nats-Msg-Id", "must be visible ASCII"))?;
    let key = parse_key(&value).map_err(|_| {
        ApiError::validation("Nats-Msg-Id", "must be 1 to 255 visible ASCII characters")
    })?;
    if key.contains(['*', '>']) || key.split('.').any(str::is_empty) {
        return Err(ApiError::validation(
            "Nats-Msg-Id",
            "must make a valid subject: no '*', '>' or empty dot-separated part",
        ));
    }
    Ok(key)
}

/// The payload published on the results subject: a success is
/// `{"status": <HTTP status>, "result": <the HTTP body or null>}`, a refusal
/// the problem document itself (which carries `status` too).
pub fn result_payload(status: u16, body: &[u8]) -> (Vec<u8>, &'static str) {
    if status >= 400 {
        (body.to_vec(), "application/problem+json")
    } else {
        let result: Value = serde_json::from_slice(body).unwrap_or(Value::Null);
        let envelope = serde_json::json!({"status": status, "result": result});
        (
            serde_json::to_vec(&envelope).expect("JSON serialises"),
            "application/json",
        )
    }
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
        let hash = request_hash(&target.method, &target.path, payload);
        let retry_or = |error: ApiError| async move {
            if delivered < MAX_DELIVERIES {
                Verdict::Retry(redelivery_delay(delivered))
            } else {
                problem(error).await
            }
        };
        match self
            .store
            .claim_idempotency_key(IDEMPOTENCY_SCOPE, id, &hash)
            .await
        {
            Ok(IdempotencyClaim::New) => {}
            Ok(IdempotencyClaim::Replay(stored)) => {
                return Verdict::Answer {
                    status: stored.status,
                    body: stored.body,
                };
            }
            Ok(IdempotencyClaim::Mismatch) => {
                return problem(ApiError::validation(
                    "Nats-Msg-Id",
                    "was already used for a different command (name, ids or body)",
                ))
                .await;
            }
            Ok(IdempotencyClaim::InProgress) => {
                return retry_or(ApiError::conflict(
                    "a command with this Nats-Msg-Id is still running",
                ))
                .await;
            }
            Err(error) => {
                tracing::warn!(%error, "could not claim an idempotency key for a command");
                return retry_or(ApiError::unavailable()).await;
            }
        }

        // In its own task, like an idempotent HTTP request: stopping the
        // consumer must not cut a change in half with its key claimed.
        let router = self.router.clone();
        let store = self.store.clone();
        let key = id.to_string();
        let task = tokio::spawn(async move {
            let (status, content_type, body) = call(router, target).await;
            if status < 500 {
                let stored = StoredResponse {
                    status,
                    headers: content_type
                        .map(|c| vec![(header::CONTENT_TYPE.as_str().to_string(), c)])
                        .unwrap_or_default(),
                    body: body.clone(),
                };
                if let Err(error) = store
                    .complete_idempotency_key(IDEMPOTENCY_SCOPE, &key, &stored)
                    .await
                {
                    tracing::error!(%error, "could not store the result of a command");
                }
            } else if let Err(error) = store.release_idempotency_key(IDEMPOTENCY_SCOPE, &key).await
            {
                tracing::error!(%error, "could not release a command's idempotency key");
            }
            (status, body)
        });
        match task.await {
            Ok((status, body)) if status < 500 => Verdict::Answer { status, body },
            Ok((status, body)) => {
                if delivered < MAX_DELIVERIES {
                    Verdict::Retry(redelivery_delay(delivered))
                } else {
                    Verdict::Answer { status, body }
                }
            }
            Err(error) => {
                tracing::error!(%error, "a command's task failed");
                retry_or(ApiError::unavailable()).await
            }
        }
    }
}

/// Sends the request through the HTTP router as the caller `nats`.
async fn call(router: axum::Router, target: Target) -> (u16, Option<String>, Vec<u8>) {
    let mut request = Request::builder()
        .method(target.method)
        .uri(&target.path)
        .header(header::CONTENT_TYPE, "application/json")
        .body(Body::from(target.body))
        .expect("a valid request");
    request.extensions_mut().insert(Caller {
        key_name: IDEMPOTENCY_SCOPE.to_string(),
    });
    let response = match router.oneshot(request).await {
        Ok(response) => response,
        Err(never) => match never {},
    };
    let status = response.status();
    let content_type = response
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .map(str::to_string);
    let body = axum::body::to_bytes(response.into_body(), usize::MAX)
        .await
        .map(|b| b.to_vec())
        .unwrap_or_default();
    (status.as_u16(), content_type, body)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn commands_map_to_their_http_requests() {
        let t = target(
            "create_invitations",
            br#"{"business_id":"0190aa00-0000-7000-8000-000000000001","actor_user_id":"olive","invitees":[]}"#,
            65536,
        )
        .unwrap();
        assert_eq!(t.method, Method::POST);
        assert_eq!(
            t.path,
            "/v1/businesses/0190aa00-0000-7000-8000-000000000001/invitations"
        );
        let body: Value = serde_json::from_slice(&t.body).unwrap();
        assert_eq!(
            body,
            serde_json::json!({"actor_user_id": "olive", "invitees": []})
        );

        let t = target("put_user", br#"{"user_id":"a/b c","email":"x@y.z"}"#, 65536).unwrap();
        assert_eq!(
            (t.method, t.path.as_str()),
            (Method::PUT, "/v1/users/a%2Fb%20c")
        );
        let t = target("accept", br#"{"token":"t","user_id":"u"}"#, 65536).unwrap();
        assert_eq!(t.path, "/v1/invitations/accept");
        let t = target(
            "decline",
            br#"{"invitation_id":"x","actor_user_id":"u"}"#,
            65536,
        )
        .unwrap();
        assert_eq!(t.path, "/v1/invitations/x/decline");
        let t = target(
            "cancel",
            br#"{"invitation_id":"x","actor_user_id":"u"}"#,
            65536,
        )
        .unwrap();
        assert_eq!(t.path, "/v1/invitations/x/cancel");
    }

    #[test]
    fn malformed_commands_are_the_problems_http_gives() {
        let e = target("cancel", b"{not json", 65536).unwrap_err();
        assert_eq!(
            (e.status.as_u16(), e.code.as_str()),
            (400, "validation_failed")
        );
        let e = target("cancel", b"[1]", 65536).unwrap_err();
        assert_eq!(e.status.as_u16(), 422);
        let e = target("cancel", br#"{"actor_user_id":"u"}"#, 65536).unwrap_err();
        assert_eq!(
            (e.status.as_u16(), e.errors[0].field.as_str()),
            (422, "invitation_id")
        );
        let e = target("cancel", br#"{"invitation_id":7}"#, 65536).unwrap_err();
        assert_eq!(e.errors[0].field, "invitation_id");
        let e = target("launch", b"{}", 65536).unwrap_err();
        assert_eq!(e.status.as_u16(), 404);
        let e = target("cancel", &[b' '; 100], 10).unwrap_err();
        assert_eq!(e.status.as_u16(), 413);
    }

    #[test]
    fn message_ids_must_be_keys_and_subject_tokens() {
        assert_eq!(message_id(Some("cmd-1")).unwrap(), "cmd-1");
        assert_eq!(message_id(Some("a.b")).unwrap(), "a.b");
        for bad in [
            None,
            Some(""),
            Some("a b"),
            Some("a.*"),
            Some("a..b"),
            Some(">"),
        ] {
            assert!(message_id(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn results_wrap_successes_and_pass_problems_through() {
        let (body, ct) = result_payload(201, br#"{"id":"x"}"#);
        assert_eq!(ct, "application/json");
        assert_eq!(
            serde_json::from_slice::<Value>(&body).unwrap(),
            serde_json::json!({"status": 201, "result": {"id": "x"}})
        );
        let (body, ct) = result_payload(202, b"");
        assert_eq!(ct, "application/json");
        assert_eq!(
            serde_json::from_slice::<Value>(&body).unwrap(),
            serde_json::json!({"status": 202, "result": null})
        );
        let problem = br#"{"status":404,"code":"not_found"}"#;
        assert_eq!(
            result_payload(404, problem),
            (problem.to_vec(), "application/problem+json")
        );
    }

    #[test]
    fn redeliveries_back_off_up_to_a_minute() {
        assert_eq!(redelivery_delay(1), Duration::from_secs(1));
        assert_eq!(redelivery_delay(3), Duration::from_secs(4));
        assert_eq!(redelivery_delay(50), Duration::from_secs(60));
    }
}
