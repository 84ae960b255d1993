//! What a killed controller leaves open. Before its write-ahead `requested`
//! records, a dispatch writes a marker under `runtime_dir/inflight` naming
//! them and holds an exclusive `flock` on it for as long as it runs; the
//! marker goes once their outcomes are in the log. A process killed on the
//! spot (`kill -9`, the OOM killer) cannot write an outcome, but the kernel
//! drops its lock: the next dispatch finds the marker unlocked, and writes
//! one `internal_error` outcome ("may have run, see the agent's log") for
//! each of its requests that has a `requested` record and no outcome yet.
//! A marker is also kept when an outcome could not be written after its
//! retries (`audit_failed`), so the next start records that too.
//!
//! The marker is not synced: it survives a killed process (the page cache
//! does), not a power cut, after which `aiops audit verify` is the place to
//! look.

use std::fs::{File, OpenOptions};
use std::io::Write;
use std::os::unix::fs::{MetadataExt, OpenOptionsExt};
use std::path::{Path, PathBuf};

use aiops_audit::AuditLog;
use nix::fcntl::{Flock, FlockArg};
use serde_json::{Map, Value, json};

/// The markers' directory.
fn dir(runtime_dir: &Path) -> PathBuf {
    runtime_dir.join("inflight")
}

/// A live dispatch's marker: locked while held. Dropped without
/// [`Marker::done`], it stays for the next sweep.
pub struct Marker {
    path: PathBuf,
    _lock: Flock<File>,
}

impl Marker {
    /// Writes and locks the marker for these `requested` records (their
    /// fields, before the write-ahead). Fails when the runtime directory
    /// cannot take it: then nothing may be sent.
    pub fn create(runtime_dir: &Path, bases: &[Map<String, Value>]) -> std::io::Result<Marker> {
        use std::os::unix::fs::DirBuilderExt;
        let dir = dir(runtime_dir);
        std::fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(&dir)?;
        let m = std::fs::symlink_metadata(&dir)?;
        if !m.is_dir() || m.uid() != nix::unistd::geteuid().as_raw() || m.mode() & 0o022 != 0 {
            return Err(std::io::Error::other(
                "not this account's own directory (mode 0700): remove it, it is recreated",
            ));
        }
        let path = dir.join(format!("{}.json", uuid::Uuid::new_v4()));
        let mut f = OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .custom_flags(nix::libc::O_NOFOLLOW)
            .open(&path)?;
        let lock = match Flock::lock(f.try_clone()?, FlockArg::LockExclusiveNonblock) {
            Ok(l) => l,
            Err((_, e)) => {
                let _ = std::fs::remove_file(&path);
                return Err(e.into());
            }
        };
        let body = json!({"created_ms": aiops_sys::now_ms(), "requests": bases});
        if let Err(e) = f.write_all(body.to_string().as_bytes()) {
            let _ = std::fs::remove_file(&path);
            return Err(e);
        }
        Ok(Marker { path, _lock: lock })
    }

    /// The outcomes are in the log (or nothing was written ahead): removes
    /// the marker, then lets go of its lock.
    pub fn done(self) {
        let _ = std::fs::remove_file(&self.path);
    }
}

/// Records an outcome for every request a dead dispatch left open. Best
/// effort: a problem here is printed, never stops the request at hand.
pub fn sweep(
    runtime_dir: &Path,
    log: &AuditLog,
    outcome: impl Fn(Map<String, Value>) -> Map<String, Value>,
) {
    let dir = dir(runtime_dir);
    // The runtime directory is group-writable (approvers): only a directory
    // of this account's, writable by it alone, holds markers to act on.
    match std::fs::symlink_metadata(&dir) {
        Ok(m)
            if m.is_dir()
                && m.uid() == nix::unistd::geteuid().as_raw()
                && m.mode() & 0o022 == 0 => {}
        Ok(_) => {
            eprintln!(
                "aiops: {} is not this account's own directory; not swept",
                dir.display()
            );
            return;
        }
        Err(_) => return,
    }
    let Ok(entries) = std::fs::read_dir(&dir) else {
        return;
    };
    for entry in entries.flatten() {
        let path = entry.path();
        if path.extension().and_then(|e| e.to_str()) != Some("json") {
            continue;
        }
        if let Err(e) = sweep_one(&path, log, &outcome) {
            eprintln!("aiops: in-flight marker {}: {e}", path.display());
        }
    }
}

fn sweep_one(
    path: &Path,
    log: &AuditLog,
    outcome: &impl Fn(Map<String, Value>) -> Map<String, Value>,
) -> Result<(), String> {
    let f = OpenOptions::new()
        .read(true)
        .custom_flags(nix::libc::O_NOFOLLOW | nix::libc::O_NONBLOCK)
        .open(path)
        .map_err(|e| e.to_string())?;
    // Locked: its dispatch is alive. Unlocked: it is dead, or it finished
    // and removed the file just now (then the path is gone or another file).
    let Ok(lock) = Flock::lock(f, FlockArg::LockExclusiveNonblock) else {
        return Ok(());
    };
    let held = lock.metadata().map_err(|e| e.to_string())?;
    match std::fs::symlink_metadata(path) {
        Ok(m) if m.ino() == held.ino() && m.dev() == held.dev() => {}
        _ => return Ok(()),
    }
    if !held.file_type().is_file()
        || held.uid() != nix::unistd::geteuid().as_raw()
        || held.nlink() != 1
        || held.len() > 16 << 20
    {
        return Err("not a marker file".into());
    }
    let text = std::fs::read_to_string(path).map_err(|e| e.to_string())?;
    let body: Value = serde_json::from_str(&text).map_err(|e| format!("unreadable: {e}"))?;
    let created = body["created_ms"].as_i64().unwrap_or(0);
    let requests: Vec<Map<String, Value>> = body["requests"]
        .as_array()
        .map(|a| a.iter().filter_map(|r| r.as_object().cloned()).collect())
        .unwrap_or_default();
    let id = |r: &Map<String, Value>| {
        r.get("request_id")
            .and_then(Value::as_str)
            .map(str::to_string)
    };
    let mut wanted: std::collections::BTreeMap<String, (bool, bool)> = requests
        .iter()
        .filter_map(id)
        .map(|i| (i, (false, false)))
        .collect();
    // Newest first, back to a minute before the marker was written (its
    // `requested` records cannot be older).
    log.scan_back(|r| {
        if let Some(slot) = id(r).and_then(|i| wanted.get_mut(&i)) {
            if r.get("event").and_then(Value::as_str) == Some("requested") {
                slot.0 = true;
            } else {
                slot.1 = true;
            }
        }
        let ts = r
            .get("ts")
            .and_then(Value::as_str)
            .and_then(aiops_sys::parse_rfc3339_ms)
            .unwrap_or(i64::MAX);
        ts >= created.saturating_sub(60_000)
    })
    .map_err(|e| e.to_string())?;
    let open: Vec<Map<String, Value>> = requests
        .into_iter()
        .filter(|r| id(r).and_then(|i| wanted.get(&i).copied()) == Some((true, false)))
        .map(outcome)
        .collect();
    if !open.is_empty() {
        log.append_many(open).map_err(|e| e.to_string())?;
    }
    std::fs::remove_file(path).map_err(|e| e.to_string())?;
    drop(lock);
    Ok(())
}
