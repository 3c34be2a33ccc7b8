//! Partnerships, profiles and grants (R19–R24).

use uuid::Uuid;

use super::{Arg, Conn, EnumType, StoredRow as _, id, opt_id, rows, text};
use crate::domain::access::{Grantee, Permission};
use crate::domain::partners::Direction;
use crate::domain::{BusinessId, GrantId, PartnershipId, ProfileId, UserId};
use crate::store::{
    GrantRecord, NewGrant, NewPartnership, NewProfile, PartnershipRecord, ProfileRecord,
    StoreResult,
};

const PARTNERSHIP_SELECT: &str = "
    SELECT p.id, p.business_id, b.name AS business_name, p.partner_business_id, q.name AS partner_name,
           p.invitation_id, p.direction, p.established_at
    FROM partnerships p
    JOIN businesses b ON b.id = p.business_id
    JOIN businesses q ON q.id = p.partner_business_id";

const PROFILE_SELECT: &str = "
    SELECT p.id, p.business_id, b.name AS business_name, p.name, p.created_by, p.created_at
    FROM profiles p JOIN businesses b ON b.id = p.business_id";

/// The grant columns, as `rows::grant` reads them.
pub(crate) const GRANT_COLUMNS: &str = "id, business_id, profile_id, permission, grantee_user_id, \
     grantee_business_id, holder_business_id, parent_grant_id, granted_by, invitation_id, created_at";

fn permission_arg(p: Permission) -> Arg {
    Arg::Enum(EnumType::ProfilePermission, Some(p.as_str()))
}

fn direction_str(d: Direction) -> &'static str {
    match d {
        Direction::Invite => "invite",
        Direction::Request => "request",
    }
}

pub(super) async fn live_partnership(
    c: &mut impl Conn,
    a: BusinessId,
    b: BusinessId,
) -> StoreResult<Option<PartnershipRecord>> {
    let sql = format!(
        "{PARTNERSHIP_SELECT}
         WHERE p.ended_at IS NULL
           AND ((p.business_id = $1 AND p.partner_business_id = $2)
             OR (p.business_id = $2 AND p.partner_business_id = $1))"
    );
    let row = c.fetch_optional(&sql, vec![id(a.0), id(b.0)]).await?;
    row.as_ref().map(rows::partnership).transpose()
}

pub(super) async fn insert_partnership(c: &mut impl Conn, p: &NewPartnership) -> StoreResult<()> {
    let at = c.stamp();
    c.execute(
        "INSERT INTO partnerships (id, business_id, partner_business_id, invitation_id, direction,
                                   established_at)
         VALUES ($1, $2, $3, $4, $5, coalesce($6, CURRENT_TIMESTAMP))",
        vec![
            id(p.id.0),
            id(p.business_id.0),
            id(p.partner_business_id.0),
            opt_id(p.invitation_id.map(|i| i.0)),
            text(direction_str(p.direction)),
            Arg::Time(at),
        ],
    )
    .await?;
    Ok(())
}

pub(super) async fn end_partnership(
    c: &mut impl Conn,
    partnership: PartnershipId,
    actor: &UserId,
) -> StoreResult<()> {
    let at = c.stamp();
    c.execute(
        "UPDATE partnerships SET ended_at = coalesce($3, CURRENT_TIMESTAMP), ended_by = $2
         WHERE id = $1 AND ended_at IS NULL",
        vec![id(partnership.0), text(actor.as_str()), Arg::Time(at)],
    )
    .await?;
    Ok(())
}

pub(super) async fn list_partnerships(
    c: &mut impl Conn,
    business: BusinessId,
) -> StoreResult<Vec<PartnershipRecord>> {
    let sql = format!(
        "{PARTNERSHIP_SELECT}
         WHERE p.ended_at IS NULL AND (p.business_id = $1 OR p.partner_business_id = $1)
         ORDER BY p.established_at, p.id"
    );
    let rows = c.fetch_all(&sql, vec![id(business.0)]).await?;
    rows.iter().map(rows::partnership).collect()
}

pub(super) async fn insert_profile(c: &mut impl Conn, p: &NewProfile) -> StoreResult<()> {
    let at = c.stamp();
    c.execute(
        "INSERT INTO profiles (id, business_id, name, created_by, created_at)
         VALUES ($1, $2, $3, $4, coalesce($5, CURRENT_TIMESTAMP))",
        vec![
            id(p.id.0),
            id(p.business_id.0),
            text(&p.name),
            text(p.created_by.as_str()),
            Arg::Time(at),
        ],
    )
    .await?;
    Ok(())
}

pub(super) async fn get_profile(
    c: &mut impl Conn,
    profile: ProfileId,
) -> StoreResult<Option<ProfileRecord>> {
    let sql = format!("{PROFILE_SELECT} WHERE p.id = $1");
    let row = c.fetch_optional(&sql, vec![id(profile.0)]).await?;
    row.as_ref().map(rows::profile).transpose()
}

pub(super) async fn candidate_profiles_for(
    c: &mut impl Conn,
    user: &UserId,
) -> StoreResult<Vec<ProfileRecord>> {
    let sql = format!(
        "{PROFILE_SELECT}
         WHERE p.id IN (SELECT profile_id FROM profile_grants WHERE grantee_user_id = $1)
            OR p.business_id IN (SELECT business_id FROM members WHERE user_id = $1 AND role = 'owner')
         ORDER BY b.name, p.name, p.id"
    );
    let rows = c.fetch_all(&sql, vec![text(user.as_str())]).await?;
    rows.iter().map(rows::profile).collect()
}

pub(super) async fn insert_grant(c: &mut impl Conn, g: &NewGrant) -> StoreResult<GrantRecord> {
    let (user, business) = match &g.grantee {
        Grantee::User(u) => (Some(u.as_str()), None),
        Grantee::Business(b) => (None, Some(b.0)),
    };
    let sql = format!(
        "INSERT INTO profile_grants (id, business_id, profile_id, permission, grantee_user_id,
                                     grantee_business_id, holder_business_id, parent_grant_id,
                                     granted_by, invitation_id, created_at)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, coalesce($11, CURRENT_TIMESTAMP))
         RETURNING {GRANT_COLUMNS}"
    );
    let at = c.stamp();
    let row = c
        .fetch_one(
            &sql,
            vec![
                id(g.id.0),
                id(g.business_id.0),
                id(g.profile_id.0),
                permission_arg(g.permission),
                super::opt_text(user),
                opt_id(business),
                id(g.holder.0),
                opt_id(g.parent.map(|p| p.0)),
                text(g.granted_by.as_str()),
                opt_id(g.invitation_id.map(|i| i.0)),
                Arg::Time(at),
            ],
        )
        .await?;
    rows::grant(&row)
}

pub(super) async fn get_grant(
    c: &mut impl Conn,
    grant: GrantId,
) -> StoreResult<Option<GrantRecord>> {
    let sql = format!("SELECT {GRANT_COLUMNS} FROM profile_grants WHERE id = $1");
    let row = c.fetch_optional(&sql, vec![id(grant.0)]).await?;
    row.as_ref().map(rows::grant).transpose()
}

pub(super) async fn grants_on_profile(
    c: &mut impl Conn,
    profile: ProfileId,
    permission: Permission,
) -> StoreResult<Vec<GrantRecord>> {
    let sql = format!(
        "SELECT {GRANT_COLUMNS} FROM profile_grants
         WHERE profile_id = $1 AND permission = $2
         ORDER BY created_at, id"
    );
    let rows = c
        .fetch_all(&sql, vec![id(profile.0), permission_arg(permission)])
        .await?;
    rows.iter().map(rows::grant).collect()
}

/// The grants each of the two businesses gave the other: the roots of the
/// trees a partnership's end removes.
pub(super) async fn grants_between(
    c: &mut impl Conn,
    a: BusinessId,
    b: BusinessId,
) -> StoreResult<Vec<Uuid>> {
    ids(
        c,
        "SELECT id FROM profile_grants
         WHERE (business_id = $1 AND grantee_business_id = $2)
            OR (business_id = $2 AND grantee_business_id = $1)",
        vec![id(a.0), id(b.0)],
    )
    .await
}

/// The grants a user holds through a membership.
pub(super) async fn member_grants(
    c: &mut impl Conn,
    business: BusinessId,
    user: &UserId,
) -> StoreResult<Vec<Uuid>> {
    ids(
        c,
        "SELECT id FROM profile_grants WHERE holder_business_id = $1 AND grantee_user_id = $2",
        vec![id(business.0), text(user.as_str())],
    )
    .await
}

async fn ids(c: &mut impl Conn, sql: &str, args: Vec<Arg>) -> StoreResult<Vec<Uuid>> {
    c.fetch_all(sql, args)
        .await?
        .iter()
        .map(|row| row.uuid("id"))
        .collect()
}
