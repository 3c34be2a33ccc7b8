//! How the SQLite adapter binds [`Arg`]s and reads columns: uuids as
//! hyphenated TEXT (lower case, so text order is uuid order), timestamps as
//! RFC 3339 TEXT in UTC (one format, so text order is time order), JSON as
//! TEXT, enums as TEXT.

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use sqlx::query::Query;
use sqlx::sqlite::{SqliteArguments, SqlitePool, SqliteRow};
use sqlx::types::Json;
use sqlx::{Row, Sqlite};
use uuid::Uuid;
use uuid::fmt::Hyphenated;

use super::{OrStore as _, SqliteTx, now};
use crate::store::StoreResult;
use crate::store::sql::{Arg, Conn, StoredRow};

/// [`Conn::any`]: the list is bound as a JSON array (SQLite has no arrays).
fn any(expr: &str, param: &str) -> String {
    format!("{expr} IN (SELECT value FROM json_each({param}))")
}

fn bind(sql: &str, args: Vec<Arg>) -> Query<'static, Sqlite, SqliteArguments> {
    let mut q = sqlx::query(sqlx::AssertSqlSafe(sql));
    for arg in args {
        q = match arg {
            Arg::Uuid(v) => q.bind(v.map(|u| u.hyphenated())),
            Arg::Text(v) => q.bind(v),
            Arg::Int(v) => q.bind(v),
            Arg::Float(v) => q.bind(v),
            Arg::Bool(v) => q.bind(v),
            Arg::Time(v) => q.bind(v),
            Arg::Json(v) => q.bind(Json(v)),
            Arg::Bytes(v) => q.bind(v),
            Arg::Enum(_, v) => q.bind(v),
            Arg::Texts(v) => q.bind(Json(v)),
            // Hyphenated, as SQLite stores uuids.
            Arg::Uuids(v) => q.bind(Json(
                v.iter()
                    .map(|u| u.hyphenated().to_string())
                    .collect::<Vec<_>>(),
            )),
        };
    }
    q
}

impl StoredRow for SqliteRow {
    fn uuid_opt(&self, col: &str) -> StoreResult<Option<Uuid>> {
        Ok(self
            .try_get::<Option<Hyphenated>, _>(col)
            .st()?
            .map(Hyphenated::into_uuid))
    }

    fn text_opt(&self, col: &str) -> StoreResult<Option<String>> {
        self.try_get(col).st()
    }

    fn int_opt(&self, col: &str) -> StoreResult<Option<i64>> {
        self.try_get(col).st()
    }

    fn time_opt(&self, col: &str) -> StoreResult<Option<DateTime<Utc>>> {
        self.try_get(col).st()
    }

    fn json_opt(&self, col: &str) -> StoreResult<Option<serde_json::Value>> {
        Ok(self
            .try_get::<Option<Json<serde_json::Value>>, _>(col)
            .st()?
            .map(|j| j.0))
    }

    fn bytes_opt(&self, col: &str) -> StoreResult<Option<Vec<u8>>> {
        self.try_get(col).st()
    }

    fn flag(&self, col: &str) -> StoreResult<bool> {
        self.try_get(col).st()
    }
}

/// Statements of a write transaction, stamped with its time.
#[async_trait]
impl Conn for SqliteTx {
    type Row = SqliteRow;

    async fn fetch_all(&mut self, sql: &str, args: Vec<Arg>) -> StoreResult<Vec<SqliteRow>> {
        bind(sql, args).fetch_all(&mut *self.tx).await.st()
    }

    async fn fetch_optional(
        &mut self,
        sql: &str,
        args: Vec<Arg>,
    ) -> StoreResult<Option<SqliteRow>> {
        bind(sql, args).fetch_optional(&mut *self.tx).await.st()
    }

    async fn execute(&mut self, sql: &str, args: Vec<Arg>) -> StoreResult<u64> {
        Ok(bind(sql, args)
            .execute(&mut *self.tx)
            .await
            .st()?
            .rows_affected())
    }

    fn stamp(&self) -> Option<DateTime<Utc>> {
        Some(self.at)
    }

    fn any(&self, expr: &str, param: &str) -> String {
        any(expr, param)
    }
}

/// Reads outside the write lock (WAL snapshots).
#[async_trait]
impl Conn for SqlitePool {
    type Row = SqliteRow;

    async fn fetch_all(&mut self, sql: &str, args: Vec<Arg>) -> StoreResult<Vec<SqliteRow>> {
        bind(sql, args).fetch_all(&*self).await.st()
    }

    async fn fetch_optional(
        &mut self,
        sql: &str,
        args: Vec<Arg>,
    ) -> StoreResult<Option<SqliteRow>> {
        bind(sql, args).fetch_optional(&*self).await.st()
    }

    async fn execute(&mut self, sql: &str, args: Vec<Arg>) -> StoreResult<u64> {
        Ok(bind(sql, args).execute(&*self).await.st()?.rows_affected())
    }

    fn stamp(&self) -> Option<DateTime<Utc>> {
        // Never NULL on SQLite: its CURRENT_TIMESTAMP is not in the stored format.
        Some(now())
    }

    fn any(&self, expr: &str, param: &str) -> String {
        any(expr, param)
    }
}
