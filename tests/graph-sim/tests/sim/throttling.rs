//! Throttling as Graph does it.

use std::time::Duration;

use graph_sim::{GraphSim, Latency, LatencySettings, Limits, ThrottleReason};
use reqwest::StatusCode;

use crate::support::{app_token, contoso, http, world};

async fn list(sim: &GraphSim, token: &str, user: &str) -> reqwest::Response {
    http()
        .get(format!(
            "{}/v1.0/users/{user}/messages?$top=1",
            sim.graph_base_url()
        ))
        .bearer_auth(token)
        .send()
        .await
        .unwrap()
}

fn slow() -> LatencySettings {
    LatencySettings {
        default: Latency::fixed(400),
        ..Default::default()
    }
}

#[tokio::test]
async fn five_concurrent_requests_to_one_mailbox_get_exactly_one_429() {
    let sim = world()
        .latency(slow())
        .limits(Limits {
            retry_after_secs: 0,
            ..Limits::default()
        })
        .start()
        .await
        .unwrap();
    let token = app_token(&sim, contoso().id()).await;
    let responses =
        futures::future::join_all((0..5).map(|_| list(&sim, &token, "alice@contoso.com"))).await;
    let throttled: Vec<&reqwest::Response> = responses
        .iter()
        .filter(|r| r.status() == StatusCode::TOO_MANY_REQUESTS)
        .collect();
    assert_eq!(throttled.len(), 1);
    assert_eq!(throttled[0].headers()["retry-after"], "0");
    assert_eq!(sim.peak_concurrency("alice@contoso.com"), 5);
    let events = sim.throttle_events();
    assert_eq!(events.len(), 1);
    assert_eq!(events[0].reason, ThrottleReason::MailboxConcurrency);
}

#[tokio::test]
async fn throttled_body_names_the_mailbox_concurrency_limit() {
    let sim = world()
        .latency(slow())
        .limits(Limits {
            mailbox_concurrency: 1,
            retry_after_secs: 0,
            ..Limits::default()
        })
        .start()
        .await
        .unwrap();
    let token = app_token(&sim, contoso().id()).await;
    let (_, second) = tokio::join!(list(&sim, &token, "alice@contoso.com"), async {
        tokio::time::sleep(Duration::from_millis(100)).await;
        list(&sim, &token, "alice@contoso.com").await
    });
    assert_eq!(second.status(), StatusCode::TOO_MANY_REQUESTS);
    let body: serde_json::Value = second.json().await.unwrap();
    assert_eq!(body["error"]["code"], "ApplicationThrottled");
    assert_eq!(
        body["error"]["message"],
        "Application is over its MailboxConcurrency limit."
    );
}

#[tokio::test]
async fn other_mailboxes_are_not_affected_by_one_busy_mailbox() {
    let sim = world()
        .latency(slow())
        .limits(Limits {
            mailbox_concurrency: 1,
            retry_after_secs: 0,
            ..Limits::default()
        })
        .start()
        .await
        .unwrap();
    let token = app_token(&sim, contoso().id()).await;
    let (a, b) = tokio::join!(
        list(&sim, &token, "alice@contoso.com"),
        list(&sim, &token, "bob@contoso.com")
    );
    assert_eq!(a.status(), StatusCode::OK);
    assert_eq!(b.status(), StatusCode::OK);
}

#[tokio::test]
async fn retry_before_retry_after_elapsed_is_throttled_again() {
    let sim = world()
        .latency(slow())
        .limits(Limits {
            mailbox_concurrency: 1,
            retry_after_secs: 30,
            ..Limits::default()
        })
        .start()
        .await
        .unwrap();
    let token = app_token(&sim, contoso().id()).await;
    let (first, second) = tokio::join!(list(&sim, &token, "alice@contoso.com"), async {
        tokio::time::sleep(Duration::from_millis(100)).await;
        list(&sim, &token, "alice@contoso.com").await
    });
    assert_eq!(first.status(), StatusCode::OK);
    assert_eq!(second.status(), StatusCode::TOO_MANY_REQUESTS);
    assert_eq!(second.headers()["retry-after"], "30");
    // Nothing is in flight any more, but Retry-After has not elapsed.
    let early = list(&sim, &token, "alice@contoso.com").await;
    assert_eq!(early.status(), StatusCode::TOO_MANY_REQUESTS);
    assert_eq!(sim.throttle_events().len(), 2);
}

#[tokio::test]
async fn mailbox_request_window_throttles_and_counts_throttled_requests() {
    let sim = world()
        .limits(Limits {
            mailbox_requests_per_window: 3,
            mailbox_window_ms: 60_000,
            retry_after_secs: 0,
            ..Limits::default()
        })
        .start()
        .await
        .unwrap();
    let token = app_token(&sim, contoso().id()).await;
    let mut statuses = Vec::new();
    for _ in 0..5 {
        statuses.push(
            list(&sim, &token, "alice@contoso.com")
                .await
                .status()
                .as_u16(),
        );
    }
    assert_eq!(statuses, vec![200, 200, 200, 429, 429]);
    assert_eq!(
        list(&sim, &token, "bob@contoso.com").await.status(),
        StatusCode::OK
    );
    assert!(
        sim.throttle_events()
            .iter()
            .all(|e| e.reason == ThrottleReason::MailboxWindow)
    );
}

#[tokio::test]
async fn global_app_rate_throttles_across_mailboxes() {
    let sim = world()
        .limits(Limits {
            app_requests_per_window: 2,
            app_window_ms: 60_000,
            retry_after_secs: 0,
            ..Limits::default()
        })
        .start()
        .await
        .unwrap();
    let token = app_token(&sim, contoso().id()).await;
    assert_eq!(
        list(&sim, &token, "alice@contoso.com").await.status(),
        StatusCode::OK
    );
    assert_eq!(
        list(&sim, &token, "bob@contoso.com").await.status(),
        StatusCode::OK
    );
    assert_eq!(
        list(&sim, &token, "admin@contoso.com").await.status(),
        StatusCode::TOO_MANY_REQUESTS
    );
    assert_eq!(sim.throttle_events()[0].reason, ThrottleReason::AppRate);
}

#[tokio::test]
async fn per_app_concurrency_mode_limits_across_mailboxes() {
    let sim = world()
        .latency(slow())
        .limits(Limits {
            app_concurrency: Some(1),
            retry_after_secs: 0,
            ..Limits::default()
        })
        .start()
        .await
        .unwrap();
    let token = app_token(&sim, contoso().id()).await;
    let (_, second) = tokio::join!(list(&sim, &token, "alice@contoso.com"), async {
        tokio::time::sleep(Duration::from_millis(100)).await;
        list(&sim, &token, "bob@contoso.com").await
    });
    assert_eq!(second.status(), StatusCode::TOO_MANY_REQUESTS);
    assert_eq!(
        sim.throttle_events()[0].reason,
        ThrottleReason::AppConcurrency
    );
}
