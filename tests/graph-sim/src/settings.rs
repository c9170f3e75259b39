//! Run-time settings: throttling limits, latency, faults, sign-in behaviour, token lifetime.
//!
//! Everything here can be set at start (builder or JSON) and changed while running (the handle
//! or the admin API). Durations are milliseconds on the wire so tests can use small values.

use std::collections::BTreeMap;
use std::time::Duration;

use serde::{Deserialize, Serialize};

/// All settings of a running simulator.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct Settings {
    pub limits: Limits,
    pub latency: LatencySettings,
    pub faults: FaultSettings,
    /// What happens when someone is sent to the authorize or adminconsent endpoint.
    pub sign_in: SignIn,
    /// Lifetime of issued access and id tokens.
    pub token_lifetime_ms: u64,
    /// The `expires_in` the token endpoint announces instead of the real lifetime (an identity
    /// platform that misbehaves, e.g. `u64::MAX`); `None` tells the truth.
    pub token_expires_in_secs: Option<u64>,
    /// Lifetime of authorization codes.
    pub code_lifetime_ms: u64,
    /// Base URL (scheme, host, port) message `@odata.nextLink`s point at instead of the
    /// simulator's own (a misbehaving or tampered answer sending clients elsewhere).
    pub next_link_base: Option<String>,
    /// Message `@odata.nextLink`s name the page they came with (paging never ends).
    pub next_link_loops: bool,
    /// Default page size of message and user collections.
    pub page_size: usize,
    /// Whether `$batch` answers are shuffled (Graph does not promise any order).
    pub shuffle_batch_responses: bool,
    /// Most requests kept in the request log (older ones are dropped, counted in stats).
    pub max_recorded_requests: usize,
}

impl Default for Settings {
    fn default() -> Self {
        Self {
            limits: Limits::default(),
            latency: LatencySettings::default(),
            faults: FaultSettings::default(),
            sign_in: SignIn::Decline,
            token_lifetime_ms: 3_599_000,
            token_expires_in_secs: None,
            code_lifetime_ms: 600_000,
            next_link_base: None,
            next_link_loops: false,
            page_size: 10,
            shuffle_batch_responses: true,
            max_recorded_requests: 2_000_000,
        }
    }
}

impl Settings {
    /// Lifetime of issued tokens.
    pub fn token_lifetime(&self) -> Duration {
        Duration::from_millis(self.token_lifetime_ms)
    }
}

/// Graph's throttling limits (per app; "mailbox" limits are per app per mailbox).
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct Limits {
    /// Turns all throttling off (the bench does this).
    pub enabled: bool,
    /// Concurrent requests one app may have open against one mailbox (Graph: 4).
    pub mailbox_concurrency: usize,
    /// Requests one app may make to one mailbox per window (Graph: 10,000 per 10 minutes).
    pub mailbox_requests_per_window: u64,
    pub mailbox_window_ms: u64,
    /// Requests one app may make across all tenants per window (Graph: 130,000 per 10 s).
    pub app_requests_per_window: u64,
    pub app_window_ms: u64,
    /// Directory reads (`/users…`) one app may make in one tenant per window, one unit each
    /// (Graph: 3,500 to 8,000 units per 10 s by tenant size).
    pub directory_requests_per_window: u64,
    pub directory_window_ms: u64,
    /// Optional per-app-global concurrency limit across all mailboxes.
    pub app_concurrency: Option<usize>,
    /// The `Retry-After` sent with 429s (whole seconds on the wire; 0 allowed). A request of the
    /// same app to the same mailbox before it elapsed is throttled again.
    pub retry_after_secs: u64,
}

impl Default for Limits {
    fn default() -> Self {
        Self {
            enabled: true,
            mailbox_concurrency: 4,
            mailbox_requests_per_window: 10_000,
            mailbox_window_ms: 600_000,
            app_requests_per_window: 130_000,
            app_window_ms: 10_000,
            directory_requests_per_window: 3_500,
            directory_window_ms: 10_000,
            app_concurrency: None,
            retry_after_secs: 1,
        }
    }
}

impl Limits {
    /// No throttling at all.
    pub fn unlimited() -> Self {
        Self {
            enabled: false,
            ..Self::default()
        }
    }
}

/// Which kind of call a request is: latency and faults can be set per endpoint.
#[derive(Clone, Copy, Debug, Serialize, Deserialize, PartialEq, Eq, Hash, PartialOrd, Ord)]
#[serde(rename_all = "snake_case")]
pub enum Endpoint {
    Organization,
    Domains,
    Me,
    UserGet,
    UserQuery,
    MessageList,
    FolderMessages,
    MessageGet,
    MessageDelete,
    PermanentDelete,
    Move,
    Batch,
    Authorize,
    AdminConsent,
    Token,
    Discovery,
    Keys,
    Unknown,
}

impl Endpoint {
    /// Identity-platform endpoints (faults apply to them only when named explicitly).
    pub fn is_identity(self) -> bool {
        matches!(
            self,
            Endpoint::Authorize
                | Endpoint::AdminConsent
                | Endpoint::Token
                | Endpoint::Discovery
                | Endpoint::Keys
        )
    }
}

/// A delay of `fixed_ms` plus a uniformly random `0..=jitter_ms`.
#[derive(Clone, Copy, Debug, Default, Serialize, Deserialize, PartialEq, Eq)]
#[serde(default, deny_unknown_fields)]
pub struct Latency {
    pub fixed_ms: u64,
    pub jitter_ms: u64,
}

impl Latency {
    /// Always `ms` milliseconds.
    pub fn fixed(ms: u64) -> Self {
        Self {
            fixed_ms: ms,
            jitter_ms: 0,
        }
    }

    /// `fixed_ms` plus up to `jitter_ms` more.
    pub fn with_jitter(fixed_ms: u64, jitter_ms: u64) -> Self {
        Self {
            fixed_ms,
            jitter_ms,
        }
    }

    pub fn is_zero(&self) -> bool {
        self.fixed_ms == 0 && self.jitter_ms == 0
    }
}

/// Latency injected into every request, overridable per endpoint.
#[derive(Clone, Debug, Default, Serialize, Deserialize, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct LatencySettings {
    pub default: Latency,
    pub per_endpoint: BTreeMap<Endpoint, Latency>,
}

impl LatencySettings {
    pub fn for_endpoint(&self, endpoint: Endpoint) -> Latency {
        self.per_endpoint
            .get(&endpoint)
            .copied()
            .unwrap_or(self.default)
    }

    pub fn is_off(&self) -> bool {
        self.default.is_zero() && self.per_endpoint.values().all(Latency::is_zero)
    }
}

/// Random faults, each a probability in `0.0..=1.0` per request.
#[derive(Clone, Debug, Default, Serialize, Deserialize, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct FaultSettings {
    pub error_500: f64,
    /// 502 with an HTML body, as a front door sends it.
    pub error_502: f64,
    /// 503 with `Retry-After`.
    pub error_503: f64,
    pub error_504: f64,
    /// A random 429 with `Retry-After`.
    pub throttle_429: f64,
    /// The connection is closed without an answer.
    pub drop_connection: f64,
    /// The answer is sent in small chunks with `slow_body_chunk_delay_ms` between them.
    pub slow_body: f64,
    pub slow_body_chunk_delay_ms: u64,
    /// Endpoints faults apply to; empty means every Graph endpoint (identity excluded).
    pub endpoints: Vec<Endpoint>,
}

impl FaultSettings {
    pub fn is_off(&self) -> bool {
        self.error_500 <= 0.0
            && self.error_502 <= 0.0
            && self.error_503 <= 0.0
            && self.error_504 <= 0.0
            && self.throttle_429 <= 0.0
            && self.drop_connection <= 0.0
            && self.slow_body <= 0.0
    }

    pub fn applies_to(&self, endpoint: Endpoint) -> bool {
        if self.endpoints.is_empty() {
            !endpoint.is_identity()
        } else {
            self.endpoints.contains(&endpoint)
        }
    }
}

/// How the simulated browser session answers an authorize / adminconsent request.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
#[serde(rename_all = "snake_case", tag = "outcome")]
pub enum SignIn {
    /// The user with this UPN signs in and approves.
    Approve { user: String },
    /// The user declines (`access_denied`, AADSTS65004).
    Decline,
    /// The identity platform answers this error.
    Error { error: String, description: String },
}

impl SignIn {
    /// The user with this UPN (or address) signs in and approves.
    pub fn approve_as(user: impl Into<String>) -> Self {
        SignIn::Approve { user: user.into() }
    }
}
