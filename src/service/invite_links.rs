//! Invite links (R50, R53): create (one unit of R8), list, preview, revoke
//! and redeem. A redemption is a membership like any other way in (R53):
//! the same `members` row, the same `member.added` (with `via: "link"` and
//! the link's id), checked against the same rules (R9 seats, R15 2FA),
//! under the business's row lock, with the link's use taken by one
//! conditional statement in the same transaction, so no race and no
//! replica ever takes a link past `max_uses`.

use std::time::Duration;

use super::{ServiceError, ServiceResult, Services, event, lock_business, require_member};
use crate::domain::access::{Grantee, InvitationGrant};
use crate::domain::invite_link::{AllowedDomains, InviteLinkCode, Unredeemable};
use crate::domain::members::{check_capability, check_invite};
use crate::domain::quota::check_seats;
use crate::domain::{BusinessId, Capability, DomainError, InviteLinkId, Role, UserId};
use crate::events::catalog::{Event, InviteLinkCreated, InviteLinkRevoked, MemberAdded, MemberVia};
use crate::store::{
    InviteLinkQuery, InviteLinkRecord, MemberRecord, NewInviteLink, StoreTx, TimelineEntry,
};

/// `POST /v1/businesses/{id}/invite-links`, parsed except for the role,
/// which needs the business's catalog.
pub struct CreateInviteLink {
    pub business: BusinessId,
    pub actor: UserId,
    pub role: Option<String>,
    /// Already 1 to 1,000.
    pub max_uses: u32,
    /// Already within 1h and `invitations.max_ttl`; `invitations.ttl` when
    /// `None`.
    pub ttl: Option<Duration>,
    pub allowed_domains: AllowedDomains,
    pub grants: Vec<InvitationGrant>,
}

/// A link just created, with the code shown this once.
pub struct CreatedInviteLink {
    pub link: InviteLinkRecord,
    pub code: InviteLinkCode,
    pub url: String,
}

/// `POST /v1/invite-links/redeem`.
pub struct RedeemInviteLink {
    pub code: String,
    pub user: UserId,
    pub email_verified: bool,
    pub mfa_verified: bool,
}

/// What a code opens, before anyone acts (the preview).
pub struct InviteLinkPreview {
    pub link: InviteLinkRecord,
    pub business_name: String,
    /// Why it cannot be redeemed now, if it cannot.
    pub reason: Option<Unredeemable>,
}

impl Services {
    /// R50: whoever may invite (R2) creates a link for a role not above
    /// their own (R3). It takes one unit of the invitation quota (R8),
    /// counted with the invitations under the same business row lock.
    pub async fn create_invite_link(
        &self,
        req: CreateInviteLink,
    ) -> ServiceResult<CreatedInviteLink> {
        let mut tx = self.store.begin().await?;
        let business = lock_business(tx.as_mut(), req.business).await?;
        let catalog = self.catalog(business.role_preset);
        let role = match &req.role {
            Some(raw) => catalog.parse_role(raw, "role")?,
            None => catalog.default_role(),
        };
        let me = require_member(tx.as_mut(), req.business, &req.actor).await?;
        check_invite(&catalog, &me.role, &role)?;
        self.check_invitation_grants(tx.as_mut(), req.business, &req.grants)
            .await?;
        let now = self.check_quota(tx.as_mut(), req.business, 1).await?;
        let ttl = req.ttl.unwrap_or(self.settings.ttl);
        let expires_at = now + chrono::Duration::from_std(ttl).unwrap_or(chrono::Duration::MAX);
        let code = InviteLinkCode::generate();
        let new = NewInviteLink {
            id: InviteLinkId::new(),
            business_id: req.business,
            created_by: req.actor.clone(),
            role: role.clone(),
            max_uses: req.max_uses,
            allowed_domains: req.allowed_domains,
            grants: req.grants,
            code_hash: code.hash(),
            created_at: now,
            expires_at,
        };
        tx.insert_invite_link(&new).await?;
        tx.insert_event(&event(
            req.business,
            None,
            Some(&req.actor),
            None,
            Event::InviteLinkCreated(InviteLinkCreated {
                invite_link_id: new.id,
                role,
                max_uses: new.max_uses,
                expires_at,
                allowed_domains: new.allowed_domains.as_slice().to_vec(),
            }),
        ))
        .await?;
        let link = tx
            .get_invite_link(new.id)
            .await?
            .expect("inserted in this transaction");
        tx.commit().await?;
        crate::metrics::invite_link_created();
        let url = self
            .settings
            .invite_link_url
            .replace("{code}", code.expose());
        Ok(CreatedInviteLink { link, code, url })
    }

    /// The business's links, newest first, for its members.
    pub async fn list_invite_links(
        &self,
        query: InviteLinkQuery,
        actor: &UserId,
    ) -> ServiceResult<Vec<InviteLinkRecord>> {
        let mut tx = self.store.begin().await?;
        self.require_business_member(tx.as_mut(), query.business_id, actor)
            .await?;
        Ok(tx.list_invite_links(&query).await?)
    }

    /// The events of one link (its creation, each redemption, its
    /// revocation), oldest first, for the business's members.
    pub async fn invite_link_timeline(
        &self,
        business: BusinessId,
        link: InviteLinkId,
        actor: &UserId,
    ) -> ServiceResult<Vec<TimelineEntry>> {
        let mut tx = self.store.begin().await?;
        self.require_business_member(tx.as_mut(), business, actor)
            .await?;
        business_link(tx.as_mut(), business, link).await?;
        Ok(tx.invite_link_events(business, link).await?)
    }

    /// R50: revoked at once: the commit that writes `revoked_at` is the
    /// one every later redemption reads under the business lock. Needs
    /// `members.invite` (R14's rule for cancelling). Revoking a revoked
    /// link changes nothing and answers the same.
    pub async fn revoke_invite_link(
        &self,
        business: BusinessId,
        link: InviteLinkId,
        actor: &UserId,
    ) -> ServiceResult<()> {
        let mut tx = self.store.begin().await?;
        let record = lock_business(tx.as_mut(), business).await?;
        let me = require_member(tx.as_mut(), business, actor).await?;
        check_capability(
            &self.catalog(record.role_preset),
            &me.role,
            Capability::MembersInvite,
        )?;
        let found = business_link(tx.as_mut(), business, link).await?;
        if tx.revoke_invite_link(link, actor).await? {
            tx.insert_event(&event(
                business,
                None,
                Some(actor),
                None,
                Event::InviteLinkRevoked(InviteLinkRevoked {
                    invite_link_id: link,
                    uses: found.uses,
                }),
            ))
            .await?;
            tx.commit().await?;
            crate::metrics::invite_link_revoked();
        }
        Ok(())
    }

    /// R50: what a code opens, whoever holds it: the business's name, the
    /// role, the uses left, the expiry, and whether a redemption could
    /// succeed now (the user's own checks aside). Unknown and malformed
    /// codes get the same `link_invalid`.
    pub async fn preview_invite_link(&self, raw: &str) -> ServiceResult<InviteLinkPreview> {
        let code = InviteLinkCode::parse(raw).ok_or(DomainError::LinkInvalid)?;
        let mut tx = self.store.begin().await?;
        let link = tx
            .find_invite_link_by_code(&code.hash())
            .await?
            .ok_or(DomainError::LinkInvalid)?;
        let now = tx.now().await?;
        let business = tx
            .read_business(link.business_id)
            .await?
            .ok_or_else(|| DomainError::NotFound(format!("business {}", link.business_id)))?;
        Ok(InviteLinkPreview {
            reason: link.view().unredeemable(now),
            business_name: business.name,
            link,
        })
    }

    /// R50, R53: the user joins through the link. Counted by outcome.
    pub async fn redeem_invite_link(&self, req: RedeemInviteLink) -> ServiceResult<MemberRecord> {
        let result = self.redeem(req).await;
        crate::metrics::invite_link_redemption(match &result {
            Ok(_) => "redeemed",
            Err(ServiceError::Domain(e)) => match e {
                DomainError::LinkInvalid => "link_invalid",
                DomainError::LinkRevoked => "link_revoked",
                DomainError::LinkExpired => "link_expired",
                DomainError::LinkExhausted => "link_exhausted",
                DomainError::DomainNotAllowed => "domain_not_allowed",
                _ => "refused",
            },
            Err(_) => "refused",
        });
        result
    }

    async fn redeem(&self, req: RedeemInviteLink) -> ServiceResult<MemberRecord> {
        let code = InviteLinkCode::parse(&req.code).ok_or(DomainError::LinkInvalid)?;
        let mut tx = self.store.begin().await?;
        // Which business to lock; the link is read again under the lock
        // (on Postgres each statement sees what committed before it).
        let business_id = tx
            .find_invite_link_by_code(&code.hash())
            .await?
            .ok_or(DomainError::LinkInvalid)?
            .business_id;
        let business = lock_business(tx.as_mut(), business_id).await?;
        let link = tx
            .find_invite_link_by_code(&code.hash())
            .await?
            .ok_or(DomainError::LinkInvalid)?;
        let now = tx.now().await?;
        link.view().check(now)?;
        // R37's rule for an answer without an emailed token: the app's word
        // that the address is the user's.
        if !req.email_verified {
            return Err(DomainError::EmailUnverified.into());
        }
        let user = tx.get_user(&req.user).await?.ok_or_else(|| {
            DomainError::validation(
                "user_id",
                format!(
                    "unknown user {}; register it with PUT /v1/users/{{id}} first",
                    req.user
                ),
            )
        })?;
        if tx.get_member(business_id, &req.user).await?.is_some() {
            return Err(
                DomainError::Conflict(format!("user {} is already a member", req.user)).into(),
            );
        }
        link.allowed_domains.check(&user.email)?;
        let catalog = self.catalog(business.role_preset);
        business
            .require_2fa
            .check_accept(&catalog, &link.role, req.mfa_verified)?;
        let members = tx.count_members(business_id).await?;
        let pending = tx.count_pending_member_invitations(business_id).await?;
        check_seats(business.seat_limit, members, pending, 1)?;
        // The use itself: one conditional statement, so even without the
        // business lock two transactions could not both take the last use.
        if !tx.take_invite_link_use(link.id, now).await? {
            let again = tx
                .get_invite_link(link.id)
                .await?
                .ok_or(DomainError::LinkInvalid)?;
            return Err(again
                .view()
                .unredeemable(now)
                .unwrap_or(Unredeemable::Exhausted)
                .error()
                .into());
        }
        self.add_link_member(tx.as_mut(), &link, &req.user, &link.role)
            .await?;
        let membership = tx
            .get_member(business_id, &req.user)
            .await?
            .expect("inserted in this transaction");
        tx.commit().await?;
        Ok(membership)
    }

    /// R53: the membership, its `member.added` naming the link, and the
    /// link's grants (R13), as an accepted invitation writes them.
    async fn add_link_member(
        &self,
        tx: &mut dyn StoreTx,
        link: &InviteLinkRecord,
        user: &UserId,
        role: &Role,
    ) -> ServiceResult<()> {
        tx.insert_member(link.business_id, user, role).await?;
        tx.insert_event(&event(
            link.business_id,
            None,
            Some(user),
            None,
            Event::MemberAdded(MemberAdded {
                user_id: user.clone(),
                role: role.clone(),
                via: MemberVia::Link {
                    invite_link_id: link.id,
                },
            }),
        ))
        .await?;
        self.apply_invitation_grants(
            tx,
            None,
            &link.grants,
            link.business_id,
            Grantee::User(user.clone()),
            &link.created_by,
        )
        .await?;
        Ok(())
    }

    async fn require_business_member(
        &self,
        tx: &mut dyn StoreTx,
        business: BusinessId,
        actor: &UserId,
    ) -> ServiceResult<()> {
        tx.read_business(business)
            .await?
            .ok_or_else(|| DomainError::NotFound(format!("business {business}")))?;
        require_member(tx, business, actor).await?;
        Ok(())
    }
}

/// The link, if it is this business's; `not_found` otherwise.
async fn business_link(
    tx: &mut dyn StoreTx,
    business: BusinessId,
    link: InviteLinkId,
) -> ServiceResult<InviteLinkRecord> {
    tx.get_invite_link(link)
        .await?
        .filter(|l| l.business_id == business)
        .ok_or_else(|| DomainError::NotFound(format!("invite link {link}")).into())
}
