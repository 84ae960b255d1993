//! Every class of read the attacker confirmed on a real agent (issue 12,
//! findings.md) sent through a real lab: the controller now answers
//! approval_required (or forbidden), nothing ran, the planted marker did not
//! come back, and the audit holds the decision. The secrets are planted in
//! the lab's own directory, named sensitive in both the controller's and the
//! agent's policy, so no real secret of the machine is ever read.

use std::io::{Read, Write};
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use aiops_e2e::{Lab, request};
use serde_json::Value;

const MARKER: &str = "AIOPS-E2E-LEAK-MARKER";

struct Planted {
    lab: Lab,
    /// `<tmp>/secret`: every file in it is sensitive to both policies.
    secret: PathBuf,
    /// `<tmp>/public`: ordinary files.
    public: PathBuf,
}

fn planted() -> Planted {
    let lab = Lab::init(1, "lab");
    let root = lab.tmp.path().to_path_buf();
    let secret = root.join("secret");
    let public = root.join("public");
    std::fs::create_dir_all(&secret).unwrap();
    std::fs::create_dir_all(&public).unwrap();
    std::fs::write(secret.join("token.txt"), format!("{MARKER}\n")).unwrap();
    let pattern = format!("{}/*", secret.display());
    lab.edit(
        "config.yml",
        "  unknown_default: approval_required\n",
        &format!("  unknown_default: approval_required\n  sensitive_paths: [{pattern:?}]\n"),
    );
    lab.append(
        "agents/srv1/policy.yml",
        &format!("sensitive_paths: [{pattern:?}]\n"),
    );
    lab.up();
    Planted {
        lab,
        secret,
        public,
    }
}

/// The path without its leading `/`: relative from the executor's cwd `/`.
fn relative(p: &Path) -> String {
    p.display().to_string().trim_start_matches('/').to_string()
}

/// Sends `cmd` and checks: the expected risk, nothing executed, no marker
/// in the answer, and the controller's audit recorded the decision.
fn refused(p: &Planted, cmd: &str, risk: &str) -> Value {
    let (answer, _) = p.lab.run(&request("srv1", cmd));
    assert_eq!(answer["risk"], risk, "{cmd:?}: {answer}");
    assert_ne!(answer["status"], "executed", "{cmd:?}: {answer}");
    assert!(!answer.to_string().contains(MARKER), "{cmd:?}: {answer}");
    let audit = p.lab.audit();
    assert!(
        audit
            .iter()
            .any(|r| r["command"] == cmd && r["risk"] == risk),
        "{cmd:?}: no audit record with risk {risk}: {audit:?}"
    );
    assert!(
        !audit
            .iter()
            .any(|r| r["command"] == cmd && r["event"] == "executed"),
        "{cmd:?} executed"
    );
    answer
}

#[test]
fn planted_marker_is_readable_when_asked_honestly() {
    // The harness can fail: the same lab returns the marker for a command
    // that is allowed to read it (the file copied to a public path).
    let p = planted();
    let copy = p.public.join("copy.txt");
    std::fs::copy(p.secret.join("token.txt"), &copy).unwrap();
    let (answer, code) = p
        .lab
        .run(&request("srv1", &format!("cat {}", copy.display())));
    assert_eq!(code, 0, "{answer}");
    assert_eq!(answer["status"], "executed");
    assert!(answer["stdout"].as_str().unwrap().contains(MARKER));
    // ... and the direct read of the sensitive file is not automatic.
    refused(
        &p,
        &format!("cat {}", p.secret.join("token.txt").display()),
        "approval_required",
    );
}

#[test]
fn path_aliases_relative_paths_and_failed_cds_are_not_automatic() {
    let p = planted();
    let file = p.secret.join("token.txt");
    let rel = relative(&file);
    for cmd in [
        // [path-alias]
        format!("cat /proc/self/root{}", file.display()),
        format!("head -n 1 /proc/thread-self/root{}", file.display()),
        format!("cat /proc/self/cwd/{rel}"),
        format!("sudo -n cat /proc/1/root{}", file.display()),
        // [path-relative]: the executor's cwd is /
        format!("cat {rel}"),
        format!("cat < {rel}"),
        // [cd-unknown]: a failed cd leaves the executor in /
        format!("cd /nonexistent; cat {rel}"),
        format!("cd /nonexistent || cat {rel}"),
        format!("cd /etc/hostname; cat {rel}"),
    ] {
        refused(&p, &cmd, "approval_required");
    }
}

#[test]
fn implicit_and_recursive_reads_are_not_automatic() {
    let p = planted();
    let file = p.secret.join("token.txt");
    let tmp = p.lab.tmp.path().display().to_string();
    for cmd in [
        // [implicit-read]
        format!(
            "awk 'BEGIN{{ARGV[1]=\"{}\";ARGC=2}}{{print}}'",
            file.display()
        ),
        format!("date -f {}", file.display()),
        // [files0-from]: names read from a file, echoed in errors
        format!("du --files0-from={}", file.display()),
        format!("wc --files0=/proc/self/root{}", file.display()),
        // [recursive-read]
        format!("grep -rh E2E-LEAK {tmp}"),
        format!("grep -d recurse -h E2E-LEAK {tmp}"),
        format!("cd {tmp} && grep -rh E2E-LEAK ."),
    ] {
        refused(&p, &cmd, "approval_required");
    }
}

#[test]
fn other_processes_environments_are_not_automatic() {
    let p = planted();
    // A victim process with a secret in its environment.
    let mut victim = std::process::Command::new("sleep")
        .arg("300")
        .env(
            "AIOPS_E2E_DATABASE_URL",
            format!("postgres://app:{MARKER}@db/app"),
        )
        .spawn()
        .unwrap();
    let pid = victim.id();
    for cmd in [
        "ps axe".to_string(),
        "ps -ef e".to_string(),
        format!("ps -p {pid} e"),
        "ps -e -o pid,args e".to_string(),
        format!("cat /proc/{pid}/environ"),
        "sudo -n ps aux e".to_string(),
    ] {
        refused(&p, &cmd, "approval_required");
    }
    let _ = victim.kill();
    let _ = victim.wait();
}

#[test]
fn curl_to_another_address_than_the_url_names_is_not_automatic() {
    let p = planted();
    // A server on another loopback address (as in the finding: 127.0.0.2).
    let server = TcpListener::bind("127.0.0.2:0").unwrap();
    let port = server.local_addr().unwrap().port();
    let hits = Arc::new(AtomicUsize::new(0));
    let h = hits.clone();
    server.set_nonblocking(false).unwrap();
    std::thread::spawn(move || {
        for mut s in server.incoming().flatten() {
            h.fetch_add(1, Ordering::SeqCst);
            let mut buf = [0u8; 1024];
            let _ = s.read(&mut buf);
            let body = format!("{MARKER}\n");
            let _ = write!(
                s,
                "HTTP/1.0 200 OK\r\nContent-Length: {}\r\n\r\n{body}",
                body.len()
            );
        }
    });
    for cmd in [
        format!("curl -s --resolve localhost:{port}:127.0.0.2 http://localhost:{port}/"),
        format!("curl -s --connect-to localhost:{port}:127.0.0.2:{port} http://localhost:{port}/"),
        format!("curl -s -x http://127.0.0.2:{port} http://localhost/"),
        format!("curl -s http://127.0.0.2:{port}/"),
    ] {
        refused(&p, &cmd, "approval_required");
    }
    assert_eq!(hits.load(Ordering::SeqCst), 0, "the server was reached");
}

#[test]
fn options_that_write_files_are_not_automatic() {
    let p = planted();
    let created = p.public.join("created-by-cursor");
    let cmd = format!("journalctl --cursor-file={} -n 1", created.display());
    refused(&p, &cmd, "approval_required");
    let cmd = format!(
        "curl -s -w '%output{{{}}}x' http://127.0.0.1:1/",
        created.display()
    );
    refused(&p, &cmd, "approval_required");
    assert!(!created.exists());
    // Onto a file whose change means root access: forbidden outright.
    refused(
        &p,
        "journalctl --cursor-file=/etc/ld.so.preload -n 1",
        "forbidden",
    );
}

#[test]
fn catastrophic_routes_are_forbidden_and_nothing_runs() {
    let p = planted();
    let marker = p.public.join("ran");
    for cmd in [
        format!("touch {} && rm -rf ~", marker.display()),
        format!(
            "touch {}; find / -maxdepth 1 -exec rm -rf {{}} +",
            marker.display()
        ),
        format!(
            "touch {}; rsync -a --delete /var/empty/ /",
            marker.display()
        ),
        format!("touch {}; iptables -P INPUT DROP", marker.display()),
        format!("touch {}; userdel -r root", marker.display()),
        format!("touch {}; sudo env bash", marker.display()),
        format!("touch {}; pkexec bash", marker.display()),
    ] {
        let answer = refused(&p, &cmd, "forbidden");
        assert_eq!(answer["status"], "forbidden", "{cmd:?}: {answer}");
        assert!(!marker.exists(), "{cmd:?} ran");
    }
}

#[test]
fn a_link_to_a_secret_is_refused_by_the_agent() {
    // [symlink]: only the agent can see it. The controller classifies the
    // path as ordinary; the agent's re-check resolves the link and refuses.
    let p = planted();
    let link = p.public.join("innocent.txt");
    std::os::unix::fs::symlink(p.secret.join("token.txt"), &link).unwrap();
    let cmd = format!("cat {}", link.display());
    let (answer, code) = p.lab.run(&request("srv1", &cmd));
    assert_eq!(code, 1, "{answer}");
    assert_eq!(answer["status"], "error", "{answer}");
    assert_eq!(answer["error"]["code"], "agent_refused", "{answer}");
    assert!(
        answer["error"]["message"]
            .as_str()
            .unwrap()
            .starts_with("policy_stricter"),
        "{answer}"
    );
    assert!(!answer.to_string().contains(MARKER), "{answer}");
    let agent = p.lab.agent_audit("srv1");
    let last = agent.last().unwrap();
    assert_eq!(last["reason"], "policy_stricter", "{last}");
    // A recursive read of a tree holding such a link is refused too.
    let cmd = format!("grep -rh E2E-LEAK {}", p.public.display());
    let (answer, _) = p.lab.run(&request("srv1", &cmd));
    assert_eq!(answer["error"]["code"], "agent_refused", "{answer}");
    assert!(!answer.to_string().contains(MARKER), "{answer}");
}

#[test]
fn redaction_keeps_english_and_removes_secrets() {
    let p = planted();
    // `No such file` survives (it came back as `[REDACTED] such file`).
    let (answer, _) = p
        .lab
        .run(&request("srv1", "cat /var/log/aiops-e2e-app-secret.txt"));
    assert_eq!(answer["status"], "executed", "{answer}");
    let stderr = answer["stderr"].as_str().unwrap();
    assert!(
        stderr.ends_with("cat: /var/log/aiops-e2e-app-secret.txt: No such file or directory\n"),
        "{stderr:?}"
    );
    // A password in a URL (a DATABASE_URL from `ps e` came back in clear).
    let env = p.public.join("app.env");
    std::fs::write(
        &env,
        format!("DATABASE_URL=postgres://app:{MARKER}9x@db/app\nLOG_LEVEL=info\n"),
    )
    .unwrap();
    let (answer, _) = p
        .lab
        .run(&request("srv1", &format!("cat {}", env.display())));
    assert_eq!(answer["status"], "executed", "{answer}");
    assert_eq!(
        answer["stdout"],
        "DATABASE_URL=postgres://app:[REDACTED]@db/app\nLOG_LEVEL=info\n"
    );
    assert!(!p.lab.audit().iter().any(|r| r.to_string().contains(MARKER)));
}
