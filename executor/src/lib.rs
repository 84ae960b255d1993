//! `aiops-exec`, the aiops root executor.
//!
//! The agent daemon reaches it through exactly one sudoers rule that allows
//! no arguments (`aiops ALL=(root) NOPASSWD: /usr/libexec/aiops-agent/aiops-exec ""`).
//! It reads one frame from stdin — the controller-signed request bytes, the
//! signature and any approver grant — and trusts nothing its caller says:
//! it checks the signature against the pinned controller key, this host's
//! name, the times, its own classification under the same compiled policy,
//! and for an approved request the approver's grant and its own single-use
//! record, then runs exactly the plan the policy derives from the signed
//! command text. No network code, no async runtime.
//!
//! Frame (all integers big-endian): `AIOPSX1\n`, u32 pipeline, u32 stage,
//! u32 length (at most [`MAX_FRAME`]), then that many bytes of an encoded
//! `SignedCommand`. Pipeline and stage name one privileged stage of an
//! auto-allowed plan; both `u32::MAX` ask for the whole approved plan. What
//! follows the frame on stdin is the stage's own input (a pipe from the
//! stage before it).
//!
//! Exit status: the command's; 125 for a configuration problem and 126 for
//! a refusal, each with one `aiops-exec: ...` line on stderr and a record in
//! the executor's own log (`<state_dir>/exec.jsonl`).

pub mod config;
pub mod hostfs;
pub mod run;
pub mod sandbox;
pub mod switch;
pub mod verify;
pub mod wire;

use std::io::{Read, Write};
use std::os::fd::AsFd;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Duration;

use prost::Message;

use config::Config;
use verify::Selector;

/// Frame magic.
pub const MAGIC: &[u8; 8] = b"AIOPSX1\n";
/// Largest encoded `SignedCommand` accepted.
pub const MAX_FRAME: u32 = 64 * 1024;
/// Pipeline and stage value that selects the whole approved plan.
pub const WHOLE_PLAN: u32 = u32::MAX;
/// Exit status of a refusal.
pub const EXIT_REFUSED: u8 = 126;
/// Exit status of a configuration problem.
pub const EXIT_CONFIG: u8 = 125;

/// Encodes a frame for `signed` (what the agent writes to the executor's stdin).
pub fn frame(pipeline: u32, stage: u32, signed: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(20 + signed.len());
    out.extend_from_slice(MAGIC);
    out.extend_from_slice(&pipeline.to_be_bytes());
    out.extend_from_slice(&stage.to_be_bytes());
    out.extend_from_slice(
        &u32::try_from(signed.len())
            .unwrap_or(u32::MAX)
            .to_be_bytes(),
    );
    out.extend_from_slice(signed);
    out
}

/// Reads one frame from `r` without reading past it.
pub fn read_frame(r: &mut impl Read) -> Result<(Selector, Vec<u8>), String> {
    let mut head = [0u8; 20];
    r.read_exact(&mut head).map_err(|e| format!("frame: {e}"))?;
    if &head[..8] != MAGIC {
        return Err("frame: bad magic".into());
    }
    let n = |i: usize| u32::from_be_bytes([head[i], head[i + 1], head[i + 2], head[i + 3]]);
    let (p, s, len) = (n(8), n(12), n(16));
    if len > MAX_FRAME {
        return Err(format!("frame: {len} bytes, more than {MAX_FRAME}"));
    }
    let mut body = vec![0u8; len as usize];
    r.read_exact(&mut body).map_err(|e| format!("frame: {e}"))?;
    let sel = match (p, s) {
        (WHOLE_PLAN, WHOLE_PLAN) => Selector::Approved,
        (p, s) => Selector::Stage(p as usize, s as usize),
    };
    Ok((sel, body))
}

fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
        .unwrap_or(0)
}

/// Appends one record to the executor's log (root-only, in its state dir) and
/// makes it durable (`fdatasync`) before returning: nothing runs unless its
/// record is on disk.
fn log(dir: &Path, mut rec: serde_json::Map<String, serde_json::Value>) -> std::io::Result<()> {
    rec.insert("ts_ms".into(), now_ms().into());
    let line = format!("{}\n", serde_json::Value::Object(rec));
    use std::os::unix::fs::OpenOptionsExt;
    let mut f = std::fs::OpenOptions::new()
        .append(true)
        .create(true)
        .mode(0o600)
        .open(dir.join("exec.jsonl"))?;
    f.write_all(line.as_bytes())?;
    f.sync_data()
}

fn fields(pairs: &[(&str, serde_json::Value)]) -> serde_json::Map<String, serde_json::Value> {
    pairs
        .iter()
        .map(|(k, v)| ((*k).to_string(), v.clone()))
        .collect()
}

/// Entry point of the `aiops-exec` binary.
pub fn main() -> ExitCode {
    // Before anything else: limits, signal dispositions and the mask the caller (through
    // sudo, which passes them on) chose must not decide whether the log can be written.
    sandbox::reset_inherited();
    let args: Vec<String> = std::env::args().skip(1).collect();
    let config_path = match args.as_slice() {
        [] => PathBuf::from(config::DEFAULT_CONFIG),
        // Arguments only come from root or from an unprivileged caller
        // running its own copy: the sudoers rule allows none.
        [flag, path] if flag == "--config" => PathBuf::from(path),
        [flag, cfg, timeout_ms, run_as, command] if flag == "--inner-run" => {
            return inner_run(Path::new(cfg), timeout_ms, run_as, command);
        }
        _ => {
            eprintln!("aiops-exec: takes no arguments (the request comes on stdin)");
            return ExitCode::from(EXIT_CONFIG);
        }
    };
    let cfg = match Config::load(&config_path) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("aiops-exec: config: {e}");
            return ExitCode::from(EXIT_CONFIG);
        }
    };
    let state = match cfg.state_dir() {
        Ok(s) => s.to_path_buf(),
        Err(e) => {
            eprintln!("aiops-exec: {e}");
            return ExitCode::from(EXIT_CONFIG);
        }
    };
    let refused = |code: &str, msg: &str, extra: &[(&str, serde_json::Value)]| {
        let mut rec = fields(&[
            ("event", "refused".into()),
            ("reason", code.into()),
            ("message", msg.into()),
        ]);
        rec.extend(fields(extra));
        if let Err(e) = log(&state, rec) {
            eprintln!("aiops-exec: exec.jsonl: {e}");
        }
        eprintln!("aiops-exec: refused: {code}: {msg}");
        ExitCode::from(EXIT_REFUSED)
    };
    // A run is recorded durably first; when that fails nothing runs.
    let record = |rec: serde_json::Map<String, serde_json::Value>| -> Result<(), ExitCode> {
        log(&state, rec).map_err(|e| {
            eprintln!("aiops-exec: refused: audit_failed: exec.jsonl: {e}");
            ExitCode::from(EXIT_REFUSED)
        })
    };
    // Read the frame from a duplicate of fd 0: unbuffered, so what follows
    // the frame stays for the stage.
    let frame = std::io::stdin()
        .as_fd()
        .try_clone_to_owned()
        .map(std::fs::File::from)
        .map_err(|e| e.to_string())
        .and_then(|mut f| read_frame(&mut f));
    let (sel, body) = match frame {
        Ok(x) => x,
        Err(e) => return refused("malformed", &e, &[]),
    };
    let signed = match wire::SignedCommand::decode(body.as_slice()) {
        Ok(s) => s,
        Err(e) => return refused("malformed", &e.to_string(), &[]),
    };
    let v = match verify::verify(&cfg, &signed, sel, now_ms()) {
        Ok(v) => v,
        Err(r) => {
            // Which signed request was refused (none named when the signature is not ours).
            let named: Vec<(&str, serde_json::Value)> = verify::authentic_request(&cfg, &signed)
                .map(|q| {
                    vec![
                        ("request_id", q.request_id.into()),
                        ("command", q.command.into()),
                        ("requester", q.requester.into()),
                    ]
                })
                .unwrap_or_default();
            return refused(r.code, &r.message, &named);
        }
    };
    let req = &v.request;
    let base = [
        ("request_id", req.request_id.clone().into()),
        ("command", req.command.clone().into()),
        ("requester", req.requester.clone().into()),
    ];
    match sel {
        Selector::Stage(p, s) => {
            let mut rec = fields(&base);
            rec.insert("event".into(), "privileged_stage".into());
            rec.insert("stage".into(), format!("{p}.{s}").into());
            if let Err(r) = verify::consume_request(
                &state,
                &req.request_id,
                p,
                s,
                req.expires_at_ms,
                cfg.skew_ms,
                now_ms(),
            ) {
                return refused(r.code, &r.message, &base);
            }
            if let Err(code) = record(rec) {
                return code;
            }
            let err = run::exec_stage(&v.decision.plan, p, s, cfg.limits);
            eprintln!("aiops-exec: {err}");
            ExitCode::from(127)
        }
        Selector::Approved => {
            let Some(grant) = &v.grant else {
                return refused("approval_missing", "no grant", &base);
            };
            if let Err(r) =
                verify::consume_grant(&state, grant, &req.request_id, cfg.skew_ms, now_ms())
            {
                return refused(r.code, &r.message, &base);
            }
            let run_as = grant.run_as.clone();
            let account = if run_as.is_empty() || run_as == "root" {
                None
            } else {
                match sandbox::Account::lookup(&run_as) {
                    Ok(a) => Some(a),
                    Err(e) => return refused("run_as", &e, &base),
                }
            };
            let transient = cfg.transient_unit
                && sandbox::euid() == 0
                && Path::new("/run/systemd/system").is_dir();
            let mut rec = fields(&base);
            rec.insert("event".into(), "approved_run".into());
            rec.insert("approval_id".into(), grant.approval_id.clone().into());
            rec.insert("approver".into(), grant.approver.clone().into());
            rec.insert(
                "run_as".into(),
                (if run_as.is_empty() { "root" } else { &run_as }).into(),
            );
            rec.insert("transient_unit".into(), transient.into());
            if let Err(code) = record(rec) {
                return code;
            }
            let timeout = Duration::from_millis(u64::from(req.timeout_ms));
            sandbox::die_with_parent();
            if transient {
                let exe =
                    std::env::current_exe().unwrap_or_else(|_| PathBuf::from("/proc/self/exe"));
                let args = run::transient_unit_args(
                    &exe,
                    &config_path,
                    &req.request_id,
                    &run_as,
                    timeout,
                    cfg.limits,
                    &req.command,
                );
                use std::os::unix::process::CommandExt;
                let err = std::process::Command::new("/usr/bin/systemd-run")
                    .args(args)
                    .env_clear()
                    .envs(run::CLEAN_ENV)
                    .exec();
                eprintln!("aiops-exec: systemd-run: {err}");
                return ExitCode::from(127);
            }
            let end = run::run_plan(&v.decision.plan, &req.command, account, cfg.limits, timeout);
            exit_code(end.code)
        }
    }
}

fn exit_code(code: i32) -> ExitCode {
    ExitCode::from(u8::try_from(code).unwrap_or(1))
}

/// The approved command inside its transient unit (started by systemd as
/// root): classify the command again under the same policy, refuse what it
/// forbids, run the plan.
fn inner_run(cfg_path: &Path, timeout_ms: &str, run_as: &str, command: &str) -> ExitCode {
    let cfg = match Config::load(cfg_path) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("aiops-exec: config: {e}");
            return ExitCode::from(EXIT_CONFIG);
        }
    };
    let d = cfg
        .policy
        .classify_on_host(Some(&cfg.name), command, &hostfs::HostFiles);
    if matches!(
        d.risk,
        aiops_policy::Risk::Forbidden | aiops_policy::Risk::Rejected
    ) {
        eprintln!("aiops-exec: refused: policy_forbidden");
        return ExitCode::from(EXIT_REFUSED);
    }
    let account = if run_as.is_empty() || run_as == "root" {
        None
    } else {
        match sandbox::Account::lookup(run_as) {
            Ok(a) => Some(a),
            Err(e) => {
                eprintln!("aiops-exec: {e}");
                return ExitCode::from(EXIT_REFUSED);
            }
        }
    };
    let timeout = Duration::from_millis(timeout_ms.parse().unwrap_or(1000));
    let end = run::run_plan(&d.plan, command, account, cfg.limits, timeout);
    exit_code(end.code)
}
