//! Approver-side daemons, run by the approver account (the only account that
//! can read the approver signing key): [`telegram`], the approver chat bot,
//! and [`teams`], the Microsoft Teams bot. Further chat approvers go beside them. They resolve approvals through
//! [`crate::approvals::grant`], exactly like `aiops approvals approve`.

pub mod teams;
pub mod telegram;
