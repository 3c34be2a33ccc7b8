//! Reading stored values back into domain types, shared by both adapters:
//! the columns hold only what the domain wrote, so a value that does not
//! parse is a corrupt row, reported as such.

use super::{StoreError, StoreResult};
use crate::domain::{Email, InvitationStatus, Locale, UserId};

/// The business columns every adapter selects, in this order.
pub(crate) const BUSINESS_COLUMNS: &str =
    "id, public_id, name, role_preset, seat_limit, locale, require_2fa, created_at, updated_at";

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
