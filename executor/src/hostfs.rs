//! This host's file system as the policy's re-check sees it ([`aiops_policy::HostFs`]):
//! `realpath` with every symbolic link resolved, bounded walks of the trees recursive
//! reads would enter, and whether another account can redirect a path. The root
//! executor runs it itself (the agent daemon does the same check, but a compromised
//! daemon is the process it would protect against); no network code here.

use std::collections::HashSet;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

use aiops_policy::{HostFs, Walk};

/// The real file system of this host.
pub struct HostFiles;

/// Most symbolic links followed while resolving one path (the kernel's own limit).
const MAX_LINKS: usize = 40;

/// `Some(why)` when a directory another account can change holds a name that a lookup
/// consults: owned by someone other than root (an owner can always `chmod` it writable),
/// or writable by a group other than root's, or by everyone (a sticky bit does not stop
/// others from creating the names that do not exist yet). `/proc` directories are the
/// kernel's: their owner cannot add or replace entries.
fn untrusted(dir: &Path, meta: &std::fs::Metadata) -> Option<String> {
    if dir.starts_with("/proc") {
        return None;
    }
    let mode = meta.mode();
    if meta.uid() != 0 {
        return Some(format!("{} is owned by uid {}", dir.display(), meta.uid()));
    }
    if mode & 0o020 != 0 && meta.gid() != 0 {
        return Some(format!(
            "{} is writable by group {}",
            dir.display(),
            meta.gid()
        ));
    }
    if mode & 0o002 != 0 {
        return Some(format!("{} is writable by everyone", dir.display()));
    }
    None
}

/// Walks `path` the way the kernel resolves it, checking every directory a name is
/// looked up in and every link followed. A component that does not exist ends the walk:
/// nothing below it can appear without a write to the directory already checked. A
/// directory whose metadata cannot be read (an unprivileged caller) is not judged: the
/// root executor, which can read every one, makes the decision that counts.
pub fn writable_dir(path: &str) -> Option<String> {
    let mut todo: Vec<String> = path
        .split('/')
        .filter(|c| !c.is_empty())
        .rev()
        .map(str::to_string)
        .collect();
    let mut cur = PathBuf::from("/");
    let mut links = 0;
    while let Some(comp) = todo.pop() {
        let meta = match std::fs::metadata(&cur) {
            Ok(m) => m,
            Err(_) => return None,
        };
        if let Some(why) = untrusted(&cur, &meta) {
            return Some(why);
        }
        match comp.as_str() {
            "." => continue,
            ".." => {
                cur.pop();
                continue;
            }
            _ => {}
        }
        let next = cur.join(&comp);
        let Ok(lmeta) = std::fs::symlink_metadata(&next) else {
            return None;
        };
        if lmeta.file_type().is_symlink() {
            links += 1;
            if links > MAX_LINKS {
                return Some(format!("{path}: too many symbolic links"));
            }
            // Links in root's directories are root's to change; a link another account
            // owns is one that account's kernel object (`/proc/PID/cwd`) may redirect.
            if lmeta.uid() != 0 {
                return Some(format!(
                    "{} is a link owned by uid {}",
                    next.display(),
                    lmeta.uid()
                ));
            }
            let Ok(target) = std::fs::read_link(&next) else {
                return Some(format!("{}: unreadable link", next.display()));
            };
            let t = target.to_string_lossy().into_owned();
            if t.starts_with('/') {
                cur = PathBuf::from("/");
            }
            todo.extend(
                t.split('/')
                    .filter(|c| !c.is_empty())
                    .rev()
                    .map(str::to_string),
            );
            continue;
        }
        cur = next;
    }
    None
}

impl HostFs for HostFiles {
    fn realpath(&self, path: &str) -> Option<String> {
        let p = Path::new(path);
        if let Ok(c) = std::fs::canonicalize(p) {
            return Some(c.to_string_lossy().into_owned());
        }
        // A path that does not exist (yet): resolve its longest existing
        // ancestor, which is where a link would redirect it.
        let mut rest = Vec::new();
        let mut cur = p;
        while let (Some(parent), Some(name)) = (cur.parent(), cur.file_name()) {
            rest.push(name.to_owned());
            cur = parent;
            if let Ok(mut c) = std::fs::canonicalize(cur) {
                for n in rest.iter().rev() {
                    c.push(n);
                }
                return Some(c.to_string_lossy().into_owned());
            }
        }
        None
    }

    fn walk(&self, dir: &str, limit: usize) -> Walk {
        let mut entries = Vec::new();
        let mut complete = true;
        let mut seen: HashSet<PathBuf> = HashSet::new();
        let Ok(root) = std::fs::canonicalize(dir) else {
            return Walk::Entries {
                entries,
                complete: false,
            };
        };
        let mut todo = vec![root];
        while let Some(d) = todo.pop() {
            if !seen.insert(d.clone()) {
                continue;
            }
            let Ok(rd) = std::fs::read_dir(&d) else {
                if d.is_dir() {
                    complete = false;
                }
                continue;
            };
            for e in rd.flatten() {
                if entries.len() >= limit {
                    return Walk::TooLarge;
                }
                let path = e.path();
                let Ok(meta) = std::fs::symlink_metadata(&path) else {
                    complete = false;
                    continue;
                };
                // A link is judged by its target; a linked directory is
                // walked too (`grep -R` follows it).
                let real = if meta.file_type().is_symlink() {
                    match std::fs::canonicalize(&path) {
                        Ok(r) => r,
                        Err(_) => continue,
                    }
                } else {
                    path
                };
                if std::fs::metadata(&real).is_ok_and(|m| m.is_dir()) {
                    todo.push(real.clone());
                }
                entries.push(real.to_string_lossy().into_owned());
            }
        }
        Walk::Entries { entries, complete }
    }

    fn writable_dir(&self, path: &str) -> Option<String> {
        writable_dir(path)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn directories_others_can_change_are_named_and_roots_are_not() {
        // These tests run as root (scripts/test.sh); /tmp is 1777 everywhere.
        let w = writable_dir("/tmp/anything").expect("/tmp is world-writable");
        assert!(w.contains("/tmp"), "{w}");
        assert_eq!(writable_dir("/etc/hostname"), None);
        assert_eq!(writable_dir("/etc/."), None);
        assert_eq!(writable_dir("/"), None);
        // A missing name under a root directory cannot appear without root.
        assert_eq!(writable_dir("/etc/no-such-dir/x/y"), None);
        // /proc/self/fd is a kernel directory; /proc/self itself is a link owned by the reader.
        assert_eq!(writable_dir("/proc/1/status"), None);
        let dir = tempfile_dir();
        // A link in a root-only place that points into a directory another account owns.
        let link = format!("/run/aiops-hostfs-test-{}", std::process::id());
        std::os::unix::fs::symlink(&dir, &link).expect("link");
        std::os::unix::fs::chown(&dir, Some(65534), None).expect("chown");
        let w = writable_dir(&format!("{link}/file"));
        let _ = std::fs::remove_file(&link);
        let _ = std::fs::remove_dir_all(&dir);
        let w = w.expect("through the link into nobody's directory");
        assert!(w.contains("uid 65534"), "{w}");
    }

    fn tempfile_dir() -> PathBuf {
        let d = PathBuf::from(format!("/run/aiops-hostfs-dir-{}", std::process::id()));
        std::fs::create_dir_all(&d).expect("dir");
        d
    }
}
