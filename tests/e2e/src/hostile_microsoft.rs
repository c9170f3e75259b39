//! A Microsoft that misbehaves (absurd numbers, endless throttling) costs the affected
//! mailboxes, never the engine: jobs finish with reasons and the next job runs.

use std::time::Duration;

use retract_client::pb;

use crate::{
    db::Backend,
    on_both_backends,
    scenarios::{PHISH, World, crowd},
};

on_both_backends!(a_retry_after_of_u64_max_fails_the_mailboxes_and_the_engine_keeps_working);

fn all_recipients() -> pb::RetractOptions {
    pb::RetractOptions {
        internet_message_id: PHISH.into(),
        delete_mode: pb::DeleteMode::Soft.into(),
        ..Default::default()
    }
}

/// Polls the job until it is in a final state.
async fn finished_job(w: &World, job_id: &str) -> pb::RetractJob {
    tokio::time::timeout(Duration::from_secs(20), async {
        loop {
            let job = w.job(job_id).await;
            if !matches!(
                job.state(),
                pb::JobState::Queued | pb::JobState::Running | pb::JobState::Unspecified
            ) {
                return job;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    })
    .await
    .expect("the job finishes (no worker crashed holding its lease)")
}

async fn a_retry_after_of_u64_max_fails_the_mailboxes_and_the_engine_keeps_working(
    backend: Backend,
) {
    let w = crowd(backend, 3, |_| {}).await;
    w.sim.set_limits(graph_sim::Limits {
        retry_after_secs: u64::MAX,
        ..Default::default()
    });
    w.sim.set_faults(graph_sim::FaultSettings {
        throttle_429: 1.0,
        endpoints: vec![graph_sim::Endpoint::MessageList],
        ..Default::default()
    });
    let job = w.start(all_recipients()).await;
    let job = finished_job(&w, &job.job_id).await;
    assert_eq!(job.state(), pb::JobState::CompletedWithErrors, "{job:?}");
    let counts = job.counts.expect("counts");
    assert_eq!(
        (counts.failed_count, counts.target_count),
        (3, 3),
        "{counts:?}"
    );

    // Microsoft recovers: the same engine runs the next job to the end.
    w.sim.set_faults(graph_sim::FaultSettings::default());
    let job = w.start(all_recipients()).await;
    let job = finished_job(&w, &job.job_id).await;
    assert_eq!(job.state(), pb::JobState::Succeeded, "{job:?}");
    w.app.stop().await;
}
