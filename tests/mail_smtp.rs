//! Mail end to end against a real SMTP server on 127.0.0.1: templates, message
//! building, the SMTP and file transports, error classification (R25-R30).

mod support;

use std::path::Path;
use std::time::Duration;

use invited::mail::{
    Mailer, MailerConfig, Rendered, Sender, TemplateName, Templates, build_message, new_message_id,
};
use serde_json::json;
use support::smtp_sink::{ReceivedMail, Reply, SmtpSink};

const FROM: &str = "Pinbot <pinbot@info.example.test>";
const TO: &str = "new.member@example.test";
const ACCEPT_URL: &str = "https://app.example.test/invitations/accept?token=abc123";
const WAIT: Duration = Duration::from_secs(10);

fn templates() -> Templates {
    Templates::load(
        &Path::new(env!("CARGO_MANIFEST_DIR")).join("templates"),
        "en-US",
    )
    .expect("load templates/")
}

fn invitation(inviter_name: &str, message: Option<&str>) -> Rendered {
    let ctx = json!({
        "inviter_name": inviter_name,
        "business_name": "Acme",
        "role": "manager",
        "message": message,
        "accept_url": ACCEPT_URL,
        "decline_url": "https://app.example.test/invitations/decline?token=abc123",
        "expires_at": "2026-11-29T10:00:00Z",
        "recipient_email": TO,
        "product_name": "Pinboard",
        "support_address": null,
    });
    templates()
        .render(TemplateName::MemberInvitation, "en-US", &ctx)
        .expect("render member_invitation")
}

fn mailer(smtp_url: Option<String>, outbox_dir: &Path) -> Mailer {
    // Two rustls providers are in the test build (DEPENDENCIES gotcha 12).
    let _ = rustls::crypto::ring::default_provider().install_default();
    Mailer::new(MailerConfig {
        smtp_url,
        pool_size: 2,
        timeout: Duration::from_secs(5),
        probe_interval: Duration::from_secs(5),
        outbox_dir: outbox_dir.to_owned(),
    })
    .expect("build mailer")
}

fn smtp_mailer(sink: &SmtpSink) -> Mailer {
    mailer(Some(sink.url()), Path::new("unused-outbox"))
}

fn sender() -> Sender {
    FROM.parse().expect("a sender")
}

fn message(id: &str, rendered: &Rendered) -> lettre::Message {
    build_message(&sender(), TO, Some("New Member"), id, rendered, None).expect("build message")
}

fn rcpt(mail: &ReceivedMail) -> Vec<String> {
    mail.to
        .iter()
        .map(|a| a.trim_matches(['<', '>']).to_owned())
        .collect()
}

#[tokio::test]
async fn member_invitation_reaches_the_smtp_server() {
    let sink = SmtpSink::start();
    let mailer = smtp_mailer(&sink);
    let id = new_message_id("info.example.test");
    let rendered = invitation("Ada Lovelace", Some("Welcome aboard!"));

    let reply = mailer.send(&message(&id, &rendered)).await.expect("send");
    assert_eq!(reply.code, 250, "{reply}");

    let mails = sink.wait_for(1, WAIT).await;
    let mail = &mails[0];
    assert_eq!(
        mail.header("Subject").as_deref(),
        Some("Ada Lovelace invited you to join Acme")
    );
    assert_eq!(mail.header("Message-ID").as_deref(), Some(id.as_str()));
    assert!(mail.header("Date").is_some());
    assert_eq!(rcpt(mail), vec![TO.to_owned()]);
    assert_eq!(mail.part_types(), vec!["text/plain", "text/html"]);

    let (text, html) = (mail.text_body(), mail.html_body());
    for part in [&text, &html] {
        assert!(part.contains(ACCEPT_URL), "accept URL missing:\n{part}");
        assert!(
            part.contains("November 29, 2026"),
            "expiry missing:\n{part}"
        );
        assert!(part.contains("Welcome aboard!"), "message missing:\n{part}");
        assert!(part.contains("Acme"), "business missing:\n{part}");
    }
    assert!(html.contains(&format!("href=\"{ACCEPT_URL}\"")), "{html}");
    assert!(html.starts_with("<!DOCTYPE html>"), "{html}");

    // A second message goes through the same (pooled) transport.
    let accepted = templates()
        .render(
            TemplateName::InvitationAccepted,
            "en-US",
            &TemplateName::InvitationAccepted.sample_context(),
        )
        .expect("render invitation_accepted");
    let id2 = new_message_id("info.example.test");
    mailer
        .send(&message(&id2, &accepted))
        .await
        .expect("second send");
    let mails = sink.wait_for(2, WAIT).await;
    assert_eq!(
        mails[1].header("Subject").as_deref(),
        Some("Invitation accepted")
    );
    assert_eq!(mails[1].header("Message-ID").as_deref(), Some(id2.as_str()));
}

#[tokio::test]
async fn a_451_is_transient_and_a_retry_keeps_the_message_id() {
    let sink = SmtpSink::start_with(vec![Reply::Transient]);
    let mailer = smtp_mailer(&sink);
    let id = new_message_id("info.example.test");
    let msg = message(&id, &invitation("Ada", None));

    let err = mailer.send(&msg).await.expect_err("scripted 451");
    assert_eq!(err.kind(), "transient", "{err}");
    assert_eq!(err.code(), Some(451), "{err}");
    assert!(err.to_string().contains("451"), "{err}");
    assert!(err.to_string().contains("4.3.0"), "{err}");
    assert!(sink.messages().is_empty());
    assert_eq!(sink.rejected().len(), 1);

    // The outbox retries the very same message (R27).
    let reply = mailer.send(&msg).await.expect("retry succeeds");
    assert_eq!(reply.code, 250);
    let mails = sink.wait_for(1, WAIT).await;
    assert_eq!(mails.len(), 1);
    assert_eq!(mails[0].header("Message-ID").as_deref(), Some(id.as_str()));
    assert_eq!(
        sink.rejected()[0].header("Message-ID").as_deref(),
        Some(id.as_str())
    );
}

/// Issue 12 (4): a server that closes the connection right after its 250.
/// The pooled connection is dead when the next message comes; that message
/// goes out on a new connection in the same attempt, not as a failure.
#[tokio::test]
async fn a_connection_closed_after_its_250_does_not_fail_the_next_message() {
    let sink = SmtpSink::start_closing_after_ok();
    let mailer = smtp_mailer(&sink);
    for n in 1..=3 {
        let msg = message(
            &new_message_id("info.example.test"),
            &invitation("Ada", None),
        );
        let reply = mailer.send(&msg).await.unwrap_or_else(|e| {
            panic!("message {n} failed on a connection the server closed: {e}")
        });
        assert_eq!(reply.code, 250);
    }
    assert_eq!(sink.wait_for(3, WAIT).await.len(), 3);
    assert!(sink.rejected().is_empty());
}

/// Issue 12 (7): a reply about the session (authentication, the sender) is
/// a configuration fault, retried once fixed; not the recipient's refusal.
#[tokio::test]
async fn authentication_replies_are_configuration_faults_not_permanent() {
    for (code, text) in [
        (535, "5.7.8 Authentication credentials invalid"),
        (530, "5.7.0 Authentication required"),
        (553, "5.1.8 Sender address rejected"),
    ] {
        let sink = SmtpSink::start_refusing(code, text);
        let mailer = smtp_mailer(&sink);
        let msg = message(
            &new_message_id("info.example.test"),
            &invitation("Ada", None),
        );
        let err = mailer.send(&msg).await.expect_err("refused session");
        assert!(err.is_config(), "{code}: {err}");
        assert!(err.is_transient(), "{code}: retried, not given up: {err}");
        assert_eq!(err.code(), Some(code), "{err}");
        assert!(err.to_string().contains(text), "{err}");
        sink.fix();
        // The breaker opened, but a send that is let through still goes.
        let reply = mailer.send(&msg).await.expect("sent once fixed");
        assert_eq!(reply.code, 250);
    }
}

#[tokio::test]
async fn a_550_is_permanent() {
    let sink = SmtpSink::start_with(vec![Reply::Permanent]);
    let mailer = smtp_mailer(&sink);
    let msg = message(
        &new_message_id("info.example.test"),
        &invitation("Ada", None),
    );

    let err = mailer.send(&msg).await.expect_err("scripted 550");
    assert_eq!(err.kind(), "permanent", "{err}");
    let reply = err.reply().expect("the server's reply is kept");
    assert_eq!(reply.code, 550);
    assert!(reply.text.contains("5.7.1"), "{reply}");
    assert!(err.to_string().contains("550 5.7.1"), "{err}");
    assert!(sink.messages().is_empty());
}

#[tokio::test]
async fn a_closed_port_is_transient() {
    let port = {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
        listener.local_addr().expect("addr").port()
    }; // dropped: nothing listens there any more
    let mailer = mailer(
        Some(format!("smtp://127.0.0.1:{port}")),
        Path::new("unused-outbox"),
    );
    let msg = message(
        &new_message_id("info.example.test"),
        &invitation("Ada", None),
    );

    let err = mailer.send(&msg).await.expect_err("nothing listens");
    assert_eq!(err.kind(), "transient", "{err}");
    assert_eq!(err.code(), None, "{err}");
}

#[tokio::test]
async fn a_server_that_never_answers_is_transient() {
    // Connections complete in the kernel's backlog, but no greeting ever comes.
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let port = listener.local_addr().expect("addr").port();
    let _ = rustls::crypto::ring::default_provider().install_default();
    let mailer = Mailer::new(MailerConfig {
        smtp_url: Some(format!("smtp://127.0.0.1:{port}")),
        pool_size: 1,
        timeout: Duration::from_millis(300),
        probe_interval: Duration::from_secs(5),
        outbox_dir: "unused-outbox".into(),
    })
    .expect("build mailer");
    let msg = message(
        &new_message_id("info.example.test"),
        &invitation("Ada", None),
    );

    let err = mailer.send(&msg).await.expect_err("no greeting");
    assert_eq!(err.kind(), "transient", "{err}");
    drop(listener);
}

#[tokio::test]
async fn user_text_adds_no_header_and_no_script() {
    let evil = "Eve\r\nBcc: evil@x.test <script>alert(1)</script>";
    let sink = SmtpSink::start();
    let mailer = smtp_mailer(&sink);
    let id = new_message_id("info.example.test");
    let rendered = invitation(evil, Some(evil));
    let msg = build_message(&sender(), TO, Some(evil), &id, &rendered, None).expect("build");

    mailer.send(&msg).await.expect("send");
    let mails = sink.wait_for(1, WAIT).await;
    let mail = &mails[0];

    let mut names: Vec<String> = mail
        .header_names()
        .iter()
        .map(|n| n.to_ascii_lowercase())
        .collect();
    names.sort();
    assert_eq!(
        names,
        [
            "auto-submitted",
            "content-type",
            "date",
            "from",
            "message-id",
            "mime-version",
            "subject",
            "to"
        ],
        "unexpected header set:\n{}",
        mail.header_block()
    );
    assert_eq!(rcpt(mail), vec![TO.to_owned()], "no extra recipient");
    let subject = mail.header("Subject").expect("subject");
    assert_eq!(
        subject,
        "Eve Bcc: evil@x.test <script>alert(1)</script> invited you to join Acme"
    );
    let to = mail.header("To").expect("to");
    assert!(!to.contains(['\r', '\n']), "{to:?}");

    let html = mail.html_body();
    assert!(
        html.contains("&lt;script&gt;alert(1)&lt;/script&gt;"),
        "{html}"
    );
    assert!(!html.contains("<script"), "{html}");
    let text = mail.text_body();
    assert!(text.contains("<script>alert(1)</script>"), "{text}");
    assert!(
        text.contains("Bcc: evil@x.test"),
        "typed text stays in the body:\n{text}"
    );
}

#[tokio::test]
async fn file_transport_writes_one_parsable_eml() {
    let dir = std::env::temp_dir().join(format!("invited-outbox-{}", uuid::Uuid::now_v7()));
    let mailer = mailer(None, &dir);
    let id = new_message_id("info.example.test");

    let reply = mailer
        .send(&message(&id, &invitation("Ada", Some("Hi!"))))
        .await
        .expect("write .eml");
    assert_eq!(reply.code, 250, "{reply}");

    let files: Vec<_> = std::fs::read_dir(&dir)
        .expect("outbox dir exists")
        .map(|e| e.expect("dir entry").path())
        .collect();
    assert_eq!(
        files.len(),
        1,
        "exactly one file, no temp file left: {files:?}"
    );
    let path = &files[0];
    let name = path.file_name().unwrap().to_string_lossy();
    assert_eq!(
        name,
        format!("{}.eml", id.trim_matches(['<', '>'])),
        "named after the Message-ID"
    );
    let mail = ReceivedMail {
        raw: std::fs::read_to_string(path).expect("read .eml"),
        from: String::new(),
        to: Vec::new(),
    };
    assert_eq!(mail.header("Message-ID").as_deref(), Some(id.as_str()));
    assert!(mail.text_body().contains(ACCEPT_URL));
    assert!(mail.html_body().contains(ACCEPT_URL));

    std::fs::remove_dir_all(&dir).expect("clean up");
}

#[test]
fn fr_ca_falls_back_to_en_us_when_only_en_us_exists() {
    // A tree with only the shipped en-US templates, whatever else ships later.
    let root = std::env::temp_dir().join(format!("invited-tpl-{}", uuid::Uuid::now_v7()));
    let en_us = Path::new(env!("CARGO_MANIFEST_DIR")).join("templates/en-US");
    std::fs::create_dir_all(root.join("en-US")).expect("mkdir");
    for entry in std::fs::read_dir(&en_us).expect("templates/en-US") {
        let path = entry.expect("entry").path();
        std::fs::copy(&path, root.join("en-US").join(path.file_name().unwrap())).expect("copy");
    }

    let t = Templates::load(&root, "en-US").expect("load");
    let ctx = TemplateName::MemberInvitation.sample_context();
    for locale in ["fr-CA", "fr", "zh-TW", "en-GB", "xx"] {
        let r = t
            .render(TemplateName::MemberInvitation, locale, &ctx)
            .expect("render");
        assert_eq!(r.locale, "en-US", "{locale}");
        assert_eq!(
            r.subject,
            "Ada Lovelace invited you to join Analytical Engines Ltd"
        );
    }
    std::fs::remove_dir_all(&root).expect("clean up");
}

/// R20/R25: the partner request reaches each manager in their own language,
/// with the subject of the source documents, decoded from the real message.
#[tokio::test]
async fn partner_request_subject_is_exact_in_each_locale() {
    let sink = SmtpSink::start();
    let mailer = smtp_mailer(&sink);
    let t = templates();
    let cases = [
        (
            "fr-FR",
            "Vous avez une nouvelle demande de partenariat !",
            // A no-break space between the day and the month.
            "29\u{a0}novembre 2026",
        ),
        ("zh-TW", "您有一項新的合作夥伴請求!", "2026年11月29日"),
        (
            "en-GB",
            "You have a new partner request!",
            "29 November 2026",
        ),
    ];
    let mut ctx = TemplateName::PartnerRequest.sample_context();
    ctx["partner_business_name"] = "Brand Ç & Co".into();
    for (locale, _, _) in cases {
        let rendered = t
            .render(TemplateName::PartnerRequest, locale, &ctx)
            .expect("render partner_request");
        assert_eq!(rendered.locale, locale);
        let id = new_message_id("info.example.test");
        mailer.send(&message(&id, &rendered)).await.expect("send");
    }

    let mails = sink.wait_for(cases.len(), WAIT).await;
    for (mail, (locale, subject, date)) in mails.iter().zip(cases) {
        assert_eq!(
            mail.header("Subject").as_deref(),
            Some(subject),
            "{locale}:\n{}",
            mail.header_block()
        );
        let (text, html) = (mail.text_body(), mail.html_body());
        for part in [&text, &html] {
            assert!(part.contains(date), "{locale}: expiry missing:\n{part}");
        }
        assert!(text.contains("Brand Ç & Co"), "{locale}:\n{text}");
        assert!(html.contains("Brand Ç &amp; Co"), "{locale}:\n{html}");
        assert!(
            html.contains(&format!("<html lang=\"{locale}\">")),
            "{locale}:\n{html}"
        );
    }
}

/// R30 in a locale other than en-US: a personal message holding `<script>`
/// is escaped in the HTML part and shown as typed in the text part.
#[tokio::test]
async fn script_in_a_french_partner_request_is_escaped_in_html_only() {
    let evil = "Bonjour <script>alert(1)</script>\r\nBcc: evil@x.test";
    let sink = SmtpSink::start();
    let mailer = smtp_mailer(&sink);
    let mut ctx = TemplateName::PartnerRequest.sample_context();
    ctx["message"] = evil.into();
    ctx["inviter_name"] = "Ève <script>x</script>".into();
    let rendered = templates()
        .render(TemplateName::PartnerRequest, "fr-CA", &ctx)
        .expect("render");
    let id = new_message_id("info.example.test");
    mailer.send(&message(&id, &rendered)).await.expect("send");

    let mails = sink.wait_for(1, WAIT).await;
    let mail = &mails[0];
    assert_eq!(
        mail.header("Subject").as_deref(),
        Some("Vous avez une nouvelle demande de partenariat !")
    );
    assert_eq!(rcpt(mail), vec![TO.to_owned()], "no extra recipient");
    let html = mail.html_body();
    assert!(
        html.contains("Bonjour &lt;script&gt;alert(1)&lt;/script&gt;"),
        "{html}"
    );
    assert!(
        html.contains("Ève &lt;script&gt;x&lt;/script&gt;"),
        "{html}"
    );
    assert!(!html.contains("<script"), "{html}");
    let text = mail.text_body();
    assert!(text.contains("Bonjour <script>alert(1)</script>"), "{text}");
    assert!(text.contains("Bcc: evil@x.test"), "{text}");
    assert!(
        text.contains("Message d’Ève <script>x</script>\u{a0}:"),
        "{text}"
    );
}
