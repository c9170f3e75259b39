//! The layer around every simulated request: request ids, the request log, slow bodies.

use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::body::{Body, Bytes};
use axum::extract::{Request, State};
use axum::middleware::Next;
use axum::response::Response;
use http::HeaderValue;

use crate::core::Sim;
use crate::record::{BatchRef, CallInfo, CallSlot, RequestRecord, Service};
use crate::settings::Endpoint;

tokio::task_local! {
    /// The `request-id` of the request being served (error bodies repeat it).
    pub static REQUEST_ID: String;
}

/// The current request id, or a fresh placeholder outside a request.
pub fn current_request_id() -> String {
    REQUEST_ID.try_with(Clone::clone).unwrap_or_default()
}

/// Chunks a slow body is cut into.
const SLOW_BODY_CHUNKS: usize = 4;

/// Records a request even when its future is dropped (a dropped connection).
struct Pending {
    sim: Arc<Sim>,
    record: Option<RequestRecord>,
    slot: CallSlot,
}

impl Pending {
    fn finish(&mut self, status: Option<u16>) {
        let Some(mut record) = self.record.take() else {
            return;
        };
        let info: CallInfo = self.slot.lock().clone();
        let finished = Instant::now();
        record.status = status;
        record.endpoint = info.endpoint.unwrap_or(Endpoint::Unknown);
        record.tenant = info.tenant.or(record.tenant);
        record.app = info.app;
        record.mailbox = info.mailbox;
        record.fault = info.fault;
        record.finished = finished;
        record.finished_us = self.sim.micros_since_start(finished);
        let limit = self.sim.settings.read().max_recorded_requests;
        self.sim.recorder.push_request(record, limit);
    }
}

impl Drop for Pending {
    fn drop(&mut self) {
        self.finish(None);
    }
}

async fn observe(sim: Arc<Sim>, service: Service, mut request: Request, next: Next) -> Response {
    let started = Instant::now();
    let request_id = sim.next_request_id();
    let slot = CallSlot::default();
    request.extensions_mut().insert(slot.clone());
    let client_request_id = request.headers().get("client-request-id").cloned();
    let record = RequestRecord {
        seq: sim.recorder.next_seq(),
        request_id: request_id.clone(),
        service,
        method: request.method().as_str().to_owned(),
        path: request.uri().path().to_owned(),
        query: request.uri().query().map(str::to_owned),
        endpoint: Endpoint::Unknown,
        tenant: None,
        app: None,
        mailbox: None,
        status: None,
        fault: None,
        batch: request.extensions().get::<BatchRef>().cloned(),
        started_us: sim.micros_since_start(started),
        finished_us: 0,
        started,
        finished: started,
    };
    let mut pending = Pending {
        sim: sim.clone(),
        record: Some(record),
        slot: slot.clone(),
    };
    let mut response = REQUEST_ID
        .scope(request_id.clone(), next.run(request))
        .await;
    let headers = response.headers_mut();
    if let Ok(value) = HeaderValue::from_str(&request_id) {
        headers.insert("request-id", value.clone());
        headers.insert("client-request-id", client_request_id.unwrap_or(value));
    }
    pending.finish(Some(response.status().as_u16()));
    let (slow, delay) = {
        let slow = slot.lock().slow_body;
        (slow, sim.settings.read().faults.slow_body_chunk_delay_ms)
    };
    if slow {
        slow_down(response, Duration::from_millis(delay)).await
    } else {
        response
    }
}

/// Records Graph requests.
pub async fn observe_graph(State(sim): State<Arc<Sim>>, request: Request, next: Next) -> Response {
    observe(sim, Service::Graph, request, next).await
}

/// Records identity-platform requests.
pub async fn observe_identity(
    State(sim): State<Arc<Sim>>,
    request: Request,
    next: Next,
) -> Response {
    observe(sim, Service::Identity, request, next).await
}

/// Re-sends the body in chunks, each after `delay`.
async fn slow_down(response: Response, delay: Duration) -> Response {
    let (mut parts, body) = response.into_parts();
    let bytes = axum::body::to_bytes(body, usize::MAX)
        .await
        .unwrap_or_default();
    parts.headers.remove(http::header::CONTENT_LENGTH);
    let chunk_len = bytes.len().div_ceil(SLOW_BODY_CHUNKS).max(1);
    let chunks: Vec<Bytes> = bytes
        .chunks(chunk_len)
        .map(Bytes::copy_from_slice)
        .collect();
    let stream = futures::stream::unfold(chunks.into_iter(), move |mut rest| async move {
        let chunk = rest.next()?;
        tokio::time::sleep(delay).await;
        Some((Ok::<Bytes, std::convert::Infallible>(chunk), rest))
    });
    Response::from_parts(parts, Body::from_stream(stream))
}
