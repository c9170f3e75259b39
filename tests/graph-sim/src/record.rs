//! What happened: every request and every throttle response, for tests to assert on.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Instant;

use parking_lot::Mutex;
use serde::Serialize;

use crate::settings::Endpoint;
use crate::throttle::ThrottleReason;

/// Which of the two simulated services answered.
#[derive(Clone, Copy, Debug, Serialize, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum Service {
    Graph,
    Identity,
}

/// A fault the simulator injected into a request.
#[derive(Clone, Copy, Debug, Serialize, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum Fault {
    Error500,
    Error502,
    Error503,
    Error504,
    Throttle429,
    /// 429 because a storm was running.
    Storm,
    DropConnection,
    SlowBody,
}

/// The `$batch` request a sub-request belonged to.
#[derive(Clone, Debug, Serialize, PartialEq, Eq)]
pub struct BatchRef {
    /// `request-id` of the outer `$batch` request.
    pub batch_request_id: String,
    /// The sub-request's `id` in the batch.
    pub item_id: String,
}

/// One HTTP request (or `$batch` sub-request) as the simulator saw it.
#[derive(Clone, Debug, Serialize)]
pub struct RequestRecord {
    /// Order of arrival.
    pub seq: u64,
    /// The `request-id` the simulator answered with.
    pub request_id: String,
    pub service: Service,
    pub method: String,
    /// Path, percent-encoded as sent.
    pub path: String,
    /// Raw query string, percent-encoded as sent.
    pub query: Option<String>,
    pub endpoint: Endpoint,
    /// Microsoft tenant: from the token for Graph, from the path for the identity platform.
    pub tenant: Option<String>,
    /// Client id of the calling app.
    pub app: Option<String>,
    /// Primary SMTP address of the mailbox a mail call addressed.
    pub mailbox: Option<String>,
    /// `None` when the connection was dropped without an answer.
    pub status: Option<u16>,
    pub fault: Option<Fault>,
    pub batch: Option<BatchRef>,
    /// Arrival, microseconds since the simulator started.
    pub started_us: u64,
    /// Answer (headers) sent, microseconds since the simulator started.
    pub finished_us: u64,
    #[serde(skip)]
    pub started: Instant,
    #[serde(skip)]
    pub finished: Instant,
}

/// One 429 (or throttling 503) the simulator sent.
#[derive(Clone, Debug, Serialize)]
pub struct ThrottleEvent {
    pub request_id: String,
    pub app: String,
    pub tenant: Option<String>,
    pub mailbox: Option<String>,
    pub reason: ThrottleReason,
    pub retry_after_secs: u64,
    pub at_us: u64,
    #[serde(skip)]
    pub at: Instant,
}

/// Facts a handler learns while serving one request, read by the recording middleware.
#[derive(Debug, Default, Clone)]
pub struct CallInfo {
    pub endpoint: Option<Endpoint>,
    pub tenant: Option<String>,
    pub app: Option<String>,
    pub mailbox: Option<String>,
    pub fault: Option<Fault>,
    pub slow_body: bool,
}

/// Shared between the middleware and the handler of one request.
pub type CallSlot = Arc<Mutex<CallInfo>>;

/// The request and throttle logs.
#[derive(Debug, Default)]
pub struct Recorder {
    requests: Mutex<Vec<RequestRecord>>,
    throttles: Mutex<Vec<ThrottleEvent>>,
    dropped: AtomicU64,
    seq: AtomicU64,
}

impl Recorder {
    pub fn next_seq(&self) -> u64 {
        self.seq.fetch_add(1, Ordering::Relaxed)
    }

    pub fn push_request(&self, record: RequestRecord, limit: usize) {
        let mut requests = self.requests.lock();
        if requests.len() >= limit {
            self.dropped.fetch_add(1, Ordering::Relaxed);
            return;
        }
        requests.push(record);
    }

    pub fn push_throttle(&self, event: ThrottleEvent) {
        self.throttles.lock().push(event);
    }

    /// Requests in order of arrival.
    pub fn requests(&self) -> Vec<RequestRecord> {
        let mut requests = self.requests.lock().clone();
        requests.sort_by_key(|r| r.seq);
        requests
    }

    pub fn throttles(&self) -> Vec<ThrottleEvent> {
        self.throttles.lock().clone()
    }

    pub fn request_count(&self) -> usize {
        self.requests.lock().len()
    }

    pub fn dropped(&self) -> u64 {
        self.dropped.load(Ordering::Relaxed)
    }

    pub fn clear(&self) {
        self.requests.lock().clear();
        self.throttles.lock().clear();
        self.dropped.store(0, Ordering::Relaxed);
    }
}
