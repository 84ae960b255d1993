//! `aiops incident report`: one structured report of an incident, built from
//! the controller's audit trail.
//!
//! It selects the records of a time window (and optionally one target,
//! requester or approval), groups them into commands (request, approval,
//! outcome), and states what each proves: the chain position (`seq` +
//! `hash`) of every record it cites, and a verification line from checking
//! the whole hash chain (`aiops audit verify`) that covers them. Output
//! excerpts are redacted again and cut; digests identify the full text.
//! Markdown for a human, JSON (schema: `packaging/incident/incident-report.schema.json`)
//! for a ticket system. Nothing is written anywhere.

use std::path::Path;

use aiops_audit::AuditLog;
use serde_json::{Map, Value, json};

/// Bytes kept of each output excerpt.
pub const EXCERPT_BYTES: usize = 600;

/// The report's version (`schema_version` in the JSON).
pub const SCHEMA_VERSION: u32 = 1;

/// What to cover.
#[derive(Debug, Clone, Default)]
pub struct Filter {
    /// Records at or after (ms since the epoch).
    pub since_ms: Option<i64>,
    /// Records at or before.
    pub until_ms: Option<i64>,
    /// Only this target (its name in `target` or `targets`).
    pub target: Option<String>,
    /// Only this requester.
    pub requester: Option<String>,
    /// Only this approval.
    pub approval: Option<String>,
}

/// Parses `--since` / `--until`: RFC 3339, or an age like `90s`, `30m`, `2h`, `1d`.
pub fn parse_time(text: &str, now_ms: i64) -> Result<i64, String> {
    if let Some(ms) = aiops_sys::parse_rfc3339_ms(text) {
        return Ok(ms);
    }
    let (num, unit) = text.split_at(text.len().saturating_sub(1));
    let n: i64 = num.parse().map_err(|_| {
        format!("{text:?}: use RFC 3339 (2026-12-01T20:00:00Z) or an age (30m, 2h, 1d)")
    })?;
    let unit_ms = match unit {
        "s" => 1000,
        "m" => 60_000,
        "h" => 3_600_000,
        "d" => 86_400_000,
        _ => return Err(format!("{text:?}: the age unit is s, m, h or d")),
    };
    n.checked_mul(unit_ms)
        .and_then(|age| now_ms.checked_sub(age))
        .ok_or_else(|| format!("{text:?}: out of range"))
}

fn s<'a>(r: &'a Map<String, Value>, k: &str) -> &'a str {
    r.get(k).and_then(Value::as_str).unwrap_or("")
}

fn opt(r: &Map<String, Value>, k: &str) -> Value {
    r.get(k).cloned().unwrap_or(Value::Null)
}

impl Filter {
    fn keeps(&self, r: &Map<String, Value>) -> bool {
        let ts = aiops_sys::parse_rfc3339_ms(s(r, "ts")).unwrap_or(0);
        if self.since_ms.is_some_and(|t| ts < t) || self.until_ms.is_some_and(|t| ts > t) {
            return false;
        }
        if let Some(t) = &self.target {
            let in_set = r
                .get("targets")
                .and_then(Value::as_array)
                .is_some_and(|a| a.iter().any(|x| x.as_str() == Some(t)));
            if s(r, "target") != t && !in_set {
                return false;
            }
        }
        if let Some(q) = &self.requester
            && s(r, "requester") != q
        {
            return false;
        }
        if let Some(a) = &self.approval
            && s(r, "approval_id") != a
        {
            return false;
        }
        true
    }
}

fn excerpt(text: &str) -> String {
    let red = aiops_redact::redact(text);
    if red.len() <= EXCERPT_BYTES {
        return red;
    }
    let mut end = EXCERPT_BYTES;
    while !red.is_char_boundary(end) {
        end -= 1;
    }
    format!("{}…[{} bytes in all]", &red[..end], red.len())
}

fn pos(r: &Map<String, Value>) -> Value {
    json!({"seq": opt(r, "seq"), "hash": opt(r, "hash")})
}

/// One command of the incident, as the JSON report shows it.
fn new_command(r: &Map<String, Value>) -> Map<String, Value> {
    let Value::Object(m) = json!({
        "command": aiops_redact::redact(s(r, "command")),
        "target": opt(r, "target"),
        "requester": opt(r, "requester"),
        "reason": opt(r, "reason"),
        "risk": opt(r, "risk"),
        "reasons": r.get("reasons").cloned().unwrap_or(json!([])),
        "outcome": "pending",
        "requested_at": opt(r, "ts"),
        "approval": Value::Null,
        "request_id": opt(r, "request_id"),
        "executed_at": Value::Null,
        "exit_code": Value::Null,
        "duration_ms": Value::Null,
        "stdout_sha256": Value::Null,
        "stderr_sha256": Value::Null,
        "stdout_excerpt": Value::Null,
        "stderr_excerpt": Value::Null,
        "error": Value::Null,
        "changed": false,
        "agent_head": Value::Null,
        "receipt_status": Value::Null,
        "records": [],
    }) else {
        unreachable!("json! object")
    };
    m
}

fn push_record(c: &mut Map<String, Value>, r: &Map<String, Value>) {
    if let Some(Value::Array(a)) = c.get_mut("records") {
        a.push(json!({"seq": opt(r, "seq"), "hash": opt(r, "hash"), "event": opt(r, "event"), "ts": opt(r, "ts")}));
    }
}

/// Builds the JSON report from the log at `path`.
pub fn build(path: &Path, filter: &Filter, now_ms: i64) -> Result<Value, String> {
    let log = AuditLog::new(path);
    let verification = match log.verify() {
        Ok(v) => json!({
            "status": "ok",
            "records": v.records,
            "head": v.head,
            "line": Value::Null,
            "message": Value::Null,
            "text": format!(
                "aiops audit verify: ok — the hash chain of {} is intact over all {} records (head {}), which covers every record cited here",
                path.display(), v.records, v.head
            ),
        }),
        Err(e) => json!({
            "status": "failed",
            "records": Value::Null,
            "head": Value::Null,
            "line": e.line,
            "message": e.message,
            "text": format!(
                "aiops audit verify: FAILED at line {} of {}: {} — this report cannot be trusted as evidence",
                e.line, path.display(), e.message
            ),
        }),
    };
    let all = match std::fs::metadata(path) {
        Ok(_) => log.tail(usize::MAX).map_err(|e| e.to_string())?,
        Err(e) => return Err(format!("{}: {e}", path.display())),
    };
    let records: Vec<&Map<String, Value>> = all.iter().filter(|r| filter.keeps(r)).collect();

    let mut commands: Vec<Map<String, Value>> = Vec::new();
    // request_id / approval_id -> index in `commands`.
    let mut by_request = std::collections::HashMap::new();
    let mut by_approval = std::collections::HashMap::new();
    let mut timeline = Vec::new();
    for r in &records {
        let event = s(r, "event");
        timeline.push(json!({
            "seq": opt(r, "seq"), "hash": opt(r, "hash"), "ts": opt(r, "ts"), "event": event,
            "target": opt(r, "target"), "requester": opt(r, "requester"),
            "command": r.get("command").and_then(Value::as_str).map(aiops_redact::redact),
            "risk": opt(r, "risk"), "approval_id": opt(r, "approval_id"),
            "approver": opt(r, "resolver"), "exit_code": opt(r, "exit_code"),
        }));
        let request_id = s(r, "request_id").to_string();
        let approval_id = s(r, "approval_id").to_string();
        let idx = match event {
            "approval_requested" => {
                let mut c = new_command(r);
                c.insert("outcome".into(), "approval_requested".into());
                c.insert(
                    "approval".into(),
                    json!({"id": approval_id, "requested_at": opt(r, "ts"), "requested": pos(r),
                           "outcome": "pending", "approver": Value::Null, "resolved_at": Value::Null, "resolved": Value::Null}),
                );
                commands.push(c);
                by_approval.insert(approval_id.clone(), commands.len() - 1);
                commands.len() - 1
            }
            "approved" | "denied" | "expired" | "superseded"
                if by_approval.contains_key(&approval_id) =>
            {
                let i = by_approval[&approval_id];
                let c = &mut commands[i];
                if let Some(Value::Object(a)) = c.get_mut("approval") {
                    a.insert("outcome".into(), event.into());
                    a.insert("approver".into(), opt(r, "resolver"));
                    a.insert("resolved_at".into(), opt(r, "ts"));
                    a.insert("resolved".into(), pos(r));
                }
                if event != "approved" {
                    c.insert("outcome".into(), event.into());
                }
                i
            }
            "requested" => {
                let existing = (!approval_id.is_empty())
                    .then(|| by_approval.get(&approval_id).copied())
                    .flatten()
                    .filter(|&i| commands[i]["request_id"].is_null());
                let i = match existing {
                    Some(i) => {
                        commands[i].insert("request_id".into(), opt(r, "request_id"));
                        commands[i].insert("target".into(), opt(r, "target"));
                        i
                    }
                    None => {
                        commands.push(new_command(r));
                        commands.len() - 1
                    }
                };
                commands[i].insert("outcome".into(), "sent".into());
                by_request.insert(request_id.clone(), i);
                i
            }
            _ if by_request.contains_key(&request_id) => {
                let i = by_request[&request_id];
                let c = &mut commands[i];
                match event {
                    "executed" => {
                        c.insert("outcome".into(), "executed".into());
                        c.insert("executed_at".into(), opt(r, "ts"));
                        for k in [
                            "exit_code",
                            "duration_ms",
                            "stdout_sha256",
                            "stderr_sha256",
                            "receipt_status",
                        ] {
                            c.insert(k.into(), opt(r, k));
                        }
                        if let Some(seq) = r.get("agent_seq").and_then(Value::as_u64) {
                            c.insert(
                                "agent_head".into(),
                                json!({"seq": seq, "hash": opt(r, "agent_hash")}),
                            );
                        }
                        for k in ["stdout", "stderr"] {
                            if let Some(t) = r.get(k).and_then(Value::as_str) {
                                c.insert(format!("{k}_excerpt"), excerpt(t).into());
                            }
                        }
                        let approved = c["approval"]["outcome"] == "approved";
                        c.insert("changed".into(), approved.into());
                    }
                    other => {
                        c.insert("outcome".into(), other.into());
                        c.insert(
                            "error".into(),
                            json!({"code": opt(r, "code"), "message": r.get("message").and_then(Value::as_str).map(aiops_redact::redact)}),
                        );
                    }
                }
                i
            }
            _ => {
                // A decision with no request (forbidden, rejected), or an error before one.
                let mut c = new_command(r);
                c.insert("outcome".into(), event.into());
                if r.contains_key("code") {
                    c.insert(
                        "error".into(),
                        json!({"code": opt(r, "code"), "message": r.get("message").and_then(Value::as_str).map(aiops_redact::redact)}),
                    );
                }
                commands.push(c);
                commands.len() - 1
            }
        };
        push_record(&mut commands[idx], r);
    }

    let changes: Vec<Value> = commands
        .iter()
        .filter(|c| c["changed"] == true)
        .map(|c| {
            json!({
                "command": c["command"], "target": c["target"], "approval_id": c["approval"]["id"],
                "approver": c["approval"]["approver"], "approved_at": c["approval"]["resolved_at"],
                "executed_at": c["executed_at"], "exit_code": c["exit_code"],
                "record": c["records"].as_array().and_then(|a| a.last()).cloned(),
            })
        })
        .collect();
    let count = |o: &str| commands.iter().filter(|c| c["outcome"] == o).count();
    let failed = commands
        .iter()
        .filter(|c| c["outcome"] == "executed" && c["exit_code"] != 0)
        .count();
    let first = records.first();
    let last = records.last();
    Ok(json!({
        "schema_version": SCHEMA_VERSION,
        "title": "aiops incident report",
        "generated_at": aiops_sys::rfc3339_ms(now_ms),
        "audit_log": path,
        "filters": {
            "since": filter.since_ms.map(aiops_sys::rfc3339_ms),
            "until": filter.until_ms.map(aiops_sys::rfc3339_ms),
            "target": filter.target, "requester": filter.requester, "approval": filter.approval,
        },
        "range": {
            "records": records.len(),
            "first": first.map(|r| pos(r)),
            "last": last.map(|r| pos(r)),
            "from": first.map(|r| opt(r, "ts")),
            "to": last.map(|r| opt(r, "ts")),
        },
        "verification": verification,
        "summary": {
            "commands": commands.len(),
            "executed": count("executed"),
            "failed": failed,
            "refused": count("forbidden") + count("rejected"),
            "approved": commands.iter().filter(|c| c["approval"]["outcome"] == "approved").count(),
            "denied": count("denied"),
            "changes": changes.len(),
        },
        "changes": changes,
        "commands": commands,
        "timeline": timeline,
    }))
}

fn cell(v: &Value) -> String {
    let text = match v {
        Value::Null => "—".to_string(),
        Value::String(s) if s.is_empty() => "—".to_string(),
        Value::String(s) => s.clone(),
        other => other.to_string(),
    };
    text.replace('|', "\\|").replace('\n', " ")
}

fn short(hash: &Value) -> String {
    hash.as_str()
        .map_or("—".into(), |h| h.chars().take(12).collect())
}

/// The report as Markdown.
pub fn markdown(r: &Value) -> String {
    use std::fmt::Write;
    let mut out = String::new();
    let v = &r["verification"];
    let _ = writeln!(out, "# Incident report\n");
    let _ = writeln!(
        out,
        "**Verification: {}.** {}\n",
        if v["status"] == "ok" { "ok" } else { "FAILED" },
        cell(&v["text"])
    );
    let f = &r["filters"];
    let _ = writeln!(
        out,
        "- Generated: {}\n- Audit log: `{}`\n- Scope: since {}, until {}, target {}, requester {}, approval {}\n- Records: {} (seq {} `{}` … seq {} `{}`), {} to {}\n",
        cell(&r["generated_at"]),
        cell(&r["audit_log"]),
        cell(&f["since"]),
        cell(&f["until"]),
        cell(&f["target"]),
        cell(&f["requester"]),
        cell(&f["approval"]),
        r["range"]["records"],
        cell(&r["range"]["first"]["seq"]),
        short(&r["range"]["first"]["hash"]),
        cell(&r["range"]["last"]["seq"]),
        short(&r["range"]["last"]["hash"]),
        cell(&r["range"]["from"]),
        cell(&r["range"]["to"]),
    );
    let sm = &r["summary"];
    let _ = writeln!(
        out,
        "**Summary:** {} commands: {} executed ({} failed), {} refused by policy, {} approved, {} denied; changes: {}.\n",
        sm["commands"],
        sm["executed"],
        sm["failed"],
        sm["refused"],
        sm["approved"],
        sm["denied"],
        sm["changes"]
    );
    let _ = writeln!(out, "## What was changed\n");
    let changes = r["changes"].as_array().cloned().unwrap_or_default();
    if changes.is_empty() {
        let _ = writeln!(out, "Nothing: no approved command ran.\n");
    }
    for c in &changes {
        let _ = writeln!(
            out,
            "- `{}` on {} — approved by {} at {}, ran at {}, exit {} (seq {} `{}`)",
            cell(&c["command"]),
            cell(&c["target"]),
            cell(&c["approver"]),
            cell(&c["approved_at"]),
            cell(&c["executed_at"]),
            cell(&c["exit_code"]),
            cell(&c["record"]["seq"]),
            short(&c["record"]["hash"])
        );
    }
    let _ = writeln!(out, "\n## Commands\n");
    let _ = writeln!(
        out,
        "| # | requested | target | command | risk | asked by | approval | outcome | exit | stdout sha256 | records (seq) |"
    );
    let _ = writeln!(
        out,
        "| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |"
    );
    for (i, c) in r["commands"].as_array().into_iter().flatten().enumerate() {
        let approval = if c["approval"].is_null() {
            "—".to_string()
        } else {
            format!(
                "{} by {} at {}",
                cell(&c["approval"]["outcome"]),
                cell(&c["approval"]["approver"]),
                cell(&c["approval"]["resolved_at"])
            )
        };
        let seqs: Vec<String> = c["records"]
            .as_array()
            .into_iter()
            .flatten()
            .map(|x| x["seq"].to_string())
            .collect();
        let _ = writeln!(
            out,
            "| {} | {} | {} | `{}` | {} | {} | {} | {} | {} | {} | {} |",
            i + 1,
            cell(&c["requested_at"]),
            cell(&c["target"]),
            cell(&c["command"]),
            cell(&c["risk"]),
            cell(&c["requester"]),
            approval,
            cell(&c["outcome"]),
            cell(&c["exit_code"]),
            short(&c["stdout_sha256"]),
            seqs.join(", ")
        );
    }
    let _ = writeln!(out, "\n### Output excerpts (redacted)\n");
    for (i, c) in r["commands"].as_array().into_iter().flatten().enumerate() {
        for k in ["stdout", "stderr"] {
            let e = &c[format!("{k}_excerpt")];
            if e.as_str().is_some_and(|t| !t.is_empty()) {
                let _ = writeln!(
                    out,
                    "{}. `{}` {k} (sha256 `{}`):\n\n```\n{}\n```\n",
                    i + 1,
                    cell(&c["command"]),
                    cell(&c[format!("{k}_sha256")]),
                    e.as_str().unwrap_or("").trim_end().replace("```", "'''")
                );
            }
        }
    }
    let _ = writeln!(out, "## Timeline\n");
    let _ = writeln!(out, "| seq | hash | time | event | target | detail |");
    let _ = writeln!(out, "| --- | --- | --- | --- | --- | --- |");
    for t in r["timeline"].as_array().into_iter().flatten() {
        let mut detail = cell(&t["command"]);
        if !t["approver"].is_null() {
            detail.push_str(&format!(" (by {})", cell(&t["approver"])));
        }
        if !t["exit_code"].is_null() {
            detail.push_str(&format!(" → exit {}", t["exit_code"]));
        }
        let _ = writeln!(
            out,
            "| {} | `{}` | {} | {} | {} | {} |",
            cell(&t["seq"]),
            short(&t["hash"]),
            cell(&t["ts"]),
            cell(&t["event"]),
            cell(&t["target"]),
            detail
        );
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn times_are_rfc3339_or_ages() {
        let now = 1_000_000_000;
        assert_eq!(parse_time("30m", now), Ok(now - 1_800_000));
        assert_eq!(parse_time("2h", now), Ok(now - 7_200_000));
        assert_eq!(
            parse_time("2026-12-01T20:00:00Z", now),
            Ok(1_796_155_200_000)
        );
        assert!(parse_time("yesterday", now).is_err());
        assert!(parse_time("5w", now).is_err());
    }
}

/// `aiops incident ...`.
#[derive(clap::Subcommand, Debug)]
pub enum IncidentCmd {
    /// Build the incident report from the audit trail: timeline, commands, approvals,
    /// changes, chain positions and a verification line. Exit 1 when the chain fails to verify.
    Report {
        /// From (RFC 3339, or an age: 30m, 2h, 1d).
        #[arg(long)]
        since: Option<String>,
        /// Until (RFC 3339, or an age).
        #[arg(long)]
        until: Option<String>,
        /// Only records about this target.
        #[arg(long)]
        target: Option<String>,
        /// Only records of this requester.
        #[arg(long)]
        requester: Option<String>,
        /// Only records of this approval.
        #[arg(long)]
        approval: Option<String>,
        /// md (for a human) or json (for a ticket system).
        #[arg(long, default_value = "md", value_parser = ["md", "json"])]
        format: String,
        /// Audit log [default: the configured audit log].
        #[arg(long)]
        file: Option<std::path::PathBuf>,
    },
}

/// Adds to the verification: the controller log's signed checkpoints, and
/// per target of the covered commands the agent heads recorded for them and
/// the result of `aiops audit verify --targets` where the agent is reachable.
/// Tampering found either way fails the verification.
///
/// The signatures are checked on any file (a copy handed over is no less
/// forgeable than the log: its hash chain is unkeyed); the agents only for
/// the configured log (`cross_check`). Cited records after the last signed
/// checkpoint are counted and named: a member of the log's group can still
/// rewrite them.
fn anchor(loaded: &crate::config::Loaded, report: &mut Value, path: &Path, cross_check: bool) {
    use crate::dispatch::chains;
    let mut failed: Option<(u64, String)> = None;
    let mut text = String::new();
    if let Some(key) = chains::checkpoint_key(loaded) {
        let check = chains::check_with(&key);
        match AuditLog::new(path).verify_with(Some(&check)) {
            Ok(v) => {
                text.push_str(&format!(
                    " Its {} signed checkpoints verify with the controller key.",
                    v.checkpoints
                ));
                let signed = v.last_checkpoint_seq;
                let unsigned = report["timeline"]
                    .as_array()
                    .into_iter()
                    .flatten()
                    .filter(|r| r["seq"].as_u64().is_some_and(|q| q > signed))
                    .count();
                report["verification"]["signed_through_seq"] = signed.into();
                report["verification"]["unsigned_records"] = unsigned.into();
                if unsigned > 0 {
                    text.push_str(&format!(
                        " {unsigned} of the records cited here (after seq {signed}) are not \
                         covered by a signed checkpoint yet: a member of the log's group could \
                         have written or rewritten them."
                    ));
                }
            }
            Err(e) => {
                failed = Some((e.line as u64, e.message.clone()));
                text.push_str(&format!(
                    " Signed checkpoints: FAILED at line {}: {}.",
                    e.line, e.message
                ));
            }
        }
    }
    let mut heads: std::collections::BTreeMap<String, Vec<Value>> = Default::default();
    let commands = if cross_check {
        report["commands"].as_array().cloned().unwrap_or_default()
    } else {
        Vec::new()
    };
    for c in &commands {
        if let (Some(t), false) = (c["target"].as_str(), c["agent_head"].is_null()) {
            let mut h = c["agent_head"].clone();
            h["request_id"] = c["request_id"].clone();
            heads.entry(t.to_string()).or_default().push(h);
        }
    }
    let mut agents = Vec::new();
    if !heads.is_empty() {
        let names: Vec<String> = heads.keys().cloned().collect();
        let checked = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .map(|rt| rt.block_on(chains::verify_targets(loaded, &names)).1);
        let results = checked
            .as_ref()
            .ok()
            .and_then(|v| v["targets"].as_array().cloned())
            .unwrap_or_default();
        for (name, hs) in &heads {
            let r = results
                .iter()
                .find(|r| r["target"] == name.as_str())
                .cloned()
                .unwrap_or(json!({"status": "unreachable", "message": "not checked"}));
            let status = r["status"].as_str().unwrap_or("error").to_string();
            let sentence = match status.as_str() {
                "ok" => format!(
                    " Agent {name}: its log holds all {} agent heads recorded here (cross-check ok).",
                    hs.len()
                ),
                "unreachable" => format!(
                    " Agent {name}: not reachable, its {} agent heads are not cross-checked ({}).",
                    hs.len(),
                    r["message"].as_str().unwrap_or("")
                ),
                _ => {
                    let b = &r["first_bad"];
                    if failed.is_none() {
                        failed = Some((
                            b["seq"].as_u64().unwrap_or(0),
                            format!(
                                "{} log of {name}, record {}: {}",
                                b["side"].as_str().unwrap_or("?"),
                                b["seq"],
                                b["message"].as_str().unwrap_or("")
                            ),
                        ));
                    }
                    format!(
                        " Agent {name}: cross-check FAILED at the {} log's record {}: {}.",
                        b["side"].as_str().unwrap_or("?"),
                        b["seq"],
                        b["message"].as_str().unwrap_or("")
                    )
                }
            };
            text.push_str(&sentence);
            agents.push(json!({
                "target": name, "status": status, "heads": hs,
                "agent_records": r.get("agent_records").cloned().unwrap_or(Value::Null),
                "first_bad": r.get("first_bad").cloned().unwrap_or(Value::Null),
            }));
        }
    }
    let v = &mut report["verification"];
    if cross_check {
        v["agents"] = Value::from(agents);
    }
    if let Some((line, message)) = failed
        && v["status"] == "ok"
    {
        v["status"] = "failed".into();
        v["records"] = Value::Null;
        v["head"] = Value::Null;
        v["line"] = line.into();
        v["message"] = message.into();
        v["text"] = format!(
            "aiops audit verify: FAILED — the hash chain holds, but the log does not match its \
             signatures or the agents' logs — this report cannot be trusted as evidence.{text}"
        )
        .into();
    } else if let Some(t) = v["text"].as_str()
        && !text.is_empty()
    {
        v["text"] = format!("{t}.{text}").into();
    }
}

/// Runs `aiops incident`.
pub fn cmd(config: &Path, command: IncidentCmd) -> std::process::ExitCode {
    use std::process::ExitCode;
    let IncidentCmd::Report {
        since,
        until,
        target,
        requester,
        approval,
        format,
        file,
    } = command;
    let now = aiops_sys::now_ms();
    let parse = |t: Option<String>| t.map(|t| parse_time(&t, now)).transpose();
    let (since_ms, until_ms) = match (parse(since), parse(until)) {
        (Ok(a), Ok(b)) => (a, b),
        (Err(e), _) | (_, Err(e)) => {
            eprintln!("aiops: {e}");
            return ExitCode::from(64);
        }
    };
    let path = match file {
        Some(f) => f,
        None => match crate::config::Loaded::load(config) {
            Ok(l) => l.config.audit_log,
            Err(e) => {
                eprintln!("aiops: {e}");
                return ExitCode::from(64);
            }
        },
    };
    let filter = Filter {
        since_ms,
        until_ms,
        target,
        requester,
        approval,
    };
    let mut report = match build(&path, &filter, now) {
        Ok(r) => r,
        Err(e) => {
            eprintln!("aiops: {e}");
            return ExitCode::FAILURE;
        }
    };
    // Every file is checked against the controller's signatures; the
    // configured log also against the agents' logs.
    if let Ok(loaded) = crate::config::Loaded::load(config) {
        let configured = loaded.config.audit_log == path;
        anchor(&loaded, &mut report, &path, configured);
    }
    // A closed stdout (`| head`) is a normal end.
    let _ = if format == "json" {
        crate::output::json(&report)
    } else {
        crate::output::text(&markdown(&report))
    };
    if report["verification"]["status"] == "ok" {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    }
}
