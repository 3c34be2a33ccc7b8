//! R43 a: bounces and complaints from the providers' webhooks,
//! `POST /feedback/{ses|postmark|sendgrid|mailgun|resend}`, end to end with
//! the daemon in-process on both stores. Each provider's documented sample
//! payload, adapted to name an email the test sent through the real SMTP
//! sink, is signed with test keys exactly as that provider documents: an
//! ECDSA P-256 key (ring) for SendGrid, an RSA key and self-signed
//! certificate made by openssl for SNS (served by a loopback HTTP server
//! that only the tests may allow), HMAC keys for Mailgun and Resend, basic
//! credentials for Postmark. A forged or stale request gets `401` and
//! changes nothing; feedback about an unknown email gets `204` and is
//! recorded.

mod support;

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use base64::Engine as _;
use invited::config::{CertHost, Config, HmacSecret, PostmarkCredentials, SendgridKey};
use reqwest::StatusCode;
use serde_json::{Value, json};
use support::daemon::TestDaemon;
use support::db::{Db, TempDir};
use support::smtp_sink::SmtpSink;

const WAIT: Duration = Duration::from_secs(30);
const B64: base64::engine::GeneralPurpose = base64::engine::general_purpose::STANDARD;

fn now() -> i64 {
    chrono::Utc::now().timestamp()
}

async fn daemon(db: &Db, set: impl FnOnce(&mut Config)) -> TestDaemon {
    TestDaemon::start_with(db, SmtpSink::start(), set).await
}

/// Invites `email` and waits until its email is sent: the invitation's id
/// and the Message-ID the sink received.
async fn sent_invitation(d: &TestDaemon, email: &str) -> (String, String) {
    d.user("olive", "olive@brand.example", "en-US").await;
    let b = d.business("Brand & Co", "olive").await;
    let (status, body) = d
        .post(
            &format!("/v1/businesses/{b}/invitations"),
            json!({"actor_user_id": "olive", "invitees": [{"email": email}]}),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    let id = body["items"][0]["id"].as_str().unwrap().to_string();
    let mail = d.sink.wait_for(1, WAIT).await.remove(0);
    d.eventually(
        WAIT,
        &format!("/v1/invitations/{id}?actor_user_id=olive"),
        |v| v["delivery"]["status"] == "sent",
    )
    .await;
    (id, mail.header("Message-ID").expect("a Message-ID"))
}

async fn delivery_status(d: &TestDaemon, id: &str) -> Value {
    let (status, body) = d
        .get(&format!("/v1/invitations/{id}?actor_user_id=olive"))
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    body["delivery"]["status"].clone()
}

async fn feedback_entries(d: &TestDaemon, id: &str) -> Vec<Value> {
    let (status, body) = d
        .get(&format!(
            "/v1/invitations/{id}/timeline?actor_user_id=olive"
        ))
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    body["items"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|i| {
            i["type"] == "delivery_feedback"
                || i["type"].as_str().unwrap().starts_with("notification.b")
                || i["type"] == "notification.complained"
        })
        .cloned()
        .collect()
}

/// Posts `body` with `headers` to `/feedback/{provider}`, with no API key.
async fn post(
    d: &TestDaemon,
    provider: &str,
    headers: &[(&str, String)],
    body: &str,
) -> StatusCode {
    let mut req = d
        .client()
        .post(d.url(&format!("/feedback/{provider}")))
        .body(body.to_owned());
    for (name, value) in headers {
        req = req.header(*name, value);
    }
    req.send().await.expect("request sent").status()
}

/// Nothing was recorded or changed: the email is still `sent`, with no
/// feedback in its timeline and none kept.
async fn unchanged(d: &TestDaemon, db: &Db, id: &str) {
    assert_eq!(delivery_status(d, id).await, "sent");
    assert!(feedback_entries(d, id).await.is_empty());
    assert_eq!(db.count("SELECT count(*) FROM email_feedback").await, 0);
}

/// The email is marked `status` by `source`, with the timeline entry and the
/// event, tied the way `matched_by` says.
async fn marked(
    d: &TestDaemon,
    db: &Db,
    id: &str,
    status: &str,
    kind: &str,
    source: &str,
    matched_by: &str,
) -> Vec<Value> {
    assert_eq!(delivery_status(d, id).await, status);
    let items = feedback_entries(d, id).await;
    let entry = items
        .iter()
        .find(|i| i["type"] == "delivery_feedback")
        .unwrap_or_else(|| panic!("no delivery_feedback in {items:?}"));
    assert_eq!(entry["feedback"], kind, "{entry}");
    assert_eq!(entry["source"], source, "{entry}");
    let event = if status == "bounced" {
        "notification.bounced"
    } else {
        "notification.complained"
    };
    assert_eq!(
        items.iter().filter(|i| i["type"] == event).count(),
        1,
        "{items:?}"
    );
    assert_eq!(
        db.count(&format!(
            "SELECT count(*) FROM email_feedback WHERE outcome = 'applied' AND source = '{source}' AND matched_by = '{matched_by}'"
        ))
        .await,
        1
    );
    items
}

async fn unmatched(db: &Db, source: &str) -> i64 {
    db.count(&format!(
        "SELECT count(*) FROM email_feedback WHERE outcome = 'unmatched' AND source = '{source}' AND outbox_id IS NULL"
    ))
    .await
}

// ---------------------------------------------------------------------------
// Postmark: basic auth

fn postmark_bounce(email: &str, kind: &str) -> String {
    // Postmark's documented bounce webhook sample.
    json!({
        "RecordType": "Bounce",
        "MessageStream": "outbound",
        "ID": 4323372036854775807u64,
        "Type": kind,
        "TypeCode": 1,
        "Name": "Hard bounce",
        "Tag": "Test",
        "MessageID": "883953f4-6105-42a2-a16a-77a8eac79483",
        "Metadata": {"a_key": "a_value"},
        "ServerID": 23,
        "Description": "The server was unable to deliver your message (ex: unknown user, mailbox not found).",
        "Details": "smtp;550 5.1.1 The email account that you tried to reach does not exist.",
        "Email": email,
        "From": "sender@example.com",
        "BouncedAt": "2019-11-05T16:33:54.9070259Z",
        "DumpAvailable": true,
        "Inactive": true,
        "CanActivate": true,
        "Subject": "Test subject",
        "Content": "Return-Path: <>\nReceived: …"
    })
    .to_string()
}

fn postmark_complaint(email: &str) -> String {
    json!({
        "RecordType": "SpamComplaint",
        "MessageStream": "outbound",
        "ID": 42,
        "Type": "SpamComplaint",
        "TypeCode": 512,
        "Name": "Spam complaint",
        "Tag": "Test",
        "MessageID": "00000000-0000-0000-0000-000000000000",
        "ServerID": 1234,
        "Description": "The subscriber explicitly marked this message as spam.",
        "Details": "Test spam complaint details",
        "Email": email,
        "From": "sender@example.com",
        "BouncedAt": "2019-11-05T16:33:54.9070259Z",
        "DumpAvailable": true,
        "Inactive": true,
        "CanActivate": false,
        "Subject": "Test subject"
    })
    .to_string()
}

fn basic(user: &str, password: &str) -> (&'static str, String) {
    (
        "authorization",
        format!("Basic {}", B64.encode(format!("{user}:{password}"))),
    )
}

both_stores! {
    /// Postmark: the configured basic credentials or `401`; a HardBounce
    /// is tied by the address (Postmark echoes no id of ours) and marks
    /// the email bounced; a complaint about an unknown address is kept;
    /// a signed body that is no record is `400` and kept as malformed.
    async fn postmark_bounces_behind_basic_auth(db: Db) {
        let d = daemon(&db, |c| {
            c.feedback.postmark = Some(PostmarkCredentials { username: "postmark".into(), password: "s3cret-pass".into() });
        })
        .await;
        let (id, _) = sent_invitation(&d, "gone@x.example").await;
        let body = postmark_bounce("gone@x.example", "HardBounce");

        assert_eq!(post(&d, "postmark", &[], &body).await, StatusCode::UNAUTHORIZED);
        assert_eq!(post(&d, "postmark", &[basic("postmark", "wrong")], &body).await, StatusCode::UNAUTHORIZED);
        assert_eq!(post(&d, "postmark", &[basic("other", "s3cret-pass")], &body).await, StatusCode::UNAUTHORIZED);
        unchanged(&d, &db, &id).await;

        assert_eq!(post(&d, "postmark", &[basic("postmark", "s3cret-pass")], &body).await, StatusCode::NO_CONTENT);
        let items = marked(&d, &db, &id, "bounced", "hard_bounce", "postmark", "address").await;
        let entry = items.iter().find(|i| i["type"] == "delivery_feedback").unwrap();
        assert_eq!(entry["status_code"], "5.1.1", "{entry}");

        assert_eq!(
            post(&d, "postmark", &[basic("postmark", "s3cret-pass")], &postmark_complaint("stranger@y.example")).await,
            StatusCode::NO_CONTENT
        );
        assert_eq!(unmatched(&db, "postmark").await, 1);

        assert_eq!(post(&d, "postmark", &[basic("postmark", "s3cret-pass")], "{not json").await, StatusCode::BAD_REQUEST);
        assert_eq!(db.count("SELECT count(*) FROM email_feedback WHERE outcome = 'malformed' AND source = 'postmark'").await, 1);

        // Providers that are not configured, and names that are none.
        assert_eq!(post(&d, "sendgrid", &[], "[]").await, StatusCode::NOT_FOUND);
        assert_eq!(post(&d, "mailgun", &[], "{}").await, StatusCode::NOT_FOUND);
        assert_eq!(post(&d, "resend", &[], "{}").await, StatusCode::NOT_FOUND);
        assert_eq!(post(&d, "smtp", &[], "{}").await, StatusCode::NOT_FOUND);
        // Too big, before anything is read.
        let big = "x".repeat(1024 * 1024 + 1);
        assert_eq!(post(&d, "postmark", &[basic("postmark", "s3cret-pass")], &big).await, StatusCode::PAYLOAD_TOO_LARGE);
        d.stop().await;
    }
}
