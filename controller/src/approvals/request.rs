//! Asking for an approval: run by the AI-facing account (`aiopsexec`, on
//! behalf of the assistant) when policy says a human must decide. It stores a
//! pending approval signed with the controller key and answers
//! `approval_requested`; it cannot grant anything.

use aiops_audit::AuditLog;
use aiops_policy::{Decision, Mode};
use aiops_types::{ErrorCode, Status};

use super::store::{
    Approval, MAX_PENDING, State, Store, audit_approval, audit_error, err, expire, read_key,
};
use crate::config::Loaded;
use crate::contract::{Answer, Failure, RunInput};

/// Stores a new pending approval for an approval-required command and answers `approval_requested`.
pub fn request(
    loaded: &Loaded,
    log: &AuditLog,
    req: &RunInput,
    names: &[String],
    fanout: bool,
    decision: &Decision,
) -> Result<Answer, Failure> {
    let store = Store::new(&loaded.config.runtime_dir);
    let locked = store.lock()?;
    let now = aiops_sys::now_ms();
    let mut all = locked.all()?;
    expire(&locked, log, &mut all, now)?;
    // A cap on what may wait for a human: a flood of requests under many
    // requester names could otherwise bury the one that matters and slow
    // every request (each reads the whole store). The requester's own
    // pending one is superseded below, so it does not count.
    let waiting = all
        .iter()
        .filter(|a| a.state == State::Pending && a.requester != req.requester)
        .count();
    if waiting >= MAX_PENDING {
        let f = err(
            ErrorCode::TooManyPending,
            format!(
                "{waiting} approvals are pending (at most {MAX_PENDING}); an approver must \
                 resolve some (`aiops approvals list`) before another can be asked for; \
                 nothing was stored"
            ),
        );
        return Err(audit_error(log, f, None, &req.requester));
    }
    let controller_key = read_key(&loaded.pki().signing_key())?;
    let mut approval = Approval {
        id: uuid::Uuid::new_v4().to_string(),
        target: req.target_spec(),
        targets: names.to_vec(),
        fanout,
        command: req.command.clone(),
        command_sha256: aiops_sys::sha256_hex(req.command.as_bytes()),
        risk: decision.risk.as_str().to_string(),
        reasons: decision.reasons.clone(),
        requester: req.requester.clone(),
        reason: req.reason.clone(),
        created_ms: now,
        expires_ms: now + loaded.approval_ttl_secs() * 1000,
        state: State::Pending,
        record_signature: String::new(),
        resolver: None,
        run_as: req.run_as().to_string(),
        plan_sha256: aiops_policy::plan_digest(&decision.plan),
        undo: super::card::undo(&decision.plan),
        plan: decision.plan.clone(),
    };
    approval.record_signature = hex::encode(controller_key.sign(&approval.binding()));
    // The audit record comes first: if it cannot be written, nothing is pending.
    audit_approval(log, "approval_requested", &approval)?;
    locked.save(&approval)?;
    for old in all
        .iter_mut()
        .filter(|a| a.state == State::Pending && a.requester == req.requester)
    {
        old.state = State::Superseded;
        audit_approval(log, "superseded", old)?;
        locked.save(old)?;
    }
    let message = match loaded.policy.mode() {
        Mode::Lab => "Approval required. Reply Approve or Deny.",
        Mode::Production => {
            "Approval required. An approver must run `aiops approvals approve` (the assistant cannot approve in production mode)."
        }
    };
    let card = super::card::card_json(&approval);
    Ok(Answer {
        status: Status::ApprovalRequested,
        risk: Some(decision.risk),
        approval_id: Some(approval.id),
        targets: fanout.then(|| approval.targets.clone()),
        target: Some(approval.target),
        command: Some(approval.command),
        reason: Some(approval.reason),
        reasons: Some(approval.reasons.clone()),
        message: Some(message.into()),
        card: Some(card),
        ..Answer::default()
    })
}
