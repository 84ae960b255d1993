//! The agent's configuration file (`/etc/aiops-agent/agent.yml`).

use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use serde::Deserialize;

/// Paths of the agent's TLS material.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TlsFiles {
    /// CA certificate that client certificates must chain to.
    pub ca: PathBuf,
    /// The agent's server certificate.
    pub cert: PathBuf,
    /// The agent's private key.
    pub key: PathBuf,
}

/// Who may send requests.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ControllerTrust {
    /// DNS identity the controller's client certificate must carry.
    #[serde(default = "default_identity")]
    pub identity: String,
    /// The controller's request-signing public key: `ed25519:<hex>`, or a path to a file holding it.
    pub signing_key: String,
}

fn default_identity() -> String {
    aiops_certs::pki::CONTROLLER_IDENTITY.to_string()
}

/// What happens to unprivileged auto-allowed commands on a kernel without Landlock.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum WithoutLandlock {
    /// Refuse them (`landlock_unavailable`), audited.
    #[default]
    Refuse,
    /// Run them with `no_new_privs`, the command account and rlimits only.
    RunUnconfined,
}

/// How the agent reaches the root executor (`aiops-exec`).
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ExecutorConfig {
    /// The executor binary; default `/usr/libexec/aiops-agent/aiops-exec`, or
    /// `aiops-exec` next to the agent binary when that exists (a lab).
    #[serde(default)]
    pub path: Option<PathBuf>,
    /// `aiops-sandbox` (switches to `command_account`); default
    /// `/usr/libexec/aiops-agent/aiops-sandbox`.
    #[serde(default)]
    pub sandbox_path: Option<PathBuf>,
    /// Start it through `sudo -n` (default: yes, unless `lab: true`).
    #[serde(default)]
    pub sudo: Option<bool>,
    /// Read by the executor only: its root-only state directory.
    #[serde(default)]
    pub state_dir: Option<PathBuf>,
    /// Read by the executor only: what may be approved on this host at all.
    #[serde(default)]
    pub approvable: Vec<String>,
    /// Read by the executor only: run approved commands in a transient unit.
    #[serde(default)]
    pub transient_unit: Option<bool>,
}

/// The agent's configuration as written.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AgentConfig {
    /// This target's name; requests for any other name are refused.
    pub name: String,
    /// Address to listen on.
    pub listen: SocketAddr,
    /// A lab configuration may run as root; a production one may not.
    #[serde(default)]
    pub lab: bool,
    /// TLS material.
    pub tls: TlsFiles,
    /// The controller's identity and signing key.
    pub controller: ControllerTrust,
    /// Approver public keys (`ed25519:<hex>` or a file holding it). Approved
    /// requests must carry a grant signed by one of them; with none, only
    /// auto-allowed commands run.
    #[serde(default)]
    pub approver_keys: Vec<String>,
    /// Policy file; the built-in read-only policy when absent.
    #[serde(default)]
    pub policy_file: Option<PathBuf>,
    /// Where the replay cache lives.
    pub state_dir: PathBuf,
    /// The agent's own audit log.
    pub audit_log: PathBuf,
    /// Upper bound on a request's timeout.
    #[serde(default = "default_max_timeout")]
    pub max_timeout_secs: u32,
    /// Upper bound on a request's per-stream output cap.
    #[serde(default = "default_max_output")]
    pub max_output_cap_bytes: u64,
    /// Clock difference tolerated between controller and agent.
    #[serde(default = "default_skew")]
    pub clock_skew_secs: u32,
    /// Longest accepted gap between a request's issue and expiry times.
    #[serde(default = "default_lifetime")]
    pub max_request_lifetime_secs: u32,
    /// Requests running at once; more wait.
    #[serde(default = "default_concurrency")]
    pub max_concurrent: usize,
    /// Open connections at once (handshaking or serving); more are closed
    /// at once, unread.
    #[serde(default = "default_max_connections")]
    pub max_connections: usize,
    /// Connections still in their TLS handshake at once; more are closed at
    /// once. Bounds what unauthenticated peers can hold.
    #[serde(default = "default_max_handshakes")]
    pub max_handshakes: usize,
    /// A TLS handshake must finish within this time.
    #[serde(default = "default_handshake_timeout")]
    pub handshake_timeout_secs: u32,
    /// Connections still in their TLS handshake at once from one source
    /// address: a flood from one address cannot take every
    /// `max_handshakes` slot from the controller.
    #[serde(default = "default_max_handshakes_per_peer")]
    pub max_handshakes_per_peer: usize,
    /// When set, only these addresses or networks (`10.0.0.5`,
    /// `10.0.0.0/24`) may connect; others are closed before any TLS byte
    /// is read.
    #[serde(default)]
    pub allowed_peers: Option<Vec<String>>,
    /// Refused connections recorded one by one per window; beyond this the
    /// audit gets one summary record with the counts of the window, so a
    /// flood of bad handshakes cannot fill the disk or monopolise the log.
    #[serde(default = "default_refusal_records")]
    pub refusal_records_per_window: u32,
    /// Length of that window.
    #[serde(default = "default_refusal_window")]
    pub refusal_window_secs: u32,
    /// The account unprivileged stages run as (no login, no groups; it can
    /// read none of the daemon's files). Absent: the daemon's own account
    /// (a lab).
    #[serde(default)]
    pub command_account: Option<String>,
    /// Per-command resource limits.
    #[serde(default)]
    pub limits: aiops_exec::sandbox::Limits,
    /// Kernel without Landlock: `refuse` (default) or `run_unconfined`.
    #[serde(default)]
    pub without_landlock: WithoutLandlock,
    /// The root executor.
    #[serde(default)]
    pub executor: ExecutorConfig,
}

fn default_refusal_window() -> u32 {
    60
}

fn default_max_connections() -> usize {
    1024
}
fn default_max_handshakes() -> usize {
    128
}
fn default_handshake_timeout() -> u32 {
    3
}
// Half of `max_handshakes`: one address cannot take every slot, and the
// controller's own bursts (64 parallel `aiops run`) still get through.
fn default_max_handshakes_per_peer() -> usize {
    64
}
fn default_refusal_records() -> u32 {
    60
}

fn default_max_timeout() -> u32 {
    600
}
fn default_max_output() -> u64 {
    16 * 1024 * 1024
}
fn default_skew() -> u32 {
    30
}
fn default_lifetime() -> u32 {
    600
}
fn default_concurrency() -> usize {
    64
}

/// A configuration that could not be loaded (exit 64).
pub use aiops_sys::ConfigError;

impl AgentConfig {
    /// Reads `path`; relative paths inside are relative to the file's directory.
    pub fn load(path: &Path) -> Result<AgentConfig, ConfigError> {
        let file = aiops_sys::ConfigFile::read(path)?;
        let err = |message: String| file.error(message);
        let mut config: AgentConfig =
            serde_yaml::from_str(&file.text).map_err(|e| err(e.to_string()))?;
        {
            use std::os::unix::fs::MetadataExt;
            let meta = std::fs::metadata(&file.path).map_err(|e| err(e.to_string()))?;
            if meta.mode() & 0o002 != 0 {
                return Err(err("is world-writable; refusing to trust it".into()));
            }
        }
        // A production agent's configuration names the approver keys: root's
        // alone (the agent's own account must not be able to change them).
        if !config.lab {
            aiops_certs::owner::check_root_owned(&file.path).map_err(err)?;
        }
        let abs = |p: &mut PathBuf| file.resolve(p);
        abs(&mut config.tls.ca);
        abs(&mut config.tls.cert);
        abs(&mut config.tls.key);
        abs(&mut config.state_dir);
        abs(&mut config.audit_log);
        if let Some(p) = config.policy_file.as_mut() {
            abs(p);
        }
        if !config.controller.signing_key.trim().starts_with("ed25519:") {
            let mut p = PathBuf::from(config.controller.signing_key.trim());
            abs(&mut p);
            config.controller.signing_key = std::fs::read_to_string(&p)
                .map_err(|e| err(format!("controller.signing_key {}: {e}", p.display())))?;
        }
        for k in config.approver_keys.iter_mut() {
            if !k.trim().starts_with("ed25519:") {
                let mut p = PathBuf::from(k.trim());
                abs(&mut p);
                if !config.lab {
                    aiops_certs::owner::check_root_owned(&p)
                        .map_err(|e| err(format!("approver_keys: {e}")))?;
                }
                *k = std::fs::read_to_string(&p)
                    .map_err(|e| err(format!("approver_keys {}: {e}", p.display())))?;
            }
        }
        if !aiops_types::TargetName::is_valid(&config.name) {
            return Err(err(format!(
                "name {:?} is not a valid target name",
                config.name
            )));
        }
        if config.max_connections == 0 || config.max_handshakes == 0 {
            return Err(err(
                "max_connections and max_handshakes must be at least 1".into()
            ));
        }
        if config.max_handshakes_per_peer == 0 {
            return Err(err("max_handshakes_per_peer must be at least 1".into()));
        }
        for p in config.allowed_peers.iter().flatten() {
            crate::admission::PeerNet::parse(p).map_err(err)?;
        }
        if !(1..=300).contains(&config.handshake_timeout_secs) {
            return Err(err("handshake_timeout_secs must be 1..=300".into()));
        }
        if !(1..=3600).contains(&config.refusal_window_secs) {
            return Err(err("refusal_window_secs must be 1..=3600".into()));
        }
        Ok(config)
    }
}

/// Target names: ASCII letters, digits, `.`, `-`, `_`.
pub fn valid_name_byte(b: u8) -> bool {
    b.is_ascii_alphanumeric() || matches!(b, b'.' | b'-' | b'_')
}
