//! Directory calls: domains, users by id/UPN, alias lookup, tenant scoping.

use reqwest::StatusCode;
use serde_json::Value;

use crate::support::{app_token, code, contoso, get, http, world};

#[tokio::test]
async fn domains_list_verification_and_email_support() {
    let sim = world().start().await.unwrap();
    let token = app_token(&sim, contoso().id()).await;
    let (status, body) = get(&sim, &token, "/domains").await;
    assert_eq!(status, StatusCode::OK);
    let domains = body["value"].as_array().unwrap();
    let find = |name: &str| domains.iter().find(|d| d["id"] == name).unwrap().clone();
    assert_eq!(find("contoso.com")["isVerified"], true);
    assert_eq!(find("contoso.com")["supportedServices"][0], "Email");
    assert_eq!(find("contoso-old.com")["isVerified"], false);
    assert_eq!(find("contoso.onmicrosoft.com")["isInitial"], true);
}

#[tokio::test]
async fn user_is_found_by_id_and_by_upn() {
    let sim = world().start().await.unwrap();
    let token = app_token(&sim, contoso().id()).await;
    let (status, by_upn) = get(&sim, &token, "/users/alice@contoso.com").await;
    assert_eq!(status, StatusCode::OK);
    let id = by_upn["id"].as_str().unwrap();
    let (status, by_id) = get(&sim, &token, &format!("/users/{id}")).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(by_id["userPrincipalName"], "alice@contoso.com");
}

#[tokio::test]
async fn alias_is_found_only_through_filter() {
    let sim = world().start().await.unwrap();
    let token = app_token(&sim, contoso().id()).await;
    let (status, body) = get(&sim, &token, "/users/al@contoso.com").await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    assert_eq!(code(&body), "Request_ResourceNotFound");
    let response = http()
        .get(format!("{}/v1.0/users", sim.graph_base_url()))
        .query(&[
            (
                "$filter",
                "mail eq 'al@contoso.com' or proxyAddresses/any(x:x eq 'smtp:al@contoso.com')",
            ),
            ("$select", "id,mail,proxyAddresses"),
        ])
        .bearer_auth(&token)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    let body: Value = response.json().await.unwrap();
    let users = body["value"].as_array().unwrap();
    assert_eq!(users.len(), 1);
    assert_eq!(users[0]["mail"], "alice@contoso.com");
    assert!(
        users[0]["proxyAddresses"]
            .as_array()
            .unwrap()
            .iter()
            .any(|p| p == "smtp:al@contoso.com")
    );
}

#[tokio::test]
async fn user_of_another_tenant_is_not_found() {
    let sim = world().start().await.unwrap();
    let token = app_token(&sim, contoso().id()).await;
    let (status, body) = get(&sim, &token, "/users/erin@fabrikam.com").await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    assert_eq!(code(&body), "Request_ResourceNotFound");
    let erin = sim.user_id("erin@fabrikam.com").unwrap();
    let (status, body) = get(&sim, &token, &format!("/users/{erin}/messages")).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    assert_eq!(code(&body), "ErrorInvalidUser");
}

#[tokio::test]
async fn unsupported_user_filter_is_refused() {
    let sim = world().start().await.unwrap();
    let token = app_token(&sim, contoso().id()).await;
    let (status, body) = get(&sim, &token, "/users?$filter=startswith(mail,'a')").await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert!(body["error"]["innerError"]["request-id"].is_string());
}

#[tokio::test]
async fn me_needs_a_delegated_token() {
    let sim = world().start().await.unwrap();
    let token = app_token(&sim, contoso().id()).await;
    let (status, _) = get(&sim, &token, "/me").await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
}
