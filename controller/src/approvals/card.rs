//! What an approver is shown about a pending approval — the exact argv plan
//! that will run (each pipeline and stage as words, `sudo` stages marked,
//! redirects, whether it is a shell plan), the account it runs as, every
//! target, and whether it can be undone — rendered the same way for
//! `aiops approvals list`, the `approval_requested` answer, Telegram and
//! Teams. Everything here is plain text: words are shell-quoted when they
//! need it and any character that could hide or reorder text is escaped,
//! so what the human reads is what the plan's digest binds.

use aiops_policy::{Connector, Plan, Redirect, Stage};
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

use super::store::Approval;

/// Whether an approved command can be undone: a small, honest hint from
/// the plan's programs. The worst stage decides; a shell plan or a program
/// the table does not know is `unknown`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Undo {
    /// Restarts, reloads, starts: nothing is lost.
    NoStateLost,
    /// Mode, owner, unit state: reversible if the old value is noted first.
    ReversibleIfNoted,
    /// The table does not know (the default, and every shell plan).
    #[default]
    Unknown,
    /// Deletes, truncates, overwrites in place, kills a process.
    CannotUndo,
}

impl Undo {
    /// The stable name in JSON and audit records.
    pub fn as_str(self) -> &'static str {
        match self {
            Undo::NoStateLost => "no_state_lost",
            Undo::ReversibleIfNoted => "reversible_if_noted",
            Undo::Unknown => "unknown",
            Undo::CannotUndo => "cannot_undo",
        }
    }

    /// One line for a human.
    pub fn sentence(self) -> &'static str {
        match self {
            Undo::NoStateLost => "no state is lost (a restart, reload or start)",
            Undo::ReversibleIfNoted => {
                "reversible if you note the current mode, owner, contents or state first"
            }
            Undo::Unknown => "unknown: the policy cannot tell whether this can be undone",
            Undo::CannotUndo => "CANNOT be undone (it deletes, truncates, overwrites or kills)",
        }
    }

    fn parse(s: &str) -> Undo {
        match s {
            "no_state_lost" => Undo::NoStateLost,
            "reversible_if_noted" => Undo::ReversibleIfNoted,
            "cannot_undo" => Undo::CannotUndo,
            _ => Undo::Unknown,
        }
    }
}

fn program(st: &Stage) -> &str {
    let p = st.argv.first().map(String::as_str).unwrap_or("");
    p.rsplit('/').next().unwrap_or(p)
}

/// The first word after the program that is not an option.
fn verb(st: &Stage) -> &str {
    st.argv
        .iter()
        .skip(1)
        .map(String::as_str)
        .find(|w| !w.starts_with('-'))
        .unwrap_or("")
}

fn in_place(st: &Stage) -> bool {
    st.argv.iter().skip(1).any(|w| {
        w.starts_with("--in-place")
            || (w.starts_with('-') && !w.starts_with("--") && w[1..].contains('i'))
    })
}

/// The hint for one stage.
pub fn stage_undo(st: &Stage) -> Undo {
    match program(st) {
        "rm" | "rmdir" | "unlink" | "shred" | "truncate" | "dd" | "wipefs" | "fdisk" | "sfdisk"
        | "parted" | "kill" | "pkill" | "killall" => Undo::CannotUndo,
        p if p.starts_with("mkfs") => Undo::CannotUndo,
        "sed" | "perl" if in_place(st) => Undo::CannotUndo,
        "tee" if !st.argv.iter().any(|w| w == "-a" || w == "--append") => Undo::CannotUndo,
        "systemctl" => match verb(st) {
            "restart"
            | "reload"
            | "try-restart"
            | "reload-or-restart"
            | "try-reload-or-restart"
            | "condrestart"
            | "start"
            | "reset-failed"
            | "daemon-reload" => Undo::NoStateLost,
            "enable" | "disable" | "stop" | "mask" | "unmask" => Undo::ReversibleIfNoted,
            "kill" | "clean" => Undo::CannotUndo,
            _ => Undo::Unknown,
        },
        "service" => match st.argv.get(2).map(String::as_str).unwrap_or("") {
            "restart" | "reload" | "start" | "force-reload" => Undo::NoStateLost,
            "stop" => Undo::ReversibleIfNoted,
            _ => Undo::Unknown,
        },
        "chmod" | "chown" | "chgrp" | "setfacl" | "chattr" | "touch" | "mkdir" => {
            Undo::ReversibleIfNoted
        }
        _ => Undo::Unknown,
    }
}

/// The hint for a whole plan: its worst stage; a shell plan or an empty plan is `unknown`.
pub fn undo(plan: &Plan) -> Undo {
    if plan.shell || plan.pipelines.is_empty() {
        return Undo::Unknown;
    }
    plan.pipelines
        .iter()
        .flat_map(|p| &p.stages)
        .map(stage_undo)
        .max()
        .unwrap_or(Undo::Unknown)
}

/// One word as a human should read it: bare when it is plain, else in
/// single quotes; characters that are not plainly printable (controls,
/// bidi and zero-width marks, line separators) are shown as `\u{..}`.
pub fn quote(word: &str) -> String {
    let plain = !word.is_empty()
        && word
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "-_./=:,+@%^".contains(c));
    let mut out = String::new();
    if !plain {
        out.push('\'');
    }
    for c in word.chars() {
        match c {
            '\'' => out.push_str("'\\''"),
            c if c.is_control() || invisible(c) => out.push_str(&format!("\\u{{{:x}}}", c as u32)),
            c => out.push(c),
        }
    }
    if !plain {
        out.push('\'');
    }
    out
}

fn invisible(c: char) -> bool {
    matches!(c as u32,
        0x00AD | 0x034F | 0x061C | 0x115F | 0x1160 | 0x17B4 | 0x17B5 | 0x180B..=0x180F
        | 0x200B..=0x200F | 0x2028..=0x202E | 0x2060..=0x206F | 0x3164 | 0xFE00..=0xFE0F
        | 0xFEFF | 0xFFA0 | 0xFFF9..=0xFFFB | 0xE0000..=0xE007F)
}

fn stage_text(st: &Stage) -> String {
    let mut words: Vec<String> = Vec::new();
    if st.privileged {
        words.push("[sudo]".into());
    }
    words.extend(st.argv.iter().map(|w| quote(w)));
    for r in &st.redirects {
        words.push(match r {
            Redirect::StderrToStdout => "2>&1".into(),
            Redirect::StdoutToNull => ">/dev/null".into(),
            Redirect::StderrToNull => "2>/dev/null".into(),
            Redirect::StdinFromFile(p) => format!("< {}", quote(p)),
        });
    }
    words.join(" ")
}

/// The plan as lines: one per pipeline, stages joined by `|`, each after
/// the first prefixed with its connector. A shell plan is the one line
/// that really runs.
pub fn plan_lines(plan: &Plan, command: &str) -> Vec<String> {
    if plan.shell {
        return vec![format!(
            "bash --noprofile --norc -c {}   (shell plan: the whole command text is the program)",
            quote(command)
        )];
    }
    if plan.pipelines.is_empty() {
        return vec!["(no plan: nothing can run)".into()];
    }
    plan.pipelines
        .iter()
        .enumerate()
        .map(|(i, p)| {
            let stages: Vec<String> = p.stages.iter().map(stage_text).collect();
            let prefix = match (i, p.connector) {
                (0, _) => "",
                (_, Connector::And) => "&& ",
                (_, Connector::Or) => "|| ",
                (_, Connector::Seq) => "; ",
            };
            format!("{}. {prefix}{}", i + 1, stages.join(" | "))
        })
        .collect()
}

/// The card of an approval as JSON (part of the `approval_requested` answer).
pub fn card_json(a: &Approval) -> Value {
    json!({
        "targets": a.target_set(),
        "run_as": a.run_as_shown(),
        "shell": a.plan.shell,
        "plan": plan_lines(&a.plan, &a.command),
        "plan_sha256": a.plan_sha256,
        "undo": a.undo.as_str(),
        "undo_note": a.undo.sentence(),
    })
}

/// The card's facts, from an approval as stored (its JSON): (label, text)
/// pairs in the order shown. Every text is plain; a missing or unreadable
/// plan says so rather than showing nothing.
pub fn facts(a: &Value) -> Vec<(&'static str, String)> {
    let s = |k: &str| a.get(k).and_then(Value::as_str).unwrap_or("");
    let mut targets: Vec<String> = a
        .get("targets")
        .and_then(Value::as_array)
        .map(|t| t.iter().filter_map(Value::as_str).map(quote).collect())
        .unwrap_or_default();
    if targets.is_empty() {
        targets.push(quote(s("target")));
    }
    let run_as = match s("run_as") {
        "" => "root".to_string(),
        r => quote(r),
    };
    let plan = a
        .get("plan")
        .cloned()
        .and_then(|p| serde_json::from_value::<Plan>(p).ok());
    let plan_text = match &plan {
        Some(p) => plan_lines(p, s("command")).join("\n"),
        None => "(the plan cannot be read: do not approve)".into(),
    };
    vec![
        (
            "Targets",
            format!("{} ({})", targets.join(", "), targets.len()),
        ),
        ("Runs as", format!("{run_as} (every stage of the plan)")),
        ("Plan", plan_text),
        ("Undo", Undo::parse(s("undo")).sentence().to_string()),
    ]
}

#[cfg(test)]
mod tests {
    use super::*;

    fn plan(cmd: &str) -> Plan {
        aiops_policy::Policy::builtin().classify(cmd).plan
    }

    #[test]
    fn undo_hints_are_honest_and_the_worst_stage_wins() {
        for (cmd, want) in [
            ("rm -f /var/log/big.log", Undo::CannotUndo),
            ("sudo sed -i '1d' /etc/app.conf", Undo::CannotUndo),
            ("sed -Ei 's/a/b/' f", Undo::CannotUndo),
            ("truncate -s 0 /var/log/x", Undo::CannotUndo),
            ("dd if=/dev/zero of=/tmp/x bs=1 count=1", Undo::CannotUndo),
            ("kill 1234", Undo::CannotUndo),
            ("sudo systemctl restart nginx", Undo::NoStateLost),
            ("systemctl --no-block reload nginx", Undo::NoStateLost),
            (
                "sudo systemctl enable --now x.timer",
                Undo::ReversibleIfNoted,
            ),
            ("chmod 644 /etc/app.conf", Undo::ReversibleIfNoted),
            ("chown www-data /srv/x", Undo::ReversibleIfNoted),
            ("systemctl restart a && rm /tmp/b", Undo::CannotUndo),
            (
                "systemctl restart a && chmod 600 /tmp/b",
                Undo::ReversibleIfNoted,
            ),
            ("frobnicate --all", Undo::Unknown),
            ("echo $(id) > /tmp/x", Undo::Unknown),
        ] {
            assert_eq!(undo(&plan(cmd)), want, "{cmd}: {:?}", plan(cmd));
        }
    }

    #[test]
    fn plans_render_as_quoted_words_with_sudo_connectors_and_redirects() {
        let lines = plan_lines(
            &plan("sudo systemctl restart nginx && journalctl -u 'my unit' 2>&1 | tail -n 5"),
            "",
        );
        assert_eq!(
            lines,
            [
                "1. [sudo] systemctl restart nginx",
                "2. && journalctl -u 'my unit' 2>&1 | tail -n 5"
            ]
        );
        let cmd = "echo $(id) > /tmp/x";
        let lines = plan_lines(&plan(cmd), cmd);
        assert_eq!(lines.len(), 1);
        assert!(lines[0].starts_with("bash --noprofile --norc -c 'echo $(id) > /tmp/x'"));
        assert!(lines[0].contains("shell plan"));
    }

    #[test]
    fn quoting_shows_every_hidden_character() {
        assert_eq!(quote("plain-word_1.conf"), "plain-word_1.conf");
        assert_eq!(quote("it's"), "'it'\\''s'");
        assert_eq!(quote(""), "''");
        assert_eq!(quote("a\u{202e}b"), "'a\\u{202e}b'");
        assert_eq!(quote("a\u{200b}b\nc"), "'a\\u{200b}b\\u{a}c'");
        assert_eq!(quote("*bold* <b>"), "'*bold* <b>'");
    }

    #[test]
    fn facts_say_so_when_the_plan_is_unreadable() {
        let f = facts(&json!({"target": "srv1", "command": "x", "plan": "garbage"}));
        assert_eq!(f[1].1, "root (every stage of the plan)");
        assert!(f[2].1.contains("do not approve"), "{f:?}");
        assert!(f[3].1.starts_with("unknown"), "{f:?}");
    }
}
