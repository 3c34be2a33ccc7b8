//! End to end: managing members over HTTP (R4–R6) in both role presets, on
//! both stores (`both_stores!`).

mod support;

use std::time::Duration;

use reqwest::StatusCode;
use serde_json::{Value, json};
use support::daemon::{TestDaemon, token_from};

/// Invites `user` into `business` as `role` and accepts, through the email.
async fn join(
    d: &TestDaemon,
    business: &str,
    inviter: &str,
    user: &str,
    role: &str,
    nth_mail: usize,
) {
    let email = format!("{user}@x.example");
    let (status, body) = d
        .post(
            &format!("/v1/businesses/{business}/invitations"),
            json!({"actor_user_id": inviter, "invitees": [{"email": email, "role": role}]}),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    let mails = d.sink.wait_for(nth_mail, Duration::from_secs(20)).await;
    let mail = mails
        .iter()
        .find(|m| m.to == vec![email.clone()])
        .expect("the invitation email");
    d.user(user, &email, "en-US").await;
    let (status, body) = d
        .post(
            "/v1/invitations/accept",
            json!({"token": token_from(&mail.text_body()), "user_id": user}),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
}

fn role_of(members: &Value, user: &str) -> Option<String> {
    members["items"]
        .as_array()?
        .iter()
        .find(|m| m["user_id"] == user)
        .map(|m| m["role"].as_str().unwrap().to_string())
}

both_stores! {
    async fn roles_revocation_and_ownership_in_business_manager(db: Db) {
        let d = TestDaemon::start(&db).await;
        d.user("olive", "olive@x.example", "en-US").await;
        let b = d.business("Brand", "olive").await;
        join(&d, &b, "olive", "mia", "manager", 1).await;
        join(&d, &b, "olive", "eli", "employee", 3).await;
        let members_path = format!("/v1/businesses/{b}/members?actor_user_id=olive");

        // R6: an employee may not change roles; a manager may, up to their own rank.
        let (status, _) = d
            .patch(
                &format!("/v1/businesses/{b}/members/mia"),
                json!({"actor_user_id": "eli", "role": "employee"}),
            )
            .await;
        assert_eq!(status, StatusCode::FORBIDDEN);
        let (status, _) = d
            .patch(
                &format!("/v1/businesses/{b}/members/eli"),
                json!({"actor_user_id": "mia", "role": "owner"}),
            )
            .await;
        assert_eq!(status, StatusCode::FORBIDDEN);
        let (status, body) = d
            .patch(
                &format!("/v1/businesses/{b}/members/eli"),
                json!({"actor_user_id": "mia", "role": "manager"}),
            )
            .await;
        assert_eq!(
            (status, body["role"].as_str()),
            (StatusCode::OK, Some("manager")),
            "{body}"
        );
        let (status, body) = d
            .patch(
                &format!("/v1/businesses/{b}/members/eli"),
                json!({"actor_user_id": "mia", "role": "emperor"}),
            )
            .await;
        assert_eq!(
            (status, body["code"].as_str()),
            (StatusCode::UNPROCESSABLE_ENTITY, Some("validation_failed"))
        );
        d.patch(
            &format!("/v1/businesses/{b}/members/eli"),
            json!({"actor_user_id": "olive", "role": "employee"}),
        )
        .await;

        // R4: nobody revokes the owner; a manager (members.revoke) may not leave
        // alone; an employee may leave but not revoke others.
        let (status, _) = d
            .delete(&format!(
                "/v1/businesses/{b}/members/olive?actor_user_id=mia"
            ))
            .await;
        assert_eq!(status, StatusCode::FORBIDDEN);
        let (status, _) = d
            .delete(&format!(
                "/v1/businesses/{b}/members/olive?actor_user_id=olive"
            ))
            .await;
        assert_eq!(status, StatusCode::FORBIDDEN);
        let (status, _) = d
            .delete(&format!("/v1/businesses/{b}/members/mia?actor_user_id=mia"))
            .await;
        assert_eq!(status, StatusCode::FORBIDDEN);
        let (status, _) = d
            .delete(&format!("/v1/businesses/{b}/members/mia?actor_user_id=eli"))
            .await;
        assert_eq!(status, StatusCode::FORBIDDEN);
        let (_, members) = d.get(&members_path).await;
        assert_eq!(role_of(&members, "mia").as_deref(), Some("manager"));

        // R5: only the owner transfers, only to the admin-equivalent (manager
        // here); the old owner becomes that role, in one transaction.
        let (status, _) = d
            .post(
                &format!("/v1/businesses/{b}/ownership"),
                json!({"actor_user_id": "olive", "new_owner_user_id": "eli"}),
            )
            .await;
        assert_eq!(status, StatusCode::FORBIDDEN);
        let (status, _) = d
            .post(
                &format!("/v1/businesses/{b}/ownership"),
                json!({"actor_user_id": "mia", "new_owner_user_id": "mia"}),
            )
            .await;
        assert!(status.is_client_error());
        let (status, body) = d
            .post(
                &format!("/v1/businesses/{b}/ownership"),
                json!({"actor_user_id": "olive", "new_owner_user_id": "mia"}),
            )
            .await;
        assert_eq!(status, StatusCode::OK, "{body}");
        let (_, members) = d.get(&members_path).await;
        assert_eq!(role_of(&members, "mia").as_deref(), Some("owner"));
        assert_eq!(role_of(&members, "olive").as_deref(), Some("manager"));

        // Now olive (a manager) revokes eli, and eli's membership is gone.
        let (status, _) = d
            .delete(&format!(
                "/v1/businesses/{b}/members/eli?actor_user_id=olive"
            ))
            .await;
        assert_eq!(status, StatusCode::NO_CONTENT);
        let (_, members) = d.get(&members_path).await;
        assert_eq!(role_of(&members, "eli"), None);
        let (status, _) = d
            .get(&format!("/v1/businesses/{b}?actor_user_id=eli"))
            .await;
        assert_eq!(
            status,
            StatusCode::FORBIDDEN,
            "a former member reads nothing"
        );

        let events: Vec<String> = db
            .strings("SELECT type FROM events ORDER BY occurred_at, id")
            .await;
        for t in [
            "member.role_changed",
            "ownership.transferred",
            "member.removed",
        ] {
            assert!(events.iter().any(|e| e == t), "{t} missing: {events:?}");
        }
        d.stop().await;
    }
}

both_stores! {
    async fn account_levels_admins_invite_and_may_not_leave_alone(db: Db) {
        let d = TestDaemon::start(&db).await;
        d.user("olive", "olive@x.example", "en-US").await;
        let (status, body) = d
            .post(
                "/v1/businesses",
                json!({"name": "Levels", "owner_user_id": "olive", "role_preset": "account_levels"}),
            )
            .await;
        assert_eq!(status, StatusCode::CREATED, "{body}");
        let b = body["id"].as_str().unwrap().to_string();
        join(&d, &b, "olive", "ada", "admin", 1).await;
        join(&d, &b, "ada", "max", "manager", 3).await;
        // An account-levels manager lacks members.invite (R2).
        let (status, _) = d
            .post(&format!("/v1/businesses/{b}/invitations"), json!({"actor_user_id": "max", "invitees": [{"email": "v@x.example", "role": "viewer"}]}))
            .await;
        assert_eq!(status, StatusCode::FORBIDDEN);
        // An admin may not revoke themselves (R4); a manager may leave.
        let (status, _) = d
            .delete(&format!("/v1/businesses/{b}/members/ada?actor_user_id=ada"))
            .await;
        assert_eq!(status, StatusCode::FORBIDDEN);
        let (status, _) = d
            .delete(&format!("/v1/businesses/{b}/members/max?actor_user_id=max"))
            .await;
        assert_eq!(status, StatusCode::NO_CONTENT);
        d.stop().await;
    }
}
