//! The store's part of partners, profiles and grants (R19–R24): the records
//! and the [`AccessTx`] primitives, which every [`super::StoreTx`] has. Kept
//! apart from the invitation primitives so each half reads on its own.

use async_trait::async_trait;
use chrono::{DateTime, Utc};

use super::{BusinessRecord, MemberRecord, StoreResult};
use crate::domain::access::{GrantView, Grantee, Permission};
use crate::domain::partners::{Direction, TwoFactorPolicy};
use crate::domain::{
    BusinessId, GrantId, InvitationId, PartnershipId, ProfileId, PublicBusinessId, UserId,
};

#[derive(Clone, Debug)]
pub struct NewPartnership {
    pub id: PartnershipId,
    /// The business that sent the invitation.
    pub business_id: BusinessId,
    pub partner_business_id: BusinessId,
    pub invitation_id: Option<InvitationId>,
    pub direction: Direction,
}

/// A live partnership, with both sides' names.
#[derive(Clone, Debug)]
pub struct PartnershipRecord {
    pub id: PartnershipId,
    pub business_id: BusinessId,
    pub business_name: String,
    pub partner_business_id: BusinessId,
    pub partner_name: String,
    pub invitation_id: Option<InvitationId>,
    pub direction: Direction,
    pub established_at: DateTime<Utc>,
}

impl PartnershipRecord {
    /// The other side, seen from `me`.
    pub fn other(&self, me: BusinessId) -> (BusinessId, &str) {
        if self.business_id == me {
            (self.partner_business_id, &self.partner_name)
        } else {
            (self.business_id, &self.business_name)
        }
    }
}

#[derive(Clone, Debug)]
pub struct NewProfile {
    pub id: ProfileId,
    pub business_id: BusinessId,
    pub name: String,
    pub created_by: UserId,
}

#[derive(Clone, Debug)]
pub struct ProfileRecord {
    pub id: ProfileId,
    pub business_id: BusinessId,
    pub business_name: String,
    pub name: String,
    pub created_by: UserId,
    pub created_at: DateTime<Utc>,
}

#[derive(Clone, Debug)]
pub struct NewGrant {
    pub id: GrantId,
    /// The business that owns the profile.
    pub business_id: BusinessId,
    pub profile_id: ProfileId,
    pub permission: Permission,
    pub grantee: Grantee,
    /// See [`GrantView::holder`].
    pub holder: BusinessId,
    pub parent: Option<GrantId>,
    pub granted_by: UserId,
    /// The invitation whose acceptance applied it (R13), if any.
    pub invitation_id: Option<InvitationId>,
}

#[derive(Clone, Debug)]
pub struct GrantRecord {
    pub id: GrantId,
    pub business_id: BusinessId,
    pub profile_id: ProfileId,
    pub permission: Permission,
    pub grantee: Grantee,
    pub holder: BusinessId,
    pub parent: Option<GrantId>,
    pub granted_by: UserId,
    pub invitation_id: Option<InvitationId>,
    pub created_at: DateTime<Utc>,
}

impl GrantRecord {
    pub fn view(&self) -> GrantView {
        GrantView {
            id: self.id,
            grantee: self.grantee.clone(),
            holder: self.holder,
            parent: self.parent,
        }
    }
}

/// Primitives of one transaction for partners, profiles and grants.
#[async_trait]
pub trait AccessTx: Send {
    /// A business without locking it.
    async fn read_business(&mut self, id: BusinessId) -> StoreResult<Option<BusinessRecord>>;
    async fn get_business_by_public_id(
        &mut self,
        id: &PublicBusinessId,
    ) -> StoreResult<Option<BusinessRecord>>;
    /// Every member of a business, with their email.
    async fn members_of_business(&mut self, business: BusinessId)
    -> StoreResult<Vec<MemberRecord>>;
    /// Every membership of a user.
    async fn memberships_of(&mut self, user: &UserId) -> StoreResult<Vec<MemberRecord>>;
    async fn set_require_2fa(
        &mut self,
        business: BusinessId,
        policy: TwoFactorPolicy,
    ) -> StoreResult<()>;

    /// A pending partner invitation between the two businesses, either way.
    async fn pending_partner_invitation_between(
        &mut self,
        a: BusinessId,
        b: BusinessId,
    ) -> StoreResult<bool>;
    async fn live_partnership(
        &mut self,
        a: BusinessId,
        b: BusinessId,
    ) -> StoreResult<Option<PartnershipRecord>>;
    async fn insert_partnership(&mut self, p: &NewPartnership) -> StoreResult<()>;
    async fn end_partnership(&mut self, id: PartnershipId, actor: &UserId) -> StoreResult<()>;
    /// The live partnerships of a business, oldest first.
    async fn list_partnerships(
        &mut self,
        business: BusinessId,
    ) -> StoreResult<Vec<PartnershipRecord>>;

    async fn insert_profile(&mut self, p: &NewProfile) -> StoreResult<ProfileRecord>;
    async fn get_profile(&mut self, id: ProfileId) -> StoreResult<Option<ProfileRecord>>;
    /// Profiles a user may publish on as far as rows go: those of businesses
    /// they own and those with a grant to them. The access rule decides.
    async fn candidate_profiles_for(&mut self, user: &UserId) -> StoreResult<Vec<ProfileRecord>>;

    async fn insert_grant(&mut self, g: &NewGrant) -> StoreResult<GrantRecord>;
    async fn get_grant(&mut self, id: GrantId) -> StoreResult<Option<GrantRecord>>;
    async fn grants_on_profile(
        &mut self,
        profile: ProfileId,
        permission: Permission,
    ) -> StoreResult<Vec<GrantRecord>>;
    /// Deletes a grant and every grant derived from it; returns them, the
    /// given one first.
    async fn delete_grant_tree(&mut self, id: GrantId) -> StoreResult<Vec<GrantRecord>>;
    /// Deletes the grants each of the two businesses gave the other, and
    /// every grant derived from them (a partnership ends).
    async fn delete_grants_between(
        &mut self,
        a: BusinessId,
        b: BusinessId,
    ) -> StoreResult<Vec<GrantRecord>>;
    /// Deletes the grants a user holds through a membership (they leave).
    async fn delete_member_grants(
        &mut self,
        business: BusinessId,
        user: &UserId,
    ) -> StoreResult<Vec<GrantRecord>>;
}
