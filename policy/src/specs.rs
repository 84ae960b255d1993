//! Per-program specs: which subcommands, flags (with value types) and
//! operands keep a program read-only. Anything a spec does not know is
//! "unknown", never auto.

use crate::paths::{basename, glob_match, resolve};

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
pub(crate) struct Ctx<'a> {
    /// Working directory set by an earlier `cd`, if any.
    pub cwd: Option<&'a str>,
    /// Sensitive-path glob patterns (built-in plus policy file).
    pub sensitive: &'a [String],
}

impl Ctx<'_> {
    /// `Some(reason)` when reading `path` could expose a secret.
    pub(crate) fn sensitive(&self, path: &str, recursive: bool) -> Option<String> {
        if path.split('/').any(|c| c == "..") {
            // Lexical `..` disagrees with the kernel across symlinks
            // (`/var/run/../etc` is `/etc`).
            return Some(format!(
                "path {path:?} contains `..` (symlinks make it unverifiable)"
            ));
        }
        let full = resolve(self.cwd, path);
        if path.ends_with(".pub") {
            return None;
        }
        for p in self.sensitive {
            let hit = glob_match(p, &full)
                || (!full.starts_with('/')
                    && basename(p).chars().any(|c| c != '*' && c != '?')
                    && glob_match(basename(p), basename(&full)))
                || (recursive && {
                    // A recursive read of an ancestor directory reaches the secret.
                    let lit: String = p.chars().take_while(|c| *c != '*' && *c != '?').collect();
                    lit.starts_with('/') && (full == "/" || lit.starts_with(&format!("{full}/")))
                });
            if hit {
                return Some(format!("reads a sensitive path ({path} matches {p})"));
            }
        }
        None
    }
}

/// Built-in sensitive-path patterns: read-only access to these needs approval.
pub(crate) const SENSITIVE: &[&str] = &[
    "/etc/shadow*",
    "/etc/gshadow*",
    "/etc/sudoers*",
    "/etc/security/opasswd",
    "/var/backups/shadow*",
    "/var/backups/gshadow*",
    "*/.ssh/id_*",
    "*/.ssh/*_key",
    "/etc/ssh/ssh_host_*key",
    "/etc/ssl/private*",
    "*.key",
    "*.keytab",
    "*.p12",
    "*.pfx",
    "*/.aws/credentials",
    "*/.docker/config.json",
    "*/.kube/config",
    "*/.netrc",
    "*/.pgpass",
    "*/.my.cnf",
    "*/.gnupg/*",
    "*/.bash_history",
    "/root/*",
    "/proc/*/environ",
    "/proc/kcore",
    "/dev/mem",
    "/dev/kmem",
];

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
}

/// A program spec.
#[derive(Debug, Clone)]
pub(crate) struct Spec {
    pub name: String,
    opts: Vec<Opt>,
    pos: Pos,
    /// Subcommand (first operand) → level; others are unknown.
    subs: Vec<(String, Level)>,
    /// Level when there is no subcommand at all.
    no_sub: Level,
    custom: Custom,
    /// `-20` means `-n 20` (head, tail, grep context).
    numeric_short: bool,
    /// Read-only examples (must be auto) and counter-examples (must not be).
    pub examples_ok: Vec<String>,
    pub examples_not: Vec<String>,
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
    fn new(name: &str, dsl: &str, pos: Pos) -> Spec {
        Spec {
            name: name.into(),
            opts: parse_opts(dsl)
                .unwrap_or_else(|e| panic!("built-in spec {name}: {e}"))
                .into_iter()
                .map(|o| o.0)
                .collect(),
            pos,
            subs: Vec::new(),
            no_sub: Level::Auto,
            custom: Custom::None,
            numeric_short: false,
            examples_ok: Vec::new(),
            examples_not: Vec::new(),
        }
    }

    /// A new spec for a program added by a policy file.
    pub(crate) fn from_file(name: &str, opts: Vec<OptPublic>, pos: Pos) -> Spec {
        let mut s = Spec::new(name, "", pos);
        s.opts = opts.into_iter().map(|o| o.0).collect();
        s
    }

    /// Adds options (policy file `allow:` entries).
    pub(crate) fn add_opts(&mut self, opts: Vec<OptPublic>) {
        self.opts.extend(opts.into_iter().map(|o| o.0));
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
    fn numeric(mut self) -> Spec {
        self.numeric_short = true;
        self
    }
    fn ex(mut self, ok: &[&str], not: &[&str]) -> Spec {
        self.examples_ok = ok.iter().map(|s| s.to_string()).collect();
        self.examples_not = not.iter().map(|s| s.to_string()).collect();
        self
    }

    /// Resolves a long option name: exact, else a unique prefix (GNU
    /// getopt_long). A prefix matching several known options, or none, is
    /// unknown: the real program may know options we do not.
    fn long(&self, name: &str) -> Result<&Opt, String> {
        let full = format!("--{name}");
        if let Some(o) = self.opts.iter().find(|o| o.names.contains(&full)) {
            return Ok(o);
        }
        let mut hits: Vec<&Opt> = self
            .opts
            .iter()
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
        self.opts.iter().find(|o| o.names.contains(&n))
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
                            push_opt(o, (!rest.is_empty()).then_some(rest), out, &mut p);
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
        Custom::Ps => return ps(args, out),
        Custom::Find => return find(args, ctx, out),
        Custom::Sed => return sed(spec, args, ctx, out),
        Custom::Awk => return awk(spec, args, ctx, out),
        Custom::Nginx => return nginx(args, out),
        Custom::Ip => return ip(args, out),
        Custom::Curl => return curl(spec, args, ctx, out),
        Custom::Tar => return tar(spec, args, ctx, out),
        Custom::Docker => return docker(args, out),
        _ => {}
    }
    let p = spec.parse(args, ctx, out);
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
    let recursive = p.has("-r") || p.has("-R");
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
                match ctx.cwd.map(|c| ctx.sensitive(c, true)) {
                    Some(None) => {}
                    Some(Some(r)) => out.push(v(Level::Approval, format!("{} {r}", spec.name))),
                    None => out.push(v(
                        Level::Approval,
                        format!(
                            "{} -r without a path searches an unknown directory",
                            spec.name
                        ),
                    )),
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

fn ps(args: &[String], out: &mut Vec<Verdict>) {
    for (i, a) in args.iter().enumerate() {
        // BSD-style `e` shows every process's environment (secrets).
        let bsd = !a.starts_with('-') && (i == 0 || args[i - 1] != "-o" && args[i - 1] != "o");
        if bsd && i == 0 && a.contains('e') {
            out.push(v(Level::Approval, "ps e shows process environments"));
        }
        if a.chars()
            .any(|c| !(c.is_ascii_alphanumeric() || "-,=:%+_ ".contains(c)))
        {
            out.push(v(Level::Unknown, format!("unknown: ps argument {a:?}")));
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
    const BAD: &[&str] = &[
        "system", "getline", "|", ">", "@", "close", "fflush", "/inet", "ENVIRON", "PROCINFO",
    ];
    for b in BAD {
        if prog.contains(b) {
            out.push(v(
                Level::Approval,
                format!("awk program uses {b} (may run commands or write files)"),
            ));
        }
    }
    for f in &args[i + 1..] {
        if f.contains('=') && !f.starts_with('/') {
            continue;
        }
        if let Some(r) = ctx.sensitive(f, false) {
            out.push(v(Level::Approval, format!("awk {r}")));
        }
    }
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
        if matches!(n.as_str(), "-H" | "-w") && val.as_deref().is_some_and(|x| x.starts_with('@')) {
            out.push(v(Level::Approval, format!("curl {n} @file reads a file")));
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
    let Some(rest) = u
        .strip_prefix("http://")
        .or_else(|| u.strip_prefix("https://"))
    else {
        return false;
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
        Spec::new("du", "-0|--null -a|--all --apparent-size -B|--block-size=any -b|--bytes -c|--total -D|--dereference-args -H -d|--max-depth=num --files0-from=path -h|--human-readable --inodes -k -L|--dereference -l|--count-links -m -P|--no-dereference -S|--separate-dirs --si -s|--summarize -t|--threshold=any --time=?any --time-style=any -X|--exclude-from=path --exclude=any -x|--one-file-system --help --version", Pos::Paths)
            .ex(&["du -sh /var/log", "du -h --max-depth=1 /var", "du -d1 /srv"], &["du --files0-from=/etc/shadow"]),
        Spec::new("free", "-b|--bytes -k|--kilo -m|--mega -g|--giga --tera --peta -h|--human --si -l|--lohi -L|--line -t|--total -v|--committed -s|--seconds=num -c|--count=num -w|--wide --kibi --mebi --gibi --tebi --pebi --help -V|--version", Pos::None)
            .ex(&["free -m", "free -h", "free -wh"], &["free -x"]),
        Spec::new("lsblk", "-a|--all -b|--bytes -D|--discard -d|--nodeps -e|--exclude=any -f|--fs -I|--include=any -i|--ascii -J|--json -l|--list -M|--merge -m|--perms -n|--noheadings -o|--output=any -O|--output-all -p|--paths -P|--pairs -r|--raw -S|--scsi -s|--inverse -t|--topology -T|--tree=?any -x|--sort=any -z|--zoned -w|--width=num -A|--noempty -N|--nvme -v|--virtio -E|--dedup=any -h|--help -V|--version", Pos::Paths)
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
            .ex(&["systemctl status nginx", "systemctl --no-pager -l status nginx", "systemctl list-units --failed", "systemctl"], &["systemctl restart nginx", "systemctl edit nginx", "systemctl -H host status x", "systemctl frobnicate"]),
        Spec::new("journalctl", "--system --user -M|--machine=any -m|--merge -D|--directory=path -i|--file=path --root=path --image=path --namespace=any -S|--since=any -U|--until=any -c|--cursor=any --after-cursor=any -b|--boot=?any -k|--dmesg -u|--unit=any --user-unit=any -t|--identifier=any -T|--exclude-identifier=any -p|--priority=any --facility=any -g|--grep=any --case-sensitive=?any -e|--pager-end -f|--follow -n|--lines=?any --no-tail -r|--reverse -o|--output=any --output-fields=any --utc --no-hostname -x|--catalog -a|--all -l|--full -q|--quiet --no-pager --no-full --show-cursor -N|--fields -F|--field=any --list-boots --list-namespaces --disk-usage --header -h|--help --version --verify --truncate-newline --list-invocations -I --invocation=any --list-catalog --dump-catalog !--vacuum-size=any !--vacuum-time=any !--vacuum-files=any !--rotate !--flush !--sync !--relinquish-var !--smart-relinquish-var !--setup-keys !--update-catalog !--new-id128 !--interval=any !--force !--verify-key=any !--cursor-file=any", Pos::Any)
            .ex(&["journalctl -u nginx --no-pager -n 50", "journalctl -p err -b", "journalctl -fu nginx", "journalctl --since=-1h"], &["journalctl --vacuum-size=1G", "journalctl --vacuum-s=1G", "journalctl --rot", "journalctl --file=/root/x.key"]),
        Spec::new("cat", "-A|--show-all -b|--number-nonblank -e -E|--show-ends -n|--number -s|--squeeze-blank -t -T|--show-tabs -u -v|--show-nonprinting --help --version", Pos::Paths)
            .ex(&["cat /proc/loadavg", "cat -n /etc/hosts"], &["cat /etc/shadow", "cat /root/.ssh/id_rsa", "cat --bogus x"]),
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
        Spec::new("wc", "-c|--bytes -m|--chars -l|--lines -L|--max-line-length -w|--words --files0-from=path --total=any --help --version", Pos::Paths)
            .ex(&["wc -l", "wc -l /etc/passwd"], &["wc /etc/shadow"]),
        Spec::new("sort", "-b|--ignore-leading-blanks -d|--dictionary-order -f|--ignore-case -g|--general-numeric-sort -i|--ignore-nonprinting -M|--month-sort -h|--human-numeric-sort -n|--numeric-sort -R|--random-sort --random-source=path -r|--reverse --sort=any -V|--version-sort --batch-size=num -c|--check=?any -C --debug --files0-from=path -k|--key=any -m|--merge -s|--stable -S|--buffer-size=any -t|--field-separator=any -T|--temporary-directory=any --parallel=num -u|--unique -z|--zero-terminated --help --version !-o|--output=any !--compress-program=any", Pos::Paths)
            .ex(&["sort -rn", "sort -k2,2n -t: /etc/passwd", "sort -u"], &["sort -o /tmp/x y", "sort -uo f", "sort --out=f", "sort --compress-program=gzip"]),
        Spec::new("uniq", "-c|--count -d|--repeated -D --all-repeated=?any -f|--skip-fields=num --group=?any -i|--ignore-case -s|--skip-chars=num -u|--unique -z|--zero-terminated -w|--check-chars=num --help --version", Pos::Paths)
            .custom(Custom::Uniq)
            .ex(&["uniq -c", "uniq /tmp/a"], &["uniq /tmp/a /tmp/b"]),
        Spec::new("cut", "-b|--bytes=any -c|--characters=any -d|--delimiter=any -f|--fields=any -n --complement -s|--only-delimited --output-delimiter=any -z|--zero-terminated --help --version", Pos::Paths)
            .ex(&["cut -d: -f1 /etc/passwd"], &["cut -f1 /etc/shadow"]),
        Spec::new("tr", "-c|-C|--complement -d|--delete -s|--squeeze-repeats -t|--truncate-set1 --help --version", Pos::Any)
            .ex(&["tr ';' ' '", "tr -d x"], &["tr --bogus"]),
        Spec::new("echo", "", Pos::Any).custom(Custom::Echo).ex(&["echo reboot", "echo -n x"], &["echo $x"]),
        Spec::new("awk", "-F|--field-separator=any -v|--assign=any -f|--file=path --posix --traditional -b|--characters-as-bytes -c -C -e=any -P -r -S|--sandbox -N", Pos::Paths)
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
        Spec::new("curl", "-s|--silent -S|--show-error -f|--fail --fail-with-body -i|--include -I|--head -v|--verbose -m|--max-time=any --connect-timeout=any -w|--write-out=any -H|--header=any -X|--request=any -k|--insecure -4|--ipv4 -6|--ipv6 --compressed --url=any -A|--user-agent=any --retry=num --no-progress-meter -N|--no-buffer --http1.1 --http2 -G|--get --resolve=any -q|--disable !-o|--output=any !-O|--remote-name !-L|--location !-d|--data=any !-x|--proxy=any", Pos::Any)
            .custom(Custom::Curl)
            .ex(&["curl -fsS http://127.0.0.1:8080/health", "curl -s http://localhost/healthz", "curl -I 'http://[::1]:80/'"], &["curl -o /tmp/x http://127.0.0.1/", "curl https://example.com/", "curl http://127.0.0.1.evil.com/", "curl http://user@localhost/", "curl -K /tmp/cfg http://localhost/", "curl --out x http://localhost/"]),
        Spec::new("dig", "-4 -6 -b=any -c=any -p=num -q=any -t=any -x=any -m -u -v -h -r !-k=any !-f=any", Pos::Any)
            .ex(&["dig example.com", "dig +short @127.0.0.53 example.com A"], &["dig -f /tmp/names"]),
        Spec::new("host", "-a -A -c=any -C -d -l -m=any -N=num -r -R=num -s -t=any -T -U -v -V -w -W=num -4 -6", Pos::Any)
            .ex(&["host example.com", "host -t mx example.com"], &["host --bogus"]),
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
    ]
}
