//! What an approval lets run, on a real lab agent (real mTLS, the real
//! `aiops-exec` executor, real accounts): the limits of an auto-allowed
//! command reach the controller's answer, `executor.approvable` narrows what
//! can be approved on a host at all, and an approved `run_as` really runs as
//! that account, bound by the approver's signature.

use std::path::PathBuf;

use aiops_e2e::{Lab, read_jsonl, request};
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
