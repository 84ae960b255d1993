//! Redaction of common secret shapes before output reaches the assistant or
//! the audit log. The audit keeps the SHA-256 and size of the full text, so
//! the original can be matched later without being stored.

use std::sync::LazyLock;

use regex::Regex;

/// What replaces a secret.
pub const MARK: &str = "[REDACTED]";

static PATTERNS: LazyLock<Vec<(Regex, &'static str)>> = LazyLock::new(|| {
    [
        // PEM private keys of any kind.
        (
            r"(?s)-----BEGIN ([A-Z0-9 ]*)PRIVATE KEY-----.*?(-----END ([A-Z0-9 ]*)PRIVATE KEY-----|\z)",
            "-----BEGIN PRIVATE KEY-----[REDACTED]-----END PRIVATE KEY-----",
        ),
        // Bearer / basic tokens in headers.
        (r"(?i)\b(authorization\s*[:=]\s*)(bearer|basic|token)\s+[^\s'\x22]+", "${1}${2} [REDACTED]"),
        (r"(?i)\bbearer\s+[A-Za-z0-9._~+/=-]{16,}", "Bearer [REDACTED]"),
        // AWS access key ids and secret keys.
        (r"\b(AKIA|ASIA)[0-9A-Z]{16}\b", "[REDACTED]"),
        (
            r"(?i)(aws_secret_access_key\s*[:=]\s*)[^\s'\x22]+",
            "${1}[REDACTED]",
        ),
        // key=value / key: value for password-like keys.
        (
            r#"(?i)\b([A-Za-z0-9_.-]*(?:password|passwd|pwd|secret|token|api[_-]?key|access[_-]?key|private[_-]?key)[A-Za-z0-9_.-]*)(\s*[:=]\s*)("[^"]*"|'[^']*'|[^\s,;]+)"#,
            "${1}${2}[REDACTED]",
        ),
        // Telegram bot tokens and similar id:secret shapes.
        (r"\b[0-9]{6,12}:[A-Za-z0-9_-]{30,}\b", "[REDACTED]"),
        // Common vendor token prefixes.
        (r"\b(gh[pousr]_[A-Za-z0-9]{30,}|xox[abprs]-[A-Za-z0-9-]{10,}|sk-[A-Za-z0-9_-]{20,})", "[REDACTED]"),
    ]
    .into_iter()
    .map(|(re, rep)| (Regex::new(re).expect("redaction pattern compiles"), rep))
    .collect()
});

/// `text` with every secret shape replaced.
pub fn redact(text: &str) -> String {
    let mut out = text.to_string();
    for (re, rep) in PATTERNS.iter() {
        if re.is_match(&out) {
            out = re.replace_all(&out, *rep).into_owned();
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::redact;

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
    }
}
