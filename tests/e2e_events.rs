//! Outbound events to webhooks (R17), end to end: the daemon in-process, a
//! real HTTP receiver on 127.0.0.1:0 in the test, real Postgres and SMTP.
//!
//! Postgres-only for now: the cursor is the Postgres commit numbering
//! (`event_commits`); the SQLite cursor is covered through the port in
//! `tests/store.rs`.

mod support;

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::extract::State;
use axum::http::{HeaderMap, StatusCode as AxumStatus};
use invited::config::WebhookConfig;
use reqwest::StatusCode;
use serde_json::{Value, json};
use sqlx::PgPool;
use support::daemon::{TestDaemon, token_from};
use support::scenario::invite;
use support::smtp_sink::SmtpSink;

const WAIT: Duration = Duration::from_secs(30);
const SECRET: &str = "whsec-test-0123456789";

/// One request the receiver got.
#[derive(Clone, Debug)]
struct Hit {
    signature: String,
    body: Vec<u8>,
    answered: u16,
}

impl Hit {
    fn json(&self) -> Value {
        serde_json::from_slice(&self.body).expect("a JSON event")
    }
    fn id(&self) -> String {
        self.json()["id"].as_str().unwrap().to_string()
    }
}

#[derive(Clone, Default)]
struct Receiver {
    hits: Arc<Mutex<Vec<Hit>>>,
    /// While set, every request is answered 500.
    failing: Arc<AtomicBool>,
}

impl Receiver {
    fn hits(&self) -> Vec<Hit> {
        self.hits.lock().unwrap().clone()
    }
    fn delivered(&self) -> Vec<Hit> {
        self.hits()
            .into_iter()
            .filter(|h| h.answered == 200)
            .collect()
    }
}

async fn hook(
    State(r): State<Receiver>,
    headers: HeaderMap,
    body: axum::body::Bytes,
) -> AxumStatus {
    let answered = if r.failing.load(Ordering::SeqCst) {
        AxumStatus::INTERNAL_SERVER_ERROR
    } else {
        AxumStatus::OK
    };
    r.hits.lock().unwrap().push(Hit {
        signature: headers
            .get("invited-signature")
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default()
            .to_string(),
        body: body.to_vec(),
        answered: answered.as_u16(),
    });
    answered
}

/// An axum receiver on 127.0.0.1:0; returns its URL.
async fn receiver(r: Receiver) -> String {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let app = axum::Router::new()
        .route("/hook", axum::routing::post(hook))
        .with_state(r);
    tokio::spawn(async move {
        axum::serve(listener, app).await.unwrap();
    });
    format!("http://{addr}/hook")
}

async fn daemon(pool: &PgPool, url: &str) -> TestDaemon {
    let url = url.to_string();
    TestDaemon::start_with(pool, SmtpSink::start(), move |config| {
        config.webhooks = vec![WebhookConfig {
            url,
            secret: SECRET.to_string(),
        }];
        config.events.poll_interval = Duration::from_millis(200);
        config.events.initial_backoff = Duration::from_millis(500);
        config.events.max_backoff = Duration::from_secs(1);
        config.invitations.resend_cooldown = Duration::ZERO;
    })
    .await
}

/// Waits until every email is out of the outbox (the mailer commits events
/// of its own as it sends, so until then more may come) and the receiver
/// has had as many events as the database holds; returns their ids.
async fn every_event_delivered(pool: &PgPool, r: &Receiver) -> Vec<String> {
    support::wait::eventually(WAIT, "every event delivered, every email out", || async {
        let unsent: i64 = sqlx::query_scalar(
            "SELECT count(*) FROM email_outbox WHERE status IN ('queued', 'sending', 'retrying')",
        )
        .fetch_one(pool)
        .await
        .unwrap();
        let events = all_event_ids(pool).await;
        let delivered = r.delivered().len();
        if unsent == 0 && delivered >= events.len() {
            Ok(events)
        } else {
            Err(format!(
                "{unsent} emails unsent, {delivered} of {} events delivered",
                events.len()
            ))
        }
    })
    .await
}

/// The invitation's events as the database has them, in insertion order.
async fn stored_events(pool: &PgPool, invitation: &str) -> Vec<(String, String)> {
    sqlx::query_as("SELECT id::text, type FROM events WHERE invitation_id = $1::uuid ORDER BY seq")
        .bind(invitation)
        .fetch_all(pool)
        .await
        .unwrap()
}

/// Every event id in the order the writing transactions committed.
async fn commit_order(pool: &PgPool) -> Vec<String> {
    sqlx::query_scalar(
        "SELECT e.id::text FROM events e JOIN event_commits c ON c.txid = e.txid ORDER BY c.commit_seq, e.seq",
    )
    .fetch_all(pool)
    .await
    .unwrap()
}

async fn all_event_ids(pool: &PgPool) -> Vec<String> {
    sqlx::query_scalar("SELECT id::text FROM events ORDER BY seq")
        .fetch_all(pool)
        .await
        .unwrap()
}

async fn setup(d: &TestDaemon) -> String {
    d.user("olive", "olive@brand.example", "en-US").await;
    d.business("Brand & Co", "olive").await
}

/// R17: created, sent, resent, sent again, accepted and the membership all
/// reach the webhook, each once, in the order they happened, each signed.
#[sqlx::test(migrations = false)]
async fn a_webhook_gets_every_event_of_an_invitation_in_order_signed(pool: PgPool) {
    let r = Receiver::default();
    let url = receiver(r.clone()).await;
    let d = daemon(&pool, &url).await;
    let b = setup(&d).await;
    let id = invite(&d, &b, "charles@agency.example").await;
    d.sink.wait_for(1, WAIT).await;
    let (status, body) = d
        .post(
            &format!("/v1/invitations/{id}/resend"),
            json!({"actor_user_id": "olive"}),
        )
        .await;
    assert_eq!(status, StatusCode::ACCEPTED, "{body}");
    let token = token_from(&d.sink.wait_for(2, WAIT).await[1].text_body());
    d.user("charles", "charles@agency.example", "en-GB").await;
    let (status, body) = d
        .post(
            "/v1/invitations/accept",
            json!({"token": token, "user_id": "charles"}),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");

    // Every event of the database, the business's own included, arrives
    // once.
    let mut expected = every_event_delivered(&pool, &r).await;
    let delivered = r.delivered();
    let mut got: Vec<String> = delivered.iter().map(Hit::id).collect();
    assert_eq!(got, commit_order(&pool).await, "in commit order");
    got.sort();
    expected.sort();
    assert_eq!(got, expected, "every event, once");

    // The invitation's life, in the order the test caused it: the API calls
    // ran one after the other; each email's `invitation.sent` follows the
    // creation.
    let life: Vec<String> = delivered
        .iter()
        .map(Hit::json)
        .filter(|e| e["invitation_id"] == json!(id))
        .map(|e| e["type"].as_str().unwrap().to_string())
        .collect();
    let at = |t: &str| {
        life.iter()
            .position(|x| x == t)
            .unwrap_or_else(|| panic!("{t} missing in {life:?}"))
    };
    assert_eq!(at("invitation.created"), 0, "{life:?}");
    assert!(
        at("invitation.resent") < at("invitation.accepted"),
        "{life:?}"
    );
    assert!(at("invitation.sent") > 0, "{life:?}");
    assert_eq!(
        life.len(),
        stored_events(&pool, &id).await.len(),
        "all of the invitation's events: {life:?}"
    );

    for hit in &delivered {
        assert!(
            invited::events::verify_signature(SECRET.as_bytes(), &hit.signature, &hit.body),
            "bad signature {} on {}",
            hit.signature,
            String::from_utf8_lossy(&hit.body)
        );
        let event = hit.json();
        for field in ["id", "type", "occurred_at", "business_id", "data"] {
            assert!(event.get(field).is_some(), "{field} missing in {event}");
        }
    }
    let created = delivered
        .iter()
        .map(Hit::json)
        .find(|e| e["type"] == "invitation.created")
        .unwrap();
    assert_eq!(created["business_id"], json!(b));
    assert_eq!(created["actor_user_id"], "olive");
    d.stop().await;
}

/// R17: while the receiver answers 500, the first waiting event is retried
/// with backoff and nothing after it is sent; afterwards everything arrives,
/// in order, and the cursor records the failures.
#[sqlx::test(migrations = false)]
async fn failed_deliveries_are_retried_and_arrive_in_order(pool: PgPool) {
    let r = Receiver::default();
    r.failing.store(true, Ordering::SeqCst);
    let url = receiver(r.clone()).await;
    let d = daemon(&pool, &url).await;
    let b = setup(&d).await;
    let id = invite(&d, &b, "charles@agency.example").await;
    let (status, body) = d
        .post(
            &format!("/v1/invitations/{id}/cancel"),
            json!({"actor_user_id": "olive"}),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");

    support::wait::until(WAIT, "three failed attempts", || r.hits().len() >= 3).await;
    let failed = r.hits();
    let first = all_event_ids(&pool).await[0].clone();
    assert!(
        failed.iter().all(|h| h.answered == 500 && h.id() == first),
        "only the first event is attempted while it fails: {:?}",
        failed.iter().map(Hit::id).collect::<Vec<_>>()
    );
    let last_error: Option<String> =
        sqlx::query_scalar("SELECT last_error FROM event_cursors WHERE sink LIKE 'webhook:%'")
            .fetch_one(&pool)
            .await
            .unwrap();
    assert_eq!(last_error.as_deref(), Some("answered HTTP 500"));

    r.failing.store(false, Ordering::SeqCst);
    let mut expected = every_event_delivered(&pool, &r).await;
    let mut got: Vec<String> = r.delivered().iter().map(Hit::id).collect();
    assert_eq!(got, commit_order(&pool).await, "in commit order");
    got.sort();
    expected.sort();
    assert_eq!(got, expected, "every event, once");
    let life: Vec<String> = r
        .delivered()
        .iter()
        .map(Hit::json)
        .filter(|e| e["invitation_id"] == json!(id))
        .map(|e| e["type"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(
        life.first().map(String::as_str),
        Some("invitation.created"),
        "{life:?}"
    );
    assert!(life.iter().any(|t| t == "invitation.cancelled"), "{life:?}");
    let attempts: i32 =
        sqlx::query_scalar("SELECT attempts FROM event_cursors WHERE sink LIKE 'webhook:%'")
            .fetch_one(&pool)
            .await
            .unwrap();
    assert_eq!(attempts, 0, "reset after a success");
    d.stop().await;
}
