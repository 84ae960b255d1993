//! The few wire messages the executor decodes, declared by hand with the
//! same field numbers as `proto/aiops/agent/v1/agent.proto` (a test checks
//! them against the generated code), so this binary links no gRPC code.

/// `aiops.agent.v1.SignedCommand`.
#[derive(Clone, PartialEq, prost::Message)]
pub struct SignedCommand {
    /// Encoded [`CommandRequest`], signed as-is.
    #[prost(bytes = "vec", tag = "1")]
    pub request: Vec<u8>,
    /// Ed25519 signature over `request`.
    #[prost(bytes = "vec", tag = "2")]
    pub signature: Vec<u8>,
    /// Key id of the signer.
    #[prost(string, tag = "3")]
    pub key_id: String,
    /// Encoded [`SignedApproval`] for approved requests.
    #[prost(bytes = "vec", tag = "4")]
    pub approval: Vec<u8>,
}

/// `aiops.agent.v1.CommandRequest` (the plan, field 4, is not read: the
/// executor derives its own plan from `command`).
#[derive(Clone, PartialEq, prost::Message)]
pub struct CommandRequest {
    /// UUID v4.
    #[prost(string, tag = "1")]
    pub request_id: String,
    /// Target name.
    #[prost(string, tag = "2")]
    pub target: String,
    /// Exact command text.
    #[prost(string, tag = "3")]
    pub command: String,
    /// 1 = auto-allowed, 2 = approved.
    #[prost(int32, tag = "5")]
    pub decision: i32,
    /// Who asked.
    #[prost(string, tag = "6")]
    pub requester: String,
    /// Why.
    #[prost(string, tag = "7")]
    pub reason: String,
    /// Unix ms.
    #[prost(int64, tag = "8")]
    pub issued_at_ms: i64,
    /// Unix ms.
    #[prost(int64, tag = "9")]
    pub expires_at_ms: i64,
    /// Wall-clock limit.
    #[prost(uint32, tag = "10")]
    pub timeout_ms: u32,
    /// Approval id of an approved request.
    #[prost(string, tag = "13")]
    pub approval_id: String,
}

/// `DECISION_AUTO_ALLOWED`.
pub const AUTO_ALLOWED: i32 = 1;
/// `DECISION_APPROVED`.
pub const APPROVED: i32 = 2;

/// `aiops.agent.v1.ApprovalGrant`.
#[derive(Clone, PartialEq, prost::Message)]
pub struct ApprovalGrant {
    /// Approval id.
    #[prost(string, tag = "1")]
    pub approval_id: String,
    /// The one target.
    #[prost(string, tag = "2")]
    pub target: String,
    /// Hex SHA-256 of the exact command.
    #[prost(string, tag = "3")]
    pub command_sha256: String,
    /// Unix ms.
    #[prost(int64, tag = "4")]
    pub expires_at_ms: i64,
    /// Who approved.
    #[prost(string, tag = "5")]
    pub approver: String,
    /// Who asked.
    #[prost(string, tag = "6")]
    pub requester: String,
    /// Account the approved command runs as; empty = root.
    #[prost(string, tag = "7")]
    pub run_as: String,
    /// Hex SHA-256 of the approved plan (`aiops_policy::plan_digest`).
    #[prost(string, tag = "8")]
    pub plan_sha256: String,
}

/// `aiops.agent.v1.SignedApproval`.
#[derive(Clone, PartialEq, prost::Message)]
pub struct SignedApproval {
    /// Encoded [`ApprovalGrant`].
    #[prost(bytes = "vec", tag = "1")]
    pub grant: Vec<u8>,
    /// Ed25519 signature over `grant`.
    #[prost(bytes = "vec", tag = "2")]
    pub signature: Vec<u8>,
    /// Key id of the approver key.
    #[prost(string, tag = "3")]
    pub key_id: String,
}

#[cfg(test)]
mod tests {
    use aiops_proto::agent::v1 as pb;
    use prost::Message;

    #[test]
    fn field_numbers_match_the_generated_code() {
        let req = pb::CommandRequest {
            request_id: "r".into(),
            target: "t".into(),
            command: "c".into(),
            decision: pb::Decision::Approved as i32,
            requester: "q".into(),
            reason: "w".into(),
            issued_at_ms: 1,
            expires_at_ms: 2,
            timeout_ms: 3,
            approval_id: "a".into(),
            ..Default::default()
        };
        let w = super::CommandRequest::decode(req.encode_to_vec().as_slice()).unwrap();
        assert_eq!(
            (
                w.request_id.as_str(),
                w.target.as_str(),
                w.command.as_str(),
                w.decision,
                w.requester.as_str(),
                w.reason.as_str(),
                (w.issued_at_ms, w.expires_at_ms, w.timeout_ms),
                w.approval_id.as_str()
            ),
            ("r", "t", "c", super::APPROVED, "q", "w", (1, 2, 3), "a")
        );
        let g = pb::ApprovalGrant {
            approval_id: "a".into(),
            target: "t".into(),
            command_sha256: "h".into(),
            expires_at_ms: 9,
            approver: "p".into(),
            requester: "q".into(),
            run_as: "nobody".into(),
            plan_sha256: "d".into(),
        };
        let wg = super::ApprovalGrant::decode(g.encode_to_vec().as_slice()).unwrap();
        assert_eq!(
            (wg.run_as.as_str(), wg.plan_sha256.as_str()),
            ("nobody", "d")
        );
        assert_eq!(
            (
                wg.approval_id,
                wg.target,
                wg.command_sha256,
                wg.expires_at_ms,
                wg.approver,
                wg.requester
            ),
            (
                "a".into(),
                "t".into(),
                "h".into(),
                9,
                "p".into(),
                "q".into()
            )
        );
        let s = pb::SignedCommand {
            request: vec![1],
            signature: vec![2],
            key_id: "k".into(),
            approval: pb::SignedApproval {
                grant: vec![3],
                signature: vec![4],
                key_id: "j".into(),
            }
            .encode_to_vec(),
        };
        let ws = super::SignedCommand::decode(s.encode_to_vec().as_slice()).unwrap();
        assert_eq!(
            (ws.request, ws.signature, ws.key_id),
            (vec![1], vec![2], "k".into())
        );
        let wa = super::SignedApproval::decode(ws.approval.as_slice()).unwrap();
        assert_eq!(
            (wa.grant, wa.signature, wa.key_id),
            (vec![3], vec![4], "j".into())
        );
    }
}
