//! Threads: conversation indexes, per-mailbox conversation ids, the conversation filter,
//! reply/forward/draft builders, groups and outside recipients, internet message headers.

use graph_sim::conversation::{self, CHILD_LEN, HEADER_LEN};
use graph_sim::seed::{App, Group, Mail};
use graph_sim::{Folder, GraphSim};
use reqwest::StatusCode;
use serde_json::Value;

use crate::support::{CLIENT_ID, SECRET, app_token, code, contoso, get, http, list_all, world};

/// The copies of `imid` in one mailbox with the selected properties, through `$filter`.
async fn select(sim: &GraphSim, token: &str, user: &str, imid: &str, props: &str) -> Vec<Value> {
    list_all(
        sim,
        token,
        &format!("/users/{user}/messages"),
        &[
            (
                "$filter",
                format!("internetMessageId eq '{}'", imid.replace('\'', "''")),
            ),
            ("$select", props.to_owned()),
        ],
    )
    .await
}

/// The one copy's `conversationIndex` in a mailbox.
async fn index_in(sim: &GraphSim, token: &str, user: &str, imid: &str) -> String {
    let copies = select(sim, token, user, imid, "conversationIndex").await;
    assert_eq!(copies.len(), 1, "{imid} in {user}");
    copies[0]["conversationIndex"].as_str().unwrap().to_owned()
}

async fn in_conversation(sim: &GraphSim, token: &str, user: &str, id: &str) -> Vec<String> {
    let mut found: Vec<String> = list_all(
        sim,
        token,
        &format!("/users/{user}/messages"),
        &[
            ("$filter", format!("conversationId eq '{id}'")),
            ("$select", "internetMessageId".to_owned()),
        ],
    )
    .await
    .iter()
    .map(|m| m["internetMessageId"].as_str().unwrap().to_owned())
    .collect();
    found.sort();
    found
}

#[tokio::test]
async fn replies_and_forwards_extend_the_parent_conversation_index_on_every_copy() {
    let original = Mail::new("<root@contoso.com>", "bob@contoso.com").to(["alice@contoso.com"]);
    let forward = original
        .forward("<fw@contoso.com>", "alice@contoso.com")
        .to(["admin@contoso.com"]);
    let reply = forward.reply("<re@contoso.com>", "admin@contoso.com");
    let sim = world()
        .mail(original.clone())
        .mail(forward.clone())
        .mail(reply.clone())
        .start()
        .await
        .unwrap();
    let token = app_token(&sim, contoso().id()).await;
    // The index travels with the message: the sender's copy and the recipient's are equal.
    let root = index_in(&sim, &token, "bob@contoso.com", "<root@contoso.com>").await;
    assert_eq!(
        root,
        index_in(&sim, &token, "alice@contoso.com", "<root@contoso.com>").await
    );
    let fw = index_in(&sim, &token, "alice@contoso.com", "<fw@contoso.com>").await;
    assert_eq!(
        fw,
        index_in(&sim, &token, "admin@contoso.com", "<fw@contoso.com>").await
    );
    let re = index_in(&sim, &token, "alice@contoso.com", "<re@contoso.com>").await;
    let raw = |s: &str| conversation::decode(s).unwrap();
    assert_eq!(raw(&root).len(), HEADER_LEN);
    assert_eq!(raw(&root)[0], 0x01);
    assert_eq!(raw(&fw).len(), HEADER_LEN + CHILD_LEN);
    assert_eq!(raw(&re).len(), HEADER_LEN + 2 * CHILD_LEN);
    assert!(raw(&re).starts_with(&raw(&fw)) && raw(&fw).starts_with(&raw(&root)));
    assert_eq!(conversation::hops_between(&root, &re), Some(2));
    assert_eq!(conversation::hops_between(&fw, &re), Some(1));
    // The builders know the same values before delivery.
    assert_eq!(
        original.conversation_index().as_deref(),
        Some(root.as_str())
    );
    assert_eq!(reply.conversation_index().as_deref(), Some(re.as_str()));
    // Same seed, same indexes.
    let again = world().mail(original).start().await.unwrap();
    let token = app_token(&again, contoso().id()).await;
    assert_eq!(
        root,
        index_in(&again, &token, "bob@contoso.com", "<root@contoso.com>").await
    );
}

#[tokio::test]
async fn conversation_ids_differ_between_mailboxes_but_not_within_one() {
    let original = Mail::new("<q@contoso.com>", "bob@contoso.com").to(["alice@contoso.com"]);
    let reply = original.reply("<re-q@contoso.com>", "alice@contoso.com");
    let sim = world()
        .mail(original.clone())
        .mail(reply)
        .start()
        .await
        .unwrap();
    let token = app_token(&sim, contoso().id()).await;
    let bobs = sim
        .conversation_id_in("bob@contoso.com", &original)
        .unwrap();
    let alices = sim
        .conversation_id_in("alice@contoso.com", &original)
        .unwrap();
    assert_ne!(bobs, alices);
    let both = vec![
        "<q@contoso.com>".to_owned(),
        "<re-q@contoso.com>".to_owned(),
    ];
    assert_eq!(
        in_conversation(&sim, &token, "bob@contoso.com", &bobs).await,
        both
    );
    assert_eq!(
        in_conversation(&sim, &token, "alice@contoso.com", &alices).await,
        both
    );
    // Another mailbox's id of the same thread finds nothing.
    assert!(
        in_conversation(&sim, &token, "bob@contoso.com", &alices)
            .await
            .is_empty()
    );
    // What Graph renders is the mailbox's id.
    let copies = select(
        &sim,
        &token,
        "bob@contoso.com",
        "<re-q@contoso.com>",
        "conversationId",
    )
    .await;
    assert_eq!(copies[0]["conversationId"], bobs.as_str());
}

#[tokio::test]
async fn global_conversation_ids_are_the_same_in_every_mailbox() {
    let original = Mail::new("<g@contoso.com>", "bob@contoso.com").to(["alice@contoso.com"]);
    let sim = world()
        .global_conversation_ids()
        .mail(original.clone())
        .start()
        .await
        .unwrap();
    let token = app_token(&sim, contoso().id()).await;
    for user in ["bob@contoso.com", "alice@contoso.com"] {
        assert_eq!(
            sim.conversation_id_in(user, &original).unwrap(),
            original.conversation()
        );
        assert_eq!(
            in_conversation(&sim, &token, user, &original.conversation()).await,
            vec!["<g@contoso.com>".to_owned()]
        );
    }
}

#[tokio::test]
async fn conversation_filter_pages_through_next_link_and_refuses_orderby() {
    let mut builder = world();
    let root = Mail::new("<long@contoso.com>", "bob@contoso.com").to(["alice@contoso.com"]);
    let mut parent = root.clone();
    builder = builder.mail(root.clone());
    for i in 0..24 {
        let next = parent
            .reply(format!("<long-{i}@contoso.com>"), "bob@contoso.com")
            .to(["alice@contoso.com"]);
        builder = builder.mail(next.clone());
        parent = next;
    }
    let sim = builder.start().await.unwrap();
    let token = app_token(&sim, contoso().id()).await;
    let alices = sim.conversation_id_in("alice@contoso.com", &root).unwrap();
    let found = in_conversation(&sim, &token, "alice@contoso.com", &alices).await;
    assert_eq!(found.len(), 25);
    let ordered = http()
        .get(format!(
            "{}/v1.0/users/alice@contoso.com/messages",
            sim.graph_base_url()
        ))
        .query(&[
            ("$filter", format!("conversationId eq '{alices}'")),
            ("$orderby", "sentDateTime".to_owned()),
        ])
        .bearer_auth(&token)
        .send()
        .await
        .unwrap();
    assert_eq!(ordered.status(), StatusCode::BAD_REQUEST);
    let body: Value = ordered.json().await.unwrap();
    assert_eq!(code(&body), "InefficientFilter");
    // Pages of 10 by default: three pages for 25.
    let first: Value = http()
        .get(format!(
            "{}/v1.0/users/alice@contoso.com/messages",
            sim.graph_base_url()
        ))
        .query(&[("$filter", format!("conversationId eq '{alices}'"))])
        .bearer_auth(&token)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(first["value"].as_array().unwrap().len(), 10);
    assert!(first["@odata.nextLink"].is_string());
}

#[tokio::test]
async fn sent_items_copy_lists_to_cc_and_bcc_but_recipients_copies_hide_bcc() {
    let sim = world()
        .mail(
            Mail::new("<b@contoso.com>", "bob@contoso.com")
                .to(["alice@contoso.com"])
                .cc(["admin@contoso.com"])
                .bcc(["erin@fabrikam.com"]),
        )
        .start()
        .await
        .unwrap();
    let token = app_token(&sim, contoso().id()).await;
    let props = "toRecipients,ccRecipients,bccRecipients,parentFolderId";
    let addresses = |v: &Value| -> Vec<String> {
        v.as_array()
            .unwrap()
            .iter()
            .map(|r| r["emailAddress"]["address"].as_str().unwrap().to_owned())
            .collect()
    };
    let sent = select(&sim, &token, "bob@contoso.com", "<b@contoso.com>", props).await;
    assert_eq!(addresses(&sent[0]["toRecipients"]), ["alice@contoso.com"]);
    assert_eq!(addresses(&sent[0]["ccRecipients"]), ["admin@contoso.com"]);
    assert_eq!(addresses(&sent[0]["bccRecipients"]), ["erin@fabrikam.com"]);
    assert_eq!(
        sent[0]["parentFolderId"],
        sim.folder_id("bob@contoso.com", Folder::SentItems)
            .unwrap()
            .as_str()
    );
    let received = select(&sim, &token, "alice@contoso.com", "<b@contoso.com>", props).await;
    assert_eq!(
        addresses(&received[0]["ccRecipients"]),
        ["admin@contoso.com"]
    );
    assert!(addresses(&received[0]["bccRecipients"]).is_empty());
    assert_eq!(
        received[0]["parentFolderId"],
        sim.folder_id("alice@contoso.com", Folder::Inbox)
            .unwrap()
            .as_str()
    );
    assert_eq!(sim.messages_in("erin@fabrikam.com", Folder::Inbox).len(), 1);
}

#[tokio::test]
async fn forward_to_an_outside_address_is_only_a_recipient_on_the_senders_copy() {
    let original = Mail::new("<o@contoso.com>", "bob@contoso.com").to(["alice@contoso.com"]);
    let forward = original
        .forward("<fw-o@contoso.com>", "alice@contoso.com")
        .to(["friend@gmail.example"]);
    let sim = world().mail(original).mail(forward).start().await.unwrap();
    let sent = sim.messages_in("alice@contoso.com", Folder::SentItems);
    assert_eq!(sent.len(), 1);
    assert_eq!(sent[0].to[0].address, "friend@gmail.example");
    assert_eq!(
        sim.copies_of("alice@contoso.com", "<fw-o@contoso.com>")
            .len(),
        1
    );
    assert!(sim.mailbox("friend@gmail.example").is_none());
}

#[tokio::test]
async fn mail_to_a_group_reaches_its_members_and_the_group_is_not_a_user() {
    let tenant = contoso()
        .group(
            Group::distribution_list("finance@contoso.com")
                .members(["alice@contoso.com", "team@contoso.com"]),
        )
        .group(Group::microsoft365("team@contoso.com").members(["admin@contoso.com"]));
    let original = Mail::new("<grp@contoso.com>", "bob@contoso.com").to(["alice@contoso.com"]);
    let forward = original
        .forward("<fw-grp@contoso.com>", "alice@contoso.com")
        .to(["finance@contoso.com"]);
    let sim = GraphSim::builder()
        .app(App::new(CLIENT_ID, SECRET))
        .tenant(tenant)
        .mail(original)
        .mail(forward)
        .start()
        .await
        .unwrap();
    let token = app_token(&sim, contoso().id()).await;
    // Members (nested groups too) got the forward; the To line names the group.
    let admin = sim.copies_of("admin@contoso.com", "<fw-grp@contoso.com>");
    assert_eq!(admin.len(), 1);
    assert_eq!(admin[0].to[0].address, "finance@contoso.com");
    // Alice sent it and is a member too: her Sent Items copy and an inbox copy.
    let mut alices: Vec<Folder> = sim
        .copies_of("alice@contoso.com", "<fw-grp@contoso.com>")
        .iter()
        .map(|m| m.folder)
        .collect();
    alices.sort();
    assert_eq!(alices, [Folder::Inbox, Folder::SentItems]);
    // The group is a directory object but not a user.
    let (status, body) = get(&sim, &token, "/users/finance@contoso.com").await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    assert_eq!(code(&body), "Request_ResourceNotFound");
    let (status, body) = get(
        &sim,
        &token,
        "/users?$filter=mail%20eq%20'finance@contoso.com'",
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    assert!(body["value"].as_array().unwrap().is_empty());
    let (status, body) = get(&sim, &token, "/users/team@contoso.com/messages").await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    assert_eq!(code(&body), "ErrorInvalidUser");
}

#[tokio::test]
async fn forward_sent_as_new_message_starts_an_unrelated_conversation() {
    let original = Mail::new("<n@contoso.com>", "bob@contoso.com")
        .subject("numbers")
        .to(["alice@contoso.com"]);
    let fresh = original
        .forward_as_new("<new@contoso.com>", "alice@contoso.com")
        .to(["admin@contoso.com"]);
    assert_eq!(fresh.subject, "FW: numbers");
    assert!(fresh.in_reply_to.is_none());
    let sim = world()
        .mail(original.clone())
        .mail(fresh.clone())
        .start()
        .await
        .unwrap();
    let token = app_token(&sim, contoso().id()).await;
    let root = index_in(&sim, &token, "alice@contoso.com", "<n@contoso.com>").await;
    let new = index_in(&sim, &token, "admin@contoso.com", "<new@contoso.com>").await;
    assert_eq!(conversation::decode(&new).unwrap().len(), HEADER_LEN);
    assert_eq!(conversation::hops_between(&root, &new), None);
    assert_ne!(
        sim.conversation_id_in("alice@contoso.com", &original),
        sim.conversation_id_in("alice@contoso.com", &fresh)
    );
    let headers = select(
        &sim,
        &token,
        "admin@contoso.com",
        "<new@contoso.com>",
        "internetMessageHeaders",
    )
    .await;
    let names: Vec<&str> = headers[0]["internetMessageHeaders"]
        .as_array()
        .unwrap()
        .iter()
        .map(|h| h["name"].as_str().unwrap())
        .collect();
    assert!(!names.contains(&"In-Reply-To") && !names.contains(&"References"));
}

#[tokio::test]
async fn phishing_reply_inside_an_older_thread_has_the_older_messages_as_ancestors() {
    let invoice = Mail::new("<inv@contoso.com>", "alice@contoso.com")
        .subject("Invoice 42")
        .to(["bob@contoso.com"]);
    let answer = invoice.reply("<inv-re@contoso.com>", "bob@contoso.com");
    // Weeks later an attacker who stole the thread answers inside it.
    let phish = answer
        .reply("<phish@evil.example>", "attacker@evil.example")
        .to(["bob@contoso.com"])
        .sent_at(invoice.sent_or_default() + chrono::Duration::days(21));
    let sim = world()
        .mail(invoice.clone())
        .mail(answer)
        .mail(phish.clone())
        .start()
        .await
        .unwrap();
    let token = app_token(&sim, contoso().id()).await;
    let root = index_in(&sim, &token, "bob@contoso.com", "<inv@contoso.com>").await;
    let mid = index_in(&sim, &token, "bob@contoso.com", "<inv-re@contoso.com>").await;
    let bad = index_in(&sim, &token, "bob@contoso.com", "<phish@evil.example>").await;
    assert_eq!(conversation::hops_between(&root, &bad), Some(2));
    assert_eq!(conversation::hops_between(&mid, &bad), Some(1));
    assert_eq!(phish.conversation(), invoice.conversation());
    let bobs = sim.conversation_id_in("bob@contoso.com", &invoice).unwrap();
    assert_eq!(
        in_conversation(&sim, &token, "bob@contoso.com", &bobs).await,
        [
            "<inv-re@contoso.com>",
            "<inv@contoso.com>",
            "<phish@evil.example>"
        ]
    );
}

#[tokio::test]
async fn drafts_sit_only_in_the_authors_drafts_folder() {
    let original = Mail::new("<d@contoso.com>", "bob@contoso.com").to(["alice@contoso.com"]);
    let draft = original
        .forward("<draft@contoso.com>", "alice@contoso.com")
        .to(["admin@contoso.com"])
        .draft();
    let sim = world()
        .mail(original.clone())
        .mail(draft)
        .start()
        .await
        .unwrap();
    let token = app_token(&sim, contoso().id()).await;
    assert!(
        sim.copies_of("admin@contoso.com", "<draft@contoso.com>")
            .is_empty()
    );
    assert!(
        sim.messages_in("alice@contoso.com", Folder::SentItems)
            .is_empty()
    );
    let copies = select(
        &sim,
        &token,
        "alice@contoso.com",
        "<draft@contoso.com>",
        "isDraft,parentFolderId,conversationId,internetMessageHeaders",
    )
    .await;
    assert_eq!(copies.len(), 1);
    assert_eq!(copies[0]["isDraft"], true);
    assert_eq!(
        copies[0]["parentFolderId"],
        sim.folder_id("alice@contoso.com", Folder::Drafts)
            .unwrap()
            .as_str()
    );
    assert_eq!(
        copies[0]["conversationId"],
        sim.conversation_id_in("alice@contoso.com", &original)
            .unwrap()
            .as_str()
    );
    assert!(copies[0].get("internetMessageHeaders").is_none());
    let received = select(
        &sim,
        &token,
        "alice@contoso.com",
        "<d@contoso.com>",
        "isDraft",
    )
    .await;
    assert_eq!(received[0]["isDraft"], false);
}

#[tokio::test]
async fn internet_message_headers_carry_message_id_and_the_parent_chain() {
    let original = Mail::new("<h1@contoso.com>", "bob@contoso.com").to(["alice@contoso.com"]);
    let reply = original.reply("<h2@contoso.com>", "alice@contoso.com");
    let forward = reply
        .forward("<h3@contoso.com>", "bob@contoso.com")
        .to(["admin@contoso.com"]);
    let sim = world()
        .mail(original)
        .mail(reply)
        .mail(forward.clone())
        .start()
        .await
        .unwrap();
    let token = app_token(&sim, contoso().id()).await;
    let copies = select(
        &sim,
        &token,
        "admin@contoso.com",
        "<h3@contoso.com>",
        "internetMessageHeaders",
    )
    .await;
    let headers = copies[0]["internetMessageHeaders"].as_array().unwrap();
    let header = |name: &str| {
        headers
            .iter()
            .find(|h| h["name"] == name)
            .map(|h| h["value"].as_str().unwrap().to_owned())
    };
    assert_eq!(header("Message-ID").as_deref(), Some("<h3@contoso.com>"));
    assert_eq!(header("In-Reply-To").as_deref(), Some("<h2@contoso.com>"));
    assert_eq!(
        header("References").as_deref(),
        Some("<h1@contoso.com> <h2@contoso.com>")
    );
    assert_eq!(header("Thread-Index"), forward.conversation_index());
    assert!(header("Bcc").is_none());
    // Not without $select, and never on the sender's Sent Items copy.
    let (_, plain) = get(&sim, &token, "/users/admin@contoso.com/messages").await;
    assert!(plain["value"][0].get("internetMessageHeaders").is_none());
    let sent = select(
        &sim,
        &token,
        "bob@contoso.com",
        "<h3@contoso.com>",
        "internetMessageHeaders",
    )
    .await;
    assert!(sent[0].get("internetMessageHeaders").is_none());
}

#[tokio::test]
async fn missing_or_malformed_conversation_index_can_be_seeded() {
    let missing = Mail::new("<none@x>", "bob@contoso.com")
        .to(["alice@contoso.com"])
        .without_conversation_index();
    let reply = missing.reply("<none-re@x>", "alice@contoso.com");
    let malformed = Mail::new("<bad@x>", "bob@contoso.com")
        .to(["alice@contoso.com"])
        .malformed_conversation_index();
    let sim = world()
        .mail(missing.clone())
        .mail(reply)
        .mail(malformed)
        .start()
        .await
        .unwrap();
    let token = app_token(&sim, contoso().id()).await;
    let none = select(
        &sim,
        &token,
        "alice@contoso.com",
        "<none@x>",
        "conversationIndex",
    )
    .await;
    assert!(none[0]["conversationIndex"].is_null());
    let bad = index_in(&sim, &token, "alice@contoso.com", "<bad@x>").await;
    assert!(!conversation::is_well_formed(
        &conversation::decode(&bad).unwrap()
    ));
    // A reply to a message without an index starts a new header, but stays in the thread.
    let re = index_in(&sim, &token, "bob@contoso.com", "<none-re@x>").await;
    assert_eq!(conversation::decode(&re).unwrap().len(), HEADER_LEN);
    let bobs = sim.conversation_id_in("bob@contoso.com", &missing).unwrap();
    assert_eq!(
        in_conversation(&sim, &token, "bob@contoso.com", &bobs).await,
        ["<none-re@x>", "<none@x>"]
    );
}
