//! The JSON contract of `aiops run` (see the README): the request read on
//! stdin ([`input`]) and the answer printed on stdout ([`answer`]), with
//! its output excerpts ([`excerpt`]).
//!
//! Plain data and checks, used by code of every account; a leaf module: it
//! imports nothing else of the crate, so every layer may depend on it.

pub mod answer;
pub mod excerpt;
pub mod input;

pub use answer::{Answer, ErrorBody, Failure, Summary, audit, audited_failure, exit, fail, object};
pub use input::{
    MAX_INPUT_BYTES, MAX_REASON, MAX_REQUESTER, RunInput, check, input_summary, parse_input,
};
