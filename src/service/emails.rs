//! The emails the use cases queue, and the context each template receives.
//! The outbox row holds everything needed to render the message later except
//! the token, which the delivery side derives again (see `domain::token`).

use serde_json::json;
use uuid::Uuid;

use super::Services;
use crate::domain::{InvitationToken, Locale, TemplateName, TokenNonce};
use crate::store::{BusinessRecord, InvitationRecord, NewEmail, UserRecord};

/// Template names as stored in the outbox.
pub const MEMBER_INVITATION: TemplateName = TemplateName::MemberInvitation;
pub const INVITATION_ACCEPTED: TemplateName = TemplateName::InvitationAccepted;
/// R32: the invitation again, same token and link, as a reminder.
pub const REMINDER: TemplateName = TemplateName::Reminder;

/// The context key carrying the token nonce (hex) to the delivery side; it is
/// removed before rendering and replaced by `accept_url`.
pub const TOKEN_NONCE_KEY: &str = "_token_nonce";

pub fn new_message_id(domain: &str) -> String {
    format!("<{}@{}>", Uuid::now_v7(), domain)
}

impl Services {
    pub(crate) fn member_invitation_email(
        &self,
        inv: &InvitationRecord,
        business: &BusinessRecord,
        inviter: &UserRecord,
    ) -> NewEmail {
        let recipient = inv
            .email
            .clone()
            .expect("member invitations have an address");
        NewEmail {
            id: Uuid::now_v7(),
            business_id: business.id,
            invitation_id: Some(inv.id),
            template: MEMBER_INVITATION,
            locale: inv.locale.clone(),
            recipient_name: None,
            context: json!({
                "inviter_name": inviter.name(),
                "business_name": business.name,
                "role": inv.role.as_ref().map(|r| r.as_str()),
                "message": inv.message,
                "expires_at": inv.expires_at.to_rfc3339(),
                "recipient_email": recipient.as_str(),
                TOKEN_NONCE_KEY: hex::encode(&inv.token_nonce.0),
            }),
            recipient,
            message_id: new_message_id(&self.settings.message_id_domain),
        }
    }

    /// A reminder carries what the invitation email carries (same context,
    /// same token), under its own template and Message-ID.
    pub(crate) fn reminder_email(
        &self,
        inv: &InvitationRecord,
        business: &BusinessRecord,
        inviter: &UserRecord,
    ) -> NewEmail {
        NewEmail {
            template: REMINDER,
            ..self.member_invitation_email(inv, business, inviter)
        }
    }

    pub(crate) fn invitation_accepted_email(
        &self,
        inv: &InvitationRecord,
        business: &BusinessRecord,
        inviter: &UserRecord,
        accepted_by: &UserRecord,
    ) -> NewEmail {
        NewEmail {
            id: Uuid::now_v7(),
            business_id: business.id,
            invitation_id: Some(inv.id),
            template: INVITATION_ACCEPTED,
            locale: inviter.locale.clone(),
            recipient: inviter.email.clone(),
            recipient_name: inviter.display_name.clone(),
            context: json!({
                "inviter_name": inviter.name(),
                "business_name": business.name,
                "accepted_by_name": accepted_by.name(),
                "accepted_by_email": accepted_by.email.as_str(),
                "role": inv.role.as_ref().map(|r| r.as_str()).unwrap_or_default(),
                // Set for partner acceptances (see `partners`).
                "partner_business_name": null,
            }),
            message_id: new_message_id(&self.settings.message_id_domain),
        }
    }

    /// The token of an invitation, derived again from its nonce.
    pub fn token_for(&self, invitation: Uuid, nonce: &TokenNonce) -> InvitationToken {
        InvitationToken::derive(&self.token_key, invitation, nonce)
    }

    /// The locale an invitation is written in: the invitee's if given, else the
    /// business's, else the configured default.
    pub(crate) fn invitation_locale(
        &self,
        requested: Option<Locale>,
        business: &BusinessRecord,
    ) -> Locale {
        requested
            .or_else(|| business.locale.clone())
            .unwrap_or_else(|| self.settings.default_locale.clone())
    }
}
