//! Idempotency keys of POST requests (HTTP's `Idempotency-Key`).

use super::{Arg, Conn, StoredRow, text};
use crate::store::{IdempotencyClaim, StoreResult, StoredResponse};

/// Reserves the key, or says what became of the first request with it. The
/// caller has forgotten the key already if it had expired.
pub(super) async fn claim(
    c: &mut impl Conn,
    api_key: &str,
    key: &str,
    request_hash: &[u8],
) -> StoreResult<IdempotencyClaim> {
    let at = c.stamp();
    let inserted = c
        .execute(
            "INSERT INTO idempotency_keys (api_key_name, key, request_hash, created_at)
             VALUES ($1, $2, $3, coalesce($4, CURRENT_TIMESTAMP))
             ON CONFLICT (api_key_name, key) DO NOTHING",
            vec![
                text(api_key),
                text(key),
                Arg::Bytes(request_hash.to_vec()),
                Arg::Time(at),
            ],
        )
        .await?;
    if inserted == 1 {
        return Ok(IdempotencyClaim::New);
    }
    let row = c
        .fetch_optional(
            "SELECT request_hash, status, headers, body FROM idempotency_keys
             WHERE api_key_name = $1 AND key = $2",
            vec![text(api_key), text(key)],
        )
        .await?;
    let Some(row) = row else {
        // Released between our insert and select: the caller may retry.
        return Ok(IdempotencyClaim::InProgress);
    };
    if row.bytes("request_hash")? != request_hash {
        return Ok(IdempotencyClaim::Mismatch);
    }
    replay(&row)
}

fn replay(row: &impl StoredRow) -> StoreResult<IdempotencyClaim> {
    let Some(status) = row.int_opt("status")? else {
        return Ok(IdempotencyClaim::InProgress);
    };
    let headers = row
        .json_opt("headers")?
        .and_then(|h| serde_json::from_value::<Vec<(String, String)>>(h).ok())
        .unwrap_or_default();
    Ok(IdempotencyClaim::Replay(StoredResponse {
        status: status as u16,
        headers,
        body: row.bytes_opt("body")?.unwrap_or_default(),
    }))
}

pub(super) async fn complete(
    c: &mut impl Conn,
    api_key: &str,
    key: &str,
    r: &StoredResponse,
) -> StoreResult<()> {
    c.execute(
        "UPDATE idempotency_keys SET status = $3, headers = $4, body = $5
         WHERE api_key_name = $1 AND key = $2",
        vec![
            text(api_key),
            text(key),
            super::int(i64::from(r.status)),
            Arg::Json(serde_json::to_value(&r.headers).unwrap_or_default()),
            Arg::Bytes(r.body.clone()),
        ],
    )
    .await?;
    Ok(())
}

pub(super) async fn release(c: &mut impl Conn, api_key: &str, key: &str) -> StoreResult<()> {
    c.execute(
        "DELETE FROM idempotency_keys WHERE api_key_name = $1 AND key = $2 AND status IS NULL",
        vec![text(api_key), text(key)],
    )
    .await?;
    Ok(())
}
