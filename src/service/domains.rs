//! Verified domains (R52): the owner claims an email domain, publishes the
//! claim's TXT record, and has it verified; a verified domain suggests the
//! business to users with an address at it, or invites them when they
//! register (R53: through the one create path, the invitation remembering
//! its domain).
//!
//! The DNS lookup (`crate::dns`, bounded by its timeout) runs between two
//! transactions, never inside one: the first reads the claim, the second
//! writes the verification after checking again what may have changed.

use super::invitations::{CreateInvitations, Invitee};
use super::{ServiceError, ServiceResult, Services, event, lock_business};
use crate::domain::{
    BusinessId, DeliveryMode, DomainError, DomainMode, MailDomain, Metadata, UserId,
    VerificationValue,
};
use crate::events::catalog::{DomainVerified, Event, InvitationSkipped, SkipReason};
use crate::store::{DomainClaimRecord, DomainSuggestion, NewDomainClaim, StoreTx, UserRecord};

/// The actor must be the business's owner (R52: only the owner claims,
/// verifies or gives up a domain).
async fn require_owner(
    tx: &mut dyn StoreTx,
    business: BusinessId,
    actor: &UserId,
) -> ServiceResult<()> {
    match tx.get_member(business, actor).await? {
        Some(member) if member.role.is_owner() => Ok(()),
        Some(_) => Err(DomainError::forbidden(format!(
            "only the owner of the business can manage its domains; user {actor} is not the owner"
        ))
        .into()),
        None => Err(DomainError::forbidden(format!(
            "user {actor} is not a member of this business"
        ))
        .into()),
    }
}

/// A verified domain held by another business than `business`.
async fn verified_elsewhere(
    tx: &mut dyn StoreTx,
    business: BusinessId,
    domain: &MailDomain,
) -> ServiceResult<()> {
    match tx.verified_domain(domain).await? {
        Some(other) if other.business_id != business => Err(DomainError::Conflict(format!(
            "{domain} is already verified for another business; a domain is verified for at most one"
        ))
        .into()),
        _ => Ok(()),
    }
}

impl Services {
    /// Claims a domain for the business: a new, unverified claim with a
    /// fresh TXT value. The domain was parsed and checked against the public
    /// mail providers at the edge (`MailDomain::parse_claim`).
    pub async fn claim_domain(
        &self,
        business: BusinessId,
        actor: &UserId,
        domain: MailDomain,
        mode: DomainMode,
    ) -> ServiceResult<DomainClaimRecord> {
        if domain.is_public_mail_provider() {
            return Err(DomainError::validation(
                "domain",
                format!("{domain} is a public mail provider and cannot be claimed"),
            )
            .into());
        }
        let mut tx = self.store.begin().await?;
        lock_business(tx.as_mut(), business).await?;
        require_owner(tx.as_mut(), business, actor).await?;
        verified_elsewhere(tx.as_mut(), business, &domain).await?;
        if tx.get_domain_claim(business, &domain).await?.is_some() {
            return Err(
                DomainError::Conflict(format!("this business already claimed {domain}")).into(),
            );
        }
        let claim = tx
            .insert_domain_claim(&NewDomainClaim {
                business_id: business,
                domain,
                mode,
                txt_value: VerificationValue::generate(),
                claimed_by: actor.clone(),
            })
            .await?;
        tx.commit().await?;
        Ok(claim)
    }

    /// Looks the claim's TXT record up and, when found, marks the claim
    /// verified with the event `domain.verified`. A record that is not there
    /// is `409 conflict` naming what the DNS answered; nothing is written.
    pub async fn verify_domain(
        &self,
        business: BusinessId,
        actor: &UserId,
        domain: &MailDomain,
    ) -> ServiceResult<DomainClaimRecord> {
        let claim = {
            let mut tx = self.store.begin().await?;
            if tx.lock_business(business).await?.is_none() {
                return Err(DomainError::NotFound(format!("business {business}")).into());
            }
            require_owner(tx.as_mut(), business, actor).await?;
            let claim = tx
                .get_domain_claim(business, domain)
                .await?
                .ok_or_else(|| not_claimed(domain))?;
            if claim.verified() {
                return Ok(claim);
            }
            verified_elsewhere(tx.as_mut(), business, domain).await?;
            claim
            // The transaction ends here, unwritten: no lock is held while
            // the DNS answers.
        };

        let answers = crate::dns::txt_records(self.settings.domain_resolver, domain.as_str())
            .await
            .map_err(|e| {
                crate::metrics::domain_verification("dns_error");
                ServiceError::Unavailable(e.to_string())
            })?;
        if !claim.txt_value.found_in(answers.iter().map(String::as_str)) {
            crate::metrics::domain_verification("mismatch");
            let found = if answers.is_empty() {
                "no TXT record".to_string()
            } else {
                answers
                    .iter()
                    .map(|a| format!("{a:?}"))
                    .collect::<Vec<_>>()
                    .join(", ")
            };
            return Err(DomainError::Conflict(format!(
                "the TXT records of {domain} do not include {:?}; the DNS answered: {found}",
                claim.txt_value.txt_record()
            ))
            .into());
        }

        let mut tx = self.store.begin().await?;
        lock_business(tx.as_mut(), business).await?;
        require_owner(tx.as_mut(), business, actor).await?;
        verified_elsewhere(tx.as_mut(), business, domain).await?;
        let verified = tx
            .mark_domain_verified(business, domain, &claim.txt_value)
            .await?
            .ok_or_else(|| not_claimed(domain))?;
        tx.insert_event(&event(
            business,
            None,
            Some(actor),
            None,
            Event::DomainVerified(DomainVerified {
                domain: verified.domain.clone(),
                mode: verified.mode,
            }),
        ))
        .await?;
        tx.commit().await?;
        crate::metrics::domain_verification("verified");
        Ok(verified)
    }

    /// The business's claims, for its members.
    pub async fn list_domains(
        &self,
        business: BusinessId,
        actor: &UserId,
    ) -> ServiceResult<Vec<DomainClaimRecord>> {
        if self.store.get_business(business).await?.is_none() {
            return Err(DomainError::NotFound(format!("business {business}")).into());
        }
        let mut tx = self.store.begin().await?;
        super::require_member(tx.as_mut(), business, actor).await?;
        Ok(tx.list_domain_claims(business).await?)
    }

    /// Gives up a claim, verified or not (the owner only). Invitations it
    /// already created stay.
    pub async fn remove_domain(
        &self,
        business: BusinessId,
        actor: &UserId,
        domain: &MailDomain,
    ) -> ServiceResult<()> {
        let mut tx = self.store.begin().await?;
        lock_business(tx.as_mut(), business).await?;
        require_owner(tx.as_mut(), business, actor).await?;
        if !tx.delete_domain_claim(business, domain).await? {
            return Err(not_claimed(domain).into());
        }
        tx.commit().await?;
        Ok(())
    }

    /// The businesses with a verified `suggest` domain matching the user's
    /// address, which the user is not a member of yet.
    pub async fn domain_suggestions(&self, user: &UserId) -> ServiceResult<Vec<DomainSuggestion>> {
        let record = self
            .store
            .get_user(user)
            .await?
            .ok_or_else(|| DomainError::NotFound(format!("user {user}")))?;
        let Some(domain) = MailDomain::of_email(&record.email) else {
            return Ok(Vec::new());
        };
        let mut tx = self.store.begin().await?;
        Ok(tx.domain_suggestions(&domain, user).await?)
    }

    /// R52 `auto_invite`: the user was registered, or their address changed,
    /// and it is at a domain a business verified in that mode. Creates the
    /// member invitation with the default role through the one create path
    /// (R8, R9, R45 apply; the normal invitation email goes out), in the
    /// owner's name; a refusal is the event `invitation.skipped`. Nothing
    /// happens for a user who already is a member or has a pending
    /// invitation there.
    pub(crate) async fn invite_by_domain(&self, user: &UserRecord) -> ServiceResult<()> {
        let Some(domain) = MailDomain::of_email(&user.email) else {
            return Ok(());
        };
        let (claim, owner) = {
            let mut tx = self.store.begin().await?;
            let Some(claim) = tx.verified_domain(&domain).await? else {
                return Ok(());
            };
            if claim.mode != DomainMode::AutoInvite {
                return Ok(());
            }
            let business = claim.business_id;
            if tx.get_member(business, &user.user_id).await?.is_some()
                || tx.is_member_email(business, &user.email).await?
                || tx.has_pending_invitation(business, &user.email).await?
            {
                return Ok(());
            }
            let owner = self
                .store
                .list_members(business)
                .await?
                .into_iter()
                .find(|m| m.role.is_owner());
            (claim, owner)
        };
        let business = claim.business_id;
        let outcome = match owner {
            None => Err(ServiceError::Domain(DomainError::Conflict(
                "the business has no owner to invite in the name of".into(),
            ))),
            Some(owner) => self
                .create_invitations_from(
                    CreateInvitations {
                        business,
                        actor: owner.user_id,
                        invitees: vec![Invitee {
                            email: user.email.clone(),
                            role: None,
                            locale: Some(user.locale.clone()),
                        }],
                        message: None,
                        delivery: DeliveryMode::Email,
                        ttl: None,
                        metadata: Metadata::default(),
                    },
                    Vec::new(),
                    None,
                    Some(domain.clone()),
                )
                .await
                .map(|_| ()),
        };
        let error = match outcome {
            Ok(()) => return Ok(()),
            Err(ServiceError::Domain(e)) => e,
            Err(other) => return Err(other),
        };
        let reason = match &error {
            DomainError::RateLimited { .. } => SkipReason::QuotaExceeded,
            DomainError::SeatsExhausted(_) => SkipReason::SeatsExhausted,
            DomainError::AddressSuppressed(_) => SkipReason::AddressSuppressed,
            // A concurrent request invited the address first: it is in.
            DomainError::Conflict(m) if m.contains("already") => return Ok(()),
            _ => SkipReason::Refused,
        };
        let mut tx = self.store.begin().await?;
        tx.insert_event(&event(
            business,
            None,
            None,
            None,
            Event::InvitationSkipped(InvitationSkipped {
                user_id: user.user_id.clone(),
                email: user.email.clone(),
                source_domain: domain,
                reason,
                detail: error.to_string(),
            }),
        ))
        .await?;
        tx.commit().await?;
        Ok(())
    }
}

fn not_claimed(domain: &MailDomain) -> DomainError {
    DomainError::NotFound(format!("this business has no claim on {domain}"))
}
