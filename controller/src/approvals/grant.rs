//! Granting or denying: run by whoever resolves an approval, which in
//! production is only the approver account (`aiops approvals approve|deny`,
//! the approver chat), and in lab mode also `echo Approve | aiops run`. An
//! approval is signed with the approver key, which only the approver account
//! can read; the signed grant is then released by the controller account
//! ([`super::release`]).

use aiops_audit::AuditLog;
use aiops_policy::Mode;
use aiops_proto::agent::v1 as pb;
use aiops_types::{ErrorCode, Risk, Status};
use prost::Message;
use serde_json::Value;

use super::release::{release, release_via_sudo};
use super::store::{
    Approval, State, Store, approval_record, audit_error, controller_public, err, expire, read_key,
};
use crate::config::Loaded;
use crate::contract::{Answer, Failure, audit};

/// `Approve` or `Deny`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verb {
    /// Run it.
    Approve,
    /// Do not run it.
    Deny,
}

/// Parses `Approve`, `deny`, `Approve <id>` (case-insensitive, trimmed). `None`: not a verb.
pub fn parse_verb(input: &[u8]) -> Option<(Verb, Option<String>)> {
    let text = std::str::from_utf8(input).ok()?.trim();
    let mut words = text.split_whitespace();
    let verb = match words.next()?.to_ascii_lowercase().as_str() {
        "approve" | "approved" => Verb::Approve,
        "deny" | "denied" => Verb::Deny,
        _ => return None,
    };
    let id = words.next().map(str::to_string);
    if words.next().is_some() {
        return None;
    }
    Some((verb, id))
}

/// Who resolves an approval.
#[derive(Debug, Clone)]
pub enum Resolver {
    /// Through `aiops run` stdin: that requester's pending approval (or the newest one).
    Requester(Option<String>),
    /// A human through an approver chat (`aiops approver telegram|teams`),
    /// which showed them the card it resolves.
    Human(String),
    /// A human at a terminal (`aiops approvals approve|deny`). In production
    /// an approval is approved only as `aiops approvals list` showed it to
    /// this account.
    Terminal(String),
}

/// Signs a grant for `a` with the approver key; fails when this account cannot read it.
fn sign_grant(loaded: &Loaded, a: &Approval, approver: &str) -> Result<Vec<u8>, Failure> {
    let path = loaded
        .config
        .approvals
        .approver_key
        .as_ref()
        .ok_or_else(|| {
            err(
                ErrorCode::NoApproverKey,
                "no approver key is configured (approvals.approver_key)",
            )
        })?;
    let key = read_key(path).map_err(|mut f| {
        f.answer = Box::new(Answer::error(
            ErrorCode::ApproverKeyUnreadable,
            format!(
                "{}: only the approver account can sign approvals{}",
                path.display(),
                f.answer
                    .error
                    .as_ref()
                    .map(|e| format!(" ({})", e.message))
                    .unwrap_or_default()
            ),
        ));
        f
    })?;
    // One signed grant per target of the exact set, length-delimited in one file.
    let mut out = Vec::new();
    for target in a.target_set() {
        let grant = pb::ApprovalGrant {
            approval_id: a.id.clone(),
            target,
            command_sha256: a.command_sha256.clone(),
            expires_at_ms: a.expires_ms,
            approver: approver.to_string(),
            requester: a.requester.clone(),
            run_as: a.run_as.clone(),
            plan_sha256: a.plan_sha256.clone(),
        }
        .encode_to_vec();
        pb::SignedApproval {
            signature: key.sign(&grant),
            key_id: key.verifying_key().key_id(),
            grant,
        }
        .encode_length_delimited(&mut out)
        .expect("a Vec grows");
    }
    Ok(out)
}

/// Resolves a pending approval. Approving signs a grant with the approver key
/// and then runs exactly the approved command on exactly the approved target.
pub async fn resolve(
    loaded: &Loaded,
    verb: Verb,
    id: Option<&str>,
    resolver: Resolver,
) -> Result<Answer, Failure> {
    let log = AuditLog::new(&loaded.config.audit_log);
    let who = match &resolver {
        Resolver::Requester(r) => format!("stdin:{}", r.as_deref().unwrap_or("any")),
        Resolver::Human(r) | Resolver::Terminal(r) => r.clone(),
    };
    let audited = |f: Failure| -> Failure { audit_error(&log, f, id, &who) };
    let production = loaded.policy.mode() == Mode::Production;
    match &resolver {
        Resolver::Requester(_) if production => {
            return Err(audited(err(
                ErrorCode::ApprovalNotAllowed,
                "production mode: approvals cannot be given through `aiops run` or the assistant; an approver must run `aiops approvals approve`",
            )));
        }
        Resolver::Human(name) | Resolver::Terminal(name)
            if production && !loaded.config.approvals.approvers.contains(name) =>
        {
            return Err(audited(err(
                ErrorCode::NotAnApprover,
                format!("{name:?} is not in approvals.approvers"),
            )));
        }
        _ => {}
    }
    let controller = controller_public(loaded)?;
    let store = Store::new(&loaded.config.runtime_dir);
    let approval = {
        let locked = store.lock()?;
        let now = aiops_sys::now_ms();
        let mut all = locked.all()?;
        // Find the candidate before expiring, so an expired one is named as such.
        let candidate = match (&resolver, id) {
            (_, Some(id)) => all.iter().position(|a| a.id == id),
            (Resolver::Requester(r), None) => all.iter().rposition(|a| {
                a.state == State::Pending && r.as_ref().is_none_or(|r| &a.requester == r)
            }),
            (Resolver::Human(_) | Resolver::Terminal(_), None) => {
                let pending: Vec<usize> = all
                    .iter()
                    .enumerate()
                    .filter(|(_, a)| a.state == State::Pending && a.expires_ms >= now)
                    .map(|(i, _)| i)
                    .collect();
                match pending.as_slice() {
                    // Production: only what this person was shown. An approval
                    // filed (or superseded) since `aiops approvals list` would
                    // otherwise be approved unseen.
                    [one]
                        if production
                            && locked
                                .listed()
                                .map(|l| l.into_iter().map(|(id, _)| id).collect::<Vec<_>>())
                                != Some(vec![all[*one].id.clone()]) =>
                    {
                        return Err(audited(err(
                            ErrorCode::Ambiguous,
                            "the pending approvals are not what `aiops approvals list` last showed \
                             you (or you have not listed them): list them again, then approve by id",
                        )));
                    }
                    [one] => Some(*one),
                    [] => None,
                    _ => {
                        return Err(audited(err(
                            ErrorCode::Ambiguous,
                            "several approvals are pending; name one (aiops approvals list)",
                        )));
                    }
                }
            }
        };
        let Some(i) = candidate else {
            return Err(audited(err(
                ErrorCode::NoPendingApproval,
                "there is no pending approval to resolve",
            )));
        };
        if let (Resolver::Requester(Some(r)), Some(_)) = (&resolver, id)
            && &all[i].requester != r
        {
            return Err(audited(err(
                ErrorCode::NoPendingApproval,
                "that approval belongs to another requester",
            )));
        }
        expire(&locked, &log, &mut all, now)?;
        let a = &mut all[i];
        check_pending(a).map_err(&audited)?;
        if !a.intact(&controller) {
            // Recorded with the approval's id even when the approver named none.
            return Err(audit_error(
                &log,
                err(
                    ErrorCode::ApprovalTampered,
                    "the stored approval does not match what the controller recorded; nothing was run",
                ),
                Some(&a.id),
                &who,
            ));
        }
        if production && a.requester == who {
            return Err(audited(err(
                ErrorCode::SelfApproval,
                "the requester cannot approve their own request",
            )));
        }
        let grant = match verb {
            Verb::Approve => Some(sign_grant(loaded, a, &who).map_err(&audited)?),
            Verb::Deny => None,
        };
        // Checked after signing (which needs the approver key) so that an
        // account that cannot sign is told so first; the grant is not kept.
        if production && verb == Verb::Approve && matches!(resolver, Resolver::Terminal(_)) {
            listed_as_shown(&locked, a).map_err(|f| audit_error(&log, f, Some(&a.id), &who))?;
        }
        a.state = if grant.is_some() {
            State::Granted
        } else {
            State::Denied
        };
        a.resolver = Some(who.clone());
        let event = if grant.is_some() {
            "approved"
        } else {
            "denied"
        };
        let mut rec = approval_record(event, a);
        rec.insert("resolver".into(), who.clone().into());
        audit(&log, Value::Object(rec))?;
        if let Some(g) = &grant {
            aiops_sys::write_file_mode(&locked.grant_path(&a.id), g, 0o640)
                .map_err(|e| err(ErrorCode::Runtime, e.to_string()))?;
        }
        locked.save(a)?;
        a.clone()
    };
    if verb == Verb::Deny {
        return Ok(Answer {
            status: Status::Denied,
            risk: Some(Risk::ApprovalRequired),
            approval_id: Some(approval.id),
            target: Some(approval.target),
            command: Some(approval.command),
            message: Some("Denied. Nothing was run.".into()),
            ..Answer::default()
        });
    }
    match crate::dispatch::Sender::load(loaded) {
        Ok(_) => release(loaded, &approval.id).await,
        Err(f) => match &loaded.config.approvals.controller_user {
            // The approver account cannot read the controller's keys: hand the
            // signed grant to the controller account, which verifies it again.
            Some(user) => release_via_sudo(loaded, user, &approval.id),
            None => Err(f),
        },
    }
}

/// Production, at a terminal: `a` must be what `aiops approvals list` last
/// showed this account. Its signature alone does not say so: the controller
/// account holds the key that signs stored approvals and can re-sign an
/// edited one, or replace or delete the listing in the directory it owns.
fn listed_as_shown(locked: &super::store::Locked, a: &Approval) -> Result<(), Failure> {
    let Some(listed) = locked.listed() else {
        return Err(err(
            ErrorCode::Ambiguous,
            "you have not listed the pending approvals (or your listing is not yours): run \
             `aiops approvals list`, check the command, then approve by id",
        ));
    };
    match listed.iter().find(|(id, _)| *id == a.id) {
        Some((_, digest)) if *digest == a.shown_digest() => Ok(()),
        Some(_) => Err(err(
            ErrorCode::ApprovalTampered,
            format!(
                "approval {} changed since `aiops approvals list` showed it to you; nothing was \
                 run: list again and check the command",
                a.id
            ),
        )),
        None => Err(err(
            ErrorCode::Ambiguous,
            format!(
                "approval {} was not pending when you last ran `aiops approvals list`: list \
                 again, check the command, then approve by id",
                a.id
            ),
        )),
    }
}

fn check_pending(a: &Approval) -> Result<(), Failure> {
    match a.state {
        State::Pending => Ok(()),
        State::Expired => Err(err(
            ErrorCode::ApprovalExpired,
            format!("approval {} expired; request the command again", a.id),
        )),
        State::Granted | State::Used | State::Denied | State::Superseded => Err(err(
            ErrorCode::ApprovalNotPending,
            format!("approval {} is {:?}, not pending", a.id, a.state).to_lowercase(),
        )),
    }
}
