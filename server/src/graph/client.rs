//! Authenticated Graph calls: the app token of the tenant, at most four requests in flight
//! per mailbox, `Retry-After` always honoured, bounded exponential backoff with jitter for
//! 5xx answers and broken connections, one token refresh when Graph rejects a token.

use std::{
    collections::HashMap,
    sync::{Arc, Mutex},
    time::Duration,
};

use rand::Rng as _;
use reqwest::Method;
use serde::{Deserialize, de::DeserializeOwned};
use tokio::sync::{OwnedSemaphorePermit, Semaphore};

use tracing::Instrument as _;

use super::{AppTokens, GraphError, GraphSettings};
use crate::{domain::MicrosoftTenantId, telemetry::metrics};

/// A domain of a Microsoft 365 tenant (`GET /domains`).
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct GraphDomain {
    /// The fully qualified name.
    pub id: String,
    /// Whether the tenant proved it owns the domain.
    #[serde(default)]
    pub is_verified: bool,
    /// What the domain is set up for; mail needs `Email`.
    #[serde(default)]
    pub supported_services: Vec<String>,
}

/// How failed requests are retried.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RetryPolicy {
    /// Attempts per request, the first included; then the last error stands.
    pub max_attempts: u32,
    /// The first backoff after a 5xx or a broken connection; doubles each time.
    pub base_backoff: Duration,
    /// The longest backoff.
    pub max_backoff: Duration,
    /// The longest `Retry-After` waited for; Microsoft asking for more fails the request
    /// (its error stands, with the wait asked for) instead of holding a mailbox for hours.
    pub max_retry_after: Duration,
}

impl RetryPolicy {
    /// The one retry rule for answers from Microsoft (Graph and the token endpoint alike):
    /// how long to wait before attempt `attempt + 1`, or `None` when `error` is final or the
    /// attempts are used up. Throttling (429, and 503 with `Retry-After`) waits what
    /// Microsoft asked plus a little (up to `max_retry_after`); other 5xx answers and broken
    /// connections back off exponentially.
    pub fn wait(&self, error: &GraphError, attempt: u32) -> Option<Duration> {
        if attempt >= self.max_attempts {
            return None;
        }
        match error {
            GraphError::Api {
                status: 429 | 503,
                retry_after: Some(after),
                ..
            } => (*after <= self.max_retry_after).then(|| after.saturating_add(jitter(*after))),
            GraphError::Api {
                status: 429 | 500 | 502 | 503 | 504,
                ..
            }
            | GraphError::Transport(_) => Some(self.backoff(attempt)),
            _ => None,
        }
    }

    /// Exponential backoff with jitter: between half and all of `base · 2^(attempt-1)`, capped.
    fn backoff(&self, attempt: u32) -> Duration {
        let exp = self
            .base_backoff
            .saturating_mul(1u32 << attempt.saturating_sub(1).min(16))
            .min(self.max_backoff);
        let half = exp / 2;
        half + Duration::from_millis(
            rand::rng().random_range(0..=u64::try_from(half.as_millis()).unwrap_or(u64::MAX)),
        )
    }
}

impl Default for RetryPolicy {
    fn default() -> Self {
        Self {
            max_attempts: 6,
            base_backoff: Duration::from_millis(500),
            max_backoff: Duration::from_secs(30),
            max_retry_after: Duration::from_secs(300),
        }
    }
}

/// Most pages of one collection followed (at Graph's default of 10 a page, 10,000 items).
pub const MAX_PAGES: usize = 1_000;

/// The largest Graph answer read (a page of 1,000 messages with every field is far less).
pub const MAX_ANSWER_BYTES: usize = 16 * 1024 * 1024;

/// Reads an answer's JSON body (`what` names it in the error), within [`MAX_ANSWER_BYTES`].
pub(crate) async fn read_json<T: DeserializeOwned>(
    response: reqwest::Response,
    what: &str,
) -> Result<T, GraphError> {
    let body = bounded_body(response).await?;
    serde_json::from_slice(&body)
        .map_err(|e| GraphError::Transport(format!("unreadable {what}: {e}")))
}

/// Reads an answer's body, refusing one larger than [`MAX_ANSWER_BYTES`].
pub(crate) async fn bounded_body(mut response: reqwest::Response) -> Result<Vec<u8>, GraphError> {
    let too_large = || {
        GraphError::Transport(format!(
            "Graph's answer exceeds {MAX_ANSWER_BYTES} bytes; not read"
        ))
    };
    if response
        .content_length()
        .is_some_and(|n| n > MAX_ANSWER_BYTES as u64)
    {
        return Err(too_large());
    }
    let mut body = Vec::new();
    while let Some(chunk) = response
        .chunk()
        .await
        .map_err(|e| GraphError::Transport(format!("unreadable Graph answer: {e}")))?
    {
        if body.len() + chunk.len() > MAX_ANSWER_BYTES {
            return Err(too_large());
        }
        body.extend_from_slice(&chunk);
    }
    Ok(body)
}

/// Graph allows an app four concurrent requests per mailbox ("MailboxConcurrency").
pub const REQUESTS_PER_MAILBOX: usize = 4;

#[derive(Deserialize)]
struct Page<T> {
    value: Vec<T>,
    #[serde(rename = "@odata.nextLink")]
    next_link: Option<String>,
}

/// Graph v1.0 with app tokens.
#[derive(Clone)]
pub struct GraphClient {
    pub(super) base: String,
    /// `base` parsed (`None` if it is not a URL: then no `@odata.nextLink` is followed).
    base_url: Option<reqwest::Url>,
    http: reqwest::Client,
    tokens: Arc<AppTokens>,
    retry: RetryPolicy,
    mailboxes: Arc<Mutex<MailboxGates>>,
    pace: Arc<Pace>,
}

/// Spaces this replica's requests to stay under Graph's global limit for an app (130,000
/// requests per 10 seconds, across all tenants), and backs off when Graph says the app is over
/// it anyway (other replicas share the app's budget): AIMD on the request rate.
///
/// Each request takes the next free instant, `1 / rate` after the one before, with up to
/// [`PACE_BURST`] of them at once after a pause. An app-wide 429 (`TooManyRequests`) holds
/// every request until its `Retry-After` has passed and halves the rate (once per throttling
/// episode: a 429 to a request sent before the last decrease is part of it); every request
/// that succeeds wins a little back, additively, up to the configured ceiling and never above.
struct Pace {
    /// The configured rate, requests per second: what is never exceeded and what successes
    /// win back. `None`: unpaced (only an app-wide `Retry-After` holds requests).
    ceiling: Option<f64>,
    state: Mutex<PaceState>,
}

struct PaceState {
    /// Requests per second now, at most the ceiling.
    rate: f64,
    /// The next free instant.
    next: tokio::time::Instant,
    /// Until when Graph throttles the whole app (the longest app-wide `Retry-After` seen).
    hold: Option<tokio::time::Instant>,
    /// When the rate was last halved.
    decreased: Option<tokio::time::Instant>,
}

/// How far requests may run ahead of the steady rate after a quiet spell.
const PACE_BURST: Duration = Duration::from_millis(100);

/// Sustained success wins back the ceiling's rate over this long (from half of it, half as
/// long): each request that succeeds adds `ceiling / (span · rate)`, so the rate grows by the
/// same amount every second whatever it is (additive increase).
const PACE_RECOVERY: Duration = Duration::from_secs(10);

/// The lowest rate an app-wide throttle halves the pace to, requests per second.
const PACE_FLOOR: f64 = 1.0;

/// The longest a request waits for its turn, whatever the configured rate.
const PACE_LONGEST_INTERVAL: Duration = Duration::from_secs(3600);

impl Pace {
    /// A pace of `per_second` at most; `0` (or anything not a positive number) for none.
    fn new(per_second: f64) -> Self {
        let ceiling = (per_second > 0.0 && per_second.is_finite()).then_some(per_second);
        Self {
            ceiling,
            state: Mutex::new(PaceState {
                rate: ceiling.unwrap_or(0.0),
                next: tokio::time::Instant::now(),
                hold: None,
                decreased: None,
            }),
        }
    }

    fn state(&self) -> std::sync::MutexGuard<'_, PaceState> {
        self.state
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Requests per second now (`None` when unpaced).
    #[cfg(test)]
    fn rate(&self) -> Option<f64> {
        self.ceiling.map(|_| self.state().rate)
    }

    /// Waits for the turn of a request that counts `units` against Graph's limit (a `$batch`
    /// counts each of its requests), and out any app-wide `Retry-After`.
    async fn wait(&self, units: u32) {
        loop {
            let now = tokio::time::Instant::now();
            let turn = {
                let mut state = self.state();
                let mut turn = state.next.max(now.checked_sub(PACE_BURST).unwrap_or(now));
                if let Some(hold) = state.hold {
                    turn = turn.max(hold);
                }
                if self.ceiling.is_some() {
                    // A rate set absurdly low waits an hour a request, not overflows.
                    let interval =
                        Duration::try_from_secs_f64(f64::from(units.max(1)) / state.rate)
                            .map_or(PACE_LONGEST_INTERVAL, |d| d.min(PACE_LONGEST_INTERVAL));
                    state.next = turn + interval;
                }
                turn
            };
            if turn > now {
                tokio::time::sleep_until(turn).await;
            }
            // A hold that began while this request waited for its turn is waited out too.
            let held = self
                .state()
                .hold
                .is_some_and(|hold| hold > tokio::time::Instant::now());
            if !held {
                return;
            }
        }
    }

    /// Graph answered an app-wide 429 to a request sent at `sent`: every request waits until
    /// `until` (when Graph said), and the rate halves unless this episode halved it already.
    fn throttled(&self, sent: tokio::time::Instant, until: Option<tokio::time::Instant>) {
        let mut state = self.state();
        if let Some(until) = until {
            let hold = state.hold.map_or(until, |h| h.max(until));
            state.hold = Some(hold);
            // Requests after the hold go one by one at the new rate, not all at once.
            state.next = state.next.max(hold);
        }
        let Some(ceiling) = self.ceiling else {
            return;
        };
        if state.decreased.is_some_and(|at| sent < at) {
            return;
        }
        state.rate = (state.rate / 2.0).max(PACE_FLOOR.min(ceiling));
        state.decreased = Some(tokio::time::Instant::now());
        metrics::graph_pace(state.rate);
    }

    /// A request counting `units` succeeded: the rate grows back towards the ceiling.
    fn succeeded(&self, units: u32) {
        let Some(ceiling) = self.ceiling else {
            return;
        };
        let mut state = self.state();
        if state.rate >= ceiling {
            return;
        }
        let step = ceiling / (PACE_RECOVERY.as_secs_f64() * state.rate);
        state.rate = (state.rate + step * f64::from(units.max(1))).min(ceiling);
        metrics::graph_pace(state.rate);
    }
}

/// What this client knows of one mailbox: Graph's four concurrent requests, and until when
/// Graph throttles it. Graph throttles per app per mailbox, so a 429 on any request to a
/// mailbox holds every request to it until the longest `Retry-After` seen has passed.
struct MailboxGate {
    slots: Arc<Semaphore>,
    not_before: Mutex<Option<tokio::time::Instant>>,
}

/// Mailbox gates kept before idle ones are forgotten.
const MAILBOX_GATES_KEPT: usize = 10_000;

/// The gates of the mailboxes this client has sent requests to.
struct MailboxGates {
    gates: HashMap<String, Arc<MailboxGate>>,
    /// The size at which idle gates are next swept away.
    sweep_at: usize,
}

impl Default for MailboxGates {
    fn default() -> Self {
        Self {
            gates: HashMap::new(),
            sweep_at: MAILBOX_GATES_KEPT,
        }
    }
}

impl MailboxGates {
    /// The gate of `mailbox`, made on its first request.
    fn gate(&mut self, mailbox: &str) -> Arc<MailboxGate> {
        if let Some(gate) = self.gates.get(mailbox) {
            return gate.clone();
        }
        // Forget idle mailboxes so the map does not grow with every mailbox ever seen (only
        // gates nobody else holds a handle to, with no throttling still running) — once the
        // map has doubled since the last sweep, so that many mailboxes in flight at once do
        // not sweep it on every request.
        if self.gates.len() >= self.sweep_at {
            let now = tokio::time::Instant::now();
            self.gates.retain(|_, g| {
                let throttled = g
                    .not_before
                    .lock()
                    .unwrap_or_else(std::sync::PoisonError::into_inner)
                    .is_some_and(|t| t > now);
                Arc::strong_count(g) > 1
                    || Arc::strong_count(&g.slots) > 1
                    || g.slots.available_permits() < REQUESTS_PER_MAILBOX
                    || throttled
            });
            self.sweep_at = (self.gates.len() * 2).max(MAILBOX_GATES_KEPT);
        }
        let gate = Arc::new(MailboxGate::new());
        self.gates.insert(mailbox.to_owned(), gate.clone());
        gate
    }
}

impl MailboxGate {
    fn new() -> Self {
        Self {
            slots: Arc::new(Semaphore::new(REQUESTS_PER_MAILBOX)),
            not_before: Mutex::new(None),
        }
    }

    /// `weight` of the mailbox's four request slots.
    async fn slot(&self, weight: u32) -> OwnedSemaphorePermit {
        // The semaphore is never closed, so acquiring cannot fail.
        let weight = weight.clamp(1, REQUESTS_PER_MAILBOX as u32);
        match self.slots.clone().acquire_many_owned(weight).await {
            Ok(permit) => permit,
            Err(_) => unreachable!("mailbox semaphores are never closed"),
        }
    }

    fn hold_until(&self, until: tokio::time::Instant) {
        let mut not_before = self
            .not_before
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        *not_before = Some(not_before.map_or(until, |t| t.max(until)));
    }

    /// Whether Graph lets requests to the mailbox through now.
    fn is_open(&self) -> bool {
        self.not_before
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .is_none_or(|t| t <= tokio::time::Instant::now())
    }

    /// Waits while Graph throttles the mailbox.
    async fn wait_until_open(&self) {
        loop {
            let until = *self
                .not_before
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner);
            match until {
                Some(t) if t > tokio::time::Instant::now() => tokio::time::sleep_until(t).await,
                _ => return,
            }
        }
    }
}

impl GraphClient {
    /// A client for `settings`, sharing `tokens`.
    pub fn new(settings: &GraphSettings, http: reqwest::Client, tokens: Arc<AppTokens>) -> Self {
        let base = format!("{}/v1.0", settings.graph_base_url.trim_end_matches('/'));
        Self {
            base_url: reqwest::Url::parse(&base).ok(),
            base,
            http,
            tokens,
            retry: settings.retry,
            mailboxes: Arc::default(),
            pace: Arc::new(Pace::new(settings.requests_per_second)),
        }
    }

    /// The domains of `microsoft_tenant`.
    pub async fn list_domains(
        &self,
        microsoft_tenant: &MicrosoftTenantId,
    ) -> Result<Vec<GraphDomain>, GraphError> {
        self.get_all(microsoft_tenant, None, &format!("{}/domains", self.base))
            .await
    }

    /// Every item of a collection, following `@odata.nextLink` as an opaque URL.
    pub(super) async fn get_all<T: DeserializeOwned>(
        &self,
        microsoft_tenant: &MicrosoftTenantId,
        mailbox: Option<&str>,
        first: &str,
    ) -> Result<Vec<T>, GraphError> {
        let mut items = Vec::new();
        let mut next = Some(first.to_owned());
        let mut pages = 0;
        while let Some(url) = next {
            pages += 1;
            if pages > MAX_PAGES {
                return Err(GraphError::Transport(format!(
                    "Graph kept paging past {MAX_PAGES} pages; not followed further"
                )));
            }
            // Parsed once: checked, then sent as it is.
            let Some(parsed) = self.graph_url(&url) else {
                // Following it would send the tenant's app token to whoever it names.
                return Err(GraphError::Transport(
                    "Graph's @odata.nextLink points outside the configured Graph base URL; not followed"
                        .to_owned(),
                ));
            };
            let response = self
                .request_weighted(microsoft_tenant, mailbox, 1, 1, Method::GET, parsed, None)
                .await?;
            let page: Page<T> = read_json(response, "Graph answer").await?;
            items.extend(page.value);
            if page.next_link.as_deref() == Some(url.as_str()) {
                return Err(GraphError::Transport(
                    "Graph's @odata.nextLink names the page it came with; not followed".to_owned(),
                ));
            }
            next = page.next_link;
        }
        Ok(items)
    }

    /// `url` parsed, if it lies under the configured Graph base URL (same scheme, host and
    /// port, no user info, path under `/v1.0/`): the only place the app token is sent.
    fn graph_url(&self, url: &str) -> Option<reqwest::Url> {
        under_base(self.base_url.as_ref()?, url)
    }

    /// A request whose answer is JSON.
    pub(super) async fn request_json<T: DeserializeOwned>(
        &self,
        microsoft_tenant: &MicrosoftTenantId,
        mailbox: Option<&str>,
        method: Method,
        url: &str,
        body: Option<serde_json::Value>,
    ) -> Result<T, GraphError> {
        let response = self
            .request(microsoft_tenant, mailbox, method, url, body)
            .await?;
        read_json(response, "Graph answer").await
    }

    /// Sends a request with the tenant's app token until it succeeds, fails for good, or runs
    /// out of attempts. A mailbox's requests share four slots, as Graph allows.
    pub(super) async fn request(
        &self,
        microsoft_tenant: &MicrosoftTenantId,
        mailbox: Option<&str>,
        method: Method,
        url: &str,
        body: Option<serde_json::Value>,
    ) -> Result<reqwest::Response, GraphError> {
        self.request_weighted(
            microsoft_tenant,
            mailbox,
            1,
            1,
            method,
            parse_url(url)?,
            body,
        )
        .await
    }

    /// Like [`Self::request`], to a URL parsed already, holding `weight` of the mailbox's four slots (a `$batch` runs
    /// up to four of its sub-requests at once) and counting `units` requests against Graph's
    /// limit for the app (a `$batch`, each of its requests).
    #[allow(clippy::too_many_arguments)]
    pub(super) async fn request_weighted(
        &self,
        microsoft_tenant: &MicrosoftTenantId,
        mailbox: Option<&str>,
        weight: u32,
        units: u32,
        method: Method,
        url: reqwest::Url,
        body: Option<serde_json::Value>,
    ) -> Result<reqwest::Response, GraphError> {
        // The mailbox's gate, looked up once for every attempt.
        let gate = mailbox.map(|m| self.mailbox_gate(m));
        let _slot = match &gate {
            Some(gate) => Some(gate.slot(weight).await),
            None => None,
        };
        let endpoint = metrics::graph_endpoint(&method, url.as_str());
        let mut refreshed = false;
        let mut attempt = 0;
        loop {
            attempt += 1;
            let token = self.tokens.get(microsoft_tenant).await?;
            self.turn(gate.as_deref(), units).await;
            let mut request = self
                .http
                .request(method.clone(), url.clone())
                .header(http::header::AUTHORIZATION, token.bearer());
            if let Some(body) = &body {
                request = request.json(body);
            }
            let span = graph_span(endpoint, &method, attempt);
            let sent = tokio::time::Instant::now();
            let answer = request.send().instrument(span.clone()).await;
            record_answer(&span, endpoint, answer.as_ref().ok(), sent.elapsed());
            let error = match answer {
                Ok(response) if response.status().is_success() => {
                    self.pace.succeeded(units);
                    return Ok(response);
                }
                Ok(response) => api_error(response).await,
                Err(e) => GraphError::Transport(e.to_string()),
            };
            let asked = matches!(
                &error,
                GraphError::Api {
                    status: 429 | 503,
                    retry_after: Some(_),
                    ..
                }
            );
            if asked || matches!(&error, GraphError::Api { status: 429, .. }) {
                metrics::graph_throttled(endpoint, error.code());
            }
            if !refreshed && error.code() == Some("InvalidAuthenticationToken") {
                self.tokens.invalidate(microsoft_tenant, &token).await;
                refreshed = true;
                continue;
            }
            self.throttled_at(gate.as_deref(), sent, &error);
            let Some(wait) = self.retry_wait(&error, attempt) else {
                return Err(error);
            };
            // A retry, whatever holds it meanwhile (this wait, the app's pace, the mailbox).
            metrics::graph_retry(endpoint, wait, asked);
            tracing::debug!(attempt, ?wait, error = %error, "retrying a Graph request");
            tokio::time::sleep(wait).await;
        }
    }

    /// Waits until a request to `mailbox` counting `units` may be sent: the mailbox open (no
    /// 429 of its own still running), then the app's turn (its pace, and any app-wide
    /// `Retry-After`) — and the mailbox again, should Graph have throttled it meanwhile.
    async fn turn(&self, gate: Option<&MailboxGate>, units: u32) {
        loop {
            if let Some(gate) = gate {
                gate.wait_until_open().await;
            }
            self.pace.wait(units).await;
            if gate.is_none_or(MailboxGate::is_open) {
                return;
            }
        }
    }

    /// Notes what a throttling `error` (to a request to `mailbox` sent at `sent`) asks of
    /// every later request: an app-wide 429 holds all of them and slows the app's pace; a
    /// 429 on a mailbox holds that mailbox's requests. Anything else asks nothing.
    pub(super) fn throttled(
        &self,
        mailbox: Option<&str>,
        sent: tokio::time::Instant,
        error: &GraphError,
    ) {
        let gate = match error {
            GraphError::Api { status: 429, .. } if !error.is_app_throttled() => {
                mailbox.map(|m| self.mailbox_gate(m))
            }
            _ => None,
        };
        self.throttled_at(gate.as_deref(), sent, error);
    }

    /// [`Self::throttled`] for a mailbox whose gate is at hand.
    fn throttled_at(
        &self,
        gate: Option<&MailboxGate>,
        sent: tokio::time::Instant,
        error: &GraphError,
    ) {
        let GraphError::Api {
            status: 429,
            retry_after,
            ..
        } = error
        else {
            return;
        };
        if error.is_app_throttled() {
            // As for a mailbox, a Retry-After longer than a request waits in place holds
            // nothing (the requests fail, or their mailboxes park); the rate still halves.
            let until = retry_after
                .filter(|after| *after <= self.retry.max_retry_after)
                .map(|after| tokio::time::Instant::now() + after + jitter(after));
            self.pace.throttled(sent, until);
        } else if let (Some(gate), Some(after)) = (gate, retry_after) {
            self.mailbox_throttled(gate, *after);
        }
    }

    /// How long Graph throttles for, when that is longer than a request here waits in place
    /// ([`RetryPolicy::max_retry_after`]): the engine sets such a mailbox aside (parks it)
    /// rather than holding a slot for it.
    pub fn parks(&self, error: &GraphError) -> Option<Duration> {
        match error {
            GraphError::Api {
                status: 429 | 503,
                retry_after: Some(after),
                ..
            } if *after > self.retry.max_retry_after => Some(*after),
            _ => None,
        }
    }

    /// The retry policy in force.
    pub(super) fn retry_policy(&self) -> RetryPolicy {
        self.retry
    }

    /// The one retry rule (see [`RetryPolicy::wait`]).
    pub(super) fn retry_wait(&self, error: &GraphError, attempt: u32) -> Option<Duration> {
        self.retry.wait(error, attempt)
    }

    /// The gate of `mailbox`, made on its first request.
    fn mailbox_gate(&self, mailbox: &str) -> Arc<MailboxGate> {
        self.mailboxes
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .gate(mailbox)
    }

    /// Records that Graph throttled `mailbox` for `after` (a 429's `Retry-After`): every request
    /// to it waits until then.
    /// A `Retry-After` longer than the retry policy waits holds nothing: that request fails
    /// (so do the mailbox's next ones, throttled in turn) rather than parking the mailbox's
    /// slots for hours.
    fn mailbox_throttled(&self, gate: &MailboxGate, after: Duration) {
        if after <= self.retry.max_retry_after {
            // A little extra, as for a retry, so the held requests do not all land on the
            // boundary together.
            gate.hold_until(tokio::time::Instant::now() + after + jitter(after));
        }
    }
}

/// The span of one HTTP request to Microsoft: a child of whatever asked (a job run, an RPC),
/// named by its endpoint class, never by a mailbox.
pub(crate) fn graph_span(endpoint: &'static str, method: &Method, attempt: u32) -> tracing::Span {
    tracing::info_span!(
        "graph.request",
        otel.name = endpoint,
        otel.kind = "client",
        http.request.method = %method,
        attempt,
        http.response.status_code = tracing::field::Empty,
        graph.request_id = tracing::field::Empty,
    )
}

/// Counts one answer (or its absence) and notes on `span` its status and Graph's request id
/// (the `request-id` header, which Microsoft support asks for).
pub(crate) fn record_answer(
    span: &tracing::Span,
    endpoint: &'static str,
    response: Option<&reqwest::Response>,
    elapsed: Duration,
) {
    let status = response.map(|r| r.status().as_u16());
    metrics::graph_request(endpoint, status, elapsed);
    if let Some(response) = response {
        span.record("http.response.status_code", response.status().as_u16());
        if let Some(id) = response
            .headers()
            .get("request-id")
            .and_then(|v| v.to_str().ok())
        {
            span.record("graph.request_id", id);
        }
    }
}

/// A URL of ours for a request to Graph.
pub(super) fn parse_url(url: &str) -> Result<reqwest::Url, GraphError> {
    reqwest::Url::parse(url).map_err(|e| GraphError::Transport(format!("not a URL ({e}): {url}")))
}

/// `url` parsed, if it has `base`'s scheme, host and port, no user info, and a path under
/// `base`'s (after the parser has resolved any `..`).
fn under_base(base: &reqwest::Url, url: &str) -> Option<reqwest::Url> {
    let url = reqwest::Url::parse(url).ok()?;
    let under = url
        .path()
        .strip_prefix(base.path().trim_end_matches('/'))
        .is_some_and(|rest| rest.starts_with('/'));
    (url.scheme() == base.scheme()
        && url.host_str() == base.host_str()
        && url.port_or_known_default() == base.port_or_known_default()
        && url.username().is_empty()
        && url.password().is_none()
        && under)
        .then_some(url)
}

/// A little extra after `Retry-After` so the retry does not land on the boundary.
fn jitter(after: Duration) -> Duration {
    Duration::from_millis(rand::rng().random_range(10..=50)) + after / 20
}

/// The longest `Retry-After` believed; anything above (a day and more, or a number too big
/// for any clock) is read as this, so time arithmetic on it cannot overflow.
pub(crate) const RETRY_AFTER_CEILING: Duration = Duration::from_secs(86_400);

/// A `Retry-After` value: delay-seconds, or an HTTP-date (how long until then; a date in the
/// past means now), at most [`RETRY_AFTER_CEILING`].
pub(crate) fn parse_retry_after(value: &str) -> Option<Duration> {
    let value = value.trim();
    let wait = if let Some(wait) = delay_seconds(value) {
        wait
    } else {
        let at = chrono::DateTime::parse_from_rfc2822(value).ok()?;
        (at.with_timezone(&chrono::Utc) - chrono::Utc::now())
            .to_std()
            .unwrap_or_default()
    };
    Some(wait.min(RETRY_AFTER_CEILING))
}

/// Delay-seconds, whole or with a fraction: Graph's documented answer to an app over its
/// global limit says `Retry-After: 2.128`. A fraction is kept to the millisecond, rounded up.
fn delay_seconds(value: &str) -> Option<Duration> {
    let (whole, fraction) = value.split_once('.').unwrap_or((value, ""));
    let digits = |s: &str| s.bytes().all(|b| b.is_ascii_digit());
    if whole.is_empty() || !digits(whole) || !digits(fraction) {
        return None;
    }
    // Digits beyond u64 are a huge delay, not a missing one.
    let Ok(seconds) = whole.parse::<u64>() else {
        return Some(RETRY_AFTER_CEILING);
    };
    let millis = fraction
        .bytes()
        .chain(std::iter::repeat(b'0'))
        .take(3)
        .fold(0, |ms, b| ms * 10 + u64::from(b - b'0'));
    let rest = fraction.bytes().skip(3).any(|b| b != b'0');
    Some(Duration::from_secs(seconds) + Duration::from_millis(millis + u64::from(rest)))
}

/// Reads an error answer's `Retry-After` and body (see [`GraphError::from_answer`]).
pub(crate) async fn api_error(response: reqwest::Response) -> GraphError {
    let status = response.status().as_u16();
    let retry_after = response
        .headers()
        .get(http::header::RETRY_AFTER)
        .and_then(|v| v.to_str().ok())
        .and_then(parse_retry_after);
    let body = bounded_body(response).await.unwrap_or_default();
    let body = serde_json::from_slice(&body)
        .unwrap_or_else(|_| serde_json::Value::String(String::from_utf8_lossy(&body).into_owned()));
    GraphError::from_answer(status, retry_after, &body)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn retry_after_takes_seconds_or_an_http_date() {
        assert_eq!(parse_retry_after(" 7 "), Some(Duration::from_secs(7)));
        // Microsoft's documented answer to an app over its global limit.
        assert_eq!(
            parse_retry_after("2.128"),
            Some(Duration::from_millis(2_128))
        );
        assert_eq!(parse_retry_after("0.5"), Some(Duration::from_millis(500)));
        assert_eq!(
            parse_retry_after("1.0001"),
            Some(Duration::from_millis(1_001))
        );
        assert_eq!(parse_retry_after(".5"), None);
        assert_eq!(parse_retry_after("1.2.3"), None);
        let soon = (chrono::Utc::now() + chrono::Duration::seconds(30))
            .to_rfc2822()
            .replace("+0000", "GMT");
        let wait = parse_retry_after(&soon).unwrap();
        assert!(
            wait > Duration::from_secs(25) && wait <= Duration::from_secs(30),
            "{wait:?}"
        );
        assert_eq!(
            parse_retry_after("Sun, 06 Nov 1994 08:49:37 GMT"),
            Some(Duration::ZERO)
        );
        assert_eq!(parse_retry_after("soon"), None);
    }

    #[test]
    fn only_urls_under_the_graph_base_get_the_token() {
        let base = reqwest::Url::parse("https://graph.example:443/v1.0").unwrap();
        let page = "https://graph.example/v1.0/users/u-1/messages?$skiptoken=x";
        assert_eq!(
            under_base(&base, page).map(|u| u.to_string()),
            Some(page.to_owned())
        );
        for elsewhere in [
            "https://other.example/v1.0/users",
            "http://graph.example/v1.0/users",
            "https://graph.example:8443/v1.0/users",
            "https://me@graph.example/v1.0/users",
            "https://me:pw@graph.example/v1.0/users",
            "https://graph.example/v1.0evil/users",
            "https://graph.example/beta/users",
            "https://graph.example/v1.0/../beta/users",
            "https://graph.example/v1.0",
            "/v1.0/users",
            "not a url",
        ] {
            assert_eq!(under_base(&base, elsewhere), None, "{elsewhere}");
        }
    }

    #[tokio::test]
    async fn idle_mailboxes_are_forgotten_once_the_map_doubles_and_busy_ones_keep_their_gate() {
        let mut gates = MailboxGates::default();
        let busy = gates.gate("busy@contoso.com");
        let slot = busy.slot(1).await;
        let throttled = gates.gate("throttled@contoso.com");
        throttled.hold_until(tokio::time::Instant::now() + Duration::from_secs(60));
        drop(busy);
        drop(throttled);
        for i in 0..MAILBOX_GATES_KEPT - 2 {
            drop(gates.gate(&format!("u{i}@contoso.com")));
        }
        assert_eq!(
            gates.gates.len(),
            MAILBOX_GATES_KEPT,
            "nothing swept below the mark"
        );
        // The next new mailbox sweeps: only the one with a request under way and the one
        // Graph still throttles stay, beside the newcomer.
        drop(gates.gate("new@contoso.com"));
        assert_eq!(gates.gates.len(), 3);
        assert_eq!(gates.sweep_at, MAILBOX_GATES_KEPT);
        // The busy mailbox's next request waits on the same four slots, not a fresh gate.
        let again = gates.gate("busy@contoso.com");
        assert_eq!(again.slots.available_permits(), REQUESTS_PER_MAILBOX - 1);
        assert!(!gates.gate("throttled@contoso.com").is_open());
        drop(slot);
    }

    #[tokio::test]
    async fn with_every_mailbox_busy_the_map_is_swept_once_per_doubling_not_per_request() {
        let mut gates = MailboxGates::default();
        let held: Vec<_> = (0..=MAILBOX_GATES_KEPT)
            .map(|i| gates.gate(&format!("u{i}@contoso.com")))
            .collect();
        // The sweep at 10,000 found every gate in use: the next one is at twice that.
        assert_eq!(gates.gates.len(), MAILBOX_GATES_KEPT + 1);
        assert_eq!(gates.sweep_at, 2 * MAILBOX_GATES_KEPT);
        drop(held);
    }

    #[tokio::test(start_paused = true)]
    async fn requests_are_paced_to_the_rate_after_a_short_burst() {
        let pace = Arc::new(Pace::new(1_000.0));
        let started = tokio::time::Instant::now();
        let mut sent = Vec::new();
        for _ in 0..300 {
            let pace = pace.clone();
            sent.push(tokio::spawn(async move {
                pace.wait(1).await;
                started.elapsed()
            }));
        }
        let mut at = Vec::new();
        for s in sent {
            at.push(s.await.unwrap());
        }
        at.sort();
        // 100 ms of burst (100 requests) at once, then one every millisecond: never faster
        // (a busy machine may only make it slower).
        let last = at[299];
        assert!(
            last >= Duration::from_millis(195),
            "300 requests at 1,000/s after a 100-request burst took {last:?}"
        );
        assert!(
            at[99] + Duration::from_millis(150) <= last,
            "the burst went first"
        );
        // A $batch of 20 counts 20.
        let before = tokio::time::Instant::now();
        pace.wait(20).await;
        pace.wait(1).await;
        assert!(before.elapsed() >= Duration::from_millis(20));
    }

    #[tokio::test(start_paused = true)]
    async fn a_rate_set_absurdly_low_waits_an_hour_a_request_and_does_not_panic() {
        let pace = Pace::new(1e-300);
        let started = tokio::time::Instant::now();
        pace.wait(1).await;
        pace.wait(u32::MAX).await;
        pace.wait(1).await;
        let waited = started.elapsed();
        assert!(
            waited >= Duration::from_secs(2 * 3600) - PACE_BURST
                && waited <= Duration::from_secs(2 * 3600),
            "three requests at a rate of 1e-300/s waited {waited:?}"
        );
    }

    /// When each of `n` requests of one unit got its turn, from now.
    async fn turns(pace: &Arc<Pace>, n: usize) -> Vec<Duration> {
        let started = tokio::time::Instant::now();
        let waits: Vec<_> = (0..n)
            .map(|_| {
                let pace = pace.clone();
                tokio::spawn(async move {
                    pace.wait(1).await;
                    started.elapsed()
                })
            })
            .collect();
        let mut at = Vec::new();
        for wait in waits {
            at.push(wait.await.unwrap());
        }
        at.sort();
        at
    }

    #[tokio::test(start_paused = true)]
    async fn an_app_wide_throttle_holds_every_request_and_halves_the_pace() {
        let pace = Arc::new(Pace::new(100.0));
        let sent = tokio::time::Instant::now();
        pace.throttled(sent, Some(sent + Duration::from_secs(2)));
        assert_eq!(pace.rate(), Some(50.0));
        let at = turns(&pace, 11).await;
        // Nobody goes before Retry-After; then one at a time at the halved rate (20 ms
        // apart), no burst on the boundary.
        assert_eq!(at[0], Duration::from_secs(2), "{at:?}");
        assert_eq!(at[10], Duration::from_millis(2_200), "{at:?}");
    }

    #[tokio::test(start_paused = true)]
    async fn a_request_waiting_its_turn_also_waits_out_a_hold_that_began_meanwhile() {
        let pace = Arc::new(Pace::new(10.0));
        // The burst is used up: the next turn is 100 ms away.
        turns(&pace, 2).await;
        let started = tokio::time::Instant::now();
        let waiting = {
            let pace = pace.clone();
            tokio::spawn(async move { pace.wait(1).await })
        };
        tokio::time::sleep(Duration::from_millis(10)).await;
        pace.throttled(started, Some(started + Duration::from_secs(1)));
        waiting.await.unwrap();
        assert!(
            started.elapsed() >= Duration::from_secs(1),
            "{:?}",
            started.elapsed()
        );
    }

    #[tokio::test(start_paused = true)]
    async fn one_throttling_episode_halves_the_pace_once() {
        let pace = Pace::new(1_000.0);
        let before = tokio::time::Instant::now();
        tokio::time::advance(Duration::from_millis(5)).await;
        // Sixteen requests in flight together all get 429: one decrease, not sixteen.
        for _ in 0..16 {
            pace.throttled(before, None);
        }
        assert_eq!(pace.rate(), Some(500.0));
        // A request sent after the decrease and throttled again: the next episode.
        tokio::time::advance(Duration::from_millis(5)).await;
        pace.throttled(tokio::time::Instant::now(), None);
        assert_eq!(pace.rate(), Some(250.0));
        // Never below the floor.
        for _ in 0..20 {
            tokio::time::advance(Duration::from_millis(1)).await;
            pace.throttled(tokio::time::Instant::now(), None);
        }
        assert_eq!(pace.rate(), Some(PACE_FLOOR));
    }

    #[tokio::test(start_paused = true)]
    async fn successes_win_the_pace_back_additively_up_to_the_ceiling() {
        let pace = Pace::new(1_000.0);
        pace.throttled(tokio::time::Instant::now(), None);
        assert_eq!(pace.rate(), Some(500.0));
        // A second of requests at 500/s wins back a tenth of the ceiling (additive: the same
        // +100/s whatever the rate), not a doubling.
        for _ in 0..500 {
            pace.succeeded(1);
        }
        let rate = pace.rate().unwrap();
        assert!((585.0..=605.0).contains(&rate), "{rate}");
        for _ in 0..10_000 {
            pace.succeeded(1);
        }
        assert_eq!(pace.rate(), Some(1_000.0), "never above the ceiling");
    }

    #[tokio::test(start_paused = true)]
    async fn unpaced_requests_still_wait_out_an_app_wide_retry_after() {
        let pace = Arc::new(Pace::new(0.0));
        assert_eq!(pace.rate(), None);
        assert_eq!(turns(&pace, 50).await[49], Duration::ZERO);
        let now = tokio::time::Instant::now();
        pace.throttled(now, Some(now + Duration::from_secs(3)));
        assert_eq!(turns(&pace, 5).await[0], Duration::from_secs(3));
    }

    #[test]
    fn absurd_retry_after_values_are_capped_not_overflowed() {
        for huge in [
            "18446744073709551615",
            "99999999999999999999999999",
            "Fri, 31 Dec 9999 23:59:59 GMT",
        ] {
            assert_eq!(parse_retry_after(huge), Some(RETRY_AFTER_CEILING), "{huge}");
        }
        assert_eq!(parse_retry_after("-5"), None);
    }
}
