//! The Postgres adapter of [`Store`]: connection set-up, how values are
//! bound and read (`conn`), and what only Postgres does: row locks (`FOR NO
//! KEY UPDATE`), `SKIP LOCKED` claims and sweeps, `UNNEST` batches, the
//! `LATERAL` delivery join, time arithmetic by the database clock, the
//! commit-order read of events (`events`) and LISTEN/NOTIFY (`wake`). The
//! statements both dialects share are in [`super::sql`].

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use sqlx::postgres::{PgConnectOptions, PgPool, PgPoolOptions};
use sqlx::{Postgres, Transaction};
use uuid::Uuid;

use super::sql::{self, Conn as _, SqlStore, SqlTx, StoredRow as _, Wake, rows};
use super::*;
use crate::domain::{BusinessId, InvitationId};

mod access;
mod conn;
mod events;
mod heartbeat;
mod invitations;
mod outbox;
mod wake;

use conn::Bounded as _;
use heartbeat::Heartbeat;
use wake::{Channel, Signals, Wrote};

/// What bounds a session's waits on the server's side (issue 12, item 1):
/// a statement runs at most 30 s (ours take milliseconds; migrations lift
/// the bound, see [`PgStore::migrate`]); a transaction left idle (its
/// client gone quiet, holding row locks) ends after 60 s; and the server
/// probes a silent client after 10 s, so a dead or cut-off replica's
/// session, its locks and its LISTEN go within about 25 s. On our side
/// every statement of the shared body is bounded too (`conn::BOUND`), and
/// the pool waits at most 5 s for a connection.
///
/// And no JIT compilation: our statements run in a millisecond or two, but
/// a join whose estimate crosses `jit_above_cost` (a small table never
/// analyzed is guessed at hundreds of rows) was compiled first, 8-20 ms
/// each time: the sinks' lag read took 28 ms with JIT and 1.7 ms without
/// (BENCHMARKS.md, the console against the API).
const SESSION_SETTINGS: [(&str, &str); 6] = [
    ("statement_timeout", "30s"),
    ("idle_in_transaction_session_timeout", "60s"),
    ("tcp_keepalives_idle", "10"),
    ("tcp_keepalives_interval", "5"),
    ("tcp_keepalives_count", "3"),
    ("jit", "off"),
];

/// How long a connection may wait in the pool and still be handed out
/// without a ping first.
const PING_AFTER_IDLE: Duration = Duration::from_secs(1);

/// The migrations this build ships, applied by `invited migrate` and on start.
pub static MIGRATOR: sqlx::migrate::Migrator = sqlx::migrate!("./migrations");

#[derive(Clone)]
pub struct PgStore {
    pool: PgPool,
    /// Wake-ups after commits (see `wake`).
    signals: Arc<Signals>,
    /// This process's instance id and beat (see `heartbeat`).
    heartbeat: Arc<Heartbeat>,
}

impl PgStore {
    pub async fn connect(url: &str, max_connections: u32) -> StoreResult<PgStore> {
        let options: PgConnectOptions = url.parse().map_err(map_err)?;
        // Named, so operators (and tests) can tell our sessions apart.
        let options = options
            .application_name("invited")
            .options(SESSION_SETTINGS);
        let pool = PgPoolOptions::new()
            .max_connections(max_connections)
            .acquire_timeout(Duration::from_secs(5))
            // sqlx pings every idle connection before handing it out: a
            // round trip before each statement outside a transaction (a
            // console page's ten reads, each claim, each recorder batch).
            // A connection back in the pool for less than PING_AFTER_IDLE
            // was live a moment ago; only one idle longer (a server
            // restart or a proxy's idle cut may have ended it) is pinged.
            .test_before_acquire(false)
            .before_acquire(|conn, meta| {
                Box::pin(async move {
                    if meta.idle_for >= PING_AFTER_IDLE {
                        sqlx::Connection::ping(conn).await?;
                    }
                    Ok(true)
                })
            })
            .connect_lazy_with(options);
        Ok(PgStore::from_pool(pool))
    }

    /// A store on `pool`; must be called inside a tokio runtime (it starts the
    /// tasks that wake other replicas and beat this process's heartbeat).
    pub fn from_pool(pool: PgPool) -> PgStore {
        let signals = Arc::new(Signals::start(pool.clone()));
        let heartbeat = Arc::new(Heartbeat::start(pool.clone()));
        PgStore {
            pool,
            signals,
            heartbeat,
        }
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
        // A migration may rewrite a large table: no statement timeout on its
        // connection, and the session's own bound back before it returns to
        // the pool.
        let mut conn = self.pool.acquire().await.st()?;
        sqlx::query("SET statement_timeout = 0")
            .execute(&mut *conn)
            .bounded()
            .await?;
        let migrated = MIGRATOR
            .run(&mut *conn)
            .await
            .map_err(|e| StoreError::Other(format!("migration failed: {e}")));
        sqlx::query("RESET statement_timeout")
            .execute(&mut *conn)
            .bounded()
            .await?;
        migrated
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

pub struct PgTx {
    tx: Transaction<'static, Postgres>,
    /// Who to wake after the commit.
    wrote: Wrote,
    signals: Arc<Signals>,
}

#[async_trait]
impl SqlTx for PgTx {
    /// The latest invitation email joined `LATERAL`: one index probe per
    /// invitation, newest first.
    // `NO KEY UPDATE`, as for invitations: inserts that only reference
    // the row (events) neither wait for a command nor make it wait.
    const ROW_LOCK: &'static str = " FOR NO KEY UPDATE";
    const SKIP_LOCKED: &'static str = " FOR NO KEY UPDATE SKIP LOCKED";
    const INVITATION_SELECT: &'static str = "
        SELECT i.id, i.business_id, i.kind, i.invited_by, i.email, i.partner_business_id, i.role,
               i.message, i.locale, i.grants, i.token_nonce, i.status, i.created_at, i.expires_at,
               i.updated_at, i.accepted_by, i.renewed_from, i.delivery_mode, i.metadata,
               i.source_domain,
               d.status AS delivery_status, d.attempts AS delivery_attempts,
               d.last_error AS delivery_last_error, d.sent_at AS delivery_sent_at
        FROM invitations i
        LEFT JOIN LATERAL (
            SELECT coalesce(o.feedback, CAST(o.status AS TEXT)) AS status, o.attempts, o.last_error,
                   o.sent_at FROM email_outbox o
            WHERE o.invitation_id = i.id
              AND o.template IN ('member_invitation', 'partner_invitation', 'partner_request')
            ORDER BY o.created_at DESC, o.id DESC LIMIT 1
        ) d ON true";

    async fn clock(&mut self) -> StoreResult<DateTime<Utc>> {
        // The wall clock, not now()'s transaction start: read after the row
        // locks, it orders creation times the way the locks ordered the writes.
        self.fetch_one("SELECT clock_timestamp() AS now", vec![])
            .await?
            .time("now")
    }

    fn wrote(&mut self, wake: Wake) {
        // The dispatchers and publishers are woken after the commit, not by
        // a NOTIFY in this transaction (see `wake`).
        self.wrote.add(match wake {
            Wake::Outbox => Channel::Outbox,
            Wake::Events => Channel::Events,
        });
    }

    async fn commit_tx(self) -> StoreResult<()> {
        let PgTx { tx, wrote, signals } = self;
        tx.commit().bounded().await?;
        signals.committed(wrote);
        Ok(())
    }

    async fn lock_business_row(&mut self, id: BusinessId) -> StoreResult<Option<BusinessRecord>> {
        let sql = format!("{} WHERE id = $1 FOR NO KEY UPDATE", sql::BUSINESS_SELECT);
        let row = self.fetch_optional(&sql, vec![sql::id(id.0)]).await?;
        row.as_ref().map(rows::business).transpose()
    }

    async fn lock_invitation_row(
        &mut self,
        id: InvitationId,
    ) -> StoreResult<Option<InvitationRecord>> {
        // Lock the invitation row first (the LATERAL join cannot be locked).
        // `NO KEY UPDATE`: commands on one invitation still take turns, but
        // the KEY SHARE locks of inserts that reference it (the delivery
        // recorder's `invitation.sent` events, attempts, outbox rows) neither
        // wait for a command nor make it wait. With `FOR UPDATE` an accept
        // and a batch of outcomes naming that invitation queued behind each
        // other's commits (BENCHMARKS.md).
        let found = self
            .fetch_optional(
                "SELECT id FROM invitations WHERE id = $1 FOR NO KEY UPDATE",
                vec![sql::id(id.0)],
            )
            .await?;
        if found.is_none() {
            return Ok(None);
        }
        let sql = format!("{} WHERE i.id = $1", Self::INVITATION_SELECT);
        let row = self.fetch_one(&sql, vec![sql::id(id.0)]).await?;
        rows::invitation(&row).map(Some)
    }

    async fn insert_event_batch(&mut self, events: &[NewEvent]) -> StoreResult<()> {
        outbox::insert_events(self, events).await
    }

    async fn insert_invitation_batch(&mut self, all: &[NewInvitation]) -> StoreResult<()> {
        invitations::insert_invitations(self, all).await
    }

    async fn enqueue_email_batch(&mut self, emails: &[NewEmail]) -> StoreResult<()> {
        outbox::enqueue_emails(self, emails).await
    }

    async fn finish_attempt_batch(&mut self, attempts: &[EmailAttempt]) -> StoreResult<()> {
        outbox::finish_attempts(self, attempts).await
    }

    async fn expire_due(&mut self, limit: u32) -> StoreResult<Vec<(InvitationId, BusinessId)>> {
        // The locking read re-checks `status = 'pending'` on a row another
        // transaction changed meanwhile, so a row is moved at most once. `NO KEY
        // UPDATE`, like every row lock here: the KEY SHARE locks that inserts
        // referencing the invitation take (events, outbox, attempts) must not
        // make the sweeps skip it.
        self.fetch_all(
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
            vec![sql::limit(limit)],
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
        // R38: an invitation the app delivers itself gets no reminder.
        self.fetch_all(
            "SELECT i.id FROM invitations i
             WHERE i.status = 'pending' AND i.kind = 'member' AND i.expires_at > now()
               AND i.delivery_mode = 'email'
               AND i.created_at <= now() - make_interval(secs => $1)
               AND ($2::float8 IS NULL OR i.created_at > now() - make_interval(secs => $2))
               AND NOT EXISTS (SELECT 1 FROM invitation_reminders r
                               WHERE r.invitation_id = i.id AND r.offset_secs = $3)
               AND NOT EXISTS (SELECT 1 FROM email_outbox o
                               WHERE o.invitation_id = i.id AND o.feedback IS NOT NULL)
             ORDER BY i.created_at, i.id
             LIMIT $4
             FOR NO KEY UPDATE OF i SKIP LOCKED",
            vec![
                conn::secs(Some(offset)),
                conn::secs(next),
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

    /// R45: a transaction-scoped advisory lock per address, in the
    /// two-key space under the first key 45 (apart from the one-key locks
    /// sqlx's migrator takes). Taken in address order, so two
    /// transactions holding several never wait on each other in a cycle; a
    /// hash collision only makes two addresses take turns.
    async fn hold_addresses(
        &mut self,
        emails: &[crate::domain::Email],
        exclusive: bool,
    ) -> StoreResult<()> {
        let mut sorted: Vec<String> = emails.iter().map(|e| e.as_str().to_owned()).collect();
        sorted.sort_unstable();
        sorted.dedup();
        // One statement for the whole list: a function scan of `unnest`
        // yields the array's elements in order and each row's lock is taken
        // as the row is produced (no sort, no join to reorder them), so the
        // locks are taken in address order as one by one.
        let sql = if exclusive {
            "SELECT pg_advisory_xact_lock(45, hashtext(e)) FROM unnest($1::text[]) AS e"
        } else {
            "SELECT pg_advisory_xact_lock_shared(45, hashtext(e)) FROM unnest($1::text[]) AS e"
        };
        self.execute(sql, vec![sql::Arg::Texts(sorted)]).await?;
        Ok(())
    }
}

#[async_trait]
impl SqlStore for PgStore {
    type Tx = PgTx;
    type Reader = PgPool;
    type Writer = PgPool;

    fn migrator() -> &'static sqlx::migrate::Migrator {
        &MIGRATOR
    }

    async fn begin_tx(&self) -> StoreResult<PgTx> {
        Ok(PgTx {
            tx: self.pool.begin().bounded().await?,
            wrote: Wrote::default(),
            signals: self.signals.clone(),
        })
    }

    fn reader(&self) -> PgPool {
        self.pool.clone()
    }

    async fn writer(&self) -> StoreResult<PgPool> {
        Ok(self.pool.clone())
    }

    async fn finish_write(_: PgPool) -> StoreResult<()> {
        // Each statement committed on its own.
        Ok(())
    }

    async fn quota_clock(
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

    async fn forget_expired_key(
        &self,
        pool: &mut PgPool,
        api_key: &str,
        key: &str,
    ) -> StoreResult<()> {
        pool.execute(
            "DELETE FROM idempotency_keys
             WHERE api_key_name = $1 AND key = $2 AND created_at < now() - interval '24 hours'",
            vec![sql::text(api_key), sql::text(key)],
        )
        .await?;
        Ok(())
    }

    async fn purge_keys(&self, older_than: Duration) -> StoreResult<u64> {
        self.reader()
            .execute(
                "DELETE FROM idempotency_keys WHERE created_at < now() - make_interval(secs => $1)",
                vec![conn::secs(Some(older_than))],
            )
            .await
    }

    async fn claim_due_emails(
        &self,
        limit: u32,
        lease: Duration,
    ) -> StoreResult<Vec<ClaimedEmail>> {
        self.heartbeat.fresh(&self.pool).await?;
        outbox::claim(&mut self.reader(), limit, lease, self.heartbeat.instance).await
    }

    async fn release_claimed_emails(&self, ids: &[Uuid]) -> StoreResult<()> {
        outbox::release(&self.pool, ids, self.heartbeat.instance).await
    }

    async fn outbox_wakeups(&self) -> StoreResult<Box<dyn Wakeups>> {
        self.signals.subscribe(&self.pool, Channel::Outbox).await
    }

    async fn writable(&self) -> StoreResult<bool> {
        // A standby (after a failover the old primary may come back as
        // one), or a database or role whose transactions default to read
        // only: what a new transaction of this session would be.
        let row = self
            .reader()
            .fetch_one(
                "SELECT pg_is_in_recovery() OR current_setting('transaction_read_only') = 'on'
                        AS read_only",
                vec![],
            )
            .await?;
        Ok(!row.flag("read_only")?)
    }

    async fn close_pool(&self) {
        self.heartbeat.stop(&self.pool).await;
        self.pool.close().await;
    }

    async fn outbox_depth(&self) -> StoreResult<(u64, f64)> {
        let row = self
            .reader()
            .fetch_one(
                // Two halves, so that each is served by its partial index
                // (`email_outbox_due`, `email_outbox_leased`): the three
                // statuses at once match neither, and the outbox's sent
                // rows, which only grow, would be scanned on every call.
                "SELECT count(*) AS n, extract(epoch FROM now() - min(created_at))::float8 AS age
                   FROM (SELECT created_at FROM email_outbox WHERE status IN ('queued', 'retrying')
                         UNION ALL
                         SELECT created_at FROM email_outbox WHERE status = 'sending') AS waiting",
                vec![],
            )
            .await?;
        Ok((
            row.int("n")?.max(0) as u64,
            conn::float_opt(&row, "age")?.unwrap_or(0.0),
        ))
    }

    fn pool_use(&self) -> (u32, u32) {
        let idle = self.pool.num_idle() as u32;
        (self.pool.size().saturating_sub(idle), idle)
    }
}
