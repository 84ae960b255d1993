//! The agent's audit key and the signed receipts of outcomes.
//!
//! `<state_dir>/audit.key` is an Ed25519 key the agent daemon creates at its
//! first start (mode 0600, owned by the daemon's account) and checks at
//! every start: a key another account owns, or one its group or others can
//! read, is refused. It is not in the enrollment bundle, so the controller
//! (which issued the TLS key) never held it, and the command account
//! (`aiops-run`) and the `aiops` group cannot read it. With it the agent
//! signs, for every outcome, a [`pb::Receipt`]: the request id, how it
//! ended, the SHA-256 of the output bytes as sent, and the seq/hash of its
//! own `executed` record (its audit head), which the controller verifies
//! against the key it pinned for this target and records.

use std::io::Write;
use std::os::unix::fs::{MetadataExt, OpenOptionsExt};
use std::path::Path;

use aiops_certs::signing::{SigningKey, VerifyingKey};
use aiops_proto::agent::v1 as pb;

pub use aiops_proto::receipt_message;

/// Loads `<state_dir>/audit.key`, creating it on first start. Refuses a
/// key owned by another account or readable by anyone else.
pub fn load_or_create(state_dir: &Path) -> Result<SigningKey, String> {
    let path = state_dir.join("audit.key");
    let err = |e: &dyn std::fmt::Display| format!("{}: {e}", path.display());
    match std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(&path)
    {
        Ok(mut f) => {
            let key = SigningKey::generate();
            f.write_all(key.to_pem().as_bytes())
                .and_then(|()| f.sync_all())
                .map_err(|e| err(&e))?;
            tracing::info!(key = %key.verifying_key().to_text(), path = %path.display(), "created the agent's audit key");
        }
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {}
        Err(e) => return Err(err(&e)),
    }
    let meta = std::fs::symlink_metadata(&path).map_err(|e| err(&e))?;
    if !meta.is_file() {
        return Err(err(&"not a regular file"));
    }
    let me = nix::unistd::geteuid().as_raw();
    if meta.uid() != me {
        return Err(err(&format_args!(
            "owned by uid {}, not this agent's account (uid {me}): only the agent daemon may hold its audit key",
            meta.uid()
        )));
    }
    if meta.mode() & 0o077 != 0 {
        return Err(err(&format_args!(
            "mode {:o}: its group or others could read it and sign receipts as this agent; chmod 600",
            meta.mode() & 0o7777
        )));
    }
    let text = std::fs::read_to_string(&path).map_err(|e| err(&e))?;
    SigningKey::from_pem(&text).map_err(|e| err(&e))
}

/// Writes `<state_dir>/audit.pub` (0644), the public half, for `audit
/// verify` run by someone who may not read the key (and to compare with
/// the controller's pin). Rewritten when it differs.
pub fn write_public(state_dir: &Path, key: &VerifyingKey) -> Result<(), String> {
    let path = state_dir.join("audit.pub");
    let text = format!("{}\n", key.to_text());
    if std::fs::read_to_string(&path).ok().as_deref() == Some(text.as_str()) {
        return Ok(());
    }
    let tmp = state_dir.join("audit.pub.tmp");
    let _ = std::fs::remove_file(&tmp);
    std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o644)
        .open(&tmp)
        .and_then(|mut f| f.write_all(text.as_bytes()).and_then(|()| f.sync_all()))
        .and_then(|()| std::fs::rename(&tmp, &path))
        .map_err(|e| format!("{}: {e}", path.display()))
}

/// The key `aiops-agent audit verify` checks checkpoints with: `given`
/// (`ed25519:<hex>` or a file holding it), else the configured state_dir's
/// `audit.key` (when this account can read it), else its `audit.pub`;
/// None when there is none of these.
pub fn verify_key(
    given: Option<&str>,
    config: Option<&crate::config::AgentConfig>,
) -> Result<Option<VerifyingKey>, String> {
    if let Some(g) = given {
        let text = if g.trim_start().starts_with("ed25519:") {
            g.to_string()
        } else {
            std::fs::read_to_string(g).map_err(|e| format!("--key {g}: {e}"))?
        };
        return VerifyingKey::parse(&text)
            .map(Some)
            .map_err(|e| format!("--key {g}: {e}"));
    }
    let Some(c) = config else {
        return Ok(None);
    };
    if let Ok(text) = std::fs::read_to_string(c.state_dir.join("audit.key")) {
        let key = SigningKey::from_pem(&text)
            .map_err(|e| format!("{}: {e}", c.state_dir.join("audit.key").display()))?;
        return Ok(Some(key.verifying_key()));
    }
    let path = c.state_dir.join("audit.pub");
    match std::fs::read_to_string(&path) {
        Ok(t) => VerifyingKey::parse(&t)
            .map(Some)
            .map_err(|e| format!("{}: {e}", path.display())),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(format!("{}: {e}", path.display())),
    }
}

/// SHA-256 of one stream's chunks in the order they were sent.
pub struct StreamDigest {
    ctx: ring::digest::Context,
    /// Bytes hashed.
    pub bytes: u64,
}

impl Default for StreamDigest {
    fn default() -> Self {
        StreamDigest {
            ctx: ring::digest::Context::new(&ring::digest::SHA256),
            bytes: 0,
        }
    }
}

impl StreamDigest {
    /// Adds a chunk.
    pub fn update(&mut self, data: &[u8]) {
        self.ctx.update(data);
        self.bytes += data.len() as u64;
    }

    /// Hex digest.
    pub fn finish(self) -> String {
        hex::encode(self.ctx.finish().as_ref())
    }
}

/// Encodes and signs `receipt`: (bytes, signature).
pub fn sign(key: &SigningKey, receipt: &pb::Receipt) -> (Vec<u8>, Vec<u8>) {
    let bytes = prost::Message::encode_to_vec(receipt);
    let sig = key.sign(&receipt_message(&bytes));
    (bytes, sig)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    #[test]
    fn the_key_is_created_once_private_and_refused_when_readable() {
        let dir = tempfile::tempdir().unwrap();
        let a = load_or_create(dir.path()).unwrap();
        let b = load_or_create(dir.path()).unwrap();
        assert_eq!(a.verifying_key(), b.verifying_key(), "created once");
        let path = dir.path().join("audit.key");
        assert_eq!(std::fs::metadata(&path).unwrap().mode() & 0o777, 0o600);
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o640)).unwrap();
        let e = load_or_create(dir.path()).unwrap_err();
        assert!(e.contains("mode 640"), "{e}");
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600)).unwrap();
        if nix::unistd::geteuid().is_root() {
            nix::unistd::chown(&path, Some(nix::unistd::Uid::from_raw(65534)), None).unwrap();
            let e = load_or_create(dir.path()).unwrap_err();
            assert!(e.contains("owned by uid 65534"), "{e}");
        }
    }

    #[test]
    fn a_receipt_verifies_only_with_its_key_and_bytes() {
        let key = SigningKey::generate();
        let r = pb::Receipt {
            request_id: "r1".into(),
            exit_code: 3,
            ..Default::default()
        };
        let (bytes, sig) = sign(&key, &r);
        let vk = key.verifying_key();
        vk.verify(&receipt_message(&bytes), &sig).unwrap();
        assert!(
            vk.verify(&bytes, &sig).is_err(),
            "the domain prefix is signed"
        );
        let mut other = bytes.clone();
        *other.last_mut().unwrap() ^= 1;
        assert!(vk.verify(&receipt_message(&other), &sig).is_err());
        let wrong = SigningKey::generate().verifying_key();
        assert!(wrong.verify(&receipt_message(&bytes), &sig).is_err());
    }
}
