//! Configuration: built-in defaults, then an optional TOML file, then the environment.
//!
//! Layers, lowest first: `defaults.toml` (compiled in) → `--config PATH` →
//! the seed's `EPOCH_COUNT` / `BATCH_SIZE` (aliases of `pipeline.epoch_count` /
//! `pipeline.batch_size`) → `CA_NOTIFY__SECTION__KEY`. Unknown keys are errors, so a typo
//! never silently falls back to a default. Every invalid value is reported with its key,
//! the problem and the allowed range; secret values are never echoed.

use std::collections::HashMap;
use std::fmt;
use std::path::{Path, PathBuf};

use config::{Config, Environment, File, FileFormat};
use secrecy::{ExposeSecret, SecretString};
use serde::{Deserialize, Serialize, Serializer};

const DEFAULTS: &str = include_str!("defaults.toml");

/// Seed variable names honoured as aliases, and the keys they stand for.
const SEED_ALIASES: &[(&str, &str)] = &[
    ("EPOCH_COUNT", "PIPELINE__EPOCH_COUNT"),
    ("BATCH_SIZE", "PIPELINE__BATCH_SIZE"),
];

/// The whole configuration.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct AppConfig {
    /// Workers sharing the outside rate budgets.
    pub workers: u32,
    /// This worker's name in the store's claim column (default: host name and process id).
    pub worker_id: Option<String>,
    /// Which store, and where.
    pub store: StoreSection,
    /// The recipients' source table and its columns.
    pub source: SourceSection,
    /// Snowflake connection (when `store.kind = "snowflake"`).
    #[serde(default)]
    pub snowflake: SnowflakeSection,
    /// Which phone validator.
    pub validator: ValidatorSection,
    /// Twilio Lookup (when the validator is `twilio`).
    pub twilio: TwilioSection,
    /// The verification server.
    pub verification: VerificationSection,
    /// Epochs, batches, deadline.
    pub pipeline: PipelineSection,
    /// The dedup key secret.
    #[serde(default)]
    pub dedup: DedupSection,
}

/// `store.*`
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct StoreSection {
    /// `sqlite` or `snowflake`.
    pub kind: StoreKind,
    /// The SQLite file.
    pub path: PathBuf,
}

/// Which store holds the recipients and the ledger.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "lowercase", try_from = "String")]
pub enum StoreKind {
    /// The embedded SQLite file (the default).
    Sqlite,
    /// Snowflake (production).
    Snowflake,
}

/// `source.*`
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct SourceSection {
    /// The recipients' table.
    pub table: String,
    /// The record id column.
    pub id_column: String,
    /// The phone column.
    pub phone_column: String,
    /// The test date column; empty when the table has none.
    pub test_date_column: String,
    /// The symptom onset date column; empty when the table has none.
    pub symptom_date_column: String,
    /// The test type column; empty when the table has none.
    pub test_type_column: String,
    /// Region of numbers written without a country code (ISO 3166 alpha-2).
    pub phone_region: String,
}

/// `snowflake.*`
#[derive(Debug, Clone, Default, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct SnowflakeSection {
    /// Account identifier (`orgname-account` or a locator).
    pub account: String,
    /// Login name.
    pub user: String,
    /// Password authentication.
    #[serde(serialize_with = "redact_option")]
    pub password: Option<SecretString>,
    /// Key-pair authentication: the PKCS#8 PEM private key.
    #[serde(serialize_with = "redact_option")]
    pub private_key: Option<SecretString>,
    /// Key-pair authentication: a file holding the PEM private key.
    pub private_key_path: Option<PathBuf>,
    /// Passphrase of an encrypted private key.
    #[serde(serialize_with = "redact_option")]
    pub private_key_passphrase: Option<SecretString>,
    /// Warehouse.
    pub warehouse: Option<String>,
    /// Database.
    pub database: String,
    /// Schema.
    pub schema: String,
    /// Role.
    pub role: Option<String>,
    /// Base URL override (fakesnow in tests, private link in production).
    pub base_url: Option<String>,
    /// The pipeline's own state table.
    pub state_table: String,
    /// `LOCK_TIMEOUT` for the session, so a stuck lock fails fast.
    pub lock_timeout_secs: u32,
    /// `STATEMENT_TIMEOUT_IN_SECONDS` for the session.
    pub statement_timeout_secs: u32,
}

/// `validator.*`
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct ValidatorSection {
    /// `twilio` or `offline`; unset means Twilio when its credentials are configured.
    pub kind: Option<ValidatorKind>,
    /// Run the free offline check in front of Twilio.
    pub prefilter: bool,
}

/// Which phone validator.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "lowercase", try_from = "String")]
pub enum ValidatorKind {
    /// Twilio Lookup v2 line type intelligence (paid per lookup).
    Twilio,
    /// libphonenumber metadata only (free; cannot tell US landlines).
    Offline,
}

/// `twilio.*`
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct TwilioSection {
    /// Lookup base URL.
    pub base_url: String,
    /// Account SID (`AC…`) or API key SID (`SK…`).
    pub account_sid: Option<String>,
    /// Auth token or API key secret.
    #[serde(serialize_with = "redact_option")]
    pub auth_token: Option<SecretString>,
    /// Lookups in flight at once.
    pub concurrency: usize,
    /// Lookups per second for all workers together.
    pub requests_per_second: u32,
    /// Per-lookup timeout.
    pub request_timeout_secs: u64,
    /// Whether `fixedVoip` numbers count as SMS-capable.
    pub fixed_voip_sms_capable: bool,
    /// Whether `unknown` or missing line types count as SMS-capable.
    pub unknown_sms_capable: bool,
}

/// `verification.*`
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct VerificationSection {
    /// The admin API's base URL (`https://…`).
    pub base_url: Option<String>,
    /// An ADMIN API key of the realm.
    #[serde(serialize_with = "redact_option")]
    pub api_key: Option<SecretString>,
    /// Requests per minute for all workers together (the server's limit is per realm and IP).
    pub requests_per_minute: u32,
    /// Default test type for records without one.
    pub test_type: String,
    /// The realm's SMS template label; unset for the default template.
    pub sms_template_label: Option<String>,
    /// Per-request timeout (the server's own SMS send can take 30 s).
    pub request_timeout_secs: u64,
    /// Connect timeout.
    pub connect_timeout_secs: u64,
}

/// `pipeline.*`
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct PipelineSection {
    /// Epochs per run (seed `EPOCH_COUNT`).
    pub epoch_count: u32,
    /// Records per batch-issue call (seed `BATCH_SIZE`), 1 to 10.
    pub batch_size: usize,
    /// Records claimed per epoch.
    pub epoch_size: usize,
    /// The whole run's time budget.
    pub deadline_secs: u64,
    /// A claim's lease is the run's remaining time plus this, so the records of a
    /// crashed worker come back this long after its deadline.
    pub lease_margin_secs: u64,
    /// Validator calls in flight at once.
    pub validation_concurrency: usize,
    /// Batches in flight at once.
    pub max_batches_in_flight: usize,
    /// The seed's minimum epoch duration; 0 turns it off.
    pub min_epoch_duration_secs: u64,
    /// Re-sends allowed per item after transient per-item failures.
    pub max_item_retries: u32,
    /// How many days back the verification server accepts a test date.
    pub date_window_days: u32,
}

/// `dedup.*`
#[derive(Debug, Clone, Default, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct DedupSection {
    /// The HMAC secret behind every uuid. Never change it once used.
    #[serde(serialize_with = "redact_option")]
    pub secret: Option<SecretString>,
}

impl TryFrom<String> for StoreKind {
    type Error = String;

    fn try_from(value: String) -> Result<Self, Self::Error> {
        match value.trim().to_ascii_lowercase().as_str() {
            "sqlite" => Ok(Self::Sqlite),
            "snowflake" => Ok(Self::Snowflake),
            _ => Err(format!(
                "{value:?} is not a store; allowed: sqlite, snowflake"
            )),
        }
    }
}

impl TryFrom<String> for ValidatorKind {
    type Error = String;

    fn try_from(value: String) -> Result<Self, Self::Error> {
        match value.trim().to_ascii_lowercase().as_str() {
            "twilio" => Ok(Self::Twilio),
            "offline" => Ok(Self::Offline),
            _ => Err(format!(
                "{value:?} is not a validator; allowed: twilio, offline"
            )),
        }
    }
}

fn redact_option<S: Serializer>(value: &Option<SecretString>, s: S) -> Result<S::Ok, S::Error> {
    match value {
        Some(_) => s.serialize_str("[REDACTED]"),
        None => s.serialize_none(),
    }
}

/// One invalid setting.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigProblem {
    /// The key, e.g. `pipeline.batch_size`.
    pub key: String,
    /// What is wrong, including the allowed range.
    pub problem: String,
}

impl fmt::Display for ConfigProblem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.key, self.problem)
    }
}

/// Why the configuration could not be used.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// The layers could not be read or merged, or a value has the wrong type.
    #[error("configuration: {0}")]
    Load(#[from] config::ConfigError),
    /// Values that are well-formed but not allowed.
    #[error("configuration: {}", .0.iter().map(ToString::to_string).collect::<Vec<_>>().join("; "))]
    Invalid(Vec<ConfigProblem>),
}

impl AppConfig {
    /// Loads the layers. `env` is the process environment (passed in so tests need not
    /// touch the real one).
    ///
    /// # Errors
    /// [`ConfigError::Load`] for an unreadable file, an unknown key or a mistyped value.
    pub fn load(file: Option<&Path>, env: &HashMap<String, String>) -> Result<Self, ConfigError> {
        let mut builder = Config::builder().add_source(File::from_str(DEFAULTS, FileFormat::Toml));
        if let Some(path) = file {
            builder = builder.add_source(File::from(path).format(FileFormat::Toml).required(true));
        }
        let aliases: HashMap<String, String> = SEED_ALIASES
            .iter()
            .filter_map(|(seed, key)| env.get(*seed).map(|v| ((*key).to_owned(), v.clone())))
            .collect();
        let namespaced: HashMap<String, String> = env
            .iter()
            .filter(|(k, _)| k.starts_with("CA_NOTIFY__"))
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect();
        let config = builder
            .add_source(env_layer(None).source(Some(aliases)))
            .add_source(env_layer(Some("CA_NOTIFY")).source(Some(namespaced)))
            .build()?;
        Ok(config.try_deserialize()?)
    }

    /// The effective configuration as TOML, secrets shown as `[REDACTED]`.
    pub fn redacted_toml(&self) -> String {
        toml::to_string_pretty(self).unwrap_or_else(|e| format!("# cannot render: {e}\n"))
    }

    /// The worker id: configured, or host name and process id.
    pub fn worker_id(&self) -> String {
        self.worker_id.clone().unwrap_or_else(|| {
            let host = std::fs::read_to_string("/etc/hostname")
                .map(|h| h.trim().to_owned())
                .unwrap_or_else(|_| "worker".to_owned());
            format!("{host}-{}", std::process::id())
        })
    }

    /// The validator to use: configured, else Twilio when its credentials are set.
    pub fn validator_kind(&self) -> ValidatorKind {
        self.validator.kind.unwrap_or(
            if self.twilio.account_sid.is_some() && self.twilio.auth_token.is_some() {
                ValidatorKind::Twilio
            } else {
                ValidatorKind::Offline
            },
        )
    }

    /// Checks the values the run needs that the adapters' own `validate` do not.
    ///
    /// # Errors
    /// Every problem found, each naming its key.
    pub fn validate_for_run(&self) -> Result<(), ConfigError> {
        let mut problems = Vec::new();
        let mut problem = |key: &str, text: String| {
            problems.push(ConfigProblem {
                key: key.to_owned(),
                problem: text,
            });
        };
        if self.workers == 0 {
            problem("workers", "is 0; allowed: 1 or more".to_owned());
        }
        match &self.dedup.secret {
            None => problem(
                "dedup.secret",
                "is required: the HMAC secret behind every verification uuid (at least 16 bytes; keep it forever)".to_owned(),
            ),
            Some(s) if s.expose_secret().len() < 16 => problem(
                "dedup.secret",
                "is too short; allowed: at least 16 bytes".to_owned(),
            ),
            Some(_) => {}
        }
        if self
            .verification
            .base_url
            .as_deref()
            .unwrap_or("")
            .is_empty()
        {
            problem(
                "verification.base_url",
                "is required: the verification server's admin API URL (https://…)".to_owned(),
            );
        }
        if self.verification.api_key.is_none() {
            problem(
                "verification.api_key",
                "is required: an ADMIN API key of the realm".to_owned(),
            );
        }
        if self.validator_kind() == ValidatorKind::Twilio {
            if self.twilio.account_sid.is_none() {
                problem(
                    "twilio.account_sid",
                    "is required for validator.kind = twilio".to_owned(),
                );
            }
            if self.twilio.auth_token.is_none() {
                problem(
                    "twilio.auth_token",
                    "is required for validator.kind = twilio".to_owned(),
                );
            }
        }
        if problems.is_empty() {
            Ok(())
        } else {
            Err(ConfigError::Invalid(problems))
        }
    }
}

fn env_layer(prefix: Option<&str>) -> Environment {
    let env = match prefix {
        Some(p) => Environment::with_prefix(p).prefix_separator("__"),
        None => Environment::default(),
    };
    env.separator("__").try_parsing(true).ignore_empty(true)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env(pairs: &[(&str, &str)]) -> HashMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect()
    }

    #[test]
    fn defaults_load_without_anything_configured() {
        let c = AppConfig::load(None, &env(&[])).expect("defaults load");
        assert_eq!(c.pipeline.epoch_count, 3);
        assert_eq!(c.pipeline.batch_size, 10);
        assert_eq!(c.store.kind, StoreKind::Sqlite);
        assert_eq!(c.validator_kind(), ValidatorKind::Offline);
    }

    #[test]
    fn environment_overrides_file_and_seed_aliases_apply() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("c.toml");
        std::fs::write(&path, "[pipeline]\nepoch_count = 5\nbatch_size = 7\n").expect("write");
        let c = AppConfig::load(Some(&path), &env(&[])).expect("file");
        assert_eq!((c.pipeline.epoch_count, c.pipeline.batch_size), (5, 7));

        let c = AppConfig::load(
            Some(&path),
            &env(&[("EPOCH_COUNT", "9"), ("BATCH_SIZE", "4")]),
        )
        .expect("aliases");
        assert_eq!((c.pipeline.epoch_count, c.pipeline.batch_size), (9, 4));

        let c = AppConfig::load(
            Some(&path),
            &env(&[
                ("EPOCH_COUNT", "9"),
                ("CA_NOTIFY__PIPELINE__EPOCH_COUNT", "2"),
            ]),
        )
        .expect("namespaced wins");
        assert_eq!(c.pipeline.epoch_count, 2);
    }

    #[test]
    fn unknown_keys_and_bad_types_name_the_key() {
        let err = AppConfig::load(None, &env(&[("CA_NOTIFY__PIPELINE__EPOCH_CUONT", "2")]))
            .expect_err("typo");
        assert!(err.to_string().contains("epoch_cuont"), "{err}");
        let err = AppConfig::load(None, &env(&[("BATCH_SIZE", "ten")])).expect_err("type");
        assert!(err.to_string().contains("batch_size"), "{err}");
        let err = AppConfig::load(None, &env(&[("CA_NOTIFY__STORE__KIND", "postgres")]))
            .expect_err("unknown store");
        let text = err.to_string();
        assert!(
            text.contains("store.kind") && text.contains("sqlite, snowflake"),
            "{text}"
        );
    }

    #[test]
    fn print_config_never_shows_a_secret() {
        let c = AppConfig::load(
            None,
            &env(&[
                ("CA_NOTIFY__DEDUP__SECRET", "dedup-secret-value-123456"),
                ("CA_NOTIFY__VERIFICATION__API_KEY", "api-key-value-abcdef"),
                ("CA_NOTIFY__TWILIO__AUTH_TOKEN", "twilio-token-value-987"),
                ("CA_NOTIFY__SNOWFLAKE__PASSWORD", "snowflake-password-xyz"),
            ]),
        )
        .expect("loads");
        let shown = format!("{}\n{c:?}", c.redacted_toml());
        for secret in [
            "dedup-secret-value",
            "api-key-value",
            "twilio-token-value",
            "snowflake-password",
        ] {
            assert!(!shown.contains(secret), "{secret} leaked");
        }
        assert!(shown.contains("[REDACTED]"));
    }

    #[test]
    fn run_needs_the_secrets_and_urls_and_names_them() {
        let c = AppConfig::load(None, &env(&[])).expect("defaults");
        let err = c.validate_for_run().expect_err("missing").to_string();
        for key in [
            "dedup.secret",
            "verification.base_url",
            "verification.api_key",
        ] {
            assert!(err.contains(key), "{err}");
        }
    }

    #[test]
    fn the_lease_margin_defaults_to_a_minute_and_reaches_the_pipeline() {
        let c = AppConfig::load(None, &env(&[])).expect("defaults");
        let settings = crate::compose::pipeline_settings(&c, false).expect("valid");
        assert_eq!(settings.lease_margin, std::time::Duration::from_secs(60));
        let c = AppConfig::load(
            None,
            &env(&[("CA_NOTIFY__PIPELINE__LEASE_MARGIN_SECS", "2")]),
        )
        .expect("loads");
        let settings = crate::compose::pipeline_settings(&c, false).expect("valid");
        assert_eq!(settings.lease_margin, std::time::Duration::from_secs(2));
    }
}
