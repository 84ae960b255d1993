//! The core path: `aiops run` -> mTLS gRPC -> agent -> back, and every way it refuses.
//! All sockets are real, on 127.0.0.1, with certificates from our own PKI code.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use aiops_certs::pki::{Ca, LeafSpec, PkiDir, Usage};
use aiops_certs::signing::SigningKey;
use aiops_controller::dispatch::client;
use aiops_e2e::{Lab, aiops_bin, peak_rss_kib, processes_matching, read_jsonl, request};
use aiops_proto::agent::v1 as pb;
use serde_json::Value;

fn real_hostname() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .unwrap()
        .trim()
        .to_string()
}

fn events(records: &[Value]) -> Vec<String> {
    records
        .iter()
        .map(|r| r["event"].as_str().unwrap_or("").to_string())
        .collect()
}

#[test]
fn hostname_round_trip_is_executed_and_audited_on_both_sides() {
    let lab = Lab::start(1, "lab");
    let (answer, code) = lab.run(&request("srv1", "hostname"));
    assert_eq!(code, 0, "{answer}");
    assert_eq!(answer["status"], "executed");
    assert_eq!(answer["risk"], "auto_allowed");
    assert_eq!(answer["exit_code"], 0);
    assert_eq!(answer["stdout"], format!("{}\n", real_hostname()));
    assert_eq!(answer["truncated"], false);
    let id = answer["request_id"].as_str().unwrap().to_string();
    assert_eq!(uuid::Uuid::parse_str(&id).unwrap().get_version_num(), 4);

    let audit = lab.audit();
    assert_eq!(events(&audit), ["requested", "executed"]);
    let executed = &audit[1];
    for (k, v) in [
        ("target", "srv1"),
        ("command", "hostname"),
        ("requester", "e2e"),
        ("reason", "test"),
        ("risk", "auto_allowed"),
        ("status", "executed"),
    ] {
        assert_eq!(executed[k], v, "{k}");
    }
    assert_eq!(executed["request_id"], id.as_str());
    assert_eq!(executed["exit_code"], 0);
    assert_eq!(executed["stdout"], format!("{}\n", real_hostname()));
    assert!(executed["ts"].as_str().unwrap().ends_with('Z'));

    let agent = lab.agent_audit("srv1");
    assert_eq!(events(&agent), ["accepted", "executed"]);
    assert_eq!(agent[1]["request_id"], id.as_str());

    let verify = lab.aiops(&["audit", "verify"]);
    assert!(
        verify.status.success(),
        "{}",
        String::from_utf8_lossy(&verify.stdout)
    );
}

#[test]
fn run_action_alias_behaves_like_aiops_run() {
    let lab = Lab::start(1, "lab");
    let link = lab.tmp.path().join("run_action");
    std::os::unix::fs::symlink(aiops_bin(), &link).unwrap();
    let out = aiops_e2e::run_cmd(
        &link,
        &[],
        &request("srv1", "hostname"),
        &[("AIOPS_CONFIG", lab.config().to_str().unwrap())],
        &[],
    );
    let answer = aiops_e2e::parse_answer(&out);
    assert_eq!(answer["status"], "executed", "{answer}");
    assert_eq!(answer["stdout"], format!("{}\n", real_hostname()));
}

/// Bad input: one JSON error, a non-zero exit, an audit record, and nothing sent to any agent.
#[test]
fn bad_input_is_refused_audited_and_never_sent() {
    let lab = Lab::start(1, "lab");
    let big = "x".repeat(1 << 20);
    let cases: Vec<(Vec<u8>, &str)> = vec![
        (b"{not json".to_vec(), "invalid_json"),
        (b"".to_vec(), "invalid_json"),
        (
            br#"{"target":"srv1","command":"hostname","requester":"e2e","reason":"t","extra":1}"#
                .to_vec(),
            "invalid_json",
        ),
        (
            br#"{"target":"srv1","requester":"e2e"}"#.to_vec(),
            "invalid_json",
        ),
        (b"\xff\xfe{}".to_vec(), "invalid_utf8"),
        (request("srv9", "hostname"), "unknown_target"),
        (request("srv1", &big), "input_too_large"),
        (request("srv1", &"y".repeat(5000)), "invalid_command"),
        (request("srv1", "hostname\0"), "invalid_command"),
        (request("srv1", "hostname \u{1b}[31m"), "invalid_command"),
        (request("srv1", "host\rname"), "invalid_command"),
        (
            br#"{"target":"srv1","command":"hostname","requester":"e\u0007","reason":"t"}"#
                .to_vec(),
            "invalid_field",
        ),
    ];
    for (i, (input, code)) in cases.iter().enumerate() {
        let (answer, exit) = lab.run(input);
        assert_eq!(answer["status"], "error", "case {i}: {answer}");
        assert_eq!(answer["error"]["code"], *code, "case {i}: {answer}");
        assert!(!answer["error"]["message"].as_str().unwrap().is_empty());
        assert_eq!(exit, 1, "case {i}");
        let audit = lab.audit();
        assert_eq!(audit.len(), i + 1, "one audit record per bad request");
        assert_eq!(audit[i]["event"], "error");
        assert_eq!(audit[i]["code"], *code);
    }
    // The raw oversized input never lands in the audit log.
    let log = std::fs::read_to_string(lab.dir.join("audit.jsonl")).unwrap();
    assert!(log.len() < 64 * 1024, "audit log is {} bytes", log.len());
    assert!(
        lab.agent_audit("srv1").is_empty(),
        "nothing reached the agent"
    );
    assert!(lab.aiops(&["audit", "verify"]).status.success());
}

/// Material for crafting requests by hand, as a compromised or buggy controller would.
struct Craft {
    key: SigningKey,
    pki: PkiDir,
    command: String,
    audit: PathBuf,
    seen: std::cell::Cell<usize>,
}

impl Craft {
    /// Lets srv1 (and the controller) auto-allow exactly `touch MARKER`, so a request
    /// that passed every check would leave the marker behind.
    fn new(lab: &Lab) -> Craft {
        let marker = lab.tmp.path().join("ran-marker");
        let command = format!("touch {}", marker.display());
        lab.append(
            "agents/srv1/policy.yml",
            &format!("auto_allow: [{command:?}]\n"),
        );
        let pki = PkiDir::new(lab.dir.join("pki"));
        let key =
            SigningKey::from_pem(&std::fs::read_to_string(pki.signing_key()).unwrap()).unwrap();
        Craft {
            key,
            pki,
            command,
            audit: lab.agent_dir("srv1").join("audit.jsonl"),
            seen: std::cell::Cell::new(0),
        }
    }

    fn request(&self, target: &str) -> pb::CommandRequest {
        let policy =
            aiops_policy::Policy::from_yaml(&format!("auto_allow: [{:?}]\n", self.command), "t")
                .unwrap();
        let d = policy.classify(&self.command);
        assert_eq!(d.risk, aiops_policy::Risk::AutoAllowed);
        let now = aiops_sys::now_ms();
        pb::CommandRequest {
            request_id: uuid::Uuid::new_v4().to_string(),
            target: target.into(),
            command: self.command.clone(),
            plan: Some(aiops_proto::plan::to_proto(&d.plan)),
            decision: pb::Decision::AutoAllowed as i32,
            requester: "e2e-craft".into(),
            reason: "refusal test".into(),
            issued_at_ms: now,
            expires_at_ms: now + 60_000,
            timeout_ms: 10_000,
            output_cap_bytes: 4096,
            policy_digest: String::new(),
            approval_id: String::new(),
            controller_seq: 0,
            controller_hash: String::new(),
        }
    }

    fn tls(&self) -> Arc<rustls::ClientConfig> {
        Arc::new(
            aiops_certs::tls::client_config(
                &self.pki.ca_cert(),
                &self.pki.controller_cert(),
                &self.pki.controller_key(),
            )
            .unwrap(),
        )
    }

    /// The agent ran the command: its audit has an `executed` record for it.
    /// (Auto-allowed commands are read-only under Landlock, so `touch` itself
    /// cannot leave the marker; the audit record is the marker here.)
    fn ran(&self) -> bool {
        self.executions() > self.seen.get()
    }

    fn executions(&self) -> usize {
        read_jsonl(&self.audit)
            .iter()
            .filter(|r| r["event"] == "executed" && r["command"] == self.command.as_str())
            .count()
    }

    /// Later runs count from here.
    fn reset(&self) {
        self.seen.set(self.executions());
    }
}

async fn send(
    addr: &str,
    tls: Arc<rustls::ClientConfig>,
    signed: pb::SignedCommand,
) -> Result<client::Collected, client::ClientError> {
    let ch = client::connect(addr, "srv1", tls, Duration::from_secs(5)).await?;
    client::execute(ch, signed, Duration::from_secs(20)).await
}

fn runtime() -> tokio::runtime::Runtime {
    aiops_certs::install_crypto_provider();
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
}

#[test]
fn a_correct_crafted_request_runs_so_the_refusal_tests_can_fail() {
    let lab = Lab::init(1, "lab");
    let craft = Craft::new(&lab);
    lab.up();
    let rt = runtime();
    let signed = client::sign(&craft.request("srv1"), &craft.key);
    let out = rt
        .block_on(send(&lab.agent_addr(1), craft.tls(), signed))
        .expect("accepted");
    assert!(craft.ran());
    // It ran read-only: Landlock refused touch's write.
    assert_ne!(out.exit.exit_code, 0);
    let stderr = String::from_utf8_lossy(&out.stderr_head).to_string();
    assert!(stderr.contains("Permission denied"), "{stderr}");
}

#[test]
fn transport_refusals_run_nothing() {
    let lab = Lab::init(1, "lab");
    let craft = Craft::new(&lab);
    lab.up();
    let rt = runtime();
    let other = tempfile::tempdir().unwrap();
    let other_pki = PkiDir::new(other.path().join("pki"));
    aiops_certs::pki::init(&other_pki, "aiops-controller", false).unwrap();
    // A valid certificate from the right CA, but not the controller's identity.
    let (cert, key) = Ca::load(&craft.pki)
        .unwrap()
        .issue(&LeafSpec {
            name: "srv2".into(),
            dns: vec![],
            ips: vec![],
            usage: Usage::Client,
            days: 30,
        })
        .unwrap();
    let wrong_id_cert = other.path().join("wrong.pem");
    let wrong_id_key = other.path().join("wrong.key");
    std::fs::write(&wrong_id_cert, cert).unwrap();
    std::fs::write(&wrong_id_key, key).unwrap();
    let ca = craft.pki.ca_cert();
    let cases: Vec<(&str, rustls::ClientConfig, &str)> = vec![
        (
            "no client certificate",
            aiops_certs::tls::anonymous_client_config(&ca).unwrap(),
            "tls_refused",
        ),
        (
            "certificate from another CA",
            aiops_certs::tls::client_config(
                &ca,
                &other_pki.controller_cert(),
                &other_pki.controller_key(),
            )
            .unwrap(),
            "tls_refused",
        ),
        (
            "wrong identity",
            aiops_certs::tls::client_config(&ca, &wrong_id_cert, &wrong_id_key).unwrap(),
            "wrong_identity",
        ),
    ];
    for (what, tls, reason) in cases {
        let before = lab.agent_audit("srv1").len();
        let signed = client::sign(&craft.request("srv1"), &craft.key);
        let result = rt.block_on(send(&lab.agent_addr(1), Arc::new(tls), signed));
        assert!(result.is_err(), "{what}: accepted");
        assert!(!craft.ran(), "{what}: the command ran");
        // The agent audits the refused connection (asynchronously to the client's error).
        let start = Instant::now();
        while lab.agent_audit("srv1").len() == before {
            assert!(
                start.elapsed() < Duration::from_secs(10),
                "{what}: no audit record"
            );
            std::thread::sleep(Duration::from_millis(20));
        }
        std::thread::sleep(Duration::from_millis(200));
        let audit = lab.agent_audit("srv1");
        for rec in &audit[before..] {
            assert_eq!(rec["event"], "refused", "{what}");
            assert_eq!(rec["reason"], reason, "{what}: {rec}");
        }
    }
    assert!(
        lab.agent_audit("srv1")
            .iter()
            .all(|r| r["event"] == "refused")
    );
}

#[test]
fn signature_expiry_target_and_replay_refusals_run_nothing() {
    let lab = Lab::init(2, "lab");
    let craft = Craft::new(&lab);
    lab.up();
    let rt = runtime();
    let addr = lab.agent_addr(1);
    let other_key = SigningKey::generate();
    let expect_refused = |signed: pb::SignedCommand, reason: &str| {
        let err = rt
            .block_on(send(&addr, craft.tls(), signed))
            .expect_err(reason);
        assert_eq!(err.reason(), Some(reason), "{err}");
        assert!(!craft.ran(), "{reason}: the command ran");
        let last = lab.agent_audit("srv1").last().cloned().unwrap();
        assert_eq!(last["event"], "refused");
        assert_eq!(last["reason"], reason);
    };

    // Tampered payload: one byte of the signed bytes changed after signing.
    let mut signed = client::sign(&craft.request("srv1"), &craft.key);
    let pos = signed.request.len() / 2;
    signed.request[pos] ^= 0x01;
    expect_refused(signed, "bad_signature");

    // Payload swapped for another command, signature kept.
    let mut signed = client::sign(&craft.request("srv1"), &craft.key);
    let mut req = craft.request("srv1");
    req.command = format!("{} ", req.command);
    signed.request = prost::Message::encode_to_vec(&req);
    expect_refused(signed, "bad_signature");

    // Signed by another key claiming the controller's key id; and under its own id.
    let mut signed = client::sign(&craft.request("srv1"), &other_key);
    signed.key_id = craft.key.verifying_key().key_id();
    expect_refused(signed, "bad_signature");
    expect_refused(
        client::sign(&craft.request("srv1"), &other_key),
        "unknown_key",
    );

    // Expired (well past the skew allowance), and issued in the future.
    let mut req = craft.request("srv1");
    req.issued_at_ms -= 600_000;
    req.expires_at_ms = req.issued_at_ms + 60_000;
    expect_refused(client::sign(&req, &craft.key), "expired");
    let mut req = craft.request("srv1");
    req.issued_at_ms += 600_000;
    req.expires_at_ms += 600_000;
    expect_refused(client::sign(&req, &craft.key), "not_yet_valid");

    // For another target.
    expect_refused(
        client::sign(&craft.request("srv2"), &craft.key),
        "wrong_target",
    );

    // Replay: first use runs, the second is refused; also after an agent restart.
    let signed = client::sign(&craft.request("srv1"), &craft.key);
    rt.block_on(send(&addr, craft.tls(), signed.clone()))
        .expect("first use runs");
    assert!(craft.ran());
    craft.reset();
    expect_refused(signed.clone(), "replayed");
    lab.down();
    lab.up();
    expect_refused(signed.clone(), "replayed");
    // A power loss can lose the replay cache's last lines (they are not
    // fsync'd: the `accepted` audit record is, with the same id and expiry).
    // Without the replay cache at all, the restarted agent still knows the
    // id from its audit log.
    lab.down();
    std::fs::remove_file(lab.agent_dir("srv1").join("state/replay.log")).unwrap();
    lab.up();
    expect_refused(signed, "replayed");

    let verify = aiops_e2e::run_cmd(
        &aiops_e2e::agent_bin(),
        &[
            "--config",
            lab.agent_dir("srv1").join("agent.yml").to_str().unwrap(),
            "audit",
            "verify",
        ],
        b"",
        &[],
        &[],
    );
    assert!(
        verify.status.success(),
        "{}",
        String::from_utf8_lossy(&verify.stdout)
    );
}

#[test]
fn agent_refuses_a_decision_looser_than_its_own_policy() {
    // The controller auto-allows `touch MARKER`; srv1's own policy does not.
    let lab = Lab::init(1, "lab");
    let marker = lab.tmp.path().join("looser");
    let cmd = format!("touch {}", marker.display());
    lab.edit(
        "config.yml",
        "  unknown_default: approval_required\n",
        &format!("  unknown_default: approval_required\n  auto_allow: [{cmd:?}]\n"),
    );
    lab.up();
    let (answer, code) = lab.run(&request("srv1", &cmd));
    assert_eq!(answer["status"], "error", "{answer}");
    assert_eq!(answer["error"]["code"], "agent_refused");
    assert!(
        answer["error"]["message"]
            .as_str()
            .unwrap()
            .starts_with("policy_stricter"),
        "{answer}"
    );
    assert_eq!(code, 1);
    assert!(!marker.exists());
    assert_eq!(
        lab.agent_audit("srv1").last().unwrap()["reason"],
        "policy_stricter"
    );
}

#[test]
fn large_output_is_capped_head_and_tail_with_bounded_agent_memory() {
    let lab = Lab::init(1, "lab");
    let cmd = "seq 1 7000000"; // 54,888,896 bytes
    lab.edit(
        "config.yml",
        "  unknown_default: approval_required\n",
        &format!("  unknown_default: approval_required\n  auto_allow: [{cmd:?}]\n"),
    );
    lab.append(
        "agents/srv1/policy.yml",
        &format!("auto_allow: [{cmd:?}]\n"),
    );
    lab.up();
    let (answer, code) = lab.run(&request("srv1", cmd));
    assert_eq!(code, 0, "{answer}");
    assert_eq!(answer["status"], "executed");
    assert_eq!(answer["truncated"], true);
    let total: u64 = 54_888_896;
    assert_eq!(answer["stdout_dropped_bytes"], total - 65536);
    let stdout = answer["stdout"].as_str().unwrap();
    assert!(stdout.starts_with("1\n2\n3\n"));
    assert!(stdout.ends_with("6999999\n7000000\n"));
    assert!(stdout.contains(&format!("[aiops: {} bytes dropped]", total - 65536)));
    assert!(stdout.len() < 70_000);
    let rss = peak_rss_kib(lab.agent_pid("srv1"));
    assert!(
        rss < 64 * 1024,
        "agent peak RSS {rss} KiB while streaming 55 MB"
    );
    let audit = lab.audit();
    assert_eq!(audit.last().unwrap()["stdout_bytes"], stdout.len());
}

#[test]
fn timeout_kills_the_whole_process_group() {
    let lab = Lab::init(1, "lab");
    lab.edit("config.yml", "  timeout_secs: 30", "  timeout_secs: 2");
    lab.up();
    let cmd = "sh -c 'sleep 987 & sleep 987'";
    let (answer, _) = lab.run(&request("srv1", cmd));
    assert_eq!(answer["status"], "approval_requested", "{answer}");
    let start = Instant::now();
    let (answer, code) = lab.run(b"Approve\n");
    assert_eq!(code, 0, "{answer}");
    assert_eq!(answer["status"], "executed");
    assert_eq!(answer["timed_out"], true);
    assert!(start.elapsed() < Duration::from_secs(15));
    // Both sleeps, the background one included, are gone.
    let deadline = Instant::now() + Duration::from_secs(5);
    while !processes_matching(&["sleep", "987"]).is_empty() {
        assert!(
            Instant::now() < deadline,
            "left behind: {:?}",
            processes_matching(&["sleep", "987"])
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    let last = lab.agent_audit("srv1").last().cloned().unwrap();
    assert_eq!(last["event"], "executed");
    assert_eq!(last["timed_out"], true);
}

#[test]
fn twenty_concurrent_runs_all_succeed_with_intact_audit() {
    let lab = Lab::start(2, "lab");
    let handles: Vec<_> = (0..20)
        .map(|i| {
            let config = lab.config();
            std::thread::spawn(move || {
                let target = if i % 2 == 0 { "srv1" } else { "srv2" };
                let out = aiops_e2e::run_cmd(
                    &aiops_bin(),
                    &["run"],
                    &request(target, "hostname"),
                    &[("AIOPS_CONFIG", config.to_str().unwrap())],
                    &[],
                );
                (aiops_e2e::parse_answer(&out), out.status.code())
            })
        })
        .collect();
    let mut ids = std::collections::HashSet::new();
    for h in handles {
        let (answer, code) = h.join().unwrap();
        assert_eq!(code, Some(0), "{answer}");
        assert_eq!(answer["status"], "executed");
        ids.insert(answer["request_id"].as_str().unwrap().to_string());
    }
    assert_eq!(ids.len(), 20);
    let audit = lab.audit();
    let executed: Vec<&Value> = audit.iter().filter(|r| r["event"] == "executed").collect();
    assert_eq!(executed.len(), 20);
    assert_eq!(audit.len(), 40);
    assert!(lab.aiops(&["audit", "verify"]).status.success());
    for name in ["srv1", "srv2"] {
        assert_eq!(
            lab.agent_audit(name)
                .iter()
                .filter(|r| r["event"] == "executed")
                .count(),
            10
        );
    }
}

#[test]
fn production_agent_config_refuses_to_run_as_root() {
    if !nix::unistd::geteuid().is_root() {
        panic!("this test must run as root (CI does)");
    }
    let lab = Lab::init(1, "production");
    lab.edit("agents/srv1/agent.yml", "lab: true", "lab: false");
    let out = aiops_e2e::run_cmd(
        &aiops_e2e::agent_bin(),
        &[
            "--config",
            lab.agent_dir("srv1").join("agent.yml").to_str().unwrap(),
        ],
        b"",
        &[],
        &[],
    );
    assert_eq!(out.status.code(), Some(64));
    assert!(String::from_utf8_lossy(&out.stderr).contains("refusing to run as root"));
}

#[test]
fn bad_agent_config_exits_64_before_binding() {
    let lab = Lab::init(1, "lab");
    lab.append("agents/srv1/agent.yml", "bogus_key: 1\n");
    let cfg = lab.agent_dir("srv1").join("agent.yml");
    let out = aiops_e2e::run_cmd(
        &aiops_e2e::agent_bin(),
        &["--config", cfg.to_str().unwrap()],
        b"",
        &[],
        &[],
    );
    assert_eq!(out.status.code(), Some(64));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("bogus_key") && err.contains("agent.yml"),
        "{err}"
    );
    assert!(
        std::net::TcpListener::bind(lab.agent_addr(1)).is_ok(),
        "port stayed free"
    );
}

#[test]
fn quickstart_runs_the_validation_request() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("qs");
    let port = aiops_e2e::free_ports(2);
    let out = std::process::Command::new(aiops_bin())
        .args([
            "quickstart",
            "--dir",
            dir.to_str().unwrap(),
            "--port",
            &port.to_string(),
        ])
        .output()
        .unwrap();
    let _down = std::process::Command::new(aiops_bin())
        .args(["lab", "down", "--dir", dir.to_str().unwrap()])
        .output();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let text = String::from_utf8_lossy(&out.stdout);
    let answer: Value = serde_json::from_str(text.lines().next().unwrap()).unwrap();
    assert_eq!(answer["status"], "executed");
    assert_eq!(answer["stdout"], format!("{}\n", real_hostname()));
    assert!(text.contains("echo Approve"));
    assert_eq!(read_jsonl(&dir.join("audit.jsonl")).len(), 2);
    let _ = Path::new(&dir);
}
