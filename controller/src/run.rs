//! `aiops run`: one JSON request on stdin, one JSON answer on stdout.

use std::sync::Arc;
use std::time::Duration;

use aiops_certs::audit::AuditLog;
use aiops_certs::signing::SigningKey;
use aiops_policy::{Decision, Risk};
use aiops_proto::agent::v1 as pb;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value, json};

use crate::client::{self, ClientError, Collected};
use crate::config::{Loaded, TargetConfig};

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
    /// Target name.
    pub target: String,
    /// Exact command text.
    pub command: String,
    /// Who asks (e.g. `hermes`, `manual`).
    pub requester: String,
    /// Why.
    #[serde(default)]
    pub reason: String,
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
}

impl Answer {
    /// An answer produced by another `aiops` process (the release hop), relayed as is.
    pub fn relayed(v: Value) -> Answer {
        let s = |k: &str| v.get(k).and_then(Value::as_str).map(str::to_string);
        let status: &'static str = match v.get("status").and_then(Value::as_str) {
            Some("executed") => "executed",
            _ => "error",
        };
        Answer {
            status,
            risk: v.get("risk").and_then(Value::as_str).map(|r| match r {
                "auto_allowed" => "auto_allowed",
                _ => "approval_required",
            }),
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
        "input_sha256": aiops_certs::sha256_hex(input),
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
        "target": req.target,
        "command": req.command,
        "requester": req.requester,
        "reason": req.reason,
    }));
    let Some(target) = loaded.config.targets.get(&req.target) else {
        let f = fail(
            "unknown_target",
            format!(
                "no target named {:?}; known: {}",
                req.target,
                loaded
                    .config
                    .targets
                    .keys()
                    .cloned()
                    .collect::<Vec<_>>()
                    .join(", ")
            ),
            exit::FAILED,
        );
        let f = audited_failure(&log, base, f);
        return (*f.answer, f.exit);
    };
    let decision = loaded.policy.classify_for(Some(&req.target), &req.command);
    match decision.risk {
        Risk::AutoAllowed => {
            match execute(
                loaded,
                &log,
                &req,
                target,
                &decision,
                pb::Decision::AutoAllowed,
                None,
            )
            .await
            {
                Ok(a) => (a, exit::HANDLED),
                Err(f) => (*f.answer, f.exit),
            }
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
                    target: Some(req.target),
                    command: Some(req.command),
                    reasons: Some(decision.reasons),
                    message: Some(message.into()),
                    ..Answer::default()
                },
                exit::HANDLED,
            )
        }
        Risk::ApprovalRequired => match crate::approvals::request(loaded, &log, &req, &decision) {
            Ok(a) => (a, exit::HANDLED),
            Err(f) => (*f.answer, f.exit),
        },
    }
}

/// Signs, sends and audits one decided command; used for auto-allowed and approved ones.
pub async fn execute(
    loaded: &Loaded,
    log: &AuditLog,
    req: &RunInput,
    target: &TargetConfig,
    decision: &Decision,
    wire_decision: pb::Decision,
    approval: Option<(&str, &pb::SignedApproval)>,
) -> Result<Answer, Failure> {
    let approval_id = approval.map(|(id, _)| id);
    let mut base = object(json!({
        "target": req.target,
        "command": req.command,
        "requester": req.requester,
        "reason": req.reason,
        "risk": decision.risk.as_str(),
    }));
    if let Some(id) = approval_id {
        base.insert("approval_id".into(), id.into());
    }
    let sender = Sender::load(loaded).map_err(|f| audited_failure(log, base.clone(), f))?;
    let defaults = &loaded.config.defaults;
    let request_id = uuid::Uuid::new_v4().to_string();
    base.insert("request_id".into(), request_id.clone().into());
    let now = aiops_certs::now_ms();
    let request = pb::CommandRequest {
        request_id: request_id.clone(),
        target: req.target.clone(),
        command: req.command.clone(),
        plan: Some(aiops_proto::plan::to_proto(&decision.plan)),
        decision: wire_decision as i32,
        requester: req.requester.clone(),
        reason: req.reason.clone(),
        issued_at_ms: now,
        expires_at_ms: now + i64::from(defaults.request_ttl_secs) * 1000,
        timeout_ms: defaults.timeout_secs.saturating_mul(1000),
        output_cap_bytes: defaults.output_cap_bytes,
        policy_digest: loaded.policy.digest().to_string(),
        approval_id: approval_id.unwrap_or_default().to_string(),
    };
    let mut signed = client::sign(&request, &sender.key);
    if let Some((_, grant)) = approval {
        signed.approval = prost::Message::encode_to_vec(grant);
    }
    let mut sent = base.clone();
    sent.insert("event".into(), "requested".into());
    sent.insert("policy_digest".into(), loaded.policy.digest().into());
    audit(log, Value::Object(sent))?;

    let server_name = target.server_name.as_deref().unwrap_or(&req.target);
    let connect_timeout = Duration::from_millis(defaults.connect_timeout_ms);
    let deadline = Duration::from_secs(u64::from(defaults.timeout_secs) + 15);
    let result =
        match client::connect(&target.address, server_name, sender.tls, connect_timeout).await {
            Ok(channel) => client::execute(channel, signed, deadline).await,
            Err(e) => Err(e),
        };
    let collected: Collected = match result {
        Ok(c) => c,
        Err(e) => {
            let code = match &e {
                ClientError::Unreachable { .. } => "unreachable",
                ClientError::Refused { .. } => "agent_refused",
                ClientError::Incomplete(_) => "incomplete",
            };
            let mut f = fail(code, e.to_string(), exit::FAILED);
            f.answer.target = Some(req.target.clone());
            f.answer.command = Some(req.command.clone());
            f.answer.request_id = Some(request_id);
            return Err(audited_failure(log, base, f));
        }
    };
    let exit_status = &collected.exit;
    let truncated = exit_status.stdout_dropped > 0 || exit_status.stderr_dropped > 0;
    let answer = Answer {
        status: "executed",
        risk: Some(decision.risk.as_str()),
        target: Some(req.target.clone()),
        command: Some(req.command.clone()),
        exit_code: Some(exit_status.exit_code),
        stdout: Some(collected.stdout_text()),
        stderr: Some(collected.stderr_text()),
        truncated: Some(truncated),
        stdout_dropped_bytes: truncated.then_some(exit_status.stdout_dropped),
        stderr_dropped_bytes: truncated.then_some(exit_status.stderr_dropped),
        timed_out: Some(exit_status.timed_out),
        signal: (exit_status.signal != 0).then_some(exit_status.signal),
        duration_ms: Some(exit_status.duration_ms),
        request_id: Some(request_id),
        approval_id: approval_id.map(str::to_string),
        ..Answer::default()
    };
    let mut rec = base;
    rec.insert("event".into(), "executed".into());
    rec.insert("status".into(), "executed".into());
    rec.insert("exit_code".into(), exit_status.exit_code.into());
    rec.insert("timed_out".into(), exit_status.timed_out.into());
    rec.insert("truncated".into(), truncated.into());
    rec.insert("duration_ms".into(), exit_status.duration_ms.into());
    crate::redact::output_fields(
        &mut rec,
        answer.stdout.as_deref().unwrap_or_default(),
        answer.stderr.as_deref().unwrap_or_default(),
    );
    audit(log, Value::Object(rec))?;
    Ok(answer)
}
