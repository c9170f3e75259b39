//! Moves and Recoverable Items: new ids on every move, restoring soft-deleted copies out of
//! `recoverableitemsdeletions`, purging them, and Purges being out of Graph's reach.

use graph_sim::seed::Mail;
use graph_sim::{Folder, GraphSim};
use reqwest::StatusCode;
use serde_json::{Value, json};

use crate::support::{app_token, code, contoso, find, get, http, list_all, post, world};

const USER: &str = "alice@contoso.com";

async fn delete(sim: &GraphSim, token: &str, id: &str) -> StatusCode {
    http()
        .delete(format!(
            "{}/v1.0/users/{USER}/messages/{id}",
            sim.graph_base_url()
        ))
        .bearer_auth(token)
        .send()
        .await
        .unwrap()
        .status()
}

/// Ids of `imid`'s copies in Recoverable Items\Deletions, every page.
async fn in_deletions(sim: &GraphSim, token: &str, imid: &str) -> Vec<String> {
    list_all(
        sim,
        token,
        &format!("/users/{USER}/mailFolders/recoverableitemsdeletions/messages"),
        &[
            ("$filter", format!("internetMessageId eq '{imid}'")),
            ("$select", "id,parentFolderId".to_owned()),
        ],
    )
    .await
    .iter()
    .map(|m| m["id"].as_str().unwrap().to_owned())
    .collect()
}

#[tokio::test]
async fn soft_deleted_copy_is_listed_in_recoverable_deletions_and_restored_by_move() {
    let sim = world()
        .mail(Mail::new("<r@x>", "bob@contoso.com").to([USER]))
        .start()
        .await
        .unwrap();
    let token = app_token(&sim, contoso().id()).await;
    let original = find(&sim, &token, USER, "<r@x>").await.remove(0);
    assert_eq!(
        delete(&sim, &token, &original).await,
        StatusCode::NO_CONTENT
    );
    // Gone from the mailbox-wide search; in Deletions under a new id.
    assert!(find(&sim, &token, USER, "<r@x>").await.is_empty());
    let recoverable = in_deletions(&sim, &token, "<r@x>").await;
    assert_eq!(recoverable.len(), 1);
    assert_ne!(recoverable[0], original);
    let (status, body) = get(&sim, &token, &format!("/users/{USER}/messages/{original}")).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    assert_eq!(code(&body), "ErrorItemNotFound");
    let (status, body) = get(
        &sim,
        &token,
        &format!("/users/{USER}/messages/{}", recoverable[0]),
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(
        body["parentFolderId"],
        sim.folder_id(USER, Folder::RecoverableItemsDeletions)
            .unwrap()
            .as_str()
    );
    // Restore: move it back to the inbox; a new id again, visible to searches.
    let (status, moved) = post(
        &sim,
        &token,
        &format!("/users/{USER}/messages/{}/move", recoverable[0]),
        json!({ "destinationId": "inbox" }),
    )
    .await;
    assert_eq!(status, StatusCode::CREATED);
    let restored = moved["id"].as_str().unwrap().to_owned();
    assert_ne!(restored, recoverable[0]);
    assert_eq!(
        moved["parentFolderId"],
        sim.folder_id(USER, Folder::Inbox).unwrap().as_str()
    );
    assert_eq!(find(&sim, &token, USER, "<r@x>").await, vec![restored]);
    assert!(in_deletions(&sim, &token, "<r@x>").await.is_empty());
}

#[tokio::test]
async fn recoverable_deletions_listing_pages_through_next_link() {
    let sim = world()
        .mail(
            Mail::new("<many@x>", "bob@contoso.com")
                .to([USER])
                .copies(13),
        )
        .start()
        .await
        .unwrap();
    let token = app_token(&sim, contoso().id()).await;
    let ids = list_all(
        &sim,
        &token,
        &format!("/users/{USER}/messages"),
        &[
            ("$filter", "internetMessageId eq '<many@x>'".to_owned()),
            ("$select", "id".to_owned()),
        ],
    )
    .await;
    assert_eq!(ids.len(), 13);
    for copy in &ids {
        let id = copy["id"].as_str().unwrap();
        assert_eq!(delete(&sim, &token, id).await, StatusCode::NO_CONTENT);
    }
    let (_, first) = get(
        &sim,
        &token,
        &format!("/users/{USER}/mailFolders/recoverableitemsdeletions/messages?$filter=internetMessageId%20eq%20'%3Cmany@x%3E'"),
    )
    .await;
    assert_eq!(first["value"].as_array().unwrap().len(), 10);
    assert!(first["@odata.nextLink"].is_string());
    let mut all = in_deletions(&sim, &token, "<many@x>").await;
    all.sort();
    all.dedup();
    assert_eq!(all.len(), 13);
}

#[tokio::test]
async fn permanent_delete_of_a_recoverable_copy_puts_it_beyond_graphs_reach() {
    let sim = world()
        .mail(Mail::new("<p@x>", "bob@contoso.com").to([USER]))
        .start()
        .await
        .unwrap();
    let token = app_token(&sim, contoso().id()).await;
    let id = find(&sim, &token, USER, "<p@x>").await.remove(0);
    assert_eq!(delete(&sim, &token, &id).await, StatusCode::NO_CONTENT);
    let recoverable = in_deletions(&sim, &token, "<p@x>").await.remove(0);
    let (status, _) = post(
        &sim,
        &token,
        &format!("/users/{USER}/messages/{recoverable}/permanentDelete"),
        Value::Null,
    )
    .await;
    assert_eq!(status, StatusCode::NO_CONTENT);
    let copies = sim.copies_of(USER, "<p@x>");
    assert_eq!(copies.len(), 1);
    assert_eq!(copies[0].folder, Folder::RecoverableItemsPurges);
    // Purged: not listable, not readable, not movable, not deletable again.
    assert!(in_deletions(&sim, &token, "<p@x>").await.is_empty());
    let (status, body) = get(
        &sim,
        &token,
        &format!("/users/{USER}/messages/{recoverable}"),
    )
    .await;
    assert_eq!(
        (status, code(&body)),
        (StatusCode::NOT_FOUND, "ErrorItemNotFound")
    );
    let (status, body) = post(
        &sim,
        &token,
        &format!("/users/{USER}/messages/{recoverable}/move"),
        json!({ "destinationId": "inbox" }),
    )
    .await;
    assert_eq!(
        (status, code(&body)),
        (StatusCode::NOT_FOUND, "ErrorItemNotFound")
    );
    let (status, body) = post(
        &sim,
        &token,
        &format!("/users/{USER}/messages/{recoverable}/permanentDelete"),
        Value::Null,
    )
    .await;
    assert_eq!(
        (status, code(&body)),
        (StatusCode::NOT_FOUND, "ErrorItemNotFound")
    );
    let (status, _) = get(
        &sim,
        &token,
        &format!("/users/{USER}/mailFolders/recoverableitemspurges/messages"),
    )
    .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
}

#[tokio::test]
async fn move_accepts_well_known_names_and_folder_ids_and_always_gives_a_new_id() {
    let sim = world()
        .mail(Mail::new("<mv@x>", "bob@contoso.com").to([USER]))
        .start()
        .await
        .unwrap();
    let token = app_token(&sim, contoso().id()).await;
    let mut id = find(&sim, &token, USER, "<mv@x>").await.remove(0);
    let sent_items_id = sim.folder_id(USER, Folder::SentItems).unwrap();
    let steps = [
        ("drafts", Folder::Drafts),
        ("Archive", Folder::Archive),
        ("junkemail", Folder::JunkEmail),
        (sent_items_id.as_str(), Folder::SentItems),
        ("deleteditems", Folder::DeletedItems),
        ("inbox", Folder::Inbox),
    ];
    for (destination, folder) in steps {
        let (status, moved) = post(
            &sim,
            &token,
            &format!("/users/{USER}/messages/{id}/move"),
            json!({ "destinationId": destination }),
        )
        .await;
        assert_eq!(status, StatusCode::CREATED, "{destination}");
        let new_id = moved["id"].as_str().unwrap().to_owned();
        assert_ne!(new_id, id);
        assert_eq!(
            moved["parentFolderId"],
            sim.folder_id(USER, folder).unwrap().as_str()
        );
        assert_eq!(sim.copies_of(USER, "<mv@x>")[0].folder, folder);
        id = new_id;
    }
    for bad in ["Processed", "recoverableitemspurges"] {
        let (status, body) = post(
            &sim,
            &token,
            &format!("/users/{USER}/messages/{id}/move"),
            json!({ "destinationId": bad }),
        )
        .await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{bad}");
        assert_eq!(code(&body), "ErrorInvalidIdMalformed");
    }
}
