//! Members: list, change a role (R6), revoke or leave (R4), transfer ownership (R5).

use super::{ServiceResult, Services, event, lock_business, require_member};
use crate::domain::members::{check_revoke, check_set_role, check_transfer};
use crate::domain::{BusinessId, DomainError, Role, UserId};
use crate::events::catalog::{
    Event, GrantCause, MemberRemoved, MemberRoleChanged, OwnershipTransferred,
};
use crate::store::MemberRecord;

impl Services {
    pub async fn list_members(
        &self,
        business: BusinessId,
        actor: &UserId,
    ) -> ServiceResult<Vec<MemberRecord>> {
        self.get_business(business, actor).await?;
        Ok(self.store.list_members(business).await?)
    }

    pub async fn set_member_role(
        &self,
        business: BusinessId,
        actor: &UserId,
        target: &UserId,
        raw_role: &str,
    ) -> ServiceResult<MemberRecord> {
        let mut tx = self.store.begin().await?;
        let b = lock_business(tx.as_mut(), business).await?;
        let catalog = self.catalog(b.role_preset);
        let new_role = catalog.parse_role(raw_role, "role")?;
        let me = require_member(tx.as_mut(), business, actor).await?;
        let them = target_member(tx.as_mut(), business, target).await?;
        check_set_role(&catalog, &me.role, &them.role, &new_role)?;
        tx.set_member_role(business, target, &new_role).await?;
        tx.insert_event(&event(
            business,
            None,
            Some(actor),
            None,
            Event::MemberRoleChanged(MemberRoleChanged {
                user_id: target.clone(),
                from: them.role.clone(),
                to: new_role,
            }),
        ))
        .await?;
        let updated = target_member(tx.as_mut(), business, target).await?;
        tx.commit().await?;
        Ok(updated)
    }

    pub async fn remove_member(
        &self,
        business: BusinessId,
        actor: &UserId,
        target: &UserId,
    ) -> ServiceResult<()> {
        let mut tx = self.store.begin().await?;
        let b = lock_business(tx.as_mut(), business).await?;
        let catalog = self.catalog(b.role_preset);
        let me = require_member(tx.as_mut(), business, actor).await?;
        let them = target_member(tx.as_mut(), business, target).await?;
        check_revoke(&catalog, &me.role, &them.role, actor == target)?;
        // The grants their membership carried go with it (R23), with events.
        let removed = tx.delete_member_grants(business, target).await?;
        super::access::grants_removed(
            tx.as_mut(),
            &removed,
            Some(actor),
            GrantCause::MemberRemoved,
        )
        .await?;
        tx.delete_member(business, target).await?;
        tx.insert_event(&event(
            business,
            None,
            Some(actor),
            None,
            Event::MemberRemoved(MemberRemoved {
                user_id: target.clone(),
                role: them.role,
                left: actor == target,
            }),
        ))
        .await?;
        tx.commit().await?;
        Ok(())
    }

    /// R5: both role changes in one transaction.
    pub async fn transfer_ownership(
        &self,
        business: BusinessId,
        actor: &UserId,
        new_owner: &UserId,
    ) -> ServiceResult<Vec<MemberRecord>> {
        let mut tx = self.store.begin().await?;
        let b = lock_business(tx.as_mut(), business).await?;
        let catalog = self.catalog(b.role_preset);
        let me = require_member(tx.as_mut(), business, actor).await?;
        let them = target_member(tx.as_mut(), business, new_owner).await?;
        if actor == new_owner {
            return Err(
                DomainError::validation("new_owner_user_id", "is already the owner").into(),
            );
        }
        let old_owner_role = check_transfer(&catalog, &me.role, &them.role)?;
        // Demote first: the one-owner index allows no moment with two owners.
        tx.set_member_role(business, actor, &old_owner_role).await?;
        tx.set_member_role(business, new_owner, &Role::from_stored(Role::OWNER))
            .await?;
        tx.insert_event(&event(
            business,
            None,
            Some(actor),
            None,
            Event::OwnershipTransferred(OwnershipTransferred {
                from_user_id: actor.clone(),
                to_user_id: new_owner.clone(),
                previous_owner_role: old_owner_role,
            }),
        ))
        .await?;
        tx.commit().await?;
        Ok(self.store.list_members(business).await?)
    }
}

async fn target_member(
    tx: &mut dyn crate::store::StoreTx,
    business: BusinessId,
    user: &UserId,
) -> ServiceResult<MemberRecord> {
    tx.get_member(business, user)
        .await?
        .ok_or_else(|| DomainError::NotFound(format!("member {user}")).into())
}
