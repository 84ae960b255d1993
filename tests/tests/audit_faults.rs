//! Faults on the audit path never turn into silent loss or a permanent
//! outage: a full disk (a real, small ext4 filesystem on a loop device) on
//! the controller and on the agent, a torn tail left by a killed writer, an
//! agent killed with SIGKILL mid-command, a panic in the middle of a fan-out.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use aiops_e2e::{Lab, agent_bin, processes_matching, read_jsonl, request, run_cmd};
use serde_json::{Value, json};

/// A 4 MiB ext4 filesystem with 1 KiB blocks and no reserved blocks,
/// loop-mounted at `dir` until dropped. A record longer than a block can
/// never fit into the slack of the log's last block once `fill` ran.
struct SmallFs {
    dir: PathBuf,
}

impl SmallFs {
    fn mount(image: &Path, dir: &Path) -> SmallFs {
        let sh = |cmd: &mut Command| {
            let out = cmd.output().expect("runs");
            assert!(
                out.status.success(),
                "{cmd:?}: {}",
                String::from_utf8_lossy(&out.stderr)
            );
        };
        std::fs::create_dir_all(dir).unwrap();
        sh(Command::new("truncate").arg("-s").arg("4M").arg(image));
        sh(Command::new("mkfs.ext4")
            .args(["-q", "-F", "-b", "1024", "-m", "0"])
            .arg(image));
        sh(Command::new("mount")
            .arg("-o")
            .arg("loop")
            .arg(image)
            .arg(dir));
        SmallFs {
            dir: dir.to_path_buf(),
        }
    }

    /// Writes a file until the filesystem is full.
    fn fill(&self) {
        use std::io::Write;
        let mut f = std::fs::File::create(self.dir.join("fill")).unwrap();
        let block = vec![0u8; 1024];
        loop {
            match f.write(&block) {
                Ok(0) => break,
                Ok(_) => {}
                Err(e) if e.raw_os_error() == Some(libc_enospc()) => break,
                Err(e) => panic!("fill: {e}"),
            }
        }
        let _ = f.sync_all();
    }

    /// Space comes back.
    fn free(&self) {
        std::fs::remove_file(self.dir.join("fill")).unwrap();
    }
}

fn libc_enospc() -> i32 {
    nix::errno::Errno::ENOSPC as i32
}

impl Drop for SmallFs {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg("-l").arg(&self.dir).status();
    }
}

/// A request with a reason longer than a filesystem block.
fn long_request(target: &str, command: &str) -> Vec<u8> {
    serde_json::to_vec(&json!({
        "target": target, "command": command, "requester": "e2e",
        "reason": format!("disk-full test {}", "x".repeat(1500)),
    }))
    .unwrap()
}

fn verify_controller(lab: &Lab, file: &Path) -> Value {
    let out = lab.aiops(&["audit", "verify", "--file", file.to_str().unwrap()]);
    let v: Value = serde_json::from_slice(&out.stdout).expect("verify prints JSON");
    assert!(out.status.success(), "{v}");
    v
}

fn verify_agent(file: &Path) -> Value {
    let out = run_cmd(
        &agent_bin(),
        &["audit", "verify", "--file", file.to_str().unwrap()],
        b"",
        &[],
        &[],
    );
    let v: Value = serde_json::from_slice(&out.stdout).expect("verify prints JSON");
    assert!(out.status.success(), "{v}");
    v
}

fn events(records: &[Value]) -> Vec<&str> {
    records
        .iter()
        .map(|r| r["event"].as_str().unwrap_or(""))
        .collect()
}

#[test]
fn controller_disk_full_sends_nothing_and_the_next_request_after_space_returns_works() {
    let lab = Lab::init(1, "lab");
    let fs = SmallFs::mount(&lab.tmp.path().join("ctl.img"), &lab.dir.join("small"));
    lab.edit(
        "config.yml",
        "audit_log: audit.jsonl",
        "audit_log: small/audit.jsonl",
    );
    lab.up();
    let log = fs.dir.join("audit.jsonl");
    let (answer, code) = lab.run(&request("srv1", "hostname"));
    assert_eq!(
        (answer["status"].as_str(), code),
        (Some("executed"), 0),
        "{answer}"
    );
    let marker = lab.tmp.path().join("approved-on-a-full-disk");
    let touch = format!("touch {}", marker.display());
    let (answer, _) = lab.run(&long_request("srv1", &touch));
    assert_eq!(answer["status"], "approval_requested", "{answer}");
    let acknowledged = std::fs::read(&log).unwrap();
    let agent_before = lab.agent_audit("srv1").len();

    fs.fill();
    // The approval cannot be recorded: nothing is sent, nothing runs.
    let (answer, code) = lab.run(b"Approve");
    assert_eq!(answer["error"]["code"], "audit_failed", "{answer}");
    assert_eq!(code, 2);
    // The write-ahead `requested` record cannot be written: nothing is sent.
    let (answer, code) = lab.run(&long_request("srv1", "hostname"));
    assert_eq!(answer["error"]["code"], "audit_failed", "{answer}");
    assert!(
        answer["error"]["message"]
            .as_str()
            .unwrap()
            .contains("nothing was sent"),
        "{answer}"
    );
    assert!(answer["request_id"].is_string(), "{answer}");
    assert_eq!(code, 2);
    assert!(!marker.exists(), "the approved command ran");
    assert_eq!(
        lab.agent_audit("srv1").len(),
        agent_before,
        "a request reached the agent"
    );
    // A full disk leaves no half record behind (space is reserved first).
    assert_eq!(std::fs::read(&log).unwrap(), acknowledged);

    fs.free();
    // No manual step: the pending approval and new requests just work.
    let (answer, code) = lab.run(b"Approve");
    assert_eq!(
        (answer["status"].as_str(), code),
        (Some("executed"), 0),
        "{answer}"
    );
    assert!(marker.exists());
    let (answer, code) = lab.run(&long_request("srv1", "hostname"));
    assert_eq!(
        (answer["status"].as_str(), code),
        (Some("executed"), 0),
        "{answer}"
    );
    let after = std::fs::read(&log).unwrap();
    assert_eq!(
        &after[..acknowledged.len()],
        &acknowledged[..],
        "an acknowledged record was lost or changed"
    );
    let v = verify_controller(&lab, &log);
    assert_eq!(v["torn_tail_bytes"], 0, "{v}");
    // Every `requested` has its outcome.
    let records = read_jsonl(&log);
    for r in records.iter().filter(|r| r["event"] == "requested") {
        let outcomes = records
            .iter()
            .filter(|o| o["request_id"] == r["request_id"] && o["event"] != "requested")
            .count();
        assert_eq!(outcomes, 1, "{r}");
    }
}

#[test]
fn agent_disk_full_runs_nothing_and_recovers_when_space_returns() {
    let lab = Lab::init(1, "lab");
    let agent_dir = lab.agent_dir("srv1");
    let fs = SmallFs::mount(&lab.tmp.path().join("agent.img"), &agent_dir.join("small"));
    lab.edit(
        "agents/srv1/agent.yml",
        "audit_log: audit.jsonl",
        "audit_log: small/audit.jsonl",
    );
    lab.up();
    let log = fs.dir.join("audit.jsonl");
    let (answer, _) = lab.run(&request("srv1", "hostname"));
    assert_eq!(answer["status"], "executed", "{answer}");
    let marker = lab.tmp.path().join("ran-on-a-full-agent-disk");
    let touch = format!("touch {}", marker.display());
    let (answer, _) = lab.run(&long_request("srv1", &touch));
    assert_eq!(answer["status"], "approval_requested", "{answer}");
    let acknowledged = std::fs::read(&log).unwrap();

    fs.fill();
    let (answer, code) = lab.run(b"Approve");
    assert_eq!(code, 1, "{answer}");
    assert_eq!(answer["error"]["code"], "agent_refused", "{answer}");
    assert!(
        answer["error"]["message"]
            .as_str()
            .unwrap()
            .starts_with("audit_failed"),
        "{answer}"
    );
    assert!(!marker.exists(), "ran without its audit record");
    assert_eq!(std::fs::read(&log).unwrap(), acknowledged);
    // The controller recorded the refusal: its `requested` has an outcome.
    let last = lab.audit().last().cloned().unwrap();
    assert_eq!(last["code"], "agent_refused", "{last}");

    fs.free();
    let (answer, _) = lab.run(&long_request("srv1", &touch));
    assert_eq!(answer["status"], "approval_requested", "{answer}");
    let (answer, code) = lab.run(b"Approve");
    assert_eq!(
        (answer["status"].as_str(), code),
        (Some("executed"), 0),
        "{answer}"
    );
    assert!(marker.exists());
    let after = std::fs::read(&log).unwrap();
    assert_eq!(&after[..acknowledged.len()], &acknowledged[..]);
    let v = verify_agent(&log);
    assert_eq!(v["torn_tail_bytes"], 0, "{v}");
}

/// What a writer killed in the middle of an append leaves: the first part
/// of a record, without its newline.
fn tear(log: &Path) -> Vec<u8> {
    use std::io::Write;
    let torn = br#"{"command":"hostname","event":"executed","prev":"5e1f"#.to_vec();
    let mut f = std::fs::OpenOptions::new().append(true).open(log).unwrap();
    f.write_all(&torn).unwrap();
    torn
}

#[test]
fn a_torn_tail_is_repaired_and_recorded_at_the_next_start_on_both_sides() {
    let lab = Lab::start(1, "lab");
    let (answer, _) = lab.run(&request("srv1", "hostname"));
    assert_eq!(answer["status"], "executed", "{answer}");
    lab.down();
    let ctl_log = lab.dir.join("audit.jsonl");
    let agent_log = lab.agent_dir("srv1").join("audit.jsonl");
    let ctl_torn = tear(&ctl_log);
    let agent_torn = tear(&agent_log);
    let ctl_records = read_jsonl_complete(&ctl_log);
    // Before the repair: the chain is intact, the torn bytes are named.
    let v = verify_controller(&lab, &ctl_log);
    assert_eq!(v["torn_tail_bytes"], ctl_torn.len(), "{v}");
    let v = verify_agent(&agent_log);
    assert_eq!(v["torn_tail_bytes"], agent_torn.len(), "{v}");

    // The agent repairs at start; the controller at its next request.
    lab.up();
    let (answer, code) = lab.run(&request("srv1", "hostname"));
    assert_eq!(
        (answer["status"].as_str(), code),
        (Some("executed"), 0),
        "{answer}"
    );
    for (log, torn, v) in [
        (&ctl_log, &ctl_torn, verify_controller(&lab, &ctl_log)),
        (&agent_log, &agent_torn, verify_agent(&agent_log)),
    ] {
        assert_eq!(v["torn_tail_bytes"], 0, "{v}");
        let repairs = v["repairs"].as_array().unwrap();
        assert_eq!(repairs.len(), 1, "{v}");
        assert_eq!(repairs[0]["removed_bytes"], torn.len(), "{v}");
        assert_eq!(
            repairs[0]["removed_sha256"],
            aiops_sys::sha256_hex(torn),
            "{v}"
        );
        let records = read_jsonl(log);
        let line = repairs[0]["line"].as_u64().unwrap() as usize;
        assert_eq!(records[line - 1]["event"], "audit_repaired");
        assert_eq!(records[line - 1]["repair"], "torn_tail");
    }
    // Nothing that was acknowledged went with the cut.
    let now = read_jsonl(&ctl_log);
    assert_eq!(&now[..ctl_records.len()], &ctl_records[..]);
}

fn read_jsonl_complete(path: &Path) -> Vec<Value> {
    let text = std::fs::read_to_string(path).unwrap();
    text.split_inclusive('\n')
        .filter(|l| l.ends_with('\n'))
        .map(|l| serde_json::from_str(l).unwrap())
        .collect()
}

#[test]
fn a_cut_into_acknowledged_records_is_tampering_and_is_not_repaired() {
    let lab = Lab::start(1, "lab");
    let (answer, _) = lab.run(&request("srv1", "hostname"));
    assert_eq!(answer["status"], "executed", "{answer}");
    let log = lab.dir.join("audit.jsonl");
    let len = std::fs::metadata(&log).unwrap().len();
    // Cut the middle of the last (acknowledged) record away.
    let f = std::fs::OpenOptions::new().write(true).open(&log).unwrap();
    f.set_len(len - 40).unwrap();
    drop(f);
    let (answer, code) = lab.run(&request("srv1", "hostname"));
    assert_eq!(answer["error"]["code"], "audit_failed", "{answer}");
    assert_eq!(code, 2);
    assert!(
        answer["error"]["message"]
            .as_str()
            .unwrap()
            .contains("records were removed"),
        "{answer}"
    );
    let out = lab.aiops(&["audit", "verify"]);
    assert!(!out.status.success());
    assert_eq!(std::fs::metadata(&log).unwrap().len(), len - 40);
}

#[test]
fn kill_9_of_the_agent_mid_command_is_agent_lost_and_interrupted_after_restart() {
    let lab = Lab::start(1, "lab");
    let cmd = "sleep 7.531";
    let ctl = {
        let config = lab.config();
        let body = request("srv1", cmd);
        std::thread::spawn(move || {
            run_cmd(
                &aiops_e2e::aiops_bin(),
                &["run"],
                &body,
                &[("AIOPS_CONFIG", config.to_str().unwrap())],
                &[],
            )
        })
    };
    // Wait for the agent to accept and start it.
    let start = Instant::now();
    let child = loop {
        if let Some(p) = processes_matching(&["sleep", "7.531"]).first() {
            break *p;
        }
        assert!(start.elapsed() < Duration::from_secs(20), "never started");
        std::thread::sleep(Duration::from_millis(20));
    };
    let accepted = lab.agent_audit("srv1").last().cloned().unwrap();
    assert_eq!(accepted["event"], "accepted");
    let agent = lab.agent_pid("srv1");
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(agent),
        nix::sys::signal::Signal::SIGKILL,
    )
    .unwrap();
    let out = ctl.join().unwrap();
    let answer = aiops_e2e::parse_answer(&out);
    assert_eq!(answer["error"]["code"], "agent_lost", "{answer}");
    assert_eq!(answer["request_id"], accepted["request_id"]);
    // The child died with its agent.
    let start = Instant::now();
    while Path::new(&format!("/proc/{child}")).exists()
        && !std::fs::read_to_string(format!("/proc/{child}/stat")).is_ok_and(|s| s.contains(") Z "))
    {
        assert!(
            start.elapsed() < Duration::from_secs(5),
            "sleep {child} outlived its agent"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    // The controller's record says lost, not refused.
    let last = lab.audit().last().cloned().unwrap();
    assert_eq!(last["code"], "agent_lost", "{last}");
    lab.up();
    let agent_log = lab.agent_dir("srv1").join("audit.jsonl");
    let records = read_jsonl(&agent_log);
    let interrupted: Vec<&Value> = records
        .iter()
        .filter(|r| r["event"] == "interrupted")
        .collect();
    assert_eq!(interrupted.len(), 1, "{records:?}");
    assert_eq!(interrupted[0]["request_id"], accepted["request_id"]);
    assert_eq!(interrupted[0]["accepted_seq"], accepted["seq"]);
    verify_agent(&agent_log);
    verify_controller(&lab, &lab.dir.join("audit.jsonl"));
    // A second start does not record it again.
    lab.down();
    lab.up();
    let again = read_jsonl(&agent_log);
    assert_eq!(events(&again), events(&records));
}

#[test]
fn a_panic_mid_fan_out_leaves_no_requested_record_without_an_outcome() {
    let lab = Lab::start(3, "lab");
    let body = serde_json::to_vec(&json!({
        "targets": ["srv1", "srv2", "srv3"], "command": "hostname",
        "requester": "e2e", "reason": "fault", "max_concurrency": 1,
    }))
    .unwrap();
    let out = run_cmd(
        &aiops_e2e::aiops_bin(),
        &["run"],
        &body,
        &[("AIOPS_CONFIG", lab.config().to_str().unwrap())],
        &[("AIOPS_TEST_FAULT", "panic_in_fanout")],
    );
    assert_eq!(
        out.status.code(),
        Some(101),
        "the hook did not panic: {}",
        String::from_utf8_lossy(&out.stdout)
    );
    let records = lab.audit();
    let requested: Vec<&Value> = records
        .iter()
        .filter(|r| r["event"] == "requested")
        .collect();
    assert_eq!(requested.len(), 3);
    for r in requested {
        let outcomes: Vec<&Value> = records
            .iter()
            .filter(|o| o["request_id"] == r["request_id"] && o["event"] != "requested")
            .collect();
        assert_eq!(outcomes.len(), 1, "{r}: {outcomes:?}");
        assert_eq!(outcomes[0]["code"], "internal_error");
    }
    let out = lab.aiops(&["audit", "verify"]);
    assert!(out.status.success());
}

#[test]
fn fan_out_knobs_out_of_range_are_refused_before_anything_is_recorded_as_requested() {
    let lab = Lab::start(2, "lab");
    for (knob, value) in [
        ("max_concurrency", json!(1u64 << 61)),
        ("max_concurrency", json!(usize::MAX)),
        ("max_errors", json!(1u64 << 62)),
    ] {
        let mut body = json!({
            "targets": ["srv1", "srv2"], "command": "hostname",
            "requester": "e2e", "reason": "knobs",
        });
        body[knob] = value;
        let (answer, code) = lab.run(&serde_json::to_vec(&body).unwrap());
        assert_eq!(code, 1, "{knob}: {answer}");
        assert_eq!(answer["error"]["code"], "invalid_field", "{answer}");
    }
    assert!(lab.audit().iter().all(|r| r["event"] != "requested"));
    assert!(lab.agent_audit("srv1").is_empty());
}

#[test]
fn an_outcome_that_cannot_be_written_is_retried_then_audit_failed_with_the_request_id() {
    let lab = Lab::init(1, "lab");
    let fs = SmallFs::mount(&lab.tmp.path().join("out.img"), &lab.dir.join("small"));
    lab.edit(
        "config.yml",
        "audit_log: audit.jsonl",
        "audit_log: small/audit.jsonl",
    );
    lab.up();
    let log = fs.dir.join("audit.jsonl");
    let ctl = {
        let config = lab.config();
        let body = long_request("srv1", "sleep 3.217");
        std::thread::spawn(move || {
            run_cmd(
                &aiops_e2e::aiops_bin(),
                &["run"],
                &body,
                &[("AIOPS_CONFIG", config.to_str().unwrap())],
                &[],
            )
        })
    };
    // The write-ahead record is there: the disk fills while the command runs.
    let start = Instant::now();
    while !read_jsonl(&log).iter().any(|r| r["event"] == "requested") {
        assert!(start.elapsed() < Duration::from_secs(20), "never requested");
        std::thread::sleep(Duration::from_millis(10));
    }
    fs.fill();
    let out = ctl.join().unwrap();
    let answer = aiops_e2e::parse_answer(&out);
    assert_eq!(answer["error"]["code"], "audit_failed", "{answer}");
    assert_eq!(out.status.code(), Some(2));
    let message = answer["error"]["message"].as_str().unwrap();
    assert!(message.contains("after 3 attempts"), "{answer}");
    let requested = read_jsonl(&log)
        .into_iter()
        .find(|r| r["event"] == "requested")
        .unwrap();
    assert_eq!(answer["request_id"], requested["request_id"]);
    // It ran: the agent's own log has the outcome.
    let agent = lab.agent_audit("srv1");
    assert!(
        agent
            .iter()
            .any(|r| r["event"] == "executed" && r["request_id"] == requested["request_id"])
    );
    fs.free();
    let (answer, code) = lab.run(&request("srv1", "hostname"));
    assert_eq!(
        (answer["status"].as_str(), code),
        (Some("executed"), 0),
        "{answer}"
    );
    verify_controller(&lab, &log);
}
