//! The command line as a newcomer meets it: the quickstart's own hints pasted
//! into a shell, `| head`, labs with no agents or a taken port, and stderr
//! written to files. Real binaries, real agents on loopback.

use std::path::Path;
use std::process::{Command, Stdio};

use aiops_e2e::{aiops_bin, free_ports};
use serde_json::Value;

fn aiops_in(dir: &Path, args: &[&str]) -> std::process::Output {
    Command::new(aiops_bin())
        .args(args)
        .current_dir(dir)
        .env_remove("AIOPS_CONFIG")
        .output()
        .unwrap()
}

fn json_of(out: &std::process::Output) -> Value {
    let text = String::from_utf8_lossy(&out.stdout);
    serde_json::from_str(text.lines().next().unwrap_or("null"))
        .unwrap_or_else(|e| panic!("{e}: {text}"))
}

/// `target/release/aiops quickstart` from a checkout: every line under "Next,
/// try:" runs as printed, from the same directory, with the relative lab path
/// the quickstart used. The Approve line is the one that failed with
/// `key_unreadable: /aiops-lab/pki/signing.pub`.
#[test]
fn quickstart_hints_work_when_pasted_from_a_relative_lab() {
    let tmp = tempfile::tempdir().unwrap();
    let cwd = tmp.path();
    // The binary as a newcomer has it: a relative path under the checkout.
    std::fs::create_dir_all(cwd.join("target/release")).unwrap();
    std::os::unix::fs::symlink(aiops_bin(), cwd.join("target/release/aiops")).unwrap();
    let port = free_ports(2);
    let out = Command::new("target/release/aiops")
        .args([
            "quickstart",
            "--dir",
            "aiops-lab",
            "--port",
            &port.to_string(),
        ])
        .current_dir(cwd)
        .env_remove("AIOPS_CONFIG")
        .output()
        .unwrap();
    let down = || aiops_in(cwd, &["lab", "down", "--dir", "aiops-lab"]);
    if !out.status.success() {
        down();
        panic!("{}", String::from_utf8_lossy(&out.stderr));
    }
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    assert_eq!(json_of(&out)["status"], "executed", "{text}");
    let hints: Vec<&str> = text
        .split("Next, try:\n")
        .nth(1)
        .expect("hints")
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty())
        .collect();
    assert_eq!(hints.len(), 7, "{text}");
    for h in &hints {
        assert!(
            h.contains("target/release/aiops "),
            "names the binary that ran: {h}"
        );
        assert!(
            !h.contains(" aiops run"),
            "bare `aiops` is not on PATH: {h}"
        );
    }
    let mut answers = Vec::new();
    for h in &hints {
        let out = Command::new("bash")
            .args(["-c", h])
            .current_dir(cwd)
            .env_remove("AIOPS_CONFIG")
            .env("PATH", "/usr/sbin:/usr/bin:/sbin:/bin")
            .output()
            .unwrap();
        if !out.status.success() {
            down();
            panic!(
                "{h}\nexit {:?}\n{}\n{}",
                out.status.code(),
                String::from_utf8_lossy(&out.stdout),
                String::from_utf8_lossy(&out.stderr)
            );
        }
        answers.push(String::from_utf8_lossy(&out.stdout).into_owned());
    }
    let first =
        |i: usize| -> Value { serde_json::from_str(answers[i].lines().next().unwrap()).unwrap() };
    assert_eq!(first(0)["status"], "executed");
    assert_eq!(first(1)["status"], "approval_requested");
    let approved = first(2);
    assert_eq!(approved["status"], "executed", "{approved}");
    assert_eq!(approved["exit_code"], 0);
    assert!(answers[4].contains("executed"), "audit tail shows the runs");
    assert_eq!(
        serde_json::from_str::<Value>(answers[5].trim()).unwrap()["status"],
        "ok"
    );
    // The last hint stopped the lab: its ports are free again.
    assert!(std::net::TcpListener::bind(("127.0.0.1", port)).is_ok());
}

/// `aiops audit tail -n 200000 | head -1` used to panic with "Broken pipe"
/// (exit 101): the one stdout writer treats a closed pipe as a normal end.
#[test]
fn audit_tail_into_head_exits_0() {
    use std::io::Write;
    let tmp = tempfile::tempdir().unwrap();
    let log = tmp.path().join("audit.jsonl");
    let mut f = std::io::BufWriter::new(std::fs::File::create(&log).unwrap());
    for seq in 1..=200_000 {
        writeln!(f, r#"{{"seq":{seq},"ts":"2026-12-01T00:00:00Z","event":"executed","target":"srv1","command":"hostname"}}"#).unwrap();
    }
    f.flush().unwrap();
    for json in [false, true] {
        let script = format!(
            "{} audit tail -n 200000 --file {}{} | head -1; echo \"exit=${{PIPESTATUS[0]}}\"",
            aiops_bin().display(),
            log.display(),
            if json { " --json" } else { "" }
        );
        let out = Command::new("bash").args(["-c", &script]).output().unwrap();
        let stdout = String::from_utf8_lossy(&out.stdout);
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(
            stdout.contains("#1 ") || stdout.contains(r#""seq":1"#),
            "{stdout}"
        );
        assert!(stdout.trim_end().ends_with("exit=0"), "{stdout}\n{stderr}");
        assert!(
            !stderr.contains("panicked") && !stderr.contains("Broken pipe"),
            "{stderr}"
        );
    }
}

/// A controller-only lab, as a new user tries to enrol an external target.
#[test]
fn lab_init_with_no_agents_is_a_controller_only_lab() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("lab0");
    let d = dir.to_str().unwrap();
    let out = aiops_in(tmp.path(), &["lab", "init", "--dir", d, "--agents", "0"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stdout)
    );
    assert_eq!(json_of(&out)["agents"], 0);
    let config = dir.join("config.yml");
    let cfg = config.to_str().unwrap();
    let out = aiops_in(tmp.path(), &["--config", cfg, "targets", "list", "--json"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stdout)
    );
    assert_eq!(json_of(&out), serde_json::json!([]));
    let out = aiops_in(tmp.path(), &["lab", "up", "--dir", d]);
    assert_eq!(json_of(&out)["started"], serde_json::json!([]));
    // Enrol an external target into it.
    let out = aiops_in(
        tmp.path(),
        &[
            "--config",
            cfg,
            "certs",
            "bundle",
            "ext1",
            "--address",
            "127.0.0.1:7443",
        ],
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stdout)
    );
    assert!(dir.join("pki/bundles/ext1.bundle").exists());
    let out = aiops_in(
        tmp.path(),
        &["--config", cfg, "targets", "add", "ext1", "127.0.0.1:7443"],
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stdout)
    );
    let out = aiops_in(tmp.path(), &["--config", cfg, "targets", "list", "--json"]);
    assert_eq!(json_of(&out)[0]["name"], "ext1");
}

/// `lab up` where the third agent's port is taken: it fails, and the two
/// agents it had started are stopped again (their ports free, no pid files),
/// instead of being left running.
#[test]
fn lab_up_that_fails_midway_stops_the_agents_it_started() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("lab3");
    let d = dir.to_str().unwrap();
    let port = free_ports(3);
    let out = aiops_in(
        tmp.path(),
        &[
            "lab",
            "init",
            "--dir",
            d,
            "--agents",
            "3",
            "--port",
            &port.to_string(),
        ],
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stdout)
    );
    let taken = std::net::TcpListener::bind(("127.0.0.1", port + 2)).unwrap();
    let out = aiops_in(tmp.path(), &["lab", "up", "--dir", d]);
    let answer = json_of(&out);
    assert_eq!(out.status.code(), Some(2), "{answer}");
    assert_eq!(answer["error"]["code"], "lab");
    let message = answer["error"]["message"].as_str().unwrap();
    assert!(message.contains("srv3"), "{message}");
    assert!(
        message.contains("stopped the agents this call had started: srv1, srv2"),
        "{message}"
    );
    for k in 1..=3u16 {
        assert!(
            !dir.join(format!("agents/srv{k}/agent.pid")).exists(),
            "srv{k}"
        );
    }
    for p in [port, port + 1] {
        assert!(
            std::net::TcpListener::bind(("127.0.0.1", p)).is_ok(),
            "port {p} left in use"
        );
    }
    drop(taken);
    // With the port free again the same lab comes up.
    let out = aiops_in(tmp.path(), &["lab", "up", "--dir", d]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stdout)
    );
    assert_eq!(json_of(&out)["started"].as_array().unwrap().len(), 3);
    // Diagnostics written to a file carry no colour codes (the agent's log here).
    let log = std::fs::read(dir.join("agents/srv1/agent.log")).unwrap();
    let down = aiops_in(tmp.path(), &["lab", "down", "--dir", d]);
    assert!(down.status.success());
    assert!(!log.is_empty(), "the agent logs its start");
    assert!(!log.contains(&0x1b), "{}", String::from_utf8_lossy(&log));
}

/// `lab init` says so when its ports fall in the kernel's ephemeral range,
/// where an outgoing connection can hold one when the agent starts.
#[test]
fn lab_init_names_ports_in_the_ephemeral_range() {
    let range = std::fs::read_to_string("/proc/sys/net/ipv4/ip_local_port_range").unwrap();
    let lo: u16 = range.split_whitespace().next().unwrap().parse().unwrap();
    let tmp = tempfile::tempdir().unwrap();
    for (port, in_range) in [(lo, true), (7443, 7443 >= lo)] {
        let dir = tmp.path().join(format!("lab-{port}"));
        let out = aiops_in(
            tmp.path(),
            &[
                "lab",
                "init",
                "--dir",
                dir.to_str().unwrap(),
                "--agents",
                "1",
                "--port",
                &port.to_string(),
            ],
        );
        assert!(out.status.success());
        let notes = json_of(&out)["notes"].as_array().unwrap().len();
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(notes > 0, in_range, "{stderr}");
        assert_eq!(stderr.contains("ip_local_port_range"), in_range, "{stderr}");
    }
}

/// The controller's own diagnostics, sent to a pipe, carry no colour codes.
#[test]
fn controller_stderr_to_a_pipe_has_no_colour_codes() {
    let out = Command::new(aiops_bin())
        .args(["--config", "/nonexistent/aiops.yml", "targets", "list"])
        .env("AIOPS_LOG", "trace")
        .stderr(Stdio::piped())
        .output()
        .unwrap();
    // A config that does not exist: an error answer on stdout, exit 2.
    assert_eq!(out.status.code(), Some(2));
    assert_eq!(json_of(&out)["error"]["code"], "config");
    let lab = aiops_e2e::Lab::start(1, "lab");
    let out = Command::new(aiops_bin())
        .args(["--config", lab.config().to_str().unwrap(), "run"])
        .env("AIOPS_LOG", "debug")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .and_then(|mut c| {
            use std::io::Write;
            c.stdin.take().unwrap().write_all(
                br#"{"target":"srv1","command":"hostname","requester":"t","reason":"r"}"#,
            )?;
            c.wait_with_output()
        })
        .unwrap();
    assert_eq!(json_of(&out)["status"], "executed");
    assert!(!out.stderr.is_empty(), "debug logging writes something");
    assert!(
        !out.stderr.contains(&0x1b),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}
