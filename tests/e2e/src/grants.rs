//! "Grant Permissions" end to end: StartGrant, the administrator's browser following the
//! consent URL through graph-sim's identity platform and landing on our callback, and the
//! Domains list showing what the simulated Microsoft 365 tenant dictates.

use graph_sim::{
    GraphSim, SignIn,
    seed::{App, Domain, Tenant, User},
};
use retract_client::pb;
use tonic::Code;

use crate::{app::TestApp, app::action, db::Backend, on_both_backends, status::expect_failure};

on_both_backends!(
    an_administrator_grants_and_each_domain_shows_what_microsoft_says,
    a_declined_consent_fails_every_domain_with_microsofts_reason,
    a_replayed_state_changes_nothing,
    an_expired_consent_link_changes_nothing,
    a_forged_tenant_parameter_is_ignored,
    an_administrator_of_another_organisation_cannot_link_their_tenant,
    a_wrong_client_secret_fails_the_grant,
    a_ui_completes_the_grant_through_the_rpc,
    verify_domains_sees_consent_revoked_in_microsoft_365,
    a_linked_tenant_is_not_silently_relinked,
    an_overlong_error_from_microsoft_fails_the_grant_instead_of_leaving_it_completing,
    a_consent_interrupted_while_completing_is_failed_by_the_sweep,
);

const CLIENT_ID: &str = "6a1c1f2e-7a55-4a8e-9f53-2b7f2f1c0d11";
const CLIENT_SECRET: &str = "retract-test-secret";

fn contoso() -> Tenant {
    Tenant::new("Contoso")
        .domain(Domain::verified("contoso.com").default_domain())
        .domain(Domain::unverified("lab.contoso.com"))
        .user(User::new("admin@contoso.com").admin())
}

fn fabrikam() -> Tenant {
    Tenant::new("Fabrikam")
        .domain(Domain::verified("fabrikam.com").default_domain())
        // Entra lets an administrator set `mail` to anything: it must not count as proof.
        .user(
            User::new("boss@fabrikam.com")
                .admin()
                .mail("it-admin@contoso.com"),
        )
}

/// graph-sim with Contoso and Fabrikam, our server pointed at it, and tenant `acme` owning
/// contoso.com, lab.contoso.com (unverified at Microsoft) and absent.example (not there).
struct World {
    sim: GraphSim,
    app: TestApp,
}

async fn world(backend: Backend, adjust: impl FnOnce(&mut retract_server::Settings)) -> World {
    let sim = GraphSim::builder()
        .app(App::new(CLIENT_ID, CLIENT_SECRET).certificate(fixture_text("app-cert.cert.pem")))
        .tenant(contoso())
        .tenant(fabrikam())
        .sign_in(SignIn::approve_as("admin@contoso.com"))
        .start()
        .await
        .expect("graph-sim starts");
    let (graph, login) = (sim.graph_base_url(), sim.login_base_url());
    let app = TestApp::spawn_with(backend, |s| {
        s.graph_base_url = graph;
        s.login_base_url = login;
        s.graph_client_id = CLIENT_ID.to_owned();
        s.graph_client_secret = Some(CLIENT_SECRET.into());
        adjust(s);
    })
    .await;
    app.create_tenant("acme").await;
    for d in ["contoso.com", "lab.contoso.com", "absent.example"] {
        app.add_domain("acme", d).await;
    }
    World { sim, app }
}

impl World {
    fn admin(&self) -> retract_client::Client {
        self.app.admin("it-admin@contoso.com", "acme")
    }

    async fn start_grant(&self, allow_relink: bool) -> (pb::Grant, String) {
        let r = self
            .admin()
            .tenant_service()
            .start_grant(pb::StartGrantRequest {
                tenant_id: "acme".into(),
                allow_relink,
            })
            .await
            .unwrap()
            .into_inner();
        (r.grant.unwrap(), r.consent_url)
    }

    async fn domains(&self) -> Vec<(String, pb::RetractStatus, String)> {
        self.admin()
            .tenant_service()
            .list_domains(pb::ListDomainsRequest {
                tenant_id: "acme".into(),
                ..Default::default()
            })
            .await
            .unwrap()
            .into_inner()
            .domains
            .into_iter()
            .map(|d| (d.name.clone(), d.retract_status(), d.status_detail))
            .collect()
    }

    async fn linked_tenant(&self) -> String {
        self.admin()
            .tenant_service()
            .get_tenant(pb::GetTenantRequest {
                tenant_id: "acme".into(),
            })
            .await
            .unwrap()
            .into_inner()
            .tenant
            .unwrap()
            .microsoft_tenant_id
    }

    async fn grant(&self, id: &str) -> pb::Grant {
        self.admin()
            .tenant_service()
            .get_grant(pb::GetGrantRequest {
                tenant_id: "acme".into(),
                grant_id: id.into(),
            })
            .await
            .unwrap()
            .into_inner()
            .grant
            .unwrap()
    }

    async fn audit_actions(&self) -> Vec<(String, String)> {
        self.app
            .audit_events("acme")
            .await
            .into_iter()
            .filter(|e| e.section() == pb::AuditSection::Domains && action(e).starts_with("grant"))
            .map(|e| (action(&e), e.actor))
            .collect()
    }
}

/// A browser without cookies or scripts: follows the consent URL to Microsoft, which redirects
/// back; returns the callback URL it was sent to.
async fn consent_redirect(consent_url: &str) -> String {
    let browser = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap();
    let response = browser.get(consent_url).send().await.unwrap();
    assert!(
        response.status().is_redirection(),
        "Microsoft redirects back: {}",
        response.status()
    );
    response.headers()["location"].to_str().unwrap().to_owned()
}

/// The browser lands on our callback; returns the status and the page.
async fn land(callback_url: &str) -> (u16, String) {
    let response = reqwest::get(callback_url).await.unwrap();
    let status = response.status().as_u16();
    (status, response.text().await.unwrap())
}

fn query_param(url: &str, name: &str) -> String {
    url::Url::parse(url)
        .unwrap()
        .query_pairs()
        .find(|(k, _)| k == name)
        .map(|(_, v)| v.into_owned())
        .unwrap_or_default()
}

async fn an_administrator_grants_and_each_domain_shows_what_microsoft_says(backend: Backend) {
    let w = world(backend, |_| {}).await;
    let (grant, consent_url) = w.start_grant(false).await;
    assert_eq!(grant.state(), pb::GrantState::AwaitingConsent);
    assert!(
        consent_url.starts_with(&w.sim.login_base_url()),
        "{consent_url}"
    );
    assert_eq!(
        query_param(&consent_url, "scope"),
        "openid profile https://graph.microsoft.com/.default"
    );
    assert_eq!(query_param(&consent_url, "code_challenge_method"), "S256");
    assert!(
        w.domains()
            .await
            .iter()
            .all(|(_, s, _)| *s == pb::RetractStatus::Pending)
    );

    let callback = consent_redirect(&consent_url).await;
    assert!(callback.contains("/consent/callback?"), "{callback}");
    let (status, page) = land(&callback).await;
    assert_eq!(status, 200, "{page}");
    assert!(
        page.contains("Permissions granted for some domains"),
        "{page}"
    );
    assert!(page.contains("You can close this tab"), "{page}");
    for secret in [
        query_param(&callback, "code"),
        query_param(&callback, "state"),
    ] {
        assert!(!page.contains(&secret), "the page shows no code or state");
    }

    assert_eq!(
        w.domains().await,
        [
            (
                "absent.example".into(),
                pb::RetractStatus::Failed,
                "domain is not configured in the Microsoft 365 tenant".into()
            ),
            (
                "contoso.com".into(),
                pb::RetractStatus::Granted,
                String::new()
            ),
            (
                "lab.contoso.com".into(),
                pb::RetractStatus::Failed,
                "domain is not verified in Microsoft 365".into()
            ),
        ]
    );
    assert_eq!(w.linked_tenant().await, contoso().id());
    let done = w.grant(&grant.grant_id).await;
    assert_eq!(done.state(), pb::GrantState::PartiallySucceeded);
    assert_eq!(done.microsoft_tenant_id, contoso().id());
    assert_eq!(done.domain_outcomes.len(), 3);
    assert_eq!(
        w.audit_actions().await,
        [
            ("grant_completed".into(), "it-admin@contoso.com".into()),
            ("grant_started".into(), "it-admin@contoso.com".into()),
        ],
        "the callback is audited as the administrator who started it"
    );
    let completed = w
        .app
        .audit_events("acme")
        .await
        .into_iter()
        .find(|e| action(e) == "grant_completed")
        .unwrap();
    assert_eq!(completed.outcome(), pb::AuditOutcome::PartiallySucceeded);
    let details = serde_json::to_string(&format!("{:?}", completed.details)).unwrap();
    assert!(
        details.contains("admin@contoso.com") && details.contains("lab.contoso.com"),
        "{details}"
    );
    w.app.stop().await;
}

async fn a_declined_consent_fails_every_domain_with_microsofts_reason(backend: Backend) {
    let w = world(backend, |_| {}).await;
    w.sim.set_sign_in(SignIn::Decline);
    let (grant, consent_url) = w.start_grant(false).await;
    let (status, page) = land(&consent_redirect(&consent_url).await).await;
    assert_eq!(status, 200);
    assert!(page.contains("Permissions were not granted"), "{page}");
    let done = w.grant(&grant.grant_id).await;
    assert_eq!(done.state(), pb::GrantState::Failed);
    assert_eq!(done.error, "access_denied");
    assert!(
        done.error_description.contains("AADSTS"),
        "{}",
        done.error_description
    );
    for (_, status, reason) in w.domains().await {
        assert_eq!(status, pb::RetractStatus::Failed);
        assert_eq!(reason, done.error_description, "Microsoft's description");
    }
    assert_eq!(w.linked_tenant().await, "", "nothing linked");
    assert_eq!(w.audit_actions().await[0].0, "grant_failed");
    w.app.stop().await;
}

async fn a_replayed_state_changes_nothing(backend: Backend) {
    let w = world(backend, |_| {}).await;
    let (_, consent_url) = w.start_grant(false).await;
    let callback = consent_redirect(&consent_url).await;
    assert_eq!(land(&callback).await.0, 200);
    let (domains, audit) = (w.domains().await, w.audit_actions().await);

    let (status, page) = land(&callback).await;
    assert_eq!(status, 400);
    assert!(page.contains("unknown or was already used"), "{page}");
    let forged = callback.replace(&query_param(&callback, "state"), "made-up-state");
    assert_eq!(land(&forged).await.0, 400);
    assert_eq!(w.domains().await, domains);
    assert_eq!(w.audit_actions().await, audit);

    let rpc = expect_failure(
        w.admin()
            .tenant_service()
            .complete_grant(pb::CompleteGrantRequest {
                state: query_param(&callback, "state"),
                code: query_param(&callback, "code"),
                ..Default::default()
            })
            .await,
    );
    assert_eq!(
        (rpc.code, rpc.fields.as_slice()),
        (Code::InvalidArgument, ["state".to_owned()].as_slice())
    );
    w.app.stop().await;
}

async fn an_expired_consent_link_changes_nothing(backend: Backend) {
    let w = world(backend, |s| s.consent_ttl_ms = 1).await;
    let (grant, consent_url) = w.start_grant(false).await;
    tokio::time::sleep(std::time::Duration::from_millis(5)).await;
    let (status, page) = land(&consent_redirect(&consent_url).await).await;
    assert_eq!(status, 410, "{page}");
    assert!(page.contains("expired"), "{page}");
    assert_eq!(
        w.grant(&grant.grant_id).await.state(),
        pb::GrantState::Expired
    );
    assert_eq!(w.linked_tenant().await, "", "not linked");
    assert!(
        w.domains()
            .await
            .iter()
            .all(|(_, s, _)| *s != pb::RetractStatus::Granted)
    );
    w.app.stop().await;
}

async fn a_forged_tenant_parameter_is_ignored(backend: Backend) {
    let w = world(backend, |_| {}).await;
    let (_, consent_url) = w.start_grant(false).await;
    let callback = consent_redirect(&consent_url).await;
    let forged = format!("{callback}&tenant={}&admin_consent=True", fabrikam().id());
    assert_eq!(land(&forged).await.0, 200);
    assert_eq!(
        w.linked_tenant().await,
        contoso().id(),
        "the tenant comes from the tokens"
    );
    w.app.stop().await;
}

async fn an_administrator_of_another_organisation_cannot_link_their_tenant(backend: Backend) {
    let w = world(backend, |_| {}).await;
    // The consent URL was forwarded to Fabrikam's administrator, who approves.
    w.sim.set_sign_in(SignIn::approve_as("boss@fabrikam.com"));
    let (grant, consent_url) = w.start_grant(false).await;
    let (status, page) = land(&consent_redirect(&consent_url).await).await;
    assert_eq!(status, 200);
    assert!(
        page.contains("does not sign in with a domain of this tenant"),
        "{page}"
    );
    let done = w.grant(&grant.grant_id).await;
    assert_eq!(done.state(), pb::GrantState::Failed);
    assert_eq!(done.error, "foreign_administrator");
    assert_eq!(w.linked_tenant().await, "");
    assert!(
        w.domains()
            .await
            .iter()
            .all(|(_, s, _)| *s == pb::RetractStatus::Failed)
    );
    w.app.stop().await;
}

async fn a_wrong_client_secret_fails_the_grant(backend: Backend) {
    let w = world(backend, |s| {
        s.graph_client_secret = Some("not-the-secret".into());
    })
    .await;
    let (grant, consent_url) = w.start_grant(false).await;
    let (status, _) = land(&consent_redirect(&consent_url).await).await;
    assert_eq!(status, 200);
    let done = w.grant(&grant.grant_id).await;
    assert_eq!(done.state(), pb::GrantState::Failed);
    assert_eq!(done.error, "invalid_client");
    assert!(
        done.error_description.contains("AADSTS"),
        "{}",
        done.error_description
    );
    assert_eq!(w.linked_tenant().await, "");
    w.app.stop().await;
}

async fn a_ui_completes_the_grant_through_the_rpc(backend: Backend) {
    let w = world(backend, |_| {}).await;
    let (_, consent_url) = w.start_grant(false).await;
    let callback = consent_redirect(&consent_url).await;
    let grant = w
        .admin()
        .tenant_service()
        .complete_grant(pb::CompleteGrantRequest {
            state: query_param(&callback, "state"),
            code: query_param(&callback, "code"),
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner()
        .grant
        .unwrap();
    assert_eq!(grant.state(), pb::GrantState::PartiallySucceeded);
    assert_eq!(grant.microsoft_tenant_id, contoso().id());
    w.app.stop().await;
}

async fn verify_domains_sees_consent_revoked_in_microsoft_365(backend: Backend) {
    let w = world(backend, |_| {}).await;
    let failure = expect_failure(
        w.admin()
            .tenant_service()
            .verify_domains(pb::VerifyDomainsRequest {
                tenant_id: "acme".into(),
            })
            .await,
    );
    assert_eq!(
        (failure.code, failure.reason.as_str()),
        (Code::FailedPrecondition, "TENANT_NOT_LINKED")
    );

    let (_, consent_url) = w.start_grant(false).await;
    land(&consent_redirect(&consent_url).await).await;
    let verified = w
        .admin()
        .tenant_service()
        .verify_domains(pb::VerifyDomainsRequest {
            tenant_id: "acme".into(),
        })
        .await
        .unwrap()
        .into_inner();
    let granted: Vec<_> = verified
        .domains
        .iter()
        .filter(|d| d.retract_status() == pb::RetractStatus::Granted)
        .map(|d| d.name.as_str())
        .collect();
    assert_eq!(granted, ["contoso.com"], "the retry without a new consent");

    // Contoso's administrator removes the app; our cached token runs out.
    w.sim.reset().unwrap();
    assert!(!w.sim.has_consent(contoso().id(), CLIENT_ID));
    w.sim
        .advance_clock(std::time::Duration::from_secs(4 * 3600));
    w.admin()
        .tenant_service()
        .verify_domains(pb::VerifyDomainsRequest {
            tenant_id: "acme".into(),
        })
        .await
        .unwrap();
    for (_, status, reason) in w.domains().await {
        assert_eq!(
            (status, reason.as_str()),
            (
                pb::RetractStatus::Failed,
                "permissions revoked in Microsoft 365"
            )
        );
    }
    let events = w.app.audit_events("acme").await;
    let verifications: Vec<_> = events
        .iter()
        .filter(|e| action(e) == "domains_verified")
        .collect();
    assert_eq!(verifications.len(), 2);
    assert_eq!(verifications[0].outcome(), pb::AuditOutcome::Failed);
    assert_eq!(verifications[0].actor, "it-admin@contoso.com");
    w.app.stop().await;
}

async fn a_linked_tenant_is_not_silently_relinked(backend: Backend) {
    let w = world(backend, |_| {}).await;
    w.app.add_domain("acme", "fabrikam.com").await;
    let (_, consent_url) = w.start_grant(false).await;
    land(&consent_redirect(&consent_url).await).await;
    assert_eq!(w.linked_tenant().await, contoso().id());

    w.sim.set_sign_in(SignIn::approve_as("boss@fabrikam.com"));
    let (_, consent_url) = w.start_grant(false).await;
    let (status, page) = land(&consent_redirect(&consent_url).await).await;
    assert_eq!(status, 409, "{page}");
    assert!(page.contains("already linked"), "{page}");
    assert!(!page.contains(contoso().id()), "no tenant ids on the page");
    assert_eq!(w.linked_tenant().await, contoso().id(), "still Contoso");

    let (_, consent_url) = w.start_grant(true).await;
    assert_eq!(land(&consent_redirect(&consent_url).await).await.0, 200);
    assert_eq!(
        w.linked_tenant().await,
        fabrikam().id(),
        "relinked when asked explicitly"
    );
    w.app.stop().await;
}

on_both_backends!(
    an_identity_platform_outage_during_verification_changes_no_domain,
    our_rejected_secret_is_a_service_error_and_revokes_no_tenant,
    an_administrator_grants_with_a_certificate_credential,
);

fn fixture_text(name: &str) -> String {
    std::fs::read_to_string(
        std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("fixtures")
            .join(name),
    )
    .expect("fixture")
}

async fn verify(w: &World) -> Result<pb::VerifyDomainsResponse, tonic::Status> {
    w.admin()
        .tenant_service()
        .verify_domains(pb::VerifyDomainsRequest {
            tenant_id: "acme".into(),
        })
        .await
        .map(tonic::Response::into_inner)
}

fn granted(domains: &[(String, pb::RetractStatus, String)]) -> Vec<String> {
    domains
        .iter()
        .filter(|(_, s, _)| *s == pb::RetractStatus::Granted)
        .map(|(d, _, _)| d.clone())
        .collect()
}

/// A granted tenant whose cached app token Microsoft no longer takes (its clock ran on), so
/// the next verification needs a new token.
async fn granted_world(
    backend: Backend,
    adjust: impl FnOnce(&mut retract_server::Settings),
) -> World {
    let w = world(backend, |s| {
        s.graph_max_attempts = 3;
        s.graph_backoff_base_ms = 10;
        s.graph_backoff_max_ms = 50;
        adjust(s);
    })
    .await;
    let (_, consent_url) = w.start_grant(false).await;
    land(&consent_redirect(&consent_url).await).await;
    assert_eq!(granted(&w.domains().await), ["contoso.com"]);
    w.sim
        .advance_clock(std::time::Duration::from_secs(4 * 3600));
    w
}

async fn an_identity_platform_outage_during_verification_changes_no_domain(backend: Backend) {
    let w = granted_world(backend, |_| {}).await;
    let before = w.domains().await;
    w.sim.set_limits(graph_sim::Limits {
        retry_after_secs: 0,
        ..Default::default()
    });
    w.sim.set_faults(graph_sim::FaultSettings {
        error_503: 1.0,
        endpoints: vec![graph_sim::Endpoint::Token],
        ..Default::default()
    });
    let failure = expect_failure(verify(&w).await);
    assert_eq!(
        (failure.code, failure.reason.as_str()),
        (Code::Unavailable, "MICROSOFT_UNAVAILABLE")
    );
    assert_eq!(w.domains().await, before, "an outage revokes nothing");
    let token_answers: Vec<_> = w
        .sim
        .requests()
        .into_iter()
        .filter(|r| r.path.ends_with("/oauth2/v2.0/token") && r.status == Some(503))
        .collect();
    assert_eq!(token_answers.len(), 3, "retried up to graph_max_attempts");

    // Microsoft is back: the next verification works without a new consent.
    w.sim.set_faults(graph_sim::FaultSettings::default());
    verify(&w).await.expect("verified again");
    assert_eq!(granted(&w.domains().await), ["contoso.com"]);
    w.app.stop().await;
}

async fn our_rejected_secret_is_a_service_error_and_revokes_no_tenant(backend: Backend) {
    let w = granted_world(backend, |_| {}).await;
    let before = w.domains().await;
    assert!(w.app.health().graph_credential_rejection().is_none());
    // Someone retires our secret in Entra (or it expires) without telling the service.
    w.sim.update_app(CLIENT_ID, |app| {
        app.client_secret = "a-newer-secret".into();
    });
    let failure = expect_failure(verify(&w).await);
    assert_eq!(
        (failure.code, failure.reason.as_str()),
        (Code::FailedPrecondition, "GRAPH_NOT_CONFIGURED")
    );
    assert!(
        failure.message.contains("credential"),
        "{}",
        failure.message
    );
    assert_eq!(w.domains().await, before, "no tenant is marked revoked");
    let rejection = w
        .app
        .health()
        .graph_credential_rejection()
        .expect("health sees the configuration error");
    assert!(rejection.contains("AADSTS7000215"), "{rejection}");
    w.app.stop().await;
}

async fn an_administrator_grants_with_a_certificate_credential(backend: Backend) {
    let dir = tempfile::tempdir().unwrap();
    let pem = dir.path().join("graph.pem");
    std::fs::write(
        &pem,
        fixture_text("app-cert.cert.pem") + &fixture_text("app-cert.key.pem"),
    )
    .unwrap();
    let w = world(backend, |s| {
        s.graph_client_secret = None;
        s.graph_client_certificate_file = Some(pem.clone());
    })
    .await;
    let (grant, consent_url) = w.start_grant(false).await;
    let (status, page) = land(&consent_redirect(&consent_url).await).await;
    assert_eq!(status, 200, "{page}");
    assert_eq!(
        w.grant(&grant.grant_id).await.state(),
        pb::GrantState::PartiallySucceeded
    );
    assert_eq!(granted(&w.domains().await), ["contoso.com"]);
    w.app.stop().await;
}

on_both_backends!(
    an_abandoned_attempt_does_not_leave_domains_pending,
    a_new_attempt_does_not_undo_what_an_earlier_consent_granted,
    the_callback_has_its_own_rate_limit,
    periodic_reverification_notices_revoked_consent,
);

async fn the_callback_has_its_own_rate_limit(backend: Backend) {
    let w = world(backend, |s| {
        s.consent_callback_rate_per_second = 0.01;
        s.consent_callback_burst = 2.0;
    })
    .await;
    let callback = format!(
        "http://{}/consent/callback?state=guessing&code=x",
        w.app.addr
    );
    assert_eq!(land(&callback).await.0, 400);
    assert_eq!(land(&callback).await.0, 400);
    let (status, page) = land(&callback).await;
    assert_eq!(status, 429, "state guessing is slowed down: {page}");
    w.app.stop().await;
}

async fn periodic_reverification_notices_revoked_consent(backend: Backend) {
    let w = world(backend, |s| s.domain_reverify_interval_ms = 100).await;
    let (_, consent_url) = w.start_grant(false).await;
    land(&consent_redirect(&consent_url).await).await;
    assert!(
        w.domains()
            .await
            .iter()
            .any(|(_, s, _)| *s == pb::RetractStatus::Granted)
    );

    w.sim.reset().unwrap();
    w.sim
        .advance_clock(std::time::Duration::from_secs(4 * 3600));
    let noticed = tokio::time::timeout(std::time::Duration::from_secs(20), async {
        loop {
            if w.domains()
                .await
                .iter()
                .all(|(_, _, reason)| reason == "permissions revoked in Microsoft 365")
            {
                return;
            }
            tokio::time::sleep(std::time::Duration::from_millis(50)).await;
        }
    })
    .await;
    assert!(
        noticed.is_ok(),
        "nobody pressed a button, yet the domains show the revocation"
    );
    let actors: Vec<_> = w
        .app
        .audit_events("acme")
        .await
        .into_iter()
        .filter(|e| action(e) == "domains_verified")
        .map(|e| e.actor)
        .collect();
    assert!(
        actors.iter().all(|a| a == "retract:periodic-verification"),
        "{actors:?}"
    );
    w.app.stop().await;
}

async fn a_new_attempt_does_not_undo_what_an_earlier_consent_granted(backend: Backend) {
    let w = world(backend, |_| {}).await;
    let (_, consent_url) = w.start_grant(false).await;
    land(&consent_redirect(&consent_url).await).await;
    let granted = |domains: &[(String, pb::RetractStatus, String)]| {
        domains
            .iter()
            .filter(|(_, s, _)| *s == pb::RetractStatus::Granted)
            .map(|(d, _, _)| d.clone())
            .collect::<Vec<_>>()
    };
    assert_eq!(granted(&w.domains().await), ["contoso.com"]);

    let (_, consent_url) = w.start_grant(false).await;
    let during = w.domains().await;
    assert_eq!(
        granted(&during),
        ["contoso.com"],
        "still granted while a new attempt runs"
    );
    assert!(
        during
            .iter()
            .filter(|(d, _, _)| d != "contoso.com")
            .all(|(_, s, _)| *s == pb::RetractStatus::Pending)
    );

    w.sim.set_sign_in(SignIn::Decline);
    land(&consent_redirect(&consent_url).await).await;
    let after = w.domains().await;
    assert_eq!(
        granted(&after),
        ["contoso.com"],
        "a declined re-grant leaves the earlier consent's domains granted"
    );
    assert_eq!(w.linked_tenant().await, contoso().id());
    w.app.stop().await;
}

async fn an_abandoned_attempt_does_not_leave_domains_pending(backend: Backend) {
    let w = world(backend, |s| {
        s.consent_ttl_ms = 1;
        s.retention_sweep_interval_ms = 50;
    })
    .await;
    // The administrator pressed the button and closed the tab.
    let (grant, _) = w.start_grant(false).await;
    let settled = tokio::time::timeout(std::time::Duration::from_secs(20), async {
        loop {
            let domains = w.domains().await;
            if domains
                .iter()
                .all(|(_, s, _)| *s == pb::RetractStatus::Failed)
            {
                return domains;
            }
            tokio::time::sleep(std::time::Duration::from_millis(25)).await;
        }
    })
    .await
    .expect("the sweep ends the attempt");
    assert!(
        settled
            .iter()
            .all(|(_, _, reason)| reason.contains("expired")),
        "{settled:?}"
    );
    assert_eq!(
        w.grant(&grant.grant_id).await.state(),
        pb::GrantState::Expired
    );
    w.app.stop().await;
}

async fn an_overlong_error_from_microsoft_fails_the_grant_instead_of_leaving_it_completing(
    backend: Backend,
) {
    let w = world(backend, |_| {}).await;
    let error = format!("server_error_{}", "x".repeat(987));
    w.sim.set_sign_in(SignIn::Error {
        error: error.clone(),
        description: format!("AADSTS50000: {}", "y".repeat(5_000)),
    });
    let (grant, consent_url) = w.start_grant(false).await;
    let (status, page) = land(&consent_redirect(&consent_url).await).await;
    assert_eq!(status, 200, "{page}");
    assert!(page.contains("Permissions were not granted"), "{page}");
    let done = w.grant(&grant.grant_id).await;
    assert_eq!(done.state(), pb::GrantState::Failed);
    assert_eq!(done.error, error.chars().take(128).collect::<String>());
    assert!(done.error_description.starts_with("AADSTS50000"));
    for (domain, status, _) in w.domains().await {
        assert_eq!(status, pb::RetractStatus::Failed, "{domain}");
    }
    w.app.stop().await;
}

async fn a_consent_interrupted_while_completing_is_failed_by_the_sweep(backend: Backend) {
    use sea_orm::{ConnectionTrait as _, Statement};
    use sha2::Digest as _;

    let w = world(backend, |s| {
        s.consent_ttl_ms = 1_000;
        s.consent_completion_timeout_ms = 1;
        s.retention_sweep_interval_ms = 50;
    })
    .await;
    let (grant, consent_url) = w.start_grant(false).await;
    let callback = consent_redirect(&consent_url).await;
    // The redirect arrived and spent the state; then the server went away (a crash, a
    // redeploy) before Microsoft answered.
    let state = query_param(&callback, "state");
    let claimed = w
        .app
        .store()
        .await
        .claim_grant(&hex::encode(sha2::Sha256::digest(state.as_bytes())))
        .await
        .unwrap()
        .expect("the state is spent");
    assert!(!claimed.pkce_verifier.is_empty());

    let db = sea_orm::Database::connect(w.app.database_url())
        .await
        .unwrap();
    let verifier = db
        .query_one_raw(Statement::from_string(
            db.get_database_backend(),
            format!(
                "SELECT pkce_verifier FROM grants WHERE id = '{}'",
                grant.grant_id
            ),
        ))
        .await
        .unwrap()
        .expect("the grant row");
    assert_eq!(
        verifier.try_get::<String>("", "pkce_verifier").unwrap(),
        "",
        "the verifier is not kept once the state is spent"
    );
    db.close().await.ok();

    let done = tokio::time::timeout(std::time::Duration::from_secs(15), async {
        loop {
            let g = w.grant(&grant.grant_id).await;
            if g.state() != pb::GrantState::AwaitingConsent {
                return g;
            }
            tokio::time::sleep(std::time::Duration::from_millis(50)).await;
        }
    })
    .await
    .expect("the sweep ends the interrupted attempt");
    assert_eq!(done.state(), pb::GrantState::Failed);
    assert_eq!(done.error, "interrupted");
    for (domain, status, reason) in w.domains().await {
        assert_eq!(status, pb::RetractStatus::Failed, "{domain}");
        assert!(reason.contains("interrupted"), "{domain}: {reason}");
    }
    assert_eq!(w.audit_actions().await[0].0, "grant_failed");
    // The browser retrying the redirect changes nothing.
    let (status, _) = land(&callback).await;
    assert_eq!(status, 400);
    assert_eq!(
        w.grant(&grant.grant_id).await.state(),
        pb::GrantState::Failed
    );
    w.app.stop().await;
}
