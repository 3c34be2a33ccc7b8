//! Invite links (R50): their statements and [`InviteLinkTx`] for every
//! adapter. No dialect hook: the use is taken by one conditional UPDATE,
//! which both databases run atomically under the row's write lock.

use async_trait::async_trait;
use chrono::{DateTime, Utc};

use super::{Arg, SqlTx, StoredRow, id, int, limit, opt_id, rows, text};
use crate::domain::invite_link::AllowedDomains;
use crate::domain::{BusinessId, InviteLinkId, Role, TokenHash, UserId};
use crate::store::stored::{corrupt, grants, grants_json, user_id};
use crate::store::{
    InviteLinkQuery, InviteLinkRecord, InviteLinkTx, NewInviteLink, StoreResult, TimelineEntry,
};

const COLUMNS: &str = "id, business_id, created_by, role, max_uses, uses, allowed_domains, grants, \
     created_at, expires_at, revoked_at, revoked_by";

fn record(row: &impl StoredRow) -> StoreResult<InviteLinkRecord> {
    let domains = row.json("allowed_domains")?;
    let allowed_domains: Vec<String> = serde_json::from_value(domains.clone())
        .map_err(|_| corrupt("invite_links.allowed_domains", &domains.to_string()))?;
    let count = |col: &str| -> StoreResult<u32> {
        let n = row.int(col)?;
        u32::try_from(n).map_err(|_| corrupt(col, &n.to_string()))
    };
    Ok(InviteLinkRecord {
        id: InviteLinkId(row.uuid("id")?),
        business_id: BusinessId(row.uuid("business_id")?),
        created_by: user_id(row.text("created_by")?)?,
        role: Role::from_stored(&row.text("role")?),
        max_uses: count("max_uses")?,
        uses: count("uses")?,
        allowed_domains: AllowedDomains::from_stored(allowed_domains),
        grants: grants(row.json("grants")?)?,
        created_at: row.time("created_at")?,
        expires_at: row.time("expires_at")?,
        revoked_at: row.time_opt("revoked_at")?,
        revoked_by: row.text_opt("revoked_by")?.map(user_id).transpose()?,
    })
}

#[async_trait]
impl<T: SqlTx> InviteLinkTx for T {
    async fn insert_invite_link(&mut self, l: &NewInviteLink) -> StoreResult<()> {
        self.execute(
            "INSERT INTO invite_links (id, business_id, created_by, role, max_uses, uses,
                                       allowed_domains, grants, code_hash, created_at, expires_at)
             VALUES ($1, $2, $3, $4, $5, 0, $6, $7, $8, $9, $10)",
            vec![
                id(l.id.0),
                id(l.business_id.0),
                text(l.created_by.as_str()),
                text(l.role.as_str()),
                int(i64::from(l.max_uses)),
                Arg::Json(serde_json::json!(l.allowed_domains.as_slice())),
                Arg::Json(grants_json(&l.grants)),
                Arg::Bytes(l.code_hash.0.clone()),
                Arg::Time(Some(l.created_at)),
                Arg::Time(Some(l.expires_at)),
            ],
        )
        .await?;
        Ok(())
    }

    async fn get_invite_link(
        &mut self,
        link: InviteLinkId,
    ) -> StoreResult<Option<InviteLinkRecord>> {
        let sql = format!("SELECT {COLUMNS} FROM invite_links WHERE id = $1");
        self.fetch_optional(&sql, vec![id(link.0)])
            .await?
            .as_ref()
            .map(record)
            .transpose()
    }

    async fn find_invite_link_by_code(
        &mut self,
        hash: &TokenHash,
    ) -> StoreResult<Option<InviteLinkRecord>> {
        let sql = format!("SELECT {COLUMNS} FROM invite_links WHERE code_hash = $1");
        self.fetch_optional(&sql, vec![Arg::Bytes(hash.0.clone())])
            .await?
            .as_ref()
            .map(record)
            .transpose()
    }

    async fn list_invite_links(
        &mut self,
        q: &InviteLinkQuery,
    ) -> StoreResult<Vec<InviteLinkRecord>> {
        // Ids are time-ordered (v7): "before the cursor" is "older".
        let sql = format!(
            "SELECT {COLUMNS} FROM invite_links
             WHERE business_id = $1 AND ($2 IS NULL OR id < $2)
             ORDER BY id DESC LIMIT $3"
        );
        self.fetch_all(
            &sql,
            vec![
                id(q.business_id.0),
                opt_id(q.before.map(|b| b.0)),
                limit(q.limit),
            ],
        )
        .await?
        .iter()
        .map(record)
        .collect()
    }

    async fn revoke_invite_link(&mut self, link: InviteLinkId, by: &UserId) -> StoreResult<bool> {
        let at = self.stamp();
        let n = self
            .execute(
                "UPDATE invite_links SET revoked_at = coalesce($3, CURRENT_TIMESTAMP), revoked_by = $2
                 WHERE id = $1 AND revoked_at IS NULL",
                vec![id(link.0), text(by.as_str()), Arg::Time(at)],
            )
            .await?;
        Ok(n == 1)
    }

    async fn take_invite_link_use(
        &mut self,
        link: InviteLinkId,
        now: DateTime<Utc>,
    ) -> StoreResult<bool> {
        let n = self
            .execute(
                "UPDATE invite_links SET uses = uses + 1
                 WHERE id = $1 AND uses < max_uses AND revoked_at IS NULL AND expires_at > $2",
                vec![id(link.0), Arg::Time(Some(now))],
            )
            .await?;
        Ok(n == 1)
    }

    async fn invite_link_events(
        &mut self,
        business: BusinessId,
        link: InviteLinkId,
    ) -> StoreResult<Vec<TimelineEntry>> {
        // `->>` reads a member of the JSON data as text in both dialects
        // (jsonb on Postgres, JSON TEXT on SQLite 3.38+). The business's
        // events are few enough to filter by (`events_business`).
        self.fetch_all(
            "SELECT id, type, occurred_at AS at, actor_user_id, from_status, to_status, data
             FROM events WHERE business_id = $1 AND data ->> 'invite_link_id' = $2
             ORDER BY occurred_at, id",
            vec![id(business.0), text(&link.0.to_string())],
        )
        .await?
        .iter()
        .map(rows::timeline_event)
        .collect()
    }
}
