//! The assistant's knowledge (`knowledge/*.md`), compiled into the binary so
//! `aiops print-bootstrap`, `aiops hermes install` and the MCP server always
//! ship the text that matches this version of the CLI.

/// One knowledge document.
#[derive(Debug, Clone, Copy)]
pub struct Doc {
    /// File name in `knowledge/`.
    pub file: &'static str,
    /// Skill name (lowercase, hyphens).
    pub skill: &'static str,
    /// One-line description (the skill's front matter).
    pub description: &'static str,
    /// The Markdown text.
    pub text: &'static str,
}

macro_rules! doc {
    ($file:literal, $skill:literal, $description:literal) => {
        Doc {
            file: $file,
            skill: $skill,
            description: $description,
            text: include_str!(concat!("../../knowledge/", $file)),
        }
    };
}

/// The bootstrap prompt (pasted first).
pub const BOOTSTRAP: Doc = doc!(
    "HERMES_BOOTSTRAP_PROMPT.md",
    "aiops-bootstrap",
    "How the assistant works with servers: only through the aiops controller tools, read-only first, humans approve changes."
);

/// The hard rules (loaded every session).
pub const RULES: Doc = doc!(
    "AI_OPS_RULES.md",
    "aiops-rules",
    "Hard rules for server operations: never SSH or a shell, only the aiops controller, read-only first, never approve, what to do on refusal."
);

/// Every document for the assistant, in reading order (bootstrap first).
pub const DOCS: &[Doc] = &[
    BOOTSTRAP,
    RULES,
    doc!(
        "EXECUTOR_USAGE.md",
        "aiops-executor-usage",
        "The aiops run_action JSON contract: request fields, every status, every error code, examples, commands the policy auto-allows."
    ),
    doc!(
        "ENVIRONMENT.md",
        "aiops-environment",
        "The hosts (hermes gateway, srv1 targets), users, paths and how the controller reaches agents."
    ),
    doc!(
        "INCIDENT_WORKFLOW.md",
        "aiops-incident-workflow",
        "Step-by-step incident handling: scope, read-only triage, explain, request the fix for approval, verify, report."
    ),
    doc!(
        "INCIDENT_REPORT.md",
        "aiops-incident-report",
        "End of every incident: have the operator run aiops incident report (timeline, approvals, changes, digests, a hash-chain verification line) and check it against your summary."
    ),
    doc!(
        "SYSTEMD_TROUBLESHOOTING.md",
        "aiops-systemd-troubleshooting",
        "Diagnosing systemd units read-only: status codes such as 203/EXEC, crash loops, which changes need approval."
    ),
    doc!(
        "RUNBOOKS.md",
        "aiops-runbook-format",
        "How aiops runbooks list their commands (aiops-steps blocks with the risk of each command)."
    ),
    doc!(
        "RUNBOOK_NGINX_BAD_CONFIG.md",
        "aiops-runbook-nginx-bad-config",
        "Runbook: nginx down after a bad configuration change (nginx -t, remove the bad line, restart, verify)."
    ),
    doc!(
        "RUNBOOK_BROKEN_DEMO_203_EXEC.md",
        "aiops-runbook-203-exec",
        "Runbook: a systemd unit fails with status=203/EXEC because ExecStart is missing or not executable."
    ),
    doc!(
        "RUNBOOK_DISK_FULL_LOGS.md",
        "aiops-runbook-disk-full-logs",
        "Runbook: a filesystem full because of a huge log file or journal (find it, truncate or vacuum, verify)."
    ),
    doc!(
        "RUNBOOK_PORT_IN_USE.md",
        "aiops-runbook-port-in-use",
        "Runbook: a service crash-loops with Address already in use (find the port holder, stop it, restart the service)."
    ),
];

/// Human documentation for setting Hermes up (not part of the assistant's knowledge).
pub const HERMES_SETUP: &str = include_str!("../../knowledge/HERMES_SETUP.md");

/// The bootstrap prompt followed by all knowledge, ready to paste into a chat.
pub fn bootstrap_text() -> String {
    let mut out = String::new();
    out.push_str(BOOTSTRAP.text.trim_end());
    out.push_str(
        "\n\nThe documents below are your reference. Each starts with a line `=== FILE ===`.\n",
    );
    for d in DOCS.iter().skip(1) {
        out.push_str(&format!("\n=== {} ===\n\n", d.file));
        out.push_str(d.text.trim_end());
        out.push('\n');
    }
    out
}

/// Steps a runbook lists: `(risk, command)` from its `aiops-steps` blocks, in order.
pub fn runbook_steps(text: &str) -> Vec<(String, String)> {
    let mut steps = Vec::new();
    let mut inside = false;
    for line in text.lines() {
        let t = line.trim();
        if !inside {
            inside = t == "```aiops-steps";
            continue;
        }
        if t == "```" {
            inside = false;
            continue;
        }
        if t.is_empty() || t.starts_with('#') {
            continue;
        }
        let (risk, command) = t.split_once(char::is_whitespace).unwrap_or((t, ""));
        steps.push((risk.to_string(), command.trim().to_string()));
    }
    steps
}
