//! Approvals the assistant cannot forge, and an audit log nobody can quietly edit.

use std::collections::HashMap;
use std::path::PathBuf;
use std::time::Duration;

use aiops_certs::pki::PkiDir;
use aiops_certs::signing::SigningKey;
use aiops_controller::dispatch::client;
use aiops_e2e::{Lab, aiops_bin, request, run_cmd};
use aiops_proto::agent::v1 as pb;
use prost::Message;
use serde_json::Value;

fn marker(lab: &Lab, name: &str) -> (PathBuf, String) {
    let p = lab.tmp.path().join(name);
    let cmd = format!("touch {}", p.display());
    (p, cmd)
}

fn pending_file(lab: &Lab, id: &str) -> PathBuf {
    lab.dir.join("runtime/approvals").join(format!("{id}.json"))
}

#[test]
fn lab_deny_runs_nothing_and_approve_runs_exactly_once() {
    let lab = Lab::start(1, "lab");
    let (m, cmd) = marker(&lab, "denied");
    let (answer, code) = lab.run(&request("srv1", &cmd));
    assert_eq!(code, 0);
    assert_eq!(answer["status"], "approval_requested", "{answer}");
    assert_eq!(answer["risk"], "approval_required");
    assert_eq!(
        answer["message"],
        "Approval required. Reply Approve or Deny."
    );
    assert_eq!(answer["target"], "srv1");
    assert_eq!(answer["command"], cmd.as_str());
    assert_eq!(answer["reason"], "test");
    let (answer, code) = lab.run(b"  deny \n");
    assert_eq!(
        (answer["status"].as_str(), code),
        (Some("denied"), 0),
        "{answer}"
    );
    assert!(!m.exists());
    assert!(
        lab.agent_audit("srv1").is_empty(),
        "nothing reached the agent"
    );

    let (m, cmd) = marker(&lab, "approved");
    let (answer, _) = lab.run(&request("srv1", &cmd));
    let id = answer["approval_id"].as_str().unwrap().to_string();
    let (answer, code) = lab.run(b"APPROVE");
    assert_eq!(code, 0, "{answer}");
    assert_eq!(answer["status"], "executed");
    assert_eq!(answer["approval_id"], id.as_str());
    assert_eq!(answer["risk"], "approval_required");
    assert!(m.exists());
    std::fs::remove_file(&m).unwrap();
    // Used once: neither a bare Approve nor one naming the id runs it again.
    let (answer, code) = lab.run(b"Approve");
    assert_eq!(answer["error"]["code"], "no_pending_approval", "{answer}");
    assert_eq!(code, 1);
    let (answer, _) = lab.run(format!("Approve {id}").as_bytes());
    assert_eq!(answer["error"]["code"], "approval_not_pending", "{answer}");
    assert!(!m.exists());
    let executed = lab
        .agent_audit("srv1")
        .iter()
        .filter(|r| r["event"] == "executed")
        .count();
    assert_eq!(executed, 1);
    let events: Vec<String> = lab
        .audit()
        .iter()
        .map(|r| r["event"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(
        events,
        [
            "approval_requested",
            "denied",
            "approval_requested",
            "approved",
            "requested",
            "executed",
            "error",
            "error"
        ]
    );
}

#[test]
fn expired_and_tampered_approvals_never_run() {
    let lab = Lab::init(1, "lab");
    lab.edit(
        "config.yml",
        "approval_ttl_secs: 900",
        "approval_ttl_secs: 1",
    );
    lab.up();
    let (m, cmd) = marker(&lab, "expired");
    let (answer, _) = lab.run(&request("srv1", &cmd));
    assert_eq!(answer["status"], "approval_requested");
    std::thread::sleep(Duration::from_millis(2100));
    let (answer, code) = lab.run(b"Approve");
    // The only pending approval expired: it is named as expired, not just missing.
    assert!(
        ["approval_expired", "no_pending_approval"]
            .contains(&answer["error"]["code"].as_str().unwrap()),
        "{answer}"
    );
    assert_eq!(code, 1);
    let id = lab
        .audit()
        .iter()
        .find(|r| r["event"] == "approval_requested")
        .unwrap()["approval_id"]
        .as_str()
        .unwrap()
        .to_string();
    let (answer, _) = lab.run(format!("Approve {id}").as_bytes());
    assert_eq!(answer["error"]["code"], "approval_expired", "{answer}");
    assert!(
        lab.audit()
            .iter()
            .any(|r| r["event"] == "expired" && r["approval_id"] == id.as_str())
    );
    assert!(!m.exists());

    // A changed command under the same id (hash recomputed too) never runs.
    lab.edit(
        "config.yml",
        "approval_ttl_secs: 1",
        "approval_ttl_secs: 900",
    );
    let (m, cmd) = marker(&lab, "original");
    let (answer, _) = lab.run(&request("srv1", &cmd));
    let id = answer["approval_id"].as_str().unwrap().to_string();
    let (evil, evil_cmd) = marker(&lab, "evil");
    let file = pending_file(&lab, &id);
    let mut stored: Value = serde_json::from_str(&std::fs::read_to_string(&file).unwrap()).unwrap();
    stored["command"] = evil_cmd.clone().into();
    stored["command_sha256"] = aiops_sys::sha256_hex(evil_cmd.as_bytes()).into();
    std::fs::write(&file, serde_json::to_vec(&stored).unwrap()).unwrap();
    let (answer, code) = lab.run(b"Approve");
    assert_eq!(answer["error"]["code"], "approval_tampered", "{answer}");
    assert_eq!(code, 1);
    assert!(!evil.exists() && !m.exists());
    assert!(lab.agent_audit("srv1").is_empty());
}

#[test]
fn a_new_request_supersedes_the_requesters_older_one() {
    let lab = Lab::start(1, "lab");
    let (first, cmd1) = marker(&lab, "first");
    let (second, cmd2) = marker(&lab, "second");
    let (a1, _) = lab.run(&request("srv1", &cmd1));
    let (a2, _) = lab.run(&request("srv1", &cmd2));
    let (answer, _) = lab.run(b"Approve");
    assert_eq!(answer["status"], "executed", "{answer}");
    assert_eq!(answer["approval_id"], a2["approval_id"]);
    assert!(second.exists() && !first.exists());
    let superseded: Vec<Value> = lab
        .audit()
        .into_iter()
        .filter(|r| r["event"] == "superseded")
        .collect();
    assert_eq!(superseded.len(), 1);
    assert_eq!(superseded[0]["approval_id"], a1["approval_id"]);
    let (answer, _) =
        lab.run(format!("Approve {}", a1["approval_id"].as_str().unwrap()).as_bytes());
    assert_eq!(answer["error"]["code"], "approval_not_pending");
    assert!(!first.exists());
}

fn whoami() -> String {
    nix::unistd::User::from_uid(nix::unistd::getuid())
        .unwrap()
        .unwrap()
        .name
}

#[test]
fn production_only_an_approver_other_than_the_requester_can_approve() {
    let lab = Lab::start(1, "production");
    let (m, cmd) = marker(&lab, "prod");
    // Unknown commands are rejected in production; this one is covered by a rule.
    let (answer, _) = lab.run(&request("srv1", "mkfs.ext4 /dev/sda1"));
    assert_eq!(answer["status"], "forbidden");
    let (answer, _) = lab.run(&request("srv1", &cmd));
    assert_eq!(answer["status"], "approval_requested", "{answer}");
    assert!(answer["message"].as_str().unwrap().contains("approver"));
    let id = answer["approval_id"].as_str().unwrap().to_string();
    for verb in ["Approve", "approve", &format!("Approve {id}"), "Deny"] {
        let (answer, code) = lab.run(verb.as_bytes());
        assert_eq!(
            answer["error"]["code"], "approval_not_allowed",
            "{verb}: {answer}"
        );
        assert_eq!(code, 1);
    }
    assert!(!m.exists());
    // The approver (this account, listed in approvals.approvers) approves it
    // as `approvals list` showed it.
    assert!(lab.aiops(&["approvals", "list"]).status.success());
    let out = lab.aiops(&["approvals", "approve", &id]);
    let answer = aiops_e2e::parse_answer(&out);
    assert_eq!(answer["status"], "executed", "{answer}");
    assert!(m.exists());
    let approved = lab
        .audit()
        .into_iter()
        .find(|r| r["event"] == "approved")
        .unwrap();
    assert_eq!(approved["resolver"], whoami().as_str());
    let accepted = lab
        .agent_audit("srv1")
        .into_iter()
        .find(|r| r["event"] == "accepted")
        .unwrap();
    assert_eq!(accepted["approver"], whoami().as_str());

    // No self-approval: a request made under the approver's own name.
    let (m2, cmd2) = marker(&lab, "self");
    let body = serde_json::to_vec(&serde_json::json!({"target": "srv1", "command": cmd2, "requester": whoami(), "reason": "x"})).unwrap();
    let (answer, _) = lab.run(&body);
    let id2 = answer["approval_id"].as_str().unwrap().to_string();
    let answer = aiops_e2e::parse_answer(&lab.aiops(&["approvals", "approve", &id2]));
    assert_eq!(answer["error"]["code"], "self_approval", "{answer}");
    assert!(!m2.exists());

    // Someone not in the approvers list.
    lab.edit(
        "config.yml",
        &format!("approvers: [{}]", whoami()),
        "approvers: [alice]",
    );
    let answer = aiops_e2e::parse_answer(&lab.aiops(&["approvals", "approve", &id2]));
    assert_eq!(answer["error"]["code"], "not_an_approver", "{answer}");
    assert!(!m2.exists());
}

struct Forge {
    controller: SigningKey,
    approver: SigningKey,
    pki: PkiDir,
}

impl Forge {
    fn new(lab: &Lab) -> Forge {
        let pki = PkiDir::new(lab.dir.join("pki"));
        let read = |p: PathBuf| SigningKey::from_pem(&std::fs::read_to_string(p).unwrap()).unwrap();
        Forge {
            controller: read(pki.signing_key()),
            approver: read(pki.approver_key()),
            pki,
        }
    }

    fn request(&self, command: &str, approval_id: &str) -> pb::CommandRequest {
        let d = aiops_policy::Policy::builtin().classify(command);
        assert_eq!(d.risk, aiops_policy::Risk::ApprovalRequired);
        let now = aiops_sys::now_ms();
        pb::CommandRequest {
            request_id: uuid::Uuid::new_v4().to_string(),
            target: "srv1".into(),
            command: command.into(),
            plan: Some(aiops_proto::plan::to_proto(&d.plan)),
            decision: pb::Decision::Approved as i32,
            requester: "hermes".into(),
            reason: "forged".into(),
            issued_at_ms: now,
            expires_at_ms: now + 60_000,
            timeout_ms: 10_000,
            output_cap_bytes: 4096,
            policy_digest: String::new(),
            approval_id: approval_id.into(),
            controller_seq: 0,
            controller_hash: String::new(),
        }
    }

    fn grant(
        &self,
        key: &SigningKey,
        id: &str,
        target: &str,
        command: &str,
        expires: i64,
    ) -> Vec<u8> {
        self.grant_for(key, id, target, command, expires, "hermes")
    }

    fn grant_for(
        &self,
        key: &SigningKey,
        id: &str,
        target: &str,
        command: &str,
        expires: i64,
        requester: &str,
    ) -> Vec<u8> {
        let grant = pb::ApprovalGrant {
            approval_id: id.into(),
            target: target.into(),
            command_sha256: aiops_sys::sha256_hex(command.as_bytes()),
            expires_at_ms: expires,
            approver: "approver".into(),
            requester: requester.into(),
            ..Default::default()
        }
        .encode_to_vec();
        pb::SignedApproval {
            signature: key.sign(&grant),
            key_id: key.verifying_key().key_id(),
            grant,
        }
        .encode_to_vec()
    }

    fn send(
        &self,
        lab: &Lab,
        req: &pb::CommandRequest,
        approval: Vec<u8>,
    ) -> Result<client::Collected, client::ClientError> {
        aiops_certs::install_crypto_provider();
        let mut signed = client::sign(req, &self.controller);
        signed.approval = approval;
        let tls = std::sync::Arc::new(
            aiops_certs::tls::client_config(
                &self.pki.ca_cert(),
                &self.pki.controller_cert(),
                &self.pki.controller_key(),
            )
            .unwrap(),
        );
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        rt.block_on(async {
            let ch =
                client::connect(&lab.agent_addr(1), "srv1", tls, Duration::from_secs(5)).await?;
            client::execute(ch, signed, Duration::from_secs(20)).await
        })
    }
}

#[test]
fn agent_refuses_approved_requests_without_a_valid_grant() {
    let lab = Lab::start(2, "production");
    let forge = Forge::new(&lab);
    let (m, cmd) = marker(&lab, "forged");
    let (_, other_cmd) = marker(&lab, "other");
    let id = uuid::Uuid::new_v4().to_string();
    let later = aiops_sys::now_ms() + 600_000;
    let stranger = SigningKey::generate();
    let cases: Vec<(&str, Vec<u8>, &str)> = vec![
        ("missing", Vec::new(), "approval_missing"),
        ("garbage", b"not a grant".to_vec(), "approval_invalid"),
        (
            "signed by the controller key",
            forge.grant(&forge.controller, &id, "srv1", &cmd, later),
            "approval_invalid",
        ),
        (
            "signed by a stranger",
            forge.grant(&stranger, &id, "srv1", &cmd, later),
            "approval_invalid",
        ),
        (
            "expired",
            forge.grant(
                &forge.approver,
                &id,
                "srv1",
                &cmd,
                aiops_sys::now_ms() - 120_000,
            ),
            "approval_expired",
        ),
        (
            "for another command",
            forge.grant(&forge.approver, &id, "srv1", &other_cmd, later),
            "approval_invalid",
        ),
        (
            "for another target",
            forge.grant(&forge.approver, &id, "srv2", &cmd, later),
            "approval_invalid",
        ),
        (
            "for another requester",
            forge.grant_for(&forge.approver, &id, "srv1", &cmd, later, "mallory"),
            "approval_invalid",
        ),
        (
            "for another approval",
            forge.grant(
                &forge.approver,
                &uuid::Uuid::new_v4().to_string(),
                "srv1",
                &cmd,
                later,
            ),
            "approval_invalid",
        ),
    ];
    for (what, approval, reason) in cases {
        let err = forge
            .send(&lab, &forge.request(&cmd, &id), approval)
            .expect_err(what);
        assert_eq!(err.reason(), Some(reason), "{what}: {err}");
        assert!(!m.exists(), "{what}: ran");
        assert_eq!(
            lab.agent_audit("srv1").last().unwrap()["reason"],
            reason,
            "{what}"
        );
    }
    // The control: a valid grant runs, once; the same grant on a new request is refused.
    let good = forge.grant(&forge.approver, &id, "srv1", &cmd, later);
    forge
        .send(&lab, &forge.request(&cmd, &id), good.clone())
        .expect("valid grant runs");
    assert!(m.exists());
    std::fs::remove_file(&m).unwrap();
    let err = forge
        .send(&lab, &forge.request(&cmd, &id), good)
        .expect_err("reused grant");
    assert_eq!(err.reason(), Some("approval_used"));
    assert!(!m.exists());
}

#[test]
fn fifty_concurrent_requesters_each_end_in_exactly_one_terminal_record() {
    let lab = Lab::start(2, "lab");
    let handles: Vec<_> = (0..50)
        .map(|i| {
            let config = lab.config();
            let dir = lab.tmp.path().to_path_buf();
            std::thread::spawn(move || {
                let requester = format!("req{i}");
                let target = if i % 2 == 0 { "srv1" } else { "srv2" };
                let env = [("AIOPS_CONFIG", config.to_str().unwrap())];
                let (command, verb) = match i % 5 {
                    0 => ("hostname".to_string(), None),
                    1 => (format!("touch {}/m{i}", dir.display()), Some("Deny")),
                    _ => (format!("touch {}/m{i}", dir.display()), Some("Approve")),
                };
                let body = serde_json::to_vec(&serde_json::json!({"target": target, "command": command, "requester": requester, "reason": "load"})).unwrap();
                let first = aiops_e2e::parse_answer(&run_cmd(&aiops_bin(), &["run"], &body, &env, &[]));
                let Some(verb) = verb else { return (i, first) };
                assert_eq!(first["status"], "approval_requested", "{first}");
                let out = run_cmd(&aiops_bin(), &["run"], verb.as_bytes(), &env, &[("AIOPS_REQUESTER", &requester)]);
                (i, aiops_e2e::parse_answer(&out))
            })
        })
        .collect();
    for h in handles {
        let (i, answer) = h.join().unwrap();
        let want = match i % 5 {
            1 => "denied",
            _ => "executed",
        };
        assert_eq!(answer["status"], want, "{i}: {answer}");
        let ran = lab.tmp.path().join(format!("m{i}")).exists();
        assert_eq!(ran, i % 5 >= 2, "{i}");
    }
    assert!(lab.aiops(&["audit", "verify"]).status.success());
    // Every approval ends in exactly one terminal record; every direct run too.
    let audit = lab.audit();
    let mut terminal: HashMap<String, Vec<String>> = HashMap::new();
    for r in &audit {
        let ev = r["event"].as_str().unwrap();
        let key = r["approval_id"]
            .as_str()
            .or(r["request_id"].as_str())
            .unwrap()
            .to_string();
        if [
            "executed",
            "denied",
            "superseded",
            "expired",
            "error",
            "forbidden",
            "rejected",
        ]
        .contains(&ev)
        {
            terminal.entry(key).or_default().push(ev.to_string());
        }
    }
    assert_eq!(terminal.len(), 50, "{terminal:?}");
    assert!(terminal.values().all(|v| v.len() == 1), "{terminal:?}");
    // No pending file is corrupt: every one parses and none is left pending.
    let out = lab.aiops(&["approvals", "list", "--json"]);
    let all: Vec<Value> = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(all.len(), 40);
    assert!(
        all.iter()
            .all(|a| a["state"] == "used" || a["state"] == "denied"),
        "{all:?}"
    );
}

#[test]
fn editing_deleting_or_reordering_audit_lines_is_detected_and_named() {
    let lab = Lab::start(1, "lab");
    for _ in 0..4 {
        lab.run(&request("srv1", "hostname"));
    }
    let path = lab.dir.join("audit.jsonl");
    let original = std::fs::read_to_string(&path).unwrap();
    let lines: Vec<&str> = original.lines().collect();
    assert_eq!(lines.len(), 8);
    let verify = |lab: &Lab| {
        let out = lab.aiops(&["audit", "verify"]);
        (out.status.code(), aiops_e2e::parse_answer(&out))
    };
    assert_eq!(verify(&lab).0, Some(0));
    let edited = original.replacen("\"requester\":\"e2e\"", "\"requester\":\"eve\"", 3);
    let cases: Vec<(&str, String, u64)> = vec![
        (
            "edited line 3",
            {
                let mut l = lines.clone();
                let e: Vec<&str> = edited.lines().collect();
                l[2] = e[2];
                l.join("\n") + "\n"
            },
            3,
        ),
        (
            "deleted line 2",
            {
                let mut l = lines.clone();
                l.remove(1);
                l.join("\n") + "\n"
            },
            2,
        ),
        (
            "swapped lines 5 and 6",
            {
                let mut l = lines.clone();
                l.swap(4, 5);
                l.join("\n") + "\n"
            },
            5,
        ),
        ("deleted the last line", lines[..7].join("\n") + "\n", 8),
        (
            "garbage line 4",
            {
                let mut l = lines.clone();
                l[3] = "{oops";
                l.join("\n") + "\n"
            },
            4,
        ),
    ];
    for (what, text, line) in cases {
        std::fs::write(&path, text).unwrap();
        let (code, answer) = verify(&lab);
        assert_eq!(code, Some(1), "{what}");
        assert_eq!(answer["status"], "error", "{what}");
        assert_eq!(answer["line"], line, "{what}: {answer}");
    }
    std::fs::write(&path, &original).unwrap();
    assert_eq!(verify(&lab).0, Some(0));
}

#[test]
fn an_unwritable_audit_log_fails_closed_and_nothing_runs() {
    let lab = Lab::start(1, "lab");
    for (what, path) in [
        ("disk full", "/dev/full"),
        ("unwritable", "/proc/aiops-no-such-dir/audit.jsonl"),
    ] {
        lab.edit(
            "config.yml",
            "audit_log: audit.jsonl",
            &format!("audit_log: {path}"),
        );
        let (m, cmd) = marker(&lab, "closed");
        for input in [
            request("srv1", "hostname"),
            request("srv1", &cmd),
            b"{bad".to_vec(),
        ] {
            let (answer, code) = lab.run(&input);
            assert_eq!(answer["error"]["code"], "audit_failed", "{what}: {answer}");
            assert_eq!(code, 2, "{what}");
        }
        assert!(!m.exists());
        assert!(
            lab.agent_audit("srv1").is_empty(),
            "{what}: the agent was called"
        );
        lab.edit(
            "config.yml",
            &format!("audit_log: {path}"),
            "audit_log: audit.jsonl",
        );
    }
}

#[test]
fn secrets_in_output_never_reach_the_answer_or_the_audit_log() {
    let lab = Lab::start(1, "lab");
    let file = lab.tmp.path().join("app.env");
    let content = "DB_PASSWORD=hunter2hunter2\nAuthorization: Bearer eyJhbGciOiJIUzI1NiJ9.payload.sig\n-----BEGIN OPENSSH PRIVATE KEY-----\nb3BlbnNzaC1rZXktdjEAAAAA\n-----END OPENSSH PRIVATE KEY-----\nok=1\n";
    std::fs::write(&file, content).unwrap();
    let (answer, code) = lab.run(&request("srv1", &format!("cat {}", file.display())));
    assert_eq!(code, 0, "{answer}");
    assert_eq!(answer["status"], "executed", "{answer}");
    let stdout = answer["stdout"].as_str().unwrap();
    assert!(
        stdout.contains("[REDACTED]") && stdout.contains("ok=1"),
        "{stdout}"
    );
    let log = std::fs::read_to_string(lab.dir.join("audit.jsonl")).unwrap();
    for secret in ["hunter2", "eyJhbGci", "b3BlbnNz"] {
        assert!(!stdout.contains(secret), "{secret} in the answer");
        assert!(!log.contains(secret), "{secret} in the audit log");
    }
    // The audit keeps the digest and size of the full output instead.
    let executed = lab
        .audit()
        .into_iter()
        .find(|r| r["event"] == "executed")
        .unwrap();
    assert_eq!(
        executed["stdout_sha256"],
        aiops_sys::sha256_hex(content.as_bytes())
    );
    assert_eq!(executed["stdout_bytes"], content.len());
}
