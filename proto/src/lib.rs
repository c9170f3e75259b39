//! The `retract.v1` gRPC contract, generated from `proto/retract/v1/*.proto`.
//!
//! # Layout
//! - [`v1`]: messages, enums, and the tonic clients (`*_client`) and servers (`*_server`) of
//!   `TenantService`, `RetractService` and `AuditService`. Generated code only: conversions to
//!   the server's domain types live in the server's `api` layer.
//! - [`framed`]: `RetractService`'s server again, its event streams as pre-encoded
//!   [`framed::EventFrame`]s (the same bytes on the wire), for servers with many watchers.
//! - [`FILE_DESCRIPTOR_SET`]: the encoded descriptors of every file, for server reflection.
//! - [`development`]: the caller-token settings a development server accepts by default.

/// Generated code of package `retract.v1`.
#[allow(clippy::all, clippy::pedantic, missing_docs, rust_2018_idioms)]
pub mod v1 {
    tonic::include_proto!("retract.v1");
}

/// `RetractService`'s server with its event streams pre-encoded.
///
/// `RetractResponse`, `WatchRetractResponse` and `RestoreRetractJobResponse` are each one
/// field, `RetractEvent event = 1`; on the wire that is the same as `bytes event = 1` holding
/// the encoded event. This server streams [`EventFrame`]s, so a server sending one event to
/// many watchers encodes it once and copies its bytes, instead of building and encoding a
/// message per watcher. Clients see the contract's messages; everything else of
/// `RetractService` is the same types as [`v1`].
pub mod framed {
    /// One streamed response of Retract, WatchRetract or RestoreRetractJob: its event, encoded.
    #[derive(Clone, PartialEq, Eq, ::prost::Message)]
    pub struct EventFrame {
        /// An encoded `retract.v1.RetractEvent`.
        #[prost(bytes = "bytes", tag = "1")]
        pub event: ::prost::bytes::Bytes,
    }

    impl EventFrame {
        /// The frame of `event`. An event always has a job id and a kind, so its encoding is
        /// never empty (an empty one would leave the field off the wire: `event` unset).
        pub fn of(event: &super::v1::RetractEvent) -> Self {
            let encoded = ::prost::Message::encode_to_vec(event);
            debug_assert!(!encoded.is_empty(), "an event without job id or kind");
            Self {
                event: encoded.into(),
            }
        }
    }

    #[allow(clippy::all, clippy::pedantic, missing_docs, rust_2018_idioms)]
    mod generated {
        include!(concat!(env!("OUT_DIR"), "/framed/retract.v1.rs"));
    }
    pub use generated::*;
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

    use crate::{framed::EventFrame, v1};

    #[test]
    fn an_event_frame_is_on_the_wire_what_each_streamed_response_is() {
        let event = v1::RetractEvent {
            job_id: "0b7e6c2a-4f7e-4e55-9d43-3f1f0a5e8d11".into(),
            sequence: 42,
            occur_time: Some(prost_types::Timestamp {
                seconds: 1_700_000_000,
                nanos: 5,
            }),
            kind: Some(v1::retract_event::Kind::RecipientUpdate(
                v1::RecipientUpdate {
                    mailbox: "alex@contoso.com".into(),
                    depth: 1,
                    copies_found_count: 2,
                    ..Default::default()
                },
            )),
        };
        let frame = EventFrame::of(&event).encode_to_vec();
        let watch = v1::WatchRetractResponse {
            event: Some(event.clone()),
        };
        assert_eq!(frame, watch.encode_to_vec());
        assert_eq!(
            frame,
            v1::RetractResponse {
                event: Some(event.clone())
            }
            .encode_to_vec()
        );
        assert_eq!(
            frame,
            v1::RestoreRetractJobResponse { event: Some(event) }.encode_to_vec()
        );
        assert_eq!(
            v1::WatchRetractResponse::decode(frame.as_slice()).expect("decodes"),
            watch
        );
    }

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
