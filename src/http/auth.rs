//! API-key authentication of `/v1`: `Authorization: Bearer <key>`, compared
//! with the configured keys' hashes. The matched key's name scopes
//! idempotency keys, so two apps never replay each other's responses.

use axum::extract::{Request, State};
use axum::http::{HeaderMap, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};

use super::HttpState;
use super::error::ApiError;
use crate::config::ApiKey;

/// Who called: the name of the API key that authenticated the request. Put
/// into the request's extensions by [`require_api_key`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Caller {
    pub key_name: String,
}

/// Middleware: refuses a request without a known key with `401`. A request
/// that already names its caller comes from inside the process (the NATS
/// command consumer, `crate::ingress::nats`): extensions never come from the
/// network, so it passes as that caller.
pub async fn require_api_key(
    State(state): State<HttpState>,
    mut req: Request,
    next: Next,
) -> Response {
    if req.extensions().get::<Caller>().is_some() {
        return next.run(req).await;
    }
    match authenticate(req.headers(), &state.api_keys) {
        Some(caller) => {
            req.extensions_mut().insert(caller);
            next.run(req).await
        }
        None => ApiError::unauthorized().into_response(),
    }
}

/// The caller named by the headers, if their key is one of `keys`.
pub fn authenticate(headers: &HeaderMap, keys: &[ApiKey]) -> Option<Caller> {
    let value = headers.get(header::AUTHORIZATION)?.to_str().ok()?;
    let (scheme, token) = value.split_once(' ')?;
    // The scheme is case-insensitive (RFC 9110 §11.1); the key is not.
    if !scheme.eq_ignore_ascii_case("bearer") {
        return None;
    }
    let token = token.trim();
    if token.is_empty() {
        return None;
    }
    keys.iter().find(|k| k.matches(token)).map(|k| Caller {
        key_name: k.name.clone(),
    })
}

/// A fresh API key for `invited serve --dev`: 256 random bits, base64url, so
/// it fits a header without quoting.
pub fn generate_api_key() -> String {
    use base64::Engine as _;
    use rand::RngExt as _;
    let bytes: [u8; 32] = rand::rng().random();
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes)
}

#[cfg(test)]
mod tests {
    use axum::http::HeaderValue;

    use super::*;

    fn headers(auth: &str) -> HeaderMap {
        let mut h = HeaderMap::new();
        h.insert(header::AUTHORIZATION, HeaderValue::from_str(auth).unwrap());
        h
    }

    #[test]
    fn a_configured_key_names_its_caller() {
        let keys = [
            ApiKey::from_plaintext("app", "s3cret"),
            ApiKey::from_plaintext("ops", "other"),
        ];
        assert_eq!(
            authenticate(&headers("Bearer other"), &keys)
                .unwrap()
                .key_name,
            "ops"
        );
        assert_eq!(
            authenticate(&headers("bearer s3cret"), &keys)
                .unwrap()
                .key_name,
            "app"
        );
    }

    #[test]
    fn generated_keys_are_long_random_and_usable() {
        let (a, b) = (generate_api_key(), generate_api_key());
        assert_ne!(a, b);
        assert_eq!(a.len(), 43);
        let keys = [ApiKey::from_plaintext("dev", &a)];
        assert!(authenticate(&headers(&format!("Bearer {a}")), &keys).is_some());
    }

    #[test]
    fn missing_wrong_or_malformed_keys_are_refused() {
        let keys = [ApiKey::from_plaintext("app", "s3cret")];
        assert!(authenticate(&HeaderMap::new(), &keys).is_none());
        for auth in [
            "Bearer nope",
            "Basic s3cret",
            "s3cret",
            "Bearer ",
            "Bearer S3CRET",
        ] {
            assert!(authenticate(&headers(auth), &keys).is_none(), "{auth}");
        }
    }
}
