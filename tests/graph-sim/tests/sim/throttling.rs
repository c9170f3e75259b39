//! Throttling as Graph does it. Concurrency is lined up with the simulator's hold gate: held
//! requests have been admitted (they occupy their slots) and wait until released.

use graph_sim::{GraphSim, Limits, ThrottleReason};
use reqwest::StatusCode;
use tokio::task::JoinHandle;

use crate::support::{app_token, contoso, http, world};

async fn list(sim: &GraphSim, token: &str, user: &str) -> reqwest::Response {
    send(
        http(),
        sim.graph_base_url(),
        token.to_owned(),
        user.to_owned(),
    )
    .await
}

async fn send(
    client: reqwest::Client,
    base: String,
    token: String,
    user: String,
) -> reqwest::Response {
    client
        .get(format!("{base}/v1.0/users/{user}/messages?$top=1"))
        .bearer_auth(token)
        .send()
        .await
        .unwrap()
}

/// Starts a request in the background.
fn spawn_list(sim: &GraphSim, token: &str, user: &str) -> JoinHandle<reqwest::Response> {
    tokio::spawn(send(
        http(),
        sim.graph_base_url(),
        token.to_owned(),
        user.to_owned(),
    ))
}

fn limits(change: impl FnOnce(&mut Limits)) -> Limits {
    let mut limits = Limits {
        retry_after_secs: 0,
        ..Limits::default()
    };
    change(&mut limits);
    limits
}

#[tokio::test]
async fn five_concurrent_requests_to_one_mailbox_get_exactly_one_429() {
    let sim = world().limits(limits(|_| {})).start().await.unwrap();
    let token = app_token(&sim, contoso().id()).await;
    let hold = sim.hold_graph_requests();
    let requests: Vec<_> = (0..5)
        .map(|_| spawn_list(&sim, &token, "alice@contoso.com"))
        .collect();
    hold.until_waiting(4).await;
    let throttled_first = sim.throttle_events();
    hold.release();
    let mut statuses = Vec::new();
    for request in requests {
        let response = request.await.unwrap();
        if response.status() == StatusCode::TOO_MANY_REQUESTS {
            assert_eq!(response.headers()["retry-after"], "0");
        }
        statuses.push(response.status());
    }
    assert_eq!(
        statuses
            .iter()
            .filter(|s| **s == StatusCode::TOO_MANY_REQUESTS)
            .count(),
        1,
        "{statuses:?}"
    );
    assert!(throttled_first.len() <= 1);
    assert_eq!(sim.peak_concurrency("alice@contoso.com"), 5);
    let events = sim.throttle_events();
    assert_eq!(events.len(), 1);
    assert_eq!(events[0].reason, ThrottleReason::MailboxConcurrency);
}

#[tokio::test]
async fn throttled_body_names_the_mailbox_concurrency_limit() {
    let sim = world()
        .limits(limits(|l| l.mailbox_concurrency = 1))
        .start()
        .await
        .unwrap();
    let token = app_token(&sim, contoso().id()).await;
    let hold = sim.hold_graph_requests();
    let first = spawn_list(&sim, &token, "alice@contoso.com");
    hold.until_waiting(1).await;
    let second = list(&sim, &token, "alice@contoso.com").await;
    hold.release();
    assert_eq!(first.await.unwrap().status(), StatusCode::OK);
    assert_eq!(second.status(), StatusCode::TOO_MANY_REQUESTS);
    let body: serde_json::Value = second.json().await.unwrap();
    assert_eq!(body["error"]["code"], "ApplicationThrottled");
    assert_eq!(
        body["error"]["message"],
        "Application is over its MailboxConcurrency limit."
    );
    assert!(body["error"]["innerError"]["request-id"].is_string());
}

#[tokio::test]
async fn other_mailboxes_are_not_affected_by_one_busy_mailbox() {
    let sim = world()
        .limits(limits(|l| l.mailbox_concurrency = 1))
        .start()
        .await
        .unwrap();
    let token = app_token(&sim, contoso().id()).await;
    let hold = sim.hold_graph_requests();
    let alice = spawn_list(&sim, &token, "alice@contoso.com");
    let bob = spawn_list(&sim, &token, "bob@contoso.com");
    hold.until_waiting(2).await;
    hold.release();
    assert_eq!(alice.await.unwrap().status(), StatusCode::OK);
    assert_eq!(bob.await.unwrap().status(), StatusCode::OK);
}

#[tokio::test]
async fn retry_before_retry_after_elapsed_is_throttled_again() {
    let sim = world()
        .limits(limits(|l| {
            l.mailbox_concurrency = 1;
            l.retry_after_secs = 30;
        }))
        .start()
        .await
        .unwrap();
    let token = app_token(&sim, contoso().id()).await;
    let hold = sim.hold_graph_requests();
    let first = spawn_list(&sim, &token, "alice@contoso.com");
    hold.until_waiting(1).await;
    let second = list(&sim, &token, "alice@contoso.com").await;
    hold.release();
    assert_eq!(first.await.unwrap().status(), StatusCode::OK);
    assert_eq!(second.status(), StatusCode::TOO_MANY_REQUESTS);
    assert_eq!(second.headers()["retry-after"], "30");
    // Nothing is in flight any more, but Retry-After has not elapsed.
    let early = list(&sim, &token, "alice@contoso.com").await;
    assert_eq!(early.status(), StatusCode::TOO_MANY_REQUESTS);
    assert_eq!(sim.throttle_events().len(), 2);
    // Another mailbox of the same app is not penalised.
    assert_eq!(
        list(&sim, &token, "bob@contoso.com").await.status(),
        StatusCode::OK
    );
}

#[tokio::test]
async fn mailbox_request_window_throttles_and_counts_throttled_requests() {
    let sim = world()
        .limits(limits(|l| {
            l.mailbox_requests_per_window = 3;
            l.mailbox_window_ms = 60_000;
        }))
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
        .limits(limits(|l| {
            l.app_requests_per_window = 2;
            l.app_window_ms = 60_000;
        }))
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
    let over = list(&sim, &token, "admin@contoso.com").await;
    assert_eq!(over.status(), StatusCode::TOO_MANY_REQUESTS);
    assert!(over.headers().contains_key("retry-after"));
    // Microsoft's documented answer for the app's global limit, not a mailbox's.
    let body: serde_json::Value = over.json().await.unwrap();
    assert_eq!(body["error"]["code"], "TooManyRequests");
    assert_eq!(body["error"]["message"], "Please retry again later.");
    assert_eq!(body["error"]["innerError"]["code"], "429");
    assert_eq!(body["error"]["innerError"]["status"], "429");
    assert_eq!(sim.throttle_events()[0].reason, ThrottleReason::AppRate);
}

#[tokio::test]
async fn per_app_concurrency_mode_limits_across_mailboxes() {
    let sim = world()
        .limits(limits(|l| l.app_concurrency = Some(1)))
        .start()
        .await
        .unwrap();
    let token = app_token(&sim, contoso().id()).await;
    let hold = sim.hold_graph_requests();
    let first = spawn_list(&sim, &token, "alice@contoso.com");
    hold.until_waiting(1).await;
    let second = list(&sim, &token, "bob@contoso.com").await;
    hold.release();
    assert_eq!(first.await.unwrap().status(), StatusCode::OK);
    assert_eq!(second.status(), StatusCode::TOO_MANY_REQUESTS);
    assert_eq!(
        sim.throttle_events()[0].reason,
        ThrottleReason::AppConcurrency
    );
}

#[tokio::test]
async fn unlimited_mode_lets_any_concurrency_through_and_still_records_the_peak() {
    let sim = world().limits(Limits::unlimited()).start().await.unwrap();
    let token = app_token(&sim, contoso().id()).await;
    let hold = sim.hold_graph_requests();
    let requests: Vec<_> = (0..8)
        .map(|_| spawn_list(&sim, &token, "alice@contoso.com"))
        .collect();
    hold.until_waiting(8).await;
    hold.release();
    for request in requests {
        assert_eq!(request.await.unwrap().status(), StatusCode::OK);
    }
    assert_eq!(sim.peak_concurrency("al@contoso.com"), 8);
}

#[tokio::test]
async fn directory_reads_draw_from_a_per_tenant_budget() {
    let sim = world()
        .limits(limits(|l| {
            l.directory_requests_per_window = 2;
            l.directory_window_ms = 60_000;
        }))
        .start()
        .await
        .unwrap();
    let token = app_token(&sim, contoso().id()).await;
    let user = |who: &'static str| {
        let (base, token) = (sim.graph_base_url(), token.clone());
        async move {
            http()
                .get(format!("{base}/v1.0/users/{who}"))
                .bearer_auth(token)
                .send()
                .await
                .unwrap()
                .status()
        }
    };
    assert_eq!(user("alice@contoso.com").await, StatusCode::OK);
    assert_eq!(user("bob@contoso.com").await, StatusCode::OK);
    assert_eq!(
        user("alice@contoso.com").await,
        StatusCode::TOO_MANY_REQUESTS
    );
    assert_eq!(
        sim.throttle_events()[0].reason,
        ThrottleReason::DirectoryRate
    );
    // Mail calls do not draw from the directory budget.
    assert_eq!(
        list(&sim, &token, "alice@contoso.com").await.status(),
        StatusCode::OK
    );
}
