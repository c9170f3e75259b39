//! Compiles `retract/v1/*.proto` with protox (pure Rust, no `protoc`), generates the tonic
//! clients and servers from the resulting descriptors, and writes the encoded descriptor set
//! next to them for server reflection.

use std::{env, fs, path::PathBuf};

use prost::Message as _;

const PROTOS: &[&str] = &[
    "retract/v1/tenant_service.proto",
    "retract/v1/retract_service.proto",
    "retract/v1/audit_service.proto",
    "retract/v1/errors.proto",
];

/// The streamed responses that are one `RetractEvent event = 1` each.
const FRAMED: &[&str] = &[
    "RetractResponse",
    "WatchRetractResponse",
    "RestoreRetractJobResponse",
];

/// GetRetractOptionsResponse field by field (number, name, type, repeated, optional or in a
/// oneof), as `framed::OptionsFrame` mirrors it with `recipients` pre-encoded.
#[rustfmt::skip]
const OPTIONS_FIELDS: &[(i32, &str, &str, bool, bool)] = &[
    (1, "delivery", ".retract.v1.Delivery", false, false),
    (2, "recipients", ".retract.v1.RecipientOption", true, false),
    (3, "caller_can_retract", ".retract.v1.RetractPrecondition", false, false),
    (4, "conversations_available", "bool", false, false),
    (5, "max_conversation_depth", "int32", false, false),
    (6, "next_page_token", "string", false, false),
];

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let out_dir = PathBuf::from(env::var("OUT_DIR")?);
    for proto in PROTOS {
        println!("cargo:rerun-if-changed={proto}");
    }

    let descriptors = protox::compile(PROTOS, ["."])?;
    fs::write(
        out_dir.join("retract_descriptor.bin"),
        descriptors.encode_to_vec(),
    )?;

    tonic_prost_build::configure()
        .build_client(true)
        .build_server(true)
        .compile_fds(descriptors.clone())?;

    // RetractService's server once more, its three event streams typed as `EventFrame`: the
    // same bytes on the wire, an event encoded once for all its watchers (see `framed`).
    // Only a response that is exactly `RetractEvent event = 1` may be framed: a field added
    // to one later would otherwise never reach the wire.
    for response in FRAMED {
        let message = descriptors
            .file
            .iter()
            .filter(|f| f.package() == "retract.v1")
            .flat_map(|f| &f.message_type)
            .find(|m| m.name() == *response)
            .ok_or_else(|| format!("{response} is not in retract.v1"))?;
        let framable = matches!(
            message.field.as_slice(),
            [field] if field.number() == 1 && field.type_name() == ".retract.v1.RetractEvent"
        );
        if !framable {
            return Err(format!(
                "{response} is no longer just `RetractEvent event = 1`: stop framing it (proto/build.rs)"
            )
            .into());
        }
    }
    // GetRetractOptionsResponse as `OptionsFrame`: its recipients encoded once per page and
    // version, for every caller of the tab. Only while every field is one OptionsFrame has.
    let options = descriptors
        .file
        .iter()
        .filter(|f| f.package() == "retract.v1")
        .flat_map(|f| &f.message_type)
        .find(|m| m.name() == "GetRetractOptionsResponse")
        .ok_or("GetRetractOptionsResponse is not in retract.v1")?;
    let fields: Vec<(i32, &str, &str, bool, bool)> = options
        .field
        .iter()
        .map(|f| {
            let kind = match f.r#type() {
                prost_types::field_descriptor_proto::Type::Bool => "bool",
                prost_types::field_descriptor_proto::Type::Int32 => "int32",
                prost_types::field_descriptor_proto::Type::String => "string",
                _ => f.type_name(),
            };
            let repeated = f.label() == prost_types::field_descriptor_proto::Label::Repeated;
            // A proto3 `optional` scalar is sent even at its default: OptionsFrame would not.
            let presence = f.proto3_optional() || f.oneof_index.is_some();
            (f.number(), f.name(), kind, repeated, presence)
        })
        .collect();
    if fields != OPTIONS_FIELDS {
        return Err(format!(
            "GetRetractOptionsResponse is now {fields:?}: change framed::OptionsFrame to match (proto/build.rs)"
        )
        .into());
    }
    let mut service = descriptors;
    service
        .file
        .retain(|f| f.name() == "retract/v1/retract_service.proto");
    for file in &mut service.file {
        file.message_type.clear();
        file.enum_type.clear();
        file.extension.clear();
    }
    let framed = out_dir.join("framed");
    fs::create_dir_all(&framed)?;
    let mut build = tonic_prost_build::configure()
        .build_client(false)
        .build_server(true)
        .out_dir(framed)
        .extern_path(".retract.v1", "crate::v1");
    for response in FRAMED {
        build = build.extern_path(
            format!(".retract.v1.{response}"),
            "crate::framed::EventFrame",
        );
    }
    build = build.extern_path(
        ".retract.v1.GetRetractOptionsResponse",
        "crate::framed::OptionsFrame",
    );
    build.compile_fds(service)?;
    Ok(())
}
