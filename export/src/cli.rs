//! The `audit export` command line, shared by `aiops` and `aiops-agent`.

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use super::ExportConfig;

/// `aiops audit export` / `aiops-agent audit export`.
#[derive(clap::Args, Debug)]
pub struct ExportArgs {
    /// Export configuration [default: export.yml beside the controller config;
    /// /etc/aiops-agent-export/export.yml on an agent].
    #[arg(long)]
    pub export_config: Option<PathBuf>,
    /// Export what is there, then exit (0 when every sink is caught up, 1 after an error).
    #[arg(long, conflicts_with = "status")]
    pub once: bool,
    /// Print each sink's position, backlog, lag and last error as JSON; export nothing.
    #[arg(long)]
    pub status: bool,
}

/// What differs between the controller and an agent.
pub struct Defaults<'a> {
    /// The export configuration without `--export-config`.
    pub export_config: PathBuf,
    /// `service.name` / APP-NAME when the configuration sets none.
    pub service_name: &'a str,
    /// The audit log when the configuration sets none (from the program's
    /// own configuration, which the export account may not be able to read).
    pub audit_log: &'a dyn Fn() -> Result<PathBuf, String>,
    /// Prefix of error messages.
    pub program: &'a str,
}

/// `export.yml` beside a configuration file.
pub fn beside(config: &Path) -> PathBuf {
    config.parent().unwrap_or(Path::new(".")).join("export.yml")
}

/// Runs `audit export`.
pub fn cmd(args: ExportArgs, defaults: &Defaults) -> ExitCode {
    let path = args
        .export_config
        .unwrap_or_else(|| defaults.export_config.clone());
    let mut cfg = match ExportConfig::load(&path) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("{}: {e}", defaults.program);
            return ExitCode::from(64);
        }
    };
    if cfg.service_name.is_empty() {
        cfg.service_name = defaults.service_name.to_string();
    }
    let audit_log = match &cfg.audit_log {
        Some(a) => a.clone(),
        None => match (defaults.audit_log)() {
            Ok(a) => a,
            Err(e) => {
                eprintln!(
                    "{}: {e} (or set audit_log in {})",
                    defaults.program,
                    path.display()
                );
                return ExitCode::from(64);
            }
        },
    };
    if args.status {
        let mut text = super::status(&cfg, &audit_log).to_string();
        text.push('\n');
        // A closed stdout is a normal end.
        let _ = std::io::Write::write_all(&mut std::io::stdout().lock(), text.as_bytes());
        return ExitCode::SUCCESS;
    }
    super::run(&cfg, &audit_log, args.once)
}
