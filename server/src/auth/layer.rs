//! The tower layer that authenticates and authorizes every call to our services.

use std::{
    sync::Arc,
    task::{Context, Poll},
};

use futures::future::BoxFuture;
use http::{Request, Response};
use tonic::Status;
use tower::{Layer, Service};

use super::{
    AuthError, CallerConcurrency, JwtVerifier, RateLimiter,
    permissions::{self, Rule},
};

/// Why the layer turned a call away.
#[derive(Debug)]
pub enum AuthRejection {
    /// No valid credentials.
    Unauthenticated(AuthError),
    /// The caller is over its rate limit.
    RateLimited {
        /// How long until a call would be accepted.
        retry_after: std::time::Duration,
    },
    /// The caller already has its most unary calls in progress.
    TooManyCallsInProgress {
        /// How many one caller may have.
        limit: usize,
    },
    /// Valid credentials without the permission the method needs.
    MissingPermission {
        /// The permission's claim value, e.g. `retract.message`.
        permission: &'static str,
    },
    /// No permission rule covers the method.
    UnknownMethod {
        /// The method's path.
        method: String,
    },
}

/// Turns a rejection into the call's answer (the API layer's one error table).
pub type Reject = fn(AuthRejection) -> Status;

/// Verifies `authorization: Bearer <JWT>` on every method but health and reflection, checks
/// the method's permission rule and the caller's rate, and inserts the [`super::Caller`] into
/// the request extensions. The tenant a request names is checked by its handler, which knows
/// where the field is.
#[derive(Clone)]
pub struct AuthLayer {
    verifier: Arc<JwtVerifier>,
    limiter: Arc<RateLimiter>,
    concurrency: Arc<CallerConcurrency>,
    reject: Reject,
    require_client_certificate: bool,
}

impl AuthLayer {
    /// A layer verifying with `verifier`, limiting with `limiter`, answering refusals with
    /// `reject`.
    pub fn new(verifier: Arc<JwtVerifier>, limiter: Arc<RateLimiter>, reject: Reject) -> Self {
        Self {
            verifier,
            limiter,
            concurrency: Arc::new(CallerConcurrency::new(0)),
            reject,
            require_client_certificate: false,
        }
    }

    /// Limits how many unary calls each caller may have in progress (server streams are
    /// capped elsewhere); a call over it is refused at once.
    pub fn limiting_calls_in_progress(mut self, concurrency: Arc<CallerConcurrency>) -> Self {
        self.concurrency = concurrency;
        self
    }

    /// With mTLS: every call but the browser's consent callback must come over a connection
    /// that presented a client certificate (TLS verified it against the client CA). The TLS
    /// layer itself lets certificate-less connections in, so administrators' browsers can
    /// reach the callback on the same port.
    pub fn requiring_client_certificates(mut self, required: bool) -> Self {
        self.require_client_certificate = required;
        self
    }
}

/// Whether the connection presented a client certificate.
fn has_client_certificate<B>(request: &Request<B>) -> bool {
    use tonic::transport::server::{TcpConnectInfo, TlsConnectInfo};
    request
        .extensions()
        .get::<TlsConnectInfo<TcpConnectInfo>>()
        .and_then(TlsConnectInfo::peer_certs)
        .is_some_and(|certs| !certs.is_empty())
}

impl<S> Layer<S> for AuthLayer {
    type Service = AuthService<S>;

    fn layer(&self, inner: S) -> Self::Service {
        AuthService {
            inner,
            verifier: self.verifier.clone(),
            limiter: self.limiter.clone(),
            concurrency: self.concurrency.clone(),
            reject: self.reject,
            require_client_certificate: self.require_client_certificate,
        }
    }
}

/// The service made by [`AuthLayer`].
#[derive(Clone)]
pub struct AuthService<S> {
    inner: S,
    verifier: Arc<JwtVerifier>,
    limiter: Arc<RateLimiter>,
    concurrency: Arc<CallerConcurrency>,
    reject: Reject,
    require_client_certificate: bool,
}

impl<S> AuthService<S> {
    fn authorize<B>(&self, request: &Request<B>) -> Result<super::Caller, AuthRejection> {
        let path = request.uri().path();
        let header = request
            .headers()
            .get(http::header::AUTHORIZATION)
            .map(|v| v.as_bytes());
        let caller = self
            .verifier
            .verify_header(header)
            .map_err(AuthRejection::Unauthenticated)?;
        self.limiter
            .check(&caller.subject)
            .map_err(|retry_after| AuthRejection::RateLimited { retry_after })?;
        match permissions::rule_for(path) {
            None => Err(AuthRejection::UnknownMethod {
                method: path.to_owned(),
            }),
            Some(Rule::TenantMember) => Ok(caller),
            Some(Rule::Requires(permission)) if caller.has(permission) => Ok(caller),
            Some(Rule::Requires(permission)) => Err(AuthRejection::MissingPermission {
                permission: permission.as_str(),
            }),
        }
    }
}

impl<S, B, ResBody> Service<Request<B>> for AuthService<S>
where
    S: Service<Request<B>, Response = Response<ResBody>> + Clone + Send + 'static,
    S::Future: Send + 'static,
    B: Send + 'static,
    ResBody: Default + Send + 'static,
{
    type Response = S::Response;
    type Error = S::Error;
    type Future = BoxFuture<'static, Result<Self::Response, Self::Error>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, mut request: Request<B>) -> Self::Future {
        let path = request.uri().path();
        if self.require_client_certificate
            && !permissions::is_browser_page(path)
            && !has_client_certificate(&request)
        {
            let status = (self.reject)(AuthRejection::Unauthenticated(
                AuthError::MissingClientCertificate,
            ));
            return Box::pin(async move { Ok(status.into_http()) });
        }
        let mut slot = None;
        if !permissions::is_public(request.uri().path()) {
            let authorized = self.authorize(&request).and_then(|caller| {
                if permissions::is_server_stream(request.uri().path()) {
                    return Ok(caller);
                }
                slot = self.concurrency.try_enter(&caller.subject);
                match slot {
                    Some(_) => Ok(caller),
                    None => Err(AuthRejection::TooManyCallsInProgress {
                        limit: self.concurrency.limit(),
                    }),
                }
            });
            match authorized {
                Ok(caller) => {
                    request.extensions_mut().insert(caller);
                }
                Err(err) => {
                    let status = (self.reject)(err);
                    return Box::pin(async move { Ok(status.into_http()) });
                }
            }
        }
        // The clone that was polled ready serves this call; the fresh clone waits for the next.
        let clone = self.inner.clone();
        let mut ready = std::mem::replace(&mut self.inner, clone);
        Box::pin(async move {
            // Held until the call has answered.
            let _slot = slot;
            ready.call(request).await
        })
    }
}
