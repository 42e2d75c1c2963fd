//! The aggregate configuration: every component's section, layered.
//!
//! Layers, lowest first: each section's defaults (the adapter crates own theirs) → a TOML
//! file → the seed's `EPOCH_COUNT` / `BATCH_SIZE` (aliases of `pipeline.epoch_count` /
//! `pipeline.batch_size`) → `CA_NOTIFY__SECTION__KEY`. Unknown keys are errors, so a typo
//! never silently falls back to a default. Every invalid value is reported with its key,
//! the problem and the allowed range; secret values are never echoed.
//!
//! Any setting can come from a file instead (`CA_NOTIFY__SECTION__KEY_FILE`, or
//! `key_file` in the TOML file), read in the layer that names it: see [`secret_files`].
//!
//! Values are taken as written: an environment value stays text until a numeric or
//! boolean setting parses it, so a string setting (a secret, a table name) keeps `0001`,
//! `1e3` or ` 007 ` exactly, and a secret in TOML must be a quoted string. Every duration
//! has a range ([`DURATIONS`]); a value outside it is an error, never a clock overflow.
//!
//! This crate owns the sections no single adapter does: `[store]` (which store, and the
//! SQLite file), `[source]` (the recipients' table, read by either store), `[validator]`
//! and `[dedup]`.

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use ca_notify_adapter_snowflake::SnowflakeSection;
use ca_notify_adapter_twilio::{TwilioConfig, TwilioSection};
use ca_notify_adapter_verification::VerificationSection;
use ca_notify_metrics::MetricsSection;
use ca_notify_pipeline::PipelineSection;
use ca_notify_ports::config::{secret, ConfigError, ConfigErrors, DurationRange, SourceTable};
use config::{Config, Environment, File, FileFormat};
use secrecy::{ExposeSecret, SecretString};
use serde::{Deserialize, Serialize};

use crate::{secret_files, JobError};

/// Seed variable names honoured as aliases, and the keys they stand for.
const SEED_ALIASES: &[(&str, &str)] = &[
    ("EPOCH_COUNT", "PIPELINE__EPOCH_COUNT"),
    ("BATCH_SIZE", "PIPELINE__BATCH_SIZE"),
];

/// Every duration setting of every section, and its allowed range.
pub const DURATIONS: [&[DurationRange]; 5] = [
    &ca_notify_pipeline::section::DURATIONS,
    &ca_notify_metrics::section::DURATIONS,
    &ca_notify_adapter_twilio::section::DURATIONS,
    &ca_notify_adapter_verification::section::DURATIONS,
    &ca_notify_adapter_snowflake::section::DURATIONS,
];

/// The whole configuration of a job.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct JobConfig {
    /// Workers sharing the outside rate budgets.
    pub workers: u32,
    /// This worker's name in the store's claim column (default: host name and process id).
    pub worker_id: Option<String>,
    /// Which store, and where.
    pub store: StoreSection,
    /// The recipients' source table and its columns.
    pub source: SourceSection,
    /// Snowflake connection (when `store.kind = "snowflake"`).
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
    pub dedup: DedupSection,
    /// Where each run's metrics go (a Pushgateway, a textfile); nowhere by default.
    pub metrics: MetricsSection,
    /// How long personal data of finished records is kept (`purge`).
    pub retention: crate::retention::RetentionSection,
}

impl Default for JobConfig {
    fn default() -> Self {
        Self {
            workers: 1,
            worker_id: None,
            store: StoreSection::default(),
            source: SourceSection::default(),
            snowflake: SnowflakeSection::default(),
            validator: ValidatorSection::default(),
            twilio: TwilioSection::default(),
            verification: VerificationSection::default(),
            pipeline: PipelineSection::default(),
            dedup: DedupSection::default(),
            metrics: MetricsSection::default(),
            retention: crate::retention::RetentionSection::default(),
        }
    }
}

/// `[store]`
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct StoreSection {
    /// `sqlite` or `snowflake`.
    pub kind: StoreKind,
    /// The SQLite file, created on first use.
    pub path: PathBuf,
}

impl Default for StoreSection {
    fn default() -> Self {
        Self {
            kind: StoreKind::Sqlite,
            path: PathBuf::from("ca-notify.db"),
        }
    }
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

/// `[source]`: the recipients' table, whichever store holds it.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
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
    /// When each record arrived (a `TIMESTAMP` or `DATE` column), for the backlog's age
    /// on Snowflake; empty when the table has none. SQLite stamps arrivals itself.
    pub arrived_at_column: String,
    /// Region of numbers written without a country code (ISO 3166 alpha-2).
    pub phone_region: String,
}

impl Default for SourceSection {
    fn default() -> Self {
        let t = SourceTable::default();
        Self {
            table: t.name,
            id_column: t.id_column,
            phone_column: t.phone_column,
            test_date_column: t.test_date_column.unwrap_or_default(),
            symptom_date_column: t.symptom_date_column.unwrap_or_default(),
            test_type_column: t.test_type_column.unwrap_or_default(),
            arrived_at_column: t.arrived_at_column.unwrap_or_default(),
            phone_region: "US".to_owned(),
        }
    }
}

impl SourceSection {
    /// The table as the stores read it (an empty column name: no such column).
    pub fn table(&self) -> SourceTable {
        fn optional(name: &str) -> Option<String> {
            let name = name.trim();
            (!name.is_empty()).then(|| name.to_owned())
        }
        SourceTable {
            test_date_column: optional(&self.test_date_column),
            symptom_date_column: optional(&self.symptom_date_column),
            test_type_column: optional(&self.test_type_column),
            arrived_at_column: optional(&self.arrived_at_column),
            ..SourceTable::new(&self.table, &self.id_column, &self.phone_column)
        }
    }
}

/// `[validator]`
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct ValidatorSection {
    /// `twilio` or `offline`; unset means Twilio when its credentials are configured.
    pub kind: Option<ValidatorKind>,
    /// Run the free offline check in front of Twilio.
    pub prefilter: bool,
}

impl Default for ValidatorSection {
    fn default() -> Self {
        Self {
            kind: None,
            prefilter: true,
        }
    }
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

/// `[dedup]`
#[derive(Debug, Clone, Default, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct DedupSection {
    /// The HMAC secret behind every uuid. Never change it once used.
    #[serde(
        serialize_with = "secret::redact",
        deserialize_with = "secret::as_written"
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

/// Every duration given as a whole number, checked against its range. Anything else is
/// left to the typed read, which names the key.
fn check_durations(layered: &Config) -> Result<(), ConfigErrors> {
    let problems = DURATIONS
        .iter()
        .flat_map(|ranges| ranges.iter())
        .filter_map(|range| {
            let text = layered.get_string(range.key).ok()?;
            let value: i128 = text.trim().parse().ok()?;
            range.check(value).err()
        })
        .collect();
    ConfigErrors::check(problems)
}

impl JobConfig {
    /// Loads the layers. `env` is the process environment (passed in so tests need not
    /// touch the real one).
    ///
    /// # Errors
    /// [`JobError::Load`] for an unreadable file, an unknown key or a mistyped value;
    /// [`JobError::Config`] for a duration out of its range.
    pub fn load(file: Option<&Path>, env: &HashMap<String, String>) -> Result<Self, JobError> {
        let mut builder = Config::builder();
        if let Some(path) = file {
            builder = match toml_with_files_read(path)? {
                Some(text) => builder.add_source(File::from_str(&text, FileFormat::Toml)),
                None => {
                    builder.add_source(File::from(path).format(FileFormat::Toml).required(true))
                }
            };
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
        let namespaced = secret_files::resolve_env(namespaced, "CA_NOTIFY__")?;
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
        self.validator
            .kind
            .unwrap_or(if self.twilio.has_credentials() {
                ValidatorKind::Twilio
            } else {
                ValidatorKind::Offline
            })
    }

    /// The Twilio adapter's settings, when Twilio is the configured validator.
    ///
    /// # Errors
    /// A [`ConfigError`] naming the key (a missing credential, a bad value).
    pub fn twilio_config(&self) -> Result<Option<TwilioConfig>, ConfigError> {
        if self.validator_kind() != ValidatorKind::Twilio {
            return Ok(None);
        }
        self.twilio.config(self.workers).map(Some)
    }

    /// Checks the values a run needs that the adapters' own checks do not, all at once.
    ///
    /// # Errors
    /// Every problem found, each naming its key.
    pub fn validate_for_run(&self) -> Result<(), ConfigErrors> {
        ConfigErrors::check(self.problems(true, true))
    }

    /// What is missing or wrong for a run, each naming its key; `issuer` and `validator`
    /// say whether this configuration builds them (an embedder may bring its own).
    pub(crate) fn problems(&self, issuer: bool, validator: bool) -> Vec<ConfigError> {
        let mut problems = Vec::new();
        if self.workers == 0 {
            problems.push(ConfigError::out_of_range(
                "workers",
                0,
                "a job needs a worker",
                "1 or more",
            ));
        }
        match &self.dedup.secret {
            None => problems.push(ConfigError::missing(
                "dedup.secret",
                "the HMAC secret behind every verification uuid (at least 16 bytes; keep it forever)",
            )),
            Some(s) if s.expose_secret().len() < 16 => problems.push(
                ConfigError::secret("dedup.secret", "is too short")
                    .with_allowed("at least 16 bytes"),
            ),
            Some(_) => {}
        }
        if self.store.kind == StoreKind::Sqlite && !self.source.arrived_at_column.trim().is_empty()
        {
            problems.push(ConfigError::new(
                "source.arrived_at_column",
                "is read by the Snowflake store only: SQLite stamps each record's arrival itself (leave it empty)",
            ));
        }
        if issuer {
            problems.extend(self.verification.missing());
        }
        if validator && self.validator_kind() == ValidatorKind::Twilio {
            problems.extend(self.twilio.missing());
        }
        problems
    }
}

/// The TOML file with its `key_file` settings read (`secret_files`), or `None` when it
/// has none, so the file is layered as it is and keeps its name in every message.
fn toml_with_files_read(path: &Path) -> Result<Option<String>, JobError> {
    // An unreadable or malformed file is left to the layer, which reports it as before.
    let Ok(text) = std::fs::read_to_string(path) else {
        return Ok(None);
    };
    let Ok(mut document) = text.parse::<toml::Table>() else {
        return Ok(None);
    };
    if !mentions_file_key(&document) {
        return Ok(None);
    }
    secret_files::resolve_toml(&mut document)?;
    Ok(Some(toml::to_string(&document).map_err(|e| {
        config::ConfigError::Message(format!("{}: {e}", path.display()))
    })?))
}

fn mentions_file_key(table: &toml::Table) -> bool {
    table.iter().any(|(name, value)| match value {
        toml::Value::Table(inner) => mentions_file_key(inner),
        _ => name.ends_with(secret_files::FILE_SUFFIX),
    })
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
        let c = JobConfig::load(None, &env(&[])).expect("defaults load");
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
        let c = JobConfig::load(Some(&path), &env(&[])).expect("file");
        assert_eq!((c.pipeline.epoch_count, c.pipeline.batch_size), (5, 7));

        let c = JobConfig::load(
            Some(&path),
            &env(&[("EPOCH_COUNT", "9"), ("BATCH_SIZE", "4")]),
        )
        .expect("aliases");
        assert_eq!((c.pipeline.epoch_count, c.pipeline.batch_size), (9, 4));

        let c = JobConfig::load(
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
        let err = JobConfig::load(None, &env(&[("CA_NOTIFY__PIPELINE__EPOCH_CUONT", "2")]))
            .expect_err("typo");
        assert!(err.to_string().contains("epoch_cuont"), "{err}");
        let err = JobConfig::load(None, &env(&[("BATCH_SIZE", "ten")])).expect_err("type");
        assert!(err.to_string().contains("batch_size"), "{err}");
        let err = JobConfig::load(None, &env(&[("CA_NOTIFY__STORE__KIND", "postgres")]))
            .expect_err("unknown store");
        let text = err.to_string();
        assert!(
            text.contains("store.kind") && text.contains("sqlite, snowflake"),
            "{text}"
        );
    }

    #[test]
    fn print_config_never_shows_a_secret() {
        let c = JobConfig::load(
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
        let c = JobConfig::load(None, &env(&[])).expect("defaults");
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
    fn an_arrival_column_is_for_snowflake_and_refused_on_sqlite() {
        let env = env(&[("CA_NOTIFY__SOURCE__ARRIVED_AT_COLUMN", "LOADED_AT")]);
        let c = JobConfig::load(None, &env).expect("loads");
        assert_eq!(
            c.source.table().arrived_at_column.as_deref(),
            Some("LOADED_AT")
        );
        let err = c.validate_for_run().expect_err("refused").to_string();
        assert!(err.contains("source.arrived_at_column"), "{err}");
        assert!(err.contains("Snowflake"), "{err}");
        let mut snowflake = c.clone();
        snowflake.store.kind = StoreKind::Snowflake;
        let err = snowflake
            .validate_for_run()
            .expect_err("other keys")
            .to_string();
        assert!(!err.contains("arrived_at_column"), "{err}");
    }

    #[test]
    fn the_lease_margin_defaults_to_a_minute_and_reaches_the_pipeline() {
        let c = JobConfig::load(None, &env(&[])).expect("defaults");
        let settings = c.pipeline.settings(false).expect("valid");
        assert_eq!(settings.lease_margin, std::time::Duration::from_secs(60));
        let c = JobConfig::load(
            None,
            &env(&[("CA_NOTIFY__PIPELINE__LEASE_MARGIN_SECS", "2")]),
        )
        .expect("loads");
        let settings = c.pipeline.settings(false).expect("valid");
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
            let c = JobConfig::load(
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

    /// Every secret can come from a file, through the environment or the TOML file, and
    /// the layers keep their order: the environment's file beats the TOML file's.
    #[test]
    fn secrets_come_from_files_in_either_layer() {
        let dir = tempfile::tempdir().expect("tempdir");
        let write = |name: &str, text: &str| {
            let path = dir.path().join(name);
            std::fs::write(&path, text).expect("write");
            path.display().to_string()
        };
        let dedup = write("dedup", "0123456789abcdef-from-env\n");
        let api_key = write("api_key", "key-from-toml\n");
        let token = write("token", "token-from-toml\n");
        let toml = dir.path().join("c.toml");
        std::fs::write(
            &toml,
            format!(
                "[verification]\napi_key_file = {api_key:?}\n[twilio]\nauth_token_file = {token:?}\n\
                 [dedup]\nsecret = \"overridden-by-the-environment\"\n"
            ),
        )
        .expect("write");
        let c = JobConfig::load(
            Some(&toml),
            &env(&[("CA_NOTIFY__DEDUP__SECRET_FILE", &dedup)]),
        )
        .expect("loads");
        let shown = |s: &Option<SecretString>| s.as_ref().map(|s| s.expose_secret().to_owned());
        assert_eq!(
            shown(&c.dedup.secret).as_deref(),
            Some("0123456789abcdef-from-env")
        );
        assert_eq!(
            shown(&c.verification.api_key).as_deref(),
            Some("key-from-toml")
        );
        assert_eq!(
            shown(&c.twilio.auth_token).as_deref(),
            Some("token-from-toml")
        );
        // The effective configuration shows neither the values nor a `_file` key.
        let printed = c.redacted_toml();
        assert!(!printed.contains("from-"), "{printed}");

        let missing = dir.path().join("absent");
        let err = JobConfig::load(
            None,
            &env(&[(
                "CA_NOTIFY__SNOWFLAKE__PASSWORD_FILE",
                &missing.display().to_string(),
            )]),
        )
        .expect_err("unreadable");
        let text = err.to_string();
        assert!(text.contains("snowflake.password"), "{text}");
    }

    /// `_file` is reserved for "the file holding this key": no setting may end with it.
    /// Read from the JSON form, which keeps unset options (as `null`), so every key shows.
    #[test]
    fn no_setting_name_ends_with_the_file_suffix() {
        fn walk(value: &serde_json::Value, at: &str, seen: &mut usize, found: &mut Vec<String>) {
            if let serde_json::Value::Object(map) = value {
                for (name, inner) in map {
                    *seen += 1;
                    let path = format!("{at}{name}");
                    if name.ends_with(secret_files::FILE_SUFFIX) {
                        found.push(path.clone());
                    }
                    walk(inner, &format!("{path}."), seen, found);
                }
            }
        }
        let json = serde_json::to_value(JobConfig::default()).expect("serialises");
        let (mut seen, mut found) = (0, Vec::new());
        walk(&json, "", &mut seen, &mut found);
        assert!(found.is_empty(), "reserved suffix used by {found:?}");
        assert!(seen > 40, "the walk saw only {seen} keys");
    }

    #[test]
    fn numbers_and_switches_from_the_environment_still_parse() {
        let c = JobConfig::load(
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
        let err = JobConfig::load(None, &env(&[("CA_NOTIFY__PIPELINE__EPOCH_SIZE", "1e3")]))
            .expect_err("not an integer");
        assert!(err.to_string().contains("epoch_size"), "{err}");
    }

    #[test]
    fn the_rate_caps_are_unset_by_default_and_set_from_the_environment() {
        let c = JobConfig::load(None, &env(&[])).expect("loads");
        assert_eq!(c.verification.requests_per_minute, None);
        assert_eq!(c.twilio.requests_per_second, None);
        let c = JobConfig::load(
            None,
            &env(&[
                ("CA_NOTIFY__VERIFICATION__REQUESTS_PER_MINUTE", "120"),
                ("CA_NOTIFY__TWILIO__REQUESTS_PER_SECOND", "25"),
            ]),
        )
        .expect("loads");
        assert_eq!(c.verification.requests_per_minute, Some(120));
        assert_eq!(c.twilio.requests_per_second, Some(25));
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
        let c = JobConfig::load(Some(&path), &env(&[])).expect("strings");
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
            let err = JobConfig::load(Some(&path), &env(&[])).expect_err(written);
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
                    std::panic::catch_unwind(|| JobConfig::load(None, &env(&[(var, value)])));
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
                let c = JobConfig::load(None, &env(&vars))
                    .unwrap_or_else(|e| panic!("{key} = {value}: {e}"));
                c.pipeline
                    .settings(false)
                    .unwrap_or_else(|e| panic!("{key} = {value}: {e}"));
                c.twilio_config()
                    .unwrap_or_else(|e| panic!("{key} = {value}: {e}"));
                c.verification
                    .client(c.workers)
                    .unwrap_or_else(|e| panic!("{key} = {value}: {e}"));
            }
        }
    }
}
