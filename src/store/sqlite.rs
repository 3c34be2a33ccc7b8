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
//! * the database clock is the process clock, read once per transaction
//!   after the write lock is taken, so creation times follow lock order as
//!   on Postgres;
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
    SqliteConnectOptions, SqliteJournalMode, SqlitePool, SqlitePoolOptions, SqliteSynchronous,
};
use sqlx::{Sqlite, Transaction};
use tokio::sync::{Mutex, OwnedMutexGuard, watch};
use uuid::Uuid;

use super::sql::{self, Arg, Conn as _, SqlStore, SqlTx, StoredRow as _, Wake, rows};
use super::*;
use crate::domain::{BusinessId, InvitationId};

mod access;
mod conn;
mod events;
mod outbox;

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
    /// This store's id, the owner of the leases it takes. A `sending` row
    /// under another id was leased by a process that is gone (the file
    /// serves one process), so it is claimable at once.
    instance: Uuid,
}

/// The lock that keeps a second process off the database file, held for
/// the life of the process (dropped: released). It is an exclusive `flock`
/// on the database file itself, not on a file beside it: a `<db>.lock` file
/// could be deleted while the process ran, and the next process then locked
/// a new one and served the same database (issue 12, item 11). Nobody
/// deletes the database by accident, and its lock dies with the process.
///
/// `flock` locks are apart from the POSIX record locks SQLite takes on the
/// same file, so they never block our own connections; and this descriptor
/// is closed (which would drop those POSIX locks, held per process) only
/// when the process ends or after the store is closed. SQLite's own
/// `locking_mode=EXCLUSIVE` would refuse a second process as well, but it
/// holds the lock per connection: the pool's other connections, the readers
/// included, would be refused too.
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

    /// Locks the database file for this process (creating it, empty, if
    /// missing), or says that another process already serves it: several
    /// replicas need Postgres.
    pub fn lock_file(url: &str) -> StoreResult<ProcessLock> {
        let path = Self::database_path(url)?;
        let file = std::fs::OpenOptions::new()
            .create(true)
            .truncate(false)
            .read(true)
            .write(true)
            .open(&path)
            .map_err(|e| StoreError::Other(format!("cannot open {}: {e}", path.display())))?;
        match file.try_lock() {
            Ok(()) => Ok(ProcessLock { _file: file, path }),
            Err(std::fs::TryLockError::WouldBlock) => Err(StoreError::Other(format!(
                "another invited process is already using the SQLite database {} (it holds a lock \
                 on the file); SQLite serves one process only: stop the other one, or use \
                 PostgreSQL (database.url = \"postgres://…\") to run several replicas",
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
            instance: Uuid::now_v7(),
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

    /// A write transaction holding the database write lock; its clock is
    /// read once, now that the lock is held.
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
            at: now(),
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
        "business_domains.business_id, business_domains.domain" => Constraint::DomainClaimedOnce,
        "business_domains.domain" => Constraint::DomainVerifiedOnce,
        "invitations.business_id, invitations.email" => Constraint::OnePendingPerAddress,
        "join_requests.business_id, join_requests.user_id" => Constraint::OnePendingJoinRequest,
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

/// The database clock: the process clock (one process owns the file).
fn now() -> DateTime<Utc> {
    Utc::now()
}

/// The start of `at`'s minute: the key of the per-minute chart counters
/// (`sink_minutes`, `email_minutes`), as Postgres's `date_trunc('minute', …)`.
fn minute_start(at: DateTime<Utc>) -> DateTime<Utc> {
    use chrono::DurationRound as _;
    at.duration_trunc(chrono::TimeDelta::minutes(1))
        .unwrap_or(at)
}

fn plus(at: DateTime<Utc>, d: Duration) -> DateTime<Utc> {
    at + chrono::Duration::from_std(d).unwrap_or(chrono::Duration::MAX / 2)
}

fn minus(at: DateTime<Utc>, d: Duration) -> DateTime<Utc> {
    at - chrono::Duration::from_std(d).unwrap_or(chrono::Duration::MAX / 2)
}

pub struct SqliteTx {
    tx: Transaction<'static, Sqlite>,
    /// The transaction's time, read under the write lock.
    at: DateTime<Utc>,
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
            ..
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
impl SqlTx for SqliteTx {
    /// The latest invitation email picked by a correlated subquery (SQLite
    /// has no `LATERAL`).
    const INVITATION_SELECT: &'static str = "
        SELECT i.id, i.business_id, i.kind, i.invited_by, i.email, i.partner_business_id, i.role,
               i.message, i.locale, i.grants, i.token_nonce, i.status, i.created_at, i.expires_at,
               i.updated_at, i.accepted_by, i.renewed_from, i.delivery_mode, i.metadata,
               i.source_domain,
               coalesce(d.feedback, d.status) AS delivery_status, d.attempts AS delivery_attempts,
               d.last_error AS delivery_last_error, d.sent_at AS delivery_sent_at
        FROM invitations i
        LEFT JOIN email_outbox d ON d.id = (
            SELECT o.id FROM email_outbox o
            WHERE o.invitation_id = i.id
              AND o.template IN ('member_invitation', 'partner_invitation', 'partner_request')
            ORDER BY o.created_at DESC, o.id DESC LIMIT 1
        )";

    async fn clock(&mut self) -> StoreResult<DateTime<Utc>> {
        // Read under the write lock: creation times follow lock order.
        Ok(self.at)
    }

    fn wrote(&mut self, wake: Wake) {
        match wake {
            Wake::Outbox => self.wake_outbox = true,
            Wake::Events => self.wake_events = true,
        }
    }

    async fn commit_tx(self) -> StoreResult<()> {
        self.commit_inner().await
    }

    async fn lock_business_row(&mut self, id: BusinessId) -> StoreResult<Option<BusinessRecord>> {
        // The transaction holds the database write lock: no row lock needed.
        sql::businesses::read(self, id).await
    }

    async fn lock_invitation_row(
        &mut self,
        id: InvitationId,
    ) -> StoreResult<Option<InvitationRecord>> {
        // The write lock is already held: a plain read.
        sql::invitations::get(self, Self::INVITATION_SELECT, id).await
    }

    /// Multi-row `VALUES`: in order, so `seq` follows the slice.
    async fn insert_event_batch(&mut self, events: &[NewEvent]) -> StoreResult<()> {
        let at = self.at;
        let rows = events.iter().map(|e| sql::outbox::event_row(e, Some(at)));
        sql::insert_rows(self, sql::outbox::INSERT_EVENTS, rows.collect()).await
    }

    async fn insert_invitation_batch(&mut self, all: &[NewInvitation]) -> StoreResult<()> {
        let rows = all.iter().map(sql::invitations::insert_row);
        sql::insert_rows(self, sql::invitations::INSERT, rows.collect()).await
    }

    async fn enqueue_email_batch(&mut self, emails: &[NewEmail]) -> StoreResult<()> {
        let at = self.at;
        let rows = emails.iter().map(|m| sql::outbox::email_row(m, Some(at)));
        sql::insert_rows(self, sql::outbox::INSERT_EMAILS, rows.collect()).await
    }

    async fn finish_attempt_batch(&mut self, attempts: &[EmailAttempt]) -> StoreResult<()> {
        for attempt in attempts {
            outbox::finish_attempt(self, attempt).await?;
        }
        outbox::count_attempts_of_minute(self, attempts).await
    }

    async fn expire_due(&mut self, limit: u32) -> StoreResult<Vec<(InvitationId, BusinessId)>> {
        // Under the write lock nobody else sweeps: a plain update.
        let at = Arg::Time(Some(self.at));
        self.fetch_all(
            "UPDATE invitations SET status = 'expired', expired_at = $1, updated_at = $1
              WHERE id IN (SELECT id FROM invitations
                            WHERE status = 'pending' AND expires_at <= $1
                            ORDER BY expires_at, id LIMIT $2)
             RETURNING id, business_id",
            vec![at, sql::limit(limit)],
        )
        .await?
        .iter()
        .map(rows::expired)
        .collect()
    }

    async fn due_reminder_ids(
        &mut self,
        offset: Duration,
        next: Option<Duration>,
        limit: u32,
    ) -> StoreResult<Vec<InvitationId>> {
        let at = self.at;
        // R38: an invitation the app delivers itself gets no reminder.
        self.fetch_all(
            "SELECT i.id FROM invitations i
             WHERE i.status = 'pending' AND i.kind = 'member' AND i.expires_at > $1
               AND i.delivery_mode = 'email'
               AND i.created_at <= $2
               AND ($3 IS NULL OR i.created_at > $3)
               AND NOT EXISTS (SELECT 1 FROM invitation_reminders r
                               WHERE r.invitation_id = i.id AND r.offset_secs = $4)
               AND NOT EXISTS (SELECT 1 FROM email_outbox o
                               WHERE o.invitation_id = i.id AND o.feedback IS NOT NULL)
             ORDER BY i.created_at, i.id
             LIMIT $5",
            vec![
                Arg::Time(Some(at)),
                Arg::Time(Some(minus(at, offset))),
                Arg::Time(next.map(|n| minus(at, n))),
                sql::offset_secs(offset),
                sql::limit(limit),
            ],
        )
        .await?
        .iter()
        .map(|row| row.uuid("id").map(InvitationId))
        .collect()
    }

    async fn delete_grant_trees(&mut self, roots: &[Uuid]) -> StoreResult<Vec<GrantRecord>> {
        access::delete_trees(self, roots).await
    }
}

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
impl SqlStore for SqliteStore {
    type Tx = SqliteTx;
    /// Reads: WAL gives each a consistent snapshot without the write lock.
    type Reader = SqlitePool;
    type Writer = SqliteTx;

    fn migrator() -> &'static sqlx::migrate::Migrator {
        &MIGRATOR
    }

    async fn begin_tx(&self) -> StoreResult<SqliteTx> {
        self.write_tx().await
    }

    fn reader(&self) -> SqlitePool {
        self.pool.clone()
    }

    async fn writer(&self) -> StoreResult<SqliteTx> {
        self.write_tx().await
    }

    async fn finish_write(tx: SqliteTx) -> StoreResult<()> {
        tx.commit_inner().await
    }

    async fn quota_clock(
        &self,
        business: BusinessId,
        window: Duration,
    ) -> StoreResult<(DateTime<Utc>, Vec<DateTime<Utc>>)> {
        // A read: no write lock, the clock read here.
        let at = now();
        let times = self
            .reader()
            .fetch_all(
                sql::invitations::QUOTA_TIMES,
                vec![sql::id(business.0), Arg::Time(Some(minus(at, window)))],
            )
            .await?
            .iter()
            .map(|row| row.time("created_at"))
            .collect::<StoreResult<Vec<_>>>()?;
        Ok((at, times))
    }

    async fn forget_expired_key(
        &self,
        tx: &mut SqliteTx,
        api_key: &str,
        key: &str,
    ) -> StoreResult<()> {
        let cutoff = minus(tx.at, Duration::from_secs(24 * 3600));
        tx.execute(
            "DELETE FROM idempotency_keys WHERE api_key_name = $1 AND key = $2 AND created_at < $3",
            vec![sql::text(api_key), sql::text(key), Arg::Time(Some(cutoff))],
        )
        .await?;
        Ok(())
    }

    async fn purge_keys(&self, older_than: Duration) -> StoreResult<u64> {
        let mut tx = self.write_tx().await?;
        let cutoff = minus(tx.at, older_than);
        let n = tx
            .execute(
                "DELETE FROM idempotency_keys WHERE created_at < $1",
                vec![Arg::Time(Some(cutoff))],
            )
            .await?;
        tx.commit_inner().await?;
        Ok(n)
    }

    async fn claim_due_emails(
        &self,
        limit: u32,
        lease: Duration,
    ) -> StoreResult<Vec<ClaimedEmail>> {
        outbox::claim(self.write_tx().await?, limit, lease, self.instance).await
    }

    async fn release_claimed_emails(&self, ids: &[Uuid]) -> StoreResult<()> {
        outbox::release(self.write_tx().await?, ids, self.instance).await
    }

    async fn outbox_wakeups(&self) -> StoreResult<Box<dyn Wakeups>> {
        Ok(Box::new(SqliteWakeups {
            rx: self.outbox.subscribe(),
        }))
    }

    async fn writable(&self) -> StoreResult<bool> {
        // This process owns the file and opened it read-write; `query_only`
        // is the one switch that would make it refuse writes.
        let row = self
            .reader()
            .fetch_one("SELECT query_only FROM pragma_query_only", vec![])
            .await?;
        Ok(row.int("query_only")? == 0)
    }

    async fn close_pool(&self) {
        self.pool.close().await;
    }

    async fn outbox_depth(&self) -> StoreResult<(u64, f64)> {
        let row = self
            .reader()
            .fetch_one(
                // Two halves, each served by its partial index (as on
                // Postgres): never a scan of the sent rows.
                "SELECT count(*) AS n, min(created_at) AS oldest
                   FROM (SELECT created_at FROM email_outbox WHERE status IN ('queued', 'retrying')
                         UNION ALL
                         SELECT created_at FROM email_outbox WHERE status = 'sending') AS waiting",
                vec![],
            )
            .await?;
        let age = row
            .time_opt("oldest")?
            .map(|t| (now() - t).num_milliseconds() as f64 / 1000.0)
            .unwrap_or(0.0);
        Ok((row.int("n")?.max(0) as u64, age))
    }

    fn pool_use(&self) -> (u32, u32) {
        let idle = self.pool.num_idle() as u32;
        (self.pool.size().saturating_sub(idle), idle)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unique_violations_name_the_constraint_the_service_knows() {
        let failed = |what: &str| constraint(&format!("UNIQUE constraint failed: {what}"));
        assert_eq!(
            failed("members.business_id, members.user_id"),
            Constraint::MemberOnce
        );
        assert_eq!(
            failed("invitations.business_id, invitations.email"),
            Constraint::OnePendingPerAddress
        );
        assert_eq!(
            failed("index 'invitations_one_pending_per_pair'"),
            Constraint::OnePendingPerPair
        );
        assert_eq!(
            failed("index 'partnerships_one_live_per_pair'"),
            Constraint::OneLivePartnership
        );
        assert_eq!(
            failed(
                "profile_grants.profile_id, profile_grants.permission, profile_grants.grantee_business_id"
            ),
            Constraint::OneGrantPerGrantee
        );
        assert_eq!(
            failed("business_domains.business_id, business_domains.domain"),
            Constraint::DomainClaimedOnce
        );
        assert_eq!(
            failed("business_domains.domain"),
            Constraint::DomainVerifiedOnce
        );
        assert_eq!(
            failed("email_outbox.message_id"),
            Constraint::Other("email_outbox.message_id".into())
        );
    }
}
