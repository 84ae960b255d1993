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

use aiops_audit::AuditLog;
use aiops_certs::signing::{SigningKey, VerifyingKey};
use aiops_policy::{Decision, Mode, Risk};
use aiops_proto::agent::v1 as pb;
use nix::fcntl::{Flock, FlockArg};
use prost::Message;
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
    /// Approved and signed by an approver; waiting to be released to the agent.
    Granted,
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
    /// Target as requested (a name, a selector, or a comma list).
    pub target: String,
    /// The exact resolved target set the approval covers (one name for a single target).
    #[serde(default)]
    pub targets: Vec<String>,
    /// Answer as a fan-out (a selector or list was used).
    #[serde(default)]
    pub fanout: bool,
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
    /// Controller signature over the record's binding fields (detects edits).
    pub record_signature: String,
    /// Who approved or denied it.
    #[serde(default)]
    pub resolver: Option<String>,
}

impl Approval {
    /// The bytes the controller signs when it stores the approval.
    fn binding(&self) -> Vec<u8> {
        format!(
            "aiops-approval-v2\n{}\n{}\n{}\n{}\n{}\n{}",
            self.id,
            self.target_set().join(","),
            self.command_sha256,
            self.requester,
            self.created_ms,
            self.expires_ms
        )
        .into_bytes()
    }

    /// The exact target set (older single-target records have only `target`).
    pub fn target_set(&self) -> Vec<String> {
        if self.targets.is_empty() {
            vec![self.target.clone()]
        } else {
            self.targets.clone()
        }
    }

    /// True when the command, its hash and the controller's signature all agree.
    fn intact(&self, controller: &VerifyingKey) -> bool {
        aiops_sys::sha256_hex(self.command.as_bytes()) == self.command_sha256
            && hex::decode(&self.record_signature)
                .is_ok_and(|sig| controller.verify(&self.binding(), &sig).is_ok())
    }
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
        let opened = OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .mode(0o660)
            .open(&lock_path);
        // flock works on a read-only descriptor too: an account that may not
        // write the lock file (another member of the group) still serializes.
        let f = match opened {
            Err(e) if e.kind() == std::io::ErrorKind::PermissionDenied => File::open(&lock_path),
            other => other,
        }
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

    fn grant_path(&self, id: &str) -> PathBuf {
        self.dir.join(format!("{id}.grant"))
    }

    /// Writes one approval atomically.
    pub fn save(&self, a: &Approval) -> Result<(), Failure> {
        let text = serde_json::to_vec_pretty(a).expect("approval serializes");
        // Group-readable: in production the approver account (same group) reads and grants them.
        aiops_sys::write_file_mode(&self.path(&a.id), &text, 0o640).map_err(|e| {
            err(
                "runtime",
                format!("{}: {e}", self.path(&a.id).display()),
                exit::SETUP,
            )
        })
    }
}

fn approval_record(event: &str, a: &Approval) -> serde_json::Map<String, Value> {
    let Value::Object(m) = json!({
        "event": event,
        "approval_id": a.id,
        "target": a.target,
        "targets": a.target_set(),
        "command": a.command,
        "command_sha256": a.command_sha256,
        "requester": a.requester,
        "reason": a.reason,
        "risk": a.risk,
        "expires_ms": a.expires_ms,
    }) else {
        unreachable!("json! object")
    };
    m
}

fn audit_approval(log: &AuditLog, event: &str, a: &Approval) -> Result<(), Failure> {
    audit(log, Value::Object(approval_record(event, a)))
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
    names: &[String],
    fanout: bool,
    decision: &Decision,
) -> Result<Answer, Failure> {
    let store = Store::new(&loaded.config.runtime_dir);
    let locked = store.lock()?;
    let now = aiops_sys::now_ms();
    let mut all = locked.all()?;
    expire(&locked, log, &mut all, now)?;
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
    Ok(Answer {
        status: "approval_requested",
        risk: Some(decision.risk.as_str()),
        approval_id: Some(approval.id),
        targets: fanout.then(|| approval.targets.clone()),
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

fn read_key(path: &Path) -> Result<SigningKey, Failure> {
    let text = std::fs::read_to_string(path).map_err(|e| {
        err(
            "key_unreadable",
            format!("{}: {e}", path.display()),
            exit::SETUP,
        )
    })?;
    SigningKey::from_pem(&text).map_err(|e| {
        err(
            "key_unreadable",
            format!("{}: {e}", path.display()),
            exit::SETUP,
        )
    })
}

fn read_public(text_or_path: &str, base: &Path) -> Result<VerifyingKey, Failure> {
    let text = if text_or_path.trim().starts_with("ed25519:") {
        text_or_path.to_string()
    } else {
        let p = base.join(text_or_path.trim());
        std::fs::read_to_string(&p).map_err(|e| {
            err(
                "key_unreadable",
                format!("{}: {e}", p.display()),
                exit::SETUP,
            )
        })?
    };
    VerifyingKey::parse(&text).map_err(|e| err("key_unreadable", e.to_string(), exit::SETUP))
}

fn controller_public(loaded: &Loaded) -> Result<VerifyingKey, Failure> {
    let p = loaded.pki().signing_pub();
    read_public(&p.display().to_string(), Path::new("/"))
}

fn approver_public(loaded: &Loaded) -> Result<VerifyingKey, Failure> {
    match (
        &loaded.config.approvals.approver_public_key,
        &loaded.config.approvals.approver_key,
    ) {
        (Some(k), _) => read_public(k, loaded.path.parent().unwrap_or(Path::new("."))),
        (None, Some(private)) => read_public(
            &private.with_extension("pub").display().to_string(),
            Path::new("/"),
        ),
        (None, None) => Err(err(
            "no_approver_key",
            "no approver key is configured (approvals.approver_key / approver_public_key)",
            exit::SETUP,
        )),
    }
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
                "no_approver_key",
                "no approver key is configured (approvals.approver_key)",
                exit::SETUP,
            )
        })?;
    let key = read_key(path).map_err(|mut f| {
        f.answer = Box::new(Answer::error(
            "approver_key_unreadable",
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
        Resolver::Human(r) => r.clone(),
    };
    let audited = |f: Failure| -> Failure { audit_error(&log, f, id, &who) };
    let production = loaded.policy.mode() == Mode::Production;
    match &resolver {
        Resolver::Requester(_) if production => {
            return Err(audited(err(
                "approval_not_allowed",
                "production mode: approvals cannot be given through `aiops run` or the assistant; an approver must run `aiops approvals approve`",
                exit::FAILED,
            )));
        }
        Resolver::Human(name)
            if production && !loaded.config.approvals.approvers.contains(name) =>
        {
            return Err(audited(err(
                "not_an_approver",
                format!("{name:?} is not in approvals.approvers"),
                exit::FAILED,
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
                        return Err(audited(err(
                            "ambiguous",
                            "several approvals are pending; name one (aiops approvals list)",
                            exit::FAILED,
                        )));
                    }
                }
            }
        };
        let Some(i) = candidate else {
            return Err(audited(err(
                "no_pending_approval",
                "there is no pending approval to resolve",
                exit::FAILED,
            )));
        };
        if let (Resolver::Requester(Some(r)), Some(_)) = (&resolver, id)
            && &all[i].requester != r
        {
            return Err(audited(err(
                "no_pending_approval",
                "that approval belongs to another requester",
                exit::FAILED,
            )));
        }
        expire(&locked, &log, &mut all, now)?;
        let a = &mut all[i];
        check_pending(a).map_err(&audited)?;
        if !a.intact(&controller) {
            return Err(audited(err(
                "approval_tampered",
                "the stored approval does not match what the controller recorded; nothing was run",
                exit::FAILED,
            )));
        }
        if production && a.requester == who {
            return Err(audited(err(
                "self_approval",
                "the requester cannot approve their own request",
                exit::FAILED,
            )));
        }
        let grant = match verb {
            Verb::Approve => Some(sign_grant(loaded, a, &who).map_err(&audited)?),
            Verb::Deny => None,
        };
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
                .map_err(|e| err("runtime", e.to_string(), exit::SETUP))?;
        }
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
    match crate::run::Sender::load(loaded) {
        Ok(_) => release(loaded, &approval.id).await,
        Err(f) => match &loaded.config.approvals.controller_user {
            // The approver account cannot read the controller's keys: hand the
            // signed grant to the controller account, which verifies it again.
            Some(user) => release_via_sudo(loaded, user, &approval.id),
            None => Err(f),
        },
    }
}

fn check_pending(a: &Approval) -> Result<(), Failure> {
    match a.state {
        State::Pending => Ok(()),
        State::Expired => Err(err(
            "approval_expired",
            format!("approval {} expired; request the command again", a.id),
            exit::FAILED,
        )),
        State::Granted | State::Used | State::Denied | State::Superseded => Err(err(
            "approval_not_pending",
            format!("approval {} is {:?}, not pending", a.id, a.state).to_lowercase(),
            exit::FAILED,
        )),
    }
}

fn audit_error(log: &AuditLog, f: Failure, id: Option<&str>, who: &str) -> Failure {
    let rec = json!({
        "event": "error",
        "status": "error",
        "code": f.answer.error.as_ref().map(|e| e.code.clone()),
        "message": f.answer.error.as_ref().map(|e| e.message.clone()),
        "approval_id": id,
        "resolver": who,
    });
    match audit(log, rec) {
        Ok(()) => f,
        Err(a) => a,
    }
}

fn release_via_sudo(loaded: &Loaded, user: &str, id: &str) -> Result<Answer, Failure> {
    let exe = std::env::current_exe().map_err(|e| err("release", e.to_string(), exit::SETUP))?;
    let out = std::process::Command::new("/usr/bin/sudo")
        .args(["-n", "-u", user, "--"])
        .arg(exe)
        .arg("--config")
        .arg(&loaded.path)
        .args(["approvals", "release", id])
        .stdin(std::process::Stdio::null())
        .output()
        .map_err(|e| err("release", format!("sudo: {e}"), exit::SETUP))?;
    let text = String::from_utf8_lossy(&out.stdout);
    let answer: Value = serde_json::from_str(text.trim()).map_err(|_| {
        err(
            "release",
            format!(
                "`sudo -u {user} aiops approvals release` failed: {}",
                String::from_utf8_lossy(&out.stderr).trim()
            ),
            exit::FAILED,
        )
    })?;
    let code = u8::try_from(out.status.code().unwrap_or(1)).unwrap_or(1);
    Failure::from_exit(Answer::relayed(answer), code)
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
                "no_pending_approval",
                format!("no approval {id}"),
                exit::FAILED,
            )));
        };
        if a.state != State::Granted {
            return Err(audited(err(
                "approval_not_granted",
                format!("approval {id} is {:?}, not granted", a.state).to_lowercase(),
                exit::FAILED,
            )));
        }
        let bytes = std::fs::read(locked.grant_path(id))
            .map_err(|e| audited(err("approval_invalid", format!("grant: {e}"), exit::FAILED)))?;
        let mut grants = std::collections::BTreeMap::new();
        let mut buf = bytes.as_slice();
        let mut expires = i64::MAX;
        while !buf.is_empty() {
            let signed = pb::SignedApproval::decode_length_delimited(&mut buf).map_err(|e| {
                audited(err("approval_invalid", format!("grant: {e}"), exit::FAILED))
            })?;
            let grant = pb::ApprovalGrant::decode(signed.grant.as_slice()).map_err(|e| {
                audited(err("approval_invalid", format!("grant: {e}"), exit::FAILED))
            })?;
            let valid = signed.key_id == approver.key_id()
                && approver.verify(&signed.grant, &signed.signature).is_ok()
                && grant.approval_id == a.id
                && grant.command_sha256 == a.command_sha256;
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
                "approval_invalid",
                "the grant is not signed by the approver key for exactly this approval; nothing was run",
                exit::FAILED,
            )));
        }
        if aiops_sys::now_ms() > expires {
            a.state = State::Expired;
            audit_approval(&log, "expired", a)?;
            locked.save(a)?;
            return Err(audited(err(
                "approval_expired",
                format!("approval {id} expired"),
                exit::FAILED,
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
    };
    let names = approval.target_set();
    if let Some(gone) = names
        .iter()
        .find(|n| !loaded.config.targets.contains_key(*n))
    {
        return Err(audited(err(
            "unknown_target",
            format!("target {gone:?} is no longer configured"),
            exit::FAILED,
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
            "policy_changed",
            format!(
                "the command is now {} by policy; nothing was run",
                decision.risk.as_str()
            ),
            exit::FAILED,
        )));
    }
    let results = crate::run::execute_targets(
        loaded,
        &log,
        &req,
        &names,
        &decision,
        pb::Decision::Approved,
        Some((&approval.id, &grant)),
    )
    .await;
    let (answer, code) = crate::run::finish(
        &req,
        &names,
        approval.fanout,
        &decision,
        Some(&approval.id),
        results,
    );
    Failure::from_exit(answer, code)
}

/// Lists approvals (pending first) after expiring stale ones.
pub fn list(loaded: &Loaded) -> Result<Vec<Approval>, Failure> {
    let log = AuditLog::new(&loaded.config.audit_log);
    let locked = Store::new(&loaded.config.runtime_dir).lock()?;
    let mut all = locked.all()?;
    expire(&locked, &log, &mut all, aiops_sys::now_ms())?;
    Ok(all)
}

/// Serializes an approval list for `--json`.
pub fn to_json(all: &[Approval]) -> Value {
    json!(all)
}
