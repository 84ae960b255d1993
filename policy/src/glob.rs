//! Glob operands without a shell: `file /home/admin/deploy/*.sh`, `du -sh /var/log/*`.
//!
//! The controller cannot see the target's file system, so it classifies a *template*: each
//! glob word with its glob characters replaced by `x` (a path in the same directories). The
//! agent and the root executor expand the words against the real file system ([`expand`],
//! with a directory lister they pass in: this module does no I/O) and classify the
//! expanded argv, sensitive-path checks included; only that decision counts there.
//!
//! Supported: unquoted words whose glob characters (`*`, `?`, `[...]`) are not quoted or
//! escaped, in a command otherwise in the auto grammar. A word with no match is passed as
//! written, as bash does (`ps -ef | grep [n]ginx`): the target classifies that literal
//! argument. Names starting with `.` match only a pattern component that starts with `.`.

use crate::{Decision, EXEC_CWD, HostFs, Policy, Risk};

/// Byte ranges of the glob words of `command`; `None` when it has none, or when a glob
/// word also has quotes, escapes or expansions (left to the shell path).
fn glob_words(command: &str) -> Option<Vec<(usize, usize)>> {
    let b = command.as_bytes();
    let mut out = Vec::new();
    let mut i = 0;
    let sep = |c: u8| {
        c.is_ascii_whitespace() || matches!(c, b'|' | b'&' | b';' | b'<' | b'>' | b'(' | b')')
    };
    while i < b.len() {
        if sep(b[i]) {
            i += 1;
            continue;
        }
        let start = i;
        let (mut quoted, mut glob) = (false, false);
        let mut q: Option<u8> = None;
        while i < b.len() && (q.is_some() || !sep(b[i])) {
            match (q, b[i]) {
                (None, b'\'' | b'"') => {
                    q = Some(b[i]);
                    quoted = true;
                }
                (Some(c), x) if c == x => q = None,
                (None, b'\\' | b'$' | b'`') => quoted = true,
                (None, b'*' | b'?' | b'[') => glob = true,
                _ => {}
            }
            i += 1;
        }
        if glob {
            if quoted {
                return None;
            }
            out.push((start, i));
        }
    }
    (!out.is_empty()).then_some(out)
}

fn quote(s: &str) -> String {
    format!("'{}'", s.replace('\'', r"'\''"))
}

/// The command with each glob word's glob characters replaced by `x` (`[...]` by one `x`),
/// for classification where the file system is not at hand. `None`: no glob words.
pub fn template(command: &str) -> Option<String> {
    let words = glob_words(command)?;
    let mut out = String::new();
    let mut last = 0;
    for (s, e) in words {
        out.push_str(&command[last..s]);
        let mut w = String::new();
        let mut in_class = false;
        for c in command[s..e].chars() {
            match (in_class, c) {
                (false, '*' | '?') => w.push('x'),
                (false, '[') => {
                    in_class = true;
                    w.push('x');
                }
                (true, ']') => in_class = false,
                (true, _) => {}
                (false, c) => w.push(c),
            }
        }
        out.push_str(&w);
        last = e;
    }
    out.push_str(&command[last..]);
    Some(out)
}

/// Whether `name` matches one path component `pat` (`*`, `?`, `[abc]`, `[a-z]`, `[!x]`).
pub fn component_matches(pat: &str, name: &str) -> bool {
    if name.starts_with('.') && !pat.starts_with('.') {
        return false;
    }
    fn go(p: &[char], n: &[char]) -> bool {
        match p.first() {
            None => n.is_empty(),
            Some('*') => (0..=n.len()).any(|k| go(&p[1..], &n[k..])),
            Some('?') => !n.is_empty() && go(&p[1..], &n[1..]),
            Some('[') => {
                let Some(close) = p.iter().skip(2).position(|&c| c == ']').map(|k| k + 2) else {
                    return n.first() == Some(&'[') && go(&p[1..], &n[1..]);
                };
                let Some(&c) = n.first() else { return false };
                let set = &p[1..close];
                let (neg, set) = match set.first() {
                    Some('!' | '^') => (true, &set[1..]),
                    _ => (false, set),
                };
                let mut hit = false;
                let mut k = 0;
                while k < set.len() {
                    if k + 2 < set.len() && set[k + 1] == '-' {
                        hit |= set[k] <= c && c <= set[k + 2];
                        k += 3;
                    } else {
                        hit |= set[k] == c;
                        k += 1;
                    }
                }
                hit != neg && go(&p[close + 1..], &n[1..])
            }
            Some(&x) => n.first() == Some(&x) && go(&p[1..], &n[1..]),
        }
    }
    let p: Vec<char> = pat.chars().collect();
    let n: Vec<char> = name.chars().collect();
    go(&p, &n)
}

/// At most this many paths, at any step of one pattern's expansion: past it the
/// pattern counts as matching nothing (the command keeps its glob, so it needs
/// approval) instead of growing the agent's memory with every `/*` level.
pub const MAX_GLOB_MATCHES: usize = 1000;

/// The longest expanded command: past it the command is judged unexpanded.
pub const MAX_EXPANDED_BYTES: usize = 32 * 1024;

/// The paths `pattern` matches, sorted, using `list_dir` (names in a directory, always
/// asked for by absolute path) for the components with glob characters. A relative
/// pattern is relative to [`EXEC_CWD`], where every command starts, and its matches stay
/// relative. More than [`MAX_GLOB_MATCHES`] paths at any step: no match.
pub fn matches(pattern: &str, list_dir: &mut dyn FnMut(&str) -> Vec<String>) -> Vec<String> {
    matches_within_caps(pattern, list_dir).unwrap_or_default()
}

/// [`matches`], telling "past [`MAX_GLOB_MATCHES`]" (`None`) from "no match" (empty).
fn matches_within_caps(
    pattern: &str,
    list_dir: &mut dyn FnMut(&str) -> Vec<String>,
) -> Option<Vec<String>> {
    let absolute = pattern.starts_with('/');
    let mut found = vec![String::new()];
    for comp in pattern.split('/').filter(|c| !c.is_empty()) {
        let mut next = Vec::new();
        for base in &found {
            // Never the lister's own working directory (the executor's is its caller's).
            let dir = if base.is_empty() {
                EXEC_CWD.to_string()
            } else if absolute {
                base.clone()
            } else {
                format!("{}/{base}", EXEC_CWD.trim_end_matches('/'))
            };
            let join = |n: &str| {
                if base.is_empty() {
                    if absolute {
                        format!("/{n}")
                    } else {
                        n.to_string()
                    }
                } else {
                    format!("{base}/{n}")
                }
            };
            if comp.contains(['*', '?', '[']) {
                let mut names = list_dir(&dir);
                names.sort();
                next.extend(
                    names
                        .iter()
                        .filter(|n| component_matches(comp, n))
                        .map(|n| join(n)),
                );
            } else {
                next.push(join(comp));
            }
        }
        if next.len() > MAX_GLOB_MATCHES {
            return None;
        }
        found = next;
        if found.is_empty() {
            break;
        }
    }
    if found.iter().any(String::is_empty) {
        return Some(Vec::new());
    }
    Some(found)
}

/// The command with each glob word replaced by its matches (each single-quoted); a word
/// with no match becomes that word single-quoted, the literal argument bash passes for it
/// (no `nullglob`, no `failglob`: `grep [n]ginx`, `curl http://h/x?pretty`). `None`: no
/// glob words, a word past [`MAX_GLOB_MATCHES`], or a result past [`MAX_EXPANDED_BYTES`]
/// (the command is then judged as written: it needs approval).
pub fn expand(command: &str, list_dir: &mut dyn FnMut(&str) -> Vec<String>) -> Option<String> {
    let words = glob_words(command)?;
    // After a `cd` a relative glob would expand against a directory this text-level
    // expansion does not track: the command is judged as written (needs approval), never
    // with `/`'s names.
    // (The lexer does not take glob characters: it reads the template.)
    let moves = match template(command).map(|t| crate::lex::plan(&t)) {
        Some(Ok(pipes)) => pipes.iter().flat_map(|p| &p.stages).any(|st| {
            st.argv
                .first()
                .is_some_and(|a| a == "cd" || a.ends_with("/cd"))
        }),
        _ => true,
    };
    let mut out = String::new();
    let mut last = 0;
    for (s, e) in words {
        out.push_str(&command[last..s]);
        let word = &command[s..e];
        if moves && !word.starts_with('/') {
            return None;
        }
        let m = matches_within_caps(word, list_dir)?;
        if m.is_empty() {
            out.push_str(&quote(word));
        } else {
            out.push_str(&m.iter().map(|p| quote(p)).collect::<Vec<_>>().join(" "));
        }
        last = e;
        if out.len() > MAX_EXPANDED_BYTES {
            return None;
        }
    }
    out.push_str(&command[last..]);
    (out.len() <= MAX_EXPANDED_BYTES).then_some(out)
}

impl Policy {
    /// Like [`Policy::classify_for`], but a command with glob operands that is not
    /// auto-allowed as written is judged by its [`template`]: auto-allowed when the
    /// template is. The target then expands and re-checks the real paths.
    pub fn classify_globbed(&self, target: Option<&str>, command: &str) -> Decision {
        let d = self.classify_for(target, command);
        if d.risk != Risk::ApprovalRequired {
            return d;
        }
        match template(command).map(|t| self.classify_for(target, &t)) {
            Some(t) if t.risk == Risk::AutoAllowed => Decision {
                reasons: vec![format!(
                    "glob operands: the target expands them and checks the real paths; {}",
                    t.reasons.join("; ")
                )],
                ..t
            },
            _ => d,
        }
    }

    /// On the target: a command that is not auto-allowed as written, with its glob words
    /// expanded by `list_dir`, classified again against the host's file system (as
    /// [`Policy::classify_on_host`]). `Some` only when the expansion is auto-allowed (its
    /// plan is what runs).
    pub fn classify_expanded(
        &self,
        target: Option<&str>,
        command: &str,
        list_dir: &mut dyn FnMut(&str) -> Vec<String>,
        fs: &dyn HostFs,
    ) -> Option<Decision> {
        let expanded = expand(command, list_dir)?;
        let d = self.classify_on_host(target, &expanded, fs);
        (d.risk == Risk::AutoAllowed).then_some(d)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A file system where nothing is a link and every directory is root's.
    struct Plain;
    impl HostFs for Plain {
        fn realpath(&self, path: &str) -> Option<String> {
            Some(path.to_string())
        }
        fn walk(&self, _: &str, _: usize) -> crate::Walk {
            crate::Walk::Entries {
                entries: Vec::new(),
                complete: true,
            }
        }
        fn writable_dir(&self, _: &str) -> Option<String> {
            None
        }
    }

    fn fs(dir: &str) -> Vec<String> {
        match dir {
            "/home/admin/deploy" => vec![
                "a.sh".into(),
                "b.sh".into(),
                ".hidden.sh".into(),
                "c.txt".into(),
            ],
            "/var/log" => vec!["syslog".into(), "nginx".into()],
            "/etc" => vec!["shadow".into(), "hostname".into()],
            _ => vec![],
        }
    }

    #[test]
    fn globs_expand_sorted_and_quoted_and_are_reclassified() {
        assert_eq!(
            expand("file /home/admin/deploy/*.sh", &mut fs).unwrap(),
            "file '/home/admin/deploy/a.sh' '/home/admin/deploy/b.sh'"
        );
        assert_eq!(template("du -sh /var/log/*").unwrap(), "du -sh /var/log/x");
        // No match: the literal word, as bash passes it.
        assert_eq!(expand("ls /nope/*", &mut fs).unwrap(), "ls '/nope/*'");
        assert!(expand("ls '/var/log/*'", &mut fs).is_none());
        assert!(expand("ls \"$HOME\"/*", &mut fs).is_none());
        assert!(component_matches("[a-c].sh", "b.sh"));
        assert!(!component_matches("[!a-c].sh", "b.sh"));
        let p = Policy::builtin();
        assert_eq!(
            p.classify_globbed(None, "file /home/admin/deploy/*.sh")
                .risk,
            Risk::AutoAllowed
        );
        assert!(
            p.classify_expanded(None, "file /home/admin/deploy/*.sh", &mut fs, &Plain)
                .is_some()
        );
        // A sensitive path among the matches is not auto-allowed on the target.
        assert!(
            p.classify_expanded(None, "cat /etc/*", &mut fs, &Plain)
                .is_none()
        );
        // A write stays a write.
        assert_ne!(
            p.classify_globbed(None, "rm /var/log/*").risk,
            Risk::AutoAllowed
        );
    }

    #[test]
    fn a_glob_word_with_no_match_is_the_literal_argument_bash_passes() {
        let p = Policy::builtin();
        // Found on the nspawn target: the controller auto-allowed these (template), the
        // agent refused them (policy_stricter) because nothing matched.
        for (cmd, literal) in [
            ("ps -ef | grep [n]ginx", "ps -ef | grep '[n]ginx'"),
            (
                "curl -s http://localhost:9200/_cluster/health?pretty",
                "curl -s 'http://localhost:9200/_cluster/health?pretty'",
            ),
            (
                "zgrep -c 'Out of memory' /var/log/kern.log.*.gz",
                "zgrep -c 'Out of memory' '/var/log/kern.log.*.gz'",
            ),
        ] {
            assert_eq!(expand(cmd, &mut fs).as_deref(), Some(literal), "{cmd}");
            let d = p.classify_expanded(None, cmd, &mut fs);
            assert!(d.is_some(), "{cmd}: the literal is auto-allowed");
            assert_eq!(p.classify_globbed(None, cmd).risk, Risk::AutoAllowed);
        }
        // The literal is classified like any argument: a sensitive name stays sensitive,
        // a write stays a write, whether or not the glob matched.
        for cmd in [
            "cat /etc/ssl/private/*.key",
            "cat /root/.ssh/id_*",
            "rm /nope/*",
            "cat /etc/shado?",
        ] {
            assert!(
                p.classify_expanded(None, cmd, &mut fs).is_none(),
                "{cmd} must not be auto-allowed on the target"
            );
        }
    }

    #[test]
    fn an_expansion_past_the_caps_is_not_expanded_so_it_needs_approval() {
        // 40 names in every directory: two levels are 1,600 paths.
        let mut wide = |_: &str| (0..40).map(|i| format!("d{i:02}")).collect::<Vec<String>>();
        assert_eq!(matches("/*", &mut wide).len(), 40);
        assert!(matches("/*/*", &mut wide).is_empty());
        assert!(matches("/*/*/*/*/*", &mut wide).is_empty());
        assert!(expand("ls -d /*/*", &mut wide).is_none());
        let p = Policy::builtin();
        assert!(
            p.classify_expanded(None, "ls -d /*/*", &mut wide, &Plain)
                .is_none()
        );
        // Many words each under the count cap, together past the byte cap.
        let mut long = |_: &str| {
            (0..900)
                .map(|i| format!("{i:030}"))
                .collect::<Vec<String>>()
        };
        assert!(expand("ls -d /* /*", &mut long).is_none());
        assert!(expand("ls -d /*", &mut long).is_some());
    }

    #[test]
    fn relative_globs_expand_against_the_start_directory_and_not_after_a_cd() {
        let mut asked = Vec::new();
        let mut lister = |d: &str| {
            asked.push(d.to_string());
            fs(d)
        };
        // Relative to `/`, listed by absolute path (never the lister's own directory).
        assert_eq!(
            expand("ls etc/*", &mut lister).unwrap(),
            "ls 'etc/hostname' 'etc/shadow'"
        );
        assert_eq!(asked, ["/etc"]);
        // After a `cd` the directory is not `/`: the glob stays, so it needs approval
        // (before, it took `/`'s names).
        let mut root = |d: &str| {
            if d == "/" {
                vec!["etc".to_string(), "var".to_string()]
            } else {
                fs(d)
            }
        };
        assert_eq!(expand("cat *", &mut root).unwrap(), "cat 'etc' 'var'");
        assert!(expand("cd /etc && cat *", &mut root).is_none());
        assert!(expand("cd /var/log; ls *", &mut root).is_none());
        // Absolute globs after a `cd` still expand.
        assert_eq!(
            expand("cd /tmp && ls /var/log/*", &mut fs).unwrap(),
            "cd /tmp && ls '/var/log/nginx' '/var/log/syslog'"
        );
        let p = Policy::builtin();
        assert!(
            p.classify_expanded(None, "cd /etc && cat *", &mut fs, &Plain)
                .is_none()
        );
    }
}
