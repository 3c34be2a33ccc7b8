//! Use cases: each public function is one operation of the API, carried out in
//! one store transaction: read what the rules need (under row locks), ask the
//! pure domain, then write the change with its events and outbox rows.
//! Nothing here knows about HTTP or SQL.

pub mod access;
pub mod businesses;
pub mod chores;
pub mod console;
pub mod delivery;
pub mod domains;
pub mod emails;
pub mod feedback;
pub mod invitations;
pub mod invite_links;
pub mod invitee;
pub mod join_requests;
pub mod members;
pub mod partners;
pub mod renew;
pub mod suppressions;

use std::sync::Arc;
use std::time::Duration;

use crate::domain::quota::QuotaPolicy;
use crate::domain::{
    BusinessId, DomainError, InvitationId, InvitationStatus, Locale, RoleCatalog, RolePreset,
    UserId,
};
use crate::events::catalog::{Event, Subject};
use crate::store::{
    BusinessRecord, Constraint, MemberRecord, NewEvent, Store, StoreError, StoreTx,
};

/// The rules' settings, from the configuration.
#[derive(Clone, Debug)]
pub struct Settings {
    pub default_preset: RolePreset,
    pub quota: QuotaPolicy,
    pub ttl: Duration,
    /// R39: the longest lifetime a creation may ask for.
    pub max_ttl: Duration,
    pub resend_cooldown: Duration,
    /// R32: reminder offsets after creation, ascending.
    pub reminders: Vec<Duration>,
    pub default_locale: Locale,
    /// The domain of Message-IDs, taken from the sender address.
    pub message_id_domain: String,
    /// `links.accept_url`, with `{token}` to replace: the link handed to the
    /// app of an invitation it delivers itself (R38).
    pub accept_url: String,
    /// `links.invite_link_url`, with `{code}` to replace: the `url` of a
    /// new invite link (R50).
    pub invite_link_url: String,
    /// `links.join_request_url`, with `{join_request_id}` to replace: the
    /// button of the join request email (R51).
    pub join_request_url: String,
    /// `join_requests.rate_limit`: join requests per user in a window (R51).
    pub join_request_quota: QuotaPolicy,
    /// R52: `domains.resolver`, the DNS server TXT records are read from
    /// (`None`: the system's).
    pub domain_resolver: Option<std::net::SocketAddr>,
}

#[derive(Debug, thiserror::Error)]
pub enum ServiceError {
    #[error(transparent)]
    Domain(#[from] DomainError),
    #[error(transparent)]
    Store(StoreError),
    /// A part of the daemon that should have run the command is not there
    /// (an actor stopped mid-request, the daemon is shutting down).
    #[error("unavailable: {0}")]
    Unavailable(String),
}

impl From<StoreError> for ServiceError {
    fn from(e: StoreError) -> Self {
        match e {
            // A unique index caught what a concurrent request slipped past the
            // check: the same answer as the check would have given.
            StoreError::Conflict(constraint) => {
                ServiceError::Domain(DomainError::Conflict(match constraint {
                    Constraint::OnePendingPerAddress => {
                        "this address already has a pending invitation".into()
                    }
                    Constraint::MemberOnce => "this user is already a member".into(),
                    Constraint::OnePendingPerPair => {
                        "a partner invitation between the two businesses is already pending".into()
                    }
                    Constraint::OneLivePartnership => {
                        "the two businesses are already partners".into()
                    }
                    Constraint::OneGrantPerGrantee => "this grant already exists".into(),
                    Constraint::OnePendingJoinRequest => {
                        "this user already has a pending join request to this business".into()
                    }
                    Constraint::DomainClaimedOnce => {
                        "this business already claimed this domain".into()
                    }
                    Constraint::DomainVerifiedOnce => {
                        "this domain is already verified for another business".into()
                    }
                    Constraint::Other(name) => format!("already exists ({name})"),
                }))
            }
            other => ServiceError::Store(other),
        }
    }
}

pub type ServiceResult<T> = Result<T, ServiceError>;

/// Everything a use case needs: the store, the settings and the token key.
#[derive(Clone)]
pub struct Services {
    pub store: Arc<dyn Store>,
    pub settings: Arc<Settings>,
    pub token_key: Arc<Vec<u8>>,
    /// The console sessions found live here lately (R49).
    pub console_sessions: Arc<console::LiveSessions>,
}

impl Settings {
    /// The settings of a configuration, whose values are already parsed.
    /// (Fallible for the callers' sake; nothing here can fail any more.)
    pub fn from_config(config: &crate::config::Config) -> Result<Settings, DomainError> {
        Ok(Settings {
            default_preset: config.roles.preset,
            quota: QuotaPolicy {
                limit: config.invitations.rate_limit.count,
                window: config.invitations.rate_limit.window,
            },
            ttl: config.invitations.ttl,
            max_ttl: config.invitations.max_ttl,
            resend_cooldown: config.invitations.resend_cooldown,
            reminders: config.invitations.reminders.clone(),
            default_locale: config.templates.default_locale.clone(),
            message_id_domain: config.mail.from.domain().to_string(),
            accept_url: config.links.accept_url.clone(),
            invite_link_url: config.links.invite_link_url.clone(),
            join_request_url: config.links.join_request_url.clone(),
            join_request_quota: QuotaPolicy {
                limit: config.join_requests.rate_limit.count,
                window: config.join_requests.rate_limit.window,
            },
            domain_resolver: config.domains.resolver,
        })
    }
}

impl Services {
    /// Wires the use cases to a store, reading (or creating) the token key.
    pub async fn new(store: Arc<dyn Store>, settings: Settings) -> Result<Services, StoreError> {
        let token_key = store.token_key().await?;
        Ok(Services {
            store,
            settings: Arc::new(settings),
            token_key: Arc::new(token_key),
            console_sessions: Arc::default(),
        })
    }

    pub fn catalog(&self, preset: RolePreset) -> RoleCatalog {
        RoleCatalog::preset(preset)
    }
}

/// The actor's membership, or `forbidden` for someone outside the business.
pub(crate) async fn require_member(
    tx: &mut dyn StoreTx,
    business: BusinessId,
    actor: &UserId,
) -> ServiceResult<MemberRecord> {
    tx.get_member(business, actor).await?.ok_or_else(|| {
        DomainError::forbidden(format!("user {actor} is not a member of this business")).into()
    })
}

/// The business, locked for the rest of the transaction, or `not_found`.
pub(crate) async fn lock_business(
    tx: &mut dyn StoreTx,
    id: BusinessId,
) -> ServiceResult<BusinessRecord> {
    tx.lock_business(id)
        .await?
        .ok_or_else(|| DomainError::NotFound(format!("business {id}")).into())
}

/// An event row for the same transaction (R16); the catalog decides its
/// type and data.
pub(crate) fn event(
    business: BusinessId,
    invitation: Option<InvitationId>,
    actor: Option<&UserId>,
    transition: Option<(InvitationStatus, InvitationStatus)>,
    data: Event,
) -> NewEvent {
    data.into_new_event(Subject {
        business,
        invitation,
        actor,
        transition,
    })
}
