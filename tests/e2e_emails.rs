//! The emails themselves, end to end (R40, R41, issue 13's review, issue
//! 12's run-time fallback): what the invitee and the partner managers
//! receive from the real SMTP sink on 127.0.0.1, read as raw messages; the
//! user's time zone through `PUT /v1/users`. Every test runs on both stores.

mod support;

use std::time::Duration;

use chrono::{Datelike, TimeZone as _, Utc};
use reqwest::StatusCode;
use serde_json::{Value, json};
use support::daemon::{TestDaemon, token_from};
use support::db::{Arg, TempDir, ago};
use support::scenario::{public_id, timeline};
use support::smtp_sink::{ReceivedMail, SmtpSink};

const WAIT: Duration = Duration::from_secs(30);
const DECLINE_URL: &str = "https://app.example.test/invitations/decline?token={token}";
const PARTNER_URL: &str = "https://app.example.test/partners/invitations/{invitation_id}";

/// The links of the app, as an operator configures them.
fn links(c: &mut invited::config::Config) {
    c.links.decline_url = DECLINE_URL.into();
    c.links.partner_url = PARTNER_URL.into();
    c.mail.product_name = "Pinboard".into();
    c.mail.support_address = Some("help@pinboard.example".into());
}

/// A business owned by olive ("Olive Oyl", en-US); returns its id.
async fn brand(d: &TestDaemon, name: &str) -> String {
    let (status, body) = d
        .put(
            "/v1/users/olive",
            json!({"email": "olive@brand.example", "display_name": "Olive Oyl", "locale": "en-US"}),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    d.business(name, "olive").await
}

/// Invites `email` (in `locale`, with `message`); returns the invitation's id.
async fn invite(d: &TestDaemon, b: &str, email: &str, locale: &str, message: &str) -> String {
    let (status, body) = d
        .post(
            &format!("/v1/businesses/{b}/invitations"),
            json!({"actor_user_id": "olive", "message": message,
                   "invitees": [{"email": email, "locale": locale}]}),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    body["items"][0]["id"].as_str().unwrap().to_string()
}

/// A partner invitation or request from olive's business to amelie's;
/// returns its id.
async fn partner(d: &TestDaemon, from: &str, to: &str, direction: &str) -> String {
    let public = public_id(d, to, "amelie").await;
    let (status, inv) = d
        .post(
            &format!("/v1/businesses/{from}/partners"),
            json!({"actor_user_id": "olive", "partner_business_id": public,
                   "direction": direction, "message": "Sign here: https://evil.example/accept"}),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{inv}");
    inv["id"].as_str().unwrap().to_string()
}

/// The one message to `addr` among `mails` whose subject starts so.
fn mail_to<'a>(mails: &'a [ReceivedMail], addr: &str, subject: &str) -> &'a ReceivedMail {
    let found: Vec<&ReceivedMail> = mails
        .iter()
        .filter(|m| m.to.iter().any(|t| t == addr))
        .filter(|m| m.header("Subject").unwrap_or_default().starts_with(subject))
        .collect();
    assert_eq!(found.len(), 1, "one mail to {addr} starting {subject:?}");
    found[0]
}

both_stores! {
    /// R40: the member invitation carries the decline link (its own token)
    /// besides the accept link, and the partner invitation and request a
    /// link to the partner page with their id, in the HTML and the text
    /// part; the personal message is quoted in the text part, so its fake
    /// link cannot pass for the real one.
    async fn every_email_leads_somewhere(db: Db) {
        let d = TestDaemon::start_with(&db, SmtpSink::start(), links).await;
        let b = brand(&d, "Brand & Co").await;
        invite(
            &d,
            &b,
            "charles@x.example",
            "en-US",
            "Welcome!\nAccept here: https://evil.example/accept",
        )
        .await;
        let mail = d.sink.wait_for(1, WAIT).await.remove(0);
        // The text part travels with CRLF line ends.
        let text = mail.text_body().replace("\r\n", "\n");
        let html = mail.html_body();
        let token = token_from(&text);
        let accept = format!("https://app.example.test/invitations/accept?token={token}");
        let decline = DECLINE_URL.replace("{token}", &token);
        for link in [&accept, &decline] {
            assert!(text.contains(&format!("\n{link}\n")), "{text}");
            assert!(html.contains(&format!("href=\"{link}\"")), "{html}");
        }
        assert!(
            text.contains("Olive Oyl wrote:\n\n> Welcome!\n> Accept here: https://evil.example/accept\n"),
            "{text}"
        );
        assert!(!text.contains("\nAccept here: https://evil.example"), "{text}");
        assert!(html.contains("<blockquote"), "{html}");
        assert!(text.contains("Pinboard") && html.contains("Pinboard"));
        assert!(html.contains("mailto:help@pinboard.example"), "{html}");

        // Partner emails: to amelie, the owner of the other business.
        d.user("amelie", "amelie@agency.example", "fr-FR").await;
        let agency = d.business("Agence Lumière", "amelie").await;
        let invitation = partner(&d, &b, &agency, "invite").await;
        let mails = d.sink.wait_for(2, WAIT).await;
        let request_from = d.business("Second Brand", "olive").await;
        let request = partner(&d, &request_from, &agency, "request").await;
        let mails = [mails, d.sink.wait_for(3, WAIT).await.split_off(2)].concat();
        let received: Vec<&ReceivedMail> = mails
            .iter()
            .filter(|m| m.to == ["amelie@agency.example"])
            .collect();
        assert_eq!(received.len(), 2);
        for (mail, id) in received.into_iter().zip([&invitation, &request]) {
            let url = PARTNER_URL.replace("{invitation_id}", id);
            let (text, html) = (mail.text_body().replace("\r\n", "\n"), mail.html_body());
            assert!(text.contains(&format!("\n{url}\n")), "{text}");
            assert!(html.contains(&format!("<a href=\"{url}\"")), "{html}");
            assert!(text.contains("\n> Sign here: https://evil.example/accept\n"), "{text}");
            assert!(text.contains("Connectez-vous à Pinboard"), "{text}");
        }
        d.stop().await;
    }
}

/// December 9, 03:39 UTC of the first year it is more than a day away:
/// still December 8 in Los Angeles (issue 13's example).
fn december_9_0339() -> chrono::DateTime<Utc> {
    let now = Utc::now();
    let mut year = now.year();
    loop {
        let at = Utc.with_ymd_and_hms(year, 12, 9, 3, 39, 0).unwrap();
        if at > now + chrono::Duration::days(1) {
            return at;
        }
        year += 1;
    }
}

both_stores! {
    /// R41: one invitation's expiry, for an invitee registered with the
    /// time zone America/Los_Angeles, is the evening before in Los
    /// Angeles, with PST; for an invitee with no known zone it is in UTC
    /// and says UTC. The reminders carry the expiry the database holds.
    async fn the_expiry_is_written_in_the_invitees_zone(db: Db) {
        let d = TestDaemon::start_with(&db, SmtpSink::start(), |c| {
            links(c);
            c.invitations.reminders = vec![Duration::from_secs(3600)];
        })
        .await;
        let b = brand(&d, "Brand & Co").await;
        let (status, body) = d
            .put(
                "/v1/users/lea",
                json!({"email": "Lea@LA.example", "locale": "en-US",
                       "time_zone": "America/Los_Angeles"}),
            )
            .await;
        assert_eq!(status, StatusCode::OK, "{body}");
        assert_eq!(body["time_zone"], "America/Los_Angeles");
        // The address in other case: still lea's.
        invite(&d, &b, "lea@la.example", "en-US", "").await;
        invite(&d, &b, "nobody@x.example", "en-US", "").await;
        d.sink.wait_for(2, WAIT).await;

        let expires = december_9_0339();
        db.exec("UPDATE invitations SET expires_at = $1", &[Arg::Ts(expires)])
            .await;
        db.exec("UPDATE invitations SET created_at = $1", &[ago(61 * 60)])
            .await;
        let queued = d.app.as_ref().unwrap().services.run_chores().await.unwrap();
        assert_eq!(queued.reminders_queued, 2);
        let mails = d.sink.wait_for(4, WAIT).await;
        let year = expires.year();
        for (addr, expected) in [
            (
                "lea@la.example",
                format!("This invitation expires on December 8, {year} at 7:39 PM PST."),
            ),
            (
                "nobody@x.example",
                format!("This invitation expires on December 9, {year} at 3:39 AM UTC."),
            ),
        ] {
            let reminder = mail_to(&mails, addr, "Reminder:");
            assert!(reminder.text_body().contains(&expected), "{addr}:\n{}", reminder.text_body());
            assert!(reminder.html_body().contains(&expected), "{addr}:\n{}", reminder.html_body());
        }
        // The first emails too name the zone (their expiry is a week away).
        let first = mail_to(&mails, "lea@la.example", "Olive Oyl invited you");
        let text = first.text_body();
        assert!(text.contains(" PST.") || text.contains(" PDT."), "{text}");
        let first = mail_to(&mails, "nobody@x.example", "Olive Oyl invited you");
        assert!(first.text_body().contains(" UTC."), "{}", first.text_body());
        d.stop().await;
    }
}

both_stores! {
    /// R41: every template's message carries `Auto-Submitted:
    /// auto-generated`; with `mail.reply_to_inviter` the emails sent on the
    /// inviter's behalf (invitation, reminder, partner invitation and
    /// request) reply to the inviter, and the "Invitation accepted" email,
    /// which goes to the inviter, has no Reply-To.
    async fn auto_submitted_everywhere_and_reply_to_the_inviter(db: Db) {
        let d = TestDaemon::start_with(&db, SmtpSink::start(), |c| {
            links(c);
            c.mail.reply_to_inviter = true;
            c.invitations.reminders = vec![Duration::from_secs(3600)];
        })
        .await;
        let b = brand(&d, "Brand & Co").await;
        d.user("amelie", "amelie@agency.example", "en-US").await;
        let agency = d.business("Agency", "amelie").await;
        let second = d.business("Second Brand", "olive").await;
        invite(&d, &b, "charles@x.example", "en-US", "").await;
        let first = d.sink.wait_for(1, WAIT).await.remove(0);
        partner(&d, &b, &agency, "invite").await;
        partner(&d, &second, &agency, "request").await;
        d.sink.wait_for(3, WAIT).await;
        db.exec(
            "UPDATE invitations SET created_at = $1 WHERE email = 'charles@x.example'",
            &[ago(61 * 60)],
        )
        .await;
        let queued = d.app.as_ref().unwrap().services.run_chores().await.unwrap();
        assert_eq!(queued.reminders_queued, 1);
        d.sink.wait_for(4, WAIT).await;
        d.user("charles", "charles@x.example", "en-US").await;
        let (status, body) = d
            .post(
                "/v1/invitations/accept",
                json!({"token": token_from(&first.text_body()), "user_id": "charles"}),
            )
            .await;
        assert_eq!(status, StatusCode::OK, "{body}");
        let mails = d.sink.wait_for(5, WAIT).await;

        let olive = "\"Olive Oyl\" <olive@brand.example>";
        for (to, subject, reply_to) in [
            ("charles@x.example", "Olive Oyl invited you", Some(olive)),
            ("charles@x.example", "Reminder:", Some(olive)),
            ("amelie@agency.example", "You have a new partner request!", Some(olive)),
            ("olive@brand.example", "Invitation accepted", None),
        ] {
            let found: Vec<&ReceivedMail> = mails
                .iter()
                .filter(|m| m.to == [to] && m.header("Subject").unwrap().starts_with(subject))
                .collect();
            assert!(!found.is_empty(), "{to} {subject}");
            for mail in found {
                assert_eq!(
                    mail.header("Auto-Submitted").as_deref(),
                    Some("auto-generated"),
                    "{}",
                    mail.header_block()
                );
                let raw_reply_to = mail
                    .header_block()
                    .split("\r\n")
                    .find(|l| l.to_ascii_lowercase().starts_with("reply-to:"))
                    .map(|l| l["Reply-To:".len()..].trim().to_string());
                assert_eq!(raw_reply_to.as_deref(), reply_to, "{}", mail.header_block());
            }
        }
        // Both partner emails (an invitation and a request) were checked.
        assert_eq!(
            mails.iter().filter(|m| m.to == ["amelie@agency.example"]).count(),
            2
        );
        d.stop().await;
    }
}

both_stores! {
    /// `mail.reply_to_inviter` is off by default: no Reply-To, and the
    /// replies go to `mail.from` as before.
    async fn no_reply_to_by_default(db: Db) {
        let d = TestDaemon::start(&db).await;
        let b = brand(&d, "Brand & Co").await;
        invite(&d, &b, "charles@x.example", "en-US", "").await;
        let mail = d.sink.wait_for(1, WAIT).await.remove(0);
        assert_eq!(mail.header("Reply-To"), None, "{}", mail.header_block());
        assert_eq!(mail.header("Auto-Submitted").as_deref(), Some("auto-generated"));
        d.stop().await;
    }
}

both_stores! {
    /// Issue 13: a business named like an RFC 2047 encoded word reaches the
    /// subject encoded, so a mail client shows the literal text instead of
    /// decoding the attacker's word (here a CR/LF and a Bcc).
    async fn an_encoded_word_look_alike_is_encoded_in_the_subject(db: Db) {
        let d = TestDaemon::start(&db).await;
        let evil = "=?UTF-8?B?RXZlDQpCY2M6IGV2aWxAeC50ZXN0?=";
        let b = brand(&d, evil).await;
        invite(&d, &b, "charles@x.example", "en-US", "").await;
        let mail = d.sink.wait_for(1, WAIT).await.remove(0);
        let headers = mail.header_block();
        assert!(!headers.contains(evil), "{headers}");
        let subject_line = headers
            .split("\r\n")
            .find(|l| l.starts_with("Subject: "))
            .unwrap();
        assert!(subject_line.starts_with("Subject: =?utf-8?b?"), "{headers}");
        // Decoded once, as a client does, it is the literal text.
        assert_eq!(
            mail.header("Subject").unwrap(),
            format!("Olive Oyl invited you to join {evil}")
        );
        d.stop().await;
    }
}

both_stores! {
    /// R41: an unknown time zone is refused naming the field, and nothing
    /// is written (neither a new user nor a change to an existing one); a
    /// known one is kept and returned, and `null` clears it.
    async fn an_unknown_time_zone_is_refused_and_changes_nothing(db: Db) {
        let d = TestDaemon::start(&db).await;
        for zone in ["Mars/Olympus_Mons", "PST", "", "america/los_angeles"] {
            let (status, body) = d
                .put(
                    "/v1/users/new",
                    json!({"email": "new@x.example", "time_zone": zone}),
                )
                .await;
            assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{zone}: {body}");
            assert_eq!(body["code"], "validation_failed", "{body}");
            assert_eq!(body["errors"][0]["field"], "time_zone", "{body}");
        }
        assert_eq!(db.count("SELECT count(*) FROM users").await, 0);

        let (status, body) = d
            .put(
                "/v1/users/lea",
                json!({"email": "lea@x.example", "time_zone": "Europe/Paris"}),
            )
            .await;
        assert_eq!(status, StatusCode::OK, "{body}");
        assert_eq!(body["time_zone"], "Europe/Paris");
        let (status, _) = d
            .put(
                "/v1/users/lea",
                json!({"email": "changed@x.example", "time_zone": "Nowhere/Town"}),
            )
            .await;
        assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
        let stored = db
            .strings("SELECT email || ' ' || time_zone FROM users WHERE user_id = 'lea'")
            .await;
        assert_eq!(stored, ["lea@x.example Europe/Paris"]);
        let (status, body) = d
            .put("/v1/users/lea", json!({"email": "lea@x.example", "time_zone": null}))
            .await;
        assert_eq!(status, StatusCode::OK, "{body}");
        assert_eq!(body["time_zone"], Value::Null);
        d.stop().await;
    }
}

/// A copy of the shipped templates whose fr-FR member invitation fails at
/// run time for the business "Boom Corp" only: it passes `templates check`
/// (whose samples name another business), so the daemon starts with it.
fn booby_trapped_templates() -> TempDir {
    let dir = TempDir::new("invited-e2e-templates");
    let shipped = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("templates");
    for locale in std::fs::read_dir(&shipped).unwrap() {
        let locale = locale.unwrap();
        let target = dir.0.join(locale.file_name());
        std::fs::create_dir_all(&target).unwrap();
        for file in std::fs::read_dir(locale.path()).unwrap() {
            let file = file.unwrap();
            std::fs::copy(file.path(), target.join(file.file_name())).unwrap();
        }
    }
    let file = dir.0.join("fr-FR").join("member_invitation.txt");
    let text = std::fs::read_to_string(&file).unwrap();
    std::fs::write(
        &file,
        format!(
            "{{% if business_name == \"Boom Corp\" %}}{{{{ no_such_key }}}}{{% endif %}}{text}"
        ),
    )
    .unwrap();
    dir
}

both_stores! {
    /// Issue 12: a template that fails at send time falls back along the
    /// locale chain (fr-FR, then the default en-US) instead of failing the
    /// email; the timeline says so (`notification.locale_fallback`).
    async fn a_template_failing_at_send_time_falls_back_and_the_timeline_says_so(db: Db) {
        let templates = booby_trapped_templates();
        let dir = templates.0.clone();
        let d = TestDaemon::start_with(&db, SmtpSink::start(), move |c| {
            c.templates.dir = dir;
        })
        .await;
        let b = brand(&d, "Boom Corp").await;
        let id = invite(&d, &b, "charles@x.example", "fr-FR", "").await;
        let mail = d.sink.wait_for(1, WAIT).await.remove(0);
        assert_eq!(
            mail.header("Subject").unwrap(),
            "Olive Oyl invited you to join Boom Corp"
        );
        assert!(mail.text_body().starts_with("Hi,"), "{}", mail.text_body());
        let items = d
            .eventually(
                WAIT,
                &format!("/v1/invitations/{id}/timeline?actor_user_id=olive"),
                |v| {
                    v["items"]
                        .as_array()
                        .is_some_and(|i| i.iter().any(|e| e["type"] == "invitation.sent"))
                },
            )
            .await;
        let items = items["items"].as_array().unwrap();
        let fallback: Vec<&Value> = items
            .iter()
            .filter(|e| e["type"] == "notification.locale_fallback")
            .collect();
        assert_eq!(fallback.len(), 1, "{items:#?}");
        let data = &fallback[0]["data"];
        assert_eq!(data["template"], "member_invitation", "{data}");
        assert_eq!(data["requested_locale"], "fr-FR", "{data}");
        assert_eq!(data["locale"], "en-US", "{data}");
        assert_eq!(data["failed"][0]["locale"], "fr-FR", "{data}");
        assert!(
            data["failed"][0]["error"]
                .as_str()
                .unwrap()
                .contains("fr-FR/member_invitation.txt"),
            "{data}"
        );
        assert_eq!(data["message_id"], mail.header("Message-ID").unwrap().as_str());
        // Another business's fr-FR invitation renders in French, no fallback.
        let other = d.business("Quiet Corp", "olive").await;
        let calm = invite(&d, &other, "denise@x.example", "fr-FR", "").await;
        let mail = d.sink.wait_for(2, WAIT).await.remove(1);
        assert!(mail.text_body().starts_with("Bonjour"), "{}", mail.text_body());
        let items = timeline(&d, &calm).await;
        assert!(!items.iter().any(|e| e["type"] == "notification.locale_fallback"));
        d.stop().await;
        drop(templates);
    }
}
