//! What the executor trusts, read from the agent's root-owned configuration
//! (`/etc/aiops-agent/agent.yml`): this target's name, the pinned controller
//! and approver keys, the policy file, limits, and its own `executor:`
//! section. Every file is opened and then checked, sudo-rs style: owned by
//! root (or, when the executor itself is not root, by its own account), in a
//! directory with the same owner rule, and writable by nobody else.

use std::io::Read;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

use serde::Deserialize;

use crate::sandbox::Limits;

/// Where the executor looks when started through sudo (it takes no
/// arguments there, so the path is fixed).
pub const DEFAULT_CONFIG: &str = "/etc/aiops-agent/agent.yml";

/// Largest configuration, key or policy file read.
const MAX_FILE: u64 = 1024 * 1024;

/// The executor's own section of agent.yml.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default)]
pub struct ExecutorSection {
    /// Root-only directory for single-use grant records and the executor's
    /// log. Default `/var/lib/aiops-exec`; a lab's `exec-state` next to the config.
    pub state_dir: Option<PathBuf>,
    /// What may be approved on this target at all: word patterns (`*` is one
    /// word, a final `**` any rest; `shell` allows approved shell plans).
    /// Empty: anything the policy does not forbid.
    pub approvable: Vec<String>,
    /// Run approved commands in a transient systemd unit when systemd is PID 1
    /// (default true), outside the agent unit's sandbox.
    pub transient_unit: Option<bool>,
}

#[derive(Debug, Clone, Deserialize)]
struct Controller {
    signing_key: String,
}

// Only the keys the executor needs; the agent validates the whole file.
#[derive(Debug, Clone, Deserialize)]
struct Raw {
    name: String,
    #[serde(default)]
    lab: bool,
    controller: Controller,
    #[serde(default)]
    approver_keys: Vec<String>,
    #[serde(default)]
    policy_file: Option<PathBuf>,
    #[serde(default = "skew")]
    clock_skew_secs: u32,
    #[serde(default = "lifetime")]
    max_request_lifetime_secs: u32,
    #[serde(default = "max_timeout")]
    max_timeout_secs: u32,
    #[serde(default)]
    limits: Limits,
    #[serde(default)]
    executor: ExecutorSection,
    #[serde(default)]
    command_account: Option<String>,
    #[serde(default)]
    without_landlock: Option<String>,
}

fn skew() -> u32 {
    30
}
fn lifetime() -> u32 {
    600
}
fn max_timeout() -> u32 {
    600
}

/// The loaded, checked configuration.
#[derive(Debug)]
pub struct Config {
    /// This target.
    pub name: String,
    /// A lab configuration.
    pub lab: bool,
    /// `ed25519:<hex>` of the controller's signing key.
    pub controller_key: [u8; 32],
    /// Approver keys.
    pub approver_keys: Vec<[u8; 32]>,
    /// The compiled policy (the same file the agent loads).
    pub policy: aiops_policy::Policy,
    /// Clock skew tolerated, ms.
    pub skew_ms: i64,
    /// Longest request lifetime, ms.
    pub max_lifetime_ms: i64,
    /// Longest timeout, ms.
    pub max_timeout_ms: i64,
    /// Per-command limits.
    pub limits: Limits,
    /// Root-only state directory.
    pub state_dir: PathBuf,
    /// Approvable patterns.
    pub approvable: Vec<Vec<String>>,
    /// Use a transient unit for approved commands when systemd runs.
    pub transient_unit: bool,
    /// The account `aiops-sandbox` switches unprivileged stages to.
    pub command_account: Option<String>,
    /// `without_landlock: run_unconfined`.
    pub run_unconfined: bool,
}

/// Reads a file after checking who owns it and who may write it.
pub fn read_trusted(path: &Path) -> Result<String, String> {
    let e = |m: String| format!("{}: {m}", path.display());
    let f = std::fs::File::open(path).map_err(|x| e(x.to_string()))?;
    let meta = f.metadata().map_err(|x| e(x.to_string()))?;
    check_owner(&meta).map_err(e)?;
    if !meta.is_file() {
        return Err(e("not a regular file".into()));
    }
    let dir = path.parent().unwrap_or(Path::new("/"));
    let dmeta = std::fs::metadata(dir).map_err(|x| e(x.to_string()))?;
    check_owner(&dmeta).map_err(|m| e(format!("directory {}: {m}", dir.display())))?;
    let mut text = String::new();
    f.take(MAX_FILE)
        .read_to_string(&mut text)
        .map_err(|x| e(x.to_string()))?;
    Ok(text)
}

fn euid() -> u32 {
    crate::sandbox::euid()
}

/// Owned by root (or by the executor's own account when it is not root),
/// and not writable by group or others.
pub fn check_owner(meta: &std::fs::Metadata) -> Result<(), String> {
    let me = euid();
    if meta.uid() != 0 && !(me != 0 && meta.uid() == me) {
        return Err(format!("owned by uid {}, not root", meta.uid()));
    }
    if meta.mode() & 0o022 != 0 {
        return Err(format!(
            "mode {:o} is writable by group or others",
            meta.mode() & 0o7777
        ));
    }
    Ok(())
}

fn parse_key(text: &str) -> Result<[u8; 32], String> {
    let hexpart = text
        .trim()
        .strip_prefix("ed25519:")
        .ok_or("expected ed25519:<hex>")?;
    let bytes = hex::decode(hexpart).map_err(|e| e.to_string())?;
    bytes
        .try_into()
        .map_err(|_| "expected 32 bytes".to_string())
}

impl Config {
    /// Loads `path` and everything it names, checking each file.
    pub fn load(path: &Path) -> Result<Config, String> {
        let text = read_trusted(path)?;
        let raw: Raw =
            serde_yaml::from_str(&text).map_err(|e| format!("{}: {e}", path.display()))?;
        let base = path.parent().unwrap_or(Path::new("/"));
        let abs = |p: &Path| {
            if p.is_relative() {
                base.join(p)
            } else {
                p.to_path_buf()
            }
        };
        let key_text = |k: &str| -> Result<String, String> {
            if k.trim().starts_with("ed25519:") {
                Ok(k.to_string())
            } else {
                read_trusted(&abs(Path::new(k.trim())))
            }
        };
        let controller_key = parse_key(&key_text(&raw.controller.signing_key)?)
            .map_err(|e| format!("controller.signing_key: {e}"))?;
        let approver_keys = raw
            .approver_keys
            .iter()
            .map(|k| parse_key(&key_text(k)?).map_err(|e| format!("approver_keys: {e}")))
            .collect::<Result<Vec<_>, _>>()?;
        let policy = match &raw.policy_file {
            Some(p) => {
                let p = abs(p);
                aiops_policy::Policy::from_yaml(&read_trusted(&p)?, &p.display().to_string())
                    .map_err(|e| e.to_string())?
            }
            None => aiops_policy::Policy::builtin(),
        };
        let state_dir = match &raw.executor.state_dir {
            Some(d) => abs(d),
            None if raw.lab => base.join("exec-state"),
            None => PathBuf::from("/var/lib/aiops-exec"),
        };
        Ok(Config {
            name: raw.name,
            lab: raw.lab,
            controller_key,
            approver_keys,
            policy,
            skew_ms: i64::from(raw.clock_skew_secs) * 1000,
            max_lifetime_ms: i64::from(raw.max_request_lifetime_secs) * 1000,
            max_timeout_ms: i64::from(raw.max_timeout_secs) * 1000,
            limits: raw.limits,
            state_dir,
            approvable: raw
                .executor
                .approvable
                .iter()
                .map(|p| p.split_whitespace().map(str::to_string).collect())
                .collect(),
            transient_unit: raw.executor.transient_unit.unwrap_or(true),
            command_account: raw.command_account,
            run_unconfined: raw.without_landlock.as_deref() == Some("run_unconfined"),
        })
    }

    /// Creates (or checks) the state directory: owned by the executor's
    /// account, mode 0700, in a parent nobody else can write.
    pub fn state_dir(&self) -> Result<&Path, String> {
        use std::os::unix::fs::DirBuilderExt;
        let d = &self.state_dir;
        let e = |m: String| format!("state_dir {}: {m}", d.display());
        if !d.exists() {
            std::fs::DirBuilder::new()
                .recursive(true)
                .mode(0o700)
                .create(d)
                .map_err(|x| e(x.to_string()))?;
        }
        let meta = std::fs::symlink_metadata(d).map_err(|x| e(x.to_string()))?;
        if !meta.is_dir() || meta.uid() != euid() || meta.mode() & 0o077 != 0 {
            return Err(e(format!(
                "must be a directory owned by uid {} with mode 0700",
                euid()
            )));
        }
        let parent = d.parent().unwrap_or(Path::new("/"));
        let pmeta = std::fs::metadata(parent).map_err(|x| e(x.to_string()))?;
        check_owner(&pmeta).map_err(|m| e(format!("parent: {m}")))?;
        Ok(d)
    }
}
