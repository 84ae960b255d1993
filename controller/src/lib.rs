//! The aiops controller: the only way the assistant reaches servers.
//!
//! `aiops run` reads one JSON request on stdin, validates it, classifies the
//! command by policy, asks for human approval where needed, signs the request
//! and sends it over mutual-TLS gRPC to the target's agent, audits every step
//! and prints one JSON answer on stdout. Human text and logs go to stderr.
#![forbid(unsafe_code)]

pub mod approvals;
pub mod bootstrap;
pub mod client;
pub mod config;
pub mod hermes;
pub mod inventory;
pub mod lab;
pub mod mcp;
pub mod redact;
pub mod run;
pub mod setup;
pub mod telegram;

use std::io::Read;
use std::path::PathBuf;
use std::process::ExitCode;

use aiops_certs::audit::AuditLog;
use aiops_certs::pki::{self, PkiDir};
use clap::{Parser, Subcommand, ValueEnum};
use serde_json::json;

use config::Loaded;
use run::{Answer, exit};

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
    Mcp(mcp::McpArgs),
    /// Hermes integration: skills, rules and the MCP server entry.
    Hermes {
        #[command(subcommand)]
        command: hermes::HermesCmd,
    },
    /// Approver-side daemons (run as the approver account): the Telegram approver chat bot.
    Approver {
        #[command(subcommand)]
        command: telegram::ApproverCmd,
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
    /// Check the hash chain; names the first bad line.
    Verify {
        /// Log file [default: the configured audit log].
        #[arg(long)]
        file: Option<PathBuf>,
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

fn print_json(v: &impl serde::Serialize) {
    use std::io::Write;
    let mut out = std::io::stdout().lock();
    // A closed stdout (e.g. `| head`) is not an error worth a panic.
    let _ = serde_json::to_writer(&mut out, v);
    let _ = out.write_all(b"\n");
    let _ = out.flush();
}

fn answer_exit(answer: &Answer, code: u8) -> ExitCode {
    print_json(answer);
    ExitCode::from(code)
}

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("a current-thread runtime builds")
}

/// Entry point of the `aiops` binary (and its `run_action` alias).
pub fn main() -> ExitCode {
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
            return ExitCode::from(if e.use_stderr() { 64 } else { 0 });
        }
    };
    // Warnings to stderr; AIOPS_LOG=debug|trace|<directives> for more. The
    // plain level filter is what a short `aiops run` pays at start-up.
    match tracing_subscriber::EnvFilter::try_from_env("AIOPS_LOG") {
        Ok(filter) => tracing_subscriber::fmt()
            .with_writer(std::io::stderr)
            .with_env_filter(filter)
            .init(),
        Err(_) => tracing_subscriber::fmt()
            .with_writer(std::io::stderr)
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
        Cmd::Certs { command } => cmd_certs(&config, command),
        Cmd::Targets { command } => cmd_targets(&config, command),
        Cmd::Lab { command } => cmd_lab(command),
        Cmd::Quickstart { dir, agents, port } => cmd_quickstart(&dir, agents, port),
        Cmd::PrintBootstrap => {
            print!("{}", bootstrap::bootstrap_text());
            ExitCode::SUCCESS
        }
        Cmd::Mcp(args) => mcp::cmd(&config, args),
        Cmd::Hermes { command } => hermes::cmd(&config, command),
        Cmd::Approver { command } => telegram::cmd(&config, command),
    }
}

fn load(config: &std::path::Path) -> Result<Loaded, ExitCode> {
    Loaded::load(config)
        .map_err(|e| answer_exit(&Answer::error("config", e.to_string()), exit::SETUP))
}

fn cmd_run(config: &std::path::Path) -> ExitCode {
    let loaded = match load(config) {
        Ok(l) => l,
        Err(code) => return code,
    };
    let mut input = Vec::new();
    // Read one byte past the limit so an oversized request is recognised, not cut.
    let limit = u64::try_from(run::MAX_INPUT_BYTES + 1).unwrap_or(u64::MAX);
    if let Err(e) = std::io::stdin().lock().take(limit).read_to_end(&mut input) {
        return answer_exit(&Answer::error("stdin", e.to_string()), exit::FAILED);
    }
    let rt = runtime();
    if let Some((verb, id)) = approvals::parse_verb(&input) {
        let requester = std::env::var("AIOPS_REQUESTER").ok();
        let result = rt.block_on(approvals::resolve(
            &loaded,
            verb,
            id.as_deref(),
            approvals::Resolver::Requester(requester),
        ));
        return match result {
            Ok(a) => answer_exit(&a, exit::HANDLED),
            Err(f) => answer_exit(&f.answer, f.exit),
        };
    }
    let (answer, code) = rt.block_on(run::run_json(&loaded, &input));
    answer_exit(&answer, code)
}

fn explain_policy(config: &std::path::Path) -> Result<aiops_policy::Policy, ExitCode> {
    // Explaining needs only the policy; fall back to the built-in one without a config.
    match Loaded::load(config) {
        Ok(l) => Ok(l.policy),
        Err(e) if config.exists() => {
            eprintln!("aiops: {e}");
            Err(ExitCode::from(exit::SETUP))
        }
        Err(_) => Ok(aiops_policy::Policy::builtin()),
    }
}

fn explain_json(
    policy: &aiops_policy::Policy,
    target: Option<&str>,
    command: &str,
) -> serde_json::Value {
    let d = policy.classify_for(target, command);
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

fn cmd_explain_stdin(config: &std::path::Path, target: Option<String>) -> ExitCode {
    use std::io::{BufRead, Write};
    let policy = match explain_policy(config) {
        Ok(p) => p,
        Err(code) => return code,
    };
    let start = std::time::Instant::now();
    let mut out = std::io::BufWriter::new(std::io::stdout().lock());
    let mut n = 0u64;
    for line in std::io::stdin().lock().lines() {
        let Ok(line) = line else { break };
        let v = explain_json(&policy, target.as_deref(), &line);
        if serde_json::to_writer(&mut out, &v).is_err() || out.write_all(b"\n").is_err() {
            break;
        }
        n += 1;
    }
    let _ = out.flush();
    let secs = start.elapsed().as_secs_f64();
    eprintln!(
        "aiops: explained {n} commands in {:.1} ms: {:.0} commands/s",
        secs * 1000.0,
        n as f64 / secs.max(1e-9)
    );
    ExitCode::SUCCESS
}

fn cmd_explain(
    config: &std::path::Path,
    target: Option<String>,
    as_json: bool,
    command: &str,
) -> ExitCode {
    let policy = match explain_policy(config) {
        Ok(p) => p,
        Err(code) => return code,
    };
    if as_json {
        print_json(&explain_json(&policy, target.as_deref(), command));
    } else {
        let d = policy.classify_for(target.as_deref(), command);
        println!("risk: {}", d.risk.as_str());
        for r in &d.reasons {
            println!("  because: {r}");
        }
        if d.plan.shell {
            println!("plan: bash --noprofile --norc -c (approved only)");
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
            println!("plan[{i}] ({:?}): {}", p.connector, stages.join(" | "));
        }
    }
    ExitCode::SUCCESS
}

fn caller_name() -> String {
    if let Ok(u) = std::env::var("SUDO_USER") {
        return u;
    }
    nix::unistd::User::from_uid(nix::unistd::getuid())
        .ok()
        .flatten()
        .map(|u| u.name)
        .unwrap_or_else(|| format!("uid:{}", nix::unistd::getuid()))
}

fn cmd_approvals(config: &std::path::Path, command: ApprovalsCmd) -> ExitCode {
    if let ApprovalsCmd::InitKey { out, force } = &command {
        return match pki::init_approver_key(out, *force) {
            Ok(public) => {
                print_json(&json!({"status": "ok", "key": out, "public_key": public}));
                ExitCode::SUCCESS
            }
            Err(e) => answer_exit(&Answer::error("pki", e.to_string()), exit::SETUP),
        };
    }
    let loaded = match load(config) {
        Ok(l) => l,
        Err(code) => return code,
    };
    match command {
        ApprovalsCmd::List { json: as_json } => match approvals::list(&loaded) {
            Ok(all) => {
                if as_json {
                    print_json(&approvals::to_json(&all));
                } else {
                    let now = aiops_certs::now_ms();
                    for a in all.iter().filter(|a| a.state == approvals::State::Pending) {
                        println!(
                            "{}  {}  {:?}  by {}  expires in {}s\n    reason: {}",
                            a.id,
                            a.target,
                            a.command,
                            a.requester,
                            (a.expires_ms - now) / 1000,
                            a.reason
                        );
                    }
                }
                ExitCode::SUCCESS
            }
            Err(f) => answer_exit(&f.answer, f.exit),
        },
        ApprovalsCmd::Approve { id } => resolve_human(&loaded, approvals::Verb::Approve, id),
        ApprovalsCmd::Release { id } => {
            match runtime().block_on(approvals::release(&loaded, &id)) {
                Ok(a) => answer_exit(&a, exit::HANDLED),
                Err(f) => answer_exit(&f.answer, f.exit),
            }
        }
        ApprovalsCmd::InitKey { .. } => unreachable!("handled before loading the config"),
        ApprovalsCmd::Deny { id } => resolve_human(&loaded, approvals::Verb::Deny, id),
    }
}

fn resolve_human(loaded: &Loaded, verb: approvals::Verb, id: Option<String>) -> ExitCode {
    let rt = runtime();
    match rt.block_on(approvals::resolve(
        loaded,
        verb,
        id.as_deref(),
        approvals::Resolver::Human(caller_name()),
    )) {
        Ok(a) => answer_exit(&a, exit::HANDLED),
        Err(f) => answer_exit(&f.answer, f.exit),
    }
}

fn audit_file(config: &std::path::Path, file: Option<PathBuf>) -> Result<PathBuf, ExitCode> {
    match file {
        Some(f) => Ok(f),
        None => load(config).map(|l| l.config.audit_log),
    }
}

fn cmd_audit(config: &std::path::Path, command: AuditCmd) -> ExitCode {
    match command {
        AuditCmd::Verify { file } => {
            let file = match audit_file(config, file) {
                Ok(f) => f,
                Err(c) => return c,
            };
            match AuditLog::new(&file).verify() {
                Ok(v) => {
                    print_json(
                        &json!({"status": "ok", "file": file, "records": v.records, "head": v.head}),
                    );
                    ExitCode::SUCCESS
                }
                Err(e) => {
                    print_json(
                        &json!({"status": "error", "file": file, "line": e.line, "message": e.message}),
                    );
                    ExitCode::FAILURE
                }
            }
        }
        AuditCmd::Tail {
            n,
            file,
            json: as_json,
        } => {
            let file = match audit_file(config, file) {
                Ok(f) => f,
                Err(c) => return c,
            };
            match AuditLog::new(&file).tail(n) {
                Ok(records) => {
                    for r in records {
                        if as_json {
                            print_json(&r);
                            continue;
                        }
                        let get =
                            |k: &str| r.get(k).and_then(|v| v.as_str()).unwrap_or("").to_string();
                        let mut line = format!(
                            "{} #{} {:<18}",
                            get("ts"),
                            r.get("seq").and_then(|v| v.as_u64()).unwrap_or(0),
                            get("event")
                        );
                        for k in ["target", "requester", "risk", "code"] {
                            let v = get(k);
                            if !v.is_empty() {
                                line.push_str(&format!(" {k}={v}"));
                            }
                        }
                        if let Some(code) = r.get("exit_code") {
                            line.push_str(&format!(" exit={code}"));
                        }
                        let cmd = get("command");
                        if !cmd.is_empty() {
                            line.push_str(&format!(" cmd={cmd:?}"));
                        }
                        println!("{line}");
                    }
                    ExitCode::SUCCESS
                }
                Err(e) => {
                    eprintln!("aiops: {e}");
                    ExitCode::FAILURE
                }
            }
        }
    }
}

fn pki_dir(config: &std::path::Path, dir: Option<PathBuf>) -> Result<PkiDir, ExitCode> {
    match dir {
        Some(d) => Ok(PkiDir::new(d)),
        None => load(config).map(|l| l.pki()),
    }
}

fn cmd_certs(config: &std::path::Path, command: CertsCmd) -> ExitCode {
    match command {
        CertsCmd::Init {
            dir,
            identity,
            force,
        } => {
            let pki = match pki_dir(config, dir) {
                Ok(p) => p,
                Err(c) => return c,
            };
            match pki::init(&pki, &identity, force) {
                Ok(s) => {
                    print_json(&json!({
                        "status": "ok",
                        "pki_dir": s.dir,
                        "controller_identity": s.controller_identity,
                        "signing_key_id": s.signing_key_id,
                        "signing_public_key": s.signing_public_key,
                    }));
                    ExitCode::SUCCESS
                }
                Err(e) => answer_exit(&Answer::error("pki", e.to_string()), exit::SETUP),
            }
        }
        CertsCmd::IssueAgent { name, dns, ip, dir } => {
            if !config::valid_target_name(&name) {
                return answer_exit(
                    &Answer::error(
                        "invalid_name",
                        format!("{name:?} is not a valid target name"),
                    ),
                    exit::FAILED,
                );
            }
            let pki = match pki_dir(config, dir) {
                Ok(p) => p,
                Err(c) => return c,
            };
            match pki::issue_agent(&pki, &name, &dns, &ip) {
                Ok((cert, key)) => {
                    print_json(&json!({"status": "ok", "name": name, "cert": cert, "key": key}));
                    ExitCode::SUCCESS
                }
                Err(e) => answer_exit(&Answer::error("pki", e.to_string()), exit::SETUP),
            }
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
            let pki = match pki_dir(config, bundle.as_ref().and_then(|b| b.dir.clone())) {
                Ok(p) => p,
                Err(c) => return c,
            };
            let identity =
                bundle.map_or_else(|| pki::CONTROLLER_IDENTITY.to_string(), |b| b.identity);
            match setup::renew_controller(&pki, &identity, pki::LEAF_DAYS) {
                Ok(v) => {
                    print_json(&v);
                    ExitCode::SUCCESS
                }
                Err(e) => answer_exit(&Answer::error("pki", e), exit::SETUP),
            }
        }
        CertsCmd::Renew { .. } => answer_exit(
            &Answer::error(
                "invalid_field",
                "name a target (NAME --address A) or pass --controller",
            ),
            exit::FAILED,
        ),
    }
}

fn cmd_bundle(config: &std::path::Path, a: BundleArgs) -> ExitCode {
    let pki = match pki_dir(config, a.dir) {
        Ok(p) => p,
        Err(c) => return c,
    };
    let out = a
        .out
        .unwrap_or_else(|| pki.dir.join("bundles").join(format!("{}.bundle", a.name)));
    let spec = setup::BundleSpec {
        name: a.name,
        address: a.address,
        listen: a.listen,
        dns: a.dns,
        ips: a.ip,
        out: out.clone(),
        days: a.days,
        identity: a.identity,
    };
    match setup::make_bundle(&pki, &spec) {
        Ok(b) => {
            print_json(&json!({
                "status": "ok", "name": b.name, "bundle": out, "listen": b.listen,
                "address": b.address, "cert_not_after": b.cert_not_after,
                "next": format!("copy {} to {} and run `aiops-agent enroll FILE` (or `setup-aiops.sh srv1 FILE`) there, then delete it", out.display(), b.name),
            }));
            ExitCode::SUCCESS
        }
        Err(e) => answer_exit(&Answer::error("pki", e), exit::SETUP),
    }
}

fn cmd_targets(config: &std::path::Path, command: TargetsCmd) -> ExitCode {
    if let TargetsCmd::Add {
        name,
        address,
        server_name,
    } = &command
    {
        return match setup::add_target(config, name, address, server_name.as_deref()) {
            Ok(v) => {
                print_json(&v);
                ExitCode::SUCCESS
            }
            Err(e) => answer_exit(&Answer::error("config", e), exit::SETUP),
        };
    }
    if let TargetsCmd::Import {
        inventory,
        port,
        label_vars,
        format,
        dry_run,
    } = &command
    {
        let opts = inventory::ImportOptions {
            default_port: *port,
            label_vars: label_vars.clone(),
        };
        return match setup::import_inventory(config, inventory, format.as_deref(), &opts, *dry_run)
        {
            Ok(v) => {
                print_json(&v);
                ExitCode::SUCCESS
            }
            Err(e) => answer_exit(&Answer::error("inventory", e), exit::SETUP),
        };
    }
    let loaded = match load(config) {
        Ok(l) => l,
        Err(code) => return code,
    };
    match command {
        TargetsCmd::Add { .. } | TargetsCmd::Import { .. } => unreachable!("handled above"),
        TargetsCmd::List { json: as_json } => {
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
                print_json(&list);
            } else {
                for t in &list {
                    println!(
                        "{}\t{}\tgroups={}\tlabels={}",
                        t["name"].as_str().unwrap_or(""),
                        t["address"].as_str().unwrap_or(""),
                        t["groups"],
                        t["labels"]
                    );
                }
            }
            ExitCode::SUCCESS
        }
        TargetsCmd::Check { json: as_json } => {
            let sender = match run::Sender::load(&loaded) {
                Ok(s) => s,
                Err(f) => return answer_exit(&f.answer, f.exit),
            };
            let rt = runtime();
            let results = rt.block_on(check_targets(&loaded, &sender));
            let all_ok = results
                .iter()
                .all(|r| r["reachable"] == true && r["health"] == "SERVING");
            if as_json {
                print_json(&results);
            } else {
                for r in &results {
                    println!("{r}");
                }
            }
            if all_ok {
                ExitCode::SUCCESS
            } else {
                ExitCode::FAILURE
            }
        }
    }
}

async fn check_targets(loaded: &Loaded, sender: &run::Sender) -> Vec<serde_json::Value> {
    let timeout = std::time::Duration::from_millis(loaded.config.defaults.connect_timeout_ms);
    let checks = loaded.config.targets.iter().map(|(name, t)| async move {
        let server_name = t.server_name.clone().unwrap_or_else(|| name.clone());
        let described = match client::connect(&t.address, &server_name, sender.tls(), timeout).await {
            Ok(ch) => {
                let health = setup::health(ch.clone()).await;
                client::describe(ch).await.map(|d| (d, health))
            }
            Err(e) => Err(e),
        };
        match described {
            Ok((d, health)) => {
                let now = aiops_certs::now_ms();
                json!({
                    "target": name, "address": t.address, "reachable": true,
                    "version": d.version, "name": d.name, "policy_digest": d.policy_digest,
                    "cert_not_after": aiops_certs::rfc3339_ms(d.cert_not_after * 1000),
                    "cert_days_left": (d.cert_not_after * 1000 - now) / 86_400_000,
                    "clock_offset_ms": d.now_ms - now,
                    "controller_key_id": d.controller_key_id,
                    "landlock_abi": d.landlock_abi, "confinement": d.confinement,
                    "health": health.unwrap_or_else(|e| format!("error: {e}")),
                })
            }
            Err(e) => json!({"target": name, "address": t.address, "reachable": false, "error": e.to_string()}),
        }
    });
    futures_util::future::join_all(checks).await
}

fn cmd_lab(command: LabCmd) -> ExitCode {
    let result = match command {
        LabCmd::Init { dir, agents, port, mode, force } => lab::init(&lab::LabSpec {
            dir: dir.clone(),
            agents,
            base_port: port,
            mode: match mode {
                ModeArg::Lab => aiops_policy::Mode::Lab,
                ModeArg::Production => aiops_policy::Mode::Production,
            },
            force,
        })
        .map(|()| json!({"status": "ok", "dir": dir, "config": dir.join("config.yml"), "agents": agents})),
        LabCmd::Up { dir } => lab::up(&dir).map(|started| json!({"status": "ok", "started": started})),
        LabCmd::Down { dir } => lab::down(&dir).map(|stopped| json!({"status": "ok", "stopped": stopped})),
    };
    match result {
        Ok(v) => {
            print_json(&v);
            ExitCode::SUCCESS
        }
        Err(e) => answer_exit(&Answer::error("lab", e), exit::SETUP),
    }
}

fn cmd_quickstart(dir: &std::path::Path, agents: u16, port: u16) -> ExitCode {
    let config = dir.join("config.yml");
    if !config.exists() {
        if let Err(e) = lab::init(&lab::LabSpec {
            dir: dir.to_path_buf(),
            agents,
            base_port: port,
            mode: aiops_policy::Mode::Lab,
            force: false,
        }) {
            return answer_exit(&Answer::error("lab", e), exit::SETUP);
        }
        eprintln!("aiops: wrote a lab in {}", dir.display());
    }
    if let Err(e) = lab::up(dir) {
        return answer_exit(&Answer::error("lab", e), exit::SETUP);
    }
    let loaded = match load(&config) {
        Ok(l) => l,
        Err(code) => return code,
    };
    let request = br#"{"target":"srv1","command":"hostname","requester":"quickstart","reason":"validate the lab: CLI -> mTLS -> agent -> CLI"}"#;
    let (answer, code) = runtime().block_on(run::run_json(&loaded, request));
    print_json(&answer);
    let cfg = config.display();
    println!(
        "\nNext, try:\n  \
         echo '{{\"target\":\"srv1\",\"command\":\"df -h\",\"requester\":\"manual\",\"reason\":\"test\"}}' | AIOPS_CONFIG={cfg} aiops run\n  \
         echo '{{\"target\":\"srv2\",\"command\":\"touch /tmp/aiops-demo\",\"requester\":\"manual\",\"reason\":\"needs approval\"}}' | AIOPS_CONFIG={cfg} aiops run\n  \
         echo Approve | AIOPS_CONFIG={cfg} aiops run\n  \
         AIOPS_CONFIG={cfg} aiops policy explain -- 'ps aux | grep nginx'\n  \
         AIOPS_CONFIG={cfg} aiops audit tail\n  \
         AIOPS_CONFIG={cfg} aiops audit verify\n  \
         aiops lab down --dir {}",
        dir.display()
    );
    ExitCode::from(code)
}
