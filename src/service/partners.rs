//! Partners (R19–R21): create a partner invitation or request by the other
//! business's public Business ID, tell its owner and managers, answer it (the
//! commands run through the invitation's actor, see `invitations::execute`),
//! list partnerships and end one with every grant it carried (R23).

use super::access::grants_removed;
use super::emails::Envelope;
use super::{ServiceResult, Services, event, lock_business, require_member};
use crate::domain::access::{Grantee, InvitationGrant, may_grant};
use crate::domain::members::check_capability;
use crate::domain::partners::{
    Direction, PairState, check_manages_partners, check_partner_target, manages_partners,
};
use crate::domain::{
    BusinessId, Capability, DomainError, InvitationId, InvitationKind, PartnershipId,
    PublicBusinessId, TokenNonce, UserId,
};
use crate::events::catalog::{
    Event, GrantCause, InvitationCreated, PartnershipEnded, PartnershipEstablished,
};
use crate::mail::EmailContent;
use crate::mail::contexts::PartnerContext;
use crate::store::{
    BusinessRecord, InvitationRecord, MemberRecord, NewEmail, NewInvitation, NewPartnership,
    PartnershipRecord, StoreTx, UserRecord,
};

pub struct CreatePartner {
    pub business: BusinessId,
    pub actor: UserId,
    /// The other business's public Business ID.
    pub partner: PublicBusinessId,
    pub direction: Direction,
    pub message: Option<String>,
    /// Invite: profiles of the sender, for the partner. Request: profiles of
    /// the partner, asked for the sender; applied when a manager there accepts.
    pub grants: Vec<InvitationGrant>,
    /// The terminal invitation this one renews (R31), if any.
    pub renewed_from: Option<InvitationId>,
}

impl Services {
    /// R19, R20: one partner invitation, counted towards the quota under the
    /// sender's row lock like any invitation (R8), and the partner request
    /// email to the receiving business's owner and each of its managers.
    pub async fn create_partner_invitation(
        &self,
        req: CreatePartner,
    ) -> ServiceResult<InvitationRecord> {
        let mut tx = self.store.begin().await?;
        let sender = lock_business(tx.as_mut(), req.business).await?;
        let me = require_member(tx.as_mut(), req.business, &req.actor).await?;
        check_capability(
            &self.catalog(sender.role_preset),
            &me.role,
            Capability::MembersInvite,
        )?;
        let target = tx
            .get_business_by_public_id(&req.partner)
            .await?
            .ok_or_else(|| DomainError::NotFound("no business has this Business ID".to_string()))?;
        let pair = PairState {
            already_partners: tx.live_partnership(sender.id, target.id).await?.is_some(),
            pending_between: tx
                .pending_partner_invitation_between(sender.id, target.id)
                .await?,
        };
        check_partner_target(sender.id, target.id, pair)?;
        let profile_business = match req.direction {
            Direction::Invite => sender.id,
            Direction::Request => target.id,
        };
        self.check_invitation_grants(tx.as_mut(), profile_business, &req.grants)
            .await?;
        let now = self.check_quota(tx.as_mut(), req.business, 1).await?;

        let inviter = tx
            .get_user(&req.actor)
            .await?
            .ok_or_else(|| DomainError::NotFound(format!("user {}", req.actor)))?;
        let id = InvitationId::new();
        let nonce = TokenNonce::generate();
        // Partner invitations are answered by id, not by link; the token is
        // kept only because every invitation row has one, and never sent.
        let token = self.token_for(id.0, &nonce);
        let kind = req.direction.kind();
        tx.insert_invitation(&NewInvitation {
            source_domain: None,
            id,
            business_id: sender.id,
            kind,
            invited_by: req.actor.clone(),
            email: None,
            partner_business_id: Some(target.id),
            role: None,
            message: req.message,
            locale: self.invitation_locale(None, &target),
            grants: req.grants.clone(),
            token_hash: token.hash(),
            token_nonce: nonce,
            created_at: now,
            expires_at: now
                + chrono::Duration::from_std(self.settings.ttl).unwrap_or(chrono::Duration::MAX),
            renewed_from: req.renewed_from,
            // Partner invitations are answered in the app by id, never by a
            // link: no delivery choice, no metadata (R38, R39 are about
            // member invitations).
            delivery_mode: crate::domain::DeliveryMode::Email,
            metadata: crate::domain::Metadata::default(),
        })
        .await?;
        if let Some(old) = req.renewed_from {
            tx.insert_event(&super::invitations::renewed_event(
                sender.id, old, &req.actor, id,
            ))
            .await?;
        }
        tx.insert_event(&event(
            sender.id,
            Some(id),
            Some(&req.actor),
            None,
            Event::InvitationCreated(InvitationCreated::partner(kind, target.id)),
        ))
        .await?;
        let record = tx
            .lock_invitation(id)
            .await?
            .expect("inserted in this transaction");
        self.queue_partner_emails(tx.as_mut(), &record, &sender, &target, &inviter)
            .await?;
        tx.commit().await?;
        Ok(self.store.get_invitation(id).await?.unwrap_or(record))
    }

    /// R20: "You have a new partner request!" to the receiving business's
    /// owner and every member with `partners.manage`, each in their own
    /// locale; nobody else there. Used on creation and on resend.
    pub(crate) async fn queue_partner_emails(
        &self,
        tx: &mut dyn StoreTx,
        inv: &InvitationRecord,
        sender: &BusinessRecord,
        target: &BusinessRecord,
        inviter: &UserRecord,
    ) -> ServiceResult<()> {
        let catalog = self.catalog(target.role_preset);

        for m in tx.members_of_business(target.id).await? {
            if !manages_partners(&catalog, &m.role) {
                continue;
            }
            let Some(user) = tx.get_user(&m.user_id).await? else {
                continue;
            };
            let context = PartnerContext {
                recipient_name: user.name().to_string(),
                business_name: target.name.clone(),
                partner_business_name: sender.name.clone(),
                inviter_name: inviter.name().to_string(),
                inviter_email: inviter.email.as_str().to_string(),
                message: inv.message.clone(),
                expires_at: inv.expires_at,
                time_zone: user.time_zone.map(|z| z.as_str().to_string()),
                partner_url: None,
            };
            let content = match inv.kind {
                InvitationKind::PartnerRequest => EmailContent::PartnerRequest(context),
                _ => EmailContent::PartnerInvitation(context),
            };
            let envelope = Envelope {
                business: sender.id,
                invitation: Some(inv.id),
                locale: user.locale.clone(),
                recipient: user.email.clone(),
                recipient_name: user.display_name.clone(),
            };
            tx.enqueue_email(&self.new_email(envelope, content)).await?;
        }
        Ok(())
    }

    /// R21: the receiving business and the answering member, if `actor` may
    /// answer a partner invitation: its owner or a member with
    /// `partners.manage`.
    pub(crate) async fn partner_answerer(
        &self,
        tx: &mut dyn StoreTx,
        inv: &InvitationRecord,
        actor: &UserId,
    ) -> ServiceResult<(BusinessRecord, MemberRecord)> {
        let receiving = partner_of(inv)?;
        let target = tx
            .read_business(receiving)
            .await?
            .ok_or_else(|| DomainError::NotFound(format!("business {receiving}")))?;
        let me = tx.get_member(receiving, actor).await?.ok_or_else(|| {
            DomainError::forbidden(format!(
                "user {actor} is not a member of the business this invitation is addressed to"
            ))
        })?;
        check_manages_partners(&self.catalog(target.role_preset), &me.role)?;
        Ok((target, me))
    }

    /// R15 for partner accepts: the receiving business's policy, applied to
    /// the accepting manager's role there.
    pub(crate) fn check_partner_mfa(
        &self,
        target: &BusinessRecord,
        answerer: &MemberRecord,
        mfa_verified: bool,
    ) -> ServiceResult<()> {
        let policy = target.require_2fa;
        policy.check_accept(
            &self.catalog(target.role_preset),
            &answerer.role,
            mfa_verified,
        )?;
        Ok(())
    }

    /// R21, inside the accept's transaction: the partnership for both sides,
    /// with an event on each.
    pub(crate) async fn establish_partnership(
        &self,
        tx: &mut dyn StoreTx,
        inv: &InvitationRecord,
        accepter: &UserId,
    ) -> ServiceResult<PartnershipRecord> {
        let receiving = partner_of(inv)?;
        let direction = Direction::of(inv.kind).expect("a partner invitation");
        let id = PartnershipId::new();
        tx.insert_partnership(&NewPartnership {
            id,
            business_id: inv.business_id,
            partner_business_id: receiving,
            invitation_id: Some(inv.id),
            direction,
        })
        .await?;
        for (me, other) in [(inv.business_id, receiving), (receiving, inv.business_id)] {
            tx.insert_event(&event(
                me,
                Some(inv.id),
                Some(accepter),
                None,
                Event::PartnershipEstablished(PartnershipEstablished {
                    partnership_id: id,
                    partner_business_id: other,
                    direction: inv.kind,
                    invited_by: inv.invited_by.clone(),
                }),
            ))
            .await?;
        }
        tx.live_partnership(inv.business_id, receiving)
            .await?
            .ok_or_else(|| DomainError::NotFound("partnership".into()).into())
    }

    /// R13, inside the accept's transaction, after the membership or the
    /// partnership: the grants the invitation carries. Member: the business's
    /// profiles for the new member, granted by the inviter. Partner invite:
    /// the sender's profiles for the partner, granted by the inviter. Partner
    /// request: the receiver's profiles for the requester, granted by the
    /// member who accepts, who must be allowed to grant.
    pub(crate) async fn apply_accepted_grants(
        &self,
        tx: &mut dyn StoreTx,
        inv: &InvitationRecord,
        accepter: &UserId,
    ) -> ServiceResult<()> {
        if inv.grants.is_empty() {
            return Ok(());
        }
        let (profile_business, grantee, granted_by) = match Direction::of(inv.kind) {
            None => (
                inv.business_id,
                Grantee::User(accepter.clone()),
                inv.invited_by.clone(),
            ),
            Some(Direction::Invite) => (
                inv.business_id,
                Grantee::Business(partner_of(inv)?),
                inv.invited_by.clone(),
            ),
            Some(Direction::Request) => {
                let receiving = partner_of(inv)?;
                let target = tx
                    .read_business(receiving)
                    .await?
                    .ok_or_else(|| DomainError::NotFound(format!("business {receiving}")))?;
                let role = tx.get_member(receiving, accepter).await?.map(|m| m.role);
                if !may_grant(&self.catalog(target.role_preset), role.as_ref()) {
                    return Err(DomainError::forbidden(
                        "this request asks for access to profiles; only the owner or a manager who may grant access can accept it",
                    )
                    .into());
                }
                (
                    receiving,
                    Grantee::Business(inv.business_id),
                    accepter.clone(),
                )
            }
        };
        self.apply_invitation_grants(
            tx,
            Some(inv.id),
            &inv.grants,
            profile_business,
            grantee,
            &granted_by,
        )
        .await?;
        Ok(())
    }

    /// R21/R22: "Invitation accepted" to the inviting user, naming the
    /// business that accepted.
    pub(crate) fn partner_accepted_email(
        &self,
        inv: &InvitationRecord,
        sender: &BusinessRecord,
        receiving: &BusinessRecord,
        inviter: &UserRecord,
        accepted_by: &UserRecord,
    ) -> NewEmail {
        let receiving = Some(receiving.name.clone());
        self.accepted_email(inv, sender, inviter, accepted_by, None, receiving)
    }

    /// The live partnerships of a business, for its members.
    pub async fn list_partnerships(
        &self,
        business: BusinessId,
        actor: &UserId,
    ) -> ServiceResult<Vec<PartnershipRecord>> {
        let mut tx = self.store.begin().await?;
        tx.read_business(business)
            .await?
            .ok_or_else(|| DomainError::NotFound(format!("business {business}")))?;
        require_member(tx.as_mut(), business, actor).await?;
        Ok(tx.list_partnerships(business).await?)
    }

    /// Either side ends a partnership (its owner or a member with
    /// `partners.manage`); every grant either side gave the other, and every
    /// grant derived from those, goes in the same transaction (R23).
    /// `partner` is the other business's id or the partnership's id.
    pub async fn end_partnership(
        &self,
        business: BusinessId,
        partner: uuid::Uuid,
        actor: &UserId,
    ) -> ServiceResult<()> {
        let mut tx = self.store.begin().await?;
        let b = tx
            .read_business(business)
            .await?
            .ok_or_else(|| DomainError::NotFound(format!("business {business}")))?;
        let me = require_member(tx.as_mut(), business, actor).await?;
        check_manages_partners(&self.catalog(b.role_preset), &me.role)?;
        let found = tx
            .list_partnerships(business)
            .await?
            .into_iter()
            .find(|p| p.id.0 == partner || p.other(business).0.0 == partner)
            .ok_or_else(|| DomainError::NotFound(format!("partner {partner}")))?;
        let other = found.other(business).0;
        // Both rows, in id order: grant changes lock the row of the business
        // that owns the profile, so this waits for (or excludes) any of them.
        let (first, second) = if business < other {
            (business, other)
        } else {
            (other, business)
        };
        lock_business(tx.as_mut(), first).await?;
        lock_business(tx.as_mut(), second).await?;
        let Some(live) = tx.live_partnership(business, other).await? else {
            return Err(DomainError::NotFound(format!("partner {partner}")).into());
        };
        let removed = tx.delete_grants_between(business, other).await?;
        grants_removed(
            tx.as_mut(),
            &removed,
            Some(actor),
            GrantCause::PartnershipEnded,
        )
        .await?;
        tx.end_partnership(live.id, actor).await?;
        for (side, them) in [(business, other), (other, business)] {
            tx.insert_event(&event(
                side,
                live.invitation_id,
                Some(actor),
                None,
                Event::PartnershipEnded(PartnershipEnded {
                    partnership_id: live.id,
                    partner_business_id: them,
                    ended_by_business_id: business,
                    grants_removed: removed.len(),
                }),
            ))
            .await?;
        }
        tx.commit().await?;
        Ok(())
    }
}

/// The business a partner invitation is addressed to.
fn partner_of(inv: &InvitationRecord) -> Result<BusinessId, DomainError> {
    inv.partner_business_id
        .filter(|_| inv.kind != InvitationKind::Member)
        .ok_or_else(|| {
            DomainError::Conflict(
                "this is a member invitation; it is answered with the token of its email".into(),
            )
        })
}
