//! The two schemas say the same thing: every table, column (and whether it
//! may be NULL), CHECK, unique or partial index and foreign key of the
//! Postgres migrations has its counterpart in the SQLite migrations, and the
//! other way round. Types are left out on purpose (uuids and timestamps are
//! TEXT on SQLite, enums are CHECKs there: a Postgres enum column counts as
//! a CHECK on that column naming the enum's values).
//!
//! Each schema is read from the database after its migrations ran
//! (`pg_catalog` on one side, `sqlite_master` and the `pragma`s on the
//! other) and reduced to lines like `check invitations(status) 'accepted'
//! 'pending' …`; the test fails with the lines found on one side only. A
//! CHECK or index predicate is compared by the columns it names and the
//! literals it holds, which both dialects print alike.

mod support;

use std::collections::{BTreeMap, BTreeSet};

use sqlx::sqlite::{SqliteConnectOptions, SqlitePoolOptions};
use sqlx::{PgPool, Row, SqlitePool};
use support::db::TempDir;

/// What exists on one side only, on purpose. Each entry is a prefix of the
/// lines it covers, with the reason.
const ONLY_POSTGRES: &[(&str, &str)] = &[
    (
        "table event_commits",
        "commit-order numbering of event-writing transactions; SQLite commits one \
         writer at a time, so `events.seq` is already in commit order",
    ),
    ("column event_commits.", "see table event_commits"),
    ("unique event_commits(", "see table event_commits"),
    (
        "column events.txid",
        "the writing transaction, joined to event_commits (Postgres only)",
    ),
    ("index events_txid ", "serves the join to event_commits"),
];
const ONLY_SQLITE: &[(&str, &str)] = &[];

/// The shape of one schema, one line per fact.
type Shape = BTreeSet<String>;

/// Column names and the string and number literals of an SQL expression:
/// what a CHECK or index predicate is compared by.
fn signature(expr: &str, columns: &BTreeSet<String>) -> String {
    let mut names = BTreeSet::new();
    let mut literals = BTreeSet::new();
    let mut chars = expr.chars().peekable();
    while let Some(c) = chars.next() {
        if c == '\'' {
            let mut lit = String::new();
            for d in chars.by_ref() {
                if d == '\'' {
                    break;
                }
                lit.push(d);
            }
            literals.insert(format!("'{lit}'"));
        } else if c.is_ascii_alphanumeric() || c == '_' {
            let mut word = c.to_string();
            while let Some(&d) = chars.peek() {
                if !(d.is_ascii_alphanumeric() || d == '_') {
                    break;
                }
                word.push(d);
                chars.next();
            }
            if word.chars().all(|d| d.is_ascii_digit()) {
                literals.insert(word);
            } else if columns.contains(&word) {
                names.insert(word);
            }
        }
    }
    let names: Vec<_> = names.into_iter().collect();
    let literals: Vec<_> = literals.into_iter().collect();
    format!("({}) {}", names.join(", "), literals.join(" "))
        .trim_end()
        .to_string()
}

/// The bodies of the `CHECK (…)` clauses of a CREATE TABLE statement.
fn check_clauses(sql: &str) -> Vec<String> {
    let upper = sql.to_ascii_uppercase();
    let mut out = Vec::new();
    let mut from = 0;
    while let Some(at) = upper[from..].find("CHECK") {
        let start = from + at + "CHECK".len();
        let rest = &sql[start..];
        let Some(open) = rest.find('(') else { break };
        if !rest[..open].trim().is_empty() {
            from = start;
            continue;
        }
        let mut depth = 0;
        let mut end = None;
        for (i, c) in rest[open..].char_indices() {
            match c {
                '(' => depth += 1,
                ')' => {
                    depth -= 1;
                    if depth == 0 {
                        end = Some(open + i);
                        break;
                    }
                }
                _ => {}
            }
        }
        let end = end.expect("balanced CHECK");
        out.push(rest[open + 1..end].to_string());
        from = start + end;
    }
    out
}

fn pg_delete_action(code: &str) -> &'static str {
    match code {
        "c" => "cascade",
        "n" => "set null",
        "d" => "set default",
        "r" => "restrict",
        _ => "no action",
    }
}

async fn postgres_shape(pool: &PgPool) -> Shape {
    let mut shape = Shape::new();
    let mut columns: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    let rows = sqlx::query(
        "SELECT c.relname AS t, a.attname AS col, a.attnotnull AS not_null,
                t.typtype = 'e' AS is_enum,
                (SELECT string_agg(quote_literal(e.enumlabel), ' ' ORDER BY e.enumlabel)
                   FROM pg_enum e WHERE e.enumtypid = t.oid) AS labels
           FROM pg_class c
           JOIN pg_namespace n ON n.oid = c.relnamespace AND n.nspname = 'public'
           JOIN pg_attribute a ON a.attrelid = c.oid AND a.attnum > 0 AND NOT a.attisdropped
           JOIN pg_type t ON t.oid = a.atttypid
          WHERE c.relkind = 'r' AND c.relname <> '_sqlx_migrations'",
    )
    .fetch_all(pool)
    .await
    .unwrap();
    for row in &rows {
        let table: String = row.get("t");
        let col: String = row.get("col");
        shape.insert(format!("table {table}"));
        let null = if row.get("not_null") { " not null" } else { "" };
        shape.insert(format!("column {table}.{col}{null}"));
        if row.get("is_enum") {
            // The SQLite schema spells an enum as CHECK (col IN (…)).
            let labels: String = row.get("labels");
            shape.insert(format!("check {table}({col}) {labels}"));
        }
        columns.entry(table).or_default().insert(col);
    }
    let rows = sqlx::query(
        "SELECT c.relname AS t, k.contype::text AS kind, pg_get_constraintdef(k.oid) AS def,
                k.confdeltype::text AS on_delete, f.relname AS target,
                (SELECT string_agg(a.attname, ', ' ORDER BY u.n)
                   FROM unnest(k.conkey) WITH ORDINALITY u(num, n)
                   JOIN pg_attribute a ON a.attrelid = k.conrelid AND a.attnum = u.num) AS cols,
                (SELECT string_agg(a.attname, ', ' ORDER BY u.n)
                   FROM unnest(k.confkey) WITH ORDINALITY u(num, n)
                   JOIN pg_attribute a ON a.attrelid = k.confrelid AND a.attnum = u.num) AS target_cols
           FROM pg_constraint k
           JOIN pg_class c ON c.oid = k.conrelid
           JOIN pg_namespace n ON n.oid = c.relnamespace AND n.nspname = 'public'
           LEFT JOIN pg_class f ON f.oid = k.confrelid
          WHERE k.contype IN ('c', 'f', 'p', 'u') AND c.relname <> '_sqlx_migrations'",
    )
    .fetch_all(pool)
    .await
    .unwrap();
    for row in &rows {
        let table: String = row.get("t");
        let cols: String = row.get("cols");
        match row.get::<String, _>("kind").as_str() {
            "c" => {
                let def: String = row.get("def");
                shape.insert(format!(
                    "check {table}{}",
                    signature(&def, &columns[&table])
                ));
            }
            "f" => {
                let target: String = row.get("target");
                let target_cols: String = row.get("target_cols");
                let on_delete = pg_delete_action(&row.get::<String, _>("on_delete"));
                shape.insert(format!(
                    "foreign key {table}({cols}) -> {target}({target_cols}) on delete {on_delete}"
                ));
            }
            _ => {
                shape.insert(format!("unique {table}({cols})"));
            }
        }
    }
    // Indexes made by CREATE INDEX (those backing constraints are above).
    let rows = sqlx::query(
        "SELECT c.relname AS t, i.relname AS name, x.indisunique AS is_unique,
                pg_get_expr(x.indpred, x.indrelid) AS pred,
                (SELECT string_agg(CASE WHEN u.num = 0 THEN '<expr>' ELSE a.attname END, ', ' ORDER BY u.n)
                   FROM unnest(x.indkey::int2[]) WITH ORDINALITY u(num, n)
                   LEFT JOIN pg_attribute a ON a.attrelid = x.indrelid AND a.attnum = u.num) AS cols
           FROM pg_index x
           JOIN pg_class i ON i.oid = x.indexrelid
           JOIN pg_class c ON c.oid = x.indrelid
           JOIN pg_namespace n ON n.oid = c.relnamespace AND n.nspname = 'public'
          WHERE NOT EXISTS (SELECT 1 FROM pg_constraint k WHERE k.conindid = x.indexrelid)
            AND c.relname <> '_sqlx_migrations'",
    )
    .fetch_all(pool)
    .await
    .unwrap();
    for row in &rows {
        let table: String = row.get("t");
        let name: String = row.get("name");
        let cols: String = row.get("cols");
        let unique = if row.get("is_unique") { "unique " } else { "" };
        let pred = row
            .get::<Option<String>, _>("pred")
            .map(|p| format!(" where {}", signature(&p, &columns[&table])))
            .unwrap_or_default();
        shape.insert(format!("index {name} {unique}on {table}({cols}){pred}"));
    }
    shape
}

async fn sqlite_shape(pool: &SqlitePool) -> Shape {
    let mut shape = Shape::new();
    let tables: Vec<(String, String)> = sqlx::query_as(
        "SELECT name, sql FROM sqlite_master
          WHERE type = 'table' AND name NOT LIKE 'sqlite_%' AND name <> '_sqlx_migrations'",
    )
    .fetch_all(pool)
    .await
    .unwrap();
    for (table, sql) in &tables {
        shape.insert(format!("table {table}"));
        let info = sqlx::query(sqlx::AssertSqlSafe(format!("PRAGMA table_info('{table}')")))
            .fetch_all(pool)
            .await
            .unwrap();
        let mut columns = BTreeSet::new();
        for row in &info {
            let col: String = row.get("name");
            // A primary key column is NOT NULL on Postgres whether or not it says so.
            let not_null = row.get::<i64, _>("notnull") == 1 || row.get::<i64, _>("pk") > 0;
            let null = if not_null { " not null" } else { "" };
            shape.insert(format!("column {table}.{col}{null}"));
            columns.insert(col);
        }
        for check in check_clauses(sql) {
            shape.insert(format!("check {table}{}", signature(&check, &columns)));
        }
        let fks = sqlx::query(sqlx::AssertSqlSafe(format!(
            "PRAGMA foreign_key_list('{table}')"
        )))
        .fetch_all(pool)
        .await
        .unwrap();
        let mut by_id: BTreeMap<i64, (String, Vec<String>, Vec<String>, String)> = BTreeMap::new();
        for row in &fks {
            let entry = by_id.entry(row.get("id")).or_insert_with(|| {
                (
                    row.get("table"),
                    Vec::new(),
                    Vec::new(),
                    row.get::<String, _>("on_delete").to_ascii_lowercase(),
                )
            });
            entry.1.push(row.get("from"));
            entry.2.push(row.get("to"));
        }
        for (target, from, to, on_delete) in by_id.into_values() {
            shape.insert(format!(
                "foreign key {table}({}) -> {target}({}) on delete {on_delete}",
                from.join(", "),
                to.join(", ")
            ));
        }
        let indexes = sqlx::query(sqlx::AssertSqlSafe(format!("PRAGMA index_list('{table}')")))
            .fetch_all(pool)
            .await
            .unwrap();
        for index in &indexes {
            let name: String = index.get("name");
            let origin: String = index.get("origin");
            let cols = sqlx::query(sqlx::AssertSqlSafe(format!("PRAGMA index_info('{name}')")))
                .fetch_all(pool)
                .await
                .unwrap()
                .iter()
                .map(|c| {
                    c.get::<Option<String>, _>("name")
                        .unwrap_or_else(|| "<expr>".into())
                })
                .collect::<Vec<_>>()
                .join(", ");
            if origin != "c" {
                // A PRIMARY KEY or UNIQUE clause.
                shape.insert(format!("unique {table}({cols})"));
                continue;
            }
            let unique = if index.get::<i64, _>("unique") == 1 {
                "unique "
            } else {
                ""
            };
            let sql: String = sqlx::query_scalar("SELECT sql FROM sqlite_master WHERE name = $1")
                .bind(&name)
                .fetch_one(pool)
                .await
                .unwrap();
            let pred = sql
                .to_ascii_uppercase()
                .rfind(" WHERE ")
                .map(|at| format!(" where {}", signature(&sql[at + 7..], &columns)))
                .unwrap_or_default();
            shape.insert(format!("index {name} {unique}on {table}({cols}){pred}"));
        }
    }
    shape
}

fn allowed(line: &str, list: &[(&str, &str)]) -> bool {
    list.iter().any(|(prefix, _)| line.starts_with(prefix))
}

/// The lines of `mine` the other side lacks, minus the allowed ones.
fn missing(mine: &Shape, other: &Shape, allow: &[(&str, &str)]) -> Vec<String> {
    mine.difference(other)
        .filter(|line| !allowed(line, allow))
        .cloned()
        .collect()
}

#[sqlx::test(migrations = false)]
async fn the_postgres_and_sqlite_schemas_agree(pg: PgPool) {
    invited::store::postgres::MIGRATOR.run(&pg).await.unwrap();
    let dir = TempDir::new("invited-parity");
    let sqlite = SqlitePoolOptions::new()
        .connect_with(
            SqliteConnectOptions::new()
                .filename(dir.0.join("parity.db"))
                .create_if_missing(true),
        )
        .await
        .unwrap();
    invited::store::sqlite::MIGRATOR.run(&sqlite).await.unwrap();

    let pg_shape = postgres_shape(&pg).await;
    let sqlite_shape = sqlite_shape(&sqlite).await;
    // Both sides were read: a broken query must not make two empty sets agree.
    assert!(
        pg_shape
            .iter()
            .any(|l| l.starts_with("check invitations(status)"))
    );
    assert!(
        sqlite_shape
            .iter()
            .any(|l| l.starts_with("foreign key profile_grants"))
    );

    if std::env::var_os("SCHEMA_PARITY_SHOW").is_some() {
        eprintln!(
            "{}\n---\n{}",
            pg_shape.iter().cloned().collect::<Vec<_>>().join("\n"),
            sqlite_shape.iter().cloned().collect::<Vec<_>>().join("\n")
        );
    }
    let only_pg = missing(&pg_shape, &sqlite_shape, ONLY_POSTGRES);
    let only_sqlite = missing(&sqlite_shape, &pg_shape, ONLY_SQLITE);
    assert!(
        only_pg.is_empty() && only_sqlite.is_empty(),
        "the schemas differ\n\nonly in the Postgres migrations:\n  {}\n\nonly in the SQLite migrations:\n  {}\n",
        only_pg.join("\n  "),
        only_sqlite.join("\n  "),
    );
    // Every allow-list entry still names something, so the list cannot rot.
    for (prefix, _) in ONLY_POSTGRES {
        assert!(
            pg_shape.iter().any(|l| l.starts_with(prefix)),
            "allow-list entry {prefix:?} matches nothing in the Postgres schema"
        );
    }
}

#[test]
fn signatures_ignore_dialect_spelling() {
    let cols: BTreeSet<String> = ["status", "accepted_at", "name"]
        .into_iter()
        .map(String::from)
        .collect();
    assert_eq!(
        signature(
            "CHECK (((status = 'accepted'::invitation_status) = (accepted_at IS NOT NULL)))",
            &cols
        ),
        signature("(status = 'accepted') = (accepted_at IS NOT NULL)", &cols),
    );
    assert_eq!(
        signature(
            "CHECK (((char_length(name) >= 1) AND (char_length(name) <= 200)))",
            &cols
        ),
        signature("length(name) BETWEEN 1 AND 200", &cols),
    );
    assert_ne!(
        signature("length(name) BETWEEN 1 AND 200", &cols),
        signature("length(name) BETWEEN 1 AND 100", &cols),
    );
    assert_eq!(
        check_clauses(
            "CREATE TABLE t (a TEXT CHECK (a IN ('x', 'y')), CHECK ((a = 'x') = (b IS NULL)))"
        ),
        vec!["a IN ('x', 'y')", "(a = 'x') = (b IS NULL)"],
    );
}
