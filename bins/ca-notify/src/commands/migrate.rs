//! `ca-notify migrate`: creates or upgrades the store's state tables, or (`--print`)
//! writes the statements and GRANTs for a DBA to run, without connecting.

use std::collections::HashMap;
use std::path::Path;

use ca_notify_job::JobConfig;

use crate::exit::Failure;

/// Migrates (or prints the migration) and says what happened.
///
/// # Errors
/// A configuration failure (exit 2) or a store failure (exit 5).
pub async fn execute(
    config_path: Option<&Path>,
    env: &HashMap<String, String>,
    print: bool,
) -> Result<(), Failure> {
    let config = JobConfig::load(config_path, env)?;
    if print {
        println!("{}", ca_notify_job::migrate::migration_script(&config)?);
    } else {
        println!("{}", ca_notify_job::migrate::migrate(&config).await?);
    }
    Ok(())
}
