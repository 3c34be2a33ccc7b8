//! Why a domain rule refused a command. The HTTP layer maps each variant to a status
//! and a problem code; nothing here knows about HTTP.

use std::time::Duration;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DomainError {
    /// Bad input, naming the field (R18).
    #[error("{field}: {message}")]
    Validation { field: String, message: String },
    /// The actor lacks a capability or the rank for what they asked (R2–R6).
    #[error("forbidden: {0}")]
    Forbidden(String),
    #[error("not found: {0}")]
    NotFound(String),
    /// Already a member, already invited, or a similar clash (R13).
    #[error("conflict: {0}")]
    Conflict(String),
    /// The invitation's state does not allow the command (R10).
    #[error("cannot {command} an invitation that is {from}")]
    InvalidTransition { from: String, command: String },
    /// A join request's state does not allow the command (R51): the same
    /// `invalid_transition` as an invitation's.
    #[error("cannot {command} a join request that is {from}")]
    JoinRequestTransition { from: String, command: String },
    /// The invitation quota (R8) or the resend cooldown (R14) is used up.
    #[error("rate limited: {detail}")]
    RateLimited {
        retry_after: Duration,
        detail: String,
    },
    /// Members plus pending member invitations would pass the seat limit (R9).
    #[error("seats exhausted: {0}")]
    SeatsExhausted(String),
    #[error("the invitation token is not valid")]
    TokenInvalid,
    #[error("the invitation token was already used")]
    TokenUsed,
    #[error("the invitation has expired")]
    TokenExpired,
    #[error("two-factor authentication is required")]
    MfaRequired,
    /// An answer in the app (R37) without the app's word that the user's
    /// email is verified: the invitation is addressed to an address, and
    /// only its verified owner may answer it without the emailed token.
    #[error("the app must state that the user verified their email (email_verified: true)")]
    EmailUnverified,
    /// R45: invitees whose addresses are on the suppression list (every one
    /// of the request, so the caller can fix them all at once).
    #[error("{}", .0.iter().map(super::SuppressedInvitee::message).collect::<Vec<_>>().join("; "))]
    AddressSuppressed(Vec<super::SuppressedInvitee>),
    /// R50: no link has this code (or it cannot be one). Says nothing more.
    #[error("the invite link is not valid")]
    LinkInvalid,
    #[error("the invite link was revoked")]
    LinkRevoked,
    #[error("the invite link has expired")]
    LinkExpired,
    #[error("the invite link has no uses left")]
    LinkExhausted,
    /// R50: the user's address is not at one of the link's allowed domains.
    #[error("the user's email domain is not allowed by this invite link")]
    DomainNotAllowed,
}

impl DomainError {
    pub fn validation(field: impl Into<String>, message: impl Into<String>) -> Self {
        DomainError::Validation {
            field: field.into(),
            message: message.into(),
        }
    }

    pub fn forbidden(reason: impl Into<String>) -> Self {
        DomainError::Forbidden(reason.into())
    }
}
