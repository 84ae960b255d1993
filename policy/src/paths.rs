//! Path helpers shared by the forbidden scan and the specs.

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

/// The last path component (what a command name resolves to by basename).
pub(crate) fn basename(p: &str) -> &str {
    p.rsplit('/').next().unwrap_or(p)
}

/// Glob match where `*` matches any run of characters (including `/`) and
/// `?` one character. Used for sensitive-path patterns.
pub(crate) fn glob_match(pattern: &str, text: &str) -> bool {
    let p: Vec<char> = pattern.chars().collect();
    let t: Vec<char> = text.chars().collect();
    let (mut pi, mut ti) = (0usize, 0usize);
    let mut star: Option<(usize, usize)> = None;
    while ti < t.len() {
        if pi < p.len() && (p[pi] == '?' || p[pi] == t[ti]) {
            pi += 1;
            ti += 1;
        } else if pi < p.len() && p[pi] == '*' {
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
    while pi < p.len() && p[pi] == '*' {
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
