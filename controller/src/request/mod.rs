//! The AI-facing entry points, run by the `aiopsexec` account on behalf of
//! the assistant (Hermes runs `sudo -u aiopsexec aiops run` or `aiops mcp`):
//!
//! - [`run`]: `aiops run`, one JSON request on stdin, one answer on stdout;
//! - [`mcp`]: `aiops mcp`, the same over MCP on stdio.
//!
//! What this code can reach is what the assistant can reach: policy
//! decisions, asking for approvals, sending auto-allowed commands. In
//! production mode it cannot grant an approval (that needs the approver key).

pub mod mcp;
pub mod run;

pub use run::run_json;
