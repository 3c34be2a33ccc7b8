//! NATS JetStream, end to end against the real server on 127.0.0.1:4222:
//! commands published by a plain client are run, answered on the results
//! subject and acknowledged once; events are published with `Nats-Msg-Id`.
//! Each test has its own subject prefix (so its own streams) and deletes its
//! streams at the end, so parallel tests and reruns never meet.
//!
//! Postgres-only for now, like `e2e_events.rs`: the store under the sinks is
//! covered on both stores in `tests/store.rs`.

mod support;

use std::time::Duration;

use async_nats::jetstream::{self, message::PublishMessage, stream};
use futures::StreamExt as _;
use invited::events::bus::stream_name;
use reqwest::StatusCode;
use serde_json::{Value, json};
use sqlx::PgPool;
use support::daemon::TestDaemon;
use support::smtp_sink::SmtpSink;
use support::wait::eventually;
use uuid::Uuid;

const NATS: &str = "nats://127.0.0.1:4222";
const WAIT: Duration = Duration::from_secs(30);

struct Bus {
    prefix: String,
    client: async_nats::Client,
    js: jetstream::Context,
}

impl Bus {
    /// A fresh prefix; the commands stream is created here with a 1-second
    /// duplicate window, so that a repeated `Nats-Msg-Id` published after it
    /// reaches the daemon and the daemon's own idempotency is what is tested.
    async fn new() -> Bus {
        let prefix = format!("t{}", Uuid::now_v7().simple());
        let client = async_nats::connect(NATS)
            .await
            .expect("NATS runs on 127.0.0.1:4222 (.ci/run starts it)");
        let js = jetstream::new(client.clone());
        js.create_stream(stream::Config {
            name: stream_name(&prefix, "COMMANDS"),
            subjects: vec![format!("{prefix}.commands.>")],
            retention: stream::RetentionPolicy::WorkQueue,
            duplicate_window: Duration::from_secs(1),
            ..Default::default()
        })
        .await
        .unwrap();
        Bus { prefix, client, js }
    }

    /// Publishes a command; whether the stream stored it (`false`: a
    /// duplicate of `id` within the stream's duplicate window).
    async fn command(&self, name: &str, id: Option<&str>, body: &[u8]) -> bool {
        let mut publish = PublishMessage::build().payload(body.to_vec().into());
        if let Some(id) = id {
            publish = publish.message_id(id);
        }
        let ack = self
            .js
            .send_publish(format!("{}.commands.{name}", self.prefix), publish)
            .await
            .unwrap()
            .await
            .expect("the commands stream answers the publish");
        !ack.duplicate
    }

    async fn subscribe(&self, what: &str) -> async_nats::Subscriber {
        let sub = self
            .client
            .subscribe(format!("{}.{what}.>", self.prefix))
            .await
            .unwrap();
        self.client.flush().await.unwrap();
        sub
    }

    async fn cleanup(&self) {
        for what in ["COMMANDS", "EVENTS"] {
            let _ = self.js.delete_stream(stream_name(&self.prefix, what)).await;
        }
    }
}

async fn next(sub: &mut async_nats::Subscriber) -> async_nats::Message {
    tokio::time::timeout(WAIT, sub.next())
        .await
        .expect("a message in time")
        .expect("the subscription is open")
}

fn json_of(message: &async_nats::Message) -> Value {
    serde_json::from_slice(&message.payload).expect("a JSON payload")
}

fn header(message: &async_nats::Message, name: &str) -> Option<String> {
    message
        .headers
        .as_ref()
        .and_then(|h| h.get(name))
        .map(|v| v.as_str().to_string())
}

async fn daemon(pool: &PgPool, bus: &Bus) -> TestDaemon {
    let prefix = bus.prefix.clone();
    TestDaemon::start_with(pool, SmtpSink::start(), move |config| {
        config.nats.url = Some(NATS.to_string());
        config.nats.subject_prefix = prefix;
        config.events.poll_interval = Duration::from_millis(200);
    })
    .await
}

async fn invitations_of(pool: &PgPool, business: &str) -> i64 {
    sqlx::query_scalar("SELECT count(*) FROM invitations WHERE business_id = $1::uuid")
        .bind(business)
        .fetch_one(pool)
        .await
        .unwrap()
}

/// A command from a plain NATS client creates an invitation; its result
/// appears on `<prefix>.results.<Nats-Msg-Id>`; the same message again (past
/// JetStream's own duplicate window) creates nothing and gets the same
/// result; the invitation's events appear on `<prefix>.events.>` with
/// `Nats-Msg-Id` = the event id.
#[sqlx::test(migrations = false)]
async fn a_nats_command_creates_one_invitation_and_answers_on_the_results_subject(pool: PgPool) {
    let bus = Bus::new().await;
    let mut results = bus.subscribe("results").await;
    let mut events = bus.subscribe("events").await;
    let d = daemon(&pool, &bus).await;
    d.user("olive", "olive@brand.example", "en-US").await;
    let b = d.business("Brand & Co", "olive").await;

    let id = format!("cmd-{}", Uuid::now_v7());
    let command = serde_json::to_vec(&json!({
        "business_id": b,
        "actor_user_id": "olive",
        "invitees": [{"email": "charles@agency.example", "role": "manager"}],
        "message": "Welcome!"
    }))
    .unwrap();
    bus.command("create_invitations", Some(&id), &command).await;

    let result = next(&mut results).await;
    assert_eq!(
        result.subject.as_str(),
        format!("{}.results.{id}", bus.prefix)
    );
    assert_eq!(header(&result, "Invited-Status").as_deref(), Some("201"));
    let body = json_of(&result);
    assert_eq!(body["status"], 201, "{body}");
    let invitation = &body["result"]["items"][0];
    assert_eq!(invitation["email"], "charles@agency.example");
    assert_eq!(invitation["status"], "pending");
    let invitation_id = invitation["id"].as_str().unwrap().to_string();
    assert_eq!(invitations_of(&pool, &b).await, 1);
    // The HTTP API sees the same invitation.
    let (status, got) = d
        .get(&format!(
            "/v1/invitations/{invitation_id}?actor_user_id=olive"
        ))
        .await;
    assert_eq!(status, StatusCode::OK, "{got}");

    // Published again after the stream's duplicate window: the daemon's
    // idempotency key replays the stored result and changes nothing.
    // (The stream says when its window is over: until then it answers the
    // publish as a duplicate and stores nothing.)
    eventually(
        WAIT,
        "the command stored again, past the duplicate window",
        || async {
            if bus.command("create_invitations", Some(&id), &command).await {
                Ok(())
            } else {
                Err("a duplicate".to_string())
            }
        },
    )
    .await;
    let again = next(&mut results).await;
    assert_eq!(
        again.subject.as_str(),
        format!("{}.results.{id}", bus.prefix)
    );
    assert_eq!(json_of(&again), body);
    assert_eq!(invitations_of(&pool, &b).await, 1);
    let keys: i64 = sqlx::query_scalar(
        "SELECT count(*) FROM idempotency_keys WHERE api_key_name = 'nats' AND key = $1 AND status = 201",
    )
    .bind(&id)
    .fetch_one(&pool)
    .await
    .unwrap();
    assert_eq!(keys, 1, "kept with the HTTP Idempotency-Keys, scope nats");

    // The invitation's creation is published as an event.
    let deadline = tokio::time::Instant::now() + WAIT;
    loop {
        let message = tokio::time::timeout_at(deadline, events.next())
            .await
            .expect("invitation.created is published")
            .unwrap();
        let event = json_of(&message);
        if event["type"] == "invitation.created" && event["invitation_id"] == json!(invitation_id) {
            assert_eq!(
                message.subject.as_str(),
                format!("{}.events.invitation.created", bus.prefix)
            );
            assert_eq!(
                header(&message, "Nats-Msg-Id").as_deref(),
                event["id"].as_str()
            );
            assert_eq!(event["business_id"], json!(b));
            break;
        }
    }
    // Kept by the events stream too.
    let mut events_stream = bus
        .js
        .get_stream(stream_name(&bus.prefix, "EVENTS"))
        .await
        .unwrap();
    assert!(events_stream.info().await.unwrap().state.messages >= 1);

    // A user put over the queue (a PUT in HTTP terms).
    let user_cmd = format!("user-{}", Uuid::now_v7());
    bus.command(
        "put_user",
        Some(&user_cmd),
        br#"{"user_id":"charles","email":"charles@agency.example","display_name":"Charles","locale":"en-GB"}"#,
    )
    .await;
    let result = next(&mut results).await;
    assert_eq!(json_of(&result)["status"], 200, "{}", json_of(&result));
    let (status, _) = d.get("/v1/businesses/x?actor_user_id=charles").await;
    assert_eq!(status, StatusCode::NOT_FOUND);

    d.stop().await;
    bus.cleanup().await;
}

/// Malformed commands are answered with the problem HTTP would give and
/// acknowledged: nothing stays pending and nothing is redelivered.
#[sqlx::test(migrations = false)]
async fn a_malformed_command_gets_a_problem_and_is_not_redelivered(pool: PgPool) {
    let bus = Bus::new().await;
    let mut results = bus.subscribe("results").await;
    let d = daemon(&pool, &bus).await;
    d.user("olive", "olive@brand.example", "en-US").await;
    let b = d.business("Brand & Co", "olive").await;

    // Not JSON at all: 400.
    let bad = format!("bad-{}", Uuid::now_v7());
    bus.command("cancel", Some(&bad), b"{not json").await;
    let result = next(&mut results).await;
    assert_eq!(
        result.subject.as_str(),
        format!("{}.results.{bad}", bus.prefix)
    );
    assert_eq!(
        header(&result, "Content-Type").as_deref(),
        Some("application/problem+json")
    );
    let problem = json_of(&result);
    assert_eq!(
        (problem["status"].clone(), problem["code"].clone()),
        (json!(400), json!("validation_failed")),
        "{problem}"
    );

    // An unknown field: 422 naming it, by the HTTP layer's own parser.
    let unknown = format!("unknown-{}", Uuid::now_v7());
    let body = serde_json::to_vec(&json!({
        "business_id": b, "actor_user_id": "olive",
        "invitees": [{"email": "x@y.example"}], "colour": "red"
    }))
    .unwrap();
    bus.command("create_invitations", Some(&unknown), &body)
        .await;
    let problem = json_of(&next(&mut results).await);
    assert_eq!(problem["status"], 422, "{problem}");
    assert!(problem.to_string().contains("colour"), "{problem}");
    assert_eq!(invitations_of(&pool, &b).await, 0);

    // No Nats-Msg-Id: refused on `<prefix>.results.unidentified`.
    bus.command("cancel", None, br#"{"invitation_id":"x"}"#)
        .await;
    let result = next(&mut results).await;
    assert_eq!(
        result.subject.as_str(),
        format!("{}.results.unidentified", bus.prefix)
    );
    assert_eq!(json_of(&result)["status"], 422);

    // An unknown command: 404.
    let nothing = format!("nothing-{}", Uuid::now_v7());
    bus.command("launch_rockets", Some(&nothing), b"{}").await;
    assert_eq!(json_of(&next(&mut results).await)["status"], 404);

    // All acknowledged: nothing pending, nothing redelivered, no second answer.
    eventually(
        WAIT,
        "every command acknowledged and gone from the stream",
        || async {
            let mut commands = bus
                .js
                .get_stream(stream_name(&bus.prefix, "COMMANDS"))
                .await
                .unwrap();
            let info = commands.consumer_info("invited").await.unwrap();
            let seen = (
                info.num_ack_pending,
                info.num_redelivered,
                info.num_pending,
                commands.info().await.unwrap().state.messages,
            );
            if seen == (0, 0, 0, 0) {
                Ok(())
            } else {
                Err(format!(
                    "(ack pending, redelivered, pending, stored) = {seen:?}"
                ))
            }
        },
    )
    .await;
    assert!(
        tokio::time::timeout(Duration::from_millis(500), results.next())
            .await
            .is_err(),
        "no second answer"
    );

    d.stop().await;
    bus.cleanup().await;
}

/// R41: a command's names are parsed by the same domain types as an HTTP
/// body's: a display name or a business name with a bidirectional override
/// or a zero-width character is refused, naming the field, and nothing is
/// written.
#[sqlx::test(migrations = false)]
async fn a_nats_command_with_a_bidi_or_zero_width_name_is_refused(pool: PgPool) {
    let bus = Bus::new().await;
    let mut results = bus.subscribe("results").await;
    let d = daemon(&pool, &bus).await;
    d.user("olive", "olive@brand.example", "en-US").await;
    for (name, body, field) in [
        (
            "put_user",
            json!({"user_id": "ada", "email": "ada@x.example", "display_name": "Ada\u{202E}ecalevoL"}),
            "display_name",
        ),
        (
            "create_business",
            json!({"name": "Acme\u{200B}Corp", "owner_user_id": "olive"}),
            "name",
        ),
    ] {
        let id = format!("cmd-{}", Uuid::now_v7());
        bus.command(name, Some(&id), &serde_json::to_vec(&body).unwrap())
            .await;
        let problem = json_of(&next(&mut results).await);
        assert_eq!(problem["status"], 422, "{name}: {problem}");
        assert_eq!(problem["errors"][0]["field"], field, "{name}: {problem}");
    }
    let count = |sql: &'static str| sqlx::query_scalar::<_, i64>(sql).fetch_one(&pool);
    assert_eq!(count("SELECT count(*) FROM users").await.unwrap(), 1);
    assert_eq!(count("SELECT count(*) FROM businesses").await.unwrap(), 0);

    d.stop().await;
    bus.cleanup().await;
}

/// Publishes one command and returns its result.
async fn run(bus: &Bus, results: &mut async_nats::Subscriber, name: &str, body: Value) -> Value {
    let id = format!("{name}-{}", Uuid::now_v7());
    bus.command(name, Some(&id), &serde_json::to_vec(&body).unwrap())
        .await;
    let result = next(results).await;
    assert_eq!(
        result.subject.as_str(),
        format!("{}.results.{id}", bus.prefix)
    );
    json_of(&result)
}

/// R50 over the queue: a link created, previewed, redeemed and revoked by
/// commands, each answered on its results subject as HTTP would answer;
/// the revoke's actor goes into the DELETE's query.
#[sqlx::test(migrations = false)]
async fn invite_link_commands_create_redeem_and_revoke(pool: PgPool) {
    let bus = Bus::new().await;
    let mut results = bus.subscribe("results").await;
    let d = daemon(&pool, &bus).await;
    d.user("olive", "olive@brand.example", "en-US").await;
    d.user("ursula", "ursula@else.example", "en-US").await;
    let b = d.business("Brand & Co", "olive").await;

    let created = run(
        &bus,
        &mut results,
        "create_invite_link",
        json!({"business_id": b, "actor_user_id": "olive", "max_uses": 2}),
    )
    .await;
    assert_eq!(created["status"], 201, "{created}");
    let code = created["result"]["code"].as_str().unwrap().to_string();
    let link = created["result"]["id"].as_str().unwrap().to_string();
    let seen = run(
        &bus,
        &mut results,
        "preview_invite_link",
        json!({"code": code}),
    )
    .await;
    assert_eq!(seen["result"]["remaining"], 2, "{seen}");
    let joined = run(
        &bus,
        &mut results,
        "redeem_invite_link",
        json!({"code": code, "user_id": "ursula", "email_verified": true}),
    )
    .await;
    assert_eq!(joined["status"], 200, "{joined}");
    assert_eq!(joined["result"]["membership"]["user_id"], "ursula");
    let revoked = run(
        &bus,
        &mut results,
        "revoke_invite_link",
        json!({"business_id": b, "invite_link_id": link, "actor_user_id": "olive"}),
    )
    .await;
    assert_eq!(revoked["status"], 204, "{revoked}");
    let refused = run(
        &bus,
        &mut results,
        "preview_invite_link",
        json!({"code": code}),
    )
    .await;
    assert_eq!(refused["result"]["reason"], "link_revoked", "{refused}");

    d.stop().await;
    bus.cleanup().await;
}

/// R51 over NATS: `create_join_request` (the public Business ID stays in the
/// body) and `approve_join_request` (`join_request_id` goes into the path)
/// run as their HTTP requests; the request's events, and the `member.added`
/// of its approval, are published.
#[sqlx::test(migrations = false)]
async fn join_requests_are_created_and_approved_over_nats(pool: PgPool) {
    let bus = Bus::new().await;
    let mut results = bus.subscribe("results").await;
    let mut events = bus.subscribe("events").await;
    let d = daemon(&pool, &bus).await;
    d.user("olive", "olive@brand.example", "en-US").await;
    d.user("charles", "charles@agency.example", "en-GB").await;
    let b = d.business("Brand & Co", "olive").await;
    let (_, business) = d
        .get(&format!("/v1/businesses/{b}?actor_user_id=olive"))
        .await;
    let public = business["business_id"].as_str().unwrap().to_string();

    let ask = format!("ask-{}", Uuid::now_v7());
    let command = serde_json::to_vec(
        &json!({"user_id": "charles", "business_id": public, "message": "Hello"}),
    )
    .unwrap();
    bus.command("create_join_request", Some(&ask), &command)
        .await;
    let result = next(&mut results).await;
    assert_eq!(
        result.subject.as_str(),
        format!("{}.results.{ask}", bus.prefix)
    );
    let body = json_of(&result);
    assert_eq!(body["status"], 201, "{body}");
    assert_eq!(body["result"]["status"], "pending", "{body}");
    let request = body["result"]["id"].as_str().unwrap().to_string();

    let approve = format!("approve-{}", Uuid::now_v7());
    let command = serde_json::to_vec(
        &json!({"join_request_id": request, "actor_user_id": "olive", "role": "manager"}),
    )
    .unwrap();
    bus.command("approve_join_request", Some(&approve), &command)
        .await;
    let body = json_of(&next(&mut results).await);
    assert_eq!(body["status"], 200, "{body}");
    assert_eq!(body["result"]["request"]["status"], "approved", "{body}");
    assert_eq!(body["result"]["membership"]["role"], "manager", "{body}");

    // The request's events reach the sinks, the member's way in with them.
    let mut seen = Vec::new();
    let deadline = tokio::time::Instant::now() + WAIT;
    while !(seen.contains(&"join_request.approved".to_string())
        && seen.contains(&"member.added/request".to_string()))
    {
        let message = tokio::time::timeout_at(deadline, events.next())
            .await
            .unwrap_or_else(|_| panic!("the request's events are published: {seen:?}"))
            .unwrap();
        let event = json_of(&message);
        match event["type"].as_str().unwrap() {
            "member.added" => seen.push(format!(
                "member.added/{}",
                event["data"]["via"].as_str().unwrap()
            )),
            other => seen.push(other.to_string()),
        }
        if event["type"] == "join_request.approved" {
            assert_eq!(event["data"]["join_request_id"], json!(request));
            assert_eq!(event["actor_user_id"], "olive");
        }
    }
    assert!(
        seen.contains(&"join_request.created".to_string()),
        "{seen:?}"
    );

    d.stop().await;
    bus.cleanup().await;
}

/// R52 over NATS: `claim_domain` claims (`201` with the TXT record),
/// `remove_domain` gives the claim up (`204`, its actor from the body), and
/// `verify_domain` then answers the `404` HTTP would.
#[sqlx::test(migrations = false)]
async fn the_domain_commands_claim_verify_and_remove(pool: PgPool) {
    let bus = Bus::new().await;
    let mut results = bus.subscribe("results").await;
    let d = daemon(&pool, &bus).await;
    d.user("olive", "olive@brand.example", "en-US").await;
    let b = d.business("Brand & Co", "olive").await;

    let command = |name: &'static str, body: Value| {
        let bus = &bus;
        async move {
            let id = format!("cmd-{}", Uuid::now_v7());
            bus.command(name, Some(&id), &serde_json::to_vec(&body).unwrap())
                .await;
        }
    };
    command(
        "claim_domain",
        json!({"business_id": b, "actor_user_id": "olive", "domain": "acme.example", "mode": "suggest"}),
    )
    .await;
    let claimed = json_of(&next(&mut results).await);
    assert_eq!(claimed["status"], 201, "{claimed}");
    assert_eq!(claimed["result"]["domain"], "acme.example");
    assert!(
        claimed["result"]["txt_record"]
            .as_str()
            .unwrap()
            .starts_with("invited-verification="),
        "{claimed}"
    );

    command(
        "remove_domain",
        json!({"business_id": b, "domain": "acme.example", "actor_user_id": "olive"}),
    )
    .await;
    let removed = json_of(&next(&mut results).await);
    assert_eq!(removed["status"], 204, "{removed}");
    let count = sqlx::query_scalar::<_, i64>("SELECT count(*) FROM business_domains")
        .fetch_one(&pool)
        .await
        .unwrap();
    assert_eq!(count, 0);

    command(
        "verify_domain",
        json!({"business_id": b, "domain": "acme.example", "actor_user_id": "olive"}),
    )
    .await;
    let problem = json_of(&next(&mut results).await);
    assert_eq!(problem["status"], 404, "no claim left: {problem}");

    d.stop().await;
    bus.cleanup().await;
}
