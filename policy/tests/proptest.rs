//! Property test over the parser and classifier: no panic, bounded time,
//! and every auto-allowed input's argv equals what bash would execute.

mod common;

use std::sync::OnceLock;
use std::time::{Duration, Instant};

use aiops_policy::{Policy, Risk};
use proptest::prelude::*;

/// Shell-ish fragments: words, quotes, escapes, operators, metacharacters, unicode.
const FRAGMENTS: &[&str] = &[
    "ls",
    "cat",
    "echo",
    "grep",
    "sort",
    "wc",
    "df",
    "sudo",
    "-n",
    "timeout",
    "5",
    "rm",
    "-rf",
    "/",
    "-la",
    "-o",
    "--out",
    "/etc/hosts",
    "/etc/shadow",
    "/dev/null",
    "x",
    "a b",
    "cd",
    "/tmp",
    "'",
    "\"",
    "'a b'",
    "\"a b\"",
    "''",
    "\"\"",
    "\\",
    "\\ ",
    "\\\\",
    "\\\"",
    "\\'",
    "\\\n",
    "\\$",
    "|",
    "||",
    "&&",
    "&",
    ";",
    ";;",
    "\n",
    "|&",
    "$",
    "$(",
    ")",
    "(",
    "`",
    "${",
    "}",
    "{",
    "*",
    "?",
    "[",
    "]",
    "~",
    "#",
    "<",
    ">",
    ">>",
    "2>&1",
    ">/dev/null",
    "2>/dev/null",
    "<<",
    "<<<",
    "<(",
    "=",
    "FOO=1",
    "$x",
    "$'\\x41'",
    "é",
    "ｒ",
    "\u{200b}",
    "\u{a0}",
    "日本",
    "!",
    "%",
    "^",
    "\t",
    " ",
    "  ",
    "--",
    "-",
    "+",
    ",",
    ":",
    "@",
    "0",
    "1",
    "2",
];

/// Loading checks every spec example; do it once.
fn policy() -> &'static Policy {
    static P: OnceLock<Policy> = OnceLock::new();
    P.get_or_init(Policy::builtin)
}

fn shellish() -> impl Strategy<Value = String> {
    prop::collection::vec((0..FRAGMENTS.len(), prop::bool::ANY), 1..14).prop_map(|parts| {
        let mut s = String::new();
        for (i, space) in parts {
            s.push_str(FRAGMENTS[i]);
            if space {
                s.push(' ');
            }
        }
        s
    })
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 400, failure_persistence: None, ..ProptestConfig::default() })]

    #[test]
    fn classifier_is_total_fast_and_faithful(cmd in shellish()) {
        let p = policy();
        let t = Instant::now();
        let d = p.classify(&cmd);
        prop_assert!(t.elapsed() < Duration::from_secs(2), "slow: {cmd:?}");
        // Deterministic: the agent re-derives the same plan.
        prop_assert_eq!(&d, &p.classify(&cmd));
        if d.risk == Risk::AutoAllowed {
            prop_assert!(!d.plan.shell);
            if let Err(e) = common::compare(&cmd, &d.plan) {
                prop_assert!(false, "{}", e);
            }
        }
    }

    #[test]
    fn arbitrary_text_never_panics(cmd in "\\PC{0,200}") {
        let _ = policy().classify(&cmd);
    }
}

/// Deep nesting and long inputs stay bounded.
#[test]
fn pathological_inputs_are_bounded() {
    let p = Policy::builtin();
    let deep = format!("{}ls{}", "$(".repeat(1000), ")".repeat(1000));
    let many = "ls && ".repeat(600) + "ls";
    let quotes = "\"'".repeat(2000);
    for cmd in [
        deep.as_str(),
        many.as_str(),
        quotes.as_str(),
        &"(".repeat(4000),
    ] {
        let t = Instant::now();
        let d = p.classify(cmd);
        // A hang guard, not a benchmark: these take milliseconds.
        assert!(t.elapsed() < Duration::from_secs(10), "hung");
        assert_ne!(d.risk, Risk::AutoAllowed, "{}", &cmd[..40]);
    }
}
