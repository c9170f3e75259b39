//! Microsoft Graph and the identity platform, as the rest of the server sees them.
//!
//! # Layout
//! - `error`: [`GraphError`], typed by Graph's `error.code` and the token endpoint's `error`.
//! - `credential`: [`AppCredential`], the client secret or certificate (a signed
//!   `client_assertion`), read again when its file changes; [`CredentialHealth`] says whether
//!   Microsoft accepts it.
//! - `tokens`: [`AppTokens`], the per-Microsoft-tenant app-token cache (client credentials
//!   through the `oauth2` crate): refreshed before expiry, single-flight, invalidated on 401,
//!   token requests retried through outages, a valid token kept when a renewal fails.
//! - `client`: [`GraphClient`], authenticated Graph calls: four in flight per mailbox at most,
//!   `Retry-After` honoured, backoff with jitter, one token refresh on 401.
//! - `mail`: finding mailboxes and message copies, deleting copies (OData values escaped).
//! - `admin`: [`AdminMailboxes`], whether an administrator has a mailbox in the tenant.
//!
//! Both base URLs come from configuration, so the same code talks to Microsoft or to
//! `graph-sim` in tests.

mod admin;
mod client;
mod credential;
mod error;
mod mail;
mod tokens;

use std::{sync::Arc, time::Duration};

pub use admin::AdminMailboxes;
pub(crate) use client::api_error;
pub use client::{GraphClient, GraphDomain, REQUESTS_PER_MAILBOX, RetryPolicy};
pub use credential::{AppCredential, CredentialHealth, CredentialSource, Presented};
pub use error::GraphError;
pub use mail::{
    DeleteMode, Deleted, Folder, MailboxRef, MessageCopy, Moved, Recipient, ThreadHeaders,
};
pub(crate) use tokens::TokenHttp;
pub use tokens::{AppToken, AppTokens};

/// The scope that grants an app token the app registration's static permissions.
pub const GRAPH_DEFAULT_SCOPE: &str = "https://graph.microsoft.com/.default";

/// How to reach Microsoft, and as which app registration.
#[derive(Clone)]
pub struct GraphSettings {
    /// Graph's base URL, without `/v1.0`.
    pub graph_base_url: String,
    /// The identity platform's base URL, without the tenant.
    pub login_base_url: String,
    /// The app registration's client id and credential (secret or certificate).
    pub credential: Arc<AppCredential>,
    /// Tokens are renewed this long before they expire.
    pub refresh_margin: Duration,
    /// Longest a single HTTP request to Microsoft may take.
    pub request_timeout: Duration,
    /// How failed requests are retried.
    pub retry: RetryPolicy,
    /// Graph requests this replica sends per second at most, all tenants together (Graph
    /// allows an app 130,000 per 10 seconds); 0 for no pacing.
    pub requests_per_second: f64,
}

/// An HTTP client for Microsoft: never follows redirects (a token endpoint that redirects is
/// not answering), bounded in time.
pub fn http_client(settings: &GraphSettings) -> Result<reqwest::Client, GraphError> {
    reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .timeout(settings.request_timeout)
        .build()
        .map_err(|e| GraphError::Transport(e.to_string()))
}
