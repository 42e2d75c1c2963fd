//! Settings of the Twilio Lookup adapter, and the checks that run before any request.
//!
//! Every mistake an operator can make here (a plain-`http` URL to a remote host, an Account
//! SID pasted with a stray space, zero concurrency) is refused at start-up with the name of
//! the offending key, instead of surfacing later as thousands of deferred records.

use std::fmt;
use std::num::NonZeroU32;
use std::time::Duration;

use ca_notify_domain::Backoff;
use governor::Quota;
use reqwest::Url;
use secrecy::{ExposeSecret, SecretString};

pub use ca_notify_ports::config::ConfigError;

use crate::policy::LineTypePolicy;

/// Twilio's production Lookup host.
pub const DEFAULT_BASE_URL: &str = "https://lookups.twilio.com";

/// The seed ran ten lookups at a time; Twilio's account-wide REST concurrency limit is far
/// above that (about 100 by default, per a third-party source; Twilio publishes no figure).
pub const DEFAULT_CONCURRENCY: usize = 10;

/// More parallel lookups than this is a typo, not a plan.
const MAX_CONCURRENCY: usize = 1_000;

/// Settings of the [`TwilioValidator`](crate::TwilioValidator).
///
/// The credentials are either an Account SID (`AC…`) with its Auth Token, or an API Key SID
/// (`SK…`) with its secret (Twilio error 20003's documentation). `Debug` redacts the token.
#[derive(Clone)]
pub struct TwilioConfig {
    /// The Lookup host, `https://lookups.twilio.com` in production. `http://` is accepted
    /// only for loopback addresses (the simulator, a local mock).
    pub base_url: String,
    /// The Basic-auth user name: an Account SID (`AC…`) or an API Key SID (`SK…`).
    pub account_sid: String,
    /// The Basic-auth password: the Auth Token or the API Key secret.
    pub auth_token: SecretString,
    /// The most lookups in flight at once, for this process: where the pace starts, and
    /// the ceiling it wins back to after Twilio pushes back (429).
    pub concurrency: usize,
    /// An optional cap on lookups per second for the whole deployment (each process takes
    /// its share). Unset by default: Twilio limits concurrency, not a rate, and says so
    /// with a 429.
    pub requests_per_second: Option<u32>,
    /// How many processes (workers) share `requests_per_second`.
    pub workers: u32,
    /// Longest wait for a TCP + TLS connection.
    pub connect_timeout: Duration,
    /// Longest wait for one complete answer, connection included.
    pub request_timeout: Duration,
    /// The retry schedule for 429s, 5xx answers, timeouts and resets.
    pub backoff: Backoff,
    /// Which line types count as able to receive an SMS.
    pub policy: LineTypePolicy,
}

impl Default for TwilioConfig {
    /// Production defaults with empty credentials, which [`TwilioConfig::validate`] refuses.
    fn default() -> Self {
        Self {
            base_url: DEFAULT_BASE_URL.to_owned(),
            account_sid: String::new(),
            auth_token: SecretString::default(),
            concurrency: DEFAULT_CONCURRENCY,
            requests_per_second: None,
            workers: 1,
            connect_timeout: Duration::from_secs(5),
            request_timeout: Duration::from_secs(10),
            backoff: Backoff::default(),
            policy: LineTypePolicy::default(),
        }
    }
}

impl fmt::Debug for TwilioConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TwilioConfig")
            .field("base_url", &self.base_url)
            .field("account_sid", &self.account_sid)
            .field("auth_token", &"[REDACTED]")
            .field("concurrency", &self.concurrency)
            .field("requests_per_second", &self.requests_per_second)
            .field("workers", &self.workers)
            .field("connect_timeout", &self.connect_timeout)
            .field("request_timeout", &self.request_timeout)
            .field("backoff", &self.backoff)
            .field("policy", &self.policy)
            .finish()
    }
}

impl TwilioConfig {
    /// Production defaults with the given credentials.
    pub fn new(account_sid: impl Into<String>, auth_token: SecretString) -> Self {
        Self {
            account_sid: account_sid.into(),
            auth_token,
            ..Self::default()
        }
    }

    /// Checks every setting.
    ///
    /// # Errors
    /// The first [`ConfigError`] found, naming its key.
    pub fn validate(&self) -> Result<(), ConfigError> {
        self.lookup_base()?;
        validate_sid(&self.account_sid)?;
        let token = self.auth_token.expose_secret();
        if token.is_empty() {
            return Err(ConfigError::new("twilio.auth_token", "must not be empty"));
        }
        if token.trim() != token {
            return Err(ConfigError::new(
                "twilio.auth_token",
                "has leading or trailing white space (a copy-paste slip that Twilio answers with 401)",
            ));
        }
        if self.concurrency == 0 || self.concurrency > MAX_CONCURRENCY {
            return Err(ConfigError::new(
                "twilio.concurrency",
                format!("must be between 1 and {MAX_CONCURRENCY}"),
            ));
        }
        if self.requests_per_second == Some(0) {
            return Err(ConfigError::new(
                "twilio.requests_per_second",
                "must be at least 1; leave it unset to let Twilio's 429s set the pace",
            ));
        }
        if self.workers == 0 {
            return Err(ConfigError::new("twilio.workers", "must be at least 1"));
        }
        if self.connect_timeout.is_zero() {
            return Err(ConfigError::new(
                "twilio.connect_timeout",
                "must be greater than zero",
            ));
        }
        if self.request_timeout.is_zero() {
            return Err(ConfigError::new(
                "twilio.request_timeout",
                "must be greater than zero",
            ));
        }
        if self.backoff.base.is_zero() || self.backoff.cap < self.backoff.base {
            return Err(ConfigError::new(
                "twilio.backoff",
                "base must be greater than zero and no greater than cap",
            ));
        }
        Ok(())
    }

    /// The base URL, parsed, checked and without a trailing slash.
    pub(crate) fn lookup_base(&self) -> Result<Url, ConfigError> {
        const KEY: &str = "twilio.base_url";
        let url = Url::parse(self.base_url.trim())
            .map_err(|e| ConfigError::new(KEY, format!("is not a URL ({e})")))?;
        if url.query().is_some() || url.fragment().is_some() {
            return Err(ConfigError::new(KEY, "must not have a query or a fragment"));
        }
        if !url.username().is_empty() || url.password().is_some() {
            return Err(ConfigError::new(
                KEY,
                "must not carry credentials; use twilio.account_sid and twilio.auth_token",
            ));
        }
        match url.scheme() {
            "https" => {}
            "http" if ca_notify_http::is_loopback(&url) => {}
            "http" => {
                return Err(ConfigError::new(
                    KEY,
                    "must use https:// unless the host is a loopback address (127.0.0.1, ::1, localhost)",
                ))
            }
            other => {
                return Err(ConfigError::new(
                    KEY,
                    format!("has scheme {other:?}; expected https://"),
                ))
            }
        }
        Ok(url)
    }

    /// This process's share of the optional deployment-wide cap: one lookup every
    /// `workers / requests_per_second` seconds, with a burst of at most one second's share
    /// (and never more than the concurrency, which caps bursts anyway). `None` without a
    /// cap.
    pub(crate) fn per_worker_quota(&self) -> Option<Quota> {
        let rps = f64::from(self.requests_per_second?.max(1));
        let workers = f64::from(self.workers.max(1));
        let period = Duration::from_secs_f64(workers / rps).max(Duration::from_nanos(1));
        let share = (rps / workers).floor() as u64;
        let burst = share
            .clamp(1, self.concurrency.max(1) as u64)
            .min(u64::from(u32::MAX)) as u32;
        Some(
            Quota::with_period(period)
                .expect("the period is at least one nanosecond")
                .allow_burst(NonZeroU32::new(burst).unwrap_or(NonZeroU32::MIN)),
        )
    }
}

/// `AC` or `SK` followed by 32 hexadecimal digits, as every Twilio SID of those kinds is.
fn validate_sid(sid: &str) -> Result<(), ConfigError> {
    const KEY: &str = "twilio.account_sid";
    if sid.is_empty() {
        return Err(ConfigError::new(KEY, "must not be empty"));
    }
    let well_formed = sid.len() == 34
        && (sid.starts_with("AC") || sid.starts_with("SK"))
        && sid[2..].bytes().all(|b| b.is_ascii_hexdigit());
    if !well_formed {
        return Err(ConfigError::new(
            KEY,
            "must be an Account SID (AC…) or an API Key SID (SK…): two letters and 32 hexadecimal digits",
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    const SID: &str = "AC0123456789abcdef0123456789abcdef";

    fn config() -> TwilioConfig {
        TwilioConfig::new(SID, SecretString::from("tok3n-value"))
    }

    fn key_of(config: &TwilioConfig) -> String {
        config.validate().expect_err("refused").key.into_owned()
    }

    #[test]
    fn defaults_with_credentials_are_valid() {
        let c = config();
        c.validate().expect("valid");
        assert_eq!(c.base_url, "https://lookups.twilio.com");
        assert_eq!(c.concurrency, 10);
        let api_key = TwilioConfig::new(
            "SK0123456789abcdef0123456789abcdef",
            SecretString::from("secret"),
        );
        api_key.validate().expect("an API key SID is accepted");
    }

    #[test]
    fn plain_http_only_for_loopback() {
        for ok in [
            "http://127.0.0.1:4010",
            "http://127.8.9.10",
            "http://localhost:8080/",
            "http://[::1]:4010",
            "https://lookups.twilio.com/",
            "https://proxy.example.org/twilio",
        ] {
            let c = TwilioConfig {
                base_url: ok.into(),
                ..config()
            };
            c.validate().unwrap_or_else(|e| panic!("{ok}: {e}"));
        }
        for bad in [
            "http://lookups.twilio.com",
            "http://10.0.0.1",
            "http://localhost.evil.example",
            "ftp://127.0.0.1",
            "lookups.twilio.com",
            "https://user:pw@lookups.twilio.com",
            "https://lookups.twilio.com/?x=1",
        ] {
            let c = TwilioConfig {
                base_url: bad.into(),
                ..config()
            };
            assert_eq!(key_of(&c), "twilio.base_url", "{bad}");
        }
    }

    #[test]
    fn each_bad_setting_names_its_key() {
        let cases: Vec<(TwilioConfig, &str)> = vec![
            (
                TwilioConfig {
                    account_sid: String::new(),
                    ..config()
                },
                "twilio.account_sid",
            ),
            (
                TwilioConfig {
                    account_sid: format!(" {SID}"),
                    ..config()
                },
                "twilio.account_sid",
            ),
            (
                TwilioConfig {
                    account_sid: SID.replace("AC", "PN"),
                    ..config()
                },
                "twilio.account_sid",
            ),
            (
                TwilioConfig {
                    auth_token: SecretString::default(),
                    ..config()
                },
                "twilio.auth_token",
            ),
            (
                TwilioConfig {
                    auth_token: SecretString::from("tok3n "),
                    ..config()
                },
                "twilio.auth_token",
            ),
            (
                TwilioConfig {
                    concurrency: 0,
                    ..config()
                },
                "twilio.concurrency",
            ),
            (
                TwilioConfig {
                    concurrency: 5_000,
                    ..config()
                },
                "twilio.concurrency",
            ),
            (
                TwilioConfig {
                    requests_per_second: Some(0),
                    ..config()
                },
                "twilio.requests_per_second",
            ),
            (
                TwilioConfig {
                    workers: 0,
                    ..config()
                },
                "twilio.workers",
            ),
            (
                TwilioConfig {
                    connect_timeout: Duration::ZERO,
                    ..config()
                },
                "twilio.connect_timeout",
            ),
            (
                TwilioConfig {
                    request_timeout: Duration::ZERO,
                    ..config()
                },
                "twilio.request_timeout",
            ),
            (
                TwilioConfig {
                    backoff: Backoff {
                        base: Duration::from_secs(2),
                        cap: Duration::from_secs(1),
                        max_retries: 1,
                    },
                    ..config()
                },
                "twilio.backoff",
            ),
        ];
        for (c, key) in cases {
            assert_eq!(key_of(&c), key);
        }
    }

    #[test]
    fn debug_redacts_the_token() {
        let c = config();
        let shown = format!("{c:?}");
        assert!(!shown.contains("tok3n-value"), "{shown}");
        assert!(shown.contains("[REDACTED]"));
        let err = TwilioConfig {
            auth_token: SecretString::from("tok3n-value "),
            ..config()
        }
        .validate()
        .expect_err("refused");
        assert!(!err.to_string().contains("tok3n"));
    }

    #[test]
    fn the_rate_is_shared_between_workers() {
        assert!(config().per_worker_quota().is_none(), "no cap by default");
        let c = TwilioConfig {
            requests_per_second: Some(100),
            workers: 4,
            ..config()
        };
        let q = c.per_worker_quota().expect("capped");
        assert_eq!(q.replenish_interval(), Duration::from_millis(40));
        assert_eq!(
            q.burst_size().get(),
            10,
            "a burst of at most the concurrency"
        );
        let slow = TwilioConfig {
            requests_per_second: Some(1),
            workers: 3,
            ..config()
        }
        .per_worker_quota()
        .expect("capped");
        assert_eq!(slow.replenish_interval(), Duration::from_secs(3));
        assert_eq!(slow.burst_size().get(), 1);
    }
}
