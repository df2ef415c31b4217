//! Compiles `proto/g60/talent/v1/*.proto` with protox (no `protoc` needed),
//! generates the tonic clients and servers, and writes the file descriptor
//! set that server reflection serves.

use std::path::PathBuf;

use prost::Message;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../proto");
    let files = [
        "common",
        "city_registry",
        "credential",
        "verification",
        "recognition",
        "policy",
        "audit",
    ]
    .map(|f| root.join(format!("g60/talent/v1/{f}.proto")));
    let fds = protox::compile(&files, [&root])?;
    let out = PathBuf::from(std::env::var("OUT_DIR")?);
    std::fs::write(
        out.join("g60_talent_v1_descriptor.bin"),
        fds.encode_to_vec(),
    )?;
    tonic_prost_build::configure()
        .build_client(true)
        .build_server(true)
        .compile_fds(fds)?;
    println!("cargo:rerun-if-changed={}", root.display());
    Ok(())
}
