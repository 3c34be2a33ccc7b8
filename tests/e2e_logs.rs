//! The logs of an end-to-end run of the real binary: structured JSON lines
//! that carry `invitation_id` and `business_id`, and never a token, an API
//! key or a secret (docs/operations.md, "Logs"), even at debug level.
//!
//! Runs on Postgres: it tests the logs of a run, not the store.

mod support;

use std::time::Duration;

use reqwest::StatusCode;
use serde_json::{Value, json};
use sqlx::PgPool;
use support::daemon::{database_url, token_from};
use support::process::{API_KEY, DaemonProcess};
use support::smtp_sink::SmtpSink;

#[sqlx::test(migrations = false)]
async fn no_secret_reaches_a_log_line(pool: PgPool) {
    let sink = SmtpSink::start();
    let smtp_url = sink.url();
    let mut daemon = DaemonProcess::start(
        &database_url(&pool),
        &smtp_url,
        &[("INVITED_LOG__FILTER", "debug")],
    )
    .await;
    let client = reqwest::Client::new();
    let call = |method: reqwest::Method, path: &str, body: Option<Value>| {
        let mut req = client
            .request(method, format!("{}{path}", daemon.base))
            .bearer_auth(API_KEY);
        if let Some(body) = body {
            req = req.json(&body);
        }
        req
    };
    let resp = call(
        reqwest::Method::PUT,
        "/v1/users/olive",
        Some(json!({"email": "olive@x.example", "locale": "en-US"})),
    )
    .send()
    .await
    .unwrap();
    assert_eq!(resp.status(), StatusCode::OK);
    let business: Value = call(
        reqwest::Method::POST,
        "/v1/businesses",
        Some(json!({"name": "Brand", "owner_user_id": "olive"})),
    )
    .send()
    .await
    .unwrap()
    .json()
    .await
    .unwrap();
    let b = business["id"].as_str().unwrap().to_string();
    let resp = call(
        reqwest::Method::POST,
        &format!("/v1/businesses/{b}/invitations"),
        Some(json!({"actor_user_id": "olive", "invitees": [{"email": "c@x.example"}], "message": "secret-ish words"})),
    )
    .send()
    .await
    .unwrap();
    assert_eq!(resp.status(), StatusCode::CREATED);
    let mail = sink.wait_for(1, Duration::from_secs(30)).await.remove(0);
    let token = token_from(&mail.text_body());
    assert_eq!(token.len(), 43);
    call(
        reqwest::Method::PUT,
        "/v1/users/c",
        Some(json!({"email": "c@x.example"})),
    )
    .send()
    .await
    .unwrap();
    let resp = call(
        reqwest::Method::POST,
        "/v1/invitations/accept",
        Some(json!({"token": token, "user_id": "c"})),
    )
    .send()
    .await
    .unwrap();
    assert_eq!(resp.status(), StatusCode::OK);
    // A used token, an unknown one and a wrong key: the failure paths log too.
    call(
        reqwest::Method::POST,
        "/v1/invitations/accept",
        Some(json!({"token": token, "user_id": "c"})),
    )
    .send()
    .await
    .unwrap();
    let wrong_key = "wrong-key-that-must-not-be-logged-0123";
    client
        .get(format!(
            "{}/v1/businesses/{b}?actor_user_id=olive",
            daemon.base
        ))
        .bearer_auth(wrong_key)
        .send()
        .await
        .unwrap();
    sink.wait_for(2, Duration::from_secs(30)).await;

    daemon.terminate();
    assert!(daemon.wait_exit(Duration::from_secs(60)).await.success());
    let log = daemon.log();
    assert!(
        log.lines().count() > 10,
        "too few log lines to mean anything:\n{log}"
    );
    for secret in [token.as_str(), API_KEY, wrong_key] {
        assert!(!log.contains(secret), "a secret reached the log:\n{log}");
    }
    assert!(
        !log.contains("secret-ish words"),
        "a personal message reached the log"
    );
    // Every line is JSON, and the delivery lines name their invitation and business.
    for line in log.lines() {
        serde_json::from_str::<Value>(line)
            .unwrap_or_else(|e| panic!("not a JSON line ({e}): {line}"));
    }
    assert!(
        log.contains("\"invitation_id\""),
        "no line carries invitation_id:\n{log}"
    );
    assert!(
        log.contains("\"business_id\""),
        "no line carries business_id:\n{log}"
    );
}
