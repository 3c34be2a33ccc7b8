//! The small scenario most end-to-end tests start from: olive owns
//! "Brand & Co" and invites people; reads of an invitation and its timeline
//! as olive. One copy here rather than one per test file.

use reqwest::StatusCode;
use serde_json::{Value, json};

use super::daemon::TestDaemon;
use super::db::{Arg, Db, ago};

/// Registers olive and the business she owns; returns its id.
pub async fn brand(d: &TestDaemon) -> String {
    d.user("olive", "olive@brand.example", "en-US").await;
    d.business("Brand & Co", "olive").await
}

/// Olive invites `email` into business `b`; returns the invitation's id.
pub async fn invite(d: &TestDaemon, b: &str, email: &str) -> String {
    let (status, body) = d
        .post(
            &format!("/v1/businesses/{b}/invitations"),
            json!({"actor_user_id": "olive", "invitees": [{"email": email}]}),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    body["items"][0]["id"].as_str().unwrap().to_string()
}

/// The invitation as olive reads it.
pub async fn invitation(d: &TestDaemon, id: &str) -> Value {
    let (status, body) = d
        .get(&format!("/v1/invitations/{id}?actor_user_id=olive"))
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    body
}

/// The invitation's timeline (R34) as olive reads it.
pub async fn timeline(d: &TestDaemon, id: &str) -> Vec<Value> {
    timeline_as(d, id, "olive").await
}

/// The invitation's timeline (R34) as `actor` reads it.
pub async fn timeline_as(d: &TestDaemon, id: &str, actor: &str) -> Vec<Value> {
    let (status, body) = d
        .get(&format!(
            "/v1/invitations/{id}/timeline?actor_user_id={actor}"
        ))
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    body["items"].as_array().unwrap().clone()
}

/// The timeline items of one `type`.
pub fn of_type<'a>(items: &'a [Value], kind: &str) -> Vec<&'a Value> {
    items.iter().filter(|i| i["type"] == kind).collect()
}

/// Adds an existing user to a business with a role, as if they had joined
/// earlier: for tests whose setup this is, not what they test.
pub async fn join(db: &Db, business: &str, user: &str, role: &str) {
    db.exec(
        "INSERT INTO members (business_id, user_id, role, joined_at) VALUES ($1, $2, $3, $4)",
        &[
            Arg::Uuid(business.parse().unwrap()),
            Arg::Text(user.into()),
            Arg::Text(role.into()),
            ago(0),
        ],
    )
    .await;
}

/// The public Business ID of a business, as its owner sees it.
pub async fn public_id(d: &TestDaemon, business: &str, owner: &str) -> String {
    let (status, body) = d
        .get(&format!("/v1/businesses/{business}?actor_user_id={owner}"))
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    body["business_id"].as_str().unwrap().to_string()
}
