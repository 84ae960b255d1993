//! Issue 12's last "must show": every command of the usability corpus
//! (`policy/tests/data/usability.tsv`) that the controller's policy auto-allows actually
//! runs on a real target — no "auto-allowed but refused".
//!
//! One Debian bookworm container (see `aiops_e2e::nspawn`) with the agent .deb as shipped
//! and the tools the corpus assumes (`/work/attack/corpus/README.md`: lsof, psmisc,
//! iproute2, net-tools, openssl, cron, nginx, dnsutils, sysstat, iptables, …), set up so
//! the rows mean something: nginx serving HTTP and HTTPS, rsyslog writing
//! `/var/log/syslog`, crontabs for root and www-data, a timer, the accounts the rows name.
//! The container has a network namespace of its own holding only `lo` (the rows ping and
//! trace 10.0.0.1: nothing leaves the machine), and the capabilities a real host's root
//! has that nspawn withholds by default (`CAP_NET_ADMIN` for the firewall reads,
//! `CAP_SYSLOG` for `dmesg`), so what limits a command is our agent unit, not the
//! container. The controller runs outside the container, inside that network namespace.
//!
//! Every auto-allowed row, privileged (`sudo …`, through `aiops-exec`) and unprivileged
//! (through `aiops-sandbox` as `aiops-run` under Landlock), goes through `aiops run`. A row
//! passes when the answer is `executed` and neither stream shows a refusal: an aiops
//! refusal (`aiops-exec:`, `aiops-sandbox:`, sudo's `no new privileges`, exit 126/127,
//! `command not found`) always fails; a permission shape (`Permission denied`,
//! `Operation not permitted`, `a password is required`, `Read-only file system`, `must be
//! root`, …) fails unless the same command typed at a shell in the container — as root for
//! a privileged row, as `aiops-run` for an unprivileged one — shows it too (then the host
//! itself says no, e.g. a log only group `adm` may read). Any other non-zero exit passes
//! only when the same shell exits with the same status (grep finding nothing, a pid or a
//! disk this image does not have): that is the command's own answer. Two narrow, listed
//! exceptions are printed apart: a program no Debian host can have next to another row's
//! (`ntpq` beside `chronyc`), and the set-uid/set-gid programs `crontab` and `sudo -l` in an
//! unprivileged stage, which `no_new_privs` keeps from gaining privilege by design (they
//! exit as a shell as `aiops-run` does: that account has no crontab and no sudo rights).
//! The test prints a table of every row and fails listing every refused one.
//!
//! Found and fixed with it (each was "auto-allowed but refused" before): the firewall,
//! conntrack and `dmesg` reads (the agent unit's bounding set lacked `CAP_NET_ADMIN` and
//! `CAP_SYSLOG`; now only those programs get them, see `withheld_capabilities` in the
//! executor), `ping`/`mtr` (the kernel refused to exec their file capability without
//! `CAP_NET_RAW` in the bounding set), every `docker` row (the Go runtime cannot start in a
//! 512 MiB address space), and glob words that match nothing (`grep [n]ginx`,
//! `health?pretty`: the agent refused what the controller allowed; now the literal word is
//! classified, as bash passes it).

use std::path::Path;
use std::process::{Command, Stdio};
use std::sync::Mutex;
use std::time::Instant;

use aiops_e2e::nspawn::{
    Container, Controller, extra_debs, in_stopped_root, install_agent_with, install_debs, text,
};
use aiops_e2e::{aiops_bin, parse_answer, request};
use serde_json::Value;

/// What the corpus assumes on a server beyond the cached root.
const PACKAGES: &[&str] = &[
    "lsof",
    "psmisc",
    "iproute2",
    "net-tools",
    "util-linux",
    "openssl",
    "ssl-cert",
    "cron",
    "rsyslog",
    "bind9-dnsutils",
    "bind9-host",
    "iputils-ping",
    "traceroute",
    "mtr-tiny",
    "curl",
    "netcat-openbsd",
    "iptables",
    "nftables",
    "ufw",
    "conntrack",
    "ethtool",
    "sysstat",
    "smartmontools",
    "mdadm",
    "lvm2",
    "chrony",
    "redis-tools",
    "postgresql-client",
    "systemd-resolved",
    "docker.io",
    "file",
];

/// Parallel `aiops run` requests (the agent's default admission allows more).
const WORKERS: usize = 4;

/// Refusals by aiops itself: never a command's own answer.
const AIOPS_REFUSALS: &[&str] = &[
    "aiops-exec:",
    "aiops-sandbox:",
    "no new privileges",
    "command not found",
];

/// Refusal shapes a host may also give a shell user (compared with a plain shell).
const PERMISSION_SHAPES: &[&str] = &[
    "a password is required",
    "a terminal is required",
    "is not allowed to",
    "not in the sudoers",
    "may not run sudo",
    "Permission denied",
    "Operation not permitted",
    "Read-only file system",
    "must be root",
    "are you root",
    "not permitted",
];

struct Row {
    line: usize,
    command: String,
    privileged: bool,
}

/// The rows the controller's policy auto-allows, with whether any stage is privileged.
fn auto_allowed_rows(ctl: &Controller) -> (usize, Vec<Row>) {
    let corpus = std::fs::read_to_string(
        aiops_e2e::nspawn::workspace().join("policy/tests/data/usability.tsv"),
    )
    .expect("usability corpus");
    let rows: Vec<(usize, String)> = corpus
        .lines()
        .enumerate()
        .filter(|(_, l)| !l.trim().is_empty() && !l.starts_with('#'))
        .map(|(i, l)| (i + 1, l.split('\t').next().expect("command").to_string()))
        .collect();
    let mut input = String::new();
    for (_, c) in &rows {
        assert!(!c.contains('\n'), "one line per row");
        input.push_str(c);
        input.push('\n');
    }
    let out = ctl.aiops(
        &["policy", "explain", "--stdin", "--json"],
        input.as_bytes(),
    );
    assert!(out.status.success(), "policy explain: {}", text(&out));
    let answers: Vec<Value> = String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(|l| serde_json::from_str(l).expect("json line"))
        .collect();
    assert_eq!(answers.len(), rows.len(), "one answer per row");
    let mut auto = Vec::new();
    for ((line, command), a) in rows.iter().zip(&answers) {
        assert_eq!(a["command"].as_str(), Some(command.as_str()));
        if a["risk"] != "auto_allowed" {
            continue;
        }
        let privileged = a["plan"]["pipelines"]
            .as_array()
            .expect("pipelines")
            .iter()
            .flat_map(|p| p["stages"].as_array().expect("stages"))
            .any(|s| s["privileged"] == true);
        auto.push(Row {
            line: *line,
            command: command.clone(),
            privileged,
        });
    }
    (rows.len(), auto)
}

/// A network namespace with only `lo` up; deleted on drop.
struct NetNs(String);

impl NetNs {
    fn new() -> NetNs {
        aiops_e2e::nspawn::require("ip", "apt-get install iproute2");
        let name = format!("aiops-usab-{}", std::process::id());
        let _ = Command::new("ip").args(["netns", "delete", &name]).output();
        for args in [
            vec!["netns", "add", &name],
            vec!["-n", &name, "link", "set", "lo", "up"],
            // What systemd-sysctl sets at a real host's boot (50-default.conf: ICMP echo
            // sockets for every group, so `ping` needs no raw socket); it skips a
            // container, whose /proc/sys it cannot write.
            vec![
                "netns",
                "exec",
                &name,
                "sysctl",
                "-qw",
                "net.ipv4.ping_group_range=0 2147483647",
            ],
        ] {
            let out = Command::new("ip").args(&args).output().expect("ip runs");
            assert!(out.status.success(), "ip {args:?}: {}", text(&out));
        }
        NetNs(name)
    }
    fn path(&self) -> String {
        format!("/run/netns/{}", self.0)
    }
}

impl Drop for NetNs {
    fn drop(&mut self) {
        let _ = Command::new("ip")
            .args(["netns", "delete", &self.0])
            .output();
    }
}

/// `aiops run` for one request, inside the namespace.
fn run_in(ns: &NetNs, ctl: &Controller, command: &str) -> Value {
    let mut child = Command::new("ip")
        .args(["netns", "exec", &ns.0])
        .arg(aiops_bin())
        .arg("run")
        .env("AIOPS_CONFIG", ctl.config())
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("aiops run starts");
    {
        use std::io::Write;
        let mut stdin = child.stdin.take().expect("stdin");
        stdin.write_all(&request("srv1", command)).expect("request");
    }
    parse_answer(&child.wait_with_output().expect("aiops run"))
}

fn write(root: &Path, path: &str, body: &str) {
    let p = root.join(path.trim_start_matches('/'));
    std::fs::create_dir_all(p.parent().expect("parent")).expect("mkdir");
    std::fs::write(&p, body).expect("write");
}

/// The target as the rows expect a server to be.
fn prepare(root: &Path) {
    let t0 = Instant::now();
    install_debs(root, &extra_debs("usability", PACKAGES));
    eprintln!(
        "{} packages installed in {:?}",
        PACKAGES.len(),
        t0.elapsed()
    );
    // No container engine daemon in a test container (its client still answers).
    for unit in ["docker.service", "docker.socket", "containerd.service"] {
        let link = root.join("etc/systemd/system").join(unit);
        let _ = std::fs::remove_file(&link);
        std::os::unix::fs::symlink("/dev/null", &link).expect("mask");
    }
    write(
        root,
        "/etc/systemd/resolved.conf.d/aiops-test.conf",
        "[Resolve]\nLLMNR=no\nMulticastDNS=no\n",
    );
    // HTTPS next to HTTP, with the snakeoil certificate under the names the rows use.
    write(
        root,
        "/etc/nginx/sites-available/default",
        "server {\n  listen 80 default_server;\n  listen 443 ssl default_server;\n  \
         ssl_certificate /etc/nginx/ssl/site.crt;\n  ssl_certificate_key /etc/nginx/ssl/site.key;\n  \
         server_name example.com;\n  root /var/www/html;\n  location / { try_files $uri $uri/ =404; }\n}\n",
    );
    // A timer and cron entries to list.
    write(
        root,
        "/etc/systemd/system/aiops-probe.service",
        "[Unit]\nDescription=aiops probe\n\n[Service]\nType=oneshot\nExecStart=/bin/true\n",
    );
    write(
        root,
        "/etc/systemd/system/aiops-probe.timer",
        "[Unit]\nDescription=aiops probe every minute\n\n[Timer]\nOnActiveSec=1s\nOnUnitActiveSec=60s\n\n[Install]\nWantedBy=timers.target\n",
    );
    write(
        root,
        "/etc/cron.d/aiops-backup",
        "# nightly backup\n15 3 * * * root /bin/true\n",
    );
    in_stopped_root(
        root,
        "set -e\n\
         mkdir -p /etc/nginx/ssl /var/log/app /var/lib/mysql /var/log/mysql /var/log/postgresql\n\
         cp /etc/ssl/certs/ssl-cert-snakeoil.pem /etc/nginx/ssl/site.crt\n\
         install -m 0600 /etc/ssl/private/ssl-cert-snakeoil.key /etc/nginx/ssl/site.key\n\
         echo 'connection reset by peer' > /var/log/app/error.log\n\
         echo '2026-12-01 [ERROR] InnoDB: page checksum' > /var/log/mysql/error.log\n\
         echo '2026-12-01 LOG: database system is ready' > /var/log/postgresql/postgresql-15-main.log\n\
         useradd -m -s /bin/bash deploy\n\
         useradd -r -m -d /var/lib/postgresql -s /bin/bash postgres\n\
         echo '*/5 * * * * /bin/true # rotate' | crontab -\n\
         echo '0 * * * * /bin/true # cache warm' | crontab -u www-data -\n\
         systemctl enable aiops-probe.timer rsyslog nginx cron >/dev/null 2>&1\n",
    );
}

/// Programs a row names that this image cannot have, and why.
const NOT_ON_THIS_IMAGE: &[(&str, &str)] = &[(
    "ntpq",
    "ntpsec (ntpq) and chrony (chronyc) both provide time-daemon and conflict: a Debian \
     host has one of them; the chronyc rows run",
)];

/// Set-uid/set-gid programs in an unprivileged stage: `no_new_privs` (SECURITY.md) keeps
/// them from gaining privilege, so they answer differently from a shell, but with the same
/// exit status and the same meaning for the command account (no crontab, no sudo rights).
const SETUID_UNDER_NNP: &[&str] = &["crontab", "sudo"];

enum Verdict {
    Ok,
    /// The command's own non-zero exit (the same at a shell), or its own timeout.
    OwnExit,
    /// A permission shape a plain shell on the target shows too.
    HostSaysNo,
    /// See [`NOT_ON_THIS_IMAGE`] and [`SETUID_UNDER_NNP`].
    ByDesign(String),
    Refused(String),
}

/// The same command typed at a shell in the container, as root or as `aiops-run`:
/// (exit status, stdout and stderr).
fn at_a_shell(c: &Container, row: &Row) -> (i32, String) {
    let mut cmd = Command::new("nsenter");
    cmd.args(["-t", &c.pid1.to_string(), "-a", "--"]);
    if !row.privileged {
        cmd.args(["runuser", "-u", "aiops-run", "--"]);
    }
    // From a file, not `bash -c`: no process of the shell carries the command text
    // (`pgrep -f gunicorn` would find it).
    std::fs::write(c.root.join("aiops-row.sh"), &row.command).expect("row script");
    let out = cmd
        .args(["timeout", "20", "bash", "/aiops-row.sh"])
        .env_clear()
        .env("PATH", "/usr/sbin:/usr/bin:/sbin:/bin")
        .env("LANG", "C.UTF-8")
        .current_dir("/")
        .stdin(Stdio::null())
        .output()
        .expect("nsenter runs");
    (
        out.status.code().unwrap_or(-1),
        format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        ),
    )
}

fn program(row: &Row) -> &str {
    let words: Vec<&str> = row.command.split_whitespace().collect();
    let w = if words.first() == Some(&"sudo") && row.privileged {
        words.iter().skip(1).find(|w| !w.starts_with('-')).copied()
    } else {
        words.first().copied()
    };
    w.unwrap_or("")
}

fn judge(c: &Container, row: &Row, a: &Value) -> Verdict {
    if a["status"] != "executed" {
        return Verdict::Refused(format!(
            "status {} {}",
            a["status"],
            a.get("error").map(|e| e.to_string()).unwrap_or_default()
        ));
    }
    let code = a["exit_code"].as_i64().unwrap_or(-1);
    let both = format!(
        "{}\n{}",
        a["stdout"].as_str().unwrap_or(""),
        a["stderr"].as_str().unwrap_or("")
    );
    let prog = program(row);
    if code == 127
        && both.contains(&format!("{prog}: command not found"))
        && let Some((_, why)) = NOT_ON_THIS_IMAGE.iter().find(|(p, _)| *p == prog)
    {
        return Verdict::ByDesign(format!("not installable here: {why}"));
    }
    if code == 126 || code == 127 {
        return Verdict::Refused(format!("exit {code}"));
    }
    let aiops_refusal = AIOPS_REFUSALS.iter().find(|s| both.contains(**s));
    let permission = PERMISSION_SHAPES.iter().find(|s| both.contains(**s));
    if aiops_refusal.is_none() && permission.is_none() && code == 0 {
        return Verdict::Ok;
    }
    if a["timed_out"] == true && aiops_refusal.is_none() && permission.is_none() {
        return Verdict::OwnExit;
    }
    let (shell_code, shell) = at_a_shell(c, row);
    if !row.privileged
        && SETUID_UNDER_NNP.contains(&prog)
        && shell_code == i32::try_from(code).unwrap_or(-1)
        && code != 0
    {
        return Verdict::ByDesign(format!(
            "set-uid/set-gid under no_new_privs; a shell as aiops-run also exits {shell_code}: {}",
            shell.lines().next().unwrap_or("")
        ));
    }
    if let Some(s) = aiops_refusal {
        return Verdict::Refused(format!("shows {s:?}"));
    }
    let who = if row.privileged { "root" } else { "aiops-run" };
    if let Some(s) = permission {
        if shell.contains(s) {
            return Verdict::HostSaysNo;
        }
        return Verdict::Refused(format!("shows {s:?}, a shell as {who} does not"));
    }
    if i64::from(shell_code) == code {
        Verdict::OwnExit
    } else {
        Verdict::Refused(format!(
            "exit {code}, a shell as {who} exits {shell_code}: {}",
            shell.lines().next().unwrap_or("")
        ))
    }
}

fn first_line(a: &Value) -> String {
    let s = a["stderr"].as_str().unwrap_or("");
    let l = s.lines().find(|l| !l.trim().is_empty()).unwrap_or("");
    l.chars().take(90).collect()
}

#[test]
fn every_auto_allowed_usability_row_runs_on_the_target() {
    let t0 = Instant::now();
    let ns = NetNs::new();
    let c = Container::boot_with(
        "usability",
        &[
            &format!("--network-namespace-path={}", ns.path()),
            "--capability=CAP_NET_ADMIN,CAP_SYSLOG",
        ],
        prepare,
    );
    eprintln!("target booted in {:?}", t0.elapsed());
    let address = "127.0.0.2:7443";
    let ctl = Controller::new("srv1", address);
    install_agent_with(&c, &ctl, "srv1", address, || {
        run_in(&ns, &ctl, "hostname")["status"] == "executed"
    });
    eprintln!("agent enrolled in {:?}", t0.elapsed());
    // The rows need these running.
    for unit in ["nginx", "rsyslog", "cron", "aiops-probe.timer"] {
        let out = c.exec(&["systemctl", "is-active", unit]);
        assert!(out.status.success(), "{unit} is not active: {}", text(&out));
    }

    // Attacker's view of the privileged-read capabilities: the agent unit's bounding set
    // has CAP_NET_ADMIN, CAP_NET_RAW and CAP_SYSLOG for the few reads that need them; an
    // ordinary privileged read (here `grep`, as a classifier mistake would run) holds none.
    let caps = run_in(&ns, &ctl, "sudo grep -E '^Cap(Eff|Prm):' /proc/self/status");
    assert_eq!(caps["status"], "executed", "{caps}");
    for line in caps["stdout"].as_str().expect("stdout").lines() {
        let (k, v) = line.split_once(':').expect("Cap line");
        let mask = u64::from_str_radix(v.trim(), 16).expect("hex");
        assert_ne!(
            mask & (1 << 2),
            0,
            "{k}: a privileged read keeps CAP_DAC_READ_SEARCH"
        );
        for (n, name) in [
            (12, "CAP_NET_ADMIN"),
            (13, "CAP_NET_RAW"),
            (34, "CAP_SYSLOG"),
        ] {
            assert_eq!(
                mask & (1 << n),
                0,
                "{k}: a privileged grep holds {name}: {mask:x}"
            );
        }
    }

    let (total, rows) = auto_allowed_rows(&ctl);
    let privileged = rows.iter().filter(|r| r.privileged).count();
    assert!(
        privileged >= 40 && rows.len() >= 250,
        "the corpus shrank? {} auto-allowed rows, {privileged} privileged",
        rows.len()
    );
    let answers: Mutex<Vec<Option<Value>>> = Mutex::new(vec![None; rows.len()]);
    let next = Mutex::new(0usize);
    std::thread::scope(|s| {
        for _ in 0..WORKERS {
            s.spawn(|| {
                loop {
                    let i = {
                        let mut n = next.lock().expect("lock");
                        let i = *n;
                        *n += 1;
                        i
                    };
                    let Some(row) = rows.get(i) else { break };
                    let a = run_in(&ns, &ctl, &row.command);
                    answers.lock().expect("lock")[i] = Some(a);
                }
            });
        }
    });
    let answers = answers.into_inner().expect("answers");
    eprintln!("{} requests answered in {:?}", rows.len(), t0.elapsed());

    let mut refused = Vec::new();
    let mut by_design = Vec::new();
    let (mut ok, mut own, mut host) = (0, 0, 0);
    println!("line  kind  exit  verdict       command  |  first stderr line");
    for (row, a) in rows.iter().zip(&answers) {
        let mut a = a.as_ref().expect("answered").clone();
        let mut v = judge(&c, row, &a);
        if matches!(&v, Verdict::Refused(why) if why.contains("a shell as")) {
            // Run alone: with other rows running, a process-scanning read (fuser, lsof)
            // meets the other commands' aiops-run processes, which Landlock's ptrace
            // scoping keeps out of its reach (by design: commands do not see each other).
            a = run_in(&ns, &ctl, &row.command);
            v = judge(&c, row, &a);
            println!("line {}: judged again, run alone", row.line);
        }
        let verdict = match &v {
            Verdict::Ok => {
                ok += 1;
                "ok".to_string()
            }
            Verdict::OwnExit => {
                own += 1;
                "own-exit".to_string()
            }
            Verdict::HostSaysNo => {
                host += 1;
                "host-says-no".to_string()
            }
            Verdict::ByDesign(why) => {
                by_design.push(format!("line {}: {}  ({why})", row.line, row.command));
                "by-design".to_string()
            }
            Verdict::Refused(why) => {
                refused.push(format!("line {}: {}  ({why})", row.line, row.command));
                "REFUSED".to_string()
            }
        };
        println!(
            "{:>4}  {}  {:>4}  {:<12}  {}  |  {}",
            row.line,
            if row.privileged { "sudo" } else { "user" },
            a["exit_code"]
                .as_i64()
                .map(|c| c.to_string())
                .unwrap_or_else(|| "-".into()),
            verdict,
            row.command,
            first_line(&a)
        );
    }
    println!(
        "answered differently from a shell, by design:\n{}",
        by_design.join("\n")
    );
    println!(
        "usability on target: {total} rows, {} auto-allowed ({privileged} privileged) run: \
         {ok} exit 0, {own} their own non-zero exit or timeout, {host} refused by the host \
         for a shell too, {} by design, {} refused by aiops ({:?})",
        rows.len(),
        by_design.len(),
        refused.len(),
        t0.elapsed()
    );
    assert!(
        by_design.len() <= 3,
        "more by-design answers than known: {by_design:?}"
    );
    assert!(
        refused.is_empty(),
        "auto-allowed but refused on the target ({}):\n{}",
        refused.len(),
        refused.join("\n")
    );
}
