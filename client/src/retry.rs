//! [`RetryPolicy`]: which failures of an idempotent call are tried again, and after how long.

use std::time::Duration;

use crate::{ApiError, Code};

/// Retries of idempotent calls (reads, and writes the contract makes idempotent: recording a
/// delivery, starting a job with a `request_id`): `UNAVAILABLE` with exponential backoff and
/// jitter (or the server's `RetryInfo` delay), and `RESOURCE_EXHAUSTED` only when the server
/// said how long to wait (`RetryInfo`) and that is at most [`Self::max_retry_delay`].
/// Calls that are not idempotent (creating a tenant, adding a domain, starting a grant,
/// cancelling) are never retried.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RetryPolicy {
    /// Attempts in all, the first included (1 = no retries).
    pub max_attempts: u32,
    /// The backoff before the first retry; it doubles for each next one.
    pub initial_backoff: Duration,
    /// The longest backoff.
    pub max_backoff: Duration,
    /// The longest `RetryInfo` delay honoured; a longer one is returned as the error.
    pub max_retry_delay: Duration,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        Self {
            max_attempts: 5,
            initial_backoff: Duration::from_millis(100),
            max_backoff: Duration::from_secs(5),
            max_retry_delay: Duration::from_secs(30),
        }
    }
}

impl RetryPolicy {
    /// Never retries.
    pub fn none() -> Self {
        Self {
            max_attempts: 1,
            ..Self::default()
        }
    }

    /// How long to wait before attempt `attempt + 1` after `err` ended attempt `attempt`
    /// (1-based), or `None` to give up.
    pub fn delay_after(&self, attempt: u32, err: &ApiError) -> Option<Duration> {
        if attempt >= self.max_attempts {
            return None;
        }
        match err.code() {
            // A RetryInfo longer than this policy waits returns the error, as documented.
            Code::Unavailable => match err.retry_delay() {
                Some(d) if d > self.max_retry_delay => None,
                Some(d) => Some(d),
                None => Some(self.backoff(attempt)),
            },
            Code::ResourceExhausted => err.retry_delay().filter(|d| *d <= self.max_retry_delay),
            _ => None,
        }
    }

    /// Exponential backoff with jitter (between half and all of the nominal delay).
    pub(crate) fn backoff(&self, attempt: u32) -> Duration {
        let exp = attempt.saturating_sub(1).min(16);
        let nominal = self
            .initial_backoff
            .saturating_mul(1 << exp)
            .min(self.max_backoff);
        nominal.mul_f64(rand::random_range(0.5..=1.0))
    }
}
