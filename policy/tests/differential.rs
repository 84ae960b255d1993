//! For every command the engine auto-allows, the argv it derives equals the
//! argv real bash would execute.

mod common;

use aiops_policy::{Connector, Pipeline, Plan, Policy, Risk, Stage};

fn corpus_commands() -> Vec<String> {
    let mut out = Vec::new();
    for name in ["policy_cases.tsv", "extra_cases.tsv"] {
        let path = format!("{}/tests/corpus/{name}", env!("CARGO_MANIFEST_DIR"));
        for l in std::fs::read_to_string(path).unwrap().lines() {
            let mut it = l.splitn(3, '\t');
            let (Some(c), Some(_), why) = (it.next(), it.next(), it.next().unwrap_or("")) else {
                continue;
            };
            out.push(if why.starts_with("[NL]") {
                c.replace("\\n", "\n")
            } else {
                c.to_string()
            });
        }
    }
    out
}

/// Extra quoting-heavy commands that should be auto and must match bash.
const TRICKY: &[&str] = &[
    "echo a'b c'\"d e\"f",
    "echo 'a\\b' \"a\\b\" a\\\\b",
    "echo \"a\\\"b\" 'x\"y'",
    "echo \"\" '' x",
    "echo a \\\n c",
    "echo \"line1\nline2\"",
    "echo 'it''s' \"q\\'\"",
    "echo -- -n -e",
    "ls -la /var/log 2>/dev/null | grep -v total | sort -rn",
    "grep -e a -e 'b c' /etc/hosts && wc -l /etc/hosts || echo none",
    "echo a#b c#",
    "echo é ü 日本",
    "sudo -n journalctl -u nginx -n 5 --no-pager",
    "sudo -- df -h",
    "timeout 5 ls -la",
    "echo a; echo b\necho c",
    "echo x=1 y==2 =",
    "echo ! !x x!",
    "echo %s ^x @y :z ,w +v",
    "cd /tmp && ls",
];

#[test]
fn auto_allowed_argv_equals_bash() {
    let p = Policy::builtin();
    let mut checked = 0;
    let mut failures = Vec::new();
    for cmd in corpus_commands()
        .iter()
        .map(String::as_str)
        .chain(TRICKY.iter().copied())
    {
        let d = p.classify(cmd);
        if d.risk != Risk::AutoAllowed {
            continue;
        }
        if let Err(e) = common::compare(cmd, &d.plan) {
            failures.push(e);
        }
        checked += 1;
    }
    eprintln!("differential: {checked} auto-allowed commands compared with bash");
    assert!(checked > 100, "only {checked} auto-allowed commands");
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

#[test]
fn tricky_commands_are_auto() {
    let p = Policy::builtin();
    for cmd in TRICKY {
        let d = p.classify(cmd);
        assert_eq!(d.risk, Risk::AutoAllowed, "{cmd:?}: {:?}", d.reasons);
    }
}

/// The harness itself must be able to fail: a wrong plan is detected.
#[test]
fn harness_detects_a_wrong_plan() {
    let wrong = Plan {
        pipelines: vec![Pipeline {
            connector: Connector::Seq,
            stages: vec![Stage {
                argv: vec!["echo".into(), "ab".into(), "c".into()],
                privileged: false,
                redirects: vec![],
            }],
        }],
        shell: false,
    };
    assert!(common::compare("echo a'b c'", &wrong).is_err());
    assert!(common::compare("echo ab c", &wrong).is_ok());
    // A program bash runs that the plan does not name is caught too.
    assert!(common::compare("echo ab c; id", &wrong).is_err());
}
