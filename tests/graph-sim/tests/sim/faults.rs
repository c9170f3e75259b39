//! Injected faults and latency, set at start or at run time.

use std::time::{Duration, Instant};

use graph_sim::{Endpoint, Fault, FaultSettings, Latency, LatencySettings};
use reqwest::StatusCode;

use crate::support::{app_token, contoso, get, http, world};

#[tokio::test]
async fn injected_503_is_sent_and_recorded() {
    let sim = world().start().await.unwrap();
    let token = app_token(&sim, contoso().id()).await;
    sim.set_faults(FaultSettings {
        error_503: 1.0,
        ..Default::default()
    });
    let (status, body) = get(&sim, &token, "/organization").await;
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(body["error"]["code"], "ServiceUnavailable");
    sim.set_faults(FaultSettings::default());
    assert_eq!(get(&sim, &token, "/organization").await.0, StatusCode::OK);
    let faults: Vec<Option<Fault>> = sim.graph_requests().iter().map(|r| r.fault).collect();
    assert_eq!(faults, vec![Some(Fault::Error503), None]);
}

#[tokio::test]
async fn dropped_connection_is_reset_without_an_answer() {
    let sim = world()
        .faults(FaultSettings {
            drop_connection: 1.0,
            ..Default::default()
        })
        .start()
        .await
        .unwrap();
    let token = app_token(&sim, contoso().id()).await;
    let result = http()
        .get(format!("{}/v1.0/organization", sim.graph_base_url()))
        .bearer_auth(&token)
        .send()
        .await;
    let error = result.expect_err("the connection should be reset");
    let mut source: Option<&(dyn std::error::Error + 'static)> = Some(&error);
    let mut reset = false;
    while let Some(cause) = source {
        reset |= cause
            .downcast_ref::<std::io::Error>()
            .is_some_and(|e| e.kind() == std::io::ErrorKind::ConnectionReset);
        source = cause.source();
    }
    assert!(reset, "{error:?}");
    let records = sim.graph_requests();
    assert_eq!(records.len(), 1);
    assert_eq!(records[0].status, None);
    assert_eq!(records[0].fault, Some(Fault::DropConnection));
}

#[tokio::test]
async fn faults_can_be_limited_to_chosen_endpoints_through_the_admin_api() {
    let sim = world().start().await.unwrap();
    let token = app_token(&sim, contoso().id()).await;
    let faults = FaultSettings {
        error_500: 1.0,
        endpoints: vec![Endpoint::Domains],
        ..Default::default()
    };
    let put = http()
        .put(format!("{}/_sim/faults", sim.graph_base_url()))
        .json(&faults)
        .send()
        .await
        .unwrap();
    assert_eq!(put.status(), StatusCode::NO_CONTENT);
    assert_eq!(
        get(&sim, &token, "/domains").await.0,
        StatusCode::INTERNAL_SERVER_ERROR
    );
    assert_eq!(get(&sim, &token, "/organization").await.0, StatusCode::OK);
}

#[tokio::test]
async fn throttle_storm_answers_429_until_it_ends() {
    let sim = world().start().await.unwrap();
    let token = app_token(&sim, contoso().id()).await;
    sim.start_throttle_storm(Duration::from_secs(60));
    let response = http()
        .get(format!("{}/v1.0/organization", sim.graph_base_url()))
        .bearer_auth(&token)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::TOO_MANY_REQUESTS);
    assert!(response.headers().contains_key("retry-after"));
    sim.stop_throttle_storm();
    assert_eq!(get(&sim, &token, "/organization").await.0, StatusCode::OK);
}

#[tokio::test]
async fn per_endpoint_latency_delays_only_that_endpoint() {
    let sim = world().start().await.unwrap();
    let token = app_token(&sim, contoso().id()).await;
    let mut latency = LatencySettings::default();
    latency
        .per_endpoint
        .insert(Endpoint::Domains, Latency::with_jitter(500, 20));
    sim.set_latency(latency);
    let started = Instant::now();
    get(&sim, &token, "/domains").await;
    assert!(started.elapsed() >= Duration::from_millis(500));
    let started = Instant::now();
    get(&sim, &token, "/organization").await;
    assert!(started.elapsed() < Duration::from_millis(500));
}

#[tokio::test]
async fn slow_body_arrives_intact() {
    let sim = world()
        .faults(FaultSettings {
            slow_body: 1.0,
            slow_body_chunk_delay_ms: 50,
            ..Default::default()
        })
        .start()
        .await
        .unwrap();
    let token = app_token(&sim, contoso().id()).await;
    let started = Instant::now();
    let (status, body) = get(&sim, &token, "/organization").await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(body["value"][0]["id"], contoso().id());
    assert!(started.elapsed() >= Duration::from_millis(150));
    assert_eq!(sim.graph_requests()[0].fault, Some(Fault::SlowBody));
}

#[tokio::test]
async fn seeded_fault_draws_are_reproducible() {
    async fn run() -> Vec<u16> {
        let sim = world()
            .rng_seed(42)
            .faults(FaultSettings {
                error_500: 0.5,
                ..Default::default()
            })
            .start()
            .await
            .unwrap();
        let token = app_token(&sim, contoso().id()).await;
        let mut statuses = Vec::new();
        for _ in 0..12 {
            statuses.push(get(&sim, &token, "/organization").await.0.as_u16());
        }
        statuses
    }
    let first = run().await;
    assert!(first.contains(&500) && first.contains(&200), "{first:?}");
    assert_eq!(first, run().await);
}
