//! `ca-notify`: the composition root and command line.
//!
//! Reads the layered configuration, builds the adapters it names (SQLite or Snowflake;
//! the offline validator or Twilio; the verification server), hands them to the pipeline,
//! and turns the result into a summary and an exit code (see `docs/operations.md`).

mod cli;
mod commands;
mod compose;
mod exit;
mod progress;
mod settings;
mod summary;
mod synthetic;
mod telemetry;

use std::collections::HashMap;
use std::process::ExitCode;

use clap::Parser;

use crate::cli::{Cli, Command};
use crate::exit::Failure;

fn main() -> ExitCode {
    let cli = Cli::parse();
    telemetry::init(cli.log_format);
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(e) => {
            eprintln!("ca-notify: cannot start the async runtime: {e}");
            return ExitCode::from(exit::INTERNAL);
        }
    };
    let env: HashMap<String, String> = std::env::vars().collect();
    match runtime.block_on(dispatch(cli, env)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(failure) => {
            eprintln!("ca-notify: {failure}");
            ExitCode::from(failure.code)
        }
    }
}

async fn dispatch(cli: Cli, env: HashMap<String, String>) -> Result<(), Failure> {
    let config_path = cli.config.as_deref();
    // Without a subcommand: the demo on the in-memory adapters (nothing to set up at all).
    let command = cli.command.unwrap_or(Command::Demo(cli::DemoArgs {
        in_memory: true,
        ..cli::DemoArgs::default()
    }));
    match command {
        Command::Run(args) => commands::run::execute(config_path, &env, &args).await,
        Command::Demo(args) => commands::demo::execute(&args).await,
        Command::Import { file } => commands::import::execute(config_path, &env, &file).await,
        Command::Export { file } => commands::export::execute(config_path, &env, &file).await,
        Command::Check { print_config } => {
            commands::check::execute(config_path, &env, print_config).await
        }
        Command::Simulate {
            twilio_port,
            verification_port,
        } => commands::simulate::execute(twilio_port, verification_port).await,
    }
}
