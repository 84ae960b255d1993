//! Files that decide who may approve (the controller's configuration, the
//! approver public key, an agent's configuration) are trusted only when
//! root owns them and no group or other account can write them, as sudo
//! checks its sudoers files: otherwise the account that runs the controller
//! (or the agent) could name itself an approver or swap the approver key.

use std::os::unix::fs::MetadataExt;
use std::path::Path;

/// `Ok` when `path` is a regular file owned by root and writable by root
/// only; otherwise why not.
pub fn check_root_owned(path: &Path) -> Result<(), String> {
    let meta = std::fs::metadata(path).map_err(|e| format!("{}: {e}", path.display()))?;
    if !meta.is_file() {
        return Err(format!("{}: not a regular file", path.display()));
    }
    if meta.uid() != 0 {
        return Err(format!(
            "{} is owned by uid {}, not root: it decides who may approve, so only root may own it",
            path.display(),
            meta.uid()
        ));
    }
    if meta.mode() & 0o022 != 0 {
        return Err(format!(
            "{} is writable by its group or others (mode {:o}): it decides who may approve",
            path.display(),
            meta.mode() & 0o7777
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    #[test]
    fn only_root_owned_files_writable_by_root_alone_pass() {
        if !nix::unistd::geteuid().is_root() {
            panic!("this test needs root (CI runs as root): it chowns files");
        }
        let dir = tempfile::tempdir().unwrap();
        let f = dir.path().join("approver.pub");
        std::fs::write(&f, "ed25519:00").unwrap();
        std::fs::set_permissions(&f, std::fs::Permissions::from_mode(0o644)).unwrap();
        check_root_owned(&f).unwrap();
        std::fs::set_permissions(&f, std::fs::Permissions::from_mode(0o664)).unwrap();
        assert!(check_root_owned(&f).unwrap_err().contains("writable"));
        std::fs::set_permissions(&f, std::fs::Permissions::from_mode(0o644)).unwrap();
        nix::unistd::chown(&f, Some(nix::unistd::Uid::from_raw(65534)), None).unwrap();
        assert!(check_root_owned(&f).unwrap_err().contains("uid 65534"));
        assert!(check_root_owned(dir.path()).is_err());
        assert!(check_root_owned(&dir.path().join("missing")).is_err());
    }
}
