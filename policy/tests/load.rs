//! A decision never depends on how busy the host is: the parse budgets
//! count work (parser operations, nodes, nested strings), not time, so the
//! controller (idle) and the agent (loaded) decide alike.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use aiops_policy::{Decision, Policy};

/// Commands that make the parser and the scanners work hard, plus ordinary
/// ones.
fn heavy_commands() -> Vec<String> {
    let mut v = vec![
        format!("{}ls{}", "$(".repeat(1000), ")".repeat(1000)),
        "(".repeat(4000),
        "\"'".repeat(2000),
        "ls && ".repeat(600) + "ls",
        "{".repeat(4000),
        "echo \"$((".repeat(400),
        format!("bash -c '{}'", "eval \"sh -c 'ls; ".repeat(60)),
        "sudo timeout 5 nice -n 1 env stdbuf -oL ".repeat(50) + "bash",
        format!(
            "awk '{}' /var/log/syslog",
            "{print $1 > 5 ? \"a\" : \"b\"}".repeat(100)
        ),
        "grep -r x /var/log | sort | uniq -c | sort -rn | head -n 20".to_string(),
        "ps aux | grep nginx".to_string(),
        "cd /nonexistent; cat etc/shadow".to_string(),
    ];
    let corpus = format!("{}/tests/data/adversarial.tsv", env!("CARGO_MANIFEST_DIR"));
    for l in std::fs::read_to_string(corpus).unwrap().lines().take(300) {
        if let Some(c) = l.split('\t').next() {
            v.push(c.to_string());
        }
    }
    v
}

fn classify_all(p: &Policy, cmds: &[String]) -> Vec<Decision> {
    cmds.iter().map(|c| p.classify(c)).collect()
}

#[test]
fn same_decision_under_heavy_cpu_load() {
    let p = Policy::builtin();
    let cmds = heavy_commands();
    let idle = classify_all(&p, &cmds);

    // Busy threads: several per core, spinning until the test is done.
    let stop = Arc::new(AtomicBool::new(false));
    let cores = std::thread::available_parallelism().map_or(2, |n| n.get());
    let spinners: Vec<_> = (0..cores * 4)
        .map(|_| {
            let stop = stop.clone();
            std::thread::spawn(move || {
                let mut x = 0u64;
                while !stop.load(Ordering::Relaxed) {
                    x = x.wrapping_mul(6364136223846793005).wrapping_add(1);
                    std::hint::black_box(x);
                }
            })
        })
        .collect();
    // And busy processes, which the scheduler treats apart from our threads.
    let procs: Vec<_> = (0..cores)
        .map(|_| {
            std::process::Command::new("sh")
                .args(["-c", "while :; do :; done"])
                .spawn()
                .expect("busy loop starts")
        })
        .collect();

    // Classify concurrently from several threads too, under the load.
    let loaded: Vec<Vec<Decision>> = std::thread::scope(|s| {
        let hs: Vec<_> = (0..4)
            .map(|_| s.spawn(|| classify_all(&p, &cmds)))
            .collect();
        hs.into_iter().map(|h| h.join().unwrap()).collect()
    });

    stop.store(true, Ordering::Relaxed);
    for t in spinners {
        t.join().unwrap();
    }
    for mut c in procs {
        let _ = c.kill();
        let _ = c.wait();
    }
    for run in &loaded {
        for ((cmd, a), b) in cmds.iter().zip(&idle).zip(run) {
            assert_eq!(a, b, "{cmd:?} decided differently under load");
        }
    }
    // The heavy inputs really are decided by the parser, not by a budget.
    for (cmd, d) in cmds.iter().zip(&idle).take(6) {
        assert!(
            !d.reasons.iter().any(|r| r.contains("budget")),
            "{:?}...: {:?}",
            &cmd[..20],
            d.reasons
        );
    }
}
