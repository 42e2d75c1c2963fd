//! The operator's commands (`status`, `requeue`, `reconcile`, `purge`, `completions`,
//! `man`): one dispatch, and the one way they open the configured store's admin port.

use std::collections::HashMap;
use std::path::Path;
use std::sync::Arc;

use ca_notify_job::{JobConfig, Store};
use ca_notify_ports::StoreAdmin;

use crate::cli::OperatorCommand;
use crate::commands;
use crate::exit::Failure;

/// Runs one operator command.
///
/// # Errors
/// The command's failure and exit code.
pub async fn execute(
    config_path: Option<&Path>,
    env: &HashMap<String, String>,
    command: OperatorCommand,
) -> Result<(), Failure> {
    match command {
        OperatorCommand::Status { json } => {
            commands::status::execute(&open(config_path, env).await?.1, json).await
        }
        OperatorCommand::Requeue(args) => {
            // The selection is read first: bad input costs no connection to the store.
            let selection = commands::requeue::selection(&args)?;
            let admin = open(config_path, env).await?.1;
            commands::requeue::execute(&admin, &selection, &args).await
        }
        OperatorCommand::Reconcile {
            dry_run,
            deadline_secs,
            json,
        } => {
            let (config, admin) = open(config_path, env).await?;
            commands::reconcile::execute(&config, &admin, dry_run, deadline_secs, json).await
        }
        OperatorCommand::Purge {
            older_than,
            yes,
            json,
        } => {
            let (config, admin) = open(config_path, env).await?;
            commands::purge::execute(&config, &admin, older_than, yes, json).await
        }
        OperatorCommand::Report { html, days, json } => {
            commands::report::execute(&open(config_path, env).await?.1, &html, days, json).await
        }
        OperatorCommand::Completions { shell } => commands::completions::completions(shell),
        OperatorCommand::Man => commands::completions::man(),
    }
}

/// The configuration and the configured store's admin port.
async fn open(
    config_path: Option<&Path>,
    env: &HashMap<String, String>,
) -> Result<(JobConfig, Arc<dyn StoreAdmin>), Failure> {
    let config = JobConfig::load(config_path, env)?;
    let store = Store::open(&config).await?;
    Ok((config, store.admin()))
}

/// Prints `value` as one JSON document on standard output.
pub fn print_json(value: &impl serde::Serialize) -> Result<(), Failure> {
    let text = serde_json::to_string_pretty(value)
        .map_err(|e| Failure::new(crate::exit::INTERNAL, format!("cannot write JSON: {e}")))?;
    println!("{text}");
    Ok(())
}
