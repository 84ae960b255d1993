//! Who may open a connection, before any TLS byte is read: the optional
//! `allowed_peers` address list, and a per-source-address bound on pending
//! handshakes, so that an unauthenticated flood from one address cannot use
//! up `max_handshakes` and lock the controller out.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::{Arc, Mutex};

/// An address or a network (`10.0.0.0/8`, `fd00::/8`, `127.0.0.1`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PeerNet {
    addr: IpAddr,
    prefix: u8,
}

impl PeerNet {
    /// Parses `ADDR` or `ADDR/PREFIX`.
    pub fn parse(text: &str) -> Result<PeerNet, String> {
        let (a, p) = match text.trim().split_once('/') {
            Some((a, p)) => (a, Some(p)),
            None => (text.trim(), None),
        };
        let addr: IpAddr = a
            .parse()
            .map_err(|e| format!("allowed_peers: {text:?}: {e}"))?;
        let max = if addr.is_ipv4() { 32 } else { 128 };
        let prefix = match p {
            Some(p) => p
                .parse::<u8>()
                .ok()
                .filter(|p| *p <= max)
                .ok_or_else(|| format!("allowed_peers: {text:?}: prefix must be 0..={max}"))?,
            None => max,
        };
        Ok(PeerNet { addr, prefix })
    }

    /// Whether `ip` is in this network.
    pub fn contains(&self, ip: IpAddr) -> bool {
        match (self.addr, ip.to_canonical()) {
            (IpAddr::V4(net), IpAddr::V4(ip)) => {
                let mask = u32::MAX
                    .checked_shl(32 - u32::from(self.prefix))
                    .unwrap_or(0);
                u32::from(net) & mask == u32::from(ip) & mask
            }
            (IpAddr::V6(net), IpAddr::V6(ip)) => {
                let mask = u128::MAX
                    .checked_shl(128 - u32::from(self.prefix))
                    .unwrap_or(0);
                u128::from(net) & mask == u128::from(ip) & mask
            }
            _ => false,
        }
    }
}

/// Pending handshakes per source address.
#[derive(Debug)]
pub struct PerPeer {
    max: usize,
    held: Mutex<HashMap<IpAddr, usize>>,
}

/// One pending handshake of one address; released on drop.
#[derive(Debug)]
pub struct PeerSlot {
    owner: Arc<PerPeer>,
    ip: IpAddr,
}

impl PerPeer {
    /// At most `max` at once per address.
    pub fn new(max: usize) -> Arc<PerPeer> {
        Arc::new(PerPeer {
            max,
            held: Mutex::new(HashMap::new()),
        })
    }

    /// A slot for `ip`, or `None` when it already holds `max`.
    pub fn try_acquire(self: &Arc<PerPeer>, ip: IpAddr) -> Option<PeerSlot> {
        let ip = ip.to_canonical();
        let mut held = self.held.lock().unwrap_or_else(|p| p.into_inner());
        let n = held.entry(ip).or_default();
        if *n >= self.max {
            return None;
        }
        *n += 1;
        Some(PeerSlot {
            owner: self.clone(),
            ip,
        })
    }
}

impl Drop for PeerSlot {
    fn drop(&mut self) {
        let mut held = self.owner.held.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(n) = held.get_mut(&self.ip) {
            *n -= 1;
            if *n == 0 {
                held.remove(&self.ip);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn networks_match_addresses_and_prefixes() {
        let ip = |s: &str| s.parse::<IpAddr>().unwrap();
        let one = PeerNet::parse("127.0.0.1").unwrap();
        assert!(one.contains(ip("127.0.0.1")));
        assert!(!one.contains(ip("127.0.0.2")));
        assert!(one.contains(ip("::ffff:127.0.0.1")));
        let net = PeerNet::parse("10.1.0.0/16").unwrap();
        assert!(net.contains(ip("10.1.200.3")) && !net.contains(ip("10.2.0.1")));
        assert!(PeerNet::parse("0.0.0.0/0").unwrap().contains(ip("8.8.8.8")));
        assert!(PeerNet::parse("fd00::/8").unwrap().contains(ip("fd12::1")));
        for bad in ["10.0.0.0/33", "nope", "::1/129", "1.2.3.4/x"] {
            assert!(PeerNet::parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn each_address_holds_at_most_its_share() {
        let p = PerPeer::new(2);
        let a: IpAddr = "127.0.0.2".parse().unwrap();
        let b: IpAddr = "127.0.0.1".parse().unwrap();
        let s1 = p.try_acquire(a).unwrap();
        let _s2 = p.try_acquire(a).unwrap();
        assert!(p.try_acquire(a).is_none());
        assert!(
            p.try_acquire(b).is_some(),
            "another address is not affected"
        );
        drop(s1);
        assert!(p.try_acquire(a).is_some());
    }
}
