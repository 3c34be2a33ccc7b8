//! End to end, on both stores: what the creator of a member invitation may
//! choose (R38: `delivery: "none"`, the app delivers the link itself; R39: a
//! `ttl` and `metadata`), and the names that are refused because they would
//! reorder or hide text in an email (R41: bidirectional-control and
//! zero-width characters). The daemon runs in-process against a real SMTP
//! sink and is driven over HTTP like an app would.

mod support;

use std::time::Duration;

use chrono::{DateTime, Utc};
use reqwest::StatusCode;
use serde_json::{Value, json};
use support::daemon::{ACCEPT_URL, TestDaemon};
use support::db::{Arg, Db, ago};
use support::scenario::{brand, of_type, timeline};
use support::smtp_sink::SmtpSink;

const WAIT: Duration = Duration::from_secs(30);

/// Creates invitations with `extra` merged into the body; the items.
async fn create(d: &TestDaemon, b: &str, emails: &[&str], extra: Value) -> Vec<Value> {
    let (status, body) = d
        .post(
            &format!("/v1/businesses/{b}/invitations"),
            body(emails, extra),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    body["items"].as_array().unwrap().clone()
}

fn body(emails: &[&str], extra: Value) -> Value {
    let invitees: Vec<Value> = emails.iter().map(|e| json!({"email": e})).collect();
    let mut body = json!({"actor_user_id": "olive", "invitees": invitees});
    for (k, v) in extra.as_object().unwrap() {
        body[k] = v.clone();
    }
    body
}

async fn get(d: &TestDaemon, id: &str) -> Value {
    let (status, body) = d
        .get(&format!("/v1/invitations/{id}?actor_user_id=olive"))
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    body
}

fn token_of(accept_url: &str) -> String {
    let prefix = ACCEPT_URL.replace("{token}", "");
    accept_url
        .strip_prefix(&prefix)
        .unwrap_or_else(|| panic!("{accept_url} is not a link of {ACCEPT_URL}"))
        .to_string()
}

fn time(v: &Value) -> DateTime<Utc> {
    v.as_str().unwrap().parse().unwrap()
}

/// What a creation writes: invitations, their `invitation.created` events
/// (the dispatcher's own events, `invitation.sent`, come and go on their
/// own time) and outbox rows.
async fn written(db: &Db) -> (i64, i64, i64) {
    (
        db.count("SELECT count(*) FROM invitations").await,
        db.count("SELECT count(*) FROM events WHERE type = 'invitation.created'")
            .await,
        db.count("SELECT count(*) FROM email_outbox").await,
    )
}

/// A refusal: `422 validation_failed` naming `field`.
fn refused(status: StatusCode, problem: &Value, field: &str) {
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{problem}");
    assert_eq!(problem["code"], "validation_failed", "{problem}");
    assert_eq!(problem["errors"][0]["field"], field, "{problem}");
}

both_stores! {
    /// R38: `delivery: "none"`: the creation answer carries a working accept
    /// link, once; no email is sent, none on resend (which answers the same
    /// link and records nothing), no reminder ever.
    async fn delivery_none_hands_out_the_link_and_sends_nothing(db: Db) {
        let d = TestDaemon::start_with(&db, SmtpSink::start(), |c| {
            c.invitations.reminders = vec![Duration::from_secs(3600)];
        })
        .await;
        let b = brand(&d).await;
        let own = create(&d, &b, &["own@x.example"], json!({"delivery": "none"})).await.remove(0);
        let id = own["id"].as_str().unwrap().to_string();
        assert_eq!(own["delivery_mode"], "none");
        assert_eq!(own["delivery"], Value::Null);
        let accept_url = own["accept_url"].as_str().expect("the link, in the answer").to_string();
        let token = token_of(&accept_url);

        // An emailed invitation created after it: once its email arrived,
        // the dispatcher has run past the moment the first one was created.
        let mailed = create(&d, &b, &["mailed@x.example"], json!({"delivery": "email"})).await.remove(0);
        assert_eq!(mailed["delivery_mode"], "email");
        assert!(mailed.get("accept_url").is_none(), "{mailed}");
        assert_eq!(
            mailed["delivery"],
            json!({"status": "queued", "attempts": 0, "last_error": null, "sent_at": null}),
            "the answer shows the email as the create queued it"
        );
        let mails = d.sink.wait_for(1, WAIT).await;
        d.eventually(WAIT, &format!("/v1/invitations/{}?actor_user_id=olive", mailed["id"].as_str().unwrap()),
            |v| v["delivery"]["status"] == "sent").await;
        assert_eq!(mails[0].to, vec!["mailed@x.example".to_string()]);
        assert_eq!(d.sink.messages().len(), 1, "nothing went to own@x.example");
        assert_eq!(
            db.count_with("SELECT count(*) FROM email_outbox WHERE invitation_id = $1",
                &[Arg::Uuid(id.parse().unwrap())]).await,
            0
        );

        // Reads never show the link.
        let read = get(&d, &id).await;
        assert_eq!(read["delivery_mode"], "none");
        assert!(read.get("accept_url").is_none(), "{read}");
        let (_, list) = d.get(&format!("/v1/businesses/{b}/invitations?actor_user_id=olive")).await;
        assert!(!list.to_string().contains(&token), "{list}");

        // Resend: the same link, twice in a row (no cooldown: nothing is
        // sent), and nothing recorded.
        for _ in 0..2 {
            let (status, body) = d
                .post(&format!("/v1/invitations/{id}/resend"), json!({"actor_user_id": "olive"}))
                .await;
            assert_eq!(status, StatusCode::OK, "{body}");
            assert_eq!(body, json!({"accept_url": accept_url}));
        }
        let items = timeline(&d, &id).await;
        assert!(of_type(&items, "invitation.resent").is_empty(), "{items:?}");
        // The cooldown still applies to an emailed invitation.
        let (status, _) = d
            .post(&format!("/v1/invitations/{}/resend", mailed["id"].as_str().unwrap()),
                json!({"actor_user_id": "olive"}))
            .await;
        assert_eq!(status, StatusCode::TOO_MANY_REQUESTS, "the cooldown still applies to it");

        // An hour later the reminders fall due: the emailed one gets its
        // reminder, the other none.
        db.exec("UPDATE invitations SET created_at = $1", &[ago(61 * 60)]).await;
        let chores = d.app.as_ref().unwrap().services.run_chores().await.unwrap();
        assert_eq!(chores.reminders_queued, 1);
        let mails = d.sink.wait_for(2, WAIT).await;
        assert!(mails.iter().all(|m| m.to == vec!["mailed@x.example".to_string()]), "{:?}",
            mails.iter().map(|m| m.to.clone()).collect::<Vec<_>>());
        assert_eq!(
            db.count_with("SELECT count(*) FROM email_outbox WHERE invitation_id = $1",
                &[Arg::Uuid(id.parse().unwrap())]).await,
            0
        );

        // The link works.
        d.user("owen", "own@x.example", "en-US").await;
        let (status, body) = d
            .post("/v1/invitations/accept", json!({"token": token, "user_id": "owen"}))
            .await;
        assert_eq!(status, StatusCode::OK, "{body}");
        assert_eq!(body["invitation"]["status"], "accepted");
        assert_eq!(body["membership"]["user_id"], "owen");
        assert!(body["invitation"].get("accept_url").is_none());

        // A resend of it now is refused like any other.
        let (status, body) = d
            .post(&format!("/v1/invitations/{id}/resend"), json!({"actor_user_id": "olive"}))
            .await;
        assert_eq!(status, StatusCode::CONFLICT, "{body}");
        d.stop().await;
    }
}

both_stores! {
    /// R38, R31: each invitation of a bulk request gets its own link; a
    /// renewal keeps the delivery mode and the metadata, and its answer
    /// carries the new invitation's own link.
    async fn renew_keeps_the_delivery_mode_and_the_metadata(db: Db) {
        let d = TestDaemon::start(&db).await;
        let b = brand(&d).await;
        let mut items = create(&d, &b, &["own@x.example", "other@x.example"],
            json!({"delivery": "none", "metadata": {"ticket": 7}})).await;
        let links: Vec<&str> = items.iter().map(|i| i["accept_url"].as_str().unwrap()).collect();
        assert_ne!(links[0], links[1], "one link each");
        let first = items.remove(0);
        let id = first["id"].as_str().unwrap();
        let (status, _) = d
            .post(&format!("/v1/invitations/{id}/cancel"), json!({"actor_user_id": "olive"}))
            .await;
        assert_eq!(status, StatusCode::OK);
        let (status, renewed) = d
            .post(&format!("/v1/invitations/{id}/renew"), json!({"actor_user_id": "olive"}))
            .await;
        assert_eq!(status, StatusCode::CREATED, "{renewed}");
        assert_eq!(renewed["delivery_mode"], "none");
        assert_eq!(renewed["metadata"], json!({"ticket": 7}));
        let url = renewed["accept_url"].as_str().expect("the new link");
        assert_ne!(url, first["accept_url"].as_str().unwrap(), "a fresh token");
        let read = get(&d, renewed["id"].as_str().unwrap()).await;
        assert!(read.get("accept_url").is_none(), "{read}");
        assert_eq!(
            db.count("SELECT count(*) FROM email_outbox").await,
            0,
            "neither was emailed"
        );
        d.stop().await;
    }
}

both_stores! {
    /// R39: `ttl` sets the expiry, from 1h up to `invitations.max_ttl`; any
    /// other value, or a `delivery` other than the two, is refused naming the
    /// field, and nothing is written, for any invitee of the request.
    async fn ttl_sets_the_expiry_and_bad_options_write_nothing(db: Db) {
        let d = TestDaemon::start(&db).await;
        let b = brand(&d).await;
        for (ttl, secs) in [("1h", 3600), ("3d", 3 * 86_400)] {
            let email = format!("ttl-{ttl}@x.example");
            let inv = create(&d, &b, &[&email], json!({"ttl": ttl})).await.remove(0);
            let lifetime = time(&inv["expires_at"]) - time(&inv["created_at"]);
            assert_eq!(lifetime.num_seconds(), secs, "{ttl}: {inv}");
            let read = get(&d, inv["id"].as_str().unwrap()).await;
            assert_eq!(read["expires_at"], inv["expires_at"]);
        }
        // Without one: `invitations.ttl` (7 days).
        let plain = create(&d, &b, &["plain@x.example"], json!({})).await.remove(0);
        assert_eq!((time(&plain["expires_at"]) - time(&plain["created_at"])).num_days(), 7);

        let before = written(&db).await;
        for (extra, field) in [
            (json!({"ttl": "30m"}), "ttl"),
            (json!({"ttl": "31d"}), "ttl"),
            (json!({"ttl": "x"}), "ttl"),
            (json!({"delivery": "sms"}), "delivery"),
        ] {
            let (status, problem) = d
                .post(&format!("/v1/businesses/{b}/invitations"),
                    body(&["new1@x.example", "new2@x.example"], extra.clone()))
                .await;
            refused(status, &problem, field);
        }
        assert_eq!(written(&db).await, before, "nothing written");
        d.stop().await;
    }
}

both_stores! {
    /// R39: metadata is kept with every invitation of the request, returned
    /// with it and in its `invitation.created` event, and never put into the
    /// email; a value that is not an object, or over 4 KiB, is refused and
    /// writes nothing.
    async fn metadata_round_trips_and_bad_metadata_writes_nothing(db: Db) {
        let d = TestDaemon::start(&db).await;
        let b = brand(&d).await;
        let metadata = json!({"crm_id": "CRM-MARKER-9431", "tags": ["vip"], "seats": 3});
        let items = create(&d, &b, &["m1@x.example", "m2@x.example"],
            json!({"metadata": metadata})).await;
        for inv in &items {
            assert_eq!(inv["metadata"], metadata);
            let id = inv["id"].as_str().unwrap();
            assert_eq!(get(&d, id).await["metadata"], metadata);
            let events = timeline(&d, id).await;
            let created = of_type(&events, "invitation.created");
            assert_eq!(created.len(), 1, "{events:?}");
            assert_eq!(created[0]["data"]["metadata"], metadata);
            assert_eq!(created[0]["data"]["delivery_mode"], "email");
        }
        // Not in the emails.
        for mail in d.sink.wait_for(2, WAIT).await {
            assert!(!mail.text_body().contains("CRM-MARKER-9431"));
            assert!(!mail.html_body().contains("CRM-MARKER-9431"));
        }
        // Without metadata: an empty object.
        let plain = create(&d, &b, &["m3@x.example"], json!({})).await.remove(0);
        assert_eq!(plain["metadata"], json!({}));

        let before = written(&db).await;
        let five_kib = json!({"blob": "x".repeat(5 * 1024)});
        for bad in [json!([1]), five_kib, json!("text")] {
            let (status, problem) = d
                .post(&format!("/v1/businesses/{b}/invitations"),
                    body(&["new1@x.example", "new2@x.example"], json!({"metadata": bad})))
                .await;
            refused(status, &problem, "metadata");
        }
        assert_eq!(written(&db).await, before, "nothing written");
        d.stop().await;
    }
}

both_stores! {
    /// R41: a display name or a business name with a bidirectional override,
    /// embedding, isolate or mark, or a zero-width character, is refused
    /// naming the field, and nothing is written.
    async fn names_with_bidi_or_zero_width_characters_are_refused(db: Db) {
        let d = TestDaemon::start(&db).await;
        d.user("olive", "olive@brand.example", "en-US").await;
        let users = db.count("SELECT count(*) FROM users").await;
        let businesses = db.count("SELECT count(*) FROM businesses").await;
        for bad in [
            "Ada\u{202E}ecalevoL",
            "Ada\u{2066}x\u{2069}",
            "Ada\u{200F}",
            "Ada\u{200B}Lovelace",
            "\u{FEFF}Ada",
            "Ada\u{2060}",
        ] {
            let (status, problem) = d
                .put("/v1/users/ada", json!({"email": "ada@x.example", "display_name": bad}))
                .await;
            refused(status, &problem, "display_name");
            // An existing user keeps their name too.
            let (status, problem) = d
                .put("/v1/users/olive", json!({"email": "olive@brand.example", "display_name": bad}))
                .await;
            refused(status, &problem, "display_name");
            let (status, problem) = d
                .post("/v1/businesses", json!({"name": bad, "owner_user_id": "olive"}))
                .await;
            refused(status, &problem, "name");
        }
        assert_eq!(db.count("SELECT count(*) FROM users").await, users);
        assert_eq!(db.count("SELECT count(*) FROM businesses").await, businesses);
        assert_eq!(
            db.strings("SELECT display_name FROM users WHERE user_id = 'olive'").await,
            vec!["olive".to_string()]
        );
        // Right-to-left names are names.
        let (status, body) = d
            .post("/v1/businesses", json!({"name": "شركة المحرك", "owner_user_id": "olive"}))
            .await;
        assert_eq!(status, StatusCode::CREATED, "{body}");
        d.stop().await;
    }
}
