//! The policy file: YAML, unknown keys rejected, errors naming file and line.

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
}

impl PolicyFile {
    /// Parses YAML text; `source` names the file in errors.
    pub fn parse(text: &str, source: &str) -> Result<PolicyFile, PolicyError> {
        serde_yaml::from_str(text).map_err(|e| PolicyError::Invalid {
            source_name: source.to_string(),
            message: e.to_string(),
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
