//! The store's part of verified domains (R52): the claims a business made
//! on email domains and the [`DomainTx`] primitives, which every
//! [`super::StoreTx`] has. A domain is verified for at most one business:
//! the partial unique index `business_domains_one_verified` holds it under
//! any race ([`super::Constraint::DomainVerifiedOnce`]).

use async_trait::async_trait;
use chrono::{DateTime, Utc};

use super::StoreResult;
use crate::domain::{
    BusinessId, DomainMode, MailDomain, PublicBusinessId, UserId, VerificationValue,
};

#[derive(Clone, Debug)]
pub struct NewDomainClaim {
    pub business_id: BusinessId,
    pub domain: MailDomain,
    pub mode: DomainMode,
    pub txt_value: VerificationValue,
    pub claimed_by: UserId,
}

#[derive(Clone, Debug)]
pub struct DomainClaimRecord {
    pub business_id: BusinessId,
    pub domain: MailDomain,
    pub mode: DomainMode,
    pub txt_value: VerificationValue,
    pub claimed_by: UserId,
    pub verified_at: Option<DateTime<Utc>>,
    pub created_at: DateTime<Utc>,
}

impl DomainClaimRecord {
    pub fn verified(&self) -> bool {
        self.verified_at.is_some()
    }
}

/// A business a user may join because their address is at a domain it
/// verified in `suggest` mode.
#[derive(Clone, Debug)]
pub struct DomainSuggestion {
    pub business_id: BusinessId,
    pub public_id: PublicBusinessId,
    pub business_name: String,
    pub domain: MailDomain,
}

/// Primitives of one transaction for domain claims.
#[async_trait]
pub trait DomainTx: Send {
    /// A new, unverified claim. `Conflict(DomainClaimedOnce)` if the
    /// business already claimed the domain.
    async fn insert_domain_claim(
        &mut self,
        claim: &NewDomainClaim,
    ) -> StoreResult<DomainClaimRecord>;
    async fn get_domain_claim(
        &mut self,
        business: BusinessId,
        domain: &MailDomain,
    ) -> StoreResult<Option<DomainClaimRecord>>;
    /// The business's claims, by domain.
    async fn list_domain_claims(
        &mut self,
        business: BusinessId,
    ) -> StoreResult<Vec<DomainClaimRecord>>;
    /// The verified claim on a domain, whichever business holds it.
    async fn verified_domain(
        &mut self,
        domain: &MailDomain,
    ) -> StoreResult<Option<DomainClaimRecord>>;
    /// Marks a claim verified now, if it still carries `txt_value` (a
    /// claim removed and made again meanwhile has another): `None` when no
    /// such claim is left. `Conflict(DomainVerifiedOnce)` if another business
    /// verified the domain first.
    async fn mark_domain_verified(
        &mut self,
        business: BusinessId,
        domain: &MailDomain,
        txt_value: &VerificationValue,
    ) -> StoreResult<Option<DomainClaimRecord>>;
    /// Removes a claim; `false` if there was none.
    async fn delete_domain_claim(
        &mut self,
        business: BusinessId,
        domain: &MailDomain,
    ) -> StoreResult<bool>;
    /// The businesses with a verified `suggest` claim on `domain`, which
    /// `user` is not a member of.
    async fn domain_suggestions(
        &mut self,
        domain: &MailDomain,
        user: &UserId,
    ) -> StoreResult<Vec<DomainSuggestion>>;
}
