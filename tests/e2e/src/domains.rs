//! A tenant's registered mail domains: the Domains page of the product.

use retract_client::pb;
use tonic::Code;

use crate::{app::TestApp, app::action, db::Backend, on_both_backends, status::expect_failure};

on_both_backends!(
    a_domain_is_added_listed_and_removed,
    unicode_domains_are_stored_in_their_ascii_form,
    a_domain_belongs_to_one_tenant_only,
    malformed_domains_are_refused_with_the_field_named,
    domains_of_unknown_tenants_are_not_found,
    removing_an_unregistered_domain_is_not_found,
    domains_are_listed_across_pages_and_tokens_stay_with_their_tenant,
    a_tenant_is_read_with_its_domains_in_one_go_none_or_several,
);

async fn a_domain_is_added_listed_and_removed(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    app.create_tenant("acme").await;
    let admin = app.admin("alice@acme.example", "acme");

    let added = admin
        .tenant_service()
        .add_domain(pb::AddDomainRequest {
            tenant_id: "acme".into(),
            domain: "Mail.Acme.Example".into(),
        })
        .await
        .unwrap()
        .into_inner()
        .domain
        .unwrap();
    assert_eq!(added.name, "mail.acme.example");
    assert_eq!(added.tenant_id, "acme");
    assert_eq!(added.retract_status(), pb::RetractStatus::NotGranted);
    assert_eq!(added.last_check_time, None);

    let listed = admin
        .tenant_service()
        .list_domains(pb::ListDomainsRequest {
            tenant_id: "acme".into(),
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(listed.domains, std::slice::from_ref(&added));
    assert_eq!(listed.next_page_token, "");

    let removed = admin
        .tenant_service()
        .remove_domain(pb::RemoveDomainRequest {
            tenant_id: "acme".into(),
            domain: "MAIL.acme.example".into(),
        })
        .await
        .unwrap()
        .into_inner()
        .domain
        .unwrap();
    assert_eq!(removed, added);
    let listed = admin
        .tenant_service()
        .list_domains(pb::ListDomainsRequest {
            tenant_id: "acme".into(),
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    assert!(listed.domains.is_empty());

    let actions: Vec<_> = app
        .audit_events("acme")
        .await
        .into_iter()
        .map(|e| (action(&e), e.target, e.actor, e.section))
        .collect();
    let domains = pb::AuditSection::Domains as i32;
    assert_eq!(
        actions[..2],
        [
            (
                "domain_removed".into(),
                "mail.acme.example".into(),
                "alice@acme.example".into(),
                domains
            ),
            (
                "domain_added".into(),
                "mail.acme.example".into(),
                "alice@acme.example".into(),
                domains
            ),
        ]
    );
    app.stop().await;
}

async fn unicode_domains_are_stored_in_their_ascii_form(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    app.create_tenant("buecher").await;
    let added = app.add_domain("buecher", "B\u{fc}cher.example").await;
    assert_eq!(added.name, "xn--bcher-kva.example");
    let failure = expect_failure(
        app.service()
            .tenant_service()
            .add_domain(pb::AddDomainRequest {
                tenant_id: "buecher".into(),
                domain: "xn--bcher-kva.example".into(),
            })
            .await,
    );
    assert_eq!(
        failure.code,
        Code::AlreadyExists,
        "the ASCII and Unicode forms are one domain"
    );
    app.stop().await;
}

async fn a_domain_belongs_to_one_tenant_only(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    app.create_tenant("acme").await;
    app.create_tenant("globex").await;
    app.add_domain("acme", "shared.example").await;
    let failure = expect_failure(
        app.admin("hank@globex.example", "globex")
            .tenant_service()
            .add_domain(pb::AddDomainRequest {
                tenant_id: "globex".into(),
                domain: "shared.example".into(),
            })
            .await,
    );
    assert_eq!(failure.code, Code::AlreadyExists);
    assert_eq!(failure.reason, "DOMAIN_ALREADY_EXISTS");
    assert!(
        !failure.message.contains("acme"),
        "the holder is not disclosed: {}",
        failure.message
    );
    app.stop().await;
}

async fn malformed_domains_are_refused_with_the_field_named(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    app.create_tenant("acme").await;
    for domain in [
        "",
        "*.acme.example",
        "192.0.2.1",
        "[2001:db8::1]",
        "acme.example.",
        "localhost",
        "acme example",
        "acme.example\r\nX-Injected: 1",
        "acme.example' or '1'='1",
        &format!("{}.example", "a".repeat(64)),
    ] {
        let failure = expect_failure(
            app.service()
                .tenant_service()
                .add_domain(pb::AddDomainRequest {
                    tenant_id: "acme".into(),
                    domain: domain.into(),
                })
                .await,
        );
        assert_eq!(failure.code, Code::InvalidArgument, "{domain:?}");
        assert_eq!(failure.fields, ["domain"], "{domain:?}");
    }
    let failure = expect_failure(
        app.service()
            .tenant_service()
            .add_domain(pb::AddDomainRequest {
                tenant_id: "NOT VALID".into(),
                domain: "*".into(),
            })
            .await,
    );
    assert_eq!(failure.fields, ["tenant_id", "domain"]);
    assert_eq!(
        app.audit_events("acme").await.len(),
        1,
        "only tenant_created"
    );
    app.stop().await;
}

async fn domains_of_unknown_tenants_are_not_found(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let add = expect_failure(
        app.service()
            .tenant_service()
            .add_domain(pb::AddDomainRequest {
                tenant_id: "ghost".into(),
                domain: "ghost.example".into(),
            })
            .await,
    );
    assert_eq!(
        (add.code, add.reason.as_str()),
        (Code::NotFound, "TENANT_NOT_FOUND")
    );
    let list = expect_failure(
        app.service()
            .tenant_service()
            .list_domains(pb::ListDomainsRequest {
                tenant_id: "ghost".into(),
                ..Default::default()
            })
            .await,
    );
    assert_eq!(
        (list.code, list.reason.as_str()),
        (Code::NotFound, "TENANT_NOT_FOUND")
    );
    app.stop().await;
}

async fn removing_an_unregistered_domain_is_not_found(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    app.create_tenant("acme").await;
    app.create_tenant("globex").await;
    app.add_domain("globex", "globex.example").await;
    let failure = expect_failure(
        app.service()
            .tenant_service()
            .remove_domain(pb::RemoveDomainRequest {
                tenant_id: "acme".into(),
                domain: "globex.example".into(),
            })
            .await,
    );
    assert_eq!(
        (failure.code, failure.reason.as_str()),
        (Code::NotFound, "DOMAIN_NOT_FOUND")
    );
    let globex = app
        .service()
        .tenant_service()
        .list_domains(pb::ListDomainsRequest {
            tenant_id: "globex".into(),
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(
        globex.domains.len(),
        1,
        "another tenant's domain is untouched"
    );
    app.stop().await;
}

async fn domains_are_listed_across_pages_and_tokens_stay_with_their_tenant(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    app.create_tenant("acme").await;
    app.create_tenant("globex").await;
    let mut expected: Vec<String> = (0..5).map(|i| format!("d{i}.acme.example")).collect();
    for d in expected.iter().rev() {
        app.add_domain("acme", d).await;
    }
    app.add_domain("globex", "globex.example").await;
    expected.sort();

    let mut seen = Vec::new();
    let mut page_token = String::new();
    let mut first_token = None;
    loop {
        let page = app
            .service()
            .tenant_service()
            .list_domains(pb::ListDomainsRequest {
                tenant_id: "acme".into(),
                page_size: 2,
                page_token,
            })
            .await
            .unwrap()
            .into_inner();
        seen.extend(page.domains.into_iter().map(|d| d.name));
        if page.next_page_token.is_empty() {
            break;
        }
        first_token.get_or_insert(page.next_page_token.clone());
        page_token = page.next_page_token;
    }
    assert_eq!(seen, expected);

    let failure = expect_failure(
        app.service()
            .tenant_service()
            .list_domains(pb::ListDomainsRequest {
                tenant_id: "globex".into(),
                page_size: 2,
                page_token: first_token.unwrap(),
            })
            .await,
    );
    assert_eq!(failure.code, Code::InvalidArgument);
    assert_eq!(failure.fields, ["page_token"]);
    app.stop().await;
}

async fn a_tenant_is_read_with_its_domains_in_one_go_none_or_several(backend: Backend) {
    use retract_server::{domain::TenantId, store::StoreError};
    let app = TestApp::spawn(backend).await;
    app.create_tenant("acme").await;
    app.create_tenant("globex").await;
    app.add_domain("globex", "globex.example").await;
    let store = app.store().await;

    let acme = TenantId::parse("acme").unwrap();
    let (tenant, domains) = store.tenant_and_domains(&acme).await.unwrap();
    assert_eq!(tenant.id, acme);
    assert!(domains.is_empty(), "a tenant without domains: {domains:?}");

    app.add_domain("acme", "zeta.acme.example").await;
    app.add_domain("acme", "acme.example").await;
    let (_, domains) = store.tenant_and_domains(&acme).await.unwrap();
    let names: Vec<&str> = domains.iter().map(|d| d.name.as_str()).collect();
    assert_eq!(
        names,
        ["acme.example", "zeta.acme.example"],
        "its own, by name"
    );

    let unknown = store
        .tenant_and_domains(&TenantId::parse("initech").unwrap())
        .await;
    assert!(
        matches!(
            unknown,
            Err(StoreError::NotFound {
                resource: "tenant",
                ..
            })
        ),
        "{unknown:?}"
    );
    app.stop().await;
}
