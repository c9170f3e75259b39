//! The administrator's side of consent with Microsoft: the authorize URL (authorization code +
//! PKCE, built with the `oauth2` crate), redeeming the code, and asking Graph who signed in.

use base64::{Engine as _, engine::general_purpose::URL_SAFE_NO_PAD};
use oauth2::{
    AuthType, AuthUrl, AuthorizationCode, Client, ClientId, CsrfToken, EndpointNotSet, EndpointSet,
    ExtraTokenFields, PkceCodeChallenge, PkceCodeVerifier, RedirectUrl, Scope,
    StandardRevocableToken, StandardTokenResponse, TokenResponse as _, TokenUrl,
    basic::{
        BasicErrorResponse, BasicRevocationErrorResponse, BasicTokenIntrospectionResponse,
        BasicTokenType,
    },
};
use serde::{Deserialize, Serialize};

use crate::graph::{GRAPH_DEFAULT_SCOPE, GraphError, GraphSettings, TokenHttp};

/// The token endpoint's answer with OpenID Connect's `id_token`.
#[derive(Clone, Serialize, Deserialize)]
pub struct IdTokenField {
    #[serde(default)]
    id_token: Option<String>,
}

/// Redacted: an id token is a bearer credential of the signed-in administrator.
impl std::fmt::Debug for IdTokenField {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("IdTokenField")
            .field("id_token", &self.id_token.as_ref().map(|_| REDACTED))
            .finish()
    }
}

/// What secrets print as.
const REDACTED: &str = "[REDACTED]";

impl ExtraTokenFields for IdTokenField {}

type TokenWithId = StandardTokenResponse<IdTokenField, BasicTokenType>;

type ConsentClient = Client<
    BasicErrorResponse,
    TokenWithId,
    BasicTokenIntrospectionResponse,
    StandardRevocableToken,
    BasicRevocationErrorResponse,
    EndpointSet,
    EndpointNotSet,
    EndpointNotSet,
    EndpointNotSet,
    EndpointSet,
>;

/// The tenant segment for sign-in: any organisation's administrator may consent.
const ANY_ORGANIZATION: &str = "organizations";

/// A consent URL and the secrets bound to it.
#[derive(Clone)]
pub struct Authorization {
    /// Where to send the administrator's browser.
    pub url: String,
    /// The single-use state (only its hash is stored).
    pub state: String,
    /// The PKCE verifier for redeeming the code.
    pub pkce_verifier: String,
}

/// Who signed in and for which Microsoft tenant, as the code redemption proves it.
#[derive(Clone, PartialEq, Eq)]
pub struct SignedIn {
    /// The Microsoft tenant (`tid` of the id token).
    pub microsoft_tenant_id: String,
    /// The user's object id (`oid`).
    pub object_id: Option<String>,
    /// The delegated access token, to ask Graph `/me`.
    pub access_token: String,
}

/// Redacted: the delegated access token acts as the administrator.
impl std::fmt::Debug for SignedIn {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SignedIn")
            .field("microsoft_tenant_id", &self.microsoft_tenant_id)
            .field("object_id", &self.object_id)
            .field("access_token", &REDACTED)
            .finish()
    }
}

/// Redacted: the state and the verifier are what completing the consent takes.
impl std::fmt::Debug for Authorization {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Authorization")
            .field("url", &"[REDACTED: carries the state]")
            .field("state", &REDACTED)
            .field("pkce_verifier", &REDACTED)
            .finish()
    }
}

/// `GET /me`.
#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Me {
    /// The user's object id.
    pub id: String,
    /// Sign-in name.
    #[serde(default)]
    pub user_principal_name: Option<String>,
}

#[derive(Deserialize)]
struct IdClaims {
    tid: String,
    #[serde(default)]
    oid: Option<String>,
}

fn client(settings: &GraphSettings, redirect_uri: &str) -> Result<ConsentClient, GraphError> {
    let login = settings.login_base_url.trim_end_matches('/');
    let bad = |what: &str, e: &dyn std::fmt::Display| GraphError::Transport(format!("{what}: {e}"));
    Ok(
        Client::new(ClientId::new(settings.credential.client_id().to_owned()))
            // The credential (secret or client assertion) goes in the body with each redemption.
            .set_auth_type(AuthType::RequestBody)
            .set_auth_uri(
                AuthUrl::new(format!("{login}/{ANY_ORGANIZATION}/oauth2/v2.0/authorize"))
                    .map_err(|e| bad("authorize URL", &e))?,
            )
            .set_token_uri(
                TokenUrl::new(format!("{login}/{ANY_ORGANIZATION}/oauth2/v2.0/token"))
                    .map_err(|e| bad("token URL", &e))?,
            )
            .set_redirect_uri(
                RedirectUrl::new(redirect_uri.to_owned()).map_err(|e| bad("redirect URI", &e))?,
            ),
    )
}

/// The consent URL: `openid profile` plus Graph's `.default` (Microsoft refuses `.default`
/// mixed with other Graph scopes), PKCE S256, a fresh random state, and `prompt=consent` so an
/// administrator sees the permissions again on a repeated grant.
pub fn authorization(
    settings: &GraphSettings,
    redirect_uri: &str,
) -> Result<Authorization, GraphError> {
    let (challenge, verifier) = PkceCodeChallenge::new_random_sha256();
    let (url, state) = client(settings, redirect_uri)?
        .authorize_url(CsrfToken::new_random)
        .add_scope(Scope::new("openid".to_owned()))
        .add_scope(Scope::new("profile".to_owned()))
        .add_scope(Scope::new(GRAPH_DEFAULT_SCOPE.to_owned()))
        .set_pkce_challenge(challenge)
        .add_extra_param("prompt", "consent")
        .url();
    Ok(Authorization {
        url: url.to_string(),
        state: state.secret().clone(),
        pkce_verifier: verifier.secret().clone(),
    })
}

/// Redeems the authorization code with the PKCE verifier. The Microsoft tenant is read from
/// the id token this very exchange returned: it comes straight from the token endpoint over
/// the connection we opened (OpenID Connect Core §3.1.3.7), never from the redirect.
pub async fn redeem(
    settings: &GraphSettings,
    http: &reqwest::Client,
    redirect_uri: &str,
    code: &str,
    pkce_verifier: &str,
) -> Result<SignedIn, GraphError> {
    let client = client(settings, redirect_uri)?;
    let credential = settings.credential.present(client.token_uri().as_str())?;
    let exchange = TokenHttp::new(http.clone());
    let mut request = client
        .exchange_code(AuthorizationCode::new(code.to_owned()))
        .set_pkce_verifier(PkceCodeVerifier::new(pkce_verifier.to_owned()));
    for (name, value) in credential.form_fields() {
        request = request.add_extra_param(name, value);
    }
    let response = request
        .request_async(&|request| exchange.send(request))
        .await
        .map_err(|e| exchange.error(e));
    settings.credential.health().note(&response);
    let response = response?;
    let id_token = response.extra_fields().id_token.as_deref().ok_or_else(|| {
        GraphError::Transport("the token endpoint returned no id_token".to_owned())
    })?;
    let claims = id_token
        .split('.')
        .nth(1)
        .and_then(|payload| URL_SAFE_NO_PAD.decode(payload.trim_end_matches('=')).ok())
        .and_then(|json| serde_json::from_slice::<IdClaims>(&json).ok())
        .ok_or_else(|| GraphError::Transport("the id_token is unreadable".to_owned()))?;
    Ok(SignedIn {
        microsoft_tenant_id: claims.tid,
        object_id: claims.oid,
        access_token: response.access_token().secret().clone(),
    })
}

/// Asks Graph who the delegated token belongs to (answered inside that token's own tenant).
pub async fn me(
    settings: &GraphSettings,
    http: &reqwest::Client,
    access_token: &str,
) -> Result<Me, GraphError> {
    let url = format!(
        "{}/v1.0/me?$select=id,userPrincipalName",
        settings.graph_base_url.trim_end_matches('/')
    );
    let response = http
        .get(url)
        .bearer_auth(access_token)
        .send()
        .await
        .map_err(|e| GraphError::Transport(e.to_string()))?;
    if !response.status().is_success() {
        return Err(crate::graph::api_error(response).await);
    }
    response
        .json::<Me>()
        .await
        .map_err(|e| GraphError::Transport(format!("unreadable /me: {e}")))
}

#[cfg(test)]
mod secrecy_tests {
    use super::*;

    #[test]
    fn tokens_states_and_verifiers_do_not_appear_in_debug_output() {
        let signed_in = SignedIn {
            microsoft_tenant_id: "tid".into(),
            object_id: None,
            access_token: "eyJ-access-secret".into(),
        };
        let authorization = Authorization {
            url: "https://login.example/authorize?state=state-secret".into(),
            state: "state-secret".into(),
            pkce_verifier: "verifier-secret".into(),
        };
        let id_token = IdTokenField {
            id_token: Some("eyJ-id-secret".into()),
        };
        let printed = format!("{signed_in:?} {authorization:?} {id_token:?}");
        for secret in [
            "access-secret",
            "state-secret",
            "verifier-secret",
            "id-secret",
        ] {
            assert!(!printed.contains(secret), "{secret} in {printed}");
        }
        assert!(printed.contains("tid"), "{printed}");
    }
}
