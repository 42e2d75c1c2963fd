//! The workspace integration suite: one test binary, shared helpers in `tests/lib.rs`.
//!
//! * `cli`: the built `ca-notify` binary, as an operator runs it.
//! * `pipeline_memory`: whole runs of the engine on the in-memory adapters.
//! * `simulated`: end-to-end runs against the HTTP simulators, with faults.

mod cli;
mod pipeline_memory;
mod simulated;
