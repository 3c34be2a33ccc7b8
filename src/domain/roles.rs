//! The role catalog (R1): each role has a rank and a set of capabilities. Two
//! presets ship; the daemon enforces the capabilities named in [`Capability`] and
//! answers questions about any other one the app invents.

use std::collections::BTreeSet;
use std::fmt;

use super::DomainError;

/// Capabilities the daemon itself enforces. The app may ask about others by name.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Capability {
    /// Invite members, add partners, grant access (R2).
    MembersInvite,
    /// Revoke other members (R4); the holder is the "admin-equivalent" of R5.
    MembersRevoke,
    /// Change members' roles (R6).
    MembersSetRole,
    /// Accept or decline partner requests (R20, R21).
    PartnersManage,
    /// Set the two-factor policy (R15).
    SecurityRequire2fa,
}

impl Capability {
    pub fn as_str(self) -> &'static str {
        match self {
            Capability::MembersInvite => "members.invite",
            Capability::MembersRevoke => "members.revoke",
            Capability::MembersSetRole => "members.set_role",
            Capability::PartnersManage => "partners.manage",
            Capability::SecurityRequire2fa => "security.require_2fa",
        }
    }
}

/// The name of a role, checked against a catalog when parsed.
#[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Role(String);

impl Role {
    pub const OWNER: &'static str = "owner";

    pub fn as_str(&self) -> &str {
        &self.0
    }

    pub fn is_owner(&self) -> bool {
        self.0 == Self::OWNER
    }

    /// A role name read back from storage, which only ever holds catalog names.
    pub fn from_stored(name: &str) -> Role {
        Role(name.to_string())
    }
}

impl fmt::Display for Role {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl fmt::Debug for Role {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Role({})", self.0)
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RolePreset {
    BusinessManager,
    AccountLevels,
}

impl RolePreset {
    pub fn as_str(self) -> &'static str {
        match self {
            RolePreset::BusinessManager => "business_manager",
            RolePreset::AccountLevels => "account_levels",
        }
    }

    pub fn parse(raw: &str) -> Option<RolePreset> {
        match raw {
            "business_manager" => Some(RolePreset::BusinessManager),
            "account_levels" => Some(RolePreset::AccountLevels),
            _ => None,
        }
    }
}

#[derive(Clone, Debug)]
pub struct RoleDef {
    pub name: String,
    pub rank: u32,
    pub capabilities: BTreeSet<String>,
}

/// The roles of one business, by preset.
#[derive(Clone, Debug)]
pub struct RoleCatalog {
    pub preset: RolePreset,
    pub roles: Vec<RoleDef>,
    /// The role an invitation gets when none is named.
    pub default_role: String,
}

fn role(name: &str, rank: u32, caps: &[&str]) -> RoleDef {
    RoleDef {
        name: name.into(),
        rank,
        capabilities: caps.iter().map(|c| c.to_string()).collect(),
    }
}

const ADMIN_CAPS: &[&str] = &[
    "members.invite",
    "members.revoke",
    "members.set_role",
    "partners.manage",
    "security.require_2fa",
    "profiles.grant",
    "billing.view",
    "campaigns.manage",
    "content.publish",
    "content.view",
];

impl RoleCatalog {
    pub fn preset(preset: RolePreset) -> RoleCatalog {
        let mut owner_caps = ADMIN_CAPS.to_vec();
        owner_caps.extend(["billing.edit", "ownership.transfer"]);
        match preset {
            // The source documents' Business Manager: the manager has "full control
            // of roles and can add employees or partners"; the employee works only
            // on what it is given.
            RolePreset::BusinessManager => RoleCatalog {
                preset,
                roles: vec![
                    role("owner", 100, &owner_caps),
                    role("manager", 50, ADMIN_CAPS),
                    role("employee", 10, &["content.publish", "content.view"]),
                ],
                default_role: "employee".into(),
            },
            // Account levels: the admin manages people; the manager runs
            // campaigns but does not invite (R2 names the admin alone).
            RolePreset::AccountLevels => RoleCatalog {
                preset,
                roles: vec![
                    role("owner", 100, &owner_caps),
                    role("admin", 80, ADMIN_CAPS),
                    role(
                        "manager",
                        60,
                        &[
                            "campaigns.manage",
                            "billing.view",
                            "content.publish",
                            "content.view",
                        ],
                    ),
                    role("author", 40, &["content.publish", "content.view"]),
                    role("viewer", 20, &["content.view"]),
                ],
                default_role: "viewer".into(),
            },
        }
    }

    pub fn get(&self, role: &Role) -> Option<&RoleDef> {
        self.roles.iter().find(|r| r.name == role.0)
    }

    /// Parses a role name from input, naming the field on failure (R18).
    pub fn parse_role(&self, raw: &str, field: &str) -> Result<Role, DomainError> {
        if self.roles.iter().any(|r| r.name == raw) {
            Ok(Role(raw.to_string()))
        } else {
            let names: Vec<&str> = self.roles.iter().map(|r| r.name.as_str()).collect();
            Err(DomainError::validation(
                field,
                format!(
                    "unknown role {raw:?}; this business's roles are {}",
                    names.join(", ")
                ),
            ))
        }
    }

    pub fn default_role(&self) -> Role {
        Role(self.default_role.clone())
    }

    pub fn rank(&self, role: &Role) -> u32 {
        self.get(role).map_or(0, |r| r.rank)
    }

    pub fn has(&self, role: &Role, capability: &str) -> bool {
        self.get(role)
            .is_some_and(|r| r.capabilities.contains(capability))
    }

    pub fn can(&self, role: &Role, capability: Capability) -> bool {
        self.has(role, capability.as_str())
    }

    /// The admin-equivalent role of R5: the highest-ranked non-owner role that
    /// may revoke members.
    pub fn admin_equivalent(&self) -> Option<Role> {
        self.roles
            .iter()
            .filter(|r| r.name != Role::OWNER && r.capabilities.contains("members.revoke"))
            .max_by_key(|r| r.rank)
            .map(|r| Role(r.name.clone()))
    }
}
