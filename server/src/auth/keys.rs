//! The keys caller tokens are verified with. Each key pins its algorithm: an RSA key verifies
//! only RS256, a P-256 key only ES256, the shared secret only HS256 — a token cannot choose a
//! weaker or confused algorithm for a key (no HS256 signed with an RSA public key, no `none`).

use std::path::Path;

use jsonwebtoken::{
    Algorithm, DecodingKey,
    jwk::{AlgorithmParameters, EllipticCurve, Jwk, JwkSet, KeyAlgorithm},
};
use secrecy::{ExposeSecret as _, SecretString};

/// One verification key.
#[derive(Clone)]
pub struct VerifyKey {
    /// The JWK `kid`, when the key has one; tokens naming another kid skip this key.
    pub kid: Option<String>,
    /// The one algorithm this key verifies.
    pub algorithm: Algorithm,
    /// The key material.
    pub key: DecodingKey,
}

/// Every key currently accepted.
#[derive(Clone, Default)]
pub struct KeySet {
    /// The keys.
    pub keys: Vec<VerifyKey>,
}

/// A key that cannot be loaded.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct KeyError(pub String);

impl KeySet {
    /// The HS256 shared secret as a key.
    pub fn add_hs256(&mut self, secret: &SecretString) {
        self.keys.push(VerifyKey {
            kid: None,
            algorithm: Algorithm::HS256,
            key: DecodingKey::from_secret(secret.expose_secret().as_bytes()),
        });
    }

    /// A PEM public key file: RSA keys verify RS256, EC (P-256) keys ES256.
    pub fn add_pem_file(&mut self, path: &Path) -> Result<(), KeyError> {
        let pem = std::fs::read(path)
            .map_err(|e| KeyError(format!("cannot read {}: {e}", path.display())))?;
        let (algorithm, key) = if let Ok(key) = DecodingKey::from_rsa_pem(&pem) {
            (Algorithm::RS256, key)
        } else if let Ok(key) = DecodingKey::from_ec_pem(&pem) {
            (Algorithm::ES256, key)
        } else {
            return Err(KeyError(format!(
                "{} is not a PEM RSA or EC public key",
                path.display()
            )));
        };
        self.keys.push(VerifyKey {
            kid: None,
            algorithm,
            key,
        });
        Ok(())
    }

    /// The RS256 and ES256 keys of a JWKS document; other keys are skipped with a warning.
    pub fn add_jwks(&mut self, json: &[u8], source: &str) -> Result<usize, KeyError> {
        let set: JwkSet = serde_json::from_slice(json)
            .map_err(|e| KeyError(format!("{source} is not a JWKS document: {e}")))?;
        let mut added = 0;
        for jwk in &set.keys {
            match key_from_jwk(jwk) {
                Ok(key) => {
                    self.keys.push(key);
                    added += 1;
                }
                Err(why) => tracing::warn!(
                    source,
                    kid = jwk.common.key_id.as_deref().unwrap_or(""),
                    "skipping a JWKS key: {why}"
                ),
            }
        }
        Ok(added)
    }

    /// The keys that may have signed a token with this header.
    pub fn candidates<'k>(
        &'k self,
        algorithm: Algorithm,
        kid: Option<&'k str>,
    ) -> impl Iterator<Item = &'k VerifyKey> + 'k {
        self.keys.iter().filter(move |k| {
            k.algorithm == algorithm
                && match (kid, k.kid.as_deref()) {
                    (Some(wanted), Some(have)) => wanted == have,
                    _ => true,
                }
        })
    }

    /// Whether any key verifies asymmetric signatures.
    pub fn has_public_keys(&self) -> bool {
        self.keys.iter().any(|k| k.algorithm != Algorithm::HS256)
    }
}

fn key_from_jwk(jwk: &Jwk) -> Result<VerifyKey, String> {
    let inferred = match &jwk.algorithm {
        AlgorithmParameters::RSA(_) => Algorithm::RS256,
        AlgorithmParameters::EllipticCurve(ec) if ec.curve == EllipticCurve::P256 => {
            Algorithm::ES256
        }
        _ => return Err("only RSA and P-256 keys are accepted".to_owned()),
    };
    let algorithm = match jwk.common.key_algorithm {
        None => inferred,
        Some(KeyAlgorithm::RS256) if inferred == Algorithm::RS256 => Algorithm::RS256,
        Some(KeyAlgorithm::ES256) if inferred == Algorithm::ES256 => Algorithm::ES256,
        Some(other) => return Err(format!("algorithm {other:?} is not accepted for this key")),
    };
    let key = DecodingKey::from_jwk(jwk).map_err(|e| e.to_string())?;
    Ok(VerifyKey {
        kid: jwk.common.key_id.clone(),
        algorithm,
        key,
    })
}
