//! The assistant's knowledge is current: every command a runbook tells the
//! assistant to run classifies as the runbook says, every status and error
//! code the controller can print is documented, every `aiops` command the
//! documents name exists, and `aiops print-bootstrap` prints all of it.

use std::path::{Path, PathBuf};

use aiops_controller::bootstrap::{self, DOCS};
use aiops_e2e::{Lab, aiops_bin, run_cmd};
use aiops_policy::Policy;

fn knowledge_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../knowledge")
}

fn read(name: &str) -> String {
    std::fs::read_to_string(knowledge_dir().join(name))
        .unwrap_or_else(|e| panic!("knowledge/{name}: {e}"))
}

/// Values a runbook's placeholders stand for when only classifying.
fn fill(command: &str) -> String {
    command.replace("<PID>", "1234")
}

#[test]
fn required_documents_exist_and_are_compiled_in() {
    let required = [
        "AI_OPS_RULES.md",
        "EXECUTOR_USAGE.md",
        "HERMES_BOOTSTRAP_PROMPT.md",
        "INCIDENT_WORKFLOW.md",
        "SYSTEMD_TROUBLESHOOTING.md",
        "ENVIRONMENT.md",
        "RUNBOOK_NGINX_BAD_CONFIG.md",
        "RUNBOOK_BROKEN_DEMO_203_EXEC.md",
    ];
    for f in required {
        assert!(
            DOCS.iter().any(|d| d.file == f),
            "{f} is not in bootstrap::DOCS"
        );
    }
    // Every Markdown file in knowledge/ is shipped to the assistant (except the operator's setup doc),
    // and the compiled-in text is the file on disk.
    let mut on_disk: Vec<String> = std::fs::read_dir(knowledge_dir())
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| n.ends_with(".md") && n != "HERMES_SETUP.md")
        .collect();
    on_disk.sort();
    let mut compiled: Vec<String> = DOCS.iter().map(|d| d.file.to_string()).collect();
    compiled.sort();
    assert_eq!(on_disk, compiled);
    for d in DOCS {
        assert_eq!(
            d.text,
            read(d.file),
            "{} differs from the compiled-in text",
            d.file
        );
        assert!(
            d.skill.len() <= 64
                && d.skill
                    .bytes()
                    .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-'),
            "{}",
            d.skill
        );
        assert!(!d.description.is_empty() && d.description.len() <= 1024);
    }
    let runbooks = DOCS
        .iter()
        .filter(|d| d.file.starts_with("RUNBOOK_"))
        .count();
    assert!(
        runbooks >= 4,
        "the two required runbooks and at least two more"
    );
}

#[test]
fn every_runbook_step_classifies_as_the_runbook_says() {
    // The built-in policy (what a fresh controller and agent use), and the one a lab's config loads.
    let lab = Lab::init(1, "lab");
    let lab_policy = aiops_controller::config::Loaded::load(&lab.config())
        .unwrap()
        .policy;
    let policies = [("builtin", Policy::builtin()), ("lab config", lab_policy)];
    let mut checked = 0;
    for d in DOCS {
        let steps = bootstrap::runbook_steps(d.text);
        if d.file.starts_with("RUNBOOK_") {
            assert!(
                steps.len() >= 5,
                "{} lists too few steps: {steps:?}",
                d.file
            );
            assert!(
                steps.iter().any(|(r, _)| r == "auto_allowed"),
                "{}: no read-only diagnosis",
                d.file
            );
            assert!(
                steps.iter().any(|(r, _)| r == "approval_required"),
                "{}: no approved fix",
                d.file
            );
        }
        for (risk, command) in &steps {
            assert!(
                ["auto_allowed", "approval_required", "forbidden"].contains(&risk.as_str()),
                "{}: bad risk {risk:?} for {command:?}",
                d.file
            );
            assert!(!command.is_empty(), "{}: empty command", d.file);
            for (name, policy) in &policies {
                let decision = policy.classify_for(Some("srv1"), &fill(command));
                assert_eq!(
                    decision.risk.as_str(),
                    risk,
                    "{}: {command:?} is {} under the {name} policy ({:?}), the runbook says {risk}",
                    d.file,
                    decision.risk.as_str(),
                    decision.reasons
                );
            }
            checked += 1;
        }
    }
    assert!(checked >= 40, "only {checked} steps found");
    // The CLI's explain agrees with the library on a sample.
    for (command, risk) in [
        ("sudo nginx -t", "auto_allowed"),
        ("sudo systemctl restart nginx", "approval_required"),
    ] {
        let out = run_cmd(
            &aiops_bin(),
            &["policy", "explain", "--json", "--", command],
            b"",
            &[],
            &[],
        );
        let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
        assert_eq!(v["risk"], risk, "{command}");
    }
}

#[test]
fn the_step_parser_reads_what_a_runbook_means() {
    let text = "intro\n```aiops-steps\n# risk command\nauto_allowed    df -h\n\napproval_required  sudo truncate -s 0 /x\n```\n```sh\nnot a step\n```\n";
    assert_eq!(
        bootstrap::runbook_steps(text),
        vec![
            ("auto_allowed".to_string(), "df -h".to_string()),
            (
                "approval_required".to_string(),
                "sudo truncate -s 0 /x".to_string()
            ),
        ]
    );
    // A wrong risk in a runbook is caught: the classifier disagrees.
    let wrong =
        bootstrap::runbook_steps("```aiops-steps\nauto_allowed sudo systemctl restart nginx\n```");
    let d = Policy::builtin().classify(&wrong[0].1);
    assert_ne!(d.risk.as_str(), wrong[0].0);
}

/// Error codes the controller's source can produce: every `ErrorCode::X` it
/// names (the typed vocabulary), and any string literal that still starts a
/// `fail("x"`, `err("x"` or `Answer::error("x"` call. Every file below
/// `controller/src`, subdirectories included.
fn error_codes_in_source() -> Vec<String> {
    let re = string_first_args();
    let mut codes = Vec::new();
    let mut dirs = vec![Path::new(env!("CARGO_MANIFEST_DIR")).join("../controller/src")];
    while let Some(dir) = dirs.pop() {
        for e in std::fs::read_dir(dir).unwrap() {
            let path = e.unwrap().path();
            if path.is_dir() {
                dirs.push(path);
                continue;
            }
            let text = std::fs::read_to_string(&path).unwrap();
            let typed = aiops_types::ErrorCode::ALL
                .iter()
                .filter(|c| text.contains(&format!("ErrorCode::{c:?}")))
                .map(|c| c.as_str().to_string());
            for c in re(&text).into_iter().chain(typed) {
                if !codes.contains(&c) {
                    codes.push(c);
                }
            }
        }
    }
    assert!(codes.contains(&"audit_failed".to_string()), "{codes:?}");
    codes
}

/// The string literal starting the argument list of each such call.
fn string_first_args() -> impl Fn(&str) -> Vec<String> {
    |text: &str| {
        let mut out = Vec::new();
        for call in ["fail(", "err(", "Answer::error("] {
            let mut rest = text;
            while let Some(i) = rest.find(call) {
                let before = &rest[..i];
                rest = &rest[i + call.len()..];
                // `fail(` must not be the end of a longer identifier such as `audited_failure(`.
                if before
                    .chars()
                    .last()
                    .is_some_and(|c| c.is_ascii_alphanumeric() || c == '_')
                {
                    continue;
                }
                let t = rest.trim_start();
                if let Some(t) = t.strip_prefix('"')
                    && let Some(end) = t.find('"')
                {
                    let code = &t[..end];
                    if !code.is_empty() && code.bytes().all(|b| b.is_ascii_lowercase() || b == b'_')
                    {
                        out.push(code.to_string());
                    }
                }
            }
        }
        out
    }
}

#[test]
fn executor_usage_documents_every_status_and_error_code() {
    let usage = read("EXECUTOR_USAGE.md");
    for status in [
        "executed",
        "approval_requested",
        "denied",
        "forbidden",
        "rejected",
        "error",
    ] {
        assert!(
            usage.contains(&format!("| `{status}` |")),
            "status {status} is not in the statuses table"
        );
    }
    let readme =
        std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("../README.md"))
            .unwrap();
    let section = readme
        .split("Error codes:")
        .nth(1)
        .expect("README lists error codes")
        .split("\n\n")
        .next()
        .unwrap();
    let mut codes: Vec<String> = section
        .split('`')
        .skip(1)
        .step_by(2)
        .map(str::to_string)
        .collect();
    assert!(codes.len() > 20, "{codes:?}");
    codes.extend(error_codes_in_source());
    assert!(codes.contains(&"approval_not_allowed".to_string()));
    let mut missing: Vec<&String> = codes
        .iter()
        .filter(|c| !usage.contains(&format!("`{c}`")))
        .collect();
    missing.dedup();
    assert!(
        missing.is_empty(),
        "EXECUTOR_USAGE.md does not document: {missing:?}"
    );
}

#[test]
fn every_aiops_command_the_documents_name_exists() {
    let mut seen = 0;
    for d in DOCS
        .iter()
        .map(|d| (d.file, d.text))
        .chain([("HERMES_SETUP.md", bootstrap::HERMES_SETUP)])
    {
        for line in d.1.lines() {
            let line = line.trim().trim_start_matches("$ ");
            let Some(rest) = line
                .strip_prefix("aiops ")
                .or_else(|| line.split_once("/opt/aiops/bin/aiops ").map(|(_, r)| r))
            else {
                continue;
            };
            let words: Vec<&str> = rest
                .split_whitespace()
                .take_while(|w| {
                    w.chars().all(|c| c.is_ascii_lowercase() || c == '-') && !w.starts_with('-')
                })
                .take(2)
                .collect();
            if words.is_empty() {
                continue;
            }
            let mut args: Vec<&str> = words.clone();
            args.push("--help");
            let out = run_cmd(&aiops_bin(), &args, b"", &[], &[]);
            assert!(
                out.status.success(),
                "{}: `aiops {}` is not a command: {}",
                d.0,
                words.join(" "),
                String::from_utf8_lossy(&out.stderr)
            );
            seen += 1;
        }
    }
    assert!(
        seen >= 10,
        "only {seen} aiops commands found in the documents"
    );
}

#[test]
fn print_bootstrap_prints_the_prompt_then_every_document() {
    let out = run_cmd(&aiops_bin(), &["print-bootstrap"], b"", &[], &[]);
    assert!(out.status.success());
    let text = String::from_utf8(out.stdout).unwrap();
    assert!(text.starts_with(read("HERMES_BOOTSTRAP_PROMPT.md").lines().next().unwrap()));
    let mut last = 0;
    for d in DOCS.iter().skip(1) {
        let marker = format!("=== {} ===", d.file);
        let at = text
            .find(&marker)
            .unwrap_or_else(|| panic!("{} missing", d.file));
        assert!(at > last, "{} out of order", d.file);
        last = at;
        // The whole document follows its marker.
        assert!(
            text[at..].contains(d.text.trim_end()),
            "{} is not complete",
            d.file
        );
    }
    assert!(
        !text.contains("HERMES_SETUP"),
        "the operator's setup doc is not for the assistant"
    );
}
