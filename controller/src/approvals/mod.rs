//! Approvals, split by the account that runs each half:
//!
//! - [`store`]: the store itself (every account that touches approvals);
//! - [`request`]: the AI-facing account asks (`approval_requested`);
//! - [`grant`]: the approver account approves or denies, signing with the
//!   approver key (in lab mode `echo Approve | aiops run` may too);
//! - [`release`]: the controller account checks the signed grant and sends
//!   the approved command.
//!
//! Nothing here calls back into `aiops run` or `aiops mcp`; sending goes
//! through [`crate::dispatch`].

pub mod card;
pub mod grant;
pub mod release;
pub mod request;
pub mod store;

pub use grant::{Resolver, Verb, parse_verb, resolve};
pub use release::release;
pub use request::request;
pub use store::{Approval, DEFAULT_TTL_SECS, State, Store, list, list_for_approver, to_json};
