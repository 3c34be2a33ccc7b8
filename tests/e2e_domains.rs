//! Verified domains (R52) and the way in they open (R53), end to end with
//! the daemon in-process on both stores, its resolver pointed at a real DNS
//! server on loopback (`support::dns`): a claim and its TXT record, a wrong
//! record refused naming what the DNS answered, verification, the automatic
//! invitation of a user who registers at the domain (its email in the SMTP
//! sink, accepted into `member.added` with `via: "domain"`), suggestions,
//! the quota skipping an invitation, and the refusals that write nothing.

mod support;

use std::time::Duration;

use reqwest::StatusCode;
use serde_json::{Value, json};
use support::daemon::{ADMIN_KEY, TestDaemon, token_from};
use support::db::Db;
use support::dns::DnsServer;
use support::scenario::{brand, of_type, timeline};
use support::smtp_sink::SmtpSink;

const WAIT: Duration = Duration::from_secs(30);

async fn start(db: &Db, dns: &DnsServer) -> TestDaemon {
    let resolver = dns.addr();
    TestDaemon::start_with(db, SmtpSink::start(), move |c| {
        c.domains.resolver = Some(resolver);
    })
    .await
}

async fn claim(
    d: &TestDaemon,
    b: &str,
    actor: &str,
    domain: &str,
    mode: &str,
) -> (StatusCode, Value) {
    d.post(
        &format!("/v1/businesses/{b}/domains"),
        json!({"actor_user_id": actor, "domain": domain, "mode": mode}),
    )
    .await
}

async fn verify(d: &TestDaemon, b: &str, actor: &str, domain: &str) -> (StatusCode, Value) {
    d.post(
        &format!("/v1/businesses/{b}/domains/{domain}/verify"),
        json!({"actor_user_id": actor}),
    )
    .await
}

/// Claims `domain` for `b` as olive, publishes its record and verifies it.
async fn verified(d: &TestDaemon, dns: &DnsServer, b: &str, domain: &str, mode: &str) {
    let (status, body) = claim(d, b, "olive", domain, mode).await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    dns.set_txt(domain, &[body["txt_record"].as_str().unwrap()]);
    let (status, body) = verify(d, b, "olive", domain).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["verified"], true, "{body}");
}

async fn count(db: &Db, sql: &str) -> i64 {
    db.count(sql).await
}

/// The `data` of every event of one type, oldest first.
async fn event_data(db: &Db, kind: &str) -> Vec<Value> {
    db.strings(&format!(
        "SELECT CAST(data AS TEXT) FROM events WHERE type = '{kind}' ORDER BY occurred_at, id"
    ))
    .await
    .iter()
    .map(|s| serde_json::from_str(s).unwrap())
    .collect()
}

both_stores! {
    /// R52, R53: the claim answers a fresh TXT record; a wrong record is
    /// `409` quoting what the DNS answered and changes nothing; the right
    /// one verifies (`domain.verified`); a user registering at the domain
    /// then gets the usual invitation email, the invitation remembers its
    /// domain (and its timeline shows it), and accepting it adds the member
    /// with `via: "domain"`.
    async fn a_verified_domain_invites_who_registers_there(db: Db) {
        let dns = DnsServer::start();
        let d = start(&db, &dns).await;
        let b = brand(&d).await;

        let (status, body) = claim(&d, &b, "olive", "Acme.Example", "auto_invite").await;
        assert_eq!(status, StatusCode::CREATED, "{body}");
        assert_eq!(body["domain"], "acme.example");
        assert_eq!(body["mode"], "auto_invite");
        assert_eq!(body["verified"], false);
        let record = body["txt_record"].as_str().unwrap().to_string();
        let value = record.strip_prefix("invited-verification=").expect(&record);
        assert_eq!(value.len(), 32, "128 bits in hex: {record}");
        assert!(value.chars().all(|c| c.is_ascii_hexdigit()), "{record}");
        // Another claim gets another value.
        let (_, other) = claim(&d, &b, "olive", "acme-two.example", "suggest").await;
        assert_ne!(other["txt_record"], body["txt_record"]);

        // The DNS answers, but not our record: 409 naming what it said.
        dns.set_txt("acme.example", &["v=spf1 -all", "invited-verification=0000"]);
        let (status, body) = verify(&d, &b, "olive", "acme.example").await;
        assert_eq!(
            (status, body["code"].as_str()),
            (StatusCode::CONFLICT, Some("conflict")),
            "{body}"
        );
        let detail = body["detail"].as_str().unwrap();
        assert!(
            detail.contains("v=spf1 -all") && detail.contains("invited-verification=0000"),
            "{detail}"
        );
        assert!(dns.queries().contains(&"acme.example".to_string()));
        assert_eq!(count(&db, "SELECT count(*) FROM events WHERE type = 'domain.verified'").await, 0);
        // No record at all: said so.
        let (status, body) = verify(&d, &b, "olive", "acme-two.example").await;
        assert_eq!(status, StatusCode::CONFLICT, "{body}");
        assert!(body["detail"].as_str().unwrap().contains("no TXT record"), "{body}");

        // Before verification, a user at the domain is not invited.
        d.user("early", "early@acme.example", "en-US").await;
        assert_eq!(count(&db, "SELECT count(*) FROM invitations WHERE email = 'early@acme.example'").await, 0);

        dns.set_txt("acme.example", &["v=spf1 -all", &record]);
        let (status, body) = verify(&d, &b, "olive", "acme.example").await;
        assert_eq!(status, StatusCode::OK, "{body}");
        assert_eq!(body["verified"], true);
        assert!(body["verified_at"].is_string(), "{body}");
        let verified = event_data(&db, "domain.verified").await;
        assert_eq!(verified, vec![json!({"domain": "acme.example", "mode": "auto_invite"})]);
        // Verifying again is the same answer, and no second event.
        let (status, _) = verify(&d, &b, "olive", "acme.example").await;
        assert_eq!(status, StatusCode::OK);
        assert_eq!(event_data(&db, "domain.verified").await.len(), 1);

        let (status, list) = d.get(&format!("/v1/businesses/{b}/domains?actor_user_id=olive")).await;
        assert_eq!(status, StatusCode::OK, "{list}");
        let listed: Vec<(&str, bool)> = list["items"]
            .as_array()
            .unwrap()
            .iter()
            .map(|c| (c["domain"].as_str().unwrap(), c["verified"].as_bool().unwrap()))
            .collect();
        assert_eq!(listed, vec![("acme-two.example", false), ("acme.example", true)]);

        // Ann registers at the domain: the invitation and its email.
        d.user("ann", "Ann@ACME.example", "en-GB").await;
        let mail = d.sink.wait_for(1, WAIT).await.remove(0);
        assert_eq!(mail.to, vec!["ann@acme.example".to_string()]);
        let subject = mail.header("Subject").unwrap();
        assert!(subject.contains("Brand & Co") && subject.contains("olive"), "{subject}");
        let token = token_from(&mail.text_body());

        let (status, invitations) = d
            .get(&format!("/v1/businesses/{b}/invitations?actor_user_id=olive"))
            .await;
        assert_eq!(status, StatusCode::OK, "{invitations}");
        let items = invitations["items"].as_array().unwrap();
        assert_eq!(items.len(), 1, "{invitations}");
        let inv = &items[0];
        assert_eq!(inv["email"], "ann@acme.example");
        assert_eq!(inv["invited_by"], "olive");
        assert_eq!(inv["role"], "employee", "the default role: {inv}");
        assert_eq!(inv["source_domain"], "acme.example");
        let id = inv["id"].as_str().unwrap().to_string();
        let created = timeline(&d, &id).await;
        let created = of_type(&created, "invitation.created");
        assert_eq!(created[0]["data"]["source_domain"], "acme.example", "{created:?}");

        // Updating ann again does not invite her twice.
        d.user("ann", "ann@acme.example", "fr-FR").await;
        assert_eq!(count(&db, "SELECT count(*) FROM invitations").await, 1);

        let (status, body) = d
            .post("/v1/invitations/accept", json!({"token": token, "user_id": "ann"}))
            .await;
        assert_eq!(status, StatusCode::OK, "{body}");
        assert_eq!(body["membership"]["role"], "employee");
        let items = timeline(&d, &id).await;
        let added = of_type(&items, "member.added");
        assert_eq!(added.len(), 1, "{items:?}");
        assert_eq!(added[0]["data"]["via"], "domain");
        assert_eq!(added[0]["data"]["user_id"], "ann");
        d.stop().await;
    }
}

both_stores! {
    /// R52 `suggest`: a verified domain lists the business for users at it
    /// who are not members, and invites nobody.
    async fn a_suggest_domain_lists_the_business_for_its_users(db: Db) {
        let dns = DnsServer::start();
        let d = start(&db, &dns).await;
        let b = brand(&d).await;
        // Claimed but not verified: suggests nothing yet.
        let (status, body) = claim(&d, &b, "olive", "brand.example", "suggest").await;
        assert_eq!(status, StatusCode::CREATED, "{body}");
        d.user("bea", "bea@brand.example", "en-US").await;
        let (status, body) = d.get("/v1/users/bea/suggestions").await;
        assert_eq!(status, StatusCode::OK, "{body}");
        assert_eq!(body["items"], json!([]));

        dns.set_txt("brand.example", &[body_txt(&d, &b, "brand.example").await.as_str()]);
        let (status, body) = verify(&d, &b, "olive", "brand.example").await;
        assert_eq!(status, StatusCode::OK, "{body}");

        let (status, body) = d.get("/v1/users/bea/suggestions").await;
        assert_eq!(status, StatusCode::OK, "{body}");
        let items = body["items"].as_array().unwrap();
        assert_eq!(items.len(), 1, "{body}");
        assert_eq!(items[0]["business"]["id"], b.as_str());
        assert_eq!(items[0]["business"]["name"], "Brand & Co");
        assert!(items[0]["business"]["business_id"].is_string(), "{body}");
        assert_eq!(items[0]["domain"], "brand.example");
        // Olive is a member already: nothing to suggest to her.
        let (_, body) = d.get("/v1/users/olive/suggestions").await;
        assert_eq!(body["items"], json!([]));
        // Another domain, nothing; an unknown user, 404.
        d.user("carl", "carl@elsewhere.example", "en-US").await;
        let (_, body) = d.get("/v1/users/carl/suggestions").await;
        assert_eq!(body["items"], json!([]));
        let (status, _) = d.get("/v1/users/nobody/suggestions").await;
        assert_eq!(status, StatusCode::NOT_FOUND);

        // `suggest` invites nobody.
        d.user("dan", "dan@brand.example", "en-US").await;
        assert_eq!(count(&db, "SELECT count(*) FROM invitations").await, 0);
        assert!(d.sink.messages().is_empty());
        d.stop().await;
    }
}

/// The TXT record of a claim, as the list shows it to olive.
async fn body_txt(d: &TestDaemon, b: &str, domain: &str) -> String {
    body_txt_as(d, b, "olive", domain).await
}

both_stores! {
    /// R52 with R8: when the quota is spent, the automatic invitation is
    /// skipped and `invitation.skipped` says why; no invitation, no email.
    async fn a_spent_quota_skips_the_automatic_invitation(db: Db) {
        let dns = DnsServer::start();
        let resolver = dns.addr();
        let d = TestDaemon::start_with(&db, SmtpSink::start(), move |c| {
            c.domains.resolver = Some(resolver);
            c.invitations.rate_limit.count = 1;
        })
        .await;
        let b = brand(&d).await;
        verified(&d, &dns, &b, "acme.example", "auto_invite").await;
        support::scenario::invite(&d, &b, "first@other.example").await;

        d.user("ann", "ann@acme.example", "en-US").await;
        let skipped = event_data(&db, "invitation.skipped").await;
        assert_eq!(skipped.len(), 1, "{skipped:?}");
        assert_eq!(skipped[0]["reason"], "quota_exceeded");
        assert_eq!(skipped[0]["user_id"], "ann");
        assert_eq!(skipped[0]["email"], "ann@acme.example");
        assert_eq!(skipped[0]["source_domain"], "acme.example");
        assert!(skipped[0]["detail"].as_str().unwrap().contains("rate limited"), "{skipped:?}");
        assert_eq!(
            count(&db, "SELECT count(*) FROM invitations WHERE email = 'ann@acme.example'").await,
            0
        );
        // Only the one invitation made by hand was emailed.
        let mails = d.sink.wait_for(1, WAIT).await;
        assert_eq!(mails[0].to, vec!["first@other.example".to_string()]);
        d.stop().await;
    }
}

both_stores! {
    /// R52's refusals, each a clear problem with nothing written: not a
    /// domain, a public mail provider, another mode, a non-owner, a claim
    /// made twice; and a domain is verified for one business only, by the
    /// service and by the partial unique index under it.
    async fn refusals_write_nothing(db: Db) {
        let dns = DnsServer::start();
        let d = start(&db, &dns).await;
        let b = brand(&d).await;
        d.user("ned", "ned@other.example", "en-US").await;
        let other = d.business("Other Ltd", "ned").await;

        for bad in ["localhost", "acme..example", "10.0.0.1", "ann@acme.example", "-acme.example", ""] {
            let (status, body) = claim(&d, &b, "olive", bad, "suggest").await;
            assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{bad}: {body}");
            assert_eq!(body["errors"][0]["field"], "domain", "{bad}: {body}");
        }
        for public in ["gmail.com", "Outlook.com", "yahoo.co.uk"] {
            let (status, body) = claim(&d, &b, "olive", public, "auto_invite").await;
            assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{public}: {body}");
            assert!(body.to_string().contains("public mail provider"), "{body}");
        }
        let (status, body) = claim(&d, &b, "olive", "acme.example", "auto").await;
        assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{body}");
        assert_eq!(body["errors"][0]["field"], "mode");
        // Ned owns another business, not this one.
        let (status, body) = claim(&d, &b, "ned", "acme.example", "suggest").await;
        assert_eq!((status, body["code"].as_str()), (StatusCode::FORBIDDEN, Some("forbidden")), "{body}");
        // Max is a member, not the owner.
        let inv = support::scenario::invite(&d, &b, "max@staff.example").await;
        let mail = d.sink.wait_for(1, WAIT).await.remove(0);
        d.user("max", "max@staff.example", "en-US").await;
        let (status, body) = d
            .post(
                "/v1/invitations/accept",
                json!({"token": token_from(&mail.text_body()), "user_id": "max"}),
            )
            .await;
        assert_eq!(status, StatusCode::OK, "{inv}: {body}");
        let (status, body) = claim(&d, &b, "max", "acme.example", "suggest").await;
        assert_eq!(status, StatusCode::FORBIDDEN, "{body}");
        assert!(body["detail"].as_str().unwrap().contains("only the owner"), "{body}");
        assert_eq!(count(&db, "SELECT count(*) FROM business_domains").await, 0);

        // Two businesses may claim a domain; the first to verify holds it.
        let (status, _) = claim(&d, &other, "ned", "acme.example", "suggest").await;
        assert_eq!(status, StatusCode::CREATED);
        let (status, body) = claim(&d, &other, "ned", "acme.example", "suggest").await;
        assert_eq!(status, StatusCode::CONFLICT, "claimed twice: {body}");
        verified(&d, &dns, &b, "acme.example", "auto_invite").await;
        // Ned's record is published too, yet the domain is taken.
        let neds = body_txt_as(&d, &other, "ned", "acme.example").await;
        let olives = body_txt(&d, &b, "acme.example").await;
        dns.set_txt("acme.example", &[&olives, &neds]);
        let (status, body) = verify(&d, &other, "ned", "acme.example").await;
        assert_eq!(status, StatusCode::CONFLICT, "{body}");
        assert!(body["detail"].as_str().unwrap().contains("another business"), "{body}");
        // A new claim on it by a third business is refused at once.
        d.user("tess", "tess@third.example", "en-US").await;
        let third = d.business("Third", "tess").await;
        let (status, body) = claim(&d, &third, "tess", "acme.example", "suggest").await;
        assert_eq!(status, StatusCode::CONFLICT, "{body}");
        assert_eq!(count(&db, "SELECT count(*) FROM business_domains WHERE verified_at IS NOT NULL").await, 1);
        assert_eq!(count(&db, "SELECT count(*) FROM business_domains").await, 2);
        // The index holds even if the service were bypassed.
        let err = db
            .try_exec(
                "UPDATE business_domains SET verified_at = created_at WHERE verified_at IS NULL",
                &[],
            )
            .await
            .unwrap_err();
        assert!(err.contains("business_domains"), "{err}");

        // Verifying needs the owner too, and a claim.
        let (status, _) = verify(&d, &b, "ned", "acme.example").await;
        assert_eq!(status, StatusCode::FORBIDDEN);
        let (status, _) = verify(&d, &b, "olive", "nothing.example").await;
        assert_eq!(status, StatusCode::NOT_FOUND);

        // Giving a claim up: owner only, then it is gone.
        let (status, _) = d
            .delete(&format!("/v1/businesses/{b}/domains/acme.example?actor_user_id=ned"))
            .await;
        assert_eq!(status, StatusCode::FORBIDDEN);
        let (status, body) = d
            .delete(&format!("/v1/businesses/{b}/domains/acme.example?actor_user_id=olive"))
            .await;
        assert_eq!(status, StatusCode::NO_CONTENT, "{body}");
        let (status, _) = d
            .delete(&format!("/v1/businesses/{b}/domains/acme.example?actor_user_id=olive"))
            .await;
        assert_eq!(status, StatusCode::NOT_FOUND);
        // Now ned's verification goes through.
        let (status, body) = verify(&d, &other, "ned", "acme.example").await;
        assert_eq!(status, StatusCode::OK, "{body}");
        d.stop().await;
    }
}

async fn body_txt_as(d: &TestDaemon, b: &str, actor: &str, domain: &str) -> String {
    let (status, list) = d
        .get(&format!("/v1/businesses/{b}/domains?actor_user_id={actor}"))
        .await;
    assert_eq!(status, StatusCode::OK, "{list}");
    list["items"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["domain"] == domain)
        .unwrap()["txt_record"]
        .as_str()
        .unwrap()
        .to_string()
}

both_stores! {
    /// R52 with R45: an address on the suppression list is not invited by
    /// its domain either; the skip says so.
    async fn a_suppressed_address_is_skipped(db: Db) {
        let dns = DnsServer::start();
        let d = start(&db, &dns).await;
        let b = brand(&d).await;
        verified(&d, &dns, &b, "acme.example", "auto_invite").await;
        let (status, body) = d
            .send_as(
                ADMIN_KEY,
                d.client()
                    .post(d.url("/v1/suppressions"))
                    .json(&json!({"email": "gone@acme.example"})),
            )
            .await;
        assert_eq!(status, StatusCode::CREATED, "{body}");

        d.user("gone", "gone@acme.example", "en-US").await;
        let skipped = event_data(&db, "invitation.skipped").await;
        assert_eq!(skipped.len(), 1, "{skipped:?}");
        assert_eq!(skipped[0]["reason"], "address_suppressed");
        assert_eq!(count(&db, "SELECT count(*) FROM invitations").await, 0);
        d.stop().await;
    }
}

both_stores! {
    /// R52: a DNS server that does not answer makes verification `503
    /// unavailable` within the lookup's bound, and the lookup holds no
    /// transaction or lock meanwhile: a write on the same business goes
    /// through while it waits (on SQLite, with its one writer at a time,
    /// too).
    async fn a_silent_dns_is_bounded_and_blocks_no_write(db: Db) {
        let silent = DnsServer::silent();
        let d = TestDaemon::start_with(&db, SmtpSink::start(), move |c| {
            c.domains.resolver = Some(silent);
        })
        .await;
        let b = brand(&d).await;
        let (status, body) = claim(&d, &b, "olive", "acme.example", "auto_invite").await;
        assert_eq!(status, StatusCode::CREATED, "{body}");

        let started = std::time::Instant::now();
        let verifying = {
            let client = d.client().clone();
            let url = d.url(&format!("/v1/businesses/{b}/domains/acme.example/verify"));
            tokio::spawn(async move {
                let resp = client
                    .post(url)
                    .bearer_auth(support::daemon::API_KEY)
                    .json(&json!({"actor_user_id": "olive"}))
                    .send()
                    .await
                    .unwrap();
                let status = resp.status();
                (status, resp.json::<Value>().await.unwrap())
            })
        };
        // While the lookup waits, the business takes an invitation.
        support::wait::eventually(WAIT, "the lookup to start", || async {
            if !verifying.is_finished() && started.elapsed() > Duration::from_millis(300) {
                Ok(())
            } else if verifying.is_finished() {
                panic!("the lookup ended at once");
            } else {
                Err("not yet".to_string())
            }
        })
        .await;
        let write = std::time::Instant::now();
        support::scenario::invite(&d, &b, "during@other.example").await;
        assert!(!verifying.is_finished(), "the lookup should still be waiting");
        assert!(write.elapsed() < Duration::from_secs(2), "{:?}", write.elapsed());

        let (status, body) = verifying.await.unwrap();
        assert_eq!(
            (status, body["code"].as_str()),
            (StatusCode::SERVICE_UNAVAILABLE, Some("unavailable")),
            "{body}"
        );
        assert!(started.elapsed() < Duration::from_secs(10), "{:?}", started.elapsed());
        assert_eq!(
            count(&db, "SELECT count(*) FROM business_domains WHERE verified_at IS NOT NULL").await,
            0
        );
        d.stop().await;
    }
}

both_stores! {
    /// R53: a renewed domain invitation still came from its domain, and an
    /// accept in the app (R37) is as much the domain's way in as the token.
    async fn a_renewal_keeps_the_domain_and_an_in_app_accept_says_so(db: Db) {
        let dns = DnsServer::start();
        let d = start(&db, &dns).await;
        let b = brand(&d).await;
        verified(&d, &dns, &b, "acme.example", "auto_invite").await;
        d.user("ann", "ann@acme.example", "en-US").await;
        let (_, list) = d
            .get(&format!("/v1/businesses/{b}/invitations?actor_user_id=olive"))
            .await;
        let old = list["items"][0]["id"].as_str().unwrap().to_string();
        let (status, body) = d
            .post(&format!("/v1/invitations/{old}/cancel"), json!({"actor_user_id": "olive"}))
            .await;
        assert_eq!(status, StatusCode::OK, "{body}");
        let (status, new) = d
            .post(&format!("/v1/invitations/{old}/renew"), json!({"actor_user_id": "olive"}))
            .await;
        assert_eq!(status, StatusCode::CREATED, "{new}");
        assert_eq!(new["source_domain"], "acme.example", "{new}");
        let id = new["id"].as_str().unwrap().to_string();

        let (status, body) = d
            .post(
                &format!("/v1/invitations/{id}/accept"),
                json!({"actor_user_id": "ann", "email_verified": true}),
            )
            .await;
        assert_eq!(status, StatusCode::OK, "{body}");
        let items = timeline(&d, &id).await;
        let added = of_type(&items, "member.added");
        assert_eq!(added[0]["data"]["via"], "domain", "{items:?}");
        d.stop().await;
    }
}
