//! Differential harness: what argv would real bash pass to each program?
//!
//! Every program name in our plan becomes a bash function that records
//! `$FUNCNAME "$@"` on fd 3 instead of running; `command_not_found_handle`
//! records anything else bash tries to run, and PATH points nowhere, so a
//! disagreement shows up as a differing record and never runs a real program.
#![allow(dead_code)]

use std::collections::BTreeSet;
use std::process::{Command, Stdio};

use aiops_policy::{Plan, Redirect};

/// Normalised argv: `sudo [-n] [--] CMD...` becomes `CMD...` (the executor form).
fn normalise(mut argv: Vec<String>) -> Vec<String> {
    if argv
        .first()
        .is_some_and(|a| a.rsplit('/').next() == Some("sudo"))
    {
        let mut i = 1;
        while i < argv.len() && matches!(argv[i].as_str(), "-n" | "--non-interactive") {
            i += 1;
        }
        if i < argv.len() && argv[i] == "--" {
            i += 1;
        }
        if i < argv.len() && !argv[i].starts_with('-') {
            argv.drain(..i);
        }
    }
    argv
}

/// The argv set our plan claims will run.
pub fn ours(plan: &Plan) -> BTreeSet<Vec<String>> {
    plan.pipelines
        .iter()
        .flat_map(|p| p.stages.iter())
        .map(|s| {
            let mut a = s.argv.clone();
            if s.privileged {
                a.insert(0, "sudo".into());
            }
            normalise(a)
        })
        .collect()
}

/// The argv set bash executes for `command` (union over "every program
/// succeeds" and "every program fails", so both sides of && / || run).
/// `None` when the plan cannot be replayed here (missing stdin file).
pub fn bash(command: &str, plan: &Plan) -> Option<BTreeSet<Vec<String>>> {
    let mut names: BTreeSet<String> = BTreeSet::new();
    for s in plan.pipelines.iter().flat_map(|p| p.stages.iter()) {
        for r in &s.redirects {
            if let Redirect::StdinFromFile(f) = r
                && !std::path::Path::new(f).exists()
            {
                return None;
            }
        }
        names.insert(s.argv[0].clone());
    }
    // The plan drops how sudo was spelled; accept every trusted spelling.
    for d in ["", "/usr/bin/", "/bin/", "/usr/sbin/", "/sbin/"] {
        names.insert(format!("{d}sudo"));
    }
    let mut out = BTreeSet::new();
    for rc in ["0", "1"] {
        let mut script = String::from(
            "rec() { local r; printf -v r '%s\\x1f' \"$@\"; printf '%s\\x1e' \"$r\" >&3; }\n\
             command_not_found_handle() { rec \"$@\"; return $RC; }\n",
        );
        for n in &names {
            // Names passed the engine's trusted-name check: [A-Za-z0-9._+-/] only.
            assert!(
                n.chars()
                    .all(|c| c.is_ascii_alphanumeric() || "._+-/".contains(c)),
                "{n:?}"
            );
            script.push_str(&format!(
                "function {n} {{ rec \"$FUNCNAME\" \"$@\"; return $RC; }}\n"
            ));
        }
        script.push_str("exec 3>&1 1>/dev/null\n");
        script.push_str(command);
        script.push('\n');
        let res = Command::new("/bin/bash")
            .args(["--noprofile", "--norc", "-c", &script])
            .env_clear()
            .env("PATH", "/nonexistent-aiops-policy-test")
            .env("RC", rc)
            .env("HOME", "/nonexistent-home")
            .stdin(Stdio::null())
            .stderr(Stdio::null())
            .output()
            .expect("run /bin/bash");
        let text = String::from_utf8_lossy(&res.stdout).to_string();
        for rec in text.split('\x1e').filter(|r| !r.is_empty()) {
            let argv: Vec<String> = rec
                .strip_suffix('\x1f')
                .unwrap_or(rec)
                .split('\x1f')
                .map(String::from)
                .collect();
            out.insert(normalise(argv));
        }
    }
    Some(out)
}

/// `Err(description)` when our plan and bash disagree.
pub fn compare(command: &str, plan: &Plan) -> Result<(), String> {
    let Some(b) = bash(command, plan) else {
        return Ok(());
    };
    let o = ours(plan);
    if o == b {
        Ok(())
    } else {
        Err(format!("{command:?}: ours {o:?} bash {b:?}"))
    }
}
