//! The Telegram approver bot (`aiops approver telegram`) end to end, against a
//! loopback server that speaks the real Bot API JSON: a request is posted with
//! Approve / Deny buttons, a press by a non-approver (or from another chat) is
//! refused, a press by an approver runs the command exactly once and the
//! message shows the result; the bot token never reaches a log or an audit record.

use std::collections::VecDeque;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Condvar, Mutex};
use std::time::{Duration, Instant};

use aiops_e2e::{Lab, aiops_bin};
use serde_json::{Value, json};

const TOKEN: &str = "7312345678:AAFakeTokenForTheLoopbackBotApi_x9Zq";
const CHAT: i64 = -1001234567890;
const ALICE: i64 = 4242;
const MALLORY: i64 = 999;

/// Calls the bot made, and the updates waiting for `getUpdates`.
#[derive(Default)]
struct Shared {
    calls: Vec<(String, Value)>,
    updates: VecDeque<Value>,
    next_update: i64,
    next_message: i64,
    bad_token_calls: usize,
}

/// A Bot API server on 127.0.0.1: `{"ok":true,"result":...}` answers, long-polled `getUpdates`.
struct FakeBotApi {
    port: u16,
    shared: Arc<(Mutex<Shared>, Condvar)>,
}

impl FakeBotApi {
    fn start() -> FakeBotApi {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        let shared = Arc::new((
            Mutex::new(Shared {
                next_update: 100,
                next_message: 500,
                ..Shared::default()
            }),
            Condvar::new(),
        ));
        let s = Arc::clone(&shared);
        std::thread::spawn(move || {
            for stream in listener.incoming().flatten() {
                let s = Arc::clone(&s);
                std::thread::spawn(move || serve(stream, &s));
            }
        });
        FakeBotApi { port, shared }
    }

    fn base(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    /// Queues a button press as Telegram delivers it.
    fn press(&self, from: i64, username: &str, chat: i64, message_id: i64, data: &str) -> String {
        let (m, cv) = &*self.shared;
        let mut g = m.lock().unwrap();
        g.next_update += 1;
        let update_id = g.next_update;
        let cq_id = format!("cq{update_id}");
        g.updates.push_back(json!({
            "update_id": update_id,
            "callback_query": {
                "id": cq_id,
                "from": {"id": from, "is_bot": false, "first_name": username, "username": username, "language_code": "en"},
                "message": {
                    "message_id": message_id,
                    "from": {"id": 7312345678_i64, "is_bot": true, "first_name": "aiops", "username": "aiops_approver_bot"},
                    "chat": {"id": chat, "title": "aiops approvers", "type": "supergroup"},
                    "date": 1_790_000_000,
                    "text": "Approval needed",
                },
                "chat_instance": "-5234567890123456789",
                "data": data,
            }
        }));
        cv.notify_all();
        cq_id
    }

    fn calls(&self, method: &str) -> Vec<Value> {
        let g = self.shared.0.lock().unwrap();
        g.calls
            .iter()
            .filter(|(m, _)| m == method)
            .map(|(_, b)| b.clone())
            .collect()
    }

    /// Waits until the bot called `method` with a body matching `pred`.
    fn wait_for(&self, method: &str, pred: impl Fn(&Value) -> bool, what: &str) -> Value {
        let deadline = Instant::now() + Duration::from_secs(30);
        let (m, cv) = &*self.shared;
        let mut g = m.lock().unwrap();
        loop {
            if let Some((_, b)) = g.calls.iter().find(|(mm, b)| mm == method && pred(b)) {
                return b.clone();
            }
            let left = deadline.saturating_duration_since(Instant::now());
            assert!(
                !left.is_zero(),
                "timed out waiting for {method} ({what}); calls: {:?}",
                g.calls
            );
            g = cv.wait_timeout(g, left).unwrap().0;
        }
    }
}

fn serve(mut stream: TcpStream, shared: &(Mutex<Shared>, Condvar)) {
    let mut reader = BufReader::new(stream.try_clone().unwrap());
    let mut line = String::new();
    if reader.read_line(&mut line).is_err() {
        return;
    }
    let path = line.split_whitespace().nth(1).unwrap_or("").to_string();
    let mut len = 0usize;
    loop {
        let mut h = String::new();
        if reader.read_line(&mut h).unwrap_or(0) == 0 || h == "\r\n" {
            break;
        }
        if let Some((k, v)) = h.split_once(':')
            && k.eq_ignore_ascii_case("content-length")
        {
            len = v.trim().parse().unwrap();
        }
    }
    let mut body = vec![0; len];
    reader.read_exact(&mut body).unwrap();
    let body: Value = serde_json::from_slice(&body).unwrap_or(Value::Null);
    let (m, cv) = shared;
    let reply = match path.strip_prefix(&format!("/bot{TOKEN}/")) {
        None => {
            m.lock().unwrap().bad_token_calls += 1;
            json!({"ok": false, "error_code": 401, "description": "Unauthorized"})
        }
        Some(method) => {
            let method = method.to_string();
            let result = match method.as_str() {
                "getMe" => {
                    json!({"id": 7312345678_i64, "is_bot": true, "first_name": "aiops", "username": "aiops_approver_bot",
                    "can_join_groups": true, "can_read_all_group_messages": false, "supports_inline_queries": false})
                }
                "getUpdates" => {
                    let offset = body["offset"].as_i64().unwrap_or(0);
                    let timeout = Duration::from_secs(body["timeout"].as_u64().unwrap_or(0));
                    let deadline = Instant::now() + timeout;
                    let mut g = m.lock().unwrap();
                    g.calls.push((method.clone(), body.clone()));
                    cv.notify_all();
                    loop {
                        // Updates below the offset are confirmed: Telegram forgets them.
                        g.updates
                            .retain(|u| u["update_id"].as_i64().unwrap() >= offset);
                        let left = deadline.saturating_duration_since(Instant::now());
                        if !g.updates.is_empty() || left.is_zero() {
                            break;
                        }
                        g = cv.wait_timeout(g, left).unwrap().0;
                    }
                    let out: Vec<Value> = g.updates.iter().cloned().collect();
                    drop(g);
                    respond(&mut stream, &json!({"ok": true, "result": out}));
                    return;
                }
                "sendMessage" => {
                    let mut g = m.lock().unwrap();
                    g.next_message += 1;
                    json!({"message_id": g.next_message, "from": {"id": 7312345678_i64, "is_bot": true, "first_name": "aiops", "username": "aiops_approver_bot"},
                        "chat": {"id": body["chat_id"], "title": "aiops approvers", "type": "supergroup"},
                        "date": 1_790_000_000, "text": body["text"], "reply_markup": body["reply_markup"]})
                }
                "editMessageText" => {
                    json!({"message_id": body["message_id"], "chat": {"id": body["chat_id"], "type": "supergroup"},
                    "date": 1_790_000_000, "edit_date": 1_790_000_100, "text": body["text"]})
                }
                "answerCallbackQuery" => json!(true),
                _ => Value::Null,
            };
            let mut g = m.lock().unwrap();
            g.calls.push((method, body));
            cv.notify_all();
            if result.is_null() {
                json!({"ok": false, "error_code": 404, "description": "Not Found"})
            } else {
                json!({"ok": true, "result": result})
            }
        }
    };
    respond(&mut stream, &reply);
}

fn respond(stream: &mut TcpStream, v: &Value) {
    let body = v.to_string();
    let status = if v["ok"] == true {
        "200 OK"
    } else {
        "401 Unauthorized"
    };
    let _ = write!(
        stream,
        "HTTP/1.1 {status}\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    );
}

/// The bot as a child process; killed on drop.
struct BotProcess {
    child: Child,
}

impl BotProcess {
    fn start(lab: &Lab, tg_config: &Path, name: &str) -> BotProcess {
        let child = Command::new(aiops_bin())
            .arg("--config")
            .arg(lab.config())
            .args(["approver", "telegram", "--telegram-config"])
            .arg(tg_config)
            .env("AIOPS_LOG", "debug")
            .stdin(Stdio::null())
            .stdout(std::fs::File::create(lab.tmp.path().join(format!("{name}.stdout"))).unwrap())
            .stderr(std::fs::File::create(lab.tmp.path().join(format!("{name}.stderr"))).unwrap())
            .spawn()
            .expect("aiops approver telegram starts");
        BotProcess { child }
    }
}

impl Drop for BotProcess {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A production lab whose approvers are `alice` (Telegram user ALICE) and root; the bot's config and token.
fn setup(api: &FakeBotApi) -> (Lab, PathBuf) {
    let lab = Lab::init(1, "production");
    let me = nix::unistd::User::from_uid(nix::unistd::getuid())
        .unwrap()
        .unwrap()
        .name;
    lab.edit(
        "config.yml",
        &format!("approvers: [{me}]"),
        &format!("approvers: [alice, {me}]"),
    );
    lab.up();
    let token_file = lab.tmp.path().join("telegram.token");
    std::fs::write(&token_file, format!("{TOKEN}\n")).unwrap();
    std::fs::set_permissions(&token_file, std::fs::Permissions::from_mode(0o600)).unwrap();
    let cfg = lab.tmp.path().join("approver-telegram.yml");
    std::fs::write(
        &cfg,
        format!(
            "api_base: {}\ntoken_file: telegram.token\nchat_id: {CHAT}\napprovers:\n  {ALICE}: alice\npoll_timeout_secs: 2\n",
            api.base()
        ),
    )
    .unwrap();
    (lab, cfg)
}

fn request(lab: &Lab, command: &str) -> String {
    let req = json!({"target": "srv1", "command": command, "requester": "hermes", "reason": "telegram e2e"});
    let (answer, code) = lab.run(req.to_string().as_bytes());
    assert_eq!(code, 0, "{answer}");
    assert_eq!(answer["status"], "approval_requested", "{answer}");
    answer["approval_id"].as_str().unwrap().to_string()
}

/// Waits for the sendMessage that carries the buttons of approval `id`; returns its message id.
fn posted(api: &FakeBotApi, id: &str) -> (i64, Value) {
    let sent = api.wait_for(
        "sendMessage",
        |b| b["reply_markup"].to_string().contains(id),
        "the approval's message",
    );
    let n = api
        .calls("sendMessage")
        .iter()
        .position(|b| b == &sent)
        .unwrap();
    // The fake numbers messages from 501 in order.
    (501 + i64::try_from(n).unwrap(), sent)
}

fn executed_on_agent(lab: &Lab) -> usize {
    lab.agent_audit("srv1")
        .iter()
        .filter(|r| r["event"] == "executed")
        .count()
}

fn pending(lab: &Lab, id: &str) -> String {
    let out = lab.aiops(&["approvals", "list", "--json"]);
    let all: Value = serde_json::from_slice(&out.stdout).unwrap();
    all.as_array()
        .unwrap()
        .iter()
        .find(|a| a["id"] == id)
        .map(|a| a["state"].as_str().unwrap().to_string())
        .unwrap()
}

/// No file of the lab (logs, audit logs, state, outputs) contains the token, except the token file.
fn assert_token_nowhere(lab: &Lab) {
    let secret = TOKEN.split_once(':').unwrap().1;
    let mut checked = 0;
    let mut stack = vec![lab.tmp.path().to_path_buf()];
    while let Some(dir) = stack.pop() {
        for e in std::fs::read_dir(&dir).unwrap().flatten() {
            let p = e.path();
            if p.is_dir() {
                stack.push(p);
            } else if p.file_name().unwrap() != "telegram.token" {
                let bytes = std::fs::read(&p).unwrap();
                let text = String::from_utf8_lossy(&bytes);
                assert!(
                    !text.contains(secret),
                    "{} contains the bot token",
                    p.display()
                );
                checked += 1;
            }
        }
    }
    for must in [
        "audit.jsonl",
        "agents/srv1/audit.jsonl",
        "agents/srv1/agent.log",
    ] {
        assert!(lab.dir.join(must).exists(), "{must} was not checked");
    }
    assert!(checked >= 8, "only {checked} files checked");
}

#[test]
fn a_telegram_approval_runs_once_and_reports_in_the_chat() {
    let api = FakeBotApi::start();
    let (lab, cfg) = setup(&api);
    let bot = BotProcess::start(&lab, &cfg, "bot");
    let marker = lab.tmp.path().join("approved-in-telegram");
    let id = request(&lab, &format!("touch {}", marker.display()));

    // The request appears in the approver chat with two buttons bound to it.
    let (message_id, sent) = posted(&api, &id);
    assert_eq!(sent["chat_id"], CHAT);
    let text = sent["text"].as_str().unwrap();
    assert!(
        text.contains(&format!("touch {}", marker.display())),
        "{text}"
    );
    assert!(
        text.contains("srv1") && text.contains("hermes") && text.contains(&id),
        "{text}"
    );
    // What the privilege will be: the plan that runs, as whom, where, and the undo hint.
    for fact in [
        format!("Plan:\n1. touch {}\n", marker.display()),
        "Runs as: root (every stage of the plan)\n".to_string(),
        "Targets: srv1 (1)\n".to_string(),
        "Undo: reversible if you note".to_string(),
    ] {
        assert!(text.contains(&fact), "{fact:?} not in {text}");
    }
    println!("{text}");
    // Plain text: no parse mode, so nothing in the request can become markup.
    assert!(sent.get("parse_mode").is_none(), "{sent}");
    let buttons = &sent["reply_markup"]["inline_keyboard"][0];
    assert_eq!(buttons[0]["callback_data"], format!("a:{id}"));
    assert_eq!(buttons[1]["callback_data"], format!("d:{id}"));
    assert!(buttons[0]["text"].as_str().unwrap().contains("Approve"));
    assert!(buttons[1]["text"].as_str().unwrap().contains("Deny"));
    // Long polling for button presses only.
    let poll = api.wait_for("getUpdates", |_| true, "long polling");
    assert_eq!(poll["allowed_updates"], json!(["callback_query"]));
    assert_eq!(poll["timeout"], 2);

    // A press by someone who is not an approver: refused, nothing happens.
    let cq = api.press(MALLORY, "mallory", CHAT, message_id, &format!("a:{id}"));
    let refusal = api.wait_for(
        "answerCallbackQuery",
        |b| b["callback_query_id"] == cq.as_str(),
        "the refusal",
    );
    assert!(
        refusal["text"]
            .as_str()
            .unwrap()
            .contains("not an approver"),
        "{refusal}"
    );
    assert_eq!(refusal["show_alert"], true);
    assert!(!marker.exists());
    assert_eq!(pending(&lab, &id), "pending");
    assert_eq!(executed_on_agent(&lab), 0);
    assert!(api.calls("editMessageText").is_empty());

    // The approver presses Approve: the command runs, the message shows the result.
    let cq = api.press(ALICE, "alice", CHAT, message_id, &format!("a:{id}"));
    let edited = api.wait_for(
        "editMessageText",
        |b| b["message_id"] == message_id,
        "the result",
    );
    assert!(marker.exists(), "the approved command did not run");
    assert_eq!(edited["chat_id"], CHAT);
    let text = edited["text"].as_str().unwrap();
    assert!(text.contains("Approved by alice"), "{text}");
    assert!(text.contains("exit code 0"), "{text}");
    assert_eq!(edited["reply_markup"]["inline_keyboard"], json!([]));
    let answered = api.wait_for(
        "answerCallbackQuery",
        |b| b["callback_query_id"] == cq.as_str(),
        "the approver's answer",
    );
    assert!(
        answered["text"].as_str().unwrap().contains("exit code 0"),
        "{answered}"
    );
    assert_eq!(executed_on_agent(&lab), 1);
    assert_eq!(pending(&lab, &id), "used");
    let audit = lab.audit();
    let approved = audit
        .iter()
        .find(|r| r["event"] == "approved" && r["approval_id"] == id.as_str())
        .unwrap();
    assert_eq!(approved["resolver"], "alice");
    let accepted = lab
        .agent_audit("srv1")
        .into_iter()
        .find(|r| r["event"] == "accepted")
        .unwrap();
    assert_eq!(
        accepted["approver"], "alice",
        "the agent saw alice's signed grant"
    );

    // A second press runs nothing again and does not touch the message.
    std::fs::remove_file(&marker).unwrap();
    let cq = api.press(ALICE, "alice", CHAT, message_id, &format!("a:{id}"));
    let again = api.wait_for(
        "answerCallbackQuery",
        |b| b["callback_query_id"] == cq.as_str(),
        "the second press",
    );
    assert!(
        again["text"].as_str().unwrap().contains("Already resolved"),
        "{again}"
    );
    std::thread::sleep(Duration::from_millis(1500));
    assert!(!marker.exists());
    assert_eq!(executed_on_agent(&lab), 1);
    assert_eq!(api.calls("editMessageText").len(), 1);
    assert_eq!(api.calls("sendMessage").len(), 1, "posted once");
    assert_eq!(api.shared.0.lock().unwrap().bad_token_calls, 0);
    assert!(lab.aiops(&["audit", "verify"]).status.success());

    drop(bot);
    let stderr = std::fs::read_to_string(lab.tmp.path().join("bot.stderr")).unwrap();
    assert!(
        stderr.contains("refused a press by Telegram user 999"),
        "{stderr}"
    );
    assert_token_nowhere(&lab);
}

#[test]
fn deny_other_chats_and_approvals_from_outside_the_chat() {
    let api = FakeBotApi::start();
    let (lab, cfg) = setup(&api);
    let bot = BotProcess::start(&lab, &cfg, "bot");
    let marker = lab.tmp.path().join("denied-in-telegram");
    let id = request(&lab, &format!("touch {}", marker.display()));
    let (message_id, _) = posted(&api, &id);

    // The approver, but the press comes from another chat: refused.
    let cq = api.press(ALICE, "alice", -42, message_id, &format!("a:{id}"));
    let refusal = api.wait_for(
        "answerCallbackQuery",
        |b| b["callback_query_id"] == cq.as_str(),
        "the refusal",
    );
    assert!(
        refusal["text"]
            .as_str()
            .unwrap()
            .contains("not the approver chat")
    );
    assert_eq!(pending(&lab, &id), "pending");

    // Deny: nothing reaches the agent; the message says so.
    let cq = api.press(ALICE, "alice", CHAT, message_id, &format!("d:{id}"));
    let edited = api.wait_for(
        "editMessageText",
        |b| b["message_id"] == message_id,
        "the denial",
    );
    assert!(
        edited["text"].as_str().unwrap().contains("Denied by alice"),
        "{edited}"
    );
    let answered = api.wait_for(
        "answerCallbackQuery",
        |b| b["callback_query_id"] == cq.as_str(),
        "the denial's answer",
    );
    assert!(answered["text"].as_str().unwrap().contains("Denied"));
    assert_eq!(pending(&lab, &id), "denied");
    assert!(!marker.exists());
    assert!(
        lab.agent_audit("srv1").is_empty(),
        "nothing reached the agent"
    );
    let denied = lab
        .audit()
        .into_iter()
        .find(|r| r["event"] == "denied")
        .unwrap();
    assert_eq!(denied["resolver"], "alice");

    // A restart does not post a pending request again: the bot remembers its messages.
    let marker2 = lab.tmp.path().join("approved-on-the-cli");
    let id2 = request(&lab, &format!("touch {}", marker2.display()));
    let (message_id2, _) = posted(&api, &id2);
    // (Killed between sendMessage and saving its state, a bot would post it again.)
    let state = lab.dir.join("runtime/telegram-approver.json");
    let deadline = Instant::now() + Duration::from_secs(10);
    while !std::fs::read_to_string(&state)
        .unwrap_or_default()
        .contains(&id2)
    {
        assert!(Instant::now() < deadline, "the bot never saved its state");
        std::thread::sleep(Duration::from_millis(50));
    }
    drop(bot);
    let polls = api.calls("getUpdates").len();
    let bot = BotProcess::start(&lab, &cfg, "bot2");
    while api.calls("getUpdates").len() <= polls {
        std::thread::sleep(Duration::from_millis(100));
    }
    std::thread::sleep(Duration::from_millis(2500));
    assert_eq!(
        api.calls("sendMessage").len(),
        2,
        "a request was posted twice"
    );
    // An approval given outside the chat (`aiops approvals approve` by an approver) closes its message.
    // Approved as `approvals list` showed it (production).
    let listed = Command::new(aiops_bin())
        .arg("--config")
        .arg(lab.config())
        .args(["approvals", "list"])
        .output()
        .unwrap();
    assert!(listed.status.success());
    let out = Command::new(aiops_bin())
        .arg("--config")
        .arg(lab.config())
        .args(["approvals", "approve", &id2])
        .env_remove("SUDO_USER")
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stdout)
    );
    assert!(marker2.exists());
    let edited = api.wait_for(
        "editMessageText",
        |b| b["message_id"] == message_id2,
        "the message closed after a CLI approval",
    );
    assert!(
        edited["text"]
            .as_str()
            .unwrap()
            .contains("outside this chat"),
        "{edited}"
    );
    drop(bot);
    assert_token_nowhere(&lab);
}

#[test]
fn the_bot_refuses_a_readable_token_file_and_never_prints_the_token() {
    let api = FakeBotApi::start();
    let (lab, cfg) = setup(&api);
    let token_file = lab.tmp.path().join("telegram.token");
    std::fs::set_permissions(&token_file, std::fs::Permissions::from_mode(0o644)).unwrap();
    let out = lab.aiops(&[
        "approver",
        "telegram",
        "--telegram-config",
        cfg.to_str().unwrap(),
    ]);
    assert_eq!(out.status.code(), Some(2));
    let answer: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(answer["error"]["code"], "telegram_config");
    assert!(
        answer["error"]["message"]
            .as_str()
            .unwrap()
            .contains("chmod 600")
    );
    let secret = TOKEN.split_once(':').unwrap().1;
    assert!(!String::from_utf8_lossy(&out.stdout).contains(secret));
    assert!(!String::from_utf8_lossy(&out.stderr).contains(secret));

    // A wrong token: the Bot API refuses it; the error names the method, not the URL.
    std::fs::write(
        &token_file,
        "7312345678:AAWrongTokenWrongTokenWrongToken_1\n",
    )
    .unwrap();
    std::fs::set_permissions(&token_file, std::fs::Permissions::from_mode(0o400)).unwrap();
    let out = lab.aiops(&[
        "approver",
        "telegram",
        "--telegram-config",
        cfg.to_str().unwrap(),
        "--check",
    ]);
    assert_eq!(out.status.code(), Some(1));
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        text.contains("telegram_api") && text.contains("401"),
        "{text}"
    );
    assert!(!text.contains("WrongToken"), "{text}");
    assert_eq!(api.shared.0.lock().unwrap().bad_token_calls, 1);

    // Trace logging would print request paths: refused before the token is read.
    std::fs::write(&token_file, format!("{TOKEN}\n")).unwrap();
    let out = aiops_e2e::run_cmd(
        &aiops_bin(),
        &[
            "--config",
            lab.config().to_str().unwrap(),
            "approver",
            "telegram",
            "--telegram-config",
            cfg.to_str().unwrap(),
            "--check",
        ],
        b"",
        &[("AIOPS_LOG", "trace")],
        &[],
    );
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stdout).contains("trace"));

    // With the right token, --check answers with the bot's name.
    let out = lab.aiops(&[
        "approver",
        "telegram",
        "--telegram-config",
        cfg.to_str().unwrap(),
        "--check",
    ]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stdout)
    );
    let answer: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(answer["bot"], "aiops_approver_bot");
}
