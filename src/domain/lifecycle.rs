//! The invitation state machine (R10–R14) as one pure function:
//! `apply(invitation, command, now) -> Decision | DomainError`.
//!
//! ```text
//!            accept                 decline               cancel           expire (now >= expires_at)
//! pending ─────────▶ accepted   pending ─▶ declined   pending ─▶ cancelled   pending ─▶ expired
//! ```
//! Terminal states never change. A pending invitation whose `expires_at` has
//! passed counts as expired for every command, sweep or no sweep (R11).

use std::fmt;

use chrono::{DateTime, Utc};

use super::DomainError;

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum InvitationStatus {
    Pending,
    Accepted,
    Declined,
    Cancelled,
    Expired,
}

impl InvitationStatus {
    pub const ALL: [InvitationStatus; 5] = [
        InvitationStatus::Pending,
        InvitationStatus::Accepted,
        InvitationStatus::Declined,
        InvitationStatus::Cancelled,
        InvitationStatus::Expired,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            InvitationStatus::Pending => "pending",
            InvitationStatus::Accepted => "accepted",
            InvitationStatus::Declined => "declined",
            InvitationStatus::Cancelled => "cancelled",
            InvitationStatus::Expired => "expired",
        }
    }

    pub fn parse(raw: &str) -> Option<InvitationStatus> {
        Self::ALL.into_iter().find(|s| s.as_str() == raw)
    }

    pub fn is_terminal(self) -> bool {
        self != InvitationStatus::Pending
    }
}

impl fmt::Display for InvitationStatus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum InvitationKind {
    Member,
    PartnerInvite,
    PartnerRequest,
}

impl InvitationKind {
    pub fn as_str(self) -> &'static str {
        match self {
            InvitationKind::Member => "member",
            InvitationKind::PartnerInvite => "partner_invite",
            InvitationKind::PartnerRequest => "partner_request",
        }
    }

    pub fn parse(raw: &str) -> Option<InvitationKind> {
        [
            InvitationKind::Member,
            InvitationKind::PartnerInvite,
            InvitationKind::PartnerRequest,
        ]
        .into_iter()
        .find(|k| k.as_str() == raw)
    }
}

/// What the state machine needs to know of an invitation.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct InvitationView {
    pub kind: InvitationKind,
    pub status: InvitationStatus,
    pub expires_at: DateTime<Utc>,
}

impl InvitationView {
    /// The status as of `now`: a pending invitation past its expiry is expired.
    pub fn effective_status(&self, now: DateTime<Utc>) -> InvitationStatus {
        if self.status == InvitationStatus::Pending && now >= self.expires_at {
            InvitationStatus::Expired
        } else {
            self.status
        }
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Command {
    /// The recipient accepts, presenting the token (member) or as a manager of
    /// the receiving business (partner).
    Accept,
    Decline,
    /// The sending business withdraws it.
    Cancel,
    /// Send the same email again, same token and expiry (R14).
    Resend,
    /// The sweep found it past its expiry (R11).
    Expire,
}

impl Command {
    pub const ALL: [Command; 5] = [
        Command::Accept,
        Command::Decline,
        Command::Cancel,
        Command::Resend,
        Command::Expire,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Command::Accept => "accept",
            Command::Decline => "decline",
            Command::Cancel => "cancel",
            Command::Resend => "resend",
            Command::Expire => "expire",
        }
    }
}

/// A side effect the caller must carry out in the same transaction as the change.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Effect {
    /// Queue the invitation email (again).
    SendInvitationEmail,
    /// Create the membership with the invited role (R13).
    AddMember,
    /// Create the partnership between the two businesses (R21).
    EstablishPartnership,
    /// Apply the profile grants the invitation carries (R13), after the
    /// membership or partnership they need.
    ApplyGrants,
    /// Queue "Invitation accepted" to the inviting user (R22).
    SendAcceptedEmail,
}

/// What applying a command decided.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Decision {
    /// The next status; equal to the current one for a resend.
    pub to: InvitationStatus,
    pub effects: Vec<Effect>,
}

/// The whole lifecycle. Errors name why a command cannot apply; nothing else
/// changes when one is returned.
pub fn apply(
    inv: &InvitationView,
    command: Command,
    now: DateTime<Utc>,
) -> Result<Decision, DomainError> {
    use Command::*;
    use InvitationStatus::*;
    let status = inv.effective_status(now);
    let refuse = || DomainError::InvalidTransition {
        from: status.as_str().to_string(),
        command: command.as_str().to_string(),
    };
    match (status, command) {
        (Pending, Accept) => {
            let effects = match inv.kind {
                InvitationKind::Member => vec![
                    Effect::AddMember,
                    Effect::ApplyGrants,
                    Effect::SendAcceptedEmail,
                ],
                InvitationKind::PartnerInvite | InvitationKind::PartnerRequest => vec![
                    Effect::EstablishPartnership,
                    Effect::ApplyGrants,
                    Effect::SendAcceptedEmail,
                ],
            };
            Ok(Decision {
                to: Accepted,
                effects,
            })
        }
        (Pending, Decline) => Ok(Decision {
            to: Declined,
            effects: vec![],
        }),
        (Pending, Cancel) => Ok(Decision {
            to: Cancelled,
            effects: vec![],
        }),
        (Pending, Resend) => Ok(Decision {
            to: Pending,
            effects: vec![Effect::SendInvitationEmail],
        }),
        // Expire is only for the sweep, and only once the time has come; the
        // stored status is what the sweep moves.
        (Expired, Expire) if inv.status == Pending => Ok(Decision {
            to: Expired,
            effects: vec![],
        }),
        // The recipient's answers with a token get the token errors of R12.
        (Expired, Accept | Decline) => Err(DomainError::TokenExpired),
        (Accepted | Declined | Cancelled, Accept | Decline) => Err(DomainError::TokenUsed),
        _ => Err(refuse()),
    }
}

/// R31: only an invitation that is over without being accepted (expired,
/// declined, cancelled) may be renewed; a pending one past its expiry counts
/// as expired. Renewal creates a new invitation; the old one never changes.
pub fn check_renewable(inv: &InvitationView, now: DateTime<Utc>) -> Result<(), DomainError> {
    match inv.effective_status(now) {
        InvitationStatus::Expired | InvitationStatus::Declined | InvitationStatus::Cancelled => {
            Ok(())
        }
        status @ (InvitationStatus::Pending | InvitationStatus::Accepted) => {
            Err(DomainError::InvalidTransition {
                from: status.as_str().to_string(),
                command: "renew".to_string(),
            })
        }
    }
}

/// R46: whether a corrected address may be given. Only to a member
/// invitation that is still pending (by `now`) and whose last invitation
/// email did not get through (`undelivered`: given up, bounced or
/// complained about); the caller reads that from the outbox. Anything else
/// is `invalid_transition`: a partner invitation has no address, and an
/// email that was sent, or is still on its way, may yet arrive.
pub fn check_correctable(
    inv: &InvitationView,
    undelivered: bool,
    now: DateTime<Utc>,
) -> Result<(), DomainError> {
    let status = inv.effective_status(now);
    let refuse = |from: String| DomainError::InvalidTransition {
        from,
        command: "correct the address of".to_string(),
    };
    if inv.kind != InvitationKind::Member {
        return Err(refuse(format!("a {} and {status}", inv.kind.as_str())));
    }
    if status != InvitationStatus::Pending {
        return Err(refuse(status.as_str().to_string()));
    }
    if !undelivered {
        return Err(refuse(
            "pending and whose email has not failed, bounced or been complained about".into(),
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use InvitationStatus::*;

    #[test]
    fn only_finished_unaccepted_invitations_are_renewable() {
        for (status, ok) in [
            (Pending, false),
            (Accepted, false),
            (Declined, true),
            (Cancelled, true),
            (Expired, true),
        ] {
            assert_eq!(check_renewable(&inv(status), at(0)).is_ok(), ok, "{status}");
        }
        // Pending past its expiry, before the sweep: already expired.
        assert!(check_renewable(&inv(Pending), at(1000)).is_ok());
        assert!(check_renewable(&inv(Accepted), at(1000)).is_err());
    }
    use chrono::TimeZone;

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
    fn only_a_pending_member_invitation_whose_email_failed_takes_a_new_address() {
        for status in InvitationStatus::ALL {
            for undelivered in [false, true] {
                let ok = status == Pending && undelivered;
                assert_eq!(
                    check_correctable(&inv(status), undelivered, at(0)).is_ok(),
                    ok,
                    "{status} undelivered={undelivered}"
                );
            }
        }
        // Past its expiry, before the sweep: expired, so no.
        assert!(matches!(
            check_correctable(&inv(Pending), true, at(1000)),
            Err(DomainError::InvalidTransition { .. })
        ));
        let partner = InvitationView {
            kind: InvitationKind::PartnerInvite,
            ..inv(Pending)
        };
        assert!(matches!(
            check_correctable(&partner, true, at(0)),
            Err(DomainError::InvalidTransition { .. })
        ));
    }

    #[derive(Debug, PartialEq)]
    enum Want {
        To(InvitationStatus),
        Invalid,
        Used,
        Expired,
    }

    fn outcome(r: Result<Decision, DomainError>) -> Want {
        match r {
            Ok(d) => Want::To(d.to),
            Err(DomainError::InvalidTransition { .. }) => Want::Invalid,
            Err(DomainError::TokenUsed) => Want::Used,
            Err(DomainError::TokenExpired) => Want::Expired,
            Err(e) => panic!("unexpected {e:?}"),
        }
    }

    /// Every (state, command) pair, before the expiry time.
    #[test]
    fn every_state_and_command_before_expiry() {
        let now = at(0);
        let table: [(InvitationStatus, [Want; 5]); 5] = [
            // accept, decline, cancel, resend, expire
            (
                Pending,
                [
                    Want::To(Accepted),
                    Want::To(Declined),
                    Want::To(Cancelled),
                    Want::To(Pending),
                    Want::Invalid,
                ],
            ),
            (
                Accepted,
                [
                    Want::Used,
                    Want::Used,
                    Want::Invalid,
                    Want::Invalid,
                    Want::Invalid,
                ],
            ),
            (
                Declined,
                [
                    Want::Used,
                    Want::Used,
                    Want::Invalid,
                    Want::Invalid,
                    Want::Invalid,
                ],
            ),
            (
                Cancelled,
                [
                    Want::Used,
                    Want::Used,
                    Want::Invalid,
                    Want::Invalid,
                    Want::Invalid,
                ],
            ),
            (
                Expired,
                [
                    Want::Expired,
                    Want::Expired,
                    Want::Invalid,
                    Want::Invalid,
                    Want::Invalid,
                ],
            ),
        ];
        for (status, wants) in table {
            for (command, want) in Command::ALL.into_iter().zip(wants) {
                assert_eq!(
                    outcome(apply(&inv(status), command, now)),
                    want,
                    "{status} + {command:?}"
                );
            }
        }
    }

    /// The same pairs at and after `expires_at`: a pending invitation behaves as
    /// expired although the sweep has not moved it (R11).
    #[test]
    fn every_state_and_command_after_expiry() {
        let now = at(1000);
        let table: [(InvitationStatus, [Want; 5]); 5] = [
            (
                Pending,
                [
                    Want::Expired,
                    Want::Expired,
                    Want::Invalid,
                    Want::Invalid,
                    Want::To(Expired),
                ],
            ),
            (
                Accepted,
                [
                    Want::Used,
                    Want::Used,
                    Want::Invalid,
                    Want::Invalid,
                    Want::Invalid,
                ],
            ),
            (
                Declined,
                [
                    Want::Used,
                    Want::Used,
                    Want::Invalid,
                    Want::Invalid,
                    Want::Invalid,
                ],
            ),
            (
                Cancelled,
                [
                    Want::Used,
                    Want::Used,
                    Want::Invalid,
                    Want::Invalid,
                    Want::Invalid,
                ],
            ),
            (
                Expired,
                [
                    Want::Expired,
                    Want::Expired,
                    Want::Invalid,
                    Want::Invalid,
                    Want::Invalid,
                ],
            ),
        ];
        for (status, wants) in table {
            for (command, want) in Command::ALL.into_iter().zip(wants) {
                assert_eq!(
                    outcome(apply(&inv(status), command, now)),
                    want,
                    "{status} + {command:?}"
                );
            }
        }
    }

    #[test]
    fn effects_of_each_accepted_command() {
        let now = at(0);
        let member = apply(&inv(Pending), Command::Accept, now).unwrap();
        assert_eq!(
            member.effects,
            vec![
                Effect::AddMember,
                Effect::ApplyGrants,
                Effect::SendAcceptedEmail
            ]
        );
        let partner = InvitationView {
            kind: InvitationKind::PartnerInvite,
            ..inv(Pending)
        };
        assert_eq!(
            apply(&partner, Command::Accept, now).unwrap().effects,
            vec![
                Effect::EstablishPartnership,
                Effect::ApplyGrants,
                Effect::SendAcceptedEmail
            ]
        );
        assert_eq!(
            apply(&inv(Pending), Command::Resend, now).unwrap().effects,
            vec![Effect::SendInvitationEmail]
        );
        assert!(
            apply(&inv(Pending), Command::Cancel, now)
                .unwrap()
                .effects
                .is_empty()
        );
    }
}
