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

/// Issue 12 (8): a failed attempt is logged at WARN and an email given up at
/// ERROR, each with the invitation id, template, locale and SMTP reply, and
/// never the token or the body.
#[sqlx::test(migrations = false)]
async fn delivery_failures_are_logged_with_their_reply(pool: PgPool) {
    use support::smtp_sink::Reply;
    let sink = SmtpSink::start_with(vec![Reply::Transient, Reply::Permanent]);
    let mut daemon = DaemonProcess::start(&database_url(&pool), &sink.url(), &[]).await;
    let client = reqwest::Client::new();
    let base = daemon.base.clone();
    let send = |method: reqwest::Method, path: String, body: Option<Value>| {
        let mut req = client
            .request(method, format!("{base}{path}"))
            .bearer_auth(API_KEY);
        if let Some(body) = body {
            req = req.json(&body);
        }
        async move {
            let resp = req.send().await.unwrap();
            let status = resp.status();
            (status, resp.json::<Value>().await.unwrap_or(Value::Null))
        }
    };
    let (status, _) = send(
        reqwest::Method::PUT,
        "/v1/users/olive".into(),
        Some(json!({"email": "olive@x.example", "locale": "en-US"})),
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    let (_, business) = send(
        reqwest::Method::POST,
        "/v1/businesses".into(),
        Some(json!({"name": "Brand", "owner_user_id": "olive"})),
    )
    .await;
    let b = business["id"].as_str().unwrap().to_string();
    let (status, created) = send(
        reqwest::Method::POST,
        format!("/v1/businesses/{b}/invitations"),
        Some(json!({"actor_user_id": "olive", "invitees": [{"email": "f@x.example", "locale": "fr-FR"}],
                    "message": "words of the body"})),
    )
    .await;
    assert_eq!(status, StatusCode::CREATED, "{created}");
    let id = created["items"][0]["id"].as_str().unwrap().to_string();
    // 451, then 550 at the retry: failed for good.
    support::wait::eventually(
        Duration::from_secs(30),
        "the delivery failing for good",
        || async {
            let (_, inv) = send(
                reqwest::Method::GET,
                format!("/v1/invitations/{id}?actor_user_id=olive"),
                None,
            )
            .await;
            if inv["delivery"]["status"] == "failed" {
                Ok(())
            } else {
                Err(format!("never failed: {inv}"))
            }
        },
    )
    .await;
    daemon.terminate();
    assert!(daemon.wait_exit(Duration::from_secs(60)).await.success());
    let log = daemon.log();
    let lines: Vec<Value> = log
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("not JSON ({e}): {l}")))
        .collect();
    let find = |level: &str, reply: &str| {
        lines
            .iter()
            .find(|l| {
                l["level"] == level
                    && l["fields"]["smtp_reply"]
                        .as_str()
                        .is_some_and(|r| r.contains(reply))
            })
            .unwrap_or_else(|| panic!("no {level} line with the reply {reply}:\n{log}"))
    };
    for (level, reply) in [("WARN", "451 4.3.0"), ("ERROR", "550 5.7.1")] {
        let line = &find(level, reply)["fields"];
        assert_eq!(line["invitation_id"], id.as_str(), "{line}");
        assert_eq!(line["template"], "member_invitation", "{line}");
        assert_eq!(line["locale"], "fr-FR", "{line}");
    }
    assert!(
        !log.contains("words of the body"),
        "the body reached the log"
    );
    assert!(!log.contains("token="), "an accept link reached the log");
}
