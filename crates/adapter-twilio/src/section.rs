//! The `[twilio]` section an operator writes, its defaults and its checks.
//!
//! Keys are the operator's (`twilio.request_timeout_secs` is whole seconds); the section
//! turns into a [`TwilioConfig`] with [`TwilioSection::config`], which names the key of
//! any value it cannot use. Secrets are taken exactly as written and never shown.

use std::time::Duration;

use ca_notify_ports::config::{secret, ConfigError, DurationRange};
use secrecy::SecretString;
use serde::{Deserialize, Serialize};

use crate::config::{TwilioConfig, DEFAULT_BASE_URL};
use crate::policy::LineTypePolicy;

/// The section's duration settings and their ranges.
pub const DURATIONS: [DurationRange; 1] = [DurationRange::seconds(
    "twilio.request_timeout_secs",
    1,
    300,
)];

/// `[twilio]`: Twilio Lookup, when it is the phone validator.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct TwilioSection {
    /// Lookup base URL.
    pub base_url: String,
    /// Account SID (`AC…`) or API key SID (`SK…`).
    pub account_sid: Option<String>,
    /// Auth token or API key secret.
    #[serde(
        serialize_with = "secret::redact",
        deserialize_with = "secret::as_written"
    )]
    pub auth_token: Option<SecretString>,
    /// The most lookups in flight at once (fewer while Twilio pushes back with 429s).
    pub concurrency: usize,
    /// An optional cap on lookups per second for all workers together; unset, Twilio's
    /// 429s set the pace.
    pub requests_per_second: Option<u32>,
    /// Per-lookup timeout.
    pub request_timeout_secs: u64,
    /// Whether `fixedVoip` numbers count as SMS-capable.
    pub fixed_voip_sms_capable: bool,
    /// Whether `unknown` or missing line types count as SMS-capable.
    pub unknown_sms_capable: bool,
}

impl Default for TwilioSection {
    fn default() -> Self {
        Self {
            base_url: DEFAULT_BASE_URL.to_owned(),
            account_sid: None,
            auth_token: None,
            concurrency: 10,
            requests_per_second: None,
            request_timeout_secs: 10,
            fixed_voip_sms_capable: false,
            unknown_sms_capable: false,
        }
    }
}

impl TwilioSection {
    /// Whether both credentials are set (then Twilio is the validator unless configured
    /// otherwise).
    pub fn has_credentials(&self) -> bool {
        self.account_sid.is_some() && self.auth_token.is_some()
    }

    /// What a run with Twilio as its validator lacks, each naming its key.
    pub fn missing(&self) -> Vec<ConfigError> {
        let mut problems = Vec::new();
        if self.account_sid.is_none() {
            problems.push(ConfigError::new(
                "twilio.account_sid",
                "is required for validator.kind = twilio",
            ));
        }
        if self.auth_token.is_none() {
            problems.push(ConfigError::new(
                "twilio.auth_token",
                "is required for validator.kind = twilio",
            ));
        }
        problems
    }

    /// The adapter's settings, for `workers` processes sharing the rate, checked.
    ///
    /// # Errors
    /// The first [`ConfigError`], naming its key: a missing credential, a duration out of
    /// its range, or what [`TwilioConfig::validate`] refuses.
    pub fn config(&self, workers: u32) -> Result<TwilioConfig, ConfigError> {
        if let Some(missing) = self.missing().into_iter().next() {
            return Err(missing);
        }
        for range in &DURATIONS {
            range.check(i128::from(self.request_timeout_secs))?;
        }
        let config = TwilioConfig {
            base_url: self.base_url.clone(),
            account_sid: self.account_sid.clone().unwrap_or_default(),
            auth_token: self.auth_token.clone().unwrap_or_default(),
            concurrency: self.concurrency,
            requests_per_second: self.requests_per_second,
            workers,
            request_timeout: Duration::from_secs(self.request_timeout_secs),
            policy: LineTypePolicy {
                accept_fixed_voip: self.fixed_voip_sms_capable,
                accept_undetermined: self.unknown_sms_capable,
                ..LineTypePolicy::default()
            },
            ..TwilioConfig::default()
        };
        config.validate()?;
        Ok(config)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const SID: &str = "AC0123456789abcdef0123456789abcdef";

    fn with_credentials() -> TwilioSection {
        TwilioSection {
            account_sid: Some(SID.to_owned()),
            auth_token: Some(SecretString::from("tok3n-value")),
            ..TwilioSection::default()
        }
    }

    #[test]
    fn credentials_are_required_and_named() {
        let err = TwilioSection::default().config(1).expect_err("no sid");
        assert_eq!(err.key(), "twilio.account_sid");
        assert!(err.to_string().contains("validator.kind = twilio"), "{err}");
        assert_eq!(TwilioSection::default().missing().len(), 2);
        with_credentials().config(1).expect("valid");
    }

    #[test]
    fn the_section_reaches_the_adapter() {
        let section = TwilioSection {
            request_timeout_secs: 300,
            unknown_sms_capable: true,
            ..with_credentials()
        };
        let config = section.config(4).expect("valid");
        assert_eq!(config.request_timeout, Duration::from_secs(300));
        assert_eq!(config.workers, 4);
        assert!(config.policy.accept_undetermined);
        let err = TwilioSection {
            request_timeout_secs: 301,
            ..with_credentials()
        }
        .config(1)
        .expect_err("out of range");
        assert!(err.to_string().contains("allowed: 1 to 300"), "{err}");
        let err = TwilioSection {
            concurrency: 0,
            ..with_credentials()
        }
        .config(1)
        .expect_err("zero");
        assert_eq!(err.key(), "twilio.concurrency");
    }

    #[test]
    fn unknown_keys_are_refused_and_secrets_never_shown() {
        let err = toml::from_str::<TwilioSection>("concurency = 3").expect_err("typo");
        assert!(err.to_string().contains("concurency"), "{err}");
        let shown = format!(
            "{}{:?}",
            toml::to_string(&with_credentials()).expect("toml"),
            with_credentials()
        );
        assert!(!shown.contains("tok3n-value"), "{shown}");
    }
}
