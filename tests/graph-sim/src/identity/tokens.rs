//! Issuing and validating tokens.
//!
//! * Access tokens (for Graph) are HS256 JWTs signed with a random per-simulator secret: like
//!   real Graph tokens they are opaque to clients, and HMAC keeps validation off the hot path.
//! * Id tokens are RS256 JWTs signed with a fixed test key (`signing_key.pem`, test use only)
//!   whose public half is published at `/{tenant}/discovery/v2.0/keys`, so a client can verify
//!   them the way it verifies Microsoft's.
//!
//! Validated access tokens are cached by their text so each one is checked cryptographically
//! once; expiry is checked on every call against the simulator clock.

use std::collections::HashMap;
use std::sync::Arc;

use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Header, Validation};
use parking_lot::RwLock;
use serde::{Deserialize, Serialize};

/// The audience Graph accepts.
pub const GRAPH_AUDIENCE: &str = "https://graph.microsoft.com";
/// Graph's application id, also accepted as audience.
pub const GRAPH_APP_ID: &str = "00000003-0000-0000-c000-000000000000";
/// Key id of the id-token signing key.
pub const SIGNING_KEY_ID: &str = "graph-sim-1";
/// Modulus of the id-token signing key, base64url (published in the JWKS).
pub const SIGNING_KEY_MODULUS: &str = "4jOoUlR2u-sRSlKp1rK2c4dkfHdwRO8zjKoahJXnGUWhP01NcqPg9NZXs3MmQtCSvPZ22dLlzSQLuTL1_viADego4MbuJWeq-vyjfPCdvWkubjw_s4MC9qTi92YSr7FSOwfLkwiZJTc5fNSw-yWdb_9OSYj6uyGr0d_yqq9mc7v6e88-gdYUre8BABk6wetbup6A0FQxC3avWdukcgQk8ugtq-HWwrqgCZKHOfJCtLh56xeTZsGrUVV7EW8z06a-Ch_ZLNGvJ2AqZ3G51ZqtfHKzgUkjnffQqZj3JcmyXbe1zefyTg-rtqCbiPwB9FaB7rnBAQ_GNfrhHoKLY95CZQ";
/// Exponent of the id-token signing key, base64url.
pub const SIGNING_KEY_EXPONENT: &str = "AQAB";
const SIGNING_KEY_PEM: &str = include_str!("signing_key.pem");
/// Cached validated tokens before the cache is cleared.
const CACHE_LIMIT: usize = 100_000;

/// Claims of a Graph access token (v1.0 shape).
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct AccessClaims {
    pub aud: String,
    pub iss: String,
    pub iat: i64,
    pub nbf: i64,
    pub exp: i64,
    pub tid: String,
    pub appid: String,
    /// `app` for client-credentials tokens, `user` for delegated ones.
    pub idtyp: String,
    pub sub: String,
    pub oid: String,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub roles: Vec<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub scp: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub upn: Option<String>,
    pub ver: String,
    pub uti: String,
}

impl AccessClaims {
    pub fn is_app_only(&self) -> bool {
        self.idtyp == "app"
    }

    pub fn has_role(&self, role: &str) -> bool {
        self.roles.iter().any(|r| r.eq_ignore_ascii_case(role))
    }
}

/// Claims of an id token (v2.0 shape).
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct IdClaims {
    pub aud: String,
    pub iss: String,
    pub iat: i64,
    pub nbf: i64,
    pub exp: i64,
    pub tid: String,
    pub oid: String,
    pub sub: String,
    pub preferred_username: String,
    pub name: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub nonce: Option<String>,
    pub ver: String,
}

/// Why a bearer token was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TokenRejection {
    Missing,
    Malformed,
    BadSignature,
    WrongAudience,
    Expired,
}

impl TokenRejection {
    /// Graph's message for this rejection.
    pub fn message(self) -> &'static str {
        match self {
            TokenRejection::Missing => "Access token is empty.",
            TokenRejection::Malformed => "IDX14100: JWT is not well formed.",
            TokenRejection::BadSignature => "Access token validation failure. Invalid signature.",
            TokenRejection::WrongAudience => "Access token validation failure. Invalid audience.",
            TokenRejection::Expired => "Lifetime validation failed, the token is expired.",
        }
    }
}

/// Could not sign a token (only a broken key or claims that do not serialise).
#[derive(Debug, thiserror::Error)]
#[error("cannot sign token: {0}")]
pub struct SigningError(#[from] jsonwebtoken::errors::Error);

/// Keys and the validated-token cache.
pub struct TokenService {
    access_encoding: EncodingKey,
    access_decoding: DecodingKey,
    id_encoding: Option<EncodingKey>,
    validation: Validation,
    cache: RwLock<HashMap<Box<str>, Arc<AccessClaims>>>,
}

impl TokenService {
    pub fn new(secret: &[u8]) -> Self {
        let mut validation = Validation::new(Algorithm::HS256);
        validation.validate_exp = false;
        validation.validate_nbf = false;
        validation.validate_aud = false;
        validation.required_spec_claims.clear();
        Self {
            access_encoding: EncodingKey::from_secret(secret),
            access_decoding: DecodingKey::from_secret(secret),
            id_encoding: EncodingKey::from_rsa_pem(SIGNING_KEY_PEM.as_bytes()).ok(),
            validation,
            cache: RwLock::new(HashMap::new()),
        }
    }

    pub fn sign_access(&self, claims: &AccessClaims) -> Result<String, SigningError> {
        let mut header = Header::new(Algorithm::HS256);
        header.typ = Some("JWT".to_owned());
        Ok(jsonwebtoken::encode(
            &header,
            claims,
            &self.access_encoding,
        )?)
    }

    pub fn sign_id(&self, claims: &IdClaims) -> Result<String, SigningError> {
        let key = self.id_encoding.as_ref().ok_or(SigningError(
            jsonwebtoken::errors::ErrorKind::InvalidRsaKey("embedded key".into()).into(),
        ))?;
        let mut header = Header::new(Algorithm::RS256);
        header.kid = Some(SIGNING_KEY_ID.to_owned());
        header.typ = Some("JWT".to_owned());
        Ok(jsonwebtoken::encode(&header, claims, key)?)
    }

    /// Validates a bearer token at simulator time `now` (unix seconds).
    pub fn validate_access(
        &self,
        token: &str,
        now: i64,
    ) -> Result<Arc<AccessClaims>, TokenRejection> {
        let cached = self.cache.read().get(token).cloned();
        let claims = match cached {
            Some(claims) => claims,
            None => {
                let claims = Arc::new(self.decode(token)?);
                let mut cache = self.cache.write();
                if cache.len() >= CACHE_LIMIT {
                    cache.clear();
                }
                cache.insert(token.into(), claims.clone());
                claims
            }
        };
        if claims.exp <= now {
            return Err(TokenRejection::Expired);
        }
        Ok(claims)
    }

    fn decode(&self, token: &str) -> Result<AccessClaims, TokenRejection> {
        use jsonwebtoken::errors::ErrorKind;
        if token.is_empty() {
            return Err(TokenRejection::Missing);
        }
        let data =
            jsonwebtoken::decode::<AccessClaims>(token, &self.access_decoding, &self.validation)
                .map_err(|e| match e.kind() {
                    ErrorKind::InvalidSignature
                    | ErrorKind::InvalidAlgorithm
                    | ErrorKind::InvalidAlgorithmName => TokenRejection::BadSignature,
                    _ => TokenRejection::Malformed,
                })?;
        if data.claims.aud != GRAPH_AUDIENCE && data.claims.aud != GRAPH_APP_ID {
            return Err(TokenRejection::WrongAudience);
        }
        Ok(data.claims)
    }
}
