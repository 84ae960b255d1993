//! Fan-out dispatch, run by the controller account (`aiopsexec`, which holds
//! the controller's TLS and signing keys): signs one decided command for
//! each target, audits it, sends it to every agent with bounded concurrency
//! and collects one answer per target.

use std::sync::Arc;
use std::time::Duration;

use aiops_audit::AuditLog;
use aiops_certs::signing::SigningKey;
use aiops_policy::Decision;
use aiops_proto::agent::v1 as pb;
use aiops_types::{ErrorCode, Status};
use serde_json::{Map, Value, json};

use super::client::{self, ClientError, Collected};
use super::inflight;
use super::saved::{SavedOutput, outputs_dir};
use crate::config::Loaded;

/// Attempts at writing an outcome record before answering `audit_failed`.
const OUTCOME_ATTEMPTS: u32 = 3;
use crate::contract::{Answer, Failure, RunInput, Summary, exit, fail, object};

/// Everything `run` needs that is loaded lazily, only when a command is sent.
pub struct Sender {
    tls: Arc<rustls::ClientConfig>,
    key: Arc<SigningKey>,
}

impl Sender {
    /// Loads the controller certificate, key and signing key.
    pub fn load(loaded: &Loaded) -> Result<Sender, Failure> {
        let pki = loaded.pki();
        let tls = aiops_certs::tls::client_config(
            &pki.ca_cert(),
            &pki.controller_cert(),
            &pki.controller_key(),
        )
        .map_err(|e| fail(ErrorCode::Config, e.to_string()))?;
        let key_text = std::fs::read_to_string(pki.signing_key()).map_err(|e| {
            fail(
                ErrorCode::Config,
                format!("{}: {e}", pki.signing_key().display()),
            )
        })?;
        let key = SigningKey::from_pem(&key_text).map_err(|e| {
            fail(
                ErrorCode::Config,
                format!("{}: {e}", pki.signing_key().display()),
            )
        })?;
        Ok(Sender {
            tls: Arc::new(tls),
            key: Arc::new(key),
        })
    }

    /// `log`, ending every batch with a checkpoint signed by the
    /// controller's signing key (which only this account can read).
    pub fn signed_log(&self, log: &AuditLog) -> AuditLog {
        let key = self.key.clone();
        log.clone()
            .with_checkpoints(key.verifying_key().key_id(), move |m| key.sign(m))
    }

    /// The client TLS configuration.
    pub fn tls(&self) -> Arc<rustls::ClientConfig> {
        self.tls.clone()
    }
}

/// Turns per-target results into the printed answer: the single answer for a
/// single named target, else a fan-out answer with `results` and `summary`.
pub fn finish(
    req: &RunInput,
    names: &[String],
    fanout: bool,
    decision: &Decision,
    approval_id: Option<&str>,
    mut results: Vec<Answer>,
) -> (Answer, u8) {
    // Nothing ran because of our own set-up (config, keys, audit): exit 2, not 1.
    let setup_failure = |a: &Answer| {
        a.error
            .as_ref()
            .is_some_and(|e| e.code.exit() == aiops_types::Exit::Setup)
    };
    if !fanout && results.len() == 1 {
        let a = results.pop().expect("one result");
        let code = a.exit();
        return (a, code);
    }
    let mut summary = Summary {
        total: names.len(),
        ..Summary::default()
    };
    for r in &results {
        match r.status {
            Status::Executed if r.exit_code == Some(0) && r.timed_out != Some(true) => {
                summary.executed += 1;
                summary.succeeded += 1;
            }
            Status::Executed => {
                summary.executed += 1;
                summary.failed += 1;
            }
            Status::Skipped => summary.skipped += 1,
            Status::Error
            | Status::ApprovalRequested
            | Status::Denied
            | Status::Forbidden
            | Status::Rejected
            | Status::Partial
            | Status::Failed => summary.errors += 1,
        }
    }
    let status = match (summary.executed, summary.executed == summary.total) {
        (_, true) => Status::Executed,
        (0, false) => Status::Failed,
        _ => Status::Partial,
    };
    let code = match (summary.executed, results.iter().any(setup_failure)) {
        (0, true) => exit::SETUP,
        (0, false) => exit::FAILED,
        _ => exit::HANDLED,
    };
    (
        Answer {
            status,
            risk: Some(decision.risk),
            target: Some(req.target_spec()),
            command: Some(req.command.clone()),
            approval_id: approval_id.map(str::to_string),
            targets: Some(names.to_vec()),
            results: Some(results),
            summary: Some(summary),
            ..Answer::default()
        },
        code,
    )
}

/// Fan-out limits.
#[derive(Debug, Clone, Copy)]
struct Limits {
    concurrency: usize,
    max_errors: Option<usize>,
    canary: bool,
}

/// A target's request, signed and ready to send.
struct Prepared {
    name: String,
    request_id: String,
    /// Signed once the write-ahead record (whose head it carries) is written.
    request: pb::CommandRequest,
    approval: Vec<u8>,
    signed: pb::SignedCommand,
    base: Map<String, Value>,
    /// `save_output`: the target's output files, created before anything is sent.
    saved: Option<SavedOutput>,
    /// The connection opened while the write-ahead record was being
    /// written (see [`preconnect`]); `None`: [`send_one`] connects.
    channel: Option<Preconnect>,
}

/// A connection being opened in the background: TCP + TLS + HTTP/2
/// handshakes only. No request goes over it before it is handed to
/// [`send_one`], which happens only once the write-ahead record is durable.
type Preconnect = tokio::task::JoinHandle<Result<tonic::transport::Channel, ClientError>>;

impl Prepared {
    /// `save_output`: deletes the (empty) files of a request that did not run.
    fn drop_files(&mut self) {
        if let Some(s) = self.saved.take() {
            s.remove();
            self.base.remove("stdout_file");
            self.base.remove("stderr_file");
        }
    }
}

/// Signs, sends and audits one decided command on each target; used for
/// auto-allowed and approved commands. Returns one answer per target, in
/// order: `executed`, `error` (with `error`), or `skipped`. Every target gets
/// its own audit records: `requested` before anything is sent (one fsync for
/// the set), then its outcome (one fsync for the set) before the answer.
pub async fn execute_targets(
    loaded: &Loaded,
    log: &AuditLog,
    req: &RunInput,
    names: &[String],
    decision: &Decision,
    wire_decision: pb::Decision,
    approval: Option<(
        &str,
        &std::collections::BTreeMap<String, pb::SignedApproval>,
    )>,
) -> Vec<Answer> {
    let approval_id = approval.map(|(id, _)| id);
    let common = {
        let mut m = object(json!({
            "command": req.command,
            "requester": req.requester,
            "reason": req.reason,
            "risk": decision.risk.as_str(),
        }));
        if let Some(id) = approval_id {
            m.insert("approval_id".into(), id.into());
        }
        if names.len() > 1 || req.targets.is_some() {
            m.insert("fanout".into(), req.target_spec().into());
        }
        m
    };
    let error_all = |f: Failure| -> Vec<Answer> {
        let records: Vec<Map<String, Value>> = names
            .iter()
            .map(|n| error_record(&common, n, None, &f.answer))
            .collect();
        let answer = match log.append_many(records) {
            Ok(_) => *f.answer,
            Err(e) => Answer::error(
                ErrorCode::AuditFailed,
                format!("{e}; nothing was run (fail closed)"),
            ),
        };
        for_each_target(&answer, names)
    };
    let sender = match Sender::load(loaded) {
        Ok(s) => s,
        Err(f) => return error_all(f),
    };
    let log = &sender.signed_log(log);
    let defaults = &loaded.config.defaults;
    let now = aiops_sys::now_ms();
    let output_cap_bytes = if req.save_output {
        defaults.saved_output_cap_bytes
    } else {
        defaults.output_cap_bytes
    };
    let outputs = if req.save_output {
        match outputs_dir(&loaded.config.runtime_dir) {
            Ok(d) => Some(d),
            Err(f) => return error_all(f),
        }
    } else {
        None
    };
    let mut prepared: Vec<Prepared> = Vec::with_capacity(names.len());
    for name in names {
        let request_id = uuid::Uuid::new_v4().to_string();
        let request = pb::CommandRequest {
            request_id: request_id.clone(),
            target: name.clone(),
            command: req.command.clone(),
            plan: Some(aiops_proto::plan::to_proto(&decision.plan)),
            decision: wire_decision as i32,
            requester: req.requester.clone(),
            reason: req.reason.clone(),
            issued_at_ms: now,
            expires_at_ms: now + i64::from(defaults.request_ttl_secs) * 1000,
            timeout_ms: defaults.timeout_secs.saturating_mul(1000),
            output_cap_bytes,
            policy_digest: loaded.policy.digest().to_string(),
            approval_id: approval_id.unwrap_or_default().to_string(),
            controller_seq: 0,
            controller_hash: String::new(),
        };
        let mut grant = Vec::new();
        if let Some((_, grants)) = approval {
            match grants.get(name) {
                Some(g) => grant = prost::Message::encode_to_vec(g),
                None => {
                    return error_all(fail(
                        ErrorCode::ApprovalInvalid,
                        format!("no grant for target {name}"),
                    ));
                }
            }
        }
        let mut base = common.clone();
        base.insert("target".into(), name.clone().into());
        base.insert("request_id".into(), request_id.clone().into());
        // The files exist before anything is sent: if one cannot be created, nothing runs.
        let saved = match &outputs {
            Some(dir) => {
                match SavedOutput::create(dir, &request_id, name, defaults.output_cap_bytes) {
                    Ok(s) => {
                        base.insert("stdout_file".into(), s.stdout.path_text().into());
                        base.insert("stderr_file".into(), s.stderr.path_text().into());
                        Some(s)
                    }
                    Err(f) => {
                        prepared.iter_mut().for_each(Prepared::drop_files);
                        return error_all(f);
                    }
                }
            }
            None => None,
        };
        prepared.push(Prepared {
            name: name.clone(),
            request_id,
            request,
            approval: grant,
            signed: pb::SignedCommand::default(),
            base,
            saved,
            channel: None,
        });
    }
    let sent: Vec<Map<String, Value>> = prepared
        .iter()
        .map(|p| {
            let mut r = p.base.clone();
            r.insert("event".into(), "requested".into());
            r.insert("policy_digest".into(), loaded.policy.digest().into());
            r
        })
        .collect();
    // What a controller killed on the spot left open gets its outcome now;
    // then this dispatch's own marker, held (locked) until its outcomes are in.
    inflight::sweep(&loaded.config.runtime_dir, log, |b| {
        outcome_record(
            b,
            &Answer::error(
                ErrorCode::InternalError,
                "the controller process ended while this request was in flight (killed, or \
                 its outcome could not be written); it may have run, its outcome is unknown \
                 here (see the agent's log)",
            ),
        )
    });
    let bases: Vec<Map<String, Value>> = prepared.iter().map(|p| p.base.clone()).collect();
    let marker = match inflight::Marker::create(&loaded.config.runtime_dir, &bases) {
        Ok(m) => m,
        Err(e) => {
            prepared.iter_mut().for_each(Prepared::drop_files);
            return error_all(fail(
                ErrorCode::Runtime,
                format!(
                    "{}: {e}; nothing was sent",
                    loaded.config.runtime_dir.join("inflight").display()
                ),
            ));
        }
    };
    let limits = Limits {
        concurrency: req
            .max_concurrency
            .unwrap_or(defaults.max_concurrency)
            .max(1),
        max_errors: req.max_errors,
        canary: req.canary.unwrap_or(false) && prepared.len() > 1,
    };
    // The first targets' connections (as many as start at once: the
    // concurrency limit, or the canary alone) open while the record is
    // written and synced: the handshakes overlap the fsync. No request can
    // go over them yet: it is signed only below, once the record it names
    // is durable.
    let first = if limits.canary { 1 } else { limits.concurrency };
    for p in prepared.iter_mut().take(first) {
        p.channel = preconnect(loaded, &sender, &p.name);
    }
    // Write-ahead: the record that authorises sending is on disk (fsync'd)
    // before any byte of a request goes to an agent; if it is not, nothing
    // is sent. Written off the runtime thread, which meanwhile drives the
    // handshakes.
    // A one-shot `aiops run`: from before the write-ahead record on, a stop
    // signal ends the wait so that the outcome is still recorded.
    let mut stops = StopSignals::register();
    let heads = {
        let log = log.clone();
        match tokio::task::spawn_blocking(move || log.append_many(sent)).await {
            Ok(r) => r,
            Err(e) => std::panic::resume_unwind(e.into_panic()),
        }
    };
    if let Ok(heads) = &heads {
        // Each request carries the head of its own `requested` record,
        // inside the signed bytes; the agent records it.
        for (p, head) in prepared.iter_mut().zip(heads) {
            p.request.controller_seq = head.seq;
            p.request.controller_hash = head.hash.clone();
            p.signed = client::sign(&p.request, &sender.key);
            p.signed.approval = std::mem::take(&mut p.approval);
        }
    }
    if let Err(e) = heads {
        marker.done();
        prepared.iter_mut().for_each(Prepared::drop_files);
        // The opened connections close unused. Each handshake is let finish
        // (it is bounded by the connect timeout), so the agent sees a clean
        // close without a request, not a broken handshake it would record.
        for p in &mut prepared {
            if let Some(c) = p.channel.take() {
                drop(c.await);
            }
        }
        let a = Answer::error(
            ErrorCode::AuditFailed,
            format!("{e}; nothing was sent (fail closed)"),
        );
        return prepared
            .iter()
            .map(|p| Answer {
                target: Some(p.name.clone()),
                request_id: Some(p.request_id.clone()),
                ..a.clone()
            })
            .collect();
    }
    // From here every `requested` gets exactly one outcome, even if this
    // task panics: the guard writes one for whatever is still open.
    let mut open = OpenOutcomes {
        log,
        bases,
        marker: Some(marker),
    };

    let outcomes = match stops.as_mut() {
        None => send_all(loaded, &sender, prepared, decision, approval_id, limits).await,
        Some(stop) => tokio::select! {
            o = send_all(loaded, &sender, prepared, decision, approval_id, limits) => o,
            name = stop.recv() => return stopped(log, &mut open, name),
        },
    };
    let mut records = Vec::with_capacity(outcomes.len());
    let mut answers = Vec::with_capacity(outcomes.len());
    for (base, answer) in outcomes {
        records.push(outcome_record(base, &answer));
        answers.push(answer);
    }
    let mut written = log.append_many(records.clone());
    for attempt in 1..OUTCOME_ATTEMPTS {
        if written.is_ok() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(200 * u64::from(attempt))).await;
        written = log.append_many(records.clone());
    }
    // Written or not, the guard has nothing more to record; the marker goes
    // only if the outcomes are in (else the next dispatch records them).
    open.bases.clear();
    if written.is_ok()
        && let Some(m) = open.marker.take()
    {
        m.done();
    }
    if let Err(e) = written {
        // The commands ran (the agents audited them) but the controller cannot
        // record the outcome: say so rather than print an unaudited answer.
        let a = Answer::error(
            ErrorCode::AuditFailed,
            format!(
                "{e}; the command was sent but its outcome could not be audited here \
                 after {OUTCOME_ATTEMPTS} attempts (the agent's own log has it)"
            ),
        );
        return answers
            .iter()
            .map(|r| Answer {
                target: r.target.clone(),
                request_id: r.request_id.clone(),
                ..a.clone()
            })
            .collect();
    }
    answers
}

/// Set by the one-shot commands (`aiops run`, `aiops approvals`): a
/// SIGTERM, SIGINT or SIGHUP while requests are in flight is caught so that
/// their outcome is recorded. Not for long-running servers (`aiops mcp`),
/// which must keep the default action of those signals.
pub static OUTCOME_ON_SIGNAL: std::sync::atomic::AtomicBool =
    std::sync::atomic::AtomicBool::new(false);

struct StopSignals(Vec<(tokio::signal::unix::Signal, &'static str)>);

impl StopSignals {
    fn register() -> Option<StopSignals> {
        use tokio::signal::unix::{SignalKind, signal};
        if !OUTCOME_ON_SIGNAL.load(std::sync::atomic::Ordering::SeqCst) {
            return None;
        }
        let mut all = Vec::new();
        for (kind, name) in [
            (SignalKind::terminate(), "SIGTERM"),
            (SignalKind::interrupt(), "SIGINT"),
            (SignalKind::hangup(), "SIGHUP"),
        ] {
            all.push((signal(kind).ok()?, name));
        }
        Some(StopSignals(all))
    }

    async fn recv(&mut self) -> &'static str {
        let waits = self.0.iter_mut().map(|(s, name)| {
            Box::pin(async move {
                s.recv().await;
                *name
            })
        });
        futures_util::future::select_all(waits).await.0
    }
}

/// A stop signal arrived while requests were in flight: each open
/// `requested` record gets its outcome (unknown: it may have run).
fn stopped(log: &AuditLog, open: &mut OpenOutcomes<'_>, signal: &str) -> Vec<Answer> {
    let a = Answer::error(
        ErrorCode::InternalError,
        format!(
            "aiops was stopped by {signal} while this request was in flight; it may have run, \
             its outcome is unknown here (see the agent's log)"
        ),
    );
    let bases = std::mem::take(&mut open.bases);
    let text =
        |b: &Map<String, Value>, k: &str| b.get(k).and_then(Value::as_str).map(str::to_string);
    let answers: Vec<Answer> = bases
        .iter()
        .map(|b| Answer {
            target: text(b, "target"),
            request_id: text(b, "request_id"),
            ..a.clone()
        })
        .collect();
    let records = bases.into_iter().map(|b| outcome_record(b, &a)).collect();
    match log.append_many(records) {
        Ok(_) => {
            if let Some(m) = open.marker.take() {
                m.done();
            }
            answers
        }
        Err(e) => {
            let f = Answer::error(
                ErrorCode::AuditFailed,
                format!("{e}; stopped by {signal}: the outcome could not be audited here"),
            );
            answers
                .iter()
                .map(|r| Answer {
                    target: r.target.clone(),
                    request_id: r.request_id.clone(),
                    ..f.clone()
                })
                .collect()
        }
    }
}

/// `requested` records whose outcome is not written yet. Dropped while
/// still holding some (a panic unwinding through the fan-out), it writes an
/// `error` outcome for each, so no `requested` record is left open.
struct OpenOutcomes<'a> {
    log: &'a AuditLog,
    bases: Vec<Map<String, Value>>,
    /// Removed once the outcomes are written ([`inflight`]).
    marker: Option<inflight::Marker>,
}

impl Drop for OpenOutcomes<'_> {
    fn drop(&mut self) {
        if self.bases.is_empty() {
            return;
        }
        let a = Answer::error(
            ErrorCode::InternalError,
            "the controller failed while this request was in flight; it may have run, \
             its outcome is unknown here (see the agent's log)",
        );
        let records = std::mem::take(&mut self.bases)
            .into_iter()
            .map(|b| outcome_record(b, &a))
            .collect();
        match self.log.append_many(records) {
            Ok(_) => {
                if let Some(m) = self.marker.take() {
                    m.done();
                }
            }
            Err(e) => eprintln!("aiops: could not audit the outcome of open requests: {e}"),
        }
    }
}

/// Test hook: `AIOPS_TEST_FAULT=NAME` makes the named fault happen (only
/// ever a panic), to show that no `requested` record is left without an
/// outcome. Debug builds only: a release binary ignores the variable.
fn fault(name: &str) -> bool {
    cfg!(debug_assertions) && std::env::var_os("AIOPS_TEST_FAULT").is_some_and(|v| v == name)
}

/// The same answer for every target (nothing was sent to any of them).
fn for_each_target(a: &Answer, names: &[String]) -> Vec<Answer> {
    names
        .iter()
        .map(|n| Answer {
            target: Some(n.clone()),
            ..a.clone()
        })
        .collect()
}

fn error_record(
    common: &Map<String, Value>,
    target: &str,
    request_id: Option<&str>,
    a: &Answer,
) -> Map<String, Value> {
    let mut r = common.clone();
    r.insert("target".into(), target.into());
    if let Some(id) = request_id {
        r.insert("request_id".into(), id.into());
    }
    r.insert("event".into(), "error".into());
    r.insert("status".into(), "error".into());
    if let Some(e) = &a.error {
        r.insert("code".into(), e.code.as_str().into());
        r.insert("message".into(), e.message.clone().into());
    }
    r
}

fn outcome_record(mut rec: Map<String, Value>, a: &Answer) -> Map<String, Value> {
    match a.status {
        Status::Executed => {
            rec.insert("event".into(), "executed".into());
            rec.insert("status".into(), "executed".into());
            rec.insert("exit_code".into(), a.exit_code.into());
            rec.insert("timed_out".into(), a.timed_out.into());
            if let Some(which) = &a.limit_exceeded {
                rec.insert("limit_exceeded".into(), which.clone().into());
            }
            rec.insert("truncated".into(), a.truncated.into());
            rec.insert("duration_ms".into(), a.duration_ms.into());
            if a.stdout_file.is_some() {
                // save_output: the content is in the files, never in the audit log.
                rec.insert("stdout_dropped_bytes".into(), a.stdout_dropped_bytes.into());
                rec.insert("stderr_dropped_bytes".into(), a.stderr_dropped_bytes.into());
            } else {
                rec.insert("stdout".into(), a.stdout.clone().into());
                rec.insert("stderr".into(), a.stderr.clone().into());
            }
            if let Some([(so, sn), (se, en)]) = &a.output_digest {
                rec.insert("stdout_sha256".into(), so.clone().into());
                rec.insert("stdout_bytes".into(), (*sn).into());
                rec.insert("stderr_sha256".into(), se.clone().into());
                rec.insert("stderr_bytes".into(), (*en).into());
            }
            rec
        }
        Status::Skipped => {
            rec.insert("event".into(), "skipped".into());
            rec.insert("status".into(), "skipped".into());
            rec.insert("message".into(), a.message.clone().into());
            rec
        }
        Status::Error
        | Status::ApprovalRequested
        | Status::Denied
        | Status::Forbidden
        | Status::Rejected
        | Status::Partial
        | Status::Failed => {
            rec.insert("event".into(), "error".into());
            rec.insert("status".into(), "error".into());
            if let Some(e) = &a.error {
                rec.insert("code".into(), e.code.as_str().into());
                rec.insert("message".into(), e.message.clone().into());
            }
            rec
        }
    }
}

/// Sends every prepared request with bounded concurrency, `max_errors` and
/// the optional canary; returns (audit base, answer) per target, in order.
async fn send_all(
    loaded: &Loaded,
    sender: &Sender,
    prepared: Vec<Prepared>,
    decision: &Decision,
    approval_id: Option<&str>,
    limits: Limits,
) -> Vec<(Map<String, Value>, Answer)> {
    use std::io::IsTerminal;
    use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
    let total = prepared.len();
    let errors = AtomicUsize::new(0);
    let done = AtomicUsize::new(0);
    let stop = AtomicBool::new(false);
    let progress = total > 1 && std::io::stderr().is_terminal();
    let slots = tokio::sync::Semaphore::new(limits.concurrency);
    let one = |p: Prepared| {
        let (errors, done, stop, slots) = (&errors, &done, &stop, &slots);
        async move {
            let Ok(_slot) = slots.acquire().await else {
                unreachable!("the semaphore is never closed")
            };
            if stop.load(Ordering::SeqCst) {
                let mut p = p;
                p.drop_files();
                if let Some(c) = p.channel.take() {
                    c.abort();
                }
                let a = Answer {
                    status: Status::Skipped,
                    target: Some(p.name.clone()),
                    command: None,
                    request_id: Some(p.request_id.clone()),
                    message: Some("not attempted: max_errors reached or the canary failed".into()),
                    ..Answer::default()
                };
                return (p.base, a);
            }
            let mut p = p;
            let a = send_one(loaded, sender, &mut p, decision, approval_id).await;
            if fault("panic_in_fanout") && done.load(Ordering::SeqCst) > 0 {
                panic!("AIOPS_TEST_FAULT=panic_in_fanout");
            }
            let failed =
                a.status != Status::Executed || a.exit_code != Some(0) || a.timed_out == Some(true);
            if failed {
                let n = errors.fetch_add(1, Ordering::SeqCst) + 1;
                if limits.max_errors.is_some_and(|max| n > max) {
                    stop.store(true, Ordering::SeqCst);
                }
            }
            let d = done.fetch_add(1, Ordering::SeqCst) + 1;
            if progress {
                eprint!(
                    "\raiops: {d}/{total} done, {} failed   ",
                    errors.load(Ordering::SeqCst)
                );
            }
            (p.base, a)
        }
    };
    let mut queue = prepared.into_iter();
    let mut out = Vec::with_capacity(total);
    if limits.canary
        && let Some(first) = queue.next()
    {
        let (base, a) = one(first).await;
        if a.status != Status::Executed || a.exit_code != Some(0) {
            stop.store(true, Ordering::SeqCst);
        }
        out.push((base, a));
    }
    out.extend(futures_util::future::join_all(queue.map(one)).await);
    if progress {
        eprintln!();
    }
    out
}

async fn send_one(
    loaded: &Loaded,
    sender: &Sender,
    p: &mut Prepared,
    decision: &Decision,
    approval_id: Option<&str>,
) -> Answer {
    let defaults = &loaded.config.defaults;
    let Some(target) = loaded.config.targets.get(&p.name) else {
        p.drop_files();
        return Answer::error(
            ErrorCode::UnknownTarget,
            format!("no target named {:?}", p.name),
        );
    };
    let server_name = target.server_name.as_deref().unwrap_or(&p.name);
    let connect_timeout = Duration::from_millis(defaults.connect_timeout_ms);
    let deadline = Duration::from_secs(u64::from(defaults.timeout_secs) + 15);
    let mut collected = Collected::default();
    let connected = match p.channel.take() {
        Some(pre) => pre.await.unwrap_or_else(|e| {
            Err(ClientError::Unreachable {
                address: target.address.clone(),
                message: format!("connecting failed: {e}"),
            })
        }),
        None => client::connect(&target.address, server_name, sender.tls(), connect_timeout).await,
    };
    let result = match connected {
        Ok(channel) => {
            let mut sink = match p.saved.as_mut() {
                Some(s) => Sink::Save(s),
                None => Sink::Collect(&mut collected),
            };
            client::execute_into(channel, p.signed.clone(), deadline, &mut sink).await
        }
        Err(e) => Err(e),
    };
    // save_output: the answer names the files only once everything is in them.
    let result = match (result, p.saved.as_mut()) {
        (Ok(done), Some(s)) => s
            .finish()
            .await
            .map(|()| done)
            .map_err(|e| ClientError::Output(e.to_string())),
        (r, _) => r,
    };
    let finished = match result {
        Ok(f) => f,
        Err(e) => {
            let code = match &e {
                ClientError::Unreachable { .. } => ErrorCode::Unreachable,
                ClientError::Refused { .. } => ErrorCode::AgentRefused,
                ClientError::Incomplete(_) => ErrorCode::Incomplete,
                ClientError::Lost(_) => ErrorCode::AgentLost,
                ClientError::Output(_) => ErrorCode::OutputFile,
            };
            // An agent's words are redacted like its output: a refusal can
            // quote the command or a path with a secret in it.
            let mut message = match &e {
                ClientError::Refused { .. } | ClientError::Lost(_) => {
                    aiops_redact::redact(&e.to_string())
                }
                _ => e.to_string(),
            };
            if let Some(s) = &p.saved {
                match &e {
                    // The command may have run: keep what arrived.
                    ClientError::Incomplete(_) | ClientError::Lost(_) | ClientError::Output(_) => {
                        message.push_str(&format!(
                            "; the output received so far is in {} and {}",
                            s.stdout.path_text(),
                            s.stderr.path_text()
                        ));
                    }
                    ClientError::Refused { .. } if e.reason() == Some("limits") => {
                        message.push_str(&format!(
                            " (save_output asks for defaults.saved_output_cap_bytes = {}; \
                             the agent allows up to its max_output_cap_bytes)",
                            defaults.saved_output_cap_bytes
                        ));
                        p.drop_files();
                    }
                    _ => p.drop_files(),
                }
            }
            let mut a = Answer::error(code, message);
            a.target = Some(p.name.clone());
            a.request_id = Some(p.request_id.clone());
            return a;
        }
    };
    let (receipt_fields, receipt_error) = {
        let pin = super::receipt::pin_path(&loaded.pki().agent_cert(&p.name));
        let want = super::receipt::Expected {
            request_id: &p.request_id,
            target: &p.name,
            controller_seq: p.request.controller_seq,
            controller_hash: &p.request.controller_hash,
        };
        super::receipt::check(&pin, &want, &finished)
    };
    p.base.extend(receipt_fields);
    if let Some(problem) = &receipt_error {
        tracing::warn!(target = %p.name, request_id = %p.request_id, "agent receipt: {problem}");
    }
    collected.exit = finished.exit;
    let st = &collected.exit;
    let truncated = st.stdout_dropped > 0 || st.stderr_dropped > 0;
    let digest = |t: &str| (aiops_sys::sha256_hex(t.as_bytes()), t.len() as u64);
    let (stdout, stderr, output_digest, files) = match &p.saved {
        Some(s) => {
            let d = [s.stdout.digest(), s.stderr.digest()];
            (
                s.stdout.excerpt(st.stdout_dropped),
                s.stderr.excerpt(st.stderr_dropped),
                d,
                Some((s.stdout.path_text(), s.stderr.path_text())),
            )
        }
        None => {
            let (o, e) = (collected.stdout_text(), collected.stderr_text());
            let d = [digest(&o), digest(&e)];
            (o, e, d, None)
        }
    };
    // Secrets never reach the assistant: redact what it is shown, like the audit.
    Answer {
        status: Status::Executed,
        risk: Some(decision.risk),
        target: Some(p.name.clone()),
        command: Some(
            p.base
                .get("command")
                .and_then(Value::as_str)
                .unwrap_or_default()
                .to_string(),
        ),
        exit_code: Some(st.exit_code),
        stdout: Some(aiops_redact::redact(&stdout)),
        stderr: Some(aiops_redact::redact(&stderr)),
        saved_digest: files.is_some().then(|| output_digest.clone()),
        output_digest: Some(output_digest),
        stdout_file: files.as_ref().map(|f| f.0.clone()),
        stderr_file: files.map(|f| f.1),
        truncated: Some(truncated),
        stdout_dropped_bytes: truncated.then_some(st.stdout_dropped),
        stderr_dropped_bytes: truncated.then_some(st.stderr_dropped),
        timed_out: Some(st.timed_out),
        signal: (st.signal != 0).then_some(st.signal),
        limit_exceeded: limit_name(&st.limit_exceeded),
        duration_ms: Some(st.duration_ms),
        request_id: Some(p.request_id.clone()),
        approval_id: approval_id.map(str::to_string),
        receipt_error,
        ..Answer::default()
    }
}

/// Starts connecting to `name` in the background (see [`Preconnect`]);
/// `None` for a name that is not a target (its answer says so).
fn preconnect(loaded: &Loaded, sender: &Sender, name: &str) -> Option<Preconnect> {
    let target = loaded.config.targets.get(name)?;
    let address = target.address.clone();
    let server_name = target
        .server_name
        .clone()
        .unwrap_or_else(|| name.to_string());
    let tls = sender.tls();
    let timeout = Duration::from_millis(loaded.config.defaults.connect_timeout_ms);
    Some(tokio::spawn(async move {
        client::connect(&address, &server_name, tls, timeout).await
    }))
}

/// The limit an agent says ended the command: a short lowercase word, or
/// `invalid` for anything else (the agent's text is never shown as is).
fn limit_name(which: &str) -> Option<String> {
    match which {
        "" => None,
        w if w.len() <= 32 && w.bytes().all(|b| b.is_ascii_lowercase() || b == b'_') => {
            Some(w.to_string())
        }
        _ => Some("invalid".into()),
    }
}

/// Where one target's output goes: memory, or its `save_output` files.
enum Sink<'a> {
    Collect(&'a mut Collected),
    Save(&'a mut SavedOutput),
}

impl client::OutputSink for Sink<'_> {
    async fn output(&mut self, stdout: bool, tail: bool, data: &[u8]) -> std::io::Result<()> {
        match self {
            Sink::Collect(c) => c.output(stdout, tail, data).await,
            Sink::Save(s) => s.output(stdout, tail, data).await,
        }
    }
}
