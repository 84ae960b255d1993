//! A real Hermes (hermes-agent from PyPI) drives the controller through
//! `aiops mcp`: `aiops hermes install` writes its home, a scripted
//! OpenAI-compatible model on loopback answers first with a tool call and
//! then with the final text, and the tool call must reach a lab agent, be
//! audited and come back in Hermes's answer. The model must never be offered
//! Hermes's own terminal, file or code-execution tools.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use aiops_e2e::{Lab, aiops_bin, run_cmd};
use serde_json::{Value, json};

const HERMES_VERSION: &str = "0.19.0";

/// Hermes's own tools that reach the gateway host (or the web) and must never be offered.
const FORBIDDEN_TOOLS: &[&str] = &[
    "terminal",
    "process",
    "execute_code",
    "read_file",
    "write_file",
    "patch",
    "search_files",
    "browser_navigate",
    "web_search",
    "web_extract",
    "delegate_task",
    "cronjob",
];

/// A virtualenv with hermes-agent[mcp], cached under the target directory.
fn hermes_bin() -> PathBuf {
    let exe = std::env::current_exe().unwrap();
    // target/<profile>/deps/<test> -> target
    let target = exe.ancestors().nth(3).unwrap().to_path_buf();
    let venv = target.join(format!("hermes-venv-{HERMES_VERSION}"));
    let hermes = venv.join("bin/hermes");
    let stamp = venv.join(".aiops-complete");
    // A venv is not relocatable (its scripts name its python by absolute
    // path): the stamp records where it was built, and a copied or moved
    // target directory builds it again.
    let want = format!("{HERMES_VERSION} {}", venv.display());
    let complete = || std::fs::read_to_string(&stamp).is_ok_and(|s| s == want);
    if complete() {
        return hermes;
    }
    std::fs::create_dir_all(&target).unwrap();
    let lock = std::fs::File::create(target.join("hermes-venv.lock")).unwrap();
    let _lock = nix::fcntl::Flock::lock(lock, nix::fcntl::FlockArg::LockExclusive).unwrap();
    if complete() {
        return hermes;
    }
    let _ = std::fs::remove_dir_all(&venv);
    let st = Command::new("python3")
        .args(["-m", "venv"])
        .arg(&venv)
        .status()
        .expect("python3 runs (scripts/test.sh installs python3-venv)");
    assert!(
        st.success(),
        "python3 -m venv failed: install python3-venv (scripts/test.sh does)"
    );
    let out = Command::new(venv.join("bin/pip"))
        .args([
            "install",
            "--quiet",
            "--disable-pip-version-check",
            &format!("hermes-agent[mcp]=={HERMES_VERSION}"),
        ])
        .output()
        .expect("pip runs");
    assert!(
        out.status.success(),
        "pip install hermes-agent[mcp]=={HERMES_VERSION} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(hermes.exists(), "the venv has no bin/hermes");
    std::fs::write(&stamp, &want).unwrap();
    hermes
}

/// What the scripted model saw.
#[derive(Default)]
struct Seen {
    /// Bodies of every POST /v1/chat/completions.
    completions: Vec<Value>,
}

fn sse(chunks: &[Value]) -> String {
    let mut out = String::new();
    for c in chunks {
        out.push_str(&format!("data: {c}\n\n"));
    }
    out.push_str("data: [DONE]\n\n");
    out
}

fn completion(body: &Value, step: usize) -> (Value, Vec<Value>) {
    let messages = body["messages"].as_array().cloned().unwrap_or_default();
    let tool_result =
        messages
            .iter()
            .rev()
            .find(|m| m["role"] == "tool")
            .map(|m| match &m["content"] {
                Value::String(s) => s.clone(),
                other => other.to_string(),
            });
    let offers_run_action = body["tools"].as_array().is_some_and(|t| {
        t.iter()
            .any(|t| t["function"]["name"] == "mcp__aiops__run_action")
    });
    let id = format!("chatcmpl-{step}");
    let base =
        json!({"id": id, "object": "chat.completion.chunk", "created": 1, "model": "fake-model"});
    let (message, finish) = match (tool_result, offers_run_action) {
        (Some(result), _) => {
            // Final answer: quote what came back so the test can see it travelled.
            (
                json!({"role": "assistant", "content": format!("FINAL ANSWER. The tool returned: {result}")}),
                "stop",
            )
        }
        (None, true) => (
            json!({"role": "assistant", "content": null, "tool_calls": [{
                "id": format!("call_{step}"), "type": "function",
                "function": {"name": "mcp__aiops__run_action", "arguments": json!({
                    "target": "srv1", "command": "hostname", "reason": "operator asked which host srv1 is"
                }).to_string()}
            }]}),
            "tool_calls",
        ),
        (None, false) => (json!({"role": "assistant", "content": "ok"}), "stop"),
    };
    let full = json!({
        "id": id, "object": "chat.completion", "created": 1, "model": "fake-model",
        "choices": [{"index": 0, "message": message, "finish_reason": finish}],
        "usage": {"prompt_tokens": 10, "completion_tokens": 5, "total_tokens": 15},
    });
    let mut delta = message.clone();
    if let Some(calls) = delta.get_mut("tool_calls").and_then(Value::as_array_mut) {
        for (i, c) in calls.iter_mut().enumerate() {
            c["index"] = json!(i);
        }
    }
    let mut first = base.clone();
    first["choices"] = json!([{"index": 0, "delta": delta, "finish_reason": null}]);
    let mut last = base.clone();
    last["choices"] = json!([{"index": 0, "delta": {}, "finish_reason": finish}]);
    let mut usage = base;
    usage["choices"] = json!([]);
    usage["usage"] = json!({"prompt_tokens": 10, "completion_tokens": 5, "total_tokens": 15});
    (full, vec![first, last, usage])
}

fn handle(mut stream: TcpStream, seen: &Arc<Mutex<Seen>>) {
    let _ = stream.set_read_timeout(Some(Duration::from_secs(30)));
    let mut reader = BufReader::new(stream.try_clone().unwrap());
    let mut request_line = String::new();
    if reader.read_line(&mut request_line).is_err() {
        return;
    }
    let mut length = 0usize;
    loop {
        let mut line = String::new();
        if reader.read_line(&mut line).unwrap_or(0) == 0 || line == "\r\n" {
            break;
        }
        if let Some((k, v)) = line.split_once(':')
            && k.eq_ignore_ascii_case("content-length")
        {
            length = v.trim().parse().unwrap_or(0);
        }
    }
    let mut body = vec![0; length];
    let _ = reader.read_exact(&mut body);
    let mut parts = request_line.split_whitespace();
    let (method, path) = (parts.next().unwrap_or(""), parts.next().unwrap_or(""));
    let (status, ctype, text) = if method == "POST" && path.ends_with("/chat/completions") {
        let body: Value = serde_json::from_slice(&body).unwrap_or(Value::Null);
        let step = {
            let mut s = seen.lock().unwrap();
            s.completions.push(body.clone());
            s.completions.len()
        };
        let (full, chunks) = completion(&body, step);
        if body["stream"] == true {
            ("200 OK", "text/event-stream", sse(&chunks))
        } else {
            ("200 OK", "application/json", full.to_string())
        }
    } else if method == "GET" && path.ends_with("/models") {
        ("200 OK", "application/json", json!({"object": "list", "data": [{"id": "fake-model", "object": "model", "created": 1, "owned_by": "test", "context_length": 131072}]}).to_string())
    } else {
        (
            "404 Not Found",
            "application/json",
            json!({"error": {"message": "not found"}}).to_string(),
        )
    };
    let _ = write!(
        stream,
        "HTTP/1.1 {status}\r\nContent-Type: {ctype}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{text}",
        text.len()
    );
    let _ = stream.flush();
}

/// The scripted OpenAI-compatible server on 127.0.0.1.
fn fake_model() -> (u16, Arc<Mutex<Seen>>) {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let seen = Arc::new(Mutex::new(Seen::default()));
    let s = seen.clone();
    std::thread::spawn(move || {
        for stream in listener.incoming().flatten() {
            let s = s.clone();
            std::thread::spawn(move || handle(stream, &s));
        }
    });
    (port, seen)
}

fn run_with_timeout(mut cmd: Command, limit: Duration) -> Output {
    let mut child = cmd
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn");
    let started = Instant::now();
    loop {
        if child.try_wait().unwrap().is_some() {
            return child.wait_with_output().unwrap();
        }
        if started.elapsed() > limit {
            let _ = child.kill();
            let out = child.wait_with_output().unwrap();
            panic!(
                "timed out after {limit:?}: {}\n{}",
                String::from_utf8_lossy(&out.stdout),
                String::from_utf8_lossy(&out.stderr)
            );
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

fn hermes(bin: &Path, home: &Path, args: &[&str]) -> Output {
    let mut cmd = Command::new(bin);
    cmd.args(args)
        .env_clear()
        .env("PATH", "/usr/bin:/bin")
        .env("HOME", home.parent().unwrap())
        .env("HERMES_HOME", home)
        .env("NO_COLOR", "1")
        .current_dir(home);
    run_with_timeout(cmd, Duration::from_secs(240))
}

fn offered_tools(body: &Value) -> Vec<String> {
    body["tools"]
        .as_array()
        .map(|t| {
            t.iter()
                .filter_map(|t| t["function"]["name"].as_str().map(str::to_string))
                .collect()
        })
        .unwrap_or_default()
}

fn real_hostname() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .unwrap()
        .trim()
        .to_string()
}

#[test]
fn a_real_hermes_runs_a_command_through_aiops_mcp_and_is_offered_no_shell() {
    let bin = hermes_bin();
    let lab = Lab::start(1, "lab");
    let (port, seen) = fake_model();
    let home = lab.tmp.path().join("hermes-home");
    std::fs::create_dir_all(&home).unwrap();
    // The user's own configuration: the model. Installing must keep it.
    let user_config = format!(
        "# my settings\nmodel:\n  provider: custom\n  base_url: http://127.0.0.1:{port}/v1\n  default: fake-model\n  api_key: x\n  context_length: 131072\n"
    );
    std::fs::write(home.join("config.yaml"), &user_config).unwrap();
    std::fs::write(
        home.join("SOUL.md"),
        "You are Hermes, friendly and brief.\n",
    )
    .unwrap();

    let out = run_cmd(
        &aiops_bin(),
        &["hermes", "install", "--hermes-home", home.to_str().unwrap()],
        b"",
        &[("AIOPS_CONFIG", lab.config().to_str().unwrap())],
        &[],
    );
    assert!(
        out.status.success(),
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    let answer: Value = serde_json::from_slice(&out.stdout).unwrap();
    let backup = PathBuf::from(
        answer["backup"]
            .as_str()
            .expect("a backup of the user's config.yaml"),
    );
    assert_eq!(std::fs::read_to_string(&backup).unwrap(), user_config);
    let config: Value =
        serde_yaml::from_str(&std::fs::read_to_string(home.join("config.yaml")).unwrap()).unwrap();
    assert_eq!(
        config["model"]["base_url"],
        format!("http://127.0.0.1:{port}/v1"),
        "the user's settings are kept"
    );
    assert_eq!(config["mcp_servers"]["aiops"]["args"], json!(["mcp"]));
    assert_eq!(
        config["mcp_servers"]["aiops"]["env"]["AIOPS_CONFIG"],
        lab.config().to_str().unwrap()
    );
    assert_eq!(
        config["platform_toolsets"]["telegram"],
        json!(["aiops", "skills"])
    );
    let soul = std::fs::read_to_string(home.join("SOUL.md")).unwrap();
    assert!(
        soul.starts_with("You are Hermes, friendly and brief."),
        "the user's SOUL.md text is kept"
    );
    assert!(soul.contains("# AI ops rules (hard rules, every session)"));
    for d in aiops_controller::bootstrap::DOCS {
        let skill =
            std::fs::read_to_string(home.join("skills/aiops").join(d.skill).join("SKILL.md"))
                .unwrap();
        assert!(
            skill.starts_with(&format!("---\nname: {}\ndescription: ", d.skill)),
            "{}",
            d.skill
        );
        assert!(skill.ends_with(d.text));
    }
    // Installing again replaces our block instead of adding a second one.
    let again = run_cmd(
        &aiops_bin(),
        &["hermes", "install", "--hermes-home", home.to_str().unwrap()],
        b"",
        &[("AIOPS_CONFIG", lab.config().to_str().unwrap())],
        &[],
    );
    assert!(again.status.success());
    assert_eq!(
        std::fs::read_to_string(home.join("SOUL.md"))
            .unwrap()
            .matches("aiops:begin")
            .count(),
        1
    );

    // `hermes mcp test aiops` connects to our server and lists the tools.
    let out = hermes(&bin, &home, &["mcp", "test", "aiops"]);
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(out.status.success(), "hermes mcp test: {text}");
    for tool in [
        "run_action",
        "approval_status",
        "list_targets",
        "explain_policy",
    ] {
        assert!(
            text.contains(tool),
            "hermes mcp test does not list {tool}: {text}"
        );
    }

    // One real turn, with only the aiops toolset.
    let out = hermes(
        &bin,
        &home,
        &[
            "-z",
            "Which host is srv1? Use the aiops tools.",
            "-t",
            "aiops",
        ],
    );
    let said = String::from_utf8_lossy(&out.stdout).to_string();
    assert!(
        out.status.success(),
        "hermes -z failed: {said}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        said.contains("FINAL ANSWER"),
        "Hermes did not print the model's final text: {said}"
    );
    let executed: Vec<Value> = lab
        .audit()
        .into_iter()
        .filter(|r| r["event"] == "executed")
        .collect();
    assert_eq!(executed.len(), 1, "exactly one command ran: {executed:?}");
    let rec = &executed[0];
    assert_eq!(rec["command"], "hostname");
    assert_eq!(rec["requester"], "hermes");
    assert_eq!(rec["reason"], "operator asked which host srv1 is");
    let request_id = rec["request_id"].as_str().unwrap();
    assert!(
        said.contains(request_id),
        "the audited request's answer did not come back to the model and out of Hermes: {said}"
    );
    assert!(said.contains(&real_hostname()), "{said}");
    assert!(
        said.contains("UNTRUSTED DATA"),
        "the result is marked as untrusted: {said}"
    );
    assert_eq!(
        lab.agent_audit("srv1")
            .iter()
            .filter(|r| r["event"] == "executed")
            .count(),
        1
    );
    assert!(lab.aiops(&["audit", "verify"]).status.success());

    let bodies = seen.lock().unwrap().completions.clone();
    let with_tools: Vec<&Value> = bodies.iter().filter(|b| b["tools"].is_array()).collect();
    assert!(
        with_tools.len() >= 2,
        "the model was called for the tool call and for the final text: {}",
        bodies.len()
    );
    for b in &with_tools {
        let tools = offered_tools(b);
        assert!(
            tools.contains(&"mcp__aiops__run_action".to_string()),
            "{tools:?}"
        );
        for t in FORBIDDEN_TOOLS {
            assert!(
                !tools.contains(&t.to_string()),
                "Hermes offered its own {t} tool: {tools:?}"
            );
        }
        let system = b["messages"][0]["content"].to_string();
        assert!(
            system.contains("AI ops rules"),
            "SOUL.md with the rules is in the system prompt"
        );
        assert!(
            !system.contains("[BLOCKED"),
            "Hermes blocked our rules as an injection: {system}"
        );
    }
    let tool_msg = with_tools.last().unwrap()["messages"]
        .as_array()
        .unwrap()
        .iter()
        .rev()
        .find(|m| m["role"] == "tool")
        .unwrap()
        .to_string();
    assert!(tool_msg.contains(request_id), "{tool_msg}");

    // Without -t, the installed platform_toolsets decide: still no terminal, file or code tools.
    let before = seen.lock().unwrap().completions.len();
    let out = hermes(&bin, &home, &["-z", "Which host is srv1?"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let bodies = seen.lock().unwrap().completions.clone();
    let body = bodies[before..]
        .iter()
        .find(|b| b["tools"].is_array())
        .expect("a completion with tools");
    let tools = offered_tools(body);
    assert!(
        tools.contains(&"mcp__aiops__run_action".to_string()),
        "{tools:?}"
    );
    assert!(
        tools.contains(&"skill_view".to_string()),
        "the aiops skills can be read: {tools:?}"
    );
    for t in FORBIDDEN_TOOLS {
        assert!(
            !tools.contains(&t.to_string()),
            "the installed config still offers {t}: {tools:?}"
        );
    }
}
