//! Retracting a message: the Retract tab's button, end to end against graph-sim with the real
//! Graph client — streamed progress per recipient, the mailboxes afterwards, the audit trail.

use std::time::Duration;

use futures::StreamExt as _;
use graph_sim::{
    Folder, GraphSim, SignIn,
    seed::{App, Domain, Mail, Tenant, User},
};
use retract_client::{DevToken, pb};
use tonic::Code;

use crate::{
    app::action,
    db::Backend,
    on_both_backends,
    scenarios::{CLIENT_ID, CLIENT_SECRET, PHISH, World, crowd, granted_app},
    status::expect_failure,
};

on_both_backends!(
    a_call_stuck_on_microsoft_is_cut_at_the_request_timeout,
    an_alias_met_again_in_a_job_is_not_looked_up_again,
    each_delete_mode_leaves_the_copies_where_microsoft_does,
    two_replicas_never_run_one_job_at_once,
    watchers_get_every_event_heartbeats_while_idle_and_their_deadline,
    five_hundred_mailboxes_are_retracted_and_the_stream_shows_every_one,
    a_throttling_storm_is_waited_out_without_crowding_any_mailbox,
    a_job_survives_a_restart_and_deletes_each_copy_exactly_once,
    a_cancelled_job_stops_and_keeps_what_it_did,
    a_message_is_retracted_from_every_recipient_while_the_stream_shows_each,
    a_dry_run_finds_and_deletes_nothing,
    the_same_request_id_returns_the_same_job_and_other_options_are_refused,
    an_administrator_without_a_mailbox_cannot_retract,
    a_watcher_resumes_from_the_middle_of_the_event_log,
    ineligible_recipients_are_refused_or_skipped_on_request,
    a_mailbox_costs_two_graph_requests_and_an_alias_is_looked_up_once,
    a_hard_job_interrupted_after_its_purge_reports_the_copy_deleted,
    a_small_retract_runs_beside_a_huge_one,
    a_tenant_with_nothing_running_here_is_claimed_before_a_busy_one,
);

fn contoso() -> Tenant {
    Tenant::new("Contoso")
        .domain(Domain::verified("contoso.com").default_domain())
        .user(User::new("admin@contoso.com").admin())
        .user(User::new("alice@contoso.com"))
        .user(User::new("bob@contoso.com"))
        .user(User::new("carol@contoso.com"))
        .user(User::new("locked@contoso.com").excluded_by_access_policy())
        .user(User::new("onprem@contoso.com").unlicensed())
        .user(User::new("dave@contoso.com").alias("d.vader@contoso.com"))
}

/// graph-sim with Contoso and the phishing mail delivered (two copies for Alice); our tenant
/// `acme` granted through the real consent flow; the delivery recorded with Carol, who
/// never got a copy, and a recipient outside the managed domains.
pub(crate) async fn world(backend: Backend) -> World {
    let sim = GraphSim::builder()
        .app(App::new(CLIENT_ID, CLIENT_SECRET))
        .tenant(contoso())
        .sign_in(SignIn::approve_as("admin@contoso.com"))
        .mail(
            Mail::new(PHISH, "ceo@evil.example")
                .to(["alice@contoso.com"])
                .copies(2),
        )
        .mail(Mail::new(PHISH, "ceo@evil.example").to([
            "bob@contoso.com",
            "locked@contoso.com",
            "onprem@contoso.com",
            "dave@contoso.com",
        ]))
        .start()
        .await
        .expect("graph-sim starts");
    let recipients = ["alice", "bob", "carol", "locked", "onprem", "d.vader"]
        .iter()
        .map(|u| format!("{u}@contoso.com"))
        .chain(["partner@elsewhere.example".to_owned()])
        .collect();
    let app = granted_app(backend, &sim, recipients, |s| s.watch_heartbeat_ms = 200).await;
    World { sim, app }
}

pub(crate) fn options(recipients: &[&str]) -> pb::RetractOptions {
    pb::RetractOptions {
        internet_message_id: PHISH.into(),
        recipients: recipients.iter().map(|r| (*r).to_owned()).collect(),
        delete_mode: pb::DeleteMode::Soft.into(),
        ..Default::default()
    }
}

fn request_id() -> String {
    uuid::Uuid::new_v4().to_string()
}

/// Reads a stream to its JobFinished event.
pub(crate) async fn until_finished<T>(
    mut stream: tonic::Streaming<T>,
    event: impl Fn(T) -> Option<pb::RetractEvent>,
) -> Vec<pb::RetractEvent> {
    tokio::time::timeout(Duration::from_secs(30), async {
        let mut events = Vec::new();
        while let Some(item) = stream.next().await {
            let Some(e) = event(item.expect("stream item")) else {
                continue;
            };
            let last = matches!(e.kind, Some(pb::retract_event::Kind::JobFinished(_)));
            events.push(e);
            if last {
                break;
            }
        }
        events
    })
    .await
    .expect("the job finishes")
}

fn done(events: &[pb::RetractEvent]) -> Vec<(String, pb::RecipientOutcome, i32, i32, String)> {
    let mut rows: Vec<_> = events
        .iter()
        .filter_map(|e| match &e.kind {
            Some(pb::retract_event::Kind::RecipientUpdate(u))
                if u.phase() == pb::RecipientPhase::Done =>
            {
                Some((
                    u.mailbox.clone(),
                    u.outcome(),
                    u.copies_found_count,
                    u.copies_deleted_count,
                    u.graph_error_code.clone(),
                ))
            }
            _ => None,
        })
        .collect();
    rows.sort();
    rows
}

fn finished(events: &[pb::RetractEvent]) -> pb::JobFinished {
    match events.last().and_then(|e| e.kind.clone()) {
        Some(pb::retract_event::Kind::JobFinished(f)) => f,
        other => panic!("last event is not JobFinished: {other:?}"),
    }
}

async fn a_message_is_retracted_from_every_recipient_while_the_stream_shows_each(backend: Backend) {
    let w = world(backend).await;
    let stream = w
        .retract(options(&[
            "alice@contoso.com",
            "bob@contoso.com",
            "carol@contoso.com",
            "locked@contoso.com",
            "onprem@contoso.com",
            "d.vader@contoso.com",
        ]))
        .await;
    let events = until_finished(stream, |r| r.event).await;
    let sequences: Vec<i64> = events
        .iter()
        .filter(|e| !matches!(e.kind, Some(pb::retract_event::Kind::Heartbeat(_))))
        .map(|e| e.sequence)
        .collect();
    assert_eq!(
        sequences,
        (1..=sequences.len() as i64).collect::<Vec<_>>(),
        "1, 2, 3, … without gaps"
    );
    assert!(matches!(
        events[0].kind,
        Some(pb::retract_event::Kind::JobStarted(_))
    ));
    assert_eq!(
        done(&events),
        [
            (
                "alice@contoso.com".into(),
                pb::RecipientOutcome::Deleted,
                2,
                2,
                String::new()
            ),
            (
                "bob@contoso.com".into(),
                pb::RecipientOutcome::Deleted,
                1,
                1,
                String::new()
            ),
            (
                "carol@contoso.com".into(),
                pb::RecipientOutcome::NotFound,
                0,
                0,
                String::new()
            ),
            (
                "d.vader@contoso.com".into(),
                pb::RecipientOutcome::Deleted,
                1,
                1,
                String::new()
            ),
            (
                "locked@contoso.com".into(),
                pb::RecipientOutcome::Failed,
                0,
                0,
                "ErrorAccessDenied".into()
            ),
            (
                "onprem@contoso.com".into(),
                pb::RecipientOutcome::Failed,
                0,
                0,
                "MailboxNotEnabledForRESTAPI".into()
            ),
        ]
    );
    let end = finished(&events);
    assert_eq!(end.state(), pb::JobState::CompletedWithErrors);
    assert_eq!(
        end.counts.unwrap().copies_deleted_count,
        4,
        "an alias reaches Dave's mailbox"
    );

    for user in ["alice@contoso.com", "bob@contoso.com"] {
        assert!(
            w.sim
                .messages_in(user, Folder::Inbox)
                .iter()
                .all(|m| m.internet_message_id != PHISH),
            "{user}'s inbox"
        );
        assert!(
            w.sim
                .messages_in(user, Folder::RecoverableItemsDeletions)
                .iter()
                .any(|m| m.internet_message_id == PHISH),
            "soft delete"
        );
    }
    let tab = w
        .admin()
        .retract_service()
        .get_retract_options(pb::GetRetractOptionsRequest {
            tenant_id: "acme".into(),
            internet_message_id: PHISH.into(),
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    let locked = tab
        .recipients
        .iter()
        .find(|r| r.address == "locked@contoso.com")
        .unwrap();
    assert_eq!(
        locked.eligibility(),
        pb::Eligibility::PermissionIssue,
        "the Retract tab remembers Graph's answer"
    );

    let audit = w.app.audit_events("acme").await;
    let dispatched = audit
        .iter()
        .find(|e| action(e) == "retract_dispatched")
        .expect("dispatched");
    assert_eq!(dispatched.actor, "admin@contoso.com");
    assert_eq!(dispatched.section(), pb::AuditSection::Retract);
    let finished_entry = audit
        .iter()
        .find(|e| action(e) == "retract_finished")
        .expect("finished");
    let Some(pb::audit_event::Details::RetractFinished(details)) = &finished_entry.details else {
        panic!("retract_finished carries its typed details")
    };
    let outcome_of = |mailbox: &str| {
        details
            .targets
            .iter()
            .find(|t| t.mailbox == mailbox)
            .unwrap_or_else(|| panic!("{mailbox} is in the audit entry"))
    };
    assert_eq!(
        outcome_of("alice@contoso.com").outcome(),
        pb::RecipientOutcome::Deleted
    );
    assert_eq!(
        outcome_of("locked@contoso.com").graph_error_code,
        "ErrorAccessDenied"
    );
    assert_eq!(details.state(), pb::JobState::CompletedWithErrors);
    w.app.stop().await;
}

async fn a_dry_run_finds_and_deletes_nothing(backend: Backend) {
    let w = world(backend).await;
    let stream = w
        .retract(pb::RetractOptions {
            dry_run: true,
            ..options(&["alice@contoso.com"])
        })
        .await;
    let events = until_finished(stream, |r| r.event).await;
    assert_eq!(
        done(&events),
        [(
            "alice@contoso.com".into(),
            pb::RecipientOutcome::WouldDelete,
            2,
            0,
            String::new()
        )]
    );
    assert_eq!(finished(&events).state(), pb::JobState::Succeeded);
    let inbox = w.sim.messages_in("alice@contoso.com", Folder::Inbox);
    assert_eq!(
        inbox
            .iter()
            .filter(|m| m.internet_message_id == PHISH)
            .count(),
        2,
        "nothing deleted"
    );
    let deletes = w
        .sim
        .graph_requests()
        .iter()
        .filter(|r| r.method != "GET")
        .count();
    assert_eq!(deletes, 0, "not one write reached Graph");
    w.app.stop().await;
}

async fn the_same_request_id_returns_the_same_job_and_other_options_are_refused(backend: Backend) {
    let w = world(backend).await;
    let id = request_id();
    let start = |opts: pb::RetractOptions| {
        let (client, id) = (w.admin(), id.clone());
        async move {
            client
                .retract_service()
                .start_retract(pb::StartRetractRequest {
                    tenant_id: "acme".into(),
                    options: Some(opts),
                    request_id: id,
                })
                .await
                .map(|r| r.into_inner().job.unwrap())
        }
    };
    let first = start(options(&["bob@contoso.com"])).await.unwrap();
    let again = start(options(&["bob@contoso.com"])).await.unwrap();
    assert_eq!(first.job_id, again.job_id);
    // Re-attaching works even when the checks would now refuse: the job itself found
    // locked@ inaccessible, which makes it ineligible for new requests.
    let locked_id = request_id();
    let locked = w
        .admin()
        .retract_service()
        .retract(pb::RetractRequest {
            tenant_id: "acme".into(),
            options: Some(options(&["locked@contoso.com"])),
            request_id: locked_id.clone(),
        })
        .await
        .unwrap()
        .into_inner();
    until_finished(locked, |r| r.event).await;
    let reattached = w
        .admin()
        .retract_service()
        .start_retract(pb::StartRetractRequest {
            tenant_id: "acme".into(),
            options: Some(options(&["locked@contoso.com"])),
            request_id: locked_id,
        })
        .await
        .expect("the same request id re-attaches")
        .into_inner()
        .job
        .unwrap();
    assert_eq!(reattached.state(), pb::JobState::CompletedWithErrors);
    let fresh = expect_failure(w.try_start(options(&["locked@contoso.com"])).await);
    assert_eq!(
        fresh.fields,
        ["options.recipients[0]"],
        "a new request for it is refused"
    );
    let reused = expect_failure(start(options(&["alice@contoso.com"])).await);
    assert_eq!(
        (reused.code, reused.reason.as_str()),
        (Code::AlreadyExists, "REQUEST_ID_REUSED")
    );

    let listed = w
        .admin()
        .retract_service()
        .list_retract_jobs(pb::ListRetractJobsRequest {
            tenant_id: "acme".into(),
            internet_message_id: PHISH.into(),
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(
        listed.jobs.len(),
        2,
        "bob's job and locked@'s: no job per repeat"
    );
    assert_eq!(listed.jobs[1].job_id, first.job_id, "newest first");
    let dispatched = w
        .app
        .audit_events("acme")
        .await
        .into_iter()
        .filter(|e| action(e) == "retract_dispatched")
        .count();
    assert_eq!(dispatched, 2, "repeats dispatch nothing");
    w.app.stop().await;
}

async fn an_administrator_without_a_mailbox_cannot_retract(backend: Backend) {
    let w = world(backend).await;
    let outsider = w.app.admin("consultant@contoso.com", "acme");
    let refused = expect_failure(
        outsider
            .retract_service()
            .start_retract(pb::StartRetractRequest {
                tenant_id: "acme".into(),
                options: Some(options(&["bob@contoso.com"])),
                request_id: request_id(),
            })
            .await,
    );
    assert_eq!(
        (refused.code, refused.reason.as_str()),
        (Code::PermissionDenied, "ADMIN_MAILBOX_NOT_FOUND")
    );
    let service = w.app.with_token(
        &DevToken::service("soc-automation")
            .permission("retract.message")
            .permission("retract.read"),
    );
    let job = service
        .retract_service()
        .start_retract(pb::StartRetractRequest {
            tenant_id: "acme".into(),
            options: Some(options(&["bob@contoso.com"])),
            request_id: request_id(),
        })
        .await
        .expect("service callers skip the mailbox check")
        .into_inner()
        .job
        .unwrap();
    assert_eq!(
        job.requested_by, "soc-automation",
        "audited by their subject"
    );
    w.app.stop().await;
}

async fn a_watcher_resumes_from_the_middle_of_the_event_log(backend: Backend) {
    let w = world(backend).await;
    let job = w
        .start(options(&["alice@contoso.com", "bob@contoso.com"]))
        .await;
    let watch = |after: i64| {
        let (client, job_id) = (w.admin(), job.job_id.clone());
        async move {
            let stream = client
                .retract_service()
                .watch_retract(pb::WatchRetractRequest {
                    tenant_id: "acme".into(),
                    job_id,
                    after_sequence: after,
                })
                .await
                .unwrap()
                .into_inner();
            until_finished(stream, |r| r.event).await
        }
    };
    let all = watch(0).await;
    let real: Vec<i64> = all
        .iter()
        .filter(|e| !matches!(e.kind, Some(pb::retract_event::Kind::Heartbeat(_))))
        .map(|e| e.sequence)
        .collect();
    let middle = real[real.len() / 2];
    let after_end = watch(*real.last().unwrap()).await;
    assert!(
        after_end.is_empty(),
        "a finished job watched from its last event ends at once"
    );
    let rest: Vec<i64> = watch(middle)
        .await
        .iter()
        .filter(|e| !matches!(e.kind, Some(pb::retract_event::Kind::Heartbeat(_))))
        .map(|e| e.sequence)
        .collect();
    assert_eq!(
        rest,
        real.iter()
            .copied()
            .filter(|s| *s > middle)
            .collect::<Vec<_>>(),
        "exactly the events after {middle}"
    );
    let got = w.job(&job.job_id).await;
    assert_eq!(got.state(), pb::JobState::Succeeded);
    assert_eq!(got.last_sequence, *real.last().unwrap());
    // Tenant B naming its own tenant with tenant A's job id learns nothing either.
    w.app.create_tenant("globex").await;
    let globex = w.app.admin("eve@globex.example", "globex");
    let not_theirs = expect_failure(
        globex
            .retract_service()
            .get_retract_job(pb::GetRetractJobRequest {
                tenant_id: "globex".into(),
                job_id: job.job_id.clone(),
            })
            .await,
    );
    assert_eq!(not_theirs.code, Code::NotFound);
    let not_theirs = expect_failure(
        globex
            .retract_service()
            .watch_retract(pb::WatchRetractRequest {
                tenant_id: "globex".into(),
                job_id: job.job_id.clone(),
                after_sequence: 0,
            })
            .await,
    );
    assert_eq!(not_theirs.code, Code::NotFound);
    let other = w
        .app
        .with_token(&DevToken::admin("eve@globex.example", "globex").all_permissions());
    let denied = expect_failure(
        other
            .retract_service()
            .get_retract_job(pb::GetRetractJobRequest {
                tenant_id: "acme".into(),
                job_id: job.job_id,
            })
            .await,
    );
    assert_eq!(denied.code, Code::PermissionDenied);
    w.app.stop().await;
}

async fn ineligible_recipients_are_refused_or_skipped_on_request(backend: Backend) {
    let w = world(backend).await;
    let refused = expect_failure(
        w.try_start(options(&[
            "partner@elsewhere.example",
            "bob@contoso.com",
            "stranger@contoso.com",
        ]))
        .await,
    );
    assert_eq!(refused.code, Code::InvalidArgument);
    assert_eq!(
        refused.fields,
        ["options.recipients[1]", "options.recipients[2]"],
        "sorted: partner@…, stranger@…"
    );
    let depth_without_conversations = expect_failure(
        w.try_start(pb::RetractOptions {
            include_conversations: false,
            conversation_depth: 2,
            ..options(&[])
        })
        .await,
    );
    assert_eq!(
        depth_without_conversations.fields,
        ["options.conversation_depth"]
    );
    let too_deep = expect_failure(
        w.try_start(pb::RetractOptions {
            include_conversations: true,
            conversation_depth: 6,
            ..options(&[])
        })
        .await,
    );
    assert_eq!(too_deep.fields, ["options.conversation_depth"]);

    let stream = w
        .retract(pb::RetractOptions {
            skip_ineligible: true,
            ..options(&["partner@elsewhere.example", "bob@contoso.com"])
        })
        .await;
    let events = until_finished(stream, |r| r.event).await;
    assert_eq!(
        done(&events),
        [
            (
                "bob@contoso.com".into(),
                pb::RecipientOutcome::Deleted,
                1,
                1,
                String::new()
            ),
            (
                "partner@elsewhere.example".into(),
                pb::RecipientOutcome::Skipped,
                0,
                0,
                String::new()
            ),
        ]
    );
    w.app.stop().await;
}

async fn five_hundred_mailboxes_are_retracted_and_the_stream_shows_every_one(backend: Backend) {
    let w = crowd(backend, 500, |_| {}).await;
    w.sim.set_latency(graph_sim::LatencySettings {
        default: graph_sim::Latency::fixed(20),
        ..Default::default()
    });
    let stream = w.retract(options(&[])).await;
    let events = until_finished(stream, |r| r.event).await;
    let rows = done(&events);
    assert_eq!(rows.len(), 500, "every recipient in the stream");
    assert!(
        rows.iter()
            .all(|r| r.1 == pb::RecipientOutcome::Deleted && r.3 == 1),
        "every copy deleted"
    );
    assert_eq!(finished(&events).state(), pb::JobState::Succeeded);
    for i in [0, 250, 499] {
        let user = format!("user{i}@contoso.com");
        assert!(
            w.sim
                .messages_in(&user, Folder::Inbox)
                .iter()
                .all(|m| m.internet_message_id != PHISH),
            "{user}"
        );
    }
    let peaks = w.sim.peak_concurrency_by_mailbox();
    assert!(
        peaks.values().all(|p| *p <= 4),
        "never more than 4 requests to one mailbox"
    );
    let audit = w.app.audit_events("acme").await;
    let finished_entry = audit
        .iter()
        .find(|e| action(e) == "retract_finished")
        .expect("finished");
    let Some(pb::audit_event::Details::RetractFinished(details)) = &finished_entry.details else {
        panic!("retract_finished carries its typed details")
    };
    assert_eq!(details.target_count, 500);
    assert!(
        details
            .targets
            .iter()
            .any(|t| t.mailbox == "user499@contoso.com"),
        "the audit names every recipient (500 ≤ the cap of 1,000)"
    );
    w.app.stop().await;
}

async fn a_throttling_storm_is_waited_out_without_crowding_any_mailbox(backend: Backend) {
    let w = crowd(backend, 30, |_| {}).await;
    w.sim.set_limits(graph_sim::Limits {
        retry_after_secs: 1,
        ..Default::default()
    });
    w.sim.start_throttle_storm(Duration::from_millis(1500));
    let stream = w.retract(options(&[])).await;
    let events = until_finished(stream, |r| r.event).await;
    assert!(
        done(&events)
            .iter()
            .all(|r| r.1 == pb::RecipientOutcome::Deleted),
        "{:?}",
        done(&events)
    );
    let requests = w.sim.graph_requests();
    assert!(
        requests.iter().any(|r| r.status == Some(429)),
        "the storm was met"
    );
    let mut by_mailbox: std::collections::HashMap<String, Vec<&graph_sim::RequestRecord>> =
        Default::default();
    for r in &requests {
        if let Some(m) = &r.mailbox {
            by_mailbox.entry(m.clone()).or_default().push(r);
        }
    }
    for (mailbox, calls) in by_mailbox {
        for pair in calls.windows(2) {
            if pair[0].status == Some(429) {
                let gap = pair[1].started.duration_since(pair[0].finished);
                assert!(
                    gap >= Duration::from_secs(1),
                    "{mailbox}: retried after {gap:?}, before Retry-After"
                );
            }
        }
    }
    assert!(
        w.sim
            .peak_concurrency_by_mailbox()
            .values()
            .all(|p| *p <= 4)
    );
    w.app.stop().await;
}

async fn a_job_survives_a_restart_and_deletes_each_copy_exactly_once(backend: Backend) {
    let w = crowd(backend, 12, |s| {
        s.mailbox_concurrency = 2;
        s.job_lease_ms = 1_000;
        s.shutdown_grace_ms = 2_000;
    })
    .await;
    w.sim.set_latency(graph_sim::LatencySettings {
        default: graph_sim::Latency::fixed(150),
        ..Default::default()
    });
    let job = w.start(options(&[])).await;
    // Wait until some mailboxes are done, then stop the server mid-job.
    let mut progress = w.watch(job.job_id.clone(), 0).await;
    let mut done_before = 0;
    while done_before < 2 {
        let e = progress.next().await.unwrap().unwrap().event.unwrap();
        if let Some(pb::retract_event::Kind::RecipientUpdate(u)) = e.kind
            && u.phase() == pb::RecipientPhase::Done
        {
            done_before += 1;
        }
    }
    drop(progress);
    let World { sim, app } = w;
    let app = app.restart().await;
    let w = World { sim, app };
    let events = until_finished(w.watch(job.job_id.clone(), 0).await, |r| r.event).await;
    let rows = done(&events);
    assert_eq!(rows.len(), 12, "every mailbox finished once: {rows:?}");
    assert!(
        rows.iter().all(|r| matches!(
            r.1,
            pb::RecipientOutcome::Deleted | pb::RecipientOutcome::AlreadyDeleted
        )),
        "{rows:?}"
    );
    let deletes = w
        .sim
        .graph_requests()
        .iter()
        .filter(|r| r.method == "DELETE")
        .count();
    assert_eq!(
        deletes, 12,
        "each copy deleted exactly once across both servers"
    );
    for i in 0..12 {
        let user = format!("user{i}@contoso.com");
        assert_eq!(
            w.sim
                .messages_in(&user, Folder::RecoverableItemsDeletions)
                .len(),
            1,
            "{user}"
        );
    }
    w.app.stop().await;
}

async fn a_cancelled_job_stops_and_keeps_what_it_did(backend: Backend) {
    let w = crowd(backend, 10, |s| s.mailbox_concurrency = 1).await;
    w.sim.set_latency(graph_sim::LatencySettings {
        default: graph_sim::Latency::fixed(100),
        ..Default::default()
    });
    let job = w.start(options(&[])).await;
    let mut progress = w.watch(job.job_id.clone(), 0).await;
    loop {
        let e = progress.next().await.unwrap().unwrap().event.unwrap();
        if let Some(pb::retract_event::Kind::RecipientUpdate(u)) = e.kind
            && u.phase() == pb::RecipientPhase::Done
        {
            break;
        }
    }
    w.admin()
        .retract_service()
        .cancel_retract_job(pb::CancelRetractJobRequest {
            tenant_id: "acme".into(),
            job_id: job.job_id.clone(),
            reason: "wrong message".into(),
        })
        .await
        .unwrap();
    let mut events = Vec::new();
    while let Some(item) = progress.next().await {
        let e = item.unwrap().event.unwrap();
        let last = matches!(e.kind, Some(pb::retract_event::Kind::JobFinished(_)));
        events.push(e);
        if last {
            break;
        }
    }
    let end = finished(&events);
    assert_eq!(end.state(), pb::JobState::Cancelled);
    let counts = end.counts.unwrap();
    assert!(
        counts.cancelled_count > 0 && counts.deleted_count >= 1,
        "{counts:?}"
    );
    assert_eq!(counts.deleted_count + counts.cancelled_count, 10);
    let deleted = (0..10)
        .filter(|i| {
            !w.sim
                .messages_in(
                    &format!("user{i}@contoso.com"),
                    Folder::RecoverableItemsDeletions,
                )
                .is_empty()
        })
        .count();
    assert_eq!(
        deleted as i32, counts.deleted_count,
        "what was done stays done"
    );
    let again = expect_failure(
        w.admin()
            .retract_service()
            .cancel_retract_job(pb::CancelRetractJobRequest {
                tenant_id: "acme".into(),
                job_id: job.job_id,
                reason: String::new(),
            })
            .await,
    );
    assert_eq!(again.code, Code::FailedPrecondition);
    assert!(
        w.app
            .audit_events("acme")
            .await
            .iter()
            .any(|e| action(e) == "retract_cancelled")
    );
    w.app.stop().await;
}

async fn watchers_get_every_event_heartbeats_while_idle_and_their_deadline(backend: Backend) {
    let w = crowd(backend, 3, |s| s.watch_heartbeat_ms = 100).await;
    // Microsoft stalls: the job waits inside Graph calls.
    let hold = w.sim.hold_graph_requests();
    // A service caller: no administrator-mailbox lookup, which the stalled Graph would hold.
    let soc = w.app.with_token(
        &DevToken::service("soc-automation")
            .permission("retract.message")
            .permission("retract.read"),
    );
    let job = soc
        .retract_service()
        .start_retract(pb::StartRetractRequest {
            tenant_id: "acme".into(),
            options: Some(options(&[])),
            request_id: request_id(),
        })
        .await
        .unwrap()
        .into_inner()
        .job
        .unwrap();
    let watch = |timeout: Option<Duration>| {
        let (client, job_id) = (soc.clone(), job.job_id.clone());
        async move {
            let mut request = tonic::Request::new(pb::WatchRetractRequest {
                tenant_id: "acme".into(),
                job_id,
                after_sequence: 0,
            });
            if let Some(t) = timeout {
                request.set_timeout(t);
            }
            client
                .retract_service()
                .watch_retract(request)
                .await
                .unwrap()
                .into_inner()
        }
    };
    // A watcher with a short deadline is ended at it, not left hanging.
    let mut short = watch(Some(Duration::from_millis(600))).await;
    let ended = tokio::time::timeout(Duration::from_secs(10), async {
        loop {
            match short.next().await {
                Some(Ok(_)) => continue,
                Some(Err(status)) => return Some(status.code()),
                None => return None,
            }
        }
    })
    .await
    .expect("the stream ends at the deadline");
    assert_eq!(ended, Some(Code::DeadlineExceeded));

    let watchers: Vec<_> = (0..3).map(|_| watch(None)).collect();
    let mut streams = Vec::new();
    for w in watchers {
        streams.push(w.await);
    }
    hold.until_waiting(1).await;
    // While nothing happens, heartbeats keep the stream alive.
    let mut first = streams.remove(0);
    let mut saw_heartbeat = false;
    let mut seen_first = Vec::new();
    while !saw_heartbeat {
        let e = first.next().await.unwrap().unwrap().event.unwrap();
        saw_heartbeat = matches!(e.kind, Some(pb::retract_event::Kind::Heartbeat(_)));
        seen_first.push(e);
    }
    hold.release();
    let rest = until_finished(first, |r| r.event).await;
    seen_first.extend(rest);
    let real = |events: &[pb::RetractEvent]| -> Vec<i64> {
        events
            .iter()
            .filter(|e| !matches!(e.kind, Some(pb::retract_event::Kind::Heartbeat(_))))
            .map(|e| e.sequence)
            .collect()
    };
    let reference = real(&seen_first);
    // JobStarted; for each of the three mailboxes searching, deleting, done; JobFinished.
    assert_eq!(reference.len(), 1 + 3 * 3 + 1, "{reference:?}");
    for other in streams {
        let events = until_finished(other, |r| r.event).await;
        assert_eq!(real(&events), reference, "every watcher gets every event");
    }
    w.app.stop().await;
}

async fn each_delete_mode_leaves_the_copies_where_microsoft_does(backend: Backend) {
    let w = crowd(backend, 3, |_| {}).await;
    for (user, mode, folder) in [
        (
            "user0@contoso.com",
            pb::DeleteMode::Soft,
            Folder::RecoverableItemsDeletions,
        ),
        (
            "user1@contoso.com",
            pb::DeleteMode::Hard,
            Folder::RecoverableItemsPurges,
        ),
        (
            "user2@contoso.com",
            pb::DeleteMode::MoveToDeletedItems,
            Folder::DeletedItems,
        ),
    ] {
        let stream = w
            .retract(pb::RetractOptions {
                delete_mode: mode.into(),
                ..options(&[user])
            })
            .await;
        let events = until_finished(stream, |r| r.event).await;
        assert_eq!(
            done(&events)[0].1,
            pb::RecipientOutcome::Deleted,
            "{mode:?}"
        );
        assert!(
            w.sim.messages_in(user, Folder::Inbox).is_empty(),
            "{user}: gone from the inbox"
        );
        assert_eq!(
            w.sim.messages_in(user, folder).len(),
            1,
            "{user}: {mode:?} puts it in {folder:?}"
        );
    }
    // Moving again finds the copy already in Deleted Items.
    let stream = w
        .retract(pb::RetractOptions {
            delete_mode: pb::DeleteMode::MoveToDeletedItems.into(),
            ..options(&["user2@contoso.com"])
        })
        .await;
    let events = until_finished(stream, |r| r.event).await;
    assert_eq!(
        done(&events)[0].1,
        pb::RecipientOutcome::AlreadyDeleted,
        "not moved twice"
    );
    assert_eq!(
        w.sim
            .messages_in("user2@contoso.com", Folder::DeletedItems)
            .len(),
        1
    );
    // Retracting again finds the soft-deleted copy only in Recoverable Items.
    let stream = w.retract(options(&["user0@contoso.com"])).await;
    let events = until_finished(stream, |r| r.event).await;
    assert_eq!(done(&events)[0].1, pb::RecipientOutcome::AlreadyDeleted);
    // HARD after a soft delete: the copy the user could still restore from Recoverable
    // Items is purged too.
    let events = until_finished(
        w.retract(pb::RetractOptions {
            delete_mode: pb::DeleteMode::Hard.into(),
            ..options(&["user0@contoso.com"])
        })
        .await,
        |r| r.event,
    )
    .await;
    assert_eq!(
        (done(&events)[0].1, done(&events)[0].3),
        (pb::RecipientOutcome::Deleted, 1)
    );
    assert!(
        w.sim
            .messages_in("user0@contoso.com", Folder::RecoverableItemsDeletions)
            .is_empty(),
        "nothing left for the user to restore"
    );
    assert_eq!(
        w.sim
            .messages_in("user0@contoso.com", Folder::RecoverableItemsPurges)
            .len(),
        1
    );
    w.app.stop().await;
}

async fn two_replicas_never_run_one_job_at_once(backend: Backend) {
    let w = crowd(backend, 8, |s| s.mailbox_concurrency = 1).await;
    w.sim.set_latency(graph_sim::LatencySettings {
        default: graph_sim::Latency::fixed(30),
        ..Default::default()
    });
    // A second replica on the same database, with its own engine — and a Graph client that
    // reaches nothing, so any mailbox it worked on would fail.
    let store = w.app.store().await;
    let dead_end = {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        format!("http://{}", listener.local_addr().unwrap())
    };
    let settings = retract_server::graph::GraphSettings {
        graph_base_url: dead_end.clone(),
        login_base_url: dead_end,
        credential: retract_server::graph::AppCredential::secret("twin", "twin"),
        refresh_margin: Duration::from_secs(60),
        request_timeout: Duration::from_secs(2),
        retry: retract_server::graph::RetryPolicy {
            max_attempts: 1,
            ..Default::default()
        },
        requests_per_second: 0.0,
    };
    let http = retract_server::graph::http_client(&settings).unwrap();
    let tokens = std::sync::Arc::new(retract_server::graph::AppTokens::new(
        settings.clone(),
        http.clone(),
    ));
    let twin = retract_server::engine::Engine::new(
        store.clone(),
        Some(retract_server::graph::GraphClient::new(
            &settings, http, tokens,
        )),
        retract_server::engine::EngineSettings {
            poll_interval: Duration::from_millis(10),
            lease: Duration::from_secs(30),
            mailboxes_in_flight: 4,
            jobs_in_flight: 4,
            parked_deadline: Duration::from_secs(3600),
            run_budget: 10,
            admin_mailbox_ttl: Duration::from_secs(60),
        },
        std::sync::Arc::new(retract_server::engine::EventHub::default()),
    );
    let mut stream = w.retract(options(&[])).await;
    // Once this replica holds the job, the twin starts trying to claim work every 10 ms.
    let mut events = Vec::new();
    loop {
        let e = stream.next().await.unwrap().unwrap().event.unwrap();
        let working = matches!(e.kind, Some(pb::retract_event::Kind::RecipientUpdate(_)));
        events.push(e);
        if working {
            break;
        }
    }
    let stop = tokio_util::sync::CancellationToken::new();
    let twin_task = tokio::spawn(twin.run(stop.clone()));
    events.extend(until_finished(stream, |r| r.event).await);
    stop.cancel();
    twin_task.await.unwrap();
    // The twin has no Graph client: had it claimed the job, the job would have FAILED.
    assert_eq!(
        finished(&events).state(),
        pb::JobState::Succeeded,
        "only one replica ran it"
    );
    let rows = done(&events);
    assert_eq!(rows.len(), 8);
    let deletes = w
        .sim
        .graph_requests()
        .iter()
        .filter(|r| r.method == "DELETE")
        .count();
    assert_eq!(deletes, 8, "each copy deleted once");
    store.close().await.ok();
    w.app.stop().await;
}

async fn a_call_stuck_on_microsoft_is_cut_at_the_request_timeout(backend: Backend) {
    let w = crowd(backend, 1, |s| s.request_timeout_ms = 500).await;
    // Microsoft stalls: the administrator-mailbox check inside StartRetract waits on it.
    let hold = w.sim.hold_graph_requests();
    let started = std::time::Instant::now();
    let stuck = w
        .admin()
        .retract_service()
        .start_retract(pb::StartRetractRequest {
            tenant_id: "acme".into(),
            options: Some(options(&[])),
            request_id: request_id(),
        })
        .await
        .expect_err("the server gives up on the call");
    assert_eq!(stuck.code(), Code::Cancelled, "{stuck:?}");
    assert!(
        started.elapsed() < Duration::from_secs(10),
        "cut by the server, not by the test"
    );
    hold.release();
    let health = tonic_health::pb::health_client::HealthClient::new(w.app.anonymous().channel())
        .check(tonic_health::pb::HealthCheckRequest::default())
        .await;
    assert!(health.is_ok(), "the server keeps serving");
    w.app.stop().await;
}

async fn a_mailbox_costs_two_graph_requests_and_an_alias_is_looked_up_once(backend: Backend) {
    let w = world(backend).await;
    let events = until_finished(
        w.retract(options(&["bob@contoso.com", "d.vader@contoso.com"]))
            .await,
        |r| r.event,
    )
    .await;
    let rows = done(&events);
    assert!(
        rows.iter().all(|r| r.1 == pb::RecipientOutcome::Deleted),
        "{rows:?}"
    );
    let requests = w.sim.graph_requests();
    let touching = |address: &str| -> Vec<String> {
        let encoded = address.replace('@', "%40");
        requests
            .iter()
            .filter(|r| {
                r.path.contains(&encoded)
                    || r.path.contains(address)
                    || r.mailbox.as_deref() == Some(address)
            })
            .map(|r| format!("{} {}", r.method, r.path))
            .collect()
    };
    // Bob is searched by his address directly, then his copy deleted: no directory read.
    assert_eq!(
        touching("bob@contoso.com").len(),
        2,
        "{:?}",
        touching("bob@contoso.com")
    );
    // An alias is unknown to /users/{address}: one directory lookup finds Dave's mailbox.
    let alias = touching("d.vader@contoso.com");
    assert_eq!(
        alias.len(),
        1,
        "the search by the alias itself, answered 404: {alias:?}"
    );
    let lookups = requests
        .iter()
        .filter(|r| r.path.ends_with("/users"))
        .count();
    assert_eq!(lookups, 1, "one lookup by mail/proxyAddresses");
    w.app.stop().await;
}

/// The database goes away just after Graph purged Bob's copy, before the mailbox's outcome is
/// written; the job resumes when the database is back. Purged copies are not findable any
/// more, yet the job says DELETED (it recorded the copy before purging it), not NOT_FOUND.
async fn a_hard_job_interrupted_after_its_purge_reports_the_copy_deleted(backend: Backend) {
    use retract_server::domain::{EmailAddress, JobId};
    let w = crowd(backend, 1, |s| s.job_lease_ms = 1_000).await;
    let user = "user0@contoso.com";
    w.sim.set_latency(graph_sim::LatencySettings {
        per_endpoint: [(
            graph_sim::Endpoint::PermanentDelete,
            graph_sim::Latency::fixed(1_500),
        )]
        .into_iter()
        .collect(),
        ..Default::default()
    });
    let job = w
        .start(pb::RetractOptions {
            delete_mode: pb::DeleteMode::Hard.into(),
            ..options(&[user])
        })
        .await;
    let store = w.app.store().await;
    let (job_id, mailbox) = (
        JobId::parse(&job.job_id).unwrap(),
        EmailAddress::parse(user).unwrap(),
    );
    tokio::time::timeout(Duration::from_secs(10), async {
        while store.recorded_removals(&job_id, &mailbox, 0).await.unwrap() == 0 {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    })
    .await
    .expect("the copy is recorded before its purge");
    let outage = w.app.database_outage().await;
    tokio::time::timeout(Duration::from_secs(10), async {
        while w
            .sim
            .messages_in(user, Folder::RecoverableItemsPurges)
            .is_empty()
        {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    })
    .await
    .expect("Graph purges the copy");
    tokio::time::sleep(Duration::from_millis(500)).await;
    outage.end().await;
    let events = until_finished(w.watch(job.job_id.clone(), 0).await, |r| r.event).await;
    let rows = done(&events);
    assert_eq!(rows.len(), 1, "{rows:?}");
    assert_eq!(
        (rows[0].1, rows[0].2, rows[0].3),
        (pb::RecipientOutcome::Deleted, 1, 1),
        "{rows:?}"
    );
    let purges = w
        .sim
        .graph_requests()
        .iter()
        .filter(|r| r.path.ends_with("/permanentDelete"))
        .count();
    assert_eq!(purges, 1, "purged once");
    w.app.stop().await;
}

/// One job at a time per replica made a one-mailbox retract wait for a 29-mailbox one;
/// now it runs beside it and ends first.
async fn a_small_retract_runs_beside_a_huge_one(backend: Backend) {
    let w = crowd(backend, 30, |s| s.mailbox_concurrency = 1).await;
    w.sim.set_latency(graph_sim::LatencySettings {
        default: graph_sim::Latency::fixed(100),
        ..Default::default()
    });
    let everyone: Vec<String> = (1..30).map(|i| format!("user{i}@contoso.com")).collect();
    let everyone: Vec<&str> = everyone.iter().map(String::as_str).collect();
    let huge = w.start(options(&everyone)).await;
    let mut progress = w.watch(huge.job_id.clone(), 0).await;
    loop {
        let e = progress.next().await.unwrap().unwrap().event.unwrap();
        if matches!(e.kind, Some(pb::retract_event::Kind::RecipientUpdate(_))) {
            break;
        }
    }
    let small = until_finished(w.retract(options(&["user0@contoso.com"])).await, |r| {
        r.event
    })
    .await;
    let rows = done(&small);
    assert_eq!(rows.len(), 1);
    assert_eq!(rows[0].1, pb::RecipientOutcome::Deleted);
    assert_eq!(
        w.job(&huge.job_id).await.state(),
        pb::JobState::Running,
        "the small retract ended while the huge one still runs"
    );
    until_finished(progress, |r| r.event).await;
    w.app.stop().await;
}

/// Straight at the store: with tenant `acme`'s job running here, a newer job of `globex` is
/// claimed before `acme`'s older queued one.
async fn a_tenant_with_nothing_running_here_is_claimed_before_a_busy_one(backend: Backend) {
    use retract_server::domain::TenantId;
    let app = crate::app::TestApp::spawn(backend).await;
    let store = app.store().await;
    let (acme, globex) = (
        TenantId::parse("acme").unwrap(),
        TenantId::parse("globex").unwrap(),
    );
    app.create_tenant("acme").await;
    app.create_tenant("globex").await;
    let mut ids = Vec::new();
    for tenant in [&acme, &acme, &globex] {
        let (new, audit) = crate::scenarios::stored_job(tenant, &["alice@contoso.com"], false);
        ids.push(new.id.clone());
        store.create_job(tenant, new, audit).await.unwrap();
    }
    // The oldest first — and, once its lease has lapsed while this worker still runs it (a
    // paused process), never claimed a second time by the same worker.
    let first = store
        .claim_job("worker", Duration::from_millis(1), &[], &[])
        .await
        .unwrap()
        .unwrap();
    assert_eq!(first, (ids[0].clone(), acme.clone()), "the oldest first");
    tokio::time::sleep(Duration::from_millis(20)).await;
    let lease = Duration::from_secs(60);
    let again = store
        .claim_job(
            "worker",
            lease,
            std::slice::from_ref(&acme),
            std::slice::from_ref(&ids[0]),
        )
        .await
        .unwrap()
        .unwrap();
    assert_ne!(again.0, ids[0], "not the job it runs, lapsed lease or not");
    store.release_lease(&again.0, "worker").await.unwrap();
    store.renew_lease(&ids[0], "worker", lease).await.unwrap();
    let second = store
        .claim_job("worker", lease, std::slice::from_ref(&acme), &[])
        .await
        .unwrap()
        .unwrap();
    assert_eq!(
        second,
        (ids[2].clone(), globex.clone()),
        "globex runs nothing here: its newer job goes before acme's older one"
    );
    let third = store
        .claim_job("worker", lease, &[acme.clone(), globex], &[])
        .await
        .unwrap()
        .unwrap();
    assert_eq!(third.0, ids[1], "then acme's second");
    assert!(
        store
            .claim_job("worker", lease, &[], &[])
            .await
            .unwrap()
            .is_none()
    );
    app.stop().await;
}

/// Dave's mailbox is reached by an alias, and Microsoft throttles it for long once found: it
/// is parked and visited again. The second visit goes straight to the mailbox the directory
/// named the first time: one directory lookup for the job, not one per visit.
async fn an_alias_met_again_in_a_job_is_not_looked_up_again(backend: Backend) {
    let sim = GraphSim::builder()
        .app(App::new(CLIENT_ID, CLIENT_SECRET))
        .tenant(contoso())
        .sign_in(SignIn::approve_as("admin@contoso.com"))
        .mail(Mail::new(PHISH, "ceo@evil.example").to(["dave@contoso.com"]))
        .start()
        .await
        .expect("graph-sim starts");
    let app = granted_app(backend, &sim, vec!["d.vader@contoso.com".to_owned()], |s| {
        s.graph_max_retry_after_ms = 1_000;
    })
    .await;
    let w = World { sim, app };
    w.sim
        .throttle_mailbox("dave@contoso.com", Duration::from_secs(2), 2);
    let events = until_finished(w.retract(options(&["d.vader@contoso.com"])).await, |r| {
        r.event
    })
    .await;
    let rows = done(&events);
    assert_eq!(rows.len(), 1, "{rows:?}");
    assert_eq!(rows[0].1, pb::RecipientOutcome::Deleted, "{rows:?}");
    assert!(
        w.sim
            .messages_in("dave@contoso.com", Folder::Inbox)
            .is_empty()
    );
    let requests = w.sim.graph_requests();
    let throttled = requests.iter().filter(|r| r.status == Some(429)).count();
    assert!(
        throttled >= 1,
        "Dave's mailbox was throttled, so visited twice"
    );
    let lookups: Vec<_> = requests
        .iter()
        .filter(|r| r.path.ends_with("/users"))
        .map(|r| r.query.clone())
        .collect();
    assert_eq!(lookups.len(), 1, "one lookup of the alias: {lookups:?}");
    // Nor is the alias searched again (Graph would answer 404 again).
    let by_alias = requests
        .iter()
        .filter(|r| r.path.contains("d.vader"))
        .count();
    assert_eq!(by_alias, 1, "the alias itself is searched once");
    w.app.stop().await;
}
