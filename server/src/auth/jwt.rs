//! Bearer token verification: the algorithm comes from the key, never from the token alone;
//! `iss`, `aud`, `exp`, `nbf` are checked with a small leeway; claims become a [`Caller`].

use std::{
    collections::BTreeSet,
    sync::{Arc, RwLock},
    time::Duration,
};

use jsonwebtoken::{Algorithm, Validation, errors::ErrorKind};
use serde::Deserialize;

use super::{Caller, KeySet, Permission, TenantScope};
use crate::domain::TenantId;

/// What a token must say besides its signature.
#[derive(Debug, Clone)]
pub struct TokenRules {
    /// The required `iss`.
    pub issuer: String,
    /// The required `aud`.
    pub audience: String,
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
    /// No accepted key verifies the signature with the token's algorithm.
    #[error("invalid token signature, or an algorithm this server does not accept")]
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
    /// mTLS is on and the connection presented no client certificate.
    #[error("a client certificate is required")]
    MissingClientCertificate,
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

/// Verifies bearer tokens against the current [`KeySet`] (which a JWKS refresh may replace).
pub struct JwtVerifier {
    keys: RwLock<Arc<KeySet>>,
    rules: [(Algorithm, Validation); 3],
}

/// Longest token accepted before any parsing.
const MAX_TOKEN_LEN: usize = 16 * 1024;

impl JwtVerifier {
    /// A verifier applying `rules` with `keys`.
    pub fn new(rules: &TokenRules, keys: KeySet) -> Self {
        let validation = |algorithm| {
            let mut v = Validation::new(algorithm);
            v.set_issuer(&[rules.issuer.as_str()]);
            v.set_audience(&[rules.audience.as_str()]);
            v.set_required_spec_claims(&["exp", "iss", "aud", "sub"]);
            v.validate_nbf = true;
            v.leeway = rules.leeway.as_secs();
            (algorithm, v)
        };
        Self {
            keys: RwLock::new(Arc::new(keys)),
            rules: [
                validation(Algorithm::HS256),
                validation(Algorithm::RS256),
                validation(Algorithm::ES256),
            ],
        }
    }

    /// Replaces the accepted keys (a JWKS refresh).
    pub fn replace_keys(&self, keys: KeySet) {
        let mut current = self
            .keys
            .write()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        *current = Arc::new(keys);
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
        if token.len() > MAX_TOKEN_LEN {
            return Err(AuthError::MalformedToken);
        }
        let header = jsonwebtoken::decode_header(token).map_err(|_| AuthError::MalformedToken)?;
        let Some((_, validation)) = self.rules.iter().find(|(alg, _)| *alg == header.alg) else {
            return Err(AuthError::InvalidSignature);
        };
        let keys = self
            .keys
            .read()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .clone();
        for key in keys.candidates(header.alg, header.kid.as_deref()) {
            match jsonwebtoken::decode::<Claims>(token, &key.key, validation) {
                Ok(data) => return caller_from(data.claims),
                // Another key (a rotated one) may verify it.
                Err(e) if classify(e.kind()) == AuthError::InvalidSignature => {}
                // The signature verified; the claims did not.
                Err(e) => return Err(classify(e.kind())),
            }
        }
        Err(AuthError::InvalidSignature)
    }
}

fn caller_from(claims: Claims) -> Result<Caller, AuthError> {
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

fn classify(kind: &ErrorKind) -> AuthError {
    match kind {
        ErrorKind::ExpiredSignature => AuthError::Expired,
        ErrorKind::ImmatureSignature => AuthError::NotYetValid,
        ErrorKind::InvalidIssuer => AuthError::WrongIssuer,
        ErrorKind::InvalidAudience => AuthError::WrongAudience,
        ErrorKind::MissingRequiredClaim(_) => AuthError::MissingClaim,
        ErrorKind::InvalidSignature
        | ErrorKind::InvalidAlgorithm
        | ErrorKind::InvalidAlgorithmName
        | ErrorKind::InvalidKeyFormat
        | ErrorKind::InvalidEcdsaKey
        | ErrorKind::InvalidRsaKey(_) => AuthError::InvalidSignature,
        _ => AuthError::MalformedToken,
    }
}

#[cfg(test)]
mod tests {
    use jsonwebtoken::{EncodingKey, Header};
    use secrecy::SecretString;
    use serde_json::json;

    use super::*;

    fn rules() -> TokenRules {
        TokenRules {
            issuer: "iss".into(),
            audience: "aud".into(),
            leeway: Duration::from_secs(5),
        }
    }

    fn hs_verifier(secret: &str) -> JwtVerifier {
        let mut keys = KeySet::default();
        keys.add_hs256(&SecretString::from(secret));
        JwtVerifier::new(&rules(), keys)
    }

    fn hs_token(secret: &str, claims: &serde_json::Value) -> String {
        jsonwebtoken::encode(
            &Header::new(Algorithm::HS256),
            claims,
            &EncodingKey::from_secret(secret.as_bytes()),
        )
        .unwrap()
    }

    fn claims() -> serde_json::Value {
        let now = jsonwebtoken::get_current_timestamp();
        json!({"iss": "iss", "aud": "aud", "sub": "svc", "exp": now + 60, "nbf": now,
               "tenants": ["acme", "Not Valid", "globex"], "permissions": ["retract.read", "made.up"]})
    }

    #[test]
    fn claims_become_a_caller_ignoring_unknown_values() {
        let caller = hs_verifier("k").verify(&hs_token("k", &claims())).unwrap();
        assert_eq!(caller.subject, "svc");
        assert_eq!(caller.email, None);
        assert_eq!(caller.permissions, [Permission::RetractRead].into());
        let TenantScope::Only(tenants) = caller.tenants else {
            panic!("scoped")
        };
        assert_eq!(
            tenants.iter().map(TenantId::as_str).collect::<Vec<_>>(),
            ["acme", "globex"]
        );
    }

    #[test]
    fn rotated_keys_are_tried_in_turn() {
        let mut keys = KeySet::default();
        keys.add_hs256(&SecretString::from("old"));
        keys.add_hs256(&SecretString::from("new"));
        let verifier = JwtVerifier::new(&rules(), keys);
        assert!(verifier.verify(&hs_token("new", &claims())).is_ok());
        assert!(verifier.verify(&hs_token("old", &claims())).is_ok());
        assert_eq!(
            verifier.verify(&hs_token("other", &claims())),
            Err(AuthError::InvalidSignature)
        );
    }

    #[test]
    fn headers_must_be_bearer() {
        let v = hs_verifier("k");
        assert_eq!(v.verify_header(None), Err(AuthError::MissingToken));
        for bad in [
            &b"Basic abc"[..],
            b"Bearer",
            b"Bearer ",
            b"\xff\xfe",
            b"token",
        ] {
            assert_eq!(
                v.verify_header(Some(bad)),
                Err(AuthError::MalformedHeader),
                "{bad:?}"
            );
        }
        assert!(
            v.verify_header(Some(
                format!("bearer {}", hs_token("k", &claims())).as_bytes()
            ))
            .is_ok()
        );
    }

    proptest::proptest! {
        #[test]
        fn arbitrary_tokens_never_panic(raw in "\\PC{0,400}") {
            let v = hs_verifier("k");
            proptest::prop_assert!(v.verify(&raw).is_err());
            let _ = v.verify_header(Some(raw.as_bytes()));
        }

        #[test]
        fn tampered_tokens_are_refused(pos in 0usize..200, byte in proptest::num::u8::ANY) {
            let v = hs_verifier("k");
            let token = hs_token("k", &claims());
            let mut bytes = token.clone().into_bytes();
            let pos = pos % bytes.len();
            proptest::prop_assume!(bytes[pos] != byte);
            bytes[pos] = byte;
            if let Ok(tampered) = String::from_utf8(bytes) {
                // Base64 padding bits can absorb a change that decodes to the same bytes.
                if let Ok(caller) = v.verify(&tampered) {
                    proptest::prop_assert_eq!(caller, v.verify(&token).unwrap());
                }
            }
        }
    }
}
