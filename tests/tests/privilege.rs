//! Approval is the privilege, on a real target (debootstrap + systemd-nspawn, the agent
//! installed from the .deb, real sudo, real users, systemd as PID 1): what an attacker who
//! has read the code would try, each shown by a marker that does not appear and by the
//! refusal in the agent's or the executor's log.
//!
//! - A compromised daemon (a process holding the `aiops` account) feeds the root executor
//!   forged or replayed input through the one sudoers rule: nothing runs as root without
//!   a valid, unused, approver-signed grant.
//! - With the classifier deliberately bypassed (a test-only policy that auto-allows the
//!   attacks, never shipped) an unprivileged command writes, deletes and reads nothing it
//!   should: Landlock and the command account hold.
//! - An approved fix writes where the agent unit's sandbox is read-only (transient unit),
//!   `sort /dev/zero` ends with `limit_exceeded`, and the shipped sudoers rule passes
//!   `visudo -cf`.

use std::path::Path;
use std::process::{Command, Stdio};

use aiops_certs::signing::SigningKey;
use aiops_e2e::nspawn::{Container, Controller, install_agent, loopback_endpoint, text};
use aiops_e2e::read_jsonl;
use aiops_proto::agent::v1 as pb;
use prost::Message;
use serde_json::Value;

const EXEC: &str = "/usr/libexec/aiops-agent/aiops-exec";

struct Target {
    c: Container,
    ctl: Controller,
    address: String,
}

fn boot(tag: &str, salt: u32, agent_policy: Option<&str>) -> Target {
    let (ip, port) = loopback_endpoint(salt);
    let address = format!("{ip}:{port}");
    let c = Container::boot(tag, |_| {});
    let ctl = Controller::new("srv1", &address);
    install_agent(&c, &ctl, "srv1", &address);
    if let Some(p) = agent_policy {
        std::fs::write(c.root.join("etc/aiops-agent/policy.yml"), p).expect("policy");
        c.sh("chown root:aiops /etc/aiops-agent/policy.yml && chmod 0640 /etc/aiops-agent/policy.yml && systemctl restart aiops-agent");
        aiops_e2e::nspawn::wait_until("the agent to listen again", 30, || {
            std::net::TcpStream::connect(&address).is_ok()
        });
    }
    Target { c, ctl, address }
}

fn key(path: &Path) -> SigningKey {
    SigningKey::from_pem(&std::fs::read_to_string(path).expect("key")).expect("key")
}

/// A request for `command` signed with `signer`, optionally approved with a grant.
fn signed(
    signer: &SigningKey,
    command: &str,
    approved: Option<(&SigningKey, &str)>,
) -> pb::SignedCommand {
    let now = aiops_sys::now_ms();
    let approval_id = uuid::Uuid::new_v4().to_string();
    let req = pb::CommandRequest {
        request_id: uuid::Uuid::new_v4().to_string(),
        target: "srv1".into(),
        command: command.into(),
        plan: None,
        decision: if approved.is_some() {
            pb::Decision::Approved
        } else {
            pb::Decision::AutoAllowed
        } as i32,
        requester: "attacker".into(),
        reason: "privilege test".into(),
        issued_at_ms: now,
        expires_at_ms: now + 120_000,
        timeout_ms: 20_000,
        output_cap_bytes: 4096,
        policy_digest: String::new(),
        approval_id: if approved.is_some() {
            approval_id.clone()
        } else {
            String::new()
        },
        controller_seq: 0,
        controller_hash: String::new(),
    };
    let mut s = aiops_controller::dispatch::client::sign(&req, signer);
    if let Some((approver, who)) = approved {
        let grant = pb::ApprovalGrant {
            approval_id,
            target: "srv1".into(),
            command_sha256: aiops_sys::sha256_hex(command.as_bytes()),
            expires_at_ms: now + 120_000,
            approver: who.into(),
            requester: "attacker".into(),
            ..Default::default()
        }
        .encode_to_vec();
        s.approval = pb::SignedApproval {
            signature: approver.sign(&grant),
            key_id: approver.verifying_key().key_id(),
            grant,
        }
        .encode_to_vec();
    }
    s
}

/// Feeds `frame` to the executor the way a compromised daemon can: as the `aiops` account,
/// through `sudo -n` and the one sudoers rule. Returns (exit status, stderr).
fn as_daemon(c: &Container, frame: &[u8], extra_args: &[&str]) -> (i32, String) {
    let mut args = vec!["sudo", "-n", EXEC];
    args.extend_from_slice(extra_args);
    let (code, _, err) = as_daemon_run(c, frame, &args);
    (code, err)
}

/// Runs `argv` as the daemon's account (a compromised daemon) with `stdin` on its standard
/// input. Returns (exit status, stdout, stderr).
fn as_daemon_run(c: &Container, stdin: &[u8], argv: &[&str]) -> (i32, String, String) {
    let mut cmd = Command::new("nsenter");
    cmd.args(["-t", &c.pid1.to_string(), "-a", "--"])
        .args(["runuser", "-u", "aiops", "--"])
        .args(argv)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let mut child = cmd.spawn().expect("nsenter");
    {
        use std::io::Write;
        let mut input = child.stdin.take().expect("stdin");
        let _ = input.write_all(stdin);
    }
    let out = child.wait_with_output().expect("wait");
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).to_string(),
        String::from_utf8_lossy(&out.stderr).to_string(),
    )
}

/// An approved request for `command` whose grant names `run_as` (the executor's wire form:
/// the grant carries the account; no plan digest, which the executor derives itself).
fn approved_as(
    signer: &SigningKey,
    approver: &SigningKey,
    command: &str,
    run_as: &str,
) -> pb::SignedCommand {
    let mut s = signed(signer, command, Some((approver, "root")));
    let req = pb::CommandRequest::decode(s.request.as_slice()).expect("request");
    let grant = aiops_exec::wire::ApprovalGrant {
        approval_id: req.approval_id.clone(),
        target: "srv1".into(),
        command_sha256: aiops_sys::sha256_hex(command.as_bytes()),
        expires_at_ms: req.expires_at_ms,
        approver: "root".into(),
        requester: "attacker".into(),
        run_as: run_as.into(),
        plan_sha256: String::new(),
    }
    .encode_to_vec();
    s.approval = pb::SignedApproval {
        signature: approver.sign(&grant),
        key_id: approver.verifying_key().key_id(),
        grant,
    }
    .encode_to_vec();
    s
}

fn request_id(s: &pb::SignedCommand) -> String {
    pb::CommandRequest::decode(s.request.as_slice())
        .expect("request")
        .request_id
}

fn exec_log(c: &Container) -> Vec<Value> {
    read_jsonl(&c.root.join("var/lib/aiops-exec/exec.jsonl"))
}

fn last_refusal(c: &Container) -> String {
    exec_log(c)
        .iter()
        .rev()
        .find(|r| r["event"] == "refused")
        .map(|r| r["reason"].as_str().unwrap_or("").to_string())
        .unwrap_or_default()
}

fn exists(c: &Container, path: &str) -> bool {
    c.root.join(path.trim_start_matches('/')).exists()
}

#[test]
fn a_compromised_daemon_cannot_run_anything_as_root_without_a_valid_unused_grant() {
    let t = boot("priv-daemon", 41, None);
    let pki = t.ctl.pki();
    let controller = key(&pki.signing_key());
    let approver = key(&t.ctl.dir().join("pki/approver.key"));
    let forger = SigningKey::generate();
    let marker = "/var/tmp/aiops-root-marker";
    let fix = format!("touch {marker}");
    let whole = |s: &pb::SignedCommand| {
        aiops_exec::frame(
            aiops_exec::WHOLE_PLAN,
            aiops_exec::WHOLE_PLAN,
            &s.encode_to_vec(),
        )
    };

    // The one rule allows no arguments: sudo itself refuses any.
    let (code, err) = as_daemon(&t.c, &[], &["--config", "/tmp/evil.yml"]);
    assert_ne!(code, 0);
    assert!(err.contains("sudo"), "{err}");

    // Forged input: each is refused with its reason and the marker never appears.
    let cases: Vec<(&str, Vec<u8>)> = vec![
        ("malformed", b"not a frame at all".to_vec()),
        (
            "bad_signature",
            whole(&signed(&forger, &fix, Some((&approver, "root")))),
        ),
        ("approval_missing", whole(&signed(&controller, &fix, None))),
        (
            "approval_invalid",
            whole(&signed(&controller, &fix, Some((&forger, "root")))),
        ),
        (
            "approval_invalid",
            whole(&signed(&controller, &fix, Some((&approver, "attacker")))),
        ),
        (
            // An auto-allowed request cannot name an unprivileged stage as privileged.
            "policy_stricter",
            aiops_exec::frame(0, 0, &signed(&controller, &fix, None).encode_to_vec()),
        ),
    ];
    for (reason, frame) in &cases {
        let (code, err) = as_daemon(&t.c, frame, &[]);
        assert_eq!(code, 126, "{reason}: {err}");
        assert!(!exists(&t.c, marker), "{reason}: the command ran as root");
        assert_eq!(last_refusal(&t.c), *reason, "{err}");
    }

    // journalctl option smuggling, signed by the real controller key and claimed
    // auto-allowed: nothing writes as root. The executor's own policy check refuses every
    // option that writes; an option hidden inside a value reaches journalctl as that value
    // and fails there.
    for cmd in [
        "sudo journalctl --since=today --cursor-file /var/tmp/aiops-cursor",
        "sudo journalctl --since='2024-01-01 --cursor-file /var/tmp/aiops-cursor'",
        "sudo journalctl --rotate",
        "sudo journalctl --vacuum-files=1",
        "sudo journalctl --flush",
        "sudo journalctl --setup-keys",
    ] {
        let before = exec_log(&t.c).len();
        let frame = aiops_exec::frame(0, 0, &signed(&controller, cmd, None).encode_to_vec());
        let (code, err) = as_daemon(&t.c, &frame, &[]);
        assert_ne!(code, 0, "{cmd}: {err}");
        assert!(
            !exists(&t.c, "/var/tmp/aiops-cursor"),
            "{cmd}: wrote as root"
        );
        assert!(!exists(&t.c, "/var/log/journal/fss"), "{cmd}: set up keys");
        let rec = exec_log(&t.c).get(before).cloned().unwrap_or(Value::Null);
        if rec["event"] == "refused" {
            let reason = rec["reason"].as_str().unwrap_or("");
            assert_eq!(code, 126, "{cmd}: {err}");
            assert_eq!(reason, "policy_stricter", "{cmd}: {rec}");
        } else {
            // Auto-allowed as written: the hidden option is only part of a --since value.
            assert_eq!(rec["event"], "privileged_stage", "{cmd}: {rec}");
            assert!(
                err.contains("Permission denied") || err.contains("Failed to parse"),
                "{cmd}: {err}"
            );
        }
        // Through the real controller they need a human, or run read-only.
        let a = t.ctl.run("srv1", cmd);
        assert!(!exists(&t.c, "/var/tmp/aiops-cursor"), "{cmd}: {a}");
        assert!(
            a["status"] == "approval_requested" || a["exit_code"] != 0,
            "{cmd}: {a}"
        );
    }
    // Deny whatever the controller is still waiting for.
    let _ = t.ctl.aiops(&["run"], b"Deny\n");

    // A valid grant runs once; the same grant again is refused.
    let good = whole(&signed(&controller, &fix, Some((&approver, "root"))));
    let (code, err) = as_daemon(&t.c, &good, &[]);
    assert_eq!(code, 0, "{err}");
    assert!(exists(&t.c, marker), "the approved command did not run");
    t.c.sh(&format!("rm {marker}"));
    let (code, err) = as_daemon(&t.c, &good, &[]);
    assert_eq!(code, 126, "{err}");
    assert_eq!(last_refusal(&t.c), "approval_used");
    assert!(!exists(&t.c, marker), "a replayed grant ran");
}

#[test]
fn unprivileged_commands_cannot_write_or_read_the_daemons_files_even_when_the_classifier_is_bypassed()
 {
    // A directory and a file the command account owns (outside the unit's private /tmp):
    // only the kernel sandbox keeps it from changing them.
    let victim = "/srv/aiops-run/victim";
    // A test-only policy that auto-allows the attacks outright (never shipped).
    let attacks = [
        "touch /srv/aiops-run/created".to_string(),
        format!("truncate -s 0 {victim}"),
        format!("rm -f {victim}"),
        "mkdir /srv/aiops-run/dir".to_string(),
        "cat /etc/aiops-agent/pki/agent.key".to_string(),
        "cat /var/log/aiops-agent/audit.jsonl".to_string(),
        "cat /var/lib/aiops-agent/replay.log".to_string(),
        "ls /var/lib/aiops-agent".to_string(),
        // Through /proc: another account's process (PID 1, root) and its view of the files.
        "cat /proc/1/environ".to_string(),
        "ls /proc/1/fd".to_string(),
        "cat /proc/1/root/etc/aiops-agent/pki/agent.key".to_string(),
        "cat /proc/1/root/var/log/aiops-agent/audit.jsonl".to_string(),
    ];
    // `<` redirects: the built-in policy auto-allows `cat < FILE` for a file it does not
    // know as sensitive; the open must happen as the command account, after the switch.
    // `/srv/aiops-run/k` is a hard link to the daemon's key (a classifier that missed it).
    let redirects = [
        "cat < /var/log/aiops-agent/audit.jsonl".to_string(),
        "cat < /var/lib/aiops-agent/replay.log".to_string(),
        "cat < /srv/aiops-run/k".to_string(),
        "wc -c < /var/log/aiops-agent/audit.jsonl".to_string(),
    ];
    let t = boot("priv-unpriv", 43, None);
    let list: Vec<String> = attacks.iter().map(|a| format!("    - {a:?}\n")).collect();
    std::fs::write(
        t.c.root.join("etc/aiops-agent/policy.yml"),
        format!(
            "mode: production\nunknown_default: reject\nauto_allow:\n{}",
            list.concat().replace("    - ", "  - ")
        ),
    )
    .unwrap();
    t.c.sh("systemctl restart aiops-agent");
    let cfg = std::fs::read_to_string(t.ctl.config()).unwrap();
    std::fs::write(
        t.ctl.config(),
        cfg.replacen(
            "  unknown_default: approval_required\n",
            &format!(
                "  unknown_default: approval_required\n  auto_allow:\n{}",
                list.concat()
            ),
            1,
        ),
    )
    .unwrap();
    aiops_e2e::nspawn::wait_until("the agent to serve again", 30, || {
        std::net::TcpStream::connect(&t.address).is_ok()
    });
    t.c.sh(&format!(
        "mkdir -p /srv/aiops-run && echo keep > {victim} && chown -R aiops-run:aiops-run /srv/aiops-run \
         && ln /etc/aiops-agent/pki/agent.key /srv/aiops-run/k"
    ));
    let key_text = std::fs::read_to_string(t.c.root.join("etc/aiops-agent/pki/agent.key")).unwrap();
    let key_line = key_text.lines().nth(1).unwrap_or("").to_string();
    for cmd in attacks.iter().chain(&redirects) {
        let a = t.ctl.run("srv1", cmd);
        assert_eq!(
            a["status"], "executed",
            "{cmd}: the bypass did not auto-allow it: {a}"
        );
        assert_ne!(a["exit_code"], 0, "{cmd}: {a}");
        let out = format!("{}{}", a["stdout"], a["stderr"]);
        assert!(!out.contains(&key_line), "{cmd}: leaked the key");
        assert!(!out.contains("\"event\""), "{cmd}: leaked the audit");
        if redirects.contains(cmd) {
            assert_eq!(a["stdout"], "", "{cmd}: the redirect was read: {a}");
        }
    }
    assert!(!exists(&t.c, "/srv/aiops-run/created"));
    assert!(!exists(&t.c, "/srv/aiops-run/dir"));
    assert_eq!(
        std::fs::read_to_string(t.c.root.join(victim.trim_start_matches('/'))).unwrap(),
        "keep\n"
    );
    // Each attempt is in the agent's audit as a failed execution.
    let audit = read_jsonl(&t.c.root.join("var/log/aiops-agent/audit.jsonl"));
    for cmd in attacks.iter().chain(&redirects) {
        assert!(
            audit.iter().any(|r| r["event"] == "executed"
                && r["command"] == cmd.as_str()
                && r["exit_code"] != 0),
            "{cmd}: no audited failure"
        );
    }
}

#[test]
fn approved_fixes_escape_the_unit_sandbox_limits_hold_and_the_sudoers_rule_is_valid() {
    let t = boot("priv-fix", 47, None);
    // The shipped drop-in: one rule, accepted by visudo.
    let out = t.c.exec(&["visudo", "-cf", "/etc/sudoers.d/aiops-agent"]);
    assert!(out.status.success(), "{}", text(&out));
    let rules = std::fs::read_to_string(t.c.root.join("etc/sudoers.d/aiops-agent")).unwrap();
    let rule_lines: Vec<&str> = rules
        .lines()
        .filter(|l| !l.trim().is_empty() && !l.starts_with('#') && !l.starts_with("Defaults"))
        .collect();
    assert_eq!(
        rule_lines,
        [format!("aiops ALL = (root) NOPASSWD: {EXEC} \"\"")]
    );

    // /home is read-only inside the agent's unit; an approved write lands anyway.
    let a = t.ctl.run("srv1", "touch /home/aiops-approved-fix");
    assert_eq!(a["status"], "approval_requested", "{a}");
    let a = t.ctl.approve();
    assert_eq!(a["status"], "executed", "{a}");
    assert_eq!(a["exit_code"], 0, "{a}");
    assert!(exists(&t.c, "/home/aiops-approved-fix"));
    let log = exec_log(&t.c);
    let ran = log
        .iter()
        .rev()
        .find(|r| r["event"] == "approved_run")
        .unwrap();
    assert_eq!(ran["transient_unit"], true, "{ran}");

    // A memory hog ends with limit_exceeded long before its timeout; the agent serves on.
    let a = t.ctl.run("srv1", "sort /dev/zero");
    assert_eq!(a["status"], "executed", "{a}");
    assert_eq!(a["timed_out"], false, "{a}");
    assert!(
        a["stderr"]
            .as_str()
            .unwrap_or("")
            .contains("limit_exceeded: memory"),
        "{a}"
    );
    let audit = read_jsonl(&t.c.root.join("var/log/aiops-agent/audit.jsonl"));
    let last = audit
        .iter()
        .rev()
        .find(|r| r["event"] == "executed")
        .unwrap();
    assert_eq!(last["limit_exceeded"], "memory", "{last}");
    let a = t.ctl.run("srv1", "hostname");
    assert_eq!(a["status"], "executed", "{a}");

    // `targets check` shows how unprivileged stages are confined.
    let check = |ctl: &Controller| -> Value {
        let out = ctl.aiops(&["targets", "check", "--json"], b"");
        let v = aiops_e2e::parse_answer(&out);
        v[0].clone()
    };
    let d = check(&t.ctl);
    assert!(d["landlock_abi"].as_i64().unwrap_or(0) >= 1, "{d}");
    assert!(
        d["confinement"]
            .as_str()
            .unwrap_or("")
            .contains("account=aiops-run"),
        "{d}"
    );

    // 64 memory hogs at once (a small limit keeps this test's host safe): every one ends
    // with limit_exceeded, and the agent answers its health check throughout.
    let cfg = t.c.root.join("etc/aiops-agent/agent.yml");
    let text = std::fs::read_to_string(&cfg).unwrap();
    std::fs::write(&cfg, text.replacen("memory_mb: 1024", "memory_mb: 64", 1)).unwrap();
    t.c.sh("systemctl restart aiops-agent");
    aiops_e2e::nspawn::wait_until("the agent to serve again", 30, || {
        std::net::TcpStream::connect(&t.address).is_ok()
    });
    let hogs: Vec<_> = (0..64)
        .map(|_| {
            let config = t.ctl.config();
            std::thread::spawn(move || {
                let out = aiops_e2e::run_cmd(
                    &aiops_e2e::aiops_bin(),
                    &["run"],
                    &aiops_e2e::request("srv1", "sort /dev/zero"),
                    &[("AIOPS_CONFIG", config.to_str().unwrap())],
                    &[],
                );
                aiops_e2e::parse_answer(&out)
            })
        })
        .collect();
    let mut checks = 0;
    while hogs.iter().any(|h| !h.is_finished()) {
        let d = check(&t.ctl);
        assert_eq!(
            d["health"], "SERVING",
            "health check missed during the hogs: {d}"
        );
        checks += 1;
    }
    for h in hogs {
        let a = h.join().unwrap();
        assert_eq!(a["status"], "executed", "{a}");
        assert!(
            a["stderr"]
                .as_str()
                .unwrap_or("")
                .contains("limit_exceeded: memory"),
            "{a}"
        );
    }
    assert!(checks >= 1);
}

#[test]
fn a_compromised_daemon_cannot_point_a_signed_privileged_read_at_another_file() {
    // The executor judged the command by its text: a signed, auto-allowed `sudo cat PATH`
    // under a directory the daemon can write read whatever the daemon linked there.
    let t = boot("priv-links", 53, None);
    let pki = t.ctl.pki();
    let controller = key(&pki.signing_key());
    let approver = key(&t.ctl.dir().join("pki/approver.key"));
    let shadow = std::fs::read_to_string(t.c.root.join("etc/shadow")).expect("shadow");
    let shadow_line = shadow.lines().next().expect("a line").to_string();
    let shadow_size = format!("{} ", shadow.len());
    // What a compromised daemon can set up with its own account.
    let (code, _, err) = as_daemon_run(
        &t.c,
        b"",
        &[
            "sh",
            "-c",
            "ln -sfn /etc/shadow /var/log/aiops-agent/x && ln -sfn /etc/shadow /tmp/aiops-x \
             && ln -sfn /etc /var/lib/aiops-agent/d && echo PLAIN-DAEMON-FILE > /var/log/aiops-agent/plain",
        ],
    );
    assert_eq!(code, 0, "{err}");
    t.c.sh("mkdir -p /srv/aiops-root && echo ROOT-ONLY-OK > /srv/aiops-root/ok && chmod 600 /srv/aiops-root/ok");
    // (command, pipeline of the privileged stage)
    let cases = [
        ("sudo cat /var/log/aiops-agent/x", 0),
        ("sudo wc -c /tmp/aiops-x", 0),
        ("sudo cat < /var/log/aiops-agent/x", 0),
        ("cd /var/lib/aiops-agent/d && sudo cat shadow", 1),
        ("cd /var/lib/aiops-agent && sudo cat d/shadow", 1),
        // No link at all when it is checked: a link swapped in between the check and the
        // open cannot be ruled out by checking, so a path the daemon can redirect is refused.
        ("sudo cat /var/log/aiops-agent/plain", 0),
        ("sudo tail -n 1 /tmp/aiops-x", 0),
    ];
    for (cmd, p) in cases {
        let before = exec_log(&t.c).len();
        let s = signed(&controller, cmd, None);
        let frame = aiops_exec::frame(p, 0, &s.encode_to_vec());
        let (code, out, err) = as_daemon_run(&t.c, &frame, &["sudo", "-n", EXEC]);
        assert!(
            !out.contains(&shadow_line),
            "{cmd}: read /etc/shadow: {out}"
        );
        assert!(
            !out.starts_with(&shadow_size),
            "{cmd}: /etc/shadow's size: {out}"
        );
        assert!(!out.contains("PLAIN-DAEMON-FILE"), "{cmd}: ran: {out}");
        assert_eq!(out, "", "{cmd}: ran");
        assert_eq!(code, 126, "{cmd}: {out} {err}");
        let rec = exec_log(&t.c).get(before).cloned().unwrap_or(Value::Null);
        assert_eq!(rec["event"], "refused", "{cmd}: {rec}");
        assert_eq!(rec["reason"], "policy_stricter", "{cmd}: {rec}");
        assert_eq!(rec["request_id"], request_id(&s).as_str(), "{cmd}: {rec}");
    }
    // The same read of a path only root can redirect runs.
    let s = signed(&controller, "sudo cat /srv/aiops-root/ok", None);
    let frame = aiops_exec::frame(0, 0, &s.encode_to_vec());
    let (code, out, err) = as_daemon_run(&t.c, &frame, &["sudo", "-n", EXEC]);
    assert_eq!((code, out.as_str()), (0, "ROOT-ONLY-OK\n"), "{err}");
    // The daemon keeps the signed bytes it was sent: replayed to the executor, the stage
    // does not run again (before, it ran until the request expired).
    let (code, out, err) = as_daemon_run(&t.c, &frame, &["sudo", "-n", EXEC]);
    assert_eq!(
        (code, out.as_str()),
        (126, ""),
        "a replayed request ran: {err}"
    );
    assert_eq!(last_refusal(&t.c), "replayed", "{err}");

    // An approved command run as another account: its `<` is opened as that account, not
    // as root before the switch.
    let s = approved_as(&controller, &approver, "cat < /etc/shadow", "aiops-run");
    let frame = aiops_exec::frame(
        aiops_exec::WHOLE_PLAN,
        aiops_exec::WHOLE_PLAN,
        &s.encode_to_vec(),
    );
    let (code, out, err) = as_daemon_run(&t.c, &frame, &["sudo", "-n", EXEC]);
    assert!(
        !out.contains(&shadow_line),
        "read /etc/shadow as root: {out}"
    );
    assert_ne!(code, 0, "{out} {err}");
    assert!(err.contains("Permission denied"), "{err}");
    let ran = exec_log(&t.c)
        .into_iter()
        .rev()
        .find(|r| r["request_id"] == request_id(&s).as_str())
        .unwrap_or(Value::Null);
    assert_eq!(ran["event"], "approved_run", "{ran}");
    assert_eq!(ran["run_as"], "aiops-run", "{ran}");
}

#[test]
fn a_compromised_daemon_cannot_make_the_executor_run_without_its_log_record() {
    // sudo passes the caller's rlimits and ignored signals: with RLIMIT_FSIZE 0 and SIGXFSZ
    // ignored the executor's append fails quietly. Ran but not logged must never happen.
    let t = boot("priv-log", 59, None);
    let pki = t.ctl.pki();
    let controller = key(&pki.signing_key());
    let approver = key(&t.ctl.dir().join("pki/approver.key"));
    t.c.sh("mkdir -p /srv/aiops-root && echo ROOT-ONLY-OK > /srv/aiops-root/ok && chmod 600 /srv/aiops-root/ok");
    // The log exists and is not empty, as on any host that ran something.
    let warm = signed(&controller, "sudo cat /srv/aiops-root/ok", None);
    let (code, _, err) = as_daemon_run(
        &t.c,
        &aiops_exec::frame(0, 0, &warm.encode_to_vec()),
        &["sudo", "-n", EXEC],
    );
    assert_eq!(code, 0, "{err}");
    let marker = "/var/tmp/aiops-unlogged-marker";
    let fix = format!("touch {marker}");
    // A soft limit the executor can lift itself (up to the hard limit): it runs, recorded.
    // A hard limit only CAP_SYS_RESOURCE lifts (this test machine's root lacks it; a real
    // host's has it): recorded and run, or refused with nothing run.
    for (ulimit, must_run) in [("ulimit -S -f 0", true), ("ulimit -f 0", false)] {
        let limited = [
            "sh",
            "-c",
            &format!("{ulimit} && trap '' XFSZ && exec sudo -n {EXEC}"),
        ];
        let privileged = signed(&controller, "sudo cat /srv/aiops-root/ok", None);
        let approved = signed(&controller, &fix, Some((&approver, "root")));
        let frames = [
            (
                &privileged,
                aiops_exec::frame(0, 0, &privileged.encode_to_vec()),
            ),
            (
                &approved,
                aiops_exec::frame(
                    aiops_exec::WHOLE_PLAN,
                    aiops_exec::WHOLE_PLAN,
                    &approved.encode_to_vec(),
                ),
            ),
        ];
        for (s, frame) in &frames {
            let (code, out, err) = as_daemon_run(&t.c, frame, &limited);
            let id = request_id(s);
            let logged = exec_log(&t.c)
                .iter()
                .any(|r| r["request_id"] == id.as_str() && r["event"] != "refused");
            let ran = out.contains("ROOT-ONLY-OK") || exists(&t.c, marker);
            assert!(
                !ran || logged,
                "{ulimit}: ran without its record in exec.jsonl: exit {code}: {out} {err}"
            );
            if must_run {
                assert!(ran && code == 0, "{ulimit}: exit {code}: {out} {err}");
            } else if !ran {
                // Refused, said so, and nothing ran.
                assert_eq!(code, 126, "{ulimit}: {out} {err}");
                assert!(err.contains("aiops-exec: refused"), "{ulimit}: {err}");
                assert_eq!(out, "", "{ulimit}");
            }
            let _ = std::fs::remove_file(t.c.root.join(marker.trim_start_matches('/')));
        }
    }
}
