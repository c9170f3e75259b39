//! What the server tells its operators: structured logs, Prometheus metrics, OpenTelemetry
//! traces.
//!
//! # Layout
//! - this file: the `tracing` subscriber (logs, human-readable by default or JSON lines,
//!   plus the OTLP span layer when traces are exported).
//! - [`metrics`]: every metric's name and meaning, as one-line helpers for the call sites.
//! - [`rpc`]: the tower layer that counts and times every RPC by gRPC code.
//! - [`traces`]: the OTLP exporter, W3C trace context from callers, job runs as children of
//!   the RPC that created them.

pub mod metrics;
pub mod rpc;
pub mod traces;

use tracing_subscriber::{EnvFilter, Layer, Registry, filter, fmt, layer::Layered, prelude::*};

use crate::config::LogFormat;

pub use traces::Tracing;

/// Installs the global subscriber: logs in `format`, plus spans to `tracing` when traces are
/// exported. `RUST_LOG`, when set, takes precedence over `filter`. Calling it again (as
/// tests do) leaves the first subscriber in place.
pub fn init(format: LogFormat, filter: &str, tracing: Option<&Tracing>) {
    let _already_set = dispatch(Some(format), filter, tracing).try_init();
}

/// The subscriber [`init`] installs, not installed: logs in `format` (none for `None`) and
/// spans to `tracing`. A test sets it as the default of its own threads.
pub fn dispatch(
    format: Option<LogFormat>,
    filter: &str,
    tracing: Option<&Tracing>,
) -> tracing::Dispatch {
    type Filtered = Layered<EnvFilter, Registry>;
    let filter = EnvFilter::try_from_default_env()
        .or_else(|_| EnvFilter::try_new(filter))
        .unwrap_or_else(|_| EnvFilter::new("info"));
    let mut layers: Vec<Box<dyn Layer<Filtered> + Send + Sync>> = Vec::new();
    match format {
        Some(LogFormat::Human) => layers.push(
            fmt::layer()
                .with_target(true)
                .with_filter(filter::filter_fn(logged))
                .boxed(),
        ),
        Some(LogFormat::Json) => layers.push(
            fmt::layer()
                .json()
                .flatten_event(true)
                .with_current_span(false)
                .with_filter(filter::filter_fn(logged))
                .boxed(),
        ),
        None => {}
    }
    if let Some(tracing) = tracing {
        layers.push(tracing.layer().boxed());
    }
    tracing::Dispatch::new(tracing_subscriber::registry().with(filter).with(layers))
}

/// What the log layers see: every event, and every span except one per Graph request
/// (`graph.request`, two or more per mailbox). Such a span's fields would be formatted for the
/// logs on every request although no log line needs them (the events inside say what they
/// are about); traces still get it. Without trace export the span is then not built at all.
fn logged(meta: &tracing::Metadata<'_>) -> bool {
    !(meta.is_span() && meta.name() == "graph.request")
}
