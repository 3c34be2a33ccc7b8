//! The store's part of invite links (R50): their records and the
//! [`InviteLinkTx`] primitives, which every [`super::StoreTx`] has.
//!
//! A use is taken by one conditional statement (`uses < max_uses`, not
//! revoked, not expired) in the transaction that inserts the membership,
//! after the business's row lock: however many replicas redeem one link at
//! once, it never passes `max_uses` (a CHECK backs the statement).

use async_trait::async_trait;
use chrono::{DateTime, Utc};

use super::{StoreResult, TimelineEntry};
use crate::domain::access::InvitationGrant;
use crate::domain::invite_link::{AllowedDomains, LinkView};
use crate::domain::{BusinessId, InviteLinkId, Role, TokenHash, UserId};

#[derive(Clone, Debug)]
pub struct NewInviteLink {
    pub id: InviteLinkId,
    pub business_id: BusinessId,
    pub created_by: UserId,
    pub role: Role,
    pub max_uses: u32,
    pub allowed_domains: AllowedDomains,
    pub grants: Vec<InvitationGrant>,
    pub code_hash: TokenHash,
    pub created_at: DateTime<Utc>,
    pub expires_at: DateTime<Utc>,
}

#[derive(Clone, Debug)]
pub struct InviteLinkRecord {
    pub id: InviteLinkId,
    pub business_id: BusinessId,
    pub created_by: UserId,
    pub role: Role,
    pub max_uses: u32,
    pub uses: u32,
    pub allowed_domains: AllowedDomains,
    pub grants: Vec<InvitationGrant>,
    pub created_at: DateTime<Utc>,
    pub expires_at: DateTime<Utc>,
    pub revoked_at: Option<DateTime<Utc>>,
    pub revoked_by: Option<UserId>,
}

impl InviteLinkRecord {
    pub fn view(&self) -> LinkView {
        LinkView {
            max_uses: self.max_uses,
            uses: self.uses,
            expires_at: self.expires_at,
            revoked: self.revoked_at.is_some(),
        }
    }
}

/// A page of a business's links, newest first.
#[derive(Clone, Debug)]
pub struct InviteLinkQuery {
    pub business_id: BusinessId,
    /// Links older than this one (the cursor).
    pub before: Option<InviteLinkId>,
    pub limit: u32,
}

/// Primitives of one transaction for invite links.
#[async_trait]
pub trait InviteLinkTx: Send {
    async fn insert_invite_link(&mut self, link: &NewInviteLink) -> StoreResult<()>;
    async fn get_invite_link(&mut self, id: InviteLinkId) -> StoreResult<Option<InviteLinkRecord>>;
    async fn find_invite_link_by_code(
        &mut self,
        hash: &TokenHash,
    ) -> StoreResult<Option<InviteLinkRecord>>;
    async fn list_invite_links(
        &mut self,
        query: &InviteLinkQuery,
    ) -> StoreResult<Vec<InviteLinkRecord>>;
    /// Revokes a link that is not yet revoked; `false` when it already was.
    async fn revoke_invite_link(&mut self, id: InviteLinkId, by: &UserId) -> StoreResult<bool>;
    /// Takes one use of the link if it has one left, is not revoked and has
    /// not expired at `now`; `false` (and nothing changes) otherwise. Held
    /// to commit: a concurrent transaction waits for it, then sees the use.
    async fn take_invite_link_use(
        &mut self,
        id: InviteLinkId,
        now: DateTime<Utc>,
    ) -> StoreResult<bool>;
    /// The events whose `data.invite_link_id` is this link (its creation,
    /// each redemption's `member.added`, its revocation), oldest first.
    async fn invite_link_events(
        &mut self,
        business: BusinessId,
        id: InviteLinkId,
    ) -> StoreResult<Vec<TimelineEntry>>;
}
