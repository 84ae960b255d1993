//! `aiops incident report` over a real lab incident: an application's config
//! file has a bad line; the assistant diagnoses read-only, is refused a
//! reboot, gets the fix approved, and verifies. The report lists every
//! command in order with who asked, who approved, exit codes and digests,
//! validates against the shipped schema, and its verification line fails
//! once one audit record is edited.

use std::path::Path;
use std::process::Command;

use aiops_e2e::{Lab, request};
use serde_json::Value;

fn report(lab: &Lab, args: &[&str]) -> (Value, i32) {
    let mut all = vec!["incident", "report", "--format", "json"];
    all.extend_from_slice(args);
    let out = lab.aiops(&all);
    let v = serde_json::from_slice(&out.stdout)
        .unwrap_or_else(|e| panic!("{e}: {}", String::from_utf8_lossy(&out.stdout)));
    (v, out.status.code().unwrap_or(-1))
}

fn validate(lab: &Lab, report: &Value) {
    let file = lab.tmp.path().join("report.json");
    std::fs::write(&file, serde_json::to_vec(report).unwrap()).unwrap();
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let out = Command::new("python3")
        .arg(root.join("py/validate_schema.py"))
        .arg(root.join("../packaging/incident/incident-report.schema.json"))
        .arg(&file)
        .output()
        .expect("python3 with jsonschema (pip install jsonschema)");
    assert!(
        out.status.success(),
        "schema: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

#[test]
fn report_of_a_lab_incident_lists_every_command_validates_and_fails_verification_after_tampering() {
    let lab = Lab::start(1, "lab");
    let conf = lab.tmp.path().join("app.conf");
    std::fs::write(&conf, "listen = 8080\nworkers = ???broken\n").unwrap();
    let c = conf.display();
    let steps: Vec<(String, &str)> = vec![
        (format!("cat {c}"), "executed"),
        (format!("grep -n broken {c}"), "executed"),
        ("reboot".into(), "forbidden"),
        (format!("sed -i s/???broken/4/ {c}"), "approval_requested"),
    ];
    for (cmd, want) in &steps {
        let (a, _) = lab.run(&request("srv1", cmd));
        assert_eq!(a["status"], *want, "{cmd}: {a}");
    }
    let (a, _) = lab.run(b"Approve");
    assert_eq!(a["status"], "executed", "{a}");
    assert_eq!(
        std::fs::read_to_string(&conf).unwrap(),
        "listen = 8080\nworkers = 4\n"
    );
    let (a, _) = lab.run(&request("srv1", &format!("cat {c}")));
    assert_eq!(a["stdout"], "listen = 8080\nworkers = 4\n");

    let audit = lab.audit();
    let (r, code) = report(&lab, &[]);
    assert_eq!(code, 0, "{r}");
    validate(&lab, &r);
    assert_eq!(r["verification"]["status"], "ok");
    assert_eq!(r["verification"]["records"], audit.len());
    assert_eq!(r["verification"]["head"], audit.last().unwrap()["hash"]);
    assert_eq!(r["range"]["records"], audit.len());
    assert_eq!(r["range"]["first"]["seq"], 1);
    // The agent heads of the covered commands, cross-checked against srv1's own log.
    let agents = r["verification"]["agents"].as_array().unwrap();
    assert_eq!(agents.len(), 1, "{r}");
    assert_eq!(
        (&agents[0]["target"], &agents[0]["status"]),
        (&Value::from("srv1"), &Value::from("ok"))
    );
    assert_eq!(agents[0]["heads"].as_array().unwrap().len(), 4);
    let text = r["verification"]["text"].as_str().unwrap();
    assert!(
        text.contains("Agent srv1: its log holds all 4 agent heads recorded here"),
        "{text}"
    );
    assert!(text.contains("signed checkpoints verify"), "{text}");

    // Every command, in order, with its outcome.
    let commands = r["commands"].as_array().unwrap();
    let got: Vec<(&str, &str)> = commands
        .iter()
        .map(|c| {
            (
                c["command"].as_str().unwrap(),
                c["outcome"].as_str().unwrap(),
            )
        })
        .collect();
    let fix = format!("sed -i s/???broken/4/ {c}");
    let cat = format!("cat {c}");
    let grep = format!("grep -n broken {c}");
    assert_eq!(
        got,
        [
            (cat.as_str(), "executed"),
            (grep.as_str(), "executed"),
            ("reboot", "forbidden"),
            (fix.as_str(), "executed"),
            (cat.as_str(), "executed"),
        ]
    );
    for c in commands {
        assert_eq!(c["requester"], "e2e");
        assert_eq!(c["target"], "srv1");
    }
    // Digests and chain positions are the audit's own.
    let executed: Vec<&Value> = audit.iter().filter(|x| x["event"] == "executed").collect();
    let with_output: Vec<&Value> = commands
        .iter()
        .filter(|c| c["outcome"] == "executed")
        .collect();
    assert_eq!(executed.len(), with_output.len());
    for (rec, c) in executed.iter().zip(&with_output) {
        assert_eq!(c["stdout_sha256"], rec["stdout_sha256"]);
        assert_eq!(c["stderr_sha256"], rec["stderr_sha256"]);
        assert_eq!(c["exit_code"], rec["exit_code"]);
        let last = c["records"].as_array().unwrap().last().unwrap();
        assert_eq!((&last["seq"], &last["hash"]), (&rec["seq"], &rec["hash"]));
        assert_eq!(c["receipt_status"], "verified");
        assert_eq!(c["agent_head"]["seq"], rec["agent_seq"]);
        assert_eq!(c["agent_head"]["hash"], rec["agent_hash"]);
    }
    assert_eq!(commands[1]["stdout_excerpt"], "2:workers = ???broken\n");
    // Who approved, and when; the one change.
    let approved = audit.iter().find(|x| x["event"] == "approved").unwrap();
    let f = &commands[3];
    assert_eq!(f["risk"], "approval_required");
    assert_eq!(f["approval"]["outcome"], "approved");
    assert_eq!(f["approval"]["approver"], approved["resolver"]);
    assert_eq!(f["approval"]["resolved_at"], approved["ts"]);
    assert_eq!(f["approval"]["resolved"]["seq"], approved["seq"]);
    assert_eq!(f["changed"], true);
    assert_eq!(r["changes"].as_array().unwrap().len(), 1);
    assert_eq!(r["changes"][0]["command"], fix.as_str());
    assert_eq!(r["summary"]["refused"], 1);
    assert_eq!(r["timeline"].as_array().unwrap().len(), audit.len());

    // Filters: one approval's records only; and a window after everything.
    let id = approved["approval_id"].as_str().unwrap();
    let (one, _) = report(&lab, &["--approval", id]);
    validate(&lab, &one);
    assert_eq!(one["commands"].as_array().unwrap().len(), 1);
    assert!(
        one["timeline"]
            .as_array()
            .unwrap()
            .iter()
            .all(|t| t["approval_id"] == id)
    );
    let (none, _) = report(&lab, &["--since", "2999-01-01T00:00:00Z"]);
    validate(&lab, &none);
    assert_eq!(none["range"]["records"], 0);
    let (other, _) = report(&lab, &["--target", "srv9"]);
    assert_eq!(other["commands"].as_array().unwrap().len(), 0);

    // Markdown for a human: the verification line, the change, every command.
    let md = lab.aiops(&["incident", "report"]);
    let md = String::from_utf8(md.stdout).unwrap();
    assert!(md.contains("**Verification: ok.**"), "{md}");
    assert!(
        md.contains(&format!(
            "- `{fix}` on srv1 — approved by {}",
            approved["resolver"].as_str().unwrap()
        )),
        "{md}"
    );
    for (cmd, _) in &got {
        assert!(md.contains(&format!("`{cmd}`")), "{cmd}");
    }

    // Tamper with one record (hide what the fix did): the verification line fails.
    let log = lab.dir.join("audit.jsonl");
    let text = std::fs::read_to_string(&log).unwrap();
    let line = text
        .lines()
        .position(|l| l.contains("\"event\":\"approved\""))
        .unwrap()
        + 1;
    std::fs::write(&log, text.replacen("s/???broken/4/", "s/x/y/", 1)).unwrap();
    let (bad, code) = report(&lab, &[]);
    assert_eq!(code, 1);
    validate(&lab, &bad);
    assert_eq!(bad["verification"]["status"], "failed");
    assert!(
        bad["verification"]["line"].as_u64().unwrap() <= line as u64,
        "{}",
        bad["verification"]
    );
    let md = String::from_utf8(lab.aiops(&["incident", "report"]).stdout).unwrap();
    assert!(md.contains("**Verification: FAILED.**"), "{md}");
}

#[test]
fn the_report_fails_verification_when_the_agent_log_was_cut_with_its_head_file() {
    let lab = Lab::start(1, "lab");
    for cmd in ["hostname", "uptime"] {
        let (a, _) = lab.run(&request("srv1", cmd));
        assert_eq!(a["status"], "executed", "{a}");
    }
    let log = lab.agent_dir("srv1").join("audit.jsonl");
    let text = std::fs::read_to_string(&log).unwrap();
    let kept: Vec<&str> = text.lines().take(2).collect();
    std::fs::write(&log, kept.join("\n") + "\n").unwrap();
    std::fs::remove_file(log.with_extension("jsonl.head")).unwrap();
    let (r, code) = report(&lab, &[]);
    assert_eq!(code, 1, "{r}");
    validate(&lab, &r);
    let v = &r["verification"];
    assert_eq!(v["status"], "failed", "{v}");
    let a = &v["agents"][0];
    assert_eq!(
        (
            &a["status"],
            &a["first_bad"]["side"],
            &a["first_bad"]["seq"]
        ),
        (
            &Value::from("error"),
            &Value::from("agent"),
            &Value::from(3)
        ),
        "{v}"
    );
    let md = String::from_utf8(lab.aiops(&["incident", "report"]).stdout).unwrap();
    assert!(md.contains("**Verification: FAILED.**"), "{md}");
    assert!(
        md.contains("Agent srv1: cross-check FAILED at the agent log's record 3"),
        "{md}"
    );
}
