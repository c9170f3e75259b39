//! Seeding from JSON, reset, and reading state back.

use graph_sim::{Folder, GraphSim};
use reqwest::StatusCode;

use crate::support::{app_token, contoso, find, http, world};

const FIXTURE: &str = r#"{
  "apps": [{ "client_id": "app-1", "client_secret": "s-1" }],
  "tenants": [{
    "id": "11111111-2222-4333-8444-555555555555",
    "display_name": "Tailspin",
    "domains": [{ "name": "tailspin.com" }],
    "consented_apps": ["app-1"],
    "users": [
      { "user_principal_name": "ann@tailspin.com", "aliases": ["a@tailspin.com"] },
      { "user_principal_name": "ben@tailspin.com", "mailbox": "not_enabled" }
    ]
  }],
  "mails": [{ "internet_message_id": "<x@tailspin.com>", "from": "ben@tailspin.com", "to": ["ann@tailspin.com"], "copies": 2 }],
  "messages": [{ "mailbox": "ann@tailspin.com", "folder": "deleteditems", "internet_message_id": "<old@tailspin.com>" }]
}"#;

#[tokio::test]
async fn json_fixture_seeds_tenants_users_and_mail() {
    let sim = GraphSim::builder()
        .fixture_json(FIXTURE)
        .unwrap()
        .start()
        .await
        .unwrap();
    assert_eq!(sim.messages_in("a@tailspin.com", Folder::Inbox).len(), 2);
    assert_eq!(
        sim.messages_in("ann@tailspin.com", Folder::DeletedItems)
            .len(),
        1
    );
    assert_eq!(
        sim.messages_in("ben@tailspin.com", Folder::SentItems).len(),
        1
    );
    let response = http()
        .post(format!(
            "{}/tailspin.com/oauth2/v2.0/token",
            sim.login_base_url()
        ))
        .form(&[
            ("grant_type", "client_credentials"),
            ("client_id", "app-1"),
            ("client_secret", "s-1"),
            ("scope", "https://graph.microsoft.com/.default"),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::OK);
}

#[tokio::test]
async fn reset_restores_the_seed_and_clears_the_log() {
    let sim = world().start().await.unwrap();
    let token = app_token(&sim, contoso().id()).await;
    let ids = find(&sim, &token, "alice@contoso.com", "<first@contoso.com>").await;
    let deleted = http()
        .delete(format!(
            "{}/v1.0/users/alice@contoso.com/messages/{}",
            sim.graph_base_url(),
            ids[0]
        ))
        .bearer_auth(&token)
        .send()
        .await
        .unwrap();
    assert_eq!(deleted.status(), StatusCode::NO_CONTENT);
    assert!(
        sim.messages_in("alice@contoso.com", Folder::Inbox)
            .is_empty()
    );
    sim.reset().unwrap();
    assert_eq!(sim.messages_in("alice@contoso.com", Folder::Inbox).len(), 1);
    assert!(sim.requests().is_empty());
}

#[tokio::test]
async fn request_log_names_tenant_mailbox_status_and_times() {
    let sim = world().start().await.unwrap();
    let token = app_token(&sim, contoso().id()).await;
    find(&sim, &token, "alice@contoso.com", "<first@contoso.com>").await;
    let graph = sim.graph_requests();
    assert_eq!(graph.len(), 1);
    let record = &graph[0];
    assert_eq!(record.method, "GET");
    assert_eq!(record.path, "/v1.0/users/alice@contoso.com/messages");
    assert!(
        record
            .query
            .as_deref()
            .unwrap()
            .contains("internetMessageId")
    );
    assert_eq!(record.tenant.as_deref(), Some(contoso().id()));
    assert_eq!(record.mailbox.as_deref(), Some("alice@contoso.com"));
    assert_eq!(record.status, Some(200));
    assert!(record.finished >= record.started);
    assert_eq!(sim.peak_concurrency("alice@contoso.com"), 1);
    let admin: serde_json::Value = http()
        .get(format!("{}/_sim/requests", sim.graph_base_url()))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(admin.as_array().unwrap().len(), 2);
}

#[tokio::test]
async fn single_port_serves_graph_identity_and_admin_together() {
    let sim = world().single_port().start().await.unwrap();
    assert_eq!(sim.graph_base_url(), sim.login_base_url());
    let token = app_token(&sim, contoso().id()).await;
    assert_eq!(
        find(&sim, &token, "alice@contoso.com", "<first@contoso.com>")
            .await
            .len(),
        1
    );
    let held: serde_json::Value = http()
        .get(format!("{}/_sim/hold", sim.graph_base_url()))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(held["waiting"], 0);
}

#[tokio::test]
async fn graph_and_login_are_separate_hosts_by_default() {
    let sim = world().start().await.unwrap();
    assert_ne!(sim.graph_base_url(), sim.login_base_url());
    let wrong = http()
        .post(format!(
            "{}/{}/oauth2/v2.0/token",
            sim.graph_base_url(),
            contoso().id()
        ))
        .form(&[("grant_type", "client_credentials")])
        .send()
        .await
        .unwrap();
    assert_eq!(wrong.status(), StatusCode::NOT_FOUND);
}

#[test]
fn handle_and_hold_can_move_between_tasks() {
    fn assert_send_sync<T: Send + Sync + 'static>() {}
    assert_send_sync::<GraphSim>();
    assert_send_sync::<graph_sim::Hold>();
}

const THREAD_FIXTURE: &str = r#"{
  "apps": [{ "client_id": "app-1", "client_secret": "s-1" }],
  "tenants": [{
    "id": "11111111-2222-4333-8444-555555555555",
    "display_name": "Tailspin",
    "domains": [{ "name": "tailspin.com" }],
    "consented_apps": ["app-1"],
    "users": [
      { "user_principal_name": "ann@tailspin.com" },
      { "user_principal_name": "ben@tailspin.com" }
    ],
    "groups": [{ "mail": "all@tailspin.com", "kind": "distribution_list", "members": ["ann@tailspin.com", "ben@tailspin.com"] }]
  }],
  "mails": [
    { "internet_message_id": "<t1@tailspin.com>", "from": "ceo@evil.example", "to": ["ann@tailspin.com"] },
    { "internet_message_id": "<t2@tailspin.com>", "from": "ann@tailspin.com", "in_reply_to": "<t1@tailspin.com>", "to": ["all@tailspin.com"] },
    { "internet_message_id": "<t3@tailspin.com>", "from": "ben@tailspin.com", "in_reply_to": "<t2@tailspin.com>", "draft": true },
    { "internet_message_id": "<t4@tailspin.com>", "from": "ben@tailspin.com", "to": ["ann@tailspin.com"], "conversation_index": "missing" }
  ]
}"#;

#[tokio::test]
async fn json_fixture_and_admin_api_seed_replies_drafts_and_groups() {
    let sim = GraphSim::builder()
        .fixture_json(THREAD_FIXTURE)
        .unwrap()
        .start()
        .await
        .unwrap();
    let index = |user: &str, imid: &str| {
        sim.copies_of(user, imid)[0]
            .conversation_index
            .clone()
            .unwrap()
    };
    let root = index("ann@tailspin.com", "<t1@tailspin.com>");
    let reply = index("ben@tailspin.com", "<t2@tailspin.com>");
    let draft = sim.copies_of("ben@tailspin.com", "<t3@tailspin.com>");
    assert_eq!(draft.len(), 1);
    assert!(draft[0].is_draft);
    assert_eq!(draft[0].folder, Folder::Drafts);
    assert_eq!(
        draft[0].references,
        ["<t1@tailspin.com>", "<t2@tailspin.com>"]
    );
    let draft_index = draft[0].conversation_index.clone().unwrap();
    assert_eq!(
        graph_sim::conversation::hops_between(&root, &reply),
        Some(1)
    );
    assert_eq!(
        graph_sim::conversation::hops_between(&root, &draft_index),
        Some(2)
    );
    assert_eq!(
        sim.copies_of("ben@tailspin.com", "<t2@tailspin.com>")[0].thread,
        sim.copies_of("ann@tailspin.com", "<t1@tailspin.com>")[0].thread
    );
    assert!(
        sim.copies_of("ann@tailspin.com", "<t4@tailspin.com>")[0]
            .conversation_index
            .is_none()
    );
    // The admin API resolves a reply's parent the same way.
    let response = http()
        .post(format!("{}/_sim/mails", sim.graph_base_url()))
        .json(&serde_json::json!({
            "internet_message_id": "<t5@tailspin.com>",
            "from": "ben@tailspin.com",
            "in_reply_to": "<t2@tailspin.com>",
            "to": ["ann@tailspin.com"]
        }))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::NO_CONTENT);
    let late = index("ann@tailspin.com", "<t5@tailspin.com>");
    assert_eq!(
        graph_sim::conversation::hops_between(&reply, &late),
        Some(1)
    );
}
