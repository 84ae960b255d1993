//! `aiops approver teams`: Approve / Deny from Microsoft Teams.
//!
//! A Bot Framework bot run by the approver account, beside the Telegram
//! approver and with the same guarantees. It posts each new pending approval
//! as an Adaptive Card with `Action.Execute` Approve / Deny buttons to one
//! configured conversation (a channel or a group chat) through the Bot
//! Connector REST API, and serves the bot endpoint that receives the presses
//! (`invoke` activities named `adaptiveCard/action`). A press is accepted
//! only when its bearer token passes every check Microsoft documents
//! ([`jwt`]), it comes from the configured service URL, channel and
//! conversation, it is bound to the card posted for that approval, it was not
//! seen before, and the presser's Entra object id (`from.aadObjectId`) maps
//! to a name in `approvals.approvers`. Then the approval is resolved with
//! [`approvals::resolve`] under that name, exactly like
//! `aiops approvals approve|deny`: the approver key signs the grant, the
//! target agent verifies it, the command runs once. The card is replaced by
//! the outcome; approvals resolved elsewhere (CLI, Telegram, expiry) are
//! marked on their cards too.
//!
//! The bot's own token comes from the client-credentials flow with the app
//! secret, read from a file only the running account may read; the secret is
//! never logged, audited or put in an error message ([`Secret`] has no
//! `Display`, its `Debug` prints nothing of it, every error is redacted).

mod card;
mod connector;
mod jwt;
mod server;

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::mpsc;
use std::time::{Duration, Instant};

use aiops_audit::AuditLog;
use aiops_types::ErrorCode;
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

use super::telegram::{clip, failure_text_value};
use crate::approvals::{self, Resolver, Verb};
use crate::config::Loaded;
use crate::contract::{Answer, exit};

/// Default path of the bot's configuration.
pub const DEFAULT_TEAMS_CONFIG: &str = "/opt/aiops/approver/approver-teams.yml";
/// The Bot Framework's OpenID metadata (signing keys of the tokens it sends to bots).
pub const DEFAULT_OPENID_METADATA: &str =
    "https://login.botframework.com/v1/.well-known/openidconfiguration";
/// The token endpoint of a multi-tenant bot.
pub const DEFAULT_TOKEN_ENDPOINT: &str =
    "https://login.microsoftonline.com/botframework.com/oauth2/v2.0/token";
/// Issuer of the tokens the Bot Connector sends to bots.
pub const BOT_FRAMEWORK_ISSUER: &str = "https://api.botframework.com";
/// Scope of the bot's own token.
pub const SCOPE: &str = "https://api.botframework.com/.default";
/// How often the approval store is checked for new or resolved requests.
const SYNC_EVERY: Duration = Duration::from_secs(1);
/// Seen invoke activity ids are remembered this long (far beyond a token's lifetime).
const SEEN_FOR_MS: i64 = 48 * 3600 * 1000;

/// Arguments of `aiops approver teams`.
#[derive(clap::Args, Debug)]
pub struct TeamsArgs {
    /// The bot's configuration file.
    #[arg(long, env = "AIOPS_TEAMS_CONFIG", default_value = DEFAULT_TEAMS_CONFIG)]
    pub teams_config: PathBuf,
    /// Check the configuration, the secret and TLS files, fetch a token and the signing keys, then exit.
    #[arg(long)]
    pub check: bool,
}

/// The bot's configuration (`approver-teams.yml`).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TeamsConfig {
    /// The bot's Microsoft App ID (the audience of the tokens it accepts, its client id).
    pub app_id: String,
    /// File holding the app's client secret: owned by the account running the bot, mode 0600 or 0400.
    pub app_secret_file: PathBuf,
    /// Token endpoint for the client-credentials flow
    /// [default: https://login.microsoftonline.com/botframework.com/oauth2/v2.0/token;
    /// single-tenant bots use their tenant instead of botframework.com].
    #[serde(default = "d_token_endpoint")]
    pub token_endpoint: String,
    /// OpenID metadata of the Bot Framework [default: https://login.botframework.com/v1/.well-known/openidconfiguration].
    #[serde(default = "d_openid")]
    pub openid_metadata: String,
    /// Issuer of the Bot Connector's tokens [default: https://api.botframework.com].
    #[serde(default = "d_issuer")]
    pub issuer: String,
    /// The Bot Connector service URL of the conversation (e.g. https://smba.trafficmanager.net/emea/).
    pub service_url: String,
    /// The conversation the cards go to (`19:...@thread.tacv2` for a channel, `19:...@thread.v2` for a group chat).
    pub conversation_id: String,
    /// Entra tenant id; when set, presses from another tenant are refused.
    #[serde(default)]
    pub tenant_id: Option<String>,
    /// Channel id of the activities [default: msteams].
    #[serde(default = "d_channel")]
    pub channel_id: String,
    /// Entra object id (`from.aadObjectId`) -> approver name (each in the controller's `approvals.approvers`).
    pub approvers: BTreeMap<String, String>,
    /// Address of the bot endpoint (`POST /api/messages`).
    pub listen: SocketAddr,
    /// Certificate chain (PEM) of the endpoint.
    #[serde(default)]
    pub tls_cert: Option<PathBuf>,
    /// Its private key (PEM): owned by the account running the bot, mode 0600 or 0400.
    #[serde(default)]
    pub tls_key: Option<PathBuf>,
    /// Serve plain HTTP (on a loopback `listen` only) because a reverse proxy terminates TLS.
    #[serde(default)]
    pub plain_http_behind_proxy: bool,
    /// Signing keys are fetched again for an unknown key id at most this often [default: 60].
    #[serde(default = "d_refetch")]
    pub keys_min_refetch_secs: u64,
    /// Where posted cards and seen presses are remembered [default: RUNTIME_DIR/teams-approver.json].
    #[serde(default)]
    pub state_file: Option<PathBuf>,
}

fn d_token_endpoint() -> String {
    DEFAULT_TOKEN_ENDPOINT.into()
}
fn d_openid() -> String {
    DEFAULT_OPENID_METADATA.into()
}
fn d_issuer() -> String {
    BOT_FRAMEWORK_ISSUER.into()
}
fn d_channel() -> String {
    "msteams".into()
}
fn d_refetch() -> u64 {
    60
}

/// `https://`, or `http://` to a loopback address only; no user info, query or fragment.
fn check_url(field: &str, url: &str) -> Result<(), String> {
    if url.contains(['@', '?', '#', ' ']) {
        return Err(format!("{field}: {url:?}: no user info, query or fragment"));
    }
    if let Some(rest) = url.strip_prefix("http://") {
        let host = rest.split('/').next().unwrap_or("");
        let host = host.rsplit_once(':').map_or(host, |(h, _)| h);
        let loopback = host == "localhost"
            || host == "[::1]"
            || host
                .parse::<std::net::Ipv4Addr>()
                .is_ok_and(|a| a.is_loopback());
        if !loopback {
            return Err(format!(
                "{field}: {url:?}: plain http is allowed only to a loopback address"
            ));
        }
        Ok(())
    } else if url.starts_with("https://") && url.len() > "https://".len() {
        Ok(())
    } else {
        Err(format!("{field}: {url:?}: expected an https:// URL"))
    }
}

impl TeamsConfig {
    /// Reads and checks the file; relative paths are relative to it.
    pub fn load(path: &Path, loaded: &Loaded) -> Result<TeamsConfig, String> {
        let text = std::fs::read_to_string(path).map_err(|e| format!("{}: {e}", path.display()))?;
        let mut c: TeamsConfig =
            serde_yaml::from_str(&text).map_err(|e| format!("{}: {e}", path.display()))?;
        let base = path.parent().unwrap_or(Path::new("."));
        for p in [
            Some(&mut c.app_secret_file),
            c.state_file.as_mut(),
            c.tls_cert.as_mut(),
            c.tls_key.as_mut(),
        ]
        .into_iter()
        .flatten()
        {
            if p.is_relative() {
                *p = base.join(&*p);
            }
        }
        let bad = |m: String| format!("{}: {m}", path.display());
        for (field, url) in [
            ("token_endpoint", &c.token_endpoint),
            ("openid_metadata", &c.openid_metadata),
            ("service_url", &c.service_url),
        ] {
            check_url(field, url).map_err(bad)?;
        }
        let simple =
            |s: &str| !s.is_empty() && s.len() <= 200 && s.bytes().all(|b| b.is_ascii_graphic());
        if !simple(&c.app_id) {
            return Err(bad("app_id: expected the bot's Microsoft App ID".into()));
        }
        if !simple(&c.conversation_id) {
            return Err(bad("conversation_id: expected a conversation id".into()));
        }
        match (&c.tls_cert, &c.tls_key, c.plain_http_behind_proxy) {
            (Some(_), Some(_), false) => {}
            (None, None, true) if c.listen.ip().is_loopback() => {}
            (None, None, true) => {
                return Err(bad(format!(
                    "listen: {}: plain_http_behind_proxy serves plain HTTP on a loopback address only",
                    c.listen
                )));
            }
            (None, None, false) => {
                return Err(bad(
                    "set tls_cert and tls_key, or plain_http_behind_proxy: true behind a reverse proxy".into(),
                ));
            }
            _ => {
                return Err(bad(
                    "tls_cert and tls_key go together, and not with plain_http_behind_proxy".into(),
                ));
            }
        }
        if c.approvers.is_empty() {
            return Err(bad("approvers: name at least one Entra object id".into()));
        }
        let mut approvers = BTreeMap::new();
        for (id, name) in &c.approvers {
            if !loaded.config.approvals.approvers.contains(name) {
                return Err(bad(format!(
                    "approvers.{id}: {name:?} is not in approvals.approvers of {}",
                    loaded.path.display()
                )));
            }
            approvers.insert(id.trim().to_ascii_lowercase(), name.clone());
        }
        c.approvers = approvers;
        Ok(c)
    }

    fn state_path(&self, loaded: &Loaded) -> PathBuf {
        self.state_file
            .clone()
            .unwrap_or_else(|| loaded.config.runtime_dir.join("teams-approver.json"))
    }
}

/// The app secret. Its `Debug` never shows it and it has no `Display`.
#[derive(Clone)]
pub struct Secret(String);

impl std::fmt::Debug for Secret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Secret(<redacted>)")
    }
}

impl Secret {
    /// Reads the secret file (same rules as the Telegram token file).
    pub fn read(path: &Path) -> Result<Secret, String> {
        let text = super::read_private(path, "app secret", 4096)?;
        let secret = text.trim();
        let ok = (8..=256).contains(&secret.len()) && secret.bytes().all(|b| b.is_ascii_graphic());
        if !ok {
            // Never echo the file's content.
            return Err(format!(
                "{}: does not hold an app secret (expected one line of 8-256 printable characters)",
                path.display()
            ));
        }
        Ok(Secret(secret.to_string()))
    }

    fn expose(&self) -> &str {
        &self.0
    }
}

/// What the bot remembers across restarts.
#[derive(Debug, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct State {
    /// Approval id -> the card posted for it.
    cards: BTreeMap<String, Posted>,
    /// Invoke activity id -> when it was handled (Unix ms): a replay is refused.
    seen: BTreeMap<String, i64>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct Posted {
    /// The Bot Connector's id of the message carrying the card.
    activity_id: String,
    /// Still shows the buttons.
    open: bool,
    /// The request facts, kept to rebuild the card with the outcome.
    body: Vec<Value>,
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
    eprintln!("aiops approver teams: {line}");
}

/// An invoke response that shows `text` to the presser (the card stays as it is).
fn message_response(text: &str) -> Value {
    json!({"statusCode": 200, "type": "application/vnd.microsoft.activity.message", "value": text})
}

/// An invoke response that replaces the card.
fn card_response(card: &Value) -> Value {
    json!({"statusCode": 200, "type": card::CARD_TYPE, "value": card})
}

/// Entry point of `aiops approver teams`.
pub fn cmd(config: &Path, args: TeamsArgs) -> ExitCode {
    let print = |a: &Answer| println!("{}", serde_json::to_string(a).unwrap_or_default());
    let setup = |m: String| {
        print(&Answer::error(ErrorCode::TeamsConfig, m));
        ExitCode::from(exit::SETUP)
    };
    if tracing::level_filters::LevelFilter::current() == tracing::level_filters::LevelFilter::TRACE
    {
        return setup(
            "AIOPS_LOG enables trace logging, at which the HTTP client logs request headers (and so the bot's bearer token); use debug at most".into(),
        );
    }
    let loaded = match Loaded::load(config) {
        Ok(l) => l,
        Err(e) => return setup(e.to_string()),
    };
    let cfg = match TeamsConfig::load(&args.teams_config, &loaded) {
        Ok(c) => c,
        Err(e) => return setup(e),
    };
    let secret = match Secret::read(&cfg.app_secret_file) {
        Ok(s) => s,
        Err(e) => return setup(e),
    };
    let tls = match (&cfg.tls_cert, &cfg.tls_key) {
        (Some(cert), Some(key)) => {
            if let Err(e) = super::read_private(key, "TLS private key", 1) {
                return setup(e);
            }
            match server::tls_acceptor(cert, key) {
                Ok(a) => Some(a),
                Err(e) => return setup(e),
            }
        }
        _ => None,
    };
    let mut connector = connector::Connector::new(&cfg, secret);
    let plain_keys = cfg.openid_metadata.starts_with("http://");
    let mut keys = jwt::Keys::new(
        connector::agent(plain_keys),
        &cfg.openid_metadata,
        Duration::from_secs(cfg.keys_min_refetch_secs),
    );
    let api_error = |m: String| {
        // Exit 1, not 2: the network may come back; systemd restarts the bot.
        print(&Answer::error(ErrorCode::TeamsApi, m));
        ExitCode::from(exit::FAILED)
    };
    if let Err(e) = connector.token() {
        return api_error(format!(
            "no token from the token endpoint (it refused the app id and secret, or is unreachable): {e}"
        ));
    }
    if let Err(e) = keys.fetch() {
        return api_error(format!("the Bot Framework's signing keys: {e}"));
    }
    if args.check {
        println!(
            "{}",
            json!({"status": "ok", "app_id": cfg.app_id, "service_url": cfg.service_url,
                   "conversation_id": cfg.conversation_id, "approvers": cfg.approvers,
                   "signing_keys": keys.count(), "listen": cfg.listen.to_string(),
                   "tls": tls.is_some()})
        );
        return ExitCode::SUCCESS;
    }
    let state_path = cfg.state_path(&loaded);
    let state = match State::load(&state_path) {
        Ok(s) => s,
        Err(e) => return setup(e),
    };
    let listener = match std::net::TcpListener::bind(cfg.listen) {
        Ok(l) => l,
        Err(e) => return setup(format!("listen {}: {e}", cfg.listen)),
    };
    let (tx, rx) = mpsc::channel();
    let https = tls.is_some();
    std::thread::spawn(move || {
        let e = server::serve(listener, tls, tx);
        log(&format!("endpoint stopped: {e}"));
    });
    log(&format!(
        "serving {} on {} for conversation {} and approvers {:?}",
        if https { "https" } else { "http" },
        cfg.listen,
        cfg.conversation_id,
        cfg.approvers.values().collect::<Vec<_>>()
    ));
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("a current-thread runtime builds");
    let mut daemon = Daemon {
        log: AuditLog::new(&loaded.config.audit_log),
        loaded,
        cfg,
        connector,
        keys,
        state,
        state_path,
        rt,
    };
    let e = daemon.serve(&rx);
    log(&format!("stopped: {e}"));
    ExitCode::FAILURE
}

struct Daemon {
    loaded: Loaded,
    log: AuditLog,
    cfg: TeamsConfig,
    connector: connector::Connector,
    keys: jwt::Keys,
    state: State,
    state_path: PathBuf,
    rt: tokio::runtime::Runtime,
}

/// A press the bot refused: logged, audited, and shown to the presser.
struct Refusal {
    /// HTTP status of the answer (401/403 for authentication, 200 for an invoke answer).
    status: u16,
    code: &'static str,
    message: String,
}

/// The HTTP answer to a request, or why it was refused (with the approval it named).
type Checked = Result<Option<(u16, Value)>, (Refusal, Option<String>)>;

fn refuse(code: &'static str, message: impl Into<String>) -> Refusal {
    Refusal {
        status: 200,
        code,
        message: message.into(),
    }
}

impl Daemon {
    fn serve(&mut self, rx: &mpsc::Receiver<server::Job>) -> String {
        let mut next_sync = Instant::now();
        loop {
            if Instant::now() >= next_sync {
                if let Err(e) = self.sync() {
                    log(&format!("approvals: {e}"));
                }
                next_sync = Instant::now() + SYNC_EVERY;
            }
            match rx.recv_timeout(next_sync.saturating_duration_since(Instant::now())) {
                Ok(job) => {
                    let answer = self.request(job.authorization.as_deref(), &job.body);
                    let _ = job.reply.send(answer);
                }
                Err(mpsc::RecvTimeoutError::Timeout) => {}
                Err(mpsc::RecvTimeoutError::Disconnected) => return "the endpoint stopped".into(),
            }
        }
    }

    fn save(&self) {
        if let Err(e) = self.state.save(&self.state_path) {
            log(&format!("state: {e}"));
        }
    }

    /// Posts cards for new pending approvals; marks the cards of approvals resolved elsewhere.
    fn sync(&mut self) -> Result<(), String> {
        let all = approvals::list(&self.loaded).map_err(|f| {
            failure_text_value(&serde_json::to_value(&*f.answer).unwrap_or(Value::Null))
        })?;
        let all = approvals::to_json(&all);
        let all = all.as_array().cloned().unwrap_or_default();
        let conversation = self.cfg.conversation_id.clone();
        for a in &all {
            let (Some(id), Some(state)) = (
                a.get("id").and_then(Value::as_str),
                a.get("state").and_then(Value::as_str),
            ) else {
                continue;
            };
            match (state, self.state.cards.get(id).cloned()) {
                ("pending", None) => {
                    let body = card::request_body(a);
                    let activity = card::activity(&card::request_card(id, &body));
                    match self.connector.post(&conversation, &activity) {
                        Ok(activity_id) => {
                            log(&format!("posted approval {id} as activity {activity_id}"));
                            self.state.cards.insert(
                                id.to_string(),
                                Posted {
                                    activity_id,
                                    open: true,
                                    body,
                                },
                            );
                            self.save();
                        }
                        Err(e) => log(&e),
                    }
                }
                (s, Some(p)) if p.open && s != "pending" => {
                    let resolver = a.get("resolver").and_then(Value::as_str).unwrap_or("?");
                    let headline = match s {
                        "expired" => "Expired. Nothing ran.".to_string(),
                        "superseded" => {
                            "Superseded by a newer request from the same requester. Nothing ran."
                                .to_string()
                        }
                        "denied" => format!("Denied by {resolver} (outside Teams). Nothing ran."),
                        _ => format!("Approved by {resolver} (outside Teams)."),
                    };
                    let c = card::outcome_card(&p.body, &headline, &[]);
                    match self
                        .connector
                        .update(&conversation, &p.activity_id, &card::activity(&c))
                    {
                        Ok(()) => self.close(id),
                        Err(e) => log(&format!("approval {id}: {e}")),
                    }
                }
                _ => {}
            }
        }
        let before = (self.state.cards.len(), self.state.seen.len());
        self.state.cards.retain(|id, p| {
            p.open
                || all
                    .iter()
                    .any(|a| a.get("id").and_then(Value::as_str) == Some(id))
        });
        let oldest = aiops_sys::now_ms() - SEEN_FOR_MS;
        self.state.seen.retain(|_, at| *at >= oldest);
        if (self.state.cards.len(), self.state.seen.len()) != before {
            self.save();
        }
        Ok(())
    }

    fn close(&mut self, id: &str) {
        if let Some(p) = self.state.cards.get_mut(id) {
            p.open = false;
        }
        self.save();
    }

    /// Audits and logs a refusal; returns the HTTP answer for it.
    fn refused(&self, r: &Refusal, activity: &Value, approval: Option<&str>) -> (u16, Value) {
        let s = |p: &str| {
            activity
                .pointer(p)
                .and_then(Value::as_str)
                .map(|t| clip(t, 200))
        };
        let rec = json!({
            "event": "approval_refused",
            "status": "refused",
            "channel": "teams",
            "code": r.code,
            "message": r.message,
            "approval_id": approval.map(|a| clip(a, 100)),
            "activity_id": s("/id"),
            "aad_object_id": s("/from/aadObjectId"),
            "conversation_id": s("/conversation/id"),
        });
        if let Err(f) = crate::contract::audit(&self.log, rec) {
            log(&format!(
                "audit: {}",
                f.answer.error.map(|e| e.message).unwrap_or_default()
            ));
        }
        log(&format!(
            "refused a request ({}): {}; activity {:?} from {:?}",
            r.code,
            r.message,
            s("/id").unwrap_or_default(),
            s("/from/aadObjectId").unwrap_or_default()
        ));
        if r.status == 200 {
            (200, message_response(&format!("Not done: {}", r.message)))
        } else {
            (
                r.status,
                json!({"error": {"code": r.code, "message": r.message}}),
            )
        }
    }

    /// One request to the endpoint: (HTTP status, JSON answer).
    fn request(&mut self, authorization: Option<&str>, body: &[u8]) -> (u16, Value) {
        let Ok(activity) = serde_json::from_slice::<Value>(body) else {
            return (
                400,
                json!({"error": {"code": "bad_request", "message": "not a JSON activity"}}),
            );
        };
        match self.check(authorization, &activity) {
            Ok(None) => (200, Value::Null),
            Ok(Some(answer)) => answer,
            Err((r, approval)) => self.refused(&r, &activity, approval.as_deref()),
        }
    }

    /// Checks and handles an activity. `Ok(None)`: not a press, acknowledged and ignored.
    fn check(&mut self, authorization: Option<&str>, activity: &Value) -> Checked {
        let s = |p: &str| activity.pointer(p).and_then(Value::as_str).unwrap_or("");
        let expect = jwt::Expect {
            issuer: &self.cfg.issuer,
            audience: &self.cfg.app_id,
            service_url: s("/serviceUrl"),
            channel_id: s("/channelId"),
            now: aiops_sys::now_ms() / 1000,
        };
        if let Err(e) = self.keys.verify(authorization, &expect) {
            let status = if authorization.is_none() { 401 } else { 403 };
            return Err((
                Refusal {
                    status,
                    code: "teams_unauthenticated",
                    message: e.0,
                },
                None,
            ));
        }
        // Authentic from here on; the body is bound to this bot by the checks below.
        if s("/serviceUrl").trim_end_matches('/') != self.cfg.service_url.trim_end_matches('/') {
            return Err((
                Refusal {
                    status: 403,
                    code: "teams_wrong_service",
                    message: "the activity's serviceUrl is not the configured service_url".into(),
                },
                None,
            ));
        }
        if s("/type") != "invoke" {
            return Ok(None);
        }
        if s("/name") != "adaptiveCard/action" {
            return Ok(Some((501, Value::Null)));
        }
        let approval = activity
            .pointer("/value/action/data/approval_id")
            .and_then(Value::as_str)
            .map(String::from);
        let fail = |code, m: &str| Err((refuse(code, m), approval.clone()));
        let activity_id = s("/id");
        if activity_id.is_empty() {
            return fail("teams_bad_activity", "the activity has no id");
        }
        if self.state.seen.contains_key(activity_id) {
            return fail(
                "teams_replayed",
                "this press was already handled (replayed activity); nothing was done",
            );
        }
        self.state
            .seen
            .insert(activity_id.to_string(), aiops_sys::now_ms());
        self.save();
        if s("/channelId") != self.cfg.channel_id {
            return fail("teams_wrong_channel", "not the configured channel");
        }
        let conversation = s("/conversation/id");
        let base = conversation
            .split_once(";messageid=")
            .map_or(conversation, |(b, _)| b);
        if base != self.cfg.conversation_id {
            return fail(
                "teams_wrong_conversation",
                "this is not the approvers' conversation; nothing was done",
            );
        }
        if let Some(tenant) = &self.cfg.tenant_id {
            let t = activity
                .pointer("/conversation/tenantId")
                .or_else(|| activity.pointer("/channelData/tenant/id"))
                .and_then(Value::as_str);
            if t.is_none_or(|t| !t.eq_ignore_ascii_case(tenant)) {
                return fail("teams_wrong_tenant", "not the configured tenant");
            }
        }
        let aad = s("/from/aadObjectId").to_ascii_lowercase();
        let Some(name) = self.cfg.approvers.get(&aad).cloned() else {
            return fail(
                "teams_not_an_approver",
                "you are not an approver; nothing was done",
            );
        };
        let verb = match (
            s("/value/action/type"),
            s("/value/action/verb"),
            approval.as_deref(),
        ) {
            ("Action.Execute", "approve", Some(_)) => Verb::Approve,
            ("Action.Execute", "deny", Some(_)) => Verb::Deny,
            _ => return fail("teams_bad_activity", "unknown button"),
        };
        let id = approval.clone().unwrap_or_default();
        let Some(posted) = self.state.cards.get(&id).cloned() else {
            return fail(
                "teams_unknown_approval",
                "this is not a current approval request",
            );
        };
        if s("/replyToId") != posted.activity_id {
            return fail(
                "teams_wrong_card",
                "this button is not on the card of that request",
            );
        }
        if !posted.open {
            return fail(
                "teams_already_resolved",
                "already resolved or expired; nothing was done",
            );
        }
        let verb_text = if verb == Verb::Approve {
            "approve"
        } else {
            "deny"
        };
        log(&format!(
            "{name} (Entra object {aad}) pressed {verb_text} on approval {id}"
        ));
        let result = self.rt.block_on(approvals::resolve(
            &self.loaded,
            verb,
            Some(&id),
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
        // Refused before anything changed (self approval, an unreadable key): the
        // request stays open for another approver. `resolve` audited it.
        if status == "error" && self.still_pending(&id) {
            return Ok(Some((
                200,
                message_response(&format!("Not done: {}", failure_text_value(&answer))),
            )));
        }
        if matches!(code, "approval_not_pending" | "approval_expired") {
            // The next sync shows the approval's state on the card.
            return Ok(Some((
                200,
                message_response("Not done: already resolved or expired; nothing was done"),
            )));
        }
        let (headline, details) = card::outcome(&name, &answer);
        let c = card::outcome_card(&posted.body, &headline, &details);
        // Closed even when the update fails: a second press must not reach resolve again.
        if let Err(e) = self.connector.update(
            &self.cfg.conversation_id,
            &posted.activity_id,
            &card::activity(&c),
        ) {
            log(&format!("approval {id}: {e}"));
        }
        self.close(&id);
        Ok(Some((200, card_response(&c))))
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn secret_debug_and_redaction_never_show_it() {
        let s = Secret("Zq8~secretSECRETsecret.value_1".into());
        assert_eq!(format!("{s:?}"), "Secret(<redacted>)");
    }

    #[test]
    fn urls_must_be_https_or_loopback_http() {
        assert!(
            check_url(
                "x",
                "https://login.botframework.com/v1/.well-known/openidconfiguration"
            )
            .is_ok()
        );
        assert!(check_url("x", "http://127.0.0.1:8081/teams/").is_ok());
        assert!(check_url("x", "http://127.3.4.5:8081").is_ok());
        assert!(check_url("x", "http://smba.trafficmanager.net/emea/").is_err());
        assert!(check_url("x", "http://127.0.0.1.evil.com/").is_err());
        assert!(check_url("x", "http://127.0.0.1:80@evil.example").is_err());
        assert!(check_url("x", "https://").is_err());
    }

    #[test]
    fn connector_paths_are_escaped() {
        assert_eq!(
            connector::pct("19:abc@thread.tacv2;messageid=1"),
            "19%3Aabc%40thread.tacv2%3Bmessageid%3D1"
        );
    }
}
