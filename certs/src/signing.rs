//! Ed25519 signatures over encoded requests and approvals.

use ring::signature::{ED25519, Ed25519KeyPair, KeyPair, UnparsedPublicKey};

/// A private Ed25519 signing key (PKCS#8).
pub struct SigningKey {
    pair: Ed25519KeyPair,
    pkcs8: Vec<u8>,
}

impl std::fmt::Debug for SigningKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Never print key material.
        write!(f, "SigningKey({})", self.verifying_key().key_id())
    }
}

/// A public Ed25519 key, written as `ed25519:<64 hex digits>`.
#[derive(Clone, PartialEq, Eq)]
pub struct VerifyingKey {
    raw: [u8; 32],
}

impl std::fmt::Debug for VerifyingKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "VerifyingKey({})", self.key_id())
    }
}

/// Errors from key handling and signature checks.
#[derive(Debug, thiserror::Error)]
pub enum SigningError {
    /// Key bytes or text are not a valid key.
    #[error("invalid key: {0}")]
    InvalidKey(String),
    /// The signature does not verify.
    #[error("bad signature")]
    BadSignature,
}

const PEM_LABEL: &str = "PRIVATE KEY";

impl SigningKey {
    /// Generates a new random key.
    pub fn generate() -> SigningKey {
        let rng = ring::rand::SystemRandom::new();
        let pkcs8 = Ed25519KeyPair::generate_pkcs8(&rng).expect("system RNG works");
        SigningKey::from_pkcs8(pkcs8.as_ref()).expect("fresh key is valid")
    }

    /// Loads from PKCS#8 DER.
    pub fn from_pkcs8(der: &[u8]) -> Result<SigningKey, SigningError> {
        let pair = Ed25519KeyPair::from_pkcs8_maybe_unchecked(der)
            .map_err(|e| SigningError::InvalidKey(e.to_string()))?;
        Ok(SigningKey {
            pair,
            pkcs8: der.to_vec(),
        })
    }

    /// Loads from a PEM `PRIVATE KEY` block.
    pub fn from_pem(text: &str) -> Result<SigningKey, SigningError> {
        let der = pem_decode(text, PEM_LABEL).ok_or_else(|| {
            SigningError::InvalidKey("expected a PEM PRIVATE KEY block".to_string())
        })?;
        SigningKey::from_pkcs8(&der)
    }

    /// PEM text of the private key (write it 0600; never print it).
    pub fn to_pem(&self) -> String {
        pem_encode(PEM_LABEL, &self.pkcs8)
    }

    /// The matching public key.
    pub fn verifying_key(&self) -> VerifyingKey {
        let mut raw = [0u8; 32];
        raw.copy_from_slice(self.pair.public_key().as_ref());
        VerifyingKey { raw }
    }

    /// Signs `msg`.
    pub fn sign(&self, msg: &[u8]) -> Vec<u8> {
        self.pair.sign(msg).as_ref().to_vec()
    }
}

impl VerifyingKey {
    /// Parses `ed25519:<hex>` (surrounding white space ignored).
    pub fn parse(text: &str) -> Result<VerifyingKey, SigningError> {
        let hexpart = text
            .trim()
            .strip_prefix("ed25519:")
            .ok_or_else(|| SigningError::InvalidKey("expected ed25519:<hex>".into()))?;
        let bytes = hex::decode(hexpart).map_err(|e| SigningError::InvalidKey(e.to_string()))?;
        let raw: [u8; 32] = bytes
            .try_into()
            .map_err(|_| SigningError::InvalidKey("expected 32 bytes".into()))?;
        Ok(VerifyingKey { raw })
    }

    /// The `ed25519:<hex>` text form.
    pub fn to_text(&self) -> String {
        format!("ed25519:{}", hex::encode(self.raw))
    }

    /// Short identifier: hex of the first 8 bytes of SHA-256 of the key.
    pub fn key_id(&self) -> String {
        let d = ring::digest::digest(&ring::digest::SHA256, &self.raw);
        hex::encode(&d.as_ref()[..8])
    }

    /// Checks `sig` over exactly `msg`.
    pub fn verify(&self, msg: &[u8], sig: &[u8]) -> Result<(), SigningError> {
        UnparsedPublicKey::new(&ED25519, &self.raw)
            .verify(msg, sig)
            .map_err(|_| SigningError::BadSignature)
    }
}

/// Encodes `der` as a PEM block with `label`.
pub fn pem_encode(label: &str, der: &[u8]) -> String {
    use base64::Engine;
    let b64 = base64::engine::general_purpose::STANDARD.encode(der);
    let mut out = format!("-----BEGIN {label}-----\n");
    for chunk in b64.as_bytes().chunks(64) {
        out.push_str(std::str::from_utf8(chunk).expect("base64 is ASCII"));
        out.push('\n');
    }
    out.push_str(&format!("-----END {label}-----\n"));
    out
}

/// Decodes the first PEM block labelled `label` in `text`.
pub fn pem_decode(text: &str, label: &str) -> Option<Vec<u8>> {
    use base64::Engine;
    let begin = format!("-----BEGIN {label}-----");
    let end = format!("-----END {label}-----");
    let start = text.find(&begin)? + begin.len();
    let stop = start + text[start..].find(&end)?;
    let body: String = text[start..stop].split_whitespace().collect();
    base64::engine::general_purpose::STANDARD.decode(body).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sign_verify_round_trip_and_tamper() {
        let k = SigningKey::generate();
        let v = VerifyingKey::parse(&k.verifying_key().to_text()).unwrap();
        let sig = k.sign(b"hello");
        v.verify(b"hello", &sig).unwrap();
        assert!(v.verify(b"hellp", &sig).is_err());
        let other = SigningKey::generate().verifying_key();
        assert!(other.verify(b"hello", &sig).is_err());
        let again = SigningKey::from_pem(&k.to_pem()).unwrap();
        assert_eq!(again.verifying_key(), k.verifying_key());
        assert!(!format!("{k:?}").contains(&k.to_pem()[30..60]));
    }
}
