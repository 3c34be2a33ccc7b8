//! The one body of both adapters. Every statement the two dialects share is
//! written once here, per aggregate (`users`, `businesses`, `invitations`,
//! `outbox`, `access`, `idempotency`), and runs through three small traits
//! each adapter implements:
//!
//! * [`StoredRow`] reads a column as a domain-neutral value (a uuid is a
//!   `uuid` on Postgres and hyphenated TEXT on SQLite; an enum is a Postgres
//!   enum or TEXT), so one decoder per record serves both (`rows`);
//! * [`Conn`] runs a statement with its [`Arg`]s, each bound in the
//!   adapter's own encoding;
//! * [`SqlTx`] and [`SqlStore`] hold what is really dialect-specific: row
//!   locks and `SKIP LOCKED`, batch statements (`UNNEST`), the invitation
//!   select (`LATERAL`), time arithmetic, connection set-up and wake-ups.
//!
//! [`StoreTx`], [`AccessTx`] and [`Store`] are implemented once, for every
//! type with these traits.
//!
//! The clock: a statement that stamps a time takes it as a parameter,
//! `coalesce($n, CURRENT_TIMESTAMP)`, from [`Conn::stamp`]. SQLite passes
//! the time its transaction read when it took the write lock (once per
//! transaction); Postgres passes NULL, so the database's own transaction
//! time applies, as `now()` did, without a round trip.
//!
//! Placeholders are `$1`-style in both dialects: SQLite reads `$N` as its
//! numbered parameter `?N` (see the test below).

mod access;
pub(crate) mod businesses;
mod console;
mod domains;
mod feedback;
mod idempotency;
pub(crate) mod invitations;
mod invite_links;
mod join_requests;
pub(crate) mod outbox;
pub(crate) mod rows;
mod suppressions;
mod tx;
mod users;
mod webhooks;

use std::time::Duration;

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use uuid::Uuid;

use super::stored::corrupt;
use super::{
    BusinessRecord, ClaimedEmail, EmailAttempt, EventLog, GrantRecord, IdempotencyClaim,
    InvitationRecord, NewEmail, NewEvent, NewInvitation, Store, StoreError, StoreResult,
    StoreStats, StoredResponse, Wakeups,
};
use crate::domain::{BusinessId, InvitationId, TokenHash, UserId};

pub(crate) use access::GRANT_COLUMNS;
pub(crate) use businesses::BUSINESS_SELECT;

/// A value bound to a statement; each adapter binds it in its encoding.
#[derive(Clone, Debug)]
pub enum Arg {
    Uuid(Option<Uuid>),
    Text(Option<String>),
    Int(Option<i64>),
    /// Seconds for Postgres' interval arithmetic.
    Float(Option<f64>),
    Bool(bool),
    Time(Option<DateTime<Utc>>),
    Json(serde_json::Value),
    Bytes(Vec<u8>),
    /// A value of one of the schema's enums: a Postgres enum type, TEXT
    /// with a CHECK on SQLite.
    Enum(EnumType, Option<&'static str>),
    /// A list of values for one set-based statement (a whole request's
    /// addresses or ids), tested with [`Conn::one_of`], which gives it to
    /// the dialect's [`Conn::any`]: a `text[]` or `uuid[]`
    /// on Postgres, a JSON array read by `json_each` on SQLite. One
    /// parameter however long the list, so the statement's text, and the
    /// prepared statement each connection caches for it, stay the same
    /// (a request's single address is bound as itself: see [`emails`]).
    Texts(Vec<String>),
    Uuids(Vec<Uuid>),
}

/// The enum types of the Postgres schema that statements bind.
#[derive(Clone, Copy, Debug)]
pub enum EnumType {
    InvitationStatus,
    InvitationKind,
    ProfilePermission,
}

impl EnumType {
    pub fn pg_name(self) -> &'static str {
        match self {
            EnumType::InvitationStatus => "invitation_status",
            EnumType::InvitationKind => "invitation_kind",
            EnumType::ProfilePermission => "profile_permission",
        }
    }
}

pub(crate) fn id(u: Uuid) -> Arg {
    Arg::Uuid(Some(u))
}

pub(crate) fn opt_id(u: Option<Uuid>) -> Arg {
    Arg::Uuid(u)
}

pub(crate) fn text(s: &str) -> Arg {
    Arg::Text(Some(s.to_owned()))
}

pub(crate) fn opt_text(s: Option<&str>) -> Arg {
    Arg::Text(s.map(str::to_owned))
}

/// The addresses of a request, tested with [`Conn::one_of`]: the address
/// itself when there is one (most creates name one invitee), one
/// [`Arg::Texts`] otherwise.
///
/// Why not always the list: Postgres planned a statement testing a list
/// afresh at every call. A plan made for a one-element array is estimated so
/// much cheaper than the generic plan (which guesses the array's length)
/// that the plan cache never keeps the generic one: the create's conflicts
/// read spent 0.38 ms planning for 0.06 ms of work, and with the
/// suppressions and time zone reads two thirds of all the planning in the
/// benchmark's lifecycle run (BENCHMARKS.md). A statement testing one value
/// keeps its generic plan after five calls; a bulk create pays the planning
/// once for all its invitees.
pub(crate) fn emails(list: &[crate::domain::Email]) -> Arg {
    match list {
        [one] => text(one.as_str()),
        _ => Arg::Texts(list.iter().map(|e| e.as_str().to_owned()).collect()),
    }
}

pub(crate) fn int(n: i64) -> Arg {
    Arg::Int(Some(n))
}

/// A row count (`LIMIT`) as statements bind it.
pub(crate) fn limit(n: u32) -> Arg {
    int(i64::from(n))
}

/// A reminder's offset as `invitation_reminders.offset_secs` holds it.
pub(crate) fn offset_secs(offset: Duration) -> Arg {
    int(offset.as_secs().max(1) as i64)
}

/// At most this many values are bound to one statement: SQLite's limit
/// (`SQLITE_MAX_VARIABLE_NUMBER`, 32766 since SQLite 3.32; Postgres allows
/// 65535). A request's batch (100 invitees of 20 columns) is far below it.
pub(crate) const MAX_BOUND_VALUES: usize = 32766;

/// `head` (an `INSERT … VALUES`) with one `($n, …)` tuple per row, each
/// row its column values in order: several rows in one statement, or in
/// as few as [`MAX_BOUND_VALUES`] allows. What SQLite batches with; on
/// Postgres, whose batches bind arrays (`UNNEST`) so that one statement
/// text serves any number of rows, a single row.
pub(crate) async fn insert_rows(
    c: &mut impl Conn,
    head: &str,
    rows: Vec<Vec<Arg>>,
) -> StoreResult<()> {
    let Some(width) = rows.first().map(Vec::len) else {
        return Ok(());
    };
    let per_statement = (MAX_BOUND_VALUES / width.max(1)).max(1);
    let mut rows = rows.into_iter().peekable();
    while rows.peek().is_some() {
        let chunk: Vec<Vec<Arg>> = rows.by_ref().take(per_statement).collect();
        let tuples = (0..chunk.len())
            .map(|r| {
                let cols = (1..=width)
                    .map(|k| format!("${}", r * width + k))
                    .collect::<Vec<_>>()
                    .join(", ");
                format!("({cols})")
            })
            .collect::<Vec<_>>()
            .join(", ");
        let args = chunk.into_iter().flatten().collect();
        c.execute(&format!("{head} {tuples}"), args).await?;
    }
    Ok(())
}

/// A column of a stored row, read the way the adapter stores it.
pub trait StoredRow: Send + Sync {
    fn uuid_opt(&self, col: &str) -> StoreResult<Option<Uuid>>;
    /// TEXT, or a value of an enum type.
    fn text_opt(&self, col: &str) -> StoreResult<Option<String>>;
    /// Any integer column.
    fn int_opt(&self, col: &str) -> StoreResult<Option<i64>>;
    fn time_opt(&self, col: &str) -> StoreResult<Option<DateTime<Utc>>>;
    fn json_opt(&self, col: &str) -> StoreResult<Option<serde_json::Value>>;
    fn bytes_opt(&self, col: &str) -> StoreResult<Option<Vec<u8>>>;
    /// A boolean (an integer 0 or 1 on SQLite).
    fn flag(&self, col: &str) -> StoreResult<bool>;

    fn uuid(&self, col: &str) -> StoreResult<Uuid> {
        self.uuid_opt(col)?.ok_or_else(|| null(col))
    }
    fn text(&self, col: &str) -> StoreResult<String> {
        self.text_opt(col)?.ok_or_else(|| null(col))
    }
    fn int(&self, col: &str) -> StoreResult<i64> {
        self.int_opt(col)?.ok_or_else(|| null(col))
    }
    fn time(&self, col: &str) -> StoreResult<DateTime<Utc>> {
        self.time_opt(col)?.ok_or_else(|| null(col))
    }
    fn json(&self, col: &str) -> StoreResult<serde_json::Value> {
        self.json_opt(col)?.ok_or_else(|| null(col))
    }
    fn bytes(&self, col: &str) -> StoreResult<Vec<u8>> {
        self.bytes_opt(col)?.ok_or_else(|| null(col))
    }
}

fn null(col: &str) -> StoreError {
    corrupt(col, "NULL")
}

/// Runs statements: a transaction, or the pool (each statement on its own).
#[async_trait]
pub trait Conn: Send {
    type Row: StoredRow;

    async fn fetch_all(&mut self, sql: &str, args: Vec<Arg>) -> StoreResult<Vec<Self::Row>>;
    async fn fetch_optional(&mut self, sql: &str, args: Vec<Arg>)
    -> StoreResult<Option<Self::Row>>;
    /// Rows affected.
    async fn execute(&mut self, sql: &str, args: Vec<Arg>) -> StoreResult<u64>;

    /// The time statements stamp into rows (see the module header): `None`
    /// lets the database's transaction time apply.
    fn stamp(&self) -> Option<DateTime<Utc>>;

    /// The condition "`expr` is one of the list bound as `param`" (an
    /// [`Arg::Texts`] or [`Arg::Uuids`]): `expr = ANY(param)` on Postgres,
    /// `expr IN (SELECT value FROM json_each(param))` on SQLite. Both use
    /// an index on `expr`.
    fn any(&self, expr: &str, param: &str) -> String;

    /// The condition "`expr` is one of `values`", bound as `param`:
    /// [`Conn::any`] for a list ([`Arg::Texts`], [`Arg::Uuids`]), plain
    /// equality for a single value (see [`emails`]).
    fn one_of(&self, expr: &str, param: &str, values: &Arg) -> String {
        match values {
            Arg::Texts(_) | Arg::Uuids(_) => self.any(expr, param),
            _ => format!("{expr} = {param}"),
        }
    }

    async fn fetch_one(&mut self, sql: &str, args: Vec<Arg>) -> StoreResult<Self::Row> {
        self.fetch_optional(sql, args)
            .await?
            .ok_or_else(|| StoreError::Other("the statement returned no row".into()))
    }
}

/// What a transaction wrote that somebody waits for (woken after commit).
#[derive(Clone, Copy, Debug)]
pub enum Wake {
    Outbox,
    Events,
}

/// The dialect-specific half of a transaction.
#[async_trait]
pub trait SqlTx: Conn + Sized + 'static {
    /// The invitation columns plus the delivery of its latest invitation
    /// email (`rows::invitation`), up to the `WHERE`.
    const INVITATION_SELECT: &'static str;
    /// Appended to a `SELECT` of one row to lock it until the transaction
    /// ends (` FOR NO KEY UPDATE` on Postgres); empty where write
    /// transactions already take turns (SQLite).
    const ROW_LOCK: &'static str = "";
    /// Appended to a sweep's `SELECT` to lock its rows and skip those
    /// another transaction holds; empty on SQLite.
    const SKIP_LOCKED: &'static str = "";

    /// [`StoreTx::now`](super::StoreTx::now).
    async fn clock(&mut self) -> StoreResult<DateTime<Utc>>;
    fn wrote(&mut self, wake: Wake);
    async fn commit_tx(self) -> StoreResult<()>;

    async fn lock_business_row(&mut self, id: BusinessId) -> StoreResult<Option<BusinessRecord>>;
    async fn lock_invitation_row(
        &mut self,
        id: InvitationId,
    ) -> StoreResult<Option<InvitationRecord>>;
    async fn insert_event_batch(&mut self, events: &[NewEvent]) -> StoreResult<()>;
    /// Several invitations in one statement (`UNNEST` on Postgres,
    /// multi-row `VALUES` on SQLite), as `invitations::insert` writes one.
    async fn insert_invitation_batch(&mut self, invitations: &[NewInvitation]) -> StoreResult<()>;
    /// Several outbox rows in one statement, as `outbox::enqueue_email`
    /// writes one.
    async fn enqueue_email_batch(&mut self, emails: &[NewEmail]) -> StoreResult<()>;
    async fn finish_attempt_batch(&mut self, attempts: &[EmailAttempt]) -> StoreResult<()>;
    async fn expire_due(&mut self, limit: u32) -> StoreResult<Vec<(InvitationId, BusinessId)>>;
    async fn due_reminder_ids(
        &mut self,
        offset: Duration,
        next: Option<Duration>,
        limit: u32,
    ) -> StoreResult<Vec<InvitationId>>;
    /// Deletes the grants with the given roots and all their descendants,
    /// roots first (depth order), returning them.
    async fn delete_grant_trees(&mut self, roots: &[Uuid]) -> StoreResult<Vec<GrantRecord>>;

    /// R45: holds these addresses until the transaction ends, shared (a
    /// create checking them) or exclusive (a suppression adding one), so a
    /// check and an addition of one address never interleave. The default
    /// does nothing: a dialect whose write transactions already take turns
    /// (SQLite) needs no more.
    async fn hold_addresses(
        &mut self,
        _emails: &[crate::domain::Email],
        _exclusive: bool,
    ) -> StoreResult<()> {
        Ok(())
    }
}

/// The dialect-specific half of a store.
#[async_trait]
pub trait SqlStore: EventLog + Send + Sync + 'static {
    type Tx: SqlTx;
    /// Reads outside a transaction.
    type Reader: Conn;
    /// A short write outside a service transaction: the pool on Postgres
    /// (each statement commits), a write transaction on SQLite.
    type Writer: Conn;

    fn migrator() -> &'static sqlx::migrate::Migrator;
    async fn begin_tx(&self) -> StoreResult<Self::Tx>;
    fn reader(&self) -> Self::Reader;
    async fn writer(&self) -> StoreResult<Self::Writer>;
    async fn finish_write(writer: Self::Writer) -> StoreResult<()>;

    async fn quota_clock(
        &self,
        business: BusinessId,
        window: Duration,
    ) -> StoreResult<(DateTime<Utc>, Vec<DateTime<Utc>>)>;
    /// Forgets `key` if it is older than the idempotency window (24 hours),
    /// by the database's clock.
    async fn forget_expired_key(
        &self,
        writer: &mut Self::Writer,
        api_key: &str,
        key: &str,
    ) -> StoreResult<()>;
    async fn purge_keys(&self, older_than: Duration) -> StoreResult<u64>;
    async fn claim_due_emails(&self, limit: u32, lease: Duration)
    -> StoreResult<Vec<ClaimedEmail>>;
    async fn release_claimed_emails(&self, ids: &[Uuid]) -> StoreResult<()>;
    async fn outbox_wakeups(&self) -> StoreResult<Box<dyn Wakeups>>;
    /// Whether a transaction begun now could write.
    async fn writable(&self) -> StoreResult<bool>;
    async fn close_pool(&self);
    /// Emails not yet sent or failed, and the age of the oldest in seconds.
    async fn outbox_depth(&self) -> StoreResult<(u64, f64)>;
    /// Connections in use and idle.
    fn pool_use(&self) -> (u32, u32);
}

#[async_trait]
impl<S: SqlStore> Store for S {
    async fn begin(&self) -> StoreResult<Box<dyn super::StoreTx>> {
        Ok(Box::new(self.begin_tx().await?))
    }

    async fn ready(&self) -> StoreResult<super::Readiness> {
        let applied = self
            .reader()
            .fetch_all(
                "SELECT version FROM _sqlx_migrations WHERE success ORDER BY version",
                vec![],
            )
            .await?
            .iter()
            .map(|row| row.int("version"))
            .collect::<StoreResult<Vec<_>>>()?;
        let current = S::migrator()
            .iter()
            .filter(|m| m.migration_type.is_up_migration())
            .all(|m| applied.contains(&m.version));
        Ok(if !current {
            super::Readiness::OtherMigrations
        } else if !self.writable().await? {
            super::Readiness::ReadOnly
        } else {
            super::Readiness::Ready
        })
    }

    async fn token_key(&self) -> StoreResult<Vec<u8>> {
        let fresh: [u8; 32] = rand::random();
        let mut w = self.writer().await?;
        w.execute(
            "INSERT INTO daemon_secrets (name, value) VALUES ('token_key', $1)
             ON CONFLICT (name) DO NOTHING",
            vec![Arg::Bytes(fresh.to_vec())],
        )
        .await?;
        let key = w
            .fetch_one(
                "SELECT value FROM daemon_secrets WHERE name = 'token_key'",
                vec![],
            )
            .await?
            .bytes("value")?;
        S::finish_write(w).await?;
        Ok(key)
    }

    async fn get_business(&self, id: BusinessId) -> StoreResult<Option<BusinessRecord>> {
        businesses::read(&mut self.reader(), id).await
    }

    async fn get_member(
        &self,
        business: BusinessId,
        user: &UserId,
    ) -> StoreResult<Option<super::MemberRecord>> {
        businesses::member(&mut self.reader(), business, user).await
    }

    async fn list_members(&self, business: BusinessId) -> StoreResult<Vec<super::MemberRecord>> {
        businesses::members_of(&mut self.reader(), business).await
    }

    async fn get_user(&self, id: &UserId) -> StoreResult<Option<super::UserRecord>> {
        users::get(&mut self.reader(), id).await
    }

    async fn get_invitation(&self, id: InvitationId) -> StoreResult<Option<InvitationRecord>> {
        invitations::get(&mut self.reader(), S::Tx::INVITATION_SELECT, id).await
    }

    async fn invitee_invitation(
        &self,
        id: InvitationId,
    ) -> StoreResult<Option<super::InviteeInvitationRecord>> {
        invitations::invitee_one(&mut self.reader(), S::Tx::INVITATION_SELECT, id).await
    }

    async fn invitations_for_email(
        &self,
        query: &super::InviteeQuery,
    ) -> StoreResult<Vec<super::InviteeInvitationRecord>> {
        invitations::invitee_list(&mut self.reader(), S::Tx::INVITATION_SELECT, query).await
    }

    async fn find_invitation_by_token(
        &self,
        hash: &TokenHash,
    ) -> StoreResult<Option<InvitationId>> {
        invitations::by_token(&mut self.reader(), hash).await
    }

    async fn list_invitations(
        &self,
        query: &super::InvitationQuery,
    ) -> StoreResult<Vec<InvitationRecord>> {
        invitations::list(&mut self.reader(), S::Tx::INVITATION_SELECT, query).await
    }

    async fn timeline(&self, id: InvitationId) -> StoreResult<Vec<super::TimelineEntry>> {
        outbox::timeline(&mut self.reader(), outbox::TimelineOf::Invitation(id)).await
    }

    async fn quota_window(
        &self,
        business: BusinessId,
        window: Duration,
    ) -> StoreResult<(DateTime<Utc>, Vec<DateTime<Utc>>)> {
        self.quota_clock(business, window).await
    }

    async fn claim_idempotency_key(
        &self,
        api_key: &str,
        key: &str,
        request_hash: &[u8],
    ) -> StoreResult<IdempotencyClaim> {
        let mut w = self.writer().await?;
        // Expired keys are free again; the purge job only reclaims space.
        self.forget_expired_key(&mut w, api_key, key).await?;
        let claim = idempotency::claim(&mut w, api_key, key, request_hash).await;
        S::finish_write(w).await?;
        claim
    }

    async fn complete_idempotency_key(
        &self,
        api_key: &str,
        key: &str,
        response: &StoredResponse,
    ) -> StoreResult<()> {
        let mut w = self.writer().await?;
        idempotency::complete(&mut w, api_key, key, response).await?;
        S::finish_write(w).await
    }

    async fn release_idempotency_key(&self, api_key: &str, key: &str) -> StoreResult<()> {
        let mut w = self.writer().await?;
        idempotency::release(&mut w, api_key, key).await?;
        S::finish_write(w).await
    }

    async fn purge_idempotency_keys(&self, older_than: Duration) -> StoreResult<u64> {
        self.purge_keys(older_than).await
    }

    async fn claim_emails(&self, limit: u32, lease: Duration) -> StoreResult<Vec<ClaimedEmail>> {
        self.claim_due_emails(limit, lease).await
    }

    async fn release_emails(&self, ids: &[Uuid]) -> StoreResult<()> {
        if ids.is_empty() {
            return Ok(());
        }
        self.release_claimed_emails(ids).await
    }

    async fn subscribe_outbox(&self) -> StoreResult<Box<dyn Wakeups>> {
        self.outbox_wakeups().await
    }

    async fn close(&self) {
        self.close_pool().await;
    }

    async fn stats(&self) -> StoreResult<StoreStats> {
        // Four independent reads, at once (each on a connection of its own).
        let pending = async {
            self.reader()
                .fetch_all(
                    "SELECT kind, count(*) AS n FROM invitations WHERE status = 'pending' GROUP BY kind",
                    vec![],
                )
                .await?
                .iter()
                .map(|row| Ok((row.text("kind")?, row.int("n")?.max(0) as u64)))
                .collect::<StoreResult<Vec<_>>>()
        };
        let suppressions = async { suppressions::count(&mut self.reader()).await };
        let ((email_depth, age), pending, events, suppressions) = tokio::try_join!(
            super::ConsoleStore::console_email_depth(self),
            pending,
            self.event_lag(),
            suppressions,
        )?;
        let (pool_active, pool_idle) = self.pool_use();
        Ok(StoreStats {
            email_depth,
            email_oldest_age_seconds: age,
            pending,
            pool_active,
            pool_idle,
            events,
            suppressions,
        })
    }

    async fn list_suppressions(
        &self,
        query: &super::SuppressionQuery,
    ) -> StoreResult<Vec<super::SuppressionRecord>> {
        suppressions::list(&mut self.reader(), query).await
    }

    async fn get_join_request(
        &self,
        id: crate::domain::JoinRequestId,
    ) -> StoreResult<Option<super::JoinRequestRecord>> {
        join_requests::read(&mut self.reader(), id).await
    }

    async fn list_join_requests(
        &self,
        query: &super::JoinRequestQuery,
    ) -> StoreResult<Vec<super::JoinRequestRecord>> {
        join_requests::list(&mut self.reader(), query).await
    }

    async fn join_request_timeline(
        &self,
        id: crate::domain::JoinRequestId,
    ) -> StoreResult<Vec<super::TimelineEntry>> {
        outbox::timeline(&mut self.reader(), outbox::TimelineOf::JoinRequest(id)).await
    }
}

#[cfg(test)]
mod tests {
    use sqlx::Row as _;

    /// SQLite takes `$N` as the numbered parameter `?N`: out of order and
    /// repeated, as the shared statements use them.
    #[tokio::test]
    async fn sqlite_reads_dollar_placeholders_as_numbered_parameters() {
        let pool = sqlx::SqlitePool::connect("sqlite::memory:").await.unwrap();
        let row = sqlx::query("SELECT $2 AS b, $1 AS a, $2 || $1 AS ba")
            .bind("x")
            .bind("y")
            .fetch_one(&pool)
            .await
            .unwrap();
        assert_eq!(row.get::<String, _>("b"), "y");
        assert_eq!(row.get::<String, _>("a"), "x");
        assert_eq!(row.get::<String, _>("ba"), "yx");
    }
}
