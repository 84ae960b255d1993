//! A real rsyslog (Debian's `rsyslog` + `rsyslog-gnutls`) on loopback taking RFC 5424 over
//! TLS (RFC 5425), with certificates from our own PKI, writing each message's parsed parts
//! as one JSON line. Shared by the export tests on the host and on the nspawn target.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use aiops_certs::pki::{Ca, LeafSpec, Usage};
use serde_json::{Map, Value};

/// How the receiver's TLS is set up.
pub struct Tls<'a> {
    /// CA that client certificates must chain to.
    pub ca: &'a Path,
    /// The CA that issues the receiver's own certificate (`rsyslog.lab`, IP 127.0.0.1).
    pub issuer: &'a Ca,
    /// `Some(name)`: require a client certificate with this name (`x509/name`);
    /// `None`: no client certificate (`anon`; the client still checks ours).
    pub permitted_peer: Option<&'a str>,
    /// A GnuTLS priority string (e.g. TLS 1.2 only), or the default.
    pub priority: Option<&'a str>,
}

pub struct Rsyslog {
    pub dir: PathBuf,
    pub port: u16,
    child: Option<Child>,
}

/// Waits (bounded, so a broken build fails instead of hanging) until `done`.
pub fn wait_for(what: &str, mut done: impl FnMut() -> bool) {
    let start = Instant::now();
    while !done() {
        assert!(
            start.elapsed() < Duration::from_secs(120),
            "gave up waiting for {what}"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

impl Rsyslog {
    /// Writes the configuration under `dir` (checked with `rsyslogd -N1`); not started yet.
    pub fn new(dir: &Path, tls: &Tls) -> Rsyslog {
        std::fs::create_dir_all(dir.join("work")).unwrap();
        let (cert, key) = tls
            .issuer
            .issue(&LeafSpec {
                name: "rsyslog.lab".into(),
                dns: vec![],
                ips: vec!["127.0.0.1".parse().unwrap()],
                usage: Usage::Server,
                days: 30,
            })
            .unwrap();
        std::fs::write(dir.join("server.pem"), cert).unwrap();
        std::fs::write(dir.join("server.key"), key).unwrap();
        let port = crate::free_ports(1);
        let d = dir.display();
        let auth = match tls.permitted_peer {
            Some(peer) => format!(r#"streamDriver.authMode="x509/name" permittedPeer=["{peer}"]"#),
            None => r#"streamDriver.authMode="anon""#.to_string(),
        };
        let priority = tls
            .priority
            .map(|p| format!(r#" gnutlsPriorityString="{p}""#))
            .unwrap_or_default();
        let conf = format!(
            r#"global(workDirectory="{d}/work" maxMessageSize="256k"
       defaultNetstreamDriver="gtls"
       defaultNetstreamDriverCAFile="{ca}"
       defaultNetstreamDriverCertFile="{d}/server.pem"
       defaultNetstreamDriverKeyFile="{d}/server.key")
module(load="imtcp" streamDriver.name="gtls" streamDriver.mode="1"
       {auth}{priority})
template(name="parts" type="list") {{
  constant(value="{{")
  property(outname="version" name="protocol-version" format="jsonf") constant(value=",")
  property(outname="pri" name="pri" format="jsonf") constant(value=",")
  property(outname="timestamp" name="timereported" dateFormat="rfc3339" format="jsonf") constant(value=",")
  property(outname="host" name="hostname" format="jsonf") constant(value=",")
  property(outname="app" name="app-name" format="jsonf") constant(value=",")
  property(outname="msgid" name="msgid" format="jsonf") constant(value=",")
  property(outname="sd" name="structured-data" format="jsonf") constant(value=",")
  property(outname="msg" name="msg" format="jsonf" droplastlf="on")
  constant(value="}}\n")
}}
# Direct: each message is written before the next is read.
ruleset(name="audit" queue.type="Direct") {{
  action(type="omfile" file="{d}/received.jsonl" template="parts")
}}
input(type="imtcp" port="{port}" address="127.0.0.1" ruleset="audit")
"#,
            ca = tls.ca.display(),
        );
        std::fs::write(dir.join("rsyslog.conf"), conf).unwrap();
        let check = Command::new("/usr/sbin/rsyslogd")
            .args(["-N1", "-f"])
            .arg(dir.join("rsyslog.conf"))
            .output()
            .expect("rsyslogd (apt-get install rsyslog rsyslog-gnutls)");
        assert!(check.status.success(), "rsyslog config: {check:?}");
        Rsyslog {
            dir: dir.to_path_buf(),
            port,
            child: None,
        }
    }

    pub fn start(&mut self) {
        let log = std::fs::File::create(self.dir.join("rsyslogd.log")).unwrap();
        let child = Command::new("/usr/sbin/rsyslogd")
            .arg("-n")
            .arg("-f")
            .arg(self.dir.join("rsyslog.conf"))
            .arg("-i")
            .arg(self.dir.join("rsyslogd.pid"))
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .unwrap();
        self.child = Some(child);
        let port = self.port;
        wait_for("rsyslog to listen", || {
            std::net::TcpStream::connect(("127.0.0.1", port)).is_ok()
        });
    }

    pub fn kill(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    /// Every message received so far, parsed (`version`, `pri`, `timestamp`, `host`,
    /// `app`, `msgid`, `sd`, `msg`).
    pub fn received(&self) -> Vec<Value> {
        crate::read_jsonl(&self.dir.join("received.jsonl"))
    }

    /// The `seq` SD-PARAM of each message, in arrival order.
    pub fn seqs(&self) -> Vec<u64> {
        self.received()
            .iter()
            .filter_map(|r| {
                parse_sd(r["sd"].as_str()?)
                    .1
                    .get("seq")?
                    .as_str()?
                    .parse()
                    .ok()
            })
            .collect()
    }
}

impl Drop for Rsyslog {
    fn drop(&mut self) {
        self.kill();
    }
}

/// A parsed message and its SD-PARAMs.
pub type Message = (Value, Map<String, Value>);

/// Each record's first arrival (a resend may repeat a batch), every message checked to be
/// RFC 5424 with our SD-ID: the `seq`s in order of first arrival, and per `seq` the message.
pub fn first_arrivals(received: &[Value]) -> (Vec<u64>, BTreeMap<u64, Message>) {
    let mut first = Vec::new();
    let mut by_seq = BTreeMap::new();
    for r in received {
        assert_eq!(r["version"], "1", "parsed as RFC 5424: {r}");
        let (id, params) = parse_sd(r["sd"].as_str().unwrap_or_default());
        assert_eq!(id, "aiops@32473", "{r}");
        let seq: u64 = params["seq"].as_str().unwrap_or_default().parse().unwrap();
        if let std::collections::btree_map::Entry::Vacant(e) = by_seq.entry(seq) {
            first.push(seq);
            e.insert((r.clone(), params));
        }
    }
    (first, by_seq)
}

/// Parses one RFC 5424 SD-ELEMENT: `[id k="v" ...]` with `\"`, `\\`, `\]`.
pub fn parse_sd(sd: &str) -> (String, Map<String, Value>) {
    let inner = sd
        .strip_prefix('[')
        .and_then(|s| s.strip_suffix(']'))
        .unwrap_or_else(|| panic!("one SD element: {sd}"));
    let (id, mut rest) = inner.split_once(' ').unwrap_or((inner, ""));
    let mut params = Map::new();
    while !rest.is_empty() {
        let (name, after) = rest.split_once("=\"").expect("PARAM-NAME=\"");
        let mut value = String::new();
        let mut chars = after.char_indices();
        let end = loop {
            match chars.next().expect("closing quote") {
                (_, '\\') => value.push(chars.next().expect("escaped char").1),
                (i, '"') => break i,
                (_, c) => value.push(c),
            }
        };
        assert!(!params.contains_key(name), "param {name} twice in {sd}");
        params.insert(name.to_string(), Value::String(value));
        rest = after[end + 1..].trim_start();
    }
    (id.to_string(), params)
}

/// An SD-PARAM value as the exporter writes a JSON value: strings as they are, the rest
/// as JSON text.
pub fn sd_text(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

/// `MSG` without the UTF-8 BOM.
pub fn strip_bom(s: &str) -> &str {
    s.strip_prefix('\u{feff}').unwrap_or(s)
}
