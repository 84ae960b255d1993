//! Running what was verified: one privileged stage (the executor replaces
//! itself with the program), or a whole approved plan (argv pipelines with
//! `&& || ;`, the plan's redirects, a clean environment, one deadline), in
//! a transient systemd unit when systemd is PID 1 so that the agent unit's
//! sandbox does not apply to it.

use std::os::fd::{AsFd, OwnedFd};
use std::os::unix::process::{CommandExt, ExitStatusExt};
use std::path::{Component, Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use aiops_policy::{Connector, Plan, Redirect, Stage};

use crate::sandbox::{Account, Confinement, Limits};

/// Directories programs are resolved in; `$PATH` is never consulted.
pub const PATH_DIRS: [&str; 4] = ["/usr/sbin", "/usr/bin", "/sbin", "/bin"];

/// The whole environment a command gets.
pub const CLEAN_ENV: [(&str, &str); 8] = [
    ("PATH", "/usr/sbin:/usr/bin:/sbin:/bin"),
    ("LANG", "C.UTF-8"),
    ("PAGER", "cat"),
    ("SYSTEMD_PAGER", "cat"),
    ("GIT_PAGER", "cat"),
    ("SYSTEMD_PAGERSECURE", "1"),
    ("LESSSECURE", "1"),
    ("SYSTEMD_COLORS", "0"),
];

/// Lexical normalisation: `.` dropped, `..` pops (never above `/`).
pub fn normalize(path: &Path) -> PathBuf {
    let mut out = PathBuf::from("/");
    for c in path.components() {
        match c {
            Component::Normal(p) => out.push(p),
            Component::ParentDir => {
                out.pop();
            }
            _ => {}
        }
    }
    out
}

/// Finds the program for `argv0` in [`PATH_DIRS`] (an absolute path must lie in one of them).
pub fn resolve(argv0: &str) -> Result<PathBuf, String> {
    use std::os::unix::fs::PermissionsExt;
    let executable = |p: &Path| {
        std::fs::metadata(p).is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
    };
    if argv0.contains('/') {
        let p = Path::new(argv0);
        let in_dirs = p.is_absolute()
            && normalize(p) == p
            && p.parent()
                .is_some_and(|d| PATH_DIRS.iter().any(|x| Path::new(x) == d));
        if !in_dirs {
            return Err(format!("{argv0}: not under {}", PATH_DIRS.join(":")));
        }
        return if executable(p) {
            Ok(p.to_path_buf())
        } else {
            Err(format!("{argv0}: command not found"))
        };
    }
    PATH_DIRS
        .iter()
        .map(|d| Path::new(d).join(argv0))
        .find(|p| executable(p))
        .ok_or_else(|| format!("{argv0}: command not found"))
}

/// Names in a directory (for glob expansion), at most 10,000; none when unreadable.
pub fn list_dir(dir: &str) -> Vec<String> {
    std::fs::read_dir(dir)
        .map(|it| {
            it.flatten()
                .take(10_000)
                .map(|e| e.file_name().to_string_lossy().into_owned())
                .collect()
        })
        .unwrap_or_default()
}

/// The directory pipeline `upto` runs in: earlier single-stage `cd`s applied
/// the way the agent applies them.
pub fn cwd_for(plan: &Plan, upto: usize) -> PathBuf {
    let mut cwd = PathBuf::from("/");
    for p in plan.pipelines.iter().take(upto) {
        if let [st] = p.stages.as_slice()
            && st.argv.first().map(String::as_str) == Some("cd")
            && st.argv.len() == 2
        {
            let t = normalize(&cwd.join(&st.argv[1]));
            if t.is_dir() {
                cwd = t;
            }
        }
    }
    cwd
}

fn command_for(stage: &Stage, cwd: &Path) -> Result<Command, String> {
    let argv0 = stage.argv.first().ok_or("empty stage")?;
    let mut cmd = Command::new(resolve(argv0)?);
    cmd.args(&stage.argv[1..])
        .env_clear()
        .envs(CLEAN_ENV)
        .current_dir(cwd);
    Ok(cmd)
}

/// Where stdout or stderr of a stage goes.
enum Sink {
    Fd(OwnedFd),
    Null,
}

impl Sink {
    fn dup(&self) -> Result<Sink, String> {
        Ok(match self {
            Sink::Fd(f) => Sink::Fd(f.try_clone().map_err(|e| e.to_string())?),
            Sink::Null => Sink::Null,
        })
    }
    fn stdio(self) -> Stdio {
        match self {
            Sink::Fd(f) => Stdio::from(f),
            Sink::Null => Stdio::null(),
        }
    }
}

fn own_fd(fd: impl AsFd) -> Result<OwnedFd, String> {
    fd.as_fd().try_clone_to_owned().map_err(|e| e.to_string())
}

/// Applies the stage's redirects in the order written; `stdout` is where
/// its output goes otherwise, stderr goes to ours. A `< FILE` is not opened
/// here (as root): the path is returned for [`Confinement::stdin_file`], so
/// the stage's own process opens it after the switch to `run_as`.
fn redirect(
    cmd: &mut Command,
    stage: &Stage,
    cwd: &Path,
    stdout: OwnedFd,
) -> Result<Option<PathBuf>, String> {
    let mut out = Sink::Fd(stdout);
    let mut err = Sink::Fd(own_fd(std::io::stderr())?);
    let mut stdin_file = None;
    for r in &stage.redirects {
        match r {
            Redirect::StdoutToNull => out = Sink::Null,
            Redirect::StderrToNull => err = Sink::Null,
            Redirect::StderrToStdout => err = out.dup()?,
            Redirect::StdinFromFile(p) => {
                cmd.stdin(Stdio::null());
                stdin_file = Some(cwd.join(p));
            }
        }
    }
    cmd.stdout(out.stdio()).stderr(err.stdio());
    Ok(stdin_file)
}

const CAP_NET_ADMIN: u32 = 12;
const CAP_NET_RAW: u32 = 13;
const CAP_SYSLOG: u32 = 34;

/// The capabilities a privileged read of `argv0` runs without. The agent unit's bounding
/// set has `CAP_NET_ADMIN` (the firewall and conntrack reads: the kernel asks for it to
/// *list* rules), `CAP_SYSLOG` (`dmesg`: reading the kernel log) and `CAP_NET_RAW`
/// (without it in the bounding set the kernel refuses to exec `ping`, whose file
/// capability it cannot grant, even for `aiops-run`); only those programs keep the one they
/// need, every other privileged read runs without all three, so a classifier mistake in
/// `cat` or `journalctl` cannot change the firewall or clear the kernel log.
pub fn withheld_capabilities(argv0: &str) -> u64 {
    let name = Path::new(argv0)
        .file_name()
        .and_then(|n| n.to_str())
        .unwrap_or("");
    let keep: u64 = match name {
        "iptables" | "ip6tables" | "iptables-save" | "ip6tables-save" | "iptables-nft"
        | "ip6tables-nft" | "iptables-legacy" | "ip6tables-legacy" | "nft" | "ufw"
        | "conntrack" => 1 << CAP_NET_ADMIN,
        "dmesg" => 1 << CAP_SYSLOG,
        _ => 0,
    };
    ((1 << CAP_NET_ADMIN) | (1 << CAP_NET_RAW) | (1 << CAP_SYSLOG)) & !keep
}

/// Replaces this process with one privileged stage: root, the limits and
/// `no_new_privs`. No Landlock domain here: a domain also denies ptrace-mode
/// access to every process outside it, which is what `ss -p`, `lsof` and
/// `ls -l /proc/N/fd` need; the compiled policy and the agent unit's mount
/// protections are what keep a privileged read from writing (SECURITY.md).
pub fn exec_stage(plan: &Plan, p: usize, s: usize, limits: Limits) -> String {
    let Some(stage) = plan.pipelines.get(p).and_then(|pl| pl.stages.get(s)) else {
        return "no such stage".into();
    };
    let cwd = cwd_for(plan, p);
    let mut cmd = match command_for(stage, &cwd) {
        Ok(c) => c,
        Err(e) => return e,
    };
    let stdin_file =
        match own_fd(std::io::stdout()).and_then(|o| redirect(&mut cmd, stage, &cwd, o)) {
            Ok(f) => f,
            Err(e) => return e,
        };
    Confinement {
        limits: Some(limits),
        no_new_privs: true,
        withhold_capabilities: withheld_capabilities(&stage.argv[0]),
        die_with_parent: true,
        stdin_file: stdin_file.as_deref(),
        ..Confinement::default()
    }
    .install(&mut cmd);
    // Only returns on failure.
    cmd.exec().to_string()
}

/// What an approved plan run ended with.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PlanEnd {
    /// Status of the last pipeline that ran (128+N for signal N).
    pub code: i32,
    /// The deadline passed.
    pub timed_out: bool,
}

/// Runs an approved plan here (no systemd): every stage as `run_as` (root
/// when `None`), with the limits, each pipeline in its own process group,
/// killed at the deadline.
pub fn run_plan(
    plan: &Plan,
    command: &str,
    run_as: Option<Account>,
    limits: Limits,
    timeout: Duration,
) -> PlanEnd {
    let deadline = Instant::now() + timeout;
    // A SIGTERM (the agent's deadline, relayed by sudo) stops the plan's
    // process groups too, not only this process.
    crate::sandbox::block_stop_signals();
    let shell_stage;
    let pipelines: Vec<(Connector, &[Stage])> = if plan.shell {
        // A shell plan's own `sudo` never prompts: it is always `sudo -n`.
        let script = format!("sudo() {{ /usr/bin/sudo -n \"$@\"; }}\n{command}");
        shell_stage = [Stage {
            argv: vec![
                "/bin/bash".into(),
                "--noprofile".into(),
                "--norc".into(),
                "-c".into(),
                script,
            ],
            privileged: true,
            redirects: Vec::new(),
        }];
        vec![(Connector::Seq, &shell_stage[..])]
    } else {
        plan.pipelines
            .iter()
            .map(|p| (p.connector, p.stages.as_slice()))
            .collect()
    };
    let mut cwd = PathBuf::from("/");
    let mut status = 0;
    for (connector, stages) in pipelines {
        match connector {
            Connector::And if status != 0 => continue,
            Connector::Or if status == 0 => continue,
            _ => {}
        }
        if let [st] = stages
            && st.argv.first().map(String::as_str) == Some("cd")
        {
            let t = st.argv.get(1).map(|d| normalize(&cwd.join(d)));
            match t {
                Some(t) if st.argv.len() == 2 && t.is_dir() => {
                    cwd = t;
                    status = 0;
                }
                _ => {
                    eprintln!("cd: cannot change directory");
                    status = 1;
                }
            }
            continue;
        }
        match run_pipeline(stages, &cwd, run_as, limits, deadline) {
            Ok(PlanEnd { code, timed_out }) => {
                status = code;
                if timed_out {
                    return PlanEnd {
                        code: 124,
                        timed_out: true,
                    };
                }
            }
            Err(e) => {
                eprintln!("aiops-exec: {e}");
                status = 127;
            }
        }
    }
    PlanEnd {
        code: status,
        timed_out: false,
    }
}

fn run_pipeline(
    stages: &[Stage],
    cwd: &Path,
    run_as: Option<Account>,
    limits: Limits,
    deadline: Instant,
) -> Result<PlanEnd, String> {
    let mut children: Vec<Child> = Vec::new();
    let mut pgid = 0i32;
    let mut prev: Option<std::io::PipeReader> = None;
    let last = stages.len().saturating_sub(1);
    let kill = |pgid: i32, sig: i32| crate::sandbox::kill_group(pgid, sig);
    for (i, stage) in stages.iter().enumerate() {
        let mut next = None;
        let spawned = (|| -> Result<Child, String> {
            let mut cmd = command_for(stage, cwd)?;
            cmd.stdin(match prev.take() {
                Some(o) => Stdio::from(o),
                None => Stdio::null(),
            });
            let out = if i < last {
                let (r, w) = std::io::pipe().map_err(|e| e.to_string())?;
                next = Some(r);
                OwnedFd::from(w)
            } else {
                own_fd(std::io::stdout())?
            };
            let stdin_file = redirect(&mut cmd, stage, cwd, out)?;
            cmd.process_group(pgid);
            Confinement {
                account: run_as,
                limits: Some(limits),
                die_with_parent: true,
                stdin_file: stdin_file.as_deref(),
                ..Confinement::default()
            }
            .install(&mut cmd);
            cmd.spawn().map_err(|e| format!("{}: {e}", stage.argv[0]))
        })();
        match spawned {
            Ok(c) => {
                if pgid == 0 {
                    pgid = i32::try_from(c.id()).unwrap_or(0);
                }
                prev = next;
                children.push(c);
            }
            Err(e) => {
                kill(pgid, libc::SIGKILL);
                for c in &mut children {
                    let _ = c.wait();
                }
                return Err(e);
            }
        }
    }
    drop(prev);
    let mut statuses = vec![None; children.len()];
    let mut timed_out = false;
    let mut term_sent: Option<Instant> = None;
    loop {
        for (c, st) in children.iter_mut().zip(statuses.iter_mut()) {
            if st.is_none()
                && let Ok(Some(s)) = c.try_wait()
            {
                *st = Some(s);
            }
        }
        if statuses.iter().all(Option::is_some) {
            break;
        }
        let now = Instant::now();
        let stop = crate::sandbox::stop_requested();
        if (now >= deadline || stop) && term_sent.is_none() {
            timed_out = true;
            kill(pgid, libc::SIGTERM);
            term_sent = Some(now);
        }
        if term_sent.is_some_and(|t| now >= t + Duration::from_secs(2)) {
            kill(pgid, libc::SIGKILL);
        }
        std::thread::sleep(Duration::from_millis(5));
    }
    kill(pgid, libc::SIGKILL);
    let code = match statuses.last().copied().flatten() {
        Some(s) => s.code().unwrap_or_else(|| 128 + s.signal().unwrap_or(0)),
        None => 0,
    };
    Ok(PlanEnd { code, timed_out })
}

/// `systemd-run` arguments that run this executor's `--inner-run` for an
/// approved command in a transient unit with the limits.
pub fn transient_unit_args(
    exe: &Path,
    config: &Path,
    request_id: &str,
    run_as: &str,
    timeout: Duration,
    limits: Limits,
    command: &str,
) -> Vec<String> {
    let secs = timeout.as_secs().max(1);
    let mut a: Vec<String> = [
        "--pipe",
        "--wait",
        "--collect",
        "--quiet",
        "--service-type=exec",
    ]
    .iter()
    .map(|s| s.to_string())
    .collect();
    a.push(format!("--unit=aiops-exec-{request_id}"));
    a.push(format!("--description=aiops approved command {request_id}"));
    if limits.memory_mb > 0 {
        a.push(format!("--property=MemoryMax={}M", limits.memory_mb));
    }
    if limits.processes > 0 {
        a.push(format!("--property=TasksMax={}", limits.processes));
    }
    a.push(format!("--property=RuntimeMaxSec={}", secs + 5));
    a.push("--".into());
    a.push(exe.display().to_string());
    a.extend([
        "--inner-run".to_string(),
        config.display().to_string(),
        timeout.as_millis().to_string(),
        run_as.to_string(),
        command.to_string(),
    ]);
    a
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Effective and permitted capability masks of `program` run as a privileged read of
    /// `argv0` would be (this test process's capabilities, minus what is withheld).
    fn caps_of_a_privileged_read(argv0: &str) -> (u64, u64) {
        let mut cmd = Command::new("/bin/grep");
        cmd.args(["-E", "^Cap(Eff|Prm):", "/proc/self/status"]);
        Confinement {
            no_new_privs: true,
            withhold_capabilities: withheld_capabilities(argv0),
            ..Confinement::default()
        }
        .install(&mut cmd);
        let out = cmd.output().expect("grep runs");
        let text = String::from_utf8_lossy(&out.stdout).to_string();
        let get = |k: &str| {
            text.lines()
                .find_map(|l| l.strip_prefix(k))
                .map(|v| u64::from_str_radix(v.trim(), 16).expect("hex"))
                .unwrap_or_else(|| panic!("no {k} in {text}"))
        };
        (get("CapEff:"), get("CapPrm:"))
    }

    #[test]
    fn privileged_reads_run_without_net_admin_net_raw_and_syslog_unless_they_need_one() {
        assert_eq!(
            crate::sandbox::euid(),
            0,
            "run as root (scripts/test.sh does): a privileged read starts with root's set"
        );
        let bit = |n: u32| 1u64 << n;
        for argv0 in ["cat", "journalctl", "/usr/bin/lsof", "ss", "grep"] {
            let (eff, prm) = caps_of_a_privileged_read(argv0);
            for n in [CAP_NET_ADMIN, CAP_NET_RAW, CAP_SYSLOG] {
                assert_eq!(eff & bit(n), 0, "{argv0} holds capability {n}: {eff:x}");
                assert_eq!(
                    prm & bit(n),
                    0,
                    "{argv0} may regain capability {n}: {prm:x}"
                );
            }
            // The rest of root's set stays (reading other users' files and /proc).
            assert_ne!(eff & bit(2), 0, "{argv0} lost CAP_DAC_READ_SEARCH");
        }
        for (argv0, needs, not) in [
            ("iptables", CAP_NET_ADMIN, CAP_SYSLOG),
            ("/usr/sbin/nft", CAP_NET_ADMIN, CAP_SYSLOG),
            ("conntrack", CAP_NET_ADMIN, CAP_NET_RAW),
            ("dmesg", CAP_SYSLOG, CAP_NET_ADMIN),
        ] {
            let (eff, _) = caps_of_a_privileged_read(argv0);
            assert_ne!(eff & bit(needs), 0, "{argv0} lacks capability {needs}");
            assert_eq!(eff & bit(not), 0, "{argv0} holds capability {not}");
        }
    }
}
