//! Approver-side daemons, run by the approver account (the only account that
//! can read the approver signing key): [`telegram`], the approver chat bot,
//! and [`teams`], the Microsoft Teams bot. Further chat approvers go beside them. They resolve approvals through
//! [`crate::approvals::grant`], exactly like `aiops approvals approve`.

pub mod teams;
pub mod telegram;

use std::io::Read;
use std::path::Path;

/// Reads a private file: a regular file owned by this account, not readable by group or others.
pub(crate) fn read_private(path: &Path, what: &str, limit: u64) -> Result<String, String> {
    use std::os::unix::fs::MetadataExt;
    let f = std::fs::File::open(path).map_err(|e| format!("{}: {e}", path.display()))?;
    let meta = f
        .metadata()
        .map_err(|e| format!("{}: {e}", path.display()))?;
    let euid = nix::unistd::geteuid().as_raw();
    if !meta.is_file() {
        return Err(format!("{}: not a regular file", path.display()));
    }
    if meta.uid() != euid {
        return Err(format!(
            "{}: owned by uid {}, not by the account running the bot (uid {euid}); refusing it",
            path.display(),
            meta.uid()
        ));
    }
    if meta.mode() & 0o077 != 0 {
        return Err(format!(
            "{}: mode {:04o} lets others read the {what}; chmod 600 it",
            path.display(),
            meta.mode() & 0o7777
        ));
    }
    let mut text = String::new();
    f.take(limit)
        .read_to_string(&mut text)
        .map_err(|e| format!("{}: {e}", path.display()))?;
    Ok(text)
}
