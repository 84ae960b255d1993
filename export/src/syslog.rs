//! Syslog sink: RFC 5424 messages over TLS with RFC 5425 octet-counting
//! framing (`LEN SP SYSLOG-MSG`), for rsyslog, syslog-ng or a SIEM collector.
//!
//! One message per audit record:
//! `<PRI>1 TS HOST APP - EVENT [aiops@32473 seq=".." hash=".." ...] BOM{record JSON}`.
//! The structured data carries every field but the output text (see
//! [`super::fields`]); MSG is the whole redacted record as canonical JSON,
//! output excerpts cut to `max_output_bytes` each (their SHA-256 in SD and
//! MSG identify the full text).
//!
//! RFC 5425 has no acknowledgements, so a batch counts as delivered only
//! after a TLS close handshake: the exporter sends the batch and its
//! close_notify, and waits until the receiver closes too, which it does only
//! after reading every byte. A reset or timeout instead resends the batch
//! (at-least-once; receivers can drop duplicates by `seq`/`hash`). A
//! receiver that dies after reading a batch but before storing it loses
//! that batch: when that matters, use a receiver that stores before it
//! reads on (rsyslog: a `Direct` ruleset queue) or OTLP, which acknowledges.

use std::io::{Read, Write};
use std::net::{TcpStream, ToSocketAddrs};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use serde::Deserialize;
use serde_json::Value;

use super::{Exported, Sink, Source, fields, rel};

/// A syslog-over-TLS sink.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SyslogConfig {
    /// Sink name.
    pub name: String,
    /// `host:port` of the receiver (6514 is the RFC 5425 port).
    pub address: String,
    /// Name in the receiver's certificate [default: the address's host].
    #[serde(default)]
    pub server_name: Option<String>,
    /// CA certificate(s) the receiver's certificate must chain to.
    pub ca: PathBuf,
    /// Client certificate for receivers that require one.
    #[serde(default)]
    pub cert: Option<PathBuf>,
    /// Its key.
    #[serde(default)]
    pub key: Option<PathBuf>,
    /// Syslog facility number [default: 13, log audit].
    #[serde(default = "d_facility")]
    pub facility: u8,
    /// SD-ID of the element carrying the fields.
    #[serde(default = "d_sd_id")]
    pub sd_id: String,
    /// Bytes kept of each of stdout / stderr in MSG.
    #[serde(default = "d_max_output")]
    pub max_output_bytes: usize,
    /// Connect, write and close-handshake limit.
    #[serde(default = "d_timeout")]
    pub timeout_ms: u64,
}

fn d_facility() -> u8 {
    13
}
fn d_sd_id() -> String {
    "aiops@32473".into()
}
fn d_max_output() -> usize {
    4096
}
fn d_timeout() -> u64 {
    10_000
}

impl SyslogConfig {
    pub(crate) fn resolve(&mut self, base: &Path) {
        rel(base, &mut self.ca);
        if let Some(c) = &mut self.cert {
            rel(base, c);
        }
        if let Some(k) = &mut self.key {
            rel(base, k);
        }
    }
}

/// Escapes an SD-PARAM value (RFC 5424 6.3.3: `"`, `\` and `]`).
pub fn sd_escape(v: &str) -> String {
    let mut out = String::with_capacity(v.len());
    for c in v.chars() {
        if matches!(c, '"' | '\\' | ']') {
            out.push('\\');
        }
        out.push(c);
    }
    out
}

/// An SD-NAME: printable US-ASCII but `=`, space, `]`, `"`; at most 32.
fn sd_name(k: &str) -> String {
    k.chars()
        .filter(|c| c.is_ascii_graphic() && !matches!(c, '=' | ']' | '"'))
        .take(32)
        .collect()
}

fn header_field(v: &str, max: usize) -> String {
    let s: String = v
        .chars()
        .filter(|c| c.is_ascii_graphic())
        .take(max)
        .collect();
    if s.is_empty() { "-".into() } else { s }
}

/// The record's `ts` as an RFC 5424 TIMESTAMP, or NILVALUE: only a time that
/// parses as RFC 3339 and is written in TIMESTAMP's own characters (upper-case
/// `T`/`Z`, at most 32) goes into the header as it is. A record appended by a
/// group member can carry any `ts`; as written it could end the field and
/// forge the rest of the header and the structured data.
fn header_timestamp(ts: &str) -> String {
    let shaped = !ts.is_empty()
        && ts.len() <= 32
        && ts
            .bytes()
            .all(|b| b.is_ascii_digit() || matches!(b, b'T' | b'Z' | b':' | b'.' | b'+' | b'-'));
    if shaped && aiops_sys::parse_rfc3339_ms(ts).is_some() {
        ts.to_string()
    } else {
        "-".to_string()
    }
}

fn cut(s: &str, max: usize) -> String {
    if s.len() <= max {
        return s.to_string();
    }
    let mut end = max;
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    format!("{}…[cut, {} bytes in all]", &s[..end], s.len())
}

/// One RFC 5424 message (without framing).
pub fn format_message(
    e: &Exported,
    source: &Source,
    facility: u8,
    sd_id: &str,
    max_out: usize,
) -> String {
    let severity = match e.level() {
        0 => 6, // informational
        1 => 4, // warning
        _ => 3, // error
    };
    let pri = u32::from(facility.min(23)) * 8 + severity;
    let ts = header_timestamp(&e.ts);
    let mut sd = format!("[{}", sd_name(sd_id));
    for (k, v) in &e.fields {
        let Some(name) = fields::syslog_param(k) else {
            continue;
        };
        let text = match v {
            Value::String(s) => s.clone(),
            Value::Null => continue,
            other => other.to_string(),
        };
        sd.push_str(&format!(" {}=\"{}\"", sd_name(name), sd_escape(&text)));
    }
    if e.redacted {
        sd.push_str(" redacted=\"true\"");
    }
    sd.push(']');
    let mut body = e.fields.clone();
    for k in ["stdout", "stderr"] {
        if let Some(Value::String(s)) = body.get(k) {
            let c = cut(s, max_out);
            body.insert(k.into(), Value::String(c));
        }
    }
    let msg = aiops_audit::canonical(&Value::Object(body));
    format!(
        "<{pri}>1 {ts} {host} {app} - {msgid} {sd} \u{feff}{msg}",
        host = header_field(&source.host_name, 255),
        app = header_field(&source.service_name, 48),
        msgid = header_field(&e.event, 32),
    )
}

/// TLS 1.3 or 1.2: syslog receivers (rsyslog's gtls in `anon` mode, many
/// SIEM collectors) still offer only TLS 1.2, and RFC 5425 requires no more.
/// The receiver's certificate is always checked against `ca` and the name.
fn syslog_tls(config: &SyslogConfig) -> Result<rustls::ClientConfig, String> {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut roots = rustls::RootCertStore::empty();
    for c in aiops_certs::tls::load_certs(&config.ca).map_err(|e| e.to_string())? {
        roots
            .add(c)
            .map_err(|e| format!("{}: {e}", config.ca.display()))?;
    }
    let builder = rustls::ClientConfig::builder_with_provider(provider)
        .with_protocol_versions(&[&rustls::version::TLS13, &rustls::version::TLS12])
        .map_err(|e| e.to_string())?
        .with_root_certificates(roots);
    match (&config.cert, &config.key) {
        (Some(c), Some(k)) => {
            let certs = aiops_certs::tls::load_certs(c).map_err(|e| e.to_string())?;
            let key = aiops_certs::tls::load_key(k).map_err(|e| e.to_string())?;
            builder
                .with_client_auth_cert(certs, key)
                .map_err(|e| e.to_string())
        }
        (None, None) => Ok(builder.with_no_client_auth()),
        _ => Err("cert and key go together".into()),
    }
}

/// The sink.
pub struct SyslogSink {
    config: SyslogConfig,
    source: Source,
    tls: Arc<rustls::ClientConfig>,
    server_name: rustls_pki_types::ServerName<'static>,
}

impl SyslogSink {
    /// Loads the TLS material; connects only when sending.
    pub fn new(config: SyslogConfig, source: Source) -> Result<SyslogSink, String> {
        let tls = syslog_tls(&config)?;
        let host = config
            .server_name
            .clone()
            .or_else(|| config.address.rsplit_once(':').map(|(h, _)| h.to_string()))
            .unwrap_or_default();
        let server_name =
            rustls_pki_types::ServerName::try_from(host.trim_matches(['[', ']']).to_string())
                .map_err(|e| format!("server name {host:?}: {e}"))?;
        Ok(SyslogSink {
            config,
            source,
            tls: Arc::new(tls),
            server_name,
        })
    }

    fn deliver(&self, frames: &[u8]) -> Result<(), String> {
        let timeout = Duration::from_millis(self.config.timeout_ms.max(1));
        let addr = self
            .config
            .address
            .to_socket_addrs()
            .map_err(|e| format!("{}: {e}", self.config.address))?
            .next()
            .ok_or_else(|| format!("{}: no address", self.config.address))?;
        let tcp = TcpStream::connect_timeout(&addr, timeout)
            .map_err(|e| format!("connect {addr}: {e}"))?;
        tcp.set_read_timeout(Some(timeout))
            .map_err(|e| e.to_string())?;
        tcp.set_write_timeout(Some(timeout))
            .map_err(|e| e.to_string())?;
        let conn = rustls::ClientConnection::new(self.tls.clone(), self.server_name.clone())
            .map_err(|e| e.to_string())?;
        let mut tls = rustls::StreamOwned::new(conn, tcp);
        tls.write_all(frames).map_err(|e| format!("send: {e}"))?;
        tls.flush().map_err(|e| format!("send: {e}"))?;
        // Delivery check: close our side and wait for the receiver to close
        // its own, which it does once it has read everything.
        tls.conn.send_close_notify();
        tls.flush().map_err(|e| format!("close: {e}"))?;
        let _ = tls.sock.shutdown(std::net::Shutdown::Write);
        let mut buf = [0u8; 4096];
        loop {
            match tls.read(&mut buf) {
                Ok(0) => return Ok(()),
                Ok(_) => continue,
                // Closed without its own close_notify: it still read all of ours.
                Err(e) if e.kind() == std::io::ErrorKind::UnexpectedEof => return Ok(()),
                Err(e) => return Err(format!("waiting for the receiver to close: {e}")),
            }
        }
    }
}

impl Sink for SyslogSink {
    fn send(&mut self, batch: &[Exported]) -> Result<(), String> {
        let mut frames = Vec::new();
        for e in batch {
            let m = format_message(
                e,
                &self.source,
                self.config.facility,
                &self.config.sd_id,
                self.config.max_output_bytes,
            );
            frames.extend_from_slice(format!("{} ", m.len()).as_bytes());
            frames.extend_from_slice(m.as_bytes());
        }
        self.deliver(&frames)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn message_is_rfc5424_with_escaped_structured_data() {
        let Value::Object(m) = json!({
            "event": "executed", "seq": 7, "hash": "ab", "prev": "cd",
            "ts": "2026-12-01T20:00:00.123Z", "command": "echo \"a]b\\c\"",
            "exit_code": 1, "stdout": "x".repeat(10), "reasons": ["r1", "r2"],
        }) else {
            unreachable!()
        };
        let e = Exported::new(&m);
        let src = Source {
            service_name: "aiops-controller".into(),
            host_name: "gw 1".into(),
        };
        let msg = format_message(&e, &src, 13, "aiops@32473", 4);
        assert!(
            msg.starts_with(
                "<108>1 2026-12-01T20:00:00.123Z gw1 aiops-controller - executed [aiops@32473 "
            ),
            "{msg}"
        );
        assert!(msg.contains(r#"command="echo \"a\]b\\c\"""#), "{msg}");
        assert!(msg.contains(r#"reasons="[\"r1\",\"r2\"\]""#), "{msg}");
        assert!(
            !msg.contains(" stdout=\""),
            "output text stays out of SD: {msg}"
        );
        assert!(msg.contains("\u{feff}{"), "{msg}");
        assert!(msg.contains("xxxx…[cut, 10 bytes in all]"), "{msg}");
    }

    #[test]
    fn a_forged_timestamp_cannot_inject_header_or_structured_data() {
        // A group member can append a record (after the last checkpoint) whose
        // `ts` is any text: it must not reach the header as written.
        for forged in [
            "2026-12-01T20:00:00Z evil app - executed [x@1 approver=\"root\"]",
            "2026-12-01T20:00:00Z\n<13>1 - forged",
            "2026-12-01t20:00:00z",
            "yesterday",
        ] {
            let Value::Object(m) = json!({"event": "executed", "seq": 1, "ts": forged}) else {
                unreachable!()
            };
            let e = Exported::new(&m);
            let src = Source {
                service_name: "aiops-controller".into(),
                host_name: "gw1".into(),
            };
            let msg = format_message(&e, &src, 13, "aiops@32473", 4);
            assert!(
                msg.starts_with("<108>1 - gw1 aiops-controller - executed [aiops@32473 "),
                "{forged:?} -> {msg}"
            );
        }
        let Value::Object(m) =
            json!({"event": "executed", "seq": 1, "ts": "2026-12-01T20:00:00.123456+01:00"})
        else {
            unreachable!()
        };
        let msg = format_message(
            &Exported::new(&m),
            &Source {
                service_name: "a".into(),
                host_name: "h".into(),
            },
            13,
            "a@1",
            4,
        );
        assert!(
            msg.contains(">1 2026-12-01T20:00:00.123456+01:00 "),
            "{msg}"
        );
    }
}
