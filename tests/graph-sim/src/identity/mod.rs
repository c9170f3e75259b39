//! The Microsoft identity platform (v2.0 endpoints): authorize with PKCE, admin consent, the
//! token endpoint for `authorization_code`, `refresh_token` and `client_credentials`, OpenID
//! discovery and signing keys.

pub mod authorize;
pub mod discovery;
pub mod errors;
pub mod grants;
pub mod issue;
pub mod token;
pub mod tokens;

use std::convert::Infallible;
use std::sync::Arc;

use axum::Router;
use axum::extract::FromRequestParts;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use http::StatusCode;
use http::request::Parts;

use crate::core::Sim;
use crate::middleware::observe_identity;
use crate::pipeline::{delay_and_draw, drop_connection};
use crate::record::{CallSlot, Fault};
use crate::server::ConnKill;
use crate::settings::Endpoint;
use errors::AadError;

/// Tenant path segments that name no single tenant.
pub const MULTI_TENANT: [&str; 3] = ["common", "organizations", "consumers"];

/// One identity-platform call.
pub struct IdentityCx {
    pub sim: Arc<Sim>,
    slot: CallSlot,
    kill: Option<ConnKill>,
}

impl FromRequestParts<Arc<Sim>> for IdentityCx {
    type Rejection = Infallible;

    async fn from_request_parts(parts: &mut Parts, sim: &Arc<Sim>) -> Result<Self, Infallible> {
        Ok(IdentityCx {
            sim: sim.clone(),
            slot: parts
                .extensions
                .get::<CallSlot>()
                .cloned()
                .unwrap_or_default(),
            kill: parts.extensions.get::<ConnKill>().cloned(),
        })
    }
}

impl IdentityCx {
    /// Notes what the request log should say about this call.
    pub fn note(&self, endpoint: Endpoint, tenant: &str, client_id: Option<&str>) {
        let mut info = self.slot.lock();
        info.endpoint = Some(endpoint);
        info.tenant = Some(tenant.to_owned());
        info.app = client_id.map(str::to_owned);
    }

    /// Injected latency and faults, answered in the identity platform's shape.
    pub async fn inject(&self, endpoint: Endpoint) -> Result<(), Response> {
        let Some(fault) = delay_and_draw(&self.sim, endpoint, &self.slot).await else {
            return Ok(());
        };
        let unavailable = |status| {
            AadError::new(
                status,
                "temporarily_unavailable",
                50196,
                "The server is temporarily unavailable.",
            )
        };
        // Like Graph, the identity platform names its wait on 429 and 503.
        let retry_after = self.sim.settings.read().limits.retry_after_secs;
        let with_retry_after = |error: AadError| {
            let mut response = error.into_response();
            if let Ok(value) = http::HeaderValue::from_str(&retry_after.to_string()) {
                response
                    .headers_mut()
                    .insert(http::header::RETRY_AFTER, value);
            }
            response
        };
        match fault {
            Fault::DropConnection => {
                drop_connection(self.kill.as_ref()).await;
                Err(AadError::new(
                    StatusCode::INTERNAL_SERVER_ERROR,
                    "server_error",
                    90033,
                    "A transient error has occurred.",
                )
                .into_response())
            }
            Fault::Error500 => Err(AadError::new(
                StatusCode::INTERNAL_SERVER_ERROR,
                "server_error",
                90033,
                "A transient error has occurred.",
            )
            .into_response()),
            Fault::Error502 => Err(unavailable(StatusCode::BAD_GATEWAY).into_response()),
            Fault::Error503 => Err(with_retry_after(unavailable(
                StatusCode::SERVICE_UNAVAILABLE,
            ))),
            Fault::Error504 => Err(unavailable(StatusCode::GATEWAY_TIMEOUT).into_response()),
            Fault::Throttle429 | Fault::Storm => Err(with_retry_after(AadError::new(
                StatusCode::TOO_MANY_REQUESTS,
                "temporarily_unavailable",
                50196,
                "The server temporarily throttled the request.",
            ))),
            Fault::SlowBody => Ok(()),
        }
    }
}

/// The identity-platform routes, wrapped in the request log.
pub fn router(sim: Arc<Sim>) -> Router {
    Router::new()
        .route("/{tenant}/oauth2/v2.0/authorize", get(authorize::authorize))
        .route("/{tenant}/v2.0/adminconsent", get(authorize::admin_consent))
        .route("/{tenant}/oauth2/v2.0/token", post(token::token))
        .route(
            "/{tenant}/v2.0/.well-known/openid-configuration",
            get(discovery::openid_configuration),
        )
        .route("/{tenant}/discovery/v2.0/keys", get(discovery::keys))
        .layer(axum::middleware::from_fn_with_state(
            sim.clone(),
            observe_identity,
        ))
        .with_state(sim)
}
