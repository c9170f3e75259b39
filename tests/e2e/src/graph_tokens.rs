//! The app-token cache and authenticated Graph calls, against graph-sim with the real client:
//! one token request however many callers, renewal before expiry, one refresh when Graph
//! rejects a token, and Microsoft's refusals passed on with their reasons — sorted into the
//! tenant's missing consent, our own rejected credential, and outages that are waited out.
//! Certificate credentials (a signed client assertion) and credential files rotated while
//! the service runs.

use std::{sync::Arc, time::Duration};

use graph_sim::{
    GraphSim, RequestRecord, Service,
    seed::{App, Domain, Tenant},
};
use retract_server::{
    domain::MicrosoftTenantId,
    graph::{AppCredential, AppTokens, GraphClient, GraphError, GraphSettings, http_client},
};

const CLIENT_ID: &str = "retract-app";
const CLIENT_SECRET: &str = "retract-secret";

async fn contoso_sim() -> (GraphSim, MicrosoftTenantId) {
    let contoso = Tenant::new("Contoso")
        .domain(Domain::verified("contoso.com"))
        .domain(Domain::unverified("contoso-lab.com"))
        .consent(CLIENT_ID);
    let tenant_id = MicrosoftTenantId::parse(contoso.id()).unwrap();
    let sim = GraphSim::builder()
        .app(App::new(CLIENT_ID, CLIENT_SECRET))
        .tenant(contoso)
        .tenant(Tenant::new("Fabrikam").domain(Domain::verified("fabrikam.com")))
        .start()
        .await
        .expect("graph-sim starts");
    (sim, tenant_id)
}

fn settings(sim: &GraphSim, secret: &str, refresh_margin: Duration) -> GraphSettings {
    GraphSettings {
        graph_base_url: sim.graph_base_url(),
        login_base_url: sim.login_base_url(),
        credential: AppCredential::secret(CLIENT_ID, secret),
        refresh_margin,
        request_timeout: Duration::from_secs(10),
        retry: retract_server::graph::RetryPolicy::default(),
        requests_per_second: 0.0,
    }
}

fn graph(settings: &GraphSettings) -> (Arc<AppTokens>, GraphClient) {
    let http = http_client(settings).unwrap();
    let tokens = Arc::new(AppTokens::new(settings.clone(), http.clone()));
    let client = GraphClient::new(settings, http, tokens.clone());
    (tokens, client)
}

fn token_requests(sim: &GraphSim) -> Vec<RequestRecord> {
    sim.requests()
        .into_iter()
        .filter(|r| r.service == Service::Identity && r.path.ends_with("/oauth2/v2.0/token"))
        .collect()
}

#[tokio::test]
async fn concurrent_callers_share_one_token_request() {
    let (sim, tenant) = contoso_sim().await;
    let (tokens, client) = graph(&settings(&sim, CLIENT_SECRET, Duration::from_secs(300)));
    let callers = (0..20).map(|_| {
        let tokens = tokens.clone();
        let tenant = tenant.clone();
        tokio::spawn(async move { tokens.get(&tenant).await.map(|t| t.bearer()) })
    });
    let bearers: Vec<String> = futures::future::join_all(callers)
        .await
        .into_iter()
        .map(|r| r.unwrap().expect("a token"))
        .collect();
    assert!(
        bearers.windows(2).all(|w| w[0] == w[1]),
        "everyone got the same token"
    );
    assert_eq!(
        token_requests(&sim).len(),
        1,
        "one token request for twenty callers"
    );

    let mut domains = client.list_domains(&tenant).await.unwrap();
    domains.sort_by(|a, b| a.id.cmp(&b.id));
    let verified: Vec<_> = domains
        .iter()
        .map(|d| (d.id.as_str(), d.is_verified))
        .collect();
    assert!(verified.contains(&("contoso.com", true)), "{verified:?}");
    assert!(
        verified.contains(&("contoso-lab.com", false)),
        "{verified:?}"
    );
    assert!(
        !verified.iter().any(|(d, _)| *d == "fabrikam.com"),
        "only the token's own tenant"
    );
    assert_eq!(
        token_requests(&sim).len(),
        1,
        "the Graph call reused the cached token"
    );
}

#[tokio::test]
async fn tokens_are_renewed_before_they_expire() {
    let (sim, tenant) = contoso_sim().await;
    sim.update_settings(|s| s.token_lifetime_ms = 600_000);
    let (tokens, _) = graph(&settings(&sim, CLIENT_SECRET, Duration::from_secs(900)));
    tokens.get(&tenant).await.unwrap();
    tokens.get(&tenant).await.unwrap();
    assert_eq!(
        token_requests(&sim).len(),
        2,
        "a token inside the margin is renewed"
    );

    let (sim, tenant) = contoso_sim().await;
    let (tokens, _) = graph(&settings(&sim, CLIENT_SECRET, Duration::from_secs(60)));
    tokens.get(&tenant).await.unwrap();
    tokens.get(&tenant).await.unwrap();
    assert_eq!(
        token_requests(&sim).len(),
        1,
        "a token outside the margin is reused"
    );
}

#[tokio::test]
async fn a_token_graph_rejects_is_refreshed_once() {
    let (sim, tenant) = contoso_sim().await;
    let (tokens, client) = graph(&settings(&sim, CLIENT_SECRET, Duration::from_secs(60)));
    tokens.get(&tenant).await.unwrap();
    // Microsoft's clock runs ahead of our cache: the cached token is expired at Graph.
    sim.advance_clock(Duration::from_secs(4 * 3600));
    let domains = client
        .list_domains(&tenant)
        .await
        .expect("refreshed and retried");
    assert!(!domains.is_empty());
    assert_eq!(token_requests(&sim).len(), 2);
    let statuses: Vec<_> = sim
        .graph_requests()
        .iter()
        .filter(|r| r.path.ends_with("/domains"))
        .map(|r| r.status)
        .collect();
    assert_eq!(statuses, [Some(401), Some(200)]);
}

#[tokio::test]
async fn microsofts_refusals_come_back_with_their_reasons() {
    let (sim, tenant) = contoso_sim().await;
    let (tokens, _) = graph(&settings(&sim, "wrong-secret", Duration::from_secs(60)));
    match tokens.get(&tenant).await {
        Err(GraphError::CredentialRejected { error, description }) => {
            assert_eq!(error, "invalid_client");
            assert!(description.contains("AADSTS"), "{description}");
        }
        Err(other) => panic!("expected a refusal, got {other:?}"),
        Ok(_) => panic!("expected a refusal, got a token"),
    }

    let fabrikam = MicrosoftTenantId::parse(Tenant::new("Fabrikam").id()).unwrap();
    let (tokens, _) = graph(&settings(&sim, CLIENT_SECRET, Duration::from_secs(60)));
    let err = tokens
        .get(&fabrikam)
        .await
        .err()
        .expect("no consent, no token");
    let GraphError::ConsentMissing { description, .. } = &err else {
        panic!("expected a refusal, got {err:?}")
    };
    assert!(description.contains("AADSTS"), "{description}");
}

#[tokio::test]
async fn an_absurd_expires_in_neither_overflows_the_clock_nor_defeats_the_cache() {
    let (sim, tenant) = contoso_sim().await;
    sim.update_settings(|s| s.token_expires_in_secs = Some(u64::MAX));
    let (tokens, client) = graph(&settings(&sim, CLIENT_SECRET, Duration::from_secs(60)));
    tokens
        .get(&tenant)
        .await
        .expect("a token despite expires_in = u64::MAX");
    tokens.get(&tenant).await.expect("the cached token");
    assert_eq!(token_requests(&sim).len(), 1, "the token is cached");
    assert!(!client.list_domains(&tenant).await.unwrap().is_empty());

    // A margin longer than any clock can add still just means "renew now".
    let (tokens, _) = graph(&settings(&sim, CLIENT_SECRET, Duration::MAX));
    tokens.get(&tenant).await.expect("a token");
    tokens.get(&tenant).await.expect("another token");
    assert_eq!(token_requests(&sim).len(), 3);
}

#[tokio::test]
async fn a_retry_after_of_u64_max_fails_the_request_with_microsofts_answer() {
    let (sim, tenant) = contoso_sim().await;
    sim.set_limits(graph_sim::Limits {
        retry_after_secs: u64::MAX,
        ..Default::default()
    });
    sim.set_faults(graph_sim::FaultSettings {
        throttle_429: 1.0,
        endpoints: vec![graph_sim::Endpoint::Domains],
        ..Default::default()
    });
    let (_, client) = graph(&settings(&sim, CLIENT_SECRET, Duration::from_secs(60)));
    let err = tokio::time::timeout(Duration::from_secs(10), client.list_domains(&tenant))
        .await
        .expect("answers at once instead of waiting for ever")
        .expect_err("throttled");
    match err {
        GraphError::Api {
            status: 429,
            retry_after: Some(after),
            ..
        } => assert!(after >= Duration::from_secs(3600), "{after:?}"),
        other => panic!("expected the 429, got {other:?}"),
    }
    assert_eq!(
        sim.graph_requests()
            .iter()
            .filter(|r| r.path.ends_with("/domains"))
            .count(),
        1,
        "no retry that Microsoft would only throttle again"
    );
}

fn fixture(name: &str) -> std::path::PathBuf {
    std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("fixtures")
        .join(name)
}

fn fixture_text(name: &str) -> String {
    std::fs::read_to_string(fixture(name)).expect("fixture")
}

fn quick_retries() -> retract_server::graph::RetryPolicy {
    retract_server::graph::RetryPolicy {
        max_attempts: 4,
        base_backoff: Duration::from_millis(20),
        max_backoff: Duration::from_millis(100),
        max_retry_after: Duration::from_secs(5),
    }
}

fn token_statuses(sim: &GraphSim) -> Vec<Option<u16>> {
    token_requests(sim).iter().map(|r| r.status).collect()
}

fn identity_outage(sim: &GraphSim) {
    sim.set_limits(graph_sim::Limits {
        retry_after_secs: 0,
        ..Default::default()
    });
    sim.set_faults(graph_sim::FaultSettings {
        error_503: 1.0,
        endpoints: vec![graph_sim::Endpoint::Token],
        ..Default::default()
    });
}

#[tokio::test]
async fn an_identity_platform_outage_is_waited_out_then_reported_as_an_outage() {
    let (sim, tenant) = contoso_sim().await;
    let mut settings = settings(&sim, CLIENT_SECRET, Duration::from_secs(60));
    settings.retry = quick_retries();
    let (_, client) = graph(&settings);
    identity_outage(&sim);
    let call = tokio::spawn({
        let client = client.clone();
        let tenant = tenant.clone();
        async move { client.list_domains(&tenant).await }
    });
    tokio::time::timeout(Duration::from_secs(10), async {
        while token_requests(&sim).len() < 2 {
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    })
    .await
    .expect("the token request is retried");
    sim.set_faults(graph_sim::FaultSettings::default());
    let domains = call.await.unwrap().expect("the blip is waited out");
    assert!(!domains.is_empty());
    let statuses = token_statuses(&sim);
    assert_eq!(statuses.last(), Some(&Some(200)), "{statuses:?}");
    assert!(
        statuses[..statuses.len() - 1]
            .iter()
            .all(|s| *s == Some(503)),
        "{statuses:?}"
    );

    // An outage that lasts is reported as one, after the policy's attempts, never as a refusal.
    let (sim, tenant) = contoso_sim().await;
    let (tokens, _) = graph(&GraphSettings {
        retry: quick_retries(),
        ..settings_for(&sim)
    });
    identity_outage(&sim);
    let err = tokens
        .get(&tenant)
        .await
        .err()
        .expect("no token during the outage");
    assert!(
        matches!(err, GraphError::Api { status: 503, .. }),
        "{err:?}"
    );
    assert_eq!(
        token_requests(&sim).len(),
        4,
        "bounded by graph_max_attempts"
    );
}

fn settings_for(sim: &GraphSim) -> GraphSettings {
    settings(sim, CLIENT_SECRET, Duration::from_secs(60))
}

#[tokio::test]
async fn a_failed_early_renewal_keeps_the_still_valid_token() {
    let (sim, tenant) = contoso_sim().await;
    sim.update_settings(|s| s.token_lifetime_ms = 600_000);
    // A margin longer than the lifetime: every call wants to renew.
    let mut settings = settings(&sim, CLIENT_SECRET, Duration::from_secs(900));
    settings.retry = quick_retries();
    let (tokens, client) = graph(&settings);
    let first = tokens.get(&tenant).await.unwrap().bearer();
    identity_outage(&sim);
    let again = tokens
        .get(&tenant)
        .await
        .expect("the valid token while renewal fails")
        .bearer();
    assert_eq!(again, first);
    assert!(!client.list_domains(&tenant).await.unwrap().is_empty());
    assert_eq!(
        token_statuses(&sim),
        [Some(200), Some(503)],
        "one renewal try, then the cached token until a little later"
    );
}

#[tokio::test]
async fn our_wrong_or_expired_secret_is_a_service_configuration_error() {
    let (sim, tenant) = contoso_sim().await;
    let settings = settings(&sim, "wrong-secret", Duration::from_secs(60));
    let (tokens, _) = graph(&settings);
    let err = tokens.get(&tenant).await.err().expect("refused");
    assert!(
        matches!(err, GraphError::CredentialRejected { .. }),
        "{err:?}"
    );
    let seen = settings
        .credential
        .health()
        .rejection()
        .expect("health sees it");
    assert!(seen.contains("AADSTS7000215"), "{seen}");

    // The right secret, expired at Microsoft.
    let settings = settings_for(&sim);
    let (tokens, _) = graph(&settings);
    tokens.get(&tenant).await.expect("valid for now");
    assert!(settings.credential.health().rejection().is_none());
    let (fresh, _) = graph(&settings);
    assert!(sim.update_app(CLIENT_ID, |app| {
        app.client_secret_expires_unix = Some(chrono::Utc::now().timestamp() - 1);
    }));
    let err = fresh.get(&tenant).await.err().expect("expired");
    let GraphError::CredentialRejected { description, .. } = &err else {
        panic!("our credential, not the tenant's consent: {err:?}")
    };
    assert!(description.contains("AADSTS7000222"), "{description}");
    assert!(settings.credential.health().rejection().is_some());
}

fn certificate_credential(name: &str) -> std::sync::Arc<AppCredential> {
    std::sync::Arc::new(
        AppCredential::load(
            retract_server::graph::CredentialSource::Certificate {
                certificate: fixture(&format!("{name}.cert.pem")),
                key: fixture(&format!("{name}.key.pem")),
            },
            CLIENT_ID,
        )
        .expect("the certificate loads"),
    )
}

#[tokio::test]
async fn a_certificate_credential_signs_a_client_assertion_microsoft_verifies() {
    let contoso = Tenant::new("Contoso")
        .domain(Domain::verified("contoso.com"))
        .consent(CLIENT_ID);
    let tenant = MicrosoftTenantId::parse(contoso.id()).unwrap();
    let sim = GraphSim::builder()
        .app(
            App::new(CLIENT_ID, "a-secret-nobody-sends")
                .certificate(fixture_text("app-cert.cert.pem")),
        )
        .tenant(contoso)
        .start()
        .await
        .unwrap();
    let (_, client) = graph(&GraphSettings {
        credential: certificate_credential("app-cert"),
        ..settings_for(&sim)
    });
    let domains = client
        .list_domains(&tenant)
        .await
        .expect("a token by certificate");
    assert!(domains.iter().any(|d| d.id == "contoso.com"));

    // A certificate the app registration does not hold is our configuration's problem.
    let stranger = certificate_credential("app-cert-rotated");
    let (tokens, _) = graph(&GraphSettings {
        credential: stranger.clone(),
        ..settings_for(&sim)
    });
    let err = tokens
        .get(&tenant)
        .await
        .err()
        .expect("unknown certificate");
    let GraphError::CredentialRejected { description, .. } = &err else {
        panic!("{err:?}")
    };
    assert!(description.contains("AADSTS700027"), "{description}");
    assert!(stranger.health().rejection().is_some());
}

#[tokio::test]
async fn rotated_secret_and_certificate_files_are_used_without_a_restart() {
    let (sim, tenant) = contoso_sim().await;
    let dir = tempfile::tempdir().unwrap();
    let secret_file = dir.path().join("graph-secret");
    std::fs::write(&secret_file, format!("{CLIENT_SECRET}\n")).unwrap();
    let credential = std::sync::Arc::new(
        AppCredential::load(
            retract_server::graph::CredentialSource::SecretFile(secret_file.clone()),
            CLIENT_ID,
        )
        .unwrap(),
    );
    let (tokens, _) = graph(&GraphSettings {
        credential,
        ..settings_for(&sim)
    });
    let token = tokens.get(&tenant).await.expect("the first secret");
    // The operator adds a new secret in Entra, retires the old one, and rewrites the file.
    sim.update_app(CLIENT_ID, |app| {
        app.client_secret = "second-secret-2027".into();
    });
    std::fs::write(&secret_file, "second-secret-2027\n").unwrap();
    tokens.invalidate(&tenant, &token).await;
    tokens
        .get(&tenant)
        .await
        .expect("the rotated secret, read again");

    // The same for a certificate (one PEM file holding certificate and key).
    let pem = dir.path().join("graph.pem");
    let both = |name: &str| {
        fixture_text(&format!("{name}.cert.pem")) + &fixture_text(&format!("{name}.key.pem"))
    };
    std::fs::write(&pem, both("app-cert")).unwrap();
    sim.update_app(CLIENT_ID, |app| {
        app.certificates = vec![fixture_text("app-cert.cert.pem")];
    });
    let credential = std::sync::Arc::new(
        AppCredential::load(
            retract_server::graph::CredentialSource::Certificate {
                certificate: pem.clone(),
                key: pem.clone(),
            },
            CLIENT_ID,
        )
        .unwrap(),
    );
    let (tokens, _) = graph(&GraphSettings {
        credential,
        ..settings_for(&sim)
    });
    let token = tokens.get(&tenant).await.expect("the first certificate");
    sim.update_app(CLIENT_ID, |app| {
        app.certificates = vec![fixture_text("app-cert-rotated.cert.pem")];
    });
    std::fs::write(&pem, both("app-cert-rotated")).unwrap();
    tokens.invalidate(&tenant, &token).await;
    tokens
        .get(&tenant)
        .await
        .expect("the rotated certificate, read again");
}
