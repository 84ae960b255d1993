//! Classification: ties hygiene, parsing, the plan, specs and the forbidden
//! scan together. Strictest wins.

use crate::file::{Operands, PolicyFile, UnknownDefault};
use crate::paths::{Cwd, basename};
use crate::specs::{self, Ctx, Level, Pos, Spec, Verdict, v};
use crate::{
    BUILTIN_REVISION, Connector, Decision, HostFs, Pipeline, Plan, Policy, PolicyError, Redirect,
    Risk, Stage, hygiene, lex, rules, tree,
};

/// Programs known to change state or run arbitrary code: covered by a rule
/// (approval), not unknown.
const APPROVAL_PROGRAMS: &[&str] = &[
    "rm",
    "mv",
    "cp",
    "chown",
    "chmod",
    "chgrp",
    "touch",
    "mkdir",
    "rmdir",
    "ln",
    "tee",
    "truncate",
    "kill",
    "pkill",
    "killall",
    "apt",
    "apt-get",
    "aptitude",
    "dpkg",
    "yum",
    "dnf",
    "rpm",
    "snap",
    "pip",
    "pip3",
    "npm",
    "useradd",
    "usermod",
    "userdel",
    "groupadd",
    "groupdel",
    "iptables",
    "ip6tables",
    "nft",
    "ufw",
    "firewall-cmd",
    "logrotate",
    "service",
    "git",
    "wget",
    "scp",
    "rsync",
    "ssh",
    "sftp",
    "perl",
    "python",
    "python2",
    "python3",
    "ruby",
    "node",
    "php",
    "lua",
    "sh",
    "bash",
    "dash",
    "zsh",
    "ksh",
    "watch",
    "xargs",
    "crontab",
    "mount",
    "umount",
    "swapoff",
    "swapon",
    "export",
    "unset",
    "alias",
    "source",
    ".",
    "eval",
    "exec",
    "set",
    "hostnamectl",
    "timedatectl",
    "openssl",
    "gzip",
    "gunzip",
    "zip",
    "unzip",
    "make",
    "more",
    "less",
    "man",
    "vi",
    "vim",
    "nano",
    "emacs",
    "screen",
    "tmux",
    "nohup",
    "at",
    "batch",
    "systemd-run",
    "chroot",
    "nsenter",
    "unshare",
    "setsid",
    "flock",
    "script",
    "modprobe",
    "insmod",
    "rmmod",
    "tc",
    "ethtool",
    "ifconfig",
    "route",
    "hwclock",
    "fsck",
    "parted",
    "fdisk",
    "mdadm",
    "cryptsetup",
    "install",
    "dd",
    "sync",
    "renice",
    "time",
    "strace",
    "ltrace",
    "gdb",
    "nc",
    "ncat",
    "socat",
    "telnet",
    "ftp",
    "lsof",
    "tcpdump",
    "env",
    "nice",
    "timeout",
    "stdbuf",
    "command",
    "sudo",
    "cd",
    "printf",
    "test",
    "[",
    "read",
    "trap",
    "ulimit",
    "umask",
    "kubectl",
    "helm",
    "podman",
    "docker-compose",
    "ansible",
    "terraform",
    "certbot",
    "passwd",
];

/// A command pattern from a policy file: program plus words/flags that must
/// all be present (any order).
#[derive(Debug, Clone)]
pub(crate) struct Pattern {
    text: String,
    program: String,
    words: Vec<String>,
}

impl Pattern {
    fn parse(text: &str, source: &str) -> Result<Pattern, PolicyError> {
        let stages = lex::plan(text).map_err(|e| invalid(source, format!("{text:?}: {e}")))?;
        let argv = match stages.as_slice() {
            [p] if p.stages.len() == 1 => p.stages[0].argv.clone(),
            _ => {
                return Err(invalid(
                    source,
                    format!("{text:?}: must be one simple command"),
                ));
            }
        };
        Ok(Pattern {
            text: text.to_string(),
            program: basename(&argv[0]).to_string(),
            words: argv[1..].to_vec(),
        })
    }

    fn matches(&self, argv: &[String]) -> bool {
        if basename(&argv[0]) != self.program {
            return false;
        }
        let args = &argv[1..];
        self.words.iter().all(|w| {
            if let Some(long) = w.strip_prefix("--") {
                args.iter().any(|a| {
                    a.strip_prefix("--").is_some_and(|x| {
                        x == long
                            || x.starts_with(&format!("{long}="))
                            || (x.len() >= 3 && long.starts_with(x.split('=').next().unwrap_or(x)))
                    })
                })
            } else if let Some(short) = w.strip_prefix('-').filter(|s| s.chars().count() == 1) {
                args.iter().any(|a| {
                    a.len() > 1
                        && a.starts_with('-')
                        && !a.starts_with("--")
                        && a[1..].contains(short)
                })
            } else if w.starts_with('/') {
                args.iter()
                    .any(|a| crate::paths::normalize(a) == crate::paths::normalize(w))
            } else {
                args.contains(w)
            }
        })
    }
}

fn invalid(source: &str, message: String) -> PolicyError {
    PolicyError::Invalid {
        source_name: source.to_string(),
        message,
    }
}

/// Builds the effective policy. `base` leaves out the file's tightenings
/// (used to check spec examples).
pub(crate) fn build(file: PolicyFile, base: bool) -> Result<Policy, PolicyError> {
    let mut auto_allow = Vec::new();
    for text in &file.auto_allow {
        let p = Pattern::parse(text, "auto_allow")?;
        let mut argv = vec![p.program.clone()];
        argv.extend(p.words);
        auto_allow.push(argv);
    }
    let mut specs = specs::builtin();
    for rule in &file.allow {
        let src = format!("allow {}", rule.program);
        let opts = specs::parse_opts(&rule.flags).map_err(|e| invalid(&src, e))?;
        if rule.program.is_empty() || rule.program.contains('/') {
            return Err(invalid(&src, "program must be a bare name".into()));
        }
        let spec = match specs.iter_mut().find(|s| s.name == rule.program) {
            Some(s) => s,
            None => {
                let pos = match rule.operands {
                    Operands::Paths => Pos::Paths,
                    Operands::Any => Pos::Any,
                    Operands::None => Pos::None,
                };
                specs.push(Spec::from_file(&rule.program, Vec::new(), pos));
                specs.last_mut().expect("just pushed")
            }
        };
        spec.add_opts(opts);
        spec.add_subs(&rule.subcommands, Level::Auto);
    }
    let mut approval_rules = Vec::new();
    let mut forbid_rules = Vec::new();
    let mut sensitive: Vec<String> = specs::SENSITIVE.iter().map(|s| s.to_string()).collect();
    if !base {
        for t in &file.require_approval {
            approval_rules.push(Pattern::parse(t, "require_approval")?);
        }
        for t in &file.forbid {
            forbid_rules.push(Pattern::parse(t, "forbid")?);
        }
        sensitive.extend(file.sensitive_paths.iter().cloned());
        for (name, o) in &file.targets {
            for t in o.require_approval.iter().chain(&o.forbid) {
                Pattern::parse(t, &format!("targets.{name}"))?;
            }
        }
    }
    let digest = {
        let canon = serde_json::to_vec(&(BUILTIN_REVISION, &file)).expect("serializable");
        let d = ring::digest::digest(&ring::digest::SHA256, &canon);
        format!("sha256:{}", hex::encode(d.as_ref()))
    };
    Ok(Policy {
        file,
        auto_allow,
        specs,
        approval_rules,
        forbid_rules,
        sensitive,
        digest,
    })
}

impl Policy {
    /// Checks the examples of the policy file's `allow:` entries.
    pub(crate) fn check_file_examples(&self) -> Result<(), PolicyError> {
        let mut errs = Vec::new();
        for r in &self.file.allow {
            for e in &r.should_match {
                let d = self.classify(e);
                if d.risk != Risk::AutoAllowed {
                    errs.push(format!(
                        "allow {}: example {e:?} should be auto_allowed but is {} ({})",
                        r.program,
                        d.risk.as_str(),
                        d.reasons.join("; ")
                    ));
                }
            }
            for e in &r.should_not_match {
                if self.classify(e).risk == Risk::AutoAllowed {
                    errs.push(format!(
                        "allow {}: counter-example {e:?} must not be auto_allowed",
                        r.program
                    ));
                }
            }
        }
        if errs.is_empty() {
            Ok(())
        } else {
            Err(invalid("policy examples", errs.join("\n")))
        }
    }

    /// Checks every built-in spec's examples.
    pub(crate) fn check_examples(&self) -> Result<(), PolicyError> {
        let mut errs: Vec<String> = Vec::new();
        for s in &self.specs {
            for e in &s.examples_ok {
                let d = self.classify(e);
                if d.risk != Risk::AutoAllowed {
                    errs.push(format!(
                        "spec {}: example {e:?} should be auto_allowed but is {} ({})",
                        s.name,
                        d.risk.as_str(),
                        d.reasons.join("; ")
                    ));
                }
            }
            for e in &s.examples_not {
                let d = self.classify(e);
                if d.risk == Risk::AutoAllowed {
                    errs.push(format!(
                        "spec {}: counter-example {e:?} must not be auto_allowed",
                        s.name
                    ));
                }
            }
        }
        if errs.is_empty() {
            Ok(())
        } else {
            Err(invalid("spec examples", errs.join("\n")))
        }
    }
}

/// True for a bare program name or an absolute path in a trusted directory.
fn trusted_name(name: &str) -> bool {
    let bare = |n: &str| {
        !n.is_empty()
            && n.chars()
                .next()
                .is_some_and(|c| c.is_ascii_alphanumeric() || c == '_')
            && n.chars()
                .all(|c| c.is_ascii_alphanumeric() || "._+-".contains(c))
    };
    if bare(name) || name == "[" {
        return true;
    }
    ["/usr/bin/", "/usr/sbin/", "/bin/", "/sbin/"]
        .iter()
        .any(|d| name.strip_prefix(d).is_some_and(bare))
}

struct Run<'a> {
    policy: &'a Policy,
    sensitive: std::borrow::Cow<'a, [String]>,
    approval: Vec<&'a Pattern>,
    forbid: Vec<&'a Pattern>,
    extra_approval: Vec<Pattern>,
    extra_forbid: Vec<Pattern>,
}

pub(crate) fn classify(
    policy: &Policy,
    target: Option<&str>,
    command: &str,
    fs: Option<&dyn HostFs>,
) -> Decision {
    if let Some(reason) = hygiene(command) {
        return Decision {
            risk: Risk::Forbidden,
            reasons: vec![reason],
            plan: Plan::default(),
        };
    }
    let mut unknown_default = policy.unknown_default();
    let mut run = Run {
        policy,
        sensitive: std::borrow::Cow::Borrowed(&policy.sensitive),
        approval: policy.approval_rules.iter().collect(),
        forbid: policy.forbid_rules.iter().collect(),
        extra_approval: Vec::new(),
        extra_forbid: Vec::new(),
    };
    if let Some(o) = target.and_then(|t| policy.file.targets.get(t)) {
        if o.unknown_default == Some(UnknownDefault::Reject) {
            unknown_default = UnknownDefault::Reject;
        }
        if !o.sensitive_paths.is_empty() {
            run.sensitive
                .to_mut()
                .extend(o.sensitive_paths.iter().cloned());
        }
        // Validated at load time.
        run.extra_approval = o
            .require_approval
            .iter()
            .filter_map(|t| Pattern::parse(t, "").ok())
            .collect();
        run.extra_forbid = o
            .forbid
            .iter()
            .filter_map(|t| Pattern::parse(t, "").ok())
            .collect();
    }
    let mut found: Vec<Verdict> = Vec::new();
    let syn = tree::parse(command);
    let extra = |argv: &[String], out: &mut Vec<Verdict>| run.file_rules(argv, out);
    rules::scan(&syn, &extra, &mut found);

    if let Some(e) = &syn.error {
        found.push(v(
            Level::Unknown,
            format!("unknown: could not parse the command ({e})"),
        ));
    }
    for f in &syn.features {
        found.push(v(
            Level::Approval,
            format!("shell syntax outside the auto grammar: {f}"),
        ));
    }
    let tree_plain = syn.error.is_none() && !syn.too_deep && syn.features.is_empty();
    let lexed = lex::plan(command);
    if let Ok(pipes) = &lexed {
        // The lexer follows bash where tree-sitter may not (line
        // continuations inside words): scan what it saw too.
        rules::scan(&tree::from_plan(pipes), &extra, &mut found);
    }
    let mut plan = Plan {
        pipelines: Vec::new(),
        shell: true,
    };
    match (&lexed, tree_plain) {
        (Ok(pipes), true) if agrees(&syn, pipes) => {
            plan = Plan {
                pipelines: pipes.clone(),
                shell: false,
            };
        }
        (Ok(_), true) => found.push(v(
            Level::Approval,
            "the tree parser and the word lexer disagree about this command",
        )),
        (Err(e), true) => found.push(v(Level::Approval, format!("not in the auto grammar: {e}"))),
        _ => {}
    }
    if plan.shell {
        // Still judge every literal command so unknown programs follow
        // unknown_default even inside shell syntax.
        let unknown = Cwd::Unknown;
        let ctx = Ctx {
            cwd: &unknown,
            sensitive: &run.sensitive,
            fs,
            privileged: false,
        };
        for c in &syn.commands {
            let argv: Vec<String> = c
                .words
                .iter()
                .map_while(|w| w.lit().map(String::from))
                .collect();
            if argv.is_empty() {
                continue;
            }
            if argv.len() == c.words.len() {
                let mut stage = Stage {
                    argv,
                    privileged: false,
                    redirects: Vec::new(),
                };
                run.stage(&mut stage, &ctx, &mut found);
            } else if !known_program(policy, basename(&argv[0])) {
                found.push(v(
                    Level::Unknown,
                    format!("unknown: no rule for {:?}", argv[0]),
                ));
            }
        }
    } else {
        // Where the executor may be when each pipeline runs: `ok` when the
        // last status was 0, `failed` when it was not (`None`: impossible).
        // A failed `cd` leaves the directory as it was.
        let mut ok: Option<Cwd> = Some(Cwd::start());
        let mut failed: Option<Cwd> = None;
        for p in &mut plan.pipelines {
            let (runs, skipped_ok, skipped_failed) = match p.connector {
                Connector::Seq => (either(&ok, &failed), None, None),
                Connector::And => (ok.clone(), None, failed.clone()),
                Connector::Or => (failed.clone(), ok.clone(), None),
            };
            let Some(here) = runs else {
                // Never runs (`a || b` after something that cannot fail).
                continue;
            };
            if p.stages.len() == 1 && p.stages[0].argv[0] == "cd" {
                let s = &p.stages[0];
                let landed = match s.argv.as_slice() {
                    [_, dir] if !dir.starts_with('-') && s.redirects.is_empty() => {
                        found.push(v(
                            Level::Auto,
                            "cd changes the executor's working directory",
                        ));
                        here.cd(dir)
                    }
                    _ => {
                        found.push(v(
                            Level::Approval,
                            "cd with options, no directory or redirects",
                        ));
                        Cwd::Unknown
                    }
                };
                // Even a `cd` that succeeded may have followed a symbolic
                // link (`cd /x` with /x -> /): relative paths after it are
                // also judged from where it started.
                ok = either(&Some(landed.union(&here)), &skipped_ok);
                failed = either(&Some(here), &skipped_failed);
                continue;
            }
            let ctx = Ctx {
                cwd: &here,
                sensitive: &run.sensitive,
                fs,
                privileged: false,
            };
            for s in &mut p.stages {
                run.stage(s, &ctx, &mut found);
            }
            ok = either(&Some(here.clone()), &skipped_ok);
            failed = either(&Some(here), &skipped_failed);
        }
    }
    decide(found, plan, unknown_default)
}

/// Every directory of both (`None`: no directory is possible).
fn either(a: &Option<Cwd>, b: &Option<Cwd>) -> Option<Cwd> {
    match (a, b) {
        (Some(a), Some(b)) => Some(a.union(b)),
        (Some(x), None) | (None, Some(x)) => Some(x.clone()),
        (None, None) => None,
    }
}

fn known_program(policy: &Policy, name: &str) -> bool {
    policy.specs.iter().any(|s| s.name == name) || APPROVAL_PROGRAMS.contains(&name)
}

/// The tree and the lexer must see the same commands, words and redirects.
fn agrees(syn: &tree::Syntax, pipes: &[Pipeline]) -> bool {
    let lexed: Vec<(&Vec<String>, &Vec<Redirect>)> = pipes
        .iter()
        .flat_map(|p| p.stages.iter().map(|s| (&s.argv, &s.redirects)))
        .collect();
    if lexed.len() != syn.commands.len() {
        return false;
    }
    let mut redirs: Vec<Vec<Redirect>> = vec![Vec::new(); syn.commands.len()];
    for r in &syn.redirects {
        // A redirect belongs to the command it sits in, else to the closest
        // command before it (bash attaches `a && b > f` to b).
        let Some(idx) = syn.commands.iter().rposition(|c| c.start <= r.start) else {
            return false;
        };
        match r.harmless() {
            Some(h) => redirs[idx].push(h),
            None => return false,
        }
    }
    syn.commands
        .iter()
        .zip(&lexed)
        .zip(&redirs)
        .all(|((c, (argv, lr)), tr)| {
            c.assignments.is_empty()
                && c.words.len() == argv.len()
                && c.words
                    .iter()
                    .zip(argv.iter())
                    .all(|(w, a)| w.lit() == Some(a.as_str()))
                && tr == *lr
        })
}

impl Run<'_> {
    fn file_rules(&self, argv: &[String], out: &mut Vec<Verdict>) {
        for p in self.forbid.iter().copied().chain(&self.extra_forbid) {
            if p.matches(argv) {
                out.push(v(
                    Level::Forbidden,
                    format!("forbidden by policy rule {:?}", p.text),
                ));
            }
        }
        for p in self.approval.iter().copied().chain(&self.extra_approval) {
            if p.matches(argv) {
                out.push(v(
                    Level::Approval,
                    format!("policy rule {:?} requires approval", p.text),
                ));
            }
        }
    }

    /// Judges one stage; rewrites `sudo [-n] CMD` into the inner command
    /// with `privileged`.
    fn stage(&self, stage: &mut Stage, ctx: &Ctx, out: &mut Vec<Verdict>) {
        for r in &stage.redirects {
            if let Redirect::StdinFromFile(f) = r
                && let Some(why) = ctx.sensitive(f, false)
            {
                out.push(v(Level::Approval, format!("stdin redirect {why}")));
            }
        }
        if self.policy.auto_allow.contains(&stage.argv) {
            out.push(v(
                Level::Auto,
                format!("{:?} is an allowlisted command", stage.argv.join(" ")),
            ));
            return;
        }
        let name = stage.argv[0].clone();
        if basename(&name) == "sudo" && trusted_name(&name) {
            let args = &stage.argv[1..];
            let mut i = 0;
            while i < args.len() && matches!(args[i].as_str(), "-n" | "--non-interactive") {
                i += 1;
            }
            if i < args.len() && args[i] == "--" {
                i += 1;
            }
            let listing = !args.is_empty()
                && args
                    .iter()
                    .all(|a| matches!(a.as_str(), "-l" | "-n" | "-ln" | "-nl" | "--list"));
            if listing {
                out.push(v(Level::Auto, "sudo -l lists the agent's own privileges"));
                return;
            }
            if i < args.len() && !args[i].starts_with('-') && basename(&args[i]) != "sudo" {
                stage.argv = args[i..].to_vec();
                stage.privileged = true;
                let ctx = Ctx {
                    privileged: true,
                    ..*ctx
                };
                // The executor opens a privileged stage's `<` as root: a privileged read.
                for r in &stage.redirects {
                    if let Redirect::StdinFromFile(f) = r
                        && let Some(why) = ctx.sensitive(f, false)
                    {
                        out.push(v(Level::Approval, format!("stdin redirect {why}")));
                    }
                }
                // Where it runs: a directory another account can change is one it can
                // swap for a link between this check and the `chdir`.
                if let (Some(fs), Cwd::Known(dirs)) = (ctx.fs, ctx.cwd) {
                    for d in dirs {
                        if let Some(why) =
                            fs.writable_dir(&format!("{}/.", d.trim_end_matches('/')))
                        {
                            out.push(v(
                                Level::Approval,
                                format!("a privileged stage in {d}, which another account can redirect ({why})"),
                            ));
                        }
                    }
                }
                self.program(&stage.argv, &ctx, 0, out);
                return;
            }
            out.push(v(
                Level::Approval,
                "sudo options other than -n (user, shell, environment)",
            ));
            return;
        }
        self.program(&stage.argv, ctx, 0, out);
    }

    /// Judges argv by its program: wrappers by their inner command, then specs.
    fn program(&self, argv: &[String], ctx: &Ctx, depth: usize, out: &mut Vec<Verdict>) {
        let name = &argv[0];
        if !trusted_name(name) {
            out.push(v(
                Level::Approval,
                format!(
                    "program {name:?} is not a bare name or a path in /usr/bin /usr/sbin /bin /sbin"
                ),
            ));
            return;
        }
        let base = basename(name);
        if depth > 4 {
            out.push(v(Level::Approval, "wrappers nested too deeply"));
            return;
        }
        if let Some(inner) = wrapper(base, &argv[1..]) {
            match inner {
                Ok(0) => out.push(v(
                    Level::Auto,
                    format!("{base} without a command is read-only"),
                )),
                Ok(k) => self.program(&argv[1 + k - 1..], ctx, depth + 1, out),
                Err(why) => out.push(v(Level::Approval, why)),
            }
            return;
        }
        let Some(spec) = self.policy.specs.iter().find(|s| s.name == base) else {
            if base == "cd" {
                out.push(v(
                    Level::Approval,
                    "cd inside a pipeline or after other commands in it",
                ));
            } else if APPROVAL_PROGRAMS.contains(&base) {
                out.push(v(
                    Level::Approval,
                    format!("{base} changes state or runs other code"),
                ));
            } else if rules::is_shell(base) {
                out.push(v(Level::Approval, format!("{base} runs shell code")));
            } else {
                out.push(v(Level::Unknown, format!("unknown: no rule for {base:?}")));
            }
            return;
        };
        let before = out.len();
        specs::check(spec, argv, ctx, out);
        if out.len() == before {
            out.push(v(Level::Auto, format!("{base}: read-only per its spec")));
        }
    }
}

/// Transparent wrappers kept in argv. `Some(Ok(k))`: the inner command
/// starts at args[k-1] (k = 0: no inner command); `Some(Err)`: options we
/// do not vouch for; `None`: not a wrapper.
fn wrapper(name: &str, args: &[String]) -> Option<Result<usize, String>> {
    let dur = |s: &str| {
        let t = s.trim_end_matches(['s', 'm', 'h', 'd']);
        !t.is_empty() && t.len() + 1 >= s.len() && t.chars().all(|c| c.is_ascii_digit() || c == '.')
    };
    let inner_at = |i: usize| -> Result<usize, String> {
        match args.get(i) {
            Some(a) if !a.starts_with('-') && !a.contains('=') => Ok(i + 1),
            Some(a) => Err(format!("{name}: unexpected {a:?}")),
            None => Err(format!("{name} without a command")),
        }
    };
    Some(match name {
        "timeout" => {
            let mut i = 0;
            loop {
                match args.get(i).map(String::as_str) {
                    Some("--preserve-status" | "--foreground" | "-v" | "--verbose") => i += 1,
                    Some("-s" | "-k") if args.get(i + 1).is_some() => i += 2,
                    Some(a) if a.starts_with("--signal=") || a.starts_with("--kill-after=") => {
                        i += 1
                    }
                    Some(a) if a.starts_with("-s") && a.len() > 2 => i += 1,
                    _ => break,
                }
            }
            if i > 0 && args.get(i - 1).is_some_and(|a| a == "-k") {
                return Some(Err("timeout -k value".into()));
            }
            match args.get(i) {
                Some(d) if dur(d) => inner_at(i + 1),
                _ => Err("timeout without a plain duration".into()),
            }
        }
        "nice" => match args.first().map(String::as_str) {
            None => Ok(0),
            Some("-n") => match args.get(1) {
                Some(n)
                    if n.trim_start_matches('-')
                        .chars()
                        .all(|c| c.is_ascii_digit()) =>
                {
                    inner_at(2)
                }
                _ => Err("nice -n without a number".into()),
            },
            Some(a)
                if a.starts_with('-')
                    && a[1..].chars().all(|c| c.is_ascii_digit())
                    && a.len() > 1 =>
            {
                inner_at(1)
            }
            Some(a) if a.starts_with("--adjustment=") => inner_at(1),
            Some(_) => inner_at(0),
        },
        "env" => {
            if args.is_empty() {
                Ok(0)
            } else if args[0] == "--" {
                inner_at(1)
            } else {
                inner_at(0).map_err(|_| {
                    "env with options or assignments changes the environment".to_string()
                })
            }
        }
        "stdbuf" => {
            let mut i = 0;
            while let Some(a) = args.get(i) {
                let ok = ["-i", "-o", "-e", "--input=", "--output=", "--error="]
                    .iter()
                    .any(|p| a.starts_with(p) && a.len() > p.len());
                if !ok {
                    break;
                }
                i += 1;
            }
            if i == 0 {
                Err("stdbuf needs attached mode options (-oL)".into())
            } else {
                inner_at(i)
            }
        }
        "command" => match args.first().map(String::as_str) {
            Some("-v" | "-V") if args.len() == 2 => Ok(0),
            _ => inner_at(0),
        },
        _ => return None,
    })
}

fn decide(found: Vec<Verdict>, plan: Plan, unknown_default: UnknownDefault) -> Decision {
    let map = |l: Level| match l {
        Level::Auto => Risk::AutoAllowed,
        Level::Approval => Risk::ApprovalRequired,
        Level::Unknown => match unknown_default {
            UnknownDefault::ApprovalRequired => Risk::ApprovalRequired,
            UnknownDefault::Reject => Risk::Rejected,
        },
        Level::Forbidden => Risk::Forbidden,
    };
    let risk = found
        .iter()
        .map(|f| map(f.level))
        .max()
        .unwrap_or(Risk::ApprovalRequired);
    let mut reasons: Vec<String> = Vec::new();
    for f in found.iter().filter(|f| map(f.level) == risk) {
        let r = if risk == Risk::Rejected {
            format!(
                "{}; unknown commands are rejected (unknown_default: reject)",
                f.reason
            )
        } else {
            f.reason.clone()
        };
        if !reasons.contains(&r) {
            reasons.push(r);
        }
    }
    if reasons.is_empty() {
        reasons.push("nothing to run".into());
    }
    let plan = if risk == Risk::AutoAllowed {
        plan
    } else if plan.pipelines.is_empty() {
        Plan {
            pipelines: Vec::new(),
            shell: true,
        }
    } else {
        plan
    };
    Decision {
        risk,
        reasons,
        plan,
    }
}
