//! What runs for a command: pipelines of argv stages, never re-parsed by a
//! shell, and how strict the decision about it is.

use serde::{Deserialize, Serialize};

/// How strict a decision is. Ordered: a later variant is stricter.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Risk {
    /// Read-only and provably so: runs without a human.
    AutoAllowed,
    /// Changes state or cannot be proven read-only: a human must approve.
    ApprovalRequired,
    /// Unknown command in a policy whose `unknown_default` is `reject`.
    Rejected,
    /// Never runs, in any mode, even with an approval.
    Forbidden,
}

impl Risk {
    /// Every risk, mildest first.
    pub const ALL: [Risk; 4] = [
        Risk::AutoAllowed,
        Risk::ApprovalRequired,
        Risk::Rejected,
        Risk::Forbidden,
    ];

    /// The stable name used in JSON answers and audit records.
    pub fn as_str(self) -> &'static str {
        match self {
            Risk::AutoAllowed => "auto_allowed",
            Risk::ApprovalRequired => "approval_required",
            Risk::Rejected => "rejected",
            Risk::Forbidden => "forbidden",
        }
    }

    /// The risk named `name`; `None` for any other word (never a default).
    pub fn parse(name: &str) -> Option<Risk> {
        Risk::ALL.into_iter().find(|r| r.as_str() == name)
    }
}

impl std::fmt::Display for Risk {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// How a pipeline joins the one before it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Connector {
    /// `;` or newline (also used for the first pipeline).
    Seq,
    /// `&&`
    And,
    /// `||`
    Or,
}

/// A redirect the executor applies itself (the only ones the auto grammar has).
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Redirect {
    /// `2>&1`
    StderrToStdout,
    /// `>/dev/null`
    StdoutToNull,
    /// `2>/dev/null`
    StderrToNull,
    /// `< path`
    StdinFromFile(String),
}

/// One program invocation: decoded argv, never re-parsed by a shell.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Stage {
    /// argv[0] is a bare program name or an absolute path.
    pub argv: Vec<String>,
    /// Run through `sudo -n --` (the command was written as `sudo [-n] ...`).
    pub privileged: bool,
    /// Redirects in the order written.
    pub redirects: Vec<Redirect>,
}

/// Stages connected stdout-to-stdin.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Pipeline {
    /// How this pipeline joins the previous one.
    pub connector: Connector,
    /// At least one stage.
    pub stages: Vec<Stage>,
}

/// What the executor runs for a command.
#[derive(Debug, Clone, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Plan {
    /// Pipelines in order. Empty when the command could not be turned into argv.
    pub pipelines: Vec<Pipeline>,
    /// Needs real shell syntax: runs as `bash --noprofile --norc -c COMMAND`
    /// (never for an auto-allowed command).
    pub shell: bool,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn risk_names_round_trip_and_unknown_words_are_none() {
        for r in Risk::ALL {
            assert_eq!(Risk::parse(r.as_str()), Some(r));
            let json = serde_json::to_string(&r).unwrap();
            assert_eq!(serde_json::from_str::<Risk>(&json).unwrap(), r);
        }
        assert_eq!(Risk::parse("approval_requested"), None);
        assert_eq!(Risk::parse(""), None);
        assert!(serde_json::from_str::<Risk>("\"harmless\"").is_err());
    }
}
