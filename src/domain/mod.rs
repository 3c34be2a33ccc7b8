//! The pure core: types and rules of invitations, roles and quotas. No I/O crate is
//! imported here and time is always an argument, so every rule is a plain function
//! that the tests drive table by table.

pub mod access;
pub mod email;
pub mod error;
pub mod ids;
pub mod invite_link;
pub mod invitee;
pub mod join_requests;
pub mod lifecycle;
pub mod locale;
pub mod mail_domain;
pub mod members;
pub mod names;
pub mod options;
pub mod partners;
pub mod quota;
pub mod retry;
pub mod roles;
pub mod suppression;
pub mod template;
pub mod time_zone;
pub mod token;

pub use email::Email;
pub use error::DomainError;
pub use ids::{
    BusinessId, GrantId, InvitationId, InviteLinkId, PartnershipId, ProfileId, PublicBusinessId,
    UserId,
};
pub use join_requests::{JoinRequestId, JoinRequestStatus};
pub use lifecycle::{Command, Decision, Effect, InvitationKind, InvitationStatus, InvitationView};
pub use locale::Locale;
pub use mail_domain::{DomainMode, MailDomain, VerificationValue};
pub use names::{BusinessName, DisplayName};
pub use options::{DeliveryMode, Metadata};
pub use roles::{Capability, Role, RoleCatalog, RolePreset};
pub use suppression::{SuppressedInvitee, SuppressionReason};
pub use template::TemplateName;
pub use time_zone::TimeZone;
pub use token::{InvitationToken, TokenHash, TokenNonce};

/// The longest personal message an invitation may carry (R7).
pub const MAX_MESSAGE_CHARS: usize = 1000;
