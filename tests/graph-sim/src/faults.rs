//! Injected latency and faults, drawn from one seeded random generator so a test that sets a
//! seed sees the same sequence of draws.

use std::time::{Duration, Instant};

use parking_lot::Mutex;
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

use crate::record::Fault;
use crate::settings::{FaultSettings, Latency};

/// `now + duration`, capped instead of overflowing (settings may hold absurd values).
pub fn later(now: Instant, duration: Duration) -> Instant {
    now.checked_add(duration)
        .or_else(|| now.checked_add(Duration::from_secs(u64::from(u32::MAX))))
        .unwrap_or(now)
}

/// What to do to one request.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct FaultPlan {
    /// Answer with this fault instead of serving the request.
    pub fault: Option<Fault>,
    /// Send the answer slowly.
    pub slow_body: bool,
}

/// Random draws and the current 429 storm.
#[derive(Debug)]
pub struct Chaos {
    rng: Mutex<StdRng>,
    storm_until: Mutex<Option<Instant>>,
    /// Mailboxes (lower-case mail) throttled until when, with the `Retry-After` each 429 names.
    mailbox_throttles: Mutex<std::collections::HashMap<String, (Instant, u64)>>,
}

impl Chaos {
    pub fn new(seed: Option<u64>) -> Self {
        let rng = match seed {
            Some(seed) => StdRng::seed_from_u64(seed),
            None => StdRng::from_os_rng(),
        };
        Self {
            rng: Mutex::new(rng),
            storm_until: Mutex::new(None),
            mailbox_throttles: Mutex::default(),
        }
    }

    pub fn reseed(&self, seed: Option<u64>) {
        *self.rng.lock() = match seed {
            Some(seed) => StdRng::seed_from_u64(seed),
            None => StdRng::from_os_rng(),
        };
        *self.storm_until.lock() = None;
        self.mailbox_throttles.lock().clear();
    }

    /// Runs `f` with the generator (short; never across an `.await`).
    pub fn with_rng<T>(&self, f: impl FnOnce(&mut StdRng) -> T) -> T {
        f(&mut self.rng.lock())
    }

    /// The delay to inject for `latency`.
    pub fn delay(&self, latency: Latency) -> Duration {
        let jitter = if latency.jitter_ms > 0 {
            self.with_rng(|rng| rng.random_range(0..=latency.jitter_ms))
        } else {
            0
        };
        Duration::from_millis(latency.fixed_ms.saturating_add(jitter))
    }

    /// Draws the faults for one request.
    pub fn plan(&self, faults: &FaultSettings) -> FaultPlan {
        if faults.is_off() {
            return FaultPlan::default();
        }
        let (draw, slow_draw) = self.with_rng(|rng| (rng.random::<f64>(), rng.random::<f64>()));
        let table = [
            (faults.drop_connection, Fault::DropConnection),
            (faults.error_500, Fault::Error500),
            (faults.error_502, Fault::Error502),
            (faults.error_503, Fault::Error503),
            (faults.error_504, Fault::Error504),
            (faults.throttle_429, Fault::Throttle429),
        ];
        let mut threshold = 0.0;
        let mut fault = None;
        for (rate, kind) in table {
            threshold += rate.max(0.0);
            if draw < threshold {
                fault = Some(kind);
                break;
            }
        }
        FaultPlan {
            fault,
            slow_body: fault.is_none() && slow_draw < faults.slow_body,
        }
    }

    /// Every Graph request gets 429 until `now + duration`.
    pub fn start_storm(&self, now: Instant, duration: Duration) {
        *self.storm_until.lock() = Some(later(now, duration));
    }

    pub fn stop_storm(&self) {
        *self.storm_until.lock() = None;
    }

    pub fn storm_active(&self, now: Instant) -> bool {
        self.storm_until.lock().is_some_and(|until| now < until)
    }

    /// Every request to `mailbox` gets 429 with `Retry-After: retry_after_secs` until
    /// `now + duration`.
    pub fn throttle_mailbox(
        &self,
        mailbox: &str,
        now: Instant,
        duration: Duration,
        retry_after_secs: u64,
    ) {
        self.mailbox_throttles.lock().insert(
            mailbox.to_ascii_lowercase(),
            (later(now, duration), retry_after_secs),
        );
    }

    /// The `Retry-After` of a throttle on `mailbox` still running at `now`.
    pub fn mailbox_throttled(&self, mailbox: &str, now: Instant) -> Option<u64> {
        let mut throttles = self.mailbox_throttles.lock();
        match throttles.get(mailbox) {
            Some((until, after)) if now < *until => Some(*after),
            Some(_) => {
                throttles.remove(mailbox);
                None
            }
            None => None,
        }
    }
}
