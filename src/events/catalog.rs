//! The event catalog (R16, R17): every event type the daemon writes, and the
//! shape of each one's `data`. The service builds an [`Event`] and turns it
//! into the store's row with [`Event::into_new_event`]; nothing else names an
//! event type or writes event data, so this file is the contract apps read.
//!
//! `data` is stored and sent as the JSON object these structs serialise to:
//! field names are the wire names, an `Option` is written as `null` (never
//! left out; the one exception is `invitation.created`'s `source_domain`,
//! written only for an invitation a verified domain created, R53), and keys come out sorted (serde_json's map is ordered by key),
//! whatever the order of the fields here. A state change's `from_status` and
//! `to_status` are not part of these structs: they travel in the event row
//! and are added to `data` on the wire (see `WireEvent::from_record`).

use std::fmt;
use std::str::FromStr;
use std::time::Duration;

use serde::ser::SerializeMap;
use serde::{Serialize, Serializer};
use uuid::Uuid;

use crate::domain::TemplateName;
use crate::domain::access::{Grantee, Permission};
use crate::domain::partners::TwoFactorPolicy;
use crate::domain::{
    BusinessId, Command, DeliveryMode, DomainMode, Email, GrantId, InvitationId, InvitationKind,
    InvitationStatus, InviteLinkId, JoinRequestId, MailDomain, Metadata, PartnershipId, ProfileId,
    Role, UserId,
};
use crate::store::NewEvent;

/// Every event type, by its name on the wire (the `type` field, the webhook's
/// `Invited-Event-Type` header and the last part of the NATS subject).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum EventType {
    InvitationCreated,
    InvitationRenewed,
    InvitationSent,
    InvitationResent,
    InvitationAccepted,
    InvitationDeclined,
    InvitationCancelled,
    InvitationExpired,
    InvitationReminderQueued,
    InvitationAddressCorrected,
    NotificationFailed,
    NotificationCancelled,
    NotificationLocaleFallback,
    NotificationBounced,
    NotificationComplained,
    MemberAdded,
    MemberRoleChanged,
    MemberRemoved,
    OwnershipTransferred,
    PartnershipEstablished,
    PartnershipEnded,
    GrantAdded,
    GrantRemoved,
    SecurityUpdated,
    InviteLinkCreated,
    InviteLinkRevoked,
    JoinRequestCreated,
    JoinRequestApproved,
    JoinRequestDenied,
    JoinRequestExpired,
    DomainVerified,
    InvitationSkipped,
    ConsoleAction,
}

impl EventType {
    pub const ALL: [EventType; 33] = [
        EventType::InvitationCreated,
        EventType::InvitationRenewed,
        EventType::InvitationSent,
        EventType::InvitationResent,
        EventType::InvitationAccepted,
        EventType::InvitationDeclined,
        EventType::InvitationCancelled,
        EventType::InvitationExpired,
        EventType::InvitationReminderQueued,
        EventType::InvitationAddressCorrected,
        EventType::NotificationFailed,
        EventType::NotificationCancelled,
        EventType::NotificationLocaleFallback,
        EventType::NotificationBounced,
        EventType::NotificationComplained,
        EventType::MemberAdded,
        EventType::MemberRoleChanged,
        EventType::MemberRemoved,
        EventType::OwnershipTransferred,
        EventType::PartnershipEstablished,
        EventType::PartnershipEnded,
        EventType::GrantAdded,
        EventType::GrantRemoved,
        EventType::SecurityUpdated,
        EventType::InviteLinkCreated,
        EventType::InviteLinkRevoked,
        EventType::JoinRequestCreated,
        EventType::JoinRequestApproved,
        EventType::JoinRequestDenied,
        EventType::JoinRequestExpired,
        EventType::DomainVerified,
        EventType::InvitationSkipped,
        EventType::ConsoleAction,
    ];

    /// The type of a wire name (an endpoint's filter, R48).
    pub fn parse(name: &str) -> Option<EventType> {
        EventType::ALL.into_iter().find(|t| t.as_str() == name)
    }

    pub fn as_str(self) -> &'static str {
        match self {
            EventType::InvitationCreated => "invitation.created",
            EventType::InvitationRenewed => "invitation.renewed",
            EventType::InvitationSent => "invitation.sent",
            EventType::InvitationResent => "invitation.resent",
            EventType::InvitationAccepted => "invitation.accepted",
            EventType::InvitationDeclined => "invitation.declined",
            EventType::InvitationCancelled => "invitation.cancelled",
            EventType::InvitationExpired => "invitation.expired",
            EventType::InvitationReminderQueued => "invitation.reminder_queued",
            EventType::InvitationAddressCorrected => "invitation.address_corrected",
            EventType::NotificationFailed => "notification.failed",
            EventType::NotificationCancelled => "notification.cancelled",
            EventType::NotificationLocaleFallback => "notification.locale_fallback",
            EventType::NotificationBounced => "notification.bounced",
            EventType::NotificationComplained => "notification.complained",
            EventType::MemberAdded => "member.added",
            EventType::MemberRoleChanged => "member.role_changed",
            EventType::MemberRemoved => "member.removed",
            EventType::OwnershipTransferred => "ownership.transferred",
            EventType::PartnershipEstablished => "partnership.established",
            EventType::PartnershipEnded => "partnership.ended",
            EventType::GrantAdded => "grant.added",
            EventType::GrantRemoved => "grant.removed",
            EventType::SecurityUpdated => "security.updated",
            EventType::InviteLinkCreated => "invite_link.created",
            EventType::InviteLinkRevoked => "invite_link.revoked",
            EventType::JoinRequestCreated => "join_request.created",
            EventType::JoinRequestApproved => "join_request.approved",
            EventType::JoinRequestDenied => "join_request.denied",
            EventType::JoinRequestExpired => "join_request.expired",
            EventType::DomainVerified => "domain.verified",
            EventType::InvitationSkipped => "invitation.skipped",
            EventType::ConsoleAction => "console.action",
        }
    }
}

impl fmt::Display for EventType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for EventType {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        EventType::ALL
            .into_iter()
            .find(|t| t.as_str() == s)
            .ok_or_else(|| format!("unknown event type {s:?}"))
    }
}

/// One event with its data; the variant decides the type. The lifecycle's
/// own transitions (accepted, declined, cancelled, resent, expired) carry no
/// data besides the transition itself.
#[derive(Clone, Debug, PartialEq)]
pub enum Event {
    InvitationCreated(InvitationCreated),
    InvitationRenewed(InvitationRenewed),
    InvitationSent(InvitationSent),
    InvitationResent,
    InvitationAccepted,
    InvitationDeclined,
    InvitationCancelled,
    InvitationExpired,
    InvitationReminderQueued(ReminderQueued),
    InvitationAddressCorrected(AddressCorrected),
    NotificationFailed(NotificationFailed),
    NotificationCancelled(NotificationCancelled),
    NotificationLocaleFallback(NotificationLocaleFallback),
    NotificationBounced(DeliveryFeedback),
    NotificationComplained(DeliveryFeedback),
    MemberAdded(MemberAdded),
    MemberRoleChanged(MemberRoleChanged),
    MemberRemoved(MemberRemoved),
    OwnershipTransferred(OwnershipTransferred),
    PartnershipEstablished(PartnershipEstablished),
    PartnershipEnded(PartnershipEnded),
    GrantAdded(GrantChanged),
    GrantRemoved(GrantChanged),
    SecurityUpdated(SecurityUpdated),
    InviteLinkCreated(InviteLinkCreated),
    InviteLinkRevoked(InviteLinkRevoked),
    JoinRequestCreated(JoinRequestCreated),
    JoinRequestApproved(JoinRequestApproved),
    JoinRequestDenied(JoinRequestDenied),
    JoinRequestExpired(JoinRequestExpired),
    DomainVerified(DomainVerified),
    InvitationSkipped(InvitationSkipped),
    ConsoleAction(ConsoleAction),
}

/// Who an event is about and who caused it: the columns of the event row
/// besides the type and the data.
#[derive(Clone, Debug)]
pub struct Subject<'a> {
    pub business: BusinessId,
    pub invitation: Option<InvitationId>,
    pub actor: Option<&'a UserId>,
    /// The invitation's state change, for the lifecycle's events.
    pub transition: Option<(InvitationStatus, InvitationStatus)>,
}

impl Event {
    /// The event a lifecycle command writes with its change (R16).
    pub fn of_command(command: Command) -> Event {
        match command {
            Command::Accept => Event::InvitationAccepted,
            Command::Decline => Event::InvitationDeclined,
            Command::Cancel => Event::InvitationCancelled,
            Command::Resend => Event::InvitationResent,
            Command::Expire => Event::InvitationExpired,
        }
    }

    pub fn event_type(&self) -> EventType {
        match self {
            Event::InvitationCreated(_) => EventType::InvitationCreated,
            Event::InvitationRenewed(_) => EventType::InvitationRenewed,
            Event::InvitationSent(_) => EventType::InvitationSent,
            Event::InvitationResent => EventType::InvitationResent,
            Event::InvitationAccepted => EventType::InvitationAccepted,
            Event::InvitationDeclined => EventType::InvitationDeclined,
            Event::InvitationCancelled => EventType::InvitationCancelled,
            Event::InvitationExpired => EventType::InvitationExpired,
            Event::InvitationReminderQueued(_) => EventType::InvitationReminderQueued,
            Event::InvitationAddressCorrected(_) => EventType::InvitationAddressCorrected,
            Event::NotificationFailed(_) => EventType::NotificationFailed,
            Event::NotificationCancelled(_) => EventType::NotificationCancelled,
            Event::NotificationLocaleFallback(_) => EventType::NotificationLocaleFallback,
            Event::NotificationBounced(_) => EventType::NotificationBounced,
            Event::NotificationComplained(_) => EventType::NotificationComplained,
            Event::MemberAdded(_) => EventType::MemberAdded,
            Event::MemberRoleChanged(_) => EventType::MemberRoleChanged,
            Event::MemberRemoved(_) => EventType::MemberRemoved,
            Event::OwnershipTransferred(_) => EventType::OwnershipTransferred,
            Event::PartnershipEstablished(_) => EventType::PartnershipEstablished,
            Event::PartnershipEnded(_) => EventType::PartnershipEnded,
            Event::GrantAdded(_) => EventType::GrantAdded,
            Event::GrantRemoved(_) => EventType::GrantRemoved,
            Event::SecurityUpdated(_) => EventType::SecurityUpdated,
            Event::InviteLinkCreated(_) => EventType::InviteLinkCreated,
            Event::InviteLinkRevoked(_) => EventType::InviteLinkRevoked,
            Event::JoinRequestCreated(_) => EventType::JoinRequestCreated,
            Event::JoinRequestApproved(_) => EventType::JoinRequestApproved,
            Event::JoinRequestDenied(_) => EventType::JoinRequestDenied,
            Event::JoinRequestExpired(_) => EventType::JoinRequestExpired,
            Event::DomainVerified(_) => EventType::DomainVerified,
            Event::InvitationSkipped(_) => EventType::InvitationSkipped,
            Event::ConsoleAction(_) => EventType::ConsoleAction,
        }
    }

    /// The `data` object, as stored and sent.
    pub fn data(&self) -> serde_json::Value {
        fn value(data: &impl Serialize) -> serde_json::Value {
            serde_json::to_value(data).expect("event data serialises")
        }
        match self {
            Event::InvitationResent
            | Event::InvitationAccepted
            | Event::InvitationDeclined
            | Event::InvitationCancelled
            | Event::InvitationExpired => serde_json::Value::Object(serde_json::Map::new()),
            Event::InvitationCreated(d) => value(d),
            Event::InvitationRenewed(d) => value(d),
            Event::InvitationSent(d) => value(d),
            Event::InvitationReminderQueued(d) => value(d),
            Event::InvitationAddressCorrected(d) => value(d),
            Event::NotificationFailed(d) => value(d),
            Event::NotificationCancelled(d) => value(d),
            Event::NotificationLocaleFallback(d) => value(d),
            Event::NotificationBounced(d) | Event::NotificationComplained(d) => value(d),
            Event::MemberAdded(d) => value(d),
            Event::MemberRoleChanged(d) => value(d),
            Event::MemberRemoved(d) => value(d),
            Event::OwnershipTransferred(d) => value(d),
            Event::PartnershipEstablished(d) => value(d),
            Event::PartnershipEnded(d) => value(d),
            Event::GrantAdded(d) | Event::GrantRemoved(d) => value(d),
            Event::SecurityUpdated(d) => value(d),
            Event::InviteLinkCreated(d) => value(d),
            Event::InviteLinkRevoked(d) => value(d),
            Event::JoinRequestCreated(d) => value(d),
            Event::JoinRequestApproved(d) => value(d),
            Event::JoinRequestDenied(d) => value(d),
            Event::JoinRequestExpired(d) => value(d),
            Event::DomainVerified(d) => value(d),
            Event::InvitationSkipped(d) => value(d),
            Event::ConsoleAction(d) => value(d),
        }
    }

    /// The event row, written in the transaction of the change (R16).
    pub fn into_new_event(self, subject: Subject<'_>) -> NewEvent {
        NewEvent {
            id: Uuid::now_v7(),
            business_id: Some(subject.business),
            invitation_id: subject.invitation,
            join_request_id: None,
            event_type: self.event_type().as_str().to_string(),
            actor_user_id: subject.actor.cloned(),
            from_status: subject.transition.map(|t| t.0),
            to_status: subject.transition.map(|t| t.1),
            data: self.data(),
        }
    }
}

/// `invitation.created`: a member invitation names its address and role,
/// how it reaches the invitee (R38: `email`, or `none` when the app delivers
/// it; the link itself is never in an event) and the app's own metadata
/// (R39, `{}` when none was given); a partner one names the business it is
/// addressed to.
#[derive(Clone, Debug, PartialEq, Serialize)]
#[serde(untagged)]
pub enum InvitationCreated {
    Member {
        #[serde(serialize_with = "by_name")]
        kind: InvitationKind,
        email: Option<Email>,
        #[serde(serialize_with = "by_name_opt")]
        role: Option<Role>,
        #[serde(serialize_with = "by_name")]
        delivery_mode: DeliveryMode,
        metadata: Metadata,
        /// R53: the verified domain (R52) the invitation was created for;
        /// absent for every other invitation.
        #[serde(skip_serializing_if = "Option::is_none")]
        source_domain: Option<MailDomain>,
    },
    Partner {
        #[serde(serialize_with = "by_name")]
        kind: InvitationKind,
        partner_business_id: BusinessId,
    },
}

impl InvitationCreated {
    pub fn member(
        email: Option<Email>,
        role: Option<Role>,
        delivery_mode: DeliveryMode,
        metadata: Metadata,
    ) -> InvitationCreated {
        InvitationCreated::Member {
            kind: InvitationKind::Member,
            email,
            role,
            delivery_mode,
            metadata,
            source_domain: None,
        }
    }

    /// Names the verified domain a member invitation was created for (R53).
    pub fn from_domain(self, domain: Option<MailDomain>) -> InvitationCreated {
        match self {
            InvitationCreated::Member {
                kind,
                email,
                role,
                delivery_mode,
                metadata,
                ..
            } => InvitationCreated::Member {
                kind,
                email,
                role,
                delivery_mode,
                metadata,
                source_domain: domain,
            },
            partner => partner,
        }
    }

    pub fn partner(kind: InvitationKind, partner_business_id: BusinessId) -> InvitationCreated {
        InvitationCreated::Partner {
            kind,
            partner_business_id,
        }
    }
}

/// `invitation.renewed`, on the old invitation's timeline (R31).
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct InvitationRenewed {
    pub renewed_to: InvitationId,
}

/// `invitation.sent`: the invitation email reached the SMTP server.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct InvitationSent {
    pub message_id: String,
    pub attempts: u32,
    pub smtp_reply: Option<String>,
}

/// `invitation.reminder_queued` (R32).
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct ReminderQueued {
    /// The reminder offset, written as the configuration writes it (`3d`).
    #[serde(serialize_with = "duration")]
    pub after: Duration,
    pub message_id: String,
}

/// `invitation.address_corrected` (R46): the invitation's email did not
/// get through and an inviter gave it another address; a new token and a
/// new email went with it. The old address stays here, in the timeline.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct AddressCorrected {
    /// The address the failed email went to.
    pub previous_email: Email,
    /// The address from now on.
    pub email: Email,
}

/// `notification.failed`: an email was given up on (R27). `template` is the
/// outbox row's, written as its name.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct NotificationFailed {
    pub template: TemplateName,
    pub message_id: String,
    pub attempts: u32,
    pub smtp_code: Option<u16>,
    pub error: Option<String>,
}

/// `notification.cancelled`: an email not sent because it no longer applies.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct NotificationCancelled {
    pub template: TemplateName,
    pub message_id: String,
    pub reason: String,
}

/// `notification.locale_fallback`: an email's template failed to render
/// at send time in `requested_locale` (a custom template raising for this
/// context) and the email was written in `locale`, the next locale of the
/// fallback chain that rendered (issue 12). Written with the attempt that
/// ends the email (sent or given up), once.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct NotificationLocaleFallback {
    pub template: TemplateName,
    pub message_id: String,
    /// The outbox row's locale, as requested.
    pub requested_locale: String,
    /// The locale whose templates were used.
    pub locale: String,
    /// Each locale tried before it, in order, with its render error.
    pub failed: Vec<FailedLocale>,
}

/// One locale of the chain that failed to render.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct FailedLocale {
    pub locale: String,
    pub error: String,
}

/// `notification.bounced` (a hard bounce, R44) and `notification.complained`
/// (the recipient reported the email, R44): news that came back about an
/// email after it was sent.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct DeliveryFeedback {
    pub template: TemplateName,
    pub message_id: String,
    /// The address the email went to.
    pub recipient: String,
    /// The RFC 3463 status (`5.1.1`); for a complaint, its feedback type
    /// (`abuse`).
    pub status_code: Option<String>,
    /// The diagnostic the receiving server gave.
    pub detail: Option<String>,
    /// Where the news came from: `smtp` (the inbound listener) or the
    /// provider whose webhook brought it (`ses`, `postmark`, `sendgrid`,
    /// `mailgun`, `resend`).
    pub source: String,
}

/// `console.action` (R49): an operator changed something through the
/// console, with the API key they signed in with. Written in the
/// transaction of the change, on the invitation it concerns (so it shows
/// in that invitation's timeline), or on the business when no invitation is
/// concerned; an action on something of no business (a runtime webhook
/// endpoint) is an operator event, with no business
/// ([`ConsoleAction::into_operator_event`]).
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct ConsoleAction {
    pub action: ConsoleActionKind,
    /// The name of the API key the console session signed in with.
    pub key_name: String,
    /// What the action was done to: for an email, its Message-ID; for a
    /// webhook endpoint, its id.
    pub target: String,
    /// For a replay: the time the endpoint's events are sent again from.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub since: Option<chrono::DateTime<chrono::Utc>>,
}

impl ConsoleAction {
    /// The event row of an action that concerns no business (a runtime
    /// webhook endpoint's pause, resume or replay): `business_id` is NULL,
    /// and `null` on the wire. The only way to write an event without a
    /// business, so every business's event still has to name it.
    pub fn into_operator_event(self) -> NewEvent {
        let event = Event::ConsoleAction(self);
        NewEvent {
            id: Uuid::now_v7(),
            business_id: None,
            invitation_id: None,
            join_request_id: None,
            event_type: event.event_type().as_str().to_string(),
            actor_user_id: None,
            from_status: None,
            to_status: None,
            data: event.data(),
        }
    }
}

/// What a console action did.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum ConsoleActionKind {
    /// A failed email put back in the outbox (retry one, or retry all
    /// matching a filter).
    RetryEmail,
    /// A runtime webhook endpoint paused (no delivery until resumed).
    PauseWebhook,
    /// A paused endpoint resumed, from where its cursor stopped.
    ResumeWebhook,
    /// An endpoint's events sent again from a time (R48's replay).
    ReplayWebhook,
}

impl ConsoleActionKind {
    /// The name in the event's `data.action` (and the metrics' label).
    pub fn as_str(self) -> &'static str {
        match self {
            ConsoleActionKind::RetryEmail => "retry_email",
            ConsoleActionKind::PauseWebhook => "pause_webhook",
            ConsoleActionKind::ResumeWebhook => "resume_webhook",
            ConsoleActionKind::ReplayWebhook => "replay_webhook",
        }
    }

    pub fn parse(s: &str) -> Option<ConsoleActionKind> {
        [
            ConsoleActionKind::RetryEmail,
            ConsoleActionKind::PauseWebhook,
            ConsoleActionKind::ResumeWebhook,
            ConsoleActionKind::ReplayWebhook,
        ]
        .into_iter()
        .find(|k| k.as_str() == s)
    }
}

/// `member.added`.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct MemberAdded {
    pub user_id: UserId,
    #[serde(serialize_with = "by_name")]
    pub role: Role,
    /// How the member came in, with the id of what let them in where there
    /// is one: `data.via`, beside it `data.invite_link_id` or
    /// `data.join_request_id` (flattened, so the wire format is the same
    /// object it always was). Required, so that every new way in must say
    /// which it is.
    #[serde(flatten)]
    pub via: MemberVia,
}

/// `invite_link.created` (R50): never the code, which only its creator saw.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct InviteLinkCreated {
    pub invite_link_id: InviteLinkId,
    #[serde(serialize_with = "by_name")]
    pub role: Role,
    pub max_uses: u32,
    pub expires_at: chrono::DateTime<chrono::Utc>,
    /// `[]` when any address may redeem it.
    pub allowed_domains: Vec<String>,
}

/// `invite_link.revoked` (R50): the link stopped working with this event;
/// `uses` is how many redemptions it had.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct InviteLinkRevoked {
    pub invite_link_id: InviteLinkId,
    pub uses: u32,
}

/// `member.added`'s `via`: the way a user became a member. The ways in
/// that have an id of their own carry it, so an event can never name a link
/// for a join request or leave the request out; on the wire the id is a
/// field beside `via`, left out of the other ways in (so their data stays as
/// it was).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(tag = "via", rename_all = "snake_case")]
pub enum MemberVia {
    /// The owner of a business, at its creation.
    Created,
    /// A member invitation accepted with the token of its email (R12).
    Token,
    /// A member invitation accepted in the app, by its id (R37).
    InApp,
    /// An invite link redeemed (R50, R53: the link's timeline is the
    /// events that carry its id).
    Link { invite_link_id: InviteLinkId },
    /// A join request approved (R51).
    Request { join_request_id: JoinRequestId },
    /// A verified email domain (R52).
    Domain,
    /// Through a partnership.
    Partner,
}

/// `join_request.created` (R51): a user asked to join the business. The
/// message is not repeated here (it is the request's, read with it).
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct JoinRequestCreated {
    pub join_request_id: JoinRequestId,
    pub user_id: UserId,
    /// Whether the request carries a message.
    pub has_message: bool,
}

/// `join_request.approved` (R51): the request and the role it was approved
/// with; the membership's own `member.added` (`via: request`) follows in
/// the same transaction.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct JoinRequestApproved {
    pub join_request_id: JoinRequestId,
    pub user_id: UserId,
    #[serde(serialize_with = "by_name")]
    pub role: Role,
}

/// `join_request.denied` (R51).
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct JoinRequestDenied {
    pub join_request_id: JoinRequestId,
    pub user_id: UserId,
}

/// `join_request.expired`: the sweep found it pending past its expiry.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct JoinRequestExpired {
    pub join_request_id: JoinRequestId,
    pub user_id: UserId,
}

/// `member.role_changed`.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct MemberRoleChanged {
    pub user_id: UserId,
    #[serde(serialize_with = "by_name")]
    pub from: Role,
    #[serde(serialize_with = "by_name")]
    pub to: Role,
}

/// `member.removed`; `left` when the member removed themselves.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct MemberRemoved {
    pub user_id: UserId,
    #[serde(serialize_with = "by_name")]
    pub role: Role,
    pub left: bool,
}

/// `ownership.transferred` (R5).
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct OwnershipTransferred {
    pub from_user_id: UserId,
    pub to_user_id: UserId,
    #[serde(serialize_with = "by_name")]
    pub previous_owner_role: Role,
}

/// `partnership.established`, on each side (R21). `direction` is the kind of
/// the invitation that made it.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct PartnershipEstablished {
    pub partnership_id: PartnershipId,
    pub partner_business_id: BusinessId,
    #[serde(serialize_with = "by_name")]
    pub direction: InvitationKind,
    pub invited_by: UserId,
}

/// `partnership.ended`, on each side (R23).
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct PartnershipEnded {
    pub partnership_id: PartnershipId,
    pub partner_business_id: BusinessId,
    pub ended_by_business_id: BusinessId,
    pub grants_removed: usize,
}

/// `grant.added` and `grant.removed`: one grant and why it changed.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct GrantChanged {
    pub grant_id: GrantId,
    pub profile_id: ProfileId,
    pub profile_business_id: BusinessId,
    pub permission: Permission,
    /// `{"user_id": ...}` or `{"business_id": ...}`.
    #[serde(serialize_with = "grantee")]
    pub grantee: Grantee,
    pub derived_from: Option<GrantId>,
    pub granted_by: UserId,
    pub cause: GrantCause,
}

/// Why a grant was added or removed.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum GrantCause {
    /// Granted directly (`POST .../grants`).
    Granted,
    /// Carried by an invitation and applied on its acceptance (R13).
    InvitationAccepted,
    /// Carried by an invite link and applied on a redemption (R50).
    InviteLinkRedeemed,
    /// Removed directly.
    Removed,
    /// The grant it derives from was removed in the same change.
    ParentRemoved,
    /// The grantee's membership ended (R23).
    MemberRemoved,
    /// The partnership it depended on ended (R23).
    PartnershipEnded,
}

/// `security.updated`: the two-factor policy changed (R15).
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct SecurityUpdated {
    pub require_2fa: Change<TwoFactorPolicy>,
}

/// `domain.verified` (R52): the business's TXT record was found; from now
/// on the domain works in its mode for the business, and for no other.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct DomainVerified {
    pub domain: MailDomain,
    #[serde(serialize_with = "by_name")]
    pub mode: DomainMode,
}

/// `invitation.skipped` (R52): a verified `auto_invite` domain would have
/// invited a user who registered with an address at it, and a rule
/// refused: no invitation exists, and this says why.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct InvitationSkipped {
    pub user_id: UserId,
    pub email: Email,
    pub source_domain: MailDomain,
    pub reason: SkipReason,
    /// The refusal as the create path worded it.
    pub detail: String,
}

/// Why an automatic invitation was skipped.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum SkipReason {
    /// R8: the business's invitation quota is spent.
    QuotaExceeded,
    /// R9: the seats are taken.
    SeatsExhausted,
    /// R45: the address is on the suppression list.
    AddressSuppressed,
    /// Another refusal (the business has no owner to invite in its name,
    /// say).
    Refused,
}

/// A setting's old and new value.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Change<T: Named> {
    #[serde(serialize_with = "by_name")]
    pub from: T,
    #[serde(serialize_with = "by_name")]
    pub to: T,
}

/// A domain value written by its name (`Role::as_str` and the like); the
/// domain types do not implement `Serialize` themselves.
pub trait Named {
    fn name(&self) -> &str;
}

impl Named for Role {
    fn name(&self) -> &str {
        self.as_str()
    }
}

impl Named for InvitationKind {
    fn name(&self) -> &str {
        self.as_str()
    }
}

impl Named for DeliveryMode {
    fn name(&self) -> &str {
        self.as_str()
    }
}

impl Named for DomainMode {
    fn name(&self) -> &str {
        self.as_str()
    }
}

impl Named for TwoFactorPolicy {
    fn name(&self) -> &str {
        self.as_str()
    }
}

fn by_name<T: Named, S: Serializer>(value: &T, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_str(value.name())
}

fn by_name_opt<T: Named, S: Serializer>(value: &Option<T>, s: S) -> Result<S::Ok, S::Error> {
    match value {
        Some(v) => s.serialize_some(v.name()),
        None => s.serialize_none(),
    }
}

fn duration<S: Serializer>(value: &Duration, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_str(&crate::config::format_duration(*value))
}

fn grantee<S: Serializer>(value: &Grantee, s: S) -> Result<S::Ok, S::Error> {
    let mut map = s.serialize_map(Some(1))?;
    match value {
        Grantee::User(u) => map.serialize_entry("user_id", u)?,
        Grantee::Business(b) => map.serialize_entry("business_id", b)?,
    }
    map.end()
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    /// Every variant, serialised, against the JSON the service wrote with
    /// `json!` before the catalog existed: the bytes apps receive did not move.
    #[test]
    fn every_event_serialises_as_before() {
        let user = UserId::parse("olive").unwrap();
        let other = UserId::parse("ned").unwrap();
        let business = BusinessId(Uuid::from_u128(1));
        let partner = BusinessId(Uuid::from_u128(2));
        let invitation = InvitationId(Uuid::from_u128(3));
        let partnership = PartnershipId(Uuid::from_u128(4));
        let grant = GrantId(Uuid::from_u128(5));
        let profile = ProfileId(Uuid::from_u128(6));
        let link = InviteLinkId(Uuid::from_u128(7));
        let request = JoinRequestId(Uuid::from_u128(8));
        let manager = Role::from_stored("manager");
        let owner = Role::from_stored(Role::OWNER);
        let email = Email::parse("a@b.example").unwrap();
        let grant_changed = |grantee: Grantee, cause| GrantChanged {
            grant_id: grant,
            profile_id: profile,
            profile_business_id: business,
            permission: Permission::Publisher,
            grantee,
            derived_from: None,
            granted_by: user.clone(),
            cause,
        };
        let cases: Vec<(Event, &str, serde_json::Value)> = vec![
            (
                Event::InvitationCreated(InvitationCreated::member(
                    Some(email.clone()),
                    Some(manager.clone()),
                    DeliveryMode::Email,
                    Metadata::default(),
                )),
                "invitation.created",
                json!({"kind": "member", "email": email, "role": "manager",
                       "delivery_mode": "email", "metadata": {}}),
            ),
            (
                Event::InvitationCreated(InvitationCreated::member(
                    Some(email.clone()),
                    None,
                    DeliveryMode::None,
                    Metadata::parse_field(json!({"crm_id": 7, "tags": ["a"]}), "metadata").unwrap(),
                )),
                "invitation.created",
                json!({"kind": "member", "email": email, "role": null,
                       "delivery_mode": "none", "metadata": {"crm_id": 7, "tags": ["a"]}}),
            ),
            (
                Event::InvitationCreated(InvitationCreated::partner(
                    InvitationKind::PartnerRequest,
                    partner,
                )),
                "invitation.created",
                json!({"kind": "partner_request", "partner_business_id": partner}),
            ),
            (
                Event::InvitationCreated(
                    InvitationCreated::member(
                        Some(email.clone()),
                        Some(manager.clone()),
                        DeliveryMode::Email,
                        Metadata::default(),
                    )
                    .from_domain(Some(MailDomain::parse("b.example").unwrap())),
                ),
                "invitation.created",
                json!({"kind": "member", "email": email, "role": "manager",
                       "delivery_mode": "email", "metadata": {}, "source_domain": "b.example"}),
            ),
            (
                Event::InvitationRenewed(InvitationRenewed {
                    renewed_to: invitation,
                }),
                "invitation.renewed",
                json!({"renewed_to": invitation}),
            ),
            (
                Event::InvitationSent(InvitationSent {
                    message_id: "<m@x>".into(),
                    attempts: 2,
                    smtp_reply: Some("250 OK".into()),
                }),
                "invitation.sent",
                json!({"message_id": "<m@x>", "attempts": 2, "smtp_reply": "250 OK"}),
            ),
            (Event::InvitationResent, "invitation.resent", json!({})),
            (Event::InvitationAccepted, "invitation.accepted", json!({})),
            (Event::InvitationDeclined, "invitation.declined", json!({})),
            (
                Event::InvitationCancelled,
                "invitation.cancelled",
                json!({}),
            ),
            (Event::InvitationExpired, "invitation.expired", json!({})),
            (
                Event::InvitationReminderQueued(ReminderQueued {
                    after: Duration::from_secs(3 * 86_400),
                    message_id: "<m@x>".into(),
                }),
                "invitation.reminder_queued",
                json!({"after": crate::config::format_duration(Duration::from_secs(3 * 86_400)), "message_id": "<m@x>"}),
            ),
            (
                Event::InvitationAddressCorrected(AddressCorrected {
                    previous_email: email.clone(),
                    email: Email::parse("c@b.example").unwrap(),
                }),
                "invitation.address_corrected",
                json!({"previous_email": "a@b.example", "email": "c@b.example"}),
            ),
            (
                Event::NotificationFailed(NotificationFailed {
                    template: TemplateName::MemberInvitation,
                    message_id: "<m@x>".into(),
                    attempts: 5,
                    smtp_code: None,
                    error: Some("refused".into()),
                }),
                "notification.failed",
                json!({"template": "member_invitation", "message_id": "<m@x>",
                       "attempts": 5, "smtp_code": null, "error": "refused"}),
            ),
            (
                Event::NotificationCancelled(NotificationCancelled {
                    template: TemplateName::Reminder,
                    message_id: "<m@x>".into(),
                    reason: "not sent: the invitation is accepted".into(),
                }),
                "notification.cancelled",
                json!({"template": "reminder", "message_id": "<m@x>",
                       "reason": "not sent: the invitation is accepted"}),
            ),
            (
                Event::NotificationLocaleFallback(NotificationLocaleFallback {
                    template: TemplateName::MemberInvitation,
                    message_id: "<m@x>".into(),
                    requested_locale: "fr-CA".into(),
                    locale: "en-US".into(),
                    failed: vec![FailedLocale {
                        locale: "fr-CA".into(),
                        error: "cannot render fr-CA/member_invitation.txt".into(),
                    }],
                }),
                "notification.locale_fallback",
                json!({"template": "member_invitation", "message_id": "<m@x>",
                       "requested_locale": "fr-CA", "locale": "en-US",
                       "failed": [{"locale": "fr-CA", "error": "cannot render fr-CA/member_invitation.txt"}]}),
            ),
            (
                Event::NotificationBounced(DeliveryFeedback {
                    template: TemplateName::MemberInvitation,
                    message_id: "<m@x>".into(),
                    recipient: "a@x.example".into(),
                    status_code: Some("5.1.1".into()),
                    detail: Some("smtp; 550 5.1.1 no such user".into()),
                    source: "smtp".into(),
                }),
                "notification.bounced",
                json!({"template": "member_invitation", "message_id": "<m@x>",
                       "recipient": "a@x.example", "status_code": "5.1.1",
                       "detail": "smtp; 550 5.1.1 no such user", "source": "smtp"}),
            ),
            (
                Event::NotificationComplained(DeliveryFeedback {
                    template: TemplateName::MemberInvitation,
                    message_id: "<m@x>".into(),
                    recipient: "a@x.example".into(),
                    status_code: Some("abuse".into()),
                    detail: None,
                    source: "smtp".into(),
                }),
                "notification.complained",
                json!({"template": "member_invitation", "message_id": "<m@x>",
                       "recipient": "a@x.example", "status_code": "abuse",
                       "detail": null, "source": "smtp"}),
            ),
            (
                Event::MemberAdded(MemberAdded {
                    user_id: user.clone(),
                    role: owner.clone(),
                    via: MemberVia::Created,
                }),
                "member.added",
                json!({"role": "owner", "user_id": user, "via": "created"}),
            ),
            (
                Event::MemberAdded(MemberAdded {
                    user_id: other.clone(),
                    role: manager.clone(),
                    via: MemberVia::Link {
                        invite_link_id: link,
                    },
                }),
                "member.added",
                json!({"role": "manager", "user_id": other, "via": "link",
                       "invite_link_id": link}),
            ),
            (
                Event::MemberAdded(MemberAdded {
                    user_id: other.clone(),
                    role: manager.clone(),
                    via: MemberVia::Request {
                        join_request_id: request,
                    },
                }),
                "member.added",
                json!({"role": "manager", "user_id": other, "via": "request",
                       "join_request_id": request}),
            ),
            (
                Event::MemberRoleChanged(MemberRoleChanged {
                    user_id: other.clone(),
                    from: manager.clone(),
                    to: Role::from_stored("viewer"),
                }),
                "member.role_changed",
                json!({"user_id": other, "from": "manager", "to": "viewer"}),
            ),
            (
                Event::MemberRemoved(MemberRemoved {
                    user_id: other.clone(),
                    role: manager.clone(),
                    left: false,
                }),
                "member.removed",
                json!({"user_id": other, "role": "manager", "left": false}),
            ),
            (
                Event::OwnershipTransferred(OwnershipTransferred {
                    from_user_id: user.clone(),
                    to_user_id: other.clone(),
                    previous_owner_role: manager.clone(),
                }),
                "ownership.transferred",
                json!({"from_user_id": user, "to_user_id": other, "previous_owner_role": "manager"}),
            ),
            (
                Event::PartnershipEstablished(PartnershipEstablished {
                    partnership_id: partnership,
                    partner_business_id: partner,
                    direction: InvitationKind::PartnerInvite,
                    invited_by: user.clone(),
                }),
                "partnership.established",
                json!({"partnership_id": partnership, "partner_business_id": partner,
                       "direction": "partner_invite", "invited_by": user}),
            ),
            (
                Event::PartnershipEnded(PartnershipEnded {
                    partnership_id: partnership,
                    partner_business_id: partner,
                    ended_by_business_id: business,
                    grants_removed: 3,
                }),
                "partnership.ended",
                json!({"partnership_id": partnership, "partner_business_id": partner,
                       "ended_by_business_id": business, "grants_removed": 3}),
            ),
            (
                Event::GrantAdded(grant_changed(
                    Grantee::User(other.clone()),
                    GrantCause::InvitationAccepted,
                )),
                "grant.added",
                json!({"grant_id": grant, "profile_id": profile, "profile_business_id": business,
                       "permission": "publisher", "grantee": {"user_id": other},
                       "derived_from": null, "granted_by": user, "cause": "invitation_accepted"}),
            ),
            (
                Event::GrantRemoved(GrantChanged {
                    derived_from: Some(grant),
                    ..grant_changed(Grantee::Business(partner), GrantCause::ParentRemoved)
                }),
                "grant.removed",
                json!({"grant_id": grant, "profile_id": profile, "profile_business_id": business,
                       "permission": "publisher", "grantee": {"business_id": partner},
                       "derived_from": grant, "granted_by": user, "cause": "parent_removed"}),
            ),
            (
                Event::SecurityUpdated(SecurityUpdated {
                    require_2fa: Change {
                        from: TwoFactorPolicy::Off,
                        to: TwoFactorPolicy::Managers,
                    },
                }),
                "security.updated",
                json!({"require_2fa": {"from": "off", "to": "managers"}}),
            ),
            (
                Event::InviteLinkCreated(InviteLinkCreated {
                    invite_link_id: link,
                    role: manager.clone(),
                    max_uses: 3,
                    expires_at: chrono::DateTime::from_timestamp(1_800_000_000, 0).unwrap(),
                    allowed_domains: vec!["b.example".into()],
                }),
                "invite_link.created",
                json!({"invite_link_id": link, "role": "manager", "max_uses": 3,
                       "expires_at": "2027-01-15T08:00:00Z", "allowed_domains": ["b.example"]}),
            ),
            (
                Event::InviteLinkRevoked(InviteLinkRevoked {
                    invite_link_id: link,
                    uses: 2,
                }),
                "invite_link.revoked",
                json!({"invite_link_id": link, "uses": 2}),
            ),
            (
                Event::JoinRequestCreated(JoinRequestCreated {
                    join_request_id: request,
                    user_id: user.clone(),
                    has_message: true,
                }),
                "join_request.created",
                json!({"join_request_id": request, "user_id": user, "has_message": true}),
            ),
            (
                Event::JoinRequestApproved(JoinRequestApproved {
                    join_request_id: request,
                    user_id: user.clone(),
                    role: manager.clone(),
                }),
                "join_request.approved",
                json!({"join_request_id": request, "user_id": user, "role": "manager"}),
            ),
            (
                Event::JoinRequestDenied(JoinRequestDenied {
                    join_request_id: request,
                    user_id: user.clone(),
                }),
                "join_request.denied",
                json!({"join_request_id": request, "user_id": user}),
            ),
            (
                Event::JoinRequestExpired(JoinRequestExpired {
                    join_request_id: request,
                    user_id: user.clone(),
                }),
                "join_request.expired",
                json!({"join_request_id": request, "user_id": user}),
            ),
            (
                Event::DomainVerified(DomainVerified {
                    domain: MailDomain::parse("b.example").unwrap(),
                    mode: DomainMode::AutoInvite,
                }),
                "domain.verified",
                json!({"domain": "b.example", "mode": "auto_invite"}),
            ),
            (
                Event::InvitationSkipped(InvitationSkipped {
                    user_id: other.clone(),
                    email: email.clone(),
                    source_domain: MailDomain::parse("b.example").unwrap(),
                    reason: SkipReason::QuotaExceeded,
                    detail: "rate limited".into(),
                }),
                "invitation.skipped",
                json!({"user_id": other, "email": "a@b.example", "source_domain": "b.example",
                       "reason": "quota_exceeded", "detail": "rate limited"}),
            ),
            (
                Event::ConsoleAction(ConsoleAction {
                    action: ConsoleActionKind::RetryEmail,
                    key_name: "operator".into(),
                    target: "<m1@example.test>".into(),
                    since: None,
                }),
                "console.action",
                json!({"action": "retry_email", "key_name": "operator", "target": "<m1@example.test>"}),
            ),
            (
                Event::ConsoleAction(ConsoleAction {
                    action: ConsoleActionKind::ReplayWebhook,
                    key_name: "operator".into(),
                    target: Uuid::nil().to_string(),
                    since: Some("2026-12-03T10:00:00Z".parse().unwrap()),
                }),
                "console.action",
                json!({"action": "replay_webhook", "key_name": "operator",
                       "target": "00000000-0000-0000-0000-000000000000",
                       "since": "2026-12-03T10:00:00Z"}),
            ),
        ];
        let mut seen = std::collections::BTreeSet::new();
        for (event, name, data) in cases {
            assert_eq!(event.event_type().as_str(), name);
            assert_eq!(name.parse::<EventType>(), Ok(event.event_type()));
            // Byte for byte, as the store and the sinks write it.
            assert_eq!(
                serde_json::to_string(&event.data()).unwrap(),
                serde_json::to_string(&data).unwrap(),
                "{name}"
            );
            seen.insert(name);
        }
        assert_eq!(seen.len(), EventType::ALL.len(), "a type has no case");
    }

    #[test]
    fn console_actions_keep_their_names() {
        for (kind, name) in [
            (ConsoleActionKind::RetryEmail, "retry_email"),
            (ConsoleActionKind::PauseWebhook, "pause_webhook"),
            (ConsoleActionKind::ResumeWebhook, "resume_webhook"),
            (ConsoleActionKind::ReplayWebhook, "replay_webhook"),
        ] {
            assert_eq!(serde_json::to_value(kind).unwrap(), json!(name));
            assert_eq!(kind.as_str(), name);
            assert_eq!(ConsoleActionKind::parse(name), Some(kind));
        }
        assert_eq!(ConsoleActionKind::parse("bogus"), None);
    }

    #[test]
    fn an_operator_event_names_no_business() {
        let row = ConsoleAction {
            action: ConsoleActionKind::PauseWebhook,
            key_name: "ops".into(),
            target: Uuid::nil().to_string(),
            since: None,
        }
        .into_operator_event();
        assert_eq!(row.business_id, None);
        assert_eq!(row.invitation_id, None);
        assert_eq!(row.event_type, "console.action");
        assert_eq!(
            row.data,
            json!({"action": "pause_webhook", "key_name": "ops", "target": Uuid::nil()})
        );
    }

    #[test]
    fn the_ways_in_keep_their_names() {
        let link = InviteLinkId(Uuid::from_u128(7));
        let request = JoinRequestId(Uuid::from_u128(8));
        for (via, wire) in [
            (MemberVia::Created, json!({"via": "created"})),
            (MemberVia::Token, json!({"via": "token"})),
            (MemberVia::InApp, json!({"via": "in_app"})),
            (
                MemberVia::Link {
                    invite_link_id: link,
                },
                json!({"via": "link", "invite_link_id": link}),
            ),
            (
                MemberVia::Request {
                    join_request_id: request,
                },
                json!({"via": "request", "join_request_id": request}),
            ),
            (MemberVia::Domain, json!({"via": "domain"})),
            (MemberVia::Partner, json!({"via": "partner"})),
        ] {
            assert_eq!(serde_json::to_value(via).unwrap(), wire);
        }
    }

    #[test]
    fn grant_causes_keep_their_names() {
        for (cause, name) in [
            (GrantCause::Granted, "granted"),
            (GrantCause::InvitationAccepted, "invitation_accepted"),
            (GrantCause::InviteLinkRedeemed, "invite_link_redeemed"),
            (GrantCause::Removed, "removed"),
            (GrantCause::ParentRemoved, "parent_removed"),
            (GrantCause::MemberRemoved, "member_removed"),
            (GrantCause::PartnershipEnded, "partnership_ended"),
        ] {
            assert_eq!(serde_json::to_value(cause).unwrap(), json!(name));
        }
    }

    #[test]
    fn each_lifecycle_command_writes_its_event() {
        for (command, name) in [
            (Command::Accept, "invitation.accepted"),
            (Command::Decline, "invitation.declined"),
            (Command::Cancel, "invitation.cancelled"),
            (Command::Resend, "invitation.resent"),
            (Command::Expire, "invitation.expired"),
        ] {
            assert_eq!(Event::of_command(command).event_type().as_str(), name);
        }
    }

    #[test]
    fn the_row_carries_the_subject_and_the_transition() {
        let actor = UserId::parse("olive").unwrap();
        let row = Event::InvitationCancelled.into_new_event(Subject {
            business: BusinessId(Uuid::nil()),
            invitation: Some(InvitationId(Uuid::nil())),
            actor: Some(&actor),
            transition: Some((InvitationStatus::Pending, InvitationStatus::Cancelled)),
        });
        assert_eq!(row.event_type, "invitation.cancelled");
        assert_eq!(row.actor_user_id, Some(actor));
        assert_eq!(row.from_status, Some(InvitationStatus::Pending));
        assert_eq!(row.to_status, Some(InvitationStatus::Cancelled));
        assert_eq!(row.data, json!({}));
    }
}
