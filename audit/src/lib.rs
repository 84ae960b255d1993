//! The append-only, hash-chained JSONL audit log kept by the controller and by
//! every agent.
//!
//! Each line is one JSON object with sorted keys. Besides the caller's fields
//! it carries `seq` (1, 2, ...), `ts`, `prev` (the previous line's `hash`, 64
//! zeros for the first) and `hash` = SHA-256 of the line's canonical JSON
//! without `hash`. Appends take an exclusive `flock`, read the last line to
//! chain onto it, write one line and `fdatasync` before returning: a caller
//! that gets `Ok` knows the record is on disk, and one that gets `Err` must
//! fail closed. A side file `<log>.head` remembers the newest `seq`/`hash` so
//! that deleting lines from the end is detected too.
#![forbid(unsafe_code)]
#![warn(missing_docs)]

use std::fs::{File, OpenOptions};
use std::io::{BufRead, BufReader, Read, Seek, SeekFrom, Write};
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use nix::fcntl::{Flock, FlockArg};
use serde_json::{Map, Value};

/// The `prev` of the first record.
pub const GENESIS: &str = "0000000000000000000000000000000000000000000000000000000000000000";

/// Errors appending to the log.
#[derive(Debug, thiserror::Error)]
pub enum AuditError {
    /// The log could not be opened, locked, read or written.
    #[error("audit log {path}: {message}")]
    Io {
        /// The log file.
        path: String,
        /// What failed.
        message: String,
    },
}

/// A verification failure, naming the first bad line (1-based).
#[derive(Debug, thiserror::Error)]
#[error("{path}:{line}: {message}")]
pub struct VerifyError {
    /// The log file.
    pub path: String,
    /// First bad line, 1-based.
    pub line: usize,
    /// What is wrong with it.
    pub message: String,
}

/// Outcome of a successful verification.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Verified {
    /// Number of records.
    pub records: u64,
    /// Hash of the last record (GENESIS for an empty log).
    pub head: String,
    /// Torn tails that appends cut off and recorded (crash, full disk).
    pub repairs: Vec<Repair>,
    /// Bytes of an incomplete last line not repaired yet (the next append
    /// cuts them off and records it): what a crash mid-write leaves, not
    /// tampering, since no complete record is missing.
    pub torn_tail_bytes: u64,
    /// Signed checkpoints found (their signatures were checked only when
    /// `signatures_checked`).
    pub checkpoints: u64,
    /// Seq of the last checkpoint (0: none).
    pub last_checkpoint_seq: u64,
    /// Records after the last checkpoint: nothing signs them yet (another
    /// writer's records since the key holder last wrote).
    pub unsigned_tail: u64,
    /// Whether checkpoint signatures were checked against a key.
    pub signatures_checked: bool,
}

/// A torn tail cut off by an append, as its `audit_repaired` record says.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Repair {
    /// Line of the `audit_repaired` record, 1-based.
    pub line: usize,
    /// Its sequence number.
    pub seq: u64,
    /// Bytes that were cut off.
    pub removed_bytes: u64,
    /// SHA-256 of those bytes.
    pub removed_sha256: String,
}

/// One audit record as its writers fill it and its readers (`audit tail`,
/// `aiops mcp`'s approval status, the approver chat, the agent's replay
/// cache) use it: the fields they name, typed, and everything else in
/// `other`. Reading never fails: a field of the wrong type is absent.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct AuditEvent {
    /// Sequence number (set by the log).
    pub seq: Option<u64>,
    /// RFC 3339 time (set by the log when missing).
    pub ts: Option<String>,
    /// What happened: `requested`, `executed`, `accepted`, `refused`, `error`, ...
    pub event: String,
    /// Target name (or the selection as requested).
    pub target: Option<String>,
    /// Who asked.
    pub requester: Option<String>,
    /// Policy risk.
    pub risk: Option<String>,
    /// Error code of an `error` record.
    pub code: Option<String>,
    /// The command text.
    pub command: Option<String>,
    /// The approval involved.
    pub approval_id: Option<String>,
    /// The request id.
    pub request_id: Option<String>,
    /// Exit status of an executed command.
    pub exit_code: Option<i64>,
    /// A request's expiry (Unix ms), on the agent's `accepted` records.
    pub expires_at_ms: Option<i64>,
    /// Every other field.
    pub other: Map<String, Value>,
}

impl AuditEvent {
    /// An event named `event` with no other fields yet.
    pub fn new(event: impl Into<String>) -> AuditEvent {
        AuditEvent {
            event: event.into(),
            ..AuditEvent::default()
        }
    }

    /// The typed view of a record.
    pub fn from_record(record: &Map<String, Value>) -> AuditEvent {
        let mut other = record.clone();
        let mut s = |k: &str| match other.remove(k) {
            Some(Value::String(v)) => Some(v),
            Some(v) => {
                other.insert(k.to_string(), v);
                None
            }
            None => None,
        };
        let (ts, event, target, requester, risk, code, command, approval_id, request_id) = (
            s("ts"),
            s("event").unwrap_or_default(),
            s("target"),
            s("requester"),
            s("risk"),
            s("code"),
            s("command"),
            s("approval_id"),
            s("request_id"),
        );
        let mut n = |k: &str| {
            let v = other.get(k).and_then(Value::as_i64);
            if v.is_some() {
                other.remove(k);
            }
            v
        };
        let (exit_code, expires_at_ms) = (n("exit_code"), n("expires_at_ms"));
        let seq = other.get("seq").and_then(Value::as_u64);
        if seq.is_some() {
            other.remove("seq");
        }
        AuditEvent {
            seq,
            ts,
            event,
            target,
            requester,
            risk,
            code,
            command,
            approval_id,
            request_id,
            exit_code,
            expires_at_ms,
            other,
        }
    }

    /// The record to append (`seq`, `prev` and `hash` are the log's own).
    pub fn into_record(self) -> Map<String, Value> {
        let mut m = self.other;
        let mut put = |k: &str, v: Option<Value>| {
            if let Some(v) = v {
                m.insert(k.to_string(), v);
            }
        };
        put("ts", self.ts.map(Value::from));
        put("event", Some(Value::from(self.event)));
        put("target", self.target.map(Value::from));
        put("requester", self.requester.map(Value::from));
        put("risk", self.risk.map(Value::from));
        put("code", self.code.map(Value::from));
        put("command", self.command.map(Value::from));
        put("approval_id", self.approval_id.map(Value::from));
        put("request_id", self.request_id.map(Value::from));
        put("exit_code", self.exit_code.map(Value::from));
        put("expires_at_ms", self.expires_at_ms.map(Value::from));
        m
    }

    /// Unix ms of `ts`, when it has one.
    pub fn ts_ms(&self) -> Option<i64> {
        self.ts.as_deref().and_then(aiops_sys::parse_rfc3339_ms)
    }
}

/// `audit verify` of both binaries (`aiops` and `aiops-agent`): checks the
/// log at `path` and returns the JSON report they print, and whether the
/// chain is intact (the process exits 0 only then).
pub fn verify_report(path: &Path) -> (bool, Value) {
    verify_report_with(path, None)
}

/// [`verify_report`], also checking checkpoint signatures with `check`.
pub fn verify_report_with(path: &Path, check: Option<CheckpointVerifier<'_>>) -> (bool, Value) {
    verify_report_covered(path, check, Coverage::Events(SIGNED_EVENTS))
}

/// [`verify_report_with`] with the given [`Coverage`].
pub fn verify_report_covered(
    path: &Path,
    check: Option<CheckpointVerifier<'_>>,
    coverage: Coverage,
) -> (bool, Value) {
    match AuditLog::new(path).verify_covered(check, coverage) {
        Ok(v) => (true, v.to_json(path)),
        Err(e) => (
            false,
            serde_json::json!({"status": "error", "file": path, "line": e.line, "message": e.message}),
        ),
    }
}

/// Where a record landed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Appended {
    /// Its sequence number.
    pub seq: u64,
    /// Its hash.
    pub hash: String,
}

/// Signs a message.
type SignFn = dyn Fn(&[u8]) -> Vec<u8> + Send + Sync;

/// Signs checkpoint messages: the key's id and a signing function.
#[derive(Clone)]
struct Checkpointer {
    key_id: String,
    sign: Arc<SignFn>,
}

/// A hash-chained audit log file.
#[derive(Clone)]
pub struct AuditLog {
    path: PathBuf,
    checkpoints: Option<Checkpointer>,
}

impl std::fmt::Debug for AuditLog {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AuditLog")
            .field("path", &self.path)
            .field(
                "checkpoint_key",
                &self.checkpoints.as_ref().map(|c| &c.key_id),
            )
            .finish()
    }
}

/// Events only the holder of the checkpoint key writes, and always in a
/// batch whose last record is a checkpoint: `verify` with a key refuses one
/// that no checkpoint covers (a record added by another writer of the file).
pub const SIGNED_EVENTS: &[&str] = &["requested", "executed"];

/// The bytes a checkpoint signs: a domain prefix that starts with a zero
/// byte (never a valid protobuf message, so no signed request or approval
/// can be passed off as one, nor the reverse), then the record's canonical
/// JSON without `hash` and `sig` (with its `seq`, `prev` and `sig_key`).
/// Through `prev` it commits to every record before it.
pub fn checkpoint_message(body: &str) -> Vec<u8> {
    [b"\0aiops-audit-checkpoint-v1\0".as_slice(), body.as_bytes()].concat()
}

/// Checks a checkpoint signature: (key id, message, signature) -> valid.
pub type CheckpointVerifier<'a> = &'a dyn Fn(&str, &[u8], &[u8]) -> bool;

impl AuditLog {
    /// The log at `path` (created on first append, mode 0640).
    pub fn new(path: impl Into<PathBuf>) -> AuditLog {
        AuditLog {
            path: path.into(),
            checkpoints: None,
        }
    }

    /// The last record of every batch this log appends is a checkpoint: it
    /// carries `sig_key` and `sig`, a signature by `sign` (see
    /// [`checkpoint_message`]) over the record, which through the chain
    /// covers every record before it. For the controller account, whose
    /// signing key the log's other writers (the approvers group) cannot
    /// read. One signature per batch, in the same write and fsync.
    pub fn with_checkpoints(
        mut self,
        key_id: impl Into<String>,
        sign: impl Fn(&[u8]) -> Vec<u8> + Send + Sync + 'static,
    ) -> AuditLog {
        self.checkpoints = Some(Checkpointer {
            key_id: key_id.into(),
            sign: Arc::new(sign),
        });
        self
    }

    /// The log file's path.
    pub fn path(&self) -> &Path {
        &self.path
    }

    fn head_path(&self) -> PathBuf {
        let mut name = self.path.as_os_str().to_owned();
        name.push(".head");
        PathBuf::from(name)
    }

    fn err(&self, what: &str, e: impl std::fmt::Display) -> AuditError {
        AuditError::Io {
            path: self.path.display().to_string(),
            message: format!("{what}: {e}"),
        }
    }

    /// Appends one record. `fields` must not contain `seq`, `prev` or `hash`
    /// (they are overwritten); `ts` is added when missing.
    pub fn append(&self, fields: Map<String, Value>) -> Result<Appended, AuditError> {
        let mut all = self.append_many(vec![fields])?;
        Ok(all.pop().expect("one record appended"))
    }

    /// Appends several records under one lock with one write and one fsync
    /// (a fan-out's per-target records).
    pub fn append_many(
        &self,
        records: Vec<Map<String, Value>>,
    ) -> Result<Vec<Appended>, AuditError> {
        self.append_many_with(records, true)
    }

    /// Like [`AuditLog::append_many`] but returns once the kernel has the
    /// records, without waiting for the disk: for a record that a durable
    /// append follows shortly (the controller's `requested` record, made
    /// durable by the fsync of the outcome). Write errors still fail.
    pub fn append_many_written(
        &self,
        records: Vec<Map<String, Value>>,
    ) -> Result<Vec<Appended>, AuditError> {
        self.append_many_with(records, false)
    }

    /// Cuts off a torn tail (and records the cut) now, rather than at the
    /// next append: for a daemon's start. Does nothing to a clean log.
    pub fn repair(&self) -> Result<(), AuditError> {
        self.append_many_with(Vec::new(), true).map(|_| ())
    }

    fn append_many_with(
        &self,
        records: Vec<Map<String, Value>>,
        durable: bool,
    ) -> Result<Vec<Appended>, AuditError> {
        let file = OpenOptions::new()
            .read(true)
            .append(true)
            .create(true)
            .mode(0o640)
            .open(&self.path)
            .map_err(|e| self.err("open", e))?;
        let mut file =
            Flock::lock(file, FlockArg::LockExclusive).map_err(|(_, e)| self.err("lock", e))?;
        let torn = torn_tail(&mut file).map_err(|e| self.err("read", e))?;
        let (mut seq, mut prev) = last_record(&mut file, torn.as_ref().map(|t| t.keep))
            .map_err(|e| self.err("read", e))?;
        let mut records = records;
        if let Some(t) = &torn {
            // Only bytes no append ever acknowledged may go: the head file is
            // written after the fsync, so a head beyond the last complete
            // record means acknowledged records are missing (tampering or a
            // damaged disk), which is for `audit verify`, not for a repair.
            if let Some((head_seq, _)) = self.read_head()
                && head_seq > seq
            {
                return Err(self.err(
                    "read",
                    format!(
                        "the last complete record is {seq} but the head file records {head_seq}: \
                         records were removed; run `aiops audit verify`"
                    ),
                ));
            }
            let mut repair = Map::new();
            repair.insert("event".into(), Value::from(REPAIR_EVENT));
            repair.insert("repair".into(), Value::from("torn_tail"));
            repair.insert("removed_bytes".into(), Value::from(t.removed.len()));
            repair.insert(
                "removed_sha256".into(),
                Value::from(aiops_sys::sha256_hex(&t.removed)),
            );
            records.insert(0, repair);
        }
        let ts = aiops_sys::rfc3339_ms(aiops_sys::now_ms());
        let mut text = String::new();
        let mut appended = Vec::with_capacity(records.len());
        let batch = records.len();
        for mut fields in records {
            seq += 1;
            fields.remove("hash");
            fields.insert("seq".into(), Value::from(seq));
            fields.insert("prev".into(), Value::from(prev.clone()));
            if !fields.contains_key("ts") {
                fields.insert("ts".into(), Value::from(ts.clone()));
            }
            fields.remove("sig");
            fields.remove("sig_key");
            if let Some(c) = &self.checkpoints
                && appended.len() + 1 == batch
            {
                fields.insert("sig_key".into(), Value::from(c.key_id.clone()));
                let body = canonical(&Value::Object(fields.clone()));
                let sig = (c.sign)(&checkpoint_message(&body));
                fields.insert("sig".into(), Value::from(hex_encode(&sig)));
            }
            let body = canonical(&Value::Object(fields.clone()));
            prev = aiops_sys::sha256_hex(body.as_bytes());
            fields.insert("hash".into(), Value::from(prev.clone()));
            text.push_str(&canonical(&Value::Object(fields)));
            text.push('\n');
            appended.push(Appended {
                seq,
                hash: prev.clone(),
            });
        }
        if torn.is_some() {
            // The repair record goes with the batch; callers see their own.
            appended.remove(0);
        }
        if text.is_empty() {
            return Ok(appended);
        }
        let end = match &torn {
            Some(t) => t.keep,
            None => file.metadata().map_err(|e| self.err("stat", e))?.len(),
        };
        // Reserve the space first: on a full disk nothing is written at all,
        // so ENOSPC cannot leave half a record behind. Filesystems without
        // fallocate fall back to the cut-back below.
        let reserve = nix::fcntl::fallocate(
            &*file,
            nix::fcntl::FallocateFlags::FALLOC_FL_KEEP_SIZE,
            i64::try_from(end).unwrap_or(i64::MAX),
            i64::try_from(text.len()).unwrap_or(i64::MAX),
        );
        match reserve {
            Err(nix::errno::Errno::EOPNOTSUPP) | Ok(()) => {}
            Err(e) => return Err(self.err("write", std::io::Error::from(e))),
        }
        if let Some(t) = &torn {
            file.set_len(t.keep)
                .map_err(|e| self.err("cut the torn tail", e))?;
        }
        if let Err(e) = file.write_all(text.as_bytes()) {
            // Leave no complete record of a batch nobody acknowledged; what
            // cannot be cut is a torn tail for the next append to repair.
            let _ = file.set_len(end);
            return Err(self.err("write", e));
        }
        if durable {
            file.sync_data().map_err(|e| self.err("fsync", e))?;
        }
        // Best effort: the chain itself is already durable; the head file only
        // adds detection of lines deleted from the end. Fixed width, rewritten
        // in place under the log's lock: a rename over the old file made ext4
        // flush it synchronously (auto_da_alloc), ~10 ms per append.
        let head = format!("{seq:020} {prev}\n");
        let _ = OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(false)
            .mode(0o640)
            .open(self.head_path())
            .and_then(|f| {
                use std::os::unix::fs::FileExt;
                f.write_all_at(head.as_bytes(), 0)
            });
        Ok(appended)
    }

    /// The head file's (seq, hash), when it is there and readable.
    fn read_head(&self) -> Option<(u64, String)> {
        let text = std::fs::read_to_string(self.head_path()).ok()?;
        let mut parts = text.split_whitespace();
        let seq = parts.next()?.parse().ok()?;
        Some((seq, parts.next().unwrap_or("").to_string()))
    }

    /// Checks every line's hash and the chain; names the first bad line.
    pub fn verify(&self) -> Result<Verified, VerifyError> {
        self.verify_with(None)
    }

    /// [`AuditLog::verify`], and with `check` also every checkpoint's
    /// signature, and that every record of [`SIGNED_EVENTS`] is covered by
    /// a later valid checkpoint (the controller's log, which other accounts
    /// write too).
    pub fn verify_with(
        &self,
        check: Option<CheckpointVerifier<'_>>,
    ) -> Result<Verified, VerifyError> {
        self.verify_covered(check, Coverage::Events(SIGNED_EVENTS))
    }

    /// [`AuditLog::verify_with`] with the given rule for which records a
    /// checkpoint must cover ([`Coverage::Every`] for a log only the key
    /// holder writes, like an agent's).
    pub fn verify_covered(
        &self,
        check: Option<CheckpointVerifier<'_>>,
        coverage: Coverage,
    ) -> Result<Verified, VerifyError> {
        let path = self.path.display().to_string();
        let bad = |line: usize, message: String| VerifyError {
            path: path.clone(),
            line,
            message,
        };
        let file = File::open(&self.path).map_err(|e| bad(0, e.to_string()))?;
        let mut chain = ChainChecker::new(check, coverage);
        let mut hashes = Vec::new();
        let mut torn_tail_bytes = 0u64;
        let mut reader = BufReader::new(file);
        let mut line = Vec::new();
        for n in 1.. {
            line.clear();
            let got = reader
                .read_until(b'\n', &mut line)
                .map_err(|e| bad(n, e.to_string()))?;
            if got == 0 {
                break;
            }
            if line.last() != Some(&b'\n') {
                // The end of the file without a newline: a record whose
                // append never finished. Appends cut it off and record that.
                torn_tail_bytes = got as u64;
                break;
            }
            line.pop();
            let (_, _, hash) = chain.push(&line).map_err(|(n, m)| bad(n, m))?;
            hashes.push(hash);
        }
        let summary = chain.finish().map_err(|(n, m)| bad(n, m))?;
        let seq = summary.records;
        if let Ok(text) = std::fs::read_to_string(self.head_path()) {
            let mut parts = text.split_whitespace();
            let head_seq: u64 = parts.next().and_then(|s| s.parse().ok()).unwrap_or(0);
            let head_hash = parts.next().unwrap_or("");
            if head_seq > seq {
                return Err(bad(
                    usize::try_from(seq + 1).unwrap_or(usize::MAX),
                    format!(
                        "log ends at record {seq} but the head file records {head_seq}: lines were removed"
                    ),
                ));
            }
            if head_seq > 0 {
                let idx = usize::try_from(head_seq - 1).unwrap_or(usize::MAX);
                if hashes.get(idx).map(String::as_str) != Some(head_hash) {
                    return Err(bad(idx + 1, "record differs from the head file".into()));
                }
            }
        }
        Ok(Verified {
            torn_tail_bytes,
            ..summary
        })
    }

    /// Visits records from the newest backwards while `visit` returns true.
    /// Reads the file from its end in 64 KiB blocks, so looking at the last
    /// minutes of a large log costs what those minutes take. A missing log
    /// has no records; a line that is not a JSON object is an error.
    pub fn scan_back(
        &self,
        mut visit: impl FnMut(&Map<String, Value>) -> bool,
    ) -> Result<(), AuditError> {
        use std::os::unix::fs::FileExt;
        let file = match File::open(&self.path) {
            Ok(f) => f,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(()),
            Err(e) => return Err(self.err("open", e)),
        };
        let len = file.metadata().map_err(|e| self.err("stat", e))?.len();
        // An incomplete last line is a torn append, not a record (the next
        // append cuts it off): skip it.
        let mut skip_torn = false;
        if len > 0 {
            let mut last = [0u8; 1];
            file.read_exact_at(&mut last, len - 1)
                .map_err(|e| self.err("read", e))?;
            skip_torn = last[0] != b'\n';
        }
        let mut pos = len;
        // Bytes from `pos` on that are not visited yet: the end of a line
        // that starts before `pos`, then nothing (complete lines were visited).
        let mut pending: Vec<u8> = Vec::new();
        while pos > 0 {
            let step = 65_536.min(pos);
            pos -= step;
            let mut block = vec![0u8; usize::try_from(step).unwrap_or(65_536)];
            file.read_exact_at(&mut block, pos)
                .map_err(|e| self.err("read", e))?;
            block.extend_from_slice(&pending);
            pending = block;
            // Everything after the first newline is whole lines (or all of
            // it once the start of the file is reached).
            let whole_from = if pos == 0 {
                0
            } else {
                match pending.iter().position(|&b| b == b'\n') {
                    Some(i) => i + 1,
                    None => continue,
                }
            };
            for line in pending[whole_from..]
                .rsplit(|&b| b == b'\n')
                .filter(|l| !l.is_empty())
            {
                if std::mem::take(&mut skip_torn) {
                    continue;
                }
                let record: Map<String, Value> = serde_json::from_slice(line)
                    .map_err(|e| self.err("read", format!("not a JSON record: {e}")))?;
                if !visit(&record) {
                    return Ok(());
                }
            }
            pending.truncate(whole_from);
        }
        Ok(())
    }

    /// Appends one [`AuditEvent`].
    pub fn append_event(&self, event: AuditEvent) -> Result<Appended, AuditError> {
        self.append(event.into_record())
    }

    /// [`AuditLog::scan_back`] over typed events.
    pub fn scan_back_events(
        &self,
        mut visit: impl FnMut(&AuditEvent) -> bool,
    ) -> Result<(), AuditError> {
        self.scan_back(|r| visit(&AuditEvent::from_record(r)))
    }

    /// The last `n` records as typed events, oldest first.
    pub fn tail_events(&self, n: usize) -> Result<Vec<AuditEvent>, AuditError> {
        Ok(self.tail(n)?.iter().map(AuditEvent::from_record).collect())
    }

    /// The last `n` records, oldest first.
    pub fn tail(&self, n: usize) -> Result<Vec<Map<String, Value>>, AuditError> {
        let file = File::open(&self.path).map_err(|e| self.err("open", e))?;
        let mut ring = std::collections::VecDeque::with_capacity(n.min(1024));
        for line in BufReader::new(file).lines() {
            let line = line.map_err(|e| self.err("read", e))?;
            if let Ok(Value::Object(m)) = serde_json::from_str(&line) {
                if ring.len() == n {
                    ring.pop_front();
                }
                if n > 0 {
                    ring.push_back(m);
                }
            }
        }
        Ok(ring.into())
    }
}

impl Verified {
    /// The answer of `audit verify` for `file`: `status` `ok`, the count and
    /// head, and the torn tails that were repaired (or are pending), which
    /// are faults, not tampering.
    pub fn to_json(&self, file: &Path) -> Value {
        let mut m = Map::new();
        m.insert("status".into(), Value::from("ok"));
        m.insert("file".into(), Value::from(file.display().to_string()));
        m.insert("records".into(), Value::from(self.records));
        m.insert("head".into(), Value::from(self.head.clone()));
        m.insert(
            "repairs".into(),
            serde_json::to_value(&self.repairs).unwrap_or_default(),
        );
        m.insert("torn_tail_bytes".into(), Value::from(self.torn_tail_bytes));
        m.insert("checkpoints".into(), Value::from(self.checkpoints));
        m.insert(
            "last_checkpoint_seq".into(),
            Value::from(self.last_checkpoint_seq),
        );
        m.insert("unsigned_tail".into(), Value::from(self.unsigned_tail));
        m.insert(
            "signatures_checked".into(),
            Value::from(self.signatures_checked),
        );
        if !self.repairs.is_empty() || self.torn_tail_bytes > 0 {
            m.insert(
                "note".into(),
                Value::from(
                    "the chain is intact; incomplete last records (a crash or a full disk) \
                     were cut off and recorded as audit_repaired, or will be at the next append",
                ),
            );
        }
        Value::Object(m)
    }
}

/// With `check`, a checkpoint's signature verifies over the record.
fn check_checkpoint(
    record: &Map<String, Value>,
    check: Option<CheckpointVerifier<'_>>,
) -> Result<(), String> {
    let Some(check) = check else {
        return Ok(());
    };
    let key_id = record.get("sig_key").and_then(Value::as_str).unwrap_or("");
    let sig = record
        .get("sig")
        .and_then(Value::as_str)
        .and_then(hex_decode)
        .unwrap_or_default();
    let mut body = record.clone();
    body.remove("hash");
    body.remove("sig");
    if check(
        key_id,
        &checkpoint_message(&canonical(&Value::Object(body))),
        &sig,
    ) {
        Ok(())
    } else {
        Err(format!(
            "checkpoint signature does not verify with the log's checkpoint key (key_id {key_id:?})"
        ))
    }
}

/// Which records of a log a later signed checkpoint must cover when its
/// signatures are checked.
#[derive(Debug, Clone, Copy)]
pub enum Coverage {
    /// Only these events (the controller's log: approvers append records
    /// of their own, unsigned, and the key holder's next batch covers them).
    Events(&'static [&'static str]),
    /// Every record (an agent's log: its daemon is the only writer and
    /// signs every batch, so an unsigned record, anywhere, is forged).
    Every,
}

/// A record that passed [`ChainChecker::push`]: the record, its seq and hash.
pub type Checked = (Map<String, Value>, u64, String);

/// Checks a log line by line as it is read (a file, or an agent's log page
/// by page over `ReadAudit`): each record's hash, the chain, `seq`, and
/// with a verifier every checkpoint's signature and the [`Coverage`].
/// Errors are (line, message), the line 1-based.
pub struct ChainChecker<'a> {
    check: Option<CheckpointVerifier<'a>>,
    coverage: Coverage,
    prev: String,
    seq: u64,
    line: usize,
    checkpoints: u64,
    last_checkpoint: u64,
    repairs: Vec<Repair>,
    /// (line, seq, event) of the first record no checkpoint covers yet.
    uncovered: Option<(usize, u64, String)>,
}

impl<'a> ChainChecker<'a> {
    /// A checker for a log from its first record.
    pub fn new(check: Option<CheckpointVerifier<'a>>, coverage: Coverage) -> ChainChecker<'a> {
        ChainChecker {
            check,
            coverage,
            prev: GENESIS.to_string(),
            seq: 0,
            line: 0,
            checkpoints: 0,
            last_checkpoint: 0,
            repairs: Vec::new(),
            uncovered: None,
        }
    }

    /// The hash of the last record pushed (GENESIS before the first).
    pub fn head(&self) -> &str {
        &self.prev
    }

    /// Records pushed so far.
    pub fn records(&self) -> u64 {
        self.seq
    }

    /// Checkpoints seen so far.
    pub fn checkpoints(&self) -> u64 {
        self.checkpoints
    }

    /// Checks the next line (without its newline); returns the record, its
    /// seq and its hash. After an error the checker is not to be used.
    pub fn push(&mut self, line: &[u8]) -> Result<Checked, (usize, String)> {
        self.line += 1;
        let n = self.line;
        let (record, got_seq, hash) = check_line(line, &self.prev).map_err(|m| (n, m))?;
        if got_seq != self.seq + 1 {
            return Err((n, format!("seq {got_seq}, expected {}", self.seq + 1)));
        }
        let event = record.get("event").and_then(Value::as_str).unwrap_or("");
        if record.contains_key("sig") {
            let last = self.last_checkpoint;
            check_checkpoint(&record, self.check).map_err(|m| {
                (
                    n,
                    format!(
                        "{m}: this record or one after the checkpoint at seq {last} was \
                         rewritten, or the signature was forged"
                    ),
                )
            })?;
            self.checkpoints += 1;
            self.last_checkpoint = got_seq;
            self.uncovered = None;
        } else if self.check.is_some()
            && self.uncovered.is_none()
            && match self.coverage {
                Coverage::Every => true,
                Coverage::Events(events) => events.contains(&event),
            }
        {
            self.uncovered = Some((n, got_seq, event.to_string()));
        }
        if event == REPAIR_EVENT {
            self.repairs.push(Repair {
                line: n,
                seq: got_seq,
                removed_bytes: record
                    .get("removed_bytes")
                    .and_then(Value::as_u64)
                    .unwrap_or(0),
                removed_sha256: record
                    .get("removed_sha256")
                    .and_then(Value::as_str)
                    .unwrap_or("")
                    .to_string(),
            });
        }
        self.seq = got_seq;
        self.prev.clone_from(&hash);
        Ok((record, got_seq, hash))
    }

    /// The end of the log: refuses a record no checkpoint covers.
    pub fn finish(self) -> Result<Verified, (usize, String)> {
        if let Some((line, useq, event)) = self.uncovered {
            let why = match self.coverage {
                Coverage::Every => "its writer signs every record it writes",
                Coverage::Events(_) => "its writer always adds one",
            };
            return Err((
                line,
                format!(
                    "record {useq} ({event}) is not covered by a signed checkpoint: {why}, so \
                     another writer of the file added or rewrote it"
                ),
            ));
        }
        Ok(Verified {
            records: self.seq,
            head: self.prev,
            repairs: self.repairs,
            torn_tail_bytes: 0,
            checkpoints: self.checkpoints,
            last_checkpoint_seq: self.last_checkpoint,
            unsigned_tail: self.seq - self.last_checkpoint,
            signatures_checked: self.check.is_some(),
        })
    }
}

/// Checks one JSON line of a log against the previous record's hash (for
/// a log read from elsewhere, e.g. an agent's, page by page): returns the
/// record, its seq and its hash.
pub fn check_line(line: &[u8], prev: &str) -> Result<(Map<String, Value>, u64, String), String> {
    let record: Map<String, Value> =
        serde_json::from_slice(line).map_err(|e| format!("not a JSON object: {e}"))?;
    let (seq, hash) = check_record(&record, prev)?;
    Ok((record, seq, hash))
}

/// Lower-case hex.
pub fn hex_encode(bytes: &[u8]) -> String {
    use std::fmt::Write as _;
    bytes.iter().fold(String::new(), |mut s, b| {
        let _ = write!(s, "{b:02x}");
        s
    })
}

/// Hex to bytes; None for odd length or a non-hex digit.
pub fn hex_decode(text: &str) -> Option<Vec<u8>> {
    if !text.len().is_multiple_of(2) {
        return None;
    }
    (0..text.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(text.get(i..i + 2)?, 16).ok())
        .collect()
}

/// Checks one record's own hash and its link to `prev`; returns (seq, hash).
fn check_record(record: &Map<String, Value>, prev: &str) -> Result<(u64, String), String> {
    let hash = record
        .get("hash")
        .and_then(Value::as_str)
        .ok_or("missing hash")?;
    let got_prev = record
        .get("prev")
        .and_then(Value::as_str)
        .ok_or("missing prev")?;
    let seq = record
        .get("seq")
        .and_then(Value::as_u64)
        .ok_or("missing seq")?;
    let mut body = record.clone();
    body.remove("hash");
    let want = aiops_sys::sha256_hex(canonical(&Value::Object(body)).as_bytes());
    if want != hash {
        return Err("hash does not match the record's contents (edited)".into());
    }
    if got_prev != prev {
        return Err(
            "prev does not match the previous record's hash (deleted, inserted or reordered lines)"
                .into(),
        );
    }
    Ok((seq, hash.to_string()))
}

/// The `event` of the record that says a torn tail was cut off.
pub const REPAIR_EVENT: &str = "audit_repaired";

/// An incomplete last line: where the complete records end and what follows.
struct Torn {
    keep: u64,
    removed: Vec<u8>,
}

/// Finds bytes after the last newline (what a crash or a short write leaves).
fn torn_tail(file: &mut File) -> std::io::Result<Option<Torn>> {
    let len = file.seek(SeekFrom::End(0))?;
    if len == 0 {
        return Ok(None);
    }
    let mut last = [0u8; 1];
    file.seek(SeekFrom::Start(len - 1))?;
    file.read_exact(&mut last)?;
    if last[0] == b'\n' {
        return Ok(None);
    }
    let keep = line_start(file, len)?;
    let mut removed = vec![0u8; usize::try_from(len - keep).map_err(std::io::Error::other)?];
    file.seek(SeekFrom::Start(keep))?;
    file.read_exact(&mut removed)?;
    Ok(Some(Torn { keep, removed }))
}

/// Where the line holding byte `end - 1` starts: just after the last newline
/// before `end`, or 0. Reads backwards in 8 KiB steps.
fn line_start(file: &mut File, end: u64) -> std::io::Result<u64> {
    let mut chunk = vec![0u8; 8192];
    let mut end = end;
    while end > 0 {
        let step = 8192.min(end);
        let from = end - step;
        let buf = &mut chunk[..usize::try_from(step).unwrap_or(8192)];
        file.seek(SeekFrom::Start(from))?;
        file.read_exact(buf)?;
        if let Some(i) = buf.iter().rposition(|&b| b == b'\n') {
            return Ok(from + i as u64 + 1);
        }
        end = from;
    }
    Ok(0)
}

/// Reads the last line of the log (of its first `upto` bytes when given);
/// (0, GENESIS) for an empty file. Linear in the last line's length: it
/// scans backwards for the previous newline, then reads the line once.
fn last_record(file: &mut File, upto: Option<u64>) -> std::io::Result<(u64, String)> {
    let len = match upto {
        Some(n) => n,
        None => file.seek(SeekFrom::End(0))?,
    };
    if len == 0 {
        return Ok((0, GENESIS.to_string()));
    }
    let mut last = [0u8; 1];
    file.seek(SeekFrom::Start(len - 1))?;
    file.read_exact(&mut last)?;
    if last[0] != b'\n' {
        return Err(std::io::Error::other(
            "last line is incomplete; run `aiops audit verify`",
        ));
    }
    let start = line_start(file, len - 1)?;
    let mut line = vec![0u8; usize::try_from(len - 1 - start).map_err(std::io::Error::other)?];
    file.seek(SeekFrom::Start(start))?;
    file.read_exact(&mut line)?;
    let record: Map<String, Value> = serde_json::from_slice(&line).map_err(|e| {
        std::io::Error::other(format!(
            "last line is not a JSON record ({e}); run `aiops audit verify`"
        ))
    })?;
    let seq = record.get("seq").and_then(Value::as_u64);
    let hash = record.get("hash").and_then(Value::as_str);
    match (seq, hash) {
        (Some(seq), Some(hash)) => Ok((seq, hash.to_string())),
        _ => Err(std::io::Error::other(
            "last line has no seq/hash; run `aiops audit verify`",
        )),
    }
}

/// JSON with object keys sorted at every level, no insignificant white space.
pub fn canonical(value: &Value) -> String {
    fn sorted(v: &Value) -> Value {
        match v {
            Value::Object(m) => {
                let mut keys: Vec<&String> = m.keys().collect();
                keys.sort();
                let mut out = Map::new();
                for k in keys {
                    out.insert(k.clone(), sorted(&m[k]));
                }
                Value::Object(out)
            }
            Value::Array(a) => Value::Array(a.iter().map(sorted).collect()),
            other => other.clone(),
        }
    }
    // serde_json keeps insertion order only with `preserve_order`; sorting here
    // keeps the hash stable whatever features other crates turn on.
    serde_json::to_string(&sorted(value)).expect("JSON values serialize")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_event_round_trips_through_the_log() {
        let dir = tempfile::tempdir().unwrap();
        let log = AuditLog::new(dir.path().join("a.jsonl"));
        let mut e = AuditEvent::new("executed");
        e.target = Some("srv1".into());
        e.exit_code = Some(3);
        e.other.insert("stdout".into(), "x".into());
        log.append_event(e).unwrap();
        let back = log.tail_events(1).unwrap().pop().unwrap();
        assert_eq!(back.event, "executed");
        assert_eq!(back.seq, Some(1));
        assert_eq!(
            (back.target.as_deref(), back.exit_code),
            (Some("srv1"), Some(3))
        );
        assert_eq!(back.other["stdout"], "x");
        assert!(back.ts_ms().is_some());
        // A field of the wrong type stays in `other`, it does not fail the read.
        let mut odd = Map::new();
        odd.insert("event".into(), "x".into());
        odd.insert("exit_code".into(), "not a number".into());
        let e = AuditEvent::from_record(&odd);
        assert_eq!(e.exit_code, None);
        assert_eq!(e.other["exit_code"], "not a number");
    }

    use serde_json::json;

    fn rec(i: u64) -> Map<String, Value> {
        let Value::Object(m) = json!({"event": "executed", "n": i, "stdout": "a\nb"}) else {
            unreachable!()
        };
        m
    }

    fn log_with(n: u64) -> (tempfile::TempDir, AuditLog) {
        let dir = tempfile::tempdir().unwrap();
        let log = AuditLog::new(dir.path().join("audit.jsonl"));
        for i in 0..n {
            log.append(rec(i)).unwrap();
        }
        (dir, log)
    }

    #[test]
    fn chain_verifies_and_names_edited_line() {
        let (_d, log) = log_with(5);
        assert_eq!(log.verify().unwrap().records, 5);
        let text = std::fs::read_to_string(log.path()).unwrap();
        let edited = text.replacen("\"n\":2", "\"n\":9", 1);
        std::fs::write(log.path(), edited).unwrap();
        let e = log.verify().unwrap_err();
        assert_eq!(e.line, 3, "{e}");
    }

    #[test]
    fn deleted_reordered_and_truncated_lines_are_detected() {
        let (_d, log) = log_with(5);
        let text = std::fs::read_to_string(log.path()).unwrap();
        let lines: Vec<&str> = text.lines().collect();
        let write = |ls: &[&str]| std::fs::write(log.path(), ls.join("\n") + "\n").unwrap();
        write(&[lines[0], lines[2], lines[3], lines[4]]);
        assert_eq!(log.verify().unwrap_err().line, 2);
        write(&[lines[0], lines[2], lines[1], lines[3], lines[4]]);
        assert_eq!(log.verify().unwrap_err().line, 2);
        write(&lines[..4]);
        assert_eq!(log.verify().unwrap_err().line, 5);
    }

    #[test]
    fn concurrent_appends_keep_one_chain() {
        let (_d, log) = log_with(0);
        std::thread::scope(|s| {
            for t in 0..8 {
                let log = log.clone();
                s.spawn(move || {
                    for i in 0..25 {
                        log.append(rec(t * 100 + i)).unwrap();
                    }
                });
            }
        });
        assert_eq!(log.verify().unwrap().records, 200);
    }

    #[test]
    fn appends_after_a_huge_record_stay_fast_and_chained() {
        let (_d, log) = log_with(1);
        let mut big = rec(1);
        big.insert("stdout".into(), Value::from("x".repeat(20 << 20)));
        log.append(big).unwrap();
        // Before the fix each append re-copied the last line per 8 KiB step (quadratic).
        let t = std::time::Instant::now();
        for i in 0..3 {
            log.append(rec(i)).unwrap();
        }
        assert!(t.elapsed() < std::time::Duration::from_secs(30), "hung");
        assert_eq!(log.verify().unwrap().records, 5);
    }

    #[test]
    fn scan_back_visits_newest_first_across_blocks_and_stops() {
        let dir = tempfile::tempdir().unwrap();
        let log = AuditLog::new(dir.path().join("a.jsonl"));
        let mut seen = Vec::new();
        log.scan_back(|_| true).unwrap(); // missing log: nothing
        for i in 0..300u64 {
            let mut r = rec(i);
            // Lines of varied length, some longer than a 64 KiB block.
            r.insert(
                "pad".into(),
                Value::from("x".repeat(if i % 97 == 0 { 70_000 } else { i as usize * 13 })),
            );
            log.append(r).unwrap();
        }
        log.scan_back(|r| {
            seen.push(r["seq"].as_u64().unwrap());
            true
        })
        .unwrap();
        assert_eq!(seen, (1..=300).rev().collect::<Vec<_>>());
        let mut few = Vec::new();
        log.scan_back(|r| {
            few.push(r["seq"].as_u64().unwrap());
            few.len() < 5
        })
        .unwrap();
        assert_eq!(few, [300, 299, 298, 297, 296]);
    }

    #[test]
    fn a_torn_tail_is_cut_back_recorded_and_verified_as_a_repair() {
        let (_d, log) = log_with(3);
        let before = std::fs::read(log.path()).unwrap();
        // What a writer killed mid-append (or a short write) leaves.
        let torn = br#"{"event":"executed","n":99,"prev":"ab"#;
        let mut f = OpenOptions::new().append(true).open(log.path()).unwrap();
        f.write_all(torn).unwrap();
        drop(f);
        let v = log.verify().unwrap();
        assert_eq!((v.records, v.torn_tail_bytes), (3, torn.len() as u64));
        assert!(v.repairs.is_empty());
        let mut seen = Vec::new();
        log.scan_back(|r| {
            seen.push(r["seq"].as_u64().unwrap());
            true
        })
        .unwrap();
        assert_eq!(seen, [3, 2, 1], "the torn line is not a record");
        let got = log.append(rec(4)).unwrap();
        assert_eq!(got.seq, 5, "the repair record is seq 4, the caller's 5");
        let v = log.verify().unwrap();
        assert_eq!((v.records, v.torn_tail_bytes), (5, 0));
        assert_eq!(
            v.repairs,
            [Repair {
                line: 4,
                seq: 4,
                removed_bytes: torn.len() as u64,
                removed_sha256: aiops_sys::sha256_hex(torn),
            }]
        );
        // Every acknowledged record is still there, byte for byte.
        let after = std::fs::read(log.path()).unwrap();
        assert_eq!(&after[..before.len()], &before[..]);
    }

    #[test]
    fn a_cut_into_an_acknowledged_record_is_refused_not_repaired() {
        let (_d, log) = log_with(3);
        let len = std::fs::metadata(log.path()).unwrap().len();
        // Cut into record 3 (acknowledged: the head file says 3).
        OpenOptions::new()
            .write(true)
            .open(log.path())
            .unwrap()
            .set_len(len - 10)
            .unwrap();
        let e = log.append(rec(4)).unwrap_err().to_string();
        assert!(e.contains("records were removed"), "{e}");
        assert_eq!(log.verify().unwrap_err().line, 3);
        assert_eq!(std::fs::metadata(log.path()).unwrap().len(), len - 10);
    }

    #[test]
    fn a_complete_last_line_that_is_not_a_record_is_refused() {
        let (_d, log) = log_with(2);
        let mut f = OpenOptions::new().append(true).open(log.path()).unwrap();
        f.write_all(b"garbage\n").unwrap();
        drop(f);
        assert!(log.append(rec(3)).is_err());
        assert_eq!(log.verify().unwrap_err().line, 3);
    }

    /// A stand-in signature for the unit tests (the e2e tests use the
    /// controller's Ed25519 key): only a holder of `SECRET` can make it.
    const SECRET: &[u8] = b"controller-only";
    fn toy_sign(msg: &[u8]) -> Vec<u8> {
        aiops_sys::sha256_hex(&[SECRET, msg].concat()).into_bytes()
    }
    fn toy_check(key_id: &str, msg: &[u8], sig: &[u8]) -> bool {
        key_id == "k1" && toy_sign(msg) == sig
    }

    /// Rewrites the log the way a member of the log's group can: edit a
    /// record, then recompute every seq/prev/hash after it (and the head).
    fn rewrite_consistently(log: &AuditLog, edit: impl Fn(&mut Map<String, Value>) -> bool) {
        let text = std::fs::read_to_string(log.path()).unwrap();
        let mut prev = GENESIS.to_string();
        let mut out = String::new();
        let mut seq = 0;
        for line in text.lines() {
            let mut r: Map<String, Value> = serde_json::from_str(line).unwrap();
            if !edit(&mut r) {
                continue;
            }
            seq += 1;
            r.remove("hash");
            r.insert("seq".into(), seq.into());
            r.insert("prev".into(), prev.clone().into());
            prev = aiops_sys::sha256_hex(canonical(&Value::Object(r.clone())).as_bytes());
            r.insert("hash".into(), prev.clone().into());
            out.push_str(&canonical(&Value::Object(r)));
            out.push('\n');
        }
        std::fs::write(log.path(), out).unwrap();
        std::fs::write(log.head_path(), format!("{seq:020} {prev}\n")).unwrap();
    }

    fn signed_log() -> (tempfile::TempDir, AuditLog) {
        let dir = tempfile::tempdir().unwrap();
        let log = AuditLog::new(dir.path().join("audit.jsonl")).with_checkpoints("k1", toy_sign);
        for i in 0..3 {
            let mut r = rec(i);
            r.insert("event".into(), "requested".into());
            let got = log.append_many(vec![r, rec(i + 10)]).unwrap();
            assert_eq!(got.len(), 2);
        }
        (dir, log)
    }

    #[test]
    fn checkpoints_are_signed_and_verified() {
        let (_d, log) = signed_log();
        let v = log.verify_with(Some(&toy_check)).unwrap();
        assert_eq!((v.records, v.checkpoints, v.last_checkpoint_seq), (6, 3, 6));
        let text = std::fs::read_to_string(log.path()).unwrap();
        let signed: Vec<bool> = text.lines().map(|l| l.contains("\"sig\"")).collect();
        assert_eq!(
            signed,
            [false, true, false, true, false, true],
            "the last of each batch"
        );
        assert!(v.signatures_checked);
        // A writer without the key (an approver) appends: an unsigned tail, not an error.
        let mut approved = rec(99);
        approved.insert("event".into(), "approved".into());
        AuditLog::new(log.path()).append(approved).unwrap();
        let v = log.verify_with(Some(&toy_check)).unwrap();
        assert_eq!(v.unsigned_tail, 1);
    }

    #[test]
    fn a_consistent_rewrite_by_a_group_member_fails_the_checkpoint() {
        let (_d, log) = signed_log();
        rewrite_consistently(&log, |r| {
            if r.get("n") == Some(&Value::from(1)) {
                r.insert("stdout".into(), "forged".into());
            }
            true
        });
        // The chain alone (what `audit verify` checked before) still passes.
        assert!(log.verify().is_ok());
        let e = log.verify_with(Some(&toy_check)).unwrap_err();
        assert_eq!(e.line, 4, "{e}");
        assert!(e.message.contains("checkpoint signature"), "{e}");
    }

    #[test]
    fn dropping_checkpoints_or_adding_a_signed_only_event_is_detected() {
        let (_d, log) = signed_log();
        rewrite_consistently(&log, |r| {
            r.remove("sig");
            true
        });
        assert!(log.verify().is_ok());
        let e = log.verify_with(Some(&toy_check)).unwrap_err();
        assert_eq!(e.line, 1, "{e}");
        assert!(
            e.message.contains("not covered by a signed checkpoint"),
            "{e}"
        );

        let (_d, log) = signed_log();
        let mut forged = rec(7);
        forged.insert("event".into(), "executed".into());
        AuditLog::new(log.path()).append(forged).unwrap();
        let e = log.verify_with(Some(&toy_check)).unwrap_err();
        assert_eq!(e.line, 7, "{e}");
    }

    #[test]
    fn with_every_record_covered_an_unsigned_record_anywhere_is_refused() {
        // An agent's log: the daemon signs each of its appends.
        let dir = tempfile::tempdir().unwrap();
        let log = AuditLog::new(dir.path().join("audit.jsonl")).with_checkpoints("k1", toy_sign);
        for i in 0..4 {
            log.append(rec(i)).unwrap();
        }
        let v = log
            .verify_covered(Some(&toy_check), Coverage::Every)
            .unwrap();
        assert_eq!((v.records, v.checkpoints, v.unsigned_tail), (4, 4, 0));
        // Another writer appends a record of an event the controller's rule
        // would let through: with every record covered, it is refused.
        let mut other = rec(9);
        other.insert("event".into(), "refused".into());
        AuditLog::new(log.path()).append(other).unwrap();
        assert!(log.verify_with(Some(&toy_check)).is_ok());
        let e = log
            .verify_covered(Some(&toy_check), Coverage::Every)
            .unwrap_err();
        assert_eq!(e.line, 5, "{e}");
        assert!(e.message.contains("signs every record"), "{e}");
        // Without a key nothing is refused for coverage (the chain is checked).
        assert!(log.verify_covered(None, Coverage::Every).is_ok());
    }

    #[test]
    fn the_chain_checker_reads_a_log_line_by_line_like_verify() {
        let (_d, log) = signed_log();
        let text = std::fs::read_to_string(log.path()).unwrap();
        let mut c = ChainChecker::new(Some(&toy_check), Coverage::Every);
        for l in text.lines() {
            c.push(l.as_bytes()).unwrap();
        }
        // The signed log's first record of each batch is unsigned but covered.
        let v = c.finish().unwrap();
        assert_eq!(v, log.verify_with(Some(&toy_check)).unwrap());
        let mut c = ChainChecker::new(Some(&toy_check), Coverage::Every);
        let lines: Vec<&str> = text.lines().collect();
        c.push(lines[0].as_bytes()).unwrap();
        assert_eq!(
            c.push(lines[2].as_bytes()).unwrap_err().0,
            2,
            "a skipped record"
        );
    }

    #[test]
    fn hex_round_trips_and_rejects_junk() {
        assert_eq!(
            hex_decode(&hex_encode(&[0, 1, 254, 255])).unwrap(),
            [0, 1, 254, 255]
        );
        assert!(hex_decode("abc").is_none());
        assert!(hex_decode("zz").is_none());
        assert!(hex_decode("é0").is_none());
    }

    #[test]
    fn unwritable_log_fails() {
        let (_d, log) = log_with(1);
        let bad = AuditLog::new(log.path().join("not-a-dir/x"));
        assert!(bad.append(rec(1)).is_err());
    }
}
