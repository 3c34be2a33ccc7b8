//! Join requests (R51): their statements and [`JoinRequestTx`] for every
//! adapter. The row lock is the dialect's [`SqlTx::ROW_LOCK`]; the sweep
//! skips what another transaction holds with [`SqlTx::SKIP_LOCKED`].

use async_trait::async_trait;
use chrono::{DateTime, Utc};

use super::{Arg, Conn, SqlTx, StoredRow, id, limit, opt_id, opt_text, rows, text};
use crate::domain::{BusinessId, JoinRequestId, JoinRequestStatus, Role, UserId};
use crate::store::stored::{corrupt, user_id};
use crate::store::{
    JoinRequestQuery, JoinRequestRecord, JoinRequestTx, NewJoinRequest, StoreResult,
};

const COLUMNS: &str = "id, business_id, user_id, message, status, role, decided_by, decided_at, \
                       expired_at, created_at, expires_at, updated_at";

fn record(row: &impl StoredRow) -> StoreResult<JoinRequestRecord> {
    let status = row.text("status")?;
    Ok(JoinRequestRecord {
        id: JoinRequestId(row.uuid("id")?),
        business_id: BusinessId(row.uuid("business_id")?),
        user_id: user_id(row.text("user_id")?)?,
        message: row.text_opt("message")?,
        status: JoinRequestStatus::parse(&status)
            .ok_or_else(|| corrupt("join_requests.status", &status))?,
        role: row.text_opt("role")?.map(|r| Role::from_stored(&r)),
        decided_by: row.text_opt("decided_by")?.map(user_id).transpose()?,
        decided_at: row.time_opt("decided_at")?,
        expired_at: row.time_opt("expired_at")?,
        created_at: row.time("created_at")?,
        expires_at: row.time("expires_at")?,
        updated_at: row.time("updated_at")?,
    })
}

async fn get(
    c: &mut impl Conn,
    request: JoinRequestId,
    lock: &str,
) -> StoreResult<Option<JoinRequestRecord>> {
    let sql = format!("SELECT {COLUMNS} FROM join_requests WHERE id = $1{lock}");
    c.fetch_optional(&sql, vec![id(request.0)])
        .await?
        .as_ref()
        .map(record)
        .transpose()
}

pub(super) async fn read(
    c: &mut impl Conn,
    request: JoinRequestId,
) -> StoreResult<Option<JoinRequestRecord>> {
    get(c, request, "").await
}

/// A page of a business's requests, newest first (ids are time-ordered).
pub(super) async fn list(
    c: &mut impl Conn,
    q: &JoinRequestQuery,
) -> StoreResult<Vec<JoinRequestRecord>> {
    let sql = format!(
        "SELECT {COLUMNS} FROM join_requests
         WHERE business_id = $1 AND ($2 IS NULL OR status = $2) AND ($3 IS NULL OR id < $3)
         ORDER BY id DESC LIMIT $4"
    );
    c.fetch_all(
        &sql,
        vec![
            id(q.business_id.0),
            opt_text(q.status.map(JoinRequestStatus::as_str)),
            opt_id(q.before.map(|b| b.0)),
            limit(q.limit),
        ],
    )
    .await?
    .iter()
    .map(record)
    .collect()
}

#[async_trait]
impl<T: SqlTx> JoinRequestTx for T {
    async fn lock_join_requester(
        &mut self,
        user: &UserId,
    ) -> StoreResult<Option<crate::store::UserRecord>> {
        let sql = format!(
            "SELECT {} FROM users WHERE user_id = $1{}",
            super::users::USER_COLUMNS,
            T::ROW_LOCK
        );
        self.fetch_optional(&sql, vec![text(user.as_str())])
            .await?
            .as_ref()
            .map(rows::user)
            .transpose()
    }

    async fn insert_join_request(&mut self, r: &NewJoinRequest) -> StoreResult<()> {
        self.execute(
            "INSERT INTO join_requests (id, business_id, user_id, message, status, created_at,
                                        expires_at, updated_at)
             VALUES ($1, $2, $3, $4, 'pending', $5, $6, $5)",
            vec![
                id(r.id.0),
                id(r.business_id.0),
                text(r.user_id.as_str()),
                opt_text(r.message.as_deref()),
                Arg::Time(Some(r.created_at)),
                Arg::Time(Some(r.expires_at)),
            ],
        )
        .await?;
        Ok(())
    }

    async fn lock_join_request(
        &mut self,
        request: JoinRequestId,
    ) -> StoreResult<Option<JoinRequestRecord>> {
        get(self, request, T::ROW_LOCK).await
    }

    async fn decide_join_request(
        &mut self,
        request: JoinRequestId,
        status: JoinRequestStatus,
        decided_by: &UserId,
        role: Option<&Role>,
    ) -> StoreResult<bool> {
        let at = self.stamp();
        let n = self
            .execute(
                "UPDATE join_requests
                    SET status = $2, role = $3, decided_by = $4,
                        decided_at = coalesce($5, CURRENT_TIMESTAMP),
                        updated_at = coalesce($5, CURRENT_TIMESTAMP)
                  WHERE id = $1 AND status = 'pending'",
                vec![
                    id(request.0),
                    text(status.as_str()),
                    opt_text(role.map(Role::as_str)),
                    text(decided_by.as_str()),
                    Arg::Time(at),
                ],
            )
            .await?;
        Ok(n == 1)
    }

    async fn has_pending_join_request(
        &mut self,
        business: BusinessId,
        user: &UserId,
    ) -> StoreResult<bool> {
        Ok(self
            .fetch_optional(
                "SELECT 1 AS one FROM join_requests
                  WHERE business_id = $1 AND user_id = $2 AND status = 'pending'",
                vec![id(business.0), text(user.as_str())],
            )
            .await?
            .is_some())
    }

    async fn join_request_times_since(
        &mut self,
        user: &UserId,
        since: DateTime<Utc>,
    ) -> StoreResult<Vec<DateTime<Utc>>> {
        self.fetch_all(
            "SELECT created_at FROM join_requests
              WHERE user_id = $1 AND created_at > $2 ORDER BY created_at",
            vec![text(user.as_str()), Arg::Time(Some(since))],
        )
        .await?
        .iter()
        .map(|row| row.time("created_at"))
        .collect()
    }

    async fn expire_due_join_requests(
        &mut self,
        batch: u32,
    ) -> StoreResult<Vec<JoinRequestRecord>> {
        let now = self.clock().await?;
        let sql = format!(
            "SELECT id FROM join_requests
              WHERE status = 'pending' AND expires_at <= $1
              ORDER BY expires_at, id LIMIT $2{}",
            T::SKIP_LOCKED
        );
        let due = self
            .fetch_all(&sql, vec![Arg::Time(Some(now)), limit(batch)])
            .await?
            .iter()
            .map(|row| row.uuid("id").map(JoinRequestId))
            .collect::<StoreResult<Vec<_>>>()?;
        let mut expired = Vec::with_capacity(due.len());
        for request in due {
            let n = self
                .execute(
                    "UPDATE join_requests SET status = 'expired', expired_at = $2, updated_at = $2
                      WHERE id = $1 AND status = 'pending'",
                    vec![id(request.0), Arg::Time(Some(now))],
                )
                .await?;
            if n == 1
                && let Some(r) = get(self, request, "").await?
            {
                expired.push(r);
            }
        }
        Ok(expired)
    }
}
