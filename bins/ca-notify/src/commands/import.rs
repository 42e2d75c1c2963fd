//! `ca-notify import FILE.csv`: loads recipients into the SQLite store, all or nothing,
//! refusing ids the store already holds (the message lists their lines).

use std::collections::HashMap;
use std::path::Path;

use ca_notify_job::JobConfig;

use crate::exit::{self, Failure};
use crate::progress::ProgressObserver;

/// Imports the file in one transaction and prints the counts.
///
/// # Errors
/// Exit code 7 when the file is rejected (with its line numbers and reason), 5 when the
/// store cannot be opened, 2 when the store is not SQLite.
pub async fn execute(
    config_path: Option<&Path>,
    env: &HashMap<String, String>,
    file: &Path,
) -> Result<(), Failure> {
    let config = JobConfig::load(config_path, env)?;
    let store = ca_notify_job::compose::sqlite_only(
        &config,
        "import loads the SQLite store only; load Snowflake with its own tools",
    )
    .await?;
    let spinner = ProgressObserver::spinner(&format!("importing {}", file.display()));
    let result = ca_notify_adapter_sqlite::import_csv(&store, file).await;
    spinner.finish();
    let report = result.map_err(|e| {
        Failure::new(
            exit::INPUT,
            format!("import rejected {}: {e}", file.display()),
        )
    })?;
    println!(
        "Imported {} recipients from {} into {}.",
        report.imported,
        file.display(),
        store.path().display()
    );
    Ok(())
}
