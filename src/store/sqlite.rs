//! The SQLite adapter of [`Store`], the embedded default (`sqlite://…`). One
//! process owns the database file (see [`SqliteStore::lock_file`]), so what
//! Postgres does across replicas becomes simpler here, and stays in this
//! module:
//!
//! * every write runs in a `BEGIN IMMEDIATE` transaction taken behind one
//!   in-process async mutex (FIFO, so 40 concurrent creates queue instead of
//!   spinning on `SQLITE_BUSY`); holding it is holding the database's write
//!   lock, which stands in for every row lock (`FOR UPDATE`, `FOR NO KEY
//!   UPDATE`) and makes `SKIP LOCKED` claims plain claims;
//! * the database clock is the process clock, read after the write lock is
//!   taken, so creation times follow lock order as on Postgres;
//! * NOTIFY becomes a `tokio::sync::watch` counter bumped after commit (a
//!   subscriber busy when it is bumped still sees the change on its next
//!   wait, so no wake-up is lost);
//! * uuids are hyphenated TEXT, timestamps RFC 3339 TEXT in UTC (one format,
//!   so text order is time order), JSON is TEXT.

use std::path::{Path, PathBuf};
use std::str::FromStr as _;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use sqlx::sqlite::{
    SqliteConnectOptions, SqliteJournalMode, SqlitePool, SqlitePoolOptions, SqliteRow,
    SqliteSynchronous,
};
use sqlx::types::Json;
use sqlx::{Row, Sqlite, Transaction};
use tokio::sync::{Mutex, OwnedMutexGuard, watch};
use uuid::Uuid;
use uuid::fmt::Hyphenated;

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

/// The SQLite migrations this build ships, applied on start.
pub static MIGRATOR: sqlx::migrate::Migrator = sqlx::migrate!("./migrations-sqlite");

/// How long a write transaction waits for the write lock (the adapter's
/// mutex, then SQLite's busy wait for connections outside it) before failing.
const BUSY_TIMEOUT: Duration = Duration::from_secs(30);

#[derive(Clone)]
pub struct SqliteStore {
    pool: SqlitePool,
    /// The database write lock, taken before `BEGIN IMMEDIATE`.
    write: Arc<Mutex<()>>,
    /// Bumped after a commit that queued mail.
    outbox: Arc<watch::Sender<u64>>,
    /// Bumped after a commit that wrote events.
    events: Arc<watch::Sender<u64>>,
}

/// The file lock that keeps a second process off the database file, held
/// for the life of the process (dropped: released).
#[derive(Debug)]
pub struct ProcessLock {
    _file: std::fs::File,
    pub path: PathBuf,
}

impl SqliteStore {
    fn options(url: &str) -> StoreResult<SqliteConnectOptions> {
        Ok(SqliteConnectOptions::from_str(url)
            .map_err(map_err)?
            .create_if_missing(true)
            .journal_mode(SqliteJournalMode::Wal)
            .synchronous(SqliteSynchronous::Normal)
            .foreign_keys(true)
            .busy_timeout(BUSY_TIMEOUT))
    }

    /// The database file a `sqlite:` URL names.
    pub fn database_path(url: &str) -> StoreResult<PathBuf> {
        Ok(Self::options(url)?.get_filename().to_owned())
    }

    /// Takes `<database>.lock` for this process, or says that another
    /// process already serves this file: several replicas need Postgres.
    pub fn lock_file(url: &str) -> StoreResult<ProcessLock> {
        let db = Self::database_path(url)?;
        let mut name = db.clone().into_os_string();
        name.push(".lock");
        let path = PathBuf::from(name);
        let file = std::fs::OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(&path)
            .map_err(|e| StoreError::Other(format!("cannot open {}: {e}", path.display())))?;
        match file.try_lock() {
            Ok(()) => Ok(ProcessLock { _file: file, path }),
            Err(std::fs::TryLockError::WouldBlock) => Err(StoreError::Other(format!(
                "another invited process is already using the SQLite database {} (lock {} is held); \
                 SQLite serves one process only: stop the other one, or use PostgreSQL \
                 (database.url = \"postgres://…\") to run several replicas",
                db.display(),
                path.display()
            ))),
            Err(std::fs::TryLockError::Error(e)) => Err(StoreError::Other(format!(
                "cannot lock {}: {e}",
                path.display()
            ))),
        }
    }

    /// Opens (and creates if missing) the database file. Connections are
    /// made lazily.
    pub async fn connect(url: &str, max_connections: u32) -> StoreResult<SqliteStore> {
        let options = Self::options(url)?;
        let pool = SqlitePoolOptions::new()
            .max_connections(max_connections.max(1))
            .acquire_timeout(Duration::from_secs(30))
            .connect_lazy_with(options);
        Ok(Self::from_pool(pool))
    }

    pub fn from_pool(pool: SqlitePool) -> SqliteStore {
        SqliteStore {
            pool,
            write: Arc::new(Mutex::new(())),
            outbox: Arc::new(watch::channel(0).0),
            events: Arc::new(watch::channel(0).0),
        }
    }

    pub fn pool(&self) -> &SqlitePool {
        &self.pool
    }

    pub async fn migrate(&self) -> StoreResult<()> {
        MIGRATOR
            .run(&self.pool)
            .await
            .map_err(|e| StoreError::Other(format!("migration failed: {e}")))
    }

    /// A write transaction holding the database write lock.
    async fn write_tx(&self) -> StoreResult<SqliteTx> {
        // Bounded like SQLite's own busy wait: a task that asked for a
        // second write transaction while holding one would otherwise wait
        // forever; it gets an error instead.
        let guard = tokio::time::timeout(BUSY_TIMEOUT, self.write.clone().lock_owned())
            .await
            .map_err(|_| {
                StoreError::Unavailable(format!(
                    "the SQLite write lock was not free within {BUSY_TIMEOUT:?}"
                ))
            })?;
        let tx = self.pool.begin_with("BEGIN IMMEDIATE").await.st()?;
        Ok(SqliteTx {
            tx,
            _write: guard,
            wake_outbox: false,
            wake_events: false,
            outbox: self.outbox.clone(),
            events: self.events.clone(),
        })
    }
}

/// Whether `path` looks like a file a `sqlite:` URL would name (for logs).
pub fn describe(url: &str) -> String {
    SqliteStore::database_path(url)
        .map(|p| Path::new(&p).display().to_string())
        .unwrap_or_else(|_| url.to_owned())
}

fn map_err(e: sqlx::Error) -> StoreError {
    match &e {
        sqlx::Error::Database(db) if db.kind() == sqlx::error::ErrorKind::UniqueViolation => {
            StoreError::Conflict(constraint(db.message()))
        }
        sqlx::Error::Io(_)
        | sqlx::Error::PoolTimedOut
        | sqlx::Error::PoolClosed
        | sqlx::Error::WorkerCrashed => StoreError::Unavailable(e.to_string()),
        _ => StoreError::Other(e.to_string()),
    }
}

/// SQLite names the columns of a violated unique index, or the index itself
/// when it is on expressions (those are named as on Postgres).
fn constraint(message: &str) -> Constraint {
    let what = message
        .strip_prefix("UNIQUE constraint failed: ")
        .unwrap_or(message);
    if let Some(index) = what
        .strip_prefix("index '")
        .and_then(|s| s.strip_suffix('\''))
    {
        return Constraint::from_name(index);
    }
    match what {
        "members.business_id, members.user_id" => Constraint::MemberOnce,
        "members.business_id" => Constraint::from_name("members_one_owner"),
        "invitations.business_id, invitations.email" => Constraint::OnePendingPerAddress,
        "profile_grants.profile_id, profile_grants.permission, profile_grants.grantee_business_id"
        | "profile_grants.profile_id, profile_grants.permission, profile_grants.grantee_user_id, profile_grants.holder_business_id" => {
            Constraint::OneGrantPerGrantee
        }
        other => Constraint::from_name(other),
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

fn get<'r, T: sqlx::Decode<'r, Sqlite> + sqlx::Type<Sqlite>>(
    row: &'r SqliteRow,
    col: &str,
) -> StoreResult<T> {
    row.try_get(col).st()
}

fn uuid_at(row: &SqliteRow, col: &str) -> StoreResult<Uuid> {
    Ok(get::<Hyphenated>(row, col)?.into_uuid())
}

fn opt_uuid_at(row: &SqliteRow, col: &str) -> StoreResult<Option<Uuid>> {
    Ok(get::<Option<Hyphenated>>(row, col)?.map(Hyphenated::into_uuid))
}

fn json_at(row: &SqliteRow, col: &str) -> StoreResult<serde_json::Value> {
    Ok(get::<Json<serde_json::Value>>(row, col)?.0)
}

/// A uuid as the adapter stores it.
fn h(id: Uuid) -> Hyphenated {
    id.hyphenated()
}

/// The database clock: the process clock (one process owns the file).
fn now() -> DateTime<Utc> {
    Utc::now()
}

fn plus(at: DateTime<Utc>, d: Duration) -> DateTime<Utc> {
    at + chrono::Duration::from_std(d).unwrap_or(chrono::Duration::MAX / 2)
}

fn minus(at: DateTime<Utc>, d: Duration) -> DateTime<Utc> {
    at - chrono::Duration::from_std(d).unwrap_or(chrono::Duration::MAX / 2)
}

fn user_from_row(row: &SqliteRow) -> StoreResult<UserRecord> {
    Ok(UserRecord {
        user_id: user_id(get(row, "user_id")?)?,
        email: email(get(row, "email")?)?,
        display_name: get(row, "display_name")?,
        locale: locale(get(row, "locale")?)?,
        created_at: get(row, "created_at")?,
        updated_at: get(row, "updated_at")?,
    })
}

fn business_from_row(row: &SqliteRow) -> StoreResult<BusinessRecord> {
    let preset: String = get(row, "role_preset")?;
    let public_id: String = get(row, "public_id")?;
    Ok(BusinessRecord {
        id: BusinessId(uuid_at(row, "id")?),
        public_id: PublicBusinessId::parse(&public_id)
            .map_err(|_| corrupt("business id", &public_id))?,
        name: get(row, "name")?,
        role_preset: RolePreset::parse(&preset).ok_or_else(|| corrupt("role preset", &preset))?,
        seat_limit: get::<Option<i64>>(row, "seat_limit")?.map(|n| n as u32),
        locale: get::<Option<String>>(row, "locale")?
            .map(locale)
            .transpose()?,
        require_2fa: two_factor(get(row, "require_2fa")?)?,
        created_at: get(row, "created_at")?,
        updated_at: get(row, "updated_at")?,
    })
}

fn member_from_row(row: &SqliteRow) -> StoreResult<MemberRecord> {
    Ok(MemberRecord {
        business_id: BusinessId(uuid_at(row, "business_id")?),
        user_id: user_id(get(row, "user_id")?)?,
        email: email(get(row, "email")?)?,
        role: Role::from_stored(&get::<String>(row, "role")?),
        joined_at: get(row, "joined_at")?,
    })
}

/// Invitation columns plus the delivery of its latest invitation email.
const INVITATION_SELECT: &str = "
    SELECT i.id, i.business_id, i.kind, i.invited_by, i.email, i.partner_business_id, i.role,
           i.message, i.locale, i.grants, i.token_nonce, i.status, i.created_at, i.expires_at,
           i.updated_at, i.accepted_by, i.renewed_from,
           d.status AS delivery_status, d.attempts AS delivery_attempts,
           d.last_error AS delivery_last_error, d.sent_at AS delivery_sent_at
    FROM invitations i
    LEFT JOIN email_outbox d ON d.id = (
        SELECT o.id FROM email_outbox o
        WHERE o.invitation_id = i.id
          AND o.template IN ('member_invitation', 'partner_invitation', 'partner_request')
        ORDER BY o.created_at DESC, o.id DESC LIMIT 1
    )";

fn invitation_from_row(row: &SqliteRow) -> StoreResult<InvitationRecord> {
    let kind: String = get(row, "kind")?;
    let delivery = match get::<Option<String>>(row, "delivery_status")? {
        Some(status) => Some(DeliveryRecord {
            status: outbox_status(status)?,
            attempts: get::<i64>(row, "delivery_attempts")? as u32,
            last_error: get(row, "delivery_last_error")?,
            sent_at: get(row, "delivery_sent_at")?,
        }),
        None => None,
    };
    Ok(InvitationRecord {
        id: InvitationId(uuid_at(row, "id")?),
        business_id: BusinessId(uuid_at(row, "business_id")?),
        kind: InvitationKind::parse(&kind).ok_or_else(|| corrupt("kind", &kind))?,
        invited_by: user_id(get(row, "invited_by")?)?,
        email: get::<Option<String>>(row, "email")?
            .map(email)
            .transpose()?,
        partner_business_id: opt_uuid_at(row, "partner_business_id")?.map(BusinessId),
        role: get::<Option<String>>(row, "role")?.map(|r| Role::from_stored(&r)),
        message: get(row, "message")?,
        locale: locale(get(row, "locale")?)?,
        grants: grants(json_at(row, "grants")?)?,
        token_nonce: TokenNonce(get(row, "token_nonce")?),
        status: status(&get::<String>(row, "status")?)?,
        created_at: get(row, "created_at")?,
        expires_at: get(row, "expires_at")?,
        updated_at: get(row, "updated_at")?,
        accepted_by: get::<Option<String>>(row, "accepted_by")?
            .map(user_id)
            .transpose()?,
        renewed_from: opt_uuid_at(row, "renewed_from")?.map(InvitationId),
        delivery,
    })
}

pub struct SqliteTx {
    tx: Transaction<'static, Sqlite>,
    /// Released after the commit (or the rollback on drop).
    _write: OwnedMutexGuard<()>,
    wake_outbox: bool,
    wake_events: bool,
    outbox: Arc<watch::Sender<u64>>,
    events: Arc<watch::Sender<u64>>,
}

impl SqliteTx {
    async fn commit_inner(self) -> StoreResult<()> {
        let SqliteTx {
            tx,
            _write,
            wake_outbox,
            wake_events,
            outbox,
            events,
        } = self;
        tx.commit().await.st()?;
        drop(_write);
        // After the commit, as Postgres delivers a NOTIFY.
        if wake_outbox {
            outbox.send_modify(|n| *n = n.wrapping_add(1));
        }
        if wake_events {
            events.send_modify(|n| *n = n.wrapping_add(1));
        }
        Ok(())
    }
}

#[async_trait]
impl StoreTx for SqliteTx {
    async fn now(&mut self) -> StoreResult<DateTime<Utc>> {
        // Read under the write lock: creation times follow lock order.
        Ok(now())
    }

    async fn upsert_user(&mut self, user: &NewUser) -> StoreResult<UserRecord> {
        let at = now();
        let row = sqlx::query(
            "INSERT INTO users (user_id, email, display_name, locale, created_at, updated_at)
             VALUES ($1, $2, $3, $4, $5, $5)
             ON CONFLICT (user_id) DO UPDATE
               SET email = excluded.email, display_name = excluded.display_name,
                   locale = excluded.locale, updated_at = excluded.updated_at
             RETURNING user_id, email, display_name, locale, created_at, updated_at",
        )
        .bind(user.user_id.as_str())
        .bind(user.email.as_str())
        .bind(user.display_name.as_deref())
        .bind(user.locale.as_str())
        .bind(at)
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
            "INSERT INTO businesses (id, public_id, name, role_preset, seat_limit, locale, created_at, updated_at)
             VALUES ($1, $2, $3, $4, $5, $6, $7, $7)
             RETURNING id, public_id, name, role_preset, seat_limit, locale, require_2fa, created_at, updated_at",
        )
        .bind(h(b.id.0))
        .bind(b.public_id.as_str())
        .bind(&b.name)
        .bind(b.role_preset.as_str())
        .bind(b.seat_limit.map(i64::from))
        .bind(b.locale.as_ref().map(|l| l.as_str()))
        .bind(now())
        .fetch_one(&mut *self.tx)
        .await
        .st()?;
        business_from_row(&row)
    }

    async fn lock_business(&mut self, id: BusinessId) -> StoreResult<Option<BusinessRecord>> {
        // The transaction holds the database write lock: no row lock needed.
        self.read_business(id).await
    }

    async fn get_member(
        &mut self,
        business: BusinessId,
        user: &UserId,
    ) -> StoreResult<Option<MemberRecord>> {
        let row = sqlx::query(MEMBER_SELECT_ONE)
            .bind(h(business.0))
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
        sqlx::query(
            "INSERT INTO members (business_id, user_id, role, joined_at) VALUES ($1, $2, $3, $4)",
        )
        .bind(h(business.0))
        .bind(user.as_str())
        .bind(role.as_str())
        .bind(now())
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
            .bind(h(business.0))
            .bind(user.as_str())
            .bind(role.as_str())
            .execute(&mut *self.tx)
            .await
            .st()?;
        Ok(())
    }

    async fn delete_member(&mut self, business: BusinessId, user: &UserId) -> StoreResult<()> {
        sqlx::query("DELETE FROM members WHERE business_id = $1 AND user_id = $2")
            .bind(h(business.0))
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
        .bind(h(business.0))
        .bind(email.as_str())
        .fetch_one(&mut *self.tx)
        .await
        .st()
    }

    async fn count_members(&mut self, business: BusinessId) -> StoreResult<u32> {
        let n: i64 = sqlx::query_scalar("SELECT count(*) FROM members WHERE business_id = $1")
            .bind(h(business.0))
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
        .bind(h(business.0))
        .bind(since)
        .fetch_all(&mut *self.tx)
        .await
        .st()
    }

    async fn count_pending_member_invitations(&mut self, business: BusinessId) -> StoreResult<u32> {
        let n: i64 = sqlx::query_scalar(
            "SELECT count(*) FROM invitations
             WHERE business_id = $1 AND kind = 'member' AND status = 'pending' AND expires_at > $2",
        )
        .bind(h(business.0))
        .bind(now())
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
        .bind(h(business.0))
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
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, 'pending', $13, $14, $13, $15)",
        )
        .bind(h(i.id.0))
        .bind(h(i.business_id.0))
        .bind(i.kind.as_str())
        .bind(i.invited_by.as_str())
        .bind(i.email.as_ref().map(|e| e.as_str()))
        .bind(i.partner_business_id.map(|b| h(b.0)))
        .bind(i.role.as_ref().map(|r| r.as_str()))
        .bind(i.message.as_deref())
        .bind(i.locale.as_str())
        .bind(Json(grants_json(&i.grants)))
        .bind(&i.token_hash.0)
        .bind(&i.token_nonce.0)
        .bind(i.created_at)
        .bind(i.expires_at)
        .bind(i.renewed_from.map(|r| h(r.0)))
        .execute(&mut *self.tx)
        .await
        .st()?;
        Ok(())
    }

    async fn lock_invitation(&mut self, id: InvitationId) -> StoreResult<Option<InvitationRecord>> {
        // The write lock is already held: a plain read.
        let sql = format!("{INVITATION_SELECT} WHERE i.id = $1");
        let row = sqlx::query(sqlx::AssertSqlSafe(sql))
            .bind(h(id.0))
            .fetch_optional(&mut *self.tx)
            .await
            .st()?;
        row.as_ref().map(invitation_from_row).transpose()
    }

    async fn set_invitation_status(
        &mut self,
        id: InvitationId,
        status: InvitationStatus,
        accepted_by: Option<&UserId>,
    ) -> StoreResult<()> {
        sqlx::query(
            "UPDATE invitations SET status = $2, updated_at = $4,
                 accepted_at  = CASE WHEN $2 = 'accepted'  THEN $4 END,
                 accepted_by  = CASE WHEN $2 = 'accepted'  THEN $3 END,
                 declined_at  = CASE WHEN $2 = 'declined'  THEN $4 END,
                 cancelled_at = CASE WHEN $2 = 'cancelled' THEN $4 END,
                 expired_at   = CASE WHEN $2 = 'expired'   THEN $4 END
             WHERE id = $1",
        )
        .bind(h(id.0))
        .bind(status.as_str())
        .bind(accepted_by.map(|u| u.as_str()))
        .bind(now())
        .execute(&mut *self.tx)
        .await
        .st()?;
        Ok(())
    }

    async fn last_invitation_email_at(
        &mut self,
        id: InvitationId,
    ) -> StoreResult<Option<DateTime<Utc>>> {
        // max() over RFC 3339 text in one format is the latest time.
        sqlx::query_scalar(
            "SELECT max(created_at) FROM email_outbox
             WHERE invitation_id = $1 AND template IN ('member_invitation', 'partner_invitation', 'partner_request')",
        )
        .bind(h(id.0))
        .fetch_one(&mut *self.tx)
        .await
        .st()
    }

    async fn insert_event(&mut self, e: &NewEvent) -> StoreResult<()> {
        sqlx::query(
            "INSERT INTO events (id, business_id, invitation_id, type, actor_user_id, from_status, to_status, data,
                                 occurred_at)
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)",
        )
        .bind(h(e.id))
        .bind(h(e.business_id.0))
        .bind(e.invitation_id.map(|i| h(i.0)))
        .bind(&e.event_type)
        .bind(e.actor_user_id.as_ref().map(|u| u.as_str()))
        .bind(e.from_status.map(|s| s.as_str()))
        .bind(e.to_status.map(|s| s.as_str()))
        .bind(Json(&e.data))
        .bind(now())
        .execute(&mut *self.tx)
        .await
        .st()?;
        self.wake_events = true;
        Ok(())
    }

    async fn enqueue_email(&mut self, m: &NewEmail) -> StoreResult<()> {
        let at = now();
        sqlx::query(
            "INSERT INTO email_outbox (id, business_id, invitation_id, template, locale, recipient, recipient_name,
                                       context, message_id, available_at, created_at, updated_at)
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $10, $10)",
        )
        .bind(h(m.id))
        .bind(h(m.business_id.0))
        .bind(m.invitation_id.map(|i| h(i.0)))
        .bind(m.template.as_str())
        .bind(m.locale.as_str())
        .bind(m.recipient.as_str())
        .bind(m.recipient_name.as_deref())
        .bind(Json(&m.context))
        .bind(&m.message_id)
        .bind(at)
        .execute(&mut *self.tx)
        .await
        .st()?;
        self.wake_outbox = true;
        Ok(())
    }

    async fn finish_email_attempt(&mut self, a: &EmailAttempt) -> StoreResult<()> {
        let at = now();
        sqlx::query(
            "INSERT INTO email_attempts (id, outbox_id, business_id, attempted_at, outcome, smtp_code, detail,
                                         duration_ms)
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8)",
        )
        .bind(h(Uuid::now_v7()))
        .bind(h(a.outbox_id))
        .bind(h(a.business_id.0))
        .bind(at)
        .bind(a.kind)
        .bind(a.smtp_code.map(i64::from))
        .bind(a.detail.as_deref())
        .bind(a.duration.as_millis().min(i32::MAX as u128) as i64)
        .execute(&mut *self.tx)
        .await
        .st()?;
        let q = match &a.outcome {
            AttemptOutcome::Sent => sqlx::query(
                "UPDATE email_outbox SET status = 'sent', sent_at = $2, lease_until = NULL, last_error = NULL,
                        updated_at = $2 WHERE id = $1",
            )
            .bind(h(a.outbox_id))
            .bind(at),
            AttemptOutcome::Retry { after } => sqlx::query(
                "UPDATE email_outbox SET status = 'retrying', lease_until = NULL, last_error = $2,
                        available_at = $3, updated_at = $4 WHERE id = $1",
            )
            .bind(h(a.outbox_id))
            .bind(a.detail.as_deref())
            .bind(plus(at, *after))
            .bind(at),
            AttemptOutcome::Failed => sqlx::query(
                "UPDATE email_outbox SET status = 'failed', lease_until = NULL, last_error = $2, updated_at = $3
                 WHERE id = $1",
            )
            .bind(h(a.outbox_id))
            .bind(a.detail.as_deref())
            .bind(at),
        };
        q.execute(&mut *self.tx).await.st()?;
        Ok(())
    }

    async fn cancel_email(&mut self, id: Uuid, reason: &str) -> StoreResult<()> {
        sqlx::query(
            "UPDATE email_outbox SET status = 'cancelled', lease_until = NULL, last_error = $2, updated_at = $3
             WHERE id = $1",
        )
        .bind(h(id))
        .bind(reason)
        .bind(now())
        .execute(&mut *self.tx)
        .await
        .st()?;
        Ok(())
    }

    async fn expire_due_invitations(
        &mut self,
        limit: u32,
    ) -> StoreResult<Vec<(InvitationId, BusinessId)>> {
        let at = now();
        let rows = sqlx::query(
            "UPDATE invitations SET status = 'expired', expired_at = $1, updated_at = $1
              WHERE id IN (SELECT id FROM invitations
                            WHERE status = 'pending' AND expires_at <= $1
                            ORDER BY expires_at, id LIMIT $2)
             RETURNING id, business_id",
        )
        .bind(at)
        .bind(i64::from(limit))
        .fetch_all(&mut *self.tx)
        .await
        .st()?;
        rows.iter()
            .map(|row| {
                Ok((
                    InvitationId(uuid_at(row, "id")?),
                    BusinessId(uuid_at(row, "business_id")?),
                ))
            })
            .collect()
    }

    async fn due_reminders(
        &mut self,
        offset: Duration,
        next: Option<Duration>,
        limit: u32,
    ) -> StoreResult<Vec<InvitationId>> {
        let at = now();
        let rows = sqlx::query(
            "SELECT i.id FROM invitations i
             WHERE i.status = 'pending' AND i.kind = 'member' AND i.expires_at > $1
               AND i.created_at <= $2
               AND ($3 IS NULL OR i.created_at > $3)
               AND NOT EXISTS (SELECT 1 FROM invitation_reminders r
                               WHERE r.invitation_id = i.id AND r.offset_secs = $4)
             ORDER BY i.created_at, i.id
             LIMIT $5",
        )
        .bind(at)
        .bind(minus(at, offset))
        .bind(next.map(|n| minus(at, n)))
        .bind(offset.as_secs().max(1) as i64)
        .bind(i64::from(limit))
        .fetch_all(&mut *self.tx)
        .await
        .st()?;
        rows.iter()
            .map(|row| Ok(InvitationId(uuid_at(row, "id")?)))
            .collect()
    }

    async fn record_reminder(
        &mut self,
        invitation: InvitationId,
        business: BusinessId,
        offset: Duration,
        outbox_id: Uuid,
    ) -> StoreResult<bool> {
        let r = sqlx::query(
            "INSERT INTO invitation_reminders (invitation_id, business_id, offset_secs, outbox_id, queued_at)
             VALUES ($1, $2, $3, $4, $5) ON CONFLICT (invitation_id, offset_secs) DO NOTHING",
        )
        .bind(h(invitation.0))
        .bind(h(business.0))
        .bind(offset.as_secs().max(1) as i64)
        .bind(h(outbox_id))
        .bind(now())
        .execute(&mut *self.tx)
        .await
        .st()?;
        Ok(r.rows_affected() == 1)
    }

    async fn commit(self: Box<Self>) -> StoreResult<()> {
        (*self).commit_inner().await
    }
}

const MEMBER_SELECT_ONE: &str = "
    SELECT m.business_id, m.user_id, u.email, m.role, m.joined_at
    FROM members m JOIN users u ON u.user_id = m.user_id
    WHERE m.business_id = $1 AND m.user_id = $2";

/// Wake-ups from the in-process counter.
struct SqliteWakeups {
    rx: watch::Receiver<u64>,
}

#[async_trait]
impl Wakeups for SqliteWakeups {
    async fn next(&mut self) -> StoreResult<()> {
        self.rx
            .changed()
            .await
            .map_err(|_| StoreError::Unavailable("store closed".into()))
    }
}

#[async_trait]
impl Store for SqliteStore {
    async fn begin(&self) -> StoreResult<Box<dyn StoreTx>> {
        Ok(Box::new(self.write_tx().await?))
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
        let mut tx = self.write_tx().await?;
        sqlx::query(
            "INSERT INTO daemon_secrets (name, value) VALUES ('token_key', $1) ON CONFLICT (name) DO NOTHING",
        )
        .bind(&fresh[..])
        .execute(&mut *tx.tx)
        .await
        .st()?;
        let key = sqlx::query_scalar("SELECT value FROM daemon_secrets WHERE name = 'token_key'")
            .fetch_one(&mut *tx.tx)
            .await
            .st()?;
        tx.commit_inner().await?;
        Ok(key)
    }

    async fn get_business(&self, id: BusinessId) -> StoreResult<Option<BusinessRecord>> {
        let sql = format!("SELECT {BUSINESS_COLUMNS} FROM businesses WHERE id = $1");
        let row = sqlx::query(sqlx::AssertSqlSafe(sql))
            .bind(h(id.0))
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
            .bind(h(business.0))
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
        .bind(h(business.0))
        .fetch_all(&self.pool)
        .await
        .st()?;
        rows.iter().map(member_from_row).collect()
    }

    async fn get_invitation(&self, id: InvitationId) -> StoreResult<Option<InvitationRecord>> {
        let sql = format!("{INVITATION_SELECT} WHERE i.id = $1");
        let row = sqlx::query(sqlx::AssertSqlSafe(sql))
            .bind(h(id.0))
            .fetch_optional(&self.pool)
            .await
            .st()?;
        row.as_ref().map(invitation_from_row).transpose()
    }

    async fn find_invitation_by_token(
        &self,
        hash: &TokenHash,
    ) -> StoreResult<Option<InvitationId>> {
        let id: Option<Hyphenated> =
            sqlx::query_scalar("SELECT id FROM invitations WHERE token_hash = $1")
                .bind(&hash.0)
                .fetch_optional(&self.pool)
                .await
                .st()?;
        Ok(id.map(|i| InvitationId(i.into_uuid())))
    }

    async fn list_invitations(&self, q: &InvitationQuery) -> StoreResult<Vec<InvitationRecord>> {
        let sql = format!(
            "{INVITATION_SELECT}
             WHERE (CASE WHEN $6 THEN i.partner_business_id = $1 ELSE i.business_id = $1 END)
               AND ($2 IS NULL OR i.status = $2)
               AND ($3 IS NULL OR i.kind = $3)
               AND ($4 IS NULL OR i.id < $4)
             ORDER BY i.id DESC LIMIT $5"
        );
        let rows = sqlx::query(sqlx::AssertSqlSafe(sql))
            .bind(h(q.business_id.0))
            .bind(q.status.map(|s| s.as_str()))
            .bind(q.kind.map(|k| k.as_str()))
            .bind(q.before.map(|b| h(b.0)))
            .bind(q.limit as i64)
            .bind(q.incoming)
            .fetch_all(&self.pool)
            .await
            .st()?;
        rows.iter().map(invitation_from_row).collect()
    }

    async fn timeline(&self, id: InvitationId) -> StoreResult<Vec<TimelineEntry>> {
        let events = sqlx::query(
            "SELECT id, type, occurred_at, actor_user_id, from_status, to_status, data
             FROM events WHERE invitation_id = $1 ORDER BY occurred_at, id",
        )
        .bind(h(id.0))
        .fetch_all(&self.pool)
        .await
        .st()?;
        let attempts = sqlx::query(
            "SELECT a.id, a.attempted_at, o.template, o.recipient, a.outcome, a.smtp_code, a.detail, a.duration_ms
             FROM email_attempts a JOIN email_outbox o ON o.id = a.outbox_id
             WHERE o.invitation_id = $1 ORDER BY a.attempted_at, a.id",
        )
        .bind(h(id.0))
        .fetch_all(&self.pool)
        .await
        .st()?;
        let mut out = Vec::with_capacity(events.len() + attempts.len());
        for row in &events {
            out.push(TimelineEntry::Event {
                id: uuid_at(row, "id")?,
                event_type: get(row, "type")?,
                at: get(row, "occurred_at")?,
                actor_user_id: get(row, "actor_user_id")?,
                from_status: get::<Option<String>>(row, "from_status")?
                    .map(|s| status(&s))
                    .transpose()?,
                to_status: get::<Option<String>>(row, "to_status")?
                    .map(|s| status(&s))
                    .transpose()?,
                data: json_at(row, "data")?,
            });
        }
        for row in &attempts {
            out.push(TimelineEntry::Delivery {
                id: uuid_at(row, "id")?,
                at: get(row, "attempted_at")?,
                template: get(row, "template")?,
                recipient: get(row, "recipient")?,
                outcome: get(row, "outcome")?,
                smtp_code: get::<Option<i64>>(row, "smtp_code")?.map(|c| c as u16),
                detail: get(row, "detail")?,
                duration_ms: get::<i64>(row, "duration_ms")? as u32,
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
        // A read: WAL gives it a consistent snapshot without the write lock.
        let at = now();
        let times = sqlx::query_scalar(
            "SELECT created_at FROM invitations WHERE business_id = $1 AND created_at > $2 ORDER BY created_at",
        )
        .bind(h(business.0))
        .bind(minus(at, window))
        .fetch_all(&self.pool)
        .await
        .st()?;
        Ok((at, times))
    }

    async fn claim_idempotency_key(
        &self,
        api_key: &str,
        key: &str,
        request_hash: &[u8],
    ) -> StoreResult<IdempotencyClaim> {
        let mut tx = self.write_tx().await?;
        let at = now();
        // Expired keys are free again; the purge job only reclaims space.
        sqlx::query(
            "DELETE FROM idempotency_keys WHERE api_key_name = $1 AND key = $2 AND created_at < $3",
        )
        .bind(api_key)
        .bind(key)
        .bind(minus(at, Duration::from_secs(24 * 3600)))
        .execute(&mut *tx.tx)
        .await
        .st()?;
        let inserted = sqlx::query(
            "INSERT INTO idempotency_keys (api_key_name, key, request_hash, created_at) VALUES ($1, $2, $3, $4)
             ON CONFLICT (api_key_name, key) DO NOTHING",
        )
        .bind(api_key)
        .bind(key)
        .bind(request_hash)
        .bind(at)
        .execute(&mut *tx.tx)
        .await
        .st()?;
        if inserted.rows_affected() == 1 {
            tx.commit_inner().await?;
            return Ok(IdempotencyClaim::New);
        }
        let row = sqlx::query(
            "SELECT request_hash, status, headers, body FROM idempotency_keys WHERE api_key_name = $1 AND key = $2",
        )
        .bind(api_key)
        .bind(key)
        .fetch_optional(&mut *tx.tx)
        .await
        .st()?;
        tx.commit_inner().await?;
        let Some(row) = row else {
            return Ok(IdempotencyClaim::InProgress);
        };
        let stored_hash: Vec<u8> = get(&row, "request_hash")?;
        if stored_hash != request_hash {
            return Ok(IdempotencyClaim::Mismatch);
        }
        match get::<Option<i64>>(&row, "status")? {
            None => Ok(IdempotencyClaim::InProgress),
            Some(status) => {
                let headers: Option<Json<serde_json::Value>> = get(&row, "headers")?;
                let headers = headers
                    .and_then(|h| serde_json::from_value::<Vec<(String, String)>>(h.0).ok())
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
        let mut tx = self.write_tx().await?;
        sqlx::query("UPDATE idempotency_keys SET status = $3, headers = $4, body = $5 WHERE api_key_name = $1 AND key = $2")
            .bind(api_key)
            .bind(key)
            .bind(i64::from(r.status))
            .bind(Json(serde_json::to_value(&r.headers).unwrap_or_default()))
            .bind(&r.body)
            .execute(&mut *tx.tx)
            .await
            .st()?;
        tx.commit_inner().await
    }

    async fn release_idempotency_key(&self, api_key: &str, key: &str) -> StoreResult<()> {
        let mut tx = self.write_tx().await?;
        sqlx::query(
            "DELETE FROM idempotency_keys WHERE api_key_name = $1 AND key = $2 AND status IS NULL",
        )
        .bind(api_key)
        .bind(key)
        .execute(&mut *tx.tx)
        .await
        .st()?;
        tx.commit_inner().await
    }

    async fn purge_idempotency_keys(&self, older_than: Duration) -> StoreResult<u64> {
        let mut tx = self.write_tx().await?;
        let r = sqlx::query("DELETE FROM idempotency_keys WHERE created_at < $1")
            .bind(minus(now(), older_than))
            .execute(&mut *tx.tx)
            .await
            .st()?;
        tx.commit_inner().await?;
        Ok(r.rows_affected())
    }

    async fn claim_emails(&self, limit: u32, lease: Duration) -> StoreResult<Vec<ClaimedEmail>> {
        // Under the write lock nobody else claims: a plain claim, committed
        // before any SMTP exchange.
        let mut tx = self.write_tx().await?;
        let at = now();
        let rows = sqlx::query(
            "UPDATE email_outbox
                SET status = 'sending', attempts = attempts + 1, lease_until = $3, updated_at = $1
              WHERE id IN (SELECT id FROM email_outbox
                            WHERE (status IN ('queued', 'retrying') AND available_at <= $1)
                               OR (status = 'sending' AND lease_until < $1)
                            ORDER BY available_at, id
                            LIMIT $2)
             RETURNING id, business_id, invitation_id, template, locale, recipient, recipient_name,
                       context, message_id, attempts, created_at, available_at",
        )
        .bind(at)
        .bind(i64::from(limit))
        .bind(plus(at, lease))
        .fetch_all(&mut *tx.tx)
        .await
        .st()?;
        tx.commit_inner().await?;
        let mut claimed = rows
            .iter()
            .map(|row| {
                Ok((
                    get::<DateTime<Utc>>(row, "available_at")?,
                    ClaimedEmail {
                        id: uuid_at(row, "id")?,
                        business_id: BusinessId(uuid_at(row, "business_id")?),
                        invitation_id: opt_uuid_at(row, "invitation_id")?.map(InvitationId),
                        template: template(get(row, "template")?)?,
                        locale: get(row, "locale")?,
                        recipient: get(row, "recipient")?,
                        recipient_name: get(row, "recipient_name")?,
                        context: json_at(row, "context")?,
                        message_id: get(row, "message_id")?,
                        attempts: get::<i64>(row, "attempts")? as u32,
                        created_at: get(row, "created_at")?,
                    },
                ))
            })
            .collect::<StoreResult<Vec<_>>>()?;
        // RETURNING has no order: hand them out oldest first.
        claimed.sort_by_key(|a| (a.0, a.1.id));
        Ok(claimed.into_iter().map(|(_, c)| c).collect())
    }

    async fn subscribe_outbox(&self) -> StoreResult<Box<dyn Wakeups>> {
        Ok(Box::new(SqliteWakeups {
            rx: self.outbox.subscribe(),
        }))
    }

    async fn close(&self) {
        self.pool.close().await;
    }

    async fn stats(&self) -> StoreResult<StoreStats> {
        let (depth, oldest): (i64, Option<DateTime<Utc>>) = sqlx::query_as(
            "SELECT count(*), min(created_at)
             FROM email_outbox WHERE status IN ('queued', 'sending', 'retrying')",
        )
        .fetch_one(&self.pool)
        .await
        .st()?;
        let pending: Vec<(String, i64)> = sqlx::query_as(
            "SELECT kind, count(*) FROM invitations WHERE status = 'pending' GROUP BY kind",
        )
        .fetch_all(&self.pool)
        .await
        .st()?;
        let size = self.pool.size();
        let idle = self.pool.num_idle() as u32;
        let age = oldest
            .map(|t| (now() - t).num_milliseconds() as f64 / 1000.0)
            .unwrap_or(0.0);
        Ok(StoreStats {
            email_depth: depth as u64,
            email_oldest_age_seconds: age.max(0.0),
            pending: pending.into_iter().map(|(k, n)| (k, n as u64)).collect(),
            pool_active: size.saturating_sub(idle),
            pool_idle: idle,
            events: self.event_lag().await?,
        })
    }
}
