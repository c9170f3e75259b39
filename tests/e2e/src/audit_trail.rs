//! The admin audit: every change is recorded with the authenticated actor, and can be found
//! again by section, action, actor, target and time.

use prost_types::Timestamp;
use retract_client::{DevToken, pb};
use tonic::{Code, Request};

use crate::{app::TestApp, app::action, db::Backend, on_both_backends, status::expect_failure};

on_both_backends!(
    every_change_is_audited_with_the_authenticated_actor_and_request_id,
    audit_events_are_filtered_and_paged_newest_first,
    audit_filters_are_validated,
    a_siem_exports_the_trail_oldest_first_and_resumes_from_its_cursor,
);

/// Reads a whole export; the events and their cursors.
async fn export(
    app: &TestApp,
    tenant: &str,
    after_cursor: &str,
) -> Result<Vec<(pb::AuditEvent, String)>, tonic::Status> {
    let mut stream = app
        .service()
        .audit_service()
        .export_audit_events(pb::ExportAuditEventsRequest {
            tenant_id: tenant.into(),
            after_cursor: after_cursor.into(),
        })
        .await?
        .into_inner();
    let mut events = Vec::new();
    while let Some(item) = stream.message().await? {
        events.push((item.event.expect("an event"), item.cursor));
    }
    Ok(events)
}

async fn a_siem_exports_the_trail_oldest_first_and_resumes_from_its_cursor(backend: Backend) {
    let app = TestApp::spawn_with(backend, |s| s.audit_export_settle_ms = 0).await;
    app.create_tenant("acme").await;
    for d in ["a.example", "b.example", "c.example"] {
        app.add_domain("acme", d).await;
    }
    app.create_tenant("globex").await;
    app.add_domain("globex", "globex.example").await;

    let all = export(&app, "acme", "").await.unwrap();
    let actions: Vec<String> = all.iter().map(|(e, _)| action(e)).collect();
    assert_eq!(
        actions,
        [
            "tenant_created",
            "domain_added",
            "domain_added",
            "domain_added"
        ]
    );
    assert!(
        all.iter().all(|(e, _)| e.tenant_id == "acme"),
        "only acme's"
    );
    // The same events ListAuditEvents shows, in the opposite order.
    let listed: Vec<String> = app
        .audit_events("acme")
        .await
        .into_iter()
        .rev()
        .map(|e| e.event_id)
        .collect();
    let exported: Vec<String> = all.iter().map(|(e, _)| e.event_id.clone()).collect();
    assert_eq!(exported, listed);

    // Resuming after the second event sends the rest, once.
    let rest = export(&app, "acme", &all[1].1).await.unwrap();
    let rest_ids: Vec<&String> = rest.iter().map(|(e, _)| &e.event_id).collect();
    assert_eq!(rest_ids, vec![&exported[2], &exported[3]]);
    // After the last there is nothing, until something happens.
    let last = &all[3].1;
    assert!(export(&app, "acme", last).await.unwrap().is_empty());
    app.add_domain("acme", "d.example").await;
    let new = export(&app, "acme", last).await.unwrap();
    assert_eq!(new.len(), 1);
    assert_eq!(action(&new[0].0), "domain_added");
    assert_eq!(new[0].0.target, "d.example");

    let bad = expect_failure(export(&app, "acme", "not-a-cursor").await);
    assert_eq!(bad.code, Code::InvalidArgument);
    assert_eq!(bad.fields, vec!["after_cursor"]);
    let other = expect_failure(
        app.admin("alice@acme.example", "acme")
            .audit_service()
            .export_audit_events(pb::ExportAuditEventsRequest {
                tenant_id: "globex".into(),
                after_cursor: String::new(),
            })
            .await,
    );
    assert_eq!(other.code, Code::PermissionDenied, "another tenant's trail");
    app.stop().await;

    // By default the newest seconds are held back: a just-written event is not exported yet.
    let settling = TestApp::spawn(backend).await;
    settling.create_tenant("acme").await;
    assert!(export(&settling, "acme", "").await.unwrap().is_empty());
    settling.stop().await;
}

async fn every_change_is_audited_with_the_authenticated_actor_and_request_id(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let service = app.with_token(&DevToken::service("portal-backend").all_permissions());
    let mut create = Request::new(pb::CreateTenantRequest {
        tenant_id: "acme".into(),
        display_name: "Acme".into(),
    });
    create
        .metadata_mut()
        .insert("x-request-id", "req-create-acme".parse().unwrap());
    service
        .tenant_service()
        .create_tenant(create)
        .await
        .unwrap();
    app.admin("alice@acme.example", "acme")
        .tenant_service()
        .add_domain(pb::AddDomainRequest {
            tenant_id: "acme".into(),
            domain: "acme.example".into(),
        })
        .await
        .unwrap();

    let events = app.audit_events("acme").await;
    assert_eq!(events.len(), 2);
    let (added, created) = (&events[0], &events[1]);

    assert_eq!(created.section(), pb::AuditSection::Tenants);
    assert_eq!(action(created), "tenant_created");
    assert_eq!(created.target, "acme");
    assert_eq!(
        created.actor, "portal-backend",
        "service callers are audited by their subject"
    );
    assert_eq!(created.correlation_id, "req-create-acme");
    assert_eq!(created.outcome(), pb::AuditOutcome::Succeeded);
    let Some(pb::audit_event::Details::TenantCreated(details)) = &created.details else {
        panic!(
            "tenant_created carries its typed details: {:?}",
            created.details
        )
    };
    assert_eq!(details.display_name, "Acme");

    assert_eq!(added.section(), pb::AuditSection::Domains);
    assert_eq!(action(added), "domain_added");
    assert_eq!(
        added.actor, "alice@acme.example",
        "humans are audited by their email"
    );
    assert!(
        !added.correlation_id.is_empty(),
        "the server names requests that came without an id"
    );
    assert!(added.event_id.parse::<i64>().unwrap() > created.event_id.parse::<i64>().unwrap());
    app.stop().await;
}

async fn audit_events_are_filtered_and_paged_newest_first(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    app.create_tenant("acme").await;
    app.create_tenant("globex").await;
    for i in 0..5 {
        app.admin("alice@acme.example", "acme")
            .tenant_service()
            .add_domain(pb::AddDomainRequest {
                tenant_id: "acme".into(),
                domain: format!("d{i}.acme.example"),
            })
            .await
            .unwrap();
    }
    app.add_domain("globex", "globex.example").await;
    let reader =
        app.with_token(&DevToken::admin("auditor@acme.example", "acme").permission("audit.read"));

    let list = |request: pb::ListAuditEventsRequest| {
        let reader = reader.clone();
        async move {
            reader
                .audit_service()
                .list_audit_events(request)
                .await
                .map(|r| r.into_inner())
        }
    };

    let mut targets = Vec::new();
    let mut page_token = String::new();
    loop {
        let page = list(pb::ListAuditEventsRequest {
            tenant_id: "acme".into(),
            section: pb::AuditSection::Domains.into(),
            page_size: 2,
            page_token,
            ..Default::default()
        })
        .await
        .unwrap();
        targets.extend(page.events.iter().map(|e| e.target.clone()));
        if page.next_page_token.is_empty() {
            break;
        }
        page_token = page.next_page_token;
    }
    let expected: Vec<String> = (0..5).rev().map(|i| format!("d{i}.acme.example")).collect();
    assert_eq!(targets, expected, "newest first, each once, only acme's");

    let by_actor = list(pb::ListAuditEventsRequest {
        tenant_id: "acme".into(),
        actor: "portal-backend".into(),
        ..Default::default()
    })
    .await
    .unwrap();
    assert_eq!(
        by_actor.events.iter().map(action).collect::<Vec<_>>(),
        ["tenant_created"]
    );

    let by_target = list(pb::ListAuditEventsRequest {
        tenant_id: "acme".into(),
        action: pb::AuditAction::DomainAdded.into(),
        target: "d3.acme.example".into(),
        ..Default::default()
    })
    .await
    .unwrap();
    assert_eq!(by_target.events.len(), 1);

    let newest = by_target.events[0].occur_time.unwrap();
    let after_newest = list(pb::ListAuditEventsRequest {
        tenant_id: "acme".into(),
        occur_after: Some(newest),
        ..Default::default()
    })
    .await
    .unwrap();
    let before_newest = list(pb::ListAuditEventsRequest {
        tenant_id: "acme".into(),
        occur_before: Some(newest),
        ..Default::default()
    })
    .await
    .unwrap();
    assert_eq!(
        after_newest.events.len() + before_newest.events.len(),
        6,
        "the time bounds split acme's six events without loss or overlap"
    );
    assert!(
        after_newest
            .events
            .iter()
            .any(|e| e.target == "d3.acme.example")
    );

    let denied = expect_failure(
        list(pb::ListAuditEventsRequest {
            tenant_id: "globex".into(),
            ..Default::default()
        })
        .await,
    );
    assert_eq!(denied.code, Code::PermissionDenied);
    app.stop().await;
}

async fn audit_filters_are_validated(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    app.create_tenant("acme").await;
    let failure = expect_failure(
        app.service()
            .audit_service()
            .list_audit_events(pb::ListAuditEventsRequest {
                tenant_id: "acme".into(),
                section: 99,
                action: 99,
                actor: "a\u{0}b".into(),
                occur_after: Some(Timestamp {
                    seconds: 0,
                    nanos: -5,
                }),
                page_size: -3,
                ..Default::default()
            })
            .await,
    );
    assert_eq!(failure.code, Code::InvalidArgument);
    assert_eq!(
        failure.fields,
        ["section", "action", "actor", "occur_after", "page_size"]
    );

    let page = app
        .service()
        .audit_service()
        .list_audit_events(pb::ListAuditEventsRequest {
            tenant_id: "acme".into(),
            page_size: 1,
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    assert!(page.next_page_token.is_empty(), "one event fits one page");
    app.create_tenant("globex").await;
    app.add_domain("acme", "a.acme.example").await;
    let page = app
        .service()
        .audit_service()
        .list_audit_events(pb::ListAuditEventsRequest {
            tenant_id: "acme".into(),
            page_size: 1,
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    let other_filter = expect_failure(
        app.service()
            .audit_service()
            .list_audit_events(pb::ListAuditEventsRequest {
                tenant_id: "acme".into(),
                section: pb::AuditSection::Tenants.into(),
                page_size: 1,
                page_token: page.next_page_token,
                ..Default::default()
            })
            .await,
    );
    assert_eq!(
        other_filter.fields,
        ["page_token"],
        "a token belongs to its filters"
    );
    app.stop().await;
}
