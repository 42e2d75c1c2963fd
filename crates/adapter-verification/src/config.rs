//! The adapter's settings, and the checks that turn a bad setting into a clear error
//! naming its configuration key before anything is sent.
//!
//! The API key is a [`SecretString`]: it leaves the process only in the `X-API-Key`
//! header, and `Debug` of these settings shows `[REDACTED]` in its place.

use std::fmt;
use std::time::Duration;

use ca_notify_domain::{Backoff, TestType};
use reqwest::Url;
use secrecy::{ExposeSecret, SecretString};

pub use ca_notify_ports::config::ConfigError;

/// The default per-request timeout. The server's own Twilio send can take 25–30 s
/// (`pkg/sms/twilio.go:44-101`), and giving up early risks a second text (contract §5.3).
pub const DEFAULT_REQUEST_TIMEOUT: Duration = Duration::from_secs(60);

/// The default connect timeout.
pub const DEFAULT_CONNECT_TIMEOUT: Duration = Duration::from_secs(10);

/// The longest `smsTemplateLabel` we accept; realm template labels are short names.
const MAX_TEMPLATE_LABEL_LEN: usize = 255;

/// How to reach and use the verification server.
#[derive(Clone)]
pub struct VerificationConfig {
    /// The admin API's base URL, e.g. `https://adminapi.encv.example.org`. Must be
    /// `https://` unless the host is a loopback address (tests and the simulator).
    pub base_url: String,
    /// An `ADMIN` API key of the realm.
    pub api_key: SecretString,
    /// The test type sent for items that carry none.
    pub test_type: TestType,
    /// The realm SMS template to use; `None` selects the realm's default. A label the
    /// realm does not know fails *after* the code was stored, so a retry answers 409
    /// with no text ever sent (contract §5.2, §6.3): configure it with care.
    pub sms_template_label: Option<String>,
    /// An optional cap on our requests per minute, for all workers together. Unset (the
    /// default), the server's `X-RateLimit-*` headers set the pace; set it when the realm
    /// and egress IP are shared with other clients, whose requests our headers cannot
    /// foresee.
    pub requests_per_minute: Option<u32>,
    /// How many ca-notify workers (processes or machines behind one egress IP) share
    /// the server's window (and the cap); each takes its share. Tasks inside one process
    /// share one client and its pacer, so they do not count here.
    pub workers: u32,
    /// The TCP/TLS connect timeout.
    pub connect_timeout: Duration,
    /// The timeout of one whole request.
    pub request_timeout: Duration,
    /// The schedule of whole-request retries (5xx, timeouts, dropped connections).
    pub transport_backoff: Backoff,
}

impl VerificationConfig {
    /// Settings with every default: `confirmed` tests, the realm's default template,
    /// paced by the server's headers with no cap, one worker, a 10 s connect and 60 s
    /// request timeout.
    pub fn new(base_url: impl Into<String>, api_key: SecretString) -> Self {
        Self {
            base_url: base_url.into(),
            api_key,
            test_type: TestType::Confirmed,
            sms_template_label: None,
            requests_per_minute: None,
            workers: 1,
            connect_timeout: DEFAULT_CONNECT_TIMEOUT,
            request_timeout: DEFAULT_REQUEST_TIMEOUT,
            transport_backoff: Backoff::default(),
        }
    }

    /// Checks every setting.
    ///
    /// # Errors
    /// A [`ConfigError`] naming the first bad key (`verification.base_url`, …).
    pub fn validate(&self) -> Result<(), ConfigError> {
        self.endpoint_base()?;
        let key = self.api_key.expose_secret();
        if key.trim().is_empty() {
            return Err(invalid("verification.api_key", "the API key is empty"));
        }
        if !key.trim().bytes().all(|b| (0x21..=0x7e).contains(&b)) {
            return Err(invalid(
                "verification.api_key",
                "the API key contains characters that cannot go in an HTTP header",
            ));
        }
        if let Some(label) = &self.sms_template_label {
            if label.trim().is_empty() {
                return Err(invalid(
                    "verification.sms_template_label",
                    "the label is empty; leave it unset to use the realm's default template",
                ));
            }
            if label.len() > MAX_TEMPLATE_LABEL_LEN || label.chars().any(char::is_control) {
                return Err(invalid(
                    "verification.sms_template_label",
                    "the label is too long or contains control characters",
                ));
            }
        }
        if self.requests_per_minute == Some(0) {
            return Err(invalid(
                "verification.requests_per_minute",
                "must be at least 1; leave it unset to let the server's headers set the pace",
            ));
        }
        if self.workers == 0 {
            return Err(invalid("verification.workers", "must be at least 1"));
        }
        if let Some(cap) = self.requests_per_minute.filter(|&cap| self.workers > cap) {
            return Err(invalid(
                "verification.workers",
                format!(
                    "{} workers cannot share {cap} requests a minute: each needs at least one",
                    self.workers
                ),
            ));
        }
        if self.connect_timeout.is_zero() {
            return Err(invalid(
                "verification.connect_timeout",
                "must be above zero",
            ));
        }
        if self.request_timeout.is_zero() {
            return Err(invalid(
                "verification.request_timeout",
                "must be above zero",
            ));
        }
        let backoff = &self.transport_backoff;
        if backoff.base.is_zero() || backoff.cap < backoff.base {
            return Err(invalid(
                "verification.transport_backoff",
                "the base must be above zero and the cap at least the base",
            ));
        }
        Ok(())
    }

    /// The parsed base URL, checked for scheme, host and stray parts.
    pub(crate) fn endpoint_base(&self) -> Result<Url, ConfigError> {
        const KEY: &str = "verification.base_url";
        let url = Url::parse(self.base_url.trim())
            .map_err(|e| invalid(KEY, format!("not a URL: {e}")))?;
        if !url.username().is_empty() || url.password().is_some() {
            return Err(invalid(KEY, "credentials do not belong in the URL"));
        }
        if url.query().is_some() || url.fragment().is_some() {
            return Err(invalid(KEY, "the URL must not have a query or fragment"));
        }
        match url.scheme() {
            "https" => {}
            "http" if ca_notify_http::is_loopback(&url) => {}
            "http" => {
                return Err(invalid(
                    KEY,
                    "must be https:// (plain http is allowed only for loopback addresses)",
                ))
            }
            other => return Err(invalid(KEY, format!("unsupported scheme {other:?}"))),
        }
        if url.host_str().is_none_or(str::is_empty) {
            return Err(invalid(KEY, "the URL has no host"));
        }
        Ok(url)
    }
}

impl fmt::Debug for VerificationConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("VerificationConfig")
            .field("base_url", &self.base_url)
            .field("api_key", &"[REDACTED]")
            .field("test_type", &self.test_type)
            .field("sms_template_label", &self.sms_template_label)
            .field("requests_per_minute", &self.requests_per_minute)
            .field("workers", &self.workers)
            .field("connect_timeout", &self.connect_timeout)
            .field("request_timeout", &self.request_timeout)
            .field("transport_backoff", &self.transport_backoff)
            .finish()
    }
}

fn invalid(key: &'static str, message: impl Into<String>) -> ConfigError {
    ConfigError::new(key, message)
}

#[cfg(test)]
mod tests {
    use super::*;

    const SECRET: &str = "adminapi.abcdefghijklmnop.s3cr3t-v4lu3";

    fn config(url: &str) -> VerificationConfig {
        VerificationConfig::new(url, SECRET.to_owned().into())
    }

    #[test]
    fn defaults_follow_the_contract() {
        let c = config("https://adminapi.example.org");
        assert_eq!(c.test_type, TestType::Confirmed);
        assert_eq!(
            c.requests_per_minute, None,
            "the server's headers set the pace"
        );
        assert_eq!(c.workers, 1);
        assert_eq!(c.request_timeout, Duration::from_secs(60));
        assert_eq!(c.validate(), Ok(()));
    }

    #[test]
    fn https_is_required_except_on_loopback() {
        for ok in [
            "https://adminapi.example.org",
            "https://adminapi.example.org/prefix/",
            "http://127.0.0.1:8080",
            "http://127.3.4.5",
            "http://localhost:1234",
            "http://[::1]:9000",
        ] {
            assert_eq!(config(ok).validate(), Ok(()), "{ok}");
        }
        for bad in [
            "http://adminapi.example.org",
            "http://10.0.0.1",
            "ftp://127.0.0.1",
            "adminapi.example.org",
            "https://user:pw@adminapi.example.org",
            "https://adminapi.example.org/?key=1",
            "",
        ] {
            let err = config(bad).validate().expect_err(bad);
            assert_eq!(err.key(), "verification.base_url", "{bad}: {err}");
        }
    }

    #[test]
    fn each_bad_setting_names_its_key() {
        type Mutation = Box<dyn Fn(&mut VerificationConfig)>;
        let cases: Vec<(&str, Mutation)> = vec![
            (
                "verification.api_key",
                Box::new(|c| c.api_key = "  ".to_owned().into()),
            ),
            (
                "verification.api_key",
                Box::new(|c| c.api_key = "a\nb".to_owned().into()),
            ),
            (
                "verification.requests_per_minute",
                Box::new(|c| c.requests_per_minute = Some(0)),
            ),
            ("verification.workers", Box::new(|c| c.workers = 0)),
            (
                "verification.workers",
                Box::new(|c| {
                    c.requests_per_minute = Some(60);
                    c.workers = 61;
                }),
            ),
            (
                "verification.connect_timeout",
                Box::new(|c| c.connect_timeout = Duration::ZERO),
            ),
            (
                "verification.request_timeout",
                Box::new(|c| c.request_timeout = Duration::ZERO),
            ),
            (
                "verification.sms_template_label",
                Box::new(|c| c.sms_template_label = Some(" ".into())),
            ),
            (
                "verification.transport_backoff",
                Box::new(|c| c.transport_backoff.base = Duration::ZERO),
            ),
        ];
        for (key, mutate) in cases {
            let mut c = config("https://adminapi.example.org");
            mutate(&mut c);
            let err = c.validate().expect_err(key);
            assert_eq!(err.key(), key, "{err}");
            assert!(err.to_string().starts_with(key), "{err}");
            assert!(!err.to_string().contains(SECRET));
        }
    }

    #[test]
    fn debug_never_shows_the_api_key() {
        let shown = format!("{:?}", config("https://adminapi.example.org"));
        assert!(!shown.contains(SECRET), "{shown}");
        assert!(!shown.contains("s3cr3t"), "{shown}");
        assert!(shown.contains("[REDACTED]"), "{shown}");
        assert!(shown.contains("adminapi.example.org"), "{shown}");
    }
}
