//! How audit fields are named where they are exported: OpenTelemetry log
//! attributes (semantic conventions where one exists, `aiops.*` otherwise),
//! Elastic Common Schema, and the RFC 5424 structured-data parameter. The
//! table is the one `packaging/export/README.md` documents; a test keeps the
//! two in step.

/// One audit field and its exported names.
#[derive(Debug, Clone, Copy)]
pub struct Field {
    /// Key in the audit record.
    pub audit: &'static str,
    /// OpenTelemetry attribute (or `LogRecord.<field>` for a log data model field).
    pub otel: &'static str,
    /// Elastic Common Schema field.
    pub ecs: &'static str,
    /// RFC 5424 SD-PARAM name in the `aiops@32473` element (or the header part).
    pub syslog: &'static str,
    /// What it holds.
    pub meaning: &'static str,
}

const fn f(
    audit: &'static str,
    otel: &'static str,
    ecs: &'static str,
    syslog: &'static str,
    meaning: &'static str,
) -> Field {
    Field {
        audit,
        otel,
        ecs,
        syslog,
        meaning,
    }
}

/// Every field with a name of its own. A field not listed is exported as
/// `aiops.<field>` (OTel), `aiops.<field>` (ECS) and `<field>` (syslog SD).
pub const FIELDS: &[Field] = &[
    f(
        "ts",
        "LogRecord.time_unix_nano",
        "@timestamp",
        "TIMESTAMP (header)",
        "when the record was written (RFC 3339, ms, UTC)",
    ),
    f(
        "event",
        "LogRecord.event_name (`aiops.audit.<event>`) + aiops.event",
        "event.action",
        "MSGID (header) + event",
        "what happened: requested, executed, forbidden, approval_requested, approved, denied, error, ...",
    ),
    f(
        "seq",
        "aiops.chain.seq",
        "event.sequence",
        "seq",
        "position in the hash chain (1, 2, ...)",
    ),
    f(
        "hash",
        "aiops.chain.hash",
        "event.hash",
        "hash",
        "SHA-256 of the record's canonical JSON without `hash` (before export redaction)",
    ),
    f(
        "prev",
        "aiops.chain.prev",
        "aiops.chain.prev",
        "prev",
        "`hash` of the previous record (64 zeros for the first)",
    ),
    f(
        "command",
        "process.command_line",
        "process.command_line",
        "command",
        "the exact command text (redacted on export)",
    ),
    f(
        "argv",
        "process.command_args",
        "process.args",
        "argv",
        "the command's argument vector when the record carries one",
    ),
    f(
        "exit_code",
        "process.exit.code",
        "process.exit_code",
        "exit_code",
        "exit status of the command on the target",
    ),
    f(
        "duration_ms",
        "aiops.duration_ms",
        "event.duration (ns)",
        "duration_ms",
        "how long the command ran",
    ),
    f(
        "target",
        "aiops.target",
        "host.target.name",
        "target",
        "the target (agent) the record is about",
    ),
    f(
        "targets",
        "aiops.targets",
        "aiops.targets",
        "targets",
        "all targets of a fan-out or approval",
    ),
    f(
        "requester",
        "user.name + aiops.requester",
        "user.name",
        "requester",
        "who asked: the AI agent's identity (e.g. `hermes`) or a person",
    ),
    f(
        "ai_agent",
        "aiops.ai_agent",
        "aiops.ai_agent",
        "ai_agent",
        "the AI agent identity when recorded apart from the requester",
    ),
    f(
        "resolver",
        "aiops.approver",
        "aiops.approver",
        "approver",
        "who approved or denied (approved / denied records)",
    ),
    f(
        "approval_id",
        "aiops.approval_id",
        "aiops.approval_id",
        "approval_id",
        "the approval a command ran under",
    ),
    f(
        "risk",
        "aiops.risk",
        "aiops.risk",
        "risk",
        "policy decision: auto_allowed, approval_required, forbidden, rejected",
    ),
    f(
        "reasons",
        "aiops.reasons",
        "event.reason",
        "reasons",
        "every policy reason behind the decision",
    ),
    f(
        "reason",
        "aiops.request_reason",
        "aiops.request_reason",
        "request_reason",
        "why the requester asked",
    ),
    f(
        "policy_digest",
        "aiops.policy_digest",
        "aiops.policy_digest",
        "policy_digest",
        "SHA-256 of the policy that decided",
    ),
    f(
        "request_id",
        "aiops.request_id",
        "event.id",
        "request_id",
        "one signed request to one agent",
    ),
    f(
        "status",
        "aiops.status",
        "event.outcome (mapped)",
        "status",
        "outcome of the step",
    ),
    f(
        "stdout_sha256",
        "aiops.output.stdout_sha256",
        "aiops.output.stdout_sha256",
        "stdout_sha256",
        "SHA-256 of the full stdout (before redaction and caps)",
    ),
    f(
        "stderr_sha256",
        "aiops.output.stderr_sha256",
        "aiops.output.stderr_sha256",
        "stderr_sha256",
        "SHA-256 of the full stderr",
    ),
    f(
        "stdout",
        "LogRecord.body (in the record JSON)",
        "message (in the record JSON)",
        "MSG (in the record JSON)",
        "redacted stdout excerpt; not an attribute",
    ),
    f(
        "stderr",
        "LogRecord.body (in the record JSON)",
        "message (in the record JSON)",
        "MSG (in the record JSON)",
        "redacted stderr excerpt; not an attribute",
    ),
    f(
        "code",
        "error.type",
        "error.code",
        "code",
        "stable error or refusal code",
    ),
    f(
        "message",
        "aiops.message",
        "error.message",
        "message",
        "human text of an error or refusal (redacted)",
    ),
    f(
        "peer",
        "client.address",
        "source.address",
        "peer",
        "agent side: the connecting peer",
    ),
    f(
        "agent_seq",
        "aiops.agent.audit_seq",
        "aiops.agent.audit_seq",
        "agent_seq",
        "controller side: seq of the agent's record of this outcome, from its verified receipt",
    ),
    f(
        "agent_hash",
        "aiops.agent.audit_hash",
        "aiops.agent.audit_hash",
        "agent_hash",
        "hash of that agent record (checked by `aiops audit verify --targets`)",
    ),
    f(
        "receipt_status",
        "aiops.receipt.status",
        "aiops.receipt.status",
        "receipt_status",
        "`verified` or `bad`: the agent's signed receipt of the result",
    ),
    f(
        "receipt_problem",
        "aiops.receipt.problem",
        "aiops.receipt.problem",
        "receipt_problem",
        "why a receipt is `bad`",
    ),
    f(
        "controller_seq",
        "aiops.controller.audit_seq",
        "aiops.controller.audit_seq",
        "controller_seq",
        "agent side: seq of the controller's `requested` record, from the signed request",
    ),
    f(
        "controller_hash",
        "aiops.controller.audit_hash",
        "aiops.controller.audit_hash",
        "controller_hash",
        "hash of that controller record",
    ),
    f(
        "sig",
        "aiops.audit.checkpoint_sig",
        "aiops.audit.checkpoint_sig",
        "sig",
        "controller side: checkpoint signature over this record (controller signing key)",
    ),
];

/// Exported name of `audit` in the OTel attributes; `None` for fields that are
/// not attributes (`ts`, `stdout`, `stderr`).
pub fn otel_attribute(audit: &str) -> Option<String> {
    match audit {
        "ts" | "stdout" | "stderr" | "requester" | "event" => None,
        _ => Some(match FIELDS.iter().find(|f| f.audit == audit) {
            Some(f) => f.otel.to_string(),
            None => format!("aiops.{audit}"),
        }),
    }
}

/// SD-PARAM name of `audit`; `None` for the output text (it is in MSG).
pub fn syslog_param(audit: &str) -> Option<&str> {
    match audit {
        "ts" | "stdout" | "stderr" => None,
        "resolver" => Some("approver"),
        "reason" => Some("request_reason"),
        other => Some(other),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_documented_table_lists_every_field() {
        let doc = include_str!("../../packaging/export/README.md");
        for f in FIELDS {
            let row = format!("| `{}` |", f.audit);
            assert!(doc.contains(&row), "packaging/export/README.md lacks {row}");
        }
    }

    #[test]
    fn attribute_names_follow_the_table() {
        assert_eq!(
            otel_attribute("exit_code").as_deref(),
            Some("process.exit.code")
        );
        assert_eq!(
            otel_attribute("command").as_deref(),
            Some("process.command_line")
        );
        assert_eq!(otel_attribute("seq").as_deref(), Some("aiops.chain.seq"));
        assert_eq!(
            otel_attribute("brand_new").as_deref(),
            Some("aiops.brand_new")
        );
        assert_eq!(otel_attribute("stdout"), None);
        assert_eq!(syslog_param("resolver"), Some("approver"));
        for f in FIELDS {
            assert!(
                f.syslog.len() <= 32 || f.syslog.contains('('),
                "{}",
                f.syslog
            );
        }
    }
}
