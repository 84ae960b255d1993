//! Enrollment: `aiops-agent enroll BUNDLE` installs what the controller issued for this
//! target (one file: the CA, the agent's certificate and key, the controller's identity
//! and request-signing public key, the name and listen address) where the agent
//! configuration points, with the right modes, and sets `name`, `listen` and
//! `controller.identity` in the configuration.
//!
//! Files are written root-owned (when run as root) with the group of the configuration
//! file (the `aiops` group on a packaged install): certificates and the public key 0644,
//! the private key 0640. The agent can read its key; it can never change it.

use std::net::SocketAddr;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use serde::Serialize;

pub use aiops_certs::bundle::{BUNDLE_FORMAT, Bundle};

/// What an enrollment did.
#[derive(Debug, Serialize)]
pub struct Enrolled {
    /// Target name.
    pub name: String,
    /// Listen address.
    pub listen: SocketAddr,
    /// The configuration file updated.
    pub config: PathBuf,
    /// Files installed.
    pub files: Vec<PathBuf>,
    /// Certificate expiry (RFC 3339).
    pub cert_not_after: String,
    /// Key id of the pinned controller signing key.
    pub controller_key_id: String,
}

fn err<E: std::fmt::Display>(what: impl std::fmt::Display) -> impl FnOnce(E) -> String {
    move |e| format!("{what}: {e}")
}

/// Parses and checks a bundle: format, name, key, and that the certificate chains to
/// the bundled CA, names this target, is valid now and matches the key.
pub fn parse_bundle(text: &str) -> Result<Bundle, String> {
    let b: Bundle = serde_yaml::from_str(text).map_err(err("bundle"))?;
    if b.aiops_enrollment != BUNDLE_FORMAT {
        return Err(format!(
            "bundle format {} (this agent reads {BUNDLE_FORMAT})",
            b.aiops_enrollment
        ));
    }
    if b.name.is_empty() || !b.name.bytes().all(crate::config::valid_name_byte) {
        return Err(format!(
            "bundle name {:?} is not a valid target name",
            b.name
        ));
    }
    if b.controller_identity.is_empty()
        || !b
            .controller_identity
            .bytes()
            .all(crate::config::valid_name_byte)
    {
        return Err("bundle controller_identity is not a valid name".into());
    }
    aiops_certs::signing::VerifyingKey::parse(&b.controller_signing_key)
        .map_err(err("controller_signing_key"))?;
    for k in &b.approver_keys {
        aiops_certs::signing::VerifyingKey::parse(k).map_err(err("approver_keys"))?;
    }
    check_certificate(&b)?;
    Ok(b)
}

/// The certificate chains to the bundled CA, names the target, is valid now and matches the key.
fn check_certificate(bundle: &Bundle) -> Result<(), String> {
    use rustls::client::danger::ServerCertVerifier;
    use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName, UnixTime};
    let der = |pem: &str, what: &str| {
        aiops_certs::signing::pem_decode(pem, "CERTIFICATE")
            .map(CertificateDer::from)
            .ok_or_else(|| format!("{what}: no CERTIFICATE block"))
    };
    let ca = der(&bundle.ca_pem, "ca_pem")?;
    let cert = der(&bundle.agent_cert_pem, "agent_cert_pem")?;
    let mut roots = rustls::RootCertStore::empty();
    roots.add(ca).map_err(err("ca_pem"))?;
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let verifier =
        rustls::client::WebPkiServerVerifier::builder_with_provider(Arc::new(roots), provider)
            .build()
            .map_err(err("ca_pem"))?;
    let name = ServerName::try_from(bundle.name.clone()).map_err(err("name"))?;
    verifier
        .verify_server_cert(&cert, &[], &name, &[], UnixTime::now())
        .map_err(err("agent certificate"))?;
    use rustls::pki_types::pem::PemObject;
    let key = PrivateKeyDer::from_pem_slice(bundle.agent_key_pem.as_bytes())
        .map_err(err("agent_key_pem"))?;
    let signing =
        rustls::crypto::ring::sign::any_supported_type(&key).map_err(err("agent_key_pem"))?;
    let certified = rustls::sign::CertifiedKey::new(vec![cert], signing);
    certified
        .keys_match()
        .map_err(err("agent key does not match the certificate"))?;
    Ok(())
}

/// Where the configuration puts the TLS files and the controller key.
struct Targets {
    ca: PathBuf,
    cert: PathBuf,
    key: PathBuf,
    signing_key: Option<PathBuf>,
}

fn config_targets(config: &Path, text: &str) -> Result<Targets, String> {
    let v: serde_yaml::Value = serde_yaml::from_str(text).map_err(err(config.display()))?;
    let base = config.parent().unwrap_or(Path::new("."));
    let path = |section: &str, key: &str| -> Result<PathBuf, String> {
        let p = v
            .get(section)
            .and_then(|s| s.get(key))
            .and_then(|p| p.as_str())
            .ok_or_else(|| format!("{}: {section}.{key} is missing", config.display()))?;
        let p = PathBuf::from(p.trim());
        Ok(if p.is_relative() { base.join(p) } else { p })
    };
    let signing_key = match path("controller", "signing_key") {
        Ok(p) if !p.to_string_lossy().contains("ed25519:") => Some(p),
        _ => None,
    };
    Ok(Targets {
        ca: path("tls", "ca")?,
        cert: path("tls", "cert")?,
        key: path("tls", "key")?,
        signing_key,
    })
}

/// Sets top-level `key: value` (or `section:` / `  key: value`) in YAML text, keeping
/// everything else (comments, order) as it is.
pub fn set_yaml_scalar(text: &str, section: Option<&str>, key: &str, value: &str) -> String {
    let mut out: Vec<String> = Vec::new();
    let mut current_top: Option<String> = None;
    let mut done = false;
    let mut section_line = None;
    for line in text.lines() {
        let top_level = !line.starts_with([' ', '\t', '#']) && !line.trim().is_empty();
        if top_level {
            current_top = line.split(':').next().map(|k| k.trim().to_string());
            if section.is_some() && current_top.as_deref() == section {
                section_line = Some(out.len());
            }
        }
        let replace = match section {
            None => top_level && current_top.as_deref() == Some(key),
            Some(s) => {
                !top_level
                    && current_top.as_deref() == Some(s)
                    && line.trim_start().starts_with(&format!("{key}:"))
                    && line.len() - line.trim_start().len() == 2
            }
        };
        if replace && !done {
            let indent = if section.is_some() { "  " } else { "" };
            out.push(format!("{indent}{key}: {value}"));
            done = true;
        } else {
            out.push(line.to_string());
        }
    }
    if !done {
        match (section, section_line) {
            (Some(_), Some(i)) => out.insert(i + 1, format!("  {key}: {value}")),
            (Some(s), None) => {
                out.push(format!("{s}:"));
                out.push(format!("  {key}: {value}"));
            }
            (None, _) => out.push(format!("{key}: {value}")),
        }
    }
    let mut s = out.join("\n");
    s.push('\n');
    s
}

/// Writes `data` atomically with `mode`, owned by root (when we are root) and `gid`.
fn install(path: &Path, data: &[u8], mode: u32, gid: Option<u32>) -> Result<(), String> {
    use std::io::Write;
    use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
    let dir = path.parent().unwrap_or(Path::new("."));
    std::fs::create_dir_all(dir).map_err(err(dir.display()))?;
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let tmp = dir.join(format!(".{name}.enroll{}", std::process::id()));
    let _ = std::fs::remove_file(&tmp);
    let e = err(tmp.display());
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(&tmp)
        .map_err(e)?;
    let result = (|| -> std::io::Result<()> {
        f.write_all(data)?;
        if nix::unistd::geteuid().is_root() {
            std::os::unix::fs::fchown(&f, Some(0), gid)?;
        }
        f.set_permissions(std::fs::Permissions::from_mode(mode))?;
        f.sync_all()?;
        std::fs::rename(&tmp, path)
    })();
    if let Err(e) = result {
        let _ = std::fs::remove_file(&tmp);
        return Err(format!("{}: {e}", path.display()));
    }
    Ok(())
}

/// Installs `bundle_path` for the agent configured in `config`.
pub fn enroll(config: &Path, bundle_path: &Path) -> Result<Enrolled, String> {
    let meta = std::fs::metadata(bundle_path).map_err(err(bundle_path.display()))?;
    if meta.mode() & 0o004 != 0 {
        tracing::warn!(
            bundle = %bundle_path.display(),
            "the bundle holds a private key and is world-readable; delete it after enrolling"
        );
    }
    let text = std::fs::read_to_string(bundle_path).map_err(err(bundle_path.display()))?;
    let bundle = parse_bundle(&text).map_err(|e| format!("{}: {e}", bundle_path.display()))?;
    let config_text = std::fs::read_to_string(config).map_err(err(config.display()))?;
    let config_meta = std::fs::metadata(config).map_err(err(config.display()))?;
    let gid = Some(config_meta.gid());
    let targets = config_targets(config, &config_text)?;
    let mut files = vec![
        targets.ca.clone(),
        targets.cert.clone(),
        targets.key.clone(),
    ];
    install(&targets.ca, bundle.ca_pem.as_bytes(), 0o644, gid)?;
    install(&targets.cert, bundle.agent_cert_pem.as_bytes(), 0o644, gid)?;
    install(&targets.key, bundle.agent_key_pem.as_bytes(), 0o640, gid)?;
    let key_text = format!("{}\n", bundle.controller_signing_key.trim());
    let mut new_config = config_text.clone();
    match &targets.signing_key {
        Some(p) => {
            install(p, key_text.as_bytes(), 0o644, gid)?;
            files.push(p.clone());
        }
        None => {
            new_config = set_yaml_scalar(
                &new_config,
                Some("controller"),
                "signing_key",
                &format!("\"{}\"", bundle.controller_signing_key.trim()),
            );
        }
    }
    // Approver keys go beside the TLS files, one file each, listed in the config.
    let key_dir = targets.key.parent().unwrap_or(Path::new(".")).to_path_buf();
    let mut approver_files = Vec::new();
    for (i, k) in bundle.approver_keys.iter().enumerate() {
        let p = key_dir.join(format!("approver-{}.pub", i + 1));
        install(&p, format!("{}\n", k.trim()).as_bytes(), 0o644, gid)?;
        approver_files.push(format!("{:?}", p.display().to_string()));
        files.push(p);
    }
    new_config = set_yaml_scalar(
        &new_config,
        None,
        "approver_keys",
        &format!("[{}]", approver_files.join(", ")),
    );
    new_config = set_yaml_scalar(&new_config, None, "name", &bundle.name);
    new_config = set_yaml_scalar(&new_config, None, "listen", &bundle.listen.to_string());
    new_config = set_yaml_scalar(
        &new_config,
        Some("controller"),
        "identity",
        &bundle.controller_identity,
    );
    if new_config != config_text {
        install(
            config,
            new_config.as_bytes(),
            config_meta.mode() & 0o7777,
            gid,
        )?;
    }
    // The result must load exactly as the service will load it.
    let loaded = crate::config::AgentConfig::load(config).map_err(|e| e.to_string())?;
    aiops_certs::tls::server_config(&loaded.tls.ca, &loaded.tls.cert, &loaded.tls.key)
        .map_err(err("tls"))?;
    let key = aiops_certs::signing::VerifyingKey::parse(&loaded.controller.signing_key)
        .map_err(err("controller.signing_key"))?;
    Ok(Enrolled {
        name: bundle.name,
        listen: bundle.listen,
        config: config.to_path_buf(),
        files,
        cert_not_after: bundle.cert_not_after,
        controller_key_id: key.key_id(),
    })
}

#[cfg(test)]
mod tests {
    use super::set_yaml_scalar;

    #[test]
    fn set_yaml_scalar_keeps_comments_and_order() {
        let text = "# head\nname: x\nlisten: 1.2.3.4:5\ncontroller:\n  identity: a\n  signing_key: k\nlab: false\n";
        let t = set_yaml_scalar(text, None, "name", "srv1");
        let t = set_yaml_scalar(&t, Some("controller"), "identity", "ctl");
        assert_eq!(
            t,
            "# head\nname: srv1\nlisten: 1.2.3.4:5\ncontroller:\n  identity: ctl\n  signing_key: k\nlab: false\n"
        );
        let t = set_yaml_scalar(
            "controller:\n  signing_key: k\n",
            Some("controller"),
            "identity",
            "c",
        );
        assert_eq!(t, "controller:\n  identity: c\n  signing_key: k\n");
        assert_eq!(set_yaml_scalar("a: 1\n", None, "b", "2"), "a: 1\nb: 2\n");
    }
}
