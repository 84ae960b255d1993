//! At start, every `accepted` request without an outcome gets an
//! `interrupted` record: the agent stopped (killed, crashed, power loss)
//! while it ran, so it may have run, and its outcome is unknown.
//!
//! `<state_dir>/audit.checked` holds the last sequence number already looked
//! at, so each start reads only what the previous run wrote.

use std::collections::HashSet;
use std::path::Path;

use aiops_audit::AuditLog;
use serde_json::{Map, Value};

/// Events that close an `accepted` request.
const OUTCOMES: [&str; 2] = ["executed", "interrupted"];

/// Writes `interrupted` for every open `accepted` record written since the
/// last check; returns their request ids.
pub fn mark(audit: &AuditLog, state_dir: &Path, agent: &str) -> Result<Vec<String>, String> {
    let checked_path = state_dir.join("audit.checked");
    let checked: u64 = std::fs::read_to_string(&checked_path)
        .ok()
        .and_then(|t| t.trim().parse().ok())
        .unwrap_or(0);
    let mut closed = HashSet::new();
    let mut open: Vec<Map<String, Value>> = Vec::new();
    let mut last_seq = checked;
    audit
        .scan_back(|r| {
            let seq = r.get("seq").and_then(Value::as_u64).unwrap_or(0);
            if seq <= checked {
                return false;
            }
            last_seq = last_seq.max(seq);
            let id = r.get("request_id").and_then(Value::as_str).unwrap_or("");
            match r.get("event").and_then(Value::as_str) {
                Some(e) if OUTCOMES.contains(&e) => {
                    closed.insert(id.to_string());
                }
                Some("accepted") if !closed.contains(id) => open.push(r.clone()),
                _ => {}
            }
            true
        })
        .map_err(|e| e.to_string())?;
    let ids: Vec<String> = open
        .iter()
        .rev()
        .filter_map(|r| r.get("request_id").and_then(Value::as_str))
        .map(str::to_string)
        .collect();
    if !open.is_empty() {
        let records = open
            .into_iter()
            .rev()
            .map(|a| {
                let mut r = Map::new();
                for k in ["request_id", "target", "command", "requester", "approval_id"] {
                    if let Some(v) = a.get(k) {
                        r.insert(k.into(), v.clone());
                    }
                }
                r.insert("event".into(), "interrupted".into());
                r.insert("agent".into(), agent.into());
                r.insert("accepted_seq".into(), a.get("seq").cloned().unwrap_or_default());
                r.insert(
                    "message".into(),
                    "the agent stopped while this request ran: it may have run, its outcome is unknown"
                        .into(),
                );
                r
            })
            .collect();
        let appended = audit.append_many(records).map_err(|e| e.to_string())?;
        last_seq = appended.last().map_or(last_seq, |a| a.seq);
    }
    aiops_sys::write_file_mode(&checked_path, format!("{last_seq}\n").as_bytes(), 0o600)
        .map_err(|e| format!("{}: {e}", checked_path.display()))?;
    Ok(ids)
}
