//! The SMTP circuit breaker: when the server cannot be reached, or refuses
//! the session itself (authentication, TLS, the sender), every email would
//! fail the same way. Instead of each email spending attempts on it, the
//! transport as a whole backs off: the dispatcher stops claiming mail while
//! the breaker is open, lets one email through per `smtp.probe_interval` as a
//! probe, and the first exchange that works closes it again.
//!
//! Emails held back are not attempted: they stay in the outbox untouched
//! (no attempt, no backoff of their own) and go out as soon as it closes.

use std::sync::Mutex;
use std::time::{Duration, Instant};

/// What the dispatcher may do now.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Admission {
    /// Closed: claim as much as the workers and the send rate allow.
    Send,
    /// Open, and a probe is due: claim one email. The next probe is due one
    /// interval later, whether or not this one reports back (a probe whose
    /// email turns out not to need SMTP must not stop the probing).
    Probe,
    /// Open: claim nothing before this instant.
    WaitUntil(Instant),
}

#[derive(Debug)]
pub struct Breaker {
    interval: Duration,
    /// `None` while closed; the next probe's instant while open.
    next_probe: Mutex<Option<Instant>>,
}

impl Breaker {
    pub fn new(interval: Duration) -> Breaker {
        Breaker {
            interval,
            next_probe: Mutex::new(None),
        }
    }

    fn state(&self) -> std::sync::MutexGuard<'_, Option<Instant>> {
        self.next_probe
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    pub fn interval(&self) -> Duration {
        self.interval
    }

    pub fn is_open(&self) -> bool {
        self.state().is_some()
    }

    pub fn admit(&self) -> Admission {
        let mut state = self.state();
        match *state {
            None => Admission::Send,
            Some(at) => {
                let now = Instant::now();
                if now >= at {
                    *state = Some(now + self.interval);
                    Admission::Probe
                } else {
                    Admission::WaitUntil(at)
                }
            }
        }
    }

    /// The email claimed as a probe did not reach the server: the next
    /// claim may probe at once.
    pub fn probe_unused(&self) {
        if let Some(next) = self.state().as_mut() {
            *next = Instant::now();
        }
    }

    /// An exchange reached the server and was answered about the message:
    /// the transport works. Returns true when this closed the breaker.
    pub fn succeeded(&self) -> bool {
        self.state().take().is_some()
    }

    /// The transport as a whole failed. Opens the breaker (or pushes its next
    /// probe one interval away); returns true when this opened it.
    pub fn failed(&self) -> bool {
        self.state()
            .replace(Instant::now() + self.interval)
            .is_none()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn opens_probes_once_per_interval_and_closes_on_success() {
        let breaker = Breaker::new(Duration::from_millis(50));
        assert_eq!(breaker.admit(), Admission::Send);
        assert!(breaker.failed(), "the first failure opens it");
        assert!(!breaker.failed(), "already open");
        assert!(matches!(breaker.admit(), Admission::WaitUntil(_)));
        std::thread::sleep(Duration::from_millis(60));
        assert_eq!(breaker.admit(), Admission::Probe);
        assert!(
            matches!(breaker.admit(), Admission::WaitUntil(_)),
            "one probe per interval"
        );
        assert!(breaker.succeeded(), "the first success closes it");
        assert!(!breaker.is_open());
        assert_eq!(breaker.admit(), Admission::Send);
        assert!(!breaker.succeeded());
    }
}
