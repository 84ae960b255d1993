//! Redaction of common secret shapes before output reaches the assistant or
//! the audit log. The audit keeps the SHA-256 and size of the full text, so
//! the original can be matched later without being stored.

use std::sync::OnceLock;

use regex::bytes::Regex;

/// What replaces a secret.
pub const MARK: &str = "[REDACTED]";

/// One secret shape: a cheap necessary condition on the text (ASCII
/// lower-cased copy, original), the pattern, and its replacement.
struct Shape {
    may_match: fn(&str, &str) -> bool,
    pattern: &'static str,
    replacement: &'static str,
}

fn any_of(hay: &str, needles: &[&str]) -> bool {
    needles.iter().any(|n| hay.contains(n))
}

/// `[0-9]:` followed by 30 token characters (the Telegram shape's core).
fn digit_colon_token(text: &str) -> bool {
    let b = text.as_bytes();
    b.iter().enumerate().any(|(i, &c)| {
        c == b':'
            && i > 0
            && b[i - 1].is_ascii_digit()
            && b.len() > i + 30
            && b[i + 1..=i + 30]
                .iter()
                .all(|&t| t.is_ascii_alphanumeric() || t == b'_' || t == b'-')
    })
}

const SHAPES: [Shape; 8] = [
    // PEM private keys of any kind.
    Shape {
        may_match: |_, t| t.contains("PRIVATE KEY-----"),
        pattern: r"(?s)-----BEGIN ([A-Z0-9 ]*)PRIVATE KEY-----.*?(-----END ([A-Z0-9 ]*)PRIVATE KEY-----|\z)",
        replacement: "-----BEGIN PRIVATE KEY-----[REDACTED]-----END PRIVATE KEY-----",
    },
    // Bearer / basic tokens in headers.
    Shape {
        may_match: |l, _| l.contains("authorization"),
        pattern: r"(?i)\b(authorization\s*[:=]\s*)(bearer|basic|token)\s+[^\s'\x22]+",
        replacement: "${1}${2} [REDACTED]",
    },
    Shape {
        may_match: |l, _| l.contains("bearer"),
        pattern: r"(?i)\bbearer\s+[A-Za-z0-9._~+/=-]{16,}",
        replacement: "Bearer [REDACTED]",
    },
    // AWS access key ids and secret keys.
    Shape {
        may_match: |_, t| any_of(t, &["AKIA", "ASIA"]),
        pattern: r"\b(AKIA|ASIA)[0-9A-Z]{16}\b",
        replacement: "[REDACTED]",
    },
    Shape {
        may_match: |l, _| l.contains("aws_secret_access_key"),
        pattern: r"(?i)(aws_secret_access_key\s*[:=]\s*)[^\s'\x22]+",
        replacement: "${1}[REDACTED]",
    },
    // key=value / key: value for password-like keys.
    Shape {
        may_match: |l, _| {
            any_of(l, &["password", "passwd", "pwd", "secret", "token"])
                || (l.contains("key") && any_of(l, &["api", "access", "private"]))
        },
        pattern: r#"(?i)\b([A-Za-z0-9_.-]*(?:password|passwd|pwd|secret|token|api[_-]?key|access[_-]?key|private[_-]?key)[A-Za-z0-9_.-]*)(\s*[:=]\s*)("[^"]*"|'[^']*'|[^\s,;]+)"#,
        replacement: "${1}${2}[REDACTED]",
    },
    // Telegram bot tokens and similar id:secret shapes.
    Shape {
        may_match: |_, t| digit_colon_token(t),
        pattern: r"\b[0-9]{6,12}:[A-Za-z0-9_-]{30,}\b",
        replacement: "[REDACTED]",
    },
    // Common vendor token prefixes.
    Shape {
        may_match: |_, t| any_of(t, &["ghp_", "gho_", "ghu_", "ghs_", "ghr_", "xox", "sk-"]),
        pattern: r"\b(gh[pousr]_[A-Za-z0-9]{30,}|xox[abprs]-[A-Za-z0-9-]{10,}|sk-[A-Za-z0-9_-]{20,})",
        replacement: "[REDACTED]",
    },
];

// ASCII-only patterns over bytes (`(?-u)`), each compiled the first time its
// cheap check says the text may hold one: compiling all of them (with Unicode
// classes, as before) took a third of a short `aiops run`. Every match starts
// and ends at an ASCII byte or at the end of the text, so replacing it keeps
// the text valid UTF-8.
static COMPILED: [OnceLock<Regex>; 8] = [const { OnceLock::new() }; 8];

fn compiled(i: usize) -> &'static Regex {
    COMPILED[i].get_or_init(|| {
        Regex::new(&format!("(?-u){}", SHAPES[i].pattern)).expect("redaction pattern compiles")
    })
}

/// `text` with every secret shape replaced.
pub fn redact(text: &str) -> String {
    let mut out = text.to_string();
    // Lower-cased once, and again only after a replacement changed the text.
    let mut lower = out.to_ascii_lowercase();
    for (i, shape) in SHAPES.iter().enumerate() {
        if !(shape.may_match)(&lower, &out) {
            continue;
        }
        let re = compiled(i);
        if re.is_match(out.as_bytes()) {
            let bytes = re
                .replace_all(out.as_bytes(), shape.replacement.as_bytes())
                .into_owned();
            // Cannot fail (see COMPILED); lossy rather than a panic if it did.
            out = String::from_utf8(bytes)
                .unwrap_or_else(|e| String::from_utf8_lossy(e.as_bytes()).into_owned());
            lower = out.to_ascii_lowercase();
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::{SHAPES, compiled, redact};

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

    /// The cheap checks only skip texts a pattern cannot match: every case
    /// that one pattern redacts passes that pattern's check, and texts that
    /// pass no check match no pattern.
    #[test]
    fn cheap_checks_never_hide_a_match() {
        let samples = [
            "-----BEGIN EC PRIVATE KEY-----\nabc",
            "AUTHORIZATION: Basic dXNlcjpwYXNz",
            "BeArEr abcdefghijklmnopqrstuvwxyz",
            "id ASIAABCDEFGHIJKLMNOP",
            "AWS_SECRET_ACCESS_KEY: x",
            "DB_PWD=x",
            "my-Api-Key: 1",
            "PRIVATEKEY=1",
            "Access_Key=1",
            "123456:abcdefghijklmnopqrstuvwxyzABCDEF",
            "xoxb-1234567890",
            "sk-abcdefghijklmnopqrstuvwx",
            "gho_abcdefghijklmnopqrstuvwxyz0123456789",
            "load average: 0.10, uptime 12:34, user root",
        ];
        let mut seen = [false; SHAPES.len()];
        for text in samples {
            let lower = text.to_ascii_lowercase();
            for (i, shape) in SHAPES.iter().enumerate() {
                if compiled(i).is_match(text.as_bytes()) {
                    seen[i] = true;
                    assert!(
                        (shape.may_match)(&lower, text),
                        "shape {i} skipped {text:?}"
                    );
                }
            }
        }
        assert_eq!(seen, [true; SHAPES.len()], "every shape is exercised");
    }
}
