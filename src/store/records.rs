//! What the store reads and writes, in domain types. Rows become these at the
//! adapter's edge.

use chrono::{DateTime, Utc};
use uuid::Uuid;

use crate::domain::access::InvitationGrant;
use crate::domain::partners::TwoFactorPolicy;
use crate::domain::{
    BusinessId, DeliveryMode, Email, InvitationId, InvitationKind, InvitationStatus, Locale,
    Metadata, PublicBusinessId, Role, RolePreset, TemplateName, TimeZone, TokenHash, TokenNonce,
    UserId,
};

#[derive(Clone, Debug)]
pub struct NewUser {
    pub user_id: UserId,
    pub email: Email,
    pub display_name: Option<String>,
    pub locale: Locale,
    /// R41: emails to this user write times in this zone; `None`: UTC.
    pub time_zone: Option<TimeZone>,
}

#[derive(Clone, Debug)]
pub struct UserRecord {
    pub user_id: UserId,
    pub email: Email,
    pub display_name: Option<String>,
    pub locale: Locale,
    pub time_zone: Option<TimeZone>,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

impl UserRecord {
    /// How emails name this user.
    pub fn name(&self) -> &str {
        self.display_name.as_deref().unwrap_or(self.email.as_str())
    }
}

#[derive(Clone, Debug)]
pub struct NewBusiness {
    pub id: BusinessId,
    pub public_id: PublicBusinessId,
    pub name: String,
    pub role_preset: RolePreset,
    pub seat_limit: Option<u32>,
    pub locale: Option<Locale>,
}

#[derive(Clone, Debug)]
pub struct BusinessRecord {
    pub id: BusinessId,
    pub public_id: PublicBusinessId,
    pub name: String,
    pub role_preset: RolePreset,
    pub seat_limit: Option<u32>,
    pub locale: Option<Locale>,
    pub require_2fa: TwoFactorPolicy,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

#[derive(Clone, Debug)]
pub struct MemberRecord {
    pub business_id: BusinessId,
    pub user_id: UserId,
    pub email: Email,
    pub role: Role,
    pub joined_at: DateTime<Utc>,
}

#[derive(Clone, Debug)]
pub struct NewInvitation {
    pub id: InvitationId,
    pub business_id: BusinessId,
    pub kind: InvitationKind,
    pub invited_by: UserId,
    pub email: Option<Email>,
    pub partner_business_id: Option<BusinessId>,
    pub role: Option<Role>,
    pub message: Option<String>,
    pub locale: Locale,
    pub grants: Vec<InvitationGrant>,
    pub token_hash: TokenHash,
    pub token_nonce: TokenNonce,
    pub created_at: DateTime<Utc>,
    pub expires_at: DateTime<Utc>,
    pub renewed_from: Option<InvitationId>,
    /// R38: emailed, or delivered by the app itself.
    pub delivery_mode: DeliveryMode,
    /// R39: the app's own data.
    pub metadata: Metadata,
    /// R53: the verified domain (R52, `auto_invite`) the invitation was
    /// created for.
    pub source_domain: Option<crate::domain::MailDomain>,
}

impl NewInvitation {
    /// The invitation as its insert stores it, so a create need not read
    /// back each row it just wrote: pending, `updated_at` its `created_at`,
    /// nobody's answer yet, no email queued yet. Times are as given:
    /// Postgres keeps microseconds, so there a time with finer digits reads
    /// back cut (`created_at`, the database's clock, has none; `expires_at`
    /// adds whole seconds to it).
    pub fn to_record(&self) -> InvitationRecord {
        InvitationRecord {
            id: self.id,
            business_id: self.business_id,
            kind: self.kind,
            invited_by: self.invited_by.clone(),
            email: self.email.clone(),
            partner_business_id: self.partner_business_id,
            role: self.role.clone(),
            message: self.message.clone(),
            locale: self.locale.clone(),
            grants: self.grants.clone(),
            token_nonce: self.token_nonce.clone(),
            status: InvitationStatus::Pending,
            created_at: self.created_at,
            expires_at: self.expires_at,
            updated_at: self.created_at,
            accepted_by: None,
            renewed_from: self.renewed_from,
            delivery_mode: self.delivery_mode,
            metadata: self.metadata.clone(),
            source_domain: self.source_domain.clone(),
            delivery: None,
        }
    }
}

/// What a member create checks about its addresses under the business
/// lock (R13, R9), read in one statement however many invitees.
#[derive(Clone, Debug, Default)]
pub struct AddressConflicts {
    /// The addresses asked about that a member of the business has
    /// (compared in lower case).
    pub members: std::collections::HashSet<Email>,
    /// The addresses asked about with a pending member invitation of the
    /// business.
    pub pending: std::collections::HashSet<Email>,
    /// R9: the business's members, and its pending member invitations not
    /// past their expiry by the database clock.
    pub member_count: u32,
    pub pending_count: u32,
}

/// Where an outbox row is (the `email_status` of the schema).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum OutboxStatus {
    Queued,
    Sending,
    Sent,
    Retrying,
    Failed,
    /// Withdrawn before any attempt (a reminder whose invitation is over).
    Cancelled,
    /// Sent, then a hard bounce came back (R44). Read from the outbox row's
    /// `feedback` mark, which wins over its sending status.
    Bounced,
    /// Sent, then the recipient complained (R44).
    Complained,
}

impl OutboxStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            OutboxStatus::Queued => "queued",
            OutboxStatus::Sending => "sending",
            OutboxStatus::Sent => "sent",
            OutboxStatus::Retrying => "retrying",
            OutboxStatus::Failed => "failed",
            OutboxStatus::Cancelled => "cancelled",
            OutboxStatus::Bounced => "bounced",
            OutboxStatus::Complained => "complained",
        }
    }

    pub fn parse(raw: &str) -> Option<OutboxStatus> {
        [
            OutboxStatus::Queued,
            OutboxStatus::Sending,
            OutboxStatus::Sent,
            OutboxStatus::Retrying,
            OutboxStatus::Failed,
            OutboxStatus::Cancelled,
            OutboxStatus::Bounced,
            OutboxStatus::Complained,
        ]
        .into_iter()
        .find(|s| s.as_str() == raw)
    }
}

/// The delivery of an invitation's latest invitation email.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DeliveryRecord {
    pub status: OutboxStatus,
    pub attempts: u32,
    pub last_error: Option<String>,
    pub sent_at: Option<DateTime<Utc>>,
}

impl DeliveryRecord {
    /// An email as its enqueue leaves it: queued, never attempted.
    pub fn queued() -> DeliveryRecord {
        DeliveryRecord {
            status: OutboxStatus::Queued,
            attempts: 0,
            last_error: None,
            sent_at: None,
        }
    }
}

#[derive(Clone, Debug)]
pub struct InvitationRecord {
    pub id: InvitationId,
    pub business_id: BusinessId,
    pub kind: InvitationKind,
    pub invited_by: UserId,
    pub email: Option<Email>,
    pub partner_business_id: Option<BusinessId>,
    pub role: Option<Role>,
    pub message: Option<String>,
    pub locale: Locale,
    pub grants: Vec<InvitationGrant>,
    pub token_nonce: TokenNonce,
    pub status: InvitationStatus,
    pub created_at: DateTime<Utc>,
    pub expires_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
    pub accepted_by: Option<UserId>,
    pub renewed_from: Option<InvitationId>,
    pub delivery_mode: DeliveryMode,
    pub metadata: Metadata,
    /// R53: the verified domain it was created for (R52), if any.
    pub source_domain: Option<crate::domain::MailDomain>,
    pub delivery: Option<DeliveryRecord>,
}

impl InvitationRecord {
    pub fn view(&self) -> crate::domain::InvitationView {
        crate::domain::InvitationView {
            kind: self.kind,
            status: self.status,
            expires_at: self.expires_at,
        }
    }
}

#[derive(Clone, Debug)]
pub struct InvitationQuery {
    pub business_id: BusinessId,
    /// Partner invitations addressed to the business instead of sent by it.
    pub incoming: bool,
    pub status: Option<InvitationStatus>,
    pub kind: Option<InvitationKind>,
    /// Only invitations with an id below this one (newest first paging).
    pub before: Option<InvitationId>,
    pub limit: u32,
}

/// A member invitation as its invitee sees it (R35, R37): with the names of
/// the business and of the inviter, which the invitation holds only as ids.
#[derive(Clone, Debug)]
pub struct InviteeInvitationRecord {
    pub invitation: InvitationRecord,
    pub business_name: String,
    /// The inviter's display name; `None` when they gave none (or their
    /// user record is gone).
    pub inviter_display_name: Option<String>,
    /// The database's clock when the row was read: the invitation's status
    /// as of then is `invitation.view().effective_status(read_at)` (R11).
    pub read_at: DateTime<Utc>,
}

/// The member invitations addressed to one address, in every business (R37).
#[derive(Clone, Debug)]
pub struct InviteeQuery {
    pub email: Email,
    /// By the status as of the database's now: a pending invitation past
    /// its expiry counts as expired, swept or not.
    pub status: Option<InvitationStatus>,
    /// Only invitations with an id below this one (newest first paging).
    pub before: Option<InvitationId>,
    pub limit: u32,
}

#[derive(Clone, Debug)]
pub struct NewEvent {
    pub id: Uuid,
    /// The business the event is about; `None` only for an operator's
    /// event about no business (R49: a console action on a webhook
    /// endpoint), which only `ConsoleAction::into_operator_event` makes.
    pub business_id: Option<BusinessId>,
    pub invitation_id: Option<InvitationId>,
    /// R53: the join request the event is about, if any.
    pub join_request_id: Option<crate::domain::JoinRequestId>,
    pub event_type: String,
    pub actor_user_id: Option<UserId>,
    pub from_status: Option<InvitationStatus>,
    pub to_status: Option<InvitationStatus>,
    pub data: serde_json::Value,
}

#[derive(Clone, Debug)]
pub struct NewEmail {
    pub id: Uuid,
    pub business_id: BusinessId,
    pub invitation_id: Option<InvitationId>,
    /// R51, R53: the join request the email is about, if any (its
    /// attempts are on the request's timeline).
    pub join_request_id: Option<crate::domain::JoinRequestId>,
    pub template: TemplateName,
    pub locale: Locale,
    pub recipient: Email,
    pub recipient_name: Option<String>,
    pub context: serde_json::Value,
    pub message_id: String,
}

/// An email the dispatcher claimed; its lease is running.
#[derive(Clone, Debug)]
pub struct ClaimedEmail {
    pub id: Uuid,
    pub business_id: BusinessId,
    pub invitation_id: Option<InvitationId>,
    pub template: TemplateName,
    pub locale: String,
    pub recipient: String,
    pub recipient_name: Option<String>,
    pub context: serde_json::Value,
    pub message_id: String,
    /// Attempts so far, this one included.
    pub attempts: u32,
    pub created_at: DateTime<Utc>,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum AttemptOutcome {
    Sent,
    /// Try again after the given delay.
    Retry {
        after: std::time::Duration,
    },
    /// Terminal: a 5xx answer, or the retry window ended.
    Failed,
}

/// The end of one delivery attempt.
#[derive(Clone, Debug)]
pub struct EmailAttempt {
    pub outbox_id: Uuid,
    pub business_id: BusinessId,
    pub outcome: AttemptOutcome,
    /// `sent`, `transient` or `permanent`: what the server (or the network) said.
    pub kind: &'static str,
    pub smtp_code: Option<u16>,
    pub detail: Option<String>,
    pub duration: std::time::Duration,
}

/// An email as feedback about it needs it: what to tie the feedback to and
/// where its events go.
#[derive(Clone, Debug)]
pub struct FeedbackEmail {
    pub id: Uuid,
    pub business_id: BusinessId,
    pub invitation_id: Option<InvitationId>,
    pub template: TemplateName,
    pub message_id: String,
    pub recipient: String,
    /// Its sending status, or `bounced`/`complained` once marked.
    pub status: OutboxStatus,
}

/// One bounce or complaint as it is kept (`email_feedback`), applied or
/// not. The names are the schema's values (see the migration).
#[derive(Clone, Debug)]
pub struct NewFeedback {
    pub id: Uuid,
    pub source: String,
    /// `hard_bounce`, `soft_bounce`, `complaint`; `None` when unreadable.
    pub kind: Option<&'static str>,
    /// `applied`, `unmatched`, `ignored`, `malformed`.
    pub outcome: &'static str,
    pub outbox_id: Option<Uuid>,
    /// `return_path`, `message_id`, `provider_id`, `address`.
    pub matched_by: Option<&'static str>,
    pub status_code: Option<String>,
    pub detail: Option<String>,
    pub recipient: Option<String>,
    pub envelope_to: Option<String>,
    pub message_id: Option<String>,
    pub error: Option<String>,
}

#[derive(Clone, Debug)]
pub enum TimelineEntry {
    Event {
        id: Uuid,
        event_type: String,
        at: DateTime<Utc>,
        actor_user_id: Option<String>,
        from_status: Option<InvitationStatus>,
        to_status: Option<InvitationStatus>,
        data: serde_json::Value,
    },
    Delivery {
        id: Uuid,
        at: DateTime<Utc>,
        template: String,
        recipient: String,
        outcome: String,
        smtp_code: Option<u16>,
        detail: Option<String>,
        duration_ms: u32,
    },
    /// A bounce or complaint that came back about one of the invitation's
    /// emails (R34, R44).
    Feedback {
        id: Uuid,
        at: DateTime<Utc>,
        template: String,
        recipient: String,
        kind: String,
        source: String,
        status_code: Option<String>,
        detail: Option<String>,
    },
}

impl TimelineEntry {
    pub fn at(&self) -> DateTime<Utc> {
        match self {
            TimelineEntry::Event { at, .. }
            | TimelineEntry::Delivery { at, .. }
            | TimelineEntry::Feedback { at, .. } => *at,
        }
    }
}

/// A stored HTTP response, replayed for a repeated Idempotency-Key.
#[derive(Clone, Debug)]
pub struct StoredResponse {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

#[derive(Clone, Debug)]
pub enum IdempotencyClaim {
    /// First use: go ahead, then complete (or release) the key.
    New,
    /// Done before with the same body: replay this.
    Replay(StoredResponse),
    /// The same key with another body.
    Mismatch,
    /// The first request with this key is still running.
    InProgress,
}

/// What the metrics sampler reads.
#[derive(Clone, Debug, Default)]
pub struct StoreStats {
    /// Emails not yet sent or failed.
    pub email_depth: u64,
    /// Age of the oldest of them, in seconds (0 when there is none).
    pub email_oldest_age_seconds: f64,
    /// Pending invitations by kind (`member`, `partner_invite`, `partner_request`).
    pub pending: Vec<(String, u64)>,
    pub pool_active: u32,
    pub pool_idle: u32,
    /// Outbound events (R17): how far behind each sink's cursor is.
    pub events: Vec<super::SinkLag>,
    /// Addresses on the suppression list (R45).
    pub suppressions: u64,
}
