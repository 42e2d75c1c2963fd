//! The workspace integration suite: one test binary, shared helpers in `tests/lib.rs`.
//!
//! * `cli`: the built `ca-notify` binary, as an operator runs it.

mod cli;
