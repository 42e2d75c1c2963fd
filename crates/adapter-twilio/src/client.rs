//! The Twilio Lookup v2 adapter: [`TwilioValidator`], a [`PhoneValidator`] over
//! `GET {base}/v2/PhoneNumbers/%2B…?Fields=line_type_intelligence`.
//!
//! One number per request, as many in flight as Twilio lets us (the `pace` module: up to
//! `concurrency`, halved on a 429 and won back one answer at a time), at most this
//! worker's share of `requests_per_second` started when that optional cap is set (a
//! `governor` limiter), each distinct number looked up once (the `cache` module). Answers are judged in one place,
//! `interpret_error` and `interpret_lookup`:
//!
//! * 200 → the verdict of the body under the [`LineTypePolicy`] (`valid == false` is
//!   `Invalid`, as Lookup v2 reports invalid numbers with 200, not 404);
//! * an account-level Twilio code (60606 package not enabled, 20403 account suspended, …;
//!   the `account` module), in an error body or as Line Type Intelligence's `error_code`
//!   → `Misconfigured`, never retried and never a verdict;
//! * 401, 403 or Twilio code 20003 → `Unauthorized`, never retried and never a verdict:
//!   our credentials say nothing about the number;
//! * 429/20429 → Twilio pushing back: fewer lookups in flight, and the lookup retried
//!   until the deadline (never a verdict, never counted against the retry budget);
//! * 408, 5xx, timeouts, resets → retried (the `retry` module), then `Unavailable`;
//! * anything else (400, 404, a 200 that is not a Lookup body) → `Unknown`, so the record
//!   is deferred rather than judged on a misunderstanding.
//!
//! The `+` is sent percent-encoded (`%2B`): Twilio accepts both, and `%2B` cannot be read
//! as a space by any proxy (twilio-ruby#659 sent it so). Outside error text is scrubbed of
//! phone numbers before it reaches an error or a log line, and `reqwest` errors are stripped
//! of their URL, which holds the number.

use std::error::Error as StdError;
use std::fmt;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, SystemTime};

use async_trait::async_trait;
use base64::engine::general_purpose::STANDARD as BASE64;
use base64::Engine as _;
use ca_notify_domain::{Backoff, PhoneNumber};
use ca_notify_ports::{PhoneValidator, PhoneVerdict, ValidationError};
use governor::clock::{Clock, DefaultClock};
use governor::{DefaultDirectRateLimiter, RateLimiter};
use reqwest::header::{HeaderMap, HeaderValue, ACCEPT, AUTHORIZATION, RETRY_AFTER};
use reqwest::StatusCode;
use secrecy::{ExposeSecret, SecretString};
use tokio::time::{timeout_at, Instant};

use crate::account;
use crate::cache::VerdictCache;
use crate::config::{ConfigError, TwilioConfig};
use crate::pace::Aimd;
use crate::policy::{LineReading, LineTypePolicy};
use crate::retry::{run_with_retries, Attempt};
use crate::wire::{safe_text, LookupResponse, TwilioErrorBody};

/// Lookup answers are about 1 KiB; anything past this is not one.
const MAX_BODY_BYTES: usize = 64 * 1024;

/// The number `check_credentials` looks up: the one in Twilio's own Lookup v2 examples.
const PROBE_DIGITS: &str = "14159929960";

/// Lookup error 60616, "Lookup Package Rate Limit Exceeded".
const PACKAGE_RATE_LIMITED: i64 = 60616;

/// Counters of one validator, for the run report.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct TwilioStats {
    /// HTTP requests sent (first attempts and retries).
    pub requests: u64,
    /// Of those, retries.
    pub retries: u64,
    /// Distinct numbers with a cached verdict.
    pub cached_numbers: usize,
    /// Answers that were Twilio pushing back (429).
    pub throttled: u64,
    /// Lookups allowed in flight now (the configured concurrency until Twilio pushes back).
    pub allowed_concurrency: usize,
}

/// The Twilio Lookup v2 [`PhoneValidator`]. Create one per run: it remembers every verdict.
pub struct TwilioValidator {
    http: reqwest::Client,
    /// `{base}/v2/PhoneNumbers/`, parsed once: a lookup's URL is a clone with its path
    /// and query set, so the scheme and host are not parsed again for every number.
    lookup_prefix: reqwest::Url,
    account_sid: String,
    /// `Basic base64(sid:token)`, marked sensitive so `Debug` of a header map hides it.
    authorization: HeaderValue,
    pace: Aimd,
    cap: Option<DefaultDirectRateLimiter>,
    clock: DefaultClock,
    backoff: Backoff,
    request_timeout: Duration,
    policy: LineTypePolicy,
    cache: VerdictCache,
    requests: AtomicU64,
    retries: AtomicU64,
}

impl fmt::Debug for TwilioValidator {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TwilioValidator")
            .field("lookup_prefix", &self.lookup_prefix.as_str())
            .field("account_sid", &self.account_sid)
            .field("auth_token", &"[REDACTED]")
            .field("allowed_concurrency", &self.pace.allowed())
            .field("backoff", &self.backoff)
            .field("request_timeout", &self.request_timeout)
            .field("policy", &self.policy)
            .field("stats", &self.stats())
            .finish_non_exhaustive()
    }
}

impl TwilioValidator {
    /// Validates `config` and builds the client.
    ///
    /// # Errors
    /// A [`ConfigError`] naming the bad setting.
    pub fn new(config: TwilioConfig) -> Result<Self, ConfigError> {
        config.validate()?;
        let base = config.lookup_base()?;
        let mut lookup_prefix = base.clone();
        lookup_prefix.set_path(&format!(
            "{}/v2/PhoneNumbers/",
            base.path().trim_end_matches('/')
        ));
        let authorization = basic_auth(&config.account_sid, &config.auth_token)?;
        let http = ca_notify_http::client_builder(config.connect_timeout)
            .pool_max_idle_per_host(config.concurrency)
            .tcp_nodelay(true)
            .https_only(base.scheme() == "https")
            .build()
            .map_err(|e| {
                ConfigError::new("twilio", format!("cannot build the HTTP client: {e}"))
            })?;
        let clock = DefaultClock::default();
        let cap = config
            .per_worker_quota()
            .map(|quota| RateLimiter::direct_with_clock(quota, clock.clone()));
        Ok(Self {
            http,
            lookup_prefix,
            account_sid: config.account_sid,
            authorization,
            pace: Aimd::new(config.concurrency),
            cap,
            clock,
            backoff: config.backoff,
            request_timeout: config.request_timeout,
            policy: config.policy,
            cache: VerdictCache::default(),
            requests: AtomicU64::new(0),
            retries: AtomicU64::new(0),
        })
    }

    /// Checks that Twilio accepts our credentials, for `ca-notify check`. Uses the free basic
    /// lookup (no `Fields`) of the number in Twilio's own examples, so it costs nothing.
    ///
    /// # Errors
    /// A description, safe to print, of why the credentials or the host do not work.
    pub async fn check_credentials(&self) -> Result<(), String> {
        let url = self.lookup_url(PROBE_DIGITS, None);
        let deadline = Instant::now() + self.request_timeout.saturating_mul(3);
        let result = run_with_retries(&self.backoff, deadline, rand::random::<f64>, |attempt| {
            self.send(&url, attempt, deadline, |status, retry_after, body| {
                if !status.is_success() {
                    return interpret_error(status, retry_after, body);
                }
                match serde_json::from_slice::<LookupResponse>(body) {
                    Ok(_) => Attempt::Done(()),
                    Err(_) => Attempt::Fail(ValidationError::Unknown(anyhow::anyhow!(
                        "the host answered HTTP {status} but not with a Lookup response; is twilio.base_url the Lookup host?"
                    ))),
                }
            })
        })
        .await;
        result.map_err(|e| e.to_string())
    }

    /// Counters so far.
    pub fn stats(&self) -> TwilioStats {
        TwilioStats {
            requests: self.requests.load(Ordering::Relaxed),
            retries: self.retries.load(Ordering::Relaxed),
            cached_numbers: self.cache.len(),
            throttled: self.pace.throttled(),
            allowed_concurrency: self.pace.allowed(),
        }
    }

    /// Forgets every cached verdict, for a long-lived process that starts a new run.
    pub fn clear_cache(&self) {
        self.cache.clear();
    }

    /// `{base}/v2/PhoneNumbers/%2B{digits}`, with `query`.
    fn lookup_url(&self, digits: &str, query: Option<&str>) -> reqwest::Url {
        let mut url = self.lookup_prefix.clone();
        let path = format!("{}%2B{digits}", self.lookup_prefix.path());
        url.set_path(&path);
        url.set_query(query);
        url
    }

    /// One number, with retries, uncached.
    async fn lookup(
        &self,
        phone: &PhoneNumber,
        deadline: Instant,
    ) -> Result<PhoneVerdict, ValidationError> {
        let digits = phone
            .expose_e164()
            .strip_prefix('+')
            .filter(|d| !d.is_empty() && d.bytes().all(|b| b.is_ascii_digit()))
            .ok_or_else(|| {
                ValidationError::Unknown(anyhow::anyhow!("the number is not in E.164 form"))
            })?;
        let url = self.lookup_url(digits, Some("Fields=line_type_intelligence"));
        run_with_retries(&self.backoff, deadline, rand::random::<f64>, |attempt| {
            self.send(&url, attempt, deadline, |status, retry_after, body| {
                interpret_lookup(status, retry_after, body, &self.policy)
            })
        })
        .await
    }

    /// One request: a place in flight, a cell of the optional cap, the call, the answer
    /// read (capped) and handed to `interpret`; a 429 slows the pace and comes back as
    /// [`Attempt::Throttled`]. Waits end at `deadline`.
    async fn send<T>(
        &self,
        url: &reqwest::Url,
        attempt: u32,
        deadline: Instant,
        interpret: impl FnOnce(StatusCode, Option<Duration>, &[u8]) -> Attempt<T>,
    ) -> Attempt<T> {
        let Some(slot) = self.pace.acquire(deadline).await else {
            return Attempt::Fail(ValidationError::Unavailable(
                "the deadline passed while waiting for a free lookup slot".to_owned(),
            ));
        };
        if !self.wait_for_rate_limit(deadline).await {
            return Attempt::Fail(ValidationError::Unavailable(
                "the deadline passed while waiting for the lookup rate limit".to_owned(),
            ));
        }
        let remaining = deadline.saturating_duration_since(Instant::now());
        if remaining.is_zero() {
            return Attempt::Fail(ValidationError::Unavailable(
                "the deadline passed before the request".to_owned(),
            ));
        }
        self.requests.fetch_add(1, Ordering::Relaxed);
        if attempt > 0 {
            self.retries.fetch_add(1, Ordering::Relaxed);
        }
        let sent = self
            .http
            .get(url.clone())
            .header(AUTHORIZATION, self.authorization.clone())
            .header(ACCEPT, "application/json")
            .timeout(self.request_timeout.min(remaining))
            .send()
            .await;
        let response = match sent {
            Ok(response) => response,
            Err(e) => return transport_failure(e),
        };
        let status = response.status();
        let retry_after = retry_after(response.headers());
        let body = match read_capped(response).await {
            Ok(body) => body,
            Err(e) => return transport_failure(e),
        };
        tracing::trace!(
            status = status.as_u16(),
            attempt,
            body_bytes = body.len(),
            "Twilio Lookup answered."
        );
        if status == StatusCode::TOO_MANY_REQUESTS {
            slot.throttled(retry_after);
            return match interpret(status, retry_after, &body) {
                Attempt::Retry {
                    reason,
                    retry_after,
                } => Attempt::Throttled {
                    reason,
                    retry_after,
                },
                other => other,
            };
        }
        if !status.is_server_error() {
            slot.answered();
        }
        interpret(status, retry_after, &body)
    }

    /// Waits for a cell of the optional cap on tokio's clock; `false` if `deadline` comes
    /// first.
    async fn wait_for_rate_limit(&self, deadline: Instant) -> bool {
        let Some(cap) = &self.cap else {
            return true;
        };
        loop {
            match cap.check() {
                Ok(()) => return true,
                Err(not_until) => {
                    let wait = not_until.wait_time_from(self.clock.now());
                    if Instant::now() + wait >= deadline {
                        return false;
                    }
                    tokio::time::sleep(wait).await;
                }
            }
        }
    }
}

#[async_trait]
impl PhoneValidator for TwilioValidator {
    async fn check(
        &self,
        phone: &PhoneNumber,
        deadline: Instant,
    ) -> Result<PhoneVerdict, ValidationError> {
        // A check that joins another's lookup of the same number still ends at its own
        // deadline.
        let checked = timeout_at(
            deadline,
            self.cache
                .get_or_lookup(phone, || self.lookup(phone, deadline)),
        )
        .await;
        checked.unwrap_or_else(|_| {
            Err(ValidationError::Unavailable(
                "the deadline passed while the number was being looked up".to_owned(),
            ))
        })
    }
}

/// The judgement of a Lookup answer.
pub(crate) fn interpret_lookup(
    status: StatusCode,
    retry_after: Option<Duration>,
    body: &[u8],
    policy: &LineTypePolicy,
) -> Attempt<PhoneVerdict> {
    if !status.is_success() {
        return interpret_error(status, retry_after, body);
    }
    match serde_json::from_slice::<LookupResponse>(body) {
        Ok(answer) => judge_answer(&answer, policy),
        Err(e) => Attempt::Fail(ValidationError::Unknown(anyhow::anyhow!(
            "Twilio Lookup answered HTTP {} with a body that is not a Lookup response: {}",
            status.as_u16(),
            safe_text(&e.to_string())
        ))),
    }
}

/// A decoded Lookup answer: the policy's verdict, unless Line Type Intelligence failed for
/// a reason that is not the number's. An account fault (60606, …) is fatal; 60616, the
/// package's rate limit ("downstream providers do not have uniform rate limits",
/// twilio.com/docs/api/errors/60616), is retried like a 429.
fn judge_answer(answer: &LookupResponse, policy: &LineTypePolicy) -> Attempt<PhoneVerdict> {
    if answer.valid {
        if let LineReading::LookupError(code) = answer.line_reading() {
            if let Some(fault) = account::of_lookup_error(code, policy) {
                return Attempt::Fail(fault.error(None));
            }
            if code == PACKAGE_RATE_LIMITED {
                return Attempt::Retry {
                    reason: format!("Line Type Intelligence error {code} (package rate limit)"),
                    retry_after: None,
                };
            }
        }
    }
    Attempt::Done(answer.verdict(policy))
}

/// The judgement of a non-2xx answer: fatal, retryable, or a reason to defer.
pub(crate) fn interpret_error<T>(
    status: StatusCode,
    retry_after: Option<Duration>,
    body: &[u8],
) -> Attempt<T> {
    let parsed = TwilioErrorBody::parse(body);
    let described = TwilioErrorBody::describe(parsed.as_ref(), status.as_u16());
    let code = parsed.as_ref().and_then(|b| b.code);
    // An account-level code (60606 package not enabled, 20403 suspended, …) names the
    // cause more exactly than its status, so it wins over every rule below.
    if let Some(fault) = code.and_then(account::of_error_code) {
        return Attempt::Fail(fault.error(Some(&described)));
    }
    match status.as_u16() {
        // 20003: "Authenticate"/"Permission Denied".
        401 | 403 => Attempt::Fail(ValidationError::Unauthorized(described)),
        _ if code == Some(20003) => Attempt::Fail(ValidationError::Unauthorized(described)),
        // 20429: "Requests that receive 429 responses aren't processed and are safe to
        // retry after backing off" (twilio.com/docs/api/errors/20429).
        408 | 429 | 500..=599 => Attempt::Retry {
            reason: described,
            retry_after,
        },
        _ if code == Some(PACKAGE_RATE_LIMITED) => Attempt::Retry {
            reason: described,
            retry_after,
        },
        404 => Attempt::Fail(ValidationError::Unknown(anyhow::anyhow!(
            "{described}; Lookup v2 answers 200 even for invalid numbers, so is twilio.base_url the Lookup host?"
        ))),
        _ => Attempt::Fail(ValidationError::Unknown(anyhow::anyhow!(
            "Twilio Lookup refused the request: {described}"
        ))),
    }
}

/// Timeouts, refused connections and resets are retried; their text loses the URL (which
/// holds the number) and is scrubbed.
fn transport_failure<T>(error: reqwest::Error) -> Attempt<T> {
    let kind = if error.is_timeout() {
        "the request timed out"
    } else if error.is_connect() {
        "could not connect"
    } else if error.is_body() || error.is_decode() {
        "the answer broke off"
    } else {
        "the request failed"
    };
    let detail = error_chain(&error.without_url());
    Attempt::Retry {
        reason: format!("{kind} ({})", safe_text(&detail)),
        retry_after: None,
    }
}

fn error_chain(error: &dyn StdError) -> String {
    let mut text = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        source = cause.source();
    }
    text
}

fn retry_after(headers: &HeaderMap) -> Option<Duration> {
    let value = headers.get(RETRY_AFTER)?.to_str().ok()?;
    ca_notify_http::retry_after::parse_delay(value, SystemTime::now())
}

async fn read_capped(mut response: reqwest::Response) -> Result<Vec<u8>, reqwest::Error> {
    let mut body = Vec::new();
    while let Some(chunk) = response.chunk().await? {
        let room = MAX_BODY_BYTES.saturating_sub(body.len());
        body.extend_from_slice(&chunk[..chunk.len().min(room)]);
        if body.len() >= MAX_BODY_BYTES {
            break;
        }
    }
    Ok(body)
}

fn basic_auth(user: &str, password: &SecretString) -> Result<HeaderValue, ConfigError> {
    let pair = SecretString::from(format!("{user}:{}", password.expose_secret()));
    let header = SecretString::from(format!(
        "Basic {}",
        BASE64.encode(pair.expose_secret().as_bytes())
    ));
    let mut value = HeaderValue::from_str(header.expose_secret())
        .map_err(|_| ConfigError::new("twilio.auth_token", "cannot be sent in an HTTP header"))?;
    value.set_sensitive(true);
    Ok(value)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn policy() -> LineTypePolicy {
        LineTypePolicy::default()
    }

    #[test]
    fn lookup_urls_keep_the_base_path_and_the_encoded_plus() {
        for (base, expected) in [
            (
                "https://lookups.twilio.com",
                "https://lookups.twilio.com/v2/PhoneNumbers/%2B14155550123?Fields=line_type_intelligence",
            ),
            (
                "http://127.0.0.1:8080/proxy/",
                "http://127.0.0.1:8080/proxy/v2/PhoneNumbers/%2B14155550123?Fields=line_type_intelligence",
            ),
        ] {
            let mut config = TwilioConfig::new(
                "AC00000000000000000000000000000000",
                SecretString::from("token".to_owned()),
            );
            config.base_url = base.to_owned();
            let validator = TwilioValidator::new(config).expect("valid config");
            let url = validator.lookup_url("14155550123", Some("Fields=line_type_intelligence"));
            assert_eq!(url.as_str(), expected);
            assert_eq!(
                validator.lookup_url("14155550123", None).query(),
                None,
                "the probe asks for no fields"
            );
        }
    }

    #[test]
    fn credentials_errors_are_fatal_and_never_a_verdict() {
        let body = br#"{"code": 20003, "message": "Authenticate", "more_info": "https://www.twilio.com/docs/errors/20003", "status": 401}"#;
        for status in [401, 403] {
            let status = StatusCode::from_u16(status).expect("status");
            assert!(matches!(
                interpret_lookup(status, None, body, &policy()),
                Attempt::Fail(ValidationError::Unauthorized(_))
            ));
            assert!(matches!(
                interpret_lookup(status, None, b"<html>nope</html>", &policy()),
                Attempt::Fail(ValidationError::Unauthorized(_))
            ));
        }
        // Code 20003 means our credentials even under an unexpected status.
        assert!(matches!(
            interpret_lookup(StatusCode::BAD_REQUEST, None, body, &policy()),
            Attempt::Fail(ValidationError::Unauthorized(_))
        ));
    }

    #[test]
    fn account_faults_are_misconfigured_whatever_the_status() {
        // The package code and the suspension code, under the statuses Twilio might use.
        for (status, code) in [
            (403, 60606),
            (400, 60606),
            (200, 60606),
            (403, 20403),
            (401, 20005),
        ] {
            let body = format!(
                r#"{{"code": {code}, "message": "Not enabled for +14155550123", "more_info": "https://www.twilio.com/docs/errors/{code}", "status": {status}}}"#
            );
            let status = StatusCode::from_u16(status).expect("status");
            match interpret_error::<()>(status, None, body.as_bytes()) {
                Attempt::Fail(ValidationError::Misconfigured(text)) => {
                    assert!(text.contains(&format!("Twilio code {code} (")), "{text}");
                    assert!(!text.contains("4155550123"), "{text}");
                    assert!(text.contains("twilio.account_sid"), "{text}");
                }
                other => panic!("{status} {code}: {other:?}"),
            }
        }
        // Without an account code, a 403 is still about our credentials.
        assert!(matches!(
            interpret_error::<()>(StatusCode::FORBIDDEN, None, b"<html>403</html>"),
            Attempt::Fail(ValidationError::Unauthorized(_))
        ));
    }

    #[test]
    fn a_failed_package_is_judged_by_whose_fault_it_is() {
        let lti = |code: i64| {
            format!(
                r#"{{"valid": true, "line_type_intelligence": {{"type": null, "error_code": {code}}}}}"#
            )
        };
        let open = LineTypePolicy {
            accept_undetermined: true,
            ..LineTypePolicy::default()
        };
        // The package is off for the account: fatal under any policy.
        for policy in [policy(), open] {
            assert!(matches!(
                interpret_lookup(StatusCode::OK, None, lti(60606).as_bytes(), &policy),
                Attempt::Fail(ValidationError::Misconfigured(_))
            ));
        }
        // Canadian numbers without access: fatal unless undetermined numbers are texted.
        assert!(matches!(
            interpret_lookup(StatusCode::OK, None, lti(60601).as_bytes(), &policy()),
            Attempt::Fail(ValidationError::Misconfigured(_))
        ));
        assert!(matches!(
            interpret_lookup(StatusCode::OK, None, lti(60601).as_bytes(), &open),
            Attempt::Done(PhoneVerdict::SmsCapable { .. })
        ));
        // The package's rate limit is retried; a number outside coverage is the number's.
        assert!(matches!(
            interpret_lookup(StatusCode::OK, None, lti(60616).as_bytes(), &policy()),
            Attempt::Retry { .. }
        ));
        assert!(matches!(
            interpret_lookup(StatusCode::OK, None, lti(60610).as_bytes(), &policy()),
            Attempt::Done(PhoneVerdict::NotSmsCapable { .. })
        ));
        // An invalid number is invalid, whatever its package said.
        let invalid = r#"{"valid": false, "validation_errors": ["TOO_SHORT"], "line_type_intelligence": {"type": null, "error_code": 60606}}"#;
        assert!(matches!(
            interpret_lookup(StatusCode::OK, None, invalid.as_bytes(), &policy()),
            Attempt::Done(PhoneVerdict::Invalid { .. })
        ));
    }

    #[test]
    fn transient_answers_are_retried_with_retry_after() {
        let body = br#"{"code": 20429, "message": "Too Many Requests", "status": 429}"#;
        let after = Some(Duration::from_secs(2));
        match interpret_lookup(StatusCode::TOO_MANY_REQUESTS, after, body, &policy()) {
            Attempt::Retry {
                reason,
                retry_after,
            } => {
                assert_eq!(reason, "HTTP 429, Twilio code 20429: Too Many Requests");
                assert_eq!(retry_after, after);
            }
            other => panic!("{other:?}"),
        }
        for status in [408, 500, 502, 503, 504] {
            let status = StatusCode::from_u16(status).expect("status");
            assert!(
                matches!(
                    interpret_lookup(status, None, b"<html>gateway</html>", &policy()),
                    Attempt::Retry { .. }
                ),
                "{status}"
            );
        }
    }

    #[test]
    fn other_refusals_defer_instead_of_judging() {
        for status in [400, 404, 409, 302] {
            let status = StatusCode::from_u16(status).expect("status");
            assert!(
                matches!(
                    interpret_lookup(status, None, b"", &policy()),
                    Attempt::Fail(ValidationError::Unknown(_))
                ),
                "{status}"
            );
        }
        match interpret_lookup(
            StatusCode::OK,
            None,
            b"<html>captive portal</html>",
            &policy(),
        ) {
            Attempt::Fail(ValidationError::Unknown(e)) => {
                assert!(e.to_string().contains("not a Lookup response"));
            }
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn malformed_body_errors_do_not_echo_numbers() {
        let body = br#"{"valid": "+14155550123"}"#;
        let Attempt::Fail(ValidationError::Unknown(e)) =
            interpret_lookup(StatusCode::OK, None, body, &policy())
        else {
            panic!("refused")
        };
        assert!(!e.to_string().contains("4155550123"), "{e}");
    }

    #[test]
    fn a_valid_answer_is_judged_by_the_policy() {
        let body = br#"{"valid": true, "line_type_intelligence": {"type": "landline", "error_code": null}}"#;
        match interpret_lookup(StatusCode::OK, None, body, &policy()) {
            Attempt::Done(v) => assert_eq!(
                v,
                PhoneVerdict::NotSmsCapable {
                    line_type: "landline".into()
                }
            ),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn basic_auth_header_is_sensitive_and_correct() {
        let value = basic_auth(
            "AC00000000000000000000000000000001",
            &SecretString::from("s3cret"),
        )
        .expect("header");
        assert!(value.is_sensitive());
        let expected = format!(
            "Basic {}",
            BASE64.encode("AC00000000000000000000000000000001:s3cret")
        );
        assert_eq!(value.to_str().expect("ascii"), expected);
        assert!(!format!("{value:?}").contains("czNjcmV0"));
    }
}
