//! Compiles the JobService protos with protox (pure Rust: no protoc needed, works offline),
//! then generates prost messages, tonic stubs and proto3-JSON (pbjson) serde impls.
use std::{env, path::PathBuf};

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let protos = [
        "proto/backend/api/v1beta1/job.proto",
        "proto/backend/api/v1beta1/filter.proto",
        "proto/backend/api/v1beta1/error.proto",
    ];
    println!("cargo:rerun-if-changed=proto");
    let fds = protox::compile(protos, ["proto"])?;
    let out = PathBuf::from(env::var("OUT_DIR")?);
    let descriptor_path = out.join("api_descriptor.bin");
    std::fs::write(&descriptor_path, prost::Message::encode_to_vec(&fds))?;

    tonic_prost_build::configure()
        .build_client(true)
        .build_server(true)
        .compile_well_known_types(true)
        .extern_path(".google.protobuf", "::pbjson_types")
        .compile_fds(fds)?;

    // Proto field names in JSON, as KFP's grpc-gateway marshaler (`UseProtoNames`) serves them;
    // unknown input fields are rejected (pbjson's default).
    pbjson_build::Builder::new()
        .register_descriptors(&std::fs::read(&descriptor_path)?)?
        .preserve_proto_field_names()
        .build(&[".api"])?;
    Ok(())
}
