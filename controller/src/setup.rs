//! Setting up and maintaining an installation: enrollment bundles for targets
//! (`aiops certs bundle|renew`), adding targets to the configuration
//! (`aiops targets add`), and the gRPC health check used by `aiops targets check`.

use std::net::{IpAddr, SocketAddr};
use std::os::unix::fs::{MetadataExt, OpenOptionsExt};
use std::path::{Path, PathBuf};

use aiops_certs::bundle::{BUNDLE_FORMAT, Bundle};
use aiops_certs::pki::{self, Ca, LeafSpec, PkiDir, Usage};
use serde_json::{Value, json};

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

fn e<E: std::fmt::Display>(what: impl std::fmt::Display) -> impl FnOnce(E) -> String {
    move |err| format!("{what}: {err}")
}

/// Splits `host:port` (IPv6 as `[addr]:port`).
pub(crate) fn host_port(address: &str) -> Result<(String, u16), String> {
    if let Ok(sa) = address.parse::<SocketAddr>() {
        return Ok((sa.ip().to_string(), sa.port()));
    }
    let (host, port) = address
        .rsplit_once(':')
        .ok_or_else(|| format!("address {address:?}: expected host:port"))?;
    let port = port
        .parse::<u16>()
        .map_err(|_| format!("address {address:?}: bad port"))?;
    if host.is_empty() || !crate::config::valid_target_name(host) {
        return Err(format!("address {address:?}: bad host"));
    }
    Ok((host.to_string(), port))
}

/// Issues a fresh agent certificate and key for `spec.name` and writes the bundle.
pub fn make_bundle(pki_dir: &PkiDir, spec: &BundleSpec) -> Result<Bundle, String> {
    if !crate::config::valid_target_name(&spec.name) {
        return Err(format!("{:?} is not a valid target name", spec.name));
    }
    let (host, port) = host_port(&spec.address)?;
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

/// Adds (or updates) a target in the configuration file. An existing
/// target keeps its labels; its address and server name are replaced.
pub fn add_target(
    config: &Path,
    name: &str,
    address: &str,
    server_name: Option<&str>,
) -> Result<Value, String> {
    if !crate::config::valid_target_name(name) {
        return Err(format!("{name:?} is not a valid target name"));
    }
    host_port(address)?;
    let existed = edit_config(config, |map| {
        let targets = mapping_entry(map, "targets")?;
        let key = serde_yaml::Value::from(name);
        let existed = targets.contains_key(&key);
        let entry = targets
            .entry(key)
            .or_insert_with(|| serde_yaml::Value::Mapping(Default::default()));
        if !entry.is_mapping() {
            *entry = serde_yaml::Value::Mapping(Default::default());
        }
        let entry = entry.as_mapping_mut().expect("made a mapping above");
        entry.insert("address".into(), address.into());
        match server_name {
            Some(s) => entry.insert("server_name".into(), s.into()),
            None => entry.remove("server_name"),
        };
        Ok(existed)
    })?;
    Ok(
        json!({"status": "ok", "target": name, "address": address, "updated": existed, "config": config}),
    )
}

/// Imports an Ansible inventory (see [`crate::inventory`]): adds or updates
/// its hosts as targets (labels merged, address and server name replaced)
/// and sets each of its groups to exactly its members. Targets and groups the
/// inventory does not mention are left alone. With `dry_run` nothing is
/// written. All or nothing: any problem leaves the configuration untouched.
pub fn import_inventory(
    config: &Path,
    inventory: &Path,
    format: Option<&str>,
    opts: &crate::inventory::ImportOptions,
    dry_run: bool,
) -> Result<Value, String> {
    let meta = std::fs::metadata(inventory).map_err(e(inventory.display()))?;
    if meta.len() > 16 * 1024 * 1024 {
        return Err(format!("{}: larger than 16 MiB", inventory.display()));
    }
    let text = std::fs::read_to_string(inventory).map_err(e(inventory.display()))?;
    let inv = crate::inventory::parse(&text, format)
        .map_err(|m| format!("{}: {m}", inventory.display()))?;
    let imported = crate::inventory::to_targets(&inv, opts)
        .map_err(|m| format!("{}: {m}", inventory.display()))?;
    let loaded = crate::config::Loaded::load(config).map_err(|x| x.to_string())?;
    let (mut added, mut updated, mut unchanged) = (Vec::new(), Vec::new(), Vec::new());
    for (name, t) in &imported.targets {
        match loaded.config.targets.get(name) {
            None => added.push(name.clone()),
            Some(old) => {
                let mut labels = old.labels.clone();
                labels.extend(t.labels.clone());
                if old.address == t.address
                    && old.server_name == t.server_name
                    && labels == old.labels
                {
                    unchanged.push(name.clone());
                } else {
                    updated.push(name.clone());
                }
            }
        }
    }
    let report = json!({
        "status": "ok",
        "inventory": inventory,
        "format": inv.format,
        "hosts": inv.hosts.len(),
        "added": added,
        "updated": updated,
        "unchanged": unchanged,
        "groups": imported.groups,
        "dry_run": dry_run,
        "config": config,
    });
    if dry_run {
        return Ok(report);
    }
    edit_config(config, |map| {
        let targets = mapping_entry(map, "targets")?;
        for (name, t) in &imported.targets {
            let entry = targets
                .entry(name.as_str().into())
                .or_insert_with(|| serde_yaml::Value::Mapping(Default::default()));
            if !entry.is_mapping() {
                *entry = serde_yaml::Value::Mapping(Default::default());
            }
            let entry = entry.as_mapping_mut().expect("made a mapping above");
            entry.insert("address".into(), t.address.as_str().into());
            match &t.server_name {
                Some(s) => entry.insert("server_name".into(), s.as_str().into()),
                None => entry.remove("server_name"),
            };
            if !t.labels.is_empty() {
                let labels = mapping_entry(entry, "labels")?;
                for (k, v) in &t.labels {
                    labels.insert(k.as_str().into(), v.as_str().into());
                }
            }
        }
        let groups = mapping_entry(map, "groups")?;
        for (g, members) in &imported.groups {
            let list: Vec<serde_yaml::Value> = members.iter().map(|m| m.as_str().into()).collect();
            groups.insert(g.as_str().into(), serde_yaml::Value::Sequence(list));
        }
        Ok(())
    })?;
    Ok(report)
}

/// `map[key]` as a mapping, created when missing or null.
fn mapping_entry<'a>(
    map: &'a mut serde_yaml::Mapping,
    key: &str,
) -> Result<&'a mut serde_yaml::Mapping, String> {
    let v = map
        .entry(key.into())
        .or_insert_with(|| serde_yaml::Value::Mapping(Default::default()));
    if v.is_null() {
        *v = serde_yaml::Value::Mapping(Default::default());
    }
    v.as_mapping_mut()
        .ok_or_else(|| format!("{key} is not a mapping"))
}

/// Reads the configuration, applies `change` to its top-level mapping, checks
/// the result loads, and replaces the file atomically (same mode and owner),
/// under an exclusive lock so concurrent edits do not lose each other's work.
fn edit_config<R>(
    config: &Path,
    change: impl FnOnce(&mut serde_yaml::Mapping) -> Result<R, String>,
) -> Result<R, String> {
    let dir = config.parent().unwrap_or(Path::new("."));
    let lock_path = dir.join(".config.yml.lock");
    let lock_file = std::fs::OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .mode(0o600)
        .open(&lock_path)
        .map_err(e(lock_path.display()))?;
    let _lock = nix::fcntl::Flock::lock(lock_file, nix::fcntl::FlockArg::LockExclusive)
        .map_err(|(_, err)| format!("{}: {err}", lock_path.display()))?;
    let text = std::fs::read_to_string(config).map_err(e(config.display()))?;
    let mut doc: serde_yaml::Value = serde_yaml::from_str(&text).map_err(e(config.display()))?;
    if doc.is_null() {
        doc = serde_yaml::Value::Mapping(Default::default());
    }
    let map = doc
        .as_mapping_mut()
        .ok_or_else(|| format!("{}: not a mapping", config.display()))?;
    let result = change(map).map_err(|m| format!("{}: {m}", config.display()))?;
    let out = format!(
        "# aiops controller configuration; edited by `aiops targets add|import`\n{}",
        serde_yaml::to_string(&doc).map_err(e("yaml"))?
    );
    let meta = std::fs::metadata(config).map_err(e(config.display()))?;
    let tmp = dir.join(format!(".config.yml.new{}", std::process::id()));
    aiops_sys::write_file_mode(&tmp, out.as_bytes(), meta.mode() & 0o777)
        .map_err(e(tmp.display()))?;
    let check = crate::config::Loaded::load(&tmp);
    let written = check.map_err(|x| x.to_string()).and_then(|_| {
        if nix::unistd::geteuid().is_root() {
            std::os::unix::fs::chown(&tmp, Some(meta.uid()), Some(meta.gid()))
                .map_err(e(tmp.display()))?;
        }
        std::fs::rename(&tmp, config).map_err(e(config.display()))
    });
    if written.is_err() {
        let _ = std::fs::remove_file(&tmp);
    }
    written?;
    Ok(result)
}

/// `grpc.health.v1` messages, by hand (the controller has no generated code for them).
mod health_pb {
    #[derive(Clone, PartialEq, prost::Message)]
    pub struct HealthCheckRequest {
        #[prost(string, tag = "1")]
        pub service: String,
    }
    #[derive(Clone, PartialEq, prost::Message)]
    pub struct HealthCheckResponse {
        #[prost(int32, tag = "1")]
        pub status: i32,
    }
}

/// A prost codec for one request/response pair.
struct Codec<E, D>(std::marker::PhantomData<(E, D)>);

struct Enc<E>(std::marker::PhantomData<E>);
struct Dec<D>(std::marker::PhantomData<D>);

impl<E: prost::Message + Send + 'static> tonic::codec::Encoder for Enc<E> {
    type Item = E;
    type Error = tonic::Status;
    fn encode(
        &mut self,
        item: E,
        dst: &mut tonic::codec::EncodeBuf<'_>,
    ) -> Result<(), tonic::Status> {
        item.encode(dst)
            .map_err(|x| tonic::Status::internal(x.to_string()))
    }
}

impl<D: prost::Message + Default + Send + 'static> tonic::codec::Decoder for Dec<D> {
    type Item = D;
    type Error = tonic::Status;
    fn decode(
        &mut self,
        src: &mut tonic::codec::DecodeBuf<'_>,
    ) -> Result<Option<D>, tonic::Status> {
        D::decode(src)
            .map(Some)
            .map_err(|x| tonic::Status::internal(x.to_string()))
    }
}

impl<E, D> tonic::codec::Codec for Codec<E, D>
where
    E: prost::Message + Send + 'static,
    D: prost::Message + Default + Send + 'static,
{
    type Encode = E;
    type Decode = D;
    type Encoder = Enc<E>;
    type Decoder = Dec<D>;
    fn encoder(&mut self) -> Enc<E> {
        Enc(std::marker::PhantomData)
    }
    fn decoder(&mut self) -> Dec<D> {
        Dec(std::marker::PhantomData)
    }
}

/// Calls `grpc.health.v1.Health/Check` (overall health); returns the status name
/// (`SERVING`, `NOT_SERVING`, ...) or the error.
pub async fn health(channel: tonic::transport::Channel) -> Result<String, String> {
    let mut grpc = tonic::client::Grpc::new(channel);
    grpc.ready().await.map_err(|x| x.to_string())?;
    let codec: Codec<health_pb::HealthCheckRequest, health_pb::HealthCheckResponse> =
        Codec(std::marker::PhantomData);
    let path = tonic::codegen::http::uri::PathAndQuery::from_static("/grpc.health.v1.Health/Check");
    let resp = grpc
        .unary(
            tonic::Request::new(health_pb::HealthCheckRequest {
                service: String::new(),
            }),
            path,
            codec,
        )
        .await
        .map_err(|s| format!("{:?}: {}", s.code(), s.message()))?;
    Ok(match resp.into_inner().status {
        0 => "UNKNOWN",
        1 => "SERVING",
        2 => "NOT_SERVING",
        3 => "SERVICE_UNKNOWN",
        _ => "INVALID",
    }
    .to_string())
}
