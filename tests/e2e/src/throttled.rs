//! Microsoft throttling one mailbox for long: the mailbox waits aside (parked) without
//! holding a slot while the rest of the job finishes, is visited again when Microsoft's wait
//! is over, and ends FAILED with Microsoft's answer only past the job's parked deadline.

use std::time::{Duration, Instant};

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
