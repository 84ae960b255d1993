//! Shared support for the whole-system tests: the real `aiops` and
//! `aiops-agent` binaries, a lab on loopback ports, and helpers to run
//! requests and read audit logs.
#![forbid(unsafe_code)]

use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::sync::OnceLock;
use std::sync::atomic::{AtomicU16, Ordering};

use serde_json::Value;

pub mod botframework;
pub mod mcp;
pub mod nspawn;
pub mod rsyslog;

/// Directory holding the freshly built binaries.
pub fn bin_dir() -> &'static Path {
    static DIR: OnceLock<PathBuf> = OnceLock::new();
    DIR.get_or_init(|| {
        // Build the shipping binaries (a no-op when they are fresh) so tests never
        // run stale ones; cargo sets CARGO for test processes.
        let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
        let profile_release = std::env::current_exe()
            .ok()
            .is_some_and(|p| p.components().any(|c| c.as_os_str() == "release"));
        let mut cmd = Command::new(cargo);
        cmd.args([
            "build",
            "--quiet",
            "-p",
            "aiops-controller",
            "-p",
            "aiops-agent",
            "-p",
            "aiops-exec",
            "--bins",
        ]);
        if profile_release {
            cmd.arg("--release");
        }
        let status = cmd
            .current_dir(env!("CARGO_MANIFEST_DIR"))
            .status()
            .expect("cargo runs");
        assert!(status.success(), "building the binaries failed");
        // target/<profile>/deps/<test> -> target/<profile>
        let exe = std::env::current_exe().expect("current exe");
        exe.parent()
            .and_then(Path::parent)
            .expect("target dir")
            .to_path_buf()
    })
}

/// Path of the `aiops` binary.
pub fn aiops_bin() -> PathBuf {
    bin_dir().join("aiops")
}

/// Path of the `aiops-exec` binary (the root executor).
pub fn exec_bin() -> PathBuf {
    bin_dir().join("aiops-exec")
}

/// Path of the `aiops-agent` binary.
pub fn agent_bin() -> PathBuf {
    bin_dir().join("aiops-agent")
}

/// Returns a base port such that `n` consecutive ports on 127.0.0.1 are free now.
/// The ports stay below the kernel's ephemeral range (32768 and up by default),
/// where other tests' outgoing connections would take them between this check
/// and the agent's bind.
pub fn free_ports(n: u16) -> u16 {
    const LOW: u32 = 20000;
    const EPHEMERAL: u32 = 32768;
    static NEXT: AtomicU16 = AtomicU16::new(0);
    let pid_part = std::process::id() % 200;
    loop {
        let slot = u32::from(NEXT.fetch_add(n + 1, Ordering::SeqCst));
        let span = EPHEMERAL - LOW - u32::from(n);
        let base = LOW + (pid_part * 61 + slot) % span;
        let Ok(base) = u16::try_from(base) else {
            continue;
        };
        let all_free =
            (base..base + n).all(|p| std::net::TcpListener::bind(("127.0.0.1", p)).is_ok());
        if all_free {
            return base;
        }
    }
}

/// A lab in a temporary directory; its agents are stopped on drop.
pub struct Lab {
    /// Keeps the directory alive.
    pub tmp: tempfile::TempDir,
    /// Lab directory.
    pub dir: PathBuf,
    /// Port of srv1.
    pub base_port: u16,
    /// Number of agents.
    pub agents: u16,
}

impl Lab {
    /// `aiops lab init` with `agents` agents in `mode` (`lab` or `production`), not started.
    pub fn init(agents: u16, mode: &str) -> Lab {
        let tmp = tempfile::Builder::new()
            .prefix("aiops-e2e-")
            .tempdir()
            .expect("tempdir");
        let dir = tmp.path().join("lab");
        let base_port = free_ports(agents);
        let out = Command::new(aiops_bin())
            .args(["lab", "init", "--dir"])
            .arg(&dir)
            .args([
                "--agents",
                &agents.to_string(),
                "--port",
                &base_port.to_string(),
                "--mode",
                mode,
            ])
            .output()
            .expect("aiops lab init runs");
        assert!(
            out.status.success(),
            "lab init: {}",
            String::from_utf8_lossy(&out.stdout)
        );
        Lab {
            tmp,
            dir,
            base_port,
            agents,
        }
    }

    /// Initialises and starts a lab.
    pub fn start(agents: u16, mode: &str) -> Lab {
        let lab = Lab::init(agents, mode);
        lab.up();
        lab
    }

    /// `aiops lab up`.
    pub fn up(&self) {
        let out = Command::new(aiops_bin())
            .args(["lab", "up", "--dir"])
            .arg(&self.dir)
            .output()
            .expect("aiops lab up runs");
        assert!(
            out.status.success(),
            "lab up: {}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
    }

    /// `aiops lab down`.
    pub fn down(&self) {
        let _ = Command::new(aiops_bin())
            .args(["lab", "down", "--dir"])
            .arg(&self.dir)
            .output();
    }

    /// The controller config.
    pub fn config(&self) -> PathBuf {
        self.dir.join("config.yml")
    }

    /// An agent's directory.
    pub fn agent_dir(&self, name: &str) -> PathBuf {
        self.dir.join("agents").join(name)
    }

    /// Appends YAML text to a file of the lab (e.g. an agent's policy.yml).
    pub fn append(&self, rel: &str, text: &str) {
        use std::io::Write;
        let mut f = std::fs::OpenOptions::new()
            .append(true)
            .open(self.dir.join(rel))
            .expect("lab file");
        f.write_all(text.as_bytes()).expect("append");
    }

    /// Replaces `from` with `to` in a lab file.
    pub fn edit(&self, rel: &str, from: &str, to: &str) {
        let p = self.dir.join(rel);
        let text = std::fs::read_to_string(&p).expect("lab file");
        assert!(text.contains(from), "{rel} does not contain {from:?}");
        std::fs::write(&p, text.replacen(from, to, 1)).expect("write lab file");
    }

    /// Runs `aiops run` with `stdin`; returns (parsed JSON answer, exit code).
    pub fn run(&self, stdin: &[u8]) -> (Value, i32) {
        self.run_with(stdin, &[])
    }

    /// Like [`Lab::run`] with extra environment variables.
    pub fn run_with(&self, stdin: &[u8], env: &[(&str, &str)]) -> (Value, i32) {
        let out = run_cmd(
            &aiops_bin(),
            &["run"],
            stdin,
            &[("AIOPS_CONFIG", self.config().to_str().unwrap())],
            env,
        );
        (parse_answer(&out), out.status.code().unwrap_or(-1))
    }

    /// Runs `aiops ARGS` with this lab's config.
    pub fn aiops(&self, args: &[&str]) -> Output {
        run_cmd(
            &aiops_bin(),
            args,
            b"",
            &[("AIOPS_CONFIG", self.config().to_str().unwrap())],
            &[],
        )
    }

    /// Records of the controller audit log.
    pub fn audit(&self) -> Vec<Value> {
        read_jsonl(&self.dir.join("audit.jsonl"))
    }

    /// Records of an agent's audit log.
    pub fn agent_audit(&self, name: &str) -> Vec<Value> {
        read_jsonl(&self.agent_dir(name).join("audit.jsonl"))
    }

    /// PID of a running lab agent.
    pub fn agent_pid(&self, name: &str) -> i32 {
        std::fs::read_to_string(self.agent_dir(name).join("agent.pid"))
            .expect("pid file")
            .trim()
            .parse()
            .expect("pid")
    }

    /// Address of an agent.
    pub fn agent_addr(&self, k: u16) -> String {
        format!("127.0.0.1:{}", self.base_port + k - 1)
    }
}

impl Drop for Lab {
    fn drop(&mut self) {
        self.down();
    }
}

/// Runs `bin args` with `stdin`, the given environment, and returns its output.
pub fn run_cmd(
    bin: &Path,
    args: &[&str],
    stdin: &[u8],
    env: &[(&str, &str)],
    more_env: &[(&str, &str)],
) -> Output {
    use std::io::Write;
    let mut child = Command::new(bin)
        .args(args)
        .envs(env.iter().copied())
        .envs(more_env.iter().copied())
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn");
    let mut pipe = child.stdin.take().expect("stdin");
    let data = stdin.to_vec();
    // Write from a thread: the child may stop reading early (oversized input).
    let writer = std::thread::spawn(move || {
        let _ = pipe.write_all(&data);
    });
    let out = child.wait_with_output().expect("wait");
    let _ = writer.join();
    out
}

/// Parses the one JSON object a command printed; panics with its output otherwise.
pub fn parse_answer(out: &Output) -> Value {
    let text = String::from_utf8_lossy(&out.stdout);
    let mut lines = text.lines().filter(|l| !l.trim().is_empty());
    let first = lines.next().unwrap_or_else(|| {
        panic!(
            "no output; stderr: {}",
            String::from_utf8_lossy(&out.stderr)
        )
    });
    assert!(
        lines.next().is_none(),
        "more than one line on stdout: {text}"
    );
    serde_json::from_str(first).unwrap_or_else(|e| panic!("not JSON ({e}): {first}"))
}

/// Reads a JSONL file (empty when missing).
pub fn read_jsonl(path: &Path) -> Vec<Value> {
    std::fs::read_to_string(path)
        .unwrap_or_default()
        .lines()
        .map(|l| serde_json::from_str(l).expect("audit line is JSON"))
        .collect()
}

/// JSON request text.
pub fn request(target: &str, command: &str) -> Vec<u8> {
    serde_json::to_vec(&serde_json::json!({
        "target": target, "command": command, "requester": "e2e", "reason": "test",
    }))
    .expect("json")
}

/// Processes whose command line contains all of `needles` (read from /proc).
pub fn processes_matching(needles: &[&str]) -> Vec<i32> {
    let mut out = Vec::new();
    for entry in std::fs::read_dir("/proc").into_iter().flatten().flatten() {
        let Ok(pid) = entry.file_name().to_string_lossy().parse::<i32>() else {
            continue;
        };
        let Ok(cmdline) = std::fs::read(format!("/proc/{pid}/cmdline")) else {
            continue;
        };
        let cmdline = String::from_utf8_lossy(&cmdline).replace('\0', " ");
        if needles.iter().all(|n| cmdline.contains(n)) {
            out.push(pid);
        }
    }
    out
}

/// Peak resident memory (VmHWM) of a process, in KiB.
pub fn peak_rss_kib(pid: i32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).expect("proc status");
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .expect("VmHWM")
}
