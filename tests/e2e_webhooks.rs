//! Webhook endpoints at runtime (R48), end to end on both stores: the daemon
//! in-process, real HTTP receivers on 127.0.0.1:0 started here, and every
//! delivery checked by the reference verifier of the Standard Webhooks spec
//! (Python's `standardwebhooks` from PyPI, which scripts/services installs).

mod support;

use std::io::Write as _;
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicBool, AtomicU16, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::extract::State;
use axum::http::{HeaderMap, HeaderValue, StatusCode as AxumStatus};
use axum::response::{IntoResponse, Response};
use reqwest::StatusCode;
use serde_json::{Value, json};
use support::daemon::{ADMIN_KEY, API_KEY, READ_KEY, TestDaemon};
use support::smtp_sink::SmtpSink;
use support::wait::{eventually, until};

const WAIT: Duration = Duration::from_secs(30);

/// One request a receiver got.
#[derive(Clone, Debug)]
struct Hit {
    headers: Vec<(String, String)>,
    body: Vec<u8>,
    answered: u16,
    at: tokio::time::Instant,
}

impl Hit {
    fn header(&self, name: &str) -> &str {
        self.headers
            .iter()
            .find(|(n, _)| n == name)
            .map_or("", |(_, v)| v.as_str())
    }
    fn json(&self) -> Value {
        serde_json::from_slice(&self.body).expect("a JSON event")
    }
    fn id(&self) -> String {
        self.json()["id"].as_str().unwrap().to_string()
    }
    fn event_type(&self) -> String {
        self.json()["type"].as_str().unwrap().to_string()
    }
}

#[derive(Clone)]
struct Receiver {
    hits: Arc<Mutex<Vec<Hit>>>,
    /// The status to answer with (0: 200).
    answer: Arc<AtomicU16>,
    /// With a 429 or 503: the `Retry-After` seconds, once (0: none).
    retry_after: Arc<AtomicU64>,
    /// While set, each request is recorded and then held (its reply not
    /// sent) until `release`: lets a test act between a delivery and the
    /// moment the daemon learns it succeeded.
    holding: Arc<AtomicBool>,
    held: Arc<tokio::sync::Semaphore>,
}

impl Default for Receiver {
    fn default() -> Receiver {
        Receiver {
            hits: Arc::default(),
            answer: Arc::default(),
            retry_after: Arc::default(),
            holding: Arc::default(),
            held: Arc::new(tokio::sync::Semaphore::new(0)),
        }
    }
}

impl Receiver {
    fn answering(&self, status: u16) {
        self.answer.store(status, Ordering::SeqCst);
    }
    fn hold(&self) {
        self.holding.store(true, Ordering::SeqCst);
    }
    /// Stops holding and lets every held request answer.
    fn release(&self) {
        self.holding.store(false, Ordering::SeqCst);
        self.held
            .add_permits(tokio::sync::Semaphore::MAX_PERMITS / 2);
    }
    fn hits(&self) -> Vec<Hit> {
        self.hits.lock().unwrap().clone()
    }
    fn delivered(&self) -> Vec<Hit> {
        self.hits()
            .into_iter()
            .filter(|h| (200..300).contains(&h.answered))
            .collect()
    }
    fn delivered_ids(&self) -> Vec<String> {
        self.delivered().iter().map(Hit::id).collect()
    }
}

async fn hook(State(r): State<Receiver>, headers: HeaderMap, body: axum::body::Bytes) -> Response {
    let answered = match r.answer.load(Ordering::SeqCst) {
        0 => 200,
        status => status,
    };
    let mut recorded: Vec<(String, String)> = headers
        .iter()
        .map(|(n, v)| (n.as_str().to_string(), v.to_str().unwrap_or("").to_string()))
        .collect();
    recorded.sort();
    r.hits.lock().unwrap().push(Hit {
        headers: recorded,
        body: body.to_vec(),
        answered,
        at: tokio::time::Instant::now(),
    });
    if r.holding.load(Ordering::SeqCst) {
        r.held.acquire().await.unwrap().forget();
    }
    let mut response = AxumStatus::from_u16(answered).unwrap().into_response();
    let retry = r.retry_after.swap(0, Ordering::SeqCst);
    if retry > 0 {
        response
            .headers_mut()
            .insert("retry-after", HeaderValue::from(retry));
    }
    response
}

/// An axum receiver on 127.0.0.1:0; returns its URL.
async fn receiver(r: &Receiver) -> String {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let app = axum::Router::new()
        .route("/hook", axum::routing::post(hook))
        .with_state(r.clone());
    tokio::spawn(async move {
        axum::serve(listener, app).await.unwrap();
    });
    format!("http://{addr}/hook")
}

/// The reference verifier: `Webhook(secret).verify(body, headers)` of the
/// Standard Webhooks Python library, on the request as received.
fn reference_verifies(secret: &str, hit: &Hit) -> bool {
    verify_with(secret, false, hit)
}

/// `raw`: the key is the secret's own bytes (`Webhook(secret.encode())`), as
/// for a configured secret that is not `whsec_<base64>`.
fn verify_with(secret: &str, raw: bool, hit: &Hit) -> bool {
    let input = json!({
        "raw": raw,
        "secret": secret,
        "body": String::from_utf8(hit.body.clone()).unwrap(),
        "headers": hit.headers.iter().cloned().collect::<std::collections::BTreeMap<_, _>>(),
    });
    let mut child = Command::new("python3")
        .arg("-c")
        .arg(
            "import json, sys\n\
             from standardwebhooks import Webhook\n\
             d = json.load(sys.stdin)\n\
             key = d['secret'].encode() if d['raw'] else d['secret']\n\
             Webhook(key).verify(d['body'], d['headers'])\n",
        )
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("python3 runs (scripts/services installs standardwebhooks)");
    child
        .stdin
        .take()
        .unwrap()
        .write_all(input.to_string().as_bytes())
        .unwrap();
    let output = child.wait_with_output().unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        !stderr.contains("ModuleNotFoundError"),
        "standardwebhooks is not installed (scripts/services installs it): {stderr}"
    );
    output.status.success()
}

async fn daemon(db: &support::db::Db, disable_after: Option<Duration>) -> TestDaemon {
    TestDaemon::start_with(db, SmtpSink::start(), move |config| {
        config.events.poll_interval = Duration::from_millis(200);
        config.events.initial_backoff = Duration::from_millis(300);
        config.events.max_backoff = Duration::from_millis(600);
        if let Some(after) = disable_after {
            config.webhook_policy.disable_after = after;
        }
    })
    .await
}

async fn admin(d: &TestDaemon, req: reqwest::RequestBuilder) -> (StatusCode, Value) {
    d.send_as(ADMIN_KEY, req).await
}

async fn create(d: &TestDaemon, body: Value) -> (String, String) {
    let (status, created) = admin(d, d.client().post(d.url("/v1/webhooks")).json(&body)).await;
    assert_eq!(status, StatusCode::CREATED, "{created}");
    (
        created["id"].as_str().unwrap().to_string(),
        created["secret"].as_str().unwrap().to_string(),
    )
}

async fn endpoint(d: &TestDaemon, id: &str) -> Value {
    let (status, body) = admin(d, d.client().get(d.url(&format!("/v1/webhooks/{id}")))).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    body
}

/// Polls the endpoint until `check` holds.
async fn endpoint_until(d: &TestDaemon, id: &str, check: impl Fn(&Value) -> bool) -> Value {
    eventually(WAIT, "the endpoint's expected state", || async {
        let body = endpoint(d, id).await;
        if check(&body) {
            Ok(body)
        } else {
            Err(body.to_string())
        }
    })
    .await
}

async fn setup(d: &TestDaemon) -> String {
    d.user("olive", "olive@brand.example", "en-US").await;
    d.business("Brand & Co", "olive").await
}

async fn invite(d: &TestDaemon, b: &str, email: &str) {
    let (status, body) = d
        .post(
            &format!("/v1/businesses/{b}/invitations"),
            json!({"actor_user_id": "olive", "invitees": [{"email": email}]}),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
}

both_stores! {
    /// R47 on these routes: any key reads them (never the secret), only an
    /// admin key changes them.
    async fn webhook_routes_need_the_admin_scope(db: Db) {
        let d = daemon(&db, None).await;
        let create = json!({"url": "http://127.0.0.1:9/hook"});
        for key in [READ_KEY, API_KEY] {
            let (status, body) = d
                .send_as(key, d.client().post(d.url("/v1/webhooks")).json(&create))
                .await;
            assert_eq!(status, StatusCode::FORBIDDEN, "{body}");
            if key == API_KEY {
                assert!(body["detail"].as_str().unwrap().contains("admin"), "{body}");
            }
            let (status, body) = d.send_as(key, d.client().get(d.url("/v1/webhooks"))).await;
            assert_eq!(status, StatusCode::OK, "{body}");
        }
        assert_eq!(db.count("SELECT count(*) FROM webhook_endpoints").await, 0);
        let (id, _) = create_endpoint(&d, create).await;
        for key in [READ_KEY, API_KEY] {
            for req in [
                d.client().get(d.url(&format!("/v1/webhooks/{id}"))),
                d.client().get(d.url(&format!("/v1/webhooks/{id}/deliveries"))),
            ] {
                let (status, body) = d.send_as(key, req).await;
                assert_eq!(status, StatusCode::OK, "{body}");
                assert!(body.get("secret").is_none(), "{body}");
            }
            for req in [
                d.client().patch(d.url(&format!("/v1/webhooks/{id}"))).json(&json!({"disabled": true})),
                d.client().delete(d.url(&format!("/v1/webhooks/{id}"))),
                d.client().post(d.url(&format!("/v1/webhooks/{id}/rotate-secret"))),
                d.client().post(d.url(&format!("/v1/webhooks/{id}/replay"))).json(&json!({"since": "2026-01-01T00:00:00Z"})),
            ] {
                let (status, body) = d.send_as(key, req).await;
                assert_eq!(status, StatusCode::FORBIDDEN, "{body}");
            }
        }
        assert_eq!(endpoint(&d, &id).await["disabled"], false);

        // Bad input changes nothing: a URL that is not absolute http(s), an
        // unknown event type (named), an empty filter.
        for (body, needle) in [
            (json!({"url": "ftp://x.example/hook"}), "url"),
            (json!({"url": "/relative"}), "url"),
            (json!({"url": "https://x.example/h", "event_types": ["invitation.sent", "invitation.nope", "bogus"]}), "invitation.nope, bogus"),
            (json!({"url": "https://x.example/h", "event_types": []}), "event_types"),
        ] {
            let (status, problem) = admin(&d, d.client().post(d.url("/v1/webhooks")).json(&body)).await;
            assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{body}: {problem}");
            assert!(problem.to_string().contains(needle), "{problem}");
        }
        let (status, problem) = admin(
            &d,
            d.client().patch(d.url(&format!("/v1/webhooks/{id}"))).json(&json!({"event_types": ["nope.never"]})),
        )
        .await;
        assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{problem}");
        assert!(problem.to_string().contains("nope.never"), "{problem}");
        let (status, _) = admin(
            &d,
            d.client().post(d.url(&format!("/v1/webhooks/{id}/replay"))).json(&json!({"since": "yesterday"})),
        )
        .await;
        assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
        assert_eq!(db.count("SELECT count(*) FROM webhook_endpoints").await, 1);

        let (status, _) = admin(&d, d.client().delete(d.url(&format!("/v1/webhooks/{id}")))).await;
        assert_eq!(status, StatusCode::NO_CONTENT);
        let (status, _) = admin(&d, d.client().get(d.url(&format!("/v1/webhooks/{id}")))).await;
        assert_eq!(status, StatusCode::NOT_FOUND);
        d.stop().await;
    }
}

async fn create_endpoint(d: &TestDaemon, body: Value) -> (String, String) {
    create(d, body).await
}

both_stores! {
    /// Every delivery passes the reference verifier with the endpoint's
    /// secret (and fails it with another); after a rotation both secrets
    /// verify; the secret is never in a GET answer.
    async fn deliveries_pass_the_reference_verifier_also_during_a_rotation(db: Db) {
        let d = daemon(&db, None).await;
        let b = setup(&d).await;
        let r = Receiver::default();
        let url = receiver(&r).await;
        let (id, secret) = create(&d, json!({"url": url, "description": "app"})).await;
        use base64::Engine as _;
        let key = base64::engine::general_purpose::STANDARD
            .decode(secret.strip_prefix("whsec_").expect("whsec_ prefix"))
            .unwrap();
        assert!(key.len() >= 24, "{secret}");

        for path in ["/v1/webhooks".to_string(), format!("/v1/webhooks/{id}")] {
            let resp = d.client().get(d.url(&path)).bearer_auth(ADMIN_KEY).send().await.unwrap();
            let text = resp.text().await.unwrap();
            assert!(!text.contains(&secret) && !text.contains("\"secret\""), "{text}");
        }

        invite(&d, &b, "ann@example.test").await;
        until(WAIT, "created and sent delivered", || r.delivered().len() >= 2).await;
        let other = "whsec_".to_string()
            + &base64::engine::general_purpose::STANDARD.encode([7u8; 32]);
        for hit in r.delivered() {
            assert_eq!(hit.header("webhook-id"), hit.id());
            let ts: i64 = hit.header("webhook-timestamp").parse().unwrap();
            assert!((chrono::Utc::now().timestamp() - ts).abs() < 60);
            assert!(reference_verifies(&secret, &hit), "{hit:?}");
            assert!(!reference_verifies(&other, &hit), "a wrong secret must fail");
            assert!(invited::events::verify_signature(
                secret.as_bytes(),
                hit.header("invited-signature"),
                &hit.body
            ));
        }

        let (status, rotated) = admin(&d, d.client().post(d.url(&format!("/v1/webhooks/{id}/rotate-secret")))).await;
        assert_eq!(status, StatusCode::OK, "{rotated}");
        let new_secret = rotated["secret"].as_str().unwrap().to_string();
        assert!(new_secret.starts_with("whsec_") && new_secret != secret);
        let before = r.delivered().len();
        invite(&d, &b, "bob@example.test").await;
        until(WAIT, "events after the rotation", || r.delivered().len() >= before + 2).await;
        for hit in &r.delivered()[before..] {
            assert_eq!(hit.header("webhook-signature").split(' ').count(), 2, "{hit:?}");
            assert!(reference_verifies(&new_secret, hit), "new secret: {hit:?}");
            assert!(reference_verifies(&secret, hit), "old secret during the 24 h: {hit:?}");
            assert!(!reference_verifies(&other, hit));
        }
        let text = d.client().get(d.url(&format!("/v1/webhooks/{id}"))).bearer_auth(ADMIN_KEY)
            .send().await.unwrap().text().await.unwrap();
        assert!(!text.contains(&new_secret) && !text.contains(&secret), "{text}");

        // Each attempt is recorded, with its status (once the attempt is
        // over, just after the receiver saw it).
        let page = eventually(WAIT, "every attempt recorded", || async {
            let (status, page) = admin(&d, d.client().get(d.url(&format!("/v1/webhooks/{id}/deliveries?limit=500")))).await;
            assert_eq!(status, StatusCode::OK, "{page}");
            if page["items"].as_array().unwrap().len() == r.hits().len() { Ok(page) } else { Err(page.to_string()) }
        })
        .await;
        let items = page["items"].as_array().unwrap();
        let recorded: Vec<&str> = items.iter().map(|i| i["event_id"].as_str().unwrap()).collect();
        assert_eq!(recorded, r.hits().iter().map(Hit::id).collect::<Vec<_>>());
        assert!(items.iter().all(|i| i["status"] == 200 && i["error"].is_null()), "{page}");
        let (_, first) = admin(&d, d.client().get(d.url(&format!("/v1/webhooks/{id}/deliveries?limit=1")))).await;
        let cursor = first["next_cursor"].as_str().expect("a next page").to_string();
        let (_, second) = admin(&d, d.client().get(d.url(&format!("/v1/webhooks/{id}/deliveries?limit=1&cursor={cursor}")))).await;
        assert_eq!(second["items"][0]["event_id"], items[1]["event_id"]);
        d.stop().await;
    }
}

both_stores! {
    /// A `410` disables its endpoint; one answering `500` is retried without
    /// holding up a healthy one, and gets everything in order once it
    /// recovers; a disabled endpoint resumes where it stopped.
    async fn one_failing_endpoint_holds_up_no_other_and_410_disables(db: Db) {
        let d = daemon(&db, None).await;
        let b = setup(&d).await;
        let (healthy, failing, gone) = (Receiver::default(), Receiver::default(), Receiver::default());
        failing.answering(500);
        gone.answering(410);
        let (_, _) = create(&d, json!({"url": receiver(&healthy).await})).await;
        let (failing_id, _) = create(&d, json!({"url": receiver(&failing).await})).await;
        let (gone_id, _) = create(&d, json!({"url": receiver(&gone).await})).await;
        let baseline = db.count("SELECT count(*) FROM events").await;

        for n in 0..3 {
            invite(&d, &b, &format!("guest{n}@example.test")).await;
        }
        // Three created and three sent.
        until(WAIT, "the healthy endpoint has every event", || healthy.delivered().len() >= 6).await;
        assert_eq!(db.count("SELECT count(*) FROM events").await - baseline, 6);
        until(WAIT, "the failing endpoint was retried", || failing.hits().len() >= 2).await;
        assert!(failing.delivered().is_empty());
        // It retries the first event only: order is kept.
        let first = failing.hits()[0].id();
        assert!(failing.hits().iter().all(|h| h.id() == first));
        let seen = endpoint_until(&d, &failing_id, |e| e["last_error"].is_string()).await;
        assert_eq!(seen["disabled"], false);
        assert!(seen["last_error"].as_str().unwrap().contains("500"), "{seen}");
        assert!(seen["lag"].as_u64().unwrap() >= 6, "{seen}");

        let off = endpoint_until(&d, &gone_id, |e| e["disabled"] == true).await;
        assert!(off["disabled_reason"].as_str().unwrap().contains("410"), "{off}");
        assert_eq!(gone.hits().len(), 1, "no attempt after the 410");

        failing.answering(0);
        until(WAIT, "the recovered endpoint catches up", || failing.delivered().len() >= 6).await;
        assert_eq!(failing.delivered_ids(), healthy.delivered_ids(), "the same order");
        let caught_up = endpoint_until(&d, &failing_id, |e| e["lag"] == 0).await;
        assert!(caught_up["last_error"].is_null() && caught_up["last_success_at"].is_string());

        // Re-enabled, the 410 endpoint gets what it missed, from where it stopped.
        gone.answering(0);
        let (status, on) = admin(&d, d.client().patch(d.url(&format!("/v1/webhooks/{gone_id}"))).json(&json!({"disabled": false}))).await;
        assert_eq!(status, StatusCode::OK, "{on}");
        assert!(on["disabled_reason"].is_null());
        until(WAIT, "the re-enabled endpoint catches up", || gone.delivered().len() >= 6).await;
        assert_eq!(gone.delivered_ids(), healthy.delivered_ids());
        d.stop().await;
    }
}

both_stores! {
    /// Replay sends the events since a time again, in their order; a filter
    /// keeps the other types out.
    async fn replay_resends_in_order_and_filters_apply(db: Db) {
        let d = daemon(&db, None).await;
        let b = setup(&d).await;
        let (all, created_only) = (Receiver::default(), Receiver::default());
        let (all_id, _) = create(&d, json!({"url": receiver(&all).await})).await;
        let (_, _) = create(&d, json!({"url": receiver(&created_only).await, "event_types": ["invitation.created"]})).await;
        for n in 0..3 {
            invite(&d, &b, &format!("guest{n}@example.test")).await;
        }
        until(WAIT, "every event", || all.delivered().len() >= 6).await;
        until(WAIT, "the created events", || created_only.delivered().len() >= 3).await;
        let first_pass = all.delivered_ids();
        // From the first event it got: the business's events before it are
        // not sent (they occurred earlier).
        let since = all.delivered()[0].json()["occurred_at"].as_str().unwrap().to_string();
        let (status, _) = admin(
            &d,
            d.client().post(d.url(&format!("/v1/webhooks/{all_id}/replay"))).json(&json!({"since": since})),
        )
        .await;
        assert_eq!(status, StatusCode::ACCEPTED);
        until(WAIT, "every event again", || all.delivered().len() >= 12).await;
        assert_eq!(all.delivered_ids()[6..], first_pass[..], "replayed in order");
        assert!(created_only.delivered().iter().all(|h| h.event_type() == "invitation.created"));
        assert_eq!(created_only.delivered().len(), 3);
        d.stop().await;
    }
}

both_stores! {
    /// `Retry-After` on a 429 is honoured (the backoff alone is under a
    /// second here), and an endpoint failing for `webhooks.disable_after`
    /// is disabled.
    async fn retry_after_is_honoured_and_failing_for_disable_after_disables(db: Db) {
        let d = daemon(&db, Some(Duration::from_secs(2))).await;
        let b = setup(&d).await;
        let (slow, dead) = (Receiver::default(), Receiver::default());
        slow.answering(429);
        slow.retry_after.store(3, Ordering::SeqCst);
        dead.answering(503);
        let (_, _) = create(&d, json!({"url": receiver(&slow).await})).await;
        let (dead_id, _) = create(&d, json!({"url": receiver(&dead).await})).await;
        invite(&d, &b, "ann@example.test").await;
        until(WAIT, "the 429", || !slow.hits().is_empty()).await;
        slow.answering(0);
        until(WAIT, "the retry", || slow.hits().len() >= 2).await;
        let hits = slow.hits();
        let waited = hits[1].at - hits[0].at;
        assert!(waited >= Duration::from_millis(2900), "retried after {waited:?}");

        let off = endpoint_until(&d, &dead_id, |e| e["disabled"] == true).await;
        assert!(off["disabled_reason"].as_str().unwrap().contains("disable_after"), "{off}");
        assert!(dead.hits().len() >= 2);
        d.stop().await;
    }
}

both_stores! {
    /// The endpoints of the configuration file get the Standard Webhooks
    /// headers too: a `whsec_<base64>` secret keys them as the spec says,
    /// any other secret with its own bytes.
    async fn configured_webhooks_carry_the_standard_headers(db: Db) {
        use base64::Engine as _;
        let (plain, standard) = (Receiver::default(), Receiver::default());
        let plain_url = receiver(&plain).await;
        let standard_url = receiver(&standard).await;
        let plain_secret = "plain-secret-0123456789".to_string();
        let standard_secret =
            "whsec_".to_string() + &base64::engine::general_purpose::STANDARD.encode([42u8; 24]);
        let secrets = (plain_secret.clone(), standard_secret.clone());
        let d = TestDaemon::start_with(&db, SmtpSink::start(), move |config| {
            config.events.poll_interval = Duration::from_millis(200);
            config.webhooks = vec![
                invited::config::WebhookConfig { url: plain_url, secret: secrets.0 },
                invited::config::WebhookConfig { url: standard_url, secret: secrets.1 },
            ];
        })
        .await;
        let b = setup(&d).await;
        invite(&d, &b, "ann@example.test").await;
        until(WAIT, "both configured webhooks get the events", || {
            plain.delivered().len() >= 2 && standard.delivered().len() >= 2
        })
        .await;
        for hit in plain.delivered() {
            assert!(verify_with(&plain_secret, true, &hit), "{hit:?}");
            assert!(!verify_with("other-secret-0123456789", true, &hit));
        }
        for hit in standard.delivered() {
            assert!(reference_verifies(&standard_secret, &hit), "{hit:?}");
            assert!(!verify_with(&standard_secret, true, &hit));
        }
        // They are not endpoints of the API.
        let (_, list) = admin(&d, d.client().get(d.url("/v1/webhooks"))).await;
        assert_eq!(list, json!({"items": []}));
        d.stop().await;
    }
}

both_stores! {
    /// An operator's pause holds the events back (they wait, counted in
    /// `lag`); a new URL and resuming send them there, from where it stopped.
    async fn a_paused_endpoint_resumes_where_it_stopped_at_its_new_url(db: Db) {
        let d = daemon(&db, None).await;
        let b = setup(&d).await;
        let (before, after) = (Receiver::default(), Receiver::default());
        let (id, _) = create(&d, json!({"url": receiver(&before).await})).await;
        invite(&d, &b, "ann@example.test").await;
        until(WAIT, "the first two events", || before.delivered().len() >= 2).await;
        let (status, paused) = admin(&d, d.client().patch(d.url(&format!("/v1/webhooks/{id}"))).json(&json!({"disabled": true}))).await;
        assert_eq!(status, StatusCode::OK, "{paused}");
        assert_eq!(paused["disabled"], true);
        assert!(paused["disabled_reason"].as_str().unwrap().contains("operator"), "{paused}");

        invite(&d, &b, "bob@example.test").await;
        endpoint_until(&d, &id, |e| e["lag"] == 2).await;
        assert_eq!(before.hits().len(), 2, "nothing is sent while paused");

        let url = receiver(&after).await;
        after.answering(204);
        let (status, resumed) = admin(
            &d,
            d.client().patch(d.url(&format!("/v1/webhooks/{id}"))).json(&json!({"url": url, "disabled": false})),
        )
        .await;
        assert_eq!(status, StatusCode::OK, "{resumed}");
        assert_eq!(resumed["url"], url.as_str());
        until(WAIT, "the held events at the new URL", || after.delivered().len() >= 2).await;
        endpoint_until(&d, &id, |e| e["lag"] == 0).await;
        let mut all = before.delivered_ids();
        all.extend(after.delivered_ids());
        let unique: std::collections::BTreeSet<_> = all.iter().collect();
        assert_eq!((all.len(), unique.len()), (4, 4), "each event once: {all:?}");
        assert_eq!(before.hits().len(), 2);
        // Each attempt with the status the endpoint answered.
        let (_, page) = admin(&d, d.client().get(d.url(&format!("/v1/webhooks/{id}/deliveries")))).await;
        let statuses: Vec<&Value> = page["items"].as_array().unwrap().iter().map(|i| &i["status"]).collect();
        assert_eq!(statuses, [&json!(200), &json!(200), &json!(204), &json!(204)], "{page}");

        // The chores forget attempts older than 30 days, and only those.
        let attempts = db.count("SELECT count(*) FROM webhook_deliveries").await;
        assert_eq!(attempts, 4);
        db.exec(
            "UPDATE webhook_deliveries SET attempted_at = $1 WHERE event_id IN
               (SELECT event_id FROM webhook_deliveries ORDER BY id LIMIT 2)",
            &[support::db::ago(31 * 86_400)],
        )
        .await;
        let report = d.app.as_ref().unwrap().services.run_chores().await.unwrap();
        assert_eq!(report.webhook_attempts_purged, 2);
        assert_eq!(db.count("SELECT count(*) FROM webhook_deliveries").await, 2);

        // Deleted, it gets nothing more and leaves no cursor behind.
        let witness = Receiver::default();
        let (_, _) = create(&d, json!({"url": receiver(&witness).await})).await;
        let (status, _) = admin(&d, d.client().delete(d.url(&format!("/v1/webhooks/{id}")))).await;
        assert_eq!(status, StatusCode::NO_CONTENT);
        invite(&d, &b, "cyd@example.test").await;
        until(WAIT, "the other endpoint's events", || witness.delivered().len() >= 2).await;
        assert_eq!(after.hits().len(), 2);
        // A pass under way when it was deleted may make its cursor again,
        // and removes it before it ends.
        let cursor = format!("SELECT count(*) FROM event_cursors WHERE sink = 'endpoint:{id}'");
        eventually(WAIT, "the deleted endpoint's cursor removed", || async {
            match db.count(&cursor).await {
                0 => Ok(()),
                n => Err(format!("{n} cursor(s)")),
            }
        })
        .await;
        assert_eq!(db.count("SELECT count(*) FROM webhook_deliveries").await, 2);
        d.stop().await;
    }
}

both_stores! {
    /// R48: an event the endpoint took just as an operator paused it is not
    /// sent again on resume. The receiver holds its 200 until the pause has
    /// committed, so the daemon learns of the delivery only after the pause:
    /// the order in which the race once sent an event twice.
    async fn an_event_taken_as_the_endpoint_is_paused_is_not_sent_again(db: Db) {
        let d = daemon(&db, None).await;
        let b = setup(&d).await;
        let (before, after) = (Receiver::default(), Receiver::default());
        before.hold();
        let (id, _) = create(&d, json!({"url": receiver(&before).await})).await;
        invite(&d, &b, "ann@example.test").await;
        until(WAIT, "the first event at the receiver, its reply held", || before.hits().len() == 1).await;

        let (status, paused) = admin(&d, d.client().patch(d.url(&format!("/v1/webhooks/{id}"))).json(&json!({"disabled": true}))).await;
        assert_eq!(status, StatusCode::OK, "{paused}");
        before.release();
        // The held attempt is recorded as delivered, and nothing more is sent.
        eventually(WAIT, "the held attempt recorded", || async {
            let (_, page) = admin(&d, d.client().get(d.url(&format!("/v1/webhooks/{id}/deliveries")))).await;
            match page["items"].as_array().map(Vec::len) {
                Some(1) => Ok(page),
                _ => Err(page.to_string()),
            }
        })
        .await;
        let held = before.delivered_ids();
        assert_eq!(held.len(), 1, "{held:?}");

        let url = receiver(&after).await;
        let (status, resumed) = admin(
            &d,
            d.client().patch(d.url(&format!("/v1/webhooks/{id}"))).json(&json!({"url": url, "disabled": false})),
        )
        .await;
        assert_eq!(status, StatusCode::OK, "{resumed}");
        invite(&d, &b, "bob@example.test").await;
        until(WAIT, "events at the new URL", || !after.delivered().is_empty()).await;
        endpoint_until(&d, &id, |e| e["lag"] == 0).await;
        let resent = after.delivered_ids();
        assert!(!resent.contains(&held[0]), "the event taken before the pause came again: {resent:?}");
        assert_eq!(before.hits().len(), 1, "nothing more at the old URL");
        d.stop().await;
    }
}
