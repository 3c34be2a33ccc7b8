//! The suppression list (R45), end to end with the daemon in-process, on
//! both stores: its API under scoped keys (R47), the refusal of a request
//! that invites a listed address (all or nothing, no quota used), the list
//! fed by a hard bounce or a complaint sent to the daemon's inbound listener
//! by a real SMTP client (R44), and the check racing additions to the list.

mod support;

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use reqwest::StatusCode;
use serde_json::{Value, json};
use support::daemon::{ADMIN_KEY, API_KEY, READ_KEY, TestDaemon};
use support::db::Db;
use support::reports::{arf, deliver_report, dsn};
use support::smtp_sink::SmtpSink;

const WAIT: Duration = Duration::from_secs(30);
const RETURN_PATH: &str = "bounces+{id}@bounce.example.test";

async fn brand(d: &TestDaemon) -> String {
    d.user("olive", "olive@brand.example", "en-US").await;
    d.business("Brand & Co", "olive").await
}

async fn suppress(d: &TestDaemon, email: &str) -> (StatusCode, Value) {
    d.send_as(
        ADMIN_KEY,
        d.client()
            .post(d.url("/v1/suppressions"))
            .json(&json!({"email": email})),
    )
    .await
}

async fn unsuppress(d: &TestDaemon, key: &str, email: &str) -> (StatusCode, Value) {
    d.send_as(
        key,
        d.client()
            .delete(d.url(&format!("/v1/suppressions/{email}"))),
    )
    .await
}

async fn listed(d: &TestDaemon, email: &str) -> Vec<Value> {
    let (status, body) = d
        .send_as(
            READ_KEY,
            d.client()
                .get(d.url("/v1/suppressions"))
                .query(&[("email", email)]),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    body["items"].as_array().unwrap().clone()
}

async fn invite(d: &TestDaemon, b: &str, emails: &[&str]) -> (StatusCode, Value) {
    let invitees: Vec<Value> = emails.iter().map(|e| json!({"email": e})).collect();
    d.post(
        &format!("/v1/businesses/{b}/invitations"),
        json!({"actor_user_id": "olive", "invitees": invitees}),
    )
    .await
}

async fn quota_used(d: &TestDaemon, b: &str) -> u64 {
    let (status, body) = d
        .get(&format!(
            "/v1/businesses/{b}/invitation-quota?actor_user_id=olive"
        ))
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    body["used"].as_u64().unwrap()
}

/// Waits until an unlabelled series in `/metrics` holds `want`.
async fn gauge_reaches(d: &TestDaemon, name: &str, want: f64) {
    support::wait::eventually(WAIT, &format!("{name} reaching {want}"), || async {
        let text = d
            .client()
            .get(d.url("/metrics"))
            .send()
            .await
            .unwrap()
            .text()
            .await
            .unwrap();
        let value = text
            .lines()
            .find(|l| l.split(' ').next() == Some(name))
            .and_then(|l| l.rsplit(' ').next())
            .and_then(|v| v.parse::<f64>().ok());
        if value == Some(want) {
            Ok(())
        } else {
            Err(format!("{value:?}"))
        }
    })
    .await
}

both_stores! {
    /// R45, R47: a read key lists, only an admin key adds and removes;
    /// addresses are compared case-insensitively; the list pages by address.
    async fn the_list_is_read_with_read_and_changed_with_admin_only(db: Db) {
        let d = TestDaemon::start(&db).await;

        let (status, body) = suppress(&d, "Gone@X.Example").await;
        assert_eq!(status, StatusCode::CREATED, "{body}");
        assert_eq!(body["email"], "gone@x.example");
        assert_eq!(body["reason"], "manual");
        assert_eq!(body["source"], "api");
        assert_eq!(body["detail"], Value::Null);
        assert!(body["created_at"].is_string(), "{body}");

        // Listed once whatever the case it is given or asked in.
        let (status, again) = suppress(&d, "GONE@x.example").await;
        assert_eq!(status, StatusCode::CREATED, "{again}");
        assert_eq!(again["created_at"], body["created_at"], "the first entry stays");
        assert_eq!(db.count("SELECT count(*) FROM suppressions").await, 1);
        let found = listed(&d, "gOnE@x.EXAMPLE").await;
        assert_eq!(found.len(), 1, "{found:?}");
        assert_eq!(found[0]["email"], "gone@x.example");
        assert!(listed(&d, "other@x.example").await.is_empty());

        // A read key and a write key cannot change the list.
        for key in [READ_KEY, API_KEY] {
            let (status, body) = d
                .send_as(
                    key,
                    d.client()
                        .post(d.url("/v1/suppressions"))
                        .json(&json!({"email": "new@x.example"})),
                )
                .await;
            assert_eq!(status, StatusCode::FORBIDDEN, "{key}: {body}");
            assert_eq!(body["code"], "forbidden");
            // A read key is already refused for writing (`write scope`); a
            // write key for lacking `admin`.
            if key == API_KEY {
                assert!(body["detail"].as_str().unwrap().contains("admin scope"), "{body}");
            }
            let (status, body) = unsuppress(&d, key, "gone@x.example").await;
            assert_eq!(status, StatusCode::FORBIDDEN, "{key}: {body}");
        }
        assert_eq!(db.count("SELECT count(*) FROM suppressions").await, 1);

        // Bad input changes nothing.
        for (body, field) in [
            (json!({"email": "not an address"}), "email"),
            (json!({"email": "a@x.example", "reason": "hard_bounce"}), "reason"),
            (json!({"email": "a@x.example", "reason": "spam"}), "reason"),
        ] {
            let (status, problem) = d
                .send_as(ADMIN_KEY, d.client().post(d.url("/v1/suppressions")).json(&body))
                .await;
            assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{body}: {problem}");
            assert_eq!(problem["errors"][0]["field"], field, "{problem}");
        }
        assert_eq!(db.count("SELECT count(*) FROM suppressions").await, 1);

        // Pages by address.
        for e in ["c@x.example", "a@x.example", "b@x.example"] {
            assert_eq!(suppress(&d, e).await.0, StatusCode::CREATED);
        }
        let (status, page) = d
            .send_as(READ_KEY, d.client().get(d.url("/v1/suppressions?limit=2")))
            .await;
        assert_eq!(status, StatusCode::OK, "{page}");
        let emails = |p: &Value| -> Vec<String> {
            p["items"].as_array().unwrap().iter().map(|i| i["email"].as_str().unwrap().to_owned()).collect()
        };
        assert_eq!(emails(&page), ["a@x.example", "b@x.example"]);
        let cursor = page["next_cursor"].as_str().unwrap().to_owned();
        let (_, page) = d
            .send_as(
                READ_KEY,
                d.client().get(d.url("/v1/suppressions")).query(&[("limit", "2"), ("cursor", cursor.as_str())]),
            )
            .await;
        assert_eq!(emails(&page), ["c@x.example", "gone@x.example"]);
        gauge_reaches(&d, "invited_suppressions", 4.0).await;

        let (status, body) = unsuppress(&d, ADMIN_KEY, "GONE@X.example").await;
        assert_eq!(status, StatusCode::NO_CONTENT, "{body}");
        assert!(listed(&d, "gone@x.example").await.is_empty());
        let (status, body) = unsuppress(&d, ADMIN_KEY, "gone@x.example").await;
        assert_eq!(status, StatusCode::NOT_FOUND, "{body}");
        assert_eq!(db.count("SELECT count(*) FROM suppressions").await, 3);
        d.stop().await;
    }
}

both_stores! {
    /// R45: one listed address among three refuses the whole request with
    /// `422 address_suppressed` naming it; nothing is written, no quota is
    /// used. Taken off the list, the same request goes through.
    async fn a_listed_invitee_refuses_the_whole_request_and_uses_no_quota(db: Db) {
        let d = TestDaemon::start(&db).await;
        let b = brand(&d).await;
        assert_eq!(suppress(&d, "Typo@X.example").await.0, StatusCode::CREATED);

        let request = ["ok1@x.example", "TYPO@x.example", "ok2@x.example"];
        let (status, problem) = invite(&d, &b, &request).await;
        assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{problem}");
        assert_eq!(problem["code"], "address_suppressed");
        let errors = problem["errors"].as_array().unwrap();
        assert_eq!(errors.len(), 1, "{problem}");
        assert_eq!(errors[0]["field"], "invitees[1].email");
        assert!(errors[0]["message"].as_str().unwrap().contains("typo@x.example"), "{problem}");
        assert_eq!(db.count("SELECT count(*) FROM invitations").await, 0);
        assert_eq!(db.count("SELECT count(*) FROM email_outbox").await, 0);
        assert_eq!(
            db.count("SELECT count(*) FROM events WHERE type = 'invitation.created'").await,
            0
        );
        assert_eq!(quota_used(&d, &b).await, 0);

        assert_eq!(unsuppress(&d, ADMIN_KEY, "typo@x.example").await.0, StatusCode::NO_CONTENT);
        let (status, body) = invite(&d, &b, &request).await;
        assert_eq!(status, StatusCode::CREATED, "{body}");
        assert_eq!(body["items"].as_array().unwrap().len(), 3);
        assert_eq!(quota_used(&d, &b).await, 3);
        d.stop().await;
    }
}

// ---------------------------------------------------------------------------
// R44, R45: feedback lists the address

async fn feedback_daemon(db: &Db) -> TestDaemon {
    TestDaemon::start_with(db, SmtpSink::start(), |c| {
        c.mail.return_path = Some(RETURN_PATH.parse().unwrap());
        c.feedback.smtp_listen = Some("127.0.0.1:0".parse().unwrap());
    })
    .await
}

both_stores! {
    /// R44, R45: a hard bounce lists the address (reason `hard_bounce`,
    /// source `smtp`, the status and diagnostic as detail) and another
    /// business's invitation to it is refused; a complaint lists its
    /// address as `complaint`; a soft bounce lists nothing.
    async fn a_hard_bounce_or_a_complaint_lists_the_address_and_a_soft_bounce_does_not(db: Db) {
        let d = feedback_daemon(&db).await;
        let b = brand(&d).await;
        let (status, body) = invite(&d, &b, &["Gone@x.example", "late@x.example", "angry@x.example"]).await;
        assert_eq!(status, StatusCode::CREATED, "{body}");
        let mails = d.sink.wait_for(3, WAIT).await;
        for item in body["items"].as_array().unwrap() {
            d.eventually(WAIT, &format!("/v1/invitations/{}?actor_user_id=olive", item["id"].as_str().unwrap()), |v| {
                v["delivery"]["status"] == "sent"
            })
            .await;
        }
        let mail_to = |who: &str| {
            mails
                .iter()
                .find(|m| m.raw.contains(&format!("To: {who}")) || m.header("To").is_some_and(|t| t.contains(who)))
                .unwrap_or_else(|| panic!("a mail to {who}"))
        };
        let return_path = |who: &str| mail_to(who).from.trim_matches(['<', '>']).to_string();

        // A soft bounce: only the timeline.
        let soft = dsn("late@x.example", "<none@x.example>", "delayed", "4.2.2", "452 4.2.2 mailbox full");
        assert_eq!(deliver_report(&d, &return_path("late@x.example"), &soft).await, Ok(250));
        assert!(listed(&d, "late@x.example").await.is_empty());

        // A hard bounce.
        let hard = dsn("gone@x.example", "<none@x.example>", "failed", "5.1.1", "550 5.1.1 user unknown");
        assert_eq!(deliver_report(&d, &return_path("gone@x.example"), &hard).await, Ok(250));
        let found = listed(&d, "gone@x.example").await;
        assert_eq!(found.len(), 1, "{found:?}");
        assert_eq!(found[0]["reason"], "hard_bounce");
        assert_eq!(found[0]["source"], "smtp");
        let detail = found[0]["detail"].as_str().unwrap();
        assert!(detail.contains("5.1.1") && detail.contains("user unknown"), "{detail}");

        // A complaint, tied by the Message-ID.
        let message_id = mail_to("angry@x.example").header("Message-ID").unwrap();
        let complaint = arf("angry@x.example", &message_id);
        assert_eq!(deliver_report(&d, "fbl@bounce.example.test", &complaint).await, Ok(250));
        let found = listed(&d, "angry@x.example").await;
        assert_eq!(found.len(), 1, "{found:?}");
        assert_eq!(found[0]["reason"], "complaint");
        assert_eq!(found[0]["source"], "smtp");

        // The list is the daemon's: another business cannot invite them.
        d.user("otto", "otto@other.example", "en-US").await;
        let other = d.business("Other Ltd", "otto").await;
        let (status, problem) = d
            .post(
                &format!("/v1/businesses/{other}/invitations"),
                json!({"actor_user_id": "otto", "invitees": [{"email": "late@x.example"}, {"email": "GONE@x.example"}, {"email": "angry@x.example"}]}),
            )
            .await;
        assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{problem}");
        assert_eq!(problem["code"], "address_suppressed");
        let fields: Vec<&str> = problem["errors"].as_array().unwrap().iter().map(|e| e["field"].as_str().unwrap()).collect();
        assert_eq!(fields, ["invitees[1].email", "invitees[2].email"], "{problem}");
        assert_eq!(
            db.count("SELECT count(*) FROM invitations WHERE email = 'late@x.example'").await,
            1,
            "only the first business's invitation"
        );
        d.stop().await;
    }
}

// ---------------------------------------------------------------------------
// R45: the check racing additions to the list

both_stores! {
    /// A suppression posted while a bulk create to the same address runs.
    /// Either the create is refused (and writes nothing) or it commits
    /// before the suppression does: an observer that reads the list first
    /// and the invitations second must never see the address listed with no
    /// invitation to it and then see the create succeed. Without the
    /// per-address hold, the suppression commits inside the create's window
    /// between its check and its commit, and the observer sees just that.
    async fn a_suppression_racing_a_bulk_create_never_lets_a_listed_address_through(db: Db) {
        let d = TestDaemon::start_with(&db, SmtpSink::start(), |c| {
            c.invitations.rate_limit.count = 10_000;
        })
        .await;
        let d = Arc::new(d);
        let b = brand(&d).await;
        let db = Arc::new(db);
        let (mut refused, mut created) = (0, 0);
        for round in 0..12 {
            let target = format!("target{round}@race.example");
            // The target last: the create's window between its check and
            // its commit covers the inserts of all the others.
            let mut emails: Vec<String> = (0..15).map(|i| format!("r{round}-{i}@race.example")).collect();
            emails.push(target.clone());

            let done = Arc::new(AtomicBool::new(false));
            let observer = {
                let (db, done, target) = (db.clone(), done.clone(), target.clone());
                tokio::spawn(async move {
                    let mut listed_without_invitation = false;
                    while !done.load(Ordering::SeqCst) {
                        let sql = format!("SELECT count(*) FROM suppressions WHERE email = '{target}'");
                        if db.count(&sql).await == 1 {
                            let sql = format!("SELECT count(*) FROM invitations WHERE email = '{target}'");
                            if db.count(&sql).await == 0 {
                                listed_without_invitation = true;
                            }
                        }
                        tokio::task::yield_now().await;
                    }
                    listed_without_invitation
                })
            };
            let refs: Vec<&str> = emails.iter().map(String::as_str).collect();
            // The suppression starts a little later each round, so the
            // rounds spread over the interleavings: listed before the
            // create's check, during its window, after its commit. (A head
            // start, not a wait for a condition.)
            let head_start = Duration::from_millis(2 * round);
            let late_suppression = async {
                tokio::time::sleep(head_start).await;
                suppress(&d, &target).await
            };
            let ((s_status, s_body), (c_status, c_body)) =
                tokio::join!(late_suppression, invite(&d, &b, &refs));
            done.store(true, Ordering::SeqCst);
            let listed_without_invitation = observer.await.unwrap();

            assert_eq!(s_status, StatusCode::CREATED, "{s_body}");
            let ours = format!("SELECT count(*) FROM invitations WHERE email LIKE 'r{round}-%' OR email = '{target}'");
            match c_status {
                StatusCode::UNPROCESSABLE_ENTITY => {
                    refused += 1;
                    assert_eq!(c_body["code"], "address_suppressed", "{c_body}");
                    assert_eq!(c_body["errors"][0]["field"], "invitees[15].email", "{c_body}");
                    assert_eq!(db.count(&ours).await, 0, "all or nothing");
                }
                StatusCode::CREATED => {
                    created += 1;
                    assert_eq!(db.count(&ours).await, 16);
                    assert!(
                        !listed_without_invitation,
                        "round {round}: the address was listed before the create committed, and the create went through"
                    );
                }
                other => panic!("round {round}: {other} {c_body}"),
            }
        }
        eprintln!("refused {refused}, created {created}");
        assert_eq!(
            db.count("SELECT count(*) FROM invitations").await as u64,
            created * 16
        );
        Arc::try_unwrap(d).ok().expect("the last handle").stop().await;
    }
}
