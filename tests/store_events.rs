//! The event log read as an outbox (R17), against a real Postgres: events come
//! in commit order (not transaction-id order), an uncommitted event is never
//! read and never skipped, and a sink's lease keeps other replicas out.
//!
//! Postgres-only by nature: it drives transaction ids and concurrent
//! connections by hand. The store-agnostic half of the event log (order,
//! lease, backoff, lag, wake-ups) runs on both stores in `tests/store.rs`.

mod support;

use std::time::Duration;

use invited::store::postgres::PgStore;
use invited::store::{EventLog, EventPosition};
use sqlx::{Connection, PgConnection, PgPool};
use uuid::Uuid;

async fn business(pool: &PgPool) -> Uuid {
    let id = Uuid::now_v7();
    sqlx::query(
        "INSERT INTO businesses (id, public_id, name, role_preset) VALUES ($1, $2, 'B', 'business_manager')",
    )
    .bind(id)
    .bind(id.simple().to_string())
    .execute(pool)
    .await
    .unwrap();
    id
}

async fn insert_event(conn: &mut PgConnection, business: Uuid, event_type: &str) -> Uuid {
    let id = Uuid::now_v7();
    sqlx::query("INSERT INTO events (id, business_id, type) VALUES ($1, $2, $3)")
        .bind(id)
        .bind(business)
        .bind(event_type)
        .execute(&mut *conn)
        .await
        .unwrap();
    id
}

async fn connect(pool: &PgPool) -> PgConnection {
    PgConnection::connect_with(&pool.connect_options())
        .await
        .unwrap()
}

async fn ids_after(store: &PgStore, after: EventPosition) -> Vec<Uuid> {
    store
        .events_after(after, 100)
        .await
        .unwrap()
        .iter()
        .map(|e| e.id)
        .collect()
}

/// The case that breaks a cursor on transaction ids: B takes its xid first
/// (as a transaction does when it locks a business row), A writes and commits,
/// then B writes and commits. B's event must come after A's, and must not be
/// skipped by a cursor that already moved past A's.
#[sqlx::test]
async fn events_come_in_commit_order_and_late_commits_are_not_skipped(pool: PgPool) {
    let store = PgStore::from_pool(pool.clone());
    let b = business(&pool).await;

    let mut conn_b = connect(&pool).await;
    sqlx::query("BEGIN").execute(&mut conn_b).await.unwrap();
    let xid_b: String = sqlx::query_scalar("SELECT pg_current_xact_id()::text")
        .fetch_one(&mut conn_b)
        .await
        .unwrap();

    let mut conn_a = connect(&pool).await;
    sqlx::query("BEGIN").execute(&mut conn_a).await.unwrap();
    let e_a = insert_event(&mut conn_a, b, "invitation.created").await;
    let xid_a: String = sqlx::query_scalar("SELECT pg_current_xact_id()::text")
        .fetch_one(&mut conn_a)
        .await
        .unwrap();
    assert!(
        xid_b.parse::<u64>().unwrap() < xid_a.parse::<u64>().unwrap(),
        "B holds the older transaction id"
    );
    // Uncommitted: nothing to read.
    assert!(ids_after(&store, EventPosition::START).await.is_empty());
    sqlx::query("COMMIT").execute(&mut conn_a).await.unwrap();

    let e_b = insert_event(&mut conn_b, b, "invitation.cancelled").await;
    let first = store.events_after(EventPosition::START, 100).await.unwrap();
    assert_eq!(
        first.iter().map(|e| e.id).collect::<Vec<_>>(),
        vec![e_a],
        "B's event is invisible until B commits"
    );
    let cursor = first[0].position;
    sqlx::query("COMMIT").execute(&mut conn_b).await.unwrap();

    // A cursor already past A's event still finds B's (older xid) event.
    assert_eq!(ids_after(&store, cursor).await, vec![e_b]);
    assert_eq!(
        ids_after(&store, EventPosition::START).await,
        vec![e_a, e_b]
    );

    // A rolled-back event is never read.
    let mut conn_c = connect(&pool).await;
    sqlx::query("BEGIN").execute(&mut conn_c).await.unwrap();
    insert_event(&mut conn_c, b, "invitation.accepted").await;
    sqlx::query("ROLLBACK").execute(&mut conn_c).await.unwrap();
    assert_eq!(
        ids_after(&store, EventPosition::START).await,
        vec![e_a, e_b]
    );

    // Several events of one transaction keep their insertion order.
    let mut conn_d = connect(&pool).await;
    sqlx::query("BEGIN").execute(&mut conn_d).await.unwrap();
    let d1 = insert_event(&mut conn_d, b, "member.added").await;
    let d2 = insert_event(&mut conn_d, b, "invitation.accepted").await;
    sqlx::query("COMMIT").execute(&mut conn_d).await.unwrap();
    assert_eq!(
        ids_after(&store, EventPosition::START).await,
        vec![e_a, e_b, d1, d2]
    );

    // Each commit row counts its transaction's events (the lag sums them),
    // the late commit and the one of two events included.
    let counts: Vec<(i32, i64)> = sqlx::query_as(
        "SELECT c.event_count, (SELECT count(*) FROM events e WHERE e.txid = c.txid)
           FROM event_commits c ORDER BY c.commit_seq",
    )
    .fetch_all(&pool)
    .await
    .unwrap();
    assert_eq!(counts.iter().map(|(n, _)| *n).sum::<i32>(), 4, "{counts:?}");
    assert!(
        counts.iter().all(|(n, events)| i64::from(*n) == *events),
        "{counts:?}"
    );
}

/// One replica at a time holds a sink; the cursor only moves for the holder;
/// a failure records its reason and delays the next attempt; the lag counts
/// what is left.
#[sqlx::test]
async fn a_sink_lease_keeps_other_replicas_out(pool: PgPool) {
    let store = PgStore::from_pool(pool.clone());
    let b = business(&pool).await;
    let mut conn = connect(&pool).await;
    let e1 = insert_event(&mut conn, b, "invitation.created").await;
    insert_event(&mut conn, b, "invitation.sent").await;

    let (me, other) = (Uuid::now_v7(), Uuid::now_v7());
    let lease = Duration::from_secs(30);
    let cursor = store
        .lease_event_cursor("webhook:x", me, lease)
        .await
        .unwrap()
        .expect("a new sink is free");
    assert_eq!(cursor.position, EventPosition::START);
    assert!(
        store
            .lease_event_cursor("webhook:x", other, lease)
            .await
            .unwrap()
            .is_none()
    );
    // Another sink is independent.
    assert!(
        store
            .lease_event_cursor("nats", other, lease)
            .await
            .unwrap()
            .is_some()
    );

    let lag = store.event_lag().await.unwrap();
    let x = lag.iter().find(|l| l.sink == "webhook:x").unwrap();
    assert_eq!(x.depth, 2);

    let events = store.events_after(cursor.position, 100).await.unwrap();
    assert_eq!(events[0].id, e1);
    assert!(
        !store
            .advance_event_cursor("webhook:x", other, events[0].position, lease)
            .await
            .unwrap(),
        "only the holder moves the cursor"
    );
    assert!(
        store
            .advance_event_cursor("webhook:x", me, events[0].position, lease)
            .await
            .unwrap()
    );
    assert!(
        store
            .event_delivery_failed(
                "webhook:x",
                me,
                "answered HTTP 500",
                Duration::from_secs(60)
            )
            .await
            .unwrap()
    );
    let cursor = store
        .lease_event_cursor("webhook:x", me, lease)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(cursor.position, events[0].position);
    assert_eq!(cursor.attempts, 1);
    assert!(cursor.wait > Duration::from_secs(50), "{:?}", cursor.wait);
    let last_error: Option<String> =
        sqlx::query_scalar("SELECT last_error FROM event_cursors WHERE sink = 'webhook:x'")
            .fetch_one(&pool)
            .await
            .unwrap();
    assert_eq!(last_error.as_deref(), Some("answered HTTP 500"));
    let lag = store.event_lag().await.unwrap();
    assert_eq!(lag.iter().find(|l| l.sink == "webhook:x").unwrap().depth, 1);

    // Released, the other replica takes over where the cursor is.
    store.release_event_cursor("webhook:x", me).await.unwrap();
    let taken = store
        .lease_event_cursor("webhook:x", other, lease)
        .await
        .unwrap()
        .expect("released");
    assert_eq!(taken.position, events[0].position);
}

/// Waits until `sql` (one boolean) holds, polling the database.
async fn until(pool: &PgPool, sql: &'static str) {
    support::wait::eventually(
        Duration::from_secs(10),
        &format!("`{sql}` holding"),
        || async {
            let holds: bool = sqlx::query_scalar(sql).fetch_one(pool).await.unwrap();
            if holds {
                Ok(())
            } else {
                Err(format!("never held: {sql} answered false"))
            }
        },
    )
    .await;
}

/// Event-writing commits no longer take turns (their commit-order lock is
/// shared), so a reader must not read past a commit that has its number but
/// is not visible yet: its cursor would move past that number for good. A's
/// commit trigger runs early here (`SET CONSTRAINTS … IMMEDIATE`) and A stays
/// open with its number; B takes the next number and commits without waiting
/// for A; a reader then waits for A instead of returning B's event alone.
#[sqlx::test]
async fn a_reader_waits_for_a_numbered_commit_still_on_its_way(pool: PgPool) {
    let store = PgStore::from_pool(pool.clone());
    let b = business(&pool).await;

    let mut conn_a = connect(&pool).await;
    sqlx::query("BEGIN").execute(&mut conn_a).await.unwrap();
    sqlx::query("SET CONSTRAINTS events_commit_order IMMEDIATE")
        .execute(&mut conn_a)
        .await
        .unwrap();
    let e_a = insert_event(&mut conn_a, b, "invitation.created").await;

    let mut conn_b = connect(&pool).await;
    let e_b = tokio::time::timeout(
        Duration::from_secs(10),
        insert_event(&mut conn_b, b, "invitation.sent"),
    )
    .await
    .expect("B commits while A holds its number: commits do not take turns");
    let numbers: Vec<(String, i64)> =
        sqlx::query_as("SELECT txid::text, commit_seq FROM event_commits ORDER BY commit_seq")
            .fetch_all(&pool)
            .await
            .unwrap();
    assert_eq!(numbers.len(), 1, "only B's number is visible: {numbers:?}");

    let reader = {
        let store = store.clone();
        tokio::spawn(async move { ids_after(&store, EventPosition::START).await })
    };
    until(
        &pool,
        "SELECT EXISTS (SELECT 1 FROM pg_locks WHERE locktype = 'advisory' AND NOT granted)",
    )
    .await;
    assert!(!reader.is_finished(), "the reader waits for A");
    sqlx::query("COMMIT").execute(&mut conn_a).await.unwrap();
    assert_eq!(
        reader.await.unwrap(),
        vec![e_a, e_b],
        "A's event first (its number is smaller), none skipped"
    );
}

/// Wake-ups come after the commit, not from a NOTIFY inside it: a commit on
/// one replica wakes the publisher and the dispatcher of another through
/// the replica's own NOTIFY; a transaction that rolls back wakes nobody.
#[sqlx::test]
async fn a_commit_on_one_replica_wakes_the_others(pool: PgPool) {
    use invited::store::{NewEvent, Store};
    let ours = PgStore::from_pool(pool.clone());
    let theirs = PgStore::from_pool(
        sqlx::postgres::PgPoolOptions::new()
            .max_connections(2)
            .connect_with((*pool.connect_options()).clone())
            .await
            .unwrap(),
    );
    let b = business(&pool).await;
    let mut events = ours.subscribe_events().await.unwrap();
    let event = || NewEvent {
        id: Uuid::now_v7(),
        business_id: Some(invited::domain::BusinessId(b)),
        invitation_id: None,
        join_request_id: None,
        event_type: "test.woken".into(),
        actor_user_id: None,
        from_status: None,
        to_status: None,
        data: serde_json::json!({}),
    };

    let mut tx = theirs.begin().await.unwrap();
    tx.insert_event(&event()).await.unwrap();
    drop(tx);
    let quiet = tokio::time::timeout(Duration::from_millis(300), events.next()).await;
    assert!(
        quiet.is_err(),
        "a rolled-back transaction woke a subscriber"
    );

    let mut tx = theirs.begin().await.unwrap();
    tx.insert_event(&event()).await.unwrap();
    tx.commit().await.unwrap();
    tokio::time::timeout(Duration::from_secs(5), events.next())
        .await
        .expect("the other replica's commit wakes this one")
        .unwrap();
}
