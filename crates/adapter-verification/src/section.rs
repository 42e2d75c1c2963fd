//! The `[verification]` section an operator writes, its defaults and its checks.
//!
//! Keys are the operator's (`verification.request_timeout_secs` is whole seconds);
//! [`VerificationSection::client`] turns the section into a ready [`VerificationClient`],
//! naming the key of any value it cannot use. The API key is taken exactly as written and
//! never shown.

use std::time::Duration;

use ca_notify_domain::TestType;
use ca_notify_ports::config::{secret, ConfigError, DurationRange};
use secrecy::SecretString;
use serde::{Deserialize, Serialize};

use crate::client::VerificationClient;
use crate::config::{VerificationConfig, DEFAULT_CONNECT_TIMEOUT, DEFAULT_REQUEST_TIMEOUT};

/// The section's duration settings and their ranges.
pub const DURATIONS: [DurationRange; 2] = [
    DurationRange::seconds("verification.request_timeout_secs", 1, 600),
    DurationRange::seconds("verification.connect_timeout_secs", 1, 120),
];

/// `[verification]`: the verification server's admin API.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct VerificationSection {
    /// The admin API's base URL (`https://…`).
    pub base_url: Option<String>,
    /// An ADMIN API key of the realm.
    #[serde(
        serialize_with = "secret::redact",
        deserialize_with = "secret::as_written"
    )]
    pub api_key: Option<SecretString>,
    /// An optional cap on requests per minute for all workers together; unset, the
    /// server's `X-RateLimit-*` headers set the pace (its limit is per realm and IP).
    pub requests_per_minute: Option<u32>,
    /// Default test type for records without one.
    pub test_type: String,
    /// The realm's SMS template label; unset for the default template.
    pub sms_template_label: Option<String>,
    /// Per-request timeout (the server's own SMS send can take 30 s).
    pub request_timeout_secs: u64,
    /// Connect timeout.
    pub connect_timeout_secs: u64,
}

impl Default for VerificationSection {
    fn default() -> Self {
        Self {
            base_url: None,
            api_key: None,
            requests_per_minute: None,
            test_type: "confirmed".to_owned(),
            sms_template_label: None,
            request_timeout_secs: DEFAULT_REQUEST_TIMEOUT.as_secs(),
            connect_timeout_secs: DEFAULT_CONNECT_TIMEOUT.as_secs(),
        }
    }
}

impl VerificationSection {
    /// What a run lacks, each naming its key.
    pub fn missing(&self) -> Vec<ConfigError> {
        let mut problems = Vec::new();
        if self.base_url.as_deref().unwrap_or("").is_empty() {
            problems.push(ConfigError::missing(
                "verification.base_url",
                "the verification server's admin API URL (https://…)",
            ));
        }
        if self.api_key.is_none() {
            problems.push(ConfigError::missing(
                "verification.api_key",
                "an ADMIN API key of the realm",
            ));
        }
        problems
    }

    /// The adapter's settings, for `workers` processes sharing the rate, checked.
    ///
    /// # Errors
    /// The first [`ConfigError`], naming its key: a missing URL or key, an unknown test
    /// type, a duration out of its range, or what [`VerificationConfig::validate`] refuses.
    pub fn config(&self, workers: u32) -> Result<VerificationConfig, ConfigError> {
        if let Some(missing) = self.missing().into_iter().next() {
            return Err(missing);
        }
        let test_type = TestType::parse(&self.test_type).ok_or_else(|| {
            ConfigError::new("verification.test_type", "is not a test type")
                .with_value(format!("{:?}", self.test_type))
                .with_allowed("confirmed, likely, negative, user-report")
        })?;
        let [request, connect] = &DURATIONS;
        request.check(i128::from(self.request_timeout_secs))?;
        connect.check(i128::from(self.connect_timeout_secs))?;
        let config = VerificationConfig {
            test_type,
            sms_template_label: self.sms_template_label.clone(),
            requests_per_minute: self.requests_per_minute,
            workers,
            connect_timeout: Duration::from_secs(self.connect_timeout_secs),
            request_timeout: Duration::from_secs(self.request_timeout_secs),
            ..VerificationConfig::new(
                self.base_url.clone().unwrap_or_default(),
                self.api_key.clone().unwrap_or_default(),
            )
        };
        config.validate()?;
        Ok(config)
    }

    /// The client these settings describe.
    ///
    /// # Errors
    /// As [`VerificationSection::config`], or the HTTP client's failure to build.
    pub fn client(&self, workers: u32) -> Result<VerificationClient, ConfigError> {
        VerificationClient::new(self.config(workers)?)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn configured() -> VerificationSection {
        VerificationSection {
            base_url: Some("https://adminapi.example.org".to_owned()),
            api_key: Some(SecretString::from("s3cr3t-key-value")),
            ..VerificationSection::default()
        }
    }

    #[test]
    fn url_and_key_are_required_and_named() {
        let keys: Vec<String> = VerificationSection::default()
            .missing()
            .iter()
            .map(|e| e.key().to_owned())
            .collect();
        assert_eq!(keys, ["verification.base_url", "verification.api_key"]);
        configured().config(1).expect("valid");
    }

    #[test]
    fn a_bad_test_type_names_the_allowed_ones() {
        let err = VerificationSection {
            test_type: "positive".to_owned(),
            ..configured()
        }
        .config(1)
        .expect_err("unknown");
        let text = err.to_string();
        assert!(text.contains("verification.test_type"), "{text}");
        assert!(
            text.contains("confirmed, likely, negative, user-report"),
            "{text}"
        );
    }

    #[test]
    fn durations_are_checked_and_reach_the_adapter() {
        let config = VerificationSection {
            request_timeout_secs: 600,
            ..configured()
        }
        .config(2)
        .expect("valid");
        assert_eq!(config.request_timeout, Duration::from_secs(600));
        assert_eq!(config.workers, 2);
        let err = VerificationSection {
            connect_timeout_secs: 0,
            ..configured()
        }
        .config(1)
        .expect_err("zero");
        assert!(err.to_string().contains("allowed: 1 to 120"), "{err}");
    }

    #[test]
    fn unknown_keys_are_refused_and_the_key_never_shown() {
        let err = toml::from_str::<VerificationSection>("api_kee = \"x\"").expect_err("typo");
        assert!(err.to_string().contains("api_kee"), "{err}");
        let shown = format!(
            "{}{:?}",
            toml::to_string(&configured()).expect("toml"),
            configured()
        );
        assert!(!shown.contains("s3cr3t"), "{shown}");
    }
}
