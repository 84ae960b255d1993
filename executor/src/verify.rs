//! The executor's own checks, in order, each with a stable reason code. It
//! trusts nothing its caller (the agent daemon) says: only what the pinned
//! keys signed, this host's configuration, the clock, and its own records.

use std::io::Write;
use std::os::unix::fs::OpenOptionsExt;
use std::path::Path;

use aiops_policy::{Decision, Risk};
use prost::Message;
use ring::signature::{ED25519, UnparsedPublicKey};

use crate::config::Config;
use crate::wire;

/// A refusal: nothing runs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Refusal {
    /// Stable reason code.
    pub code: &'static str,
    /// Explanation.
    pub message: String,
}

fn refuse(code: &'static str, message: impl Into<String>) -> Refusal {
    Refusal {
        code,
        message: message.into(),
    }
}

/// Which part of the plan the caller asks to run.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Selector {
    /// One privileged stage of an auto-allowed plan (pipeline, stage).
    Stage(usize, usize),
    /// The whole plan of an approved request.
    Approved,
}

/// A request that passed every check.
#[derive(Debug)]
pub struct Verified {
    /// The decoded request.
    pub request: wire::CommandRequest,
    /// The executor's own classification; its plan is what runs.
    pub decision: Decision,
    /// The grant, for approved requests.
    pub grant: Option<wire::ApprovalGrant>,
}

/// Key id as the agent and controller compute it.
pub fn key_id(raw: &[u8; 32]) -> String {
    let d = ring::digest::digest(&ring::digest::SHA256, raw);
    hex::encode(&d.as_ref()[..8])
}

fn verify_sig(raw: &[u8; 32], msg: &[u8], sig: &[u8]) -> bool {
    UnparsedPublicKey::new(&ED25519, raw)
        .verify(msg, sig)
        .is_ok()
}

fn is_uuid(s: &str) -> bool {
    s.len() == 36
        && s.bytes().enumerate().all(|(i, b)| match i {
            8 | 13 | 18 | 23 => b == b'-',
            _ => b.is_ascii_hexdigit() && !b.is_ascii_uppercase(),
        })
}

/// The request, when the pinned controller key signed it (for the log of a refusal).
pub fn authentic_request(
    cfg: &Config,
    signed: &wire::SignedCommand,
) -> Option<wire::CommandRequest> {
    (signed.key_id == key_id(&cfg.controller_key)
        && verify_sig(&cfg.controller_key, &signed.request, &signed.signature))
    .then(|| wire::CommandRequest::decode(signed.request.as_slice()).ok())
    .flatten()
}

/// Runs every check except the single-use record (see [`consume_grant`]).
pub fn verify(
    cfg: &Config,
    signed: &wire::SignedCommand,
    sel: Selector,
    now_ms: i64,
) -> Result<Verified, Refusal> {
    if signed.key_id != key_id(&cfg.controller_key)
        || !verify_sig(&cfg.controller_key, &signed.request, &signed.signature)
    {
        return Err(refuse(
            "bad_signature",
            "not signed by the pinned controller key",
        ));
    }
    let req = wire::CommandRequest::decode(signed.request.as_slice())
        .map_err(|e| refuse("malformed", e.to_string()))?;
    if req.target != cfg.name {
        return Err(refuse(
            "wrong_target",
            format!("request is for {:?}, this is {:?}", req.target, cfg.name),
        ));
    }
    if now_ms > req.expires_at_ms + cfg.skew_ms {
        return Err(refuse("expired", "request expired"));
    }
    if req.issued_at_ms > now_ms + cfg.skew_ms
        || req.expires_at_ms < req.issued_at_ms
        || req.expires_at_ms - req.issued_at_ms > cfg.max_lifetime_ms
    {
        return Err(refuse(
            "lifetime",
            "issue and expiry times are not acceptable",
        ));
    }
    if !is_uuid(&req.request_id) {
        return Err(refuse("malformed", "request_id is not a UUID"));
    }
    if req.timeout_ms == 0 || i64::from(req.timeout_ms) > cfg.max_timeout_ms {
        return Err(refuse("limits", "timeout out of range"));
    }
    // Judged against this host's file system, here, as root: every path operand, `<`
    // and working directory with its links resolved, and for a privileged stage none
    // that another account could redirect after this check (the agent daemon checks
    // the same, but a compromised daemon is who would set up the link).
    let fs = crate::hostfs::HostFiles;
    let mut own = cfg
        .policy
        .classify_on_host(Some(&cfg.name), &req.command, &fs);
    // Glob operands of an auto-allowed request: expanded here, as root, and classified
    // again (the agent did the same; the structure of the plan is the same).
    if own.risk == Risk::ApprovalRequired
        && req.decision == wire::AUTO_ALLOWED
        && let Some(d) = cfg.policy.classify_expanded(
            Some(&cfg.name),
            &req.command,
            &mut crate::run::list_dir,
            &fs,
        )
    {
        own = d;
    }
    match own.risk {
        Risk::Forbidden => return Err(refuse("policy_forbidden", own.reasons.join("; "))),
        Risk::Rejected => return Err(refuse("policy_rejected", own.reasons.join("; "))),
        Risk::AutoAllowed | Risk::ApprovalRequired => {}
    }
    let grant = match sel {
        Selector::Stage(p, s) => {
            if req.decision != wire::AUTO_ALLOWED || own.risk != Risk::AutoAllowed {
                return Err(refuse(
                    "policy_stricter",
                    "only commands this host's policy auto-allows run without a grant",
                ));
            }
            let privileged = own
                .plan
                .pipelines
                .get(p)
                .and_then(|pl| pl.stages.get(s))
                .is_some_and(|st| st.privileged);
            if own.plan.shell || !privileged {
                return Err(refuse(
                    "not_privileged",
                    "that stage is not a privileged stage of the plan",
                ));
            }
            None
        }
        Selector::Approved => {
            if req.decision != wire::APPROVED {
                return Err(refuse(
                    "approval_missing",
                    "the request is not an approved one",
                ));
            }
            let g = verify_grant(cfg, &signed.approval, &req, now_ms)?;
            // The approver was shown a plan; only that plan runs. (Grants from
            // before plan digests carry none: their command hash still binds.)
            if !g.plan_sha256.is_empty() && g.plan_sha256 != aiops_policy::plan_digest(&own.plan) {
                return Err(refuse(
                    "approval_invalid",
                    "grant is for another plan than this host's policy derives",
                ));
            }
            if !approvable(cfg, &own) {
                return Err(refuse(
                    "not_approvable",
                    "this host's executor.approvable does not allow approving this command",
                ));
            }
            if own.plan.pipelines.is_empty() && !own.plan.shell {
                return Err(refuse("malformed", "empty plan"));
            }
            Some(g)
        }
    };
    Ok(Verified {
        request: req,
        decision: own,
        grant,
    })
}

fn verify_grant(
    cfg: &Config,
    approval: &[u8],
    req: &wire::CommandRequest,
    now_ms: i64,
) -> Result<wire::ApprovalGrant, Refusal> {
    if approval.is_empty() {
        return Err(refuse("approval_missing", "no approver-signed grant"));
    }
    let bad = |m: &str| refuse("approval_invalid", m.to_string());
    let signed =
        wire::SignedApproval::decode(approval).map_err(|_| bad("grant does not decode"))?;
    let key = cfg
        .approver_keys
        .iter()
        .find(|k| key_id(k) == signed.key_id)
        .ok_or_else(|| bad("grant signed by a key this host does not pin"))?;
    if !verify_sig(key, &signed.grant, &signed.signature) {
        return Err(bad("grant signature does not verify"));
    }
    let g = wire::ApprovalGrant::decode(signed.grant.as_slice())
        .map_err(|_| bad("grant does not decode"))?;
    if !is_uuid(&g.approval_id) || g.approval_id != req.approval_id {
        return Err(bad("grant is for another approval"));
    }
    if g.target != cfg.name {
        return Err(bad("grant is for another target"));
    }
    let digest = ring::digest::digest(&ring::digest::SHA256, req.command.as_bytes());
    if g.command_sha256 != hex::encode(digest.as_ref()) {
        return Err(bad("grant is for another command"));
    }
    if now_ms > g.expires_at_ms + cfg.skew_ms {
        return Err(refuse("approval_expired", "the approval has expired"));
    }
    // The same binding the agent checks: the human approved this requester's
    // request, not the command for whoever sends it next.
    if g.requester != req.requester {
        return Err(bad("grant is for another requester"));
    }
    if g.approver.is_empty() || g.approver == g.requester {
        return Err(bad(
            "an approval needs an approver other than the requester",
        ));
    }
    Ok(g)
}

/// Every stage's argv matches one `executor.approvable` pattern (none
/// configured: everything the policy allows to be approved).
fn approvable(cfg: &Config, d: &Decision) -> bool {
    if cfg.approvable.is_empty() {
        return true;
    }
    if d.plan.shell {
        return cfg.approvable.iter().any(|p| p == &["shell"]);
    }
    d.plan
        .pipelines
        .iter()
        .flat_map(|p| &p.stages)
        .all(|st| cfg.approvable.iter().any(|pat| words_match(pat, &st.argv)))
}

fn words_match(pat: &[String], argv: &[String]) -> bool {
    match (pat.first().map(String::as_str), argv.first()) {
        (Some("**"), _) if pat.len() == 1 => true,
        (Some(p), Some(a)) => (p == "*" || p == a) && words_match(&pat[1..], &argv[1..]),
        (None, None) => true,
        _ => false,
    }
}

/// Records that the grant was used, durably, before anything runs: a file
/// named after the approval id, created exclusively in the root-only state
/// directory. A second use finds it and is refused.
pub fn consume_grant(
    state: &Path,
    g: &wire::ApprovalGrant,
    request_id: &str,
    skew_ms: i64,
    now_ms: i64,
) -> Result<(), Refusal> {
    let used = || {
        refuse(
            "approval_used",
            format!("approval {} was already used", g.approval_id),
        )
    };
    once(
        &state.join("grants"),
        &g.approval_id,
        &format!("{request_id} {}\n", g.expires_at_ms),
        skew_ms,
        now_ms,
    )
    .map_err(|e| e.unwrap_or_else(used))
}

/// Records that one privileged stage of an auto-allowed request ran: a signed
/// request replayed to the executor (by a compromised daemon, which keeps the
/// bytes it was sent) runs that stage once, not until it expires.
pub fn consume_request(
    state: &Path,
    request_id: &str,
    pipeline: usize,
    stage: usize,
    expires_at_ms: i64,
    skew_ms: i64,
    now_ms: i64,
) -> Result<(), Refusal> {
    once(
        &state.join("requests"),
        &format!("{request_id}.{pipeline}.{stage}"),
        &format!("{expires_at_ms}\n"),
        skew_ms,
        now_ms,
    )
    .map_err(|e| {
        e.unwrap_or_else(|| {
            refuse(
                "replayed",
                format!("request {request_id} stage {pipeline}.{stage} already ran"),
            )
        })
    })
}

/// Most records kept in one single-use directory; past it nothing more runs until
/// records expire (bounded state instead of a disk filled by replays).
const MAX_RECORDS: usize = 100_000;

/// Creates `dir/name` exclusively with `text` (whose first field after the optional
/// request id is the expiry in Unix ms) and makes it durable. `Err(None)`: it
/// exists. Records whose expiry (plus the skew) has passed are removed first: what
/// they guarded is refused as expired anyway.
fn once(
    dir: &Path,
    name: &str,
    text: &str,
    skew_ms: i64,
    now_ms: i64,
) -> Result<(), Option<Refusal>> {
    let st = |e: std::io::Error| Some(refuse("state", e.to_string()));
    std::fs::create_dir_all(dir).map_err(st)?;
    let kept = prune(dir, skew_ms, now_ms);
    if kept >= MAX_RECORDS {
        return Err(Some(refuse(
            "state",
            format!("{}: {kept} unexpired records", dir.display()),
        )));
    }
    let mut f = match std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(dir.join(name))
    {
        Ok(f) => f,
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => return Err(None),
        Err(e) => return Err(st(e)),
    };
    f.write_all(text.as_bytes())
        .and_then(|()| f.sync_all())
        .and_then(|()| std::fs::File::open(dir)?.sync_all())
        .map_err(st)
}

/// Removes the expired records of `dir`; returns how many are left.
fn prune(dir: &Path, skew_ms: i64, now_ms: i64) -> usize {
    let Ok(rd) = std::fs::read_dir(dir) else {
        return 0;
    };
    let mut kept = 0;
    for e in rd.flatten() {
        let expires = std::fs::read_to_string(e.path()).ok().and_then(|t| {
            t.split_whitespace()
                .last()
                .and_then(|x| x.parse::<i64>().ok())
        });
        match expires {
            Some(x) if now_ms > x.saturating_add(skew_ms) => {
                let _ = std::fs::remove_file(e.path());
            }
            // Unreadable or unparsable: kept (never forget a use by mistake).
            _ => kept += 1,
        }
    }
    kept
}

#[cfg(test)]
mod tests {
    use super::*;

    fn w(s: &str) -> Vec<String> {
        s.split_whitespace().map(str::to_string).collect()
    }

    #[test]
    fn approvable_patterns_match_words() {
        assert!(words_match(
            &w("systemctl restart *"),
            &w("systemctl restart nginx")
        ));
        assert!(!words_match(
            &w("systemctl restart *"),
            &w("systemctl restart a b")
        ));
        assert!(!words_match(
            &w("systemctl restart *"),
            &w("systemctl stop nginx")
        ));
        assert!(words_match(&w("kill **"), &w("kill -9 1 2")));
        assert!(!words_match(&w("kill"), &w("kill 1")));
        assert!(is_uuid("0e2b5a6c-1f0d-4c3a-9a57-8d9f0b1c2d3e"));
        assert!(!is_uuid("../../etc/passwd-aaaaaaaaaaaaaaaaaaaaa"));
    }

    #[test]
    fn single_use_records_refuse_a_second_use_and_expired_ones_are_pruned() {
        let dir = std::env::temp_dir().join(format!("aiops-exec-once-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        let id = "0e2b5a6c-1f0d-4c3a-9a57-8d9f0b1c2d3e";
        consume_request(&dir, id, 0, 0, 1_000, 0, 500).expect("first use");
        let r = consume_request(&dir, id, 0, 0, 1_000, 0, 600).unwrap_err();
        assert_eq!(r.code, "replayed");
        // Another stage of the same request is its own record.
        consume_request(&dir, id, 1, 0, 1_000, 0, 600).expect("another stage");
        let g = wire::ApprovalGrant {
            approval_id: id.into(),
            expires_at_ms: 2_000,
            ..Default::default()
        };
        consume_grant(&dir, &g, id, 0, 700).expect("grant");
        assert_eq!(
            consume_grant(&dir, &g, id, 0, 800).unwrap_err().code,
            "approval_used"
        );
        // Past the requests' expiry their records go; the grant's stays until its own.
        consume_request(&dir, "other", 0, 0, 5_000, 0, 1_500).expect("prunes");
        let left: Vec<String> = std::fs::read_dir(dir.join("requests"))
            .unwrap()
            .flatten()
            .map(|e| e.file_name().to_string_lossy().into_owned())
            .collect();
        assert_eq!(left, ["other.0.0"]);
        assert!(dir.join("grants").join(id).exists());
        let _ = std::fs::remove_dir_all(&dir);
    }
}
