//! Issue 14's "a way in from the old tool" on a real installed controller: the seed's
//! exact habit `echo '{…}' | sudo -u aiopsexec /opt/aiops/run_action.py` keeps working.
//!
//! One Debian bookworm container (see `aiops_e2e::nspawn`) is both the gateway host and
//! the target: the controller .deb and the agent .deb are installed as shipped and set up
//! with the verbs packaging/README.md gives an operator (`setup-aiops.sh
//! prepare-hermes-host`, `setup-aiops.sh hermes srv1 ADDRESS`, then on the target
//! `setup-aiops.sh srv1 BUNDLE`). Then, as the assistant's account `hermes` and through
//! the shipped sudoers rule only, the MVP's path answers `executed` with the seed-era
//! answer fields, and after the operator switches the controller to lab mode,
//! `echo Approve | sudo -u aiopsexec /opt/aiops/run_action.py` runs a pending approval.
//! Any other argument to the alias is refused by sudo, and nothing runs.

use aiops_e2e::nspawn::{Container, debs, loopback_endpoint, text, wait_until};
use serde_json::Value;

/// The seed-era answer fields of `run_action` (tests/tests/migrate.rs).
const SEED_FIELDS: &[&str] = &[
    "status",
    "risk",
    "target",
    "command",
    "exit_code",
    "stdout",
    "stderr",
    "truncated",
    "duration_ms",
    "request_id",
];

/// `sh -c SCRIPT` as the `hermes` account inside the container: (exit status, answer).
fn as_hermes(c: &Container, script: &str) -> (i32, String, String) {
    let out = c.exec(&["runuser", "-u", "hermes", "--", "sh", "-c", script]);
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).to_string(),
        String::from_utf8_lossy(&out.stderr).to_string(),
    )
}

fn answer(stdout: &str) -> Value {
    let line = stdout
        .lines()
        .find(|l| !l.trim().is_empty())
        .unwrap_or_else(|| panic!("no answer: {stdout:?}"));
    serde_json::from_str(line).unwrap_or_else(|e| panic!("not JSON ({e}): {line}"))
}

#[test]
fn the_mvp_run_action_py_habit_works_on_an_installed_controller() {
    let (ip, port) = loopback_endpoint(91);
    let address = format!("{ip}:{port}");
    let c = Container::boot("controller", |_| {});
    let (agent_deb, controller_deb) = debs().clone();
    c.copy_in(&controller_deb, "/root/aiops-controller.deb");
    c.copy_in(&agent_deb, "/root/aiops-agent.deb");

    // The operator's steps (packaging/README.md, "Set-up verbs").
    c.sh("dpkg -i /root/aiops-controller.deb >/dev/null");
    let prepared = c.sh("/opt/aiops/bin/setup-aiops.sh prepare-hermes-host");
    assert!(prepared.contains("prepared: user hermes"), "{prepared}");
    let added = c.sh(&format!(
        "/opt/aiops/bin/setup-aiops.sh hermes srv1 {address}"
    ));
    assert!(added.contains("target srv1"), "{added}");
    c.sh("dpkg -i /root/aiops-agent.deb >/dev/null");
    c.sh("/usr/share/aiops-agent/setup-aiops.sh srv1 /opt/aiops/pki/bundles/srv1.bundle");
    wait_until("the enrolled agent to listen", 30, || {
        std::net::TcpStream::connect(&address).is_ok()
    });
    let hostname = c.sh("cat /etc/hostname");

    // The MVP habit, as the assistant's account, through the shipped sudoers rule.
    let req = r#"{"target":"srv1","command":"hostname","requester":"manual","reason":"test"}"#;
    let (code, out, err) = as_hermes(
        &c,
        &format!("echo '{req}' | sudo -n -u aiopsexec /opt/aiops/run_action.py"),
    );
    let a = answer(&out);
    assert_eq!(
        (code, a["status"].as_str()),
        (0, Some("executed")),
        "{a} {err}"
    );
    for k in SEED_FIELDS {
        assert!(
            a.get(*k).is_some(),
            "seed-era answer field {k} missing: {a}"
        );
    }
    assert_eq!(a["stdout"].as_str().map(str::trim), Some(hostname.as_str()));
    assert_eq!(a["exit_code"], 0);
    assert_eq!(a["target"], "srv1");
    // The same through the other shipped names.
    for alias in ["/opt/aiops/run_action", "/opt/aiops/bin/run_action"] {
        let (code, out, err) =
            as_hermes(&c, &format!("echo '{req}' | sudo -n -u aiopsexec {alias}"));
        assert_eq!(
            (code, answer(&out)["status"].as_str()),
            (0, Some("executed")),
            "{alias}: {out} {err}"
        );
    }

    // Anything but no arguments is sudo's refusal: nothing runs, nothing is audited.
    let audit_before = c.sh("wc -l < /opt/aiops/audit.jsonl");
    let marker = "/tmp/aiops-mvp-marker";
    for script in [
        format!("echo '{req}' | sudo -n -u aiopsexec /opt/aiops/run_action.py --config /tmp/x.yml"),
        "sudo -n -u aiopsexec /opt/aiops/run_action.py approvals approve".to_string(),
        "sudo -n -u root /opt/aiops/run_action.py".to_string(),
        format!("sudo -n -u aiopsexec /bin/touch {marker}"),
    ] {
        let (code, out, err) = as_hermes(&c, &script);
        assert_ne!(code, 0, "{script}: {out}");
        assert!(
            err.contains("sudo:"),
            "{script}: sudo's refusal expected: {err}"
        );
    }
    assert!(
        !c.root.join(marker.trim_start_matches('/')).exists(),
        "a refused sudo ran"
    );
    assert_eq!(c.sh("wc -l < /opt/aiops/audit.jsonl"), audit_before);

    // Lab mode, as an operator of the old tool runs it: approvals answered on stdin. The
    // controller account signs grants itself then, with its own copy of the approver key.
    c.sh(
        "install -o aiopsexec -g aiopsexec -m 0600 /opt/aiops/approver/approver.key \
         /opt/aiops/pki/approver-lab.key \
         && sed -i -e 's/^  mode: production/  mode: lab/' \
                   -e 's/^  unknown_default: reject/  unknown_default: approval_required/' \
                   -e 's|^  approver_key: .*|  approver_key: /opt/aiops/pki/approver-lab.key|' \
                   /opt/aiops/config.yml",
    );
    let marker = "/var/tmp/aiops-approved-marker";
    let change = format!(
        r#"{{"target":"srv1","command":"touch {marker}","requester":"manual","reason":"test"}}"#
    );
    let (code, out, err) = as_hermes(
        &c,
        &format!("echo '{change}' | sudo -n -u aiopsexec /opt/aiops/run_action.py"),
    );
    let pending = answer(&out);
    assert_eq!(
        (code, pending["status"].as_str()),
        (0, Some("approval_requested")),
        "{pending} {err}"
    );
    assert!(
        !c.root.join(marker.trim_start_matches('/')).exists(),
        "ran before the approval"
    );
    let (code, out, err) = as_hermes(
        &c,
        "echo Approve | sudo -n -u aiopsexec /opt/aiops/run_action.py",
    );
    let done = answer(&out);
    assert_eq!(
        (code, done["status"].as_str()),
        (0, Some("executed")),
        "{done} {err}"
    );
    assert_eq!(done["exit_code"], 0, "{done}");
    assert_eq!(done["approval_id"], pending["approval_id"], "{done}");
    for k in SEED_FIELDS {
        assert!(
            done.get(*k).is_some(),
            "seed-era answer field {k} missing: {done}"
        );
    }
    assert!(
        c.root.join(marker.trim_start_matches('/')).exists(),
        "the approved command did not run"
    );
    // The approval is used once: a second Approve finds nothing pending.
    let (_, out, _) = as_hermes(
        &c,
        "echo Approve | sudo -n -u aiopsexec /opt/aiops/run_action.py",
    );
    let again = answer(&out);
    assert_eq!(again["status"], "error", "{again}");
    assert_eq!(again["error"]["code"], "no_pending_approval", "{again}");
    // Both sides recorded it.
    let audit = c.sh("cat /opt/aiops/audit.jsonl");
    assert!(
        audit.contains(pending["approval_id"].as_str().expect("id")),
        "controller audit lacks the approval"
    );
    let verify = c.exec(&[
        "runuser",
        "-u",
        "aiopsexec",
        "--",
        "/opt/aiops/bin/aiops",
        "--config",
        "/opt/aiops/config.yml",
        "audit",
        "verify",
    ]);
    assert!(verify.status.success(), "audit verify: {}", text(&verify));
}
