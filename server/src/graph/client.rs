//! Authenticated Graph calls.

use std::{sync::Arc, time::Duration};

use serde::{Deserialize, de::DeserializeOwned};

use super::{AppTokens, GraphError, GraphSettings};

/// A domain of a Microsoft 365 tenant (`GET /domains`).
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct GraphDomain {
    /// The fully qualified name.
    pub id: String,
    /// Whether the tenant proved it owns the domain.
    #[serde(default)]
    pub is_verified: bool,
    /// What the domain is set up for; mail needs `Email`.
    #[serde(default)]
    pub supported_services: Vec<String>,
}

#[derive(Deserialize)]
struct Page<T> {
    value: Vec<T>,
    #[serde(rename = "@odata.nextLink")]
    next_link: Option<String>,
}

#[derive(Deserialize)]
struct ErrorBody {
    error: ErrorDetail,
}

#[derive(Deserialize)]
struct ErrorDetail {
    code: String,
    #[serde(default)]
    message: String,
}

/// Graph v1.0 with app tokens.
#[derive(Clone)]
pub struct GraphClient {
    base: String,
    http: reqwest::Client,
    tokens: Arc<AppTokens>,
}

impl GraphClient {
    /// A client for `settings`, sharing `tokens`.
    pub fn new(settings: &GraphSettings, http: reqwest::Client, tokens: Arc<AppTokens>) -> Self {
        Self {
            base: format!("{}/v1.0", settings.graph_base_url.trim_end_matches('/')),
            http,
            tokens,
        }
    }

    /// The domains of `microsoft_tenant`.
    pub async fn list_domains(
        &self,
        microsoft_tenant: &str,
    ) -> Result<Vec<GraphDomain>, GraphError> {
        self.get_all(microsoft_tenant, &format!("{}/domains", self.base))
            .await
    }

    /// Every item of a collection, following `@odata.nextLink` as an opaque URL.
    async fn get_all<T: DeserializeOwned>(
        &self,
        microsoft_tenant: &str,
        first: &str,
    ) -> Result<Vec<T>, GraphError> {
        let mut items = Vec::new();
        let mut next = Some(first.to_owned());
        while let Some(url) = next {
            let page: Page<T> = self.get_json(microsoft_tenant, &url).await?;
            items.extend(page.value);
            next = page.next_link;
        }
        Ok(items)
    }

    /// GETs `url` with the tenant's app token. A token Graph rejects as invalid
    /// (`InvalidAuthenticationToken`: expired or revoked early) is dropped and the call made
    /// once more with a fresh one.
    async fn get_json<T: DeserializeOwned>(
        &self,
        microsoft_tenant: &str,
        url: &str,
    ) -> Result<T, GraphError> {
        let mut refreshed = false;
        loop {
            let token = self.tokens.get(microsoft_tenant).await?;
            let response = self
                .http
                .get(url)
                .header(http::header::AUTHORIZATION, token.bearer())
                .send()
                .await
                .map_err(|e| GraphError::Transport(e.to_string()))?;
            if response.status().is_success() {
                return response
                    .json::<T>()
                    .await
                    .map_err(|e| GraphError::Transport(format!("unreadable Graph answer: {e}")));
            }
            let error = api_error(response).await;
            if !refreshed && error.code() == Some("InvalidAuthenticationToken") {
                self.tokens.invalidate(microsoft_tenant, &token).await;
                refreshed = true;
                continue;
            }
            return Err(error);
        }
    }
}

/// Reads Graph's error JSON (`{"error":{"code","message"}}`) and `Retry-After`.
pub(crate) async fn api_error(response: reqwest::Response) -> GraphError {
    let status = response.status().as_u16();
    let retry_after = response
        .headers()
        .get(http::header::RETRY_AFTER)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.trim().parse::<u64>().ok())
        .map(Duration::from_secs);
    let body = response.bytes().await.unwrap_or_default();
    let (code, message) = match serde_json::from_slice::<ErrorBody>(&body) {
        Ok(parsed) => (parsed.error.code, parsed.error.message),
        Err(_) => (
            format!("Http{status}"),
            String::from_utf8_lossy(&body).chars().take(200).collect(),
        ),
    };
    GraphError::Api {
        status,
        code,
        message,
        retry_after,
    }
}
