//! The store's part of join requests (R51): their records and the
//! [`JoinRequestTx`] primitives, which every [`super::StoreTx`] has.
//!
//! Commands on one request take turns the way an invitation's do: the
//! request's row is locked (`FOR NO KEY UPDATE` on Postgres; SQLite runs one
//! write transaction at a time), after the business's row (lock order
//! everywhere: business, then what belongs to it).

use async_trait::async_trait;
use chrono::{DateTime, Utc};

use super::StoreResult;
use crate::domain::{BusinessId, JoinRequestId, JoinRequestStatus, Role, UserId};

#[derive(Clone, Debug)]
pub struct NewJoinRequest {
    pub id: JoinRequestId,
    pub business_id: BusinessId,
    pub user_id: UserId,
    pub message: Option<String>,
    pub created_at: DateTime<Utc>,
    pub expires_at: DateTime<Utc>,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct JoinRequestRecord {
    pub id: JoinRequestId,
    pub business_id: BusinessId,
    pub user_id: UserId,
    pub message: Option<String>,
    pub status: JoinRequestStatus,
    /// The role it was approved with.
    pub role: Option<Role>,
    /// Who approved or denied it.
    pub decided_by: Option<UserId>,
    pub decided_at: Option<DateTime<Utc>>,
    pub expired_at: Option<DateTime<Utc>>,
    pub created_at: DateTime<Utc>,
    pub expires_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

impl JoinRequestRecord {
    pub fn view(&self) -> crate::domain::join_requests::JoinRequestView {
        crate::domain::join_requests::JoinRequestView {
            status: self.status,
            expires_at: self.expires_at,
        }
    }
}

/// A page of a business's requests, newest first.
#[derive(Clone, Debug)]
pub struct JoinRequestQuery {
    pub business_id: BusinessId,
    pub status: Option<JoinRequestStatus>,
    /// Requests older than this one (the cursor).
    pub before: Option<JoinRequestId>,
    pub limit: u32,
}

/// Primitives of one transaction for join requests.
#[async_trait]
pub trait JoinRequestTx: Send {
    /// Reads the requesting user and locks their row until the
    /// transaction ends: a user's requests (to any business) take turns, so
    /// the rate limit's count and the insert never interleave.
    async fn lock_join_requester(
        &mut self,
        user: &UserId,
    ) -> StoreResult<Option<super::UserRecord>>;
    async fn insert_join_request(&mut self, request: &NewJoinRequest) -> StoreResult<()>;
    /// Reads a request and locks its row until the transaction ends.
    async fn lock_join_request(
        &mut self,
        id: JoinRequestId,
    ) -> StoreResult<Option<JoinRequestRecord>>;
    /// Moves a pending request to `approved` (with `role`) or `denied`, by
    /// `decided_by`; only while it is still pending (`false` otherwise).
    async fn decide_join_request(
        &mut self,
        id: JoinRequestId,
        status: JoinRequestStatus,
        decided_by: &UserId,
        role: Option<&Role>,
    ) -> StoreResult<bool>;
    /// Whether the user has a pending request to the business.
    async fn has_pending_join_request(
        &mut self,
        business: BusinessId,
        user: &UserId,
    ) -> StoreResult<bool>;
    /// Creation times of the user's requests (to any business) since
    /// `since`, oldest first: the per-user rate limit counts them.
    async fn join_request_times_since(
        &mut self,
        user: &UserId,
        since: DateTime<Utc>,
    ) -> StoreResult<Vec<DateTime<Utc>>>;
    /// Moves up to `limit` pending requests past their expiry (by the
    /// database clock) to `expired` and returns them; rows another
    /// transaction holds are skipped, and a row moves only while pending.
    async fn expire_due_join_requests(&mut self, limit: u32)
    -> StoreResult<Vec<JoinRequestRecord>>;
}
