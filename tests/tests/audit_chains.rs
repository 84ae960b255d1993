//! Cross-anchored, signed audit chains on real lab agents and real files:
//! every answer carries the agent's signed receipt and audit head, every
//! request the controller's head, and `aiops audit verify --targets`
//! checks each side's log against the heads the other holds. The attacks:
//! an agent log truncated with its `.head`, one agent record rewritten with
//! every hash recomputed, the controller log rewritten the same way by a
//! real non-root member of the log's group, a receipt signed with another
//! key. Each is detected, naming the first bad record; the untampered lab
//! verifies.

use std::path::Path;
use std::process::{Command, Output};

use aiops_e2e::{Lab, agent_bin, read_jsonl, request, run_cmd};
use serde_json::Value;

fn verify_targets(lab: &Lab) -> (Value, bool) {
    let out = lab.aiops(&["audit", "verify", "--targets"]);
    let v: Value = serde_json::from_slice(&out.stdout).unwrap_or_else(|e| {
        panic!(
            "verify --targets prints JSON ({e}): {}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        )
    });
    (v, out.status.success())
}

fn agent_verify(file: &Path) -> (Value, bool) {
    let out = run_cmd(
        &agent_bin(),
        &["audit", "verify", "--file", file.to_str().unwrap()],
        b"",
        &[],
        &[],
    );
    let v: Value = serde_json::from_slice(&out.stdout).expect("verify prints JSON");
    (v, out.status.success())
}

fn run_ok(lab: &Lab, target: &str, command: &str) -> Value {
    let (a, code) = lab.run(&request(target, command));
    assert_eq!((a["status"].as_str(), code), (Some("executed"), 0), "{a}");
    a
}

fn by_event<'a>(records: &'a [Value], event: &str) -> Vec<&'a Value> {
    records.iter().filter(|r| r["event"] == event).collect()
}

/// Rewrites a log the way a writer of the file can: `edit` each record,
/// then recompute every seq/prev/hash (a checkpoint's `sig` it cannot
/// redo), and the `.head` side file. Runs as `user` when given
/// (a real account, through runuser), in place: a group member can write
/// the files but not the directory.
fn rewrite_consistently(log: &Path, edit_py: &str, user: Option<&str>) {
    let script = format!(
        r#"
import hashlib, json, sys
path = sys.argv[1]
def canon(o): return json.dumps(o, sort_keys=True, separators=(',', ':'), ensure_ascii=False)
def edit(r):
{edit_py}
    return r
out, prev, seq = [], "0" * 64, 0
for line in open(path, encoding="utf-8").read().splitlines():
    r = edit(json.loads(line))
    if r is None: continue
    seq += 1
    r.pop("hash", None); r["seq"] = seq; r["prev"] = prev
    prev = hashlib.sha256(canon(r).encode()).hexdigest()
    r["hash"] = prev
    out.append(canon(r))
with open(path, "r+", encoding="utf-8") as f:
    f.seek(0); f.write("\n".join(out) + "\n"); f.truncate()
try:
    with open(path + ".head", "r+") as f:
        f.seek(0); f.write("%020d %s\n" % (seq, prev)); f.truncate()
except FileNotFoundError:
    pass
"#
    );
    let mut cmd = match user {
        Some(u) => {
            let mut c = Command::new("runuser");
            c.args(["-u", u, "--", "python3", "-c", &script]);
            c
        }
        None => {
            let mut c = Command::new("python3");
            c.args(["-c", &script]);
            c
        }
    };
    let out = cmd.arg(log).output().expect("python3 runs");
    assert!(out.status.success(), "rewrite: {}", text(&out));
}

fn text(out: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

#[test]
fn an_untampered_lab_verifies_and_every_answer_carries_a_verified_receipt_and_both_heads() {
    let lab = Lab::start(2, "lab");
    run_ok(&lab, "srv1", "hostname");
    let fan = serde_json::to_vec(&serde_json::json!({
        "targets": ["srv1", "srv2"], "command": "uptime", "requester": "e2e", "reason": "test",
    }))
    .unwrap();
    let (a, code) = lab.run(&fan);
    assert_eq!(code, 0, "{a}");
    for r in a["results"].as_array().unwrap() {
        assert!(r.get("receipt_error").is_none(), "{r}");
    }
    let ctl = lab.audit();
    let executed = by_event(&ctl, "executed");
    assert_eq!(executed.len(), 3);
    for e in &executed {
        assert_eq!(e["receipt_status"], "verified", "{e}");
        let target = e["target"].as_str().unwrap();
        let agent = lab.agent_audit(target);
        let seq = e["agent_seq"].as_u64().unwrap() as usize;
        // The head the controller holds is the agent's executed record.
        let theirs = &agent[seq - 1];
        assert_eq!(
            (&theirs["event"], &theirs["hash"], &theirs["request_id"]),
            (&Value::from("executed"), &e["agent_hash"], &e["request_id"])
        );
        // The agent recorded the controller's write-ahead record as the head.
        let accepted = agent
            .iter()
            .find(|r| r["event"] == "accepted" && r["request_id"] == e["request_id"])
            .unwrap();
        let cseq = accepted["controller_seq"].as_u64().unwrap() as usize;
        let requested = &ctl[cseq - 1];
        assert_eq!(
            (&requested["event"], &requested["request_id"]),
            (&Value::from("requested"), &e["request_id"])
        );
        assert_eq!(accepted["controller_hash"], requested["hash"]);
    }
    // The last record of every controller batch is a signed checkpoint.
    let signed: Vec<&str> = ctl
        .iter()
        .filter(|r| r.get("sig").is_some())
        .map(|r| r["event"].as_str().unwrap())
        .collect();
    assert_eq!(signed, ["requested", "executed", "requested", "executed"]);
    let out = lab.aiops(&["audit", "verify"]);
    let v: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert!(out.status.success(), "{v}");
    assert_eq!(
        (&v["signatures_checked"], &v["checkpoints"]),
        (&Value::from(true), &Value::from(4))
    );
    let (v, ok) = verify_targets(&lab);
    assert!(ok, "{v}");
    assert_eq!(v["status"], "ok");
    let t = &v["targets"][0];
    assert_eq!(
        (
            &t["target"],
            &t["agent_heads_checked"],
            &t["controller_heads_checked"]
        ),
        (&Value::from("srv1"), &Value::from(2), &Value::from(2)),
        "{v}"
    );
    // One target by name.
    let out = lab.aiops(&["audit", "verify", "--targets", "srv2"]);
    let v: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert!(out.status.success(), "{v}");
    assert_eq!(v["targets"].as_array().unwrap().len(), 1);
}

#[test]
fn a_truncated_agent_log_with_its_head_file_removed_is_detected_naming_the_first_missing_record() {
    let lab = Lab::start(1, "lab");
    for c in ["hostname", "uptime", "id -u"] {
        run_ok(&lab, "srv1", c);
    }
    let log = lab.agent_dir("srv1").join("audit.jsonl");
    let first = by_event(&lab.audit(), "executed")[0]["agent_seq"]
        .as_u64()
        .unwrap();
    // Keep the records up to the first outcome; delete the side file too.
    let text = std::fs::read_to_string(&log).unwrap();
    let kept: Vec<&str> = text.lines().take(first as usize).collect();
    std::fs::write(&log, kept.join("\n") + "\n").unwrap();
    std::fs::remove_file(log.with_extension("jsonl.head")).unwrap();
    // The agent's own check cannot see it: that is the hole.
    let (v, ok) = agent_verify(&log);
    assert!(ok, "{v}");
    let (v, ok) = verify_targets(&lab);
    assert!(!ok, "{v}");
    assert_first_bad(&v, "agent", first + 1, Some("srv1"), "were removed");
}

#[test]
fn one_agent_record_rewritten_with_every_hash_recomputed_is_detected_at_that_record() {
    let lab = Lab::start(1, "lab");
    run_ok(&lab, "srv1", "hostname");
    run_ok(&lab, "srv1", "uptime");
    let log = lab.agent_dir("srv1").join("audit.jsonl");
    let second = by_event(&lab.audit(), "executed")[1]["agent_seq"]
        .as_u64()
        .unwrap();
    // The attacker makes the second command look as if it failed.
    rewrite_consistently(
        &log,
        &format!("    if r.get('seq') == {second}: r['exit_code'] = 1"),
        None,
    );
    let (v, ok) = agent_verify(&log);
    assert!(ok, "the rewrite is internally consistent: {v}");
    assert_eq!(read_jsonl(&log)[second as usize - 1]["exit_code"], 1);
    let (v, ok) = verify_targets(&lab);
    assert!(!ok, "{v}");
    assert_first_bad(&v, "agent", second, None, "rewritten");
}

const GROUP: &str = "aiops-chains-grp";
const MEMBER: &str = "aiops-chains-m";

/// A real non-root account in the log's group; removed on drop.
struct Member;

impl Member {
    fn create() -> Member {
        assert!(
            nix::unistd::geteuid().is_root(),
            "this test creates a user: run it as root"
        );
        Member::cleanup();
        let sh = |c: &mut Command| {
            let out = c.output().expect("runs");
            assert!(out.status.success(), "{c:?}: {}", text(&out));
        };
        sh(Command::new("groupadd").args(["--system", GROUP]));
        sh(Command::new("useradd").args([
            "--system",
            "--no-create-home",
            "--shell",
            "/usr/sbin/nologin",
            "--gid",
            GROUP,
            MEMBER,
        ]));
        Member
    }

    fn cleanup() {
        let _ = Command::new("userdel").arg(MEMBER).output();
        let _ = Command::new("groupdel").arg(GROUP).output();
    }
}

impl Drop for Member {
    fn drop(&mut self) {
        Member::cleanup();
    }
}

#[test]
fn a_group_member_rewriting_the_controller_log_consistently_is_detected_by_signatures_and_the_cross_check()
 {
    let _member = Member::create();
    let lab = Lab::start(1, "lab");
    run_ok(&lab, "srv1", "hostname");
    run_ok(&lab, "srv1", "uptime");
    let log = lab.dir.join("audit.jsonl");
    // The shipped layout: the log is the controller's, 0660, group-writable
    // by the approvers; the member can reach it but not write the directory.
    for p in [lab.tmp.path(), lab.dir.as_path()] {
        std::process::Command::new("chmod")
            .args(["o+x"])
            .arg(p)
            .status()
            .unwrap();
    }
    for p in [log.clone(), log.with_extension("jsonl.head")] {
        let st = Command::new("chgrp").arg(GROUP).arg(&p).status().unwrap();
        assert!(st.success());
        let st = Command::new("chmod").arg("0660").arg(&p).status().unwrap();
        assert!(st.success());
    }
    let requested = by_event(&lab.audit(), "requested")[0]["seq"]
        .as_u64()
        .unwrap();
    // The member makes the first request look like another command.
    rewrite_consistently(
        &log,
        &format!(
            "    if r.get('seq') == {requested}: r['command'] = 'id'\n    \
             if r.get('event') == 'executed' and r.get('command') == 'hostname': r['command'] = 'id'"
        ),
        Some(MEMBER),
    );
    assert_eq!(read_jsonl(&log)[requested as usize - 1]["command"], "id");
    // The chain alone still verifies (what `audit verify` checked before).
    let (v, ok) = agent_verify(&log);
    assert!(ok, "the rewrite is internally consistent: {v}");
    // The signatures do not.
    let out = lab.aiops(&["audit", "verify"]);
    let v: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert!(!out.status.success(), "{v}");
    assert!(
        v["message"]
            .as_str()
            .unwrap()
            .contains("checkpoint signature does not verify"),
        "{v}"
    );
    // Nor does the agent's copy of the controller's head.
    let (v, ok) = verify_targets(&lab);
    assert!(!ok, "{v}");
    assert_eq!(v["first_bad"]["side"], "controller", "{v}");
    let t = &v["targets"][0]["first_bad"];
    assert_eq!(
        (&t["side"], &t["seq"]),
        (&Value::from("controller"), &Value::from(requested)),
        "{v}"
    );
}

#[test]
fn a_receipt_signed_with_another_key_is_recorded_as_bad_and_reported() {
    let lab = Lab::start(1, "lab");
    run_ok(&lab, "srv1", "hostname");
    // The pinned key is the agent's.
    let pin = lab.dir.join("pki/agents/srv1.audit.pub");
    let pinned = std::fs::read_to_string(&pin).unwrap();
    assert!(pinned.starts_with("ed25519:"), "{pinned}");
    // Someone else's key signs the next receipts.
    lab.down();
    let key = lab.agent_dir("srv1").join("state/audit.key");
    std::fs::remove_file(&key).unwrap();
    lab.up();
    assert!(key.exists(), "the agent made itself a new key");
    let a = run_ok(&lab, "srv1", "hostname");
    let problem = a["receipt_error"].as_str().unwrap_or_else(|| panic!("{a}"));
    assert!(problem.contains("not the audit key pinned"), "{a}");
    let ctl = lab.audit();
    let e = by_event(&ctl, "executed")[1];
    assert_eq!(e["receipt_status"], "bad", "{e}");
    assert!(
        e["receipt_problem"]
            .as_str()
            .unwrap()
            .contains("not the audit key pinned")
    );
    // The receipt itself is kept, for whoever looks into it.
    assert!(!e["receipt"].as_str().unwrap().is_empty());
    assert_eq!(
        std::fs::read_to_string(&pin).unwrap(),
        pinned,
        "the pin stays"
    );
}

/// `aiops-agent --config <agent.yml> audit verify`: the configured log,
/// checked with the agent's own audit key (its `audit.pub`).
fn agent_verify_configured(lab: &Lab, name: &str) -> (Value, bool) {
    let config = lab.agent_dir(name).join("agent.yml");
    let out = run_cmd(
        &agent_bin(),
        &["--config", config.to_str().unwrap(), "audit", "verify"],
        b"",
        &[],
        &[],
    );
    let v: Value = serde_json::from_slice(&out.stdout)
        .unwrap_or_else(|e| panic!("verify prints JSON ({e}): {}", text(&out)));
    (v, out.status.success())
}

/// Appends a record to a log the way a writer of the file can: chained
/// onto the last one, hash recomputed, `.head` rewritten; no signature.
fn append_forged(log: &Path, fields_py: &str) {
    let script = format!(
        r#"
import hashlib, json, sys
path = sys.argv[1]
def canon(o): return json.dumps(o, sort_keys=True, separators=(',', ':'), ensure_ascii=False)
last = json.loads(open(path, encoding="utf-8").read().splitlines()[-1])
r = {fields_py}
r["seq"] = last["seq"] + 1; r["prev"] = last["hash"]; r["ts"] = last["ts"]; r["agent"] = last.get("agent", "")
r["hash"] = hashlib.sha256(canon(r).encode()).hexdigest()
with open(path, "a", encoding="utf-8") as f: f.write(canon(r) + "\n")
with open(path + ".head", "w") as f: f.write("%020d %s\n" % (r["seq"], r["hash"]))
"#
    );
    let out = Command::new("python3")
        .args(["-c", &script])
        .arg(log)
        .output()
        .expect("python3 runs");
    assert!(out.status.success(), "append: {}", text(&out));
}

/// Saves a log and its side file; `restore` puts both back.
struct Saved(std::path::PathBuf, Vec<u8>, Vec<u8>);

impl Saved {
    fn take(log: &Path) -> Saved {
        let head = log.with_extension("jsonl.head");
        Saved(
            log.to_path_buf(),
            std::fs::read(log).unwrap(),
            std::fs::read(head).unwrap(),
        )
    }

    fn restore(&self) {
        std::fs::write(&self.0, &self.1).unwrap();
        std::fs::write(self.0.with_extension("jsonl.head"), &self.2).unwrap();
    }
}

#[test]
fn the_agents_own_verify_detects_rewrites_by_anyone_without_its_audit_key_naming_the_first_bad_record()
 {
    let lab = Lab::start(1, "lab");
    for c in ["hostname", "uptime", "id -u"] {
        run_ok(&lab, "srv1", c);
    }
    let log = lab.agent_dir("srv1").join("audit.jsonl");
    let records = read_jsonl(&log);
    let n = records.len() as u64;
    // Untampered: every record the daemon writes is a signed checkpoint.
    let (v, ok) = agent_verify_configured(&lab, "srv1");
    assert!(ok, "{v}");
    assert_eq!(
        (&v["signatures_checked"], &v["checkpoints"], &v["records"]),
        (&Value::from(true), &Value::from(n), &Value::from(n)),
        "{v}"
    );
    let saved = Saved::take(&log);
    let executed: Vec<u64> = by_event(&records, "executed")
        .iter()
        .map(|r| r["seq"].as_u64().unwrap())
        .collect();
    let bad_line = |v: &Value| (v["status"].clone(), v["line"].as_u64().unwrap_or(0));

    // 1. One record rewritten, the chain after it and `.head` recomputed.
    let second = executed[1];
    rewrite_consistently(
        &log,
        &format!("    if r.get('seq') == {second}: r['exit_code'] = 1"),
        None,
    );
    assert!(
        aiops_audit::AuditLog::new(&log).verify().is_ok(),
        "the chain alone passes"
    );
    let (v, ok) = agent_verify_configured(&lab, "srv1");
    assert!(!ok, "{v}");
    assert_eq!(bad_line(&v), (Value::from("error"), second), "{v}");
    assert!(
        v["message"]
            .as_str()
            .unwrap()
            .contains("checkpoint signature"),
        "{v}"
    );
    saved.restore();

    // 2. The whole log rewritten without any signature (chain and side file
    // recomputed): nothing the daemon wrote is signed any more.
    rewrite_consistently(&log, "    r.pop('sig', None); r.pop('sig_key', None)", None);
    assert!(aiops_audit::AuditLog::new(&log).verify().is_ok());
    let (v, ok) = agent_verify_configured(&lab, "srv1");
    assert!(!ok, "{v}");
    assert_eq!(bad_line(&v), (Value::from("error"), 1), "{v}");
    assert!(
        v["message"]
            .as_str()
            .unwrap()
            .contains("not covered by a signed checkpoint"),
        "{v}"
    );
    saved.restore();

    // 3. Records cut out of the middle (the first command's outcome), the
    // rest renumbered and rechained: the first record after the cut fails.
    let first = executed[0];
    rewrite_consistently(
        &log,
        &format!("    if r.get('seq') == {first}: return None"),
        None,
    );
    assert!(aiops_audit::AuditLog::new(&log).verify().is_ok());
    let (v, ok) = agent_verify_configured(&lab, "srv1");
    assert!(!ok, "{v}");
    assert_eq!(bad_line(&v), (Value::from("error"), first), "{v}");
    saved.restore();

    // 4. A forged record appended at the end, chained, with `.head`.
    append_forged(
        &log,
        r#"{"event": "executed", "request_id": "forged", "exit_code": 0}"#,
    );
    assert!(aiops_audit::AuditLog::new(&log).verify().is_ok());
    let (v, ok) = agent_verify_configured(&lab, "srv1");
    assert!(!ok, "{v}");
    assert_eq!(bad_line(&v), (Value::from("error"), n + 1), "{v}");
    assert!(
        v["message"]
            .as_str()
            .unwrap()
            .contains("not covered by a signed checkpoint"),
        "{v}"
    );
    saved.restore();

    // 5. Cut from the end, `.head` rewritten to match: every record left is
    // still signed, so the agent alone cannot tell (a signature cannot say
    // that nothing follows). The controller's heads can: the cross-check.
    rewrite_consistently(
        &log,
        &format!("    if r.get('seq') >= {}: return None", executed[2]),
        None,
    );
    let (v, ok) = agent_verify_configured(&lab, "srv1");
    assert!(ok, "the local limit: {v}");
    let (v, ok) = verify_targets(&lab);
    assert!(!ok, "{v}");
    assert_eq!(
        (&v["first_bad"]["side"], &v["first_bad"]["seq"]),
        (&Value::from("agent"), &Value::from(executed[2])),
        "{v}"
    );
    saved.restore();
    let (v, ok) = agent_verify_configured(&lab, "srv1");
    assert!(ok, "restored: {v}");
}

#[test]
fn the_cross_check_verifies_the_agents_checkpoints_with_the_pinned_key_beyond_the_last_head() {
    let lab = Lab::start(1, "lab");
    run_ok(&lab, "srv1", "hostname");
    let log = lab.agent_dir("srv1").join("audit.jsonl");
    let n = read_jsonl(&log).len() as u64;
    let (v, ok) = verify_targets(&lab);
    assert!(ok, "{v}");
    assert_eq!(v["targets"][0]["agent_checkpoints_checked"], n, "{v}");
    let saved = Saved::take(&log);
    // After the newest head the controller holds, no head can tell: a forged
    // record there (chained, `.head` rewritten) is caught by the signatures.
    append_forged(
        &log,
        r#"{"event": "refused", "reason": "bad_signature", "message": "forged"}"#,
    );
    let (v, ok) = verify_targets(&lab);
    assert!(!ok, "{v}");
    assert_first_bad(
        &v,
        "agent",
        n + 1,
        Some("srv1"),
        "not covered by a signed checkpoint",
    );
    saved.restore();
    // A pin that is not the agent's key (swapped by whoever writes pki/):
    // the agent's signatures fail against it, loudly, naming both keys.
    let pin = lab.dir.join("pki/agents/srv1.audit.pub");
    let real = std::fs::read_to_string(&pin).unwrap();
    let other = aiops_certs::signing::SigningKey::generate()
        .verifying_key()
        .to_text();
    std::fs::write(&pin, format!("{other}\n")).unwrap();
    let (v, ok) = verify_targets(&lab);
    assert!(!ok, "{v}");
    let t = &v["targets"][0];
    let m = t["first_bad"]["message"]
        .as_str()
        .unwrap_or_else(|| panic!("{v}"));
    assert!(m.contains(&other) && m.contains(real.trim()), "{v}");
    std::fs::write(&pin, real).unwrap();
    let (v, ok) = verify_targets(&lab);
    assert!(ok, "{v}");
}

/// Appends `n` signed records to a lab agent's log (stopped), the way its
/// daemon writes them (its audit key, a checkpoint per batch of 1,000):
/// a long history without running `n` commands.
fn grow_agent_log(lab: &Lab, name: &str, n: u64) {
    let state = lab.agent_dir(name).join("state");
    let key = aiops_certs::signing::SigningKey::from_pem(
        &std::fs::read_to_string(state.join("audit.key")).unwrap(),
    )
    .unwrap();
    let id = key.verifying_key().key_id();
    let log = aiops_audit::AuditLog::new(lab.agent_dir(name).join("audit.jsonl"))
        .with_checkpoints(id, move |m| key.sign(m));
    let mut left = n;
    while left > 0 {
        let batch = left.min(1000);
        let records = (0..batch)
            .map(|i| {
                let serde_json::Value::Object(m) = serde_json::json!({
                    "event": "refused", "reason": "bad_signature", "agent": name,
                    "message": format!("filler {i}"), "peer": "127.0.0.1:1",
                }) else {
                    unreachable!()
                };
                m
            })
            .collect();
        log.append_many(records).unwrap();
        left -= batch;
    }
}

#[test]
fn a_long_agent_log_is_cross_checked_page_by_page_and_a_bad_record_late_in_it_is_found() {
    // AIOPS_LONG_LOG=100000 for the figure in BENCHMARKS/the report.
    let n: u64 = std::env::var("AIOPS_LONG_LOG")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(30_000);
    let lab = Lab::start(1, "lab");
    run_ok(&lab, "srv1", "hostname");
    lab.down();
    grow_agent_log(&lab, "srv1", n);
    lab.up();
    // A command after the long history: its head is late in the log.
    run_ok(&lab, "srv1", "uptime");
    let log = lab.agent_dir("srv1").join("audit.jsonl");
    let total = read_jsonl(&log).len() as u64;
    assert!(total > n, "{total}");
    let t = std::time::Instant::now();
    let (v, ok) = verify_targets(&lab);
    println!(
        "verify --targets over {total} agent records: {:.2} s",
        t.elapsed().as_secs_f64()
    );
    assert!(ok, "{v}");
    assert_eq!(v["targets"][0]["agent_records"], total, "{v}");
    assert_eq!(v["targets"][0]["agent_heads_checked"], 2, "{v}");
    // One filler record near the end rewritten, the chain after it and
    // `.head` recomputed: past every page boundary, still found. (A
    // checkpoint, as every record the daemon writes is; the filler signs
    // per 1,000, so a record between two would be named at the next.)
    let late = read_jsonl(&log)
        .iter()
        .rev()
        .find(|r| r["event"] == "refused" && r.get("sig").is_some())
        .and_then(|r| r["seq"].as_u64())
        .unwrap();
    assert!(late > total - 1000, "{late} of {total}");
    rewrite_consistently(
        &log,
        &format!("    if r.get('seq') == {late}: r['peer'] = '127.0.0.9:1'"),
        None,
    );
    let (v, ok) = verify_targets(&lab);
    assert!(!ok, "{v}");
    assert_first_bad(&v, "agent", late, None, "");
}

/// `verify --targets` named this record first: its side, seq, target (when
/// given) and a message containing `says`.
fn assert_first_bad(v: &Value, side: &str, seq: u64, target: Option<&str>, says: &str) {
    let b = &v["first_bad"];
    assert_eq!(
        (&b["side"], &b["seq"]),
        (&Value::from(side), &Value::from(seq)),
        "{v}"
    );
    if let Some(t) = target {
        assert_eq!(b["target"], t, "{v}");
    }
    assert!(b["message"].as_str().unwrap_or("").contains(says), "{v}");
}
