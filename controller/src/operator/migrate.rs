//! `aiops migrate`: brings an installation of the old `run_action.py` MVP
//! over to this controller.
//!
//! The MVP ran `ssh TARGET CMD` from a Python wrapper (`echo '{…}' | sudo -u
//! aiopsexec /opt/aiops/run_action.py`) configured by one `config.yml` and
//! logging to an unchained `audit.jsonl`. No copy of it is at hand; the
//! format read here is the one our documents describe, assumed as:
//!
//! ```yaml
//! mode: lab                            # lab | production
//! unknown_default: approval_required   # approval_required | reject | allow
//! audit_log: audit.jsonl               # one JSON answer per line, no chain
//! ssh_user: aiops                      # SSH settings: nothing to map (no SSH here)
//! ssh_key: /opt/aiops/.ssh/id_ed25519
//! targets:
//!   srv1: {host: 192.0.2.10, port: 22, user: aiops}
//! allow: ["hostname", "systemctl status nginx"]       # exact commands run without approval
//! require_approval: ["systemctl restart"]             # command prefixes needing approval
//! forbid: ["reboot", "systemctl stop nginx"]          # command prefixes never run
//! ```
//!
//! Mapping: `mode` and `unknown_default` (`reject`, `approval_required`;
//! the MVP's `allow` for unknown commands has no equivalent: unknown
//! commands are never auto-allowed here), each target's `host` to
//! `address: HOST:AGENT_PORT` (an agent must be enrolled there), `allow`
//! entries to `policy.auto_allow` when the policy then auto-allows them,
//! `require_approval` and `forbid` entries to the policy's patterns when the
//! policy accepts them. Anything else is listed as not mapped, with why. The
//! old `audit.jsonl` is copied read-only beside our audit log as a sealed
//! prior segment, and a `prior_segment` record carrying its SHA-256 is
//! appended to our chain (its first record on a fresh controller).
//! `--dry-run` shows all of it and writes nothing.

use std::path::{Path, PathBuf};

use aiops_policy::{Policy, PolicyFile, Risk};
use serde_json::{Value, json};
use serde_yaml::Value as Yaml;

/// `aiops migrate`.
#[derive(clap::Args, Debug)]
pub struct MigrateArgs {
    /// The MVP's directory (its config.yml and audit.jsonl), e.g. /opt/aiops-mvp.
    #[arg(long)]
    pub from: PathBuf,
    /// Port the agents listen on (the MVP's targets were SSH hosts).
    #[arg(long, default_value_t = 7443)]
    pub agent_port: u16,
    /// Show each mapping and each thing that cannot be mapped; write nothing.
    #[arg(long)]
    pub dry_run: bool,
}

fn mapped(from: &str, to: &str, value: impl Into<Value>) -> Value {
    json!({"from": from, "to": to, "value": value.into()})
}

fn unmapped(from: &str, value: impl Into<Value>, why: &str) -> Value {
    json!({"from": from, "value": value.into(), "why": why})
}

fn yaml_str(v: &Yaml) -> Option<String> {
    match v {
        Yaml::String(s) => Some(s.clone()),
        Yaml::Number(n) => Some(n.to_string()),
        Yaml::Bool(b) => Some(b.to_string()),
        _ => None,
    }
}

fn json_of(v: &Yaml) -> Value {
    serde_json::to_value(v).unwrap_or(Value::Null)
}

fn policy_with(
    base: &PolicyFile,
    edit: impl FnOnce(&mut PolicyFile),
) -> Result<(PolicyFile, Policy), String> {
    let mut f = base.clone();
    edit(&mut f);
    let p = Policy::from_file(f.clone()).map_err(|e| e.to_string())?;
    Ok((f, p))
}

fn has_shell(cmd: &str) -> bool {
    cmd.chars().any(|c| "|;&<>`$(){}".contains(c))
}

/// The plan: the new policy, targets, mappings, what could not be mapped.
struct Plan {
    policy: PolicyFile,
    targets: Vec<(String, String)>,
    defaults: Vec<(&'static str, u32)>,
    mappings: Vec<Value>,
    unmapped: Vec<Value>,
    audit: Option<PathBuf>,
}

fn plan(
    mvp: &Yaml,
    base: PolicyFile,
    agent_port: u16,
    ours: &serde_yaml::Mapping,
    from: &Path,
) -> Plan {
    let mut policy = base;
    let mut mappings = Vec::new();
    let mut not = Vec::new();
    let mut targets = Vec::new();
    let mut defaults = Vec::new();
    let mut audit = None;
    let Some(map) = mvp.as_mapping() else {
        not.push(unmapped("config.yml", Value::Null, "not a YAML mapping"));
        return Plan {
            policy,
            targets,
            defaults,
            mappings,
            unmapped: not,
            audit,
        };
    };
    for (k, v) in map {
        let key = yaml_str(k).unwrap_or_default();
        match key.as_str() {
            "mode" => match yaml_str(v).as_deref() {
                Some(m @ ("lab" | "production")) => {
                    match policy_with(&policy, |f| {
                        f.mode = serde_yaml::from_str(m).expect("mode");
                    }) {
                        Ok((f, _)) => {
                            policy = f;
                            mappings.push(mapped("mode", "policy.mode", m));
                        }
                        Err(e) => not.push(unmapped("mode", m, &e)),
                    }
                }
                _ => not.push(unmapped("mode", json_of(v), "only lab and production exist here")),
            },
            "unknown_default" => match yaml_str(v).as_deref() {
                Some(u @ ("approval_required" | "reject")) => {
                    policy.unknown_default = serde_yaml::from_str(u).expect("unknown_default");
                    mappings.push(mapped("unknown_default", "policy.unknown_default", u));
                }
                _ => not.push(unmapped(
                    "unknown_default",
                    json_of(v),
                    "unknown commands are never auto-allowed here; kept approval_required (lab) / reject (production)",
                )),
            },
            "audit_log" => {
                let p = yaml_str(v).map(PathBuf::from).unwrap_or_default();
                let p = if p.is_relative() { from.join(p) } else { p };
                audit = Some(p.clone());
                mappings.push(mapped("audit_log", "prior audit segment (sealed copy + prior_segment record)", p.display().to_string()));
            }
            "targets" => {
                let Some(ts) = v.as_mapping() else {
                    not.push(unmapped("targets", json_of(v), "not a mapping"));
                    continue;
                };
                let existing = ours.get("targets").and_then(Yaml::as_mapping);
                for (name, t) in ts {
                    let name = yaml_str(name).unwrap_or_default();
                    let from_key = format!("targets.{name}");
                    if !aiops_types::TargetName::is_valid(&name) {
                        not.push(unmapped(&from_key, json_of(t), "not a valid target name"));
                        continue;
                    }
                    let Some(host) = t.get("host").and_then(yaml_str) else {
                        not.push(unmapped(&from_key, json_of(t), "no host"));
                        continue;
                    };
                    let address = format!("{host}:{agent_port}");
                    if let Some(old) = existing.and_then(|e| e.get(name.as_str())) {
                        let same = old.get("address").and_then(yaml_str).as_deref() == Some(address.as_str());
                        if !same {
                            not.push(unmapped(&from_key, json_of(t), "a target of that name is already configured with another address; left as it is"));
                            continue;
                        }
                    }
                    mappings.push(mapped(&format!("{from_key}.host"), &format!("targets.{name}.address"), address.clone()));
                    targets.push((name.clone(), address));
                    if let Some(m) = t.as_mapping() {
                        for (tk, tv) in m {
                            let tk = yaml_str(tk).unwrap_or_default();
                            if tk != "host" {
                                not.push(unmapped(
                                    &format!("{from_key}.{tk}"),
                                    json_of(tv),
                                    "SSH setting: the agent listens on its own port and is enrolled with a certificate bundle (aiops certs bundle)",
                                ));
                            }
                        }
                    }
                }
            }
            "allow" | "require_approval" | "approval_required" | "forbid" => {
                let Some(list) = v.as_sequence() else {
                    not.push(unmapped(&key, json_of(v), "not a list"));
                    continue;
                };
                for (i, item) in list.iter().enumerate() {
                    let from_key = format!("{key}[{i}]");
                    let Some(cmd) = yaml_str(item) else {
                        not.push(unmapped(&from_key, json_of(item), "not a string"));
                        continue;
                    };
                    if has_shell(&cmd) {
                        not.push(unmapped(&from_key, cmd, "a shell construct: policy entries are single commands (the built-in policy classifies pipelines stage by stage)"));
                        continue;
                    }
                    let current = Policy::from_file(policy.clone()).ok().map(|p| p.classify(&cmd).risk);
                    let result = match key.as_str() {
                        "allow" => {
                            if current == Some(Risk::AutoAllowed) {
                                mappings.push(mapped(&from_key, "(already auto-allowed by the built-in policy)", cmd));
                                continue;
                            }
                            policy_with(&policy, |f| f.auto_allow.push(cmd.clone())).and_then(|(f, p)| {
                                let got = p.classify(&cmd);
                                if got.risk == Risk::AutoAllowed {
                                    Ok((f, "policy.auto_allow"))
                                } else {
                                    Err(format!("still {} here: {}", got.risk.as_str(), got.reasons.join("; ")))
                                }
                            })
                        }
                        "forbid" => policy_with(&policy, |f| f.forbid.push(cmd.clone())).map(|(f, _)| (f, "policy.forbid")),
                        _ => {
                            if matches!(current, Some(Risk::ApprovalRequired | Risk::Forbidden)) {
                                mappings.push(mapped(&from_key, "(already needs approval or is forbidden here)", cmd));
                                continue;
                            }
                            policy_with(&policy, |f| f.require_approval.push(cmd.clone())).map(|(f, _)| (f, "policy.require_approval"))
                        }
                    };
                    match result {
                        Ok((f, to)) => {
                            policy = f;
                            mappings.push(mapped(&from_key, to, cmd));
                        }
                        Err(e) => not.push(unmapped(&from_key, cmd, &e)),
                    }
                }
            }
            "approval_timeout" => match v.as_u64().and_then(|n| u32::try_from(n).ok()) {
                Some(n) => {
                    defaults.push(("approval_ttl_secs", n));
                    mappings.push(mapped("approval_timeout", "defaults.approval_ttl_secs", n));
                }
                None => not.push(unmapped("approval_timeout", json_of(v), "not a number of seconds")),
            },
            k if k.starts_with("ssh") => not.push(unmapped(
                &key,
                json_of(v),
                "SSH setting: there is no SSH here; the controller reaches agents over mutual TLS",
            )),
            _ => not.push(unmapped(&key, json_of(v), "no counterpart here")),
        }
    }
    Plan {
        policy,
        targets,
        defaults,
        mappings,
        unmapped: not,
        audit,
    }
}

/// Largest MVP `config.yml` read.
pub const MAX_CONFIG_BYTES: u64 = 1 << 20;
/// Largest MVP `audit.jsonl` (and sealed copy) read.
pub const MAX_SEGMENT_BYTES: u64 = 256 << 20;

/// The bytes of `path` when it is a regular file of at most `max` bytes.
/// The MVP's directory is another installation's: a FIFO would hang the
/// read, a device or a huge file exhaust memory.
pub fn read_regular(path: &Path, max: u64) -> Result<Vec<u8>, String> {
    use std::io::Read;
    use std::os::unix::fs::OpenOptionsExt;
    let shown = path.display();
    // Non-blocking open: a FIFO without a writer does not block here.
    let f = std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(nix::libc::O_NONBLOCK)
        .open(path)
        .map_err(|e| format!("{shown}: {e}"))?;
    let m = f.metadata().map_err(|e| format!("{shown}: {e}"))?;
    if !m.file_type().is_file() {
        return Err(format!("{shown}: not a regular file"));
    }
    if m.len() > max {
        return Err(format!(
            "{shown}: {} bytes, more than the {max} read here",
            m.len()
        ));
    }
    let mut bytes = Vec::new();
    f.take(max + 1)
        .read_to_end(&mut bytes)
        .map_err(|e| format!("{shown}: {e}"))?;
    if bytes.len() as u64 > max {
        return Err(format!("{shown}: grew past {max} bytes while read"));
    }
    Ok(bytes)
}

/// `aiops audit verify`'s check of the sealed prior segments: each
/// `prior_segment` record of the log at `log` names a sealed copy whose
/// SHA-256 must still be the one recorded. `Some((seq, why))` for the first
/// that is missing or differs.
pub fn check_prior_segments(log: &Path) -> Option<(u64, String)> {
    use std::io::BufRead;
    let f = std::fs::File::open(log).ok()?;
    for line in std::io::BufReader::new(f).lines() {
        let Ok(line) = line else { break };
        if !line.contains("\"prior_segment\"") {
            continue;
        }
        let Ok(r) = serde_json::from_str::<serde_json::Map<String, Value>>(&line) else {
            continue;
        };
        if r.get("event").and_then(Value::as_str) != Some("prior_segment") {
            continue;
        }
        let seq = r.get("seq").and_then(Value::as_u64).unwrap_or(0);
        let sealed = r.get("sealed_path").and_then(Value::as_str).unwrap_or("");
        let want = r.get("sha256").and_then(Value::as_str).unwrap_or("");
        let problem = match read_regular(Path::new(sealed), MAX_SEGMENT_BYTES) {
            Err(e) => Some(format!("the sealed prior segment is unreadable: {e}")),
            Ok(bytes) if aiops_sys::sha256_hex(&bytes) != want => Some(format!(
                "the sealed prior segment {sealed} does not have the SHA-256 its record holds \
                 (it was edited or replaced)"
            )),
            Ok(_) => None,
        };
        if let Some(p) = problem {
            return Some((seq, p));
        }
    }
    None
}

/// The old audit log's facts.
fn segment_facts(path: &Path) -> Result<Value, String> {
    let bytes = read_regular(path, MAX_SEGMENT_BYTES)?;
    let text = String::from_utf8_lossy(&bytes);
    let mut records = 0u64;
    let mut bad = Vec::new();
    let (mut first, mut last) = (Value::Null, Value::Null);
    for (i, line) in text.lines().enumerate() {
        if line.trim().is_empty() {
            continue;
        }
        match serde_json::from_str::<serde_json::Map<String, Value>>(line) {
            Ok(r) => {
                records += 1;
                let ts = r
                    .get("ts")
                    .or_else(|| r.get("time"))
                    .cloned()
                    .unwrap_or(Value::Null);
                if first.is_null() {
                    first = ts.clone();
                }
                last = ts;
            }
            Err(_) => bad.push(i + 1),
        }
    }
    Ok(json!({
        "original_path": path,
        "sha256": aiops_sys::sha256_hex(&bytes),
        "bytes": bytes.len(),
        "records": records,
        "lines_not_json": bad,
        "first_ts": first,
        "last_ts": last,
    }))
}

/// Runs `aiops migrate`; returns the JSON report or an error text.
pub fn migrate(config: &Path, args: &MigrateArgs) -> Result<Value, String> {
    let mvp_path = args.from.join("config.yml");
    let text = String::from_utf8(read_regular(&mvp_path, MAX_CONFIG_BYTES)?)
        .map_err(|e| format!("{}: {e}", mvp_path.display()))?;
    let mvp: Yaml =
        serde_yaml::from_str(&text).map_err(|e| format!("{}: {e}", mvp_path.display()))?;
    let ours_text =
        std::fs::read_to_string(config).map_err(|e| format!("{}: {e}", config.display()))?;
    let mut ours: serde_yaml::Mapping =
        serde_yaml::from_str(&ours_text).map_err(|e| format!("{}: {e}", config.display()))?;
    if ours.contains_key("policy_file") {
        return Err(format!(
            "{} names a policy_file; migrate writes an inline policy: merge by hand or inline it first",
            config.display()
        ));
    }
    let base: PolicyFile = match ours.get("policy") {
        Some(p) => serde_yaml::from_value(p.clone())
            .map_err(|e| format!("{}: policy: {e}", config.display()))?,
        None => serde_yaml::from_str("{}").map_err(|e| e.to_string())?,
    };
    let from = std::fs::canonicalize(&args.from).unwrap_or_else(|_| args.from.clone());
    let p = plan(&mvp, base, args.agent_port, &ours, &from);
    let loaded = crate::config::Loaded::load(config).map_err(|e| e.to_string())?;
    let audit_log = loaded.config.audit_log.clone();
    let sealed = audit_log
        .parent()
        .unwrap_or(Path::new("."))
        .join("prior")
        .join("run_action-audit.jsonl");
    let segment = match &p.audit {
        Some(a) if a.exists() => Some(segment_facts(a)?),
        Some(a) => {
            return Err(format!(
                "{}: the MVP audit log named in config.yml is missing",
                a.display()
            ));
        }
        None => None,
    };
    let mut report = json!({
        "status": if args.dry_run { "dry_run" } else { "migrated" },
        "from": args.from,
        "config": config,
        "mappings": p.mappings,
        "unmapped": p.unmapped,
        "prior_segment": segment.clone().map(|mut s| { s["sealed_path"] = json!(sealed); s }),
    });
    if args.dry_run {
        return Ok(report);
    }
    // The new config: validated by loading it before it replaces the old one.
    ours.insert(
        "policy".into(),
        serde_yaml::to_value(&p.policy).map_err(|e| e.to_string())?,
    );
    if !p.defaults.is_empty() {
        let d = ours
            .entry("defaults".into())
            .or_insert_with(|| Yaml::Mapping(Default::default()));
        if let Some(d) = d.as_mapping_mut() {
            for (k, n) in &p.defaults {
                d.insert((*k).into(), (*n).into());
            }
        }
    }
    let targets = ours
        .entry("targets".into())
        .or_insert_with(|| Yaml::Mapping(Default::default()));
    if let Some(t) = targets.as_mapping_mut() {
        for (name, address) in &p.targets {
            let mut m = serde_yaml::Mapping::new();
            m.insert("address".into(), address.clone().into());
            t.insert(name.clone().into(), Yaml::Mapping(m));
        }
    }
    let new_text = format!(
        "# aiops controller configuration (merged by `aiops migrate --from {}`)\n{}",
        args.from.display(),
        serde_yaml::to_string(&ours).map_err(|e| e.to_string())?
    );
    let tmp = config.with_file_name(".config.yml.migrate");
    std::fs::write(&tmp, &new_text).map_err(|e| format!("{}: {e}", tmp.display()))?;
    if let Err(e) = crate::config::Loaded::load(&tmp) {
        let _ = std::fs::remove_file(&tmp);
        return Err(format!("the merged configuration does not load: {e}"));
    }
    if let Some(seg) = &segment {
        // Sealed: a read-only copy whose hash our chain records.
        let dir = sealed.parent().expect("has a parent");
        std::fs::create_dir_all(dir).map_err(|e| format!("{}: {e}", dir.display()))?;
        if sealed.exists() {
            let _ = std::fs::remove_file(&tmp);
            return Err(format!(
                "{} exists: this MVP log was migrated already",
                sealed.display()
            ));
        }
        let orig = p.audit.as_ref().expect("segment has a path");
        let bytes = read_regular(orig, MAX_SEGMENT_BYTES)?;
        if aiops_sys::sha256_hex(&bytes) != seg["sha256"] {
            return Err(format!("{} changed while migrating", orig.display()));
        }
        aiops_sys::write_file_mode(&sealed, &bytes, 0o440)
            .map_err(|e| format!("{}: {e}", sealed.display()))?;
        std::fs::File::open(&sealed)
            .and_then(|f| f.sync_all())
            .map_err(|e| format!("{}: {e}", sealed.display()))?;
        let mut rec = serde_json::Map::new();
        rec.insert("event".into(), "prior_segment".into());
        rec.insert("source".into(), "run_action.py".into());
        rec.insert("sealed_path".into(), json!(sealed));
        for k in [
            "sha256",
            "bytes",
            "records",
            "first_ts",
            "last_ts",
            "original_path",
        ] {
            rec.insert(k.into(), seg[k].clone());
        }
        let at = aiops_audit::AuditLog::new(&audit_log)
            .append(rec)
            .map_err(|e| e.to_string())?;
        report["prior_segment"]["record"] = json!({"seq": at.seq, "hash": at.hash});
    }
    std::fs::rename(&tmp, config).map_err(|e| format!("{}: {e}", config.display()))?;
    Ok(report)
}

/// Runs `aiops migrate` and prints its report.
pub fn cmd(config: &Path, args: MigrateArgs) -> std::process::ExitCode {
    match migrate(config, &args) {
        Ok(r) => {
            let _ = crate::output::json(&r);
            std::process::ExitCode::SUCCESS
        }
        Err(e) => {
            let _ = crate::output::json(&json!({"status": "error", "message": e}));
            std::process::ExitCode::FAILURE
        }
    }
}
