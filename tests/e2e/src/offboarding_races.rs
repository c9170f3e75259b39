//! DeleteTenant racing the calls that add rows under the tenant, on PostgreSQL (replicas
//! sharing one database run such calls at the same time; SQLite runs one write transaction
//! at a time). Each race is lined up, not left to chance: the test holds every write of the
//! audit trail (each of these transactions writes its audit entry last, a recorded delivery
//! none) until the second call waits for the first or has answered, then lets both go.
//! Whichever goes first, the tenant ends either deleted with nothing of the racing call left,
//! or not deleted, with it.

use std::{future::Future, time::Duration};

use retract_client::pb;
use sea_orm::sqlx::{Connection as _, Executor as _, PgConnection};
use tonic::Code;

use crate::{
    app::TestApp,
    db::Backend,
    offboarding::{data_purged, delete, rows},
    retract::{options, until_finished},
    scenarios::{app_against, crowd, crowd_sim},
    status::expect_failure,
};

/// Declares each named `async fn name(backend: Backend)` as a test on PostgreSQL only.
macro_rules! on_postgres {
    ($($test:ident),+ $(,)?) => {$(
        mod $test {
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn postgres() {
                $crate::backends::run_on_postgres_only(
                    concat!(module_path!(), "::", stringify!($test)),
                    super::$test,
                )
                .await;
            }
        }
    )+};
}

on_postgres!(
    a_retract_dispatched_while_its_tenant_is_deleted_gets_no_job,
    a_tenant_is_not_deleted_while_a_retract_dispatched_before_commits,
    a_tenant_created_while_a_deletion_of_its_id_commits_is_refused,
    a_consent_started_while_its_tenant_is_deleted_leaves_no_attempt,
    a_delivery_recorded_while_its_tenant_is_deleted_is_refused,
);

/// The server's writes of audit entries, held: a connection of the test holding
/// `LOCK TABLE audit_events IN SHARE MODE` in an open transaction. `watch` is a second
/// connection, outside that transaction (whose view of `pg_stat_activity` would not change).
struct AuditGate {
    lock: PgConnection,
    watch: PgConnection,
}

impl AuditGate {
    async fn close(app: &TestApp) -> Self {
        let mut lock = PgConnection::connect(app.database_url()).await.unwrap();
        lock.execute("BEGIN").await.unwrap();
        lock.execute("LOCK TABLE audit_events IN SHARE MODE")
            .await
            .unwrap();
        let watch = PgConnection::connect(app.database_url()).await.unwrap();
        Self { lock, watch }
    }

    /// How many of the server's statements wait for a lock: at the gate, or on a row
    /// another transaction holds.
    async fn waiting(&mut self) -> i64 {
        let (n,): (i64,) = sea_orm::sqlx::query_as(
            "SELECT COUNT(*) FROM pg_stat_activity \
             WHERE datname = current_database() AND backend_type = 'client backend' \
             AND wait_event_type = 'Lock'",
        )
        .fetch_one(&mut self.watch)
        .await
        .unwrap();
        n
    }

    /// Waits until `n` statements wait for a lock, or `answered` (that call is through).
    async fn until_waiting(&mut self, n: i64, answered: impl Fn() -> bool) {
        let reached = tokio::time::timeout(Duration::from_secs(20), async {
            while self.waiting().await < n && !answered() {
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
        })
        .await;
        assert!(reached.is_ok(), "{n} statements never waited for a lock");
    }

    async fn open(mut self) {
        self.lock.execute("COMMIT").await.unwrap();
        self.lock.close().await.ok();
        self.watch.close().await.ok();
    }
}

/// Runs `first` until it waits at the audit gate (its transaction done but for its audit
/// entry), then `second` until it waits too or has answered, then lets both go; their answers.
async fn race<A, B>(app: &TestApp, first: A, second: B) -> (A::Output, B::Output)
where
    A: Future + Send + 'static,
    A::Output: Send + 'static,
    B: Future + Send + 'static,
    B::Output: Send + 'static,
{
    let mut gate = AuditGate::close(app).await;
    let first = tokio::spawn(first);
    gate.until_waiting(1, || first.is_finished()).await;
    assert!(!first.is_finished(), "the first call waits at the gate");
    let second = tokio::spawn(second);
    gate.until_waiting(2, || second.is_finished()).await;
    gate.open().await;
    (first.await.unwrap(), second.await.unwrap())
}

/// The administrator's StartRetract on `acme`.
async fn start_retract(admin: retract_client::Client) -> Result<(), tonic::Status> {
    admin
        .retract_service()
        .start_retract(pb::StartRetractRequest {
            tenant_id: "acme".into(),
            options: Some(options(&[])),
            request_id: uuid::Uuid::new_v4().to_string(),
        })
        .await
        .map(drop)
}

/// The platform service's DeleteTenant of `acme`.
async fn delete_acme(service: retract_client::Client) -> Result<(), tonic::Status> {
    service
        .tenant_service()
        .delete_tenant(delete("acme", "acme"))
        .await
        .map(drop)
}

/// The deletion goes first: the retract, whose checks passed while the tenant was still
/// there, waits for it and is refused; no job of it is left behind to run.
async fn a_retract_dispatched_while_its_tenant_is_deleted_gets_no_job(backend: Backend) {
    let w = crowd(backend, 2, |_| {}).await;
    let (deleted, started) = race(
        &w.app,
        delete_acme(w.app.service()),
        start_retract(w.admin()),
    )
    .await;
    deleted.expect("the tenant is deleted");
    let refused = expect_failure(started);
    assert_eq!(refused.code, Code::NotFound, "{refused:?}");
    data_purged(&w.app, "acme").await;
    assert_eq!(rows(&w.app, "retract_jobs", "tenant_id", "acme").await, 0);
    w.app.stop().await;
}

/// The retract goes first: the deletion waits for its job and refuses, as it does for any
/// job that has not ended; the job runs to its end.
async fn a_tenant_is_not_deleted_while_a_retract_dispatched_before_commits(backend: Backend) {
    let w = crowd(backend, 2, |_| {}).await;
    let (started, deleted) = race(
        &w.app,
        start_retract(w.admin()),
        delete_acme(w.app.service()),
    )
    .await;
    started.expect("the retract starts");
    let refused = expect_failure(deleted);
    assert_eq!(refused.code, Code::FailedPrecondition, "{refused:?}");
    assert_eq!(refused.reason, "TENANT_HAS_ACTIVE_JOBS");
    assert_eq!(rows(&w.app, "tenants", "tenant_id", "acme").await, 1);
    let jobs = w
        .admin()
        .retract_service()
        .list_retract_jobs(pb::ListRetractJobsRequest {
            tenant_id: "acme".into(),
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner()
        .jobs;
    assert_eq!(jobs.len(), 1, "{jobs:?}");
    until_finished(w.watch(jobs[0].job_id.clone(), 0).await, |r| r.event).await;
    w.app.stop().await;
}

/// CreateTenant under the id of a tenant whose deletion is committing: it waits for the
/// deletion, then finds the tombstone; the id is never reused.
async fn a_tenant_created_while_a_deletion_of_its_id_commits_is_refused(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    app.create_tenant("acme").await;
    let service = app.service();
    let (deleted, created) = race(&app, delete_acme(app.service()), async move {
        service
            .tenant_service()
            .create_tenant(pb::CreateTenantRequest {
                tenant_id: "acme".into(),
                display_name: "Acme again".into(),
            })
            .await
            .map(drop)
    })
    .await;
    deleted.expect("the tenant is deleted");
    let refused = expect_failure(created);
    assert_eq!(refused.code, Code::AlreadyExists, "{refused:?}");
    assert_eq!(rows(&app, "tenants", "tenant_id", "acme").await, 0);
    app.stop().await;
}

/// StartGrant while the tenant is deleted: the consent attempt (its PKCE verifier and
/// state) is not stored for a tenant that is gone.
async fn a_consent_started_while_its_tenant_is_deleted_leaves_no_attempt(backend: Backend) {
    let (sim, _) = crowd_sim(1).await;
    let app = app_against(backend, &sim, |_| {}).await;
    app.create_tenant("acme").await;
    let service = app.service();
    let (deleted, started) = race(&app, delete_acme(app.service()), async move {
        service
            .tenant_service()
            .start_grant(pb::StartGrantRequest {
                tenant_id: "acme".into(),
                allow_relink: false,
            })
            .await
            .map(drop)
    })
    .await;
    deleted.expect("the tenant is deleted");
    let refused = expect_failure(started);
    assert_eq!(refused.code, Code::NotFound, "{refused:?}");
    assert_eq!(rows(&app, "grants", "tenant_id", "acme").await, 0);
    app.stop().await;
}

/// RecordDelivery while the tenant is deleted: it waits for the deletion and records
/// nothing (a delivery committed after the purge had finished would stay forever).
async fn a_delivery_recorded_while_its_tenant_is_deleted_is_refused(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    app.create_tenant("acme").await;
    let service = app.service();
    let (deleted, recorded) = race(&app, delete_acme(app.service()), async move {
        service
            .retract_service()
            .record_delivery(pb::RecordDeliveryRequest {
                tenant_id: "acme".into(),
                delivery: Some(pb::Delivery {
                    internet_message_id: "<late@vendor.example>".into(),
                    sender: "x@vendor.example".into(),
                    subject: "late".into(),
                    delivery_time: Some(prost_types::Timestamp {
                        seconds: chrono::Utc::now().timestamp(),
                        nanos: 0,
                    }),
                    recipients: vec!["ann@acme.example".into()],
                    ..Default::default()
                }),
            })
            .await
            .map(drop)
    })
    .await;
    deleted.expect("the tenant is deleted");
    let refused = expect_failure(recorded);
    assert_eq!(refused.code, Code::NotFound, "{refused:?}");
    data_purged(&app, "acme").await;
    assert_eq!(rows(&app, "deliveries", "tenant_id", "acme").await, 0);
    app.stop().await;
}
