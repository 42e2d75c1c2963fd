//! The command line: what an operator at a state health department types.

use std::path::PathBuf;

use clap::{Parser, Subcommand};

use crate::telemetry::LogFormat;

/// What `--version` prints after the name: the version and the commit it was built from
/// (`build.rs`).
pub const VERSION: &str = concat!(
    env!("CARGO_PKG_VERSION"),
    " (commit ",
    env!("CA_NOTIFY_COMMIT"),
    ")"
);

/// Texts a verification code to each person with a positive COVID-19 test, exactly once,
/// so they can warn their contacts through Exposure Notifications.
#[derive(Debug, Parser)]
#[command(
    name = "ca-notify",
    version = VERSION,
    propagate_version = true,
    subcommand_required = true,
    arg_required_else_help = true
)]
pub struct Cli {
    /// A TOML configuration file (layered over the defaults, under the environment).
    #[arg(long, global = true, value_name = "PATH")]
    pub config: Option<PathBuf>,

    /// Log line format on standard error.
    #[arg(long, global = true, value_enum, default_value_t = LogFormat::Auto)]
    pub log_format: LogFormat,

    /// What to do; without one, this help.
    #[command(subcommand)]
    pub command: Command,
}

/// The subcommands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// One scheduled run: EPOCH_COUNT epochs within the deadline.
    Run(RunArgs),
    #[cfg(feature = "demo")]
    /// The whole job on embedded defaults: a fresh SQLite file with synthetic recipients,
    /// the local Twilio and verification-server simulators, a full run and its summary.
    Demo(DemoArgs),
    /// Loads recipients from a CSV file (id,phone,test_date,symptom_date,test_type) into
    /// the SQLite store, all or nothing.
    Import {
        /// The CSV file.
        file: PathBuf,
    },
    /// Writes one row per record (id,sent,outcome,reason,processed_at; no phone numbers).
    Export {
        /// The CSV file to write.
        file: PathBuf,
    },
    /// Validates the configuration and reaches every configured system without sending.
    Check {
        /// Also print the effective configuration, secrets redacted.
        #[arg(long)]
        print_config: bool,
    },
    /// The Azure Functions custom handler: serves the Functions host on
    /// FUNCTIONS_CUSTOMHANDLER_PORT, one run per timer invocation (deploy/azure-functions/).
    ServeFunctions(ServeFunctionsArgs),
    #[cfg(feature = "demo")]
    /// Runs the Twilio Lookup and verification-server simulators for manual testing.
    Simulate {
        /// Port of the Twilio Lookup simulator.
        #[arg(long, default_value_t = 4010)]
        twilio_port: u16,
        /// Port of the verification-server simulator.
        #[arg(long, default_value_t = 4011)]
        verification_port: u16,
    },
}

/// `run` options.
#[derive(Debug, Clone, Default, clap::Args)]
pub struct RunArgs {
    /// Keep running epochs until nothing is left to claim (bulk backfills).
    #[arg(long, conflicts_with = "dry_run")]
    pub until_drained: bool,
    /// Read (without claiming) a sample of what the next run would take, validate it
    /// offline and print what would happen. Writes nothing, texts no one, spends nothing.
    #[arg(long)]
    pub dry_run: bool,
    /// Also write the summary as JSON to this file.
    #[arg(long, value_name = "PATH")]
    pub summary_json: Option<PathBuf>,
}

/// `serve-functions` options.
#[derive(Debug, Clone, clap::Args)]
pub struct ServeFunctionsArgs {
    /// The port the Functions host calls the handler on (on 127.0.0.1).
    #[arg(long, env = "FUNCTIONS_CUSTOMHANDLER_PORT")]
    pub port: u16,
    /// The function app's host.json, whose functionTimeout sets each run's deadline.
    #[arg(long, value_name = "PATH", default_value = "host.json")]
    pub host_json: PathBuf,
}

/// `demo` options.
#[cfg(feature = "demo")]
#[derive(Debug, Clone, clap::Args)]
pub struct DemoArgs {
    /// How many synthetic recipients to seed.
    #[arg(long, default_value_t = 3000)]
    pub recipients: usize,
    /// Run on the in-memory adapters instead of SQLite and the HTTP simulators.
    #[arg(long)]
    pub in_memory: bool,
    /// Also write the summary as JSON to this file.
    #[arg(long, value_name = "PATH")]
    pub summary_json: Option<PathBuf>,
}

#[cfg(feature = "demo")]
impl Default for DemoArgs {
    fn default() -> Self {
        Self {
            recipients: 3000,
            in_memory: false,
            summary_json: None,
        }
    }
}
