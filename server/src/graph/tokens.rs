//! App tokens (client credentials), one per Microsoft tenant.
//!
//! Callers for one tenant share one token request: the first takes the tenant's slot lock and
//! fetches, the others wait on the lock and find the fresh token. A token is renewed
//! `refresh_margin` before it expires, and dropped when Graph rejects it. Without a usable
//! token, a token request that meets an outage (5xx, 429, a broken connection) is retried
//! under the Graph retry policy (`Retry-After` honoured, bounded); an early renewal that fails
//! keeps the still-valid token and tries again a little later.

use std::{
    collections::HashMap,
    sync::{Arc, Mutex},
    time::Duration,
};

use oauth2::{AuthType, ClientId, Scope, TokenResponse as _, TokenUrl, basic::BasicClient};
use secrecy::{ExposeSecret as _, SecretString};
use tokio::time::Instant;
use tracing::Instrument as _;

use super::{GRAPH_DEFAULT_SCOPE, GraphError, GraphSettings, client::parse_retry_after};
use crate::domain::MicrosoftTenantId;

/// A bearer token for Graph calls in one Microsoft tenant.
#[derive(Clone)]
pub struct AppToken {
    secret: SecretString,
    expires_at: Instant,
    /// When to try renewing it (`refresh_margin` before expiry, later after a failed try).
    renew_at: Instant,
    /// Which fetch made it, to tell a rejected token from a fresher one.
    serial: u64,
}

impl AppToken {
    /// The `Authorization` header value.
    pub fn bearer(&self) -> String {
        format!("Bearer {}", self.secret.expose_secret())
    }
}

/// Escaped in the tenant's path segment: everything but RFC 3986's unreserved characters, so
/// the URL (also a client assertion's audience) reads as Microsoft writes it.
const PATH_SEGMENT: &percent_encoding::AsciiSet = &percent_encoding::NON_ALPHANUMERIC
    .remove(b'-')
    .remove(b'.')
    .remove(b'_')
    .remove(b'~');

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
    /// for renewal. A renewal that fails while the cached token is still valid returns the
    /// cached token (unless Microsoft says the tenant no longer consents).
    pub async fn get(&self, microsoft_tenant: &MicrosoftTenantId) -> Result<AppToken, GraphError> {
        let slot = self.slot(microsoft_tenant);
        let mut cached = slot.lock().await;
        let now = Instant::now();
        let usable = cached.as_ref().filter(|t| now < t.expires_at).cloned();
        if let Some(token) = &usable
            && now < token.renew_at
        {
            return Ok(token.clone());
        }
        // With a usable token, one try; without one, the retry policy's.
        let attempts = if usable.is_some() {
            1
        } else {
            self.settings.retry.max_attempts
        };
        let fetched = self.fetch_retrying(microsoft_tenant, attempts).await;
        self.settings.credential.health().note(&fetched);
        match (fetched, usable) {
            (Ok(token), _) => {
                *cached = Some(token.clone());
                Ok(token)
            }
            (Err(err @ GraphError::ConsentMissing { .. }), _) | (Err(err), None) => Err(err),
            (Err(err), Some(mut token)) => {
                tracing::warn!(tenant = %microsoft_tenant, error = %err, "app token renewal failed; using the cached token while it is valid");
                let retry_in = self
                    .settings
                    .retry
                    .base_backoff
                    .max(Duration::from_millis(100));
                token.renew_at = Instant::now()
                    .checked_add(retry_in)
                    .unwrap_or(token.expires_at)
                    .min(token.expires_at);
                *cached = Some(token.clone());
                Ok(token)
            }
        }
    }

    /// Fetches with up to `attempts` tries, waiting between them as the retry policy says.
    async fn fetch_retrying(
        &self,
        microsoft_tenant: &MicrosoftTenantId,
        attempts: u32,
    ) -> Result<AppToken, GraphError> {
        let mut attempt = 0;
        loop {
            attempt += 1;
            let error = match self.fetch(microsoft_tenant).await {
                Ok(token) => return Ok(token),
                Err(error) => error,
            };
            let wait = if attempt >= attempts {
                None
            } else {
                self.settings.retry.wait(&error, attempt)
            };
            let Some(wait) = wait else {
                return Err(error);
            };
            tracing::debug!(attempt, ?wait, error = %error, "retrying an app token request");
            tokio::time::sleep(wait).await;
        }
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
            percent_encoding::utf8_percent_encode(microsoft_tenant.as_str(), PATH_SEGMENT)
        );
        let credential = self.settings.credential.present(&token_url)?;
        let client = BasicClient::new(ClientId::new(
            self.settings.credential.client_id().to_owned(),
        ))
        .set_auth_type(AuthType::RequestBody)
        .set_token_uri(
            TokenUrl::new(token_url)
                .map_err(|e| GraphError::Transport(format!("token URL: {e}")))?,
        );
        let started = Instant::now();
        let exchange = TokenHttp::new(self.http.clone());
        let mut request = client
            .exchange_client_credentials()
            .add_scope(Scope::new(GRAPH_DEFAULT_SCOPE.to_owned()));
        for (name, value) in credential.form_fields() {
            request = request.add_extra_param(name, value);
        }
        let response = request
            .request_async(&|request| exchange.send(request))
            .await
            .map_err(|e| exchange.error(e))?;
        // Microsoft's lifetimes are 60–90 minutes; believe no more than a day of whatever
        // `expires_in` says, so that no number from the wire can overflow the clock.
        let lifetime = response
            .expires_in()
            .unwrap_or(Duration::from_secs(3600))
            .min(LONGEST_TOKEN_LIFETIME);
        let expires_at = started.checked_add(lifetime).unwrap_or(started);
        Ok(AppToken {
            secret: SecretString::from(response.access_token().secret().clone()),
            expires_at,
            renew_at: expires_at
                .checked_sub(self.settings.refresh_margin)
                .unwrap_or(started)
                .max(started),
            serial: self
                .serial
                .fetch_add(1, std::sync::atomic::Ordering::Relaxed),
        })
    }
}

/// oauth2's HTTP seam over our reqwest (oauth2's own reqwest feature would pull in an older
/// reqwest), remembering the answer's status and `Retry-After`, which oauth2's error drops
/// and which tell an outage from a refusal. Redirects are not followed (the client is built
/// so).
pub(crate) struct TokenHttp {
    http: reqwest::Client,
    answer: Arc<Mutex<Option<Answer>>>,
}

/// The status and `Retry-After` of the token endpoint's latest answer.
type Answer = (u16, Option<Duration>);

impl TokenHttp {
    pub(crate) fn new(http: reqwest::Client) -> Self {
        Self {
            http,
            answer: Arc::default(),
        }
    }

    /// Sends `request` (an owned future: oauth2's seam must not borrow across the call).
    pub(crate) fn send(
        &self,
        request: oauth2::HttpRequest,
    ) -> impl Future<Output = Result<oauth2::HttpResponse, reqwest::Error>> + Send + 'static {
        let http = self.http.clone();
        let answer = self.answer.clone();
        async move {
            let response = send(http, request).await?;
            let retry_after = response
                .headers()
                .get(http::header::RETRY_AFTER)
                .and_then(|v| v.to_str().ok())
                .and_then(parse_retry_after);
            *answer
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner) =
                Some((response.status().as_u16(), retry_after));
            Ok(response)
        }
    }

    /// The failed exchange as a [`GraphError`], told apart by the answer's status.
    pub(crate) fn error<RE: std::error::Error + 'static>(
        &self,
        err: oauth2::RequestTokenError<RE, oauth2::basic::BasicErrorResponse>,
    ) -> GraphError {
        let answer = *self
            .answer
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        GraphError::from_token_request(answer.map(|a| a.0), answer.and_then(|a| a.1), err)
    }
}

/// One HTTP exchange for oauth2.
async fn send(
    http: reqwest::Client,
    request: oauth2::HttpRequest,
) -> Result<oauth2::HttpResponse, reqwest::Error> {
    let (parts, body) = request.into_parts();
    let endpoint = crate::telemetry::metrics::TOKEN_ENDPOINT;
    let span = super::client::graph_span(endpoint, &parts.method, 1);
    let sent = std::time::Instant::now();
    let answer = http
        .request(parts.method, parts.uri.to_string())
        .headers(parts.headers)
        .body(body)
        .send()
        .instrument(span.clone())
        .await;
    super::client::record_answer(&span, endpoint, answer.as_ref().ok(), sent.elapsed());
    let response = answer?;
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
