//! Settings: one typed struct, loaded once from defaults → an optional TOML file →
//! `RETRACT_*` environment variables → command-line flags (later sources win).
//!
//! Every setting is a flag and an environment variable; `retract-server --help` lists them all.
//! The same names (without `--`, with `_`) are the keys of the TOML file.

use std::{net::SocketAddr, path::PathBuf, time::Duration};

use clap::{Parser, ValueEnum};
use figment::{
    Figment,
    providers::{Format as _, Serialized, Toml},
};
use secrecy::SecretString;
use serde::{Deserialize, Serialize};

use crate::{
    auth::{KeySources, RateLimit, TokenRules},
    graph::{GraphSettings, RetryPolicy},
    store::DatabaseOptions,
};

/// The development signing key of caller tokens. Anyone can mint tokens with it: it is for a
/// laptop and for tests only, used when no key is configured in development mode.
pub const DEVELOPMENT_JWT_SECRET: &str = "retract-development-key-do-not-use-in-production";

/// How logs are written.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    /// Human-readable lines.
    Human,
    /// One JSON object a line, for log collectors.
    Json,
}

/// Whether the server runs for development or production.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum Mode {
    /// A laptop or a test: the public development key is accepted when no key is configured.
    Development,
    /// Real callers: public keys only (PEM or JWKS); HS256 secrets are refused.
    Production,
}

/// Every setting of the server, resolved.
#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Settings {
    /// Address of the one port serving gRPC, gRPC-Web, health and reflection.
    pub listen_addr: SocketAddr,
    /// `sqlite://retract.db?mode=rwc` (embedded, the default) or `postgres://…`.
    pub database_url: String,
    /// PostgreSQL pool size (SQLite always uses one connection).
    pub database_max_connections: u32,
    /// How long a query waits for a connection before the call answers UNAVAILABLE.
    pub database_acquire_timeout_ms: u64,
    /// How long SQLite waits on a lock held by another process.
    pub sqlite_busy_timeout_ms: u64,
    /// Apply pending migrations on start. Turn off where operators run `retract-migrate`.
    pub migrate_on_start: bool,
    /// Log format.
    pub log_format: LogFormat,
    /// Log filter in `tracing` syntax, e.g. `info` or `retract_server=debug,info`.
    pub log_filter: String,
    /// Longest time a unary call may take (a caller's shorter `grpc-timeout` wins).
    pub request_timeout_ms: u64,
    /// Most calls served at once across all connections; more wait.
    pub concurrency_limit: usize,
    /// How long shutdown waits for open calls and streams before closing them.
    pub shutdown_grace_ms: u64,
    /// How often the health check probes the database.
    pub health_probe_interval_ms: u64,
    /// How long one database probe may take before the service reports NOT_SERVING.
    pub health_probe_timeout_ms: u64,
    /// Browser origins allowed to call over gRPC-Web (CORS); empty allows none.
    pub cors_allowed_origins: Vec<String>,
    /// Required `iss` of caller tokens.
    pub jwt_issuer: String,
    /// Required `aud` of caller tokens.
    pub jwt_audience: String,
    /// HS256 secret of caller tokens (development only). In development mode with no key
    /// configured at all, the public [`DEVELOPMENT_JWT_SECRET`] is used.
    pub jwt_hs256_secret: Option<SecretString>,
    /// PEM public keys of token issuers: RSA keys verify RS256, EC P-256 keys ES256.
    pub jwt_public_key_files: Vec<PathBuf>,
    /// A JWKS file with the issuers' public keys.
    pub jwt_jwks_file: Option<PathBuf>,
    /// A JWKS URL with the issuers' public keys, fetched at start and refreshed.
    pub jwt_jwks_url: Option<String>,
    /// Milliseconds between JWKS URL refreshes.
    pub jwt_jwks_refresh_ms: u64,
    /// Clock skew tolerated on `exp`/`nbf`, in seconds.
    pub jwt_leeway_s: u64,
    /// `development` or `production`.
    pub mode: Mode,
    /// Start in production mode despite insecure settings (HS256 or the development key).
    /// Logged loudly at every start.
    pub allow_insecure_production: bool,
    /// Calls per second one caller may sustain (0 turns limiting off).
    pub rate_limit_per_second: f64,
    /// Calls one quiet caller may make at once.
    pub rate_limit_burst: f64,
    /// PEM certificate chain: serve TLS with it.
    pub tls_cert_file: Option<PathBuf>,
    /// PEM private key of `tls_cert_file`.
    pub tls_key_file: Option<PathBuf>,
    /// PEM CA certificates: require client certificates signed by them (mTLS).
    pub tls_client_ca_file: Option<PathBuf>,
    /// Microsoft Graph's base URL (without `/v1.0`).
    pub graph_base_url: String,
    /// The Microsoft identity platform's base URL (without the tenant).
    pub login_base_url: String,
    /// The app registration's client id; empty leaves grants unconfigured.
    pub graph_client_id: String,
    /// The app registration's client secret.
    pub graph_client_secret: Option<SecretString>,
    /// A file holding the client secret (read at start; wins over `graph_client_secret`).
    pub graph_client_secret_file: Option<PathBuf>,
    /// App tokens are renewed this many milliseconds before they expire.
    pub graph_token_refresh_margin_ms: u64,
    /// Longest single HTTP request to Microsoft, in milliseconds.
    pub graph_request_timeout_ms: u64,
    /// Attempts per Graph request (the first included) before its last error stands.
    pub graph_max_attempts: u32,
    /// First backoff after a Graph 5xx or broken connection, in milliseconds (doubles).
    pub graph_backoff_base_ms: u64,
    /// Longest backoff between Graph attempts, in milliseconds.
    pub graph_backoff_max_ms: u64,
    /// The public URL of `/consent/callback` that Microsoft redirects to; default: this
    /// server's own address (fine on a laptop, set it behind a proxy).
    pub consent_redirect_uri: Option<String>,
    /// How long a consent URL stays usable, in milliseconds.
    pub consent_ttl_ms: u64,
    /// Consent callbacks one client address may make per second.
    pub consent_callback_rate_per_second: f64,
    /// Consent callbacks one client address may make at once.
    pub consent_callback_burst: f64,
    /// Re-verify every linked tenant's domains this often, in milliseconds; 0 turns it off.
    pub domain_reverify_interval_ms: u64,
    /// How often an idle retract worker looks for jobs other replicas created, in ms.
    pub engine_poll_interval_ms: u64,
    /// How long a claimed retract job stays a worker's without renewal, in ms.
    pub job_lease_ms: u64,
    /// Mailboxes of one job processed at once.
    pub mailbox_concurrency: usize,
    /// A Heartbeat is streamed after this many ms without events.
    pub watch_heartbeat_ms: u64,
    /// How long the answer "is this administrator a mailbox of the tenant?" is kept, in ms.
    pub admin_mailbox_cache_ms: u64,
    /// Deliveries older than this many days are removed; 0 keeps them forever.
    pub delivery_retention_days: u32,
    /// Finished retract jobs (and their events) older than this many days are removed; 0
    /// keeps them forever. The audit trail keeps its own record.
    pub job_retention_days: u32,
    /// How often retention and the abandoned-consent sweep run, in milliseconds.
    pub retention_sweep_interval_ms: u64,
}

impl Default for Settings {
    fn default() -> Self {
        Self {
            listen_addr: SocketAddr::from(([127, 0, 0, 1], 50051)),
            database_url: "sqlite://retract.db?mode=rwc".to_owned(),
            database_max_connections: 10,
            database_acquire_timeout_ms: 5_000,
            sqlite_busy_timeout_ms: 5_000,
            migrate_on_start: true,
            log_format: LogFormat::Human,
            log_filter: "info".to_owned(),
            request_timeout_ms: 30_000,
            concurrency_limit: 1_024,
            shutdown_grace_ms: 10_000,
            health_probe_interval_ms: 5_000,
            health_probe_timeout_ms: 2_000,
            cors_allowed_origins: Vec::new(),
            jwt_issuer: "retract-dev".to_owned(),
            jwt_audience: "retract".to_owned(),
            jwt_hs256_secret: None,
            jwt_public_key_files: Vec::new(),
            jwt_jwks_file: None,
            jwt_jwks_url: None,
            jwt_jwks_refresh_ms: 300_000,
            jwt_leeway_s: 30,
            mode: Mode::Development,
            allow_insecure_production: false,
            rate_limit_per_second: 50.0,
            rate_limit_burst: 200.0,
            tls_cert_file: None,
            tls_key_file: None,
            tls_client_ca_file: None,
            graph_base_url: "https://graph.microsoft.com".to_owned(),
            login_base_url: "https://login.microsoftonline.com".to_owned(),
            graph_client_id: String::new(),
            graph_client_secret: None,
            graph_client_secret_file: None,
            graph_token_refresh_margin_ms: 300_000,
            graph_request_timeout_ms: 30_000,
            graph_max_attempts: 6,
            graph_backoff_base_ms: 500,
            graph_backoff_max_ms: 30_000,
            consent_redirect_uri: None,
            consent_ttl_ms: 600_000,
            consent_callback_rate_per_second: 1.0,
            consent_callback_burst: 20.0,
            domain_reverify_interval_ms: 0,
            engine_poll_interval_ms: 500,
            job_lease_ms: 30_000,
            mailbox_concurrency: 64,
            watch_heartbeat_ms: 15_000,
            admin_mailbox_cache_ms: 300_000,
            delivery_retention_days: 90,
            job_retention_days: 90,
            retention_sweep_interval_ms: 3_600_000,
        }
    }
}

/// Command-line flags and their environment variables. Unset flags leave the value of the
/// earlier sources in place.
#[derive(Debug, Default, Parser, Serialize)]
#[command(
    name = "retract-server",
    version,
    about = "retract: takes delivered email back out of Microsoft 365 mailboxes."
)]
pub struct Cli {
    /// Optional TOML file with any of the settings below (keys as the flag names, with `_`).
    #[arg(long, env = "RETRACT_CONFIG")]
    #[serde(skip)]
    pub config: Option<PathBuf>,
    /// Address of the gRPC port [default: 127.0.0.1:50051]
    #[arg(long, env = "RETRACT_LISTEN_ADDR")]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub listen_addr: Option<SocketAddr>,
    /// Database URL [default: sqlite://retract.db?mode=rwc]
    #[arg(long, env = "RETRACT_DATABASE_URL")]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub database_url: Option<String>,
    /// PostgreSQL pool size [default: 10]
    #[arg(long, env = "RETRACT_DATABASE_MAX_CONNECTIONS")]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub database_max_connections: Option<u32>,
    /// Milliseconds a query waits for a connection [default: 5000]
    #[arg(long, env = "RETRACT_DATABASE_ACQUIRE_TIMEOUT_MS")]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub database_acquire_timeout_ms: Option<u64>,
    /// Milliseconds SQLite waits on another process's lock [default: 5000]
    #[arg(long, env = "RETRACT_SQLITE_BUSY_TIMEOUT_MS")]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub sqlite_busy_timeout_ms: Option<u64>,
    /// Apply pending migrations on start [default: true]
    #[arg(long, env = "RETRACT_MIGRATE_ON_START")]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub migrate_on_start: Option<bool>,
    /// Log format [default: human]
    #[arg(long, env = "RETRACT_LOG_FORMAT")]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub log_format: Option<LogFormat>,
    /// Log filter, e.g. `info` or `retract_server=debug,info` [default: info]
    #[arg(long, env = "RETRACT_LOG_FILTER")]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub log_filter: Option<String>,
    /// Longest unary call in milliseconds [default: 30000]
    #[arg(long, env = "RETRACT_REQUEST_TIMEOUT_MS")]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub request_timeout_ms: Option<u64>,
    /// Most calls served at once [default: 1024]
    #[arg(long, env = "RETRACT_CONCURRENCY_LIMIT")]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub concurrency_limit: Option<usize>,
    /// Milliseconds shutdown waits for open calls and streams [default: 10000]
    #[arg(long, env = "RETRACT_SHUTDOWN_GRACE_MS")]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub shutdown_grace_ms: Option<u64>,
    /// Milliseconds between database health probes [default: 5000]
    #[arg(long, env = "RETRACT_HEALTH_PROBE_INTERVAL_MS")]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub health_probe_interval_ms: Option<u64>,
    /// Milliseconds one database probe may take [default: 2000]
    #[arg(long, env = "RETRACT_HEALTH_PROBE_TIMEOUT_MS")]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub health_probe_timeout_ms: Option<u64>,
    /// Browser origin allowed over gRPC-Web; repeat the flag, or comma-separate in the variable
    #[arg(long, env = "RETRACT_CORS_ALLOWED_ORIGINS", value_delimiter = ',')]
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub cors_allowed_origins: Vec<String>,
    /// Required `iss` of caller tokens [default: retract-dev]
    #[arg(long, env = "RETRACT_JWT_ISSUER")]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub jwt_issuer: Option<String>,
    /// Required `aud` of caller tokens [default: retract]
    #[arg(long, env = "RETRACT_JWT_AUDIENCE")]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub jwt_audience: Option<String>,
    /// HS256 secret of caller tokens, development only [default: the public development key when no key is configured]
    #[arg(long, env = "RETRACT_JWT_HS256_SECRET", hide_env_values = true)]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub jwt_hs256_secret: Option<String>,
    /// PEM public key of a token issuer (RSA → RS256, EC P-256 → ES256); repeat, or comma-separate in the variable
    #[arg(
        long = "jwt-public-key-file",
        env = "RETRACT_JWT_PUBLIC_KEY_FILES",
        value_delimiter = ','
    )]
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub jwt_public_key_files: Vec<PathBuf>,
    /// JWKS file with the token issuers' public keys
    #[arg(long, env = "RETRACT_JWT_JWKS_FILE")]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub jwt_jwks_file: Option<PathBuf>,
    /// JWKS URL with the token issuers' public keys, fetched at start and refreshed
    #[arg(long, env = "RETRACT_JWT_JWKS_URL")]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub jwt_jwks_url: Option<String>,
    /// Milliseconds between JWKS URL refreshes [default: 300000]
    #[arg(long, env = "RETRACT_JWT_JWKS_REFRESH_MS")]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub jwt_jwks_refresh_ms: Option<u64>,
    /// Clock skew tolerated on token times, in seconds [default: 30]
    #[arg(long, env = "RETRACT_JWT_LEEWAY_S")]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub jwt_leeway_s: Option<u64>,
    /// development or production; production refuses HS256 and the development key [default: development]
    #[arg(long, env = "RETRACT_MODE")]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub mode: Option<Mode>,
    /// Start in production mode despite insecure settings (logged loudly) [default: false]
    #[arg(long, env = "RETRACT_ALLOW_INSECURE_PRODUCTION")]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub allow_insecure_production: Option<bool>,
    /// Calls per second one caller may sustain; 0 turns limiting off [default: 50]
    #[arg(long, env = "RETRACT_RATE_LIMIT_PER_SECOND")]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub rate_limit_per_second: Option<f64>,
    /// Calls one quiet caller may make at once [default: 200]
    #[arg(long, env = "RETRACT_RATE_LIMIT_BURST")]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub rate_limit_burst: Option<f64>,
    /// PEM certificate chain: serve TLS
    #[arg(long, env = "RETRACT_TLS_CERT_FILE")]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub tls_cert_file: Option<PathBuf>,
    /// PEM private key of the certificate
    #[arg(long, env = "RETRACT_TLS_KEY_FILE")]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub tls_key_file: Option<PathBuf>,
    /// PEM CA certificates: require client certificates they signed (mTLS)
    #[arg(long, env = "RETRACT_TLS_CLIENT_CA_FILE")]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub tls_client_ca_file: Option<PathBuf>,
    /// Microsoft Graph base URL [default: https://graph.microsoft.com]
    #[arg(long, env = "RETRACT_GRAPH_BASE_URL")]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub graph_base_url: Option<String>,
    /// Microsoft identity platform base URL [default: https://login.microsoftonline.com]
    #[arg(long, env = "RETRACT_LOGIN_BASE_URL")]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub login_base_url: Option<String>,
    /// The app registration's client id (grants are unavailable without it)
    #[arg(long, env = "RETRACT_GRAPH_CLIENT_ID")]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub graph_client_id: Option<String>,
    /// The app registration's client secret (prefer the file or the variable)
    #[arg(long, env = "RETRACT_GRAPH_CLIENT_SECRET", hide_env_values = true)]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub graph_client_secret: Option<String>,
    /// File holding the app registration's client secret
    #[arg(long, env = "RETRACT_GRAPH_CLIENT_SECRET_FILE")]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub graph_client_secret_file: Option<PathBuf>,
    /// Milliseconds before expiry that app tokens are renewed [default: 300000]
    #[arg(long, env = "RETRACT_GRAPH_TOKEN_REFRESH_MARGIN_MS")]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub graph_token_refresh_margin_ms: Option<u64>,
    /// Longest HTTP request to Microsoft in milliseconds [default: 30000]
    #[arg(long, env = "RETRACT_GRAPH_REQUEST_TIMEOUT_MS")]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub graph_request_timeout_ms: Option<u64>,
    /// Attempts per Graph request before its last error stands [default: 6]
    #[arg(long, env = "RETRACT_GRAPH_MAX_ATTEMPTS")]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub graph_max_attempts: Option<u32>,
    /// First backoff after a Graph 5xx, in milliseconds; doubles [default: 500]
    #[arg(long, env = "RETRACT_GRAPH_BACKOFF_BASE_MS")]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub graph_backoff_base_ms: Option<u64>,
    /// Longest backoff between Graph attempts, in milliseconds [default: 30000]
    #[arg(long, env = "RETRACT_GRAPH_BACKOFF_MAX_MS")]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub graph_backoff_max_ms: Option<u64>,
    /// Public URL of /consent/callback registered with the app [default: this server's address]
    #[arg(long, env = "RETRACT_CONSENT_REDIRECT_URI")]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub consent_redirect_uri: Option<String>,
    /// Milliseconds a consent URL stays usable [default: 600000]
    #[arg(long, env = "RETRACT_CONSENT_TTL_MS")]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub consent_ttl_ms: Option<u64>,
    /// Consent callbacks per second from one client address [default: 1]
    #[arg(long, env = "RETRACT_CONSENT_CALLBACK_RATE_PER_SECOND")]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub consent_callback_rate_per_second: Option<f64>,
    /// Consent callbacks at once from one client address [default: 20]
    #[arg(long, env = "RETRACT_CONSENT_CALLBACK_BURST")]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub consent_callback_burst: Option<f64>,
    /// Milliseconds between re-verifications of every linked tenant; 0 = off [default: 0]
    #[arg(long, env = "RETRACT_DOMAIN_REVERIFY_INTERVAL_MS")]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub domain_reverify_interval_ms: Option<u64>,
    /// Milliseconds an idle retract worker waits before looking for jobs again [default: 500]
    #[arg(long, env = "RETRACT_ENGINE_POLL_INTERVAL_MS")]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub engine_poll_interval_ms: Option<u64>,
    /// Milliseconds a claimed retract job stays a worker's without renewal [default: 30000]
    #[arg(long, env = "RETRACT_JOB_LEASE_MS")]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub job_lease_ms: Option<u64>,
    /// Mailboxes of one retract job processed at once [default: 64]
    #[arg(long, env = "RETRACT_MAILBOX_CONCURRENCY")]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub mailbox_concurrency: Option<usize>,
    /// Milliseconds without events before a Heartbeat is streamed [default: 15000]
    #[arg(long, env = "RETRACT_WATCH_HEARTBEAT_MS")]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub watch_heartbeat_ms: Option<u64>,
    /// Milliseconds an administrator-mailbox check is remembered [default: 300000]
    #[arg(long, env = "RETRACT_ADMIN_MAILBOX_CACHE_MS")]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub admin_mailbox_cache_ms: Option<u64>,
    /// Days deliveries are kept; 0 keeps them forever [default: 90]
    #[arg(long, env = "RETRACT_DELIVERY_RETENTION_DAYS")]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub delivery_retention_days: Option<u32>,
    /// Days finished retract jobs and their events are kept; 0 keeps them forever [default: 90]
    #[arg(long, env = "RETRACT_JOB_RETENTION_DAYS")]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub job_retention_days: Option<u32>,
    /// Milliseconds between retention sweeps [default: 3600000]
    #[arg(long, env = "RETRACT_RETENTION_SWEEP_INTERVAL_MS")]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub retention_sweep_interval_ms: Option<u64>,
}

/// A configuration that cannot be used.
#[derive(Debug, thiserror::Error)]
#[error("invalid configuration: {0}")]
pub struct ConfigError(String);

impl Settings {
    /// Resolves the settings from the process's arguments and environment.
    pub fn load() -> Result<Self, ConfigError> {
        Self::from_cli(&Cli::parse())
    }

    /// Resolves the settings from parsed flags (and the TOML file they name).
    pub fn from_cli(cli: &Cli) -> Result<Self, ConfigError> {
        let mut figment = Figment::new();
        if let Some(path) = &cli.config {
            figment = figment.merge(Toml::file_exact(path));
        }
        figment
            .merge(Serialized::defaults(cli))
            .extract()
            .map_err(|e| ConfigError(e.to_string()))
    }

    /// How to reach the database.
    pub fn database(&self) -> DatabaseOptions {
        DatabaseOptions {
            url: self.database_url.clone(),
            max_connections: self.database_max_connections,
            acquire_timeout: Duration::from_millis(self.database_acquire_timeout_ms),
            sqlite_busy_timeout: Duration::from_millis(self.sqlite_busy_timeout_ms),
        }
    }

    /// What a caller token must say.
    pub fn token_rules(&self) -> TokenRules {
        TokenRules {
            issuer: self.jwt_issuer.clone(),
            audience: self.jwt_audience.clone(),
            leeway: Duration::from_secs(self.jwt_leeway_s),
        }
    }

    /// Whether no key source at all is configured.
    fn no_keys_configured(&self) -> bool {
        self.jwt_hs256_secret.is_none()
            && self.jwt_public_key_files.is_empty()
            && self.jwt_jwks_file.is_none()
            && self.jwt_jwks_url.is_none()
    }

    /// Where caller-token keys come from. With nothing configured: the public development key
    /// in development mode (or in production with `allow_insecure_production`), else none.
    pub fn key_sources(&self) -> KeySources {
        let hs256_secret = match (&self.jwt_hs256_secret, self.mode) {
            (Some(secret), _) => Some(secret.clone()),
            (None, mode)
                if self.no_keys_configured()
                    && (mode == Mode::Development || self.allow_insecure_production) =>
            {
                Some(SecretString::from(DEVELOPMENT_JWT_SECRET))
            }
            (None, _) => None,
        };
        KeySources {
            hs256_secret,
            pem_files: self.jwt_public_key_files.clone(),
            jwks_file: self.jwt_jwks_file.clone(),
            jwks_url: self.jwt_jwks_url.clone(),
        }
    }

    /// The Microsoft endpoints and app registration, when a client id is configured.
    pub fn graph(&self) -> Result<Option<GraphSettings>, ConfigError> {
        if self.graph_client_id.is_empty() {
            return Ok(None);
        }
        let secret = match (&self.graph_client_secret_file, &self.graph_client_secret) {
            (Some(path), _) => SecretString::from(
                std::fs::read_to_string(path)
                    .map_err(|e| {
                        ConfigError(format!("graph_client_secret_file {}: {e}", path.display()))
                    })?
                    .trim()
                    .to_owned(),
            ),
            (None, Some(secret)) => secret.clone(),
            (None, None) => {
                return Err(ConfigError(
                    "graph_client_id is set but no graph_client_secret or graph_client_secret_file"
                        .to_owned(),
                ));
            }
        };
        Ok(Some(GraphSettings {
            graph_base_url: self.graph_base_url.clone(),
            login_base_url: self.login_base_url.clone(),
            client_id: self.graph_client_id.clone(),
            client_secret: secret,
            refresh_margin: Duration::from_millis(self.graph_token_refresh_margin_ms),
            request_timeout: Duration::from_millis(self.graph_request_timeout_ms.max(1)),
            retry: RetryPolicy {
                max_attempts: self.graph_max_attempts.max(1),
                base_backoff: Duration::from_millis(self.graph_backoff_base_ms),
                max_backoff: Duration::from_millis(self.graph_backoff_max_ms),
            },
        }))
    }

    /// The consent callback's own rate limit (per client address).
    pub fn consent_callback_rate_limit(&self) -> RateLimit {
        RateLimit {
            per_second: self.consent_callback_rate_per_second,
            burst: self.consent_callback_burst,
        }
    }

    /// The per-caller rate limit.
    pub fn rate_limit(&self) -> RateLimit {
        RateLimit {
            per_second: self.rate_limit_per_second,
            burst: self.rate_limit_burst,
        }
    }

    /// Refuses settings that cannot work or are unsafe for the mode: production without a
    /// public key, or with an HS256 secret (the development key included), unless
    /// `allow_insecure_production` says so; TLS halves without the other half.
    pub fn check(&self) -> Result<(), ConfigError> {
        if self.tls_cert_file.is_some() != self.tls_key_file.is_some() {
            return Err(ConfigError(
                "tls_cert_file and tls_key_file go together".to_owned(),
            ));
        }
        if self.tls_client_ca_file.is_some() && self.tls_cert_file.is_none() {
            return Err(ConfigError(
                "tls_client_ca_file (mTLS) needs tls_cert_file and tls_key_file".to_owned(),
            ));
        }
        let rates = [
            self.rate_limit_per_second,
            self.rate_limit_burst,
            self.consent_callback_rate_per_second,
            self.consent_callback_burst,
        ];
        if !rates.iter().all(|r| r.is_finite() && *r >= 0.0) {
            return Err(ConfigError(
                "rate limits must be finite and not negative".to_owned(),
            ));
        }
        if self.mode == Mode::Production {
            let mut problems = Vec::new();
            if self.jwt_hs256_secret.is_some() {
                problems.push("an HS256 shared secret is configured (development only)");
            }
            if self.jwt_public_key_files.is_empty()
                && self.jwt_jwks_file.is_none()
                && self.jwt_jwks_url.is_none()
            {
                problems.push("no public key is configured (jwt_public_key_files, jwt_jwks_file or jwt_jwks_url)");
            }
            if self
                .jwt_jwks_url
                .as_deref()
                .is_some_and(|u| !u.starts_with("https://"))
            {
                problems.push("jwt_jwks_url is not https (anyone on the path could inject keys)");
            }
            if !problems.is_empty() {
                if !self.allow_insecure_production {
                    return Err(ConfigError(format!(
                        "refusing to start in production mode: {}; fix it, or pass --allow-insecure-production",
                        problems.join("; ")
                    )));
                }
                for problem in problems {
                    tracing::error!(
                        "INSECURE PRODUCTION START (--allow-insecure-production): {problem}"
                    );
                }
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use std::io::Write as _;

    use secrecy::ExposeSecret as _;

    use super::*;

    #[test]
    fn defaults_serve_sqlite_on_localhost() {
        let s = Settings::from_cli(&Cli::default()).unwrap();
        assert_eq!(s.listen_addr, SocketAddr::from(([127, 0, 0, 1], 50051)));
        assert_eq!(s.database_url, "sqlite://retract.db?mode=rwc");
        assert!(s.migrate_on_start);
        assert_eq!(s.mode, Mode::Development);
        let keys = s.key_sources();
        assert_eq!(
            keys.hs256_secret.unwrap().expose_secret(),
            DEVELOPMENT_JWT_SECRET
        );
        assert!(s.check().is_ok());
    }

    #[test]
    fn production_refuses_the_development_key_and_hs256_unless_told_otherwise() {
        let prod = |args: &[&str]| {
            let mut argv = vec!["retract-server", "--mode", "production"];
            argv.extend_from_slice(args);
            Settings::from_cli(&Cli::try_parse_from(argv).unwrap()).unwrap()
        };
        let bare = prod(&[]);
        assert!(
            bare.key_sources().hs256_secret.is_none(),
            "no development key in production"
        );
        let err = bare.check().unwrap_err().to_string();
        assert!(err.contains("no public key"), "{err}");
        let err = prod(&["--jwt-hs256-secret", DEVELOPMENT_JWT_SECRET])
            .check()
            .unwrap_err()
            .to_string();
        assert!(err.contains("HS256"), "{err}");
        assert!(
            prod(&[
                "--jwt-hs256-secret",
                "x",
                "--allow-insecure-production",
                "true"
            ])
            .check()
            .is_ok()
        );
        assert!(
            prod(&["--jwt-jwks-url", "https://issuer.example/jwks"])
                .check()
                .is_ok()
        );
    }

    #[test]
    fn tls_settings_come_in_pairs() {
        let with = |args: &[&str]| {
            let mut argv = vec!["retract-server"];
            argv.extend_from_slice(args);
            Settings::from_cli(&Cli::try_parse_from(argv).unwrap())
                .unwrap()
                .check()
        };
        assert!(with(&["--tls-cert-file", "c.pem"]).is_err());
        assert!(with(&["--tls-client-ca-file", "ca.pem"]).is_err());
        assert!(
            with(&[
                "--tls-cert-file",
                "c.pem",
                "--tls-key-file",
                "k.pem",
                "--tls-client-ca-file",
                "ca.pem"
            ])
            .is_ok()
        );
    }

    #[test]
    fn flags_override_the_file_which_overrides_defaults() {
        let mut file = tempfile_in_target("layering.toml");
        writeln!(
            file.1,
            "listen_addr = \"127.0.0.1:6000\"\nlog_filter = \"debug\"\ncors_allowed_origins = [\"https://portal.example\"]"
        )
        .unwrap();
        let cli = Cli::try_parse_from([
            "retract-server",
            "--config",
            file.0.to_str().unwrap(),
            "--log-filter",
            "warn",
        ])
        .unwrap();
        let s = Settings::from_cli(&cli).unwrap();
        assert_eq!(s.listen_addr.port(), 6000, "file beats default");
        assert_eq!(s.log_filter, "warn", "flag beats file");
        assert_eq!(s.cors_allowed_origins, ["https://portal.example"]);
        assert_eq!(
            s.request_timeout_ms, 30_000,
            "untouched settings keep their default"
        );
    }

    #[test]
    fn unknown_keys_in_the_file_are_refused() {
        let mut file = tempfile_in_target("unknown.toml");
        writeln!(file.1, "listen_adress = \"127.0.0.1:6000\"").unwrap();
        let cli =
            Cli::try_parse_from(["retract-server", "--config", file.0.to_str().unwrap()]).unwrap();
        let err = Settings::from_cli(&cli).unwrap_err().to_string();
        assert!(err.contains("listen_adress"), "{err}");
    }

    #[test]
    fn secrets_do_not_appear_in_debug_output() {
        let s = Settings {
            jwt_hs256_secret: Some(SecretString::from("hunter2-secret")),
            ..Settings::default()
        };
        assert!(!format!("{s:?}").contains("hunter2-secret"));
    }

    fn tempfile_in_target(name: &str) -> (PathBuf, std::fs::File) {
        let dir = std::env::temp_dir().join(format!("retract-config-test-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join(name);
        let file = std::fs::File::create(&path).unwrap();
        (path, file)
    }
}
