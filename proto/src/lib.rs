//! The `retract.v1` gRPC contract, generated from `proto/retract/v1/*.proto`.
//!
//! # Layout
//! - [`v1`]: messages, enums, and the tonic clients (`*_client`) and servers (`*_server`) of
//!   `TenantService`, `RetractService` and `AuditService`. Generated code only: conversions to
//!   the server's domain types live in the server's `api` layer.
//! - [`framed`]: `RetractService`'s server again, its event streams as pre-encoded
//!   [`framed::EventFrame`]s and the Retract tab's recipients pre-encoded in
//!   [`framed::OptionsFrame`] (the same bytes on the wire), for servers with many watchers
//!   and many callers of one tab.
//! - [`FILE_DESCRIPTOR_SET`]: the encoded descriptors of every file, for server reflection.
//! - [`development`]: the caller-token settings a development server accepts by default.

/// Generated code of package `retract.v1`.
#[allow(clippy::all, clippy::pedantic, missing_docs, rust_2018_idioms)]
pub mod v1 {
    tonic::include_proto!("retract.v1");
}

/// `RetractService`'s server with its event streams and the Retract tab's recipients
/// pre-encoded.
///
/// `RetractResponse`, `WatchRetractResponse` and `RestoreRetractJobResponse` are each one
/// field, `RetractEvent event = 1`; on the wire that is the same as `bytes event = 1` holding
/// the encoded event. This server streams [`EventFrame`]s, so a server sending one event to
/// many watchers encodes it once and copies its bytes, instead of building and encoding a
/// message per watcher. GetRetractOptions answers an [`OptionsFrame`], whose recipients are
/// encoded `RecipientOption`s: a server keeps a page's encoding for every caller while the
/// page does not change. Clients see the contract's messages; everything else of
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

    /// `GetRetractOptionsResponse` with its recipients already encoded: a repeated message
    /// field on the wire is each message's encoding after the field's key and its length,
    /// one after the other, and `recipients` holds exactly that run (see
    /// [`OptionsFrame::encode_recipients`]), written as it is. The fields go out in the
    /// order of their numbers, as prost writes the response, so the bytes are the same. The
    /// build fails when the response's fields and these part ways.
    #[derive(Clone, PartialEq, Default, Debug)]
    pub struct OptionsFrame {
        /// The delivery.
        pub delivery: ::core::option::Option<super::v1::Delivery>,
        /// `repeated RecipientOption recipients = 2`, encoded.
        pub recipients: ::prost::bytes::Bytes,
        /// Whether this caller can retract here.
        pub caller_can_retract: ::core::option::Option<super::v1::RetractPrecondition>,
        /// Whether retracting conversations is available.
        pub conversations_available: bool,
        /// The deepest conversation depth a retract may ask for.
        pub max_conversation_depth: i32,
        /// The next page's token; empty on the last page.
        pub next_page_token: ::prost::alloc::string::String,
    }

    /// `GetRetractOptionsResponse.recipients`' field number.
    const RECIPIENTS: u32 = 2;

    impl OptionsFrame {
        /// `recipients` as the field `recipients` of the response holds them.
        pub fn encode_recipients(
            recipients: &[super::v1::RecipientOption],
        ) -> ::prost::bytes::Bytes {
            use ::prost::encoding::message;
            let len = message::encoded_len_repeated(RECIPIENTS, recipients);
            let mut buf = ::prost::bytes::BytesMut::with_capacity(len);
            for recipient in recipients {
                message::encode(RECIPIENTS, recipient, &mut buf);
            }
            buf.freeze()
        }
    }

    impl ::prost::Message for OptionsFrame {
        fn encode_raw(&self, buf: &mut impl ::prost::bytes::BufMut) {
            use ::prost::encoding::{bool, int32, message, string};
            if let Some(delivery) = &self.delivery {
                message::encode(1, delivery, buf);
            }
            buf.put_slice(&self.recipients);
            if let Some(precondition) = &self.caller_can_retract {
                message::encode(3, precondition, buf);
            }
            if self.conversations_available {
                bool::encode(4, &self.conversations_available, buf);
            }
            if self.max_conversation_depth != 0 {
                int32::encode(5, &self.max_conversation_depth, buf);
            }
            if !self.next_page_token.is_empty() {
                string::encode(6, &self.next_page_token, buf);
            }
        }

        fn merge_field(
            &mut self,
            tag: u32,
            wire_type: ::prost::encoding::WireType,
            buf: &mut impl ::prost::bytes::Buf,
            ctx: ::prost::encoding::DecodeContext,
        ) -> Result<(), ::prost::DecodeError> {
            use ::prost::encoding::{bool, bytes, int32, message, skip_field, string};
            match tag {
                1 => message::merge(
                    wire_type,
                    self.delivery.get_or_insert_with(Default::default),
                    buf,
                    ctx,
                ),
                RECIPIENTS => {
                    let mut recipient = ::prost::bytes::Bytes::new();
                    bytes::merge(wire_type, &mut recipient, buf, ctx)?;
                    // Appended in place when this frame holds the only reference.
                    let mut run = ::core::mem::take(&mut self.recipients)
                        .try_into_mut()
                        .unwrap_or_else(|shared| ::prost::bytes::BytesMut::from(&shared[..]));
                    bytes::encode(RECIPIENTS, &recipient, &mut run);
                    self.recipients = run.freeze();
                    Ok(())
                }
                3 => message::merge(
                    wire_type,
                    self.caller_can_retract.get_or_insert_with(Default::default),
                    buf,
                    ctx,
                ),
                4 => bool::merge(wire_type, &mut self.conversations_available, buf, ctx),
                5 => int32::merge(wire_type, &mut self.max_conversation_depth, buf, ctx),
                6 => string::merge(wire_type, &mut self.next_page_token, buf, ctx),
                _ => skip_field(wire_type, tag, buf, ctx),
            }
        }

        fn encoded_len(&self) -> usize {
            use ::prost::encoding::{bool, int32, message, string};
            self.delivery
                .as_ref()
                .map_or(0, |delivery| message::encoded_len(1, delivery))
                + self.recipients.len()
                + self
                    .caller_can_retract
                    .as_ref()
                    .map_or(0, |precondition| message::encoded_len(3, precondition))
                + if self.conversations_available {
                    bool::encoded_len(4, &self.conversations_available)
                } else {
                    0
                }
                + if self.max_conversation_depth == 0 {
                    0
                } else {
                    int32::encoded_len(5, &self.max_conversation_depth)
                }
                + if self.next_page_token.is_empty() {
                    0
                } else {
                    string::encoded_len(6, &self.next_page_token)
                }
        }

        fn clear(&mut self) {
            *self = Self::default();
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

    use crate::{
        framed::{EventFrame, OptionsFrame},
        v1,
    };

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
    fn an_options_frame_is_on_the_wire_the_response_with_its_recipients() {
        let recipients = vec![
            v1::RecipientOption {
                address: "alex@contoso.com".into(),
                eligibility: v1::Eligibility::Eligible.into(),
                ..Default::default()
            },
            // A recipient all of whose fields are defaults still takes its place.
            v1::RecipientOption::default(),
            v1::RecipientOption {
                address: "bo@fabrikam.com".into(),
                eligibility: v1::Eligibility::DomainNotManaged.into(),
                detail: "not a registered domain".into(),
                last_retract: Some(v1::LastRetract {
                    job_id: "0b7e6c2a-4f7e-4e55-9d43-3f1f0a5e8d11".into(),
                    outcome: Some(v1::RecipientOutcome::Deleted.into()),
                    create_time: Some(prost_types::Timestamp {
                        seconds: 1_700_000_000,
                        nanos: 0,
                    }),
                }),
                delivered_after_last_retract: true,
            },
        ];
        let delivery = v1::Delivery {
            internet_message_id: "<phish@outside.example>".into(),
            recipients: vec!["alex@contoso.com".into()],
            ..Default::default()
        };
        let precondition = v1::RetractPrecondition {
            allowed: false,
            code: "MISSING_PERMISSION".into(),
            detail: "no".into(),
        };
        let response = v1::GetRetractOptionsResponse {
            delivery: Some(delivery.clone()),
            recipients: recipients.clone(),
            caller_can_retract: Some(precondition.clone()),
            conversations_available: true,
            max_conversation_depth: 3,
            next_page_token: "next".into(),
        };
        let frame = OptionsFrame {
            delivery: Some(delivery),
            recipients: OptionsFrame::encode_recipients(&recipients),
            caller_can_retract: Some(precondition),
            conversations_available: true,
            max_conversation_depth: 3,
            next_page_token: "next".into(),
        }
        .encode_to_vec();
        assert_eq!(frame, response.encode_to_vec());
        assert_eq!(
            v1::GetRetractOptionsResponse::decode(frame.as_slice()).expect("decodes"),
            response
        );
        // And back: the frame decoded from the response's bytes encodes them again.
        let decoded = OptionsFrame::decode(response.encode_to_vec().as_slice()).expect("decodes");
        assert_eq!(decoded.encode_to_vec(), frame);
        assert_eq!(decoded.encoded_len(), frame.len());
        // Without recipients and with every scalar at its default, as prost leaves them off.
        let empty = v1::GetRetractOptionsResponse::default();
        assert_eq!(
            OptionsFrame::default().encode_to_vec(),
            empty.encode_to_vec()
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
