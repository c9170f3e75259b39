//! Identity platform: client credentials, authorization code with PKCE, consent, discovery,
//! token validation on Graph.

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use graph_sim::SignIn;
use reqwest::StatusCode;
use serde_json::Value;
use sha2::{Digest, Sha256};

use crate::support::{self, CLIENT_ID, SECRET, code, contoso, fabrikam, get, http, world};

const REDIRECT: &str = "http://127.0.0.1:1/callback";
const VERIFIER: &str = "a-verifier-that-is-long-enough-for-pkce-0123456789abcdef";

fn challenge(verifier: &str) -> String {
    URL_SAFE_NO_PAD.encode(Sha256::digest(verifier.as_bytes()))
}

async fn token_request(
    sim: &graph_sim::GraphSim,
    tenant: &str,
    form: &[(&str, &str)],
) -> (StatusCode, Value) {
    let response = http()
        .post(format!(
            "{}/{tenant}/oauth2/v2.0/token",
            sim.login_base_url()
        ))
        .form(form)
        .send()
        .await
        .unwrap();
    (response.status(), response.json().await.unwrap())
}

/// Runs authorize and returns the redirect's query pairs.
async fn authorize(sim: &graph_sim::GraphSim, tenant: &str, scope: &str) -> Vec<(String, String)> {
    let response = http()
        .get(format!(
            "{}/{tenant}/oauth2/v2.0/authorize",
            sim.login_base_url()
        ))
        .query(&[
            ("client_id", CLIENT_ID),
            ("response_type", "code"),
            ("redirect_uri", REDIRECT),
            ("scope", scope),
            ("state", "st-1"),
            ("code_challenge", &challenge(VERIFIER)),
            ("code_challenge_method", "S256"),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::FOUND);
    let location = response.headers()["location"].to_str().unwrap().to_owned();
    let url = url::Url::parse(&location).unwrap();
    assert!(location.starts_with(REDIRECT));
    url.query_pairs().into_owned().collect()
}

fn param<'a>(pairs: &'a [(String, String)], name: &str) -> Option<&'a str> {
    pairs
        .iter()
        .find(|(k, _)| k == name)
        .map(|(_, v)| v.as_str())
}

async fn redeem(sim: &graph_sim::GraphSim, code: &str, verifier: &str) -> (StatusCode, Value) {
    token_request(
        sim,
        "organizations",
        &[
            ("grant_type", "authorization_code"),
            ("client_id", CLIENT_ID),
            ("client_secret", SECRET),
            ("code", code),
            ("redirect_uri", REDIRECT),
            ("code_verifier", verifier),
        ],
    )
    .await
}

#[tokio::test]
async fn client_credentials_token_reads_the_organization_of_its_tenant() {
    let sim = world().start().await.unwrap();
    let token = support::app_token(&sim, contoso().id()).await;
    let (status, body) = get(&sim, &token, "/organization").await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(body["value"][0]["id"], contoso().id());
}

#[tokio::test]
async fn token_endpoint_accepts_the_tenant_domain_and_http_basic_client_auth() {
    let sim = world().start().await.unwrap();
    let response = http()
        .post(format!(
            "{}/contoso.com/oauth2/v2.0/token",
            sim.login_base_url()
        ))
        .basic_auth(CLIENT_ID, Some(SECRET))
        .form(&[
            ("grant_type", "client_credentials"),
            ("scope", "https://graph.microsoft.com/.default"),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["token_type"], "Bearer");
    assert_eq!(body["expires_in"], 3599);
    assert!(body.get("refresh_token").is_none());
}

#[tokio::test]
async fn wrong_secret_is_refused_with_401_invalid_client() {
    let sim = world().start().await.unwrap();
    let (status, body) = token_request(
        &sim,
        contoso().id(),
        &[
            ("grant_type", "client_credentials"),
            ("client_id", CLIENT_ID),
            ("client_secret", "wrong"),
            ("scope", "https://graph.microsoft.com/.default"),
        ],
    )
    .await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    assert_eq!(body["error"], "invalid_client");
    assert_eq!(body["error_codes"][0], 7000215);
    assert!(
        body["error_description"]
            .as_str()
            .unwrap()
            .starts_with("AADSTS7000215:")
    );
    let basic = http()
        .post(format!(
            "{}/{}/oauth2/v2.0/token",
            sim.login_base_url(),
            contoso().id()
        ))
        .basic_auth(CLIENT_ID, Some("wrong"))
        .form(&[
            ("grant_type", "client_credentials"),
            ("scope", "https://graph.microsoft.com/.default"),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(basic.status(), StatusCode::UNAUTHORIZED);
}

#[tokio::test]
async fn tenant_without_consent_refuses_client_credentials() {
    let unconsented = graph_sim::seed::Tenant::new("Northwind")
        .user(graph_sim::seed::User::new("n@northwind.com"));
    let sim = world().tenant(unconsented.clone()).start().await.unwrap();
    let (status, body) = token_request(
        &sim,
        unconsented.id(),
        &[
            ("grant_type", "client_credentials"),
            ("client_id", CLIENT_ID),
            ("client_secret", SECRET),
            ("scope", "https://graph.microsoft.com/.default"),
        ],
    )
    .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_eq!(body["error"], "unauthorized_client");
    assert_eq!(body["error_codes"][0], 700016);
}

#[tokio::test]
async fn admin_sign_in_issues_id_token_with_tenant_and_consents_for_the_tenant() {
    let unconsented = graph_sim::seed::Tenant::new("Northwind")
        .user(graph_sim::seed::User::new("root@northwind.com").admin());
    let sim = world()
        .tenant(unconsented.clone())
        .sign_in(SignIn::approve_as("root@northwind.com"))
        .start()
        .await
        .unwrap();
    assert!(!sim.has_consent(unconsented.id(), CLIENT_ID));
    let pairs = authorize(
        &sim,
        "organizations",
        "openid profile https://graph.microsoft.com/.default",
    )
    .await;
    assert_eq!(param(&pairs, "state"), Some("st-1"));
    let code = param(&pairs, "code").unwrap().to_owned();
    let (status, body) = redeem(&sim, &code, VERIFIER).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let id_token = body["id_token"].as_str().unwrap();
    let key = jsonwebtoken::DecodingKey::from_rsa_components(
        graph_sim::SIGNING_KEY_MODULUS,
        graph_sim::SIGNING_KEY_EXPONENT,
    )
    .unwrap();
    let mut validation = jsonwebtoken::Validation::new(jsonwebtoken::Algorithm::RS256);
    validation.set_audience(&[CLIENT_ID]);
    let claims = jsonwebtoken::decode::<graph_sim::IdClaims>(id_token, &key, &validation)
        .unwrap()
        .claims;
    assert_eq!(claims.tid, unconsented.id());
    assert_eq!(claims.preferred_username, "root@northwind.com");
    assert!(sim.has_consent(unconsented.id(), CLIENT_ID));
    let access = body["access_token"].as_str().unwrap();
    let (status, me) = get(&sim, access, "/me").await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(me["userPrincipalName"], "root@northwind.com");
}

#[tokio::test]
async fn pkce_verifier_mismatch_is_refused() {
    let sim = world()
        .sign_in(SignIn::approve_as("admin@contoso.com"))
        .start()
        .await
        .unwrap();
    let pairs = authorize(
        &sim,
        "organizations",
        "openid profile https://graph.microsoft.com/.default",
    )
    .await;
    let (status, body) = redeem(
        &sim,
        param(&pairs, "code").unwrap(),
        "another-verifier-another-verifier-another-verifier",
    )
    .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_eq!(body["error"], "invalid_grant");
    assert_eq!(body["error_codes"][0], 501481);
}

#[tokio::test]
async fn authorization_code_cannot_be_redeemed_twice() {
    let sim = world()
        .sign_in(SignIn::approve_as("admin@contoso.com"))
        .start()
        .await
        .unwrap();
    let pairs = authorize(
        &sim,
        "organizations",
        "openid profile https://graph.microsoft.com/.default",
    )
    .await;
    let code = param(&pairs, "code").unwrap().to_owned();
    assert_eq!(redeem(&sim, &code, VERIFIER).await.0, StatusCode::OK);
    let (status, body) = redeem(&sim, &code, VERIFIER).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_eq!(body["error"], "invalid_grant");
    assert_eq!(body["error_codes"][0], 54005);
}

#[tokio::test]
async fn default_scope_mixed_with_other_graph_scopes_is_refused_with_aadsts70011() {
    let sim = world()
        .sign_in(SignIn::approve_as("admin@contoso.com"))
        .start()
        .await
        .unwrap();
    let pairs = authorize(
        &sim,
        "organizations",
        "openid https://graph.microsoft.com/.default https://graph.microsoft.com/User.Read",
    )
    .await;
    assert_eq!(param(&pairs, "error"), Some("invalid_scope"));
    assert!(
        param(&pairs, "error_description")
            .unwrap()
            .starts_with("AADSTS70011")
    );
    assert!(param(&pairs, "code").is_none());
}

#[tokio::test]
async fn declined_sign_in_redirects_with_access_denied() {
    let sim = world().sign_in(SignIn::Decline).start().await.unwrap();
    let pairs = authorize(
        &sim,
        "organizations",
        "openid https://graph.microsoft.com/.default",
    )
    .await;
    assert_eq!(param(&pairs, "error"), Some("access_denied"));
    assert_eq!(param(&pairs, "state"), Some("st-1"));
}

#[tokio::test]
async fn admin_consent_endpoint_reports_the_tenant_and_records_consent() {
    let northwind = graph_sim::seed::Tenant::new("Northwind")
        .user(graph_sim::seed::User::new("root@northwind.com").admin());
    let sim = world()
        .tenant(northwind.clone())
        .sign_in(SignIn::approve_as("root@northwind.com"))
        .start()
        .await
        .unwrap();
    let response = http()
        .get(format!(
            "{}/organizations/v2.0/adminconsent",
            sim.login_base_url()
        ))
        .query(&[
            ("client_id", CLIENT_ID),
            ("redirect_uri", REDIRECT),
            ("state", "s"),
            ("scope", "https://graph.microsoft.com/.default"),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::FOUND);
    let url = url::Url::parse(response.headers()["location"].to_str().unwrap()).unwrap();
    let pairs: Vec<(String, String)> = url.query_pairs().into_owned().collect();
    assert_eq!(param(&pairs, "admin_consent"), Some("True"));
    assert_eq!(param(&pairs, "tenant"), Some(northwind.id()));
    assert!(sim.has_consent(northwind.id(), CLIENT_ID));
    support::app_token(&sim, northwind.id()).await;
}

#[tokio::test]
async fn forged_token_is_refused_with_401() {
    let sim = world().start().await.unwrap();
    let token = support::app_token(&sim, contoso().id()).await;
    // Swap the payload for one naming another tenant, keeping the signature.
    let mut parts: Vec<String> = token.split('.').map(str::to_owned).collect();
    let mut claims: Value =
        serde_json::from_slice(&URL_SAFE_NO_PAD.decode(&parts[1]).unwrap()).unwrap();
    claims["tid"] = Value::String(fabrikam().id().to_owned());
    parts[1] = URL_SAFE_NO_PAD.encode(claims.to_string());
    let (status, body) = get(&sim, &parts.join("."), "/organization").await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    assert_eq!(code(&body), "InvalidAuthenticationToken");
    let (status, _) = get(&sim, "not-a-jwt", "/organization").await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    let missing = http()
        .get(format!("{}/v1.0/organization", sim.graph_base_url()))
        .send()
        .await
        .unwrap();
    assert_eq!(missing.status(), StatusCode::UNAUTHORIZED);
}

#[tokio::test]
async fn expired_token_is_refused_with_401() {
    let sim = world().start().await.unwrap();
    let token = support::app_token(&sim, contoso().id()).await;
    assert_eq!(get(&sim, &token, "/organization").await.0, StatusCode::OK);
    sim.advance_clock(std::time::Duration::from_secs(3600));
    let (status, body) = get(&sim, &token, "/organization").await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    assert_eq!(code(&body), "InvalidAuthenticationToken");
    let minted = sim.app_token(contoso().id(), CLIENT_ID, 0).unwrap();
    assert_eq!(
        get(&sim, &minted, "/organization").await.0,
        StatusCode::UNAUTHORIZED
    );
}

#[tokio::test]
async fn configured_token_lifetime_is_reported_as_expires_in() {
    let sim = world()
        .token_lifetime(std::time::Duration::from_secs(90))
        .start()
        .await
        .unwrap();
    let (status, body) = token_request(
        &sim,
        contoso().id(),
        &[
            ("grant_type", "client_credentials"),
            ("client_id", CLIENT_ID),
            ("client_secret", SECRET),
            ("scope", "https://graph.microsoft.com/.default"),
        ],
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(body["expires_in"], 90);
}

#[tokio::test]
async fn discovery_document_names_the_tenant_issuer_and_keys() {
    let sim = world().start().await.unwrap();
    let response = http()
        .get(format!(
            "{}/contoso.com/v2.0/.well-known/openid-configuration",
            sim.login_base_url()
        ))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    let body: Value = response.json().await.unwrap();
    assert_eq!(
        body["issuer"],
        format!("{}/{}/v2.0", sim.login_base_url(), contoso().id())
    );
    let keys: Value = http()
        .get(body["jwks_uri"].as_str().unwrap())
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(keys["keys"][0]["kid"], graph_sim::SIGNING_KEY_ID);
}

#[tokio::test]
async fn unknown_client_gets_an_error_page_not_a_redirect() {
    let sim = world()
        .sign_in(SignIn::approve_as("admin@contoso.com"))
        .start()
        .await
        .unwrap();
    let response = http()
        .get(format!(
            "{}/organizations/oauth2/v2.0/authorize",
            sim.login_base_url()
        ))
        .query(&[
            ("client_id", "no-such-app"),
            ("response_type", "code"),
            ("redirect_uri", REDIRECT),
            ("scope", "openid"),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::BAD_REQUEST);
    assert!(response.headers().get("location").is_none());
    assert!(response.text().await.unwrap().contains("AADSTS700016"));
}

#[tokio::test]
async fn token_endpoint_faults_apply_only_when_named() {
    let sim = world().start().await.unwrap();
    sim.set_faults(graph_sim::FaultSettings {
        error_503: 1.0,
        ..Default::default()
    });
    support::app_token(&sim, contoso().id()).await;
    sim.set_faults(graph_sim::FaultSettings {
        error_503: 1.0,
        endpoints: vec![graph_sim::Endpoint::Token],
        ..Default::default()
    });
    let (status, body) = token_request(
        &sim,
        contoso().id(),
        &[
            ("grant_type", "client_credentials"),
            ("client_id", CLIENT_ID),
            ("client_secret", SECRET),
            ("scope", "https://graph.microsoft.com/.default"),
        ],
    )
    .await;
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(body["error"], "temporarily_unavailable");
}

#[tokio::test]
async fn a_misbehaving_token_endpoint_can_announce_any_expires_in() {
    let sim = world().start().await.unwrap();
    sim.update_settings(|s| s.token_expires_in_secs = Some(u64::MAX));
    let (status, body) = token_request(
        &sim,
        contoso().id(),
        &[
            ("grant_type", "client_credentials"),
            ("client_id", CLIENT_ID),
            ("client_secret", SECRET),
            ("scope", "https://graph.microsoft.com/.default"),
        ],
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(body["expires_in"], u64::MAX);
    assert!(body["access_token"].is_string());
}

#[tokio::test]
async fn offline_access_yields_a_refresh_token_that_works_once() {
    let sim = world()
        .sign_in(SignIn::approve_as("alice@contoso.com"))
        .start()
        .await
        .unwrap();
    let pairs = authorize(
        &sim,
        "organizations",
        "openid offline_access https://graph.microsoft.com/.default",
    )
    .await;
    let (status, body) = redeem(&sim, param(&pairs, "code").unwrap(), VERIFIER).await;
    assert_eq!(status, StatusCode::OK);
    let refresh = body["refresh_token"].as_str().unwrap().to_owned();
    let form = [
        ("grant_type", "refresh_token"),
        ("client_id", CLIENT_ID),
        ("client_secret", SECRET),
        ("refresh_token", refresh.as_str()),
    ];
    let (status, renewed) = token_request(&sim, "organizations", &form).await;
    assert_eq!(status, StatusCode::OK);
    let (status, me) = get(&sim, renewed["access_token"].as_str().unwrap(), "/me").await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(me["userPrincipalName"], "alice@contoso.com");
    assert_eq!(
        token_request(&sim, "organizations", &form).await.0,
        StatusCode::BAD_REQUEST
    );
}

#[tokio::test]
async fn admin_consent_by_a_non_admin_is_refused() {
    let sim = world()
        .sign_in(SignIn::approve_as("alice@contoso.com"))
        .start()
        .await
        .unwrap();
    let response = http()
        .get(format!(
            "{}/organizations/v2.0/adminconsent",
            sim.login_base_url()
        ))
        .query(&[
            ("client_id", CLIENT_ID),
            ("redirect_uri", REDIRECT),
            ("state", "s"),
        ])
        .send()
        .await
        .unwrap();
    let url = url::Url::parse(response.headers()["location"].to_str().unwrap()).unwrap();
    let pairs: Vec<(String, String)> = url.query_pairs().into_owned().collect();
    assert_eq!(param(&pairs, "error"), Some("consent_required"));
    assert_eq!(param(&pairs, "admin_consent"), None);
}
