//! End to end: join requests (R51) and their way in (R53), with the daemon
//! on port 0, a fresh database and a real SMTP server. Every test runs on
//! both stores (`both_stores!`).

mod support;

use std::time::Duration;

use reqwest::StatusCode;
use serde_json::{Value, json};
use support::daemon::{API_KEY, TestDaemon};
use support::db::{Arg, Db, ago};
use support::scenario::{join, of_type, public_id};
use support::smtp_sink::to;

const WAIT: Duration = Duration::from_secs(20);

/// The agency (owner amelie fr-FR, managers wen zh-TW and george en-GB,
/// employee emp en-US) and charles (fr-CA), who is in no business; returns
/// the agency's internal id and its public Business ID.
async fn agency(d: &TestDaemon, db: &Db) -> (String, String) {
    d.user("amelie", "amelie@agency.example", "fr-FR").await;
    d.user("wen", "wen@agency.example", "zh-TW").await;
    d.user("george", "george@agency.example", "en-GB").await;
    d.user("emp", "emp@agency.example", "en-US").await;
    d.user("charles", "charles@example.test", "fr-CA").await;
    let agency = d.business("Agence Lumière", "amelie").await;
    join(db, &agency, "wen", "manager").await;
    join(db, &agency, "george", "manager").await;
    join(db, &agency, "emp", "employee").await;
    let public = public_id(d, &agency, "amelie").await;
    (agency, public)
}

/// `user` asks to join the business with this public id; the `201` body.
async fn ask(d: &TestDaemon, user: &str, public: &str) -> Value {
    let (status, body) = d
        .post(
            "/v1/join-requests",
            json!({"user_id": user, "business_id": public}),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    body
}

/// Queued emails of `template` to `recipient` (the outbox is the record:
/// what was never queued is never sent).
async fn queued(db: &Db, template: &str, recipient: &str) -> i64 {
    db.count_with(
        "SELECT count(*) FROM email_outbox WHERE template = $1 AND recipient = $2",
        &[Arg::Text(template.into()), Arg::Text(recipient.into())],
    )
    .await
}

async fn timeline(d: &TestDaemon, id: &str, actor: &str) -> Vec<Value> {
    let (status, body) = d
        .get(&format!(
            "/v1/join-requests/{id}/timeline?actor_user_id={actor}"
        ))
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    body["items"].as_array().unwrap().clone()
}

both_stores! {
    /// The scenario (R51, R53): charles asks to join the agency with
    /// a message; its owner (fr-FR) and both managers (zh-TW, en-GB) each get
    /// "charles asked to join Agence Lumière" in their language with a
    /// button to the request, the employee nothing; a manager approves with
    /// a role; charles is a member, hears it in his own locale (fr-CA), and
    /// the request's timeline shows the `member.added` it made, `via:
    /// request`.
    async fn a_join_request_reaches_the_owner_and_managers_and_its_approval_makes_a_member(db: Db) {
        let d = TestDaemon::start(&db).await;
        let (agency, public) = agency(&d, &db).await;
        let (status, request) = d
            .post(
                "/v1/join-requests",
                json!({"user_id": "charles", "business_id": public,
                       "message": "Je travaille déjà avec Wen.\nPuis-je rejoindre l'équipe ?"}),
            )
            .await;
        assert_eq!(status, StatusCode::CREATED, "{request}");
        assert_eq!(request["status"], "pending");
        assert_eq!(request["user_id"], "charles");
        assert_eq!(request["business_id"], agency.as_str());
        assert_eq!(request["role"], Value::Null);
        let id = request["id"].as_str().unwrap().to_string();

        let mails = d.sink.wait_for(3, WAIT).await;
        for (addr, subject, lang) in [
            ("amelie@agency.example", "charles demande à rejoindre Agence Lumière", "fr-FR"),
            ("wen@agency.example", "charles申請加入「Agence Lumière」", "zh-TW"),
            ("george@agency.example", "charles asked to join Agence Lumière", "en-GB"),
        ] {
            let got = to(&mails, addr);
            assert_eq!(got.len(), 1, "{addr}: {} mails", got.len());
            assert_eq!(got[0].header("Subject").unwrap(), subject, "{addr}");
            assert!(
                got[0].html_body().contains(&format!("lang=\"{lang}\"")),
                "{addr}: {}",
                got[0].html_body()
            );
            let text = got[0].text_body();
            assert!(
                text.contains(&format!("http://localhost:3000/join-requests/{id}")),
                "{addr}: {text}"
            );
            assert!(text.contains("Puis-je rejoindre l'équipe ?"), "{addr}: {text}");
        }
        // The employee has no `members.invite`: never queued, so never sent.
        assert_eq!(queued(&db, "join_request", "emp@agency.example").await, 0);
        assert_eq!(queued(&db, "join_request", "charles@example.test").await, 0);

        // The employee may neither see nor answer it.
        let (status, body) = d
            .get(&format!("/v1/businesses/{agency}/join-requests?actor_user_id=emp"))
            .await;
        assert_eq!(status, StatusCode::FORBIDDEN, "{body}");
        let (status, list) = d
            .get(&format!(
                "/v1/businesses/{agency}/join-requests?actor_user_id=george&status=pending"
            ))
            .await;
        assert_eq!(status, StatusCode::OK, "{list}");
        assert_eq!(list["items"][0]["id"], id.as_str(), "{list}");

        let (status, approved) = d
            .post(
                &format!("/v1/join-requests/{id}/approve"),
                json!({"actor_user_id": "wen", "role": "manager"}),
            )
            .await;
        assert_eq!(status, StatusCode::OK, "{approved}");
        assert_eq!(approved["request"]["status"], "approved");
        assert_eq!(approved["request"]["role"], "manager");
        assert_eq!(approved["request"]["decided_by"], "wen");
        assert_eq!(approved["membership"]["user_id"], "charles");
        assert_eq!(approved["membership"]["role"], "manager");
        let (_, members) = d
            .get(&format!("/v1/businesses/{agency}/members?actor_user_id=amelie"))
            .await;
        assert!(
            members["items"]
                .as_array()
                .unwrap()
                .iter()
                .any(|m| m["user_id"] == "charles" && m["role"] == "manager"),
            "{members}"
        );

        // The outcome, to charles, in fr-CA.
        let mails = d.sink.wait_for(4, WAIT).await;
        let outcome = to(&mails, "charles@example.test");
        assert_eq!(outcome.len(), 1);
        assert_eq!(
            outcome[0].header("Subject").unwrap(),
            "Vous vous êtes joint à Agence Lumière"
        );
        assert!(outcome[0].html_body().contains("lang=\"fr-CA\""));
        assert!(
            outcome[0].text_body().contains("en tant que gestionnaire"),
            "{}",
            outcome[0].text_body()
        );

        // R53: the request's timeline holds what it caused; charles may read it.
        let items = timeline(&d, &id, "charles").await;
        let types: Vec<&str> = items
            .iter()
            .map(|i| i["type"].as_str().unwrap())
            .filter(|t| *t != "delivery_attempt")
            .collect();
        assert_eq!(
            types,
            ["join_request.created", "join_request.approved", "member.added"],
            "{items:#?}"
        );
        // Its emails' deliveries are there too: three to the approvers, one
        // outcome to charles.
        let path = format!("/v1/join-requests/{id}/timeline?actor_user_id=charles");
        let body = d
            .eventually(WAIT, &path, |b| {
                of_type(b["items"].as_array().unwrap(), "delivery_attempt").len() == 4
            })
            .await;
        let items = body["items"].as_array().unwrap();
        let sent: Vec<(&str, &str)> = of_type(items, "delivery_attempt")
            .iter()
            .map(|a| (a["template"].as_str().unwrap(), a["outcome"].as_str().unwrap()))
            .collect();
        assert_eq!(
            sent.iter().filter(|(t, o)| *t == "join_request" && *o == "sent").count(),
            3,
            "{sent:?}"
        );
        assert!(sent.contains(&("join_request_answered", "sent")), "{sent:?}");
        let added = of_type(items, "member.added")[0];
        assert_eq!(added["data"]["via"], "request");
        assert_eq!(added["data"]["join_request_id"], id.as_str(), "the request it came from");
        assert_eq!(added["data"]["user_id"], "charles");
        assert_eq!(added["data"]["role"], "manager");
        assert_eq!(added["actor_user_id"], "wen");
        assert_eq!(
            of_type(items, "join_request.created")[0]["actor_user_id"],
            "charles"
        );
        // The same `member.added` every way in writes, in the business's log.
        assert_eq!(
            db.count_with(
                "SELECT count(*) FROM events WHERE type = 'member.added' AND business_id = $1
                   AND actor_user_id = 'wen'",
                &[Arg::Uuid(agency.parse().unwrap())],
            )
            .await,
            1
        );

        // Answered once: a second answer is an invalid transition.
        let (status, body) = d
            .post(
                &format!("/v1/join-requests/{id}/deny"),
                json!({"actor_user_id": "george"}),
            )
            .await;
        assert_eq!(status, StatusCode::CONFLICT, "{body}");
        assert_eq!(body["code"], "invalid_transition");
        d.stop().await;
    }
}

both_stores! {
    /// R51: a denial leaves the user out and tells them, in their locale.
    async fn a_denied_request_tells_the_requester_and_adds_nobody(db: Db) {
        let d = TestDaemon::start(&db).await;
        let (_agency, public) = agency(&d, &db).await;
        d.user("li", "li@example.test", "zh-TW").await;
        let id = ask(&d, "li", &public).await["id"].as_str().unwrap().to_string();
        let (status, denied) = d
            .post(
                &format!("/v1/join-requests/{id}/deny"),
                json!({"actor_user_id": "amelie"}),
            )
            .await;
        assert_eq!(status, StatusCode::OK, "{denied}");
        assert_eq!(denied["status"], "denied");
        assert_eq!(denied["decided_by"], "amelie");
        let mails = d.sink.wait_for(4, WAIT).await;
        let outcome = to(&mails, "li@example.test");
        assert_eq!(outcome.len(), 1);
        assert_eq!(
            outcome[0].header("Subject").unwrap(),
            "您加入「Agence Lumière」的申請"
        );
        assert!(outcome[0].text_body().contains("未獲核准"));
        assert_eq!(
            db.count("SELECT count(*) FROM members WHERE user_id = 'li'").await,
            0
        );
        let items = timeline(&d, &id, "amelie").await;
        let types: Vec<&str> = items
            .iter()
            .map(|i| i["type"].as_str().unwrap())
            .filter(|t| *t != "delivery_attempt")
            .collect();
        assert_eq!(types, ["join_request.created", "join_request.denied"]);
        // Denied is over: the user may ask again.
        ask(&d, "li", &public).await;
        d.stop().await;
    }
}

both_stores! {
    /// R51: two managers answer the same request at the same moment, one
    /// approving and one denying: one outcome. The other gets `409
    /// invalid_transition`, and exactly one answer is written (state,
    /// event, email).
    async fn two_managers_answering_at_once_get_one_outcome(db: Db) {
        let d = TestDaemon::start(&db).await;
        let (_agency, public) = agency(&d, &db).await;
        for round in 0..4 {
            let user = format!("u{round}");
            d.user(&user, &format!("{user}@example.test"), "en-US").await;
            let id = ask(&d, &user, &public).await["id"].as_str().unwrap().to_string();
            let (approve_path, deny_path) = (
                format!("/v1/join-requests/{id}/approve"),
                format!("/v1/join-requests/{id}/deny"),
            );
            let approve = d.post(&approve_path, json!({"actor_user_id": "wen"}));
            let deny = d.post(&deny_path, json!({"actor_user_id": "george"}));
            let ((a_status, a_body), (d_status, d_body)) = tokio::join!(approve, deny);
            let statuses = [a_status, d_status];
            assert!(
                statuses.contains(&StatusCode::OK) && statuses.contains(&StatusCode::CONFLICT),
                "round {round}: approve {a_status} {a_body}, deny {d_status} {d_body}"
            );
            let loser = if a_status == StatusCode::OK { &d_body } else { &a_body };
            assert_eq!(loser["code"], "invalid_transition", "{loser}");
            let winner = if a_status == StatusCode::OK { "approved" } else { "denied" };
            let (_, read) = d
                .get(&format!("/v1/join-requests/{id}?actor_user_id=amelie"))
                .await;
            assert_eq!(read["status"], winner, "{read}");
            let members = db
                .count_with(
                    "SELECT count(*) FROM members WHERE user_id = $1",
                    &[Arg::Text(user.clone())],
                )
                .await;
            assert_eq!(members, i64::from(winner == "approved"), "round {round}");
            let items = timeline(&d, &id, "amelie").await;
            assert_eq!(
                of_type(&items, "join_request.approved").len()
                    + of_type(&items, "join_request.denied").len(),
                1,
                "{items:#?}"
            );
            assert_eq!(
                queued(&db, "join_request_answered", &format!("{user}@example.test")).await,
                1
            );
        }
        d.stop().await;
    }
}

both_stores! {
    /// R51's refusals, each a clear problem with nothing written: an
    /// unknown or malformed Business ID, an unknown user, a message over
    /// R7's limits, a member asking, a second pending request; then the
    /// answers: without `members.invite`, a role above the approver's (or
    /// `owner`), a role the catalog lacks.
    async fn bad_input_is_refused_and_writes_nothing(db: Db) {
        let d = TestDaemon::start(&db).await;
        let (agency, public) = agency(&d, &db).await;
        let post = |body: Value| d.post("/v1/join-requests", body);

        let (status, body) = post(json!({"user_id": "charles", "business_id": "23456789abcdefghjkmnpqrs"})).await;
        assert_eq!(status, StatusCode::NOT_FOUND, "{body}");
        assert_eq!(body["code"], "not_found");
        let (status, body) = post(json!({"user_id": "charles", "business_id": "nope"})).await;
        assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{body}");
        assert_eq!(body["errors"][0]["field"], "business_id", "{body}");
        let (status, body) = post(json!({"user_id": "nobody", "business_id": public})).await;
        assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{body}");
        assert_eq!(body["errors"][0]["field"], "user_id", "{body}");
        let long = "x".repeat(1001);
        let (status, body) = post(json!({"user_id": "charles", "business_id": public, "message": long})).await;
        assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{body}");
        assert_eq!(body["errors"][0]["field"], "message", "{body}");
        let (status, body) = post(json!({"user_id": "emp", "business_id": public})).await;
        assert_eq!(status, StatusCode::CONFLICT, "{body}");
        assert_eq!(body["code"], "conflict");
        assert!(body["detail"].as_str().unwrap().contains("already a member"), "{body}");
        assert_eq!(db.count("SELECT count(*) FROM join_requests").await, 0);

        // A message of exactly R7's limit is fine.
        let (status, first) = post(json!({"user_id": "charles", "business_id": public,
                                          "message": "é".repeat(1000)})).await;
        assert_eq!(status, StatusCode::CREATED, "{first}");
        let id = first["id"].as_str().unwrap().to_string();
        let (status, body) = post(json!({"user_id": "charles", "business_id": public})).await;
        assert_eq!(status, StatusCode::CONFLICT, "{body}");
        assert!(body["detail"].as_str().unwrap().contains("pending join request"), "{body}");

        let approve_path = format!("/v1/join-requests/{id}/approve");
        let approve = |actor: &str, role: Value| {
            d.post(&approve_path, json!({"actor_user_id": actor, "role": role}))
        };
        let (status, body) = approve("emp", Value::Null).await;
        assert_eq!(status, StatusCode::FORBIDDEN, "{body}");
        assert!(body["detail"].as_str().unwrap().contains("members.invite"), "{body}");
        let (status, body) = d
            .post(&format!("/v1/join-requests/{id}/deny"), json!({"actor_user_id": "emp"}))
            .await;
        assert_eq!(status, StatusCode::FORBIDDEN, "{body}");
        let (status, body) = approve("charles", Value::Null).await;
        assert_eq!(status, StatusCode::FORBIDDEN, "{body}");
        let (status, body) = approve("wen", json!("owner")).await;
        assert_eq!(status, StatusCode::FORBIDDEN, "{body}");
        let (status, body) = approve("wen", json!("wizard")).await;
        assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{body}");
        assert_eq!(body["errors"][0]["field"], "role", "{body}");
        let (status, body) = d
            .post(
                "/v1/join-requests/0190aaaa-0000-7000-8000-000000000000/approve",
                json!({"actor_user_id": "wen"}),
            )
            .await;
        assert_eq!(status, StatusCode::NOT_FOUND, "{body}");

        // Only the one good request was written, and nobody joined.
        assert_eq!(db.count("SELECT count(*) FROM join_requests").await, 1);
        assert_eq!(
            db.count("SELECT count(*) FROM events WHERE type LIKE 'join_request.%'").await,
            1
        );
        assert_eq!(db.count("SELECT count(*) FROM members WHERE user_id = 'charles'").await, 0);
        let (_, read) = d
            .get(&format!("/v1/join-requests/{id}?actor_user_id=charles"))
            .await;
        assert_eq!(read["status"], "pending", "{read}");

        // An approver may give a role not above their own: the default one.
        let (status, body) = approve("george", Value::Null).await;
        assert_eq!(status, StatusCode::OK, "{body}");
        assert_eq!(body["membership"]["role"], "employee");
        let _ = agency;
        d.stop().await;
    }
}

both_stores! {
    /// R51 with R3 in `account_levels`: an admin approves an admin but not
    /// the owner role, and a manager (no `members.invite` there) may not
    /// answer at all.
    async fn an_approver_may_not_give_a_role_above_their_own(db: Db) {
        let d = TestDaemon::start(&db).await;
        d.user("olive", "olive@brand.example", "en-US").await;
        d.user("adam", "adam@brand.example", "en-US").await;
        d.user("max", "max@brand.example", "en-US").await;
        d.user("charles", "charles@example.test", "en-US").await;
        let (status, b) = d
            .post(
                "/v1/businesses",
                json!({"name": "Levels", "owner_user_id": "olive", "role_preset": "account_levels"}),
            )
            .await;
        assert_eq!(status, StatusCode::CREATED, "{b}");
        let business = b["id"].as_str().unwrap().to_string();
        join(&db, &business, "adam", "admin").await;
        join(&db, &business, "max", "manager").await;
        let public = public_id(&d, &business, "olive").await;
        let id = ask(&d, "charles", &public).await["id"].as_str().unwrap().to_string();
        // The owner and the admin are emailed; the manager is not.
        d.sink.wait_for(2, WAIT).await;
        assert_eq!(queued(&db, "join_request", "max@brand.example").await, 0);
        assert_eq!(queued(&db, "join_request", "adam@brand.example").await, 1);
        let approve_path = format!("/v1/join-requests/{id}/approve");
        let approve = |actor: &str, role: &str| {
            d.post(&approve_path, json!({"actor_user_id": actor, "role": role}))
        };
        let (status, body) = approve("max", "viewer").await;
        assert_eq!(status, StatusCode::FORBIDDEN, "{body}");
        let (status, body) = approve("adam", "owner").await;
        assert_eq!(status, StatusCode::FORBIDDEN, "{body}");
        let (status, body) = approve("adam", "admin").await;
        assert_eq!(status, StatusCode::OK, "{body}");
        assert_eq!(body["membership"]["role"], "admin");
        d.stop().await;
    }
}

both_stores! {
    /// R51, R9: an approval needs a free seat; the request stays pending.
    async fn an_approval_needs_a_free_seat(db: Db) {
        let d = TestDaemon::start(&db).await;
        let (agency, public) = agency(&d, &db).await;
        let id = ask(&d, "charles", &public).await["id"].as_str().unwrap().to_string();
        // Four members already: a limit of four leaves no seat.
        db.exec(
            "UPDATE businesses SET seat_limit = 4 WHERE id = $1",
            &[Arg::Uuid(agency.parse().unwrap())],
        )
        .await;
        let (status, body) = d
            .post(
                &format!("/v1/join-requests/{id}/approve"),
                json!({"actor_user_id": "amelie"}),
            )
            .await;
        assert_eq!(status, StatusCode::CONFLICT, "{body}");
        assert_eq!(body["code"], "seats_exhausted");
        let (_, read) = d
            .get(&format!("/v1/join-requests/{id}?actor_user_id=amelie"))
            .await;
        assert_eq!(read["status"], "pending");
        d.stop().await;
    }
}

both_stores! {
    /// R51: at most `join_requests.rate_limit` requests per user in the
    /// window, over every business; one more is `429 rate_limited` with
    /// `Retry-After`, like R8's, and writes nothing. A denial gives nothing
    /// back.
    async fn a_users_requests_are_rate_limited_over_every_business(db: Db) {
        let d = TestDaemon::start_with(&db, support::smtp_sink::SmtpSink::start(), |c| {
            c.join_requests.rate_limit.count = 2;
        })
        .await;
        d.user("charles", "charles@example.test", "en-US").await;
        let mut publics = Vec::new();
        for n in 0..3 {
            let owner = format!("owner{n}");
            d.user(&owner, &format!("{owner}@example.test"), "en-US").await;
            let b = d.business(&format!("Business {n}"), &owner).await;
            publics.push((public_id(&d, &b, &owner).await, owner));
        }
        let first = ask(&d, "charles", &publics[0].0).await;
        let (status, body) = d
            .post(
                &format!("/v1/join-requests/{}/deny", first["id"].as_str().unwrap()),
                json!({"actor_user_id": publics[0].1}),
            )
            .await;
        assert_eq!(status, StatusCode::OK, "{body}");
        ask(&d, "charles", &publics[1].0).await;
        let resp = d
            .client()
            .post(d.url("/v1/join-requests"))
            .bearer_auth(API_KEY)
            .json(&json!({"user_id": "charles", "business_id": publics[2].0}))
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status(), StatusCode::TOO_MANY_REQUESTS);
        let retry: u64 = resp
            .headers()
            .get("retry-after")
            .expect("Retry-After")
            .to_str()
            .unwrap()
            .parse()
            .unwrap();
        assert!(retry > 0 && retry <= 24 * 3600, "{retry}");
        let body: Value = resp.json().await.unwrap();
        assert_eq!(body["code"], "rate_limited", "{body}");
        assert!(body["detail"].as_str().unwrap().contains("join requests"), "{body}");
        assert_eq!(db.count("SELECT count(*) FROM join_requests").await, 2);
        // Another user is not held back by charles's limit.
        d.user("dora", "dora@example.test", "en-US").await;
        ask(&d, "dora", &publics[2].0).await;
        d.stop().await;
    }
}

both_stores! {
    /// R51: a request expires like an invitation: past its expiry it is
    /// refused as expired before any sweep, and the chores' sweep moves it
    /// to `expired` with `join_request.expired`, once. The user may ask
    /// again.
    async fn a_pending_request_expires_like_an_invitation(db: Db) {
        let d = TestDaemon::start(&db).await;
        let (_agency, public) = agency(&d, &db).await;
        let id = ask(&d, "charles", &public).await["id"].as_str().unwrap().to_string();
        db.exec(
            "UPDATE join_requests SET created_at = $1, expires_at = $2 WHERE id = $3",
            &[ago(8 * 24 * 3600), ago(60), Arg::Uuid(id.parse().unwrap())],
        )
        .await;
        let (status, body) = d
            .post(
                &format!("/v1/join-requests/{id}/approve"),
                json!({"actor_user_id": "amelie"}),
            )
            .await;
        assert_eq!(status, StatusCode::CONFLICT, "{body}");
        assert_eq!(body["code"], "invalid_transition");
        assert!(body["detail"].as_str().unwrap().contains("expired"), "{body}");

        let services = &d.app.as_ref().unwrap().services;
        let report = services.run_chores().await.unwrap();
        assert_eq!(report.join_requests_expired, 1);
        assert_eq!(services.run_chores().await.unwrap().join_requests_expired, 0);
        let (_, read) = d
            .get(&format!("/v1/join-requests/{id}?actor_user_id=charles"))
            .await;
        assert_eq!(read["status"], "expired", "{read}");
        let items = timeline(&d, &id, "amelie").await;
        let types: Vec<&str> = items
            .iter()
            .map(|i| i["type"].as_str().unwrap())
            .filter(|t| *t != "delivery_attempt")
            .collect();
        assert_eq!(types, ["join_request.created", "join_request.expired"]);
        assert_eq!(db.count("SELECT count(*) FROM members WHERE user_id = 'charles'").await, 0);
        ask(&d, "charles", &public).await;
        d.stop().await;
    }
}
