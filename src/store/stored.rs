//! Reading stored values back into domain types, shared by both adapters:
//! the columns hold only what the domain wrote, so a value that does not
//! parse is a corrupt row, reported as such.

use super::{OutboxStatus, StoreError, StoreResult};
use crate::domain::access::InvitationGrant;
use crate::domain::partners::TwoFactorPolicy;
use crate::domain::{Email, InvitationStatus, Locale, TemplateName, UserId};

pub(crate) fn corrupt(what: &str, value: &str) -> StoreError {
    StoreError::Other(format!("stored {what} {value:?} does not parse"))
}

pub(crate) fn user_id(raw: String) -> StoreResult<UserId> {
    UserId::parse(&raw).map_err(|_| corrupt("user id", &raw))
}

pub(crate) fn email(raw: String) -> StoreResult<Email> {
    Email::parse(&raw).map_err(|_| corrupt("email", &raw))
}

pub(crate) fn locale(raw: String) -> StoreResult<Locale> {
    Locale::parse(&raw).map_err(|_| corrupt("locale", &raw))
}

pub(crate) fn status(raw: &str) -> StoreResult<InvitationStatus> {
    InvitationStatus::parse(raw).ok_or_else(|| corrupt("status", raw))
}

pub(crate) fn two_factor(raw: String) -> StoreResult<TwoFactorPolicy> {
    TwoFactorPolicy::parse(&raw).ok_or_else(|| corrupt("2FA policy", &raw))
}

pub(crate) fn outbox_status(raw: String) -> StoreResult<OutboxStatus> {
    OutboxStatus::parse(&raw).ok_or_else(|| corrupt("outbox status", &raw))
}

pub(crate) fn template(raw: String) -> StoreResult<TemplateName> {
    TemplateName::parse(&raw).ok_or_else(|| corrupt("template", &raw))
}

/// An invitation's grants: a JSON list (JSON null, which no build wrote
/// but the column allows, reads as none).
pub(crate) fn grants(stored: serde_json::Value) -> StoreResult<Vec<InvitationGrant>> {
    if stored.is_null() {
        return Ok(Vec::new());
    }
    serde_json::from_value(stored.clone()).map_err(|_| corrupt("grants", &stored.to_string()))
}

/// The grants as stored: through `serde_json::Value`, so the bytes are the
/// ones earlier builds wrote.
pub(crate) fn grants_json(grants: &[InvitationGrant]) -> serde_json::Value {
    InvitationGrant::to_stored(grants)
}
