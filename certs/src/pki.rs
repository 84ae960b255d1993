//! The aiops PKI: one CA, a controller client certificate, agent server
//! certificates and the controller's request-signing key.
//!
//! Layout of a PKI directory (`aiops certs init --dir DIR`):
//! `ca.pem ca.key controller.pem controller.key signing.key signing.pub`,
//! plus `agents/NAME.pem agents/NAME.key` for each issued agent.
//! Private keys are written mode 0600 and never printed.

use std::net::IpAddr;
use std::path::{Path, PathBuf};

use rcgen::{
    BasicConstraints, CertificateParams, DistinguishedName, DnType, ExtendedKeyUsagePurpose, IsCa,
    Issuer, KeyPair, KeyUsagePurpose, SanType,
};

use crate::signing::SigningKey;
use aiops_sys::write_file_mode;

/// The identity (DNS SAN) the controller's client certificate carries by default.
pub const CONTROLLER_IDENTITY: &str = "aiops-controller";

/// Lifetime of the CA certificate.
pub const CA_DAYS: i64 = 3650;
/// Lifetime of controller and agent certificates.
pub const LEAF_DAYS: i64 = 365;

/// PKI errors.
#[derive(Debug, thiserror::Error)]
pub enum PkiError {
    /// File system error on a named path.
    #[error("{path}: {source}")]
    Io {
        /// The path.
        path: String,
        /// The error.
        source: std::io::Error,
    },
    /// Certificate generation or parsing failed.
    #[error("certificate error: {0}")]
    Cert(String),
    /// Refusing to overwrite an existing PKI.
    #[error("{0} already exists; pass --force to replace it")]
    Exists(String),
}

fn io_err(path: &Path) -> impl FnOnce(std::io::Error) -> PkiError + '_ {
    move |source| PkiError::Io {
        path: path.display().to_string(),
        source,
    }
}

fn cert_err(e: impl std::fmt::Display) -> PkiError {
    PkiError::Cert(e.to_string())
}

/// Paths of the files in a PKI directory.
#[derive(Debug, Clone)]
pub struct PkiDir {
    /// The directory.
    pub dir: PathBuf,
}

impl PkiDir {
    /// Wraps a directory path.
    pub fn new(dir: impl Into<PathBuf>) -> PkiDir {
        PkiDir { dir: dir.into() }
    }
    /// CA certificate (public).
    pub fn ca_cert(&self) -> PathBuf {
        self.dir.join("ca.pem")
    }
    /// CA private key.
    pub fn ca_key(&self) -> PathBuf {
        self.dir.join("ca.key")
    }
    /// Controller client certificate.
    pub fn controller_cert(&self) -> PathBuf {
        self.dir.join("controller.pem")
    }
    /// Controller client key.
    pub fn controller_key(&self) -> PathBuf {
        self.dir.join("controller.key")
    }
    /// Controller request-signing key (private).
    pub fn signing_key(&self) -> PathBuf {
        self.dir.join("signing.key")
    }
    /// Controller request-signing key (public, `ed25519:<hex>`).
    pub fn signing_pub(&self) -> PathBuf {
        self.dir.join("signing.pub")
    }
    /// Approver signing key (private; in production readable only by the approver account).
    pub fn approver_key(&self) -> PathBuf {
        self.dir.join("approver.key")
    }
    /// Approver public key (`ed25519:<hex>`), pinned by agents.
    pub fn approver_pub(&self) -> PathBuf {
        self.dir.join("approver.pub")
    }
    /// An agent's certificate.
    pub fn agent_cert(&self, name: &str) -> PathBuf {
        self.dir.join("agents").join(format!("{name}.pem"))
    }
    /// An agent's key.
    pub fn agent_key(&self, name: &str) -> PathBuf {
        self.dir.join("agents").join(format!("{name}.key"))
    }
}

/// What a certificate is for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Usage {
    /// TLS server (agents).
    Server,
    /// TLS client (the controller).
    Client,
}

/// A certificate to issue.
#[derive(Debug, Clone)]
pub struct LeafSpec {
    /// Common name, also the first DNS SAN.
    pub name: String,
    /// Extra DNS SANs.
    pub dns: Vec<String>,
    /// IP SANs.
    pub ips: Vec<IpAddr>,
    /// Server or client.
    pub usage: Usage,
    /// Validity in days from now (negative values make already-expired certificates, for tests).
    pub days: i64,
}

/// A loaded certificate authority.
pub struct Ca {
    cert_pem: String,
    key: KeyPair,
}

impl Ca {
    /// Generates a new CA named `cn`.
    pub fn generate(cn: &str) -> Result<Ca, PkiError> {
        let key = KeyPair::generate().map_err(cert_err)?;
        let mut params = CertificateParams::default();
        let mut dn = DistinguishedName::new();
        // A unique name per CA, so a certificate from another aiops CA is
        // reported as "unknown issuer" rather than a bad signature.
        let cn = format!(
            "{cn} {}",
            &aiops_sys::sha256_hex(key.public_key_raw())[..12]
        );
        dn.push(DnType::CommonName, cn);
        dn.push(DnType::OrganizationName, "aiops");
        params.distinguished_name = dn;
        params.is_ca = IsCa::Ca(BasicConstraints::Constrained(0));
        params.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
        let now = time::OffsetDateTime::now_utc();
        params.not_before = now - time::Duration::minutes(5);
        params.not_after = now + time::Duration::days(CA_DAYS);
        let cert = params.self_signed(&key).map_err(cert_err)?;
        Ok(Ca {
            cert_pem: cert.pem(),
            key,
        })
    }

    /// Loads `ca.pem` and `ca.key` from a PKI directory.
    pub fn load(pki: &PkiDir) -> Result<Ca, PkiError> {
        let cert_pem = std::fs::read_to_string(pki.ca_cert()).map_err(io_err(&pki.ca_cert()))?;
        let key_pem = std::fs::read_to_string(pki.ca_key()).map_err(io_err(&pki.ca_key()))?;
        Ok(Ca {
            cert_pem,
            key: KeyPair::from_pem(&key_pem).map_err(cert_err)?,
        })
    }

    /// The CA certificate in PEM.
    pub fn cert_pem(&self) -> &str {
        &self.cert_pem
    }

    /// Issues a leaf certificate; returns (certificate PEM, private key PEM).
    pub fn issue(&self, spec: &LeafSpec) -> Result<(String, String), PkiError> {
        let issuer = Issuer::from_ca_cert_pem(&self.cert_pem, &self.key).map_err(cert_err)?;
        let key = KeyPair::generate().map_err(cert_err)?;
        let mut params = CertificateParams::default();
        let mut dn = DistinguishedName::new();
        dn.push(DnType::CommonName, spec.name.as_str());
        dn.push(DnType::OrganizationName, "aiops");
        params.distinguished_name = dn;
        let mut sans = Vec::new();
        for d in std::iter::once(&spec.name).chain(spec.dns.iter()) {
            let san = SanType::DnsName(d.clone().try_into().map_err(cert_err)?);
            if !sans.contains(&san) {
                sans.push(san);
            }
        }
        sans.extend(spec.ips.iter().map(|ip| SanType::IpAddress(*ip)));
        params.subject_alt_names = sans;
        params.key_usages = vec![KeyUsagePurpose::DigitalSignature];
        params.extended_key_usages = vec![match spec.usage {
            Usage::Server => ExtendedKeyUsagePurpose::ServerAuth,
            Usage::Client => ExtendedKeyUsagePurpose::ClientAuth,
        }];
        let now = time::OffsetDateTime::now_utc();
        if spec.days >= 0 {
            params.not_before = now - time::Duration::minutes(5);
            params.not_after = now + time::Duration::days(spec.days);
        } else {
            params.not_before = now + time::Duration::days(spec.days * 2);
            params.not_after = now + time::Duration::days(spec.days);
        }
        params.use_authority_key_identifier_extension = true;
        let cert = params.signed_by(&key, &issuer).map_err(cert_err)?;
        Ok((cert.pem(), key.serialize_pem()))
    }
}

/// What `init` created.
#[derive(Debug)]
pub struct InitSummary {
    /// The PKI directory.
    pub dir: PathBuf,
    /// Key id of the request-signing key.
    pub signing_key_id: String,
    /// The public signing key (`ed25519:<hex>`).
    pub signing_public_key: String,
    /// The controller's identity.
    pub controller_identity: String,
}

/// Creates a new CA, controller client certificate and request-signing key in `pki.dir`.
pub fn init(pki: &PkiDir, controller_identity: &str, force: bool) -> Result<InitSummary, PkiError> {
    if pki.ca_key().exists() && !force {
        return Err(PkiError::Exists(pki.ca_key().display().to_string()));
    }
    create_private_dir(&pki.dir)?;
    let ca = Ca::generate("aiops CA")?;
    write(&pki.ca_cert(), ca.cert_pem.as_bytes(), 0o644)?;
    write(&pki.ca_key(), ca.key.serialize_pem().as_bytes(), 0o600)?;
    let (cert, key) = ca.issue(&LeafSpec {
        name: controller_identity.to_string(),
        dns: Vec::new(),
        ips: Vec::new(),
        usage: Usage::Client,
        days: LEAF_DAYS,
    })?;
    write(&pki.controller_cert(), cert.as_bytes(), 0o644)?;
    write(&pki.controller_key(), key.as_bytes(), 0o600)?;
    let signing = SigningKey::generate();
    write(&pki.signing_key(), signing.to_pem().as_bytes(), 0o600)?;
    let public = signing.verifying_key();
    write(
        &pki.signing_pub(),
        format!("{}\n", public.to_text()).as_bytes(),
        0o644,
    )?;
    Ok(InitSummary {
        dir: pki.dir.clone(),
        signing_key_id: public.key_id(),
        signing_public_key: public.to_text(),
        controller_identity: controller_identity.to_string(),
    })
}

/// Issues an agent server certificate for `name` (DNS SAN `name` plus `dns`, IP SANs `ips`)
/// into `pki.dir/agents/`; returns (certificate path, key path).
pub fn issue_agent(
    pki: &PkiDir,
    name: &str,
    dns: &[String],
    ips: &[IpAddr],
) -> Result<(PathBuf, PathBuf), PkiError> {
    let ca = Ca::load(pki)?;
    let (cert, key) = ca.issue(&LeafSpec {
        name: name.to_string(),
        dns: dns.to_vec(),
        ips: ips.to_vec(),
        usage: Usage::Server,
        days: LEAF_DAYS,
    })?;
    create_private_dir(&pki.dir.join("agents"))?;
    write(&pki.agent_cert(name), cert.as_bytes(), 0o644)?;
    write(&pki.agent_key(name), key.as_bytes(), 0o600)?;
    Ok((pki.agent_cert(name), pki.agent_key(name)))
}

/// Creates an approver signing key pair at `key` (0600) and `key` with `.pub` (0644);
/// returns the public key text.
pub fn init_approver_key(key: &Path, force: bool) -> Result<String, PkiError> {
    if key.exists() && !force {
        return Err(PkiError::Exists(key.display().to_string()));
    }
    if let Some(dir) = key.parent() {
        create_private_dir(dir)?;
    }
    let signing = SigningKey::generate();
    write(key, signing.to_pem().as_bytes(), 0o600)?;
    let public = signing.verifying_key().to_text();
    write(
        &key.with_extension("pub"),
        format!("{public}\n").as_bytes(),
        0o644,
    )?;
    Ok(public)
}

/// Unix seconds at which the first certificate in `pem` expires.
pub fn cert_not_after(pem: &str) -> Result<i64, PkiError> {
    let der = crate::signing::pem_decode(pem, "CERTIFICATE")
        .ok_or_else(|| PkiError::Cert("no CERTIFICATE block".into()))?;
    let (_, cert) = x509_parser::parse_x509_certificate(&der).map_err(cert_err)?;
    Ok(cert.validity().not_after.timestamp())
}

fn write(path: &Path, data: &[u8], mode: u32) -> Result<(), PkiError> {
    write_file_mode(path, data, mode).map_err(io_err(path))
}

fn create_private_dir(dir: &Path) -> Result<(), PkiError> {
    use std::os::unix::fs::DirBuilderExt;
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(dir)
        .map_err(io_err(dir))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    #[test]
    fn init_writes_private_keys_0600_and_refuses_overwrite() {
        let dir = tempfile::tempdir().unwrap();
        let pki = PkiDir::new(dir.path().join("pki"));
        let s = init(&pki, CONTROLLER_IDENTITY, false).unwrap();
        assert_eq!(s.signing_key_id.len(), 16);
        for p in [pki.ca_key(), pki.controller_key(), pki.signing_key()] {
            let mode = std::fs::metadata(&p).unwrap().permissions().mode() & 0o777;
            assert_eq!(mode, 0o600, "{}", p.display());
        }
        assert!(matches!(
            init(&pki, CONTROLLER_IDENTITY, false),
            Err(PkiError::Exists(_))
        ));
        let (cert, key) = issue_agent(&pki, "srv1", &[], &["127.0.0.1".parse().unwrap()]).unwrap();
        let mode = std::fs::metadata(&key).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600);
        let not_after = cert_not_after(&std::fs::read_to_string(cert).unwrap()).unwrap();
        let days = (not_after - aiops_sys::now_ms() / 1000) / 86400;
        assert!((LEAF_DAYS - 1..=LEAF_DAYS).contains(&days), "{days}");
    }
}
