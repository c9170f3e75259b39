//! A job whose runs keep stopping short — here the database refuses every write of the
//! copies it is about to remove — is not claimed again forever on each lease expiry: once its
//! run budget is used up it ends FAILED, with the last run's reason, and every mailbox gets
//! its final update. Nothing was deleted meanwhile (no copy is removed before its record).

use std::time::Duration;

use retract_client::pb;
use sea_orm::{ConnectionTrait as _, DatabaseBackend};

use crate::{
    db::Backend,
    on_both_backends,
    retract::{options, until_finished},
    scenarios::crowd,
};

on_both_backends!(a_job_whose_runs_keep_failing_ends_failed_with_the_reason);

async fn a_job_whose_runs_keep_failing_ends_failed_with_the_reason(backend: Backend) {
    let w = crowd(backend, 2, |s| {
        s.job_run_budget = 2;
        s.job_lease_ms = 300;
        s.engine_poll_interval_ms = 50;
    })
    .await;
    let db = sea_orm::Database::connect(w.app.database_url())
        .await
        .unwrap();
    let refuse = match db.get_database_backend() {
        DatabaseBackend::Sqlite => vec![
            "CREATE TRIGGER refuse_removals BEFORE INSERT ON retract_removed_copies \
             BEGIN SELECT RAISE(ABORT, 'the disk refuses'); END;",
        ],
        _ => vec![
            "CREATE FUNCTION refuse_removals() RETURNS trigger AS $$ \
             BEGIN RAISE EXCEPTION 'the disk refuses'; END $$ LANGUAGE plpgsql;",
            "CREATE TRIGGER refuse_removals BEFORE INSERT ON retract_removed_copies \
             FOR EACH ROW EXECUTE FUNCTION refuse_removals();",
        ],
    };
    for sql in refuse {
        db.execute_unprepared(sql).await.unwrap();
    }
    db.close().await.ok();

    let stream = w.retract(options(&[])).await;
    let events = tokio::time::timeout(Duration::from_secs(25), until_finished(stream, |r| r.event))
        .await
        .expect("the job ends instead of being claimed forever");
    let Some(pb::retract_event::Kind::JobFinished(finished)) =
        events.last().and_then(|e| e.kind.clone())
    else {
        panic!("the last event is JobFinished: {events:?}")
    };
    assert_eq!(finished.state(), pb::JobState::Failed);
    let failure = finished.failure.expect("the failure is named");
    assert_eq!(failure.code, "INTERNAL");
    assert!(
        failure.detail.contains("started 2 times") && failure.detail.contains("the disk refuses"),
        "the detail gives the runs and the last run's reason: {}",
        failure.detail
    );
    let done: Vec<_> = events
        .iter()
        .filter_map(|e| match &e.kind {
            Some(pb::retract_event::Kind::RecipientUpdate(u))
                if u.phase() == pb::RecipientPhase::Done =>
            {
                Some(u.outcome())
            }
            _ => None,
        })
        .collect();
    assert_eq!(
        done,
        [pb::RecipientOutcome::Failed; 2],
        "every mailbox ends"
    );
    assert_eq!(
        w.sim
            .messages_in("user0@contoso.com", graph_sim::Folder::Inbox)
            .len(),
        1,
        "nothing was deleted without its record"
    );
    w.app.stop().await;
}
