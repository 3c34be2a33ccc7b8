//! End to end: the daemon on port 0, a fresh database, a real SMTP server on
//! 127.0.0.1, driven over HTTP like an app would. Every test runs on both
//! stores (`both_stores!`) except `shutdown_leaves_no_connection_behind`,
//! which counts Postgres sessions (`pg_stat_activity`, the LISTEN connection
//! included) and is Postgres-only.

mod support;

use std::time::Duration;

use reqwest::StatusCode;
use serde_json::{Value, json};
use sqlx::PgPool;
use support::daemon::{API_KEY, TestDaemon, token_from};
use support::db::ago;
use support::scenario::brand;

const WAIT: Duration = Duration::from_secs(20);

async fn count(pool: &PgPool, sql: &'static str) -> i64 {
    sqlx::query_scalar(sql).fetch_one(pool).await.unwrap()
}

both_stores! {
    /// R7, R12, R13, R22: invite, the email arrives with a working link, accept,
    /// membership exists, the inviter hears of it; the token then is used.
    async fn invite_email_accept_and_the_inviter_is_told(db: Db) {
        let d = TestDaemon::start(&db).await;
        let b = brand(&d).await;
        let (status, body) = d
            .post(
                &format!("/v1/businesses/{b}/invitations"),
                json!({"actor_user_id": "olive", "invitees": [{"email": "Charles@Agency.example", "role": "manager"}],
                       "message": "Welcome aboard!"}),
            )
            .await;
        assert_eq!(status, StatusCode::CREATED, "{body}");
        let inv = &body["items"][0];
        assert_eq!(inv["status"], "pending");
        assert_eq!(inv["email"], "charles@agency.example");
        assert_eq!(inv["role"], "manager");
        let id = inv["id"].as_str().unwrap().to_string();

        let mail = d.sink.wait_for(1, WAIT).await.remove(0);
        assert_eq!(mail.to, vec!["charles@agency.example".to_string()]);
        let subject = mail.header("Subject").unwrap();
        assert!(
            subject.contains("Brand & Co") && subject.contains("olive"),
            "{subject}"
        );
        assert!(mail.text_body().contains("Welcome aboard!"));
        let token = token_from(&mail.text_body());
        assert_eq!(
            token,
            token_from(&mail.html_body()),
            "the same link in both parts"
        );
        assert!(
            mail.text_body()
                .contains("https://app.example.test/invitations/accept?token=")
        );

        let sent = d.eventually(WAIT,
            &format!("/v1/invitations/{id}?actor_user_id=olive"),
            |v| v["delivery"]["status"] == "sent",
        )
        .await;
        assert_eq!(sent["delivery"]["attempts"], 1);

        d.user("charles", "charles@agency.example", "en-GB").await;
        let (status, body) = d
            .post(
                "/v1/invitations/accept",
                json!({"token": token, "user_id": "charles"}),
            )
            .await;
        assert_eq!(status, StatusCode::OK, "{body}");
        assert_eq!(body["invitation"]["status"], "accepted");
        assert_eq!(body["membership"]["role"], "manager");

        let (_, members) = d
            .get(&format!("/v1/businesses/{b}/members?actor_user_id=olive"))
            .await;
        let roles: Vec<(String, String)> = members["items"]
            .as_array()
            .unwrap()
            .iter()
            .map(|m| {
                (
                    m["user_id"].as_str().unwrap().into(),
                    m["role"].as_str().unwrap().into(),
                )
            })
            .collect();
        assert!(
            roles.contains(&("charles".into(), "manager".into())),
            "{members}"
        );

        let mails = d.sink.wait_for(2, WAIT).await;
        let accepted = &mails[1];
        assert_eq!(accepted.to, vec!["olive@brand.example".to_string()]);
        assert_eq!(accepted.header("Subject").unwrap(), "Invitation accepted");
        assert!(accepted.text_body().contains("charles"));

        // The token works once (R12): for anyone else it is used (the user
        // who accepted gets the same answer again, R36, tests/e2e_invitee.rs);
        // unknown tokens get their own code.
        d.user("dora", "dora@agency.example", "en-GB").await;
        let (status, body) = d
            .post(
                "/v1/invitations/accept",
                json!({"token": token, "user_id": "dora"}),
            )
            .await;
        assert_eq!(
            (status, body["code"].as_str()),
            (StatusCode::CONFLICT, Some("token_used")),
            "{body}"
        );
        let (status, body) = d
            .post(
                "/v1/invitations/accept",
                json!({"token": "A".repeat(43), "user_id": "charles"}),
            )
            .await;
        assert_eq!(
            (status, body["code"].as_str()),
            (StatusCode::NOT_FOUND, Some("token_invalid")),
            "{body}"
        );
        let (status, body) = d
            .post("/v1/invitations/decline", json!({"token": "nonsense"}))
            .await;
        assert_eq!(body["code"], "token_invalid", "{status} {body}");

        // R16, R34: the timeline tells the whole story, oldest first.
        let (_, timeline) = d
            .get(&format!(
                "/v1/invitations/{id}/timeline?actor_user_id=olive"
            ))
            .await;
        let types: Vec<&str> = timeline["items"]
            .as_array()
            .unwrap()
            .iter()
            .map(|e| e["type"].as_str().unwrap())
            .collect();
        for expected in [
            "invitation.created",
            "delivery_attempt",
            "invitation.sent",
            "invitation.accepted",
            "member.added",
        ] {
            assert!(
                types.contains(&expected),
                "{expected} missing from {types:?}"
            );
        }
        assert_eq!(types[0], "invitation.created");
        d.stop().await;
    }
}

both_stores! {
    /// R18: every kind of bad input gets its status, names the field, and writes
    /// nothing: no invitation, no email, no quota used.
    async fn bad_input_is_refused_and_changes_nothing(db: Db) {
        let d = TestDaemon::start(&db).await;
        let b = brand(&d).await;
        let path = format!("/v1/businesses/{b}/invitations");
        let cases = [
            (
                json!({"actor_user_id": "olive", "invitees": [{"email": "not-an-address"}]}),
                422,
                "invitees[0].email",
            ),
            (
                json!({"actor_user_id": "olive", "invitees": [{"email": "a@b.example\r\nBcc: x@evil.example"}]}),
                422,
                "invitees[0].email",
            ),
            (
                json!({"actor_user_id": "olive", "invitees": [{"email": "a@b.example", "role": "emperor"}]}),
                422,
                "invitees[0].role",
            ),
            (
                json!({"actor_user_id": "olive", "invitees": [{"email": "a@b.example", "locale": "not a locale"}]}),
                422,
                "invitees[0].locale",
            ),
            (
                json!({"actor_user_id": "olive", "invitees": [{"email": "a@b.example"}], "message": "x".repeat(1001)}),
                422,
                "message",
            ),
            (
                json!({"actor_user_id": "olive", "invitees": [{"email": "a@b.example"}], "colour": "blue"}),
                422,
                "colour",
            ),
            (
                json!({"actor_user_id": "olive", "invitees": [{"email": 42}]}),
                422,
                "invitees[0].email",
            ),
            (
                json!({"actor_user_id": "olive", "invitees": []}),
                422,
                "invitees",
            ),
        ];
        for (body, want, field) in cases {
            let (status, problem) = d.post(&path, body.clone()).await;
            assert_eq!(status.as_u16(), want, "{body} -> {problem}");
            assert_eq!(problem["code"], "validation_failed", "{problem}");
            assert!(
                problem.to_string().contains(field),
                "{field} not named in {problem}"
            );
        }
        let raw = |body: Vec<u8>| {
            d.client()
                .post(d.url(&path))
                .bearer_auth(API_KEY)
                .header("content-type", "application/json")
                .body(body)
        };
        let (status, problem) = d.send(raw(b"{\"actor_user_id\": ".to_vec())).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{problem}");
        let mut big = b"{\"actor_user_id\": \"olive\", \"message\": \"".to_vec();
        big.extend(std::iter::repeat_n(b'x', 70 * 1024));
        big.extend(b"\", \"invitees\": [{\"email\": \"a@b.example\"}]}");
        let (status, problem) = d.send(raw(big)).await;
        assert_eq!(
            (status, problem["code"].as_str()),
            (StatusCode::PAYLOAD_TOO_LARGE, Some("payload_too_large"))
        );
        // A display name or business name with CR/LF is refused too: it would
        // reach email headers (R30).
        let (status, _) = d
            .put(
                "/v1/users/eve",
                json!({"email": "eve@x.example", "display_name": "Eve\r\nBcc: x@evil.example"}),
            )
            .await;
        assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
        let (status, _) = d
            .post(
                "/v1/businesses",
                json!({"name": "Evil\r\nBcc: x@evil.example", "owner_user_id": "olive"}),
            )
            .await;
        assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);

        assert_eq!(db.count("SELECT count(*) FROM invitations").await, 0);
        assert_eq!(db.count("SELECT count(*) FROM email_outbox").await, 0);
        assert_eq!(
            db.count("SELECT count(*) FROM users WHERE user_id = 'eve'").await,
            0
        );
        assert_eq!(db.count("SELECT count(*) FROM businesses").await, 1);
        let (_, quota) = d
            .get(&format!(
                "/v1/businesses/{b}/invitation-quota?actor_user_id=olive"
            ))
            .await;
        assert_eq!(
            (quota["used"].as_u64(), quota["remaining"].as_u64()),
            (Some(0), Some(5)),
            "{quota}"
        );
        d.stop().await;
    }
}

both_stores! {
    /// R30: CR/LF in the personal message never adds a header; the HTML part
    /// escapes markup and the text part shows it as typed.
    async fn user_text_never_adds_a_header(db: Db) {
        let d = TestDaemon::start(&db).await;
        let b = brand(&d).await;
        let message = "Hello\r\nBcc: evil@x.example\r\n\r\n<script>alert(1)</script>";
        let (status, body) = d
            .post(&format!("/v1/businesses/{b}/invitations"), json!({"actor_user_id": "olive", "invitees": [{"email": "c@x.example"}], "message": message}))
            .await;
        assert_eq!(status, StatusCode::CREATED, "{body}");
        let mail = d.sink.wait_for(1, WAIT).await.remove(0);
        assert_eq!(
            mail.to,
            vec!["c@x.example".to_string()],
            "exactly one recipient"
        );
        assert!(mail.header("Bcc").is_none());
        let names: Vec<String> = mail
            .header_names()
            .into_iter()
            .map(|n| n.to_ascii_lowercase())
            .collect();
        assert!(!names.contains(&"bcc".to_string()), "{names:?}");
        assert!(
            mail.html_body().contains("&lt;script&gt;"),
            "{}",
            mail.html_body()
        );
        assert!(!mail.html_body().contains("<script>"));
        assert!(mail.text_body().contains("<script>alert(1)</script>"));
        d.stop().await;
    }
}

both_stores! {
    /// R8: the 6th invitation in 24 hours is 429 with Retry-After; R33 shows it.
    async fn the_sixth_invitation_in_a_day_is_rate_limited(db: Db) {
        let d = TestDaemon::start(&db).await;
        let b = brand(&d).await;
        let path = format!("/v1/businesses/{b}/invitations");
        for i in 0..5 {
            let (status, body) = d.post(&path, json!({"actor_user_id": "olive", "invitees": [{"email": format!("p{i}@x.example")}]})).await;
            assert_eq!(status, StatusCode::CREATED, "{body}");
        }
        let resp = d
            .client()
            .post(d.url(&path))
            .bearer_auth(API_KEY)
            .json(&json!({"actor_user_id": "olive", "invitees": [{"email": "p5@x.example"}]}))
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status(), StatusCode::TOO_MANY_REQUESTS);
        let retry_after: u64 = resp.headers()["retry-after"]
            .to_str()
            .unwrap()
            .parse()
            .unwrap();
        assert!(
            retry_after > 23 * 3600 && retry_after <= 24 * 3600,
            "{retry_after}"
        );
        let problem: Value = resp.json().await.unwrap();
        assert_eq!(problem["code"], "rate_limited");
        let (_, quota) = d
            .get(&format!(
                "/v1/businesses/{b}/invitation-quota?actor_user_id=olive"
            ))
            .await;
        assert_eq!(
            (
                quota["used"].as_u64(),
                quota["remaining"].as_u64(),
                quota["limit"].as_u64()
            ),
            (Some(5), Some(0), Some(5))
        );
        assert!(quota["next_slot_at"].is_string());
        assert_eq!(db.count("SELECT count(*) FROM invitations").await, 5);
        d.stop().await;
    }
}

both_stores! {
    /// R2, R3, R14: who may invite, resend and cancel; a cancelled token is dead;
    /// a resend carries the same token and has a cooldown.
    async fn roles_resend_and_cancel(db: Db) {
        let d = TestDaemon::start(&db).await;
        let b = brand(&d).await;
        let path = format!("/v1/businesses/{b}/invitations");
        // An employee joins, then may not invite (R2).
        d.post(
            &path,
            json!({"actor_user_id": "olive", "invitees": [{"email": "emma@x.example"}]}),
        )
        .await;
        let token = token_from(&d.sink.wait_for(1, WAIT).await[0].text_body());
        d.user("emma", "emma@x.example", "en-US").await;
        let (status, body) = d
            .post(
                "/v1/invitations/accept",
                json!({"token": token, "user_id": "emma"}),
            )
            .await;
        assert_eq!(
            (status, body["membership"]["role"].as_str()),
            (StatusCode::OK, Some("employee")),
            "{body}"
        );
        let (status, body) = d
            .post(
                &path,
                json!({"actor_user_id": "emma", "invitees": [{"email": "z@x.example"}]}),
            )
            .await;
        assert_eq!(
            (status, body["code"].as_str()),
            (StatusCode::FORBIDDEN, Some("forbidden"))
        );
        // Nobody invites an owner (R3).
        let (status, _) = d.post(&path, json!({"actor_user_id": "olive", "invitees": [{"email": "z@x.example", "role": "owner"}]})).await;
        assert_eq!(status, StatusCode::FORBIDDEN);
        // An outsider is no member.
        let (status, _) = d
            .post(
                &path,
                json!({"actor_user_id": "stranger", "invitees": [{"email": "z@x.example"}]}),
            )
            .await;
        assert_eq!(status, StatusCode::FORBIDDEN);

        let (_, body) = d
            .post(
                &path,
                json!({"actor_user_id": "olive", "invitees": [{"email": "r@x.example"}]}),
            )
            .await;
        let id = body["items"][0]["id"].as_str().unwrap().to_string();
        let first = d.sink.wait_for(3, WAIT).await.remove(2);
        // Resend: employees may not; right after the first send it is inside the
        // cooldown (R8, R14); once that has passed it carries the same token, and
        // the cooldown starts again.
        let resend = format!("/v1/invitations/{id}/resend");
        let (status, _) = d.post(&resend, json!({"actor_user_id": "emma"})).await;
        assert_eq!(status, StatusCode::FORBIDDEN);
        let (status, body) = d.post(&resend, json!({"actor_user_id": "olive"})).await;
        assert_eq!(
            (status, body["code"].as_str()),
            (StatusCode::TOO_MANY_REQUESTS, Some("rate_limited")),
            "{body}"
        );
        db.exec("UPDATE email_outbox SET created_at = $1", &[ago(11 * 60)])
            .await;
        let (status, body) = d.post(&resend, json!({"actor_user_id": "olive"})).await;
        assert_eq!(status, StatusCode::ACCEPTED, "{body}");
        let second = d.sink.wait_for(4, WAIT).await.remove(3);
        assert_eq!(
            token_from(&first.text_body()),
            token_from(&second.text_body())
        );
        assert_ne!(
            first.header("Message-ID"),
            second.header("Message-ID"),
            "a resend is a new message"
        );
        let (status, body) = d.post(&resend, json!({"actor_user_id": "olive"})).await;
        assert_eq!(
            (status, body["code"].as_str()),
            (StatusCode::TOO_MANY_REQUESTS, Some("rate_limited"))
        );
        // Resends give back no quota and take none (R8).
        let (_, quota) = d
            .get(&format!(
                "/v1/businesses/{b}/invitation-quota?actor_user_id=olive"
            ))
            .await;
        assert_eq!(quota["used"], 2, "{quota}");

        // Cancel: the token stops working at once; a second cancel is invalid.
        let (status, body) = d
            .post(
                &format!("/v1/invitations/{id}/cancel"),
                json!({"actor_user_id": "olive"}),
            )
            .await;
        assert_eq!(
            (status, body["status"].as_str()),
            (StatusCode::OK, Some("cancelled")),
            "{body}"
        );
        d.user("r", "r@x.example", "en-US").await;
        let (status, body) = d
            .post(
                "/v1/invitations/accept",
                json!({"token": token_from(&first.text_body()), "user_id": "r"}),
            )
            .await;
        assert_eq!(
            (status, body["code"].as_str()),
            (StatusCode::CONFLICT, Some("token_used"))
        );
        let (status, body) = d
            .post(
                &format!("/v1/invitations/{id}/cancel"),
                json!({"actor_user_id": "olive"}),
            )
            .await;
        assert_eq!(
            (status, body["code"].as_str()),
            (StatusCode::CONFLICT, Some("invalid_transition"))
        );
        // Inviting an existing member is a conflict (R13).
        let (status, body) = d
            .post(
                &path,
                json!({"actor_user_id": "olive", "invitees": [{"email": "emma@x.example"}]}),
            )
            .await;
        assert_eq!(
            (status, body["code"].as_str()),
            (StatusCode::CONFLICT, Some("conflict"))
        );
        d.stop().await;
    }
}

both_stores! {
    /// API keys: none or a wrong one is 401; health needs none.
    async fn api_keys_are_required(db: Db) {
        let d = TestDaemon::start(&db).await;
        let resp = d
            .client()
            .get(d.url("/v1/businesses/00000000-0000-0000-0000-000000000000?actor_user_id=x"))
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status(), StatusCode::UNAUTHORIZED);
        let resp = d
            .client()
            .get(d.url("/v1/businesses/x?actor_user_id=x"))
            .bearer_auth("wrong")
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status(), StatusCode::UNAUTHORIZED);
        assert_eq!(
            d.client()
                .get(d.url("/healthz"))
                .send()
                .await
                .unwrap()
                .status(),
            StatusCode::OK
        );
        assert_eq!(
            d.client()
                .get(d.url("/readyz"))
                .send()
                .await
                .unwrap()
                .status(),
            StatusCode::OK
        );
        d.stop().await;
    }
}

both_stores! {
    /// Idempotency-Key: the same key and body replays the first response and
    /// creates nothing more; the same key with another body is 422.
    async fn idempotency_key_replays(db: Db) {
        let d = TestDaemon::start(&db).await;
        let b = brand(&d).await;
        let path = format!("/v1/businesses/{b}/invitations");
        let body = json!({"actor_user_id": "olive", "invitees": [{"email": "once@x.example"}]});
        let post = |body: &Value| {
            d.client()
                .post(d.url(&path))
                .bearer_auth(API_KEY)
                .header("Idempotency-Key", "k-1")
                .json(body)
        };
        let (s1, b1) = d.send(post(&body)).await;
        let (s2, b2) = d.send(post(&body)).await;
        assert_eq!((s1, s2), (StatusCode::CREATED, StatusCode::CREATED));
        assert_eq!(b1, b2);
        let (s3, b3) = d
            .send(post(
                &json!({"actor_user_id": "olive", "invitees": [{"email": "other@x.example"}]}),
            ))
            .await;
        assert_eq!(
            (s3, b3["code"].as_str()),
            (StatusCode::UNPROCESSABLE_ENTITY, Some("validation_failed"))
        );
        assert_eq!(db.count("SELECT count(*) FROM invitations").await, 1);
        d.stop().await;
    }
}

/// The one shutdown path stops the actors and closes every connection the
/// daemon opened, the LISTEN connection included.
#[sqlx::test(migrations = false)]
async fn shutdown_leaves_no_connection_behind(pool: PgPool) {
    let d = TestDaemon::start(&pool).await;
    brand(&d).await;
    let others = "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() AND application_name = 'invited'";
    assert!(
        count(&pool, others).await > 0,
        "the daemon is connected while it runs"
    );
    d.stop().await;
    support::wait::eventually(
        Duration::from_secs(5),
        "every daemon connection closing after shutdown",
        || async {
            if count(&pool, others).await == 0 {
                return Ok(());
            }
            let who: Vec<String> = sqlx::query_scalar(
                "SELECT coalesce(query, '') FROM pg_stat_activity WHERE datname = current_database() AND application_name = 'invited'",
            )
            .fetch_all(&pool)
            .await
            .unwrap();
            Err(format!("connections left after shutdown: {who:?}"))
        },
    )
    .await;
}

both_stores! {
    /// Listing: newest first, cursor pagination without gaps or repeats, and the
    /// status filter.
    async fn listing_pages_and_filters(db: Db) {
        let d = TestDaemon::start(&db).await;
        let b = brand(&d).await;
        let path = format!("/v1/businesses/{b}/invitations");
        let mut created = Vec::new();
        for i in 0..5 {
            let (_, body) = d.post(&path, json!({"actor_user_id": "olive", "invitees": [{"email": format!("l{i}@x.example")}]})).await;
            created.push(body["items"][0]["id"].as_str().unwrap().to_string());
        }
        let (status, _) = d
            .post(
                &format!("/v1/invitations/{}/cancel", created[1]),
                json!({"actor_user_id": "olive"}),
            )
            .await;
        assert_eq!(status, StatusCode::OK);

        let mut seen = Vec::new();
        let mut cursor: Option<String> = None;
        loop {
            let url = match &cursor {
                Some(c) => format!("{path}?actor_user_id=olive&limit=2&cursor={c}"),
                None => format!("{path}?actor_user_id=olive&limit=2"),
            };
            let (status, page) = d.get(&url).await;
            assert_eq!(status, StatusCode::OK, "{page}");
            let items = page["items"].as_array().unwrap();
            assert!(items.len() <= 2);
            seen.extend(items.iter().map(|i| i["id"].as_str().unwrap().to_string()));
            match page["next_cursor"].as_str() {
                Some(c) => cursor = Some(c.to_string()),
                None => break,
            }
        }
        let mut newest_first = created.clone();
        newest_first.reverse();
        assert_eq!(seen, newest_first);

        let (_, cancelled) = d
            .get(&format!("{path}?actor_user_id=olive&status=cancelled"))
            .await;
        let ids: Vec<&str> = cancelled["items"]
            .as_array()
            .unwrap()
            .iter()
            .map(|i| i["id"].as_str().unwrap())
            .collect();
        assert_eq!(ids, vec![created[1].as_str()]);
        let (_, pending) = d
            .get(&format!("{path}?actor_user_id=olive&status=pending"))
            .await;
        assert_eq!(pending["items"].as_array().unwrap().len(), 4);
        let (status, problem) = d
            .get(&format!("{path}?actor_user_id=olive&status=bogus"))
            .await;
        assert_eq!(
            (status, problem["code"].as_str()),
            (StatusCode::UNPROCESSABLE_ENTITY, Some("validation_failed"))
        );
        let (status, _) = d
            .get(&format!("{path}?actor_user_id=olive&limit=501"))
            .await;
        assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
        d.stop().await;
    }
}

both_stores! {
    /// Issue 17: an invitation's actor exists only for an invitation that
    /// exists. Commands on an unknown id are `404 not_found` and start no
    /// actor; a command on a real one starts exactly one.
    async fn commands_on_an_unknown_invitation_are_404_and_spawn_no_actor(db: Db) {
        let d = TestDaemon::start(&db).await;
        let b = brand(&d).await;
        let live = || async {
            d.app.as_ref().unwrap().invitations.stats().await.unwrap().live
        };
        let unknown = uuid::Uuid::now_v7();
        for command in ["cancel", "resend", "accept", "decline"] {
            let (status, body) = d
                .post(
                    &format!("/v1/invitations/{unknown}/{command}"),
                    json!({"actor_user_id": "olive"}),
                )
                .await;
            assert_eq!(status, StatusCode::NOT_FOUND, "{command}: {body}");
            assert_eq!(body["code"], "not_found", "{command}: {body}");
        }
        assert_eq!(live().await, 0, "no actor for an invitation that does not exist");

        let (status, body) = d
            .post(
                &format!("/v1/businesses/{b}/invitations"),
                json!({"actor_user_id": "olive", "invitees": [{"email": "real@x.example"}]}),
            )
            .await;
        assert_eq!(status, StatusCode::CREATED, "{body}");
        let id = body["items"][0]["id"].as_str().unwrap().to_string();
        let (status, body) = d
            .post(
                &format!("/v1/invitations/{id}/cancel"),
                json!({"actor_user_id": "olive"}),
            )
            .await;
        assert_eq!(status, StatusCode::OK, "{body}");
        assert_eq!(body["status"], "cancelled");
        assert_eq!(live().await, 1);
        d.stop().await;
    }
}
