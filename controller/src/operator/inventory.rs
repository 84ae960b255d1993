//! Reading an Ansible inventory (INI or YAML) so an existing fleet needs no
//! retyping: `aiops targets import FILE`.
//!
//! The parser follows ansible-core's `ini` and `yaml` inventory plugins for
//! what a static inventory file can say: groups, `:vars` and `:children`
//! sections, host ranges (`web[01:20]`, `db-[a:c]`, steps), `host:port`, inline
//! host variables (shell-quoted, with Python literals for numbers and
//! booleans), and the precedence of variables (`all`, then groups from the
//! shallowest to the deepest, by `ansible_group_priority` and name, then the
//! host). The e2e tests compare it with `ansible-inventory --list` on the
//! same files. Dynamic inventories (scripts, plugins) are not read: export
//! them with `ansible-inventory --list -y > hosts.yml` first.

use std::collections::{BTreeMap, BTreeSet};

use serde_json::{Map, Value};

/// Hosts expanded from one file, at most (ranges can multiply quickly).
pub const MAX_HOSTS: usize = 100_000;

/// A host with its resolved variables and every group it belongs to
/// (directly or through children), `all` and `ungrouped` left out.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Host {
    /// Variables after Ansible's precedence.
    pub vars: Map<String, Value>,
    /// Group names.
    pub groups: BTreeSet<String>,
}

/// A parsed inventory.
#[derive(Debug, Clone, Default)]
pub struct Inventory {
    /// `ini` or `yaml`.
    pub format: &'static str,
    /// Hosts by inventory name.
    pub hosts: BTreeMap<String, Host>,
}

#[derive(Debug, Default)]
struct Group {
    vars: Map<String, Value>,
    /// `ansible_group_priority` (not a variable: Ansible keeps it aside).
    priority: Option<i64>,
    children: BTreeSet<String>,
    hosts: BTreeSet<String>,
}

/// Groups and hosts as declared, before variables are resolved.
#[derive(Debug, Default)]
struct Builder {
    groups: BTreeMap<String, Group>,
    host_vars: BTreeMap<String, Map<String, Value>>,
}

impl Builder {
    fn new() -> Builder {
        let mut b = Builder::default();
        b.group("all");
        b.group("ungrouped");
        b
    }

    fn group(&mut self, name: &str) -> &mut Group {
        self.groups.entry(name.to_string()).or_default()
    }

    fn set_group_var(&mut self, group: &str, key: String, value: Value) -> Result<(), String> {
        let g = self.group(group);
        if key == "ansible_group_priority" {
            let p = value
                .as_i64()
                .or_else(|| value.as_str().and_then(|s| s.trim().parse().ok()))
                .ok_or_else(|| {
                    format!("group {group:?}: ansible_group_priority must be a number")
                })?;
            g.priority = Some(p);
        } else {
            g.vars.insert(key, value);
        }
        Ok(())
    }

    /// Adds `hosts` to `group` with their port and variables (later
    /// assignments win, as in Ansible).
    fn add_hosts(
        &mut self,
        hosts: Vec<String>,
        group: &str,
        port: Option<u16>,
        vars: &Map<String, Value>,
    ) -> Result<(), String> {
        for host in hosts {
            if !self.host_vars.contains_key(&host) && self.host_vars.len() >= MAX_HOSTS {
                return Err(format!("more than {MAX_HOSTS} hosts"));
            }
            self.group(group).hosts.insert(host.clone());
            let own = self.host_vars.entry(host).or_default();
            if let Some(p) = port {
                own.insert("ansible_port".into(), Value::from(p));
            }
            own.extend(vars.iter().map(|(k, v)| (k.clone(), v.clone())));
        }
        Ok(())
    }

    /// Depth of each group below `all` (the longest path, as Ansible's
    /// `Group.depth`: every group is a child of `all`); a cycle is an error.
    fn depths(&self) -> Result<BTreeMap<String, usize>, String> {
        let mut depth: BTreeMap<&str, usize> = self
            .groups
            .keys()
            .map(|g| (g.as_str(), usize::from(g != "all")))
            .collect();
        // Relax parent -> child edges until nothing changes; a longest path
        // has at most one edge per group, so more rounds mean a cycle.
        for _ in 0..=self.groups.len() {
            let mut changed = None;
            for (parent, g) in &self.groups {
                let d = depth[parent.as_str()];
                for c in &g.children {
                    if depth.get(c.as_str()).is_none_or(|&cd| cd < d + 1) {
                        depth.insert(c.as_str(), d + 1);
                        changed = Some(c.as_str());
                    }
                }
            }
            let Some(c) = changed else {
                return Ok(depth.into_iter().map(|(k, v)| (k.to_string(), v)).collect());
            };
            if depth[c] > self.groups.len() {
                return Err(format!("group {c:?} is a child of itself"));
            }
        }
        Err("groups form a cycle: a group is a child of itself".into())
    }

    fn finish(self, format: &'static str) -> Result<Inventory, String> {
        let depth = self.depths()?;
        // Every group a host is in, with its ancestors.
        let mut member: BTreeMap<&str, BTreeSet<&str>> = BTreeMap::new();
        for (name, g) in &self.groups {
            for h in &g.hosts {
                member.entry(h.as_str()).or_default().insert(name.as_str());
            }
        }
        let mut parents: BTreeMap<&str, Vec<&str>> = BTreeMap::new();
        for (name, g) in &self.groups {
            for c in &g.children {
                parents.entry(c.as_str()).or_default().push(name.as_str());
            }
        }
        let priority = |g: &str| -> i64 {
            self.groups
                .get(g)
                .and_then(|g| g.vars.get("ansible_group_priority"))
                .and_then(|v| {
                    v.as_i64()
                        .or_else(|| v.as_str().and_then(|s| s.parse().ok()))
                })
                .unwrap_or(1)
        };
        let mut hosts = BTreeMap::new();
        for (host, own) in &self.host_vars {
            let mut groups: BTreeSet<&str> = BTreeSet::new();
            let mut todo: Vec<&str> = member
                .get(host.as_str())
                .map(|s| s.iter().copied().collect())
                .unwrap_or_default();
            while let Some(g) = todo.pop() {
                if groups.insert(g) {
                    todo.extend(parents.get(g).into_iter().flatten().copied());
                }
            }
            groups.insert("all");
            let mut order: Vec<&str> = groups.iter().copied().collect();
            order.sort_by_key(|g| (depth.get(*g).copied().unwrap_or(0), priority(g), *g));
            let mut vars = Map::new();
            for g in order {
                if let Some(group) = self.groups.get(g) {
                    for (k, v) in &group.vars {
                        vars.insert(k.clone(), v.clone());
                    }
                }
            }
            for (k, v) in own {
                vars.insert(k.clone(), v.clone());
            }
            let groups = groups
                .into_iter()
                .filter(|g| *g != "all" && *g != "ungrouped")
                .map(str::to_string)
                .collect();
            hosts.insert(host.clone(), Host { vars, groups });
        }
        Ok(Inventory { format, hosts })
    }
}

/// Parses `text`: YAML when it is a YAML mapping (as ansible-core tries its
/// `yaml` plugin before `ini`), INI otherwise. `force` picks one.
pub fn parse(text: &str, force: Option<&str>) -> Result<Inventory, String> {
    match force {
        Some("ini") => parse_ini(text),
        Some("yaml") => parse_yaml(text),
        Some(other) => Err(format!("unknown inventory format {other:?} (ini or yaml)")),
        None => match serde_yaml::from_str::<serde_yaml::Value>(text) {
            Ok(serde_yaml::Value::Mapping(_)) => parse_yaml(text),
            _ => parse_ini(text),
        },
    }
}

// ---------------------------------------------------------------- INI

/// Parses an INI inventory.
pub fn parse_ini(text: &str) -> Result<Inventory, String> {
    let mut b = Builder::new();
    let mut group = "ungrouped".to_string();
    let mut state = "hosts".to_string();
    // Groups named in `[x:vars]` or as children before being declared.
    let mut pending_vars: BTreeMap<String, usize> = BTreeMap::new();
    let mut pending_children: BTreeMap<String, (usize, Vec<String>)> = BTreeMap::new();
    for (i, raw) in text.lines().enumerate() {
        let n = i + 1;
        let at = |m: String| format!("line {n}: {m}");
        let line = raw.trim();
        if line.is_empty() || line.starts_with('#') || line.starts_with(';') {
            continue;
        }
        if let Some((name, tag)) = section(line) {
            let tag = tag.unwrap_or("hosts");
            if !matches!(tag, "hosts" | "children" | "vars") {
                return Err(at(format!(
                    "section [{name}:{tag}] has unknown type {tag:?}"
                )));
            }
            if !b.groups.contains_key(name) {
                if tag == "vars" && !pending_children.contains_key(name) {
                    pending_vars.entry(name.to_string()).or_insert(n);
                }
                b.group(name);
            }
            if tag != "vars" {
                pending_vars.remove(name);
                add_pending_children(&mut b, name, &mut pending_children);
            }
            group = name.to_string();
            state = tag.to_string();
            continue;
        }
        if line.starts_with('[') && line.ends_with(']') {
            return Err(at(format!(
                "invalid section {line:?} (no spaces or other characters are allowed)"
            )));
        }
        match state.as_str() {
            "hosts" => {
                let tokens = shlex_split(line).map_err(&at)?;
                let Some((pattern, rest)) = tokens.split_first() else {
                    continue;
                };
                let (names, port) = expand_hostpattern(pattern).map_err(&at)?;
                let mut vars = Map::new();
                for t in rest {
                    let (k, v) = t.split_once('=').ok_or_else(|| {
                        at(format!("expected key=value host variable, got {t:?}"))
                    })?;
                    vars.insert(k.to_string(), literal(v));
                }
                b.add_hosts(names, &group, port, &vars).map_err(&at)?;
            }
            "vars" => {
                let (k, v) = line
                    .split_once('=')
                    .ok_or_else(|| at(format!("expected key=value, got {line:?}")))?;
                b.set_group_var(&group, k.trim().to_string(), literal(v.trim()))
                    .map_err(&at)?;
            }
            _ => {
                let child = group_name_line(line)
                    .ok_or_else(|| at(format!("expected a group name, got {line:?}")))?;
                if b.groups.contains_key(child) {
                    b.group(&group).children.insert(child.to_string());
                } else {
                    pending_children
                        .entry(child.to_string())
                        .or_insert_with(|| (n, Vec::new()))
                        .1
                        .push(group.clone());
                }
            }
        }
    }
    if let Some((name, line)) = pending_vars.iter().next() {
        return Err(format!(
            "line {line}: section [{name}:vars] is for a group that is never declared"
        ));
    }
    if let Some((name, (line, parents))) = pending_children.iter().next() {
        return Err(format!(
            "line {line}: [{}:children] names {name:?}, a group that is never declared",
            parents.last().map(String::as_str).unwrap_or("?")
        ));
    }
    b.finish("ini")
}

fn add_pending_children(
    b: &mut Builder,
    group: &str,
    pending: &mut BTreeMap<String, (usize, Vec<String>)>,
) {
    let mut todo = vec![group.to_string()];
    while let Some(g) = todo.pop() {
        let Some((_, parents)) = pending.remove(&g) else {
            continue;
        };
        for p in parents {
            b.group(&p).children.insert(g.clone());
            todo.push(p);
        }
    }
}

/// `[name]` or `[name:tag]`, optionally followed by a comment.
fn section(line: &str) -> Option<(&str, Option<&str>)> {
    let rest = line.strip_prefix('[')?;
    let close = rest.find(']')?;
    let inner = &rest[..close];
    let after = rest[close + 1..].trim_start();
    if !(after.is_empty() || after.starts_with('#')) {
        return None;
    }
    let (name, tag) = match inner.split_once(':') {
        Some((n, t)) => (n, Some(t)),
        None => (inner, None),
    };
    let name_ok = !name.is_empty() && !name.chars().any(|c| c.is_whitespace() || c == ':');
    let tag_ok =
        tag.is_none_or(|t| !t.is_empty() && t.chars().all(|c| c.is_alphanumeric() || c == '_'));
    (name_ok && tag_ok).then_some((name, tag))
}

/// A `:children` line: one group name, optionally followed by a comment.
fn group_name_line(line: &str) -> Option<&str> {
    let end = line
        .find(|c: char| c.is_whitespace() || c == ':' || c == ']')
        .unwrap_or(line.len());
    let (name, rest) = line.split_at(end);
    let rest = rest.trim_start();
    (!name.is_empty() && (rest.is_empty() || rest.starts_with('#'))).then_some(name)
}

/// Python's `shlex.split(line, comments=True)` (POSIX mode).
fn shlex_split(line: &str) -> Result<Vec<String>, String> {
    let mut out = Vec::new();
    let mut cur = String::new();
    let mut in_token = false;
    let mut chars = line.chars().peekable();
    while let Some(c) = chars.next() {
        match c {
            ' ' | '\t' | '\r' | '\n' => {
                if in_token {
                    out.push(std::mem::take(&mut cur));
                    in_token = false;
                }
            }
            '#' => break,
            '\\' => {
                in_token = true;
                match chars.next() {
                    Some(n) => cur.push(n),
                    None => return Err("no escaped character".into()),
                }
            }
            '\'' => {
                in_token = true;
                loop {
                    match chars.next() {
                        Some('\'') => break,
                        Some(n) => cur.push(n),
                        None => return Err("no closing quotation".into()),
                    }
                }
            }
            '"' => {
                in_token = true;
                loop {
                    match chars.next() {
                        Some('"') => break,
                        Some('\\') => match chars.peek() {
                            Some(&n @ ('"' | '\\')) => {
                                cur.push(n);
                                chars.next();
                            }
                            _ => cur.push('\\'),
                        },
                        Some(n) => cur.push(n),
                        None => return Err("no closing quotation".into()),
                    }
                }
            }
            other => {
                in_token = true;
                cur.push(other);
            }
        }
    }
    if in_token {
        out.push(cur);
    }
    Ok(out)
}

/// The subset of Python's `ast.literal_eval` an inventory value needs:
/// integers, floats, `True`/`False`/`None` and quoted strings; anything else
/// (including lists and dicts) stays the text it was.
fn literal(v: &str) -> Value {
    match v {
        "True" => return Value::Bool(true),
        "False" => return Value::Bool(false),
        "None" => return Value::Null,
        _ => {}
    }
    if let Some(i) = python_int(v) {
        return Value::from(i);
    }
    if let Some(f) = python_float(v) {
        return Value::from(f);
    }
    if let Some(s) = python_str(v) {
        return Value::from(s);
    }
    Value::from(v)
}

fn python_int(v: &str) -> Option<i64> {
    let (neg, body) = match v.strip_prefix('-') {
        Some(b) => (true, b),
        None => (false, v.strip_prefix('+').unwrap_or(v)),
    };
    if body.is_empty()
        || body.starts_with('_')
        || body.ends_with('_')
        || body.contains("__")
        || !body.bytes().all(|c| c.is_ascii_alphanumeric() || c == b'_')
    {
        return None;
    }
    let clean: String = body.chars().filter(|&c| c != '_').collect();
    let lower = clean.to_ascii_lowercase();
    let n = if let Some(h) = lower.strip_prefix("0x") {
        i64::from_str_radix(h, 16).ok()?
    } else if let Some(o) = lower.strip_prefix("0o") {
        i64::from_str_radix(o, 8).ok()?
    } else if let Some(b) = lower.strip_prefix("0b") {
        i64::from_str_radix(b, 2).ok()?
    } else {
        if !clean.bytes().all(|c| c.is_ascii_digit()) {
            return None;
        }
        // Python 3 has no leading zeros ("07" is a syntax error), except 0...0.
        if clean.len() > 1 && clean.starts_with('0') && clean.bytes().any(|c| c != b'0') {
            return None;
        }
        clean.parse().ok()?
    };
    Some(if neg { -n } else { n })
}

fn python_float(v: &str) -> Option<f64> {
    let body = v.strip_prefix(['-', '+']).unwrap_or(v);
    let ok = !body.is_empty()
        && body
            .bytes()
            .all(|c| c.is_ascii_digit() || matches!(c, b'.' | b'e' | b'E' | b'+' | b'-'))
        && body
            .bytes()
            .next()
            .is_some_and(|c| c.is_ascii_digit() || c == b'.')
        && body.bytes().any(|c| c.is_ascii_digit())
        && (body.contains('.') || body.contains(['e', 'E']));
    if !ok {
        return None;
    }
    v.parse::<f64>().ok().filter(|f| f.is_finite())
}

fn python_str(v: &str) -> Option<String> {
    let q = v.chars().next()?;
    if !(q == '\'' || q == '"') || v.len() < 2 || !v.ends_with(q) {
        return None;
    }
    let inner = &v[1..v.len() - 1];
    let mut out = String::new();
    let mut chars = inner.chars();
    while let Some(c) = chars.next() {
        if c == q {
            return None; // an unescaped quote: not one string literal
        }
        if c != '\\' {
            out.push(c);
            continue;
        }
        match chars.next()? {
            'n' => out.push('\n'),
            't' => out.push('\t'),
            'r' => out.push('\r'),
            '0' => out.push('\0'),
            '\\' => out.push('\\'),
            '\'' => out.push('\''),
            '"' => out.push('"'),
            // Other escapes (\x, \u, \N...) are left to Ansible.
            _ => return None,
        }
    }
    Some(out)
}

/// Splits `host:port` / `[v6]:port` and expands `[a:b]` / `[a:b:step]` ranges.
fn expand_hostpattern(pattern: &str) -> Result<(Vec<String>, Option<u16>), String> {
    let (host, port) = split_port(pattern)?;
    if host.trim() == "---" {
        return Err("host pattern '---' (is this a YAML file?)".into());
    }
    let mut out = Vec::new();
    expand_range(&host, &mut out)?;
    Ok((out, port))
}

fn split_port(pattern: &str) -> Result<(String, Option<u16>), String> {
    if let Some(rest) = pattern.strip_prefix('[')
        && let Some((addr, after)) = rest.split_once(']')
        && addr.contains(':')
        && !addr.contains('[')
    {
        // [v6] or [v6]:port
        return match after.strip_prefix(':') {
            Some(p) => Ok((addr.to_string(), Some(parse_port(pattern, p)?))),
            None if after.is_empty() => Ok((addr.to_string(), None)),
            None => Ok((pattern.to_string(), None)),
        };
    }
    // Colons outside brackets.
    let mut depth = 0i32;
    let mut colons = Vec::new();
    for (i, c) in pattern.char_indices() {
        match c {
            '[' => depth += 1,
            ']' => depth -= 1,
            ':' if depth == 0 => colons.push(i),
            _ => {}
        }
    }
    match colons.as_slice() {
        [] => Ok((pattern.to_string(), None)),
        [i] => {
            let p = &pattern[i + 1..];
            if p.is_empty() {
                return Err(format!(
                    "host pattern {pattern:?} ends in ':' (reserved for a port)"
                ));
            }
            if p.bytes().all(|c| c.is_ascii_digit()) {
                Ok((pattern[..*i].to_string(), Some(parse_port(pattern, p)?)))
            } else {
                Ok((pattern.to_string(), None))
            }
        }
        _ => Ok((pattern.to_string(), None)), // a bare IPv6 address
    }
}

fn parse_port(pattern: &str, p: &str) -> Result<u16, String> {
    p.parse()
        .map_err(|_| format!("host pattern {pattern:?}: bad port {p:?}"))
}

/// Ansible's `expand_hostname_range`, recursively for several ranges.
fn expand_range(name: &str, out: &mut Vec<String>) -> Result<(), String> {
    let (Some(open), Some(close)) = (name.find('['), name.find(']')) else {
        out.push(name.to_string());
        return Ok(());
    };
    if close < open || !name[open + 1..close].contains(':') {
        out.push(name.to_string());
        return Ok(());
    }
    let (head, range, tail) = (&name[..open], &name[open + 1..close], &name[close + 1..]);
    let bounds: Vec<&str> = range.split(':').collect();
    let bad = |m: &str| format!("host range {name:?}: {m}");
    if bounds.len() != 2 && bounds.len() != 3 {
        return Err(bad("must be begin:end or begin:end:step"));
    }
    let beg = if bounds[0].is_empty() { "0" } else { bounds[0] };
    let end = bounds[1];
    if end.is_empty() {
        return Err(bad("no end value"));
    }
    let step: usize = match bounds.get(2) {
        Some(s) => s.parse().map_err(|_| bad("bad step"))?,
        None => 1,
    };
    if step == 0 {
        return Err(bad("step 0"));
    }
    let width = if beg.len() > 1 && beg.starts_with('0') {
        if beg.len() != end.len() {
            return Err(bad("begin and end must have the same width"));
        }
        beg.len()
    } else {
        0
    };
    let letters: Vec<char> = ('a'..='z').chain('A'..='Z').collect();
    let pos = |s: &str| {
        let mut cs = s.chars();
        match (cs.next(), cs.next()) {
            (Some(c), None) => letters.iter().position(|&l| l == c),
            _ => None,
        }
    };
    let items: Vec<String> = match (pos(beg), pos(end)) {
        (Some(b), Some(e)) => {
            if b > e {
                return Err(bad("begin > end"));
            }
            letters[b..=e]
                .iter()
                .step_by(step)
                .map(|c| c.to_string())
                .collect()
        }
        _ => {
            let b: u64 = beg.parse().map_err(|_| bad("bad begin"))?;
            let e: u64 = end.parse().map_err(|_| bad("bad end"))?;
            if e.saturating_sub(b) / step as u64 >= MAX_HOSTS as u64 {
                return Err(format!("more than {MAX_HOSTS} hosts"));
            }
            (b..=e)
                .step_by(step)
                .map(|i| format!("{i:0width$}"))
                .collect()
        }
    };
    for item in items {
        if out.len() >= MAX_HOSTS {
            return Err(format!("more than {MAX_HOSTS} hosts"));
        }
        expand_range(&format!("{head}{item}{tail}"), out)?;
    }
    Ok(())
}

// ---------------------------------------------------------------- YAML

/// Parses a YAML inventory.
pub fn parse_yaml(text: &str) -> Result<Inventory, String> {
    let doc: serde_yaml::Value = serde_yaml::from_str(text).map_err(|e| e.to_string())?;
    let top = match doc {
        serde_yaml::Value::Mapping(m) => m,
        serde_yaml::Value::Null => serde_yaml::Mapping::new(),
        _ => return Err("a YAML inventory is a mapping of groups".into()),
    };
    let mut b = Builder::new();
    for (name, data) in &top {
        yaml_group(&mut b, &key(name)?, data, 0)?;
    }
    b.finish("yaml")
}

fn key(v: &serde_yaml::Value) -> Result<String, String> {
    match v {
        serde_yaml::Value::String(s) => Ok(s.clone()),
        serde_yaml::Value::Number(n) => Ok(n.to_string()),
        serde_yaml::Value::Bool(b) => Ok(if *b { "True" } else { "False" }.into()),
        other => Err(format!("unexpected key {other:?}")),
    }
}

fn yaml_group(
    b: &mut Builder,
    group: &str,
    data: &serde_yaml::Value,
    level: usize,
) -> Result<(), String> {
    if level > 64 {
        return Err("groups nested more than 64 deep".into());
    }
    let map = match data {
        serde_yaml::Value::Mapping(m) => m,
        serde_yaml::Value::Null => {
            b.group(group);
            return Ok(());
        }
        // Ansible warns and skips it.
        _ => return Ok(()),
    };
    b.group(group);
    for (k, v) in map {
        let section = key(k)?;
        // A bare string stands for a one-entry mapping.
        let owned;
        let v = match v {
            serde_yaml::Value::String(s) if section != "vars" => {
                let mut m = serde_yaml::Mapping::new();
                m.insert(
                    serde_yaml::Value::String(s.clone()),
                    serde_yaml::Value::Null,
                );
                owned = serde_yaml::Value::Mapping(m);
                &owned
            }
            other => other,
        };
        let entries = match v {
            serde_yaml::Value::Mapping(m) => m,
            serde_yaml::Value::Null => continue,
            _ if matches!(section.as_str(), "vars" | "children" | "hosts") => {
                return Err(format!("group {group:?}: {section:?} must be a mapping"));
            }
            _ => continue,
        };
        match section.as_str() {
            "vars" => {
                for (vk, vv) in entries {
                    let value = yaml_to_json(vv)?;
                    b.set_group_var(group, key(vk)?, value)?;
                }
            }
            "children" => {
                for (ck, cv) in entries {
                    let child = key(ck)?;
                    yaml_group(b, &child, cv, level + 1)?;
                    b.group(group).children.insert(child);
                }
            }
            "hosts" => {
                for (hk, hv) in entries {
                    let (names, port) = expand_hostpattern(&key(hk)?)?;
                    let vars = match hv {
                        serde_yaml::Value::Null => Map::new(),
                        serde_yaml::Value::Mapping(_) => match yaml_to_json(hv)? {
                            Value::Object(m) => m,
                            _ => Map::new(),
                        },
                        _ => {
                            return Err(format!(
                                "group {group:?}: host {:?} must map to variables",
                                key(hk)?
                            ));
                        }
                    };
                    b.add_hosts(names, group, port, &vars)?;
                }
            }
            _ => {} // Ansible warns and skips unexpected keys.
        }
    }
    Ok(())
}

fn yaml_to_json(v: &serde_yaml::Value) -> Result<Value, String> {
    Ok(match v {
        serde_yaml::Value::Null => Value::Null,
        serde_yaml::Value::Bool(b) => Value::Bool(*b),
        serde_yaml::Value::Number(n) => {
            if let Some(i) = n.as_i64() {
                Value::from(i)
            } else if let Some(u) = n.as_u64() {
                Value::from(u)
            } else {
                Value::from(n.as_f64().unwrap_or(0.0))
            }
        }
        serde_yaml::Value::String(s) => Value::from(s.clone()),
        serde_yaml::Value::Sequence(s) => {
            Value::Array(s.iter().map(yaml_to_json).collect::<Result<_, _>>()?)
        }
        serde_yaml::Value::Mapping(m) => {
            let mut out = Map::new();
            for (k, v) in m {
                out.insert(key(k)?, yaml_to_json(v)?);
            }
            Value::Object(out)
        }
        serde_yaml::Value::Tagged(t) => yaml_to_json(&t.value)?,
    })
}

// ---------------------------------------------------------------- to targets

/// How inventory hosts become aiops targets.
#[derive(Debug, Clone)]
pub struct ImportOptions {
    /// The agent port when a host has no `aiops_port` / `aiops_address`.
    pub default_port: u16,
    /// Host variables copied as labels (`--label-var role`).
    pub label_vars: Vec<String>,
}

/// Targets and groups to merge into the configuration.
#[derive(Debug, Clone, Default)]
pub struct Imported {
    /// name → (address, server_name, labels)
    pub targets: BTreeMap<String, crate::config::TargetConfig>,
    /// Group name → member target names (sorted).
    pub groups: BTreeMap<String, Vec<String>>,
}

fn scalar(v: &Value) -> Option<String> {
    match v {
        Value::String(s) => Some(s.clone()),
        Value::Number(n) => Some(n.to_string()),
        Value::Bool(b) => Some(b.to_string()),
        _ => None,
    }
}

/// Maps an inventory to targets: the name is the inventory hostname; the
/// address is `aiops_address`, else `ansible_host` (or the name) with
/// `aiops_port` (or the default port); `aiops_server_name` sets the expected
/// certificate name; labels come from `aiops_labels` (a mapping) and the
/// `label_vars`; groups keep their Ansible names. Every problem is reported
/// at once and nothing is imported.
pub fn to_targets(inv: &Inventory, opts: &ImportOptions) -> Result<Imported, String> {
    let mut errs = Vec::new();
    let mut out = Imported::default();
    for (name, host) in &inv.hosts {
        if !aiops_types::TargetName::is_valid(name) {
            errs.push(format!(
                "host {name:?}: not a valid target name (1-64 of A-Z a-z 0-9 . - _)"
            ));
            continue;
        }
        let var = |k: &str| host.vars.get(k).filter(|v| !v.is_null());
        let address = if let Some(a) = var("aiops_address") {
            match scalar(a) {
                Some(a) => a,
                None => {
                    errs.push(format!("host {name:?}: aiops_address must be host:port"));
                    continue;
                }
            }
        } else {
            let h = var("ansible_host")
                .and_then(scalar)
                .unwrap_or_else(|| name.clone());
            let port = match var("aiops_port") {
                None => opts.default_port,
                Some(p) => match scalar(p).and_then(|p| p.parse::<u16>().ok()) {
                    Some(p) if p > 0 => p,
                    _ => {
                        errs.push(format!("host {name:?}: aiops_port {p} is not a port"));
                        continue;
                    }
                },
            };
            if h.contains(':') {
                format!(
                    "[{}]:{port}",
                    h.trim_start_matches('[').trim_end_matches(']')
                )
            } else {
                format!("{h}:{port}")
            }
        };
        if let Err(e) = aiops_types::TargetAddress::parse(&address) {
            errs.push(format!("host {name:?}: {e}"));
            continue;
        }
        let server_name = var("aiops_server_name").and_then(scalar);
        let mut labels = BTreeMap::new();
        if let Some(l) = var("aiops_labels") {
            match l {
                Value::Object(m) => {
                    for (k, v) in m {
                        match scalar(v) {
                            Some(s) => {
                                labels.insert(k.clone(), s);
                            }
                            None => errs
                                .push(format!("host {name:?}: aiops_labels.{k} is not a scalar")),
                        }
                    }
                }
                _ => errs.push(format!("host {name:?}: aiops_labels must be a mapping")),
            }
        }
        for lv in &opts.label_vars {
            if let Some(v) = var(lv) {
                match scalar(v) {
                    Some(s) => {
                        labels.insert(lv.clone(), s);
                    }
                    None => errs.push(format!("host {name:?}: {lv} is not a scalar")),
                }
            }
        }
        for g in &host.groups {
            if !aiops_types::TargetName::is_valid(g) {
                errs.push(format!("group {g:?}: not a valid group name"));
                continue;
            }
            out.groups.entry(g.clone()).or_default().push(name.clone());
        }
        out.targets.insert(
            name.clone(),
            crate::config::TargetConfig {
                address,
                server_name,
                labels,
            },
        );
    }
    if !errs.is_empty() {
        errs.sort();
        errs.dedup();
        return Err(errs.join("; "));
    }
    for members in out.groups.values_mut() {
        members.sort();
        members.dedup();
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn names(inv: &Inventory) -> Vec<&str> {
        inv.hosts.keys().map(String::as_str).collect()
    }

    #[test]
    fn ini_groups_children_vars_ranges_and_ports() {
        let inv = parse(
            "# fleet\nlone ansible_host=10.0.0.9\n\n[web]\nweb[01:03].example.com role=web\n\
             db-a:2222 # comment\n\n[db]\ndb-[a:c] tier='gold tier'\n\n[prod:children]\nweb\ndb\n\
             [prod:vars]\naiops_port=7500\nrole = generic\n[all:vars]\nenv=lab\n",
            None,
        )
        .unwrap();
        assert_eq!(inv.format, "ini");
        assert_eq!(
            names(&inv),
            [
                "db-a",
                "db-b",
                "db-c",
                "lone",
                "web01.example.com",
                "web02.example.com",
                "web03.example.com"
            ]
        );
        let web = &inv.hosts["web02.example.com"];
        assert_eq!(web.vars["role"], "web"); // host var beats group var
        assert_eq!(web.vars["aiops_port"], 7500);
        assert_eq!(web.vars["env"], "lab");
        assert_eq!(
            web.groups.iter().map(String::as_str).collect::<Vec<_>>(),
            ["prod", "web"]
        );
        let dba = &inv.hosts["db-a"];
        assert_eq!(dba.vars["ansible_port"], 2222);
        assert_eq!(dba.vars["tier"], "gold tier");
        assert_eq!(dba.vars["role"], "generic");
        assert_eq!(dba.groups.len(), 3);
        assert!(inv.hosts["lone"].groups.is_empty());
    }

    #[test]
    fn ini_refusals_name_the_line() {
        for (text, want) in [
            ("[web:vars]\nx=1\n", "never declared"),
            ("[a:children]\nb\n", "never declared"),
            ("[web:bogus]\n", "unknown type"),
            ("[web ]\n", "invalid section"),
            ("[web]\nh x\n", "key=value"),
            ("[web]\nh x='open\n", "closing quotation"),
            ("[web]\nh:\n", "ends in ':'"),
            ("[web]\nh[1:999999]\n", "more than"),
            ("[a:children]\nb\n[b:children]\na\n", "child of itself"),
        ] {
            let err = parse(text, Some("ini")).unwrap_err();
            assert!(err.contains(want), "{text:?}: {err}");
        }
    }

    #[test]
    fn python_literals_and_shlex() {
        assert_eq!(literal("22"), Value::from(22));
        assert_eq!(literal("0x10"), Value::from(16));
        assert_eq!(literal("07"), Value::from("07"));
        assert_eq!(literal("1.5"), Value::from(1.5));
        assert_eq!(literal("1.2.3.4"), Value::from("1.2.3.4"));
        assert_eq!(literal("True"), Value::Bool(true));
        assert_eq!(literal("'x y'"), Value::from("x y"));
        assert_eq!(literal("web"), Value::from("web"));
        assert_eq!(
            shlex_split(r#"h a="b c" d='e f'g x\ y # c"#).unwrap(),
            ["h", "a=b c", "d=e fg", "x y"]
        );
    }

    #[test]
    fn yaml_matches_the_same_inventory() {
        let inv = parse(
            "all:\n  vars: {env: lab}\n  hosts:\n    lone: {ansible_host: 10.0.0.9}\n  children:\n\
             \x20   prod:\n      vars: {aiops_port: 7500, role: generic}\n      children:\n\
             \x20       web:\n          hosts:\n            'web[01:03].example.com': {role: web}\n\
             \x20       db:\n          hosts:\n            db-a:2222:\n            'db-[b:c]':\n",
            None,
        )
        .unwrap();
        assert_eq!(inv.format, "yaml");
        assert_eq!(inv.hosts.len(), 7);
        assert_eq!(inv.hosts["web01.example.com"].vars["role"], "web");
        assert_eq!(inv.hosts["db-b"].vars["role"], "generic");
        assert_eq!(inv.hosts["db-a"].vars["ansible_port"], 2222);
        assert_eq!(inv.hosts["lone"].vars["env"], "lab");
    }

    #[test]
    fn hosts_become_targets() {
        let inv = parse(
            "[web]\nweb1 ansible_host=192.0.2.1 role=web\nweb2 aiops_address=10.1.1.1:9000 \
             aiops_server_name=w2.internal\nv6 ansible_host=2001:db8::1 aiops_port=7600\n",
            None,
        )
        .unwrap();
        let opts = ImportOptions {
            default_port: 7443,
            label_vars: vec!["role".into()],
        };
        let t = to_targets(&inv, &opts).unwrap();
        assert_eq!(t.targets["web1"].address, "192.0.2.1:7443");
        assert_eq!(t.targets["web1"].labels["role"], "web");
        assert_eq!(t.targets["web2"].address, "10.1.1.1:9000");
        assert_eq!(
            t.targets["web2"].server_name.as_deref(),
            Some("w2.internal")
        );
        assert_eq!(t.targets["v6"].address, "[2001:db8::1]:7600");
        assert_eq!(t.groups["web"], ["v6", "web1", "web2"]);

        let bad = parse("[web]\nok\n2001:db8::2\nx aiops_port=70000\n", None).unwrap();
        let err = to_targets(&bad, &opts).unwrap_err();
        assert!(
            err.contains("\"2001:db8::2\": not a valid target name"),
            "{err}"
        );
        assert!(err.contains("aiops_port 70000"), "{err}");
    }
}
