//! Profiles and the Publisher permission (R23, R24) as pure rules: who may
//! grant Publisher to whom, and whether (and why) a user may publish.
//!
//! A grant is either *direct* (made by the business that owns the profile, to
//! one of its members or to a partner business) or *derived* (made by a
//! partner business that holds a direct grant, to one of its own members).
//! A grant to a business gives its members nothing by itself; a derived grant
//! lives only as long as the grant it derives from.

use serde::{Deserialize, Serialize};

use super::{BusinessId, Capability, DomainError, GrantId, ProfileId, Role, RoleCatalog, UserId};

/// The permissions that can be granted on a profile. Only Publisher exists
/// (the source documents: "Permissions are not customizable").
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Permission {
    Publisher,
}

impl Permission {
    pub fn as_str(self) -> &'static str {
        match self {
            Permission::Publisher => "publisher",
        }
    }

    pub fn parse(raw: &str) -> Option<Permission> {
        (raw == "publisher").then_some(Permission::Publisher)
    }

    pub fn parse_field(raw: &str, field: &str) -> Result<Permission, DomainError> {
        Permission::parse(raw)
            .ok_or_else(|| DomainError::validation(field, "must be \"publisher\""))
    }
}

/// A grant an invitation carries, applied on acceptance (R7, R13). Stored in
/// the invitation's `grants` column and shown on the wire in this shape.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct InvitationGrant {
    pub profile_id: ProfileId,
    pub permission: Permission,
}

impl InvitationGrant {
    /// The grants stored on an invitation (a JSON list of this shape).
    pub fn from_stored(stored: &serde_json::Value) -> Vec<InvitationGrant> {
        serde_json::from_value(stored.clone()).unwrap_or_default()
    }

    pub fn to_stored(grants: &[InvitationGrant]) -> serde_json::Value {
        serde_json::to_value(grants).unwrap_or_else(|_| serde_json::Value::Array(Vec::new()))
    }
}

/// Who receives a grant.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum Grantee {
    User(UserId),
    Business(BusinessId),
}

/// What the access rules need to know of one grant on the profile.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct GrantView {
    pub id: GrantId,
    pub grantee: Grantee,
    /// For a grant to a user, the business whose membership carries it: the
    /// owning business for a direct grant, the partner for a derived one.
    /// For a grant to a business, that business.
    pub holder: BusinessId,
    pub parent: Option<GrantId>,
}

/// On whose authority a new grant is made.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum GrantAuthority {
    /// The business that owns the profile grants directly.
    Owner,
    /// A partner business grants to its own member under the grant it holds.
    Derived { parent: GrantId, holder: BusinessId },
}

/// The actor and the grantee as seen from the business that owns the profile.
#[derive(Clone, Copy, Debug)]
pub struct OwnerSide<'a> {
    pub catalog: &'a RoleCatalog,
    /// The actor's role there, if they are a member.
    pub actor_role: Option<&'a Role>,
    /// A user grantee is a member of the owning business.
    pub grantee_is_member: bool,
    /// A business grantee is a partner of the owning business.
    pub grantee_is_partner: bool,
}

/// A partner business that holds a direct grant on the profile.
#[derive(Clone, Copy, Debug)]
pub struct HolderSide<'a> {
    pub business: BusinessId,
    /// Its grant on the profile.
    pub grant: GrantId,
    pub catalog: &'a RoleCatalog,
    pub actor_role: Option<&'a Role>,
    pub grantee_is_member: bool,
}

/// Whether `role` may grant access in its business (R2: the owner and roles
/// with `members.invite`, the managers of the source documents).
pub fn may_grant(catalog: &RoleCatalog, role: Option<&Role>) -> bool {
    role.is_some_and(|r| r.is_owner() || catalog.can(r, Capability::MembersInvite))
}

/// R2 + R23: may `actor` grant the permission on a profile to `grantee`, and
/// on whose authority? `holders` lists the partner businesses holding a grant
/// on the profile. Nobody grants themselves; a business grant comes only from
/// the owning business and only to a partner; a partner's managers grant only
/// to their own members and only while their business holds the grant.
pub fn authorize_grant(
    actor: &UserId,
    grantee: &Grantee,
    owner: &OwnerSide<'_>,
    holders: &[HolderSide<'_>],
) -> Result<GrantAuthority, DomainError> {
    let owner_manager = may_grant(owner.catalog, owner.actor_role);
    match grantee {
        Grantee::User(user) if user == actor => Err(DomainError::forbidden(
            "nobody grants themselves; another manager or the owner must",
        )),
        Grantee::Business(_) => {
            if !owner_manager {
                return Err(DomainError::forbidden(
                    "only the owner or a manager of the business that owns the profile may grant it to a partner",
                ));
            }
            if !owner.grantee_is_partner {
                return Err(DomainError::Conflict(
                    "the grantee business is not a partner of the business that owns the profile"
                        .into(),
                ));
            }
            Ok(GrantAuthority::Owner)
        }
        Grantee::User(_) if owner.grantee_is_member => {
            if owner_manager {
                Ok(GrantAuthority::Owner)
            } else {
                Err(DomainError::forbidden(
                    "only the owner or a manager of the business that owns the profile may grant it",
                ))
            }
        }
        Grantee::User(_) => {
            let theirs: Vec<&HolderSide<'_>> =
                holders.iter().filter(|h| h.grantee_is_member).collect();
            if let Some(h) = theirs.iter().find(|h| may_grant(h.catalog, h.actor_role)) {
                return Ok(GrantAuthority::Derived {
                    parent: h.grant,
                    holder: h.business,
                });
            }
            if theirs.is_empty() {
                Err(DomainError::forbidden(
                    "the grantee is neither a member of the business that owns the profile nor of a partner that holds it",
                ))
            } else {
                Err(DomainError::forbidden(
                    "only the owner or a manager of the partner business that holds the profile may grant it to its members",
                ))
            }
        }
    }
}

/// The answer of the access check (R24).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AccessDecision {
    pub allowed: bool,
    /// The chain of grants that gives access, the business grant first.
    pub via: Vec<GrantId>,
    pub reason: String,
}

/// What the access check knows of a user and one profile.
#[derive(Clone, Debug)]
pub struct AccessFacts<'a> {
    pub profile_business: BusinessId,
    /// The user's role in the owning business, if a member.
    pub owner_role: Option<&'a Role>,
    /// Every grant of the permission on the profile.
    pub grants: &'a [GrantView],
    /// The businesses the user is a member of.
    pub memberships: &'a [BusinessId],
}

/// R24: may the user publish on the profile, through which grants, or why not.
/// The owner of the owning business may always; everyone else needs a grant
/// to themselves, carried by a membership they still have, and a derived
/// grant needs its parent too.
pub fn decide_access(user: &UserId, facts: &AccessFacts<'_>) -> AccessDecision {
    let member_of = |b: &BusinessId| facts.memberships.contains(b);
    if facts.owner_role.is_some_and(Role::is_owner) {
        return AccessDecision {
            allowed: true,
            via: vec![],
            reason: "the user owns the business that owns the profile".into(),
        };
    }
    let find = |id: GrantId| facts.grants.iter().find(|g| g.id == id);
    for g in facts.grants {
        if g.grantee != Grantee::User(user.clone()) || !member_of(&g.holder) {
            continue;
        }
        match g.parent {
            None if g.holder == facts.profile_business => {
                return AccessDecision {
                    allowed: true,
                    via: vec![g.id],
                    reason: "granted to the user by the business that owns the profile".into(),
                };
            }
            Some(parent) => {
                if let Some(p) = find(parent)
                    && p.grantee == Grantee::Business(g.holder)
                    && p.parent.is_none()
                {
                    return AccessDecision {
                        allowed: true,
                        via: vec![p.id, g.id],
                        reason: "granted to a partner business, which granted it to the user"
                            .into(),
                    };
                }
            }
            None => {}
        }
    }
    let partner_holds = facts
        .grants
        .iter()
        .any(|g| matches!(g.grantee, Grantee::Business(b) if member_of(&b)));
    let reason = if partner_holds {
        "the user's business holds this permission as a partner, but its owner or a manager has not granted it to the user"
    } else if facts.owner_role.is_some() {
        "the user is a member of the business that owns the profile but holds no grant on it"
    } else {
        "no grant on this profile reaches the user"
    };
    AccessDecision {
        allowed: false,
        via: vec![],
        reason: reason.into(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::RolePreset;

    fn user(id: &str) -> UserId {
        UserId::parse(id).unwrap()
    }

    fn role(name: &str) -> Role {
        Role::from_stored(name)
    }

    struct World {
        brand: BusinessId,
        agency: BusinessId,
        catalog: RoleCatalog,
    }

    fn world() -> World {
        World {
            brand: BusinessId::new(),
            agency: BusinessId::new(),
            catalog: RoleCatalog::preset(RolePreset::BusinessManager),
        }
    }

    fn owner_side<'a>(w: &'a World, actor: Option<&'a Role>, member: bool) -> OwnerSide<'a> {
        OwnerSide {
            catalog: &w.catalog,
            actor_role: actor,
            grantee_is_member: member,
            grantee_is_partner: true,
        }
    }

    #[test]
    fn nobody_grants_themselves_whatever_their_role() {
        let w = world();
        let owner = role("owner");
        for grantee_member in [true, false] {
            let err = authorize_grant(
                &user("ann"),
                &Grantee::User(user("ann")),
                &owner_side(&w, Some(&owner), grantee_member),
                &[],
            )
            .unwrap_err();
            assert!(matches!(err, DomainError::Forbidden(_)), "{err:?}");
        }
    }

    /// Direct grants: the owner and managers of the owning business may grant
    /// its members and its partners; employees and outsiders may not.
    #[test]
    fn direct_grants_follow_the_owning_business_roles() {
        let w = world();
        let (owner, manager, employee) = (role("owner"), role("manager"), role("employee"));
        let table: [(Option<&Role>, bool); 4] = [
            (Some(&owner), true),
            (Some(&manager), true),
            (Some(&employee), false),
            (None, false),
        ];
        for (actor_role, allowed) in table {
            for grantee in [Grantee::User(user("bob")), Grantee::Business(w.agency)] {
                let got = authorize_grant(
                    &user("ann"),
                    &grantee,
                    &owner_side(&w, actor_role, true),
                    &[],
                );
                assert_eq!(
                    got.is_ok(),
                    allowed,
                    "{actor_role:?} granting {grantee:?}: {got:?}"
                );
                if allowed {
                    assert_eq!(got.unwrap(), GrantAuthority::Owner);
                }
            }
        }
    }

    #[test]
    fn a_business_grant_needs_a_partnership() {
        let w = world();
        let owner = role("owner");
        let side = OwnerSide {
            grantee_is_partner: false,
            ..owner_side(&w, Some(&owner), false)
        };
        let err =
            authorize_grant(&user("ann"), &Grantee::Business(w.agency), &side, &[]).unwrap_err();
        assert!(matches!(err, DomainError::Conflict(_)), "{err:?}");
    }

    fn holder<'a>(
        w: &'a World,
        grant: GrantId,
        actor: Option<&'a Role>,
        member: bool,
    ) -> HolderSide<'a> {
        HolderSide {
            business: w.agency,
            grant,
            catalog: &w.catalog,
            actor_role: actor,
            grantee_is_member: member,
        }
    }

    /// Derived grants (R23): only the holding partner's owner or managers,
    /// only to their own members, only while the partner holds the grant.
    #[test]
    fn derived_grants_need_a_holding_partner_and_its_manager() {
        let w = world();
        let parent = GrantId::new();
        let (owner, manager, employee) = (role("owner"), role("manager"), role("employee"));
        let outsider_view = owner_side(&w, None, false);
        let grantee = Grantee::User(user("emma"));
        for (actor_role, member, ok) in [
            (Some(&owner), true, true),
            (Some(&manager), true, true),
            (Some(&employee), true, false),
            (None, true, false),
            (Some(&owner), false, false),
        ] {
            let got = authorize_grant(
                &user("ann"),
                &grantee,
                &outsider_view,
                &[holder(&w, parent, actor_role, member)],
            );
            assert_eq!(got.is_ok(), ok, "{actor_role:?} member={member}: {got:?}");
            if ok {
                assert_eq!(
                    got.unwrap(),
                    GrantAuthority::Derived {
                        parent,
                        holder: w.agency
                    }
                );
            }
        }
        // No holder at all: the partner lost (or never had) the grant.
        assert!(authorize_grant(&user("ann"), &grantee, &outsider_view, &[]).is_err());
        // A partner's manager never grants a business onwards.
        let err = authorize_grant(
            &user("ann"),
            &Grantee::Business(BusinessId::new()),
            &outsider_view,
            &[holder(&w, parent, Some(&owner), true)],
        )
        .unwrap_err();
        assert!(matches!(err, DomainError::Forbidden(_)), "{err:?}");
    }

    fn g(grantee: Grantee, holder: BusinessId, parent: Option<GrantId>) -> GrantView {
        GrantView {
            id: GrantId::new(),
            grantee,
            holder,
            parent,
        }
    }

    fn facts<'a>(
        profile_business: BusinessId,
        owner_role: Option<&'a Role>,
        grants: &'a [GrantView],
        memberships: &'a [BusinessId],
    ) -> AccessFacts<'a> {
        AccessFacts {
            profile_business,
            owner_role,
            grants,
            memberships,
        }
    }

    /// R24: the grant chain, step by step, as in the source documents: a
    /// business grant alone gives the partner's employee nothing; the
    /// partner's grant to them gives access through a chain of two; without
    /// the business grant the derived one gives nothing.
    #[test]
    fn access_through_a_partner_needs_the_whole_chain() {
        let w = world();
        let emma = user("emma");
        let agency = [w.agency];
        let to_agency = g(Grantee::Business(w.agency), w.agency, None);
        let only_business = [to_agency.clone()];
        let d = decide_access(&emma, &facts(w.brand, None, &only_business, &agency));
        assert!(!d.allowed);
        assert!(d.reason.contains("partner"), "{}", d.reason);

        let to_emma = g(Grantee::User(emma.clone()), w.agency, Some(to_agency.id));
        let chain = [to_agency.clone(), to_emma.clone()];
        let d = decide_access(&emma, &facts(w.brand, None, &chain, &agency));
        assert!(d.allowed, "{d:?}");
        assert_eq!(d.via, vec![to_agency.id, to_emma.id]);

        let orphan = [to_emma.clone()];
        assert!(!decide_access(&emma, &facts(w.brand, None, &orphan, &agency)).allowed);
        // Someone who left the agency keeps nothing.
        assert!(!decide_access(&emma, &facts(w.brand, None, &chain, &[])).allowed);
        // A grant to another partner is not the agency's.
        let other = BusinessId::new();
        let elsewhere = [g(Grantee::Business(other), other, None), to_emma];
        assert!(!decide_access(&emma, &facts(w.brand, None, &elsewhere, &agency)).allowed);
    }

    #[test]
    fn access_inside_the_owning_business() {
        let w = world();
        let (owner, employee) = (role("owner"), role("employee"));
        let brand = [w.brand];
        let bob = user("bob");
        let direct = g(Grantee::User(bob.clone()), w.brand, None);
        let grants = [direct.clone()];
        // The owner always; an employee only with a grant, a chain of one.
        assert!(decide_access(&bob, &facts(w.brand, Some(&owner), &[], &brand)).allowed);
        let d = decide_access(&bob, &facts(w.brand, Some(&employee), &[], &brand));
        assert!(!d.allowed);
        assert!(d.reason.contains("no grant"), "{}", d.reason);
        let d = decide_access(&bob, &facts(w.brand, Some(&employee), &grants, &brand));
        assert_eq!((d.allowed, d.via), (true, vec![direct.id]));
        // Someone else's grant is not yours.
        let carl = decide_access(
            &user("carl"),
            &facts(w.brand, Some(&employee), &grants, &brand),
        );
        assert!(!carl.allowed);
    }
}
