//! Delivery retries (R27): exponential backoff with full jitter, and when to
//! give up. `jitter` is a number in [0, 1) the caller draws, so the rule stays
//! a pure function.

use std::time::Duration;

use chrono::{DateTime, Utc};

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RetryPolicy {
    pub initial_backoff: Duration,
    pub max_backoff: Duration,
    pub give_up_after: Duration,
}

impl RetryPolicy {
    /// The wait after failed attempt number `attempt` (1-based): uniform in
    /// `[0, min(max, initial * 2^(attempt-1))]`, at least one second.
    pub fn backoff(&self, attempt: u32, jitter: f64) -> Duration {
        let exp = attempt.saturating_sub(1).min(32);
        let ceiling = self
            .initial_backoff
            .checked_mul(1u32 << exp.min(31))
            .unwrap_or(self.max_backoff)
            .min(self.max_backoff);
        ceiling
            .mul_f64(jitter.clamp(0.0, 1.0))
            .max(Duration::from_secs(1))
    }

    /// The moment a message queued at `queued_at` stops being retried: the
    /// retry window's end, or the invitation's expiry if that comes first.
    pub fn deadline(
        &self,
        queued_at: DateTime<Utc>,
        expires_at: Option<DateTime<Utc>>,
    ) -> DateTime<Utc> {
        let window_end = queued_at
            + chrono::Duration::from_std(self.give_up_after).unwrap_or(chrono::Duration::MAX);
        expires_at.map_or(window_end, |e| e.min(window_end))
    }

    /// Whether a transient failure at `now` is retried, and after how long.
    pub fn next_retry(
        &self,
        attempt: u32,
        jitter: f64,
        now: DateTime<Utc>,
        deadline: DateTime<Utc>,
    ) -> Option<Duration> {
        let wait = self.backoff(attempt, jitter);
        let at = now + chrono::Duration::from_std(wait).ok()?;
        (at < deadline).then_some(wait)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    fn policy() -> RetryPolicy {
        RetryPolicy {
            initial_backoff: Duration::from_secs(30),
            max_backoff: Duration::from_secs(3600),
            give_up_after: Duration::from_secs(5 * 86400),
        }
    }

    #[test]
    fn backoff_doubles_up_to_the_cap_and_jitters_below_it() {
        let p = policy();
        assert_eq!(p.backoff(1, 1.0), Duration::from_secs(30));
        assert_eq!(p.backoff(2, 1.0), Duration::from_secs(60));
        assert_eq!(p.backoff(3, 1.0), Duration::from_secs(120));
        assert_eq!(p.backoff(20, 1.0), Duration::from_secs(3600));
        assert_eq!(p.backoff(100, 1.0), Duration::from_secs(3600));
        assert_eq!(p.backoff(3, 0.5), Duration::from_secs(60));
        assert_eq!(p.backoff(3, 0.0), Duration::from_secs(1));
    }

    #[test]
    fn gives_up_at_the_window_or_the_expiry_whichever_comes_first() {
        let p = policy();
        let t0 = Utc.timestamp_opt(1_800_000_000, 0).unwrap();
        let expiry = t0 + chrono::Duration::days(2);
        assert_eq!(p.deadline(t0, Some(expiry)), expiry);
        assert_eq!(p.deadline(t0, None), t0 + chrono::Duration::days(5));
        assert!(p.next_retry(1, 1.0, t0, expiry).is_some());
        assert!(
            p.next_retry(1, 1.0, expiry - chrono::Duration::seconds(10), expiry)
                .is_none()
        );
    }
}
