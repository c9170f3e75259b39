//! Who may call: tokens, permissions and tenants (the minimal auth of the foundation; the
//! full attack matrix arrives with issue #4).

use std::future::Future;

use retract_client::{Client, DevToken, SigningKey, pb};
use tonic::{Code, Status};

use crate::{
    app::TestApp,
    db::Backend,
    on_both_backends,
    status::{Failure, expect_failure, failure},
};

on_both_backends!(
    every_working_rpc_refuses_calls_without_a_valid_token,
    a_missing_permission_is_denied_and_names_the_permission,
    another_tenant_is_denied_before_anything_is_looked_up,
    a_caller_limited_to_some_tenants_lists_only_those,
    each_caller_is_rate_limited_on_its_own_and_health_never_is,
);

/// Calls every working RPC of the foundation once with `client`, returning each outcome.
async fn call_every_working_rpc(client: &Client) -> Vec<(&'static str, Result<(), Status>)> {
    async fn run<T, F: Future<Output = Result<T, Status>>>(f: F) -> Result<(), Status> {
        f.await.map(|_| ())
    }
    vec![
        (
            "CreateTenant",
            run(client
                .tenant_service()
                .create_tenant(pb::CreateTenantRequest {
                    tenant_id: "acme".into(),
                    display_name: "Acme".into(),
                }))
            .await,
        ),
        (
            "GetTenant",
            run(client.tenant_service().get_tenant(pb::GetTenantRequest {
                tenant_id: "acme".into(),
            }))
            .await,
        ),
        (
            "ListTenants",
            run(client
                .tenant_service()
                .list_tenants(pb::ListTenantsRequest::default()))
            .await,
        ),
        (
            "AddDomain",
            run(client.tenant_service().add_domain(pb::AddDomainRequest {
                tenant_id: "acme".into(),
                domain: "acme.example".into(),
            }))
            .await,
        ),
        (
            "RemoveDomain",
            run(client
                .tenant_service()
                .remove_domain(pb::RemoveDomainRequest {
                    tenant_id: "acme".into(),
                    domain: "acme.example".into(),
                }))
            .await,
        ),
        (
            "ListDomains",
            run(client
                .tenant_service()
                .list_domains(pb::ListDomainsRequest {
                    tenant_id: "acme".into(),
                    ..Default::default()
                }))
            .await,
        ),
        (
            "ListAuditEvents",
            run(client
                .audit_service()
                .list_audit_events(pb::ListAuditEventsRequest {
                    tenant_id: "acme".into(),
                    ..Default::default()
                }))
            .await,
        ),
    ]
}

fn expect_all_denied(outcomes: Vec<(&'static str, Result<(), Status>)>, code: Code, reason: &str) {
    for (rpc, outcome) in outcomes {
        let Err(status) = outcome else {
            panic!("{rpc} succeeded but should answer {code:?} {reason}")
        };
        let Failure {
            code: got,
            reason: got_reason,
            ..
        } = failure(&status);
        assert_eq!(
            (got, got_reason.as_str()),
            (code, reason),
            "{rpc}: {status:?}"
        );
    }
}

async fn every_working_rpc_refuses_calls_without_a_valid_token(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let good = || DevToken::service("portal-backend").all_permissions();

    expect_all_denied(
        call_every_working_rpc(&app.anonymous()).await,
        Code::Unauthenticated,
        "MISSING_CREDENTIALS",
    );

    let cases: Vec<(&str, DevToken)> = vec![
        (
            "TOKEN_EXPIRED",
            DevToken {
                expires_in_s: -600,
                ..good()
            },
        ),
        (
            "TOKEN_NOT_YET_VALID",
            DevToken {
                not_before_s: 600,
                ..good()
            },
        ),
        (
            "INVALID_SIGNATURE",
            good().signed_with(SigningKey::Hs256("not-the-key".into()), None),
        ),
        (
            "WRONG_AUDIENCE",
            DevToken {
                audience: "someone-else".into(),
                ..good()
            },
        ),
        (
            "WRONG_ISSUER",
            DevToken {
                issuer: "evil".into(),
                ..good()
            },
        ),
    ];
    for (reason, token) in cases {
        expect_all_denied(
            call_every_working_rpc(&app.with_token(&token)).await,
            Code::Unauthenticated,
            reason,
        );
    }
    let garbage = app.anonymous().with_token("not.a.jwt").unwrap();
    expect_all_denied(
        call_every_working_rpc(&garbage).await,
        Code::Unauthenticated,
        "MALFORMED_CREDENTIALS",
    );

    let unsigned = {
        use base64::Engine as _;
        let b64 = |s: &str| base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(s);
        format!(
            "{}.{}.",
            b64(r#"{"alg":"none","typ":"JWT"}"#),
            b64(
                r#"{"iss":"retract-dev","aud":"retract","sub":"x","exp":9999999999,"tenants":["*"],"permissions":["tenants.manage"]}"#
            )
        )
    };
    let none = app.anonymous().with_token(&unsigned).unwrap();
    for (rpc, outcome) in call_every_working_rpc(&none).await {
        let status = outcome.expect_err(rpc);
        assert_eq!(
            status.code(),
            Code::Unauthenticated,
            "{rpc}: alg none must never pass"
        );
    }
    assert!(
        app.service()
            .tenant_service()
            .list_tenants(pb::ListTenantsRequest::default())
            .await
            .unwrap()
            .into_inner()
            .tenants
            .is_empty(),
        "nothing was created by the refused calls"
    );
    app.stop().await;
}

async fn a_missing_permission_is_denied_and_names_the_permission(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    app.create_tenant("acme").await;
    let reader =
        app.with_token(&DevToken::admin("rita@acme.example", "acme").permission("retract.read"));
    let failure = expect_failure(
        reader
            .tenant_service()
            .add_domain(pb::AddDomainRequest {
                tenant_id: "acme".into(),
                domain: "acme.example".into(),
            })
            .await,
    );
    assert_eq!(failure.code, Code::PermissionDenied);
    assert_eq!(failure.reason, "MISSING_PERMISSION");
    assert!(
        failure.message.contains("domains.manage"),
        "{}",
        failure.message
    );

    let admin =
        app.with_token(&DevToken::admin("alice@acme.example", "acme").permission("domains.manage"));
    let failure = expect_failure(
        admin
            .tenant_service()
            .create_tenant(pb::CreateTenantRequest {
                tenant_id: "mine".into(),
                display_name: "Mine".into(),
            })
            .await,
    );
    assert_eq!(
        (failure.code, failure.reason.as_str()),
        (Code::PermissionDenied, "MISSING_PERMISSION")
    );
    let tenant = reader
        .tenant_service()
        .get_tenant(pb::GetTenantRequest {
            tenant_id: "acme".into(),
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(
        tenant.tenant.unwrap().tenant_id,
        "acme",
        "any member of the tenant may read it"
    );
    app.stop().await;
}

async fn another_tenant_is_denied_before_anything_is_looked_up(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    app.create_tenant("acme").await;
    app.create_tenant("globex").await;
    app.add_domain("globex", "globex.example").await;
    let acme = app.admin("alice@acme.example", "acme");

    for tenant in ["globex", "does-not-exist"] {
        let get = expect_failure(
            acme.tenant_service()
                .get_tenant(pb::GetTenantRequest {
                    tenant_id: tenant.into(),
                })
                .await,
        );
        let list = expect_failure(
            acme.tenant_service()
                .list_domains(pb::ListDomainsRequest {
                    tenant_id: tenant.into(),
                    ..Default::default()
                })
                .await,
        );
        let remove = expect_failure(
            acme.tenant_service()
                .remove_domain(pb::RemoveDomainRequest {
                    tenant_id: tenant.into(),
                    domain: "globex.example".into(),
                })
                .await,
        );
        for f in [get, list, remove] {
            assert_eq!(
                (f.code, f.reason.as_str()),
                (Code::PermissionDenied, "TENANT_NOT_ALLOWED"),
                "existing and missing tenants look the same from outside"
            );
        }
    }
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
    assert_eq!(globex.domains.len(), 1);
    app.stop().await;
}

async fn a_caller_limited_to_some_tenants_lists_only_those(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    for t in ["acme", "globex", "initech"] {
        app.create_tenant(t).await;
    }
    let scoped = app.with_token(&DevToken {
        tenants: vec!["acme".into(), "initech".into()],
        ..DevToken::service("regional-portal").permission("tenants.manage")
    });
    let listed: Vec<String> = scoped
        .tenant_service()
        .list_tenants(pb::ListTenantsRequest::default())
        .await
        .unwrap()
        .into_inner()
        .tenants
        .into_iter()
        .map(|t| t.tenant_id)
        .collect();
    assert_eq!(listed, ["acme", "initech"]);
    app.stop().await;
}

async fn each_caller_is_rate_limited_on_its_own_and_health_never_is(backend: Backend) {
    use tonic_health::pb::{HealthCheckRequest, health_client::HealthClient};
    use tonic_types::StatusExt as _;

    let app = TestApp::spawn_with(backend, |s| {
        s.rate_limit_per_second = 0.5;
        s.rate_limit_burst = 3.0;
    })
    .await;
    let busy = app.with_token(&DevToken::service("busy-gateway").permission("tenants.manage"));
    for _ in 0..3 {
        busy.tenant_service()
            .list_tenants(pb::ListTenantsRequest::default())
            .await
            .expect("within the burst");
    }
    let status = busy
        .tenant_service()
        .list_tenants(pb::ListTenantsRequest::default())
        .await
        .unwrap_err();
    let f = failure(&status);
    assert_eq!(
        (f.code, f.reason.as_str()),
        (Code::ResourceExhausted, "RATE_LIMITED")
    );
    let retry = status
        .get_details_retry_info()
        .expect("RetryInfo says when to come back");
    let delay = retry.retry_delay.expect("a delay");
    assert!(
        delay > std::time::Duration::ZERO && delay <= std::time::Duration::from_secs(2),
        "{delay:?}"
    );

    let other = app.with_token(&DevToken::service("quiet-portal").permission("tenants.manage"));
    other
        .tenant_service()
        .list_tenants(pb::ListTenantsRequest::default())
        .await
        .expect("another caller is unaffected");

    let mut health = HealthClient::new(app.anonymous().channel());
    for _ in 0..20 {
        health
            .check(HealthCheckRequest::default())
            .await
            .expect("health is never limited");
    }
    app.stop().await;
}
