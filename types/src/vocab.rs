//! The closed word lists of the JSON contract. Each is an enum with its
//! stable snake_case name; an unknown word is an error ([`UnknownWord`]),
//! never a default.

use serde::{Deserialize, Serialize};

/// A word that is not in a closed list.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown {kind} {word:?}")]
pub struct UnknownWord {
    /// Which list (`status`, `risk`, `error code`, ...).
    pub kind: &'static str,
    /// The word.
    pub word: String,
}

macro_rules! words {
    ($(#[$doc:meta])* $name:ident, $kind:literal { $($(#[$vdoc:meta])* $v:ident = $s:literal,)* }) => {
        $(#[$doc])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
        #[serde(rename_all = "snake_case")]
        pub enum $name {
            $($(#[$vdoc])* $v,)*
        }

        impl $name {
            /// Every word of the list.
            pub const ALL: &'static [$name] = &[$($name::$v,)*];

            /// The stable name.
            pub fn as_str(self) -> &'static str {
                match self {
                    $($name::$v => $s,)*
                }
            }

            /// The value named `word`.
            pub fn parse(word: &str) -> Result<$name, UnknownWord> {
                $name::ALL
                    .iter()
                    .copied()
                    .find(|v| v.as_str() == word)
                    .ok_or_else(|| UnknownWord { kind: $kind, word: word.to_string() })
            }
        }

        impl std::fmt::Display for $name {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str(self.as_str())
            }
        }

        impl std::str::FromStr for $name {
            type Err = UnknownWord;
            fn from_str(s: &str) -> Result<$name, UnknownWord> {
                $name::parse(s)
            }
        }
    };
}

words! {
    /// `status` of an answer of `aiops run`.
    Status, "status" {
        /// Ran on the target.
        Executed = "executed",
        /// Needs a human.
        ApprovalRequested = "approval_requested",
        /// A human said no; nothing ran.
        Denied = "denied",
        /// Never runs, even with approval.
        Forbidden = "forbidden",
        /// Unknown command and `unknown_default: reject`.
        Rejected = "rejected",
        /// See the error code.
        Error = "error",
        /// Fan-out: some targets ran.
        Partial = "partial",
        /// Fan-out: no target ran.
        Failed = "failed",
        /// Fan-out: this target was not attempted.
        Skipped = "skipped",
    }
}

impl Default for Status {
    /// An answer is an error until something says otherwise.
    fn default() -> Status {
        Status::Error
    }
}

/// How `aiops` exits.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Exit {
    /// 0: handled as policy says (executed, approval requested, denied, forbidden, rejected).
    Handled,
    /// 1: the request failed (bad input, unknown target, refused by the agent, unreachable).
    Failed,
    /// 2: configuration, key or audit problem: nothing ran.
    Setup,
}

impl Exit {
    /// The process exit code.
    pub const fn code(self) -> u8 {
        match self {
            Exit::Handled => 0,
            Exit::Failed => 1,
            Exit::Setup => 2,
        }
    }
}

words! {
    /// `error.code` of an error answer (see `knowledge/EXECUTOR_USAGE.md`).
    ErrorCode, "error code" {
        /// stdin is not JSON of the expected shape.
        InvalidJson = "invalid_json",
        /// stdin is not UTF-8.
        InvalidUtf8 = "invalid_utf8",
        /// stdin is larger than 64 KiB.
        InputTooLarge = "input_too_large",
        /// The command fails input hygiene.
        InvalidCommand = "invalid_command",
        /// Another field is missing or malformed.
        InvalidField = "invalid_field",
        /// A target name is malformed.
        InvalidName = "invalid_name",
        /// No such target (or the selection matches none).
        UnknownTarget = "unknown_target",
        /// The agent refused; its reason code starts the message.
        AgentRefused = "agent_refused",
        /// The agent could not be reached.
        Unreachable = "unreachable",
        /// The agent's answer was cut off or too large.
        Incomplete = "incomplete",
        /// The agent accepted the request, then its stream broke without a
        /// final status: it may have run, the outcome is unknown.
        AgentLost = "agent_lost",
        /// The controller failed while a request was in flight (recorded
        /// as the outcome of its `requested` record).
        InternalError = "internal_error",
        /// `save_output`: an output file could not be created or written.
        OutputFile = "output_file",
        /// Nothing is pending.
        NoPendingApproval = "no_pending_approval",
        /// The approval expired.
        ApprovalExpired = "approval_expired",
        /// The approval is not pending any more.
        ApprovalNotPending = "approval_not_pending",
        /// Approving is not allowed from here (production mode).
        ApprovalNotAllowed = "approval_not_allowed",
        /// The stored approval was edited.
        ApprovalTampered = "approval_tampered",
        /// The grant is missing or not signed for exactly this approval.
        ApprovalInvalid = "approval_invalid",
        /// The approval was not granted.
        ApprovalNotGranted = "approval_not_granted",
        /// The caller is not in `approvals.approvers`.
        NotAnApprover = "not_an_approver",
        /// The requester tried to approve their own request.
        SelfApproval = "self_approval",
        /// This account cannot read the approver key.
        ApproverKeyUnreadable = "approver_key_unreadable",
        /// No approver key is configured.
        NoApproverKey = "no_approver_key",
        /// Several approvals are pending; name one.
        Ambiguous = "ambiguous",
        /// As many approvals are pending as the store holds: resolve some first.
        TooManyPending = "too_many_pending",
        /// The command is now forbidden or rejected by policy.
        PolicyChanged = "policy_changed",
        /// A stored approval file cannot be read.
        CorruptApproval = "corrupt_approval",
        /// The controller account's release of a grant did not answer.
        Release = "release",
        /// The runtime directory could not be written.
        Runtime = "runtime",
        /// The audit log could not be written: nothing ran.
        AuditFailed = "audit_failed",
        /// The configuration cannot be loaded.
        Config = "config",
        /// A key file cannot be read.
        KeyUnreadable = "key_unreadable",
        /// Certificates or keys could not be created.
        Pki = "pki",
        /// A lab could not be written, started or stopped.
        Lab = "lab",
        /// An inventory could not be imported.
        Inventory = "inventory",
        /// stdin could not be read.
        Stdin = "stdin",
        /// The approver chat's configuration cannot be loaded.
        TelegramConfig = "telegram_config",
        /// The chat API refused the bot.
        TelegramApi = "telegram_api",
        /// The Teams approver bot's configuration, secret or TLS files cannot be loaded.
        TeamsConfig = "teams_config",
        /// The token endpoint or the Bot Framework's signing keys refused or failed the Teams bot.
        TeamsApi = "teams_api",
        /// `aiops mcp`: no approval with that id.
        NoSuchApproval = "no_such_approval",
    }
}

impl ErrorCode {
    /// The exit code an answer with this error means: set-up problems (the
    /// configuration, keys, the audit log, output files) exit 2, the rest 1.
    pub fn exit(self) -> Exit {
        use ErrorCode::*;
        match self {
            OutputFile
            | AuditFailed
            | Config
            | KeyUnreadable
            | ApproverKeyUnreadable
            | NoApproverKey
            | CorruptApproval
            | Runtime
            | Pki
            | Lab
            | Inventory
            | TelegramConfig
            | TeamsConfig => Exit::Setup,
            InvalidJson | InvalidUtf8 | InputTooLarge | InvalidCommand | InvalidField
            | InvalidName | UnknownTarget | AgentRefused | Unreachable | Incomplete | AgentLost
            | InternalError | NoPendingApproval | ApprovalExpired | ApprovalNotPending
            | ApprovalNotAllowed | ApprovalTampered | ApprovalInvalid | ApprovalNotGranted
            | NotAnApprover | SelfApproval | Ambiguous | TooManyPending | PolicyChanged
            | Release | Stdin | TelegramApi | TeamsApi | NoSuchApproval => Exit::Failed,
        }
    }
}

words! {
    /// The agent's reason for refusing a request: the prefix of its gRPC
    /// error message and the `reason` of its audit record.
    RefusalCode, "refusal code" {
        /// Not signed by the pinned controller key.
        UnknownKey = "unknown_key",
        /// The signature does not verify.
        BadSignature = "bad_signature",
        /// The request does not decode or is malformed.
        Malformed = "malformed",
        /// The request is for another target.
        WrongTarget = "wrong_target",
        /// The request expired.
        Expired = "expired",
        /// The request was issued in the future.
        NotYetValid = "not_yet_valid",
        /// The request lives longer than the agent accepts.
        Lifetime = "lifetime",
        /// The request id was seen before.
        Replayed = "replayed",
        /// The agent's policy is stricter than the controller's decision.
        PolicyStricter = "policy_stricter",
        /// The agent's policy forbids the command.
        PolicyForbidden = "policy_forbidden",
        /// The agent's policy rejects the command.
        PolicyRejected = "policy_rejected",
        /// The plan sent is not the plan the agent derives.
        PlanMismatch = "plan_mismatch",
        /// An approved request without a grant.
        ApprovalMissing = "approval_missing",
        /// The grant does not verify or does not match.
        ApprovalInvalid = "approval_invalid",
        /// The grant expired.
        ApprovalExpired = "approval_expired",
        /// The grant was used before.
        ApprovalUsed = "approval_used",
        /// The timeout or output cap is over the agent's limits.
        Limits = "limits",
        /// The kernel has no Landlock and `without_landlock` is `refuse`.
        LandlockUnavailable = "landlock_unavailable",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_word_round_trips_and_unknown_words_are_errors() {
        for s in Status::ALL {
            assert_eq!(Status::parse(s.as_str()), Ok(*s));
            assert_eq!(serde_json::to_value(s).unwrap(), s.as_str());
        }
        for c in ErrorCode::ALL {
            assert_eq!(ErrorCode::parse(c.as_str()), Ok(*c));
            assert_eq!(serde_json::to_value(c).unwrap(), c.as_str());
        }
        for c in RefusalCode::ALL {
            assert_eq!(RefusalCode::parse(c.as_str()), Ok(*c));
        }
        assert!(Status::parse("approval_required").is_err());
        assert!(serde_json::from_str::<Status>("\"ok\"").is_err());
        assert!(ErrorCode::parse("nope").is_err());
    }

    #[test]
    fn set_up_problems_exit_2() {
        assert_eq!(ErrorCode::AuditFailed.exit().code(), 2);
        assert_eq!(ErrorCode::Config.exit().code(), 2);
        assert_eq!(ErrorCode::OutputFile.exit().code(), 2);
        assert_eq!(ErrorCode::UnknownTarget.exit().code(), 1);
        assert_eq!(Exit::Handled.code(), 0);
    }
}
