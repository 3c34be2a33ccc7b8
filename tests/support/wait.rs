//! The one way tests wait for a condition: poll it until it holds, with a
//! deadline, never a bare sleep for "long enough".

use std::future::Future;
use std::time::Duration;

/// Polls `probe` every 50 ms until it answers `Some`, and returns that;
/// fails the test naming `what` (and the last answer seen) after `timeout`.
pub async fn eventually<T, F, Fut>(timeout: Duration, what: &str, mut probe: F) -> T
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<T, String>>,
{
    let deadline = tokio::time::Instant::now() + timeout;
    loop {
        let last = match probe().await {
            Ok(found) => return found,
            Err(last) => last,
        };
        assert!(
            tokio::time::Instant::now() < deadline,
            "{what} did not happen within {timeout:?}; last seen: {last}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}
