//! Creates or upgrades the store's state tables (`ca-notify migrate`), or prints what that
//! would run for a DBA (`ca-notify migrate --print`).
//!
//! SQLite migrates itself whenever the file is opened, so `migrate` opens it and reports
//! the version. Snowflake's tables are created by [`SnowflakeStore::migrate`], which every
//! run also calls first unless `snowflake.auto_migrate` is off; the printed script is the
//! same statements, in the same order, plus the GRANTs a service role needs to run without
//! `CREATE TABLE` (docs/store-snowflake.md, "Schema").
//!
//! [`SnowflakeStore::migrate`]: ca_notify_adapter_snowflake::SnowflakeStore::migrate

use crate::compose::Store;
use crate::config::{JobConfig, StoreKind};
use crate::JobError;

/// Creates or upgrades the configured store's state tables; one line saying what was
/// done.
///
/// # Errors
/// [`JobError::Config`] for settings that cannot be used, [`JobError::Store`] when the
/// store refuses (no `CREATE TABLE` grant, a newer schema, unreachable).
pub async fn migrate(config: &JobConfig) -> Result<String, JobError> {
    match Store::open(config).await? {
        Store::Sqlite(store) => {
            let report = store
                .check()
                .await
                .map_err(|e| JobError::Store(format!("sqlite: {e}")))?;
            Ok(format!(
                "sqlite {}: state schema v{} (SQLite migrates itself when opened)",
                report.path.display(),
                report.schema_version
            ))
        }
        Store::Snowflake(store) => {
            let report = store
                .migrate()
                .await
                .map_err(|e| JobError::Store(format!("snowflake: {e}")))?;
            Ok(format!("snowflake: {report}"))
        }
    }
}

/// What `migrate` would run, for a DBA: the Snowflake DDL and records in order, then the
/// GRANTs for `snowflake.role`. Needs no connection.
///
/// # Errors
/// [`JobError::Config`] naming the key of an unusable name.
pub fn migration_script(config: &JobConfig) -> Result<String, JobError> {
    match config.store.kind {
        StoreKind::Sqlite => Ok(format!(
            "-- store.kind = sqlite: {} creates and migrates its own tables when it is opened;\n-- there is nothing for a DBA to run. `ca-notify migrate` opens it now.",
            config.store.path.display()
        )),
        StoreKind::Snowflake => {
            let sf = config
                .snowflake
                .config(config.source.table(), config.worker_id())?;
            Ok(sf.migration_sql()?)
        }
    }
}
