//! `aiops approver telegram`: the approver chat bot.
//!
//! A small daemon run by the approver account (never the controller account,
//! never the assistant). It posts each new pending approval to the configured
//! approver chat with inline Approve / Deny buttons, receives button presses
//! through the Bot API (`getUpdates` long polling), checks that the presser
//! is a configured approver and that the press came from the approver chat,
//! and then resolves the approval with [`approvals::resolve`] exactly like
//! `aiops approvals approve|deny` does: the approver key signs the grant and
//! the command runs once. The outcome replaces the buttons in the chat.
//!
//! The bot token is read from a file that only the running account may read.
//! It is only ever placed in the request path (`/bot<TOKEN>/<method>`); every
//! error text that could carry a URL is redacted, [`Token`]'s `Debug` prints
//! nothing of it, and the daemon refuses to start with `trace` logging (the
//! HTTP client prints full request paths at that level).

use aiops_types::ErrorCode;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;
use std::sync::mpsc;
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

use crate::approvals::{self, Resolver, Verb};
use crate::config::Loaded;
use crate::contract::{Answer, exit};

/// Default path of the bot's configuration.
pub const DEFAULT_TELEGRAM_CONFIG: &str = "/opt/aiops/approver-telegram.yml";
/// The real Bot API.
pub const DEFAULT_API_BASE: &str = "https://api.telegram.org";
/// How often the approval store is checked for new or resolved requests.
const SYNC_EVERY: Duration = Duration::from_secs(1);
/// Characters of command output shown in the chat.
const OUTPUT_HEAD: usize = 1500;
/// Telegram's message limit is 4096 characters; stay below it.
const MESSAGE_MAX: usize = 4000;

/// `aiops approver ...`
#[derive(clap::Subcommand, Debug)]
pub enum ApproverCmd {
    /// Run the Telegram approver bot: post each pending approval to the approver chat with
    /// Approve / Deny buttons and resolve it when an allowed approver presses one.
    Telegram(TelegramArgs),
    /// Run the Microsoft Teams approver bot: post each pending approval as an Adaptive Card
    /// with Approve / Deny and resolve it when a mapped approver presses one.
    Teams(super::teams::TeamsArgs),
}

/// Arguments of `aiops approver telegram`.
#[derive(clap::Args, Debug)]
pub struct TelegramArgs {
    /// The bot's configuration file.
    #[arg(long, env = "AIOPS_TELEGRAM_CONFIG", default_value = DEFAULT_TELEGRAM_CONFIG)]
    pub telegram_config: PathBuf,
    /// Check the configuration, the token file and the token (getMe), then exit.
    #[arg(long)]
    pub check: bool,
}

/// The bot's configuration (`approver-telegram.yml`).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TelegramConfig {
    /// Bot API base URL [default: https://api.telegram.org]. `http://` only to loopback.
    #[serde(default = "d_api_base")]
    pub api_base: String,
    /// File holding the bot token: owned by the account running the bot, mode 0600 or 0400.
    pub token_file: PathBuf,
    /// The approver chat (a group id is negative).
    pub chat_id: i64,
    /// Telegram user id -> approver name (each must be in the controller's `approvals.approvers`).
    pub approvers: BTreeMap<i64, String>,
    /// `getUpdates` long-poll timeout, 1-50 seconds.
    #[serde(default = "d_poll")]
    pub poll_timeout_secs: u32,
    /// Where posted messages and the update offset are remembered
    /// [default: RUNTIME_DIR/telegram-approver.json].
    #[serde(default)]
    pub state_file: Option<PathBuf>,
}

fn d_api_base() -> String {
    DEFAULT_API_BASE.into()
}
fn d_poll() -> u32 {
    25
}

impl TelegramConfig {
    /// Reads and checks the file; relative paths are relative to it.
    pub fn load(path: &Path, loaded: &Loaded) -> Result<TelegramConfig, String> {
        let text = std::fs::read_to_string(path).map_err(|e| format!("{}: {e}", path.display()))?;
        let mut c: TelegramConfig =
            serde_yaml::from_str(&text).map_err(|e| format!("{}: {e}", path.display()))?;
        let base = path.parent().unwrap_or(Path::new("."));
        for p in [Some(&mut c.token_file), c.state_file.as_mut()]
            .into_iter()
            .flatten()
        {
            if p.is_relative() {
                *p = base.join(&*p);
            }
        }
        let bad = |m: String| format!("{}: {m}", path.display());
        c.api_base = c.api_base.trim_end_matches('/').to_string();
        check_api_base(&c.api_base).map_err(bad)?;
        if !(1..=50).contains(&c.poll_timeout_secs) {
            return Err(bad("poll_timeout_secs: expected 1-50".into()));
        }
        if c.approvers.is_empty() {
            return Err(bad("approvers: name at least one Telegram user id".into()));
        }
        for (id, name) in &c.approvers {
            if !loaded.config.approvals.approvers.contains(name) {
                return Err(bad(format!(
                    "approvers.{id}: {name:?} is not in approvals.approvers of {}",
                    loaded.path.display()
                )));
            }
        }
        Ok(c)
    }

    fn state_path(&self, loaded: &Loaded) -> PathBuf {
        self.state_file
            .clone()
            .unwrap_or_else(|| loaded.config.runtime_dir.join("telegram-approver.json"))
    }

    /// `http://` is allowed only to a loopback address (the token travels in the path).
    fn loopback_http(&self) -> bool {
        self.api_base.starts_with("http://")
    }
}

fn check_api_base(base: &str) -> Result<(), String> {
    if base.contains(['@', '?', '#', ' ']) {
        return Err(format!(
            "api_base: {base:?}: no user info, query or fragment"
        ));
    }
    if let Some(rest) = base.strip_prefix("http://") {
        let host = rest.split('/').next().unwrap_or("");
        let host = host.rsplit_once(':').map_or(host, |(h, _)| h);
        if !["127.0.0.1", "localhost", "[::1]"].contains(&host) {
            return Err(format!(
                "api_base: {base:?}: plain http is allowed only to a loopback address"
            ));
        }
        Ok(())
    } else if base.starts_with("https://") && base.len() > "https://".len() {
        Ok(())
    } else {
        Err(format!("api_base: {base:?}: expected an https:// URL"))
    }
}

/// The bot token. Its `Debug` never shows it and it has no `Display`.
#[derive(Clone)]
pub struct Token(String);

impl std::fmt::Debug for Token {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Token(<redacted>)")
    }
}

impl Token {
    /// Reads the token file: a regular file owned by this account, not readable by group or others.
    pub fn read(path: &Path) -> Result<Token, String> {
        let text = super::read_private(path, "token", 4096)?;
        let token = text.trim();
        let ok = token.len() >= 8
            && token.len() <= 256
            && token.contains(':')
            && token
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || matches!(b, b':' | b'_' | b'-'));
        if !ok {
            // Never echo the file's content: it may be a token with a typo.
            return Err(format!(
                "{}: does not hold a bot token (expected one line like 123456:ABC-def...)",
                path.display()
            ));
        }
        Ok(Token(token.to_string()))
    }
}

/// A Bot API client. Every error it returns has the token removed.
pub struct Bot {
    agent: ureq::Agent,
    base: String,
    token: Token,
}

/// A failed Bot API call (text already redacted).
#[derive(Debug)]
pub struct BotError {
    /// What went wrong, without the token.
    pub message: String,
    /// Telegram asked to wait this long (HTTP 429).
    pub retry_after: Option<u64>,
}

impl std::fmt::Display for BotError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.message)
    }
}

impl Bot {
    /// A client for `base` (`https://api.telegram.org` or a loopback test server).
    pub fn new(base: &str, token: Token, loopback_http: bool) -> Bot {
        let mut config = ureq::Agent::config_builder()
            .http_status_as_error(false)
            // A redirect could carry the token elsewhere (and would be logged).
            .max_redirects(0)
            .user_agent(concat!(
                "aiops-approver-telegram/",
                env!("CARGO_PKG_VERSION")
            ))
            .timeout_global(Some(Duration::from_secs(30)));
        if loopback_http {
            // Never hand a plain-http URL (token in the path) to a proxy.
            config = config.proxy(None);
        }
        Bot {
            agent: config.build().into(),
            base: base.to_string(),
            token,
        }
    }

    /// Removes the token (and its secret half) from `text`.
    pub fn redact(&self, text: &str) -> String {
        let mut out = text.replace(&self.token.0, "<token>");
        if let Some((_, secret)) = self.token.0.split_once(':')
            && secret.len() >= 8
        {
            out = out.replace(secret, "<token>");
        }
        out
    }

    /// Calls `method` with a JSON body; returns `result` when `ok` is true.
    pub fn call(&self, method: &str, body: &Value, timeout: Duration) -> Result<Value, BotError> {
        let url = format!("{}/bot{}/{method}", self.base, self.token.0);
        let fail = |m: String| BotError {
            message: self.redact(&format!("{method}: {m}")),
            retry_after: None,
        };
        let mut resp = self
            .agent
            .post(&url)
            .config()
            .timeout_global(Some(timeout))
            .build()
            .send_json(body)
            .map_err(|e| fail(e.to_string()))?;
        let status = resp.status().as_u16();
        let v: Value = resp
            .body_mut()
            .with_config()
            .limit(4 * 1024 * 1024)
            .read_json()
            .map_err(|e| fail(format!("HTTP {status}: {e}")))?;
        if v.get("ok") == Some(&Value::Bool(true)) {
            return Ok(v.get("result").cloned().unwrap_or(Value::Null));
        }
        let mut e = fail(format!(
            "HTTP {status}: {} {}",
            v.get("error_code").unwrap_or(&Value::Null),
            v.get("description").and_then(Value::as_str).unwrap_or("")
        ));
        e.retry_after = v.pointer("/parameters/retry_after").and_then(Value::as_u64);
        Err(e)
    }
}

/// What the bot remembers across restarts.
#[derive(Debug, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct State {
    /// Next `getUpdates` offset (everything below was handled).
    offset: i64,
    /// Approval id -> the message posted for it.
    messages: BTreeMap<String, Posted>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct Posted {
    message_id: i64,
    /// Still shows the buttons.
    open: bool,
    /// The request text, kept to prefix the outcome.
    text: String,
}

impl State {
    fn load(path: &Path) -> Result<State, String> {
        match std::fs::read_to_string(path) {
            Ok(t) => serde_json::from_str(&t).map_err(|e| format!("{}: {e}", path.display())),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(State::default()),
            Err(e) => Err(format!("{}: {e}", path.display())),
        }
    }

    fn save(&self, path: &Path) -> Result<(), String> {
        let text = serde_json::to_vec_pretty(self).expect("state serializes");
        aiops_sys::write_file_mode(path, &text, 0o600)
            .map_err(|e| format!("{}: {e}", path.display()))
    }
}

fn log(line: &str) {
    eprintln!("aiops approver telegram: {line}");
}

/// Entry point of `aiops approver ...`.
pub fn cmd(config: &Path, command: ApproverCmd) -> ExitCode {
    let args = match command {
        ApproverCmd::Telegram(args) => args,
        ApproverCmd::Teams(args) => return super::teams::cmd(config, args),
    };
    let setup = |m: String| {
        let a = Answer::error(ErrorCode::TelegramConfig, m);
        println!("{}", serde_json::to_string(&a).unwrap_or_default());
        ExitCode::from(exit::SETUP)
    };
    if tracing::level_filters::LevelFilter::current() == tracing::level_filters::LevelFilter::TRACE
    {
        return setup(
            "AIOPS_LOG enables trace logging, at which the HTTP client logs request paths (and so the bot token); use debug at most".into(),
        );
    }
    let loaded = match Loaded::load(config) {
        Ok(l) => l,
        Err(e) => return setup(e.to_string()),
    };
    let cfg = match TelegramConfig::load(&args.telegram_config, &loaded) {
        Ok(c) => c,
        Err(e) => return setup(e),
    };
    let token = match Token::read(&cfg.token_file) {
        Ok(t) => t,
        Err(e) => return setup(e),
    };
    let bot = Arc::new(Bot::new(&cfg.api_base, token, cfg.loopback_http()));
    let me = match bot.call("getMe", &json!({}), Duration::from_secs(30)) {
        Ok(me) => me,
        Err(e) => {
            // Exit 1, not 2: the network may come back; systemd restarts the bot.
            let a = Answer::error(
                ErrorCode::TelegramApi,
                format!("getMe failed (the Bot API refused the token or is unreachable): {e}"),
            );
            println!("{}", serde_json::to_string(&a).unwrap_or_default());
            return ExitCode::from(exit::FAILED);
        }
    };
    let username = me.get("username").and_then(Value::as_str).unwrap_or("?");
    if args.check {
        println!(
            "{}",
            json!({"status": "ok", "bot": username, "chat_id": cfg.chat_id, "approvers": cfg.approvers})
        );
        return ExitCode::SUCCESS;
    }
    let state_path = cfg.state_path(&loaded);
    let state = match State::load(&state_path) {
        Ok(s) => s,
        Err(e) => return setup(e),
    };
    log(&format!(
        "bot @{username} serving chat {} for approvers {:?}",
        cfg.chat_id,
        cfg.approvers.values().collect::<Vec<_>>()
    ));
    let mut daemon = Daemon {
        loaded,
        cfg,
        bot,
        state,
        state_path,
    };
    let e = daemon.serve();
    log(&format!("stopped: {e}"));
    ExitCode::FAILURE
}

struct Daemon {
    loaded: Loaded,
    cfg: TelegramConfig,
    bot: Arc<Bot>,
    state: State,
    state_path: PathBuf,
}

/// Long-polls `getUpdates` and hands each update to the main loop.
fn poll(bot: &Bot, mut offset: i64, timeout: u32, tx: &mpsc::Sender<Value>) {
    let mut backoff = 1u64;
    loop {
        let body =
            json!({"offset": offset, "timeout": timeout, "allowed_updates": ["callback_query"]});
        match bot.call(
            "getUpdates",
            &body,
            Duration::from_secs(u64::from(timeout) + 15),
        ) {
            Ok(Value::Array(updates)) => {
                backoff = 1;
                for u in updates {
                    if let Some(id) = u.get("update_id").and_then(Value::as_i64) {
                        offset = offset.max(id + 1);
                    }
                    if tx.send(u).is_err() {
                        return;
                    }
                }
            }
            Ok(other) => {
                log(&format!("getUpdates: unexpected result {other}"));
                std::thread::sleep(Duration::from_secs(backoff));
                backoff = (backoff * 2).min(30);
            }
            Err(e) => {
                log(&e.message);
                let wait = e.retry_after.unwrap_or(backoff).min(300);
                std::thread::sleep(Duration::from_secs(wait));
                backoff = (backoff * 2).min(30);
            }
        }
    }
}

impl Daemon {
    fn serve(&mut self) -> String {
        let (tx, rx) = mpsc::channel();
        let bot = Arc::clone(&self.bot);
        let (offset, timeout) = (self.state.offset, self.cfg.poll_timeout_secs);
        std::thread::spawn(move || poll(&bot, offset, timeout, &tx));
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("a current-thread runtime builds");
        let mut next_sync = Instant::now();
        loop {
            if Instant::now() >= next_sync {
                if let Err(e) = self.sync() {
                    log(&format!("approvals: {e}"));
                }
                next_sync = Instant::now() + SYNC_EVERY;
            }
            match rx.recv_timeout(next_sync.saturating_duration_since(Instant::now())) {
                Ok(update) => {
                    self.handle(&rt, &update);
                    if let Some(id) = update.get("update_id").and_then(Value::as_i64) {
                        self.state.offset = self.state.offset.max(id + 1);
                        self.save();
                    }
                }
                Err(mpsc::RecvTimeoutError::Timeout) => {}
                Err(mpsc::RecvTimeoutError::Disconnected) => return "the poller stopped".into(),
            }
        }
    }

    fn save(&self) {
        if let Err(e) = self.state.save(&self.state_path) {
            log(&format!("state: {e}"));
        }
    }

    fn api(&self, method: &str, body: &Value) -> Result<Value, BotError> {
        self.bot.call(method, body, Duration::from_secs(30))
    }

    /// Posts new pending approvals; closes messages of approvals resolved elsewhere or expired.
    fn sync(&mut self) -> Result<(), String> {
        let all = approvals::list(&self.loaded).map_err(|f| failure_text(&f.answer))?;
        let all = approvals::to_json(&all);
        let all = all.as_array().cloned().unwrap_or_default();
        for a in &all {
            let (Some(id), Some(state)) = (
                a.get("id").and_then(Value::as_str),
                a.get("state").and_then(Value::as_str),
            ) else {
                continue;
            };
            match (state, self.state.messages.get(id).cloned()) {
                ("pending", None) => {
                    if id.len() > 62 {
                        log(&format!("approval id {id:?} is too long for a button"));
                        continue;
                    }
                    let text = request_text(a);
                    let body = json!({
                        "chat_id": self.cfg.chat_id,
                        "text": text,
                        "reply_markup": {"inline_keyboard": [[
                            {"text": "✅ Approve", "callback_data": format!("a:{id}")},
                            {"text": "❌ Deny", "callback_data": format!("d:{id}")},
                        ]]},
                    });
                    match self.api("sendMessage", &body) {
                        Ok(m) => {
                            let Some(message_id) = m.get("message_id").and_then(Value::as_i64)
                            else {
                                log("sendMessage: no message_id in the result");
                                continue;
                            };
                            log(&format!("posted approval {id} as message {message_id}"));
                            self.state.messages.insert(
                                id.to_string(),
                                Posted {
                                    message_id,
                                    open: true,
                                    text,
                                },
                            );
                            self.save();
                        }
                        Err(e) => log(&e.message),
                    }
                }
                (s, Some(p)) if p.open && s != "pending" => {
                    let resolver = a.get("resolver").and_then(Value::as_str).unwrap_or("?");
                    let outcome = match s {
                        "expired" => "⌛ Expired. Nothing ran.".to_string(),
                        "superseded" => {
                            "Superseded by a newer request from the same requester. Nothing ran."
                                .to_string()
                        }
                        "denied" => format!("❌ Denied by {resolver} (outside this chat)."),
                        _ => format!("✅ Approved by {resolver} (outside this chat)."),
                    };
                    if self.edit(id, &p, &outcome) {
                        self.close(id);
                    }
                }
                _ => {}
            }
        }
        // Forget messages of approvals that are gone from the store.
        let before = self.state.messages.len();
        self.state.messages.retain(|id, p| {
            p.open
                || all
                    .iter()
                    .any(|a| a.get("id").and_then(Value::as_str) == Some(id))
        });
        if self.state.messages.len() != before {
            self.save();
        }
        Ok(())
    }

    fn close(&mut self, id: &str) {
        if let Some(p) = self.state.messages.get_mut(id) {
            p.open = false;
        }
        self.save();
    }

    /// Replaces the message's buttons with `outcome`.
    fn edit(&self, id: &str, p: &Posted, outcome: &str) -> bool {
        let text = clip(&format!("{}\n\n{outcome}", p.text), MESSAGE_MAX);
        let body = json!({
            "chat_id": self.cfg.chat_id,
            "message_id": p.message_id,
            "text": text,
            "reply_markup": {"inline_keyboard": []},
        });
        match self.api("editMessageText", &body) {
            Ok(_) => true,
            Err(e) => {
                log(&format!("approval {id}: {e}"));
                false
            }
        }
    }

    fn answer(&self, callback_id: &str, text: &str, alert: bool) {
        let body =
            json!({"callback_query_id": callback_id, "text": clip(text, 190), "show_alert": alert});
        if let Err(e) = self.api("answerCallbackQuery", &body) {
            log(&e.message);
        }
    }

    fn handle(&mut self, rt: &tokio::runtime::Runtime, update: &Value) {
        let Some(cq) = update.get("callback_query") else {
            return;
        };
        let Some(cq_id) = cq.get("id").and_then(Value::as_str) else {
            return;
        };
        let from = cq.pointer("/from/id").and_then(Value::as_i64);
        let from_text = from.map_or_else(|| "?".to_string(), |f| f.to_string());
        let who = cq
            .pointer("/from/username")
            .and_then(Value::as_str)
            .unwrap_or("");
        let chat = cq.pointer("/message/chat/id").and_then(Value::as_i64);
        let message_id = cq.pointer("/message/message_id").and_then(Value::as_i64);
        let data = cq.get("data").and_then(Value::as_str).unwrap_or("");
        let parsed = match data.split_once(':') {
            Some(("a", id)) => Some((Verb::Approve, id)),
            Some(("d", id)) => Some((Verb::Deny, id)),
            _ => None,
        };
        if chat != Some(self.cfg.chat_id) {
            log(&format!(
                "refused a press from chat {} (not the approver chat) by Telegram user {from_text}",
                chat.map_or_else(|| "?".to_string(), |c| c.to_string())
            ));
            self.answer(cq_id, "Not allowed: this is not the approver chat.", true);
            return;
        }
        let Some(name) = from.and_then(|f| self.cfg.approvers.get(&f)).cloned() else {
            log(&format!(
                "refused a press by Telegram user {from_text} (@{who}): not an approver; data {data:?}"
            ));
            self.answer(
                cq_id,
                "Not allowed: you are not an approver. Nothing was done.",
                true,
            );
            return;
        };
        let Some((verb, id)) = parsed else {
            self.answer(cq_id, "Unknown button.", false);
            return;
        };
        let Some(posted) = self.state.messages.get(id).cloned() else {
            self.answer(cq_id, "This is not a current approval request.", true);
            return;
        };
        if Some(posted.message_id) != message_id {
            self.answer(cq_id, "This is not the message of that request.", true);
            return;
        }
        if !posted.open {
            self.answer(cq_id, "Already resolved. Nothing was done.", false);
            return;
        }
        let verb_text = if verb == Verb::Approve {
            "approve"
        } else {
            "deny"
        };
        log(&format!(
            "{name} (Telegram user {from_text}) pressed {verb_text} on approval {id}"
        ));
        let result = rt.block_on(approvals::resolve(
            &self.loaded,
            verb,
            Some(id),
            Resolver::Human(name.clone()),
        ));
        let answer = match &result {
            Ok(a) => serde_json::to_value(a),
            Err(f) => serde_json::to_value(&*f.answer),
        }
        .unwrap_or(Value::Null);
        let status = answer
            .get("status")
            .and_then(Value::as_str)
            .unwrap_or("error");
        let code = answer
            .pointer("/error/code")
            .and_then(Value::as_str)
            .unwrap_or("");
        log(&format!(
            "approval {id}: {status}{}",
            if code.is_empty() {
                String::new()
            } else {
                format!(" ({code})")
            }
        ));
        // Refused before anything changed (e.g. self_approval, an unreadable key):
        // the request stays open for another approver.
        if status == "error" && self.still_pending(id) {
            self.answer(
                cq_id,
                &format!("Not done: {}", failure_text_value(&answer)),
                true,
            );
            return;
        }
        if matches!(code, "approval_not_pending" | "approval_expired") {
            self.answer(
                cq_id,
                "Already resolved or expired. Nothing was done.",
                true,
            );
            // The next sync shows the approval's state in the message.
            return;
        }
        let short = match status {
            "executed" => format!(
                "Approved; exit code {}",
                answer.get("exit_code").unwrap_or(&Value::Null)
            ),
            "denied" => "Denied. Nothing ran.".to_string(),
            s if code.is_empty() => format!("Approved; {s}"),
            _ => format!("Approved, but it failed: {code}"),
        };
        self.answer(cq_id, &short, false);
        let outcome = outcome_text(&name, &answer);
        // Closed even when the edit fails: a second press must not reach resolve again.
        self.edit(id, &posted, &outcome);
        self.close(id);
    }

    fn still_pending(&self, id: &str) -> bool {
        approvals::list(&self.loaded).is_ok_and(|all| {
            approvals::to_json(&all)
                .as_array()
                .into_iter()
                .flatten()
                .any(|a| a.get("id").and_then(Value::as_str) == Some(id) && a["state"] == "pending")
        })
    }
}

fn failure_text(a: &Answer) -> String {
    failure_text_value(&serde_json::to_value(a).unwrap_or(Value::Null))
}

pub(crate) fn failure_text_value(a: &Value) -> String {
    format!(
        "{}: {}",
        a.pointer("/error/code")
            .and_then(Value::as_str)
            .unwrap_or("error"),
        a.pointer("/error/message")
            .and_then(Value::as_str)
            .unwrap_or("")
    )
}

/// Cuts `s` to at most `max` characters, marking the cut.
pub(crate) fn clip(s: &str, max: usize) -> String {
    if s.chars().count() <= max {
        return s.to_string();
    }
    let mut out: String = s.chars().take(max.saturating_sub(1)).collect();
    out.push('…');
    out
}

/// The message posted for a pending approval (plain text: no parse mode, nothing to escape).
fn request_text(a: &Value) -> String {
    let s = |k: &str| a.get(k).and_then(Value::as_str).unwrap_or("");
    let targets: Vec<&str> = a
        .get("targets")
        .and_then(Value::as_array)
        .map(|t| t.iter().filter_map(Value::as_str).collect())
        .unwrap_or_default();
    let targets = if targets.is_empty() {
        s("target").to_string()
    } else {
        targets.join(", ")
    };
    let reasons: Vec<&str> = a
        .get("reasons")
        .and_then(Value::as_array)
        .map(|t| t.iter().filter_map(Value::as_str).collect())
        .unwrap_or_default();
    let expires = a.get("expires_ms").and_then(Value::as_i64).unwrap_or(0);
    let minutes = (expires - aiops_sys::now_ms()).max(0) / 60_000;
    let command = s("command");
    let command = if command.chars().count() > 2500 {
        format!(
            "{}\n[… {} bytes in all: too long to show here; read it with `aiops approvals list` before approving]",
            clip(command, 2500),
            command.len()
        )
    } else {
        command.to_string()
    };
    let mut card = String::new();
    for (label, value) in crate::approvals::card::facts(a) {
        let value = if label == "Plan" {
            clip(&value, 2500)
        } else {
            value
        };
        let sep = if value.contains('\n') || label == "Plan" {
            "\n"
        } else {
            " "
        };
        card.push_str(&format!("{label}:{sep}{value}\n"));
    }
    clip(
        &format!(
            "🔐 Approval needed on {targets}\n\nCommand:\n{command}\n\n{card}\nRequested by: {}\nReason: {}\nPolicy: {}\nExpires: {} (in {minutes} min)\nID: {}",
            s("requester"),
            s("reason"),
            reasons.join("; "),
            aiops_sys::rfc3339_ms(expires),
            s("id"),
        ),
        MESSAGE_MAX - 600,
    )
}

/// The result of a press, as shown in place of the buttons.
fn outcome_text(name: &str, a: &Value) -> String {
    let status = a.get("status").and_then(Value::as_str).unwrap_or("error");
    let mut out = match status {
        "denied" => return format!("❌ Denied by {name}. Nothing ran."),
        "executed" => format!(
            "✅ Approved by {name}. Executed: exit code {}{}{}",
            a.get("exit_code").unwrap_or(&Value::Null),
            if a.get("timed_out") == Some(&Value::Bool(true)) {
                " (timed out)"
            } else {
                ""
            },
            a.get("limit_exceeded")
                .and_then(Value::as_str)
                .map(|l| format!(" (limit exceeded: {l})"))
                .unwrap_or_default()
        ),
        "error" => format!(
            "⚠️ Approved by {name}, but it failed: {}",
            failure_text_value(a)
        ),
        other => format!("✅ Approved by {name}. Result: {other}"),
    };
    for k in ["stdout", "stderr"] {
        if let Some(t) = a.get(k).and_then(Value::as_str)
            && !t.is_empty()
        {
            out.push_str(&format!("\n{k}:\n{}", clip(t, OUTPUT_HEAD)));
        }
    }
    // Fan-out: one line per target.
    if let Some(results) = a.get("results").and_then(Value::as_array) {
        for r in results {
            out.push_str(&format!(
                "\n{}: {} {}",
                r.get("target").and_then(Value::as_str).unwrap_or("?"),
                r.get("status").and_then(Value::as_str).unwrap_or("?"),
                r.get("exit_code")
                    .map(|c| format!("exit {c}"))
                    .or_else(|| r.pointer("/error/code").map(|c| c.to_string()))
                    .unwrap_or_default()
            ));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn token_debug_and_redaction_never_show_it() {
        let t = Token("123456:AAEhBP0av28rEXAMPLEsecretpart".into());
        assert_eq!(format!("{t:?}"), "Token(<redacted>)");
        let bot = Bot::new("http://127.0.0.1:1", t, true);
        let r = bot.redact("GET http://127.0.0.1:1/bot123456:AAEhBP0av28rEXAMPLEsecretpart/getMe and AAEhBP0av28rEXAMPLEsecretpart");
        assert!(!r.contains("EXAMPLEsecret"), "{r}");
        assert!(format!("{:?}", bot.token).len() < 20);
    }

    #[test]
    fn errors_from_an_unreachable_api_are_redacted() {
        // A closed port: the connection error must not name the path.
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let secret = "987654:ZZsecretZZsecretZZsecretZZ";
        let bot = Bot::new(
            &format!("http://127.0.0.1:{port}"),
            Token(secret.into()),
            true,
        );
        let e = bot
            .call("getMe", &json!({}), Duration::from_secs(2))
            .unwrap_err();
        assert!(!e.message.contains("ZZsecret"), "{}", e.message);
        assert!(e.message.starts_with("getMe: "), "{}", e.message);
    }

    #[test]
    fn api_base_must_be_https_or_loopback_http() {
        assert!(check_api_base("https://api.telegram.org").is_ok());
        assert!(check_api_base("http://127.0.0.1:8081").is_ok());
        assert!(check_api_base("http://localhost:8081/x").is_ok());
        assert!(check_api_base("http://api.telegram.org").is_err());
        assert!(check_api_base("http://127.0.0.1.evil.com").is_err());
        assert!(check_api_base("ftp://x").is_err());
        assert!(check_api_base("http://127.0.0.1:80@evil.example").is_err());
        assert!(check_api_base("https://").is_err());
    }

    #[test]
    fn clip_keeps_char_boundaries() {
        assert_eq!(clip("ééééé", 3), "éé…");
        assert_eq!(clip("abc", 3), "abc");
    }
}
