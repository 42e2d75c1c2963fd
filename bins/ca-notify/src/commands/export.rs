//! `ca-notify export FILE.csv`: one row per record, no phone numbers.

use std::collections::HashMap;
use std::path::Path;

use crate::compose;
use crate::exit::{self, Failure};
use crate::settings::{AppConfig, StoreKind};

/// Writes the outcomes of every record in the SQLite store.
///
/// # Errors
/// Exit code 5 when the store cannot be read or the file written.
pub async fn execute(
    config_path: Option<&Path>,
    env: &HashMap<String, String>,
    file: &Path,
) -> Result<(), Failure> {
    let config = AppConfig::load(config_path, env)?;
    if config.store.kind != StoreKind::Sqlite {
        return Err(Failure::new(
            exit::CONFIG,
            "export reads the SQLite store only (store.kind = \"sqlite\"); query Snowflake's state table directly",
        ));
    }
    let store = compose::open_sqlite(&config).await?;
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
