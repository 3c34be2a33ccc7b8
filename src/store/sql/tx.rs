//! [`StoreTx`] and [`AccessTx`], once for both adapters: each primitive is
//! a shared statement of its aggregate's module or a dialect hook of
//! [`SqlTx`].

use std::time::Duration;

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use uuid::Uuid;

use super::{SqlTx, Wake, access, businesses, feedback, invitations, outbox, users};
use crate::domain::access::Permission;
use crate::domain::partners::TwoFactorPolicy;
use crate::domain::{
    BusinessId, Email, GrantId, InvitationId, InvitationStatus, PartnershipId, ProfileId,
    PublicBusinessId, Role, TokenHash, TokenNonce, UserId,
};
use crate::store::{
    AccessTx, AddressConflicts, BusinessRecord, EmailAttempt, GrantRecord, InvitationRecord,
    MemberRecord, NewBusiness, NewEmail, NewEvent, NewGrant, NewInvitation, NewPartnership,
    NewProfile, NewUser, PartnershipRecord, ProfileRecord, StoreError, StoreResult, StoreTx,
    UserRecord,
};

#[async_trait]
impl<T: SqlTx> StoreTx for T {
    async fn now(&mut self) -> StoreResult<DateTime<Utc>> {
        self.clock().await
    }

    async fn upsert_user(&mut self, user: &NewUser) -> StoreResult<UserRecord> {
        users::upsert(self, user).await
    }

    async fn get_user(&mut self, id: &UserId) -> StoreResult<Option<UserRecord>> {
        users::get(self, id).await
    }

    async fn time_zone_by_email(
        &mut self,
        email: &crate::domain::Email,
    ) -> StoreResult<Option<crate::domain::TimeZone>> {
        users::time_zone_by_email(self, email).await
    }

    async fn time_zones_by_email(
        &mut self,
        emails: &[Email],
    ) -> StoreResult<std::collections::HashMap<Email, crate::domain::TimeZone>> {
        users::time_zones_by_email(self, emails).await
    }

    async fn insert_business(&mut self, business: &NewBusiness) -> StoreResult<BusinessRecord> {
        businesses::insert(self, business).await
    }

    async fn lock_business(&mut self, id: BusinessId) -> StoreResult<Option<BusinessRecord>> {
        self.lock_business_row(id).await
    }

    async fn lock_business_of_invitation(
        &mut self,
        invitation: InvitationId,
    ) -> StoreResult<Option<BusinessRecord>> {
        businesses::lock_of_invitation(self, invitation, Self::ROW_LOCK).await
    }

    async fn get_member(
        &mut self,
        business: BusinessId,
        user: &UserId,
    ) -> StoreResult<Option<MemberRecord>> {
        businesses::member(self, business, user).await
    }

    async fn insert_member(
        &mut self,
        business: BusinessId,
        user: &UserId,
        role: &Role,
    ) -> StoreResult<DateTime<Utc>> {
        businesses::insert_member(self, business, user, role).await
    }

    async fn set_member_role(
        &mut self,
        business: BusinessId,
        user: &UserId,
        role: &Role,
    ) -> StoreResult<()> {
        businesses::set_member_role(self, business, user, role).await
    }

    async fn delete_member(&mut self, business: BusinessId, user: &UserId) -> StoreResult<()> {
        businesses::delete_member(self, business, user).await
    }

    async fn is_member_email(&mut self, business: BusinessId, email: &Email) -> StoreResult<bool> {
        businesses::is_member_email(self, business, email).await
    }

    async fn count_members(&mut self, business: BusinessId) -> StoreResult<u32> {
        businesses::count_members(self, business).await
    }

    async fn invitation_times_since(
        &mut self,
        business: BusinessId,
        since: DateTime<Utc>,
    ) -> StoreResult<Vec<DateTime<Utc>>> {
        invitations::times_since(self, business, since).await
    }

    async fn count_pending_member_invitations(&mut self, business: BusinessId) -> StoreResult<u32> {
        invitations::count_pending_members(self, business).await
    }

    async fn has_pending_invitation(
        &mut self,
        business: BusinessId,
        email: &Email,
    ) -> StoreResult<bool> {
        invitations::has_pending(self, business, email).await
    }

    async fn address_conflicts(
        &mut self,
        business: BusinessId,
        emails: &[Email],
    ) -> StoreResult<AddressConflicts> {
        invitations::address_conflicts(self, business, emails).await
    }

    async fn insert_invitation(&mut self, invitation: &NewInvitation) -> StoreResult<()> {
        invitations::insert(self, invitation).await
    }

    async fn insert_invitations(&mut self, invitations: &[NewInvitation]) -> StoreResult<()> {
        if invitations.is_empty() {
            return Ok(());
        }
        self.insert_invitation_batch(invitations).await
    }

    async fn lock_invitation(&mut self, id: InvitationId) -> StoreResult<Option<InvitationRecord>> {
        self.lock_invitation_row(id).await
    }

    async fn set_invitation_status(
        &mut self,
        id: InvitationId,
        status: InvitationStatus,
        accepted_by: Option<&UserId>,
    ) -> StoreResult<DateTime<Utc>> {
        invitations::set_status(self, id, status, accepted_by).await
    }

    async fn correct_invitation_address(
        &mut self,
        id: InvitationId,
        email: &Email,
        hash: &TokenHash,
        nonce: &TokenNonce,
    ) -> StoreResult<()> {
        invitations::correct_address(self, id, email, hash, nonce).await
    }

    async fn last_invitation_email_at(
        &mut self,
        id: InvitationId,
    ) -> StoreResult<Option<DateTime<Utc>>> {
        invitations::last_invitation_email_at(self, id).await
    }

    async fn insert_event(&mut self, event: &NewEvent) -> StoreResult<()> {
        outbox::insert_event(self, event).await?;
        self.wrote(Wake::Events);
        Ok(())
    }

    async fn insert_events(&mut self, events: &[NewEvent]) -> StoreResult<()> {
        if events.is_empty() {
            return Ok(());
        }
        self.insert_event_batch(events).await?;
        self.wrote(Wake::Events);
        Ok(())
    }

    async fn enqueue_email(&mut self, email: &NewEmail) -> StoreResult<()> {
        outbox::enqueue_email(self, email).await?;
        self.wrote(Wake::Outbox);
        Ok(())
    }

    async fn enqueue_emails(&mut self, emails: &[NewEmail]) -> StoreResult<()> {
        if emails.is_empty() {
            return Ok(());
        }
        self.enqueue_email_batch(emails).await?;
        self.wrote(Wake::Outbox);
        Ok(())
    }

    async fn finish_email_attempt(&mut self, attempt: &EmailAttempt) -> StoreResult<()> {
        self.finish_attempt_batch(std::slice::from_ref(attempt))
            .await
    }

    async fn finish_email_attempts(&mut self, attempts: &[EmailAttempt]) -> StoreResult<()> {
        if attempts.is_empty() {
            return Ok(());
        }
        self.finish_attempt_batch(attempts).await
    }

    async fn cancel_email(&mut self, id: Uuid, reason: &str) -> StoreResult<()> {
        outbox::cancel_email(self, id, reason).await
    }

    async fn feedback_email(
        &mut self,
        by: crate::store::FeedbackLookup<'_>,
    ) -> StoreResult<Option<crate::store::FeedbackEmail>> {
        feedback::email(self, by).await
    }

    async fn insert_feedback(&mut self, f: &crate::store::NewFeedback) -> StoreResult<()> {
        feedback::insert(self, f).await
    }

    async fn mark_email_feedback(
        &mut self,
        id: Uuid,
        mark: crate::store::OutboxStatus,
    ) -> StoreResult<bool> {
        feedback::mark(self, id, mark).await
    }

    async fn expire_due_invitations(
        &mut self,
        limit: u32,
    ) -> StoreResult<Vec<(InvitationId, BusinessId)>> {
        self.expire_due(limit).await
    }

    async fn due_reminders(
        &mut self,
        offset: Duration,
        next: Option<Duration>,
        limit: u32,
    ) -> StoreResult<Vec<InvitationId>> {
        self.due_reminder_ids(offset, next, limit).await
    }

    async fn record_reminder(
        &mut self,
        invitation: InvitationId,
        business: BusinessId,
        offset: Duration,
        outbox_id: Uuid,
    ) -> StoreResult<bool> {
        outbox::record_reminder(self, invitation, business, offset, outbox_id).await
    }

    async fn commit(self: Box<Self>) -> StoreResult<()> {
        (*self).commit_tx().await
    }
}

#[async_trait]
impl<T: SqlTx> AccessTx for T {
    async fn read_business(&mut self, id: BusinessId) -> StoreResult<Option<BusinessRecord>> {
        businesses::read(self, id).await
    }

    async fn get_business_by_public_id(
        &mut self,
        id: &PublicBusinessId,
    ) -> StoreResult<Option<BusinessRecord>> {
        businesses::by_public_id(self, id).await
    }

    async fn members_of_business(
        &mut self,
        business: BusinessId,
    ) -> StoreResult<Vec<MemberRecord>> {
        businesses::members_of(self, business).await
    }

    async fn memberships_of(&mut self, user: &UserId) -> StoreResult<Vec<MemberRecord>> {
        businesses::memberships_of(self, user).await
    }

    async fn set_require_2fa(
        &mut self,
        business: BusinessId,
        policy: TwoFactorPolicy,
    ) -> StoreResult<()> {
        businesses::set_require_2fa(self, business, policy).await
    }

    async fn pending_partner_invitation_between(
        &mut self,
        a: BusinessId,
        b: BusinessId,
    ) -> StoreResult<bool> {
        invitations::pending_partner_between(self, a, b).await
    }

    async fn live_partnership(
        &mut self,
        a: BusinessId,
        b: BusinessId,
    ) -> StoreResult<Option<PartnershipRecord>> {
        access::live_partnership(self, a, b).await
    }

    async fn insert_partnership(&mut self, p: &NewPartnership) -> StoreResult<()> {
        access::insert_partnership(self, p).await
    }

    async fn end_partnership(&mut self, id: PartnershipId, actor: &UserId) -> StoreResult<()> {
        access::end_partnership(self, id, actor).await
    }

    async fn list_partnerships(
        &mut self,
        business: BusinessId,
    ) -> StoreResult<Vec<PartnershipRecord>> {
        access::list_partnerships(self, business).await
    }

    async fn insert_profile(&mut self, p: &NewProfile) -> StoreResult<ProfileRecord> {
        access::insert_profile(self, p).await?;
        access::get_profile(self, p.id)
            .await?
            .ok_or_else(|| StoreError::Other("inserted profile not found".into()))
    }

    async fn get_profile(&mut self, id: ProfileId) -> StoreResult<Option<ProfileRecord>> {
        access::get_profile(self, id).await
    }

    async fn candidate_profiles_for(&mut self, user: &UserId) -> StoreResult<Vec<ProfileRecord>> {
        access::candidate_profiles_for(self, user).await
    }

    async fn insert_grant(&mut self, g: &NewGrant) -> StoreResult<GrantRecord> {
        access::insert_grant(self, g).await
    }

    async fn get_grant(&mut self, id: GrantId) -> StoreResult<Option<GrantRecord>> {
        access::get_grant(self, id).await
    }

    async fn grants_on_profile(
        &mut self,
        profile: ProfileId,
        permission: Permission,
    ) -> StoreResult<Vec<GrantRecord>> {
        access::grants_on_profile(self, profile, permission).await
    }

    async fn delete_grant_tree(&mut self, id: GrantId) -> StoreResult<Vec<GrantRecord>> {
        self.delete_grant_trees(&[id.0]).await
    }

    async fn delete_grants_between(
        &mut self,
        a: BusinessId,
        b: BusinessId,
    ) -> StoreResult<Vec<GrantRecord>> {
        let roots = access::grants_between(self, a, b).await?;
        self.delete_grant_trees(&roots).await
    }

    async fn delete_member_grants(
        &mut self,
        business: BusinessId,
        user: &UserId,
    ) -> StoreResult<Vec<GrantRecord>> {
        let roots = access::member_grants(self, business, user).await?;
        self.delete_grant_trees(&roots).await
    }
}
