//! Who may do what to whom inside a business (R2–R6, R14). Each rule takes the
//! roles involved and answers `Ok` or the reason for a no.

use super::{Capability, DomainError, Role, RoleCatalog};

/// R2 + R3: inviting `invited` needs `members.invite`, a role not ranked above
/// the actor's, and never the owner role.
pub fn check_invite(
    catalog: &RoleCatalog,
    actor: &Role,
    invited: &Role,
) -> Result<(), DomainError> {
    check_capability(catalog, actor, Capability::MembersInvite)?;
    if invited.is_owner() {
        return Err(DomainError::forbidden(
            "the owner role is never invited; ownership moves only by transfer",
        ));
    }
    if catalog.rank(invited) > catalog.rank(actor) {
        return Err(DomainError::forbidden(format!(
            "a {actor} may not invite a {invited}, a role ranked above their own"
        )));
    }
    Ok(())
}

/// R2/R14: a plain capability check, with a reason naming it.
pub fn check_capability(
    catalog: &RoleCatalog,
    actor: &Role,
    capability: Capability,
) -> Result<(), DomainError> {
    if catalog.can(actor, capability) {
        Ok(())
    } else {
        Err(DomainError::forbidden(format!(
            "the {actor} role lacks {}",
            capability.as_str()
        )))
    }
}

/// R4: revoking a member, or leaving when `is_self`.
pub fn check_revoke(
    catalog: &RoleCatalog,
    actor: &Role,
    target: &Role,
    is_self: bool,
) -> Result<(), DomainError> {
    if target.is_owner() {
        return Err(DomainError::forbidden(
            "the owner cannot leave or be revoked; transfer ownership first",
        ));
    }
    let revoker = catalog.can(actor, Capability::MembersRevoke);
    match (is_self, revoker) {
        (true, true) => Err(DomainError::forbidden(format!(
            "a {actor} may not revoke themselves; another {actor} or the owner must"
        ))),
        (true, false) => Ok(()),
        (false, true) => Ok(()),
        (false, false) => Err(DomainError::forbidden(format!(
            "the {actor} role lacks members.revoke and may only leave"
        ))),
    }
}

/// R6 (following R3): changing `target`'s role to `new_role`.
pub fn check_set_role(
    catalog: &RoleCatalog,
    actor: &Role,
    target: &Role,
    new_role: &Role,
) -> Result<(), DomainError> {
    check_capability(catalog, actor, Capability::MembersSetRole)?;
    if target.is_owner() || new_role.is_owner() {
        return Err(DomainError::forbidden(
            "the owner's role changes only by an ownership transfer",
        ));
    }
    let own = catalog.rank(actor);
    if catalog.rank(new_role) > own || catalog.rank(target) > own {
        return Err(DomainError::forbidden(format!(
            "a {actor} may not give or change a role ranked above their own"
        )));
    }
    Ok(())
}

/// R5: only the owner transfers, only to a holder of the admin-equivalent role.
/// Returns the role the old owner takes.
pub fn check_transfer(
    catalog: &RoleCatalog,
    actor: &Role,
    new_owner: &Role,
) -> Result<Role, DomainError> {
    if !actor.is_owner() {
        return Err(DomainError::forbidden(
            "only the owner may transfer ownership",
        ));
    }
    let admin = catalog
        .admin_equivalent()
        .ok_or_else(|| DomainError::forbidden("this role catalog has no admin-equivalent role"))?;
    if *new_owner != admin {
        return Err(DomainError::forbidden(format!(
            "ownership may only go to a member who is already {admin}"
        )));
    }
    Ok(admin)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::RolePreset;

    fn r(name: &str) -> Role {
        Role::from_stored(name)
    }

    /// (actor, invited role, allowed?) for both presets: R2 and R3.
    #[test]
    fn invite_rules_for_both_presets() {
        let bm = RoleCatalog::preset(RolePreset::BusinessManager);
        let cases = [
            ("owner", "manager", true),
            ("owner", "employee", true),
            ("owner", "owner", false),
            ("manager", "manager", true),
            ("manager", "employee", true),
            ("manager", "owner", false),
            ("employee", "employee", false),
            ("employee", "manager", false),
        ];
        for (actor, invited, ok) in cases {
            assert_eq!(
                check_invite(&bm, &r(actor), &r(invited)).is_ok(),
                ok,
                "business_manager {actor} -> {invited}"
            );
        }
        let al = RoleCatalog::preset(RolePreset::AccountLevels);
        let cases = [
            ("owner", "admin", true),
            ("owner", "viewer", true),
            ("admin", "admin", true),
            ("admin", "manager", true),
            ("admin", "author", true),
            ("admin", "viewer", true),
            ("admin", "owner", false),
            ("manager", "viewer", false),
            ("author", "viewer", false),
            ("viewer", "viewer", false),
        ];
        for (actor, invited, ok) in cases {
            assert_eq!(
                check_invite(&al, &r(actor), &r(invited)).is_ok(),
                ok,
                "account_levels {actor} -> {invited}"
            );
        }
    }

    /// (actor, target, is_self, allowed?): R4.
    #[test]
    fn revoke_rules_for_both_presets() {
        let bm = RoleCatalog::preset(RolePreset::BusinessManager);
        for (actor, target, is_self, ok) in [
            ("owner", "manager", false, true),
            ("owner", "employee", false, true),
            ("owner", "owner", true, false),
            ("manager", "manager", false, true),
            ("manager", "employee", false, true),
            ("manager", "owner", false, false),
            ("manager", "manager", true, false),
            ("employee", "employee", true, true),
            ("employee", "employee", false, false),
            ("employee", "manager", false, false),
        ] {
            assert_eq!(
                check_revoke(&bm, &r(actor), &r(target), is_self).is_ok(),
                ok,
                "bm {actor} {target} self={is_self}"
            );
        }
        let al = RoleCatalog::preset(RolePreset::AccountLevels);
        for (actor, target, is_self, ok) in [
            ("owner", "admin", false, true),
            ("admin", "admin", false, true),
            ("admin", "admin", true, false),
            ("admin", "owner", false, false),
            ("admin", "viewer", false, true),
            ("manager", "viewer", false, false),
            ("manager", "manager", true, true),
            ("author", "author", true, true),
            ("viewer", "viewer", true, true),
            ("viewer", "author", false, false),
        ] {
            assert_eq!(
                check_revoke(&al, &r(actor), &r(target), is_self).is_ok(),
                ok,
                "al {actor} {target} self={is_self}"
            );
        }
    }

    /// (actor, target, new role, allowed?): R6.
    #[test]
    fn set_role_rules_for_both_presets() {
        let bm = RoleCatalog::preset(RolePreset::BusinessManager);
        for (actor, target, new, ok) in [
            ("owner", "employee", "manager", true),
            ("owner", "manager", "employee", true),
            ("owner", "owner", "manager", false),
            ("manager", "employee", "manager", true),
            ("manager", "employee", "owner", false),
            ("manager", "owner", "employee", false),
            ("employee", "employee", "manager", false),
        ] {
            assert_eq!(
                check_set_role(&bm, &r(actor), &r(target), &r(new)).is_ok(),
                ok,
                "bm {actor} {target}->{new}"
            );
        }
        let al = RoleCatalog::preset(RolePreset::AccountLevels);
        for (actor, target, new, ok) in [
            ("admin", "viewer", "admin", true),
            ("admin", "author", "manager", true),
            ("admin", "viewer", "owner", false),
            ("manager", "viewer", "author", false),
            ("viewer", "viewer", "author", false),
        ] {
            assert_eq!(
                check_set_role(&al, &r(actor), &r(target), &r(new)).is_ok(),
                ok,
                "al {actor} {target}->{new}"
            );
        }
    }

    /// (actor, new owner's role, allowed?): R5, and the old owner's new role.
    #[test]
    fn transfer_rules_for_both_presets() {
        let bm = RoleCatalog::preset(RolePreset::BusinessManager);
        assert_eq!(
            check_transfer(&bm, &r("owner"), &r("manager")).unwrap(),
            r("manager")
        );
        assert!(check_transfer(&bm, &r("owner"), &r("employee")).is_err());
        assert!(check_transfer(&bm, &r("manager"), &r("manager")).is_err());
        let al = RoleCatalog::preset(RolePreset::AccountLevels);
        assert_eq!(
            check_transfer(&al, &r("owner"), &r("admin")).unwrap(),
            r("admin")
        );
        assert!(check_transfer(&al, &r("owner"), &r("manager")).is_err());
        assert!(check_transfer(&al, &r("admin"), &r("admin")).is_err());
    }

    #[test]
    fn invitation_management_needs_members_invite() {
        let al = RoleCatalog::preset(RolePreset::AccountLevels);
        assert!(check_capability(&al, &r("admin"), Capability::MembersInvite).is_ok());
        assert!(check_capability(&al, &r("manager"), Capability::MembersInvite).is_err());
        let bm = RoleCatalog::preset(RolePreset::BusinessManager);
        assert!(check_capability(&bm, &r("manager"), Capability::MembersInvite).is_ok());
        assert!(check_capability(&bm, &r("employee"), Capability::MembersInvite).is_err());
    }
}
