//! `aiops audit export` and `aiops-agent audit export`: ship every record of
//! a hash-chained audit log, in order, to SIEM and OpenTelemetry sinks,
//! continuously and at least once. One crate for both sides: the controller's
//! log and each agent's have the same chain format.
//!
//! Each sink has its own durable position (see [`position`]): a batch is
//! read after it, checked against the hash chain, redacted, handed to the
//! sink, and only when the sink has taken it is the position moved on and
//! fsync'd. A failing sink is retried with a growing pause (to
//! `retry_max_ms`) while the others go on; its backlog, lag and last error
//! are in `aiops audit export --status`. The audit log is only ever opened
//! for reading. Export runs in its own process (the systemd units
//! `aiops-audit-export.service` on the controller and
//! `aiops-agent-audit-export.service` on an agent), so `aiops run` and the
//! agent's requests never wait on a sink.
//!
//! Configuration: `export.yml` beside the controller config (or
//! `--export-config`; on an agent `/etc/aiops-agent-export/export.yml`):
//!
//! ```yaml
//! state_dir: /var/lib/aiops-export     # positions, one file per sink
//! # audit_log: /opt/aiops/audit.jsonl  # default: the controller config's
//! sinks:
//!   - type: syslog_tls                 # RFC 5424 over TLS, RFC 5425 framing
//!     name: siem
//!     address: siem.example:6514
//!     ca: /etc/aiops/export/siem-ca.pem
//!   - type: otlp_http                  # OTLP/HTTP protobuf
//!     name: otel
//!     endpoint: http://127.0.0.1:4318/v1/logs
//! ```

pub mod cli;
pub mod fields;
pub mod otlp;
pub mod position;
pub mod syslog;

use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::{Duration, Instant};

use serde::Deserialize;
use serde_json::{Map, Value, json};

use position::{LogReader, ReadError, SinkState};

/// Whole-process configuration (`export.yml`).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ExportConfig {
    /// The audit log to export [default: the controller config's `audit_log`].
    #[serde(default)]
    pub audit_log: Option<PathBuf>,
    /// Where positions are kept (created 0700).
    pub state_dir: PathBuf,
    /// `service.name` / syslog APP-NAME of the records' source [default:
    /// `aiops-controller` under `aiops`, `aiops-agent` under `aiops-agent`].
    #[serde(default)]
    pub service_name: String,
    /// `host.name` / syslog HOSTNAME [default: this host's name].
    #[serde(default)]
    pub host_name: Option<String>,
    /// How often a caught-up exporter looks for new records.
    #[serde(default = "d_poll")]
    pub poll_ms: u64,
    /// Most records per batch.
    #[serde(default = "d_batch")]
    pub batch_max: usize,
    /// Longest pause between attempts on a failing sink.
    #[serde(default = "d_retry")]
    pub retry_max_ms: u64,
    /// Where records go.
    pub sinks: Vec<SinkConfig>,
}

fn d_poll() -> u64 {
    200
}
fn d_batch() -> usize {
    500
}
fn d_retry() -> u64 {
    5000
}

/// One sink.
#[derive(Debug, Clone, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum SinkConfig {
    /// Syslog RFC 5424 over TLS with RFC 5425 octet-counting framing.
    SyslogTls(syslog::SyslogConfig),
    /// OTLP logs over HTTP (protobuf).
    OtlpHttp(otlp::OtlpConfig),
    /// OTLP logs over gRPC.
    OtlpGrpc(otlp::OtlpConfig),
}

impl SinkConfig {
    /// The sink's name (its state file's name).
    pub fn name(&self) -> &str {
        match self {
            SinkConfig::SyslogTls(c) => &c.name,
            SinkConfig::OtlpHttp(c) | SinkConfig::OtlpGrpc(c) => &c.name,
        }
    }

    fn kind(&self) -> &'static str {
        match self {
            SinkConfig::SyslogTls(_) => "syslog_tls",
            SinkConfig::OtlpHttp(_) => "otlp_http",
            SinkConfig::OtlpGrpc(_) => "otlp_grpc",
        }
    }

    fn resolve(&mut self, base: &Path) {
        match self {
            SinkConfig::SyslogTls(c) => c.resolve(base),
            SinkConfig::OtlpHttp(c) | SinkConfig::OtlpGrpc(c) => c.resolve(base),
        }
    }
}

/// A path relative to the config file's directory.
pub(crate) fn rel(base: &Path, p: &mut PathBuf) {
    if p.is_relative() {
        *p = base.join(&*p);
    }
}

impl ExportConfig {
    /// Reads `path`; relative paths in it are relative to its directory.
    pub fn load(path: &Path) -> Result<ExportConfig, String> {
        let text = std::fs::read_to_string(path).map_err(|e| format!("{}: {e}", path.display()))?;
        let mut c: ExportConfig =
            serde_yaml::from_str(&text).map_err(|e| format!("{}: {e}", path.display()))?;
        let base = path.parent().unwrap_or(Path::new("."));
        rel(base, &mut c.state_dir);
        if let Some(a) = &mut c.audit_log {
            rel(base, a);
        }
        let mut names = std::collections::BTreeSet::new();
        for s in &mut c.sinks {
            s.resolve(base);
            let name = s.name();
            if name.is_empty()
                || !name
                    .chars()
                    .all(|ch| ch.is_ascii_alphanumeric() || ch == '-' || ch == '_')
            {
                return Err(format!("sink name {name:?}: use letters, digits, - and _"));
            }
            if !names.insert(name.to_string()) {
                return Err(format!("two sinks are named {name:?}"));
            }
        }
        if c.sinks.is_empty() {
            return Err(format!("{}: no sinks", path.display()));
        }
        c.batch_max = c.batch_max.max(1);
        Ok(c)
    }

    /// `host.name` of the exported records.
    pub fn host(&self) -> String {
        self.host_name.clone().unwrap_or_else(local_host_name)
    }
}

/// This machine's host name.
pub fn local_host_name() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .map(|s| s.trim().to_string())
        .ok()
        .filter(|s| !s.is_empty())
        .unwrap_or_else(|| "localhost".into())
}

/// A record on its way out: redacted, with its chain position.
#[derive(Debug, Clone)]
pub struct Exported {
    /// Chain position.
    pub seq: u64,
    /// Hash of the record as written (before redaction).
    pub hash: String,
    /// Previous record's hash.
    pub prev: String,
    /// `ts` in ms since the epoch (0 when missing).
    pub ts_ms: i64,
    /// `ts` as written.
    pub ts: String,
    /// `event`.
    pub event: String,
    /// The record with every string redacted.
    pub fields: Map<String, Value>,
    /// Whether redaction changed anything (then `hash` no longer matches `fields`).
    pub redacted: bool,
}

fn redact_value(v: &mut Value, changed: &mut bool) {
    match v {
        Value::String(s) => {
            let r = aiops_redact::redact(s);
            if r != *s {
                *changed = true;
                *s = r;
            }
        }
        Value::Array(a) => a.iter_mut().for_each(|x| redact_value(x, changed)),
        Value::Object(m) => redact_object(m, changed),
        _ => {}
    }
}

/// Redacts an object's values and its keys: a key is text the record's writer
/// chose too (an environment map, a forged field name).
fn redact_object(m: &mut Map<String, Value>, changed: &mut bool) {
    if m.keys().any(|k| aiops_redact::redact(k) != *k) {
        *changed = true;
        *m = std::mem::take(m)
            .into_iter()
            .map(|(k, v)| (aiops_redact::redact(&k), v))
            .collect();
    }
    m.values_mut().for_each(|x| redact_value(x, changed));
}

impl Exported {
    /// Redacts a record read from the log.
    pub fn new(record: &Map<String, Value>) -> Exported {
        let mut redacted = false;
        // `hash` and `prev` stay as written (they are the chain); every other
        // key and value is redacted.
        let (mut chain, mut fields): (Map<String, Value>, Map<String, Value>) = record
            .clone()
            .into_iter()
            .partition(|(k, _)| k == "hash" || k == "prev");
        redact_object(&mut fields, &mut redacted);
        fields.append(&mut chain);
        let s = |k: &str| {
            record
                .get(k)
                .and_then(Value::as_str)
                .unwrap_or("")
                .to_string()
        };
        let ts = s("ts");
        Exported {
            seq: record.get("seq").and_then(Value::as_u64).unwrap_or(0),
            hash: s("hash"),
            prev: s("prev"),
            ts_ms: aiops_sys::parse_rfc3339_ms(&ts).unwrap_or(0),
            ts,
            event: s("event"),
            fields,
            redacted,
        }
    }

    /// The redacted record as canonical JSON.
    pub fn json(&self) -> String {
        aiops_audit::canonical(&Value::Object(self.fields.clone()))
    }

    /// Severity: 0 info, 1 warning, 2 error.
    pub fn level(&self) -> u8 {
        match self.event.as_str() {
            "error" => 2,
            "executed" => {
                let ok = self.fields.get("exit_code").and_then(Value::as_i64) == Some(0)
                    && self.fields.get("timed_out") != Some(&Value::Bool(true));
                if ok { 0 } else { 1 }
            }
            "forbidden" | "rejected" | "denied" | "refused" | "refused_summary" | "expired"
            | "superseded" | "skipped" => 1,
            _ => 0,
        }
    }
}

/// A destination that takes batches.
pub trait Sink {
    /// Delivers the batch; `Ok` only when the receiver has taken all of it.
    fn send(&mut self, batch: &[Exported]) -> Result<(), String>;
}

/// Where the records come from (resource attributes, syslog header).
#[derive(Debug, Clone)]
pub struct Source {
    /// `service.name` / APP-NAME.
    pub service_name: String,
    /// `host.name` / HOSTNAME.
    pub host_name: String,
}

fn build_sink(c: &SinkConfig, source: &Source) -> Result<Box<dyn Sink>, String> {
    Ok(match c {
        SinkConfig::SyslogTls(s) => Box::new(syslog::SyslogSink::new(s.clone(), source.clone())?),
        SinkConfig::OtlpHttp(o) => Box::new(otlp::OtlpHttpSink::new(o.clone(), source.clone())?),
        SinkConfig::OtlpGrpc(o) => Box::new(otlp::OtlpGrpcSink::new(o.clone(), source.clone())?),
    })
}

struct Running {
    name: String,
    sink: Box<dyn Sink>,
    state: SinkState,
    retry_at: Instant,
    pause: Duration,
}

fn now_text() -> String {
    aiops_sys::rfc3339_ms(aiops_sys::now_ms())
}

/// What one pass over a sink did.
enum Pass {
    Idle,
    Sent,
    Failed,
}

fn pass(r: &mut Running, reader: &LogReader, cfg: &ExportConfig, dir: &Path) -> Pass {
    if r.state.stopped || Instant::now() < r.retry_at {
        return Pass::Failed;
    }
    let result = match reader.read_after(&r.state, cfg.batch_max) {
        Ok(batch) if batch.is_empty() => return Pass::Idle,
        Ok(batch) => {
            let out: Vec<Exported> = batch.iter().map(|b| Exported::new(&b.record)).collect();
            match r.sink.send(&out) {
                Ok(()) => {
                    let last = batch.last().expect("non-empty");
                    r.state.seq = last.seq;
                    r.state.hash = last.hash.clone();
                    r.state.offset = last.end;
                    r.state.exported_total += batch.len() as u64;
                    r.state.last_ok_at = Some(now_text());
                    r.state.failing_since = None;
                    r.state.failures = 0;
                    Ok(())
                }
                Err(e) => Err(format!("sink: {e}")),
            }
        }
        Err(ReadError::Rewritten(m)) => {
            r.state.stopped = true;
            Err(ReadError::Rewritten(m).to_string())
        }
        Err(e) => Err(format!("reading the audit log: {e}")),
    };
    let outcome = match result {
        Ok(()) => {
            r.pause = Duration::from_millis(250);
            Pass::Sent
        }
        Err(e) => {
            let now = now_text();
            tracing::warn!(sink = %r.name, "export failed: {e}");
            r.state.last_error = Some(e);
            r.state.last_error_at = Some(now.clone());
            r.state.failing_since.get_or_insert(now);
            r.state.failures += 1;
            r.retry_at = Instant::now() + r.pause;
            r.pause = (r.pause * 2).min(Duration::from_millis(cfg.retry_max_ms.max(1)));
            Pass::Failed
        }
    };
    if let Err(e) = position::save(dir, &r.name, &r.state) {
        // Without a durable position the batch would be resent after a
        // restart (at-least-once still holds); say so loudly.
        tracing::error!(sink = %r.name, "saving the export position: {e}");
    }
    outcome
}

fn lock_path(dir: &Path) -> PathBuf {
    dir.join("export.lock")
}

/// Runs the exporter: forever, or with `once` until every sink is caught up
/// (exit 0) or one failed (exit 1).
pub fn run(cfg: &ExportConfig, audit_log: &Path, once: bool) -> ExitCode {
    use std::os::unix::fs::DirBuilderExt;
    if let Err(e) = std::fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(&cfg.state_dir)
    {
        eprintln!("aiops: {}: {e}", cfg.state_dir.display());
        return ExitCode::from(64);
    }
    let lock = match std::fs::OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(lock_path(&cfg.state_dir))
    {
        Ok(f) => f,
        Err(e) => {
            eprintln!("aiops: {}: {e}", cfg.state_dir.display());
            return ExitCode::from(64);
        }
    };
    let _lock = match nix::fcntl::Flock::lock(lock, nix::fcntl::FlockArg::LockExclusiveNonblock) {
        Ok(l) => l,
        Err(_) => {
            eprintln!(
                "aiops: another exporter is running on {}",
                cfg.state_dir.display()
            );
            return ExitCode::from(75);
        }
    };
    let source = Source {
        service_name: cfg.service_name.clone(),
        host_name: cfg.host(),
    };
    let mut running = Vec::new();
    for s in &cfg.sinks {
        let sink = match build_sink(s, &source) {
            Ok(x) => x,
            Err(e) => {
                eprintln!("aiops: sink {}: {e}", s.name());
                return ExitCode::from(64);
            }
        };
        let state = match position::load(&cfg.state_dir, s.name()) {
            Ok(st) => st,
            Err(e) => {
                eprintln!("aiops: {e}");
                return ExitCode::from(64);
            }
        };
        running.push(Running {
            name: s.name().to_string(),
            sink,
            state,
            retry_at: Instant::now(),
            pause: Duration::from_millis(250),
        });
    }
    let reader = LogReader::new(audit_log);
    loop {
        let mut busy = false;
        let mut failed = false;
        for r in &mut running {
            match pass(r, &reader, cfg, &cfg.state_dir) {
                Pass::Idle => {}
                Pass::Sent => busy = true,
                Pass::Failed => failed = true,
            }
        }
        if once && !busy {
            return if failed {
                ExitCode::FAILURE
            } else {
                ExitCode::SUCCESS
            };
        }
        if !busy {
            std::thread::sleep(Duration::from_millis(cfg.poll_ms.max(10)));
        }
    }
}

/// The `--status` report: per sink, position, backlog, lag and errors.
pub fn status(cfg: &ExportConfig, audit_log: &Path) -> Value {
    let reader = LogReader::new(audit_log);
    let head = reader.head_seq();
    let running = std::fs::File::open(lock_path(&cfg.state_dir))
        .ok()
        .map(|f| nix::fcntl::Flock::lock(f, nix::fcntl::FlockArg::LockSharedNonblock).is_err())
        .unwrap_or(false);
    let now = aiops_sys::now_ms();
    let sinks: Vec<Value> = cfg
        .sinks
        .iter()
        .map(|s| {
            let st = position::load(&cfg.state_dir, s.name()).unwrap_or_else(|e| SinkState {
                last_error: Some(e),
                ..SinkState::fresh()
            });
            let backlog = head.as_ref().ok().map(|h| h.saturating_sub(st.seq));
            // Lag: how long the oldest record not yet exported has waited.
            let lag_ms = match backlog {
                Some(0) => Some(0),
                Some(_) => reader.read_after(&st, 1).ok().and_then(|r| {
                    r.first()
                        .and_then(|x| x.record.get("ts"))
                        .and_then(Value::as_str)
                        .and_then(aiops_sys::parse_rfc3339_ms)
                        .map(|t| (now - t).max(0))
                }),
                None => None,
            };
            json!({
                "name": s.name(),
                "type": s.kind(),
                "seq": st.seq,
                "hash": st.hash,
                "backlog": backlog,
                "lag_ms": lag_ms,
                "exported_total": st.exported_total,
                "last_ok_at": st.last_ok_at,
                "last_error": st.last_error,
                "last_error_at": st.last_error_at,
                "failing_since": st.failing_since,
                "failures": st.failures,
                "stopped": st.stopped,
            })
        })
        .collect();
    json!({
        "audit_log": audit_log,
        "head_seq": head.as_ref().ok(),
        "head_error": head.as_ref().err(),
        "state_dir": cfg.state_dir,
        "exporter_running": running,
        "sinks": sinks,
    })
}

#[cfg(test)]
mod tests {

    #[test]
    fn secrets_in_object_keys_are_redacted_too() {
        let Value::Object(m) = serde_json::json!({
            "event": "executed", "seq": 1,
            "env": {"AKIAIOSFODNN7EXAMPLE": "x"},
            "ghp_0123456789abcdefghijklmnopqrstuvwxyzAB": 1,
        }) else {
            unreachable!()
        };
        let e = Exported::new(&m);
        let out = e.json();
        assert!(e.redacted, "{out}");
        assert!(!out.contains("AKIAIOSFODNN7EXAMPLE"), "{out}");
        assert!(!out.contains("ghp_0123456789abcdefghij"), "{out}");
    }
    use super::*;

    #[test]
    fn secrets_are_redacted_on_the_way_out_and_flagged() {
        let Value::Object(m) = json!({
            "event": "executed", "seq": 3, "hash": "h", "prev": "p",
            "command": "mysql --password=hunter2 -e 'select 1'",
            "stdout": "ok", "exit_code": 0, "ts": "2026-12-01T20:00:00.000Z",
        }) else {
            unreachable!()
        };
        let e = Exported::new(&m);
        assert!(e.redacted);
        assert!(!e.json().contains("hunter2"), "{}", e.json());
        assert_eq!(e.seq, 3);
        assert_eq!(e.level(), 0);
        assert!(e.ts_ms > 0);
    }

    #[test]
    fn the_shipped_example_config_parses() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("export.yml");
        std::fs::write(
            &p,
            include_str!("../../packaging/export/export.yml.example"),
        )
        .unwrap();
        let c = ExportConfig::load(&p).unwrap();
        assert_eq!(c.sinks.len(), 2);
        assert_eq!(c.state_dir, PathBuf::from("/var/lib/aiops-export"));
    }

    #[test]
    fn the_shipped_agent_example_config_parses_and_names_the_agent_log() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("export.yml");
        std::fs::write(
            &p,
            include_str!("../../packaging/export/agent-export.yml.example"),
        )
        .unwrap();
        let c = ExportConfig::load(&p).unwrap();
        assert_eq!(c.sinks.len(), 2);
        assert_eq!(c.service_name, "aiops-agent");
        // The exporter cannot read agent.yml: the log must be named here.
        assert_eq!(
            c.audit_log,
            Some(PathBuf::from("/var/log/aiops-agent/audit.jsonl"))
        );
        assert_eq!(c.state_dir, PathBuf::from("/var/lib/aiops-agent-export"));
    }

    #[test]
    fn config_rejects_duplicate_and_odd_sink_names() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("export.yml");
        std::fs::write(
            &p,
            "state_dir: st\nsinks:\n  - {type: otlp_http, name: a, endpoint: 'http://127.0.0.1:1/v1/logs'}\n  - {type: otlp_http, name: a, endpoint: 'http://127.0.0.1:1/v1/logs'}\n",
        )
        .unwrap();
        assert!(ExportConfig::load(&p).unwrap_err().contains("two sinks"));
        std::fs::write(
            &p,
            "state_dir: st\nsinks:\n  - {type: otlp_http, name: '../x', endpoint: 'http://127.0.0.1:1/v1/logs'}\n",
        )
        .unwrap();
        assert!(ExportConfig::load(&p).is_err());
        std::fs::write(
            &p,
            "state_dir: st\nsinks:\n  - {type: otlp_http, name: ok, endpoint: 'http://127.0.0.1:1/v1/logs'}\n",
        )
        .unwrap();
        let c = ExportConfig::load(&p).unwrap();
        assert_eq!(c.state_dir, dir.path().join("st"));
    }
}
