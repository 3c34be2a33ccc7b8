//! One behaviour suite, two stores: [`Db`] is the database a test runs on
//! (a fresh Postgres database from `#[sqlx::test]`, or a fresh SQLite file in
//! a temp directory), and [`both_stores!`] expands one test body into a test
//! on each. Raw SQL in a test body goes through [`Db`] and must be valid on
//! both: values that differ by dialect (timestamps, uuids) are bound as
//! [`Arg`]s, never written as SQL expressions.

use std::path::PathBuf;
use std::sync::Arc;

use chrono::{DateTime, Utc};
use invited::store::Store;
use invited::store::postgres::PgStore;
use invited::store::sqlite::SqliteStore;
use sqlx::PgPool;
use uuid::Uuid;

/// A test's database.
pub enum Db {
    Pg(PgPool),
    Sqlite {
        store: SqliteStore,
        url: String,
        _dir: TempDir,
    },
}

/// A value bound to a raw statement, encoded as each adapter stores it.
#[derive(Clone, Debug)]
pub enum Arg {
    Ts(DateTime<Utc>),
    Uuid(Uuid),
    Text(String),
}

/// A directory removed when the test ends.
pub struct TempDir(pub PathBuf);

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

impl TempDir {
    pub fn new(prefix: &str) -> TempDir {
        let dir = std::env::temp_dir().join(format!("{prefix}-{}", Uuid::now_v7()));
        std::fs::create_dir_all(&dir).expect("temp dir");
        TempDir(dir)
    }
}

impl Db {
    /// The `#[sqlx::test]` database, migrated.
    pub async fn pg(pool: PgPool) -> Db {
        PgStore::from_pool(pool.clone())
            .migrate()
            .await
            .expect("Postgres migrations");
        Db::Pg(pool)
    }

    /// A fresh SQLite file in its own temp directory, migrated.
    pub async fn sqlite() -> Db {
        let dir = TempDir::new("invited-sqlite");
        let url = format!("sqlite://{}", dir.0.join("invited.db").display());
        let store = SqliteStore::connect(&url, 5).await.expect("SQLite opens");
        store.migrate().await.expect("SQLite migrations");
        Db::Sqlite {
            store,
            url,
            _dir: dir,
        }
    }

    pub fn is_sqlite(&self) -> bool {
        matches!(self, Db::Sqlite { .. })
    }

    /// `database.url` for a daemon on this database.
    pub fn url(&self) -> String {
        match self {
            Db::Pg(pool) => super::daemon::database_url(pool),
            Db::Sqlite { url, .. } => url.clone(),
        }
    }

    /// The store adapter on this database (one per call for Postgres, the
    /// same one, with its write lock, for SQLite).
    pub fn store(&self) -> Arc<dyn Store> {
        match self {
            Db::Pg(pool) => Arc::new(PgStore::from_pool(pool.clone())),
            Db::Sqlite { store, .. } => Arc::new(store.clone()),
        }
    }

    /// `SELECT count(*) …` or any query of one integer.
    pub async fn count(&self, sql: &str) -> i64 {
        self.count_with(sql, &[]).await
    }

    /// [`Db::count`] with bound values.
    pub async fn count_with(&self, sql: &str, args: &[Arg]) -> i64 {
        self.scalars::<i64>(sql, args).await[0]
    }

    /// One text column of every row, with bound values.
    pub async fn strings_with(&self, sql: &str, args: &[Arg]) -> Vec<String> {
        self.scalars(sql, args).await
    }

    /// One column of every row, with bound values, on either store.
    async fn scalars<T>(&self, sql: &str, args: &[Arg]) -> Vec<T>
    where
        T: for<'r> sqlx::Decode<'r, sqlx::Postgres>
            + sqlx::Type<sqlx::Postgres>
            + for<'r> sqlx::Decode<'r, sqlx::Sqlite>
            + sqlx::Type<sqlx::Sqlite>
            + Send
            + Unpin,
    {
        let sql = sqlx::AssertSqlSafe(sql.to_owned());
        match self {
            Db::Pg(pool) => {
                let mut q = sqlx::query_scalar(sql);
                for arg in args {
                    q = match arg {
                        Arg::Ts(t) => q.bind(*t),
                        Arg::Uuid(u) => q.bind(*u),
                        Arg::Text(s) => q.bind(s.clone()),
                    };
                }
                q.fetch_all(pool).await.unwrap()
            }
            Db::Sqlite { store, .. } => {
                let mut q = sqlx::query_scalar(sql);
                for arg in args {
                    q = match arg {
                        Arg::Ts(t) => q.bind(*t),
                        Arg::Uuid(u) => q.bind(u.hyphenated()),
                        Arg::Text(s) => q.bind(s.clone()),
                    };
                }
                q.fetch_all(store.pool()).await.unwrap()
            }
        }
    }

    /// Waits until the first value `sql` reads is `want` (see
    /// [`super::wait::eventually`]).
    pub async fn eventually_first(&self, sql: &str, want: &str, timeout: std::time::Duration) {
        super::wait::eventually(timeout, &format!("{sql} reading {want}"), || async {
            let now = self.strings(sql).await;
            if now.first().map(String::as_str) == Some(want) {
                Ok(())
            } else {
                Err(format!("{now:?}"))
            }
        })
        .await
    }

    /// One text column of every row.
    pub async fn strings(&self, sql: &str) -> Vec<String> {
        self.scalars(sql, &[]).await
    }

    /// Runs a statement; the error text on failure.
    pub async fn try_exec(&self, sql: &str, args: &[Arg]) -> Result<u64, String> {
        let sql = sqlx::AssertSqlSafe(sql.to_owned());
        match self {
            Db::Pg(pool) => {
                let mut q = sqlx::query(sql);
                for arg in args {
                    q = match arg {
                        Arg::Ts(t) => q.bind(*t),
                        Arg::Uuid(u) => q.bind(*u),
                        Arg::Text(s) => q.bind(s.clone()),
                    };
                }
                q.execute(pool)
                    .await
                    .map(|r| r.rows_affected())
                    .map_err(|e| e.to_string())
            }
            Db::Sqlite { store, .. } => {
                let mut q = sqlx::query(sql);
                for arg in args {
                    q = match arg {
                        Arg::Ts(t) => q.bind(*t),
                        Arg::Uuid(u) => q.bind(u.hyphenated()),
                        Arg::Text(s) => q.bind(s.clone()),
                    };
                }
                q.execute(store.pool())
                    .await
                    .map(|r| r.rows_affected())
                    .map_err(|e| e.to_string())
            }
        }
    }

    pub async fn exec(&self, sql: &str, args: &[Arg]) -> u64 {
        self.try_exec(sql, args).await.unwrap()
    }
}

/// Now, minus `secs` seconds (for backdating rows).
pub fn ago(secs: i64) -> Arg {
    Arg::Ts(Utc::now() - chrono::Duration::seconds(secs))
}

/// Expands one test body into two tests in a module named after the test:
/// `postgres` (a fresh database from `#[sqlx::test]`) and `sqlite` (a fresh
/// file). The body sees its database as `db: Db`.
#[macro_export]
macro_rules! both_stores {
    ($(#[$meta:meta])* async fn $name:ident($db:ident: Db) $body:block) => {
        $(#[$meta])*
        mod $name {
            #[allow(unused_imports)]
            use super::*;

            #[sqlx::test(migrations = false)]
            async fn postgres(pool: sqlx::PgPool) {
                let $db = $crate::support::db::Db::pg(pool).await;
                $body
            }

            #[tokio::test]
            async fn sqlite() {
                let $db = $crate::support::db::Db::sqlite().await;
                $body
            }
        }
    };
}
