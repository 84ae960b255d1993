//! The policy file: YAML, unknown keys rejected, errors naming file and line.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

/// Lab mode keeps the seed-era habits; production mode is strict.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Mode {
    /// Local lab: unknown commands need approval, `Approve` on stdin works.
    #[default]
    Lab,
    /// Production: approvals only from an approver identity.
    Production,
}

/// What happens to a command no rule covers.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum UnknownDefault {
    /// Ask a human.
    #[default]
    ApprovalRequired,
    /// Refuse outright.
    Reject,
}

/// The policy file as written.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PolicyFile {
    /// Lab or production.
    #[serde(default)]
    pub mode: Mode,
    /// Unknown commands: `approval_required` or `reject`.
    #[serde(default)]
    pub unknown_default: UnknownDefault,
    /// Extra exact commands (argv forms) to auto-allow.
    #[serde(default)]
    pub auto_allow: Vec<String>,
    /// Extra programs, subcommands and flags to auto-allow.
    #[serde(default)]
    pub allow: Vec<AllowRule>,
    /// Command patterns that need approval (`program [word|-flag ...]`).
    #[serde(default)]
    pub require_approval: Vec<String>,
    /// Command patterns that are forbidden.
    #[serde(default)]
    pub forbid: Vec<String>,
    /// Extra sensitive-path globs (`*` matches across `/`): reading them needs approval.
    #[serde(default)]
    pub sensitive_paths: Vec<String>,
    /// Per-target tightening, keyed by target name.
    #[serde(default)]
    pub targets: BTreeMap<String, TargetOverride>,
}

/// What operands of an allowed program are.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Operands {
    /// Files the program reads (checked against sensitive paths).
    #[default]
    Paths,
    /// Free data, not checked.
    Any,
    /// No operands: any operand needs approval.
    None,
}

/// An `allow:` entry: extends a built-in spec or adds a new program.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AllowRule {
    /// Program name (bare).
    pub program: String,
    /// Subcommands to auto-allow.
    #[serde(default)]
    pub subcommands: Vec<String>,
    /// Flags in the spec syntax: `-a|--all -n|--lines=num --file=path`.
    #[serde(default)]
    pub flags: String,
    /// What operands are (only for new programs).
    #[serde(default)]
    pub operands: Operands,
    /// Commands that must be auto-allowed once this rule is in place.
    #[serde(default)]
    pub should_match: Vec<String>,
    /// Commands that must not be auto-allowed.
    #[serde(default)]
    pub should_not_match: Vec<String>,
}

/// Per-target tightening. Overrides can only add restrictions.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TargetOverride {
    /// `reject` makes unknown commands rejected on this target.
    #[serde(default)]
    pub unknown_default: Option<UnknownDefault>,
    /// Extra approval patterns on this target.
    #[serde(default)]
    pub require_approval: Vec<String>,
    /// Extra forbidden patterns on this target.
    #[serde(default)]
    pub forbid: Vec<String>,
    /// Extra sensitive paths on this target.
    #[serde(default)]
    pub sensitive_paths: Vec<String>,
}

impl PolicyFile {
    /// Parses YAML text; `source` names the file in errors.
    pub fn parse(text: &str, source: &str) -> Result<PolicyFile, PolicyError> {
        serde_yaml::from_str(text).map_err(|e| {
            // `file:line: message` so editors and humans can jump to it.
            let source_name = match e.location() {
                Some(l) => format!("{source}:{}", l.line()),
                None => source.to_string(),
            };
            PolicyError::Invalid {
                source_name,
                message: e.to_string(),
            }
        })
    }
}

/// A policy that could not be loaded.
#[derive(Debug, thiserror::Error)]
pub enum PolicyError {
    /// The file could not be read.
    #[error("{path}: {message}")]
    Io {
        /// The file.
        path: String,
        /// What went wrong.
        message: String,
    },
    /// The file is not a valid policy (the message names line and key).
    #[error("{source_name}: {message}")]
    Invalid {
        /// File name or other source label.
        source_name: String,
        /// What went wrong, with line and column.
        message: String,
    },
}
