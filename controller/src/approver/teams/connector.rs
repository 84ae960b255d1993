//! The bot's outbound side: its own token (OAuth 2.0 client credentials) and
//! the Bot Connector REST calls that post and update cards. The app secret
//! only ever travels in the token request's form body; every error text is
//! redacted of it and of the bearer token.

use std::time::{Duration, Instant};

use serde_json::Value;

use super::{Secret, TeamsConfig};

/// A token is renewed this long before it expires.
const RENEW_BEFORE: Duration = Duration::from_secs(300);

/// The Bot Connector client.
pub struct Connector {
    agent: ureq::Agent,
    token_endpoint: String,
    app_id: String,
    secret: Secret,
    service_url: String,
    token: Option<(String, Instant)>,
    /// Tokens obtained so far (reported by `--check`).
    pub tokens: u64,
}

/// The URL-encoded form of `s` (RFC 3986 unreserved characters kept).
pub fn pct(s: &str) -> String {
    let mut out = String::new();
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~') {
            out.push(char::from(b));
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// A ureq agent that never follows redirects (a redirect could carry a token elsewhere).
pub fn agent(plain_loopback: bool) -> ureq::Agent {
    let mut config = ureq::Agent::config_builder()
        .http_status_as_error(false)
        .max_redirects(0)
        .user_agent(concat!("aiops-approver-teams/", env!("CARGO_PKG_VERSION")))
        .timeout_global(Some(Duration::from_secs(30)));
    if plain_loopback {
        // Never hand a plain-http request (a bearer token in its headers) to a proxy.
        config = config.proxy(None);
    }
    config.build().into()
}

impl Connector {
    /// A client for the configured token endpoint and service URL.
    pub fn new(cfg: &TeamsConfig, secret: Secret) -> Connector {
        let plain = [&cfg.token_endpoint, &cfg.service_url]
            .iter()
            .any(|u| u.starts_with("http://"));
        Connector {
            agent: agent(plain),
            token_endpoint: cfg.token_endpoint.clone(),
            app_id: cfg.app_id.clone(),
            secret,
            service_url: cfg.service_url.trim_end_matches('/').to_string(),
            token: None,
            tokens: 0,
        }
    }

    /// Removes the app secret and the bearer token from `text`.
    pub fn redact(&self, text: &str) -> String {
        let mut out = text.replace(self.secret.expose(), "<secret>");
        out = out.replace(&pct(self.secret.expose()), "<secret>");
        if let Some((t, _)) = &self.token {
            out = out.replace(t.as_str(), "<token>");
        }
        out
    }

    /// The bearer token for the Bot Connector, from the cache or the token endpoint.
    pub fn token(&mut self) -> Result<String, String> {
        if let Some((t, until)) = &self.token
            && Instant::now() < *until
        {
            return Ok(t.clone());
        }
        self.token = None;
        let result = self.agent.post(&self.token_endpoint).send_form([
            ("grant_type", "client_credentials"),
            ("client_id", self.app_id.as_str()),
            ("client_secret", self.secret.expose()),
            ("scope", super::SCOPE),
        ]);
        let fail = |m: String| self.redact(&format!("token endpoint {}: {m}", self.token_endpoint));
        let mut resp = result.map_err(|e| fail(e.to_string()))?;
        let status = resp.status().as_u16();
        let v: Value = resp
            .body_mut()
            .with_config()
            .limit(256 * 1024)
            .read_json()
            .map_err(|e| fail(format!("HTTP {status}: {e}")))?;
        let token = v.get("access_token").and_then(Value::as_str);
        let (200, Some(token)) = (status, token) else {
            // Entra's error and its description (which never holds the secret; redacted anyway).
            return Err(fail(format!(
                "HTTP {status}: {} {}",
                v.get("error").and_then(Value::as_str).unwrap_or(""),
                v.get("error_description")
                    .and_then(Value::as_str)
                    .unwrap_or("")
                    .lines()
                    .next()
                    .unwrap_or("")
            )));
        };
        let lifetime = v
            .get("expires_in")
            .and_then(|e| {
                e.as_u64()
                    .or_else(|| e.as_str().and_then(|s| s.parse().ok()))
            })
            .unwrap_or(3600);
        let lifetime = Duration::from_secs(lifetime)
            .saturating_sub(RENEW_BEFORE)
            .max(Duration::from_secs(30));
        self.token = Some((token.to_string(), Instant::now() + lifetime));
        self.tokens += 1;
        Ok(token.to_string())
    }

    /// One Connector call; a 401 drops the cached token and tries once more.
    fn call(&mut self, method: &str, url: &str, body: &Value) -> Result<Value, String> {
        for attempt in 0..2 {
            let token = self.token()?;
            let req = match method {
                "PUT" => self.agent.put(url),
                _ => self.agent.post(url),
            };
            let result = req
                .header("Authorization", &format!("Bearer {token}"))
                .send_json(body);
            let fail = |m: String| self.redact(&format!("{method} {url}: {m}"));
            let mut resp = result.map_err(|e| fail(e.to_string()))?;
            let status = resp.status().as_u16();
            if status == 401 && attempt == 0 {
                self.token = None;
                continue;
            }
            let text = resp
                .body_mut()
                .with_config()
                .limit(1024 * 1024)
                .read_to_string()
                .unwrap_or_default();
            if !(200..300).contains(&status) {
                return Err(fail(format!("HTTP {status}: {}", super::clip(&text, 300))));
            }
            return Ok(serde_json::from_str(&text).unwrap_or(Value::Null));
        }
        Err(format!(
            "{method} {url}: the Bot Connector refused the bot's token"
        ))
    }

    fn activities(&self, conversation: &str) -> String {
        format!(
            "{}/v3/conversations/{}/activities",
            self.service_url,
            pct(conversation)
        )
    }

    /// `POST /v3/conversations/{id}/activities`; returns the new activity's id.
    pub fn post(&mut self, conversation: &str, activity: &Value) -> Result<String, String> {
        let url = self.activities(conversation);
        let v = self.call("POST", &url, activity)?;
        v.get("id")
            .and_then(Value::as_str)
            .map(String::from)
            .ok_or_else(|| format!("POST {url}: no activity id in the answer"))
    }

    /// `PUT /v3/conversations/{id}/activities/{activityId}`.
    pub fn update(
        &mut self,
        conversation: &str,
        activity_id: &str,
        activity: &Value,
    ) -> Result<(), String> {
        let url = format!("{}/{}", self.activities(conversation), pct(activity_id));
        let mut body = activity.clone();
        body["id"] = Value::String(activity_id.to_string());
        self.call("PUT", &url, &body).map(|_| ())
    }
}
