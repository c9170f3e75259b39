//! Graph's throttling: per app per mailbox concurrency and request window, the per-app global
//! rate, the per app per tenant directory budget (one unit per request), optional per-app
//! concurrency, and the `Retry-After` penalty.
//!
//! Every request counts against the windows, including the ones that get 429 ("usage keeps
//! counting while throttled"). A request of the same app to the same mailbox (or, for app-wide
//! limits, of the same app) before the last `Retry-After` elapsed is throttled again with the
//! same reason, and the penalty starts over.
//!
//! One short lock covers all counters; it is never held across an `.await`.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use parking_lot::Mutex;
use serde::Serialize;

use crate::settings::Limits;

/// Why a request was throttled.
#[derive(Clone, Copy, Debug, Serialize, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum ThrottleReason {
    /// More than `mailbox_concurrency` concurrent requests of one app to one mailbox.
    MailboxConcurrency,
    /// More than `mailbox_requests_per_window` requests of one app to one mailbox.
    MailboxWindow,
    /// More than `app_requests_per_window` requests of one app.
    AppRate,
    /// More than `app_concurrency` concurrent requests of one app.
    AppConcurrency,
    /// More than `directory_requests_per_window` directory reads of one app in one tenant.
    DirectoryRate,
    /// A 429 storm injected through the admin API.
    Storm,
    /// A random 429 injected by the fault settings.
    Injected,
}

impl ThrottleReason {
    /// Whether the limit is the app's own across every tenant and mailbox (Graph's global
    /// limit, `TooManyRequests`), rather than one mailbox's or one tenant's directory budget.
    pub fn is_app_wide(self) -> bool {
        matches!(
            self,
            ThrottleReason::AppRate | ThrottleReason::AppConcurrency
        )
    }

    /// Graph's `error.code`.
    pub fn code(self) -> &'static str {
        match self {
            ThrottleReason::MailboxConcurrency | ThrottleReason::MailboxWindow => {
                "ApplicationThrottled"
            }
            ThrottleReason::AppRate | ThrottleReason::AppConcurrency => "TooManyRequests",
            ThrottleReason::DirectoryRate => "Request_ThrottledTemporarily",
            ThrottleReason::Storm | ThrottleReason::Injected => "ApplicationThrottled",
        }
    }

    /// Graph's `error.message`.
    pub fn message(self) -> &'static str {
        match self {
            ThrottleReason::MailboxConcurrency => {
                "Application is over its MailboxConcurrency limit."
            }
            ThrottleReason::MailboxWindow => "Application is over its MailboxRequests limit.",
            // Microsoft's documented answer for the app's global limit ("Microsoft Graph
            // throttling guidance", sample response).
            ThrottleReason::AppRate | ThrottleReason::AppConcurrency => "Please retry again later.",
            ThrottleReason::DirectoryRate => "The request has been throttled temporarily.",
            ThrottleReason::Storm | ThrottleReason::Injected => {
                "Application is over its MailboxConcurrency limit."
            }
        }
    }
}

/// What a request addresses, for the limits that apply to it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Target<'a> {
    /// Only the app-wide limits (tenant metadata, `$batch` envelopes).
    App,
    /// A mailbox, by primary address: the per-mailbox limits too.
    Mailbox(&'a str),
    /// Directory reads in a tenant: the per-tenant directory budget too.
    Directory(&'a str),
}

impl<'a> Target<'a> {
    fn mailbox(self) -> Option<&'a str> {
        match self {
            Target::Mailbox(mailbox) => Some(mailbox),
            _ => None,
        }
    }
}

/// The counter of `key` under `app`, created on first use (no allocation once it exists).
fn scoped<'c>(
    map: &'c mut HashMap<String, HashMap<String, Counter>>,
    app: &str,
    key: &str,
    now: Instant,
) -> Option<&'c mut Counter> {
    if !map.contains_key(app) {
        map.insert(app.to_owned(), HashMap::new());
    }
    let per_app = map.get_mut(app)?;
    if !per_app.contains_key(key) {
        per_app.insert(key.to_owned(), Counter::new(now));
    }
    per_app.get_mut(key)
}

/// A refused admission.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Throttled {
    pub reason: ThrottleReason,
    pub retry_after_secs: u64,
}

#[derive(Debug)]
struct Counter {
    in_flight: usize,
    window_start: Instant,
    count: u64,
    blocked: Option<(Instant, ThrottleReason)>,
}

impl Counter {
    fn new(now: Instant) -> Self {
        Self {
            in_flight: 0,
            window_start: now,
            count: 0,
            blocked: None,
        }
    }

    /// Counts one request in the current fixed window.
    fn count(&mut self, now: Instant, window: Duration) -> u64 {
        if now.duration_since(self.window_start) >= window {
            self.window_start = now;
            self.count = 0;
        }
        self.count += 1;
        self.count
    }

    fn blocked_reason(&self, now: Instant) -> Option<ThrottleReason> {
        self.blocked
            .and_then(|(until, reason)| (now < until).then_some(reason))
    }
}

#[derive(Debug, Default, Clone, Copy)]
struct Peak {
    current: usize,
    peak: usize,
}

#[derive(Debug, Default)]
struct Counters {
    apps: HashMap<String, Counter>,
    /// app → mailbox → counter.
    mailboxes: HashMap<String, HashMap<String, Counter>>,
    /// app → tenant → directory-read counter.
    directory: HashMap<String, HashMap<String, Counter>>,
    /// mailbox → concurrent requests seen (all apps, admitted or not).
    peaks: HashMap<String, Peak>,
}

/// All throttling state.
#[derive(Debug, Default)]
pub struct Throttle {
    counters: Mutex<Counters>,
}

/// Held while an admitted request runs; releases its concurrency on drop.
#[derive(Debug)]
pub struct Admission {
    throttle: Arc<Throttle>,
    app: String,
    mailbox: Option<String>,
}

impl Drop for Admission {
    fn drop(&mut self) {
        let mut counters = self.throttle.counters.lock();
        if let Some(app) = counters.apps.get_mut(&self.app) {
            app.in_flight = app.in_flight.saturating_sub(1);
        }
        if let Some(mailbox) = &self.mailbox {
            if let Some(counter) = counters
                .mailboxes
                .get_mut(&self.app)
                .and_then(|m| m.get_mut(mailbox))
            {
                counter.in_flight = counter.in_flight.saturating_sub(1);
            }
            if let Some(peak) = counters.peaks.get_mut(mailbox) {
                peak.current = peak.current.saturating_sub(1);
            }
        }
    }
}

impl Throttle {
    /// Admits one request of `app` to `target` or says why not.
    pub fn admit(
        self: &Arc<Self>,
        limits: &Limits,
        app: &str,
        target: Target<'_>,
        now: Instant,
    ) -> Result<Admission, Throttled> {
        let mailbox = target.mailbox();
        let mut guard = self.counters.lock();
        let counters = &mut *guard;
        if let Some(mailbox) = mailbox {
            let peak = counters.peaks.entry(mailbox.to_owned()).or_default();
            peak.current += 1;
            peak.peak = peak.peak.max(peak.current);
        }
        if !counters.apps.contains_key(app) {
            counters.apps.insert(app.to_owned(), Counter::new(now));
        }
        let verdict = if limits.enabled {
            Self::judge(counters, limits, app, target, now)
        } else {
            Ok(())
        };
        match verdict {
            Ok(()) => {
                if let Some(counter) = counters.apps.get_mut(app) {
                    counter.in_flight += 1;
                }
                if let Some(counter) =
                    mailbox.and_then(|m| counters.mailboxes.get_mut(app).and_then(|c| c.get_mut(m)))
                {
                    counter.in_flight += 1;
                }
                Ok(Admission {
                    throttle: Arc::clone(self),
                    app: app.to_owned(),
                    mailbox: mailbox.map(str::to_owned),
                })
            }
            Err(reason) => {
                if let Some(peak) = mailbox.and_then(|m| counters.peaks.get_mut(m)) {
                    peak.current = peak.current.saturating_sub(1);
                }
                let retry_after = Duration::from_secs(limits.retry_after_secs);
                if !retry_after.is_zero() {
                    let until = Some((crate::faults::later(now, retry_after), reason));
                    let app_wide = reason.is_app_wide();
                    let counter = match target {
                        _ if app_wide => counters.apps.get_mut(app),
                        Target::Mailbox(m) => {
                            counters.mailboxes.get_mut(app).and_then(|c| c.get_mut(m))
                        }
                        Target::Directory(t) => {
                            counters.directory.get_mut(app).and_then(|c| c.get_mut(t))
                        }
                        Target::App => None,
                    };
                    if let Some(counter) = counter {
                        counter.blocked = until;
                    }
                }
                Err(Throttled {
                    reason,
                    retry_after_secs: limits.retry_after_secs,
                })
            }
        }
    }

    fn judge(
        counters: &mut Counters,
        limits: &Limits,
        app: &str,
        target: Target<'_>,
        now: Instant,
    ) -> Result<(), ThrottleReason> {
        let app_counter = counters.apps.get_mut(app).ok_or(ThrottleReason::AppRate)?;
        let app_count = app_counter.count(now, Duration::from_millis(limits.app_window_ms));
        let app_blocked = app_counter.blocked_reason(now);
        let app_in_flight = app_counter.in_flight;
        let mailbox_state = target
            .mailbox()
            .and_then(|mailbox| scoped(&mut counters.mailboxes, app, mailbox, now))
            .map(|counter| {
                let count = counter.count(now, Duration::from_millis(limits.mailbox_window_ms));
                (count, counter.blocked_reason(now), counter.in_flight)
            });
        let directory_state = match target {
            Target::Directory(tenant) => {
                scoped(&mut counters.directory, app, tenant, now).map(|counter| {
                    let count =
                        counter.count(now, Duration::from_millis(limits.directory_window_ms));
                    (count, counter.blocked_reason(now))
                })
            }
            _ => None,
        };
        if let Some(reason) = app_blocked {
            return Err(reason);
        }
        if let Some((_, Some(reason), _)) = mailbox_state {
            return Err(reason);
        }
        if let Some((_, Some(reason))) = directory_state {
            return Err(reason);
        }
        if app_count > limits.app_requests_per_window {
            return Err(ThrottleReason::AppRate);
        }
        if let Some((count, _)) = directory_state
            && count > limits.directory_requests_per_window
        {
            return Err(ThrottleReason::DirectoryRate);
        }
        if let Some((count, _, _)) = mailbox_state
            && count > limits.mailbox_requests_per_window
        {
            return Err(ThrottleReason::MailboxWindow);
        }
        if limits
            .app_concurrency
            .is_some_and(|limit| app_in_flight >= limit)
        {
            return Err(ThrottleReason::AppConcurrency);
        }
        if let Some((_, _, in_flight)) = mailbox_state
            && in_flight >= limits.mailbox_concurrency
        {
            return Err(ThrottleReason::MailboxConcurrency);
        }
        Ok(())
    }

    /// Most concurrent requests seen per mailbox (admitted or throttled, all apps).
    pub fn peak_concurrency(&self) -> HashMap<String, usize> {
        self.counters
            .lock()
            .peaks
            .iter()
            .map(|(k, v)| (k.clone(), v.peak))
            .collect()
    }

    pub fn clear(&self) {
        *self.counters.lock() = Counters::default();
    }
}
