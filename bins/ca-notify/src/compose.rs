//! The composition root: turns the configuration into the pipeline's settings and the
//! adapters it names. Only this module knows which concrete adapter backs which port.

use std::sync::Arc;
use std::time::Duration;

use ca_notify_adapter_snowflake::{SnowflakeAuth, SnowflakeConfig, SnowflakeStore};
use ca_notify_adapter_sqlite::{SqliteConfig, SqliteStore};
use ca_notify_adapter_twilio::{LineTypePolicy, TwilioConfig};
use ca_notify_adapter_verification::{VerificationClient, VerificationConfig};
use ca_notify_domain::{Backoff, DateWindow, DedupSecret, PhoneParser, RetryBudget, TestType};
use ca_notify_pipeline::Settings;
use ca_notify_ports::{PhoneSource, PhoneValidator, ResultSink, SmsIssuer};
use secrecy::SecretString;
use tokio_util::sync::CancellationToken;

use crate::exit::{self, Failure};
use crate::settings::{AppConfig, StoreKind, ValidatorKind};

/// The pipeline's settings from `pipeline.*`, checked.
///
/// # Errors
/// A configuration failure naming the key and the allowed range.
pub fn pipeline_settings(config: &AppConfig, until_drained: bool) -> Result<Settings, Failure> {
    let p = &config.pipeline;
    let settings = Settings {
        epoch_count: p.epoch_count,
        batch_size: p.batch_size,
        epoch_size: p.epoch_size,
        validation_concurrency: p.validation_concurrency,
        max_batches_in_flight: p.max_batches_in_flight,
        deadline: Duration::from_secs(p.deadline_secs),
        lease_margin: Duration::from_secs(p.lease_margin_secs),
        min_epoch_duration: (p.min_epoch_duration_secs > 0)
            .then(|| Duration::from_secs(p.min_epoch_duration_secs)),
        until_drained,
        retry_budget: RetryBudget {
            max_item_retries: p.max_item_retries,
        },
        issue_retry_backoff: Backoff::default(),
        date_window: DateWindow {
            past_days: p.date_window_days,
        },
    };
    settings.validate().map_err(|e| {
        // The engine names its own fields; durations are configured in seconds here.
        let key = match e.key() {
            "pipeline.deadline" => "pipeline.deadline_secs",
            "pipeline.min_epoch_duration" => "pipeline.min_epoch_duration_secs",
            other => other,
        };
        let e = ca_notify_ports::ConfigError {
            value: None,
            ..e.clone().with_key(key.to_owned())
        };
        Failure::new(exit::CONFIG, format!("configuration: {e}"))
    })?;
    Ok(settings)
}

/// The phone parser for `source.phone_region`.
///
/// # Errors
/// A configuration failure when the region is unknown.
pub fn phone_parser(config: &AppConfig) -> Result<PhoneParser, Failure> {
    PhoneParser::new(&config.source.phone_region).map_err(|e| {
        Failure::new(
            exit::CONFIG,
            format!("configuration: source.phone_region: {e}"),
        )
    })
}

/// The dedup secret from `dedup.secret`.
///
/// # Errors
/// A configuration failure when it is missing or too short.
pub fn dedup_secret(config: &AppConfig) -> Result<DedupSecret, Failure> {
    let secret = config
        .dedup
        .secret
        .clone()
        .ok_or_else(|| Failure::new(exit::CONFIG, "configuration: dedup.secret is required"))?;
    DedupSecret::new(secret)
        .map_err(|e| Failure::new(exit::CONFIG, format!("configuration: dedup.secret: {e}")))
}

/// A token cancelled by SIGINT or SIGTERM: the pipeline then stops acquiring, finishes
/// its in-flight batches and releases the rest.
pub fn shutdown_on_signals() -> CancellationToken {
    let token = CancellationToken::new();
    let trigger = token.clone();
    tokio::spawn(async move {
        wait_for_signal().await;
        tracing::warn!("Shutdown signal received; finishing in-flight batches.");
        trigger.cancel();
    });
    token
}

#[cfg(unix)]
async fn wait_for_signal() {
    use tokio::signal::unix::{signal, SignalKind};
    match signal(SignalKind::terminate()) {
        Ok(mut term) => {
            tokio::select! {
                _ = tokio::signal::ctrl_c() => {}
                _ = term.recv() => {}
            }
        }
        Err(_) => {
            let _ = tokio::signal::ctrl_c().await;
        }
    }
}

#[cfg(not(unix))]
async fn wait_for_signal() {
    let _ = tokio::signal::ctrl_c().await;
}

/// The four ports, backed by the adapters the configuration names.
pub struct Adapters {
    /// Where recipients come from.
    pub source: Arc<dyn PhoneSource>,
    /// Where outcomes go (the same store).
    pub sink: Arc<dyn ResultSink>,
    /// The phone check.
    pub validator: Arc<dyn PhoneValidator>,
    /// The verification server.
    pub issuer: Arc<dyn SmsIssuer>,
}

impl Adapters {
    /// Builds every adapter for a run.
    ///
    /// # Errors
    /// A configuration failure naming the key, or a store failure.
    pub async fn from_config(config: &AppConfig) -> Result<Self, Failure> {
        let store = open_store(config).await?;
        Ok(Self {
            source: store.source(),
            sink: store.sink(),
            validator: validator(config)?,
            issuer: Arc::new(verification_client(config)?),
        })
    }
}

/// The configured store.
#[derive(Clone)]
pub enum Store {
    /// The embedded SQLite file.
    Sqlite(Arc<SqliteStore>),
    /// Snowflake.
    Snowflake(Arc<SnowflakeStore>),
}

impl Store {
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
}

/// Opens the configured store.
///
/// # Errors
/// A configuration failure (bad identifiers, missing Snowflake settings) or a store
/// failure (unreachable, login refused, missing table).
pub async fn open_store(config: &AppConfig) -> Result<Store, Failure> {
    match config.store.kind {
        StoreKind::Sqlite => Ok(Store::Sqlite(Arc::new(open_sqlite(config).await?))),
        StoreKind::Snowflake => {
            let sf = snowflake_config(config)?;
            let store = SnowflakeStore::connect(sf)
                .await
                .map_err(|e| Failure::new(exit::STORE, format!("snowflake: {e}")))?;
            Ok(Store::Snowflake(Arc::new(store)))
        }
    }
}

/// The SQLite store, for the commands that work on it alone (`import`, `export`).
///
/// # Errors
/// A configuration failure (with `why_not` when `store.kind` is not `sqlite`) or a store
/// failure.
pub async fn sqlite_only(
    config_path: Option<&std::path::Path>,
    env: &std::collections::HashMap<String, String>,
    why_not: &str,
) -> Result<SqliteStore, Failure> {
    let config = AppConfig::load(config_path, env)?;
    if config.store.kind != StoreKind::Sqlite {
        return Err(Failure::new(
            exit::CONFIG,
            format!("{why_not} (store.kind = \"snowflake\")"),
        ));
    }
    open_sqlite(&config).await
}

/// Opens (creating if needed) the SQLite store.
///
/// # Errors
/// A configuration or store failure.
pub async fn open_sqlite(config: &AppConfig) -> Result<SqliteStore, Failure> {
    let sqlite = SqliteConfig {
        path: config.store.path.clone(),
        table: source_table(config),
        worker_id: config.worker_id(),
        ..SqliteConfig::default()
    };
    SqliteStore::open(sqlite).await.map_err(|e| {
        Failure::new(
            exit::STORE,
            format!("sqlite store {}: {e}", config.store.path.display()),
        )
    })
}

fn optional_column(name: &str) -> Option<String> {
    let name = name.trim();
    (!name.is_empty()).then(|| name.to_owned())
}

fn source_table(config: &AppConfig) -> ca_notify_ports::SourceTable {
    let s = &config.source;
    ca_notify_ports::SourceTable {
        test_date_column: optional_column(&s.test_date_column),
        symptom_date_column: optional_column(&s.symptom_date_column),
        test_type_column: optional_column(&s.test_type_column),
        ..ca_notify_ports::SourceTable::new(&s.table, &s.id_column, &s.phone_column)
    }
}

fn snowflake_config(config: &AppConfig) -> Result<SnowflakeConfig, Failure> {
    let sf = &config.snowflake;
    let auth = if let Some(password) = &sf.password {
        SnowflakeAuth::Password(password.clone())
    } else {
        let pem = match (&sf.private_key, &sf.private_key_path) {
            (Some(pem), _) => pem.clone(),
            (None, Some(path)) => std::fs::read_to_string(path)
                .map(SecretString::from)
                .map_err(|e| {
                    Failure::new(
                        exit::CONFIG,
                        format!("configuration: snowflake.private_key_path: cannot read {}: {e}", path.display()),
                    )
                })?,
            (None, None) => {
                return Err(Failure::new(
                    exit::CONFIG,
                    "configuration: snowflake.password or snowflake.private_key(_path) is required for store.kind = snowflake",
                ))
            }
        };
        SnowflakeAuth::KeyPair {
            private_key_pem: pem,
            passphrase: sf.private_key_passphrase.clone(),
        }
    };
    let built = SnowflakeConfig {
        account: sf.account.clone(),
        user: sf.user.clone(),
        auth,
        warehouse: sf.warehouse.clone(),
        database: sf.database.clone(),
        schema: sf.schema.clone(),
        role: sf.role.clone(),
        base_url: sf.base_url.clone(),
        table: source_table(config),
        state_table: sf.state_table.clone(),
        worker_id: config.worker_id(),
        lock_timeout_secs: sf.lock_timeout_secs,
        statement_timeout_secs: sf.statement_timeout_secs,
    };
    built
        .validate()
        .map_err(|e| Failure::new(exit::CONFIG, format!("configuration: {e}")))?;
    Ok(built)
}

/// The Twilio settings, when Twilio is the configured validator.
///
/// # Errors
/// A configuration failure when credentials are missing.
pub fn twilio_config(config: &AppConfig) -> Result<Option<TwilioConfig>, Failure> {
    if config.validator_kind() != ValidatorKind::Twilio {
        return Ok(None);
    }
    let t = &config.twilio;
    let (Some(sid), Some(token)) = (&t.account_sid, &t.auth_token) else {
        return Err(Failure::new(
            exit::CONFIG,
            "configuration: twilio.account_sid and twilio.auth_token are required for validator.kind = twilio",
        ));
    };
    Ok(Some(TwilioConfig {
        base_url: t.base_url.clone(),
        account_sid: sid.clone(),
        auth_token: token.clone(),
        concurrency: t.concurrency,
        requests_per_second: t.requests_per_second,
        workers: config.workers,
        request_timeout: Duration::from_secs(t.request_timeout_secs),
        policy: LineTypePolicy {
            accept_fixed_voip: t.fixed_voip_sms_capable,
            accept_undetermined: t.unknown_sms_capable,
            ..LineTypePolicy::default()
        },
        ..TwilioConfig::default()
    }))
}

/// The configured phone validator (Twilio behind the offline pre-filter, or offline).
///
/// # Errors
/// A configuration failure naming the key.
pub fn validator(config: &AppConfig) -> Result<Arc<dyn PhoneValidator>, Failure> {
    ca_notify_adapter_twilio::phone_validator(twilio_config(config)?)
        .map_err(|e| Failure::new(exit::CONFIG, format!("configuration: {e}")))
}

/// The verification server client.
///
/// # Errors
/// A configuration failure naming the key.
pub fn verification_client(config: &AppConfig) -> Result<VerificationClient, Failure> {
    let v = &config.verification;
    let missing =
        |key: &str| Failure::new(exit::CONFIG, format!("configuration: {key} is required"));
    let test_type = TestType::parse(&v.test_type).ok_or_else(|| {
        Failure::new(
            exit::CONFIG,
            format!(
                "configuration: verification.test_type = {:?} is not a test type; allowed: confirmed, likely, negative, user-report",
                v.test_type
            ),
        )
    })?;
    let client_config = VerificationConfig {
        test_type,
        sms_template_label: v.sms_template_label.clone(),
        requests_per_minute: v.requests_per_minute,
        workers: config.workers,
        connect_timeout: Duration::from_secs(v.connect_timeout_secs),
        request_timeout: Duration::from_secs(v.request_timeout_secs),
        ..VerificationConfig::new(
            v.base_url
                .clone()
                .ok_or_else(|| missing("verification.base_url"))?,
            v.api_key
                .clone()
                .ok_or_else(|| missing("verification.api_key"))?,
        )
    };
    VerificationClient::new(client_config)
        .map_err(|e| Failure::new(exit::CONFIG, format!("configuration: {e}")))
}

impl Store {
    /// `SELECT 1` and the configured tables and columns, as one line for `check`.
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
