//! Building and running the server: [`Application::build`] connects, migrates and binds (port 0
//! works, for tests); [`Application::run_until_stopped`] serves until the shutdown future
//! resolves, then drains within the grace period.

mod limits;
mod metrics_endpoint;
mod process;
mod severable;
mod undecodable;

pub use process::{RunError, run_from_environment};

use std::{future::Future, net::SocketAddr, sync::Arc, time::Duration};

use futures::StreamExt as _;

use http::{HeaderName, HeaderValue};
use retract_proto::{
    framed::retract_service_server::RetractServiceServer,
    v1::{audit_service_server::AuditServiceServer, tenant_service_server::TenantServiceServer},
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
    api::{AuditApi, RetractApi, TenantApi, rejection_status},
    auth::{AuthLayer, CallerConcurrency, JwtVerifier, KeyError, RateLimiter},
    config::{ConfigError, Mode, Settings},
    consent::{CallbackService, Consent, ConsentSettings},
    engine::{Engine, EventHub, Watcher},
    graph::{AppTokens, GraphClient},
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

/// A built, bound, not yet running server: every part made and wired, nothing started.
pub struct Application {
    settings: Settings,
    store: Store,
    listener: TcpListener,
    local_addr: SocketAddr,
    http: reqwest::Client,
    verifier: Arc<JwtVerifier>,
    consent: Consent,
    engine: Engine,
    retract_api: RetractApi,
    /// What the background parts report (engine, Graph credential).
    health: health::ServiceHealth,
    /// Tells open streams to end (shutdown).
    stopping: CancellationToken,
    /// The Prometheus endpoint's bound listener, when `metrics_listen` is set.
    metrics: Option<(TcpListener, SocketAddr)>,
}

impl Application {
    /// Connects to the database (creating an SQLite file if needed), migrates it unless told
    /// not to, binds the listen address, and wires the parts: one Graph client shared by
    /// consent and the engine, the engine, the watcher, the services.
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
        let verifier = Arc::new(JwtVerifier::new(&settings.token_rules(), keys));
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
        let metrics = match settings.metrics_listen {
            Some(addr) => Some(metrics_endpoint::bind(addr).await?),
            None => None,
        };
        let graph_settings = settings.graph()?;
        let graph_credential = graph_settings.as_ref().map(|g| g.credential.clone());
        let (graph_http, graph) = match &graph_settings {
            Some(g) => {
                let graph_http = crate::graph::http_client(g)
                    .map_err(|e| StartupError::Config(e.to_string()))?;
                let tokens = Arc::new(AppTokens::new(g.clone(), graph_http.clone()));
                let graph = GraphClient::new(g, graph_http.clone(), tokens);
                (graph_http, Some(graph))
            }
            None => {
                tracing::warn!(
                    "no Microsoft Graph app registration configured (graph_client_id): grants and retracts are unavailable"
                );
                (http.clone(), None)
            }
        };
        let consent = Consent::new(
            store.clone(),
            ConsentSettings {
                graph: graph_settings,
                redirect_uri: redirect_uri(&settings, local_addr),
                ttl: settings.consent_ttl(),
            },
            graph_http,
            graph.clone(),
        );
        let hub = Arc::new(EventHub::default());
        let engine = Engine::new(store.clone(), graph, settings.engine(), hub.clone());
        let stopping = CancellationToken::new();
        let watcher = Watcher::new(store.clone(), hub, settings.watch(), stopping.clone());
        let retract_api = RetractApi::new(
            store.clone(),
            engine.clone(),
            watcher,
            Arc::new(crate::auth::StreamCaps::new(
                settings.caller_streams,
                settings.max_streams,
            )),
        );
        let health = health::ServiceHealth {
            engine: engine.health(),
            graph_credential,
        };
        Ok(Self {
            settings,
            store,
            listener,
            local_addr,
            http,
            verifier,
            consent,
            engine,
            retract_api,
            health,
            stopping,
            metrics,
        })
    }

    /// The bound address of the Prometheus endpoint, when `metrics_listen` is set.
    pub fn metrics_addr(&self) -> Option<SocketAddr> {
        self.metrics.as_ref().map(|(_, addr)| *addr)
    }

    /// What the background parts report, for health and readiness.
    pub fn health(&self) -> health::ServiceHealth {
        self.health.clone()
    }

    /// The bound address (with the real port when 0 was asked for).
    pub fn local_addr(&self) -> SocketAddr {
        self.local_addr
    }

    /// Starts the background work (health probe, key refresh, re-verification, retention,
    /// the engine) and serves until `shutdown` resolves. Then health turns NOT_SERVING
    /// everywhere, streams are told to end, the engine gives its job back, and open calls
    /// get `shutdown_grace_ms` to finish before they are closed.
    pub async fn run_until_stopped(
        self,
        shutdown: impl Future<Output = ()> + Send + 'static,
    ) -> Result<(), StartupError> {
        let Self {
            settings,
            store,
            listener,
            local_addr,
            http,
            verifier,
            consent,
            engine,
            retract_api,
            health: parts,
            stopping,
            metrics,
        } = self;
        if let Some((listener, _)) = metrics {
            tokio::spawn(metrics_endpoint::serve(
                listener,
                store.clone(),
                stopping.clone(),
            ));
        }
        let (reporter, health_service) = tonic_health::server::health_reporter();
        health::set_all(&reporter, ServingStatus::NotServing).await;
        let background = CancellationToken::new();
        let (probe_every, probe_timeout) = settings.health_probe();
        let probe = tokio::spawn(health::follow_database(
            store.clone(),
            reporter.clone(),
            parts,
            probe_every,
            probe_timeout,
            background.clone(),
        ));
        tokio::spawn(settings.key_sources().refresh(
            http,
            verifier.clone(),
            settings.jwks_refresh(),
            background.clone(),
        ));
        if let Some(every) = settings.domain_reverify_interval() {
            tokio::spawn(
                consent
                    .clone()
                    .reverify_periodically(every, background.clone()),
            );
        }
        tokio::spawn(crate::retention::sweep_periodically(
            store.clone(),
            settings.retention(),
            settings.retention_sweep_interval(),
            background.clone(),
        ));
        let engine_task = tokio::spawn(engine.run_supervised(background.clone()));

        let reflection_v1 = reflection()
            .build_v1()
            .map_err(|e| StartupError::Config(format!("reflection: {e}")))?;
        let reflection_v1alpha = reflection()
            .build_v1alpha()
            .map_err(|e| StartupError::Config(format!("reflection: {e}")))?;
        let limiter = Arc::new(RateLimiter::new(settings.rate_limit()));
        let layers = tower::ServiceBuilder::new()
            .layer(crate::telemetry::rpc::RpcMetricsLayer)
            .layer(trace_layer())
            .layer(limits::ConcurrencyLimitLayer::new(
                settings.concurrency_limit,
            ))
            .layer(cors_layer(&settings.cors_allowed_origins)?)
            .layer(
                AuthLayer::new(verifier, limiter, rejection_status)
                    .limiting_calls_in_progress(Arc::new(CallerConcurrency::new(
                        settings.caller_calls_in_progress,
                    )))
                    .requiring_client_certificates(settings.tls_client_ca_file.is_some()),
            )
            .layer(undecodable::UndecodableRequestsLayer)
            .into_inner();
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
            .timeout(settings.request_timeout())
            .layer(layers)
            .add_service(web(health_service))
            .add_service(web(reflection_v1))
            .add_service(web(reflection_v1alpha))
            .add_service(web(TenantServiceServer::new(TenantApi::new(
                store.clone(),
                consent,
                settings.retention().deleted_tenant_audit,
            ))
            .max_encoding_message_size(MAX_RESPONSE_BYTES)
            .max_decoding_message_size(MAX_REQUEST_BYTES)))
            .add_service(web(RetractServiceServer::new(retract_api)
                .max_encoding_message_size(MAX_RESPONSE_BYTES)
                .max_decoding_message_size(MAX_REQUEST_BYTES)))
            .add_service(web(AuditServiceServer::new(AuditApi::new(
                store.clone(),
                settings.audit_export_settle(),
            ))
            .max_encoding_message_size(MAX_RESPONSE_BYTES)
            .max_decoding_message_size(MAX_REQUEST_BYTES)))
            // A browser page, not gRPC: outside gRPC-Web, which refuses plain HTTP/1.1.
            .add_service(callback);

        let on_signal = {
            let stopping = stopping.clone();
            let reporter = reporter.clone();
            async move {
                shutdown.await;
                tracing::info!("shutdown requested: draining");
                background.cancel();
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
        let grace = settings.shutdown_grace();
        let result = tokio::select! {
            result = serve => result.map_err(StartupError::from),
            () = async { stopping.cancelled().await; tokio::time::sleep(grace).await } => {
                tracing::warn!(?grace, "grace period over: closing the remaining calls and streams");
                Ok(())
            }
        };
        // Connections run in their own tasks; cut whatever is still open.
        sever.cancel();
        // The engine stops between mailboxes and gives its job back; what it has not done
        // resumes on another replica (or on the next start) at once.
        if tokio::time::timeout(grace, engine_task).await.is_err() {
            tracing::warn!("the retract engine did not stop within the grace period");
        }
        store.close().await.ok();
        tracing::info!("retract-server stopped");
        result
    }
}

/// Where Microsoft sends the administrator back: `consent_redirect_uri`, or this server's own
/// callback address. Listening on every address (0.0.0.0) says nothing about where browsers
/// reach us: default to localhost then, and set consent_redirect_uri behind a proxy.
fn redirect_uri(settings: &Settings, local_addr: SocketAddr) -> String {
    if let Some(uri) = &settings.consent_redirect_uri {
        return uri.clone();
    }
    let scheme = if settings.tls_cert_file.is_some() {
        "https"
    } else {
        "http"
    };
    let host = if local_addr.ip().is_unspecified() {
        format!("localhost:{}", local_addr.port())
    } else {
        local_addr.to_string()
    };
    format!("{scheme}://{host}{}", CallbackService::PATH)
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

/// The largest response message sent (a full page of audit events is far below it).
pub const MAX_RESPONSE_BYTES: usize = 16 * 1024 * 1024;
/// The largest request message read (tonic's default, stated: a RecordDeliveries batch fits).
pub const MAX_REQUEST_BYTES: usize = 4 * 1024 * 1024;

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
        // The path only: the consent callback's query carries a code and a state. A caller's
        // W3C trace context makes this span (the RPC's) part of the caller's trace.
        .make_span_with(|request: &http::Request<_>| {
            let span = tracing::info_span!(
                "request",
                otel.name = crate::telemetry::rpc::rpc_name(request.uri().path()),
                otel.kind = "server",
                rpc.system = "grpc",
                method = %request.method(),
                path = %request.uri().path(),
            );
            crate::telemetry::traces::continue_remote_trace(&span, request.headers());
            span
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
