//! `aiops audit verify --targets`, run by the controller account (it needs
//! the controller's TLS key to reach agents): the controller's log is
//! checked on its own (chain, and checkpoint signatures with the
//! controller's public signing key), then against each reachable agent's
//! log, read page by page over mTLS (`ReadAudit`):
//!
//! - (a) every agent head the controller recorded from a verified receipt
//!   (`agent_seq`/`agent_hash` of an outcome) is in the agent's chain with
//!   that hash: a truncated or rewritten agent log is found even when its
//!   `.head` side file was rewritten or deleted too;
//! - (b) every controller head an agent recorded (`controller_seq`/
//!   `controller_hash` of its `accepted` records, from the signed request)
//!   matches the controller's log: a controller log rewritten by a member
//!   of its group is found even when the rewrite is internally consistent.
//!
//! The answer names the first bad record (side, seq) and exits 1.

use std::collections::BTreeMap;
use std::time::Duration;

use aiops_audit::AuditLog;
use aiops_certs::signing::VerifyingKey;
use serde_json::{Map, Value, json};

use super::client;
use crate::config::Loaded;

/// Records asked for per `ReadAudit` page (the agent caps it too).
const PAGE: u32 = 1000;

/// An agent head the controller recorded.
struct AgentHead {
    agent_seq: u64,
    agent_hash: String,
    controller_seq: u64,
    request_id: String,
}

/// The checkpoint verifier for the controller's public signing key.
pub fn checkpoint_key(loaded: &Loaded) -> Option<VerifyingKey> {
    let text = std::fs::read_to_string(loaded.pki().signing_pub()).ok()?;
    VerifyingKey::parse(&text).ok()
}

/// Checks a checkpoint signature with `key`.
pub fn check_with(key: &VerifyingKey) -> impl Fn(&str, &[u8], &[u8]) -> bool + '_ {
    move |key_id, msg, sig| key_id == key.key_id() && key.verify(msg, sig).is_ok()
}

fn bad(side: &str, seq: u64, message: String) -> Value {
    json!({"side": side, "seq": seq, "message": message})
}

/// Runs the cross-check for `names` (every configured target when empty);
/// returns whether everything verified, and the JSON report.
pub async fn verify_targets(loaded: &Loaded, names: &[String]) -> (bool, Value) {
    let path = &loaded.config.audit_log;
    let key = checkpoint_key(loaded);
    let check = key.as_ref().map(check_with);
    let (local_ok, local) = aiops_audit::verify_report_with(
        path,
        check
            .as_ref()
            .map(|c| c as &dyn Fn(&str, &[u8], &[u8]) -> bool),
    );
    let mut first_bad: Option<Value> = (!local_ok).then(|| {
        bad(
            "controller",
            local["line"].as_u64().unwrap_or(0),
            local["message"].as_str().unwrap_or("").to_string(),
        )
    });
    // The controller's records: seq -> hash, and the agent heads per target.
    let mut hashes: BTreeMap<u64, String> = BTreeMap::new();
    let mut heads: BTreeMap<String, Vec<AgentHead>> = BTreeMap::new();
    let scanned = AuditLog::new(path).scan_back(|r| {
        let seq = r.get("seq").and_then(Value::as_u64).unwrap_or(0);
        let s = |k: &str| r.get(k).and_then(Value::as_str).unwrap_or("").to_string();
        hashes.insert(seq, s("hash"));
        if let (Some(agent_seq), Some(target)) = (
            r.get("agent_seq").and_then(Value::as_u64),
            r.get("target").and_then(Value::as_str),
        ) {
            heads
                .entry(target.to_string())
                .or_default()
                .push(AgentHead {
                    agent_seq,
                    agent_hash: s("agent_hash"),
                    controller_seq: seq,
                    request_id: s("request_id"),
                });
        }
        true
    });
    if let Err(e) = scanned {
        let v = json!({"status": "error", "controller": local, "message": e.to_string(),
            "first_bad": bad("controller", 0, e.to_string())});
        return (false, v);
    }
    let names: Vec<String> = if names.is_empty() {
        loaded.config.targets.keys().cloned().collect()
    } else {
        names.to_vec()
    };
    let sender = match super::Sender::load(loaded) {
        Ok(s) => s,
        Err(f) => {
            let msg = f
                .answer
                .error
                .as_ref()
                .map(|e| e.message.clone())
                .unwrap_or_default();
            return (
                false,
                json!({"status": "error", "controller": local,
                    "message": format!("cannot reach agents: {msg}")}),
            );
        }
    };
    let mut all_ok = local_ok;
    let mut reports = Vec::new();
    for name in &names {
        let mut heads_for = heads.remove(name).unwrap_or_default();
        heads_for.sort_by_key(|h| h.agent_seq);
        let r = check_target(loaded, &sender, name, &heads_for, &hashes).await;
        if r["status"] != "ok" {
            all_ok = false;
            if first_bad.is_none() && r.get("first_bad").is_some() {
                let mut b = r["first_bad"].clone();
                b["target"] = Value::from(name.clone());
                first_bad = Some(b);
            }
        }
        reports.push(r);
    }
    let mut out = Map::new();
    out.insert(
        "status".into(),
        Value::from(if all_ok { "ok" } else { "error" }),
    );
    out.insert("controller".into(), local);
    out.insert("targets".into(), Value::from(reports));
    if let Some(b) = first_bad {
        out.insert("first_bad".into(), b);
    }
    (all_ok, Value::Object(out))
}

async fn check_target(
    loaded: &Loaded,
    sender: &super::Sender,
    name: &str,
    heads: &[AgentHead],
    controller: &BTreeMap<u64, String>,
) -> Value {
    let Some(t) = loaded.config.targets.get(name) else {
        return json!({"target": name, "status": "error", "message": "no such target"});
    };
    let server_name = t.server_name.clone().unwrap_or_else(|| name.to_string());
    let timeout = Duration::from_millis(loaded.config.defaults.connect_timeout_ms);
    let channel = match client::connect(&t.address, &server_name, sender.tls(), timeout).await {
        Ok(c) => c,
        Err(e) => {
            return json!({"target": name, "status": "unreachable", "message": e.to_string(),
                "heads_recorded": heads.len()});
        }
    };
    let first = match client::read_audit(channel.clone(), 1, PAGE, (0, "")).await {
        Ok(p) => p,
        Err(e) => {
            return json!({"target": name, "status": "unreachable",
                "message": format!("reading its audit log: {e}")});
        }
    };
    // The key the agent's checkpoints are checked with: the pinned one; the
    // key the agent reports only when nothing is pinned yet (said so).
    let pin = super::receipt::pin_path(&loaded.pki().agent_cert(name));
    let reported = VerifyingKey::parse(&first.audit_key).ok();
    let mut problems: Vec<Value> = Vec::new();
    let (key, key_source) = match super::receipt::pinned(&pin) {
        Ok(Some(k)) => {
            if reported.as_ref() != Some(&k) {
                problems.push(bad(
                    "agent",
                    0,
                    format!(
                        "the agent reports the audit key {:?}, not the one pinned in {} ({}): its \
                         checkpoints are checked with the pin; if the agent was re-installed on \
                         purpose, re-pin it (see SECURITY.md, audit chains)",
                        first.audit_key,
                        pin.display(),
                        k.to_text()
                    ),
                ));
            }
            (Some(k), "pinned")
        }
        Ok(None) => (reported, "reported by the agent (nothing pinned yet)"),
        Err(e) => {
            problems.push(bad("agent", 0, format!("the pinned audit key: {e}")));
            (None, "none")
        }
    };
    if key.is_none() && problems.is_empty() {
        problems.push(bad(
            "agent",
            0,
            format!(
                "the agent reports no valid audit key ({:?}) and none is pinned: its \
                 checkpoints cannot be checked",
                first.audit_key
            ),
        ));
    }
    let verifier = key.as_ref().map(check_with);
    // The agent's chain, checked as it arrives (hashes, seq, and every
    // record covered by a checkpoint its audit key signed): seq -> hash.
    let mut chain = aiops_audit::ChainChecker::new(
        verifier
            .as_ref()
            .map(|c| c as &dyn Fn(&str, &[u8], &[u8]) -> bool),
        aiops_audit::Coverage::Every,
    );
    let mut agent: Vec<String> = Vec::new();
    let mut chain_bad: Option<Value> = None;
    // (agent seq, controller seq, controller hash, request id) the agent recorded.
    let mut controller_heads: Vec<(u64, u64, String, String)> = Vec::new();
    let key_text = first.audit_key.clone();
    let mut page = first;
    let mut from = 1u64;
    loop {
        let got = page.records.len() as u64;
        for line in &page.records {
            match chain.push(line.as_bytes()) {
                Ok((record, seq, hash)) => {
                    if let Some(cs) = record.get("controller_seq").and_then(Value::as_u64)
                        && cs > 0
                        && record.get("event").and_then(Value::as_str) == Some("accepted")
                    {
                        let s = |k: &str| {
                            record
                                .get(k)
                                .and_then(Value::as_str)
                                .unwrap_or("")
                                .to_string()
                        };
                        controller_heads.push((seq, cs, s("controller_hash"), s("request_id")));
                    }
                    agent.push(hash);
                }
                Err((n, m)) => {
                    chain_bad = Some(bad("agent", n as u64, m));
                    break;
                }
            }
        }
        if chain_bad.is_some() || !page.more || got == 0 {
            break;
        }
        from += got;
        // The next page from where this one ended (seq, offset and the hash
        // the agent checks there); an agent that sends no offset is read
        // from its start each page, as before.
        let cursor = (page.next_offset, chain.head().to_string());
        page = match client::read_audit(channel.clone(), from, PAGE, (cursor.0, &cursor.1)).await {
            Ok(p) => p,
            Err(e) => {
                return json!({"target": name, "status": "unreachable",
                    "message": format!("reading its audit log: {e}")});
            }
        };
    }
    let checkpoints = chain.checkpoints();
    if chain_bad.is_none()
        && let Err((n, m)) = chain.finish()
    {
        chain_bad = Some(bad("agent", n as u64, m));
    }
    let len = agent.len() as u64;
    if let Some(b) = chain_bad.clone() {
        problems.push(b);
    }
    // (a) the agent heads the controller holds.
    let mut last_good = 0u64;
    for h in heads {
        if chain_bad.is_some() && h.agent_seq > len {
            // Not readable past the break; the break is the finding.
            break;
        }
        let message = match agent.get(usize::try_from(h.agent_seq).unwrap_or(0).wrapping_sub(1)) {
            Some(hash) if *hash == h.agent_hash => {
                last_good = h.agent_seq;
                continue;
            }
            Some(_) => format!(
                "the agent's record {} is not the one it signed a receipt for (request {}, \
                 controller record {}): a record after {} and up to {} was rewritten",
                h.agent_seq, h.request_id, h.controller_seq, last_good, h.agent_seq
            ),
            None => format!(
                "the agent's log ends at record {len}, but it signed a receipt for record {} \
                 (request {}, controller record {}): records from {} on were removed",
                h.agent_seq,
                h.request_id,
                h.controller_seq,
                len + 1
            ),
        };
        let seq = if h.agent_seq > len {
            len + 1
        } else {
            h.agent_seq
        };
        problems.push(bad("agent", seq, message));
        break;
    }
    // (b) the controller heads the agent holds, oldest first.
    controller_heads.sort_by_key(|h| h.1);
    for (aseq, cseq, chash, rid) in &controller_heads {
        let message = match controller.get(cseq) {
            Some(h) if h == chash => continue,
            Some(_) => format!(
                "the agent recorded (in its record {aseq}, request {rid}) the controller's \
                 record {cseq} with another hash: the controller's log was rewritten at or \
                 before record {cseq}"
            ),
            None => format!(
                "the agent recorded (in its record {aseq}, request {rid}) the controller's \
                 record {cseq}, which the controller's log does not have: records were removed"
            ),
        };
        problems.push(bad("controller", *cseq, message));
        break;
    }
    let mut r = json!({
        "target": name,
        "status": if problems.is_empty() { "ok" } else { "error" },
        "agent_records": len,
        "agent_key": key_text,
        "agent_key_source": key_source,
        "agent_checkpoints_checked": if verifier.is_some() { checkpoints } else { 0 },
        "agent_heads_checked": heads.len(),
        "controller_heads_checked": controller_heads.len(),
    });
    if let Some(first) = problems.first() {
        r["first_bad"] = first.clone();
        r["problems"] = Value::from(problems.clone());
    }
    r
}
