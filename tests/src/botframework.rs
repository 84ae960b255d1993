//! A loopback Bot Framework for the Teams approver's tests. It speaks the real
//! wire protocol: the OpenID metadata document and its JWKS (RSA keys made
//! with `openssl genpkey`, carrying `endorsements` as Microsoft's do), the
//! Entra token endpoint's client-credentials flow, and the Bot Connector's
//! `POST/PUT /v3/conversations/{id}/activities[/{activityId}]`, which it
//! records. It signs Connector-to-bot tokens (RS256 JWTs) as the Bot
//! Framework does, and sends invoke activities to the bot over HTTP or HTTPS.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::Path;
use std::process::Command;
use std::sync::{Arc, Condvar, Mutex};
use std::time::{Duration, Instant};

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use serde_json::{Value, json};

/// The bot's app id (the audience of the tokens).
pub const APP_ID: &str = "6f1c2a3b-4d5e-4f60-8a7b-9c0d1e2f3a4b";
/// The app secret the token endpoint accepts.
pub const SECRET: &str = "Qx8~kT3.vZp_SECRET-9fLw2mRb7yHn0cJ4dSg6";
/// The approvers' channel.
pub const CONVERSATION: &str = "19:a1b2c3d4e5f60718293a4b5c6d7e8f90@thread.tacv2";
/// The bot's own id in Teams.
pub const BOT_ID: &str = "28:6f1c2a3b-4d5e-4f60-8a7b-9c0d1e2f3a4b";
/// The tenant.
pub const TENANT: &str = "72f988bf-86f1-41af-91ab-2d7cd011db47";
/// The Bot Framework's issuer.
pub const ISSUER: &str = "https://api.botframework.com";

/// An RSA signing key (from `openssl genpkey`).
pub struct RsaKey {
    /// Key id in the JWKS.
    pub kid: String,
    pair: ring::signature::RsaKeyPair,
}

impl RsaKey {
    /// Generates a 2048-bit key with openssl in `dir`.
    pub fn generate(dir: &Path, kid: &str) -> RsaKey {
        let path = dir.join(format!("{kid}.der"));
        let out = Command::new("openssl")
            .args([
                "genpkey",
                "-algorithm",
                "RSA",
                "-pkeyopt",
                "rsa_keygen_bits:2048",
                "-outform",
                "DER",
                "-out",
            ])
            .arg(&path)
            .output()
            .expect("openssl runs (Debian package openssl)");
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        let der = std::fs::read(&path).unwrap();
        RsaKey {
            kid: kid.to_string(),
            // OpenSSL 3 writes an RSA key in DER as PKCS#1 (RSAPrivateKey).
            pair: ring::signature::RsaKeyPair::from_der(&der).expect("a PKCS#1 RSA key"),
        }
    }

    /// The key as a JWKS entry, endorsed for `endorsements`.
    pub fn jwk(&self, endorsements: &[&str]) -> Value {
        let c: ring::rsa::PublicKeyComponents<Vec<u8>> = self.pair.public().into();
        json!({"kty": "RSA", "use": "sig", "kid": self.kid, "x5t": self.kid,
               "n": URL_SAFE_NO_PAD.encode(&c.n), "e": URL_SAFE_NO_PAD.encode(&c.e),
               "endorsements": endorsements})
    }

    /// A JWT with `claims`, signed RS256 by this key.
    pub fn sign(&self, claims: &Value) -> String {
        let head = json!({"alg": "RS256", "kid": self.kid, "x5t": self.kid, "typ": "JWT"});
        let msg = format!(
            "{}.{}",
            URL_SAFE_NO_PAD.encode(head.to_string()),
            URL_SAFE_NO_PAD.encode(claims.to_string())
        );
        let mut sig = vec![0; self.pair.public().modulus_len()];
        self.pair
            .sign(
                &ring::signature::RSA_PKCS1_SHA256,
                &ring::rand::SystemRandom::new(),
                msg.as_bytes(),
                &mut sig,
            )
            .unwrap();
        format!("{msg}.{}", URL_SAFE_NO_PAD.encode(sig))
    }
}

/// Unix seconds.
pub fn now() -> i64 {
    aiops_sys::now_ms() / 1000
}

/// One call the bot made to the Connector.
#[derive(Debug, Clone)]
pub struct Call {
    /// `POST` or `PUT`.
    pub method: String,
    /// Conversation id (decoded).
    pub conversation: String,
    /// The activity id of a PUT, the new id of a POST.
    pub activity_id: String,
    /// The activity sent.
    pub body: Value,
}

/// What the fake saw and serves.
#[derive(Default)]
pub struct Shared {
    /// Connector calls, in order.
    pub calls: Vec<Call>,
    /// JWKS entries served.
    pub jwks: Vec<Value>,
    /// Times the JWKS was fetched.
    pub jwks_fetches: usize,
    /// Bearer tokens issued by the token endpoint.
    pub issued: Vec<String>,
    /// Token requests with a wrong secret or form.
    pub bad_token_requests: usize,
    /// Connector calls without a valid bearer token.
    pub unauthorized_calls: usize,
    /// Every request body the fake received (to look for the secret where it must not be).
    pub bodies: Vec<String>,
    next_activity: u64,
}

/// The fake Bot Framework on 127.0.0.1.
pub struct FakeBotFramework {
    /// Its port.
    pub port: u16,
    /// State shared with its threads.
    pub shared: Arc<(Mutex<Shared>, Condvar)>,
}

fn pct_decode(s: &str) -> String {
    let b = s.as_bytes();
    let mut out = Vec::new();
    let mut i = 0;
    while i < b.len() {
        match b[i] {
            b'%' if i + 2 < b.len() => {
                let h = std::str::from_utf8(&b[i + 1..i + 3]).unwrap();
                out.push(u8::from_str_radix(h, 16).unwrap());
                i += 3;
            }
            b'+' => {
                out.push(b' ');
                i += 1;
            }
            c => {
                out.push(c);
                i += 1;
            }
        }
    }
    String::from_utf8(out).unwrap()
}

impl FakeBotFramework {
    /// Starts the fake.
    pub fn start() -> FakeBotFramework {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        let shared = Arc::new((
            Mutex::new(Shared {
                next_activity: 1_733_000_000_000,
                ..Shared::default()
            }),
            Condvar::new(),
        ));
        let s = Arc::clone(&shared);
        std::thread::spawn(move || {
            for stream in listener.incoming().flatten() {
                let s = Arc::clone(&s);
                std::thread::spawn(move || serve(stream, port, &s));
            }
        });
        FakeBotFramework { port, shared }
    }

    /// The OpenID metadata URL.
    pub fn openid(&self) -> String {
        format!(
            "http://127.0.0.1:{}/v1/.well-known/openidconfiguration",
            self.port
        )
    }

    /// The token endpoint.
    pub fn token_endpoint(&self) -> String {
        format!(
            "http://127.0.0.1:{}/botframework.com/oauth2/v2.0/token",
            self.port
        )
    }

    /// The Connector's service URL (with the trailing slash Teams sends).
    pub fn service_url(&self) -> String {
        format!("http://127.0.0.1:{}/teams/", self.port)
    }

    /// Serves `jwk` in the JWKS from now on.
    pub fn add_key(&self, jwk: Value) {
        self.shared.0.lock().unwrap().jwks.push(jwk);
    }

    /// The Connector calls so far.
    pub fn calls(&self) -> Vec<Call> {
        self.shared.0.lock().unwrap().calls.clone()
    }

    /// Waits until the bot made a Connector call matching `pred`.
    pub fn wait_for(&self, what: &str, pred: impl Fn(&Call) -> bool) -> Call {
        let deadline = Instant::now() + Duration::from_secs(60);
        let (m, cv) = &*self.shared;
        let mut g = m.lock().unwrap();
        loop {
            if let Some(c) = g.calls.iter().find(|c| pred(c)) {
                return c.clone();
            }
            let left = deadline.saturating_duration_since(Instant::now());
            assert!(
                !left.is_zero(),
                "timed out waiting for {what}; calls: {:?}",
                g.calls
            );
            g = cv.wait_timeout(g, left).unwrap().0;
        }
    }

    /// Claims of a Connector-to-bot token as the Bot Framework issues them.
    pub fn claims(&self) -> Value {
        let t = now();
        json!({"serviceurl": self.service_url(), "nbf": t - 5, "exp": t + 3600,
               "iss": ISSUER, "aud": APP_ID})
    }
}

/// The card posted or put in a Connector call.
pub fn card_of(call: &Call) -> &Value {
    &call.body["attachments"][0]["content"]
}

/// Method, path, headers (lower-case names) and body of a request.
type HttpRequest = (String, String, Vec<(String, String)>, Vec<u8>);

fn read_request(stream: &TcpStream) -> Option<HttpRequest> {
    let mut reader = BufReader::new(stream);
    let mut line = String::new();
    reader.read_line(&mut line).ok()?;
    let mut parts = line.split_whitespace();
    let method = parts.next()?.to_string();
    let path = parts.next()?.to_string();
    let mut headers = Vec::new();
    let mut len = 0usize;
    loop {
        let mut h = String::new();
        if reader.read_line(&mut h).unwrap_or(0) == 0 || h == "\r\n" {
            break;
        }
        if let Some((k, v)) = h.split_once(':') {
            if k.eq_ignore_ascii_case("content-length") {
                len = v.trim().parse().ok()?;
            }
            headers.push((k.trim().to_ascii_lowercase(), v.trim().to_string()));
        }
    }
    let mut body = vec![0; len];
    reader.read_exact(&mut body).ok()?;
    Some((method, path, headers, body))
}

fn respond(mut stream: &TcpStream, status: &str, v: &Value) {
    let body = v.to_string();
    let _ = write!(
        stream,
        "HTTP/1.1 {status}\r\nContent-Type: application/json; charset=utf-8\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    );
}

fn serve(stream: TcpStream, port: u16, shared: &(Mutex<Shared>, Condvar)) {
    let Some((method, path, headers, body)) = read_request(&stream) else {
        return;
    };
    let (m, cv) = shared;
    let mut g = m.lock().unwrap();
    g.bodies.push(String::from_utf8_lossy(&body).into_owned());
    let bearer = headers
        .iter()
        .find(|(k, _)| k == "authorization")
        .and_then(|(_, v)| v.strip_prefix("Bearer "))
        .map(String::from);
    match (method.as_str(), path.as_str()) {
        ("GET", "/v1/.well-known/openidconfiguration") => respond(
            &stream,
            "200 OK",
            &json!({
                "issuer": ISSUER,
                "authorization_endpoint": "https://invalid.botframework.com",
                "jwks_uri": format!("http://127.0.0.1:{port}/v1/.well-known/keys"),
                "id_token_signing_alg_values_supported": ["RS256"],
                "token_endpoint_auth_methods_supported": ["private_key_jwt"],
            }),
        ),
        ("GET", "/v1/.well-known/keys") => {
            g.jwks_fetches += 1;
            respond(&stream, "200 OK", &json!({"keys": g.jwks}));
        }
        ("POST", "/botframework.com/oauth2/v2.0/token") => {
            let form: Vec<(String, String)> = String::from_utf8_lossy(&body)
                .split('&')
                .filter_map(|kv| kv.split_once('='))
                .map(|(k, v)| (pct_decode(k), pct_decode(v)))
                .collect();
            let get = |k: &str| form.iter().find(|(kk, _)| kk == k).map(|(_, v)| v.as_str());
            let ok = get("grant_type") == Some("client_credentials")
                && get("client_id") == Some(APP_ID)
                && get("client_secret") == Some(SECRET)
                && get("scope") == Some("https://api.botframework.com/.default");
            if ok {
                let token = format!(
                    "eyJ0eXAiOiJKV1QiLCJhbGciOiJSUzI1NiJ9.bot-token-{}",
                    g.issued.len() + 1
                );
                g.issued.push(token.clone());
                respond(
                    &stream,
                    "200 OK",
                    &json!({"token_type": "Bearer", "expires_in": 3599, "ext_expires_in": 3599, "access_token": token}),
                );
            } else {
                g.bad_token_requests += 1;
                respond(
                    &stream,
                    "401 Unauthorized",
                    &json!({"error": "invalid_client",
                            "error_description": "AADSTS7000215: Invalid client secret provided. Ensure the secret being sent in the request is the client secret value, not the client secret ID.\r\nTrace ID: 0000",
                            "error_codes": [7000215]}),
                );
            }
        }
        (verb @ ("POST" | "PUT"), p) if p.starts_with("/teams/v3/conversations/") => {
            if !bearer.as_ref().is_some_and(|b| g.issued.contains(b)) {
                g.unauthorized_calls += 1;
                respond(
                    &stream,
                    "401 Unauthorized",
                    &json!({"message": "Authorization has been denied for this request."}),
                );
                return;
            }
            let rest = p.trim_start_matches("/teams/v3/conversations/");
            let mut seg = rest.split('/');
            let conversation = pct_decode(seg.next().unwrap_or(""));
            let _ = seg.next(); // "activities"
            let body: Value = serde_json::from_slice(&body).unwrap_or(Value::Null);
            let activity_id = if verb == "POST" {
                g.next_activity += 1;
                g.next_activity.to_string()
            } else {
                pct_decode(seg.next().unwrap_or(""))
            };
            g.calls.push(Call {
                method: verb.to_string(),
                conversation,
                activity_id: activity_id.clone(),
                body,
            });
            cv.notify_all();
            let status = if verb == "POST" {
                "201 Created"
            } else {
                "200 OK"
            };
            respond(&stream, status, &json!({"id": activity_id}));
        }
        _ => respond(&stream, "404 Not Found", &json!({"message": "not found"})),
    }
}

/// An `adaptiveCard/action` invoke as Teams sends it when a user presses a button.
pub fn invoke(
    service_url: &str,
    activity_id: &str,
    aad: &str,
    conversation: &str,
    reply_to: &str,
    verb: &str,
    approval_id: &str,
) -> Value {
    json!({
        "name": "adaptiveCard/action",
        "type": "invoke",
        "timestamp": "2026-12-01T20:40:00.000Z",
        "localTimestamp": "2026-12-01T21:40:00.000+01:00",
        "id": activity_id,
        "channelId": "msteams",
        "serviceUrl": service_url,
        "from": {"id": format!("29:1{aad}"), "name": "An Approver", "aadObjectId": aad},
        "conversation": {"isGroup": true, "conversationType": "channel", "tenantId": TENANT,
                         "id": format!("{conversation};messageid={reply_to}")},
        "recipient": {"id": BOT_ID, "name": "aiops approver"},
        "entities": [{"locale": "en-US", "country": "US", "platform": "Web", "timezone": "Europe/Berlin", "type": "clientInfo"}],
        "channelData": {"tenant": {"id": TENANT}, "source": {"name": "message"},
                        "legacy": {"replyToId": "1:1abc"}},
        "replyToId": reply_to,
        "value": {"action": {"type": "Action.Execute", "title": verb, "verb": verb,
                             "data": {"approval_id": approval_id}},
                  "trigger": "manual"},
        "locale": "en-US",
    })
}

/// How the bot is reached.
pub enum Endpoint {
    /// Plain HTTP (behind a reverse proxy).
    Http(u16),
    /// HTTPS, trusting `cert` (DER).
    Https(u16, Vec<u8>),
}

fn exchange<S: Read + Write>(mut s: S, auth: Option<&str>, body: &[u8]) -> (u16, Value) {
    let mut req = format!(
        "POST /api/messages HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json; charset=utf-8\r\nContent-Length: {}\r\nConnection: close\r\n",
        body.len()
    );
    if let Some(a) = auth {
        req.push_str(&format!("Authorization: {a}\r\n"));
    }
    req.push_str("\r\n");
    s.write_all(req.as_bytes()).unwrap();
    s.write_all(body).unwrap();
    s.flush().unwrap();
    let mut out = Vec::new();
    let _ = s.read_to_end(&mut out);
    let text = String::from_utf8_lossy(&out).into_owned();
    let status: u16 = text
        .split_whitespace()
        .nth(1)
        .and_then(|c| c.parse().ok())
        .unwrap_or_else(|| panic!("no HTTP answer: {text:?}"));
    let body = text.split_once("\r\n\r\n").map_or("", |(_, b)| b);
    (status, serde_json::from_str(body).unwrap_or(Value::Null))
}

impl Endpoint {
    /// Sends `activity` with `Authorization: <auth>`; returns the HTTP status and the JSON answer.
    pub fn send_raw(&self, auth: Option<&str>, body: &[u8]) -> (u16, Value) {
        match self {
            Endpoint::Http(port) => {
                let s = TcpStream::connect(("127.0.0.1", *port)).unwrap();
                exchange(s, auth, body)
            }
            Endpoint::Https(port, cert) => {
                let mut roots = rustls::RootCertStore::empty();
                roots
                    .add(rustls::pki_types::CertificateDer::from(cert.clone()))
                    .unwrap();
                let config = rustls::ClientConfig::builder_with_provider(Arc::new(
                    rustls::crypto::ring::default_provider(),
                ))
                .with_safe_default_protocol_versions()
                .unwrap()
                .with_root_certificates(roots)
                .with_no_client_auth();
                let name = rustls::pki_types::ServerName::try_from("127.0.0.1").unwrap();
                let conn = rustls::ClientConnection::new(Arc::new(config), name).unwrap();
                let s = TcpStream::connect(("127.0.0.1", *port)).unwrap();
                exchange(rustls::StreamOwned::new(conn, s), auth, body)
            }
        }
    }

    /// Sends `activity` with a bearer `token`.
    pub fn send(&self, token: &str, activity: &Value) -> (u16, Value) {
        self.send_raw(
            Some(&format!("Bearer {token}")),
            activity.to_string().as_bytes(),
        )
    }

    /// Waits until the endpoint accepts connections.
    pub fn wait_up(&self) {
        let port = match self {
            Endpoint::Http(p) | Endpoint::Https(p, _) => *p,
        };
        let deadline = Instant::now() + Duration::from_secs(60);
        while TcpStream::connect(("127.0.0.1", port)).is_err() {
            assert!(
                Instant::now() < deadline,
                "the bot never listened on {port}"
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

/// A self-signed certificate for 127.0.0.1 made with openssl: (cert.pem, key.pem, cert DER).
pub fn self_signed(dir: &Path) -> (std::path::PathBuf, std::path::PathBuf, Vec<u8>) {
    let cert = dir.join("teams-endpoint.pem");
    let key = dir.join("teams-endpoint.key");
    // An end-entity certificate (rustls refuses a CA certificate as a server's).
    let conf = dir.join("teams-endpoint.cnf");
    std::fs::write(
        &conf,
        "[req]\ndistinguished_name = dn\nx509_extensions = leaf\nprompt = no\n[dn]\nCN = 127.0.0.1\n\
         [leaf]\nbasicConstraints = critical,CA:FALSE\nsubjectAltName = IP:127.0.0.1\n\
         keyUsage = critical,digitalSignature,keyEncipherment\nextendedKeyUsage = serverAuth\n",
    )
    .unwrap();
    let out = Command::new("openssl")
        .args([
            "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2", "-config",
        ])
        .arg(&conf)
        .arg("-keyout")
        .arg(&key)
        .arg("-out")
        .arg(&cert)
        .output()
        .expect("openssl runs");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let der = dir.join("teams-endpoint.der");
    let out = Command::new("openssl")
        .args(["x509", "-outform", "DER", "-in"])
        .arg(&cert)
        .arg("-out")
        .arg(&der)
        .output()
        .unwrap();
    assert!(out.status.success());
    (cert, key, std::fs::read(der).unwrap())
}
