//! Redaction of secrets before output reaches the assistant or the audit
//! log. The audit keeps the SHA-256 and size of the full text, so the
//! original can be matched later without being stored.
//!
//! It matches secrets, not English: a value is replaced only when its key
//! names a secret (`DB_PASSWORD=`, `"client_secret":`, `X-Api-Key:`) *and*
//! the value looks like one (not a word, a number or a path), or when the
//! text has a shape only secrets have (private-key bodies, vendor token
//! prefixes, password hashes, passwords in URLs). `cat: app-secret.txt: No
//! such file` and `Installed: 0.20.5-3` come through unchanged.

use std::sync::OnceLock;

use regex::bytes::{Captures, Regex};

/// What replaces a secret.
pub const MARK: &str = "[REDACTED]";

/// `text` with every secret replaced.
pub fn redact(text: &str) -> String {
    redact_with(text, true)
}

/// `guarded`: skip a rule whose required text is absent (and never compile
/// it). Compiling every pattern costs about 4 ms per process, which was most
/// of what the round trip of a `hostname` paid for redaction; the guards are
/// necessary conditions of the patterns (checked by a test), so the result
/// is the same.
fn redact_with(text: &str, guarded: bool) -> String {
    let mut out = pem_bodies(text);
    let mut lower = out.to_ascii_lowercase();
    for rule in rules() {
        if guarded && !rule.may_match(&lower) {
            continue;
        }
        let re = rule.regex();
        if !re.is_match(out.as_bytes()) {
            continue;
        }
        let bytes = re
            .replace_all(out.as_bytes(), |c: &Captures| (rule.keep)(c))
            .into_owned();
        // Every rule matches ASCII only and replaces whole matches or ASCII
        // groups, so the text stays valid UTF-8; lossy rather than a panic.
        out = String::from_utf8(bytes)
            .unwrap_or_else(|e| String::from_utf8_lossy(e.as_bytes()).into_owned());
        lower = out.to_ascii_lowercase();
    }
    out
}

/// A rule: a pattern, text a match must contain, and what a match becomes.
struct Rule {
    pattern: &'static str,
    /// A match contains at least one of these (ASCII, compared lower-cased).
    needs: &'static [&'static str],
    keep: fn(&Captures) -> Vec<u8>,
    compiled: OnceLock<Regex>,
}

impl Rule {
    fn may_match(&self, lower: &str) -> bool {
        self.needs.iter().any(|n| lower.contains(n))
    }

    fn regex(&self) -> &Regex {
        self.compiled.get_or_init(|| {
            Regex::new(&format!("(?-u){}", self.pattern)).expect("redaction pattern compiles")
        })
    }
}

fn group(c: &Captures, i: usize) -> Vec<u8> {
    c.get(i).map(|m| m.as_bytes().to_vec()).unwrap_or_default()
}

/// Groups 1.. kept, the last group replaced.
fn mark_last(c: &Captures) -> Vec<u8> {
    let n = c.len() - 1;
    let mut v = Vec::new();
    for i in 1..n {
        v.extend(group(c, i));
    }
    v.extend(MARK.as_bytes());
    v
}

fn mark_all(_: &Captures) -> Vec<u8> {
    MARK.as_bytes().to_vec()
}

/// `KEY SEP VALUE`: replaced when the key names a secret and the value
/// looks like one.
fn key_value(c: &Captures) -> Vec<u8> {
    let key = String::from_utf8_lossy(&group(c, 2)).into_owned();
    let value = group(c, 4);
    let whole = c.get(0).map(|m| m.as_bytes().to_vec()).unwrap_or_default();
    if !secret_key(&key) || !secret_value(&value) {
        return whole;
    }
    let mut v = group(c, 1);
    v.extend(group(c, 2));
    v.extend(group(c, 3));
    // Keep the quotes so JSON and YAML stay well-formed.
    match value.first() {
        Some(q @ (b'"' | b'\'')) => {
            v.push(*q);
            v.extend(MARK.as_bytes());
            v.push(*q);
        }
        _ => v.extend(MARK.as_bytes()),
    }
    v
}

/// Splits a key into lower-case words at `_ - . :` and camelCase humps.
fn words(key: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut cur = String::new();
    let mut prev_lower = false;
    for ch in key.chars() {
        if !ch.is_ascii_alphanumeric() {
            if !cur.is_empty() {
                out.push(std::mem::take(&mut cur));
            }
            prev_lower = false;
            continue;
        }
        if ch.is_ascii_uppercase() && prev_lower && !cur.is_empty() {
            out.push(std::mem::take(&mut cur));
        }
        prev_lower = ch.is_ascii_lowercase() || ch.is_ascii_digit();
        cur.push(ch.to_ascii_lowercase());
    }
    if !cur.is_empty() {
        out.push(cur);
    }
    out
}

/// A key that names a secret: a password, token, secret, API or private
/// key, pre-shared key ...
fn secret_key(key: &str) -> bool {
    let w = words(key);
    const EXACT: &[&str] = &[
        "secret",
        "pass",
        "pwd",
        "passphrase",
        "psk",
        "auth",
        "authtok",
        "bindpw",
        "rootpw",
        "apikey",
        "sessionid",
        "credential",
        "credentials",
        "privatekey",
        "secretkey",
        "accesskey",
        "accountkey",
        "presharedkey",
        "clientsecret",
        "sas",
        "dsn",
    ];
    const BEFORE_KEY: &[&str] = &[
        "api",
        "access",
        "private",
        "secret",
        "account",
        "auth",
        "signing",
        "encryption",
        "master",
        "preshared",
        "shared",
        "client",
        "license",
        "service",
        "app",
        "admin",
        "session",
        "storage",
        "webhook",
    ];
    w.iter().enumerate().any(|(i, x)| {
        EXACT.contains(&x.as_str())
            || x.ends_with("password")
            || x.ends_with("passwd")
            || x.ends_with("token")
            || (x == "key" && i > 0 && BEFORE_KEY.contains(&w[i - 1].as_str()))
    }) && !(w.len() == 1 && w[0] == "pwd")
}

/// A value that looks like a secret rather than a word, a number, a path or
/// a placeholder.
fn secret_value(v: &[u8]) -> bool {
    let v = match v {
        [q @ (b'"' | b'\''), inner @ .., last] if last == q => inner,
        v => v,
    };
    let s = String::from_utf8_lossy(v);
    let s = s.trim();
    if s.len() < 4
        || s.starts_with('/')
        || s.starts_with('$')
        || s.starts_with('%')
        || s.starts_with('<')
        || s.starts_with("{{")
        || s.contains(MARK)
        || s.contains("://")
        || s.chars().all(|c| c.is_ascii_digit())
    {
        return false;
    }
    let lower = s.to_ascii_lowercase();
    if matches!(
        lower.as_str(),
        "true"
            | "false"
            | "yes"
            | "no"
            | "none"
            | "null"
            | "nil"
            | "required"
            | "optional"
            | "enabled"
            | "disabled"
            | "bearer"
            | "basic"
    ) {
        return false;
    }
    let digits = s.chars().any(|c| c.is_ascii_digit());
    let upper = s.chars().filter(|c| c.is_ascii_uppercase()).count();
    let lowers = s.chars().filter(|c| c.is_ascii_lowercase()).count();
    let symbols = s.chars().any(|c| "+/=_!@#%^&*~?".contains(c));
    digits || (upper >= 2 && lowers >= 1) || (symbols && s.len() >= 8)
}

/// Base64 text that decodes to a PEM private key (`LS0tLS1CRUdJTi...`, as in
/// kubeconfigs and Kubernetes secrets); certificates stay.
fn encoded_pem(c: &Captures) -> Vec<u8> {
    let whole = c.get(0).map(|m| m.as_bytes().to_vec()).unwrap_or_default();
    let head: Vec<u8> = whole.iter().copied().take(96).collect();
    let decoded = decode_base64(&head);
    if String::from_utf8_lossy(&decoded).contains("PRIVATE KEY") {
        MARK.as_bytes().to_vec()
    } else {
        whole
    }
}

fn decode_base64(s: &[u8]) -> Vec<u8> {
    let val = |c: u8| -> Option<u32> {
        Some(match c {
            b'A'..=b'Z' => u32::from(c - b'A'),
            b'a'..=b'z' => u32::from(c - b'a') + 26,
            b'0'..=b'9' => u32::from(c - b'0') + 52,
            b'+' | b'-' => 62,
            b'/' | b'_' => 63,
            _ => return None,
        })
    };
    let mut out = Vec::new();
    let mut acc = 0u32;
    let mut bits = 0;
    for &c in s {
        let Some(v) = val(c) else { break };
        acc = (acc << 6) | v;
        bits += 6;
        if bits >= 8 {
            bits -= 8;
            out.push((acc >> bits) as u8);
            acc &= (1 << bits) - 1;
        }
    }
    out
}

fn rules() -> &'static [Rule] {
    static RULES: OnceLock<Vec<Rule>> = OnceLock::new();
    RULES.get_or_init(|| {
        fn rule(
            pattern: &'static str,
            needs: &'static [&'static str],
            keep: fn(&Captures) -> Vec<u8>,
        ) -> Rule {
            Rule {
                pattern,
                needs,
                keep,
                compiled: OnceLock::new(),
            }
        }
        vec![
            // Authorization headers (Basic, Bearer, token ...), also Proxy-.
            rule(r"(?i)(\bauthorization[ \t]*[:=][ \t]*(?:bearer|basic|token|digest|negotiate|aws4-hmac-sha256)?[ \t]*)([^\s'\x22]+)", &["authorization"],
                mark_last,
            ),
            rule(r"(?i)(\bbearer[ \t]+)([A-Za-z0-9._~+/=-]{12,})", &["bearer"], |c| {
                if secret_value(&group(c, 2)) {
                    mark_last(c)
                } else {
                    group(c, 0)
                }
            }),
            // Cookies: every value.
            rule(r"(?i)(\b(?:set-)?cookie:[ \t]*)([^\r\n]+)", &["cookie:"],
                |c| {
                    let mut v = group(c, 1);
                    let body = String::from_utf8_lossy(&group(c, 2)).into_owned();
                    let parts: Vec<String> = body
                        .split(';')
                        .map(|kv| match kv.split_once('=') {
                            Some((k, _)) => format!("{k}={MARK}"),
                            None => kv.to_string(),
                        })
                        .collect();
                    v.extend(parts.join(";").as_bytes());
                    v
                },
            ),
            // Passwords in URLs: scheme://user:PASSWORD@host.
            rule(r"([A-Za-z][A-Za-z0-9+.-]*://[^\s:/@'\x22]*:)([^\s@/'\x22]+)(@)", &["://"],
                |c| {
                    let mut v = group(c, 1);
                    v.extend(MARK.as_bytes());
                    v.extend(group(c, 3));
                    v
                },
            ),
            // Slack webhooks: the last path segment is the secret.
            rule(r"(hooks\.slack\.com/services/[A-Za-z0-9]+/[A-Za-z0-9]+/)([A-Za-z0-9]+)", &["hooks.slack.com/services/"],
                mark_last,
            ),
            // Vendor token shapes.
            rule(r"\b(?:gh[pousr]_[A-Za-z0-9]{30,}|github_pat_[A-Za-z0-9_]{40,}|glpat-[A-Za-z0-9_-]{16,}|glrt-[A-Za-z0-9_-]{16,}|gl(?:dt|ptt|cbt|soat|ffct)-[A-Za-z0-9_-]{16,}|xox[abposr]-[A-Za-z0-9-]{10,}|xapp-[A-Za-z0-9-]{10,}|sk-(?:proj|svcacct|admin)-[A-Za-z0-9_-]{20,}|sk-[A-Za-z0-9]{32,}|sk-ant-[A-Za-z0-9_-]{20,}|[sr]k_(?:live|test)_[A-Za-z0-9]{16,}|SG\.[A-Za-z0-9_-]{16,}\.[A-Za-z0-9_-]{16,}|AIza[A-Za-z0-9_-]{30,}|hv[sbr]\.[A-Za-z0-9_-]{20,}|npm_[A-Za-z0-9]{30,}|pypi-[A-Za-z0-9_-]{40,}|dop_v1_[a-f0-9]{40,}|(?:AKIA|ASIA|AROA|AIDA)[0-9A-Z]{16})\b", &["_", "-", ".", "aiza", "akia", "asia", "aroa", "aida"],
                mark_all,
            ),
            // JSON Web Tokens and other base64 JSON blobs.
            rule(r"\beyJ[A-Za-z0-9_-]{8,}\.eyJ[A-Za-z0-9_-]{8,}\.[A-Za-z0-9_-]*", &["eyj"],
                mark_all,
            ),
            rule(r"\beyJ[A-Za-z0-9+/]{30,}={0,2}", &["eyj"], mark_all),
            // Base64 of a PEM private key.
            rule(r"LS0tLS1CRUdJTi[A-Za-z0-9+/=]+", &["ls0tls1crudjti"], encoded_pem),
            // Telegram bot tokens and similar id:secret shapes.
            rule(r"\b([0-9]{6,12}:)([A-Za-z0-9_-]{30,})\b", &[":"], mark_last),
            // crypt(3) password hashes ($6$, $y$, $2y$, $apr1$ ...).
            rule(r"\$(?:1|2[abxy]?|5|6|7|y|gy|apr1|sha1|md5|argon2(?:id|i|d)?)\$[A-Za-z0-9./$=,+-]{8,}", &["$"],
                mark_all,
            ),
            // PHP define('DB_PASSWORD', 'value').
            rule(r"(?i)(define\(\s*'[A-Za-z0-9_]*(?:PASSWORD|PASS|SECRET|TOKEN|KEY|SALT)[A-Za-z0-9_]*'\s*,\s*')([^'\n]+)(')", &["define("],
                |c| {
                    let mut v = group(c, 1);
                    v.extend(MARK.as_bytes());
                    v.extend(group(c, 3));
                    v
                },
            ),
            // Space-separated secrets in well-known configs: netrc, LDAP bind,
            // SNMP communities, IPsec PSKs.
            rule(r"(?im)(\bmachine\s+\S+.*?\bpassword[ \t]+)(\S+)", &["machine"],
                mark_last,
            ),
            rule(r"(?im)(^[ \t]*(?:bindpw|rootpw|ro(?:community|user)|rw(?:community|user)|community)[ \t]+)(\S+)", &["bindpw", "rootpw", "community", "rouser", "rwuser"],
                mark_last,
            ),
            rule(r#"(?i)(:[ \t]*PSK[ \t]+")([^"\n]+)(")"#, &["psk"], |c| {
                let mut v = group(c, 1);
                v.extend(MARK.as_bytes());
                v.extend(group(c, 3));
                v
            }),
            // .pgpass lines: host:port:db:user:password.
            rule(r"(?m)(^[^:\s#]+:(?:[0-9]+|\*):[^:\s]+:[^:\s]+:)([^\s:]+)$", &[":"],
                mark_last,
            ),
            // Passwords on command lines: mysql -pPASS, sshpass -p PASS,
            // redis-cli -a PASS, curl -u user:PASS.
            rule(r"(\b(?:mysql|mysqldump|mysqladmin|mariadb|mariadb-dump)\b[^\n]*?\s-p)([^\s-][^\s]*)", &["mysql", "mariadb"],
                mark_last,
            ),
            rule(r"(\bsshpass\b[^\n]*?\s-p[ \t]*)(\S+)", &["sshpass"], mark_last),
            rule(r"(\bredis-cli\b[^\n]*?\s(?:-a|--pass)[ \t]+)(\S+)", &["redis-cli"], mark_last),
            rule(r"(\s(?:-u|--user)[ \t]+[^\s:]+:)(\S+)", &["-u"], mark_last),
            // KEY=VALUE, KEY: VALUE, "KEY": "VALUE" for keys naming secrets.
            rule(r#"(^|[\s"'{,;(\[&?:\x00])("?-{0,2}[A-Za-z][A-Za-z0-9_.-]*"?)([ \t]*[:=][ \t]*)("(?:[^"\\\n]|\\.)*"|'[^'\n]*'|[^\s,;"'\x00]+)"#, &[":", "="],
                key_value,
            ),
        ]
    })
}

/// Lines of a private key body (base64 between `BEGIN ... PRIVATE KEY`
/// markers, or orphan base64 lines such as `grep -v BEGIN` or `tail` leave)
/// replaced; certificate and public-key bodies stay.
fn pem_bodies(text: &str) -> String {
    fn body_line(l: &str) -> bool {
        let t = l.trim();
        t.len() >= 4
            && t.bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'+' || b == b'/' || b == b'=')
    }
    fn long_body(l: &str) -> bool {
        let t = l.trim();
        // Padding only at the end, and random-looking: `Desired=Unknown/
        // Install/Remove/Purge/Hold` is not base64.
        body_line(l)
            && t.len() >= 40
            && !t.bytes().all(|b| b.is_ascii_hexdigit())
            && !t.trim_end_matches('=').contains('=')
            && t.bytes().any(|b| b.is_ascii_digit() || b == b'+')
    }
    fn marker(l: &str) -> Option<(bool, bool)> {
        // (is BEGIN, is private)
        let t = l.trim();
        let rest = t
            .strip_prefix("-----BEGIN ")
            .map(|r| (true, r))
            .or_else(|| t.strip_prefix("-----END ").map(|r| (false, r)))?;
        let private = rest.1.contains("PRIVATE") || rest.1.contains("SECRET");
        Some((rest.0, private))
    }
    if !text.lines().any(long_body) && !text.contains("PRIVATE") {
        return text.to_string();
    }
    let lines: Vec<&str> = text.split('\n').collect();
    let mut out: Vec<String> = Vec::with_capacity(lines.len());
    // None: outside a block; Some(private)
    let mut block: Option<bool> = None;
    let mut i = 0;
    while i < lines.len() {
        let l = lines[i];
        if let Some((begin, private)) = marker(l) {
            block = if begin { Some(private) } else { None };
            out.push(l.to_string());
            i += 1;
            continue;
        }
        match block {
            Some(true) => {
                // Inside a private key: armor headers and every body line.
                if l.trim().is_empty() {
                    out.push(l.to_string());
                } else {
                    out.push(MARK.to_string());
                }
                i += 1;
            }
            Some(false) => {
                out.push(l.to_string());
                i += 1;
            }
            None if long_body(l) => {
                // An orphan run: private unless an END of a public block
                // closes it.
                let mut j = i;
                while j < lines.len() && body_line(lines[j]) && marker(lines[j]).is_none() {
                    j += 1;
                }
                let public_end = lines
                    .get(j)
                    .and_then(|l| marker(l))
                    .is_some_and(|(begin, private)| !begin && !private);
                for l in &lines[i..j] {
                    out.push(if public_end {
                        l.to_string()
                    } else {
                        MARK.to_string()
                    });
                }
                i = j;
            }
            None => {
                out.push(l.to_string());
                i += 1;
            }
        }
    }
    out.join("\n")
}

#[cfg(test)]
mod tests {
    use super::{pem_bodies, redact, redact_with, rules};

    #[test]
    fn common_secret_shapes_are_redacted() {
        let cases = [
            "-----BEGIN OPENSSH PRIVATE KEY-----\nb3BlbnNzaC1rZXktdjEAAAAA\n-----END OPENSSH PRIVATE KEY-----",
            "-----BEGIN RSA PRIVATE KEY-----\nMIIEpAIBAAKCAQEA",
            "DB_PASSWORD=hunter2hunter2",
            "password: 's3cr3t value'",
            "Authorization: Bearer eyJhbGciOiJIUzI1NiJ9.payload.sig",
            "key AKIAIOSFODNN7EXAMPLE here",
            "aws_secret_access_key = wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY",
            "bot 123456789:AAHdqTcvCH1vGWJxfSeofSAs0K5PALDsaw0x",
            "token=ghp_abcdefghijklmnopqrstuvwxyz0123456789",
        ];
        for c in cases {
            let r = redact(c);
            assert!(r.contains("[REDACTED]"), "{c:?} -> {r:?}");
            for secret in [
                "hunter2",
                "s3cr3t",
                "eyJhbGci",
                "AKIAIOSFODNN7",
                "wJalrXUt",
                "AAHdqTcv",
                "ghp_abc",
                "b3BlbnNz",
                "MIIEpAIB",
            ] {
                assert!(!r.contains(secret), "{c:?} -> {r:?}");
            }
        }
        assert_eq!(redact("load average: 0.10 0.20"), "load average: 0.10 0.20");
        // Non-ASCII text around and inside secrets stays valid and intact.
        assert_eq!(
            redact("café password=hünter2ü ñ"),
            "café password=[REDACTED] ñ"
        );
        assert_eq!(redact("Grüße, état: ok"), "Grüße, état: ok");
    }

    #[test]
    fn english_around_secret_words_survives() {
        for t in [
            "cat: /var/log/app-secret.txt: No such file or directory",
            "libsecret-1-0:\n  Installed: 0.20.5-3",
            "passwd: Authentication token manipulation error",
            "docs: explain token: refresh flow",
            "PWD=/var/lib/app",
            "vault_token_ttl_seconds 2764800",
            "\"token_type\":\"Bearer\"",
            "ii  libsecret-1-0:amd64     0.20.5-3     amd64        Secret store",
        ] {
            assert_eq!(redact(t), t);
        }
    }

    /// The guards only skip work: on every text here, each rule that matches
    /// has its required text present, and the guarded result is the
    /// unguarded one.
    #[test]
    fn guards_are_necessary_conditions() {
        let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/data/redaction");
        let mut texts: Vec<String> = ["ordinary", "secrets"]
            .iter()
            .flat_map(|sub| std::fs::read_dir(format!("{dir}/{sub}")).unwrap())
            .map(|e| e.unwrap().path())
            .filter(|p| p.extension().is_some_and(|x| x == "txt"))
            .map(|p| std::fs::read_to_string(p).unwrap())
            .collect();
        texts.extend(
            [
                "AUTHORIZATION: Token abcdefgh12345678",
                "x BEARER abcdefghijkl0123",
                "Set-Cookie: a=b; c=d",
                "HTTPS://u:p4ss@host",
                "AIzaSyA1234567890abcdefghijklmnopqrstuv",
                "ASIAIOSFODNN7EXAMPLE",
                "$6$saltsalt$hashhashhash",
                "DEFINE('DB_PASS', 'x1y2z3')",
                "MACHINE h LOGIN u PASSWORD p4ss",
                "rwuser admin priv",
                "@ : PSK \"abc\"",
                "h:5432:db:u:pw",
                "mysqldump -uroot -ps3cret db",
                "sshpass -p s3cret ssh h",
                "redis-cli --pass s3cret",
                "curl --user u:s3cret",
                "{\"client_secret\":\"Ab3dEf9hIj\"}",
            ]
            .map(String::from),
        );
        let mut seen = vec![0usize; rules().len()];
        for text in &texts {
            let lower = pem_bodies(text).to_ascii_lowercase();
            for (i, rule) in rules().iter().enumerate() {
                if rule.regex().is_match(pem_bodies(text).as_bytes()) {
                    seen[i] += 1;
                    assert!(
                        rule.may_match(&lower),
                        "rule {i} matched without {:?}: {text:?}",
                        rule.needs
                    );
                }
            }
            assert_eq!(
                redact_with(text, true),
                redact_with(text, false),
                "{text:?}"
            );
        }
        let unseen: Vec<&str> = rules()
            .iter()
            .zip(&seen)
            .filter(|(_, n)| **n == 0)
            .map(|(r, _)| r.pattern)
            .collect();
        assert!(
            unseen.is_empty(),
            "rules no text here exercises: {unseen:?}"
        );
    }

    /// Every file of the redaction corpus (tests/data/redaction, from the
    /// attacker's corpus): ordinary outputs come through byte for byte, and
    /// no listed secret survives.
    #[test]
    fn redaction_corpus_no_false_positives_no_misses() {
        let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/data/redaction");
        let mut fp = Vec::new();
        let mut miss = Vec::new();
        let (mut n_ord, mut n_sec) = (0, 0);
        let files = |sub: &str| -> Vec<std::path::PathBuf> {
            let mut v: Vec<_> = std::fs::read_dir(format!("{dir}/{sub}"))
                .unwrap_or_else(|e| panic!("{dir}/{sub}: {e}"))
                .map(|e| e.unwrap().path())
                .filter(|p| p.extension().is_some_and(|x| x == "txt"))
                .collect();
            v.sort();
            v
        };
        for p in files("ordinary") {
            n_ord += 1;
            let text = std::fs::read_to_string(&p).unwrap();
            let r = redact(&text);
            if r != text {
                let changed: Vec<String> = text
                    .lines()
                    .zip(r.lines())
                    .filter(|(a, b)| a != b)
                    .map(|(a, b)| format!("  {a:?}\n  -> {b:?}"))
                    .collect();
                fp.push(format!("{}:\n{}", p.display(), changed.join("\n")));
            }
        }
        for p in files("secrets") {
            n_sec += 1;
            let text = std::fs::read_to_string(&p).unwrap();
            let r = redact(&text);
            let list = std::fs::read_to_string(p.with_extension("secrets")).unwrap();
            for s in list.lines().filter(|s| !s.is_empty()) {
                if r.contains(s) {
                    miss.push(format!("{}: {s:?} survived", p.display()));
                }
            }
        }
        eprintln!(
            "redaction corpus: {n_ord} ordinary ({} false positives), {n_sec} secret files ({} misses)",
            fp.len(),
            miss.len()
        );
        assert!(n_ord >= 50 && n_sec >= 50, "corpus missing");
        assert!(fp.is_empty(), "false positives:\n{}", fp.join("\n"));
        assert!(miss.is_empty(), "misses:\n{}", miss.join("\n"));
    }
}
