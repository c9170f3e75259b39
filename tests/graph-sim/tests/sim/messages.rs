//! Mail calls: finding by internet message id, conversations, paging, delete modes, mailbox
//! access errors.

use graph_sim::Folder;
use graph_sim::seed::{Mail, PlacedMessage};
use reqwest::StatusCode;
use serde_json::Value;

use crate::support::{app_token, code, contoso, find, get, http, post, world};

#[tokio::test]
async fn internet_message_ids_with_special_characters_match_when_encoded() {
    let awkward = [
        "<a+b@contoso.com>",
        "<o'brien#1@contoso.com>",
        "<100%sure&x=y@contoso.com>",
    ];
    let mut builder = world();
    for imid in awkward {
        builder = builder.mail(Mail::new(imid, "bob@contoso.com").to(["alice@contoso.com"]));
    }
    let sim = builder.start().await.unwrap();
    let token = app_token(&sim, contoso().id()).await;
    for imid in awkward {
        assert_eq!(
            find(&sim, &token, "alice@contoso.com", imid).await.len(),
            1,
            "{imid}"
        );
    }
    // A raw '+' in the query string means a space, so an unencoded id does not match.
    let (status, body) = get(&sim, &token, "/users/alice@contoso.com/messages?$filter=internetMessageId%20eq%20'%3Ca+b@contoso.com%3E'").await;
    assert_eq!(status, StatusCode::OK);
    assert!(body["value"].as_array().unwrap().is_empty());
    // An undoubled quote breaks the literal.
    let (status, body) = get(&sim, &token, "/users/alice@contoso.com/messages?$filter=internetMessageId%20eq%20'%3Co'brien%231@contoso.com%3E'").await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_eq!(code(&body), "BadRequest");
}

#[tokio::test]
async fn several_copies_of_one_message_all_match() {
    let sim = world()
        .mail(
            Mail::new("<dup@contoso.com>", "bob@contoso.com")
                .to(["alice@contoso.com"])
                .copies(3),
        )
        .start()
        .await
        .unwrap();
    let token = app_token(&sim, contoso().id()).await;
    assert_eq!(
        find(&sim, &token, "alice@contoso.com", "<dup@contoso.com>")
            .await
            .len(),
        3
    );
}

#[tokio::test]
async fn paging_returns_every_message_exactly_once() {
    let mut builder = world();
    for i in 0..37 {
        builder = builder.message(PlacedMessage::new(
            "bob@contoso.com",
            Folder::Inbox,
            format!("<p{i}@x>"),
        ));
    }
    let sim = builder.start().await.unwrap();
    let token = app_token(&sim, contoso().id()).await;
    let mut url = format!(
        "{}/v1.0/users/bob@contoso.com/mailFolders/inbox/messages?$select=internetMessageId",
        sim.graph_base_url()
    );
    let mut seen = Vec::new();
    let mut pages = 0;
    loop {
        let body: Value = http()
            .get(&url)
            .bearer_auth(&token)
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        let page = body["value"].as_array().unwrap();
        assert!(page.len() <= 10);
        seen.extend(
            page.iter()
                .map(|m| m["internetMessageId"].as_str().unwrap().to_owned()),
        );
        pages += 1;
        match body["@odata.nextLink"].as_str() {
            Some(next) => url = next.to_owned(),
            None => break,
        }
    }
    assert_eq!(pages, 4);
    let mut unique = seen.clone();
    unique.sort();
    unique.dedup();
    assert_eq!(seen.len(), 37);
    assert_eq!(unique.len(), 37);
}

#[tokio::test]
async fn conversation_filter_finds_replies_and_refuses_orderby() {
    let original = Mail::new("<conv-1@contoso.com>", "bob@contoso.com")
        .subject("plan")
        .to(["alice@contoso.com"]);
    let forward = original
        .forward("<conv-2@contoso.com>", "alice@contoso.com")
        .to(["admin@contoso.com"]);
    let sim = world()
        .mail(original.clone())
        .mail(forward)
        .start()
        .await
        .unwrap();
    let token = app_token(&sim, contoso().id()).await;
    let sent = sim.messages_in("alice@contoso.com", Folder::SentItems);
    assert_eq!(sent.len(), 1);
    assert_eq!(sent[0].internet_message_id, "<conv-2@contoso.com>");
    // Alice's id of the thread: her received original and her sent forward share it.
    let alices = sim
        .conversation_id_in("alice@contoso.com", &original)
        .unwrap();
    assert_eq!(sent[0].conversation_id, alices);
    assert_eq!(sent[0].thread, original.conversation());
    let response = http()
        .get(format!(
            "{}/v1.0/users/alice@contoso.com/messages",
            sim.graph_base_url()
        ))
        .query(&[("$filter", format!("conversationId eq '{alices}'"))])
        .bearer_auth(&token)
        .send()
        .await
        .unwrap();
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["value"].as_array().unwrap().len(), 2);
    let ordered = http()
        .get(format!(
            "{}/v1.0/users/alice@contoso.com/messages",
            sim.graph_base_url()
        ))
        .query(&[
            ("$filter", format!("conversationId eq '{alices}'")),
            ("$orderby", "receivedDateTime desc".to_owned()),
        ])
        .bearer_auth(&token)
        .send()
        .await
        .unwrap();
    assert_eq!(ordered.status(), StatusCode::BAD_REQUEST);
    let body: Value = ordered.json().await.unwrap();
    assert_eq!(code(&body), "InefficientFilter");
}

#[tokio::test]
async fn other_message_filters_are_refused_with_400() {
    let sim = world().start().await.unwrap();
    let token = app_token(&sim, contoso().id()).await;
    let (status, body) = get(
        &sim,
        &token,
        "/users/alice@contoso.com/messages?$filter=subject%20eq%20'hello'",
    )
    .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert!(body["error"]["message"].is_string());
}

#[tokio::test]
async fn select_limits_the_properties() {
    let sim = world().start().await.unwrap();
    let token = app_token(&sim, contoso().id()).await;
    let (status, body) = get(
        &sim,
        &token,
        "/users/alice@contoso.com/messages?$select=id,conversationId,isRead,from",
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    let message = &body["value"][0];
    assert!(message.get("conversationId").is_some());
    assert!(message.get("subject").is_none());
    assert_eq!(
        message["from"]["emailAddress"]["address"],
        "bob@contoso.com"
    );
    let (status, _) = get(
        &sim,
        &token,
        "/users/alice@contoso.com/messages?$select=nonsense",
    )
    .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
}

#[tokio::test]
async fn delete_modes_move_messages_to_their_folders() {
    let sim = world()
        .mail(Mail::new("<soft@x>", "bob@contoso.com").to(["alice@contoso.com"]))
        .mail(Mail::new("<hard@x>", "bob@contoso.com").to(["alice@contoso.com"]))
        .mail(Mail::new("<moved@x>", "bob@contoso.com").to(["alice@contoso.com"]))
        .start()
        .await
        .unwrap();
    let token = app_token(&sim, contoso().id()).await;
    let user = "alice@contoso.com";
    let soft = find(&sim, &token, user, "<soft@x>").await.remove(0);
    let hard = find(&sim, &token, user, "<hard@x>").await.remove(0);
    let moved = find(&sim, &token, user, "<moved@x>").await.remove(0);

    let response = http()
        .delete(format!(
            "{}/v1.0/users/{user}/messages/{soft}",
            sim.graph_base_url()
        ))
        .bearer_auth(&token)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::NO_CONTENT);
    let (status, _) = post(
        &sim,
        &token,
        &format!("/users/{user}/messages/{hard}/permanentDelete"),
        Value::Null,
    )
    .await;
    assert_eq!(status, StatusCode::NO_CONTENT);
    let (status, body) = post(
        &sim,
        &token,
        &format!("/users/{user}/messages/{moved}/move"),
        serde_json::json!({"destinationId": "deleteditems"}),
    )
    .await;
    assert_eq!(status, StatusCode::CREATED);
    let new_id = body["id"].as_str().unwrap();
    assert_ne!(new_id, moved);

    let in_folder = |folder| {
        sim.messages_in(user, folder)
            .into_iter()
            .map(|m| m.internet_message_id)
            .collect::<Vec<_>>()
    };
    assert_eq!(
        in_folder(Folder::RecoverableItemsDeletions),
        vec!["<soft@x>"]
    );
    assert_eq!(in_folder(Folder::RecoverableItemsPurges), vec!["<hard@x>"]);
    assert_eq!(in_folder(Folder::DeletedItems), vec!["<moved@x>"]);
    let copies = sim.copies_of(user, "<hard@x>");
    assert_eq!(copies.len(), 1);
    assert_eq!(copies[0].folder, Folder::RecoverableItemsPurges);
    // Soft- and hard-deleted copies are gone from searches; the moved one is still found.
    assert!(find(&sim, &token, user, "<soft@x>").await.is_empty());
    assert!(find(&sim, &token, user, "<hard@x>").await.is_empty());
    assert_eq!(
        find(&sim, &token, user, "<moved@x>").await,
        vec![new_id.to_owned()]
    );
    // The old ids answer ErrorItemNotFound.
    for id in [&soft, &moved] {
        let (status, body) = get(&sim, &token, &format!("/users/{user}/messages/{id}")).await;
        assert_eq!(status, StatusCode::NOT_FOUND);
        assert_eq!(code(&body), "ErrorItemNotFound");
    }
}

/// A delete or move changes one copy in place: the answer to a move is that copy, in its new
/// folder under its new id, with all it carried (a mail to many recipients keeps them all), and
/// the other recipients' copies are untouched.
#[tokio::test]
async fn a_moved_copy_answers_with_its_new_folder_and_every_recipient() {
    let recipients: Vec<String> = (0..200)
        .map(|i| format!("r{i}@elsewhere.example"))
        .collect();
    let sim = world()
        .mail(
            Mail::new("<wide@x>", "bob@contoso.com")
                .to(["alice@contoso.com", "admin@contoso.com"])
                .cc(recipients.clone()),
        )
        .start()
        .await
        .unwrap();
    let token = app_token(&sim, contoso().id()).await;
    let user = "alice@contoso.com";
    let id = find(&sim, &token, user, "<wide@x>").await.remove(0);
    let (status, moved) = post(
        &sim,
        &token,
        &format!("/users/{user}/messages/{id}/move"),
        serde_json::json!({"destinationId": "deleteditems"}),
    )
    .await;
    assert_eq!(status, StatusCode::CREATED);
    assert_ne!(moved["id"].as_str(), Some(id.as_str()));
    assert_eq!(
        moved["parentFolderId"].as_str(),
        sim.folder_id(user, Folder::DeletedItems).as_deref()
    );
    assert_eq!(moved["internetMessageId"], "<wide@x>");
    assert_eq!(moved["toRecipients"].as_array().map(Vec::len), Some(2));
    let cc: Vec<&str> = moved["ccRecipients"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|r| r["emailAddress"]["address"].as_str())
        .collect();
    assert_eq!(cc, recipients);
    let copies = sim.copies_of(user, "<wide@x>");
    assert_eq!(copies.len(), 1);
    assert_eq!(copies[0].folder, Folder::DeletedItems);
    assert_eq!(copies[0].cc.len(), 200);
    let admin = sim.copies_of("admin@contoso.com", "<wide@x>");
    assert_eq!(admin.len(), 1);
    assert_eq!(admin[0].folder, Folder::Inbox);
}

#[tokio::test]
async fn malformed_message_id_is_refused_with_400() {
    let sim = world().start().await.unwrap();
    let token = app_token(&sim, contoso().id()).await;
    let (status, body) = get(&sim, &token, "/users/alice@contoso.com/messages/not-an-id").await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_eq!(code(&body), "ErrorInvalidIdMalformed");
}

#[tokio::test]
async fn mailbox_excluded_by_access_policy_answers_403() {
    let sim = world().start().await.unwrap();
    let token = app_token(&sim, contoso().id()).await;
    let (status, body) = get(&sim, &token, "/users/dave@contoso.com/messages").await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    assert_eq!(code(&body), "ErrorAccessDenied");
    assert_eq!(body["error"]["message"], "Access to OData is disabled.");
}

#[tokio::test]
async fn unlicensed_mailbox_answers_404_mailbox_not_enabled() {
    let sim = world().start().await.unwrap();
    let token = app_token(&sim, contoso().id()).await;
    let (status, body) = get(&sim, &token, "/users/carol@contoso.com/messages").await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    assert_eq!(code(&body), "MailboxNotEnabledForRESTAPI");
}

#[tokio::test]
async fn app_without_mail_permission_is_denied() {
    let sim = world()
        .app(graph_sim::seed::App::new("reader", "r").application_permissions(["User.Read.All"]))
        .tenant(
            graph_sim::seed::Tenant::new("Other")
                .consent("reader")
                .user(graph_sim::seed::User::new("o@other.com")),
        )
        .start()
        .await
        .unwrap();
    let token = sim
        .app_token("other.onmicrosoft.com", "reader", 600)
        .unwrap();
    let (status, body) = get(&sim, &token, "/users/o@other.com/messages").await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    assert_eq!(code(&body), "ErrorAccessDenied");
}

#[tokio::test]
async fn count_reports_the_number_of_matches() {
    let sim = world()
        .mail(
            Mail::new("<c@x>", "bob@contoso.com")
                .to(["alice@contoso.com"])
                .copies(12),
        )
        .start()
        .await
        .unwrap();
    let token = app_token(&sim, contoso().id()).await;
    let (status, body) = get(&sim, &token, "/users/alice@contoso.com/messages?$filter=internetMessageId%20eq%20'%3Cc@x%3E'&$count=true").await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(body["@odata.count"], 12);
    assert_eq!(body["value"].as_array().unwrap().len(), 10);
    assert!(
        body["@odata.nextLink"]
            .as_str()
            .unwrap()
            .starts_with(&sim.graph_base_url())
    );
}

#[tokio::test]
async fn deleted_items_and_recoverable_deletions_are_listable_but_purges_are_not() {
    let sim = world().start().await.unwrap();
    let token = app_token(&sim, contoso().id()).await;
    let (status, _) = get(
        &sim,
        &token,
        "/users/alice@contoso.com/mailFolders/deleteditems/messages",
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    let (status, _) = get(
        &sim,
        &token,
        "/users/alice@contoso.com/mailFolders/recoverableitemsdeletions/messages",
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    let (status, _) = get(
        &sim,
        &token,
        "/users/alice@contoso.com/mailFolders/recoverableitemspurges/messages",
    )
    .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
}
