//! Cryptography and identity for aiops.
//!
//! - [`pki`]: the certificate authority, controller and agent certificates
//!   (rcgen), written with private keys mode 0600.
//! - [`signing`]: Ed25519 request signing and verification (ring).
//! - [`tls`]: rustls client and server configurations (TLS 1.3, mutual
//!   authentication, `ring` provider only) and peer identity checks.
//!
//! The audit log is the `aiops-audit` crate; the clock and file helpers are
//! `aiops-sys`.
#![forbid(unsafe_code)]
#![warn(missing_docs)]

pub mod bundle;
pub mod pki;
pub mod signing;
pub mod tls;

/// Installs the `ring` crypto provider as the process default (idempotent).
pub fn install_crypto_provider() {
    let _ = rustls::crypto::ring::default_provider().install_default();
}
