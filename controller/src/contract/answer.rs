//! The answer vocabulary of `aiops run`: the one JSON object printed on
//! stdout ([`Answer`]), a failed request ([`Failure`]) and the process exit
//! codes, plus the audit helpers that turn a failure into a record.
//!
//! Shared by every account's code; it imports nothing else of the crate.

use aiops_audit::AuditLog;
use aiops_types::{ErrorCode, Exit, Risk, Status};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

/// Process exit codes of `aiops run` (from [`Exit`]).
pub mod exit {
    use aiops_types::Exit;
    /// Handled as policy says (executed, approval requested, denied, forbidden, rejected).
    pub const HANDLED: u8 = Exit::Handled.code();
    /// The request failed: bad input, unknown target, refused by the agent, unreachable.
    pub const FAILED: u8 = Exit::Failed.code();
    /// Configuration, key or audit problem: nothing ran.
    pub const SETUP: u8 = Exit::Setup.code();
}

/// Per-target outcome counts of a fan-out.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq, Eq)]
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
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct ErrorBody {
    /// Stable code, e.g. `invalid_json`, `unknown_target`, `agent_refused`.
    pub code: ErrorCode,
    /// Human explanation.
    pub message: String,
}

/// The one JSON object printed on stdout.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct Answer {
    /// `executed`, `approval_requested`, `denied`, `forbidden`, `rejected`, `error`, ...
    pub status: Status,
    /// Policy risk.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub risk: Option<Risk>,
    /// Target name.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub target: Option<String>,
    /// Command text.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub command: Option<String>,
    /// Exit status (128+N for signal N).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub exit_code: Option<i32>,
    /// Standard output (head, drop marker, tail).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stdout: Option<String>,
    /// Standard error.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stderr: Option<String>,
    /// Some output was dropped by the cap.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub truncated: Option<bool>,
    /// Bytes dropped from stdout.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stdout_dropped_bytes: Option<u64>,
    /// Bytes dropped from stderr.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stderr_dropped_bytes: Option<u64>,
    /// Killed at the time limit.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub timed_out: Option<bool>,
    /// Signal that ended it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub signal: Option<i32>,
    /// A per-command resource limit ended it: `memory`, `cpu`, `file_size`, ...
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub limit_exceeded: Option<String>,
    /// Wall time measured by the agent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub duration_ms: Option<u64>,
    /// Request id (uuid v4).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub request_id: Option<String>,
    /// Approval id, when one is involved.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub approval_id: Option<String>,
    /// Why the policy decided as it did.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reasons: Option<Vec<String>>,
    /// Requester's reason, echoed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    /// A sentence for the human or assistant.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,
    /// Set when `status` is `error`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<ErrorBody>,
    /// `approval_requested`: what the approver is shown — the argv plan,
    /// the run-as account, every target and whether it can be undone.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub card: Option<Value>,
    /// Fan-out: the resolved target set.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub targets: Option<Vec<String>>,
    /// Fan-out: one answer per target, in target order.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub results: Option<Vec<Answer>>,
    /// Fan-out: counts.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub summary: Option<Summary>,
    /// `save_output`: absolute path of the file holding the whole stdout.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stdout_file: Option<String>,
    /// `save_output`: absolute path of the file holding the whole stderr.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stderr_file: Option<String>,
    /// SHA-256 and size of the full, unredacted stdout and stderr (audit only).
    #[serde(skip)]
    pub output_digest: Option<[(String, u64); 2]>,
    /// `save_output`: the same digests, shown in the answer as `output_digest`
    /// (`[[stdout_sha256, bytes], [stderr_sha256, bytes]]`, i.e. of the files).
    #[serde(
        rename = "output_digest",
        default,
        skip_serializing_if = "Option::is_none"
    )]
    pub saved_digest: Option<[(String, u64); 2]>,
    /// Set when the agent's signed receipt of this result did not verify
    /// (its audit record says `receipt_status: bad` and why): the result
    /// may not be what the agent sent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub receipt_error: Option<String>,
}

impl Answer {
    /// An answer produced by another `aiops` process (the release hop),
    /// relayed whole: every field it has (`summary`, `message`, `reasons`
    /// included). A status, risk or error code outside the vocabulary cannot
    /// be expressed: such an answer is a `release` error, never a guess.
    pub fn relayed(v: Value) -> Result<Answer, Failure> {
        serde_json::from_value(v).map_err(|e| {
            fail(
                ErrorCode::Release,
                format!("the controller account's answer is not an aiops answer: {e}"),
            )
        })
    }

    /// An error answer.
    pub fn error(code: ErrorCode, message: impl Into<String>) -> Answer {
        Answer {
            status: Status::Error,
            error: Some(ErrorBody {
                code,
                message: message.into(),
            }),
            ..Answer::default()
        }
    }

    /// The exit code of a single-target answer: 0 once it ran, else what its error code means.
    pub fn exit(&self) -> u8 {
        match self.status {
            Status::Executed => exit::HANDLED,
            Status::Error
            | Status::ApprovalRequested
            | Status::Denied
            | Status::Forbidden
            | Status::Rejected
            | Status::Partial
            | Status::Failed
            | Status::Skipped => match &self.error {
                Some(e) if e.code.exit() == Exit::Setup => exit::SETUP,
                Some(_) | None => exit::FAILED,
            },
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

/// A failure with an error answer of `code`, exiting as the code says.
pub fn fail(code: ErrorCode, message: impl Into<String>) -> Failure {
    Failure {
        answer: Box::new(Answer::error(code, message)),
        exit: code.exit().code(),
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
            ErrorCode::AuditFailed,
            format!("{e}; nothing was run (fail closed)"),
        )
    })
}

/// Records an error answer in the audit log (if possible) and returns it.
pub fn audited_failure(log: &AuditLog, mut base: Map<String, Value>, f: Failure) -> Failure {
    if let Some(err) = &f.answer.error {
        base.insert("event".into(), "error".into());
        base.insert("status".into(), "error".into());
        base.insert("code".into(), err.code.as_str().into());
        base.insert("message".into(), err.message.clone().into());
    }
    match audit(log, Value::Object(base)) {
        Ok(()) => f,
        Err(audit_failure) => audit_failure,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn a_relayed_answer_keeps_summary_message_and_reasons() {
        let fanout = json!({
            "status": "partial", "risk": "approval_required", "target": "group:web",
            "targets": ["a", "b"], "message": "m", "reasons": ["r1", "r2"],
            "summary": {"total": 2, "executed": 1, "succeeded": 1, "failed": 0, "errors": 1, "skipped": 0},
            "results": [
                {"status": "executed", "target": "a", "exit_code": 0},
                {"status": "error", "target": "b", "error": {"code": "unreachable", "message": "x"}},
            ],
        });
        let a = Answer::relayed(fanout.clone()).unwrap();
        assert_eq!(a.status, Status::Partial);
        assert_eq!(a.risk, Some(Risk::ApprovalRequired));
        assert_eq!(a.message.as_deref(), Some("m"));
        assert_eq!(a.reasons, Some(vec!["r1".to_string(), "r2".to_string()]));
        assert_eq!(a.summary.as_ref().map(|s| s.errors), Some(1));
        assert_eq!(serde_json::to_value(&a).unwrap(), fanout);
    }

    #[test]
    fn an_unknown_relayed_risk_or_status_is_an_error_not_approval_required() {
        for bad in [
            json!({"status": "executed", "risk": "harmless"}),
            json!({"status": "done"}),
            json!({"status": "error", "error": {"code": "mystery", "message": ""}}),
        ] {
            let f = Answer::relayed(bad.clone()).unwrap_err();
            assert_eq!(f.answer.status, Status::Error, "{bad}");
            assert_eq!(f.answer.error.as_ref().unwrap().code, ErrorCode::Release);
            assert_eq!(f.exit, exit::FAILED);
        }
    }
}
