//! Authorization codes and refresh tokens the identity platform has handed out.

use std::collections::HashMap;

/// A code issued by the authorize endpoint, redeemable once.
#[derive(Debug, Clone)]
pub struct AuthCode {
    pub client_id: String,
    pub redirect_uri: String,
    /// PKCE challenge and method (`S256` or `plain`), when the client sent one.
    pub challenge: Option<(String, String)>,
    pub user_id: String,
    pub tenant_id: String,
    pub scopes: Vec<String>,
    pub nonce: Option<String>,
    pub expires_unix: i64,
    pub redeemed: bool,
}

/// What a refresh token stands for.
#[derive(Debug, Clone)]
pub struct RefreshGrant {
    pub client_id: String,
    pub user_id: String,
    pub tenant_id: String,
    pub scopes: Vec<String>,
}

#[derive(Debug, Default)]
pub struct Grants {
    pub codes: HashMap<String, AuthCode>,
    pub refresh_tokens: HashMap<String, RefreshGrant>,
}
