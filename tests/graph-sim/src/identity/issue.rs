//! Minting access and id tokens for apps and signed-in users.

use rand::RngCore;

use super::tokens::{AccessClaims, GRAPH_AUDIENCE, IdClaims, SigningError};
use crate::core::Sim;
use crate::seed::App;
use crate::state::UserRecord;

/// Lifetime in whole seconds from the settings (0 mints tokens that are already expired).
pub fn lifetime_secs(sim: &Sim) -> i64 {
    (sim.settings.read().token_lifetime_ms / 1000) as i64
}

fn unique_token_id(sim: &Sim) -> String {
    let mut bytes = [0u8; 16];
    sim.chaos.with_rng(|rng| rng.fill_bytes(&mut bytes));
    uuid::Uuid::from_bytes(bytes).simple().to_string()
}

/// An app-only (client credentials) access token carrying the app's application permissions.
pub fn app_token(
    sim: &Sim,
    tenant_id: &str,
    app: &App,
    lifetime_secs: i64,
) -> Result<String, SigningError> {
    let now = sim.now_unix();
    let claims = AccessClaims {
        aud: GRAPH_AUDIENCE.to_owned(),
        iss: format!("https://sts.windows.net/{tenant_id}/"),
        iat: now,
        nbf: now,
        exp: now.saturating_add(lifetime_secs),
        tid: tenant_id.to_owned(),
        appid: app.client_id.clone(),
        idtyp: "app".to_owned(),
        sub: crate::ids::stable_guid(
            "service-principal",
            &format!("{tenant_id}/{}", app.client_id),
        ),
        oid: crate::ids::stable_guid(
            "service-principal",
            &format!("{tenant_id}/{}", app.client_id),
        ),
        roles: app.application_permissions.clone(),
        scp: None,
        upn: None,
        ver: "1.0".to_owned(),
        uti: unique_token_id(sim),
    };
    sim.tokens.sign_access(&claims)
}

/// A delegated access token for `user`, with the given delegated permissions.
pub fn user_token(
    sim: &Sim,
    user: &UserRecord,
    app: &App,
    scopes: &[String],
    lifetime_secs: i64,
) -> Result<String, SigningError> {
    let now = sim.now_unix();
    let claims = AccessClaims {
        aud: GRAPH_AUDIENCE.to_owned(),
        iss: format!("https://sts.windows.net/{}/", user.tenant_id),
        iat: now,
        nbf: now,
        exp: now.saturating_add(lifetime_secs),
        tid: user.tenant_id.clone(),
        appid: app.client_id.clone(),
        idtyp: "user".to_owned(),
        sub: user.id.clone(),
        oid: user.id.clone(),
        roles: Vec::new(),
        scp: Some(scopes.join(" ")),
        upn: Some(user.user_principal_name.clone()),
        ver: "1.0".to_owned(),
        uti: unique_token_id(sim),
    };
    sim.tokens.sign_access(&claims)
}

/// An id token for `user` signed with the published RS256 key.
pub fn id_token(
    sim: &Sim,
    user: &UserRecord,
    client_id: &str,
    nonce: Option<String>,
    lifetime_secs: i64,
) -> Result<String, SigningError> {
    let now = sim.now_unix();
    let claims = IdClaims {
        aud: client_id.to_owned(),
        iss: format!("{}/{}/v2.0", sim.login_base(), user.tenant_id),
        iat: now,
        nbf: now,
        exp: now.saturating_add(lifetime_secs),
        tid: user.tenant_id.clone(),
        oid: user.id.clone(),
        sub: crate::ids::stable_guid("pairwise-sub", &format!("{client_id}/{}", user.id)),
        preferred_username: user.user_principal_name.clone(),
        name: user.display_name.clone(),
        nonce,
        ver: "2.0".to_owned(),
    };
    sim.tokens.sign_id(&claims)
}
