//! The workspace integration suite: one test binary, shared helpers in `tests/lib.rs`.
//!
//! * `cli`: the built `ca-notify` binary, as an operator runs it.
//! * `pipeline_memory`: whole runs of the engine on the in-memory adapters.
//! * `simulated`: end-to-end runs against the HTTP simulators, with faults.
//! * `chaos`: the built binary killed, restarted, doubled, stopped and facing faulty peers.
//! * `hostile`: the hostile input corpus, imported and run, or rejected naming the line.
//! * `truth`: the outcome is the truth under servers that fail as the real one does.
//! * `harness`: the world those runs share (simulators, a SQLite store, the invariants).

mod chaos;
mod cli;
mod harness;
mod hostile;
mod pipeline_memory;
mod simulated;
mod truth;
