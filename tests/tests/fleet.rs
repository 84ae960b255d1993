//! Fan-out to many targets: one decision and one approval for the exact set,
//! per-target results and audit records, max_errors, canary-first.

use std::time::{Duration, Instant};

use aiops_e2e::Lab;
use serde_json::{Value, json};

fn fanout(lab: &Lab, body: Value) -> (Value, i32) {
    lab.run(&serde_json::to_vec(&body).unwrap())
}

fn stop_agent(lab: &Lab, name: &str) {
    let pid = nix::unistd::Pid::from_raw(lab.agent_pid(name));
    nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGKILL).unwrap();
    let start = Instant::now();
    while std::net::TcpStream::connect(lab.agent_addr(name[3..].parse().unwrap())).is_ok() {
        assert!(
            start.elapsed() < Duration::from_secs(10),
            "{name} still listening"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

fn statuses(answer: &Value) -> Vec<(String, String)> {
    answer["results"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| {
            (
                r["target"].as_str().unwrap().to_string(),
                r["status"].as_str().unwrap().to_string(),
            )
        })
        .collect()
}

#[test]
fn fanout_to_twenty_agents_with_one_stopped_and_max_errors_and_canary() {
    let lab = Lab::start(20, "lab");
    stop_agent(&lab, "srv12");

    // Everyone, via the group: the stopped one is reported, the rest run.
    let (answer, code) = fanout(
        &lab,
        json!({"target": "group:lab", "command": "hostname", "requester": "e2e", "reason": "fleet"}),
    );
    assert_eq!(code, 0, "{answer}");
    assert_eq!(answer["status"], "partial");
    assert_eq!(
        answer["summary"],
        json!({"total": 20, "executed": 19, "succeeded": 19, "failed": 0, "errors": 1, "skipped": 0})
    );
    let results = answer["results"].as_array().unwrap();
    assert_eq!(results.len(), 20);
    let down = results.iter().find(|r| r["target"] == "srv12").unwrap();
    assert_eq!(down["status"], "error");
    assert_eq!(down["error"]["code"], "unreachable", "{down}");
    for r in results.iter().filter(|r| r["target"] != "srv12") {
        assert_eq!(r["status"], "executed");
        assert_eq!(r["exit_code"], 0);
        assert!(r["request_id"].is_string());
    }
    // Every target has its own audit records: 20 requested + 20 outcomes.
    let audit = lab.audit();
    assert_eq!(
        audit.iter().filter(|r| r["event"] == "requested").count(),
        20
    );
    assert_eq!(
        audit.iter().filter(|r| r["event"] == "executed").count(),
        19
    );
    let err = audit.iter().find(|r| r["event"] == "error").unwrap();
    assert_eq!(err["target"], "srv12");
    assert_eq!(err["code"], "unreachable");

    // max_errors 0, one at a time, in name order: srv1, srv10, srv11 run, srv12 fails, the rest are skipped.
    let (answer, code) = fanout(
        &lab,
        json!({"targets": ["group:lab"], "command": "uptime", "requester": "e2e", "reason": "fleet", "max_concurrency": 1, "max_errors": 0}),
    );
    assert_eq!(code, 0, "{answer}");
    assert_eq!(
        answer["summary"],
        json!({"total": 20, "executed": 3, "succeeded": 3, "failed": 0, "errors": 1, "skipped": 16}),
        "{answer}"
    );
    let st = statuses(&answer);
    assert_eq!(
        &st[..4],
        &[
            ("srv1".into(), "executed".into()),
            ("srv10".into(), "executed".into()),
            ("srv11".into(), "executed".into()),
            ("srv12".into(), "error".into()),
        ]
    );
    assert!(st[4..].iter().all(|(_, s)| s == "skipped"));
    let skipped = lab
        .audit()
        .into_iter()
        .filter(|r| r["event"] == "skipped")
        .count();
    assert_eq!(skipped, 16, "skipped targets are audited too");

    // Canary first: a command that fails on the canary runs nowhere else.
    let agents_before: usize = (1..=20)
        .map(|k| lab.agent_audit(&format!("srv{k}")).len())
        .sum();
    let (answer, _) = fanout(
        &lab,
        json!({"targets": ["srv3", "srv4", "srv5"], "command": "ls /nonexistent-aiops", "requester": "e2e", "reason": "canary", "canary": true}),
    );
    assert_eq!(answer["summary"]["executed"], 1, "{answer}");
    assert_eq!(answer["summary"]["failed"], 1);
    assert_eq!(answer["summary"]["skipped"], 2);
    assert_eq!(answer["results"][0]["target"], "srv3");
    assert_ne!(answer["results"][0]["exit_code"], 0);
    let agents_after: usize = (1..=20)
        .map(|k| lab.agent_audit(&format!("srv{k}")).len())
        .sum();
    assert_eq!(
        agents_after - agents_before,
        2,
        "only the canary's agent saw a request (accepted + executed)"
    );
    // And a succeeding canary lets the rest run.
    let (answer, _) = fanout(
        &lab,
        json!({"targets": ["srv3", "srv4", "srv5"], "command": "uptime", "requester": "e2e", "reason": "canary", "canary": true}),
    );
    assert_eq!(answer["summary"]["executed"], 3, "{answer}");
    assert!(lab.aiops(&["audit", "verify"]).status.success());
}

#[test]
fn selectors_resolve_to_exact_sets() {
    let lab = Lab::start(3, "lab");
    lab.edit(
        "config.yml",
        "  lab: [srv1, srv2, srv3]",
        "  lab: [srv1, srv2, srv3]\n  pair: [srv2, srv3]",
    );
    let (answer, _) = fanout(
        &lab,
        json!({"target": "group:pair", "command": "hostname", "requester": "e2e"}),
    );
    assert_eq!(answer["targets"], json!(["srv2", "srv3"]), "{answer}");
    let (answer, _) = fanout(
        &lab,
        json!({"target": "label:env=lab", "command": "hostname", "requester": "e2e"}),
    );
    assert_eq!(answer["targets"], json!(["srv1", "srv2", "srv3"]));
    let (answer, _) = fanout(
        &lab,
        json!({"targets": ["srv3", "srv1", "srv3"], "command": "hostname", "requester": "e2e"}),
    );
    assert_eq!(answer["targets"], json!(["srv1", "srv3"]));
    assert_eq!(answer["status"], "executed");
    for (body, code) in [
        (
            json!({"target": "group:nope", "command": "hostname", "requester": "e2e"}),
            "unknown_target",
        ),
        (
            json!({"target": "label:env=prod", "command": "hostname", "requester": "e2e"}),
            "unknown_target",
        ),
        (
            json!({"targets": ["srv1", "srv9"], "command": "hostname", "requester": "e2e"}),
            "unknown_target",
        ),
        (
            json!({"targets": [], "command": "hostname", "requester": "e2e"}),
            "invalid_field",
        ),
        (
            json!({"target": "srv1", "targets": ["srv2"], "command": "hostname", "requester": "e2e"}),
            "invalid_field",
        ),
    ] {
        let (answer, exit) = fanout(&lab, body.clone());
        assert_eq!(answer["error"]["code"], code, "{body}: {answer}");
        assert_eq!(exit, 1);
    }
    // A forbidden command is refused once for the whole set, and nothing is sent.
    let seen = |lab: &Lab| -> usize {
        (1..=3)
            .map(|k| lab.agent_audit(&format!("srv{k}")).len())
            .sum()
    };
    let before = seen(&lab);
    let (answer, _) = fanout(
        &lab,
        json!({"target": "group:lab", "command": "reboot", "requester": "e2e"}),
    );
    assert_eq!(answer["status"], "forbidden");
    assert_eq!(seen(&lab), before);
    assert_eq!(
        lab.audit().last().unwrap()["targets"],
        json!(["srv1", "srv2", "srv3"])
    );
}

#[test]
fn one_approval_covers_exactly_the_approved_set() {
    let lab = Lab::start(3, "lab");
    let marker = lab.tmp.path().join("fleet-marker");
    let cmd = format!("touch {}", marker.display());
    let (answer, _) = fanout(
        &lab,
        json!({"targets": ["srv1", "srv2"], "command": cmd, "requester": "e2e", "reason": "set"}),
    );
    assert_eq!(answer["status"], "approval_requested", "{answer}");
    assert_eq!(answer["targets"], json!(["srv1", "srv2"]));
    let id = answer["approval_id"].as_str().unwrap().to_string();

    // Widening the stored set (even with a recomputed file) is refused; nothing runs.
    let file = lab.dir.join("runtime/approvals").join(format!("{id}.json"));
    let original = std::fs::read_to_string(&file).unwrap();
    let mut stored: Value = serde_json::from_str(&original).unwrap();
    stored["targets"] = json!(["srv1", "srv2", "srv3"]);
    std::fs::write(&file, serde_json::to_vec(&stored).unwrap()).unwrap();
    let (answer, _) = lab.run(b"Approve");
    assert_eq!(answer["error"]["code"], "approval_tampered", "{answer}");
    assert!(!marker.exists());

    // The untouched approval runs on exactly srv1 and srv2, once each.
    std::fs::write(&file, original).unwrap();
    let (answer, code) = lab.run(b"Approve");
    assert_eq!(code, 0, "{answer}");
    assert_eq!(answer["status"], "executed");
    assert_eq!(answer["approval_id"], id.as_str());
    assert_eq!(
        statuses(&answer),
        [
            ("srv1".into(), "executed".into()),
            ("srv2".into(), "executed".into())
        ]
    );
    assert!(marker.exists());
    for (k, want) in [(1, 1), (2, 1), (3, 0)] {
        let n = lab
            .agent_audit(&format!("srv{k}"))
            .iter()
            .filter(|r| r["event"] == "executed")
            .count();
        assert_eq!(n, want, "srv{k}");
    }
    // Each agent saw a grant for itself only: the grant file holds one per target.
    let grants = std::fs::read(
        lab.dir
            .join("runtime/approvals")
            .join(format!("{id}.grant")),
    )
    .unwrap();
    let mut buf = grants.as_slice();
    let mut targets = Vec::new();
    while !buf.is_empty() {
        use prost::Message;
        let signed =
            aiops_proto::agent::v1::SignedApproval::decode_length_delimited(&mut buf).unwrap();
        targets.push(
            aiops_proto::agent::v1::ApprovalGrant::decode(signed.grant.as_slice())
                .unwrap()
                .target,
        );
    }
    assert_eq!(targets, ["srv1", "srv2"]);
}
