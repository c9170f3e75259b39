//! Capabilities still to come (retract jobs, #6) answer UNIMPLEMENTED, naming what is missing.

use retract_client::pb;
use tonic::{Code, Status};

use crate::{app::TestApp, db::Backend, on_both_backends, status::failure};

on_both_backends!(retracts_answer_unimplemented_naming_the_capability);

async fn retracts_answer_unimplemented_naming_the_capability(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let c = app.service();
    let outcomes: Vec<(&str, Status)> = vec![
        (
            "Retract",
            c.retract()
                .retract(pb::RetractRequest::default())
                .await
                .map(|_| ())
                .unwrap_err(),
        ),
        (
            "StartRetract",
            c.retract()
                .start_retract(pb::StartRetractRequest::default())
                .await
                .unwrap_err(),
        ),
        (
            "WatchRetract",
            c.retract()
                .watch_retract(pb::WatchRetractRequest::default())
                .await
                .map(|_| ())
                .unwrap_err(),
        ),
        (
            "GetRetractJob",
            c.retract()
                .get_retract_job(pb::GetRetractJobRequest::default())
                .await
                .unwrap_err(),
        ),
        (
            "ListRetractJobs",
            c.retract()
                .list_retract_jobs(pb::ListRetractJobsRequest::default())
                .await
                .unwrap_err(),
        ),
        (
            "CancelRetractJob",
            c.retract()
                .cancel_retract_job(pb::CancelRetractJobRequest::default())
                .await
                .unwrap_err(),
        ),
    ];
    for (rpc, status) in outcomes {
        let f = failure(&status);
        assert_eq!(
            (f.code, f.reason.as_str()),
            (Code::Unimplemented, "NOT_IMPLEMENTED"),
            "{rpc}"
        );
        assert!(
            f.message.contains("issue #"),
            "{rpc} names the missing capability: {}",
            f.message
        );
    }
    let anonymous = app
        .anonymous()
        .retract()
        .start_retract(pb::StartRetractRequest::default())
        .await
        .unwrap_err();
    assert_eq!(
        anonymous.code(),
        Code::Unauthenticated,
        "unbuilt RPCs are still behind authentication"
    );
    app.stop().await;
}
