//! What each email template receives: one struct per context, shared by the
//! service that queues an email and by `invited templates check` / `render`,
//! which render the samples below. A key a template uses and the service does
//! not fill fails the check, because both sides use the same struct.
//!
//! The outbox stores the context as the JSON these structs serialise to
//! (keys sorted: serde_json's map is ordered by key). Delivery renders that
//! stored JSON, after swapping the token's nonce for the accept link (see
//! [`InvitationLink`]). Every locale directory also holds `base.html` (the
//! HTML layout) and `helpers.txt` (macros): they read only `locale`, which
//! rendering adds to every context.

use chrono::{DateTime, Utc};
use serde::{Serialize, Serializer};

use super::templates::TemplateName;

/// The key of the token's nonce in a stored context (see [`InvitationLink`]).
const TOKEN_NONCE_KEY: &str = "_token_nonce";
/// The key of the accept link in a rendered context.
const ACCEPT_URL_KEY: &str = "accept_url";
/// The key of the expiry, which delivery also reads (no retry past it).
pub const EXPIRES_AT_KEY: &str = "expires_at";

/// One email: the template and its context, as the outbox stores them.
#[derive(Clone, Debug, PartialEq)]
pub enum EmailContent {
    MemberInvitation(InvitationContext),
    /// R32: the member invitation again, same context and link.
    Reminder(InvitationContext),
    InvitationAccepted(AcceptedContext),
    /// R20, direction `invite`.
    PartnerInvitation(PartnerContext),
    /// R20, direction `request`: the same keys as a partner invitation.
    PartnerRequest(PartnerContext),
}

impl EmailContent {
    pub fn template(&self) -> TemplateName {
        match self {
            EmailContent::MemberInvitation(_) => TemplateName::MemberInvitation,
            EmailContent::Reminder(_) => TemplateName::Reminder,
            EmailContent::InvitationAccepted(_) => TemplateName::InvitationAccepted,
            EmailContent::PartnerInvitation(_) => TemplateName::PartnerInvitation,
            EmailContent::PartnerRequest(_) => TemplateName::PartnerRequest,
        }
    }

    /// The context as a JSON object, as stored in the outbox and rendered.
    pub fn context(&self) -> serde_json::Value {
        let value = match self {
            EmailContent::MemberInvitation(c) | EmailContent::Reminder(c) => {
                serde_json::to_value(c)
            }
            EmailContent::InvitationAccepted(c) => serde_json::to_value(c),
            EmailContent::PartnerInvitation(c) | EmailContent::PartnerRequest(c) => {
                serde_json::to_value(c)
            }
        };
        value.expect("an email context serialises")
    }

    /// A context for `name` with every key filled, for `templates check`,
    /// `templates render` and tests.
    pub fn sample(name: TemplateName) -> EmailContent {
        let invitation = || InvitationContext {
            inviter_name: "Ada Lovelace".into(),
            business_name: "Analytical Engines Ltd".into(),
            role: Some("manager".into()),
            message: Some("Looking forward to working with you!\nSee you on Monday.".into()),
            expires_at: sample_expiry(),
            recipient_email: "charles@example.test".into(),
            link: InvitationLink::AcceptUrl(
                "https://app.example.test/invitations/accept?token=sample".into(),
            ),
        };
        let partner = || PartnerContext {
            recipient_name: "Grace Hopper".into(),
            business_name: "Compiler Agency".into(),
            partner_business_name: "Analytical Engines Ltd".into(),
            inviter_name: "Ada Lovelace".into(),
            message: Some("We would love to work with your team on our profiles.".into()),
            expires_at: sample_expiry(),
        };
        match name {
            TemplateName::MemberInvitation => EmailContent::MemberInvitation(invitation()),
            TemplateName::Reminder => EmailContent::Reminder(invitation()),
            TemplateName::InvitationAccepted => EmailContent::InvitationAccepted(AcceptedContext {
                inviter_name: "Ada Lovelace".into(),
                business_name: "Analytical Engines Ltd".into(),
                accepted_by_name: "Charles Babbage".into(),
                accepted_by_email: "charles@example.test".into(),
                role: "manager".into(),
                partner_business_name: None,
            }),
            TemplateName::PartnerInvitation => EmailContent::PartnerInvitation(partner()),
            TemplateName::PartnerRequest => EmailContent::PartnerRequest(partner()),
        }
    }

    /// [`EmailContent::sample`] and the variant of it that takes the
    /// template's other branch: no personal message, or a partner acceptance
    /// (no role, the partner named). `check` renders them all.
    pub fn samples(name: TemplateName) -> Vec<EmailContent> {
        let sample = EmailContent::sample(name);
        let mut variant = sample.clone();
        match &mut variant {
            EmailContent::MemberInvitation(c) | EmailContent::Reminder(c) => c.message = None,
            EmailContent::PartnerInvitation(c) | EmailContent::PartnerRequest(c) => {
                c.message = None
            }
            EmailContent::InvitationAccepted(c) => {
                c.role = String::new();
                c.partner_business_name = Some("Compiler Agency".into());
            }
        }
        vec![sample, variant]
    }
}

fn sample_expiry() -> DateTime<Utc> {
    DateTime::parse_from_rfc3339("2026-11-29T10:00:00Z")
        .expect("a valid timestamp")
        .with_timezone(&Utc)
}

/// The samples as JSON, where tests and the CLI want a context to edit.
impl TemplateName {
    /// The context of [`EmailContent::sample`], as rendered.
    pub fn sample_context(self) -> serde_json::Value {
        EmailContent::sample(self).context()
    }

    /// The contexts of [`EmailContent::samples`], as rendered.
    pub fn sample_contexts(self) -> Vec<serde_json::Value> {
        EmailContent::samples(self)
            .iter()
            .map(EmailContent::context)
            .collect()
    }
}

/// `member_invitation` and `reminder`: the invitation to join a business.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct InvitationContext {
    pub inviter_name: String,
    pub business_name: String,
    /// The invited role's key; the templates name the preset roles.
    pub role: Option<String>,
    /// The inviter's personal message, shown as typed (escaped in HTML, R30).
    pub message: Option<String>,
    #[serde(serialize_with = "rfc3339")]
    pub expires_at: DateTime<Utc>,
    pub recipient_email: String,
    #[serde(flatten)]
    pub link: InvitationLink,
}

/// How the accept link travels. The outbox never holds a token: it holds the
/// nonce the token is derived from (`_token_nonce`, hex), and delivery
/// replaces it with the link (`accept_url`) just before rendering (see
/// `domain::token`).
#[derive(Clone, Debug, PartialEq, Serialize)]
pub enum InvitationLink {
    #[serde(rename = "_token_nonce")]
    TokenNonce(String),
    #[serde(rename = "accept_url")]
    AcceptUrl(String),
}

/// A stored context made ready to render: the token's nonce, if it has one,
/// replaced by the accept link `link` makes from the nonce's bytes. Works on
/// the stored JSON, so rows queued by older versions render as they are.
pub fn with_accept_url(
    stored: &serde_json::Value,
    link: impl FnOnce(Vec<u8>) -> Result<String, String>,
) -> Result<serde_json::Value, String> {
    let mut context = stored.clone();
    if let Some(map) = context.as_object_mut()
        && let Some(nonce) = map.remove(TOKEN_NONCE_KEY)
    {
        let nonce = nonce
            .as_str()
            .and_then(|n| hex::decode(n).ok())
            .ok_or_else(|| "stored token nonce is not hex".to_string())?;
        map.insert(ACCEPT_URL_KEY.into(), link(nonce)?.into());
    }
    Ok(context)
}

/// `invitation_accepted` (R22), to the inviting user.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct AcceptedContext {
    pub inviter_name: String,
    pub business_name: String,
    pub accepted_by_name: String,
    pub accepted_by_email: String,
    /// The role the new member got; empty for a partner acceptance.
    pub role: String,
    /// The business that accepted a partner invitation; `null` for a member.
    /// Rows queued before this key existed lack it, so the templates test it
    /// with `is defined`.
    pub partner_business_name: Option<String>,
}

/// `partner_invitation` and `partner_request` (R20), to each owner or
/// manager of the receiving business.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct PartnerContext {
    pub recipient_name: String,
    /// The receiving business.
    pub business_name: String,
    /// The business that sent it.
    pub partner_business_name: String,
    pub inviter_name: String,
    pub message: Option<String>,
    #[serde(serialize_with = "rfc3339")]
    pub expires_at: DateTime<Utc>,
}

/// As the outbox has always held it (`to_rfc3339`, `+00:00`); the `date`
/// filter reads any RFC 3339 form.
fn rfc3339<S: Serializer>(value: &DateTime<Utc>, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_str(&value.to_rfc3339())
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    /// The stored contexts are the JSON the service wrote with `json!`
    /// before these structs existed, byte for byte.
    #[test]
    fn stored_contexts_keep_their_bytes() {
        let expires_at = sample_expiry();
        let member = EmailContent::MemberInvitation(InvitationContext {
            inviter_name: "Ada".into(),
            business_name: "Acme".into(),
            role: None,
            message: None,
            expires_at,
            recipient_email: "c@x.test".into(),
            link: InvitationLink::TokenNonce("00ff".into()),
        });
        let before = json!({
            "inviter_name": "Ada",
            "business_name": "Acme",
            "role": null,
            "message": null,
            "expires_at": expires_at.to_rfc3339(),
            "recipient_email": "c@x.test",
            TOKEN_NONCE_KEY: "00ff",
        });
        let accepted = EmailContent::InvitationAccepted(AcceptedContext {
            inviter_name: "Ada".into(),
            business_name: "Acme".into(),
            accepted_by_name: "Charles".into(),
            accepted_by_email: "c@x.test".into(),
            role: "".into(),
            partner_business_name: Some("Globex".into()),
        });
        let accepted_before = json!({
            "inviter_name": "Ada",
            "business_name": "Acme",
            "accepted_by_name": "Charles",
            "accepted_by_email": "c@x.test",
            "role": "",
            "partner_business_name": "Globex",
        });
        let partner = EmailContent::PartnerRequest(PartnerContext {
            recipient_name: "Grace".into(),
            business_name: "Globex".into(),
            partner_business_name: "Acme".into(),
            inviter_name: "Ada".into(),
            message: Some("hi".into()),
            expires_at,
        });
        let partner_before = json!({
            "recipient_name": "Grace",
            "business_name": "Globex",
            "partner_business_name": "Acme",
            "inviter_name": "Ada",
            "message": "hi",
            "expires_at": expires_at.to_rfc3339(),
        });
        for (content, before) in [
            (member, before),
            (accepted, accepted_before),
            (partner, partner_before),
        ] {
            assert_eq!(
                serde_json::to_string(&content.context()).unwrap(),
                serde_json::to_string(&before).unwrap(),
                "{}",
                content.template()
            );
        }
    }

    /// What the outbox holds renders as the samples do: the nonce gives way
    /// to the link, and nothing else changes.
    #[test]
    fn the_stored_nonce_becomes_the_accept_url() {
        let EmailContent::MemberInvitation(rendered) =
            EmailContent::sample(TemplateName::MemberInvitation)
        else {
            unreachable!()
        };
        let stored = InvitationContext {
            link: InvitationLink::TokenNonce("00ff".into()),
            ..rendered.clone()
        };
        let context = with_accept_url(&serde_json::to_value(&stored).unwrap(), |nonce| {
            assert_eq!(nonce, vec![0x00, 0xff]);
            Ok("https://app.example.test/invitations/accept?token=sample".into())
        })
        .unwrap();
        assert_eq!(context, serde_json::to_value(&rendered).unwrap());
        let bad = json!({ TOKEN_NONCE_KEY: "zz" });
        assert!(with_accept_url(&bad, |_| Ok(String::new())).is_err());
        let plain = json!({"role": ""});
        assert_eq!(with_accept_url(&plain, |_| unreachable!()).unwrap(), plain);
    }

    #[test]
    fn each_template_has_its_samples() {
        for name in TemplateName::ALL {
            let samples = EmailContent::samples(name);
            assert_eq!(samples.len(), 2);
            assert!(samples.iter().all(|s| s.template() == name), "{name}");
            assert_ne!(samples[0], samples[1], "{name}");
        }
        let rendered = TemplateName::Reminder.sample_context();
        assert!(rendered.get(ACCEPT_URL_KEY).is_some());
        assert!(rendered.get(TOKEN_NONCE_KEY).is_none());
    }
}
