//! A self-contained local lab: PKI, controller config, N agents on loopback.

use std::net::{IpAddr, SocketAddr};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use aiops_certs::pki::{self, PkiDir};
use aiops_policy::Mode;

/// Options of `aiops lab init`.
#[derive(Debug, Clone)]
pub struct LabSpec {
    /// Lab directory.
    pub dir: PathBuf,
    /// Number of agents (srv1..srvN).
    pub agents: u16,
    /// Port of srv1; srvK listens on base+K-1.
    pub base_port: u16,
    /// Lab or production policy.
    pub mode: Mode,
    /// Replace an existing lab.
    pub force: bool,
}

/// Lab errors, as text for the CLI.
pub type LabResult<T> = Result<T, String>;

fn io<E: std::fmt::Display>(what: &Path) -> impl FnOnce(E) -> String + '_ {
    move |e| format!("{}: {e}", what.display())
}

/// Writes `DIR/config.yml`, `DIR/pki/`, `DIR/agents/srvK/{agent.yml,policy.yml}`.
/// Writes the lab. Returns notes for the operator (e.g. ports that fall in
/// the kernel's ephemeral range). `agents` may be 0: a controller-only lab,
/// to enrol external targets into (`aiops certs bundle`, `aiops targets add`).
pub fn init(spec: &LabSpec) -> LabResult<Vec<String>> {
    if u32::from(spec.base_port) + u32::from(spec.agents) > 65536 {
        return Err("ports past 65535".into());
    }
    let mut notes = Vec::new();
    if spec.agents > 0
        && let Some((lo, hi)) = ephemeral_range()
    {
        let last = u32::from(spec.base_port) + u32::from(spec.agents) - 1;
        if u32::from(spec.base_port) <= hi && last >= lo {
            notes.push(format!(
                "ports {}-{last} overlap the kernel's ephemeral port range {lo}-{hi} \
                 (/proc/sys/net/ipv4/ip_local_port_range): an outgoing connection may hold one \
                 when `aiops lab up` starts an agent; choose --port below {lo} to avoid it",
                spec.base_port
            ));
        }
    }
    let config_path = spec.dir.join("config.yml");
    if config_path.exists() && !spec.force {
        return Err(format!(
            "{} exists; pass --force to replace the lab",
            config_path.display()
        ));
    }
    std::fs::create_dir_all(spec.dir.join("agents")).map_err(io(&spec.dir))?;
    let dir = std::fs::canonicalize(&spec.dir).map_err(io(&spec.dir))?;
    let pki = PkiDir::new(dir.join("pki"));
    let summary = pki::init(&pki, pki::CONTROLLER_IDENTITY, true).map_err(|e| e.to_string())?;
    // In a lab one account plays every role, so the controller can read the
    // approver key; production separates them (see README, approvals).
    let approver_pub =
        pki::init_approver_key(&pki.approver_key(), true).map_err(|e| e.to_string())?;
    let (mode, unknown) = match spec.mode {
        Mode::Lab => ("lab", "approval_required"),
        Mode::Production => ("production", "reject"),
    };
    let names: Vec<String> = (1..=spec.agents).map(|k| format!("srv{k}")).collect();
    let mut targets = String::new();
    for (k, name) in names.iter().enumerate() {
        let port = spec.base_port + u16::try_from(k).map_err(|e| e.to_string())?;
        targets.push_str(&format!(
            "  {name}:\n    address: 127.0.0.1:{port}\n    labels:\n      env: lab\n"
        ));
        let ip: IpAddr = "127.0.0.1".parse().expect("literal");
        pki::issue_agent(&pki, name, &[], &[ip]).map_err(|e| e.to_string())?;
        let agent_dir = dir.join("agents").join(name);
        std::fs::create_dir_all(&agent_dir).map_err(io(&agent_dir))?;
        let agent_yml = format!(
            "# aiops agent {name} (lab) - written by `aiops lab init`\n\
             name: {name}\n\
             listen: 127.0.0.1:{port}\n\
             # A lab agent may run as root; a production agent refuses to.\n\
             lab: true\n\
             tls:\n  ca: ../../pki/ca.pem\n  cert: ../../pki/agents/{name}.pem\n  key: ../../pki/agents/{name}.key\n\
             controller:\n  identity: {identity}\n  signing_key: \"{key}\"\n\
             approver_keys: [\"{approver_pub}\"]\n\
             policy_file: policy.yml\n\
             state_dir: state\n\
             audit_log: audit.jsonl\n",
            identity = summary.controller_identity,
            key = summary.signing_public_key,
        );
        write(&agent_dir.join("agent.yml"), &agent_yml)?;
        write(
            &agent_dir.join("policy.yml"),
            &format!(
                "# the agent's own policy: it re-checks every request with it\nmode: {mode}\nunknown_default: {unknown}\n"
            ),
        )?;
    }
    let config = format!(
        "# aiops controller (lab) - written by `aiops lab init`\n\
         policy:\n  mode: {mode}\n  unknown_default: {unknown}\n\
         pki_dir: pki\n\
         audit_log: audit.jsonl\n\
         runtime_dir: runtime\n\
         defaults:\n  timeout_secs: 30\n  output_cap_bytes: 65536\n  request_ttl_secs: 60\n  approval_ttl_secs: 900\n\
         approvals:\n  approvers: [{approvers}]\n  approver_key: pki/approver.key\n\
         {targets}\
         {groups}",
        targets = if targets.is_empty() {
            "targets: {}\n".to_string()
        } else {
            format!("targets:\n{targets}")
        },
        groups = if names.is_empty() {
            "groups: {}\n".to_string()
        } else {
            format!("groups:\n  lab: [{}]\n", names.join(", "))
        },
        approvers = caller_account(),
    );
    write(&config_path, &config)?;
    Ok(notes)
}

/// The kernel's ephemeral port range (`ip_local_port_range`), when readable.
fn ephemeral_range() -> Option<(u32, u32)> {
    let text = std::fs::read_to_string("/proc/sys/net/ipv4/ip_local_port_range").ok()?;
    let mut it = text.split_whitespace().map(|w| w.parse::<u32>().ok());
    Some((it.next()??, it.next()??))
}

/// The account running this process (the lab's approver).
fn caller_account() -> String {
    nix::unistd::User::from_uid(nix::unistd::getuid())
        .ok()
        .flatten()
        .map(|u| u.name)
        .unwrap_or_else(|| "root".into())
}

fn write(path: &Path, text: &str) -> LabResult<()> {
    aiops_sys::write_file_mode(path, text.as_bytes(), 0o640).map_err(io(path))
}

fn agent_dirs(dir: &Path) -> LabResult<Vec<PathBuf>> {
    let agents = dir.join("agents");
    let mut out: Vec<PathBuf> = std::fs::read_dir(&agents)
        .map_err(io(&agents))?
        .flatten()
        .map(|e| e.path())
        .filter(|p| p.join("agent.yml").exists())
        .collect();
    out.sort_by_key(|p| {
        let name = p
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        (name.len(), name)
    });
    Ok(out)
}

/// The `aiops-agent` binary: `AIOPS_AGENT_BIN`, next to this executable, or on `PATH`.
pub fn agent_binary() -> PathBuf {
    if let Some(p) = std::env::var_os("AIOPS_AGENT_BIN") {
        return PathBuf::from(p);
    }
    if let Ok(exe) = std::env::current_exe()
        && let Some(dir) = exe.parent()
    {
        let p = dir.join("aiops-agent");
        if p.exists() {
            return p;
        }
    }
    PathBuf::from("aiops-agent")
}

fn pid_alive(pid: i32) -> bool {
    nix::sys::signal::kill(nix::unistd::Pid::from_raw(pid), None).is_ok()
        && !std::fs::read_to_string(format!("/proc/{pid}/stat")).is_ok_and(|s| {
            s.rsplit(')')
                .next()
                .is_some_and(|r| r.trim_start().starts_with('Z'))
        })
}

fn read_pid(agent_dir: &Path) -> Option<i32> {
    std::fs::read_to_string(agent_dir.join("agent.pid"))
        .ok()?
        .trim()
        .parse()
        .ok()
}

fn listen_addr(agent_dir: &Path) -> LabResult<SocketAddr> {
    let cfg = aiops_agent_listen(&agent_dir.join("agent.yml"))?;
    Ok(cfg)
}

fn aiops_agent_listen(path: &Path) -> LabResult<SocketAddr> {
    #[derive(serde::Deserialize)]
    struct Listen {
        listen: SocketAddr,
    }
    let text = std::fs::read_to_string(path).map_err(io(path))?;
    // Only `listen` is needed here; the agent validates the whole file itself.
    let v: serde_yaml::Value = serde_yaml::from_str(&text).map_err(io(path))?;
    let l: Listen = serde_yaml::from_value(v).map_err(io(path))?;
    Ok(l.listen)
}

/// Starts every lab agent that is not running; waits until each accepts connections.
/// Starts every lab agent that is not running. All or nothing: when one
/// cannot start (its port is taken), the agents this call started are
/// stopped again before the error is returned.
pub fn up(dir: &Path) -> LabResult<Vec<String>> {
    let mut started: Vec<(String, PathBuf)> = Vec::new();
    match up_each(dir, &mut started) {
        Ok(()) => Ok(started.into_iter().map(|(name, _)| name).collect()),
        Err(e) => {
            let stopped: Vec<String> = started
                .iter()
                .filter(|(_, agent_dir)| stop(agent_dir))
                .map(|(name, _)| name.clone())
                .collect();
            Err(if stopped.is_empty() {
                e
            } else {
                format!(
                    "{e}\nstopped the agents this call had started: {}",
                    stopped.join(", ")
                )
            })
        }
    }
}

fn up_each(dir: &Path, started: &mut Vec<(String, PathBuf)>) -> LabResult<()> {
    use std::os::unix::process::CommandExt;
    let bin = agent_binary();
    for agent_dir in agent_dirs(dir)? {
        let name = agent_dir
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        if read_pid(&agent_dir).is_some_and(pid_alive) {
            continue;
        }
        let addr = listen_addr(&agent_dir)?;
        // A port someone else holds would also answer the readiness check
        // below: refuse it before starting anything on it.
        if let Err(e) = std::net::TcpListener::bind(addr) {
            return Err(format!("agent {name} cannot listen on {addr}: {e}"));
        }
        let log_path = agent_dir.join("agent.log");
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&log_path)
            .map_err(io(&log_path))?;
        let log2 = log.try_clone().map_err(io(&log_path))?;
        let child = std::process::Command::new(&bin)
            .arg("--config")
            .arg(agent_dir.join("agent.yml"))
            .stdin(std::process::Stdio::null())
            .stdout(log)
            .stderr(log2)
            .process_group(0)
            .spawn()
            .map_err(|e| format!("{}: {e}", bin.display()))?;
        let pid = child.id();
        // Reap it later from nobody: the agent outlives this process by design.
        std::mem::forget(child);
        write(&agent_dir.join("agent.pid"), &format!("{pid}\n"))?;
        let start = Instant::now();
        loop {
            if std::net::TcpStream::connect_timeout(&addr, Duration::from_millis(200)).is_ok() {
                break;
            }
            let pid = i32::try_from(pid).unwrap_or(0);
            if !pid_alive(pid) || start.elapsed() > Duration::from_secs(15) {
                stop(&agent_dir);
                let log = std::fs::read_to_string(&log_path).unwrap_or_default();
                let tail: Vec<&str> = log.lines().rev().take(5).collect();
                return Err(format!(
                    "agent {name} did not start listening on {addr}; last log lines:\n{}",
                    tail.into_iter().rev().collect::<Vec<_>>().join("\n")
                ));
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        started.push((name, agent_dir));
    }
    Ok(())
}

/// Stops the agent of `agent_dir` (TERM, then KILL after 5 s) and removes
/// its pid file; true when one was running.
fn stop(agent_dir: &Path) -> bool {
    use nix::sys::signal::{Signal, kill};
    let Some(pid) = read_pid(agent_dir) else {
        return false;
    };
    let running = pid > 1 && pid_alive(pid);
    if running {
        let p = nix::unistd::Pid::from_raw(pid);
        let _ = kill(p, Signal::SIGTERM);
        let start = Instant::now();
        while pid_alive(pid) && start.elapsed() < Duration::from_secs(5) {
            std::thread::sleep(Duration::from_millis(20));
        }
        if pid_alive(pid) {
            let _ = kill(p, Signal::SIGKILL);
        }
    }
    let _ = std::fs::remove_file(agent_dir.join("agent.pid"));
    running
}

/// Stops every lab agent (TERM, then KILL after 5 s).
pub fn down(dir: &Path) -> LabResult<Vec<String>> {
    let mut stopped = Vec::new();
    for agent_dir in agent_dirs(dir)? {
        if stop(&agent_dir) {
            stopped.push(
                agent_dir
                    .file_name()
                    .map(|n| n.to_string_lossy().into_owned())
                    .unwrap_or_default(),
            );
        }
    }
    Ok(stopped)
}
