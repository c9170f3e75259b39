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
    AuthError, JwtVerifier, RateLimiter,
    permissions::{self, Rule},
};
use crate::api::ApiError;

/// Verifies `authorization: Bearer <JWT>` on every method but health and reflection, checks
/// the method's permission rule and the caller's rate, and inserts the [`super::Caller`] into
/// the request extensions. The tenant a request names is checked by its handler, which knows
/// where the field is.
#[derive(Clone)]
pub struct AuthLayer {
    verifier: Arc<JwtVerifier>,
    limiter: Arc<RateLimiter>,
}

impl AuthLayer {
    /// A layer verifying with `verifier` and limiting with `limiter`.
    pub fn new(verifier: Arc<JwtVerifier>, limiter: Arc<RateLimiter>) -> Self {
        Self { verifier, limiter }
    }
}

impl<S> Layer<S> for AuthLayer {
    type Service = AuthService<S>;

    fn layer(&self, inner: S) -> Self::Service {
        AuthService {
            inner,
            verifier: self.verifier.clone(),
            limiter: self.limiter.clone(),
        }
    }
}

/// The service made by [`AuthLayer`].
#[derive(Clone)]
pub struct AuthService<S> {
    inner: S,
    verifier: Arc<JwtVerifier>,
    limiter: Arc<RateLimiter>,
}

impl<S> AuthService<S> {
    fn authorize<B>(&self, request: &Request<B>) -> Result<super::Caller, ApiError> {
        let path = request.uri().path();
        let header = request
            .headers()
            .get(http::header::AUTHORIZATION)
            .map(|v| v.as_bytes());
        let caller = self
            .verifier
            .verify_header(header)
            .map_err(ApiError::Unauthenticated)?;
        self.limiter
            .check(&caller.subject)
            .map_err(|retry_after| ApiError::RateLimited { retry_after })?;
        match permissions::rule_for(path) {
            None => Err(ApiError::PermissionDenied {
                reason: "UNKNOWN_METHOD",
                message: format!("no permission rule covers {path}"),
            }),
            Some(Rule::TenantMember) => Ok(caller),
            Some(Rule::Requires(permission)) if caller.has(permission) => Ok(caller),
            Some(Rule::Requires(permission)) => Err(ApiError::PermissionDenied {
                reason: "MISSING_PERMISSION",
                message: format!(
                    "this call requires the `{}` permission",
                    permission.as_str()
                ),
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
        if !permissions::is_public(request.uri().path()) {
            match self.authorize(&request) {
                Ok(caller) => {
                    request.extensions_mut().insert(caller);
                }
                Err(err) => {
                    let status = Status::from(err);
                    return Box::pin(async move { Ok(status.into_http()) });
                }
            }
        }
        // The clone that was polled ready serves this call; the fresh clone waits for the next.
        let clone = self.inner.clone();
        let mut ready = std::mem::replace(&mut self.inner, clone);
        Box::pin(ready.call(request))
    }
}

impl From<AuthError> for ApiError {
    fn from(err: AuthError) -> Self {
        Self::Unauthenticated(err)
    }
}
