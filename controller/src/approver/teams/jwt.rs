//! Checking the `Authorization: Bearer` token of a request from the Bot
//! Connector service, exactly as Microsoft documents it for bots
//! ("Authentication with the Bot Connector API", Connector to bot):
//!
//! 1. the token comes in the `Authorization` header with the `Bearer` scheme;
//! 2. it is a well-formed JWT;
//! 3. its issuer is `https://api.botframework.com`;
//! 4. its audience is the bot's Microsoft App ID;
//! 5. it is within its validity period (five minutes of clock skew);
//! 6. it is signed (RS256, one of the metadata's `id_token_signing_alg_values_supported`)
//!    by a key of the OpenID metadata's `jwks_uri` document, and that key is
//!    endorsed for the activity's `channelId`;
//! 7. its `serviceurl` claim equals the activity's `serviceUrl`.
//!
//! The keys are fetched once, kept for a day, and fetched again when a token
//! names a key id they do not hold (key rotation), at most once per
//! `keys_min_refetch_secs`. Signatures are checked with `ring`.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use serde_json::Value;

/// Allowed clock skew, as Microsoft documents it.
pub const SKEW_SECS: i64 = 300;
/// Keys are fetched again after this long even when nothing changed.
const KEYS_MAX_AGE: Duration = Duration::from_secs(24 * 3600);

/// One RSA signing key of the JWKS document.
#[derive(Debug, Clone)]
struct Jwk {
    n: Vec<u8>,
    e: Vec<u8>,
    endorsements: Vec<String>,
}

/// The Bot Framework's signing keys, fetched from its OpenID metadata.
pub struct Keys {
    agent: ureq::Agent,
    metadata_url: String,
    keys: BTreeMap<String, Jwk>,
    algs: Vec<String>,
    fetched: Option<Instant>,
    min_refetch: Duration,
    /// How many times the keys were fetched (reported by `--check`).
    pub fetches: u64,
}

/// What the token must say about this request.
pub struct Expect<'a> {
    /// `https://api.botframework.com`.
    pub issuer: &'a str,
    /// The bot's app id.
    pub audience: &'a str,
    /// The activity's `serviceUrl`.
    pub service_url: &'a str,
    /// The activity's `channelId`.
    pub channel_id: &'a str,
    /// Now, in Unix seconds.
    pub now: i64,
}

/// Why a token was refused (no part of the token is ever in it).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Refused(pub String);

impl std::fmt::Display for Refused {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

fn refused(m: impl Into<String>) -> Refused {
    Refused(m.into())
}

fn b64(part: &str) -> Result<Vec<u8>, Refused> {
    URL_SAFE_NO_PAD
        .decode(part.trim_end_matches('='))
        .map_err(|_| refused("the token is not base64url"))
}

impl Keys {
    /// Keys from the OpenID metadata at `metadata_url` (fetched on first use).
    pub fn new(agent: ureq::Agent, metadata_url: &str, min_refetch: Duration) -> Keys {
        Keys {
            agent,
            metadata_url: metadata_url.to_string(),
            keys: BTreeMap::new(),
            algs: Vec::new(),
            fetched: None,
            min_refetch,
            fetches: 0,
        }
    }

    /// Number of signing keys held.
    pub fn count(&self) -> usize {
        self.keys.len()
    }

    fn get_json(&self, url: &str) -> Result<Value, String> {
        let mut resp = self
            .agent
            .get(url)
            .call()
            .map_err(|e| format!("GET {url}: {e}"))?;
        let status = resp.status().as_u16();
        if status != 200 {
            return Err(format!("GET {url}: HTTP {status}"));
        }
        resp.body_mut()
            .with_config()
            .limit(1024 * 1024)
            .read_json()
            .map_err(|e| format!("GET {url}: {e}"))
    }

    /// Fetches the metadata document, then its `jwks_uri`.
    pub fn fetch(&mut self) -> Result<(), String> {
        self.fetched = Some(Instant::now());
        self.fetches += 1;
        let meta = self.get_json(&self.metadata_url)?;
        let jwks_uri = meta
            .get("jwks_uri")
            .and_then(Value::as_str)
            .ok_or_else(|| format!("{}: no jwks_uri", self.metadata_url))?
            .to_string();
        super::check_url("jwks_uri", &jwks_uri)?;
        let algs: Vec<String> = meta
            .get("id_token_signing_alg_values_supported")
            .and_then(Value::as_array)
            .map(|a| {
                a.iter()
                    .filter_map(Value::as_str)
                    .map(String::from)
                    .collect()
            })
            .unwrap_or_default();
        let doc = self.get_json(&jwks_uri)?;
        let mut keys = BTreeMap::new();
        for k in doc
            .get("keys")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
        {
            let s = |f: &str| k.get(f).and_then(Value::as_str);
            let (Some("RSA"), Some(kid), Some(n), Some(e)) = (s("kty"), s("kid"), s("n"), s("e"))
            else {
                continue;
            };
            if s("use").is_some_and(|u| u != "sig") {
                continue;
            }
            let (Ok(n), Ok(e)) = (b64(n), b64(e)) else {
                continue;
            };
            let endorsements = k
                .get("endorsements")
                .and_then(Value::as_array)
                .map(|a| {
                    a.iter()
                        .filter_map(Value::as_str)
                        .map(String::from)
                        .collect()
                })
                .unwrap_or_default();
            keys.insert(kid.to_string(), Jwk { n, e, endorsements });
        }
        if keys.is_empty() {
            return Err(format!("{jwks_uri}: no RSA signing keys"));
        }
        self.keys = keys;
        self.algs = algs;
        Ok(())
    }

    /// The key `kid`, fetching the keys again when they are stale or do not hold it.
    fn key(&mut self, kid: &str) -> Result<Jwk, Refused> {
        let stale = self.fetched.is_none_or(|t| t.elapsed() > KEYS_MAX_AGE);
        let may_refetch = self.fetched.is_none_or(|t| t.elapsed() >= self.min_refetch);
        if (stale || (!self.keys.contains_key(kid) && may_refetch))
            && let Err(e) = self.fetch()
        {
            super::log(&format!("signing keys: {e}"));
        }
        self.keys.get(kid).cloned().ok_or_else(|| {
            refused("the token is signed by a key that is not in the Bot Framework's signing keys")
        })
    }

    /// Checks `authorization` (the header's value) for a request about `expect`; returns the claims.
    pub fn verify(
        &mut self,
        authorization: Option<&str>,
        expect: &Expect,
    ) -> Result<Value, Refused> {
        let header = authorization.ok_or_else(|| refused("no Authorization header"))?;
        let token = match header.split_once(' ') {
            Some((scheme, t)) if scheme.eq_ignore_ascii_case("bearer") => t.trim(),
            _ => return Err(refused("the Authorization header is not a Bearer token")),
        };
        let parts: Vec<&str> = token.split('.').collect();
        let [h, p, s] = parts.as_slice() else {
            return Err(refused("the token is not a JWT"));
        };
        let head: Value = serde_json::from_slice(&b64(h)?)
            .map_err(|_| refused("the token's header is not JSON"))?;
        let payload_bytes = b64(p)?;
        let signature = b64(s)?;
        if head.get("alg").and_then(Value::as_str) != Some("RS256") {
            return Err(refused("the token is not signed with RS256"));
        }
        let kid = head
            .get("kid")
            .and_then(Value::as_str)
            .ok_or_else(|| refused("the token names no signing key (kid)"))?;
        let key = self.key(kid)?;
        if !self.algs.iter().any(|a| a == "RS256") {
            return Err(refused("the OpenID metadata does not list RS256"));
        }
        let signed = &token.as_bytes()[..h.len() + 1 + p.len()];
        ring::signature::RsaPublicKeyComponents {
            n: &key.n,
            e: &key.e,
        }
        .verify(
            &ring::signature::RSA_PKCS1_2048_8192_SHA256,
            signed,
            &signature,
        )
        .map_err(|_| refused("the token's signature does not verify"))?;
        let claims: Value = serde_json::from_slice(&payload_bytes)
            .map_err(|_| refused("the token's claims are not JSON"))?;
        if claims.get("iss").and_then(Value::as_str) != Some(expect.issuer) {
            return Err(refused(format!(
                "the token's issuer is not {}",
                expect.issuer
            )));
        }
        let aud_ok = match claims.get("aud") {
            Some(Value::String(a)) => a == expect.audience,
            Some(Value::Array(a)) => a.iter().any(|x| x.as_str() == Some(expect.audience)),
            _ => false,
        };
        if !aud_ok {
            return Err(refused("the token's audience is not this bot's app id"));
        }
        let exp = claims
            .get("exp")
            .and_then(Value::as_i64)
            .ok_or_else(|| refused("the token has no expiry"))?;
        if expect.now > exp + SKEW_SECS {
            return Err(refused("the token has expired"));
        }
        if let Some(nbf) = claims.get("nbf").and_then(Value::as_i64)
            && expect.now + SKEW_SECS < nbf
        {
            return Err(refused("the token is not valid yet"));
        }
        let mut service_urls = ["serviceurl", "serviceUrl"]
            .iter()
            .filter_map(|k| claims.get(*k))
            .peekable();
        if service_urls.peek().is_none()
            || !service_urls.all(|v| v.as_str() == Some(expect.service_url))
        {
            return Err(refused(
                "the token's serviceurl claim does not match the activity's serviceUrl",
            ));
        }
        if !key.endorsements.iter().any(|e| e == expect.channel_id) {
            return Err(refused(format!(
                "the signing key is not endorsed for channel {:?}",
                expect.channel_id
            )));
        }
        Ok(claims)
    }
}
