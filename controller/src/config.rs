//! The controller's configuration (`/opt/aiops/config.yml`, `AIOPS_CONFIG`, `--config`).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use aiops_policy::{Policy, PolicyFile};
use serde::Deserialize;

/// Default configuration path on a gateway host.
pub const DEFAULT_CONFIG: &str = "/opt/aiops/config.yml";

/// One target (an agent).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TargetConfig {
    /// `host:port` of the agent.
    pub address: String,
    /// Name expected in the agent's certificate (default: the target's name).
    #[serde(default)]
    pub server_name: Option<String>,
    /// Free-form labels, e.g. `role: web`.
    #[serde(default)]
    pub labels: BTreeMap<String, String>,
}

/// Per-request defaults.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Defaults {
    /// Wall-clock limit for a command on the agent.
    #[serde(default = "d_timeout")]
    pub timeout_secs: u32,
    /// Bytes kept per stream (half head, half tail).
    #[serde(default = "d_cap")]
    pub output_cap_bytes: u64,
    /// How long a signed request stays valid.
    #[serde(default = "d_ttl")]
    pub request_ttl_secs: u32,
    /// TCP + TLS connect limit.
    #[serde(default = "d_connect")]
    pub connect_timeout_ms: u64,
    /// How long a pending approval stays valid.
    #[serde(default = "d_approval_ttl")]
    pub approval_ttl_secs: u32,
    /// Fan-out: targets running at once.
    #[serde(default = "d_concurrency")]
    pub max_concurrency: usize,
    /// Output cap per stream asked of the agent for a `save_output` request,
    /// whose output streams to files on this host (1 GiB; each agent's
    /// `max_output_cap_bytes` must allow it).
    #[serde(default = "d_saved_cap")]
    pub saved_output_cap_bytes: u64,
}

fn d_timeout() -> u32 {
    30
}
fn d_cap() -> u64 {
    64 * 1024
}
fn d_ttl() -> u32 {
    60
}
fn d_connect() -> u64 {
    5000
}
fn d_approval_ttl() -> u32 {
    15 * 60
}
fn d_concurrency() -> usize {
    256
}
fn d_saved_cap() -> u64 {
    1024 * 1024 * 1024
}

impl Default for Defaults {
    fn default() -> Self {
        Defaults {
            timeout_secs: d_timeout(),
            output_cap_bytes: d_cap(),
            request_ttl_secs: d_ttl(),
            connect_timeout_ms: d_connect(),
            approval_ttl_secs: d_approval_ttl(),
            max_concurrency: d_concurrency(),
            saved_output_cap_bytes: d_saved_cap(),
        }
    }
}

/// Who may approve, and with which key.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ApprovalsConfig {
    /// Accounts (or chat users) allowed to approve in production mode.
    #[serde(default)]
    pub approvers: Vec<String>,
    /// The approver's private signing key. In production only the approver
    /// account can read it; the controller account cannot.
    #[serde(default)]
    pub approver_key: Option<PathBuf>,
    /// The approver public key (`ed25519:<hex>` or a file), to check grants
    /// before releasing them [default: the `.pub` beside `approver_key`].
    #[serde(default)]
    pub approver_public_key: Option<String>,
    /// Account that holds the controller's keys; an approver running
    /// `aiops approvals approve` hands the signed grant to it through
    /// `sudo -n -u ACCOUNT aiops approvals release ID`.
    #[serde(default)]
    pub controller_user: Option<String>,
}

/// The configuration as written.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ControllerConfig {
    /// The policy, inline (`mode`, `unknown_default`, rules).
    #[serde(default)]
    pub policy: Option<PolicyFile>,
    /// Or a policy file; exclusive with `policy`.
    #[serde(default)]
    pub policy_file: Option<PathBuf>,
    /// PKI directory (`ca.pem`, `controller.pem`, `controller.key`, `signing.key`).
    #[serde(default = "d_pki")]
    pub pki_dir: PathBuf,
    /// The controller's audit log.
    #[serde(default = "d_audit")]
    pub audit_log: PathBuf,
    /// Pending approvals and other runtime state.
    #[serde(default = "d_runtime")]
    pub runtime_dir: PathBuf,
    /// Request defaults.
    #[serde(default)]
    pub defaults: Defaults,
    /// Approvers and the approval key.
    #[serde(default)]
    pub approvals: ApprovalsConfig,
    /// Targets by name.
    #[serde(default)]
    pub targets: BTreeMap<String, TargetConfig>,
    /// Named groups of targets.
    #[serde(default)]
    pub groups: BTreeMap<String, Vec<String>>,
}

fn d_pki() -> PathBuf {
    "pki".into()
}
fn d_audit() -> PathBuf {
    "audit.jsonl".into()
}
fn d_runtime() -> PathBuf {
    "runtime".into()
}

/// A configuration that could not be loaded.
pub use aiops_sys::ConfigError;

/// A loaded configuration with its policy.
#[derive(Debug)]
pub struct Loaded {
    /// Where it came from.
    pub path: PathBuf,
    /// The configuration, paths made absolute.
    pub config: ControllerConfig,
    /// The effective policy.
    pub policy: Policy,
}

impl Loaded {
    /// Reads and validates `path`. Every path in the file is resolved here,
    /// once, against the file's own directory (made absolute first, so a
    /// relative `AIOPS_CONFIG=aiops-lab/config.yml` works from anywhere later
    /// code looks at it).
    pub fn load(path: &Path) -> Result<Loaded, ConfigError> {
        let file = aiops_sys::ConfigFile::read(path)?;
        let err = |message: String| file.error(message);
        let mut config: ControllerConfig =
            serde_yaml::from_str(&file.text).map_err(|e| err(e.to_string()))?;
        let base = file.dir();
        for p in [
            &mut config.pki_dir,
            &mut config.audit_log,
            &mut config.runtime_dir,
        ] {
            file.resolve(p);
        }
        let policy = match (&config.policy, &config.policy_file) {
            (Some(_), Some(_)) => {
                return Err(err("set either `policy` or `policy_file`, not both".into()));
            }
            (Some(file), None) => {
                Policy::from_file(file.clone()).map_err(|e| err(e.to_string()))?
            }
            (None, Some(p)) => {
                let mut p = p.clone();
                file.resolve(&mut p);
                Policy::load(&p).map_err(|e| err(e.to_string()))?
            }
            (None, None) => Policy::builtin(),
        };
        if let Some(p) = config.approvals.approver_key.as_mut() {
            file.resolve(p);
        }
        // `approver_public_key` is `ed25519:<hex>` or a file, relative to the config's directory.
        if let Some(k) = config.approvals.approver_public_key.as_mut()
            && !k.trim().starts_with("ed25519:")
            && Path::new(k.trim()).is_relative()
        {
            *k = base.join(k.trim()).display().to_string();
        }
        for (name, t) in &config.targets {
            if !aiops_types::TargetName::is_valid(name) {
                return Err(err(format!("targets: {name:?} is not a valid target name")));
            }
            if let Err(e) = aiops_types::TargetAddress::parse(&t.address) {
                return Err(err(format!("targets.{name}.address: {e}")));
            }
        }
        for (group, members) in &config.groups {
            for m in members {
                if !config.targets.contains_key(m) {
                    return Err(err(format!("groups.{group}: unknown target {m:?}")));
                }
            }
        }
        Ok(Loaded {
            path: file.path.clone(),
            config,
            policy,
        })
    }

    /// Resolves target selectors (names, `group:NAME`, `label:KEY=VALUE`) to
    /// a sorted, de-duplicated list of configured target names.
    pub fn resolve_targets(&self, selectors: &[String]) -> Result<Vec<String>, String> {
        let mut out = std::collections::BTreeSet::new();
        for sel in selectors {
            if let Some(group) = sel.strip_prefix("group:") {
                let members = self
                    .config
                    .groups
                    .get(group)
                    .ok_or_else(|| format!("no group named {group:?}"))?;
                out.extend(members.iter().cloned());
            } else if let Some(label) = sel.strip_prefix("label:") {
                let (k, v) = label
                    .split_once('=')
                    .ok_or_else(|| format!("{sel:?}: expected label:KEY=VALUE"))?;
                let matched: Vec<&String> = self
                    .config
                    .targets
                    .iter()
                    .filter(|(_, t)| t.labels.get(k).is_some_and(|x| x == v))
                    .map(|(n, _)| n)
                    .collect();
                if matched.is_empty() {
                    return Err(format!("no target has label {k}={v}"));
                }
                out.extend(matched.into_iter().cloned());
            } else if self.config.targets.contains_key(sel) {
                out.insert(sel.clone());
            } else {
                return Err(format!(
                    "no target named {sel:?}; known: {}",
                    self.config
                        .targets
                        .keys()
                        .cloned()
                        .collect::<Vec<_>>()
                        .join(", ")
                ));
            }
        }
        Ok(out.into_iter().collect())
    }

    /// Lifetime of a pending approval, in seconds.
    pub fn approval_ttl_secs(&self) -> i64 {
        i64::from(self.config.defaults.approval_ttl_secs)
    }

    /// The PKI directory's files.
    pub fn pki(&self) -> aiops_certs::pki::PkiDir {
        aiops_certs::pki::PkiDir::new(&self.config.pki_dir)
    }
}
