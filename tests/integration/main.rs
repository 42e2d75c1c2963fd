//! The workspace integration suite: one test binary, shared helpers in `tests/lib.rs`.
//!
//! * `cli`: the built `ca-notify` binary, as an operator runs it.
//! * `simulated`: end-to-end runs against the HTTP simulators, with faults.

mod cli;
mod simulated;
