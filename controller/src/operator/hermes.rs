//! `aiops hermes install`: makes Hermes (NousResearch's hermes-agent) use the
//! controller natively.
//!
//! Writes into the Hermes home (`--hermes-home`, `$HERMES_HOME`, `~/.hermes`):
//! - `skills/aiops/<name>/SKILL.md`: every knowledge document as a skill;
//! - `SOUL.md`: the hard rules and the bootstrap prompt between markers (Hermes
//!   loads `SOUL.md` into every session; text outside the markers is kept);
//! - `config.yaml`: the `mcp_servers.aiops` entry, `platform_toolsets` for the
//!   chat platform limited to `[aiops, skills]` (no terminal, file or code
//!   tools) and `skills.inline_shell: false`, merged into the user's file, whose
//!   previous version is kept as `config.yaml.aiops-backup-<unix time>`.

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use serde_json::json;
use serde_yaml::{Mapping, Value};

use crate::bootstrap::{BOOTSTRAP, DOCS, RULES};

/// Start of our block in `SOUL.md`.
pub const SOUL_BEGIN: &str =
    "<!-- aiops:begin (written by `aiops hermes install`; edits inside are replaced) -->";
/// End of our block in `SOUL.md`.
pub const SOUL_END: &str = "<!-- aiops:end -->";

/// The toolsets offered on chat platforms: our MCP tools and the skill readers only.
pub const CHAT_TOOLSETS: [&str; 2] = ["aiops", "skills"];

/// `aiops hermes ...`.
#[derive(clap::Subcommand, Debug)]
pub enum HermesCmd {
    /// Write the knowledge as Hermes skills, the rules into SOUL.md and the MCP server into config.yaml.
    Install(InstallArgs),
}

/// Arguments of `aiops hermes install`.
#[derive(clap::Args, Debug)]
pub struct InstallArgs {
    /// Hermes home [default: $HERMES_HOME, then ~/.hermes].
    #[arg(long)]
    pub hermes_home: Option<PathBuf>,
    /// The aiops binary Hermes starts [default: this binary].
    #[arg(long)]
    pub aiops_command: Option<PathBuf>,
    /// Start the MCP server through `sudo -n -u USER` (the account that owns the controller's keys).
    #[arg(long)]
    pub sudo_user: Option<String>,
    /// Platforms whose toolsets are limited to `aiops` and `skills`.
    #[arg(long = "platform", default_values_t = ["telegram".to_string(), "cli".to_string()])]
    pub platforms: Vec<String>,
}

/// What was written.
#[derive(Debug)]
pub struct Installed {
    /// The Hermes home.
    pub home: PathBuf,
    /// Skill files written.
    pub skills: Vec<PathBuf>,
    /// Backup of the previous config.yaml, if there was one.
    pub backup: Option<PathBuf>,
}

fn io(path: &Path, e: std::io::Error) -> String {
    format!("{}: {e}", path.display())
}

fn yaml_str(s: &str) -> String {
    // JSON strings are valid YAML scalars and quote everything that needs it.
    serde_json::to_string(s).expect("a string serializes")
}

/// The `SKILL.md` of one document.
pub fn skill_md(doc: &crate::bootstrap::Doc) -> String {
    format!(
        "---\nname: {}\ndescription: {}\nversion: {}\nlicense: Apache-2.0\nplatforms: [linux]\nmetadata:\n  hermes:\n    tags: [aiops, operations, servers]\n    source: {}\n---\n\n{}",
        doc.skill,
        yaml_str(doc.description),
        env!("CARGO_PKG_VERSION"),
        yaml_str(&format!("knowledge/{}", doc.file)),
        doc.text
    )
}

/// Replaces (or appends) our block in `SOUL.md`'s text.
pub fn merge_soul(existing: &str) -> String {
    let block = format!(
        "{SOUL_BEGIN}\n{}\n\n{}\n{SOUL_END}\n",
        RULES.text.trim_end(),
        BOOTSTRAP.text.trim_end()
    );
    match (existing.find(SOUL_BEGIN), existing.find(SOUL_END)) {
        (Some(b), Some(e)) if e > b => {
            let after = &existing[e + SOUL_END.len()..];
            format!(
                "{}{block}{}",
                &existing[..b],
                after.strip_prefix('\n').unwrap_or(after)
            )
        }
        _ if existing.trim().is_empty() => block,
        _ => format!("{}\n\n{block}", existing.trim_end()),
    }
}

fn map_entry<'a>(map: &'a mut Mapping, key: &str) -> Result<&'a mut Mapping, String> {
    let k = Value::String(key.to_string());
    if !map.contains_key(&k) || map.get(&k).is_some_and(Value::is_null) {
        map.insert(k.clone(), Value::Mapping(Mapping::new()));
    }
    match map.get_mut(&k) {
        Some(Value::Mapping(m)) => Ok(m),
        _ => Err(format!(
            "config.yaml: `{key}` is not a mapping; not changing it"
        )),
    }
}

/// Merges our settings into the text of a Hermes `config.yaml`.
pub fn merge_config(existing: &str, server: Value, platforms: &[String]) -> Result<String, String> {
    let mut root = if existing.trim().is_empty() {
        Value::Mapping(Mapping::new())
    } else {
        serde_yaml::from_str::<Value>(existing).map_err(|e| format!("config.yaml: {e}"))?
    };
    let Value::Mapping(map) = &mut root else {
        return Err("config.yaml: the top level is not a mapping; not changing it".into());
    };
    map_entry(map, "mcp_servers")?.insert("aiops".into(), server);
    let toolsets = map_entry(map, "platform_toolsets")?;
    for p in platforms {
        toolsets.insert(
            Value::String(p.clone()),
            Value::Sequence(
                CHAT_TOOLSETS
                    .iter()
                    .map(|t| Value::String((*t).into()))
                    .collect(),
            ),
        );
    }
    map_entry(map, "skills")?.insert("inline_shell".into(), Value::Bool(false));
    serde_yaml::to_string(&root).map_err(|e| format!("config.yaml: {e}"))
}

/// The `mcp_servers.aiops` entry.
pub fn server_entry(aiops: &Path, config: &Path, sudo_user: Option<&str>) -> Value {
    let aiops = aiops.display().to_string();
    let (command, args): (String, Vec<String>) = match sudo_user {
        Some(u) => (
            "/usr/bin/sudo".into(),
            vec![
                "-n".into(),
                "-u".into(),
                u.into(),
                "--".into(),
                aiops,
                "--config".into(),
                config.display().to_string(),
                "mcp".into(),
            ],
        ),
        None => (aiops, vec!["mcp".into()]),
    };
    let mut m = Mapping::new();
    m.insert("command".into(), Value::String(command));
    m.insert(
        "args".into(),
        Value::Sequence(args.into_iter().map(Value::String).collect()),
    );
    let mut env = Mapping::new();
    env.insert(
        "AIOPS_CONFIG".into(),
        Value::String(config.display().to_string()),
    );
    m.insert("env".into(), Value::Mapping(env));
    m.insert("timeout".into(), Value::Number(120.into()));
    Value::Mapping(m)
}

fn write(path: &Path, text: &str) -> Result<(), String> {
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir).map_err(|e| io(dir, e))?;
    }
    let tmp = path.with_extension("aiops-tmp");
    std::fs::write(&tmp, text).map_err(|e| io(&tmp, e))?;
    std::fs::rename(&tmp, path).map_err(|e| io(path, e))
}

/// Installs into `home`.
pub fn install(
    home: &Path,
    aiops: &Path,
    config: &Path,
    args: &InstallArgs,
) -> Result<Installed, String> {
    std::fs::create_dir_all(home).map_err(|e| io(home, e))?;
    let mut skills = Vec::new();
    for d in DOCS {
        let p = home.join("skills/aiops").join(d.skill).join("SKILL.md");
        write(&p, &skill_md(d))?;
        skills.push(p);
    }
    let soul = home.join("SOUL.md");
    let existing = match std::fs::read_to_string(&soul) {
        Ok(t) => t,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => String::new(),
        Err(e) => return Err(io(&soul, e)),
    };
    write(&soul, &merge_soul(&existing))?;

    let cfg = home.join("config.yaml");
    let existing = match std::fs::read_to_string(&cfg) {
        Ok(t) => Some(t),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => None,
        Err(e) => return Err(io(&cfg, e)),
    };
    let merged = merge_config(
        existing.as_deref().unwrap_or(""),
        server_entry(aiops, config, args.sudo_user.as_deref()),
        &args.platforms,
    )?;
    let mut backup = None;
    if let Some(old) = &existing {
        let secs = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_secs())
            .unwrap_or(0);
        let mut b = home.join(format!("config.yaml.aiops-backup-{secs}"));
        let mut n = 1;
        while b.exists() {
            b = home.join(format!("config.yaml.aiops-backup-{secs}.{n}"));
            n += 1;
        }
        std::fs::write(&b, old).map_err(|e| io(&b, e))?;
        backup = Some(b);
    }
    write(&cfg, &merged)?;
    Ok(Installed {
        home: home.to_path_buf(),
        skills,
        backup,
    })
}

/// `aiops hermes ...`.
pub fn cmd(config: &Path, command: HermesCmd) -> ExitCode {
    let HermesCmd::Install(args) = command;
    let home = args
        .hermes_home
        .clone()
        .or_else(|| std::env::var_os("HERMES_HOME").map(PathBuf::from))
        .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".hermes")));
    let Some(home) = home else {
        eprintln!("aiops hermes install: no --hermes-home, $HERMES_HOME or $HOME");
        return ExitCode::from(crate::contract::exit::SETUP);
    };
    let aiops = match args
        .aiops_command
        .clone()
        .map(Ok)
        .unwrap_or_else(std::env::current_exe)
    {
        Ok(p) => p,
        Err(e) => {
            eprintln!("aiops hermes install: {e}");
            return ExitCode::from(crate::contract::exit::SETUP);
        }
    };
    let config = std::path::absolute(config).unwrap_or_else(|_| config.to_path_buf());
    match install(&home, &aiops, &config, &args) {
        Ok(done) => {
            let out = json!({
                "status": "ok",
                "hermes_home": done.home,
                "skills": done.skills.len(),
                "soul": done.home.join("SOUL.md"),
                "config": done.home.join("config.yaml"),
                "backup": done.backup,
                "platform_toolsets": {"platforms": args.platforms, "toolsets": CHAT_TOOLSETS},
            });
            println!("{out}");
            ExitCode::SUCCESS
        }
        Err(e) => {
            println!(
                "{}",
                json!({"status": "error", "error": {"code": "hermes_install", "message": e}})
            );
            ExitCode::from(crate::contract::exit::FAILED)
        }
    }
}
