//! Partners (R19–R21) and the two-factor policy (R15) as pure rules: which
//! business may be asked, who answers, and whose accept needs 2FA.

use super::{BusinessId, Capability, DomainError, InvitationKind, Role, RoleCatalog};

/// The two ways of adding a partner (R19).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Direction {
    /// Invite the partner to access the sender's assets.
    Invite,
    /// Request access to the partner's assets.
    Request,
}

impl Direction {
    pub fn parse(raw: &str) -> Option<Direction> {
        match raw {
            "invite" => Some(Direction::Invite),
            "request" => Some(Direction::Request),
            _ => None,
        }
    }

    pub fn kind(self) -> InvitationKind {
        match self {
            Direction::Invite => InvitationKind::PartnerInvite,
            Direction::Request => InvitationKind::PartnerRequest,
        }
    }

    pub fn of(kind: InvitationKind) -> Option<Direction> {
        match kind {
            InvitationKind::PartnerInvite => Some(Direction::Invite),
            InvitationKind::PartnerRequest => Some(Direction::Request),
            InvitationKind::Member => None,
        }
    }
}

/// What the store knows about the pair before a partner invitation.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PairState {
    pub already_partners: bool,
    /// A pending partner invitation between the two, either way.
    pub pending_between: bool,
}

/// R19: a business never partners with itself, nor twice, and one pending
/// partner invitation per pair is enough (`409 conflict`).
pub fn check_partner_target(
    sender: BusinessId,
    target: BusinessId,
    pair: PairState,
) -> Result<(), DomainError> {
    if sender == target {
        return Err(DomainError::Conflict(
            "a business cannot partner with itself".into(),
        ));
    }
    if pair.already_partners {
        return Err(DomainError::Conflict(
            "the two businesses are already partners".into(),
        ));
    }
    if pair.pending_between {
        return Err(DomainError::Conflict(
            "a partner invitation between the two businesses is already pending".into(),
        ));
    }
    Ok(())
}

/// R20, R21: the owner and members with `partners.manage` receive partner
/// requests and alone may accept or decline them (and end a partnership).
pub fn manages_partners(catalog: &RoleCatalog, role: &Role) -> bool {
    role.is_owner() || catalog.can(role, Capability::PartnersManage)
}

/// `manages_partners` as a check, with the reason for a no.
pub fn check_manages_partners(catalog: &RoleCatalog, role: &Role) -> Result<(), DomainError> {
    if manages_partners(catalog, role) {
        Ok(())
    } else {
        Err(DomainError::forbidden(format!(
            "only the owner or a member with partners.manage may answer for the business; a {role} may not"
        )))
    }
}

/// R15: who must have used two-factor authentication to accept.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TwoFactorPolicy {
    Off,
    /// Roles that manage people (`members.invite`) and the owner.
    Managers,
    All,
}

impl TwoFactorPolicy {
    pub fn as_str(self) -> &'static str {
        match self {
            TwoFactorPolicy::Off => "off",
            TwoFactorPolicy::Managers => "managers",
            TwoFactorPolicy::All => "all",
        }
    }

    pub fn parse(raw: &str) -> Option<TwoFactorPolicy> {
        match raw {
            "off" => Some(TwoFactorPolicy::Off),
            "managers" => Some(TwoFactorPolicy::Managers),
            "all" => Some(TwoFactorPolicy::All),
            _ => None,
        }
    }

    /// Does the policy cover `role`: the role being accepted for a member
    /// invitation, the accepting manager's role for a partner invitation.
    pub fn covers(self, catalog: &RoleCatalog, role: &Role) -> bool {
        match self {
            TwoFactorPolicy::Off => false,
            TwoFactorPolicy::Managers => {
                role.is_owner() || catalog.can(role, Capability::MembersInvite)
            }
            TwoFactorPolicy::All => true,
        }
    }

    /// R15: an accept the policy covers must state that 2FA was completed.
    pub fn check_accept(
        self,
        catalog: &RoleCatalog,
        role: &Role,
        mfa_verified: bool,
    ) -> Result<(), DomainError> {
        if self.covers(catalog, role) && !mfa_verified {
            Err(DomainError::MfaRequired)
        } else {
            Ok(())
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::RolePreset;

    #[test]
    fn partner_targets() {
        let (a, b) = (BusinessId::new(), BusinessId::new());
        let clear = PairState {
            already_partners: false,
            pending_between: false,
        };
        assert!(check_partner_target(a, b, clear).is_ok());
        for (target, pair) in [
            (a, clear),
            (
                b,
                PairState {
                    already_partners: true,
                    ..clear
                },
            ),
            (
                b,
                PairState {
                    pending_between: true,
                    ..clear
                },
            ),
        ] {
            assert!(matches!(
                check_partner_target(a, target, pair),
                Err(DomainError::Conflict(_))
            ));
        }
    }

    /// Every policy against every role of both presets, with and without 2FA.
    #[test]
    fn two_factor_policy_by_role() {
        use TwoFactorPolicy::*;
        let bm = RoleCatalog::preset(RolePreset::BusinessManager);
        let al = RoleCatalog::preset(RolePreset::AccountLevels);
        let table: [(&RoleCatalog, &str, [bool; 3]); 8] = [
            // covered by: off, managers, all
            (&bm, "owner", [false, true, true]),
            (&bm, "manager", [false, true, true]),
            (&bm, "employee", [false, false, true]),
            (&al, "owner", [false, true, true]),
            (&al, "admin", [false, true, true]),
            (&al, "manager", [false, false, true]),
            (&al, "author", [false, false, true]),
            (&al, "viewer", [false, false, true]),
        ];
        for (catalog, role, covered) in table {
            let role = Role::from_stored(role);
            for (policy, covered) in [Off, Managers, All].into_iter().zip(covered) {
                assert_eq!(policy.covers(catalog, &role), covered, "{policy:?} {role}");
                assert!(policy.check_accept(catalog, &role, true).is_ok());
                assert_eq!(
                    policy.check_accept(catalog, &role, false),
                    if covered {
                        Err(DomainError::MfaRequired)
                    } else {
                        Ok(())
                    }
                );
            }
            assert_eq!(TwoFactorPolicy::parse("managers"), Some(Managers));
            assert_eq!(TwoFactorPolicy::parse("some"), None);
        }
    }

    #[test]
    fn who_answers_partner_requests() {
        let bm = RoleCatalog::preset(RolePreset::BusinessManager);
        let al = RoleCatalog::preset(RolePreset::AccountLevels);
        for (catalog, role, answers) in [
            (&bm, "owner", true),
            (&bm, "manager", true),
            (&bm, "employee", false),
            (&al, "admin", true),
            (&al, "manager", false),
            (&al, "viewer", false),
        ] {
            let role = Role::from_stored(role);
            assert_eq!(manages_partners(catalog, &role), answers, "{role}");
            assert_eq!(check_manages_partners(catalog, &role).is_ok(), answers);
        }
    }
}
