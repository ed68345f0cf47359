//! Bounded retries with exponential backoff and jitter. Only what is safe
//! to repeat is retried: a refused connection (the request never reached
//! the server) and `503`/`429` answers (the server refused the request and
//! wrote nothing — a rejected batch writes nothing). A timeout is not
//! retried for writes: the server may have applied them.

use std::time::Duration;

#[derive(Debug, Clone, PartialEq)]
pub struct RetryPolicy {
    /// Retries after the first attempt (0: none).
    pub max_retries: u32,
    /// The wait before the first retry; doubled each time.
    pub initial_backoff: Duration,
    /// No wait is longer than this.
    pub max_backoff: Duration,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        RetryPolicy {
            max_retries: 3,
            initial_backoff: Duration::from_millis(100),
            max_backoff: Duration::from_secs(5),
        }
    }
}

impl RetryPolicy {
    pub fn none() -> Self {
        RetryPolicy {
            max_retries: 0,
            ..RetryPolicy::default()
        }
    }

    /// The wait before retry `attempt` (0-based): the capped exponential
    /// backoff, half of it fixed and half random ("equal jitter"), or the
    /// server's `Retry-After` when it gave one (capped too).
    pub fn backoff(&self, attempt: u32, retry_after: Option<Duration>) -> Duration {
        if let Some(after) = retry_after {
            return after.min(self.max_backoff);
        }
        let exponential = self
            .initial_backoff
            .saturating_mul(2u32.saturating_pow(attempt))
            .min(self.max_backoff);
        let half = exponential / 2;
        half + half.mul_f64(rand::random::<f64>())
    }
}

/// Statuses that mean "refused, nothing done, try later".
pub fn retryable_status(status: u16) -> bool {
    status == 503 || status == 429
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_doubles_within_jitter_and_is_capped() {
        let p = RetryPolicy {
            max_retries: 5,
            initial_backoff: Duration::from_millis(100),
            max_backoff: Duration::from_millis(1000),
        };
        for attempt in 0..6 {
            let full = (100u64 << attempt).min(1000);
            let wait = p.backoff(attempt, None).as_millis() as u64;
            assert!(
                (full / 2..=full).contains(&wait),
                "attempt {attempt}: {wait} ms"
            );
        }
        assert_eq!(
            p.backoff(0, Some(Duration::from_secs(30))),
            Duration::from_millis(1000)
        );
        assert!(retryable_status(503) && retryable_status(429));
        assert!(!retryable_status(500) && !retryable_status(400));
    }
}
