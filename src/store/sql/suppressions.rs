//! The suppression list (R45): its statements and [`SuppressionTx`] for
//! every adapter. The per-address serialisation is the dialect hook
//! [`SqlTx::hold_addresses`].

use async_trait::async_trait;

use super::{Arg, Conn, SqlTx, StoredRow, limit, opt_text, text};
use crate::domain::{Email, SuppressionReason};
use crate::store::stored::corrupt;
use crate::store::{
    NewSuppression, StoreResult, SuppressionQuery, SuppressionRecord, SuppressionTx,
};

const COLUMNS: &str = "email, reason, source, detail, created_at";

fn record(row: &impl StoredRow) -> StoreResult<SuppressionRecord> {
    let email = row.text("email")?;
    let reason = row.text("reason")?;
    Ok(SuppressionRecord {
        email: Email::parse(&email).map_err(|_| corrupt("suppressions.email", &email))?,
        reason: SuppressionReason::parse(&reason)
            .ok_or_else(|| corrupt("suppressions.reason", &reason))?,
        source: row.text("source")?,
        detail: row.text_opt("detail")?,
        created_at: row.time("created_at")?,
    })
}

/// A page of the list, by address.
pub(super) async fn list(
    c: &mut impl Conn,
    q: &SuppressionQuery,
) -> StoreResult<Vec<SuppressionRecord>> {
    let sql = format!(
        "SELECT {COLUMNS} FROM suppressions
         WHERE ($1 IS NULL OR email = $1) AND ($2 IS NULL OR email > $2)
         ORDER BY email LIMIT $3"
    );
    c.fetch_all(
        &sql,
        vec![
            opt_text(q.email.as_ref().map(Email::as_str)),
            opt_text(q.after.as_deref()),
            limit(q.limit),
        ],
    )
    .await?
    .iter()
    .map(record)
    .collect()
}

pub(super) async fn count(c: &mut impl Conn) -> StoreResult<u64> {
    let row = c
        .fetch_one("SELECT count(*) AS n FROM suppressions", vec![])
        .await?;
    Ok(row.int("n")?.max(0) as u64)
}

#[async_trait]
impl<T: SqlTx> SuppressionTx for T {
    async fn suppressed_among(&mut self, emails: &[Email]) -> StoreResult<Vec<SuppressionRecord>> {
        if emails.is_empty() {
            return Ok(Vec::new());
        }
        // The hold first, in its own statement: a Postgres statement reads
        // as of its start, so only a statement begun after the hold was
        // granted sees a suppression whose transaction the hold waited for.
        self.hold_addresses(emails, false).await?;
        // Then one read for the whole list (the primary key, per address).
        let list = super::emails(emails);
        let sql = format!(
            "SELECT {COLUMNS} FROM suppressions WHERE {}",
            self.one_of("email", "$1", &list)
        );
        self.fetch_all(&sql, vec![list])
            .await?
            .iter()
            .map(record)
            .collect()
    }

    async fn add_suppression(&mut self, s: &NewSuppression) -> StoreResult<bool> {
        self.hold_addresses(std::slice::from_ref(&s.email), true)
            .await?;
        let at = self.stamp();
        let n = self
            .execute(
                "INSERT INTO suppressions (email, reason, source, detail, created_at)
                 VALUES ($1, $2, $3, $4, coalesce($5, CURRENT_TIMESTAMP))
                 ON CONFLICT (email) DO NOTHING",
                vec![
                    text(s.email.as_str()),
                    text(s.reason.as_str()),
                    text(&s.source),
                    opt_text(s.detail.as_deref()),
                    Arg::Time(at),
                ],
            )
            .await?;
        Ok(n == 1)
    }

    async fn remove_suppression(&mut self, email: &Email) -> StoreResult<bool> {
        let n = self
            .execute(
                "DELETE FROM suppressions WHERE email = $1",
                vec![text(email.as_str())],
            )
            .await?;
        Ok(n == 1)
    }
}
