//! The one way tests wait for a condition: poll it until it holds, with a
//! deadline, never a bare sleep for "long enough".

use std::future::Future;
use std::time::Duration;

/// How often [`eventually`] and [`eventually_blocking`] ask again.
const POLL: Duration = Duration::from_millis(50);

/// Polls `probe` every 50 ms until it answers `Ok`, and returns that;
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
        tokio::time::sleep(POLL).await;
    }
}

/// [`eventually`] for a condition read without I/O (what a test's own
/// receiver or sink has seen so far).
pub async fn until(timeout: Duration, what: &str, check: impl Fn() -> bool) {
    eventually(timeout, what, || async {
        if check() {
            Ok(())
        } else {
            Err("not yet".to_string())
        }
    })
    .await
}

/// [`eventually`] for code that runs outside an async runtime, or must not
/// give it control (a `OnceLock` initialiser, a `Drop`): the same polling,
/// deadline and failure, with a synchronous `probe`, blocking the thread
/// between answers.
pub fn eventually_blocking<T>(
    timeout: Duration,
    what: &str,
    mut probe: impl FnMut() -> Result<T, String>,
) -> T {
    let deadline = std::time::Instant::now() + timeout;
    loop {
        let last = match probe() {
            Ok(found) => return found,
            Err(last) => last,
        };
        assert!(
            std::time::Instant::now() < deadline,
            "{what} did not happen within {timeout:?}; last seen: {last}"
        );
        std::thread::sleep(POLL);
    }
}
