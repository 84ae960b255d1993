//! Glob operands without a shell or an approval: the controller judges a template, the
//! agent (and, for privileged stages, the root executor) expands the globs against the
//! real file system and classifies the expanded argv, sensitive paths included.

use aiops_e2e::{Lab, request};

fn dir_with_files(lab: &Lab) -> String {
    let d = lab.tmp.path().join("deploy");
    std::fs::create_dir_all(&d).unwrap();
    for (name, text) in [
        ("a.sh", "echo a\n"),
        ("b.sh", "echo b\necho b\n"),
        ("c.txt", "c\n"),
    ] {
        std::fs::write(d.join(name), text).unwrap();
    }
    d.display().to_string()
}

#[test]
fn glob_operands_run_expanded_without_a_shell_or_an_approval() {
    let lab = Lab::start(1, "lab");
    let d = dir_with_files(&lab);
    let (a, code) = lab.run(&request("srv1", &format!("wc -l {d}/*.sh")));
    assert_eq!(code, 0, "{a}");
    assert_eq!(a["status"], "executed", "{a}");
    assert_eq!(a["risk"], "auto_allowed", "{a}");
    let out = a["stdout"].as_str().unwrap();
    assert!(out.contains(&format!("1 {d}/a.sh")), "{out}");
    assert!(out.contains(&format!("2 {d}/b.sh")), "{out}");
    assert!(!out.contains("c.txt"), "{out}");
    // A privileged read with a glob goes through the executor, which expands it itself:
    // in a directory only root can change (the lab's own is under /tmp, which every
    // account can write, so a privileged read there needs a human).
    let root_dir = format!("/run/aiops-globs-{}", std::process::id());
    std::fs::create_dir_all(&root_dir).unwrap();
    for f in ["a.sh", "b.sh"] {
        std::fs::copy(format!("{d}/{f}"), format!("{root_dir}/{f}")).unwrap();
    }
    let (a, _) = lab.run(&request("srv1", &format!("sudo wc -l {root_dir}/[ab].sh")));
    let _ = std::fs::remove_dir_all(&root_dir);
    assert_eq!(a["status"], "executed", "{a}");
    assert!(a["stdout"].as_str().unwrap().contains("3 total"), "{a}");
    let (a, _) = lab.run(&request("srv1", &format!("sudo wc -l {d}/[ab].sh")));
    assert_eq!(a["error"]["code"], "agent_refused", "{a}");
    assert!(
        a["error"]["message"]
            .as_str()
            .unwrap()
            .starts_with("policy_stricter"),
        "{a}"
    );
}

#[test]
fn a_relative_glob_after_a_cd_is_not_expanded_against_the_root_directory() {
    let lab = Lab::start(1, "lab");
    let d = dir_with_files(&lab);
    // `*` after `cd D` means D's names; expanding it against `/` ran `ls bin boot ...` in D.
    let (a, code) = lab.run(&request("srv1", &format!("cd {d} && ls *")));
    assert_eq!(code, 1, "{a}");
    assert_eq!(a["error"]["code"], "agent_refused", "{a}");
    assert!(
        a["error"]["message"]
            .as_str()
            .unwrap()
            .starts_with("policy_stricter"),
        "{a}"
    );
    let audit = lab.agent_audit("srv1");
    assert_eq!(audit.last().unwrap()["reason"], "policy_stricter");
    assert!(!audit.iter().any(|r| r["event"] == "executed"), "it ran");
    // Without a `cd` a relative glob is relative to `/`, where every command starts.
    let (a, _) = lab.run(&request("srv1", "ls -d et*"));
    assert_eq!(a["status"], "executed", "{a}");
    assert_eq!(a["stdout"], "etc\n", "{a}");
}

#[test]
fn a_glob_that_reaches_a_sensitive_file_is_refused_and_nothing_runs() {
    let lab = Lab::start(1, "lab");
    let d = dir_with_files(&lab);
    std::fs::write(format!("{d}/server.key"), "SECRET-KEY-MARKER\n").unwrap();
    let (a, code) = lab.run(&request("srv1", &format!("cat {d}/*")));
    assert_eq!(code, 1, "{a}");
    assert_eq!(a["error"]["code"], "agent_refused", "{a}");
    assert!(
        a["error"]["message"]
            .as_str()
            .unwrap()
            .starts_with("policy_stricter"),
        "{a}"
    );
    assert!(!a.to_string().contains("SECRET-KEY-MARKER"));
    let last = lab.agent_audit("srv1").last().cloned().unwrap();
    assert_eq!(last["event"], "refused", "{last}");
    assert_eq!(last["reason"], "policy_stricter", "{last}");
    assert!(
        !lab.agent_audit("srv1")
            .iter()
            .any(|r| r["event"] == "executed")
    );
}
