//! Router tests without a database: a fake store that answers readiness and
//! idempotency keys and fails everything else, which is enough to show that
//! every route is wired, authenticated, size-limited and answers problems.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;
use axum::body::Body;
use axum::http::{Method, Request, StatusCode, header};
use chrono::{DateTime, Utc};
use serde_json::Value;
use tower::ServiceExt as _;

use super::*;
use crate::domain::quota::QuotaPolicy;
use crate::domain::{BusinessId, InvitationId, Locale, RolePreset, TokenHash, UserId};
use crate::service::Settings;
use crate::store::{
    ClaimedEmail, IdempotencyClaim, InvitationQuery, InvitationRecord, MemberRecord, Store,
    StoreError, StoreResult, StoreTx, StoredResponse, TimelineEntry, Wakeups,
};

const KEY: &str = "test-api-key";
const MAX_BODY: usize = 1024;

type IdemMap = HashMap<(String, String), (Vec<u8>, Option<StoredResponse>)>;

#[derive(Default)]
struct FakeStore {
    ready: bool,
    idem: Mutex<IdemMap>,
}

fn down<T>() -> StoreResult<T> {
    Err(StoreError::Unavailable(
        "fake store: connection refused to 10.0.0.7".into(),
    ))
}

#[async_trait]
impl Store for FakeStore {
    async fn begin(&self) -> StoreResult<Box<dyn StoreTx>> {
        down()
    }
    async fn ready(&self) -> StoreResult<bool> {
        Ok(self.ready)
    }
    async fn token_key(&self) -> StoreResult<Vec<u8>> {
        down()
    }
    async fn get_business(
        &self,
        _: BusinessId,
    ) -> StoreResult<Option<crate::store::BusinessRecord>> {
        down()
    }
    async fn get_member(&self, _: BusinessId, _: &UserId) -> StoreResult<Option<MemberRecord>> {
        down()
    }
    async fn list_members(&self, _: BusinessId) -> StoreResult<Vec<MemberRecord>> {
        down()
    }
    async fn get_invitation(&self, _: InvitationId) -> StoreResult<Option<InvitationRecord>> {
        down()
    }
    async fn find_invitation_by_token(&self, _: &TokenHash) -> StoreResult<Option<InvitationId>> {
        down()
    }
    async fn list_invitations(&self, _: &InvitationQuery) -> StoreResult<Vec<InvitationRecord>> {
        down()
    }
    async fn timeline(&self, _: InvitationId) -> StoreResult<Vec<TimelineEntry>> {
        down()
    }
    async fn quota_window(
        &self,
        _: BusinessId,
        _: Duration,
    ) -> StoreResult<(DateTime<Utc>, Vec<DateTime<Utc>>)> {
        down()
    }
    async fn claim_idempotency_key(
        &self,
        api_key: &str,
        key: &str,
        hash: &[u8],
    ) -> StoreResult<IdempotencyClaim> {
        let mut map = self.idem.lock().unwrap();
        let k = (api_key.to_string(), key.to_string());
        Ok(match map.get(&k) {
            None => {
                map.insert(k, (hash.to_vec(), None));
                IdempotencyClaim::New
            }
            Some((h, _)) if h != hash => IdempotencyClaim::Mismatch,
            Some((_, Some(stored))) => IdempotencyClaim::Replay(stored.clone()),
            Some((_, None)) => IdempotencyClaim::InProgress,
        })
    }
    async fn complete_idempotency_key(
        &self,
        api_key: &str,
        key: &str,
        response: &StoredResponse,
    ) -> StoreResult<()> {
        let mut map = self.idem.lock().unwrap();
        if let Some(entry) = map.get_mut(&(api_key.to_string(), key.to_string())) {
            entry.1 = Some(response.clone());
        }
        Ok(())
    }
    async fn release_idempotency_key(&self, api_key: &str, key: &str) -> StoreResult<()> {
        self.idem
            .lock()
            .unwrap()
            .remove(&(api_key.to_string(), key.to_string()));
        Ok(())
    }
    async fn purge_idempotency_keys(&self, _: Duration) -> StoreResult<u64> {
        Ok(0)
    }
    async fn claim_emails(&self, _: u32, _: Duration) -> StoreResult<Vec<ClaimedEmail>> {
        down()
    }
    async fn subscribe_outbox(&self) -> StoreResult<Box<dyn Wakeups>> {
        down()
    }
}

fn app_with(store: Arc<FakeStore>) -> Router {
    let services = Services {
        store,
        settings: Arc::new(Settings {
            default_preset: RolePreset::BusinessManager,
            quota: QuotaPolicy {
                limit: 5,
                window: Duration::from_secs(86_400),
            },
            ttl: Duration::from_secs(7 * 86_400),
            resend_cooldown: Duration::from_secs(600),
            default_locale: Locale::parse("en-US").unwrap(),
            message_id_domain: "invited.test".into(),
        }),
        token_key: Arc::new(b"test token key".to_vec()),
    };
    router(HttpState {
        services,
        // No registry runs in these tests: commands answer `unavailable`.
        invitations: InvitationsHandle::new("http-tests-no-registry".into()),
        api_keys: Arc::new(vec![ApiKey::from_plaintext("app", KEY)]),
        max_body: MAX_BODY,
    })
}

fn app() -> Router {
    app_with(Arc::new(FakeStore {
        ready: true,
        ..FakeStore::default()
    }))
}

fn request(method: Method, uri: &str, body: Option<&str>) -> axum::http::request::Builder {
    let b = Request::builder()
        .method(method)
        .uri(uri)
        .header(header::AUTHORIZATION, format!("Bearer {KEY}"));
    if body.is_some() {
        b.header(header::CONTENT_TYPE, "application/json")
    } else {
        b
    }
}

async fn send(app: &Router, req: Request<Body>) -> (StatusCode, axum::http::HeaderMap, Value) {
    let response = app.clone().oneshot(req).await.unwrap();
    let status = response.status();
    let headers = response.headers().clone();
    let bytes = axum::body::to_bytes(response.into_body(), usize::MAX)
        .await
        .unwrap();
    let json = if bytes.is_empty() {
        Value::Null
    } else {
        serde_json::from_slice(&bytes).unwrap()
    };
    (status, headers, json)
}

async fn call(
    app: &Router,
    method: Method,
    uri: &str,
    body: Option<&str>,
) -> (StatusCode, axum::http::HeaderMap, Value) {
    let req = request(method, uri, body)
        .body(Body::from(body.unwrap_or("").to_string()))
        .unwrap();
    send(app, req).await
}

const B: &str = "0192f0c8-8d3a-7c4e-9f1a-3b2c1d0e4f5a";
const I: &str = "0192f0c8-8d3a-7c4e-9f1a-3b2c1d0e4f5b";

#[tokio::test]
async fn health_needs_no_key_and_readiness_follows_the_store() {
    let (status, _, _) = send(
        &app(),
        Request::get("/healthz").body(Body::empty()).unwrap(),
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    let (status, _, _) = send(&app(), Request::get("/readyz").body(Body::empty()).unwrap()).await;
    assert_eq!(status, StatusCode::OK);
    let not_ready = app_with(Arc::new(FakeStore::default()));
    let (status, headers, json) = send(
        &not_ready,
        Request::get("/readyz").body(Body::empty()).unwrap(),
    )
    .await;
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(headers[header::CONTENT_TYPE], "application/problem+json");
    assert_eq!(json["code"], "unavailable");
}

#[tokio::test]
async fn v1_needs_a_known_bearer_key() {
    let app = app();
    for auth in [None, Some("Bearer wrong"), Some("Basic dGVzdA==")] {
        let mut b = Request::get(format!("/v1/businesses/{B}?actor_user_id=u1"));
        if let Some(auth) = auth {
            b = b.header(header::AUTHORIZATION, auth);
        }
        let (status, headers, json) = send(&app, b.body(Body::empty()).unwrap()).await;
        assert_eq!(status, StatusCode::UNAUTHORIZED, "{auth:?}");
        assert_eq!(headers[header::WWW_AUTHENTICATE], "Bearer");
        assert_eq!(json["code"], "unauthorized");
        assert_eq!(json["type"], "https://invited.dev/problems/unauthorized");
    }
}

#[tokio::test]
async fn unknown_routes_and_methods_are_problems() {
    let app = app();
    let (status, headers, json) = call(&app, Method::GET, "/v1/nothing-here", None).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    assert_eq!(headers[header::CONTENT_TYPE], "application/problem+json");
    assert_eq!(json["code"], "not_found");
    let (status, _, json) = call(&app, Method::DELETE, "/v1/businesses", None).await;
    assert_eq!(status, StatusCode::METHOD_NOT_ALLOWED);
    assert_eq!(json["status"], 405);
}

/// Every route of this stage answers from its handler: not the fallback's
/// 404, not a 405. With the store down, reaching the use case means 503.
#[tokio::test]
async fn every_route_is_reachable() {
    let app = app();
    let actor = r#"{"actor_user_id":"u1"}"#;
    let routes: Vec<(Method, String, Option<String>, StatusCode)> = vec![
        (
            Method::PUT,
            "/v1/users/u1".into(),
            Some(r#"{"email":"a@b.example"}"#.into()),
            StatusCode::SERVICE_UNAVAILABLE,
        ),
        (
            Method::POST,
            "/v1/businesses".into(),
            Some(r#"{"name":"Acme","owner_user_id":"u1"}"#.into()),
            StatusCode::SERVICE_UNAVAILABLE,
        ),
        (
            Method::GET,
            format!("/v1/businesses/{B}?actor_user_id=u1"),
            None,
            StatusCode::SERVICE_UNAVAILABLE,
        ),
        (
            Method::GET,
            format!("/v1/businesses/{B}/members?actor_user_id=u1"),
            None,
            StatusCode::SERVICE_UNAVAILABLE,
        ),
        (
            Method::PATCH,
            format!("/v1/businesses/{B}/members/u2"),
            Some(r#"{"actor_user_id":"u1","role":"manager"}"#.into()),
            StatusCode::SERVICE_UNAVAILABLE,
        ),
        (
            Method::DELETE,
            format!("/v1/businesses/{B}/members/u2?actor_user_id=u1"),
            None,
            StatusCode::SERVICE_UNAVAILABLE,
        ),
        (
            Method::POST,
            format!("/v1/businesses/{B}/ownership"),
            Some(r#"{"actor_user_id":"u1","new_owner_user_id":"u2"}"#.into()),
            StatusCode::SERVICE_UNAVAILABLE,
        ),
        (
            Method::POST,
            format!("/v1/businesses/{B}/invitations"),
            Some(r#"{"actor_user_id":"u1","invitees":[{"email":"a@b.example"}]}"#.into()),
            StatusCode::SERVICE_UNAVAILABLE,
        ),
        (
            Method::GET,
            format!("/v1/businesses/{B}/invitations?actor_user_id=u1&limit=5"),
            None,
            StatusCode::SERVICE_UNAVAILABLE,
        ),
        (
            Method::GET,
            format!("/v1/businesses/{B}/invitation-quota?actor_user_id=u1"),
            None,
            StatusCode::SERVICE_UNAVAILABLE,
        ),
        (
            Method::GET,
            format!("/v1/invitations/{I}?actor_user_id=u1"),
            None,
            StatusCode::SERVICE_UNAVAILABLE,
        ),
        (
            Method::GET,
            format!("/v1/invitations/{I}/timeline?actor_user_id=u1"),
            None,
            StatusCode::SERVICE_UNAVAILABLE,
        ),
        (
            Method::POST,
            format!("/v1/invitations/{I}/resend"),
            Some(actor.into()),
            StatusCode::SERVICE_UNAVAILABLE,
        ),
        (
            Method::POST,
            format!("/v1/invitations/{I}/cancel"),
            Some(actor.into()),
            StatusCode::SERVICE_UNAVAILABLE,
        ),
        // A junk token is refused before any look-up.
        (
            Method::POST,
            "/v1/invitations/accept".into(),
            Some(r#"{"token":"junk","user_id":"u1","mfa_verified":true}"#.into()),
            StatusCode::NOT_FOUND,
        ),
        (
            Method::POST,
            "/v1/invitations/decline".into(),
            Some(r#"{"token":"junk"}"#.into()),
            StatusCode::NOT_FOUND,
        ),
    ];
    for (method, uri, body, want) in routes {
        let (status, headers, json) = call(&app, method.clone(), &uri, body.as_deref()).await;
        assert_eq!(status, want, "{method} {uri}: {json}");
        assert_eq!(
            headers[header::CONTENT_TYPE],
            "application/problem+json",
            "{method} {uri}"
        );
        assert_ne!(json["detail"], "no such route", "{method} {uri}");
        if status == StatusCode::SERVICE_UNAVAILABLE {
            assert!(
                !json["detail"].as_str().unwrap().contains("10.0.0.7"),
                "internals leaked: {json}"
            );
        }
        if status == StatusCode::NOT_FOUND {
            assert_eq!(json["code"], "token_invalid", "{method} {uri}");
        }
    }
}

#[tokio::test]
async fn input_errors_through_the_router() {
    let app = app();
    let uri = format!("/v1/businesses/{B}/invitations");
    let (status, _, json) = call(&app, Method::POST, &uri, Some("{not json")).await;
    assert_eq!(
        (status, &json["code"]),
        (StatusCode::BAD_REQUEST, &Value::from("validation_failed"))
    );

    let body = r#"{"actor_user_id":"u1","invitees":[{"email":"a@b.example","nickname":"x"}]}"#;
    let (status, _, json) = call(&app, Method::POST, &uri, Some(body)).await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(json["errors"][0]["field"], "invitees[0].nickname");

    let body = r#"{"actor_user_id":"u1","invitees":[{"email":["a@b.example"]}]}"#;
    let (status, _, json) = call(&app, Method::POST, &uri, Some(body)).await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(json["errors"][0]["field"], "invitees[0].email");

    let big = format!(
        r#"{{"actor_user_id":"u1","invitees":[],"message":"{}"}}"#,
        "x".repeat(MAX_BODY)
    );
    let (status, _, json) = call(&app, Method::POST, &uri, Some(&big)).await;
    assert_eq!(
        (status, &json["code"]),
        (
            StatusCode::PAYLOAD_TOO_LARGE,
            &Value::from("payload_too_large")
        )
    );

    let (status, _, json) = call(&app, Method::GET, &format!("/v1/businesses/{B}"), None).await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(json["errors"][0]["field"], "actor_user_id");

    let (status, _, json) = call(
        &app,
        Method::GET,
        &format!("/v1/businesses/{B}?actor_user_id=u1&x=1"),
        None,
    )
    .await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(json["errors"][0]["field"], "x");

    let (status, _, json) = call(
        &app,
        Method::GET,
        "/v1/businesses/not-a-uuid?actor_user_id=u1",
        None,
    )
    .await;
    assert_eq!(
        (status, &json["code"]),
        (StatusCode::NOT_FOUND, &Value::from("not_found"))
    );

    let (status, _, json) = call(
        &app,
        Method::GET,
        &format!("/v1/businesses/{B}/invitations?actor_user_id=u1&cursor=%21%21"),
        None,
    )
    .await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(json["errors"][0]["field"], "cursor");
}

async fn post_keyed(
    app: &Router,
    key: &str,
    uri: &str,
    body: &str,
) -> (StatusCode, axum::http::HeaderMap, Value) {
    let req = request(Method::POST, uri, Some(body))
        .header("Idempotency-Key", key)
        .body(Body::from(body.to_string()))
        .unwrap();
    send(app, req).await
}

#[tokio::test]
async fn idempotency_keys_replay_refuse_mismatches_and_release_failures() {
    let store = Arc::new(FakeStore {
        ready: true,
        ..FakeStore::default()
    });
    let app = app_with(store.clone());
    let uri = format!("/v1/businesses/{B}/invitations");

    // A 422 is an answer: stored, then replayed with the marker.
    let bad = r#"{"actor_user_id":"u1","invitees":[]}"#;
    let (status, headers, first) = post_keyed(&app, "k1", &uri, bad).await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
    assert!(headers.get("idempotent-replayed").is_none());
    let (status, headers, again) = post_keyed(&app, "k1", &uri, bad).await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(headers["idempotent-replayed"], "true");
    assert_eq!(headers[header::CONTENT_TYPE], "application/problem+json");
    assert_eq!(first, again);

    // The same key with another body.
    let (status, _, json) =
        post_keyed(&app, "k1", &uri, r#"{"actor_user_id":"u2","invitees":[]}"#).await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(json["errors"][0]["field"], "Idempotency-Key");

    // A 503 is not an answer: the key is released for a retry.
    let good = r#"{"actor_user_id":"u1","invitees":[{"email":"a@b.example"}]}"#;
    let (status, _, _) = post_keyed(&app, "k2", &uri, good).await;
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE);
    assert!(
        !store
            .idem
            .lock()
            .unwrap()
            .contains_key(&("app".into(), "k2".into()))
    );

    // A key whose first request is still running.
    store.idem.lock().unwrap().insert(
        ("app".into(), "k3".into()),
        (
            idempotency::request_hash(&Method::POST, &uri, good.as_bytes()),
            None,
        ),
    );
    let (status, _, json) = post_keyed(&app, "k3", &uri, good).await;
    assert_eq!(
        (status, &json["code"]),
        (StatusCode::CONFLICT, &Value::from("conflict"))
    );

    // A key that is not visible ASCII.
    let (status, _, json) = post_keyed(&app, "has space", &uri, good).await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(json["errors"][0]["field"], "Idempotency-Key");

    // Too large a body is refused before any key is claimed.
    let big = format!(r#"{{"m":"{}"}}"#, "x".repeat(MAX_BODY));
    let (status, _, _) = post_keyed(&app, "k4", &uri, &big).await;
    assert_eq!(status, StatusCode::PAYLOAD_TOO_LARGE);
    assert!(
        !store
            .idem
            .lock()
            .unwrap()
            .contains_key(&("app".into(), "k4".into()))
    );
}
