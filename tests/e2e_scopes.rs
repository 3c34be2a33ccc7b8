//! End to end: scoped API keys (R47) on the real router, on both stores. A
//! `read` key reads and changes nothing; `write` (the default) and `admin`
//! do what an app does. The `admin`-only routes (the webhook endpoints of
//! R48) are checked in tests/e2e_webhooks.rs, and by the router's own unit
//! test (`http::auth`).

mod support;

use reqwest::StatusCode;
use serde_json::json;
use support::daemon::{ADMIN_KEY, API_KEY, READ_KEY, TestDaemon};

both_stores! {
    async fn a_read_key_reads_and_cannot_write(db: Db) {
        let d = TestDaemon::start(&db).await;
        d.user("owner", "owner@example.test", "en-US").await;
        let business = d.business("Scoped Ltd", "owner").await;
        let path = format!("/v1/businesses/{business}?actor_user_id=owner");

        for key in [READ_KEY, API_KEY, ADMIN_KEY] {
            let (status, body) = d.send_as(key, d.client().get(d.url(&path))).await;
            assert_eq!(status, StatusCode::OK, "{key}: {body}");
            assert_eq!(body["name"], "Scoped Ltd");
        }

        let businesses = db.count("SELECT count(*) FROM businesses").await;
        let create = json!({"name": "Not Written", "owner_user_id": "owner"});
        let (status, body) = d
            .send_as(READ_KEY, d.client().post(d.url("/v1/businesses")).json(&create))
            .await;
        assert_eq!(status, StatusCode::FORBIDDEN, "{body}");
        assert_eq!(body["code"], "forbidden");
        assert!(
            body["detail"].as_str().unwrap().contains("write scope"),
            "names the scope: {body}"
        );
        let (status, body) = d
            .send_as(
                READ_KEY,
                d.client()
                    .put(d.url("/v1/users/intruder"))
                    .json(&json!({"email": "i@example.test", "display_name": "I", "locale": "en-US"})),
            )
            .await;
        assert_eq!(status, StatusCode::FORBIDDEN, "{body}");
        assert_eq!(db.count("SELECT count(*) FROM businesses").await, businesses);
        assert_eq!(
            db.count("SELECT count(*) FROM users WHERE user_id = 'intruder'").await,
            0
        );

        for (key, name) in [(API_KEY, "By Write"), (ADMIN_KEY, "By Admin")] {
            let create = json!({"name": name, "owner_user_id": "owner"});
            let (status, body) = d
                .send_as(key, d.client().post(d.url("/v1/businesses")).json(&create))
                .await;
            assert_eq!(status, StatusCode::CREATED, "{name}: {body}");
        }
        assert_eq!(db.count("SELECT count(*) FROM businesses").await, businesses + 2);

        // Without a known key it stays 401, before any scope is looked at.
        let (status, _) = d.send_as("nope", d.client().get(d.url(&path))).await;
        assert_eq!(status, StatusCode::UNAUTHORIZED);
        d.stop().await;
    }
}
