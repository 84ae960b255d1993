//! Path helpers shared by the forbidden scan and the specs: a path model
//! that resolves the way the kernel does where it can be done without the
//! file system (`.`, `..`, `//`, relative paths against the working
//! directory), and names the kernel's aliases (`/proc/PID/root`, `/dev/fd`
//! ...) that reach any file under another name.

/// Lexically normalises an absolute or relative path: collapses `//`,
/// resolves `.` and `..` (never above `/`), drops a trailing slash.
/// Symlinks are not resolved (pure code, no file system access).
pub(crate) fn normalize(path: &str) -> String {
    let abs = path.starts_with('/');
    let mut parts: Vec<&str> = Vec::new();
    for p in path.split('/') {
        match p {
            "" | "." => {}
            ".." => {
                if parts.last().is_some_and(|l| *l != "..") {
                    parts.pop();
                } else if !abs {
                    parts.push("..");
                }
            }
            p => parts.push(p),
        }
    }
    let joined = parts.join("/");
    if abs {
        format!("/{joined}")
    } else if joined.is_empty() {
        ".".into()
    } else {
        joined
    }
}

/// Resolves `path` against `cwd` (when known) and normalises it.
pub(crate) fn resolve(cwd: Option<&str>, path: &str) -> String {
    match cwd {
        Some(c) if !path.starts_with('/') => normalize(&format!("{c}/{path}")),
        _ => normalize(path),
    }
}

/// The working directory the agent's executor starts every command in.
pub const EXEC_CWD: &str = "/";

/// Most working directories tracked at once before the working directory
/// counts as unknown.
const MAX_CWDS: usize = 8;

/// Where relative paths of a stage resolve: every working directory the
/// executor may be in when the stage runs, or unknown.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Cwd {
    /// One of these absolute, normalised directories (never empty).
    Known(Vec<String>),
    /// Anything.
    Unknown,
}

impl Cwd {
    /// The executor's starting directory.
    pub(crate) fn start() -> Cwd {
        Cwd::Known(vec![EXEC_CWD.to_string()])
    }

    /// Every directory of both.
    pub(crate) fn union(&self, other: &Cwd) -> Cwd {
        match (self, other) {
            (Cwd::Known(a), Cwd::Known(b)) => {
                let mut all = a.clone();
                for d in b {
                    if !all.contains(d) {
                        all.push(d.clone());
                    }
                }
                if all.len() > MAX_CWDS {
                    Cwd::Unknown
                } else {
                    Cwd::Known(all)
                }
            }
            _ => Cwd::Unknown,
        }
    }

    /// Where `cd dir` lands when it succeeds. A `..` (which the kernel
    /// resolves after symlinks) or a dynamic word makes it unknown.
    pub(crate) fn cd(&self, dir: &str) -> Cwd {
        if dir.split('/').any(|c| c == "..") {
            return Cwd::Unknown;
        }
        match self {
            Cwd::Known(_) if dir.starts_with('/') => Cwd::Known(vec![normalize(dir)]),
            Cwd::Known(v) => {
                let mut out: Vec<String> = Vec::new();
                for c in v {
                    let r = resolve(Some(c), dir);
                    if !out.contains(&r) {
                        out.push(r);
                    }
                }
                Cwd::Known(out)
            }
            Cwd::Unknown if dir.starts_with('/') => Cwd::Known(vec![normalize(dir)]),
            Cwd::Unknown => Cwd::Unknown,
        }
    }

    /// The absolute paths `path` may name, or `None` when the working
    /// directory is unknown and `path` is relative.
    pub(crate) fn paths(&self, path: &str) -> Option<Vec<String>> {
        if path.starts_with('/') {
            return Some(vec![normalize(path)]);
        }
        match self {
            Cwd::Known(v) => Some(v.iter().map(|c| resolve(Some(c), path)).collect()),
            Cwd::Unknown => None,
        }
    }
}

/// `Some(reason)` when the normalised absolute path `norm` reaches another
/// file through a kernel alias: `/proc/PID/root`, `/proc/PID/cwd`,
/// `/proc/PID/fd/N`, `/proc/PID/map_files`, the same under
/// `/proc/PID/task/TID` and `/proc/thread-self`, and `/dev/fd/N`,
/// `/dev/stdin|stdout|stderr`. Such a path can name any file, so reading
/// through it can never be automatic.
pub(crate) fn alias(norm: &str) -> Option<String> {
    let comps: Vec<&str> = norm.split('/').filter(|c| !c.is_empty()).collect();
    let why = |what: &str| {
        Some(format!(
            "{norm} is a kernel alias ({what}) that can name any file"
        ))
    };
    match comps.as_slice() {
        ["dev", "fd", ..] => why("/dev/fd"),
        ["dev", s @ ("stdin" | "stdout" | "stderr"), ..] => why(&format!("/dev/{s}")),
        ["proc", first, rest @ ..] => {
            let proc_dir = *first == "self"
                || *first == "thread-self"
                || first.chars().all(|c| c.is_ascii_digit());
            if !proc_dir {
                return None;
            }
            let rest = match rest {
                ["task", _tid, r @ ..] => r,
                r => r,
            };
            match rest.first() {
                Some(&e @ ("root" | "cwd" | "fd" | "map_files")) => {
                    why(&format!("/proc/{first}/{e}"))
                }
                _ => None,
            }
        }
        _ => None,
    }
}

/// The path a kernel alias leads to when it is known without the file
/// system: `/proc/PID/root/REST` is `/REST` (outside a chroot), and
/// `/proc/PID/cwd/REST` is assumed to be `/REST` too (the executor's
/// starting directory). Other paths are returned as they are.
pub(crate) fn dealias(norm: &str) -> String {
    let comps: Vec<&str> = norm.split('/').filter(|c| !c.is_empty()).collect();
    if let ["proc", first, rest @ ..] = comps.as_slice()
        && (*first == "self"
            || *first == "thread-self"
            || first.chars().all(|c| c.is_ascii_digit()))
    {
        let rest = match rest {
            ["task", _tid, r @ ..] => r,
            r => r,
        };
        if let ["root" | "cwd", tail @ ..] = rest {
            return dealias(&format!("/{}", tail.join("/")));
        }
    }
    norm.to_string()
}

/// The last path component (what a command name resolves to by basename).
pub(crate) fn basename(p: &str) -> &str {
    p.rsplit('/').next().unwrap_or(p)
}

/// Glob match where `*` matches any run of characters (including `/`) and
/// `?` one character. Used for sensitive-path patterns.
pub(crate) fn glob_match(pattern: &str, text: &str) -> bool {
    // Bytes: the patterns are ASCII, and `*` runs work on bytes alike.
    let p = pattern.as_bytes();
    let t = text.as_bytes();
    let (mut pi, mut ti) = (0usize, 0usize);
    let mut star: Option<(usize, usize)> = None;
    while ti < t.len() {
        if pi < p.len() && (p[pi] == b'?' || p[pi] == t[ti]) {
            pi += 1;
            ti += 1;
        } else if pi < p.len() && p[pi] == b'*' {
            star = Some((pi, ti));
            pi += 1;
        } else if let Some((sp, st)) = star {
            pi = sp + 1;
            ti = st + 1;
            star = Some((sp, st + 1));
        } else {
            return false;
        }
    }
    while pi < p.len() && p[pi] == b'*' {
        pi += 1;
    }
    pi == p.len()
}

/// Top-level system directories whose recursive removal or re-ownership
/// breaks the host.
pub(crate) fn is_critical_dir(norm: &str) -> bool {
    const CRITICAL: &[&str] = &[
        "/",
        "/bin",
        "/boot",
        "/dev",
        "/etc",
        "/home",
        "/lib",
        "/lib32",
        "/lib64",
        "/libx32",
        "/opt",
        "/proc",
        "/root",
        "/run",
        "/sbin",
        "/srv",
        "/sys",
        "/usr",
        "/var",
        "/snap",
        "/mnt",
        "/media",
        "/usr/bin",
        "/usr/sbin",
        "/usr/lib",
        "/usr/lib64",
        "/usr/local",
        "/usr/share",
        "/usr/include",
        "/var/lib",
        "/var/log",
        "/etc/ssh",
        "/etc/systemd",
    ];
    CRITICAL.contains(&norm)
}

/// A user's home directory (`/root`, `/home/NAME`): its recursive removal
/// is irreversible. `/home/~` stands for `~` and `$HOME`.
pub(crate) fn is_home_dir(norm: &str) -> bool {
    norm == "/root"
        || norm
            .strip_prefix("/home/")
            .is_some_and(|u| !u.is_empty() && !u.contains('/'))
}

/// Files whose modification means account takeover, persistence or a crash.
pub(crate) fn is_protected_file(norm: &str) -> bool {
    const EXACT: &[&str] = &[
        "/etc/passwd",
        "/etc/shadow",
        "/etc/group",
        "/etc/gshadow",
        "/etc/sudoers",
        "/etc/crontab",
        "/etc/ld.so.preload",
        "/proc/sysrq-trigger",
        "/etc/security/opasswd",
        "/usr/bin/sudo",
        "/bin/sudo",
        "/usr/bin/su",
        "/bin/su",
        "/usr/bin/pkexec",
        "/usr/sbin/sshd",
        "/etc/ld.so.conf",
    ];
    const PREFIX: &[&str] = &[
        "/etc/sudoers.d/",
        "/etc/cron.d/",
        "/etc/cron.hourly/",
        "/etc/cron.daily/",
        "/etc/cron.weekly/",
        "/etc/cron.monthly/",
        "/var/spool/cron/",
        "/etc/pam.d/",
        "/etc/ld.so.conf.d/",
    ];
    EXACT.contains(&norm)
        || PREFIX.iter().any(|p| norm.starts_with(p))
        || basename(norm).starts_with("authorized_keys")
        || norm.starts_with("/etc/sudoers")
}

/// Block devices (writing them destroys file systems).
pub(crate) fn is_block_device(norm: &str) -> bool {
    let Some(dev) = norm.strip_prefix("/dev/") else {
        return false;
    };
    const PREFIX: &[&str] = &[
        "sd", "hd", "vd", "xvd", "nvme", "mmcblk", "dm-", "md", "mapper/", "disk/", "loop", "nbd",
        "rbd", "zd", "bcache", "sr", "mem", "kmem", "port",
    ];
    PREFIX.iter().any(|p| dev.starts_with(p))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn normalisation() {
        assert_eq!(normalize("//"), "/");
        assert_eq!(normalize("/etc/../etc/./passwd"), "/etc/passwd");
        assert_eq!(normalize("/../../etc/"), "/etc");
        assert_eq!(normalize("a/../../b"), "../b");
        assert!(glob_match("/etc/sudoers*", "/etc/sudoers.d/x"));
        assert!(glob_match("*/.ssh/id_*", "/root/.ssh/id_rsa"));
        assert!(!glob_match("*.key", "/etc/x.keys"));
    }
}
