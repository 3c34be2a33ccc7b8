//! Queues emails straight into the outbox of a test database, the way a
//! committed use case leaves them, for tests about delivery alone.

use invited::mail::TemplateName;
use sqlx::PgPool;
use uuid::Uuid;

/// Applies the schema (a `#[sqlx::test(migrations = false)]` database is empty).
pub async fn migrate(pool: &PgPool) {
    invited::store::postgres::MIGRATOR
        .run(pool)
        .await
        .expect("migrations apply");
}

/// Queues `n` "invitation accepted" emails (they need no token) and wakes the
/// dispatchers. Returns their Message-IDs.
pub async fn queue(pool: &PgPool, n: usize) -> Vec<String> {
    let business = Uuid::now_v7();
    sqlx::query(
        "INSERT INTO businesses (id, public_id, name, role_preset) VALUES ($1, $2, 'Acme', 'business_manager')",
    )
    .bind(business)
    .bind(format!("T{}", &business.simple().to_string()[20..]))
    .execute(pool)
    .await
    .expect("insert a business");
    let tag = Uuid::now_v7().simple().to_string();
    let ids: Vec<String> = sqlx::query_scalar(
        "INSERT INTO email_outbox (id, business_id, template, locale, recipient, context, message_id)
         SELECT gen_random_uuid(), $1, 'invitation_accepted', 'en-US', 'u' || g || '@x.example', $2,
                '<' || g || '.' || $3 || '@info.example.test>'
         FROM generate_series(1, $4) g
         RETURNING message_id",
    )
    .bind(business)
    .bind(TemplateName::InvitationAccepted.sample_context())
    .bind(tag)
    .bind(n as i32)
    .fetch_all(pool)
    .await
    .expect("queue emails");
    sqlx::query("SELECT pg_notify('invited_outbox', '')")
        .execute(pool)
        .await
        .expect("notify");
    ids
}

/// Outbox rows per status.
pub async fn count_status(pool: &PgPool, status: &str) -> i64 {
    sqlx::query_scalar("SELECT count(*) FROM email_outbox WHERE status::text = $1")
        .bind(status)
        .fetch_one(pool)
        .await
        .expect("count outbox rows")
}
