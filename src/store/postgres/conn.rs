//! How the Postgres adapter binds [`Arg`]s and reads columns: uuids,
//! timestamps and JSON in their native types, enums as values of their
//! Postgres type (so the shared statements need no casts).

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use sqlx::encode::IsNull;
use sqlx::error::BoxDynError;
use sqlx::postgres::{PgArgumentBuffer, PgArguments, PgPool, PgRow, PgTypeInfo};
use sqlx::query::Query;
use sqlx::{Column as _, Encode, Postgres, Row, Type, TypeInfo as _};
use uuid::Uuid;

use super::{OrStore as _, PgTx};
use crate::store::StoreResult;
use crate::store::sql::{Arg, Conn, StoredRow};

/// A value of a Postgres enum type, named per value (`Encode::produces`).
struct PgEnum(&'static str, Option<&'static str>);

impl Type<Postgres> for PgEnum {
    fn type_info() -> PgTypeInfo {
        PgTypeInfo::with_name("text")
    }
}

impl Encode<'_, Postgres> for PgEnum {
    fn encode_by_ref(&self, buf: &mut PgArgumentBuffer) -> Result<IsNull, BoxDynError> {
        match self.1 {
            // An enum's binary form is its label.
            Some(label) => <&str as Encode<Postgres>>::encode_by_ref(&label, buf),
            None => Ok(IsNull::Yes),
        }
    }

    fn produces(&self) -> Option<PgTypeInfo> {
        Some(PgTypeInfo::with_name(self.0))
    }
}

/// How long we wait for any statement of the shared body: past the
/// server's `statement_timeout` (30 s), for a connection that went silent
/// (no answer, no reset) and would otherwise hold its caller for as long as
/// the kernel retransmits.
pub(super) const BOUND: std::time::Duration = std::time::Duration::from_secs(35);

async fn bounded<T>(
    run: impl std::future::Future<Output = Result<T, sqlx::Error>>,
) -> StoreResult<T> {
    match tokio::time::timeout(BOUND, run).await {
        Ok(done) => done.st(),
        Err(_) => Err(crate::store::StoreError::Unavailable(format!(
            "the database did not answer within {BOUND:?}"
        ))),
    }
}

/// The same bound for the statements only Postgres has (batches, the event
/// cursors, grants), `BEGIN` and `COMMIT`: `.bounded().await?` in place of
/// `.await.st()?`, so no network wait of the adapter is left unbounded.
pub(super) trait Bounded<T: Send>:
    std::future::Future<Output = Result<T, sqlx::Error>> + Send + Sized
{
    fn bounded(self) -> impl std::future::Future<Output = StoreResult<T>> + Send {
        bounded(self)
    }
}

impl<T: Send, F> Bounded<T> for F where
    F: std::future::Future<Output = Result<T, sqlx::Error>> + Send
{
}

/// Seconds for `make_interval(secs => …)`.
pub(super) fn secs(d: Option<std::time::Duration>) -> Arg {
    Arg::Float(d.map(|d| d.as_secs_f64()))
}

pub(super) fn float_opt(row: &PgRow, col: &str) -> StoreResult<Option<f64>> {
    row.try_get(col).st()
}

/// [`Conn::any`]: the list is an array parameter (`text[]`, `uuid[]`).
fn any(expr: &str, param: &str) -> String {
    format!("{expr} = ANY({param})")
}

fn bind(sql: &str, args: Vec<Arg>) -> Query<'static, Postgres, PgArguments> {
    let mut q = sqlx::query(sqlx::AssertSqlSafe(sql));
    for arg in args {
        q = match arg {
            Arg::Uuid(v) => q.bind(v),
            Arg::Text(v) => q.bind(v),
            Arg::Int(v) => q.bind(v),
            Arg::Float(v) => q.bind(v),
            Arg::Bool(v) => q.bind(v),
            Arg::Time(v) => q.bind(v),
            Arg::Json(v) => q.bind(v),
            Arg::Bytes(v) => q.bind(v),
            Arg::Enum(kind, v) => q.bind(PgEnum(kind.pg_name(), v)),
            Arg::Texts(v) => q.bind(v),
            Arg::Uuids(v) => q.bind(v),
        };
    }
    q
}

impl StoredRow for PgRow {
    fn uuid_opt(&self, col: &str) -> StoreResult<Option<Uuid>> {
        self.try_get(col).st()
    }

    fn text_opt(&self, col: &str) -> StoreResult<Option<String>> {
        // Unchecked: a value of an enum type reads as its label.
        self.try_get_unchecked(col).st()
    }

    fn int_opt(&self, col: &str) -> StoreResult<Option<i64>> {
        let column = self.try_column(col).st()?;
        Ok(match column.type_info().name() {
            "INT2" => self.try_get::<Option<i16>, _>(col).st()?.map(i64::from),
            "INT4" => self.try_get::<Option<i32>, _>(col).st()?.map(i64::from),
            _ => self.try_get(col).st()?,
        })
    }

    fn time_opt(&self, col: &str) -> StoreResult<Option<DateTime<Utc>>> {
        self.try_get(col).st()
    }

    fn json_opt(&self, col: &str) -> StoreResult<Option<serde_json::Value>> {
        self.try_get(col).st()
    }

    fn bytes_opt(&self, col: &str) -> StoreResult<Option<Vec<u8>>> {
        self.try_get(col).st()
    }

    fn flag(&self, col: &str) -> StoreResult<bool> {
        self.try_get(col).st()
    }
}

#[async_trait]
impl Conn for PgTx {
    type Row = PgRow;

    async fn fetch_all(&mut self, sql: &str, args: Vec<Arg>) -> StoreResult<Vec<PgRow>> {
        bounded(bind(sql, args).fetch_all(&mut *self.tx)).await
    }

    async fn fetch_optional(&mut self, sql: &str, args: Vec<Arg>) -> StoreResult<Option<PgRow>> {
        bounded(bind(sql, args).fetch_optional(&mut *self.tx)).await
    }

    async fn execute(&mut self, sql: &str, args: Vec<Arg>) -> StoreResult<u64> {
        let done = bounded(bind(sql, args).execute(&mut *self.tx)).await?;
        Ok(done.rows_affected())
    }

    fn stamp(&self) -> Option<DateTime<Utc>> {
        None
    }

    fn any(&self, expr: &str, param: &str) -> String {
        any(expr, param)
    }
}

/// Statements outside a transaction, each committing on its own.
#[async_trait]
impl Conn for PgPool {
    type Row = PgRow;

    async fn fetch_all(&mut self, sql: &str, args: Vec<Arg>) -> StoreResult<Vec<PgRow>> {
        bounded(bind(sql, args).fetch_all(&*self)).await
    }

    async fn fetch_optional(&mut self, sql: &str, args: Vec<Arg>) -> StoreResult<Option<PgRow>> {
        bounded(bind(sql, args).fetch_optional(&*self)).await
    }

    async fn execute(&mut self, sql: &str, args: Vec<Arg>) -> StoreResult<u64> {
        let done = bounded(bind(sql, args).execute(&*self)).await?;
        Ok(done.rows_affected())
    }

    fn stamp(&self) -> Option<DateTime<Utc>> {
        None
    }

    fn any(&self, expr: &str, param: &str) -> String {
        any(expr, param)
    }
}
