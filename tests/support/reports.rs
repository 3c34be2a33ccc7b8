//! Bounce and complaint reports as a receiving mail server sends them, and
//! their delivery to the daemon's feedback listener (R43 b) over SMTP.

use std::time::Duration;

use lettre::address::Envelope;
use lettre::{AsyncSmtpTransport, AsyncTransport, Tokio1Executor};

use super::daemon::TestDaemon;

/// Sends `raw` with a null reverse path to `rcpt` through the daemon's
/// listener, as a mail server sends a bounce. The listener's answer: its
/// code and text.
pub async fn deliver_report(d: &TestDaemon, rcpt: &str, raw: &str) -> Result<u16, (u16, String)> {
    let addr = d
        .app
        .as_ref()
        .unwrap()
        .feedback_addr
        .expect("the listener runs");
    let client = AsyncSmtpTransport::<Tokio1Executor>::builder_dangerous(addr.ip().to_string())
        .port(addr.port())
        .timeout(Some(Duration::from_secs(10)))
        .build();
    let envelope = Envelope::new(None, vec![rcpt.parse().unwrap()]).unwrap();
    match client.send_raw(&envelope, raw.as_bytes()).await {
        Ok(response) => Ok(response.code().into()),
        Err(e) => Err((e.status().map_or(0, u16::from), e.to_string())),
    }
}

/// An RFC 3464 DSN about `message_id` for `recipient`.
pub fn dsn(
    recipient: &str,
    message_id: &str,
    action: &str,
    status: &str,
    diagnostic: &str,
) -> String {
    format!(
        "From: Mail Delivery System <MAILER-DAEMON@mx.x.example>\r\n\
         To: bounces@bounce.example.test\r\n\
         Subject: Undelivered Mail Returned to Sender\r\n\
         Date: Wed, 2 Dec 2026 10:00:00 +0000\r\n\
         Message-ID: <dsn-{}@mx.x.example>\r\n\
         MIME-Version: 1.0\r\n\
         Content-Type: multipart/report; report-type=delivery-status;\r\n\
         \tboundary=\"dsn-boundary\"\r\n\
         \r\n\
         This is a MIME-encapsulated message.\r\n\
         \r\n\
         --dsn-boundary\r\n\
         Content-Type: text/plain; charset=us-ascii\r\n\
         \r\n\
         I'm sorry to have to inform you that your message could not\r\n\
         be delivered to one or more recipients.\r\n\
         \r\n\
         --dsn-boundary\r\n\
         Content-Type: message/delivery-status\r\n\
         \r\n\
         Reporting-MTA: dns; mx.x.example\r\n\
         Arrival-Date: Wed, 2 Dec 2026 09:59:59 +0000\r\n\
         \r\n\
         Final-Recipient: rfc822; {recipient}\r\n\
         Original-Recipient: rfc822;{recipient}\r\n\
         Action: {action}\r\n\
         Status: {status}\r\n\
         Remote-MTA: dns; mx.x.example\r\n\
         Diagnostic-Code: smtp; {diagnostic}\r\n\
         \r\n\
         --dsn-boundary\r\n\
         Content-Type: text/rfc822-headers\r\n\
         \r\n\
         From: Invitations <pinbot@info.example.test>\r\n\
         To: {recipient}\r\n\
         Subject: You're invited\r\n\
         Message-ID: {message_id}\r\n\
         \r\n\
         --dsn-boundary--\r\n",
        uuid::Uuid::now_v7()
    )
}

/// An RFC 5965 complaint about `message_id`.
pub fn arf(recipient: &str, message_id: &str) -> String {
    format!(
        "From: <abuse@isp.example>\r\n\
         To: <fbl@bounce.example.test>\r\n\
         Subject: FW: You're invited\r\n\
         Date: Wed, 2 Dec 2026 10:00:00 +0000\r\n\
         MIME-Version: 1.0\r\n\
         Content-Type: multipart/report; report-type=feedback-report;\r\n\
         \tboundary=\"part1_13d.2e68ed54_boundary\"\r\n\
         \r\n\
         --part1_13d.2e68ed54_boundary\r\n\
         Content-Type: text/plain; charset=\"US-ASCII\"\r\n\
         Content-Transfer-Encoding: 7bit\r\n\
         \r\n\
         This is an email abuse report for an email message received from IP\r\n\
         192.0.2.1 on Wed, 2 Dec 2026 09:00:00 +0000.\r\n\
         \r\n\
         --part1_13d.2e68ed54_boundary\r\n\
         Content-Type: message/feedback-report\r\n\
         \r\n\
         Feedback-Type: abuse\r\n\
         User-Agent: SomeGenerator/1.0\r\n\
         Version: 1\r\n\
         Original-Mail-From: <bounces@bounce.example.test>\r\n\
         Original-Rcpt-To: <{recipient}>\r\n\
         Arrival-Date: Wed, 2 Dec 2026 09:00:00 +0000\r\n\
         Source-IP: 192.0.2.1\r\n\
         \r\n\
         --part1_13d.2e68ed54_boundary\r\n\
         Content-Type: message/rfc822\r\n\
         Content-Disposition: inline\r\n\
         \r\n\
         From: Invitations <pinbot@info.example.test>\r\n\
         To: {recipient}\r\n\
         Subject: You're invited\r\n\
         Message-ID: {message_id}\r\n\
         Date: Wed, 2 Dec 2026 09:00:00 +0000\r\n\
         \r\n\
         You have been invited.\r\n\
         \r\n\
         --part1_13d.2e68ed54_boundary--\r\n"
    )
}
