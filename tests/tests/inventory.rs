//! Ansible inventories as the fleet's source: our parser against the real
//! `ansible-inventory` (ansible-core) on the same files, and
//! `aiops targets import` end to end into a lab whose imported groups then
//! run a fan-out over mTLS.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;
use std::process::Command;

use aiops_controller::operator::inventory;
use aiops_e2e::Lab;
use serde_json::{Value, json};

const INI: &str = r#"# a fleet as operators write it
bastion ansible_host=192.0.2.10 ansible_user=ops

[web]
web[01:04].example.com role=web
web-canary:2222 role=web canary=True
[web:vars]
aiops_port=7500
tier = frontend

[db]
db-[a:c] role=db
db-primary ansible_host=192.0.2.20 weight=10 note='primary db' # a comment
[db:vars]
backup_window="02:00-04:00"

[eu]
web[01:02].example.com region=eu
db-a

[prod:children]
web
db

[prod:vars]
env=prod
tier=backend
ansible_group_priority=5

[staging]
stage[1:5:2] ansible_host=10.9.0.1

[all:vars]
env=unknown
aiops_port=7443
"#;

const YAML: &str = r#"all:
  vars:
    env: unknown
    aiops_port: 7443
  hosts:
    bastion:
      ansible_host: 192.0.2.10
  children:
    prod:
      vars:
        env: prod
        tier: backend
      children:
        web:
          vars:
            aiops_port: 7500
            tier: frontend
          hosts:
            web[01:04].example.com:
              role: web
            web-canary:2222:
              role: web
              canary: true
        db:
          hosts:
            db-[a:c]:
              role: db
              aiops_labels: {team: data}
            db-primary:
              ansible_host: 192.0.2.20
              weight: 10
    eu:
      hosts:
        web01.example.com: {region: eu}
        web02.example.com: {region: eu}
        db-a:
    staging:
      hosts:
        stage[1:5:2]:
          ansible_host: 10.9.0.1
"#;

/// `ansible-inventory --list` of `path`: hostvars and each host's groups
/// (with ancestors, without `all`/`ungrouped`).
fn ansible(path: &Path) -> BTreeMap<String, (Value, BTreeSet<String>)> {
    let out = Command::new("ansible-inventory")
        .arg("-i")
        .arg(path)
        .arg("--list")
        .env("ANSIBLE_INVENTORY_UNPARSED_FAILED", "true")
        .env(
            "ANSIBLE_LOCAL_TEMP",
            std::env::temp_dir().join("ansible-e2e"),
        )
        .output()
        .expect(
            "ansible-inventory runs (Debian package ansible-core; scripts/test.sh installs it)",
        );
    assert!(
        out.status.success(),
        "ansible-inventory failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let list: Value = serde_json::from_slice(&out.stdout).expect("ansible-inventory JSON");
    let hostvars = list["_meta"]["hostvars"]
        .as_object()
        .cloned()
        .unwrap_or_default();
    // Direct members and children from the listing.
    let mut parents: BTreeMap<String, Vec<String>> = BTreeMap::new();
    let mut direct: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for (g, body) in list.as_object().unwrap() {
        if g == "_meta" {
            continue;
        }
        for c in body["children"].as_array().into_iter().flatten() {
            parents
                .entry(c.as_str().unwrap().to_string())
                .or_default()
                .push(g.clone());
        }
        for h in body["hosts"].as_array().into_iter().flatten() {
            direct
                .entry(h.as_str().unwrap().to_string())
                .or_default()
                .push(g.clone());
        }
    }
    let mut hosts = BTreeMap::new();
    for (h, groups) in direct {
        let mut all = BTreeSet::new();
        let mut todo = groups;
        while let Some(g) = todo.pop() {
            if all.insert(g.clone()) {
                todo.extend(parents.get(&g).cloned().unwrap_or_default());
            }
        }
        all.remove("all");
        all.remove("ungrouped");
        let vars = hostvars.get(&h).cloned().unwrap_or(json!({}));
        hosts.insert(h, (vars, all));
    }
    hosts
}

fn ours(text: &str) -> BTreeMap<String, (Value, BTreeSet<String>)> {
    let inv = inventory::parse(text, None).expect("our parser reads it");
    inv.hosts
        .into_iter()
        .map(|(h, host)| (h, (Value::Object(host.vars), host.groups)))
        .collect()
}

#[test]
fn parser_agrees_with_ansible_inventory_on_ini_and_yaml() {
    let dir = tempfile::tempdir().unwrap();
    for (name, text, format) in [("hosts.ini", INI, "ini"), ("hosts.yml", YAML, "yaml")] {
        let path = dir.path().join(name);
        std::fs::write(&path, text).unwrap();
        let theirs = ansible(&path);
        let mine = ours(text);
        assert_eq!(
            inventory::parse(text, None).unwrap().format,
            format,
            "{name}: format detection"
        );
        assert_eq!(
            mine.keys().collect::<Vec<_>>(),
            theirs.keys().collect::<Vec<_>>(),
            "{name}: the same hosts"
        );
        assert_eq!(mine.len(), 13, "{name}: ranges expanded");
        for (host, (vars, groups)) in &theirs {
            let (my_vars, my_groups) = &mine[host];
            assert_eq!(my_groups, groups, "{name}: groups of {host}");
            assert_eq!(my_vars, vars, "{name}: variables of {host}");
        }
    }
    // The two files describe the same fleet, so they become the same targets
    // and groups (labels differ: only the YAML gives db hosts a team).
    let opts = inventory::ImportOptions {
        default_port: 7443,
        label_vars: vec!["role".into(), "env".into()],
    };
    let a = inventory::to_targets(&inventory::parse(INI, None).unwrap(), &opts).unwrap();
    let b = inventory::to_targets(&inventory::parse(YAML, None).unwrap(), &opts).unwrap();
    assert_eq!(a.groups, b.groups);
    for (name, t) in &a.targets {
        assert_eq!(t.address, b.targets[name].address, "{name}");
    }
    assert_eq!(a.targets.len(), b.targets.len());
    assert_eq!(
        b.targets["web03.example.com"].address,
        "web03.example.com:7500"
    );
    assert_eq!(b.targets["db-primary"].address, "192.0.2.20:7443");
    assert_eq!(b.targets["db-b"].labels["team"], "data");
    assert_eq!(b.targets["bastion"].labels["env"], "unknown");
    assert_eq!(b.targets["web01.example.com"].labels["env"], "prod");
    assert_eq!(
        b.groups["eu"],
        ["db-a", "web01.example.com", "web02.example.com"]
    );
    assert_eq!(b.groups["prod"].len(), 9);
}

/// Refusals of the same kind `ansible-inventory` refuses, and ours on top
/// (names that cannot be targets).
#[test]
fn bad_inventories_are_refused_and_the_config_is_untouched() {
    let lab = Lab::init(1, "lab");
    let before = std::fs::read(lab.config()).unwrap();
    let dir = tempfile::tempdir().unwrap();
    for (i, (text, want)) in [
        ("[web:vars]\nx=1\n", "never declared"),
        ("[web]\nhost x='unclosed\n", "closing quotation"),
        ("[web]\n2001:db8::5\n", "not a valid target name"),
        ("[web]\nh aiops_port=99999\n", "not a port"),
        ("all:\n  hosts: [a, b]\n", "must be a mapping"),
        ("[a:children]\nb\n[b:children]\na\n", "child of itself"),
    ]
    .iter()
    .enumerate()
    {
        let path = dir.path().join(format!("bad{i}"));
        std::fs::write(&path, text).unwrap();
        let out = lab.aiops(&["targets", "import", path.to_str().unwrap()]);
        let answer = aiops_e2e::parse_answer(&out);
        assert_eq!(out.status.code(), Some(2), "{text:?}: {answer}");
        assert_eq!(answer["status"], "error", "{answer}");
        assert_eq!(answer["error"]["code"], "inventory", "{answer}");
        let message = answer["error"]["message"].as_str().unwrap();
        assert!(message.contains(want), "{text:?}: {message}");
        assert_eq!(std::fs::read(lab.config()).unwrap(), before, "{text:?}");
    }
    let missing = lab.aiops(&["targets", "import", "/nonexistent/hosts.ini"]);
    assert_eq!(missing.status.code(), Some(2));
    assert_eq!(std::fs::read(lab.config()).unwrap(), before);
}

/// `aiops targets import PATH --label-var role [EXTRA]`, parsed.
fn import(lab: &Lab, path: &Path, extra: &[&str]) -> (Value, bool) {
    let mut args = vec![
        "targets",
        "import",
        path.to_str().unwrap(),
        "--label-var",
        "role",
    ];
    args.extend_from_slice(extra);
    let out = lab.aiops(&args);
    (aiops_e2e::parse_answer(&out), out.status.success())
}

/// One target as `aiops targets list --json` shows it.
fn listed(lab: &Lab, name: &str) -> Value {
    let out = lab.aiops(&["targets", "list", "--json"]);
    let all: Value = serde_json::from_slice(&out.stdout).unwrap();
    all.as_array()
        .unwrap()
        .iter()
        .find(|t| t["name"] == name)
        .cloned()
        .unwrap_or_else(|| panic!("{name} not listed: {all}"))
}

#[test]
fn imported_groups_and_labels_drive_a_fanout_over_mtls() {
    let lab = Lab::start(3, "lab");
    let port = |k: u16| lab.base_port + k - 1;
    // Start from a configuration without targets: the inventory brings them.
    let mut config: serde_yaml::Value =
        serde_yaml::from_str(&std::fs::read_to_string(lab.config()).unwrap()).unwrap();
    let map = config.as_mapping_mut().unwrap();
    map.remove("targets");
    map.remove("groups");
    std::fs::write(lab.config(), serde_yaml::to_string(&config).unwrap()).unwrap();
    // Hosts are named as their agents were enrolled (the agent checks the
    // signed target name against its own); `imposter` points at srv1's agent.
    let inv = format!(
        "[web]\nsrv1 ansible_host=127.0.0.1 aiops_port={} role=frontend\n\
         srv2 ansible_host=127.0.0.1 aiops_port={} role=frontend\n\
         [db]\nsrv3 aiops_address=127.0.0.1:{} role=database\n\
         [prod:children]\nweb\ndb\n\
         [odd]\nimposter ansible_host=127.0.0.1 aiops_port={} aiops_server_name=srv1\n",
        port(1),
        port(2),
        port(3),
        port(1)
    );
    let path = lab.dir.join("hosts.ini");
    std::fs::write(&path, inv).unwrap();
    let before = std::fs::read(lab.config()).unwrap();

    let (dry, _) = import(&lab, &path, &["--dry-run"]);
    assert_eq!(
        dry["added"],
        json!(["imposter", "srv1", "srv2", "srv3"]),
        "{dry}"
    );
    assert_eq!(dry["dry_run"], true);
    assert_eq!(
        std::fs::read(lab.config()).unwrap(),
        before,
        "dry run wrote"
    );

    let (report, ok) = import(&lab, &path, &[]);
    assert!(ok, "{report}");
    assert_eq!(report["format"], "ini");
    assert_eq!(report["groups"]["prod"], json!(["srv1", "srv2", "srv3"]));

    let srv1 = listed(&lab, "srv1");
    assert_eq!(srv1["address"], format!("127.0.0.1:{}", port(1)));
    assert_eq!(srv1["labels"]["role"], "frontend");
    assert_eq!(srv1["groups"], json!(["prod", "web"]));

    // Re-importing the same file changes nothing.
    let (again, _) = import(&lab, &path, &[]);
    assert_eq!(
        again["unchanged"],
        json!(["imposter", "srv1", "srv2", "srv3"]),
        "{again}"
    );

    // The imported group is a fan-out selector, reaching the right agents.
    let run = |target: &str| {
        lab.run(
            &serde_json::to_vec(&json!({
                "target": target, "command": "hostname", "requester": "e2e", "reason": "inventory",
            }))
            .unwrap(),
        )
    };
    let (answer, code) = run("group:web");
    assert_eq!(code, 0, "{answer}");
    let ran: Vec<&str> = answer["results"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| {
            assert_eq!(r["status"], "executed", "{r}");
            r["target"].as_str().unwrap()
        })
        .collect();
    assert_eq!(ran, ["srv1", "srv2"]);
    let executed = |agent: &str| {
        lab.agent_audit(agent)
            .iter()
            .filter(|r| r["event"] == "executed")
            .count()
    };
    assert_eq!(
        (executed("srv1"), executed("srv2"), executed("srv3")),
        (1, 1, 0)
    );
    let (answer, code) = run("label:role=database");
    assert_eq!(code, 0, "{answer}");
    assert_eq!(answer["targets"], json!(["srv3"]), "{answer}");
    assert_eq!(answer["results"][0]["status"], "executed", "{answer}");
    assert_eq!(executed("srv3"), 1);

    // An inventory name that is not the agent's own is refused by the agent,
    // even with a certificate name that makes the TLS connection succeed.
    let (answer, code) = run("group:odd");
    assert_eq!(answer["status"], "failed", "{answer}");
    assert_eq!(code, 1, "none of the targets ran: {answer}");
    let refused = &answer["results"][0];
    assert_eq!(refused["target"], "imposter", "{answer}");
    assert_eq!(refused["error"]["code"], "agent_refused", "{answer}");
    let message = refused["error"]["message"].as_str().unwrap();
    assert!(message.starts_with("wrong_target"), "{message}");
    assert_eq!(executed("srv1"), 1, "nothing more ran on srv1");

    // `targets add` on an imported target moves it and keeps its labels.
    let moved = format!("127.0.0.1:{}", port(1));
    let out = lab.aiops(&["targets", "add", "srv1", &moved]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stdout)
    );
    let srv1 = listed(&lab, "srv1");
    assert_eq!(srv1["labels"]["role"], "frontend", "{srv1}");
}
