//! Per-program specs: which subcommands, flags (with value types) and
//! operands keep a program read-only. Anything a spec does not know is
//! "unknown", never auto.

use crate::paths::{Cwd, alias, glob_match};
use crate::{HostFs, Walk};

/// How strict one finding is. Ordered: later is stricter.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub(crate) enum Level {
    Auto,
    Approval,
    /// No rule covers it: follows `unknown_default`.
    Unknown,
    Forbidden,
}

/// One finding with its reason.
#[derive(Debug, Clone)]
pub(crate) struct Verdict {
    pub level: Level,
    pub reason: String,
}

pub(crate) fn v(level: Level, reason: impl Into<String>) -> Verdict {
    Verdict {
        level,
        reason: reason.into(),
    }
}

/// What a stage is checked against besides its spec.
#[derive(Clone, Copy)]
pub(crate) struct Ctx<'a> {
    /// Where relative paths resolve.
    pub cwd: &'a Cwd,
    /// Sensitive-path glob patterns (built-in plus policy file).
    pub sensitive: &'a [String],
    /// The host's file system (agent side, just before exec), if any.
    pub fs: Option<&'a dyn HostFs>,
    /// The stage runs through `sudo`: it can read what the agent cannot.
    pub privileged: bool,
}

/// Most entries a recursive read's tree is walked for on the host.
const WALK_LIMIT: usize = 20_000;

impl Ctx<'_> {
    /// `Some(reason)` when reading `path` (a directory tree when
    /// `recursive`) could expose a secret.
    pub(crate) fn sensitive(&self, path: &str, recursive: bool) -> Option<String> {
        if path.is_empty() || path == "-" {
            return None;
        }
        if path.split('/').any(|c| c == "..") {
            // Lexical `..` disagrees with the kernel across symlinks
            // (`/var/run/../etc` is `/etc`).
            return Some(format!(
                "path {path:?} contains `..` (symlinks make it unverifiable)"
            ));
        }
        let Some(fulls) = self.cwd.paths(path) else {
            return Some(format!(
                "relative path {path:?} after a `cd` whose directory is unknown"
            ));
        };
        for full in &fulls {
            if let Some(r) = self.sensitive_abs(path, full, recursive) {
                return Some(r);
            }
            let Some(fs) = self.fs else { continue };
            // A privileged read of a path another account can redirect: checking it is not
            // enough (the link can be swapped in after the check), so it needs a human.
            if self.privileged
                && let Some(why) = fs.writable_dir(full)
            {
                return Some(format!(
                    "a privileged read of {full}, which another account can redirect ({why})"
                ));
            }
            let real = fs.realpath(full);
            if let Some(real) = &real
                && real != full
                && let Some(r) = self.sensitive_abs(path, real, recursive)
            {
                return Some(format!("{r}, through a symbolic link ({full} is {real})"));
            }
            if recursive {
                let root = real.as_deref().unwrap_or(full);
                match fs.walk(root, WALK_LIMIT) {
                    Walk::Entries { entries, complete } => {
                        for e in &entries {
                            if let Some(r) = self.sensitive_abs(path, e, false) {
                                return Some(format!("{r}, inside the tree {root}"));
                            }
                        }
                        if !complete && self.privileged {
                            return Some(format!(
                                "reads the tree {root}, which has parts this agent cannot verify"
                            ));
                        }
                    }
                    Walk::TooLarge => {
                        return Some(format!(
                            "reads the tree {root}, larger than {WALK_LIMIT} entries (cannot verify)"
                        ));
                    }
                }
            }
        }
        None
    }

    /// The check of one absolute, normalised path.
    fn sensitive_abs(&self, path: &str, full: &str, recursive: bool) -> Option<String> {
        if let Some(a) = alias(full) {
            return Some(format!("reads {path}: {a}"));
        }
        if device(full) {
            return Some(format!(
                "reads the device {full} (bypasses file permissions)"
            ));
        }
        if recursive {
            for t in SENSITIVE_TREES {
                let inside = full == *t || full.starts_with(&format!("{t}/"));
                let above = full == "/" || t.starts_with(&format!("{full}/"));
                if inside || above {
                    return Some(format!(
                        "recursive read of {full} reaches {t}, which holds keys or credentials"
                    ));
                }
            }
        }
        let lower = full.to_ascii_lowercase();
        let base = full.rsplit('/').next().unwrap_or(full);
        // Public keys are not secrets; neither are ssh's known hosts and
        // authorized keys (unless a stricter pattern names them).
        let public = full.ends_with(".pub");
        let ssh_public = base.starts_with("known_hosts") || base.starts_with("authorized_keys");
        for p in self.sensitive {
            let text = if p.starts_with("*.") { &lower } else { full };
            let public = public || (ssh_public && p == "*/.ssh/*");
            let hit = (glob_match(p, text) && !public)
                || (recursive && {
                    // A recursive read of an ancestor directory reaches the secret.
                    let lit: String = p.chars().take_while(|c| *c != '*' && *c != '?').collect();
                    lit.starts_with('/') && (full == "/" || lit.starts_with(&format!("{full}/")))
                });
            if hit {
                let shown = if path == full {
                    path.to_string()
                } else {
                    format!("{path} = {full}")
                };
                return Some(format!("reads a sensitive path ({shown} matches {p})"));
            }
        }
        None
    }
}

/// Built-in sensitive-path patterns: read-only access to these needs
/// approval. `*` matches across `/`; patterns starting `*.` ignore case.
pub(crate) const SENSITIVE: &[&str] = &[
    // Accounts and privileges.
    "/etc/shadow*",
    "/etc/gshadow*",
    "/etc/sudoers*",
    "/etc/security/opasswd",
    "/var/backups/shadow*",
    "/var/backups/gshadow*",
    // Keys and certificates' private halves.
    "*/.ssh/*",
    "/etc/ssh/ssh_host_*key",
    "/etc/ssl/private*",
    "/etc/*/private/*",
    "/etc/letsencrypt/archive/*",
    "/etc/letsencrypt/keys/*",
    "/etc/letsencrypt/accounts/*",
    "*privkey*",
    "*.key",
    "*.keytab",
    "*.p12",
    "*.pfx",
    "*.jks",
    "*.keystore",
    "*.keyring",
    "*.secret",
    "*.secrets",
    "*-secrets",
    "*/secrets/*",
    "*/credentials/*",
    "*/credentials",
    "*credentials*.json",
    "*.htpasswd",
    // Service secrets.
    "/run/secrets/*",
    "/var/run/secrets/*",
    "/run/credentials/*",
    "/var/lib/systemd/credential.secret",
    "/etc/kubernetes/*",
    "/var/lib/kubelet/*",
    "/etc/rancher/*",
    "/var/lib/rancher/*",
    "/etc/mysql/debian.cnf",
    "/etc/wireguard/*",
    "/etc/NetworkManager/system-connections/*",
    "/etc/wpa_supplicant/*",
    "/etc/ipsec.secrets",
    "/etc/ipsec.d/private/*",
    "/etc/ppp/*secrets",
    "/etc/sssd/sssd.conf",
    "/etc/ldap.secret",
    "/etc/*ldap*.secret",
    "/etc/postfix/sasl_passwd*",
    "/etc/gitlab/gitlab-secrets.json",
    "/etc/gitlab-runner/config.toml",
    "/var/lib/jenkins/secrets/*",
    "/var/lib/docker/containers/*/config.v2.json",
    "/etc/docker/key.json",
    "*/wp-config.php",
    "*/.env",
    "*/.env.*",
    // Per-user credentials and histories.
    "*/.git-credentials",
    "*/.vault-token",
    "*/.config/gh/hosts.yml",
    "*/.config/gcloud/*",
    "*/.azure/*",
    "*/.terraform.d/credentials*",
    "*/.npmrc",
    "*/.pypirc",
    "*/.s3cfg",
    "*/.aws/*",
    "*/.docker/config.json",
    "*/.kube/config",
    "*/.netrc",
    "*/.pgpass",
    "*/.my.cnf",
    "*/.mylogin.cnf",
    "*/.gnupg/*",
    "*_history",
    "/root/*",
    "*/krb5cc_*",
    "/boot/grub*/user.cfg",
    "/etc/openvpn/*",
    "/var/lib/sss/*",
    "/var/lib/samba/private/*",
    "/etc/security/pwquality.conf.d/*",
    // Other processes' memory and environments, the kernel's memory.
    "/proc/*/environ",
    "/proc/*/mem",
    "/proc/kcore",
    "/proc/kmsg",
];

/// Trees that hold keys and credentials: a recursive read into, above or
/// below one of these needs approval.
pub(crate) const SENSITIVE_TREES: &[&str] = &[
    "/home",
    "/root",
    "/srv",
    "/opt",
    "/var/lib",
    "/var/www",
    "/var/backups",
    "/var/spool",
    "/var/mail",
    "/run/secrets",
    "/run/credentials",
    "/var/run/secrets",
    "/etc/letsencrypt",
    "/etc/pki",
    "/etc/ssl/private",
    "/etc/mysql",
    "/etc/postgresql",
    "/etc/NetworkManager",
    "/etc/wireguard",
    "/etc/ipsec.d",
    "/etc/openvpn",
    "/etc/kubernetes",
    "/etc/rancher",
    "/etc/docker",
    "/etc/gitlab",
    "/etc/gitlab-runner",
    "/etc/ssh",
    "/etc/sudoers.d",
    "/etc/ppp",
    "/etc/wpa_supplicant",
    "/proc",
    "/dev",
    "/sys/firmware",
];

/// Reading a device node bypasses every file permission (block devices,
/// consoles, input, ports); these few are harmless.
fn device(full: &str) -> bool {
    let Some(d) = full.strip_prefix("/dev/") else {
        return false;
    };
    !(matches!(d, "null" | "zero" | "full" | "random" | "urandom")
        || d.starts_with("shm/")
        || d.starts_with("mqueue/")
        || d.starts_with("hugepages/"))
}

/// Value type of an option.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Ty {
    Any,
    Num,
    /// A file the program reads: checked against sensitive paths.
    Path,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Arg {
    None,
    Required(Ty),
    Optional(Ty),
}

#[derive(Debug, Clone)]
struct Opt {
    names: Vec<String>,
    arg: Arg,
    level: Level,
}

/// Operands (non-option arguments).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Pos {
    /// Files the program reads.
    Paths,
    /// Data (patterns, names, numbers): not checked.
    Any,
    /// No operands allowed; any operand needs approval.
    None,
    /// First operand is a pattern (unless `-e`/`-f`), the rest are paths.
    PatternThenPaths,
}

/// Most probes (`ping -c`, `mtr -c`) a network check may send without approval.
const PROBE_MAX_COUNT: u64 = 100;

/// `axfr`, `ixfr` or `ixfr=N` (any case): a query type that copies a whole zone.
fn is_zone_transfer(word: &str) -> bool {
    let w = word.to_ascii_lowercase();
    let w = w
        .trim_start_matches("-type=")
        .trim_start_matches("-querytype=")
        .trim_start_matches("-query=")
        .trim_start_matches("-q=");
    w == "axfr" || w == "ixfr" || w.starts_with("ixfr=")
}

/// `nslookup`: its options are `-name=value` words; only the port and the query type
/// matter (everything else it does is one DNS query).
fn nslookup(args: &[String], out: &mut Vec<Verdict>) {
    for a in args {
        let lower = a.to_ascii_lowercase();
        if let Some(port) = lower
            .strip_prefix("-port=")
            .or_else(|| lower.strip_prefix("-po="))
            && port != "53"
        {
            out.push(v(
                Level::Approval,
                "nslookup to a port other than 53 reaches other services",
            ));
        }
        if lower.starts_with('-') && is_zone_transfer(&lower) {
            out.push(v(
                Level::Approval,
                "a zone transfer (AXFR/IXFR) copies a whole zone",
            ));
        }
    }
}

/// Which hand-written check completes the generic one.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Custom {
    None,
    Date,
    Ps,
    Top,
    Uniq,
    Find,
    Awk,
    Sed,
    Nginx,
    Getent,
    Curl,
    Ip,
    Tar,
    Docker,
    Echo,
    Sysctl,
    Systemctl,
    Lsof,
    Openssl,
    /// `test` / `[`: only looks at file metadata and strings.
    Test,
    /// `ping`: a bounded count or deadline, no flood-rate interval, no broadcast.
    Ping,
    /// `mtr`: report mode (not the interactive screen), a bounded count and interval.
    Mtr,
    /// `dig` / `nslookup`: DNS on port 53 only, no zone transfer.
    Dns,
}

/// A program spec.
#[derive(Debug, Clone)]
pub(crate) struct Spec {
    pub name: String,
    /// The built-in option DSL, parsed on first use ([`Spec::opts`]): a
    /// process classifies one or two programs, and parsing the whole table
    /// up front was a fifth of `aiops run`'s policy start-up.
    dsl: &'static str,
    parsed: std::sync::OnceLock<Vec<Opt>>,
    /// Options a policy file adds (`allow:`), after the built-in ones.
    added: Vec<Opt>,
    pos: Pos,
    /// Subcommand (first operand) → level; others are unknown.
    subs: Vec<(String, Level)>,
    /// Level when there is no subcommand at all.
    no_sub: Level,
    custom: Custom,
    /// `-20` means `-n 20` (head, tail, grep context).
    numeric_short: bool,
    /// At least one of these (canonical) options must be given: the
    /// read-only modes of a program that has others (`dpkg -l`).
    require: Vec<String>,
    /// Read-only examples (must be auto) and counter-examples (must not be).
    pub examples_ok: Vec<&'static str>,
    pub examples_not: Vec<&'static str>,
}

/// Parsed command line.
#[derive(Debug, Default)]
pub(crate) struct Parsed {
    /// (canonical option name, value)
    pub opts: Vec<(String, Option<String>)>,
    pub operands: Vec<String>,
}

impl Parsed {
    fn has(&self, name: &str) -> bool {
        self.opts.iter().any(|(n, _)| n == name)
    }
    fn value(&self, name: &str) -> Option<&str> {
        self.opts
            .iter()
            .find(|(n, _)| n == name)
            .and_then(|(_, v)| v.as_deref())
    }
}

/// Parses the option DSL: entries separated by spaces; each entry is
/// `|`-separated aliases (`-x`, `--long`) with an optional `=T` (required
/// value) or `=?T` (optional value), T one of `any num path`; a leading `!`
/// means "needs approval", `!!` "forbidden".
pub(crate) fn parse_opts(dsl: &str) -> Result<Vec<OptPublic>, String> {
    let mut out = Vec::new();
    for entry in dsl.split_whitespace() {
        let (level, rest) = if let Some(r) = entry.strip_prefix("!!") {
            (Level::Forbidden, r)
        } else if let Some(r) = entry.strip_prefix('!') {
            (Level::Approval, r)
        } else {
            (Level::Auto, entry)
        };
        let (names, arg) = match rest.split_once('=') {
            None => (rest, Arg::None),
            Some((n, t)) => {
                let (opt, t) = match t.strip_prefix('?') {
                    Some(t) => (true, t),
                    None => (false, t),
                };
                let ty = match t {
                    "any" | "word" => Ty::Any,
                    "num" => Ty::Num,
                    "path" => Ty::Path,
                    _ => return Err(format!("unknown value type {t:?} in {entry:?}")),
                };
                (
                    n,
                    if opt {
                        Arg::Optional(ty)
                    } else {
                        Arg::Required(ty)
                    },
                )
            }
        };
        let names: Vec<String> = names.split('|').map(String::from).collect();
        for n in &names {
            let ok = (n.starts_with("--") && n.len() > 2)
                || (n.starts_with('-') && n.chars().count() == 2);
            if !ok {
                return Err(format!("bad option name {n:?} in {entry:?}"));
            }
        }
        out.push(OptPublic(Opt { names, arg, level }));
    }
    Ok(out)
}

/// Opaque parsed option (for policy-file extensions).
#[derive(Debug, Clone)]
pub(crate) struct OptPublic(Opt);

impl Spec {
    fn new(name: &str, dsl: &'static str, pos: Pos) -> Spec {
        Spec {
            name: name.into(),
            dsl,
            parsed: std::sync::OnceLock::new(),
            added: Vec::new(),
            pos,
            subs: Vec::new(),
            no_sub: Level::Auto,
            custom: Custom::None,
            numeric_short: false,
            require: Vec::new(),
            examples_ok: Vec::new(),
            examples_not: Vec::new(),
        }
    }

    /// A new spec for a program added by a policy file.
    pub(crate) fn from_file(name: &str, opts: Vec<OptPublic>, pos: Pos) -> Spec {
        let mut s = Spec::new(name, "", pos);
        s.added = opts.into_iter().map(|o| o.0).collect();
        s
    }

    /// Adds options (policy file `allow:` entries).
    pub(crate) fn add_opts(&mut self, opts: Vec<OptPublic>) {
        self.added.extend(opts.into_iter().map(|o| o.0));
    }

    /// Every option: the built-in DSL's (parsed on first use; the table is
    /// compiled in and every entry is parsed by this crate's tests, see
    /// `every_builtin_option_table_parses`), then the policy file's.
    fn opts(&self) -> impl Iterator<Item = &Opt> {
        let name = &self.name;
        let builtin = self.parsed.get_or_init(|| {
            parse_opts(self.dsl)
                .unwrap_or_else(|e| panic!("built-in spec {name}: {e}"))
                .into_iter()
                .map(|o| o.0)
                .collect()
        });
        builtin.iter().chain(&self.added)
    }

    /// Adds subcommands at `level`.
    pub(crate) fn add_subs(&mut self, subs: &[String], level: Level) {
        for s in subs {
            self.subs.retain(|(n, _)| n != s);
            self.subs.push((s.clone(), level));
        }
    }

    fn subs(mut self, level: Level, names: &str) -> Spec {
        for n in names.split_whitespace() {
            self.subs.push((n.into(), level));
        }
        self
    }
    fn no_sub(mut self, l: Level) -> Spec {
        self.no_sub = l;
        self
    }
    fn custom(mut self, c: Custom) -> Spec {
        self.custom = c;
        self
    }
    fn require(mut self, opts: &str) -> Spec {
        self.require = opts.split_whitespace().map(String::from).collect();
        self
    }
    fn numeric(mut self) -> Spec {
        self.numeric_short = true;
        self
    }
    fn ex(mut self, ok: &[&'static str], not: &[&'static str]) -> Spec {
        self.examples_ok = ok.to_vec();
        self.examples_not = not.to_vec();
        self
    }

    /// Parses the built-in option DSL as [`Spec::opts`] does on first use,
    /// returning how many entries it has (for the tests).
    #[cfg(test)]
    pub(crate) fn parse_builtin_opts(&self) -> Result<usize, String> {
        parse_opts(self.dsl).map(|o| o.len())
    }

    /// Resolves a long option name: exact, else a unique prefix (GNU
    /// getopt_long). A prefix matching several known options, or none, is
    /// unknown: the real program may know options we do not.
    fn long(&self, name: &str) -> Result<&Opt, String> {
        let full = format!("--{name}");
        if let Some(o) = self.opts().find(|o| o.names.contains(&full)) {
            return Ok(o);
        }
        let mut hits: Vec<&Opt> = self
            .opts()
            .filter(|o| o.names.iter().any(|n| n.starts_with(&full)))
            .collect();
        hits.dedup_by(|a, b| std::ptr::eq(*a, *b));
        match hits.as_slice() {
            [one] => Ok(one),
            [] => Err(format!("unknown option --{name}")),
            _ => Err(format!("ambiguous option --{name}")),
        }
    }

    fn short(&self, c: char) -> Option<&Opt> {
        let n = format!("-{c}");
        self.opts().find(|o| o.names.contains(&n))
    }

    /// GNU-style parse with permutation; every option's level and value type
    /// is checked.
    pub(crate) fn parse(&self, args: &[String], ctx: &Ctx, out: &mut Vec<Verdict>) -> Parsed {
        let mut p = Parsed::default();
        let mut i = 0;
        let push_opt = |o: &Opt, val: Option<String>, out: &mut Vec<Verdict>, p: &mut Parsed| {
            let canon = o.names[0].clone();
            match o.level {
                Level::Auto => {}
                l => out.push(v(l, format!("{} {} needs a human", self.name, canon))),
            }
            if let (Some(val), Arg::Required(ty) | Arg::Optional(ty)) = (&val, o.arg) {
                check_value(&self.name, &canon, val, ty, ctx, out);
            }
            p.opts.push((canon, val));
        };
        while i < args.len() {
            let a = &args[i];
            i += 1;
            if a == "--" {
                p.operands.extend(args[i..].iter().cloned());
                break;
            }
            if let Some(long) = a.strip_prefix("--") {
                let (name, val) = match long.split_once('=') {
                    Some((n, v)) => (n, Some(v.to_string())),
                    None => (long, None),
                };
                let o = match self.long(name) {
                    Ok(o) => o,
                    Err(e) => {
                        out.push(v(Level::Unknown, format!("unknown: {} {e}", self.name)));
                        continue;
                    }
                };
                let val = match (o.arg, val) {
                    (Arg::None, Some(_)) => {
                        out.push(v(
                            Level::Unknown,
                            format!("unknown: {} {a}: option takes no value", self.name),
                        ));
                        continue;
                    }
                    (Arg::Required(_), None) => {
                        let n = args.get(i).cloned();
                        i += 1;
                        if n.is_none() {
                            out.push(v(
                                Level::Unknown,
                                format!("unknown: {} {a} needs a value", self.name),
                            ));
                        }
                        n
                    }
                    (_, val) => val,
                };
                push_opt(o, val, out, &mut p);
                continue;
            }
            if a.len() > 1 && a.starts_with('-') {
                let body = &a[1..];
                if self.numeric_short && body.chars().all(|c| c.is_ascii_digit()) {
                    p.opts.push(("-NUM".into(), Some(body.into())));
                    continue;
                }
                let chars: Vec<char> = body.chars().collect();
                let mut k = 0;
                while k < chars.len() {
                    let c = chars[k];
                    k += 1;
                    let Some(o) = self.short(c) else {
                        out.push(v(
                            Level::Unknown,
                            format!("unknown: {} option -{c}", self.name),
                        ));
                        break;
                    };
                    match o.arg {
                        Arg::None => push_opt(o, None, out, &mut p),
                        Arg::Optional(_) => {
                            let rest: String = chars[k..].iter().collect();
                            let mut val = (!rest.is_empty()).then_some(rest);
                            // journalctl takes `-b -1` (a boot offset as the next word).
                            if val.is_none()
                                && self.name == "journalctl"
                                && c == 'b'
                                && let Some(n) = args.get(i)
                                && n.trim_start_matches(['-', '+'])
                                    .chars()
                                    .all(|d| d.is_ascii_digit())
                                && !n.trim_start_matches(['-', '+']).is_empty()
                            {
                                val = Some(n.clone());
                                i += 1;
                            }
                            push_opt(o, val, out, &mut p);
                            break;
                        }
                        Arg::Required(_) => {
                            let rest: String = chars[k..].iter().collect();
                            let val = if rest.is_empty() {
                                let n = args.get(i).cloned();
                                i += 1;
                                if n.is_none() {
                                    out.push(v(
                                        Level::Unknown,
                                        format!("unknown: {} -{c} needs a value", self.name),
                                    ));
                                }
                                n
                            } else {
                                Some(rest)
                            };
                            push_opt(o, val, out, &mut p);
                            break;
                        }
                    }
                }
                continue;
            }
            p.operands.push(a.clone());
        }
        p
    }
}

fn check_value(prog: &str, opt: &str, val: &str, ty: Ty, ctx: &Ctx, out: &mut Vec<Verdict>) {
    match ty {
        Ty::Any => {}
        Ty::Num => {
            let ok = val
                .trim_start_matches(['+', '-'])
                .chars()
                .next()
                .is_some_and(|c| c.is_ascii_digit())
                && val
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || "+-.:".contains(c));
            if !ok {
                out.push(v(
                    Level::Unknown,
                    format!("unknown: {prog} {opt} expects a number, got {val:?}"),
                ));
            }
        }
        Ty::Path => {
            if let Some(r) = ctx.sensitive(val, false) {
                out.push(v(Level::Approval, format!("{prog} {r}")));
            }
        }
    }
}

/// Checks one stage's argv (argv[0] already resolved to `spec`).
pub(crate) fn check(spec: &Spec, argv: &[String], ctx: &Ctx, out: &mut Vec<Verdict>) {
    let args = &argv[1..];
    match spec.custom {
        Custom::Echo => return,
        Custom::Dns if spec.name == "nslookup" => return nslookup(args, out),
        Custom::Ps => return ps(args, out),
        Custom::Find => return find(args, ctx, out),
        Custom::Sed => return sed(spec, args, ctx, out),
        Custom::Awk => return awk(spec, args, ctx, out),
        Custom::Nginx => return nginx(args, out),
        Custom::Ip => return ip(args, out),
        Custom::Curl => return curl(spec, args, ctx, out),
        Custom::Tar => return tar(spec, args, ctx, out),
        Custom::Docker => return docker(args, out),
        Custom::Lsof => return lsof(args, out),
        Custom::Openssl => return openssl(args, ctx, out),
        Custom::Test => {
            if spec.name == "[" && args.last().map(String::as_str) != Some("]") {
                out.push(v(Level::Unknown, "unknown: [ without a closing ]"));
            }
            return;
        }
        _ => {}
    }
    let p = spec.parse(args, ctx, out);
    if !spec.require.is_empty() && !spec.require.iter().any(|r| p.has(r)) {
        out.push(v(
            Level::Approval,
            format!(
                "{} without one of its read-only modes ({})",
                spec.name,
                spec.require.join(" ")
            ),
        ));
    }
    if let Some(why) = loopback_host_opts(&spec.name, &p) {
        out.push(v(Level::Approval, why));
    }
    let mut operands: &[String] = &p.operands;
    if !spec.subs.is_empty() {
        match operands.first() {
            None => {
                if spec.no_sub != Level::Auto {
                    out.push(v(
                        spec.no_sub,
                        format!("unknown: {} without a subcommand", spec.name),
                    ));
                }
            }
            Some(s) => {
                match spec.subs.iter().find(|(n, _)| n == s) {
                    Some((_, Level::Auto)) => {}
                    Some((_, l)) => out.push(v(*l, format!("{} {s} changes state", spec.name))),
                    None => out.push(v(
                        Level::Unknown,
                        format!("unknown: {} subcommand {s:?}", spec.name),
                    )),
                }
                operands = &operands[1..];
            }
        }
    }
    match spec.custom {
        Custom::Date => {
            for o in operands {
                if !o.starts_with('+') {
                    out.push(v(Level::Approval, "date with an operand sets the clock"));
                }
            }
            return;
        }
        Custom::Ping => {
            let count = p.value("-c").and_then(|c| c.parse::<u64>().ok());
            let deadline = p.value("-w").and_then(|c| c.parse::<u64>().ok());
            if count.is_none() && deadline.is_none() {
                out.push(v(
                    Level::Approval,
                    "ping without -c or -w runs until it is stopped",
                ));
            }
            if count.is_some_and(|c| c > PROBE_MAX_COUNT) || deadline.is_some_and(|d| d > 60) {
                out.push(v(
                    Level::Approval,
                    format!("ping: more than {PROBE_MAX_COUNT} probes or 60 s"),
                ));
            }
            if let Some(i) = p.value("-i")
                && !i.parse::<f64>().is_ok_and(|i| i >= 0.2)
            {
                out.push(v(Level::Approval, "ping -i below 0.2 s floods"));
            }
            if p.has("-b") {
                out.push(v(Level::Approval, "ping -b pings a whole broadcast domain"));
            }
        }
        Custom::Mtr => {
            let report = ["-r", "-w", "-j", "-C", "-x"].iter().any(|o| p.has(o));
            if !report {
                out.push(v(
                    Level::Approval,
                    "mtr without --report is an interactive screen",
                ));
            }
            if p.value("-c")
                .is_some_and(|c| !c.parse::<u64>().is_ok_and(|c| c <= PROBE_MAX_COUNT))
            {
                out.push(v(
                    Level::Approval,
                    format!("mtr: more than {PROBE_MAX_COUNT} cycles"),
                ));
            }
            if let Some(i) = p.value("-i")
                && !i.parse::<f64>().is_ok_and(|i| i >= 1.0)
            {
                out.push(v(Level::Approval, "mtr -i below 1 s floods"));
            }
        }
        Custom::Dns => {
            if p.value("-p").is_some_and(|port| port != "53") {
                out.push(v(
                    Level::Approval,
                    "dig to a port other than 53 reaches other services",
                ));
            }
            if p.value("-t").is_some_and(is_zone_transfer) {
                out.push(v(
                    Level::Approval,
                    "a zone transfer (AXFR/IXFR) copies a whole zone",
                ));
            }
            for o in &p.operands {
                let lower = o.to_ascii_lowercase();
                if lower.starts_with("+port") || lower.starts_with("+po=") {
                    out.push(v(Level::Approval, "dig +port reaches other services"));
                }
                if is_zone_transfer(o) {
                    out.push(v(
                        Level::Approval,
                        "a zone transfer (AXFR/IXFR) copies a whole zone",
                    ));
                }
            }
        }
        Custom::Top => {
            if !p.has("-b") {
                out.push(v(Level::Approval, "top without -b is interactive"));
            }
        }
        Custom::Uniq => {
            if operands.len() > 1 {
                out.push(v(
                    Level::Approval,
                    "uniq with two operands writes the second",
                ));
            }
            for o in operands.iter().take(1) {
                if let Some(r) = ctx.sensitive(o, false) {
                    out.push(v(Level::Approval, format!("uniq {r}")));
                }
            }
            return;
        }
        Custom::Getent => {
            match operands.first().map(String::as_str) {
                Some("shadow" | "gshadow") => {
                    out.push(v(Level::Approval, "getent shadow reads password hashes"))
                }
                Some(
                    "passwd" | "group" | "hosts" | "services" | "protocols" | "networks" | "ahosts"
                    | "ahostsv4" | "ahostsv6" | "netgroup" | "rpc" | "ethers" | "initgroups"
                    | "aliases",
                ) => {}
                Some(db) => out.push(v(
                    Level::Unknown,
                    format!("unknown: getent database {db:?}"),
                )),
                None => out.push(v(Level::Unknown, "unknown: getent without a database")),
            }
            return;
        }
        Custom::Systemctl => {
            if p.operands.first().map(String::as_str) == Some("show") {
                let props: Vec<&str> = p
                    .opts
                    .iter()
                    .filter(|(n, _)| n == "-p" || n == "-P")
                    .filter_map(|(_, v)| v.as_deref())
                    .flat_map(|v| v.split(','))
                    .collect();
                if props.is_empty() {
                    out.push(v(
                        Level::Approval,
                        "systemctl show without -p prints every property, Environment= included",
                    ));
                }
                for pr in props {
                    if pr.contains("Environment") && pr != "EnvironmentFiles" {
                        out.push(v(
                            Level::Approval,
                            format!(
                                "systemctl show -p {pr} prints the unit's environment (secrets)"
                            ),
                        ));
                    }
                }
            }
        }
        Custom::Sysctl => {
            if operands.iter().any(|o| o.contains('=')) {
                out.push(v(
                    Level::Approval,
                    "sysctl NAME=VALUE changes a kernel tunable",
                ));
            }
            return;
        }
        _ => {}
    }
    let recursive = p.has("-r")
        || p.has("-R")
        || p.opts
            .iter()
            .any(|(n, v)| n == "-d" && v.as_deref() == Some("recurse"));
    match spec.pos {
        Pos::Any => {}
        Pos::None => {
            if !operands.is_empty() {
                out.push(v(
                    Level::Approval,
                    format!("{} with operands may change state", spec.name),
                ));
            }
        }
        Pos::Paths => {
            for o in operands {
                if let Some(r) = ctx.sensitive(o, recursive) {
                    out.push(v(Level::Approval, format!("{} {r}", spec.name)));
                }
            }
        }
        Pos::PatternThenPaths => {
            let skip = usize::from(!(p.has("-e") || p.has("-f")));
            if operands.len() <= skip && recursive {
                // grep -r PATTERN with no path searches the working directory,
                // which may be `/` when no `cd` set it.
                if let Some(r) = ctx.sensitive(".", true) {
                    out.push(v(
                        Level::Approval,
                        format!(
                            "{} -r without a path searches the working directory: {r}",
                            spec.name
                        ),
                    ));
                }
            }
            for o in operands.iter().skip(skip) {
                if let Some(r) = ctx.sensitive(o, recursive) {
                    out.push(v(Level::Approval, format!("{} {r}", spec.name)));
                }
            }
        }
    }
}

/// procps `ps`: UNIX (`-ef`), BSD (`aux`) and GNU (`--sort`) options
/// parsed with their values, so a BSD `e` (every process's environment)
/// is found wherever it stands.
pub(crate) fn ps(args: &[String], out: &mut Vec<Verdict>) {
    const UNIX: &str = "AaCcdeFfGgHhjLlMmNnOopqsTtUuVvwxyZ";
    const UNIX_VAL: &str = "CGgOopqstuU";
    const BSD: &str = "acefghjkLlmnOopqrSsTtUuVvwXxZ";
    const BSD_VAL: &str = "kOopqtU";
    const LONG_VAL: &[&str] = &[
        "pid",
        "ppid",
        "quick-pid",
        "user",
        "User",
        "group",
        "Group",
        "sid",
        "tty",
        "cols",
        "columns",
        "width",
        "lines",
        "rows",
        "sort",
        "format",
    ];
    const LONG: &[&str] = &[
        "context",
        "headers",
        "no-headers",
        "forest",
        "cumulative",
        "deselect",
        "info",
        "help",
        "version",
    ];
    let mut i = 0;
    while i < args.len() {
        let a = &args[i];
        i += 1;
        if a.chars()
            .any(|c| !(c.is_ascii_alphanumeric() || "-,=:%+_ ".contains(c)))
        {
            out.push(v(Level::Unknown, format!("unknown: ps argument {a:?}")));
            continue;
        }
        if let Some(l) = a.strip_prefix("--") {
            let (n, has_val) = match l.split_once('=') {
                Some((n, _)) => (n, true),
                None => (l, false),
            };
            if LONG_VAL.contains(&n) {
                if !has_val {
                    i += 1;
                }
            } else if !LONG.contains(&n) {
                out.push(v(Level::Unknown, format!("unknown: ps option {a:?}")));
            }
            continue;
        }
        let (letters, allowed, with_val, bsd) = match a.strip_prefix('-') {
            Some(l) => (l, UNIX, UNIX_VAL, false),
            None if a.chars().all(|c| c.is_ascii_digit() || c == ',') => continue,
            None => (a.as_str(), BSD, BSD_VAL, true),
        };
        for (k, c) in letters.char_indices() {
            if !allowed.contains(c) {
                out.push(v(
                    Level::Unknown,
                    format!("unknown: ps option {c:?} in {a:?}"),
                ));
                break;
            }
            if bsd && c == 'e' {
                out.push(v(
                    Level::Approval,
                    "ps e shows every process's environment (secrets)",
                ));
            }
            if with_val.contains(c) {
                if k + 1 == letters.len() {
                    i += 1;
                }
                break;
            }
        }
    }
}

fn find(args: &[String], ctx: &Ctx, out: &mut Vec<Verdict>) {
    const ONE: &[&str] = &[
        "-name",
        "-iname",
        "-path",
        "-ipath",
        "-wholename",
        "-iwholename",
        "-regex",
        "-iregex",
        "-type",
        "-xtype",
        "-mtime",
        "-atime",
        "-ctime",
        "-mmin",
        "-amin",
        "-cmin",
        "-size",
        "-user",
        "-group",
        "-uid",
        "-gid",
        "-perm",
        "-links",
        "-inum",
        "-newer",
        "-anewer",
        "-cnewer",
        "-samefile",
        "-maxdepth",
        "-mindepth",
        "-fstype",
        "-used",
        "-context",
        "-regextype",
        "-printf",
        "-lname",
        "-ilname",
        "-newermt",
        "-newerct",
        "-newerat",
    ];
    const ZERO: &[&str] = &[
        "-print",
        "-print0",
        "-ls",
        "-prune",
        "-empty",
        "-readable",
        "-writable",
        "-executable",
        "-nouser",
        "-nogroup",
        "-xdev",
        "-mount",
        "-follow",
        "-depth",
        "-daystart",
        "-true",
        "-false",
        "-not",
        "-a",
        "-and",
        "-o",
        "-or",
        "-quit",
        "-noleaf",
        "-ignore_readdir_race",
        "-noignore_readdir_race",
        "!",
        "(",
        ")",
        ",",
        "-nowarn",
        "-warn",
    ];
    const WRITE: &[&str] = &[
        "-exec", "-execdir", "-ok", "-okdir", "-delete", "-fprint", "-fprint0", "-fprintf", "-fls",
    ];
    let mut i = 0;
    while i < args.len() && matches!(args[i].as_str(), "-H" | "-L" | "-P") {
        i += 1;
    }
    let mut paths = 0;
    while i < args.len()
        && !args[i].starts_with('-')
        && !matches!(args[i].as_str(), "!" | "(" | ")" | ",")
    {
        paths += 1;
        i += 1;
    }
    let _ = paths;
    while i < args.len() {
        let a = args[i].as_str();
        if WRITE.contains(&a) {
            out.push(v(
                Level::Approval,
                format!("find {a} runs commands or writes files"),
            ));
            return;
        } else if ONE.contains(&a) {
            i += 2;
            if i > args.len() {
                out.push(v(
                    Level::Unknown,
                    format!("unknown: find {a} without a value"),
                ));
            }
        } else if ZERO.contains(&a) {
            i += 1;
        } else {
            out.push(v(Level::Unknown, format!("unknown: find predicate {a:?}")));
            return;
        }
    }
    let _ = ctx;
}

fn sed(spec: &Spec, args: &[String], ctx: &Ctx, out: &mut Vec<Verdict>) {
    let p = spec.parse(args, ctx, out);
    let mut scripts: Vec<String> = p
        .opts
        .iter()
        .filter(|(n, _)| n == "-e")
        .filter_map(|(_, v)| v.clone())
        .collect();
    let mut files: &[String] = &p.operands;
    if scripts.is_empty() {
        match files.split_first() {
            Some((s, rest)) => {
                scripts.push(s.clone());
                files = rest;
            }
            None => out.push(v(Level::Unknown, "unknown: sed without a script")),
        }
    }
    if !p.has("-n") {
        out.push(v(
            Level::Approval,
            "sed without -n: only `sed -n 'N,Mp'` forms are read-only",
        ));
    }
    for s in &scripts {
        if !sed_print_only(s) {
            out.push(v(
                Level::Approval,
                format!("sed script {s:?} is not a print-only script"),
            ));
        }
    }
    for f in files {
        if let Some(r) = ctx.sensitive(f, false) {
            out.push(v(Level::Approval, format!("sed {r}")));
        }
    }
}

/// `ADDR[,ADDR]p` commands separated by `;` or newlines, where an address is
/// a number, `$`, or `/regex/` without escapes of the delimiter tricks.
fn sed_print_only(script: &str) -> bool {
    let cmds: Vec<&str> = script
        .split([';', '\n'])
        .map(str::trim)
        .filter(|c| !c.is_empty())
        .collect();
    if cmds.is_empty() {
        return false;
    }
    cmds.iter().all(|c| {
        let Some(body) = c.strip_suffix('p') else {
            return false;
        };
        let mut rest = body.trim();
        for k in 0..2 {
            if k == 1 {
                match rest.strip_prefix(',') {
                    Some(r) => rest = r.trim_start(),
                    None => break,
                }
            }
            if let Some(r) = rest.strip_prefix('$') {
                rest = r;
            } else if rest.starts_with(|c: char| c.is_ascii_digit()) {
                rest = rest.trim_start_matches(|c: char| c.is_ascii_digit());
            } else if let Some(r) = rest.strip_prefix('/') {
                let Some(end) = r.find('/') else { return false };
                let re = &r[..end];
                if re.contains(['\\', ';', '\n']) {
                    return false;
                }
                rest = &r[end + 1..];
            } else if k == 0 && rest.is_empty() {
                break;
            } else {
                return false;
            }
            rest = rest.trim_start();
        }
        rest.is_empty()
    })
}

fn awk(spec: &Spec, args: &[String], ctx: &Ctx, out: &mut Vec<Verdict>) {
    // awk stops option parsing at the program text.
    let mut i = 0;
    let mut opts: Vec<String> = Vec::new();
    while i < args.len() && args[i].starts_with('-') && args[i] != "-" {
        if args[i] == "--" {
            i += 1;
            break;
        }
        let a = &args[i];
        opts.push(a.clone());
        if matches!(a.as_str(), "-F" | "-v") {
            opts.push(args.get(i + 1).cloned().unwrap_or_default());
            i += 1;
        }
        i += 1;
    }
    let p = spec.parse(&opts, ctx, out);
    if p.has("-f") {
        out.push(v(Level::Approval, "awk -f program file is opaque"));
    }
    let Some(prog) = args.get(i) else {
        out.push(v(Level::Unknown, "unknown: awk without a program"));
        return;
    };
    if let Some(why) = awk_program_risk(prog) {
        out.push(v(Level::Approval, format!("awk program {why}")));
    }
    for f in &args[i + 1..] {
        // `NAME=value` operands are assignments, not files.
        if let Some((name, _)) = f.split_once('=')
            && name.starts_with(|c: char| c.is_ascii_alphabetic() || c == '_')
            && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_')
        {
            continue;
        }
        if let Some(r) = ctx.sensitive(f, false) {
            out.push(v(Level::Approval, format!("awk {r}")));
        }
    }
}

/// `Some(why)` when an awk program can run commands, write or open files
/// other than its operands, or read the environment: `system`, `getline`,
/// pipes, output redirection in `print`/`printf`, `ARGV`/`ARGC` (which
/// name the files awk reads), `ENVIRON`, `PROCINFO`, gawk's `@` directives
/// and indirect calls. Strings and regular expressions are skipped, so
/// `$3 >= 1000` and `/a|b/` are fine.
pub(crate) fn awk_program_risk(prog: &str) -> Option<String> {
    const BAD_NAMES: &[&str] = &[
        "system", "getline", "ARGV", "ARGC", "ENVIRON", "PROCINFO", "close", "SYMTAB", "FUNCTAB",
    ];
    let c: Vec<char> = prog.chars().collect();
    let mut i = 0;
    let mut depth = 0usize;
    // Paren depth of the innermost `print`/`printf` statement in progress.
    let mut print_at: Option<usize> = None;
    // The last significant character: decides whether `/` starts a regex.
    let mut prev = '\n';
    while i < c.len() {
        let ch = c[i];
        match ch {
            '"' => {
                i += 1;
                while i < c.len() && c[i] != '"' {
                    if c[i] == '\\' {
                        i += 1;
                    }
                    i += 1;
                }
                prev = '"';
            }
            '/' if "\n(,{};!~&|=?:<>+-*%^[".contains(prev) => {
                i += 1;
                let mut class = false;
                while i < c.len() && (c[i] != '/' || class) {
                    match c[i] {
                        '\\' => i += 1,
                        '[' => class = true,
                        ']' => class = false,
                        _ => {}
                    }
                    i += 1;
                }
                prev = '/';
            }
            '#' => {
                while i < c.len() && c[i] != '\n' {
                    i += 1;
                }
                continue;
            }
            '@' => return Some("uses @ (gawk directives and indirect calls)".into()),
            '|' => {
                if c.get(i + 1) == Some(&'|') {
                    i += 2;
                    prev = '|';
                    continue;
                }
                return Some("uses a pipe (runs a command)".into());
            }
            '>' => {
                if print_at == Some(depth) {
                    return Some("redirects print output to a file".into());
                }
                prev = '>';
            }
            '(' | '[' => {
                depth += 1;
                prev = ch;
            }
            ')' | ']' => {
                depth = depth.saturating_sub(1);
                prev = ch;
            }
            ';' | '\n' | '{' | '}' => {
                print_at = None;
                prev = ch;
            }
            c0 if c0.is_ascii_alphabetic() || c0 == '_' => {
                let start = i;
                while i < c.len() && (c[i].is_ascii_alphanumeric() || c[i] == '_') {
                    i += 1;
                }
                let word: String = c[start..i].iter().collect();
                if BAD_NAMES.contains(&word.as_str()) {
                    return Some(format!(
                        "uses {word} (runs commands, opens files or reads the environment)"
                    ));
                }
                if word == "print" || word == "printf" {
                    print_at = Some(depth);
                }
                prev = 'a';
                continue;
            }
            c0 if c0.is_whitespace() => {}
            c0 => prev = c0,
        }
        i += 1;
    }
    None
}

fn nginx(args: &[String], out: &mut Vec<Verdict>) {
    let ok = matches!(
        args.iter()
            .map(String::as_str)
            .collect::<Vec<_>>()
            .as_slice(),
        ["-t"] | ["-T"] | ["-v"] | ["-V"] | ["-t", "-q"] | ["-tq"] | ["-q", "-t"] | ["-qt"]
    );
    if !ok {
        out.push(v(
            Level::Approval,
            "nginx other than -t/-T/-v/-V signals or starts nginx",
        ));
    }
}

fn ip(args: &[String], out: &mut Vec<Verdict>) {
    const GLOBAL: &[&str] = &[
        "-4",
        "-6",
        "-s",
        "-d",
        "-j",
        "-p",
        "-o",
        "-br",
        "-brief",
        "-c",
        "-color",
        "-stats",
        "-statistics",
        "-details",
        "-json",
        "-pretty",
        "-oneline",
        "-h",
        "-human",
        "-N",
        "-resolve",
        "-a",
        "-all",
    ];
    let mut i = 0;
    while i < args.len() && args[i].starts_with('-') {
        if !GLOBAL.contains(&args[i].as_str()) && !args[i].starts_with("-color=") {
            out.push(v(
                Level::Unknown,
                format!("unknown: ip option {:?}", args[i]),
            ));
            return;
        }
        i += 1;
    }
    let Some(obj) = args.get(i) else {
        out.push(v(Level::Unknown, "unknown: ip without an object"));
        return;
    };
    // ip matches objects by prefix in its own table order; accept only
    // prefixes that cannot mean another object.
    let obj_ok = |full: &str, min: usize| obj.len() >= min && full.starts_with(obj.as_str());
    let known = obj_ok("address", 1)
        || obj_ok("route", 1)
        || obj_ok("link", 1)
        || obj_ok("neighbour", 1)
        || obj == "neighbor"
        || obj_ok("rule", 2)
        || obj_ok("maddress", 1)
        || obj_ok("netconf", 5)
        || obj_ok("addrlabel", 5);
    if !known {
        out.push(v(Level::Unknown, format!("unknown: ip object {obj:?}")));
        return;
    }
    match args.get(i + 1).map(String::as_str) {
        None | Some("show" | "list" | "lst") => {}
        Some("get") if obj_ok("route", 1) => {}
        Some(c) => out.push(v(
            Level::Approval,
            format!("ip {obj} {c} may change network state"),
        )),
    }
}

fn curl(spec: &Spec, args: &[String], ctx: &Ctx, out: &mut Vec<Verdict>) {
    let p = spec.parse(args, ctx, out);
    if p.operands.is_empty() && !p.opts.iter().any(|(n, _)| n == "--url") {
        out.push(v(Level::Unknown, "unknown: curl without a URL"));
    }
    if let Some(m) = p.value("-X")
        && !matches!(m, "GET" | "HEAD")
    {
        out.push(v(Level::Approval, format!("curl -X {m} may change state")));
    }
    for (n, val) in &p.opts {
        let val = val.as_deref().unwrap_or("");
        if matches!(n.as_str(), "-H" | "-w") && val.starts_with('@') {
            out.push(v(Level::Approval, format!("curl {n} @file reads a file")));
        }
        if n == "-w" && val.contains("%output{") {
            out.push(v(Level::Approval, "curl -w %output{FILE} writes a file"));
        }
        if matches!(n.as_str(), "-o" | "-D") && !matches!(val, "/dev/null" | "-") {
            out.push(v(
                Level::Approval,
                format!("curl {n} {val} writes a file (only /dev/null is automatic)"),
            ));
        }
        if matches!(n.as_str(), "--resolve" | "--connect-to") {
            out.push(v(
                Level::Approval,
                format!("curl {n} {val} sends the request to another address than the URL names"),
            ));
        }
    }
    let urls = p.operands.iter().chain(
        p.opts
            .iter()
            .filter(|(n, _)| n == "--url")
            .filter_map(|(_, v)| v.as_ref()),
    );
    for u in urls {
        if !loopback_url(u) {
            out.push(v(
                Level::Approval,
                format!("curl to {u:?}: only loopback health URLs are automatic"),
            ));
        }
    }
}

/// `http(s)://localhost|127.0.0.1|[::1][:port][/path]` with a plain path.
pub(crate) fn loopback_url(u: &str) -> bool {
    // Without a scheme curl guesses http (no loopback name starts like
    // the `ftp.`/`dict.` hosts it guesses other protocols for).
    let rest = match u
        .strip_prefix("http://")
        .or_else(|| u.strip_prefix("https://"))
    {
        Some(r) => r,
        None if !u.contains("://") => u,
        None => return false,
    };
    let (auth, path) = match rest.find('/') {
        Some(i) => (&rest[..i], &rest[i..]),
        None => (rest, ""),
    };
    let host = if let Some(h) = auth.strip_prefix("[::1]") {
        if h.is_empty()
            || h.strip_prefix(':')
                .is_some_and(|p| !p.is_empty() && p.chars().all(|c| c.is_ascii_digit()))
        {
            return path_ok(path);
        }
        return false;
    } else {
        match auth.split_once(':') {
            Some((h, port)) if !port.is_empty() && port.chars().all(|c| c.is_ascii_digit()) => h,
            Some(_) => return false,
            None => auth,
        }
    };
    matches!(host, "localhost" | "127.0.0.1") && path_ok(path)
}

fn path_ok(path: &str) -> bool {
    // No curl URL globbing, no userinfo tricks.
    path.chars()
        .all(|c| c.is_ascii_alphanumeric() || "/-_.~?=&%:,+".contains(c))
}

fn tar(spec: &Spec, args: &[String], ctx: &Ctx, out: &mut Vec<Verdict>) {
    if args.first().is_some_and(|a| !a.starts_with('-')) {
        out.push(v(
            Level::Approval,
            "old-style tar options: only `tar -t...` is automatic",
        ));
        return;
    }
    let p = spec.parse(args, ctx, out);
    if !p.has("-t") {
        out.push(v(
            Level::Approval,
            "tar without -t (list) extracts or creates archives",
        ));
    }
    if let Some(f) = p.value("-f")
        && f.contains(':')
    {
        out.push(v(Level::Approval, "tar -f HOST:FILE runs a remote shell"));
    }
}

fn docker(args: &[String], out: &mut Vec<Verdict>) {
    let Some(sub) = args.first() else {
        out.push(v(Level::Unknown, "unknown: docker without a subcommand"));
        return;
    };
    if sub.starts_with('-') {
        out.push(v(
            Level::Approval,
            "docker global options (-H, --context, --config) change the daemon",
        ));
        return;
    }
    let second = args.get(1).map(String::as_str);
    let read = match sub.as_str() {
        "ps" | "images" | "logs" | "inspect" | "version" | "info" | "top" | "port" | "diff"
        | "history" => true,
        "stats" => args.iter().any(|a| a == "--no-stream"),
        "container" => matches!(
            second,
            Some("ls" | "ps" | "list" | "inspect" | "logs" | "top" | "port" | "diff")
        ),
        "image" => matches!(second, Some("ls" | "list" | "inspect" | "history")),
        "network" | "volume" => matches!(second, Some("ls" | "list" | "inspect")),
        "system" => matches!(second, Some("df" | "info")),
        _ => false,
    };
    if !read {
        out.push(v(
            Level::Approval,
            format!("docker {sub} may change containers or the host"),
        ));
        return;
    }
    // What follows the (two-word) subcommand.
    let (verb, rest) = match (sub.as_str(), second) {
        ("container" | "image" | "network" | "volume", Some(s)) => (s, &args[2..]),
        (s, _) => (s, &args[1..]),
    };
    if verb == "inspect" && !matches!(sub.as_str(), "network" | "volume") {
        // The default output and most templates include Config.Env.
        let mut formats = Vec::new();
        let mut k = 0;
        while k < rest.len() {
            let a = rest[k].as_str();
            if matches!(a, "-f" | "--format") {
                formats.push(rest.get(k + 1).cloned().unwrap_or_default());
                k += 1;
            } else if let Some(f) = a.strip_prefix("--format=").or_else(|| a.strip_prefix("-f")) {
                formats.push(f.to_string());
            }
            k += 1;
        }
        if formats.is_empty() || !formats.iter().all(|f| docker_format_safe(f)) {
            out.push(v(
                Level::Approval,
                "docker inspect shows the container's environment (Config.Env) unless a --format names only other fields",
            ));
        }
    }
    if verb == "top" && rest.len() > 1 {
        // `docker top CONTAINER [ps options]`
        let before = out.len();
        ps(&rest[1..], out);
        if out.len() > before {
            out.push(v(Level::Approval, "docker top passes these options to ps"));
        }
    }
}

/// A Go template that prints only plain fields (`{{.State.Status}}`,
/// `{{json .NetworkSettings}}`), none of which holds the environment.
pub(crate) fn docker_format_safe(f: &str) -> bool {
    let mut rest = f;
    while let Some(start) = rest.find("{{") {
        let Some(end) = rest[start..].find("}}") else {
            return false;
        };
        let action =
            rest[start + 2..start + end].trim_matches(|c: char| c == '-' || c.is_whitespace());
        let words: Vec<&str> = action.split_whitespace().collect();
        let path = match words.as_slice() {
            [p] => *p,
            ["json", p] => *p,
            _ => return false,
        };
        let Some(path) = path.strip_prefix('.') else {
            return false;
        };
        let comps: Vec<&str> = path.split('.').collect();
        let plain = comps
            .iter()
            .all(|c| !c.is_empty() && c.chars().all(|x| x.is_ascii_alphanumeric() || x == '_'));
        let env = comps.iter().any(|c| {
            matches!(
                *c,
                "Env" | "Spec" | "TaskTemplate" | "ContainerSpec" | "Secrets"
            )
        });
        let whole_config = comps.len() == 1 && matches!(comps[0], "Config" | "ContainerConfig");
        let ok = !path.is_empty() && plain && !env && !whole_config;
        if !ok {
            return false;
        }
        rest = &rest[start + end + 2..];
    }
    true
}

/// Network clients limited to this host: `-h HOST` (redis-cli,
/// pg_isready) must name loopback.
fn loopback_host_opts(prog: &str, p: &Parsed) -> Option<String> {
    if !matches!(prog, "redis-cli" | "pg_isready" | "nc" | "chronyc") {
        return None;
    }
    for (n, val) in &p.opts {
        if n == "-h" && !is_loopback_host(val.as_deref().unwrap_or("")) {
            return Some(format!("{prog} -h {val:?}: only loopback is automatic"));
        }
    }
    if prog == "nc" {
        if !p.has("-z") {
            return Some("nc without -z sends and receives data".into());
        }
        if !p.operands.first().is_some_and(|h| is_loopback_host(h)) {
            return Some("nc -z to a host other than loopback".into());
        }
    }
    None
}

/// `localhost`, 127.0.0.0/8 or ::1.
pub(crate) fn is_loopback_host(h: &str) -> bool {
    let h = h.trim_start_matches('[').trim_end_matches(']');
    if h == "localhost" || h == "::1" {
        return true;
    }
    let parts: Vec<&str> = h.split('.').collect();
    parts.len() == 4
        && parts[0] == "127"
        && parts.iter().all(|p| {
            !p.is_empty()
                && p.len() <= 3
                && p.chars().all(|c| c.is_ascii_digit())
                && p.parse::<u16>().is_ok_and(|n| n < 256)
        })
}

/// lsof only lists open files; its device cache (`-D`) writes a file and
/// `-m` reads kernel memory from a file.
fn lsof(args: &[String], out: &mut Vec<Verdict>) {
    // Option letters that take a value: the rest of the word is the value.
    const VALUED: &str = "cdDegkmopsSTuxzFiKLr";
    for a in args {
        let Some(body) = a.strip_prefix('-').or_else(|| a.strip_prefix('+')) else {
            continue;
        };
        if a.starts_with("--") {
            if a != "--" {
                out.push(v(Level::Unknown, format!("unknown: lsof option {a:?}")));
            }
            continue;
        }
        for c in body.chars() {
            // `-D`: device cache; `-m`/`+m`: kernel memory file / mount
            // supplement file (`+D DIR` only lists a directory).
            if (c == 'D' && a.starts_with('-')) || c == 'm' {
                out.push(v(
                    Level::Approval,
                    format!("lsof -{c} writes its device cache or reads kernel memory"),
                ));
                break;
            }
            if VALUED.contains(c) || !c.is_ascii_alphabetic() {
                break;
            }
        }
    }
}

/// `openssl` read forms: `x509|req|crl -noout ...` (no -out), `s_client`
/// to loopback, `version`, `ciphers`, `verify`.
fn openssl(args: &[String], ctx: &Ctx, out: &mut Vec<Verdict>) {
    const FLAGS: &[&str] = &[
        "-noout",
        "-dates",
        "-subject",
        "-issuer",
        "-enddate",
        "-startdate",
        "-text",
        "-fingerprint",
        "-sha256",
        "-sha1",
        "-md5",
        "-serial",
        "-purpose",
        "-modulus",
        "-pubkey",
        "-email",
        "-ocsp_uri",
        "-hash",
        "-issuer_hash",
        "-subject_hash",
        "-alias",
        "-nextupdate",
        "-lastupdate",
        "-verify",
        "-noverify",
        "-ext_noout",
        "-showcerts",
        "-brief",
        "-status",
        "-prexit",
        "-tls1_2",
        "-tls1_3",
        "-no_tls1_3",
        "-verify_return_error",
        "-quiet",
        "-no_ign_eof",
        "-crlf",
        "-ign_eof",
        "-debug",
        "-msg",
        "-state",
        "-a",
        "-v",
        "-V",
        "-b",
        "-o",
        "-f",
        "-p",
        "-d",
        "-e",
        "-c",
        "-r",
        "-s",
        "-stdname",
        "-show_chain",
        "-verbose",
        "-x509_strict",
        "-partial_chain",
        "-check_ss_sig",
        "-crl_check",
        "-crl_check_all",
        "-help",
    ];
    const VALUES: &[&str] = &[
        "-inform",
        "-nameopt",
        "-ext",
        "-checkend",
        "-certopt",
        "-servername",
        "-starttls",
        "-alpn",
        "-verify_hostname",
        "-purpose",
        "-attime",
        "-sigopt",
        "-name",
        "-groups",
        "-curves",
        "-cipher",
        "-ciphersuites",
        "-sess_out_never",
        "-keylogfile_never",
    ];
    const PATHS: &[&str] = &[
        "-in",
        "-CAfile",
        "-CApath",
        "-untrusted",
        "-CRLfile",
        "-trusted",
    ];
    let Some(sub) = args.first() else {
        out.push(v(Level::Unknown, "unknown: openssl without a command"));
        return;
    };
    if !matches!(
        sub.as_str(),
        "x509" | "req" | "crl" | "s_client" | "version" | "ciphers" | "verify"
    ) {
        out.push(v(
            Level::Approval,
            format!("openssl {sub} may write keys or files"),
        ));
        return;
    }
    let mut i = 1;
    let mut operands = Vec::new();
    while i < args.len() {
        let a = args[i].as_str();
        i += 1;
        if a == "-connect" {
            let target = args.get(i).map(String::as_str).unwrap_or("");
            i += 1;
            let host = match target.rsplit_once(':') {
                Some((h, p)) if p.chars().all(|c| c.is_ascii_digit()) => h,
                _ => target,
            };
            if !is_loopback_host(host) {
                out.push(v(
                    Level::Approval,
                    format!("openssl s_client -connect {target}: only loopback is automatic"),
                ));
            }
        } else if PATHS.contains(&a) {
            let f = args.get(i).map(String::as_str).unwrap_or("");
            i += 1;
            if let Some(r) = ctx.sensitive(f, false) {
                out.push(v(Level::Approval, format!("openssl {a} {r}")));
            }
        } else if VALUES.contains(&a) {
            i += 1;
        } else if FLAGS.contains(&a) {
        } else if a.starts_with('-') {
            out.push(v(
                Level::Unknown,
                format!("unknown: openssl {sub} option {a:?}"),
            ));
        } else {
            operands.push(a.to_string());
        }
    }
    if sub == "s_client" && !args.iter().any(|a| a == "-connect") {
        out.push(v(
            Level::Approval,
            "openssl s_client without -connect to loopback",
        ));
    }
    if matches!(sub.as_str(), "x509" | "req" | "crl") && !args.iter().any(|a| a == "-noout") {
        out.push(v(
            Level::Approval,
            format!("openssl {sub} without -noout re-encodes its input"),
        ));
    }
    if !operands.is_empty()
        && matches!(
            sub.as_str(),
            "x509" | "req" | "crl" | "s_client" | "version"
        )
    {
        out.push(v(
            Level::Unknown,
            format!("unknown: openssl {sub} operand {:?}", operands[0]),
        ));
    }
    for o in operands.iter().filter(|_| sub == "verify") {
        if let Some(r) = ctx.sensitive(o, false) {
            out.push(v(Level::Approval, format!("openssl verify {r}")));
        }
    }
}

/// The built-in specs.
pub(crate) fn builtin() -> Vec<Spec> {
    use Level::*;
    vec![
        Spec::new("uptime", "-p|--pretty -s|--since -V|--version -h|--help", Pos::None)
            .ex(&["uptime", "uptime -p"], &["uptime --bogus", "uptime now"]),
        Spec::new("hostname", "-f|--fqdn|--long -s|--short -i|--ip-address -I|--all-ip-addresses -d|--domain -A|--all-fqdns -a|--alias -y|--yp|--nis -V|--version -h|--help !-F|--file=path !-b|--boot", Pos::None)
            .ex(&["hostname", "hostname -f", "hostname --fq"], &["hostname web2", "hostname -F /etc/x"]),
        Spec::new("id", "-u|--user -g|--group -G|--groups -n|--name -r|--real -z|--zero -a -Z|--context --help --version", Pos::Any)
            .ex(&["id", "id -un", "id www-data"], &["id --bogus"]),
        Spec::new("whoami", "--help --version", Pos::None).ex(&["whoami"], &["whoami x"]),
        Spec::new("date", "-u|--utc|--universal -R|--rfc-email -I|--iso-8601=?any --rfc-3339=any -d|--date=any -r|--reference=path -f|--file=path --debug --help --version !-s|--set=any", Pos::Any)
            .custom(Custom::Date)
            .ex(&["date", "date -u", "date +%s", "date -d yesterday +%F"], &["date 010100002030", "date -s now", "date --set=x"]),
        Spec::new("uname", "-a|--all -s|--kernel-name -n|--nodename -r|--kernel-release -v|--kernel-version -m|--machine -p|--processor -i|--hardware-platform -o|--operating-system --help --version", Pos::None)
            .ex(&["uname -a", "uname -sr"], &["uname -x"]),
        Spec::new("df", "-a|--all -B|--block-size=any -h|--human-readable -H|--si -i|--inodes -k -l|--local --no-sync --output=?any -P|--portability --sync --total -t|--type=any -T|--print-type -x|--exclude-type=any -v --help --version", Pos::Paths)
            .ex(&["df -h", "df -i", "df -hT /var", "df --out=source,pcent"], &["df --bogus"]),
        Spec::new("du", "-0|--null -a|--all --apparent-size -B|--block-size=any -b|--bytes -c|--total -D|--dereference-args -H -d|--max-depth=num !--files0-from=path -h|--human-readable --inodes -k -L|--dereference -l|--count-links -m -P|--no-dereference -S|--separate-dirs --si -s|--summarize -t|--threshold=any --time=?any --time-style=any -X|--exclude-from=path --exclude=any -x|--one-file-system --help --version", Pos::Any)
            .ex(&["du -sh /var/log", "du -h --max-depth=1 /var", "du -d1 /srv"], &["du --files0-from=/etc/shadow"]),
        Spec::new("free", "-b|--bytes -k|--kilo -m|--mega -g|--giga --tera --peta -h|--human --si -l|--lohi -L|--line -t|--total -v|--committed -s|--seconds=num -c|--count=num -w|--wide --kibi --mebi --gibi --tebi --pebi --help -V|--version", Pos::None)
            .ex(&["free -m", "free -h", "free -wh"], &["free -x"]),
        Spec::new("lsblk", "-a|--all -b|--bytes -D|--discard -d|--nodeps -e|--exclude=any -f|--fs -I|--include=any -i|--ascii -J|--json -l|--list -M|--merge -m|--perms -n|--noheadings -o|--output=any -O|--output-all -p|--paths -P|--pairs -r|--raw -S|--scsi -s|--inverse -t|--topology -T|--tree=?any -x|--sort=any -z|--zoned -w|--width=num -A|--noempty -N|--nvme -v|--virtio -E|--dedup=any -h|--help -V|--version", Pos::Any)
            .ex(&["lsblk", "lsblk -f", "lsblk -o NAME,SIZE"], &["lsblk --bogus"]),
        Spec::new("vmstat", "-a|--active -f|--forks -m|--slabs -n|--one-header -s|--stats -d|--disk -D|--disk-sum -p|--partition=any -S|--unit=any -t|--timestamp -w|--wide -y|--no-first -h|--help -V|--version", Pos::Any)
            .ex(&["vmstat 1 5", "vmstat -s"], &["vmstat -z"]),
        Spec::new("iostat", "-c -d -h -k -m -N -s -t -x -y -z -H -p -g=any -j=any -o=any --human --pretty --compact --dec=num -V", Pos::Any)
            .ex(&["iostat -xz 1 3"], &["iostat --bogus"]),
        Spec::new("ps", "", Pos::Any).custom(Custom::Ps)
            .ex(&["ps aux", "ps -ef", "ps -eo pid,comm,%cpu --sort=-%cpu"], &["ps auxe", "ps aux$x"]),
        Spec::new("top", "-b|--batch -n|--iterations=num -d|--delay=any -o|--sort-override=any -O|--list-fields -p|--pid=any -u|--filter-only-euser=any -U|--filter-any-user=any -c|--cmdline-toggle -H|--threads-show -i|--idle-toggle -S|--accum-time-toggle -s|--secure-mode -w|--width=?num -1|--single-cpu-toggle -E|--scale-summary-mem=any -e|--scale-task-mem=any -h|--help -v|--version", Pos::None)
            .custom(Custom::Top)
            .ex(&["top -b -n 1", "top -bn1"], &["top", "top -n 1"]),
        Spec::new("ss", "-h|--help -V|--version -H|--no-header -O|--oneline -n|--numeric -r|--resolve -a|--all -l|--listening -o|--options -e|--extended -m|--memory -p|--processes -T|--threads -i|--info --tos --cgroup --tipcinfo -s|--summary -E|--events -Z|--context -z|--contexts -N|--net=any -b|--bpf -4|--ipv4 -6|--ipv6 -0|--packet -t|--tcp -S|--sctp -u|--udp -d|--dccp -w|--raw -x|--unix --tipc --vsock -M|--mptcp --xdp --inet-sockopt -f|--family=any -A|--query|--socket=any -F|--filter=path -B|--bound-inactive !-K|--kill !-D|--diag=any", Pos::Any)
            .ex(&["ss -s", "ss -tlnp", "ss -tan state established"], &["ss -K dst 10.0.0.1", "ss -tK", "ss --ki"]),
        Spec::new("netstat", "-a|--all -t|--tcp -u|--udp -w|--raw -x|--unix -l|--listening -n|--numeric --numeric-hosts --numeric-ports --numeric-users -p|--program -r|--route -i|--interfaces -g|--groups -s|--statistics -M|--masquerade -e|--extend -o|--timers -c|--continuous -W|--wide -4 -6 -A|--protocol=any -N|--symbolic -v|--verbose -C -F -Z|--context -T|--notrim --inet --inet6 -h|--help -V|--version", Pos::None)
            .ex(&["netstat -tlnp", "netstat -rn"], &["netstat --bogus"]),
        Spec::new("systemctl", "-a|--all -l|--full --no-pager --no-legend --plain -q|--quiet --value -t|--type=any --state=any -p|--property=any -P=any -n|--lines=num -o|--output=any --user --system -r|--recursive --reverse --after --before --failed --with-dependencies --show-types -h|--help --version --no-ask-password --legend=any --timestamp=any !-H|--host=any !-M|--machine=any !--force !-f !--now !--runtime !--global !--root=any !-i|--ignore-inhibitors !--kill-whom=any !-s|--signal=any !--no-block !--no-wall", Pos::Any)
            .subs(Auto, "status show cat list-units list-unit-files list-timers list-sockets list-dependencies list-jobs list-machines list-paths list-automounts is-active is-enabled is-failed is-system-running get-default help")
            .subs(Approval, "start stop restart reload try-restart reload-or-restart try-reload-or-restart enable disable reenable mask unmask daemon-reload daemon-reexec edit set-property kill clean reset-failed preset preset-all link revert set-default set-environment unset-environment import-environment freeze thaw bind mount-image condreload condrestart condstop force-reload log-level log-target service-watchdogs show-environment")
            .subs(Forbidden, "reboot poweroff halt kexec isolate emergency rescue soft-reboot default suspend hibernate hybrid-sleep suspend-then-hibernate switch-root exit")
            .custom(Custom::Systemctl)
            .ex(&["systemctl status nginx", "systemctl --no-pager -l status nginx", "systemctl list-units --failed", "systemctl"], &["systemctl restart nginx", "systemctl edit nginx", "systemctl -H host status x", "systemctl frobnicate"]),
        Spec::new("journalctl", "--system --user -M|--machine=any -m|--merge -D|--directory=path -i|--file=path --root=path --image=path --namespace=any -S|--since=any -U|--until=any -c|--cursor=any --after-cursor=any !--cursor-file=path -b|--boot=?any -k|--dmesg -u|--unit=any --user-unit=any -t|--identifier=any -T|--exclude-identifier=any -p|--priority=any --facility=any -g|--grep=any --case-sensitive=?any -e|--pager-end -f|--follow -n|--lines=?any --no-tail -r|--reverse -o|--output=any --output-fields=any --utc --no-hostname -x|--catalog -a|--all -l|--full -q|--quiet --no-pager --no-full --show-cursor -N|--fields -F|--field=any --list-boots --list-namespaces --disk-usage --header -h|--help --version --verify --truncate-newline --list-invocations -I --invocation=any --list-catalog --dump-catalog !--vacuum-size=any !--vacuum-time=any !--vacuum-files=any !--rotate !--flush !--sync !--relinquish-var !--smart-relinquish-var !--setup-keys !--update-catalog !--new-id128 !--interval=any !--force !--verify-key=any", Pos::Any)
            .ex(&["journalctl -u nginx --no-pager -n 50", "journalctl -p err -b", "journalctl -fu nginx", "journalctl --since=-1h"], &["journalctl --vacuum-size=1G", "journalctl --vacuum-s=1G", "journalctl --rot", "journalctl --file=/root/x.key"]),
        Spec::new("cat", "-A|--show-all -b|--number-nonblank -e -E|--show-ends -n|--number -s|--squeeze-blank -t -T|--show-tabs -u -v|--show-nonprinting --help --version", Pos::Paths)
            .ex(&["cat /proc/loadavg", "cat -n /etc/hosts"], &["cat /etc/shadow", "cat /root/.ssh/id_rsa", "cat --bogus x"]),
        Spec::new("od", "-A|--address-radix=any -j|--skip-bytes=any -N|--read-bytes=any -S|--strings=?any -t|--format=any -v|--output-duplicates -w|--width=?any --endian=any --traditional -a -b -c -d -f -i -l -o -s -x --help --version", Pos::Paths)
            .ex(&["od -c /etc/hostname", "od -An -tx1 -N 16 /bin/ls", "od -c"], &["od -c /etc/shadow", "od -An -tx1 /root/.ssh/id_rsa", "od --bogus x"]),
        Spec::new("tac", "-b|--before -r|--regex -s|--separator=any --help --version", Pos::Paths)
            .ex(&["tac /var/log/syslog"], &["tac /etc/gshadow"]),
        Spec::new("head", "-c|--bytes=any -n|--lines=any -q|--quiet|--silent -v|--verbose -z|--zero-terminated --help --version", Pos::Paths)
            .numeric()
            .ex(&["head -n 20 /etc/hosts", "head -5 /etc/hosts", "head -n20 /etc/hosts"], &["head /etc/shadow"]),
        Spec::new("tail", "-c|--bytes=any -f --follow=?any -F -n|--lines=any --max-unchanged-stats=num --pid=num -q|--quiet|--silent --retry -s|--sleep-interval=any -v|--verbose -z|--zero-terminated --help --version", Pos::Paths)
            .numeric()
            .ex(&["tail -n 50", "tail -f /var/log/syslog", "tail -100 /var/log/syslog"], &["tail /etc/sudoers"]),
        Spec::new("ls", "-a|--all -A|--almost-all --author -b|--escape --block-size=any -B|--ignore-backups -c -C --color=?any -d|--directory -D|--dired -f -F|--classify=?any --file-type --format=any --full-time -g --group-directories-first -G|--no-group -h|--human-readable --si -H|--dereference-command-line --dereference-command-line-symlink-to-dir --hide=any --hyperlink=?any --indicator-style=any -i|--inode -I|--ignore=any -k|--kibibytes -l -L|--dereference -m -n|--numeric-uid-gid -N|--literal -o -p -q|--hide-control-chars --show-control-chars -Q|--quote-name --quoting-style=any -r|--reverse -R|--recursive -s|--size -S --sort=any --time=any --time-style=any -t -T|--tabsize=num -u -U -v -w|--width=num -x -X -Z|--context --zero -1 --help --version", Pos::Any)
            .ex(&["ls", "ls -la /var/log", "ls -lhtr", "ls --sort=size /"], &["ls --bogus"]),
        Spec::new("stat", "-L|--dereference -f|--file-system -c|--format=any --printf=any -t|--terse --cached=any --help --version", Pos::Any)
            .ex(&["stat /etc/nginx/nginx.conf", "stat -c %s /etc/hosts"], &["stat --bogus /"]),
        Spec::new("find", "", Pos::Paths).custom(Custom::Find)
            .ex(&["find /var/log -name '*.gz' -mtime +30", "find / -xdev -size +100M -ls"], &["find / -delete", "find . -exec id ;", "find / -fprint /tmp/x", "find / -newerXY x"]),
        Spec::new("grep", "-E|--extended-regexp -F|--fixed-strings -G|--basic-regexp -P|--perl-regexp -e|--regexp=any -f|--file=path -i|--ignore-case --no-ignore-case -y -v|--invert-match -w|--word-regexp -x|--line-regexp -c|--count --color|--colour=?any -L|--files-without-match -l|--files-with-matches -m|--max-count=num -o|--only-matching -q|--quiet|--silent -s|--no-messages -b|--byte-offset -H|--with-filename -h|--no-filename --label=any -n|--line-number -T|--initial-tab -Z|--null -A|--after-context=num -B|--before-context=num -C|--context=num -a|--text --binary-files=any -D|--devices=any -d|--directories=any --exclude=any --exclude-from=path --exclude-dir=any --include=any -r|--recursive -R|--dereference-recursive --line-buffered -U|--binary -z|--null-data --help -V|--version", Pos::PatternThenPaths)
            .numeric()
            .ex(&["grep -rn server_name /etc/nginx", "grep -i error", "grep -e x -e y /var/log/syslog", "grep -C3 foo /etc/hosts"], &["grep root /etc/shadow", "grep -r x /etc", "grep -f /etc/shadow x"]),
        Spec::new("egrep", "-i -v -c -n -l -o -w -x -h -H -r -R -s -q -e=any -m=num -A=num -B=num -C=num", Pos::PatternThenPaths)
            .ex(&["egrep -i 'a|b' /var/log/syslog"], &["egrep x /etc/shadow"]),
        Spec::new("wc", "-c|--bytes -m|--chars -l|--lines -L|--max-line-length -w|--words !--files0-from=path --total=any --help --version", Pos::Paths)
            .ex(&["wc -l", "wc -l /etc/passwd"], &["wc /etc/shadow"]),
        Spec::new("sort", "-b|--ignore-leading-blanks -d|--dictionary-order -f|--ignore-case -g|--general-numeric-sort -i|--ignore-nonprinting -M|--month-sort -h|--human-numeric-sort -n|--numeric-sort -R|--random-sort --random-source=path -r|--reverse --sort=any -V|--version-sort --batch-size=num -c|--check=?any -C --debug !--files0-from=path -k|--key=any -m|--merge -s|--stable -S|--buffer-size=any -t|--field-separator=any !-T|--temporary-directory=any --parallel=num -u|--unique -z|--zero-terminated --help --version !-o|--output=any !--compress-program=any", Pos::Paths)
            .ex(&["sort -rn", "sort -k2,2n -t: /etc/passwd", "sort -u"], &["sort -o /tmp/x y", "sort -uo f", "sort --out=f", "sort --compress-program=gzip"]),
        Spec::new("uniq", "-c|--count -d|--repeated -D --all-repeated=?any -f|--skip-fields=num --group=?any -i|--ignore-case -s|--skip-chars=num -u|--unique -z|--zero-terminated -w|--check-chars=num --help --version", Pos::Paths)
            .custom(Custom::Uniq)
            .ex(&["uniq -c", "uniq /tmp/a"], &["uniq /tmp/a /tmp/b"]),
        Spec::new("cut", "-b|--bytes=any -c|--characters=any -d|--delimiter=any -f|--fields=any -n --complement -s|--only-delimited --output-delimiter=any -z|--zero-terminated --help --version", Pos::Paths)
            .ex(&["cut -d: -f1 /etc/passwd"], &["cut -f1 /etc/shadow"]),
        Spec::new("tr", "-c|-C|--complement -d|--delete -s|--squeeze-repeats -t|--truncate-set1 --help --version", Pos::Any)
            .ex(&["tr ';' ' '", "tr -d x"], &["tr --bogus"]),
        Spec::new("echo", "", Pos::Any).custom(Custom::Echo).ex(&["echo reboot", "echo -n x"], &["echo $x"]),
        Spec::new("awk", "-F|--field-separator=any -v|--assign=any -f|--file=path --posix --traditional -b|--characters-as-bytes -c -C !-e|--source=any -P -r -S|--sandbox -N", Pos::Paths)
            .custom(Custom::Awk)
            .ex(&["awk '{print $1}' /var/log/nginx/access.log", "awk -F: '{print $1}' /etc/passwd"], &["awk 'BEGIN{system(\"id\")}'", "awk '{print > \"/tmp/x\"}' /etc/hosts", "awk '{\"id\" | getline x}'", "awk -f /tmp/x.awk /etc/hosts"]),
        Spec::new("sed", "-n|--quiet|--silent -e|--expression=any -E|-r|--regexp-extended -s|--separate -u|--unbuffered -z|--null-data --debug --posix !-i|--in-place=?any !-f|--file=any", Pos::Paths)
            .custom(Custom::Sed)
            .ex(&["sed -n '1,20p' /etc/hosts", "sed -n '$p' /etc/hosts", "sed -n '/a/,/b/p' /etc/hosts"], &["sed -n '1e id' /etc/hosts", "sed -n 'w /tmp/x' /etc/hosts", "sed 's/a/b/' /etc/hosts", "sed -n '1p;r /etc/shadow' /etc/hosts", "sed -i -n 1p f"]),
        Spec::new("nginx", "", Pos::None).custom(Custom::Nginx)
            .ex(&["nginx -t", "nginx -T", "nginx -V"], &["nginx -s reload", "nginx -t -c /tmp/x.conf", "nginx"]),
        Spec::new("dmesg", "-T|--ctime -t|--notime -d|--show-delta -e|--reltime -k|--kernel -u|--userspace -x|--decode -l|--level=any -f|--facility=any -L|--color=?any -r|--raw -S|--syslog -w|--follow -W|--follow-new -P|--nopager --time-format=any -F|--file=path -s|--buffer-size=num --since=any --until=any -J|--json -p|--force-prefix --noescape -h|--help -V|--version !-c|--read-clear !-C|--clear !-D|--console-off !-E|--console-on !-n|--console-level=any !-H|--human", Pos::None)
            .ex(&["dmesg -T", "dmesg --level=err,warn"], &["dmesg -C", "dmesg -c", "dmesg -H", "dmesg -Tc", "dmesg --cle"]),
        Spec::new("getent", "-s|--service=any -i|--no-idn -A|--no-addrconfig --help", Pos::Any)
            .custom(Custom::Getent)
            .ex(&["getent passwd root", "getent hosts example.com"], &["getent shadow root"]),
        Spec::new("curl", "-s|--silent -S|--show-error -f|--fail --fail-with-body -i|--include -I|--head -v|--verbose -m|--max-time=any --connect-timeout=any -w|--write-out=any -H|--header=any -X|--request=any -k|--insecure -4|--ipv4 -6|--ipv6 --compressed --url=any -A|--user-agent=any --retry=num --no-progress-meter -N|--no-buffer --http1.1 --http2 -G|--get --resolve=any --connect-to=any -q|--disable -o|--output=any -D|--dump-header=any -g|--globoff --http1.0 -Z|--parallel !-O|--remote-name !-L|--location !-d|--data=any !-x|--proxy=any", Pos::Any)
            .custom(Custom::Curl)
            .ex(&["curl -fsS http://127.0.0.1:8080/health", "curl -s http://localhost/healthz", "curl -I 'http://[::1]:80/'"], &["curl -o /tmp/x http://127.0.0.1/", "curl https://example.com/", "curl http://127.0.0.1.evil.com/", "curl http://user@localhost/", "curl -K /tmp/cfg http://localhost/", "curl --out x http://localhost/"]),
        Spec::new("dig", "-4 -6 -b=any -c=any -p=num -q=any -t=any -x=any -m -u -v -h -r !-k=any !-f=any", Pos::Any)
            .custom(Custom::Dns)
            .ex(&["dig example.com", "dig +short @127.0.0.53 example.com A", "dig +tcp example.com", "dig -p 53 @10.0.0.2 example.com"], &["dig -f /tmp/names", "dig -p 6379 +tcp @127.0.0.1 x", "dig +tcp -p5432 @10.0.0.5 x", "dig axfr example.com @ns1", "dig -t AXFR example.com", "dig +port=8080 @10.0.0.5 x"]),
        Spec::new("host", "-a -A -c=any -C -d !-l -m=any -N=num -r -R=num -s -t=any -T -U -v -V -w -W=num -4 -6", Pos::Any)
            .ex(&["host example.com", "host -t mx example.com"], &["host --bogus", "host -l example.com ns1"]),
        Spec::new("docker", "", Pos::Any).custom(Custom::Docker)
            .ex(&["docker logs --tail 50 web", "docker stats --no-stream", "docker ps -a"], &["docker restart web", "docker exec web id", "docker -H tcp://x ps", "docker stats"]),
        Spec::new("apt-cache", "-n|--names-only -f|--full -i|--important --installed --recurse -q|--quiet -a|--all-versions --no-all-versions -h|--help -v|--version", Pos::Any)
            .subs(Auto, "policy show showpkg showsrc search depends rdepends madison stats pkgnames")
            .no_sub(Unknown)
            .ex(&["apt-cache policy nginx"], &["apt-cache gencaches", "apt-cache -c /tmp/x policy"]),
        Spec::new("tar", "-t|--list -z|--gzip|--gunzip -j|--bzip2 -J|--xz --zstd -a|--auto-compress -v|--verbose -f|--file=path --numeric-owner --wildcards --no-wildcards --anchored --exclude=any --occurrence=?num -O|--to-stdout --full-time --utc --quoting-style=any --show-transformed-names", Pos::Any)
            .custom(Custom::Tar)
            .ex(&["tar -tzf /var/backups/site.tgz", "tar --list -f /tmp/x.tar"], &["tar -xzf /tmp/x.tgz", "tar tzf x.tgz", "tar -tf x.tar --to-command=id", "tar -tf host:/x.tar", "tar -tf x.tar --checkpoint-action=exec=id"]),
        Spec::new("ip", "", Pos::Any).custom(Custom::Ip)
            .ex(&["ip addr", "ip route", "ip -br a", "ip -s link show eth0", "ip route get 1.1.1.1"], &["ip link set eth1 down", "ip l s eth1 down", "ip -b /tmp/x", "ip netns exec x id", "ip route add default via 1.2.3.4"]),
        Spec::new("sysctl", "-a|--all -A -X -b|--binary -e|--ignore -N|--names -n|--values -r|--pattern=any -h|--help -V|--version !-w|--write !-p|--load=?any !--system", Pos::Any)
            .custom(Custom::Sysctl)
            .ex(&["sysctl -a", "sysctl net.ipv4.ip_forward"], &["sysctl -w net.ipv4.ip_forward=1", "sysctl net.ipv4.ip_forward=1", "sysctl -p"]),
        Spec::new("nproc", "--all --ignore=num --help --version", Pos::None).ex(&["nproc"], &["nproc x"]),
        Spec::new("lscpu", "-a|--all -b|--online -c|--offline -e|--extended=?any -p|--parse=?any -J|--json -x|--hex -y|--physical -B|--bytes --output-all -h|--help -V|--version", Pos::None).ex(&["lscpu"], &["lscpu -s /tmp"]),
        Spec::new("lsmod", "", Pos::None).ex(&["lsmod"], &["lsmod x"]),
        Spec::new("pwd", "-L -P --help --version", Pos::None).ex(&["pwd"], &["pwd x"]),
        Spec::new("w", "-h|--no-header -u|--no-current -s|--short -f|--from -o|--old-style -i|--ip-addr -p|--pids --help -V|--version", Pos::Any).ex(&["w"], &["w --bogus"]),
        Spec::new("who", "-a|--all -b|--boot -d|--dead -H|--heading -l|--login -m -p|--process -q|--count -r|--runlevel -s|--short -t|--time -u|--users -w|--mesg -T --ips --lookup --help --version", Pos::Any).ex(&["who -b"], &["who --bogus"]),
        Spec::new("which", "-a", Pos::Any).ex(&["which nginx"], &["which --bogus"]),
        Spec::new("readlink", "-f|--canonicalize -e|--canonicalize-existing -m|--canonicalize-missing -n|--no-newline -q|--quiet -s|--silent -v|--verbose -z|--zero --help --version", Pos::Any).ex(&["readlink -f /proc/1/exe"], &["readlink --bogus"]),
        Spec::new("realpath", "-e|--canonicalize-existing -m|--canonicalize-missing -L|--logical -P|--physical -q|--quiet -s|--strip|--no-symlinks -z|--zero --relative-to=any --relative-base=any --help --version", Pos::Any).ex(&["realpath ."], &["realpath --bogus"]),
        Spec::new("file", "-b|--brief -i|--mime -L|--dereference -z|--uncompress -s|--special-files -k|--keep-going --mime-type --help -v|--version", Pos::Paths).ex(&["file /usr/bin/ls"], &["file -C", "file /etc/shadow"]),
        Spec::new("sha256sum", "-b|--binary -c|--check -t|--text --tag -z|--zero --ignore-missing --quiet --status --strict -w|--warn --help --version", Pos::Paths).ex(&["sha256sum /usr/bin/ls"], &["sha256sum /etc/shadow"]),
        Spec::new("md5sum", "-b|--binary -c|--check -t|--text --tag -z|--zero --ignore-missing --quiet --status --strict -w|--warn --help --version", Pos::Paths).ex(&["md5sum /etc/hosts"], &["md5sum /etc/shadow"]),
        Spec::new("true", "", Pos::Any).ex(&["true"], &[]),
        Spec::new("sleep", "--help --version", Pos::Any).ex(&["sleep 1"], &[]),
        Spec::new("printenv", "-0|--null --help --version", Pos::Any).ex(&["printenv PATH"], &["printenv --bogus"]),

        // The long tail of read-only diagnostics an SRE types in an incident.
        Spec::new("lsof", "", Pos::Any).custom(Custom::Lsof)
            .ex(&["lsof -i :443", "lsof -nP -iTCP -sTCP:LISTEN", "lsof +L1", "lsof -p 1234", "lsof /var/log/syslog", "lsof +D /var/log/nginx", "lsof -c nginx"], &["lsof -Db", "lsof -nDu", "lsof -m /tmp/kmem"]),
        Spec::new("fuser", "-v|--verbose -m|--mount -M|--ismountpoint -n|--namespace=any -a|--all -s|--silent -u|--user -4|--ipv4 -6|--ipv6 -w -l|--list-signals -V|--version !-k|--kill !-i|--interactive", Pos::Any)
            .ex(&["fuser -v /var/log/syslog", "fuser -v 80/tcp", "fuser -vm /var", "fuser -n tcp 5432"], &["fuser -k 80/tcp", "fuser -km /mnt"]),
        Spec::new("pgrep", "-a|--list-full -l|--list-name -f|--full -u|--euid=any -U|--uid=any -G|--group=any -g|--pgroup=any -P|--parent=any -s|--session=any -t|--terminal=any -x|--exact -n|--newest -o|--oldest -c|--count -d|--delimiter=any -v|--inverse -w|--lightweight -i|--ignore-case -F|--pidfile=path -L|--logpidfile -r|--runstates=any -A|--ignore-ancestors --cgroup=any --ns=any --nslist=any -O|--older=num -h|--help -V|--version", Pos::Any)
            .ex(&["pgrep -a nginx", "pgrep -u postgres -a", "pgrep -f gunicorn", "pgrep -c php-fpm"], &["pgrep --signal 9 x", "pgrep -F /etc/shadow"]),
        Spec::new("pidof", "-s|--single-shot -c|--check-root -n|--omit-pid-not -x|--scripts -o|--omit-pid=any -q|--quiet -z|--zombie -w|--with-workers -S|--separator=any -h|--help -V|--version", Pos::Any)
            .ex(&["pidof nginx", "pidof -s sshd"], &["pidof --bogus"]),
        Spec::new("findmnt", "-A|--all -a|--ascii -b|--bytes -C|--nocanonicalize -c|--canonicalize -D|--df -d|--direction=any -e|--evaluate -F|--tab-file=path -f|--first-only -i|--invert -J|--json -k|--kernel -l|--list -M|--mountpoint=any -m|--mtab -N|--task=num -n|--noheadings -O|--options=any -o|--output=any --output-all -P|--pairs -p|--poll=?any -R|--submounts -r|--raw --real --pseudo -S|--source=any -s|--fstab -T|--target=any -t|--types=any --tree -U|--uniq -u|--notruncate -v|--nofsroot -w|--timeout=num -x|--verify --verbose --vfs-all --shadowed --hyperlink=?any -y|--shell -h|--help -V|--version", Pos::Any)
            .ex(&["findmnt /", "findmnt -T /var/lib/docker", "findmnt --df", "findmnt -t ext4,xfs"], &["findmnt --bogus"]),
        Spec::new("test", "", Pos::Any).custom(Custom::Test)
            .ex(&["test -x /usr/sbin/nginx", "test -f /etc/nginx/nginx.conf"], &["test -f $x"]),
        Spec::new("[", "", Pos::Any).custom(Custom::Test)
            .ex(&["[ -f /var/run/nginx.pid ]", "[ -S /var/run/docker.sock ]"], &["[ -f x"]),
        Spec::new("crontab", "-l -u=any", Pos::None).require("-l")
            .ex(&["crontab -l", "crontab -l -u www-data"], &["crontab -e", "crontab /tmp/x", "crontab -r"]),
        Spec::new("dpkg", "-l|--list -s|--status -L|--listfiles -S|--search -p|--print-avail --get-selections --print-architecture --print-foreign-architectures -V|--verify -C|--audit -c|--contents -I|--info --compare-versions --version --help --no-pager --admindir=path", Pos::Any)
            .require("-l -s -L -S -p --get-selections --print-architecture --print-foreign-architectures -V -C -c -I --compare-versions --version --help")
            .ex(&["dpkg -l nginx", "dpkg -s openssh-server", "dpkg -L nginx-common", "dpkg -S /usr/sbin/nginx", "dpkg --get-selections"], &["dpkg -i /tmp/x.deb", "dpkg -r nginx", "dpkg --configure -a", "dpkg nginx"]),
        Spec::new("dpkg-query", "-l|--list -W|--show -s|--status -L|--listfiles -S|--search -p|--print-avail -f|--showformat=any --admindir=path --no-pager --help --version", Pos::Any)
            .ex(&["dpkg-query -W -f='${Version}\\n' nginx", "dpkg-query -l nginx"], &["dpkg-query --bogus"]),
        Spec::new("apt", "--installed --upgradable --all-versions -a --manual-installed -q|--quiet --names-only --full -n --no-all-versions -h|--help -v|--version", Pos::Any)
            .subs(Auto, "list show policy search depends rdepends showsrc madison")
            .no_sub(Unknown)
            .ex(&["apt list --installed", "apt list --upgradable", "apt show nginx", "apt policy nginx"], &["apt install nginx", "apt upgrade", "apt -o APT::x=y list"]),
        Spec::new("openssl", "", Pos::Any).custom(Custom::Openssl)
            .ex(&["openssl x509 -in /etc/ssl/certs/ssl-cert-snakeoil.pem -noout -dates", "openssl x509 -noout -fingerprint -sha256 -in /etc/nginx/ssl/site.crt", "openssl s_client -connect 127.0.0.1:443 -servername example.com", "openssl version -a", "openssl req -in /tmp/site.csr -noout -text"], &["openssl x509 -in /etc/ssl/private/x.pem -noout -text", "openssl s_client -connect example.com:443", "openssl x509 -in a.pem -out b.pem", "openssl genrsa 2048", "openssl enc -d -in x"]),
        Spec::new("systemd-analyze", "--no-pager --user --system --global -H|--host=any -M|--machine=any --order --require --fuzz=any --man=?any --generators=?any --root=path --image=path --json=any --iterations=num --base-time=any --unit=any --table --no-legend --threshold=any --security-policy=path --offline=?any --profile=path -q|--quiet -h|--help --version", Pos::Any)
            .subs(Auto, "time blame critical-chain plot dot dump cat-config unit-files unit-paths exit-status capability condition syscall-filter filesystems calendar timestamp timespan security inspect-elf fdstore image-policy has-tpm2 pcrs srk architectures smbios11 verify")
            .subs(Approval, "log-level log-target service-watchdogs")
            .ex(&["systemd-analyze blame", "systemd-analyze critical-chain", "systemd-analyze security nginx"], &["systemd-analyze log-level debug", "systemd-analyze frob"]),
        Spec::new("timedatectl", "--no-pager --no-ask-password -H|--host=any -M|--machine=any -a|--all -p|--property=any --value --monitor --adjust-system-clock -h|--help --version", Pos::Any)
            .subs(Auto, "status show show-timesync timesync-status list-timezones")
            .subs(Approval, "set-time set-timezone set-local-rtc set-ntp ntp-servers revert")
            .ex(&["timedatectl", "timedatectl status", "timedatectl timesync-status"], &["timedatectl set-ntp false", "timedatectl set-time 2020-01-01"]),
        Spec::new("resolvectl", "-4 -6 -i|--interface=any -p|--protocol=any -t|--type=any -c|--class=any --service-address=any --service-txt=any --cname=any --validate=any --synthesize=any --cache=any --zone=any --trust-anchor=any --network=any --search=any --stale-data=any --relax-single-label=any --raw=?any --legend=any --no-pager --json=any -j -h|--help --version", Pos::Any)
            .subs(Auto, "status query service openpgp tlsa statistics show-cache show-server-state log-level monitor")
            .subs(Approval, "flush-caches reset-statistics reset-server-features revert dns domain default-route llmnr mdns dnssec dnsovertls nta")
            .ex(&["resolvectl status", "resolvectl query example.com", "resolvectl statistics"], &["resolvectl flush-caches", "resolvectl dns eth0 1.1.1.1"]),
        Spec::new("namei", "-l|--long -m|--modes -o|--owners -n|--nosymlinks -v|--vertical -x|--mountpoints -Z|--context -h|--help -V|--version", Pos::Any)
            .ex(&["namei -l /var/www/html/index.html", "namei -om /etc/nginx/ssl/site.key"], &["namei --bogus"]),
        Spec::new("iptables", "-L|--list -S|--list-rules -n|--numeric -v|--verbose -x|--exact --line-numbers -t|--table=any -w|--wait=?any -W|--wait-interval=any -4|--ipv4 -6|--ipv6 -h|--help -V|--version", Pos::Any)
            .require("-L -S -h -V")
            .ex(&["iptables -L -n -v", "iptables -S", "iptables -t nat -L -n", "iptables -nvL INPUT"], &["iptables -A INPUT -j ACCEPT", "iptables -Z", "iptables -L -Z"]),
        Spec::new("ip6tables", "-L|--list -S|--list-rules -n|--numeric -v|--verbose -x|--exact --line-numbers -t|--table=any -w|--wait=?any -h|--help -V|--version", Pos::Any)
            .require("-L -S -h -V")
            .ex(&["ip6tables -L -n"], &["ip6tables -F"]),
        Spec::new("nft", "-a|--handle -n|--numeric -s|--stateless -j|--json -t|--terse -y|--numeric-priority -p|--numeric-protocol -T|--numeric-time -S|--service -N|--reversedns -c|--check -h|--help -v|--version", Pos::Any)
            .subs(Auto, "list")
            .no_sub(Unknown)
            .ex(&["nft list ruleset", "nft -a list table inet filter"], &["nft flush ruleset", "nft -f /tmp/x", "nft add rule inet filter input accept"]),
        Spec::new("ufw", "--dry-run -h|--help --version", Pos::Any)
            .subs(Auto, "status show version")
            .no_sub(Unknown)
            .ex(&["ufw status verbose", "ufw status numbered", "ufw show raw"], &["ufw allow 22", "ufw enable"]),
        Spec::new("smartctl", "-H|--health -i|--info -a|--all -x|--xall -A|--attributes -c|--capabilities -l|--log=any -j|--json=?any -d|--device=any --scan --scan-open -q|--quiet-mode=any -n|--nocheck=any -T|--tolerance=any -b|--badsum=any -r|--report=any -f|--format=any -h|--help -V|--version", Pos::Any)
            .ex(&["smartctl -H /dev/sda", "smartctl -a /dev/nvme0n1", "smartctl --scan"], &["smartctl -t long /dev/sda", "smartctl -s off /dev/sda"]),
        Spec::new("mdadm", "-D|--detail -E|--examine -Q|--query --scan -s -v|--verbose -b|--brief --export -Y -h|--help -V|--version", Pos::Any)
            .require("-D -E -Q -h -V")
            .ex(&["mdadm --detail /dev/md0", "mdadm -D --scan"], &["mdadm --stop /dev/md0", "mdadm --fail /dev/md0 /dev/sda1"]),
        Spec::new("blkid", "-o|--output=any -s|--match-tag=any -t|--match-token=any -L|--label=any -U|--uuid=any -l|--list-one -p|--probe -i|--info -k|--list-filesystems -d|--no-encoding -n|--match-types=any -u|--usages=any -g|--garbage-collect -c|--cache-file=any -h|--help -V|--version", Pos::Any)
            .ex(&["blkid", "blkid -o value -s UUID /dev/sda1"], &["blkid --bogus"]),
        Spec::new("hostnamectl", "--no-pager --no-ask-password -H|--host=any -M|--machine=any --static --transient --pretty -j|--json=any -h|--help --version", Pos::Any)
            .subs(Auto, "status")
            .subs(Approval, "set-hostname set-icon-name set-chassis set-deployment set-location hostname icon-name chassis deployment location")
            .ex(&["hostnamectl", "hostnamectl status"], &["hostnamectl set-hostname web2", "hostnamectl hostname web2"]),
        Spec::new("last", "-n|--limit=num -a|--hostlast -d|--dns -F|--fulltimes -i|--ip -w|--fullnames -x|--system -R|--nohostname -s|--since=any -t|--until=any -p|--present=any -T|--tab-separated --time-format=any -f|--file=path -h|--help -V|--version", Pos::Any)
            .numeric()
            .ex(&["last -n 20", "last -x reboot", "last -10"], &["last -f /etc/shadow"]),
        Spec::new("lastb", "-n|--limit=num -a|--hostlast -d|--dns -F|--fulltimes -i|--ip -w|--fullnames -x|--system -s|--since=any -t|--until=any -h|--help", Pos::Any)
            .numeric()
            .ex(&["lastb -n 20"], &["lastb --bogus"]),
        Spec::new("lastlog", "-u|--user=any -b|--before=num -t|--time=num -R|--root=path -h|--help !-C|--clear !-S|--set", Pos::None)
            .ex(&["lastlog", "lastlog -u root"], &["lastlog -C -u root"]),
        Spec::new("groups", "--help --version", Pos::Any).ex(&["groups www-data", "groups"], &["groups --bogus"]),
        Spec::new("systemd-cgtop", "-b|--batch -n|--iterations=num -d|--delay=any -p -t -c -m -i -r|--raw -k -P -1 --depth=num --order=any --recursive=any -M|--machine=any -h|--help --version", Pos::Any)
            .ex(&["systemd-cgtop -b -n 1"], &["systemd-cgtop --bogus"]),
        Spec::new("zcat", "-f|--force -q|--quiet -v|--verbose -l|--list -t|--test -h|--help -V|--version", Pos::Paths)
            .ex(&["zcat /var/log/nginx/access.log.2.gz"], &["zcat /etc/shadow"]),
        Spec::new("zgrep", "-E -F -G -P -i -v -w -x -c -l -L -n -h -H -o -q -s -a -e=any -m=num -A=num -B=num -C=num", Pos::PatternThenPaths)
            .ex(&["zgrep -c 'Out of memory' /var/log/kern.log.2.gz"], &["zgrep x /etc/shadow", "zgrep -f /etc/shadow x"]),
        Spec::new("redis-cli", "-h=any -p=num -n=num --raw --no-raw --no-auth-warning --version", Pos::Any)
            .subs(Auto, "ping info dbsize time lastsave role")
            .no_sub(Unknown)
            .ex(&["redis-cli ping", "redis-cli info memory", "redis-cli -h 127.0.0.1 -p 6380 ping"], &["redis-cli flushall", "redis-cli -h 10.0.0.1 ping", "redis-cli -a pw ping", "redis-cli"]),
        Spec::new("pg_isready", "-h|--host=any -p|--port=num -d|--dbname=any -U|--username=any -t|--timeout=num -q|--quiet -V|--version -?|--help", Pos::None)
            .ex(&["pg_isready -h 127.0.0.1", "pg_isready"], &["pg_isready -h db.example.com"]),
        Spec::new("nc", "-z -v -w=num -n -4 -6 -u", Pos::Any)
            .ex(&["nc -zv 127.0.0.1 5432", "nc -z -w 2 localhost 80"], &["nc 127.0.0.1 80", "nc -zv 10.0.0.1 22", "nc -l 4444", "nc -e /bin/sh 127.0.0.1 1"]),
        Spec::new("mpstat", "-A -u -n -T -P=any -I=any -N=any -o=any --dec=num -H -h -V", Pos::Any)
            .ex(&["mpstat -P ALL 1 3"], &["mpstat --bogus"]),
        Spec::new("pidstat", "-d -H -h -I -l -R -r -s -t -U=?any -u -v -w -C=any -G=any -p=any -T=any --dec=num --human -V", Pos::Any)
            .ex(&["pidstat -d 1 3", "pidstat -p 1234 1 5"], &["pidstat -e id"]),
        Spec::new("sar", "-A -B -b -d -F -H -h -I=any -j=any -m=any -n=any -P=any -p -q -r=?any -S -t -u=?any -V -v -W -w -x -y -z -s=any -e=any -i=num -f=path --dec=num --human --pretty !-o=any", Pos::Any)
            .ex(&["sar -q 1 3", "sar -n DEV 1 3", "sar -f /var/log/sysstat/sa01 -u"], &["sar -o /tmp/x 1 3"]),
        Spec::new("nslookup", "", Pos::Any).custom(Custom::Dns)
            .ex(&["nslookup example.com", "nslookup -type=mx example.com 127.0.0.53"], &["nslookup -port=5432 db 127.0.0.1", "nslookup -type=axfr example.com"]),
        Spec::new("ping", "-c|--count=num -i|--interval=any -W|--timeout=any -w|--deadline=num -n -q -4 -6 -s=num -t=num -I=any -D -O -a -A -v -V -R -U -b -B -L -M=any -Q=any -T=any -m=any !-f !-p=any", Pos::Any)
            .custom(Custom::Ping)
            .ex(&["ping -c 3 10.0.0.1", "ping -c 1 -W 2 example.com", "ping -w 5 10.0.0.1", "ping -c 5 -i 0.5 10.0.0.1"], &["ping -f 10.0.0.1", "ping -p ff 10.0.0.1", "ping 10.0.0.1", "ping -c 100000 10.0.0.1", "ping -c 10 -i 0 10.0.0.1", "ping -c 10 -i 0.01 10.0.0.1", "ping -c 3 -b 10.0.0.255"]),
        Spec::new("traceroute", "-n -I -T -U -4 -6 -F -e -A -V -p|--port=num -m|--max-hops=num -q|--queries=num -w|--wait=any -z|--sendwait=any -f|--first=num -i|--interface=any -s|--source=any -N|--sim-queries=num -t|--tos=any -l|--flowlabel=any --mtu --back", Pos::Any)
            .ex(&["traceroute -n 10.0.0.1"], &["traceroute --bogus"]),
        Spec::new("tracepath", "-n -b -4 -6 -l=num -m=num -p=num -V", Pos::Any)
            .ex(&["tracepath -n 10.0.0.1"], &["tracepath --bogus"]),
        Spec::new("mtr", "-r|--report -w|--report-wide -c|--report-cycles=num -n|--no-dns -b|--show-ips -z|--aslookup -T|--tcp -u|--udp -4 -6 -P|--port=num -i|--interval=any -m|--max-ttl=num -f|--first-ttl=num -s|--psize=num -j|--json -C|--csv -x|--xml -e|--mpls -o|--order=any -h|--help -v|--version", Pos::Any)
            .custom(Custom::Mtr)
            .ex(&["mtr -rwc 10 10.0.0.1", "mtr -r -c 5 -n 10.0.0.1", "mtr --report 10.0.0.1"], &["mtr --bogus", "mtr 10.0.0.1", "mtr -r -c 100000 10.0.0.1", "mtr -r -i 0.01 -c 10 10.0.0.1"]),
        Spec::new("chronyc", "-n -c -a -4 -6 -h=any -p=num -m -v", Pos::Any)
            .subs(Auto, "tracking sources sourcestats activity ntpdata serverstats selectdata authdata clients rtcdata smoothing waitsync")
            .no_sub(Unknown)
            .ex(&["chronyc tracking", "chronyc sources -v"], &["chronyc makestep", "chronyc -h 10.0.0.1 tracking"]),
        Spec::new("ntpq", "-p|--peers -n|--numeric -w|--wide -4 -6 ", Pos::Any)
            .ex(&["ntpq -p", "ntpq -pn"], &["ntpq -c ':config x'"]),
        Spec::new("conntrack", "-L|--dump -C|--count -S|--stats -G|--get -n|--src-nat -g|--dst-nat -o|--output=any -p|--proto=any -s|--orig-src|--src=any -d|--orig-dst|--dst=any -r|--reply-src=any -q|--reply-dst=any --sport|--orig-port-src=any --dport|--orig-port-dst=any -f|--family=any -m|--mark=any -e|--event-mask=any -b|--buffer-size=num", Pos::Any)
            .require("-L -C -S -G")
            .ex(&["conntrack -C", "conntrack -S", "conntrack -L -p tcp"], &["conntrack -F", "conntrack -D -s 10.0.0.1"]),
        Spec::new("ethtool", "-i|--driver -S|--statistics -k|--show-features|--show-offload -g|--show-ring -a|--show-pause -c|--show-coalesce -l|--show-channels -T|--show-time-stamping -P|--show-permaddr --show-eee --show-fec --show-priv-flags -m|--dump-module-eeprom|--module-info -d|--register-dump -e|--eeprom-dump --json -I|--include-statistics -h|--help --version", Pos::Any)
            .ex(&["ethtool eth0", "ethtool -S eth0", "ethtool -i eth0"], &["ethtool -s eth0 speed 100", "ethtool -K eth0 tso off", "ethtool -t eth0"]),
        Spec::new("mount", "-l|--show-labels -t|--types=any -v|--verbose -h|--help -V|--version", Pos::None)
            .ex(&["mount", "mount -l", "mount -t ext4"], &["mount /dev/sdb1 /mnt", "mount -o remount,rw /"]),
        Spec::new("swapon", "--show=?any -s|--summary --noheadings --raw --bytes -v|--verbose -h|--help -V|--version", Pos::None)
            .require("--show -s -h -V")
            .ex(&["swapon --show", "swapon -s"], &["swapon /swapfile", "swapon -a"]),
        Spec::new("pvs", "-a|--all -o|--options=any -O|--sort=any --units=any --noheadings --nosuffix --separator=any -S|--select=any --reportformat=any --readonly -v|--verbose -q|--quiet --segments --binary --nameprefixes --rows --aligned -h|--help --version", Pos::Any)
            .ex(&["pvs", "pvs -o +pv_used"], &["pvs --config x"]),
        Spec::new("vgs", "-a|--all -o|--options=any -O|--sort=any --units=any --noheadings --nosuffix --separator=any -S|--select=any --reportformat=any --readonly -v|--verbose -q|--quiet --binary --nameprefixes --rows --aligned -h|--help --version", Pos::Any)
            .ex(&["vgs"], &["vgs --config x"]),
        Spec::new("lvs", "-a|--all -o|--options=any -O|--sort=any --units=any --noheadings --nosuffix --separator=any -S|--select=any --reportformat=any --readonly -v|--verbose -q|--quiet --segments --binary --nameprefixes --rows --aligned -h|--help --version", Pos::Any)
            .ex(&["lvs", "lvs -a -o +devices"], &["lvs --config x"]),
    ]
}
