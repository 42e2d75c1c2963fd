//! `ca-notify check`: validates the configuration and reaches every configured system
//! without sending anything, then prints a table of what is OK.

use std::collections::HashMap;
use std::path::Path;

use ca_notify_job::check::{run_checks, Checked};
use ca_notify_job::JobConfig;

use crate::exit::{self, Failure};

/// Runs every check and prints the table.
///
/// # Errors
/// The exit code of the first failed check.
pub async fn execute(
    config_path: Option<&Path>,
    env: &HashMap<String, String>,
    print_config: bool,
) -> Result<(), Failure> {
    let config = JobConfig::load(config_path, env)?;
    if print_config {
        println!("# Effective configuration (secrets redacted)");
        println!("{}", config.redacted_toml());
    }
    let rows = run_checks(&config).await;
    let width = rows.iter().map(|r| r.what.label().len()).max().unwrap_or(0);
    for r in &rows {
        let (status, detail) = match &r.result {
            Ok(detail) => ("OK", detail),
            Err(detail) => ("FAIL", detail),
        };
        println!("{:<width$}  {status:<4}  {detail}", r.what.label());
    }
    match rows.iter().find(|r| r.result.is_err()) {
        None => Ok(()),
        Some(failed) => Err(Failure::new(
            code(failed.what),
            format!(
                "check failed: {}: {}",
                failed.what.label(),
                failed.result.as_ref().err().map_or("", String::as_str)
            ),
        )),
    }
}

fn code(what: Checked) -> u8 {
    match what {
        Checked::Configuration => exit::CONFIG,
        Checked::Store => exit::STORE,
        _ => exit::UNAUTHORIZED,
    }
}
