//! The one shape of a configuration error, and the helpers every component's
//! configuration section shares.
//!
//! Each adapter crate owns the section an operator writes for it (`[twilio]`,
//! `[verification]`, `[snowflake]`, …) and the pipeline owns `[pipeline]`; all of them
//! report a value they cannot use as a [`ConfigError`] naming the operator's key, the
//! value (never a secret's), what is wrong and what is allowed. [`DurationRange`] states a
//! `*_secs` setting's range once, for the loader (which checks it before the typed read, so
//! a value too large for its integer type still gets its range) and the section alike.
//! [`secret`] holds the `serde` helpers for secrets: taken exactly as written, shown as
//! `[REDACTED]`.

use std::borrow::Cow;
use std::fmt;

/// A configuration value that cannot be used, named by the key an operator writes.
///
/// Displayed as `key = value: problem (allowed: …)`, the value and the allowed part only
/// when known. A secret's value is never kept: [`ConfigError::secret`] marks it redacted.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigError {
    /// The configuration key, e.g. `pipeline.batch_size` or `twilio.base_url`.
    pub key: Cow<'static, str>,
    /// The value given, as text; `[REDACTED]` for a secret; `None` when not worth showing.
    pub value: Option<String>,
    /// What is wrong with it. Never contains a secret.
    pub problem: String,
    /// The values or range allowed, when they can be stated.
    pub allowed: Option<String>,
}

impl ConfigError {
    /// `key` cannot be used: `problem`.
    pub fn new(key: impl Into<Cow<'static, str>>, problem: impl Into<String>) -> Self {
        Self {
            key: key.into(),
            value: None,
            problem: problem.into(),
            allowed: None,
        }
    }

    /// `key` is required but not set; `what` says what it is.
    pub fn missing(key: impl Into<Cow<'static, str>>, what: impl fmt::Display) -> Self {
        Self::new(key, format!("is required: {what}"))
    }

    /// `key = value` is outside what is allowed.
    pub fn out_of_range(
        key: impl Into<Cow<'static, str>>,
        value: impl fmt::Display,
        problem: impl Into<String>,
        allowed: impl Into<String>,
    ) -> Self {
        Self::new(key, problem)
            .with_value(value)
            .with_allowed(allowed)
    }

    /// A secret setting cannot be used; its value is shown as `[REDACTED]`.
    pub fn secret(key: impl Into<Cow<'static, str>>, problem: impl Into<String>) -> Self {
        Self {
            value: Some(REDACTED.to_owned()),
            ..Self::new(key, problem)
        }
    }

    /// The same error showing the value given.
    #[must_use]
    pub fn with_value(mut self, value: impl fmt::Display) -> Self {
        self.value = Some(value.to_string());
        self
    }

    /// The same error stating what is allowed.
    #[must_use]
    pub fn with_allowed(mut self, allowed: impl Into<String>) -> Self {
        self.allowed = Some(allowed.into());
        self
    }

    /// The same error under another key (a component's field name mapped to the key the
    /// operator writes, e.g. `pipeline.deadline` to `pipeline.deadline_secs`).
    #[must_use]
    pub fn with_key(mut self, key: impl Into<Cow<'static, str>>) -> Self {
        self.key = key.into();
        self
    }

    /// The key at fault.
    pub fn key(&self) -> &str {
        &self.key
    }
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.key)?;
        if let Some(value) = &self.value {
            write!(f, " = {value}")?;
        }
        write!(f, ": {}", self.problem)?;
        if let Some(allowed) = &self.allowed {
            write!(f, " (allowed: {allowed})")?;
        }
        Ok(())
    }
}

impl std::error::Error for ConfigError {}

/// Every problem of one configuration, each naming its key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigErrors(pub Vec<ConfigError>);

impl ConfigErrors {
    /// `Ok` when `problems` is empty.
    ///
    /// # Errors
    /// The problems, when there are any.
    pub fn check(problems: Vec<ConfigError>) -> Result<(), Self> {
        if problems.is_empty() {
            Ok(())
        } else {
            Err(Self(problems))
        }
    }
}

impl From<ConfigError> for ConfigErrors {
    fn from(e: ConfigError) -> Self {
        Self(vec![e])
    }
}

impl fmt::Display for ConfigErrors {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, e) in self.0.iter().enumerate() {
            if i > 0 {
                f.write_str("; ")?;
            }
            write!(f, "{e}")?;
        }
        Ok(())
    }
}

impl std::error::Error for ConfigErrors {}

/// The recipients' table and its columns, as every store reads it (the operator's
/// `[source]` section names them). Optional columns are `None` when the table has none;
/// the records then carry `None` for them. Each store checks the names by its own SQL
/// rules (SQLite: plain identifiers; Snowflake: unquoted or `"Quoted"`, maybe qualified).
#[derive(Debug, Clone, PartialEq, Eq, serde::Deserialize, serde::Serialize)]
pub struct SourceTable {
    /// The table (or view) holding the recipients.
    pub name: String,
    /// A column whose value identifies a row: opaque, unique per record.
    pub id_column: String,
    /// The phone column, read as text.
    pub phone_column: String,
    /// The test date column (`DATE`, timestamp or `YYYY-MM-DD` text), if any.
    #[serde(default)]
    pub test_date_column: Option<String>,
    /// The symptom onset date column, if any.
    #[serde(default)]
    pub symptom_date_column: Option<String>,
    /// The test type column (`confirmed`, `likely`, `negative`, `user-report`), if any.
    #[serde(default)]
    pub test_type_column: Option<String>,
    /// The user's time-zone offset in minutes, if any (Snowflake only).
    #[serde(default)]
    pub tz_offset_column: Option<String>,
    /// When each record arrived in the table (a `TIMESTAMP` or `DATE` column), if any
    /// (Snowflake only: SQLite stamps each record's arrival itself). It dates the
    /// backlog's oldest record for `status` and the metrics.
    #[serde(default)]
    pub arrived_at_column: Option<String>,
}

impl SourceTable {
    /// A table with only the required id and phone columns.
    pub fn new(
        name: impl Into<String>,
        id_column: impl Into<String>,
        phone_column: impl Into<String>,
    ) -> Self {
        Self {
            name: name.into(),
            id_column: id_column.into(),
            phone_column: phone_column.into(),
            test_date_column: None,
            symptom_date_column: None,
            test_type_column: None,
            tz_offset_column: None,
            arrived_at_column: None,
        }
    }
}

impl Default for SourceTable {
    /// `recipients (id, phone, test_date, symptom_date, test_type)`, the defaults of
    /// `[source]`.
    fn default() -> Self {
        Self {
            test_date_column: Some("test_date".to_owned()),
            symptom_date_column: Some("symptom_date".to_owned()),
            test_type_column: Some("test_type".to_owned()),
            ..Self::new("recipients", "id", "phone")
        }
    }
}

/// How a secret is shown.
pub const REDACTED: &str = "[REDACTED]";

/// A duration setting, in its unit, and its allowed range.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DurationRange {
    /// The key, e.g. `twilio.request_timeout_secs`.
    pub key: &'static str,
    /// The smallest value allowed.
    pub min: i128,
    /// The largest value allowed.
    pub max: i128,
    /// `seconds` or `days`.
    pub unit: &'static str,
}

impl DurationRange {
    /// A range in seconds.
    pub const fn seconds(key: &'static str, min: i128, max: i128) -> Self {
        Self {
            key,
            min,
            max,
            unit: "seconds",
        }
    }

    /// A range in days.
    pub const fn days(key: &'static str, min: i128, max: i128) -> Self {
        Self {
            key,
            min,
            max,
            unit: "days",
        }
    }

    /// Checks one value.
    ///
    /// # Errors
    /// A [`ConfigError`] naming the key and the range when `value` is outside it.
    pub fn check(&self, value: i128) -> Result<(), ConfigError> {
        if (self.min..=self.max).contains(&value) {
            Ok(())
        } else {
            Err(ConfigError::new(
                self.key,
                format!(
                    "is {value}; allowed: {} to {} {}",
                    self.min, self.max, self.unit
                ),
            ))
        }
    }
}

/// `serde` helpers for secrets in configuration sections.
pub mod secret {
    use std::fmt;

    use secrecy::SecretString;
    use serde::de::{self, Deserializer, Visitor};
    use serde::Serializer;

    /// A secret exactly as written. A TOML number or boolean is refused rather than
    /// turned into text (`0x10` would become `16`, and a changed dedup secret changes every
    /// uuid); the refusal never shows the value.
    ///
    /// # Errors
    /// When the value is not a string.
    pub fn as_written<'de, D: Deserializer<'de>>(d: D) -> Result<Option<SecretString>, D::Error> {
        d.deserialize_option(Written)
    }

    /// Serialises a secret as `[REDACTED]` (or nothing when unset).
    ///
    /// # Errors
    /// The serializer's own.
    pub fn redact<S: Serializer>(value: &Option<SecretString>, s: S) -> Result<S::Ok, S::Error> {
        match value {
            Some(_) => s.serialize_str(super::REDACTED),
            None => s.serialize_none(),
        }
    }

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
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn display_names_key_value_problem_and_allowed() {
        let e = ConfigError::out_of_range("pipeline.batch_size", 11, "too many", "1 to 10");
        assert_eq!(
            e.to_string(),
            "pipeline.batch_size = 11: too many (allowed: 1 to 10)"
        );
        assert_eq!(
            ConfigError::new("twilio.base_url", "is not a URL").to_string(),
            "twilio.base_url: is not a URL"
        );
        let secret = ConfigError::secret("dedup.secret", "is too short");
        assert_eq!(
            secret.to_string(),
            "dedup.secret = [REDACTED]: is too short"
        );
    }

    #[test]
    fn a_duration_range_names_key_and_range() {
        let range = DurationRange::seconds("twilio.request_timeout_secs", 1, 300);
        assert!(range.check(1).is_ok() && range.check(300).is_ok());
        let text = range.check(301).expect_err("above").to_string();
        assert!(text.contains("twilio.request_timeout_secs"), "{text}");
        assert!(text.contains("allowed: 1 to 300 seconds"), "{text}");
    }
}
