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

use std::path::PathBuf;
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

// ---------------------------------------------------------------------------
// SendGrid: ECDSA P-256 over timestamp + body

struct EcKey {
    pair: ring::signature::EcdsaKeyPair,
    rng: ring::rand::SystemRandom,
}

impl EcKey {
    fn new() -> EcKey {
        use ring::signature::{ECDSA_P256_SHA256_ASN1_SIGNING, EcdsaKeyPair};
        let rng = ring::rand::SystemRandom::new();
        let pkcs8 = EcdsaKeyPair::generate_pkcs8(&ECDSA_P256_SHA256_ASN1_SIGNING, &rng).unwrap();
        let pair = EcdsaKeyPair::from_pkcs8(&ECDSA_P256_SHA256_ASN1_SIGNING, pkcs8.as_ref(), &rng)
            .unwrap();
        EcKey { pair, rng }
    }

    /// The verification key as SendGrid shows it: base64 of the DER
    /// SubjectPublicKeyInfo.
    fn public_base64(&self) -> String {
        use ring::signature::KeyPair as _;
        let mut der = hex::decode("3059301306072a8648ce3d020106082a8648ce3d030107034200").unwrap();
        der.extend_from_slice(self.pair.public_key().as_ref());
        B64.encode(der)
    }

    /// SendGrid's headers for `body` signed at `timestamp`.
    fn headers(&self, timestamp: i64, body: &str) -> Vec<(&'static str, String)> {
        let signed = format!("{timestamp}{body}");
        let sig = self.pair.sign(&self.rng, signed.as_bytes()).unwrap();
        vec![
            (
                "x-twilio-email-event-webhook-signature",
                B64.encode(sig.as_ref()),
            ),
            (
                "x-twilio-email-event-webhook-timestamp",
                timestamp.to_string(),
            ),
            ("content-type", "application/json".into()),
        ]
    }
}

fn sendgrid_events(email: &str, smtp_id: &str, event: &str) -> String {
    // SendGrid's documented bounce event, and a delivered one it also sends.
    json!([
        {"email": email, "timestamp": 1513299569, "smtp-id": smtp_id, "event": "delivered",
         "category": "cat facts", "sg_event_id": "rWVYmVk90MjZJ9iohOBa3w==",
         "sg_message_id": "14c5d75ce93.dfd.64b469.filter0001.16648.5515E0B88.0", "response": "250 OK"},
        {"email": email, "timestamp": 1513299569, "smtp-id": smtp_id, "event": event,
         "category": "cat facts", "sg_event_id": "6g4ZI7SA-xmRDv57GoPIPw==",
         "sg_message_id": "14c5d75ce93.dfd.64b469.filter0001.16648.5515E0B88.0",
         "reason": "500 unknown recipient", "status": "5.1.1", "type": "bounce"}
    ])
    .to_string()
}

both_stores! {
    /// SendGrid: a bounce event signed with the configured key is tied by
    /// its smtp-id (our Message-ID); another key's signature, a stale or
    /// missing timestamp: `401`.
    async fn sendgrid_signed_events(db: Db) {
        let key = EcKey::new();
        let public = key.public_base64();
        let d = daemon(&db, |c| {
            c.feedback.sendgrid = Some(SendgridKey::parse(&public).unwrap());
        })
        .await;
        let (id, message_id) = sent_invitation(&d, "gone@x.example").await;
        let body = sendgrid_events("gone@x.example", &message_id, "bounce");

        let forger = EcKey::new();
        assert_eq!(post(&d, "sendgrid", &forger.headers(now(), &body), &body).await, StatusCode::UNAUTHORIZED);
        assert_eq!(post(&d, "sendgrid", &key.headers(now() - 301, &body), &body).await, StatusCode::UNAUTHORIZED);
        assert_eq!(post(&d, "sendgrid", &key.headers(now() + 301, &body), &body).await, StatusCode::UNAUTHORIZED);
        let tampered = body.replace("gone@x.example", "else@x.example");
        assert_eq!(post(&d, "sendgrid", &key.headers(now(), &body), &tampered).await, StatusCode::UNAUTHORIZED);
        assert_eq!(post(&d, "sendgrid", &[], &body).await, StatusCode::UNAUTHORIZED);
        unchanged(&d, &db, &id).await;

        assert_eq!(post(&d, "sendgrid", &key.headers(now(), &body), &body).await, StatusCode::NO_CONTENT);
        let items = marked(&d, &db, &id, "bounced", "hard_bounce", "sendgrid", "message_id").await;
        let entry = items.iter().find(|i| i["type"] == "delivery_feedback").unwrap();
        assert_eq!(entry["status_code"], "5.1.1", "{entry}");
        let text = d.client().get(d.url("/metrics")).send().await.unwrap().text().await.unwrap();
        assert!(
            text.lines().any(|l| l.starts_with(
                "invited_email_feedback_total{kind=\"hard_bounce\",source=\"sendgrid\"}"
            )),
            "{text}"
        );

        let unknown = sendgrid_events("who@y.example", "<nobody@elsewhere.example>", "spamreport");
        assert_eq!(post(&d, "sendgrid", &key.headers(now(), &unknown), &unknown).await, StatusCode::NO_CONTENT);
        assert_eq!(unmatched(&db, "sendgrid").await, 1);
        d.stop().await;
    }
}

// ---------------------------------------------------------------------------
// Mailgun: HMAC-SHA256 of timestamp + token in the body

const MAILGUN_KEY: &str = "key-3ax6xnjp29jd6fds4gc373sgvjxteol0";

fn mailgun_body(
    key: &str,
    timestamp: i64,
    event: &str,
    recipient: &str,
    message_id: &str,
) -> String {
    mailgun_body_with(key, timestamp, event, "permanent", recipient, message_id)
}

fn mailgun_body_with(
    key: &str,
    timestamp: i64,
    event: &str,
    severity: &str,
    recipient: &str,
    message_id: &str,
) -> String {
    let token = "a8ce0edb2dd8301dee6c2405235584e45aa91d1e9f979f3de0";
    let tag = ring::hmac::sign(
        &ring::hmac::Key::new(ring::hmac::HMAC_SHA256, key.as_bytes()),
        format!("{timestamp}{token}").as_bytes(),
    );
    // Mailgun's documented permanent-failure sample.
    json!({
        "signature": {"timestamp": timestamp.to_string(), "token": token, "signature": hex::encode(tag.as_ref())},
        "event-data": {
            "event": event, "id": "G9Bn5sl1TC6nu79C8C0bwg", "timestamp": 1521233195.375624,
            "log-level": "error", "severity": severity, "reason": "bounce",
            "recipient": recipient, "recipient-domain": "x.example",
            "envelope": {"sender": "bob@sandbox.mailgun.org", "transport": "smtp", "targets": recipient},
            "delivery-status": {"attempt-no": 1, "code": 550, "enhanced-code": "5.1.1",
                "message": "5.1.1 The email account that you tried to reach does not exist",
                "description": "", "session-seconds": 0.0},
            "message": {"headers": {"to": format!("Alice <{recipient}>"),
                "message-id": message_id.trim_matches(['<', '>']),
                "from": "Bob <bob@sandbox.mailgun.org>", "subject": "Test permanent_fail webhook"},
                "attachments": [], "size": 111},
            "flags": {"is-routed": false, "is-authenticated": true, "is-system-test": false, "is-test-mode": false},
            "tags": ["my_tag_1"], "user-variables": {"my_var_1": "Mailgun Variable #1"}
        }
    })
    .to_string()
}

both_stores! {
    /// Mailgun: a permanent failure signed with the signing key is tied by
    /// the message-id header; another key, a stale timestamp: `401`.
    async fn mailgun_signed_events(db: Db) {
        let d = daemon(&db, |c| {
            c.feedback.mailgun = Some(HmacSecret::mailgun(MAILGUN_KEY).unwrap());
        })
        .await;
        let (id, message_id) = sent_invitation(&d, "gone@x.example").await;
        let json_header = [("content-type", "application/json".to_string())];

        let forged = mailgun_body("key-another-0123456789abcdef", now(), "failed", "gone@x.example", &message_id);
        assert_eq!(post(&d, "mailgun", &json_header, &forged).await, StatusCode::UNAUTHORIZED);
        let stale = mailgun_body(MAILGUN_KEY, now() - 301, "failed", "gone@x.example", &message_id);
        assert_eq!(post(&d, "mailgun", &json_header, &stale).await, StatusCode::UNAUTHORIZED);
        assert_eq!(post(&d, "mailgun", &json_header, "{}").await, StatusCode::UNAUTHORIZED);
        unchanged(&d, &db, &id).await;

        let body = mailgun_body(MAILGUN_KEY, now(), "failed", "gone@x.example", &message_id);
        assert_eq!(post(&d, "mailgun", &json_header, &body).await, StatusCode::NO_CONTENT);
        let items = marked(&d, &db, &id, "bounced", "hard_bounce", "mailgun", "message_id").await;
        let entry = items.iter().find(|i| i["type"] == "delivery_feedback").unwrap();
        assert_eq!(entry["status_code"], "5.1.1", "{entry}");

        let unknown = mailgun_body(MAILGUN_KEY, now(), "complained", "who@y.example", "<nobody@elsewhere.example>");
        assert_eq!(post(&d, "mailgun", &json_header, &unknown).await, StatusCode::NO_CONTENT);
        assert_eq!(unmatched(&db, "mailgun").await, 1);
        d.stop().await;
    }
}

both_stores! {
    /// R44 through a provider: a temporary failure is a soft bounce, only
    /// in the timeline; the email stays `sent` and no event is published.
    async fn a_providers_temporary_failure_is_a_soft_bounce(db: Db) {
        let d = daemon(&db, |c| {
            c.feedback.mailgun = Some(HmacSecret::mailgun(MAILGUN_KEY).unwrap());
        })
        .await;
        let (id, message_id) = sent_invitation(&d, "full@x.example").await;
        let body = mailgun_body_with(MAILGUN_KEY, now(), "failed", "temporary", "full@x.example", &message_id);
        assert_eq!(post(&d, "mailgun", &[], &body).await, StatusCode::NO_CONTENT);
        assert_eq!(delivery_status(&d, &id).await, "sent");
        let items = feedback_entries(&d, &id).await;
        assert_eq!(items.len(), 1, "{items:?}");
        assert_eq!(items[0]["type"], "delivery_feedback");
        assert_eq!(items[0]["feedback"], "soft_bounce");
        assert_eq!(items[0]["source"], "mailgun");
        d.stop().await;
    }
}

// ---------------------------------------------------------------------------
// Resend: Svix signatures

const RESEND_SECRET: &str = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";

fn svix_headers(
    secret: &str,
    msg_id: &str,
    timestamp: i64,
    body: &str,
) -> Vec<(&'static str, String)> {
    let key = B64.decode(secret.strip_prefix("whsec_").unwrap()).unwrap();
    let tag = ring::hmac::sign(
        &ring::hmac::Key::new(ring::hmac::HMAC_SHA256, &key),
        format!("{msg_id}.{timestamp}.{body}").as_bytes(),
    );
    vec![
        ("svix-id", msg_id.to_string()),
        ("svix-timestamp", timestamp.to_string()),
        // A rotated-out signature first, as Svix sends during rotation.
        (
            "svix-signature",
            format!(
                "v1,{} v1,{}",
                B64.encode([0u8; 32]),
                B64.encode(tag.as_ref())
            ),
        ),
        ("content-type", "application/json".into()),
    ]
}

fn resend_event(kind: &str, to: &str) -> String {
    // Resend's documented email.bounced / email.complained payloads.
    let mut data = json!({
        "broadcast_id": "8b146471-e88e-4322-86af-016cd36fd216",
        "created_at": "2024-11-22T23:41:11.894719+00:00",
        "email_id": "56761188-7520-42d8-8898-ff6fc54ce618",
        "from": "Acme <onboarding@resend.dev>",
        "to": [to],
        "subject": "Sending this example",
        "tags": {"category": "confirm_email"}
    });
    if kind == "email.bounced" {
        data["bounce"] = json!({
            "message": "The recipient's email address is on the suppression list because it has a recent history of producing hard bounces.",
            "subType": "Suppressed",
            "type": "Permanent"
        });
    }
    json!({"type": kind, "created_at": "2024-11-22T23:41:12.126Z", "data": data}).to_string()
}

both_stores! {
    /// Resend: a complaint signed Svix-style is tied by the address and
    /// marks the email complained; another secret, a stale timestamp:
    /// `401`.
    async fn resend_svix_signed_events(db: Db) {
        let d = daemon(&db, |c| {
            c.feedback.resend = Some(HmacSecret::svix(RESEND_SECRET).unwrap());
        })
        .await;
        let (id, _) = sent_invitation(&d, "angry@x.example").await;
        let body = resend_event("email.complained", "angry@x.example");

        let other = "whsec_QUFBQUFBQUFBQUFBQUFBQUFBQUFBQUFB";
        assert_eq!(post(&d, "resend", &svix_headers(other, "msg_1", now(), &body), &body).await, StatusCode::UNAUTHORIZED);
        assert_eq!(post(&d, "resend", &svix_headers(RESEND_SECRET, "msg_1", now() - 301, &body), &body).await, StatusCode::UNAUTHORIZED);
        let mut wrong_id = svix_headers(RESEND_SECRET, "msg_1", now(), &body);
        wrong_id[0].1 = "msg_2".into();
        assert_eq!(post(&d, "resend", &wrong_id, &body).await, StatusCode::UNAUTHORIZED);
        unchanged(&d, &db, &id).await;

        assert_eq!(post(&d, "resend", &svix_headers(RESEND_SECRET, "msg_1", now(), &body), &body).await, StatusCode::NO_CONTENT);
        marked(&d, &db, &id, "complained", "complaint", "resend", "address").await;

        let unknown = resend_event("email.bounced", "who@y.example");
        assert_eq!(post(&d, "resend", &svix_headers(RESEND_SECRET, "msg_3", now(), &unknown), &unknown).await, StatusCode::NO_CONTENT);
        assert_eq!(unmatched(&db, "resend").await, 1);
        d.stop().await;
    }
}

// ---------------------------------------------------------------------------
// SES through SNS: RSA signatures against an allow-listed certificate

/// An RSA key and a self-signed certificate made by openssl, and a
/// loopback HTTP server that serves the certificate and counts requests.
struct SnsSigner {
    dir: TempDir,
    key: PathBuf,
    base: String,
    hits: Arc<AtomicUsize>,
}

impl SnsSigner {
    async fn start() -> SnsSigner {
        let dir = TempDir::new("invited-sns");
        let key = dir.0.join("key.pem");
        let cert = dir.0.join("cert.pem");
        let made = Command::new("openssl")
            .args([
                "req",
                "-x509",
                "-newkey",
                "rsa:2048",
                "-nodes",
                "-days",
                "2",
                "-subj",
                "/CN=sns.amazonaws.com.test",
                "-keyout",
            ])
            .arg(&key)
            .arg("-out")
            .arg(&cert)
            .output()
            .expect("openssl runs");
        assert!(
            made.status.success(),
            "{}",
            String::from_utf8_lossy(&made.stderr)
        );
        let pem = std::fs::read_to_string(&cert).unwrap();
        let hits = Arc::new(AtomicUsize::new(0));
        let counter = hits.clone();
        let app = axum::Router::new().fallback(move |uri: axum::http::Uri| {
            let counter = counter.clone();
            let pem = pem.clone();
            async move {
                counter.fetch_add(1, Ordering::SeqCst);
                if uri.path() == "/SimpleNotificationService-test.pem" {
                    (axum::http::StatusCode::OK, pem)
                } else {
                    (axum::http::StatusCode::NOT_FOUND, String::new())
                }
            }
        });
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let base = format!("http://127.0.0.1:{}", listener.local_addr().unwrap().port());
        tokio::spawn(async move { axum::serve(listener, app).await });
        SnsSigner {
            dir,
            key,
            base,
            hits,
        }
    }

    fn cert_url(&self) -> String {
        format!("{}/SimpleNotificationService-test.pem", self.base)
    }

    /// `openssl dgst -sha1|-sha256 -sign`: SignatureVersion 1 or 2.
    fn sign(&self, version: &str, text: &str) -> String {
        let file = self.dir.0.join(format!("to-sign-{}", uuid::Uuid::now_v7()));
        std::fs::write(&file, text).unwrap();
        let digest = if version == "1" { "-sha1" } else { "-sha256" };
        let out = Command::new("openssl")
            .args(["dgst", digest, "-sign"])
            .arg(&self.key)
            .arg(&file)
            .output()
            .expect("openssl runs");
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        B64.encode(out.stdout)
    }

    /// An SNS message of `kind` around `message`, signed as SNS documents:
    /// the fields as `Name\nvalue\n` in its order for that type.
    fn message(
        &self,
        kind: &str,
        version: &str,
        message: &str,
        subject: Option<&str>,
        cert_url: &str,
    ) -> String {
        let mut msg = json!({
            "Type": kind,
            "MessageId": "22b80b92-fdea-4c2c-8f9d-bdfb0c7bf324",
            "TopicArn": "arn:aws:sns:us-west-2:123456789012:ses-feedback",
            "Message": message,
            "Timestamp": "2026-12-02T00:54:06.655Z",
            "SignatureVersion": version,
            "SigningCertURL": cert_url,
        });
        let mut text = format!(
            "Message\n{message}\nMessageId\n{}\n",
            msg["MessageId"].as_str().unwrap()
        );
        if kind == "Notification" {
            if let Some(subject) = subject {
                msg["Subject"] = json!(subject);
                text.push_str(&format!("Subject\n{subject}\n"));
            }
            text.push_str(&format!(
                "Timestamp\n{}\n",
                msg["Timestamp"].as_str().unwrap()
            ));
            msg["UnsubscribeURL"] = json!(format!("{}/?Action=Unsubscribe", self.base));
        } else {
            let subscribe = format!("{}/?Action=ConfirmSubscription&Token=2336412f37", self.base);
            msg["SubscribeURL"] = json!(subscribe);
            msg["Token"] = json!("2336412f37");
            text.push_str(&format!(
                "SubscribeURL\n{subscribe}\nTimestamp\n{}\nToken\n2336412f37\n",
                msg["Timestamp"].as_str().unwrap()
            ));
        }
        text.push_str(&format!(
            "TopicArn\n{}\nType\n{kind}\n",
            msg["TopicArn"].as_str().unwrap()
        ));
        msg["Signature"] = json!(self.sign(version, &text));
        msg.to_string()
    }
}

fn ses_bounce(email: &str, message_id: &str) -> String {
    // SES's documented bounce notification, with the original headers.
    json!({
        "notificationType": "Bounce",
        "bounce": {
            "bounceType": "Permanent", "bounceSubType": "General", "reportingMTA": "dns; email.example.com",
            "bouncedRecipients": [{"emailAddress": email, "status": "5.1.1", "action": "failed",
                "diagnosticCode": format!("smtp; 550 5.1.1 <{email}>... User unknown")}],
            "timestamp": "2016-01-27T14:59:38.237Z",
            "feedbackId": "00000138111222aa-33322211-cccc-cccc-cccc-ddddaaaa068a-000000",
            "remoteMtaIp": "127.0.2.0"
        },
        "mail": {
            "timestamp": "2016-01-27T14:59:38.237Z", "source": "pinbot@info.example.test",
            "sourceArn": "arn:aws:ses:us-east-1:888888888888:identity/example.com",
            "sendingAccountId": "123456789012",
            "messageId": "00000138111222aa-33322211-cccc-cccc-cccc-ddddaaaa0680-000000",
            "destination": [email], "headersTruncated": false,
            "headers": [{"name": "From", "value": "pinbot@info.example.test"}, {"name": "To", "value": email},
                {"name": "Message-ID", "value": message_id}, {"name": "Subject", "value": "Hello"}],
            "commonHeaders": {"from": ["pinbot@info.example.test"], "to": [email],
                "messageId": "<00000138111222aa@email.amazonses.com>", "subject": "Hello"}
        }
    })
    .to_string()
}

fn ses_complaint(email: &str) -> String {
    json!({
        "notificationType": "Complaint",
        "complaint": {
            "userAgent": "AnyCompany Feedback Loop (V0.01)",
            "complainedRecipients": [{"emailAddress": email}],
            "complaintFeedbackType": "abuse",
            "arrivalDate": "2016-01-27T14:59:38.237Z",
            "timestamp": "2016-01-27T14:59:38.237Z",
            "feedbackId": "000001378603177f-18c07c78-fa81-4a58-9dd1-fedc3cb8f49a-000000"
        },
        "mail": {"timestamp": "2016-01-27T14:59:38.237Z", "messageId": "000001378603177f-7a5433e7-8edb-42ae-af10-f0181f34d6ee-000000",
            "source": "pinbot@info.example.test", "destination": [email]}
    })
    .to_string()
}

both_stores! {
    /// SES: a SignatureVersion 1 bounce notification, verified against the
    /// certificate fetched from the allow-listed SigningCertURL, is tied by
    /// the Message-ID in the original headers; a SignatureVersion 2
    /// complaint about an unknown address is kept; a tampered message, a
    /// certificate URL outside the allow-list (never fetched) or a URL that
    /// holds no certificate: `401`. A SubscriptionConfirmation is verified
    /// and logged, and its SubscribeURL is not visited.
    async fn ses_notifications_through_sns(db: Db) {
        let sns = SnsSigner::start().await;
        let d = daemon(&db, |c| {
            c.feedback.ses.allowed_cert_hosts = vec![CertHost::parse("127.0.0.1").unwrap()];
            c.feedback.ses.plain_http_certs_for_tests = true;
        })
        .await;
        let (id, message_id) = sent_invitation(&d, "gone@x.example").await;
        let notification = ses_bounce("gone@x.example", &message_id);
        let body = sns.message("Notification", "1", &notification, None, &sns.cert_url());
        let sns_header = [("x-amz-sns-message-type", "Notification".to_string())];

        // Outside the allow-list: refused before any fetch.
        for url in [
            "http://localhost:1/SimpleNotificationService-test.pem".to_string(),
            "https://sns.us-east-1.amazonaws.com.evil.example/cert.pem".to_string(),
            sns.cert_url().replace("http://127.0.0.1", "http://user:pw@127.0.0.1"),
        ] {
            let elsewhere = sns.message("Notification", "1", &notification, None, &url);
            assert_eq!(post(&d, "ses", &sns_header, &elsewhere).await, StatusCode::UNAUTHORIZED, "{url}");
        }
        assert_eq!(sns.hits.load(Ordering::SeqCst), 0, "nothing fetched");
        // Tampered: the bounce now names another address.
        let tampered = body.replace("gone@x.example", "else@x.example");
        assert_eq!(post(&d, "ses", &sns_header, &tampered).await, StatusCode::UNAUTHORIZED);
        // An allowed host, but no certificate there.
        let nothing = sns.message("Notification", "1", &notification, None, &format!("{}/missing.pem", sns.base));
        assert_eq!(post(&d, "ses", &sns_header, &nothing).await, StatusCode::UNAUTHORIZED);
        unchanged(&d, &db, &id).await;

        assert_eq!(post(&d, "ses", &sns_header, &body).await, StatusCode::NO_CONTENT);
        let items = marked(&d, &db, &id, "bounced", "hard_bounce", "ses", "message_id").await;
        let entry = items.iter().find(|i| i["type"] == "delivery_feedback").unwrap();
        assert_eq!(entry["status_code"], "5.1.1", "{entry}");

        let complaint = sns.message("Notification", "2", &ses_complaint("who@y.example"), Some("Amazon SES Email Event Notification"), &sns.cert_url());
        assert_eq!(post(&d, "ses", &sns_header, &complaint).await, StatusCode::NO_CONTENT);
        assert_eq!(unmatched(&db, "ses").await, 1);

        let hits = sns.hits.load(Ordering::SeqCst);
        let confirm = sns.message("SubscriptionConfirmation", "2", "You have chosen to subscribe to the topic.", None, &sns.cert_url());
        assert_eq!(post(&d, "ses", &[("x-amz-sns-message-type", "SubscriptionConfirmation".into())], &confirm).await, StatusCode::NO_CONTENT);
        assert_eq!(sns.hits.load(Ordering::SeqCst), hits, "the certificate is cached and the SubscribeURL not visited");

        d.stop().await;
    }
}

/// The default `feedback.ses.allowed_cert_hosts` takes AWS's SNS hosts
/// only, over https only: the same signed message is `401` without a fetch.
#[tokio::test]
async fn ses_by_default_allows_only_https_sns_hosts() {
    let db = Db::sqlite().await;
    let sns = SnsSigner::start().await;
    let d = daemon(&db, |_| {}).await;
    let body = sns.message(
        "Notification",
        "1",
        &ses_complaint("who@y.example"),
        None,
        &sns.cert_url(),
    );
    assert_eq!(post(&d, "ses", &[], &body).await, StatusCode::UNAUTHORIZED);
    let http_aws = sns.message(
        "Notification",
        "1",
        &ses_complaint("who@y.example"),
        None,
        "http://sns.us-east-1.amazonaws.com/SimpleNotificationService-x.pem",
    );
    assert_eq!(
        post(&d, "ses", &[], &http_aws).await,
        StatusCode::UNAUTHORIZED
    );
    assert_eq!(sns.hits.load(Ordering::SeqCst), 0);
    assert_eq!(db.count("SELECT count(*) FROM email_feedback").await, 0);
    d.stop().await;
}
