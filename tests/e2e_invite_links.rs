//! End to end: invite links (R50) and the membership they lead to (R53),
//! over HTTP, on both stores (`both_stores!`). The race of ten users on a
//! three-use link runs through two replicas on one Postgres database (on
//! SQLite, one process is all there can be, so through one daemon).

mod support;

use reqwest::StatusCode;
use serde_json::{Value, json};
use support::daemon::{READ_KEY, TestDaemon};
use support::db::{Arg, ago};
use support::scenario::{brand, of_type};

/// Olive creates a link in `b` with `extra` fields; returns the answer.
async fn create(d: &TestDaemon, b: &str, extra: Value) -> Value {
    let (status, body) = try_create(d, b, "olive", extra).await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    body
}

async fn try_create(d: &TestDaemon, b: &str, actor: &str, extra: Value) -> (StatusCode, Value) {
    let mut body = json!({"actor_user_id": actor, "max_uses": 3});
    for (k, v) in extra.as_object().unwrap() {
        body[k] = v.clone();
    }
    d.post(&format!("/v1/businesses/{b}/invite-links"), body)
        .await
}

async fn redeem(d: &TestDaemon, code: &str, user: &str) -> (StatusCode, Value) {
    d.post(
        "/v1/invite-links/redeem",
        json!({"code": code, "user_id": user, "email_verified": true}),
    )
    .await
}

async fn preview(d: &TestDaemon, code: &str) -> (StatusCode, Value) {
    d.post("/v1/invite-links/preview", json!({"code": code}))
        .await
}

async fn links(d: &TestDaemon, b: &str) -> Vec<Value> {
    let (status, body) = d
        .get(&format!(
            "/v1/businesses/{b}/invite-links?actor_user_id=olive"
        ))
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    body["items"].as_array().unwrap().clone()
}

async fn link_timeline(d: &TestDaemon, b: &str, link: &str) -> Vec<Value> {
    let (status, body) = d
        .get(&format!(
            "/v1/businesses/{b}/invite-links/{link}/timeline?actor_user_id=olive"
        ))
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    body["items"].as_array().unwrap().clone()
}

async fn member_ids(d: &TestDaemon, b: &str) -> Vec<String> {
    let (status, body) = d
        .get(&format!("/v1/businesses/{b}/members?actor_user_id=olive"))
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let mut ids: Vec<String> = body["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["user_id"].as_str().unwrap().to_string())
        .collect();
    ids.sort();
    ids
}

fn code_of(link: &Value) -> String {
    link["code"].as_str().unwrap().to_string()
}

fn id_of(link: &Value) -> String {
    link["id"].as_str().unwrap().to_string()
}

/// The problem's status and code.
fn problem(answer: (StatusCode, Value)) -> (StatusCode, String) {
    (
        answer.0,
        answer.1["code"].as_str().unwrap_or("<none>").to_string(),
    )
}

both_stores! {
    /// Create (code shown once, only its hash stored), preview, redeem (the
    /// same membership and `member.added` as any way in, with `via: "link"`
    /// and the link's id, R53), the list with uses and remaining, and the
    /// link's timeline; the link's grants reach each new member.
    async fn create_preview_redeem_list_and_timeline(db: Db) {
        let d = TestDaemon::start(&db).await;
        let b = brand(&d).await;
        let (status, p) = d
            .post(
                &format!("/v1/businesses/{b}/profiles"),
                json!({"actor_user_id": "olive", "name": "Main page"}),
            )
            .await;
        assert_eq!(status, StatusCode::CREATED, "{p}");
        let profile = p["id"].as_str().unwrap().to_string();
        let link = create(
            &d,
            &b,
            json!({"role": "manager", "ttl": "2d", "grants": [{"profile_id": profile}]}),
        )
        .await;
        let code = code_of(&link);
        assert_eq!(code.len(), 43, "256 bits in base64url: {link}");
        assert_eq!(
            link["url"],
            format!("http://localhost:3000/join?code={code}"),
            "links.invite_link_url's default with the code"
        );
        assert_eq!(
            (&link["role"], &link["max_uses"], &link["uses"], &link["remaining"], &link["revoked"]),
            (&json!("manager"), &json!(3), &json!(0), &json!(3), &json!(false))
        );
        // Only the hash is kept: the code is in no row.
        assert_eq!(db.count("SELECT count(*) FROM invite_links").await, 1);
        assert_eq!(
            db.count_with(
                "SELECT count(*) FROM events WHERE CAST(data AS TEXT) LIKE $1",
                &[Arg::Text(format!("%{code}%"))],
            )
            .await,
            0
        );

        let (status, seen) = preview(&d, &code).await;
        assert_eq!(status, StatusCode::OK, "{seen}");
        assert_eq!(
            seen,
            json!({"business": {"id": b, "name": "Brand & Co"}, "role": "manager",
                   "remaining": 3, "expires_at": link["expires_at"],
                   "can_join": true, "reason": null})
        );

        d.user("ursula", "ursula@else.example", "en-US").await;
        let (status, joined) = redeem(&d, &code, "ursula").await;
        assert_eq!(status, StatusCode::OK, "{joined}");
        assert_eq!(joined["membership"]["user_id"], "ursula");
        assert_eq!(joined["membership"]["role"], "manager");
        assert_eq!(member_ids(&d, &b).await, ["olive", "ursula"]);
        // The link's grant, applied to the new member (R13).
        let (_, access) = d
            .get(&format!(
                "/v1/access?user_id=ursula&profile_id={profile}&permission=publisher"
            ))
            .await;
        assert_eq!(access["allowed"], true, "{access}");
        // A second redemption by the same user: already a member.
        assert_eq!(
            problem(redeem(&d, &code, "ursula").await),
            (StatusCode::CONFLICT, "conflict".into())
        );

        // R47: reading is `read`; creating is `write`.
        let (status, _) = d
            .send_as(
                READ_KEY,
                d.client()
                    .post(d.url(&format!("/v1/businesses/{b}/invite-links")))
                    .json(&json!({"actor_user_id": "olive", "max_uses": 1})),
            )
            .await;
        assert_eq!(status, StatusCode::FORBIDDEN);
        let (status, _) = d
            .send_as(
                READ_KEY,
                d.client().get(d.url(&format!(
                    "/v1/businesses/{b}/invite-links?actor_user_id=olive"
                ))),
            )
            .await;
        assert_eq!(status, StatusCode::OK);

        let listed = links(&d, &b).await;
        assert_eq!(listed.len(), 1);
        assert_eq!(listed[0]["id"], link["id"]);
        assert_eq!((&listed[0]["uses"], &listed[0]["remaining"]), (&json!(1), &json!(2)));
        assert!(listed[0].get("code").is_none() && listed[0].get("url").is_none());

        let items = link_timeline(&d, &b, &id_of(&link)).await;
        let kinds: Vec<&str> = items.iter().map(|i| i["type"].as_str().unwrap()).collect();
        // The grant's own event names the grant, not the link.
        assert_eq!(kinds, ["invite_link.created", "member.added"]);
        let added = of_type(&items, "member.added")[0];
        assert_eq!(
            added["data"],
            json!({"user_id": "ursula", "role": "manager", "via": "link",
                   "invite_link_id": link["id"]})
        );
        assert_eq!(added["actor_user_id"], "ursula");
        let created = of_type(&items, "invite_link.created")[0];
        assert_eq!(created["data"]["max_uses"], 3);
        assert_eq!(created["actor_user_id"], "olive");

        let metrics = reqwest::get(d.url("/metrics")).await.unwrap().text().await.unwrap();
        assert!(
            metrics.contains("invited_invite_link_redemptions_total{outcome=\"redeemed\"}"),
            "{metrics}"
        );
        d.stop().await;
    }
}

both_stores! {
    /// The race: ten users redeem a three-use link at once, through
    /// two replicas on Postgres. Exactly three join; the seven others get
    /// `link_exhausted`, and the link says 3 uses.
    async fn ten_users_race_a_three_use_link(db: Db) {
        let d1 = TestDaemon::start(&db).await;
        // A second replica on the same database (SQLite: one process only).
        let d2 = if db.is_sqlite() { None } else { Some(TestDaemon::start(&db).await) };
        let b = brand(&d1).await;
        let link = create(&d1, &b, json!({"max_uses": 3})).await;
        let code = code_of(&link);
        for i in 0..10 {
            d1.user(&format!("u{i}"), &format!("u{i}@x.example"), "en-US").await;
        }
        let replicas: Vec<&TestDaemon> = match &d2 {
            Some(d2) => vec![&d1, d2],
            None => vec![&d1],
        };
        let answers = futures::future::join_all((0..10).map(|i| {
            let d = replicas[i % replicas.len()];
            let code = code.clone();
            async move { problem(redeem(d, &code, &format!("u{i}")).await) }
        }))
        .await;
        let joined = answers.iter().filter(|a| a.0 == StatusCode::OK).count();
        let exhausted = answers
            .iter()
            .filter(|a| *a == &(StatusCode::CONFLICT, "link_exhausted".to_string()))
            .count();
        assert_eq!((joined, exhausted), (3, 7), "{answers:?}");
        assert_eq!(member_ids(&d1, &b).await.len(), 4, "olive and three");
        let listed = links(&d1, &b).await;
        assert_eq!((&listed[0]["uses"], &listed[0]["remaining"]), (&json!(3), &json!(0)));
        let items = link_timeline(&d1, &b, &id_of(&link)).await;
        assert_eq!(of_type(&items, "member.added").len(), 3);
        let (_, seen) = preview(&d1, &code).await;
        assert_eq!((&seen["can_join"], &seen["reason"]), (&json!(false), &json!("link_exhausted")));
        if let Some(d2) = d2 {
            d2.stop().await;
        }
        d1.stop().await;
    }
}

both_stores! {
    /// Each bad input is its own clear problem, and writes nothing.
    async fn bad_input_is_refused_and_writes_nothing(db: Db) {
        let d = TestDaemon::start(&db).await;
        let b = brand(&d).await;
        // Unknown and malformed codes: the same `link_invalid`, nothing else.
        let unknown = "A".repeat(43);
        d.user("ivan", "ivan@x.example", "en-US").await;
        for code in [unknown.as_str(), "short", ""] {
            let (status, body) = preview(&d, code).await;
            assert_eq!((status, body["code"].as_str()), (StatusCode::NOT_FOUND, Some("link_invalid")));
            assert!(!body["detail"].as_str().unwrap().contains("Brand"), "{body}");
            assert_eq!(
                problem(redeem(&d, code, "ivan").await),
                (StatusCode::NOT_FOUND, "link_invalid".into())
            );
        }
        // max_uses outside 1–1000, a bad ttl, domain or role.
        for (extra, field) in [
            (json!({"max_uses": 0}), "max_uses"),
            (json!({"max_uses": 1001}), "max_uses"),
            (json!({"max_uses": -5}), "max_uses"),
            (json!({"ttl": "10m"}), "ttl"),
            (json!({"allowed_domains": ["not a domain"]}), "allowed_domains[0]"),
            (json!({"allowed_domains": ["a.example", "A.example"]}), "allowed_domains[1]"),
            (json!({"role": "wizard"}), "role"),
        ] {
            let (status, body) = try_create(&d, &b, "olive", extra.clone()).await;
            assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{extra}: {body}");
            assert_eq!(body["errors"][0]["field"], field, "{body}");
        }
        // R3: the owner role is never given, and a manager gives no role
        // above their own.
        let (status, body) = try_create(&d, &b, "olive", json!({"role": "owner"})).await;
        assert_eq!((status, body["code"].as_str()), (StatusCode::FORBIDDEN, Some("forbidden")));
        let managers = create(&d, &b, json!({"role": "manager"})).await;
        d.user("mia", "mia@x.example", "en-US").await;
        assert_eq!(redeem(&d, &code_of(&managers), "mia").await.0, StatusCode::OK);
        let (status, _) = try_create(&d, &b, "mia", json!({"role": "owner"})).await;
        assert_eq!(status, StatusCode::FORBIDDEN);
        // Employees lack members.invite; strangers are not members.
        let employees = create(&d, &b, json!({"role": "employee"})).await;
        d.user("eve", "eve@x.example", "en-US").await;
        assert_eq!(redeem(&d, &code_of(&employees), "eve").await.0, StatusCode::OK);
        let (status, _) = try_create(&d, &b, "eve", json!({"role": "employee"})).await;
        assert_eq!(status, StatusCode::FORBIDDEN);
        let (status, _) = try_create(&d, &b, "ivan", json!({})).await;
        assert_eq!(status, StatusCode::FORBIDDEN);
        assert_eq!(db.count("SELECT count(*) FROM invite_links").await, 2);

        let link = create(&d, &b, json!({"max_uses": 5})).await;
        let code = code_of(&link);
        let before = db.count("SELECT count(*) FROM events").await;
        // No `email_verified: true`: refused before anything is written.
        for body in [
            json!({"code": code, "user_id": "ivan"}),
            json!({"code": code, "user_id": "ivan", "email_verified": false}),
        ] {
            let (status, answer) = d.post("/v1/invite-links/redeem", body).await;
            assert_eq!((status, answer["code"].as_str()), (StatusCode::FORBIDDEN, Some("email_unverified")));
        }
        // An unknown user, and a user who is already a member.
        let (status, answer) = redeem(&d, &code, "nobody").await;
        assert_eq!((status, answer["errors"][0]["field"].as_str()), (StatusCode::UNPROCESSABLE_ENTITY, Some("user_id")));
        assert_eq!(
            problem(redeem(&d, &code, "olive").await),
            (StatusCode::CONFLICT, "conflict".into())
        );
        assert_eq!(db.count("SELECT count(*) FROM events").await, before, "nothing written");
        assert_eq!(links(&d, &b).await[0]["uses"], 0);
        // Unknown fields are refused like everywhere.
        let (status, _) = d
            .post("/v1/invite-links/redeem", json!({"code": code, "user_id": "ivan", "email_verified": true, "x": 1}))
            .await;
        assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
        d.stop().await;
    }
}

both_stores! {
    /// Allowed domains: only addresses at one of them (exactly) may redeem.
    async fn allowed_domains_decide_who_may_redeem(db: Db) {
        let d = TestDaemon::start(&db).await;
        let b = brand(&d).await;
        let link = create(&d, &b, json!({"allowed_domains": ["Corp.example"]})).await;
        assert_eq!(link["allowed_domains"], json!(["corp.example"]));
        let code = code_of(&link);
        d.user("out", "out@gmail.example", "en-US").await;
        d.user("sub", "sub@eu.corp.example", "en-US").await;
        d.user("inn", "Inn@CORP.example", "en-US").await;
        for user in ["out", "sub"] {
            assert_eq!(
                problem(redeem(&d, &code, user).await),
                (StatusCode::FORBIDDEN, "domain_not_allowed".into()),
                "{user}"
            );
        }
        assert_eq!(redeem(&d, &code, "inn").await.0, StatusCode::OK);
        assert_eq!(member_ids(&d, &b).await, ["inn", "olive"]);
        assert_eq!(links(&d, &b).await[0]["uses"], 1);
        d.stop().await;
    }
}

both_stores! {
    /// Revoked at once: the next redemption, on any replica, is refused
    /// with `link_revoked`; a second revoke changes nothing.
    async fn revoke_takes_effect_at_once(db: Db) {
        let d = TestDaemon::start(&db).await;
        let b = brand(&d).await;
        let link = create(&d, &b, json!({})).await;
        let (code, id) = (code_of(&link), id_of(&link));
        d.user("ann", "ann@x.example", "en-US").await;
        d.user("bob", "bob@x.example", "en-US").await;
        assert_eq!(redeem(&d, &code, "ann").await.0, StatusCode::OK);
        // Only a member with members.invite revokes (ann is an employee).
        let path = format!("/v1/businesses/{b}/invite-links/{id}");
        let (status, _) = d.delete(&format!("{path}?actor_user_id=ann")).await;
        assert_eq!(status, StatusCode::FORBIDDEN);
        let (status, body) = d.delete(&format!("{path}?actor_user_id=olive")).await;
        assert_eq!(status, StatusCode::NO_CONTENT, "{body}");
        assert_eq!(
            problem(redeem(&d, &code, "bob").await),
            (StatusCode::GONE, "link_revoked".into())
        );
        let (_, seen) = preview(&d, &code).await;
        assert_eq!((&seen["can_join"], &seen["reason"], &seen["remaining"]), (&json!(false), &json!("link_revoked"), &json!(2)));
        let listed = links(&d, &b).await;
        assert_eq!((&listed[0]["revoked"], &listed[0]["uses"]), (&json!(true), &json!(1)));
        assert!(listed[0]["revoked_at"].is_string());
        let (status, _) = d.delete(&format!("{path}?actor_user_id=olive")).await;
        assert_eq!(status, StatusCode::NO_CONTENT);
        let items = link_timeline(&d, &b, &id).await;
        let revoked = of_type(&items, "invite_link.revoked");
        assert_eq!(revoked.len(), 1, "a second revoke writes nothing");
        assert_eq!(revoked[0]["data"], json!({"invite_link_id": id, "uses": 1}));
        // Another business's link, or no link: not found.
        d.user("zed", "zed@x.example", "en-US").await;
        let other = d.business("Other", "zed").await;
        let (status, _) = d
            .delete(&format!("/v1/businesses/{other}/invite-links/{id}?actor_user_id=zed"))
            .await;
        assert_eq!(status, StatusCode::NOT_FOUND);
        let (status, _) = d.delete(&format!("/v1/businesses/{b}/invite-links/nope?actor_user_id=olive")).await;
        assert_eq!(status, StatusCode::NOT_FOUND);
        d.stop().await;
    }
}

both_stores! {
    /// A link past its expiry is `link_expired`, whatever uses it has left.
    async fn expired_links_are_refused(db: Db) {
        let d = TestDaemon::start(&db).await;
        let b = brand(&d).await;
        let link = create(&d, &b, json!({"ttl": "1h"})).await;
        let code = code_of(&link);
        d.user("ann", "ann@x.example", "en-US").await;
        let (_, seen) = preview(&d, &code).await;
        assert_eq!(seen["can_join"], true);
        db.exec(
            "UPDATE invite_links SET created_at = $1, expires_at = $2",
            &[ago(7200), ago(1)],
        )
        .await;
        assert_eq!(
            problem(redeem(&d, &code, "ann").await),
            (StatusCode::GONE, "link_expired".into())
        );
        let (_, seen) = preview(&d, &code).await;
        assert_eq!((&seen["can_join"], &seen["reason"]), (&json!(false), &json!("link_expired")));
        assert_eq!(member_ids(&d, &b).await, ["olive"]);
        d.stop().await;
    }
}

both_stores! {
    /// R15 and R9 hold for a link as for any way in: 2FA when the policy
    /// covers the link's role, and the seat limit (pending invitations
    /// count), with no use taken by a refusal.
    async fn two_factor_and_seats_apply(db: Db) {
        let d = TestDaemon::start(&db).await;
        d.user("olive", "olive@brand.example", "en-US").await;
        let (status, body) = d
            .post(
                "/v1/businesses",
                json!({"name": "Small", "owner_user_id": "olive", "seat_limit": 3}),
            )
            .await;
        assert_eq!(status, StatusCode::CREATED, "{body}");
        let b = body["id"].as_str().unwrap().to_string();
        let (status, body) = d
            .put(
                &format!("/v1/businesses/{b}/security"),
                json!({"actor_user_id": "olive", "require_2fa": "all"}),
            )
            .await;
        assert_eq!(status, StatusCode::OK, "{body}");
        let link = create(&d, &b, json!({"max_uses": 10})).await;
        let code = code_of(&link);
        for u in ["ann", "bob", "cat"] {
            d.user(u, &format!("{u}@x.example"), "en-US").await;
        }
        assert_eq!(
            problem(redeem(&d, &code, "ann").await),
            (StatusCode::FORBIDDEN, "mfa_required".into())
        );
        let with_mfa = |user: &str| {
            json!({"code": code, "user_id": user, "email_verified": true, "mfa_verified": true})
        };
        let (status, body) = d.post("/v1/invite-links/redeem", with_mfa("ann")).await;
        assert_eq!(status, StatusCode::OK, "{body}");
        // Seats: olive, ann, and one pending invitation fill the three.
        support::scenario::invite(&d, &b, "pending@x.example").await;
        let (status, body) = d.post("/v1/invite-links/redeem", with_mfa("bob")).await;
        assert_eq!((status, body["code"].as_str()), (StatusCode::CONFLICT, Some("seats_exhausted")));
        assert_eq!(links(&d, &b).await[0]["uses"], 1, "a refusal takes no use");
        assert_eq!(member_ids(&d, &b).await, ["ann", "olive"]);
        d.stop().await;
    }
}

both_stores! {
    /// R8: a link takes one unit of the invitation quota, in the same
    /// count as invitations: one link and four invitations use the five.
    async fn a_link_takes_one_unit_of_the_quota(db: Db) {
        let d = TestDaemon::start(&db).await;
        let b = brand(&d).await;
        create(&d, &b, json!({})).await;
        let (_, quota) = d
            .get(&format!("/v1/businesses/{b}/invitation-quota?actor_user_id=olive"))
            .await;
        assert_eq!((&quota["used"], &quota["remaining"]), (&json!(1), &json!(4)), "{quota}");
        for i in 0..4 {
            support::scenario::invite(&d, &b, &format!("q{i}@x.example")).await;
        }
        let (status, body) = try_create(&d, &b, "olive", json!({})).await;
        assert_eq!((status, body["code"].as_str()), (StatusCode::TOO_MANY_REQUESTS, Some("rate_limited")));
        let (status, _) = d
            .post(
                &format!("/v1/businesses/{b}/invitations"),
                json!({"actor_user_id": "olive", "invitees": [{"email": "q9@x.example"}]}),
            )
            .await;
        assert_eq!(status, StatusCode::TOO_MANY_REQUESTS);
        assert_eq!(db.count("SELECT count(*) FROM invite_links").await, 1);
        d.stop().await;
    }
}
