//! The replay cache: every request id the agent accepted, kept until the
//! request's expiry has passed, persisted so it survives a restart.
//!
//! Request ids are appended to `replay.log` without waiting for the disk:
//! the agent's `accepted` audit record, fsync'd before anything runs,
//! carries the same id and expiry, and [`ReplayCache::open`] reads the
//! audit log's recent `accepted` records back in. So after a power loss an
//! id is still known, at the cost of one fsync per request instead of two.
//! Approval keys (rare, and valid as long as their grant) are fsync'd here.

use std::collections::HashMap;
use std::fs::OpenOptions;
use std::io::Write;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};
use std::sync::Mutex;

/// Request ids seen and when they may be forgotten (Unix ms).
#[derive(Debug)]
pub struct ReplayCache {
    path: PathBuf,
    skew_ms: i64,
    seen: Mutex<HashMap<String, i64>>,
}

/// Why an id was not recorded.
#[derive(Debug, thiserror::Error)]
pub enum ReplayError {
    /// Seen before.
    #[error("request id {0} was already used")]
    Replayed(String),
    /// The cache file could not be written; the request must not run.
    #[error("replay cache {path}: {message}")]
    Io {
        /// The file.
        path: String,
        /// What failed.
        message: String,
    },
}

impl ReplayCache {
    /// Loads `dir/replay.log` and the request ids of `audit`'s `accepted`
    /// records of the last `horizon_ms`, drops entries that can no longer be
    /// replayed, and writes the result back (fsync'd).
    pub fn open(
        dir: &Path,
        skew_ms: i64,
        audit: &aiops_audit::AuditLog,
        horizon_ms: i64,
    ) -> std::io::Result<ReplayCache> {
        std::fs::create_dir_all(dir)?;
        let path = dir.join("replay.log");
        let now = aiops_sys::now_ms();
        let mut seen = HashMap::new();
        if let Ok(text) = std::fs::read_to_string(&path) {
            for line in text.lines() {
                let mut it = line.split(' ');
                if let (Some(id), Some(exp)) = (it.next(), it.next().and_then(|e| e.parse().ok())) {
                    let exp: i64 = exp;
                    if exp + skew_ms >= now {
                        seen.insert(id.to_string(), exp);
                    }
                }
            }
        }
        // Newest first; stop at the first record older than the horizon.
        let oldest = now - horizon_ms;
        audit
            .scan_back_events(|e| {
                if e.ts_ms().is_some_and(|t| t < oldest) {
                    return false;
                }
                if e.event == "accepted"
                    && let (Some(id), Some(exp)) = (&e.request_id, e.expires_at_ms)
                    && exp + skew_ms >= now
                {
                    seen.entry(id.clone()).or_insert(exp);
                }
                true
            })
            .map_err(std::io::Error::other)?;
        let compacted: String = seen
            .iter()
            .map(|(id, exp)| format!("{id} {exp}\n"))
            .collect();
        aiops_sys::write_file_mode(&path, compacted.as_bytes(), 0o600)?;
        Ok(ReplayCache {
            path,
            skew_ms,
            seen: Mutex::new(seen),
        })
    }

    /// Records `id` (valid until `expires_ms`) or says it was seen. With
    /// `durable` the id is on disk before this returns `Ok`; without, it is
    /// written to the kernel only, and the caller makes it durable otherwise
    /// (the `accepted` audit record, see the module documentation).
    pub fn check_and_insert(
        &self,
        id: &str,
        expires_ms: i64,
        durable: bool,
    ) -> Result<(), ReplayError> {
        let mut seen = self.seen.lock().unwrap_or_else(|p| p.into_inner());
        if seen.contains_key(id) {
            return Err(ReplayError::Replayed(id.to_string()));
        }
        let io = |e: std::io::Error| ReplayError::Io {
            path: self.path.display().to_string(),
            message: e.to_string(),
        };
        let mut f = OpenOptions::new()
            .append(true)
            .create(true)
            .mode(0o600)
            .open(&self.path)
            .map_err(io)?;
        f.write_all(format!("{id} {expires_ms}\n").as_bytes())
            .map_err(io)?;
        if durable {
            f.sync_data().map_err(io)?;
        }
        let now = aiops_sys::now_ms();
        if seen.len() > 4096 {
            let skew = self.skew_ms;
            seen.retain(|_, exp| *exp + skew >= now);
        }
        seen.insert(id.to_string(), expires_ms);
        Ok(())
    }
}
