//! The configured targets, run by the operator (the account that may edit
//! the controller's configuration): `aiops targets add|import` edit it under
//! a lock, `aiops targets check` calls Describe and the gRPC health service
//! of every target.

use std::os::unix::fs::{MetadataExt, OpenOptionsExt};
use std::path::Path;

use aiops_types::{TargetAddress, TargetName};
use serde_json::{Value, json};

fn e<E: std::fmt::Display>(what: impl std::fmt::Display) -> impl FnOnce(E) -> String {
    move |err| format!("{what}: {err}")
}

/// Adds (or updates) a target in the configuration file. An existing
/// target keeps its labels; its address and server name are replaced.
pub fn add_target(
    config: &Path,
    name: &str,
    address: &str,
    server_name: Option<&str>,
) -> Result<Value, String> {
    TargetName::new(name).map_err(|x| x.to_string())?;
    TargetAddress::parse(address).map_err(|x| x.to_string())?;
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

/// Imports an Ansible inventory (see [`super::inventory`]): adds or updates
/// its hosts as targets (labels merged, address and server name replaced)
/// and sets each of its groups to exactly its members. Targets and groups the
/// inventory does not mention are left alone. With `dry_run` nothing is
/// written. All or nothing: any problem leaves the configuration untouched.
pub fn import_inventory(
    config: &Path,
    inventory: &Path,
    format: Option<&str>,
    opts: &super::inventory::ImportOptions,
    dry_run: bool,
) -> Result<Value, String> {
    let meta = std::fs::metadata(inventory).map_err(e(inventory.display()))?;
    if meta.len() > 16 * 1024 * 1024 {
        return Err(format!("{}: larger than 16 MiB", inventory.display()));
    }
    let text = std::fs::read_to_string(inventory).map_err(e(inventory.display()))?;
    let inv = super::inventory::parse(&text, format)
        .map_err(|m| format!("{}: {m}", inventory.display()))?;
    let imported = super::inventory::to_targets(&inv, opts)
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

/// Calls `grpc.health.v1.Health/Check` (overall health) with `tonic-health`'s
/// client; returns the status name (`SERVING`, `NOT_SERVING`, ...) or the error.
pub async fn health(channel: tonic::transport::Channel) -> Result<String, String> {
    use tonic_health::pb::health_client::HealthClient;
    use tonic_health::pb::{HealthCheckRequest, health_check_response::ServingStatus};
    let resp = HealthClient::new(channel)
        .check(HealthCheckRequest {
            service: String::new(),
        })
        .await
        .map_err(|s| format!("{:?}: {}", s.code(), s.message()))?;
    Ok(match ServingStatus::try_from(resp.into_inner().status) {
        Ok(ServingStatus::Unknown) => "UNKNOWN",
        Ok(ServingStatus::Serving) => "SERVING",
        Ok(ServingStatus::NotServing) => "NOT_SERVING",
        Ok(ServingStatus::ServiceUnknown) => "SERVICE_UNKNOWN",
        Err(_) => "INVALID",
    }
    .to_string())
}

/// `aiops targets check`: Describe and health of every target, at once.
pub async fn check_targets(
    loaded: &crate::config::Loaded,
    sender: &crate::dispatch::Sender,
) -> Vec<Value> {
    use crate::dispatch::client;
    let timeout = std::time::Duration::from_millis(loaded.config.defaults.connect_timeout_ms);
    let checks = loaded.config.targets.iter().map(|(name, t)| async move {
        let server_name = t.server_name.clone().unwrap_or_else(|| name.clone());
        let described = match client::connect(&t.address, &server_name, sender.tls(), timeout).await {
            Ok(ch) => {
                let health = health(ch.clone()).await;
                client::describe(ch).await.map(|d| (d, health))
            }
            Err(e) => Err(e),
        };
        match described {
            Ok((d, health)) => {
                let now = aiops_sys::now_ms();
                json!({
                    "target": name, "address": t.address, "reachable": true,
                    "version": d.version, "name": d.name, "policy_digest": d.policy_digest,
                    "cert_not_after": aiops_sys::rfc3339_ms(d.cert_not_after * 1000),
                    "cert_days_left": (d.cert_not_after * 1000 - now) / 86_400_000,
                    "clock_offset_ms": d.now_ms - now,
                    "controller_key_id": d.controller_key_id,
                    "landlock_abi": d.landlock_abi, "confinement": d.confinement,
                    "health": health.unwrap_or_else(|e| format!("error: {e}")),
                })
            }
            Err(e) => json!({"target": name, "address": t.address, "reachable": false, "error": e.to_string()}),
        }
    });
    futures_util::future::join_all(checks).await
}
