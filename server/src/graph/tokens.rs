//! App tokens (client credentials), one per Microsoft tenant.
//!
//! Callers for one tenant share one token request: the first takes the tenant's slot lock and
//! fetches, the others wait on the lock and find the fresh token. A token is renewed
//! `refresh_margin` before it expires, and dropped when Graph rejects it.

use std::{
    collections::HashMap,
    sync::{Arc, Mutex},
    time::Duration,
};

use oauth2::{
    AuthType, ClientId, ClientSecret, Scope, TokenResponse as _, TokenUrl, basic::BasicClient,
};
use secrecy::{ExposeSecret as _, SecretString};
use tokio::time::Instant;

use super::{GRAPH_DEFAULT_SCOPE, GraphError, GraphSettings};
use crate::domain::MicrosoftTenantId;

/// A bearer token for Graph calls in one Microsoft tenant.
#[derive(Clone)]
pub struct AppToken {
    secret: SecretString,
    expires_at: Instant,
    /// Which fetch made it, to tell a rejected token from a fresher one.
    serial: u64,
}

impl AppToken {
    /// The `Authorization` header value.
    pub fn bearer(&self) -> String {
        format!("Bearer {}", self.secret.expose_secret())
    }
}

/// The longest app-token lifetime believed, whatever `expires_in` says.
const LONGEST_TOKEN_LIFETIME: Duration = Duration::from_secs(86_400);

type Slot = Arc<tokio::sync::Mutex<Option<AppToken>>>;

/// The app-token cache.
pub struct AppTokens {
    settings: GraphSettings,
    http: reqwest::Client,
    slots: Mutex<HashMap<MicrosoftTenantId, Slot>>,
    serial: std::sync::atomic::AtomicU64,
}

impl AppTokens {
    /// A cache fetching tokens with `http`.
    pub fn new(settings: GraphSettings, http: reqwest::Client) -> Self {
        Self {
            settings,
            http,
            slots: Mutex::new(HashMap::new()),
            serial: std::sync::atomic::AtomicU64::new(0),
        }
    }

    fn slot(&self, microsoft_tenant: &MicrosoftTenantId) -> Slot {
        let mut slots = self
            .slots
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        slots.entry(microsoft_tenant.clone()).or_default().clone()
    }

    /// A valid token for `microsoft_tenant`, fetched only if the cached one is missing or due
    /// for renewal.
    pub async fn get(&self, microsoft_tenant: &MicrosoftTenantId) -> Result<AppToken, GraphError> {
        let slot = self.slot(microsoft_tenant);
        let mut cached = slot.lock().await;
        if let Some(token) = cached.as_ref()
            && Instant::now()
                .checked_add(self.settings.refresh_margin)
                .is_some_and(|renew_at| renew_at < token.expires_at)
        {
            return Ok(token.clone());
        }
        let token = self.fetch(microsoft_tenant).await?;
        *cached = Some(token.clone());
        Ok(token)
    }

    /// Forgets `rejected` (Graph answered 401 with it) unless a fresher token replaced it.
    pub async fn invalidate(&self, microsoft_tenant: &MicrosoftTenantId, rejected: &AppToken) {
        let slot = self.slot(microsoft_tenant);
        let mut cached = slot.lock().await;
        if cached.as_ref().is_some_and(|t| t.serial == rejected.serial) {
            *cached = None;
        }
    }

    async fn fetch(&self, microsoft_tenant: &MicrosoftTenantId) -> Result<AppToken, GraphError> {
        let token_url = format!(
            "{}/{}/oauth2/v2.0/token",
            self.settings.login_base_url.trim_end_matches('/'),
            percent_encoding::utf8_percent_encode(
                microsoft_tenant.as_str(),
                percent_encoding::NON_ALPHANUMERIC
            )
        );
        let client = BasicClient::new(ClientId::new(self.settings.client_id.clone()))
            .set_client_secret(ClientSecret::new(
                self.settings.client_secret.expose_secret().to_owned(),
            ))
            .set_auth_type(AuthType::RequestBody)
            .set_token_uri(
                TokenUrl::new(token_url)
                    .map_err(|e| GraphError::Transport(format!("token URL: {e}")))?,
            );
        let started = Instant::now();
        let http = self.http.clone();
        let response = client
            .exchange_client_credentials()
            .add_scope(Scope::new(GRAPH_DEFAULT_SCOPE.to_owned()))
            .request_async(&|request| send(http.clone(), request))
            .await
            .map_err(GraphError::from_token_request)?;
        // Microsoft's lifetimes are 60–90 minutes; believe no more than a day of whatever
        // `expires_in` says, so that no number from the wire can overflow the clock.
        let lifetime = response
            .expires_in()
            .unwrap_or(Duration::from_secs(3600))
            .min(LONGEST_TOKEN_LIFETIME);
        Ok(AppToken {
            secret: SecretString::from(response.access_token().secret().clone()),
            expires_at: started.checked_add(lifetime).unwrap_or(started),
            serial: self
                .serial
                .fetch_add(1, std::sync::atomic::Ordering::Relaxed),
        })
    }
}

/// oauth2's HTTP seam over our reqwest (oauth2's own reqwest feature would pull in an older
/// reqwest). Redirects are not followed (the client is built so).
pub(crate) async fn send(
    http: reqwest::Client,
    request: oauth2::HttpRequest,
) -> Result<oauth2::HttpResponse, reqwest::Error> {
    let (parts, body) = request.into_parts();
    let response = http
        .request(parts.method, parts.uri.to_string())
        .headers(parts.headers)
        .body(body)
        .send()
        .await?;
    let mut builder = http::Response::builder().status(response.status());
    if let Some(headers) = builder.headers_mut() {
        headers.extend(
            response
                .headers()
                .iter()
                .map(|(k, v)| (k.clone(), v.clone())),
        );
    }
    let body = response.bytes().await?.to_vec();
    // Status and headers come from a valid response, so building cannot fail.
    Ok(builder.body(body).unwrap_or_default())
}
