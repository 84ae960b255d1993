//! A real target host for the whole-system tests: a Debian bookworm root made by
//! `debootstrap` (cached under `target/nspawn/`), booted with `systemd-nspawn -b`, and a
//! controller outside it. Shared by `target_host.rs` and `runbooks_on_target.rs`.

use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use aiops_certs::pki::PkiDir;
use serde_json::Value;

use crate::{aiops_bin, bin_dir, parse_answer, run_cmd};

/// Packages in the cached root; a change rebuilds the cache.
pub const INCLUDE: &str = "systemd,systemd-sysv,dbus,sudo,nginx,procps";

pub fn workspace() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("workspace")
        .to_path_buf()
}

pub fn nspawn_dir() -> PathBuf {
    workspace().join("target").join("nspawn")
}

pub fn require(tool: &str, hint: &str) {
    let found = std::env::var_os("PATH")
        .map(|p| std::env::split_paths(&p).any(|d| d.join(tool).is_file()))
        .unwrap_or(false)
        || Path::new("/usr/sbin").join(tool).is_file();
    assert!(
        found,
        "prerequisite missing: `{tool}` is not installed ({hint}); scripts/test.sh installs it"
    );
}

pub fn require_root() {
    assert!(
        nix::unistd::geteuid().is_root(),
        "the real-target tests boot containers and need root (scripts/test.sh runs as root)"
    );
}

pub fn text(out: &Output) -> String {
    format!(
        "status {:?}\nstdout: {}\nstderr: {}",
        out.status.code(),
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

/// The cached bookworm root (built once, under an exclusive lock, then reused).
pub fn bookworm_root() -> PathBuf {
    require_root();
    require("debootstrap", "apt-get install debootstrap");
    require("systemd-nspawn", "apt-get install systemd-container");
    let dir = nspawn_dir();
    std::fs::create_dir_all(&dir).expect("target/nspawn");
    let lock_file = std::fs::OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(dir.join(".lock"))
        .expect("lock file");
    let _lock = nix::fcntl::Flock::lock(lock_file, nix::fcntl::FlockArg::LockExclusive)
        .map_err(|(_, e)| e)
        .expect("flock");
    let root = dir.join("bookworm-root");
    let marker = dir.join("bookworm-root.complete");
    if root.join("usr/sbin/nginx").exists()
        && std::fs::read_to_string(&marker).is_ok_and(|m| m.trim() == INCLUDE)
    {
        return root;
    }
    let tmp = dir.join("bookworm-root.tmp");
    let _ = std::fs::remove_dir_all(&tmp);
    let _ = std::fs::remove_file(&marker);
    let log = dir.join("debootstrap.log");
    let started = Instant::now();
    let out = Command::new("debootstrap")
        .args([
            "--variant=minbase",
            &format!("--include={INCLUDE}"),
            "bookworm",
        ])
        .arg(&tmp)
        .stdout(std::fs::File::create(&log).expect("log"))
        .stderr(Stdio::piped())
        .output()
        .expect("debootstrap runs");
    let log_text = std::fs::read_to_string(&log).unwrap_or_default();
    let tail: Vec<&str> = log_text.lines().rev().take(15).collect();
    assert!(
        out.status.success(),
        "debootstrap failed: {}\n{}",
        String::from_utf8_lossy(&out.stderr),
        tail.into_iter().rev().collect::<Vec<_>>().join("\n")
    );
    eprintln!(
        "debootstrap built the bookworm root in {:?}",
        started.elapsed()
    );
    let _ = std::fs::remove_dir_all(&root);
    std::fs::rename(&tmp, &root).expect("rename root");
    std::fs::write(&marker, INCLUDE).expect("marker");
    root
}

/// Both .deb packages, built once per test process from the binaries under test.
pub fn debs() -> &'static (PathBuf, PathBuf) {
    static DEBS: OnceLock<(PathBuf, PathBuf)> = OnceLock::new();
    DEBS.get_or_init(|| {
        let out_dir = nspawn_dir().join(format!("debs-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&out_dir);
        let out = Command::new("bash")
            .arg(workspace().join("packaging/build-debs.sh"))
            .arg("--bin-dir")
            .arg(bin_dir())
            .arg("--out")
            .arg(&out_dir)
            .output()
            .expect("build-debs.sh runs");
        assert!(out.status.success(), "build-debs.sh: {}", text(&out));
        let find = |prefix: &str| {
            std::fs::read_dir(&out_dir)
                .expect("deb dir")
                .flatten()
                .map(|e| e.path())
                .find(|p| {
                    p.file_name()
                        .is_some_and(|n| n.to_string_lossy().starts_with(prefix))
                })
                .unwrap_or_else(|| panic!("no {prefix}*.deb in {}", out_dir.display()))
        };
        (find("aiops-agent_"), find("aiops-controller_"))
    })
}

/// A unique loopback address and a port free on it.
pub fn loopback_endpoint(salt: u32) -> (String, u16) {
    let x = 2 + (std::process::id().wrapping_mul(7).wrapping_add(salt * 13)) % 250;
    let ip = format!("127.0.0.{x}");
    for _ in 0..200 {
        let port = crate::free_ports(1);
        if std::net::TcpListener::bind((ip.as_str(), port)).is_ok() {
            return (ip, port);
        }
    }
    panic!("no free port on {ip}");
}

/// A booted container; SIGTERM to its systemd-nspawn on drop, then its root is removed.
pub struct Container {
    pub name: String,
    pub root: PathBuf,
    nspawn: std::process::Child,
    pub pid1: i32,
    pub log: PathBuf,
}

pub fn children(pid: i32) -> Vec<(i32, String)> {
    let mut out = Vec::new();
    for e in std::fs::read_dir("/proc").into_iter().flatten().flatten() {
        let Ok(p) = e.file_name().to_string_lossy().parse::<i32>() else {
            continue;
        };
        let Ok(stat) = std::fs::read_to_string(format!("/proc/{p}/stat")) else {
            continue;
        };
        let (Some(open), Some(close)) = (stat.find('('), stat.rfind(')')) else {
            continue;
        };
        let comm = stat[open + 1..close].to_string();
        let ppid = stat[close + 1..]
            .split_whitespace()
            .nth(1)
            .and_then(|s| s.parse::<i32>().ok());
        if ppid == Some(pid) {
            out.push((p, comm));
        }
    }
    out
}

impl Container {
    /// Copies the cached root, lets `prepare` edit it, and boots it.
    pub fn boot(tag: &str, prepare: impl FnOnce(&Path)) -> Container {
        Container::boot_with(tag, &[], prepare)
    }

    /// [`Container::boot`] with more `systemd-nspawn` options (e.g. a network namespace
    /// of its own, or capabilities a real host's root has that nspawn withholds).
    pub fn boot_with(tag: &str, nspawn_args: &[&str], prepare: impl FnOnce(&Path)) -> Container {
        let base = bookworm_root();
        let name = format!("aiops-{tag}-{}", std::process::id());
        let root = nspawn_dir().join(format!("run-{name}"));
        let _ = std::fs::remove_dir_all(&root);
        let cp = Command::new("cp")
            .args(["-a", "--reflink=auto"])
            .arg(&base)
            .arg(&root)
            .output()
            .expect("cp runs");
        assert!(cp.status.success(), "copy root: {}", text(&cp));
        // A hostname of its own (proves where `hostname` ran) that resolves (keeps sudo quiet).
        std::fs::write(root.join("etc/hostname"), format!("{name}\n")).expect("hostname");
        let hosts = std::fs::read_to_string(root.join("etc/hosts")).unwrap_or_default();
        std::fs::write(root.join("etc/hosts"), format!("127.0.1.1 {name}\n{hosts}"))
            .expect("hosts");
        prepare(&root);
        let log = nspawn_dir().join(format!("{name}.log"));
        let log_file = std::fs::File::create(&log).expect("log");
        use std::os::unix::process::CommandExt;
        let nspawn = Command::new("systemd-nspawn")
            .args(["-q", "--register=no", "--keep-unit"])
            // systemd-nspawn's own seccomp allowlist (systemd 252) lacks the Landlock
            // system calls; a real host has no such filter, so let the container have them.
            .arg("--system-call-filter=landlock_create_ruleset landlock_add_rule landlock_restrict_self")
            .args(nspawn_args)
            .arg("-D")
            .arg(&root)
            .args(["-M", &name, "-b"])
            .stdin(Stdio::null())
            .stdout(log_file.try_clone().expect("log"))
            .stderr(log_file)
            .process_group(0)
            .spawn()
            .expect("systemd-nspawn starts");
        let mut c = Container {
            name,
            root,
            pid1: 0,
            nspawn,
            log,
        };
        let nspawn_pid = i32::try_from(c.nspawn.id()).expect("pid");
        let start = Instant::now();
        while c.pid1 == 0 {
            if let Some((p, _)) = children(nspawn_pid)
                .into_iter()
                .find(|(_, comm)| comm == "systemd")
            {
                c.pid1 = p;
            } else {
                assert!(
                    start.elapsed() < Duration::from_secs(30),
                    "container did not start: {}",
                    std::fs::read_to_string(&c.log).unwrap_or_default()
                );
                std::thread::sleep(Duration::from_millis(100));
            }
        }
        loop {
            let out = c.exec(&["systemctl", "is-system-running"]);
            let state = String::from_utf8_lossy(&out.stdout).trim().to_string();
            if state == "running" || state == "degraded" {
                break;
            }
            assert!(
                start.elapsed() < Duration::from_secs(90),
                "container did not finish booting (state {state:?}): {}",
                std::fs::read_to_string(&c.log).unwrap_or_default()
            );
            std::thread::sleep(Duration::from_millis(200));
        }
        c
    }

    /// Runs a command inside (set-up and inspection only).
    pub fn exec(&self, args: &[&str]) -> Output {
        Command::new("nsenter")
            .args(["-t", &self.pid1.to_string(), "-a", "--"])
            .args(args)
            .stdin(Stdio::null())
            .output()
            .expect("nsenter runs")
    }

    /// Runs a shell snippet inside and returns its stdout, asserting success.
    pub fn sh(&self, script: &str) -> String {
        let out = self.exec(&["sh", "-c", script]);
        assert!(
            out.status.success(),
            "in container: {script}\n{}",
            text(&out)
        );
        String::from_utf8_lossy(&out.stdout).trim().to_string()
    }

    pub fn main_pid(&self, unit: &str) -> i32 {
        self.sh(&format!("systemctl show -p MainPID --value {unit}"))
            .parse()
            .expect("MainPID")
    }

    pub fn copy_in(&self, from: &Path, to: &str) {
        std::fs::copy(from, self.root.join(to.trim_start_matches('/')))
            .expect("copy into container");
    }
}

impl Drop for Container {
    fn drop(&mut self) {
        use nix::sys::signal::{Signal, kill};
        let pid = nix::unistd::Pid::from_raw(i32::try_from(self.nspawn.id()).unwrap_or(0));
        let _ = kill(pid, Signal::SIGTERM);
        let start = Instant::now();
        loop {
            match self.nspawn.try_wait() {
                Ok(Some(_)) | Err(_) => break,
                Ok(None) if start.elapsed() > Duration::from_secs(20) => {
                    let _ = kill(pid, Signal::SIGKILL);
                    let _ = self.nspawn.wait();
                    break;
                }
                Ok(None) => std::thread::sleep(Duration::from_millis(100)),
            }
        }
        let _ = std::fs::remove_dir_all(&self.root);
        let _ = std::fs::remove_file(&self.log);
        let _ = &self.name;
    }
}

/// A controller outside the container: its own PKI, approver key, lab-mode policy
/// (so `echo Approve | aiops run` grants), one target.
pub struct Controller {
    pub tmp: tempfile::TempDir,
}

impl Controller {
    pub fn new(target: &str, address: &str) -> Controller {
        let tmp = tempfile::Builder::new()
            .prefix("aiops-target-")
            .tempdir()
            .expect("tempdir");
        let c = Controller { tmp };
        std::fs::write(
            c.config(),
            "policy:\n  mode: lab\n  unknown_default: approval_required\npki_dir: pki\naudit_log: audit.jsonl\nruntime_dir: runtime\napprovals:\n  approvers: [root]\n  approver_key: pki/approver.key\ntargets: {}\n",
        )
        .expect("config");
        c.ok(&["certs", "init"]);
        c.ok(&[
            "approvals",
            "init-key",
            "--out",
            c.dir().join("pki/approver.key").to_str().expect("utf8"),
        ]);
        c.ok(&["targets", "add", target, address]);
        c
    }
    pub fn dir(&self) -> &Path {
        self.tmp.path()
    }
    pub fn config(&self) -> PathBuf {
        self.dir().join("config.yml")
    }
    pub fn aiops(&self, args: &[&str], stdin: &[u8]) -> Output {
        run_cmd(
            &aiops_bin(),
            args,
            stdin,
            &[("AIOPS_CONFIG", self.config().to_str().expect("utf8"))],
            &[],
        )
    }
    pub fn ok(&self, args: &[&str]) -> Value {
        let out = self.aiops(args, b"");
        assert!(out.status.success(), "aiops {args:?}: {}", text(&out));
        parse_answer(&out)
    }
    pub fn run(&self, target: &str, command: &str) -> Value {
        parse_answer(&self.aiops(&["run"], &crate::request(target, command)))
    }
    pub fn approve(&self) -> Value {
        parse_answer(&self.aiops(&["run"], b"Approve\n"))
    }
    pub fn pki(&self) -> PkiDir {
        PkiDir::new(self.dir().join("pki"))
    }
}

/// Polls `f` every 200 ms until it is true; panics after `secs` seconds.
pub fn wait_until(what: &str, secs: u64, mut f: impl FnMut() -> bool) {
    let start = Instant::now();
    while !f() {
        assert!(
            start.elapsed() < Duration::from_secs(secs),
            "timed out waiting for {what}"
        );
        std::thread::sleep(Duration::from_millis(200));
    }
}

/// Rewrites the container's nginx to listen on `ip:port` only (the container shares the
/// host's network, so port 80 on every address is not its own).
pub fn nginx_on(root: &Path, ip: &str, port: u16) {
    let site = root.join("etc/nginx/sites-available/default");
    let conf = std::fs::read_to_string(&site).expect("nginx site");
    let conf = conf
        .replace(
            "listen 80 default_server;",
            &format!("listen {ip}:{port} default_server;"),
        )
        .replace("listen [::]:80 default_server;", "");
    std::fs::write(&site, conf).expect("nginx site");
}

/// Installs the agent .deb in `c`, enrolls it as `target` on `address` with a bundle the
/// controller `ctl` issued outside (through the package's setup verb), and waits until
/// systemd runs it and it listens.
pub fn install_agent(c: &Container, ctl: &Controller, target: &str, address: &str) {
    install_agent_with(c, ctl, target, address, || {
        std::net::TcpStream::connect(address).is_ok()
    });
}

/// [`install_agent`] for a container whose network the test cannot reach directly (a
/// network namespace of its own): `listening` says when the agent answers.
pub fn install_agent_with(
    c: &Container,
    ctl: &Controller,
    target: &str,
    address: &str,
    mut listening: impl FnMut() -> bool,
) {
    let (agent_deb, _) = debs().clone();
    c.copy_in(&agent_deb, "/root/aiops-agent.deb");
    c.sh("dpkg -i /root/aiops-agent.deb && rm /root/aiops-agent.deb");
    let bundle = ctl.dir().join(format!("{target}.bundle"));
    ctl.ok(&[
        "certs",
        "bundle",
        target,
        "--address",
        address,
        "--out",
        bundle.to_str().expect("utf8"),
    ]);
    c.copy_in(&bundle, &format!("/root/{target}.bundle"));
    c.sh(&format!(
        "/usr/share/aiops-agent/setup-aiops.sh {target} /root/{target}.bundle"
    ));
    wait_until("the enrolled agent to listen", 30, || {
        c.exec(&["systemctl", "is-active", "--quiet", "aiops-agent"])
            .status
            .success()
            && listening()
    });
}

/// Runs a shell snippet in a stopped root (set-up before boot), asserting success.
pub fn in_stopped_root(root: &Path, script: &str) {
    let out = Command::new("systemd-nspawn")
        .args(["-q", "--register=no", "--keep-unit", "-D"])
        .arg(root)
        .args(["sh", "-c", script])
        .output()
        .expect("systemd-nspawn runs");
    assert!(
        out.status.success(),
        "in the stopped root: {script}\n{}",
        text(&out)
    );
}

/// Debian packages beyond the cached root (what an SRE's server has), with their
/// dependencies: downloaded once inside a copy of the cached root (so they match it) into
/// `target/nspawn/<name>-debs/`, reused while `packages` is unchanged.
pub fn extra_debs(name: &str, packages: &[&str]) -> PathBuf {
    let base = bookworm_root();
    let dir = nspawn_dir();
    let key = packages.join(",");
    let cache = dir.join(format!("{name}-debs"));
    let marker = dir.join(format!("{name}-debs.complete"));
    let lock_file = std::fs::OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(dir.join(format!(".{name}-debs.lock")))
        .expect("lock file");
    let _lock = nix::fcntl::Flock::lock(lock_file, nix::fcntl::FlockArg::LockExclusive)
        .map_err(|(_, e)| e)
        .expect("flock");
    if std::fs::read_to_string(&marker).is_ok_and(|m| m.trim() == key) && cache.is_dir() {
        return cache;
    }
    let work = dir.join(format!("{name}-debs-root.tmp"));
    let _ = std::fs::remove_dir_all(&work);
    let cp = Command::new("cp")
        .args(["-a", "--reflink=auto"])
        .arg(&base)
        .arg(&work)
        .output()
        .expect("cp runs");
    assert!(cp.status.success(), "copy root: {}", text(&cp));
    in_stopped_root(
        &work,
        &format!(
            "apt-get update -qq && apt-get install -y -qq --download-only --no-install-recommends {}",
            packages.join(" ")
        ),
    );
    let _ = std::fs::remove_dir_all(&cache);
    std::fs::create_dir_all(&cache).expect("deb cache");
    let mut n = 0;
    for e in std::fs::read_dir(work.join("var/cache/apt/archives"))
        .expect("archives")
        .flatten()
    {
        if e.file_name().to_string_lossy().ends_with(".deb") {
            std::fs::copy(e.path(), cache.join(e.file_name())).expect("copy deb");
            n += 1;
        }
    }
    assert!(n > 0, "no .debs downloaded for {packages:?}");
    let _ = std::fs::remove_dir_all(&work);
    std::fs::write(&marker, key).expect("marker");
    cache
}

/// Installs every .deb of `debs` (see [`extra_debs`]) into a stopped root.
pub fn install_debs(root: &Path, debs: &Path) {
    let dst = root.join("root/extra-debs");
    std::fs::create_dir_all(&dst).expect("deb dir");
    for e in std::fs::read_dir(debs).expect("debs").flatten() {
        std::fs::copy(e.path(), dst.join(e.file_name())).expect("copy deb");
    }
    in_stopped_root(
        root,
        "DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends \
         /root/extra-debs/*.deb >/dev/null && rm -r /root/extra-debs",
    );
}
