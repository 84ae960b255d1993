//! `aiops policy explain`: the decision without running anything.

use aiops_e2e::{Lab, parse_answer, run_cmd};
use serde_json::Value;

fn explain(lab: &Lab, cmd: &str) -> Value {
    let out = lab.aiops(&["policy", "explain", "--json", "--", cmd]);
    assert!(out.status.success());
    parse_answer(&out)
}

#[test]
fn explain_reports_risk_reasons_and_plan_in_both_modes() {
    let lab = Lab::init(1, "lab");
    let v = explain(&lab, "ps aux | grep nginx");
    assert_eq!(v["risk"], "auto_allowed");
    assert_eq!(
        v["plan"]["pipelines"][0]["stages"][1]["argv"],
        serde_json::json!(["grep", "nginx"])
    );
    assert!(!v["reasons"].as_array().unwrap().is_empty());
    assert_eq!(
        explain(&lab, "systemctl restart nginx")["risk"],
        "approval_required"
    );
    assert_eq!(explain(&lab, "rm -rf /")["risk"], "forbidden");
    assert_eq!(
        explain(&lab, "frobnicate --now")["risk"],
        "approval_required"
    );
    let sudo = explain(&lab, "sudo systemctl restart nginx");
    assert_eq!(
        sudo["plan"]["pipelines"][0]["stages"][0]["privileged"],
        true
    );

    let prod = Lab::init(1, "production");
    let v = explain(&prod, "frobnicate --now");
    assert_eq!(v["risk"], "rejected", "{v}");
    assert_eq!(v["mode"], "production");
    assert_eq!(explain(&prod, "rm -rf /")["risk"], "forbidden");
    assert_eq!(explain(&prod, "uptime")["risk"], "auto_allowed");
    // `rejected` appears only where unknown commands are rejected.
    assert_ne!(explain(&lab, "frobnicate --now")["risk"], "rejected");
}

#[test]
fn explain_stdin_answers_one_line_per_command_and_runs_nothing() {
    let lab = Lab::init(1, "lab");
    let marker = lab.tmp.path().join("never");
    let input = format!("uptime\ntouch {}\nrm -rf /\n", marker.display());
    let out = run_cmd(
        &aiops_e2e::aiops_bin(),
        &["policy", "explain", "--stdin"],
        input.as_bytes(),
        &[("AIOPS_CONFIG", lab.config().to_str().unwrap())],
        &[],
    );
    assert!(out.status.success());
    let risks: Vec<String> = String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(|l| {
            serde_json::from_str::<Value>(l).unwrap()["risk"]
                .as_str()
                .unwrap()
                .to_string()
        })
        .collect();
    assert_eq!(risks, ["auto_allowed", "approval_required", "forbidden"]);
    assert!(String::from_utf8_lossy(&out.stderr).contains("commands/s"));
    assert!(!marker.exists());
    assert!(lab.audit().is_empty());
}
