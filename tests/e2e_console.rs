//! The operator console (R49) in a real browser (headless Chromium through
//! tests/support/browser.rs), on both stores: an operator signs in with an
//! `admin` key, searches by address, opens the invitation, reads its SMTP
//! replies, retries its failed email and sees it sent, with the action in
//! the invitation's timeline; a `read` key sees every page and finds no way
//! to change anything, and its forged POST is refused; a POST without the
//! session's form token (CSRF) is refused. Each page is photographed
//! (`<target dir>/test-output/console_*`; docs/console/ holds copies).

mod support;

use std::time::Duration;

use reqwest::StatusCode;
use reqwest::header::{COOKIE, LOCATION, SET_COOKIE};
use serde_json::json;
use support::browser::Browser;
use support::daemon::{ADMIN_KEY, API_KEY, READ_KEY, TestDaemon};
use support::db::Db;
use support::scenario::{brand, invite, of_type, timeline};
use support::smtp_sink::{Reply, SmtpSink};
use support::wait::eventually;

const WAIT: Duration = Duration::from_secs(20);

/// Waits until the invitation's email (not the inviter's "we couldn't
/// deliver" that follows it, R44) has failed for good.
async fn failed(d: &TestDaemon, id: &str) {
    d.eventually(
        WAIT,
        &format!("/v1/invitations/{id}/timeline?actor_user_id=olive"),
        |body| {
            body["items"].as_array().is_some_and(|items| {
                of_type(items, "notification.failed")
                    .iter()
                    .any(|e| e["data"]["template"] == "member_invitation")
            })
        },
    )
    .await;
}

/// Olive invites two addresses in one request (their emails go out
/// before anything they cause); returns the invitations' ids.
async fn invite_two(d: &TestDaemon, b: &str, first: &str, second: &str) -> (String, String) {
    let (status, body) = d
        .post(
            &format!("/v1/businesses/{b}/invitations"),
            json!({"actor_user_id": "olive", "invitees": [{"email": first}, {"email": second}]}),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    let id = |i: usize| body["items"][i]["id"].as_str().unwrap().to_owned();
    (id(0), id(1))
}

/// The SMTP replies to the invitation email shown on its console page.
async fn invitation_replies(browser: &Browser) -> Vec<String> {
    let cells = browser
        .find_all("tr[data-kind=delivery][data-template=member_invitation] [data-smtp-reply]")
        .await;
    let mut replies = Vec::new();
    for cell in cells {
        replies.push(cell.text().await.unwrap());
    }
    replies
}

const INVITATION_STATUS: &str = "tr[data-template=member_invitation] [data-email-status]";

/// A webhook receiver that answers every request `204` (and counts them).
async fn accepting_receiver() -> String {
    use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}/events", listener.local_addr().unwrap());
    tokio::spawn(async move {
        while let Ok((mut socket, _)) = listener.accept().await {
            tokio::spawn(async move {
                let mut request = Vec::new();
                let mut chunk = [0; 4096];
                // One request per connection: the headers, then the body
                // its Content-Length announces.
                loop {
                    let Ok(n) = socket.read(&mut chunk).await else {
                        return;
                    };
                    if n == 0 {
                        return;
                    }
                    request.extend_from_slice(&chunk[..n]);
                    let text = String::from_utf8_lossy(&request);
                    if let Some((head, body)) = text.split_once("\r\n\r\n") {
                        let length = head
                            .lines()
                            .filter_map(|l| l.split_once(':'))
                            .find(|(k, _)| k.eq_ignore_ascii_case("content-length"))
                            .and_then(|(_, v)| v.trim().parse::<usize>().ok())
                            .unwrap_or(0);
                        if body.len() >= length {
                            break;
                        }
                    }
                }
                let _ = socket
                    .write_all(b"HTTP/1.1 204 No Content\r\nConnection: close\r\n\r\n")
                    .await;
            });
        }
    });
    url
}

/// The screenshots' directory name for this test on this store.
/// A runtime webhook endpoint (R48) that takes every event, added with the
/// admin key; answers its id.
async fn add_endpoint(d: &TestDaemon, description: &str) -> String {
    let (status, body) = d
        .send_as(
            ADMIN_KEY,
            d.client()
                .post(d.url("/v1/webhooks"))
                .json(&json!({"url": accepting_receiver().await, "description": description})),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    body["id"].as_str().unwrap().to_owned()
}

fn shots(test: &str, db: &Db) -> String {
    format!(
        "{test}_{}",
        if db.is_sqlite() { "sqlite" } else { "postgres" }
    )
}

/// Signs in through the form with `key`; lands on the search page.
async fn sign_in(browser: &Browser, d: &TestDaemon, key: &str) {
    browser.goto(&d.url("/console")).await;
    browser.wait_for("main[data-page=login]").await;
    browser
        .find("input[name=key]")
        .await
        .send_keys(key)
        .await
        .unwrap();
    browser
        .find("main button[type=submit]")
        .await
        .click()
        .await
        .unwrap();
    browser.wait_for("main[data-page=search]").await;
}

async fn text(browser: &Browser, css: &str) -> String {
    browser.find(css).await.text().await.unwrap()
}

/// A client that shows redirects instead of following them.
fn raw_client() -> reqwest::Client {
    reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap()
}

/// `name=value` of the cookie `name` a response sets.
fn set_cookie(response: &reqwest::Response, name: &str) -> Option<String> {
    response
        .headers()
        .get_all(SET_COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .map(|v| v.split(';').next().unwrap_or("").to_owned())
        .find(|pair| pair.starts_with(&format!("{name}=")))
}

/// The value of `<input name=csrf>` in an HTML page.
fn csrf_in(html: &str) -> String {
    let at = html.find("name=\"csrf\" value=\"").expect("a form token") + 19;
    html[at..at + html[at..].find('"').unwrap()].to_owned()
}

/// Signs in over plain HTTP (no browser); returns the session cookie and
/// the session's form token.
async fn sign_in_raw(d: &TestDaemon, key: &str) -> (String, String) {
    let client = raw_client();
    let form = client.get(d.url("/console/login")).send().await.unwrap();
    let login_cookie = set_cookie(&form, "invited_console_login").expect("the form's cookie");
    let token = csrf_in(&form.text().await.unwrap());
    let signed_in = client
        .post(d.url("/console/login"))
        .header(COOKIE, &login_cookie)
        .form(&[("key", key), ("csrf", &token)])
        .send()
        .await
        .unwrap();
    assert_eq!(signed_in.status(), StatusCode::SEE_OTHER);
    let session = set_cookie(&signed_in, "invited_console").expect("a session cookie");
    let page = client
        .get(d.url("/console/search"))
        .header(COOKIE, &session)
        .send()
        .await
        .unwrap();
    assert_eq!(page.status(), StatusCode::OK);
    let csrf = csrf_in(&page.text().await.unwrap());
    (session, csrf)
}

async fn email_status(d: &TestDaemon, id: &str) -> Option<String> {
    support::scenario::invitation(d, id).await["delivery"]["status"]
        .as_str()
        .map(str::to_owned)
}

both_stores! {
    /// R49: sign in, search by address, open the invitation, read its SMTP
    /// replies, retry its failed email and see it sent, with the
    /// `console.action` in its timeline; retry all matching after seeing
    /// the count; every page once; sign out.
    async fn an_operator_retries_a_failed_delivery_in_the_console(db: Db) {
        let d = TestDaemon::start_with(
            &db,
            SmtpSink::start_with(vec![Reply::Permanent, Reply::Permanent]),
            |_| {},
        )
        .await;
        // An endpoint that takes every event, from before the invitations.
        let archive = format!("endpoint:{}", add_endpoint(&d, "the archive").await);
        let b = brand(&d).await;
        let (first, second) =
            invite_two(&d, &b, "guest@example.test", "other@example.test").await;
        failed(&d, &first).await;
        failed(&d, &second).await;
        // Something on the webhook and suppression pages.
        let (status, body) = d
            .send_as(
                ADMIN_KEY,
                d.client().post(d.url("/v1/webhooks")).json(&json!({
                    "url": format!("http://127.0.0.1:{}/hook", SmtpSink::closed_port()),
                    "description": "the CRM",
                })),
            )
            .await;
        assert_eq!(status, StatusCode::CREATED, "{body}");
        let (status, body) = d
            .send_as(
                ADMIN_KEY,
                d.client()
                    .post(d.url("/v1/suppressions"))
                    .json(&json!({"email": "gone@example.test"})),
            )
            .await;
        assert_eq!(status, StatusCode::CREATED, "{body}");

        let browser = Browser::start(&shots("console_operator", &db)).await;
        browser.set_viewport(1280, 900).await;
        // No session: the sign-in page.
        browser.goto(&d.url("/console")).await;
        browser.wait_for("main[data-page=login]").await;
        browser.screenshot("login").await;
        sign_in(&browser, &d, ADMIN_KEY).await;
        assert_eq!(text(&browser, "[data-key-name]").await, "operator");

        // Search by address.
        browser
            .find("input[name=q]")
            .await
            .send_keys("Guest@Example.test")
            .await
            .unwrap();
        browser
            .find("form[role=search] button")
            .await
            .click()
            .await
            .unwrap();
        let link = browser
            .wait_for(&format!("a[data-invitation='{first}']"))
            .await;
        assert_eq!(
            browser.find_all("[data-results=invitations] tbody tr").await.len(),
            1
        );
        browser.screenshot("search").await;

        // The invitation: its failed attempt with the server's reply.
        link.click().await.unwrap();
        browser.wait_for("main[data-page=invitation]").await;
        let replies = invitation_replies(&browser).await;
        assert_eq!(replies.len(), 1, "{replies:?}");
        assert!(replies[0].starts_with("550 "), "{replies:?}");
        assert_eq!(text(&browser, INVITATION_STATUS).await, "failed");
        browser.screenshot("invitation-failed").await;

        // Retry it: it is sent, and the timeline says who retried it.
        browser
            .find("form[data-action=retry] button")
            .await
            .click()
            .await
            .unwrap();
        browser.wait_for("main[data-page=invitation]").await;
        eventually(WAIT, "the retried email is sent", || async {
            match email_status(&d, &first).await.as_deref() {
                Some("sent") => Ok(()),
                other => Err(format!("{other:?}")),
            }
        })
        .await;
        // Every event of the invitation, the console.action too, reaches the
        // archive, and the page says so.
        eventually(WAIT, "the archive takes every event", || async {
            browser.goto(&d.url(&format!("/console/invitations/{first}"))).await;
            browser.wait_for("main[data-page=invitation]").await;
            let mut cells = Vec::new();
            for cell in browser.find_all("[data-taken-by]").await {
                cells.push(cell.text().await.unwrap());
            }
            if cells.len() >= 4 && cells.iter().all(|c| c.contains(&archive)) {
                Ok(())
            } else {
                Err(format!("{cells:?}"))
            }
        })
        .await;
        assert_eq!(text(&browser, INVITATION_STATUS).await, "sent");
        let replies = invitation_replies(&browser).await;
        assert_eq!(replies.len(), 2, "the failed attempt and the one that sent it: {replies:?}");
        assert!(replies[1].starts_with("250"), "{replies:?}");
        let types = futures::future::join_all(
            browser
                .find_all("[data-event-type]")
                .await
                .into_iter()
                .map(|e| async move { e.text().await.unwrap() }),
        )
        .await;
        assert!(types.contains(&"console.action".to_string()), "{types:?}");
        browser.screenshot("invitation").await;
        let items = timeline(&d, &first).await;
        let actions = of_type(&items, "console.action");
        assert_eq!(actions.len(), 1, "{items:?}");
        assert_eq!(actions[0]["data"]["key_name"], "operator");
        assert_eq!(actions[0]["data"]["action"], "retry_email");

        // The business.
        browser.goto(&d.url(&format!("/console/businesses/{b}"))).await;
        browser.wait_for("main[data-page=business]").await;
        assert!(text(&browser, "[data-quota]").await.starts_with("2 of "));
        // Olive and the two pending invitations.
        assert!(text(&browser, "[data-seats]").await.starts_with("3 used"));
        browser.screenshot("business").await;

        // The outboxes, with the last hour's chart.
        browser.goto(&d.url("/console/outbox")).await;
        browser.wait_for("main[data-page=outbox] svg[data-chart=emails]").await;
        let bars = browser.find_all("svg[data-chart=emails] rect").await;
        assert!(bars.len() >= 2, "sent and failed bars");
        browser.find("svg[data-chart=webhooks]").await;
        browser.screenshot("outbox").await;

        // Failed deliveries: retry all matching, after seeing the count.
        browser.goto(&d.url("/console/failed")).await;
        browser.wait_for("main[data-page=failed]").await;
        assert!(text(&browser, "[data-failed-total]").await.starts_with("1 failed"));
        browser.screenshot("failed").await;
        browser.find("a[data-retry-all]").await.click().await.unwrap();
        let count = browser.wait_for("[data-retry-count]").await;
        assert_eq!(count.attr("data-retry-count").await.unwrap().as_deref(), Some("1"));
        browser.screenshot("retry-all").await;
        browser
            .find("form[data-action=retry-all] button")
            .await
            .click()
            .await
            .unwrap();
        browser.wait_for("main[data-page=failed]").await;
        eventually(WAIT, "the other email is sent", || async {
            match email_status(&d, &second).await.as_deref() {
                Some("sent") => Ok(()),
                other => Err(format!("{other:?}")),
            }
        })
        .await;

        // Webhook endpoints and the suppression list.
        browser.goto(&d.url("/console/webhooks")).await;
        browser.wait_for("main[data-page=webhooks] tr[data-endpoint]").await;
        browser.find("form[data-action=pause] button").await.click().await.unwrap();
        browser.wait_for("form[data-action=resume]").await;
        // The pause is a console.action, shown beside its endpoint.
        let paused = browser
            .wait_for("[data-console-action=pause_webhook][data-key=operator]")
            .await;
        assert!(paused.text().await.unwrap().contains("paused by operator"));
        browser.screenshot("webhooks").await;
        browser.goto(&d.url("/console/suppressions")).await;
        browser.wait_for("main[data-page=suppressions] [data-suppressions]").await;
        browser.screenshot("suppressions").await;

        // Sign out: the session is gone.
        browser.find("form[data-signout] button").await.click().await.unwrap();
        browser.wait_for("main[data-page=login]").await;
        browser.goto(&d.url("/console/outbox")).await;
        browser.wait_for("main[data-page=login]").await;
        browser.close().await;
        d.stop().await;
    }
}

both_stores! {
    /// R49 with R47: a `read` key sees every page and no form on any of
    /// them changes anything; a POST forged with its session (or a `write`
    /// key's) is refused;
    /// an `admin` POST without the form token is refused, and the same
    /// POST with it goes through.
    async fn a_read_key_changes_nothing_and_forms_need_their_token(db: Db) {
        let d = TestDaemon::start_with(&db, SmtpSink::start_with(vec![Reply::Permanent]), |_| {})
            .await;
        let b = brand(&d).await;
        let id = invite(&d, &b, "guest@example.test").await;
        failed(&d, &id).await;

        let browser = Browser::start(&shots("console_read_key", &db)).await;
        browser.set_viewport(1280, 900).await;
        sign_in(&browser, &d, READ_KEY).await;
        assert_eq!(text(&browser, "[data-key-name]").await, "support");
        for (path, page) in [
            ("/console/search?q=guest%40example.test".to_string(), "search"),
            (format!("/console/invitations/{id}"), "invitation"),
            (format!("/console/businesses/{b}"), "business"),
            ("/console/outbox".to_string(), "outbox"),
            ("/console/failed".to_string(), "failed"),
            ("/console/failed/retry-all".to_string(), "retry-all"),
            ("/console/webhooks".to_string(), "webhooks"),
            ("/console/suppressions".to_string(), "suppressions"),
        ] {
            browser.goto(&d.url(&path)).await;
            browser.wait_for(&format!("main[data-page={page}]")).await;
            let forms = browser
                .find_all("form[method=post]:not([data-signout]), [data-action], a[data-retry-all]")
                .await;
            assert!(forms.is_empty(), "{page} offers a read key an action");
        }
        browser.goto(&d.url("/console/failed")).await;
        let row = browser.wait_for("tr[data-email]").await;
        let email = row.attr("data-email").await.unwrap().unwrap();
        browser.screenshot("failed-read-only").await;
        browser.close().await;

        let client = raw_client();
        let retry = d.url(&format!("/console/failed/{email}/retry"));
        // A forged POST with the read key's session and its right token.
        let (read_session, read_csrf) = sign_in_raw(&d, READ_KEY).await;
        let forged = client
            .post(&retry)
            .header(COOKIE, &read_session)
            .form(&[("csrf", read_csrf.as_str())])
            .send()
            .await
            .unwrap();
        assert_eq!(forged.status(), StatusCode::FORBIDDEN);
        assert!(forged.text().await.unwrap().contains("admin scope"));
        // An app's `write` key is no operator either (R47: console actions
        // are admin).
        let (write_session, write_csrf) = sign_in_raw(&d, API_KEY).await;
        let refused = client
            .post(&retry)
            .header(COOKIE, &write_session)
            .form(&[("csrf", write_csrf.as_str())])
            .send()
            .await
            .unwrap();
        assert_eq!(refused.status(), StatusCode::FORBIDDEN);

        // An admin session without the token, or with another one.
        let (admin_session, admin_csrf) = sign_in_raw(&d, ADMIN_KEY).await;
        for form in [vec![], vec![("csrf", read_csrf.as_str())]] {
            let refused = client
                .post(&retry)
                .header(COOKIE, &admin_session)
                .form(&form)
                .send()
                .await
                .unwrap();
            assert_eq!(refused.status(), StatusCode::FORBIDDEN);
        }
        // Nothing was retried: still failed, no action in the timeline.
        assert_eq!(email_status(&d, &id).await.as_deref(), Some("failed"));
        assert!(of_type(&timeline(&d, &id).await, "console.action").is_empty());
        // A sign-in without the form's token is refused too.
        let no_token = client
            .post(d.url("/console/login"))
            .form(&[("key", ADMIN_KEY)])
            .send()
            .await
            .unwrap();
        assert_eq!(no_token.status(), StatusCode::FORBIDDEN);
        assert!(set_cookie(&no_token, "invited_console").is_none());

        // The same POST with the token goes through.
        let done = client
            .post(&retry)
            .header(COOKIE, &admin_session)
            .form(&[("csrf", admin_csrf.as_str())])
            .send()
            .await
            .unwrap();
        assert_eq!(done.status(), StatusCode::SEE_OTHER);
        assert_eq!(done.headers()[LOCATION], "/console/failed");
        eventually(WAIT, "the retried email is sent", || async {
            match email_status(&d, &id).await.as_deref() {
                Some("sent") => Ok(()),
                other => Err(format!("{other:?}")),
            }
        })
        .await;
        d.stop().await;
    }
}

both_stores! {
    /// A session that ends elsewhere (signed out on another replica, its
    /// row gone) shows nothing more here, though this process has just seen
    /// it live and starts a page's reads beside the session's check.
    async fn a_session_ended_on_another_replica_shows_nothing_more(db: Db) {
        let d = TestDaemon::start(&db).await;
        let b = brand(&d).await;
        let id = invite(&d, &b, "guest@example.test").await;
        let (session, _) = sign_in_raw(&d, READ_KEY).await;
        let client = raw_client();
        let pages = [
            format!("/console/invitations/{id}"),
            format!("/console/businesses/{b}"),
            "/console/search?q=guest@example.test".to_owned(),
            "/console/outbox".to_owned(),
            "/console/failed".to_owned(),
            "/console/webhooks".to_owned(),
            "/console/suppressions".to_owned(),
        ];
        for page in &pages {
            let shown = client.get(d.url(page)).header(COOKIE, &session).send().await.unwrap();
            assert_eq!(shown.status(), StatusCode::OK, "{page}");
        }
        assert_eq!(db.exec("DELETE FROM console_sessions", &[]).await, 1);
        for page in &pages {
            let refused = client.get(d.url(page)).header(COOKIE, &session).send().await.unwrap();
            assert_eq!(refused.status(), StatusCode::SEE_OTHER, "{page}");
            assert_eq!(refused.headers()[LOCATION], "/console/login", "{page}");
            let body = refused.text().await.unwrap();
            assert!(!body.contains("guest@example.test"), "{page}: {body}");
        }
        d.stop().await;
    }
}

/// The session cookie is HttpOnly and SameSite=Strict, and Secure when a
/// proxy says the request came over https.
#[tokio::test]
async fn the_session_cookie_is_secure_behind_https() {
    let db = Db::sqlite().await;
    let d = TestDaemon::start(&db).await;
    let client = raw_client();
    for (proto, secure) in [(None, false), (Some("https"), true)] {
        let mut get = client.get(d.url("/console/login"));
        if let Some(proto) = proto {
            get = get.header("x-forwarded-proto", proto);
        }
        let form = get.send().await.unwrap();
        let login_cookie = set_cookie(&form, "invited_console_login").unwrap();
        let token = csrf_in(&form.text().await.unwrap());
        let mut post = client
            .post(d.url("/console/login"))
            .header(COOKIE, &login_cookie)
            .form(&[("key", READ_KEY), ("csrf", &token)]);
        if let Some(proto) = proto {
            post = post.header("x-forwarded-proto", proto);
        }
        let signed_in = post.send().await.unwrap();
        let header = signed_in
            .headers()
            .get_all(SET_COOKIE)
            .iter()
            .map(|v| v.to_str().unwrap().to_owned())
            .find(|v| v.starts_with("invited_console="))
            .expect("a session cookie");
        assert!(header.contains("HttpOnly"), "{header}");
        assert!(header.contains("SameSite=Strict"), "{header}");
        assert_eq!(header.contains("Secure"), secure, "{header}");
    }
    // An unknown key signs nobody in.
    let form = client.get(d.url("/console/login")).send().await.unwrap();
    let login_cookie = set_cookie(&form, "invited_console_login").unwrap();
    let token = csrf_in(&form.text().await.unwrap());
    let refused = client
        .post(d.url("/console/login"))
        .header(COOKIE, &login_cookie)
        .form(&[("key", "not-a-key"), ("csrf", &token)])
        .send()
        .await
        .unwrap();
    assert_eq!(refused.status(), StatusCode::UNAUTHORIZED);
    assert!(set_cookie(&refused, "invited_console").is_none());
    d.stop().await;
}

const NATS: &str = "nats://127.0.0.1:4222";

/// A configured webhook's receiver that answers `500` to its first
/// `fail_first` requests and `200` afterwards, keeping each request's
/// answer and event.
#[derive(Clone, Default)]
struct FlakyHook {
    hits: std::sync::Arc<std::sync::Mutex<Vec<(u16, serde_json::Value)>>>,
    fail_first: std::sync::Arc<std::sync::atomic::AtomicUsize>,
}

impl FlakyHook {
    async fn start(fail_first: usize) -> (FlakyHook, String) {
        let hook = FlakyHook::default();
        hook.fail_first
            .store(fail_first, std::sync::atomic::Ordering::SeqCst);
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}/hook", listener.local_addr().unwrap());
        let app = axum::Router::new()
            .route("/hook", axum::routing::post(flaky))
            .with_state(hook.clone());
        tokio::spawn(async move {
            axum::serve(listener, app).await.unwrap();
        });
        (hook, url)
    }

    fn hits(&self) -> Vec<(u16, serde_json::Value)> {
        self.hits.lock().unwrap().clone()
    }

    /// The events it answered 2xx, by id.
    fn delivered_ids(&self) -> std::collections::BTreeSet<String> {
        self.hits()
            .iter()
            .filter(|(status, _)| *status == 200)
            .map(|(_, e)| e["id"].as_str().unwrap().to_owned())
            .collect()
    }
}

async fn flaky(
    axum::extract::State(hook): axum::extract::State<FlakyHook>,
    body: axum::body::Bytes,
) -> axum::http::StatusCode {
    use std::sync::atomic::Ordering::SeqCst;
    let failing = hook
        .fail_first
        .fetch_update(SeqCst, SeqCst, |n| n.checked_sub(1))
        .is_ok();
    let status = if failing {
        axum::http::StatusCode::INTERNAL_SERVER_ERROR
    } else {
        axum::http::StatusCode::OK
    };
    let event = serde_json::from_slice(&body).expect("a JSON event");
    hook.hits.lock().unwrap().push((status.as_u16(), event));
    status
}

/// Every message published under `<prefix>.events.>`, as JSON.
fn collect_nats(
    mut sub: async_nats::Subscriber,
) -> std::sync::Arc<std::sync::Mutex<Vec<serde_json::Value>>> {
    use futures::StreamExt as _;
    let got = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
    let into = got.clone();
    tokio::spawn(async move {
        while let Some(message) = sub.next().await {
            let event = serde_json::from_slice(&message.payload).expect("a JSON event");
            into.lock().unwrap().push(event);
        }
    });
    got
}

/// A console form posted with the session's cookie and form token.
async fn console_post(d: &TestDaemon, session: &str, path: &str, form: &[(&str, &str)]) {
    let response = raw_client()
        .post(d.url(path))
        .header(COOKIE, session)
        .form(form)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::SEE_OTHER, "{path}");
}

both_stores! {
    /// R49: pausing, resuming and replaying a webhook endpoint in the
    /// console are each one `console.action` event, with the key's name and
    /// the endpoint's id and no business; they reach a configured webhook
    /// and NATS with `business_id: null`, and both sinks go on delivering
    /// after them; the endpoints page shows who did what. The outbox page
    /// charts the configured webhook's and NATS's deliveries: as many sent
    /// and failed as the receiver answered 2xx and 500, as many sent as
    /// NATS got; and the endpoint's, as many as its recorded deliveries.
    async fn endpoint_actions_are_events_and_every_sink_is_charted(db: Db) {
        let prefix = format!("t{}", uuid::Uuid::now_v7().simple());
        let nats = async_nats::connect(NATS)
            .await
            .expect("NATS runs on 127.0.0.1:4222 (.ci/run starts it)");
        let sub = nats.subscribe(format!("{prefix}.events.>")).await.unwrap();
        nats.flush().await.unwrap();
        let published = collect_nats(sub);
        let (hook, hook_url) = FlakyHook::start(2).await;
        let d = TestDaemon::start_with(&db, SmtpSink::start(), {
            let (prefix, url) = (prefix.clone(), hook_url.clone());
            move |config| {
                config.nats.url = Some(NATS.to_string());
                config.nats.subject_prefix = prefix;
                config.webhooks = vec![invited::config::WebhookConfig {
                    url,
                    secret: "whsec-test-0123456789".into(),
                }];
                config.events.poll_interval = Duration::from_millis(200);
                config.events.initial_backoff = Duration::from_millis(300);
                config.events.max_backoff = Duration::from_secs(1);
            }
        })
        .await;
        let endpoint = add_endpoint(&d, "the CRM").await;
        let b = brand(&d).await;
        invite(&d, &b, "guest@example.test").await;

        let (session, csrf) = sign_in_raw(&d, ADMIN_KEY).await;
        let base = format!("/console/webhooks/{endpoint}");
        console_post(&d, &session, &format!("{base}/pause"), &[("csrf", &csrf)]).await;
        console_post(&d, &session, &format!("{base}/resume"), &[("csrf", &csrf)]).await;
        let since = "2026-01-01T00:00:00Z";
        console_post(
            &d,
            &session,
            &format!("{base}/replay"),
            &[("csrf", &csrf), ("since", since)],
        )
        .await;
        // Exactly one event each, no business, the key and the endpoint.
        let actions: Vec<serde_json::Value> = db
            .strings(
                "SELECT CAST(data AS TEXT) FROM events WHERE type = 'console.action'
                  AND business_id IS NULL AND invitation_id IS NULL ORDER BY seq",
            )
            .await
            .iter()
            .map(|d| serde_json::from_str(d).unwrap())
            .collect();
        assert_eq!(
            actions,
            vec![
                json!({"action": "pause_webhook", "key_name": "operator", "target": endpoint}),
                json!({"action": "resume_webhook", "key_name": "operator", "target": endpoint}),
                json!({"action": "replay_webhook", "key_name": "operator", "target": endpoint,
                       "since": since}),
            ]
        );
        assert_eq!(
            db.count("SELECT count(*) FROM events WHERE type = 'console.action'").await,
            3
        );
        // A business's event after them: the sinks carry on.
        invite(&d, &b, "later@example.test").await;

        // Read again each time: the invitations' emails go on writing
        // events (`invitation.sent`).
        eventually(WAIT, "the webhook and NATS take every event", || async {
            let all: std::collections::BTreeSet<String> = db
                .strings("SELECT CAST(id AS TEXT) FROM events")
                .await
                .into_iter()
                .collect();
            let nats_ids: std::collections::BTreeSet<String> = published
                .lock()
                .unwrap()
                .iter()
                .map(|e| e["id"].as_str().unwrap().to_owned())
                .collect();
            let hook_ids = hook.delivered_ids();
            if hook_ids == all && nats_ids == all {
                Ok(())
            } else {
                Err(format!(
                    "{} events; webhook {}, NATS {}",
                    all.len(),
                    hook_ids.len(),
                    nats_ids.len()
                ))
            }
        })
        .await;
        // The actions on the wire: `business_id` is there, and null.
        let on_hook: Vec<_> = hook
            .hits()
            .into_iter()
            .filter(|(status, e)| *status == 200 && e["type"] == "console.action")
            .map(|(_, e)| e)
            .collect();
        let on_nats: Vec<_> = published
            .lock()
            .unwrap()
            .iter()
            .filter(|e| e["type"] == "console.action")
            .cloned()
            .collect();
        for events in [&on_hook, &on_nats] {
            assert_eq!(events.len(), 3, "{events:?}");
            for e in events.iter() {
                assert!(e.as_object().unwrap().contains_key("business_id"), "{e}");
                assert_eq!(e["business_id"], serde_json::Value::Null, "{e}");
                assert_eq!(e["data"]["key_name"], "operator");
                assert_eq!(e["data"]["target"], endpoint.as_str());
            }
        }

        let browser = Browser::start(&shots("console_sinks", &db)).await;
        browser.set_viewport(1280, 900).await;
        sign_in(&browser, &d, ADMIN_KEY).await;
        // Who did what to the endpoint, newest first.
        browser.goto(&d.url("/console/webhooks")).await;
        browser.wait_for("main[data-page=webhooks] tr[data-endpoint]").await;
        let mut shown = Vec::new();
        for a in browser
            .find_all(&format!("tr[data-endpoint='{endpoint}'] [data-console-action]"))
            .await
        {
            shown.push((
                a.attr("data-console-action").await.unwrap().unwrap(),
                a.attr("data-key").await.unwrap().unwrap(),
            ));
        }
        let by = |action: &str| (action.to_owned(), "operator".to_owned());
        assert_eq!(
            shown,
            vec![by("replay_webhook"), by("resume_webhook"), by("pause_webhook")]
        );
        browser.screenshot("webhooks").await;

        // The charts count what the receiver answered and what NATS got.
        let answered = |code: u16| {
            hook.hits()
                .iter()
                .filter(|(s, _)| *s == code)
                .count()
                .to_string()
        };
        assert_eq!(answered(500), "2");
        let webhook_chart = format!("svg[data-sink='webhook:{hook_url}']");
        eventually(WAIT, "the charts count every delivery", || async {
            // Read before the page: what the charts must have caught up with.
            let (hook_sent, hook_failed) = (answered(200), answered(500));
            let nats_sent = published.lock().unwrap().len().to_string();
            let endpoint_sent = db
                .count("SELECT count(*) FROM webhook_deliveries WHERE error IS NULL")
                .await
                .to_string();
            let endpoint_failed = db
                .count("SELECT count(*) FROM webhook_deliveries WHERE error IS NOT NULL")
                .await
                .to_string();
            browser.goto(&d.url("/console/outbox")).await;
            browser.wait_for("main[data-page=outbox] svg[data-chart=emails]").await;
            let mut got = Vec::new();
            for (css, attr) in [
                (webhook_chart.as_str(), "data-total-sent"),
                (webhook_chart.as_str(), "data-total-failed"),
                ("svg[data-sink=nats]", "data-total-sent"),
                ("svg[data-sink=nats]", "data-total-failed"),
                ("svg[data-chart=webhooks]", "data-total-sent"),
                ("svg[data-chart=webhooks]", "data-total-failed"),
            ] {
                got.push(browser.find(css).await.attr(attr).await.unwrap().unwrap_or_default());
            }
            let want = vec![
                hook_sent,
                hook_failed,
                nats_sent,
                "0".into(),
                endpoint_sent,
                endpoint_failed,
            ];
            if got == want {
                Ok(())
            } else {
                Err(format!("charts say {got:?}, deliveries {want:?}"))
            }
        })
        .await;
        // Bar by bar too: the minutes' bars add up to the totals.
        let mut bars = 0;
        for bar in browser.find_all(&format!("{webhook_chart} rect[data-failed]")).await {
            bars += bar.attr("data-failed").await.unwrap().unwrap().parse::<u32>().unwrap();
        }
        assert_eq!(bars, 2);
        let nats_chart = browser.find("svg[data-sink=nats]").await;
        let mut bars = 0;
        for bar in browser.find_all("svg[data-sink=nats] rect[data-sent]").await {
            bars += bar.attr("data-sent").await.unwrap().unwrap().parse::<u32>().unwrap();
        }
        assert_eq!(
            Some(bars.to_string()),
            nats_chart.attr("data-total-sent").await.unwrap()
        );
        browser.screenshot("outbox").await;
        browser.close().await;
        d.stop().await;
        let js = async_nats::jetstream::new(nats);
        for what in ["COMMANDS", "EVENTS"] {
            let _ = js
                .delete_stream(invited::events::bus::stream_name(&prefix, what))
                .await;
        }
    }
}
