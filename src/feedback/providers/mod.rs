//! R43 a: bounces and complaints from the providers' webhooks
//! (`POST /feedback/{provider}`). Each provider signs its requests its own
//! way; each module here checks that signature first and only then reads
//! the body into the same [`Feedback`] the inbound SMTP listener produces,
//! so `Services::apply_feedback` treats both alike.
//!
//! What each provider lets us tie a report to (most trusted first; our
//! outbox does not keep the providers' own message ids):
//! - SES: the original `Message-ID` header in `mail.headers` (SES replaces
//!   the one it sends), else `mail.commonHeaders.messageId`, else the
//!   address;
//! - SendGrid: `smtp-id` (the Message-ID of a message sent over SMTP), else
//!   the address;
//! - Mailgun: `event-data.message.headers.message-id`, else the address;
//! - Postmark and Resend: the address (their payloads carry only their own
//!   ids; Resend's `data.headers`, when present, may carry ours).

pub mod keys;
mod mailgun;
mod postmark;
mod resend;
mod sendgrid;
mod ses;

use std::fmt;

use axum::http::HeaderMap;

use super::{EmailRefs, Feedback, FeedbackSource};
use keys::{CertHost, HmacSecret, PostmarkCredentials, SendgridKey};

/// The largest webhook body read (SendGrid posts batches of up to 768 KiB,
/// SNS messages are at most 256 KiB).
pub const MAX_BODY: usize = 1024 * 1024;

/// How far a signed timestamp may be from our clock (SendGrid, Mailgun,
/// Resend): older is a replay, newer a forgery or a broken clock.
pub const TOLERANCE_SECS: i64 = 5 * 60;

/// The `{provider}` of `POST /feedback/{provider}`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Provider {
    Ses,
    Postmark,
    Sendgrid,
    Mailgun,
    Resend,
}

impl Provider {
    pub const ALL: [Provider; 5] = [
        Provider::Ses,
        Provider::Postmark,
        Provider::Sendgrid,
        Provider::Mailgun,
        Provider::Resend,
    ];

    pub fn parse(text: &str) -> Option<Provider> {
        Provider::ALL.into_iter().find(|p| p.as_str() == text)
    }

    pub fn as_str(self) -> &'static str {
        self.source().as_str()
    }

    pub fn source(self) -> FeedbackSource {
        match self {
            Provider::Ses => FeedbackSource::Ses,
            Provider::Postmark => FeedbackSource::Postmark,
            Provider::Sendgrid => FeedbackSource::Sendgrid,
            Provider::Mailgun => FeedbackSource::Mailgun,
            Provider::Resend => FeedbackSource::Resend,
        }
    }
}

impl fmt::Display for Provider {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// One webhook request as received.
pub struct Webhook<'a> {
    pub headers: &'a HeaderMap,
    pub body: &'a [u8],
    /// Our clock, in Unix seconds, for the timestamp checks.
    pub now: i64,
}

impl Webhook<'_> {
    fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|v| v.to_str().ok())
    }
}

/// Why a webhook request was not read.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Refused {
    /// The provider has no configuration here: `404`.
    NotConfigured,
    /// The signature or credentials fail: `401`, nothing recorded (anyone
    /// can send this).
    Unauthenticated(String),
    /// Signed, but not a body we can read: `400`, recorded.
    Malformed(String),
    /// SNS: the allow-listed certificate could not be fetched now: `503`,
    /// so SNS tries again.
    CertUnavailable(String),
}

/// The providers this daemon takes webhooks from, with their keys.
#[derive(Default)]
pub struct Providers {
    pub postmark: Option<PostmarkCredentials>,
    pub sendgrid: Option<SendgridKey>,
    pub mailgun: Option<HmacSecret>,
    pub resend: Option<HmacSecret>,
    pub ses: Option<ses::Ses>,
}

impl Providers {
    pub fn new(
        postmark: Option<PostmarkCredentials>,
        sendgrid: Option<SendgridKey>,
        mailgun: Option<HmacSecret>,
        resend: Option<HmacSecret>,
        ses_cert_hosts: Vec<CertHost>,
        ses_plain_http_certs: bool,
    ) -> Providers {
        Providers {
            postmark,
            sendgrid,
            mailgun,
            resend,
            ses: (!ses_cert_hosts.is_empty())
                .then(|| ses::Ses::new(ses_cert_hosts, ses_plain_http_certs)),
        }
    }

    /// Checks the request's signature and reads its bounces and complaints
    /// (none for events that are neither, or an SNS subscription message).
    pub async fn read(
        &self,
        provider: Provider,
        hook: &Webhook<'_>,
    ) -> Result<Vec<Feedback>, Refused> {
        match provider {
            Provider::Postmark => {
                let creds = self.postmark.as_ref().ok_or(Refused::NotConfigured)?;
                postmark::read(creds, hook)
            }
            Provider::Sendgrid => {
                let key = self.sendgrid.as_ref().ok_or(Refused::NotConfigured)?;
                sendgrid::read(key, hook)
            }
            Provider::Mailgun => {
                let key = self.mailgun.as_ref().ok_or(Refused::NotConfigured)?;
                mailgun::read(key, hook)
            }
            Provider::Resend => {
                let key = self.resend.as_ref().ok_or(Refused::NotConfigured)?;
                resend::read(key, hook)
            }
            Provider::Ses => {
                let ses = self.ses.as_ref().ok_or(Refused::NotConfigured)?;
                ses.read(hook).await
            }
        }
    }
}

/// A signed Unix timestamp within [`TOLERANCE_SECS`] of `now`.
fn fresh(timestamp: Option<&str>, now: i64) -> Result<(), Refused> {
    let at: i64 = timestamp
        .and_then(|t| t.trim().parse().ok())
        .ok_or_else(|| Refused::Unauthenticated("no signed timestamp".into()))?;
    if (now - at).abs() > TOLERANCE_SECS {
        return Err(Refused::Unauthenticated(format!(
            "the signed timestamp {at} is more than 5 minutes from now ({now})"
        )));
    }
    Ok(())
}

fn hmac_sha256(key: &[u8], parts: &[&[u8]]) -> ring::hmac::Tag {
    let key = ring::hmac::Key::new(ring::hmac::HMAC_SHA256, key);
    let mut ctx = ring::hmac::Context::with_key(&key);
    for part in parts {
        ctx.update(part);
    }
    ctx.sign()
}

/// Constant-time equality (a timing difference must not tell an attacker
/// how much of a guess was right).
fn same(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

/// A Message-ID with its angle brackets, as the outbox keeps it.
fn bracketed(id: &str) -> Option<String> {
    let id = id.trim().trim_start_matches('<').trim_end_matches('>');
    (!id.is_empty() && !id.contains(['<', '>', ' '])).then(|| format!("<{id}>"))
}

/// A feedback with what a provider tells; `address` is the recipient the
/// provider names, used to tie only when nothing better is there.
fn feedback(
    source: FeedbackSource,
    kind: super::FeedbackKind,
    recipient: Option<String>,
    message_id: Option<String>,
    status_code: Option<String>,
    detail: Option<String>,
) -> Feedback {
    // `Name <address>` (as some providers echo a To header) is its address.
    let recipient = recipient
        .map(|r| match (r.rfind('<'), r.rfind('>')) {
            (Some(open), Some(close)) if open < close => r[open + 1..close].trim().to_owned(),
            _ => r.trim().to_owned(),
        })
        .filter(|r| !r.is_empty());
    Feedback {
        kind,
        source,
        status_code: status_code.filter(|s| !s.is_empty()),
        detail: detail
            .map(|d| crate::mail::one_line(&d))
            .filter(|d| !d.is_empty()),
        refs: EmailRefs {
            outbox_id: None,
            message_id: message_id.as_deref().and_then(bracketed),
            address: recipient.clone(),
        },
        recipient,
        envelope_to: None,
    }
}

/// The body as JSON, or `Malformed` naming the provider.
fn json<T: serde::de::DeserializeOwned>(provider: Provider, body: &[u8]) -> Result<T, Refused> {
    serde_json::from_slice(body)
        .map_err(|e| Refused::Malformed(format!("not a {provider} webhook body: {e}")))
}

/// An RFC 3463 status in a text (`5.1.1`), if there is one.
fn status_in(text: &str) -> Option<String> {
    text.split(|c: char| !(c.is_ascii_digit() || c == '.'))
        .find(|w| {
            let parts: Vec<&str> = w.split('.').collect();
            parts.len() == 3
                && matches!(parts[0], "2" | "4" | "5")
                && parts[1..].iter().all(|p| (1..=3).contains(&p.len()))
        })
        .map(str::to_owned)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn providers_parse_by_their_path_name() {
        for p in Provider::ALL {
            assert_eq!(Provider::parse(p.as_str()), Some(p));
        }
        assert_eq!(Provider::parse("smtp"), None);
        assert_eq!(Provider::parse("SES"), None);
    }

    #[test]
    fn timestamps_older_or_newer_than_five_minutes_fail() {
        assert!(fresh(Some("1000"), 1000 + 300).is_ok());
        assert!(fresh(Some("1000"), 1000 + 301).is_err());
        assert!(fresh(Some("1301"), 1000).is_err());
        assert!(fresh(Some("soon"), 1000).is_err());
        assert!(fresh(None, 1000).is_err());
    }

    #[test]
    fn statuses_and_message_ids() {
        assert_eq!(
            status_in("550 5.1.1 user unknown").as_deref(),
            Some("5.1.1")
        );
        assert_eq!(status_in("smtp; 452 4.2.2 full").as_deref(), Some("4.2.2"));
        assert_eq!(status_in("no status here 550"), None);
        assert_eq!(bracketed("a@b").as_deref(), Some("<a@b>"));
        assert_eq!(bracketed(" <a@b> ").as_deref(), Some("<a@b>"));
        assert_eq!(bracketed("<>"), None);
        let named = feedback(
            FeedbackSource::Resend,
            crate::feedback::FeedbackKind::Complaint,
            Some("Ann Example <ann@x.example>".into()),
            None,
            None,
            None,
        );
        assert_eq!(named.refs.address.as_deref(), Some("ann@x.example"));
        assert_eq!(named.recipient.as_deref(), Some("ann@x.example"));
    }
}
