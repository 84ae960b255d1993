//! The aiops agent: accepts mutual-TLS gRPC connections from the controller,
//! verifies each signed request, re-checks it against its own policy, runs it
//! without a shell and streams the output back. Every request, accepted or
//! refused, goes to the agent's own hash-chained audit log.
#![forbid(unsafe_code)]

pub mod admission;
pub mod config;
pub mod enroll;
pub mod exec;
pub mod interrupted;
pub mod receipt;
pub mod replay;
pub mod verify;

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use aiops_audit::AuditLog;
use aiops_certs::signing::VerifyingKey;
use aiops_policy::Policy;
use aiops_proto::agent::v1 as pb;
use clap::{Parser, Subcommand};
use serde_json::{Map, Value, json};
use tokio::net::TcpListener;
use tokio::sync::{Semaphore, mpsc};
use tokio_stream::wrappers::ReceiverStream;
use tonic::{Request, Response, Status};

use config::AgentConfig;
use replay::{ReplayCache, ReplayError};

/// Exit code for a bad configuration (EX_USAGE).
pub const EXIT_CONFIG: u8 = 64;

#[derive(Parser, Debug)]
#[command(
    name = "aiops-agent",
    version,
    about = "aiops agent: runs signed, policy-checked commands from the aiops controller"
)]
struct Cli {
    /// Configuration file.
    #[arg(
        long,
        global = true,
        env = "AIOPS_AGENT_CONFIG",
        default_value = "/etc/aiops-agent/agent.yml"
    )]
    config: PathBuf,
    #[command(subcommand)]
    command: Option<Cmd>,
}

#[derive(Subcommand, Debug)]
enum Cmd {
    /// Serve requests (the default).
    Serve,
    /// Install an enrollment bundle from `aiops certs bundle` (keys, certificates, name).
    Enroll {
        /// The bundle file.
        bundle: PathBuf,
    },
    /// Work with the agent's audit log.
    Audit {
        #[command(subcommand)]
        command: AuditCmd,
    },
}

#[derive(Subcommand, Debug)]
enum AuditCmd {
    /// Check the hash chain; names the first bad line.
    Verify {
        /// Log file (default: the configured one).
        #[arg(long)]
        file: Option<PathBuf>,
        /// The agent's audit public key (`ed25519:<hex>`, or a file holding
        /// it, e.g. the controller's pin) to check the signed checkpoints
        /// with (default: the configured state_dir's audit.key, then
        /// audit.pub; without one only the chain is checked).
        #[arg(long)]
        key: Option<String>,
    },
    /// Ship every record, in order and at least once, to syslog (RFC 5425)
    /// and OTLP sinks (`aiops-agent-audit-export.service`; never writes the log).
    Export(aiops_export::cli::ExportArgs),
}

/// The agent side's export configuration: outside /etc/aiops-agent, which
/// the export account (not in group `aiops`) cannot enter.
pub const EXPORT_CONFIG: &str = "/etc/aiops-agent-export/export.yml";

/// Makes the audit log (and its `.head`) mode 0640 for the export account:
/// the unit's `UMask=0077` made them 0600. The packaged log directory is
/// `aiops:aiops-audit` 2750, so the files get group `aiops-audit` (read, no
/// write; the directory lets that group list, never create or remove).
/// Only files the daemon owns; best effort (export is not worth refusing
/// requests over).
fn share_log_read_only(log: &std::path::Path) {
    use std::os::unix::fs::{MetadataExt, PermissionsExt};
    let mut head = log.as_os_str().to_owned();
    head.push(".head");
    for p in [log.to_path_buf(), PathBuf::from(head)] {
        let Ok(meta) = std::fs::symlink_metadata(&p) else {
            continue;
        };
        if !meta.is_file()
            || meta.uid() != nix::unistd::geteuid().as_raw()
            || meta.mode() & 0o7777 == 0o640
        {
            continue;
        }
        if let Err(e) = std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o640)) {
            tracing::warn!("{}: making it readable for the exporter: {e}", p.display());
        }
    }
}

/// Entry point of the `aiops-agent` binary.
pub fn main() -> ExitCode {
    let cli = Cli::parse();
    // Colour only on a terminal: under systemd or `>file` escape codes would
    // land in the journal and the log files.
    tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_env("AIOPS_LOG")
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info")),
        )
        .init();
    aiops_certs::install_crypto_provider();
    match cli.command.unwrap_or(Cmd::Serve) {
        Cmd::Enroll { bundle } => match enroll::enroll(&cli.config, &bundle) {
            Ok(e) => {
                println!("{}", json!({"status": "enrolled", "enrolled": e}));
                ExitCode::SUCCESS
            }
            Err(e) => {
                println!("{}", json!({"status": "error", "message": e}));
                ExitCode::from(EXIT_CONFIG)
            }
        },
        Cmd::Audit {
            command: AuditCmd::Export(args),
        } => aiops_export::cli::cmd(
            args,
            &aiops_export::cli::Defaults {
                export_config: PathBuf::from(EXPORT_CONFIG),
                service_name: "aiops-agent",
                audit_log: &|| {
                    AgentConfig::load(&cli.config)
                        .map(|c| c.audit_log)
                        .map_err(|e| e.to_string())
                },
                program: "aiops-agent",
            },
        ),
        Cmd::Audit {
            command: AuditCmd::Verify { file, key },
        } => {
            let config = AgentConfig::load(&cli.config);
            let file = match (file, &config) {
                (Some(f), _) => f,
                (None, Ok(c)) => c.audit_log.clone(),
                (None, Err(e)) => {
                    eprintln!("aiops-agent: {e}");
                    return ExitCode::from(EXIT_CONFIG);
                }
            };
            let key = match receipt::verify_key(key.as_deref(), config.ok().as_ref()) {
                Ok(k) => k,
                Err(e) => {
                    println!("{}", json!({"status": "error", "file": file, "message": e}));
                    return ExitCode::from(EXIT_CONFIG);
                }
            };
            let check = key.as_ref().map(|k| {
                move |id: &str, m: &[u8], s: &[u8]| id == k.key_id() && k.verify(m, s).is_ok()
            });
            let (intact, mut report) = aiops_audit::verify_report_covered(
                &file,
                check
                    .as_ref()
                    .map(|c| c as &dyn Fn(&str, &[u8], &[u8]) -> bool),
                aiops_audit::Coverage::Every,
            );
            if let Some(k) = &key {
                report["key"] = Value::from(k.to_text());
            }
            println!("{report}");
            if intact {
                ExitCode::SUCCESS
            } else {
                ExitCode::FAILURE
            }
        }
        Cmd::Serve => {
            let config = match AgentConfig::load(&cli.config) {
                Ok(c) => c,
                Err(e) => {
                    eprintln!("aiops-agent: {e}");
                    return ExitCode::from(EXIT_CONFIG);
                }
            };
            let rt = match tokio::runtime::Builder::new_multi_thread()
                .worker_threads(2)
                .enable_all()
                .build()
            {
                Ok(rt) => rt,
                Err(e) => {
                    eprintln!("aiops-agent: runtime: {e}");
                    return ExitCode::FAILURE;
                }
            };
            rt.block_on(async move {
                match Agent::new(config, &cli.config) {
                    Ok(agent) => match agent.serve(shutdown_signal()).await {
                        Ok(()) => ExitCode::SUCCESS,
                        Err(e) => {
                            eprintln!("aiops-agent: {e}");
                            ExitCode::FAILURE
                        }
                    },
                    Err(e) => {
                        eprintln!("aiops-agent: {e}");
                        ExitCode::from(EXIT_CONFIG)
                    }
                }
            })
        }
    }
}

async fn shutdown_signal() {
    use tokio::signal::unix::{SignalKind, signal};
    let (Ok(mut term), Ok(mut int)) = (
        signal(SignalKind::terminate()),
        signal(SignalKind::interrupt()),
    ) else {
        return std::future::pending().await;
    };
    tokio::select! {
        _ = term.recv() => {},
        _ = int.recv() => {},
    }
}

/// Errors starting the agent.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    /// Refusing to run as root with a production configuration.
    #[error(
        "refusing to run as root: only a lab configuration (lab: true) may; run as the `aiops` user"
    )]
    Root,
    /// Configuration, key, policy or TLS problem.
    #[error("{0}")]
    Setup(String),
}

/// A configured agent, ready to serve.
pub struct Agent {
    state: Arc<State>,
    tls: rustls::ServerConfig,
}

struct State {
    config: AgentConfig,
    policy: Policy,
    controller_key: VerifyingKey,
    approver_keys: Vec<VerifyingKey>,
    replay: ReplayCache,
    audit: AuditLog,
    slots: Semaphore,
    cert_not_after: i64,
    refusals: std::sync::Mutex<RefusalWindow>,
    runner: exec::Runner,
    /// Signs receipts and the log's checkpoints (see [`receipt`]).
    audit_key: Arc<aiops_certs::signing::SigningKey>,
}

/// Refused connections of the current window: how many were recorded one
/// by one, and how many were only counted (by reason).
#[derive(Debug, Default)]
struct RefusalWindow {
    window: i64,
    recorded: u32,
    counted: std::collections::BTreeMap<&'static str, u64>,
}

impl Agent {
    /// Loads keys, policy, replay cache and TLS configuration; binds nothing
    /// yet. `config_path` is where the executor finds the same configuration
    /// when it is started directly (a lab).
    pub fn new(config: AgentConfig, config_path: &std::path::Path) -> Result<Agent, StartError> {
        if nix::unistd::geteuid().is_root() && !config.lab {
            return Err(StartError::Root);
        }
        let setup =
            |what: &str, e: &dyn std::fmt::Display| StartError::Setup(format!("{what}: {e}"));
        // Without a command account, commands would run as the daemon and pass
        // the permission checks on its key, audit and state.
        if !config.lab && config.command_account.is_none() {
            return Err(setup(
                "command_account",
                &"a production agent (lab: false) needs its own account for commands (the package's aiops-run)",
            ));
        }
        let controller_key = VerifyingKey::parse(&config.controller.signing_key)
            .map_err(|e| setup("controller.signing_key", &e))?;
        let approver_keys = config
            .approver_keys
            .iter()
            .map(|k| VerifyingKey::parse(k))
            .collect::<Result<Vec<_>, _>>()
            .map_err(|e| setup("approver_keys", &e))?;
        let policy = match &config.policy_file {
            Some(p) => Policy::load(p).map_err(|e| setup("policy", &e))?,
            None => Policy::builtin(),
        };
        let tls =
            aiops_certs::tls::server_config(&config.tls.ca, &config.tls.cert, &config.tls.key)
                .map_err(|e| setup("tls", &e))?;
        let cert_pem =
            std::fs::read_to_string(&config.tls.cert).map_err(|e| setup("tls.cert", &e))?;
        let cert_not_after =
            aiops_certs::pki::cert_not_after(&cert_pem).map_err(|e| setup("tls.cert", &e))?;
        let skew_ms = i64::from(config.clock_skew_secs) * 1000;
        if let Some(dir) = config.audit_log.parent() {
            std::fs::create_dir_all(dir).map_err(|e| setup("audit_log", &e))?;
        }
        // The daemon's audit key signs every record it appends (a checkpoint
        // per append: one Ed25519 signature, in the same write and fsync),
        // so a rewrite by anyone without the key fails `audit verify`.
        {
            use std::os::unix::fs::DirBuilderExt;
            std::fs::DirBuilder::new()
                .recursive(true)
                .mode(0o700)
                .create(&config.state_dir)
                .map_err(|e| setup(&config.state_dir.display().to_string(), &e))?;
        }
        let audit_key = Arc::new(
            receipt::load_or_create(&config.state_dir).map_err(|e| setup("audit key", &e))?,
        );
        let audit_pub = audit_key.verifying_key();
        receipt::write_public(&config.state_dir, &audit_pub).map_err(|e| setup("audit key", &e))?;
        let signer = audit_key.clone();
        let audit = AuditLog::new(&config.audit_log)
            .with_checkpoints(audit_pub.key_id(), move |m| signer.sign(m));
        // A torn tail (crash, full disk) is cut off and recorded, not refused;
        // on a disk still full, requests fail closed until there is space and
        // the first append that fits repairs it.
        if let Err(e) = audit.repair() {
            tracing::error!("audit log: {e}; requests fail closed until it can be written");
        }
        share_log_read_only(&config.audit_log);
        // A request can be replayed until its expiry plus the skew; it was
        // accepted at most the skew before it was issued.
        let horizon_ms = i64::from(config.max_request_lifetime_secs) * 1000 + 3 * skew_ms;
        let replay = ReplayCache::open(&config.state_dir, skew_ms, &audit, horizon_ms)
            .map_err(|e| setup(&config.state_dir.display().to_string(), &e))?;
        match interrupted::mark(&audit, &config.state_dir, &config.name) {
            Ok(ids) if !ids.is_empty() => tracing::warn!(
                ?ids,
                "requests accepted before the last stop had no outcome: recorded as interrupted"
            ),
            Ok(_) => {}
            // Tried again at the next start.
            Err(e) => tracing::error!("recording interrupted requests: {e}"),
        }
        let runner = runner(&config, config_path).map_err(|e| setup("executor", &e))?;
        Ok(Agent {
            tls,
            state: Arc::new(State {
                slots: Semaphore::new(config.max_concurrent.max(1)),
                config,
                policy,
                controller_key,
                approver_keys,
                replay,
                audit,
                cert_not_after,
                refusals: std::sync::Mutex::new(RefusalWindow::default()),
                runner,
                audit_key,
            }),
        })
    }

    /// Binds the configured address and serves until `shutdown` completes.
    pub async fn serve(
        self,
        shutdown: impl Future<Output = ()> + Send + 'static,
    ) -> Result<(), StartError> {
        let listener = TcpListener::bind(self.state.config.listen)
            .await
            .map_err(|e| StartError::Setup(format!("listen {}: {e}", self.state.config.listen)))?;
        self.serve_on(listener, shutdown).await
    }

    /// Serves on an already bound listener.
    pub async fn serve_on(
        self,
        listener: TcpListener,
        shutdown: impl Future<Output = ()> + Send + 'static,
    ) -> Result<(), StartError> {
        let state = self.state;
        // Certificates have a finite lifetime: warn at start and then daily
        // while fewer than 30 days are left.
        let not_after = state.cert_not_after;
        let expiry_watch = tokio::spawn(async move {
            let mut daily = tokio::time::interval(Duration::from_secs(86_400));
            loop {
                daily.tick().await;
                let days_left = (not_after - aiops_sys::now_ms() / 1000) / 86_400;
                if days_left < 30 {
                    tracing::warn!(
                        days_left,
                        "the agent certificate expires soon; issue a new bundle with `aiops certs renew NAME --address ADDR` and enroll it"
                    );
                }
            }
        });
        tracing::info!(
            name = %state.config.name,
            listen = %listener.local_addr().map(|a| a.to_string()).unwrap_or_default(),
            policy = %state.policy.digest(),
            "aiops-agent serving"
        );
        let flush_state = state.clone();
        let refusal_flush = tokio::spawn(async move {
            let every = u64::from(flush_state.config.refusal_window_secs / 4).clamp(1, 15);
            let mut tick = tokio::time::interval(Duration::from_secs(every));
            loop {
                tick.tick().await;
                let state = flush_state.clone();
                // Off the async workers: rolling may append a summary record.
                let _ = tokio::task::spawn_blocking(move || {
                    let mut w = state.refusals.lock().unwrap_or_else(|p| p.into_inner());
                    state.roll_refusals(&mut w);
                })
                .await;
            }
        });
        let (conn_tx, conn_rx) = mpsc::channel(64);
        let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(self.tls));
        let accept_state = state.clone();
        // Every connection holds a permit until it closes, and one more while
        // its handshake runs: a peer without our certificate can hold at most
        // `max_handshakes` connections, each for `handshake_timeout_secs`.
        let connections = Arc::new(Semaphore::new(state.config.max_connections));
        let handshakes = Arc::new(Semaphore::new(state.config.max_handshakes));
        let per_peer = admission::PerPeer::new(state.config.max_handshakes_per_peer);
        let allowed: Option<Vec<admission::PeerNet>> =
            state.config.allowed_peers.as_ref().map(|list| {
                list.iter()
                    .filter_map(|p| admission::PeerNet::parse(p).ok())
                    .collect()
            });
        let handshake_timeout = Duration::from_secs(u64::from(state.config.handshake_timeout_secs));
        let accept_loop = tokio::spawn(async move {
            loop {
                let (tcp, peer) = match listener.accept().await {
                    Ok(x) => x,
                    Err(e) => {
                        tracing::warn!("accept: {e}");
                        tokio::time::sleep(Duration::from_millis(50)).await;
                        continue;
                    }
                };
                // Before any TLS byte is read: the address list, then this
                // address's share of the pending handshakes.
                if allowed
                    .as_ref()
                    .is_some_and(|nets| !nets.iter().any(|n| n.contains(peer.ip())))
                {
                    drop(tcp);
                    accept_state.refused(peer, "peer_not_allowed", "not in allowed_peers");
                    continue;
                }
                let Some(peer_slot) = per_peer.try_acquire(peer.ip()) else {
                    drop(tcp);
                    accept_state.refused(
                        peer,
                        "too_many_handshakes_from_peer",
                        "max_handshakes_per_peer reached",
                    );
                    continue;
                };
                let Ok(connection) = connections.clone().try_acquire_owned() else {
                    drop(tcp);
                    accept_state.refused(peer, "too_many_connections", "max_connections reached");
                    continue;
                };
                let Ok(handshake) = handshakes.clone().try_acquire_owned() else {
                    drop(tcp);
                    accept_state.refused(peer, "too_many_handshakes", "max_handshakes reached");
                    continue;
                };
                let _ = tcp.set_nodelay(true);
                let acceptor = acceptor.clone();
                let conn_tx = conn_tx.clone();
                let state = accept_state.clone();
                tokio::spawn(async move {
                    let accepted =
                        tokio::time::timeout(handshake_timeout, acceptor.accept(tcp)).await;
                    drop(handshake);
                    drop(peer_slot);
                    match accepted {
                        Ok(Ok(tls)) => {
                            let identity = &state.config.controller.identity;
                            let ok = tls
                                .get_ref()
                                .1
                                .peer_certificates()
                                .and_then(|c| c.first())
                                .is_some_and(|c| aiops_certs::tls::has_identity(c, identity));
                            if ok {
                                let conn = Guarded {
                                    inner: tls,
                                    _permit: connection,
                                };
                                let _ = conn_tx.send(Ok::<_, std::io::Error>(conn)).await;
                            } else {
                                state.refused(
                                    peer,
                                    "wrong_identity",
                                    &format!("client certificate is not for {identity:?}"),
                                );
                            }
                        }
                        // A bare TCP connect that closes without a TLS hello (a port
                        // probe, `lab up`'s readiness check) is not a request.
                        Ok(Err(e)) if e.kind() == std::io::ErrorKind::UnexpectedEof => {
                            tracing::debug!(%peer, "connection closed before the TLS handshake");
                        }
                        Ok(Err(e)) => state.refused(peer, "tls_refused", &e.to_string()),
                        Err(_) => state.refused(
                            peer,
                            "tls_timeout",
                            &format!("handshake took longer than {handshake_timeout:?}"),
                        ),
                    }
                });
            }
        });
        let (health_reporter, health) = tonic_health::server::health_reporter();
        health_reporter
            .set_serving::<pb::agent_server::AgentServer<AgentService>>()
            .await;
        let reflection_v1 = tonic_reflection::server::Builder::configure()
            .register_encoded_file_descriptor_set(aiops_proto::FILE_DESCRIPTOR_SET)
            .register_encoded_file_descriptor_set(tonic_health::pb::FILE_DESCRIPTOR_SET)
            .build_v1()
            .map_err(|e| StartError::Setup(format!("reflection: {e}")))?;
        let reflection_v1alpha = tonic_reflection::server::Builder::configure()
            .register_encoded_file_descriptor_set(aiops_proto::FILE_DESCRIPTOR_SET)
            .register_encoded_file_descriptor_set(tonic_health::pb::FILE_DESCRIPTOR_SET)
            .build_v1alpha()
            .map_err(|e| StartError::Setup(format!("reflection: {e}")))?;
        let service = pb::agent_server::AgentServer::new(AgentService { state })
            .max_decoding_message_size(256 * 1024);
        let result = tonic::transport::Server::builder()
            .add_service(service)
            .add_service(health)
            .add_service(reflection_v1)
            .add_service(reflection_v1alpha)
            .serve_with_incoming_shutdown(ReceiverStream::new(conn_rx), shutdown)
            .await
            .map_err(|e| StartError::Setup(format!("serve: {e}")));
        accept_loop.abort();
        expiry_watch.abort();
        refusal_flush.abort();
        result
    }
}

impl State {
    /// Appends a record from async code: the append (flock, write,
    /// fdatasync) runs on the blocking pool, so a slow audit disk holds up
    /// this request only, never the async workers serving the others.
    async fn audit_off_worker(
        self: &Arc<State>,
        fields: Value,
    ) -> Result<aiops_audit::Appended, String> {
        let state = self.clone();
        tokio::task::spawn_blocking(move || state.audit(fields))
            .await
            .unwrap_or_else(|e| Err(format!("audit writer: {e}")))
    }

    /// Records `id` in the replay cache from async code (its lock is held
    /// across a write and maybe an fsync: on the blocking pool, like the audit).
    async fn replay_off_worker(
        self: &Arc<State>,
        id: String,
        expires_ms: i64,
        durable: bool,
    ) -> Result<(), ReplayError> {
        let state = self.clone();
        tokio::task::spawn_blocking(move || state.replay.check_and_insert(&id, expires_ms, durable))
            .await
            .unwrap_or_else(|e| {
                Err(ReplayError::Io {
                    path: String::new(),
                    message: format!("replay writer: {e}"),
                })
            })
    }

    fn audit(&self, fields: Value) -> Result<aiops_audit::Appended, String> {
        let Value::Object(mut map) = fields else {
            return Err("audit record is not an object".into());
        };
        map.insert("agent".into(), Value::from(self.config.name.clone()));
        self.audit.append(map).map_err(|e| e.to_string())
    }

    /// A refused connection: recorded one by one up to
    /// `refusal_records_per_window`, then only counted; the counts of a
    /// window go into one `refused_summary` record once the window is over
    /// (at the next refusal, or by the periodic flush).
    ///
    /// Called from the accept loop: the record (flock, write, fdatasync) is
    /// written on the blocking pool, so a slow audit disk never stalls
    /// accepting connections.
    fn refused(self: &Arc<Self>, peer: SocketAddr, reason: &'static str, message: &str) {
        tracing::warn!(%peer, reason, message, "connection refused");
        let state = self.clone();
        let message = message.to_string();
        tokio::task::spawn_blocking(move || state.record_refusal(peer, reason, &message));
    }

    fn record_refusal(&self, peer: SocketAddr, reason: &'static str, message: &str) {
        let record = {
            let mut w = self.refusals.lock().unwrap_or_else(|p| p.into_inner());
            self.roll_refusals(&mut w);
            let record = w.recorded < self.config.refusal_records_per_window;
            if record {
                w.recorded += 1;
            } else {
                *w.counted.entry(reason).or_default() += 1;
            }
            record
        };
        if record
            && let Err(e) = self.audit(json!({"event": "refused", "reason": reason, "message": message, "peer": peer.to_string()}))
        {
            tracing::error!("audit write failed: {e}");
        }
    }

    /// Starts a new window when the clock says so, writing the summary of
    /// the window that ended if anything was only counted.
    fn roll_refusals(&self, w: &mut RefusalWindow) {
        let len_ms = i64::from(self.config.refusal_window_secs) * 1000;
        let window = aiops_sys::now_ms() / len_ms;
        if w.window == window {
            return;
        }
        let counted = std::mem::take(&mut w.counted);
        let ended = w.window;
        *w = RefusalWindow {
            window,
            ..RefusalWindow::default()
        };
        if counted.is_empty() {
            return;
        }
        let total: u64 = counted.values().sum();
        let r = json!({
            "event": "refused_summary",
            "window_start": aiops_sys::rfc3339_ms(ended * len_ms),
            "window_secs": self.config.refusal_window_secs,
            "not_recorded_one_by_one": total,
            "by_reason": counted,
        });
        if let Err(e) = self.audit(r) {
            tracing::error!("audit write failed: {e}");
        }
    }
}

/// How unprivileged stages are confined, for `Describe`.
fn confinement(config: &AgentConfig, runner: &exec::Runner) -> String {
    let landlock = match &runner.readonly {
        Some(r) => format!("landlock_v{}", r.abi()),
        None => match config.without_landlock {
            config::WithoutLandlock::Refuse => "no_landlock:refused".to_string(),
            config::WithoutLandlock::RunUnconfined => "no_landlock:unconfined".to_string(),
        },
    };
    let account = config
        .command_account
        .as_deref()
        .unwrap_or("(the agent's own)");
    format!("{landlock} no_new_privs rlimits account={account}")
}

/// Where the packaged executor lives.
pub const EXECUTOR_PATH: &str = "/usr/libexec/aiops-agent/aiops-exec";
/// Where the packaged account switch lives.
pub const SANDBOX_PATH: &str = "/usr/libexec/aiops-agent/aiops-sandbox";

/// The command account, the Landlock domain and the way to the executor.
fn runner(config: &AgentConfig, config_path: &std::path::Path) -> Result<exec::Runner, String> {
    use aiops_exec::sandbox::{Account, ReadOnly};
    let switch = match &config.command_account {
        Some(name) => {
            let a = Account::lookup(name)?;
            if a.uid == 0 || a.gid == 0 {
                return Err(format!("command_account {name:?} is root"));
            }
            Some(
                config
                    .executor
                    .sandbox_path
                    .clone()
                    .unwrap_or_else(|| PathBuf::from(SANDBOX_PATH)),
            )
        }
        None => None,
    };
    let readonly = ReadOnly::new(&[])?.map(Arc::new);
    if readonly.is_none() {
        tracing::warn!(
            without_landlock = ?config.without_landlock,
            "this kernel has no Landlock: unprivileged commands are not kernel-confined to read-only"
        );
    }
    let path = config.executor.path.clone().unwrap_or_else(|| {
        let beside = std::env::current_exe()
            .ok()
            .and_then(|p| p.parent().map(|d| d.join("aiops-exec")));
        match beside {
            Some(p) if config.lab && p.is_file() => p,
            _ => PathBuf::from(EXECUTOR_PATH),
        }
    });
    let config_file =
        std::fs::canonicalize(config_path).unwrap_or_else(|_| config_path.to_path_buf());
    Ok(exec::Runner {
        switch,
        limits: config.limits,
        readonly,
        executor: exec::ExecutorCmd {
            path,
            sudo: config.executor.sudo.unwrap_or(!config.lab),
            config: config_file,
        },
    })
}

/// A served connection and its `max_connections` permit, released when the
/// connection closes.
struct Guarded {
    inner: tokio_rustls::server::TlsStream<tokio::net::TcpStream>,
    _permit: tokio::sync::OwnedSemaphorePermit,
}

impl tonic::transport::server::Connected for Guarded {
    type ConnectInfo = <tokio_rustls::server::TlsStream<tokio::net::TcpStream> as tonic::transport::server::Connected>::ConnectInfo;

    fn connect_info(&self) -> Self::ConnectInfo {
        self.inner.connect_info()
    }
}

impl tokio::io::AsyncRead for Guarded {
    fn poll_read(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
        buf: &mut tokio::io::ReadBuf<'_>,
    ) -> std::task::Poll<std::io::Result<()>> {
        std::pin::Pin::new(&mut self.inner).poll_read(cx, buf)
    }
}

impl tokio::io::AsyncWrite for Guarded {
    fn poll_write(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
        buf: &[u8],
    ) -> std::task::Poll<std::io::Result<usize>> {
        std::pin::Pin::new(&mut self.inner).poll_write(cx, buf)
    }

    fn poll_write_vectored(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
        bufs: &[std::io::IoSlice<'_>],
    ) -> std::task::Poll<std::io::Result<usize>> {
        std::pin::Pin::new(&mut self.inner).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }

    fn poll_flush(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<std::io::Result<()>> {
        std::pin::Pin::new(&mut self.inner).poll_flush(cx)
    }

    fn poll_shutdown(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<std::io::Result<()>> {
        std::pin::Pin::new(&mut self.inner).poll_shutdown(cx)
    }
}

struct AgentService {
    state: Arc<State>,
}

/// Records a `ReadAudit` page holds at most.
pub const READ_AUDIT_MAX_RECORDS: u32 = 1000;
/// Bytes a `ReadAudit` page holds at most (but always one record).
pub const READ_AUDIT_MAX_BYTES: usize = 1 << 20;

/// A page of the agent's log for `ReadAudit`.
#[derive(Debug, PartialEq)]
struct AuditPage {
    records: Vec<String>,
    more: bool,
    /// Byte offset just after the last record returned.
    next_offset: u64,
}

#[derive(Debug)]
enum PageError {
    /// The cursor does not point at record `from` after `prev_hash`.
    Cursor(String),
    Io(String),
}

/// Up to `max` complete records of the log at `path` from record `from`
/// (1-based), and whether more follow. A page holds at most
/// [`READ_AUDIT_MAX_RECORDS`] records and about [`READ_AUDIT_MAX_BYTES`]
/// (always at least one record). With a cursor (`offset` > 0, from the
/// previous page's `next_offset`) reading starts there, after checking
/// that the record there is `from` and chains onto `prev_hash`: a page
/// costs its own records, not the log before it. Without one the log is
/// read from its start (what an older controller asks).
fn read_audit_page(
    path: &std::path::Path,
    from: u64,
    max: u32,
    offset: u64,
    prev_hash: &str,
) -> Result<AuditPage, PageError> {
    use std::io::{BufRead, Read, Seek, SeekFrom};
    let io = |e: std::io::Error| PageError::Io(e.to_string());
    let mut file = match std::fs::File::open(path) {
        Ok(f) => f,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound && offset == 0 => {
            return Ok(AuditPage {
                records: Vec::new(),
                more: false,
                next_offset: 0,
            });
        }
        Err(e) => return Err(io(e)),
    };
    let max = usize::try_from(max.clamp(1, READ_AUDIT_MAX_RECORDS)).unwrap_or(1);
    let from = from.max(1);
    if offset > 0 {
        let cursor = |m: String| PageError::Cursor(format!("offset {offset}, record {from}: {m}"));
        let len = file.metadata().map_err(io)?.len();
        if offset > len {
            return Err(cursor(format!("the log has {len} bytes")));
        }
        let mut before = [0u8; 1];
        file.seek(SeekFrom::Start(offset - 1)).map_err(io)?;
        file.read_exact(&mut before).map_err(io)?;
        if before[0] != b'\n' {
            return Err(cursor("not the start of a record".into()));
        }
    }
    let mut reader = std::io::BufReader::new(file);
    let mut line = Vec::new();
    let mut out = Vec::new();
    let mut bytes = 0usize;
    let mut pos = offset;
    let mut n = if offset > 0 { from - 1 } else { 0 };
    loop {
        line.clear();
        let got = reader.read_until(b'\n', &mut line).map_err(io)?;
        if got == 0 || line.last() != Some(&b'\n') {
            // The end, or a torn tail (not a record).
            return Ok(AuditPage {
                records: out,
                more: false,
                next_offset: pos,
            });
        }
        n += 1;
        if n < from {
            pos += got as u64;
            continue;
        }
        if offset > 0 && n == from {
            let record: Map<String, Value> = serde_json::from_slice(&line).map_err(|e| {
                PageError::Cursor(format!("offset {offset}: not a record there ({e})"))
            })?;
            let seq = record.get("seq").and_then(Value::as_u64);
            let prev = record.get("prev").and_then(Value::as_str);
            if seq != Some(from) || prev != Some(prev_hash) {
                return Err(PageError::Cursor(format!(
                    "offset {offset} holds record {seq:?} after {prev:?}, not record {from} \
                     after {prev_hash:?}: the log changed, or the cursor is forged"
                )));
            }
        }
        if out.len() == max || (!out.is_empty() && bytes + line.len() > READ_AUDIT_MAX_BYTES) {
            return Ok(AuditPage {
                records: out,
                more: true,
                next_offset: pos,
            });
        }
        pos += got as u64;
        line.pop();
        bytes += line.len();
        out.push(String::from_utf8_lossy(&line).into_owned());
    }
}

fn request_fields(req: &pb::CommandRequest) -> Map<String, Value> {
    let Value::Object(m) = json!({
        "controller_seq": req.controller_seq,
        "controller_hash": req.controller_hash,
        "request_id": req.request_id,
        "target": req.target,
        "command": req.command,
        "requester": req.requester,
        "reason": req.reason,
        "decision": pb::Decision::try_from(req.decision).map(|d| d.as_str_name()).unwrap_or("?"),
        "approval_id": req.approval_id,
    }) else {
        unreachable!("json! object")
    };
    m
}

#[tonic::async_trait]
impl pb::agent_server::Agent for AgentService {
    type ExecuteStream = ReceiverStream<Result<pb::ExecEvent, Status>>;

    async fn execute(
        &self,
        request: Request<pb::SignedCommand>,
    ) -> Result<Response<Self::ExecuteStream>, Status> {
        let state = self.state.clone();
        let peer = request
            .remote_addr()
            .map(|a| a.to_string())
            .unwrap_or_default();
        // Defence in depth: the accept loop already checked the identity.
        let identity_ok = request
            .peer_certs()
            .and_then(|c| c.first().cloned())
            .is_some_and(|c| aiops_certs::tls::has_identity(&c, &state.config.controller.identity));
        let signed = request.into_inner();
        let refuse = async |code: &str,
                            message: &str,
                            extra: Option<&pb::CommandRequest>,
                            status: Status| {
            let mut rec = extra.map(request_fields).unwrap_or_default();
            rec.insert("event".into(), "refused".into());
            rec.insert("reason".into(), code.into());
            rec.insert("message".into(), message.into());
            rec.insert("peer".into(), peer.clone().into());
            if let Err(e) = state.audit_off_worker(Value::Object(rec)).await {
                return Status::unavailable(format!("audit_failed: {e}"));
            }
            status
        };
        if !identity_ok {
            return Err(refuse(
                "wrong_identity",
                "client identity",
                None,
                Status::permission_denied(
                    "wrong_identity: client certificate is not the controller's",
                ),
            )
            .await);
        }
        let verifier = verify::Verifier {
            name: &state.config.name,
            controller_key: &state.controller_key,
            policy: &state.policy,
            approver_keys: &state.approver_keys,
            skew_ms: i64::from(state.config.clock_skew_secs) * 1000,
            max_lifetime_ms: i64::from(state.config.max_request_lifetime_secs) * 1000,
            max_timeout_ms: state.config.max_timeout_secs.saturating_mul(1000),
            max_output_cap: state.config.max_output_cap_bytes,
        };
        let verified = match verifier.verify(&signed, aiops_sys::now_ms()) {
            Ok(v) => v,
            Err(r) => {
                // Only a signature-checked request's fields are worth recording as such.
                let decoded = (r.code != aiops_types::RefusalCode::BadSignature
                    && r.code != aiops_types::RefusalCode::UnknownKey)
                    .then(|| prost::Message::decode(signed.request.as_slice()).ok())
                    .flatten();
                return Err(
                    refuse(r.code.as_str(), &r.message, decoded.as_ref(), r.status()).await,
                );
            }
        };
        let req = verified.request;
        let unprivileged = verified.grant.is_none()
            && verified
                .decision
                .plan
                .pipelines
                .iter()
                .flat_map(|p| &p.stages)
                .any(|s| !s.privileged);
        if unprivileged
            && state.runner.readonly.is_none()
            && state.config.without_landlock == config::WithoutLandlock::Refuse
        {
            return Err(refuse(
                aiops_types::RefusalCode::LandlockUnavailable.as_str(),
                "this kernel has no Landlock and without_landlock is refuse",
                Some(&req),
                Status::failed_precondition(
                    "landlock_unavailable: this kernel has no Landlock; unprivileged commands are refused (without_landlock: refuse)",
                ),
            )
            .await);
        }
        if let Err(e) = state
            .replay_off_worker(req.request_id.clone(), req.expires_at_ms, false)
            .await
        {
            let (code, status) = match &e {
                ReplayError::Replayed(_) => (
                    "replayed",
                    Status::permission_denied(format!("replayed: {e}")),
                ),
                ReplayError::Io { .. } => (
                    "replay_cache",
                    Status::unavailable(format!("replay_cache: {e}")),
                ),
            };
            return Err(refuse(code, &e.to_string(), Some(&req), status).await);
        }
        if let Some(grant) = &verified.grant {
            // An approval is used once, whatever request carries it.
            let key = format!("approval:{}:{}", grant.approval_id, state.config.name);
            if let Err(e) = state
                .replay_off_worker(key, grant.expires_at_ms, true)
                .await
            {
                let (code, status) = match &e {
                    ReplayError::Replayed(_) => (
                        "approval_used",
                        Status::permission_denied(format!(
                            "approval_used: approval {} was already used",
                            grant.approval_id
                        )),
                    ),
                    ReplayError::Io { .. } => (
                        "replay_cache",
                        Status::unavailable(format!("replay_cache: {e}")),
                    ),
                };
                return Err(refuse(code, &e.to_string(), Some(&req), status).await);
            }
        }
        let mut accepted = request_fields(&req);
        if let Some(grant) = &verified.grant {
            accepted.insert("approver".into(), grant.approver.clone().into());
        }
        accepted.insert("event".into(), "accepted".into());
        // With the request id, what the replay cache needs after a power loss.
        accepted.insert("expires_at_ms".into(), req.expires_at_ms.into());
        accepted.insert("risk".into(), verified.decision.risk.as_str().into());
        accepted.insert("peer".into(), peer.clone().into());
        if let Err(e) = state.audit_off_worker(Value::Object(accepted)).await {
            // Fail closed: nothing runs without its audit record.
            return Err(Status::unavailable(format!("audit_failed: {e}")));
        }
        let (tx, rx) = mpsc::channel(16);
        let plan = verified.decision.plan;
        let job = exec::Job {
            signed: prost::Message::encode_to_vec(&signed),
            approved: verified.grant.is_some(),
        };
        tokio::spawn(async move {
            let Ok(_slot) = state.slots.acquire().await else {
                return;
            };
            let limits = exec::Limits {
                timeout: Duration::from_millis(u64::from(req.timeout_ms)),
                output_cap: req.output_cap_bytes,
            };
            // Output passes through here on its way out, so the receipt can
            // say what was sent; a controller that goes away closes this
            // channel too, which the executor notices.
            let (inner_tx, mut inner_rx) = mpsc::channel::<Result<pb::ExecEvent, Status>>(16);
            let out_tx = tx.clone();
            let forward = tokio::spawn(async move {
                let mut digests = [
                    receipt::StreamDigest::default(),
                    receipt::StreamDigest::default(),
                ];
                loop {
                    tokio::select! {
                        ev = inner_rx.recv() => {
                            let Some(ev) = ev else { break };
                            if let Ok(pb::ExecEvent { event: Some(pb::exec_event::Event::Output(c)) }) = &ev {
                                digests[usize::from(c.stream == pb::Stream::Stdout as i32)].update(&c.data);
                            }
                            if out_tx.send(ev).await.is_err() {
                                break;
                            }
                        }
                        () = out_tx.closed() => break,
                    }
                }
                digests
            });
            let outcome = exec::execute(&plan, &state.runner, &job, limits, inner_tx).await;
            let [stderr_digest, stdout_digest] = forward.await.unwrap_or_default();
            let (stdout_sent, stderr_sent) = (stdout_digest.bytes, stderr_digest.bytes);
            let (stdout_sha256, stderr_sha256) = (stdout_digest.finish(), stderr_digest.finish());
            let mut rec = request_fields(&req);
            rec.insert("event".into(), "executed".into());
            rec.insert("exit_code".into(), outcome.exit_code.into());
            rec.insert("signal".into(), outcome.signal.into());
            rec.insert("timed_out".into(), outcome.timed_out.into());
            rec.insert("cancelled".into(), outcome.cancelled.into());
            rec.insert("stdout_bytes".into(), outcome.stdout_total.into());
            rec.insert("stderr_bytes".into(), outcome.stderr_total.into());
            rec.insert("duration_ms".into(), outcome.duration_ms.into());
            if let Some(which) = outcome.limit_exceeded {
                rec.insert("limit_exceeded".into(), which.into());
            }
            rec.insert("stdout_sha256".into(), stdout_sha256.clone().into());
            rec.insert("stderr_sha256".into(), stderr_sha256.clone().into());
            rec.insert("stdout_sent".into(), stdout_sent.into());
            rec.insert("stderr_sent".into(), stderr_sent.into());
            // Retried (a full disk may clear); still failing, the controller
            // hears agent_lost, and the next start records `interrupted`.
            let mut written = state.audit_off_worker(Value::Object(rec.clone())).await;
            for attempt in 1..3u64 {
                if written.is_ok() {
                    break;
                }
                tokio::time::sleep(Duration::from_millis(200 * attempt)).await;
                written = state.audit_off_worker(Value::Object(rec.clone())).await;
            }
            let head = match written {
                Ok(head) => head,
                Err(e) => {
                    tracing::error!("audit write failed after execution: {e}");
                    let _ = tx
                        .send(Err(Status::unavailable(format!("audit_failed: {e}"))))
                        .await;
                    return;
                }
            };
            let (receipt, receipt_signature) = receipt::sign(
                &state.audit_key,
                &pb::Receipt {
                    request_id: req.request_id.clone(),
                    target: req.target.clone(),
                    exit_code: outcome.exit_code,
                    signal: outcome.signal,
                    timed_out: outcome.timed_out,
                    stdout_sha256,
                    stderr_sha256,
                    stdout_sent,
                    stderr_sent,
                    agent_seq: head.seq,
                    agent_hash: head.hash,
                    controller_seq: req.controller_seq,
                    controller_hash: req.controller_hash.clone(),
                },
            );
            let exit = pb::ExecEvent {
                event: Some(pb::exec_event::Event::Exit(pb::ExitStatus {
                    exit_code: outcome.exit_code,
                    signal: outcome.signal,
                    timed_out: outcome.timed_out,
                    stdout_dropped: outcome.stdout_dropped,
                    stderr_dropped: outcome.stderr_dropped,
                    stdout_total: outcome.stdout_total,
                    stderr_total: outcome.stderr_total,
                    duration_ms: outcome.duration_ms,
                    limit_exceeded: outcome.limit_exceeded.unwrap_or_default().to_string(),
                    receipt,
                    receipt_signature,
                    audit_key: state.audit_key.verifying_key().to_text(),
                })),
            };
            let _ = tx.send(Ok(exit)).await;
        });
        Ok(Response::new(ReceiverStream::new(rx)))
    }

    async fn describe(
        &self,
        _request: Request<pb::DescribeRequest>,
    ) -> Result<Response<pb::DescribeResponse>, Status> {
        let s = &self.state;
        Ok(Response::new(pb::DescribeResponse {
            name: s.config.name.clone(),
            version: env!("CARGO_PKG_VERSION").to_string(),
            policy_digest: s.policy.digest().to_string(),
            cert_not_after: s.cert_not_after,
            now_ms: aiops_sys::now_ms(),
            controller_key_id: s.controller_key.key_id(),
            landlock_abi: s.runner.readonly.as_ref().map_or(0, |r| r.abi()),
            confinement: confinement(&s.config, &s.runner),
        }))
    }

    async fn read_audit(
        &self,
        request: Request<pb::ReadAuditRequest>,
    ) -> Result<Response<pb::ReadAuditPage>, Status> {
        let state = self.state.clone();
        // Defence in depth: the accept loop already checked the identity.
        let identity_ok = request
            .peer_certs()
            .and_then(|c| c.first().cloned())
            .is_some_and(|c| aiops_certs::tls::has_identity(&c, &state.config.controller.identity));
        if !identity_ok {
            return Err(Status::permission_denied(
                "wrong_identity: client certificate is not the controller's",
            ));
        }
        let r = request.into_inner();
        let key = state.audit_key.verifying_key().to_text();
        let page = tokio::task::spawn_blocking(move || {
            read_audit_page(
                state.audit.path(),
                r.from_seq,
                r.max_records,
                r.offset,
                &r.prev_hash,
            )
        })
        .await
        .map_err(|e| Status::internal(format!("audit reader: {e}")))?
        .map_err(|e| match e {
            PageError::Cursor(m) => Status::invalid_argument(format!("bad_cursor: {m}")),
            PageError::Io(m) => Status::unavailable(format!("audit_unreadable: {m}")),
        })?;
        Ok(Response::new(pb::ReadAuditPage {
            records: page.records,
            more: page.more,
            audit_key: key,
            next_offset: page.next_offset,
        }))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn log_with(n: u64) -> (tempfile::TempDir, std::path::PathBuf) {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("audit.jsonl");
        let log = AuditLog::new(&path);
        for i in 0..n {
            let Value::Object(m) = json!({"event": "refused", "n": i}) else {
                unreachable!()
            };
            log.append(m).unwrap();
        }
        (dir, path)
    }

    fn seqs(page: &AuditPage) -> Vec<u64> {
        page.records
            .iter()
            .map(|l| {
                serde_json::from_str::<Value>(l).unwrap()["seq"]
                    .as_u64()
                    .unwrap()
            })
            .collect()
    }

    #[test]
    fn pages_follow_the_cursor_and_match_reading_from_the_start() {
        let (_d, path) = log_with(25);
        let mut all = Vec::new();
        let (mut from, mut offset, mut prev) = (1u64, 0u64, aiops_audit::GENESIS.to_string());
        loop {
            let page = read_audit_page(&path, from, 7, offset, &prev).unwrap();
            // The same page, read the old way (from the start).
            let old = read_audit_page(&path, from, 7, 0, "").unwrap();
            assert_eq!(page, old);
            all.extend(seqs(&page));
            let last: Value = serde_json::from_str(page.records.last().unwrap()).unwrap();
            prev = last["hash"].as_str().unwrap().to_string();
            from += page.records.len() as u64;
            offset = page.next_offset;
            if !page.more {
                break;
            }
        }
        assert_eq!(all, (1..=25).collect::<Vec<_>>());
        assert_eq!(offset, std::fs::metadata(&path).unwrap().len());
    }

    #[test]
    fn a_stale_or_forged_cursor_is_refused_and_skips_nothing() {
        let (_d, path) = log_with(10);
        let first = read_audit_page(&path, 1, 4, 0, "").unwrap();
        let last: Value = serde_json::from_str(&first.records[3]).unwrap();
        let prev = last["hash"].as_str().unwrap().to_string();
        let good = read_audit_page(&path, 5, 4, first.next_offset, &prev).unwrap();
        assert_eq!(seqs(&good), [5, 6, 7, 8]);
        let refused = |from: u64, offset: u64, prev: &str| match read_audit_page(
            &path, from, 4, offset, prev,
        ) {
            Err(PageError::Cursor(m)) => m,
            other => panic!("{from}/{offset}: {other:?}"),
        };
        // An offset that skips records (the start of record 7, claimed as 5).
        assert!(
            refused(
                5,
                good.next_offset
                    - good.records[3].len() as u64
                    - 1
                    - good.records[2].len() as u64
                    - 1,
                &prev
            )
            .contains("not record 5")
        );
        // The middle of a line, past the end, and the wrong prev.
        assert!(refused(5, first.next_offset + 3, &prev).contains("not the start of a record"));
        assert!(refused(5, 1 << 40, &prev).contains("bytes"));
        assert!(refused(5, first.next_offset, aiops_audit::GENESIS).contains("forged"));
        // The log rewritten under a cursor (records cut): refused, not skipped.
        let text = std::fs::read_to_string(&path).unwrap();
        let kept: String = text.lines().take(2).map(|l| format!("{l}\n")).collect();
        std::fs::write(&path, kept + &"x".repeat(10_000) + "\n").unwrap();
        assert!(matches!(
            read_audit_page(&path, 5, 4, first.next_offset, &prev),
            Err(PageError::Cursor(_))
        ));
    }
}
