//! Bearer token verification: algorithm pinned per configured key, `iss`, `aud`, `exp`, `nbf`
//! checked with a small leeway, claims turned into a [`Caller`].

use std::{collections::BTreeSet, time::Duration};

use jsonwebtoken::{Algorithm, DecodingKey, Validation, errors::ErrorKind};
use secrecy::{ExposeSecret as _, SecretString};
use serde::Deserialize;

use super::{Caller, Permission, TenantScope};
use crate::domain::TenantId;

/// What the verifier accepts.
#[derive(Clone)]
pub struct AuthSettings {
    /// The required `iss`.
    pub issuer: String,
    /// The required `aud`.
    pub audience: String,
    /// The HS256 shared secret (development).
    pub hs256_secret: SecretString,
    /// Clock skew tolerated on `exp` and `nbf`.
    pub leeway: Duration,
}

/// Why a token was refused. Each maps to an `UNAUTHENTICATED` status with this reason.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum AuthError {
    /// No `authorization` metadata.
    #[error("missing bearer token: send `authorization: Bearer <JWT>`")]
    MissingToken,
    /// `authorization` is not `Bearer <token>`.
    #[error("malformed authorization metadata: expected `Bearer <JWT>`")]
    MalformedHeader,
    /// Not a JWT, or a claim has the wrong shape.
    #[error("malformed token")]
    MalformedToken,
    /// The signature does not verify, or the algorithm is not the configured one.
    #[error("invalid token signature or algorithm")]
    InvalidSignature,
    /// `exp` has passed.
    #[error("token expired")]
    Expired,
    /// `nbf` is in the future.
    #[error("token not valid yet")]
    NotYetValid,
    /// `iss` is not the configured issuer.
    #[error("token issuer not accepted")]
    WrongIssuer,
    /// `aud` does not name this service.
    #[error("token audience not accepted")]
    WrongAudience,
    /// A required claim (`exp`, `iss`, `aud`, `sub`) is missing.
    #[error("token lacks a required claim")]
    MissingClaim,
}

impl AuthError {
    /// The `google.rpc.ErrorInfo` reason.
    pub fn reason(self) -> &'static str {
        match self {
            Self::MissingToken => "MISSING_CREDENTIALS",
            Self::MalformedHeader | Self::MalformedToken => "MALFORMED_CREDENTIALS",
            Self::InvalidSignature => "INVALID_SIGNATURE",
            Self::Expired => "TOKEN_EXPIRED",
            Self::NotYetValid => "TOKEN_NOT_YET_VALID",
            Self::WrongIssuer => "WRONG_ISSUER",
            Self::WrongAudience => "WRONG_AUDIENCE",
            Self::MissingClaim => "MISSING_CLAIM",
        }
    }
}

#[derive(Deserialize)]
struct Claims {
    sub: String,
    #[serde(default)]
    email: Option<String>,
    #[serde(default)]
    tenants: Vec<String>,
    #[serde(default)]
    permissions: Vec<String>,
}

/// Verifies bearer tokens.
pub struct JwtVerifier {
    key: DecodingKey,
    validation: Validation,
}

impl JwtVerifier {
    /// A verifier for `settings`.
    pub fn new(settings: &AuthSettings) -> Self {
        let mut validation = Validation::new(Algorithm::HS256);
        validation.set_issuer(&[settings.issuer.as_str()]);
        validation.set_audience(&[settings.audience.as_str()]);
        validation.set_required_spec_claims(&["exp", "iss", "aud", "sub"]);
        validation.validate_nbf = true;
        validation.leeway = settings.leeway.as_secs();
        Self {
            key: DecodingKey::from_secret(settings.hs256_secret.expose_secret().as_bytes()),
            validation,
        }
    }

    /// Verifies the value of an `authorization` header.
    pub fn verify_header(&self, header: Option<&[u8]>) -> Result<Caller, AuthError> {
        let header = header.ok_or(AuthError::MissingToken)?;
        let header = std::str::from_utf8(header).map_err(|_| AuthError::MalformedHeader)?;
        let (scheme, token) = header
            .trim()
            .split_once(' ')
            .ok_or(AuthError::MalformedHeader)?;
        if !scheme.eq_ignore_ascii_case("bearer") || token.trim().is_empty() {
            return Err(AuthError::MalformedHeader);
        }
        self.verify(token.trim())
    }

    /// Verifies a token.
    pub fn verify(&self, token: &str) -> Result<Caller, AuthError> {
        let data = jsonwebtoken::decode::<Claims>(token, &self.key, &self.validation)
            .map_err(|e| classify(e.kind()))?;
        let claims = data.claims;
        if claims.sub.is_empty() {
            return Err(AuthError::MissingClaim);
        }
        let tenants = if claims.tenants.iter().any(|t| t == "*") {
            TenantScope::All
        } else {
            TenantScope::Only(
                claims
                    .tenants
                    .iter()
                    .filter_map(|t| TenantId::parse(t).ok())
                    .collect::<BTreeSet<_>>(),
            )
        };
        Ok(Caller {
            subject: claims.sub,
            email: claims.email.filter(|e| !e.is_empty()),
            tenants,
            permissions: claims
                .permissions
                .iter()
                .filter_map(|p| Permission::from_claim(p))
                .collect(),
        })
    }
}

fn classify(kind: &ErrorKind) -> AuthError {
    match kind {
        ErrorKind::ExpiredSignature => AuthError::Expired,
        ErrorKind::ImmatureSignature => AuthError::NotYetValid,
        ErrorKind::InvalidIssuer => AuthError::WrongIssuer,
        ErrorKind::InvalidAudience => AuthError::WrongAudience,
        ErrorKind::MissingRequiredClaim(_) => AuthError::MissingClaim,
        ErrorKind::InvalidSignature
        | ErrorKind::InvalidAlgorithm
        | ErrorKind::InvalidAlgorithmName => AuthError::InvalidSignature,
        _ => AuthError::MalformedToken,
    }
}
