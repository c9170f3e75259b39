//! `/{tenant}/oauth2/v2.0/authorize` and `/{tenant}/v2.0/adminconsent`.
//!
//! There is no browser: the configured [`SignIn`] decides what the "user" does. Problems the
//! real endpoint shows on its own page (unknown app, unregistered redirect URI, unknown tenant)
//! answer 400 with an HTML page; everything else redirects back with `error`.

use std::collections::HashMap;

use axum::extract::{Path, RawQuery};
use axum::response::{Html, IntoResponse, Response};
use http::{StatusCode, header};
use url::Url;

use super::IdentityCx;
use super::MULTI_TENANT;
use super::grants::AuthCode;
use crate::settings::{Endpoint, SignIn};
use crate::state::UserRecord;

/// Graph's resource prefixes in scopes.
const GRAPH_RESOURCES: [&str; 2] = [
    "https://graph.microsoft.com/",
    "00000003-0000-0000-c000-000000000000/",
];
/// OpenID Connect scopes, which name no resource.
const OIDC_SCOPES: [&str; 4] = ["openid", "profile", "email", "offline_access"];

pub fn is_oidc_scope(scope: &str) -> bool {
    OIDC_SCOPES.iter().any(|s| s.eq_ignore_ascii_case(scope))
}

/// Whether `scope` names Graph (`User.Read` without a resource means Graph too).
pub fn is_graph_scope(scope: &str) -> bool {
    !is_oidc_scope(scope)
        && (GRAPH_RESOURCES
            .iter()
            .any(|r| scope.to_ascii_lowercase().starts_with(r))
            || !scope.contains('/'))
}

pub fn is_graph_default(scope: &str) -> bool {
    is_graph_scope(scope) && scope.to_ascii_lowercase().ends_with("/.default")
}

/// AADSTS70011 when `.default` is mixed with other Graph scopes.
pub fn check_scope_mix(scopes: &[String], raw: &str) -> Result<(), String> {
    let has_default = scopes.iter().any(|s| is_graph_default(s));
    let has_other = scopes
        .iter()
        .any(|s| is_graph_scope(s) && !is_graph_default(s));
    if has_default && has_other {
        return Err(format!(
            "AADSTS70011: The provided request must include a 'scope' input parameter. The provided value for the input parameter 'scope' is not valid. The scope {raw} is not valid. .default scope can't be combined with resource-specific scopes."
        ));
    }
    Ok(())
}

fn query_map(raw: Option<&str>) -> HashMap<String, String> {
    url::form_urlencoded::parse(raw.unwrap_or_default().as_bytes())
        .into_owned()
        .collect()
}

fn error_page(code: u32, message: &str) -> Response {
    let body = format!(
        "<!DOCTYPE html><html><head><title>Sign in to your account</title></head><body><div id=\"error\">AADSTS{code}: {message}</div></body></html>"
    );
    (StatusCode::BAD_REQUEST, Html(body)).into_response()
}

fn page_err(code: u32, message: &str) -> Box<Response> {
    Box::new(error_page(code, message))
}

fn redirect(redirect_uri: &Url, params: &[(&str, &str)]) -> Response {
    let mut url = redirect_uri.clone();
    url.query_pairs_mut()
        .extend_pairs(params.iter().filter(|(_, v)| !v.is_empty()));
    (StatusCode::FOUND, [(header::LOCATION, url.to_string())]).into_response()
}

/// The part both endpoints share: the app, the redirect URI and the tenant of the path.
struct Checked {
    client_id: String,
    redirect_uri: Url,
    /// `None` for `common` / `organizations`.
    tenant_id: Option<String>,
}

fn check_request(
    cx: &IdentityCx,
    tenant: &str,
    query: &HashMap<String, String>,
) -> Result<Checked, Box<Response>> {
    let Some(client_id) = query.get("client_id") else {
        return Err(page_err(
            900144,
            "The request body must contain the following parameter: 'client_id'.",
        ));
    };
    let world = cx.sim.world.read();
    let Some(app) = world.directory.app(client_id) else {
        return Err(page_err(
            700016,
            &format!(
                "Application with identifier '{client_id}' was not found in the directory '{tenant}'."
            ),
        ));
    };
    let Some(redirect_text) = query.get("redirect_uri") else {
        return Err(page_err(
            900144,
            "The request body must contain the following parameter: 'redirect_uri'.",
        ));
    };
    let registered =
        app.redirect_uris.is_empty() || app.redirect_uris.iter().any(|r| r == redirect_text);
    let Ok(redirect_uri) = Url::parse(redirect_text) else {
        return Err(page_err(
            50011,
            &format!(
                "The redirect URI '{redirect_text}' specified in the request does not match the redirect URIs configured for the application '{client_id}'."
            ),
        ));
    };
    if !registered {
        return Err(page_err(
            50011,
            &format!(
                "The redirect URI '{redirect_text}' specified in the request does not match the redirect URIs configured for the application '{client_id}'."
            ),
        ));
    }
    let tenant_id = if MULTI_TENANT.iter().any(|t| t.eq_ignore_ascii_case(tenant)) {
        None
    } else {
        match world.directory.tenant(tenant) {
            Some(t) => Some(t.id.clone()),
            None => {
                return Err(page_err(
                    90002,
                    &format!(
                        "Tenant '{tenant}' not found. Check to make sure you have the correct tenant ID and are signing into the correct cloud."
                    ),
                ));
            }
        }
    };
    Ok(Checked {
        client_id: client_id.clone(),
        redirect_uri,
        tenant_id,
    })
}

/// What the configured sign-in does: a user, or an `(error, description)` to redirect with.
fn sign_in(cx: &IdentityCx, tenant_id: Option<&str>) -> Result<UserRecord, (String, String)> {
    let behaviour = cx.sim.settings.read().sign_in.clone();
    match behaviour {
        SignIn::Decline => Err((
            "access_denied".into(),
            "AADSTS65004: User declined to consent to access the app.".into(),
        )),
        SignIn::Error { error, description } => Err((error, description)),
        SignIn::Approve { user } => {
            let world = cx.sim.world.read();
            let Some(record) = world.directory.user_by_any(&user) else {
                return Err((
                    "invalid_request".into(),
                    format!(
                        "AADSTS50034: The user account {user} does not exist in the directory."
                    ),
                ));
            };
            if let Some(tenant_id) = tenant_id
                && !record.tenant_id.eq_ignore_ascii_case(tenant_id)
            {
                return Err((
                    "invalid_request".into(),
                    format!(
                        "AADSTS50020: User account '{user}' from identity provider does not exist in tenant '{tenant_id}' and cannot access the application in that tenant."
                    ),
                ));
            }
            Ok(record.clone())
        }
    }
}

fn record_consent(cx: &IdentityCx, tenant_id: &str, client_id: &str) {
    if let Some(tenant) = cx.sim.world.write().directory.tenant_mut(tenant_id) {
        tenant.consents.insert(client_id.to_owned());
    }
}

/// `GET /{tenant}/oauth2/v2.0/authorize` (authorization code flow, optionally with PKCE).
pub async fn authorize(
    cx: IdentityCx,
    Path(tenant): Path<String>,
    RawQuery(raw): RawQuery,
) -> Response {
    let query = query_map(raw.as_deref());
    cx.note(
        Endpoint::Authorize,
        &tenant,
        query.get("client_id").map(String::as_str),
    );
    if let Err(response) = cx.inject(Endpoint::Authorize).await {
        return response;
    }
    let checked = match check_request(&cx, &tenant, &query) {
        Ok(checked) => checked,
        Err(page) => return *page,
    };
    let state = query.get("state").cloned().unwrap_or_default();
    let fail = |error: &str, description: &str| {
        redirect(
            &checked.redirect_uri,
            &[
                ("error", error),
                ("error_description", description),
                ("state", &state),
            ],
        )
    };
    if query.get("response_type").map(String::as_str) != Some("code") {
        return fail(
            "unsupported_response_type",
            "AADSTS700054: response_type 'code' is expected by this simulator.",
        );
    }
    let raw_scope = query.get("scope").cloned().unwrap_or_default();
    let scopes: Vec<String> = raw_scope.split_whitespace().map(str::to_owned).collect();
    if scopes.is_empty() {
        return fail(
            "invalid_request",
            "AADSTS900144: The request body must contain the following parameter: 'scope'.",
        );
    }
    if let Err(description) = check_scope_mix(&scopes, &raw_scope) {
        return fail("invalid_scope", &description);
    }
    let challenge = match (
        query.get("code_challenge"),
        query.get("code_challenge_method"),
    ) {
        (None, _) => None,
        (Some(c), method) => {
            let method = method.cloned().unwrap_or_else(|| "plain".to_owned());
            if method != "S256" && method != "plain" {
                return fail(
                    "invalid_request",
                    "AADSTS501491: Invalid code_challenge_method.",
                );
            }
            Some((c.clone(), method))
        }
    };
    let user = match sign_in(&cx, checked.tenant_id.as_deref()) {
        Ok(user) => user,
        Err((error, description)) => return fail(&error, &description),
    };
    let prompt = query.get("prompt").map(String::as_str).unwrap_or_default();
    let wants_org_consent = prompt == "consent"
        || prompt == "admin_consent"
        || scopes.iter().any(|s| is_graph_default(s));
    if user.admin && wants_org_consent {
        record_consent(&cx, &user.tenant_id, &checked.client_id);
    }
    let (code, session_state) = cx
        .sim
        .chaos
        .with_rng(|rng| (crate::ids::opaque_token(rng), crate::ids::opaque_token(rng)));
    let code_lifetime = (cx.sim.settings.read().code_lifetime_ms / 1000) as i64;
    cx.sim.grants.lock().codes.insert(
        code.clone(),
        AuthCode {
            client_id: checked.client_id.clone(),
            redirect_uri: query.get("redirect_uri").cloned().unwrap_or_default(),
            challenge,
            user_id: user.id.clone(),
            tenant_id: user.tenant_id,
            scopes,
            nonce: query.get("nonce").cloned(),
            expires_unix: cx.sim.now_unix().saturating_add(code_lifetime),
            redeemed: false,
        },
    );
    redirect(
        &checked.redirect_uri,
        &[
            ("code", &code),
            ("state", &state),
            ("session_state", &session_state),
        ],
    )
}

/// `GET /{tenant}/v2.0/adminconsent`: an administrator grants the app's application permissions
/// for the whole tenant.
pub async fn admin_consent(
    cx: IdentityCx,
    Path(tenant): Path<String>,
    RawQuery(raw): RawQuery,
) -> Response {
    let query = query_map(raw.as_deref());
    cx.note(
        Endpoint::AdminConsent,
        &tenant,
        query.get("client_id").map(String::as_str),
    );
    if let Err(response) = cx.inject(Endpoint::AdminConsent).await {
        return response;
    }
    let checked = match check_request(&cx, &tenant, &query) {
        Ok(checked) => checked,
        Err(page) => return *page,
    };
    let state = query.get("state").cloned().unwrap_or_default();
    let scope = query
        .get("scope")
        .cloned()
        .unwrap_or_else(|| "https://graph.microsoft.com/.default".to_owned());
    let user = match sign_in(&cx, checked.tenant_id.as_deref()) {
        Ok(user) => user,
        Err((error, description)) => {
            return redirect(
                &checked.redirect_uri,
                &[
                    ("error", &error),
                    ("error_description", &description),
                    ("state", &state),
                ],
            );
        }
    };
    if !user.admin {
        return redirect(
            &checked.redirect_uri,
            &[
                ("error", "consent_required"),
                (
                    "error_description",
                    "AADSTS90094: The grant requires admin permission.",
                ),
                ("state", &state),
            ],
        );
    }
    record_consent(&cx, &user.tenant_id, &checked.client_id);
    redirect(
        &checked.redirect_uri,
        &[
            ("admin_consent", "True"),
            ("tenant", &user.tenant_id),
            ("scope", &scope),
            ("state", &state),
        ],
    )
}
