//! The Postgres adapter of [`Store`]. SQL dialect details (enum casts, `FOR UPDATE
//! SKIP LOCKED`, LISTEN/NOTIFY) stay in this file.

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use sqlx::postgres::{PgConnectOptions, PgPool, PgPoolOptions, PgRow};
use sqlx::{Postgres, Row, Transaction};
use uuid::Uuid;

use super::stored::{
    BUSINESS_COLUMNS, corrupt, email, grants, grants_json, locale, outbox_status, status, template,
    two_factor, user_id,
};
use super::*;
use crate::domain::{
    BusinessId, Email, InvitationId, InvitationKind, InvitationStatus, PublicBusinessId, Role,
    RolePreset, TokenHash, TokenNonce, UserId,
};

mod access;
mod events;
mod wake;

use wake::{Channel, Signals, Wrote};

/// The migrations this build ships, applied by `invited migrate` and on start.
pub static MIGRATOR: sqlx::migrate::Migrator = sqlx::migrate!("./migrations");

#[derive(Clone)]
pub struct PgStore {
    pool: PgPool,
    /// Wake-ups after commits (see `wake`).
    signals: Arc<Signals>,
}

impl PgStore {
    pub async fn connect(url: &str, max_connections: u32) -> StoreResult<PgStore> {
        let options: PgConnectOptions = url.parse().map_err(map_err)?;
        // Named, so operators (and tests) can tell our sessions apart.
        let options = options.application_name("invited");
        let pool = PgPoolOptions::new()
            .max_connections(max_connections)
            .acquire_timeout(Duration::from_secs(5))
            .connect_lazy_with(options);
        Ok(PgStore::from_pool(pool))
    }

    /// A store on `pool`; must be called inside a tokio runtime (it starts the
    /// task that wakes other replicas).
    pub fn from_pool(pool: PgPool) -> PgStore {
        let signals = Arc::new(Signals::start(pool.clone()));
        PgStore { pool, signals }
    }

    pub fn pool(&self) -> &PgPool {
        &self.pool
    }

    /// Creates the database named in `url` if it does not exist yet, so the
    /// default configuration works on a fresh Postgres.
    pub async fn ensure_database(url: &str) -> StoreResult<()> {
        use sqlx::migrate::MigrateDatabase as _;
        if !Postgres::database_exists(url).await.st()? {
            Postgres::create_database(url).await.st()?;
        }
        Ok(())
    }

    pub async fn migrate(&self) -> StoreResult<()> {
        MIGRATOR
            .run(&self.pool)
            .await
            .map_err(|e| StoreError::Other(format!("migration failed: {e}")))
    }
}

fn map_err(e: sqlx::Error) -> StoreError {
    match &e {
        sqlx::Error::Database(db) if db.code().as_deref() == Some("23505") => {
            StoreError::Conflict(Constraint::from_name(db.constraint().unwrap_or("unknown")))
        }
        sqlx::Error::Io(_)
        | sqlx::Error::PoolTimedOut
        | sqlx::Error::PoolClosed
        | sqlx::Error::Tls(_)
        | sqlx::Error::WorkerCrashed => StoreError::Unavailable(e.to_string()),
        sqlx::Error::Database(db)
            if db
                .code()
                .is_some_and(|c| c.starts_with("08") || c.starts_with("57P")) =>
        {
            StoreError::Unavailable(e.to_string())
        }
        _ => StoreError::Other(e.to_string()),
    }
}

trait OrStore<T> {
    fn st(self) -> StoreResult<T>;
}

impl<T> OrStore<T> for Result<T, sqlx::Error> {
    fn st(self) -> StoreResult<T> {
        self.map_err(map_err)
    }
}

fn get<'r, T: sqlx::Decode<'r, Postgres> + sqlx::Type<Postgres>>(
    row: &'r PgRow,
    col: &str,
) -> StoreResult<T> {
    row.try_get(col).st()
}

fn user_from_row(row: &PgRow) -> StoreResult<UserRecord> {
    Ok(UserRecord {
        user_id: user_id(get(row, "user_id")?)?,
        email: email(get(row, "email")?)?,
        display_name: get(row, "display_name")?,
        locale: locale(get(row, "locale")?)?,
        created_at: get(row, "created_at")?,
        updated_at: get(row, "updated_at")?,
    })
}

fn business_from_row(row: &PgRow) -> StoreResult<BusinessRecord> {
    let preset: String = get(row, "role_preset")?;
    let public_id: String = get(row, "public_id")?;
    Ok(BusinessRecord {
        id: BusinessId(get(row, "id")?),
        public_id: PublicBusinessId::parse(&public_id)
            .map_err(|_| corrupt("business id", &public_id))?,
        name: get(row, "name")?,
        role_preset: RolePreset::parse(&preset).ok_or_else(|| corrupt("role preset", &preset))?,
        seat_limit: get::<Option<i32>>(row, "seat_limit")?.map(|n| n as u32),
        locale: get::<Option<String>>(row, "locale")?
            .map(locale)
            .transpose()?,
        require_2fa: two_factor(get(row, "require_2fa")?)?,
        created_at: get(row, "created_at")?,
        updated_at: get(row, "updated_at")?,
    })
}

fn member_from_row(row: &PgRow) -> StoreResult<MemberRecord> {
    Ok(MemberRecord {
        business_id: BusinessId(get(row, "business_id")?),
        user_id: user_id(get(row, "user_id")?)?,
        email: email(get(row, "email")?)?,
        role: Role::from_stored(&get::<String>(row, "role")?),
        joined_at: get(row, "joined_at")?,
    })
}

/// Invitation columns plus the delivery of its latest invitation email.
const INVITATION_SELECT: &str = "
    SELECT i.id, i.business_id, i.kind::text AS kind, i.invited_by, i.email, i.partner_business_id, i.role,
           i.message, i.locale, i.grants, i.token_nonce, i.status::text AS status, i.created_at, i.expires_at,
           i.updated_at, i.accepted_by, i.renewed_from,
           d.status::text AS delivery_status, d.attempts AS delivery_attempts,
           d.last_error AS delivery_last_error, d.sent_at AS delivery_sent_at
    FROM invitations i
    LEFT JOIN LATERAL (
        SELECT o.status, o.attempts, o.last_error, o.sent_at FROM email_outbox o
        WHERE o.invitation_id = i.id
          AND o.template IN ('member_invitation', 'partner_invitation', 'partner_request')
        ORDER BY o.created_at DESC, o.id DESC LIMIT 1
    ) d ON true";

fn invitation_from_row(row: &PgRow) -> StoreResult<InvitationRecord> {
    let kind: String = get(row, "kind")?;
    let delivery = match get::<Option<String>>(row, "delivery_status")? {
        Some(status) => Some(DeliveryRecord {
            status: outbox_status(status)?,
            attempts: get::<i32>(row, "delivery_attempts")? as u32,
            last_error: get(row, "delivery_last_error")?,
            sent_at: get(row, "delivery_sent_at")?,
        }),
        None => None,
    };
    Ok(InvitationRecord {
        id: InvitationId(get(row, "id")?),
        business_id: BusinessId(get(row, "business_id")?),
        kind: InvitationKind::parse(&kind).ok_or_else(|| corrupt("kind", &kind))?,
        invited_by: user_id(get(row, "invited_by")?)?,
        email: get::<Option<String>>(row, "email")?
            .map(email)
            .transpose()?,
        partner_business_id: get::<Option<Uuid>>(row, "partner_business_id")?.map(BusinessId),
        role: get::<Option<String>>(row, "role")?.map(|r| Role::from_stored(&r)),
        message: get(row, "message")?,
        locale: locale(get(row, "locale")?)?,
        grants: grants(get(row, "grants")?)?,
        token_nonce: TokenNonce(get(row, "token_nonce")?),
        status: status(&get::<String>(row, "status")?)?,
        created_at: get(row, "created_at")?,
        expires_at: get(row, "expires_at")?,
        updated_at: get(row, "updated_at")?,
        accepted_by: get::<Option<String>>(row, "accepted_by")?
            .map(user_id)
            .transpose()?,
        renewed_from: get::<Option<Uuid>>(row, "renewed_from")?.map(InvitationId),
        delivery,
    })
}

pub struct PgTx {
    tx: Transaction<'static, Postgres>,
    /// Who to wake after the commit.
    wrote: Wrote,
    signals: Arc<Signals>,
}

#[async_trait]
impl StoreTx for PgTx {
    async fn now(&mut self) -> StoreResult<DateTime<Utc>> {
        // The wall clock, not now()'s transaction start: read after the row
        // locks, it orders creation times the way the locks ordered the writes.
        sqlx::query_scalar("SELECT clock_timestamp()")
            .fetch_one(&mut *self.tx)
            .await
            .st()
    }

    async fn upsert_user(&mut self, user: &NewUser) -> StoreResult<UserRecord> {
        let row = sqlx::query(
            "INSERT INTO users (user_id, email, display_name, locale) VALUES ($1, $2, $3, $4)
             ON CONFLICT (user_id) DO UPDATE
               SET email = EXCLUDED.email, display_name = EXCLUDED.display_name,
                   locale = EXCLUDED.locale, updated_at = now()
             RETURNING user_id, email, display_name, locale, created_at, updated_at",
        )
        .bind(user.user_id.as_str())
        .bind(user.email.as_str())
        .bind(user.display_name.as_deref())
        .bind(user.locale.as_str())
        .fetch_one(&mut *self.tx)
        .await
        .st()?;
        user_from_row(&row)
    }

    async fn get_user(&mut self, id: &UserId) -> StoreResult<Option<UserRecord>> {
        let row = sqlx::query(
            "SELECT user_id, email, display_name, locale, created_at, updated_at FROM users WHERE user_id = $1",
        )
        .bind(id.as_str())
        .fetch_optional(&mut *self.tx)
        .await
        .st()?;
        row.as_ref().map(user_from_row).transpose()
    }

    async fn insert_business(&mut self, b: &NewBusiness) -> StoreResult<BusinessRecord> {
        let row = sqlx::query(
            "INSERT INTO businesses (id, public_id, name, role_preset, seat_limit, locale)
             VALUES ($1, $2, $3, $4, $5, $6)
             RETURNING id, public_id, name, role_preset, seat_limit, locale, require_2fa, created_at, updated_at",
        )
        .bind(b.id.0)
        .bind(b.public_id.as_str())
        .bind(&b.name)
        .bind(b.role_preset.as_str())
        .bind(b.seat_limit.map(|n| n as i32))
        .bind(b.locale.as_ref().map(|l| l.as_str()))
        .fetch_one(&mut *self.tx)
        .await
        .st()?;
        business_from_row(&row)
    }

    async fn lock_business(&mut self, id: BusinessId) -> StoreResult<Option<BusinessRecord>> {
        let sql =
            format!("SELECT {BUSINESS_COLUMNS} FROM businesses WHERE id = $1 FOR NO KEY UPDATE");
        let row = sqlx::query(sqlx::AssertSqlSafe(sql))
            .bind(id.0)
            .fetch_optional(&mut *self.tx)
            .await
            .st()?;
        row.as_ref().map(business_from_row).transpose()
    }

    async fn get_member(
        &mut self,
        business: BusinessId,
        user: &UserId,
    ) -> StoreResult<Option<MemberRecord>> {
        let row = sqlx::query(MEMBER_SELECT_ONE)
            .bind(business.0)
            .bind(user.as_str())
            .fetch_optional(&mut *self.tx)
            .await
            .st()?;
        row.as_ref().map(member_from_row).transpose()
    }

    async fn insert_member(
        &mut self,
        business: BusinessId,
        user: &UserId,
        role: &Role,
    ) -> StoreResult<()> {
        sqlx::query("INSERT INTO members (business_id, user_id, role) VALUES ($1, $2, $3)")
            .bind(business.0)
            .bind(user.as_str())
            .bind(role.as_str())
            .execute(&mut *self.tx)
            .await
            .st()?;
        Ok(())
    }

    async fn set_member_role(
        &mut self,
        business: BusinessId,
        user: &UserId,
        role: &Role,
    ) -> StoreResult<()> {
        sqlx::query("UPDATE members SET role = $3 WHERE business_id = $1 AND user_id = $2")
            .bind(business.0)
            .bind(user.as_str())
            .bind(role.as_str())
            .execute(&mut *self.tx)
            .await
            .st()?;
        Ok(())
    }

    async fn delete_member(&mut self, business: BusinessId, user: &UserId) -> StoreResult<()> {
        sqlx::query("DELETE FROM members WHERE business_id = $1 AND user_id = $2")
            .bind(business.0)
            .bind(user.as_str())
            .execute(&mut *self.tx)
            .await
            .st()?;
        Ok(())
    }

    async fn is_member_email(&mut self, business: BusinessId, email: &Email) -> StoreResult<bool> {
        sqlx::query_scalar(
            "SELECT EXISTS (SELECT 1 FROM members m JOIN users u ON u.user_id = m.user_id
                            WHERE m.business_id = $1 AND lower(u.email) = $2)",
        )
        .bind(business.0)
        .bind(email.as_str())
        .fetch_one(&mut *self.tx)
        .await
        .st()
    }

    async fn count_members(&mut self, business: BusinessId) -> StoreResult<u32> {
        let n: i64 = sqlx::query_scalar("SELECT count(*) FROM members WHERE business_id = $1")
            .bind(business.0)
            .fetch_one(&mut *self.tx)
            .await
            .st()?;
        Ok(n as u32)
    }

    async fn invitation_times_since(
        &mut self,
        business: BusinessId,
        since: DateTime<Utc>,
    ) -> StoreResult<Vec<DateTime<Utc>>> {
        sqlx::query_scalar(
            "SELECT created_at FROM invitations WHERE business_id = $1 AND created_at > $2 ORDER BY created_at",
        )
        .bind(business.0)
        .bind(since)
        .fetch_all(&mut *self.tx)
        .await
        .st()
    }

    async fn count_pending_member_invitations(&mut self, business: BusinessId) -> StoreResult<u32> {
        // Pending by the database clock: one past its expiry no longer holds a seat.
        let n: i64 = sqlx::query_scalar(
            "SELECT count(*) FROM invitations
             WHERE business_id = $1 AND kind = 'member' AND status = 'pending' AND expires_at > now()",
        )
        .bind(business.0)
        .fetch_one(&mut *self.tx)
        .await
        .st()?;
        Ok(n as u32)
    }

    async fn has_pending_invitation(
        &mut self,
        business: BusinessId,
        email: &Email,
    ) -> StoreResult<bool> {
        sqlx::query_scalar(
            "SELECT EXISTS (SELECT 1 FROM invitations
                            WHERE business_id = $1 AND email = $2 AND kind = 'member' AND status = 'pending')",
        )
        .bind(business.0)
        .bind(email.as_str())
        .fetch_one(&mut *self.tx)
        .await
        .st()
    }

    async fn insert_invitation(&mut self, i: &NewInvitation) -> StoreResult<()> {
        sqlx::query(
            "INSERT INTO invitations (id, business_id, kind, invited_by, email, partner_business_id, role, message,
                                      locale, grants, token_hash, token_nonce, status, created_at, expires_at,
                                      updated_at, renewed_from)
             VALUES ($1, $2, $3::invitation_kind, $4, $5, $6, $7, $8, $9, $10, $11, $12, 'pending', $13, $14, $13, $15)",
        )
        .bind(i.id.0)
        .bind(i.business_id.0)
        .bind(i.kind.as_str())
        .bind(i.invited_by.as_str())
        .bind(i.email.as_ref().map(|e| e.as_str()))
        .bind(i.partner_business_id.map(|b| b.0))
        .bind(i.role.as_ref().map(|r| r.as_str()))
        .bind(i.message.as_deref())
        .bind(i.locale.as_str())
        .bind(grants_json(&i.grants))
        .bind(&i.token_hash.0)
        .bind(&i.token_nonce.0)
        .bind(i.created_at)
        .bind(i.expires_at)
        .bind(i.renewed_from.map(|r| r.0))
        .execute(&mut *self.tx)
        .await
        .st()?;
        Ok(())
    }

    async fn lock_invitation(&mut self, id: InvitationId) -> StoreResult<Option<InvitationRecord>> {
        // Lock the invitation row first (the LATERAL join cannot be locked).
        // `NO KEY UPDATE`: commands on one invitation still take turns, but
        // the KEY SHARE locks of inserts that reference it (the delivery
        // recorder's `invitation.sent` events, attempts, outbox rows) neither
        // wait for a command nor make it wait. With `FOR UPDATE` an accept
        // and a batch of outcomes naming that invitation queued behind each
        // other's commits (BENCHMARKS.md).
        let found: Option<Uuid> =
            sqlx::query_scalar("SELECT id FROM invitations WHERE id = $1 FOR NO KEY UPDATE")
                .bind(id.0)
                .fetch_optional(&mut *self.tx)
                .await
                .st()?;
        if found.is_none() {
            return Ok(None);
        }
        let sql = format!("{INVITATION_SELECT} WHERE i.id = $1");
        let row = sqlx::query(sqlx::AssertSqlSafe(sql))
            .bind(id.0)
            .fetch_one(&mut *self.tx)
            .await
            .st()?;
        invitation_from_row(&row).map(Some)
    }

    async fn set_invitation_status(
        &mut self,
        id: InvitationId,
        status: InvitationStatus,
        accepted_by: Option<&UserId>,
    ) -> StoreResult<()> {
        sqlx::query(
            "UPDATE invitations SET status = $2::invitation_status, updated_at = now(),
                 accepted_at  = CASE WHEN $2 = 'accepted'  THEN now() END,
                 accepted_by  = CASE WHEN $2 = 'accepted'  THEN $3 END,
                 declined_at  = CASE WHEN $2 = 'declined'  THEN now() END,
                 cancelled_at = CASE WHEN $2 = 'cancelled' THEN now() END,
                 expired_at   = CASE WHEN $2 = 'expired'   THEN now() END
             WHERE id = $1",
        )
        .bind(id.0)
        .bind(status.as_str())
        .bind(accepted_by.map(|u| u.as_str()))
        .execute(&mut *self.tx)
        .await
        .st()?;
        Ok(())
    }

    async fn last_invitation_email_at(
        &mut self,
        id: InvitationId,
    ) -> StoreResult<Option<DateTime<Utc>>> {
        sqlx::query_scalar(
            "SELECT max(created_at) FROM email_outbox
             WHERE invitation_id = $1 AND template IN ('member_invitation', 'partner_invitation', 'partner_request')",
        )
        .bind(id.0)
        .fetch_one(&mut *self.tx)
        .await
        .st()
    }

    async fn insert_event(&mut self, e: &NewEvent) -> StoreResult<()> {
        sqlx::query(
            "INSERT INTO events (id, business_id, invitation_id, type, actor_user_id, from_status, to_status, data)
             VALUES ($1, $2, $3, $4, $5, $6::invitation_status, $7::invitation_status, $8)",
        )
        .bind(e.id)
        .bind(e.business_id.0)
        .bind(e.invitation_id.map(|i| i.0))
        .bind(&e.event_type)
        .bind(e.actor_user_id.as_ref().map(|u| u.as_str()))
        .bind(e.from_status.map(|s| s.as_str()))
        .bind(e.to_status.map(|s| s.as_str()))
        .bind(&e.data)
        .execute(&mut *self.tx)
        .await
        .st()?;
        self.wrote.add(Channel::Events);
        Ok(())
    }

    async fn enqueue_email(&mut self, m: &NewEmail) -> StoreResult<()> {
        sqlx::query(
            "INSERT INTO email_outbox (id, business_id, invitation_id, template, locale, recipient, recipient_name,
                                       context, message_id)
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)",
        )
        .bind(m.id)
        .bind(m.business_id.0)
        .bind(m.invitation_id.map(|i| i.0))
        .bind(m.template.as_str())
        .bind(m.locale.as_str())
        .bind(m.recipient.as_str())
        .bind(m.recipient_name.as_deref())
        .bind(&m.context)
        .bind(&m.message_id)
        .execute(&mut *self.tx)
        .await
        .st()?;
        // The dispatchers are woken after the commit, not by a NOTIFY in
        // this transaction (see `wake`).
        self.wrote.add(Channel::Outbox);
        Ok(())
    }

    async fn finish_email_attempt(&mut self, a: &EmailAttempt) -> StoreResult<()> {
        sqlx::query(
            "INSERT INTO email_attempts (id, outbox_id, business_id, outcome, smtp_code, detail, duration_ms)
             VALUES ($1, $2, $3, $4, $5, $6, $7)",
        )
        .bind(Uuid::now_v7())
        .bind(a.outbox_id)
        .bind(a.business_id.0)
        .bind(a.kind)
        .bind(a.smtp_code.map(|c| c as i16))
        .bind(a.detail.as_deref())
        .bind(a.duration.as_millis().min(i32::MAX as u128) as i32)
        .execute(&mut *self.tx)
        .await
        .st()?;
        let q = match &a.outcome {
            AttemptOutcome::Sent => sqlx::query(
                "UPDATE email_outbox SET status = 'sent', sent_at = now(), lease_until = NULL, last_error = NULL,
                        updated_at = now() WHERE id = $1",
            )
            .bind(a.outbox_id),
            AttemptOutcome::Retry { after } => sqlx::query(
                "UPDATE email_outbox SET status = 'retrying', lease_until = NULL, last_error = $2,
                        available_at = now() + make_interval(secs => $3), updated_at = now() WHERE id = $1",
            )
            .bind(a.outbox_id)
            .bind(a.detail.as_deref())
            .bind(after.as_secs_f64()),
            AttemptOutcome::Failed => sqlx::query(
                "UPDATE email_outbox SET status = 'failed', lease_until = NULL, last_error = $2, updated_at = now()
                 WHERE id = $1",
            )
            .bind(a.outbox_id)
            .bind(a.detail.as_deref()),
        };
        q.execute(&mut *self.tx).await.st()?;
        Ok(())
    }

    async fn insert_events(&mut self, events: &[NewEvent]) -> StoreResult<()> {
        if events.is_empty() {
            return Ok(());
        }
        // One statement for the batch; `WITH ORDINALITY` keeps the order, so
        // `seq` (insertion order inside the transaction) follows the slice.
        sqlx::query(
            "INSERT INTO events (id, business_id, invitation_id, type, actor_user_id, from_status, to_status, data)
             SELECT id, business_id, invitation_id, type, actor_user_id, from_status::invitation_status,
                    to_status::invitation_status, data
               FROM unnest($1::uuid[], $2::uuid[], $3::uuid[], $4::text[], $5::text[], $6::text[], $7::text[],
                           $8::jsonb[])
                    WITH ORDINALITY AS e(id, business_id, invitation_id, type, actor_user_id, from_status,
                                         to_status, data, n)
              ORDER BY n",
        )
        .bind(events.iter().map(|e| e.id).collect::<Vec<_>>())
        .bind(events.iter().map(|e| e.business_id.0).collect::<Vec<_>>())
        .bind(events.iter().map(|e| e.invitation_id.map(|i| i.0)).collect::<Vec<_>>())
        .bind(events.iter().map(|e| e.event_type.as_str()).collect::<Vec<_>>())
        .bind(events.iter().map(|e| e.actor_user_id.as_ref().map(|u| u.as_str())).collect::<Vec<_>>())
        .bind(events.iter().map(|e| e.from_status.map(|s| s.as_str())).collect::<Vec<_>>())
        .bind(events.iter().map(|e| e.to_status.map(|s| s.as_str())).collect::<Vec<_>>())
        .bind(events.iter().map(|e| &e.data).collect::<Vec<_>>())
        .execute(&mut *self.tx)
        .await
        .st()?;
        self.wrote.add(Channel::Events);
        Ok(())
    }

    async fn finish_email_attempts(&mut self, attempts: &[EmailAttempt]) -> StoreResult<()> {
        if attempts.is_empty() {
            return Ok(());
        }
        // The per-row statements of `finish_email_attempt`, for the whole
        // batch in one round trip: the attempt rows, then each outbox row's
        // new state (the columns each outcome sets there, and no others).
        let status = |a: &EmailAttempt| match a.outcome {
            AttemptOutcome::Sent => "sent",
            AttemptOutcome::Retry { .. } => "retrying",
            AttemptOutcome::Failed => "failed",
        };
        let after = |a: &EmailAttempt| match a.outcome {
            AttemptOutcome::Retry { after } => after.as_secs_f64(),
            _ => 0.0,
        };
        sqlx::query(
            "WITH attempts AS (
                 INSERT INTO email_attempts (id, outbox_id, business_id, outcome, smtp_code, detail, duration_ms)
                 SELECT * FROM unnest($1::uuid[], $2::uuid[], $3::uuid[], $4::text[], $5::int2[], $6::text[],
                                      $7::int4[])
             )
             UPDATE email_outbox o
                SET status = v.status::email_status,
                    sent_at = CASE WHEN v.status = 'sent' THEN now() ELSE o.sent_at END,
                    lease_until = NULL,
                    last_error = CASE WHEN v.status = 'sent' THEN NULL ELSE v.detail END,
                    available_at = CASE WHEN v.status = 'retrying' THEN now() + make_interval(secs => v.after)
                                        ELSE o.available_at END,
                    updated_at = now()
               FROM unnest($2::uuid[], $8::text[], $6::text[], $9::float8[]) AS v(id, status, detail, after)
              WHERE o.id = v.id",
        )
        .bind(attempts.iter().map(|_| Uuid::now_v7()).collect::<Vec<_>>())
        .bind(attempts.iter().map(|a| a.outbox_id).collect::<Vec<_>>())
        .bind(attempts.iter().map(|a| a.business_id.0).collect::<Vec<_>>())
        .bind(attempts.iter().map(|a| a.kind).collect::<Vec<_>>())
        .bind(attempts.iter().map(|a| a.smtp_code.map(|c| c as i16)).collect::<Vec<_>>())
        .bind(attempts.iter().map(|a| a.detail.as_deref()).collect::<Vec<_>>())
        .bind(attempts.iter().map(|a| a.duration.as_millis().min(i32::MAX as u128) as i32).collect::<Vec<_>>())
        .bind(attempts.iter().map(status).collect::<Vec<_>>())
        .bind(attempts.iter().map(after).collect::<Vec<_>>())
        .execute(&mut *self.tx)
        .await
        .st()?;
        Ok(())
    }

    async fn cancel_email(&mut self, id: Uuid, reason: &str) -> StoreResult<()> {
        sqlx::query(
            "UPDATE email_outbox SET status = 'cancelled', lease_until = NULL, last_error = $2, updated_at = now()
             WHERE id = $1",
        )
        .bind(id)
        .bind(reason)
        .execute(&mut *self.tx)
        .await
        .st()?;
        Ok(())
    }

    async fn expire_due_invitations(
        &mut self,
        limit: u32,
    ) -> StoreResult<Vec<(InvitationId, BusinessId)>> {
        // The locking read re-checks `status = 'pending'` on a row another
        // transaction changed meanwhile, so a row is moved at most once. `NO KEY
        // UPDATE`, like every row lock here: the KEY SHARE locks that inserts
        // referencing the invitation take (events, outbox, attempts) must not
        // make the sweeps skip it.
        let rows: Vec<(Uuid, Uuid)> = sqlx::query_as(
            "WITH due AS (
                 SELECT id FROM invitations
                 WHERE status = 'pending' AND expires_at <= now()
                 ORDER BY expires_at, id
                 LIMIT $1
                 FOR NO KEY UPDATE SKIP LOCKED
             )
             UPDATE invitations i
                SET status = 'expired', expired_at = now(), updated_at = now()
               FROM due WHERE i.id = due.id AND i.status = 'pending'
             RETURNING i.id, i.business_id",
        )
        .bind(limit as i64)
        .fetch_all(&mut *self.tx)
        .await
        .st()?;
        Ok(rows
            .into_iter()
            .map(|(i, b)| (InvitationId(i), BusinessId(b)))
            .collect())
    }

    async fn due_reminders(
        &mut self,
        offset: Duration,
        next: Option<Duration>,
        limit: u32,
    ) -> StoreResult<Vec<InvitationId>> {
        let ids: Vec<Uuid> = sqlx::query_scalar(
            "SELECT i.id FROM invitations i
             WHERE i.status = 'pending' AND i.kind = 'member' AND i.expires_at > now()
               AND i.created_at <= now() - make_interval(secs => $1)
               AND ($2::float8 IS NULL OR i.created_at > now() - make_interval(secs => $2))
               AND NOT EXISTS (SELECT 1 FROM invitation_reminders r
                               WHERE r.invitation_id = i.id AND r.offset_secs = $3)
             ORDER BY i.created_at, i.id
             LIMIT $4
             FOR NO KEY UPDATE OF i SKIP LOCKED",
        )
        .bind(offset.as_secs_f64())
        .bind(next.map(|n| n.as_secs_f64()))
        .bind(offset.as_secs().max(1) as i64)
        .bind(limit as i64)
        .fetch_all(&mut *self.tx)
        .await
        .st()?;
        Ok(ids.into_iter().map(InvitationId).collect())
    }

    async fn record_reminder(
        &mut self,
        invitation: InvitationId,
        business: BusinessId,
        offset: Duration,
        outbox_id: Uuid,
    ) -> StoreResult<bool> {
        let r = sqlx::query(
            "INSERT INTO invitation_reminders (invitation_id, business_id, offset_secs, outbox_id)
             VALUES ($1, $2, $3, $4) ON CONFLICT (invitation_id, offset_secs) DO NOTHING",
        )
        .bind(invitation.0)
        .bind(business.0)
        .bind(offset.as_secs().max(1) as i64)
        .bind(outbox_id)
        .execute(&mut *self.tx)
        .await
        .st()?;
        Ok(r.rows_affected() == 1)
    }

    async fn commit(self: Box<Self>) -> StoreResult<()> {
        let PgTx { tx, wrote, signals } = *self;
        tx.commit().await.st()?;
        signals.committed(wrote);
        Ok(())
    }
}

const MEMBER_SELECT_ONE: &str = "
    SELECT m.business_id, m.user_id, u.email, m.role, m.joined_at
    FROM members m JOIN users u ON u.user_id = m.user_id
    WHERE m.business_id = $1 AND m.user_id = $2";

#[async_trait]
impl Store for PgStore {
    async fn begin(&self) -> StoreResult<Box<dyn StoreTx>> {
        let tx = self.pool.begin().await.st()?;
        Ok(Box::new(PgTx {
            tx,
            wrote: Wrote::default(),
            signals: self.signals.clone(),
        }))
    }

    async fn ready(&self) -> StoreResult<bool> {
        let applied: Vec<i64> = sqlx::query_scalar(
            "SELECT version FROM _sqlx_migrations WHERE success ORDER BY version",
        )
        .fetch_all(&self.pool)
        .await
        .st()?;
        let shipped: Vec<i64> = MIGRATOR
            .iter()
            .filter(|m| m.migration_type.is_up_migration())
            .map(|m| m.version)
            .collect();
        Ok(shipped.iter().all(|v| applied.contains(v)))
    }

    async fn token_key(&self) -> StoreResult<Vec<u8>> {
        let fresh: [u8; 32] = rand::random();
        sqlx::query("INSERT INTO daemon_secrets (name, value) VALUES ('token_key', $1) ON CONFLICT (name) DO NOTHING")
            .bind(&fresh[..])
            .execute(&self.pool)
            .await
            .st()?;
        sqlx::query_scalar("SELECT value FROM daemon_secrets WHERE name = 'token_key'")
            .fetch_one(&self.pool)
            .await
            .st()
    }

    async fn get_business(&self, id: BusinessId) -> StoreResult<Option<BusinessRecord>> {
        let sql = format!("SELECT {BUSINESS_COLUMNS} FROM businesses WHERE id = $1");
        let row = sqlx::query(sqlx::AssertSqlSafe(sql))
            .bind(id.0)
            .fetch_optional(&self.pool)
            .await
            .st()?;
        row.as_ref().map(business_from_row).transpose()
    }

    async fn get_member(
        &self,
        business: BusinessId,
        user: &UserId,
    ) -> StoreResult<Option<MemberRecord>> {
        let row = sqlx::query(MEMBER_SELECT_ONE)
            .bind(business.0)
            .bind(user.as_str())
            .fetch_optional(&self.pool)
            .await
            .st()?;
        row.as_ref().map(member_from_row).transpose()
    }

    async fn list_members(&self, business: BusinessId) -> StoreResult<Vec<MemberRecord>> {
        let rows = sqlx::query(
            "SELECT m.business_id, m.user_id, u.email, m.role, m.joined_at
             FROM members m JOIN users u ON u.user_id = m.user_id
             WHERE m.business_id = $1 ORDER BY m.joined_at, m.user_id",
        )
        .bind(business.0)
        .fetch_all(&self.pool)
        .await
        .st()?;
        rows.iter().map(member_from_row).collect()
    }

    async fn get_invitation(&self, id: InvitationId) -> StoreResult<Option<InvitationRecord>> {
        let sql = format!("{INVITATION_SELECT} WHERE i.id = $1");
        let row = sqlx::query(sqlx::AssertSqlSafe(sql))
            .bind(id.0)
            .fetch_optional(&self.pool)
            .await
            .st()?;
        row.as_ref().map(invitation_from_row).transpose()
    }

    async fn find_invitation_by_token(
        &self,
        hash: &TokenHash,
    ) -> StoreResult<Option<InvitationId>> {
        let id: Option<Uuid> =
            sqlx::query_scalar("SELECT id FROM invitations WHERE token_hash = $1")
                .bind(&hash.0)
                .fetch_optional(&self.pool)
                .await
                .st()?;
        Ok(id.map(InvitationId))
    }

    async fn list_invitations(&self, q: &InvitationQuery) -> StoreResult<Vec<InvitationRecord>> {
        let sql = format!(
            "{INVITATION_SELECT}
             WHERE (CASE WHEN $6 THEN i.partner_business_id = $1 ELSE i.business_id = $1 END)
               AND ($2::invitation_status IS NULL OR i.status = $2::invitation_status)
               AND ($3::invitation_kind IS NULL OR i.kind = $3::invitation_kind)
               AND ($4::uuid IS NULL OR i.id < $4)
             ORDER BY i.id DESC LIMIT $5"
        );
        let rows = sqlx::query(sqlx::AssertSqlSafe(sql))
            .bind(q.business_id.0)
            .bind(q.status.map(|s| s.as_str()))
            .bind(q.kind.map(|k| k.as_str()))
            .bind(q.before.map(|b| b.0))
            .bind(q.limit as i64)
            .bind(q.incoming)
            .fetch_all(&self.pool)
            .await
            .st()?;
        rows.iter().map(invitation_from_row).collect()
    }

    async fn timeline(&self, id: InvitationId) -> StoreResult<Vec<TimelineEntry>> {
        let events = sqlx::query(
            "SELECT id, type, occurred_at, actor_user_id, from_status::text AS from_status,
                    to_status::text AS to_status, data
             FROM events WHERE invitation_id = $1 ORDER BY occurred_at, id",
        )
        .bind(id.0)
        .fetch_all(&self.pool)
        .await
        .st()?;
        let attempts = sqlx::query(
            "SELECT a.id, a.attempted_at, o.template, o.recipient, a.outcome, a.smtp_code, a.detail, a.duration_ms
             FROM email_attempts a JOIN email_outbox o ON o.id = a.outbox_id
             WHERE o.invitation_id = $1 ORDER BY a.attempted_at, a.id",
        )
        .bind(id.0)
        .fetch_all(&self.pool)
        .await
        .st()?;
        let mut out = Vec::with_capacity(events.len() + attempts.len());
        for row in &events {
            out.push(TimelineEntry::Event {
                id: get(row, "id")?,
                event_type: get(row, "type")?,
                at: get(row, "occurred_at")?,
                actor_user_id: get(row, "actor_user_id")?,
                from_status: get::<Option<String>>(row, "from_status")?
                    .map(|s| status(&s))
                    .transpose()?,
                to_status: get::<Option<String>>(row, "to_status")?
                    .map(|s| status(&s))
                    .transpose()?,
                data: get(row, "data")?,
            });
        }
        for row in &attempts {
            out.push(TimelineEntry::Delivery {
                id: get(row, "id")?,
                at: get(row, "attempted_at")?,
                template: get(row, "template")?,
                recipient: get(row, "recipient")?,
                outcome: get(row, "outcome")?,
                smtp_code: get::<Option<i16>>(row, "smtp_code")?.map(|c| c as u16),
                detail: get(row, "detail")?,
                duration_ms: get::<i32>(row, "duration_ms")? as u32,
            });
        }
        out.sort_by_key(|e| e.at());
        Ok(out)
    }

    async fn quota_window(
        &self,
        business: BusinessId,
        window: Duration,
    ) -> StoreResult<(DateTime<Utc>, Vec<DateTime<Utc>>)> {
        let mut tx = self.begin().await?;
        let now = tx.now().await?;
        let since = now - chrono::Duration::from_std(window).unwrap_or(chrono::Duration::MAX);
        let times = tx.invitation_times_since(business, since).await?;
        Ok((now, times))
    }

    async fn claim_idempotency_key(
        &self,
        api_key: &str,
        key: &str,
        request_hash: &[u8],
    ) -> StoreResult<IdempotencyClaim> {
        // Expired keys are free again; the purge job only reclaims space.
        sqlx::query(
            "DELETE FROM idempotency_keys WHERE api_key_name = $1 AND key = $2 AND created_at < now() - interval '24 hours'",
        )
        .bind(api_key)
        .bind(key)
        .execute(&self.pool)
        .await
        .st()?;
        let inserted = sqlx::query(
            "INSERT INTO idempotency_keys (api_key_name, key, request_hash) VALUES ($1, $2, $3)
             ON CONFLICT (api_key_name, key) DO NOTHING",
        )
        .bind(api_key)
        .bind(key)
        .bind(request_hash)
        .execute(&self.pool)
        .await
        .st()?;
        if inserted.rows_affected() == 1 {
            return Ok(IdempotencyClaim::New);
        }
        let row = sqlx::query(
            "SELECT request_hash, status, headers, body FROM idempotency_keys WHERE api_key_name = $1 AND key = $2",
        )
        .bind(api_key)
        .bind(key)
        .fetch_optional(&self.pool)
        .await
        .st()?;
        let Some(row) = row else {
            // Released between our insert and select: the caller may retry.
            return Ok(IdempotencyClaim::InProgress);
        };
        let stored_hash: Vec<u8> = get(&row, "request_hash")?;
        if stored_hash != request_hash {
            return Ok(IdempotencyClaim::Mismatch);
        }
        match get::<Option<i16>>(&row, "status")? {
            None => Ok(IdempotencyClaim::InProgress),
            Some(status) => {
                let headers: Option<serde_json::Value> = get(&row, "headers")?;
                let headers = headers
                    .and_then(|h| serde_json::from_value::<Vec<(String, String)>>(h).ok())
                    .unwrap_or_default();
                Ok(IdempotencyClaim::Replay(StoredResponse {
                    status: status as u16,
                    headers,
                    body: get::<Option<Vec<u8>>>(&row, "body")?.unwrap_or_default(),
                }))
            }
        }
    }

    async fn complete_idempotency_key(
        &self,
        api_key: &str,
        key: &str,
        r: &StoredResponse,
    ) -> StoreResult<()> {
        sqlx::query("UPDATE idempotency_keys SET status = $3, headers = $4, body = $5 WHERE api_key_name = $1 AND key = $2")
            .bind(api_key)
            .bind(key)
            .bind(r.status as i16)
            .bind(serde_json::to_value(&r.headers).unwrap_or_default())
            .bind(&r.body)
            .execute(&self.pool)
            .await
            .st()?;
        Ok(())
    }

    async fn release_idempotency_key(&self, api_key: &str, key: &str) -> StoreResult<()> {
        sqlx::query(
            "DELETE FROM idempotency_keys WHERE api_key_name = $1 AND key = $2 AND status IS NULL",
        )
        .bind(api_key)
        .bind(key)
        .execute(&self.pool)
        .await
        .st()?;
        Ok(())
    }

    async fn purge_idempotency_keys(&self, older_than: Duration) -> StoreResult<u64> {
        let r = sqlx::query(
            "DELETE FROM idempotency_keys WHERE created_at < now() - make_interval(secs => $1)",
        )
        .bind(older_than.as_secs_f64())
        .execute(&self.pool)
        .await
        .st()?;
        Ok(r.rows_affected())
    }

    async fn claim_emails(&self, limit: u32, lease: Duration) -> StoreResult<Vec<ClaimedEmail>> {
        // One statement: pick due rows (queued, retrying, or sending with a lapsed
        // lease), skip rows another replica holds, mark them sending, commit.
        // The two kinds are read apart, each through its partial index in
        // order and stopping at the limit: one `OR` made every claim a bitmap
        // scan and a sort of every due row and every dead index entry left by
        // earlier claims (2.5 ms per claim after 20,000 emails, and the claim
        // the busiest statement of a burst; BENCHMARKS.md). Rows locked here
        // but not picked are free again when the statement commits.
        //
        // The claim's commit does not wait for its WAL flush
        // (`synchronous_commit` off for this one transaction). A claim is a
        // lease, visible to every replica at once either way; only a crash of
        // Postgres itself can lose it, and then its rows are simply due again,
        // as after a lapsed lease: still at least once, with duplicates only
        // for sends in flight at the crash. The outcome's own commit flushes
        // the WAL up to itself, the claim included. Waiting for the flush
        // (about 1 ms under load here) was half of create -> email (p50 57 vs
        // 22-28 ms, BENCHMARKS.md).
        let rows = sqlx::query(
            "WITH queued AS (
                 SELECT id, available_at FROM email_outbox
                 WHERE status IN ('queued', 'retrying') AND available_at <= now()
                 ORDER BY available_at, id
                 LIMIT $1
                 FOR UPDATE SKIP LOCKED
             ), lapsed AS (
                 SELECT id, available_at FROM email_outbox
                 WHERE status = 'sending' AND lease_until < now()
                 ORDER BY lease_until
                 LIMIT $1
                 FOR UPDATE SKIP LOCKED
             ), due AS (
                 SELECT id FROM (SELECT * FROM queued UNION ALL SELECT * FROM lapsed) c
                 ORDER BY available_at, id
                 LIMIT $1
             )
             UPDATE email_outbox o
                SET status = 'sending', attempts = o.attempts + 1,
                    lease_until = now() + make_interval(secs => $2), updated_at = now()
               FROM due, (SELECT set_config('synchronous_commit', 'off', true)) AS no_flush_wait
              WHERE o.id = due.id
             RETURNING o.id, o.business_id, o.invitation_id, o.template, o.locale, o.recipient, o.recipient_name,
                       o.context, o.message_id, o.attempts, o.created_at",
        )
        .bind(limit as i64)
        .bind(lease.as_secs_f64())
        .fetch_all(&self.pool)
        .await
        .st()?;
        rows.iter()
            .map(|row| {
                Ok(ClaimedEmail {
                    id: get(row, "id")?,
                    business_id: BusinessId(get(row, "business_id")?),
                    invitation_id: get::<Option<Uuid>>(row, "invitation_id")?.map(InvitationId),
                    template: template(get(row, "template")?)?,
                    locale: get(row, "locale")?,
                    recipient: get(row, "recipient")?,
                    recipient_name: get(row, "recipient_name")?,
                    context: get(row, "context")?,
                    message_id: get(row, "message_id")?,
                    attempts: get::<i32>(row, "attempts")? as u32,
                    created_at: get(row, "created_at")?,
                })
            })
            .collect()
    }

    async fn subscribe_outbox(&self) -> StoreResult<Box<dyn Wakeups>> {
        self.signals.subscribe(&self.pool, Channel::Outbox).await
    }

    async fn close(&self) {
        self.pool.close().await;
    }

    async fn stats(&self) -> StoreResult<StoreStats> {
        let (depth, oldest): (i64, Option<f64>) = sqlx::query_as(
            "SELECT count(*), extract(epoch FROM now() - min(created_at))::float8
             FROM email_outbox WHERE status IN ('queued', 'sending', 'retrying')",
        )
        .fetch_one(&self.pool)
        .await
        .st()?;
        let pending: Vec<(String, i64)> = sqlx::query_as(
            "SELECT kind::text, count(*) FROM invitations WHERE status = 'pending' GROUP BY kind",
        )
        .fetch_all(&self.pool)
        .await
        .st()?;
        let size = self.pool.size();
        let idle = self.pool.num_idle() as u32;
        Ok(StoreStats {
            email_depth: depth as u64,
            email_oldest_age_seconds: oldest.unwrap_or(0.0).max(0.0),
            pending: pending.into_iter().map(|(k, n)| (k, n as u64)).collect(),
            pool_active: size.saturating_sub(idle),
            pool_idle: idle,
            events: self.event_lag().await?,
        })
    }
}
