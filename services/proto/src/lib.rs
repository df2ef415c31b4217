//! The `g60.talent.v1` gRPC API, generated from `proto/g60/talent/v1/*.proto`.
//!
//! Owns nothing but generated code: message types, client and server stubs,
//! and the encoded file descriptor set for server reflection. Hand-written
//! logic lives in `corridor-domain` and `corridor-server`.

#![allow(missing_docs, clippy::all)]

/// Generated code of package `g60.talent.v1`.
pub mod v1 {
    tonic::include_proto!("g60.talent.v1");
}

/// The encoded `FileDescriptorSet` of the API, for server reflection.
pub const FILE_DESCRIPTOR_SET: &[u8] =
    include_bytes!(concat!(env!("OUT_DIR"), "/g60_talent_v1_descriptor.bin"));
