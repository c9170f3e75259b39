//! The app registration's credential: a client secret, or a certificate whose private key
//! signs a `client_assertion` (Microsoft's recommended credential). A credential kept in a
//! file is read again when the file changes (its modification time or size), so rotating a
//! secret or a certificate needs no restart.

use std::{
    path::{Path, PathBuf},
    sync::Mutex,
    time::SystemTime,
};

use base64::{Engine as _, engine::general_purpose::URL_SAFE_NO_PAD};
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use secrecy::{ExposeSecret as _, SecretString};
use serde::Serialize;
use sha2::{Digest as _, Sha256};

use super::GraphError;

/// The `client_assertion_type` of a JWT client assertion (RFC 7523).
pub const JWT_BEARER: &str = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer";

/// How long a client assertion is valid (Microsoft accepts up to a day; a few minutes is what
/// one token request needs).
const ASSERTION_LIFETIME_SECS: i64 = 600;

/// Where the credential comes from.
#[derive(Clone)]
pub enum CredentialSource {
    /// A secret given directly (flag or variable): never changes.
    Secret(SecretString),
    /// A file holding the secret, read again when it changes.
    SecretFile(PathBuf),
    /// A PEM certificate and the PEM file with its RSA private key (may be the same file),
    /// read again when either changes.
    Certificate {
        /// The certificate (its SHA-256 thumbprint names the key to Microsoft).
        certificate: PathBuf,
        /// The private key (PKCS#8 or PKCS#1).
        key: PathBuf,
    },
}

/// What a token request presents.
pub enum Presented {
    /// `client_secret`.
    Secret(SecretString),
    /// `client_assertion` (with `client_assertion_type` [`JWT_BEARER`]).
    Assertion(SecretString),
}

enum Material {
    Secret(SecretString),
    Certificate {
        /// `x5t#S256`: base64url of the SHA-256 of the certificate's DER.
        thumbprint: String,
        key: EncodingKey,
    },
}

struct Loaded {
    /// Modification time and size of each file it was read from.
    stamps: Vec<Option<(SystemTime, u64)>>,
    material: Material,
}

/// The credential with what was last read of it.
pub struct AppCredential {
    source: CredentialSource,
    client_id: String,
    loaded: Mutex<Loaded>,
    health: CredentialHealth,
}

/// Whether Microsoft accepts our credential, for logs and health: a rejected credential stops
/// every tenant at once, so it is reported as the service's problem, never a tenant's.
#[derive(Debug, Default)]
pub struct CredentialHealth {
    rejection: Mutex<Option<String>>,
}

impl CredentialHealth {
    /// Why Microsoft refuses our credential, while it does (set by the latest token request).
    pub fn rejection(&self) -> Option<String> {
        self.lock().clone()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Option<String>> {
        self.rejection
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Notes the outcome of a token request: a rejected credential is logged at ERROR (every
    /// time: it is an outage of the whole service until an operator fixes it), an accepted
    /// one clears it.
    pub(crate) fn note<T>(&self, outcome: &Result<T, GraphError>) {
        match outcome {
            Err(err @ GraphError::CredentialRejected { .. }) => {
                tracing::error!(error = %err, "CONFIGURATION ERROR: Microsoft rejects this service's Graph app credential (graph_client_secret / graph_client_certificate_file); no tenant can be served until it is fixed. Tenants are not marked revoked.");
                *self.lock() = Some(err.to_string());
            }
            Ok(_) => {
                if self.lock().take().is_some() {
                    tracing::info!("Microsoft accepts the Graph app credential again");
                }
            }
            Err(_) => {}
        }
    }
}

#[derive(Serialize)]
struct AssertionClaims<'a> {
    aud: &'a str,
    iss: &'a str,
    sub: &'a str,
    jti: String,
    nbf: i64,
    iat: i64,
    exp: i64,
}

fn unreadable(what: impl std::fmt::Display) -> GraphError {
    GraphError::CredentialRejected {
        error: "credential_unreadable".to_owned(),
        description: what.to_string(),
    }
}

fn stamp(path: &Path) -> Option<(SystemTime, u64)> {
    let meta = std::fs::metadata(path).ok()?;
    Some((meta.modified().ok()?, meta.len()))
}

fn read(path: &Path) -> Result<String, GraphError> {
    std::fs::read_to_string(path).map_err(|e| unreadable(format!("{}: {e}", path.display())))
}

/// The base64 body of the first PEM block whose label satisfies `wanted`, decoded.
fn pem_block(text: &str, wanted: impl Fn(&str) -> bool) -> Option<(String, Vec<u8>)> {
    let mut lines = text.lines().map(str::trim);
    while let Some(line) = lines.next() {
        let Some(label) = line
            .strip_prefix("-----BEGIN ")
            .and_then(|l| l.strip_suffix("-----"))
        else {
            continue;
        };
        let end = format!("-----END {label}-----");
        let body: String = lines.by_ref().take_while(|l| *l != end).collect();
        if wanted(label) {
            let der = base64::engine::general_purpose::STANDARD
                .decode(body)
                .ok()?;
            return Some((label.to_owned(), der));
        }
    }
    None
}

impl CredentialSource {
    fn files(&self) -> Vec<&Path> {
        match self {
            Self::Secret(_) => Vec::new(),
            Self::SecretFile(path) => vec![path],
            Self::Certificate { certificate, key } => vec![certificate, key],
        }
    }

    fn load(&self) -> Result<Loaded, GraphError> {
        let stamps = self.files().into_iter().map(stamp).collect();
        let material = match self {
            Self::Secret(secret) => Material::Secret(secret.clone()),
            Self::SecretFile(path) => {
                let secret = read(path)?.trim().to_owned();
                if secret.is_empty() {
                    return Err(unreadable(format!("{} is empty", path.display())));
                }
                Material::Secret(SecretString::from(secret))
            }
            Self::Certificate { certificate, key } => {
                let (_, der) =
                    pem_block(&read(certificate)?, |l| l == "CERTIFICATE").ok_or_else(|| {
                        unreadable(format!("{}: no PEM CERTIFICATE", certificate.display()))
                    })?;
                let key_text = read(key)?;
                let (label, key_der) =
                    pem_block(&key_text, |l| l == "PRIVATE KEY" || l == "RSA PRIVATE KEY")
                        .ok_or_else(|| {
                            unreadable(format!("{}: no PEM private key", key.display()))
                        })?;
                let block = format!(
                    "-----BEGIN {label}-----\n{}\n-----END {label}-----\n",
                    base64::engine::general_purpose::STANDARD.encode(&key_der)
                );
                let key = EncodingKey::from_rsa_pem(block.as_bytes())
                    .map_err(|e| unreadable(format!("{}: {e}", key.display())))?;
                Material::Certificate {
                    thumbprint: URL_SAFE_NO_PAD.encode(Sha256::digest(&der)),
                    key,
                }
            }
        };
        Ok(Loaded { stamps, material })
    }
}

impl AppCredential {
    /// Reads the credential of `client_id` from `source` (fails when it cannot be used, so
    /// a bad path stops the start).
    pub fn load(source: CredentialSource, client_id: &str) -> Result<Self, GraphError> {
        let loaded = source.load()?;
        Ok(Self {
            source,
            client_id: client_id.to_owned(),
            loaded: Mutex::new(loaded),
            health: CredentialHealth::default(),
        })
    }

    /// A secret given directly (tests, the demo).
    pub fn secret(client_id: &str, secret: impl Into<String>) -> std::sync::Arc<Self> {
        let secret = SecretString::from(secret.into());
        std::sync::Arc::new(Self {
            source: CredentialSource::Secret(secret.clone()),
            client_id: client_id.to_owned(),
            loaded: Mutex::new(Loaded {
                stamps: Vec::new(),
                material: Material::Secret(secret),
            }),
            health: CredentialHealth::default(),
        })
    }

    /// The app registration's client id.
    pub fn client_id(&self) -> &str {
        &self.client_id
    }

    /// Whether Microsoft accepts this credential.
    pub fn health(&self) -> &CredentialHealth {
        &self.health
    }

    /// What to present to the token endpoint at `token_url` (the assertion's audience). A
    /// file that changed since it was read is read again; if it cannot be read now (a
    /// rotation half written), the credential read before is used and the problem logged.
    pub fn present(&self, token_url: &str) -> Result<Presented, GraphError> {
        let mut loaded = self
            .loaded
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let now: Vec<_> = self.source.files().into_iter().map(stamp).collect();
        if now != loaded.stamps {
            match self.source.load() {
                Ok(fresh) => {
                    tracing::info!(
                        "the Graph app credential file changed: using the new credential"
                    );
                    *loaded = fresh;
                }
                Err(err) => {
                    tracing::error!(error = %err, "the Graph app credential file changed but cannot be used; keeping the credential read before");
                    loaded.stamps = now;
                }
            }
        }
        match &loaded.material {
            Material::Secret(secret) => Ok(Presented::Secret(secret.clone())),
            Material::Certificate { thumbprint, key } => {
                let mut header = Header::new(Algorithm::RS256);
                header.x5t_s256 = Some(thumbprint.clone());
                let now = chrono::Utc::now().timestamp();
                let claims = AssertionClaims {
                    aud: token_url,
                    iss: &self.client_id,
                    sub: &self.client_id,
                    jti: uuid::Uuid::new_v4().to_string(),
                    nbf: now,
                    iat: now,
                    exp: now + ASSERTION_LIFETIME_SECS,
                };
                let jwt = jsonwebtoken::encode(&header, &claims, key)
                    .map_err(|e| unreadable(format!("cannot sign the client assertion: {e}")))?;
                Ok(Presented::Assertion(SecretString::from(jwt)))
            }
        }
    }
}

impl Presented {
    /// The form fields of this credential (beside `client_id`).
    pub fn form_fields(&self) -> Vec<(&'static str, String)> {
        match self {
            Self::Secret(secret) => vec![("client_secret", secret.expose_secret().to_owned())],
            Self::Assertion(jwt) => vec![
                ("client_assertion_type", JWT_BEARER.to_owned()),
                ("client_assertion", jwt.expose_secret().to_owned()),
            ],
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_pem_block_is_found_among_others() {
        let text = "junk\n-----BEGIN CERTIFICATE-----\nAAEC\n-----END CERTIFICATE-----\n-----BEGIN PRIVATE KEY-----\nAwQF\n-----END PRIVATE KEY-----\n";
        assert_eq!(
            pem_block(text, |l| l == "PRIVATE KEY"),
            Some(("PRIVATE KEY".to_owned(), vec![3, 4, 5]))
        );
        assert_eq!(
            pem_block(text, |l| l == "CERTIFICATE").map(|b| b.1),
            Some(vec![0, 1, 2])
        );
        assert_eq!(pem_block(text, |l| l == "RSA PRIVATE KEY"), None);
    }
}
