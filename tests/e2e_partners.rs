//! End to end: partners (R19–R21), Publisher grants and access (R23, R24),
//! grants carried by invitations (R13) and the two-factor policy (R15), with
//! the daemon on port 0, a fresh database and a real SMTP server. Every test
//! runs on both stores (`both_stores!`).

mod support;

use std::time::Duration;

use reqwest::StatusCode;
use serde_json::{Value, json};
use support::daemon::{TestDaemon, token_from};
use support::db::{Arg, Db, ago};
use support::scenario::{join, public_id};
use support::smtp_sink::{ReceivedMail, to};

const WAIT: Duration = Duration::from_secs(20);

/// The brand (owner olive, en-US) and the agency (owner amelie fr-FR,
/// managers wen zh-TW and george en-GB, employee emp en-US).
async fn brand_and_agency(d: &TestDaemon, db: &Db) -> (String, String) {
    d.user("olive", "olive@brand.example", "en-US").await;
    let brand = d.business("Brand & Co", "olive").await;
    d.user("amelie", "amelie@agency.example", "fr-FR").await;
    d.user("wen", "wen@agency.example", "zh-TW").await;
    d.user("george", "george@agency.example", "en-GB").await;
    d.user("emp", "emp@agency.example", "en-US").await;
    let agency = d.business("Agence Lumière", "amelie").await;
    join(db, &agency, "wen", "manager").await;
    join(db, &agency, "george", "manager").await;
    join(db, &agency, "emp", "employee").await;
    (brand, agency)
}

/// The brand invites the agency and the agency's owner accepts: partners.
async fn partners(d: &TestDaemon, brand: &str, agency: &str) {
    let public = public_id(d, agency, "amelie").await;
    let (status, inv) = d
        .post(
            &format!("/v1/businesses/{brand}/partners"),
            json!({"actor_user_id": "olive", "partner_business_id": public, "direction": "invite"}),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{inv}");
    let (status, body) = d
        .post(
            &format!("/v1/invitations/{}/accept", inv["id"].as_str().unwrap()),
            json!({"actor_user_id": "amelie"}),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
}

async fn profile(d: &TestDaemon, business: &str, actor: &str, name: &str) -> String {
    let (status, body) = d
        .post(
            &format!("/v1/businesses/{business}/profiles"),
            json!({"actor_user_id": actor, "name": name}),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    body["id"].as_str().unwrap().to_string()
}

async fn access(d: &TestDaemon, user: &str, profile: &str) -> Value {
    let (status, body) = d
        .get(&format!(
            "/v1/access?user_id={user}&profile_id={profile}&permission=publisher"
        ))
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    body
}

/// Waits for the first mail to `addr` (others may arrive in between).
async fn mail_to(d: &TestDaemon, addr: &str) -> ReceivedMail {
    let deadline = tokio::time::Instant::now() + WAIT;
    loop {
        let mails = d.sink.messages();
        if let Some(m) = to(&mails, addr).into_iter().next() {
            return m;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "no mail to {addr} in {WAIT:?}"
        );
        d.sink.wait_for(mails.len() + 1, WAIT).await;
    }
}

both_stores! {
    /// The scenario (R19–R21, R25): the brand invites an agency; its
    /// owner (fr-FR) and both managers (zh-TW, en-GB) each get the partner
    /// request in their language, the employee nothing; the employee may not
    /// accept; a manager's accept makes the partnership on both sides and the
    /// brand's inviting user hears "Invitation accepted".
    async fn a_partner_request_reaches_every_manager_in_their_language(db: Db) {
        let d = TestDaemon::start(&db).await;
        let (brand, agency) = brand_and_agency(&d, &db).await;
        let public = public_id(&d, &agency, "amelie").await;
        let (status, inv) = d
            .post(
                &format!("/v1/businesses/{brand}/partners"),
                json!({"actor_user_id": "olive", "partner_business_id": public, "direction": "invite",
                       "message": "Let's grow together"}),
            )
            .await;
        assert_eq!(status, StatusCode::CREATED, "{inv}");
        assert_eq!(inv["kind"], "partner_invite");
        assert_eq!(inv["partner_business_id"], agency.as_str());
        assert_eq!(inv["email"], Value::Null);
        assert_eq!(inv["status"], "pending");
        let id = inv["id"].as_str().unwrap().to_string();

        let mails = d.sink.wait_for(3, WAIT).await;
        for (addr, subject) in [
            (
                "amelie@agency.example",
                "Vous avez une nouvelle demande de partenariat !",
            ),
            ("wen@agency.example", "您有一項新的合作夥伴請求!"),
            ("george@agency.example", "You have a new partner request!"),
        ] {
            let got = to(&mails, addr);
            assert_eq!(got.len(), 1, "{addr}: {} mails", got.len());
            assert_eq!(got[0].header("Subject").unwrap(), subject, "{addr}");
            assert!(got[0].text_body().contains("Brand & Co"), "{addr}");
        }

        // The agency sees it incoming; its employee may neither accept nor
        // decline, and nothing changes.
        let (_, incoming) = d
            .get(&format!(
                "/v1/businesses/{agency}/invitations?actor_user_id=amelie&direction=incoming"
            ))
            .await;
        assert_eq!(incoming["items"][0]["id"], id.as_str(), "{incoming}");
        for path in ["accept", "decline"] {
            let (status, body) = d
                .post(
                    &format!("/v1/invitations/{id}/{path}"),
                    json!({"actor_user_id": "emp"}),
                )
                .await;
            assert_eq!(
                (status, body["code"].as_str()),
                (StatusCode::FORBIDDEN, Some("forbidden")),
                "{path}: {body}"
            );
        }
        // Nor may the sender answer its own invitation.
        let (status, _) = d
            .post(
                &format!("/v1/invitations/{id}/accept"),
                json!({"actor_user_id": "olive"}),
            )
            .await;
        assert_eq!(status, StatusCode::FORBIDDEN);

        let (status, body) = d
            .post(
                &format!("/v1/invitations/{id}/accept"),
                json!({"actor_user_id": "george"}),
            )
            .await;
        assert_eq!(status, StatusCode::OK, "{body}");
        assert_eq!(body["invitation"]["status"], "accepted");
        assert_eq!(body["partnership"]["partner_business_id"], brand.as_str());

        for (me, owner, other, name) in [
            (&brand, "olive", &agency, "Agence Lumière"),
            (&agency, "amelie", &brand, "Brand & Co"),
        ] {
            let (status, list) = d
                .get(&format!(
                    "/v1/businesses/{me}/partners?actor_user_id={owner}"
                ))
                .await;
            assert_eq!(status, StatusCode::OK, "{list}");
            let items = list["items"].as_array().unwrap();
            assert_eq!(items.len(), 1, "{list}");
            assert_eq!(items[0]["partner_business_id"], other.as_str());
            assert_eq!(items[0]["partner_name"], name);
            assert_eq!(items[0]["kind"], "partner_invite");
        }

        let accepted = mail_to(&d, "olive@brand.example").await;
        assert_eq!(accepted.header("Subject").unwrap(), "Invitation accepted");
        assert!(
            accepted.text_body().contains("Agence Lumière"),
            "{}",
            accepted.text_body()
        );
        // Four mails in all, none to the employee, queued or sent.
        assert_eq!(d.sink.wait_for(4, WAIT).await.len(), 4);
        assert!(to(&d.sink.messages(), "emp@agency.example").is_empty());
        assert_eq!(
            db.count("SELECT count(*) FROM email_outbox WHERE recipient = 'emp@agency.example'"
            )
            .await,
            0
        );
        // R16: each side has its partnership.established event.
        assert_eq!(
            db.count("SELECT count(DISTINCT business_id) FROM events WHERE type = 'partnership.established'"
            )
            .await,
            2
        );
        // Accepting again is a used invitation.
        let (status, body) = d
            .post(
                &format!("/v1/invitations/{id}/accept"),
                json!({"actor_user_id": "wen"}),
            )
            .await;
        assert_eq!(status, StatusCode::CONFLICT, "{body}");
        d.stop().await;
    }
}

both_stores! {
    /// R19, R8: a partner invitation is refused for oneself, for an existing
    /// partner and while one is pending between the pair (either way); an
    /// unknown Business ID is 404; each one counts towards the quota; a decline
    /// leaves no partnership.
    async fn partner_invitations_conflict_count_and_decline(db: Db) {
        let d = TestDaemon::start(&db).await;
        let (brand, agency) = brand_and_agency(&d, &db).await;
        let brand_public = public_id(&d, &brand, "olive").await;
        let agency_public = public_id(&d, &agency, "amelie").await;
        let r = &d;
        let ask = |from: &str, actor: &str, public: &str, direction: &str| {
            let path = format!("/v1/businesses/{from}/partners");
            let body =
                json!({"actor_user_id": actor, "partner_business_id": public, "direction": direction});
            async move { r.post(&path, body).await }
        };
        let (status, body) = ask(&brand, "olive", &brand_public, "invite").await;
        assert_eq!(
            (status, body["code"].as_str()),
            (StatusCode::CONFLICT, Some("conflict"))
        );
        let (status, _) = ask(&brand, "olive", &"2".repeat(24), "invite").await;
        assert_eq!(status, StatusCode::NOT_FOUND);
        // The agency's employee may not add partners (R2).
        let (status, _) = ask(&agency, "emp", &brand_public, "request").await;
        assert_eq!(status, StatusCode::FORBIDDEN);

        let (status, req) = ask(&agency, "wen", &brand_public, "request").await;
        assert_eq!(status, StatusCode::CREATED, "{req}");
        assert_eq!(req["kind"], "partner_request");
        // Only the brand's owner manages its partners: one partner_request email.
        let mails = d.sink.wait_for(1, WAIT).await;
        assert_eq!(mails[0].to, vec!["olive@brand.example".to_string()]);
        assert_eq!(
            mails[0].header("Subject").unwrap(),
            "You have a new partner request!"
        );
        for (from, actor, public) in [
            (&brand, "olive", &agency_public),
            (&agency, "amelie", &brand_public),
        ] {
            let (status, body) = ask(from, actor, public, "invite").await;
            assert_eq!(status, StatusCode::CONFLICT, "{body}");
        }
        let (_, quota) = d
            .get(&format!(
                "/v1/businesses/{agency}/invitation-quota?actor_user_id=amelie"
            ))
            .await;
        assert_eq!(quota["used"], 1, "{quota}");

        let id = req["id"].as_str().unwrap();
        // R14 for partner invitations: a resend inside the cooldown is refused;
        // after it, the receiving managers get the request again.
        let resend = format!("/v1/invitations/{id}/resend");
        let (status, body) = d.post(&resend, json!({"actor_user_id": "wen"})).await;
        assert_eq!(status, StatusCode::TOO_MANY_REQUESTS, "{body}");
        db.exec("UPDATE email_outbox SET created_at = $1", &[ago(11 * 60)])
            .await;
        let (status, body) = d.post(&resend, json!({"actor_user_id": "wen"})).await;
        assert_eq!(status, StatusCode::ACCEPTED, "{body}");
        let again = d.sink.wait_for(2, WAIT).await;
        assert_eq!(again[1].to, vec!["olive@brand.example".to_string()]);
        assert_eq!(
            again[1].header("Subject").unwrap(),
            "You have a new partner request!"
        );
        let (status, body) = d
            .post(
                &format!("/v1/invitations/{id}/decline"),
                json!({"actor_user_id": "olive"}),
            )
            .await;
        assert_eq!(
            (status, body["status"].as_str()),
            (StatusCode::OK, Some("declined")),
            "{body}"
        );
        let (_, list) = d
            .get(&format!(
                "/v1/businesses/{brand}/partners?actor_user_id=olive"
            ))
            .await;
        assert_eq!(list["items"], json!([]));

        // After the decline the pair may try again; once partners, no more.
        partners(&d, &brand, &agency).await;
        let (status, body) = ask(&agency, "amelie", &brand_public, "request").await;
        assert_eq!(status, StatusCode::CONFLICT, "{body}");
        d.stop().await;
    }
}

both_stores! {
    /// R23, R24: the grant chain of the source documents, step by step.
    async fn publisher_reaches_a_partner_employee_only_through_the_chain(db: Db) {
        let d = TestDaemon::start(&db).await;
        let (brand, agency) = brand_and_agency(&d, &db).await;
        partners(&d, &brand, &agency).await;
        let p = profile(&d, &brand, "olive", "Brand & Co on Pins").await;
        let grants = format!("/v1/profiles/{p}/grants");

        // The brand grants the agency.
        let (status, to_agency) = d
            .post(
                &grants,
                json!({"actor_user_id": "olive", "grantee": {"business_id": agency}, "permission": "publisher"}),
            )
            .await;
        assert_eq!(status, StatusCode::CREATED, "{to_agency}");
        assert_eq!(to_agency["grantee"]["business_id"], agency.as_str());

        // That alone gives the agency's employee nothing.
        let before = access(&d, "emp", &p).await;
        assert_eq!(before["allowed"], false, "{before}");
        assert_eq!(before["via"], json!([]));
        assert!(
            before["reason"].as_str().unwrap().contains("partner"),
            "{before}"
        );

        // The employee cannot grant themselves.
        let (status, body) = d
            .post(
                &grants,
                json!({"actor_user_id": "emp", "grantee": {"user_id": "emp"}, "permission": "publisher"}),
            )
            .await;
        assert_eq!(
            (status, body["code"].as_str()),
            (StatusCode::FORBIDDEN, Some("forbidden")),
            "{body}"
        );

        // The agency's owner grants the employee: a chain of two.
        let (status, to_emp) = d
            .post(
                &grants,
                json!({"actor_user_id": "amelie", "grantee": {"user_id": "emp"}, "permission": "publisher"}),
            )
            .await;
        assert_eq!(status, StatusCode::CREATED, "{to_emp}");
        assert_eq!(to_emp["derived_from"], to_agency["id"]);
        let allowed = access(&d, "emp", &p).await;
        assert_eq!(allowed["allowed"], true, "{allowed}");
        let chain: Vec<&Value> = allowed["via"]
            .as_array()
            .unwrap()
            .iter()
            .map(|g| &g["id"])
            .collect();
        assert_eq!(chain, vec![&to_agency["id"], &to_emp["id"]]);
        // The profile switcher shows it, with its business.
        let (_, mine) = d.get("/v1/users/emp/profiles").await;
        assert_eq!(mine["items"][0]["id"], p.as_str(), "{mine}");
        assert_eq!(mine["items"][0]["business"]["name"], "Brand & Co");

        // The brand removes its grant: the employee loses access, the derived
        // grant is gone with it, and both removals are events (R16).
        let (status, _) = d
            .delete(&format!(
                "{grants}/{}?actor_user_id=olive",
                to_agency["id"].as_str().unwrap()
            ))
            .await;
        assert_eq!(status, StatusCode::NO_CONTENT);
        assert_eq!(access(&d, "emp", &p).await["allowed"], false);
        assert_eq!(db.count("SELECT count(*) FROM profile_grants").await, 0);
        assert_eq!(
            db.count("SELECT count(*) FROM events WHERE type = 'grant.removed'"
            )
            .await,
            2
        );
        // And the agency may not grant on a profile it no longer holds.
        let (status, _) = d
            .post(
                &grants,
                json!({"actor_user_id": "amelie", "grantee": {"user_id": "emp"}, "permission": "publisher"}),
            )
            .await;
        assert_eq!(status, StatusCode::FORBIDDEN);
        let (_, mine) = d.get("/v1/users/emp/profiles").await;
        assert_eq!(mine["items"], json!([]));
        d.stop().await;
    }
}

both_stores! {
    /// R23: ending the partnership, from either side, removes every grant it
    /// carried, derived ones included, in the same transaction.
    async fn ending_a_partnership_removes_every_grant_it_carried(db: Db) {
        let d = TestDaemon::start(&db).await;
        let (brand, agency) = brand_and_agency(&d, &db).await;
        partners(&d, &brand, &agency).await;
        let p = profile(&d, &brand, "olive", "Brand").await;
        let grants = format!("/v1/profiles/{p}/grants");
        let (status, _) = d
            .post(
                &grants,
                json!({"actor_user_id": "olive", "grantee": {"business_id": agency}}),
            )
            .await;
        assert_eq!(status, StatusCode::CREATED);
        let (status, _) = d
            .post(
                &grants,
                json!({"actor_user_id": "wen", "grantee": {"user_id": "emp"}}),
            )
            .await;
        assert_eq!(status, StatusCode::CREATED);
        assert_eq!(access(&d, "emp", &p).await["allowed"], true);

        // An employee may not end it; the agency's manager may.
        let (status, _) = d
            .delete(&format!(
                "/v1/businesses/{agency}/partners/{brand}?actor_user_id=emp"
            ))
            .await;
        assert_eq!(status, StatusCode::FORBIDDEN);
        let (status, body) = d
            .delete(&format!(
                "/v1/businesses/{agency}/partners/{brand}?actor_user_id=george"
            ))
            .await;
        assert_eq!(status, StatusCode::NO_CONTENT, "{body}");
        assert_eq!(access(&d, "emp", &p).await["allowed"], false);
        assert_eq!(db.count("SELECT count(*) FROM profile_grants").await, 0);
        for (me, owner) in [(&brand, "olive"), (&agency, "amelie")] {
            let (_, list) = d
                .get(&format!(
                    "/v1/businesses/{me}/partners?actor_user_id={owner}"
                ))
                .await;
            assert_eq!(list["items"], json!([]), "{list}");
        }
        assert_eq!(
            db.count("SELECT count(*) FROM events WHERE type = 'partnership.ended'"
            )
            .await,
            2
        );
        // Without a partnership, no business grant.
        let (status, body) = d
            .post(
                &grants,
                json!({"actor_user_id": "olive", "grantee": {"business_id": agency}}),
            )
            .await;
        assert_eq!(status, StatusCode::CONFLICT, "{body}");
        let (status, _) = d
            .delete(&format!(
                "/v1/businesses/{agency}/partners/{brand}?actor_user_id=amelie"
            ))
            .await;
        assert_eq!(status, StatusCode::NOT_FOUND);
        d.stop().await;
    }
}

both_stores! {
    /// R13: grants attached to an invitation are checked at creation and applied
    /// on acceptance, for a member and for a partner.
    async fn invitation_grants_apply_on_acceptance(db: Db) {
        let d = TestDaemon::start(&db).await;
        let (brand, agency) = brand_and_agency(&d, &db).await;
        let p = profile(&d, &brand, "olive", "Brand").await;
        let theirs = profile(&d, &agency, "amelie", "Agency").await;
        let path = format!("/v1/businesses/{brand}/invitations");
        // A profile of another business is refused, naming the field.
        let (status, body) = d
            .post(
                &path,
                json!({"actor_user_id": "olive", "invitees": [{"email": "ivy@brand.example"}],
                       "grants": [{"profile_id": theirs, "permission": "publisher"}]}),
            )
            .await;
        assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{body}");
        assert!(body.to_string().contains("grants[0].profile_id"), "{body}");

        let (status, body) = d
            .post(
                &path,
                json!({"actor_user_id": "olive", "invitees": [{"email": "ivy@brand.example"}],
                       "grants": [{"profile_id": p, "permission": "publisher"}]}),
            )
            .await;
        assert_eq!(status, StatusCode::CREATED, "{body}");
        assert_eq!(body["items"][0]["grants"][0]["profile_id"], p.as_str());
        d.user("ivy", "ivy@brand.example", "en-US").await;
        assert_eq!(access(&d, "ivy", &p).await["allowed"], false);
        let token = token_from(&mail_to(&d, "ivy@brand.example").await.text_body());
        let (status, body) = d
            .post(
                "/v1/invitations/accept",
                json!({"token": token, "user_id": "ivy"}),
            )
            .await;
        assert_eq!(status, StatusCode::OK, "{body}");
        let ivy = access(&d, "ivy", &p).await;
        assert_eq!(ivy["allowed"], true, "{ivy}");
        assert_eq!(ivy["via"][0]["granted_by"], "olive");
        // R23: a grant lives as long as the membership that carries it.
        let (status, _) = d
            .delete(&format!(
                "/v1/businesses/{brand}/members/ivy?actor_user_id=olive"
            ))
            .await;
        assert_eq!(status, StatusCode::NO_CONTENT);
        assert_eq!(access(&d, "ivy", &p).await["allowed"], false);
        assert_eq!(
            db.count("SELECT count(*) FROM events WHERE type = 'grant.removed'"
            )
            .await,
            1
        );

        // A partner invitation with a grant: the agency holds it on acceptance.
        let public = public_id(&d, &agency, "amelie").await;
        let (status, inv) = d
            .post(
                &format!("/v1/businesses/{brand}/partners"),
                json!({"actor_user_id": "olive", "partner_business_id": public, "direction": "invite",
                       "grants": [{"profile_id": p, "permission": "publisher"}]}),
            )
            .await;
        assert_eq!(status, StatusCode::CREATED, "{inv}");
        let (status, body) = d
            .post(
                &format!("/v1/invitations/{}/accept", inv["id"].as_str().unwrap()),
                json!({"actor_user_id": "amelie"}),
            )
            .await;
        assert_eq!(status, StatusCode::OK, "{body}");
        let (status, _) = d
            .post(
                &format!("/v1/profiles/{p}/grants"),
                json!({"actor_user_id": "amelie", "grantee": {"user_id": "emp"}}),
            )
            .await;
        assert_eq!(status, StatusCode::CREATED, "the agency holds the grant");
        assert_eq!(
            access(&d, "emp", &p).await["via"].as_array().unwrap().len(),
            2
        );
        d.stop().await;
    }
}

both_stores! {
    /// R15: with policy `all` (and `managers` for a manager), an accept without
    /// `mfa_verified` is 403 `mfa_required` and the invitation stays pending;
    /// the same accept with it succeeds. Partner accepts follow the receiving
    /// business's policy for the accepting manager's role.
    async fn two_factor_policy_holds_accepts_back(db: Db) {
        let d = TestDaemon::start(&db).await;
        let (brand, agency) = brand_and_agency(&d, &db).await;
        let security = format!("/v1/businesses/{brand}/security");
        // Only the owner (or security.require_2fa) sets it.
        d.user("eve", "eve@brand.example", "en-US").await;
        join(&db, &brand, "eve", "employee").await;
        let (status, _) = d
            .put(
                &security,
                json!({"actor_user_id": "eve", "require_2fa": "all"}),
            )
            .await;
        assert_eq!(status, StatusCode::FORBIDDEN);
        let (status, body) = d
            .put(
                &security,
                json!({"actor_user_id": "olive", "require_2fa": "sometimes"}),
            )
            .await;
        assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{body}");

        let r = &d;
        let invite = |email: &'static str, role: &'static str| {
            let path = format!("/v1/businesses/{brand}/invitations");
            async move {
                let (status, body) = r
                    .post(
                        &path,
                        json!({"actor_user_id": "olive", "invitees": [{"email": email, "role": role}]}),
                    )
                    .await;
                assert_eq!(status, StatusCode::CREATED, "{body}");
                let id = body["items"][0]["id"].as_str().unwrap().to_string();
                (id, token_from(&mail_to(r, email).await.text_body()))
            }
        };
        let refused = |id: String, token: String, user: &'static str| async move {
            let (status, body) = r
                .post(
                    "/v1/invitations/accept",
                    json!({"token": token, "user_id": user}),
                )
                .await;
            assert_eq!(
                (status, body["code"].as_str()),
                (StatusCode::FORBIDDEN, Some("mfa_required")),
                "{body}"
            );
            let (_, inv) = r
                .get(&format!("/v1/invitations/{id}?actor_user_id=olive"))
                .await;
            assert_eq!(inv["status"], "pending", "{inv}");
        };

        // Policy all: even an employee.
        let (status, body) = d
            .put(
                &security,
                json!({"actor_user_id": "olive", "require_2fa": "all"}),
            )
            .await;
        assert_eq!(
            (status, body["require_2fa"].as_str()),
            (StatusCode::OK, Some("all")),
            "{body}"
        );
        d.user("ann", "ann@x.example", "en-US").await;
        let (id, token) = invite("ann@x.example", "employee").await;
        refused(id, token.clone(), "ann").await;
        let (status, body) = d
            .post(
                "/v1/invitations/accept",
                json!({"token": token, "user_id": "ann", "mfa_verified": true}),
            )
            .await;
        assert_eq!(status, StatusCode::OK, "{body}");

        // Policy managers: a manager needs it, an employee does not.
        d.put(
            &security,
            json!({"actor_user_id": "olive", "require_2fa": "managers"}),
        )
        .await;
        d.user("max", "max@x.example", "en-US").await;
        let (id, token) = invite("max@x.example", "manager").await;
        refused(id, token, "max").await;
        d.user("eli", "eli@x.example", "en-US").await;
        let (_, token) = invite("eli@x.example", "employee").await;
        let (status, body) = d
            .post(
                "/v1/invitations/accept",
                json!({"token": token, "user_id": "eli"}),
            )
            .await;
        assert_eq!(status, StatusCode::OK, "{body}");

        // A partner accept: the agency requires 2FA of managers; its manager's
        // accept without it is refused and the invitation stays pending.
        let (status, _) = d
            .put(
                &format!("/v1/businesses/{agency}/security"),
                json!({"actor_user_id": "amelie", "require_2fa": "managers"}),
            )
            .await;
        assert_eq!(status, StatusCode::OK);
        let public = public_id(&d, &agency, "amelie").await;
        let (_, inv) = d
            .post(
                &format!("/v1/businesses/{brand}/partners"),
                json!({"actor_user_id": "olive", "partner_business_id": public, "direction": "invite"}),
            )
            .await;
        let id = inv["id"].as_str().unwrap().to_string();
        let accept = format!("/v1/invitations/{id}/accept");
        let (status, body) = d.post(&accept, json!({"actor_user_id": "wen"})).await;
        assert_eq!(
            (status, body["code"].as_str()),
            (StatusCode::FORBIDDEN, Some("mfa_required")),
            "{body}"
        );
        let (_, still) = d
            .get(&format!("/v1/invitations/{id}?actor_user_id=olive"))
            .await;
        assert_eq!(still["status"], "pending");
        let (status, body) = d
            .post(
                &accept,
                json!({"actor_user_id": "wen", "mfa_verified": true}),
            )
            .await;
        assert_eq!(status, StatusCode::OK, "{body}");
        assert_eq!(
            db.count("SELECT count(*) FROM events WHERE type = 'security.updated'"
            )
            .await,
            3
        );
        d.stop().await;
    }
}

both_stores! {
    /// R1: the authorization check answers any capability of the catalog.
    async fn authorize_answers_any_capability(db: Db) {
        let d = TestDaemon::start(&db).await;
        let (brand, agency) = brand_and_agency(&d, &db).await;
        for (user, business, capability, allowed, role) in [
            ("olive", &brand, "billing.edit", true, json!("owner")),
            ("wen", &agency, "partners.manage", true, json!("manager")),
            ("wen", &agency, "billing.edit", false, json!("manager")),
            ("emp", &agency, "content.publish", true, json!("employee")),
            ("emp", &agency, "members.invite", false, json!("employee")),
            ("emp", &brand, "content.view", false, Value::Null),
        ] {
            let (status, body) = d
                .get(&format!(
                    "/v1/authorize?user_id={user}&business_id={business}&capability={capability}"
                ))
                .await;
            assert_eq!(status, StatusCode::OK, "{body}");
            assert_eq!(body["allowed"], allowed, "{user} {capability}: {body}");
            assert_eq!(body["role"], role, "{user}: {body}");
        }
        let (status, body) = d
            .get(&format!("/v1/authorize?user_id=emp&business_id={brand}"))
            .await;
        assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{body}");
        d.stop().await;
    }
}

both_stores! {
    /// R31 with R13: a renewed member invitation carries the profile grants of
    /// the one it replaces; a delivered partner request is recorded as sent.
    async fn renewal_keeps_grants_and_partner_emails_are_recorded_as_sent(db: Db) {
        let d = TestDaemon::start(&db).await;
        let (brand, agency) = brand_and_agency(&d, &db).await;
        let p = profile(&d, &brand, "olive", "Brand").await;
        let (status, body) = d
            .post(
                &format!("/v1/businesses/{brand}/invitations"),
                json!({"actor_user_id": "olive", "invitees": [{"email": "rita@brand.example"}],
                       "grants": [{"profile_id": p, "permission": "publisher"}]}),
            )
            .await;
        assert_eq!(status, StatusCode::CREATED, "{body}");
        let id = body["items"][0]["id"].as_str().unwrap().to_string();
        let (status, _) = d
            .post(
                &format!("/v1/invitations/{id}/cancel"),
                json!({"actor_user_id": "olive"}),
            )
            .await;
        assert_eq!(status, StatusCode::OK);
        let (status, renewed) = d
            .post(
                &format!("/v1/invitations/{id}/renew"),
                json!({"actor_user_id": "olive"}),
            )
            .await;
        assert_eq!(status, StatusCode::CREATED, "{renewed}");
        assert_eq!(renewed["grants"], body["items"][0]["grants"], "{renewed}");
        assert_eq!(renewed["grants"][0]["profile_id"], p.as_str());

        let public = public_id(&d, &agency, "amelie").await;
        let (status, inv) = d
            .post(
                &format!("/v1/businesses/{brand}/partners"),
                json!({"actor_user_id": "olive", "partner_business_id": public, "direction": "request"}),
            )
            .await;
        assert_eq!(status, StatusCode::CREATED, "{inv}");
        let inv_id = inv["id"].as_str().unwrap().to_string();
        support::wait::eventually(WAIT, "an invitation.sent for the partner request", || async {
            let sent = db
                .count_with(
                    "SELECT count(*) FROM events WHERE type = 'invitation.sent' AND invitation_id = $1",
                    &[Arg::Uuid(inv_id.parse().unwrap())],
                )
                .await;
            if sent > 0 {
                Ok(())
            } else {
                Err(format!("no invitation.sent for the partner request ({sent} events)"))
            }
        })
        .await;

        // R31 for a business: a cancelled partner request is renewed to the
        // same business, in the same direction, linked to the old one.
        let (status, _) = d
            .post(
                &format!("/v1/invitations/{inv_id}/cancel"),
                json!({"actor_user_id": "olive"}),
            )
            .await;
        assert_eq!(status, StatusCode::OK);
        let (status, again) = d
            .post(
                &format!("/v1/invitations/{inv_id}/renew"),
                json!({"actor_user_id": "olive"}),
            )
            .await;
        assert_eq!(status, StatusCode::CREATED, "{again}");
        assert_eq!(again["kind"], "partner_request");
        assert_eq!(again["status"], "pending");
        assert_eq!(again["partner_business_id"], inv["partner_business_id"]);
        assert_eq!(again["renewed_from"], inv_id.as_str());
        assert_ne!(again["id"], inv["id"]);
        let renewed_events = db
            .count_with(
                "SELECT count(*) FROM events WHERE type = 'invitation.renewed' AND invitation_id = $1",
                &[Arg::Uuid(inv_id.parse().unwrap())],
            )
            .await;
        assert_eq!(renewed_events, 1);
        d.stop().await;
    }
}
