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
        .compile_fds(descriptors)?;
    Ok(())
}
