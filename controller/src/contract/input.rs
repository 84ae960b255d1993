//! The request of `aiops run` as read from stdin, and its checks: size,
//! UTF-8, the JSON shape, command hygiene, field lengths.

use aiops_types::ErrorCode;
use serde::Deserialize;
use serde_json::{Map, Value, json};

use super::answer::{Failure, fail, object};

/// Largest stdin accepted, in bytes.
pub const MAX_INPUT_BYTES: usize = 64 * 1024;
/// Longest `requester`.
pub const MAX_REQUESTER: usize = 128;
/// Longest `reason`.
pub const MAX_REASON: usize = 2048;
/// Largest `max_concurrency` (the most targets a request may name).
pub const MAX_CONCURRENCY: usize = 10_000;
/// The request as read from stdin.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RunInput {
    /// Target name, or `group:NAME`, or `label:KEY=VALUE`.
    #[serde(default)]
    pub target: String,
    /// Several targets (each a name or a `group:` / `label:` selector).
    #[serde(default)]
    pub targets: Option<Vec<String>>,
    /// Exact command text.
    pub command: String,
    /// Who asks (e.g. `hermes`, `manual`).
    pub requester: String,
    /// Why.
    #[serde(default)]
    pub reason: String,
    /// Fan-out: targets running at once [default: `defaults.max_concurrency`].
    #[serde(default)]
    pub max_concurrency: Option<usize>,
    /// Fan-out: stop starting new targets once more than this many failed.
    #[serde(default)]
    pub max_errors: Option<usize>,
    /// Fan-out: run on the first target alone, and continue only if it succeeded.
    #[serde(default)]
    pub canary: Option<bool>,
    /// Stream each target's stdout and stderr to files under
    /// `<runtime_dir>/outputs/` (cap `defaults.saved_output_cap_bytes`); the
    /// answer carries an excerpt, the files' paths and their SHA-256.
    #[serde(default)]
    pub save_output: bool,
    /// The account an approved command runs as on the target (default
    /// `root`). Anything but root needs a human's approval even for a
    /// command the policy auto-allows; the approver's grant names it.
    #[serde(default)]
    pub run_as: Option<String>,
}

/// Longest `run_as` (a Linux account name).
pub const MAX_RUN_AS: usize = 32;

/// `run_as` is a plausible account name: `[a-z_][a-z0-9_-]*` (a final `$`
/// allowed), at most [`MAX_RUN_AS`] bytes. Nothing a shell, a path or an
/// option could make something else of.
pub fn valid_account(name: &str) -> bool {
    let body = name.strip_suffix('$').unwrap_or(name);
    !body.is_empty()
        && name.len() <= MAX_RUN_AS
        && body
            .bytes()
            .next()
            .is_some_and(|b| b.is_ascii_lowercase() || b == b'_')
        && body
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_' || b == b'-')
}

impl RunInput {
    /// The account the command is to run as when approved: `""` for root.
    pub fn run_as(&self) -> &str {
        match self.run_as.as_deref() {
            None | Some("root") => "",
            Some(a) => a,
        }
    }

    /// How the request named its targets, for answers and audit records.
    pub fn target_spec(&self) -> String {
        match &self.targets {
            Some(list) => list.join(","),
            None => self.target.clone(),
        }
    }
}

/// Parses and checks stdin; never panics on any bytes.
pub fn parse_input(input: &[u8]) -> Result<RunInput, Failure> {
    if input.len() > MAX_INPUT_BYTES {
        return Err(fail(
            ErrorCode::InputTooLarge,
            format!("request is larger than {MAX_INPUT_BYTES} bytes"),
        ));
    }
    let text = std::str::from_utf8(input)
        .map_err(|e| fail(ErrorCode::InvalidUtf8, format!("request is not UTF-8: {e}")))?;
    let req: RunInput = serde_json::from_str(text).map_err(|e| {
        fail(
            ErrorCode::InvalidJson,
            format!("expected {{\"target\",\"command\",\"requester\",\"reason\"}}: {e}"),
        )
    })?;
    check(req)
}

/// The checks of a request that is already a [`RunInput`] (from stdin, or
/// built by `aiops mcp` from its tool arguments): command hygiene, field
/// lengths and characters, the target selection.
pub fn check(req: RunInput) -> Result<RunInput, Failure> {
    if let Err(why) = aiops_types::CommandText::new(req.command.as_str()) {
        return Err(fail(ErrorCode::InvalidCommand, why));
    }
    for (field, value, max) in [
        ("requester", &req.requester, MAX_REQUESTER),
        ("reason", &req.reason, MAX_REASON),
    ] {
        if value.len() > max {
            return Err(fail(
                ErrorCode::InvalidField,
                format!("{field} is longer than {max} bytes"),
            ));
        }
        // What the approver reads must be what is stored and signed: no
        // control, bidi, zero-width or line-separator characters.
        if let Some(why) = aiops_types::text_hygiene(field, value) {
            return Err(fail(ErrorCode::InvalidField, why));
        }
    }
    if let Some(a) = &req.run_as
        && !valid_account(a)
    {
        return Err(fail(
            ErrorCode::InvalidField,
            format!(
                "run_as must be an account name ([a-z_][a-z0-9_-]*, at most {MAX_RUN_AS} bytes)"
            ),
        ));
    }
    if req.requester.trim().is_empty() {
        return Err(fail(ErrorCode::InvalidField, "requester is empty"));
    }
    match (&req.targets, req.target.is_empty()) {
        (None, true) => {
            return Err(fail(
                ErrorCode::InvalidField,
                "target (or targets) is required",
            ));
        }
        (Some(_), false) => {
            return Err(fail(
                ErrorCode::InvalidField,
                "give either target or targets, not both",
            ));
        }
        (Some(list), true) if list.is_empty() || list.len() > 10_000 => {
            return Err(fail(
                ErrorCode::InvalidField,
                "targets must name 1 to 10000 targets",
            ));
        }
        _ => {}
    }
    if req
        .max_concurrency
        .is_some_and(|n| !(1..=MAX_CONCURRENCY).contains(&n))
    {
        return Err(fail(
            ErrorCode::InvalidField,
            format!("max_concurrency must be 1..={MAX_CONCURRENCY}"),
        ));
    }
    if req.max_errors.is_some_and(|n| n > MAX_CONCURRENCY) {
        return Err(fail(
            ErrorCode::InvalidField,
            format!("max_errors must be 0..={MAX_CONCURRENCY}"),
        ));
    }
    Ok(req)
}

/// A safe description of raw input for the audit log (never the bytes themselves).
pub fn input_summary(input: &[u8]) -> Map<String, Value> {
    let preview: String = String::from_utf8_lossy(&input[..input.len().min(200)])
        .chars()
        .map(|c| if c.is_control() { '\u{FFFD}' } else { c })
        .collect();
    object(json!({
        "input_bytes": input.len(),
        "input_sha256": aiops_sys::sha256_hex(input),
        "input_preview": preview,
    }))
}
