//! The workspace integration suite: one test binary for the libraries, shared helpers in
//! `tests/lib.rs`. The tests that run the built `ca-notify` command live with it, in
//! `bins/ca-notify/tests/cli`, where cargo hands them the binary.
//!
//! * `pipeline_memory`: whole runs of the engine on the in-memory adapters.
//! * `simulated`: the engine against the HTTP simulators, with faults.

mod pipeline_memory;
mod simulated;
