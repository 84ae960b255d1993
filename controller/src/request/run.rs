//! `aiops run`: one JSON request (or `Approve` / `Deny`) on stdin, one JSON
//! answer on stdout. Run by the AI-facing account (`sudo -u aiopsexec aiops
//! run` from the assistant): it decides by policy and either sends the
//! command ([`crate::dispatch`]), asks for approval
//! ([`crate::approvals::request`]), or refuses.

use aiops_audit::AuditLog;
use aiops_proto::agent::v1 as pb;
use aiops_types::{ErrorCode, Risk, Status};
use serde_json::{Value, json};

use crate::config::Loaded;
use crate::contract::{
    Answer, RunInput, audit, audited_failure, check, exit, fail, input_summary, object, parse_input,
};
use crate::dispatch::{execute_targets, finish};

/// Handles one JSON request end to end. Returns the answer and exit code.
pub async fn run_json(loaded: &Loaded, input: &[u8]) -> (Answer, u8) {
    let log = AuditLog::new(&loaded.config.audit_log);
    match parse_input(input) {
        Ok(req) => run_checked(loaded, &log, req).await,
        Err(f) => {
            let f = audited_failure(&log, input_summary(input), f);
            (*f.answer, f.exit)
        }
    }
}

/// Handles a request built in memory (`aiops mcp`): the same checks as a
/// JSON request, without a round trip through JSON text.
pub async fn run_input(loaded: &Loaded, req: RunInput) -> (Answer, u8) {
    let log = AuditLog::new(&loaded.config.audit_log);
    let mut summary = input_summary(req.command.as_bytes());
    summary.insert("target".into(), req.target_spec().into());
    summary.insert("requester".into(), req.requester.clone().into());
    match check(req) {
        Ok(req) => run_checked(loaded, &log, req).await,
        Err(f) => {
            let f = audited_failure(&log, summary, f);
            (*f.answer, f.exit)
        }
    }
}

/// A checked request: decide by policy and act.
async fn run_checked(loaded: &Loaded, log: &AuditLog, req: RunInput) -> (Answer, u8) {
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
                log,
                base,
                fail(ErrorCode::UnknownTarget, "the selection matches no target"),
            );
            return (*f.answer, f.exit);
        }
        Err(e) => {
            let f = audited_failure(log, base, fail(ErrorCode::UnknownTarget, e));
            return (*f.answer, f.exit);
        }
    };
    // A plain single name keeps the single-target answer; any selector or list fans out.
    let fanout = req.targets.is_some() || req.target.contains(':');
    // One decision for the exact command and the exact set: the strictest over the targets.
    let mut decision = names
        .iter()
        .map(|n| loaded.policy.classify_globbed(Some(n), &req.command))
        .max_by_key(|d| d.risk)
        .expect("at least one target");
    // Running as another account is a privilege a human grants: never automatic.
    if !req.run_as().is_empty() && decision.risk == Risk::AutoAllowed {
        decision.risk = Risk::ApprovalRequired;
        decision.reasons.insert(
            0,
            format!(
                "run_as {}: running as another account needs a human's approval",
                req.run_as()
            ),
        );
    }
    match decision.risk {
        Risk::AutoAllowed => {
            let results = execute_targets(
                loaded,
                log,
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
                Status::Forbidden
            } else {
                Status::Rejected
            };
            let mut rec = base.clone();
            rec.insert("event".into(), status.as_str().into());
            rec.insert("status".into(), status.as_str().into());
            rec.insert("risk".into(), decision.risk.as_str().into());
            rec.insert("reasons".into(), json!(decision.reasons));
            rec.insert("targets".into(), json!(names));
            if let Err(f) = audit(log, Value::Object(rec)) {
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
                    risk: Some(decision.risk),
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
            match crate::approvals::request(loaded, log, &req, &names, fanout, &decision) {
                Ok(a) => (a, exit::HANDLED),
                Err(f) => (*f.answer, f.exit),
            }
        }
    }
}

/// `aiops run`'s stdin: `Approve` / `Deny` (optionally with an id) resolves
/// the requester's pending approval (lab mode only: production refuses it),
/// anything else is a JSON request.
pub async fn run_stdin(loaded: &Loaded, input: &[u8]) -> (Answer, u8) {
    if let Some((verb, id)) = crate::approvals::parse_verb(input) {
        let requester = std::env::var("AIOPS_REQUESTER").ok();
        let result = crate::approvals::resolve(
            loaded,
            verb,
            id.as_deref(),
            crate::approvals::Resolver::Requester(requester),
        )
        .await;
        return match result {
            Ok(a) => (a, exit::HANDLED),
            Err(f) => (*f.answer, f.exit),
        };
    }
    run_json(loaded, input).await
}
