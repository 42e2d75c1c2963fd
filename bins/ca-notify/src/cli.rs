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

    /// Log line format on standard error: `text` (human-readable), `json` (one object per
    /// line), or `auto`: text on a terminal, JSON otherwise.
    #[arg(long, global = true, value_enum, default_value_t = LogFormat::Auto)]
    pub log_format: LogFormat,

    /// More log lines: `-v` debug, `-vv` trace (overrides RUST_LOG).
    #[arg(short, long, global = true, action = clap::ArgAction::Count, conflicts_with = "quiet")]
    pub verbose: u8,

    /// Fewer log lines: `-q` warnings and errors, `-qq` errors only (overrides RUST_LOG).
    #[arg(short, long, global = true, action = clap::ArgAction::Count)]
    pub quiet: u8,

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
    /// Writes one row per record, from either store (id, sent, outcome, reason, attempts,
    /// run_id, first_attempt_at, processed_at; no phone numbers).
    Export {
        /// The CSV file to write (replaced atomically); `-` for standard output.
        file: PathBuf,
        /// Print the summary as JSON (on standard error when the CSV goes to standard output).
        #[arg(long)]
        json: bool,
    },
    /// Validates the configuration and reaches every configured system without sending.
    Check {
        /// Also print the effective configuration, secrets redacted.
        #[arg(long)]
        print_config: bool,
    },
    /// Creates or upgrades the store's state tables (every run also does, unless
    /// snowflake.auto_migrate is off).
    Migrate {
        /// Print the statements and the GRANTs for a DBA instead of running them.
        #[arg(long)]
        print: bool,
    },
    #[command(flatten)]
    Operator(OperatorCommand),
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

/// The operator's commands (issue 17), one arm each so merges stay local.
#[derive(Debug, Subcommand)]
pub enum OperatorCommand {
    /// How big and how old the backlog is: pending, claimed (with lease expiry), sent,
    /// not sent by reason, unconfirmed, deferred; the oldest pending record's age.
    Status {
        /// Print JSON instead of text.
        #[arg(long)]
        json: bool,
    },
    /// Puts finished, not-texted records back to pending, by id, by reason or by outcome.
    /// Shows what it would do; writes only with --yes. Never requeues a texted record.
    Requeue(RequeueArgs),
    /// Asks the verification server whether the codes of `unconfirmed` records were
    /// claimed; a claimed code proves the text, so the record is written sent
    /// (`confirmed_by_claim`). Paced within the issuing budget; stops at the deadline.
    Reconcile {
        /// Ask, but write nothing.
        #[arg(long)]
        dry_run: bool,
        /// Seconds before it stops asking (default: pipeline.deadline_secs).
        #[arg(long, value_name = "SECS")]
        deadline_secs: Option<u64>,
        /// Print JSON instead of text.
        #[arg(long)]
        json: bool,
    },
    /// Erases the phone numbers (and dates) of records finished more than DAYS days ago,
    /// keeping the dedup key and the outcome. Shows counts; erases only with --yes.
    Purge {
        /// Erase records finished more than this many days ago (at least retention.days).
        #[arg(long, value_name = "DAYS")]
        older_than: u32,
        /// Erase (without it, only count).
        #[arg(long)]
        yes: bool,
        /// Print JSON instead of text.
        #[arg(long)]
        json: bool,
    },
    /// Writes one self-contained HTML page for the program's manager: texts sent per day,
    /// not sent by reason, backlog, time from test result to text (median, 90th percentile).
    Report {
        /// The page to write (replaced).
        #[arg(long, value_name = "FILE")]
        html: PathBuf,
        /// How many days, up to today (UTC).
        #[arg(long, default_value_t = 28, value_parser = clap::value_parser!(u32).range(1..=366))]
        days: u32,
        /// Also print the figures as JSON.
        #[arg(long)]
        json: bool,
    },
    /// Writes a shell completion script to standard output.
    Completions {
        /// The shell.
        #[arg(value_enum)]
        shell: clap_complete::Shell,
    },
    /// Writes the man page (roff) to standard output: `ca-notify man > ca-notify.1`.
    Man,
}

/// `requeue` options: exactly one selection.
#[derive(Debug, Clone, clap::Args)]
#[command(group(clap::ArgGroup::new("selection").required(true).args(["ids", "ids_file", "reason", "outcome"])))]
pub struct RequeueArgs {
    /// Record ids, comma-separated.
    #[arg(long, value_delimiter = ',', num_args = 1..)]
    pub ids: Option<Vec<String>>,
    /// A file of record ids, one per line (`#` comments and blank lines skipped).
    #[arg(long, value_name = "FILE")]
    pub ids_file: Option<PathBuf>,
    /// Every record not sent for this reason.
    #[arg(long, value_parser = parse_reason)]
    pub reason: Option<ca_notify_domain::NotSentKind>,
    /// Every record with this outcome.
    #[arg(long, value_enum)]
    pub outcome: Option<RequeueOutcome>,
    /// Write (without it, only count).
    #[arg(long)]
    pub yes: bool,
    /// Print JSON instead of text.
    #[arg(long)]
    pub json: bool,
}

/// The outcomes `requeue --outcome` selects.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum RequeueOutcome {
    /// Written `unconfirmed`: a code row exists, nobody knows whether the text went out.
    Unconfirmed,
}

/// A not-sent reason an operator may requeue (`unconfirmed` is an outcome).
fn parse_reason(text: &str) -> Result<ca_notify_domain::NotSentKind, String> {
    ca_notify_domain::NotSentKind::from_code(text)
        .filter(|k| *k != ca_notify_domain::NotSentKind::Unconfirmed)
        .ok_or_else(|| {
            let allowed: Vec<&str> = ca_notify_domain::NotSentKind::ALL
                .iter()
                .filter(|k| **k != ca_notify_domain::NotSentKind::Unconfirmed)
                .map(|k| k.code())
                .collect();
            format!(
                "unknown reason {text:?}; allowed: {} (and --outcome unconfirmed)",
                allowed.join(", ")
            )
        })
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
