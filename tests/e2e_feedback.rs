//! Deliverability after the 250 (issue 14, R42–R44), end to end with the
//! daemon in-process: DKIM signatures checked by an independent verifier
//! (Python's dkimpy, the public key served through its DNS hook) for an RSA
//! and an Ed25519 key made by openssl; the VERP envelope sender as the real
//! SMTP sink recorded it; and bounces and complaints sent by a real SMTP
//! client (lettre) over loopback to the daemon's inbound listener, with
//! what they change (R44) and what bad input gets. The feedback tests run
//! on both stores.

mod support;

use std::path::Path;
use std::process::Command;
use std::time::Duration;

use base64::Engine as _;
use reqwest::StatusCode;
use serde_json::json;
use support::daemon::TestDaemon;
use support::db::{Db, TempDir, ago};
use support::reports::{arf, deliver_report, dsn};
use support::scenario::{brand, invitation, invite, of_type, timeline};
use support::smtp_sink::{ReceivedMail, SmtpSink};

const WAIT: Duration = Duration::from_secs(30);
const RETURN_PATH: &str = "bounces+{id}@bounce.example.test";

// ---------------------------------------------------------------------------
// R42: DKIM

/// A key made by openssl (`rsa` or `ed25519`) in `dir`: the PEM file and the
/// DNS TXT record that publishes its public half.
fn openssl_key(dir: &Path, kind: &str) -> (std::path::PathBuf, String) {
    let pem = dir.join(format!("{kind}.pem"));
    let mut genpkey = Command::new("openssl");
    genpkey.arg("genpkey").arg("-out").arg(&pem);
    match kind {
        "rsa" => genpkey.args(["-algorithm", "RSA", "-pkeyopt", "rsa_keygen_bits:2048"]),
        _ => genpkey.args(["-algorithm", "ed25519"]),
    };
    let made = genpkey.output().expect("openssl runs");
    assert!(
        made.status.success(),
        "{}",
        String::from_utf8_lossy(&made.stderr)
    );
    let der = Command::new("openssl")
        .args(["pkey", "-pubout", "-outform", "DER", "-in"])
        .arg(&pem)
        .output()
        .expect("openssl runs")
        .stdout;
    // RSA: the SubjectPublicKeyInfo; Ed25519: the raw 32 bytes at its end
    // (RFC 8463).
    let p = match kind {
        "rsa" => base64::engine::general_purpose::STANDARD.encode(&der),
        _ => base64::engine::general_purpose::STANDARD.encode(&der[der.len() - 32..]),
    };
    (pem, format!("v=DKIM1; k={kind}; p={p}"))
}

/// dkimpy's verdict on `raw`, with `txt` as the only DNS answer.
fn dkimpy_verifies(dir: &Path, raw: &[u8], txt: &str) -> bool {
    let message = dir.join(format!("message-{}.eml", uuid::Uuid::now_v7()));
    std::fs::write(&message, raw).unwrap();
    let script = "import sys, dkim\n\
                  msg = open(sys.argv[1], 'rb').read()\n\
                  txt = sys.argv[2].encode()\n\
                  ok = dkim.verify(msg, dnsfunc=lambda name, timeout=5: txt)\n\
                  sys.exit(0 if ok else 3)\n";
    let out = Command::new("python3")
        .args(["-c", script])
        .arg(&message)
        .arg(txt)
        .output()
        .expect("python3 runs (scripts/services installs dkimpy)");
    match out.status.code() {
        Some(0) => true,
        Some(3) => false,
        _ => panic!(
            "the verifier did not run: {}",
            String::from_utf8_lossy(&out.stderr)
        ),
    }
}

/// R42: a message signed with `kind`'s key verifies with dkimpy, covering
/// the headers R42 names; the same message with its subject changed does not.
async fn dkim_round_trip(kind: &str) {
    let db = Db::sqlite().await;
    let dir = TempDir::new("invited-dkim");
    let (pem, txt) = openssl_key(dir.0.as_path(), kind);
    let d = TestDaemon::start_with(&db, SmtpSink::start(), |c| {
        c.mail.dkim = Some(invited::mail::DkimSettings {
            domain: "info.example.test".into(),
            selector: "sel1".into(),
            key: invited::mail::DkimKey::read(&pem).expect("the key reads"),
            private_key_file: pem.clone(),
        });
    })
    .await;
    let b = brand(&d).await;
    invite(&d, &b, "dkim@x.example").await;
    let mail = d.sink.wait_for(1, WAIT).await.remove(0);

    let signature = mail.header("DKIM-Signature").expect("a DKIM-Signature");
    assert!(
        signature.contains(&format!("a={kind}-sha256")),
        "{signature}"
    );
    assert!(signature.contains("c=relaxed/relaxed"), "{signature}");
    assert!(signature.contains("d=info.example.test"), "{signature}");
    assert!(signature.contains("s=sel1"), "{signature}");
    let signed = signature
        .split(';')
        .find_map(|tag| tag.trim().strip_prefix("h="))
        .expect("h=")
        .replace([' ', '\t', '\r', '\n'], "");
    for name in [
        "from",
        "to",
        "subject",
        "date",
        "message-id",
        "mime-version",
        "content-type",
    ] {
        assert!(
            signed.split(':').any(|h| h == name),
            "{name} not in h={signed}"
        );
    }
    assert!(
        dkimpy_verifies(dir.0.as_path(), mail.raw.as_bytes(), &txt),
        "dkimpy refused the signature:\n{}",
        mail.raw
    );
    let tampered = tamper(&mail);
    assert!(
        !dkimpy_verifies(dir.0.as_path(), tampered.as_bytes(), &txt),
        "a changed subject still verified"
    );
    // Another key's record does not verify it either.
    let (_, other) = openssl_key(dir.0.as_path(), kind);
    assert!(!dkimpy_verifies(
        dir.0.as_path(),
        mail.raw.as_bytes(),
        &other
    ));
    d.stop().await;
}

fn tamper(mail: &ReceivedMail) -> String {
    let subject = mail
        .raw
        .lines()
        .find(|l| l.starts_with("Subject:"))
        .expect("a Subject line")
        .to_owned();
    mail.raw
        .replacen(&subject, "Subject: You have won a prize", 1)
}

#[tokio::test]
async fn dkim_rsa_signatures_verify_independently_and_a_tampered_message_fails() {
    dkim_round_trip("rsa").await;
}

#[tokio::test]
async fn dkim_ed25519_signatures_verify_independently_and_a_tampered_message_fails() {
    dkim_round_trip("ed25519").await;
}

// ---------------------------------------------------------------------------
// VERP

/// The outbox id a VERP envelope sender names.
fn verp_id(from: &str) -> uuid::Uuid {
    let local = from
        .trim_matches(['<', '>'])
        .strip_suffix("@bounce.example.test")
        .unwrap_or_else(|| panic!("not the return path: {from}"));
    local
        .strip_prefix("bounces+")
        .and_then(|id| uuid::Uuid::parse_str(id).ok())
        .unwrap_or_else(|| panic!("no id in {from}"))
}

/// `mail.return_path`: each email's MAIL FROM names its outbox row; without
/// it the envelope sender is `mail.from`'s address, as before.
#[tokio::test]
async fn the_return_path_is_each_emails_envelope_sender() {
    let db = Db::sqlite().await;
    let d = TestDaemon::start_with(&db, SmtpSink::start(), |c| {
        c.mail.return_path = Some(RETURN_PATH.parse().unwrap());
    })
    .await;
    let b = brand(&d).await;
    invite(&d, &b, "one@x.example").await;
    invite(&d, &b, "two@x.example").await;
    let mails = d.sink.wait_for(2, WAIT).await;
    let mut ids: Vec<String> = mails.iter().map(|m| verp_id(&m.from).to_string()).collect();
    ids.sort();
    let mut outbox = db
        .strings("SELECT CAST(id AS TEXT) FROM email_outbox")
        .await;
    outbox.sort();
    assert_eq!(ids, outbox, "each MAIL FROM names its own email");
    for m in &mails {
        assert_eq!(
            m.header("From").as_deref(),
            Some("Invitations <pinbot@info.example.test>"),
            "the From header stays"
        );
    }
    d.stop().await;

    let db = Db::sqlite().await;
    let d = TestDaemon::start(&db).await;
    let b = brand(&d).await;
    invite(&d, &b, "three@x.example").await;
    let mail = d.sink.wait_for(1, WAIT).await.remove(0);
    assert_eq!(
        mail.from.trim_matches(['<', '>']),
        "pinbot@info.example.test"
    );
    d.stop().await;
}

// ---------------------------------------------------------------------------
// R43 b, R44: inbound feedback

/// A daemon with the return path, the listener on a free port and a
/// reminder after an hour.
async fn feedback_daemon(db: &Db) -> TestDaemon {
    TestDaemon::start_with(db, SmtpSink::start(), |c| {
        c.mail.return_path = Some(RETURN_PATH.parse().unwrap());
        c.feedback.smtp_listen = Some("127.0.0.1:0".parse().unwrap());
        c.invitations.reminders = vec![Duration::from_secs(3600)];
    })
    .await
}

async fn chores_reminded(d: &TestDaemon) -> u64 {
    d.app
        .as_ref()
        .unwrap()
        .services
        .run_chores()
        .await
        .unwrap()
        .reminders_queued
}

both_stores! {
    /// R43 b, R44: a hard bounce (5.1.1) sent to the email's return path
    /// marks the email `bounced`, puts the status and the diagnostic in the
    /// timeline, publishes `notification.bounced` and stops the reminders.
    async fn a_hard_bounce_marks_the_email_bounced_and_stops_the_reminders(db: Db) {
        let d = feedback_daemon(&db).await;
        let b = brand(&d).await;
        let id = invite(&d, &b, "gone@x.example").await;
        let mail = d.sink.wait_for(1, WAIT).await.remove(0);
        d.eventually(WAIT, &format!("/v1/invitations/{id}?actor_user_id=olive"), |v| {
            v["delivery"]["status"] == "sent"
        })
        .await;
        let message_id = mail.header("Message-ID").unwrap();
        let report = dsn(
            "gone@x.example",
            &message_id,
            "failed",
            "5.1.1",
            "550 5.1.1 <gone@x.example>: Recipient address rejected: User unknown",
        );
        let rcpt = mail.from.trim_matches(['<', '>']).to_string();
        assert_eq!(deliver_report(&d, &rcpt, &report).await, Ok(250));

        let inv = invitation(&d, &id).await;
        assert_eq!(inv["delivery"]["status"], "bounced", "{inv}");
        let items = timeline(&d, &id).await;
        let feedback = of_type(&items, "delivery_feedback");
        assert_eq!(feedback.len(), 1, "{items:?}");
        assert_eq!(feedback[0]["feedback"], "hard_bounce");
        assert_eq!(feedback[0]["status_code"], "5.1.1");
        assert_eq!(feedback[0]["source"], "smtp");
        assert!(
            feedback[0]["detail"].as_str().unwrap().contains("User unknown"),
            "{}",
            feedback[0]
        );
        let bounced = of_type(&items, "notification.bounced");
        assert_eq!(bounced.len(), 1, "{items:?}");
        assert_eq!(bounced[0]["data"]["status_code"], "5.1.1");
        assert_eq!(bounced[0]["data"]["message_id"], message_id.as_str());
        assert_eq!(bounced[0]["data"]["recipient"], "gone@x.example");
        assert!(bounced[0]["data"]["detail"].as_str().unwrap().contains("5.1.1"));
        assert_eq!(
            db.count("SELECT count(*) FROM email_feedback WHERE outcome = 'applied' AND matched_by = 'return_path'").await,
            1
        );

        let text = d.client().get(d.url("/metrics")).send().await.unwrap().text().await.unwrap();
        let counted = text
            .lines()
            .find(|l| l.starts_with("invited_email_feedback_total{kind=\"hard_bounce\",source=\"smtp\"}"))
            .and_then(|l| l.rsplit(' ').next())
            .and_then(|v| v.parse::<f64>().ok())
            .unwrap_or_else(|| panic!("no hard_bounce series in /metrics:\n{text}"));
        assert!(counted >= 1.0, "{counted}");

        // R44: the inviter is told, in their locale, and may correct the
        // address (R46).
        let told = d.sink.wait_for(2, WAIT).await.remove(1);
        assert!(told.to.iter().any(|t| t.contains("olive@brand.example")), "{:?}", told.to);
        assert_eq!(
            told.header("Subject").as_deref(),
            Some("We couldn't deliver your invitation to gone@x.example")
        );
        let text = told.text_body();
        assert!(text.contains("sent it back"), "{text}");
        assert!(text.contains("> smtp; 550 5.1.1"), "{text}");
        assert!(text.contains("correct it"), "{text}");

        // The same bounce again is kept but changes nothing more, and tells
        // the inviter nothing more.
        assert_eq!(deliver_report(&d, &rcpt, &report).await, Ok(250));
        assert_eq!(of_type(&timeline(&d, &id).await, "notification.bounced").len(), 1);
        assert_eq!(
            db.count("SELECT count(*) FROM email_outbox WHERE template = 'delivery_failed'").await,
            1
        );

        // R46: a bounced invitation may get a corrected address; the new one
        // gets its own email.
        let (status, body) = d
            .patch(
                &format!("/v1/invitations/{id}"),
                json!({"actor_user_id": "olive", "email": "back@x.example"}),
            )
            .await;
        assert_eq!(status, StatusCode::OK, "{body}");
        let sent = d.sink.wait_for(3, WAIT).await.remove(2);
        assert!(sent.to.iter().any(|t| t.contains("back@x.example")), "{:?}", sent.to);

        // An hour later: no reminder for a bounced invitation.
        db.exec("UPDATE invitations SET created_at = $1", &[ago(61 * 60)]).await;
        assert_eq!(chores_reminded(&d).await, 0);
        assert_eq!(db.count("SELECT count(*) FROM email_outbox WHERE template = 'reminder'").await, 0);
        d.stop().await;
    }
}

/// Waits for the sending status of the invitation's reminder.
async fn reminder_status(db: &Db, want: &str) {
    let sql = "SELECT CAST(status AS TEXT) FROM email_outbox WHERE template = 'reminder'";
    db.eventually_first(sql, want, WAIT).await;
}

both_stores! {
    /// R44: a reminder already queued (held by an SMTP server that refuses
    /// sessions) when the bounce comes is withdrawn at its turn, not sent.
    async fn a_reminder_queued_before_the_bounce_is_withdrawn(db: Db) {
        let d = TestDaemon::start_with(&db, SmtpSink::start(), |c| {
            c.mail.return_path = Some(RETURN_PATH.parse().unwrap());
            c.feedback.smtp_listen = Some("127.0.0.1:0".parse().unwrap());
            c.invitations.reminders = vec![Duration::from_secs(3600)];
            c.smtp.probe_interval = Duration::from_secs(2);
        })
        .await;
        let b = brand(&d).await;
        let id = invite(&d, &b, "later@x.example").await;
        let mail = d.sink.wait_for(1, WAIT).await.remove(0);
        d.eventually(WAIT, &format!("/v1/invitations/{id}?actor_user_id=olive"), |v| {
            v["delivery"]["status"] == "sent"
        })
        .await;
        d.sink.refuse(535, "5.7.8 Authentication credentials invalid");
        db.exec("UPDATE invitations SET created_at = $1", &[ago(61 * 60)]).await;
        assert_eq!(chores_reminded(&d).await, 1);
        reminder_status(&db, "retrying").await;

        let report = dsn("later@x.example", &mail.header("Message-ID").unwrap(), "failed", "5.1.1", "550 5.1.1 unknown");
        let rcpt = mail.from.trim_matches(['<', '>']).to_string();
        assert_eq!(deliver_report(&d, &rcpt, &report).await, Ok(250));
        d.sink.fix();
        reminder_status(&db, "cancelled").await;

        let items = timeline(&d, &id).await;
        let withdrawn = of_type(&items, "notification.cancelled");
        assert_eq!(withdrawn.len(), 1, "{items:?}");
        assert_eq!(withdrawn[0]["data"]["template"], "reminder");
        assert!(
            withdrawn[0]["data"]["reason"].as_str().unwrap().contains("bounced"),
            "{}",
            withdrawn[0]
        );
        // Only the invitation went to the invitee; the inviter was told of
        // the bounce (R44).
        let sent = d.sink.wait_for(2, WAIT).await;
        let to_invitee = sent.iter().filter(|m| m.to.iter().any(|t| t.contains("later@x.example")));
        assert_eq!(to_invitee.count(), 1, "only the invitation went to the invitee");
        assert_eq!(sent.len(), 2, "the invitation and the inviter's email");
        d.stop().await;
    }
}

both_stores! {
    /// R44: a soft bounce (4.x.x) is only recorded in the timeline: the
    /// email stays `sent`, no event, and the reminder still goes out.
    async fn a_soft_bounce_only_adds_to_the_timeline(db: Db) {
        let d = feedback_daemon(&db).await;
        let b = brand(&d).await;
        let id = invite(&d, &b, "full@x.example").await;
        let mail = d.sink.wait_for(1, WAIT).await.remove(0);
        d.eventually(WAIT, &format!("/v1/invitations/{id}?actor_user_id=olive"), |v| {
            v["delivery"]["status"] == "sent"
        })
        .await;
        let report = dsn(
            "full@x.example",
            &mail.header("Message-ID").unwrap(),
            "delayed",
            "4.2.2",
            "452 4.2.2 Mailbox full",
        );
        let rcpt = mail.from.trim_matches(['<', '>']).to_string();
        assert_eq!(deliver_report(&d, &rcpt, &report).await, Ok(250));

        assert_eq!(invitation(&d, &id).await["delivery"]["status"], "sent");
        let items = timeline(&d, &id).await;
        let feedback = of_type(&items, "delivery_feedback");
        assert_eq!(feedback.len(), 1, "{items:?}");
        assert_eq!(feedback[0]["feedback"], "soft_bounce");
        assert_eq!(feedback[0]["status_code"], "4.2.2");
        assert!(of_type(&items, "notification.bounced").is_empty());
        db.exec("UPDATE invitations SET created_at = $1", &[ago(61 * 60)]).await;
        assert_eq!(chores_reminded(&d).await, 1, "the reminder is still due");
        d.stop().await;
    }
}

both_stores! {
    /// R43 b, R44: an ARF complaint sent to an address of the bounce domain
    /// that names no email is tied by the Message-ID of the returned
    /// message: the email is `complained`, with `notification.complained`.
    async fn an_arf_complaint_marks_the_email_complained(db: Db) {
        let d = feedback_daemon(&db).await;
        let b = brand(&d).await;
        let id = invite(&d, &b, "angry@x.example").await;
        let mail = d.sink.wait_for(1, WAIT).await.remove(0);
        d.eventually(WAIT, &format!("/v1/invitations/{id}?actor_user_id=olive"), |v| {
            v["delivery"]["status"] == "sent"
        })
        .await;
        let message_id = mail.header("Message-ID").unwrap();
        let report = arf("angry@x.example", &message_id);
        assert_eq!(deliver_report(&d, "fbl@bounce.example.test", &report).await, Ok(250));

        assert_eq!(invitation(&d, &id).await["delivery"]["status"], "complained");
        let items = timeline(&d, &id).await;
        let complained = of_type(&items, "notification.complained");
        assert_eq!(complained.len(), 1, "{items:?}");
        assert_eq!(complained[0]["data"]["status_code"], "abuse");
        assert_eq!(complained[0]["data"]["message_id"], message_id.as_str());
        let feedback = of_type(&items, "delivery_feedback");
        assert_eq!(feedback[0]["feedback"], "complaint");
        assert_eq!(
            db.count("SELECT count(*) FROM email_feedback WHERE matched_by = 'message_id'").await,
            1
        );
        db.exec("UPDATE invitations SET created_at = $1", &[ago(61 * 60)]).await;
        assert_eq!(chores_reminded(&d).await, 0);
        // R44: the inviter is told the recipient reported it.
        let told = d.sink.wait_for(2, WAIT).await.remove(1);
        assert!(told.to.iter().any(|t| t.contains("olive@brand.example")), "{:?}", told.to);
        assert!(told.text_body().contains("reported the email as unwanted"), "{}", told.text_body());
        // R46: a complained-about invitation may get another address.
        let (status, body) = d
            .patch(
                &format!("/v1/invitations/{id}"),
                json!({"actor_user_id": "olive", "email": "calm@x.example"}),
            )
            .await;
        assert_eq!(status, StatusCode::OK, "{body}");
        assert_eq!(body["email"], "calm@x.example");
        d.stop().await;
    }
}

both_stores! {
    /// R43 b, bad input: a recipient outside the bounce domain is refused
    /// (550), an oversized message too (552), a message that is no report
    /// gets 554 and is recorded, a report about an unknown email is
    /// accepted, recorded and dropped; none of them changes the invitation.
    async fn bad_input_gets_its_answer_and_changes_nothing(db: Db) {
        let d = feedback_daemon(&db).await;
        let b = brand(&d).await;
        let id = invite(&d, &b, "fine@x.example").await;
        let mail = d.sink.wait_for(1, WAIT).await.remove(0);
        d.eventually(WAIT, &format!("/v1/invitations/{id}?actor_user_id=olive"), |v| {
            v["delivery"]["status"] == "sent"
        })
        .await;
        let message_id = mail.header("Message-ID").unwrap();
        let rcpt = mail.from.trim_matches(['<', '>']).to_string();
        let bounce = dsn("fine@x.example", &message_id, "failed", "5.1.1", "550 5.1.1 unknown");

        // Not our domain.
        let (code, text) = deliver_report(&d, "bounces@other.example", &bounce).await.unwrap_err();
        assert_eq!(code, 550, "{text}");
        // Too big, whatever it says.
        let filler: String = (0..15_000).map(|_| format!("{}\r\n", "x".repeat(76))).collect();
        let big = bounce.replace("--dsn-boundary--", &format!("{filler}--dsn-boundary--"));
        assert!(big.len() > 1024 * 1024);
        let (code, text) = deliver_report(&d, &rcpt, &big).await.unwrap_err();
        assert_eq!(code, 552, "{text}");
        // Not a report.
        let (code, text) = deliver_report(
            &d,
            &rcpt,
            "From: someone@x.example\r\nSubject: hello\r\n\r\nJust saying hi.\r\n",
        )
        .await
        .unwrap_err();
        assert_eq!(code, 554, "{text}");
        // A DSN whose Status is no status.
        let (code, text) = deliver_report(
            &d,
            &rcpt,
            &bounce.replace("Status: 5.1.1", "Status: gone"),
        )
        .await
        .unwrap_err();
        assert_eq!(code, 554, "{text}");
        // A DSN about an email that is not ours: another id, another Message-ID.
        let stranger = format!("bounces+{}@bounce.example.test", uuid::Uuid::now_v7());
        let unknown = dsn("who@x.example", "<nobody@elsewhere.example>", "failed", "5.1.1", "550 unknown");
        assert_eq!(deliver_report(&d, &stranger, &unknown).await, Ok(250));

        assert_eq!(invitation(&d, &id).await["delivery"]["status"], "sent");
        let items = timeline(&d, &id).await;
        assert!(of_type(&items, "delivery_feedback").is_empty(), "{items:?}");
        assert!(of_type(&items, "notification.bounced").is_empty());
        assert_eq!(
            db.count("SELECT count(*) FROM email_feedback WHERE outcome = 'malformed'").await,
            3,
            "the oversized message and the two unreadable ones"
        );
        assert_eq!(
            db.count("SELECT count(*) FROM email_feedback WHERE outcome = 'unmatched' AND outbox_id IS NULL").await,
            1
        );
        assert_eq!(db.count("SELECT count(*) FROM email_feedback WHERE outcome = 'applied'").await, 0);
        d.stop().await;
    }
}

/// R43 b: at most 32 sessions at once; one more is told to come back later
/// (`421`) instead of waiting, and a session that ends frees its place.
#[tokio::test]
async fn the_listener_serves_a_bounded_number_of_sessions() {
    use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};

    let db = Db::sqlite().await;
    let d = feedback_daemon(&db).await;
    let addr = d.app.as_ref().unwrap().feedback_addr.unwrap();
    async fn greeting(addr: std::net::SocketAddr) -> (BufReader<tokio::net::TcpStream>, String) {
        let mut stream = BufReader::new(tokio::net::TcpStream::connect(addr).await.unwrap());
        let mut line = String::new();
        stream.read_line(&mut line).await.unwrap();
        (stream, line)
    }
    let mut open = Vec::new();
    for _ in 0..32 {
        let (stream, line) = greeting(addr).await;
        assert!(line.starts_with("220 bounce.example.test"), "{line}");
        open.push(stream);
    }
    let (_, line) = greeting(addr).await;
    assert!(line.starts_with("421 4.3.2"), "{line}");

    let mut first = open.remove(0);
    first.get_mut().write_all(b"QUIT\r\n").await.unwrap();
    let mut bye = String::new();
    first.read_line(&mut bye).await.unwrap();
    assert!(bye.starts_with("221"), "{bye}");
    drop(first);
    // The freed place is taken by the next session (the server may not
    // have seen the first one go yet: try until it has).
    support::wait::eventually(WAIT, "a 220 greeting in the freed place", || async {
        let (_, line) = greeting(addr).await;
        if line.starts_with("220") {
            Ok(())
        } else {
            Err(line)
        }
    })
    .await;
    d.stop().await;
}
