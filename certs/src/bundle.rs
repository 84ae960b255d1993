//! The enrollment bundle: one YAML file holding everything a target needs to
//! trust the controller and be trusted by it (CA, the agent's certificate and
//! key, the controller's identity and public keys). `aiops certs bundle`
//! writes it; `aiops-agent enroll` reads it. It holds a private key: written
//! 0600 and deleted once installed.

use std::net::SocketAddr;

use serde::{Deserialize, Serialize};

/// Version of the bundle format this agent reads.
pub const BUNDLE_FORMAT: u32 = 1;

/// The enrollment bundle (YAML), as `aiops certs bundle NAME` writes it.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct Bundle {
    /// Format version ([`BUNDLE_FORMAT`]).
    pub aiops_enrollment: u32,
    /// The target's name (a DNS name in its certificate).
    pub name: String,
    /// Where the agent listens.
    pub listen: SocketAddr,
    /// Where the controller connects (informational).
    pub address: String,
    /// The controller certificate's identity (DNS name).
    pub controller_identity: String,
    /// The controller's request-signing public key, `ed25519:<hex>`.
    pub controller_signing_key: String,
    /// Approver public keys to pin (`ed25519:<hex>`); approved requests need a grant
    /// signed by one of them.
    #[serde(default)]
    pub approver_keys: Vec<String>,
    /// The CA certificate (PEM).
    pub ca_pem: String,
    /// The agent's server certificate (PEM).
    pub agent_cert_pem: String,
    /// The agent's private key (PEM).
    pub agent_key_pem: String,
    /// When the bundle was made (RFC 3339).
    pub issued_at: String,
    /// When the agent certificate expires (RFC 3339).
    pub cert_not_after: String,
}
