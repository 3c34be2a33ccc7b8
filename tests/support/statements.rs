//! Counts the SQL statements a piece of work runs, by the `sqlx::query`
//! event sqlx emits for each statement it executes (its query log, at
//! DEBUG). A statement counts toward the work whose span it ran in: on
//! Postgres the statement runs in the caller's task, on SQLite in the
//! connection's worker thread, which enters the caller's span for each
//! command. Statements of other tasks (another test, a store's heartbeat
//! or its NOTIFY after a commit) are not in that span and do not count.
//!
//! Nor do a connection's own statements: when the pool opens one during
//! the work (whether it does depends on timing: a connection goes back to
//! the pool in a task of its own), SQLite sets its `PRAGMA`s and Postgres
//! looks up the ids of the enum types it binds (`pg_catalog`), once per
//! connection. They are not the work's round trips.
//!
//! It installs a global subscriber (once per test binary): a test binary
//! that uses it must not install another one.

use std::collections::HashMap;
use std::future::Future;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Mutex, OnceLock};

use tracing::field::{Field, Visit};
use tracing::span::{Attributes, Id};
use tracing::{Event, Instrument as _, Subscriber};
use tracing_subscriber::layer::{Context, Layer};
use tracing_subscriber::prelude::*;
use tracing_subscriber::registry::LookupSpan;

const SPAN: &str = "count_statements";

/// The statements (their first words) run in each counting span, by its
/// `key`.
fn counts() -> &'static Mutex<HashMap<u64, Vec<String>>> {
    static COUNTS: OnceLock<Mutex<HashMap<u64, Vec<String>>>> = OnceLock::new();
    COUNTS.get_or_init(Default::default)
}

/// The `key` of a counting span, kept in the span's extensions.
struct Key(u64);

struct KeyVisitor(Option<u64>);

impl Visit for KeyVisitor {
    fn record_u64(&mut self, field: &Field, value: u64) {
        if field.name() == "key" {
            self.0 = Some(value);
        }
    }

    fn record_debug(&mut self, _: &Field, _: &dyn std::fmt::Debug) {}
}

/// The statement of a `sqlx::query` event: its first words (`summary`)
/// and, when longer, its whole text (`db.statement`).
#[derive(Default)]
struct SqlVisitor {
    summary: String,
    statement: String,
}

impl SqlVisitor {
    fn connection_set_up(&self) -> bool {
        self.summary.trim_start().starts_with("PRAGMA")
            || self.summary.contains("pg_catalog")
            || self.statement.contains("pg_catalog")
    }
}

impl Visit for SqlVisitor {
    fn record_str(&mut self, field: &Field, value: &str) {
        match field.name() {
            "summary" => self.summary = value.to_owned(),
            "db.statement" => self.statement = value.to_owned(),
            _ => {}
        }
    }

    fn record_debug(&mut self, _: &Field, _: &dyn std::fmt::Debug) {}
}

struct CountStatements;

impl<S: Subscriber + for<'a> LookupSpan<'a>> Layer<S> for CountStatements {
    fn on_new_span(&self, attrs: &Attributes<'_>, id: &Id, ctx: Context<'_, S>) {
        if attrs.metadata().name() != SPAN {
            return;
        }
        let mut key = KeyVisitor(None);
        attrs.record(&mut key);
        if let (Some(key), Some(span)) = (key.0, ctx.span(id)) {
            span.extensions_mut().insert(Key(key));
        }
    }

    fn on_event(&self, event: &Event<'_>, ctx: Context<'_, S>) {
        if event.metadata().target() != "sqlx::query" {
            return;
        }
        let mut sql = SqlVisitor::default();
        event.record(&mut sql);
        if sql.connection_set_up() {
            return;
        }
        let Some(scope) = ctx.event_scope(event) else {
            return;
        };
        for span in scope {
            if let Some(Key(key)) = span.extensions().get::<Key>() {
                counts()
                    .lock()
                    .unwrap()
                    .entry(*key)
                    .or_default()
                    .push(sql.summary);
                return;
            }
        }
    }
}

fn install() {
    static INSTALLED: OnceLock<()> = OnceLock::new();
    INSTALLED.get_or_init(|| {
        tracing_subscriber::registry()
            .with(CountStatements)
            .try_init()
            .expect("no other global subscriber in this test binary");
    });
}

/// Runs `work` and answers its output with the statements it ran, in
/// order, each by its first words.
pub async fn count<T>(work: impl Future<Output = T>) -> (T, Vec<String>) {
    install();
    static NEXT: AtomicU64 = AtomicU64::new(1);
    let key = NEXT.fetch_add(1, Ordering::Relaxed);
    let span = tracing::debug_span!(target: "statements", SPAN, key);
    let out = work.instrument(span).await;
    let ran = counts().lock().unwrap().remove(&key).unwrap_or_default();
    (out, ran)
}
