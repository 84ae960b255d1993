//! The runbooks proven on a real target: a booted Debian bookworm container (see
//! `aiops_e2e::nspawn`) with the agent .deb installed and enrolled. Each test breaks a
//! service from the host side (files under the container root; `nsenter` for set-up only),
//! then runs the runbook's `aiops-steps`, in order, through `aiops run` (one scenario through
//! `aiops mcp`), checking each step's risk and status, approving the approval steps, and at
//! the end the service's health from outside and both audit chains.
//!
//! The commands are the runbook's text. Only what the runbook itself says to change is
//! changed: `<PID>` is read from an earlier step's output, and the port-in-use worked
//! example's port 8080 becomes a free loopback port (the container shares the host's
//! network). `curl` is not on the target, so a `curl -sSI URL` step is an HTTP request from
//! the host to the service's loopback address.

use std::io::{Read, Write};
use std::time::{Duration, Instant};

use aiops_controller::bootstrap::{self, DOCS};
use aiops_e2e::mcp::McpClient;
use aiops_e2e::nspawn::{
    Container, Controller, install_agent, loopback_endpoint, nginx_on, wait_until,
};
use serde_json::{Value, json};

/// A container with nginx on its own loopback address and an enrolled agent as `srv1`.
struct Target {
    c: Container,
    ctl: Controller,
    nginx: String,
}

/// One container of this file at a time: parallel targets share the host network, and
/// free-port picks are not reservations (a parallel nginx lost its port once under load).
fn serial() -> std::sync::MutexGuard<'static, ()> {
    static SERIAL: std::sync::Mutex<()> = std::sync::Mutex::new(());
    SERIAL
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
}

fn target(tag: &str, salt: u32, prepare: impl FnOnce(&std::path::Path)) -> Target {
    let (ip, port) = loopback_endpoint(salt);
    let (nginx_ip, nginx_port) = loopback_endpoint(salt + 1);
    let address = format!("{ip}:{port}");
    let c = Container::boot(tag, |root| {
        nginx_on(root, &nginx_ip, nginx_port);
        prepare(root);
    });
    let ctl = Controller::new("srv1", &address);
    install_agent(&c, &ctl, "srv1", &address);
    Target {
        c,
        ctl,
        nginx: format!("{nginx_ip}:{nginx_port}"),
    }
}

/// The `(risk, command)` steps of a runbook, from the compiled-in text.
fn steps(file: &str) -> Vec<(String, String)> {
    let doc = DOCS
        .iter()
        .find(|d| d.file == file)
        .unwrap_or_else(|| panic!("{file} is not a compiled-in document"));
    let steps = bootstrap::runbook_steps(doc.text);
    assert!(!steps.is_empty(), "{file} has no aiops-steps");
    steps
}

/// `HEAD /` from the host; returns the status line.
fn http_head(addr: &str) -> String {
    let mut s = std::net::TcpStream::connect_timeout(
        &addr.parse().expect("address"),
        Duration::from_secs(5),
    )
    .unwrap_or_else(|e| panic!("HTTP connect to {addr}: {e}"));
    s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    write!(
        s,
        "HEAD / HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n"
    )
    .unwrap();
    let mut buf = Vec::new();
    let _ = s.read_to_end(&mut buf);
    String::from_utf8_lossy(&buf)
        .lines()
        .next()
        .unwrap_or_default()
        .to_string()
}

/// How a step is sent: through `aiops run`, or through `aiops mcp`'s `run_action`.
enum Via<'a> {
    Run,
    Mcp(&'a mut Mcp),
}

/// Runs one runbook step and checks what the runbook promises: `auto_allowed` runs at once;
/// `approval_required` waits for an approver, runs once approved; `forbidden` never runs.
/// Returns the answer of the executed command. Panics when sudo refused a step.
fn step(t: &Target, via: &mut Via, risk: &str, command: &str) -> Value {
    let t0 = Instant::now();
    let first = match via {
        Via::Run => t.ctl.run("srv1", command),
        Via::Mcp(m) => m.run_action(command),
    };
    assert_eq!(first["risk"], risk, "step `{command}`: {first}");
    let answer = match risk {
        "auto_allowed" => first,
        "approval_required" => {
            assert_eq!(
                first["status"], "approval_requested",
                "step `{command}`: {first}"
            );
            match via {
                Via::Run => t.ctl.approve(),
                Via::Mcp(m) => {
                    let id = first["approval_id"].as_str().expect("approval_id");
                    t.ctl.ok(&["approvals", "approve", id]);
                    let st = m.tool("approval_status", json!({"approval_id": id}));
                    assert_eq!(st["approval"]["state"], "used", "{st}");
                    assert_eq!(st["result"]["event"], "executed", "{st}");
                    let mut r = st["result"].clone();
                    r["status"] = "executed".into();
                    r
                }
            }
        }
        "forbidden" => {
            assert_eq!(first["status"], "forbidden", "step `{command}`: {first}");
            return first;
        }
        other => panic!("unknown risk {other} for `{command}`"),
    };
    assert_eq!(answer["status"], "executed", "step `{command}`: {answer}");
    let stderr = answer["stderr"].as_str().unwrap_or_default();
    assert!(
        !stderr.contains("sudo:"),
        "sudo refused runbook step `{command}` on the real target: {stderr}"
    );
    eprintln!(
        "  {risk:17} {command}  -> exit {} ({:?})",
        answer["exit_code"],
        t0.elapsed()
    );
    answer
}

fn exit(a: &Value) -> i64 {
    a["exit_code"].as_i64().unwrap_or(-1)
}

fn out(a: &Value) -> String {
    format!(
        "{}{}",
        a["stdout"].as_str().unwrap_or_default(),
        a["stderr"].as_str().unwrap_or_default()
    )
}

/// Both audit chains verify: the controller's, and the agent's inside the target.
fn audits_verify(t: &Target) {
    let v = t.ctl.ok(&["audit", "verify"]);
    assert_eq!(v["status"], "ok", "{v}");
    let agent = t.c.sh("aiops-agent audit verify");
    let v: Value = serde_json::from_str(&agent).expect("agent verify JSON");
    assert_eq!(v["status"], "ok", "{v}");
    assert!(v["records"].as_u64().unwrap() > 0, "{v}");
}

/// The state a set-up command must not fail to reach.
fn failed_unit(c: &Container, unit: &str) {
    wait_until(&format!("{unit} to be failed"), 30, || {
        String::from_utf8_lossy(&c.exec(&["systemctl", "is-failed", unit]).stdout).trim()
            == "failed"
    });
}

fn run_nginx_runbook(t: &Target, via: &mut Via) {
    // Break it the way the worked example says, then restart (set-up).
    let conf = t.c.root.join("etc/nginx/nginx.conf");
    let mut text = std::fs::read_to_string(&conf).expect("nginx.conf");
    text.push_str("aiops_broken_directive on;\n");
    std::fs::write(&conf, &text).expect("nginx.conf");
    let _ = t.c.exec(&["systemctl", "restart", "nginx"]);
    failed_unit(&t.c, "nginx");
    assert!(
        std::net::TcpStream::connect(&t.nginx).is_err(),
        "nginx still answers"
    );

    for (risk, command) in steps("RUNBOOK_NGINX_BAD_CONFIG.md") {
        if let Some(url) = command.strip_prefix("curl -sSI ") {
            assert_eq!(risk, "auto_allowed");
            assert_eq!(url, "http://127.0.0.1/");
            let status = http_head(&t.nginx);
            assert_eq!(
                status.trim_end(),
                "HTTP/1.1 200 OK",
                "GET {url} -> {}",
                t.nginx
            );
            continue;
        }
        let a = step(t, via, &risk, &command);
        let o = out(&a);
        let fixed = !t.c.root.join("etc/nginx/nginx.conf").exists()
            || !std::fs::read_to_string(&conf)
                .unwrap()
                .contains("aiops_broken_directive");
        match command.as_str() {
            "systemctl is-active nginx" if !fixed => {
                assert_eq!((exit(&a), o.trim()), (3, "failed"), "{a}")
            }
            "systemctl is-active nginx" => assert_eq!((exit(&a), o.trim()), (0, "active"), "{a}"),
            "sudo journalctl -u nginx -n 50 --no-pager" => {
                assert_eq!(exit(&a), 0, "{a}");
                assert!(o.contains("aiops_broken_directive"), "{a}");
            }
            "systemctl status nginx --no-pager -l" => {
                assert_eq!(exit(&a), 3, "{a}");
                assert!(o.contains("failed"), "{a}");
            }
            "sudo nginx -t" if !fixed => {
                assert_eq!(exit(&a), 1, "{a}");
                assert!(
                    o.contains(
                        "unknown directive \"aiops_broken_directive\" in /etc/nginx/nginx.conf:"
                    ),
                    "{a}"
                );
            }
            "sudo nginx -t" => {
                assert_eq!(exit(&a), 0, "{a}");
                assert!(
                    o.contains("syntax is ok") && o.contains("test is successful"),
                    "{a}"
                );
            }
            "grep -n aiops_broken_directive /etc/nginx/nginx.conf" => {
                assert_eq!(exit(&a), 0, "{a}");
                assert!(o.contains(":aiops_broken_directive on;"), "{a}");
            }
            _ => assert_eq!(exit(&a), 0, "step `{command}`: {a}"),
        }
    }
    // Healthy from outside, the offending line (only it) gone.
    assert_eq!(
        String::from_utf8_lossy(&t.c.exec(&["systemctl", "is-active", "nginx"]).stdout).trim(),
        "active"
    );
    assert_eq!(http_head(&t.nginx).trim_end(), "HTTP/1.1 200 OK");
    let after = std::fs::read_to_string(&conf).unwrap();
    assert_eq!(after, text.replace("aiops_broken_directive on;\n", ""));
    audits_verify(t);
}

#[test]
fn runbook_nginx_bad_config_on_a_real_target() {
    let _serial = serial();
    let t0 = Instant::now();
    let t = target("rb-nginx", 21, |_| {});
    run_nginx_runbook(&t, &mut Via::Run);
    eprintln!(
        "runbook_nginx_bad_config_on_a_real_target: {:?}",
        t0.elapsed()
    );
}

#[test]
fn runbook_demo_203_exec_on_a_real_target() {
    let _serial = serial();
    let t0 = Instant::now();
    let t = target("rb-203", 31, |root| {
        std::fs::create_dir_all(root.join("usr/local/bin")).unwrap();
        std::fs::write(
            root.join("usr/local/bin/aiops-demo"),
            "#!/bin/sh\nexec sleep infinity\n",
        )
        .unwrap();
        std::fs::write(
            root.join("etc/systemd/system/aiops-demo.service"),
            "[Unit]\nDescription=aiops demo\n\n[Service]\nExecStart=/usr/local/bin/aiops-demo\n",
        )
        .unwrap();
    });
    // The deployment left it without its execute bit.
    use std::os::unix::fs::PermissionsExt;
    let prog = t.c.root.join("usr/local/bin/aiops-demo");
    std::fs::set_permissions(&prog, std::fs::Permissions::from_mode(0o644)).unwrap();
    let _ = t.c.exec(&["systemctl", "start", "aiops-demo"]);
    failed_unit(&t.c, "aiops-demo");

    let mut via = Via::Run;
    for (risk, command) in steps("RUNBOOK_BROKEN_DEMO_203_EXEC.md") {
        let a = step(&t, &mut via, &risk, &command);
        let o = out(&a);
        let fixed = std::fs::metadata(&prog).unwrap().permissions().mode() & 0o111 != 0;
        match command.as_str() {
            "systemctl is-active aiops-demo" if !fixed => {
                assert_eq!((exit(&a), o.trim()), (3, "failed"), "{a}")
            }
            "systemctl is-active aiops-demo" => {
                assert_eq!((exit(&a), o.trim()), (0, "active"), "{a}")
            }
            "systemctl status aiops-demo --no-pager -l" => {
                assert_eq!(exit(&a), 3, "{a}");
                assert!(o.contains("203/EXEC"), "{a}");
            }
            c if c.starts_with("systemctl show aiops-demo") && !fixed => {
                assert_eq!(exit(&a), 0, "{a}");
                assert!(o.contains("ExecMainStatus=203"), "{a}");
            }
            c if c.starts_with("systemctl show aiops-demo") => {
                assert_eq!(exit(&a), 0, "{a}");
                assert!(o.contains("ExecMainStatus=0"), "{a}");
            }
            "ls -l /usr/local/bin/aiops-demo" => {
                assert_eq!(exit(&a), 0, "{a}");
                assert!(o.starts_with("-rw-r--r--"), "{a}");
            }
            "sudo journalctl -u aiops-demo -n 50 --no-pager" => {
                assert_eq!(exit(&a), 0, "{a}");
                assert!(o.contains("203/EXEC"), "{a}");
            }
            "head -n 1 /usr/local/bin/aiops-demo" => {
                assert_eq!(o, "#!/bin/sh\n", "{a}")
            }
            _ => assert_eq!(exit(&a), 0, "step `{command}`: {a}"),
        }
    }
    assert_eq!(
        std::fs::metadata(&prog).unwrap().permissions().mode() & 0o7777,
        0o755
    );
    assert_eq!(t.c.sh("systemctl is-active aiops-demo"), "active");
    let pid = t.c.main_pid("aiops-demo");
    assert!(pid > 0);
    assert_eq!(t.c.sh(&format!("cat /proc/{pid}/comm")), "sleep");
    audits_verify(&t);
    eprintln!("runbook_demo_203_exec_on_a_real_target: {:?}", t0.elapsed());
}

#[test]
fn runbook_disk_full_logs_on_a_real_target() {
    let _serial = serial();
    let t0 = Instant::now();
    let t = target("rb-disk", 41, |root| {
        let dir = root.join("var/log/aiops-demo");
        std::fs::create_dir_all(&dir).unwrap();
        // 60 MiB of real (not sparse) log lines.
        let line = "2026-11-23T22:00:00Z aiops-demo: request served in 3 ms, all is well\n";
        let chunk = line.repeat(16384);
        let mut f = std::fs::File::create(dir.join("app.log")).unwrap();
        while f.metadata().unwrap().len() < 60 << 20 {
            f.write_all(chunk.as_bytes()).unwrap();
        }
    });
    let log = t.c.root.join("var/log/aiops-demo/app.log");
    let size = std::fs::metadata(&log).unwrap().len();
    let mut via = Via::Run;
    for (risk, command) in steps("RUNBOOK_DISK_FULL_LOGS.md") {
        let a = step(&t, &mut via, &risk, &command);
        if risk == "forbidden" {
            assert!(t.c.root.join("var/log/aiops-demo").is_dir());
            continue;
        }
        let o = out(&a);
        assert_eq!(exit(&a), 0, "step `{command}`: {a}");
        let truncated = std::fs::metadata(&log).unwrap().len() == 0;
        match command.as_str() {
            "sudo du -xh --max-depth=1 /var/log | sort -h" => {
                let last = o.lines().last().unwrap_or_default();
                assert!(last.ends_with("/var/log"), "{a}");
                assert!(o.contains("/var/log/aiops-demo"), "{a}");
            }
            "sudo find /var/log -xdev -type f -size +50M" => {
                assert_eq!(o, "/var/log/aiops-demo/app.log\n", "{a}")
            }
            "sudo ls -lS /var/log/aiops-demo" if !truncated => {
                assert!(
                    o.contains(&format!(" {size} ")) && o.contains("app.log"),
                    "{a}"
                )
            }
            "sudo ls -lS /var/log/aiops-demo" => {
                assert!(o.contains(" 0 ") && o.contains("app.log"), "{a}")
            }
            "sudo journalctl --disk-usage" => assert!(o.contains("take up"), "{a}"),
            _ => {}
        }
    }
    // Emptied, not deleted: same file, size 0.
    assert!(log.is_file());
    assert_eq!(std::fs::metadata(&log).unwrap().len(), 0);
    audits_verify(&t);
    eprintln!(
        "runbook_disk_full_logs_on_a_real_target: {:?}",
        t0.elapsed()
    );
}

/// A tiny HTTP server (perl is in every Debian) that fails like a web server does when its
/// port is taken, and a rogue holder of the same port.
const WEB: &str = r#"#!/usr/bin/perl
use strict;
use IO::Socket::INET;
my $s = IO::Socket::INET->new(LocalAddr => $ARGV[0], Listen => 5, ReuseAddr => 1)
    or die "bind() to $ARGV[0] failed (98: $!)\n";
while (my $c = $s->accept) {
    while (my $l = <$c>) { last if $l =~ /^\r?\n$/ }
    print $c "HTTP/1.1 200 OK\r\nContent-Length: 3\r\nConnection: close\r\n\r\nok\n";
    close $c;
}
"#;
const ROGUE: &str = r#"#!/usr/bin/perl
use strict;
use IO::Socket::INET;
my $s = IO::Socket::INET->new(LocalAddr => $ARGV[0], Listen => 5, ReuseAddr => 1) or die "$!\n";
sleep;
"#;

#[test]
fn runbook_port_in_use_on_a_real_target() {
    let _serial = serial();
    let t0 = Instant::now();
    let (ip, port) = loopback_endpoint(51);
    let listen = format!("{ip}:{port}");
    let t = target("rb-port", 53, |root| {
        use std::os::unix::fs::PermissionsExt;
        std::fs::create_dir_all(root.join("usr/local/bin")).unwrap();
        for (name, body) in [("aiops-web", WEB), ("aiops-rogue", ROGUE)] {
            let p = root.join(format!("usr/local/bin/{name}"));
            std::fs::write(&p, body).unwrap();
            std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o755)).unwrap();
        }
        std::fs::write(
            root.join("etc/systemd/system/aiops-web.service"),
            format!("[Unit]\nDescription=aiops web\nStartLimitIntervalSec=60\nStartLimitBurst=3\n\n[Service]\nExecStart=/usr/local/bin/aiops-web {listen}\nRestart=on-failure\nRestartSec=200ms\n"),
        )
        .unwrap();
        std::fs::write(
            root.join("etc/systemd/system/aiops-rogue.service"),
            format!("[Unit]\nDescription=leftover\n\n[Service]\nExecStart=/usr/local/bin/aiops-rogue {listen}\n"),
        )
        .unwrap();
    });
    t.c.sh("systemctl start aiops-rogue");
    wait_until("the rogue to hold the port", 20, || {
        std::net::TcpStream::connect(&listen).is_ok()
    });
    let rogue_pid = t.c.main_pid("aiops-rogue");
    let _ = t.c.exec(&["systemctl", "start", "aiops-web"]);
    failed_unit(&t.c, "aiops-web");

    let mut via = Via::Run;
    let mut pid = String::new();
    for (risk, command) in steps("RUNBOOK_PORT_IN_USE.md") {
        // The worked example's port is this target's free loopback port.
        let command = command.replace(":8080", &format!(":{port}"));
        if let Some(url) = command.strip_prefix("curl -sSI ") {
            assert_eq!(risk, "auto_allowed");
            assert_eq!(url, format!("http://127.0.0.1:{port}/"));
            assert_eq!(http_head(&listen).trim_end(), "HTTP/1.1 200 OK");
            continue;
        }
        if command == "sudo kill <PID>" {
            // The branch for a holder that belongs to no unit; this one is a unit and is
            // stopped already. Only the risk is checked (knowledge.rs does too).
            let a = t.ctl.run("srv1", &command.replace("<PID>", &pid));
            assert_eq!(a["risk"], risk, "{a}");
            assert_eq!(a["status"], "approval_requested", "{a}");
            continue;
        }
        let command = command.replace("<PID>", &pid);
        let a = step(&t, &mut via, &risk, &command);
        let o = out(&a);
        let web_up = t.c.main_pid("aiops-web") != 0;
        match command.as_str() {
            "systemctl is-active aiops-web" if !web_up => {
                assert_eq!((exit(&a), o.trim()), (3, "failed"), "{a}")
            }
            "systemctl is-active aiops-web" => {
                assert_eq!((exit(&a), o.trim()), (0, "active"), "{a}")
            }
            "systemctl status aiops-web --no-pager -l" => {
                assert_eq!(exit(&a), 3, "{a}");
                assert!(o.contains("status=98"), "{a}");
            }
            "sudo journalctl -u aiops-web -n 50 --no-pager" => {
                assert_eq!(exit(&a), 0, "{a}");
                assert!(o.contains("Address already in use"), "{a}");
            }
            c if c.starts_with("sudo ss -ltnp") => {
                assert_eq!(exit(&a), 0, "{a}");
                let holder = o
                    .split("pid=")
                    .nth(1)
                    .and_then(|s| s.split(',').next())
                    .unwrap_or_else(|| panic!("no pid= in ss output: {a}"))
                    .to_string();
                if pid.is_empty() {
                    assert_eq!(holder, rogue_pid.to_string(), "{a}");
                    pid = holder;
                } else {
                    assert_eq!(holder, t.c.main_pid("aiops-web").to_string(), "{a}");
                }
            }
            c if c.starts_with("ps ") => {
                assert_eq!(exit(&a), 0, "{a}");
                assert!(o.contains("/usr/local/bin/aiops-rogue"), "{a}");
            }
            "systemctl status aiops-rogue --no-pager" => {
                assert_eq!(exit(&a), 0, "{a}");
                assert!(o.contains("active (running)"), "{a}");
            }
            _ => assert_eq!(
                exit(&a),
                0,
                "step `{command}`: {a}\n{}",
                String::from_utf8_lossy(
                    &t.c.exec(&["journalctl", "-n", "40", "--no-pager"]).stdout
                )
            ),
        }
    }
    assert_eq!(t.c.sh("systemctl is-active aiops-web"), "active");
    assert_eq!(http_head(&listen).trim_end(), "HTTP/1.1 200 OK");
    audits_verify(&t);
    eprintln!("runbook_port_in_use_on_a_real_target: {:?}", t0.elapsed());
}

/// `aiops mcp` over stdio (the shared client) with the runbook's target and reason.
struct Mcp(McpClient);

impl Mcp {
    fn start(ctl: &Controller) -> Mcp {
        Mcp(McpClient::start(&ctl.config()).0)
    }

    /// Calls a tool; returns the answer JSON.
    fn tool(&mut self, name: &str, args: Value) -> Value {
        self.0.tool(name, args).0
    }

    fn run_action(&mut self, command: &str) -> Value {
        self.tool(
            "run_action",
            json!({"target": "srv1", "command": command, "reason": "runbook step"}),
        )
    }
}

#[test]
fn runbook_nginx_bad_config_through_mcp_on_a_real_target() {
    let _serial = serial();
    let t0 = Instant::now();
    let t = target("rb-mcp", 61, |_| {});
    let mut m = Mcp::start(&t.ctl);
    run_nginx_runbook(&t, &mut Via::Mcp(&mut m));
    drop(m);
    // Every step went through the controller's audit log with its requester.
    let audit = aiops_e2e::read_jsonl(&t.ctl.dir().join("audit.jsonl"));
    assert!(
        audit
            .iter()
            .any(|r| r["command"]
                == "sudo sed -i '/^aiops_broken_directive/d' /etc/nginx/nginx.conf"),
        "no audit record of the fix"
    );
    // And every answer's receipt was checked against the pinned agent key
    // (this controller has no pki/agents until the first pin makes it).
    let executed: Vec<_> = audit.iter().filter(|r| r["event"] == "executed").collect();
    assert!(!executed.is_empty());
    for r in executed {
        assert_eq!(r["receipt_status"], "verified", "{r}");
    }
    eprintln!(
        "runbook_nginx_bad_config_through_mcp_on_a_real_target: {:?}",
        t0.elapsed()
    );
}
