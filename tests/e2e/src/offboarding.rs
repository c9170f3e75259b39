//! Offboarding a tenant (DeleteTenant): everything it held is purged, its audit trail stays
//! until its retention ends, its id is never reused, other tenants are untouched, and only a
//! caller holding `tenants.manage` for that tenant may do it.

use retract_client::{DevToken, pb};
use retract_server::store::StoreError;
use sea_orm::{ConnectionTrait, Statement, sea_query::Query};
use tonic::Code;

use crate::{
    app::{TestApp, action},
    db::{Backend, TestDb},
    on_both_backends,
    retract::{options, until_finished},
    scenarios::{World, crowd, stored_job},
    status::expect_failure,
};

on_both_backends!(
    a_deleted_tenant_leaves_nothing_but_its_audit_trail,
    a_tenant_is_not_deleted_while_a_job_of_it_runs,
    a_job_for_a_tenant_deleted_after_its_dispatch_checks_is_refused,
    only_a_caller_managing_tenants_with_access_to_it_deletes_a_tenant,
    a_deleted_tenants_audit_trail_goes_at_the_time_its_deletion_recorded,
    a_trail_kept_forever_at_its_deletion_stays_whatever_the_retention_becomes,
    a_tombstone_from_before_purge_times_were_recorded_goes_by_the_retention_configured_now,
    a_purge_slice_deletes_at_most_its_rows_however_many_recipients_a_delivery_has,
);

pub(crate) fn delete(tenant: &str, confirm: &str) -> pb::DeleteTenantRequest {
    pb::DeleteTenantRequest {
        tenant_id: tenant.into(),
        confirm: confirm.into(),
        reason: "customer left".into(),
    }
}

/// Rows of `table` where `column` is `value`.
pub(crate) async fn rows(app: &TestApp, table: &str, column: &str, value: &str) -> i64 {
    count(app, table, &format!("{column} = '{value}'")).await
}

/// Rows of `table` where `condition` holds.
async fn count(app: &TestApp, table: &str, condition: &str) -> i64 {
    let db = sea_orm::Database::connect(app.database_url())
        .await
        .unwrap();
    let row = db
        .query_one_raw(Statement::from_string(
            db.get_database_backend(),
            format!("SELECT COUNT(*) AS n FROM {table} WHERE {condition}"),
        ))
        .await
        .unwrap()
        .expect("a count");
    db.close().await.ok();
    row.try_get::<i64>("", "n").unwrap()
}

/// Waits until the background purge of deleted `tenant`'s data is through.
pub(crate) async fn data_purged(app: &TestApp, tenant: &str) {
    let condition = format!("tenant_id = '{tenant}' AND data_purged_at IS NOT NULL");
    let purged = tokio::time::timeout(std::time::Duration::from_secs(20), async {
        while count(app, "deleted_tenants", &condition).await == 0 {
            tokio::time::sleep(std::time::Duration::from_millis(50)).await;
        }
    })
    .await;
    assert!(purged.is_ok(), "the purge of {tenant} finishes");
}

/// A tombstone for `tenant` written straight to the database, with the columns every
/// version has: as a deletion whose purge has not begun (the process stopped), or as one
/// made before migration 10.
async fn tombstone(
    db: &impl ConnectionTrait,
    tenant: &str,
    deleted_at: chrono::DateTime<chrono::Utc>,
) {
    let insert = Query::insert()
        .into_table("deleted_tenants")
        .columns(["tenant_id", "deleted_at", "deleted_by"])
        .values_panic([tenant.into(), deleted_at.into(), "ops@example.com".into()])
        .to_owned();
    db.execute_raw(db.get_database_backend().build(&insert))
        .await
        .unwrap();
}

/// acme after a finished retract of three mailboxes; globex, another tenant, beside it with
/// a domain and a delivery of its own.
async fn two_tenants(backend: Backend) -> (World, String) {
    let w = crowd(backend, 3, |_| {}).await;
    let events = until_finished(w.retract(options(&[])).await, |r| r.event).await;
    let job_id = events.last().unwrap().job_id.clone();
    w.app.create_tenant("globex").await;
    w.app.add_domain("globex", "globex.example").await;
    w.app
        .service()
        .retract_service()
        .record_delivery(pb::RecordDeliveryRequest {
            tenant_id: "globex".into(),
            delivery: Some(pb::Delivery {
                internet_message_id: "<hello@vendor.example>".into(),
                sender: "sales@vendor.example".into(),
                subject: "Hello".into(),
                delivery_time: Some(prost_types::Timestamp {
                    seconds: chrono::Utc::now().timestamp() - 60,
                    nanos: 0,
                }),
                recipients: vec!["ann@globex.example".into()],
                ..Default::default()
            }),
        })
        .await
        .unwrap();
    (w, job_id)
}

async fn a_deleted_tenant_leaves_nothing_but_its_audit_trail(backend: Backend) {
    let (w, job_id) = two_tenants(backend).await;
    let service = w.app.service();

    let wrong = expect_failure(
        service
            .tenant_service()
            .delete_tenant(delete("acme", "acm"))
            .await,
    );
    assert_eq!(wrong.code, Code::InvalidArgument, "{wrong:?}");
    assert_eq!(wrong.fields, vec!["confirm"], "{wrong:?}");
    assert_eq!(rows(&w.app, "tenants", "tenant_id", "acme").await, 1);

    let deleted = service
        .tenant_service()
        .delete_tenant(delete("acme", "acme"))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(
        (
            deleted.domain_count,
            deleted.delivery_count,
            deleted.job_count
        ),
        (1, 1, 1),
        "{deleted:?}"
    );
    let purge = deleted.audit_purge_time.expect("kept 365 days by default");
    let days = (purge.seconds - chrono::Utc::now().timestamp()) / 86_400;
    assert!((364..=365).contains(&days), "{days} days");

    // Nothing of it is left, in any table, once the background purge is through.
    let purged = tokio::time::timeout(std::time::Duration::from_secs(20), async {
        while rows(&w.app, "retract_jobs", "tenant_id", "acme").await
            + rows(&w.app, "deliveries", "tenant_id", "acme").await
            + rows(&w.app, "mailbox_status", "tenant_id", "acme").await
            > 0
        {
            tokio::time::sleep(std::time::Duration::from_millis(50)).await;
        }
    })
    .await;
    assert!(purged.is_ok(), "the purge finishes");
    for (table, column, value) in [
        ("tenants", "tenant_id", "acme"),
        ("domains", "tenant_id", "acme"),
        ("grants", "tenant_id", "acme"),
        ("deliveries", "tenant_id", "acme"),
        ("delivery_recipients", "tenant_id", "acme"),
        ("mailbox_status", "tenant_id", "acme"),
        ("retract_jobs", "tenant_id", "acme"),
        ("retract_targets", "job_id", job_id.as_str()),
        ("retract_events", "job_id", job_id.as_str()),
        ("retract_removed_copies", "job_id", job_id.as_str()),
    ] {
        assert_eq!(rows(&w.app, table, column, value).await, 0, "{table}");
    }
    let gone = expect_failure(
        service
            .tenant_service()
            .get_tenant(pb::GetTenantRequest {
                tenant_id: "acme".into(),
            })
            .await,
    );
    assert_eq!(gone.code, Code::NotFound);
    let job = expect_failure(
        w.admin()
            .retract_service()
            .get_retract_job(pb::GetRetractJobRequest {
                tenant_id: "acme".into(),
                job_id: job_id.clone(),
            })
            .await,
    );
    assert_eq!(job.code, Code::NotFound);
    let recorded = expect_failure(
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
                    recipients: vec!["user0@contoso.com".into()],
                    ..Default::default()
                }),
            })
            .await,
    );
    assert_eq!(
        recorded.code,
        Code::NotFound,
        "an offboarded tenant records nothing"
    );

    // The audit trail stays, ending with the deletion and what it removed.
    let trail = w.app.audit_events("acme").await;
    assert!(trail.len() > 3, "{trail:?}");
    let last = &trail[0];
    assert_eq!(action(last), "tenant_deleted");
    assert_eq!(last.actor, "portal-backend");
    match &last.details {
        Some(pb::audit_event::Details::TenantDeleted(d)) => {
            assert_eq!(d.reason, "customer left");
            assert_eq!(d.domains, vec!["contoso.com"]);
            assert!(!d.microsoft_tenant_id.is_empty(), "it was linked");
            assert_eq!((d.delivery_count, d.job_count), (1, 1));
            assert_eq!(d.audit_purge_time, Some(purge));
        }
        other => panic!("details {other:?}"),
    }

    // The id is never reused; its domain is free for another tenant.
    let again = expect_failure(
        service
            .tenant_service()
            .create_tenant(pb::CreateTenantRequest {
                tenant_id: "acme".into(),
                display_name: "Acme again".into(),
            })
            .await,
    );
    assert_eq!(again.code, Code::AlreadyExists);
    w.app.add_domain("globex", "contoso.com").await;

    // The other tenant is untouched.
    assert_eq!(rows(&w.app, "tenants", "tenant_id", "globex").await, 1);
    assert_eq!(rows(&w.app, "deliveries", "tenant_id", "globex").await, 1);
    assert_eq!(rows(&w.app, "domains", "tenant_id", "globex").await, 2);
    assert!(
        w.app
            .audit_events("globex")
            .await
            .iter()
            .all(|e| e.tenant_id == "globex")
    );
    w.app.stop().await;
}

async fn a_tenant_is_not_deleted_while_a_job_of_it_runs(backend: Backend) {
    let w = crowd(backend, 2, |_| {}).await;
    // Slow Graph: the job runs for a couple of seconds.
    w.sim.set_latency(graph_sim::LatencySettings {
        default: graph_sim::Latency::fixed(400),
        ..Default::default()
    });
    let job = w.start(options(&[])).await;
    let refused = expect_failure(
        w.app
            .service()
            .tenant_service()
            .delete_tenant(delete("acme", "acme"))
            .await,
    );
    assert_eq!(refused.code, Code::FailedPrecondition, "{refused:?}");
    assert_eq!(refused.reason, "TENANT_HAS_ACTIVE_JOBS");
    assert_eq!(refused.metadata["job_count"], "1");
    assert_eq!(rows(&w.app, "tenants", "tenant_id", "acme").await, 1);
    until_finished(w.watch(job.job_id.clone(), 0).await, |r| r.event).await;
    w.app
        .service()
        .tenant_service()
        .delete_tenant(delete("acme", "acme"))
        .await
        .expect("deleted once the job has ended");
    w.app.stop().await;
}

/// A retract whose checks passed just before its tenant was deleted: the job is refused when
/// it is written, not left behind for a tenant that is gone (the retract as the store sees
/// it once dispatch has checked it; the races on PostgreSQL are in `offboarding_races`).
async fn a_job_for_a_tenant_deleted_after_its_dispatch_checks_is_refused(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    app.create_tenant("acme").await;
    let acme = retract_server::domain::TenantId::parse("acme").unwrap();
    let (job, audit) = stored_job(&acme, &["user0@contoso.com"], false);
    app.service()
        .tenant_service()
        .delete_tenant(delete("acme", "acme"))
        .await
        .unwrap();
    let refused = app.store().await.create_job(&acme, job, audit).await;
    assert!(
        matches!(
            refused,
            Err(StoreError::NotFound {
                resource: "tenant",
                ..
            })
        ),
        "{refused:?}"
    );
    assert_eq!(rows(&app, "retract_jobs", "tenant_id", "acme").await, 0);
    assert!(
        app.audit_events("acme")
            .await
            .iter()
            .all(|e| action(e) != "retract_dispatched"),
        "nothing dispatched"
    );
    app.stop().await;
}

async fn only_a_caller_managing_tenants_with_access_to_it_deletes_a_tenant(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    app.create_tenant("acme").await;
    app.create_tenant("globex").await;
    // The tenant's own administrator holds every other permission, not tenants.manage.
    let mut admin = DevToken::admin("boss@acme.example", "acme");
    for p in [
        "retract.message",
        "retract.read",
        "deliveries.write",
        "domains.manage",
        "audit.read",
    ] {
        admin = admin.permission(p);
    }
    let denied = expect_failure(
        app.with_token(&admin)
            .tenant_service()
            .delete_tenant(delete("acme", "acme"))
            .await,
    );
    assert_eq!(denied.code, Code::PermissionDenied, "{denied:?}");
    // A caller managing tenants, but only globex.
    let globex_only = DevToken::admin("ops@globex.example", "globex").permission("tenants.manage");
    let other = expect_failure(
        app.with_token(&globex_only)
            .tenant_service()
            .delete_tenant(delete("acme", "acme"))
            .await,
    );
    assert_eq!(other.code, Code::PermissionDenied, "{other:?}");
    assert_eq!(other.reason, "TENANT_NOT_ALLOWED");
    let unknown = expect_failure(
        app.service()
            .tenant_service()
            .delete_tenant(delete("nobody", "nobody"))
            .await,
    );
    assert_eq!(unknown.code, Code::NotFound);
    let invalid = expect_failure(
        app.service()
            .tenant_service()
            .delete_tenant(pb::DeleteTenantRequest {
                tenant_id: "Not Valid".into(),
                confirm: String::new(),
                reason: "x".repeat(501),
            })
            .await,
    );
    assert_eq!(invalid.code, Code::InvalidArgument);
    let mut fields = invalid.fields.clone();
    fields.sort();
    assert_eq!(
        fields,
        vec!["confirm", "reason", "tenant_id"],
        "{invalid:?}"
    );
    assert_eq!(rows(&app, "tenants", "tenant_id", "acme").await, 1);
    app.with_token(&globex_only)
        .tenant_service()
        .delete_tenant(delete("globex", "globex"))
        .await
        .expect("its own tenant");
    assert_eq!(rows(&app, "tenants", "tenant_id", "acme").await, 1);
    app.stop().await;
}

/// The trail goes at the time the deletion recorded (and answered its caller), whatever the
/// retention is set to since.
async fn a_deleted_tenants_audit_trail_goes_at_the_time_its_deletion_recorded(backend: Backend) {
    let app = TestApp::spawn_with(backend, |s| s.deleted_tenant_audit_retention_days = 30).await;
    app.create_tenant("acme").await;
    app.add_domain("acme", "acme.example").await;
    app.create_tenant("globex").await;
    let deleted = app
        .service()
        .tenant_service()
        .delete_tenant(delete("acme", "acme"))
        .await
        .unwrap()
        .into_inner();
    let told = deleted.audit_purge_time.expect("kept 30 days");
    let purge_at = chrono::DateTime::from_timestamp(told.seconds, 0).unwrap();
    let days = (purge_at - chrono::Utc::now()).num_days();
    assert!((29..=30).contains(&days), "{days} days");
    let store = app.store().await;
    // The retention set to a day since: not due until the recorded time.
    let day = Some(chrono::Duration::days(1));
    let hour = chrono::Duration::hours(1);
    assert_eq!(
        store
            .purge_deleted_tenant_audit(purge_at - hour, day, 500)
            .await
            .unwrap(),
        0
    );
    assert_eq!(app.audit_events("acme").await.len(), 3);
    // Due, though the retention is set to 400 days by then: a slice at a time.
    let longer = Some(chrono::Duration::days(400));
    let mut removed = 0;
    loop {
        match store
            .purge_deleted_tenant_audit(purge_at + hour, longer, 2)
            .await
            .unwrap()
        {
            0 => break,
            n => removed += n,
        }
    }
    assert_eq!(removed, 3 + 1, "three events, then the tombstone marked");
    assert!(app.audit_events("acme").await.is_empty());
    assert_eq!(
        app.audit_events("globex").await.len(),
        1,
        "others keep theirs"
    );
    let again = expect_failure(
        app.service()
            .tenant_service()
            .create_tenant(pb::CreateTenantRequest {
                tenant_id: "acme".into(),
                display_name: "Acme again".into(),
            })
            .await,
    );
    assert_eq!(again.code, Code::AlreadyExists, "the id stays taken");
    app.stop().await;
}

async fn a_trail_kept_forever_at_its_deletion_stays_whatever_the_retention_becomes(
    backend: Backend,
) {
    let app = TestApp::spawn_with(backend, |s| s.deleted_tenant_audit_retention_days = 0).await;
    app.create_tenant("acme").await;
    let deleted = app
        .service()
        .tenant_service()
        .delete_tenant(delete("acme", "acme"))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(deleted.audit_purge_time, None, "kept forever");
    let store = app.store().await;
    let years_later = chrono::Utc::now() + chrono::Duration::days(3650);
    assert_eq!(
        store
            .purge_deleted_tenant_audit(years_later, Some(chrono::Duration::days(1)), 500)
            .await
            .unwrap(),
        0
    );
    assert_eq!(app.audit_events("acme").await.len(), 2, "created, deleted");
    app.stop().await;
}

/// A tombstone left by a version that recorded no purge time goes, as it did then, by the
/// retention configured now.
async fn a_tombstone_from_before_purge_times_were_recorded_goes_by_the_retention_configured_now(
    backend: Backend,
) {
    let db = TestDb::empty(backend).await;
    let conn = sea_orm::Database::connect(db.url.as_str()).await.unwrap();
    <retract_migrations::Migrator as sea_orm_migration::MigratorTrait>::up(&conn, Some(9))
        .await
        .unwrap();
    let deleted_at = chrono::Utc::now() - chrono::Duration::days(10);
    tombstone(&conn, "acme", deleted_at).await;
    conn.close().await.ok();
    // This version migrates the rest on start.
    let app = TestApp::spawn_on(db, |_| {}).await;
    let store = app.store().await;
    let now = chrono::Utc::now();
    let days = |d| Some(chrono::Duration::days(d));
    for (kept, due) in [(None, 0), (days(30), 0), (days(5), 1)] {
        assert_eq!(
            store
                .purge_deleted_tenant_audit(now, kept, 500)
                .await
                .unwrap(),
            due,
            "deleted 10 days ago, kept {kept:?}"
        );
    }
    let purged = "tenant_id = 'acme' AND audit_purged_at IS NOT NULL";
    assert_eq!(count(&app, "deleted_tenants", purged).await, 1);
    let again = expect_failure(
        app.service()
            .tenant_service()
            .create_tenant(pb::CreateTenantRequest {
                tenant_id: "acme".into(),
                display_name: "Acme again".into(),
            })
            .await,
    );
    assert_eq!(again.code, Code::AlreadyExists, "the id stays taken");
    app.stop().await;
}

/// The rows of `job` and of tenant `acme` that its data purge removes.
async fn purgeable(app: &TestApp, job: &str) -> i64 {
    let mut n = 0;
    for table in [
        "deliveries",
        "delivery_recipients",
        "mailbox_status",
        "retract_jobs",
    ] {
        n += rows(app, table, "tenant_id", "acme").await;
    }
    for table in [
        "retract_targets",
        "retract_events",
        "retract_removed_copies",
    ] {
        n += rows(app, table, "job_id", job).await;
    }
    n
}

/// One slice of a deleted tenant's purge is one bounded transaction, counting the rows
/// under a delivery or a job too: a delivery to thousands of recipients does not make one
/// slice delete them all.
async fn a_purge_slice_deletes_at_most_its_rows_however_many_recipients_a_delivery_has(
    backend: Backend,
) {
    let w = crowd(backend, 30, |_| {}).await;
    let events = until_finished(w.retract(options(&[])).await, |r| r.event).await;
    let job_id = events.last().unwrap().job_id.clone();
    // DeleteTenant's transaction, and the process stopped before its purge began.
    let db = sea_orm::Database::connect(w.app.database_url())
        .await
        .unwrap();
    for table in ["domains", "grants", "tenants"] {
        db.execute_unprepared(&format!("DELETE FROM {table} WHERE tenant_id = 'acme'"))
            .await
            .unwrap();
    }
    tombstone(&db, "acme", chrono::Utc::now()).await;
    db.close().await.ok();

    let store = w.app.store().await;
    let mut left = purgeable(&w.app, &job_id).await;
    assert!(left > 60, "30 recipients, targets, events: {left} rows");
    const SLICE: u64 = 10;
    loop {
        let answered = store.purge_deleted_tenant_data(SLICE).await.unwrap();
        let now_left = purgeable(&w.app, &job_id).await;
        let deleted = left - now_left;
        assert!(deleted <= SLICE as i64, "one slice deleted {deleted} rows");
        assert!(
            answered == deleted as u64 || (deleted == 0 && answered <= 1),
            "answered {answered}, deleted {deleted}"
        );
        left = now_left;
        if answered == 0 {
            break;
        }
    }
    assert_eq!(left, 0, "everything purged");
    assert_eq!(
        count(&w.app, "deleted_tenants", "data_purged_at IS NOT NULL").await,
        1
    );
    w.app.stop().await;
}
