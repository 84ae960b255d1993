//! gRPC API between the aiops controller and its agents.
//!
//! The code under `generated/` is produced by `protox` + `tonic-prost-build`
//! from `aiops/agent/v1/agent.proto` and checked in; `tests/codegen.rs`
//! regenerates it and fails when the checked-in copy is stale
//! (`AIOPS_BLESS=1 cargo test -p aiops-proto` rewrites it).

/// `aiops.agent.v1`: the Agent service and its messages.
pub mod agent {
    /// Version 1 of the agent API.
    #[allow(warnings, clippy::all, clippy::pedantic, missing_docs)]
    pub mod v1 {
        include!("generated/aiops.agent.v1.rs");
    }
}

pub mod plan;

/// Encoded `FileDescriptorSet` of the API, for gRPC server reflection.
pub const FILE_DESCRIPTOR_SET: &[u8] = include_bytes!("generated/descriptor.bin");

/// What an agent's receipt signature covers: this prefix, then the encoded
/// `Receipt`. The prefix starts with a zero byte, which never begins a valid
/// protobuf message, so a receipt signature can never be passed off as a
/// signature over a request or a grant, nor the reverse.
pub const RECEIPT_DOMAIN: &[u8] = b"\0aiops-receipt-v1\0";

/// The bytes an agent signs for an encoded receipt.
pub fn receipt_message(encoded: &[u8]) -> Vec<u8> {
    [RECEIPT_DOMAIN, encoded].concat()
}
