//! What comes back after the 250 (R43): bounces and complaints, as one type
//! whatever way they arrived. The inbound SMTP listener
//! (`crate::ingress::smtp`) reads RFC 3464 delivery status notifications and
//! RFC 5965 complaints into a [`Feedback`] ([`report`]); the providers'
//! webhooks map their signed payloads to the same type ([`providers`]). `Services::apply_feedback` ties it to an email and does
//! what R44 says.

pub mod providers;
pub mod report;

use std::fmt;

use uuid::Uuid;

/// What the news is.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FeedbackKind {
    /// A permanent failure (status 5.x.x): the address does not take mail.
    HardBounce,
    /// A temporary failure (status 4.x.x): recorded, nothing else (R44).
    SoftBounce,
    /// The recipient reported the email as unwanted (ARF, a provider's
    /// complaint event).
    Complaint,
}

impl FeedbackKind {
    /// The schema's and the metrics' name.
    pub fn as_str(self) -> &'static str {
        match self {
            FeedbackKind::HardBounce => "hard_bounce",
            FeedbackKind::SoftBounce => "soft_bounce",
            FeedbackKind::Complaint => "complaint",
        }
    }
}

/// Where the news came from.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FeedbackSource {
    /// The daemon's own inbound SMTP listener (`feedback.smtp_listen`).
    Smtp,
    /// The providers' webhooks, `POST /feedback/{provider}` (R43 a).
    Ses,
    Postmark,
    Sendgrid,
    Mailgun,
    Resend,
}

impl FeedbackSource {
    pub fn as_str(self) -> &'static str {
        match self {
            FeedbackSource::Smtp => "smtp",
            FeedbackSource::Ses => "ses",
            FeedbackSource::Postmark => "postmark",
            FeedbackSource::Sendgrid => "sendgrid",
            FeedbackSource::Mailgun => "mailgun",
            FeedbackSource::Resend => "resend",
        }
    }
}

impl fmt::Display for FeedbackSource {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// What the news says about which email it is, most trusted first: the
/// VERP return path it was sent to names our outbox id; the Message-ID in
/// the returned headers (or echoed by a provider) names the email as we
/// wrote it; last, the address a provider says it was sent to.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct EmailRefs {
    pub outbox_id: Option<Uuid>,
    /// With its angle brackets, as the outbox keeps it.
    pub message_id: Option<String>,
    /// A provider's webhook only: the recipient it names, which ties the
    /// report to the latest email sent to that address when nothing else
    /// does. The SMTP listener never sets it (anyone can mail a DSN).
    pub address: Option<String>,
}

/// How a piece of feedback was tied to its email.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum MatchedBy {
    ReturnPath,
    MessageId,
    Address,
}

impl MatchedBy {
    pub fn as_str(self) -> &'static str {
        match self {
            MatchedBy::ReturnPath => "return_path",
            MatchedBy::MessageId => "message_id",
            MatchedBy::Address => "address",
        }
    }
}

/// One bounce or complaint, read and typed, not yet tied to an email.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Feedback {
    pub kind: FeedbackKind,
    pub source: FeedbackSource,
    /// The RFC 3463 status (`5.1.1`); for a complaint its feedback type
    /// (`abuse`).
    pub status_code: Option<String>,
    /// The receiving server's diagnostic (`smtp; 550 5.1.1 user unknown`).
    pub detail: Option<String>,
    /// The address the report is about (`Final-Recipient`,
    /// `Original-Rcpt-To`).
    pub recipient: Option<String>,
    pub refs: EmailRefs,
    /// The address the report was sent to (the return path), if it came
    /// by mail.
    pub envelope_to: Option<String>,
}

/// What was received but is not a bounce or complaint the daemon acts on.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum Unreadable {
    /// Not a delivery status notification or complaint report, or one
    /// missing what it must carry.
    #[error("{0}")]
    Malformed(String),
    /// A well-formed report that is not a failure (`Action: delivered`,
    /// `relayed`, `expanded`).
    #[error("{0}")]
    NotAFailure(String),
}

impl Unreadable {
    /// The schema's `outcome`.
    pub fn outcome(&self) -> &'static str {
        match self {
            Unreadable::Malformed(_) => "malformed",
            Unreadable::NotAFailure(_) => "ignored",
        }
    }
}
