//! Many people watching one retract: every watcher — from the start, or joining midway from
//! the sequence it last saw — gets every event after its own starting point, in order, with
//! no gap and no repeat, the same events as every other watcher, ending with JobFinished.

use std::time::Duration;

use futures::StreamExt as _;
use retract_client::pb;

use crate::{db::Backend, on_both_backends, retract::options, scenarios::crowd};

on_both_backends!(
    thirty_watchers_of_one_job_each_get_every_event_in_order,
    a_watcher_of_a_job_another_replica_runs_gets_every_event_of_each_poll,
    streams_are_capped_per_caller_apart_from_unary_calls,
);

/// A watcher's events (heartbeats left out) until JobFinished.
async fn follow(mut stream: tonic::Streaming<pb::WatchRetractResponse>) -> Vec<pb::RetractEvent> {
    let mut events = Vec::new();
    while let Some(item) = stream.next().await {
        let event = item.expect("watch item").event.expect("an event");
        match &event.kind {
            Some(pb::retract_event::Kind::Heartbeat(_)) => continue,
            Some(pb::retract_event::Kind::JobFinished(_)) => {
                events.push(event);
                break;
            }
            _ => events.push(event),
        }
    }
    events
}

async fn thirty_watchers_of_one_job_each_get_every_event_in_order(backend: Backend) {
    let w = crowd(backend, 120, |s| s.mailbox_concurrency = 8).await;
    w.sim.set_latency(graph_sim::LatencySettings {
        default: graph_sim::Latency::fixed(10),
        ..Default::default()
    });
    let job = w.start(options(&[])).await;
    let mut watchers = Vec::new();
    for _ in 0..15 {
        watchers.push((
            0,
            tokio::spawn(follow(w.watch(job.job_id.clone(), 0).await)),
        ));
    }
    // Fifteen more join midway, each from the sequence a watcher of its own saw last.
    let mut first = w.watch(job.job_id.clone(), 0).await;
    let mut seen = 0;
    while seen < 40 {
        let e = first.next().await.unwrap().unwrap().event.unwrap();
        seen = e.sequence;
    }
    for i in 0..15 {
        let after = seen - i;
        watchers.push((
            after,
            tokio::spawn(follow(w.watch(job.job_id.clone(), after).await)),
        ));
    }
    drop(first);

    let mut complete: Option<Vec<pb::RetractEvent>> = None;
    for (after, watcher) in watchers {
        let events = tokio::time::timeout(Duration::from_secs(30), watcher)
            .await
            .expect("every watcher reaches JobFinished")
            .unwrap();
        let sequences: Vec<i64> = events.iter().map(|e| e.sequence).collect();
        let last = *sequences.last().expect("events");
        assert_eq!(
            sequences,
            ((after + 1)..=last).collect::<Vec<_>>(),
            "the watcher from {after} got every event after it, in order, once"
        );
        assert!(matches!(
            events.last().and_then(|e| e.kind.as_ref()),
            Some(pb::retract_event::Kind::JobFinished(_))
        ));
        match &complete {
            None if after == 0 => complete = Some(events),
            None => unreachable!("watchers from the start come first"),
            Some(all) => assert_eq!(
                all[usize::try_from(after).unwrap()..],
                events[..],
                "the same events as every other watcher"
            ),
        }
    }
    let all = complete.unwrap();
    let done = all
        .iter()
        .filter(|e| {
            matches!(&e.kind, Some(pb::retract_event::Kind::RecipientUpdate(u))
                if u.phase() == pb::RecipientPhase::Done)
        })
        .count();
    assert_eq!(
        done, 120,
        "every mailbox's final update reached the watchers"
    );
    w.app.stop().await;
}

/// A replica that does not run the job learns of its events only by polling the store: each
/// poll hands its watchers everything written since, hundreds of events at once, more than a
/// watcher sends in one go before it looks at its deadline — and still every one, in order.
async fn a_watcher_of_a_job_another_replica_runs_gets_every_event_of_each_poll(backend: Backend) {
    use retract_server::engine::{EventHub, WatchSettings, Watched, Watcher};

    let w = crowd(backend, 150, |s| s.mailbox_concurrency = 150).await;
    let job = w.start(options(&[])).await;
    // This "replica" shares the database but not the engine's wake-ups: its own hub.
    let store = w.app.store().await;
    let replica = Watcher::new(
        store.clone(),
        std::sync::Arc::new(EventHub::default()),
        WatchSettings {
            heartbeat: Duration::from_secs(30),
            poll: Duration::from_millis(700),
        },
        tokio_util::sync::CancellationToken::new(),
    );
    let stored = store
        .job_for_worker(&retract_server::domain::JobId::parse(&job.job_id).unwrap())
        .await
        .unwrap();
    let mut events = replica.follow(&stored, 0, None);
    let mut sequences = Vec::new();
    let finished = tokio::time::timeout(Duration::from_secs(30), async {
        while let Some(item) = events.recv().await {
            if let Watched::Event(e) = item.expect("the watch goes on") {
                sequences.push(e.event().sequence);
                if matches!(
                    e.event().kind,
                    retract_server::domain::EventKind::JobFinished { .. }
                ) {
                    return true;
                }
            }
        }
        false
    })
    .await
    .expect("JobFinished within 30 s");
    assert!(finished, "the watch ended with JobFinished");
    let last = *sequences.last().unwrap();
    assert!(
        last >= 150 + 2,
        "JobStarted, each mailbox's final update and JobFinished: at least 152, got {last}"
    );
    assert_eq!(
        sequences,
        (1..=last).collect::<Vec<_>>(),
        "every event, in order, once"
    );
    w.app.stop().await;
}

async fn streams_are_capped_per_caller_apart_from_unary_calls(backend: Backend) {
    let w = crowd(backend, 3, |s| s.caller_streams = 2).await;
    // The job stays running while Graph is slow to search mailboxes, so the watches stay open.
    w.sim.set_latency(graph_sim::LatencySettings {
        per_endpoint: [(
            graph_sim::Endpoint::MessageList,
            graph_sim::Latency::fixed(20_000),
        )]
        .into(),
        ..Default::default()
    });
    let job = w.start(options(&[])).await;
    let watch = |client: retract_client::Client| {
        let job_id = job.job_id.clone();
        async move {
            client
                .retract_service()
                .watch_retract(pb::WatchRetractRequest {
                    tenant_id: "acme".into(),
                    job_id,
                    after_sequence: 0,
                })
                .await
        }
    };
    let first = watch(w.admin()).await.expect("a first watch");
    let _second = watch(w.admin()).await.expect("a second watch");
    let refused = watch(w.admin())
        .await
        .expect_err("a third watch of the same caller");
    assert_eq!(
        refused.code(),
        tonic::Code::ResourceExhausted,
        "{refused:?}"
    );
    assert!(refused.message().contains("2 streams open"), "{refused:?}");
    // Unary calls are not streams: the caller still reads the job.
    w.job(&job.job_id).await;
    // Another caller has streams of its own.
    watch(w.app.admin("other@contoso.com", "acme"))
        .await
        .expect("another caller's watch");
    drop(first);
    // The closed stream's slot is back once the server sees it gone.
    let again = tokio::time::timeout(Duration::from_secs(10), async {
        loop {
            if let Ok(stream) = watch(w.admin()).await {
                break stream;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    })
    .await
    .expect("a closed watch frees its slot");
    drop(again);
    w.app.stop().await;
}
