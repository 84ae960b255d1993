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
//!
//! The same boot carries issue 14's agent-side export: the agent .deb's
//! `aiops-agent-audit-export.service`, shipped disabled, enabled with a config naming a
//! real rsyslog with TLS on the host's loopback (the container shares the host's network).
//! Its account reads the agent's log and cannot write it, start `aiops-exec` or
//! `aiops-sandbox`, or read the agent's keys (probed inside the real unit and, with the
//! unit's namespace taken away, by file permissions alone); every agent record of the run
//! arrives in order in RFC 5424 form with its structured data; `--status` shows the
//! position and, while the unit is stopped, the backlog and lag.

use aiops_certs::pki::{Ca, PkiDir};
use aiops_e2e::nspawn::{Container, debs, loopback_endpoint, text, wait_until};
use aiops_e2e::rsyslog::{Rsyslog, Tls, first_arrivals, sd_text, strip_bom};
use serde_json::{Map, Value};

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

const EXPORT_YML: &str = "/etc/aiops-agent-export/export.yml";
const AGENT_LOG: &str = "/var/log/aiops-agent/audit.jsonl";

/// What the export account tries: one line per attempt, `ALLOWED:` or `refused:`.
const PROBE: &str = r#"L=/var/log/aiops-agent/audit.jsonl
r() { if "$@" >/dev/null 2>&1; then echo "ALLOWED: $*"; else echo "refused: $*"; fi; }
r head -c1 $L
r sh -c "printf x >> $L"
r truncate -s 0 $L
r rm -f $L
r mv $L $L.moved
r sh -c "echo planted > /var/log/aiops-agent/planted"
r chmod 0666 $L
started() { "$@" >/dev/null 2>&1; s=$?; [ $s -ne 126 ] && [ $s -ne 127 ]; }
r started /usr/libexec/aiops-agent/aiops-exec
r started /usr/libexec/aiops-agent/aiops-sandbox --help
r sudo -n /usr/libexec/aiops-agent/aiops-exec
r cat /etc/aiops-agent/pki/agent.key
r cat /etc/aiops-agent/agent.yml
r cat /var/lib/aiops-agent/audit.key
r ls /var/lib/aiops-agent
echo probe-done
"#;

/// Every line of a probe's output but the read of the log must be a refusal.
fn assert_only_reads(who: &str, out: &str) {
    assert!(out.contains("probe-done"), "{who}: probe incomplete: {out}");
    assert!(
        out.contains("ALLOWED: head -c1 /var/log/aiops-agent/audit.jsonl"),
        "{who}: the exporter must be able to read the log: {out}"
    );
    let allowed: Vec<&str> = out
        .lines()
        .filter(|l| l.starts_with("ALLOWED:") && !l.contains("head -c1"))
        .collect();
    assert!(
        allowed.is_empty(),
        "{who}: the export account may {allowed:?}"
    );
}

/// The agent's exporter: a host-side rsyslog (TLS, certificate from the controller's CA,
/// no client certificate), the unit enabled with a config naming it, and its account
/// probed before any request is made.
fn enable_agent_export(c: &Container, tmp: &std::path::Path) -> Rsyslog {
    // Shipped disabled, and inert until configured.
    let enabled = c.exec(&[
        "systemctl",
        "is-enabled",
        "aiops-agent-audit-export.service",
    ]);
    assert_eq!(String::from_utf8_lossy(&enabled.stdout).trim(), "disabled");
    c.sh("systemctl start aiops-agent-audit-export.service");
    assert_eq!(
        c.sh("systemctl show -p ConditionResult --value aiops-agent-audit-export.service"),
        "no"
    );
    assert!(
        c.root
            .join("usr/share/aiops-agent/export.yml.example")
            .exists()
    );
    assert_eq!(
        c.sh("stat -c '%U:%G %a' /var/log/aiops-agent /var/log/aiops-agent/audit.jsonl /etc/aiops-agent-export"),
        "aiops:aiops-audit 2750\naiops:aiops-audit 640\nroot:aiops-audit 750"
    );

    let pki = PkiDir::new(c.root.join("opt/aiops/pki"));
    let mut rs = Rsyslog::new(
        &tmp.join("rsyslog"),
        &Tls {
            ca: &pki.ca_cert(),
            issuer: &Ca::load(&pki).expect("controller CA"),
            permitted_peer: None,
            priority: None,
        },
    );
    rs.start();
    c.sh("install -o root -g aiops-audit -m 0640 /opt/aiops/pki/ca.pem /etc/aiops-agent-export/ca.pem");
    let yml = format!(
        "state_dir: /var/lib/aiops-agent-export\naudit_log: {AGENT_LOG}\npoll_ms: 50\nbatch_max: 3\nretry_max_ms: 500\nsinks:\n  - {{type: syslog_tls, name: rsyslog, address: '127.0.0.1:{port}', server_name: rsyslog.lab, ca: ca.pem}}\n",
        port = rs.port
    );
    std::fs::write(c.root.join(EXPORT_YML.trim_start_matches('/')), yml).unwrap();
    c.sh(&format!(
        "chown root:aiops-audit {EXPORT_YML} && chmod 0640 {EXPORT_YML}"
    ));

    // The attacker's test, inside the real unit: a probe run as ExecStartPre (same account,
    // groups and namespace), removed again before the exporter carries on.
    std::fs::write(c.root.join("usr/local/lib/aiops-export-probe.sh"), PROBE).unwrap();
    let dropin = c
        .root
        .join("etc/systemd/system/aiops-agent-audit-export.service.d");
    std::fs::create_dir_all(&dropin).unwrap();
    std::fs::write(
        dropin.join("probe.conf"),
        "[Service]\nExecStartPre=/bin/sh -c 'sh /usr/local/lib/aiops-export-probe.sh > /var/lib/aiops-agent-export/probe.txt 2>&1'\n",
    )
    .unwrap();
    let log_before = c.sh(&format!("sha256sum {AGENT_LOG}"));
    c.sh("systemctl daemon-reload && systemctl enable --now aiops-agent-audit-export.service");
    let probe_file = c.root.join("var/lib/private/aiops-agent-export/probe.txt");
    for i in 0.. {
        if std::fs::read_to_string(&probe_file).is_ok_and(|t| t.contains("probe-done")) {
            break;
        }
        assert!(
            i < 600,
            "the probe in the unit did not finish: {}",
            text(&c.exec(&[
                "sh",
                "-c",
                "systemctl status aiops-agent-audit-export.service; \
                 journalctl -b --no-pager -u aiops-agent-audit-export.service | tail -30"
            ]))
        );
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
    let in_unit = std::fs::read_to_string(&probe_file).unwrap();
    assert_only_reads("in the unit", &in_unit);
    std::fs::remove_dir_all(&dropin).unwrap();
    c.sh("systemctl daemon-reload");
    // Should the unit's namespace fail, file permissions alone hold: the same probe as a
    // plain account in group aiops-audit only.
    let gid = c.sh("getent group aiops-audit | cut -d: -f3");
    let plain = c.sh(&format!(
        "setpriv --reuid=65534 --regid=65534 --groups={gid} sh /usr/local/lib/aiops-export-probe.sh"
    ));
    assert_only_reads("by permissions alone", &plain);
    // The probe can fail: the design this avoids (the exporter in group `aiops`) is caught.
    let aiops_gid = c.sh("getent group aiops | cut -d: -f3");
    let wrong = c.sh(&format!(
        "setpriv --reuid=65534 --regid=65534 --groups={gid},{aiops_gid} sh /usr/local/lib/aiops-export-probe.sh"
    ));
    assert!(
        wrong.contains("ALLOWED: started /usr/libexec/aiops-agent/aiops-sandbox --help")
            && wrong.contains("ALLOWED: cat /etc/aiops-agent/pki/agent.key"),
        "the probe does not notice group aiops: {wrong}"
    );
    // Nothing was written: the log is as it was, nothing was planted or moved.
    assert_eq!(c.sh(&format!("sha256sum {AGENT_LOG}")), log_before);
    assert!(!c.root.join("var/log/aiops-agent/planted").exists());
    assert!(
        !c.root
            .join("var/log/aiops-agent/audit.jsonl.moved")
            .exists()
    );
    wait_until("the exporter to run", 30, || {
        let a = c.exec(&["systemctl", "is-active", "aiops-agent-audit-export.service"]);
        String::from_utf8_lossy(&a.stdout).trim() == "active"
    });
    rs
}

fn agent_export_status(c: &Container) -> Value {
    let out = c.sh(&format!(
        "aiops-agent audit export --status --export-config {EXPORT_YML}"
    ));
    serde_json::from_str(&out).unwrap_or_else(|e| panic!("status ({e}): {out}"))
}

/// Every record of the agent's log at rsyslog, in order, as RFC 5424 with its structured
/// data; `--status` with the unit stopped shows the backlog and its lag, then catches up.
fn check_agent_export(c: &Container, rs: &Rsyslog, hostname: &str) {
    c.sh("systemctl stop aiops-agent-audit-export.service");
    let before = agent_export_status(c);
    let req =
        r#"{"target":"srv1","command":"hostname","requester":"manual","reason":"export lag"}"#;
    let (code, out, err) = as_hermes(
        c,
        &format!("echo '{req}' | sudo -n -u aiopsexec /opt/aiops/run_action.py"),
    );
    assert_eq!(code, 0, "{out} {err}");
    let stopped = agent_export_status(c);
    let s = &stopped["sinks"][0];
    assert_eq!(stopped["exporter_running"], false, "{stopped}");
    assert!(s["backlog"].as_u64() > Some(0), "{stopped}");
    assert!(s["lag_ms"].is_u64(), "{stopped}");
    assert_eq!(s["seq"], before["sinks"][0]["seq"], "{stopped}");
    c.sh("systemctl start aiops-agent-audit-export.service");

    let audit = aiops_e2e::read_jsonl(&c.root.join(AGENT_LOG.trim_start_matches('/')));
    let n = audit.len() as u64;
    assert!(n >= 10, "a run's worth of agent records: {n}");
    wait_until("every agent record at rsyslog", 60, || {
        let got = rs.seqs();
        (1..=n).all(|s| got.contains(&s))
    });
    let (first, by_seq) = first_arrivals(&rs.received());
    assert_eq!(first, (1..=n).collect::<Vec<_>>(), "in order, none lost");
    for rec in &audit {
        let rec = rec.as_object().unwrap();
        let (line, params) = &by_seq[&rec["seq"].as_u64().unwrap()];
        assert_eq!(line["app"], "aiops-agent", "{line}");
        assert_eq!(line["host"], hostname, "{line}");
        assert_eq!(line["msgid"], rec["event"], "{line}");
        for k in ["seq", "hash", "prev", "event"] {
            assert_eq!(
                params.get(k).and_then(Value::as_str),
                Some(sd_text(&rec[k]).as_str()),
                "SD {k}: {line}"
            );
        }
        let msg: Map<String, Value> =
            serde_json::from_str(strip_bom(line["msg"].as_str().unwrap())).unwrap();
        if params.get("redacted").is_none() {
            assert_eq!(&msg, rec, "MSG is the record as written");
        }
    }
    let events: Vec<&str> = audit.iter().filter_map(|r| r["event"].as_str()).collect();
    assert!(events.contains(&"executed"), "{events:?}");
    let last = audit.last().unwrap();
    let mut done = Value::Null;
    wait_until("--status to catch up", 30, || {
        done = agent_export_status(c);
        done["sinks"][0]["seq"] == n
    });
    let s = &done["sinks"][0];
    assert_eq!(done["exporter_running"], true, "{done}");
    assert_eq!(s["hash"], last["hash"], "{done}");
    assert_eq!(s["backlog"], 0, "{done}");
    assert_eq!(s["lag_ms"], 0, "{done}");
    assert_eq!(s["type"], "syslog_tls", "{done}");
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
    let tmp = tempfile::tempdir().expect("tmp");
    let rs = enable_agent_export(&c, tmp.path());

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
    check_agent_export(&c, &rs, &hostname);
}
