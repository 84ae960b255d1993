//! Real incidents, fixed through `aiops run` on a real target with the package as shipped.
//!
//! Eight incidents of kinds found in public Linux troubleshooting sets (SadServers-style:
//! a service down because of a leftover drop-in, a file the daemon cannot read, disk space
//! held by a deleted-but-open file, a broken timer, a runaway writer to find and stop, a
//! file to write under /etc, files to fix under /home/admin, a port taken by another
//! process), written here from scratch; and a ninth, a bad cron line, whose fix the policy
//! forbids by design (checked as a refusal). One booted Debian bookworm container (see
//! `aiops_e2e::nspawn`) with the agent .deb installed and enrolled serves all of them, one
//! after the other.
//!
//! For each: the target is broken from the host side (files under the container root,
//! `nsenter` for set-up only); then the commands an SRE would type go through `aiops run`:
//! diagnostics first, which must be `auto_allowed`, run at once and show what the SRE reads
//! from them; then the fix, each command of which must be `approval_requested`, approved by
//! a human (`Approve` on `aiops run`'s stdin), `executed` with exit 0 and recorded so in the
//! target's own audit; then the incident's check, from the host against the container. No
//! sudoers rule and no policy entry is written for any incident: the test asserts that the
//! package's files are as shipped.
//!
//! Every incident runs even when an earlier one failed (each set-up restores what it needs);
//! the test fails at the end with one line per failed step, naming the incident and the step.

use std::io::{Read, Write};
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::Path;
use std::time::{Duration, Instant};

use aiops_e2e::nspawn::{
    Container, Controller, extra_debs, in_stopped_root, install_agent, install_debs,
    loopback_endpoint, nginx_on, text, wait_until,
};
use serde_json::Value;

/// Tools the incidents need on the target that debootstrap's minbase lacks: an SRE's
/// server has them. Their .debs are fetched once (inside a copy of the cached root, so they
/// match it) and cached under `target/nspawn/`.
const EXTRA: &[&str] = &["lsof", "file", "cron"];

fn write(root: &Path, path: &str, body: &str, mode: u32) {
    let p = root.join(path.trim_start_matches('/'));
    std::fs::create_dir_all(p.parent().expect("parent")).expect("mkdir");
    std::fs::write(&p, body).expect("write");
    std::fs::set_permissions(&p, std::fs::Permissions::from_mode(mode)).expect("chmod");
}

/// The shared target: one container, nginx on its own loopback address, the agent as srv1.
struct Target {
    c: Container,
    ctl: Controller,
    nginx: String,
}

fn boot_target() -> Target {
    let t0 = Instant::now();
    let debs = extra_debs("incident", EXTRA);
    eprintln!("extra packages ready in {:?}", t0.elapsed());
    let (ip, port) = loopback_endpoint(71);
    let (nginx_ip, nginx_port) = loopback_endpoint(73);
    let address = format!("{ip}:{port}");
    let nginx = format!("{nginx_ip}:{nginx_port}");
    let c = Container::boot("incidents", |root| {
        nginx_on(root, &nginx_ip, nginx_port);
        install_debs(root, &debs);
        in_stopped_root(root, "useradd -m -s /bin/bash admin");
        prepare_units(root, &nginx);
        eprintln!("target prepared in {:?}", t0.elapsed());
    });
    eprintln!("target booted in {:?}", t0.elapsed());
    let ctl = Controller::new("srv1", &address);
    eprintln!("controller set up in {:?}", t0.elapsed());
    install_agent(&c, &ctl, "srv1", &address);
    eprintln!("agent installed and enrolled in {:?}", t0.elapsed());
    Target { c, ctl, nginx }
}

/// Units and programs the incidents need, written before boot.
fn prepare_units(root: &Path, nginx: &str) {
    let (ip, port) = nginx.split_once(':').expect("ip:port");
    // Health check run by a timer (incident "timer").
    write(
        root,
        "/opt/aiops/health.sh",
        &format!(
            "#!/bin/bash\n# Probe the local web server and record the result.\n\
             line=$( (exec 3<>/dev/tcp/{ip}/{port} && printf 'HEAD / HTTP/1.0\\r\\n\\r\\n' >&3 && head -n 1 <&3) 2>/dev/null )\n\
             case $line in *' 200 '*) s=OK ;; '') s=DOWN ;; *) s=BAD ;; esac\n\
             echo \"$(date -Is) STATUS: $s\" >> /var/log/aiops-health.log\n"
        ),
        0o755,
    );
    write(
        root,
        "/etc/systemd/system/aiops-health.service",
        "[Unit]\nDescription=aiops health probe\n\n[Service]\nType=oneshot\nExecStart=/opt/aiops/health.sh\n",
        0o644,
    );
    write(
        root,
        "/etc/systemd/system/aiops-health.timer",
        "[Unit]\nDescription=aiops health probe every 10 s\n\n[Timer]\nOnActiveSec=1s\nOnUnitActiveSec=10s\nAccuracySec=1s\n\n[Install]\nWantedBy=timers.target\n",
        0o644,
    );
    // A report daemon that keeps its log open (incident "deleted-open").
    write(
        root,
        "/usr/local/bin/aiops-report",
        "#!/bin/bash\nmkdir -p /var/log/aiops-report\nexec 3>>/var/log/aiops-report/report.log\n\
         yes '2026-12-01T19:00:00Z report: batch 4711 rendered, 12 pages, 3 charts' | head -c 48M >&3\n\
         echo ready > /var/lib/aiops-report.ready\nexec sleep infinity\n",
        0o755,
    );
    write(
        root,
        "/etc/systemd/system/aiops-report.service",
        "[Unit]\nDescription=aiops report renderer\n\n[Service]\nExecStart=/usr/local/bin/aiops-report\n",
        0o644,
    );
    // A debug writer somebody left running (incident "runaway-writer").
    write(
        root,
        "/usr/local/bin/logtest",
        "#!/bin/bash\nexec 3>>/var/log/bad.log\nn=0\n\
         while :; do n=$((n+1)); echo \"$(date -Is) logtest: debug line $n payload=xxxxxxxxxxxxxxxxxxxxxxxx\" >&3; sleep 0.1; done\n",
        0o755,
    );
    // A developer's server left on nginx's address (incident "port-taken").
    write(
        root,
        "/usr/local/bin/devserver",
        "#!/usr/bin/perl\nuse strict;\nuse IO::Socket::INET;\n\
         my $s = IO::Socket::INET->new(LocalAddr => $ARGV[0], Listen => 5, ReuseAddr => 1) or die \"$!\\n\";\n\
         while (my $c = $s->accept) { print $c \"HTTP/1.0 503 Service Unavailable\\r\\n\\r\\n\"; close $c }\n",
        0o755,
    );
    // A backup job run by cron (incident "cron").
    write(
        root,
        "/usr/local/bin/aiops-backup",
        "#!/bin/sh\nmkdir -p /var/backups/aiops\ndate -Is > /var/backups/aiops/last-run\n",
        0o755,
    );
}

/// `GET /` from the host: (status line, body).
fn http_get(addr: &str) -> (String, String) {
    let Ok(mut s) = std::net::TcpStream::connect_timeout(
        &addr.parse().expect("address"),
        Duration::from_secs(5),
    ) else {
        return ("connection refused".into(), String::new());
    };
    s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    let _ = write!(
        s,
        "GET / HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n"
    );
    let mut buf = Vec::new();
    let _ = s.read_to_end(&mut buf);
    let resp = String::from_utf8_lossy(&buf).to_string();
    let (head, body) = resp.split_once("\r\n\r\n").unwrap_or((&resp, ""));
    (
        head.lines().next().unwrap_or_default().trim().to_string(),
        body.to_string(),
    )
}

/// One incident's run: its steps go through `aiops run`; a failed expectation names the
/// incident and the step.
struct Incident<'a> {
    name: &'static str,
    t: &'a Target,
    /// Findings that do not stop the incident (a diagnostic that needed an approval).
    soft: Vec<String>,
}

type Step<T> = Result<T, String>;

fn out(a: &Value) -> String {
    format!(
        "{}{}",
        a["stdout"].as_str().unwrap_or_default(),
        a["stderr"].as_str().unwrap_or_default()
    )
}

fn exit(a: &Value) -> i64 {
    a["exit_code"].as_i64().unwrap_or(-1)
}

fn brief(a: &Value) -> String {
    let mut s = a.to_string();
    if s.len() > 1500 {
        let mut cut = 1500;
        while !s.is_char_boundary(cut) {
            cut -= 1;
        }
        s.truncate(cut);
        s.push('…');
    }
    s
}

impl<'a> Incident<'a> {
    fn new(name: &'static str, t: &'a Target) -> Self {
        eprintln!("== incident {name}");
        Incident {
            name,
            t,
            soft: Vec::new(),
        }
    }

    fn fail(&self, step: &str, why: impl std::fmt::Display) -> String {
        format!("incident {}: step `{step}`: {why}", self.name)
    }

    /// A diagnostic: must be auto-allowed, executed at once, and not refused by sudo. A
    /// failure is recorded and the incident goes on (an SRE would look elsewhere); one that
    /// asks for an approval is approved (a human would, to go on). Returns the answer.
    fn look(&mut self, command: &str) -> Value {
        let t0 = Instant::now();
        let a = self.t.ctl.run("srv1", command);
        let a = if a["status"] == "approval_requested" {
            self.soft.push(self.fail(
                command,
                format!(
                    "a read-only diagnostic needed an approval (risk {}: {})",
                    a["risk"], a["reasons"]
                ),
            ));
            self.t.ctl.approve()
        } else {
            if a["risk"] != "auto_allowed" {
                self.soft
                    .push(self.fail(command, format!("not auto_allowed: {}", brief(&a))));
            }
            a
        };
        if a["status"] != "executed" {
            self.soft
                .push(self.fail(command, format!("not executed: {}", brief(&a))));
            return a;
        }
        let stderr = a["stderr"].as_str().unwrap_or_default();
        if stderr.contains("sudo:") {
            self.soft.push(self.fail(
                command,
                format!("sudo refused the diagnostic: {}", stderr.trim()),
            ));
        }
        eprintln!(
            "  look {command}  -> exit {} ({:?})",
            a["exit_code"],
            t0.elapsed()
        );
        a
    }

    /// A diagnostic whose output must show `needle` (what the SRE learns from it).
    fn look_for(&mut self, command: &str, needle: &str) -> Value {
        let a = self.look(command);
        if a["status"] == "executed" && !out(&a).contains(needle) {
            self.soft.push(self.fail(
                command,
                format!("the output does not show {needle:?}: {}", brief(&a)),
            ));
        }
        a
    }

    /// What the SRE read from a diagnostic's output (`seen`), or, when the diagnostic could
    /// not show it, the value the set-up knows (recorded as a failure of that step).
    fn learned(&mut self, command: &str, seen: Option<String>, known: &str) -> String {
        match seen {
            Some(v) if v == known => v,
            other => {
                self.soft
                    .push(self.fail(command, format!("did not show {known:?} (read {other:?})")));
                known.to_string()
            }
        }
    }

    /// A fix: approval requested, approved by a human, executed, exit 0.
    fn fix(&mut self, command: &str) -> Step<Value> {
        let t0 = Instant::now();
        let first = self.t.ctl.run("srv1", command);
        if first["status"] != "approval_requested" {
            return Err(self.fail(
                command,
                format!("a fix must ask for an approval: {}", brief(&first)),
            ));
        }
        let a = self.t.ctl.approve();
        if a["status"] != "executed" {
            return Err(self.fail(command, format!("approved but not executed: {}", brief(&a))));
        }
        if exit(&a) != 0 {
            return Err(self.fail(
                command,
                format!(
                    "approved, executed, exit {}: {}",
                    a["exit_code"],
                    out(&a).trim()
                ),
            ));
        }
        // The target's own audit has it: this request, approved, executed, exit 0.
        let audit = aiops_e2e::read_jsonl(&self.t.c.root.join("var/log/aiops-agent/audit.jsonl"));
        if !audit.iter().any(|r| {
            r["event"] == "executed"
                && r["request_id"] == a["request_id"]
                && r["command"] == command
                && r["exit_code"] == 0
                && r["approval_id"].as_str().is_some_and(|s| !s.is_empty())
        }) {
            return Err(self.fail(
                command,
                format!(
                    "no approved, executed record of {} in the agent's audit",
                    a["request_id"]
                ),
            ));
        }
        eprintln!("  fix  {command}  -> exit 0 ({:?})", t0.elapsed());
        Ok(a)
    }

    fn check(&self, what: &str, ok: bool, detail: impl std::fmt::Display) -> Step<()> {
        if ok {
            eprintln!("  check {what}: ok");
            Ok(())
        } else {
            Err(self.fail(&format!("check: {what}"), detail))
        }
    }

    /// Polls a check (the target changes on its own time: timers, cron, restarts).
    fn check_soon(
        &self,
        what: &str,
        secs: u64,
        mut f: impl FnMut() -> Result<(), String>,
    ) -> Step<()> {
        let start = Instant::now();
        loop {
            match f() {
                Ok(()) => {
                    eprintln!("  check {what}: ok");
                    return Ok(());
                }
                Err(e) if start.elapsed() > Duration::from_secs(secs) => {
                    return Err(self.fail(&format!("check: {what}"), e));
                }
                Err(_) => std::thread::sleep(Duration::from_millis(250)),
            }
        }
    }
}

fn state(c: &Container, verb: &str, unit: &str) -> String {
    String::from_utf8_lossy(&c.exec(&["systemctl", verb, unit]).stdout)
        .trim()
        .to_string()
}

fn failed_unit(c: &Container, unit: &str) {
    wait_until(&format!("{unit} to be failed (set-up)"), 30, || {
        state(c, "is-failed", unit) == "failed"
    });
}

/// The column `col` (0-based) of the first line of `text` containing `needle`.
fn column(text: &str, needle: &str, col: usize) -> Option<String> {
    text.lines()
        .find(|l| l.contains(needle))
        .and_then(|l| l.split_whitespace().nth(col))
        .map(str::to_string)
}

/// A process in the container that has `path` open (from its /proc, read from the host side
/// through nsenter): `Some(pid)`.
fn holder(c: &Container, path: &str) -> Option<String> {
    let o = c.exec(&[
        "sh",
        "-c",
        &format!(
            "for f in /proc/[0-9]*/fd/*; do [ \"$(readlink \"$f\")\" = '{path}' ] && echo \"${{f#/proc/}}\"; done; true"
        ),
    ]);
    String::from_utf8_lossy(&o.stdout)
        .lines()
        .next()
        .map(|l| l.split('/').next().unwrap_or_default().to_string())
}

// ---------------------------------------------------------------------------------------
// The incidents.

const DROPIN: &str = "/etc/systemd/system/nginx.service.d/10-staging.conf";
const PAGE: &str = "/var/www/html/index.html";
const PAGE_BODY: &str = "hello from aiops\n";

/// Set-up shared by the web incidents: nginx healthy whatever an earlier incident left
/// (each incident is proven on its own).
fn reset_nginx(t: &Target) {
    let _ = std::fs::remove_file(t.c.root.join(DROPIN.trim_start_matches('/')));
    let page = t.c.root.join(PAGE.trim_start_matches('/'));
    if page.exists() {
        std::fs::set_permissions(&page, std::fs::Permissions::from_mode(0o644)).expect("chmod");
    }
    let _ = t.c.exec(&["sh", "-c", "pkill -x devserver; true"]);
    t.c.sh("systemctl daemon-reload && systemctl reset-failed nginx; systemctl restart nginx");
    wait_until("nginx to answer (set-up)", 30, || {
        http_get(&t.nginx).0 == "HTTP/1.1 200 OK"
    });
}

/// A service down: a leftover systemd drop-in points nginx's pre-start check at a staging
/// config that does not exist here. The fix removes the drop-in.
fn nginx_dropin(t: &Target) -> Result<(), Vec<String>> {
    let mut i = Incident::new("nginx-dropin", t);
    reset_nginx(t);
    write(
        &t.c.root,
        DROPIN,
        "[Service]\nExecStartPre=\nExecStartPre=/usr/sbin/nginx -t -q -c /etc/nginx/staging.conf\n",
        0o644,
    );
    t.c.sh("systemctl daemon-reload");
    let _ = t.c.exec(&["systemctl", "restart", "nginx"]);
    failed_unit(&t.c, "nginx");
    let r = (|| -> Step<()> {
        i.check(
            "broken before (set-up)",
            http_get(&t.nginx).0 == "connection refused",
            "nginx still answers",
        )?;
        let a = i.look("systemctl is-active nginx");
        i.check(
            "is-active says failed",
            out(&a).trim() == "failed",
            brief(&a),
        )?;
        i.look_for("systemctl status nginx --no-pager", "10-staging.conf");
        i.look_for("sudo journalctl -u nginx -n 50 --no-pager", "staging.conf");
        i.look_for("systemctl cat nginx --no-pager", DROPIN);
        i.fix(&format!("sudo rm {DROPIN}"))?;
        i.fix("sudo systemctl daemon-reload")?;
        i.fix("sudo systemctl restart nginx")?;
        let a = i.look("systemctl is-active nginx");
        i.check(
            "is-active says active",
            out(&a).trim() == "active",
            brief(&a),
        )?;
        i.check(
            "the drop-in is gone",
            !t.c.root.join(DROPIN.trim_start_matches('/')).exists(),
            "still there",
        )?;
        let (status, _) = http_get(&t.nginx);
        i.check("GET / answers 200", status == "HTTP/1.1 200 OK", &status)
    })();
    finish(i, r)
}

/// A file the daemon cannot read: the new index page was deployed as root with mode 0600;
/// nginx's workers (www-data) cannot open it and answer 403.
fn index_permissions(t: &Target) -> Result<(), Vec<String>> {
    let mut i = Incident::new("index-permissions", t);
    reset_nginx(t);
    write(&t.c.root, PAGE, PAGE_BODY, 0o600);
    let r = (|| -> Step<()> {
        let (status, _) = http_get(&t.nginx);
        i.check(
            "broken before (set-up)",
            status == "HTTP/1.1 403 Forbidden",
            &status,
        )?;
        i.look_for(
            "sudo tail -n 20 /var/log/nginx/error.log",
            "(13: Permission denied)",
        );
        i.look_for(&format!("ls -l {PAGE}"), "-rw------- 1 root root");
        i.look_for("ps -o user,pid,cmd -C nginx", "www-data");
        i.fix(&format!("sudo chmod 644 {PAGE}"))?;
        let (status, got) = http_get(&t.nginx);
        i.check(
            "GET / serves the page",
            status == "HTTP/1.1 200 OK" && got == PAGE_BODY,
            format!("{status}: {got:?}"),
        )
    })();
    finish(i, r)
}

/// Disk space that will not come back: the report daemon's log was deleted while the daemon
/// holds it open. The fix empties it through the daemon's descriptor; the daemon keeps
/// running.
fn deleted_open_file(t: &Target) -> Result<(), Vec<String>> {
    let mut i = Incident::new("deleted-open-file", t);
    t.c.sh("systemctl start aiops-report");
    wait_until("the report daemon to write its log (set-up)", 60, || {
        t.c.root.join("var/lib/aiops-report.ready").exists()
    });
    let pid = t.c.main_pid("aiops-report").to_string();
    std::fs::remove_file(t.c.root.join("var/log/aiops-report/report.log")).expect("rm log");
    let fd_size = |fd: &str| {
        let o =
            t.c.exec(&["stat", "-L", "-c", "%s", &format!("/proc/{pid}/fd/{fd}")]);
        String::from_utf8_lossy(&o.stdout)
            .trim()
            .parse::<u64>()
            .unwrap_or(u64::MAX)
    };
    let r = (|| -> Step<()> {
        i.check("48 MiB held (set-up)", fd_size("3") == 48 << 20, "not held")?;
        i.look("df -h /");
        i.look_for("sudo du -sh /var/log", "/var/log");
        let cmd = "sudo lsof +L1";
        let o = out(&i.look_for(cmd, "report.log (deleted)"));
        let seen_pid = column(&o, "report.log (deleted)", 1);
        let pid = i.learned(cmd, seen_pid, &pid);
        let seen_fd = column(&o, "report.log (deleted)", 3)
            .map(|f| f.chars().take_while(char::is_ascii_digit).collect());
        let fd = i.learned(cmd, seen_fd, "3");
        i.look_for(
            &format!("sudo ls -l /proc/{pid}/fd"),
            "report.log (deleted)",
        );
        i.fix(&format!("sudo truncate -s 0 /proc/{pid}/fd/{fd}"))?;
        i.check(
            "the deleted file is empty",
            fd_size(&fd) == 0,
            format!("{} bytes", fd_size(&fd)),
        )?;
        i.check(
            "the daemon still runs, same process",
            state(&t.c, "is-active", "aiops-report") == "active"
                && t.c.main_pid("aiops-report").to_string() == pid,
            "restarted or stopped",
        )
    })();
    finish(i, r)
}

/// A broken timer: the health probe lost its execute bit in a deployment and its timer was
/// left disabled; the health log is not updated.
fn health_timer(t: &Target) -> Result<(), Vec<String>> {
    let mut i = Incident::new("health-timer", t);
    reset_nginx(t);
    let script = "/opt/aiops/health.sh";
    std::fs::set_permissions(
        t.c.root.join(script.trim_start_matches('/')),
        std::fs::Permissions::from_mode(0o644),
    )
    .expect("chmod");
    let _ = t.c.exec(&["systemctl", "start", "aiops-health.service"]);
    failed_unit(&t.c, "aiops-health.service");
    let log = t.c.root.join("var/log/aiops-health.log");
    let r = (|| -> Step<()> {
        i.check("no health log (set-up)", !log.exists(), "exists")?;
        i.look_for(
            "systemctl list-unit-files --type=timer --no-pager",
            "aiops-health.timer",
        );
        i.look_for(
            "systemctl status aiops-health.timer --no-pager",
            "inactive (dead)",
        );
        i.look_for(
            "systemctl status aiops-health.service --no-pager",
            "203/EXEC",
        );
        i.look_for(
            "sudo journalctl -u aiops-health -n 20 --no-pager",
            "Permission denied",
        );
        i.look_for(&format!("ls -l {script}"), "-rw-r--r--");
        i.fix(&format!("sudo chmod 755 {script}"))?;
        i.fix("sudo systemctl enable --now aiops-health.timer")?;
        i.check(
            "the timer is enabled and active",
            state(&t.c, "is-enabled", "aiops-health.timer") == "enabled"
                && state(&t.c, "is-active", "aiops-health.timer") == "active",
            format!(
                "{} / {}",
                state(&t.c, "is-enabled", "aiops-health.timer"),
                state(&t.c, "is-active", "aiops-health.timer")
            ),
        )?;
        i.check_soon("the health log says STATUS: OK", 30, || {
            let l = std::fs::read_to_string(&log).unwrap_or_default();
            if l.contains("STATUS: OK") {
                Ok(())
            } else {
                Err(format!("log: {l:?}"))
            }
        })
    })();
    finish(i, r)
}

/// A process to find and stop: a debug writer somebody started by hand fills
/// /var/log/bad.log. Stop it; keep the log.
fn runaway_writer(t: &Target) -> Result<(), Vec<String>> {
    let mut i = Incident::new("runaway-writer", t);
    let log = "/var/log/bad.log";
    t.c.sh("setsid /usr/local/bin/logtest </dev/null >/dev/null 2>&1 &");
    wait_until("the writer to hold the log (set-up)", 20, || {
        holder(&t.c, log).is_some()
    });
    let known = holder(&t.c, log).expect("writer");
    let r = (|| -> Step<()> {
        i.look_for(&format!("ls -l {log}"), log);
        i.look_for(&format!("tail -n 3 {log}"), "logtest: debug line");
        let cmd = format!("sudo lsof {log}");
        let o = out(&i.look_for(&cmd, log));
        let pid = i.learned(&cmd, column(&o, log, 1), &known);
        i.look_for(
            "pgrep -a logtest",
            &format!("{pid} /bin/bash /usr/local/bin/logtest"),
        );
        i.look_for(
            &format!("ps -o pid,ppid,user,lstart,cmd -p {pid}"),
            "/usr/local/bin/logtest",
        );
        i.fix(&format!("sudo kill {pid}"))?;
        i.check_soon("nothing writes the log any more", 10, || {
            match holder(&t.c, log) {
                None => Ok(()),
                Some(p) => Err(format!("pid {p} holds it")),
            }
        })?;
        i.check(
            "the log is kept",
            t.c.root.join(log.trim_start_matches('/')).is_file(),
            "deleted",
        )
    })();
    finish(i, r)
}

/// A file to write under /etc: the application expects `db.internal` to resolve here.
fn hosts_entry(t: &Target) -> Result<(), Vec<String>> {
    let mut i = Incident::new("hosts-entry", t);
    let r = (|| -> Step<()> {
        let a = i.look("getent hosts db.internal");
        i.check("does not resolve before", exit(&a) == 2, brief(&a))?;
        i.look_for("cat /etc/hosts", &t.c.name);
        i.fix("echo '127.0.0.1 db.internal' | sudo tee -a /etc/hosts")?;
        let hosts = std::fs::read_to_string(t.c.root.join("etc/hosts")).unwrap_or_default();
        i.check(
            "the entry is the file's last line, the rest kept",
            hosts.ends_with("\n127.0.0.1 db.internal\n") && hosts.contains(&t.c.name),
            format!("{hosts:?}"),
        )?;
        let o = t.c.exec(&["getent", "hosts", "db.internal"]);
        let got = String::from_utf8_lossy(&o.stdout).to_string();
        i.check("db.internal resolves", got.starts_with("127.0.0.1"), got)
    })();
    finish(i, r)
}

/// Files to fix under /home/admin: deploy scripts copied from Windows have CRLF line ends,
/// so `#!/bin/bash\r` is not found.
fn crlf_scripts(t: &Target) -> Result<(), Vec<String>> {
    let mut i = Incident::new("crlf-scripts", t);
    let dir = "/home/admin/deploy";
    for name in ["build", "release"] {
        write(
            &t.c.root,
            &format!("{dir}/{name}.sh"),
            &format!("#!/bin/bash\r\nset -e\r\necho \"{name} ok\"\r\n"),
            0o755,
        );
    }
    t.c.sh(&format!("chown -R admin:admin {dir}"));
    let admin_uid: u32 = t.c.sh("id -u admin").parse().expect("uid");
    let run_as_admin = |name: &str| {
        t.c.exec(&["runuser", "-u", "admin", "--", &format!("{dir}/{name}.sh")])
    };
    let r = (|| -> Step<()> {
        let o = run_as_admin("release");
        i.check(
            "broken before (set-up)",
            !o.status.success() && String::from_utf8_lossy(&o.stderr).contains("No such file"),
            text(&o),
        )?;
        i.look_for(&format!("ls -l {dir}"), "release.sh");
        i.look_for(&format!("file {dir}/*.sh"), "with CRLF line terminators");
        i.look_for(&format!("cat -A {dir}/release.sh"), "#!/bin/bash^M$");
        i.fix(&format!("sudo sed -i 's/\\r$//' {dir}/*.sh"))?;
        for name in ["build", "release"] {
            let o = run_as_admin(name);
            i.check(
                &format!("{name}.sh runs"),
                o.status.success() && String::from_utf8_lossy(&o.stdout) == format!("{name} ok\n"),
                text(&o),
            )?;
            let meta = std::fs::metadata(t.c.root.join(format!("home/admin/deploy/{name}.sh")))
                .expect("meta");
            i.check(
                &format!("{name}.sh is still admin's, mode 755"),
                meta.uid() == admin_uid && meta.mode() & 0o7777 == 0o755,
                format!("uid {} mode {:o}", meta.uid(), meta.mode()),
            )?;
        }
        Ok(())
    })();
    finish(i, r)
}

/// A port taken by another process: a developer's test server, started by hand, holds
/// nginx's address; nginx cannot start.
fn port_taken(t: &Target) -> Result<(), Vec<String>> {
    let mut i = Incident::new("port-taken", t);
    reset_nginx(t);
    t.c.sh("systemctl stop nginx");
    t.c.sh(&format!(
        "setsid /usr/local/bin/devserver {} </dev/null >/dev/null 2>&1 &",
        t.nginx
    ));
    wait_until("the dev server to hold the port (set-up)", 20, || {
        http_get(&t.nginx).0.contains("503")
    });
    let known = holder_of_port(&t.c, &t.nginx);
    let _ = t.c.exec(&["systemctl", "start", "nginx"]);
    failed_unit(&t.c, "nginx");
    wait_until("nginx's bind error in the journal (set-up)", 20, || {
        String::from_utf8_lossy(
            &t.c.exec(&["journalctl", "-u", "nginx", "-n", "50", "--no-pager"])
                .stdout,
        )
        .contains("Address already in use")
    });
    let port = t.nginx.split(':').nth(1).expect("port").to_string();
    let r = (|| -> Step<()> {
        i.look_for("systemctl status nginx --no-pager", "failed");
        i.look_for(
            "sudo journalctl -u nginx -n 50 --no-pager",
            "Address already in use",
        );
        let cmd = "sudo ss -tlnp";
        let o = out(&i.look_for(cmd, "\"devserver\""));
        let seen = o
            .lines()
            .find(|l| l.contains(&t.nginx))
            .and_then(|l| l.split("pid=").nth(1))
            .and_then(|s| s.split(',').next())
            .map(str::to_string);
        let pid = i.learned(cmd, seen, &known);
        i.look_for(&format!("ps -o pid,user,lstart,cmd -p {pid}"), "devserver");
        i.fix(&format!("sudo kill {pid}"))?;
        i.fix("sudo systemctl restart nginx")?;
        i.look_for(&format!("sudo ss -tlnp sport = :{port}"), "nginx");
        let (status, _) = http_get(&t.nginx);
        i.check("GET / answers 200", status == "HTTP/1.1 200 OK", &status)
    })();
    finish(i, r)
}

/// The pid (inside the container) of the process listening on `addr` (set-up knowledge).
fn holder_of_port(c: &Container, addr: &str) -> String {
    let o = c.sh("ss -Htlnp");
    o.lines()
        .find(|l| l.contains(addr))
        .and_then(|l| l.split("pid=").nth(1))
        .and_then(|s| s.split(',').next())
        .unwrap_or_else(|| panic!("nothing listens on {addr}: {o}"))
        .to_string()
}

/// A bad cron entry: a deploy tool prepended a line without `#` to the backup job's file;
/// cron ignores the whole file. The diagnostics run; the fix an SRE types is *forbidden*,
/// even with an approval: the policy never lets aiops write cron files (persistence as
/// root, knowledge/AI_OPS_RULES.md rule 5). This class cannot be fixed through aiops by
/// design, so it is not counted as an incident fixed; what is checked is the refusal: the
/// answer, the file unchanged, the job still not run, the controller's audit record.
fn cron_entry_refused(t: &Target) -> Result<(), Vec<String>> {
    let mut i = Incident::new("cron-entry (fix refused by design)", t);
    let file = "/etc/cron.d/aiops-backup";
    let body = "deployed by config-sync on 2026-11-30\n# Backup heartbeat, every minute.\n* * * * * root /usr/local/bin/aiops-backup >/dev/null 2>&1\n";
    write(&t.c.root, file, body, 0o644);
    t.c.sh("systemctl restart cron");
    wait_until("cron to reject the file (set-up)", 30, || {
        String::from_utf8_lossy(&t.c.exec(&["journalctl", "-u", "cron", "--no-pager"]).stdout)
            .contains("aiops-backup")
    });
    let r = (|| -> Step<()> {
        i.look_for("systemctl status cron --no-pager", "active (running)");
        i.look_for("sudo journalctl -u cron -n 50 --no-pager", "Syntax error");
        i.look_for(&format!("cat {file}"), "deployed by");
        let fix = format!("sudo sed -i '1d' {file}");
        let a = t.ctl.run("srv1", &fix);
        i.check(
            "the fix is forbidden, no approval offered",
            a["status"] == "forbidden" && a["risk"] == "forbidden" && a["approval_id"].is_null(),
            brief(&a),
        )?;
        let now = std::fs::read_to_string(t.c.root.join(file.trim_start_matches('/')))
            .unwrap_or_default();
        i.check("the file is unchanged", now == body, format!("{now:?}"))?;
        i.check(
            "the job never ran",
            !t.c.root.join("var/backups/aiops/last-run").exists(),
            "it ran",
        )?;
        let audit = aiops_e2e::read_jsonl(&t.ctl.dir().join("audit.jsonl"));
        i.check(
            "the controller audited the refusal",
            audit
                .iter()
                .any(|r| r["command"] == fix.as_str() && r["event"] == "forbidden"),
            format!(
                "{:?}",
                audit
                    .iter()
                    .filter(|r| r["command"] == fix.as_str())
                    .collect::<Vec<_>>()
            ),
        )
    })();
    finish(i, r)
}

fn finish(i: Incident, r: Step<()>) -> Result<(), Vec<String>> {
    let mut errs = i.soft;
    if let Err(e) = r {
        errs.push(e);
    }
    if errs.is_empty() {
        eprintln!("== incident {}: passed", i.name);
        Ok(())
    } else {
        for e in &errs {
            eprintln!("  FAILED {e}");
        }
        Err(errs)
    }
}

/// The package's files are as shipped: no sudoers rule and no policy entry for an incident.
fn as_shipped(t: &Target) {
    // Only the enrollment (setup-aiops.sh: name, address) changes a file of the package.
    let v = t.c.exec(&["dpkg", "--verify", "aiops-agent"]);
    let changed: Vec<String> = String::from_utf8_lossy(&v.stdout)
        .lines()
        .filter(|l| !l.ends_with(" /etc/aiops-agent/agent.yml"))
        .map(str::to_string)
        .collect();
    assert!(
        v.status.success() && changed.is_empty(),
        "aiops-agent files differ from the package: {changed:?}\n{}",
        text(&v)
    );
    // Every sudoers drop-in is a copy of a file the package ships (dpkg verified those).
    let shipped: Vec<Vec<u8>> = std::fs::read_dir(t.c.root.join("usr/share/aiops-agent"))
        .expect("/usr/share/aiops-agent")
        .flatten()
        .filter_map(|e| std::fs::read(e.path()).ok())
        .collect();
    for e in std::fs::read_dir(t.c.root.join("etc/sudoers.d"))
        .expect("sudoers.d")
        .flatten()
    {
        let name = e.file_name().to_string_lossy().to_string();
        if name == "README" {
            continue;
        }
        let body = std::fs::read(e.path()).expect("sudoers file");
        assert!(
            shipped.contains(&body),
            "/etc/sudoers.d/{name} is not a file the package ships"
        );
    }
    let shipped =
        std::fs::read_to_string(aiops_e2e::nspawn::workspace().join("packaging/agent/policy.yml"))
            .expect("shipped policy");
    let installed =
        std::fs::read_to_string(t.c.root.join("etc/aiops-agent/policy.yml")).expect("policy");
    assert_eq!(
        installed, shipped,
        "the agent's policy is not the shipped one"
    );
    let cfg = std::fs::read_to_string(t.ctl.config()).expect("controller config");
    assert!(
        !cfg.contains("auto_allow") && !cfg.contains("allow:") && !cfg.contains("sudo"),
        "the controller config has policy entries: {cfg}"
    );
}

#[test]
fn incidents_are_fixed_through_aiops_run_on_a_real_target() {
    let t0 = Instant::now();
    let t = boot_target();
    eprintln!("target booted and enrolled in {:?}", t0.elapsed());
    as_shipped(&t);
    type Case = (&'static str, fn(&Target) -> Result<(), Vec<String>>);
    let cases: &[Case] = &[
        ("nginx-dropin", nginx_dropin),
        ("index-permissions", index_permissions),
        ("deleted-open-file", deleted_open_file),
        ("health-timer", health_timer),
        ("runaway-writer", runaway_writer),
        ("hosts-entry", hosts_entry),
        ("crlf-scripts", crlf_scripts),
        ("port-taken", port_taken),
    ];
    let mut failed: Vec<(&str, Vec<String>)> = Vec::new();
    for (name, f) in cases {
        if let Err(e) = f(&t) {
            failed.push((name, e));
        }
    }
    let refusal = cron_entry_refused(&t);
    as_shipped(&t);
    let v = t.ctl.ok(&["audit", "verify"]);
    assert_eq!(v["status"], "ok", "controller audit: {v}");
    let agent: Value =
        serde_json::from_str(&t.c.sh("aiops-agent audit verify")).expect("agent verify JSON");
    assert_eq!(agent["status"], "ok", "agent audit: {agent}");
    eprintln!(
        "incidents: {} of {} fixed in {:?}",
        cases.len() - failed.len(),
        cases.len(),
        t0.elapsed()
    );
    assert!(
        failed.is_empty(),
        "{} of {} incidents not fixed:\n{}",
        failed.len(),
        cases.len(),
        failed
            .iter()
            .flat_map(|(_, e)| e.iter().map(|l| format!("- {l}")))
            .collect::<Vec<_>>()
            .join("\n")
    );
    if let Err(e) = refusal {
        panic!("the forbidden cron fix:\n{}", e.join("\n"));
    }
}
