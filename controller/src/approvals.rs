//! Pending approvals: stored in the runtime directory, one JSON file each,
//! written atomically under an exclusive lock so concurrent `aiops`
//! processes never see or leave a half-written approval.
//!
//! An approval is bound to one requester, one target and the exact command
//! bytes (with their SHA-256); it expires and can be used once. A requester
//! has at most one pending approval: a new one supersedes the older.

use std::fs::{File, OpenOptions};
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};

use aiops_certs::audit::AuditLog;
use aiops_policy::{Decision, Mode, Risk};
use aiops_proto::agent::v1 as pb;
use nix::fcntl::{Flock, FlockArg};
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

use crate::config::Loaded;
use crate::run::{Answer, Failure, RunInput, audit, exit};

/// Default lifetime of a pending approval.
pub const DEFAULT_TTL_SECS: i64 = 15 * 60;

/// Lifecycle of an approval.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum State {
    /// Waiting for a human.
    Pending,
    /// Approved and handed to execution (used; cannot run again).
    Used,
    /// Denied.
    Denied,
    /// Replaced by a newer request of the same requester.
    Superseded,
    /// Not resolved in time.
    Expired,
}

/// One approval as stored.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct Approval {
    /// Approval id (uuid v4).
    pub id: String,
    /// Target name.
    pub target: String,
    /// Exact command text.
    pub command: String,
    /// SHA-256 of the command bytes.
    pub command_sha256: String,
    /// Policy risk at request time.
    pub risk: String,
    /// Policy reasons.
    pub reasons: Vec<String>,
    /// Who asked.
    pub requester: String,
    /// Why.
    pub reason: String,
    /// Unix ms.
    pub created_ms: i64,
    /// Unix ms.
    pub expires_ms: i64,
    /// Where it is in its life.
    pub state: State,
}

/// The approvals directory with its lock.
pub struct Store {
    dir: PathBuf,
}

/// Holds the store's exclusive lock while alive.
pub struct Locked {
    dir: PathBuf,
    _lock: Flock<File>,
}

fn err(code: &str, message: impl Into<String>, exit_code: u8) -> Failure {
    Failure {
        answer: Box::new(Answer::error(code, message)),
        exit: exit_code,
    }
}

impl Store {
    /// The store under `runtime_dir/approvals`.
    pub fn new(runtime_dir: &Path) -> Store {
        Store {
            dir: runtime_dir.join("approvals"),
        }
    }

    /// Takes the exclusive lock (creating the directory when needed).
    pub fn lock(&self) -> Result<Locked, Failure> {
        use std::os::unix::fs::DirBuilderExt;
        std::fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(&self.dir)
            .map_err(|e| {
                err(
                    "runtime",
                    format!("{}: {e}", self.dir.display()),
                    exit::SETUP,
                )
            })?;
        let lock_path = self.dir.join(".lock");
        let f = OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .mode(0o600)
            .open(&lock_path)
            .map_err(|e| {
                err(
                    "runtime",
                    format!("{}: {e}", lock_path.display()),
                    exit::SETUP,
                )
            })?;
        let lock = Flock::lock(f, FlockArg::LockExclusive).map_err(|(_, e)| {
            err(
                "runtime",
                format!("lock {}: {e}", lock_path.display()),
                exit::SETUP,
            )
        })?;
        Ok(Locked {
            dir: self.dir.clone(),
            _lock: lock,
        })
    }
}

impl Locked {
    fn path(&self, id: &str) -> PathBuf {
        self.dir.join(format!("{id}.json"))
    }

    /// Every approval, oldest first. Unreadable files are reported, not skipped silently.
    pub fn all(&self) -> Result<Vec<Approval>, Failure> {
        let mut out = Vec::new();
        let entries = std::fs::read_dir(&self.dir).map_err(|e| {
            err(
                "runtime",
                format!("{}: {e}", self.dir.display()),
                exit::SETUP,
            )
        })?;
        for entry in entries.flatten() {
            let p = entry.path();
            if p.extension().and_then(|e| e.to_str()) != Some("json") {
                continue;
            }
            let text = std::fs::read_to_string(&p)
                .map_err(|e| err("runtime", format!("{}: {e}", p.display()), exit::SETUP))?;
            let a: Approval = serde_json::from_str(&text).map_err(|e| {
                err(
                    "corrupt_approval",
                    format!("{}: {e}", p.display()),
                    exit::SETUP,
                )
            })?;
            out.push(a);
        }
        out.sort_by(|a, b| a.created_ms.cmp(&b.created_ms).then(a.id.cmp(&b.id)));
        Ok(out)
    }

    /// Writes one approval atomically.
    pub fn save(&self, a: &Approval) -> Result<(), Failure> {
        let text = serde_json::to_vec_pretty(a).expect("approval serializes");
        aiops_certs::write_file_mode(&self.path(&a.id), &text, 0o600).map_err(|e| {
            err(
                "runtime",
                format!("{}: {e}", self.path(&a.id).display()),
                exit::SETUP,
            )
        })
    }
}

fn audit_approval(log: &AuditLog, event: &str, a: &Approval) -> Result<(), Failure> {
    audit(
        log,
        json!({
            "event": event,
            "approval_id": a.id,
            "target": a.target,
            "command": a.command,
            "command_sha256": a.command_sha256,
            "requester": a.requester,
            "reason": a.reason,
            "risk": a.risk,
            "expires_ms": a.expires_ms,
        }),
    )
}

/// Expires pending approvals past their time, auditing each.
fn expire(locked: &Locked, log: &AuditLog, all: &mut [Approval], now: i64) -> Result<(), Failure> {
    for a in all.iter_mut() {
        if a.state == State::Pending && now > a.expires_ms {
            a.state = State::Expired;
            audit_approval(log, "expired", a)?;
            locked.save(a)?;
        }
    }
    Ok(())
}

/// Stores a new pending approval for an approval-required command and answers `approval_requested`.
pub fn request(
    loaded: &Loaded,
    log: &AuditLog,
    req: &RunInput,
    decision: &Decision,
) -> Result<Answer, Failure> {
    let store = Store::new(&loaded.config.runtime_dir);
    let locked = store.lock()?;
    let now = aiops_certs::now_ms();
    let mut all = locked.all()?;
    expire(&locked, log, &mut all, now)?;
    let approval = Approval {
        id: uuid::Uuid::new_v4().to_string(),
        target: req.target.clone(),
        command: req.command.clone(),
        command_sha256: aiops_certs::sha256_hex(req.command.as_bytes()),
        risk: decision.risk.as_str().to_string(),
        reasons: decision.reasons.clone(),
        requester: req.requester.clone(),
        reason: req.reason.clone(),
        created_ms: now,
        expires_ms: now + loaded.approval_ttl_secs() * 1000,
        state: State::Pending,
    };
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
    Ok(Answer {
        status: "approval_requested",
        risk: Some(decision.risk.as_str()),
        approval_id: Some(approval.id),
        target: Some(approval.target),
        command: Some(approval.command),
        reason: Some(approval.reason),
        reasons: Some(approval.reasons),
        message: Some(message.into()),
        ..Answer::default()
    })
}

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
    /// A human at a terminal (`aiops approvals approve|deny`).
    Human(String),
}

/// Resolves a pending approval; approving runs exactly the approved command on the approved target.
pub async fn resolve(
    loaded: &Loaded,
    verb: Verb,
    id: Option<&str>,
    resolver: Resolver,
) -> Result<Answer, Failure> {
    let log = AuditLog::new(&loaded.config.audit_log);
    let audited = |f: Failure, what: &str| -> Failure {
        let rec = json!({
            "event": "error",
            "status": "error",
            "code": f.answer.error.as_ref().map(|e| e.code.clone()),
            "message": f.answer.error.as_ref().map(|e| e.message.clone()),
            "approval_id": id,
            "resolver": what,
        });
        match audit(&log, rec) {
            Ok(()) => f,
            Err(a) => a,
        }
    };
    let who = match &resolver {
        Resolver::Requester(r) => format!("run:{}", r.as_deref().unwrap_or("any")),
        Resolver::Human(r) => r.clone(),
    };
    if matches!(resolver, Resolver::Requester(_)) && loaded.policy.mode() == Mode::Production {
        return Err(audited(
            err(
                "approval_not_allowed",
                "production mode: approvals cannot be given through `aiops run` or the assistant; an approver must run `aiops approvals approve`",
                exit::FAILED,
            ),
            &who,
        ));
    }
    let store = Store::new(&loaded.config.runtime_dir);
    let approval = {
        let locked = store.lock()?;
        let now = aiops_certs::now_ms();
        let mut all = locked.all()?;
        // Find the candidate before expiring, so an expired one is named as such.
        let candidate = match (&resolver, id) {
            (_, Some(id)) => all.iter().position(|a| a.id == id),
            (Resolver::Requester(r), None) => all.iter().rposition(|a| {
                a.state == State::Pending && r.as_ref().is_none_or(|r| &a.requester == r)
            }),
            (Resolver::Human(_), None) => {
                let pending: Vec<usize> = all
                    .iter()
                    .enumerate()
                    .filter(|(_, a)| a.state == State::Pending && a.expires_ms >= now)
                    .map(|(i, _)| i)
                    .collect();
                match pending.as_slice() {
                    [one] => Some(*one),
                    [] => None,
                    _ => {
                        return Err(audited(
                            err(
                                "ambiguous",
                                "several approvals are pending; name one (aiops approvals list)",
                                exit::FAILED,
                            ),
                            &who,
                        ));
                    }
                }
            }
        };
        let Some(i) = candidate else {
            return Err(audited(
                err(
                    "no_pending_approval",
                    "there is no pending approval to resolve",
                    exit::FAILED,
                ),
                &who,
            ));
        };
        if let (Resolver::Requester(Some(r)), Some(_)) = (&resolver, id)
            && &all[i].requester != r
        {
            return Err(audited(
                err(
                    "no_pending_approval",
                    "that approval belongs to another requester",
                    exit::FAILED,
                ),
                &who,
            ));
        }
        expire(&locked, &log, &mut all, now)?;
        let a = &mut all[i];
        match a.state {
            State::Pending => {}
            State::Expired => {
                return Err(audited(
                    err(
                        "approval_expired",
                        format!("approval {} expired; request the command again", a.id),
                        exit::FAILED,
                    ),
                    &who,
                ));
            }
            State::Used | State::Denied | State::Superseded => {
                return Err(audited(
                    err(
                        "approval_not_pending",
                        format!("approval {} is {:?}, not pending", a.id, a.state).to_lowercase(),
                        exit::FAILED,
                    ),
                    &who,
                ));
            }
        }
        if aiops_certs::sha256_hex(a.command.as_bytes()) != a.command_sha256 {
            return Err(audited(
                err(
                    "approval_tampered",
                    "the stored command does not match its recorded hash; nothing was run",
                    exit::FAILED,
                ),
                &who,
            ));
        }
        a.state = match verb {
            Verb::Approve => State::Used,
            Verb::Deny => State::Denied,
        };
        let event = match verb {
            Verb::Approve => "approved",
            Verb::Deny => "denied",
        };
        // Audit, then persist "used" before anything runs: a crash can lose a run, never repeat one.
        audit(
            &log,
            json!({
                "event": event,
                "approval_id": a.id,
                "target": a.target,
                "command": a.command,
                "command_sha256": a.command_sha256,
                "requester": a.requester,
                "resolver": who,
            }),
        )?;
        locked.save(a)?;
        a.clone()
    };
    if verb == Verb::Deny {
        return Ok(Answer {
            status: "denied",
            risk: Some("approval_required"),
            approval_id: Some(approval.id),
            target: Some(approval.target),
            command: Some(approval.command),
            message: Some("Denied. Nothing was run.".into()),
            ..Answer::default()
        });
    }
    let req = RunInput {
        target: approval.target.clone(),
        command: approval.command.clone(),
        requester: approval.requester.clone(),
        reason: approval.reason.clone(),
    };
    let Some(target) = loaded.config.targets.get(&req.target) else {
        return Err(audited(
            err(
                "unknown_target",
                format!("target {:?} is no longer configured", req.target),
                exit::FAILED,
            ),
            &who,
        ));
    };
    // Policy may have changed since the request: re-classify, and never run what is now forbidden.
    let decision = loaded.policy.classify_for(Some(&req.target), &req.command);
    if matches!(decision.risk, Risk::Forbidden | Risk::Rejected) {
        return Err(audited(
            err(
                "policy_changed",
                format!(
                    "the command is now {} by policy; nothing was run",
                    decision.risk.as_str()
                ),
                exit::FAILED,
            ),
            &who,
        ));
    }
    let wire = if decision.risk == Risk::AutoAllowed {
        pb::Decision::AutoAllowed
    } else {
        pb::Decision::Approved
    };
    crate::run::execute(
        loaded,
        &log,
        &req,
        target,
        &decision,
        wire,
        Some(&approval.id),
    )
    .await
}

/// Lists approvals (pending first) after expiring stale ones.
pub fn list(loaded: &Loaded) -> Result<Vec<Approval>, Failure> {
    let log = AuditLog::new(&loaded.config.audit_log);
    let locked = Store::new(&loaded.config.runtime_dir).lock()?;
    let mut all = locked.all()?;
    expire(&locked, &log, &mut all, aiops_certs::now_ms())?;
    Ok(all)
}

/// Serializes an approval list for `--json`.
pub fn to_json(all: &[Approval]) -> Value {
    json!(all)
}
