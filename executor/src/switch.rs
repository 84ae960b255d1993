//! `aiops-sandbox [--stdin-file PATH] PROGRAM ARGS...`: the one place that holds CAP_SETUID and
//! CAP_SETGID (as file capabilities, executable by the agent's group only).
//! It switches to the command account named in the root-owned agent
//! configuration — never to uid or gid 0, never to an account the caller
//! names — sets the rlimits, drops every capability, sets `no_new_privs`,
//! enters the read-only Landlock domain and executes the program.
//!
//! Why not an ambient CAP_SETUID on the daemon: a process holding CAP_SETUID
//! can `setuid(0)`, and uid 0 is root (it owns the executor's state, it may
//! talk to systemd). Kept here, the capability can only ever reach the
//! command account. It takes no options: a caller cannot point it at
//! another configuration.

use std::os::unix::process::CommandExt;
use std::path::Path;
use std::process::ExitCode;

use crate::config::{Config, DEFAULT_CONFIG};
use crate::sandbox::{Account, Confinement, ReadOnly};

/// Exit status when it refuses or cannot confine.
pub const EXIT_SANDBOX: u8 = 125;

/// Entry point of `aiops-sandbox`.
pub fn main() -> ExitCode {
    let args: Vec<std::ffi::OsString> = std::env::args_os().skip(1).collect();
    if args.len() == 2 && args[0] == "--install-file-caps" {
        // Root only (CAP_SETFCAP); postinst runs it once.
        return match crate::sandbox::set_switch_file_caps(Path::new(&args[1])) {
            Ok(()) => ExitCode::SUCCESS,
            Err(e) => {
                eprintln!("aiops-sandbox: {e}");
                ExitCode::from(EXIT_SANDBOX)
            }
        };
    }
    // `--stdin-file PATH`: the stage's `< PATH`, opened as the command account after the
    // switch and inside the Landlock domain, never by the daemon (a program path is
    // absolute, so it cannot be mistaken for this option).
    let (stdin_file, args) = match args.as_slice() {
        [flag, path, rest @ ..] if flag == "--stdin-file" => {
            (Some(std::path::PathBuf::from(path)), rest)
        }
        _ => (None, args.as_slice()),
    };
    let Some((program, rest)) = args.split_first() else {
        eprintln!(
            "aiops-sandbox: usage: aiops-sandbox [--stdin-file /PATH] /ABSOLUTE/PROGRAM [ARGS...]"
        );
        return ExitCode::from(EXIT_SANDBOX);
    };
    if stdin_file.as_ref().is_some_and(|p| !p.is_absolute()) {
        eprintln!("aiops-sandbox: --stdin-file takes an absolute path");
        return ExitCode::from(EXIT_SANDBOX);
    }
    let fail = |m: String| {
        eprintln!("aiops-sandbox: {m}");
        ExitCode::from(EXIT_SANDBOX)
    };
    let cfg = match Config::load(Path::new(DEFAULT_CONFIG)) {
        Ok(c) => c,
        Err(e) => return fail(format!("config: {e}")),
    };
    let Some(name) = cfg.command_account.as_deref() else {
        return fail("no command_account configured".into());
    };
    let account = match Account::lookup(name) {
        Ok(a) if a.uid != 0 && a.gid != 0 => a,
        Ok(_) => return fail(format!("command_account {name:?} is root")),
        Err(e) => return fail(e),
    };
    let ruleset = match ReadOnly::new(&[]) {
        Ok(Some(r)) => Some(r),
        Ok(None) if cfg.run_unconfined => None,
        Ok(None) => return fail("landlock_unavailable: this kernel has no Landlock".into()),
        Err(e) => return fail(e),
    };
    let mut cmd = std::process::Command::new(program);
    cmd.args(rest);
    Confinement {
        account: Some(account),
        limits: Some(cfg.limits),
        drop_capabilities: true,
        no_new_privs: true,
        landlock: ruleset.as_ref(),
        withhold_capabilities: 0,
        die_with_parent: false,
        stdin_file: stdin_file.as_deref(),
    }
    .install(&mut cmd);
    fail(format!("{}: {}", program.to_string_lossy(), cmd.exec()))
}
