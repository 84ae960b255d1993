//! What an approval lets run, on a real lab agent (real mTLS, the real
//! `aiops-exec` executor, real accounts): the limits of an auto-allowed
//! command reach the controller's answer, `executor.approvable` narrows what
//! can be approved on a host at all, and an approved `run_as` really runs as
//! that account, bound by the approver's signature.

use std::path::PathBuf;
use std::time::Duration;

use aiops_certs::pki::PkiDir;
use aiops_certs::signing::SigningKey;
use aiops_controller::dispatch::client;
use aiops_e2e::{Lab, read_jsonl, request};
use aiops_proto::agent::v1 as pb;
use prost::Message;
use serde_json::Value;

fn exec_log(lab: &Lab) -> Vec<Value> {
    read_jsonl(&lab.agent_dir("srv1").join("exec-state/exec.jsonl"))
}

fn marker(lab: &Lab, name: &str) -> (PathBuf, String) {
    let p = lab.tmp.path().join(name);
    let cmd = format!("touch {}", p.display());
    (p, cmd)
}

#[test]
fn a_memory_hog_is_answered_limit_exceeded_before_its_timeout_and_audited() {
    let lab = Lab::init(1, "lab");
    // A small limit keeps the test host safe; the timeout is far away (30 s).
    lab.append("agents/srv1/agent.yml", "limits:\n  memory_mb: 64\n");
    lab.up();
    let (a, code) = lab.run(&request("srv1", "sort /dev/zero"));
    assert_eq!(code, 0, "{a}");
    assert_eq!(a["status"], "executed", "{a}");
    assert_eq!(a["risk"], "auto_allowed", "{a}");
    assert_eq!(a["limit_exceeded"], "memory", "{a}");
    assert_eq!(a["timed_out"], false, "{a}");
    assert_ne!(a["exit_code"], 0, "{a}");
    // The controller's outcome record carries it, and so does the agent's.
    let rec = lab
        .audit()
        .into_iter()
        .rev()
        .find(|r| r["event"] == "executed")
        .expect("an executed record");
    assert_eq!(rec["limit_exceeded"], "memory", "{rec}");
    assert_eq!(rec["request_id"], a["request_id"], "{rec}");
    let agent = lab
        .agent_audit("srv1")
        .into_iter()
        .rev()
        .find(|r| r["event"] == "executed")
        .expect("the agent's executed record");
    assert_eq!(agent["limit_exceeded"], "memory", "{agent}");
    // A command within its limits has no such field, and the agent still serves.
    let (a, _) = lab.run(&request("srv1", "hostname"));
    assert_eq!(a["status"], "executed", "{a}");
    assert!(a.get("limit_exceeded").is_none(), "{a}");
}

#[test]
fn a_host_that_allows_only_restarts_refuses_any_other_approved_command() {
    let lab = Lab::init(1, "lab");
    lab.append(
        "agents/srv1/agent.yml",
        "executor:\n  approvable: [\"systemctl restart *\"]\n",
    );
    lab.up();

    // Allowed on this host: the executor's check passes and the plan runs (this
    // host has no systemd as PID 1, so systemctl itself fails: that is its own
    // exit code, not a refusal).
    let (a, _) = lab.run(&request("srv1", "systemctl restart aiops-test-unit"));
    assert_eq!(a["status"], "approval_requested", "{a}");
    let (a, code) = lab.run(b"Approve");
    assert_eq!(code, 0, "{a}");
    assert_eq!(a["status"], "executed", "{a}");
    assert_ne!(a["exit_code"], 126, "{a}");
    assert!(
        !a["stderr"]
            .as_str()
            .unwrap_or("")
            .contains("not_approvable"),
        "{a}"
    );
    let ran = exec_log(&lab)
        .into_iter()
        .rev()
        .find(|r| r["event"] == "approved_run")
        .expect("the executor ran the approved restart");
    assert_eq!(ran["command"], "systemctl restart aiops-test-unit", "{ran}");

    // Anything else, approved by a human all the same, is refused by the executor.
    let (m, cmd) = marker(&lab, "not-approvable");
    let (a, _) = lab.run(&request("srv1", &cmd));
    assert_eq!(a["status"], "approval_requested", "{a}");
    let id = a["approval_id"].as_str().unwrap().to_string();
    let (a, _) = lab.run(b"Approve");
    assert_eq!(a["status"], "executed", "{a}");
    assert_eq!(a["exit_code"], 126, "{a}");
    assert!(
        a["stderr"]
            .as_str()
            .unwrap_or("")
            .contains("refused: not_approvable"),
        "{a}"
    );
    assert!(!m.exists(), "a command the host does not allow ran");
    let refused = exec_log(&lab)
        .into_iter()
        .rev()
        .find(|r| r["event"] == "refused")
        .expect("the executor's refusal record");
    assert_eq!(refused["reason"], "not_approvable", "{refused}");
    assert!(
        !exec_log(&lab)
            .iter()
            .any(|r| r["event"] == "approved_run" && r["command"] == cmd.as_str()),
        "the executor recorded a run of it"
    );
    // The agent's audit and the controller's both show it ended refused (126).
    let agent = lab
        .agent_audit("srv1")
        .into_iter()
        .rev()
        .find(|r| r["event"] == "executed" && r["command"] == cmd.as_str())
        .expect("the agent's record");
    assert_eq!(agent["exit_code"], 126, "{agent}");
    let ctl = lab
        .audit()
        .into_iter()
        .rev()
        .find(|r| r["event"] == "executed" && r["approval_id"] == id.as_str())
        .expect("the controller's record");
    assert_eq!(ctl["exit_code"], 126, "{ctl}");
}

/// Sends requests straight to a lab agent with the lab's own controller and
/// approver keys: what a compromised controller host (holding both, as a
/// lab does) or a replayed grant could hand the executor.
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

    /// An approved request for `command` carrying a grant whose plan digest
    /// is `plan_sha256` and whose account is `run_as`.
    fn send(&self, lab: &Lab, command: &str, plan_sha256: &str, run_as: &str) -> client::Collected {
        let d = aiops_policy::Policy::builtin().classify(command);
        let now = aiops_sys::now_ms();
        let approval_id = uuid::Uuid::new_v4().to_string();
        let req = pb::CommandRequest {
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
            approval_id: approval_id.clone(),
            controller_seq: 0,
            controller_hash: String::new(),
        };
        let grant = pb::ApprovalGrant {
            approval_id,
            target: "srv1".into(),
            command_sha256: aiops_sys::sha256_hex(command.as_bytes()),
            expires_at_ms: now + 60_000,
            approver: "approver".into(),
            requester: "hermes".into(),
            run_as: run_as.into(),
            plan_sha256: plan_sha256.into(),
        }
        .encode_to_vec();
        let mut signed = client::sign(&req, &self.controller);
        signed.approval = pb::SignedApproval {
            signature: self.approver.sign(&grant),
            key_id: self.approver.verifying_key().key_id(),
            grant,
        }
        .encode_to_vec();
        aiops_certs::install_crypto_provider();
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
        .expect("the agent accepts it (the executor decides)")
    }
}

fn plan_of(command: &str) -> String {
    aiops_policy::plan_digest(&aiops_policy::Policy::builtin().classify(command).plan)
}

#[test]
fn the_executor_refuses_a_grant_for_another_plan_than_the_one_it_derives() {
    let lab = Lab::start(1, "lab");
    let forge = Forge::new(&lab);
    let (m, cmd) = marker(&lab, "plan-a");
    // The approver signed a grant whose plan is another one than what this
    // command text derives: it must not authorise this plan.
    let other = plan_of("sudo systemctl restart nginx");
    let out = forge.send(&lab, &cmd, &other, "");
    assert_eq!(out.exit.exit_code, 126, "{}", out.stderr_text());
    assert!(
        out.stderr_text().contains("refused: approval_invalid"),
        "{}",
        out.stderr_text()
    );
    assert!(!m.exists(), "a grant for another plan ran this one");
    let refused = exec_log(&lab)
        .into_iter()
        .rev()
        .find(|r| r["event"] == "refused")
        .expect("the executor's refusal");
    assert_eq!(refused["reason"], "approval_invalid", "{refused}");
    assert!(
        refused["message"].as_str().unwrap_or("").contains("plan"),
        "{refused}"
    );
    // The control: the same request with the plan's own digest runs.
    let out = forge.send(&lab, &cmd, &plan_of(&cmd), "");
    assert_eq!(out.exit.exit_code, 0, "{}", out.stderr_text());
    assert!(m.exists(), "the grant for this plan did not run it");
}

/// A sticky, world-writable directory of the test, so `nobody` can create in it.
fn scratch(lab: &Lab) -> PathBuf {
    use std::os::unix::fs::PermissionsExt;
    let dir = lab.tmp.path().join("scratch");
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o1777)).unwrap();
    dir
}

fn owner_uid(p: &std::path::Path) -> u32 {
    use std::os::unix::fs::MetadataExt;
    std::fs::metadata(p).expect("the marker exists").uid()
}

fn run_as_request(command: &str, run_as: &str) -> Vec<u8> {
    serde_json::to_vec(&serde_json::json!({
        "target": "srv1", "command": command, "requester": "e2e", "reason": "test",
        "run_as": run_as,
    }))
    .unwrap()
}

#[test]
fn an_approved_run_as_really_runs_as_that_account_and_the_card_says_so() {
    let lab = Lab::start(1, "lab");
    let dir = scratch(&lab);
    let m = dir.join("as-nobody");
    let cmd = format!("touch {}", m.display());
    let (a, _) = lab.run(&run_as_request(&cmd, "nobody"));
    assert_eq!(a["status"], "approval_requested", "{a}");
    assert_eq!(a["card"]["run_as"], "nobody", "{a}");
    assert_eq!(a["card"]["targets"], serde_json::json!(["srv1"]), "{a}");
    assert_eq!(
        a["card"]["plan"],
        serde_json::json!([format!("1. touch {}", m.display())]),
        "{a}"
    );
    assert_eq!(a["card"]["undo"], "reversible_if_noted", "{a}");
    let (a, _) = lab.run(b"Approve");
    assert_eq!(a["status"], "executed", "{a}");
    assert_eq!(a["exit_code"], 0, "{a}");
    assert_eq!(
        owner_uid(&m),
        65534,
        "the approved command did not run as nobody"
    );
    let ran = exec_log(&lab)
        .into_iter()
        .rev()
        .find(|r| r["event"] == "approved_run")
        .unwrap();
    assert_eq!(ran["run_as"], "nobody", "{ran}");

    // Without run_as the same kind of command runs as root (uid 0).
    let m0 = dir.join("as-root");
    let (a, _) = lab.run(&request("srv1", &format!("touch {}", m0.display())));
    assert_eq!(a["card"]["run_as"], "root", "{a}");
    let (a, _) = lab.run(b"Approve");
    assert_eq!(a["exit_code"], 0, "{a}");
    assert_eq!(owner_uid(&m0), 0);

    // An auto-allowed read asked to run as another account needs a human first.
    let (a, _) = lab.run(&run_as_request("id -u", "nobody"));
    assert_eq!(a["status"], "approval_requested", "{a}");
    assert!(
        a["reasons"][0]
            .as_str()
            .unwrap_or("")
            .contains("run_as nobody"),
        "{a}"
    );
    let (a, _) = lab.run(b"Approve");
    assert_eq!(a["status"], "executed", "{a}");
    assert_eq!(a["stdout"], "65534\n", "{a}");

    // A name that is not a plausible account is refused before anything is stored.
    for bad in [
        "",
        "Root",
        "-u0",
        "a b",
        "../x",
        "x;id",
        "abcdefghijabcdefghijabcdefghijabc",
    ] {
        let (a, code) = lab.run(&run_as_request("hostname", bad));
        assert_eq!(a["error"]["code"], "invalid_field", "{bad:?}: {a}");
        assert_eq!(code, 1);
    }
}

fn pending(lab: &Lab, id: &str) -> PathBuf {
    lab.dir.join("runtime/approvals").join(format!("{id}.json"))
}

/// The stored grant file for approval `id` of `command` on srv1, signed by
/// the lab's approver key, naming `run_as` and `plan_sha256`.
fn write_grant(lab: &Lab, forge: &Forge, id: &str, command: &str, run_as: &str, plan: &str) {
    let a: Value =
        serde_json::from_str(&std::fs::read_to_string(pending(lab, id)).unwrap()).unwrap();
    let grant = pb::ApprovalGrant {
        approval_id: id.into(),
        target: "srv1".into(),
        command_sha256: aiops_sys::sha256_hex(command.as_bytes()),
        expires_at_ms: a["expires_ms"].as_i64().unwrap(),
        approver: "approver".into(),
        requester: "e2e".into(),
        run_as: run_as.into(),
        plan_sha256: plan.into(),
    }
    .encode_to_vec();
    let mut out = Vec::new();
    pb::SignedApproval {
        signature: forge.approver.sign(&grant),
        key_id: forge.approver.verifying_key().key_id(),
        grant,
    }
    .encode_length_delimited(&mut out)
    .unwrap();
    std::fs::write(
        lab.dir
            .join("runtime/approvals")
            .join(format!("{id}.grant")),
        out,
    )
    .unwrap();
    let text = std::fs::read_to_string(pending(lab, id)).unwrap();
    std::fs::write(
        pending(lab, id),
        text.replace("\"state\": \"pending\"", "\"state\": \"granted\""),
    )
    .unwrap();
}

#[test]
fn a_grant_or_a_card_that_differs_from_what_was_approved_runs_nothing() {
    let lab = Lab::start(1, "lab");
    let forge = Forge::new(&lab);
    let m = scratch(&lab).join("bound");
    let cmd = format!("touch {}", m.display());
    let errors = |lab: &Lab, id: &str, code: &str| {
        lab.audit()
            .iter()
            .filter(|r| r["event"] == "error" && r["approval_id"] == id && r["code"] == code)
            .count()
    };

    // The human approved `nobody`; a grant naming root (re-signed with the
    // approver key) for the same approval is refused at release.
    let (a, _) = lab.run(&run_as_request(&cmd, "nobody"));
    let id = a["approval_id"].as_str().unwrap().to_string();
    let plan = a["card"]["plan_sha256"].as_str().unwrap().to_string();
    assert_eq!(plan, plan_of(&cmd));
    write_grant(&lab, &forge, &id, &cmd, "", &plan);
    let a = aiops_e2e::parse_answer(&lab.aiops(&["approvals", "release", &id]));
    assert_eq!(a["error"]["code"], "approval_invalid", "{a}");
    assert!(
        !m.exists(),
        "a grant for root ran what was approved for nobody"
    );
    assert_eq!(errors(&lab, &id, "approval_invalid"), 1);
    // ... and so is one for another plan.
    write_grant(&lab, &forge, &id, &cmd, "nobody", &plan_of("hostname"));
    let a = aiops_e2e::parse_answer(&lab.aiops(&["approvals", "release", &id]));
    assert_eq!(a["error"]["code"], "approval_invalid", "{a}");
    assert!(!m.exists());
    // The control: the grant that names exactly what was approved runs it.
    write_grant(&lab, &forge, &id, &cmd, "nobody", &plan);
    let a = aiops_e2e::parse_answer(&lab.aiops(&["approvals", "release", &id]));
    assert_eq!(a["status"], "executed", "{a}");
    assert_eq!(a["exit_code"], 0, "{a}");
    assert_eq!(owner_uid(&m), 65534);
    std::fs::remove_file(&m).unwrap();

    // The stored card edited after the controller signed it: the run-as
    // account, the plan shown, the undo hint. Each is approval_tampered.
    let edits: [(&str, &str, &str); 3] = [
        ("run_as", "\"run_as\": \"nobody\"", "\"run_as\": \"\""),
        ("plan", "\"touch\"", "\"ls\""),
        (
            "undo",
            "\"undo\": \"reversible_if_noted\"",
            "\"undo\": \"no_state_lost\"",
        ),
    ];
    for (what, from, to) in edits {
        let (a, _) = lab.run(&run_as_request(&cmd, "nobody"));
        let id = a["approval_id"].as_str().unwrap().to_string();
        let text = std::fs::read_to_string(pending(&lab, &id)).unwrap();
        assert!(text.contains(from), "{what}: {text}");
        std::fs::write(pending(&lab, &id), text.replacen(from, to, 1)).unwrap();
        let (a, _) = lab.run(b"Approve");
        assert_eq!(a["error"]["code"], "approval_tampered", "{what}: {a}");
        assert!(!m.exists(), "{what}: ran");
        assert_eq!(errors(&lab, &id, "approval_tampered"), 1, "{what}");
        let _ = lab.run(b"Deny");
    }
    let executed = lab
        .agent_audit("srv1")
        .iter()
        .filter(|r| r["event"] == "executed")
        .count();
    assert_eq!(executed, 1, "only the control reached the agent");
}

#[test]
fn approvals_list_shows_the_plan_the_account_every_target_and_the_undo_hint() {
    let lab = Lab::start(2, "lab");
    let body = serde_json::to_vec(&serde_json::json!({
        "targets": ["srv1", "srv2"], "requester": "hermes", "reason": "drop the bad first line",
        "command": "sudo sed -i '1d' /etc/aiops-test.conf && sudo systemctl restart 'my app'",
    }))
    .unwrap();
    let (a, _) = lab.run(&body);
    assert_eq!(a["status"], "approval_requested", "{a}");
    assert_eq!(
        a["card"]["targets"],
        serde_json::json!(["srv1", "srv2"]),
        "{a}"
    );
    assert_eq!(a["card"]["undo"], "cannot_undo", "{a}");
    let out = lab.aiops(&["approvals", "list"]);
    let text = String::from_utf8_lossy(&out.stdout).to_string();
    println!("{text}");
    for fact in [
        "    targets: srv1, srv2 (2)\n",
        "    runs as: root (every stage of the plan)\n",
        "    plan:\n      1. [sudo] sed -i 1d /etc/aiops-test.conf\n      2. && [sudo] systemctl restart 'my app'\n",
        "    undo: CANNOT be undone",
    ] {
        assert!(text.contains(fact), "{fact:?} not in:\n{text}");
    }
    // Nothing ran: only listed.
    assert!(lab.agent_audit("srv1").is_empty() && lab.agent_audit("srv2").is_empty());
}
