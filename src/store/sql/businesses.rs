//! Businesses and their members.

use chrono::{DateTime, Utc};

use super::{Arg, Conn, StoredRow as _, id, rows, text};
use crate::domain::partners::TwoFactorPolicy;
use crate::domain::{BusinessId, Email, InvitationId, PublicBusinessId, Role, UserId};
use crate::store::{BusinessRecord, MemberRecord, NewBusiness, StoreResult};

/// The business columns, up to the `WHERE` (Postgres appends its row lock
/// after it).
pub(crate) const BUSINESS_SELECT: &str = "SELECT id, public_id, name, role_preset, seat_limit, \
     locale, require_2fa, created_at, updated_at FROM businesses";

const MEMBER_SELECT: &str = "
    SELECT m.business_id, m.user_id, u.email, m.role, m.joined_at
    FROM members m JOIN users u ON u.user_id = m.user_id";

pub(super) async fn insert(c: &mut impl Conn, b: &NewBusiness) -> StoreResult<BusinessRecord> {
    let at = c.stamp();
    let row = c
        .fetch_one(
            "INSERT INTO businesses (id, public_id, name, role_preset, seat_limit, locale, created_at, updated_at)
             VALUES ($1, $2, $3, $4, $5, $6, coalesce($7, CURRENT_TIMESTAMP), coalesce($7, CURRENT_TIMESTAMP))
             RETURNING id, public_id, name, role_preset, seat_limit, locale, require_2fa, created_at, updated_at",
            vec![
                id(b.id.0),
                text(b.public_id.as_str()),
                text(&b.name),
                text(b.role_preset.as_str()),
                Arg::Int(b.seat_limit.map(i64::from)),
                super::opt_text(b.locale.as_ref().map(|l| l.as_str())),
                Arg::Time(at),
            ],
        )
        .await?;
    rows::business(&row)
}

pub(crate) async fn read(c: &mut impl Conn, b: BusinessId) -> StoreResult<Option<BusinessRecord>> {
    let sql = format!("{BUSINESS_SELECT} WHERE id = $1");
    let row = c.fetch_optional(&sql, vec![id(b.0)]).await?;
    row.as_ref().map(rows::business).transpose()
}

/// The business of an invitation, its row locked with `row_lock` (the
/// dialect's [`super::SqlTx::ROW_LOCK`]): one statement where a command on an
/// invitation would otherwise read the invitation first to learn which
/// business to lock (lock order everywhere: the business, then the
/// invitation). An invitation's business never changes.
pub(super) async fn lock_of_invitation(
    c: &mut impl Conn,
    invitation: InvitationId,
    row_lock: &str,
) -> StoreResult<Option<BusinessRecord>> {
    let sql = format!(
        "{BUSINESS_SELECT} WHERE id = (SELECT business_id FROM invitations WHERE id = $1){row_lock}"
    );
    let row = c.fetch_optional(&sql, vec![id(invitation.0)]).await?;
    row.as_ref().map(rows::business).transpose()
}

pub(super) async fn by_public_id(
    c: &mut impl Conn,
    public: &PublicBusinessId,
) -> StoreResult<Option<BusinessRecord>> {
    let sql = format!("{BUSINESS_SELECT} WHERE public_id = $1");
    let row = c.fetch_optional(&sql, vec![text(public.as_str())]).await?;
    row.as_ref().map(rows::business).transpose()
}

pub(super) async fn set_require_2fa(
    c: &mut impl Conn,
    business: BusinessId,
    policy: TwoFactorPolicy,
) -> StoreResult<()> {
    let at = c.stamp();
    c.execute(
        "UPDATE businesses SET require_2fa = $2, updated_at = coalesce($3, CURRENT_TIMESTAMP) WHERE id = $1",
        vec![id(business.0), text(policy.as_str()), Arg::Time(at)],
    )
    .await?;
    Ok(())
}

pub(super) async fn member(
    c: &mut impl Conn,
    business: BusinessId,
    user: &UserId,
) -> StoreResult<Option<MemberRecord>> {
    let sql = format!("{MEMBER_SELECT} WHERE m.business_id = $1 AND m.user_id = $2");
    let row = c
        .fetch_optional(&sql, vec![id(business.0), text(user.as_str())])
        .await?;
    row.as_ref().map(rows::member).transpose()
}

pub(super) async fn members_of(
    c: &mut impl Conn,
    business: BusinessId,
) -> StoreResult<Vec<MemberRecord>> {
    let sql = format!("{MEMBER_SELECT} WHERE m.business_id = $1 ORDER BY m.joined_at, m.user_id");
    let rows = c.fetch_all(&sql, vec![id(business.0)]).await?;
    rows.iter().map(rows::member).collect()
}

pub(super) async fn memberships_of(
    c: &mut impl Conn,
    user: &UserId,
) -> StoreResult<Vec<MemberRecord>> {
    let sql = format!("{MEMBER_SELECT} WHERE m.user_id = $1 ORDER BY m.joined_at, m.business_id");
    let rows = c.fetch_all(&sql, vec![text(user.as_str())]).await?;
    rows.iter().map(rows::member).collect()
}

pub(super) async fn insert_member(
    c: &mut impl Conn,
    business: BusinessId,
    user: &UserId,
    role: &Role,
) -> StoreResult<DateTime<Utc>> {
    let at = c.stamp();
    c.fetch_one(
        "INSERT INTO members (business_id, user_id, role, joined_at)
         VALUES ($1, $2, $3, coalesce($4, CURRENT_TIMESTAMP))
         RETURNING joined_at",
        vec![
            id(business.0),
            text(user.as_str()),
            text(role.as_str()),
            Arg::Time(at),
        ],
    )
    .await?
    .time("joined_at")
}

pub(super) async fn set_member_role(
    c: &mut impl Conn,
    business: BusinessId,
    user: &UserId,
    role: &Role,
) -> StoreResult<()> {
    c.execute(
        "UPDATE members SET role = $3 WHERE business_id = $1 AND user_id = $2",
        vec![id(business.0), text(user.as_str()), text(role.as_str())],
    )
    .await?;
    Ok(())
}

pub(super) async fn delete_member(
    c: &mut impl Conn,
    business: BusinessId,
    user: &UserId,
) -> StoreResult<()> {
    c.execute(
        "DELETE FROM members WHERE business_id = $1 AND user_id = $2",
        vec![id(business.0), text(user.as_str())],
    )
    .await?;
    Ok(())
}

pub(super) async fn is_member_email(
    c: &mut impl Conn,
    business: BusinessId,
    email: &Email,
) -> StoreResult<bool> {
    c.fetch_one(
        "SELECT EXISTS (SELECT 1 FROM members m JOIN users u ON u.user_id = m.user_id
                        WHERE m.business_id = $1 AND lower(u.email) = $2) AS found",
        vec![id(business.0), text(email.as_str())],
    )
    .await?
    .flag("found")
}

pub(super) async fn count_members(c: &mut impl Conn, business: BusinessId) -> StoreResult<u32> {
    let n = c
        .fetch_one(
            "SELECT count(*) AS n FROM members WHERE business_id = $1",
            vec![id(business.0)],
        )
        .await?
        .int("n")?;
    Ok(n as u32)
}
