//! The `aiops audit export` command line.

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use super::ExportConfig;

/// `aiops audit export`.
#[derive(clap::Args, Debug)]
pub struct ExportArgs {
    /// Export configuration [default: export.yml beside the controller config].
    #[arg(long)]
    pub export_config: Option<PathBuf>,
    /// Export what is there, then exit (0 when every sink is caught up, 1 after an error).
    #[arg(long, conflicts_with = "status")]
    pub once: bool,
    /// Print each sink's position, backlog, lag and last error as JSON; export nothing.
    #[arg(long)]
    pub status: bool,
}

fn default_export_config(config: &Path) -> PathBuf {
    config.parent().unwrap_or(Path::new(".")).join("export.yml")
}

/// Runs `aiops audit export`.
pub fn cmd(config: &Path, args: ExportArgs) -> ExitCode {
    let path = args
        .export_config
        .unwrap_or_else(|| default_export_config(config));
    let cfg = match ExportConfig::load(&path) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("aiops: {e}");
            return ExitCode::from(64);
        }
    };
    let audit_log = match &cfg.audit_log {
        Some(a) => a.clone(),
        None => match crate::config::Loaded::load(config) {
            Ok(l) => l.config.audit_log,
            Err(e) => {
                eprintln!("aiops: {e} (or set audit_log in {})", path.display());
                return ExitCode::from(64);
            }
        },
    };
    if args.status {
        // A closed stdout is a normal end.
        let _ = crate::output::json(&super::status(&cfg, &audit_log));
        return ExitCode::SUCCESS;
    }
    super::run(&cfg, &audit_log, args.once)
}
