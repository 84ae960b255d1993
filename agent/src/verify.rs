//! Checks a signed request before anything runs. Every refusal has a stable
//! reason code (the prefix of the gRPC error message and the agent's audit
//! `reason`).

use aiops_certs::signing::VerifyingKey;
use aiops_policy::{Decision as PolicyDecision, Policy, Risk};
use aiops_proto::agent::v1 as pb;
use aiops_proto::plan::from_proto as plan_from_proto;
use aiops_types::{NonEmptyArgv, RefusalCode, TargetName};
use prost::Message;

/// Why a request was refused.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Refusal {
    /// Stable reason code, e.g. `bad_signature`, `replayed`.
    pub code: RefusalCode,
    /// Human explanation.
    pub message: String,
    /// gRPC status to answer with.
    pub grpc: tonic::Code,
}

impl Refusal {
    fn new(code: RefusalCode, grpc: tonic::Code, message: impl Into<String>) -> Refusal {
        Refusal {
            code,
            message: message.into(),
            grpc,
        }
    }
    /// The gRPC status sent back.
    pub fn status(&self) -> tonic::Status {
        tonic::Status::new(self.grpc, format!("{}: {}", self.code, self.message))
    }
}

/// What the verifier needs to know about this agent.
pub struct Verifier<'a> {
    /// This agent's target name.
    pub name: &'a str,
    /// The pinned controller signing key.
    pub controller_key: &'a VerifyingKey,
    /// The agent's own policy.
    pub policy: &'a Policy,
    /// Pinned approver keys; approved requests need a grant signed by one.
    pub approver_keys: &'a [VerifyingKey],
    /// Allowed clock difference.
    pub skew_ms: i64,
    /// Longest allowed `expires_at - issued_at`.
    pub max_lifetime_ms: i64,
    /// Upper bound on a request's timeout.
    pub max_timeout_ms: u32,
    /// Upper bound on a request's output cap.
    pub max_output_cap: u64,
}

/// A request that passed every check except the replay cache.
#[derive(Debug)]
pub struct Verified {
    /// The decoded request.
    pub request: pb::CommandRequest,
    /// The agent's own classification (its plan is what runs).
    pub decision: PolicyDecision,
    /// The verified approval grant, for approved requests.
    pub grant: Option<pb::ApprovalGrant>,
}

impl Verifier<'_> {
    /// Runs every check in order, cheapest and most fundamental first.
    pub fn verify(&self, signed: &pb::SignedCommand, now_ms: i64) -> Result<Verified, Refusal> {
        use tonic::Code::{InvalidArgument, PermissionDenied};
        if signed.key_id != self.controller_key.key_id() {
            return Err(Refusal::new(
                RefusalCode::UnknownKey,
                PermissionDenied,
                format!(
                    "request signed by key {:?}, not the pinned controller key",
                    signed.key_id
                ),
            ));
        }
        self.controller_key
            .verify(&signed.request, &signed.signature)
            .map_err(|_| {
                Refusal::new(
                    RefusalCode::BadSignature,
                    PermissionDenied,
                    "signature does not verify",
                )
            })?;
        let req = pb::CommandRequest::decode(signed.request.as_slice())
            .map_err(|e| Refusal::new(RefusalCode::Malformed, InvalidArgument, e.to_string()))?;
        // Names are checked as the controller checks them (1-64 plain bytes).
        if let Err(e) = TargetName::new(req.target.as_str()) {
            return Err(Refusal::new(
                RefusalCode::Malformed,
                InvalidArgument,
                e.to_string(),
            ));
        }
        if req.target != self.name {
            return Err(Refusal::new(
                RefusalCode::WrongTarget,
                PermissionDenied,
                format!("request is for {:?}, this is {:?}", req.target, self.name),
            ));
        }
        if now_ms > req.expires_at_ms + self.skew_ms {
            return Err(Refusal::new(
                RefusalCode::Expired,
                PermissionDenied,
                format!("request expired {} ms ago", now_ms - req.expires_at_ms),
            ));
        }
        if req.issued_at_ms > now_ms + self.skew_ms {
            return Err(Refusal::new(
                RefusalCode::NotYetValid,
                PermissionDenied,
                "request issued in the future (clock skew?)",
            ));
        }
        if req.expires_at_ms - req.issued_at_ms > self.max_lifetime_ms
            || req.expires_at_ms < req.issued_at_ms
        {
            return Err(Refusal::new(
                RefusalCode::Lifetime,
                PermissionDenied,
                "request lifetime is longer than this agent accepts",
            ));
        }
        if uuid::Uuid::parse_str(&req.request_id).map(|u| u.get_version_num()) != Ok(4) {
            return Err(Refusal::new(
                RefusalCode::Malformed,
                InvalidArgument,
                "request_id is not a UUID v4",
            ));
        }
        if req.timeout_ms == 0 || req.timeout_ms > self.max_timeout_ms {
            return Err(Refusal::new(
                RefusalCode::Limits,
                InvalidArgument,
                format!(
                    "timeout {} ms outside 1..={}",
                    req.timeout_ms, self.max_timeout_ms
                ),
            ));
        }
        if req.output_cap_bytes > self.max_output_cap {
            return Err(Refusal::new(
                RefusalCode::Limits,
                InvalidArgument,
                format!(
                    "output cap {} above {}",
                    req.output_cap_bytes, self.max_output_cap
                ),
            ));
        }
        // Re-checked against this host's file system just before exec: a
        // path that reaches a sensitive file through a symbolic link (or a
        // recursive read whose tree holds one) is not automatic here.
        let mut own = self
            .policy
            .classify_on_host(Some(self.name), &req.command, &HostFiles);
        let claimed = pb::Decision::try_from(req.decision).unwrap_or(pb::Decision::Unspecified);
        // Glob operands: expanded against this host's file system and classified again;
        // only that decision counts, and its plan is what runs.
        let mut expanded = false;
        if own.risk == Risk::ApprovalRequired
            && claimed == pb::Decision::AutoAllowed
            && let Some(d) = self.policy.classify_expanded(
                Some(self.name),
                &req.command,
                &mut aiops_exec::run::list_dir,
                &HostFiles,
            )
        {
            own = d;
            expanded = true;
        }
        match (own.risk, claimed) {
            (Risk::Forbidden, _) => {
                return Err(Refusal::new(
                    RefusalCode::PolicyForbidden,
                    PermissionDenied,
                    format!(
                        "forbidden by this agent's policy: {}",
                        own.reasons.join("; ")
                    ),
                ));
            }
            (Risk::Rejected, _) => {
                return Err(Refusal::new(
                    RefusalCode::PolicyRejected,
                    PermissionDenied,
                    format!(
                        "rejected by this agent's policy: {}",
                        own.reasons.join("; ")
                    ),
                ));
            }
            (_, pb::Decision::Unspecified) => {
                return Err(Refusal::new(
                    RefusalCode::Malformed,
                    InvalidArgument,
                    "no decision",
                ));
            }
            (Risk::ApprovalRequired, pb::Decision::AutoAllowed) => {
                return Err(Refusal::new(
                    RefusalCode::PolicyStricter,
                    PermissionDenied,
                    format!(
                        "this agent's policy requires approval: {}",
                        own.reasons.join("; ")
                    ),
                ));
            }
            (Risk::AutoAllowed, _) | (Risk::ApprovalRequired, pb::Decision::Approved) => {}
        }
        let grant = if claimed == pb::Decision::Approved {
            Some(self.verify_grant(&signed.approval, &req, now_ms)?)
        } else {
            None
        };
        let requested = plan_from_proto(req.plan.as_ref());
        // Every stage names a program: nothing later indexes an empty argv.
        let empty_stage = requested
            .pipelines
            .iter()
            .flat_map(|p| &p.stages)
            .any(|s| NonEmptyArgv::new(s.argv.clone()).is_none());
        if empty_stage {
            return Err(Refusal::new(
                RefusalCode::Malformed,
                InvalidArgument,
                "a stage of the plan has an empty argv",
            ));
        }
        if requested != own.plan && !expanded {
            return Err(Refusal::new(
                RefusalCode::PlanMismatch,
                PermissionDenied,
                "the plan sent differs from the plan this agent derives from the command",
            ));
        }
        if own.plan.shell && claimed != pb::Decision::Approved {
            return Err(Refusal::new(
                RefusalCode::PolicyStricter,
                PermissionDenied,
                "shell plans run only when approved",
            ));
        }
        if own.plan.pipelines.is_empty() && !own.plan.shell {
            return Err(Refusal::new(
                RefusalCode::Malformed,
                InvalidArgument,
                "empty plan",
            ));
        }
        Ok(Verified {
            request: req,
            decision: own,
            grant,
        })
    }

    /// Checks the approver's signed grant covers exactly this command, target and time.
    fn verify_grant(
        &self,
        approval: &[u8],
        req: &pb::CommandRequest,
        now_ms: i64,
    ) -> Result<pb::ApprovalGrant, Refusal> {
        use tonic::Code::PermissionDenied;
        let refuse =
            |msg: String| Refusal::new(RefusalCode::ApprovalInvalid, PermissionDenied, msg);
        if approval.is_empty() {
            return Err(Refusal::new(
                RefusalCode::ApprovalMissing,
                PermissionDenied,
                "an approved request must carry an approver-signed grant",
            ));
        }
        let signed = pb::SignedApproval::decode(approval)
            .map_err(|e| refuse(format!("grant does not decode: {e}")))?;
        let key = self
            .approver_keys
            .iter()
            .find(|k| k.key_id() == signed.key_id)
            .ok_or_else(|| {
                refuse(format!(
                    "grant signed by unknown approver key {:?}",
                    signed.key_id
                ))
            })?;
        key.verify(&signed.grant, &signed.signature)
            .map_err(|_| refuse("grant signature does not verify".into()))?;
        let grant = pb::ApprovalGrant::decode(signed.grant.as_slice())
            .map_err(|e| refuse(format!("grant does not decode: {e}")))?;
        if uuid::Uuid::parse_str(&grant.approval_id).is_err()
            || grant.approval_id != req.approval_id
        {
            return Err(refuse("grant is for another approval".into()));
        }
        if grant.target != self.name || grant.target != req.target {
            return Err(refuse(format!("grant is for target {:?}", grant.target)));
        }
        if grant.command_sha256 != aiops_sys::sha256_hex(req.command.as_bytes()) {
            return Err(refuse("grant is for another command".into()));
        }
        if now_ms > grant.expires_at_ms + self.skew_ms {
            return Err(Refusal::new(
                RefusalCode::ApprovalExpired,
                PermissionDenied,
                "the approval has expired",
            ));
        }
        if grant.requester != req.requester {
            return Err(refuse(format!(
                "grant is for requester {:?}, the request is from {:?}",
                grant.requester, req.requester
            )));
        }
        if grant.approver.is_empty() || grant.approver == grant.requester {
            return Err(refuse(
                "an approval needs an approver other than the requester".into(),
            ));
        }
        Ok(grant)
    }
}

/// This host's file system as the policy's re-check sees it; the root executor runs the
/// same check itself.
pub use aiops_exec::hostfs::HostFiles;
