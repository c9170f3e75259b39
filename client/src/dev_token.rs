//! Development caller tokens (HS256 with the public development key).

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use jsonwebtoken::{Algorithm, EncodingKey, Header};
use serde::Serialize;

/// The server's default `iss`.
pub const DEVELOPMENT_ISSUER: &str = retract_proto::development::ISSUER;
/// The server's default `aud`.
pub const DEVELOPMENT_AUDIENCE: &str = retract_proto::development::AUDIENCE;
/// The server's default HS256 key. Public: a server using it trusts anyone.
pub const DEVELOPMENT_SECRET: &str = retract_proto::development::JWT_SECRET;

/// How a token is signed.
#[derive(Debug, Clone)]
pub enum SigningKey {
    /// HS256 with a shared secret (development).
    Hs256(String),
    /// RS256 with a PEM RSA private key.
    Rs256Pem(String),
    /// ES256 with a PEM (PKCS#8) P-256 private key.
    Es256Pem(String),
}

/// A caller token to mint. Every field is public so tests can make deliberately bad tokens.
#[derive(Debug, Clone)]
pub struct DevToken {
    /// `iss`.
    pub issuer: String,
    /// `aud`.
    pub audience: String,
    /// The signing key (and so the algorithm).
    pub key: SigningKey,
    /// The `kid` header, naming the key in a JWKS.
    pub kid: Option<String>,
    /// `sub`.
    pub subject: String,
    /// `email`: a human administrator's address.
    pub email: Option<String>,
    /// `tenants`: our tenant ids, or `*`.
    pub tenants: Vec<String>,
    /// `permissions`, e.g. `retract.message`.
    pub permissions: Vec<String>,
    /// Seconds from now until `exp` (negative: already expired).
    pub expires_in_s: i64,
    /// Seconds from now until `nbf` (positive: not valid yet).
    pub not_before_s: i64,
}

#[derive(Serialize)]
struct Claims<'a> {
    iss: &'a str,
    aud: &'a str,
    sub: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    email: Option<&'a str>,
    tenants: &'a [String],
    permissions: &'a [String],
    iat: i64,
    nbf: i64,
    exp: i64,
}

impl DevToken {
    /// A service caller (no email) with access to every tenant.
    pub fn service(subject: &str) -> Self {
        Self {
            issuer: DEVELOPMENT_ISSUER.to_owned(),
            audience: DEVELOPMENT_AUDIENCE.to_owned(),
            key: SigningKey::Hs256(DEVELOPMENT_SECRET.to_owned()),
            kid: None,
            subject: subject.to_owned(),
            email: None,
            tenants: vec!["*".to_owned()],
            permissions: Vec::new(),
            expires_in_s: 3600,
            not_before_s: 0,
        }
    }

    /// A human administrator of one tenant.
    pub fn admin(email: &str, tenant: &str) -> Self {
        Self {
            email: Some(email.to_owned()),
            tenants: vec![tenant.to_owned()],
            ..Self::service(email)
        }
    }

    /// Adds a permission.
    pub fn permission(mut self, permission: &str) -> Self {
        self.permissions.push(permission.to_owned());
        self
    }

    /// Adds every permission the server knows.
    pub fn all_permissions(self) -> Self {
        [
            "retract.message",
            "retract.read",
            "deliveries.write",
            "domains.manage",
            "tenants.manage",
            "audit.read",
        ]
        .into_iter()
        .fold(self, Self::permission)
    }

    /// Sets the lifetime.
    pub fn valid_for(mut self, lifetime: Duration) -> Self {
        self.expires_in_s = i64::try_from(lifetime.as_secs()).unwrap_or(i64::MAX / 2);
        self
    }

    /// Signs with `key` instead.
    pub fn signed_with(mut self, key: SigningKey, kid: Option<&str>) -> Self {
        self.key = key;
        self.kid = kid.map(str::to_owned);
        self
    }

    /// Signs the token.
    pub fn mint(&self) -> Result<String, jsonwebtoken::errors::Error> {
        let now = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| i64::try_from(d.as_secs()).unwrap_or(0));
        let claims = Claims {
            iss: &self.issuer,
            aud: &self.audience,
            sub: &self.subject,
            email: self.email.as_deref(),
            tenants: &self.tenants,
            permissions: &self.permissions,
            iat: now,
            nbf: now + self.not_before_s,
            exp: now + self.expires_in_s,
        };
        let (algorithm, key) = match &self.key {
            SigningKey::Hs256(secret) => (
                Algorithm::HS256,
                EncodingKey::from_secret(secret.as_bytes()),
            ),
            SigningKey::Rs256Pem(pem) => {
                (Algorithm::RS256, EncodingKey::from_rsa_pem(pem.as_bytes())?)
            }
            SigningKey::Es256Pem(pem) => {
                (Algorithm::ES256, EncodingKey::from_ec_pem(pem.as_bytes())?)
            }
        };
        let mut header = Header::new(algorithm);
        header.kid.clone_from(&self.kid);
        jsonwebtoken::encode(&header, &claims, &key)
    }
}
