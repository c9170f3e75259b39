//! `POST /{tenant}/oauth2/v2.0/token` for `client_credentials`, `authorization_code` (with PKCE)
//! and `refresh_token`. Client authentication by a secret (form fields or HTTP Basic, expiring
//! as the app registration says) or by a certificate: a `client_assertion` JWT whose
//! `x5t#S256` names one of the app's certificates and whose RS256/PS256 signature that
//! certificate's public key verifies, with `aud` the token endpoint, `iss` = `sub` = the
//! client id and `nbf`/`exp` around the simulator's clock (Microsoft's certificate-credentials
//! rules and their AADSTS codes).

use std::collections::HashMap;

use axum::body::Bytes;
use axum::extract::Path;
use axum::response::{IntoResponse, Response};
use base64::Engine;
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use http::{HeaderMap, StatusCode, header};
use serde_json::{Value, json};
use sha2::{Digest, Sha256};

use super::authorize::{is_graph_default, is_graph_scope, is_oidc_scope};
use super::errors::AadError;
use super::grants::RefreshGrant;
use super::{IdentityCx, MULTI_TENANT, issue};
use crate::seed::App;
use crate::settings::Endpoint;
use crate::state::UserRecord;

/// The client id and (maybe) secret or client assertion a request authenticates with.
struct ClientAuth {
    client_id: String,
    secret: Option<String>,
    /// `client_assertion`, when `client_assertion_type` is the JWT bearer type.
    assertion: Option<String>,
}

const JWT_BEARER: &str = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer";

fn missing(parameter: &str) -> AadError {
    AadError::new(
        StatusCode::BAD_REQUEST,
        "invalid_request",
        900144,
        format!("The request body must contain the following parameter: '{parameter}'."),
    )
}

fn client_auth(
    headers: &HeaderMap,
    form: &HashMap<String, String>,
) -> Result<ClientAuth, AadError> {
    let basic = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split_once(' '))
        .filter(|(scheme, _)| scheme.eq_ignore_ascii_case("basic"))
        .map(|(_, encoded)| encoded.trim().to_owned());
    if let Some(encoded) = basic {
        let invalid = || {
            AadError::new(
                StatusCode::UNAUTHORIZED,
                "invalid_client",
                7000216,
                "The Authorization header is malformed.",
            )
        };
        let decoded = STANDARD.decode(encoded).map_err(|_| invalid())?;
        let text = String::from_utf8(decoded).map_err(|_| invalid())?;
        let (id, secret) = text.split_once(':').ok_or_else(invalid)?;
        let unescape = |s: &str| {
            url::form_urlencoded::parse(format!("v={s}").as_bytes())
                .next()
                .map(|(_, v)| v.into_owned())
        };
        return Ok(ClientAuth {
            client_id: unescape(id).unwrap_or_default(),
            secret: unescape(secret),
            assertion: None,
        });
    }
    let client_id = form
        .get("client_id")
        .cloned()
        .ok_or_else(|| missing("client_id"))?;
    let assertion = match form.get("client_assertion_type").map(String::as_str) {
        None => None,
        Some(JWT_BEARER) => Some(
            form.get("client_assertion")
                .cloned()
                .ok_or_else(|| missing("client_assertion"))?,
        ),
        Some(other) => {
            return Err(AadError::new(
                StatusCode::BAD_REQUEST,
                "invalid_request",
                50026,
                format!("The client_assertion_type '{other}' is not supported."),
            ));
        }
    };
    Ok(ClientAuth {
        client_id,
        secret: form.get("client_secret").cloned(),
        assertion,
    })
}

fn authenticate(
    cx: &IdentityCx,
    tenant: &str,
    app: &App,
    auth: &ClientAuth,
) -> Result<(), AadError> {
    if let Some(assertion) = &auth.assertion {
        return verify_assertion(cx, tenant, app, assertion);
    }
    match &auth.secret {
        None => Err(AadError::new(
            StatusCode::UNAUTHORIZED,
            "invalid_client",
            7000218,
            "The request body must contain the following parameter: 'client_assertion' or 'client_secret'.",
        )),
        Some(secret)
            if *secret == app.client_secret
                && app
                    .client_secret_expires_unix
                    .is_some_and(|at| cx.sim.now_unix() >= at) =>
        {
            Err(AadError::new(
                StatusCode::UNAUTHORIZED,
                "invalid_client",
                7000222,
                format!(
                    "The provided client secret keys for app '{}' are expired. Visit the Azure portal to create new keys for your app: https://aka.ms/NewClientSecret, or consider using certificate credentials for added security: https://aka.ms/certCreds.",
                    app.client_id
                ),
            ))
        }
        Some(secret) if *secret == app.client_secret => Ok(()),
        Some(_) => Err(AadError::new(
            StatusCode::UNAUTHORIZED,
            "invalid_client",
            7000215,
            format!(
                "Invalid client secret provided. Ensure the secret being sent in the request is the client secret value, not the client secret ID, for a secret added to app '{}'.",
                app.client_id
            ),
        )),
    }
}

#[derive(serde::Deserialize)]
struct AssertionClaims {
    iss: String,
    sub: String,
    #[serde(default)]
    jti: Option<String>,
    #[serde(default)]
    nbf: Option<i64>,
    exp: i64,
}

/// The DER of the first `CERTIFICATE` block of `pem`.
fn certificate_der(pem: &str) -> Option<Vec<u8>> {
    let start = pem.find("-----BEGIN CERTIFICATE-----")? + "-----BEGIN CERTIFICATE-----".len();
    let end = start + pem[start..].find("-----END CERTIFICATE-----")?;
    let body: String = pem[start..end].split_whitespace().collect();
    STANDARD.decode(body).ok()
}

/// A client assertion as Microsoft checks it: the key named by `x5t#S256` among the app's
/// certificates, the signature, then `aud`, `iss`/`sub`, `jti` and the validity window.
fn verify_assertion(
    cx: &IdentityCx,
    tenant: &str,
    app: &App,
    assertion: &str,
) -> Result<(), AadError> {
    let invalid_client = |code, description: String| {
        AadError::new(
            StatusCode::UNAUTHORIZED,
            "invalid_client",
            code,
            description,
        )
    };
    let header = jsonwebtoken::decode_header(assertion)
        .map_err(|_| invalid_client(50027, "JWT token is invalid or malformed.".to_owned()))?;
    let thumbprint = header.x5t_s256.unwrap_or_default();
    let key_not_found = || {
        invalid_client(
            700027,
            format!(
                "Client assertion contains an invalid signature. [Reason - The key was not found., Thumbprint of key used by client: '{thumbprint}', Please visit the Azure Portal, Graph Explorer or directly use MS Graph to see configured keys for app Id '{}'.]",
                app.client_id
            ),
        )
    };
    let certificate = app
        .certificates
        .iter()
        .find(|pem| {
            certificate_der(pem)
                .is_some_and(|der| URL_SAFE_NO_PAD.encode(Sha256::digest(&der)) == thumbprint)
        })
        .ok_or_else(key_not_found)?;
    let key = jsonwebtoken::DecodingKey::from_rsa_pem(certificate.as_bytes())
        .map_err(|_| key_not_found())?;
    let mut validation = jsonwebtoken::Validation::new(jsonwebtoken::Algorithm::RS256);
    validation.algorithms = vec![
        jsonwebtoken::Algorithm::RS256,
        jsonwebtoken::Algorithm::PS256,
    ];
    // Audience and time are checked below, on the simulator's clock, with Microsoft's codes.
    validation.validate_aud = false;
    validation.validate_exp = false;
    validation.required_spec_claims.clear();
    let claims = jsonwebtoken::decode::<AssertionClaims>(assertion, &key, &validation)
        .map_err(|e| match e.kind() {
            jsonwebtoken::errors::ErrorKind::InvalidSignature => invalid_client(
                700027,
                format!(
                    "Client assertion contains an invalid signature. [Reason - The provided signature value did not match the expected signature value., Thumbprint of key used by client: '{thumbprint}']"
                ),
            ),
            _ => invalid_client(50027, format!("JWT token is invalid or malformed: {e}.")),
        })?
        .claims;
    let audience = format!("{}/{tenant}/oauth2/v2.0/token", cx.sim.login_base());
    let raw: Value = assertion
        .split('.')
        .nth(1)
        .and_then(|p| URL_SAFE_NO_PAD.decode(p).ok())
        .and_then(|json| serde_json::from_slice(&json).ok())
        .unwrap_or_default();
    let audience_ok = match &raw["aud"] {
        Value::String(aud) => aud.eq_ignore_ascii_case(&audience),
        Value::Array(auds) => auds.iter().any(|a| {
            a.as_str()
                .is_some_and(|a| a.eq_ignore_ascii_case(&audience))
        }),
        _ => false,
    };
    if !audience_ok {
        return Err(invalid_client(
            700023,
            format!(
                "Client assertion audience claim does not match Realm issuer. Review the documentation at https://aka.ms/certCreds. Expected: '{audience}'."
            ),
        ));
    }
    if claims.iss != app.client_id || claims.sub != app.client_id {
        return Err(invalid_client(
            700021,
            "Client assertion application identifier doesn't match 'client_id' parameter. Review the documentation at https://aka.ms/certCreds.".to_owned(),
        ));
    }
    if claims.jti.as_deref().is_none_or(str::is_empty) {
        return Err(invalid_client(
            50027,
            "JWT token is invalid or malformed: the jti claim is missing.".to_owned(),
        ));
    }
    let now = cx.sim.now_unix();
    // Microsoft tolerates a few minutes of clock skew.
    let skew = 300;
    if claims.exp + skew < now || claims.nbf.is_some_and(|nbf| nbf - skew > now) {
        return Err(invalid_client(
            700024,
            "Client assertion is not within its valid time range. Review the documentation at https://aka.ms/certCreds.".to_owned(),
        ));
    }
    Ok(())
}

fn json_ok(body: &Value) -> Response {
    let mut response = (StatusCode::OK, body.to_string()).into_response();
    let headers = response.headers_mut();
    headers.insert(
        header::CONTENT_TYPE,
        http::HeaderValue::from_static("application/json; charset=utf-8"),
    );
    headers.insert(
        header::CACHE_CONTROL,
        http::HeaderValue::from_static("no-store, no-cache"),
    );
    response
}

pub async fn token(
    cx: IdentityCx,
    Path(tenant): Path<String>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let form: HashMap<String, String> = url::form_urlencoded::parse(&body).into_owned().collect();
    let auth = client_auth(&headers, &form);
    cx.note(
        Endpoint::Token,
        &tenant,
        auth.as_ref().ok().map(|a| a.client_id.as_str()),
    );
    if let Err(response) = cx.inject(Endpoint::Token).await {
        return response;
    }
    let result = match auth {
        Err(error) => Err(error),
        Ok(auth) => match form.get("grant_type").map(String::as_str) {
            Some("client_credentials") => client_credentials(&cx, &tenant, &form, &auth),
            Some("authorization_code") => authorization_code(&cx, &tenant, &form, &auth),
            Some("refresh_token") => refresh_token(&cx, &tenant, &form, &auth),
            Some(other) => Err(AadError::new(
                StatusCode::BAD_REQUEST,
                "unsupported_grant_type",
                70003,
                format!("The app requested an unsupported grant type '{other}'."),
            )),
            None => Err(missing("grant_type")),
        },
    };
    result.unwrap_or_else(IntoResponse::into_response)
}

fn client_credentials(
    cx: &IdentityCx,
    tenant: &str,
    form: &HashMap<String, String>,
    auth: &ClientAuth,
) -> Result<Response, AadError> {
    if MULTI_TENANT.iter().any(|t| t.eq_ignore_ascii_case(tenant)) {
        return Err(AadError::tenant_not_found(tenant));
    }
    let (tenant_id, app) = {
        let world = cx.sim.world.read();
        let record = world
            .directory
            .tenant(tenant)
            .ok_or_else(|| AadError::tenant_not_found(tenant))?;
        let app = world
            .directory
            .app(&auth.client_id)
            .ok_or_else(|| AadError::app_not_found(&auth.client_id, tenant))?;
        if !record.consents.contains(&auth.client_id) {
            return Err(AadError::app_not_found(&auth.client_id, tenant));
        }
        (record.id.clone(), app.clone())
    };
    authenticate(cx, tenant, &app, auth)?;
    let scope = form.get("scope").ok_or_else(|| missing("scope"))?;
    let scopes: Vec<&str> = scope.split_whitespace().collect();
    if scopes.len() != 1 || !is_graph_default(scopes[0]) {
        return Err(AadError::new(
            StatusCode::BAD_REQUEST,
            "invalid_scope",
            1002012,
            format!(
                "The provided value for scope {scope} is not valid. Client credential flows must have a scope value with /.default suffixed to the resource identifier (application ID URI)."
            ),
        ));
    }
    let lifetime = issue::lifetime_secs(&cx.sim);
    let token =
        issue::app_token(&cx.sim, &tenant_id, &app, lifetime).map_err(|e| signing_failed(&e))?;
    let announced = announced_expires_in(&cx.sim, lifetime);
    Ok(json_ok(&json!({
        "token_type": "Bearer",
        "expires_in": announced,
        "ext_expires_in": announced,
        "access_token": token,
    })))
}

/// The `expires_in` to announce: the real lifetime, or the configured misbehaviour.
fn announced_expires_in(sim: &crate::core::Sim, lifetime: i64) -> serde_json::Value {
    match sim.settings.read().token_expires_in_secs {
        Some(secs) => json!(secs),
        None => json!(lifetime),
    }
}

fn signing_failed(error: &super::tokens::SigningError) -> AadError {
    AadError::new(
        StatusCode::INTERNAL_SERVER_ERROR,
        "server_error",
        90033,
        error.to_string(),
    )
}

fn invalid_grant(code: u32, description: impl Into<String>) -> AadError {
    AadError::new(StatusCode::BAD_REQUEST, "invalid_grant", code, description)
}

fn verify_pkce(
    challenge: &Option<(String, String)>,
    verifier: Option<&String>,
) -> Result<(), AadError> {
    let Some((challenge, method)) = challenge else {
        return Ok(());
    };
    let verifier = verifier.ok_or_else(|| {
        invalid_grant(501481, "The Code_Verifier does not match the code_challenge supplied in the authorization request.")
    })?;
    let computed = if method == "S256" {
        URL_SAFE_NO_PAD.encode(Sha256::digest(verifier.as_bytes()))
    } else {
        verifier.clone()
    };
    if computed == *challenge {
        Ok(())
    } else {
        Err(invalid_grant(
            501481,
            "The Code_Verifier does not match the code_challenge supplied in the authorization request.",
        ))
    }
}

fn authorization_code(
    cx: &IdentityCx,
    tenant: &str,
    form: &HashMap<String, String>,
    auth: &ClientAuth,
) -> Result<Response, AadError> {
    let code_text = form.get("code").ok_or_else(|| missing("code"))?;
    let app = cx
        .sim
        .world
        .read()
        .directory
        .app(&auth.client_id)
        .cloned()
        .ok_or_else(|| AadError::app_not_found(&auth.client_id, tenant))?;
    authenticate(cx, tenant, &app, auth)?;
    let code = {
        let mut grants = cx.sim.grants.lock();
        let code = grants.codes.get_mut(code_text).ok_or_else(|| {
            invalid_grant(9002313, "Invalid request. Request is malformed or invalid.")
        })?;
        if code.redeemed {
            return Err(invalid_grant(
                54005,
                "OAuth2 Authorization code was already redeemed, please retry with a new valid code or use an existing refresh token.",
            ));
        }
        // A code is burnt by any redemption attempt of its client, successful or not.
        code.redeemed = true;
        code.clone()
    };
    if code.expires_unix <= cx.sim.now_unix() {
        return Err(invalid_grant(
            70008,
            "The provided authorization code or refresh token has expired due to inactivity.",
        ));
    }
    if code.client_id != auth.client_id {
        return Err(invalid_grant(
            70000,
            "The provided authorization code was issued to another client.",
        ));
    }
    if form.get("redirect_uri") != Some(&code.redirect_uri) {
        return Err(invalid_grant(
            500112,
            "The reply address does not match the reply address provided when requesting the authorization code.",
        ));
    }
    let tenant_matches = MULTI_TENANT.iter().any(|t| t.eq_ignore_ascii_case(tenant))
        || cx
            .sim
            .world
            .read()
            .directory
            .tenant(tenant)
            .is_some_and(|t| t.id.eq_ignore_ascii_case(&code.tenant_id));
    if !tenant_matches {
        return Err(invalid_grant(
            50020,
            "The authorization code was issued for another tenant.",
        ));
    }
    verify_pkce(&code.challenge, form.get("code_verifier"))?;
    let user = cx
        .sim
        .world
        .read()
        .directory
        .user(&code.user_id)
        .cloned()
        .ok_or_else(|| invalid_grant(50034, "The user account does not exist in the directory."))?;
    user_tokens(cx, &user, &app, &code.scopes, code.nonce)
}

fn refresh_token(
    cx: &IdentityCx,
    tenant: &str,
    form: &HashMap<String, String>,
    auth: &ClientAuth,
) -> Result<Response, AadError> {
    let token = form
        .get("refresh_token")
        .ok_or_else(|| missing("refresh_token"))?;
    let app = cx
        .sim
        .world
        .read()
        .directory
        .app(&auth.client_id)
        .cloned()
        .ok_or_else(|| AadError::app_not_found(&auth.client_id, "common"))?;
    authenticate(cx, tenant, &app, auth)?;
    let grant = cx
        .sim
        .grants
        .lock()
        .refresh_tokens
        .remove(token)
        .filter(|g| g.client_id == auth.client_id)
        .ok_or_else(|| {
            invalid_grant(9002313, "Invalid request. Request is malformed or invalid.")
        })?;
    let user = cx
        .sim
        .world
        .read()
        .directory
        .user(&grant.user_id)
        .cloned()
        .ok_or_else(|| invalid_grant(50034, "The user account does not exist in the directory."))?;
    user_tokens(cx, &user, &app, &grant.scopes, None)
}

/// Access token (+ id token with `openid`, + refresh token with `offline_access`).
fn user_tokens(
    cx: &IdentityCx,
    user: &UserRecord,
    app: &App,
    scopes: &[String],
    nonce: Option<String>,
) -> Result<Response, AadError> {
    let delegated: Vec<String> = if scopes.iter().any(|s| is_graph_default(s)) {
        app.delegated_permissions.clone()
    } else {
        scopes
            .iter()
            .filter(|s| is_graph_scope(s))
            .map(|s| s.rsplit('/').next().unwrap_or(s).to_owned())
            .collect()
    };
    let lifetime = issue::lifetime_secs(&cx.sim);
    let access_token = issue::user_token(&cx.sim, user, app, &delegated, lifetime)
        .map_err(|e| signing_failed(&e))?;
    let oidc: Vec<String> = scopes
        .iter()
        .filter(|s| is_oidc_scope(s))
        .map(|s| s.to_ascii_lowercase())
        .collect();
    let granted: Vec<String> = delegated
        .iter()
        .map(|p| format!("https://graph.microsoft.com/{p}"))
        .chain(oidc.iter().filter(|s| *s != "offline_access").cloned())
        .collect();
    let mut body = json!({
        "token_type": "Bearer",
        "scope": granted.join(" "),
        "expires_in": lifetime,
        "ext_expires_in": lifetime,
        "access_token": access_token,
    });
    if oidc.iter().any(|s| s == "openid") {
        let id_token = issue::id_token(&cx.sim, user, &app.client_id, nonce, lifetime.max(3600))
            .map_err(|e| signing_failed(&e))?;
        body["id_token"] = json!(id_token);
    }
    if oidc.iter().any(|s| s == "offline_access") {
        let refresh = cx.sim.chaos.with_rng(crate::ids::opaque_token);
        cx.sim.grants.lock().refresh_tokens.insert(
            refresh.clone(),
            RefreshGrant {
                client_id: app.client_id.clone(),
                user_id: user.id.clone(),
                tenant_id: user.tenant_id.clone(),
                scopes: scopes.to_vec(),
            },
        );
        body["refresh_token"] = json!(refresh);
    }
    Ok(json_ok(&body))
}
