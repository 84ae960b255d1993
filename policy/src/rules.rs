//! The forbidden scan: independent of the auto grammar and the specs, it
//! looks at every command at any depth (substitutions, control flow,
//! here-doc bodies, shell strings handed to `sh -c`, `eval`, `find -exec`,
//! wrappers ...) and names the ones that must never run.

use crate::paths::{
    EXEC_CWD, basename, dealias, is_block_device, is_critical_dir, is_home_dir, is_protected_file,
    normalize, resolve,
};
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
    let cwds = scan_cwds(syn);
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
        check_argv(&argv, 0, depth, &cwds, out, work, extra, found);
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

#[allow(clippy::too_many_arguments)]
fn check_argv(
    argv: &[String],
    wdepth: usize,
    depth: usize,
    cwds: &[String],
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
        check_argv(
            &argv[start..],
            wdepth + 1,
            depth,
            cwds,
            out,
            work,
            extra,
            found,
        );
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
            const TARGETS: &[&str] = &[
                "reboot",
                "poweroff",
                "halt",
                "kexec",
                "rescue",
                "emergency",
                "suspend",
                "hibernate",
                "hybrid-sleep",
                "suspend-then-hibernate",
                "ctrl-alt-del",
                "soft-reboot",
                "shutdown",
                "exit",
                "sleep",
            ];
            let verb = systemctl_verb(args);
            if matches!(
                verb,
                Some("start" | "restart" | "reload-or-restart" | "try-restart" | "isolate")
            ) {
                for u in lit_pos.iter().skip(1) {
                    let unit = u.strip_suffix(".target").unwrap_or(u);
                    if TARGETS.contains(&unit) {
                        forbid(format!(
                            "{name} {} {u} stops or isolates the host",
                            verb.unwrap_or("")
                        ));
                    }
                }
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
            // A pattern that matches every process, or every root process.
            if lit_pos
                .iter()
                .any(|a| matches!(*a, "." | ".*" | ".+" | "^" | "$" | "" | "^.*" | "^.*$"))
            {
                forbid(format!("{name} with a pattern that matches every process"));
            }
            if opt_values(args, 'u', "euid")
                .iter()
                .chain(opt_values(args, 'U', "uid").iter())
                .any(|u| u.split(',').any(|u| u == "root" || u == "0"))
            {
                forbid(format!("{name} signals every root process"));
            }
        }
        "rm" | "chown" | "chmod" | "chgrp" | "chattr" | "setfacl" | "unlink" => {
            let recursive = has_flag(args, 'r', "recursive") || has_flag(args, 'R', "recursive");
            if args.iter().any(|a| long_is(a, "no-preserve-root", 4)) {
                forbid(format!("{name} --no-preserve-root"));
            }
            for a in &pos {
                for t in targets_of(a, cwds) {
                    if (recursive || t.globbed || name == "rm" && t.dynamic_home)
                        && (is_critical_dir(&t.path) || (name == "rm" && is_home_dir(&t.path)))
                    {
                        forbid(format!("recursive {name} on {}", t.shown));
                    }
                    if !t.dynamic && is_protected_file(&t.path) {
                        forbid(format!("{name} on {}", t.path));
                    }
                    if !t.dynamic
                        && t.path == "/"
                        && matches!(name, "chmod" | "chown" | "chgrp" | "setfacl")
                    {
                        forbid(format!("{name} on / breaks every program"));
                    }
                }
            }
            if name == "chmod" {
                for a in &lit_pos {
                    let sym = a.contains('s') && a.contains(['+', '=']) && !a.starts_with('/');
                    let oct = a.len() >= 4
                        && a.chars().all(|c| c.is_ascii_digit() && c < '8')
                        && matches!(a.as_bytes()[a.len() - 4], b'2'..=b'7');
                    if sym || oct {
                        forbid(format!("chmod {a} sets setuid/setgid"));
                    }
                }
                if args.iter().any(|a| {
                    a.strip_prefix("--reference=")
                        .is_some_and(|r| is_setuid_program(&normalize(r)))
                }) || args
                    .windows(2)
                    .any(|w| w[0] == "--reference" && is_setuid_program(&normalize(&w[1])))
                {
                    forbid("chmod --reference copies a setuid program's mode".into());
                }
            }
        }
        "install" => {
            let modes = opt_values(args, 'm', "mode");
            if modes.iter().any(|m| mode_sets_id(m)) {
                forbid(format!(
                    "install -m {} creates a setuid/setgid file",
                    modes.join(",")
                ));
            }
            if let Some(t) = lit_pos.last()
                && (is_protected_file(&normalize(t)) || is_block_device(&normalize(t)))
            {
                forbid(format!("install writes {}", normalize(t)));
            }
        }
        "find" => {
            let starts: Vec<String> = args
                .iter()
                .skip_while(|a| matches!(a.as_str(), "-H" | "-L" | "-P"))
                .take_while(|a| !a.starts_with('-') && !matches!(a.as_str(), "!" | "(" | ")"))
                .flat_map(|a| targets_of(a, cwds))
                .map(|t| t.path)
                .collect();
            let critical = starts.iter().any(|s| is_critical_dir(s) || is_home_dir(s));
            let deletes = args.iter().any(|a| a == "-delete")
                || args.windows(2).any(|w| {
                    matches!(w[0].as_str(), "-exec" | "-execdir" | "-ok" | "-okdir")
                        && lit(&w[1]).is_some_and(|p| {
                            matches!(basename(p), "rm" | "shred" | "unlink" | "rmdir")
                        })
                });
            if deletes && critical {
                forbid(format!(
                    "find deletes everything under {}",
                    starts.join(" ")
                ));
            }
        }
        "rsync" => {
            let deletes = args.iter().any(|a| {
                a.strip_prefix("--del")
                    .is_some_and(|r| r.is_empty() || "ete".starts_with(r) || r.starts_with("ete"))
                    || a == "--remove-source-files"
            });
            if deletes
                && let Some(dest) = lit_pos.last()
                && !dest.contains(':')
                && targets_of(dest, cwds)
                    .iter()
                    .any(|t| is_critical_dir(&t.path) || is_home_dir(&t.path))
            {
                forbid(format!("rsync --delete into {dest} deletes the tree"));
            }
            if let Some(t) = lit_pos.last()
                && (is_protected_file(&normalize(t)) || is_block_device(&normalize(t)))
            {
                forbid(format!("rsync writes {}", normalize(t)));
            }
        }
        "mv" => {
            let (sources, dest) = match lit_pos.split_last() {
                Some((d, s)) => (s.to_vec(), Some(*d)),
                None => (Vec::new(), None),
            };
            for s in &sources {
                for t in targets_of(s, cwds) {
                    if is_critical_dir(&t.path) || is_home_dir(&t.path) {
                        forbid(format!("mv {} moves a system directory away", t.path));
                    }
                    if is_protected_file(&t.path) {
                        forbid(format!("mv {} removes a protected file", t.path));
                    }
                }
            }
            if let Some(d) = dest {
                let t = normalize(d);
                if is_protected_file(&t) || is_block_device(&t) {
                    forbid(format!("mv writes {t}"));
                }
            }
        }
        "setcap" => forbid("setcap grants capabilities (privilege escalation)".into()),
        "iptables" | "ip6tables" | "iptables-legacy" | "iptables-nft" | "ip6tables-legacy"
        | "ip6tables-nft" | "ebtables" | "arptables" => {
            if has_flag(args, 'F', "flush") {
                forbid(format!("{name} flushes firewall rules"));
            }
            if let Some(why) = iptables_lockout(args) {
                forbid(format!("{name} {why}"));
            }
        }
        "nft" => {
            let words: Vec<String> = lit_pos
                .iter()
                .flat_map(|a| a.split([' ', ';', '{', '}', '\t']))
                .filter(|w| !w.is_empty())
                .map(str::to_ascii_lowercase)
                .collect();
            let has = |w: &str| words.iter().any(|x| x == w);
            if words.first().is_some_and(|w| w == "flush")
                || words
                    .windows(2)
                    .any(|w| w[0] == "flush" && w[1] == "ruleset")
            {
                forbid("nft flush drops firewall rules".into());
            }
            if words
                .windows(2)
                .any(|w| matches!(w[0].as_str(), "delete" | "destroy") && w[1] == "table")
            {
                forbid("nft delete table drops a whole firewall table".into());
            }
            if words
                .windows(2)
                .any(|w| w[0] == "policy" && matches!(w[1].as_str(), "drop" | "reject"))
                && (has("input") || has("output"))
            {
                forbid("nft sets a default-deny policy on input/output (lock-out)".into());
            }
            let matchers = [
                "saddr", "daddr", "dport", "sport", "iif", "iifname", "oif", "oifname", "ct",
                "meta", "tcp", "udp", "ip", "ip6", "th", "mark",
            ];
            if matches!(words.first().map(String::as_str), Some("add" | "insert"))
                && words.get(1).is_some_and(|w| w == "rule")
                && words
                    .iter()
                    .any(|w| matches!(w.as_str(), "input" | "output"))
                && words
                    .last()
                    .is_some_and(|w| matches!(w.as_str(), "drop" | "reject"))
                && !words.iter().any(|w| matchers.contains(&w.as_str()))
            {
                forbid("nft drops every packet on input/output (lock-out)".into());
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
        "firewall-cmd" => {
            if args.iter().any(|a| a == "--panic-on") {
                forbid("firewall-cmd --panic-on drops all traffic (lock-out)".into());
            }
            for z in opt_values(args, '\0', "set-default-zone") {
                if matches!(z.as_str(), "drop" | "block") {
                    forbid(format!(
                        "firewall-cmd --set-default-zone={z} drops all traffic (lock-out)"
                    ));
                }
            }
        }
        "passwd" | "chpasswd" | "visudo" | "vipw" | "vigr" | "newusers" | "chsh" | "su"
        | "sudoedit" | "pwconv" | "grpconv" | "pkexec" | "doas" | "run0" => {
            forbid(format!("{name} changes accounts or runs commands as root"));
        }
        "machinectl" => {
            if lit_pos
                .first()
                .is_some_and(|a| matches!(*a, "shell" | "login"))
            {
                forbid("machinectl shell/login opens a root shell".into());
            }
        }
        "runuser" => {
            let users = opt_values(args, 'u', "user");
            let root = users.iter().any(|u| u == "root" || u == "0")
                || lit_pos.first().is_some_and(|u| *u == "root")
                || (users.is_empty() && lit_pos.is_empty());
            if root {
                forbid("runuser as root runs a root shell or command".into());
            }
        }
        "userdel" | "deluser" | "luserdel" | "groupdel" | "delgroup" => {
            let group_cmd = matches!(name, "groupdel" | "delgroup");
            for a in &lit_pos {
                if (!group_cmd && is_system_user(a)) || (group_cmd && is_admin_group(a)) {
                    forbid(format!("{name} {a} deletes a system account or group"));
                }
            }
            if args
                .iter()
                .any(|a| a == "--remove-all-files" || a == "--system")
            {
                forbid(format!(
                    "{name} --remove-all-files/--system deletes system accounts or every file of a user"
                ));
            }
            if name == "deluser"
                && args.iter().any(|a| a == "--remove-home")
                && lit_pos
                    .iter()
                    .any(|u| is_system_user(u) || is_admin_user(u))
            {
                forbid("deluser --remove-home of an administrator".into());
            }
            if name == "deluser" && lit_pos.len() >= 2 && is_admin_group(lit_pos[1]) {
                forbid(format!(
                    "deluser {} {} removes an administrator's rights (lock-out)",
                    lit_pos[0], lit_pos[1]
                ));
            }
            if name == "deluser" && lit_pos.iter().any(|u| is_admin_user(u)) {
                forbid("deluser of the default administrator account".into());
            }
        }
        "chage" => {
            let sets = args.iter().any(|a| {
                !matches!(
                    a.as_str(),
                    "-l" | "--list" | "-i" | "--iso8601" | "-h" | "--help"
                ) && a.starts_with('-')
            });
            if sets && lit_pos.iter().any(|u| is_system_user(u)) {
                forbid("chage on a system account (can lock root out)".into());
            }
        }
        "useradd" | "usermod" | "adduser" | "addgroup" | "gpasswd" | "groupmod" => {
            let uid0 = opt_values(args, 'u', "uid")
                .iter()
                .chain(opt_values(args, 'g', "gid").iter())
                .any(|v| v == "0");
            let non_unique = has_flag(args, 'o', "non-unique");
            let groups: Vec<String> = opt_values(args, 'G', "groups")
                .iter()
                .chain(
                    opt_values(args, 'a', "add")
                        .iter()
                        .filter(|_| name == "gpasswd"),
                )
                .chain(opt_values(args, 'g', "gid").iter())
                .flat_map(|g| g.split(',').map(String::from).collect::<Vec<_>>())
                .collect();
            let admin_group = groups.iter().any(|g| is_admin_group(g))
                || (matches!(name, "adduser" | "addgroup" | "gpasswd")
                    && lit_pos.len() >= 2
                    && is_admin_group(lit_pos[lit_pos.len() - 1]));
            if uid0 || non_unique || admin_group {
                forbid(format!("{name} grants root or admin rights"));
            }
            if name == "usermod"
                && lit_pos.contains(&"root")
                && args.iter().any(|a| {
                    matches!(
                        a.as_str(),
                        "-L" | "--lock" | "-e" | "--expiredate" | "-s" | "--shell"
                    ) || a.starts_with("--expiredate=")
                        || a.starts_with("--shell=")
                })
            {
                forbid("usermod locks or changes the root account".into());
            }
        }
        "cp" | "tee" | "ln" | "truncate" | "sed" | "scp" | "sort" | "uniq" | "curl" | "wget"
        | "perl" | "ed" | "ex" | "vi" | "vim" | "nvim" | "nano" | "emacs" | "pico" | "joe"
        | "mcedit" | "patch" | "tar" | "journalctl" | "ss" | "strace" | "ltrace" | "tcpdump"
        | "script" => {
            let mut targets: Vec<String> = match name {
                "cp" | "ln" | "scp" => lit_pos.last().map(|t| t.to_string()).into_iter().collect(),
                "sed" if !has_flag(args, 'i', "in-place") => Vec::new(),
                "perl"
                    if !args.iter().any(|a| {
                        a.starts_with("-i")
                            || (a.starts_with('-') && !a.starts_with("--") && a.contains('i'))
                    }) =>
                {
                    Vec::new()
                }
                "uniq" => lit_pos.get(1).map(|t| t.to_string()).into_iter().collect(),
                "sort" | "curl" | "wget" | "tar" | "journalctl" | "ss" | "strace" | "ltrace"
                | "tcpdump" => Vec::new(),
                "script" => lit_pos.first().map(|t| t.to_string()).into_iter().collect(),
                _ => lit_pos.iter().map(|t| t.to_string()).collect(),
            };
            match name {
                "sort" => targets.extend(opt_values(args, 'o', "output")),
                "curl" => {
                    targets.extend(opt_values(args, 'o', "output"));
                    targets.extend(opt_values(args, 'D', "dump-header"));
                    targets.extend(opt_values(args, 'c', "cookie-jar"));
                    for long in [
                        "trace",
                        "trace-ascii",
                        "stderr",
                        "libcurl",
                        "etag-save",
                        "hsts",
                        "alt-svc",
                    ] {
                        targets.extend(opt_values(args, '\0', long));
                    }
                    for w in opt_values(args, 'w', "write-out") {
                        let mut rest = w.as_str();
                        while let Some(k) = rest.find("%output{") {
                            let after = &rest[k + 8..];
                            let end = after.find('}').unwrap_or(after.len());
                            targets.push(after[..end].trim_start_matches('>').to_string());
                            rest = &after[end..];
                        }
                    }
                }
                "journalctl" => targets.extend(opt_values(args, '\0', "cursor-file")),
                "ss" => targets.extend(opt_values(args, 'D', "diag")),
                "strace" | "ltrace" => targets.extend(opt_values(args, 'o', "output")),
                "tcpdump" => targets.extend(opt_values(args, 'w', "")),
                "wget" => targets.extend(opt_values(args, 'O', "output-document")),
                "tar" => {
                    let extract = args.iter().any(|a| {
                        a == "-x"
                            || long_is(a, "extract", 2)
                            || long_is(a, "get", 2)
                            || (a.starts_with('-') && !a.starts_with("--") && a.contains('x'))
                    }) || args
                        .first()
                        .is_some_and(|a| !a.starts_with('-') && a.contains('x'));
                    if extract {
                        let dirs = opt_values(args, 'C', "directory");
                        if dirs.iter().any(|d| is_critical_dir(&normalize(d))) {
                            forbid(format!("tar extracts over {}", dirs.join(" ")));
                        }
                        for m in &lit_pos {
                            for d in dirs.iter().map(String::as_str).chain(std::iter::once("/")) {
                                let p = normalize(&format!("{d}/{m}"));
                                if is_protected_file(&p) {
                                    forbid(format!("tar extracts over {p}"));
                                }
                            }
                        }
                    }
                }
                _ => {}
            }
            for (i, a) in args.iter().enumerate() {
                if matches!(a.as_str(), "-t" | "--target-directory")
                    && i + 1 < args.len()
                    && name != "tar"
                {
                    targets.push(args[i + 1].clone());
                }
            }
            for t in targets {
                let t = normalize(&t);
                if is_protected_file(&t) || is_block_device(&t) {
                    forbid(format!("{name} writes {t}"));
                }
            }
        }
        "crontab" => {
            if has_flag(args, 'r', "") {
                forbid("crontab -r deletes the crontab".into());
            }
            let only_list = args.iter().any(|a| a == "-l")
                && lit_pos
                    .iter()
                    .all(|p| args.windows(2).any(|w| w[0] == "-u" && w[1] == *p));
            if !only_list && !lit_pos.is_empty() {
                forbid("crontab FILE installs a crontab (persistence)".into());
            }
        }
        "docker" | "podman" | "nerdctl" | "ctr" => {
            let subs: Vec<&str> = lit_pos.iter().take(2).copied().collect();
            if subs.first() == Some(&"system")
                && subs.get(1) == Some(&"prune")
                && (has_flag(args, 'a', "all") || args.iter().any(|a| a == "--volumes"))
            {
                forbid(format!("{name} system prune deletes images and volumes"));
            }
            if subs.first() == Some(&"volume")
                && subs.get(1) == Some(&"prune")
                && has_flag(args, 'a', "all")
            {
                forbid(format!(
                    "{name} volume prune --all deletes every volume's data"
                ));
            }
            let runs = matches!(subs.first(), Some(&("run" | "create")))
                || (subs.first() == Some(&"container")
                    && matches!(subs.get(1), Some(&("run" | "create"))));
            if runs && let Some(why) = container_host_access(args) {
                forbid(format!("{name} run {why}"));
            }
        }
        "nsenter" => {
            let pid1 = opt_values(args, 't', "target").iter().any(|t| t == "1")
                || args.iter().any(|a| a.contains("/proc/1/"));
            if pid1 {
                forbid("nsenter into PID 1's namespaces".into());
            }
        }
        "busctl" | "dbus-send" | "gdbus" | "qdbus" => {
            let text = args.join(" ").to_ascii_lowercase();
            let power = [
                "poweroff",
                "reboot",
                "halt",
                "kexec",
                "suspend",
                "hibernate",
                "softreboot",
            ]
            .iter()
            .any(|p| {
                text.contains(&format!("manager.{p}"))
                    || text.contains(&format!(" {p} "))
                    || text.ends_with(&format!(" {p}"))
                    || text.contains(&format!("manager {p}"))
            });
            if power && (text.contains("login1") || text.contains("systemd1")) {
                forbid(format!(
                    "{name} asks systemd to power off or restart the host"
                ));
            }
        }
        "parted" => {
            if lit_pos
                .iter()
                .any(|a| matches!(*a, "mklabel" | "mktable" | "rm" | "resizepart" | "mkpart"))
            {
                forbid("parted rewrites a partition table".into());
            }
        }
        "sfdisk" => {
            if !args.iter().any(|a| {
                matches!(
                    a.as_str(),
                    "-l" | "--list"
                        | "-s"
                        | "--show-size"
                        | "-d"
                        | "--dump"
                        | "-J"
                        | "--json"
                        | "-V"
                        | "--verify"
                        | "--help"
                        | "--version"
                )
            }) {
                forbid("sfdisk rewrites a partition table".into());
            }
        }
        "pvremove" | "vgremove" | "lvremove" => {
            forbid(format!("{name} destroys LVM volumes"));
        }
        "mdadm" => {
            if args.iter().any(|a| long_is(a, "zero-superblock", 3)) {
                forbid("mdadm --zero-superblock destroys a RAID member".into());
            }
        }
        "cryptsetup" => {
            if lit_pos.iter().any(|a| {
                matches!(
                    a.to_ascii_lowercase().as_str(),
                    "luksformat" | "lukserase" | "erase" | "lukskillslot" | "reencrypt"
                )
            }) {
                forbid("cryptsetup erases or reformats an encrypted volume".into());
            }
        }
        "zpool" | "zfs" => {
            if lit_pos
                .first()
                .is_some_and(|a| matches!(*a, "destroy" | "labelclear"))
            {
                forbid(format!("{name} destroy deletes a pool or dataset"));
            }
        }
        "dmsetup" => {
            if lit_pos
                .first()
                .is_some_and(|a| matches!(*a, "remove_all" | "wipe_table"))
            {
                forbid("dmsetup remove_all tears down every mapped device".into());
            }
        }
        "nvme" => {
            if lit_pos
                .first()
                .is_some_and(|a| matches!(*a, "format" | "sanitize"))
            {
                forbid("nvme format/sanitize erases a disk".into());
            }
        }
        "hdparm" => {
            if args.iter().any(|a| {
                a.starts_with("--security-erase")
                    || a.starts_with("--trim-sector")
                    || a.starts_with("--write-sector")
                    || a.starts_with("--fwdownload")
                    || a == "--dco-restore"
            }) {
                forbid("hdparm erases or rewrites a disk".into());
            }
        }
        "apt" | "apt-get" | "aptitude" | "dpkg" | "rpm" | "yum" | "dnf" | "zypper" => {
            let removes = args.iter().any(|a| {
                matches!(
                    a.as_str(),
                    "remove"
                        | "purge"
                        | "autoremove"
                        | "erase"
                        | "-r"
                        | "-P"
                        | "-e"
                        | "--remove"
                        | "--purge"
                        | "--erase"
                )
            });
            let forced = args.iter().any(|a| {
                a.contains("remove-essential")
                    || a == "--force-all"
                    || a == "--nodeps"
                    || a.contains("force-depends")
            });
            let essential = lit_pos.iter().any(|p| is_essential_package(p));
            if removes && (essential || forced && name != "yum") {
                forbid(format!("{name} removes an essential package"));
            }
        }
        "sudo" => {
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
            if let Some(why) = root_shell(argv) {
                forbid(format!("{name}: {why}"));
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

/// Every directory a relative path may be resolved in: the executor's
/// starting directory and, after each literal `cd`, where it may land.
fn scan_cwds(syn: &Syntax) -> Vec<String> {
    let mut cwds = vec![EXEC_CWD.to_string()];
    for c in &syn.commands {
        if let [name, dir] = c.words.as_slice()
            && name.lit() == Some("cd")
            && let Some(dir) = dir.lit()
        {
            for k in 0..cwds.len() {
                let r = resolve(Some(&cwds[k]), dir);
                if !cwds.contains(&r) && cwds.len() < 32 {
                    cwds.push(r);
                }
            }
        }
    }
    cwds
}

/// One path an operand may name, for the destroyer rules.
struct Target {
    /// Absolute, normalised, kernel aliases followed.
    path: String,
    /// As shown in the reason.
    shown: String,
    /// Not a literal word (expansion, glob, `~`).
    dynamic: bool,
    /// A glob that can match a whole directory's entries or a top-level name.
    globbed: bool,
    /// `~`, `~user`, `$HOME`.
    dynamic_home: bool,
}

/// The paths a (possibly dynamic, `\0`-prefixed) operand may name, resolved
/// against every possible working directory.
fn targets_of(a: &str, cwds: &[String]) -> Vec<Target> {
    let (raw, dynamic) = match lit(a) {
        Some(t) => (t.to_string(), false),
        None => (a[1..].replace(['"', '\''], ""), true),
    };
    if dynamic {
        let home = raw.trim_end_matches('/');
        let is_home = (home.starts_with('~')
            && home[1..]
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || "_.-".contains(c)))
            || matches!(home, "$HOME" | "${HOME}");
        if is_home {
            return vec![Target {
                path: "/home/~".into(),
                shown: raw.clone(),
                dynamic,
                globbed: false,
                dynamic_home: true,
            }];
        }
    }
    let bases: Vec<String> = if raw.starts_with('/') {
        vec![String::new()]
    } else {
        cwds.to_vec()
    };
    let mut out = Vec::new();
    for b in bases {
        let full = if b.is_empty() {
            normalize(&raw)
        } else {
            resolve(Some(&b), &raw)
        };
        let full = dealias(&full);
        if dynamic {
            // A glob in the last component: `/*`, `/e*`, `/home/*`, `*`.
            let (dir, last) = full.rsplit_once('/').unwrap_or(("", full.as_str()));
            let dir = if dir.is_empty() { "/" } else { dir };
            let braces = last.contains('{') && (last.contains(',') || last.contains(".."));
            let glob = last.contains(['*', '?', '[']) || braces;
            let whole = matches!(last, "*" | ".*" | "*/" | "{*,.*}" | "[!.]*" | "?*");
            if glob && (whole || dir == "/") {
                out.push(Target {
                    path: normalize(dir),
                    shown: full.clone(),
                    dynamic,
                    globbed: true,
                    dynamic_home: false,
                });
                if dir == "/" && !whole {
                    // `/e*` may name `/etc` itself.
                    out.push(Target {
                        path: "/".into(),
                        shown: full.clone(),
                        dynamic,
                        globbed: true,
                        dynamic_home: false,
                    });
                }
                continue;
            }
        }
        out.push(Target {
            path: full.clone(),
            shown: full,
            dynamic,
            globbed: false,
            dynamic_home: false,
        });
    }
    out
}

/// `--name` or an unambiguous GNU abbreviation of it at least `min` long.
fn long_is(a: &str, name: &str, min: usize) -> bool {
    let Some(l) = a.strip_prefix("--") else {
        return false;
    };
    let l = l.split('=').next().unwrap_or(l);
    l.len() >= min.min(name.len()) && name.starts_with(l)
}

/// Values of an option given as `-xV`, `-x V`, `-abxV` (x last in a
/// cluster), `--long=V`, `--long V` or an abbreviation of `--long`.
fn opt_values(args: &[String], short: char, long: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut i = 0;
    while i < args.len() {
        let a = &args[i];
        i += 1;
        if a == "--" {
            break;
        }
        if let Some(l) = a.strip_prefix("--") {
            if long.is_empty() {
                continue;
            }
            let (n, v) = match l.split_once('=') {
                Some((n, v)) => (n, Some(v.to_string())),
                None => (l, None),
            };
            if !n.is_empty() && n.len() >= 3.min(long.len()) && long.starts_with(n) {
                match v {
                    Some(v) => out.push(v),
                    None => {
                        if let Some(v) = args.get(i) {
                            out.push(v.clone());
                            i += 1;
                        }
                    }
                }
            }
            continue;
        }
        if short != '\0'
            && let Some(body) = a.strip_prefix('-')
            && let Some(p) = body.find(short)
            && body[..p].chars().all(|c| c.is_ascii_alphabetic())
        {
            let rest = &body[p + short.len_utf8()..];
            if !rest.is_empty() {
                out.push(rest.to_string());
            } else if let Some(v) = args.get(i) {
                out.push(v.clone());
                i += 1;
            }
        }
    }
    out
}

/// A mode (`4755`, `u+s`, `g=s`) that sets the setuid or setgid bit.
fn mode_sets_id(m: &str) -> bool {
    let oct = m.len() >= 4
        && m.chars().all(|c| c.is_ascii_digit() && c < '8')
        && matches!(m.as_bytes()[m.len() - 4], b'2'..=b'7');
    oct || (m.contains('s') && m.contains(['+', '=']))
}

/// Programs that are setuid root on a stock system.
fn is_setuid_program(norm: &str) -> bool {
    matches!(
        basename(norm),
        "sudo"
            | "su"
            | "pkexec"
            | "passwd"
            | "chsh"
            | "chfn"
            | "newgrp"
            | "gpasswd"
            | "mount"
            | "umount"
            | "doas"
            | "fusermount"
            | "fusermount3"
    )
}

/// Accounts the system or the agent depends on.
fn is_system_user(u: &str) -> bool {
    matches!(
        u,
        "root"
            | "daemon"
            | "bin"
            | "sys"
            | "sync"
            | "games"
            | "man"
            | "lp"
            | "mail"
            | "news"
            | "uucp"
            | "proxy"
            | "www-data"
            | "backup"
            | "list"
            | "irc"
            | "gnats"
            | "nobody"
            | "messagebus"
            | "sshd"
            | "syslog"
            | "polkitd"
            | "dbus"
            | "postfix"
            | "ntp"
            | "chrony"
            | "_chrony"
            | "nginx"
            | "mysql"
            | "postgres"
            | "redis"
            | "uuidd"
            | "tss"
            | "tcpdump"
            | "landscape"
            | "pollinate"
            | "lxd"
            | "dnsmasq"
            | "avahi"
            | "rtkit"
            | "usbmux"
            | "adm"
            | "operator"
            | "halt"
            | "shutdown"
            | "ftp"
    ) || u.starts_with("systemd-")
        || u.starts_with('_')
        || u.starts_with("aiops")
        || is_admin_user(u)
}

/// The default administrator accounts of cloud images.
fn is_admin_user(u: &str) -> bool {
    matches!(
        u,
        "ubuntu"
            | "debian"
            | "admin"
            | "ec2-user"
            | "centos"
            | "fedora"
            | "cloud-user"
            | "azureuser"
            | "opc"
            | "rocky"
            | "almalinux"
            | "core"
    )
}

/// Groups that grant root or read every secret.
fn is_admin_group(g: &str) -> bool {
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
            | "sudoers"
            | "kvm"
            | "libvirt"
    )
}

/// Packages whose removal leaves the host unbootable or unmanageable.
fn is_essential_package(p: &str) -> bool {
    let p = p.split([':', '=']).next().unwrap_or(p);
    matches!(
        p,
        "libc6"
            | "libc-bin"
            | "glibc"
            | "glibc-common"
            | "systemd"
            | "systemd-sysv"
            | "init"
            | "coreutils"
            | "bash"
            | "dash"
            | "dpkg"
            | "apt"
            | "rpm"
            | "yum"
            | "dnf"
            | "base-files"
            | "base-passwd"
            | "login"
            | "passwd"
            | "util-linux"
            | "sudo"
            | "openssh-server"
            | "libpam-modules"
            | "libpam0g"
            | "pam"
            | "grub-pc"
            | "grub-efi-amd64"
            | "grub2"
            | "grub-common"
            | "sed"
            | "grep"
            | "tar"
            | "gzip"
            | "findutils"
            | "perl-base"
            | "debianutils"
            | "diffutils"
            | "hostname"
            | "mount"
            | "ncurses-base"
            | "sysvinit-utils"
            | "libsystemd0"
            | "udev"
            | "kmod"
            | "linux-image-generic"
            | "kernel"
            | "kernel-core"
            | "filesystem"
            | "setup"
            | "libselinux1"
            | "zlib1g"
            | "libgcc-s1"
            | "libstdc++6"
    ) || p.starts_with("linux-image")
}

/// `Some(why)` when an iptables command line denies all traffic in or out
/// (a default-deny policy or a DROP/REJECT rule without a source,
/// destination or port other than ssh's).
fn iptables_lockout(args: &[String]) -> Option<String> {
    let chains_policy = opt_values(args, 'P', "policy");
    let target_after_p = args
        .windows(3)
        .find(|w| matches!(w[0].as_str(), "-P" | "--policy") || long_is(&w[0], "policy", 3))
        .map(|w| w[2].to_ascii_uppercase());
    if let Some(chain) = chains_policy.first()
        && matches!(chain.as_str(), "INPUT" | "OUTPUT")
        && matches!(target_after_p.as_deref(), Some("DROP" | "REJECT"))
    {
        return Some(format!("sets a default-deny policy on {chain} (lock-out)"));
    }
    let mut chains = opt_values(args, 'A', "append");
    chains.extend(opt_values(args, 'I', "insert"));
    let in_out = chains
        .iter()
        .any(|c| matches!(c.as_str(), "INPUT" | "OUTPUT"));
    let jumps = opt_values(args, 'j', "jump");
    let denies = jumps
        .iter()
        .any(|j| matches!(j.to_ascii_uppercase().as_str(), "DROP" | "REJECT"));
    if !(in_out && denies) {
        return None;
    }
    let scoped = args.iter().any(|a| {
        matches!(
            a.as_str(),
            "-s" | "--source"
                | "-d"
                | "--destination"
                | "--src-range"
                | "--dst-range"
                | "-i"
                | "--in-interface"
                | "-o"
                | "--out-interface"
                | "--uid-owner"
                | "--mac-source"
                | "--match-set"
                | "--state"
                | "--ctstate"
        ) || a.starts_with("-s") && a.len() > 2 && !a.starts_with("-sport")
            || a.starts_with("--source=")
            || a.starts_with("--destination=")
    });
    let ports: Vec<String> = args
        .windows(2)
        .filter(|w| {
            matches!(
                w[0].as_str(),
                "--dport" | "--dports" | "--destination-port" | "--destination-ports"
            )
        })
        .map(|w| w[1].clone())
        .collect();
    let ssh = ports.is_empty()
        || ports.iter().any(|p| {
            p.split(',').any(|p| {
                p == "22"
                    || p == "ssh"
                    || p.split_once(':').is_some_and(|(a, b)| {
                        a.parse::<u32>().unwrap_or(0) <= 22
                            && b.parse::<u32>().unwrap_or(65535) >= 22
                    })
            })
        });
    if !scoped && ssh {
        return Some("drops all traffic (or ssh) in or out (lock-out)".into());
    }
    None
}

/// `Some(why)` when `docker run` options give the container the host.
fn container_host_access(args: &[String]) -> Option<String> {
    let mut vols = opt_values(args, 'v', "volume");
    vols.extend(opt_values(args, '\0', "mount"));
    for v in &vols {
        let src = if v.contains("src=") || v.contains("source=") {
            v.split(',')
                .find_map(|kv| {
                    kv.strip_prefix("src=")
                        .or_else(|| kv.strip_prefix("source="))
                })
                .unwrap_or("")
                .to_string()
        } else {
            v.split(':').next().unwrap_or("").to_string()
        };
        if src.starts_with('/') {
            let n = normalize(&src);
            if is_critical_dir(&n)
                || is_home_dir(&n)
                || n.ends_with("docker.sock")
                || n.ends_with("containerd.sock")
                || n.ends_with("podman.sock")
                || is_protected_file(&n)
                || is_block_device(&n)
            {
                return Some(format!("mounts the host's {n}"));
            }
        }
    }
    for a in args {
        let a = a.as_str();
        if a == "--privileged" {
            return Some("--privileged".into());
        }
        for host in [
            "--pid=host",
            "--userns=host",
            "--ipc=host",
            "--uts=host",
            "--cgroupns=host",
        ] {
            if a == host {
                return Some(host.into());
            }
        }
    }
    let mut caps = opt_values(args, '\0', "cap-add");
    caps.retain(|c| {
        let c = c.to_ascii_uppercase();
        let c = c.strip_prefix("CAP_").unwrap_or(&c).to_string();
        matches!(
            c.as_str(),
            "ALL"
                | "SYS_ADMIN"
                | "SYS_MODULE"
                | "SYS_PTRACE"
                | "SYS_RAWIO"
                | "DAC_READ_SEARCH"
                | "DAC_OVERRIDE"
                | "SYS_BOOT"
                | "MKNOD"
                | "BPF"
                | "SYS_CHROOT"
                | "SETUID"
        )
    });
    if let Some(c) = caps.first() {
        return Some(format!("--cap-add {c}"));
    }
    for o in opt_values(args, '\0', "security-opt") {
        if o.contains("unconfined") || o.contains("no-new-privileges=false") {
            return Some(format!("--security-opt {o}"));
        }
    }
    for d in opt_values(args, '\0', "device") {
        let src = normalize(d.split(':').next().unwrap_or(""));
        if is_block_device(&src) || src == "/dev" {
            return Some(format!("--device {src}"));
        }
    }
    None
}

/// Programs that run a shell command given in one of their arguments.
const SHELL_CARRIERS: &[&str] = &[
    "awk",
    "gawk",
    "mawk",
    "nawk",
    "vim",
    "vi",
    "nvim",
    "ex",
    "view",
    "tar",
    "less",
    "more",
    "man",
    "git",
    "rsync",
    "zip",
    "ssh",
    "scp",
    "tcpdump",
    "dmesg",
    "journalctl",
    "systemctl",
];

/// A word that names a shell: `/bin/sh`, `exec=/bin/bash`, `:!sh`.
fn mentions_shell(word: &str) -> bool {
    word.split(|c: char| !(c.is_ascii_alphanumeric() || "/._-".contains(c)))
        .any(|t| is_shell(basename(t)) && (t.contains('/') || t.len() < word.len()))
}

/// `Some(why)` when a privileged command line reaches a shell: through any
/// wrapper (`env`, `nice`, `timeout`, `setsid`, `find -exec`, `xargs` ...),
/// `script` without `-c`, or a shell named inside a program that runs it.
fn root_shell(argv: &[String]) -> Option<String> {
    let mut todo = vec![(argv.to_vec(), 0usize)];
    let mut seen = 0;
    while let Some((a, d)) = todo.pop() {
        seen += 1;
        if seen > 64 || d > MAX_WRAPPERS {
            return Some("wrappers nested too deeply to verify".into());
        }
        let Some(first) = a.first().and_then(|w| lit(w)) else {
            continue;
        };
        let b = basename(first);
        if d > 0 && (is_shell(b) || b == "su") {
            return Some(format!("{b} opens a root shell"));
        }
        if d > 0 && b == "script" && !a.iter().any(|w| w == "-c" || w.starts_with("--command")) {
            return Some("script without -c opens a root shell".into());
        }
        if d > 0
            && SHELL_CARRIERS.contains(&b)
            && a[1..]
                .iter()
                .any(|w| mentions_shell(w.strip_prefix('\u{0}').unwrap_or(w)))
        {
            return Some(format!("{b} runs a root shell"));
        }
        for start in wrapper_inner(&a) {
            todo.push((a[start..].to_vec(), d + 1));
        }
    }
    None
}
