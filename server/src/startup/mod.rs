//! Building and running the server: [`Application::build`] connects, migrates and binds (port 0
//! works, for tests); [`Application::run_until_stopped`] serves until the shutdown future
//! resolves, then drains within the grace period.

mod severable;

use std::{future::Future, net::SocketAddr, sync::Arc, time::Duration};

use futures::StreamExt as _;

use http::{HeaderName, HeaderValue};
use retract_proto::v1::{
    audit_service_server::AuditServiceServer, retract_service_server::RetractServiceServer,
    tenant_service_server::TenantServiceServer,
};
use tokio::net::TcpListener;
use tokio_stream::wrappers::TcpListenerStream;
use tokio_util::sync::CancellationToken;
use tonic::transport::Server;
use tonic_health::ServingStatus;
use tower_http::{
    classify::{GrpcCode, GrpcErrorsAsFailures, SharedClassifier},
    cors::{AllowOrigin, CorsLayer},
    trace::{DefaultOnFailure, DefaultOnResponse, TraceLayer},
};
use tracing::Level;

use crate::{
    api::{AdminMailboxes, AuditApi, RetractApi, TenantApi, WatchSettings},
    auth::{AuthLayer, JwtVerifier, KeyError, KeySet, RateLimiter},
    config::{ConfigError, Mode, Settings},
    consent::{CallbackService, Consent, ConsentSettings},
    engine::{Engine, EngineSettings, EventHub},
    graph::AppTokens,
    graph::GraphClient,
    health,
    store::{Store, StoreError},
};

/// Why the server could not start or stopped with an error.
#[derive(Debug, thiserror::Error)]
pub enum StartupError {
    /// The database could not be reached or migrated.
    #[error("database: {0}")]
    Database(#[from] StoreError),
    /// The listen address could not be bound.
    #[error("cannot listen on {addr}: {source}")]
    Bind {
        /// The address.
        addr: SocketAddr,
        /// Why.
        source: std::io::Error,
    },
    /// A setting is unusable.
    #[error("configuration: {0}")]
    Config(String),
    /// The settings are refused as a whole (e.g. insecure for production).
    #[error(transparent)]
    Settings(#[from] ConfigError),
    /// Caller-token keys could not be loaded.
    #[error("caller-token keys: {0}")]
    Keys(#[from] KeyError),
    /// A TLS file could not be read or used.
    #[error("TLS: {0}")]
    Tls(String),
    /// The gRPC server failed.
    #[error("server: {0}")]
    Serve(#[from] tonic::transport::Error),
}

/// A built, bound, not yet running server.
pub struct Application {
    settings: Settings,
    store: Store,
    listener: TcpListener,
    local_addr: SocketAddr,
    keys: KeySet,
    http: reqwest::Client,
    consent: Consent,
    graph: Option<GraphClient>,
}

impl Application {
    /// Connects to the database (creating an SQLite file if needed), migrates it unless told
    /// not to, and binds the listen address.
    pub async fn build(settings: Settings) -> Result<Self, StartupError> {
        settings.check()?;
        // sea-orm's rustls brings ring and reqwest's aws-lc-rs: name one provider for the process.
        let _already_installed = rustls::crypto::ring::default_provider().install_default();
        let http = reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .timeout(Duration::from_secs(10))
            .build()
            .map_err(|e| StartupError::Config(format!("HTTP client: {e}")))?;
        let keys = settings.key_sources().load(&http).await?;
        if settings.mode == Mode::Development && !keys.has_public_keys() {
            tracing::warn!(
                "development mode: caller tokens are verified with an HS256 secret; \
                 never expose this server to real callers"
            );
        }
        let store = Store::connect(&settings.database()).await?;
        if settings.migrate_on_start {
            store.migrate().await?;
        }
        let listener = TcpListener::bind(settings.listen_addr)
            .await
            .map_err(|source| StartupError::Bind {
                addr: settings.listen_addr,
                source,
            })?;
        let local_addr = listener.local_addr().map_err(|source| StartupError::Bind {
            addr: settings.listen_addr,
            source,
        })?;
        let (consent, graph) = consent_flow(&settings, &store, &http, local_addr)?;
        Ok(Self {
            settings,
            store,
            listener,
            local_addr,
            keys,
            http,
            consent,
            graph,
        })
    }

    /// The bound address (with the real port when 0 was asked for).
    pub fn local_addr(&self) -> SocketAddr {
        self.local_addr
    }

    /// Serves until `shutdown` resolves. Then health turns NOT_SERVING everywhere, streams are
    /// told to end, and open calls get `shutdown_grace_ms` to finish before they are closed.
    pub async fn run_until_stopped(
        self,
        shutdown: impl Future<Output = ()> + Send + 'static,
    ) -> Result<(), StartupError> {
        let Self {
            settings,
            store,
            listener,
            local_addr,
            keys,
            http,
            consent,
            graph,
        } = self;
        let (reporter, health_service) = tonic_health::server::health_reporter();
        health::set_all(&reporter, ServingStatus::NotServing).await;
        let probe_stop = CancellationToken::new();
        let probe = tokio::spawn(health::follow_database(
            store.clone(),
            reporter.clone(),
            Duration::from_millis(settings.health_probe_interval_ms),
            Duration::from_millis(settings.health_probe_timeout_ms),
            probe_stop.clone(),
        ));

        let reflection_v1 = reflection()
            .build_v1()
            .map_err(|e| StartupError::Config(format!("reflection: {e}")))?;
        let reflection_v1alpha = reflection()
            .build_v1alpha()
            .map_err(|e| StartupError::Config(format!("reflection: {e}")))?;

        let verifier = Arc::new(JwtVerifier::new(&settings.token_rules(), keys));
        let limiter = Arc::new(RateLimiter::new(settings.rate_limit()));
        tokio::spawn(settings.key_sources().refresh(
            http,
            verifier.clone(),
            Duration::from_millis(settings.jwt_jwks_refresh_ms.max(100)),
            probe_stop.clone(),
        ));
        let layers = tower::ServiceBuilder::new()
            .layer(trace_layer())
            .layer(tower::limit::GlobalConcurrencyLimitLayer::new(
                settings.concurrency_limit.max(1),
            ))
            .layer(cors_layer(&settings.cors_allowed_origins)?)
            .layer(
                AuthLayer::new(verifier, limiter)
                    .requiring_client_certificates(settings.tls_client_ca_file.is_some()),
            )
            .into_inner();

        let stopping = CancellationToken::new();
        if settings.domain_reverify_interval_ms > 0 {
            tokio::spawn(consent.clone().reverify_periodically(
                Duration::from_millis(settings.domain_reverify_interval_ms),
                probe_stop.clone(),
            ));
        }
        let days = |d: u32| (d > 0).then(|| chrono::Duration::days(i64::from(d)));
        let keep = crate::retention::Retention {
            deliveries: days(settings.delivery_retention_days),
            jobs: days(settings.job_retention_days),
        };
        tokio::spawn(crate::retention::sweep_periodically(
            store.clone(),
            keep,
            Duration::from_millis(settings.retention_sweep_interval_ms.max(10)),
            probe_stop.clone(),
        ));
        let hub = Arc::new(EventHub::default());
        let engine = Engine::new(
            store.clone(),
            graph.clone(),
            EngineSettings {
                poll_interval: Duration::from_millis(settings.engine_poll_interval_ms.max(10)),
                lease: Duration::from_millis(settings.job_lease_ms.max(300)),
                mailbox_concurrency: settings.mailbox_concurrency.max(1),
            },
            hub.clone(),
        );
        let engine_task = tokio::spawn(engine.clone().run(probe_stop.clone()));
        let retract_api = RetractApi::new(
            store.clone(),
            engine,
            graph,
            hub,
            Arc::new(AdminMailboxes::new(Duration::from_millis(
                settings.admin_mailbox_cache_ms,
            ))),
            WatchSettings {
                heartbeat: Duration::from_millis(settings.watch_heartbeat_ms.max(10)),
                poll: Duration::from_millis(settings.engine_poll_interval_ms.max(10)),
            },
            stopping.clone(),
        );
        let callback = CallbackService::new(
            consent.clone(),
            Arc::new(RateLimiter::new(settings.consent_callback_rate_limit())),
        );
        let mut server = Server::builder();
        if let Some(tls) = tls_config(&settings)? {
            server = server
                .tls_config(tls)
                .map_err(|e| StartupError::Tls(e.to_string()))?;
        }
        let router = server
            .accept_http1(true)
            .timeout(Duration::from_millis(settings.request_timeout_ms))
            .layer(layers)
            .add_service(web(health_service))
            .add_service(web(reflection_v1))
            .add_service(web(reflection_v1alpha))
            .add_service(web(TenantServiceServer::new(TenantApi::new(
                store.clone(),
                consent,
            ))))
            .add_service(web(RetractServiceServer::new(retract_api)))
            .add_service(web(AuditServiceServer::new(AuditApi::new(store.clone()))))
            // A browser page, not gRPC: outside gRPC-Web, which refuses plain HTTP/1.1.
            .add_service(callback);

        let on_signal = {
            let stopping = stopping.clone();
            let reporter = reporter.clone();
            async move {
                shutdown.await;
                tracing::info!("shutdown requested: draining");
                probe_stop.cancel();
                if let Err(err) = probe.await {
                    tracing::warn!(error = %err, "health probe task ended abnormally");
                }
                health::set_all(&reporter, ServingStatus::NotServing).await;
                stopping.cancel();
            }
        };
        tokio::spawn(on_signal);

        tracing::info!(%local_addr, database = %redact_url(&settings.database_url), "retract-server listening");
        let sever = CancellationToken::new();
        let incoming = {
            let sever = sever.clone();
            TcpListenerStream::new(listener).map(move |accepted| {
                accepted.map(|tcp| {
                    if let Err(err) = tcp.set_nodelay(true) {
                        tracing::debug!(error = %err, "cannot set TCP_NODELAY");
                    }
                    severable::Severable::new(tcp, &sever)
                })
            })
        };
        let serve =
            router.serve_with_incoming_shutdown(incoming, stopping.clone().cancelled_owned());
        let grace = Duration::from_millis(settings.shutdown_grace_ms);
        let result = tokio::select! {
            result = serve => result.map_err(StartupError::from),
            () = async { stopping.cancelled().await; tokio::time::sleep(grace).await } => {
                tracing::warn!(?grace, "grace period over: closing the remaining calls and streams");
                Ok(())
            }
        };
        // Connections run in their own tasks; cut whatever is still open.
        sever.cancel();
        // The engine stops between mailboxes; what it has not done resumes on the next start.
        if tokio::time::timeout(grace, engine_task).await.is_err() {
            tracing::warn!("the retract engine did not stop within the grace period");
        }
        store.close().await.ok();
        tracing::info!("retract-server stopped");
        result
    }
}

/// The consent flow, with the app-token cache when an app registration is configured. The
/// redirect URI defaults to this server's own callback address.
fn consent_flow(
    settings: &Settings,
    store: &Store,
    http: &reqwest::Client,
    local_addr: SocketAddr,
) -> Result<(Consent, Option<GraphClient>), StartupError> {
    let graph = settings.graph()?;
    let (http, tokens) = match &graph {
        Some(g) => {
            let graph_http =
                crate::graph::http_client(g).map_err(|e| StartupError::Config(e.to_string()))?;
            let tokens = Arc::new(AppTokens::new(g.clone(), graph_http.clone()));
            (graph_http, Some(tokens))
        }
        None => {
            tracing::warn!(
                "no Microsoft Graph app registration configured (graph_client_id): grants are unavailable"
            );
            (http.clone(), None)
        }
    };
    let scheme = if settings.tls_cert_file.is_some() {
        "https"
    } else {
        "http"
    };
    // Listening on every address (0.0.0.0) says nothing about where browsers reach us:
    // default to localhost then, and set consent_redirect_uri behind a proxy.
    let host = if local_addr.ip().is_unspecified() {
        format!("localhost:{}", local_addr.port())
    } else {
        local_addr.to_string()
    };
    let redirect_uri = settings
        .consent_redirect_uri
        .clone()
        .unwrap_or_else(|| format!("{scheme}://{host}{}", CallbackService::PATH));
    let consent_settings = ConsentSettings {
        graph,
        redirect_uri,
        ttl: Duration::from_millis(settings.consent_ttl_ms),
    };
    let client = match (&consent_settings.graph, &tokens) {
        (Some(g), Some(t)) => Some(GraphClient::new(g, http.clone(), t.clone())),
        _ => None,
    };
    Ok((
        Consent::new(store.clone(), consent_settings, http, tokens),
        client,
    ))
}

/// The TLS configuration, when a certificate is configured; with a client CA, clients must
/// present a certificate it signed (mTLS between services).
fn tls_config(
    settings: &Settings,
) -> Result<Option<tonic::transport::ServerTlsConfig>, StartupError> {
    use tonic::transport::{Certificate, Identity, ServerTlsConfig};
    let (Some(cert), Some(key)) = (&settings.tls_cert_file, &settings.tls_key_file) else {
        return Ok(None);
    };
    let read = |path: &std::path::Path| {
        std::fs::read(path)
            .map_err(|e| StartupError::Tls(format!("cannot read {}: {e}", path.display())))
    };
    let mut tls = ServerTlsConfig::new().identity(Identity::from_pem(read(cert)?, read(key)?));
    if let Some(ca) = &settings.tls_client_ca_file {
        // Optional at the TLS level so browsers reach the consent callback; the auth layer
        // requires a certificate on everything else.
        tls = tls
            .client_ca_root(Certificate::from_pem(read(ca)?))
            .client_auth_optional(true);
    }
    Ok(Some(tls))
}

/// A gRPC service that browsers can also call over gRPC-Web (HTTP/1.1).
fn web<S>(service: S) -> tonic_web::GrpcWebService<S> {
    tower::Layer::layer(&tonic_web::GrpcWebLayer::new(), service)
}

/// Reflection over our services plus the `google.rpc` detail types and health, so that
/// grpcurl can decode error details.
fn reflection() -> tonic_reflection::server::Builder<'static> {
    tonic_reflection::server::Builder::configure()
        .register_encoded_file_descriptor_set(retract_proto::FILE_DESCRIPTOR_SET)
        .register_encoded_file_descriptor_set(tonic_types::pb::FILE_DESCRIPTOR_SET)
        .register_encoded_file_descriptor_set(tonic_health::pb::FILE_DESCRIPTOR_SET)
}

/// Requests are traced at INFO; only server-side failures are logged as errors — a caller's
/// INVALID_ARGUMENT or NOT_FOUND is not the server's fault.
fn trace_layer<B>() -> TraceLayer<
    SharedClassifier<GrpcErrorsAsFailures>,
    impl Fn(&http::Request<B>) -> tracing::Span + Clone,
> {
    let caller_errors = [
        GrpcCode::Cancelled,
        GrpcCode::InvalidArgument,
        GrpcCode::NotFound,
        GrpcCode::AlreadyExists,
        GrpcCode::PermissionDenied,
        GrpcCode::ResourceExhausted,
        GrpcCode::FailedPrecondition,
        GrpcCode::Aborted,
        GrpcCode::OutOfRange,
        GrpcCode::Unimplemented,
        GrpcCode::Unauthenticated,
    ];
    let classifier = caller_errors.into_iter().fold(
        GrpcErrorsAsFailures::new(),
        GrpcErrorsAsFailures::with_success,
    );
    TraceLayer::new(SharedClassifier::new(classifier))
        // The path only: the consent callback's query carries a code and a state.
        .make_span_with(|request: &http::Request<_>| {
            tracing::info_span!("request", method = %request.method(), path = %request.uri().path())
        })
        .on_response(DefaultOnResponse::new().level(Level::DEBUG))
        .on_failure(DefaultOnFailure::new().level(Level::ERROR))
}

/// gRPC-Web from browsers: only the configured origins, exposing the gRPC status headers.
fn cors_layer(origins: &[String]) -> Result<CorsLayer, StartupError> {
    let origins = origins
        .iter()
        .map(|o| {
            HeaderValue::from_str(o).map_err(|_| {
                StartupError::Config(format!("CORS origin {o:?} is not a header value"))
            })
        })
        .collect::<Result<Vec<_>, _>>()?;
    let expose = [
        "grpc-status",
        "grpc-message",
        "grpc-status-details-bin",
        "x-request-id",
    ]
    .map(HeaderName::from_static);
    let allow = [
        "authorization",
        "content-type",
        "x-grpc-web",
        "x-user-agent",
        "grpc-timeout",
        "x-request-id",
    ]
    .map(HeaderName::from_static);
    Ok(CorsLayer::new()
        .allow_origin(AllowOrigin::list(origins))
        .allow_methods([http::Method::POST, http::Method::OPTIONS])
        .allow_headers(allow)
        .expose_headers(expose)
        .max_age(Duration::from_secs(3600)))
}

/// The database URL without a password, for logs.
fn redact_url(url: &str) -> String {
    match (url.find("://"), url.rfind('@')) {
        (Some(scheme_end), Some(at)) if at > scheme_end => {
            let credentials = &url[scheme_end + 3..at];
            match credentials.split_once(':') {
                Some((user, _)) => format!("{}{user}:***{}", &url[..scheme_end + 3], &url[at..]),
                None => url.to_owned(),
            }
        }
        _ => url.to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::redact_url;

    #[test]
    fn database_passwords_stay_out_of_logs() {
        assert_eq!(
            redact_url("postgres://app:s3cret@db:5432/retract"),
            "postgres://app:***@db:5432/retract"
        );
        assert_eq!(
            redact_url("postgres://postgres@127.0.0.1/x"),
            "postgres://postgres@127.0.0.1/x"
        );
        assert_eq!(
            redact_url("sqlite://retract.db?mode=rwc"),
            "sqlite://retract.db?mode=rwc"
        );
    }
}
