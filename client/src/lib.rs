//! Rust client of the retract gRPC service, for the services that call it (the gateway
//! recording deliveries, the admin portal's backend, automation) and for `retractctl`.
//!
//! # Layout
//! - [`ConnectOptions`] → [`Client`]: one channel (plaintext, or TLS with the system's roots or
//!   a given CA, optionally mTLS), the caller's token ([`TokenSource`]: [`StaticToken`],
//!   [`RefreshingToken`], or a [`DevToken`]), a default per-call deadline and a
//!   [`RetryPolicy`] for idempotent calls.
//! - [`Client`]'s methods, one per RPC (`list_domains`, `get_retract_options`, …), take and
//!   return the contract's messages ([`pb`]) and fail with [`Error`], whose [`ApiError`] has the
//!   server's `ErrorInfo` reason ([`ApiError::error_reason`]), field violations and retry delay.
//! - [`Client::retract`], [`Client::watch`], [`Client::restore`]: an [`EventStream`] of a job's
//!   events that resumes `WatchRetract` from the last sequence it yielded after a dropped
//!   connection or a server restart — every event once, in order, until `JobFinished`.
//! - [`Client::tenant_service`], [`Client::retract_service`], [`Client::audit_service`]: the
//!   generated tonic clients themselves, for what the methods do not cover.
//! - [`DevToken`]: mints caller tokens signed with the development key, for laptops, the demo
//!   and tests. Production tokens come from the admin portal or the service mesh.
//!
//! ```no_run
//! # async fn example() -> Result<(), retract_client::Error> {
//! use retract_client::{ConnectOptions, EventKind, pb};
//! let client = ConnectOptions::new("http://127.0.0.1:50051")
//!     .token(std::env::var("RETRACT_TOKEN").unwrap_or_default())
//!     .connect()
//!     .await?;
//! let mut events = client.retract(pb::RetractRequest {
//!     tenant_id: "acme".into(),
//!     options: Some(pb::RetractOptions {
//!         internet_message_id: "<invoice-42@vendor.example>".into(),
//!         delete_mode: pb::DeleteMode::Soft.into(),
//!         ..Default::default()
//!     }),
//!     request_id: String::new(), // a new UUID is chosen, and kept for re-attaching
//! });
//! while let Some(event) = events.next().await {
//!     if let EventKind::Finished(f) = event?.kind() {
//!         println!("{:?}", f.state());
//!     }
//! }
//! # Ok(()) }
//! ```
//!
//! Runnable examples: `client/examples/` (`cargo run -p retract-client --example follow_job`).

mod calls;
mod connect;
mod dev_token;
mod error;
mod events;
mod retry;
mod token;

use std::{sync::Arc, time::Duration};

pub use connect::ConnectOptions;
pub use dev_token::{
    DEVELOPMENT_AUDIENCE, DEVELOPMENT_ISSUER, DEVELOPMENT_SECRET, DevToken, SigningKey,
};
pub use error::{ApiError, Code, ERROR_DOMAIN, Error, FieldViolation};
pub use events::{Event, EventKind, EventStream, ResumePolicy};
/// The encoded `FileDescriptorSet` of the contract (for ProtoJSON, reflection clients).
pub use retract_proto::FILE_DESCRIPTOR_SET;
/// The generated `retract.v1` messages, enums and clients.
pub use retract_proto::v1 as pb;
pub use retry::RetryPolicy;
pub use token::{BoxFuture, IssuedToken, RefreshingToken, StaticToken, TokenSource};
use tonic::{
    metadata::AsciiMetadataValue,
    service::{Interceptor, interceptor::InterceptedService},
    transport::{Certificate, Channel, ClientTlsConfig, Endpoint},
};

/// Adds `authorization: Bearer <token>` to every call that does not set it already.
#[derive(Clone, Default)]
pub struct BearerToken(Option<AsciiMetadataValue>);

impl Interceptor for BearerToken {
    fn call(
        &mut self,
        mut request: tonic::Request<()>,
    ) -> Result<tonic::Request<()>, tonic::Status> {
        if let Some(token) = &self.0
            && !request.metadata().contains_key("authorization")
        {
            request
                .metadata_mut()
                .insert("authorization", token.clone());
        }
        Ok(request)
    }
}

/// A channel to retract plus the caller's token, deadline and retry policy. Cheap to clone;
/// clones share the channel.
#[derive(Clone)]
pub struct Client {
    channel: Channel,
    /// The fixed token, also sent by the generated clients.
    token: BearerToken,
    /// Asked before each call of the methods; overrides `token` there.
    source: Option<Arc<dyn TokenSource>>,
    /// The deadline of each unary call.
    deadline: Option<Duration>,
    retry: RetryPolicy,
    resume: ResumePolicy,
}

/// The channel type of every service client handed out by [`Client`].
pub type AuthedChannel = InterceptedService<Channel, BearerToken>;

impl Client {
    /// Connects to `endpoint`, e.g. `http://127.0.0.1:50051` (see [`ConnectOptions`] for TLS,
    /// tokens and deadlines).
    pub async fn connect(endpoint: impl Into<String>) -> Result<Self, Error> {
        Self::connect_trusting(endpoint, None).await
    }

    /// Connects to `endpoint`; with `ca` (PEM), over TLS trusting that certificate authority
    /// (a private CA, like the quickstart's, or the one that signed the server's certificate).
    pub async fn connect_trusting(
        endpoint: impl Into<String>,
        ca: Option<&[u8]>,
    ) -> Result<Self, Error> {
        let address = endpoint.into();
        let config = |e: tonic::transport::Error| Error::Config(format!("{address}: {e}"));
        let mut endpoint = Endpoint::from_shared(address.clone()).map_err(config)?;
        if let Some(ca) = ca {
            endpoint = endpoint
                .tls_config(ClientTlsConfig::new().ca_certificate(Certificate::from_pem(ca)))
                .map_err(config)?;
        }
        let channel = endpoint
            .connect_timeout(Duration::from_secs(10))
            .connect()
            .await
            .map_err(|e| Error::Connect {
                endpoint: address.clone(),
                detail: error::chain(&e),
            })?;
        Ok(Self::from_channel(channel))
    }

    /// Wraps an existing channel.
    pub fn from_channel(channel: Channel) -> Self {
        Self {
            channel,
            token: BearerToken::default(),
            source: None,
            deadline: None,
            retry: RetryPolicy::default(),
            resume: ResumePolicy::default(),
        }
    }

    /// The same channel, calling with `token`.
    pub fn with_token(&self, token: &str) -> Result<Self, Error> {
        let mut value = AsciiMetadataValue::try_from(format!("Bearer {token}"))
            .map_err(|_| Error::Token("the token is not ASCII".into()))?;
        // Never shown in Debug output.
        value.set_sensitive(true);
        Ok(Self {
            token: BearerToken(Some(value)),
            source: None,
            ..self.clone()
        })
    }

    /// The same channel, asking `source` for the token before each call of the methods (the
    /// generated clients of [`Self::tenant_service`] & co. do not ask it: they send the
    /// token given to [`Self::with_token`], if any).
    pub fn with_token_source(&self, source: impl TokenSource) -> Self {
        self.clone().with_token_source_arc(Arc::new(source))
    }

    fn with_token_source_arc(self, source: Arc<dyn TokenSource>) -> Self {
        Self {
            source: Some(source),
            ..self
        }
    }

    /// The same channel, with `deadline` on each unary call.
    pub fn with_deadline(&self, deadline: Duration) -> Self {
        Self {
            deadline: Some(deadline),
            ..self.clone()
        }
    }

    /// The same channel, retrying idempotent calls by `retry`.
    pub fn with_retry(&self, retry: RetryPolicy) -> Self {
        Self {
            retry,
            ..self.clone()
        }
    }

    /// The same channel, resuming event streams by `resume`.
    pub fn with_resume(&self, resume: ResumePolicy) -> Self {
        Self {
            resume,
            ..self.clone()
        }
    }

    /// The same channel, calling without a token.
    pub fn anonymous(&self) -> Self {
        Self::from_channel(self.channel.clone())
    }

    /// The raw channel (for health and reflection clients).
    pub fn channel(&self) -> Channel {
        self.channel.clone()
    }

    /// The generated TenantService client: tenants, domains, grants.
    pub fn tenant_service(&self) -> pb::tenant_service_client::TenantServiceClient<AuthedChannel> {
        pb::tenant_service_client::TenantServiceClient::with_interceptor(
            self.channel.clone(),
            self.token.clone(),
        )
    }

    /// The generated RetractService client: deliveries and retract jobs.
    pub fn retract_service(
        &self,
    ) -> pb::retract_service_client::RetractServiceClient<AuthedChannel> {
        pb::retract_service_client::RetractServiceClient::with_interceptor(
            self.channel.clone(),
            self.token.clone(),
        )
    }

    /// The generated AuditService client: the audit trail.
    pub fn audit_service(&self) -> pb::audit_service_client::AuditServiceClient<AuthedChannel> {
        pb::audit_service_client::AuditServiceClient::with_interceptor(
            self.channel.clone(),
            self.token.clone(),
        )
    }

    /// `message` as a request: the token source's token, and `deadline` if any.
    pub(crate) async fn request<T>(
        &self,
        message: T,
        deadline: Option<Duration>,
    ) -> Result<tonic::Request<T>, Error> {
        let mut request = tonic::Request::new(message);
        if let Some(source) = &self.source {
            let token = source.token().await.map_err(Error::Token)?;
            let value = AsciiMetadataValue::try_from(format!("Bearer {token}"))
                .map_err(|_| Error::Token("the token is not ASCII".into()))?;
            request.metadata_mut().insert("authorization", value);
        }
        if let Some(deadline) = deadline {
            request.set_timeout(deadline);
        }
        Ok(request)
    }
}
