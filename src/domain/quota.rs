//! The invitation quota (R8, R33), the resend cooldown (R14) and the seat limit
//! (R9), as functions of what the store counted and the database's "now".

use std::time::Duration;

use chrono::{DateTime, Utc};

use super::DomainError;

/// How many new invitations a business may create in a rolling window.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct QuotaPolicy {
    pub limit: u32,
    pub window: Duration,
}

/// What R33 shows before trying.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct QuotaStatus {
    pub limit: u32,
    pub window_seconds: u64,
    pub used: u32,
    pub remaining: u32,
    /// When the oldest invitation in the window leaves it, if any is in it.
    pub next_slot_at: Option<DateTime<Utc>>,
}

impl QuotaPolicy {
    fn window(&self) -> chrono::Duration {
        chrono::Duration::from_std(self.window).unwrap_or(chrono::Duration::MAX)
    }

    /// The start of the window that ends at `now`.
    pub fn window_start(&self, now: DateTime<Utc>) -> DateTime<Utc> {
        now.checked_sub_signed(self.window())
            .unwrap_or(DateTime::<Utc>::MIN_UTC)
    }

    /// `recent` holds the creation times inside the window, oldest first.
    pub fn status(&self, recent: &[DateTime<Utc>]) -> QuotaStatus {
        let used = recent.len() as u32;
        QuotaStatus {
            limit: self.limit,
            window_seconds: self.window.as_secs(),
            used,
            remaining: self.limit.saturating_sub(used),
            next_slot_at: recent.first().map(|t| *t + self.window()),
        }
    }

    /// R8: may `requested` more invitations be created now? If not, the wait is
    /// the time until enough of the oldest ones leave the window.
    pub fn check(
        &self,
        recent: &[DateTime<Utc>],
        requested: u32,
        now: DateTime<Utc>,
    ) -> Result<(), DomainError> {
        let used = recent.len() as u32;
        if used + requested <= self.limit {
            return Ok(());
        }
        let retry_after = if requested > self.limit {
            // Can never fit; the honest wait is a whole window.
            self.window
        } else {
            // The (used + requested - limit)-th oldest must leave the window.
            let must_leave = (used + requested - self.limit) as usize;
            let frees_at = recent[must_leave - 1] + self.window();
            (frees_at - now)
                .to_std()
                .unwrap_or(Duration::ZERO)
                .max(Duration::from_secs(1))
        };
        Err(DomainError::RateLimited {
            retry_after,
            detail: format!(
                "at most {} invitations per {} s; {used} used, {requested} requested",
                self.limit,
                self.window.as_secs()
            ),
        })
    }
}

/// R14: a resend waits `cooldown` after the last send of the same invitation.
pub fn check_resend_cooldown(
    last_sent: Option<DateTime<Utc>>,
    cooldown: Duration,
    now: DateTime<Utc>,
) -> Result<(), DomainError> {
    let Some(last) = last_sent else { return Ok(()) };
    let ready_at = last + chrono::Duration::from_std(cooldown).unwrap_or(chrono::Duration::MAX);
    if now >= ready_at {
        return Ok(());
    }
    let wait = (ready_at - now).to_std().unwrap_or(Duration::ZERO);
    Err(DomainError::RateLimited {
        retry_after: wait.max(Duration::from_secs(1)),
        detail: format!(
            "this invitation was sent less than {} s ago",
            cooldown.as_secs()
        ),
    })
}

/// R9: members plus pending member invitations never exceed the seat limit.
pub fn check_seats(
    seat_limit: Option<u32>,
    members: u32,
    pending: u32,
    requested: u32,
) -> Result<(), DomainError> {
    match seat_limit {
        Some(limit) if members + pending + requested > limit => {
            Err(DomainError::SeatsExhausted(format!(
                "{members} members and {pending} pending invitations of {limit} seats; {requested} more requested"
            )))
        }
        _ => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    fn t(secs: i64) -> DateTime<Utc> {
        Utc.timestamp_opt(1_800_000_000 + secs, 0).unwrap()
    }

    const DAY: u64 = 24 * 3600;

    fn policy() -> QuotaPolicy {
        QuotaPolicy {
            limit: 5,
            window: Duration::from_secs(DAY),
        }
    }

    #[test]
    fn five_fit_and_the_sixth_waits_for_the_oldest() {
        let p = policy();
        let now = t(1000);
        let four: Vec<_> = (0..4).map(|i| t(i * 100)).collect();
        assert!(p.check(&four, 1, now).is_ok());
        let five: Vec<_> = (0..5).map(|i| t(i * 100)).collect();
        match p.check(&five, 1, now) {
            Err(DomainError::RateLimited { retry_after, .. }) => {
                assert_eq!(retry_after, Duration::from_secs(DAY - 1000));
            }
            other => panic!("expected rate limited, got {other:?}"),
        }
    }

    #[test]
    fn a_batch_is_refused_whole_and_waits_for_enough_slots() {
        let p = policy();
        let now = t(1000);
        let three: Vec<_> = (0..3).map(|i| t(i * 100)).collect();
        assert!(p.check(&three, 2, now).is_ok());
        // 3 used + 4 requested: two must leave, the second oldest at t(100).
        match p.check(&three, 4, now) {
            Err(DomainError::RateLimited { retry_after, .. }) => {
                assert_eq!(retry_after, Duration::from_secs(DAY + 100 - 1000));
            }
            other => panic!("expected rate limited, got {other:?}"),
        }
        assert!(p.check(&[], 6, now).is_err());
    }

    #[test]
    fn status_reports_remaining_and_next_slot() {
        let p = policy();
        let s = p.status(&[t(10), t(20)]);
        assert_eq!((s.used, s.remaining), (2, 3));
        assert_eq!(
            s.next_slot_at,
            Some(t(10) + chrono::Duration::seconds(DAY as i64))
        );
        assert_eq!(p.status(&[]).next_slot_at, None);
    }

    #[test]
    fn resend_cooldown() {
        let cd = Duration::from_secs(600);
        assert!(check_resend_cooldown(None, cd, t(0)).is_ok());
        assert!(check_resend_cooldown(Some(t(0)), cd, t(600)).is_ok());
        assert!(matches!(
            check_resend_cooldown(Some(t(0)), cd, t(599)),
            Err(DomainError::RateLimited { .. })
        ));
    }

    #[test]
    fn seats() {
        assert!(check_seats(None, 100, 100, 100).is_ok());
        assert!(check_seats(Some(3), 1, 1, 1).is_ok());
        assert!(matches!(
            check_seats(Some(3), 1, 1, 2),
            Err(DomainError::SeatsExhausted(_))
        ));
        assert!(matches!(
            check_seats(Some(3), 3, 0, 1),
            Err(DomainError::SeatsExhausted(_))
        ));
    }
}
