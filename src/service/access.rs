//! Profiles, Publisher grants and the questions apps ask about access (R1,
//! R15, R23, R24): create a profile, grant and remove Publisher, check access
//! with its chain of grants, authorize a capability, list a user's profiles,
//! set the two-factor policy. Grant changes serialise on the row of the
//! business that owns the profile.

use super::businesses::parse_business_name;
use super::{ServiceResult, Services, event, lock_business, require_member};
use crate::domain::access::{
    AccessDecision, AccessFacts, GrantAuthority, GrantView, Grantee, HolderSide, InvitationGrant,
    OwnerSide, Permission, authorize_grant, decide_access, may_grant,
};
use crate::domain::members::check_capability;
use crate::domain::partners::TwoFactorPolicy;
use crate::domain::{
    BusinessId, Capability, DomainError, GrantId, InvitationId, ProfileId, Role, UserId,
};
use crate::events::catalog::{Change, Event, GrantCause, GrantChanged, SecurityUpdated};
use crate::store::{BusinessRecord, GrantRecord, NewGrant, NewProfile, ProfileRecord, StoreTx};

/// The answer of `GET /v1/access`: the decision and the grants of its chain.
#[derive(Clone, Debug)]
pub struct Access {
    pub decision: AccessDecision,
    pub via: Vec<GrantRecord>,
}

/// The answer of `GET /v1/authorize`.
#[derive(Clone, Debug)]
pub struct Authorization {
    pub allowed: bool,
    pub role: Option<Role>,
}

/// The business whose events carry a grant: the owning business for a direct
/// grant, the partner for one derived under its grant (its app is the one
/// that shows it).
fn event_business(g: &GrantRecord) -> BusinessId {
    match (&g.grantee, g.parent) {
        (Grantee::User(_), Some(_)) => g.holder,
        _ => g.business_id,
    }
}

/// `grant.added` / `grant.removed` for one grant (R16).
async fn grant_event(
    tx: &mut dyn StoreTx,
    which: fn(GrantChanged) -> Event,
    g: &GrantRecord,
    actor: Option<&UserId>,
    cause: GrantCause,
) -> ServiceResult<()> {
    tx.insert_event(&event(
        event_business(g),
        g.invitation_id,
        actor,
        None,
        which(GrantChanged {
            grant_id: g.id,
            profile_id: g.profile_id,
            profile_business_id: g.business_id,
            permission: g.permission,
            grantee: g.grantee.clone(),
            derived_from: g.parent,
            granted_by: g.granted_by.clone(),
            cause,
        }),
    ))
    .await?;
    Ok(())
}

/// Writes `grant.removed` for every grant of a removal, derived ones included.
pub(crate) async fn grants_removed(
    tx: &mut dyn StoreTx,
    removed: &[GrantRecord],
    actor: Option<&UserId>,
    cause: GrantCause,
) -> ServiceResult<()> {
    for g in removed {
        // The grant's own removal, or the removal it derives from.
        let why = if g.parent.is_some() && removed.iter().any(|p| Some(p.id) == g.parent) {
            GrantCause::ParentRemoved
        } else {
            cause
        };
        grant_event(tx, Event::GrantRemoved, g, actor, why).await?;
    }
    Ok(())
}

/// The profile, or `not_found`.
async fn profile(tx: &mut dyn StoreTx, id: ProfileId) -> ServiceResult<ProfileRecord> {
    tx.get_profile(id)
        .await?
        .ok_or_else(|| DomainError::NotFound(format!("profile {id}")).into())
}

impl Services {
    pub async fn create_profile(
        &self,
        business: BusinessId,
        actor: &UserId,
        raw_name: &str,
    ) -> ServiceResult<ProfileRecord> {
        let name = parse_business_name(raw_name, "name")?;
        let mut tx = self.store.begin().await?;
        let b = lock_business(tx.as_mut(), business).await?;
        let me = require_member(tx.as_mut(), business, actor).await?;
        // Profiles are the business's assets: the people who grant access
        // to them create them (R2).
        if !may_grant(&self.catalog(b.role_preset), Some(&me.role)) {
            return Err(DomainError::forbidden(format!(
                "the {} role lacks members.invite and may not create profiles",
                me.role
            ))
            .into());
        }
        let created = tx
            .insert_profile(&NewProfile {
                id: ProfileId::new(),
                business_id: business,
                name,
                created_by: actor.clone(),
            })
            .await?;
        tx.commit().await?;
        Ok(created)
    }

    /// R2, R23: grants Publisher on a profile to a user or a partner business.
    pub async fn add_grant(
        &self,
        profile_id: ProfileId,
        actor: &UserId,
        grantee: Grantee,
        permission: Permission,
    ) -> ServiceResult<GrantRecord> {
        let mut tx = self.store.begin().await?;
        // Find the owner first, then lock it: every grant change on its
        // profiles serialises on its row (and a partnership's end locks it too).
        let owner_id = profile(tx.as_mut(), profile_id).await?.business_id;
        let owner = lock_business(tx.as_mut(), owner_id).await?;
        let owner_catalog = self.catalog(owner.role_preset);
        let actor_in_owner = tx.get_member(owner_id, actor).await?;
        let (grantee_is_member, grantee_is_partner) = match &grantee {
            Grantee::User(u) => (tx.get_member(owner_id, u).await?.is_some(), false),
            Grantee::Business(b) => (false, tx.live_partnership(owner_id, *b).await?.is_some()),
        };
        let existing = tx.grants_on_profile(profile_id, permission).await?;
        // The partners that hold a grant on the profile, seen from the actor.
        let mut holders = Vec::new();
        for g in existing.iter().filter(|g| g.parent.is_none()) {
            let Grantee::Business(b) = g.grantee else {
                continue;
            };
            let Some(business) = tx.read_business(b).await? else {
                continue;
            };
            let actor_role = tx.get_member(b, actor).await?.map(|m| m.role);
            let grantee_is_member = match &grantee {
                Grantee::User(u) => tx.get_member(b, u).await?.is_some(),
                Grantee::Business(_) => false,
            };
            holders.push((g.id, business, actor_role, grantee_is_member));
        }
        let catalogs: Vec<_> = holders
            .iter()
            .map(|(_, b, _, _)| self.catalog(b.role_preset))
            .collect();
        let holder_sides: Vec<HolderSide<'_>> = holders
            .iter()
            .zip(&catalogs)
            .map(|((grant, b, role, member), catalog)| HolderSide {
                business: b.id,
                grant: *grant,
                catalog,
                actor_role: role.as_ref(),
                grantee_is_member: *member,
            })
            .collect();
        let authority = authorize_grant(
            actor,
            &grantee,
            &OwnerSide {
                catalog: &owner_catalog,
                actor_role: actor_in_owner.as_ref().map(|m| &m.role),
                grantee_is_member,
                grantee_is_partner,
            },
            &holder_sides,
        )?;
        let (holder, parent) = match (authority, &grantee) {
            (GrantAuthority::Owner, Grantee::Business(b)) => (*b, None),
            (GrantAuthority::Owner, Grantee::User(_)) => (owner_id, None),
            (GrantAuthority::Derived { parent, holder }, _) => (holder, Some(parent)),
        };
        if existing
            .iter()
            .any(|g| g.grantee == grantee && g.holder == holder)
        {
            return Err(DomainError::Conflict("this grant already exists".into()).into());
        }
        let created = tx
            .insert_grant(&NewGrant {
                id: GrantId::new(),
                business_id: owner_id,
                profile_id,
                permission,
                grantee,
                holder,
                parent,
                granted_by: actor.clone(),
                invitation_id: None,
            })
            .await?;
        grant_event(
            tx.as_mut(),
            Event::GrantAdded,
            &created,
            Some(actor),
            GrantCause::Granted,
        )
        .await?;
        tx.commit().await?;
        Ok(created)
    }

    /// R23: removes a grant and every grant derived from it, in one
    /// transaction. The owning business's owner or managers may remove any
    /// grant on its profiles; a partner's may remove those derived under its
    /// own grant.
    pub async fn remove_grant(
        &self,
        profile_id: ProfileId,
        grant_id: GrantId,
        actor: &UserId,
    ) -> ServiceResult<()> {
        let mut tx = self.store.begin().await?;
        let owner_id = profile(tx.as_mut(), profile_id).await?.business_id;
        let owner = lock_business(tx.as_mut(), owner_id).await?;
        let grant = tx
            .get_grant(grant_id)
            .await?
            .filter(|g| g.profile_id == profile_id)
            .ok_or_else(|| DomainError::NotFound(format!("grant {grant_id}")))?;
        let owner_role = tx.get_member(owner_id, actor).await?.map(|m| m.role);
        let mut allowed = may_grant(&self.catalog(owner.role_preset), owner_role.as_ref());
        if !allowed
            && grant.parent.is_some()
            && let Some(holder) = tx.read_business(grant.holder).await?
        {
            let role = tx.get_member(grant.holder, actor).await?.map(|m| m.role);
            allowed = may_grant(&self.catalog(holder.role_preset), role.as_ref());
        }
        if !allowed {
            return Err(DomainError::forbidden(
                "only the owner or a manager of the business that made the grant may remove it",
            )
            .into());
        }
        let removed = tx.delete_grant_tree(grant_id).await?;
        grants_removed(tx.as_mut(), &removed, Some(actor), GrantCause::Removed).await?;
        tx.commit().await?;
        Ok(())
    }

    /// R24: may `user` use `permission` on the profile, through which grants.
    pub async fn check_access(
        &self,
        user: &UserId,
        profile_id: ProfileId,
        permission: Permission,
    ) -> ServiceResult<Access> {
        let mut tx = self.store.begin().await?;
        let p = profile(tx.as_mut(), profile_id).await?;
        let memberships = tx.memberships_of(user).await?;
        let grants = tx.grants_on_profile(profile_id, permission).await?;
        Ok(access_of(user, &p, &memberships, &grants))
    }

    /// The profiles `user` may publish on, their own business's and those
    /// shared through partners (the profile switcher).
    pub async fn user_profiles(
        &self,
        user: &UserId,
    ) -> ServiceResult<Vec<(ProfileRecord, Access)>> {
        let mut tx = self.store.begin().await?;
        let memberships = tx.memberships_of(user).await?;
        let mut out = Vec::new();
        for p in tx.candidate_profiles_for(user).await? {
            let grants = tx.grants_on_profile(p.id, Permission::Publisher).await?;
            let access = access_of(user, &p, &memberships, &grants);
            if access.decision.allowed {
                out.push((p, access));
            }
        }
        Ok(out)
    }

    /// R1: does the user's role in the business have the capability? Any
    /// capability name may be asked; the business's catalog answers.
    pub async fn authorize(
        &self,
        user: &UserId,
        business: BusinessId,
        capability: &str,
    ) -> ServiceResult<Authorization> {
        let b = self
            .store
            .get_business(business)
            .await?
            .ok_or_else(|| DomainError::NotFound(format!("business {business}")))?;
        let role = self.store.get_member(business, user).await?.map(|m| m.role);
        let allowed = role
            .as_ref()
            .is_some_and(|r| self.catalog(b.role_preset).has(r, capability));
        Ok(Authorization { allowed, role })
    }

    /// R15: sets who must use two-factor authentication to accept.
    pub async fn set_security(
        &self,
        business: BusinessId,
        actor: &UserId,
        policy: TwoFactorPolicy,
    ) -> ServiceResult<BusinessRecord> {
        let mut tx = self.store.begin().await?;
        let b = lock_business(tx.as_mut(), business).await?;
        let me = require_member(tx.as_mut(), business, actor).await?;
        if !me.role.is_owner() {
            check_capability(
                &self.catalog(b.role_preset),
                &me.role,
                Capability::SecurityRequire2fa,
            )?;
        }
        let current = b.require_2fa;
        if current != policy {
            tx.set_require_2fa(business, policy).await?;
            tx.insert_event(&event(
                business,
                None,
                Some(actor),
                None,
                Event::SecurityUpdated(SecurityUpdated {
                    require_2fa: Change {
                        from: current,
                        to: policy,
                    },
                }),
            ))
            .await?;
        }
        let updated = tx
            .read_business(business)
            .await?
            .ok_or_else(|| DomainError::NotFound(format!("business {business}")))?;
        tx.commit().await?;
        Ok(updated)
    }

    /// R7, R13: the grants an invitation carries name profiles of
    /// `profile_business`, each once. Checked at creation.
    pub(crate) async fn check_invitation_grants(
        &self,
        tx: &mut dyn StoreTx,
        profile_business: BusinessId,
        grants: &[InvitationGrant],
    ) -> ServiceResult<()> {
        for (i, g) in grants.iter().enumerate() {
            let field = format!("grants[{i}].profile_id");
            let found = tx.get_profile(g.profile_id).await?;
            if found.is_none_or(|p| p.business_id != profile_business) {
                return Err(DomainError::validation(
                    field,
                    "is not a profile of the business whose access this invitation grants",
                )
                .into());
            }
            if grants[..i].contains(g) {
                return Err(DomainError::validation(field, "is listed twice").into());
            }
        }
        Ok(())
    }

    /// R13: applies an invitation's grants on acceptance, in its transaction.
    /// A profile gone since creation, or a grant that already exists, is
    /// skipped: the invitation still gives what it can. An invite link's
    /// grants (R50) are applied the same way on each redemption, with no
    /// invitation to name.
    pub(crate) async fn apply_invitation_grants(
        &self,
        tx: &mut dyn StoreTx,
        invitation: Option<InvitationId>,
        grants: &[InvitationGrant],
        profile_business: BusinessId,
        grantee: Grantee,
        granted_by: &UserId,
    ) -> ServiceResult<Vec<GrantRecord>> {
        let holder = match &grantee {
            Grantee::User(_) => profile_business,
            Grantee::Business(b) => *b,
        };
        let mut applied = Vec::new();
        for g in grants {
            let Some(p) = tx.get_profile(g.profile_id).await? else {
                continue;
            };
            if p.business_id != profile_business {
                continue;
            }
            let existing = tx.grants_on_profile(p.id, g.permission).await?;
            if existing
                .iter()
                .any(|e| e.grantee == grantee && e.holder == holder)
            {
                continue;
            }
            let created = tx
                .insert_grant(&NewGrant {
                    id: GrantId::new(),
                    business_id: profile_business,
                    profile_id: p.id,
                    permission: g.permission,
                    grantee: grantee.clone(),
                    holder,
                    parent: None,
                    granted_by: granted_by.clone(),
                    invitation_id: invitation,
                })
                .await?;
            grant_event(
                tx,
                Event::GrantAdded,
                &created,
                Some(granted_by),
                match invitation {
                    Some(_) => GrantCause::InvitationAccepted,
                    None => GrantCause::InviteLinkRedeemed,
                },
            )
            .await?;
            applied.push(created);
        }
        Ok(applied)
    }
}

fn access_of(
    user: &UserId,
    p: &ProfileRecord,
    memberships: &[crate::store::MemberRecord],
    grants: &[GrantRecord],
) -> Access {
    let views: Vec<GrantView> = grants.iter().map(GrantRecord::view).collect();
    let businesses: Vec<BusinessId> = memberships.iter().map(|m| m.business_id).collect();
    let owner_role = memberships
        .iter()
        .find(|m| m.business_id == p.business_id)
        .map(|m| &m.role);
    let decision = decide_access(
        user,
        &AccessFacts {
            profile_business: p.business_id,
            owner_role,
            grants: &views,
            memberships: &businesses,
        },
    );
    let via = decision
        .via
        .iter()
        .filter_map(|id| grants.iter().find(|g| g.id == *id).cloned())
        .collect();
    Access { decision, via }
}
