//! Grant trees on SQLite: read with a recursive query, then deleted in the
//! same transaction (SQLite has no DELETE inside a WITH).

use uuid::Uuid;

use super::SqliteTx;
use crate::store::sql::{Arg, Conn as _, GRANT_COLUMNS, rows};
use crate::store::{GrantRecord, StoreResult};

/// The ids as a JSON list, for `json_each`.
fn id_list(ids: impl Iterator<Item = Uuid>) -> Arg {
    Arg::Json(ids.map(|id| id.hyphenated().to_string()).collect())
}

/// Deletes the grants with the given roots and all their descendants,
/// roots first (depth order), returning them.
pub(super) async fn delete_trees(
    tx: &mut SqliteTx,
    roots: &[Uuid],
) -> StoreResult<Vec<GrantRecord>> {
    if roots.is_empty() {
        return Ok(Vec::new());
    }
    let sql = format!(
        "WITH RECURSIVE tree (tid, depth) AS (
             SELECT id, 0 FROM profile_grants WHERE id IN (SELECT value FROM json_each($1))
             UNION ALL
             SELECT g.id, t.depth + 1 FROM profile_grants g JOIN tree t ON g.parent_grant_id = t.tid
         )
         SELECT {GRANT_COLUMNS} FROM profile_grants g JOIN tree ON tree.tid = g.id
         ORDER BY tree.depth, g.id"
    );
    let gone = tx
        .fetch_all(&sql, vec![id_list(roots.iter().copied())])
        .await?
        .iter()
        .map(rows::grant)
        .collect::<StoreResult<Vec<_>>>()?;
    tx.execute(
        "DELETE FROM profile_grants WHERE id IN (SELECT value FROM json_each($1))",
        vec![id_list(gone.iter().map(|g| g.id.0))],
    )
    .await?;
    Ok(gone)
}
