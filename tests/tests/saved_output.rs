//! `"save_output": true`: the output streams to files on the controller host
//! (`<runtime_dir>/outputs/<request_id>.<target>.stdout|.stderr`), the answer
//! carries an excerpt, the paths and the SHA-256 of each file, and memory
//! stays flat on both sides whatever the output size.

use std::io::Read;
use std::os::unix::fs::PermissionsExt;
use std::path::Path;

use aiops_e2e::{Lab, aiops_bin, parse_answer, peak_rss_kib, run_cmd};
use serde_json::{Value, json};

fn save(target: &str, command: &str) -> Vec<u8> {
    serde_json::to_vec(&json!({
        "target": target, "command": command, "requester": "e2e", "reason": "big output",
        "save_output": true,
    }))
    .unwrap()
}

/// SHA-256 (hex) and size of a file, read in pieces.
fn file_digest(path: &Path) -> (String, u64) {
    let mut f = std::fs::File::open(path).unwrap();
    let mut ctx = ring::digest::Context::new(&ring::digest::SHA256);
    let mut buf = vec![0u8; 1 << 20];
    let mut n = 0u64;
    loop {
        let k = f.read(&mut buf).unwrap();
        if k == 0 {
            break;
        }
        ctx.update(&buf[..k]);
        n += k as u64;
    }
    let hex: String = ctx
        .finish()
        .as_ref()
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect();
    (hex, n)
}

fn mode(path: &Path) -> u32 {
    std::fs::metadata(path).unwrap().permissions().mode() & 0o7777
}

/// Checks one executed answer's files against its digests; returns the two paths.
fn check_files(a: &Value) -> (std::path::PathBuf, std::path::PathBuf) {
    let out = Path::new(a["stdout_file"].as_str().expect("stdout_file")).to_path_buf();
    let err = Path::new(a["stderr_file"].as_str().expect("stderr_file")).to_path_buf();
    for (k, p) in [(0, &out), (1, &err)] {
        assert!(p.is_absolute(), "{}", p.display());
        assert_eq!(mode(p), 0o600, "{}", p.display());
        let (sha, size) = file_digest(p);
        assert_eq!(a["output_digest"][k], json!([sha, size]), "{a}");
    }
    let id = a["request_id"].as_str().unwrap();
    let target = a["target"].as_str().unwrap();
    assert!(out.ends_with(format!("outputs/{id}.{target}.stdout")));
    assert!(err.ends_with(format!("outputs/{id}.{target}.stderr")));
    (out, err)
}

/// Requests the agent audited for `command` (accepted or executed).
fn agent_ran(lab: &Lab, agent: &str, command: &str) -> Vec<Value> {
    lab.agent_audit(agent)
        .into_iter()
        .filter(|r| r["command"] == command && r["event"] != "refused")
        .collect()
}

#[test]
fn two_hundred_megabytes_stream_to_a_file_with_flat_memory() {
    let lab = Lab::init(1, "lab");
    lab.append(
        "agents/srv1/agent.yml",
        "max_output_cap_bytes: 1073741824\n",
    );
    lab.up();
    let cmd = "head -c 200000000 /dev/zero";
    let explained = lab.aiops(&["policy", "explain", "--json", "--", cmd]);
    let explained: Value = serde_json::from_slice(&explained.stdout).unwrap();
    assert_eq!(explained["risk"], "auto_allowed", "{explained}");

    let started = std::time::Instant::now();
    let aiops = aiops_bin();
    let out = run_cmd(
        Path::new("/usr/bin/time"),
        &["-f", "%M", aiops.to_str().unwrap(), "run"],
        &save("srv1", cmd),
        &[("AIOPS_CONFIG", lab.config().to_str().unwrap())],
        &[],
    );
    let elapsed = started.elapsed();
    let answer = parse_answer(&out);
    assert_eq!(out.status.code(), Some(0), "{answer}");
    assert_eq!(answer["status"], "executed", "{answer}");
    assert_eq!(answer["exit_code"], 0);
    assert_eq!(answer["truncated"], false);

    let (stdout_file, stderr_file) = check_files(&answer);
    assert_eq!(std::fs::metadata(&stdout_file).unwrap().len(), 200_000_000);
    assert_eq!(answer["output_digest"][0][1], 200_000_000);
    assert_eq!(std::fs::metadata(&stderr_file).unwrap().len(), 0);
    assert_eq!(mode(stdout_file.parent().unwrap()), 0o700);
    let stdout = answer["stdout"].as_str().unwrap();
    assert!(stdout.len() < 70_000, "{}", stdout.len());
    assert!(
        stdout.contains(&format!(
            "[aiops: {} bytes not shown; the whole output is in {}]",
            200_000_000 - 65_536,
            stdout_file.display()
        )),
        "stdout is {} bytes",
        stdout.len()
    );

    let stderr = String::from_utf8_lossy(&out.stderr);
    let controller_kib: u64 = stderr.trim().lines().last().unwrap().parse().unwrap();
    let agent_kib = peak_rss_kib(lab.agent_pid("srv1"));
    eprintln!(
        "200 MB save_output: {:.1} s, controller peak RSS {controller_kib} KiB, agent VmHWM {agent_kib} KiB",
        elapsed.as_secs_f64()
    );
    assert!(
        controller_kib < 64 * 1024,
        "controller {controller_kib} KiB"
    );
    assert!(agent_kib < 64 * 1024, "agent {agent_kib} KiB");

    // The audit has the paths and the digests, never the content.
    let audit = lab.audit();
    let rec = audit.last().unwrap();
    assert_eq!(rec["event"], "executed", "{rec}");
    assert_eq!(rec["stdout_file"], answer["stdout_file"]);
    assert_eq!(rec["stderr_file"], answer["stderr_file"]);
    assert_eq!(rec["stdout_sha256"], answer["output_digest"][0][0]);
    assert_eq!(rec["stdout_bytes"], 200_000_000);
    assert!(
        rec.get("stdout").is_none() && rec.get("stderr").is_none(),
        "{rec}"
    );
    let requested = &audit[audit.len() - 2];
    assert_eq!(requested["event"], "requested");
    assert_eq!(requested["stdout_file"], answer["stdout_file"]);
    assert_eq!(agent_ran(&lab, "srv1", cmd).len(), 2);
    let agent_exec = lab.agent_audit("srv1");
    let executed = agent_exec.last().unwrap();
    assert_eq!(executed["event"], "executed");
    assert_eq!(executed["stdout_bytes"], 200_000_000);
}

#[test]
fn a_blocked_outputs_directory_is_an_error_and_nothing_runs() {
    let lab = Lab::start(1, "lab");
    let runtime = lab.dir.join("runtime");
    std::fs::create_dir_all(&runtime).unwrap();
    let outputs = runtime.join("outputs");
    let cmd = "uname -a";

    // A regular file where the directory should be.
    std::fs::write(&outputs, b"not a directory").unwrap();
    let (answer, code) = lab.run(&save("srv1", cmd));
    assert_eq!(code, 2, "{answer}");
    assert_eq!(answer["status"], "error");
    assert_eq!(answer["error"]["code"], "output_file", "{answer}");
    let message = answer["error"]["message"].as_str().unwrap();
    assert!(message.contains("outputs"), "{message}");
    assert!(message.contains("nothing was sent"), "{message}");

    // A symlink to a directory elsewhere: refused too, nothing written there.
    std::fs::remove_file(&outputs).unwrap();
    let elsewhere = lab.dir.join("elsewhere");
    std::fs::create_dir(&elsewhere).unwrap();
    std::os::unix::fs::symlink(&elsewhere, &outputs).unwrap();
    let (answer, code) = lab.run(&save("srv1", cmd));
    assert_eq!(code, 2, "{answer}");
    assert_eq!(answer["error"]["code"], "output_file", "{answer}");
    assert_eq!(std::fs::read_dir(&elsewhere).unwrap().count(), 0);

    // A fan-out fails the same way, for every target.
    let body = serde_json::to_vec(&json!({
        "targets": ["srv1"], "command": cmd, "requester": "e2e", "save_output": true,
    }))
    .unwrap();
    let (answer, code) = lab.run(&body);
    assert_eq!(code, 2, "{answer}");
    assert_eq!(answer["status"], "failed", "{answer}");
    assert_eq!(answer["results"][0]["error"]["code"], "output_file");

    assert!(agent_ran(&lab, "srv1", cmd).is_empty());
    assert!(
        lab.agent_audit("srv1").iter().all(|r| r["command"] != cmd),
        "the agent never heard of it"
    );
    let audit = lab.audit();
    let last = audit.last().unwrap();
    assert_eq!(last["event"], "error");
    assert_eq!(last["code"], "output_file");
    assert!(audit.iter().all(|r| r["event"] != "requested"));
}

#[test]
fn the_agent_refuses_a_cap_above_its_maximum_and_nothing_runs() {
    // Lab agents keep the default max_output_cap_bytes (16 MiB); the controller asks 1 GiB.
    let lab = Lab::start(1, "lab");
    let cmd = "uname -a";
    let (answer, code) = lab.run(&save("srv1", cmd));
    assert_eq!(code, 1, "{answer}");
    assert_eq!(answer["status"], "error");
    assert_eq!(answer["error"]["code"], "agent_refused", "{answer}");
    let message = answer["error"]["message"].as_str().unwrap();
    assert!(
        message.starts_with("limits: output cap 1073741824 above 16777216"),
        "{message}"
    );
    assert!(
        message.contains("saved_output_cap_bytes") && message.contains("max_output_cap_bytes"),
        "{message}"
    );
    assert!(agent_ran(&lab, "srv1", cmd).is_empty());
    let refused = lab.agent_audit("srv1");
    let refused = refused.last().unwrap();
    assert_eq!(refused["event"], "refused");
    assert_eq!(refused["reason"], "limits");
    // The empty files made for it are gone.
    let outputs = lab.dir.join("runtime/outputs");
    assert_eq!(std::fs::read_dir(&outputs).unwrap().count(), 0);
}

#[test]
fn fanout_gives_one_file_pair_per_target_and_a_small_cap_keeps_head_and_tail() {
    let lab = Lab::init(2, "lab");
    // Within the agents' default maximum (16 MiB).
    lab.edit(
        "config.yml",
        "  output_cap_bytes: 65536\n",
        "  output_cap_bytes: 65536\n  saved_output_cap_bytes: 1048576\n",
    );
    lab.up();
    let cmd = "ls / /nonexistent-aiops";
    let body = serde_json::to_vec(&json!({
        "targets": ["srv1", "srv2"], "command": cmd, "requester": "e2e", "save_output": true,
    }))
    .unwrap();
    let (answer, code) = lab.run(&body);
    assert_eq!(code, 0, "{answer}");
    assert_eq!(answer["summary"]["executed"], 2, "{answer}");
    let mut paths = Vec::new();
    for r in answer["results"].as_array().unwrap() {
        assert_eq!(r["status"], "executed", "{r}");
        let (out, err) = check_files(r);
        // Small output: the excerpt is the whole file.
        assert_eq!(std::fs::read_to_string(&out).unwrap(), r["stdout"]);
        assert_eq!(std::fs::read_to_string(&err).unwrap(), r["stderr"]);
        assert!(r["stderr"].as_str().unwrap().contains("nonexistent-aiops"));
        paths.push(out);
        paths.push(err);
    }
    paths.sort();
    paths.dedup();
    assert_eq!(paths.len(), 4);

    // Output above the cap: the file holds the agent's head and tail, the answer says how much was dropped.
    let cmd = "head -c 3000000 /dev/urandom";
    let (answer, code) = lab.run(&save("srv1", cmd));
    assert_eq!(code, 0, "{answer}");
    assert_eq!(answer["truncated"], true);
    assert_eq!(answer["stdout_dropped_bytes"], 3_000_000 - 1_048_576);
    let (out, _) = check_files(&answer);
    assert_eq!(std::fs::metadata(&out).unwrap().len(), 1_048_576);
    let stdout = answer["stdout"].as_str().unwrap();
    assert!(
        stdout.contains(&format!(
            "except the {} bytes dropped over the agent's output cap]\n",
            3_000_000 - 1_048_576
        )),
        "stdout is {} bytes",
        stdout.len()
    );
}
