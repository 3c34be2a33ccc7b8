//! [`AccessTx`] for SQLite: partnerships, profiles and grants. A grant tree
//! is read with a recursive query, then deleted in the same transaction
//! (SQLite has no DELETE inside a WITH).

use async_trait::async_trait;
use sqlx::sqlite::SqliteRow;
use sqlx::types::Json;
use uuid::Uuid;

use super::{
    BUSINESS_COLUMNS, OrStore as _, SqliteTx, business_from_row, corrupt, get, h, member_from_row,
    now, opt_uuid_at, user_id, uuid_at,
};
use crate::domain::access::{Grantee, Permission};
use crate::domain::partners::{Direction, TwoFactorPolicy};
use crate::domain::{
    BusinessId, GrantId, InvitationId, PartnershipId, ProfileId, PublicBusinessId, UserId,
};
use crate::store::{
    AccessTx, BusinessRecord, GrantRecord, MemberRecord, NewGrant, NewPartnership, NewProfile,
    PartnershipRecord, ProfileRecord, StoreError, StoreResult,
};

const PARTNERSHIP_SELECT: &str = "
    SELECT p.id, p.business_id, b.name AS business_name, p.partner_business_id, q.name AS partner_name,
           p.invitation_id, p.direction, p.established_at
    FROM partnerships p
    JOIN businesses b ON b.id = p.business_id
    JOIN businesses q ON q.id = p.partner_business_id";

fn partnership_from_row(row: &SqliteRow) -> StoreResult<PartnershipRecord> {
    let direction: String = get(row, "direction")?;
    Ok(PartnershipRecord {
        id: PartnershipId(uuid_at(row, "id")?),
        business_id: BusinessId(uuid_at(row, "business_id")?),
        business_name: get(row, "business_name")?,
        partner_business_id: BusinessId(uuid_at(row, "partner_business_id")?),
        partner_name: get(row, "partner_name")?,
        invitation_id: opt_uuid_at(row, "invitation_id")?.map(InvitationId),
        direction: Direction::parse(&direction).ok_or_else(|| corrupt("direction", &direction))?,
        established_at: get(row, "established_at")?,
    })
}

const PROFILE_SELECT: &str = "
    SELECT p.id, p.business_id, b.name AS business_name, p.name, p.created_by, p.created_at
    FROM profiles p JOIN businesses b ON b.id = p.business_id";

fn profile_from_row(row: &SqliteRow) -> StoreResult<ProfileRecord> {
    Ok(ProfileRecord {
        id: ProfileId(uuid_at(row, "id")?),
        business_id: BusinessId(uuid_at(row, "business_id")?),
        business_name: get(row, "business_name")?,
        name: get(row, "name")?,
        created_by: user_id(get(row, "created_by")?)?,
        created_at: get(row, "created_at")?,
    })
}

const GRANT_COLUMNS: &str = "id, business_id, profile_id, permission, grantee_user_id, \
     grantee_business_id, holder_business_id, parent_grant_id, granted_by, invitation_id, created_at";

fn grant_from_row(row: &SqliteRow) -> StoreResult<GrantRecord> {
    let permission: String = get(row, "permission")?;
    let grantee = match (
        get::<Option<String>>(row, "grantee_user_id")?,
        opt_uuid_at(row, "grantee_business_id")?,
    ) {
        (Some(user), None) => Grantee::User(user_id(user)?),
        (None, Some(business)) => Grantee::Business(BusinessId(business)),
        _ => return Err(corrupt("grantee", "both or neither")),
    };
    Ok(GrantRecord {
        id: GrantId(uuid_at(row, "id")?),
        business_id: BusinessId(uuid_at(row, "business_id")?),
        profile_id: ProfileId(uuid_at(row, "profile_id")?),
        permission: Permission::parse(&permission)
            .ok_or_else(|| corrupt("permission", &permission))?,
        grantee,
        holder: BusinessId(uuid_at(row, "holder_business_id")?),
        parent: opt_uuid_at(row, "parent_grant_id")?.map(GrantId),
        granted_by: user_id(get(row, "granted_by")?)?,
        invitation_id: opt_uuid_at(row, "invitation_id")?.map(InvitationId),
        created_at: get(row, "created_at")?,
    })
}

fn direction_str(d: Direction) -> &'static str {
    match d {
        Direction::Invite => "invite",
        Direction::Request => "request",
    }
}

impl SqliteTx {
    /// Deletes the grants with the given roots and all their descendants,
    /// roots first (depth order), returning them.
    async fn delete_trees(&mut self, roots: &[Uuid]) -> StoreResult<Vec<GrantRecord>> {
        if roots.is_empty() {
            return Ok(Vec::new());
        }
        let roots: Vec<String> = roots.iter().map(|r| h(*r).to_string()).collect();
        let sql = format!(
            "WITH RECURSIVE tree (tid, depth) AS (
                 SELECT id, 0 FROM profile_grants WHERE id IN (SELECT value FROM json_each($1))
                 UNION ALL
                 SELECT g.id, t.depth + 1 FROM profile_grants g JOIN tree t ON g.parent_grant_id = t.tid
             )
             SELECT {GRANT_COLUMNS} FROM profile_grants g JOIN tree ON tree.tid = g.id
             ORDER BY tree.depth, g.id"
        );
        let rows = sqlx::query(sqlx::AssertSqlSafe(sql))
            .bind(Json(&roots))
            .fetch_all(&mut *self.tx)
            .await
            .st()?;
        let gone = rows
            .iter()
            .map(grant_from_row)
            .collect::<StoreResult<Vec<_>>>()?;
        let ids: Vec<String> = gone.iter().map(|g| h(g.id.0).to_string()).collect();
        sqlx::query("DELETE FROM profile_grants WHERE id IN (SELECT value FROM json_each($1))")
            .bind(Json(&ids))
            .execute(&mut *self.tx)
            .await
            .st()?;
        Ok(gone)
    }
}

#[async_trait]
impl AccessTx for SqliteTx {
    async fn read_business(&mut self, id: BusinessId) -> StoreResult<Option<BusinessRecord>> {
        let sql = format!("SELECT {BUSINESS_COLUMNS} FROM businesses WHERE id = $1");
        let row = sqlx::query(sqlx::AssertSqlSafe(sql))
            .bind(h(id.0))
            .fetch_optional(&mut *self.tx)
            .await
            .st()?;
        row.as_ref().map(business_from_row).transpose()
    }

    async fn get_business_by_public_id(
        &mut self,
        id: &PublicBusinessId,
    ) -> StoreResult<Option<BusinessRecord>> {
        let sql = format!("SELECT {BUSINESS_COLUMNS} FROM businesses WHERE public_id = $1");
        let row = sqlx::query(sqlx::AssertSqlSafe(sql))
            .bind(id.as_str())
            .fetch_optional(&mut *self.tx)
            .await
            .st()?;
        row.as_ref().map(business_from_row).transpose()
    }

    async fn members_of_business(
        &mut self,
        business: BusinessId,
    ) -> StoreResult<Vec<MemberRecord>> {
        let rows = sqlx::query(
            "SELECT m.business_id, m.user_id, u.email, m.role, m.joined_at
             FROM members m JOIN users u ON u.user_id = m.user_id
             WHERE m.business_id = $1 ORDER BY m.joined_at, m.user_id",
        )
        .bind(h(business.0))
        .fetch_all(&mut *self.tx)
        .await
        .st()?;
        rows.iter().map(member_from_row).collect()
    }

    async fn memberships_of(&mut self, user: &UserId) -> StoreResult<Vec<MemberRecord>> {
        let rows = sqlx::query(
            "SELECT m.business_id, m.user_id, u.email, m.role, m.joined_at
             FROM members m JOIN users u ON u.user_id = m.user_id
             WHERE m.user_id = $1 ORDER BY m.joined_at, m.business_id",
        )
        .bind(user.as_str())
        .fetch_all(&mut *self.tx)
        .await
        .st()?;
        rows.iter().map(member_from_row).collect()
    }

    async fn set_require_2fa(
        &mut self,
        business: BusinessId,
        policy: TwoFactorPolicy,
    ) -> StoreResult<()> {
        sqlx::query("UPDATE businesses SET require_2fa = $2, updated_at = $3 WHERE id = $1")
            .bind(h(business.0))
            .bind(policy.as_str())
            .bind(now())
            .execute(&mut *self.tx)
            .await
            .st()?;
        Ok(())
    }

    async fn pending_partner_invitation_between(
        &mut self,
        a: BusinessId,
        b: BusinessId,
    ) -> StoreResult<bool> {
        sqlx::query_scalar(
            "SELECT EXISTS (SELECT 1 FROM invitations
                            WHERE kind <> 'member' AND status = 'pending'
                              AND ((business_id = $1 AND partner_business_id = $2)
                                OR (business_id = $2 AND partner_business_id = $1)))",
        )
        .bind(h(a.0))
        .bind(h(b.0))
        .fetch_one(&mut *self.tx)
        .await
        .st()
    }

    async fn live_partnership(
        &mut self,
        a: BusinessId,
        b: BusinessId,
    ) -> StoreResult<Option<PartnershipRecord>> {
        let sql = format!(
            "{PARTNERSHIP_SELECT}
             WHERE p.ended_at IS NULL
               AND ((p.business_id = $1 AND p.partner_business_id = $2)
                 OR (p.business_id = $2 AND p.partner_business_id = $1))"
        );
        let row = sqlx::query(sqlx::AssertSqlSafe(sql))
            .bind(h(a.0))
            .bind(h(b.0))
            .fetch_optional(&mut *self.tx)
            .await
            .st()?;
        row.as_ref().map(partnership_from_row).transpose()
    }

    async fn insert_partnership(&mut self, p: &NewPartnership) -> StoreResult<()> {
        sqlx::query(
            "INSERT INTO partnerships (id, business_id, partner_business_id, invitation_id, direction,
                                       established_at)
             VALUES ($1, $2, $3, $4, $5, $6)",
        )
        .bind(h(p.id.0))
        .bind(h(p.business_id.0))
        .bind(h(p.partner_business_id.0))
        .bind(p.invitation_id.map(|i| h(i.0)))
        .bind(direction_str(p.direction))
        .bind(now())
        .execute(&mut *self.tx)
        .await
        .st()?;
        Ok(())
    }

    async fn end_partnership(&mut self, id: PartnershipId, actor: &UserId) -> StoreResult<()> {
        sqlx::query(
            "UPDATE partnerships SET ended_at = $3, ended_by = $2 WHERE id = $1 AND ended_at IS NULL",
        )
        .bind(h(id.0))
        .bind(actor.as_str())
        .bind(now())
        .execute(&mut *self.tx)
        .await
        .st()?;
        Ok(())
    }

    async fn list_partnerships(
        &mut self,
        business: BusinessId,
    ) -> StoreResult<Vec<PartnershipRecord>> {
        let sql = format!(
            "{PARTNERSHIP_SELECT}
             WHERE p.ended_at IS NULL AND (p.business_id = $1 OR p.partner_business_id = $1)
             ORDER BY p.established_at, p.id"
        );
        let rows = sqlx::query(sqlx::AssertSqlSafe(sql))
            .bind(h(business.0))
            .fetch_all(&mut *self.tx)
            .await
            .st()?;
        rows.iter().map(partnership_from_row).collect()
    }

    async fn insert_profile(&mut self, p: &NewProfile) -> StoreResult<ProfileRecord> {
        sqlx::query(
            "INSERT INTO profiles (id, business_id, name, created_by, created_at) VALUES ($1, $2, $3, $4, $5)",
        )
        .bind(h(p.id.0))
        .bind(h(p.business_id.0))
        .bind(&p.name)
        .bind(p.created_by.as_str())
        .bind(now())
        .execute(&mut *self.tx)
        .await
        .st()?;
        self.get_profile(p.id)
            .await?
            .ok_or_else(|| StoreError::Other("inserted profile not found".into()))
    }

    async fn get_profile(&mut self, id: ProfileId) -> StoreResult<Option<ProfileRecord>> {
        let sql = format!("{PROFILE_SELECT} WHERE p.id = $1");
        let row = sqlx::query(sqlx::AssertSqlSafe(sql))
            .bind(h(id.0))
            .fetch_optional(&mut *self.tx)
            .await
            .st()?;
        row.as_ref().map(profile_from_row).transpose()
    }

    async fn candidate_profiles_for(&mut self, user: &UserId) -> StoreResult<Vec<ProfileRecord>> {
        let sql = format!(
            "{PROFILE_SELECT}
             WHERE p.id IN (SELECT profile_id FROM profile_grants WHERE grantee_user_id = $1)
                OR p.business_id IN (SELECT business_id FROM members WHERE user_id = $1 AND role = 'owner')
             ORDER BY b.name, p.name, p.id"
        );
        let rows = sqlx::query(sqlx::AssertSqlSafe(sql))
            .bind(user.as_str())
            .fetch_all(&mut *self.tx)
            .await
            .st()?;
        rows.iter().map(profile_from_row).collect()
    }

    async fn insert_grant(&mut self, g: &NewGrant) -> StoreResult<GrantRecord> {
        let (user, business) = match &g.grantee {
            Grantee::User(u) => (Some(u.as_str()), None),
            Grantee::Business(b) => (None, Some(h(b.0))),
        };
        let sql = format!(
            "INSERT INTO profile_grants (id, business_id, profile_id, permission, grantee_user_id,
                                         grantee_business_id, holder_business_id, parent_grant_id,
                                         granted_by, invitation_id, created_at)
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11)
             RETURNING {GRANT_COLUMNS}"
        );
        let row = sqlx::query(sqlx::AssertSqlSafe(sql))
            .bind(h(g.id.0))
            .bind(h(g.business_id.0))
            .bind(h(g.profile_id.0))
            .bind(g.permission.as_str())
            .bind(user)
            .bind(business)
            .bind(h(g.holder.0))
            .bind(g.parent.map(|p| h(p.0)))
            .bind(g.granted_by.as_str())
            .bind(g.invitation_id.map(|i| h(i.0)))
            .bind(now())
            .fetch_one(&mut *self.tx)
            .await
            .st()?;
        grant_from_row(&row)
    }

    async fn get_grant(&mut self, id: GrantId) -> StoreResult<Option<GrantRecord>> {
        let sql = format!("SELECT {GRANT_COLUMNS} FROM profile_grants WHERE id = $1");
        let row = sqlx::query(sqlx::AssertSqlSafe(sql))
            .bind(h(id.0))
            .fetch_optional(&mut *self.tx)
            .await
            .st()?;
        row.as_ref().map(grant_from_row).transpose()
    }

    async fn grants_on_profile(
        &mut self,
        profile: ProfileId,
        permission: Permission,
    ) -> StoreResult<Vec<GrantRecord>> {
        let sql = format!(
            "SELECT {GRANT_COLUMNS} FROM profile_grants
             WHERE profile_id = $1 AND permission = $2
             ORDER BY created_at, id"
        );
        let rows = sqlx::query(sqlx::AssertSqlSafe(sql))
            .bind(h(profile.0))
            .bind(permission.as_str())
            .fetch_all(&mut *self.tx)
            .await
            .st()?;
        rows.iter().map(grant_from_row).collect()
    }

    async fn delete_grant_tree(&mut self, id: GrantId) -> StoreResult<Vec<GrantRecord>> {
        self.delete_trees(&[id.0]).await
    }

    async fn delete_grants_between(
        &mut self,
        a: BusinessId,
        b: BusinessId,
    ) -> StoreResult<Vec<GrantRecord>> {
        let rows = sqlx::query(
            "SELECT id FROM profile_grants
             WHERE (business_id = $1 AND grantee_business_id = $2)
                OR (business_id = $2 AND grantee_business_id = $1)",
        )
        .bind(h(a.0))
        .bind(h(b.0))
        .fetch_all(&mut *self.tx)
        .await
        .st()?;
        let roots = rows
            .iter()
            .map(|r| uuid_at(r, "id"))
            .collect::<StoreResult<Vec<_>>>()?;
        self.delete_trees(&roots).await
    }

    async fn delete_member_grants(
        &mut self,
        business: BusinessId,
        user: &UserId,
    ) -> StoreResult<Vec<GrantRecord>> {
        let rows = sqlx::query(
            "SELECT id FROM profile_grants WHERE holder_business_id = $1 AND grantee_user_id = $2",
        )
        .bind(h(business.0))
        .bind(user.as_str())
        .fetch_all(&mut *self.tx)
        .await
        .st()?;
        let roots = rows
            .iter()
            .map(|r| uuid_at(r, "id"))
            .collect::<StoreResult<Vec<_>>>()?;
        self.delete_trees(&roots).await
    }
}
