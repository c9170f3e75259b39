//! Offboarding a tenant (DeleteTenant): everything it held is purged, its audit trail stays
//! until its retention ends, its id is never reused, other tenants are untouched, and only a
//! caller holding `tenants.manage` for that tenant may do it.

use retract_client::{DevToken, pb};
use retract_server::store::StoreError;
use sea_orm::{ConnectionTrait as _, Statement};
use tonic::Code;

use crate::{
    app::{TestApp, action},
    db::Backend,
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
    a_deleted_tenants_audit_trail_goes_when_its_retention_ends,
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

async fn a_deleted_tenants_audit_trail_goes_when_its_retention_ends(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    app.create_tenant("acme").await;
    app.add_domain("acme", "acme.example").await;
    app.create_tenant("globex").await;
    app.service()
        .tenant_service()
        .delete_tenant(delete("acme", "acme"))
        .await
        .unwrap();
    let store = app.store().await;
    // Not yet due: the deletion is newer than the cutoff.
    let long_ago = chrono::Utc::now() - chrono::Duration::days(1);
    assert_eq!(
        store
            .purge_deleted_tenant_audit(long_ago, 500)
            .await
            .unwrap(),
        0
    );
    assert_eq!(app.audit_events("acme").await.len(), 3);
    // Due (the retention sweep's cutoff once the days have passed): a slice at a time.
    let later = chrono::Utc::now() + chrono::Duration::seconds(1);
    let mut removed = 0;
    loop {
        match store.purge_deleted_tenant_audit(later, 2).await.unwrap() {
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
