//! Creating, reading and listing tenants (the platform service's view).

use retract_client::pb;
use tonic::Code;

use crate::{app::TestApp, db::Backend, on_both_backends, status::expect_failure};

on_both_backends!(
    a_created_tenant_can_be_read_back,
    a_tenant_id_is_never_reused,
    create_tenant_names_every_invalid_field,
    an_unknown_tenant_is_not_found,
    tenants_are_listed_across_pages_exactly_once,
    list_tenants_refuses_bad_paging,
);

async fn a_created_tenant_can_be_read_back(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let created = app
        .service()
        .tenant_service()
        .create_tenant(pb::CreateTenantRequest {
            tenant_id: "acme".into(),
            display_name: "  Acme Corporation ".into(),
        })
        .await
        .unwrap()
        .into_inner()
        .tenant
        .unwrap();
    assert_eq!(created.tenant_id, "acme");
    assert_eq!(
        created.display_name, "Acme Corporation",
        "display names are trimmed"
    );
    assert_eq!(created.microsoft_tenant_id, "", "not linked before a grant");
    assert!(created.create_time.is_some());

    let read = app
        .admin("alice@acme.example", "acme")
        .tenant_service()
        .get_tenant(pb::GetTenantRequest {
            tenant_id: "acme".into(),
        })
        .await
        .unwrap()
        .into_inner()
        .tenant
        .unwrap();
    assert_eq!(read, created);
    app.stop().await;
}

async fn a_tenant_id_is_never_reused(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    app.create_tenant("acme").await;
    let failure = expect_failure(
        app.service()
            .tenant_service()
            .create_tenant(pb::CreateTenantRequest {
                tenant_id: "acme".into(),
                display_name: "Another Acme".into(),
            })
            .await,
    );
    assert_eq!(failure.code, Code::AlreadyExists);
    assert_eq!(failure.reason, "TENANT_ALREADY_EXISTS");
    assert_eq!(failure.domain, "retract.email-security.internal");
    let events = app.audit_events("acme").await;
    assert_eq!(
        events.len(),
        1,
        "the refused create wrote no audit event: {events:?}"
    );
    app.stop().await;
}

async fn create_tenant_names_every_invalid_field(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let failure = expect_failure(
        app.service()
            .tenant_service()
            .create_tenant(pb::CreateTenantRequest {
                tenant_id: "Acme_Corp".into(),
                display_name: "line\r\nbreak".into(),
            })
            .await,
    );
    assert_eq!(failure.code, Code::InvalidArgument);
    assert_eq!(failure.reason, "INVALID_ARGUMENT");
    assert_eq!(failure.fields, ["tenant_id", "display_name"]);

    for (tenant_id, display_name, field) in [
        ("", "Acme", "tenant_id"),
        (&*"a".repeat(64), "Acme", "tenant_id"),
        ("-acme", "Acme", "tenant_id"),
        ("acme", "", "display_name"),
        ("acme", &*"x".repeat(201), "display_name"),
    ] {
        let failure = expect_failure(
            app.service()
                .tenant_service()
                .create_tenant(pb::CreateTenantRequest {
                    tenant_id: tenant_id.into(),
                    display_name: display_name.into(),
                })
                .await,
        );
        assert_eq!(
            failure.code,
            Code::InvalidArgument,
            "{tenant_id:?} {display_name:?}"
        );
        assert_eq!(failure.fields, [field]);
    }
    let page = app
        .service()
        .tenant_service()
        .list_tenants(pb::ListTenantsRequest::default())
        .await
        .unwrap()
        .into_inner();
    assert!(page.tenants.is_empty(), "nothing was created: {page:?}");
    app.stop().await;
}

async fn an_unknown_tenant_is_not_found(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let failure = expect_failure(
        app.service()
            .tenant_service()
            .get_tenant(pb::GetTenantRequest {
                tenant_id: "nobody".into(),
            })
            .await,
    );
    assert_eq!(failure.code, Code::NotFound);
    assert_eq!(failure.reason, "TENANT_NOT_FOUND");
    app.stop().await;
}

async fn tenants_are_listed_across_pages_exactly_once(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let mut expected: Vec<String> = (0..7).map(|i| format!("tenant-{i}")).collect();
    for id in expected.iter().rev() {
        app.create_tenant(id).await;
    }
    expected.sort();

    let mut seen = Vec::new();
    let mut pages = 0;
    let mut page_token = String::new();
    loop {
        let page = app
            .service()
            .tenant_service()
            .list_tenants(pb::ListTenantsRequest {
                page_size: 3,
                page_token,
            })
            .await
            .unwrap()
            .into_inner();
        pages += 1;
        assert!(page.tenants.len() <= 3);
        seen.extend(page.tenants.into_iter().map(|t| t.tenant_id));
        if page.next_page_token.is_empty() {
            break;
        }
        page_token = page.next_page_token;
    }
    assert_eq!(seen, expected, "every tenant once, in id order");
    assert_eq!(pages, 3);
    app.stop().await;
}

async fn list_tenants_refuses_bad_paging(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    for (page_size, page_token, field) in [(-1, "", "page_size"), (10, "not-a-token", "page_token")]
    {
        let failure = expect_failure(
            app.service()
                .tenant_service()
                .list_tenants(pb::ListTenantsRequest {
                    page_size,
                    page_token: page_token.into(),
                })
                .await,
        );
        assert_eq!(failure.code, Code::InvalidArgument);
        assert_eq!(failure.fields, [field]);
    }
    app.stop().await;
}
