//! `$batch`: size and id rules, dependsOn with 424, per-item statuses, parallelism.

use graph_sim::seed::PlacedMessage;
use graph_sim::{Folder, GraphSim, Limits};
use reqwest::StatusCode;
use serde_json::{Value, json};

use crate::support::{app_token, code, contoso, find, http, world};

async fn batch(sim: &GraphSim, token: &str, requests: Value) -> (StatusCode, Value) {
    let response = http()
        .post(format!("{}/v1.0/$batch", sim.graph_base_url()))
        .bearer_auth(token)
        .json(&json!({ "requests": requests }))
        .send()
        .await
        .unwrap();
    let status = response.status();
    (status, response.json().await.unwrap())
}

fn gets(n: usize) -> Value {
    Value::Array((0..n).map(|i| json!({ "id": i.to_string(), "method": "GET", "url": "/users/alice@contoso.com/messages?$top=1" })).collect())
}

fn by_id<'a>(body: &'a Value, id: &str) -> &'a Value {
    body["responses"]
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["id"] == id)
        .unwrap()
}

#[tokio::test]
async fn batch_of_21_requests_is_refused_with_400() {
    let sim = world().start().await.unwrap();
    let token = app_token(&sim, contoso().id()).await;
    let (status, body) = batch(&sim, &token, gets(21)).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_eq!(code(&body), "BadRequest");
    let (status, body) = batch(&sim, &token, gets(20)).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(body["responses"].as_array().unwrap().len(), 20);
}

#[tokio::test]
async fn duplicate_batch_ids_are_refused_with_400() {
    let sim = world().start().await.unwrap();
    let token = app_token(&sim, contoso().id()).await;
    let requests = json!([
        { "id": "a", "method": "GET", "url": "/organization" },
        { "id": "A", "method": "GET", "url": "/domains" },
    ]);
    let (status, _) = batch(&sim, &token, requests).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
}

#[tokio::test]
async fn request_depending_on_a_failed_one_gets_424() {
    let sim = world().start().await.unwrap();
    let token = app_token(&sim, contoso().id()).await;
    let requests = json!([
        { "id": "1", "method": "GET", "url": "/users/nobody@contoso.com/messages" },
        { "id": "2", "method": "GET", "url": "/organization", "dependsOn": ["1"] },
        { "id": "3", "method": "GET", "url": "/domains" },
    ]);
    let (status, body) = batch(&sim, &token, requests).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(by_id(&body, "1")["status"], 404);
    assert_eq!(by_id(&body, "2")["status"], 424);
    assert_eq!(by_id(&body, "3")["status"], 200);
    // The dependent request never reached Graph.
    assert!(
        sim.graph_requests()
            .iter()
            .all(|r| r.path != "/v1.0/organization")
    );
}

#[tokio::test]
async fn batch_deletes_each_answer_their_own_status() {
    let sim = world().start().await.unwrap();
    let token = app_token(&sim, contoso().id()).await;
    let id = find(&sim, &token, "alice@contoso.com", "<first@contoso.com>")
        .await
        .remove(0);
    let requests = json!([
        { "id": "del", "method": "DELETE", "url": format!("/users/alice@contoso.com/messages/{id}") },
        { "id": "again", "method": "DELETE", "url": format!("/users/alice@contoso.com/messages/{id}"), "dependsOn": ["del"] },
        { "id": "purge", "method": "POST", "url": format!("/users/alice@contoso.com/messages/{id}/permanentDelete"),
          "body": {}, "headers": { "Content-Type": "application/json" } },
    ]);
    let (status, body) = batch(&sim, &token, requests).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(by_id(&body, "del")["status"], 204);
    assert_eq!(by_id(&body, "again")["status"], 404);
    assert_eq!(
        by_id(&body, "again")["body"]["error"]["code"],
        "ErrorItemNotFound"
    );
    assert_eq!(
        sim.messages_in("alice@contoso.com", Folder::RecoverableItemsDeletions)
            .len(),
        1
    );
}

#[tokio::test]
async fn write_without_body_or_content_type_is_refused() {
    let sim = world().start().await.unwrap();
    let token = app_token(&sim, contoso().id()).await;
    let requests =
        json!([{ "id": "1", "method": "POST", "url": "/users/alice@contoso.com/messages/x/move" }]);
    let (status, _) = batch(&sim, &token, requests).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
}

#[tokio::test]
async fn batch_runs_at_most_four_at_once_and_sub_requests_are_throttled_individually() {
    let mut builder = world().limits(Limits {
        mailbox_concurrency: 3,
        retry_after_secs: 0,
        ..Limits::default()
    });
    for i in 0..5 {
        builder = builder.message(PlacedMessage::new(
            "bob@contoso.com",
            Folder::Inbox,
            format!("<b{i}@x>"),
        ));
    }
    let sim = builder.start().await.unwrap();
    let token = app_token(&sim, contoso().id()).await;
    let requests = Value::Array(
        (0..8).map(|i| json!({ "id": i.to_string(), "method": "GET", "url": "/users/bob@contoso.com/messages?$top=1" })).collect(),
    );
    let hold = sim.hold_graph_requests();
    let pending = {
        let (base, token) = (sim.graph_base_url(), token.clone());
        tokio::spawn(async move {
            let response = http()
                .post(format!("{base}/v1.0/$batch"))
                .bearer_auth(token)
                .json(&json!({ "requests": requests }))
                .send()
                .await
                .unwrap();
            response.json::<Value>().await.unwrap()
        })
    };
    // Three sub-requests hold the mailbox's slots; the fourth running one is throttled.
    hold.until_waiting(3).await;
    hold.release();
    let body = pending.await.unwrap();
    assert_eq!(
        sim.peak_concurrency("bob@contoso.com"),
        4,
        "a batch runs 4 at once"
    );
    let throttled: Vec<&Value> = body["responses"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|r| r["status"] == 429)
        .collect();
    assert!(!throttled.is_empty(), "{body}");
    assert_eq!(throttled[0]["headers"]["Retry-After"], "0");
    assert_eq!(
        throttled[0]["body"]["error"]["code"],
        "ApplicationThrottled"
    );
    let subs = sim
        .graph_requests()
        .into_iter()
        .filter(|r| r.batch.is_some())
        .count();
    assert_eq!(subs, 8);
}

#[tokio::test]
async fn sub_request_url_repeating_the_version_is_not_found_like_graph() {
    let sim = world().start().await.unwrap();
    let token = app_token(&sim, contoso().id()).await;
    let requests = json!([{ "id": "1", "method": "GET", "url": "/v1.0/organization" }]);
    let (status, body) = batch(&sim, &token, requests).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(by_id(&body, "1")["status"], 400);
    assert_eq!(
        by_id(&body, "1")["body"]["error"]["message"],
        "Resource not found for the segment 'v1.0'."
    );
}
