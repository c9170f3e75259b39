//! The HTTP GET endpoint Microsoft redirects the administrator's browser to, on the server's
//! own port. It carries no bearer token: the single-use `state` is its authentication. It has
//! its own modest rate limit per client address, and answers a small page that holds no code,
//! token or state.

use std::{
    convert::Infallible,
    sync::Arc,
    task::{Context, Poll},
};

use axum::{
    extract::{Query, Request, State},
    http::StatusCode,
    response::{Html, IntoResponse, Response},
    routing::get,
};
use futures::future::BoxFuture;
use serde::Deserialize;
use tonic::{server::NamedService, transport::server::TcpConnectInfo};
use tower::{Service, ServiceExt as _};

use super::{Consent, ConsentError};
use crate::{
    auth::RateLimiter,
    domain::{Grant, GrantState, RetractStatus},
};

/// The redirect's query parameters. Others Microsoft may add (`session_state`, `tenant`,
/// `admin_consent`, `scope`) are ignored: in particular a `tenant` parameter is never trusted.
#[derive(Clone, Default, Deserialize)]
pub struct CompletionParams {
    /// The single-use state.
    #[serde(default)]
    pub state: String,
    /// The authorization code, on success.
    pub code: Option<String>,
    /// Microsoft's error code, on failure.
    pub error: Option<String>,
    /// Microsoft's description of the failure.
    pub error_description: Option<String>,
}

/// Redacted: the state and the code complete the consent for whoever holds them.
impl std::fmt::Debug for CompletionParams {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CompletionParams")
            .field("state", &"[REDACTED]")
            .field("code", &self.code.as_ref().map(|_| "[REDACTED]"))
            .field("error", &self.error)
            .field("error_description", &self.error_description)
            .finish()
    }
}

impl CompletionParams {
    /// Microsoft's free text made storable and bounded: no control characters (PostgreSQL
    /// refuses NUL), at most 1,000 characters each.
    pub fn sanitized(&self) -> Self {
        let clean = |v: &Option<String>| v.as_deref().map(|t| crate::text::printable(t, 1000));
        Self {
            state: self.state.clone(),
            code: self.code.clone(),
            error: clean(&self.error),
            error_description: clean(&self.error_description),
        }
    }
}

#[derive(Clone)]
struct CallbackState {
    consent: Consent,
    limiter: Arc<RateLimiter>,
}

/// `GET /consent/callback`, as a service tonic's router mounts under `/consent/`.
#[derive(Clone)]
pub struct CallbackService {
    router: axum::Router,
}

impl CallbackService {
    /// The path the redirect URI must name.
    pub const PATH: &'static str = "/consent/callback";

    /// The endpoint completing consents with `consent`, limited by `limiter`.
    pub fn new(consent: Consent, limiter: Arc<RateLimiter>) -> Self {
        let router = axum::Router::new()
            .route(Self::PATH, get(callback))
            .with_state(CallbackState { consent, limiter });
        Self { router }
    }
}

impl NamedService for CallbackService {
    const NAME: &'static str = "consent";
}

impl Service<http::Request<tonic::body::Body>> for CallbackService {
    type Response = Response;
    type Error = Infallible;
    type Future = BoxFuture<'static, Result<Response, Infallible>>;

    fn poll_ready(&mut self, _cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, request: http::Request<tonic::body::Body>) -> Self::Future {
        let router = self.router.clone();
        Box::pin(async move { router.oneshot(request.map(axum::body::Body::new)).await })
    }
}

async fn callback(State(state): State<CallbackState>, request: Request) -> Response {
    let client = request
        .extensions()
        .get::<TcpConnectInfo>()
        .and_then(TcpConnectInfo::remote_addr)
        .map_or_else(|| "unknown".to_owned(), |a| a.ip().to_string());
    if state
        .limiter
        .check(&format!("consent-callback {client}"))
        .is_err()
    {
        return page(
            StatusCode::TOO_MANY_REQUESTS,
            "Too many attempts",
            "<p>Please wait a moment and try again.</p>",
        );
    }
    let Ok(Query(params)) = Query::<CompletionParams>::try_from_uri(request.uri()) else {
        return page(
            StatusCode::BAD_REQUEST,
            "Not a consent answer",
            "<p>This address only accepts Microsoft's answer to a consent request.</p>",
        );
    };
    if params.state.is_empty() || params.state.len() > 512 {
        return page(
            StatusCode::BAD_REQUEST,
            "Not a consent answer",
            "<p>This address only accepts Microsoft's answer to a consent request.</p>",
        );
    }
    match state.consent.complete(&params).await {
        Ok(grant) => outcome_page(&grant),
        Err(ConsentError::UnknownState) => page(
            StatusCode::BAD_REQUEST,
            "This consent link is no longer valid",
            "<p>It is unknown or was already used. Press <b>Grant Permissions</b> again to start over.</p>",
        ),
        Err(ConsentError::Expired(_)) => page(
            StatusCode::GONE,
            "This consent link expired",
            "<p>Press <b>Grant Permissions</b> again to start over.</p>",
        ),
        // Details (tenant ids) stay in GetGrant and the audit trail, not on a page anyone
        // holding a forwarded link can open.
        Err(ConsentError::RelinkRefused { .. }) => page(
            StatusCode::CONFLICT,
            "Permissions were not granted",
            "<p>This account is already linked to another Microsoft 365 organisation. Ask your Email Security administrator to start the grant again with relinking allowed.</p>",
        ),
        Err(err) => {
            tracing::error!(error = %err, "consent callback failed");
            page(
                StatusCode::SERVICE_UNAVAILABLE,
                "Something went wrong",
                "<p>The grant could not be completed. Please try again in a few minutes.</p>",
            )
        }
    }
}

fn outcome_page(grant: &Grant) -> Response {
    let granted: Vec<_> = grant
        .domain_outcomes
        .iter()
        .filter(|o| o.retract_status() == RetractStatus::Granted)
        .map(|o| format!("<li>{}</li>", escape(&o.domain)))
        .collect();
    let failed: Vec<_> = grant
        .domain_outcomes
        .iter()
        .filter(|o| o.retract_status() != RetractStatus::Granted)
        .map(|o| {
            format!(
                "<li>{}: {}</li>",
                escape(&o.domain),
                escape(o.reason.as_deref().unwrap_or("failed"))
            )
        })
        .collect();
    let title = match grant.state {
        GrantState::Succeeded => "Permissions granted",
        GrantState::PartiallySucceeded => "Permissions granted for some domains",
        _ => "Permissions were not granted",
    };
    let mut body = String::new();
    if let Some(description) = grant
        .error_description
        .as_deref()
        .filter(|_| granted.is_empty())
    {
        body.push_str(&format!("<p>{}</p>", escape(description)));
    }
    if !granted.is_empty() {
        body.push_str(&format!("<h2>Granted</h2><ul>{}</ul>", granted.concat()));
    }
    if !failed.is_empty() {
        body.push_str(&format!("<h2>Failed</h2><ul>{}</ul>", failed.concat()));
    }
    body.push_str("<p>You can close this tab and return to the Domains list.</p>");
    page(StatusCode::OK, title, &body)
}

fn page(status: StatusCode, title: &str, body: &str) -> Response {
    let html = format!(
        "<!doctype html><html lang=\"en\"><head><meta charset=\"utf-8\"><title>{title}</title>\
         <meta name=\"referrer\" content=\"no-referrer\"></head>\
         <body style=\"font-family:sans-serif;max-width:40em;margin:3em auto\"><h1>{title}</h1>{body}</body></html>",
        title = escape(title)
    );
    let mut response = (status, Html(html)).into_response();
    let headers = response.headers_mut();
    headers.insert(
        http::header::CACHE_CONTROL,
        http::HeaderValue::from_static("no-store"),
    );
    headers.insert(
        http::header::REFERRER_POLICY,
        http::HeaderValue::from_static("no-referrer"),
    );
    headers.insert(
        http::header::CONTENT_SECURITY_POLICY,
        http::HeaderValue::from_static("default-src 'none'; style-src 'unsafe-inline'"),
    );
    response
}

/// HTML-escapes text (domain names and Microsoft's descriptions are not ours to trust).
fn escape(text: &str) -> String {
    text.chars()
        .map(|c| match c {
            '&' => "&amp;".to_owned(),
            '<' => "&lt;".to_owned(),
            '>' => "&gt;".to_owned(),
            '"' => "&quot;".to_owned(),
            '\'' => "&#39;".to_owned(),
            c => c.to_string(),
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::escape;

    #[test]
    fn the_state_and_the_code_do_not_appear_in_debug_output() {
        let params = super::CompletionParams {
            state: "state-secret".into(),
            code: Some("code-secret".into()),
            error: Some("access_denied".into()),
            error_description: None,
        };
        let printed = format!("{params:?}");
        assert!(
            !printed.contains("state-secret") && !printed.contains("code-secret"),
            "{printed}"
        );
        assert!(printed.contains("access_denied"), "{printed}");
    }

    #[test]
    fn microsofts_text_cannot_inject_markup() {
        assert_eq!(
            escape("<script>alert('x')</script> & \"q\""),
            "&lt;script&gt;alert(&#39;x&#39;)&lt;/script&gt; &amp; &quot;q&quot;"
        );
    }
}
