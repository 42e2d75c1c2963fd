//! The `ca-notify` command's integration tests: one test binary running the command as
//! cargo built it for this test run (`CARGO_BIN_EXE_ca-notify`), with the shared helpers
//! of `ca-notify-integration-tests` (`tests/lib.rs`).
//!
//! * `cli`: the built binary, as an operator runs it.
//! * `simulated`: the binary against the HTTP simulators: a wrong key, faults at trace level.
//! * `chaos`: the built binary killed, restarted, doubled, stopped and facing faulty peers.
//! * `hostile`: the hostile input corpus, imported and run, or rejected naming the line.
//! * `truth`: the outcome is the truth under servers that fail as the real one does.
//! * `harness`: the world those runs share (simulators, a SQLite store, the invariants).

use ca_notify_integration_tests::Cli;

mod chaos;
mod cli;
mod harness;
mod hostile;
mod simulated;
mod truth;

/// The command under test, with a clean environment.
pub fn ca_notify() -> Cli {
    Cli::new(env!("CARGO_BIN_EXE_ca-notify"))
}
