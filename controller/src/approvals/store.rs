//! The approval store: pending approvals in `<runtime_dir>/approvals`, one
//! JSON file each, written atomically under an exclusive lock so concurrent
//! `aiops` processes never see or leave a half-written approval.
//!
//! Run by every account that touches approvals (the AI-facing `aiopsexec`
//! that requests them, the approver that grants them, the controller account
//! that releases them); it only reads and writes the store and the audit log.
//!
//! An approval is bound to one requester, one target and the exact command
//! bytes (with their SHA-256); it expires and can be used once. A requester
//! has at most one pending approval: a new one supersedes the older.

use std::fs::{File, OpenOptions};
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};

use aiops_audit::{AuditEvent, AuditLog};
use aiops_certs::signing::{SigningKey, VerifyingKey};
use aiops_types::ErrorCode;
use nix::fcntl::{Flock, FlockArg};
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

use crate::config::Loaded;
use crate::contract::{Failure, audit};

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
    /// The account it runs as on the target: `""` = root.
    #[serde(default)]
    pub run_as: String,
    /// The exact argv plan that runs (what the approver is shown).
    #[serde(default)]
    pub plan: aiops_policy::Plan,
    /// [`aiops_policy::plan_digest`] of `plan`; the grant carries it to the executor.
    #[serde(default)]
    pub plan_sha256: String,
    /// Whether it can be undone, from the plan ([`super::card::Undo`]).
    #[serde(default)]
    pub undo: super::card::Undo,
}

impl Approval {
    /// The bytes the controller signs when it stores the approval.
    /// Covers everything an approver is shown: the reason and the policy's
    /// reasons too (as SHA-256), so an edited reason is `approval_tampered`;
    /// the run-as account, the plan's digest and the undo hint, so the card
    /// cannot show another privilege or plan than the one that runs.
    pub(super) fn binding(&self) -> Vec<u8> {
        format!(
            "aiops-approval-v4\n{}\n{}\n{}\n{}\n{}\n{}\n{}\n{}\n{}\n{}\n{}\n{}",
            self.id,
            self.target_set().join(","),
            self.command_sha256,
            self.requester,
            self.created_ms,
            self.expires_ms,
            aiops_sys::sha256_hex(self.reason.as_bytes()),
            aiops_sys::sha256_hex(self.reasons.join("\n").as_bytes()),
            self.risk,
            self.run_as,
            self.plan_sha256,
            self.undo.as_str(),
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

    /// The account it runs as, for people: `root` when none is named.
    pub fn run_as_shown(&self) -> &str {
        if self.run_as.is_empty() {
            "root"
        } else {
            &self.run_as
        }
    }

    /// What `aiops approvals list` showed of it, as one digest: the signed
    /// binding (command, plan, targets, run-as, reasons, ...) and the
    /// signature. An approval re-signed in place with the controller's key
    /// (which the controller account holds) has another digest.
    pub(super) fn shown_digest(&self) -> String {
        let mut b = self.binding();
        b.extend_from_slice(b"\n");
        b.extend_from_slice(self.record_signature.as_bytes());
        aiops_sys::sha256_hex(&b)
    }

    /// True when the command, the plan, their hashes and the controller's
    /// signature all agree.
    pub(super) fn intact(&self, controller: &VerifyingKey) -> bool {
        aiops_sys::sha256_hex(self.command.as_bytes()) == self.command_sha256
            && aiops_policy::plan_digest(&self.plan) == self.plan_sha256
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

pub(super) fn err(code: ErrorCode, message: impl Into<String>) -> Failure {
    crate::contract::fail(code, message)
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
            .map_err(|e| err(ErrorCode::Runtime, format!("{}: {e}", self.dir.display())))?;
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
        .map_err(|e| err(ErrorCode::Runtime, format!("{}: {e}", lock_path.display())))?;
        let lock = Flock::lock(f, FlockArg::LockExclusive).map_err(|(_, e)| {
            err(
                ErrorCode::Runtime,
                format!("lock {}: {e}", lock_path.display()),
            )
        })?;
        Ok(Locked {
            dir: self.dir.clone(),
            _lock: lock,
        })
    }
}

impl Locked {
    pub(super) fn path(&self, id: &str) -> PathBuf {
        self.dir.join(format!("{id}.json"))
    }

    /// Every approval, oldest first. Unreadable files are reported, not skipped silently.
    pub fn all(&self) -> Result<Vec<Approval>, Failure> {
        let mut out = Vec::new();
        let entries = std::fs::read_dir(&self.dir)
            .map_err(|e| err(ErrorCode::Runtime, format!("{}: {e}", self.dir.display())))?;
        for entry in entries.flatten() {
            let p = entry.path();
            if p.extension().and_then(|e| e.to_str()) != Some("json") {
                continue;
            }
            let text = std::fs::read_to_string(&p)
                .map_err(|e| err(ErrorCode::Runtime, format!("{}: {e}", p.display())))?;
            let a: Approval = serde_json::from_str(&text)
                .map_err(|e| err(ErrorCode::CorruptApproval, format!("{}: {e}", p.display())))?;
            out.push(a);
        }
        out.sort_by(|a, b| a.created_ms.cmp(&b.created_ms).then(a.id.cmp(&b.id)));
        Ok(out)
    }

    fn listed_path(&self) -> PathBuf {
        self.dir
            .join(format!(".listed-{}", nix::unistd::getuid().as_raw()))
    }

    /// Records the pending approvals just shown to this uid, each with the
    /// digest of what was shown ([`Approval::shown_digest`]).
    pub(super) fn save_listed(&self, shown: &[&Approval]) -> Result<(), Failure> {
        let p = self.listed_path();
        let text: String = shown
            .iter()
            .map(|a| format!("{} {}\n", a.id, a.shown_digest()))
            .collect();
        aiops_sys::write_file_mode(&p, text.as_bytes(), 0o600)
            .map_err(|e| err(ErrorCode::Runtime, format!("{}: {e}", p.display())))
    }

    /// The pending approvals last shown to this uid (id, digest of what was
    /// shown), if they were listed. The approvals directory belongs to the
    /// controller account, which could replace the file: only a regular file
    /// with one link, owned by this uid and writable by it alone, counts.
    pub(super) fn listed(&self) -> Option<Vec<(String, String)>> {
        use std::io::Read;
        use std::os::unix::fs::MetadataExt;
        let mut f = OpenOptions::new()
            .read(true)
            .custom_flags(nix::libc::O_NOFOLLOW | nix::libc::O_NONBLOCK)
            .open(self.listed_path())
            .ok()?;
        let m = f.metadata().ok()?;
        if !m.file_type().is_file()
            || m.uid() != nix::unistd::getuid().as_raw()
            || m.mode() & 0o022 != 0
            || m.nlink() != 1
            || m.len() > 1 << 20
        {
            return None;
        }
        let mut text = String::new();
        f.read_to_string(&mut text).ok()?;
        Some(
            text.lines()
                .filter_map(|l| l.split_once(' '))
                .map(|(id, d)| (id.to_string(), d.to_string()))
                .collect(),
        )
    }

    pub(super) fn grant_path(&self, id: &str) -> PathBuf {
        self.dir.join(format!("{id}.grant"))
    }

    /// Writes one approval atomically.
    pub fn save(&self, a: &Approval) -> Result<(), Failure> {
        let text = serde_json::to_vec_pretty(a).expect("approval serializes");
        // Group-readable: in production the approver account (same group) reads and grants them.
        aiops_sys::write_file_mode(&self.path(&a.id), &text, 0o640).map_err(|e| {
            err(
                ErrorCode::Runtime,
                format!("{}: {e}", self.path(&a.id).display()),
            )
        })
    }
}

pub(super) fn approval_record(event: &str, a: &Approval) -> serde_json::Map<String, Value> {
    let mut e = AuditEvent::new(event);
    e.approval_id = Some(a.id.clone());
    e.target = Some(a.target.clone());
    e.command = Some(a.command.clone());
    e.requester = Some(a.requester.clone());
    e.risk = Some(a.risk.clone());
    e.other.insert("targets".into(), json!(a.target_set()));
    e.other
        .insert("command_sha256".into(), a.command_sha256.clone().into());
    e.other.insert("reason".into(), a.reason.clone().into());
    e.other.insert("expires_ms".into(), a.expires_ms.into());
    e.other
        .insert("run_as".into(), a.run_as_shown().to_string().into());
    e.other
        .insert("plan_sha256".into(), a.plan_sha256.clone().into());
    e.other.insert("undo".into(), a.undo.as_str().into());
    e.into_record()
}

pub(super) fn audit_approval(log: &AuditLog, event: &str, a: &Approval) -> Result<(), Failure> {
    audit(log, Value::Object(approval_record(event, a)))
}

/// At most this many approvals wait for a human at once (`too_many_pending`).
pub const MAX_PENDING: usize = 64;

/// A resolved approval's file is removed this long after it expired: its whole
/// story is in the audit log, and a store that only grows makes every request
/// slower (each one reads it all).
pub const RETAIN_RESOLVED_MS: i64 = 24 * 3600 * 1000;

/// Expires pending approvals past their time, auditing each, and removes the
/// files of resolved ones a day past their expiry (with any grant file).
pub(super) fn expire(
    locked: &Locked,
    log: &AuditLog,
    all: &mut Vec<Approval>,
    now: i64,
) -> Result<(), Failure> {
    for a in all.iter_mut() {
        if a.state == State::Pending && now > a.expires_ms {
            a.state = State::Expired;
            audit_approval(log, "expired", a)?;
            locked.save(a)?;
        }
    }
    all.retain(|a| {
        let stale =
            a.state != State::Pending && now.saturating_sub(a.expires_ms) > RETAIN_RESOLVED_MS;
        if stale {
            let _ = std::fs::remove_file(locked.grant_path(&a.id));
            let _ = std::fs::remove_file(locked.path(&a.id));
        }
        !stale
    });
    Ok(())
}

pub(super) fn read_key(path: &Path) -> Result<SigningKey, Failure> {
    let text = std::fs::read_to_string(path)
        .map_err(|e| err(ErrorCode::KeyUnreadable, format!("{}: {e}", path.display())))?;
    SigningKey::from_pem(&text)
        .map_err(|e| err(ErrorCode::KeyUnreadable, format!("{}: {e}", path.display())))
}

/// A public key given as `ed25519:<hex>` or as the path of a file holding
/// it (the configuration made that path absolute when it loaded).
pub(super) fn read_public(text_or_path: &str) -> Result<VerifyingKey, Failure> {
    if text_or_path.trim().starts_with("ed25519:") {
        VerifyingKey::parse(text_or_path).map_err(|e| err(ErrorCode::KeyUnreadable, e.to_string()))
    } else {
        read_public_file(Path::new(text_or_path.trim()))
    }
}

/// The public key in the file `path`.
pub(super) fn read_public_file(path: &Path) -> Result<VerifyingKey, Failure> {
    let text = std::fs::read_to_string(path)
        .map_err(|e| err(ErrorCode::KeyUnreadable, format!("{}: {e}", path.display())))?;
    VerifyingKey::parse(&text).map_err(|e| err(ErrorCode::KeyUnreadable, e.to_string()))
}

pub(super) fn controller_public(loaded: &Loaded) -> Result<VerifyingKey, Failure> {
    read_public_file(&loaded.pki().signing_pub())
}

pub(super) fn audit_error(log: &AuditLog, f: Failure, id: Option<&str>, who: &str) -> Failure {
    let rec = json!({
        "event": "error",
        "status": "error",
        "code": f.answer.error.as_ref().map(|e| e.code),
        "message": f.answer.error.as_ref().map(|e| e.message.clone()),
        "approval_id": id,
        "resolver": who,
    });
    match audit(log, rec) {
        Ok(()) => f,
        Err(a) => a,
    }
}

/// Lists approvals (pending first) after expiring stale ones.
pub fn list(loaded: &Loaded) -> Result<Vec<Approval>, Failure> {
    let log = AuditLog::new(&loaded.config.audit_log);
    let locked = Store::new(&loaded.config.runtime_dir).lock()?;
    let mut all = locked.all()?;
    expire(&locked, &log, &mut all, aiops_sys::now_ms())?;
    Ok(all)
}

/// Like [`list`], for a human approver (`aiops approvals list`): also
/// remembers, per real uid, which approvals were pending when they were
/// shown, so that `approve` without an id runs only what this person saw.
pub fn list_for_approver(loaded: &Loaded) -> Result<Vec<Approval>, Failure> {
    let all = list(loaded)?;
    let locked = Store::new(&loaded.config.runtime_dir).lock()?;
    let shown: Vec<&Approval> = all.iter().filter(|a| a.state == State::Pending).collect();
    locked.save_listed(&shown)?;
    Ok(all)
}

/// Serializes an approval list for `--json`.
pub fn to_json(all: &[Approval]) -> Value {
    json!(all)
}
