//! Command classification for aiops.
//!
//! Pure code: no I/O beyond reading a policy file the caller names, no
//! `unsafe`. The controller uses it to decide, the agent to re-check; both
//! must derive the same [`Plan`] from the same command text.
//!
//! Stages (see `POLICY.md`): input hygiene; a tree-sitter-bash parse walked
//! iteratively; an independent linear lexer whose plan must agree with the
//! tree before anything is auto-allowed; wrapper unwrapping; per-program
//! specs; an independent forbidden scan over every command at any depth.
//! Strictest wins.
#![forbid(unsafe_code)]
// Rules read best as one match arm per program with a plain `if` inside.
#![allow(clippy::collapsible_match)]

mod engine;
mod file;
pub mod glob;
mod lex;
mod paths;
mod rules;
mod specs;
mod tree;

pub use file::{
    AllowRule, Mode, Operands, PolicyError, PolicyFile, TargetOverride, UnknownDefault,
};

// The plan, the risk and the command hygiene are shared with the wire crate
// and the agent; they live in `aiops-types` and are part of this API as before.
pub use aiops_types::{
    Connector, MAX_COMMAND_BYTES, Pipeline, Plan, Redirect, Risk, Stage, hygiene,
};

use serde::Serialize;

pub use paths::EXEC_CWD;

/// What a recursive walk of a directory tree found on the host.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Walk {
    /// Canonical paths of the entries (symbolic links resolved, their
    /// target directories walked too); `complete` is false when some
    /// directory could not be read.
    Entries {
        /// Canonical absolute paths.
        entries: Vec<String>,
        /// Every directory was read.
        complete: bool,
    },
    /// More entries than the limit.
    TooLarge,
}

/// The host's file system as the agent sees it just before exec: the
/// policy crate does no I/O itself, so the agent passes this in and
/// [`Policy::classify_on_host`] re-checks every path operand through it.
pub trait HostFs {
    /// The canonical absolute path of `path` with every symbolic link
    /// resolved (`realpath`), or `None` when it cannot be resolved.
    fn realpath(&self, path: &str) -> Option<String>;
    /// Every entry under the directory `dir`, at most `limit` of them.
    fn walk(&self, dir: &str, limit: usize) -> Walk;
    /// `Some(why)` when an account other than root could change what the
    /// absolute path `path` names between this check and the open: a
    /// directory in which its resolution looks a name up (every symbolic
    /// link followed) is owned by another account, or writable by a group
    /// other than root's or by everyone, or a link on the way is owned by
    /// another account. A `.` component stands for a lookup in the
    /// directory itself. Such a path cannot be checked once and trusted
    /// for a privileged read: a link swapped in after the check points it
    /// anywhere.
    fn writable_dir(&self, path: &str) -> Option<String>;
}

/// Hex SHA-256 of a plan's canonical JSON (fields in declaration order):
/// what an approval and its grant bind, so a human who was shown plan A
/// can never authorise plan B. The controller, the approver and the root
/// executor all compute it with this function.
pub fn plan_digest(plan: &Plan) -> String {
    let text = serde_json::to_string(plan).expect("a plan serializes");
    hex::encode(ring::digest::digest(&ring::digest::SHA256, text.as_bytes()).as_ref())
}

/// The outcome of classifying one command.
#[must_use]
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Decision {
    /// The strictest verdict any rule gave.
    pub risk: Risk,
    /// Every reason that produced `risk`, most important first.
    pub reasons: Vec<String>,
    /// What would run.
    pub plan: Plan,
}

/// A loaded policy: built-in defaults plus what a policy file adds or tightens.
#[derive(Debug, Clone)]
pub struct Policy {
    file: PolicyFile,
    auto_allow: Vec<Vec<String>>,
    specs: Vec<specs::Spec>,
    approval_rules: Vec<engine::Pattern>,
    forbid_rules: Vec<engine::Pattern>,
    sensitive: Vec<String>,
    digest: String,
}

/// Bumped whenever the built-in rules change, so [`Policy::digest`] changes.
const BUILTIN_REVISION: &str = "aiops-policy builtin rules r2";

impl Policy {
    /// The built-in policy (lab mode, unknown commands need approval).
    pub fn builtin() -> Policy {
        Policy::from_file(PolicyFile::default()).expect("built-in policy is valid")
    }

    /// Checks every built-in spec's should-match / should-not-match examples.
    pub fn check_builtin_examples() -> Result<(), PolicyError> {
        engine::build(PolicyFile::default(), true)?.check_examples()
    }

    /// Parses a policy from YAML text; `source` names it in errors.
    pub fn from_yaml(text: &str, source: &str) -> Result<Policy, PolicyError> {
        Policy::from_file(PolicyFile::parse(text, source)?)
    }

    /// Reads and parses a policy file.
    pub fn load(path: &std::path::Path) -> Result<Policy, PolicyError> {
        let text = std::fs::read_to_string(path).map_err(|e| PolicyError::Io {
            path: path.display().to_string(),
            message: e.to_string(),
        })?;
        Policy::from_yaml(&text, &path.display().to_string())
    }

    /// Builds a policy from an already-parsed file and checks the file's own
    /// `allow:` examples. The built-in specs' examples are compiled in and
    /// checked by this crate's tests ([`Policy::check_builtin_examples`]), not
    /// again by every process that loads a policy: that check parsed several
    /// hundred commands and was half the start-up time of `aiops run`.
    pub fn from_file(file: PolicyFile) -> Result<Policy, PolicyError> {
        let policy = engine::build(file, false)?;
        // File examples are checked without the file's tightenings (which
        // may legitimately turn an allowed example into approval).
        if !policy.file.allow.is_empty() {
            engine::build(policy.file.clone(), true)?.check_file_examples()?;
        }
        Ok(policy)
    }

    /// Lab or production.
    pub fn mode(&self) -> Mode {
        self.file.mode
    }

    /// What happens to commands no rule covers. Production mode always
    /// rejects them; lab mode follows the file.
    pub fn unknown_default(&self) -> UnknownDefault {
        match self.file.mode {
            Mode::Production => UnknownDefault::Reject,
            Mode::Lab => self.file.unknown_default,
        }
    }

    /// A stable digest of the effective policy, for audit and `Describe`.
    pub fn digest(&self) -> &str {
        &self.digest
    }

    /// Classifies `command` for any target.
    pub fn classify(&self, command: &str) -> Decision {
        self.classify_for(None, command)
    }

    /// Classifies `command` as it would run on `target` (per-target overrides).
    /// Deterministic: the same policy, target and text give the same decision.
    pub fn classify_for(&self, target: Option<&str>, command: &str) -> Decision {
        engine::classify(self, target, command, None)
    }

    /// Classifies `command` as [`Policy::classify_for`] does, and also
    /// checks every path the command reads against the host's real file
    /// system (symbolic links resolved, recursive reads walked): the agent's
    /// re-check just before exec. Never looser than `classify_for`; the
    /// plan is the same.
    pub fn classify_on_host(
        &self,
        target: Option<&str>,
        command: &str,
        fs: &dyn HostFs,
    ) -> Decision {
        engine::classify(self, target, command, Some(fs))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exact_allowlisted_forms_are_auto() {
        let p = Policy::builtin();
        let d = p.classify("hostname");
        assert_eq!(d.risk, Risk::AutoAllowed);
        assert_eq!(d.plan.pipelines[0].stages[0].argv, vec!["hostname"]);
        assert_eq!(p.classify("df   -h").risk, Risk::AutoAllowed);
        assert_eq!(p.classify("'df' \"-h\"").risk, Risk::AutoAllowed);
    }

    #[test]
    fn anything_else_follows_unknown_default() {
        let lab = Policy::builtin();
        assert_eq!(lab.classify("frobnicate foo").risk, Risk::ApprovalRequired);
        assert_eq!(lab.classify("uptime; rm -rf /").risk, Risk::Forbidden);
        let prod = Policy::from_yaml("mode: production\nunknown_default: reject\n", "t").unwrap();
        assert_eq!(prod.classify("frobnicate foo").risk, Risk::Rejected);
        assert_eq!(prod.classify("hostname").risk, Risk::AutoAllowed);
    }

    #[test]
    fn sudo_becomes_privileged_inner_stage() {
        let d = Policy::builtin().classify("sudo -n journalctl -n 5 | tail -n 2");
        assert_eq!(d.risk, Risk::AutoAllowed);
        let s = &d.plan.pipelines[0].stages[0];
        assert!(s.privileged);
        assert_eq!(s.argv, ["journalctl", "-n", "5"]);
    }

    #[test]
    fn approval_commands_keep_an_argv_plan_when_possible() {
        let d = Policy::builtin().classify("systemctl restart nginx");
        assert_eq!(d.risk, Risk::ApprovalRequired);
        assert!(!d.plan.shell);
        assert_eq!(d.plan.pipelines[0].stages[0].argv[1], "restart");
        let d = Policy::builtin().classify("echo $(uptime)");
        assert!(d.plan.shell && d.plan.pipelines.is_empty());
    }

    #[test]
    fn every_builtin_option_table_parses() {
        // Parsed lazily at run time (a bad entry would panic there): every
        // entry of the compiled-in table is parsed here instead.
        let p = Policy::builtin();
        assert!(p.specs.len() > 100, "{}", p.specs.len());
        let mut entries = 0;
        for s in &p.specs {
            entries += s
                .parse_builtin_opts()
                .unwrap_or_else(|e| panic!("built-in spec {}: {e}", s.name));
        }
        assert!(entries > 1000, "{entries}");
        assert!(specs::parse_opts("-x|bad").is_err());
        assert!(specs::parse_opts("--x=nosuchtype").is_err());
    }

    #[test]
    fn a_broken_builtin_example_fails_the_check() {
        let mut p = engine::build(PolicyFile::default(), true).unwrap();
        assert!(p.check_examples().is_ok());
        let mut broken = p.clone();
        broken.specs[0]
            .examples_ok
            .push("uptime --definitely-not-a-flag");
        assert!(broken.check_examples().is_err());
        p.specs[0].examples_not.push("uptime");
        assert!(p.check_examples().is_err());
    }

    #[test]
    fn malformed_input_is_forbidden() {
        let p = Policy::builtin();
        for bad in [
            "ls\0",
            "ls \u{1b}[0m",
            "ls\u{a0}-la",
            "a\rb",
            &"x".repeat(5000),
        ] {
            assert_eq!(p.classify(bad).risk, Risk::Forbidden, "{bad:?}");
        }
    }

    #[test]
    fn policy_file_adds_exact_forms_and_rejects_unknown_keys() {
        let p = Policy::from_yaml("auto_allow: ['uname -r']\n", "t").unwrap();
        assert_eq!(p.classify("uname -r").risk, Risk::AutoAllowed);
        let err = Policy::from_yaml("mode: lab\nbogus: 1\n", "f.yml").unwrap_err();
        assert!(err.to_string().contains("f.yml"), "{err}");
        assert!(err.to_string().contains("bogus"), "{err}");
    }
}
#[cfg(test)]
mod examples_tests {
    #[test]
    fn builtin_examples_hold() {
        if let Err(e) = super::Policy::check_builtin_examples() {
            panic!("{e}");
        }
    }
}
