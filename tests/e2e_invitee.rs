//! The invitee's journey, end to end (R35–R37): the preview of a token, the
//! repeat-safe accept and decline, and the in-app list and answers by id.
//! The daemon runs on port 0 against a fresh database and a real SMTP sink,
//! driven over HTTP like an app would. Every test runs on both stores
//! (`both_stores!`) except the NATS one, which needs the NATS server and is
//! Postgres-only like `e2e_nats.rs`.

mod support;

use std::time::Duration;

use reqwest::StatusCode;
use serde_json::{Value, json};
use support::daemon::{TestDaemon, token_from};
use support::db::{Arg, Db, ago};
use support::scenario::{of_type, timeline_as};
use uuid::Uuid;

const WAIT: Duration = Duration::from_secs(20);

/// Olive (display name "Olive Oyl") owns Brand & Co.
async fn brand(d: &TestDaemon) -> String {
    let (status, body) = d
        .put(
            "/v1/users/olive",
            json!({"email": "olive@brand.example", "display_name": "Olive Oyl", "locale": "en-US"}),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    d.business("Brand & Co", "olive").await
}

/// Invites one address as `actor`; the invitation's id.
async fn invite(d: &TestDaemon, business: &str, actor: &str, email: &str, role: &str) -> String {
    let (status, body) = d
        .post(
            &format!("/v1/businesses/{business}/invitations"),
            json!({"actor_user_id": actor, "invitees": [{"email": email, "role": role}],
                   "message": "Welcome aboard!"}),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    body["items"][0]["id"].as_str().unwrap().to_string()
}

/// The token of the first email to `to` (emails arrive in no set order).
async fn token_for(d: &TestDaemon, to: &str) -> String {
    let mut n = 1;
    loop {
        let mails = d.sink.wait_for(n, WAIT).await;
        if let Some(mail) = mails.iter().find(|m| m.to == [to]) {
            return token_from(&mail.text_body());
        }
        n = mails.len() + 1;
    }
}

async fn preview(d: &TestDaemon, token: &str) -> (StatusCode, Value) {
    d.post("/v1/invitations/preview", json!({"token": token}))
        .await
}

/// The invitation once its email is sent: from then on it changes only by
/// the test's hand, so two answers can be compared whole.
async fn delivered(d: &TestDaemon, id: &str, actor: &str) -> Value {
    d.eventually(
        WAIT,
        &format!("/v1/invitations/{id}?actor_user_id={actor}"),
        |v| v["delivery"]["status"] == "sent",
    )
    .await
}

/// Moves an invitation's expiry a minute into the past (and its creation
/// before that), without the sweep: still `pending` in its row.
async fn expire_unswept(db: &Db, id: &str) {
    db.exec(
        "UPDATE invitations SET created_at = $1, expires_at = $2 WHERE id = $3",
        &[ago(120), ago(60), Arg::Uuid(Uuid::parse_str(id).unwrap())],
    )
    .await;
}

async fn stored_status(db: &Db, id: &str) -> String {
    db.strings_with(
        "SELECT CAST(status AS TEXT) FROM invitations WHERE id = $1",
        &[Arg::Uuid(Uuid::parse_str(id).unwrap())],
    )
    .await
    .remove(0)
}

both_stores! {
    /// R35: a preview names the business, the inviter, the role, the message,
    /// the locale, the status and whether (or why not) it can be accepted,
    /// for a pending, an accepted, an expired (not yet swept), a cancelled
    /// and a declined invitation; it changes nothing and shows no address.
    /// Every token that opens no member invitation gets the same 404.
    async fn a_preview_tells_what_the_token_opens_and_changes_nothing(db: Db) {
        let d = TestDaemon::start(&db).await;
        let b = brand(&d).await;
        let id = invite(&d, &b, "olive", "Charles@Agency.example", "manager").await;
        let token = token_for(&d, "charles@agency.example").await;
        let invitation = delivered(&d, &id, "olive").await;
        let before = timeline_as(&d, &id, "olive").await.len();

        let (status, body) = preview(&d, &token).await;
        assert_eq!(status, StatusCode::OK, "{body}");
        assert_eq!(
            body,
            json!({
                "id": id, "kind": "member",
                "business": {"id": b, "name": "Brand & Co"},
                "invited_by": {"user_id": "olive", "display_name": "Olive Oyl"},
                "role": "manager", "message": "Welcome aboard!", "locale": "en-US",
                "status": "pending", "expires_at": invitation["expires_at"],
                "can_accept": true, "reason": null,
            })
        );
        assert!(!body.to_string().contains("agency.example"), "no address: {body}");
        // Nothing changed: the same answer again, no event, still pending.
        assert_eq!(preview(&d, &token).await.1, body);
        assert_eq!(timeline_as(&d, &id, "olive").await.len(), before);
        let (_, again) = d.get(&format!("/v1/invitations/{id}?actor_user_id=olive")).await;
        assert_eq!(again["updated_at"], invitation["updated_at"]);

        // Accepted: the token is used.
        d.user("charles", "charles@agency.example", "en-GB").await;
        let (status, body) = d
            .post("/v1/invitations/accept", json!({"token": token, "user_id": "charles"}))
            .await;
        assert_eq!(status, StatusCode::OK, "{body}");
        let (status, body) = preview(&d, &token).await;
        assert_eq!(status, StatusCode::OK, "{body}");
        assert_eq!(
            (&body["status"], &body["can_accept"], &body["reason"]),
            (&json!("accepted"), &json!(false), &json!("token_used"))
        );

        // Past its expiry but not yet swept: expired, and still pending inside.
        let expired = invite(&d, &b, "olive", "late@x.example", "employee").await;
        let late_token = token_for(&d, "late@x.example").await;
        expire_unswept(&db, &expired).await;
        let (status, body) = preview(&d, &late_token).await;
        assert_eq!(status, StatusCode::OK, "{body}");
        assert_eq!(
            (&body["status"], &body["can_accept"], &body["reason"]),
            (&json!("expired"), &json!(false), &json!("token_expired"))
        );
        assert_eq!(stored_status(&db, &expired).await, "pending");

        // Cancelled and declined name themselves.
        let cancelled = invite(&d, &b, "olive", "gone@x.example", "employee").await;
        let gone_token = token_for(&d, "gone@x.example").await;
        let (status, _) = d
            .post(&format!("/v1/invitations/{cancelled}/cancel"), json!({"actor_user_id": "olive"}))
            .await;
        assert_eq!(status, StatusCode::OK);
        let (_, body) = preview(&d, &gone_token).await;
        assert_eq!((&body["can_accept"], &body["reason"]), (&json!(false), &json!("cancelled")));
        invite(&d, &b, "olive", "no@x.example", "employee").await;
        let no_token = token_for(&d, "no@x.example").await;
        let (status, _) = d.post("/v1/invitations/decline", json!({"token": no_token})).await;
        assert_eq!(status, StatusCode::OK);
        let (_, body) = preview(&d, &no_token).await;
        assert_eq!((&body["can_accept"], &body["reason"]), (&json!(false), &json!("declined")));

        // Unknown and malformed tokens: one and the same answer.
        let (status, unknown) = preview(&d, &"A".repeat(43)).await;
        assert_eq!(status, StatusCode::NOT_FOUND, "{unknown}");
        assert_eq!(unknown["code"], "token_invalid");
        let (status, malformed) = preview(&d, "nonsense").await;
        assert_eq!(status, StatusCode::NOT_FOUND);
        assert_eq!(malformed, unknown);
        let (status, body) = d.post("/v1/invitations/preview", json!({"token": token, "user_id": "x"})).await;
        assert_eq!((status, body["code"].as_str()), (StatusCode::UNPROCESSABLE_ENTITY, Some("validation_failed")));
        d.stop().await;
    }
}

both_stores! {
    /// R36: the user who accepted gets the same answer again, also from a
    /// daemon started afresh on the same database (the answer comes from what
    /// is stored); nothing is written again: one `member.added` (via
    /// `token`), one "Invitation accepted" email. Another user: `token_used`.
    async fn an_accept_repeated_by_its_user_gets_the_same_answer(db: Db) {
        let d = TestDaemon::start(&db).await;
        let b = brand(&d).await;
        let id = invite(&d, &b, "olive", "charles@agency.example", "manager").await;
        let token = token_for(&d, "charles@agency.example").await;
        delivered(&d, &id, "olive").await;
        d.user("charles", "charles@agency.example", "en-GB").await;
        d.user("dora", "dora@x.example", "en-GB").await;
        let accept = |user: &str| json!({"token": token, "user_id": user});

        let (status, first) = d.post("/v1/invitations/accept", accept("charles")).await;
        assert_eq!(status, StatusCode::OK, "{first}");
        assert_eq!(first["membership"]["role"], "manager");
        let (status, second) = d.post("/v1/invitations/accept", accept("charles")).await;
        assert_eq!(status, StatusCode::OK, "{second}");
        assert_eq!(second, first);

        let (status, body) = d.post("/v1/invitations/accept", accept("dora")).await;
        assert_eq!(
            (status, body["code"].as_str()),
            (StatusCode::CONFLICT, Some("token_used")),
            "{body}"
        );

        // The retry after a crash finds the committed state.
        d.stop().await;
        let d = TestDaemon::start(&db).await;
        let (status, third) = d.post("/v1/invitations/accept", accept("charles")).await;
        assert_eq!(status, StatusCode::OK, "{third}");
        assert_eq!(third, first);

        let items = timeline_as(&d, &id, "olive").await;
        assert_eq!(of_type(&items, "invitation.accepted").len(), 1);
        let added = of_type(&items, "member.added");
        assert_eq!(added.len(), 1);
        assert_eq!(added[0]["data"]["via"], "token");
        let accepted_emails = db
            .count_with(
                "SELECT count(*) FROM email_outbox WHERE invitation_id = $1 AND template = 'invitation_accepted'",
                &[Arg::Uuid(Uuid::parse_str(&id).unwrap())],
            )
            .await;
        assert_eq!(accepted_emails, 1);
        d.stop().await;
    }
}

both_stores! {
    /// R36: a decline by token repeated gets the same answer; the invitation
    /// stays declined (an accept then is `token_used`) with one event.
    async fn a_repeated_decline_gets_the_same_answer(db: Db) {
        let d = TestDaemon::start(&db).await;
        let b = brand(&d).await;
        let id = invite(&d, &b, "olive", "charles@agency.example", "employee").await;
        let token = token_for(&d, "charles@agency.example").await;
        delivered(&d, &id, "olive").await;
        let (status, first) = d.post("/v1/invitations/decline", json!({"token": token})).await;
        assert_eq!(status, StatusCode::OK, "{first}");
        assert_eq!(first["status"], "declined");
        let (status, second) = d.post("/v1/invitations/decline", json!({"token": token})).await;
        assert_eq!(status, StatusCode::OK, "{second}");
        assert_eq!(second, first);

        d.user("charles", "charles@agency.example", "en-GB").await;
        let (status, body) = d
            .post("/v1/invitations/accept", json!({"token": token, "user_id": "charles"}))
            .await;
        assert_eq!((status, body["code"].as_str()), (StatusCode::CONFLICT, Some("token_used")));
        assert_eq!(of_type(&timeline_as(&d, &id, "olive").await, "invitation.declined").len(), 1);
        d.stop().await;
    }
}

both_stores! {
    /// R37: a user sees the member invitations addressed to their email in
    /// every business, whatever the case of the address on either side, each
    /// with its business and inviter; pages; `status` counts an unswept
    /// expired invitation as expired; an unknown user is 404.
    async fn a_user_lists_their_invitations_across_businesses(db: Db) {
        let d = TestDaemon::start(&db).await;
        let brand_id = brand(&d).await;
        d.user("pat", "pat@agency.example", "fr-FR").await;
        let agency = d.business("Agency", "pat").await;
        d.user("charles", "Charles@Agency.Example", "en-GB").await;

        let first = invite(&d, &brand_id, "olive", "CHARLES@agency.example", "manager").await;
        invite(&d, &brand_id, "olive", "dora@x.example", "employee").await;
        let second = invite(&d, &agency, "pat", "charles@AGENCY.example", "employee").await;

        let (status, body) = d.get("/v1/users/charles/invitations?status=pending").await;
        assert_eq!(status, StatusCode::OK, "{body}");
        let items = body["items"].as_array().unwrap();
        let ids: Vec<&str> = items.iter().map(|i| i["id"].as_str().unwrap()).collect();
        assert_eq!(ids, [second.as_str(), first.as_str()], "newest first: {body}");
        assert_eq!(body["next_cursor"], Value::Null);
        assert_eq!(items[0]["business"], json!({"id": agency, "name": "Agency"}));
        assert_eq!(items[0]["invited_by"], json!({"user_id": "pat", "display_name": "pat"}));
        assert_eq!(items[1]["business"], json!({"id": brand_id, "name": "Brand & Co"}));
        assert_eq!(
            items[1]["invited_by"],
            json!({"user_id": "olive", "display_name": "Olive Oyl"})
        );
        assert_eq!(
            (&items[1]["role"], &items[1]["status"], &items[1]["kind"]),
            (&json!("manager"), &json!("pending"), &json!("member"))
        );

        // One at a time.
        let (_, page) = d.get("/v1/users/charles/invitations?limit=1").await;
        assert_eq!(page["items"][0]["id"], second.as_str());
        let cursor = page["next_cursor"].as_str().expect("a next page").to_string();
        let (_, page) = d
            .get(&format!("/v1/users/charles/invitations?limit=1&cursor={cursor}"))
            .await;
        assert_eq!(page["items"][0]["id"], first.as_str());

        // Cancelled, and expired before the sweep: no longer pending.
        let (status, _) = d
            .post(&format!("/v1/invitations/{second}/cancel"), json!({"actor_user_id": "pat"}))
            .await;
        assert_eq!(status, StatusCode::OK);
        expire_unswept(&db, &first).await;
        let (_, pending) = d.get("/v1/users/charles/invitations?status=pending").await;
        assert_eq!(pending["items"], json!([]));
        let (_, expired) = d.get("/v1/users/charles/invitations?status=expired").await;
        assert_eq!(expired["items"][0]["id"], first.as_str());
        assert_eq!(expired["items"][0]["status"], "expired");
        let (_, all) = d.get("/v1/users/charles/invitations").await;
        assert_eq!(all["items"].as_array().unwrap().len(), 2);

        let (status, body) = d.get("/v1/users/nobody/invitations").await;
        assert_eq!((status, body["code"].as_str()), (StatusCode::NOT_FOUND, Some("not_found")));
        let (status, body) = d.get("/v1/users/charles/invitations?status=done").await;
        assert_eq!(
            (status, body["errors"][0]["field"].as_str()),
            (StatusCode::UNPROCESSABLE_ENTITY, Some("status"))
        );
        d.stop().await;
    }
}

both_stores! {
    /// R37: a member invitation accepted in the app by its id: refused
    /// without `email_verified: true` (`email_unverified`) and for a user
    /// whose email is another (`forbidden`), changing nothing; R15 applies;
    /// then the membership, via `in_app`, and the same answer on a repeat
    /// (R36). A decline in the app likewise.
    async fn the_invitee_answers_in_the_app(db: Db) {
        let d = TestDaemon::start(&db).await;
        let b = brand(&d).await;
        d.user("charles", "Charles@Agency.example", "en-GB").await;
        d.user("dora", "dora@x.example", "en-GB").await;
        let id = invite(&d, &b, "olive", "charles@agency.example", "manager").await;
        let accept = format!("/v1/invitations/{id}/accept");
        let before = delivered(&d, &id, "olive").await;
        let events = timeline_as(&d, &id, "olive").await.len();

        for body in [
            json!({"actor_user_id": "charles"}),
            json!({"actor_user_id": "charles", "email_verified": false}),
        ] {
            let (status, problem) = d.post(&accept, body.clone()).await;
            assert_eq!(
                (status, problem["code"].as_str()),
                (StatusCode::FORBIDDEN, Some("email_unverified")),
                "{body}: {problem}"
            );
        }
        let (status, problem) = d
            .post(&accept, json!({"actor_user_id": "dora", "email_verified": true}))
            .await;
        assert_eq!(
            (status, problem["code"].as_str()),
            (StatusCode::FORBIDDEN, Some("forbidden")),
            "{problem}"
        );
        let (status, problem) = d
            .post(
                &format!("/v1/invitations/{id}/decline"),
                json!({"actor_user_id": "dora", "email_verified": true}),
            )
            .await;
        assert_eq!((status, problem["code"].as_str()), (StatusCode::FORBIDDEN, Some("forbidden")));

        // R15: managers must have used 2FA in this business.
        let (status, body) = d
            .put(
                &format!("/v1/businesses/{b}/security"),
                json!({"actor_user_id": "olive", "require_2fa": "managers"}),
            )
            .await;
        assert_eq!(status, StatusCode::OK, "{body}");
        let (status, problem) = d
            .post(&accept, json!({"actor_user_id": "charles", "email_verified": true}))
            .await;
        assert_eq!(
            (status, problem["code"].as_str()),
            (StatusCode::FORBIDDEN, Some("mfa_required")),
            "{problem}"
        );

        // Nothing changed by any of those.
        let (_, after) = d.get(&format!("/v1/invitations/{id}?actor_user_id=olive")).await;
        assert_eq!(after, before);
        assert_eq!(timeline_as(&d, &id, "olive").await.len(), events);
        let (_, members) = d.get(&format!("/v1/businesses/{b}/members?actor_user_id=olive")).await;
        assert_eq!(members["items"].as_array().unwrap().len(), 1);

        let answer = json!({"actor_user_id": "charles", "email_verified": true, "mfa_verified": true});
        let (status, first) = d.post(&accept, answer.clone()).await;
        assert_eq!(status, StatusCode::OK, "{first}");
        assert_eq!(first["invitation"]["status"], "accepted");
        assert_eq!(first["membership"]["user_id"], "charles");
        assert_eq!(first["membership"]["role"], "manager");
        assert!(first.get("partnership").is_none(), "{first}");
        let (status, second) = d.post(&accept, answer).await;
        assert_eq!(status, StatusCode::OK, "{second}");
        assert_eq!(second, first);
        let items = timeline_as(&d, &id, "olive").await;
        let added = of_type(&items, "member.added");
        assert_eq!(added.len(), 1);
        assert_eq!(added[0]["data"]["via"], "in_app");
        assert_eq!(added[0]["actor_user_id"], "charles");

        // A decline in the app, repeated.
        d.user("pat", "pat@agency.example", "fr-FR").await;
        let agency = d.business("Agency", "pat").await;
        let other = invite(&d, &agency, "pat", "CHARLES@agency.example", "employee").await;
        delivered(&d, &other, "pat").await;
        let decline = format!("/v1/invitations/{other}/decline");
        let (status, problem) = d.post(&decline, json!({"actor_user_id": "charles"})).await;
        assert_eq!((status, problem["code"].as_str()), (StatusCode::FORBIDDEN, Some("email_unverified")));
        let answer = json!({"actor_user_id": "charles", "email_verified": true});
        let (status, first) = d.post(&decline, answer.clone()).await;
        assert_eq!(status, StatusCode::OK, "{first}");
        assert_eq!(first["status"], "declined");
        let (status, second) = d.post(&decline, answer).await;
        assert_eq!((status, &second), (StatusCode::OK, &first));
        let declined = of_type(&timeline_as(&d, &other, "pat").await, "invitation.declined")
            .into_iter()
            .map(|e| e["actor_user_id"].clone())
            .collect::<Vec<_>>();
        assert_eq!(declined, [json!("charles")]);
        d.stop().await;
    }
}

/// R35 through NATS: a `preview` command answers on the results subject
/// with the preview, and an unknown token with the same problem as HTTP.
/// Postgres-only, like `e2e_nats.rs`.
#[sqlx::test(migrations = false)]
async fn a_nats_preview_command_answers_with_the_preview(pool: sqlx::PgPool) {
    use async_nats::jetstream::{self, stream};
    use invited::events::bus::stream_name;
    use support::smtp_sink::SmtpSink;

    const NATS: &str = "nats://127.0.0.1:4222";
    let prefix = format!("t{}", Uuid::now_v7().simple());
    let client = async_nats::connect(NATS)
        .await
        .expect("NATS runs on 127.0.0.1:4222 (.ci/run starts it)");
    let js = jetstream::new(client.clone());
    js.create_stream(stream::Config {
        name: stream_name(&prefix, "COMMANDS"),
        subjects: vec![format!("{prefix}.commands.>")],
        retention: stream::RetentionPolicy::WorkQueue,
        ..Default::default()
    })
    .await
    .unwrap();
    let mut results = client
        .subscribe(format!("{prefix}.results.>"))
        .await
        .unwrap();
    client.flush().await.unwrap();
    let config_prefix = prefix.clone();
    let d = TestDaemon::start_with(&pool, SmtpSink::start(), move |config| {
        config.nats.url = Some(NATS.to_string());
        config.nats.subject_prefix = config_prefix;
    })
    .await;
    let b = brand(&d).await;
    let id = invite(&d, &b, "olive", "charles@agency.example", "manager").await;
    let token = token_for(&d, "charles@agency.example").await;
    let (_, over_http) = preview(&d, &token).await;

    let result = nats_preview(
        &js,
        &mut results,
        &prefix,
        "preview-1",
        json!({"token": token}),
    )
    .await;
    assert_eq!(result, json!({"status": 200, "result": over_http}));
    assert_eq!(result["result"]["id"], id.as_str());
    let problem = nats_preview(
        &js,
        &mut results,
        &prefix,
        "preview-2",
        json!({"token": "nonsense"}),
    )
    .await;
    assert_eq!(
        (problem["status"].as_i64(), problem["code"].as_str()),
        (Some(404), Some("token_invalid"))
    );

    for what in ["COMMANDS", "EVENTS"] {
        let _ = js.delete_stream(stream_name(&prefix, what)).await;
    }
    d.stop().await;
}

/// Publishes a `preview` command and reads its result.
async fn nats_preview(
    js: &async_nats::jetstream::Context,
    results: &mut async_nats::Subscriber,
    prefix: &str,
    msg_id: &str,
    body: Value,
) -> Value {
    use async_nats::jetstream::message::PublishMessage;
    use futures::StreamExt as _;
    js.send_publish(
        format!("{prefix}.commands.preview"),
        PublishMessage::build()
            .payload(serde_json::to_vec(&body).unwrap().into())
            .message_id(msg_id),
    )
    .await
    .unwrap()
    .await
    .expect("the commands stream stores the command");
    let message = tokio::time::timeout(WAIT, results.next())
        .await
        .expect("a result in time")
        .expect("the subscription is open");
    assert_eq!(
        message.subject.as_str(),
        format!("{prefix}.results.{msg_id}")
    );
    serde_json::from_slice(&message.payload).unwrap()
}

both_stores! {
    /// R37 with R13: an in-app accept by a user who is already a member is
    /// `409 conflict`, as a token accept is, and the invitation stays pending.
    /// (The address became the member's after the invitation was sent.)
    async fn an_in_app_accept_by_a_member_is_a_conflict(db: Db) {
        let d = TestDaemon::start(&db).await;
        let b = brand(&d).await;
        let id = invite(&d, &b, "olive", "new@brand.example", "employee").await;
        let (status, body) = d
            .put(
                "/v1/users/olive",
                json!({"email": "NEW@brand.example", "display_name": "Olive Oyl", "locale": "en-US"}),
            )
            .await;
        assert_eq!(status, StatusCode::OK, "{body}");
        let (status, body) = d
            .post(
                &format!("/v1/invitations/{id}/accept"),
                json!({"actor_user_id": "olive", "email_verified": true}),
            )
            .await;
        assert_eq!(
            (status, body["code"].as_str()),
            (StatusCode::CONFLICT, Some("conflict")),
            "{body}"
        );
        assert_eq!(stored_status(&db, &id).await, "pending");
        d.stop().await;
    }
}
