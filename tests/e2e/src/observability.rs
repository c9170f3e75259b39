//! What an operator watches (issue #16): the Prometheus endpoint scraped during a real retract
//! against graph-sim, and the OTLP spans of one retract as a collector receives them, in the
//! trace of the service that called us.
//!
//! The metrics recorder is the process's (as in production, one per process): other tests
//! running meanwhile only add to the counters, so the checks are on increases this retract
//! must cause, and on gauges only this server sets.

use std::{
    collections::HashMap,
    net::SocketAddr,
    sync::{Arc, Mutex},
    time::Duration,
};

use futures::StreamExt as _;
use graph_sim::{Endpoint, FaultSettings, Limits};
use opentelemetry_proto::tonic::{
    collector::trace::v1::{
        ExportTraceServiceRequest, ExportTraceServiceResponse,
        trace_service_server::{TraceService, TraceServiceServer},
    },
    common::v1::any_value,
    trace::v1::Span,
};
use retract_client::pb;

use crate::{
    db::Backend,
    scenarios::{PHISH, World, crowd},
};

const MAILBOXES: usize = 20;

/// The gauges read from a server's database when scraped (jobs by state, the pool) are the
/// process's, like every metric: two servers scraped at once would overwrite each other's.
/// The tests that scrape take turns.
static SCRAPING: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

fn soft_retract_of_everyone() -> pb::RetractOptions {
    pb::RetractOptions {
        internet_message_id: PHISH.into(),
        delete_mode: pb::DeleteMode::Soft.into(),
        ..Default::default()
    }
}

/// One scrape: each series (`name{labels}`) and its value.
struct Scrape {
    page: String,
    series: Vec<(String, HashMap<String, String>, f64)>,
}

impl Scrape {
    async fn of(addr: SocketAddr) -> Self {
        let page = reqwest::get(format!("http://{addr}/metrics"))
            .await
            .expect("scrape")
            .error_for_status()
            .expect("the metrics endpoint answers 200")
            .text()
            .await
            .expect("scrape body");
        let series = page
            .lines()
            .filter(|l| !l.starts_with('#') && !l.trim().is_empty())
            .filter_map(|line| {
                let (series, value) = line.rsplit_once(' ')?;
                let value: f64 = value.parse().ok()?;
                let (name, labels) = match series.split_once('{') {
                    Some((name, rest)) => (name, rest.trim_end_matches('}')),
                    None => (series, ""),
                };
                let labels = labels
                    .split("\",")
                    .filter_map(|pair| {
                        let (k, v) = pair.split_once("=\"")?;
                        Some((k.to_owned(), v.trim_end_matches('"').to_owned()))
                    })
                    .collect();
                Some((name.to_owned(), labels, value))
            })
            .collect();
        Self { page, series }
    }

    /// The sum of the series named `name` whose labels include `labels`.
    fn sum(&self, name: &str, labels: &[(&str, &str)]) -> f64 {
        self.series
            .iter()
            .filter(|(n, l, _)| {
                n == name
                    && labels
                        .iter()
                        .all(|(k, v)| l.get(*k).map(String::as_str) == Some(*v))
            })
            .map(|(_, _, v)| v)
            .sum()
    }
}

/// How much `name{labels}` grew from `before` to `after`.
fn grew(before: &Scrape, after: &Scrape, name: &str, labels: &[(&str, &str)]) -> f64 {
    after.sum(name, labels) - before.sum(name, labels)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_metrics_endpoint_shows_a_retracts_graph_traffic() {
    let _turn = SCRAPING.lock().await;
    // One mailbox at a time, 50 ms a Graph request: the job is still running (for seconds)
    // when the first mailbox is done and the endpoint is scraped.
    let w = crowd(Backend::Sqlite, MAILBOXES, |s| {
        s.metrics_listen = Some(SocketAddr::from(([127, 0, 0, 1], 0)));
        s.mailbox_concurrency = 1;
    })
    .await;
    w.sim.set_latency(graph_sim::LatencySettings {
        default: graph_sim::Latency::fixed(50),
        ..Default::default()
    });
    let metrics = w
        .app
        .metrics_addr
        .expect("metrics_listen binds an endpoint");
    // Microsoft throttles some message searches (Retry-After: 0 s, plus our jitter).
    w.sim.set_limits(Limits {
        retry_after_secs: 0,
        ..Default::default()
    });
    w.sim.set_faults(FaultSettings {
        throttle_429: 0.3,
        endpoints: vec![Endpoint::MessageList],
        ..Default::default()
    });
    let before = Scrape::of(metrics).await;
    w.app
        .service()
        .retract_service()
        .record_delivery(pb::RecordDeliveryRequest {
            tenant_id: "acme".into(),
            delivery: Some(pb::Delivery {
                internet_message_id: "<metrics-probe@vendor.example>".into(),
                sender: "billing@vendor.example".into(),
                subject: "Invoice".into(),
                delivery_time: Some(prost_types::Timestamp {
                    seconds: 1_750_000_000,
                    nanos: 0,
                }),
                recipients: vec!["user0@contoso.com".into()],
                ..Default::default()
            }),
        })
        .await
        .expect("record delivery");

    let mut stream = w.retract(soft_retract_of_everyone()).await;
    let mut during = None;
    let mut finished = false;
    while let Some(event) = stream.next().await {
        let event = event.expect("stream event").event.expect("an event");
        match event.kind.expect("event kind") {
            pb::retract_event::Kind::RecipientUpdate(u)
                if u.phase() == pb::RecipientPhase::Done && during.is_none() =>
            {
                during = Some(Scrape::of(metrics).await);
            }
            pb::retract_event::Kind::JobFinished(_) => finished = true,
            _ => {}
        }
    }
    assert!(finished, "the stream ends with JobFinished");
    let during = during.expect("a scrape while the job ran");

    // While it ran: the job in the database and the stream watching it.
    assert!(
        during.sum("retract_jobs", &[("state", "running")]) >= 1.0,
        "{}",
        during.page
    );
    assert!(during.sum("retract_watchers_open", &[]) >= 1.0);

    // The streamed RPC is counted when its stream has ended.
    let after = eventually(metrics, |after| {
        grew(
            &before,
            after,
            "retract_rpc_requests_total",
            &[("rpc", "retract.v1.RetractService/Retract"), ("code", "OK")],
        ) >= 1.0
    })
    .await;

    // Graph traffic, by endpoint class and status.
    let searches = grew(
        &before,
        &after,
        "retract_graph_requests_total",
        &[("endpoint", "messages.list")],
    );
    assert!(searches >= MAILBOXES as f64, "searches: {searches}");
    let deletes = grew(
        &before,
        &after,
        "retract_graph_requests_total",
        &[("endpoint", "messages.delete"), ("status", "204")],
    );
    assert!(deletes >= MAILBOXES as f64, "deletes: {deletes}");
    assert!(
        grew(
            &before,
            &after,
            "retract_graph_request_duration_seconds_count",
            &[("endpoint", "messages.delete")],
        ) >= MAILBOXES as f64
    );
    // Throttling: the 429s received, the retries, and the waits Retry-After asked for.
    let throttled = grew(
        &before,
        &after,
        "retract_graph_requests_total",
        &[("endpoint", "messages.list"), ("status", "429")],
    );
    assert!(throttled >= 1.0, "{}", after.page);
    assert!(
        grew(
            &before,
            &after,
            "retract_graph_throttled_total",
            &[("endpoint", "messages.list")],
        ) >= throttled
    );
    assert!(
        grew(
            &before,
            &after,
            "retract_graph_retries_total",
            &[("endpoint", "messages.list")],
        ) >= throttled
    );
    assert!(
        grew(
            &before,
            &after,
            "retract_graph_retry_after_wait_seconds_count",
            &[("endpoint", "messages.list")],
        ) >= throttled
    );
    assert!(
        grew(
            &before,
            &after,
            "retract_graph_retry_after_wait_seconds_sum",
            &[("endpoint", "messages.list")],
        ) > 0.0
    );
    // The engine: mailboxes finished, events written, the lease claimed.
    assert!(
        grew(
            &before,
            &after,
            "retract_targets_finished_total",
            &[("outcome", "deleted")],
        ) >= MAILBOXES as f64
    );
    assert!(
        grew(&before, &after, "retract_job_events_written_total", &[]) >= 2.0 * MAILBOXES as f64
    );
    assert!(
        grew(
            &before,
            &after,
            "retract_job_leases_total",
            &[("event", "claimed")]
        ) >= 1.0
    );
    // Ingestion, by tenant; the pool (SQLite: one connection).
    assert!(
        grew(
            &before,
            &after,
            "retract_deliveries_recorded_total",
            &[("tenant", "acme"), ("outcome", "created")],
        ) >= 1.0
    );
    assert_eq!(
        after.sum("retract_db_pool_connections", &[("state", "max")]),
        1.0
    );
    assert!(after.sum("retract_jobs", &[("state", "succeeded")]) >= 1.0);
    // Never a mailbox address, in a label or anywhere else.
    assert!(
        !after.page.contains('@'),
        "an address in the metrics: {}",
        after.page
    );
    w.app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_job_resumed_after_a_restart_counts_as_taken_over() {
    let _turn = SCRAPING.lock().await;
    let w = crowd(Backend::Sqlite, 6, |s| {
        s.metrics_listen = Some(SocketAddr::from(([127, 0, 0, 1], 0)));
        s.mailbox_concurrency = 1;
        s.job_lease_ms = 1_000;
        s.shutdown_grace_ms = 2_000;
    })
    .await;
    w.sim.set_latency(graph_sim::LatencySettings {
        default: graph_sim::Latency::fixed(100),
        ..Default::default()
    });
    let before = Scrape::of(w.app.metrics_addr.expect("metrics endpoint")).await;
    let job = w.start(soft_retract_of_everyone()).await;
    let mut progress = w.watch(job.job_id.clone(), 0).await;
    loop {
        let e = progress
            .next()
            .await
            .expect("an event")
            .expect("event")
            .event;
        if let Some(pb::retract_event::Kind::RecipientUpdate(u)) = e.and_then(|e| e.kind)
            && u.phase() == pb::RecipientPhase::Done
        {
            break;
        }
    }
    drop(progress);
    let World { sim, app } = w;
    let w = World {
        sim,
        app: app.restart().await,
    };
    wait_until_final(&w, &job.job_id).await;
    let after = Scrape::of(w.app.metrics_addr.expect("metrics endpoint")).await;
    assert!(
        grew(
            &before,
            &after,
            "retract_job_leases_total",
            &[("event", "taken_over")]
        ) >= 1.0,
        "{}",
        after.page
    );
    assert!(
        grew(
            &before,
            &after,
            "retract_job_leases_total",
            &[("event", "claimed")]
        ) >= 2.0
    );
    w.app.stop().await;
}

/// Scrapes until `ready` holds (a stream's end is counted just after the caller sees it).
async fn eventually(addr: SocketAddr, ready: impl Fn(&Scrape) -> bool) -> Scrape {
    for _ in 0..100 {
        let scrape = Scrape::of(addr).await;
        if ready(&scrape) {
            return scrape;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let last = Scrape::of(addr).await;
    panic!("the metrics never showed it: {}", last.page);
}

/// An OTLP/gRPC collector that keeps every span it is sent.
#[derive(Clone, Default)]
struct Collector {
    spans: Arc<Mutex<Vec<Span>>>,
}

#[tonic::async_trait]
impl TraceService for Collector {
    async fn export(
        &self,
        request: tonic::Request<ExportTraceServiceRequest>,
    ) -> Result<tonic::Response<ExportTraceServiceResponse>, tonic::Status> {
        let spans = request
            .into_inner()
            .resource_spans
            .into_iter()
            .flat_map(|r| r.scope_spans)
            .flat_map(|s| s.spans);
        self.spans
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .extend(spans);
        Ok(tonic::Response::new(ExportTraceServiceResponse::default()))
    }
}

fn attribute(span: &Span, key: &str) -> Option<String> {
    span.attributes
        .iter()
        .find(|a| a.key == key)
        .and_then(|a| a.value.as_ref())
        .and_then(|v| v.value.as_ref())
        .map(|v| match v {
            any_value::Value::StringValue(s) => s.clone(),
            any_value::Value::IntValue(i) => i.to_string(),
            other => format!("{other:?}"),
        })
}

/// The OTLP half runs a runtime of its own: the exporter's channel and the collector live
/// there, while the server runs on a second runtime whose threads have the exporting
/// subscriber as their default (the process has no global subscriber, so other tests stay
/// untraced).
#[test]
fn the_otlp_collector_sees_one_retract_in_the_callers_trace() {
    let exporter_side = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .expect("exporter runtime");
    let collector = Collector::default();
    let tracing = exporter_side.block_on(async {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind the collector");
        let addr = listener.local_addr().expect("collector address");
        tokio::spawn(
            tonic::transport::Server::builder()
                .add_service(TraceServiceServer::new(collector.clone()))
                .serve_with_incoming(tokio_stream::wrappers::TcpListenerStream::new(listener)),
        );
        retract_server::telemetry::Tracing::new(&format!("http://{addr}"))
            .expect("the OTLP exporter")
    });
    // While one dispatcher is registered, tracing-core decides whether a callsite is enabled
    // from the default of whichever thread reaches it first: one first reached by another
    // test's thread would stay disabled here. A second one (that wants nothing) makes it ask
    // every registered dispatcher instead.
    let _second = tracing::Dispatch::new(tracing::subscriber::NoSubscriber::default());
    let dispatch = retract_server::telemetry::dispatch(None, "info", Some(&tracing));
    let on_threads = dispatch.clone();
    let server_side = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .on_thread_start(move || {
            // For the thread's whole life (it ends with the runtime).
            std::mem::forget(tracing::dispatcher::set_default(&on_threads));
        })
        .build()
        .expect("server runtime");
    let _main = tracing::dispatcher::set_default(&dispatch);

    // The calling service's trace: its own span, our RPC's parent.
    let trace_id = hex::encode(uuid::Uuid::new_v4().as_bytes());
    let caller_span = hex::encode(&uuid::Uuid::new_v4().as_bytes()[..8]);
    let traceparent = format!("00-{trace_id}-{caller_span}-01");

    let (job_id, graph_request_ids) = server_side.block_on(async {
        let w = crowd(Backend::Sqlite, 3, |_| {}).await;
        let job_id = start_in_trace(&w, &traceparent).await;
        wait_until_final(&w, &job_id).await;
        let ids: Vec<String> = w.sim.requests().into_iter().map(|r| r.request_id).collect();
        w.app.stop().await;
        (job_id, ids)
    });
    drop(server_side);
    tracing.flush().expect("spans flushed to the collector");

    let spans = collector
        .spans
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
        .clone();
    let ours: Vec<&Span> = spans
        .iter()
        .filter(|s| hex::encode(&s.trace_id) == trace_id)
        .collect();
    let names: Vec<&str> = ours.iter().map(|s| s.name.as_str()).collect();
    let rpc = ours
        .iter()
        .find(|s| s.name == "retract.v1.RetractService/StartRetract")
        .unwrap_or_else(|| panic!("the RPC's span is in the caller's trace: {names:?}"));
    assert_eq!(
        hex::encode(&rpc.parent_span_id),
        caller_span,
        "the caller's span is the RPC's parent"
    );
    let run = ours
        .iter()
        .find(|s| s.name == "retract.job.run")
        .unwrap_or_else(|| panic!("the job run is in the caller's trace: {names:?}"));
    assert_eq!(attribute(run, "job_id").as_deref(), Some(job_id.as_str()));
    assert_eq!(
        run.parent_span_id, rpc.span_id,
        "the job run follows its RPC"
    );
    // Graph calls: children of the run, each with the request id Graph answered with.
    let graph: Vec<&&Span> = ours
        .iter()
        .filter(|s| attribute(s, "graph.request_id").is_some())
        .collect();
    for endpoint in ["messages.list", "messages.delete"] {
        let calls: Vec<_> = graph.iter().filter(|s| s.name == endpoint).collect();
        assert_eq!(calls.len(), 3, "one {endpoint} per mailbox: {names:?}");
        for call in calls {
            assert_eq!(
                call.parent_span_id, run.span_id,
                "{endpoint} is the run's child"
            );
            let id = attribute(call, "graph.request_id").unwrap_or_default();
            assert!(
                graph_request_ids.contains(&id),
                "{id} is a request id graph-sim answered with"
            );
            assert_eq!(
                attribute(call, "http.response.status_code").as_deref(),
                Some(if endpoint == "messages.list" {
                    "200"
                } else {
                    "204"
                })
            );
        }
    }
    // Nothing of another trace leaks into this one, and no address names a span.
    assert!(ours.iter().all(|s| !s.name.contains('@')), "{names:?}");
}

async fn start_in_trace(w: &World, traceparent: &str) -> String {
    let mut request = tonic::Request::new(pb::StartRetractRequest {
        tenant_id: "acme".into(),
        options: Some(soft_retract_of_everyone()),
        request_id: uuid::Uuid::new_v4().to_string(),
    });
    request.metadata_mut().insert(
        "traceparent",
        traceparent.parse().expect("a metadata value"),
    );
    w.admin()
        .retract_service()
        .start_retract(request)
        .await
        .expect("the retract starts")
        .into_inner()
        .job
        .expect("the job")
        .job_id
}

async fn wait_until_final(w: &World, job_id: &str) {
    tokio::time::timeout(Duration::from_secs(20), async {
        loop {
            let job = w.job(job_id).await;
            if job.state() == pb::JobState::Succeeded {
                return;
            }
            assert!(
                matches!(
                    job.state(),
                    pb::JobState::Queued | pb::JobState::Running | pb::JobState::Unspecified
                ),
                "{job:?}"
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    })
    .await
    .expect("the job succeeds");
}
