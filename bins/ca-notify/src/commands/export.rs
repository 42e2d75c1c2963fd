//! `ca-notify export FILE.csv|-`: one row per record from either store, no phone
//! numbers, spreadsheet formulas neutralised (`ca_notify_job::export`).

use std::collections::HashMap;
use std::path::Path;

use ca_notify_job::export::{export_csv, Destination};
use ca_notify_job::{JobConfig, Store};

use crate::exit::{self, Failure};

/// Writes the outcomes of every record in the configured store.
///
/// # Errors
/// Exit code 5 when the store cannot be read or the file written.
pub async fn execute(
    config_path: Option<&Path>,
    env: &HashMap<String, String>,
    file: &Path,
    json: bool,
) -> Result<(), Failure> {
    let config = JobConfig::load(config_path, env)?;
    let store = Store::open(&config).await?;
    let destination = Destination::parse(file);
    let report = export_csv(store.admin().as_ref(), &destination)
        .await
        .map_err(|e| Failure::new(exit::STORE, format!("export to {destination} failed: {e}")))?;
    let summary = if json {
        serde_json::to_string(&report).unwrap_or_default()
    } else {
        format!("Exported {} records to {destination}.", report.rows)
    };
    // The CSV owns standard output when it goes there.
    if destination == Destination::Stdout {
        eprintln!("{summary}");
    } else {
        println!("{summary}");
    }
    Ok(())
}
