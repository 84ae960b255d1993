//! Approver-side daemons, run by the approver account (the only account that
//! can read the approver signing key): [`telegram`], the approver chat bot.
//! Further chat approvers go beside it. They resolve approvals through
//! [`crate::approvals::grant`], exactly like `aiops approvals approve`.

pub mod telegram;
