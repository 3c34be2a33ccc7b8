//! API-key authentication of `/v1`: `Authorization: Bearer <key>`, compared
//! with the configured keys' hashes. The matched key's name scopes
//! idempotency keys, so two apps never replay each other's responses.
//!
//! Scopes (R47): a `GET` needs `read`, any other method `write`, and the
//! routes registered through [`admin`] need `admin`. The scope a route needs
//! is decided by how it is registered, so a new route cannot go unscoped.

use axum::extract::{Request, State};
use axum::http::{HeaderMap, Method, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use axum::routing::MethodRouter;

use super::HttpState;
use super::error::ApiError;
use crate::config::{ApiKey, Scope};

/// Who called: the name of the API key that authenticated the request and
/// its scope. Put into the request's extensions by [`require_api_key`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Caller {
    pub key_name: String,
    pub scope: Scope,
}

/// The scope a request needs by its method alone: reading is `read`,
/// anything else `write` ([`admin`] routes ask for more).
pub fn method_scope(method: &Method) -> Scope {
    if matches!(*method, Method::GET | Method::HEAD) {
        Scope::Read
    } else {
        Scope::Write
    }
}

/// A route that needs the `admin` scope whatever its method (webhook
/// endpoints, suppressions, console actions).
pub fn admin<S: Clone + Send + Sync + 'static>(route: MethodRouter<S>) -> MethodRouter<S> {
    route.route_layer(axum::middleware::from_fn(require_admin))
}

async fn require_admin(req: Request, next: Next) -> Response {
    match req.extensions().get::<Caller>() {
        Some(caller) if caller.scope.allows(Scope::Admin) => next.run(req).await,
        Some(_) => ApiError::missing_scope(Scope::Admin).into_response(),
        None => ApiError::unauthorized().into_response(),
    }
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
    let caller = match req.extensions().get::<Caller>() {
        Some(inside) => inside.clone(),
        None => match authenticate(req.headers(), &state.api_keys) {
            Some(caller) => caller,
            None => return ApiError::unauthorized().into_response(),
        },
    };
    let needed = method_scope(req.method());
    if !caller.scope.allows(needed) {
        return ApiError::missing_scope(needed).into_response();
    }
    req.extensions_mut().insert(caller);
    next.run(req).await
}

/// The caller named by the headers, if their key is one of `keys`.
pub fn authenticate(headers: &HeaderMap, keys: &[ApiKey]) -> Option<Caller> {
    let value = headers.get(header::AUTHORIZATION)?.to_str().ok()?;
    let (scheme, token) = value.split_once(' ')?;
    // The scheme is case-insensitive (RFC 9110 §11.1); the key is not.
    if !scheme.eq_ignore_ascii_case("bearer") {
        return None;
    }
    authenticate_key(token, keys)
}

/// The caller a presented key names, if it is one of `keys`: the one check
/// of a key, for the API's header and the console's sign-in form (R49).
pub fn authenticate_key(token: &str, keys: &[ApiKey]) -> Option<Caller> {
    let token = token.trim();
    if token.is_empty() {
        return None;
    }
    keys.iter().find(|k| k.matches(token)).map(|k| Caller {
        key_name: k.name.clone(),
        scope: k.scope,
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

    /// R47: an `admin()` route refuses `read` and `write` keys with a 403
    /// that names the scope, and lets `admin` through.
    #[tokio::test]
    async fn admin_routes_need_the_admin_scope() {
        use axum::body::Body;
        use tower::ServiceExt as _;

        let router = axum::Router::new().route(
            "/admin-thing",
            admin(axum::routing::post(|| async { "done" })),
        );
        for (scope, expected) in [
            (Scope::Read, axum::http::StatusCode::FORBIDDEN),
            (Scope::Write, axum::http::StatusCode::FORBIDDEN),
            (Scope::Admin, axum::http::StatusCode::OK),
        ] {
            let mut req = axum::http::Request::post("/admin-thing")
                .body(Body::empty())
                .unwrap();
            req.extensions_mut().insert(Caller {
                key_name: "k".into(),
                scope,
            });
            let response = router.clone().oneshot(req).await.unwrap();
            assert_eq!(response.status(), expected, "{scope}");
            if expected == axum::http::StatusCode::FORBIDDEN {
                let body = axum::body::to_bytes(response.into_body(), 4096)
                    .await
                    .unwrap();
                let body = String::from_utf8_lossy(&body);
                assert!(body.contains("admin scope"), "{body}");
            }
        }
    }

    #[test]
    fn method_scopes_are_read_for_get_and_write_otherwise() {
        assert_eq!(method_scope(&Method::GET), Scope::Read);
        for m in [Method::POST, Method::PUT, Method::PATCH, Method::DELETE] {
            assert_eq!(method_scope(&m), Scope::Write, "{m}");
        }
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
