//! A small world and helpers shared by the tests.

use graph_sim::seed::{App, Domain, Mail, Tenant, User};
use graph_sim::{GraphSim, GraphSimBuilder};
use reqwest::StatusCode;
use serde_json::Value;

pub const CLIENT_ID: &str = "0b7c2a5e-1d4f-4c8e-9a3b-5f6e7d8c9b0a";
pub const SECRET: &str = "correct-horse-battery-staple";

pub fn contoso() -> Tenant {
    Tenant::new("Contoso")
        .domain(Domain::verified("contoso.com").default_domain())
        .domain(Domain::unverified("contoso-old.com"))
        .consent(CLIENT_ID)
        .user(User::new("admin@contoso.com").admin())
        .user(User::new("alice@contoso.com").alias("al@contoso.com"))
        .user(User::new("bob@contoso.com"))
        .user(User::new("carol@contoso.com").unlicensed())
        .user(User::new("dave@contoso.com").excluded_by_access_policy())
}

pub fn fabrikam() -> Tenant {
    Tenant::new("Fabrikam")
        .domain(Domain::verified("fabrikam.com"))
        .consent(CLIENT_ID)
        .user(User::new("erin@fabrikam.com"))
}

/// Contoso and Fabrikam, both consented, with one mail from bob to alice.
pub fn world() -> GraphSimBuilder {
    GraphSim::builder()
        .rng_seed(7)
        .app(App::new(CLIENT_ID, SECRET))
        .tenant(contoso())
        .tenant(fabrikam())
        .mail(
            Mail::new("<first@contoso.com>", "bob@contoso.com")
                .subject("hello")
                .to(["alice@contoso.com"]),
        )
}

/// A client that never follows redirects.
pub fn http() -> reqwest::Client {
    reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap()
}

/// A client-credentials token from the token endpoint.
pub async fn app_token(sim: &GraphSim, tenant: &str) -> String {
    let response = http()
        .post(format!(
            "{}/{tenant}/oauth2/v2.0/token",
            sim.login_base_url()
        ))
        .form(&[
            ("grant_type", "client_credentials"),
            ("client_id", CLIENT_ID),
            ("client_secret", SECRET),
            ("scope", "https://graph.microsoft.com/.default"),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    let body: Value = response.json().await.unwrap();
    body["access_token"].as_str().unwrap().to_owned()
}

/// GET on Graph; returns status and JSON (Null for an empty body).
pub async fn get(sim: &GraphSim, token: &str, path_and_query: &str) -> (StatusCode, Value) {
    let response = http()
        .get(format!("{}/v1.0{path_and_query}", sim.graph_base_url()))
        .bearer_auth(token)
        .send()
        .await
        .unwrap();
    let status = response.status();
    let text = response.text().await.unwrap();
    (status, serde_json::from_str(&text).unwrap_or(Value::Null))
}

/// The `error.code` of a Graph error body.
pub fn code(body: &Value) -> &str {
    body["error"]["code"].as_str().unwrap_or_default()
}

/// Ids of messages whose internet message id is `imid`, through `$filter`.
pub async fn find(sim: &GraphSim, token: &str, user: &str, imid: &str) -> Vec<String> {
    let response = http()
        .get(format!(
            "{}/v1.0/users/{user}/messages",
            sim.graph_base_url()
        ))
        .query(&[
            (
                "$filter",
                format!("internetMessageId eq '{}'", imid.replace('\'', "''")),
            ),
            ("$select", "id".to_owned()),
        ])
        .bearer_auth(token)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::OK, "find {imid}");
    let body: Value = response.json().await.unwrap();
    body["value"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["id"].as_str().unwrap().to_owned())
        .collect()
}

/// POST JSON on Graph; returns status and JSON (Null for an empty body).
pub async fn post(sim: &GraphSim, token: &str, path: &str, body: Value) -> (StatusCode, Value) {
    let response = http()
        .post(format!("{}/v1.0{path}", sim.graph_base_url()))
        .bearer_auth(token)
        .json(&body)
        .send()
        .await
        .unwrap();
    let status = response.status();
    (status, response.json().await.unwrap_or(Value::Null))
}

/// Every message a list call returns, following `@odata.nextLink` (asserting 200 on each page).
pub async fn list_all(
    sim: &GraphSim,
    token: &str,
    path: &str,
    query: &[(&str, String)],
) -> Vec<Value> {
    let mut response = http()
        .get(format!("{}/v1.0{path}", sim.graph_base_url()))
        .query(query)
        .bearer_auth(token)
        .send()
        .await
        .unwrap();
    let mut all = Vec::new();
    loop {
        assert_eq!(response.status(), StatusCode::OK, "{path}");
        let body: Value = response.json().await.unwrap();
        all.extend(body["value"].as_array().unwrap().iter().cloned());
        let Some(next) = body["@odata.nextLink"].as_str() else {
            return all;
        };
        response = http().get(next).bearer_auth(token).send().await.unwrap();
    }
}
