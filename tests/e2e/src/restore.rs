//! Restoring a retract: a message retracted by mistake (a quarantine release gone wrong, the
//! wrong message id) is put back — every copy the retract removed, of every hop, into the
//! folder it came from — as a job of its own, watchable like any other. Purged copies cannot
//! come back, so a HARD retract is refused, as are a dry run and a job still running; a copy
//! the user already moved back is never duplicated, one gone since is reported.

use std::collections::BTreeMap;

use futures::StreamExt as _;
use graph_sim::{
    Folder, GraphSim, SignIn,
    seed::{App, Domain, Mail, PlacedMessage, Tenant, User},
};
use retract_client::pb;
use retract_server::{
    domain::{EmailAddress, InternetMessageId, MicrosoftTenantId},
    graph::{DeleteMode, Folder as GraphFolder, GraphClient},
};
use tonic::Code;

use crate::{
    conversations::{chain, with_conversations},
    db::Backend,
    graph_mail::{fast_retry, graph_client},
    on_both_backends,
    retract::{options, until_finished},
    scenarios::{CLIENT_ID, CLIENT_SECRET, PHISH, World, granted_app},
    status::expect_failure,
};

on_both_backends!(
    a_moved_message_goes_back_to_each_folder_it_came_from,
    a_soft_retract_of_a_conversation_is_restored_from_recoverable_items,
    what_cannot_be_restored_is_refused_with_the_reason,
    a_restore_interrupted_by_a_restart_puts_each_copy_back_once,
    a_copy_the_user_restored_is_not_brought_back_twice,
    a_removal_is_recorded_in_the_journals_batch_and_only_by_the_lease_holder,
    a_journal_batch_of_hundreds_of_results_finishes_each_target_once,
);

fn contoso() -> Tenant {
    let mut tenant = Tenant::new("Contoso")
        .domain(Domain::verified("contoso.com").default_domain())
        .user(User::new("admin@contoso.com").admin());
    for user in ["alice", "bob", "carol", "dave"] {
        tenant = tenant.user(User::new(format!("{user}@contoso.com")));
    }
    tenant
}

const RECIPIENTS: [&str; 4] = [
    "alice@contoso.com",
    "bob@contoso.com",
    "carol@contoso.com",
    "dave@contoso.com",
];

/// The phish reached Alice, Bob, Carol and Dave; Bob also filed a copy in his Archive.
async fn delivered(backend: Backend, adjust: impl FnOnce(&mut retract_server::Settings)) -> World {
    let sim = GraphSim::builder()
        .app(App::new(CLIENT_ID, CLIENT_SECRET))
        .tenant(contoso())
        .sign_in(SignIn::approve_as("admin@contoso.com"))
        .mail(Mail::new(PHISH, "ceo@evil.example").to(RECIPIENTS))
        .message(
            PlacedMessage::new("bob@contoso.com", Folder::Archive, PHISH).from("ceo@evil.example"),
        )
        .start()
        .await
        .expect("graph-sim starts");
    let recipients = RECIPIENTS.iter().map(|r| (*r).to_owned()).collect();
    let app = granted_app(backend, &sim, recipients, adjust).await;
    World { sim, app }
}

/// Every copy a user can see, by folder: `(folder, message id) → copies`.
fn placed(sim: &GraphSim, mailbox: &str) -> BTreeMap<(Folder, String), usize> {
    let mut placed = BTreeMap::new();
    for folder in [
        Folder::Inbox,
        Folder::SentItems,
        Folder::DeletedItems,
        Folder::Archive,
        Folder::JunkEmail,
    ] {
        for m in sim.messages_in(mailbox, folder) {
            *placed.entry((folder, m.internet_message_id)).or_default() += 1;
        }
    }
    placed
}

fn finished(events: &[pb::RetractEvent]) -> pb::JobFinished {
    match events.last().and_then(|e| e.kind.clone()) {
        Some(pb::retract_event::Kind::JobFinished(f)) => f,
        other => panic!("the last event is JobFinished: {other:?}"),
    }
}

/// Each mailbox's final update: outcome, copies found (removed by the retract) and put back,
/// detail.
fn outcomes(
    events: &[pb::RetractEvent],
) -> BTreeMap<String, (pb::RecipientOutcome, i32, i32, String)> {
    events
        .iter()
        .filter_map(|e| match &e.kind {
            Some(pb::retract_event::Kind::RecipientUpdate(u))
                if u.phase() == pb::RecipientPhase::Done =>
            {
                Some((
                    u.mailbox.clone(),
                    (
                        u.outcome(),
                        u.copies_found_count,
                        u.copies_deleted_count,
                        u.detail.clone(),
                    ),
                ))
            }
            _ => None,
        })
        .collect()
}

/// The users themselves, acting through Graph.
struct Users {
    graph: GraphClient,
    tenant: MicrosoftTenantId,
}

impl Users {
    fn of(sim: &GraphSim) -> Self {
        Self {
            graph: graph_client(sim, CLIENT_ID, CLIENT_SECRET, fast_retry()),
            tenant: MicrosoftTenantId::parse(contoso().id()).unwrap(),
        }
    }

    async fn mailbox(&self, user: &str) -> retract_server::graph::MailboxRef {
        self.graph
            .resolve_mailbox(&self.tenant, &EmailAddress::parse(user).unwrap())
            .await
            .unwrap()
            .unwrap()
    }

    /// The phish's copies in one of `user`'s folders.
    async fn copies_in(
        &self,
        user: &str,
        folder: GraphFolder,
    ) -> (
        retract_server::graph::MailboxRef,
        Vec<retract_server::graph::MessageCopy>,
    ) {
        let mailbox = self.mailbox(user).await;
        let copies = self
            .graph
            .find_copies(
                &self.tenant,
                &mailbox,
                Some(folder),
                &InternetMessageId::parse(PHISH).unwrap(),
            )
            .await
            .unwrap();
        (mailbox, copies)
    }

    /// `user` moves `copies` to the Inbox.
    async fn to_inbox(
        &self,
        mailbox: &retract_server::graph::MailboxRef,
        copies: &[&retract_server::graph::MessageCopy],
    ) {
        let moves: Vec<(String, String)> = copies
            .iter()
            .map(|c| (c.id.clone(), "inbox".to_owned()))
            .collect();
        for answer in self.graph.move_copies(&self.tenant, mailbox, &moves).await {
            answer.unwrap();
        }
    }

    /// `user` drags the phish from Deleted Items back to the Inbox.
    async fn moves_back_to_inbox(&self, user: &str) {
        let (mailbox, copies) = self.copies_in(user, GraphFolder::DeletedItems).await;
        self.to_inbox(&mailbox, &copies.iter().collect::<Vec<_>>())
            .await;
    }

    /// `user` recovers one copy of the phish from Recoverable Items to the Inbox.
    async fn recovers_one_to_inbox(&self, user: &str) {
        let (mailbox, copies) = self
            .copies_in(user, GraphFolder::RecoverableItemsDeletions)
            .await;
        self.to_inbox(&mailbox, &[&copies[0]]).await;
    }

    /// `user` empties Deleted Items of the phish (it goes to Recoverable Items).
    async fn empties_deleted_items(&self, user: &str) {
        let (mailbox, copies) = self.copies_in(user, GraphFolder::DeletedItems).await;
        for copy in &copies {
            self.graph
                .delete_copy(&self.tenant, &mailbox, copy, DeleteMode::Soft)
                .await
                .unwrap();
        }
    }
}

async fn a_moved_message_goes_back_to_each_folder_it_came_from(backend: Backend) {
    let w = delivered(backend, |_| {}).await;
    let before: Vec<_> = RECIPIENTS.iter().map(|r| placed(&w.sim, r)).collect();
    let retract = until_finished(
        w.retract(pb::RetractOptions {
            delete_mode: pb::DeleteMode::MoveToDeletedItems.into(),
            ..options(&[])
        })
        .await,
        |r| r.event,
    )
    .await;
    let retract_job = retract[0].job_id.clone();
    assert_eq!(finished(&retract).state(), pb::JobState::Succeeded);
    assert_eq!(
        w.sim
            .messages_in("bob@contoso.com", Folder::DeletedItems)
            .len(),
        2
    );

    // Meanwhile Carol fished her copy out of Deleted Items, and Dave emptied his.
    let users = Users::of(&w.sim);
    users.moves_back_to_inbox("carol@contoso.com").await;
    users.empties_deleted_items("dave@contoso.com").await;

    let request_id = uuid::Uuid::new_v4().to_string();
    let stream = w
        .try_restore(&retract_job, &request_id)
        .await
        .expect("the restore starts");
    let events = until_finished(stream, |r| r.event).await;
    let restore_job = events[0].job_id.clone();
    assert_ne!(restore_job, retract_job, "a restore is a job of its own");
    let Some(pb::retract_event::Kind::JobStarted(started)) = &events[0].kind else {
        panic!("the restore starts with JobStarted: {:?}", events[0]);
    };
    assert_eq!(
        started.job.as_ref().map(|j| j.kind()),
        Some(pb::JobKind::Restore)
    );
    let phases: Vec<pb::RecipientPhase> = events
        .iter()
        .filter_map(|e| match &e.kind {
            Some(pb::retract_event::Kind::RecipientUpdate(u))
                if u.mailbox == "alice@contoso.com" =>
            {
                Some(u.phase())
            }
            _ => None,
        })
        .collect();
    assert_eq!(
        phases,
        [
            pb::RecipientPhase::Resolving,
            pb::RecipientPhase::Searching,
            pb::RecipientPhase::Restoring,
            pb::RecipientPhase::Done,
        ]
    );
    let rows = outcomes(&events);
    assert_eq!(rows["alice@contoso.com"].0, pb::RecipientOutcome::Restored);
    assert_eq!(
        (rows["bob@contoso.com"].1, rows["bob@contoso.com"].2),
        (2, 2),
        "Inbox and Archive"
    );
    let carol = &rows["carol@contoso.com"];
    assert_eq!(carol.0, pb::RecipientOutcome::Restored, "{carol:?}");
    assert!(carol.3.contains("1 already back"), "{carol:?}");
    let dave = &rows["dave@contoso.com"];
    assert_eq!(dave.0, pb::RecipientOutcome::NotFound, "{dave:?}");
    assert!(
        dave.3.contains("no longer where the retract put them"),
        "{dave:?}"
    );

    // Every copy is back where it was — Bob's in Inbox and Archive, Carol's once — except
    // Dave's, left in Recoverable Items where he put it.
    for (i, user) in RECIPIENTS.iter().enumerate().take(3) {
        assert_eq!(placed(&w.sim, user), before[i], "{user}");
    }
    assert!(placed(&w.sim, "dave@contoso.com").is_empty());
    assert_eq!(
        w.sim
            .messages_in("dave@contoso.com", Folder::RecoverableItemsDeletions)
            .len(),
        1
    );

    let end = finished(&events);
    assert_eq!(end.state(), pb::JobState::Succeeded, "{end:?}");
    let counts = end.counts.unwrap();
    assert_eq!((counts.restored_count, counts.not_found_count), (3, 1));
    assert_eq!(
        counts.copies_deleted_count, 4,
        "copies put back (Carol's found back)"
    );
    assert!(end.detail.contains("4 copies restored"), "{}", end.detail);
    let job = w.job(&restore_job).await;
    assert_eq!(job.kind(), pb::JobKind::Restore);
    assert_eq!(job.restores_job_id, retract_job);

    // The same request id re-attaches to the same restore; the audit trail has both ends.
    let again = until_finished(
        w.try_restore(&retract_job, &request_id)
            .await
            .expect("re-attaches"),
        |r| r.event,
    )
    .await;
    assert_eq!(again[0].job_id, restore_job);
    assert_eq!(again.len(), events.len(), "the same events again");
    let audit = w.app.audit_events("acme").await;
    let dispatched = audit
        .iter()
        .find(|e| e.action() == pb::AuditAction::RestoreDispatched)
        .expect("RESTORE_DISPATCHED");
    assert_eq!(dispatched.section(), pb::AuditSection::Retract);
    assert_eq!(dispatched.actor, "admin@contoso.com");
    let Some(pb::audit_event::Details::RestoreDispatched(d)) = &dispatched.details else {
        panic!("{dispatched:?}");
    };
    assert_eq!(
        (
            d.job_id.as_str(),
            d.restores_job_id.as_str(),
            d.mailbox_count
        ),
        (restore_job.as_str(), retract_job.as_str(), 4)
    );
    assert_eq!(d.reason, "released by mistake: putting it back");
    let ended = audit
        .iter()
        .find(|e| e.action() == pb::AuditAction::RestoreFinished)
        .expect("RESTORE_FINISHED");
    assert_eq!(ended.target, restore_job);
    assert_eq!(
        audit
            .iter()
            .filter(|e| e.action() == pb::AuditAction::RestoreDispatched)
            .count(),
        1,
        "re-attaching dispatches nothing"
    );
    w.app.stop().await;
}

async fn a_soft_retract_of_a_conversation_is_restored_from_recoverable_items(backend: Backend) {
    let w = chain(backend).await;
    let mailboxes = [
        "alice@contoso.com",
        "bob@contoso.com",
        "carol@contoso.com",
        "dave@contoso.com",
        "erin@contoso.com",
    ];
    let before: Vec<_> = mailboxes.iter().map(|m| placed(&w.sim, m)).collect();
    let retract = until_finished(w.retract(with_conversations(2)).await, |r| r.event).await;
    let retracted = finished(&retract).counts.unwrap().copies_deleted_count;
    assert!(
        retracted >= 8,
        "the conversation was retracted: {retracted}"
    );
    assert!(placed(&w.sim, "carol@contoso.com").is_empty());

    let events = until_finished(w.restore(&retract[0].job_id).await, |r| r.event).await;
    let end = finished(&events);
    assert_eq!(end.state(), pb::JobState::Succeeded, "{end:?}");
    assert_eq!(
        end.counts.unwrap().copies_deleted_count,
        retracted,
        "every copy the retract removed is put back"
    );
    for (i, mailbox) in mailboxes.iter().enumerate() {
        assert_eq!(
            placed(&w.sim, mailbox),
            before[i],
            "{mailbox}: each copy in its folder again"
        );
        assert!(
            w.sim
                .messages_in(mailbox, Folder::RecoverableItemsDeletions)
                .is_empty(),
            "{mailbox}: nothing left in Recoverable Items"
        );
    }
    // The restore visits each mailbox at the depth the retract reached it.
    let depths: BTreeMap<String, i32> = events
        .iter()
        .filter_map(|e| match &e.kind {
            Some(pb::retract_event::Kind::RecipientUpdate(u)) => Some((u.mailbox.clone(), u.depth)),
            _ => None,
        })
        .collect();
    assert_eq!(depths.get("carol@contoso.com"), Some(&1));
    assert_eq!(depths.get("dave@contoso.com"), Some(&2));
    w.app.stop().await;
}

async fn what_cannot_be_restored_is_refused_with_the_reason(backend: Backend) {
    let w = delivered(backend, |_| {}).await;
    let refused =
        |result: Result<tonic::Streaming<pb::RestoreRetractJobResponse>, tonic::Status>| {
            let f = expect_failure(result.map(|_| ()));
            assert_eq!(f.code, Code::FailedPrecondition, "{f:?}");
            assert_eq!(f.reason, "NOT_RESTORABLE", "{f:?}");
            f
        };
    let fresh = || uuid::Uuid::new_v4().to_string();
    let run = |mode: pb::DeleteMode, dry_run: bool, who: &'static str| pb::RetractOptions {
        delete_mode: mode.into(),
        dry_run,
        ..options(&[who])
    };

    let dry = until_finished(
        w.retract(run(pb::DeleteMode::Soft, true, "alice@contoso.com"))
            .await,
        |r| r.event,
    )
    .await;
    let f = refused(w.try_restore(&dry[0].job_id, &fresh()).await);
    assert_eq!(f.metadata["cause"], "DRY_RUN", "{f:?}");
    assert_eq!(f.metadata["job_id"], dry[0].job_id);

    let hard = until_finished(
        w.retract(run(pb::DeleteMode::Hard, false, "alice@contoso.com"))
            .await,
        |r| r.event,
    )
    .await;
    let f = refused(w.try_restore(&hard[0].job_id, &fresh()).await);
    assert_eq!(f.metadata["cause"], "HARD_DELETE", "{f:?}");
    assert!(f.message.contains("cannot be brought back"), "{f:?}");

    // Still running: refused until it ends.
    let hold = w.sim.hold_graph_requests();
    let running = w
        .start(run(pb::DeleteMode::Soft, false, "bob@contoso.com"))
        .await;
    hold.until_waiting(1).await;
    let f = refused(w.try_restore(&running.job_id, &fresh()).await);
    assert_eq!(f.metadata["cause"], "NOT_FINISHED", "{f:?}");
    hold.release();
    until_finished(w.watch(running.job_id.clone(), 0).await, |r| r.event).await;

    // A restore running already; then a restore of a restore; then nothing left.
    let hold = w.sim.hold_graph_requests();
    let mut first = w.restore(&running.job_id).await;
    let started = first.next().await.unwrap().unwrap().event.unwrap();
    hold.until_waiting(1).await;
    let f = refused(w.try_restore(&running.job_id, &fresh()).await);
    assert_eq!(f.metadata["cause"], "RESTORE_RUNNING", "{f:?}");
    assert_eq!(f.metadata["restore_job_id"], started.job_id);
    hold.release();
    until_finished(first, |r| r.event).await;
    let f = refused(w.try_restore(&started.job_id, &fresh()).await);
    assert_eq!(f.metadata["cause"], "NOT_A_RETRACT", "{f:?}");
    let f = refused(w.try_restore(&running.job_id, &fresh()).await);
    assert_eq!(f.metadata["cause"], "NOTHING_TO_RESTORE", "{f:?}");
    assert_eq!(
        w.sim.messages_in("bob@contoso.com", Folder::Inbox).len(),
        1,
        "restored once"
    );

    // Unknown jobs and malformed ids.
    let f = expect_failure(
        w.try_restore(&uuid::Uuid::new_v4().to_string(), &fresh())
            .await
            .map(|_| ()),
    );
    assert_eq!(
        (f.code, f.reason.as_str()),
        (Code::NotFound, "RETRACT_JOB_NOT_FOUND")
    );
    let f = expect_failure(w.try_restore("not-a-job", "not-a-uuid").await.map(|_| ()));
    assert_eq!(f.code, Code::InvalidArgument);
    assert_eq!(f.fields, ["job_id", "request_id"]);
    w.app.stop().await;
}

async fn a_restore_interrupted_by_a_restart_puts_each_copy_back_once(backend: Backend) {
    let w = delivered(backend, |s| {
        s.mailbox_concurrency = 1;
        s.job_lease_ms = 1_000;
        s.shutdown_grace_ms = 2_000;
    })
    .await;
    let before: Vec<_> = RECIPIENTS.iter().map(|r| placed(&w.sim, r)).collect();
    let retract = until_finished(w.retract(options(&[])).await, |r| r.event).await;
    w.sim.set_latency(graph_sim::LatencySettings {
        default: graph_sim::Latency::fixed(150),
        ..Default::default()
    });
    let mut restore = w.restore(&retract[0].job_id).await;
    let restore_job = loop {
        let e = restore.next().await.unwrap().unwrap().event.unwrap();
        if let Some(pb::retract_event::Kind::RecipientUpdate(u)) = &e.kind
            && u.phase() == pb::RecipientPhase::Done
        {
            break e.job_id;
        }
    };
    drop(restore);
    let World { sim, app } = w;
    let app = app.restart().await;
    let w = World { sim, app };
    let events = until_finished(w.watch(restore_job.clone(), 0).await, |r| r.event).await;
    let rows = outcomes(&events);
    assert_eq!(rows.len(), 4, "every mailbox finished: {rows:?}");
    let dones = events
        .iter()
        .filter(|e| {
            matches!(&e.kind, Some(pb::retract_event::Kind::RecipientUpdate(u))
                if u.phase() == pb::RecipientPhase::Done)
        })
        .count();
    assert_eq!(dones, 4, "each mailbox finished once, across both servers");
    assert!(
        rows.values().all(|r| r.0 == pb::RecipientOutcome::Restored),
        "{rows:?}"
    );
    for (i, user) in RECIPIENTS.iter().enumerate() {
        assert_eq!(
            placed(&w.sim, user),
            before[i],
            "{user}: back once, not twice"
        );
    }
    let moves = w
        .sim
        .graph_requests()
        .iter()
        .filter(|r| r.path.ends_with("/move"))
        .count();
    assert!(
        moves <= 5,
        "each of the 5 copies moved back at most once: {moves}"
    );
    w.app.stop().await;
}

/// Alice had deleted a copy of the phish herself before the retract (Deleted Items; in the
/// SOFT case Recoverable Items), and after the retract she put the retracted copy back
/// herself. The restore finds it back and moves nothing: her own delete stays, no duplicate.
async fn a_copy_the_user_restored_is_not_brought_back_twice(backend: Backend) {
    for (mode, her_own_delete) in [
        (pb::DeleteMode::MoveToDeletedItems, Folder::DeletedItems),
        (pb::DeleteMode::Soft, Folder::RecoverableItemsDeletions),
    ] {
        let sim = GraphSim::builder()
            .app(App::new(CLIENT_ID, CLIENT_SECRET))
            .tenant(contoso())
            .sign_in(SignIn::approve_as("admin@contoso.com"))
            .mail(Mail::new(PHISH, "ceo@evil.example").to(["alice@contoso.com"]))
            .message(
                PlacedMessage::new("alice@contoso.com", her_own_delete, PHISH)
                    .from("ceo@evil.example"),
            )
            .start()
            .await
            .expect("graph-sim starts");
        let app = granted_app(backend, &sim, vec!["alice@contoso.com".into()], |_| {}).await;
        let w = World { sim, app };
        let hers: Vec<String> = w
            .sim
            .messages_in("alice@contoso.com", her_own_delete)
            .into_iter()
            .map(|m| m.id)
            .collect();
        let retract = until_finished(
            w.retract(pb::RetractOptions {
                delete_mode: mode.into(),
                ..options(&["alice@contoso.com"])
            })
            .await,
            |r| r.event,
        )
        .await;
        assert_eq!(
            finished(&retract).state(),
            pb::JobState::Succeeded,
            "{mode:?}"
        );
        let users = Users::of(&w.sim);
        match mode {
            pb::DeleteMode::MoveToDeletedItems => {
                // She drags the retracted copy back (not the one she deleted herself).
                let (mailbox, there) = users
                    .copies_in("alice@contoso.com", GraphFolder::DeletedItems)
                    .await;
                assert_eq!(there.len(), 2, "hers and the retracted one");
                let retracted = there.iter().find(|c| !hers.contains(&c.id)).unwrap();
                users.to_inbox(&mailbox, &[retracted]).await;
            }
            _ => users.recovers_one_to_inbox("alice@contoso.com").await,
        }
        let events = until_finished(w.restore(&retract[0].job_id).await, |r| r.event).await;
        let rows = outcomes(&events);
        let alice = &rows["alice@contoso.com"];
        assert_eq!(
            alice.0,
            pb::RecipientOutcome::Restored,
            "{mode:?}: {alice:?}"
        );
        assert!(alice.3.contains("1 already back"), "{mode:?}: {alice:?}");
        assert_eq!(
            w.sim.messages_in("alice@contoso.com", Folder::Inbox).len(),
            1,
            "{mode:?}: one copy in the Inbox, not two"
        );
        assert_eq!(
            w.sim.messages_in("alice@contoso.com", her_own_delete).len(),
            1,
            "{mode:?}: her own delete stays"
        );
        w.app.stop().await;
    }
}

/// Straight at the store: what a removal needs recorded travels in the job journal's batch,
/// beside other mailboxes' events — the copies about to be removed, where a move put one,
/// a copy not removed after all, and a mailbox that answered (its problem cleared) — in one
/// transaction fenced by the lease: a worker that lost the job records nothing.
async fn a_removal_is_recorded_in_the_journals_batch_and_only_by_the_lease_holder(
    backend: Backend,
) {
    use retract_server::{
        domain::{EventKind, Phase, RemovedCopy, Target, TargetOutcome, TargetResult, TenantId},
        store::{JobWrite, StoreError},
    };

    let app = crate::app::TestApp::spawn(backend).await;
    app.create_tenant("acme").await;
    let store = app.store().await;
    let tenant = TenantId::parse("acme").unwrap();
    let address = |a: &str| EmailAddress::parse(a).unwrap();
    let (new, audit) = crate::scenarios::stored_job(
        &tenant,
        &["alice@contoso.com", "bob@contoso.com", "carol@contoso.com"],
        false,
    );
    let job = new.id.clone();
    store.create_job(&tenant, new, audit).await.unwrap();
    let owner = "worker-test";
    let (claimed, _) = store
        .claim_job(owner, std::time::Duration::from_secs(60), &[], &[])
        .await
        .unwrap()
        .expect("the job is claimed");
    assert_eq!(claimed, job);
    for mailbox in ["carol@contoso.com", "bob@contoso.com"] {
        store
            .record_mailbox_status(
                &tenant,
                &address(mailbox),
                Some((
                    "ErrorAccessDenied",
                    "an application access policy excludes this mailbox",
                )),
            )
            .await
            .unwrap();
    }
    let copy = |mailbox: &str, item: &str| RemovedCopy {
        mailbox: address(mailbox),
        item_id: item.to_owned(),
        hop: 0,
        internet_message_id: Some(PHISH.to_owned()),
        original_folder_id: Some("inbox".to_owned()),
        removed_id: None,
    };
    // Alice's copies are recorded in the batch that also carries Bob's result.
    let bob_done = EventKind::Recipient {
        target: Target {
            mailbox: address("bob@contoso.com"),
            depth: 0,
        },
        phase: Phase::Done,
        result: Some(TargetResult {
            outcome: TargetOutcome::Deleted,
            copies_found: 1,
            copies_deleted: 1,
            was_read: false,
            detail: None,
            graph_code: None,
        }),
    };
    let written = store
        .write_journal(
            &job,
            owner,
            vec![
                JobWrite::Removing(vec![
                    copy("alice@contoso.com", "a-1"),
                    copy("alice@contoso.com", "a-2"),
                    // Item ids are a mailbox's own: Dave's copies may carry the same ones.
                    copy("dave@contoso.com", "a-1"),
                    copy("dave@contoso.com", "a-2"),
                ]),
                JobWrite::Event(bob_done),
                JobWrite::Reachable {
                    tenant: tenant.clone(),
                    address: address("carol@contoso.com"),
                },
            ],
        )
        .await
        .unwrap();
    assert!(written[0].is_none() && written[2].is_none());
    let event = written[1].as_ref().expect("Bob's result is an event");
    assert_eq!(
        event.sequence,
        store.job_for_worker(&job).await.unwrap().last_sequence
    );
    assert_eq!(
        store
            .recorded_removals(&job, &address("alice@contoso.com"), 0)
            .await
            .unwrap(),
        2
    );
    assert!(
        store
            .mailbox_problems(&tenant, &[address("carol@contoso.com")])
            .await
            .unwrap()
            .is_empty(),
        "Carol answered: her recorded problem is cleared"
    );
    assert_eq!(
        store
            .mailbox_problems(&tenant, &[address("bob@contoso.com")])
            .await
            .unwrap()
            .len(),
        1,
        "Bob did not answer in this batch: his problem stands"
    );
    // The next batch: one of Alice's copies moved, the other not removed after all; Dave's
    // moved too, in the same batch, to where his mailbox put it.
    store
        .write_journal(
            &job,
            owner,
            vec![
                JobWrite::Removed {
                    mailbox: address("alice@contoso.com"),
                    moved: vec![("a-1".to_owned(), "deleted-a-1".to_owned())],
                    not_removed: vec!["a-2".to_owned()],
                },
                // Dave's a-1 moved twice within the batch: where it went last counts.
                JobWrite::Removed {
                    mailbox: address("dave@contoso.com"),
                    moved: vec![("a-1".to_owned(), "deleted-d-0".to_owned())],
                    not_removed: Vec::new(),
                },
                JobWrite::Removed {
                    mailbox: address("dave@contoso.com"),
                    moved: vec![("a-1".to_owned(), "deleted-d-1".to_owned())],
                    not_removed: Vec::new(),
                },
            ],
        )
        .await
        .unwrap();
    let left = store
        .unrestored_copies(&job, &address("alice@contoso.com"))
        .await
        .unwrap();
    assert_eq!(left.len(), 1);
    assert_eq!(left[0].item_id, "a-1");
    assert_eq!(left[0].removed_id.as_deref(), Some("deleted-a-1"));
    let dave = store
        .unrestored_copies(&job, &address("dave@contoso.com"))
        .await
        .unwrap();
    let dave: std::collections::BTreeMap<String, Option<String>> = dave
        .into_iter()
        .map(|c| (c.item_id, c.removed_id))
        .collect();
    assert_eq!(
        dave,
        [
            ("a-1".to_owned(), Some("deleted-d-1".to_owned())),
            // Alice's a-2 was not removed; Dave's, of the same id, stays recorded.
            ("a-2".to_owned(), None),
        ]
        .into(),
    );
    // A worker that does not hold the lease records nothing, removals included.
    let refused = store
        .write_journal(
            &job,
            "worker-other",
            vec![JobWrite::Removing(vec![copy("bob@contoso.com", "b-1")])],
        )
        .await;
    assert!(
        matches!(refused, Err(StoreError::LeaseLost(_))),
        "{refused:?}"
    );
    assert_eq!(
        store
            .recorded_removals(&job, &address("bob@contoso.com"), 0)
            .await
            .unwrap(),
        0
    );
}

/// Straight at the store: one journal batch carrying 600 mailboxes' results (more than one
/// statement's worth), one of them twice and one finished by an earlier batch, finishes each
/// target once with its own result, numbers only the events that finished something, and
/// counts them once.
async fn a_journal_batch_of_hundreds_of_results_finishes_each_target_once(backend: Backend) {
    use retract_server::{
        domain::{EventKind, Phase, Target, TargetOutcome, TargetResult, TenantId},
        store::JobWrite,
    };

    let app = crate::app::TestApp::spawn(backend).await;
    app.create_tenant("acme").await;
    let store = app.store().await;
    let tenant = TenantId::parse("acme").unwrap();
    let mailboxes: Vec<String> = (0..600).map(|i| format!("user{i}@contoso.com")).collect();
    let names: Vec<&str> = mailboxes.iter().map(String::as_str).collect();
    let (new, audit) = crate::scenarios::stored_job(&tenant, &names, false);
    let job = new.id.clone();
    store.create_job(&tenant, new, audit).await.unwrap();
    let owner = "worker-test";
    store
        .claim_job(owner, std::time::Duration::from_secs(60), &[], &[])
        .await
        .unwrap()
        .expect("the job is claimed");
    // Mailbox i found i % 3 copies and deleted them (0: not found).
    let result = |i: usize, found: u32| EventKind::Recipient {
        target: Target {
            mailbox: EmailAddress::parse(&mailboxes[i]).unwrap(),
            depth: 0,
        },
        phase: Phase::Done,
        result: Some(TargetResult {
            outcome: if found == 0 {
                TargetOutcome::NotFound
            } else {
                TargetOutcome::Deleted
            },
            copies_found: found,
            copies_deleted: found,
            was_read: i.is_multiple_of(2),
            detail: (found == 0).then(|| format!("nothing in mailbox {i}")),
            graph_code: None,
        }),
    };
    let found = |i: usize| u32::try_from(i % 3).unwrap();
    // An earlier batch finished user7.
    let first = store
        .write_journal(&job, owner, vec![JobWrite::Event(result(7, found(7)))])
        .await
        .unwrap();
    assert!(first[0].is_some());
    let last_before = store.job_for_worker(&job).await.unwrap().last_sequence;
    // The batch: everyone, user7 again (a redo) and user300 twice (the second a redo too).
    let mut writes: Vec<JobWrite> = (0..600)
        .map(|i| JobWrite::Event(result(i, found(i))))
        .collect();
    writes.push(JobWrite::Event(result(300, 9)));
    let written = store.write_journal(&job, owner, writes).await.unwrap();
    assert_eq!(written.len(), 601);
    assert!(written[7].is_none(), "user7 was finished before: a redo");
    assert!(written[600].is_none(), "user300's second result is a redo");
    let numbered: Vec<i64> = written.iter().flatten().map(|e| e.sequence).collect();
    assert_eq!(
        numbered,
        (last_before + 1..=last_before + 599).collect::<Vec<_>>(),
        "599 events, numbered in order without gaps"
    );
    let current = store.job_for_worker(&job).await.unwrap();
    assert_eq!(current.last_sequence, last_before + 599);
    assert_eq!(current.counts.done, 600);
    assert_eq!(current.counts.not_found, 200);
    assert_eq!(current.counts.deleted, 400);
    assert_eq!(current.counts.copies_found, 600);
    let targets = store.job_targets(&job).await.unwrap();
    assert_eq!(targets.len(), 600);
    for record in targets {
        let i: usize = record.target.mailbox.as_str()["user".len()..]
            .split('@')
            .next()
            .unwrap()
            .parse()
            .unwrap();
        let got = record.result.expect("every target finished");
        assert_eq!(got.copies_found, found(i), "user{i}: its own result");
        assert_eq!(got.was_read, i.is_multiple_of(2), "user{i}");
        assert_eq!(
            got.detail,
            (found(i) == 0).then(|| format!("nothing in mailbox {i}")),
            "user{i}"
        );
    }
    app.stop().await;
}
