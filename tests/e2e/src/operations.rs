//! What operators see: health that follows the database and shutdown, reflection for grpcurl,
//! gRPC-Web for browsers, and a shutdown that does not hang on open streams.

use std::time::Duration;

use futures::StreamExt as _;
use tokio_stream::wrappers::ReceiverStream;
use tonic_health::pb::{
    HealthCheckRequest, health_check_response::ServingStatus, health_client::HealthClient,
};
use tonic_reflection::pb::{v1, v1alpha};

use crate::{app::TestApp, db::Backend, on_both_backends};

on_both_backends!(
    health_reports_every_service_serving_without_a_token,
    health_follows_the_database_through_an_outage,
    shutdown_reports_not_serving_and_ends_open_streams_within_the_grace_period,
    reflection_lists_all_three_services_over_v1_and_v1alpha,
    browsers_reach_the_service_over_grpc_web_from_allowed_origins_only,
    liveness_stays_serving_while_readiness_follows_the_database,
    readiness_waits_for_every_migration_and_the_engine,
    readiness_is_lost_while_the_retract_engine_does_not_run,
);

const SERVICES: [&str; 4] = [
    "",
    "retract.v1.TenantService",
    "retract.v1.RetractService",
    "retract.v1.AuditService",
];

async fn health_reports_every_service_serving_without_a_token(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let mut health = HealthClient::new(app.anonymous().channel());
    for service in SERVICES {
        let status = wait_for(&mut health, service, ServingStatus::Serving).await;
        assert_eq!(status, ServingStatus::Serving, "{service:?}");
    }
    let unknown = health
        .check(HealthCheckRequest {
            service: "retract.v1.Nope".into(),
        })
        .await
        .unwrap_err();
    assert_eq!(unknown.code(), tonic::Code::NotFound);
    app.stop().await;
}

async fn health_follows_the_database_through_an_outage(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let mut health = HealthClient::new(app.anonymous().channel());
    let mut watch = health
        .watch(HealthCheckRequest {
            service: "retract.v1.TenantService".into(),
        })
        .await
        .unwrap()
        .into_inner();
    next_status_until(&mut watch, ServingStatus::Serving).await;

    let outage = app.database_outage().await;
    next_status_until(&mut watch, ServingStatus::NotServing).await;
    let overall = health
        .check(HealthCheckRequest {
            service: String::new(),
        })
        .await
        .unwrap()
        .into_inner()
        .status();
    assert_eq!(
        overall,
        ServingStatus::NotServing,
        "the overall status follows too"
    );

    outage.end().await;
    next_status_until(&mut watch, ServingStatus::Serving).await;
    app.create_tenant("after-outage").await;
    app.stop().await;
}

async fn shutdown_reports_not_serving_and_ends_open_streams_within_the_grace_period(
    backend: Backend,
) {
    let app = TestApp::spawn(backend).await;
    let mut health = HealthClient::new(app.anonymous().channel());
    let mut watch = health
        .watch(HealthCheckRequest {
            service: String::new(),
        })
        .await
        .unwrap()
        .into_inner();
    next_status_until(&mut watch, ServingStatus::Serving).await;
    let watcher = tokio::spawn(async move {
        let mut seen = Vec::new();
        while let Some(Ok(update)) = watch.next().await {
            seen.push(update.status());
        }
        seen
    });
    // The grace period is 1 s; the open Watch stream must not hold the server longer.
    app.stop_within(Duration::from_secs(10)).await;
    let seen = tokio::time::timeout(Duration::from_secs(10), watcher)
        .await
        .expect("the watch stream ends once the server is gone")
        .unwrap();
    assert!(seen.contains(&ServingStatus::NotServing), "saw {seen:?}");
}

/// The two probes an orchestrator uses: a database outage makes the replica unready (no
/// traffic) but not dead (no restart); shutdown turns both NOT_SERVING.
async fn liveness_stays_serving_while_readiness_follows_the_database(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let mut health = HealthClient::new(app.anonymous().channel());
    assert_eq!(
        wait_for(&mut health, "liveness", ServingStatus::Serving).await,
        ServingStatus::Serving
    );
    let mut readiness = health
        .watch(HealthCheckRequest {
            service: "readiness".into(),
        })
        .await
        .unwrap()
        .into_inner();
    next_status_until(&mut readiness, ServingStatus::Serving).await;

    let outage = app.database_outage().await;
    next_status_until(&mut readiness, ServingStatus::NotServing).await;
    assert_eq!(
        check(&mut health, "liveness").await,
        ServingStatus::Serving,
        "a database outage is no reason to restart the process"
    );
    outage.end().await;
    next_status_until(&mut readiness, ServingStatus::Serving).await;

    let mut liveness = health
        .watch(HealthCheckRequest {
            service: "liveness".into(),
        })
        .await
        .unwrap()
        .into_inner();
    next_status_until(&mut liveness, ServingStatus::Serving).await;
    let seen = tokio::spawn(async move {
        let (mut live, mut ready) = (Vec::new(), Vec::new());
        while let Some(Ok(update)) = liveness.next().await {
            live.push(update.status());
        }
        while let Some(Ok(update)) = readiness.next().await {
            ready.push(update.status());
        }
        (live, ready)
    });
    app.stop_within(Duration::from_secs(10)).await;
    let (live, ready) = tokio::time::timeout(Duration::from_secs(10), seen)
        .await
        .expect("the watches end with the server")
        .unwrap();
    assert!(
        live.contains(&ServingStatus::NotServing),
        "liveness {live:?}"
    );
    assert!(
        ready.contains(&ServingStatus::NotServing),
        "readiness {ready:?}"
    );
}

/// A replica whose database lacks migrations this build knows (an operator who migrates
/// separately has not yet) is alive and reachable but not ready; once the migrations are
/// applied, and its retract engine runs, it is.
async fn readiness_waits_for_every_migration_and_the_engine(backend: Backend) {
    let (sim, _) = crate::scenarios::crowd_sim(1).await;
    let db = crate::db::TestDb::empty(backend).await;
    let url = db.url.clone();
    let app = TestApp::spawn_on(db, |s| {
        s.migrate_on_start = false;
        s.graph_base_url = sim.graph_base_url();
        s.login_base_url = sim.login_base_url();
        s.graph_client_id = crate::scenarios::CLIENT_ID.to_owned();
        s.graph_client_secret = Some(crate::scenarios::CLIENT_SECRET.into());
    })
    .await;
    let mut health = HealthClient::new(app.anonymous().channel());
    assert_eq!(
        wait_for(&mut health, "liveness", ServingStatus::Serving).await,
        ServingStatus::Serving
    );
    // Several probes later, still not ready.
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(
        check(&mut health, "readiness").await,
        ServingStatus::NotServing,
        "not ready while migrations are missing"
    );
    let conn = sea_orm::Database::connect(url.as_str()).await.unwrap();
    retract_migrations::migrate(&conn).await.unwrap();
    conn.close().await.ok();
    assert_eq!(
        wait_for(&mut health, "readiness", ServingStatus::Serving).await,
        ServingStatus::Serving
    );
    assert!(app.health().engine.is_running(), "the engine runs");
    app.stop().await;
}

/// Readiness follows the retract engine's supervised loop: with a Graph app registration, a
/// replica whose engine does not run (its loop ended, or not started again yet after a
/// panic) gets no traffic, though its database answers and is migrated. The probe here is
/// the server's own (`follow_database`) over the app's database and credential, following
/// an engine of the test's on that database, whose loop the test starts and stops.
async fn readiness_is_lost_while_the_retract_engine_does_not_run(backend: Backend) {
    use retract_server::{
        engine::{Engine, EventHub},
        graph::{AppTokens, GraphClient, http_client},
        health::{ServiceHealth, follow_database, set_all},
    };
    use tonic_health::{
        pb::health_server::Health as _,
        server::{HealthReporter, HealthService},
    };

    let (sim, _) = crate::scenarios::crowd_sim(1).await;
    let app = crate::scenarios::app_against(backend, &sim, |_| {}).await;
    let graph = app
        .settings()
        .graph()
        .unwrap()
        .expect("an app registration");
    let http = http_client(&graph).unwrap();
    let tokens = std::sync::Arc::new(AppTokens::new(graph.clone(), http.clone()));
    let store = app.store().await;
    let engine = Engine::new(
        store.clone(),
        Some(GraphClient::new(&graph, http, tokens)),
        app.settings().engine(),
        std::sync::Arc::new(EventHub::default()),
    );
    let reporter = HealthReporter::new();
    set_all(&reporter, tonic_health::ServingStatus::NotServing).await;
    let probes = tokio_util::sync::CancellationToken::new();
    let (every, timeout) = app.settings().health_probe();
    tokio::spawn(follow_database(
        store,
        reporter.clone(),
        ServiceHealth {
            engine: engine.health(),
            graph_credential: Some(graph.credential.clone()),
        },
        every,
        timeout,
        probes.clone(),
    ));
    let mut readiness = HealthService::from_health_reporter(reporter)
        .watch(tonic::Request::new(HealthCheckRequest {
            service: "readiness".into(),
        }))
        .await
        .unwrap()
        .into_inner();

    for _ in 0..2 {
        let stop = tokio_util::sync::CancellationToken::new();
        let running = tokio::spawn(engine.clone().run_supervised(stop.clone()));
        next_status_until(&mut readiness, ServingStatus::Serving).await;
        stop.cancel();
        running.await.unwrap();
        assert!(!engine.health().is_running());
        next_status_until(&mut readiness, ServingStatus::NotServing).await;
    }
    // The database was fine throughout: the app's own replica, whose engine runs, is ready.
    let mut health = HealthClient::new(app.anonymous().channel());
    assert_eq!(
        check(&mut health, "readiness").await,
        ServingStatus::Serving
    );
    probes.cancel();
    app.stop().await;
}

async fn check(
    health: &mut HealthClient<tonic::transport::Channel>,
    service: &str,
) -> ServingStatus {
    health
        .check(HealthCheckRequest {
            service: service.into(),
        })
        .await
        .unwrap()
        .into_inner()
        .status()
}

async fn reflection_lists_all_three_services_over_v1_and_v1alpha(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let channel = app.anonymous().channel();

    let (tx, rx) = tokio::sync::mpsc::channel(2);
    tx.send(v1::ServerReflectionRequest {
        host: String::new(),
        message_request: Some(v1::server_reflection_request::MessageRequest::ListServices(
            String::new(),
        )),
    })
    .await
    .unwrap();
    tx.send(v1::ServerReflectionRequest {
        host: String::new(),
        message_request: Some(
            v1::server_reflection_request::MessageRequest::FileContainingSymbol(
                "google.rpc.BadRequest".into(),
            ),
        ),
    })
    .await
    .unwrap();
    drop(tx);
    let mut responses = v1::server_reflection_client::ServerReflectionClient::new(channel.clone())
        .server_reflection_info(ReceiverStream::new(rx))
        .await
        .unwrap()
        .into_inner();
    let Some(v1::server_reflection_response::MessageResponse::ListServicesResponse(list)) =
        responses.next().await.unwrap().unwrap().message_response
    else {
        panic!("expected a service list")
    };
    let names: Vec<_> = list.service.into_iter().map(|s| s.name).collect();
    for service in &SERVICES[1..] {
        assert!(
            names.iter().any(|n| n == service),
            "{service} missing from {names:?}"
        );
    }
    let Some(v1::server_reflection_response::MessageResponse::FileDescriptorResponse(files)) =
        responses.next().await.unwrap().unwrap().message_response
    else {
        panic!("google.rpc.BadRequest is resolvable, so grpcurl can print error details")
    };
    assert!(!files.file_descriptor_proto.is_empty());

    let (tx, rx) = tokio::sync::mpsc::channel(1);
    tx.send(v1alpha::ServerReflectionRequest {
        host: String::new(),
        message_request: Some(
            v1alpha::server_reflection_request::MessageRequest::ListServices(String::new()),
        ),
    })
    .await
    .unwrap();
    drop(tx);
    let mut responses = v1alpha::server_reflection_client::ServerReflectionClient::new(channel)
        .server_reflection_info(ReceiverStream::new(rx))
        .await
        .unwrap()
        .into_inner();
    let Some(v1alpha::server_reflection_response::MessageResponse::ListServicesResponse(list)) =
        responses.next().await.unwrap().unwrap().message_response
    else {
        panic!("expected a service list over v1alpha")
    };
    let names: Vec<_> = list.service.into_iter().map(|s| s.name).collect();
    for service in &SERVICES[1..] {
        assert!(
            names.iter().any(|n| n == service),
            "{service} missing from v1alpha {names:?}"
        );
    }
    app.stop().await;
}

async fn browsers_reach_the_service_over_grpc_web_from_allowed_origins_only(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let http = reqwest::Client::builder().http1_only().build().unwrap();
    let url = format!("http://{}/grpc.health.v1.Health/Check", app.addr);

    // An empty HealthCheckRequest in one gRPC-Web frame: flag 0, length 0.
    let response = http
        .post(&url)
        .header("content-type", "application/grpc-web+proto")
        .header("x-grpc-web", "1")
        .header("origin", "https://portal.example")
        .body(vec![0u8, 0, 0, 0, 0])
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    assert_eq!(response.version(), http::Version::HTTP_11);
    assert_eq!(
        response.headers()["access-control-allow-origin"],
        "https://portal.example"
    );
    let body = response.bytes().await.unwrap();
    let text = String::from_utf8_lossy(&body);
    assert!(
        text.contains("grpc-status:0"),
        "trailers in the body: {text:?}"
    );

    let preflight = |origin: &'static str| {
        http.request(reqwest::Method::OPTIONS, &url)
            .header("origin", origin)
            .header("access-control-request-method", "POST")
            .header(
                "access-control-request-headers",
                "content-type,x-grpc-web,authorization",
            )
            .send()
    };
    let allowed = preflight("https://portal.example").await.unwrap();
    assert_eq!(
        allowed.headers()["access-control-allow-origin"],
        "https://portal.example"
    );
    let refused = preflight("https://evil.example").await.unwrap();
    assert!(
        refused
            .headers()
            .get("access-control-allow-origin")
            .is_none(),
        "other origins get no CORS grant"
    );
    app.stop().await;
}

/// Polls Check until `service` reports `wanted` (the first probe runs right after start).
async fn wait_for(
    health: &mut HealthClient<tonic::transport::Channel>,
    service: &str,
    wanted: ServingStatus,
) -> ServingStatus {
    let mut watch = health
        .watch(HealthCheckRequest {
            service: service.into(),
        })
        .await
        .unwrap()
        .into_inner();
    next_status_until(&mut watch, wanted).await;
    health
        .check(HealthCheckRequest {
            service: service.into(),
        })
        .await
        .unwrap()
        .into_inner()
        .status()
}

/// Reads a Watch stream until it reports `wanted`, failing after 20 s.
async fn next_status_until(
    watch: &mut (
             impl futures::Stream<Item = Result<tonic_health::pb::HealthCheckResponse, tonic::Status>>
             + Unpin
         ),
    wanted: ServingStatus,
) {
    let reached = tokio::time::timeout(Duration::from_secs(20), async {
        while let Some(update) = watch.next().await {
            if update.expect("watch stream").status() == wanted {
                return true;
            }
        }
        false
    })
    .await;
    assert_eq!(reached, Ok(true), "health never reported {wanted:?}");
}

on_both_backends!(
    health_answers_while_every_call_slot_is_taken,
    a_caller_with_calls_in_progress_is_refused_more_while_others_are_served,
    retention_removes_a_finished_job_in_small_transactions,
);

/// A slow call: VerifyDomains as `client`, its Graph request held by the simulator.
fn slow_verification(
    client: retract_client::Client,
) -> tokio::task::JoinHandle<Result<(), tonic::Status>> {
    tokio::spawn(async move {
        client
            .tenant_service()
            .verify_domains(retract_client::pb::VerifyDomainsRequest {
                tenant_id: "acme".into(),
            })
            .await
            .map(|_| ())
    })
}

async fn until_held(hold: &graph_sim::Hold, n: usize) {
    tokio::time::timeout(Duration::from_secs(10), async {
        while hold.waiting() < n {
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    })
    .await
    .expect("the slow calls reach Microsoft");
}

async fn health_answers_while_every_call_slot_is_taken(backend: Backend) {
    let w = crate::scenarios::crowd(backend, 1, |s| {
        s.concurrency_limit = 2;
        s.caller_calls_in_progress = 0;
    })
    .await;
    let hold = w.sim.hold_graph_requests();
    let slow = [
        slow_verification(w.app.service()),
        slow_verification(w.admin()),
    ];
    until_held(&hold, 2).await;

    let mut health = HealthClient::new(w.app.anonymous().channel());
    let answer = tokio::time::timeout(
        Duration::from_secs(2),
        health.check(HealthCheckRequest {
            service: String::new(),
        }),
    )
    .await
    .expect("health does not wait behind the concurrency limit")
    .expect("health answers");
    assert_eq!(answer.into_inner().status(), ServingStatus::Serving);

    // Business calls do wait for a slot.
    let waiting = tokio::time::timeout(
        Duration::from_millis(300),
        w.app
            .service()
            .tenant_service()
            .list_tenants(retract_client::pb::ListTenantsRequest::default()),
    )
    .await;
    assert!(
        waiting.is_err(),
        "a third call waits for one of the two slots"
    );
    hold.release();
    for call in slow {
        call.await.unwrap().expect("the slow calls finish");
    }
    w.app.stop().await;
}

async fn a_caller_with_calls_in_progress_is_refused_more_while_others_are_served(backend: Backend) {
    let w = crate::scenarios::crowd(backend, 1, |s| s.caller_calls_in_progress = 1).await;
    let hold = w.sim.hold_graph_requests();
    let slow = slow_verification(w.admin());
    until_held(&hold, 1).await;

    let list = |client: retract_client::Client| async move {
        client
            .tenant_service()
            .list_domains(retract_client::pb::ListDomainsRequest {
                tenant_id: "acme".into(),
                ..Default::default()
            })
            .await
    };
    let refused = crate::status::expect_failure(list(w.admin()).await);
    assert_eq!(
        (refused.code, refused.reason.as_str()),
        (tonic::Code::ResourceExhausted, "RATE_LIMITED")
    );
    assert!(
        refused.message.contains("in progress"),
        "{}",
        refused.message
    );
    list(w.app.service())
        .await
        .expect("another caller is served meanwhile");

    hold.release();
    slow.await.unwrap().expect("the slow call finishes");
    list(w.admin())
        .await
        .expect("with its call finished, the caller is served again");
    w.app.stop().await;
}

async fn retention_removes_a_finished_job_in_small_transactions(backend: Backend) {
    let w = crate::scenarios::crowd(backend, 12, |_| {}).await;
    let job = w
        .start(retract_client::pb::RetractOptions {
            internet_message_id: crate::scenarios::PHISH.into(),
            delete_mode: retract_client::pb::DeleteMode::Soft.into(),
            ..Default::default()
        })
        .await;
    let finished = tokio::time::timeout(Duration::from_secs(20), async {
        loop {
            let job = w.job(&job.job_id).await;
            if job.state() == retract_client::pb::JobState::Succeeded {
                return job;
            }
            tokio::time::sleep(Duration::from_millis(25)).await;
        }
    })
    .await
    .expect("the job finishes");
    assert_eq!(finished.counts.unwrap().target_count, 12);

    // Everything that ended before tomorrow is past retention.
    let store = w.app.store().await;
    let cutoff = chrono::Utc::now() + chrono::Duration::days(1);
    let mut slices = Vec::new();
    loop {
        let removed = store
            .purge_jobs_finished_before(cutoff, 5)
            .await
            .expect("a retention slice");
        if removed == 0 {
            break;
        }
        slices.push(removed);
    }
    // 12 targets and at least 14 events (started, 12 recipients, finished), and the job.
    let at_least: u64 = 12 + 14 + 1;
    assert!(
        slices.iter().all(|&rows| rows <= 5),
        "no transaction removes more than asked: {slices:?}"
    );
    assert!(slices.iter().sum::<u64>() >= at_least, "{slices:?}");
    let gone = w
        .admin()
        .retract_service()
        .get_retract_job(retract_client::pb::GetRetractJobRequest {
            tenant_id: "acme".into(),
            job_id: job.job_id.clone(),
        })
        .await
        .expect_err("the job is gone");
    assert_eq!(gone.code(), tonic::Code::NotFound);
    store.close().await.ok();
    w.app.stop().await;
}
