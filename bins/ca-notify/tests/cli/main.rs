//! The `ca-notify` command's integration tests: one test binary running the command as
//! cargo built it for this test run (`CARGO_BIN_EXE_ca-notify`), with the shared helpers
//! of `ca-notify-integration-tests` (`tests/lib.rs`).
//!
//! * `cli`: the built binary, as an operator runs it.
//! * `simulated`: the binary against the HTTP simulators: a wrong key, faults at trace level.
//! * `chaos`: the built binary killed, restarted, doubled, stopped and facing faulty peers.
//! * `hostile`: the hostile input corpus, imported and run, or rejected naming the line.
//! * `operator`: the operator's day on SQLite and on Snowflake (fakesnow): status, requeue,
//!   reconcile, purge, export, report, completions; `operator_world`: its seeding of both.
//! * `report`: `report --html` rendered by headless Chromium (console, charts, screenshot).
//! * `truth`: the outcome is the truth under servers that fail as the real one does.
//! * `functions`: `serve-functions` driven as the Azure Functions host drives it.
//! * `deploy`: the scheduler examples in `deploy/`, and that the command accepts them.
//! * `empty_root`: the static binary alone in an empty root directory.
//! * `harness`: the world those runs share (simulators, a SQLite store, the invariants).

use ca_notify_integration_tests::{Cli, CliOutput};

mod chaos;
mod cli;
mod deploy;
mod empty_root;
mod functions;
mod harness;
mod hostile;
mod operator;
mod operator_world;
mod report;
mod simulated;
mod truth;

/// The command under test, with a clean environment.
pub fn ca_notify() -> Cli {
    Cli::new(env!("CARGO_BIN_EXE_ca-notify"))
}

/// Runs `cli` to its end on a blocking thread, so the simulators, which serve from the
/// test's runtime, keep its workers while the command runs.
pub async fn run(cli: &Cli, args: &[&str]) -> CliOutput {
    let cli = cli.clone();
    let args: Vec<String> = args.iter().map(|&a| a.to_owned()).collect();
    tokio::task::spawn_blocking(move || {
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        cli.run(&args)
    })
    .await
    .expect("the command ran")
}
