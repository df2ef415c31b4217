//! Request validation of IssueCredential (and of each BatchIssueCredentials
//! item): `api::credentials::issue_command`, fed the request as protobuf
//! bytes, as it arrives on the wire (bytes that do not decode are refused
//! by the transport before any handler sees them).
//!
//! The property of the proptests in `services/server/src/api/credentials.rs`:
//! no panic, and a refusal is INVALID_ARGUMENT naming its fields, never a
//! status that blames the server.

#![no_main]

use corridor_proto::v1;
use corridor_server::api::credentials::issue_command;
use libfuzzer_sys::fuzz_target;
use prost::Message;
use tonic::{Code, Status};

fuzz_target!(|data: &[u8]| {
    let Ok(req) = v1::IssueCredentialRequest::decode(data) else {
        return;
    };
    match issue_command(&req) {
        Ok(cmd) => {
            if let (Some(from), Some(until)) = (cmd.valid_from, cmd.valid_until) {
                assert!(from < until, "an empty validity window was accepted");
            }
        }
        Err(e) => {
            let status = Status::from(e);
            assert_eq!(status.code(), Code::InvalidArgument, "{status:?}");
        }
    }
});
