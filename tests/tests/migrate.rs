//! `aiops migrate` from the old run_action.py MVP: a fixture `config.yml` and
//! `audit.jsonl` written from the seed tool's documented habits
//! (tests/fixtures/mvp). Dry run shows every mapping and every thing it
//! cannot map and writes nothing; applying merges targets and policy into a
//! lab controller's config, seals the old log as a hashed prior segment that
//! our first record names, and the first request then works, also through
//! the MVP's exact name `run_action.py`.

use std::os::unix::fs::PermissionsExt;
use std::path::Path;

use aiops_e2e::{Lab, aiops_bin, parse_answer, request, run_cmd};
use serde_json::Value;

fn fixture(lab: &Lab) -> std::path::PathBuf {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("fixtures/mvp");
    let dst = lab.tmp.path().join("aiops-mvp");
    std::fs::create_dir_all(&dst).unwrap();
    for f in ["config.yml", "audit.jsonl"] {
        std::fs::copy(src.join(f), dst.join(f)).unwrap();
    }
    dst
}

fn migrate(lab: &Lab, from: &Path, extra: &[&str]) -> (Value, i32) {
    let port = lab.base_port.to_string();
    let mut args = vec![
        "migrate",
        "--from",
        from.to_str().unwrap(),
        "--agent-port",
        &port,
    ];
    args.extend_from_slice(extra);
    let out = lab.aiops(&args);
    (parse_answer(&out), out.status.code().unwrap_or(-1))
}

fn froms(list: &Value) -> Vec<String> {
    list.as_array()
        .unwrap()
        .iter()
        .map(|m| m["from"].as_str().unwrap().to_string())
        .collect()
}

fn risk(lab: &Lab, cmd: &str) -> String {
    let out = lab.aiops(&["policy", "explain", "--json", "--", cmd]);
    parse_answer(&out)["risk"].as_str().unwrap().to_string()
}

#[test]
fn migrate_dry_run_then_apply_seals_the_old_audit_and_the_first_request_works() {
    let lab = Lab::start(1, "lab");
    // A fresh controller: no targets yet (the MVP's srv1 comes over).
    let config = std::fs::read_to_string(lab.config()).unwrap();
    let cut = config.find("targets:").unwrap();
    std::fs::write(lab.config(), &config[..cut]).unwrap();
    let before = std::fs::read(lab.config()).unwrap();
    let mvp = fixture(&lab);
    assert_eq!(risk(&lab, "systemctl stop nginx"), "approval_required");
    assert_eq!(risk(&lab, "apt list --installed"), "approval_required");

    let (dry, code) = migrate(&lab, &mvp, &["--dry-run"]);
    assert_eq!(code, 0, "{dry}");
    assert_eq!(dry["status"], "dry_run");
    let mapped = froms(&dry["mappings"]);
    for k in [
        "mode",
        "unknown_default",
        "audit_log",
        "targets.srv1.host",
        "allow[0]",
        "allow[2]",
        "require_approval[0]",
        "forbid[1]",
        "approval_timeout",
    ] {
        assert!(mapped.contains(&k.to_string()), "{k} not mapped: {dry}");
    }
    let m = |from: &str| {
        dry["mappings"]
            .as_array()
            .unwrap()
            .iter()
            .find(|m| m["from"] == from)
            .unwrap()
            .clone()
    };
    assert_eq!(m("targets.srv1.host")["value"], lab.agent_addr(1));
    assert_eq!(m("allow[2]")["to"], "policy.auto_allow");
    assert_eq!(m("forbid[1]")["to"], "policy.forbid");
    let not = froms(&dry["unmapped"]);
    for k in [
        "ssh_user",
        "ssh_key",
        "ssh_options",
        "targets.srv1.port",
        "targets.srv1.user",
        "allow[3]",
    ] {
        assert!(
            not.contains(&k.to_string()),
            "{k} not reported as unmappable: {dry}"
        );
    }
    for u in dry["unmapped"].as_array().unwrap() {
        assert!(!u["why"].as_str().unwrap().is_empty());
    }
    let old_audit = std::fs::read(mvp.join("audit.jsonl")).unwrap();
    let sha = aiops_sys::sha256_hex(&old_audit);
    assert_eq!(dry["prior_segment"]["sha256"], sha.as_str());
    assert_eq!(dry["prior_segment"]["records"], 4);
    // Nothing written.
    assert_eq!(std::fs::read(lab.config()).unwrap(), before);
    assert!(lab.audit().is_empty());
    assert!(!lab.dir.join("prior").exists());

    let (done, code) = migrate(&lab, &mvp, &[]);
    assert_eq!(code, 0, "{done}");
    assert_eq!(done["status"], "migrated");
    // The policy lists came over.
    assert_eq!(risk(&lab, "systemctl stop nginx"), "forbidden");
    assert_eq!(risk(&lab, "apt list --installed"), "auto_allowed");
    // The old log, sealed and hashed, named by our first record.
    let sealed = lab.dir.join("prior/run_action-audit.jsonl");
    assert_eq!(std::fs::read(&sealed).unwrap(), old_audit);
    assert_eq!(
        std::fs::metadata(&sealed).unwrap().permissions().mode() & 0o777,
        0o440
    );
    let audit = lab.audit();
    assert_eq!(audit[0]["event"], "prior_segment");
    assert_eq!(audit[0]["seq"], 1);
    assert_eq!(audit[0]["sha256"], sha.as_str());
    assert_eq!(audit[0]["records"], 4);
    assert_eq!(audit[0]["sealed_path"], sealed.to_str().unwrap());

    // The first request works, through `aiops run` and the MVP's own name.
    let (a, code) = lab.run(&request("srv1", "hostname"));
    assert_eq!((a["status"].as_str(), code), (Some("executed"), 0), "{a}");
    let link = lab.tmp.path().join("run_action.py");
    std::os::unix::fs::symlink(aiops_bin(), &link).unwrap();
    let out = run_cmd(
        &link,
        &[],
        &request("srv1", "uptime -p"),
        &[("AIOPS_CONFIG", lab.config().to_str().unwrap())],
        &[],
    );
    let a = parse_answer(&out);
    assert_eq!(a["status"], "executed", "{a}");
    for k in [
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
    ] {
        assert!(a.get(k).is_some(), "seed-era answer field {k} missing: {a}");
    }
    let verify = lab.aiops(&["audit", "verify"]);
    assert!(
        verify.status.success(),
        "{}",
        String::from_utf8_lossy(&verify.stdout)
    );

    // A second migration of the same log is refused; nothing changes.
    let audit_len = lab.audit().len();
    let (again, code) = migrate(&lab, &mvp, &[]);
    assert_eq!(code, 1, "{again}");
    assert!(
        again["message"]
            .as_str()
            .unwrap()
            .contains("migrated already")
    );
    assert_eq!(lab.audit().len(), audit_len);
}

#[test]
fn the_shipped_sudoers_lets_hermes_use_the_mvp_path() {
    let sudoers = Path::new(env!("CARGO_MANIFEST_DIR")).join("../packaging/controller/sudoers");
    let text = std::fs::read_to_string(&sudoers).unwrap();
    assert!(text.contains("/opt/aiops/run_action.py \"\""), "{text}");
    let out = std::process::Command::new("visudo")
        .arg("-cf")
        .arg(&sudoers)
        .output()
        .expect("visudo (apt-get install sudo)");
    assert!(out.status.success(), "{out:?}");
    let debs = std::fs::read_to_string(
        Path::new(env!("CARGO_MANIFEST_DIR")).join("../packaging/build-debs.sh"),
    )
    .unwrap();
    assert!(debs.contains("ln -s bin/aiops \"$c/opt/aiops/run_action.py\""));
}
