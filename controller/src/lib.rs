//! The aiops controller: the only way the assistant reaches servers.
//!
//! `aiops run` reads one JSON request on stdin, validates it, classifies the
//! command by policy, asks for human approval where needed, signs the request
//! and sends it over mutual-TLS gRPC to the target's agent, audits every step
//! and prints one JSON answer on stdout. Human text and logs go to stderr.
//!
//! The modules follow the accounts that run them (see the README's Layout):
//!
//! | module | what | run by |
//! |---|---|---|
//! | [`request`] | `aiops run`, `aiops mcp` | the AI-facing account (`aiopsexec` for the assistant) |
//! | [`approvals`] | request / grant / release of approvals | `aiopsexec` / the approver / the controller account |
//! | [`approver`] | the Telegram approver chat, the Teams approver bot | the approver account |
//! | [`dispatch`] | signing, fan-out, mTLS client, saved output (redaction: the `aiops-redact` crate) | the controller account (`aiopsexec`) |
//! | [`operator`] | certificates, targets, inventory import, labs, Hermes set-up, incident reports | the operator (root / admin) |
//! | `aiops-export` (crate) | `aiops audit export`: the audit log to syslog / OTLP sinks | its own read-only account (`aiops-audit-export.service`) |
//! | [`contract`] | the JSON request and answer, exit codes | shared (a leaf) |
//! | [`config`] | the configuration file | shared (a leaf) |
//! | [`bootstrap`] | the knowledge folder, compiled in | shared (a leaf) |
//! | [`output`] | the one stdout writer | shared (a leaf) |
//! | `cli` | argument parsing and the subcommands' glue | whoever runs `aiops` |
//!
//! A module never imports its caller: `request` -> `approvals` -> `dispatch`
//! -> `contract`, checked by `scripts/module-cycles.py`.
#![forbid(unsafe_code)]
#![warn(missing_docs)]

pub mod approvals;
pub mod approver;
pub mod bootstrap;
mod cli;
pub mod config;
pub mod contract;
pub mod dispatch;
pub mod operator;
pub mod output;
pub mod request;

pub use cli::{Error, main, run};
