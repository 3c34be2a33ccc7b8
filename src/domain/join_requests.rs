//! A join request's state machine (R51), the same shape as the invitation
//! lifecycle (`lifecycle::apply`): `apply(view, command, now)` answers the
//! next status or why the command cannot apply.
//!
//! ```text
//!            approve                 deny                 expire (now >= expires_at)
//! pending ─────────▶ approved   pending ─▶ denied   pending ─────────▶ expired
//! ```
//! Terminal states never change. A pending request whose `expires_at` has
//! passed counts as expired for every command, sweep or no sweep (as R11
//! says of invitations).

use std::fmt;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use super::DomainError;

/// The id of one join request.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(transparent)]
pub struct JoinRequestId(pub Uuid);

impl JoinRequestId {
    /// A new time-ordered (v7) id.
    pub fn new() -> Self {
        Self(Uuid::now_v7())
    }
}

impl Default for JoinRequestId {
    fn default() -> Self {
        Self::new()
    }
}

impl fmt::Display for JoinRequestId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.fmt(f)
    }
}

impl fmt::Debug for JoinRequestId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "JoinRequestId({})", self.0)
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum JoinRequestStatus {
    Pending,
    Approved,
    Denied,
    Expired,
}

impl JoinRequestStatus {
    pub const ALL: [JoinRequestStatus; 4] = [
        JoinRequestStatus::Pending,
        JoinRequestStatus::Approved,
        JoinRequestStatus::Denied,
        JoinRequestStatus::Expired,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            JoinRequestStatus::Pending => "pending",
            JoinRequestStatus::Approved => "approved",
            JoinRequestStatus::Denied => "denied",
            JoinRequestStatus::Expired => "expired",
        }
    }

    pub fn parse(raw: &str) -> Option<JoinRequestStatus> {
        Self::ALL.into_iter().find(|s| s.as_str() == raw)
    }
}

impl fmt::Display for JoinRequestStatus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// What the state machine needs to know of a request.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct JoinRequestView {
    pub status: JoinRequestStatus,
    pub expires_at: DateTime<Utc>,
}

impl JoinRequestView {
    /// The status as of `now`: a pending request past its expiry is expired.
    pub fn effective_status(&self, now: DateTime<Utc>) -> JoinRequestStatus {
        if self.status == JoinRequestStatus::Pending && now >= self.expires_at {
            JoinRequestStatus::Expired
        } else {
            self.status
        }
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum JoinCommand {
    /// An owner or inviter of the business lets the user in.
    Approve,
    /// An owner or inviter of the business says no.
    Deny,
    /// The sweep found it past its expiry.
    Expire,
}

impl JoinCommand {
    pub fn as_str(self) -> &'static str {
        match self {
            JoinCommand::Approve => "approve",
            JoinCommand::Deny => "deny",
            JoinCommand::Expire => "expire",
        }
    }
}

/// The whole state machine: the next status, or `invalid_transition`
/// naming the status the request is in (by `now`) and the command.
pub fn apply(
    view: &JoinRequestView,
    command: JoinCommand,
    now: DateTime<Utc>,
) -> Result<JoinRequestStatus, DomainError> {
    use JoinCommand::*;
    use JoinRequestStatus::*;
    let status = view.effective_status(now);
    match (status, command) {
        (Pending, Approve) => Ok(Approved),
        (Pending, Deny) => Ok(Denied),
        // Only the sweep expires, and only a stored `pending` whose time has come.
        (Expired, Expire) if view.status == Pending => Ok(Expired),
        _ => Err(DomainError::JoinRequestTransition {
            from: status.as_str().to_string(),
            command: command.as_str().to_string(),
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    fn t(secs: i64) -> DateTime<Utc> {
        Utc.timestamp_opt(1_800_000_000 + secs, 0).unwrap()
    }

    fn view(status: JoinRequestStatus) -> JoinRequestView {
        JoinRequestView {
            status,
            expires_at: t(100),
        }
    }

    #[test]
    fn a_pending_request_is_approved_or_denied_once() {
        use JoinCommand::*;
        use JoinRequestStatus::*;
        assert_eq!(apply(&view(Pending), Approve, t(0)), Ok(Approved));
        assert_eq!(apply(&view(Pending), Deny, t(0)), Ok(Denied));
        for terminal in [Approved, Denied, Expired] {
            for command in [Approve, Deny, Expire] {
                let err = apply(&view(terminal), command, t(0)).unwrap_err();
                assert!(
                    matches!(err, DomainError::JoinRequestTransition { .. }),
                    "{terminal} {command:?}: {err}"
                );
            }
        }
    }

    #[test]
    fn a_request_past_its_expiry_is_expired_sweep_or_no_sweep() {
        use JoinCommand::*;
        use JoinRequestStatus::*;
        assert!(apply(&view(Pending), Approve, t(100)).is_err());
        assert!(apply(&view(Pending), Deny, t(200)).is_err());
        assert_eq!(apply(&view(Pending), Expire, t(100)), Ok(Expired));
        // Not before its time, and not twice.
        assert!(apply(&view(Pending), Expire, t(99)).is_err());
        assert!(apply(&view(Expired), Expire, t(200)).is_err());
        let err = apply(&view(Pending), Approve, t(100)).unwrap_err();
        assert_eq!(
            err.to_string(),
            "cannot approve a join request that is expired"
        );
    }
}
