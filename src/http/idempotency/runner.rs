//! The one idempotency protocol, for every way in: an `Idempotency-Key` on
//! an HTTP `POST` (scoped by the API key) and a NATS command's `Nats-Msg-Id`
//! (scope `nats`). Claim the key for the request's hash; a key already
//! answered replays its stored answer, a key bound to another request or
//! still running elsewhere is refused; otherwise run the request, then store
//! its answer, or release the key when there is no answer to keep (`5xx`:
//! nothing was done, or nothing is known to be done, so a retry may run).
//! What each refusal looks like on the wire is the caller's business.

use std::future::Future;
use std::sync::Arc;

use axum::body::Bytes;
use axum::http::{HeaderName, header};
use axum::response::Response;
use tracing::Instrument as _;

use crate::store::{IdempotencyClaim, Store, StoredResponse};

/// The headers a replay needs to mean the same as the first answer; others
/// (dates, tracing ids) describe the first exchange, not the result.
pub const STORED_HEADERS: [HeaderName; 3] =
    [header::CONTENT_TYPE, header::RETRY_AFTER, header::LOCATION];

/// A request bound to an idempotency key.
#[derive(Debug, Clone)]
pub struct Keyed {
    /// Whose keys these are: the API key's name, or `nats`.
    pub scope: String,
    pub key: String,
    /// What the key is bound to ([`super::request_hash`]).
    pub hash: Vec<u8>,
}

/// What became of a keyed request.
#[derive(Debug)]
pub enum Outcome {
    /// It ran now. A `5xx` released the key; any other answer is stored.
    Ran(axum::http::Response<Bytes>),
    /// It ran before: its first answer, unchanged.
    Replayed(StoredResponse),
    /// The key was used for a different request.
    Mismatch,
    /// The key's first request has not answered yet.
    InProgress,
    /// The store failed, or the request's task died: nothing is known to be
    /// done, and the key is free for a retry if it was claimed.
    Unavailable,
}

/// Runs `work` at most once per key (see the module documentation).
///
/// `work` runs in its own task, inside the current span: a caller that goes
/// away (a client hanging up, the NATS consumer stopping) must not cancel it
/// halfway, or the key would stay claimed with its result unknown. The task
/// finishes the change and records the answer either way.
pub async fn run_once<F>(store: Arc<dyn Store>, keyed: Keyed, work: F) -> Outcome
where
    F: Future<Output = Response> + Send + 'static,
{
    match store
        .claim_idempotency_key(&keyed.scope, &keyed.key, &keyed.hash)
        .await
    {
        Ok(IdempotencyClaim::New) => {}
        Ok(IdempotencyClaim::Replay(stored)) => return Outcome::Replayed(stored),
        Ok(IdempotencyClaim::Mismatch) => return Outcome::Mismatch,
        Ok(IdempotencyClaim::InProgress) => return Outcome::InProgress,
        Err(error) => {
            tracing::error!(%error, scope = %keyed.scope, "could not claim an idempotency key");
            return Outcome::Unavailable;
        }
    }
    let task = tokio::spawn(
        async move {
            let (parts, body) = work.await.into_parts();
            let body = match axum::body::to_bytes(body, usize::MAX).await {
                Ok(body) => body,
                Err(error) => {
                    tracing::error!(%error, "could not read an answer to store it");
                    release(&*store, &keyed).await;
                    return Outcome::Unavailable;
                }
            };
            let status = parts.status.as_u16();
            if status < 500 {
                let stored = StoredResponse {
                    status,
                    headers: STORED_HEADERS
                        .iter()
                        .filter_map(|name| {
                            let value = parts.headers.get(name)?.to_str().ok()?;
                            Some((name.as_str().to_string(), value.to_string()))
                        })
                        .collect(),
                    body: body.to_vec(),
                };
                // If this fails the change is done but unrecorded; the key
                // stays claimed (a retry is refused as in progress until it
                // is purged) rather than released, which would let a retry
                // do the change twice.
                if let Err(error) = store
                    .complete_idempotency_key(&keyed.scope, &keyed.key, &stored)
                    .await
                {
                    tracing::error!(%error, scope = %keyed.scope, "could not store the answer to an idempotent request");
                }
            } else {
                release(&*store, &keyed).await;
            }
            Outcome::Ran(axum::http::Response::from_parts(parts, body))
        }
        .instrument(tracing::Span::current()),
    );
    task.await.unwrap_or_else(|error| {
        tracing::error!(%error, "an idempotent request's task failed");
        Outcome::Unavailable
    })
}

async fn release(store: &dyn Store, keyed: &Keyed) {
    if let Err(error) = store
        .release_idempotency_key(&keyed.scope, &keyed.key)
        .await
    {
        tracing::error!(%error, scope = %keyed.scope, "could not release an idempotency key");
    }
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicUsize, Ordering};

    use axum::http::StatusCode;
    use axum::response::IntoResponse as _;
    use sqlx::PgPool;

    use super::*;
    use crate::store::postgres::PgStore;

    fn keyed(key: &str, hash: &[u8]) -> Keyed {
        Keyed {
            scope: "scope".into(),
            key: key.into(),
            hash: hash.to_vec(),
        }
    }

    /// Work that counts its runs and answers `status`.
    fn work(
        runs: &Arc<AtomicUsize>,
        status: StatusCode,
    ) -> impl Future<Output = Response> + Send + 'static {
        let runs = runs.clone();
        async move {
            runs.fetch_add(1, Ordering::SeqCst);
            (
                status,
                [(header::LOCATION, "/x"), (header::DATE, "today")],
                "body",
            )
                .into_response()
        }
    }

    #[sqlx::test(migrations = "./migrations")]
    async fn a_key_runs_once_replays_refuses_and_frees_failures(pool: PgPool) {
        let store: Arc<dyn Store> = Arc::new(PgStore::from_pool(pool));
        let runs = Arc::new(AtomicUsize::new(0));

        // Ran, and its answer stored with the headers that matter.
        let ran = run_once(
            store.clone(),
            keyed("k", b"h"),
            work(&runs, StatusCode::CREATED),
        )
        .await;
        let Outcome::Ran(response) = ran else {
            panic!("{ran:?}")
        };
        assert_eq!(
            (response.status(), &response.body()[..]),
            (StatusCode::CREATED, &b"body"[..])
        );
        let again = run_once(store.clone(), keyed("k", b"h"), work(&runs, StatusCode::OK)).await;
        let Outcome::Replayed(stored) = again else {
            panic!("{again:?}")
        };
        assert_eq!((stored.status, stored.body.as_slice()), (201, &b"body"[..]));
        assert_eq!(
            stored.headers,
            vec![
                (
                    "content-type".to_string(),
                    "text/plain; charset=utf-8".to_string()
                ),
                ("location".to_string(), "/x".to_string())
            ]
        );
        let other = run_once(
            store.clone(),
            keyed("k", b"other"),
            work(&runs, StatusCode::OK),
        )
        .await;
        assert!(matches!(other, Outcome::Mismatch), "{other:?}");
        assert_eq!(runs.load(Ordering::SeqCst), 1);

        // A 5xx is not an answer: the key is free and the retry runs.
        let failed = run_once(
            store.clone(),
            keyed("f", b"h"),
            work(&runs, StatusCode::BAD_GATEWAY),
        )
        .await;
        assert!(matches!(&failed, Outcome::Ran(r) if r.status() == StatusCode::BAD_GATEWAY));
        let retried = run_once(store.clone(), keyed("f", b"h"), work(&runs, StatusCode::OK)).await;
        assert!(matches!(&retried, Outcome::Ran(r) if r.status() == StatusCode::OK));
        assert_eq!(runs.load(Ordering::SeqCst), 3);

        // Claimed and not answered yet: in progress, and nothing runs.
        store
            .claim_idempotency_key("scope", "p", b"h")
            .await
            .unwrap();
        let busy = run_once(store.clone(), keyed("p", b"h"), work(&runs, StatusCode::OK)).await;
        assert!(matches!(busy, Outcome::InProgress), "{busy:?}");
        assert_eq!(runs.load(Ordering::SeqCst), 3);
    }

    #[sqlx::test(migrations = "./migrations")]
    async fn a_request_whose_task_dies_keeps_its_key_claimed(pool: PgPool) {
        let store: Arc<dyn Store> = Arc::new(PgStore::from_pool(pool));
        let died = run_once(store.clone(), keyed("d", b"h"), async { panic!("boom") }).await;
        assert!(matches!(died, Outcome::Unavailable), "{died:?}");
        // The key stays claimed: whether the change happened is unknown.
        let busy = run_once(store, keyed("d", b"h"), async {
            StatusCode::OK.into_response()
        })
        .await;
        assert!(matches!(busy, Outcome::InProgress), "{busy:?}");
    }
}
