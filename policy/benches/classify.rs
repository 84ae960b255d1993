//! Classifies 10,000 corpus-style commands and prints the rate.
//! Run: `cargo bench -p aiops-policy --bench classify`.

use std::time::Instant;

fn main() {
    let mut cmds: Vec<String> = Vec::new();
    for name in ["policy_cases.tsv", "extra_cases.tsv"] {
        let path = format!("{}/tests/corpus/{name}", env!("CARGO_MANIFEST_DIR"));
        for l in std::fs::read_to_string(path).expect("corpus").lines() {
            let mut it = l.splitn(3, '\t');
            if let (Some(c), Some(_), why) = (it.next(), it.next(), it.next().unwrap_or("")) {
                cmds.push(if why.starts_with("[NL]") {
                    c.replace("\\n", "\n")
                } else {
                    c.to_string()
                });
            }
        }
    }
    let policy = aiops_policy::Policy::builtin();
    const N: usize = 10_000;
    let batch: Vec<&str> = cmds.iter().cycle().take(N).map(String::as_str).collect();
    let start = Instant::now();
    let mut auto = 0usize;
    for c in &batch {
        let d = policy.classify(std::hint::black_box(c));
        auto += usize::from(d.risk == aiops_policy::Risk::AutoAllowed);
    }
    let el = start.elapsed();
    println!(
        "classified {N} commands in {:.1} ms: {:.0} commands/s ({auto} auto-allowed)",
        el.as_secs_f64() * 1e3,
        N as f64 / el.as_secs_f64()
    );
}
