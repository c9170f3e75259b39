//! A job as a UI and an auditor read it: the per-recipient table with the sequence it
//! reflects, who cancelled and why, the message it retracted and why, the job as it started,
//! watches that start beyond the end, the Retract tab's answers before the click, and typed
//! audit entries.

use std::time::Duration;

use futures::StreamExt as _;
use retract_client::{DevToken, pb};
use tonic::Code;

use crate::{
    app::action,
    db::Backend,
    on_both_backends,
    retract::{options, until_finished, world},
    scenarios::{PHISH, World, crowd},
    status::expect_failure,
};

on_both_backends!(
    the_per_recipient_table_lists_every_target_with_the_sequence_it_reflects,
    a_cancelled_job_says_who_cancelled_it_and_why_and_the_audit_trail_too,
    a_job_keeps_the_message_it_retracted_and_the_reason_it_was_given,
    a_watch_from_beyond_the_last_event_is_out_of_range,
    jobs_are_listed_by_several_states_and_by_who_asked,
    the_retract_tab_says_before_the_click_who_can_retract_and_who_was_retracted,
    a_release_to_a_retracted_recipient_shows_on_the_tab_at_once,
);

async fn the_per_recipient_table_lists_every_target_with_the_sequence_it_reflects(
    backend: Backend,
) {
    let w = world(backend).await;
    let job = w
        .start(options(&[
            "alice@contoso.com",
            "bob@contoso.com",
            "carol@contoso.com",
            "locked@contoso.com",
        ]))
        .await;
    let events = until_finished(w.watch(job.job_id.clone(), 0).await, |r| r.event).await;
    let last = events.last().unwrap().sequence;
    let list = |outcomes: Vec<pb::RecipientOutcome>, page_token: String| {
        let (client, job_id) = (w.admin(), job.job_id.clone());
        async move {
            client
                .retract_service()
                .list_retract_targets(pb::ListRetractTargetsRequest {
                    tenant_id: "acme".into(),
                    job_id,
                    outcomes: outcomes.into_iter().map(Into::into).collect(),
                    page_size: 2,
                    page_token,
                    ..Default::default()
                })
                .await
        }
    };
    // Two pages of two, by mailbox, each saying which sequence it reflects.
    let first = list(Vec::new(), String::new()).await.unwrap().into_inner();
    assert_eq!(
        first.as_of_sequence, last,
        "the job had finished: the page is final"
    );
    let second = list(Vec::new(), first.next_page_token.clone())
        .await
        .unwrap()
        .into_inner();
    assert!(second.next_page_token.is_empty());
    let rows: Vec<(String, pb::RecipientOutcome, i32)> = first
        .targets
        .iter()
        .chain(&second.targets)
        .map(|t| (t.mailbox.clone(), t.outcome(), t.copies_deleted_count))
        .collect();
    assert_eq!(
        rows,
        [
            ("alice@contoso.com".into(), pb::RecipientOutcome::Deleted, 2),
            ("bob@contoso.com".into(), pb::RecipientOutcome::Deleted, 1),
            (
                "carol@contoso.com".into(),
                pb::RecipientOutcome::NotFound,
                0
            ),
            ("locked@contoso.com".into(), pb::RecipientOutcome::Failed, 0),
        ]
    );
    // Filtered to the failures: the table a UI shows under "needs attention".
    let failed = list(vec![pb::RecipientOutcome::Failed], String::new())
        .await
        .unwrap()
        .into_inner();
    assert_eq!(failed.targets.len(), 1);
    assert_eq!(failed.targets[0].graph_error_code, "ErrorAccessDenied");
    // Nothing is left unfinished.
    let unfinished = list(vec![pb::RecipientOutcome::Unspecified], String::new())
        .await
        .unwrap()
        .into_inner();
    assert!(unfinished.targets.is_empty());
    // A page token belongs to its filters.
    let refused = expect_failure(
        list(
            vec![pb::RecipientOutcome::Failed],
            first.next_page_token.clone(),
        )
        .await,
    );
    assert_eq!(
        (refused.code, refused.fields),
        (Code::InvalidArgument, vec!["page_token".to_owned()])
    );
    w.app.stop().await;
}

async fn a_cancelled_job_says_who_cancelled_it_and_why_and_the_audit_trail_too(backend: Backend) {
    let w = crowd(backend, 12, |s| s.mailbox_concurrency = 1).await;
    w.sim.set_latency(graph_sim::LatencySettings {
        default: graph_sim::Latency::fixed(100),
        ..Default::default()
    });
    let job = w.start(options(&[])).await;
    assert!(job.cancellation.is_none());
    let cancelled = w
        .admin()
        .retract_service()
        .cancel_retract_job(pb::CancelRetractJobRequest {
            tenant_id: "acme".into(),
            job_id: job.job_id.clone(),
            reason: "wrong message".into(),
        })
        .await
        .unwrap()
        .into_inner()
        .job
        .unwrap();
    let cancellation = cancelled
        .cancellation
        .clone()
        .expect("the job says it is cancelling");
    assert_eq!(cancellation.requested_by, "admin@contoso.com");
    assert_eq!(cancellation.reason, "wrong message");
    until_finished(w.watch(job.job_id.clone(), 0).await, |r| r.event).await;
    let finished = w.job(&job.job_id).await;
    assert_eq!(finished.state(), pb::JobState::Cancelled);
    assert_eq!(finished.cancellation.unwrap().reason, "wrong message");

    let audit = w.app.audit_events("acme").await;
    let asked = audit
        .iter()
        .find(|e| action(e) == "retract_cancel_requested")
        .expect("the cancellation is audited on its own");
    assert_eq!(asked.actor, "admin@contoso.com");
    assert_eq!(asked.target, job.job_id);
    let Some(pb::audit_event::Details::RetractCancelRequested(details)) = &asked.details else {
        panic!("typed details: {:?}", asked.details)
    };
    assert_eq!(details.reason, "wrong message");
    let ended = audit
        .iter()
        .find(|e| action(e) == "retract_cancelled")
        .expect("the end is audited");
    let dispatched = audit
        .iter()
        .find(|e| action(e) == "retract_dispatched")
        .unwrap();
    assert_eq!(
        ended.correlation_id, dispatched.correlation_id,
        "the end belongs to the call that dispatched the job"
    );
    // Cancelling a finished job is refused with the reason and the state.
    let again = expect_failure(
        w.admin()
            .retract_service()
            .cancel_retract_job(pb::CancelRetractJobRequest {
                tenant_id: "acme".into(),
                job_id: job.job_id.clone(),
                reason: String::new(),
            })
            .await,
    );
    assert_eq!(
        (again.code, again.reason.as_str()),
        (Code::FailedPrecondition, "JOB_FINISHED")
    );
    w.app.stop().await;
}

async fn a_job_keeps_the_message_it_retracted_and_the_reason_it_was_given(backend: Backend) {
    let w = crowd(backend, 2, |_| {}).await;
    let too_long = expect_failure(
        w.try_start(pb::RetractOptions {
            reason: "x".repeat(501),
            ..options(&[])
        })
        .await,
    );
    assert_eq!(too_long.fields, ["options.reason"]);
    let job = w
        .start(pb::RetractOptions {
            reason: "phishing campaign #42".into(),
            ..options(&[])
        })
        .await;
    assert_eq!(
        job.options.as_ref().unwrap().reason,
        "phishing campaign #42"
    );
    let message = job.message.clone().expect("a snapshot of the message");
    assert_eq!(message.sender, "ceo@evil.example");
    assert!(!message.subject.is_empty());
    assert_eq!(job.kind(), pb::JobKind::Retract);
    let events = until_finished(w.watch(job.job_id.clone(), 0).await, |r| r.event).await;
    let Some(pb::retract_event::Kind::JobFinished(end)) = &events.last().unwrap().kind else {
        panic!("the last event is JobFinished")
    };
    assert_eq!(end.depths.len(), 1, "one depth without conversations");
    assert_eq!(end.depths[0].mailbox_count, 2);
    assert_eq!(end.depths[0].copies_retracted_count, 2);
    assert!(end.failure.is_none());

    let audit = w.app.audit_events("acme").await;
    let dispatched = audit
        .iter()
        .find(|e| action(e) == "retract_dispatched")
        .unwrap();
    let Some(pb::audit_event::Details::RetractDispatched(details)) = &dispatched.details else {
        panic!("typed details")
    };
    assert_eq!(
        details.options.as_ref().unwrap().reason,
        "phishing campaign #42",
        "the audit shows why"
    );
    assert_eq!(details.mailbox_count, 2);
    assert_eq!(details.job_id, job.job_id);
    w.app.stop().await;
}

async fn a_watch_from_beyond_the_last_event_is_out_of_range(backend: Backend) {
    let w = crowd(backend, 2, |_| {}).await;
    let job = w.start(options(&[])).await;
    let events = until_finished(w.watch(job.job_id.clone(), 0).await, |r| r.event).await;
    let last = events.last().unwrap().sequence;
    // JobStarted carries the job as it started, not as of the watch.
    let Some(pb::retract_event::Kind::JobStarted(started)) = &events[0].kind else {
        panic!("JobStarted comes first")
    };
    let at_start = started.job.clone().unwrap();
    assert_eq!(at_start.state(), pb::JobState::Queued);
    assert_eq!(at_start.counts.unwrap().done_count, 0);
    assert!(at_start.finish_time.is_none());
    assert_eq!(at_start.last_sequence, 1);

    let beyond = expect_failure(
        w.admin()
            .retract_service()
            .watch_retract(pb::WatchRetractRequest {
                tenant_id: "acme".into(),
                job_id: job.job_id.clone(),
                after_sequence: last + 1,
            })
            .await,
    );
    assert_eq!(
        (beyond.code, beyond.reason.as_str()),
        (Code::OutOfRange, "SEQUENCE_OUT_OF_RANGE")
    );
    // From the very end of a finished job: nothing more, the stream ends at once.
    let mut at_end = w.watch(job.job_id.clone(), last).await;
    let next = tokio::time::timeout(Duration::from_secs(5), at_end.next())
        .await
        .expect("the stream ends at once");
    assert!(next.is_none(), "{next:?}");
    // From inside its range: the rest, ending with JobFinished.
    let rest = until_finished(w.watch(job.job_id.clone(), last - 1).await, |r| r.event).await;
    assert_eq!(rest.len(), 1);
    assert!(matches!(
        rest[0].kind,
        Some(pb::retract_event::Kind::JobFinished(_))
    ));
    w.app.stop().await;
}

async fn jobs_are_listed_by_several_states_and_by_who_asked(backend: Backend) {
    let w = world(backend).await;
    let ok = w.start(options(&["bob@contoso.com"])).await;
    let partial = w.start(options(&["locked@contoso.com"])).await;
    for job in [&ok, &partial] {
        until_finished(w.watch(job.job_id.clone(), 0).await, |r| r.event).await;
    }
    let soc = w.app.with_token(
        &DevToken::service("soc-automation")
            .permission("retract.message")
            .permission("retract.read"),
    );
    let by_soc = soc
        .retract_service()
        .start_retract(pb::StartRetractRequest {
            tenant_id: "acme".into(),
            options: Some(options(&["alice@contoso.com"])),
            request_id: uuid::Uuid::new_v4().to_string(),
        })
        .await
        .unwrap()
        .into_inner()
        .job
        .unwrap();
    until_finished(w.watch(by_soc.job_id.clone(), 0).await, |r| r.event).await;
    let list = |states: Vec<pb::JobState>, requested_by: &str| {
        let (client, requested_by) = (w.admin(), requested_by.to_owned());
        async move {
            let mut ids: Vec<String> = client
                .retract_service()
                .list_retract_jobs(pb::ListRetractJobsRequest {
                    tenant_id: "acme".into(),
                    states: states.into_iter().map(Into::into).collect(),
                    requested_by,
                    ..Default::default()
                })
                .await
                .unwrap()
                .into_inner()
                .jobs
                .into_iter()
                .map(|j| j.job_id)
                .collect();
            ids.sort();
            ids
        }
    };
    let sorted = |mut ids: Vec<String>| {
        ids.sort();
        ids
    };
    assert_eq!(
        list(
            vec![pb::JobState::Succeeded, pb::JobState::CompletedWithErrors],
            ""
        )
        .await,
        sorted(vec![
            ok.job_id.clone(),
            partial.job_id.clone(),
            by_soc.job_id.clone()
        ])
    );
    assert_eq!(
        list(vec![pb::JobState::CompletedWithErrors], "").await,
        std::slice::from_ref(&partial.job_id)
    );
    assert!(
        list(vec![pb::JobState::Queued, pb::JobState::Running], "")
            .await
            .is_empty()
    );
    assert_eq!(
        list(Vec::new(), "soc-automation").await,
        std::slice::from_ref(&by_soc.job_id)
    );
    assert_eq!(
        list(Vec::new(), "admin@contoso.com").await,
        sorted(vec![ok.job_id.clone(), partial.job_id.clone()])
    );
    let refused = expect_failure(
        w.admin()
            .retract_service()
            .list_retract_jobs(pb::ListRetractJobsRequest {
                tenant_id: "acme".into(),
                states: vec![pb::JobState::Unspecified.into()],
                ..Default::default()
            })
            .await,
    );
    assert_eq!(refused.fields, ["states"]);
    w.app.stop().await;
}

async fn the_retract_tab_says_before_the_click_who_can_retract_and_who_was_retracted(
    backend: Backend,
) {
    let w = world(backend).await;
    let before = tab(w.admin()).await;
    let can = before.caller_can_retract.clone().unwrap();
    assert!(can.allowed, "{can:?}");
    assert_eq!(before.max_conversation_depth, 5);
    assert!(before.recipients.iter().all(|r| r.last_retract.is_none()));

    let consultant = tab(w.app.admin("consultant@contoso.com", "acme")).await;
    let cannot = consultant.caller_can_retract.unwrap();
    assert!(!cannot.allowed);
    assert_eq!(cannot.code, "ADMIN_MAILBOX_NOT_FOUND", "{cannot:?}");
    let reader = tab(w
        .app
        .with_token(&DevToken::admin("analyst@contoso.com", "acme").permission("retract.read")))
    .await;
    assert_eq!(
        reader.caller_can_retract.unwrap().code,
        "MISSING_PERMISSION"
    );

    let job = w.start(options(&["bob@contoso.com"])).await;
    until_finished(w.watch(job.job_id.clone(), 0).await, |r| r.event).await;
    // Nothing about the delivery changed, the jobs of its message did: the tab says so.
    let retracted = tab(w.admin()).await;
    let bob_then = retracted
        .recipients
        .iter()
        .find(|r| r.address == "bob@contoso.com")
        .expect("bob is on the tab");
    assert_eq!(
        bob_then.last_retract.as_ref().map(|l| l.job_id.as_str()),
        Some(job.job_id.as_str())
    );
    // The quarantine releases the message again: to Bob (a later delivery) and to a
    // newcomer.
    released_again(&w, &["bob@contoso.com", "newbie@contoso.com"]).await;
    let after = tab(w.admin()).await;
    let row = |address: &str| {
        after
            .recipients
            .iter()
            .find(|r| r.address == address)
            .unwrap_or_else(|| panic!("{address} is on the tab"))
            .clone()
    };
    let bob = row("bob@contoso.com");
    let last = bob.last_retract.clone().expect("bob was retracted");
    assert_eq!(last.job_id, job.job_id);
    assert_eq!(last.outcome(), pb::RecipientOutcome::Deleted);
    assert!(
        bob.delivered_after_last_retract,
        "the re-release reached Bob after the retract"
    );
    let alice = row("alice@contoso.com");
    assert!(alice.last_retract.is_none(), "Alice was not in that job");
    let newbie = row("newbie@contoso.com");
    assert!(newbie.last_retract.is_none() && !newbie.delivered_after_last_retract);

    // A page of two recipients at a time covers them all, in order.
    let mut seen = Vec::new();
    let mut token = String::new();
    loop {
        let page = w
            .admin()
            .retract_service()
            .get_retract_options(pb::GetRetractOptionsRequest {
                tenant_id: "acme".into(),
                internet_message_id: PHISH.into(),
                page_size: 2,
                page_token: token,
            })
            .await
            .unwrap()
            .into_inner();
        assert!(page.recipients.len() <= 2);
        seen.extend(page.recipients.into_iter().map(|r| r.address));
        if page.next_page_token.is_empty() {
            break;
        }
        token = page.next_page_token;
    }
    let all: Vec<String> = after.recipients.iter().map(|r| r.address.clone()).collect();
    assert_eq!(seen, all);
    w.app.stop().await;
}

async fn a_release_to_a_retracted_recipient_shows_on_the_tab_at_once(backend: Backend) {
    let w = world(backend).await;
    let bob = |w: &World| {
        let admin = w.admin();
        async move {
            tab(admin)
                .await
                .recipients
                .into_iter()
                .find(|r| r.address == "bob@contoso.com")
                .expect("bob is on the tab")
        }
    };
    assert!(bob(&w).await.last_retract.is_none());
    let job = w.start(options(&["bob@contoso.com"])).await;
    until_finished(w.watch(job.job_id.clone(), 0).await, |r| r.event).await;
    let retracted = bob(&w).await;
    assert_eq!(retracted.last_retract.unwrap().job_id, job.job_id);
    assert!(!retracted.delivered_after_last_retract);
    // The quarantine releases it to Bob alone again: nobody new, only his latest time.
    let recorded = released_again(&w, &["bob@contoso.com"]).await;
    assert_eq!(recorded.outcome(), pb::RecordOutcome::Unchanged);
    assert!(
        bob(&w).await.delivered_after_last_retract,
        "the tab sees the release at once"
    );
    w.app.stop().await;
}

/// The Retract tab of the phish, as `client` sees it.
async fn tab(client: retract_client::Client) -> pb::GetRetractOptionsResponse {
    client
        .retract_service()
        .get_retract_options(pb::GetRetractOptionsRequest {
            tenant_id: "acme".into(),
            internet_message_id: PHISH.into(),
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner()
}

/// The quarantine releases the phish again, a minute later, to `recipients`.
async fn released_again(w: &World, recipients: &[&str]) -> pb::RecordDeliveryResponse {
    w.app
        .service()
        .retract_service()
        .record_delivery(pb::RecordDeliveryRequest {
            tenant_id: "acme".into(),
            delivery: Some(pb::Delivery {
                internet_message_id: PHISH.into(),
                sender: "ceo@evil.example".into(),
                subject: "Urgent".into(),
                delivery_time: Some(prost_types::Timestamp {
                    seconds: chrono::Utc::now().timestamp() + 60,
                    nanos: 0,
                }),
                recipients: recipients.iter().map(|r| (*r).to_owned()).collect(),
                ..Default::default()
            }),
        })
        .await
        .unwrap()
        .into_inner()
}
