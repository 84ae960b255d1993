//! Sending decided commands to agents, run by the controller account
//! (`aiopsexec`: the only account that can read the controller's TLS key and
//! request-signing key):
//!
//! - [`client`]: the mutual-TLS gRPC client (connect, execute, describe);
//! - [`fanout`]: sign, audit and send one command to a set of targets;
//! - [`saved`]: `save_output` files;
//! - [`inflight`]: markers that let the next dispatch record the outcome of
//!   requests a killed controller left open;
//! - [`receipt`]: the agents' signed receipts, checked and recorded;
//! - [`chains`]: `aiops audit verify --targets`, the cross-check of the
//!   controller's log against each agent's;
//! - redaction (secrets removed from what the assistant is shown) is the
//!   `aiops-redact` crate, shared with the audit exporter.
//!
//! It knows nothing of approvals or of `aiops run`; both call it.

pub mod chains;
pub mod client;
pub mod fanout;
pub mod inflight;
pub mod receipt;
pub mod saved;

pub use fanout::{Sender, execute_targets, finish};
