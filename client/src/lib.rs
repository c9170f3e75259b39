//! Rust client of the retract gRPC service.
//!
//! # Layout
//! - [`pb`]: the generated `retract.v1` messages and clients (re-exported from `retract-proto`).
//! - [`Client`]: one channel, with the caller's bearer token on every call, handing out the
//!   three service clients.
//! - [`DevToken`]: mints caller tokens signed with the development key, for laptops, the demo
//!   and tests. Production tokens come from the admin portal or the service mesh.
//!
//! ```no_run
//! # async fn example() -> Result<(), Box<dyn std::error::Error>> {
//! use retract_client::{Client, DevToken, pb};
//! let token = DevToken::service("gateway").permission("tenants.manage").mint()?;
//! let client = Client::connect("http://127.0.0.1:50051").await?.with_token(&token)?;
//! let tenants = client.tenants().list_tenants(pb::ListTenantsRequest::default()).await?;
//! # Ok(()) }
//! ```

mod dev_token;

pub use dev_token::{
    DEVELOPMENT_AUDIENCE, DEVELOPMENT_ISSUER, DEVELOPMENT_SECRET, DevToken, SigningKey,
};
/// The generated `retract.v1` messages, enums and clients.
pub use retract_proto::v1 as pb;
use tonic::{
    metadata::{AsciiMetadataValue, errors::InvalidMetadataValue},
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

/// A channel to retract plus the caller's token.
#[derive(Clone)]
pub struct Client {
    channel: Channel,
    token: BearerToken,
}

/// The channel type of every service client handed out by [`Client`].
pub type AuthedChannel = InterceptedService<Channel, BearerToken>;

impl Client {
    /// Connects to `endpoint`, e.g. `http://127.0.0.1:50051`.
    pub async fn connect(endpoint: impl Into<String>) -> Result<Self, tonic::transport::Error> {
        let channel = Endpoint::from_shared(endpoint.into())?.connect().await?;
        Ok(Self::from_channel(channel))
    }

    /// Connects to `endpoint`; with `ca` (PEM), over TLS trusting that certificate authority
    /// (a private CA, like the quickstart's, or the one that signed the server's certificate).
    pub async fn connect_trusting(
        endpoint: impl Into<String>,
        ca: Option<&[u8]>,
    ) -> Result<Self, tonic::transport::Error> {
        let mut endpoint = Endpoint::from_shared(endpoint.into())?;
        if let Some(ca) = ca {
            endpoint = endpoint
                .tls_config(ClientTlsConfig::new().ca_certificate(Certificate::from_pem(ca)))?;
        }
        let channel = endpoint
            .connect_timeout(std::time::Duration::from_secs(10))
            .connect()
            .await?;
        Ok(Self::from_channel(channel))
    }

    /// Wraps an existing channel.
    pub fn from_channel(channel: Channel) -> Self {
        Self {
            channel,
            token: BearerToken::default(),
        }
    }

    /// The same channel, calling with `token`.
    pub fn with_token(&self, token: &str) -> Result<Self, InvalidMetadataValue> {
        let value = AsciiMetadataValue::try_from(format!("Bearer {token}"))?;
        Ok(Self {
            channel: self.channel.clone(),
            token: BearerToken(Some(value)),
        })
    }

    /// The same channel, calling without a token.
    pub fn anonymous(&self) -> Self {
        Self::from_channel(self.channel.clone())
    }

    /// The raw channel (for health and reflection clients).
    pub fn channel(&self) -> Channel {
        self.channel.clone()
    }

    /// TenantService: tenants, domains, grants.
    pub fn tenants(&self) -> pb::tenant_service_client::TenantServiceClient<AuthedChannel> {
        pb::tenant_service_client::TenantServiceClient::with_interceptor(
            self.channel.clone(),
            self.token.clone(),
        )
    }

    /// RetractService: deliveries and retract jobs.
    pub fn retract(&self) -> pb::retract_service_client::RetractServiceClient<AuthedChannel> {
        pb::retract_service_client::RetractServiceClient::with_interceptor(
            self.channel.clone(),
            self.token.clone(),
        )
    }

    /// AuditService: the audit trail.
    pub fn audit(&self) -> pb::audit_service_client::AuditServiceClient<AuthedChannel> {
        pb::audit_service_client::AuditServiceClient::with_interceptor(
            self.channel.clone(),
            self.token.clone(),
        )
    }
}
