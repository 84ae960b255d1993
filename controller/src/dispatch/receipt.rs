//! Checks an agent's signed receipt of a result (run by the controller
//! account, in the fan-out): the signature by the agent's audit key, pinned
//! per target at first sight in `<pki>/agents/<name>.audit.pub`, and that
//! what it signs is what arrived (request, exit, output digests, the
//! controller head the request carried). The outcome record keeps the
//! receipt, its verdict and the agent's audit head; a receipt that does not
//! verify is recorded and reported in the answer (`receipt_error`), never
//! dropped.

use std::io::Write;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};

use aiops_certs::signing::VerifyingKey;
use aiops_proto::agent::v1 as pb;
use serde_json::{Map, Value};

use super::client::Finished;

/// What the request carried that the receipt must repeat.
pub struct Expected<'a> {
    /// Request id.
    pub request_id: &'a str,
    /// Target name.
    pub target: &'a str,
    /// The controller head sent in the request.
    pub controller_seq: u64,
    /// Its hash.
    pub controller_hash: &'a str,
}

/// Where the agent's audit key is pinned.
pub fn pin_path(agent_cert: &Path) -> PathBuf {
    agent_cert.with_extension("audit.pub")
}

/// The key pinned for a target, if any (`ed25519:<hex>`).
pub fn pinned(pin: &Path) -> Result<Option<VerifyingKey>, String> {
    match std::fs::read_to_string(pin) {
        Ok(t) => VerifyingKey::parse(&t)
            .map(Some)
            .map_err(|e| format!("{}: {e}", pin.display())),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(format!("{}: {e}", pin.display())),
    }
}

/// Checks the receipt in `got.exit`; returns the fields for the outcome
/// record and, when it does not verify, why.
pub fn check(
    pin: &Path,
    want: &Expected<'_>,
    got: &Finished,
) -> (Map<String, Value>, Option<String>) {
    let exit = &got.exit;
    let mut rec = Map::new();
    rec.insert("receipt".into(), hex::encode(&exit.receipt).into());
    rec.insert(
        "receipt_sig".into(),
        hex::encode(&exit.receipt_signature).into(),
    );
    rec.insert("agent_key".into(), exit.audit_key.clone().into());
    let problem = verdict(pin, want, got, &mut rec).err();
    rec.insert(
        "receipt_status".into(),
        if problem.is_some() { "bad" } else { "verified" }.into(),
    );
    if let Some(p) = &problem {
        rec.insert("receipt_problem".into(), p.clone().into());
    }
    (rec, problem)
}

fn verdict(
    pin: &Path,
    want: &Expected<'_>,
    got: &Finished,
    rec: &mut Map<String, Value>,
) -> Result<(), String> {
    let exit = &got.exit;
    if exit.receipt.is_empty() {
        return Err("the agent sent no signed receipt".into());
    }
    let sent =
        VerifyingKey::parse(&exit.audit_key).map_err(|e| format!("the agent's audit key: {e}"))?;
    let key = match pinned(pin)? {
        Some(k) if k != sent => {
            return Err(format!(
                "the agent signed with {}, not the audit key pinned in {} ({}); if the agent was \
                 re-installed on purpose, remove the pin",
                sent.to_text(),
                pin.display(),
                k.to_text()
            ));
        }
        Some(k) => k,
        None => {
            // First sight: pin it (trust on first use, like an SSH host key).
            pin_key(pin, &sent)?;
            rec.insert("agent_key_pinned".into(), true.into());
            sent
        }
    };
    key.verify(
        &aiops_proto::receipt_message(&exit.receipt),
        &exit.receipt_signature,
    )
    .map_err(|_| {
        "the receipt's signature does not verify with the agent's pinned audit key".to_string()
    })?;
    let r: pb::Receipt = prost::Message::decode(exit.receipt.as_slice())
        .map_err(|e| format!("the signed receipt does not decode: {e}"))?;
    // The agent's head is recorded once the signature holds.
    rec.insert("agent_seq".into(), r.agent_seq.into());
    rec.insert("agent_hash".into(), r.agent_hash.clone().into());
    let mismatch = |what: &str, signed: &dyn std::fmt::Display, seen: &dyn std::fmt::Display| {
        Err(format!(
            "the receipt signs {what} {signed}, but {seen} arrived or was sent"
        ))
    };
    if r.request_id != want.request_id {
        return mismatch("request", &r.request_id, &want.request_id);
    }
    if r.target != want.target {
        return mismatch("target", &r.target, &want.target);
    }
    if (r.controller_seq, r.controller_hash.as_str()) != (want.controller_seq, want.controller_hash)
    {
        return mismatch(
            "controller head",
            &format_args!("{} {}", r.controller_seq, r.controller_hash),
            &format_args!("{} {}", want.controller_seq, want.controller_hash),
        );
    }
    if (r.exit_code, r.signal, r.timed_out) != (exit.exit_code, exit.signal, exit.timed_out) {
        return mismatch(
            "exit",
            &format_args!("{}/{}/{}", r.exit_code, r.signal, r.timed_out),
            &format_args!("{}/{}/{}", exit.exit_code, exit.signal, exit.timed_out),
        );
    }
    if (r.stdout_sha256.as_str(), r.stdout_sent)
        != (got.stdout_sha256.as_str(), got.stdout_received)
    {
        return mismatch("stdout", &r.stdout_sha256, &got.stdout_sha256);
    }
    if (r.stderr_sha256.as_str(), r.stderr_sent)
        != (got.stderr_sha256.as_str(), got.stderr_received)
    {
        return mismatch("stderr", &r.stderr_sha256, &got.stderr_sha256);
    }
    Ok(())
}

fn pin_key(pin: &Path, key: &VerifyingKey) -> Result<(), String> {
    // A controller set up without the agents' certificates on disk (they are
    // only needed to enroll) has no `<pki>/agents` yet: the pin needs it.
    if let Some(dir) = pin.parent()
        && !dir.exists()
    {
        use std::os::unix::fs::DirBuilderExt;
        std::fs::DirBuilder::new()
            .recursive(true)
            .mode(0o755)
            .create(dir)
            .map_err(|e| format!("pinning the agent's audit key in {}: {e}", pin.display()))?;
    }
    let mut f = match std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o644)
        .open(pin)
    {
        Ok(f) => f,
        // Another run pinned it first: it must be the same key.
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {
            return match pinned(pin)? {
                Some(k) if &k == key => Ok(()),
                _ => Err(format!(
                    "the agent signed with {}, not the audit key pinned in {}",
                    key.to_text(),
                    pin.display()
                )),
            };
        }
        Err(e) => {
            return Err(format!(
                "pinning the agent's audit key in {}: {e}",
                pin.display()
            ));
        }
    };
    f.write_all(format!("{}\n", key.to_text()).as_bytes())
        .and_then(|()| f.sync_all())
        .map_err(|e| format!("pinning the agent's audit key in {}: {e}", pin.display()))
}
