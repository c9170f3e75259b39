//! [`ConnectOptions`]: where the server is and how to reach it — plaintext or TLS (the system's
//! roots or a given CA, optionally a client certificate for mTLS), the caller's token, the
//! default per-call deadline and the retry policy.

use std::{sync::Arc, time::Duration};

use tonic::transport::{Certificate, Channel, ClientTlsConfig, Endpoint, Identity};

use crate::{Client, Error, RetryPolicy, TokenSource, error::chain, token::StaticToken};

/// How to reach a retract server; [`ConnectOptions::connect`] makes the [`Client`].
///
/// ```no_run
/// # async fn example(ca: Vec<u8>, cert: Vec<u8>, key: Vec<u8>) -> Result<(), retract_client::Error> {
/// use std::time::Duration;
/// let client = retract_client::ConnectOptions::new("https://retract.internal:50051")
///     .ca_certificate_pem(ca)              // without it: the system's trusted roots
///     .client_identity_pem(cert, key)      // mTLS
///     .token("eyJ…")                       // or .token_source(a RefreshingToken)
///     .deadline(Duration::from_secs(10))   // every unary call
///     .connect()
///     .await?;
/// # Ok(()) }
/// ```
#[derive(Clone)]
pub struct ConnectOptions {
    endpoint: String,
    ca_pem: Option<Vec<u8>>,
    identity: Option<(Vec<u8>, Vec<u8>)>,
    tls_domain_name: Option<String>,
    connect_timeout: Duration,
    deadline: Option<Duration>,
    retry: RetryPolicy,
    token: Option<Arc<dyn TokenSource>>,
    /// A fixed token, also sent by the generated clients ([`Client::tenant_service`] & co.).
    fixed: Option<String>,
}

impl ConnectOptions {
    /// The server at `endpoint`: `http://host:port` (plaintext) or `https://host:port` (TLS).
    pub fn new(endpoint: impl Into<String>) -> Self {
        Self {
            endpoint: endpoint.into(),
            ca_pem: None,
            identity: None,
            tls_domain_name: None,
            connect_timeout: Duration::from_secs(10),
            deadline: None,
            retry: RetryPolicy::default(),
            token: None,
            fixed: None,
        }
    }

    /// Trusts only this certificate authority (PEM) for the server's certificate, instead of
    /// the system's roots.
    pub fn ca_certificate_pem(mut self, pem: impl Into<Vec<u8>>) -> Self {
        self.ca_pem = Some(pem.into());
        self
    }

    /// Presents this client certificate chain and private key (PEM) to a server that requires
    /// mTLS.
    pub fn client_identity_pem(
        mut self,
        cert: impl Into<Vec<u8>>,
        key: impl Into<Vec<u8>>,
    ) -> Self {
        self.identity = Some((cert.into(), key.into()));
        self
    }

    /// Checks the server's certificate for this name instead of the endpoint's host.
    pub fn tls_domain_name(mut self, name: impl Into<String>) -> Self {
        self.tls_domain_name = Some(name.into());
        self
    }

    /// Gives up connecting after this long (default 10 s).
    pub fn connect_timeout(mut self, timeout: Duration) -> Self {
        self.connect_timeout = timeout;
        self
    }

    /// The deadline of every unary call (none by default); streams are not bounded by it.
    pub fn deadline(mut self, deadline: Duration) -> Self {
        self.deadline = Some(deadline);
        self
    }

    /// How idempotent calls are retried (default: [`RetryPolicy::default`]).
    pub fn retry(mut self, retry: RetryPolicy) -> Self {
        self.retry = retry;
        self
    }

    /// Calls with this fixed bearer token.
    pub fn token(self, token: impl Into<String>) -> Self {
        let token = token.into();
        let mut options = self.token_source(StaticToken::new(token.clone()));
        options.fixed = Some(token);
        options
    }

    /// Asks `source` for the bearer token before every call.
    pub fn token_source(mut self, source: impl TokenSource) -> Self {
        // A later source replaces a fixed token for the generated clients too.
        self.fixed = None;
        self.token = Some(Arc::new(source));
        self
    }

    fn endpoint(&self) -> Result<Endpoint, Error> {
        let mut endpoint = Endpoint::from_shared(self.endpoint.clone())
            .map_err(|e| Error::Config(format!("endpoint {:?}: {}", self.endpoint, chain(&e))))?
            .connect_timeout(self.connect_timeout)
            // A connection that died without a goodbye (a crashed server, a dropped route)
            // is noticed by a stream within seconds, not at the next TCP timeout.
            .http2_keep_alive_interval(Duration::from_secs(20))
            .keep_alive_timeout(Duration::from_secs(10))
            .keep_alive_while_idle(true);
        let tls_asked =
            self.ca_pem.is_some() || self.identity.is_some() || self.tls_domain_name.is_some();
        if self.endpoint.starts_with("https://") {
            let mut tls = ClientTlsConfig::new();
            tls = match &self.ca_pem {
                Some(pem) => tls.ca_certificate(Certificate::from_pem(pem)),
                None => tls.with_native_roots(),
            };
            if let Some((cert, key)) = &self.identity {
                tls = tls.identity(Identity::from_pem(cert, key));
            }
            if let Some(name) = &self.tls_domain_name {
                tls = tls.domain_name(name.clone());
            }
            endpoint = endpoint
                .tls_config(tls)
                .map_err(|e| Error::Config(format!("TLS: {}", chain(&e))))?;
        } else if tls_asked {
            return Err(Error::Config(format!(
                "TLS options need an https:// endpoint, not {:?}",
                self.endpoint
            )));
        }
        Ok(endpoint)
    }

    /// Connects now (failing if the server cannot be reached or the handshake fails).
    pub async fn connect(self) -> Result<Client, Error> {
        let channel = self
            .endpoint()?
            .connect()
            .await
            .map_err(|e| Error::Connect {
                endpoint: self.endpoint.clone(),
                detail: chain(&e),
            })?;
        Ok(self.client(channel))
    }

    /// Connects at the first call (and reconnects whenever the connection is lost).
    pub fn connect_lazy(self) -> Result<Client, Error> {
        let channel = self.endpoint()?.connect_lazy();
        Ok(self.client(channel))
    }

    fn client(self, channel: Channel) -> Client {
        let mut client = Client::from_channel(channel).with_retry(self.retry);
        if let Some(d) = self.deadline {
            client = client.with_deadline(d);
        }
        // The generated clients send the fixed token (a non-ASCII one is refused by the
        // methods, which ask the source).
        if let Some(fixed) = &self.fixed
            && let Ok(with_fixed) = client.with_token(fixed)
        {
            client = with_fixed;
        }
        if let Some(source) = self.token {
            client = client.with_token_source_arc(source);
        }
        client
    }
}
