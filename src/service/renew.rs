//! Renew (R31): a new pending invitation to the same address or business, with a fresh
//! token and expiry, linked to the expired, declined or cancelled one it
//! replaces. It is created by the create path itself, so it counts towards the
//! quota (R8) and passes every check a new invitation passes (membership,
//! seats, one pending invitation per address, `members.invite`).

use super::chores::BATCH;
use super::invitations::{CreateInvitations, Invitee};
use super::partners::CreatePartner;
use super::{ServiceResult, Services};
use crate::domain::lifecycle::check_renewable;
use crate::domain::partners::Direction;
use crate::domain::{DomainError, InvitationId, InvitationStatus, UserId};
use crate::store::InvitationRecord;

impl Services {
    pub async fn renew_invitation(
        &self,
        id: InvitationId,
        actor: &UserId,
    ) -> ServiceResult<InvitationRecord> {
        // Members of the business only; others learn nothing of its state.
        let old = self.get_invitation(id, actor).await?;
        let now = {
            let mut tx = self.store.begin().await?;
            tx.now().await?
        };
        // Terminal states never change, so this check cannot go stale before
        // the create below.
        check_renewable(&old.view(), now)?;
        if old.status == InvitationStatus::Pending {
            // Past its expiry but not swept yet: expire it now, so that the
            // new pending invitation is the only one for the address (R13).
            self.expire_due(BATCH).await?;
        }
        // The profile grants it carried come along, checked again (R13).
        let grants = old.grants.clone();
        if let Some(direction) = Direction::of(old.kind) {
            // A partner invitation: the same business, the same direction.
            let partner = old
                .partner_business_id
                .ok_or_else(|| DomainError::Conflict("the invitation has no partner".into()))?;
            let partner = self
                .store
                .get_business(partner)
                .await?
                .ok_or_else(|| DomainError::NotFound(format!("business {partner}")))?;
            return self
                .create_partner_invitation(CreatePartner {
                    business: old.business_id,
                    actor: actor.clone(),
                    partner: partner.public_id,
                    direction,
                    message: old.message.clone(),
                    grants,
                    renewed_from: Some(id),
                })
                .await;
        }
        let email = old
            .email
            .clone()
            .ok_or_else(|| DomainError::Conflict("the invitation has no address".into()))?;
        let req = CreateInvitations {
            business: old.business_id,
            actor: actor.clone(),
            invitees: vec![Invitee {
                email,
                role: old.role.as_ref().map(|r| r.as_str().to_string()),
                locale: Some(old.locale.clone()),
            }],
            message: old.message.clone(),
            // R38, R39: the new invitation reaches the invitee the same way
            // and keeps the app's data; its lifetime is the default one, as
            // for every renewal (R31: a fresh expiry).
            delivery: old.delivery_mode,
            ttl: None,
            metadata: old.metadata.clone(),
        };
        // R53: a renewed domain invitation still came from its domain.
        let mut created = self
            .create_invitations_from(req, grants, Some(id), old.source_domain.clone())
            .await?;
        Ok(created.remove(0))
    }
}
