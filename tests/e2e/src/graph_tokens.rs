//! The app-token cache and authenticated Graph calls, against graph-sim with the real client:
//! one token request however many callers, renewal before expiry, one refresh when Graph
//! rejects a token, and Microsoft's refusals passed on with their reasons.

use std::{sync::Arc, time::Duration};

use graph_sim::{
    GraphSim, RequestRecord, Service,
    seed::{App, Domain, Tenant},
};
use retract_server::{
    domain::MicrosoftTenantId,
    graph::{AppTokens, GraphClient, GraphError, GraphSettings, http_client},
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
        client_id: CLIENT_ID.to_owned(),
        client_secret: secret.into(),
        refresh_margin,
        request_timeout: Duration::from_secs(10),
        retry: retract_server::graph::RetryPolicy::default(),
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
        Err(GraphError::TokenRefused { error, description }) => {
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
    let GraphError::TokenRefused { description, .. } = &err else {
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
