//! `ca-notify export FILE.csv`: one row per record, no phone numbers, spreadsheet formulas
//! neutralised.

use std::collections::HashMap;
use std::path::Path;

use ca_notify_job::JobConfig;

use crate::exit::{self, Failure};

/// Writes the outcomes of every record in the SQLite store.
///
/// # Errors
/// Exit code 5 when the store cannot be read or the file written.
pub async fn execute(
    config_path: Option<&Path>,
    env: &HashMap<String, String>,
    file: &Path,
) -> Result<(), Failure> {
    let config = JobConfig::load(config_path, env)?;
    let store = ca_notify_job::compose::sqlite_only(
        &config,
        "export reads the SQLite store only; query Snowflake's state table directly",
    )
    .await?;
    let report = ca_notify_adapter_sqlite::export_csv(&store, file)
        .await
        .map_err(|e| {
            Failure::new(
                exit::STORE,
                format!("export to {} failed: {e}", file.display()),
            )
        })?;
    println!("Exported {} records to {}.", report.rows, file.display());
    Ok(())
}
