//! Mailbox operations against graph-sim with the real Graph client: finding every copy of a
//! message whatever characters its id holds, the three delete modes' effects, aliases,
//! Microsoft's refusals, and throttling honoured.

use std::{sync::Arc, time::Duration};

use graph_sim::{
    Folder, GraphSim, Limits, Service,
    seed::{App, Domain, Mail, Tenant, User},
};
use retract_server::{
    domain::{EmailAddress, InternetMessageId, MicrosoftTenantId},
    graph::{
        AppTokens, DeleteMode, Deleted, Folder as GraphFolder, GraphClient, GraphError,
        GraphSettings, Moved, RetryPolicy, http_client,
    },
};

const CLIENT_ID: &str = "retract-app";
const CLIENT_SECRET: &str = "retract-secret";

fn contoso() -> Tenant {
    Tenant::new("Contoso")
        .domain(Domain::verified("contoso.com"))
        .consent(CLIENT_ID)
        .user(User::new("alice@contoso.com").alias("ally@contoso.com"))
        .user(User::new("bob@contoso.com"))
        .user(User::new("locked@contoso.com").excluded_by_access_policy())
        .user(User::new("onprem@contoso.com").unlicensed())
}

async fn sim_with(mails: Vec<Mail>) -> GraphSim {
    let mut builder = GraphSim::builder()
        .app(App::new(CLIENT_ID, CLIENT_SECRET))
        .tenant(contoso())
        .page_size(2);
    for mail in mails {
        builder = builder.mail(mail);
    }
    builder.start().await.expect("graph-sim starts")
}

fn client(sim: &GraphSim, retry: RetryPolicy) -> GraphClient {
    graph_client(sim, CLIENT_ID, CLIENT_SECRET, retry)
}

/// Our Graph client for `sim` as app `client_id` (tests also act as a user would through it).
pub(crate) fn graph_client(
    sim: &GraphSim,
    client_id: &str,
    secret: &str,
    retry: RetryPolicy,
) -> GraphClient {
    let settings = GraphSettings {
        graph_base_url: sim.graph_base_url(),
        login_base_url: sim.login_base_url(),
        credential: retract_server::graph::AppCredential::secret(client_id, secret),
        refresh_margin: Duration::from_secs(60),
        request_timeout: Duration::from_secs(10),
        retry,
        requests_per_second: 0.0,
    };
    let http = http_client(&settings).unwrap();
    let tokens = Arc::new(AppTokens::new(settings.clone(), http.clone()));
    GraphClient::new(&settings, http, tokens)
}

pub(crate) fn fast_retry() -> RetryPolicy {
    RetryPolicy {
        max_attempts: 4,
        base_backoff: Duration::from_millis(20),
        max_backoff: Duration::from_millis(100),
        ..RetryPolicy::default()
    }
}

fn address(a: &str) -> EmailAddress {
    EmailAddress::parse(a).unwrap()
}

fn imid(id: &str) -> InternetMessageId {
    InternetMessageId::parse(id).unwrap()
}

#[tokio::test]
async fn every_copy_is_found_whatever_its_id_holds_and_nothing_else() {
    let hostile = [
        "<o'brien+tag#1%20x&y=z@contoso.com>",
        "<x')or(internetMessageId%20ne%20'y@evil.example>",
        "<plain@contoso.com>",
    ];
    let mails: Vec<Mail> = hostile
        .iter()
        .map(|id| {
            Mail::new(*id, "eve@outside.example")
                .to(["bob@contoso.com"])
                .copies(3)
        })
        .collect();
    let sim = sim_with(mails).await;
    let graph = client(&sim, fast_retry());
    let tenant = MicrosoftTenantId::parse(contoso().id()).unwrap();
    let bob = graph
        .resolve_mailbox(&tenant, &address("bob@contoso.com"))
        .await
        .unwrap()
        .unwrap();
    for id in hostile {
        let copies = graph
            .find_copies(&tenant, &bob, None, &imid(id))
            .await
            .unwrap();
        assert_eq!(
            copies.len(),
            3,
            "{id}: three copies over two pages, each once"
        );
        let mut ids: Vec<_> = copies.iter().map(|c| c.id.clone()).collect();
        ids.sort();
        ids.dedup();
        assert_eq!(ids.len(), 3);
    }
    let none = graph
        .find_copies(&tenant, &bob, None, &imid("<x')or(true@evil>"))
        .await
        .unwrap();
    assert!(none.is_empty(), "an injected condition matches nothing");
}

#[tokio::test]
async fn each_delete_mode_leaves_the_copy_where_microsoft_does() {
    let sim = sim_with(vec![
        Mail::new("<soft@o.example>", "eve@outside.example").to(["bob@contoso.com"]),
        Mail::new("<hard@o.example>", "eve@outside.example").to(["bob@contoso.com"]),
        Mail::new("<move@o.example>", "eve@outside.example").to(["bob@contoso.com"]),
    ])
    .await;
    let graph = client(&sim, fast_retry());
    let tenant = MicrosoftTenantId::parse(contoso().id()).unwrap();
    let bob = graph
        .resolve_mailbox(&tenant, &address("bob@contoso.com"))
        .await
        .unwrap()
        .unwrap();
    for (id, mode) in [
        ("<soft@o.example>", DeleteMode::Soft),
        ("<hard@o.example>", DeleteMode::Hard),
        ("<move@o.example>", DeleteMode::MoveToDeletedItems),
    ] {
        let copies = graph
            .find_copies(&tenant, &bob, None, &imid(id))
            .await
            .unwrap();
        assert_eq!(copies.len(), 1);
        let deleted = graph
            .delete_copy(&tenant, &bob, &copies[0], mode)
            .await
            .unwrap();
        let Deleted::Deleted { new_id } = deleted else {
            panic!("{id}: {deleted:?}");
        };
        // A move answers the message where it went, under its new id; deletes answer nothing.
        let moved_to: Option<String> = (mode == DeleteMode::MoveToDeletedItems).then(|| {
            sim.copies_of("bob@contoso.com", id)
                .into_iter()
                .find(|m| m.folder == Folder::DeletedItems)
                .expect("moved")
                .id
        });
        assert_eq!(new_id, moved_to, "{id}");
        assert_ne!(
            new_id.as_deref(),
            Some(copies[0].id.as_str()),
            "{id}: a moved message's id changes"
        );
        assert_eq!(
            graph
                .delete_copy(&tenant, &bob, &copies[0], mode)
                .await
                .unwrap(),
            Deleted::AlreadyGone,
            "{id}: gone already"
        );
    }
    let in_folder = |folder: Folder| -> Vec<String> {
        sim.messages_in("bob@contoso.com", folder)
            .into_iter()
            .map(|m| m.internet_message_id)
            .collect()
    };
    assert!(in_folder(Folder::Inbox).is_empty());
    assert_eq!(
        in_folder(Folder::RecoverableItemsDeletions),
        ["<soft@o.example>"]
    );
    assert_eq!(
        in_folder(Folder::RecoverableItemsPurges),
        ["<hard@o.example>"]
    );
    assert_eq!(in_folder(Folder::DeletedItems), ["<move@o.example>"]);
}

#[tokio::test]
async fn moved_and_soft_deleted_copies_move_back_and_a_stale_id_answers_gone() {
    let sim = sim_with(vec![
        Mail::new("<a@o.example>", "eve@outside.example").to(["bob@contoso.com"]),
        Mail::new("<b@o.example>", "eve@outside.example").to(["bob@contoso.com"]),
    ])
    .await;
    let graph = client(&sim, fast_retry());
    let tenant = MicrosoftTenantId::parse(contoso().id()).unwrap();
    let bob = graph
        .resolve_mailbox(&tenant, &address("bob@contoso.com"))
        .await
        .unwrap()
        .unwrap();
    let find = |id: &'static str, folder| {
        let graph = graph.clone();
        let (tenant, bob) = (tenant.clone(), bob.clone());
        async move {
            graph
                .find_copies(&tenant, &bob, folder, &imid(id))
                .await
                .unwrap()
        }
    };
    let a = find("<a@o.example>", None).await.remove(0);
    let b = find("<b@o.example>", None).await.remove(0);
    let inbox = a.parent_folder_id.clone().expect("a folder id");
    graph
        .delete_copy(&tenant, &bob, &a, DeleteMode::MoveToDeletedItems)
        .await
        .unwrap();
    graph
        .delete_copy(&tenant, &bob, &b, DeleteMode::Soft)
        .await
        .unwrap();
    let a_now = find("<a@o.example>", Some(GraphFolder::DeletedItems))
        .await
        .remove(0);
    let b_now = find(
        "<b@o.example>",
        Some(GraphFolder::RecoverableItemsDeletions),
    )
    .await
    .remove(0);
    // Two moves back at once ride one $batch; an id no longer there answers Gone.
    let answers = graph
        .move_copies(
            &tenant,
            &bob,
            &[
                (a_now.id.clone(), inbox.clone()),
                (b_now.id.clone(), inbox.clone()),
                (a.id.clone(), inbox.clone()),
            ],
        )
        .await;
    assert!(
        matches!(&answers[0], Ok(Moved::Moved { new_id: Some(_) })),
        "{answers:?}"
    );
    assert!(
        matches!(&answers[1], Ok(Moved::Moved { new_id: Some(_) })),
        "{answers:?}"
    );
    assert!(matches!(&answers[2], Ok(Moved::Gone)), "{answers:?}");
    let in_inbox: Vec<String> = sim
        .messages_in("bob@contoso.com", Folder::Inbox)
        .into_iter()
        .map(|m| m.internet_message_id)
        .collect();
    assert_eq!(in_inbox.len(), 2, "{in_inbox:?}");
    assert!(
        sim.messages_in("bob@contoso.com", Folder::DeletedItems)
            .is_empty()
    );
    assert!(
        sim.messages_in("bob@contoso.com", Folder::RecoverableItemsDeletions)
            .is_empty()
    );
}

/// Graph throttles per app per mailbox: once one request to Bob's mailbox got a 429 with
/// `Retry-After: 2`, a request to it started later (after the storm itself ended) still waits
/// out those 2 seconds instead of arriving early and being throttled again.
#[tokio::test]
async fn a_429_holds_every_request_to_that_mailbox_until_its_retry_after() {
    let sim = sim_with(vec![
        Mail::new("<held@o.example>", "eve@outside.example").to(["bob@contoso.com"]),
    ])
    .await;
    sim.set_limits(Limits {
        retry_after_secs: 2,
        ..Default::default()
    });
    let graph = client(&sim, fast_retry());
    let tenant = MicrosoftTenantId::parse(contoso().id()).unwrap();
    let bob = graph
        .resolve_mailbox(&tenant, &address("bob@contoso.com"))
        .await
        .unwrap()
        .unwrap();
    sim.start_throttle_storm(Duration::from_millis(200));
    let first = {
        let (graph, tenant, bob) = (graph.clone(), tenant.clone(), bob.clone());
        tokio::spawn(async move {
            graph
                .find_copies(&tenant, &bob, None, &imid("<held@o.example>"))
                .await
        })
    };
    tokio::time::timeout(Duration::from_secs(5), async {
        while sim.throttle_events().is_empty() {
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    })
    .await
    .expect("the first request is throttled");
    tokio::time::sleep(Duration::from_millis(400)).await;
    let second = graph
        .find_copies(&tenant, &bob, None, &imid("<held@o.example>"))
        .await
        .unwrap();
    assert_eq!(second.len(), 1);
    assert_eq!(first.await.unwrap().unwrap().len(), 1);
    let to_bob: Vec<_> = sim
        .graph_requests()
        .into_iter()
        .filter(|r| r.mailbox.as_deref() == Some("bob@contoso.com"))
        .collect();
    let throttled = to_bob
        .iter()
        .find(|r| r.status == Some(429))
        .expect("a 429 for Bob");
    for later in to_bob.iter().filter(|r| r.started > throttled.finished) {
        assert!(
            later.started.duration_since(throttled.finished) >= Duration::from_secs(2),
            "a request to Bob arrived {:?} after his 429, before its Retry-After",
            later.started.duration_since(throttled.finished)
        );
    }
    assert_eq!(
        to_bob.iter().filter(|r| r.status == Some(429)).count(),
        1,
        "throttled once, not again for arriving early"
    );
}

#[tokio::test]
async fn aliases_are_looked_up_only_when_the_address_itself_is_unknown() {
    let sim = sim_with(vec![]).await;
    let graph = client(&sim, fast_retry());
    let tenant = MicrosoftTenantId::parse(contoso().id()).unwrap();
    let direct = graph
        .resolve_mailbox(&tenant, &address("alice@contoso.com"))
        .await
        .unwrap()
        .unwrap();
    let user_lookups = |sim: &GraphSim| {
        sim.graph_requests()
            .iter()
            .filter(|r| r.path.ends_with("/users"))
            .count()
    };
    assert_eq!(
        user_lookups(&sim),
        0,
        "no $filter lookup for a primary address"
    );
    let alias = graph
        .resolve_mailbox(&tenant, &address("ally@contoso.com"))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(alias.id, direct.id, "the alias is Alice's mailbox");
    assert_eq!(user_lookups(&sim), 1);
    assert_eq!(
        graph
            .resolve_mailbox(&tenant, &address("nobody@contoso.com"))
            .await
            .unwrap(),
        None
    );
}

#[tokio::test]
async fn microsofts_permission_answers_are_typed() {
    let sim = sim_with(vec![
        Mail::new("<m@o.example>", "eve@outside.example")
            .to(["locked@contoso.com", "onprem@contoso.com"]),
    ])
    .await;
    let graph = client(&sim, fast_retry());
    let tenant = MicrosoftTenantId::parse(contoso().id()).unwrap();
    for (who, code) in [
        ("locked@contoso.com", "ErrorAccessDenied"),
        ("onprem@contoso.com", "MailboxNotEnabledForRESTAPI"),
    ] {
        let mailbox = graph
            .resolve_mailbox(&tenant, &address(who))
            .await
            .unwrap()
            .unwrap();
        let err = graph
            .find_copies(&tenant, &mailbox, None, &imid("<m@o.example>"))
            .await
            .unwrap_err();
        assert_eq!(err.code(), Some(code), "{who}: {err}");
    }
}

#[tokio::test]
async fn throttling_is_waited_out_and_never_retried_early() {
    let sim = sim_with(vec![
        Mail::new("<t@o.example>", "eve@outside.example").to(["bob@contoso.com"]),
    ])
    .await;
    sim.set_limits(Limits {
        retry_after_secs: 1,
        ..Limits::default()
    });
    let graph = client(
        &sim,
        RetryPolicy {
            max_attempts: 10,
            ..fast_retry()
        },
    );
    let tenant = MicrosoftTenantId::parse(contoso().id()).unwrap();
    let bob = graph
        .resolve_mailbox(&tenant, &address("bob@contoso.com"))
        .await
        .unwrap()
        .unwrap();
    sim.start_throttle_storm(Duration::from_millis(1500));
    let copies = graph
        .find_copies(&tenant, &bob, None, &imid("<t@o.example>"))
        .await
        .expect("succeeds after the storm");
    assert_eq!(copies.len(), 1);
    let calls: Vec<_> = sim
        .graph_requests()
        .into_iter()
        .filter(|r| r.service == Service::Graph && r.path.contains("/messages"))
        .collect();
    assert!(
        calls.iter().filter(|r| r.status == Some(429)).count() >= 1,
        "the storm was met"
    );
    for pair in calls.windows(2) {
        if pair[0].status == Some(429) {
            let gap = pair[1].started.duration_since(pair[0].finished);
            assert!(
                gap >= Duration::from_secs(1),
                "retried after {gap:?}, before Retry-After"
            );
        }
    }
}

#[tokio::test]
async fn server_errors_are_retried_within_a_budget_then_the_last_error_stands() {
    let sim = sim_with(vec![]).await;
    let graph = client(&sim, fast_retry());
    let tenant = MicrosoftTenantId::parse(contoso().id()).unwrap();
    graph.list_domains(&tenant).await.unwrap();
    sim.set_faults(graph_sim::FaultSettings {
        error_502: 1.0,
        ..Default::default()
    });
    let err = graph.list_domains(&tenant).await.unwrap_err();
    assert!(matches!(err, GraphError::Api { status: 502, .. }), "{err}");
    let domain_calls = sim
        .graph_requests()
        .iter()
        .filter(|r| r.path.ends_with("/domains"))
        .count();
    assert_eq!(domain_calls, 1 + 4, "one success, then four attempts");
}

#[tokio::test]
async fn several_copies_go_in_one_batch_and_throttled_items_are_retried_after_retry_after() {
    let sim = sim_with(vec![
        Mail::new("<b@o.example>", "eve@outside.example")
            .to(["bob@contoso.com"])
            .copies(3),
    ])
    .await;
    sim.set_limits(Limits {
        retry_after_secs: 1,
        ..Limits::default()
    });
    let graph = client(
        &sim,
        RetryPolicy {
            max_attempts: 10,
            ..fast_retry()
        },
    );
    let tenant = MicrosoftTenantId::parse(contoso().id()).unwrap();
    let bob = graph
        .resolve_mailbox(&tenant, &address("bob@contoso.com"))
        .await
        .unwrap()
        .unwrap();
    let copies = graph
        .find_copies(&tenant, &bob, None, &imid("<b@o.example>"))
        .await
        .unwrap();
    assert_eq!(copies.len(), 3);
    sim.start_throttle_storm(Duration::from_millis(1200));
    let answers = graph
        .delete_copies(&tenant, &bob, &copies, DeleteMode::Hard)
        .await;
    assert!(
        answers
            .iter()
            .all(|a| matches!(a, Ok(Deleted::Deleted { .. }))),
        "{answers:?}"
    );
    assert_eq!(
        sim.messages_in("bob@contoso.com", Folder::RecoverableItemsPurges)
            .len(),
        3
    );
    let requests = sim.graph_requests();
    let batches: Vec<_> = requests
        .iter()
        .filter(|r| r.path.ends_with("/$batch"))
        .collect();
    assert!(
        batches.len() >= 2,
        "a throttled batch is sent again: {}",
        batches.len()
    );
    for pair in batches.windows(2) {
        let gap = pair[1].started.duration_since(pair[0].finished);
        assert!(
            gap >= Duration::from_secs(1),
            "the retry waited for Retry-After: {gap:?}"
        );
    }
}

/// A listener on 127.0.0.1 that counts the connections made to it (a stranger's host).
async fn stranger() -> (String, Arc<std::sync::atomic::AtomicUsize>) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    let visits = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let counted = visits.clone();
    tokio::spawn(async move {
        while let Ok((socket, _)) = listener.accept().await {
            counted.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
            drop(socket);
        }
    });
    (base, visits)
}

#[tokio::test]
async fn a_next_link_to_another_host_is_not_followed_and_gets_no_token() {
    let sim = sim_with(vec![
        Mail::new("<many@contoso.com>", "eve@outside.example")
            .to(["bob@contoso.com"])
            .copies(3),
    ])
    .await;
    let (elsewhere, visits) = stranger().await;
    sim.update_settings(|s| s.next_link_base = Some(elsewhere));
    let graph = client(&sim, fast_retry());
    let tenant = MicrosoftTenantId::parse(contoso().id()).unwrap();
    let bob = graph
        .resolve_mailbox(&tenant, &address("bob@contoso.com"))
        .await
        .unwrap()
        .unwrap();
    let err = graph
        .find_copies(&tenant, &bob, None, &imid("<many@contoso.com>"))
        .await
        .expect_err("the second page lies elsewhere");
    assert!(err.to_string().contains("nextLink"), "{err}");
    assert_eq!(
        visits.load(std::sync::atomic::Ordering::SeqCst),
        0,
        "nothing (no token) was sent to the other host"
    );
}

#[tokio::test]
async fn a_next_link_that_never_advances_ends_the_paging() {
    let sim = sim_with(vec![
        Mail::new("<loop@contoso.com>", "eve@outside.example")
            .to(["bob@contoso.com"])
            .copies(3),
    ])
    .await;
    sim.update_settings(|s| s.next_link_loops = true);
    let graph = client(&sim, fast_retry());
    let tenant = MicrosoftTenantId::parse(contoso().id()).unwrap();
    let bob = graph
        .resolve_mailbox(&tenant, &address("bob@contoso.com"))
        .await
        .unwrap()
        .unwrap();
    let err = tokio::time::timeout(
        Duration::from_secs(20),
        graph.find_copies(&tenant, &bob, None, &imid("<loop@contoso.com>")),
    )
    .await
    .expect("paging ends")
    .expect_err("an endless collection is an error");
    assert!(err.to_string().contains("nextLink"), "{err}");
    assert!(sim.graph_requests().len() < 20, "stopped at once");
}
