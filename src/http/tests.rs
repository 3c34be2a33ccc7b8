//! Router tests against a real Postgres (`#[sqlx::test]` gives each test a
//! fresh, migrated database): every route is wired, authenticated,
//! size-limited and answers problems; idempotency keys are stored, replayed
//! and released in the real `idempotency_keys` table.

use std::sync::Arc;
use std::time::Duration;

use axum::body::Body;
use axum::http::{Method, Request, StatusCode, header};
use ractor::{Actor, ActorRef};
use serde_json::Value;
use sqlx::PgPool;
use tower::ServiceExt as _;

use super::*;
use crate::actors::registry::{InvitationRegistry, RegistryArgs, RegistryMsg};
use crate::service::Settings;
use crate::store::IdempotencyClaim;
use crate::store::postgres::PgStore;

const KEY: &str = "test-api-key";
/// The name the API key is stored under: idempotency keys are scoped by it.
const KEY_NAME: &str = "app";
const MAX_BODY: usize = 1024;
/// The `detail` of the router's own 404 (the fallback), which no handler uses.
const NO_SUCH_ROUTE: &str = "no such route";

async fn services(pool: &PgPool) -> Services {
    let settings = Settings::from_config(&crate::config::Config::default()).unwrap();
    Services::new(Arc::new(PgStore::from_pool(pool.clone())), settings)
        .await
        .unwrap()
}

/// A registry name no other test uses (ractor's names are process-wide).
fn registry_name() -> String {
    format!("test.registry.{}", uuid::Uuid::now_v7())
}

/// A real invitation registry under `name`, for the routes that go through it.
async fn spawn_registry(services: &Services, name: &str) -> ActorRef<RegistryMsg> {
    let (registry, _) = Actor::spawn(
        Some(name.to_string()),
        InvitationRegistry,
        RegistryArgs {
            services: services.clone(),
            idle: Duration::from_secs(600),
        },
    )
    .await
    .unwrap();
    registry
}

/// The router over `services`, reaching invitation actors through the
/// registry named `registry` (which may not be running: then commands on
/// invitations answer `unavailable`).
fn app_on(services: Services, registry: &str) -> Router {
    router(HttpState {
        services,
        invitations: InvitationsHandle::new(registry.to_string()),
        api_keys: Arc::new(vec![ApiKey::from_plaintext(KEY_NAME, KEY)]),
        max_body: MAX_BODY,
        request_timeout: std::time::Duration::from_secs(30),
        feedback: Default::default(),
    })
}

/// The router for tests that never reach an invitation actor.
async fn app(pool: &PgPool) -> Router {
    app_on(services(pool).await, &registry_name())
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

/// Whether the database holds an idempotency key of the test API key.
async fn key_is_stored(pool: &PgPool, key: &str) -> bool {
    sqlx::query_scalar(
        "SELECT EXISTS (SELECT 1 FROM idempotency_keys WHERE api_key_name = $1 AND key = $2)",
    )
    .bind(KEY_NAME)
    .bind(key)
    .fetch_one(pool)
    .await
    .unwrap()
}

/// Ids no row has.
const B: &str = "0192f0c8-8d3a-7c4e-9f1a-3b2c1d0e4f5a";
const I: &str = "0192f0c8-8d3a-7c4e-9f1a-3b2c1d0e4f5b";

#[sqlx::test(migrations = "./migrations")]
async fn health_needs_no_key_and_readiness_follows_the_store(pool: PgPool) {
    let app = app(&pool).await;
    let (status, _, json) = send(&app, Request::get("/healthz").body(Body::empty()).unwrap()).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(json["status"], "ok");
    let (status, _, json) = send(&app, Request::get("/readyz").body(Body::empty()).unwrap()).await;
    assert_eq!(status, StatusCode::OK, "{json}");
    assert_eq!(json["status"], "ready");

    // The database goes away: every connection is closed, so the store
    // answers `StoreError::Unavailable` from now on.
    pool.close().await;
    let (status, headers, json) =
        send(&app, Request::get("/readyz").body(Body::empty()).unwrap()).await;
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(headers[header::CONTENT_TYPE], "application/problem+json");
    assert_eq!(json["code"], "unavailable");
    // The process itself still runs.
    let (status, _, _) = send(&app, Request::get("/healthz").body(Body::empty()).unwrap()).await;
    assert_eq!(status, StatusCode::OK);

    // A use case meeting the closed pool answers 503 without leaking the
    // database's error (sqlx says "attempted to acquire a connection on a
    // closed pool").
    let (status, headers, json) = call(
        &app,
        Method::GET,
        &format!("/v1/businesses/{B}?actor_user_id=u1"),
        None,
    )
    .await;
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE, "{json}");
    assert_eq!(headers[header::CONTENT_TYPE], "application/problem+json");
    assert_eq!(json["code"], "unavailable");
    assert_eq!(json["detail"], ApiError::unavailable().detail.as_str());
    let detail = json["detail"].as_str().unwrap();
    assert!(
        !detail.contains("pool") && !detail.contains("closed"),
        "internals leaked: {json}"
    );
}

#[sqlx::test(migrations = "./migrations")]
async fn v1_needs_a_known_bearer_key(pool: PgPool) {
    let app = app(&pool).await;
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

#[sqlx::test(migrations = "./migrations")]
async fn unknown_routes_and_methods_are_problems(pool: PgPool) {
    let app = app(&pool).await;
    let (status, headers, json) = call(&app, Method::GET, "/v1/nothing-here", None).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    assert_eq!(headers[header::CONTENT_TYPE], "application/problem+json");
    assert_eq!(json["code"], "not_found");
    // The fallback's own detail, which `every_route_is_reachable` relies on
    // to tell it from a handler's 404.
    assert_eq!(json["detail"], NO_SUCH_ROUTE);
    // Unknown paths are 404 whoever asks: no key needed to learn that.
    let (status, _, json) = send(
        &app,
        Request::get("/v1/nothing-here")
            .body(Body::empty())
            .unwrap(),
    )
    .await;
    assert_eq!(
        (status, &json["detail"]),
        (StatusCode::NOT_FOUND, &Value::from(NO_SUCH_ROUTE))
    );
    let (status, _, json) = call(&app, Method::DELETE, "/v1/businesses", None).await;
    assert_eq!(status, StatusCode::METHOD_NOT_ALLOWED);
    assert_eq!(json["status"], 405);
}

/// Every route of this stage answers from its handler: not the fallback's
/// 404, not a 405. The first two create real rows; the others name a business
/// or an invitation that does not exist, and their handler's use case looks
/// it up in the database and answers a 404 that names it.
#[sqlx::test(migrations = "./migrations")]
async fn every_route_is_reachable(pool: PgPool) {
    let services = services(&pool).await;
    let name = registry_name();
    let registry = spawn_registry(&services, &name).await;
    let app = app_on(services, &name);

    let actor = r#"{"actor_user_id":"u1"}"#;
    let business = format!("business {B}");
    let invitation = format!("invitation {I}");
    // (method, uri, body, status, problem code and a part of its detail)
    type Route = (
        Method,
        String,
        Option<String>,
        StatusCode,
        Option<(&'static str, String)>,
    );
    let not_found = |what: &str| Some(("not_found", what.to_string()));
    let routes: Vec<Route> = vec![
        (
            Method::PUT,
            "/v1/users/u1".into(),
            Some(r#"{"email":"a@b.example"}"#.into()),
            StatusCode::OK,
            None,
        ),
        (
            Method::POST,
            "/v1/businesses".into(),
            Some(r#"{"name":"Acme","owner_user_id":"u1"}"#.into()),
            StatusCode::CREATED,
            None,
        ),
        (
            Method::GET,
            format!("/v1/businesses/{B}?actor_user_id=u1"),
            None,
            StatusCode::NOT_FOUND,
            not_found(&business),
        ),
        (
            Method::GET,
            format!("/v1/businesses/{B}/members?actor_user_id=u1"),
            None,
            StatusCode::NOT_FOUND,
            not_found(&business),
        ),
        (
            Method::PATCH,
            format!("/v1/businesses/{B}/members/u2"),
            Some(r#"{"actor_user_id":"u1","role":"manager"}"#.into()),
            StatusCode::NOT_FOUND,
            not_found(&business),
        ),
        (
            Method::DELETE,
            format!("/v1/businesses/{B}/members/u2?actor_user_id=u1"),
            None,
            StatusCode::NOT_FOUND,
            not_found(&business),
        ),
        (
            Method::POST,
            format!("/v1/businesses/{B}/ownership"),
            Some(r#"{"actor_user_id":"u1","new_owner_user_id":"u2"}"#.into()),
            StatusCode::NOT_FOUND,
            not_found(&business),
        ),
        (
            Method::POST,
            format!("/v1/businesses/{B}/invitations"),
            Some(r#"{"actor_user_id":"u1","invitees":[{"email":"a@b.example"}]}"#.into()),
            StatusCode::NOT_FOUND,
            not_found(&business),
        ),
        (
            Method::GET,
            format!("/v1/businesses/{B}/invitations?actor_user_id=u1&limit=5"),
            None,
            StatusCode::NOT_FOUND,
            not_found(&business),
        ),
        (
            Method::GET,
            format!("/v1/businesses/{B}/invitation-quota?actor_user_id=u1"),
            None,
            StatusCode::NOT_FOUND,
            not_found(&business),
        ),
        (
            Method::GET,
            format!("/v1/invitations/{I}?actor_user_id=u1"),
            None,
            StatusCode::NOT_FOUND,
            not_found(&invitation),
        ),
        (
            Method::GET,
            format!("/v1/invitations/{I}/timeline?actor_user_id=u1"),
            None,
            StatusCode::NOT_FOUND,
            not_found(&invitation),
        ),
        // These two run through the invitation's actor.
        (
            Method::POST,
            format!("/v1/invitations/{I}/resend"),
            Some(actor.into()),
            StatusCode::NOT_FOUND,
            not_found(&invitation),
        ),
        (
            Method::POST,
            format!("/v1/invitations/{I}/cancel"),
            Some(actor.into()),
            StatusCode::NOT_FOUND,
            not_found(&invitation),
        ),
        // A junk token is refused before any look-up.
        (
            Method::POST,
            "/v1/invitations/accept".into(),
            Some(r#"{"token":"junk","user_id":"u1","mfa_verified":true}"#.into()),
            StatusCode::NOT_FOUND,
            Some(("token_invalid", String::new())),
        ),
        (
            Method::POST,
            "/v1/invitations/decline".into(),
            Some(r#"{"token":"junk"}"#.into()),
            StatusCode::NOT_FOUND,
            Some(("token_invalid", String::new())),
        ),
    ];
    for (method, uri, body, want_status, want_problem) in routes {
        let (status, headers, json) = call(&app, method.clone(), &uri, body.as_deref()).await;
        assert_eq!(status, want_status, "{method} {uri}: {json}");
        match want_problem {
            None => {
                assert_eq!(
                    headers[header::CONTENT_TYPE],
                    "application/json",
                    "{method} {uri}"
                );
            }
            Some((code, detail)) => {
                assert_eq!(
                    headers[header::CONTENT_TYPE],
                    "application/problem+json",
                    "{method} {uri}"
                );
                assert_eq!(json["code"], code, "{method} {uri}: {json}");
                let got = json["detail"].as_str().unwrap();
                assert_ne!(got, NO_SUCH_ROUTE, "{method} {uri}");
                assert!(got.contains(&detail), "{method} {uri}: {json}");
            }
        }
    }
    registry.stop(None);
}

#[sqlx::test(migrations = "./migrations")]
async fn input_errors_through_the_router(pool: PgPool) {
    let app = app(&pool).await;
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
    assert_ne!(json["detail"], NO_SUCH_ROUTE);

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

#[sqlx::test(migrations = "./migrations")]
async fn idempotency_keys_replay_refuse_mismatches_and_release_failures(pool: PgPool) {
    let services = services(&pool).await;
    let store = services.store.clone();
    // Not running yet: commands on invitations answer 503 until it starts.
    let name = registry_name();
    let app = app_on(services.clone(), &name);
    let uri = format!("/v1/businesses/{B}/invitations");

    // A 422 is an answer: stored, then replayed with the marker.
    let bad = r#"{"actor_user_id":"u1","invitees":[]}"#;
    let (status, headers, first) = post_keyed(&app, "k1", &uri, bad).await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
    assert!(headers.get("idempotent-replayed").is_none());
    assert!(key_is_stored(&pool, "k1").await);
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

    // A 503 is not an answer: the key is released for a retry. The 503 is
    // real: the invitation registry this router reaches is not running.
    let cancel = format!("/v1/invitations/{I}/cancel");
    let actor = r#"{"actor_user_id":"u1"}"#;
    let (status, _, json) = post_keyed(&app, "k2", &cancel, actor).await;
    assert_eq!(
        (status, &json["code"]),
        (StatusCode::SERVICE_UNAVAILABLE, &Value::from("unavailable"))
    );
    assert!(!key_is_stored(&pool, "k2").await);
    // Once the registry runs, the retry with the same key is carried out
    // (not refused as in progress, not replayed) and its answer is stored.
    let registry = spawn_registry(&services, &name).await;
    let (status, headers, json) = post_keyed(&app, "k2", &cancel, actor).await;
    assert_eq!(
        (status, &json["code"]),
        (StatusCode::NOT_FOUND, &Value::from("not_found"))
    );
    assert!(headers.get("idempotent-replayed").is_none());
    let (status, headers, _) = post_keyed(&app, "k2", &cancel, actor).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    assert_eq!(headers["idempotent-replayed"], "true");
    registry.stop(None);

    // A key whose first request is still running: claimed in the database,
    // with no response recorded yet.
    let good = r#"{"actor_user_id":"u1","invitees":[{"email":"a@b.example"}]}"#;
    let hash = idempotency::request_hash(&Method::POST, &uri, good.as_bytes());
    assert!(matches!(
        store.claim_idempotency_key(KEY_NAME, "k3", &hash).await,
        Ok(IdempotencyClaim::New)
    ));
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
    assert!(!key_is_stored(&pool, "k4").await);
}

/// Issue 12, items 13–15, through the router: a user written as an array, a
/// body that is not declared JSON, a query that is not UTF-8. None writes.
#[sqlx::test(migrations = "./migrations")]
async fn bodies_are_objects_declared_json_and_queries_utf8(pool: PgPool) {
    let app = app(&pool).await;
    let user_count = || async {
        sqlx::query_scalar::<_, i64>("SELECT count(*) FROM users")
            .fetch_one(&pool)
            .await
            .unwrap()
    };
    let array = r#"["x@example.com","X","en-US"]"#;
    let (status, _, json) = call(&app, Method::PUT, "/v1/users/x", Some(array)).await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{json}");
    assert_eq!(json["errors"][0]["field"], "body");

    let object = r#"{"email":"x@example.com","display_name":"X","locale":"en-US"}"#;
    for content_type in [
        Some("text/plain"),
        Some("application/x-www-form-urlencoded"),
        None,
    ] {
        let mut req =
            Request::put("/v1/users/x").header(header::AUTHORIZATION, format!("Bearer {KEY}"));
        if let Some(value) = content_type {
            req = req.header(header::CONTENT_TYPE, value);
        }
        let (status, headers, json) = send(&app, req.body(Body::from(object)).unwrap()).await;
        assert_eq!(
            (status, &json["code"]),
            (
                StatusCode::UNSUPPORTED_MEDIA_TYPE,
                &Value::from("unsupported_media_type")
            ),
            "{content_type:?}"
        );
        assert_eq!(headers[header::CONTENT_TYPE], "application/problem+json");
    }
    assert_eq!(user_count().await, 0);

    // An empty body with no Content-Type is still just not JSON.
    let req = Request::post(format!("/v1/invitations/{I}/cancel"))
        .header(header::AUTHORIZATION, format!("Bearer {KEY}"))
        .body(Body::empty())
        .unwrap();
    let (status, _, _) = send(&app, req).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);

    let req = Request::put("/v1/users/x")
        .header(header::AUTHORIZATION, format!("Bearer {KEY}"))
        .header(header::CONTENT_TYPE, "application/json; charset=utf-8")
        .body(Body::from(object))
        .unwrap();
    let (status, _, json) = send(&app, req).await;
    assert_eq!(status, StatusCode::OK, "{json}");

    let (status, _, json) = call(
        &app,
        Method::GET,
        &format!("/v1/businesses/{B}?actor_user_id=%FF"),
        None,
    )
    .await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{json}");
    assert_eq!(json["errors"][0]["field"], "actor_user_id");
}

/// An actor that takes every message and never answers: a stuck registry.
struct Stuck;

impl Actor for Stuck {
    type Msg = RegistryMsg;
    /// The messages taken, kept so that their reply ports stay open.
    type State = Vec<RegistryMsg>;
    type Arguments = ();

    async fn pre_start(
        &self,
        _: ActorRef<RegistryMsg>,
        _: (),
    ) -> Result<Vec<RegistryMsg>, ractor::ActorProcessingErr> {
        Ok(Vec::new())
    }

    async fn handle(
        &self,
        _: ActorRef<RegistryMsg>,
        msg: RegistryMsg,
        taken: &mut Vec<RegistryMsg>,
    ) -> Result<(), ractor::ActorProcessingErr> {
        taken.push(msg);
        Ok(())
    }
}

/// `api.request_timeout`: a request stuck on an actor that never answers is
/// cut off with `503 unavailable` as problem+json, and the router keeps serving.
#[sqlx::test(migrations = "./migrations")]
async fn a_request_stuck_on_an_actor_is_cut_off_at_the_request_timeout(pool: PgPool) {
    let name = registry_name();
    let (stuck, _) = Actor::spawn(Some(name.clone()), Stuck, ()).await.unwrap();
    let app = router(HttpState {
        services: services(&pool).await,
        invitations: InvitationsHandle::new(name),
        api_keys: Arc::new(vec![ApiKey::from_plaintext(KEY_NAME, KEY)]),
        max_body: MAX_BODY,
        request_timeout: Duration::from_millis(300),
        feedback: Default::default(),
    });
    let started = std::time::Instant::now();
    let (status, headers, json) = call(
        &app,
        Method::POST,
        &format!("/v1/invitations/{}/cancel", uuid::Uuid::now_v7()),
        Some(r#"{"actor_user_id":"u1"}"#),
    )
    .await;
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE, "{json}");
    assert_eq!(headers[header::CONTENT_TYPE], "application/problem+json");
    assert_eq!(json["code"], "unavailable");
    assert!(
        started.elapsed() < crate::actors::CALL_TIMEOUT,
        "cut off by the request timeout, not the actor call's"
    );
    let (status, _, _) = send(&app, Request::get("/healthz").body(Body::empty()).unwrap()).await;
    assert_eq!(status, StatusCode::OK);
    stuck.stop(None);
}
