//! Reading a received report into [`Feedback`]: an RFC 3464 delivery status
//! notification (`multipart/report; report-type=delivery-status`) or an RFC
//! 5965 complaint (`multipart/report; report-type=feedback-report`), both
//! RFC 6522 reports. mail-parser takes the MIME structure apart (boundaries,
//! transfer encodings, nested messages); the `message/delivery-status` and
//! `message/feedback-report` bodies are header-style fields, read here.

use mail_parser::{MessageParser, MimeHeaders, PartType};

use super::{EmailRefs, Feedback, FeedbackKind, FeedbackSource, Unreadable};

/// Longest diagnostic kept; a server may quote a whole transcript.
const MAX_TEXT: usize = 1000;

/// Reads a report received by mail. `refs.outbox_id` is what the return path
/// it was sent to named, if anything; the Message-ID is taken from the
/// returned headers.
pub fn read(
    raw: &[u8],
    source: FeedbackSource,
    envelope_to: Option<&str>,
    outbox_id: Option<uuid::Uuid>,
) -> Result<Feedback, Unreadable> {
    let malformed = |why: &str| Unreadable::Malformed(why.to_owned());
    let message = MessageParser::default()
        .parse(raw)
        .ok_or_else(|| malformed("not a MIME message"))?;
    let content_type = message
        .content_type()
        .ok_or_else(|| malformed("no Content-Type: not a multipart/report (RFC 6522)"))?;
    if !(content_type.ctype().eq_ignore_ascii_case("multipart")
        && content_type
            .subtype()
            .is_some_and(|s| s.eq_ignore_ascii_case("report")))
    {
        return Err(malformed(
            "not a multipart/report (RFC 6522): neither a delivery status notification nor a complaint report",
        ));
    }
    let report_type = content_type
        .attribute("report-type")
        .unwrap_or_default()
        .to_ascii_lowercase();

    // The parts of the report itself (nested messages keep their own parts).
    let mut status_fields = None;
    let mut feedback_fields = None;
    let mut human = None;
    let mut message_id = None;
    for part in message.parts.iter().skip(1) {
        let Some(ct) = part.content_type() else {
            continue;
        };
        let name = format!(
            "{}/{}",
            ct.ctype().to_ascii_lowercase(),
            ct.subtype().unwrap_or_default().to_ascii_lowercase()
        );
        match (name.as_str(), &part.body) {
            ("message/delivery-status" | "message/global-delivery-status", body) => {
                status_fields.get_or_insert_with(|| text_of(body));
            }
            ("message/feedback-report", body) => {
                feedback_fields.get_or_insert_with(|| text_of(body));
            }
            ("text/rfc822-headers" | "text/rfc822-header", body) if message_id.is_none() => {
                let text = text_of(body);
                message_id = MessageParser::default()
                    .parse_headers(text.as_bytes())
                    .and_then(|m| m.message_id().map(str::to_owned));
            }
            ("message/rfc822" | "message/global", PartType::Message(returned))
                if message_id.is_none() =>
            {
                message_id = returned.message_id().map(str::to_owned);
            }
            ("text/plain", PartType::Text(text)) => {
                human.get_or_insert_with(|| text.to_string());
            }
            _ => {}
        }
    }
    let refs = EmailRefs {
        outbox_id,
        message_id: message_id.map(|id| format!("<{}>", id.trim_matches(['<', '>', ' ']))),

        address: None,
    };

    match report_type.as_str() {
        "delivery-status" => {
            let fields = status_fields.ok_or_else(|| {
                malformed("a delivery-status report without a message/delivery-status part")
            })?;
            delivery_status(&fields, source, envelope_to, refs)
        }
        "feedback-report" => {
            let fields = feedback_fields.ok_or_else(|| {
                malformed("a feedback-report without a message/feedback-report part")
            })?;
            complaint(&fields, human.as_deref(), source, envelope_to, refs)
        }
        "" => Err(malformed("a multipart/report without a report-type")),
        other => Err(malformed(&format!(
            "a report of type {other:?}: only delivery-status and feedback-report are read"
        ))),
    }
}

/// RFC 3464: a block of per-message fields, then one block per recipient.
/// The first recipient whose action is `failed` or `delayed` is the news;
/// the daemon's emails have one recipient each.
fn delivery_status(
    text: &str,
    source: FeedbackSource,
    envelope_to: Option<&str>,
    refs: EmailRefs,
) -> Result<Feedback, Unreadable> {
    let blocks = field_blocks(text);
    let recipients: Vec<&Vec<(String, String)>> = blocks
        .iter()
        .skip(1)
        .filter(|b| get(b, "final-recipient").is_some() || get(b, "action").is_some())
        .collect();
    if recipients.is_empty() {
        return Err(Unreadable::Malformed(
            "a delivery status notification without per-recipient fields (Final-Recipient, Action, Status)".into(),
        ));
    }
    let failed = recipients.iter().find(|b| {
        get(b, "action").is_some_and(|a| {
            let a = a.to_ascii_lowercase();
            a.starts_with("failed") || a.starts_with("delayed")
        })
    });
    let Some(block) = failed else {
        let actions: Vec<String> = recipients
            .iter()
            .map(|b| get(b, "action").unwrap_or("(none)").to_owned())
            .collect();
        return Err(Unreadable::NotAFailure(format!(
            "the notification reports {}, not a failure",
            actions.join(", ")
        )));
    };
    let status = get(block, "status")
        .ok_or_else(|| Unreadable::Malformed("a failed recipient without a Status field".into()))?;
    let code = status
        .split_whitespace()
        .next()
        .unwrap_or_default()
        .to_owned();
    let kind = match status_class(&code) {
        Some('5') => FeedbackKind::HardBounce,
        Some('4') => FeedbackKind::SoftBounce,
        Some(_) => {
            return Err(Unreadable::NotAFailure(format!(
                "status {code} is not a failure"
            )));
        }
        None => {
            return Err(Unreadable::Malformed(format!(
                "Status {status:?} is not an RFC 3463 status code (like 5.1.1)"
            )));
        }
    };
    Ok(Feedback {
        kind,
        source,
        status_code: Some(code),
        detail: get(block, "diagnostic-code").map(clip),
        recipient: get(block, "final-recipient")
            .or_else(|| get(block, "original-recipient"))
            .map(address_of),
        refs,
        envelope_to: envelope_to.map(str::to_owned),
    })
}

/// RFC 5965: one block of fields; `Feedback-Type` is required.
fn complaint(
    text: &str,
    human: Option<&str>,
    source: FeedbackSource,
    envelope_to: Option<&str>,
    refs: EmailRefs,
) -> Result<Feedback, Unreadable> {
    let blocks = field_blocks(text);
    let fields: Vec<(String, String)> = blocks.into_iter().flatten().collect();
    let feedback_type = get(&fields, "feedback-type").ok_or_else(|| {
        Unreadable::Malformed("a feedback report without Feedback-Type (RFC 5965)".into())
    })?;
    Ok(Feedback {
        kind: FeedbackKind::Complaint,
        source,
        status_code: Some(clip(feedback_type)),
        detail: human.map(str::trim).filter(|t| !t.is_empty()).map(clip),
        recipient: get(&fields, "original-rcpt-to").map(address_of),
        refs,
        envelope_to: envelope_to.map(str::to_owned),
    })
}

/// `5.1.1` → `'5'`; `None` unless it is `class.subject.detail` with the
/// class 2, 4 or 5 and numbers of at most three digits.
fn status_class(code: &str) -> Option<char> {
    let mut parts = code.split('.');
    let (Some(class), Some(subject), Some(detail), None) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return None;
    };
    let number = |s: &str| !s.is_empty() && s.len() <= 3 && s.bytes().all(|b| b.is_ascii_digit());
    (matches!(class, "2" | "4" | "5") && number(subject) && number(detail))
        .then(|| class.chars().next())
        .flatten()
}

/// `rfc822; a@b.example` → `a@b.example`.
fn address_of(value: &str) -> String {
    let address = value.split_once(';').map_or(value, |(_, a)| a);
    clip(address.trim().trim_matches(['<', '>']))
}

fn clip(text: &str) -> String {
    let text = crate::mail::one_line(text);
    match text.char_indices().nth(MAX_TEXT) {
        Some((at, _)) => format!("{}…", &text[..at]),
        None => text,
    }
}

fn text_of(body: &PartType<'_>) -> String {
    match body {
        PartType::Text(t) | PartType::Html(t) => t.to_string(),
        PartType::Binary(b) | PartType::InlineBinary(b) => String::from_utf8_lossy(b).into_owned(),
        PartType::Message(m) => String::from_utf8_lossy(m.raw_message()).into_owned(),
        PartType::Multipart(_) => String::new(),
    }
}

/// Header-style fields in blocks separated by empty lines, names in lower
/// case, folded lines joined.
fn field_blocks(text: &str) -> Vec<Vec<(String, String)>> {
    let mut blocks: Vec<Vec<(String, String)>> = vec![Vec::new()];
    for line in text.lines() {
        let line = line.trim_end_matches('\r');
        if line.trim().is_empty() {
            if !blocks.last().is_some_and(Vec::is_empty) {
                blocks.push(Vec::new());
            }
            continue;
        }
        let block = blocks.last_mut().expect("never empty");
        if line.starts_with([' ', '\t']) {
            if let Some((_, value)) = block.last_mut() {
                value.push(' ');
                value.push_str(line.trim());
            }
        } else if let Some((name, value)) = line.split_once(':') {
            block.push((name.trim().to_ascii_lowercase(), value.trim().to_owned()));
        }
    }
    blocks.retain(|b| !b.is_empty());
    blocks
}

fn get<'a>(fields: &'a [(String, String)], name: &str) -> Option<&'a str> {
    fields
        .iter()
        .find(|(n, _)| n == name)
        .map(|(_, v)| v.as_str())
}

#[cfg(test)]
mod tests {
    use super::*;

    const DSN: &str = "From: MAILER-DAEMON@mx.example\r\n\
To: bounces+x@bounce.example\r\n\
Subject: Undelivered Mail\r\n\
MIME-Version: 1.0\r\n\
Content-Type: multipart/report; report-type=delivery-status; boundary=\"b1\"\r\n\
\r\n\
--b1\r\n\
Content-Type: text/plain\r\n\
\r\n\
Your message could not be delivered.\r\n\
--b1\r\n\
Content-Type: message/delivery-status\r\n\
\r\n\
Reporting-MTA: dns; mx.example\r\n\
\r\n\
Final-Recipient: rfc822; gone@x.example\r\n\
Action: failed\r\n\
Status: 5.1.1\r\n\
Diagnostic-Code: smtp; 550 5.1.1 <gone@x.example>:\r\n\
\x20Recipient address rejected: User unknown\r\n\
\r\n\
--b1\r\n\
Content-Type: text/rfc822-headers\r\n\
\r\n\
Message-ID: <0190-abc@info.example.test>\r\n\
Subject: You're invited\r\n\
\r\n\
--b1--\r\n";

    #[test]
    fn reads_a_hard_bounce() {
        let f = read(DSN.as_bytes(), FeedbackSource::Smtp, Some("b@x"), None).unwrap();
        assert_eq!(f.kind, FeedbackKind::HardBounce);
        assert_eq!(f.status_code.as_deref(), Some("5.1.1"));
        assert_eq!(
            f.detail.as_deref(),
            Some("smtp; 550 5.1.1 <gone@x.example>: Recipient address rejected: User unknown")
        );
        assert_eq!(f.recipient.as_deref(), Some("gone@x.example"));
        assert_eq!(
            f.refs.message_id.as_deref(),
            Some("<0190-abc@info.example.test>")
        );
    }

    #[test]
    fn tells_soft_bounces_and_non_failures() {
        let soft = DSN
            .replace("Status: 5.1.1", "Status: 4.2.2")
            .replace("Action: failed", "Action: delayed");
        let f = read(soft.as_bytes(), FeedbackSource::Smtp, None, None).unwrap();
        assert_eq!(f.kind, FeedbackKind::SoftBounce);
        let delivered = DSN
            .replace("Action: failed", "Action: delivered")
            .replace("Status: 5.1.1", "Status: 2.0.0");
        assert!(matches!(
            read(delivered.as_bytes(), FeedbackSource::Smtp, None, None),
            Err(Unreadable::NotAFailure(_))
        ));
    }

    #[test]
    fn refuses_what_is_not_a_report() {
        for bad in [
            "Subject: hi\r\n\r\nhello\r\n".to_owned(),
            DSN.replace("report-type=delivery-status", "report-type=other"),
            DSN.replace("Status: 5.1.1", "Status: bogus"),
            DSN.replace(
                "Content-Type: message/delivery-status",
                "Content-Type: text/plain",
            ),
            String::new(),
        ] {
            assert!(
                matches!(
                    read(bad.as_bytes(), FeedbackSource::Smtp, None, None),
                    Err(Unreadable::Malformed(_))
                ),
                "{bad}"
            );
        }
    }

    #[test]
    fn reads_a_complaint() {
        let arf = "From: fbl@isp.example\r\n\
MIME-Version: 1.0\r\n\
Content-Type: multipart/report; report-type=feedback-report; boundary=\"p\"\r\n\
\r\n\
--p\r\n\
Content-Type: text/plain\r\n\
\r\n\
This is an email abuse report.\r\n\
--p\r\n\
Content-Type: message/feedback-report\r\n\
\r\n\
Feedback-Type: abuse\r\n\
User-Agent: ISP-FBL/1.0\r\n\
Version: 1\r\n\
Original-Rcpt-To: <who@x.example>\r\n\
\r\n\
--p\r\n\
Content-Type: message/rfc822\r\n\
\r\n\
From: pinbot@info.example.test\r\n\
Message-ID: <0190-def@info.example.test>\r\n\
Subject: invited\r\n\
\r\n\
body\r\n\
--p--\r\n";
        let f = read(arf.as_bytes(), FeedbackSource::Smtp, None, None).unwrap();
        assert_eq!(f.kind, FeedbackKind::Complaint);
        assert_eq!(f.status_code.as_deref(), Some("abuse"));
        assert_eq!(f.recipient.as_deref(), Some("who@x.example"));
        assert_eq!(
            f.refs.message_id.as_deref(),
            Some("<0190-def@info.example.test>")
        );
        assert_eq!(f.detail.as_deref(), Some("This is an email abuse report."));
    }

    #[test]
    fn status_codes() {
        assert_eq!(status_class("5.1.1"), Some('5'));
        assert_eq!(status_class("4.7.0"), Some('4'));
        assert_eq!(status_class("2.0.0"), Some('2'));
        for bad in ["5.1", "6.1.1", "5.1.1.1", "x.1.1", "5..1", "5.1234.1"] {
            assert_eq!(status_class(bad), None, "{bad}");
        }
    }
}
