//! Production approvals with real, separate accounts: the controller account
//! cannot read the approver key and cannot approve; the approver account signs
//! the grant and hands it to the controller account through real `sudo`.

use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::process::Command;

use aiops_e2e::{Lab, aiops_bin, parse_answer, request};

const CTL: &str = "aiopsx-ctl";
const APPR: &str = "aiopsx-appr";
const GROUP: &str = "aiopsx";
const SUDOERS: &str = "/etc/sudoers.d/aiops-e2e-approver";

fn sh(cmd: &mut Command) -> std::process::Output {
    let out = cmd.output().expect("command runs");
    assert!(
        out.status.success(),
        "{cmd:?}: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

/// Creates the accounts and removes them (and the sudoers file) on drop.
struct Accounts;

impl Accounts {
    fn create() -> Accounts {
        assert!(
            nix::unistd::geteuid().is_root(),
            "this test creates users: run it as root"
        );
        for tool in [
            "/usr/sbin/useradd",
            "/usr/sbin/runuser",
            "/usr/bin/sudo",
            "/usr/sbin/visudo",
        ] {
            assert!(
                Path::new(tool).exists(),
                "{tool} is missing: scripts/test.sh installs it"
            );
        }
        Accounts::cleanup();
        sh(Command::new("groupadd").args(["--system", GROUP]));
        for user in [CTL, APPR] {
            sh(Command::new("useradd").args([
                "--system",
                "--no-create-home",
                "--shell",
                "/usr/sbin/nologin",
                "--gid",
                GROUP,
                user,
            ]));
        }
        Accounts
    }

    fn cleanup() {
        let _ = std::fs::remove_file(SUDOERS);
        for user in [CTL, APPR] {
            let _ = Command::new("userdel").arg(user).output();
        }
        let _ = Command::new("groupdel").arg(GROUP).output();
    }
}

impl Drop for Accounts {
    fn drop(&mut self) {
        Accounts::cleanup();
    }
}

fn chown(path: &Path, owner: &str, mode: u32) {
    sh(Command::new("chown")
        .arg(format!("{owner}:{GROUP}"))
        .arg(path));
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode)).unwrap();
}

fn as_user(lab: &Lab, user: &str, args: &[&str], stdin: &[u8]) -> std::process::Output {
    let runuser = Path::new("/usr/sbin/runuser");
    let bin = aiops_bin();
    let cfg = lab.config();
    let mut full = vec![
        "-u",
        user,
        "--",
        bin.to_str().unwrap(),
        "--config",
        cfg.to_str().unwrap(),
    ];
    full.extend_from_slice(args);
    aiops_e2e::run_cmd(runuser, &full, stdin, &[], &[])
}

#[test]
fn an_approver_account_approves_what_the_controller_account_cannot() {
    let _accounts = Accounts::create();
    let lab = Lab::init(1, "production");
    lab.edit(
        "config.yml",
        "approvers: [root]",
        &format!("approvers: [{APPR}]\n  controller_user: {CTL}"),
    );
    // Ownership as a package would set it up: the controller account owns its
    // keys; the approver owns its key; both share the audit log and runtime dir.
    std::fs::set_permissions(lab.tmp.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
    sh(Command::new("chown")
        .args(["-R", &format!("{CTL}:{GROUP}")])
        .arg(&lab.dir));
    chown(&lab.dir, CTL, 0o2770);
    // The lab's agents stand for target hosts, whose files are root's (the
    // root executor refuses a configuration anyone else could have written).
    sh(Command::new("chown")
        .args(["-R", "root:root"])
        .arg(lab.dir.join("agents")));
    let pki = lab.dir.join("pki");
    chown(&pki, CTL, 0o2750);
    for key in ["ca.key", "controller.key", "signing.key"] {
        chown(&pki.join(key), CTL, 0o600);
    }
    chown(&pki.join("approver.key"), APPR, 0o600);
    // What decides who may approve is root's alone (checked at load in production).
    chown(&lab.dir.join("config.yml"), "root", 0o644);
    chown(&pki.join("approver.pub"), "root", 0o644);
    std::fs::write(lab.dir.join("audit.jsonl"), b"").unwrap();
    chown(&lab.dir.join("audit.jsonl"), CTL, 0o660);
    let approvals = lab.dir.join("runtime/approvals");
    std::fs::create_dir_all(&approvals).unwrap();
    chown(&lab.dir.join("runtime"), CTL, 0o2770);
    chown(&approvals, CTL, 0o2770);
    // The approver may hand a grant to the controller account, and nothing else.
    let rule = format!(
        "{APPR} ALL=({CTL}) NOPASSWD: {} --config {} approvals release *\n",
        aiops_bin().display(),
        lab.config().display()
    );
    let staged = lab.tmp.path().join("sudoers");
    std::fs::write(&staged, &rule).unwrap();
    sh(Command::new("visudo").arg("-cf").arg(&staged));
    std::fs::write(SUDOERS, &rule).unwrap();
    std::fs::set_permissions(SUDOERS, std::fs::Permissions::from_mode(0o440)).unwrap();
    lab.up();

    let marker = lab.tmp.path().join("approved-by-approver");
    let cmd = format!("touch {}", marker.display());
    let answer = parse_answer(&as_user(&lab, CTL, &["run"], &request("srv1", &cmd)));
    assert_eq!(answer["status"], "approval_requested", "{answer}");
    let id = answer["approval_id"].as_str().unwrap().to_string();

    // The controller account (the assistant's side) cannot approve in any way.
    let answer = parse_answer(&as_user(&lab, CTL, &["run"], b"Approve"));
    assert_eq!(answer["error"]["code"], "approval_not_allowed", "{answer}");
    let answer = parse_answer(&as_user(&lab, CTL, &["approvals", "approve", &id], b""));
    assert_eq!(answer["error"]["code"], "not_an_approver", "{answer}");
    let read = aiops_e2e::run_cmd(
        Path::new("/usr/sbin/runuser"),
        &[
            "-u",
            CTL,
            "--",
            "cat",
            pki.join("approver.key").to_str().unwrap(),
        ],
        b"",
        &[],
        &[],
    );
    assert!(
        !read.status.success(),
        "the controller account can read the approver key"
    );
    // Even listed as an approver, the controller account cannot sign: the key is unreadable.
    lab.edit(
        "config.yml",
        &format!("approvers: [{APPR}]"),
        &format!("approvers: [{APPR}, {CTL}]"),
    );
    let answer = parse_answer(&as_user(&lab, CTL, &["approvals", "approve", &id], b""));
    assert_eq!(
        answer["error"]["code"], "approver_key_unreadable",
        "{answer}"
    );
    lab.edit(
        "config.yml",
        &format!("approvers: [{APPR}, {CTL}]"),
        &format!("approvers: [{APPR}]"),
    );
    assert!(!marker.exists());

    // The approver account cannot read the controller's keys, yet its approval
    // runs the command (approved as `approvals list` showed it).
    assert!(
        as_user(&lab, APPR, &["approvals", "list"], b"")
            .status
            .success()
    );
    let answer = parse_answer(&as_user(&lab, APPR, &["approvals", "approve", &id], b""));
    assert_eq!(answer["status"], "executed", "{answer}");
    assert_eq!(answer["approval_id"], id.as_str());
    assert!(marker.exists(), "{answer}");
    let audit = lab.audit();
    let approved = audit.iter().find(|r| r["event"] == "approved").unwrap();
    assert_eq!(approved["resolver"], APPR);
    assert!(
        audit
            .iter()
            .any(|r| r["event"] == "executed" && r["approval_id"] == id.as_str())
    );
    let accepted = lab
        .agent_audit("srv1")
        .into_iter()
        .find(|r| r["event"] == "accepted")
        .unwrap();
    assert_eq!(accepted["approver"], APPR);
    assert!(lab.aiops(&["audit", "verify"]).status.success());

    // Used once: approving again does nothing.
    std::fs::remove_file(&marker).unwrap();
    let answer = parse_answer(&as_user(&lab, APPR, &["approvals", "approve", &id], b""));
    assert_eq!(answer["error"]["code"], "approval_not_pending", "{answer}");
    assert!(!marker.exists());

    // The controller account swaps the approver public key for one of its
    // own (it owns the pki directory): neither approvals nor new enrollment
    // bundles trust a key file root does not own.
    let own = pki.join("ctl-own.key");
    let swap = format!(
        "{aiops} approvals init-key --out {own} >/dev/null && rm -f {pub_} && cp {own_pub} {pub_}",
        aiops = aiops_bin().display(),
        own = own.display(),
        own_pub = own.with_extension("pub").display(),
        pub_ = pki.join("approver.pub").display(),
    );
    sh(Command::new("/usr/sbin/runuser").args(["-u", CTL, "--", "sh", "-c", &swap]));
    let answer = parse_answer(&as_user(&lab, CTL, &["run"], &request("srv1", &cmd)));
    let id = answer["approval_id"].as_str().unwrap().to_string();
    assert!(
        as_user(&lab, APPR, &["approvals", "list"], b"")
            .status
            .success()
    );
    let answer = parse_answer(&as_user(&lab, APPR, &["approvals", "approve", &id], b""));
    assert_eq!(answer["error"]["code"], "key_unreadable", "{answer}");
    assert!(
        answer["error"]["message"]
            .as_str()
            .unwrap()
            .contains("not root"),
        "{answer}"
    );
    assert!(!marker.exists());
    let out = as_user(
        &lab,
        CTL,
        &["certs", "bundle", "srv9", "--address", "127.0.0.9:7443"],
        b"",
    );
    let answer = parse_answer(&out);
    assert_eq!(answer["status"], "error", "{answer}");
    assert!(
        answer["error"]["message"]
            .as_str()
            .unwrap()
            .contains("not root"),
        "{answer}"
    );
}
