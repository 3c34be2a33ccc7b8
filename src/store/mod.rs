//! Storage: the only place with SQL. [`Store`] and [`StoreTx`] are the port;
//! [`postgres`] and [`sqlite`] are its adapters, and `sql` is their one
//! body: the statements both dialects share, the record decoders, and the
//! port implemented once over each adapter's dialect hooks. A service
//! operation opens one [`StoreTx`], reads what the domain rules need (under row
//! locks), and writes the change, its events and its outbox rows before one
//! commit, so every rule holds across replicas on one database.

pub mod access;
pub mod console;
pub mod domains;
pub mod events;
pub mod invite_links;
pub mod join_requests;
pub mod postgres;
pub mod records;
mod sql;
pub mod sqlite;
mod stored;
pub mod suppressions;
pub mod webhooks;

use std::time::Duration;

use async_trait::async_trait;
use chrono::{DateTime, Utc};

use crate::domain::{
    BusinessId, Email, InvitationId, InvitationStatus, Role, TokenHash, TokenNonce, UserId,
};
pub use access::{
    AccessTx, GrantRecord, NewGrant, NewPartnership, NewProfile, PartnershipRecord, ProfileRecord,
};
pub use console::{
    CONSOLE_LIMIT, ConsoleBusinessRow, ConsoleEmailRow, ConsoleInvitationRow, ConsoleSession,
    ConsoleStore, ConsoleTx, FailedFilter, MinuteTally, OperatorActionRow, SinkMinute,
};
pub use domains::{DomainClaimRecord, DomainSuggestion, DomainTx, NewDomainClaim};
pub use events::{EventCursor, EventLog, EventPosition, EventRecord, SinkLag, SinkTaking};
pub use invite_links::{InviteLinkQuery, InviteLinkRecord, InviteLinkTx, NewInviteLink};
pub use join_requests::{JoinRequestQuery, JoinRequestRecord, JoinRequestTx, NewJoinRequest};
pub use records::*;
pub use suppressions::{NewSuppression, SuppressionQuery, SuppressionRecord, SuppressionTx};
pub use webhooks::{
    AttemptVerdict, NewWebhookEndpoint, WebhookAttempt, WebhookDeliveryRecord,
    WebhookEndpointChange, WebhookEndpointRecord, WebhookStore, endpoint_sink,
};

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// The database cannot be reached or answered with a connection-level error.
    #[error("database unavailable: {0}")]
    Unavailable(String),
    /// A unique constraint refused a write; the service maps it to a conflict.
    #[error("unique constraint {} violated", .0.name())]
    Conflict(Constraint),
    #[error("database error: {0}")]
    Other(String),
}

pub type StoreResult<T> = Result<T, StoreError>;

/// The unique constraints a write can run into, named by what they protect.
/// Each adapter maps its database's report to one of these, so the service
/// matches on meaning, not on a dialect's constraint names.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Constraint {
    /// One pending member invitation per business and address (R13).
    OnePendingPerAddress,
    /// A user is a member of a business once.
    MemberOnce,
    /// One pending partner invitation per pair of businesses.
    OnePendingPerPair,
    /// One live partnership per pair of businesses.
    OneLivePartnership,
    /// One grant of a permission on a profile per grantee (business or user).
    OneGrantPerGrantee,
    /// One pending join request per user and business (R51).
    OnePendingJoinRequest,
    /// R52: a business claims a domain once.
    DomainClaimedOnce,
    /// R52: a domain is verified for at most one business.
    DomainVerifiedOnce,
    /// Any other unique constraint, by the name the database gave.
    Other(String),
}

impl Constraint {
    /// From the Postgres name of the constraint (the SQLite schema names its
    /// indexes alike).
    pub fn from_name(name: &str) -> Constraint {
        match name {
            "invitations_one_pending_per_address" => Constraint::OnePendingPerAddress,
            "members_pkey" => Constraint::MemberOnce,
            "invitations_one_pending_per_pair" => Constraint::OnePendingPerPair,
            "partnerships_one_live_per_pair" => Constraint::OneLivePartnership,
            "profile_grants_one_per_business" | "profile_grants_one_per_user" => {
                Constraint::OneGrantPerGrantee
            }
            "join_requests_one_pending" => Constraint::OnePendingJoinRequest,
            "business_domains_pkey" => Constraint::DomainClaimedOnce,
            "business_domains_one_verified" => Constraint::DomainVerifiedOnce,
            other => Constraint::Other(other.to_owned()),
        }
    }

    pub fn name(&self) -> &str {
        match self {
            Constraint::OnePendingPerAddress => "invitations_one_pending_per_address",
            Constraint::MemberOnce => "members_pkey",
            Constraint::OnePendingPerPair => "invitations_one_pending_per_pair",
            Constraint::OneLivePartnership => "partnerships_one_live_per_pair",
            Constraint::OneGrantPerGrantee => "profile_grants_one_per_*",
            Constraint::OnePendingJoinRequest => "join_requests_one_pending",
            Constraint::DomainClaimedOnce => "business_domains_pkey",
            Constraint::DomainVerifiedOnce => "business_domains_one_verified",
            Constraint::Other(name) => name,
        }
    }
}

/// One transaction. Dropping it without `commit` rolls everything back.
#[async_trait]
pub trait StoreTx:
    AccessTx + SuppressionTx + InviteLinkTx + JoinRequestTx + DomainTx + ConsoleTx + Send
{
    /// The database's clock: every rule about time (quota window, expiry) is
    /// judged by it, never by a replica's clock. Read it once, after the locks.
    async fn now(&mut self) -> StoreResult<DateTime<Utc>>;

    async fn upsert_user(&mut self, user: &NewUser) -> StoreResult<UserRecord>;
    async fn get_user(&mut self, id: &UserId) -> StoreResult<Option<UserRecord>>;
    /// R41: the time zone of the registered user with this address, if any
    /// has one (an invitee may not be a user yet).
    async fn time_zone_by_email(
        &mut self,
        email: &crate::domain::Email,
    ) -> StoreResult<Option<crate::domain::TimeZone>>;
    /// R41 for a whole create: [`StoreTx::time_zone_by_email`] of each of
    /// `emails`, in one read; an address with no zone is absent.
    async fn time_zones_by_email(
        &mut self,
        emails: &[Email],
    ) -> StoreResult<std::collections::HashMap<Email, crate::domain::TimeZone>>;

    async fn insert_business(&mut self, business: &NewBusiness) -> StoreResult<BusinessRecord>;
    /// Reads a business and locks its row until the end of the transaction: the
    /// quota (R8) and seats (R9) serialise on it. The lock is `FOR NO KEY
    /// UPDATE`, so inserts that merely reference the row (events, outbox,
    /// attempts) never wait on it. Lock order everywhere: business, then
    /// invitation.
    async fn lock_business(&mut self, id: BusinessId) -> StoreResult<Option<BusinessRecord>>;
    /// [`StoreTx::lock_business`] of the business an invitation belongs
    /// to, in one statement; `None` when there is no such invitation.
    async fn lock_business_of_invitation(
        &mut self,
        invitation: InvitationId,
    ) -> StoreResult<Option<BusinessRecord>>;

    async fn get_member(
        &mut self,
        business: BusinessId,
        user: &UserId,
    ) -> StoreResult<Option<MemberRecord>>;
    /// Adds a member; answers when they joined (the row's `joined_at`), so
    /// that a caller holding the user's record needs no read back.
    async fn insert_member(
        &mut self,
        business: BusinessId,
        user: &UserId,
        role: &Role,
    ) -> StoreResult<DateTime<Utc>>;
    async fn set_member_role(
        &mut self,
        business: BusinessId,
        user: &UserId,
        role: &Role,
    ) -> StoreResult<()>;
    async fn delete_member(&mut self, business: BusinessId, user: &UserId) -> StoreResult<()>;
    async fn is_member_email(&mut self, business: BusinessId, email: &Email) -> StoreResult<bool>;
    async fn count_members(&mut self, business: BusinessId) -> StoreResult<u32>;

    /// Creation times of the business's invitations and invite links (R50:
    /// each takes one unit of the quota) since `since`, oldest first.
    async fn invitation_times_since(
        &mut self,
        business: BusinessId,
        since: DateTime<Utc>,
    ) -> StoreResult<Vec<DateTime<Utc>>>;
    async fn count_pending_member_invitations(&mut self, business: BusinessId) -> StoreResult<u32>;
    async fn has_pending_invitation(
        &mut self,
        business: BusinessId,
        email: &Email,
    ) -> StoreResult<bool>;
    /// For a member create, under the business lock: which of `emails` a
    /// member of `business` has or a pending member invitation of it names
    /// (R13), and its seat counts (R9), in one read however many
    /// addresses.
    async fn address_conflicts(
        &mut self,
        business: BusinessId,
        emails: &[Email],
    ) -> StoreResult<AddressConflicts>;
    async fn insert_invitation(&mut self, invitation: &NewInvitation) -> StoreResult<()>;
    /// Several invitations. An adapter may write them in one statement;
    /// the default writes them one by one.
    async fn insert_invitations(&mut self, invitations: &[NewInvitation]) -> StoreResult<()> {
        for invitation in invitations {
            self.insert_invitation(invitation).await?;
        }
        Ok(())
    }
    /// Reads an invitation and locks its row: commands on one invitation are
    /// serialised across replicas by this lock (and within one by its actor).
    async fn lock_invitation(&mut self, id: InvitationId) -> StoreResult<Option<InvitationRecord>>;
    /// Moves an invitation to `status`; answers its new `updated_at`.
    async fn set_invitation_status(
        &mut self,
        id: InvitationId,
        status: InvitationStatus,
        accepted_by: Option<&UserId>,
    ) -> StoreResult<DateTime<Utc>>;
    /// R46: gives a pending member invitation a corrected address and a new
    /// token (the old one no longer finds it); its `created_at`, and so its
    /// quota slot (R8), stay.
    async fn correct_invitation_address(
        &mut self,
        id: InvitationId,
        email: &Email,
        hash: &TokenHash,
        nonce: &TokenNonce,
    ) -> StoreResult<()>;
    /// When the invitation email of this invitation was last queued (R14's
    /// cooldown), among those sent or still on their way: a failed or
    /// cancelled email does not count.
    async fn last_invitation_email_at(
        &mut self,
        id: InvitationId,
    ) -> StoreResult<Option<DateTime<Utc>>>;

    async fn insert_event(&mut self, event: &NewEvent) -> StoreResult<()>;
    /// Several events, in this order. An adapter may write them in one
    /// statement; the default writes them one by one.
    async fn insert_events(&mut self, events: &[NewEvent]) -> StoreResult<()> {
        for event in events {
            self.insert_event(event).await?;
        }
        Ok(())
    }
    /// Queues an email; it becomes visible to the dispatcher at commit.
    async fn enqueue_email(&mut self, email: &NewEmail) -> StoreResult<()>;
    /// Queues several emails. An adapter may write them in one statement;
    /// the default writes them one by one.
    async fn enqueue_emails(&mut self, emails: &[NewEmail]) -> StoreResult<()> {
        for email in emails {
            self.enqueue_email(email).await?;
        }
        Ok(())
    }
    /// Records the end of one delivery attempt (R27, R34).
    async fn finish_email_attempt(&mut self, attempt: &EmailAttempt) -> StoreResult<()>;
    /// Records the ends of several attempts (of different emails). An
    /// adapter may write them in one statement; the default writes them one
    /// by one.
    async fn finish_email_attempts(&mut self, attempts: &[EmailAttempt]) -> StoreResult<()> {
        for attempt in attempts {
            self.finish_email_attempt(attempt).await?;
        }
        Ok(())
    }
    /// Withdraws a claimed email before any attempt (status `cancelled`).
    async fn cancel_email(&mut self, id: uuid::Uuid, reason: &str) -> StoreResult<()>;

    /// R43: the email a bounce or complaint names, by its outbox id (the
    /// VERP return path) or by its Message-ID (`<…>`).
    async fn feedback_email(
        &mut self,
        by: FeedbackLookup<'_>,
    ) -> StoreResult<Option<FeedbackEmail>>;
    /// Keeps one received bounce or complaint (applied or not).
    async fn insert_feedback(&mut self, feedback: &NewFeedback) -> StoreResult<()>;
    /// R44: marks a sent email `bounced` or `complained`, once: `false` if it
    /// already carried a mark (a second report changes nothing).
    async fn mark_email_feedback(
        &mut self,
        id: uuid::Uuid,
        mark: OutboxStatus,
    ) -> StoreResult<bool>;

    /// R11: moves up to `limit` pending invitations past their expiry (by the
    /// database clock) to `expired` and returns them. Rows another
    /// transaction holds are skipped, and a row is only moved while still
    /// pending, so with several replicas each invitation expires once.
    async fn expire_due_invitations(
        &mut self,
        limit: u32,
    ) -> StoreResult<Vec<(InvitationId, BusinessId)>>;
    /// R32: up to `limit` pending, unexpired member invitations the daemon
    /// emails (R38: not those the app delivers itself) created at
    /// least `offset` ago (and less than `next` ago, when a later reminder
    /// exists) that have no reminder at `offset` yet; their rows are locked.
    async fn due_reminders(
        &mut self,
        offset: Duration,
        next: Option<Duration>,
        limit: u32,
    ) -> StoreResult<Vec<InvitationId>>;
    /// Records the reminder at `offset`; `false` if it already exists (another
    /// replica queued it), in which case no email may be queued.
    async fn record_reminder(
        &mut self,
        invitation: InvitationId,
        business: BusinessId,
        offset: Duration,
        outbox_id: uuid::Uuid,
    ) -> StoreResult<bool>;

    async fn commit(self: Box<Self>) -> StoreResult<()>;
}

/// How feedback names its email.
#[derive(Clone, Copy, Debug)]
pub enum FeedbackLookup<'a> {
    OutboxId(uuid::Uuid),
    MessageId(&'a str),
    /// The latest sent email to this address (case-insensitive): for a
    /// provider's webhook that names nothing else of ours.
    Recipient(&'a str),
}

/// What [`Store::ready`] found.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Readiness {
    Ready,
    /// The applied migrations are not this build's.
    OtherMigrations,
    /// The database answers but refuses writes.
    ReadOnly,
}

/// Notifications that new outbox rows were committed.
#[async_trait]
pub trait Wakeups: Send {
    /// Resolves when another transaction queued mail (or the connection dropped,
    /// in which case the caller falls back to polling).
    async fn next(&mut self) -> StoreResult<()>;
}

#[async_trait]
pub trait Store: EventLog + WebhookStore + ConsoleStore + Send + Sync + 'static {
    async fn begin(&self) -> StoreResult<Box<dyn StoreTx>>;

    /// Whether the database answers, its migrations are the ones this build
    /// ships, and it takes writes (a standby after a failover, or a database
    /// switched to read-only, answers reads only).
    async fn ready(&self) -> StoreResult<Readiness>;

    /// The token key: created once, shared by every replica (see `domain::token`).
    async fn token_key(&self) -> StoreResult<Vec<u8>>;

    async fn get_business(&self, id: BusinessId) -> StoreResult<Option<BusinessRecord>>;
    async fn get_member(
        &self,
        business: BusinessId,
        user: &UserId,
    ) -> StoreResult<Option<MemberRecord>>;
    async fn list_members(&self, business: BusinessId) -> StoreResult<Vec<MemberRecord>>;
    async fn get_user(&self, id: &UserId) -> StoreResult<Option<UserRecord>>;
    async fn get_invitation(&self, id: InvitationId) -> StoreResult<Option<InvitationRecord>>;
    /// A member invitation with its business's and inviter's names and the
    /// database's now (R35); `None` for no invitation or a partner one.
    async fn invitee_invitation(
        &self,
        id: InvitationId,
    ) -> StoreResult<Option<InviteeInvitationRecord>>;
    /// The member invitations addressed to an address (compared
    /// case-insensitively), in every business, newest first (R37).
    async fn invitations_for_email(
        &self,
        query: &InviteeQuery,
    ) -> StoreResult<Vec<InviteeInvitationRecord>>;
    async fn find_invitation_by_token(&self, hash: &TokenHash)
    -> StoreResult<Option<InvitationId>>;
    async fn list_invitations(&self, query: &InvitationQuery)
    -> StoreResult<Vec<InvitationRecord>>;
    async fn timeline(&self, id: InvitationId) -> StoreResult<Vec<TimelineEntry>>;
    /// R51: one join request.
    async fn get_join_request(
        &self,
        id: crate::domain::JoinRequestId,
    ) -> StoreResult<Option<JoinRequestRecord>>;
    /// R51: a page of a business's join requests, newest first.
    async fn list_join_requests(
        &self,
        query: &JoinRequestQuery,
    ) -> StoreResult<Vec<JoinRequestRecord>>;
    /// R53: the events that name a join request, oldest first.
    async fn join_request_timeline(
        &self,
        id: crate::domain::JoinRequestId,
    ) -> StoreResult<Vec<TimelineEntry>>;
    /// Creation times inside the quota window ending at the database's now.
    async fn quota_window(
        &self,
        business: BusinessId,
        window: Duration,
    ) -> StoreResult<(DateTime<Utc>, Vec<DateTime<Utc>>)>;

    /// Reserves an idempotency key for a request; see [`IdempotencyClaim`].
    async fn claim_idempotency_key(
        &self,
        api_key: &str,
        key: &str,
        request_hash: &[u8],
    ) -> StoreResult<IdempotencyClaim>;
    async fn complete_idempotency_key(
        &self,
        api_key: &str,
        key: &str,
        response: &StoredResponse,
    ) -> StoreResult<()>;
    /// Forgets a reservation whose request failed before producing a response.
    async fn release_idempotency_key(&self, api_key: &str, key: &str) -> StoreResult<()>;
    async fn purge_idempotency_keys(&self, older_than: Duration) -> StoreResult<u64>;

    /// Claims up to `limit` due emails: marks them `sending` with a lease and
    /// commits before returning, so no lock is held across the SMTP exchange.
    async fn claim_emails(&self, limit: u32, lease: Duration) -> StoreResult<Vec<ClaimedEmail>>;
    /// Hands back emails this process claimed and will not send (claimed
    /// ahead of the workers when the dispatcher stops): due again at once,
    /// with the attempt count they had before the claim, since nothing was
    /// attempted. A row no longer leased by this process is left alone.
    async fn release_emails(&self, ids: &[uuid::Uuid]) -> StoreResult<()>;
    async fn subscribe_outbox(&self) -> StoreResult<Box<dyn Wakeups>>;

    /// Closes every connection (shutdown).
    async fn close(&self);

    /// Gauges for operators: queue depths, pending invitations, pool use.
    async fn stats(&self) -> StoreResult<StoreStats>;

    /// R45: a page of the suppression list, by address.
    async fn list_suppressions(
        &self,
        query: &SuppressionQuery,
    ) -> StoreResult<Vec<SuppressionRecord>>;
}
