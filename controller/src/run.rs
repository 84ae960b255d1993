//! `aiops run`: one JSON request on stdin, one JSON answer on stdout.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use aiops_audit::AuditLog;
use aiops_certs::signing::SigningKey;
use aiops_policy::{Decision, Risk};
use aiops_proto::agent::v1 as pb;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value, json};

use crate::client::{self, ClientError, Collected};
use crate::config::Loaded;

/// Largest stdin accepted, in bytes.
pub const MAX_INPUT_BYTES: usize = 64 * 1024;
/// Longest `requester`.
pub const MAX_REQUESTER: usize = 128;
/// Longest `reason`.
pub const MAX_REASON: usize = 2048;

/// Process exit codes of `aiops run`.
pub mod exit {
    /// Handled as policy says (executed, approval requested, denied, forbidden, rejected).
    pub const HANDLED: u8 = 0;
    /// The request failed: bad input, unknown target, refused by the agent, unreachable.
    pub const FAILED: u8 = 1;
    /// Configuration, key or audit problem: nothing ran.
    pub const SETUP: u8 = 2;
}

/// The request as read from stdin.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RunInput {
    /// Target name, or `group:NAME`, or `label:KEY=VALUE`.
    #[serde(default)]
    pub target: String,
    /// Several targets (each a name or a `group:` / `label:` selector).
    #[serde(default)]
    pub targets: Option<Vec<String>>,
    /// Exact command text.
    pub command: String,
    /// Who asks (e.g. `hermes`, `manual`).
    pub requester: String,
    /// Why.
    #[serde(default)]
    pub reason: String,
    /// Fan-out: targets running at once [default: `defaults.max_concurrency`].
    #[serde(default)]
    pub max_concurrency: Option<usize>,
    /// Fan-out: stop starting new targets once more than this many failed.
    #[serde(default)]
    pub max_errors: Option<usize>,
    /// Fan-out: run on the first target alone, and continue only if it succeeded.
    #[serde(default)]
    pub canary: Option<bool>,
    /// Stream each target's stdout and stderr to files under
    /// `<runtime_dir>/outputs/` (cap `defaults.saved_output_cap_bytes`); the
    /// answer carries an excerpt, the files' paths and their SHA-256.
    #[serde(default)]
    pub save_output: bool,
}

impl RunInput {
    /// How the request named its targets, for answers and audit records.
    pub fn target_spec(&self) -> String {
        match &self.targets {
            Some(list) => list.join(","),
            None => self.target.clone(),
        }
    }
}

/// Per-target outcome counts of a fan-out.
#[derive(Debug, Clone, Default, Serialize, PartialEq, Eq)]
pub struct Summary {
    /// Targets in the resolved set.
    pub total: usize,
    /// Ran on the agent (any exit code).
    pub executed: usize,
    /// Ran and exited 0.
    pub succeeded: usize,
    /// Ran and exited non-zero, or timed out.
    pub failed: usize,
    /// Did not run: unreachable, refused, incomplete.
    pub errors: usize,
    /// Not attempted (max_errors reached or the canary failed).
    pub skipped: usize,
}

/// Error body of a failed request.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct ErrorBody {
    /// Stable code, e.g. `invalid_json`, `unknown_target`, `agent_refused`.
    pub code: String,
    /// Human explanation.
    pub message: String,
}

/// The one JSON object printed on stdout.
#[derive(Debug, Clone, Default, Serialize)]
pub struct Answer {
    /// `executed`, `approval_requested`, `denied`, `forbidden`, `rejected`, `error`, ...
    pub status: &'static str,
    /// Policy risk.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub risk: Option<&'static str>,
    /// Target name.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub target: Option<String>,
    /// Command text.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub command: Option<String>,
    /// Exit status (128+N for signal N).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub exit_code: Option<i32>,
    /// Standard output (head, drop marker, tail).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub stdout: Option<String>,
    /// Standard error.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub stderr: Option<String>,
    /// Some output was dropped by the cap.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub truncated: Option<bool>,
    /// Bytes dropped from stdout.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub stdout_dropped_bytes: Option<u64>,
    /// Bytes dropped from stderr.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub stderr_dropped_bytes: Option<u64>,
    /// Killed at the time limit.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub timed_out: Option<bool>,
    /// Signal that ended it.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub signal: Option<i32>,
    /// Wall time measured by the agent.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub duration_ms: Option<u64>,
    /// Request id (uuid v4).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub request_id: Option<String>,
    /// Approval id, when one is involved.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub approval_id: Option<String>,
    /// Why the policy decided as it did.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reasons: Option<Vec<String>>,
    /// Requester's reason, echoed.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    /// A sentence for the human or assistant.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,
    /// Set when `status` is `error`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<ErrorBody>,
    /// Fan-out: the resolved target set.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub targets: Option<Vec<String>>,
    /// Fan-out: one answer per target, in target order.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub results: Option<Vec<Answer>>,
    /// Fan-out: counts.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub summary: Option<Summary>,
    /// `save_output`: absolute path of the file holding the whole stdout.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub stdout_file: Option<String>,
    /// `save_output`: absolute path of the file holding the whole stderr.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub stderr_file: Option<String>,
    /// SHA-256 and size of the full, unredacted stdout and stderr (audit only).
    #[serde(skip)]
    pub output_digest: Option<[(String, u64); 2]>,
    /// `save_output`: the same digests, shown in the answer as `output_digest`
    /// (`[[stdout_sha256, bytes], [stderr_sha256, bytes]]`, i.e. of the files).
    #[serde(rename = "output_digest", skip_serializing_if = "Option::is_none")]
    pub saved_digest: Option<[(String, u64); 2]>,
}

impl Answer {
    /// An answer produced by another `aiops` process (the release hop), relayed as is.
    pub fn relayed(v: Value) -> Answer {
        let s = |k: &str| v.get(k).and_then(Value::as_str).map(str::to_string);
        let status: &'static str = match v.get("status").and_then(Value::as_str) {
            Some("executed") => "executed",
            Some("partial") => "partial",
            Some("failed") => "failed",
            Some("denied") => "denied",
            _ => "error",
        };
        Answer {
            status,
            risk: v.get("risk").and_then(Value::as_str).map(|r| match r {
                "auto_allowed" => "auto_allowed",
                "forbidden" => "forbidden",
                "rejected" => "rejected",
                _ => "approval_required",
            }),
            targets: v
                .get("targets")
                .and_then(|t| serde_json::from_value(t.clone()).ok()),
            results: v
                .get("results")
                .and_then(Value::as_array)
                .map(|r| r.iter().cloned().map(Answer::relayed).collect()),
            target: s("target"),
            command: s("command"),
            exit_code: v
                .get("exit_code")
                .and_then(Value::as_i64)
                .and_then(|c| i32::try_from(c).ok()),
            stdout: s("stdout"),
            stderr: s("stderr"),
            truncated: v.get("truncated").and_then(Value::as_bool),
            stdout_dropped_bytes: v.get("stdout_dropped_bytes").and_then(Value::as_u64),
            stderr_dropped_bytes: v.get("stderr_dropped_bytes").and_then(Value::as_u64),
            timed_out: v.get("timed_out").and_then(Value::as_bool),
            signal: v
                .get("signal")
                .and_then(Value::as_i64)
                .and_then(|c| i32::try_from(c).ok()),
            duration_ms: v.get("duration_ms").and_then(Value::as_u64),
            request_id: s("request_id"),
            approval_id: s("approval_id"),
            error: v.get("error").map(|e| ErrorBody {
                code: e
                    .get("code")
                    .and_then(Value::as_str)
                    .unwrap_or("release")
                    .to_string(),
                message: e
                    .get("message")
                    .and_then(Value::as_str)
                    .unwrap_or("")
                    .to_string(),
            }),
            ..Answer::default()
        }
    }

    /// An error answer.
    pub fn error(code: &str, message: impl Into<String>) -> Answer {
        Answer {
            status: "error",
            error: Some(ErrorBody {
                code: code.to_string(),
                message: message.into(),
            }),
            ..Answer::default()
        }
    }
}

/// A failed request: its answer and exit code.
#[derive(Debug)]
pub struct Failure {
    /// The error answer (boxed: failures travel through many `Result`s).
    pub answer: Box<Answer>,
    /// Process exit code.
    pub exit: u8,
}

impl Failure {
    /// `Ok(answer)` when the exit code says the request was handled, else the failure.
    pub fn from_exit(answer: Answer, code: u8) -> Result<Answer, Failure> {
        if code == exit::HANDLED {
            Ok(answer)
        } else {
            Err(Failure {
                answer: Box::new(answer),
                exit: code,
            })
        }
    }
}

fn fail(code: &str, message: impl Into<String>, exit: u8) -> Failure {
    Failure {
        answer: Box::new(Answer::error(code, message)),
        exit,
    }
}

fn object(v: Value) -> Map<String, Value> {
    match v {
        Value::Object(m) => m,
        _ => Map::new(),
    }
}

/// Appends to the controller's audit log; an error means the caller must fail closed.
pub fn audit(log: &AuditLog, record: Value) -> Result<(), Failure> {
    log.append(object(record)).map(|_| ()).map_err(|e| {
        fail(
            "audit_failed",
            format!("{e}; nothing was run (fail closed)"),
            exit::SETUP,
        )
    })
}

/// Records an error answer in the audit log (if possible) and returns it.
fn audited_failure(log: &AuditLog, mut base: Map<String, Value>, f: Failure) -> Failure {
    if let Some(err) = &f.answer.error {
        base.insert("event".into(), "error".into());
        base.insert("status".into(), "error".into());
        base.insert("code".into(), err.code.clone().into());
        base.insert("message".into(), err.message.clone().into());
    }
    match audit(log, Value::Object(base)) {
        Ok(()) => f,
        Err(audit_failure) => audit_failure,
    }
}

/// Parses and checks stdin; never panics on any bytes.
pub fn parse_input(input: &[u8]) -> Result<RunInput, Failure> {
    if input.len() > MAX_INPUT_BYTES {
        return Err(fail(
            "input_too_large",
            format!("request is larger than {MAX_INPUT_BYTES} bytes"),
            exit::FAILED,
        ));
    }
    let text = std::str::from_utf8(input).map_err(|e| {
        fail(
            "invalid_utf8",
            format!("request is not UTF-8: {e}"),
            exit::FAILED,
        )
    })?;
    let req: RunInput = serde_json::from_str(text).map_err(|e| {
        fail(
            "invalid_json",
            format!("expected {{\"target\",\"command\",\"requester\",\"reason\"}}: {e}"),
            exit::FAILED,
        )
    })?;
    if let Some(why) = aiops_policy::hygiene(&req.command) {
        return Err(fail("invalid_command", why, exit::FAILED));
    }
    for (field, value, max) in [
        ("requester", &req.requester, MAX_REQUESTER),
        ("reason", &req.reason, MAX_REASON),
    ] {
        if value.len() > max {
            return Err(fail(
                "invalid_field",
                format!("{field} is longer than {max} bytes"),
                exit::FAILED,
            ));
        }
        if value.chars().any(char::is_control) {
            return Err(fail(
                "invalid_field",
                format!("{field} contains control characters"),
                exit::FAILED,
            ));
        }
    }
    if req.requester.trim().is_empty() {
        return Err(fail("invalid_field", "requester is empty", exit::FAILED));
    }
    match (&req.targets, req.target.is_empty()) {
        (None, true) => {
            return Err(fail(
                "invalid_field",
                "target (or targets) is required",
                exit::FAILED,
            ));
        }
        (Some(_), false) => {
            return Err(fail(
                "invalid_field",
                "give either target or targets, not both",
                exit::FAILED,
            ));
        }
        (Some(list), true) if list.is_empty() || list.len() > 10_000 => {
            return Err(fail(
                "invalid_field",
                "targets must name 1 to 10000 targets",
                exit::FAILED,
            ));
        }
        _ => {}
    }
    if req.max_concurrency == Some(0) {
        return Err(fail(
            "invalid_field",
            "max_concurrency must be at least 1",
            exit::FAILED,
        ));
    }
    Ok(req)
}

/// A safe description of raw input for the audit log (never the bytes themselves).
fn input_summary(input: &[u8]) -> Map<String, Value> {
    let preview: String = String::from_utf8_lossy(&input[..input.len().min(200)])
        .chars()
        .map(|c| if c.is_control() { '\u{FFFD}' } else { c })
        .collect();
    object(json!({
        "input_bytes": input.len(),
        "input_sha256": aiops_sys::sha256_hex(input),
        "input_preview": preview,
    }))
}

/// Everything `run` needs that is loaded lazily, only when a command is sent.
pub struct Sender {
    tls: Arc<rustls::ClientConfig>,
    key: SigningKey,
}

impl Sender {
    /// Loads the controller certificate, key and signing key.
    pub fn load(loaded: &Loaded) -> Result<Sender, Failure> {
        let pki = loaded.pki();
        let tls = aiops_certs::tls::client_config(
            &pki.ca_cert(),
            &pki.controller_cert(),
            &pki.controller_key(),
        )
        .map_err(|e| fail("config", e.to_string(), exit::SETUP))?;
        let key_text = std::fs::read_to_string(pki.signing_key()).map_err(|e| {
            fail(
                "config",
                format!("{}: {e}", pki.signing_key().display()),
                exit::SETUP,
            )
        })?;
        let key = SigningKey::from_pem(&key_text).map_err(|e| {
            fail(
                "config",
                format!("{}: {e}", pki.signing_key().display()),
                exit::SETUP,
            )
        })?;
        Ok(Sender {
            tls: Arc::new(tls),
            key,
        })
    }

    /// The client TLS configuration.
    pub fn tls(&self) -> Arc<rustls::ClientConfig> {
        self.tls.clone()
    }
}

/// Handles one JSON request end to end. Returns the answer and exit code.
pub async fn run_json(loaded: &Loaded, input: &[u8]) -> (Answer, u8) {
    let log = AuditLog::new(&loaded.config.audit_log);
    let req = match parse_input(input) {
        Ok(r) => r,
        Err(f) => {
            let f = audited_failure(&log, input_summary(input), f);
            return (*f.answer, f.exit);
        }
    };
    let base = object(json!({
        "target": req.target_spec(),
        "command": req.command,
        "requester": req.requester,
        "reason": req.reason,
    }));
    let selectors = req
        .targets
        .clone()
        .unwrap_or_else(|| vec![req.target.clone()]);
    let names = match loaded.resolve_targets(&selectors) {
        Ok(n) if !n.is_empty() => n,
        Ok(_) => {
            let f = audited_failure(
                &log,
                base,
                fail(
                    "unknown_target",
                    "the selection matches no target",
                    exit::FAILED,
                ),
            );
            return (*f.answer, f.exit);
        }
        Err(e) => {
            let f = audited_failure(&log, base, fail("unknown_target", e, exit::FAILED));
            return (*f.answer, f.exit);
        }
    };
    // A plain single name keeps the single-target answer; any selector or list fans out.
    let fanout = req.targets.is_some() || req.target.contains(':');
    // One decision for the exact command and the exact set: the strictest over the targets.
    let decision = names
        .iter()
        .map(|n| loaded.policy.classify_for(Some(n), &req.command))
        .max_by_key(|d| d.risk)
        .expect("at least one target");
    match decision.risk {
        Risk::AutoAllowed => {
            let results = execute_targets(
                loaded,
                &log,
                &req,
                &names,
                &decision,
                pb::Decision::AutoAllowed,
                None,
            )
            .await;
            finish(&req, &names, fanout, &decision, None, results)
        }
        Risk::Forbidden | Risk::Rejected => {
            let status = if decision.risk == Risk::Forbidden {
                "forbidden"
            } else {
                "rejected"
            };
            let mut rec = base.clone();
            rec.insert("event".into(), status.into());
            rec.insert("status".into(), status.into());
            rec.insert("risk".into(), decision.risk.as_str().into());
            rec.insert("reasons".into(), json!(decision.reasons));
            rec.insert("targets".into(), json!(names));
            if let Err(f) = audit(&log, Value::Object(rec)) {
                return (*f.answer, f.exit);
            }
            let message = if decision.risk == Risk::Forbidden {
                "Forbidden by policy; it will not run, even with approval."
            } else {
                "Not covered by any rule and this controller rejects unknown commands (unknown_default: reject)."
            };
            (
                Answer {
                    status,
                    risk: Some(decision.risk.as_str()),
                    target: Some(req.target_spec()),
                    command: Some(req.command.clone()),
                    reasons: Some(decision.reasons),
                    message: Some(message.into()),
                    targets: fanout.then(|| names.clone()),
                    ..Answer::default()
                },
                exit::HANDLED,
            )
        }
        Risk::ApprovalRequired => {
            match crate::approvals::request(loaded, &log, &req, &names, fanout, &decision) {
                Ok(a) => (a, exit::HANDLED),
                Err(f) => (*f.answer, f.exit),
            }
        }
    }
}

/// Turns per-target results into the printed answer: the single answer for a
/// single named target, else a fan-out answer with `results` and `summary`.
pub fn finish(
    req: &RunInput,
    names: &[String],
    fanout: bool,
    decision: &Decision,
    approval_id: Option<&str>,
    mut results: Vec<Answer>,
) -> (Answer, u8) {
    // Nothing ran because of our own set-up (config, keys, audit): exit 2, not 1.
    let setup_failure = |a: &Answer| {
        a.error.as_ref().is_some_and(|e| {
            matches!(
                e.code.as_str(),
                "audit_failed" | "config" | "key_unreadable" | "output_file"
            )
        })
    };
    if !fanout && results.len() == 1 {
        let a = results.pop().expect("one result");
        let code = match (a.status, setup_failure(&a)) {
            ("executed", _) => exit::HANDLED,
            (_, true) => exit::SETUP,
            _ => exit::FAILED,
        };
        return (a, code);
    }
    let mut summary = Summary {
        total: names.len(),
        ..Summary::default()
    };
    for r in &results {
        match r.status {
            "executed" if r.exit_code == Some(0) && r.timed_out != Some(true) => {
                summary.executed += 1;
                summary.succeeded += 1;
            }
            "executed" => {
                summary.executed += 1;
                summary.failed += 1;
            }
            "skipped" => summary.skipped += 1,
            _ => summary.errors += 1,
        }
    }
    let status = match (summary.executed, summary.executed == summary.total) {
        (_, true) => "executed",
        (0, false) => "failed",
        _ => "partial",
    };
    let code = match (summary.executed, results.iter().any(setup_failure)) {
        (0, true) => exit::SETUP,
        (0, false) => exit::FAILED,
        _ => exit::HANDLED,
    };
    (
        Answer {
            status,
            risk: Some(decision.risk.as_str()),
            target: Some(req.target_spec()),
            command: Some(req.command.clone()),
            approval_id: approval_id.map(str::to_string),
            targets: Some(names.to_vec()),
            results: Some(results),
            summary: Some(summary),
            ..Answer::default()
        },
        code,
    )
}

/// Fan-out limits.
#[derive(Debug, Clone, Copy)]
struct Limits {
    concurrency: usize,
    max_errors: Option<usize>,
    canary: bool,
}

/// A target's request, signed and ready to send.
struct Prepared {
    name: String,
    request_id: String,
    signed: pb::SignedCommand,
    base: Map<String, Value>,
    /// `save_output`: the target's output files, created before anything is sent.
    saved: Option<SavedOutput>,
}

impl Prepared {
    /// `save_output`: deletes the (empty) files of a request that did not run.
    fn drop_files(&mut self) {
        if let Some(s) = self.saved.take() {
            s.remove();
            self.base.remove("stdout_file");
            self.base.remove("stderr_file");
        }
    }
}

/// Signs, sends and audits one decided command on each target; used for
/// auto-allowed and approved commands. Returns one answer per target, in
/// order: `executed`, `error` (with `error`), or `skipped`. Every target gets
/// its own audit records: `requested` before anything is sent (one fsync for
/// the set), then its outcome (one fsync for the set) before the answer.
pub async fn execute_targets(
    loaded: &Loaded,
    log: &AuditLog,
    req: &RunInput,
    names: &[String],
    decision: &Decision,
    wire_decision: pb::Decision,
    approval: Option<(
        &str,
        &std::collections::BTreeMap<String, pb::SignedApproval>,
    )>,
) -> Vec<Answer> {
    let approval_id = approval.map(|(id, _)| id);
    let common = {
        let mut m = object(json!({
            "command": req.command,
            "requester": req.requester,
            "reason": req.reason,
            "risk": decision.risk.as_str(),
        }));
        if let Some(id) = approval_id {
            m.insert("approval_id".into(), id.into());
        }
        if names.len() > 1 || req.targets.is_some() {
            m.insert("fanout".into(), req.target_spec().into());
        }
        m
    };
    let error_all = |f: Failure| -> Vec<Answer> {
        let records: Vec<Map<String, Value>> = names
            .iter()
            .map(|n| error_record(&common, n, None, &f.answer))
            .collect();
        let answer = match log.append_many(records) {
            Ok(_) => *f.answer,
            Err(e) => Answer::error(
                "audit_failed",
                format!("{e}; nothing was run (fail closed)"),
            ),
        };
        names
            .iter()
            .map(|n| Answer {
                target: Some(n.clone()),
                ..answer.clone()
            })
            .collect()
    };
    let sender = match Sender::load(loaded) {
        Ok(s) => s,
        Err(f) => return error_all(f),
    };
    let defaults = &loaded.config.defaults;
    let now = aiops_sys::now_ms();
    let output_cap_bytes = if req.save_output {
        defaults.saved_output_cap_bytes
    } else {
        defaults.output_cap_bytes
    };
    let outputs = if req.save_output {
        match outputs_dir(&loaded.config.runtime_dir) {
            Ok(d) => Some(d),
            Err(f) => return error_all(f),
        }
    } else {
        None
    };
    let mut prepared: Vec<Prepared> = Vec::with_capacity(names.len());
    for name in names {
        let request_id = uuid::Uuid::new_v4().to_string();
        let request = pb::CommandRequest {
            request_id: request_id.clone(),
            target: name.clone(),
            command: req.command.clone(),
            plan: Some(aiops_proto::plan::to_proto(&decision.plan)),
            decision: wire_decision as i32,
            requester: req.requester.clone(),
            reason: req.reason.clone(),
            issued_at_ms: now,
            expires_at_ms: now + i64::from(defaults.request_ttl_secs) * 1000,
            timeout_ms: defaults.timeout_secs.saturating_mul(1000),
            output_cap_bytes,
            policy_digest: loaded.policy.digest().to_string(),
            approval_id: approval_id.unwrap_or_default().to_string(),
        };
        let mut signed = client::sign(&request, &sender.key);
        if let Some((_, grants)) = approval {
            match grants.get(name) {
                Some(g) => signed.approval = prost::Message::encode_to_vec(g),
                None => {
                    return error_all(fail(
                        "approval_invalid",
                        format!("no grant for target {name}"),
                        exit::FAILED,
                    ));
                }
            }
        }
        let mut base = common.clone();
        base.insert("target".into(), name.clone().into());
        base.insert("request_id".into(), request_id.clone().into());
        // The files exist before anything is sent: if one cannot be created, nothing runs.
        let saved = match &outputs {
            Some(dir) => {
                match SavedOutput::create(dir, &request_id, name, defaults.output_cap_bytes) {
                    Ok(s) => {
                        base.insert("stdout_file".into(), s.stdout.path_text().into());
                        base.insert("stderr_file".into(), s.stderr.path_text().into());
                        Some(s)
                    }
                    Err(f) => {
                        prepared.iter_mut().for_each(Prepared::drop_files);
                        return error_all(f);
                    }
                }
            }
            None => None,
        };
        prepared.push(Prepared {
            name: name.clone(),
            request_id,
            signed,
            base,
            saved,
        });
    }
    let sent: Vec<Map<String, Value>> = prepared
        .iter()
        .map(|p| {
            let mut r = p.base.clone();
            r.insert("event".into(), "requested".into());
            r.insert("policy_digest".into(), loaded.policy.digest().into());
            r
        })
        .collect();
    // Written (a failed write stops everything here) but not waited on: the
    // outcome's append below fsyncs the file, this record with it, and each
    // agent has already made its own record durable before running anything.
    if let Err(e) = log.append_many_written(sent) {
        prepared.iter_mut().for_each(Prepared::drop_files);
        let a = Answer::error(
            "audit_failed",
            format!("{e}; nothing was run (fail closed)"),
        );
        return names
            .iter()
            .map(|n| Answer {
                target: Some(n.clone()),
                ..a.clone()
            })
            .collect();
    }

    let limits = Limits {
        concurrency: req
            .max_concurrency
            .unwrap_or(defaults.max_concurrency)
            .max(1),
        max_errors: req.max_errors,
        canary: req.canary.unwrap_or(false) && prepared.len() > 1,
    };
    let outcomes = send_all(loaded, &sender, prepared, decision, approval_id, limits).await;
    let mut records = Vec::with_capacity(outcomes.len());
    let mut answers = Vec::with_capacity(outcomes.len());
    for (base, answer) in outcomes {
        records.push(outcome_record(base, &answer));
        answers.push(answer);
    }
    if let Err(e) = log.append_many(records) {
        // The commands ran (the agents audited them) but the controller cannot
        // record the outcome: say so rather than print an unaudited answer.
        let a = Answer::error(
            "audit_failed",
            format!("{e}; the command was sent but its outcome is not audited here"),
        );
        return answers
            .iter()
            .map(|r| Answer {
                target: r.target.clone(),
                request_id: r.request_id.clone(),
                ..a.clone()
            })
            .collect();
    }
    answers
}

fn error_record(
    common: &Map<String, Value>,
    target: &str,
    request_id: Option<&str>,
    a: &Answer,
) -> Map<String, Value> {
    let mut r = common.clone();
    r.insert("target".into(), target.into());
    if let Some(id) = request_id {
        r.insert("request_id".into(), id.into());
    }
    r.insert("event".into(), "error".into());
    r.insert("status".into(), "error".into());
    if let Some(e) = &a.error {
        r.insert("code".into(), e.code.clone().into());
        r.insert("message".into(), e.message.clone().into());
    }
    r
}

fn outcome_record(mut rec: Map<String, Value>, a: &Answer) -> Map<String, Value> {
    match a.status {
        "executed" => {
            rec.insert("event".into(), "executed".into());
            rec.insert("status".into(), "executed".into());
            rec.insert("exit_code".into(), a.exit_code.into());
            rec.insert("timed_out".into(), a.timed_out.into());
            rec.insert("truncated".into(), a.truncated.into());
            rec.insert("duration_ms".into(), a.duration_ms.into());
            if a.stdout_file.is_some() {
                // save_output: the content is in the files, never in the audit log.
                rec.insert("stdout_dropped_bytes".into(), a.stdout_dropped_bytes.into());
                rec.insert("stderr_dropped_bytes".into(), a.stderr_dropped_bytes.into());
            } else {
                rec.insert("stdout".into(), a.stdout.clone().into());
                rec.insert("stderr".into(), a.stderr.clone().into());
            }
            if let Some([(so, sn), (se, en)]) = &a.output_digest {
                rec.insert("stdout_sha256".into(), so.clone().into());
                rec.insert("stdout_bytes".into(), (*sn).into());
                rec.insert("stderr_sha256".into(), se.clone().into());
                rec.insert("stderr_bytes".into(), (*en).into());
            }
            rec
        }
        "skipped" => {
            rec.insert("event".into(), "skipped".into());
            rec.insert("status".into(), "skipped".into());
            rec.insert("message".into(), a.message.clone().into());
            rec
        }
        _ => {
            rec.insert("event".into(), "error".into());
            rec.insert("status".into(), "error".into());
            if let Some(e) = &a.error {
                rec.insert("code".into(), e.code.clone().into());
                rec.insert("message".into(), e.message.clone().into());
            }
            rec
        }
    }
}

/// Sends every prepared request with bounded concurrency, `max_errors` and
/// the optional canary; returns (audit base, answer) per target, in order.
async fn send_all(
    loaded: &Loaded,
    sender: &Sender,
    prepared: Vec<Prepared>,
    decision: &Decision,
    approval_id: Option<&str>,
    limits: Limits,
) -> Vec<(Map<String, Value>, Answer)> {
    use std::io::IsTerminal;
    use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
    let total = prepared.len();
    let errors = AtomicUsize::new(0);
    let done = AtomicUsize::new(0);
    let stop = AtomicBool::new(false);
    let progress = total > 1 && std::io::stderr().is_terminal();
    let slots = tokio::sync::Semaphore::new(limits.concurrency);
    let one = |p: Prepared| {
        let (errors, done, stop, slots) = (&errors, &done, &stop, &slots);
        async move {
            let Ok(_slot) = slots.acquire().await else {
                unreachable!("the semaphore is never closed")
            };
            if stop.load(Ordering::SeqCst) {
                let mut p = p;
                p.drop_files();
                let a = Answer {
                    status: "skipped",
                    target: Some(p.name.clone()),
                    command: None,
                    request_id: Some(p.request_id.clone()),
                    message: Some("not attempted: max_errors reached or the canary failed".into()),
                    ..Answer::default()
                };
                return (p.base, a);
            }
            let mut p = p;
            let a = send_one(loaded, sender, &mut p, decision, approval_id).await;
            let failed =
                a.status != "executed" || a.exit_code != Some(0) || a.timed_out == Some(true);
            if failed {
                let n = errors.fetch_add(1, Ordering::SeqCst) + 1;
                if limits.max_errors.is_some_and(|max| n > max) {
                    stop.store(true, Ordering::SeqCst);
                }
            }
            let d = done.fetch_add(1, Ordering::SeqCst) + 1;
            if progress {
                eprint!(
                    "\raiops: {d}/{total} done, {} failed   ",
                    errors.load(Ordering::SeqCst)
                );
            }
            (p.base, a)
        }
    };
    let mut queue = prepared.into_iter();
    let mut out = Vec::with_capacity(total);
    if limits.canary
        && let Some(first) = queue.next()
    {
        let (base, a) = one(first).await;
        if a.status != "executed" || a.exit_code != Some(0) {
            stop.store(true, Ordering::SeqCst);
        }
        out.push((base, a));
    }
    out.extend(futures_util::future::join_all(queue.map(one)).await);
    if progress {
        eprintln!();
    }
    out
}

async fn send_one(
    loaded: &Loaded,
    sender: &Sender,
    p: &mut Prepared,
    decision: &Decision,
    approval_id: Option<&str>,
) -> Answer {
    let defaults = &loaded.config.defaults;
    let Some(target) = loaded.config.targets.get(&p.name) else {
        p.drop_files();
        return Answer::error("unknown_target", format!("no target named {:?}", p.name));
    };
    let server_name = target.server_name.as_deref().unwrap_or(&p.name);
    let connect_timeout = Duration::from_millis(defaults.connect_timeout_ms);
    let deadline = Duration::from_secs(u64::from(defaults.timeout_secs) + 15);
    let mut collected = Collected::default();
    let result =
        match client::connect(&target.address, server_name, sender.tls(), connect_timeout).await {
            Ok(channel) => {
                let sink: &mut (dyn client::OutputSink + Send) = match p.saved.as_mut() {
                    Some(s) => s,
                    None => &mut collected,
                };
                client::execute_into(channel, p.signed.clone(), deadline, sink).await
            }
            Err(e) => Err(e),
        };
    let st = match result {
        Ok(st) => st,
        Err(e) => {
            let code = match &e {
                ClientError::Unreachable { .. } => "unreachable",
                ClientError::Refused { .. } => "agent_refused",
                ClientError::Incomplete(_) => "incomplete",
                ClientError::Output(_) => "output_file",
            };
            let mut message = e.to_string();
            if let Some(s) = &p.saved {
                match &e {
                    // The command may have run: keep what arrived.
                    ClientError::Incomplete(_) | ClientError::Output(_) => {
                        message.push_str(&format!(
                            "; the output received so far is in {} and {}",
                            s.stdout.path_text(),
                            s.stderr.path_text()
                        ));
                    }
                    ClientError::Refused { .. } if e.reason() == Some("limits") => {
                        message.push_str(&format!(
                            " (save_output asks for defaults.saved_output_cap_bytes = {}; \
                             the agent allows up to its max_output_cap_bytes)",
                            defaults.saved_output_cap_bytes
                        ));
                        p.drop_files();
                    }
                    _ => p.drop_files(),
                }
            }
            let mut a = Answer::error(code, message);
            a.target = Some(p.name.clone());
            a.request_id = Some(p.request_id.clone());
            return a;
        }
    };
    collected.exit = st;
    let st = &collected.exit;
    let truncated = st.stdout_dropped > 0 || st.stderr_dropped > 0;
    let digest = |t: &str| (aiops_sys::sha256_hex(t.as_bytes()), t.len() as u64);
    let (stdout, stderr, output_digest, files) = match &p.saved {
        Some(s) => {
            let d = [s.stdout.digest(), s.stderr.digest()];
            (
                s.stdout.excerpt(st.stdout_dropped),
                s.stderr.excerpt(st.stderr_dropped),
                d,
                Some((s.stdout.path_text(), s.stderr.path_text())),
            )
        }
        None => {
            let (o, e) = (collected.stdout_text(), collected.stderr_text());
            let d = [digest(&o), digest(&e)];
            (o, e, d, None)
        }
    };
    // Secrets never reach the assistant: redact what it is shown, like the audit.
    Answer {
        status: "executed",
        risk: Some(decision.risk.as_str()),
        target: Some(p.name.clone()),
        command: Some(
            p.base
                .get("command")
                .and_then(Value::as_str)
                .unwrap_or_default()
                .to_string(),
        ),
        exit_code: Some(st.exit_code),
        stdout: Some(crate::redact::redact(&stdout)),
        stderr: Some(crate::redact::redact(&stderr)),
        saved_digest: files.is_some().then(|| output_digest.clone()),
        output_digest: Some(output_digest),
        stdout_file: files.as_ref().map(|f| f.0.clone()),
        stderr_file: files.map(|f| f.1),
        truncated: Some(truncated),
        stdout_dropped_bytes: truncated.then_some(st.stdout_dropped),
        stderr_dropped_bytes: truncated.then_some(st.stderr_dropped),
        timed_out: Some(st.timed_out),
        signal: (st.signal != 0).then_some(st.signal),
        duration_ms: Some(st.duration_ms),
        request_id: Some(p.request_id.clone()),
        approval_id: approval_id.map(str::to_string),
        ..Answer::default()
    }
}

/// `save_output`: `<runtime_dir>/outputs`, created 0700 when missing; refused
/// when it is a symlink, not a directory, not ours, or writable by others.
fn outputs_dir(runtime_dir: &Path) -> Result<PathBuf, Failure> {
    use std::os::unix::fs::{DirBuilderExt, MetadataExt};
    let dir = std::path::absolute(runtime_dir.join("outputs"))
        .map_err(|e| output_fail(format!("{}: {e}", runtime_dir.display())))?;
    let what = |e: &dyn std::fmt::Display| output_fail(format!("{}: {e}", dir.display()));
    if let Err(e) = std::fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(&dir)
    {
        return Err(what(&e));
    }
    let meta = std::fs::symlink_metadata(&dir).map_err(|e| what(&e))?;
    if !meta.file_type().is_dir() {
        return Err(what(&"not a directory (a symlink or a file is refused)"));
    }
    if meta.uid() != nix::unistd::geteuid().as_raw() {
        return Err(what(&format!(
            "owned by uid {}, not by this account",
            meta.uid()
        )));
    }
    if meta.mode() & 0o022 != 0 {
        return Err(what(&format!(
            "mode {:o} lets others write; expected 0700",
            meta.mode() & 0o7777
        )));
    }
    Ok(dir)
}

fn output_fail(message: String) -> Failure {
    fail(
        "output_file",
        format!("save_output: {message}; nothing was sent"),
        exit::SETUP,
    )
}

/// `save_output`: a target's two output files.
struct SavedOutput {
    stdout: SavedStream,
    stderr: SavedStream,
}

impl SavedOutput {
    /// Creates `<dir>/<request_id>.<target>.stdout` and `.stderr` (new files only, mode 0600).
    fn create(
        dir: &Path,
        request_id: &str,
        target: &str,
        excerpt_cap: u64,
    ) -> Result<Self, Failure> {
        let stdout =
            SavedStream::create(dir, &format!("{request_id}.{target}.stdout"), excerpt_cap)?;
        match SavedStream::create(dir, &format!("{request_id}.{target}.stderr"), excerpt_cap) {
            Ok(stderr) => Ok(SavedOutput { stdout, stderr }),
            Err(f) => {
                stdout.remove();
                Err(f)
            }
        }
    }

    /// Deletes both files (nothing ran, or nothing arrived).
    fn remove(self) {
        self.stdout.remove();
        self.stderr.remove();
    }
}

impl client::OutputSink for SavedOutput {
    fn output(&mut self, stdout: bool, _tail: bool, data: &[u8]) -> std::io::Result<()> {
        if stdout {
            self.stdout.write(data)
        } else {
            self.stderr.write(data)
        }
    }
}

/// One stream written to its file as it arrives: SHA-256 computed on the way,
/// and only a bounded excerpt (head and tail) kept in memory.
struct SavedStream {
    path: PathBuf,
    file: std::fs::File,
    sha: ring::digest::Context,
    bytes: u64,
    head: Vec<u8>,
    head_cap: usize,
    tail: std::collections::VecDeque<u8>,
    tail_cap: usize,
}

impl SavedStream {
    fn create(dir: &Path, name: &str, excerpt_cap: u64) -> Result<Self, Failure> {
        use std::os::unix::fs::OpenOptionsExt;
        let path = dir.join(name);
        let file = std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .custom_flags(nix::libc::O_NOFOLLOW)
            .open(&path)
            .map_err(|e| output_fail(format!("{}: {e}", path.display())))?;
        let cap = usize::try_from(excerpt_cap).unwrap_or(usize::MAX);
        Ok(SavedStream {
            path,
            file,
            sha: ring::digest::Context::new(&ring::digest::SHA256),
            bytes: 0,
            head: Vec::new(),
            head_cap: cap / 2,
            tail: std::collections::VecDeque::new(),
            tail_cap: cap - cap / 2,
        })
    }

    fn path_text(&self) -> String {
        self.path.display().to_string()
    }

    fn remove(self) {
        let _ = std::fs::remove_file(&self.path);
    }

    fn write(&mut self, data: &[u8]) -> std::io::Result<()> {
        use std::io::Write;
        self.file.write_all(data)?;
        self.sha.update(data);
        self.bytes += data.len() as u64;
        let take = (self.head_cap - self.head.len()).min(data.len());
        self.head.extend_from_slice(&data[..take]);
        let rest = &data[take..];
        if rest.len() >= self.tail_cap {
            self.tail.clear();
            self.tail.extend(&rest[rest.len() - self.tail_cap..]);
        } else {
            let overflow = (self.tail.len() + rest.len()).saturating_sub(self.tail_cap);
            self.tail.drain(..overflow);
            self.tail.extend(rest);
        }
        Ok(())
    }

    /// SHA-256 (hex) and size of everything written.
    fn digest(&self) -> (String, u64) {
        (hex::encode(self.sha.clone().finish()), self.bytes)
    }

    /// The head, a marker for what is not shown, the tail (unredacted).
    fn excerpt(&self, dropped_by_agent: u64) -> String {
        let (tail_a, tail_b) = self.tail.as_slices();
        let shown = (self.head.len() + self.tail.len()) as u64;
        let mut s = String::from_utf8_lossy(&self.head).into_owned();
        let hidden = self.bytes - shown;
        if hidden > 0 || dropped_by_agent > 0 {
            let path = self.path.display();
            s.push_str(&if dropped_by_agent > 0 {
                format!(
                    "\n[aiops: {} bytes not shown; {path} holds the output except the \
                     {dropped_by_agent} bytes dropped over the agent's output cap]\n",
                    hidden + dropped_by_agent
                )
            } else {
                format!("\n[aiops: {hidden} bytes not shown; the whole output is in {path}]\n")
            });
        }
        let tail: Vec<u8> = [tail_a, tail_b].concat();
        s.push_str(&String::from_utf8_lossy(&tail));
        s
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::client::OutputSink;

    #[test]
    fn saved_output_writes_everything_and_keeps_a_bounded_excerpt() {
        let tmp = tempfile::tempdir().unwrap();
        let dir = outputs_dir(tmp.path()).unwrap();
        let mut s = SavedOutput::create(&dir, "id", "srv1", 10).unwrap();
        // A second request with the same id never reuses (or follows) an existing file.
        assert!(SavedOutput::create(&dir, "id", "srv1", 10).is_err());
        let data: Vec<u8> = (0..1000u32).map(|i| b'a' + (i % 26) as u8).collect();
        for piece in data.chunks(7) {
            s.output(true, false, piece).unwrap();
        }
        s.output(false, false, b"oops\n").unwrap();
        assert_eq!(std::fs::read(&s.stdout.path).unwrap(), data);
        assert_eq!(s.stdout.digest(), (aiops_sys::sha256_hex(&data), 1000));
        let text = s.stdout.excerpt(0);
        let tail = String::from_utf8_lossy(&data[995..]);
        assert!(text.starts_with("abcde\n[aiops: 990 bytes not shown; the whole output is in "));
        assert!(text.ends_with(&format!(".stdout]\n{tail}")), "{text}");
        assert_eq!(s.stderr.excerpt(0), "oops\n");
        assert!(s.stdout.excerpt(5).contains("except the 5 bytes dropped"));
        let paths = [s.stdout.path.clone(), s.stderr.path.clone()];
        s.remove();
        assert!(paths.iter().all(|p| !p.exists()));
    }

    #[test]
    fn outputs_dir_refuses_a_symlink_or_a_file() {
        let tmp = tempfile::tempdir().unwrap();
        std::fs::write(tmp.path().join("outputs"), b"x").unwrap();
        let f = outputs_dir(tmp.path()).unwrap_err();
        assert_eq!(f.exit, exit::SETUP);
        assert_eq!(f.answer.error.as_ref().unwrap().code, "output_file");
        std::fs::remove_file(tmp.path().join("outputs")).unwrap();
        std::os::unix::fs::symlink(tmp.path(), tmp.path().join("outputs")).unwrap();
        assert!(outputs_dir(tmp.path()).is_err());
    }
}
