//! The forbidden scan: independent of the auto grammar and the specs, it
//! looks at every command at any depth (substitutions, control flow,
//! here-doc bodies, shell strings handed to `sh -c`, `eval`, `find -exec`,
//! wrappers ...) and names the ones that must never run.

use crate::paths::{basename, is_block_device, is_critical_dir, is_protected_file, normalize};
use crate::specs::{Level, Verdict, v};
use crate::tree::{self, Syntax, Word};

/// How many shell strings deep (`bash -c "eval 'sh -c ...'"`) we follow.
const MAX_NESTING: usize = 4;
/// How many wrappers deep (`sudo nice timeout 5 env ...`) we unwrap.
const MAX_WRAPPERS: usize = 8;

/// Programs that interpret code read from stdin or a file.
pub(crate) const SHELLS: &[&str] = &[
    "sh", "bash", "dash", "zsh", "ksh", "ash", "mksh", "csh", "tcsh", "fish", "busybox", "rbash",
];
const INTERPRETERS: &[&str] = &[
    "python", "python2", "python3", "perl", "ruby", "node", "nodejs", "php", "lua", "tclsh",
    "pwsh", "awk", "gawk", "mawk",
];
const DOWNLOADERS: &[&str] = &["curl", "wget", "fetch", "aria2c", "nc", "ncat", "socat"];

pub(crate) fn is_shell(name: &str) -> bool {
    SHELLS.contains(&name)
}

fn is_interpreter(name: &str) -> bool {
    is_shell(name) || INTERPRETERS.contains(&name) || name.starts_with("python")
}

/// Extra per-argv rules (policy file `forbid` / `require_approval`).
pub(crate) type Extra<'a> = &'a dyn Fn(&[String], &mut Vec<Verdict>);

/// Collects forbidden reasons for a parsed command, and lets `extra` look at
/// every literal argv found at any depth.
pub(crate) fn scan(syn: &Syntax, extra: Extra, found: &mut Vec<Verdict>) {
    let mut strs = Vec::new();
    let mut work: Vec<(String, usize)> = Vec::new();
    let out = &mut strs;
    scan_one(syn, 0, out, &mut work, extra, found);
    // Shell strings found inside commands, parsed and scanned in turn.
    let mut budget = 64usize;
    while let Some((text, depth)) = work.pop() {
        if depth > MAX_NESTING || budget == 0 {
            push(out, "shell code nested too deeply to verify".into());
            continue;
        }
        budget -= 1;
        let inner = tree::parse(&text);
        scan_one(&inner, depth, out, &mut work, extra, found);
    }
    for r in strs {
        found.push(v(Level::Forbidden, r));
    }
}

fn push(out: &mut Vec<String>, r: String) {
    if !out.contains(&r) {
        out.push(r);
    }
}

fn scan_one(
    syn: &Syntax,
    depth: usize,
    out: &mut Vec<String>,
    work: &mut Vec<(String, usize)>,
    extra: Extra,
    found: &mut Vec<Verdict>,
) {
    if syn.too_deep {
        push(out, "syntax nested too deeply to verify".into());
    }
    for n in &syn.nested {
        work.push((n.clone(), depth + 1));
    }
    for a in &syn.assignments {
        check_assignment(a, out);
    }
    for (name, start, end) in &syn.functions {
        let recursive = syn.commands.iter().any(|c| {
            c.start >= *start
                && c.end <= *end
                && c.words.first().and_then(Word::lit) == Some(name.as_str())
        });
        if recursive {
            push(out, format!("fork bomb: function {name:?} calls itself"));
        }
    }
    for r in &syn.redirects {
        if !r.writes() {
            continue;
        }
        let target = match &r.target {
            Word::Lit(t) => normalize(t),
            Word::Dyn(t) => normalize(&t.replace(['"', '\''], "")),
        };
        if is_block_device(&target) {
            push(out, format!("redirect writes the block device {target}"));
        } else if is_protected_file(&target) {
            push(out, format!("redirect writes {target}"));
        }
    }
    for (i, c) in syn.commands.iter().enumerate() {
        for a in &c.assignments {
            check_assignment(a, out);
        }
        let Some(first) = c.words.first() else {
            continue;
        };
        let Word::Lit(_) = first else {
            push(
                out,
                "command name is not literal (expansion or substitution)".into(),
            );
            continue;
        };
        let argv: Vec<String> = c
            .words
            .iter()
            .map(|w| match w {
                Word::Lit(s) => s.clone(),
                // Keep the raw text: rules about literal targets skip it, and
                // rules like `rm -r /*` look at it.
                Word::Dyn(s) => format!("\u{0}{s}"),
            })
            .collect();
        check_argv(&argv, 0, depth, out, work, extra, found);
        let name = basename(&argv[0]).to_string();
        // Download piped into an interpreter.
        if let Some((p, idx)) = c.pipeline {
            let later_interp = syn.commands.iter().any(|d| {
                matches!(d.pipeline, Some((q, j)) if q == p && j > idx)
                    && innermost_names(&d.words).iter().any(|n| is_interpreter(n))
            });
            if DOWNLOADERS.contains(&name.as_str()) && later_interp {
                push(out, "download piped into an interpreter".into());
            }
        }
        // Interpreter reading a substitution that downloads.
        if innermost_names(&c.words).iter().any(|n| is_interpreter(n)) {
            let downloads = syn.substitutions.iter().any(|(s, e)| {
                *s >= c.start
                    && *e <= c.end
                    && syn.commands.iter().enumerate().any(|(j, d)| {
                        j != i
                            && d.start >= *s
                            && d.end <= *e
                            && d.words
                                .first()
                                .and_then(Word::lit)
                                .is_some_and(|n| DOWNLOADERS.contains(&basename(n)))
                    })
            });
            if downloads {
                push(out, "downloaded code handed to an interpreter".into());
            }
        }
    }
}

fn check_assignment(a: &str, out: &mut Vec<String>) {
    let name = a.split(['=', '+']).next().unwrap_or("");
    if matches!(name, "LD_PRELOAD" | "LD_AUDIT" | "LD_LIBRARY_PATH") {
        push(out, format!("{name} injects code into every program"));
    }
}

/// Program names reachable from a command through wrappers.
fn innermost_names(words: &[Word]) -> Vec<String> {
    let argv: Vec<String> = words
        .iter()
        .map_while(|w| w.lit().map(String::from))
        .collect();
    let mut names = Vec::new();
    let mut todo = vec![(argv, 0usize)];
    while let Some((a, d)) = todo.pop() {
        let Some(first) = a.first() else { continue };
        names.push(basename(first).to_string());
        if d < MAX_WRAPPERS {
            for start in wrapper_inner(&a) {
                todo.push((a[start..].to_vec(), d + 1));
            }
        }
    }
    names
}

/// Option tables of wrappers: (name, short options taking a value, long
/// options taking a value, positionals before the inner command).
const WRAPPERS: &[(&str, &str, &[&str], usize)] = &[
    (
        "sudo",
        "uUgpChDrtT",
        &[
            "user",
            "group",
            "prompt",
            "close-from",
            "host",
            "chdir",
            "role",
            "type",
            "command-timeout",
            "other-user",
        ],
        0,
    ),
    ("doas", "uC", &[], 0),
    ("env", "uCS", &["unset", "chdir", "split-string"], 0),
    ("nice", "n", &["adjustment"], 0),
    ("timeout", "sk", &["signal", "kill-after"], 1),
    ("stdbuf", "ioe", &["input", "output", "error"], 0),
    ("command", "", &[], 0),
    ("builtin", "", &[], 0),
    ("exec", "a", &[], 0),
    ("nohup", "", &[], 0),
    ("time", "fo", &["format", "output"], 0),
    ("setsid", "", &[], 0),
    (
        "xargs",
        "aEeIiLlnPsd",
        &[
            "arg-file",
            "eof",
            "replace",
            "max-lines",
            "max-args",
            "max-procs",
            "max-chars",
            "delimiter",
            "process-slot-var",
        ],
        0,
    ),
    (
        "flock",
        "wEc",
        &["timeout", "conflict-exit-code", "command"],
        1,
    ),
    ("chroot", "", &["userspec", "groups"], 1),
    (
        "nsenter",
        "tSGwrmuinpUCT",
        &["target", "setuid", "setgid", "wd", "root"],
        0,
    ),
    (
        "unshare",
        "",
        &["map-user", "map-group", "setuid", "setgid", "wd", "root"],
        0,
    ),
    ("ionice", "cnp", &["class", "classdata", "pid"], 0),
    ("chrt", "", &[], 1),
    ("taskset", "", &["cpu-list"], 1),
    (
        "strace",
        "oepsuEIbSaXP",
        &["output", "expr", "signal", "user"],
        0,
    ),
    ("ltrace", "oepsuEn", &["output"], 0),
    ("watch", "nqc", &["interval", "chgexit", "equexit"], 0),
    (
        "runuser",
        "ugGsc",
        &["user", "group", "supp-group", "shell", "command"],
        0,
    ),
    (
        "systemd-run",
        "upEMHs",
        &[
            "unit",
            "property",
            "setenv",
            "description",
            "slice",
            "uid",
            "gid",
            "working-directory",
            "on-calendar",
            "on-active",
            "machine",
            "host",
            "service-type",
        ],
        0,
    ),
    ("unbuffer", "", &[], 0),
    ("catchsegv", "", &[], 0),
    ("faketime", "f", &[], 1),
    ("torsocks", "", &[], 0),
    ("proxychains", "f", &[], 0),
    ("valgrind", "", &[], 0),
    ("busybox", "", &[], 0),
    ("sg", "", &[], 1),
];

/// Start indices of the possible inner commands of a wrapper invocation.
/// Unknown options branch both ways (value or not), so a wrong guess about
/// an option's arity never hides a command from the scan.
pub(crate) fn wrapper_inner(argv: &[String]) -> Vec<usize> {
    let name = basename(&argv[0]);
    let mut out = Vec::new();
    if name == "ip" {
        // ip [opts] netns exec NAME CMD
        if let Some(p) = argv.iter().position(|a| a == "exec")
            && p >= 2
            && argv[p - 1].starts_with("netns").then_some(()).is_some()
            && p + 2 <= argv.len()
        {
            out.push(p + 2);
        }
        return out;
    }
    if name == "find" {
        for (i, a) in argv.iter().enumerate() {
            if matches!(a.as_str(), "-exec" | "-execdir" | "-ok" | "-okdir") && i + 1 < argv.len() {
                out.push(i + 1);
            }
        }
        return out;
    }
    let Some(&(_, short_val, long_val, positionals)) = WRAPPERS.iter().find(|(n, ..)| *n == name)
    else {
        return out;
    };
    // Branch states: (index, positionals still to skip)
    let mut states = vec![(1usize, positionals)];
    let mut seen = 0usize;
    while let Some((mut i, mut pos)) = states.pop() {
        seen += 1;
        if seen > 64 {
            break;
        }
        while i < argv.len() {
            let a = &argv[i];
            if a == "--" {
                i += 1;
                continue;
            }
            if let Some(long) = a.strip_prefix("--") {
                let (n, has_eq) = match long.split_once('=') {
                    Some((n, _)) => (n, true),
                    None => (long, false),
                };
                if !has_eq && long_val.contains(&n) {
                    i += 2;
                } else if !has_eq && !long_val.is_empty() {
                    states.push((i + 2, pos));
                    i += 1;
                } else {
                    i += 1;
                }
                continue;
            }
            if a.len() > 1 && a.starts_with('-') {
                let cluster: Vec<char> = a[1..].chars().collect();
                let mut takes = false;
                for (k, ch) in cluster.iter().enumerate() {
                    if short_val.contains(*ch) {
                        takes = k + 1 == cluster.len();
                        break;
                    }
                }
                if takes {
                    i += 2;
                } else {
                    if !a[1..].chars().all(|c| c.is_ascii_digit()) {
                        // Unknown arity: also try "it took the next word".
                        states.push((i + 2, pos));
                    }
                    i += 1;
                }
                continue;
            }
            if matches!(name, "env" | "sudo" | "doas") && a.contains('=') && !a.starts_with('=') {
                i += 1;
                continue;
            }
            if pos > 0 {
                pos -= 1;
                i += 1;
                continue;
            }
            break;
        }
        if i < argv.len() && !out.contains(&i) {
            out.push(i);
        }
    }
    out
}

/// Shell code carried as a string argument (`sh -c STR`, `eval ...`).
fn shell_strings(argv: &[String]) -> Vec<String> {
    let name = basename(&argv[0]);
    let mut out = Vec::new();
    let lits = |s: &[String]| -> String {
        s.iter()
            .map(|a| a.strip_prefix('\u{0}').unwrap_or(a))
            .collect::<Vec<_>>()
            .join(" ")
    };
    match name {
        n if is_shell(n) || matches!(n, "su" | "runuser" | "flock" | "script") => {
            for (i, a) in argv.iter().enumerate().skip(1) {
                let is_c = (a.starts_with('-') && !a.starts_with("--") && a.contains('c'))
                    || a == "--command"
                    || a == "--session-command";
                if is_c && i + 1 < argv.len() {
                    out.push(lits(&argv[i + 1..i + 2]));
                }
                if let Some(v) = a.strip_prefix("--command=") {
                    out.push(v.to_string());
                }
            }
        }
        "eval" | "watch" | "trap" => {
            let rest: Vec<String> = argv[1..]
                .iter()
                .filter(|a| !a.starts_with('-'))
                .cloned()
                .collect();
            if !rest.is_empty() {
                out.push(lits(&rest));
            }
        }
        "ssh" => {
            // ssh [opts] host cmd...: everything after the host is shell code.
            if let Some(h) = argv[1..].iter().position(|a| !a.starts_with('-')) {
                let h = h + 1;
                if h + 1 < argv.len() {
                    out.push(lits(&argv[h + 1..]));
                }
                // Options with values make the "host" ambiguous: scan all tails.
                for k in h + 1..argv.len() {
                    out.push(lits(&argv[k..]));
                }
            }
        }
        "env" => {
            for (i, a) in argv.iter().enumerate() {
                if (a == "-S" || a == "--split-string") && i + 1 < argv.len() {
                    out.push(lits(&argv[i + 1..i + 2]));
                } else if let Some(v) = a
                    .strip_prefix("--split-string=")
                    .or(a.strip_prefix("-S").filter(|v| !v.is_empty()))
                {
                    out.push(v.to_string());
                }
            }
        }
        "alias" => {
            for a in &argv[1..] {
                if let Some((_, v)) = a.split_once('=') {
                    out.push(v.to_string());
                }
            }
        }
        _ => {}
    }
    out
}

fn lit(a: &str) -> Option<&str> {
    (!a.starts_with('\u{0}')).then_some(a)
}

/// Short-option letters and long options present in `args` (rough, for rules).
fn has_flag(args: &[String], short: char, long: &str) -> bool {
    args.iter().any(|a| {
        if let Some(l) = a.strip_prefix("--") {
            !long.is_empty() && (l == long || l.starts_with(&format!("{long}=")))
        } else if let Some(s) = a.strip_prefix('-') {
            !s.is_empty() && s.chars().all(|c| c.is_ascii_alphanumeric()) && s.contains(short)
        } else {
            false
        }
    })
}

fn positionals(args: &[String]) -> Vec<&str> {
    let mut out = Vec::new();
    let mut dd = false;
    for a in args {
        if dd || !a.starts_with('-') || a == "-" {
            out.push(a.as_str());
        } else if a == "--" {
            dd = true;
        }
    }
    out
}

fn check_argv(
    argv: &[String],
    wdepth: usize,
    depth: usize,
    out: &mut Vec<String>,
    work: &mut Vec<(String, usize)>,
    extra: Extra,
    found: &mut Vec<Verdict>,
) {
    let Some(name0) = argv.first().and_then(|a| lit(a)) else {
        push(
            out,
            "command name is not literal (expansion or substitution)".into(),
        );
        return;
    };
    if !name0.is_ascii() {
        push(out, format!("malformed: non-ASCII command name {name0:?}"));
        return;
    }
    if wdepth > MAX_WRAPPERS {
        push(out, "wrappers nested too deeply to verify".into());
        return;
    }
    let name = basename(name0);
    let args = &argv[1..];
    if argv.iter().all(|a| lit(a).is_some()) {
        extra(argv, found);
    }
    if matches!(
        name,
        "env" | "sudo" | "doas" | "systemd-run" | "export" | "declare" | "typeset" | "readonly"
    ) {
        for a in &argv[1..] {
            let a = a.strip_prefix("--setenv=").unwrap_or(a);
            if a.contains('=') {
                check_assignment(a, out);
            }
        }
    }
    for s in shell_strings(argv) {
        work.push((s, depth + 1));
    }
    for start in wrapper_inner(argv) {
        check_argv(&argv[start..], wdepth + 1, depth, out, work, extra, found);
    }
    let pos = positionals(args);
    let lit_pos: Vec<&str> = pos.iter().filter_map(|a| lit(a)).collect();
    let mut forbid = |r: String| push(out, r);
    match name {
        n if n.starts_with("mkfs")
            || matches!(
                n,
                "mke2fs"
                    | "mkswap"
                    | "wipefs"
                    | "shred"
                    | "blkdiscard"
                    | "mkdosfs"
                    | "mkntfs"
                    | "sgdisk"
                    | "zerofree"
            ) =>
        {
            forbid(format!("{n} destroys file systems or data"));
        }
        "dd" => {
            for a in args {
                if let Some(t) = a.strip_prefix("of=") {
                    let t = normalize(t);
                    if is_block_device(&t) || is_protected_file(&t) {
                        forbid(format!("dd writes {t}"));
                    }
                }
            }
        }
        "shutdown" | "reboot" | "poweroff" | "halt" | "kexec" | "killall5" => {
            forbid(format!("{name} stops or restarts the host"));
        }
        "init" | "telinit" => {
            if lit_pos
                .iter()
                .any(|a| matches!(*a, "0" | "6" | "1" | "s" | "S" | "q" | "Q" | "u" | "U"))
            {
                forbid(format!("{name} changes the runlevel"));
            }
        }
        "systemctl" | "loginctl" => {
            const POWER: &[&str] = &[
                "reboot",
                "poweroff",
                "halt",
                "kexec",
                "isolate",
                "emergency",
                "rescue",
                "soft-reboot",
                "default",
                "suspend",
                "hibernate",
                "hybrid-sleep",
                "suspend-then-hibernate",
                "switch-root",
                "exit",
            ];
            if let Some(sub) = systemctl_verb(args)
                && POWER.contains(&sub)
            {
                forbid(format!("{name} {sub} stops or isolates the host"));
            }
        }
        "kill" => {
            // First option is the signal; any later target 1 or -1 hits PID 1 or everything.
            let mut rest = args.iter().peekable();
            if let Some(a) = rest.peek()
                && a.starts_with('-')
                && !matches!(a.as_str(), "--" | "-1")
            {
                let takes = matches!(a.as_str(), "-s" | "-n" | "--signal");
                rest.next();
                if takes {
                    rest.next();
                }
            }
            if rest.any(|a| matches!(a.as_str(), "1" | "-1")) {
                forbid("kill targets PID 1 or every process".into());
            }
        }
        "pkill" | "killall" => {
            if lit_pos
                .iter()
                .any(|a| matches!(*a, "systemd" | "init" | "sshd"))
            {
                forbid(format!("{name} targets init or sshd"));
            }
        }
        "rm" | "chown" | "chmod" | "chgrp" | "chattr" | "setfacl" => {
            let recursive = has_flag(args, 'r', "recursive") || has_flag(args, 'R', "recursive");
            if args.iter().any(|a| a == "--no-preserve-root") {
                forbid(format!("{name} --no-preserve-root"));
            }
            for a in &pos {
                let (t, dynamic) = match lit(a) {
                    Some(t) => (normalize(t), false),
                    None => (normalize(&a[1..].replace(['"', '\''], "")), true),
                };
                let globbed = dynamic && t.ends_with("/*");
                let base = if globbed {
                    normalize(&format!("/{}", &t[..t.len() - 2]))
                } else {
                    t.clone()
                };
                if (recursive || globbed)
                    && (is_critical_dir(&t) || (globbed && is_critical_dir(&base)))
                {
                    forbid(format!("recursive {name} on {t}"));
                }
                if !dynamic
                    && is_protected_file(&t)
                    && (name == "rm" || name == "chmod" || name == "chown")
                {
                    forbid(format!("{name} on {t}"));
                }
            }
            if name == "chmod" {
                for a in &lit_pos {
                    let sym = a.contains('s') && a.contains(['+', '=']) && !a.starts_with('/');
                    let oct = a.len() == 4
                        && a.chars().all(|c| c.is_ascii_digit())
                        && matches!(a.as_bytes()[0], b'2'..=b'7');
                    if sym || oct {
                        forbid(format!("chmod {a} sets setuid/setgid"));
                    }
                }
            }
        }
        "find" => {
            let starts: Vec<String> = args
                .iter()
                .skip_while(|a| matches!(a.as_str(), "-H" | "-L" | "-P"))
                .take_while(|a| !a.starts_with('-') && !matches!(a.as_str(), "!" | "(" | ")"))
                .map(|a| normalize(a.strip_prefix('\u{0}').unwrap_or(a)))
                .collect();
            if args.iter().any(|a| a == "-delete") && starts.iter().any(|s| is_critical_dir(s)) {
                forbid(format!("find -delete under {}", starts.join(" ")));
            }
        }
        "setcap" => forbid("setcap grants capabilities (privilege escalation)".into()),
        "iptables" | "ip6tables" | "iptables-legacy" | "iptables-nft" | "ip6tables-legacy"
        | "ip6tables-nft" | "ebtables" | "arptables" => {
            if has_flag(args, 'F', "flush")
                || has_flag(args, 'X', "delete-chain") && has_flag(args, 'F', "flush")
            {
                forbid(format!("{name} flushes firewall rules"));
            }
        }
        "nft" => {
            if lit_pos
                .windows(2)
                .any(|w| w[0] == "flush" && w[1] == "ruleset")
                || lit_pos.first() == Some(&"flush")
            {
                forbid("nft flush drops firewall rules".into());
            }
        }
        "ufw" => {
            if lit_pos
                .first()
                .is_some_and(|a| matches!(*a, "reset" | "disable"))
            {
                forbid("ufw reset/disable drops the firewall".into());
            }
        }
        "passwd" | "chpasswd" | "visudo" | "vipw" | "vigr" | "newusers" | "chsh" | "su"
        | "sudoedit" | "pwconv" | "grpconv" => {
            forbid(format!("{name} changes accounts or privileges"));
        }
        "useradd" | "usermod" | "adduser" | "gpasswd" | "groupmod" => {
            let uid0 = args
                .windows(2)
                .any(|w| matches!(w[0].as_str(), "-u" | "--uid" | "-g" | "--gid") && w[1] == "0")
                || args
                    .iter()
                    .any(|a| matches!(a.as_str(), "-u0" | "--uid=0" | "-g0" | "--gid=0"));
            let non_unique = has_flag(args, 'o', "non-unique");
            let admin = lit_pos
                .iter()
                .chain(args.iter().map(|a| a.as_str()).collect::<Vec<_>>().iter())
                .flat_map(|a| a.split(','))
                .any(|g| {
                    matches!(
                        g,
                        "sudo"
                            | "wheel"
                            | "root"
                            | "admin"
                            | "adm"
                            | "docker"
                            | "lxd"
                            | "disk"
                            | "shadow"
                    )
                });
            if uid0
                || non_unique
                || (admin && name != "useradd")
                || (admin && has_flag(args, 'G', "groups"))
            {
                forbid(format!("{name} grants root or admin rights"));
            }
        }
        "cp" | "mv" | "tee" | "install" | "ln" | "truncate" | "sed" | "rsync" | "scp" => {
            let targets: Vec<&str> = match name {
                "cp" | "install" | "ln" | "rsync" | "scp" => {
                    lit_pos.last().copied().into_iter().collect()
                }
                "sed" if !has_flag(args, 'i', "in-place") => Vec::new(),
                _ => lit_pos.clone(),
            };
            let mut targets: Vec<String> = targets.iter().map(|t| normalize(t)).collect();
            for (i, a) in args.iter().enumerate() {
                if matches!(a.as_str(), "-t" | "--target-directory") && i + 1 < args.len() {
                    targets.push(normalize(&args[i + 1]));
                }
            }
            for t in targets {
                if is_protected_file(&t) || is_block_device(&t) {
                    forbid(format!("{name} writes {t}"));
                }
            }
        }
        "crontab" => {
            if has_flag(args, 'r', "") {
                forbid("crontab -r deletes the crontab".into());
            }
        }
        "docker" | "podman" => {
            let subs: Vec<&str> = lit_pos.iter().take(2).copied().collect();
            if subs.first() == Some(&"system")
                && subs.get(1) == Some(&"prune")
                && (has_flag(args, 'a', "all") || args.iter().any(|a| a == "--volumes"))
            {
                forbid(format!("{name} system prune deletes images and volumes"));
            }
            if subs.first() == Some(&"run") || subs.first() == Some(&"create") {
                let bad = args.iter().any(|a| {
                    a == "--privileged"
                        || a.starts_with("--pid=host")
                        || a.starts_with("-v/:")
                        || a.starts_with("--volume=/:")
                }) || args
                    .windows(2)
                    .any(|w| (w[0] == "-v" || w[0] == "--volume") && w[1].starts_with("/:"));
                if bad {
                    forbid(format!("{name} run with host root access"));
                }
            }
        }
        "nsenter" => {
            let pid1 = args
                .windows(2)
                .any(|w| (w[0] == "-t" || w[0] == "--target") && w[1] == "1")
                || args.iter().any(|a| a == "-t1" || a == "--target=1");
            if pid1 {
                forbid("nsenter into PID 1's namespaces".into());
            }
        }
        "sudo" | "doas" => {
            let shell_opt = args
                .iter()
                .take_while(|a| a.starts_with('-') && *a != "--")
                .any(|a| {
                    matches!(a.as_str(), "--shell" | "--login" | "--edit")
                        || (!a.starts_with("--")
                            && a[1..].chars().any(|c| matches!(c, 's' | 'i' | 'e')))
                });
            if shell_opt {
                forbid(format!("{name} -s/-i/-e opens a root shell or editor"));
            }
            for start in wrapper_inner(argv) {
                if let Some(inner) = argv.get(start).and_then(|a| lit(a)) {
                    let b = basename(inner);
                    if is_shell(b) || b == "su" {
                        forbid(format!("{name} {b} opens a root shell"));
                    }
                }
            }
        }
        _ => {}
    }
}

/// The first non-option word of a systemctl-like command line.
pub(crate) fn systemctl_verb(args: &[String]) -> Option<&str> {
    const VAL: &[&str] = &[
        "-t",
        "-p",
        "-n",
        "-o",
        "-H",
        "-M",
        "-s",
        "--type",
        "--property",
        "--lines",
        "--output",
        "--host",
        "--machine",
        "--signal",
        "--state",
        "--kill-whom",
        "--kill-value",
        "--root",
        "--job-mode",
        "--what",
        "--timestamp",
        "--boot-loader-entry",
        "--reboot-argument",
        "--message",
        "--drop-in",
        "--image",
        "--when",
        "--check-inhibitors",
        "--preset-mode",
        "--image-policy",
        "--legend",
        "--marked",
    ];
    let mut i = 0;
    while i < args.len() {
        let a = args[i].as_str();
        if a == "--" {
            return args.get(i + 1).map(String::as_str);
        }
        if a.starts_with('-') {
            i += if VAL.contains(&a) { 2 } else { 1 };
            continue;
        }
        return Some(a);
    }
    None
}
