//! `Idempotency-Key` on `POST`: the first response to a key is stored and
//! replayed for the same key and body; the same key with another body is
//! refused. Keys are scoped by the API key that sent them. The protocol is
//! [`runner`]'s, shared with NATS commands (`crate::ingress::nats`); this
//! module reads the header and says what its outcomes are in HTTP.

use axum::body::{Body, Bytes};
use axum::extract::{FromRequest, OriginalUri, Request, State};
use axum::http::{HeaderName, HeaderValue, Method, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use sha2::{Digest, Sha256};

use super::HttpState;
use super::auth::Caller;
use super::error::ApiError;
use super::json::body_rejection;
use crate::store::StoredResponse;

pub mod runner;

pub use runner::{Keyed, Outcome, run_once};

pub const IDEMPOTENCY_KEY: HeaderName = HeaderName::from_static("idempotency-key");
pub const IDEMPOTENT_REPLAYED: HeaderName = HeaderName::from_static("idempotent-replayed");

/// Checks a presented key: 1 to 255 visible ASCII characters.
pub fn parse_key(raw: &HeaderValue) -> Result<String, ApiError> {
    let bytes = raw.as_bytes();
    if bytes.is_empty() || bytes.len() > 255 || !bytes.iter().all(|b| (0x21..=0x7e).contains(b)) {
        return Err(ApiError::validation(
            "Idempotency-Key",
            "must be 1 to 255 visible ASCII characters",
        ));
    }
    // All visible ASCII, so valid UTF-8.
    Ok(String::from_utf8_lossy(bytes).into_owned())
}

/// What a key is bound to: the method, the path and the exact body bytes. The
/// parts are separated by a NUL, which none of them can hold before the body,
/// so two different requests never hash the same input.
pub fn request_hash(method: &Method, path: &str, body: &[u8]) -> Vec<u8> {
    let mut h = Sha256::new();
    h.update(method.as_str().as_bytes());
    h.update([0]);
    h.update(path.as_bytes());
    h.update([0]);
    h.update(body);
    h.finalize().to_vec()
}

/// Middleware, inside authentication: passes every request through except a
/// `POST` that carries `Idempotency-Key`.
pub async fn idempotency(State(state): State<HttpState>, req: Request, next: Next) -> Response {
    if req.method() != Method::POST {
        return next.run(req).await;
    }
    let Some(raw) = req.headers().get(&IDEMPOTENCY_KEY).cloned() else {
        return next.run(req).await;
    };
    match keyed(state, req, raw, next).await {
        Ok(response) | Err(response) => response,
    }
}

async fn keyed(
    state: HttpState,
    req: Request,
    raw: HeaderValue,
    next: Next,
) -> Result<Response, Response> {
    let key = parse_key(&raw).map_err(IntoResponse::into_response)?;
    let caller = req
        .extensions()
        .get::<Caller>()
        .cloned()
        .ok_or_else(|| ApiError::unauthorized().into_response())?;

    // Read the body here to hash it, then hand the same bytes on. The probe
    // carries the extensions so that the router's body limit applies.
    let (parts, body) = req.into_parts();
    let mut probe = Request::new(body);
    *probe.extensions_mut() = parts.extensions.clone();
    let bytes = Bytes::from_request(probe, &state)
        .await
        .map_err(|e| body_rejection(e, state.max_body).into_response())?;
    // The full path: inside `/v1` the router has stripped the prefix from `uri`.
    let path = parts
        .extensions
        .get::<OriginalUri>()
        .map_or_else(|| parts.uri.path().to_string(), |o| o.path().to_string());
    let keyed = Keyed {
        scope: caller.key_name,
        key,
        hash: request_hash(&parts.method, &path, &bytes),
    };

    let req = Request::from_parts(parts, Body::from(bytes));
    match run_once(state.services.store.clone(), keyed, next.run(req)).await {
        Outcome::Ran(response) => Ok(response.map(Body::from)),
        Outcome::Replayed(stored) => Ok(replay(stored)),
        Outcome::Mismatch => Err(ApiError::validation(
            "Idempotency-Key",
            "was already used for a different request (method, path or body)",
        )
        .into_response()),
        Outcome::InProgress => Err(ApiError::conflict(
            "a request with this Idempotency-Key is still running",
        )
        .into_response()),
        Outcome::Unavailable => Err(ApiError::unavailable().into_response()),
    }
}

/// The stored first response, marked as a replay.
pub fn replay(stored: StoredResponse) -> Response {
    let status = StatusCode::from_u16(stored.status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    let mut response = (status, stored.body).into_response();
    let headers = response.headers_mut();
    // The stored headers alone describe the body (a bodyless answer has none).
    headers.remove(header::CONTENT_TYPE);
    for (name, value) in &stored.headers {
        if let (Ok(name), Ok(value)) = (
            HeaderName::try_from(name.as_str()),
            HeaderValue::from_str(value),
        ) {
            headers.insert(name, value);
        }
    }
    headers.insert(IDEMPOTENT_REPLAYED, HeaderValue::from_static("true"));
    response
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_are_visible_ascii_of_bounded_length() {
        for ok in ["a", "0f3c-uuid-like-key", &"k".repeat(255), "!~"] {
            assert_eq!(parse_key(&HeaderValue::from_str(ok).unwrap()).unwrap(), ok);
        }
        for bad in ["", &"k".repeat(256), "has space", "tab\tkey"] {
            let e = parse_key(&HeaderValue::from_str(bad).unwrap()).unwrap_err();
            assert_eq!(
                (e.status.as_u16(), e.errors[0].field.as_str()),
                (422, "Idempotency-Key"),
                "{bad:?}"
            );
        }
        let e = parse_key(&HeaderValue::from_bytes(b"caf\xc3\xa9").unwrap()).unwrap_err();
        assert_eq!(e.status.as_u16(), 422);
    }

    #[test]
    fn the_hash_binds_method_path_and_body() {
        let a = request_hash(&Method::POST, "/v1/businesses", b"{}");
        assert_eq!(a, request_hash(&Method::POST, "/v1/businesses", b"{}"));
        assert_ne!(a, request_hash(&Method::POST, "/v1/businesses", b"{ }"));
        assert_ne!(a, request_hash(&Method::POST, "/v1/businesses/x", b"{}"));
        assert_ne!(a, request_hash(&Method::PUT, "/v1/businesses", b"{}"));
    }

    #[tokio::test]
    async fn a_replay_carries_the_stored_answer_and_the_marker() {
        let response = replay(StoredResponse {
            status: 201,
            headers: vec![("content-type".into(), "application/json".into())],
            body: b"{\"x\":1}".to_vec(),
        });
        assert_eq!(response.status(), StatusCode::CREATED);
        assert_eq!(response.headers()[header::CONTENT_TYPE], "application/json");
        assert_eq!(response.headers()[IDEMPOTENT_REPLAYED], "true");
        let body = axum::body::to_bytes(response.into_body(), usize::MAX)
            .await
            .unwrap();
        assert_eq!(&body[..], b"{\"x\":1}");
    }
}
