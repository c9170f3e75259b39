//! Microsoft throttling one mailbox for long: the mailbox waits aside (parked) without
//! holding a slot while the rest of the job finishes, is visited again when Microsoft's wait
//! is over, and ends FAILED with Microsoft's answer only past the job's parked deadline.
//! Microsoft throttling the app as a whole (its global limit): every request waits out the
//! Retry-After and the app slows down, instead of hammering Graph, and every copy goes.

use std::time::{Duration, Instant};

use futures::StreamExt as _;

use retract_client::pb;

use crate::{
    db::Backend,
    on_both_backends,
    retract::{options, until_finished},
    scenarios::crowd,
};

on_both_backends!(
    a_mailbox_throttled_for_long_waits_aside_while_the_rest_finishes,
    a_mailbox_throttled_past_the_parked_deadline_fails_with_microsofts_answer,
    a_retract_over_the_apps_global_limit_slows_down_and_removes_every_copy,
    a_cancel_does_not_wait_for_a_parked_mailbox,
);

/// Each mailbox's DONE update, in the order they were streamed.
fn done_in_order(events: &[pb::RetractEvent]) -> Vec<pb::RecipientUpdate> {
    events
        .iter()
        .filter_map(|e| match &e.kind {
            Some(pb::retract_event::Kind::RecipientUpdate(u))
                if u.phase() == pb::RecipientPhase::Done =>
            {
                Some(u.clone())
            }
            _ => None,
        })
        .collect()
}

fn finished(events: &[pb::RetractEvent]) -> pb::JobFinished {
    match events.last().and_then(|e| e.kind.clone()) {
        Some(pb::retract_event::Kind::JobFinished(f)) => f,
        other => panic!("last event is not JobFinished: {other:?}"),
    }
}

async fn a_mailbox_throttled_for_long_waits_aside_while_the_rest_finishes(backend: Backend) {
    // A request waits in place for at most 1 s of Retry-After; Microsoft asks 3 s for user0.
    let w = crowd(backend, 6, |s| {
        s.graph_max_retry_after_ms = 1_000;
        s.mailbox_concurrency = 1;
    })
    .await;
    w.sim
        .throttle_mailbox("user0@contoso.com", Duration::from_secs(3), 3);
    let started = Instant::now();
    let events = until_finished(w.retract(options(&[])).await, |r| r.event).await;
    let elapsed = started.elapsed();

    let done = done_in_order(&events);
    assert_eq!(done.len(), 6, "{done:?}");
    assert!(
        done.iter()
            .all(|u| u.outcome() == pb::RecipientOutcome::Deleted),
        "every mailbox ends DELETED, the throttled one too: {done:?}"
    );
    // One slot, and user0 is visited first: had it held the slot for its 3 s, it would end
    // first; parked, the other five finish before it.
    assert_eq!(
        done.last().map(|u| u.mailbox.as_str()),
        Some("user0@contoso.com"),
        "the parked mailbox ends last, after the others: {done:?}"
    );
    assert_eq!(finished(&events).state(), pb::JobState::Succeeded);
    assert!(
        elapsed >= Duration::from_secs(3),
        "the job waited for the parked mailbox instead of ending: {elapsed:?}"
    );
    // Parked means left alone: after its first 429, user0 is asked again only once the
    // Retry-After has passed.
    let to_user0: Vec<graph_sim::RequestRecord> = w
        .sim
        .graph_requests()
        .into_iter()
        .filter(|r| r.mailbox.as_deref() == Some("user0@contoso.com"))
        .collect();
    let first_429 = to_user0
        .iter()
        .position(|r| r.status == Some(429))
        .expect("Microsoft throttled user0");
    let next = to_user0
        .get(first_429 + 1)
        .expect("user0 was visited again");
    assert!(
        next.started.duration_since(to_user0[first_429].finished) >= Duration::from_secs(3),
        "user0 was asked again before its Retry-After: {:?}",
        next.started.duration_since(to_user0[first_429].finished)
    );
    assert!(
        to_user0.iter().filter(|r| r.status == Some(429)).count() <= 2,
        "a parked mailbox is not hammered: {:?}",
        to_user0.iter().map(|r| r.status).collect::<Vec<_>>()
    );
    w.app.stop().await;
}

async fn a_mailbox_throttled_past_the_parked_deadline_fails_with_microsofts_answer(
    backend: Backend,
) {
    let w = crowd(backend, 3, |s| {
        s.graph_max_retry_after_ms = 1_000;
        s.parked_deadline_ms = 2_000;
    })
    .await;
    // Microsoft asks an hour: waiting for it would pass the 2 s deadline.
    w.sim
        .throttle_mailbox("user1@contoso.com", Duration::from_secs(3_600), 3_600);
    let started = Instant::now();
    let events = until_finished(w.retract(options(&[])).await, |r| r.event).await;
    assert!(
        started.elapsed() < Duration::from_secs(20),
        "the job did not wait for an hour's Retry-After: {:?}",
        started.elapsed()
    );
    let done = done_in_order(&events);
    let user1 = done
        .iter()
        .find(|u| u.mailbox == "user1@contoso.com")
        .expect("user1 ends");
    assert_eq!(user1.outcome(), pb::RecipientOutcome::Failed, "{user1:?}");
    assert!(
        user1.detail.contains("parked deadline") && user1.detail.contains("3600 s"),
        "the detail says why it was given up: {:?}",
        user1.detail
    );
    assert!(
        !user1.graph_error_code.is_empty(),
        "Microsoft's code stands: {user1:?}"
    );
    assert!(
        done.iter()
            .filter(|u| u.mailbox != "user1@contoso.com")
            .all(|u| u.outcome() == pb::RecipientOutcome::Deleted),
        "{done:?}"
    );
    assert_eq!(finished(&events).state(), pb::JobState::CompletedWithErrors);
    w.app.stop().await;
}

async fn a_retract_over_the_apps_global_limit_slows_down_and_removes_every_copy(backend: Backend) {
    const MAILBOXES: usize = 40;
    // We allow ourselves 200 requests a second; Microsoft allows the app 30 a second in all
    // (its global limit, scaled down), and throttles it for 1 s, again and again while it
    // keeps asking.
    let w = crowd(backend, MAILBOXES, |s| s.graph_requests_per_second = 200.0).await;
    w.sim.set_latency(graph_sim::LatencySettings {
        default: graph_sim::Latency::fixed(10),
        ..Default::default()
    });
    w.sim.set_limits(graph_sim::Limits {
        app_requests_per_window: 30,
        app_window_ms: 1_000,
        retry_after_secs: 1,
        ..Default::default()
    });
    let before = w.sim.graph_requests().len();
    let events = until_finished(w.retract(options(&[])).await, |r| r.event).await;

    let done = done_in_order(&events);
    assert_eq!(done.len(), MAILBOXES, "{done:?}");
    assert!(
        done.iter()
            .all(|u| u.outcome() == pb::RecipientOutcome::Deleted),
        "every mailbox ends DELETED: {done:?}"
    );
    assert_eq!(finished(&events).state(), pb::JobState::Succeeded);
    for i in 0..MAILBOXES {
        let user = format!("user{i}@contoso.com");
        assert!(
            w.sim
                .messages_in(&user, graph_sim::Folder::Inbox)
                .is_empty(),
            "{user}: the copy is gone"
        );
    }

    let sent: Vec<graph_sim::RequestRecord> = w.sim.graph_requests().split_off(before);
    let app_wide: Vec<&graph_sim::RequestRecord> =
        sent.iter().filter(|r| r.status == Some(429)).collect();
    assert!(
        !app_wide.is_empty(),
        "the retract went over the app's limit (else this tests nothing)"
    );
    assert!(
        w.sim
            .throttle_events()
            .iter()
            .all(|t| t.reason == graph_sim::ThrottleReason::AppRate),
        "only the app's global limit throttled"
    );
    // Not hammering: once Microsoft said "the app, 1 s", nothing is sent until that second
    // is over (requests already on their way when the 429 came back aside: a few ms).
    for throttled in &app_wide {
        let early: Vec<Duration> = sent
            .iter()
            .filter(|r| r.started > throttled.finished)
            .map(|r| r.started.duration_since(throttled.finished))
            .filter(|d| *d > Duration::from_millis(100) && *d < Duration::from_secs(1))
            .collect();
        assert!(
            early.is_empty(),
            "requests sent during the app's Retry-After: {early:?} after a 429"
        );
    }
    // Slowing down: after the first Retry-After the app goes at half its pace (100 requests
    // a second, not the 200 it allows itself), and wins it back only as requests succeed.
    let first = app_wide.iter().map(|r| r.finished).min().expect("a 429");
    let mut resumed: Vec<Instant> = sent
        .iter()
        .map(|r| r.started)
        .filter(|at| *at > first + Duration::from_millis(500))
        .collect();
    resumed.sort();
    assert!(
        resumed.len() > 20,
        "{} requests after the first 429",
        resumed.len()
    );
    let twenty = resumed[20].duration_since(resumed[0]);
    assert!(
        twenty >= Duration::from_millis(150),
        "20 requests after the app's Retry-After took {twenty:?}: at 200/s they take 100 ms, at the halved 100/s 200 ms"
    );
    // A few 429s an episode, not one per request the pace would have sent.
    assert!(
        app_wide.len() <= MAILBOXES / 2,
        "{} of {} requests throttled",
        app_wide.len(),
        sent.len()
    );
    w.app.stop().await;
}

/// A mailbox parked for ten minutes does not hold a cancelled job: the cancellation wakes it,
/// it ends CANCELLED untouched, and the job ends at once.
async fn a_cancel_does_not_wait_for_a_parked_mailbox(backend: Backend) {
    let w = crowd(backend, 3, |s| s.graph_max_retry_after_ms = 1_000).await;
    w.sim
        .throttle_mailbox("user1@contoso.com", Duration::from_secs(600), 600);
    let job = w.start(options(&[])).await;
    let mut progress = w.watch(job.job_id.clone(), 0).await;
    // The others end; user1 waits aside.
    let mut done = Vec::new();
    while done.len() < 2 {
        let e = progress.next().await.unwrap().unwrap().event.unwrap();
        if let Some(pb::retract_event::Kind::RecipientUpdate(u)) = e.kind
            && u.phase() == pb::RecipientPhase::Done
        {
            done.push(u.mailbox);
        }
    }
    assert!(!done.contains(&"user1@contoso.com".to_owned()), "{done:?}");
    let cancelled = Instant::now();
    w.admin()
        .retract_service()
        .cancel_retract_job(pb::CancelRetractJobRequest {
            tenant_id: "acme".into(),
            job_id: job.job_id.clone(),
            reason: "the message was benign".into(),
        })
        .await
        .unwrap();
    let events = until_finished(progress, |r| r.event).await;
    assert!(
        cancelled.elapsed() < Duration::from_secs(15),
        "the cancelled job waited for its parked mailbox: {:?}",
        cancelled.elapsed()
    );
    assert_eq!(finished(&events).state(), pb::JobState::Cancelled);
    let user1 = done_in_order(&events)
        .into_iter()
        .find(|u| u.mailbox == "user1@contoso.com")
        .expect("the parked mailbox has its final update");
    assert_eq!(
        user1.outcome(),
        pb::RecipientOutcome::Cancelled,
        "{user1:?}"
    );
    assert!(
        w.sim
            .messages_in("user1@contoso.com", graph_sim::Folder::Inbox)
            .iter()
            .any(|m| m.internet_message_id == crate::scenarios::PHISH),
        "the parked mailbox was not touched after the cancel"
    );
    w.app.stop().await;
}
