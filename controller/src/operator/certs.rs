//! Certificates for an installation, run by the operator (root or the
//! account that owns the PKI directory): enrollment bundles for targets
//! (`aiops certs bundle|renew NAME`) and the controller's own certificate
//! (`aiops certs renew --controller`).

use std::net::{IpAddr, SocketAddr};
use std::path::PathBuf;

use aiops_certs::bundle::{BUNDLE_FORMAT, Bundle};
use aiops_certs::pki::{self, Ca, LeafSpec, PkiDir, Usage};
use aiops_types::{TargetAddress, TargetName};
use serde_json::{Value, json};

fn e<E: std::fmt::Display>(what: impl std::fmt::Display) -> impl FnOnce(E) -> String {
    move |err| format!("{what}: {err}")
}

/// What to put in a bundle.
#[derive(Debug, Clone)]
pub struct BundleSpec {
    /// Target name.
    pub name: String,
    /// `host:port` the controller connects to.
    pub address: String,
    /// Listen address for the agent [default: the address if it is an IP, else 0.0.0.0:port].
    pub listen: Option<SocketAddr>,
    /// Extra DNS names.
    pub dns: Vec<String>,
    /// Extra IP addresses.
    pub ips: Vec<IpAddr>,
    /// Output file.
    pub out: PathBuf,
    /// Certificate lifetime in days.
    pub days: i64,
    /// The controller's identity agents will require.
    pub identity: String,
}

/// Issues a fresh agent certificate and key for `spec.name` and writes the bundle.
pub fn make_bundle(pki_dir: &PkiDir, spec: &BundleSpec) -> Result<Bundle, String> {
    TargetName::new(spec.name.as_str()).map_err(|x| x.to_string())?;
    let address = TargetAddress::parse(&spec.address).map_err(|x| x.to_string())?;
    let (host, port) = (address.host().to_string(), address.port());
    let mut dns = spec.dns.clone();
    let mut ips = spec.ips.clone();
    match host.parse::<IpAddr>() {
        Ok(ip) => ips.push(ip),
        Err(_) => dns.push(host.clone()),
    }
    let listen = match spec.listen {
        Some(l) => l,
        None => spec
            .address
            .parse::<SocketAddr>()
            .unwrap_or_else(|_| SocketAddr::from(([0, 0, 0, 0], port))),
    };
    let ca = Ca::load(pki_dir).map_err(|x| x.to_string())?;
    let (cert, key) = ca
        .issue(&LeafSpec {
            name: spec.name.clone(),
            dns,
            ips,
            usage: Usage::Server,
            days: spec.days,
        })
        .map_err(|x| x.to_string())?;
    let signing = std::fs::read_to_string(pki_dir.signing_pub())
        .map_err(e(pki_dir.signing_pub().display()))?;
    let identity = controller_identity(pki_dir, &spec.identity)?;
    let mut approver_keys = Vec::new();
    if let Ok(k) = std::fs::read_to_string(pki_dir.approver_pub()) {
        aiops_certs::signing::VerifyingKey::parse(&k)
            .map_err(e(pki_dir.approver_pub().display()))?;
        approver_keys.push(k.trim().to_string());
    }
    let not_after = pki::cert_not_after(&cert).map_err(|x| x.to_string())?;
    let bundle = Bundle {
        aiops_enrollment: BUNDLE_FORMAT,
        name: spec.name.clone(),
        listen,
        address: spec.address.clone(),
        controller_identity: identity,
        controller_signing_key: signing.trim().to_string(),
        approver_keys,
        ca_pem: ca.cert_pem().to_string(),
        agent_cert_pem: cert,
        agent_key_pem: key,
        issued_at: aiops_sys::rfc3339_ms(aiops_sys::now_ms()),
        cert_not_after: aiops_sys::rfc3339_ms(not_after * 1000),
    };
    let text = format!(
        "# aiops enrollment bundle for {name}: holds its PRIVATE KEY. Copy it to {name} over a\n\
         # trusted channel, run `aiops-agent enroll FILE` (or `setup-aiops.sh srv1 FILE`) there,\n\
         # then delete every copy.\n{}",
        serde_yaml::to_string(&bundle).map_err(e("bundle"))?,
        name = spec.name
    );
    if let Some(dir) = spec.out.parent().filter(|d| !d.as_os_str().is_empty()) {
        use std::os::unix::fs::DirBuilderExt;
        std::fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(dir)
            .map_err(e(dir.display()))?;
    }
    aiops_sys::write_file_mode(&spec.out, text.as_bytes(), 0o600).map_err(e(spec.out.display()))?;
    Ok(bundle)
}

/// Checks that the controller's certificate carries `identity` (what agents will require).
fn controller_identity(pki_dir: &PkiDir, identity: &str) -> Result<String, String> {
    let certs =
        aiops_certs::tls::load_certs(&pki_dir.controller_cert()).map_err(|x| x.to_string())?;
    let first = certs.first().ok_or("controller.pem holds no certificate")?;
    if aiops_certs::tls::has_identity(first, identity) {
        Ok(identity.to_string())
    } else {
        Err(format!(
            "{} does not carry the identity {identity:?} (pass --identity)",
            pki_dir.controller_cert().display()
        ))
    }
}

/// Re-issues the controller's client certificate (same CA, identity and signing key):
/// agents trust it without any change on their side.
pub fn renew_controller(pki_dir: &PkiDir, identity: &str, days: i64) -> Result<Value, String> {
    let identity = controller_identity(pki_dir, identity)?;
    let ca = Ca::load(pki_dir).map_err(|x| x.to_string())?;
    let (cert, key) = ca
        .issue(&LeafSpec {
            name: identity.clone(),
            dns: Vec::new(),
            ips: Vec::new(),
            usage: Usage::Client,
            days,
        })
        .map_err(|x| x.to_string())?;
    aiops_sys::write_file_mode(&pki_dir.controller_key(), key.as_bytes(), 0o600)
        .map_err(e(pki_dir.controller_key().display()))?;
    aiops_sys::write_file_mode(&pki_dir.controller_cert(), cert.as_bytes(), 0o644)
        .map_err(e(pki_dir.controller_cert().display()))?;
    let not_after = pki::cert_not_after(&cert).map_err(|x| x.to_string())?;
    Ok(json!({
        "status": "ok", "renewed": "controller", "identity": identity,
        "cert": pki_dir.controller_cert(),
        "cert_not_after": aiops_sys::rfc3339_ms(not_after * 1000),
    }))
}
