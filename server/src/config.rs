//! Settings: one typed struct, loaded once from defaults → an optional TOML file →
//! `RETRACT_*` environment variables → command-line flags (later sources win).
//!
//! Every setting is declared once, in the [`settings!`] table below: its documentation (which
//! is also its `--help`), its type, its default, its flag type and its lower bound. From that
//! one line come the [`Settings`] field, its default, the `--name` flag and the `RETRACT_NAME`
//! variable (both listed by `retract-server --help`, with the default), and the check that
//! refuses an out-of-range value at start. The same names are the keys of the TOML file.

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
    engine::{EngineSettings, WatchSettings},
    graph::{AppCredential, CredentialSource, GraphSettings, RetryPolicy},
    store::DatabaseOptions,
};

/// The development signing key of caller tokens. Anyone can mint tokens with it: it is for a
/// laptop and for tests only, used when no key is configured in development mode.
pub const DEVELOPMENT_JWT_SECRET: &str = retract_proto::development::JWT_SECRET;

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

/// Declares every setting once (see the module docs). Each entry:
/// `/// docs` `name: Type = default => FlagType [extra clap args], at_least MIN;`
macro_rules! settings {
    ($(
        $(#[doc = $doc:literal])+
        $name:ident: $ty:ty = $default:expr => $flag:ty $([$($arg:tt)*])? $(, at_least $min:expr)?;
    )*) => {
        /// Every setting of the server, resolved.
        #[derive(Debug, Clone, Deserialize)]
        #[serde(default, deny_unknown_fields)]
        pub struct Settings {
            $( $(#[doc = $doc])+ pub $name: $ty, )*
        }

        impl Default for Settings {
            fn default() -> Self {
                Self { $( $name: $default, )* }
            }
        }

        /// Command-line flags and their environment variables. Unset flags leave the value of
        /// the earlier sources in place.
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
            $(
                #[arg(
                    long,
                    env = env_name(stringify!($name)),
                    help = help_text(&[$($doc),+], &Settings::default().$name)
                    $(, $($arg)*)?
                )]
                #[serde(skip_serializing_if = "Unset::is_unset")]
                #[allow(missing_docs)]
                pub $name: $flag,
            )*
        }

        impl Settings {
            /// Refuses a setting below its lower bound.
            fn check_bounds(&self) -> Result<(), ConfigError> {
                $($(
                    if self.$name < $min {
                        return Err(ConfigError(format!(
                            "{} must be at least {}, not {}",
                            stringify!($name),
                            $min,
                            self.$name
                        )));
                    }
                )?)*
                Ok(())
            }
        }
    };
}

/// `RETRACT_` and the setting's name in capitals.
fn env_name(setting: &str) -> String {
    format!("RETRACT_{}", setting.to_ascii_uppercase())
}

/// A setting's documentation as one `--help` line, with its default when it has one.
fn help_text(doc: &[&str], default: &dyn ShowDefault) -> String {
    let text = doc.iter().map(|l| l.trim()).collect::<Vec<_>>().join(" ");
    match default.shown() {
        Some(value) => format!("{text} [default: {value}]"),
        None => text,
    }
}

/// How a default reads in `--help`; `None` for "nothing" (empty, unset).
trait ShowDefault {
    fn shown(&self) -> Option<String>;
}

macro_rules! shown_by_display {
    ($($t:ty),*) => {$(
        impl ShowDefault for $t {
            fn shown(&self) -> Option<String> {
                Some(self.to_string())
            }
        }
    )*};
}

shown_by_display!(SocketAddr, u32, u64, usize, f64, bool);

impl ShowDefault for String {
    fn shown(&self) -> Option<String> {
        Some(self.clone()).filter(|s| !s.is_empty())
    }
}

impl<T> ShowDefault for Option<T> {
    fn shown(&self) -> Option<String> {
        None
    }
}

impl<T> ShowDefault for Vec<T> {
    fn shown(&self) -> Option<String> {
        None
    }
}

impl ShowDefault for LogFormat {
    fn shown(&self) -> Option<String> {
        self.to_possible_value().map(|v| v.get_name().to_owned())
    }
}

impl ShowDefault for Mode {
    fn shown(&self) -> Option<String> {
        self.to_possible_value().map(|v| v.get_name().to_owned())
    }
}

/// Whether a flag was left unset (so the earlier sources' value stands).
trait Unset {
    fn is_unset(&self) -> bool;
}

impl<T> Unset for Option<T> {
    fn is_unset(&self) -> bool {
        self.is_none()
    }
}

impl<T> Unset for Vec<T> {
    fn is_unset(&self) -> bool {
        self.is_empty()
    }
}

settings! {
    /// Address of the one port serving gRPC, gRPC-Web, health and reflection. In development
    /// mode with no caller-token key configured, only a loopback address is accepted (anyone
    /// can mint tokens with the public development key) unless
    /// `allow_development_key_on_network`.
    listen_addr: SocketAddr = SocketAddr::from(([127, 0, 0, 1], 50051)) => Option<SocketAddr>;
    /// Database URL: `sqlite://retract.db?mode=rwc` (embedded) or `postgres://…`.
    database_url: String = "sqlite://retract.db?mode=rwc".to_owned() => Option<String>;
    /// PostgreSQL pool size (SQLite writes through one connection and reads through 4 more,
    /// or through that one for an in-memory database).
    database_max_connections: u32 = 10 => Option<u32>, at_least 1;
    /// Milliseconds a query waits for a connection before the call answers UNAVAILABLE.
    database_acquire_timeout_ms: u64 = 5_000 => Option<u64>, at_least 1;
    /// Milliseconds SQLite waits on a lock held by another process.
    sqlite_busy_timeout_ms: u64 = 5_000 => Option<u64>;
    /// Apply pending migrations on start; turn off where operators run `retract-migrate`.
    migrate_on_start: bool = true => Option<bool>;
    /// Log format: `human` or `json` (one object a line, for log collectors).
    log_format: LogFormat = LogFormat::Human => Option<LogFormat>;
    /// Log filter in `tracing` syntax, e.g. `info` or `retract_server=debug,info`.
    log_filter: String = "info".to_owned() => Option<String>;
    /// Address of the Prometheus metrics endpoint (`GET /metrics`, a port of its own), e.g.
    /// `127.0.0.1:9464`; unset serves no metrics. Labels carry tenant ids, never a mailbox.
    metrics_listen: Option<SocketAddr> = None => Option<SocketAddr>;
    /// OTLP/gRPC collector that traces are exported to, e.g. `http://127.0.0.1:4317`; unset
    /// exports none. A span per RPC, per job run and per Graph request; a caller's W3C
    /// `traceparent` header makes the RPC part of the caller's trace.
    otlp_endpoint: Option<String> = None => Option<String>;
    /// Longest unary call in milliseconds (a caller's shorter `grpc-timeout` wins).
    request_timeout_ms: u64 = 30_000 => Option<u64>, at_least 1;
    /// Most calls served at once across all connections; more wait (health checks never do).
    concurrency_limit: usize = 1_024 => Option<usize>, at_least 1;
    /// Most unary calls one caller (token subject) may have in progress at once, besides its
    /// rate limit; more are refused with RESOURCE_EXHAUSTED. 0 turns the limit off.
    caller_calls_in_progress: usize = 32 => Option<usize>;
    /// Server streams (Retract, WatchRetract, RestoreRetractJob) one caller may have open at
    /// once, apart from unary calls; 0 for no limit.
    caller_streams: usize = 100 => Option<usize>;
    /// Server streams this replica keeps open at once, all callers together; 0 for no limit.
    max_streams: usize = 10_000 => Option<usize>;
    /// Milliseconds shutdown waits for open calls and streams before closing them.
    shutdown_grace_ms: u64 = 10_000 => Option<u64>;
    /// Milliseconds between database health probes.
    health_probe_interval_ms: u64 = 5_000 => Option<u64>, at_least 10;
    /// Milliseconds one database probe may take before the service reports NOT_SERVING.
    health_probe_timeout_ms: u64 = 2_000 => Option<u64>, at_least 1;
    /// Browser origins allowed over gRPC-Web (CORS); repeat the flag, or comma-separate in
    /// the variable. Empty allows none.
    cors_allowed_origins: Vec<String> = Vec::new() => Vec<String> [value_delimiter = ','];
    /// Required `iss` of caller tokens.
    jwt_issuer: String = retract_proto::development::ISSUER.to_owned() => Option<String>;
    /// Required `aud` of caller tokens.
    jwt_audience: String = retract_proto::development::AUDIENCE.to_owned() => Option<String>;
    /// HS256 secret of caller tokens, development only. In development mode with no key
    /// configured at all, the public development key is used.
    jwt_hs256_secret: Option<SecretString> = None => Option<String> [hide_env_values = true];
    /// PEM public keys of token issuers (RSA keys verify RS256, EC P-256 keys ES256); repeat
    /// the flag, or comma-separate in the variable.
    jwt_public_key_files: Vec<PathBuf> = Vec::new() => Vec<PathBuf> [value_delimiter = ',', visible_alias = "jwt-public-key-file"];
    /// A JWKS file with the token issuers' public keys.
    jwt_jwks_file: Option<PathBuf> = None => Option<PathBuf>;
    /// A JWKS URL with the token issuers' public keys, fetched at start and refreshed.
    jwt_jwks_url: Option<String> = None => Option<String>;
    /// Milliseconds between JWKS URL refreshes.
    jwt_jwks_refresh_ms: u64 = 300_000 => Option<u64>, at_least 100;
    /// Clock skew tolerated on `exp`/`nbf`, in seconds.
    jwt_leeway_s: u64 = 30 => Option<u64>;
    /// `development` or `production`; production refuses HS256 and the development key.
    /// Development with no key configured uses the public development key, on a loopback
    /// `listen_addr` only.
    mode: Mode = Mode::Development => Option<Mode>;
    /// Start in production mode despite insecure settings (HS256 or the development key);
    /// logged loudly at every start.
    allow_insecure_production: bool = false => Option<bool>;
    /// Accept the public development key on a non-loopback `listen_addr` (anyone who reaches
    /// the port can then mint a token for every tenant); logged at ERROR at every start.
    allow_development_key_on_network: bool = false => Option<bool>;
    /// Calls per second one caller may sustain (0 turns limiting off).
    rate_limit_per_second: f64 = 50.0 => Option<f64>;
    /// Calls one quiet caller may make at once.
    rate_limit_burst: f64 = 200.0 => Option<f64>;
    /// PEM certificate chain: serve TLS with it.
    tls_cert_file: Option<PathBuf> = None => Option<PathBuf>;
    /// PEM private key of `tls_cert_file`.
    tls_key_file: Option<PathBuf> = None => Option<PathBuf>;
    /// PEM CA certificates: require client certificates signed by them (mTLS).
    tls_client_ca_file: Option<PathBuf> = None => Option<PathBuf>;
    /// Microsoft Graph's base URL (without `/v1.0`).
    graph_base_url: String = "https://graph.microsoft.com".to_owned() => Option<String>;
    /// The Microsoft identity platform's base URL (without the tenant).
    login_base_url: String = "https://login.microsoftonline.com".to_owned() => Option<String>;
    /// The app registration's client id; empty leaves grants and retracts unavailable.
    graph_client_id: String = String::new() => Option<String>;
    /// The app registration's client secret (prefer the file or the variable to the flag).
    graph_client_secret: Option<SecretString> = None => Option<String> [hide_env_values = true];
    /// A file holding the client secret (wins over `graph_client_secret`); read again when
    /// it changes, so a rotated secret needs no restart.
    graph_client_secret_file: Option<PathBuf> = None => Option<PathBuf>;
    /// A PEM file with the app registration's certificate (Microsoft's recommended
    /// credential): token requests then carry a `client_assertion` signed RS256 with its
    /// private key instead of a secret. Read again when it changes. Wins over the secret.
    graph_client_certificate_file: Option<PathBuf> = None => Option<PathBuf>;
    /// A PEM file with the certificate's RSA private key (PKCS#8 or PKCS#1); default: the
    /// private key inside `graph_client_certificate_file`. Read again when it changes.
    graph_client_certificate_key_file: Option<PathBuf> = None => Option<PathBuf>;
    /// App tokens are renewed this many milliseconds before they expire.
    graph_token_refresh_margin_ms: u64 = 300_000 => Option<u64>;
    /// Longest single HTTP request to Microsoft, in milliseconds.
    graph_request_timeout_ms: u64 = 30_000 => Option<u64>, at_least 1;
    /// Attempts per Graph request (the first included) before its last error stands.
    graph_max_attempts: u32 = 6 => Option<u32>, at_least 1;
    /// First backoff after a Graph 5xx or broken connection, in milliseconds (doubles).
    graph_backoff_base_ms: u64 = 500 => Option<u64>;
    /// Longest backoff between Graph attempts, in milliseconds.
    graph_backoff_max_ms: u64 = 30_000 => Option<u64>;
    /// Longest `Retry-After` from Microsoft that a request waits for in place, in
    /// milliseconds. A longer one fails the request; the engine then parks the mailbox (sets
    /// it aside without holding a slot, the rest of the job going on) and visits it again
    /// once the wait is over, within `--parked-deadline-ms`.
    graph_max_retry_after_ms: u64 = 120_000 => Option<u64>;
    /// Graph requests this replica sends per second at most, all tenants together (a
    /// `$batch` counts each request in it). Graph allows an app 130,000 per 10 seconds
    /// across all tenants: with N replicas, about 12,000 / N each. 0 turns pacing off.
    graph_requests_per_second: f64 = 12_000.0 => Option<f64>;
    /// The public URL of `/consent/callback` that Microsoft redirects to; default: this
    /// server's own address (fine on a laptop, set it behind a proxy).
    consent_redirect_uri: Option<String> = None => Option<String>;
    /// How long a consent URL stays usable, in milliseconds.
    consent_ttl_ms: u64 = 600_000 => Option<u64>;
    /// A consent attempt still completing this many milliseconds after its URL expired was
    /// interrupted (crash, redeploy): the sweep fails it and its PENDING domains.
    consent_completion_timeout_ms: u64 = 900_000 => Option<u64>;
    /// Consent callbacks one client address may make per second.
    consent_callback_rate_per_second: f64 = 1.0 => Option<f64>;
    /// Consent callbacks one client address may make at once.
    consent_callback_burst: f64 = 20.0 => Option<f64>;
    /// Re-verify every linked tenant's domains this often, in milliseconds; 0 turns it off.
    domain_reverify_interval_ms: u64 = 0 => Option<u64>;
    /// How often an idle retract worker looks for jobs other replicas created, in ms.
    engine_poll_interval_ms: u64 = 500 => Option<u64>, at_least 10;
    /// How long a claimed retract job stays a worker's without renewal, in ms.
    job_lease_ms: u64 = 30_000 => Option<u64>, at_least 300;
    /// Mailboxes of one retract job worked on at once (each mailbox itself gets at most
    /// Graph's 4 concurrent requests).
    mailbox_concurrency: usize = 512 => Option<usize>, at_least 1;
    /// Retract jobs one replica runs at once (a small job runs beside a huge one; a tenant
    /// this replica runs nothing for goes first).
    jobs_in_flight: usize = 4 => Option<usize>, at_least 1;
    /// How long a run of a job waits for a mailbox Graph throttles with a long
    /// `Retry-After` (parked), from its first park, in ms: a mailbox whose wait would end later ends FAILED with Graph's answer
    /// (the job COMPLETED_WITH_ERRORS).
    parked_deadline_ms: u64 = 3_600_000 => Option<u64>;
    /// Runs a job may take: a job claimed this many times whose runs kept stopping short
    /// (the database failing under it, a replica dying with it) ends FAILED with the last
    /// run's reason instead of being claimed again on every lease expiry. A run given back
    /// on shutdown does not count.
    job_run_budget: u32 = 10 => Option<u32>, at_least 1;
    /// A Heartbeat is streamed after this many ms without events.
    watch_heartbeat_ms: u64 = 15_000 => Option<u64>, at_least 10;
    /// How long the answer "is this administrator a mailbox of the tenant?" is kept, in ms.
    admin_mailbox_cache_ms: u64 = 300_000 => Option<u64>;
    /// Deliveries older than this many days are removed; 0 keeps them forever.
    delivery_retention_days: u32 = 90 => Option<u32>;
    /// Finished retract jobs (and their events) older than this many days are removed; 0
    /// keeps them forever. The audit trail keeps its own record.
    job_retention_days: u32 = 90 => Option<u32>;
    /// A deleted (offboarded) tenant's audit trail is kept this many days after the deletion,
    /// then removed; 0 keeps it forever. Each deletion records its own purge time, so a change
    /// applies to tenants deleted afterwards. The tenant id is never reused either way.
    deleted_tenant_audit_retention_days: u32 = 365 => Option<u32>;
    /// ExportAuditEvents sends an event once it is this many milliseconds old, so that a
    /// transaction committing late (with a lower id) is never passed over by a cursor.
    audit_export_settle_ms: u64 = 3_000 => Option<u64>;
    /// How often retention and the abandoned-consent sweep run, in milliseconds.
    retention_sweep_interval_ms: u64 = 3_600_000 => Option<u64>, at_least 10;
}

/// A configuration that cannot be used.
#[derive(Debug, thiserror::Error)]
#[error("invalid configuration: {0}")]
pub struct ConfigError(String);

fn millis(ms: u64) -> Duration {
    Duration::from_millis(ms)
}

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
            acquire_timeout: millis(self.database_acquire_timeout_ms),
            sqlite_busy_timeout: millis(self.sqlite_busy_timeout_ms),
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

    /// How the retract engine runs.
    pub fn engine(&self) -> EngineSettings {
        EngineSettings {
            poll_interval: millis(self.engine_poll_interval_ms),
            lease: millis(self.job_lease_ms),
            mailboxes_in_flight: self.mailbox_concurrency,
            jobs_in_flight: self.jobs_in_flight,
            parked_deadline: millis(self.parked_deadline_ms),
            run_budget: self.job_run_budget,
            admin_mailbox_ttl: millis(self.admin_mailbox_cache_ms),
        }
    }

    /// How job watches behave.
    pub fn watch(&self) -> WatchSettings {
        WatchSettings {
            heartbeat: millis(self.watch_heartbeat_ms),
            poll: millis(self.engine_poll_interval_ms),
        }
    }

    /// Named durations of the server's own timers.
    pub fn request_timeout(&self) -> Duration {
        millis(self.request_timeout_ms)
    }

    /// How long shutdown waits for open calls and streams.
    pub fn shutdown_grace(&self) -> Duration {
        millis(self.shutdown_grace_ms)
    }

    /// Database health probing: how often, and how long one probe may take.
    pub fn health_probe(&self) -> (Duration, Duration) {
        (
            millis(self.health_probe_interval_ms),
            millis(self.health_probe_timeout_ms),
        )
    }

    /// Between JWKS URL refreshes.
    pub fn jwks_refresh(&self) -> Duration {
        millis(self.jwt_jwks_refresh_ms)
    }

    /// Between periodic re-verifications; `None` when turned off.
    pub fn domain_reverify_interval(&self) -> Option<Duration> {
        (self.domain_reverify_interval_ms > 0).then(|| millis(self.domain_reverify_interval_ms))
    }

    /// Between retention sweeps.
    pub fn retention_sweep_interval(&self) -> Duration {
        millis(self.retention_sweep_interval_ms)
    }

    /// How old an audit event must be to be exported.
    pub fn audit_export_settle(&self) -> Duration {
        millis(self.audit_export_settle_ms)
    }

    /// How long a consent URL stays usable.
    pub fn consent_ttl(&self) -> Duration {
        millis(self.consent_ttl_ms)
    }

    /// What is kept how long; `None` keeps forever.
    pub fn retention(&self) -> crate::retention::Retention {
        let days = |d: u32| (d > 0).then(|| chrono::Duration::days(i64::from(d)));
        crate::retention::Retention {
            deliveries: days(self.delivery_retention_days),
            jobs: days(self.job_retention_days),
            deleted_tenant_audit: days(self.deleted_tenant_audit_retention_days),
            consent_completion: millis(self.consent_completion_timeout_ms),
        }
    }

    /// Whether caller tokens are verified with the public development key.
    pub fn uses_development_key(&self) -> bool {
        self.no_keys_configured()
            && (self.mode == Mode::Development || self.allow_insecure_production)
    }

    /// Refuses the public development key on an address other hosts can reach, unless the
    /// operator opted in (then logged at ERROR).
    fn check_development_key_exposure(&self) -> Result<(), ConfigError> {
        if !self.uses_development_key() || self.listen_addr.ip().is_loopback() {
            return Ok(());
        }
        if !self.allow_development_key_on_network {
            return Err(ConfigError(format!(
                "refusing to start: listen_addr {} is reachable from the network and caller \
                 tokens would be verified with the public development key (anyone could mint \
                 a token for every tenant); configure a key (production: jwt_public_key_files, \
                 jwt_jwks_file or jwt_jwks_url), listen on a loopback address, or pass \
                 --allow-development-key-on-network true",
                self.listen_addr
            )));
        }
        tracing::error!(
            listen_addr = %self.listen_addr,
            "INSECURE START (--allow-development-key-on-network): the public development key \
             is accepted on a network address; anyone who reaches it can act on every tenant"
        );
        Ok(())
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
            (None, _) if self.uses_development_key() => {
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
        let source = match (
            &self.graph_client_certificate_file,
            &self.graph_client_secret_file,
            &self.graph_client_secret,
        ) {
            (Some(certificate), _, _) => CredentialSource::Certificate {
                certificate: certificate.clone(),
                key: self
                    .graph_client_certificate_key_file
                    .clone()
                    .unwrap_or_else(|| certificate.clone()),
            },
            (None, Some(path), _) => CredentialSource::SecretFile(path.clone()),
            (None, None, Some(secret)) => CredentialSource::Secret(secret.clone()),
            (None, None, None) => {
                return Err(ConfigError(
                    "graph_client_id is set but no graph_client_certificate_file, graph_client_secret_file or graph_client_secret"
                        .to_owned(),
                ));
            }
        };
        let credential = AppCredential::load(source, &self.graph_client_id)
            .map_err(|e| ConfigError(format!("Graph app credential: {e}")))?;
        Ok(Some(GraphSettings {
            graph_base_url: self.graph_base_url.clone(),
            login_base_url: self.login_base_url.clone(),
            credential: std::sync::Arc::new(credential),
            refresh_margin: millis(self.graph_token_refresh_margin_ms),
            request_timeout: millis(self.graph_request_timeout_ms),
            retry: RetryPolicy {
                max_attempts: self.graph_max_attempts,
                base_backoff: millis(self.graph_backoff_base_ms),
                max_backoff: millis(self.graph_backoff_max_ms),
                max_retry_after: millis(self.graph_max_retry_after_ms),
            },
            requests_per_second: self.graph_requests_per_second,
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
        self.check_bounds()?;
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
        self.check_development_key_exposure()?;
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
    fn the_development_key_is_refused_on_a_network_address_unless_opted_in() {
        let with = |args: &[&str]| settings_from(args).check();
        for addr in ["0.0.0.0:50051", "[::]:50051", "192.0.2.7:50051"] {
            let err = with(&["--listen-addr", addr]).unwrap_err().to_string();
            assert!(err.contains("public development key"), "{addr}: {err}");
        }
        assert!(with(&["--listen-addr", "127.0.0.1:50051"]).is_ok());
        assert!(with(&["--listen-addr", "[::1]:50051"]).is_ok());
        assert!(
            with(&[
                "--listen-addr",
                "0.0.0.0:50051",
                "--allow-development-key-on-network",
                "true"
            ])
            .is_ok(),
            "the explicit opt-in starts (logged at ERROR)"
        );
        assert!(
            with(&[
                "--listen-addr",
                "0.0.0.0:50051",
                "--jwt-hs256-secret",
                "own"
            ])
            .is_ok(),
            "a key of the operator's own is not the public one"
        );
        assert!(
            with(&[
                "--listen-addr",
                "0.0.0.0:50051",
                "--mode",
                "production",
                "--allow-insecure-production",
                "true"
            ])
            .is_err(),
            "the production escape hatch does not expose the development key either"
        );
    }

    #[test]
    fn help_says_the_development_key_is_loopback_only() {
        use clap::CommandFactory as _;
        let help = Cli::command().render_long_help().to_string();
        assert!(
            help.contains("--allow-development-key-on-network"),
            "{help}"
        );
        assert!(help.contains("loopback"), "{help}");
    }

    #[test]
    fn tls_settings_come_in_pairs() {
        let with = |args: &[&str]| settings_from(args).check();
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
    fn every_setting_is_a_flag_and_a_variable_and_help_shows_its_default() {
        use clap::CommandFactory as _;
        let help = Cli::command().render_long_help().to_string();
        for (flag, variable, default) in [
            (
                "--listen-addr",
                "RETRACT_LISTEN_ADDR",
                Some("127.0.0.1:50051"),
            ),
            ("--job-lease-ms", "RETRACT_JOB_LEASE_MS", Some("30000")),
            ("--mode", "RETRACT_MODE", Some("development")),
            ("--log-format", "RETRACT_LOG_FORMAT", Some("human")),
            ("--jwt-issuer", "RETRACT_JWT_ISSUER", Some("retract-dev")),
            (
                "--jwt-public-key-files",
                "RETRACT_JWT_PUBLIC_KEY_FILES",
                None,
            ),
            ("--graph-client-secret", "RETRACT_GRAPH_CLIENT_SECRET", None),
            (
                "--retention-sweep-interval-ms",
                "RETRACT_RETENTION_SWEEP_INTERVAL_MS",
                Some("3600000"),
            ),
        ] {
            let at = help
                .find(&format!("{flag} "))
                .unwrap_or_else(|| panic!("{flag} missing from --help"));
            let end = help[at + 1..]
                .find("\n      -")
                .map_or(help.len(), |e| at + 1 + e);
            let entry = &help[at..end];
            assert!(entry.contains(variable), "{flag}: {entry}");
            if let Some(default) = default {
                assert!(
                    entry.contains(&format!("[default: {default}]")),
                    "{flag}: {entry}"
                );
            }
        }
        // The singular spelling the flag had keeps working.
        let cli =
            Cli::try_parse_from(["retract-server", "--jwt-public-key-file", "a.pem"]).unwrap();
        assert_eq!(cli.jwt_public_key_files, [PathBuf::from("a.pem")]);
    }

    #[test]
    fn values_below_their_bound_are_refused_at_start_not_clamped() {
        let with = |args: &[&str]| settings_from(args).check();
        let err = with(&["--job-lease-ms", "299"]).unwrap_err().to_string();
        assert!(err.contains("job_lease_ms must be at least 300"), "{err}");
        assert!(with(&["--mailbox-concurrency", "0"]).is_err());
        assert!(with(&["--graph-max-attempts", "0"]).is_err());
        assert!(with(&["--job-lease-ms", "300", "--mailbox-concurrency", "1"]).is_ok());
    }

    #[test]
    fn secrets_do_not_appear_in_debug_output() {
        let s = Settings {
            jwt_hs256_secret: Some(SecretString::from("hunter2-secret")),
            ..Settings::default()
        };
        assert!(!format!("{s:?}").contains("hunter2-secret"));
    }

    /// The settings `retract-server ARGS` resolves to.
    fn settings_from(args: &[&str]) -> Settings {
        let mut argv = vec!["retract-server"];
        argv.extend_from_slice(args);
        Settings::from_cli(&Cli::try_parse_from(argv).unwrap()).unwrap()
    }

    fn tempfile_in_target(name: &str) -> (PathBuf, std::fs::File) {
        let dir = std::env::temp_dir().join(format!("retract-config-test-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join(name);
        let file = std::fs::File::create(&path).unwrap();
        (path, file)
    }
}
