//! An unauthenticated flood from another address does not lock the
//! controller out: each source address holds at most
//! `max_handshakes_per_peer` pending handshakes, and `allowed_peers` closes
//! other addresses before any TLS byte is read.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use aiops_e2e::{Lab, request};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// The first bytes of a TLS ClientHello that promises 512 bytes and never
/// sends them: the agent waits for the rest until its handshake deadline.
const PARTIAL_HELLO: [u8; 11] = [
    0x16, 0x03, 0x01, 0x02, 0x00, 0x01, 0x00, 0x01, 0xfc, 0x03, 0x03,
];

/// Connects from `from` (a loopback address) and sends a partial hello;
/// returns when the agent closes the connection.
async fn partial_hello(from: &str, to: std::net::SocketAddr) -> std::io::Result<()> {
    let sock = tokio::net::TcpSocket::new_v4()?;
    sock.bind(format!("{from}:0").parse().expect("address"))?;
    let mut s = sock.connect(to).await?;
    s.write_all(&PARTIAL_HELLO).await?;
    let mut buf = [0u8; 64];
    while s.read(&mut buf).await? > 0 {}
    Ok(())
}

fn refusals(lab: &Lab, reason: &str) -> usize {
    lab.agent_audit("srv1")
        .iter()
        .filter(|r| r["event"] == "refused" && r["reason"] == reason)
        .count()
}

#[test]
fn a_handshake_flood_from_another_address_leaves_the_controller_working() {
    let lab = Lab::start(1, "lab");
    let to: std::net::SocketAddr = lab.agent_addr(1).parse().unwrap();
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .unwrap();
    let stop = Arc::new(AtomicBool::new(false));
    let attempts = Arc::new(AtomicUsize::new(0));
    // 200 connections pending at once from 127.0.0.2 (more than the 128
    // `max_handshakes` of the whole agent), re-opened as the agent closes
    // them, at most 6000 in all.
    const FLOODERS: usize = 200;
    const MAX_ATTEMPTS: usize = 6000;
    let flood: Vec<_> = (0..FLOODERS)
        .map(|_| {
            let (stop, attempts) = (stop.clone(), attempts.clone());
            rt.spawn(async move {
                while !stop.load(Ordering::SeqCst)
                    && attempts.fetch_add(1, Ordering::SeqCst) < MAX_ATTEMPTS
                {
                    let _ = partial_hello("127.0.0.2", to).await;
                    tokio::time::sleep(Duration::from_millis(500)).await;
                }
            })
        })
        .collect();
    // Let the flood take every slot it can.
    std::thread::sleep(Duration::from_secs(1));
    const REQUESTS: usize = 100;
    let started = Instant::now();
    let mut ok = 0;
    let mut failures = Vec::new();
    for _ in 0..REQUESTS {
        let (answer, code) = lab.run(&request("srv1", "hostname"));
        if code == 0 && answer["status"] == "executed" {
            ok += 1;
        } else {
            failures.push(answer);
        }
    }
    let during = attempts.load(Ordering::SeqCst).min(MAX_ATTEMPTS);
    stop.store(true, Ordering::SeqCst);
    for f in flood {
        f.abort();
    }
    let pct = 100.0 * ok as f64 / REQUESTS as f64;
    println!(
        "controller requests during the flood: {ok}/{REQUESTS} succeeded ({pct:.1} %), \
         {during} partial ClientHellos from 127.0.0.2 in {:.1} s",
        started.elapsed().as_secs_f64()
    );
    assert!(
        during > 1000,
        "the flood was too small to mean anything: {during}"
    );
    assert!(ok * 100 >= REQUESTS * 99, "{ok}/{REQUESTS}: {failures:?}");
    // The flood did hit the per-address limit (so without it, it would have
    // held every one of the agent's handshake slots).
    assert!(refusals(&lab, "too_many_handshakes_from_peer") > 0);
}

#[test]
fn allowed_peers_closes_other_addresses_before_tls() {
    let lab = Lab::init(1, "lab");
    lab.append("agents/srv1/agent.yml", "allowed_peers: [127.0.0.1/32]\n");
    lab.up();
    let to: std::net::SocketAddr = lab.agent_addr(1).parse().unwrap();
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    // Closed at once, not at the handshake deadline (3 s).
    let closed = rt.block_on(async {
        tokio::time::timeout(Duration::from_secs(2), partial_hello("127.0.0.2", to)).await
    });
    assert!(
        closed.is_ok(),
        "a peer outside allowed_peers was kept waiting"
    );
    let start = Instant::now();
    while refusals(&lab, "peer_not_allowed") == 0 {
        assert!(start.elapsed() < Duration::from_secs(5), "not audited");
        std::thread::sleep(Duration::from_millis(20));
    }
    let rec = lab
        .agent_audit("srv1")
        .into_iter()
        .find(|r| r["reason"] == "peer_not_allowed")
        .unwrap();
    assert!(
        rec["peer"].as_str().unwrap().starts_with("127.0.0.2:"),
        "{rec}"
    );
    let (answer, code) = lab.run(&request("srv1", "hostname"));
    assert_eq!(
        (answer["status"].as_str(), code),
        (Some("executed"), 0),
        "{answer}"
    );
}
