//! The vocabulary the controller, the agent and the wire crate share, with no
//! I/O and no dependencies beyond `serde`:
//!
//! - [`plan`]: the argv [`Plan`] a command turns into and the [`Risk`] of a
//!   decision (the policy crate produces them, the wire crate carries them,
//!   the agent runs them);
//! - [`vocab`]: the closed sets of words of the JSON contract: answer
//!   [`Status`], [`ErrorCode`] (with the exit code each one means) and the
//!   agent's [`RefusalCode`];
//! - [`names`] and [`command`]: validated newtypes for what crosses an edge
//!   ([`TargetName`], [`TargetAddress`] with the one `host:port` parser,
//!   [`Identity`], [`CommandText`] with the input hygiene in its constructor,
//!   [`NonEmptyArgv`]). A value of one of these types was checked once, where
//!   it entered; later code does not check again.
#![forbid(unsafe_code)]
#![warn(missing_docs)]

pub mod command;
pub mod names;
pub mod plan;
pub mod vocab;

pub use command::{CommandText, MAX_COMMAND_BYTES, hygiene};
pub use names::{Identity, NameError, NonEmptyArgv, TargetAddress, TargetName};
pub use plan::{Connector, Pipeline, Plan, Redirect, Risk, Stage};
pub use vocab::{ErrorCode, Exit, RefusalCode, Status, UnknownWord};
