//! Per-tenant OpenID Connect discovery document and the signing keys (JWKS).

use axum::Json;
use axum::extract::Path;
use axum::response::{IntoResponse, Response};
use serde_json::json;

use super::errors::AadError;
use super::tokens::{SIGNING_KEY_EXPONENT, SIGNING_KEY_ID, SIGNING_KEY_MODULUS};
use super::{IdentityCx, MULTI_TENANT};
use crate::settings::Endpoint;

/// The tenant segment endpoints use, and the issuer: the tenant GUID for a single tenant, the
/// `{tenantid}` template for `common` / `organizations`.
fn resolve(cx: &IdentityCx, tenant: &str) -> Result<(String, String), AadError> {
    let login = cx.sim.login_base();
    if MULTI_TENANT.iter().any(|t| t.eq_ignore_ascii_case(tenant)) {
        return Ok((
            tenant.to_ascii_lowercase(),
            format!("{login}/{{tenantid}}/v2.0"),
        ));
    }
    let world = cx.sim.world.read();
    let record = world
        .directory
        .tenant(tenant)
        .ok_or_else(|| AadError::tenant_not_found(tenant))?;
    Ok((record.id.clone(), format!("{login}/{}/v2.0", record.id)))
}

pub async fn openid_configuration(cx: IdentityCx, Path(tenant): Path<String>) -> Response {
    cx.note(Endpoint::Discovery, &tenant, None);
    if let Err(response) = cx.inject(Endpoint::Discovery).await {
        return response;
    }
    let (segment, issuer) = match resolve(&cx, &tenant) {
        Ok(resolved) => resolved,
        Err(error) => return error.into_response(),
    };
    let login = cx.sim.login_base();
    let graph_host = cx.sim.graph_base().trim_start_matches("http://").to_owned();
    Json(json!({
        "token_endpoint": format!("{login}/{segment}/oauth2/v2.0/token"),
        "token_endpoint_auth_methods_supported": ["client_secret_post", "private_key_jwt", "client_secret_basic"],
        "jwks_uri": format!("{login}/{segment}/discovery/v2.0/keys"),
        "response_modes_supported": ["query", "fragment", "form_post"],
        "subject_types_supported": ["pairwise"],
        "id_token_signing_alg_values_supported": ["RS256"],
        "response_types_supported": ["code", "id_token", "code id_token", "id_token token"],
        "scopes_supported": ["openid", "profile", "email", "offline_access"],
        "issuer": issuer,
        "request_uri_parameter_supported": false,
        "authorization_endpoint": format!("{login}/{segment}/oauth2/v2.0/authorize"),
        "end_session_endpoint": format!("{login}/{segment}/oauth2/v2.0/logout"),
        "http_logout_supported": true,
        "frontchannel_logout_supported": true,
        "claims_supported": ["sub", "iss", "aud", "exp", "iat", "nonce", "preferred_username", "name", "tid", "ver", "oid"],
        "tenant_region_scope": "EU",
        "cloud_instance_name": "microsoftonline.com",
        "msgraph_host": graph_host,
    }))
    .into_response()
}

pub async fn keys(cx: IdentityCx, Path(tenant): Path<String>) -> Response {
    cx.note(Endpoint::Keys, &tenant, None);
    if let Err(response) = cx.inject(Endpoint::Keys).await {
        return response;
    }
    let issuer = match resolve(&cx, &tenant) {
        Ok((_, issuer)) => issuer,
        Err(error) => return error.into_response(),
    };
    Json(json!({
        "keys": [{
            "kty": "RSA",
            "use": "sig",
            "alg": "RS256",
            "kid": SIGNING_KEY_ID,
            "n": SIGNING_KEY_MODULUS,
            "e": SIGNING_KEY_EXPONENT,
            "issuer": issuer,
        }]
    }))
    .into_response()
}
