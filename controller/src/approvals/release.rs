//! Releasing a granted approval: run by the controller account
//! (`aiopsexec`, which holds the controller's TLS and signing keys). It checks
//! the approver's signature on the stored grant, marks the approval used and
//! sends exactly the approved command to exactly the approved targets. An
//! approver account without the controller's keys reaches it through
//! `sudo -n -u CONTROLLER aiops approvals release ID`.

use std::path::Path;

use aiops_audit::AuditLog;
use aiops_certs::signing::VerifyingKey;
use aiops_policy::Risk;
use aiops_proto::agent::v1 as pb;
use aiops_types::ErrorCode;
use prost::Message;
use serde_json::Value;

use super::store::{
    State, Store, audit_approval, audit_error, controller_public, err, read_public,
    read_public_file,
};
use crate::config::Loaded;
use crate::contract::{Answer, Failure, RunInput};
use crate::dispatch;

pub(super) fn approver_public(loaded: &Loaded) -> Result<VerifyingKey, Failure> {
    // In production the file that says whose signature approves must be
    // root's alone: the controller account must not be able to swap it.
    let trusted = |p: &Path| -> Result<(), Failure> {
        if loaded.policy.mode() == aiops_policy::Mode::Production {
            aiops_certs::owner::check_root_owned(p)
                .map_err(|e| err(ErrorCode::KeyUnreadable, e))?;
        }
        Ok(())
    };
    match (
        &loaded.config.approvals.approver_public_key,
        &loaded.config.approvals.approver_key,
    ) {
        (Some(k), _) => {
            if !k.trim().starts_with("ed25519:") {
                trusted(Path::new(k.trim()))?;
            }
            read_public(k)
        }
        (None, Some(private)) => {
            let p = private.with_extension("pub");
            trusted(&p)?;
            read_public_file(&p)
        }
        (None, None) => Err(err(
            ErrorCode::NoApproverKey,
            "no approver key is configured (approvals.approver_key / approver_public_key)",
        )),
    }
}

pub(super) fn release_via_sudo(loaded: &Loaded, user: &str, id: &str) -> Result<Answer, Failure> {
    let exe = std::env::current_exe().map_err(|e| err(ErrorCode::Release, e.to_string()))?;
    let out = std::process::Command::new("/usr/bin/sudo")
        .args(["-n", "-u", user, "--"])
        .arg(exe)
        .arg("--config")
        .arg(&loaded.path)
        .args(["approvals", "release", id])
        .stdin(std::process::Stdio::null())
        .output()
        .map_err(|e| err(ErrorCode::Release, format!("sudo: {e}")))?;
    let text = String::from_utf8_lossy(&out.stdout);
    let answer: Value = serde_json::from_str(text.trim()).map_err(|_| {
        err(
            ErrorCode::Release,
            format!(
                "`sudo -u {user} aiops approvals release` failed: {}",
                String::from_utf8_lossy(&out.stderr).trim()
            ),
        )
    })?;
    let code = u8::try_from(out.status.code().unwrap_or(1)).unwrap_or(1);
    Failure::from_exit(Answer::relayed(answer)?, code)
}

/// Runs a granted approval: checks the approver's signature on the stored
/// grant, marks the approval used, and sends the command with the grant.
pub async fn release(loaded: &Loaded, id: &str) -> Result<Answer, Failure> {
    let log = AuditLog::new(&loaded.config.audit_log);
    let audited = |f: Failure| -> Failure { audit_error(&log, f, Some(id), "release") };
    let controller = controller_public(loaded)?;
    let approver = approver_public(loaded)?;
    let (approval, grant) = {
        let locked = Store::new(&loaded.config.runtime_dir).lock()?;
        let mut all = locked.all()?;
        let Some(a) = all.iter_mut().find(|a| a.id == id) else {
            return Err(audited(err(
                ErrorCode::NoPendingApproval,
                format!("no approval {id}"),
            )));
        };
        if a.state != State::Granted {
            return Err(audited(err(
                ErrorCode::ApprovalNotGranted,
                format!("approval {id} is {:?}, not granted", a.state).to_lowercase(),
            )));
        }
        let bytes = std::fs::read(locked.grant_path(id))
            .map_err(|e| audited(err(ErrorCode::ApprovalInvalid, format!("grant: {e}"))))?;
        let mut grants = std::collections::BTreeMap::new();
        let mut buf = bytes.as_slice();
        let mut expires = i64::MAX;
        while !buf.is_empty() {
            let signed = pb::SignedApproval::decode_length_delimited(&mut buf)
                .map_err(|e| audited(err(ErrorCode::ApprovalInvalid, format!("grant: {e}"))))?;
            let grant = pb::ApprovalGrant::decode(signed.grant.as_slice())
                .map_err(|e| audited(err(ErrorCode::ApprovalInvalid, format!("grant: {e}"))))?;
            let valid = signed.key_id == approver.key_id()
                && approver.verify(&signed.grant, &signed.signature).is_ok()
                && grant.approval_id == a.id
                && grant.command_sha256 == a.command_sha256
                && grant.run_as == a.run_as
                && grant.plan_sha256 == a.plan_sha256;
            if !valid {
                grants.clear();
                break;
            }
            expires = expires.min(grant.expires_at_ms);
            grants.insert(grant.target, signed);
        }
        // Exactly the approved set: not one target more, not one less.
        let set: Vec<String> = grants.keys().cloned().collect();
        if set != a.target_set() || !a.intact(&controller) {
            return Err(audited(err(
                ErrorCode::ApprovalInvalid,
                "the grant is not signed by the approver key for exactly this approval; nothing was run",
            )));
        }
        if aiops_sys::now_ms() > expires {
            a.state = State::Expired;
            audit_approval(&log, "expired", a)?;
            locked.save(a)?;
            return Err(audited(err(
                ErrorCode::ApprovalExpired,
                format!("approval {id} expired"),
            )));
        }
        // Used before anything runs: a crash can lose a run, never repeat one.
        a.state = State::Used;
        locked.save(a)?;
        (a.clone(), grants)
    };
    let req = RunInput {
        target: approval.target.clone(),
        targets: approval.fanout.then(|| approval.target_set()),
        command: approval.command.clone(),
        requester: approval.requester.clone(),
        reason: approval.reason.clone(),
        max_concurrency: None,
        max_errors: None,
        canary: None,
        save_output: false,
        run_as: (!approval.run_as.is_empty()).then(|| approval.run_as.clone()),
    };
    let names = approval.target_set();
    if let Some(gone) = names
        .iter()
        .find(|n| !loaded.config.targets.contains_key(*n))
    {
        return Err(audited(err(
            ErrorCode::UnknownTarget,
            format!("target {gone:?} is no longer configured"),
        )));
    }
    // Policy may have changed since the request: never run what is now forbidden.
    let decision = names
        .iter()
        .map(|n| loaded.policy.classify_for(Some(n), &req.command))
        .max_by_key(|d| d.risk)
        .expect("an approval has at least one target");
    if matches!(decision.risk, Risk::Forbidden | Risk::Rejected) {
        return Err(audited(err(
            ErrorCode::PolicyChanged,
            format!(
                "the command is now {} by policy; nothing was run",
                decision.risk.as_str()
            ),
        )));
    }
    // The plan the policy derives now must be the one the approver was shown.
    if aiops_policy::plan_digest(&decision.plan) != approval.plan_sha256 {
        return Err(audited(err(
            ErrorCode::PolicyChanged,
            "the policy now derives another plan than the one the approver was shown; nothing was run",
        )));
    }
    let results = dispatch::execute_targets(
        loaded,
        &log,
        &req,
        &names,
        &decision,
        pb::Decision::Approved,
        Some((&approval.id, &grant)),
    )
    .await;
    let (answer, code) = dispatch::finish(
        &req,
        &names,
        approval.fanout,
        &decision,
        Some(&approval.id),
        results,
    );
    Failure::from_exit(answer, code)
}
