//! Builds the adapters a configuration names. Only this module knows which concrete
//! adapter backs which port.

use std::sync::Arc;

use ca_notify_adapter_snowflake::SnowflakeStore;
use ca_notify_adapter_sqlite::{SqliteConfig, SqliteStore};
use ca_notify_domain::{DedupSecret, PhoneParser};
use ca_notify_ports::config::ConfigError;
use ca_notify_ports::{PhoneSource, PhoneValidator, ResultSink, RunId, RunLog, StoreAdmin};

use crate::config::{JobConfig, StoreKind};
use crate::JobError;

/// The configured store.
#[derive(Clone)]
pub enum Store {
    /// The embedded SQLite file.
    Sqlite(Arc<SqliteStore>),
    /// Snowflake.
    Snowflake(Arc<SnowflakeStore>),
}

impl Store {
    /// Opens the configured store.
    ///
    /// # Errors
    /// [`JobError::Config`] (bad identifiers, missing Snowflake settings) or
    /// [`JobError::Store`] (unreachable, login refused, missing table).
    pub async fn open(config: &JobConfig) -> Result<Self, JobError> {
        Self::open_for(config, None).await
    }

    /// Opens the configured store for one run: Snowflake's session then carries the run's
    /// id in its `QUERY_TAG` (unless `snowflake.run_id` names one), so a DBA finds every
    /// statement of the run under the id its log lines, summary and runs-table row carry.
    ///
    /// # Errors
    /// As [`Store::open`].
    pub async fn open_for_run(config: &JobConfig, run_id: &RunId) -> Result<Self, JobError> {
        Self::open_for(config, Some(run_id)).await
    }

    async fn open_for(config: &JobConfig, run_id: Option<&RunId>) -> Result<Self, JobError> {
        match config.store.kind {
            StoreKind::Sqlite => Ok(Self::Sqlite(Arc::new(open_sqlite(config).await?))),
            StoreKind::Snowflake => {
                let mut sf = config
                    .snowflake
                    .config(config.source.table(), config.worker_id())?;
                if sf.run_id.is_none() {
                    sf.run_id = run_id.map(ToString::to_string);
                }
                let store = SnowflakeStore::connect(sf)
                    .await
                    .map_err(|e| JobError::Store(format!("snowflake: {e}")))?;
                Ok(Self::Snowflake(Arc::new(store)))
            }
        }
    }

    /// What a run does before its first claim: the schema check. SQLite migrated itself
    /// when it opened; Snowflake reads its schema version (and whether anything waits) in
    /// one statement and migrates when `snowflake.auto_migrate` allows, or stops with a
    /// message naming `ca-notify migrate`. When its schema is current and nothing waits,
    /// that one statement records `run` as finished having found nothing to claim: the
    /// whole cost of an idle run (docs/store-snowflake.md, "Cost").
    ///
    /// # Errors
    /// [`JobError::Store`] naming the state table and what to do.
    pub async fn prepare_for_run(
        &self,
        config: &JobConfig,
        run: &ca_notify_ports::RunStart,
    ) -> Result<(), JobError> {
        match self {
            Self::Sqlite(_) => Ok(()),
            Self::Snowflake(s) => s
                .prepare_for_run(config.snowflake.auto_migrate, Some(run))
                .await
                .map(|readiness| {
                    if readiness.found_version < readiness.version {
                        tracing::info!(
                            from = readiness.found_version,
                            to = readiness.version,
                            "Migrated the Snowflake state tables before the run."
                        );
                    }
                })
                .map_err(|e| JobError::Store(format!("snowflake: {e}"))),
        }
    }

    /// The store as a phone source.
    pub fn source(&self) -> Arc<dyn PhoneSource> {
        match self {
            Self::Sqlite(s) => Arc::clone(s) as Arc<dyn PhoneSource>,
            Self::Snowflake(s) => Arc::clone(s) as Arc<dyn PhoneSource>,
        }
    }

    /// The store as a result sink.
    pub fn sink(&self) -> Arc<dyn ResultSink> {
        match self {
            Self::Sqlite(s) => Arc::clone(s) as Arc<dyn ResultSink>,
            Self::Snowflake(s) => Arc::clone(s) as Arc<dyn ResultSink>,
        }
    }

    /// The store's runs table.
    pub fn run_log(&self) -> Arc<dyn RunLog> {
        match self {
            Self::Sqlite(s) => Arc::clone(s) as Arc<dyn RunLog>,
            Self::Snowflake(s) => Arc::clone(s) as Arc<dyn RunLog>,
        }
    }

    /// The store as the operator's port (`status`, `requeue`, `purge`, `export`, …).
    pub fn admin(&self) -> Arc<dyn StoreAdmin> {
        match self {
            Self::Sqlite(s) => Arc::clone(s) as Arc<dyn StoreAdmin>,
            Self::Snowflake(s) => Arc::clone(s) as Arc<dyn StoreAdmin>,
        }
    }

    /// `SELECT 1` and the configured tables and columns, as one line.
    ///
    /// # Errors
    /// What failed, as one line.
    pub async fn check(&self) -> Result<String, String> {
        match self {
            Self::Sqlite(s) => s
                .check()
                .await
                .map(|r| {
                    format!(
                        "sqlite {} at {} (state schema v{}; source table {} with columns {})",
                        r.sqlite_version,
                        r.path.display(),
                        r.schema_version,
                        r.source_table,
                        r.source_columns.join(", ")
                    )
                })
                .map_err(|e| e.to_string()),
            Self::Snowflake(s) => s
                .check()
                .await
                .map(|r| {
                    format!(
                        "snowflake: source table {} ({} columns found); state table {} (schema v{}, this build v{}); {} records pending",
                        r.source_table,
                        r.source_columns.len(),
                        r.state_table,
                        r.schema_version.map_or_else(|| "none yet".to_owned(), |v| v.to_string()),
                        r.latest_schema_version,
                        r.pending_records.map_or_else(|| "unknown".to_owned(), |n| n.to_string()),
                    )
                })
                .map_err(|e| e.to_string()),
        }
    }
}

/// The SQLite store, for the work that needs it alone (CSV import and export); `why_not`
/// says why another store will not do.
///
/// # Errors
/// [`JobError::Config`] naming `store.kind` when it is not `sqlite`, or a store failure.
pub async fn sqlite_only(config: &JobConfig, why_not: &str) -> Result<SqliteStore, JobError> {
    if config.store.kind != StoreKind::Sqlite {
        return Err(ConfigError::new("store.kind", why_not)
            .with_value("\"snowflake\"")
            .into());
    }
    open_sqlite(config).await
}

/// Opens (creating if needed) the SQLite store.
async fn open_sqlite(config: &JobConfig) -> Result<SqliteStore, JobError> {
    let sqlite = SqliteConfig {
        path: config.store.path.clone(),
        table: config.source.table(),
        worker_id: config.worker_id(),
        ..SqliteConfig::default()
    };
    SqliteStore::open(sqlite)
        .await
        .map_err(|e| JobError::Store(format!("sqlite store {}: {e}", config.store.path.display())))
}

/// The configured phone validator (Twilio behind the offline pre-filter, or offline).
///
/// # Errors
/// A [`ConfigError`] naming the key.
pub fn validator(config: &JobConfig) -> Result<Arc<dyn PhoneValidator>, ConfigError> {
    ca_notify_adapter_twilio::phone_validator(config.twilio_config()?)
}

/// The phone parser for `source.phone_region`.
///
/// # Errors
/// A [`ConfigError`] when the region is unknown.
pub fn phone_parser(config: &JobConfig) -> Result<PhoneParser, ConfigError> {
    PhoneParser::new(&config.source.phone_region)
        .map_err(|e| ConfigError::new("source.phone_region", e.to_string()))
}

/// The dedup secret from `dedup.secret`.
///
/// # Errors
/// A [`ConfigError`] when it is missing or too short.
pub fn dedup_secret(config: &JobConfig) -> Result<DedupSecret, ConfigError> {
    let secret = config
        .dedup
        .secret
        .clone()
        .ok_or_else(|| ConfigError::new("dedup.secret", "is required"))?;
    DedupSecret::new(secret).map_err(|e| ConfigError::secret("dedup.secret", e.to_string()))
}
