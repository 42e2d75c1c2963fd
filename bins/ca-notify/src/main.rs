//! `ca-notify`: the command line over the `ca-notify-job` library.
//!
//! Parses the arguments, calls the job crate (which reads the layered configuration and
//! builds the adapters it names), prints what happened and turns the result into an exit
//! code (see `docs/operations.md`). Nothing else lives here. The `demo` feature (on by
//! default) adds `demo` and `simulate`, with the simulators and the in-memory adapters.

mod cli;
mod commands;
mod exit;
mod log_capture;
mod progress;
mod signals;
mod summary;
#[cfg(feature = "demo")]
mod synthetic;
mod telemetry;
mod tls_roots;

use std::collections::HashMap;
use std::process::ExitCode;

use clap::Parser;

use crate::cli::{Cli, Command};
use crate::exit::Failure;

/// mimalloc for every Rust allocation of the command: about a tenth less CPU per record
/// than glibc's allocator (`docs/decisions/0007-mimalloc.md`). The library crates set no
/// allocator, so a service that embeds them keeps its own.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> ExitCode {
    // Before the runtime's threads (its blocking pool): it may set SSL_CERT_FILE.
    tls_roots::provide_when_missing();
    let cli = Cli::parse();
    telemetry::init(cli.log_format, telemetry::level(cli.verbose, cli.quiet));
    // One runtime thread: the job waits on its peers and never computes for long, so a
    // second worker only adds wake-ups across threads (measured: `docs/benchmarks.md`,
    // CPU per record). The store's blocking calls run on tokio's blocking pool.
    let runtime = match tokio::runtime::Builder::new_current_thread()
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
    match cli.command {
        Command::Run(args) => commands::run::execute(config_path, &env, &args).await,
        #[cfg(feature = "demo")]
        Command::Demo(args) => commands::demo::execute(&args).await,
        Command::Import { file } => commands::import::execute(config_path, &env, &file).await,
        Command::Export { file, json } => {
            commands::export::execute(config_path, &env, &file, json).await
        }
        Command::Operator(command) => commands::operator::execute(config_path, &env, command).await,
        Command::Check { print_config } => {
            commands::check::execute(config_path, &env, print_config).await
        }
        Command::Migrate { print } => commands::migrate::execute(config_path, &env, print).await,
        Command::ServeFunctions(args) => {
            commands::serve_functions::execute(config_path, &env, &args).await
        }
        #[cfg(feature = "demo")]
        Command::Simulate {
            twilio_port,
            verification_port,
        } => commands::simulate::execute(twilio_port, verification_port).await,
    }
}
