//! The emails the use cases queue, each with its typed context (see
//! `mail::contexts`). The outbox row holds everything needed to render the
//! message later except the token, which the delivery side derives again (see
//! `domain::token`).

use uuid::Uuid;

use super::Services;
use crate::domain::{BusinessId, InvitationId, InvitationToken, Locale, TimeZone, TokenNonce};
use crate::mail::EmailContent;
use crate::mail::contexts::{
    AcceptedContext, DeliveryFailedContext, InvitationContext, InvitationLink, MAX_DETAIL_CHARS,
    UndeliveredReason,
};
use crate::store::{BusinessRecord, InvitationRecord, NewEmail, UserRecord};

pub fn new_message_id(domain: &str) -> String {
    format!("<{}@{}>", Uuid::now_v7(), domain)
}

/// An outbox row's id and its Message-ID, fixed when it is queued. Made
/// apart from the email when a create mints them before its transaction
/// opens (nothing in them needs the database).
pub(crate) struct EmailIds {
    pub id: Uuid,
    pub message_id: String,
}

impl EmailIds {
    pub(crate) fn new(message_id_domain: &str) -> EmailIds {
        EmailIds {
            id: Uuid::now_v7(),
            message_id: new_message_id(message_id_domain),
        }
    }
}

/// Who an email goes to, and for which business and invitation.
pub(crate) struct Envelope {
    pub business: BusinessId,
    pub invitation: Option<InvitationId>,
    pub locale: Locale,
    pub recipient: crate::domain::Email,
    pub recipient_name: Option<String>,
}

impl Services {
    /// The outbox row of one email: its template and context come from
    /// `content`, so they always match.
    pub(crate) fn new_email(&self, envelope: Envelope, content: EmailContent) -> NewEmail {
        let ids = EmailIds::new(&self.settings.message_id_domain);
        email_with_ids(envelope, content, ids)
    }

    /// `time_zone`: the invitee's, when a registered user has the invited
    /// address (`StoreTx::time_zone_by_email`; R41).
    pub(crate) fn member_invitation_email(
        &self,
        inv: &InvitationRecord,
        business: &BusinessRecord,
        inviter: &UserRecord,
        time_zone: Option<TimeZone>,
    ) -> NewEmail {
        let ids = EmailIds::new(&self.settings.message_id_domain);
        member_invitation_email_with_ids(inv, business, inviter, time_zone, ids)
    }

    /// A reminder carries what the invitation email carries (same context,
    /// same token), under its own template and Message-ID; the invitee's
    /// time zone is looked up again, since they may have registered since.
    pub(crate) fn reminder_email(
        &self,
        inv: &InvitationRecord,
        business: &BusinessRecord,
        inviter: &UserRecord,
        time_zone: Option<TimeZone>,
    ) -> NewEmail {
        let (envelope, context) = invitation_email(inv, business, inviter, time_zone);
        self.new_email(envelope, EmailContent::Reminder(context))
    }

    pub(crate) fn invitation_accepted_email(
        &self,
        inv: &InvitationRecord,
        business: &BusinessRecord,
        inviter: &UserRecord,
        accepted_by: &UserRecord,
    ) -> NewEmail {
        let role = inv.role.as_ref().map(|r| r.as_str().to_string());
        self.accepted_email(inv, business, inviter, accepted_by, role, None)
    }

    /// "Invitation accepted" to the inviter, in their locale: of a member
    /// invitation (`role` set), or of a partner invitation or request (the
    /// accepting business named as `partner_business_name`, no role; which
    /// of the two it was comes from the invitation's kind).
    pub(crate) fn accepted_email(
        &self,
        inv: &InvitationRecord,
        business: &BusinessRecord,
        inviter: &UserRecord,
        accepted_by: &UserRecord,
        role: Option<String>,
        partner_business_name: Option<String>,
    ) -> NewEmail {
        self.new_email(
            Envelope {
                business: business.id,
                invitation: Some(inv.id),
                locale: inviter.locale.clone(),
                recipient: inviter.email.clone(),
                recipient_name: inviter.display_name.clone(),
            },
            EmailContent::InvitationAccepted(AcceptedContext {
                inviter_name: inviter.name().to_string(),
                business_name: business.name.clone(),
                accepted_by_name: accepted_by.name().to_string(),
                accepted_by_email: accepted_by.email.as_str().to_string(),
                role: role.unwrap_or_default(),
                partner_business_name,
                partner_request: inv.kind == crate::domain::InvitationKind::PartnerRequest,
            }),
        )
    }

    /// R44, R46: "We couldn't deliver your invitation to …", to the inviter
    /// in their locale and time zone, naming the address that failed.
    pub(crate) fn delivery_failed_email(
        &self,
        inv: &InvitationRecord,
        business_name: &str,
        inviter: &UserRecord,
        reason: UndeliveredReason,
        detail: Option<&str>,
    ) -> NewEmail {
        let recipient_email = inv
            .email
            .as_ref()
            .map(|e| e.as_str().to_string())
            .unwrap_or_default();
        self.new_email(
            Envelope {
                business: inv.business_id,
                invitation: Some(inv.id),
                locale: inviter.locale.clone(),
                recipient: inviter.email.clone(),
                recipient_name: inviter.display_name.clone(),
            },
            EmailContent::DeliveryFailed(DeliveryFailedContext {
                inviter_name: inviter.name().to_string(),
                business_name: business_name.to_string(),
                recipient_email,
                reason,
                detail: detail
                    .map(|d| d.trim().chars().take(MAX_DETAIL_CHARS).collect::<String>())
                    .filter(|d| !d.is_empty()),
                expires_at: inv.expires_at,
                time_zone: inviter.time_zone.as_ref().map(|z| z.as_str().to_string()),
            }),
        )
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

/// [`Services::new_email`] with ids made beforehand.
fn email_with_ids(envelope: Envelope, content: EmailContent, ids: EmailIds) -> NewEmail {
    NewEmail {
        id: ids.id,
        business_id: envelope.business,
        invitation_id: envelope.invitation,
        join_request_id: None,
        template: content.template(),
        locale: envelope.locale,
        recipient: envelope.recipient,
        recipient_name: envelope.recipient_name,
        context: content.context(),
        message_id: ids.message_id,
    }
}

/// [`Services::member_invitation_email`] with ids made beforehand (a
/// create mints them before its transaction).
pub(crate) fn member_invitation_email_with_ids(
    inv: &InvitationRecord,
    business: &BusinessRecord,
    inviter: &UserRecord,
    time_zone: Option<TimeZone>,
    ids: EmailIds,
) -> NewEmail {
    let (envelope, context) = invitation_email(inv, business, inviter, time_zone);
    email_with_ids(envelope, EmailContent::MemberInvitation(context), ids)
}

/// The member invitation (and its reminders): to the invited address, with
/// the token's nonce in place of the link.
fn invitation_email(
    inv: &InvitationRecord,
    business: &BusinessRecord,
    inviter: &UserRecord,
    time_zone: Option<TimeZone>,
) -> (Envelope, InvitationContext) {
    let recipient = inv
        .email
        .clone()
        .expect("member invitations have an address");
    let context = InvitationContext {
        inviter_name: inviter.name().to_string(),
        inviter_email: inviter.email.as_str().to_string(),
        business_name: business.name.clone(),
        role: inv.role.as_ref().map(|r| r.as_str().to_string()),
        message: inv.message.clone(),
        expires_at: inv.expires_at,
        time_zone: time_zone.map(|z| z.as_str().to_string()),
        recipient_email: recipient.as_str().to_string(),
        link: InvitationLink::nonce(&inv.token_nonce.0),
    };
    let envelope = Envelope {
        business: business.id,
        invitation: Some(inv.id),
        locale: inv.locale.clone(),
        recipient,
        recipient_name: None,
    };
    (envelope, context)
}
