//! Names and addresses, validated where they enter: a value of these types
//! is known good, so no later code indexes or caps them again.

use serde::{Deserialize, Serialize};

/// A name or address that does not have the required shape.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct NameError(String);

/// Longest target name, in bytes.
pub const MAX_TARGET_NAME: usize = 64;
/// Longest DNS name, in bytes.
pub const MAX_DNS_NAME: usize = 253;

fn name_bytes_ok(s: &str) -> bool {
    s.bytes()
        .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'-' | b'_'))
}

/// A target name: 1-64 ASCII letters, digits, `.`, `-`, `_`. The controller
/// checks it in its configuration, the agent in its own and in every request.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct TargetName(String);

impl TargetName {
    /// Checks `name`.
    pub fn new(name: impl Into<String>) -> Result<TargetName, NameError> {
        let name = name.into();
        if name.is_empty() || name.len() > MAX_TARGET_NAME || !name_bytes_ok(&name) {
            return Err(NameError(format!(
                "{name:?} is not a valid target name (1-{MAX_TARGET_NAME} ASCII letters, digits, '.', '-', '_')"
            )));
        }
        Ok(TargetName(name))
    }

    /// True when `name` would be accepted by [`TargetName::new`].
    pub fn is_valid(name: &str) -> bool {
        !name.is_empty() && name.len() <= MAX_TARGET_NAME && name_bytes_ok(name)
    }

    /// The name.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl TryFrom<String> for TargetName {
    type Error = NameError;
    fn try_from(s: String) -> Result<Self, NameError> {
        TargetName::new(s)
    }
}

impl From<TargetName> for String {
    fn from(n: TargetName) -> String {
        n.0
    }
}

impl std::fmt::Display for TargetName {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

/// A DNS identity (the name in a certificate): 1-253 ASCII letters, digits,
/// `.`, `-`, `_`, not starting or ending with a dot.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct Identity(String);

impl Identity {
    /// Checks `name`.
    pub fn new(name: impl Into<String>) -> Result<Identity, NameError> {
        let name = name.into();
        if Identity::is_valid(&name) {
            Ok(Identity(name))
        } else {
            Err(NameError(format!("{name:?} is not a valid DNS identity")))
        }
    }

    fn is_valid(name: &str) -> bool {
        !name.is_empty()
            && name.len() <= MAX_DNS_NAME
            && name_bytes_ok(name)
            && !name.starts_with('.')
            && !name.ends_with('.')
            && !name.contains("..")
    }

    /// The name.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl TryFrom<String> for Identity {
    type Error = NameError;
    fn try_from(s: String) -> Result<Self, NameError> {
        Identity::new(s)
    }
}

impl From<Identity> for String {
    fn from(n: Identity) -> String {
        n.0
    }
}

impl std::fmt::Display for Identity {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

/// Where an agent listens, as the controller dials it: `host:port`, an IPv4
/// address with a port, or `[IPv6]:port`. The one parser behind the
/// configuration, `aiops targets add`, enrollment bundles and inventory import.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct TargetAddress {
    host: String,
    port: u16,
    ip: Option<std::net::IpAddr>,
}

impl TargetAddress {
    /// Parses `address`.
    pub fn parse(address: &str) -> Result<TargetAddress, NameError> {
        if let Ok(sa) = address.parse::<std::net::SocketAddr>() {
            return Ok(TargetAddress {
                host: sa.ip().to_string(),
                port: sa.port(),
                ip: Some(sa.ip()),
            });
        }
        let (host, port) = address
            .rsplit_once(':')
            .ok_or_else(|| NameError(format!("address {address:?}: expected host:port")))?;
        let port = port
            .parse::<u16>()
            .map_err(|_| NameError(format!("address {address:?}: bad port")))?;
        if !Identity::is_valid(host) {
            return Err(NameError(format!("address {address:?}: bad host")));
        }
        Ok(TargetAddress {
            host: host.to_string(),
            port,
            ip: host.parse().ok(),
        })
    }

    /// The host (an IP address without brackets, or a DNS name).
    pub fn host(&self) -> &str {
        &self.host
    }

    /// The port.
    pub fn port(&self) -> u16 {
        self.port
    }

    /// The host as an IP address, when it is one.
    pub fn ip(&self) -> Option<std::net::IpAddr> {
        self.ip
    }
}

impl std::fmt::Display for TargetAddress {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self.ip {
            Some(std::net::IpAddr::V6(ip)) => write!(f, "[{ip}]:{}", self.port),
            _ => write!(f, "{}:{}", self.host, self.port),
        }
    }
}

/// An argv with a program: `argv[0]` exists, so no code indexes an empty one.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct NonEmptyArgv(Vec<String>);

impl NonEmptyArgv {
    /// `None` for an empty argv or an empty program name.
    pub fn new(argv: Vec<String>) -> Option<NonEmptyArgv> {
        match argv.first() {
            Some(p) if !p.is_empty() => Some(NonEmptyArgv(argv)),
            _ => None,
        }
    }

    /// `argv[0]`.
    pub fn program(&self) -> &str {
        &self.0[0]
    }

    /// `argv[1..]`.
    pub fn args(&self) -> &[String] {
        &self.0[1..]
    }

    /// The whole argv.
    pub fn as_slice(&self) -> &[String] {
        &self.0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn target_names_are_capped_and_plain() {
        assert!(TargetName::new("srv1").is_ok());
        assert!(TargetName::new("web-01.example_x").is_ok());
        assert!(TargetName::new("a".repeat(64)).is_ok());
        assert!(TargetName::new("a".repeat(65)).is_err());
        assert!(TargetName::new("").is_err());
        assert!(TargetName::new("srv 1").is_err());
        assert!(TargetName::new("srv1\n").is_err());
        assert!(serde_json::from_str::<TargetName>("\"bad/name\"").is_err());
    }

    #[test]
    fn one_address_parser_for_every_entry_point() {
        let a = TargetAddress::parse("127.0.0.1:7443").unwrap();
        assert_eq!((a.host(), a.port()), ("127.0.0.1", 7443));
        let a = TargetAddress::parse("[::1]:7443").unwrap();
        assert_eq!(
            (a.host(), a.port(), a.to_string().as_str()),
            ("::1", 7443, "[::1]:7443")
        );
        let a = TargetAddress::parse("web1.example.com:7443").unwrap();
        assert_eq!(a.to_string(), "web1.example.com:7443");
        assert!(a.ip().is_none());
        for bad in [
            "web1",
            "web1:",
            "web1:99999",
            ":7443",
            "a b:1",
            "a/b:1",
            "..:1",
        ] {
            assert!(TargetAddress::parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn argv_has_a_program() {
        assert!(NonEmptyArgv::new(vec![]).is_none());
        assert!(NonEmptyArgv::new(vec![String::new()]).is_none());
        let a = NonEmptyArgv::new(vec!["ls".into(), "-l".into()]).unwrap();
        assert_eq!((a.program(), a.args()), ("ls", &["-l".to_string()][..]));
    }
}
