//! The workspace integration suite: one test binary, shared helpers in `tests/lib.rs`.
//!
//! * `cli`: the built `ca-notify` binary, as an operator runs it.
//! * `simulated`: end-to-end runs against the HTTP simulators, with faults.
//! * `chaos`: the built binary killed, restarted, doubled, stopped and facing faulty peers.
//! * `harness`: the world those runs share (simulators, a SQLite store, the invariants).

mod chaos;
mod cli;
mod harness;
mod simulated;
