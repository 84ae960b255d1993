//! A real target host: a Debian bookworm root made by `debootstrap` (cached under
//! `target/nspawn/`), booted with `systemd-nspawn -b` (real systemd as PID 1, real nginx,
//! real sudo), the aiops-agent .deb installed with `dpkg -i` inside it, enrolled with a
//! bundle the controller issued outside, and started by systemd. The controller runs
//! here, outside, and reaches the agent on a 127.0.0.x address (the container shares the
//! host's network). `nsenter` is used only to set up and to inspect, never for the path
//! under test.

use std::sync::Arc;
use std::time::{Duration, Instant};

use aiops_certs::pki::PkiDir;
use aiops_certs::signing::SigningKey;
use aiops_controller::dispatch::client;
use aiops_e2e::nspawn::{Container, Controller, debs, loopback_endpoint, text, wait_until};
use aiops_e2e::read_jsonl;
use aiops_proto::agent::v1 as pb;
use serde_json::Value;

/// A signed `hostname` request crafted by hand, to send twice (replay).
fn signed_hostname(pki: &PkiDir, target: &str) -> pb::SignedCommand {
    let key = SigningKey::from_pem(&std::fs::read_to_string(pki.signing_key()).expect("key"))
        .expect("key");
    let policy =
        aiops_policy::Policy::from_yaml("mode: production\nunknown_default: reject\n", "t")
            .expect("policy");
    let d = policy.classify("hostname");
    let now = aiops_sys::now_ms();
    let req = pb::CommandRequest {
        request_id: uuid::Uuid::new_v4().to_string(),
        target: target.into(),
        command: "hostname".into(),
        plan: Some(aiops_proto::plan::to_proto(&d.plan)),
        decision: pb::Decision::AutoAllowed as i32,
        requester: "e2e-replay".into(),
        reason: "replay cache test".into(),
        issued_at_ms: now,
        expires_at_ms: now + 300_000,
        timeout_ms: 10_000,
        output_cap_bytes: 4096,
        policy_digest: String::new(),
        approval_id: String::new(),
        controller_seq: 0,
        controller_hash: String::new(),
    };
    client::sign(&req, &key)
}

fn send(
    addr: &str,
    pki: &PkiDir,
    signed: pb::SignedCommand,
) -> Result<client::Collected, client::ClientError> {
    let tls = Arc::new(
        aiops_certs::tls::client_config(
            &pki.ca_cert(),
            &pki.controller_cert(),
            &pki.controller_key(),
        )
        .expect("tls"),
    );
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("rt");
    rt.block_on(async {
        let ch = client::connect(addr, "srv1", tls, Duration::from_secs(5)).await?;
        client::execute(ch, signed, Duration::from_secs(20)).await
    })
}

/// Every path under the root except the ones that change by merely running a system.
fn file_list(c: &Container) -> Vec<String> {
    let out = c.sh(
        "find / -xdev \\( -path /proc -o -path /sys -o -path /dev -o -path /run -o -path /tmp -o -path /var/tmp \
         -o -path /var/log -o -path /var/lib/dpkg -o -path /var/cache -o -path /var/lib/systemd -o -path /var/lib/nginx \
         -o -path /etc/ld.so.cache -o -path /root \\) -prune -o -print | sort",
    );
    out.lines()
        .filter(|l| !l.ends_with('-'))
        .map(str::to_string)
        .collect()
}

#[test]
fn agent_deb_on_a_real_systemd_target() {
    let t0 = Instant::now();
    let (ip, port) = loopback_endpoint(1);
    let (nginx_ip, nginx_port) = loopback_endpoint(2);
    let address = format!("{ip}:{port}");
    let (agent_deb, _) = debs().clone();
    // nginx inside shares the host's network: give it a loopback port of its own.
    let c = Container::boot("agent", |root| {
        aiops_e2e::nspawn::nginx_on(root, &nginx_ip, nginx_port)
    });
    eprintln!(
        "packages built and {} booted after {:?}",
        c.name,
        t0.elapsed()
    );
    let before = file_list(&c);

    // Install the package for real; it must not start an unenrolled agent.
    c.copy_in(&agent_deb, "/root/aiops-agent.deb");
    c.sh("dpkg -i /root/aiops-agent.deb && rm /root/aiops-agent.deb");
    assert_eq!(
        c.sh("id -u aiops; id -gn aiops; getent passwd aiops | cut -d: -f7")
            .lines()
            .collect::<Vec<_>>()[1..],
        ["aiops", "/usr/sbin/nologin"]
    );
    assert_eq!(
        c.sh("stat -c '%U:%G %a %n' /etc/aiops-agent /etc/aiops-agent/pki /etc/aiops-agent/agent.yml /etc/aiops-agent/policy.yml /var/lib/aiops-agent /var/log/aiops-agent /etc/sudoers.d/aiops-agent"),
        "root:aiops 750 /etc/aiops-agent\nroot:aiops 750 /etc/aiops-agent/pki\nroot:aiops 640 /etc/aiops-agent/agent.yml\nroot:aiops 640 /etc/aiops-agent/policy.yml\naiops:aiops 700 /var/lib/aiops-agent\naiops:aiops-audit 2750 /var/log/aiops-agent\nroot:root 440 /etc/sudoers.d/aiops-agent"
    );
    c.sh("visudo -cf /etc/sudoers.d/aiops-agent");
    assert_eq!(
        c.sh("dpkg-query -W -f='${Conffiles}' aiops-agent | awk '{print $1}'"),
        "/etc/aiops-agent/agent.yml\n/etc/aiops-agent/policy.yml"
    );
    assert_eq!(c.sh("systemctl is-enabled aiops-agent"), "enabled");
    c.sh("systemctl start aiops-agent");
    assert_eq!(
        String::from_utf8_lossy(&c.exec(&["systemctl", "is-active", "aiops-agent"]).stdout).trim(),
        "inactive",
        "an unenrolled agent must not run"
    );
    assert!(
        std::net::TcpStream::connect_timeout(&address.parse().unwrap(), Duration::from_millis(300))
            .is_err()
    );

    // Enroll with a bundle issued by the controller outside, through the setup verb.
    let ctl = Controller::new("srv1", &address);
    let bundle = ctl.dir().join("srv1.bundle");
    let made = ctl.ok(&[
        "certs",
        "bundle",
        "srv1",
        "--address",
        &address,
        "--out",
        bundle.to_str().unwrap(),
    ]);
    assert_eq!(made["listen"], address.as_str());
    use std::os::unix::fs::PermissionsExt;
    assert_eq!(
        std::fs::metadata(&bundle).unwrap().permissions().mode() & 0o777,
        0o600
    );
    c.copy_in(&bundle, "/root/srv1.bundle");
    c.sh("/usr/share/aiops-agent/setup-aiops.sh srv1 /root/srv1.bundle");
    assert_eq!(
        c.sh("test -e /root/srv1.bundle && echo kept || echo deleted"),
        "deleted"
    );
    assert_eq!(
        c.sh("stat -c '%U:%G %a %n' /etc/aiops-agent/pki/agent.key /etc/aiops-agent/pki/agent.pem /etc/aiops-agent/pki/ca.pem /etc/aiops-agent/pki/controller-signing.pub /etc/aiops-agent/pki/approver-1.pub"),
        "root:aiops 640 /etc/aiops-agent/pki/agent.key\nroot:aiops 644 /etc/aiops-agent/pki/agent.pem\nroot:aiops 644 /etc/aiops-agent/pki/ca.pem\nroot:aiops 644 /etc/aiops-agent/pki/controller-signing.pub\nroot:aiops 644 /etc/aiops-agent/pki/approver-1.pub"
    );
    assert_eq!(c.sh("systemctl is-active aiops-agent"), "active");
    // Started by systemd as `aiops`, with no_new_privs off (sudo needs it) and hardening on.
    let agent_pid = c.main_pid("aiops-agent");
    let status = c.sh(&format!("cat /proc/{agent_pid}/status"));
    let uid_line = status
        .lines()
        .find(|l| l.starts_with("Uid:"))
        .unwrap()
        .to_string();
    let aiops_uid = c.sh("id -u aiops");
    assert!(
        uid_line.split_whitespace().skip(1).all(|u| u == aiops_uid),
        "{uid_line}"
    );
    assert!(
        status.contains("NoNewPrivs:\t0"),
        "sudo cannot work with no_new_privs set"
    );
    let props = c.sh("systemctl show -p User -p ProtectSystem -p ProtectHome -p PrivateTmp -p Restart -p NoNewPrivileges aiops-agent");
    for want in [
        "User=aiops",
        "ProtectSystem=full",
        "ProtectHome=read-only",
        "PrivateTmp=yes",
        "Restart=on-failure",
        "NoNewPrivileges=no",
    ] {
        assert!(props.lines().any(|l| l == want), "{want} not in {props}");
    }

    // `active` means started (Type=exec), not yet listening: wait (up to
    // 20 s) for the port before the first request.
    let t = Instant::now();
    while std::net::TcpStream::connect_timeout(
        &address.parse().unwrap(),
        Duration::from_millis(300),
    )
    .is_err()
        && t.elapsed() < Duration::from_secs(20)
    {
        std::thread::sleep(Duration::from_millis(100));
    }
    // The validation request, from outside, runs inside the container.
    let a = ctl.run("srv1", "hostname");
    assert_eq!(a["status"], "executed", "{a}");
    assert_eq!(a["stdout"], format!("{}\n", c.name));
    let a = ctl.run("srv1", "systemctl status nginx");
    assert_eq!(a["status"], "executed", "{a}");
    assert_eq!(a["risk"], "auto_allowed");
    assert_eq!(a["exit_code"], 0, "{a}");
    assert!(
        a["stdout"].as_str().unwrap().contains("active (running)"),
        "{a}"
    );

    // A restart happens only after approval, through sudo and the drop-in.
    let nginx_before = c.main_pid("nginx");
    let a = ctl.run("srv1", "sudo systemctl restart nginx");
    assert_eq!(a["status"], "approval_requested", "{a}");
    std::thread::sleep(Duration::from_millis(500));
    assert_eq!(
        c.main_pid("nginx"),
        nginx_before,
        "nothing may run before approval"
    );
    let a = ctl.approve();
    assert_eq!(a["status"], "executed", "{a}");
    assert_eq!(a["exit_code"], 0, "{a}");
    assert_eq!(a["stderr"], "", "{a}");
    let nginx_after = c.main_pid("nginx");
    assert!(
        nginx_after != nginx_before && nginx_after != 0,
        "nginx was not restarted ({nginx_before} -> {nginx_after})"
    );
    let agent_audit: Vec<Value> = c
        .sh("cat /var/log/aiops-agent/audit.jsonl")
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert!(
        agent_audit.iter().any(|r| r["event"] == "accepted"
            && r["command"] == "sudo systemctl restart nginx"
            && r["decision"] == "DECISION_APPROVED"),
        "{agent_audit:?}"
    );

    // A privileged read the policy auto-allows runs as root through the executor, which
    // applies the same policy: no second allowlist to drift ("auto-allowed but refused").
    let a = ctl.run("srv1", "sudo ls /root");
    assert_eq!(a["status"], "executed", "{a}");
    assert_eq!(a["risk"], "auto_allowed");
    assert_eq!(a["exit_code"], 0, "{a}");
    assert_eq!(a["stderr"], "", "{a}");

    // The replay cache survives `systemctl restart` and kill -9 (systemd restarts it).
    let signed = signed_hostname(&ctl.pki(), "srv1");
    let first = send(&address, &ctl.pki(), signed.clone()).expect("first send runs");
    assert_eq!(
        String::from_utf8_lossy(&first.stdout_head),
        format!("{}\n", c.name)
    );
    let replayed = |what: &str| {
        let e = send(&address, &ctl.pki(), signed.clone()).expect_err("a replay must be refused");
        assert_eq!(e.reason(), Some("replayed"), "{what}: {e}");
    };
    replayed("same process");
    c.sh("systemctl restart aiops-agent");
    wait_until("agent back after restart", 20, || {
        c.exec(&["systemctl", "is-active", "--quiet", "aiops-agent"])
            .status
            .success()
            && std::net::TcpStream::connect(&address).is_ok()
    });
    replayed("after systemctl restart");
    let old = c.main_pid("aiops-agent");
    c.sh(&format!("kill -9 {old}"));
    wait_until("systemd to restart the killed agent", 30, || {
        let p = c.main_pid("aiops-agent");
        p != 0 && p != old && std::net::TcpStream::connect(&address).is_ok()
    });
    assert!(
        c.sh("systemctl show -p NRestarts --value aiops-agent")
            .parse::<u32>()
            .unwrap()
            >= 1
    );
    replayed("after kill -9");
    let a = ctl.run("srv1", "hostname");
    assert_eq!(a["status"], "executed", "fresh requests still run: {a}");

    // targets check: Describe and health.
    let check = ctl.ok(&["targets", "check", "--json"]);
    assert_eq!(check[0]["reachable"], true, "{check}");
    assert_eq!(check[0]["health"], "SERVING", "{check}");
    assert_eq!(check[0]["name"], "srv1");
    assert!(
        check[0]["cert_days_left"].as_i64().unwrap() >= 364,
        "{check}"
    );
    assert!(
        check[0]["policy_digest"]
            .as_str()
            .unwrap()
            .starts_with("sha256:")
    );
    let audit = read_jsonl(&ctl.dir().join("audit.jsonl"));
    assert!(!audit.is_empty());

    // dpkg -r: no agent, no privilege, no unit; config stays (dpkg semantics).
    c.sh("dpkg -r aiops-agent");
    assert!(
        !c.exec(&["systemctl", "is-active", "--quiet", "aiops-agent"])
            .status
            .success()
    );
    assert!(
        std::net::TcpStream::connect_timeout(&address.parse().unwrap(), Duration::from_millis(300))
            .is_err(),
        "agent still listening"
    );
    assert_eq!(c.sh("ls /etc/sudoers.d"), "README");
    assert_eq!(c.sh("pgrep -u aiops | wc -l"), "0");
    let sudo_l = c.exec(&["sudo", "-l", "-U", "aiops"]);
    assert!(
        String::from_utf8_lossy(&sudo_l.stdout).contains("not allowed to run sudo"),
        "{}",
        text(&sudo_l)
    );
    c.sh("test ! -e /usr/bin/aiops-agent && test ! -e /lib/systemd/system/aiops-agent.service && test ! -e /etc/systemd/system/multi-user.target.wants/aiops-agent.service");
    c.sh("test -e /etc/aiops-agent/agent.yml");

    // dpkg --purge: nothing left, not even the user.
    c.sh("dpkg --purge aiops-agent");
    assert!(
        !c.exec(&["getent", "passwd", "aiops"]).status.success(),
        "user aiops left behind"
    );
    assert!(
        !c.exec(&["getent", "group", "aiops"]).status.success(),
        "group aiops left behind"
    );
    c.sh("test ! -e /etc/aiops-agent && test ! -e /var/lib/aiops-agent && test ! -e /var/log/aiops-agent");
    let after = file_list(&c);
    let added: Vec<&String> = after.iter().filter(|p| !before.contains(p)).collect();
    let removed: Vec<&String> = before.iter().filter(|p| !after.contains(p)).collect();
    assert!(
        added.is_empty() && removed.is_empty(),
        "purge left changes: added {added:?}, removed {removed:?}"
    );
    eprintln!("agent_deb_on_a_real_systemd_target: {:?}", t0.elapsed());
}

/// The controller package on a real systemd host: accounts, sudoers for `hermes`, the
/// setup verbs, `update-aiops` leaving config, keys, users and sudoers byte-identical,
/// and a purge that leaves the host as it was.
#[test]
fn controller_deb_setup_verbs_and_update_aiops() {
    let t0 = Instant::now();
    let (_, controller_deb) = debs().clone();
    let c = Container::boot("ctl", |_| {});
    let before = file_list(&c);
    c.copy_in(&controller_deb, "/root/aiops-controller.deb");
    c.sh("dpkg -i /root/aiops-controller.deb");
    c.sh("visudo -cf /etc/sudoers.d/aiops-controller && test -x /opt/aiops/bin/aiops");
    assert_eq!(
        c.sh("readlink /opt/aiops/bin/run_action; readlink /opt/aiops/run_action"),
        "aiops\nbin/aiops"
    );
    assert_eq!(
        c.sh("stat -c '%U:%G %a %n' /opt/aiops/config.yml /opt/aiops/pki /opt/aiops/runtime /opt/aiops/approver /opt/aiops/audit.jsonl"),
        "root:aiopsexec 644 /opt/aiops/config.yml\naiopsexec:aiopsexec 711 /opt/aiops/pki\naiopsexec:aiops-approvers 2770 /opt/aiops/runtime\naiops-approver:aiops-approvers 700 /opt/aiops/approver\naiopsexec:aiops-approvers 660 /opt/aiops/audit.jsonl"
    );
    c.sh("test -n \"$(ls /opt/aiops/knowledge)\"");

    // The verbs.
    let setup = "/opt/aiops/bin/setup-aiops.sh";
    c.sh(&format!("{setup} prepare-hermes-host"));
    c.sh("id hermes && test -d /home/hermes/.hermes && test -e /var/lib/systemd/linger/hermes");
    let (ip, port) = loopback_endpoint(3);
    let out = c.sh(&format!("{setup} hermes srv1 {ip}:{port}"));
    assert!(out.contains("/opt/aiops/pki/bundles/srv1.bundle"), "{out}");
    assert_eq!(c.sh("stat -c '%U %a' /opt/aiops/pki/bundles/srv1.bundle /opt/aiops/pki/signing.key /opt/aiops/approver/approver.key"), "aiopsexec 600\naiopsexec 600\naiops-approver 600");
    assert!(
        c.sh("grep -A1 'srv1:' /opt/aiops/config.yml")
            .contains(&format!("{ip}:{port}"))
    );
    let bootstrap = c.sh(&format!("{setup} print-bootstrap"));
    assert!(!bootstrap.is_empty());

    // hermes runs exactly the controller as aiopsexec, and nothing else.
    let run = c.exec(&["runuser", "-u", "hermes", "--", "sh", "-c", "echo '{\"target\":\"nope\",\"command\":\"hostname\",\"requester\":\"hermes\"}' | sudo -n -u aiopsexec /opt/aiops/bin/aiops run"]);
    let answer: Value =
        serde_json::from_slice(&run.stdout).unwrap_or_else(|_| panic!("{}", text(&run)));
    assert_eq!(answer["error"]["code"], "unknown_target", "{answer}");
    for denied in [
        "sudo -n -u aiopsexec /opt/aiops/bin/aiops approvals approve",
        "sudo -n -u aiopsexec /opt/aiops/bin/aiops --config /tmp/x.yml run",
        "sudo -n -u aiopsexec /bin/sh -c id",
        "sudo -n /opt/aiops/bin/aiops run",
    ] {
        let out = c.exec(&["runuser", "-u", "hermes", "--", "sh", "-c", denied]);
        assert!(
            !out.status.success(),
            "hermes must not run {denied:?}: {}",
            text(&out)
        );
        assert!(
            String::from_utf8_lossy(&out.stderr).contains("sudo:"),
            "{denied}: {}",
            text(&out)
        );
    }

    // update-aiops: binaries and knowledge replaced; config, keys, users, sudoers untouched.
    let fingerprint = "sha256sum /opt/aiops/config.yml /opt/aiops/pki/* /opt/aiops/pki/bundles/* /opt/aiops/approver/* /etc/sudoers.d/* /etc/passwd /etc/group /etc/shadow /etc/gshadow; stat -c '%U:%G %a %n' /opt/aiops/config.yml /opt/aiops/pki /opt/aiops/pki/* /opt/aiops/approver /opt/aiops/approver/* /etc/sudoers.d/*";
    let fp_before = c.sh(fingerprint);
    let bin_inode = c.sh("stat -c %i /opt/aiops/bin/aiops");
    // A new release in a directory: the binary and a knowledge tree with a new file.
    c.sh("mkdir -p /root/rel/knowledge && cp /opt/aiops/bin/aiops /root/rel/aiops && cp -r /opt/aiops/knowledge/. /root/rel/knowledge/ && echo new > /root/rel/knowledge/NEW-RUNBOOK.md");
    c.sh(&format!("{setup} update-aiops /root/rel"));
    assert_eq!(c.sh("cat /opt/aiops/knowledge/NEW-RUNBOOK.md"), "new");
    assert_ne!(
        c.sh("stat -c %i /opt/aiops/bin/aiops"),
        bin_inode,
        "the binary was not replaced"
    );
    assert_eq!(
        c.sh(fingerprint),
        fp_before,
        "update-aiops changed config, keys, users or sudoers"
    );
    // And from the .deb: knowledge back to the packaged set.
    c.sh(&format!("{setup} update-aiops /root/aiops-controller.deb"));
    c.sh("test ! -e /opt/aiops/knowledge/NEW-RUNBOOK.md && /opt/aiops/bin/aiops --version");
    assert_eq!(
        c.sh(fingerprint),
        fp_before,
        "update-aiops (deb) changed config, keys, users or sudoers"
    );

    // Purge: the package's accounts, files and sudoers go; `hermes` (made by the verb) stays.
    c.sh("dpkg --purge aiops-controller && rm -f /root/aiops-controller.deb && rm -rf /root/rel");
    for u in ["aiopsexec", "aiops-approver"] {
        assert!(
            !c.exec(&["getent", "passwd", u]).status.success(),
            "{u} left behind"
        );
    }
    c.sh("test ! -e /opt/aiops && test ! -e /etc/sudoers.d/aiops-controller");
    c.sh("loginctl disable-linger hermes 2>/dev/null || rm -f /var/lib/systemd/linger/hermes; userdel -r hermes");
    let mut after = file_list(&c);
    // dpkg removes a directory the purged package listed once it is empty, after postrm:
    // an empty /opt that no package owns goes with the last package using it.
    if !before.iter().any(|p| p.starts_with("/opt/")) && !after.iter().any(|p| p == "/opt") {
        after.push("/opt".into());
        after.sort();
    }
    let added: Vec<&String> = after.iter().filter(|p| !before.contains(p)).collect();
    let removed: Vec<&String> = before.iter().filter(|p| !after.contains(p)).collect();
    assert!(
        added.is_empty() && removed.is_empty(),
        "purge left changes: added {added:?}, removed {removed:?}"
    );
    eprintln!(
        "controller_deb_setup_verbs_and_update_aiops: {:?}",
        t0.elapsed()
    );
}
