//! Test key material under `tests/e2e/fixtures/` (see its README).

use std::path::PathBuf;

use retract_client::{DevToken, SigningKey};

/// The path of a fixture file.
pub fn path(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("fixtures")
        .join(name)
}

/// A fixture file's text.
pub fn read(name: &str) -> String {
    std::fs::read_to_string(path(name)).unwrap_or_else(|e| panic!("fixture {name}: {e}"))
}

/// `token` signed RS256 with the issuer's RSA key.
pub fn rs256(token: DevToken) -> DevToken {
    token.signed_with(SigningKey::Rs256Pem(read("issuer-rsa.key.pem")), None)
}

/// `token` signed ES256 with the issuer's P-256 key.
pub fn es256(token: DevToken) -> DevToken {
    token.signed_with(SigningKey::Es256Pem(read("issuer-ec.key.pem")), None)
}
