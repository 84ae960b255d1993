//! The attacker's corpora (written against this code by someone playing the
//! attacker, copied from outside the repository): every adversarial row
//! classified exactly as expected, and the natural read-only diagnostics of
//! the usability corpus auto-allowed at least 95% of the time.

use aiops_policy::{Policy, Risk};

/// `(command, expected, why)` rows of `tests/data/NAME`.
fn rows(name: &str) -> Vec<(String, String, String)> {
    let path = format!("{}/tests/data/{name}", env!("CARGO_MANIFEST_DIR"));
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{path}: {e}"));
    text.lines()
        .filter(|l| !l.trim().is_empty() && !l.starts_with('#'))
        .map(|l| {
            let mut it = l.splitn(3, '\t');
            let cmd = it.next().unwrap_or_default().to_string();
            let exp = it
                .next()
                .unwrap_or_else(|| panic!("{name}: bad row {l:?}"))
                .to_string();
            let why = it.next().unwrap_or("").to_string();
            // `[NL]` rows spell a real newline as the two characters `\n`.
            let cmd = if why.starts_with("[NL]") {
                cmd.replace("\\n", "\n")
            } else {
                cmd
            };
            (cmd, exp, why)
        })
        .collect()
}

/// The class tag (`[path-alias]`) a row's `why` starts with.
fn class(why: &str) -> &str {
    let w = why.strip_prefix("[NL]").unwrap_or(why).trim_start();
    match (w.starts_with('['), w.find(']')) {
        (true, Some(end)) => &w[..=end],
        _ => "[untagged]",
    }
}

/// Rows whose expectation we dispute, with the decision we keep and why.
/// Printed on every run so the disagreement stays visible.
const DISPUTED: &[(&str, &str, &str)] = &[(
    "curl -s http://[::1]:9090/-/healthy",
    "approval_required",
    "unquoted [::1] is a bash bracket glob (it expands when a matching path exists), so the \
     word is not literal; the quoted form 'http://[::1]:9090/' is auto_allowed",
)];

#[test]
fn adversarial_corpus_every_row_as_expected() {
    let p = Policy::builtin();
    let all = rows("adversarial.tsv");
    assert!(all.len() >= 550, "only {} adversarial rows", all.len());
    let mut bad = Vec::new();
    let mut per_class: std::collections::BTreeMap<&str, (usize, usize)> = Default::default();
    for (cmd, exp, why) in &all {
        let d = p.classify(cmd);
        let exp = match DISPUTED.iter().find(|(c, ..)| c == cmd) {
            Some((_, kept, reason)) => {
                eprintln!("disputed row {cmd:?}: expected {exp}, kept {kept}: {reason}");
                *kept
            }
            None => exp.as_str(),
        };
        let e = per_class.entry(class(why)).or_default();
        e.0 += 1;
        if d.risk.as_str() != exp {
            e.1 += 1;
            bad.push(format!(
                "{cmd:?}: expected {exp}, got {} ({}) -- {why}",
                d.risk.as_str(),
                d.reasons.join("; ")
            ));
        }
        if d.risk == Risk::AutoAllowed {
            assert!(!d.plan.shell && !d.plan.pipelines.is_empty(), "{cmd:?}");
        }
    }
    for (c, (n, wrong)) in &per_class {
        eprintln!("adversarial {c}: {} of {n} as expected", n - wrong);
    }
    assert!(
        bad.is_empty(),
        "{} of {} adversarial rows wrong:\n{}",
        bad.len(),
        all.len(),
        bad.join("\n")
    );
}

#[test]
fn usability_corpus_at_least_95_percent_auto_allowed() {
    let p = Policy::builtin();
    let all = rows("usability.tsv");
    assert!(all.len() >= 200, "only {} usability rows", all.len());
    let mut stricter = Vec::new();
    let mut wrong = Vec::new();
    let mut expected_auto = 0usize;
    for (cmd, exp, why) in &all {
        let d = p.classify(cmd);
        if exp != "auto_allowed" {
            // The corpus's honest approvals stay approvals.
            if d.risk.as_str() != exp {
                wrong.push(format!("{cmd:?}: expected {exp}, got {}", d.risk.as_str()));
            }
            continue;
        }
        expected_auto += 1;
        if d.risk != Risk::AutoAllowed {
            stricter.push(format!(
                "{cmd:?}: {} ({}) -- {why}",
                d.risk.as_str(),
                d.reasons.join("; ")
            ));
        }
    }
    let auto = expected_auto - stricter.len();
    let rate = 100.0 * auto as f64 / expected_auto as f64;
    eprintln!(
        "usability: {auto} of {expected_auto} auto_allowed ({rate:.1}%); not auto:\n{}",
        stricter.join("\n")
    );
    assert!(wrong.is_empty(), "{}", wrong.join("\n"));
    assert!(rate >= 95.0, "usability rate {rate:.1}% is below 95%");
}
