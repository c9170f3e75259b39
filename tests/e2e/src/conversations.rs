//! Following the conversation: a retract with conversations removes the replies and forwards
//! of the message inside the managed domains up to the depth asked, visits each mailbox once,
//! reports recipients it does not follow, and leaves deeper hops, ancestors and unrelated
//! threads alone — checked in graph-sim's mailboxes.

use std::collections::BTreeSet;

use futures::StreamExt as _;
use graph_sim::{
    Folder, GraphSim, SignIn,
    seed::{App, Domain, Mail, Tenant, User},
};
use retract_client::pb;

use crate::{
    db::Backend,
    on_both_backends,
    retract::{options, until_finished},
    scenarios::{CLIENT_ID, CLIENT_SECRET, PHISH, World, granted_app},
};

on_both_backends!(
    a_depth_two_retract_follows_replies_and_forwards_and_reports_the_outside,
    a_depth_one_retract_leaves_exactly_the_hop_two_copies,
    a_phish_sent_as_a_reply_into_an_older_thread_leaves_that_thread,
    the_internal_senders_copy_is_retracted_only_when_asked,
    a_dry_run_over_a_conversation_reports_everything_and_deletes_nothing,
    a_restart_mid_traversal_resumes_and_deletes_each_copy_once,
    a_cancel_mid_traversal_stops_the_rest,
    a_mailbox_that_denies_access_mid_traversal_fails_alone,
    a_reply_without_a_conversation_index_is_found_by_its_headers,
    a_conversation_is_followed_after_the_original_is_gone,
    a_purge_after_a_soft_retract_still_follows_the_conversation,
    a_mailbox_reached_by_a_lower_hop_before_its_visit_ends_moves_to_that_depth,
    a_crash_between_a_delete_and_its_record_mid_traversal_loses_nothing,
    a_hard_retract_purges_the_replies_and_forwards_already_deleted,
);

/// The chain of [`chain`] with `adjust`ed settings.
async fn chain_with(
    backend: Backend,
    adjust: impl FnOnce(&mut retract_server::Settings),
    locked: bool,
) -> World {
    build_chain(backend, adjust, locked).await
}

pub(crate) async fn chain(backend: Backend) -> World {
    build_chain(backend, |_| {}, false).await
}

/// The phish reached Alice and Bob. Alice replied to the outside sender; Bob forwarded it to
/// Carol (hop 1); Carol forwarded that to Dave and to a partner outside (hop 2) and replied to
/// Bob (hop 2: a loop back to a mailbox already visited); Dave forwarded it to Erin (hop 3).
async fn build_chain(
    backend: Backend,
    adjust: impl FnOnce(&mut retract_server::Settings),
    carol_locked: bool,
) -> World {
    let sim = chain_sim(carol_locked).await;
    let recipients = vec!["alice@contoso.com".into(), "bob@contoso.com".into()];
    let app = granted_app(backend, &sim, recipients, adjust).await;
    World { sim, app }
}

/// graph-sim with the mailboxes of [`build_chain`]'s story (nothing granted, nothing recorded).
pub(crate) async fn chain_sim(carol_locked: bool) -> GraphSim {
    let at = chrono::Utc::now() - chrono::Duration::hours(2);
    let phish = Mail::new(PHISH, "ceo@evil.example")
        .subject("Urgent wire transfer")
        .to(["alice@contoso.com", "bob@contoso.com"])
        .sent_at(at);
    let alice_reply = phish
        .reply("<r1@contoso.com>", "alice@contoso.com")
        .sent_at(at + chrono::Duration::minutes(5));
    let bob_forward = phish
        .forward("<f1@contoso.com>", "bob@contoso.com")
        .to(["carol@contoso.com"])
        .sent_at(at + chrono::Duration::minutes(10));
    let carol_forward = bob_forward
        .forward("<f2@contoso.com>", "carol@contoso.com")
        .to(["dave@contoso.com", "partner@elsewhere.example"])
        .sent_at(at + chrono::Duration::minutes(20));
    let carol_reply = bob_forward
        .reply("<r2@contoso.com>", "carol@contoso.com")
        .sent_at(at + chrono::Duration::minutes(25));
    let dave_forward = carol_forward
        .forward("<f3@contoso.com>", "dave@contoso.com")
        .to(["erin@contoso.com"])
        .sent_at(at + chrono::Duration::minutes(30));
    let mut tenant = Tenant::new("Contoso")
        .domain(Domain::verified("contoso.com").default_domain())
        .user(User::new("admin@contoso.com").admin());
    for user in ["alice", "bob", "dave", "erin"] {
        tenant = tenant.user(User::new(format!("{user}@contoso.com")));
    }
    let carol = User::new("carol@contoso.com");
    tenant = tenant.user(if carol_locked {
        carol.excluded_by_access_policy()
    } else {
        carol
    });
    GraphSim::builder()
        .app(App::new(CLIENT_ID, CLIENT_SECRET))
        .tenant(tenant)
        .sign_in(SignIn::approve_as("admin@contoso.com"))
        .mail(phish)
        .mail(alice_reply)
        .mail(bob_forward)
        .mail(carol_forward)
        .mail(carol_reply)
        .mail(dave_forward)
        .start()
        .await
        .expect("graph-sim starts")
}

/// The internet message ids a user can still see (inbox, sent items, deleted items).
fn visible(sim: &GraphSim, mailbox: &str) -> BTreeSet<String> {
    [Folder::Inbox, Folder::SentItems, Folder::DeletedItems]
        .into_iter()
        .flat_map(|f| sim.messages_in(mailbox, f))
        .map(|m| m.internet_message_id)
        .collect()
}

pub(crate) fn ids(list: &[&str]) -> BTreeSet<String> {
    list.iter().map(|s| (*s).to_owned()).collect()
}

pub(crate) fn with_conversations(depth: i32) -> pb::RetractOptions {
    pb::RetractOptions {
        include_conversations: true,
        conversation_depth: depth,
        ..options(&[])
    }
}

fn steps(events: &[pb::RetractEvent]) -> Vec<pb::ConversationUpdate> {
    events
        .iter()
        .filter_map(|e| match &e.kind {
            Some(pb::retract_event::Kind::ConversationUpdate(c)) => Some(c.clone()),
            _ => None,
        })
        .collect()
}

pub(crate) fn done_by_mailbox(
    events: &[pb::RetractEvent],
) -> Vec<(String, i32, pb::RecipientOutcome)> {
    let mut rows: Vec<_> = events
        .iter()
        .filter_map(|e| match &e.kind {
            Some(pb::retract_event::Kind::RecipientUpdate(u))
                if u.phase() == pb::RecipientPhase::Done =>
            {
                Some((u.mailbox.clone(), u.depth, u.outcome()))
            }
            _ => None,
        })
        .collect();
    rows.sort();
    rows
}

async fn a_depth_two_retract_follows_replies_and_forwards_and_reports_the_outside(
    backend: Backend,
) {
    let w = chain(backend).await;
    let events = until_finished(w.retract(with_conversations(2)).await, |r| r.event).await;
    assert_eq!(
        done_by_mailbox(&events),
        [
            ("alice@contoso.com".into(), 0, pb::RecipientOutcome::Deleted),
            ("bob@contoso.com".into(), 0, pb::RecipientOutcome::Deleted),
            ("carol@contoso.com".into(), 1, pb::RecipientOutcome::Deleted),
            ("dave@contoso.com".into(), 2, pb::RecipientOutcome::Deleted),
        ],
        "every mailbox once, at the depth that reached it; Erin (hop 3) is not visited"
    );
    // Every copy of hop ≤ 2 is gone; the hop-3 forward stays with Dave and Erin.
    assert_eq!(visible(&w.sim, "alice@contoso.com"), ids(&[]));
    assert_eq!(visible(&w.sim, "bob@contoso.com"), ids(&[]));
    assert_eq!(visible(&w.sim, "carol@contoso.com"), ids(&[]));
    assert_eq!(
        visible(&w.sim, "dave@contoso.com"),
        ids(&["<f3@contoso.com>"])
    );
    assert_eq!(
        visible(&w.sim, "erin@contoso.com"),
        ids(&["<f3@contoso.com>"])
    );

    let steps = steps(&events);
    let step = |mailbox: &str| {
        steps
            .iter()
            .find(|s| s.mailbox == mailbox)
            .unwrap_or_else(|| panic!("{mailbox} had a conversation step: {steps:?}"))
    };
    let alice = step("alice@contoso.com");
    assert_eq!(alice.unfollowed.len(), 1);
    assert_eq!(
        (
            alice.unfollowed[0].address.as_str(),
            alice.unfollowed[0].code.as_str()
        ),
        ("ceo@evil.example", "DOMAIN_NOT_MANAGED"),
        "the reply to the outside sender is reported, not followed"
    );
    let carol = step("carol@contoso.com");
    assert_eq!(carol.depth, 1);
    assert!(
        carol
            .unfollowed
            .iter()
            .any(|u| u.address == "partner@elsewhere.example" && u.hop == 2),
        "{carol:?}"
    );
    assert_eq!(
        carol
            .discovered
            .iter()
            .map(|d| (d.mailbox.as_str(), d.hop))
            .collect::<Vec<_>>(),
        [("dave@contoso.com", 2)],
        "Bob is reached again by Carol's reply but visited once"
    );
    assert_eq!(
        step("dave@contoso.com").messages_left_count,
        1,
        "the hop-3 forward"
    );
    assert_ne!(
        step("bob@contoso.com").conversation_id,
        carol.conversation_id,
        "each mailbox is listed by its own conversation id"
    );
    let Some(pb::retract_event::Kind::JobFinished(end)) = &events.last().unwrap().kind else {
        panic!("JobFinished last")
    };
    assert_eq!(end.state(), pb::JobState::Succeeded);
    let depths: Vec<(i32, i32)> = end
        .depths
        .iter()
        .map(|d| (d.depth, d.mailbox_count))
        .collect();
    assert_eq!(depths, [(0, 2), (1, 1), (2, 1)]);
    assert_eq!(
        end.counts.unwrap().target_count,
        4,
        "targets grow as they are discovered"
    );
    w.app.stop().await;
}

async fn a_depth_one_retract_leaves_exactly_the_hop_two_copies(backend: Backend) {
    let w = chain(backend).await;
    let events = until_finished(w.retract(with_conversations(1)).await, |r| r.event).await;
    assert_eq!(
        done_by_mailbox(&events)
            .into_iter()
            .map(|(m, d, _)| (m, d))
            .collect::<Vec<_>>(),
        [
            ("alice@contoso.com".into(), 0),
            ("bob@contoso.com".into(), 0),
            ("carol@contoso.com".into(), 1),
        ]
    );
    // Hop 2 stays — also Carol's reply sitting in Bob's inbox, a hop-0 mailbox.
    assert_eq!(visible(&w.sim, "alice@contoso.com"), ids(&[]));
    assert_eq!(
        visible(&w.sim, "bob@contoso.com"),
        ids(&["<r2@contoso.com>"])
    );
    assert_eq!(
        visible(&w.sim, "carol@contoso.com"),
        ids(&["<f2@contoso.com>", "<r2@contoso.com>"])
    );
    assert_eq!(
        visible(&w.sim, "dave@contoso.com"),
        ids(&["<f2@contoso.com>", "<f3@contoso.com>"])
    );
    w.app.stop().await;
}

async fn a_phish_sent_as_a_reply_into_an_older_thread_leaves_that_thread(backend: Backend) {
    let at = chrono::Utc::now() - chrono::Duration::hours(3);
    // A legitimate thread between Alice and Bob; the phish is a reply into it (its index
    // extends the thread's; it went to Bob and Alice, only Alice is retracted), and Alice
    // answers the phish to Bob.
    let thread = Mail::new("<budget@contoso.com>", "bob@contoso.com")
        .to(["alice@contoso.com"])
        .sent_at(at);
    let phish = thread
        .reply(PHISH, "ceo@evil.example")
        .to(["alice@contoso.com"])
        .sent_at(at + chrono::Duration::minutes(10));
    let answer = phish
        .reply("<answer@contoso.com>", "alice@contoso.com")
        .to(["bob@contoso.com"])
        .sent_at(at + chrono::Duration::minutes(20));
    let tenant = Tenant::new("Contoso")
        .domain(Domain::verified("contoso.com").default_domain())
        .user(User::new("admin@contoso.com").admin())
        .user(User::new("alice@contoso.com"))
        .user(User::new("bob@contoso.com"));
    let sim = GraphSim::builder()
        .app(App::new(CLIENT_ID, CLIENT_SECRET))
        .tenant(tenant)
        .sign_in(SignIn::approve_as("admin@contoso.com"))
        .mail(thread)
        .mail(phish)
        .mail(answer)
        .start()
        .await
        .expect("graph-sim starts");
    let app = granted_app(backend, &sim, vec!["alice@contoso.com".into()], |_| {}).await;
    let w = World { sim, app };
    until_finished(w.retract(with_conversations(2)).await, |r| r.event).await;
    assert_eq!(
        visible(&w.sim, "alice@contoso.com"),
        ids(&["<budget@contoso.com>"]),
        "the older message of the thread (an ancestor) stays"
    );
    assert_eq!(
        visible(&w.sim, "bob@contoso.com"),
        ids(&["<budget@contoso.com>", PHISH]),
        "Bob, reached by Alice's answer, loses it and keeps his own thread — and his copy of \
         the phish: the reply went to him too, but he was not selected, and traversal never \
         widens hop 0"
    );
    w.app.stop().await;
}

async fn the_internal_senders_copy_is_retracted_only_when_asked(backend: Backend) {
    let internal = "<internal-leak@contoso.com>";
    let tenant = Tenant::new("Contoso")
        .domain(Domain::verified("contoso.com").default_domain())
        .user(User::new("admin@contoso.com").admin())
        .user(User::new("mallory@contoso.com"))
        .user(User::new("alice@contoso.com"));
    let sim = GraphSim::builder()
        .app(App::new(CLIENT_ID, CLIENT_SECRET))
        .tenant(tenant)
        .sign_in(SignIn::approve_as("admin@contoso.com"))
        .mail(
            Mail::new(PHISH, "ceo@evil.example")
                .to(["alice@contoso.com"])
                .sent_at(chrono::Utc::now()),
        )
        .mail(
            Mail::new(internal, "mallory@contoso.com")
                .to(["alice@contoso.com"])
                .sent_at(chrono::Utc::now()),
        )
        .start()
        .await
        .expect("graph-sim starts");
    let app = granted_app(backend, &sim, vec!["alice@contoso.com".into()], |_| {}).await;
    let w = World { sim, app };
    // An external sender has no mailbox of ours: asking for its copy changes nothing.
    let events = until_finished(
        w.retract(pb::RetractOptions {
            include_sender_copy: true,
            ..options(&[])
        })
        .await,
        |r| r.event,
    )
    .await;
    assert_eq!(done_by_mailbox(&events).len(), 1);
    // The internal, compromised sender's Sent Items copy goes when asked.
    w.app
        .service()
        .retract_service()
        .record_delivery(pb::RecordDeliveryRequest {
            tenant_id: "acme".into(),
            delivery: Some(pb::Delivery {
                internet_message_id: internal.into(),
                sender: "mallory@contoso.com".into(),
                subject: "salaries.xlsx".into(),
                delivery_time: Some(prost_types::Timestamp {
                    seconds: chrono::Utc::now().timestamp() - 60,
                    nanos: 0,
                }),
                recipients: vec!["alice@contoso.com".into()],
                ..Default::default()
            }),
        })
        .await
        .unwrap();
    // Not asked: the recipients' copies go, the sender's stays.
    let events = until_finished(
        w.retract(pb::RetractOptions {
            internet_message_id: internal.into(),
            delete_mode: pb::DeleteMode::MoveToDeletedItems.into(),
            ..options(&[])
        })
        .await,
        |r| r.event,
    )
    .await;
    assert_eq!(
        done_by_mailbox(&events),
        [("alice@contoso.com".into(), 0, pb::RecipientOutcome::Deleted)]
    );
    assert!(visible(&w.sim, "mallory@contoso.com").contains(internal));
    assert!(
        w.sim
            .messages_in("mallory@contoso.com", Folder::SentItems)
            .iter()
            .any(|m| m.internet_message_id == internal),
        "still in Mallory's Sent Items"
    );
    // Asked: the sender's copy goes too.
    let events = until_finished(
        w.retract(pb::RetractOptions {
            internet_message_id: internal.into(),
            include_sender_copy: true,
            ..options(&[])
        })
        .await,
        |r| r.event,
    )
    .await;
    assert_eq!(
        done_by_mailbox(&events),
        [
            ("alice@contoso.com".into(), 0, pb::RecipientOutcome::Deleted),
            (
                "mallory@contoso.com".into(),
                0,
                pb::RecipientOutcome::Deleted
            ),
        ]
    );
    assert!(!visible(&w.sim, "mallory@contoso.com").contains(internal));
    w.app.stop().await;
}

async fn a_dry_run_over_a_conversation_reports_everything_and_deletes_nothing(backend: Backend) {
    let w = chain(backend).await;
    let before: Vec<BTreeSet<String>> = ["alice", "bob", "carol", "dave", "erin"]
        .iter()
        .map(|u| visible(&w.sim, &format!("{u}@contoso.com")))
        .collect();
    let events = until_finished(
        w.retract(pb::RetractOptions {
            dry_run: true,
            ..with_conversations(2)
        })
        .await,
        |r| r.event,
    )
    .await;
    assert_eq!(
        done_by_mailbox(&events),
        [
            (
                "alice@contoso.com".into(),
                0,
                pb::RecipientOutcome::WouldDelete
            ),
            (
                "bob@contoso.com".into(),
                0,
                pb::RecipientOutcome::WouldDelete
            ),
            (
                "carol@contoso.com".into(),
                1,
                pb::RecipientOutcome::WouldDelete
            ),
            (
                "dave@contoso.com".into(),
                2,
                pb::RecipientOutcome::WouldDelete
            ),
        ],
        "the traversal still discovers every mailbox it would visit"
    );
    let found: i32 = steps(&events).iter().map(|s| s.messages_found_count).sum();
    let retracted: i32 = steps(&events)
        .iter()
        .map(|s| s.messages_retracted_count)
        .sum();
    assert_eq!(
        (found, retracted),
        (7, 0),
        "R1 in Alice's, F1 and R2 in Bob's, F1, F2 and R2 in Carol's, F2 in Dave's: found, \
         none removed"
    );
    let after: Vec<BTreeSet<String>> = ["alice", "bob", "carol", "dave", "erin"]
        .iter()
        .map(|u| visible(&w.sim, &format!("{u}@contoso.com")))
        .collect();
    assert_eq!(before, after, "nothing was deleted");
    w.app.stop().await;
}

async fn a_restart_mid_traversal_resumes_and_deletes_each_copy_once(backend: Backend) {
    let w = chain_with(
        backend,
        |s| {
            s.mailbox_concurrency = 1;
            s.job_lease_ms = 1_000;
            s.shutdown_grace_ms = 2_000;
        },
        false,
    )
    .await;
    w.sim.set_latency(graph_sim::LatencySettings {
        default: graph_sim::Latency::fixed(60),
        ..Default::default()
    });
    let job = w.start(with_conversations(2)).await;
    // Stop the server once the first conversation step has discovered Carol.
    let mut progress = w.watch(job.job_id.clone(), 0).await;
    loop {
        let e = progress.next().await.unwrap().unwrap().event.unwrap();
        if let Some(pb::retract_event::Kind::ConversationUpdate(c)) = e.kind
            && !c.discovered.is_empty()
        {
            break;
        }
    }
    drop(progress);
    let World { sim, app } = w;
    let app = app.restart().await;
    let w = World { sim, app };
    let events = until_finished(w.watch(job.job_id.clone(), 0).await, |r| r.event).await;
    let rows = done_by_mailbox(&events);
    assert_eq!(
        rows.iter()
            .map(|(m, d, _)| (m.as_str(), *d))
            .collect::<Vec<_>>(),
        [
            ("alice@contoso.com", 0),
            ("bob@contoso.com", 0),
            ("carol@contoso.com", 1),
            ("dave@contoso.com", 2),
        ],
        "every mailbox finished once, the discovered ones too: {rows:?}"
    );
    for mailbox in ["alice", "bob", "carol"] {
        assert_eq!(visible(&w.sim, &format!("{mailbox}@contoso.com")), ids(&[]));
    }
    assert_eq!(
        visible(&w.sim, "dave@contoso.com"),
        ids(&["<f3@contoso.com>"])
    );
    let deletes: Vec<String> = w
        .sim
        .graph_requests()
        .iter()
        .filter(|r| r.method == "DELETE" && r.status.is_some_and(|s| (200..300).contains(&s)))
        .map(|r| r.path.clone())
        .collect();
    let unique: BTreeSet<&String> = deletes.iter().collect();
    assert_eq!(
        unique.len(),
        deletes.len(),
        "no copy deleted twice: {deletes:?}"
    );
    // A soft delete repeated on a copy already in Recoverable Items would purge it: nothing
    // may have reached Purges.
    for mailbox in ["alice", "bob", "carol", "dave"] {
        let purged = w.sim.messages_in(
            &format!("{mailbox}@contoso.com"),
            Folder::RecoverableItemsPurges,
        );
        assert!(
            purged.is_empty(),
            "{mailbox}: deleted twice, so purged: {purged:?}"
        );
    }
    w.app.stop().await;
}

async fn a_cancel_mid_traversal_stops_the_rest(backend: Backend) {
    let w = chain_with(backend, |s| s.mailbox_concurrency = 1, false).await;
    w.sim.set_latency(graph_sim::LatencySettings {
        default: graph_sim::Latency::fixed(80),
        ..Default::default()
    });
    let job = w.start(with_conversations(2)).await;
    let mut progress = w.watch(job.job_id.clone(), 0).await;
    loop {
        let e = progress.next().await.unwrap().unwrap().event.unwrap();
        if let Some(pb::retract_event::Kind::ConversationUpdate(c)) = e.kind
            && !c.discovered.is_empty()
        {
            break;
        }
    }
    w.admin()
        .retract_service()
        .cancel_retract_job(pb::CancelRetractJobRequest {
            tenant_id: "acme".into(),
            job_id: job.job_id.clone(),
            reason: "stop".into(),
        })
        .await
        .unwrap();
    let events = until_finished(progress, |r| r.event).await;
    let Some(pb::retract_event::Kind::JobFinished(end)) = &events.last().unwrap().kind else {
        panic!("JobFinished last")
    };
    assert_eq!(end.state(), pb::JobState::Cancelled);
    let counts = end.counts.unwrap();
    assert!(
        counts.cancelled_count >= 1,
        "discovered mailboxes not visited yet are cancelled: {counts:?}"
    );
    assert_eq!(
        counts.done_count, counts.target_count,
        "every target has its final update"
    );
    assert!(
        visible(&w.sim, "dave@contoso.com").contains("<f2@contoso.com>"),
        "the hop-2 mailbox was never reached"
    );
    w.app.stop().await;
}

async fn a_mailbox_that_denies_access_mid_traversal_fails_alone(backend: Backend) {
    let w = chain_with(backend, |_| {}, true).await;
    let events = until_finished(w.retract(with_conversations(2)).await, |r| r.event).await;
    let rows = done_by_mailbox(&events);
    assert_eq!(
        rows,
        [
            ("alice@contoso.com".into(), 0, pb::RecipientOutcome::Deleted),
            ("bob@contoso.com".into(), 0, pb::RecipientOutcome::Deleted),
            ("carol@contoso.com".into(), 1, pb::RecipientOutcome::Failed),
        ],
        "Carol's branch fails (and Dave, reached only through her, is not visited); the rest goes on"
    );
    let carol = events
        .iter()
        .find_map(|e| match &e.kind {
            Some(pb::retract_event::Kind::RecipientUpdate(u))
                if u.mailbox == "carol@contoso.com" && u.phase() == pb::RecipientPhase::Done =>
            {
                Some(u.clone())
            }
            _ => None,
        })
        .unwrap();
    assert_eq!(carol.graph_error_code, "ErrorAccessDenied");
    let Some(pb::retract_event::Kind::JobFinished(end)) = &events.last().unwrap().kind else {
        panic!("JobFinished last")
    };
    assert_eq!(end.state(), pb::JobState::CompletedWithErrors);
    assert_eq!(visible(&w.sim, "bob@contoso.com"), ids(&[]));
    w.app.stop().await;
}

async fn a_reply_without_a_conversation_index_is_found_by_its_headers(backend: Backend) {
    let at = chrono::Utc::now() - chrono::Duration::hours(1);
    let phish = Mail::new(PHISH, "ceo@evil.example")
        .to(["alice@contoso.com", "bob@contoso.com"])
        .sent_at(at);
    // A client that writes no conversationIndex: only In-Reply-To / References relate it.
    let reply = phish
        .reply("<no-index@contoso.com>", "bob@contoso.com")
        .to(["alice@contoso.com"])
        .without_conversation_index()
        .sent_at(at + chrono::Duration::minutes(5));
    let tenant = Tenant::new("Contoso")
        .domain(Domain::verified("contoso.com").default_domain())
        .user(User::new("admin@contoso.com").admin())
        .user(User::new("alice@contoso.com"))
        .user(User::new("bob@contoso.com"));
    let sim = GraphSim::builder()
        .app(App::new(CLIENT_ID, CLIENT_SECRET))
        .tenant(tenant)
        .sign_in(SignIn::approve_as("admin@contoso.com"))
        .mail(phish)
        .mail(reply)
        .start()
        .await
        .expect("graph-sim starts");
    let recipients = vec!["alice@contoso.com".into(), "bob@contoso.com".into()];
    let app = granted_app(backend, &sim, recipients, |_| {}).await;
    let w = World { sim, app };
    let events = until_finished(
        w.retract(pb::RetractOptions {
            include_conversations: true,
            conversation_depth: 1,
            ..options(&["alice@contoso.com"])
        })
        .await,
        |r| r.event,
    )
    .await;
    assert_eq!(
        visible(&w.sim, "alice@contoso.com"),
        ids(&[]),
        "the reply in Alice's inbox, related only by its headers, is gone too"
    );
    assert_eq!(
        visible(&w.sim, "bob@contoso.com"),
        ids(&[PHISH, "<no-index@contoso.com>"]),
        "Bob was not selected, and no visited mailbox sent him anything"
    );
    let alice = steps(&events)
        .into_iter()
        .find(|s| s.mailbox == "alice@contoso.com")
        .unwrap();
    assert_eq!(alice.messages_found_count, 1);
    w.app.stop().await;
}

async fn a_conversation_is_followed_after_the_original_is_gone(backend: Backend) {
    let w = chain(backend).await;
    // A first retract without conversations removes the original from Alice and Bob.
    until_finished(w.retract(options(&[])).await, |r| r.event).await;
    assert!(!visible(&w.sim, "bob@contoso.com").contains(PHISH));
    // The conversation is still followed from their Recoverable Items copies.
    let events = until_finished(w.retract(with_conversations(2)).await, |r| r.event).await;
    assert_followed_from_recoverable_items(&w, &events);
    assert_eq!(
        visible(&w.sim, "dave@contoso.com"),
        ids(&["<f3@contoso.com>"])
    );
    w.app.stop().await;
}

async fn a_purge_after_a_soft_retract_still_follows_the_conversation(backend: Backend) {
    let w = chain(backend).await;
    // A first, soft retract leaves the original restorable in Alice's and Bob's Recoverable
    // Items; the confidential-mail answer is a HARD retract with conversations.
    until_finished(w.retract(options(&[])).await, |r| r.event).await;
    let recoverable = |mailbox: &str| {
        w.sim
            .messages_in(mailbox, Folder::RecoverableItemsDeletions)
            .into_iter()
            .filter(|m| m.internet_message_id == PHISH)
            .count()
    };
    assert_eq!(recoverable("alice@contoso.com"), 1);
    let events = until_finished(
        w.retract(pb::RetractOptions {
            delete_mode: pb::DeleteMode::Hard.into(),
            ..with_conversations(2)
        })
        .await,
        |r| r.event,
    )
    .await;
    // The originals are purged, and the conversation is followed from them all the same:
    // reading the starting copies comes before purging them.
    for mailbox in ["alice@contoso.com", "bob@contoso.com"] {
        assert_eq!(
            recoverable(mailbox),
            0,
            "{mailbox}: nothing left to restore"
        );
    }
    assert_followed_from_recoverable_items(&w, &events);
    w.app.stop().await;
}

/// After the originals are gone from Alice's and Bob's view, a depth-2 retract still reaches
/// carol (hop 1) and dave (hop 2), and leaves nothing visible up to hop 1.
fn assert_followed_from_recoverable_items(w: &World, events: &[pb::RetractEvent]) {
    assert_eq!(
        done_by_mailbox(events)
            .into_iter()
            .map(|(m, d, _)| (m, d))
            .collect::<Vec<_>>(),
        [
            ("alice@contoso.com".into(), 0),
            ("bob@contoso.com".into(), 0),
            ("carol@contoso.com".into(), 1),
            ("dave@contoso.com".into(), 2),
        ]
    );
    for mailbox in ["alice", "bob", "carol"] {
        assert_eq!(visible(&w.sim, &format!("{mailbox}@contoso.com")), ids(&[]));
    }
}

/// Straight at the store, whose answer the engine schedules: Carl is first reached by a
/// hop-2 forward (through Bea) and, before his visit ends, by a hop-1 forward from Zed — his
/// depth is the lowest hop. Once a visit has ended, a later discovery changes nothing.
async fn a_mailbox_reached_by_a_lower_hop_before_its_visit_ends_moves_to_that_depth(
    backend: Backend,
) {
    use retract_server::domain::{
        ConversationIndex, Discovered, EmailAddress, EventKind, InternetMessageId, Phase, Target,
        TargetOutcome, TargetResult, TenantId,
    };

    let app = crate::app::TestApp::spawn(backend).await;
    app.create_tenant("acme").await;
    let store = app.store().await;
    let tenant = TenantId::parse("acme").unwrap();
    let address = |a: &str| EmailAddress::parse(a).unwrap();
    let target = |a: &str, depth| Target {
        mailbox: address(a),
        depth,
    };
    let (new, audit) =
        crate::scenarios::stored_job(&tenant, &["alice@contoso.com", "zed@contoso.com"], true);
    let job_id = new.id.clone();
    store.create_job(&tenant, new, audit).await.unwrap();
    let owner = "worker-test";
    assert_eq!(
        store
            .claim_job(owner, std::time::Duration::from_secs(60), &[], &[])
            .await
            .unwrap()
            .map(|(job, _)| job),
        Some(job_id.clone())
    );
    // A 22-byte header, as the retracted message's index.
    let root = ConversationIndex::decode(&format!("{}==", "A".repeat(30))).unwrap();
    let reached = |from: &str, to: &str, hop, message: &str| Discovered {
        target: target(to, hop),
        discovered_from: address(from),
        reached_by: InternetMessageId::parse(message).unwrap(),
        root: root.clone(),
    };
    let (added, _) = store
        .add_discovered_targets(
            &job_id,
            owner,
            vec![
                reached(
                    "alice@contoso.com",
                    "bea@contoso.com",
                    1,
                    "<f1@contoso.com>",
                ),
                reached("bea@contoso.com", "carl@contoso.com", 2, "<f2@contoso.com>"),
                reached("bea@contoso.com", "dora@contoso.com", 2, "<f2@contoso.com>"),
            ],
        )
        .await
        .unwrap();
    assert_eq!(added.len(), 3);
    // Dora's visit at depth 2 ends before anyone reaches her lower.
    let done = TargetResult {
        outcome: TargetOutcome::Deleted,
        copies_found: 1,
        copies_deleted: 1,
        was_read: false,
        detail: None,
        graph_code: None,
    };
    store
        .append_event(
            &job_id,
            owner,
            EventKind::Recipient {
                target: target("dora@contoso.com", 2),
                phase: Phase::Done,
                result: Some(done),
            },
        )
        .await
        .unwrap()
        .expect("Dora finishes");
    let (added, _) = store
        .add_discovered_targets(
            &job_id,
            owner,
            vec![
                reached("zed@contoso.com", "carl@contoso.com", 1, "<z1@contoso.com>"),
                reached("zed@contoso.com", "dora@contoso.com", 1, "<z1@contoso.com>"),
                reached("zed@contoso.com", "bea@contoso.com", 2, "<z2@contoso.com>"),
            ],
        )
        .await
        .unwrap();
    assert_eq!(
        added.iter().map(|d| d.target.clone()).collect::<Vec<_>>(),
        [target("carl@contoso.com", 1)],
        "Carl moves up and is answered to be visited there; Dora's visit ended, Bea is already lower"
    );
    let targets = store.job_targets(&job_id).await.unwrap();
    let row = |a: &str| {
        targets
            .iter()
            .find(|t| t.target.mailbox == address(a))
            .unwrap_or_else(|| panic!("{a}: {targets:?}"))
    };
    assert_eq!(targets.len(), 5, "nobody twice: {targets:?}");
    assert_eq!(row("carl@contoso.com").target.depth, 1);
    assert_eq!(
        row("carl@contoso.com").discovered_from,
        Some(address("zed@contoso.com"))
    );
    assert_eq!(row("dora@contoso.com").target.depth, 2);
    assert_eq!(row("bea@contoso.com").target.depth, 1);
    let unfinished = store.unfinished_targets(&job_id).await.unwrap();
    let carl = unfinished
        .iter()
        .find(|w| w.target.mailbox == address("carl@contoso.com"))
        .expect("Carl still to visit");
    assert_eq!(
        carl.reached_by.as_ref().map(|m| m.as_str()),
        Some("<z1@contoso.com>"),
        "visited from the message that reached him lowest"
    );
    assert_eq!(
        store.job_for_worker(&job_id).await.unwrap().counts.targets,
        5
    );
    app.stop().await;
}

/// As a crash would: the database goes away while Graph deletes Alice's copy, so the server
/// cannot record the delete, the conversation step or the outcome; the job resumes when the
/// database is back. Nothing is missed, nothing deleted twice, every mailbox finished once.
async fn a_crash_between_a_delete_and_its_record_mid_traversal_loses_nothing(backend: Backend) {
    use retract_server::domain::{EmailAddress, JobId};
    let w = chain_with(
        backend,
        |s| {
            s.mailbox_concurrency = 1;
            s.job_lease_ms = 1_000;
        },
        false,
    )
    .await;
    w.sim.set_latency(graph_sim::LatencySettings {
        default: graph_sim::Latency::fixed(20),
        per_endpoint: [(
            graph_sim::Endpoint::MessageDelete,
            graph_sim::Latency::fixed(800),
        )]
        .into_iter()
        .collect(),
    });
    let job = w.start(with_conversations(2)).await;
    let store = w.app.store().await;
    let (job_id, alice) = (
        JobId::parse(&job.job_id).unwrap(),
        EmailAddress::parse("alice@contoso.com").unwrap(),
    );
    tokio::time::timeout(std::time::Duration::from_secs(10), async {
        while store.recorded_removals(&job_id, &alice, 0).await.unwrap() == 0 {
            tokio::time::sleep(std::time::Duration::from_millis(10)).await;
        }
    })
    .await
    .expect("Alice's copy is recorded before its delete");
    let outage = w.app.database_outage().await;
    tokio::time::sleep(std::time::Duration::from_millis(1_500)).await;
    assert!(
        !visible(&w.sim, "alice@contoso.com").contains(PHISH),
        "Graph deleted Alice's copy during the outage"
    );
    outage.end().await;
    let events = until_finished(w.watch(job.job_id.clone(), 0).await, |r| r.event).await;
    let rows = done_by_mailbox(&events);
    assert_eq!(
        rows.iter()
            .map(|(m, d, _)| (m.as_str(), *d))
            .collect::<Vec<_>>(),
        [
            ("alice@contoso.com", 0),
            ("bob@contoso.com", 0),
            ("carol@contoso.com", 1),
            ("dave@contoso.com", 2),
        ],
        "every mailbox finished once: {rows:?}"
    );
    assert!(
        rows.iter()
            .all(|(_, _, o)| *o == pb::RecipientOutcome::Deleted),
        "{rows:?}"
    );
    for mailbox in ["alice", "bob", "carol"] {
        assert_eq!(visible(&w.sim, &format!("{mailbox}@contoso.com")), ids(&[]));
    }
    assert_eq!(
        visible(&w.sim, "dave@contoso.com"),
        ids(&["<f3@contoso.com>"])
    );
    for mailbox in ["alice", "bob", "carol", "dave"] {
        let purged = w.sim.messages_in(
            &format!("{mailbox}@contoso.com"),
            Folder::RecoverableItemsPurges,
        );
        assert!(
            purged.is_empty(),
            "{mailbox}: deleted twice, so purged: {purged:?}"
        );
    }
    w.app.stop().await;
}

/// A soft retract with conversations left every hop ≤ 2 copy restorable in Recoverable
/// Items; the HARD retract that follows (confidential mail) purges them all — the replies and
/// forwards too, found in Recoverable Items, through which the traversal reaches Carol and
/// Dave — and leaves the hop-3 forward alone.
async fn a_hard_retract_purges_the_replies_and_forwards_already_deleted(backend: Backend) {
    let w = chain(backend).await;
    until_finished(w.retract(with_conversations(2)).await, |r| r.event).await;
    let in_scope = [
        PHISH,
        "<r1@contoso.com>",
        "<f1@contoso.com>",
        "<f2@contoso.com>",
        "<r2@contoso.com>",
    ];
    let recoverable = |mailbox: &str| -> Vec<String> {
        w.sim
            .messages_in(mailbox, Folder::RecoverableItemsDeletions)
            .into_iter()
            .map(|m| m.internet_message_id)
            .filter(|id| in_scope.contains(&id.as_str()))
            .collect()
    };
    assert!(
        !recoverable("carol@contoso.com").is_empty(),
        "the soft retract left them restorable"
    );
    let events = until_finished(
        w.retract(pb::RetractOptions {
            delete_mode: pb::DeleteMode::Hard.into(),
            ..with_conversations(2)
        })
        .await,
        |r| r.event,
    )
    .await;
    assert_eq!(
        done_by_mailbox(&events)
            .into_iter()
            .map(|(m, d, _)| (m, d))
            .collect::<Vec<_>>(),
        [
            ("alice@contoso.com".into(), 0),
            ("bob@contoso.com".into(), 0),
            ("carol@contoso.com".into(), 1),
            ("dave@contoso.com".into(), 2),
        ],
        "followed through the deleted copies"
    );
    for mailbox in ["alice", "bob", "carol", "dave"] {
        let mailbox = format!("{mailbox}@contoso.com");
        assert_eq!(
            recoverable(&mailbox),
            Vec::<String>::new(),
            "{mailbox}: nothing left to restore"
        );
    }
    assert_eq!(
        visible(&w.sim, "dave@contoso.com"),
        ids(&["<f3@contoso.com>"]),
        "the hop-3 forward stays"
    );
    w.app.stop().await;
}
