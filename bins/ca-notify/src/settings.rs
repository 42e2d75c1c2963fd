//! Configuration: built-in defaults, then an optional TOML file, then the environment.
//!
//! Layers, lowest first: `defaults.toml` (compiled in) → `--config PATH` →
//! the seed's `EPOCH_COUNT` / `BATCH_SIZE` (aliases of `pipeline.epoch_count` /
//! `pipeline.batch_size`) → `CA_NOTIFY__SECTION__KEY`. Unknown keys are errors, so a typo
//! never silently falls back to a default. Every invalid value is reported with its key,
//! the problem and the allowed range; secret values are never echoed.
//!
//! Values are taken as written: an environment value stays text until a numeric or
//! boolean setting parses it, so a string setting (a secret, a table name) keeps `0001`,
//! `1e3` or ` 007 ` exactly, and a secret in TOML must be a quoted string. Every duration
//! has a range ([`DURATIONS`]); a value outside it is an error, never a clock overflow.

use std::collections::HashMap;
use std::fmt;
use std::path::{Path, PathBuf};

use config::{Config, Environment, File, FileFormat};
use secrecy::{ExposeSecret, SecretString};
use serde::de::{self, Deserializer, Visitor};
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
    #[serde(
        default,
        serialize_with = "redact_option",
        deserialize_with = "secret_as_written"
    )]
    pub password: Option<SecretString>,
    /// Key-pair authentication: the PKCS#8 PEM private key.
    #[serde(
        default,
        serialize_with = "redact_option",
        deserialize_with = "secret_as_written"
    )]
    pub private_key: Option<SecretString>,
    /// Key-pair authentication: a file holding the PEM private key.
    pub private_key_path: Option<PathBuf>,
    /// Passphrase of an encrypted private key.
    #[serde(
        default,
        serialize_with = "redact_option",
        deserialize_with = "secret_as_written"
    )]
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
    #[serde(
        default,
        serialize_with = "redact_option",
        deserialize_with = "secret_as_written"
    )]
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
    #[serde(
        default,
        serialize_with = "redact_option",
        deserialize_with = "secret_as_written"
    )]
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
    #[serde(
        default,
        serialize_with = "redact_option",
        deserialize_with = "secret_as_written"
    )]
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

/// A secret exactly as written. A TOML number or boolean is refused rather than turned
/// into text (`0x10` would become `16`, and a changed dedup secret changes every uuid);
/// the refusal never shows the value.
fn secret_as_written<'de, D: Deserializer<'de>>(d: D) -> Result<Option<SecretString>, D::Error> {
    struct Written;

    impl<'de> Visitor<'de> for Written {
        type Value = Option<SecretString>;

        fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            f.write_str("a string (quoted in TOML)")
        }

        fn visit_none<E: de::Error>(self) -> Result<Self::Value, E> {
            Ok(None)
        }

        fn visit_unit<E: de::Error>(self) -> Result<Self::Value, E> {
            Ok(None)
        }

        fn visit_some<D: Deserializer<'de>>(self, d: D) -> Result<Self::Value, D::Error> {
            d.deserialize_any(self)
        }

        fn visit_str<E: de::Error>(self, v: &str) -> Result<Self::Value, E> {
            Ok(Some(SecretString::from(v)))
        }

        fn visit_bool<E: de::Error>(self, _: bool) -> Result<Self::Value, E> {
            Err(not_text())
        }

        fn visit_i64<E: de::Error>(self, _: i64) -> Result<Self::Value, E> {
            Err(not_text())
        }

        fn visit_u64<E: de::Error>(self, _: u64) -> Result<Self::Value, E> {
            Err(not_text())
        }

        fn visit_i128<E: de::Error>(self, _: i128) -> Result<Self::Value, E> {
            Err(not_text())
        }

        fn visit_u128<E: de::Error>(self, _: u128) -> Result<Self::Value, E> {
            Err(not_text())
        }

        fn visit_f64<E: de::Error>(self, _: f64) -> Result<Self::Value, E> {
            Err(not_text())
        }
    }

    fn not_text<E: de::Error>() -> E {
        E::custom("must be a string, quoted in TOML (a number or boolean would change its text)")
    }

    d.deserialize_option(Written)
}

fn redact_option<S: Serializer>(value: &Option<SecretString>, s: S) -> Result<S::Ok, S::Error> {
    match value {
        Some(_) => s.serialize_str("[REDACTED]"),
        None => s.serialize_none(),
    }
}

/// A duration setting, in its unit, and its allowed range.
struct DurationRange {
    key: &'static str,
    min: i128,
    max: i128,
    unit: &'static str,
}

const fn seconds(key: &'static str, min: i128, max: i128) -> DurationRange {
    DurationRange {
        key,
        min,
        max,
        unit: "seconds",
    }
}

/// Every duration setting and its allowed range. Beyond them a value is a mistake (a
/// deadline of years, a lease margin of 0), and some would overflow a clock later.
const DURATIONS: [DurationRange; 9] = [
    // One scheduled run; longer work is several runs.
    seconds("pipeline.deadline_secs", 1, 86_400),
    // How long a crashed worker's records wait; 0 would hand records whose requests may
    // still be running to the next worker at once.
    seconds("pipeline.lease_margin_secs", 1, 3_600),
    // 0 turns the pacing off.
    seconds("pipeline.min_epoch_duration_secs", 0, 86_400),
    DurationRange {
        key: "pipeline.date_window_days",
        min: 1,
        max: 365,
        unit: "days",
    },
    seconds("twilio.request_timeout_secs", 1, 300),
    seconds("verification.request_timeout_secs", 1, 600),
    seconds("verification.connect_timeout_secs", 1, 120),
    // Snowflake's own limits of LOCK_TIMEOUT and STATEMENT_TIMEOUT_IN_SECONDS, without
    // their 0 (wait forever).
    seconds("snowflake.lock_timeout_secs", 1, 43_200),
    seconds("snowflake.statement_timeout_secs", 1, 604_800),
];

/// Every duration given as a whole number, checked against its range. Anything else is
/// left to the typed read, which names the key.
fn check_durations(layered: &Config) -> Result<(), ConfigError> {
    let problems: Vec<ConfigProblem> = DURATIONS
        .iter()
        .filter_map(|d| {
            let text = layered.get_string(d.key).ok()?;
            let value: i128 = text.trim().parse().ok()?;
            (!(d.min..=d.max).contains(&value)).then(|| ConfigProblem {
                key: d.key.to_owned(),
                problem: format!("is {value}; allowed: {} to {} {}", d.min, d.max, d.unit),
            })
        })
        .collect();
    if problems.is_empty() {
        Ok(())
    } else {
        Err(ConfigError::Invalid(problems))
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
    /// [`ConfigError::Load`] for an unreadable file, an unknown key or a mistyped value;
    /// [`ConfigError::Invalid`] for a duration out of its range.
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
        let layered = builder
            .add_source(env_layer(None).source(Some(aliases)))
            .add_source(env_layer(Some("CA_NOTIFY")).source(Some(namespaced)))
            .build()?;
        // Before the typed read, so a value too large for its type still gets its range.
        check_durations(&layered)?;
        Ok(layered.try_deserialize()?)
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

/// An environment layer whose values stay text: the typed settings parse their own
/// numbers and switches, and a string setting keeps what was written (`try_parsing` would
/// turn a secret `0001` into `1`, and every uuid with it).
fn env_layer(prefix: Option<&str>) -> Environment {
    let env = match prefix {
        Some(p) => Environment::with_prefix(p).prefix_separator("__"),
        None => Environment::default(),
    };
    env.separator("__").try_parsing(false).ignore_empty(true)
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

    /// What the operator wrote, to the byte: `0001` is not 1, `1e3` not 1000, `TRUE` not
    /// `true`. A dedup secret changed by a parser changes every uuid, and someone already
    /// texted would be texted again.
    #[test]
    fn environment_values_are_taken_as_written() {
        for written in [
            "0001",
            "0000000000000001",
            "1e3",
            "true",
            "TRUE",
            " 007 ",
            "Infinity",
            "-0",
            "+5",
            "1.50",
            "0x10",
        ] {
            let c = AppConfig::load(
                None,
                &env(&[
                    ("CA_NOTIFY__DEDUP__SECRET", written),
                    ("CA_NOTIFY__VERIFICATION__API_KEY", written),
                    ("CA_NOTIFY__TWILIO__AUTH_TOKEN", written),
                    ("CA_NOTIFY__TWILIO__ACCOUNT_SID", written),
                    ("CA_NOTIFY__SNOWFLAKE__PASSWORD", written),
                    ("CA_NOTIFY__SNOWFLAKE__DATABASE", written),
                    ("CA_NOTIFY__SOURCE__TABLE", written),
                    ("CA_NOTIFY__SOURCE__ID_COLUMN", written),
                    ("CA_NOTIFY__VERIFICATION__SMS_TEMPLATE_LABEL", written),
                    ("CA_NOTIFY__WORKER_ID", written),
                ]),
            )
            .unwrap_or_else(|e| panic!("{written:?}: {e}"));
            let secret =
                |s: &Option<SecretString>| s.as_ref().map(|s| s.expose_secret().to_owned());
            let shown = [
                secret(&c.dedup.secret),
                secret(&c.verification.api_key),
                secret(&c.twilio.auth_token),
                c.twilio.account_sid.clone(),
                secret(&c.snowflake.password),
                Some(c.snowflake.database.clone()),
                Some(c.source.table.clone()),
                Some(c.source.id_column.clone()),
                c.verification.sms_template_label.clone(),
                c.worker_id.clone(),
            ];
            for (i, value) in shown.iter().enumerate() {
                assert_eq!(
                    value.as_deref(),
                    Some(written),
                    "setting {i} of {written:?}"
                );
            }
        }
    }

    #[test]
    fn numbers_and_switches_from_the_environment_still_parse() {
        let c = AppConfig::load(
            None,
            &env(&[
                ("CA_NOTIFY__PIPELINE__BATCH_SIZE", "5"),
                ("CA_NOTIFY__PIPELINE__DEADLINE_SECS", "0090"),
                ("CA_NOTIFY__VALIDATOR__PREFILTER", "FALSE"),
                ("CA_NOTIFY__TWILIO__UNKNOWN_SMS_CAPABLE", "true"),
                ("CA_NOTIFY__VALIDATOR__KIND", "Twilio"),
                ("EPOCH_COUNT", "7"),
            ]),
        )
        .expect("loads");
        assert_eq!(c.pipeline.batch_size, 5);
        assert_eq!(c.pipeline.deadline_secs, 90);
        assert_eq!(c.pipeline.epoch_count, 7);
        assert!(!c.validator.prefilter);
        assert!(c.twilio.unknown_sms_capable);
        assert_eq!(c.validator.kind, Some(ValidatorKind::Twilio));
        let err = AppConfig::load(None, &env(&[("CA_NOTIFY__PIPELINE__EPOCH_SIZE", "1e3")]))
            .expect_err("not an integer");
        assert!(err.to_string().contains("epoch_size"), "{err}");
    }

    /// A TOML string is kept as written; a secret written as a TOML number or boolean is
    /// refused, not turned into other text (`0x10` would become `16`), and not echoed.
    #[test]
    fn a_secret_must_be_a_toml_string() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("c.toml");
        std::fs::write(
            &path,
            "[dedup]\nsecret = \"0001\"\n[source]\ntable = \" 007 \"\n",
        )
        .expect("write");
        let c = AppConfig::load(Some(&path), &env(&[])).expect("strings");
        let secret = c
            .dedup
            .secret
            .as_ref()
            .map(|s| s.expose_secret().to_owned());
        assert_eq!(secret.as_deref(), Some("0001"));
        assert_eq!(c.source.table, " 007 ");
        for (section, key, written) in [
            ("dedup", "secret", "0x1234567890abcdef"),
            ("dedup", "secret", "1234567890123456"),
            ("dedup", "secret", "1e16"),
            ("dedup", "secret", "true"),
            ("verification", "api_key", "1234567890123456"),
            ("twilio", "auth_token", "1234567890123456"),
            ("snowflake", "password", "1234567890123456"),
        ] {
            std::fs::write(&path, format!("[{section}]\n{key} = {written}\n")).expect("write");
            let err = AppConfig::load(Some(&path), &env(&[])).expect_err(written);
            let text = err.to_string();
            assert!(text.contains(&format!("{section}.{key}")), "{text}");
            assert!(text.contains("string"), "{text}");
            for shown in ["1234567890", "1311768467294899695", "10000000000000000"] {
                assert!(!text.contains(shown), "the value was echoed: {text}");
            }
        }
    }

    /// Every duration setting, its unit's largest value, and its allowed range.
    const RANGES: &[(&str, &str, u64, u64)] = &[
        (
            "CA_NOTIFY__PIPELINE__DEADLINE_SECS",
            "pipeline.deadline_secs",
            1,
            86_400,
        ),
        (
            "CA_NOTIFY__PIPELINE__LEASE_MARGIN_SECS",
            "pipeline.lease_margin_secs",
            1,
            3_600,
        ),
        (
            "CA_NOTIFY__PIPELINE__MIN_EPOCH_DURATION_SECS",
            "pipeline.min_epoch_duration_secs",
            0,
            86_400,
        ),
        (
            "CA_NOTIFY__PIPELINE__DATE_WINDOW_DAYS",
            "pipeline.date_window_days",
            1,
            365,
        ),
        (
            "CA_NOTIFY__TWILIO__REQUEST_TIMEOUT_SECS",
            "twilio.request_timeout_secs",
            1,
            300,
        ),
        (
            "CA_NOTIFY__VERIFICATION__REQUEST_TIMEOUT_SECS",
            "verification.request_timeout_secs",
            1,
            600,
        ),
        (
            "CA_NOTIFY__VERIFICATION__CONNECT_TIMEOUT_SECS",
            "verification.connect_timeout_secs",
            1,
            120,
        ),
        (
            "CA_NOTIFY__SNOWFLAKE__LOCK_TIMEOUT_SECS",
            "snowflake.lock_timeout_secs",
            1,
            43_200,
        ),
        (
            "CA_NOTIFY__SNOWFLAKE__STATEMENT_TIMEOUT_SECS",
            "snowflake.statement_timeout_secs",
            1,
            604_800,
        ),
    ];

    /// Out of range (0 where that means nothing, a year, years, the type's largest) is a
    /// configuration error naming the key and the range, never a panic later on.
    #[test]
    fn every_duration_out_of_range_is_an_error_naming_key_and_range() {
        for &(var, key, min, max) in RANGES {
            let mut extremes = vec![
                (max + 1).to_string(),
                "31536000".to_owned(),
                "3153600000".to_owned(),
                u32::MAX.to_string(),
                u64::MAX.to_string(),
                "-1".to_owned(),
            ];
            if min > 0 {
                extremes.push("0".to_owned());
            }
            for value in &extremes {
                let result =
                    std::panic::catch_unwind(|| AppConfig::load(None, &env(&[(var, value)])));
                let err = result
                    .unwrap_or_else(|_| panic!("{key} = {value} panicked"))
                    .expect_err(&format!("{key} = {value}"));
                let text = err.to_string();
                assert!(text.contains(key), "{key} = {value}: {text}");
                assert!(
                    text.contains(&format!("allowed: {min} to {max}")),
                    "{key} = {value}: {text}"
                );
            }
        }
    }

    /// The bounds themselves are accepted, and build the engine's settings and the
    /// clients without a panic.
    #[test]
    fn every_duration_at_its_bounds_builds() {
        for &(var, key, min, max) in RANGES {
            for value in [min, max] {
                let value = value.to_string();
                let mut vars = vec![
                    (var, value.as_str()),
                    ("CA_NOTIFY__VERIFICATION__BASE_URL", "http://127.0.0.1:9"),
                    ("CA_NOTIFY__VERIFICATION__API_KEY", "key"),
                    (
                        "CA_NOTIFY__TWILIO__ACCOUNT_SID",
                        "AC00000000000000000000000000000000",
                    ),
                    ("CA_NOTIFY__TWILIO__AUTH_TOKEN", "token"),
                ];
                // The epoch pacing may not exceed the deadline.
                if key == "pipeline.min_epoch_duration_secs" {
                    vars.push(("CA_NOTIFY__PIPELINE__DEADLINE_SECS", "86400"));
                }
                let c = AppConfig::load(None, &env(&vars))
                    .unwrap_or_else(|e| panic!("{key} = {value}: {e}"));
                crate::compose::pipeline_settings(&c, false)
                    .unwrap_or_else(|e| panic!("{key} = {value}: {e}"));
                crate::compose::twilio_config(&c)
                    .unwrap_or_else(|e| panic!("{key} = {value}: {e}"));
                crate::compose::verification_client(&c)
                    .unwrap_or_else(|e| panic!("{key} = {value}: {e}"));
            }
        }
    }
}
