//! Grant trees on Postgres: deleted with one recursive statement, so a
//! removal and every grant derived from it go together.

use uuid::Uuid;

use super::PgTx;
use super::conn::Bounded as _;
use crate::store::sql::{GRANT_COLUMNS, rows};
use crate::store::{GrantRecord, StoreResult};

/// Deletes the grants with the given roots and all their descendants,
/// roots first (depth order), returning them.
pub(super) async fn delete_trees(tx: &mut PgTx, roots: &[Uuid]) -> StoreResult<Vec<GrantRecord>> {
    if roots.is_empty() {
        return Ok(Vec::new());
    }
    let sql = format!(
        "WITH RECURSIVE tree (id, depth) AS (
             SELECT id, 0 FROM profile_grants WHERE id = ANY($1)
             UNION ALL
             SELECT g.id, t.depth + 1 FROM profile_grants g JOIN tree t ON g.parent_grant_id = t.id
         ),
         gone AS (
             DELETE FROM profile_grants WHERE id IN (SELECT id FROM tree)
             RETURNING {GRANT_COLUMNS}
         )
         SELECT gone.* FROM gone JOIN tree ON tree.id = gone.id ORDER BY tree.depth, gone.id"
    );
    let rows = sqlx::query(sqlx::AssertSqlSafe(sql))
        .bind(roots)
        .fetch_all(&mut *tx.tx)
        .bounded()
        .await?;
    rows.iter().map(rows::grant).collect()
}
