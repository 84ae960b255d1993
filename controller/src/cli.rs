//! The `aiops` command line: parses arguments (clap), loads the
//! configuration once and hands each subcommand to the module of the account
//! that runs it. Every subcommand returns `Result<ExitCode, Error>`; [`main`]
//! prints an error answer once, and a closed stdout ends the output normally.

use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use aiops_audit::AuditLog;
use aiops_certs::pki::{self, PkiDir};
use aiops_types::{ErrorCode, TargetName};
use clap::{Parser, Subcommand, ValueEnum};
use serde_json::json;

use crate::config::{self, Loaded};
use crate::contract::{Answer, Failure, exit};
use crate::output::{self, OutputError};
use crate::{approvals, approver, bootstrap, dispatch, operator, request};

/// Why a subcommand did not finish normally.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A failed request: its JSON error answer goes to stdout, with its exit code.
    #[error("{}", .0.answer.error.as_ref().map_or("failed", |e| e.message.as_str()))]
    Failed(Failure),
    /// Writing stdout failed (a closed pipe is not an error: see [`main`]).
    #[error(transparent)]
    Output(#[from] OutputError),
    /// A message for stderr and an exit code (text-mode commands).
    #[error("{message}")]
    Message {
        /// What went wrong.
        message: String,
        /// Process exit code.
        code: u8,
    },
}

impl From<Failure> for Error {
    fn from(f: Failure) -> Error {
        Error::Failed(f)
    }
}

/// An error answer with `code` and the exit code the code means.
fn failed(code: ErrorCode, message: impl Into<String>) -> Error {
    let exit = code.exit().code();
    Error::Failed(Failure {
        answer: Box::new(Answer::error(code, message)),
        exit,
    })
}

#[derive(Parser, Debug)]
#[command(
    name = "aiops",
    version,
    about = "aiops controller: policy-checked, approved, signed commands to aiops agents over mTLS"
)]
struct Cli {
    /// Configuration file [default: $AIOPS_CONFIG, then /opt/aiops/config.yml].
    #[arg(long, global = true)]
    config: Option<PathBuf>,
    #[command(subcommand)]
    command: Cmd,
}

#[derive(Subcommand, Debug)]
enum Cmd {
    /// Read one JSON request (or `Approve` / `Deny`) on stdin and print one JSON answer.
    Run,
    /// Explain the policy decision for a command; runs nothing.
    Policy {
        #[command(subcommand)]
        command: PolicyCmd,
    },
    /// Pending approvals: list, approve, deny.
    Approvals {
        #[command(subcommand)]
        command: ApprovalsCmd,
    },
    /// The controller's audit log.
    Audit {
        #[command(subcommand)]
        command: AuditCmd,
    },
    /// Bring an installation of the old run_action.py MVP over: config.yml mappings, its audit log as a sealed prior segment.
    Migrate(crate::operator::migrate::MigrateArgs),
    /// Incident reports from the audit trail.
    Incident {
        #[command(subcommand)]
        command: crate::operator::incident::IncidentCmd,
    },
    /// Certificates and keys.
    Certs {
        #[command(subcommand)]
        command: CertsCmd,
    },
    /// Configured targets.
    Targets {
        #[command(subcommand)]
        command: TargetsCmd,
    },
    /// A local lab: certificates, agents on loopback, a controller config.
    Lab {
        #[command(subcommand)]
        command: LabCmd,
    },
    /// Create (if needed) and start a local lab, then send `hostname` to srv1 over mTLS.
    Quickstart {
        /// Lab directory.
        #[arg(long, default_value = "aiops-lab")]
        dir: PathBuf,
        /// Number of agents.
        #[arg(long, default_value_t = 2)]
        agents: u16,
        /// Port of srv1.
        #[arg(long, default_value_t = 7443)]
        port: u16,
    },
    /// Print the bootstrap prompt followed by all knowledge, ready to paste into a chat.
    PrintBootstrap,
    /// Serve the controller's tools over MCP on stdin/stdout (for Hermes); it cannot approve.
    Mcp(request::mcp::McpArgs),
    /// Hermes integration: skills, rules and the MCP server entry.
    Hermes {
        #[command(subcommand)]
        command: operator::hermes::HermesCmd,
    },
    /// Approver-side daemons (run as the approver account): the Telegram approver chat bot.
    Approver {
        #[command(subcommand)]
        command: approver::telegram::ApproverCmd,
    },
}

#[derive(Subcommand, Debug)]
enum PolicyCmd {
    /// Classify COMMAND and print the decision, every reason and the argv plan.
    Explain {
        /// Apply this target's overrides.
        #[arg(long)]
        target: Option<String>,
        /// One JSON object instead of text.
        #[arg(long)]
        json: bool,
        /// Read commands from stdin, one per line, and print one JSON object per line
        /// (a throughput figure goes to stderr).
        #[arg(long)]
        stdin: bool,
        /// The command (everything after `--`, joined by spaces).
        #[arg(
            trailing_var_arg = true,
            allow_hyphen_values = true,
            required_unless_present = "stdin"
        )]
        command: Vec<String>,
    },
}

#[derive(Subcommand, Debug)]
enum ApprovalsCmd {
    /// List approvals.
    List {
        /// JSON output.
        #[arg(long)]
        json: bool,
    },
    /// Approve (and run) a pending approval; the only one pending when ID is omitted.
    Approve {
        /// Approval id.
        id: Option<String>,
    },
    /// Deny a pending approval.
    Deny {
        /// Approval id.
        id: Option<String>,
    },
    /// Run a granted approval (the controller account's half of `approve`).
    Release {
        /// Approval id.
        id: String,
    },
    /// Create an approver signing key (run as the approver account).
    InitKey {
        /// Private key file; the public key goes beside it with `.pub`.
        #[arg(long)]
        out: PathBuf,
        /// Replace an existing key.
        #[arg(long)]
        force: bool,
    },
}

#[derive(Subcommand, Debug)]
enum AuditCmd {
    /// Check the hash chain and its signed checkpoints; names the first bad line.
    /// With --targets, also cross-check it against each agent's own log.
    Verify {
        /// Log file [default: the configured audit log].
        #[arg(long, conflicts_with = "targets")]
        file: Option<PathBuf>,
        /// Cross-check against these agents' logs (comma-separated; none named: every target).
        #[arg(long, num_args = 0.., value_delimiter = ',', value_name = "NAME")]
        targets: Option<Vec<String>>,
    },
    /// Show the newest records.
    Tail {
        /// How many.
        #[arg(short = 'n', default_value_t = 20)]
        n: usize,
        /// Log file [default: the configured audit log].
        #[arg(long)]
        file: Option<PathBuf>,
        /// Raw JSON lines.
        #[arg(long)]
        json: bool,
    },
    /// Ship every record, in order and at least once, to syslog (RFC 5424/5425) and OTLP sinks.
    Export(aiops_export::cli::ExportArgs),
}

#[derive(Subcommand, Debug)]
enum CertsCmd {
    /// Create the CA, the controller client certificate and the request-signing key.
    Init {
        /// PKI directory [default: the configured pki_dir].
        #[arg(long)]
        dir: Option<PathBuf>,
        /// The controller's identity (DNS name in its certificate).
        #[arg(long, default_value = pki::CONTROLLER_IDENTITY)]
        identity: String,
        /// Replace an existing PKI.
        #[arg(long)]
        force: bool,
    },
    /// Issue an agent's server certificate (the target name is always a DNS name in it).
    IssueAgent {
        /// Target name.
        name: String,
        /// Extra DNS names.
        #[arg(long)]
        dns: Vec<String>,
        /// IP addresses.
        #[arg(long)]
        ip: Vec<std::net::IpAddr>,
        /// PKI directory [default: the configured pki_dir].
        #[arg(long)]
        dir: Option<PathBuf>,
    },
    /// Issue a target's enrollment bundle (CA, new agent certificate and key, controller identity and key).
    Bundle(BundleArgs),
    /// Renew: a target's certificate (a new bundle to enroll again), or the controller's (--controller).
    Renew {
        /// Renew the controller's client certificate instead of a target's.
        #[arg(long, conflicts_with = "name")]
        controller: bool,
        #[command(flatten)]
        bundle: Option<BundleArgs>,
    },
}

#[derive(clap::Args, Debug)]
struct BundleArgs {
    /// Target name.
    name: String,
    /// host:port the controller connects to.
    #[arg(long)]
    address: String,
    /// Where the agent listens [default: the address if it is an IP, else 0.0.0.0:PORT].
    #[arg(long)]
    listen: Option<std::net::SocketAddr>,
    /// Extra DNS names.
    #[arg(long)]
    dns: Vec<String>,
    /// Extra IP addresses.
    #[arg(long)]
    ip: Vec<std::net::IpAddr>,
    /// Bundle file [default: PKI_DIR/bundles/NAME.bundle].
    #[arg(long)]
    out: Option<PathBuf>,
    /// Certificate lifetime in days.
    #[arg(long, default_value_t = pki::LEAF_DAYS)]
    days: i64,
    /// The controller identity agents will require.
    #[arg(long, default_value = pki::CONTROLLER_IDENTITY)]
    identity: String,
    /// PKI directory [default: the configured pki_dir].
    #[arg(long)]
    dir: Option<PathBuf>,
}

#[derive(Subcommand, Debug)]
enum TargetsCmd {
    /// List configured targets.
    List {
        /// JSON output.
        #[arg(long)]
        json: bool,
    },
    /// Call Describe and health on every target: version, reachability, certificate expiry, policy digest.
    Check {
        /// JSON output.
        #[arg(long)]
        json: bool,
    },
    /// Import the hosts and groups of an Ansible inventory (INI or YAML) as targets.
    ///
    /// Each host becomes a target of the same name; its address is `aiops_address`,
    /// else `ansible_host` (or the name) with `aiops_port` (or --port); `aiops_server_name`
    /// sets the certificate name; `aiops_labels` (a mapping) and every --label-var become
    /// labels; each Ansible group becomes a group of exactly its hosts (children included).
    /// All or nothing; targets and groups not in the inventory are left alone.
    Import {
        /// The inventory file.
        inventory: PathBuf,
        /// Agent port for hosts without aiops_port / aiops_address.
        #[arg(long, default_value_t = 7443)]
        port: u16,
        /// Copy this host variable into the target's labels (repeatable).
        #[arg(long = "label-var", value_name = "VAR")]
        label_vars: Vec<String>,
        /// ini or yaml [default: YAML when the file is a YAML mapping, else INI].
        #[arg(long)]
        format: Option<String>,
        /// Print what would change; write nothing.
        #[arg(long)]
        dry_run: bool,
    },
    /// Add (or update) a target in the configuration.
    Add {
        /// Target name.
        name: String,
        /// host:port of its agent.
        address: String,
        /// Name expected in the agent's certificate [default: the target name].
        #[arg(long)]
        server_name: Option<String>,
    },
}

#[derive(Clone, Copy, Debug, ValueEnum)]
enum ModeArg {
    Lab,
    Production,
}

#[derive(Subcommand, Debug)]
enum LabCmd {
    /// Write a lab: DIR/config.yml, DIR/pki/, DIR/agents/srvK/.
    Init {
        /// Lab directory.
        #[arg(long)]
        dir: PathBuf,
        /// Number of agents.
        #[arg(long, default_value_t = 2)]
        agents: u16,
        /// Port of srv1 (srvK listens on PORT+K-1).
        #[arg(long, default_value_t = 7443)]
        port: u16,
        /// Policy mode.
        #[arg(long, value_enum, default_value_t = ModeArg::Lab)]
        mode: ModeArg,
        /// Replace an existing lab.
        #[arg(long)]
        force: bool,
    },
    /// Start the lab's agents in the background.
    Up {
        /// Lab directory.
        #[arg(long)]
        dir: PathBuf,
    },
    /// Stop the lab's agents.
    Down {
        /// Lab directory.
        #[arg(long)]
        dir: PathBuf,
    },
}

fn config_path(cli: Option<PathBuf>) -> PathBuf {
    cli.or_else(|| std::env::var_os("AIOPS_CONFIG").map(PathBuf::from))
        .unwrap_or_else(|| PathBuf::from(config::DEFAULT_CONFIG))
}

/// Prints `answer` and exits with `code`.
fn answer_exit(answer: &Answer, code: u8) -> Result<ExitCode, Error> {
    output::json(answer)?;
    Ok(ExitCode::from(code))
}

/// Prints `v` and exits 0.
fn ok_json(v: &impl serde::Serialize) -> Result<ExitCode, Error> {
    output::json(v)?;
    Ok(ExitCode::SUCCESS)
}

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("a current-thread runtime builds")
}

/// Entry point of the `aiops` binary (and its `run_action` alias).
pub fn main() -> ExitCode {
    match run() {
        Ok(code) => code,
        Err(Error::Failed(f)) => match output::json(&*f.answer) {
            Ok(()) | Err(OutputError::Closed) => ExitCode::from(f.exit),
            Err(OutputError::Io(e)) => {
                eprintln!("aiops: stdout: {e}");
                ExitCode::from(f.exit)
            }
        },
        // The reader went away (`aiops audit tail | head -1`): a normal end.
        Err(Error::Output(OutputError::Closed)) => ExitCode::SUCCESS,
        Err(Error::Output(OutputError::Io(e))) => {
            eprintln!("aiops: stdout: {e}");
            ExitCode::FAILURE
        }
        Err(Error::Message { message, code }) => {
            eprintln!("aiops: {message}");
            ExitCode::from(code)
        }
    }
}

/// Parses the arguments and runs one subcommand.
pub fn run() -> Result<ExitCode, Error> {
    let mut args: Vec<std::ffi::OsString> = std::env::args_os().collect();
    let invoked_as = args
        .first()
        .and_then(|a| {
            std::path::Path::new(a)
                .file_name()
                .map(|n| n.to_string_lossy().into_owned())
        })
        .unwrap_or_default();
    if invoked_as == "run_action" || invoked_as == "run_action.py" {
        // The seed-era entry point: behaves exactly like `aiops run`.
        args.insert(1, "run".into());
    }
    let cli = match Cli::try_parse_from(args) {
        Ok(c) => c,
        Err(e) => {
            let _ = e.print();
            return Ok(ExitCode::from(if e.use_stderr() { 64 } else { 0 }));
        }
    };
    // Warnings to stderr; AIOPS_LOG=debug|trace|<directives> for more. The
    // plain level filter is what a short `aiops run` pays at start-up.
    // Colour only on a terminal: no escape codes in files or the journal.
    let ansi = std::io::IsTerminal::is_terminal(&std::io::stderr());
    match tracing_subscriber::EnvFilter::try_from_env("AIOPS_LOG") {
        Ok(filter) => tracing_subscriber::fmt()
            .with_writer(std::io::stderr)
            .with_ansi(ansi)
            .with_env_filter(filter)
            .init(),
        Err(_) => tracing_subscriber::fmt()
            .with_writer(std::io::stderr)
            .with_ansi(ansi)
            .with_max_level(tracing::Level::WARN)
            .init(),
    }
    aiops_certs::install_crypto_provider();
    let config = config_path(cli.config);
    match cli.command {
        Cmd::Run => cmd_run(&config),
        Cmd::Policy {
            command:
                PolicyCmd::Explain {
                    target,
                    json,
                    stdin,
                    command,
                },
        } => {
            if stdin {
                cmd_explain_stdin(&config, target)
            } else {
                cmd_explain(&config, target, json, &command.join(" "))
            }
        }
        Cmd::Approvals { command } => cmd_approvals(&config, command),
        Cmd::Audit { command } => cmd_audit(&config, command),
        Cmd::Migrate(args) => Ok(crate::operator::migrate::cmd(&config, args)),
        Cmd::Incident { command } => Ok(crate::operator::incident::cmd(&config, command)),
        Cmd::Certs { command } => cmd_certs(&config, command),
        Cmd::Targets { command } => cmd_targets(&config, command),
        Cmd::Lab { command } => cmd_lab(command),
        Cmd::Quickstart { dir, agents, port } => cmd_quickstart(&dir, agents, port),
        Cmd::PrintBootstrap => {
            output::text(&bootstrap::bootstrap_text())?;
            Ok(ExitCode::SUCCESS)
        }
        Cmd::Mcp(args) => Ok(request::mcp::cmd(&config, args)),
        Cmd::Hermes { command } => Ok(operator::hermes::cmd(&config, command)),
        Cmd::Approver { command } => Ok(approver::telegram::cmd(&config, command)),
    }
}

fn load(config: &Path) -> Result<Loaded, Error> {
    Loaded::load(config).map_err(|e| failed(ErrorCode::Config, e.to_string()))
}

fn cmd_run(config: &Path) -> Result<ExitCode, Error> {
    crate::dispatch::fanout::OUTCOME_ON_SIGNAL.store(true, std::sync::atomic::Ordering::SeqCst);
    let loaded = load(config)?;
    let mut input = Vec::new();
    // Read one byte past the limit so an oversized request is recognised, not cut.
    let limit = u64::try_from(crate::contract::MAX_INPUT_BYTES + 1).unwrap_or(u64::MAX);
    if let Err(e) = std::io::stdin().lock().take(limit).read_to_end(&mut input) {
        return Err(failed(ErrorCode::Stdin, e.to_string()));
    }
    let (answer, code) = runtime().block_on(request::run::run_stdin(&loaded, &input));
    // The process ends here: freeing the policy's tables (thousands of small
    // allocations) would only cost time. Everything durable was written and
    // synced before the answer was made; nothing in `Loaded` flushes on drop.
    std::mem::forget(loaded);
    answer_exit(&answer, code)
}

fn explain_policy(config: &Path) -> Result<aiops_policy::Policy, Error> {
    // Explaining needs only the policy; fall back to the built-in one without a config.
    match Loaded::load(config) {
        Ok(l) => Ok(l.policy),
        Err(e) if config.exists() => Err(Error::Message {
            message: e.to_string(),
            code: exit::SETUP,
        }),
        Err(_) => Ok(aiops_policy::Policy::builtin()),
    }
}

fn explain_json(
    policy: &aiops_policy::Policy,
    target: Option<&str>,
    command: &str,
) -> serde_json::Value {
    let d = policy.classify_globbed(target, command);
    json!({
        "command": command,
        "target": target,
        "risk": d.risk.as_str(),
        "reasons": d.reasons,
        "plan": d.plan,
        "mode": policy.mode(),
        "policy_digest": policy.digest(),
    })
}

fn cmd_explain_stdin(config: &Path, target: Option<String>) -> Result<ExitCode, Error> {
    use std::io::BufRead;
    let policy = explain_policy(config)?;
    let start = std::time::Instant::now();
    let mut out = output::Lines::new();
    let mut n = 0u64;
    for line in std::io::stdin().lock().lines() {
        let Ok(line) = line else { break };
        out.json(&explain_json(&policy, target.as_deref(), &line))?;
        n += 1;
    }
    out.finish()?;
    let secs = start.elapsed().as_secs_f64();
    eprintln!(
        "aiops: explained {n} commands in {:.1} ms: {:.0} commands/s",
        secs * 1000.0,
        n as f64 / secs.max(1e-9)
    );
    Ok(ExitCode::SUCCESS)
}

fn cmd_explain(
    config: &Path,
    target: Option<String>,
    as_json: bool,
    command: &str,
) -> Result<ExitCode, Error> {
    let policy = explain_policy(config)?;
    if as_json {
        return ok_json(&explain_json(&policy, target.as_deref(), command));
    }
    let d = policy.classify_globbed(target.as_deref(), command);
    let mut out = output::Lines::new();
    out.line(&format!("risk: {}", d.risk.as_str()))?;
    for r in &d.reasons {
        out.line(&format!("  because: {r}"))?;
    }
    if d.plan.shell {
        out.line("plan: bash --noprofile --norc -c (approved only)")?;
    }
    for (i, p) in d.plan.pipelines.iter().enumerate() {
        let stages: Vec<String> = p
            .stages
            .iter()
            .map(|s| {
                format!(
                    "{}{:?}",
                    if s.privileged { "sudo -n -- " } else { "" },
                    s.argv
                )
            })
            .collect();
        out.line(&format!(
            "plan[{i}] ({:?}): {}",
            p.connector,
            stages.join(" | ")
        ))?;
    }
    out.finish()?;
    Ok(ExitCode::SUCCESS)
}

/// The account running this process, from its real uid: never an
/// environment variable (`SUDO_USER` is set by whoever starts the process).
fn caller_name() -> String {
    nix::unistd::User::from_uid(nix::unistd::getuid())
        .ok()
        .flatten()
        .map(|u| u.name)
        .unwrap_or_else(|| format!("uid:{}", nix::unistd::getuid()))
}

fn cmd_approvals(config: &Path, command: ApprovalsCmd) -> Result<ExitCode, Error> {
    crate::dispatch::fanout::OUTCOME_ON_SIGNAL.store(true, std::sync::atomic::Ordering::SeqCst);
    let (verb, id) = match command {
        ApprovalsCmd::InitKey { out, force } => {
            // Needs no configuration: the approver account creates its key first.
            let public = pki::init_approver_key(&out, force)
                .map_err(|e| failed(ErrorCode::Pki, e.to_string()))?;
            return ok_json(&json!({"status": "ok", "key": out, "public_key": public}));
        }
        ApprovalsCmd::List { json: as_json } => {
            let loaded = load(config)?;
            let all = approvals::list_for_approver(&loaded)?;
            if as_json {
                return ok_json(&approvals::to_json(&all));
            }
            let now = aiops_sys::now_ms();
            let mut out = output::Lines::new();
            for a in all.iter().filter(|a| a.state == approvals::State::Pending) {
                let mut text = format!(
                    "{}  {}  {:?}  by {}  expires in {}s\n    reason: {}",
                    a.id,
                    a.target,
                    a.command,
                    a.requester,
                    (a.expires_ms - now) / 1000,
                    a.reason
                );
                let v = serde_json::to_value(a).unwrap_or_default();
                for (label, value) in approvals::card::facts(&v) {
                    text.push_str(&format!("\n    {}:", label.to_lowercase()));
                    if value.contains('\n') || label == "Plan" {
                        for l in value.lines() {
                            text.push_str(&format!("\n      {l}"));
                        }
                    } else {
                        text.push_str(&format!(" {value}"));
                    }
                }
                out.line(&text)?;
            }
            out.finish()?;
            return Ok(ExitCode::SUCCESS);
        }
        ApprovalsCmd::Release { id } => {
            let loaded = load(config)?;
            let a = runtime().block_on(approvals::release(&loaded, &id))?;
            return answer_exit(&a, exit::HANDLED);
        }
        ApprovalsCmd::Approve { id } => (approvals::Verb::Approve, id),
        ApprovalsCmd::Deny { id } => (approvals::Verb::Deny, id),
    };
    let loaded = load(config)?;
    let a = runtime().block_on(approvals::resolve(
        &loaded,
        verb,
        id.as_deref(),
        approvals::Resolver::Terminal(caller_name()),
    ))?;
    answer_exit(&a, exit::HANDLED)
}

fn audit_file(config: &Path, file: Option<PathBuf>) -> Result<PathBuf, Error> {
    match file {
        Some(f) => Ok(f),
        None => load(config).map(|l| l.config.audit_log),
    }
}

fn cmd_audit(config: &Path, command: AuditCmd) -> Result<ExitCode, Error> {
    match command {
        AuditCmd::Export(args) => Ok(aiops_export::cli::cmd(
            args,
            &aiops_export::cli::Defaults {
                export_config: aiops_export::cli::beside(config),
                service_name: "aiops-controller",
                audit_log: &|| {
                    crate::config::Loaded::load(config)
                        .map(|l| l.config.audit_log)
                        .map_err(|e| e.to_string())
                },
                program: "aiops",
            },
        )),
        AuditCmd::Verify {
            file,
            targets: Some(names),
        } => {
            let _ = file;
            let loaded = load(config)?;
            let (intact, report) =
                runtime().block_on(crate::dispatch::chains::verify_targets(&loaded, &names));
            output::json(&report)?;
            Ok(if intact {
                ExitCode::SUCCESS
            } else {
                ExitCode::FAILURE
            })
        }
        AuditCmd::Verify {
            file,
            targets: None,
        } => {
            // Checkpoint signatures are checked whenever the controller's
            // public signing key is readable (it is 0644).
            let key = load(config)
                .ok()
                .and_then(|l| crate::dispatch::chains::checkpoint_key(&l));
            let file = audit_file(config, file)?;
            let check = key.as_ref().map(crate::dispatch::chains::check_with);
            let (mut intact, mut report) = aiops_audit::verify_report_with(
                &file,
                check
                    .as_ref()
                    .map(|c| c as &dyn Fn(&str, &[u8], &[u8]) -> bool),
            );
            // The sealed copies of prior segments (`aiops migrate`) still
            // have the hashes the chain recorded for them.
            if intact
                && let Some((seq, message)) = crate::operator::migrate::check_prior_segments(&file)
            {
                intact = false;
                report = json!({
                    "status": "error", "file": file, "line": seq,
                    "message": format!("record {seq} (prior_segment): {message}"),
                });
            }
            output::json(&report)?;
            Ok(if intact {
                ExitCode::SUCCESS
            } else {
                ExitCode::FAILURE
            })
        }
        AuditCmd::Tail {
            n,
            file,
            json: as_json,
        } => {
            let file = audit_file(config, file)?;
            let log = AuditLog::new(&file);
            let failed = |e: aiops_audit::AuditError| Error::Message {
                message: e.to_string(),
                code: 1,
            };
            let mut out = output::Lines::new();
            if as_json {
                for r in log.tail(n).map_err(failed)? {
                    out.json(&r)?;
                }
                out.finish()?;
                return Ok(ExitCode::SUCCESS);
            }
            for e in log.tail_events(n).map_err(failed)? {
                let mut line = format!(
                    "{} #{} {:<18}",
                    e.ts.as_deref().unwrap_or(""),
                    e.seq.unwrap_or(0),
                    e.event
                );
                for (k, v) in [
                    ("target", &e.target),
                    ("requester", &e.requester),
                    ("risk", &e.risk),
                    ("code", &e.code),
                ] {
                    if let Some(v) = v.as_deref().filter(|v| !v.is_empty()) {
                        line.push_str(&format!(" {k}={v}"));
                    }
                }
                match (e.exit_code, e.other.get("exit_code")) {
                    (Some(code), _) => line.push_str(&format!(" exit={code}")),
                    (None, Some(v)) => line.push_str(&format!(" exit={v}")),
                    (None, None) => {}
                }
                if let Some(cmd) = e.command.as_deref().filter(|c| !c.is_empty()) {
                    line.push_str(&format!(" cmd={cmd:?}"));
                }
                out.line(&line)?;
            }
            out.finish()?;
            Ok(ExitCode::SUCCESS)
        }
    }
}

fn pki_dir(config: &Path, dir: Option<PathBuf>) -> Result<PkiDir, Error> {
    match dir {
        Some(d) => Ok(PkiDir::new(d)),
        None => load(config).map(|l| l.pki()),
    }
}

fn cmd_certs(config: &Path, command: CertsCmd) -> Result<ExitCode, Error> {
    match command {
        CertsCmd::Init {
            dir,
            identity,
            force,
        } => {
            let pki = pki_dir(config, dir)?;
            let s = pki::init(&pki, &identity, force)
                .map_err(|e| failed(ErrorCode::Pki, e.to_string()))?;
            ok_json(&json!({
                "status": "ok",
                "pki_dir": s.dir,
                "controller_identity": s.controller_identity,
                "signing_key_id": s.signing_key_id,
                "signing_public_key": s.signing_public_key,
            }))
        }
        CertsCmd::IssueAgent { name, dns, ip, dir } => {
            TargetName::new(name.as_str())
                .map_err(|e| failed(ErrorCode::InvalidName, e.to_string()))?;
            let pki = pki_dir(config, dir)?;
            let (cert, key) = pki::issue_agent(&pki, &name, &dns, &ip)
                .map_err(|e| failed(ErrorCode::Pki, e.to_string()))?;
            ok_json(&json!({"status": "ok", "name": name, "cert": cert, "key": key}))
        }
        CertsCmd::Bundle(args)
        | CertsCmd::Renew {
            controller: false,
            bundle: Some(args),
        } => cmd_bundle(config, args),
        CertsCmd::Renew {
            controller: true,
            bundle,
        } => {
            let pki = pki_dir(config, bundle.as_ref().and_then(|b| b.dir.clone()))?;
            let identity =
                bundle.map_or_else(|| pki::CONTROLLER_IDENTITY.to_string(), |b| b.identity);
            let v = operator::certs::renew_controller(&pki, &identity, pki::LEAF_DAYS)
                .map_err(|e| failed(ErrorCode::Pki, e))?;
            ok_json(&v)
        }
        CertsCmd::Renew {
            controller: false,
            bundle: None,
        } => Err(failed(
            ErrorCode::InvalidField,
            "name a target (NAME --address A) or pass --controller",
        )),
    }
}

fn cmd_bundle(config: &Path, a: BundleArgs) -> Result<ExitCode, Error> {
    let pki = pki_dir(config, a.dir)?;
    let out = a
        .out
        .unwrap_or_else(|| pki.dir.join("bundles").join(format!("{}.bundle", a.name)));
    let spec = operator::certs::BundleSpec {
        name: a.name,
        address: a.address,
        listen: a.listen,
        dns: a.dns,
        ips: a.ip,
        out: out.clone(),
        days: a.days,
        identity: a.identity,
    };
    // Unless this is a lab configuration, the embedded approver key must be root's.
    let trusted =
        Loaded::load(config).map_or(true, |l| l.policy.mode() == aiops_policy::Mode::Production);
    let b = operator::certs::make_bundle(&pki, &spec, trusted)
        .map_err(|e| failed(ErrorCode::Pki, e))?;
    ok_json(&json!({
        "status": "ok", "name": b.name, "bundle": out, "listen": b.listen,
        "address": b.address, "cert_not_after": b.cert_not_after,
        "next": format!("copy {} to {} and run `aiops-agent enroll FILE` (or `setup-aiops.sh srv1 FILE`) there, then delete it", out.display(), b.name),
    }))
}

fn cmd_targets(config: &Path, command: TargetsCmd) -> Result<ExitCode, Error> {
    match command {
        TargetsCmd::Add {
            name,
            address,
            server_name,
        } => {
            let v = operator::targets::add_target(config, &name, &address, server_name.as_deref())
                .map_err(|e| failed(ErrorCode::Config, e))?;
            ok_json(&v)
        }
        TargetsCmd::Import {
            inventory,
            port,
            label_vars,
            format,
            dry_run,
        } => {
            let opts = operator::inventory::ImportOptions {
                default_port: port,
                label_vars,
            };
            let v = operator::targets::import_inventory(
                config,
                &inventory,
                format.as_deref(),
                &opts,
                dry_run,
            )
            .map_err(|e| failed(ErrorCode::Inventory, e))?;
            ok_json(&v)
        }
        TargetsCmd::List { json: as_json } => {
            let loaded = load(config)?;
            let list: Vec<_> = loaded
                .config
                .targets
                .iter()
                .map(|(name, t)| {
                    let groups: Vec<&String> = loaded.config.groups.iter().filter(|(_, m)| m.contains(name)).map(|(g, _)| g).collect();
                    json!({"name": name, "address": t.address, "labels": t.labels, "groups": groups})
                })
                .collect();
            if as_json {
                return ok_json(&list);
            }
            let mut out = output::Lines::new();
            for t in &list {
                out.line(&format!(
                    "{}\t{}\tgroups={}\tlabels={}",
                    t["name"].as_str().unwrap_or(""),
                    t["address"].as_str().unwrap_or(""),
                    t["groups"],
                    t["labels"]
                ))?;
            }
            out.finish()?;
            Ok(ExitCode::SUCCESS)
        }
        TargetsCmd::Check { json: as_json } => {
            let loaded = load(config)?;
            let sender = dispatch::Sender::load(&loaded)?;
            let results = runtime().block_on(operator::targets::check_targets(&loaded, &sender));
            let all_ok = results
                .iter()
                .all(|r| r["reachable"] == true && r["health"] == "SERVING");
            if as_json {
                output::json(&results)?;
            } else {
                let mut out = output::Lines::new();
                for r in &results {
                    out.line(&r.to_string())?;
                }
                out.finish()?;
            }
            Ok(if all_ok {
                ExitCode::SUCCESS
            } else {
                ExitCode::FAILURE
            })
        }
    }
}

fn cmd_lab(command: LabCmd) -> Result<ExitCode, Error> {
    let lab_failed = |e: String| failed(ErrorCode::Lab, e);
    match command {
        LabCmd::Init {
            dir,
            agents,
            port,
            mode,
            force,
        } => {
            let notes = operator::lab::init(&operator::lab::LabSpec {
                dir: dir.clone(),
                agents,
                base_port: port,
                mode: match mode {
                    ModeArg::Lab => aiops_policy::Mode::Lab,
                    ModeArg::Production => aiops_policy::Mode::Production,
                },
                force,
            })
            .map_err(lab_failed)?;
            for n in &notes {
                eprintln!("aiops: {n}");
            }
            ok_json(
                &json!({"status": "ok", "dir": dir, "config": dir.join("config.yml"), "agents": agents, "notes": notes}),
            )
        }
        LabCmd::Up { dir } => {
            let started = operator::lab::up(&dir).map_err(lab_failed)?;
            ok_json(&json!({"status": "ok", "started": started}))
        }
        LabCmd::Down { dir } => {
            let stopped = operator::lab::down(&dir).map_err(lab_failed)?;
            ok_json(&json!({"status": "ok", "stopped": stopped}))
        }
    }
}

/// How the user reaches this binary from their shell: the path they typed
/// (`target/release/aiops`) when it has a slash, else `aiops` (found on PATH).
fn invoked_binary() -> String {
    let typed = std::env::args_os().next().map(PathBuf::from);
    match typed {
        Some(p) if p.components().count() > 1 => shell_word(&p.to_string_lossy()),
        _ => "aiops".to_string(),
    }
}

/// `s` as one shell word (quoted only when it needs it).
fn shell_word(s: &str) -> String {
    let plain = !s.is_empty()
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"/._-+=:,@".contains(&b));
    if plain {
        s.to_string()
    } else {
        format!("'{}'", s.replace('\'', r"'\''"))
    }
}

fn cmd_quickstart(dir: &Path, agents: u16, port: u16) -> Result<ExitCode, Error> {
    let lab_failed = |e: String| failed(ErrorCode::Lab, e);
    let config = dir.join("config.yml");
    if !config.exists() {
        let notes = operator::lab::init(&operator::lab::LabSpec {
            dir: dir.to_path_buf(),
            agents,
            base_port: port,
            mode: aiops_policy::Mode::Lab,
            force: false,
        })
        .map_err(lab_failed)?;
        eprintln!("aiops: wrote a lab in {}", dir.display());
        for n in &notes {
            eprintln!("aiops: {n}");
        }
    }
    operator::lab::up(dir).map_err(lab_failed)?;
    let loaded = load(&config)?;
    let request = br#"{"target":"srv1","command":"hostname","requester":"quickstart","reason":"validate the lab: CLI -> mTLS -> agent -> CLI"}"#;
    let (answer, code) = runtime().block_on(request::run::run_json(&loaded, request));
    output::json(&answer)?;
    output::text(&next_steps(
        &invoked_binary(),
        &config,
        dir,
        loaded.config.targets.len(),
    ))?;
    Ok(ExitCode::from(code))
}

/// What to try after the quickstart: each line works when pasted into the
/// shell the quickstart ran from.
fn next_steps(aiops: &str, config: &Path, dir: &Path, targets: usize) -> String {
    let cfg = shell_word(&config.display().to_string());
    let second = if targets >= 2 { "srv2" } else { "srv1" };
    format!(
        "\nNext, try:\n  \
         echo '{{\"target\":\"srv1\",\"command\":\"df -h\",\"requester\":\"manual\",\"reason\":\"test\"}}' | AIOPS_CONFIG={cfg} {aiops} run\n  \
         echo '{{\"target\":\"{second}\",\"command\":\"touch /tmp/aiops-demo\",\"requester\":\"manual\",\"reason\":\"needs approval\"}}' | AIOPS_CONFIG={cfg} {aiops} run\n  \
         echo Approve | AIOPS_CONFIG={cfg} {aiops} run\n  \
         AIOPS_CONFIG={cfg} {aiops} policy explain -- 'ps aux | grep nginx'\n  \
         AIOPS_CONFIG={cfg} {aiops} audit tail\n  \
         AIOPS_CONFIG={cfg} {aiops} audit verify\n  \
         {aiops} lab down --dir {}\n",
        shell_word(&dir.display().to_string())
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shell_words_survive_pasting() {
        assert_eq!(shell_word("target/release/aiops"), "target/release/aiops");
        assert_eq!(
            shell_word("/tmp/my lab/config.yml"),
            "'/tmp/my lab/config.yml'"
        );
        assert_eq!(shell_word("it's"), r"'it'\''s'");
    }
}
