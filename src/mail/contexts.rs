//! What each email template receives: one struct per context, shared by the
//! service that queues an email and by `invited templates check` / `render`,
//! which render the samples below. A key a template uses and the service does
//! not fill fails the check, because both sides use the same struct.
//!
//! The outbox stores the context as the JSON these structs serialise to
//! (keys sorted: serde_json's map is ordered by key). Delivery renders that
//! stored JSON after [`prepare`]: the token's nonce gives way to the accept
//! and decline links (see [`InvitationLink`]), a partner email gets its
//! `partner_url`, and every email the configured [`Brand`] (R40, R41). Every
//! locale directory also holds `base.html` (the HTML layout) and
//! `helpers.txt` (macros): they read `locale`, which rendering adds to every
//! context, and the [`Brand`] keys.

use chrono::{DateTime, Utc};
use serde::{Serialize, Serializer};

use super::templates::TemplateName;

/// The key of the token's nonce in a stored context (see [`InvitationLink`]).
const TOKEN_NONCE_KEY: &str = "_token_nonce";
/// The keys of the links in a rendered context.
const ACCEPT_URL_KEY: &str = "accept_url";
const DECLINE_URL_KEY: &str = "decline_url";
const PARTNER_URL_KEY: &str = "partner_url";
/// The keys naming whom an email is sent on behalf of (see [`on_behalf_of`]).
const INVITER_NAME_KEY: &str = "inviter_name";
const INVITER_EMAIL_KEY: &str = "inviter_email";
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
    /// R44, R46: to the inviter, about an invitation email that did not get
    /// through.
    DeliveryFailed(DeliveryFailedContext),
    /// R51: to each owner or inviter of the business asked.
    JoinRequest(JoinRequestContext),
    /// R51: the outcome, to the user who asked.
    JoinRequestAnswered(JoinRequestAnsweredContext),
}

impl EmailContent {
    pub fn template(&self) -> TemplateName {
        match self {
            EmailContent::MemberInvitation(_) => TemplateName::MemberInvitation,
            EmailContent::Reminder(_) => TemplateName::Reminder,
            EmailContent::InvitationAccepted(_) => TemplateName::InvitationAccepted,
            EmailContent::PartnerInvitation(_) => TemplateName::PartnerInvitation,
            EmailContent::PartnerRequest(_) => TemplateName::PartnerRequest,
            EmailContent::DeliveryFailed(_) => TemplateName::DeliveryFailed,
            EmailContent::JoinRequest(_) => TemplateName::JoinRequest,
            EmailContent::JoinRequestAnswered(_) => TemplateName::JoinRequestAnswered,
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
            EmailContent::DeliveryFailed(c) => serde_json::to_value(c),
            EmailContent::JoinRequest(c) => serde_json::to_value(c),
            EmailContent::JoinRequestAnswered(c) => serde_json::to_value(c),
        };
        value.expect("an email context serialises")
    }

    /// The context as rendered: [`EmailContent::context`] with the keys of
    /// `brand`, as [`prepare`] adds them at send time.
    pub fn render_context(&self, brand: &Brand) -> serde_json::Value {
        let mut context = self.context();
        brand.add_to(&mut context);
        context
    }

    /// A context for `name` with every key filled, links included (as
    /// [`prepare`] leaves them), for `templates check`, `templates render`
    /// and tests.
    pub fn sample(name: TemplateName) -> EmailContent {
        let invitation = || InvitationContext {
            inviter_name: "Ada Lovelace".into(),
            inviter_email: "ada@example.test".into(),
            business_name: "Analytical Engines Ltd".into(),
            role: Some("manager".into()),
            message: Some("Looking forward to working with you!\nSee you on Monday.".into()),
            expires_at: sample_expiry(),
            time_zone: Some("America/Los_Angeles".into()),
            recipient_email: "charles@example.test".into(),
            link: InvitationLink::Links {
                accept_url: "https://app.example.test/invitations/accept?token=sample".into(),
                decline_url: "https://app.example.test/invitations/decline?token=sample".into(),
            },
        };
        let partner = || {
            PartnerContext {
            recipient_name: "Grace Hopper".into(),
            business_name: "Compiler Agency".into(),
            partner_business_name: "Analytical Engines Ltd".into(),
            inviter_name: "Ada Lovelace".into(),
            inviter_email: "ada@example.test".into(),
            message: Some("We would love to work with your team on our profiles.".into()),
            expires_at: sample_expiry(),
            time_zone: Some("Europe/Paris".into()),
            partner_url: Some(
                "https://app.example.test/partners/invitations/0190aaaa-0000-7000-8000-000000000000"
                    .into(),
            ),
        }
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
                partner_request: false,
            }),
            TemplateName::PartnerInvitation => EmailContent::PartnerInvitation(partner()),
            TemplateName::PartnerRequest => EmailContent::PartnerRequest(partner()),
            TemplateName::DeliveryFailed => EmailContent::DeliveryFailed(DeliveryFailedContext {
                inviter_name: "Ada Lovelace".into(),
                business_name: "Analytical Engines Ltd".into(),
                recipient_email: "charles@exmaple.test".into(),
                reason: UndeliveredReason::Bounced,
                detail: Some("smtp; 550 5.1.1 <charles@exmaple.test>: no such user".into()),
                expires_at: sample_expiry(),
                time_zone: Some("America/Los_Angeles".into()),
            }),
            TemplateName::JoinRequest => EmailContent::JoinRequest(JoinRequestContext {
                recipient_name: "Ada Lovelace".into(),
                requester_name: "Charles Babbage".into(),
                requester_email: "charles@example.test".into(),
                business_name: "Analytical Engines Ltd".into(),
                message: Some("I build difference engines.\nMay I join the team?".into()),
                expires_at: sample_expiry(),
                time_zone: Some("Europe/London".into()),
                join_request_url:
                    "https://app.example.test/join-requests/0190bbbb-0000-7000-8000-000000000000"
                        .into(),
            }),
            TemplateName::JoinRequestAnswered => {
                EmailContent::JoinRequestAnswered(JoinRequestAnsweredContext {
                    requester_name: "Charles Babbage".into(),
                    business_name: "Analytical Engines Ltd".into(),
                    approved: true,
                    role: Some("manager".into()),
                })
            }
        }
    }

    /// [`EmailContent::sample`] and the variants of it that take the
    /// template's other branches: no personal message and no time zone, or
    /// a partner acceptance of an invitation and of a request (no role, the
    /// partner named). `check` renders them all.
    pub fn samples(name: TemplateName) -> Vec<EmailContent> {
        let sample = EmailContent::sample(name);
        let mut variant = sample.clone();
        let mut more = Vec::new();
        match &mut variant {
            EmailContent::MemberInvitation(c) | EmailContent::Reminder(c) => {
                c.message = None;
                c.time_zone = None;
            }
            EmailContent::PartnerInvitation(c) | EmailContent::PartnerRequest(c) => {
                c.message = None;
                c.time_zone = None;
            }
            EmailContent::DeliveryFailed(c) => {
                c.reason = UndeliveredReason::Failed;
                c.detail = None;
                c.time_zone = None;
                let mut complained = c.clone();
                complained.reason = UndeliveredReason::Complained;
                complained.time_zone = Some("Asia/Taipei".into());
                more.push(EmailContent::DeliveryFailed(complained));
            }
            EmailContent::JoinRequest(c) => {
                c.message = None;
                c.time_zone = None;
            }
            EmailContent::JoinRequestAnswered(c) => {
                c.approved = false;
                c.role = None;
            }
            EmailContent::InvitationAccepted(c) => {
                c.role = String::new();
                c.partner_business_name = Some("Compiler Agency".into());
                let mut request = c.clone();
                request.partner_request = true;
                more.push(EmailContent::InvitationAccepted(request));
            }
        }
        let mut all = vec![sample, variant];
        all.extend(more);
        all
    }
}

fn sample_expiry() -> DateTime<Utc> {
    DateTime::parse_from_rfc3339("2026-11-29T10:00:00Z")
        .expect("a valid timestamp")
        .with_timezone(&Utc)
}

/// The samples as JSON, where tests and the CLI want a context to edit.
impl TemplateName {
    /// The context of [`EmailContent::sample`], as rendered (with
    /// [`Brand::sample`]).
    pub fn sample_context(self) -> serde_json::Value {
        EmailContent::sample(self).render_context(&Brand::sample())
    }

    /// The contexts of [`EmailContent::samples`], as rendered.
    pub fn sample_contexts(self) -> Vec<serde_json::Value> {
        EmailContent::samples(self)
            .iter()
            .map(|c| c.render_context(&Brand::sample()))
            .collect()
    }
}

/// `member_invitation` and `reminder`: the invitation to join a business.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct InvitationContext {
    pub inviter_name: String,
    /// With `inviter_name`, the `Reply-To` when `mail.reply_to_inviter` is
    /// on (R41; see [`on_behalf_of`]).
    pub inviter_email: String,
    pub business_name: String,
    /// The invited role's key; the templates name the preset roles.
    pub role: Option<String>,
    /// The inviter's personal message, shown as typed (escaped in HTML, R30)
    /// and set apart as a quote (R40).
    pub message: Option<String>,
    #[serde(serialize_with = "rfc3339")]
    pub expires_at: DateTime<Utc>,
    /// The recipient's IANA time zone, for the `datetime` filter (R41): of
    /// the registered user with the invited address, if any; `null` writes
    /// the expiry in UTC. Rows queued before this key existed lack it, which
    /// the filter reads as `null`.
    pub time_zone: Option<String>,
    pub recipient_email: String,
    #[serde(flatten)]
    pub link: InvitationLink,
}

/// How the accept and decline links travel. The outbox never holds a
/// token: it holds the nonce the token is derived from (`_token_nonce`,
/// hex), and delivery replaces it with the links (`accept_url`,
/// `decline_url`, R40) just before rendering (see `domain::token`).
#[derive(Clone, Debug, PartialEq, Serialize)]
#[serde(untagged)]
pub enum InvitationLink {
    TokenNonce {
        #[serde(rename = "_token_nonce")]
        nonce: String,
    },
    Links {
        accept_url: String,
        decline_url: String,
    },
}

impl InvitationLink {
    pub fn nonce(nonce: &[u8]) -> InvitationLink {
        InvitationLink::TokenNonce {
            nonce: hex::encode(nonce),
        }
    }
}

/// What the configuration adds to every email at send time (R41): the
/// product's name (in the body and the footer) and, when configured, the
/// support address (in the footer).
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Brand {
    /// `mail.product_name`.
    pub product_name: String,
    /// `mail.support_address`; `null` leaves it out of the footer.
    pub support_address: Option<String>,
}

impl Brand {
    /// The brand of `templates check` and the samples.
    pub fn sample() -> Brand {
        Brand {
            product_name: "Analytical Invitations".into(),
            support_address: Some("help@example.test".into()),
        }
    }

    fn add_to(&self, context: &mut serde_json::Value) {
        if let (Some(map), serde_json::Value::Object(brand)) = (
            context.as_object_mut(),
            serde_json::to_value(self).expect("a brand serialises"),
        ) {
            map.extend(brand);
        }
    }
}

/// The links delivery derives from an invitation's token (R40).
pub struct TokenLinks {
    pub accept_url: String,
    pub decline_url: String,
}

/// A stored context made ready to render (R40, R41):
///
/// * the token's nonce, if it has one, replaced by the accept and decline
///   links `links` makes from the nonce's bytes;
/// * `partner_url` set when given (delivery gives it to partner emails);
/// * the keys of `brand` added.
///
/// Works on the stored JSON, so rows queued by older versions render as they
/// are.
pub fn prepare(
    stored: &serde_json::Value,
    brand: &Brand,
    partner_url: Option<String>,
    links: impl FnOnce(Vec<u8>) -> Result<TokenLinks, String>,
) -> Result<serde_json::Value, String> {
    let mut context = stored.clone();
    if let Some(map) = context.as_object_mut() {
        if let Some(nonce) = map.remove(TOKEN_NONCE_KEY) {
            let nonce = nonce
                .as_str()
                .and_then(|n| hex::decode(n).ok())
                .ok_or_else(|| "stored token nonce is not hex".to_string())?;
            let links = links(nonce)?;
            map.insert(ACCEPT_URL_KEY.into(), links.accept_url.into());
            map.insert(DECLINE_URL_KEY.into(), links.decline_url.into());
        }
        if let Some(url) = partner_url {
            map.insert(PARTNER_URL_KEY.into(), url.into());
        }
    }
    brand.add_to(&mut context);
    Ok(context)
}

/// The inviter an email is sent on behalf of, as (name, address), read from
/// a stored context: the member invitation, its reminders and the partner
/// emails carry `inviter_email`; the "Invitation accepted" email goes to the
/// inviter and does not. Rows queued before the key existed give `None`.
pub fn on_behalf_of(stored: &serde_json::Value) -> Option<(String, String)> {
    let name = stored.get(INVITER_NAME_KEY)?.as_str()?;
    let email = stored.get(INVITER_EMAIL_KEY)?.as_str()?;
    Some((name.to_owned(), email.to_owned()))
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
    /// Whether what was accepted is a partner request (R20, direction
    /// `request`) rather than a partner invitation, so the email calls it by
    /// its name. Rows queued before this key existed lack it (`is defined`).
    pub partner_request: bool,
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
    /// See [`InvitationContext::inviter_email`].
    pub inviter_email: String,
    pub message: Option<String>,
    #[serde(serialize_with = "rfc3339")]
    pub expires_at: DateTime<Utc>,
    /// The recipient's IANA time zone (see [`InvitationContext::time_zone`]).
    pub time_zone: Option<String>,
    /// `links.partner_url` with the invitation's id (R40): never stored
    /// (`None`, left out), added by delivery ([`prepare`]); the samples
    /// carry it.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub partner_url: Option<String>,
}

/// `delivery_failed` (R44, R46), to the inviter, in their locale and zone:
/// the member invitation email to `recipient_email` did not get through, and
/// the address can be corrected (`PATCH /v1/invitations/{id}`) without
/// using another invitation of the day. No link: where to correct it is the
/// app's page, which the daemon does not know; the email says to do it in
/// the product.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct DeliveryFailedContext {
    pub inviter_name: String,
    pub business_name: String,
    /// The invited address the email did not reach.
    pub recipient_email: String,
    pub reason: UndeliveredReason,
    /// What the receiving side said (the SMTP reply or the bounce's
    /// diagnostic; nothing for a complaint), at most
    /// [`MAX_DETAIL_CHARS`] characters; `null` when nothing was said.
    pub detail: Option<String>,
    /// The invitation's expiry: it can be corrected until then.
    #[serde(serialize_with = "rfc3339")]
    pub expires_at: DateTime<Utc>,
    /// The inviter's IANA time zone (R41), `null` for UTC.
    pub time_zone: Option<String>,
}

/// `join_request` (R51), to the owner and each member with
/// `members.invite`, in their locale and zone: "{requester} asked to join
/// {business}", with the requester's message and a button to
/// `links.join_request_url` (filled in when the email is queued).
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct JoinRequestContext {
    pub recipient_name: String,
    pub requester_name: String,
    pub requester_email: String,
    pub business_name: String,
    /// The requester's message, shown as typed (escaped in HTML, R30).
    pub message: Option<String>,
    /// The request's expiry.
    #[serde(serialize_with = "rfc3339")]
    pub expires_at: DateTime<Utc>,
    /// The recipient's IANA time zone (R41), `null` for UTC.
    pub time_zone: Option<String>,
    /// `links.join_request_url` with the request's id.
    pub join_request_url: String,
}

/// `join_request_answered` (R51), to the user who asked, in their locale.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct JoinRequestAnsweredContext {
    pub requester_name: String,
    pub business_name: String,
    /// Approved (a member now) or denied.
    pub approved: bool,
    /// The role the approver chose; `null` when denied.
    pub role: Option<String>,
}

/// How much of a remote server's answer `delivery_failed` quotes.
pub const MAX_DETAIL_CHARS: usize = 300;

/// Why an invitation email did not get through.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum UndeliveredReason {
    /// Given up after its attempts (R27): refused or never accepted.
    Failed,
    /// Accepted, then a hard bounce came back (R44).
    Bounced,
    /// The recipient reported it (R44).
    Complained,
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
    /// before these structs existed, byte for byte, plus the keys added
    /// since (`inviter_email`, `time_zone`, `partner_request`).
    #[test]
    fn stored_contexts_keep_their_bytes() {
        let expires_at = sample_expiry();
        let member = EmailContent::MemberInvitation(InvitationContext {
            inviter_name: "Ada".into(),
            inviter_email: "ada@x.test".into(),
            business_name: "Acme".into(),
            role: None,
            message: None,
            expires_at,
            time_zone: None,
            recipient_email: "c@x.test".into(),
            link: InvitationLink::nonce(&[0x00, 0xff]),
        });
        let before = json!({
            "inviter_name": "Ada",
            "inviter_email": "ada@x.test",
            "business_name": "Acme",
            "role": null,
            "message": null,
            "expires_at": expires_at.to_rfc3339(),
            "time_zone": null,
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
            partner_request: true,
        });
        let accepted_before = json!({
            "inviter_name": "Ada",
            "business_name": "Acme",
            "accepted_by_name": "Charles",
            "accepted_by_email": "c@x.test",
            "role": "",
            "partner_business_name": "Globex",
            "partner_request": true,
        });
        let partner = EmailContent::PartnerRequest(PartnerContext {
            recipient_name: "Grace".into(),
            business_name: "Globex".into(),
            partner_business_name: "Acme".into(),
            inviter_name: "Ada".into(),
            inviter_email: "ada@x.test".into(),
            message: Some("hi".into()),
            expires_at,
            time_zone: Some("Europe/Paris".into()),
            partner_url: None,
        });
        let partner_before = json!({
            "recipient_name": "Grace",
            "business_name": "Globex",
            "partner_business_name": "Acme",
            "inviter_name": "Ada",
            "inviter_email": "ada@x.test",
            "message": "hi",
            "expires_at": expires_at.to_rfc3339(),
            "time_zone": "Europe/Paris",
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
    /// to the links, the partner link and the brand are added, and nothing
    /// else changes.
    #[test]
    fn prepare_turns_the_stored_row_into_the_rendered_context() {
        let EmailContent::MemberInvitation(rendered) =
            EmailContent::sample(TemplateName::MemberInvitation)
        else {
            unreachable!()
        };
        let stored = InvitationContext {
            link: InvitationLink::nonce(&[0x00, 0xff]),
            ..rendered.clone()
        };
        let brand = Brand::sample();
        let context = prepare(
            &serde_json::to_value(&stored).unwrap(),
            &brand,
            None,
            |nonce| {
                assert_eq!(nonce, vec![0x00, 0xff]);
                Ok(TokenLinks {
                    accept_url: "https://app.example.test/invitations/accept?token=sample".into(),
                    decline_url: "https://app.example.test/invitations/decline?token=sample".into(),
                })
            },
        )
        .unwrap();
        assert_eq!(
            context,
            EmailContent::MemberInvitation(rendered).render_context(&brand)
        );

        let EmailContent::PartnerInvitation(rendered) =
            EmailContent::sample(TemplateName::PartnerInvitation)
        else {
            unreachable!()
        };
        let stored = PartnerContext {
            partner_url: None,
            ..rendered.clone()
        };
        let stored = serde_json::to_value(&stored).unwrap();
        assert!(stored.get(PARTNER_URL_KEY).is_none(), "{stored}");
        let context = prepare(
            &stored,
            &brand,
            rendered.partner_url.clone(),
            |_| unreachable!(),
        )
        .unwrap();
        assert_eq!(
            context,
            EmailContent::PartnerInvitation(rendered).render_context(&brand)
        );

        let bad = json!({ TOKEN_NONCE_KEY: "zz" });
        assert!(prepare(&bad, &brand, None, |_| unreachable!()).is_err());
        let plain = json!({"role": ""});
        assert_eq!(
            prepare(&plain, &brand, None, |_| unreachable!()).unwrap(),
            json!({"role": "", "product_name": "Analytical Invitations", "support_address": "help@example.test"})
        );
    }

    #[test]
    fn emails_on_an_inviters_behalf_name_the_inviter() {
        for name in [
            TemplateName::MemberInvitation,
            TemplateName::Reminder,
            TemplateName::PartnerInvitation,
            TemplateName::PartnerRequest,
        ] {
            assert_eq!(
                on_behalf_of(&EmailContent::sample(name).context()),
                Some(("Ada Lovelace".into(), "ada@example.test".into())),
                "{name}"
            );
        }
        let accepted = EmailContent::sample(TemplateName::InvitationAccepted).context();
        assert_eq!(on_behalf_of(&accepted), None);
    }

    #[test]
    fn each_template_has_its_samples() {
        for name in TemplateName::ALL {
            let samples = EmailContent::samples(name);
            assert!(samples.len() >= 2, "{name}");
            assert!(samples.iter().all(|s| s.template() == name), "{name}");
            assert_ne!(samples[0], samples[1], "{name}");
        }
        let rendered = TemplateName::Reminder.sample_context();
        assert!(rendered.get(ACCEPT_URL_KEY).is_some());
        assert!(rendered.get(DECLINE_URL_KEY).is_some());
        assert!(rendered.get(TOKEN_NONCE_KEY).is_none());
        assert!(rendered.get("product_name").is_some());
        let partner = TemplateName::PartnerRequest.sample_context();
        assert!(partner.get(PARTNER_URL_KEY).is_some());
    }
}
