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

on_both_backends!(
    a_job_whose_runs_keep_failing_ends_failed_with_the_reason,
    a_run_that_finished_mailboxes_does_not_count_against_the_budget,
);

async fn a_job_whose_runs_keep_failing_ends_failed_with_the_reason(backend: Backend) {
    let w = crowd(backend, 2, |s| {
        s.job_run_budget = 2;
        s.job_lease_ms = 300;
        s.engine_poll_interval_ms = 50;
    })
    .await;
    refuse_removals(&w, None).await;

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

/// Makes the database refuse to record copies about to be removed — from every mailbox, or
/// only from `mailbox` (replacing a refusal made before).
async fn refuse_removals(w: &crate::scenarios::World, mailbox: Option<&str>) {
    let db = sea_orm::Database::connect(w.app.database_url())
        .await
        .unwrap();
    let only = mailbox.map_or(String::new(), |m| format!(" WHEN (NEW.mailbox = '{m}')"));
    let refuse = match db.get_database_backend() {
        DatabaseBackend::Sqlite => vec![
            "DROP TRIGGER IF EXISTS refuse_removals;".to_owned(),
            format!(
                "CREATE TRIGGER refuse_removals BEFORE INSERT ON retract_removed_copies{only} \
                 BEGIN SELECT RAISE(ABORT, 'the disk refuses'); END;"
            ),
        ],
        _ => vec![
            "DROP TRIGGER IF EXISTS refuse_removals ON retract_removed_copies;".to_owned(),
            "CREATE OR REPLACE FUNCTION refuse_removals() RETURNS trigger AS $$ \
             BEGIN RAISE EXCEPTION 'the disk refuses'; END $$ LANGUAGE plpgsql;"
                .to_owned(),
            format!(
                "CREATE TRIGGER refuse_removals BEFORE INSERT ON retract_removed_copies \
                 FOR EACH ROW{only} EXECUTE FUNCTION refuse_removals();"
            ),
        ],
    };
    for sql in refuse {
        db.execute_unprepared(&sql).await.unwrap();
    }
    db.close().await.ok();
}

/// The budget counts runs that stop short in a row: a run that finishes mailboxes starts the
/// count again. The first run records nothing and fails; then only user3's copies cannot be
/// recorded, so the second run finishes the other three and fails too. With a budget of two,
/// that progress buys a third run before the job ends FAILED — three visits of user3 (without
/// it, the job would end after two).
async fn a_run_that_finished_mailboxes_does_not_count_against_the_budget(backend: Backend) {
    let w = crowd(backend, 4, |s| {
        s.job_run_budget = 2;
        s.job_lease_ms = 300;
        s.engine_poll_interval_ms = 50;
    })
    .await;
    refuse_removals(&w, None).await;
    let searches_of = |mailbox: &str| {
        w.sim
            .graph_requests()
            .into_iter()
            .filter(|r| r.mailbox.as_deref() == Some(mailbox) && r.method == "GET")
            .count()
    };

    let stream = w.retract(options(&[])).await;
    // The first run has failed (its reason is kept on the job): from now on only user3's
    // copies are refused.
    let db = sea_orm::Database::connect(w.app.database_url())
        .await
        .unwrap();
    let first_run = tokio::time::timeout(Duration::from_secs(10), async {
        loop {
            let row = db
                .query_one_raw(sea_orm::Statement::from_string(
                    db.get_database_backend(),
                    "SELECT COUNT(*) AS n FROM retract_jobs WHERE last_run_error IS NOT NULL",
                ))
                .await
                .unwrap()
                .expect("a count");
            if row.try_get::<i64>("", "n").unwrap() > 0 {
                return;
            }
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    })
    .await;
    db.close().await.ok();
    assert!(first_run.is_ok(), "the first run fails");
    refuse_removals(&w, Some("user3@contoso.com")).await;
    let events = tokio::time::timeout(Duration::from_secs(25), until_finished(stream, |r| r.event))
        .await
        .expect("the job ends");
    let Some(pb::retract_event::Kind::JobFinished(finished)) =
        events.last().and_then(|e| e.kind.clone())
    else {
        panic!("the last event is JobFinished: {events:?}")
    };
    assert_eq!(finished.state(), pb::JobState::Failed);
    let counts = finished.counts.expect("counts");
    assert_eq!(
        counts.deleted_count, 3,
        "the second run's progress stands: {counts:?}"
    );
    assert_eq!(
        searches_of("user3@contoso.com"),
        3,
        "a failing run, a run with progress, then one more run the budget allows"
    );
    w.app.stop().await;
}
