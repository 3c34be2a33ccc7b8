//! R46 (and the inviter's email of R44), end to end with the daemon
//! in-process and the real SMTP sink: an invitation whose email the server
//! refused (`550` at the end of DATA, so the email is given up at once) is
//! given a corrected address with `PATCH /v1/invitations/{id}`; the old
//! token stops working, the new address gets a new email with a working
//! token, the quota does not move and the timeline names both addresses.
//! The inviter hears of the failure in their own locale and zone. What may
//! not be corrected (an email that was sent, a bad address, an address
//! already in the business) is refused and changes nothing. Both stores.

mod support;

use std::time::Duration;

use reqwest::StatusCode;
use serde_json::{Value, json};
use support::daemon::{ADMIN_KEY, TestDaemon, token_from};
use support::db::{Db, ago};
use support::scenario::{invitation, invite, of_type, timeline};
use support::smtp_sink::{ReceivedMail, Reply, SmtpSink};

const WAIT: Duration = Duration::from_secs(30);
const TYPO: &str = "charles@exmaple.test";
const FIXED: &str = "charles@example.test";

/// olive, in French and in Paris, owns "Brand & Co"; returns its id.
async fn brand(d: &TestDaemon) -> String {
    let (status, body) = d
        .put(
            "/v1/users/olive",
            json!({"email": "olive@brand.example", "display_name": "Olive",
                   "locale": "fr-FR", "time_zone": "Europe/Paris"}),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    d.business("Brand & Co", "olive").await
}

async fn remaining(d: &TestDaemon, b: &str) -> u64 {
    let (status, body) = d
        .get(&format!(
            "/v1/businesses/{b}/invitation-quota?actor_user_id=olive"
        ))
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    body["remaining"].as_u64().unwrap()
}

async fn correct(d: &TestDaemon, id: &str, email: &str) -> (StatusCode, Value) {
    d.patch(
        &format!("/v1/invitations/{id}"),
        json!({"actor_user_id": "olive", "email": email}),
    )
    .await
}

async fn preview(d: &TestDaemon, token: &str) -> (StatusCode, Value) {
    d.post("/v1/invitations/preview", json!({"token": token}))
        .await
}

fn recipients(mail: &ReceivedMail) -> Vec<&str> {
    mail.to.iter().map(|t| t.trim_matches(['<', '>'])).collect()
}

both_stores! {
    /// R46 and R44: the server refuses the invitation email (550), so it is
    /// given up; the inviter is told in French, in Paris time; the address
    /// is corrected: the old token is `token_invalid`, the new address gets
    /// an email whose token opens and accepts the invitation, the quota is
    /// as it was, and `invitation.address_corrected` names both addresses.
    async fn a_failed_address_is_corrected_and_keeps_its_slot(db: Db) {
        // One invitation a day: the one this test uses is the only one.
        let d = TestDaemon::start_with(&db, SmtpSink::start_with(vec![Reply::Permanent]), |c| {
            c.invitations.rate_limit.count = 1;
        })
        .await;
        let b = brand(&d).await;
        let id = invite(&d, &b, TYPO).await;
        let inv = d
            .eventually(WAIT, &format!("/v1/invitations/{id}?actor_user_id=olive"), |v| {
                v["delivery"]["status"] == "failed"
            })
            .await;
        assert_eq!(inv["email"], TYPO);
        let refused = d.sink.rejected();
        assert_eq!(refused.len(), 1, "the invitation email was refused");
        let old_token = token_from(&refused[0].text_body());
        let quota = remaining(&d, &b).await;
        assert_eq!(quota, 0, "the invitation took the day's only slot");

        // R44: the inviter is told, in fr-FR and in Paris time.
        let told = d.sink.wait_for(1, WAIT).await.remove(0);
        assert_eq!(recipients(&told), ["olive@brand.example"]);
        assert_eq!(
            told.header("Subject").unwrap(),
            format!("Nous n’avons pas pu remettre votre invitation à {TYPO}")
        );
        let text = told.text_body();
        assert!(text.contains("Bonjour Olive,"), "{text}");
        assert!(text.contains(&format!("remettre à {TYPO}")), "{text}");
        assert!(text.contains("corrigez-la"), "{text}");
        assert!(text.contains("\n> SMTP 550 5.7.1"), "the server's answer, quoted:\n{text}");
        assert!(text.contains("UTC+1"), "the expiry in Paris time:\n{text}");
        assert!(told.html_body().contains(TYPO));
        let outbox = "SELECT count(*) FROM email_outbox WHERE template = 'delivery_failed'";
        assert_eq!(db.count(outbox).await, 1);

        // Refused, and nothing changes: a malformed address, the same
        // address, the address of a member.
        let (status, body) = correct(&d, &id, "not an address").await;
        assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{body}");
        assert_eq!(body["code"], "validation_failed");
        assert_eq!(body["errors"][0]["field"], "email", "{body}");
        let (status, body) = correct(&d, &id, TYPO).await;
        assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{body}");
        let (status, body) = correct(&d, &id, "olive@brand.example").await;
        assert_eq!(status, StatusCode::CONFLICT, "{body}");
        assert_eq!(body["code"], "conflict");
        // R45: a suppressed address is refused like at creation.
        let (status, body) = d
            .send_as(
                ADMIN_KEY,
                d.client()
                    .post(d.url("/v1/suppressions"))
                    .json(&json!({"email": "Listed@Example.test"})),
            )
            .await;
        assert_eq!(status, StatusCode::CREATED, "{body}");
        let (status, body) = correct(&d, &id, "listed@example.test").await;
        assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{body}");
        assert_eq!(body["code"], "address_suppressed", "{body}");
        assert_eq!(body["errors"][0]["field"], "email", "{body}");
        // Someone without `members.invite` may not.
        d.user("eve", "eve@x.example", "en-US").await;
        let (status, body) = d
            .patch(
                &format!("/v1/invitations/{id}"),
                json!({"actor_user_id": "eve", "email": FIXED}),
            )
            .await;
        assert_eq!(status, StatusCode::FORBIDDEN, "{body}");
        assert_eq!(invitation(&d, &id).await["email"], TYPO);
        assert_eq!(preview(&d, &old_token).await.0, StatusCode::OK);

        // R46: corrected.
        let (status, body) = correct(&d, &id, FIXED).await;
        assert_eq!(status, StatusCode::OK, "{body}");
        assert_eq!(body["id"], id.as_str());
        assert_eq!(body["email"], FIXED);
        assert_eq!(body["status"], "pending");
        assert_eq!(body["created_at"], inv["created_at"], "the same slot");
        assert_eq!(body["expires_at"], inv["expires_at"]);

        // The old token stops at once.
        let (status, body) = preview(&d, &old_token).await;
        assert_eq!(status, StatusCode::NOT_FOUND, "{body}");
        assert_eq!(body["code"], "token_invalid");
        let (status, body) = d
            .post("/v1/invitations/accept", json!({"token": old_token, "user_id": "olive"}))
            .await;
        assert_eq!(status, StatusCode::NOT_FOUND, "{body}");
        assert_eq!(body["code"], "token_invalid");

        // The quota did not move (and was not checked: it was used up).
        assert_eq!(remaining(&d, &b).await, quota);

        // The new address gets a new email with a token that works.
        let mails = d.sink.wait_for(2, WAIT).await;
        let sent = &mails[1];
        assert_eq!(recipients(sent), [FIXED]);
        let new_token = token_from(&sent.text_body());
        assert_ne!(new_token, old_token);
        let (status, body) = preview(&d, &new_token).await;
        assert_eq!(status, StatusCode::OK, "{body}");
        d.user("charles", FIXED, "en-US").await;
        let (status, body) = d
            .post("/v1/invitations/accept", json!({"token": new_token, "user_id": "charles"}))
            .await;
        assert_eq!(status, StatusCode::OK, "{body}");
        assert_eq!(body["invitation"]["status"], "accepted", "{body}");

        // The timeline keeps both addresses.
        let items = timeline(&d, &id).await;
        let corrected = of_type(&items, "invitation.address_corrected");
        assert_eq!(corrected.len(), 1, "{items:?}");
        assert_eq!(corrected[0]["actor_user_id"], "olive");
        assert_eq!(corrected[0]["data"]["previous_email"], TYPO);
        assert_eq!(corrected[0]["data"]["email"], FIXED);
        // Still the one inviter email: the new one got through.
        assert_eq!(db.count(outbox).await, 1);
        // Accepted now: no more corrections.
        let (status, body) = correct(&d, &id, "third@example.test").await;
        assert_eq!(status, StatusCode::CONFLICT, "{body}");
        assert_eq!(body["code"], "invalid_transition");
        d.stop().await;
    }
}

both_stores! {
    /// R46: an invitation whose email was sent (a 250) may yet arrive: its
    /// address is not corrected (`409 invalid_transition`), and nothing
    /// changes: same address, same token, no new email, no event.
    async fn a_sent_invitation_is_not_corrected(db: Db) {
        let d = TestDaemon::start(&db).await;
        let b = brand(&d).await;
        let id = invite(&d, &b, TYPO).await;
        let mail = d.sink.wait_for(1, WAIT).await.remove(0);
        let token = token_from(&mail.text_body());
        let before = d
            .eventually(WAIT, &format!("/v1/invitations/{id}?actor_user_id=olive"), |v| {
                v["delivery"]["status"] == "sent"
            })
            .await;

        let (status, body) = correct(&d, &id, FIXED).await;
        assert_eq!(status, StatusCode::CONFLICT, "{body}");
        assert_eq!(body["code"], "invalid_transition");
        assert_eq!(invitation(&d, &id).await, before);
        assert_eq!(preview(&d, &token).await.0, StatusCode::OK);
        assert_eq!(db.count("SELECT count(*) FROM email_outbox").await, 1);
        let items = timeline(&d, &id).await;
        assert!(of_type(&items, "invitation.address_corrected").is_empty(), "{items:?}");
        // No inviter email either: nothing failed.
        assert_eq!(
            db.count("SELECT count(*) FROM email_outbox WHERE template = 'delivery_failed'").await,
            0
        );

        // A malformed address is 422 whatever the invitation.
        let (status, body) = correct(&d, &id, "a@").await;
        assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{body}");
        assert_eq!(body["errors"][0]["field"], "email", "{body}");
        // No such invitation.
        let (status, _) = correct(&d, "0190aaaa-0000-7000-8000-000000000000", FIXED).await;
        assert_eq!(status, StatusCode::NOT_FOUND);
        d.stop().await;
    }
}

/// Waits for the sending status of the invitation's reminder.
async fn reminder_status(db: &Db, want: &str) {
    let sql = "SELECT CAST(status AS TEXT) FROM email_outbox WHERE template = 'reminder'";
    db.eventually_first(sql, want, WAIT).await;
}

both_stores! {
    /// R46 with R32: a reminder queued to the old address before the
    /// correction (held by a server refusing sessions) is withdrawn at its
    /// turn, not sent with the old token; the new address gets its email.
    async fn a_reminder_to_the_old_address_is_withdrawn(db: Db) {
        let d = TestDaemon::start_with(&db, SmtpSink::start_with(vec![Reply::Permanent]), |c| {
            c.invitations.reminders = vec![Duration::from_secs(3600)];
            c.smtp.probe_interval = Duration::from_secs(1);
        })
        .await;
        let b = brand(&d).await;
        let id = invite(&d, &b, TYPO).await;
        d.eventually(WAIT, &format!("/v1/invitations/{id}?actor_user_id=olive"), |v| {
            v["delivery"]["status"] == "failed"
        })
        .await;
        d.sink.wait_for(1, WAIT).await;
        d.sink.refuse(535, "5.7.8 Authentication credentials invalid");
        db.exec("UPDATE invitations SET created_at = $1", &[ago(61 * 60)]).await;
        let queued = d.app.as_ref().unwrap().services.run_chores().await.unwrap();
        assert_eq!(queued.reminders_queued, 1);
        reminder_status(&db, "retrying").await;

        let (status, body) = correct(&d, &id, FIXED).await;
        assert_eq!(status, StatusCode::OK, "{body}");
        d.sink.fix();
        reminder_status(&db, "cancelled").await;
        let mails = d.sink.wait_for(2, WAIT).await;
        assert_eq!(recipients(&mails[1]), [FIXED]);
        let items = timeline(&d, &id).await;
        let withdrawn = of_type(&items, "notification.cancelled");
        assert_eq!(withdrawn.len(), 1, "{items:?}");
        assert_eq!(withdrawn[0]["data"]["template"], "reminder");
        assert!(
            withdrawn[0]["data"]["reason"].as_str().unwrap().contains("corrected"),
            "{}",
            withdrawn[0]
        );
        assert!(
            d.sink.messages().iter().all(|m| recipients(m) != [TYPO]),
            "nothing went to the old address"
        );
        d.stop().await;
    }
}
