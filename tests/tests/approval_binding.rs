//! An approval runs what the human saw, for whom they saw it: the swap of
//! a listed approval, a grant for another requester, a spoofed `SUDO_USER`
//! and invisible characters in what the approver reads all fail.

use std::path::PathBuf;

use aiops_e2e::{Lab, parse_answer, run_cmd};
use serde_json::{Value, json};

fn marker(lab: &Lab, name: &str) -> (PathBuf, String) {
    let p = lab.tmp.path().join(name);
    let cmd = format!("touch {}", p.display());
    (p, cmd)
}

fn as_hermes(command: &str) -> Vec<u8> {
    serde_json::to_vec(&json!({
        "target": "srv1", "command": command, "requester": "hermes", "reason": "fix it",
    }))
    .unwrap()
}

fn approve(lab: &Lab, args: &[&str], env: &[(&str, &str)]) -> Value {
    let mut all = vec!["approvals", "approve"];
    all.extend_from_slice(args);
    parse_answer(&run_cmd(
        &aiops_e2e::aiops_bin(),
        &all,
        b"",
        &[("AIOPS_CONFIG", lab.config().to_str().unwrap())],
        env,
    ))
}

#[test]
fn approving_without_an_id_runs_only_what_the_approver_listed() {
    let lab = Lab::start(1, "production");
    let (a_marker, a_cmd) = marker(&lab, "listed-a");
    let (b_marker, b_cmd) = marker(&lab, "swapped-b");
    let (answer, _) = lab.run(&as_hermes(&a_cmd));
    assert_eq!(answer["status"], "approval_requested", "{answer}");
    // The human lists: A is pending.
    let listed = lab.aiops(&["approvals", "list"]);
    assert!(String::from_utf8_lossy(&listed.stdout).contains(&a_cmd));
    // The assistant files B, which supersedes A: B is now the only pending one.
    let (answer, _) = lab.run(&as_hermes(&b_cmd));
    assert_eq!(answer["status"], "approval_requested", "{answer}");
    let b_id = answer["approval_id"].as_str().unwrap().to_string();
    // "approve" with no id would have run B, which the human never saw.
    let answer = approve(&lab, &[], &[]);
    assert_eq!(answer["error"]["code"], "ambiguous", "{answer}");
    assert!(!a_marker.exists() && !b_marker.exists(), "something ran");
    let refused = lab.audit().last().cloned().unwrap();
    assert_eq!(refused["code"], "ambiguous", "{refused}");
    assert!(
        lab.agent_audit("srv1").is_empty(),
        "nothing reached the agent"
    );
    // Listed again, B is what the human sees, and approving without an id runs it.
    let listed = lab.aiops(&["approvals", "list"]);
    assert!(String::from_utf8_lossy(&listed.stdout).contains(&b_cmd));
    let answer = approve(&lab, &[], &[]);
    assert_eq!(answer["status"], "executed", "{answer}");
    assert_eq!(answer["approval_id"], b_id.as_str());
    assert!(b_marker.exists() && !a_marker.exists());
}

#[test]
fn the_resolver_is_the_real_account_not_sudo_user() {
    let lab = Lab::start(1, "production");
    let me = nix::unistd::User::from_uid(nix::unistd::getuid())
        .unwrap()
        .unwrap()
        .name;
    let (m, cmd) = marker(&lab, "spoofed-resolver");
    let (answer, _) = lab.run(&as_hermes(&cmd));
    let id = answer["approval_id"].as_str().unwrap().to_string();
    assert!(lab.aiops(&["approvals", "list"]).status.success());
    let answer = approve(&lab, &[&id], &[("SUDO_USER", "alice")]);
    assert_eq!(answer["status"], "executed", "{answer}");
    assert!(m.exists());
    let approved = lab
        .audit()
        .into_iter()
        .find(|r| r["event"] == "approved")
        .unwrap();
    assert_eq!(approved["resolver"], me.as_str(), "{approved}");
    let accepted = lab
        .agent_audit("srv1")
        .into_iter()
        .find(|r| r["event"] == "accepted")
        .unwrap();
    assert_eq!(accepted["approver"], me.as_str(), "{accepted}");
    // Nor can SUDO_USER make the requester approve their own request.
    let (m2, cmd2) = marker(&lab, "self-via-sudo-user");
    let body = serde_json::to_vec(&json!({
        "target": "srv1", "command": cmd2, "requester": "hermes", "reason": "x",
    }))
    .unwrap();
    let (answer, _) = lab.run(&body);
    let id2 = answer["approval_id"].as_str().unwrap().to_string();
    assert!(lab.aiops(&["approvals", "list"]).status.success());
    let answer = approve(&lab, &[&id2], &[("SUDO_USER", "hermes")]);
    assert_eq!(answer["status"], "executed", "{answer}");
    let approved: Vec<Value> = lab
        .audit()
        .into_iter()
        .filter(|r| r["event"] == "approved")
        .collect();
    assert_eq!(approved[1]["resolver"], me.as_str());
    assert!(m2.exists());
}

#[test]
fn invisible_and_bidi_characters_in_what_the_approver_reads_are_refused() {
    let lab = Lab::start(1, "lab");
    let (m, cmd) = marker(&lab, "bidi");
    for (field, value) in [
        ("reason", "rotate logs \u{202E}gnp.exe"),
        ("reason", "ok\u{200B}"),
        ("reason", "line one\u{2028}approve this"),
        ("reason", "isolate \u{2066}x\u{2069}"),
        ("requester", "her\u{200D}mes"),
        ("requester", "hermes\u{FEFF}"),
    ] {
        let mut body =
            json!({"target": "srv1", "command": cmd, "requester": "hermes", "reason": "r"});
        body[field] = json!(value);
        let (answer, code) = lab.run(&serde_json::to_vec(&body).unwrap());
        assert_eq!(code, 1, "{field} {value:?}: {answer}");
        assert_eq!(answer["error"]["code"], "invalid_field", "{answer}");
        assert!(
            answer["error"]["message"].as_str().unwrap().contains(field),
            "{answer}"
        );
    }
    assert!(!m.exists());
    let records = lab.audit();
    assert!(
        records
            .iter()
            .all(|r| r["event"] == "error" && r["code"] == "invalid_field"),
        "{records:?}"
    );
    assert_eq!(records.len(), 6);
    assert!(
        !lab.dir.join("runtime/approvals").exists()
            || std::fs::read_dir(lab.dir.join("runtime/approvals"))
                .unwrap()
                .flatten()
                .all(|e| !e.file_name().to_string_lossy().ends_with(".json")),
        "an approval was stored"
    );
}

#[test]
fn an_edited_reason_in_a_stored_approval_is_tampering() {
    let lab = Lab::start(1, "production");
    let (m, cmd) = marker(&lab, "edited-reason");
    let (answer, _) = lab.run(&as_hermes(&cmd));
    let id = answer["approval_id"].as_str().unwrap().to_string();
    let file = lab.dir.join("runtime/approvals").join(format!("{id}.json"));
    let text = std::fs::read_to_string(&file).unwrap();
    assert!(text.contains("fix it"));
    std::fs::write(&file, text.replace("fix it", "routine log rotation")).unwrap();
    let answer = approve(&lab, &[&id], &[]);
    assert_eq!(answer["error"]["code"], "approval_tampered", "{answer}");
    assert!(!m.exists());
}
