//! OpenTelemetry traces over OTLP/gRPC, when `otlp_endpoint` is set: the server's `tracing`
//! spans (one per RPC, one per job run, one per Graph request) become OTLP spans through
//! `tracing-opentelemetry`. A caller's W3C `traceparent` header becomes the RPC span's
//! parent, so the calling service sees our part of its trace; a job run continues the trace
//! of the RPC that created the job, when it runs in the same process.

use std::{
    collections::HashMap,
    sync::{Mutex, PoisonError},
    time::Duration,
};

use opentelemetry::{
    KeyValue,
    propagation::{Extractor, TextMapPropagator as _},
    trace::{TraceContextExt as _, TracerProvider as _},
};
use opentelemetry_otlp::WithExportConfig as _;
use opentelemetry_sdk::{Resource, propagation::TraceContextPropagator, trace::SdkTracerProvider};
use tracing_opentelemetry::OpenTelemetrySpanExt as _;

/// Exports spans to an OTLP collector until dropped (then flushes what is left).
pub struct Tracing {
    provider: SdkTracerProvider,
}

impl Tracing {
    /// An exporter to the OTLP/gRPC collector at `endpoint` (e.g. `http://127.0.0.1:4317`).
    /// Needs a Tokio runtime (tonic's channel runs on it).
    pub fn new(endpoint: &str) -> Result<Self, String> {
        let exporter = opentelemetry_otlp::SpanExporter::builder()
            .with_tonic()
            .with_endpoint(endpoint)
            .with_timeout(Duration::from_secs(5))
            .build()
            .map_err(|e| format!("OTLP exporter for {endpoint}: {e}"))?;
        let provider = SdkTracerProvider::builder()
            .with_batch_exporter(exporter)
            .with_resource(
                Resource::builder()
                    .with_attributes([KeyValue::new("service.name", "retract-server")])
                    .build(),
            )
            .build();
        Ok(Self { provider })
    }

    /// The `tracing` layer that turns spans into OTLP spans.
    pub fn layer<S>(&self) -> impl tracing_subscriber::Layer<S> + use<S>
    where
        S: tracing::Subscriber + for<'span> tracing_subscriber::registry::LookupSpan<'span>,
    {
        tracing_opentelemetry::layer().with_tracer(self.provider.tracer("retract-server"))
    }

    /// Sends the spans ended so far.
    pub fn flush(&self) -> Result<(), String> {
        self.provider.force_flush().map_err(|e| e.to_string())
    }
}

impl Drop for Tracing {
    fn drop(&mut self) {
        if let Err(err) = self.provider.shutdown() {
            tracing::debug!(error = %err, "OTLP exporter shutdown");
        }
    }
}

/// Makes `span` a child of the W3C trace context in `headers` (`traceparent`, `tracestate`),
/// when there is a valid one. Without an OpenTelemetry layer this does nothing.
pub fn continue_remote_trace(span: &tracing::Span, headers: &http::HeaderMap) {
    if headers.get("traceparent").is_none() {
        return;
    }
    let parent = TraceContextPropagator::new().extract(&Headers(headers));
    if parent.span().span_context().is_valid() {
        let _ignored = span.set_parent(parent);
    }
}

struct Headers<'a>(&'a http::HeaderMap);

impl Extractor for Headers<'_> {
    fn get(&self, key: &str) -> Option<&str> {
        self.0.get(key).and_then(|v| v.to_str().ok())
    }

    fn keys(&self) -> Vec<&str> {
        self.0.keys().map(http::HeaderName::as_str).collect()
    }
}

/// Jobs created here: the trace context of the RPC that created each, for its runs (a job
/// resumed here continues the same trace). Bounded: past [`PENDING_MAX`] the map is cleared
/// (those runs start traces of their own), so it never grows without end; a job run by
/// another replica starts a trace there (the context is not stored with the job).
static PENDING: Mutex<Option<HashMap<String, opentelemetry::Context>>> = Mutex::new(None);
const PENDING_MAX: usize = 10_000;

/// Remembers the current span's trace for the run of job `job` (called where the job is
/// created). Nothing is kept when no trace is being recorded.
pub fn job_created(job: &str) {
    let cx = tracing::Span::current().context();
    if !cx.span().span_context().is_valid() {
        return;
    }
    let mut pending = PENDING.lock().unwrap_or_else(PoisonError::into_inner);
    let map = pending.get_or_insert_with(HashMap::new);
    if map.len() >= PENDING_MAX {
        map.clear();
    }
    map.insert(job.to_owned(), cx);
}

/// The span of one run of job `job`: a child of the RPC that created the job when that
/// happened in this process, else the root of a trace of its own.
pub fn job_run_span(job: &str) -> tracing::Span {
    let span = tracing::info_span!("retract.job", otel.name = "retract.job.run", job_id = %job);
    let parent = PENDING
        .lock()
        .unwrap_or_else(PoisonError::into_inner)
        .as_ref()
        .and_then(|m| m.get(job).cloned());
    if let Some(parent) = parent {
        let _ignored = span.set_parent(parent);
    }
    span
}
