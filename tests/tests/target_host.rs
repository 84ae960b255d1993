//! A real target host: a Debian bookworm root made by `debootstrap` (cached under
//! `target/nspawn/`), booted with `systemd-nspawn -b` (real systemd as PID 1, real nginx,
//! real sudo), the aiops-agent .deb installed with `dpkg -i` inside it, enrolled with a
//! bundle the controller issued outside, and started by systemd. The controller runs
//! here, outside, and reaches the agent on a 127.0.0.x address (the container shares the
//! host's network). `nsenter` is used only to set up and to inspect, never for the path
//! under test.

use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant};

use aiops_certs::pki::PkiDir;
use aiops_certs::signing::SigningKey;
use aiops_controller::client;
use aiops_e2e::{aiops_bin, bin_dir, parse_answer, read_jsonl, run_cmd};
use aiops_proto::agent::v1 as pb;
use serde_json::Value;

/// Packages in the cached root; a change rebuilds the cache.
const INCLUDE: &str = "systemd,systemd-sysv,dbus,sudo,nginx,procps";

fn workspace() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("workspace")
        .to_path_buf()
}

fn nspawn_dir() -> PathBuf {
    workspace().join("target").join("nspawn")
}

fn require(tool: &str, hint: &str) {
    let found = std::env::var_os("PATH")
        .map(|p| std::env::split_paths(&p).any(|d| d.join(tool).is_file()))
        .unwrap_or(false)
        || Path::new("/usr/sbin").join(tool).is_file();
    assert!(
        found,
        "prerequisite missing: `{tool}` is not installed ({hint}); scripts/test.sh installs it"
    );
}

fn require_root() {
    assert!(
        nix::unistd::geteuid().is_root(),
        "the real-target tests boot containers and need root (scripts/test.sh runs as root)"
    );
}

fn text(out: &Output) -> String {
    format!(
        "status {:?}\nstdout: {}\nstderr: {}",
        out.status.code(),
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

/// The cached bookworm root (built once, under an exclusive lock, then reused).
fn bookworm_root() -> PathBuf {
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
fn debs() -> &'static (PathBuf, PathBuf) {
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
fn loopback_endpoint(salt: u32) -> (String, u16) {
    let x = 2 + (std::process::id().wrapping_mul(7).wrapping_add(salt * 13)) % 250;
    let ip = format!("127.0.0.{x}");
    for _ in 0..200 {
        let port = aiops_e2e::free_ports(1);
        if std::net::TcpListener::bind((ip.as_str(), port)).is_ok() {
            return (ip, port);
        }
    }
    panic!("no free port on {ip}");
}

/// A booted container; SIGTERM to its systemd-nspawn on drop, then its root is removed.
struct Container {
    name: String,
    root: PathBuf,
    nspawn: std::process::Child,
    pid1: i32,
    log: PathBuf,
}

fn children(pid: i32) -> Vec<(i32, String)> {
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
    fn boot(tag: &str, prepare: impl FnOnce(&Path)) -> Container {
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
            .args(["-q", "--register=no", "--keep-unit", "-D"])
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
    fn exec(&self, args: &[&str]) -> Output {
        Command::new("nsenter")
            .args(["-t", &self.pid1.to_string(), "-a", "--"])
            .args(args)
            .stdin(Stdio::null())
            .output()
            .expect("nsenter runs")
    }

    /// Runs a shell snippet inside and returns its stdout, asserting success.
    fn sh(&self, script: &str) -> String {
        let out = self.exec(&["sh", "-c", script]);
        assert!(
            out.status.success(),
            "in container: {script}\n{}",
            text(&out)
        );
        String::from_utf8_lossy(&out.stdout).trim().to_string()
    }

    fn main_pid(&self, unit: &str) -> i32 {
        self.sh(&format!("systemctl show -p MainPID --value {unit}"))
            .parse()
            .expect("MainPID")
    }

    fn copy_in(&self, from: &Path, to: &str) {
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
struct Controller {
    tmp: tempfile::TempDir,
}

impl Controller {
    fn new(target: &str, address: &str) -> Controller {
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
    fn dir(&self) -> &Path {
        self.tmp.path()
    }
    fn config(&self) -> PathBuf {
        self.dir().join("config.yml")
    }
    fn aiops(&self, args: &[&str], stdin: &[u8]) -> Output {
        run_cmd(
            &aiops_bin(),
            args,
            stdin,
            &[("AIOPS_CONFIG", self.config().to_str().expect("utf8"))],
            &[],
        )
    }
    fn ok(&self, args: &[&str]) -> Value {
        let out = self.aiops(args, b"");
        assert!(out.status.success(), "aiops {args:?}: {}", text(&out));
        parse_answer(&out)
    }
    fn run(&self, target: &str, command: &str) -> Value {
        parse_answer(&self.aiops(&["run"], &aiops_e2e::request(target, command)))
    }
    fn approve(&self) -> Value {
        parse_answer(&self.aiops(&["run"], b"Approve\n"))
    }
    fn pki(&self) -> PkiDir {
        PkiDir::new(self.dir().join("pki"))
    }
}

/// A signed `hostname` request crafted by hand, to send twice (replay).
fn signed_hostname(pki: &PkiDir, target: &str) -> pb::SignedCommand {
    let key = SigningKey::from_pem(&std::fs::read_to_string(pki.signing_key()).expect("key"))
        .expect("key");
    let policy =
        aiops_policy::Policy::from_yaml("mode: production\nunknown_default: reject\n", "t")
            .expect("policy");
    let d = policy.classify("hostname");
    let now = aiops_certs::now_ms();
    let req = pb::CommandRequest {
        request_id: uuid::Uuid::new_v4().to_string(),
        target: target.into(),
        command: "hostname".into(),
        plan: Some(aiops_proto::plan::to_proto(&d.plan)),
        decision: pb::Decision::AutoAllowed as i32,
        requester: "e2e-replay".into(),
        reason: "replay cache test".into(),
        issued_at_ms: now,
        expires_at_ms: now + 300_000,
        timeout_ms: 10_000,
        output_cap_bytes: 4096,
        policy_digest: String::new(),
        approval_id: String::new(),
    };
    client::sign(&req, &key)
}

fn send(
    addr: &str,
    pki: &PkiDir,
    signed: pb::SignedCommand,
) -> Result<client::Collected, client::ClientError> {
    let tls = Arc::new(
        aiops_certs::tls::client_config(
            &pki.ca_cert(),
            &pki.controller_cert(),
            &pki.controller_key(),
        )
        .expect("tls"),
    );
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("rt");
    rt.block_on(async {
        let ch = client::connect(addr, "srv1", tls, Duration::from_secs(5)).await?;
        client::execute(ch, signed, Duration::from_secs(20)).await
    })
}

fn wait_until(what: &str, secs: u64, mut f: impl FnMut() -> bool) {
    let start = Instant::now();
    while !f() {
        assert!(
            start.elapsed() < Duration::from_secs(secs),
            "timed out waiting for {what}"
        );
        std::thread::sleep(Duration::from_millis(200));
    }
}

/// Every path under the root except the ones that change by merely running a system.
fn file_list(c: &Container) -> Vec<String> {
    let out = c.sh(
        "find / -xdev \\( -path /proc -o -path /sys -o -path /dev -o -path /run -o -path /tmp -o -path /var/tmp \
         -o -path /var/log -o -path /var/lib/dpkg -o -path /var/cache -o -path /var/lib/systemd -o -path /var/lib/nginx \
         -o -path /etc/ld.so.cache -o -path /root \\) -prune -o -print | sort",
    );
    out.lines()
        .filter(|l| !l.ends_with('-'))
        .map(str::to_string)
        .collect()
}

#[test]
fn agent_deb_on_a_real_systemd_target() {
    let t0 = Instant::now();
    let (ip, port) = loopback_endpoint(1);
    let (nginx_ip, nginx_port) = loopback_endpoint(2);
    let address = format!("{ip}:{port}");
    let (agent_deb, _) = debs().clone();
    // nginx inside shares the host's network: give it a loopback port of its own.
    let c = Container::boot("agent", |root| {
        let site = root.join("etc/nginx/sites-available/default");
        let conf = std::fs::read_to_string(&site).expect("nginx site");
        let conf = conf
            .replace(
                "listen 80 default_server;",
                &format!("listen {nginx_ip}:{nginx_port} default_server;"),
            )
            .replace("listen [::]:80 default_server;", "");
        std::fs::write(&site, conf).expect("nginx site");
    });
    eprintln!(
        "packages built and {} booted after {:?}",
        c.name,
        t0.elapsed()
    );
    let before = file_list(&c);

    // Install the package for real; it must not start an unenrolled agent.
    c.copy_in(&agent_deb, "/root/aiops-agent.deb");
    c.sh("dpkg -i /root/aiops-agent.deb && rm /root/aiops-agent.deb");
    assert_eq!(
        c.sh("id -u aiops; id -gn aiops; getent passwd aiops | cut -d: -f7")
            .lines()
            .collect::<Vec<_>>()[1..],
        ["aiops", "/usr/sbin/nologin"]
    );
    assert_eq!(
        c.sh("stat -c '%U:%G %a %n' /etc/aiops-agent /etc/aiops-agent/pki /etc/aiops-agent/agent.yml /etc/aiops-agent/policy.yml /var/lib/aiops-agent /var/log/aiops-agent /etc/sudoers.d/aiops-agent"),
        "root:aiops 750 /etc/aiops-agent\nroot:aiops 750 /etc/aiops-agent/pki\nroot:aiops 640 /etc/aiops-agent/agent.yml\nroot:aiops 640 /etc/aiops-agent/policy.yml\naiops:aiops 700 /var/lib/aiops-agent\naiops:aiops 750 /var/log/aiops-agent\nroot:root 440 /etc/sudoers.d/aiops-agent"
    );
    c.sh("visudo -cf /etc/sudoers.d/aiops-agent");
    assert_eq!(
        c.sh("dpkg-query -W -f='${Conffiles}' aiops-agent | awk '{print $1}'"),
        "/etc/aiops-agent/agent.yml\n/etc/aiops-agent/policy.yml"
    );
    assert_eq!(c.sh("systemctl is-enabled aiops-agent"), "enabled");
    c.sh("systemctl start aiops-agent");
    assert_eq!(
        String::from_utf8_lossy(&c.exec(&["systemctl", "is-active", "aiops-agent"]).stdout).trim(),
        "inactive",
        "an unenrolled agent must not run"
    );
    assert!(
        std::net::TcpStream::connect_timeout(&address.parse().unwrap(), Duration::from_millis(300))
            .is_err()
    );

    // Enroll with a bundle issued by the controller outside, through the setup verb.
    let ctl = Controller::new("srv1", &address);
    let bundle = ctl.dir().join("srv1.bundle");
    let made = ctl.ok(&[
        "certs",
        "bundle",
        "srv1",
        "--address",
        &address,
        "--out",
        bundle.to_str().unwrap(),
    ]);
    assert_eq!(made["listen"], address.as_str());
    use std::os::unix::fs::PermissionsExt;
    assert_eq!(
        std::fs::metadata(&bundle).unwrap().permissions().mode() & 0o777,
        0o600
    );
    c.copy_in(&bundle, "/root/srv1.bundle");
    c.sh("/usr/share/aiops-agent/setup-aiops.sh srv1 /root/srv1.bundle");
    assert_eq!(
        c.sh("test -e /root/srv1.bundle && echo kept || echo deleted"),
        "deleted"
    );
    assert_eq!(
        c.sh("stat -c '%U:%G %a %n' /etc/aiops-agent/pki/agent.key /etc/aiops-agent/pki/agent.pem /etc/aiops-agent/pki/ca.pem /etc/aiops-agent/pki/controller-signing.pub /etc/aiops-agent/pki/approver-1.pub"),
        "root:aiops 640 /etc/aiops-agent/pki/agent.key\nroot:aiops 644 /etc/aiops-agent/pki/agent.pem\nroot:aiops 644 /etc/aiops-agent/pki/ca.pem\nroot:aiops 644 /etc/aiops-agent/pki/controller-signing.pub\nroot:aiops 644 /etc/aiops-agent/pki/approver-1.pub"
    );
    assert_eq!(c.sh("systemctl is-active aiops-agent"), "active");
    // Started by systemd as `aiops`, with no_new_privs off (sudo needs it) and hardening on.
    let agent_pid = c.main_pid("aiops-agent");
    let status = c.sh(&format!("cat /proc/{agent_pid}/status"));
    let uid_line = status
        .lines()
        .find(|l| l.starts_with("Uid:"))
        .unwrap()
        .to_string();
    let aiops_uid = c.sh("id -u aiops");
    assert!(
        uid_line.split_whitespace().skip(1).all(|u| u == aiops_uid),
        "{uid_line}"
    );
    assert!(
        status.contains("NoNewPrivs:\t0"),
        "sudo cannot work with no_new_privs set"
    );
    let props = c.sh("systemctl show -p User -p ProtectSystem -p ProtectHome -p PrivateTmp -p Restart -p NoNewPrivileges aiops-agent");
    for want in [
        "User=aiops",
        "ProtectSystem=full",
        "ProtectHome=read-only",
        "PrivateTmp=yes",
        "Restart=on-failure",
        "NoNewPrivileges=no",
    ] {
        assert!(props.lines().any(|l| l == want), "{want} not in {props}");
    }

    // The validation request, from outside, runs inside the container.
    let a = ctl.run("srv1", "hostname");
    assert_eq!(a["status"], "executed", "{a}");
    assert_eq!(a["stdout"], format!("{}\n", c.name));
    let a = ctl.run("srv1", "systemctl status nginx");
    assert_eq!(a["status"], "executed", "{a}");
    assert_eq!(a["risk"], "auto_allowed");
    assert_eq!(a["exit_code"], 0, "{a}");
    assert!(
        a["stdout"].as_str().unwrap().contains("active (running)"),
        "{a}"
    );

    // A restart happens only after approval, through sudo and the drop-in.
    let nginx_before = c.main_pid("nginx");
    let a = ctl.run("srv1", "sudo systemctl restart nginx");
    assert_eq!(a["status"], "approval_requested", "{a}");
    std::thread::sleep(Duration::from_millis(500));
    assert_eq!(
        c.main_pid("nginx"),
        nginx_before,
        "nothing may run before approval"
    );
    let a = ctl.approve();
    assert_eq!(a["status"], "executed", "{a}");
    assert_eq!(a["exit_code"], 0, "{a}");
    assert_eq!(a["stderr"], "", "{a}");
    let nginx_after = c.main_pid("nginx");
    assert!(
        nginx_after != nginx_before && nginx_after != 0,
        "nginx was not restarted ({nginx_before} -> {nginx_after})"
    );
    let agent_audit: Vec<Value> = c
        .sh("cat /var/log/aiops-agent/audit.jsonl")
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert!(
        agent_audit.iter().any(|r| r["event"] == "accepted"
            && r["command"] == "sudo systemctl restart nginx"
            && r["decision"] == "DECISION_APPROVED"),
        "{agent_audit:?}"
    );

    // Outside the drop-in: the policy lets `sudo ls /root` through, sudo refuses it.
    let a = ctl.run("srv1", "sudo ls /root");
    assert_eq!(a["status"], "executed", "{a}");
    assert_eq!(a["risk"], "auto_allowed");
    assert_eq!(a["exit_code"], 1, "{a}");
    assert_eq!(a["stdout"], "", "{a}");
    assert_eq!(a["stderr"], "sudo: a password is required\n", "{a}");
    // A service action on a unit the drop-in excludes, even approved, fails at sudo too.
    let a = ctl.run("srv1", "sudo systemctl restart dbus");
    assert_eq!(a["status"], "approval_requested", "{a}");
    let a = ctl.approve();
    assert_eq!(a["status"], "executed", "{a}");
    assert_eq!(a["exit_code"], 1, "{a}");
    assert!(
        a["stderr"].as_str().unwrap().contains(
            "user aiops is not allowed to execute '/usr/bin/systemctl restart dbus' as root"
        ),
        "{a}"
    );

    // The replay cache survives `systemctl restart` and kill -9 (systemd restarts it).
    let signed = signed_hostname(&ctl.pki(), "srv1");
    let first = send(&address, &ctl.pki(), signed.clone()).expect("first send runs");
    assert_eq!(
        String::from_utf8_lossy(&first.stdout_head),
        format!("{}\n", c.name)
    );
    let replayed = |what: &str| {
        let e = send(&address, &ctl.pki(), signed.clone()).expect_err("a replay must be refused");
        assert_eq!(e.reason(), Some("replayed"), "{what}: {e}");
    };
    replayed("same process");
    c.sh("systemctl restart aiops-agent");
    wait_until("agent back after restart", 20, || {
        c.exec(&["systemctl", "is-active", "--quiet", "aiops-agent"])
            .status
            .success()
            && std::net::TcpStream::connect(&address).is_ok()
    });
    replayed("after systemctl restart");
    let old = c.main_pid("aiops-agent");
    c.sh(&format!("kill -9 {old}"));
    wait_until("systemd to restart the killed agent", 30, || {
        let p = c.main_pid("aiops-agent");
        p != 0 && p != old && std::net::TcpStream::connect(&address).is_ok()
    });
    assert!(
        c.sh("systemctl show -p NRestarts --value aiops-agent")
            .parse::<u32>()
            .unwrap()
            >= 1
    );
    replayed("after kill -9");
    let a = ctl.run("srv1", "hostname");
    assert_eq!(a["status"], "executed", "fresh requests still run: {a}");

    // targets check: Describe and health.
    let check = ctl.ok(&["targets", "check", "--json"]);
    assert_eq!(check[0]["reachable"], true, "{check}");
    assert_eq!(check[0]["health"], "SERVING", "{check}");
    assert_eq!(check[0]["name"], "srv1");
    assert!(
        check[0]["cert_days_left"].as_i64().unwrap() >= 364,
        "{check}"
    );
    assert!(
        check[0]["policy_digest"]
            .as_str()
            .unwrap()
            .starts_with("sha256:")
    );
    let audit = read_jsonl(&ctl.dir().join("audit.jsonl"));
    assert!(!audit.is_empty());

    // dpkg -r: no agent, no privilege, no unit; config stays (dpkg semantics).
    c.sh("dpkg -r aiops-agent");
    assert!(
        !c.exec(&["systemctl", "is-active", "--quiet", "aiops-agent"])
            .status
            .success()
    );
    assert!(
        std::net::TcpStream::connect_timeout(&address.parse().unwrap(), Duration::from_millis(300))
            .is_err(),
        "agent still listening"
    );
    assert_eq!(c.sh("ls /etc/sudoers.d"), "README");
    assert_eq!(c.sh("pgrep -u aiops | wc -l"), "0");
    let sudo_l = c.exec(&["sudo", "-l", "-U", "aiops"]);
    assert!(
        String::from_utf8_lossy(&sudo_l.stdout).contains("not allowed to run sudo"),
        "{}",
        text(&sudo_l)
    );
    c.sh("test ! -e /usr/bin/aiops-agent && test ! -e /lib/systemd/system/aiops-agent.service && test ! -e /etc/systemd/system/multi-user.target.wants/aiops-agent.service");
    c.sh("test -e /etc/aiops-agent/agent.yml");

    // dpkg --purge: nothing left, not even the user.
    c.sh("dpkg --purge aiops-agent");
    assert!(
        !c.exec(&["getent", "passwd", "aiops"]).status.success(),
        "user aiops left behind"
    );
    assert!(
        !c.exec(&["getent", "group", "aiops"]).status.success(),
        "group aiops left behind"
    );
    c.sh("test ! -e /etc/aiops-agent && test ! -e /var/lib/aiops-agent && test ! -e /var/log/aiops-agent");
    let after = file_list(&c);
    let added: Vec<&String> = after.iter().filter(|p| !before.contains(p)).collect();
    let removed: Vec<&String> = before.iter().filter(|p| !after.contains(p)).collect();
    assert!(
        added.is_empty() && removed.is_empty(),
        "purge left changes: added {added:?}, removed {removed:?}"
    );
    eprintln!("agent_deb_on_a_real_systemd_target: {:?}", t0.elapsed());
}

/// The controller package on a real systemd host: accounts, sudoers for `hermes`, the
/// setup verbs, `update-aiops` leaving config, keys, users and sudoers byte-identical,
/// and a purge that leaves the host as it was.
#[test]
fn controller_deb_setup_verbs_and_update_aiops() {
    let t0 = Instant::now();
    let (_, controller_deb) = debs().clone();
    let c = Container::boot("ctl", |_| {});
    let before = file_list(&c);
    c.copy_in(&controller_deb, "/root/aiops-controller.deb");
    c.sh("dpkg -i /root/aiops-controller.deb");
    c.sh("visudo -cf /etc/sudoers.d/aiops-controller && test -x /opt/aiops/bin/aiops");
    assert_eq!(
        c.sh("readlink /opt/aiops/bin/run_action; readlink /opt/aiops/run_action"),
        "aiops\nbin/aiops"
    );
    assert_eq!(
        c.sh("stat -c '%U:%G %a %n' /opt/aiops/config.yml /opt/aiops/pki /opt/aiops/runtime /opt/aiops/approver /opt/aiops/audit.jsonl"),
        "root:aiopsexec 644 /opt/aiops/config.yml\naiopsexec:aiopsexec 711 /opt/aiops/pki\naiopsexec:aiops-approvers 2770 /opt/aiops/runtime\naiops-approver:aiops-approvers 700 /opt/aiops/approver\naiopsexec:aiops-approvers 660 /opt/aiops/audit.jsonl"
    );
    c.sh("test -n \"$(ls /opt/aiops/knowledge)\"");

    // The verbs.
    let setup = "/opt/aiops/bin/setup-aiops.sh";
    c.sh(&format!("{setup} prepare-hermes-host"));
    c.sh("id hermes && test -d /home/hermes/.hermes && test -e /var/lib/systemd/linger/hermes");
    let (ip, port) = loopback_endpoint(3);
    let out = c.sh(&format!("{setup} hermes srv1 {ip}:{port}"));
    assert!(out.contains("/opt/aiops/pki/bundles/srv1.bundle"), "{out}");
    assert_eq!(c.sh("stat -c '%U %a' /opt/aiops/pki/bundles/srv1.bundle /opt/aiops/pki/signing.key /opt/aiops/approver/approver.key"), "aiopsexec 600\naiopsexec 600\naiops-approver 600");
    assert!(
        c.sh("grep -A1 'srv1:' /opt/aiops/config.yml")
            .contains(&format!("{ip}:{port}"))
    );
    let bootstrap = c.sh(&format!("{setup} print-bootstrap"));
    assert!(!bootstrap.is_empty());

    // hermes runs exactly the controller as aiopsexec, and nothing else.
    let run = c.exec(&["runuser", "-u", "hermes", "--", "sh", "-c", "echo '{\"target\":\"nope\",\"command\":\"hostname\",\"requester\":\"hermes\"}' | sudo -n -u aiopsexec /opt/aiops/bin/aiops run"]);
    let answer: Value =
        serde_json::from_slice(&run.stdout).unwrap_or_else(|_| panic!("{}", text(&run)));
    assert_eq!(answer["error"]["code"], "unknown_target", "{answer}");
    for denied in [
        "sudo -n -u aiopsexec /opt/aiops/bin/aiops approvals approve",
        "sudo -n -u aiopsexec /opt/aiops/bin/aiops --config /tmp/x.yml run",
        "sudo -n -u aiopsexec /bin/sh -c id",
        "sudo -n /opt/aiops/bin/aiops run",
    ] {
        let out = c.exec(&["runuser", "-u", "hermes", "--", "sh", "-c", denied]);
        assert!(
            !out.status.success(),
            "hermes must not run {denied:?}: {}",
            text(&out)
        );
        assert!(
            String::from_utf8_lossy(&out.stderr).contains("sudo:"),
            "{denied}: {}",
            text(&out)
        );
    }

    // update-aiops: binaries and knowledge replaced; config, keys, users, sudoers untouched.
    let fingerprint = "sha256sum /opt/aiops/config.yml /opt/aiops/pki/* /opt/aiops/pki/bundles/* /opt/aiops/approver/* /etc/sudoers.d/* /etc/passwd /etc/group /etc/shadow /etc/gshadow; stat -c '%U:%G %a %n' /opt/aiops/config.yml /opt/aiops/pki /opt/aiops/pki/* /opt/aiops/approver /opt/aiops/approver/* /etc/sudoers.d/*";
    let fp_before = c.sh(fingerprint);
    let bin_inode = c.sh("stat -c %i /opt/aiops/bin/aiops");
    // A new release in a directory: the binary and a knowledge tree with a new file.
    c.sh("mkdir -p /root/rel/knowledge && cp /opt/aiops/bin/aiops /root/rel/aiops && cp -r /opt/aiops/knowledge/. /root/rel/knowledge/ && echo new > /root/rel/knowledge/NEW-RUNBOOK.md");
    c.sh(&format!("{setup} update-aiops /root/rel"));
    assert_eq!(c.sh("cat /opt/aiops/knowledge/NEW-RUNBOOK.md"), "new");
    assert_ne!(
        c.sh("stat -c %i /opt/aiops/bin/aiops"),
        bin_inode,
        "the binary was not replaced"
    );
    assert_eq!(
        c.sh(fingerprint),
        fp_before,
        "update-aiops changed config, keys, users or sudoers"
    );
    // And from the .deb: knowledge back to the packaged set.
    c.sh(&format!("{setup} update-aiops /root/aiops-controller.deb"));
    c.sh("test ! -e /opt/aiops/knowledge/NEW-RUNBOOK.md && /opt/aiops/bin/aiops --version");
    assert_eq!(
        c.sh(fingerprint),
        fp_before,
        "update-aiops (deb) changed config, keys, users or sudoers"
    );

    // Purge: the package's accounts, files and sudoers go; `hermes` (made by the verb) stays.
    c.sh("dpkg --purge aiops-controller && rm -f /root/aiops-controller.deb && rm -rf /root/rel");
    for u in ["aiopsexec", "aiops-approver"] {
        assert!(
            !c.exec(&["getent", "passwd", u]).status.success(),
            "{u} left behind"
        );
    }
    c.sh("test ! -e /opt/aiops && test ! -e /etc/sudoers.d/aiops-controller");
    c.sh("loginctl disable-linger hermes 2>/dev/null || rm -f /var/lib/systemd/linger/hermes; userdel -r hermes");
    let mut after = file_list(&c);
    // dpkg removes a directory the purged package listed once it is empty, after postrm:
    // an empty /opt that no package owns goes with the last package using it.
    if !before.iter().any(|p| p.starts_with("/opt/")) && !after.iter().any(|p| p == "/opt") {
        after.push("/opt".into());
        after.sort();
    }
    let added: Vec<&String> = after.iter().filter(|p| !before.contains(p)).collect();
    let removed: Vec<&String> = before.iter().filter(|p| !after.contains(p)).collect();
    assert!(
        added.is_empty() && removed.is_empty(),
        "purge left changes: added {added:?}, removed {removed:?}"
    );
    eprintln!(
        "controller_deb_setup_verbs_and_update_aiops: {:?}",
        t0.elapsed()
    );
}
