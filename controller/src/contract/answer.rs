//! The answer vocabulary of `aiops run`: the one JSON object printed on
//! stdout ([`Answer`]), a failed request ([`Failure`]) and the process exit
//! codes, plus the audit helpers that turn a failure into a record.
//!
//! Shared by every account's code; it imports nothing else of the crate.

use aiops_audit::AuditLog;
use serde::Serialize;
use serde_json::{Map, Value};

/// Process exit codes of `aiops run`.
pub mod exit {
    /// Handled as policy says (executed, approval requested, denied, forbidden, rejected).
    pub const HANDLED: u8 = 0;
    /// The request failed: bad input, unknown target, refused by the agent, unreachable.
    pub const FAILED: u8 = 1;
    /// Configuration, key or audit problem: nothing ran.
    pub const SETUP: u8 = 2;
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

/// A failure with an error answer of `code`.
pub fn fail(code: &str, message: impl Into<String>, exit: u8) -> Failure {
    Failure {
        answer: Box::new(Answer::error(code, message)),
        exit,
    }
}

/// The map of a JSON object (empty for anything else).
pub fn object(v: Value) -> Map<String, Value> {
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
pub fn audited_failure(log: &AuditLog, mut base: Map<String, Value>, f: Failure) -> Failure {
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
