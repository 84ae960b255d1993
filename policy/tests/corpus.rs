//! Every corpus row (shared corpus and our extra cases) classified as
//! expected in lab mode; production mode never loosens.

use aiops_policy::{Policy, Risk};

/// `(command, expected, why)` rows of a corpus file.
fn rows(name: &str) -> Vec<(String, String, String)> {
    let path = format!("{}/tests/corpus/{name}", env!("CARGO_MANIFEST_DIR"));
    let text = std::fs::read_to_string(&path).unwrap();
    text.lines()
        .filter(|l| !l.trim().is_empty() && !l.starts_with("#"))
        .map(|l| {
            let mut it = l.splitn(3, '\t');
            let cmd = it.next().unwrap().to_string();
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

fn check_lab(name: &str) {
    let p = Policy::builtin();
    let mut bad = Vec::new();
    let all = rows(name);
    for (cmd, exp, why) in &all {
        let d = p.classify(cmd);
        if d.risk.as_str() != exp {
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
    assert!(
        bad.is_empty(),
        "{} of {} rows wrong:\n{}",
        bad.len(),
        all.len(),
        bad.join("\n")
    );
    eprintln!("{name}: {} rows ok", all.len());
}

#[test]
fn shared_corpus_lab_mode() {
    check_lab("policy_cases.tsv");
}

#[test]
fn extra_corpus_lab_mode() {
    check_lab("extra_cases.tsv");
}

#[test]
fn production_mode_only_tightens() {
    let lab = Policy::builtin();
    let prod = Policy::from_yaml("mode: production\n", "prod.yml").unwrap();
    for file in ["policy_cases.tsv", "extra_cases.tsv"] {
        for (cmd, exp, _) in rows(file) {
            let l = lab.classify(&cmd);
            let d = prod.classify(&cmd);
            match exp.as_str() {
                "approval_required" => {
                    assert!(
                        matches!(d.risk, Risk::ApprovalRequired | Risk::Rejected),
                        "{cmd:?}: {:?}",
                        d
                    );
                    // Rejected exactly when no rule covers it (lab reasons say "unknown").
                    let unknown = l.reasons.iter().any(|r| r.starts_with("unknown:"));
                    assert_eq!(
                        d.risk == Risk::Rejected,
                        unknown,
                        "{cmd:?}: lab {:?} prod {:?}",
                        l,
                        d
                    );
                }
                _ => assert_eq!(d.risk, l.risk, "{cmd:?}"),
            }
        }
    }
}
