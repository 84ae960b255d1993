//! Installing and running an installation, run by the operator (root, or
//! the admin who owns the controller's configuration and PKI), never by the
//! assistant:
//!
//! - [`certs`]: enrollment bundles and certificate renewal;
//! - [`targets`]: `aiops targets add|import|check`;
//! - [`inventory`]: the Ansible inventory parser behind `targets import`;
//! - [`lab`]: a local lab of agents on loopback (`aiops lab`, `aiops quickstart`);
//! - [`hermes`]: installing the assistant's skills and MCP entry.

pub mod certs;
pub mod hermes;
pub mod incident;
pub mod inventory;
pub mod lab;
pub mod migrate;
pub mod targets;
