//! Prometheus metrics: every metric's name, labels and meaning in one place, as one-line
//! helpers the rest of the server calls.
//!
//! The helpers write to the process's `metrics` recorder. Until [`install`] runs (the server
//! was started with `metrics_listen`) that is the facade's no-op recorder, so a call costs a
//! load and a branch. Once installed, counters and histograms are lock-free atomics behind a
//! registry lookup. Labels are small closed sets (an RPC name from our own contract, a Graph
//! endpoint class, a gRPC code, a state) or a tenant id; a mailbox address never is one,
//! for cardinality and for privacy.
//!
//! Gauges that the database knows (jobs by state, pool connections) are read when scraped,
//! not tracked, so they stay true across replicas and restarts.

use std::sync::OnceLock;
use std::time::Duration;

use metrics::{counter, gauge, histogram};
use metrics_exporter_prometheus::{Matcher, PrometheusBuilder, PrometheusHandle};

use crate::domain::{EventKind, Phase};

/// RPCs served, by `rpc` (`retract.v1.RetractService/Retract`, …) and gRPC `code`.
pub const RPC_REQUESTS: &str = "retract_rpc_requests_total";
/// RPC latency in seconds (a stream: until it ends), by `rpc` and `code`.
pub const RPC_DURATION: &str = "retract_rpc_duration_seconds";
/// Graph and identity-platform HTTP requests sent (each attempt), by `endpoint` and `status`
/// (the HTTP status, or `transport` when no answer came).
pub const GRAPH_REQUESTS: &str = "retract_graph_requests_total";
/// Latency of one Graph HTTP request, in seconds, by `endpoint`.
pub const GRAPH_DURATION: &str = "retract_graph_request_duration_seconds";
/// Throttling answers received from Microsoft (429, 503 with Retry-After), by `endpoint` and
/// `reason` (Graph's error code, e.g. `ApplicationThrottled`, `MailboxConcurrency`).
pub const GRAPH_THROTTLES: &str = "retract_graph_throttled_total";
/// Graph requests retried (after a throttle, a 5xx or a broken connection), by `endpoint`.
pub const GRAPH_RETRIES: &str = "retract_graph_retries_total";
/// Waits before retries that Microsoft asked for (`Retry-After`), in seconds, by `endpoint`:
/// its `_sum` is the seconds waited.
pub const GRAPH_RETRY_AFTER: &str = "retract_graph_retry_after_wait_seconds";
/// The request rate this replica's Graph client allows itself now, requests per second: the
/// configured rate until Graph throttles the app as a whole (`TooManyRequests`), then halved
/// and won back as requests succeed (AIMD).
pub const GRAPH_PACE: &str = "retract_graph_pace_requests_per_second";
/// Retract and restore jobs in the database, by `state` (read when scraped).
pub const JOBS: &str = "retract_jobs";
/// Job targets (mailboxes) finished, by `outcome`; its rate is targets per second.
pub const TARGETS_FINISHED: &str = "retract_targets_finished_total";
/// Job events written to the event log.
pub const EVENTS_WRITTEN: &str = "retract_job_events_written_total";
/// Watches (Retract and WatchRetract streams) open now.
pub const WATCHERS_OPEN: &str = "retract_watchers_open";
/// Job leases: `claimed` by this replica, of which `taken_over` (the job had started
/// before: another replica's lease lapsed, or it gave the job back), and `lost` while
/// running here.
pub const LEASES: &str = "retract_job_leases_total";
/// Deliveries recorded, by `tenant` and `outcome` (`created`, `merged`, `unchanged`).
pub const DELIVERIES_RECORDED: &str = "retract_deliveries_recorded_total";
/// Database pool connections, by `state` (`open`, `idle`, `max`), read when scraped.
pub const DB_POOL: &str = "retract_db_pool_connections";

static HANDLE: OnceLock<PrometheusHandle> = OnceLock::new();

/// Latency buckets in seconds: 1 ms to 2 min (a watch stream runs long).
const SECONDS_BUCKETS: &[f64] = &[
    0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 120.0,
];

/// Installs the Prometheus recorder for the process (once; later calls return the same
/// handle) and returns the handle that renders the scrape page.
pub fn install() -> Result<PrometheusHandle, String> {
    if let Some(handle) = HANDLE.get() {
        return Ok(handle.clone());
    }
    let recorder = PrometheusBuilder::new()
        .set_buckets_for_metric(Matcher::Suffix("_seconds".to_owned()), SECONDS_BUCKETS)
        .map_err(|e| e.to_string())?
        .build_recorder();
    let handle = recorder.handle();
    match metrics::set_global_recorder(recorder) {
        Ok(()) => {
            describe();
            Ok(HANDLE.get_or_init(|| handle).clone())
        }
        // Another thread installed ours meanwhile; a foreign recorder is an error.
        Err(_) => HANDLE
            .get()
            .cloned()
            .ok_or_else(|| "another metrics recorder is installed in this process".to_owned()),
    }
}

fn describe() {
    use metrics::{describe_counter, describe_gauge, describe_histogram};
    describe_counter!(RPC_REQUESTS, "RPCs served, by rpc and gRPC code");
    describe_histogram!(
        RPC_DURATION,
        metrics::Unit::Seconds,
        "RPC latency (streams: until they end)"
    );
    describe_counter!(
        GRAPH_REQUESTS,
        "Microsoft HTTP requests, by endpoint and status"
    );
    describe_histogram!(
        GRAPH_DURATION,
        metrics::Unit::Seconds,
        "latency of one Microsoft HTTP request"
    );
    describe_counter!(
        GRAPH_THROTTLES,
        "throttling answers from Microsoft, by reason"
    );
    describe_counter!(GRAPH_RETRIES, "Microsoft requests retried");
    describe_histogram!(
        GRAPH_RETRY_AFTER,
        metrics::Unit::Seconds,
        "waits Microsoft asked for with Retry-After"
    );
    describe_gauge!(
        GRAPH_PACE,
        "Graph requests per second this replica allows itself now (halved on an app-wide 429)"
    );
    describe_gauge!(JOBS, "jobs in the database, by state");
    describe_counter!(
        TARGETS_FINISHED,
        "job targets (mailboxes) finished, by outcome"
    );
    describe_counter!(EVENTS_WRITTEN, "job events written");
    describe_gauge!(WATCHERS_OPEN, "job watches open");
    describe_counter!(LEASES, "job leases claimed or lost by this replica");
    describe_counter!(
        DELIVERIES_RECORDED,
        "deliveries recorded, by tenant and outcome"
    );
    describe_gauge!(DB_POOL, "database pool connections");
}

/// The scrape page, when metrics are installed.
pub fn render() -> Option<String> {
    let handle = HANDLE.get()?;
    handle.run_upkeep();
    Some(handle.render())
}

/// One RPC ended with `code` after `elapsed`.
pub fn rpc_finished(rpc: &'static str, code: tonic::Code, elapsed: Duration) {
    let code = code_name(code);
    counter!(RPC_REQUESTS, "rpc" => rpc, "code" => code).increment(1);
    histogram!(RPC_DURATION, "rpc" => rpc, "code" => code).record(elapsed.as_secs_f64());
}

/// One Microsoft HTTP request answered with `status` (`None`: no answer) after `elapsed`.
pub fn graph_request(endpoint: &'static str, status: Option<u16>, elapsed: Duration) {
    counter!(GRAPH_REQUESTS, "endpoint" => endpoint, "status" => status_label(status)).increment(1);
    histogram!(GRAPH_DURATION, "endpoint" => endpoint).record(elapsed.as_secs_f64());
}

/// Microsoft throttled a request for `reason` (its error code).
pub fn graph_throttled(endpoint: &'static str, reason: Option<&str>) {
    counter!(GRAPH_THROTTLES, "endpoint" => endpoint, "reason" => throttle_reason(reason))
        .increment(1);
}

/// A request is retried after `wait`; `asked` when Microsoft's `Retry-After` set the wait.
pub fn graph_retry(endpoint: &'static str, wait: Duration, asked: bool) {
    counter!(GRAPH_RETRIES, "endpoint" => endpoint).increment(1);
    if asked {
        histogram!(GRAPH_RETRY_AFTER, "endpoint" => endpoint).record(wait.as_secs_f64());
    }
}

/// The Graph client's pace is now `per_second` requests a second.
pub fn graph_pace(per_second: f64) {
    gauge!(GRAPH_PACE).set(per_second);
}

/// A job event was written; a mailbox's final one also counts its target as finished.
pub fn event_written(kind: &EventKind) {
    counter!(EVENTS_WRITTEN).increment(1);
    if let EventKind::Recipient {
        phase: Phase::Done,
        result: Some(result),
        ..
    } = kind
    {
        counter!(TARGETS_FINISHED, "outcome" => result.outcome.as_str()).increment(1);
    }
}

/// This replica claimed a job's lease.
pub fn lease_claimed() {
    counter!(LEASES, "event" => "claimed").increment(1);
}

/// This replica claimed a job that had started before (its lease lapsed or was given back).
pub fn lease_taken_over() {
    counter!(LEASES, "event" => "taken_over").increment(1);
}

/// This replica lost a job's lease while running it.
pub fn lease_lost() {
    counter!(LEASES, "event" => "lost").increment(1);
}

/// `n` deliveries of `tenant` were recorded with `outcome`.
pub fn deliveries_recorded(tenant: &str, outcome: &'static str, n: u64) {
    if n > 0 {
        counter!(DELIVERIES_RECORDED, "tenant" => tenant.to_owned(), "outcome" => outcome)
            .increment(n);
    }
}

/// Jobs in `state` now (set when scraped).
pub fn jobs_in_state(state: &'static str, n: u64) {
    gauge!(JOBS, "state" => state).set(n as f64);
}

/// The database pool now (set when scraped).
pub fn db_pool(open: u32, idle: u32, max: u32) {
    gauge!(DB_POOL, "state" => "open").set(f64::from(open));
    gauge!(DB_POOL, "state" => "idle").set(f64::from(idle));
    gauge!(DB_POOL, "state" => "max").set(f64::from(max));
}

/// Counts an open watch until dropped.
#[must_use = "the watch counts as open while this guard lives"]
pub struct WatcherOpen(());

impl WatcherOpen {
    /// A watch opened.
    pub fn new() -> Self {
        gauge!(WATCHERS_OPEN).increment(1.0);
        Self(())
    }
}

impl Default for WatcherOpen {
    fn default() -> Self {
        Self::new()
    }
}

impl Drop for WatcherOpen {
    fn drop(&mut self) {
        gauge!(WATCHERS_OPEN).decrement(1.0);
    }
}

fn code_name(code: tonic::Code) -> &'static str {
    use tonic::Code::*;
    match code {
        Ok => "OK",
        Cancelled => "CANCELLED",
        Unknown => "UNKNOWN",
        InvalidArgument => "INVALID_ARGUMENT",
        DeadlineExceeded => "DEADLINE_EXCEEDED",
        NotFound => "NOT_FOUND",
        AlreadyExists => "ALREADY_EXISTS",
        PermissionDenied => "PERMISSION_DENIED",
        ResourceExhausted => "RESOURCE_EXHAUSTED",
        FailedPrecondition => "FAILED_PRECONDITION",
        Aborted => "ABORTED",
        OutOfRange => "OUT_OF_RANGE",
        Unimplemented => "UNIMPLEMENTED",
        Internal => "INTERNAL",
        Unavailable => "UNAVAILABLE",
        DataLoss => "DATA_LOSS",
        Unauthenticated => "UNAUTHENTICATED",
    }
}

fn status_label(status: Option<u16>) -> &'static str {
    // A closed set: the statuses Graph answers with, then their class.
    match status {
        None => "transport",
        Some(200) => "200",
        Some(201) => "201",
        Some(202) => "202",
        Some(204) => "204",
        Some(400) => "400",
        Some(401) => "401",
        Some(403) => "403",
        Some(404) => "404",
        Some(409) => "409",
        Some(429) => "429",
        Some(500) => "500",
        Some(502) => "502",
        Some(503) => "503",
        Some(504) => "504",
        Some(s) if s < 300 => "2xx",
        Some(s) if s < 400 => "3xx",
        Some(s) if s < 500 => "4xx",
        Some(_) => "5xx",
    }
}

fn throttle_reason(code: Option<&str>) -> &'static str {
    // Graph's own codes, a closed set; anything else is "other".
    match code {
        Some("ApplicationThrottled") => "ApplicationThrottled",
        Some("MailboxConcurrency") => "MailboxConcurrency",
        Some("TooManyRequests") => "TooManyRequests",
        Some("ServiceUnavailable") => "ServiceUnavailable",
        Some("activityLimitReached") => "activityLimitReached",
        None => "none",
        Some(_) => "other",
    }
}

/// The endpoint class of a Graph URL: the fixed words of its path (`users`, `messages`,
/// `mailFolders`, `$batch`, …) joined by `.`, with the HTTP method — never an id or an
/// address. `GET …/users/a@b/messages?$filter=…` is `GET users.messages`.
pub fn graph_endpoint(method: &http::Method, url: &str) -> &'static str {
    let path = url
        .split(['?', '#'])
        .next()
        .unwrap_or_default()
        .split("/v1.0/")
        .nth(1)
        .unwrap_or_default();
    let mut words = path.split('/').filter(|s| WORDS.contains(s));
    let first = words.next();
    let second = words.next();
    let third = words.next();
    let key = (method.as_str(), first, second, third);
    ENDPOINTS
        .iter()
        .find(|(m, a, b, c, _)| (*m, *a, *b, *c) == key)
        .map_or("other", |e| e.4)
}

/// The path words an endpoint class is made of.
const WORDS: &[&str] = &[
    "users",
    "messages",
    "mailFolders",
    "$batch",
    "domains",
    "organization",
    "move",
    "permanentDelete",
    "childFolders",
];

type Endpoint = (
    &'static str,
    Option<&'static str>,
    Option<&'static str>,
    Option<&'static str>,
    &'static str,
);

/// Every endpoint class the client calls (anything else is `other`).
const ENDPOINTS: &[Endpoint] = &[
    ("GET", Some("users"), None, None, "users.get"),
    (
        "GET",
        Some("users"),
        Some("messages"),
        None,
        "messages.list",
    ),
    (
        "DELETE",
        Some("users"),
        Some("messages"),
        None,
        "messages.delete",
    ),
    (
        "POST",
        Some("users"),
        Some("messages"),
        Some("move"),
        "messages.move",
    ),
    (
        "POST",
        Some("users"),
        Some("messages"),
        Some("permanentDelete"),
        "messages.permanentDelete",
    ),
    (
        "GET",
        Some("users"),
        Some("mailFolders"),
        None,
        "mailFolders.get",
    ),
    (
        "GET",
        Some("users"),
        Some("mailFolders"),
        Some("childFolders"),
        "mailFolders.list",
    ),
    (
        "GET",
        Some("users"),
        Some("mailFolders"),
        Some("messages"),
        "messages.list",
    ),
    ("POST", Some("$batch"), None, None, "$batch"),
    ("GET", Some("domains"), None, None, "domains.list"),
    ("GET", Some("organization"), None, None, "organization.get"),
];

/// The endpoint class of identity-platform token requests.
pub const TOKEN_ENDPOINT: &str = "token";

#[cfg(test)]
mod tests {
    use super::*;
    use http::Method;

    #[test]
    fn graph_endpoints_never_carry_an_address_or_an_id() {
        let base = "http://127.0.0.1:1/v1.0";
        let cases = [
            (
                Method::GET,
                format!("{base}/users/alice@acme.example"),
                "users.get",
            ),
            (
                Method::GET,
                format!(
                    "{base}/users/alice@acme.example/messages?$filter=internetMessageId eq '<a/b@c>'"
                ),
                "messages.list",
            ),
            (
                Method::DELETE,
                format!("{base}/users/u-1/messages/AAMk=="),
                "messages.delete",
            ),
            (
                Method::POST,
                format!("{base}/users/u-1/messages/AAMk==/permanentDelete"),
                "messages.permanentDelete",
            ),
            (
                Method::POST,
                format!("{base}/users/u-1/messages/AAMk==/move"),
                "messages.move",
            ),
            (Method::POST, format!("{base}/$batch"), "$batch"),
            (Method::GET, format!("{base}/domains"), "domains.list"),
            (
                Method::GET,
                format!("{base}/users?$filter=mail eq 'x'"),
                "users.get",
            ),
            (Method::PATCH, format!("{base}/users/x"), "other"),
            (Method::GET, "http://elsewhere/users".to_owned(), "other"),
        ];
        for (method, url, want) in cases {
            assert_eq!(graph_endpoint(&method, &url), want, "{method} {url}");
        }
    }
}
