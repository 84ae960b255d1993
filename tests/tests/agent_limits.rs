//! The agent under connection pressure: peers that never finish a handshake
//! hold at most `max_handshakes` slots and only for `handshake_timeout_secs`;
//! connections over the limits are closed unread; a flood of bad handshakes
//! is recorded one by one only up to `refusal_records_per_window`, then as
//! one summary per window, and the agent keeps serving the controller.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::{Duration, Instant};

use aiops_e2e::{Lab, request};

fn limited_lab(extra: &str) -> Lab {
    let lab = Lab::init(1, "lab");
    lab.append("agents/srv1/agent.yml", extra);
    lab.up();
    lab
}

/// True when the agent closed `s` (EOF or reset) within `within`.
fn closed_within(s: &mut TcpStream, within: Duration) -> bool {
    s.set_read_timeout(Some(within)).unwrap();
    let mut buf = [0u8; 64];
    match s.read(&mut buf) {
        Ok(0) => true,
        Ok(_) => false,
        Err(e) => matches!(
            e.kind(),
            std::io::ErrorKind::ConnectionReset | std::io::ErrorKind::ConnectionAborted
        ),
    }
}

fn refusals(lab: &Lab, reason: &str) -> usize {
    lab.agent_audit("srv1")
        .iter()
        .filter(|r| r["event"] == "refused" && r["reason"] == reason)
        .count()
}

/// Waits (up to 5 s) until at least `n` refusals for `reason` are in the
/// agent's audit: the agent closes a connection before recording why.
fn wait_refusals(lab: &Lab, reason: &str, n: usize) -> usize {
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        let got = refusals(lab, reason);
        if got >= n || Instant::now() > deadline {
            return got;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

#[test]
fn silent_peers_hold_handshake_slots_only_until_the_timeout() {
    // A handshake timeout long enough that everything below happens while the
    // silent peers still hold their slots, even on a loaded machine: which
    // close is which is told by the agent's recorded reason, not by a clock.
    let lab = limited_lab("max_connections: 8\nmax_handshakes: 2\nhandshake_timeout_secs: 6\n");
    let addr = lab.agent_addr(1);
    // Two peers connect and say nothing: they hold both handshake slots. A
    // slot can still be held for a moment by `lab up`'s own readiness probe
    // (a bare connect the agent sees close only when it gets to it): if a
    // silent peer was refused for that, they close and try again.
    let mut silent: Vec<TcpStream> = Vec::new();
    let mut base = refusals(&lab, "too_many_handshakes");
    for _ in 0..10 {
        silent = (0..2).map(|_| TcpStream::connect(&addr).unwrap()).collect();
        std::thread::sleep(Duration::from_millis(300));
        if refusals(&lab, "too_many_handshakes") == base {
            break;
        }
        silent.clear();
        std::thread::sleep(Duration::from_millis(500));
        base = refusals(&lab, "too_many_handshakes");
    }
    assert_eq!(silent.len(), 2);
    // A third is closed unread as over the limit (`too_many_handshakes`), not
    // at its own handshake timeout (`tls_timeout`, which nothing has reached yet).
    let mut third = TcpStream::connect(&addr).unwrap();
    assert!(
        closed_within(&mut third, Duration::from_secs(5)),
        "a connection over max_handshakes is closed"
    );
    assert!(wait_refusals(&lab, "too_many_handshakes", base + 1) > base);
    assert_eq!(refusals(&lab, "tls_timeout"), 0, "closed as over the limit");
    // So is the controller meanwhile: reported as unreachable, nothing ran.
    let (answer, code) = lab.run(&request("srv1", "hostname"));
    assert_eq!(code, 1, "{answer}");
    assert_eq!(answer["error"]["code"], "unreachable", "{answer}");
    assert!(wait_refusals(&lab, "too_many_handshakes", base + 2) >= base + 2);
    assert_eq!(
        refusals(&lab, "tls_timeout"),
        0,
        "the silent peers still hold their slots"
    );
    // The silent peers are cut at the handshake timeout (without it they
    // would hold their slots for ever)...
    for s in silent.iter_mut() {
        assert!(closed_within(s, Duration::from_secs(12)), "silent peer cut");
    }
    assert_eq!(wait_refusals(&lab, "tls_timeout", 2), 2);
    // ...and the controller gets through again.
    let (answer, code) = lab.run(&request("srv1", "hostname"));
    assert_eq!(code, 0, "{answer}");
    assert_eq!(answer["status"], "executed", "{answer}");
    assert_eq!(
        lab.agent_audit("srv1")
            .iter()
            .filter(|r| r["event"] == "executed")
            .count(),
        1,
        "exactly the request made after the timeout ran"
    );
}

#[test]
fn served_connections_count_against_max_connections() {
    let lab = limited_lab("max_connections: 2\nmax_handshakes: 2\nhandshake_timeout_secs: 3\n");
    let addr = lab.agent_addr(1);
    // Two long requests keep two authenticated connections open.
    let runs: Vec<_> = (0..2)
        .map(|_| {
            let config = lab.config();
            std::thread::spawn(move || {
                aiops_e2e::run_cmd(
                    &aiops_e2e::aiops_bin(),
                    &["run"],
                    &request("srv1", "sleep 3"),
                    &[("AIOPS_CONFIG", config.to_str().unwrap())],
                    &[],
                )
            })
        })
        .collect();
    let deadline = Instant::now() + Duration::from_secs(10);
    while lab
        .agent_audit("srv1")
        .iter()
        .filter(|r| r["event"] == "accepted")
        .count()
        < 2
    {
        assert!(Instant::now() < deadline, "the two sleeps did not start");
        std::thread::sleep(Duration::from_millis(50));
    }
    let mut over = TcpStream::connect(&addr).unwrap();
    assert!(
        closed_within(&mut over, Duration::from_secs(1)),
        "a third connection is closed while two are served"
    );
    assert!(wait_refusals(&lab, "too_many_connections", 1) >= 1);
    for r in runs {
        let out = r.join().unwrap();
        let answer = aiops_e2e::parse_answer(&out);
        assert_eq!(answer["status"], "executed", "{answer}");
    }
    // Permits come back when connections close.
    let (answer, code) = lab.run(&request("srv1", "hostname"));
    assert_eq!(code, 0, "{answer}");
}

#[test]
fn a_flood_of_bad_handshakes_is_summarised_not_recorded_one_by_one() {
    let lab = limited_lab("refusal_records_per_window: 5\nrefusal_window_secs: 2\n");
    let addr = lab.agent_addr(1);
    for _ in 0..60 {
        let mut s = TcpStream::connect(&addr).unwrap();
        // Not a TLS ClientHello: the handshake fails at once.
        let _ = s.write_all(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n");
        let _ = closed_within(&mut s, Duration::from_secs(2));
    }
    // The controller is still served during and after the flood.
    let (answer, code) = lab.run(&request("srv1", "hostname"));
    assert_eq!(code, 0, "{answer}");
    // The window ends and its summary is written by the periodic flush.
    let deadline = Instant::now() + Duration::from_secs(15);
    let summary = loop {
        let audit = lab.agent_audit("srv1");
        let total: u64 = audit
            .iter()
            .filter(|r| r["event"] == "refused_summary")
            .map(|r| r["not_recorded_one_by_one"].as_u64().unwrap())
            .sum();
        let one_by_one = refusals(&lab, "tls_refused") as u64;
        if one_by_one + total == 60 {
            break (one_by_one, total);
        }
        assert!(
            Instant::now() < deadline,
            "60 refusals not all accounted for: {one_by_one} recorded, {total} summarised"
        );
        std::thread::sleep(Duration::from_millis(200));
    };
    // At most 5 per 2-second window were recorded one by one.
    assert!(summary.0 <= 5 * 10, "{summary:?}");
    assert!(summary.1 > 0, "{summary:?}");
    let verify = std::process::Command::new(aiops_e2e::agent_bin())
        .args(["--config"])
        .arg(lab.agent_dir("srv1").join("agent.yml"))
        .args(["audit", "verify"])
        .output()
        .unwrap();
    assert!(
        verify.status.success(),
        "{}",
        String::from_utf8_lossy(&verify.stdout)
    );
}
