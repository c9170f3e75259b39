//! The `retract.v1` gRPC contract, generated from `proto/retract/v1/*.proto`.
//!
//! # Layout
//! - [`v1`]: messages, enums, and the tonic clients (`*_client`) and servers (`*_server`) of
//!   `TenantService`, `RetractService` and `AuditService`. Generated code only: conversions to
//!   the server's domain types live in the server's `api` layer.
//! - [`FILE_DESCRIPTOR_SET`]: the encoded descriptors of every file, for server reflection.
//! - [`development`]: the caller-token settings a development server accepts by default.

/// Generated code of package `retract.v1`.
#[allow(clippy::all, clippy::pedantic, missing_docs, rust_2018_idioms)]
pub mod v1 {
    tonic::include_proto!("retract.v1");
}

/// The encoded `FileDescriptorSet` of the `retract.v1` protos (with their imports), for
/// `tonic-reflection`.
pub const FILE_DESCRIPTOR_SET: &[u8] = tonic::include_file_descriptor_set!("retract_descriptor");

/// What a server in development mode accepts by default, and what development tools mint
/// tokens with. Public knowledge: a server trusting these trusts anyone.
pub mod development {
    /// The default `iss` of caller tokens.
    pub const ISSUER: &str = "retract-dev";
    /// The default `aud` of caller tokens.
    pub const AUDIENCE: &str = "retract";
    /// The HS256 key a development server uses when no key is configured.
    pub const JWT_SECRET: &str = "retract-development-key-do-not-use-in-production";
}

#[cfg(test)]
mod tests {
    use prost::Message as _;

    #[test]
    fn descriptor_set_decodes_and_names_all_three_services() {
        let set = prost_types::FileDescriptorSet::decode(super::FILE_DESCRIPTOR_SET)
            .expect("the embedded descriptor set decodes");
        let services: Vec<String> = set
            .file
            .iter()
            .filter(|f| f.package() == "retract.v1")
            .flat_map(|f| f.service.iter().map(|s| s.name().to_owned()))
            .collect();
        for expected in ["TenantService", "RetractService", "AuditService"] {
            assert!(
                services.iter().any(|s| s == expected),
                "{expected} missing from {services:?}"
            );
        }
    }
}
