//! What an invitation's preview says about it (R35): whether it can still be
//! accepted and, if not, why, as of a time. The answers name the token
//! problems an accept would get (R12) and the two terminal states an accept
//! reports as `token_used`, so the landing page can tell them apart.

use chrono::{DateTime, Utc};

use super::lifecycle::{InvitationStatus, InvitationView};

/// Why an invitation can no longer be accepted.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Unacceptable {
    /// Accepted already (an accept answers `token_used`).
    TokenUsed,
    /// Past its expiry, swept or not (an accept answers `token_expired`).
    TokenExpired,
    Cancelled,
    Declined,
}

impl Unacceptable {
    pub const ALL: [Unacceptable; 4] = [
        Unacceptable::TokenUsed,
        Unacceptable::TokenExpired,
        Unacceptable::Cancelled,
        Unacceptable::Declined,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Unacceptable::TokenUsed => "token_used",
            Unacceptable::TokenExpired => "token_expired",
            Unacceptable::Cancelled => "cancelled",
            Unacceptable::Declined => "declined",
        }
    }
}

/// `None` while the invitation can be accepted at `now`, else why not.
pub fn unacceptable(inv: &InvitationView, now: DateTime<Utc>) -> Option<Unacceptable> {
    match inv.effective_status(now) {
        InvitationStatus::Pending => None,
        InvitationStatus::Accepted => Some(Unacceptable::TokenUsed),
        InvitationStatus::Expired => Some(Unacceptable::TokenExpired),
        InvitationStatus::Cancelled => Some(Unacceptable::Cancelled),
        InvitationStatus::Declined => Some(Unacceptable::Declined),
    }
}

#[cfg(test)]
mod tests {
    use chrono::TimeZone;

    use super::*;
    use crate::domain::InvitationKind;
    use InvitationStatus::*;

    fn at(secs: i64) -> DateTime<Utc> {
        Utc.timestamp_opt(1_800_000_000 + secs, 0).unwrap()
    }

    fn inv(status: InvitationStatus) -> InvitationView {
        InvitationView {
            kind: InvitationKind::Member,
            status,
            expires_at: at(1000),
        }
    }

    #[test]
    fn each_state_has_its_answer() {
        for (status, want) in [
            (Pending, None),
            (Accepted, Some(Unacceptable::TokenUsed)),
            (Expired, Some(Unacceptable::TokenExpired)),
            (Cancelled, Some(Unacceptable::Cancelled)),
            (Declined, Some(Unacceptable::Declined)),
        ] {
            assert_eq!(unacceptable(&inv(status), at(0)), want, "{status}");
        }
    }

    /// R11: pending past its expiry is expired before the sweep moves it;
    /// the expiry instant itself is already too late.
    #[test]
    fn pending_past_its_expiry_is_expired() {
        assert_eq!(unacceptable(&inv(Pending), at(999)), None);
        assert_eq!(
            unacceptable(&inv(Pending), at(1000)),
            Some(Unacceptable::TokenExpired)
        );
        assert_eq!(
            unacceptable(&inv(Declined), at(2000)),
            Some(Unacceptable::Declined)
        );
    }
}
