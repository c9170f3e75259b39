//! Tenant isolation as an attacker would test it: every RPC against every kind of bad
//! credential, another tenant, no tenant, and a missing permission — on a server in
//! production mode that trusts only the issuer's RS256 and ES256 public keys.

use base64::Engine as _;
use retract_client::{Client, DevToken, SigningKey, pb};
use retract_server::config::Mode;
use tonic::{Code, Status};

use crate::{
    app::TestApp,
    db::Backend,
    fixtures::{self, rs256},
    on_both_backends,
    status::failure,
};

on_both_backends!(every_rpc_refuses_every_attack);

/// Every RPC of the contract.
#[derive(Debug, Clone, Copy)]
enum Rpc {
    CreateTenant,
    GetTenant,
    ListTenants,
    AddDomain,
    RemoveDomain,
    ListDomains,
    StartGrant,
    CompleteGrant,
    GetGrant,
    VerifyDomains,
    RecordDelivery,
    RecordDeliveries,
    SearchDeliveries,
    GetRetractOptions,
    Retract,
    StartRetract,
    WatchRetract,
    GetRetractJob,
    ListRetractJobs,
    CancelRetractJob,
    ListRetractTargets,
    RestoreRetractJob,
    ListAuditEvents,
    ExportAuditEvents,
    DeleteTenant,
}

/// Every RPC, DeleteTenant last (the own administrator's call deletes its tenant).
const ALL: [Rpc; 25] = [
    Rpc::CreateTenant,
    Rpc::GetTenant,
    Rpc::ListTenants,
    Rpc::AddDomain,
    Rpc::RemoveDomain,
    Rpc::ListDomains,
    Rpc::StartGrant,
    Rpc::CompleteGrant,
    Rpc::GetGrant,
    Rpc::VerifyDomains,
    Rpc::RecordDelivery,
    Rpc::RecordDeliveries,
    Rpc::SearchDeliveries,
    Rpc::GetRetractOptions,
    Rpc::Retract,
    Rpc::StartRetract,
    Rpc::WatchRetract,
    Rpc::GetRetractJob,
    Rpc::ListRetractJobs,
    Rpc::CancelRetractJob,
    Rpc::ListRetractTargets,
    Rpc::RestoreRetractJob,
    Rpc::ListAuditEvents,
    Rpc::ExportAuditEvents,
    Rpc::DeleteTenant,
];

impl Rpc {
    /// The permission the README promises each RPC requires (`None`: any tenant member).
    fn permission(self) -> Option<&'static str> {
        use Rpc::*;
        Some(match self {
            CreateTenant | ListTenants | DeleteTenant => "tenants.manage",
            GetTenant => return None,
            AddDomain | RemoveDomain | ListDomains | StartGrant | CompleteGrant | GetGrant
            | VerifyDomains => "domains.manage",
            RecordDelivery | RecordDeliveries => "deliveries.write",
            SearchDeliveries | GetRetractOptions | WatchRetract | GetRetractJob
            | ListRetractJobs | ListRetractTargets => "retract.read",
            Retract | StartRetract | CancelRetractJob | RestoreRetractJob => "retract.message",
            ListAuditEvents | ExportAuditEvents => "audit.read",
        })
    }

    /// Whether the request names a tenant the server must check against the caller.
    fn names_tenant(self) -> bool {
        !matches!(self, Rpc::ListTenants | Rpc::CompleteGrant)
    }

    /// Calls the RPC as `client`, naming `tenant`.
    async fn call(self, client: &Client, tenant: &str) -> Result<(), Status> {
        let t = tenant.to_owned();
        let (tenants, retract, audit) = (
            client.tenant_service(),
            client.retract_service(),
            client.audit_service(),
        );
        let (mut tenants, mut retract, mut audit) = (tenants, retract, audit);
        match self {
            Rpc::CreateTenant => tenants
                .create_tenant(pb::CreateTenantRequest {
                    tenant_id: t,
                    display_name: "Attacker".into(),
                })
                .await
                .map(drop),
            Rpc::GetTenant => tenants
                .get_tenant(pb::GetTenantRequest { tenant_id: t })
                .await
                .map(drop),
            Rpc::ListTenants => tenants
                .list_tenants(pb::ListTenantsRequest::default())
                .await
                .map(drop),
            Rpc::AddDomain => tenants
                .add_domain(pb::AddDomainRequest {
                    tenant_id: t,
                    domain: "attack.example".into(),
                })
                .await
                .map(drop),
            Rpc::RemoveDomain => tenants
                .remove_domain(pb::RemoveDomainRequest {
                    tenant_id: t,
                    domain: "globex.example".into(),
                })
                .await
                .map(drop),
            Rpc::ListDomains => tenants
                .list_domains(pb::ListDomainsRequest {
                    tenant_id: t,
                    ..Default::default()
                })
                .await
                .map(drop),
            Rpc::StartGrant => tenants
                .start_grant(pb::StartGrantRequest {
                    tenant_id: t,
                    ..Default::default()
                })
                .await
                .map(drop),
            Rpc::CompleteGrant => tenants
                .complete_grant(pb::CompleteGrantRequest {
                    state: "s".into(),
                    code: "c".into(),
                    ..Default::default()
                })
                .await
                .map(drop),
            Rpc::GetGrant => tenants
                .get_grant(pb::GetGrantRequest {
                    tenant_id: t,
                    grant_id: "0b7e2f5c-3c1a-4f0e-9a51-6a9d3b1e2c40".into(),
                })
                .await
                .map(drop),
            Rpc::VerifyDomains => tenants
                .verify_domains(pb::VerifyDomainsRequest { tenant_id: t })
                .await
                .map(drop),
            Rpc::RecordDelivery => retract
                .record_delivery(pb::RecordDeliveryRequest {
                    tenant_id: t,
                    delivery: Some(valid_delivery()),
                })
                .await
                .map(drop),
            Rpc::RecordDeliveries => retract
                .record_deliveries(pb::RecordDeliveriesRequest {
                    tenant_id: t,
                    deliveries: vec![valid_delivery()],
                })
                .await
                .map(drop),
            Rpc::SearchDeliveries => retract
                .search_deliveries(pb::SearchDeliveriesRequest {
                    tenant_id: t,
                    ..Default::default()
                })
                .await
                .map(drop),
            Rpc::GetRetractOptions => retract
                .get_retract_options(pb::GetRetractOptionsRequest {
                    tenant_id: t,
                    internet_message_id: "<probe@attacker.example>".into(),
                    ..Default::default()
                })
                .await
                .map(drop),
            Rpc::Retract => retract
                .retract(pb::RetractRequest {
                    tenant_id: t,
                    ..Default::default()
                })
                .await
                .map(drop),
            Rpc::StartRetract => retract
                .start_retract(pb::StartRetractRequest {
                    tenant_id: t,
                    ..Default::default()
                })
                .await
                .map(drop),
            Rpc::WatchRetract => retract
                .watch_retract(pb::WatchRetractRequest {
                    tenant_id: t,
                    job_id: "0b7e2f5c-3c1a-4f0e-9a51-6a9d3b1e2c41".into(),
                    after_sequence: 0,
                })
                .await
                .map(drop),
            Rpc::GetRetractJob => retract
                .get_retract_job(pb::GetRetractJobRequest {
                    tenant_id: t,
                    job_id: "0b7e2f5c-3c1a-4f0e-9a51-6a9d3b1e2c41".into(),
                })
                .await
                .map(drop),
            Rpc::ListRetractJobs => retract
                .list_retract_jobs(pb::ListRetractJobsRequest {
                    tenant_id: t,
                    ..Default::default()
                })
                .await
                .map(drop),
            Rpc::CancelRetractJob => retract
                .cancel_retract_job(pb::CancelRetractJobRequest {
                    tenant_id: t,
                    job_id: "0b7e2f5c-3c1a-4f0e-9a51-6a9d3b1e2c41".into(),
                    ..Default::default()
                })
                .await
                .map(drop),
            Rpc::ListRetractTargets => retract
                .list_retract_targets(pb::ListRetractTargetsRequest {
                    tenant_id: t,
                    job_id: "0b7e2f5c-3c1a-4f0e-9a51-6a9d3b1e2c41".into(),
                    ..Default::default()
                })
                .await
                .map(drop),
            Rpc::RestoreRetractJob => retract
                .restore_retract_job(pb::RestoreRetractJobRequest {
                    tenant_id: t,
                    job_id: "0b7e2f5c-3c1a-4f0e-9a51-6a9d3b1e2c41".into(),
                    request_id: "6a0ee4c2-7c1e-4c62-9d7e-2f4b5a6c7d8e".into(),
                    ..Default::default()
                })
                .await
                .map(drop),
            Rpc::ListAuditEvents => audit
                .list_audit_events(pb::ListAuditEventsRequest {
                    tenant_id: t,
                    ..Default::default()
                })
                .await
                .map(drop),
            Rpc::ExportAuditEvents => audit
                .export_audit_events(pb::ExportAuditEventsRequest {
                    tenant_id: t,
                    after_cursor: String::new(),
                })
                .await
                .map(drop),
            Rpc::DeleteTenant => tenants
                .delete_tenant(pb::DeleteTenantRequest {
                    confirm: t.clone(),
                    tenant_id: t,
                    reason: String::new(),
                })
                .await
                .map(drop),
        }
    }
}

/// A well-formed delivery, so refusals come from the caller and not from the payload.
fn valid_delivery() -> pb::Delivery {
    pb::Delivery {
        internet_message_id: "<probe@attacker.example>".into(),
        sender: "mallory@attacker.example".into(),
        subject: "probe".into(),
        delivery_time: Some(prost_types::Timestamp {
            seconds: 1_750_000_000,
            nanos: 0,
        }),
        recipients: vec!["alice@globex.example".into()],
        ..Default::default()
    }
}

fn acme_admin() -> DevToken {
    rs256(DevToken::admin("alice@acme.example", "acme").all_permissions())
}

fn b64(s: &str) -> String {
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(s)
}

async fn every_rpc_refuses_every_attack(backend: Backend) {
    let app = TestApp::spawn_with(backend, |s| {
        s.mode = Mode::Production;
        s.jwt_public_key_files = vec![
            fixtures::path("issuer-rsa.pub.pem"),
            fixtures::path("issuer-ec.pub.pem"),
        ];
    })
    .await;
    let platform = app.with_token(&rs256(
        DevToken::service("portal-backend").all_permissions(),
    ));
    for tenant in ["acme", "globex"] {
        platform
            .tenant_service()
            .create_tenant(pb::CreateTenantRequest {
                tenant_id: tenant.into(),
                display_name: tenant.into(),
            })
            .await
            .unwrap();
    }
    platform
        .tenant_service()
        .add_domain(pb::AddDomainRequest {
            tenant_id: "globex".into(),
            domain: "globex.example".into(),
        })
        .await
        .unwrap();

    let valid = acme_admin().mint().unwrap();
    let (header, rest) = valid.split_once('.').unwrap();
    let (payload, signature) = rest.split_once('.').unwrap();
    let mut flipped = signature.to_owned().into_bytes();
    flipped[10] = if flipped[10] == b'A' { b'B' } else { b'A' };
    let tampered_signature = format!("{header}.{payload}.{}", String::from_utf8(flipped).unwrap());
    let forged_claims = b64(&format!(
        r#"{{"iss":"retract-dev","aud":"retract","sub":"mallory","exp":{},"tenants":["*"],"permissions":["tenants.manage","domains.manage"]}}"#,
        u32::MAX
    ));
    let tampered_payload = format!("{header}.{forged_claims}.{signature}");
    let alg_none = format!("{}.{forged_claims}.", b64(r#"{"alg":"none","typ":"JWT"}"#));
    // Key confusion: an HS256 token "signed" with the RSA public key as the shared secret.
    let hs256_with_public_key = acme_admin()
        .signed_with(
            SigningKey::Hs256(fixtures::read("issuer-rsa.pub.pem")),
            None,
        )
        .mint()
        .unwrap();
    let hs256_with_dev_key = DevToken::admin("alice@acme.example", "acme")
        .all_permissions()
        .mint()
        .unwrap();

    let unauthenticated: Vec<(&str, Client)> = vec![
        ("MISSING_CREDENTIALS", app.anonymous()),
        (
            "TOKEN_EXPIRED",
            app.with_token(&DevToken {
                expires_in_s: -3600,
                ..acme_admin()
            }),
        ),
        (
            "WRONG_AUDIENCE",
            app.with_token(&DevToken {
                audience: "other-service".into(),
                ..acme_admin()
            }),
        ),
        (
            "WRONG_ISSUER",
            app.with_token(&DevToken {
                issuer: "evil-issuer".into(),
                ..acme_admin()
            }),
        ),
        (
            "MALFORMED_CREDENTIALS",
            app.anonymous().with_token(&alg_none).unwrap(),
        ),
        (
            "INVALID_SIGNATURE",
            app.anonymous().with_token(&hs256_with_public_key).unwrap(),
        ),
        (
            "INVALID_SIGNATURE",
            app.anonymous().with_token(&hs256_with_dev_key).unwrap(),
        ),
        (
            "INVALID_SIGNATURE",
            app.anonymous().with_token(&tampered_signature).unwrap(),
        ),
        (
            "INVALID_SIGNATURE",
            app.anonymous().with_token(&tampered_payload).unwrap(),
        ),
    ];
    let own = app.with_token(&acme_admin());
    let no_tenant_claim = app.with_token(&DevToken {
        tenants: vec![],
        ..acme_admin()
    });

    for rpc in ALL {
        for (reason, client) in &unauthenticated {
            let status = rpc
                .call(client, "acme")
                .await
                .expect_err("attack must fail");
            let f = failure(&status);
            assert_eq!(
                (f.code, f.reason.as_str()),
                (Code::Unauthenticated, *reason),
                "{rpc:?} with {reason}"
            );
        }

        let own_result = rpc.call(&own, "acme").await;
        if let Err(status) = &own_result {
            assert!(
                !matches!(
                    status.code(),
                    Code::Unauthenticated | Code::PermissionDenied
                ),
                "{rpc:?} refused its own tenant's admin: {status:?}"
            );
        }

        if rpc.names_tenant() {
            for (who, client, tenant) in [
                ("another tenant", &own, "globex"),
                ("no tenant claim", &no_tenant_claim, "acme"),
            ] {
                let f = failure(&rpc.call(client, tenant).await.expect_err("must be denied"));
                assert_eq!(
                    (f.code, f.reason.as_str()),
                    (Code::PermissionDenied, "TENANT_NOT_ALLOWED"),
                    "{rpc:?} as {who}"
                );
            }
            let f = failure(
                &rpc.call(&own, "no-such-tenant")
                    .await
                    .expect_err("must be denied"),
            );
            assert_eq!(
                f.code,
                Code::PermissionDenied,
                "{rpc:?}: PERMISSION_DENIED comes before NOT_FOUND"
            );
        }

        if let Some(needed) = rpc.permission() {
            let mut lacking = acme_admin();
            lacking.permissions.retain(|p| p != needed);
            let f = failure(
                &rpc.call(&app.with_token(&lacking), "acme")
                    .await
                    .expect_err("must be denied"),
            );
            assert_eq!(
                (f.code, f.reason.as_str()),
                (Code::PermissionDenied, "MISSING_PERMISSION"),
                "{rpc:?} without {needed}"
            );
        }
    }

    let globex = platform
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
        "no attack changed another tenant's data"
    );
    let globex_audit = platform
        .audit_service()
        .list_audit_events(pb::ListAuditEventsRequest {
            tenant_id: "globex".into(),
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner()
        .events;
    assert!(
        globex_audit.iter().all(|e| e.actor == "portal-backend"),
        "{globex_audit:?}"
    );
    app.stop().await;
}
