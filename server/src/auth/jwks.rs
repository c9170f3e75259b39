//! Where keys come from: a shared secret (development), PEM files, a JWKS file, and a JWKS URL
//! that is fetched at start and refreshed periodically (failed refreshes keep the last keys).

use std::{path::PathBuf, sync::Arc, time::Duration};

use secrecy::SecretString;
use tokio_util::sync::CancellationToken;

use super::{JwtVerifier, KeySet, keys::KeyError};

/// The configured key sources.
#[derive(Clone, Default)]
pub struct KeySources {
    /// HS256 shared secret.
    pub hs256_secret: Option<SecretString>,
    /// PEM public key files (RSA → RS256, EC P-256 → ES256).
    pub pem_files: Vec<PathBuf>,
    /// A JWKS document on disk.
    pub jwks_file: Option<PathBuf>,
    /// A JWKS document served over HTTP(S).
    pub jwks_url: Option<String>,
}

impl KeySources {
    /// Loads every source once. A JWKS URL that cannot be fetched fails the start: a server
    /// that can verify nobody is better refused than silently useless.
    pub async fn load(&self, http: &reqwest::Client) -> Result<KeySet, KeyError> {
        let mut keys = self.load_static()?;
        if let Some(url) = &self.jwks_url {
            let added = keys.add_jwks(&fetch(http, url).await?, url)?;
            if added == 0 {
                return Err(KeyError(format!("{url} holds no RS256 or ES256 key")));
            }
            tracing::info!(url, keys = added, "loaded caller-token keys from JWKS URL");
        }
        Ok(keys)
    }

    /// The sources that do not change while running.
    fn load_static(&self) -> Result<KeySet, KeyError> {
        let mut keys = KeySet::default();
        if let Some(secret) = &self.hs256_secret {
            keys.add_hs256(secret);
        }
        for path in &self.pem_files {
            keys.add_pem_file(path)?;
        }
        if let Some(path) = &self.jwks_file {
            let json = std::fs::read(path)
                .map_err(|e| KeyError(format!("cannot read {}: {e}", path.display())))?;
            keys.add_jwks(&json, &path.display().to_string())?;
        }
        Ok(keys)
    }

    /// Re-fetches the JWKS URL every `interval` until `stop`, replacing the verifier's keys.
    pub async fn refresh(
        self,
        http: reqwest::Client,
        verifier: Arc<JwtVerifier>,
        interval: Duration,
        stop: CancellationToken,
    ) {
        let Some(url) = self.jwks_url.clone() else {
            return;
        };
        loop {
            tokio::select! {
                () = stop.cancelled() => return,
                () = tokio::time::sleep(interval) => {}
            }
            let refreshed = async {
                let mut keys = self.load_static()?;
                // An empty or unusable document is a fault of the issuer, not a revocation of
                // every key: keep the previous ones.
                if keys.add_jwks(&fetch(&http, &url).await?, &url)? == 0 {
                    return Err(KeyError(format!("{url} holds no RS256 or ES256 key")));
                }
                Ok::<_, KeyError>(keys)
            }
            .await;
            match refreshed {
                Ok(keys) => verifier.replace_keys(keys),
                Err(err) => {
                    tracing::warn!(url, error = %err, "JWKS refresh failed; keeping the previous keys");
                }
            }
        }
    }
}

async fn fetch(http: &reqwest::Client, url: &str) -> Result<Vec<u8>, KeyError> {
    let response = http
        .get(url)
        .send()
        .await
        .map_err(|e| KeyError(format!("cannot fetch JWKS from {url}: {e}")))?;
    if !response.status().is_success() {
        return Err(KeyError(format!(
            "JWKS URL {url} answered {}",
            response.status()
        )));
    }
    let body = response
        .bytes()
        .await
        .map_err(|e| KeyError(format!("cannot read JWKS from {url}: {e}")))?;
    Ok(body.to_vec())
}
