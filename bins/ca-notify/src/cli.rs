//! The command line: what an operator at a state health department types.

use std::path::PathBuf;

use clap::{Parser, Subcommand};

use crate::telemetry::LogFormat;

/// Texts a verification code to each person with a positive COVID-19 test, exactly once,
/// so they can warn their contacts through Exposure Notifications.
#[derive(Debug, Parser)]
#[command(
    name = "ca-notify",
    version,
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
    /// Keep running until nothing is left to claim (bulk backfills), in stretches of at
    /// most pipeline.deadline_secs each, or until --deadline or a signal.
    #[arg(long, conflicts_with = "dry_run")]
    pub until_drained: bool,
    /// Start nothing after this many seconds: the run's deadline instead of
    /// pipeline.deadline_secs, or with --until-drained the whole run's.
    #[arg(long, value_name = "SECS", conflicts_with = "dry_run",
          value_parser = clap::value_parser!(u64).range(1..=86_400))]
    pub deadline: Option<u64>,
    /// Read (without claiming) a sample of what the next run would take, validate it
    /// offline and print what would happen. Writes nothing, texts no one, spends nothing.
    #[arg(long)]
    pub dry_run: bool,
    /// Also write the summary as JSON to this file.
    #[arg(long, value_name = "PATH")]
    pub summary_json: Option<PathBuf>,
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
