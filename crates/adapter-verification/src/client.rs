//! [`VerificationClient`]: the [`SmsIssuer`] that speaks `/api/batch-issue`.
//!
//! One call is one batch of at most ten items and, barring transport failures, one
//! HTTP request. The flow: items sharing a uuid are sent once; the pacer waits for a
//! slot; the answer is judged per item ([`crate::classify`]); 5xx answers, timeouts and
//! dropped connections are retried with full-jitter backoff and the very same body, so
//! every item keeps its uuid and an item the server already issued comes back as 409
//! `uuid_already_exists` instead of a second text.
//!
//! Deadline rule: no attempt and no backoff sleep starts that would end after the
//! caller's deadline, but a request in flight keeps its full `request_timeout`. Cutting
//! it short would disconnect the server in the middle of its Twilio send, which can
//! both fail the item and still deliver the text (contract §5.3).

use std::fmt;
use std::time::Duration;

use async_trait::async_trait;
use ca_notify_domain::{scrub_phone_numbers, Backoff, DedupKey, GiveUp, ItemAnswer, TestType};
use ca_notify_ports::{IssueError, IssueItem, SmsIssuer, MAX_BATCH_ITEMS};
use reqwest::header::{HeaderMap, HeaderName, HeaderValue, ACCEPT, CONTENT_TYPE};
use reqwest::{StatusCode, Url};
use secrecy::ExposeSecret;
use tokio::time::Instant;
use tracing::Instrument as _;

use crate::classify::{self, Judgement, ReceivedAt};
use crate::config::{ConfigError, VerificationConfig};
use crate::pacing::{NotBefore, Pacer, RateLimitHeaders};
use crate::wire::{self, BatchIssueRequest, IssueCodeRequest, MAX_BODY_BYTES};

/// The API key header (`pkg/controller/middleware/apikey.go:35`).
pub(crate) static X_API_KEY: HeaderName = HeaderName::from_static("x-api-key");

/// The largest answer we read; a full batch answer is a few kilobytes.
const MAX_ANSWER_BYTES: usize = 1 << 20;

/// The verification server client. Cheap to share: wrap it in an `Arc` and hand it to
/// every task of the process, so they all draw on one pacer.
pub struct VerificationClient {
    pub(crate) http: reqwest::Client,
    pub(crate) base_url: Url,
    endpoint: Url,
    pub(crate) api_key: HeaderValue,
    test_type: TestType,
    sms_template_label: Option<String>,
    pub(crate) request_timeout: Duration,
    backoff: Backoff,
    pacer: Pacer,
}

impl fmt::Debug for VerificationClient {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("VerificationClient")
            .field("endpoint", &self.endpoint.as_str())
            .field("api_key", &"[REDACTED]")
            .field("test_type", &self.test_type)
            .field("sms_template_label", &self.sms_template_label)
            .field("request_timeout", &self.request_timeout)
            .field("backoff", &self.backoff)
            .field("pacer", &self.pacer)
            .finish()
    }
}

/// What one HTTP exchange gave back.
pub(crate) struct Exchange {
    pub(crate) status: StatusCode,
    pub(crate) headers: HeaderMap,
    pub(crate) body: Vec<u8>,
    pub(crate) at: ReceivedAt,
}

impl VerificationClient {
    /// Validates the settings and builds the client.
    ///
    /// # Errors
    /// [`ConfigError`] naming the bad setting, or the TLS backend's failure.
    pub fn new(config: VerificationConfig) -> Result<Self, ConfigError> {
        config.validate()?;
        let base_url = config.endpoint_base()?;
        let endpoint = join(&base_url, "api/batch-issue")?;
        let mut api_key =
            HeaderValue::from_str(config.api_key.expose_secret().trim()).map_err(|_| {
                ConfigError::new(
                    "verification.api_key",
                    "the API key cannot go in an HTTP header",
                )
            })?;
        api_key.set_sensitive(true);
        if config.request_timeout < Duration::from_secs(45) {
            tracing::warn!(
                timeout_s = config.request_timeout.as_secs_f64(),
                "The verification request timeout is under 45 s; the server's own SMS send can take 30 s."
            );
        }
        let http = ca_notify_http::client_builder(config.connect_timeout)
            .timeout(config.request_timeout)
            .build()
            .map_err(|e| {
                ConfigError::new(
                    "verification",
                    format!("could not build the HTTP client: {e}"),
                )
            })?;
        Ok(Self {
            http,
            pacer: Pacer::new(config.requests_per_minute, config.workers),
            base_url,
            endpoint,
            api_key,
            test_type: config.test_type,
            sms_template_label: config.sms_template_label,
            request_timeout: config.request_timeout,
            backoff: config.transport_backoff,
        })
    }

    /// The pacer every request of this client waits on.
    pub fn pacer(&self) -> &Pacer {
        &self.pacer
    }

    /// Encodes a batch body, refusing one the server would reject for its size.
    pub(crate) fn encode(&self, request: &BatchIssueRequest<'_>) -> Result<Vec<u8>, IssueError> {
        let body = serde_json::to_vec(request)
            .map_err(|e| IssueError::Unknown(anyhow::anyhow!("could not encode the batch: {e}")))?;
        if body.len() > MAX_BODY_BYTES {
            return Err(IssueError::Rejected(format!(
                "the batch body is {} bytes, above the server's {MAX_BODY_BYTES}",
                body.len()
            )));
        }
        Ok(body)
    }

    /// One POST of `body`, answer read in full. A failure says whether the request may
    /// have reached the server: only a connection that was never made proves it did not.
    pub(crate) async fn exchange(&self, body: Vec<u8>) -> Result<Exchange, TransportFailure> {
        let mut response = self
            .http
            .post(self.endpoint.clone())
            .header(&X_API_KEY, self.api_key.clone())
            .header(CONTENT_TYPE, "application/json")
            .header(ACCEPT, "application/json")
            .body(body)
            .send()
            .await
            .map_err(|e| TransportFailure::of(&e, self.request_timeout))?;
        let status = response.status();
        let headers = response.headers().clone();
        let mut body = Vec::new();
        while let Some(chunk) = response
            .chunk()
            .await
            .map_err(|e| TransportFailure::of(&e, self.request_timeout))?
        {
            if body.len() + chunk.len() > MAX_ANSWER_BYTES {
                return Err(TransportFailure::NoAnswer(format!(
                    "the answer is larger than {MAX_ANSWER_BYTES} bytes"
                )));
            }
            body.extend_from_slice(&chunk);
        }
        Ok(Exchange {
            status,
            headers,
            body,
            at: ReceivedAt::now(),
        })
    }

    async fn send_with_retries(
        &self,
        body: Vec<u8>,
        uuids: &[DedupKey],
        deadline: Instant,
    ) -> Result<Vec<ItemAnswer>, IssueError> {
        let mut retries = 0u32;
        // A request once sent runs to its own timeout, so the last moment one may start is
        // a whole timeout before the caller's deadline.
        let latest_start = deadline.checked_sub(self.request_timeout);
        loop {
            let Some(last_start) = latest_start.filter(|t| Instant::now() <= *t) else {
                // Before any attempt this is the caller's clock running out, not the
                // server failing; after failed attempts, the server stayed unreachable.
                return Err(if retries == 0 {
                    IssueError::NoTimeLeft
                } else {
                    IssueError::Unavailable(
                        "no time left before the deadline to try again".to_owned(),
                    )
                });
            };
            let ticket = self
                .pacer
                .acquire(last_start)
                .await
                .map_err(|NotBefore(until)| IssueError::RateLimited { until })?;
            let judgement = match self.exchange(body.clone()).await {
                Ok(exchange) => {
                    ticket.answered(
                        RateLimitHeaders::from_headers(&exchange.headers).as_ref(),
                        exchange.at.wall,
                        exchange.at.instant,
                    );
                    tracing::debug!(
                        status = exchange.status.as_u16(),
                        attempt = retries + 1,
                        "The verification server answered."
                    );
                    classify::judge(
                        exchange.status,
                        &exchange.headers,
                        &exchange.body,
                        uuids,
                        exchange.at,
                    )
                }
                Err(TransportFailure::NotSent(reason)) => {
                    ticket.not_sent();
                    Judgement::Transient(reason)
                }
                Err(TransportFailure::NoAnswer(reason)) => {
                    // It may have reached the server and taken a token.
                    drop(ticket);
                    Judgement::NoAnswer {
                        text: reason,
                        may_still_run: true,
                    }
                }
            };
            match judgement {
                Judgement::Answered(answers) => return Ok(answers),
                Judgement::NoAnswer {
                    text,
                    may_still_run,
                } => {
                    // Anything may have happened, and the server may still be sending: a
                    // re-send now could meet its in-flight row, or text again after a
                    // cancelled send. The caller decides when the uuids may go again.
                    tracing::warn!(
                        attempt = retries + 1,
                        error = %text,
                        may_still_run,
                        "The batch got no answer for its items; it is not re-sent here."
                    );
                    return Err(IssueError::NoAnswer {
                        message: text,
                        may_still_run,
                    });
                }
                Judgement::Failed(error) => {
                    if let IssueError::RateLimited { until } = &error {
                        self.pacer.hold_until(*until);
                    } else {
                        tracing::warn!(error = %error, "The verification server refused the batch.");
                    }
                    return Err(error);
                }
                Judgement::Transient(reason) => {
                    // No server Retry-After here: a transient failure is a request the
                    // server never read.
                    let room = last_start.saturating_duration_since(Instant::now());
                    let delay =
                        match self
                            .backoff
                            .next_retry(retries, rand::random::<f64>(), None, room)
                        {
                            Ok(delay) => delay,
                            Err(GiveUp::BudgetSpent) => {
                                tracing::warn!(
                                    attempts = retries + 1,
                                    error = %reason,
                                    "The verification server kept failing; giving the batch back."
                                );
                                return Err(IssueError::Unavailable(format!(
                                    "{reason} (gave up after {} attempts)",
                                    retries + 1
                                )));
                            }
                            Err(GiveUp::PastDeadline(_)) => {
                                return Err(IssueError::Unavailable(format!(
                                    "{reason} (no time left before the deadline to retry)"
                                )));
                            }
                        };
                    tracing::warn!(
                        attempt = retries + 1,
                        delay_ms = delay.as_millis() as u64,
                        error = %reason,
                        "The batch failed in transit; retrying it with the same uuids."
                    );
                    tokio::time::sleep(delay).await;
                    retries += 1;
                }
            }
        }
    }
}

#[async_trait]
impl SmsIssuer for VerificationClient {
    async fn issue_batch(
        &self,
        items: &[IssueItem],
        deadline: Instant,
    ) -> Result<Vec<ItemAnswer>, IssueError> {
        if items.is_empty() {
            return Ok(Vec::new());
        }
        if items.len() > MAX_BATCH_ITEMS {
            return Err(IssueError::Rejected(format!(
                "{} items in one batch; the server takes at most {MAX_BATCH_ITEMS}",
                items.len()
            )));
        }
        let plan = UniquePlan::new(items);
        let label = self.sms_template_label.as_deref();
        let request = BatchIssueRequest {
            padding: wire::random_padding(),
            codes: plan
                .unique
                .iter()
                .map(|&i| IssueCodeRequest::from_item(&items[i], self.test_type, label))
                .collect(),
        };
        let body = self.encode(&request)?;
        drop(request);
        let uuids: Vec<DedupKey> = plan.unique.iter().map(|&i| items[i].uuid).collect();
        let span = tracing::info_span!(
            "call_verification_server",
            items = items.len(),
            unique = uuids.len()
        );
        let answers = self
            .send_with_retries(body, &uuids, deadline)
            .instrument(span)
            .await?;
        Ok(plan.fan_out(answers))
    }

    fn max_request_duration(&self) -> Duration {
        self.request_timeout
    }
}

/// Items that share a uuid (the same phone and test in two rows) are sent once: the
/// server would answer the later one 409 before the first one's SMS was even tried,
/// and if that send then failed, the duplicate would stand as "already sent" with no
/// text ever delivered (`issue.go:95-174`: commits run in order, sends afterwards).
struct UniquePlan {
    /// Index in `items` of each uuid's first occurrence.
    unique: Vec<usize>,
    /// For every item, the position of its uuid in `unique`.
    slot_of: Vec<usize>,
}

impl UniquePlan {
    fn new(items: &[IssueItem]) -> Self {
        let mut unique: Vec<usize> = Vec::with_capacity(items.len());
        let mut slot_of = Vec::with_capacity(items.len());
        for (index, item) in items.iter().enumerate() {
            match unique.iter().position(|&u| items[u].uuid == item.uuid) {
                Some(slot) => {
                    tracing::debug!(uuid = %item.uuid, "Two items of the batch share a uuid; sending it once.");
                    slot_of.push(slot);
                }
                None => {
                    slot_of.push(unique.len());
                    unique.push(index);
                }
            }
        }
        Self { unique, slot_of }
    }

    /// One answer per item: a duplicate of an issued item is "already exists", the
    /// same as it would have been had it followed in a later batch.
    fn fan_out(&self, answers: Vec<ItemAnswer>) -> Vec<ItemAnswer> {
        self.slot_of
            .iter()
            .enumerate()
            .map(|(index, &slot)| {
                let answer = answers.get(slot).cloned().unwrap_or(ItemAnswer::Missing);
                match answer {
                    ItemAnswer::Issued if self.unique[slot] != index => ItemAnswer::AlreadyExists,
                    other => other,
                }
            })
            .collect()
    }
}

pub(crate) fn join(base: &Url, path: &str) -> Result<Url, ConfigError> {
    let mut base = base.clone();
    if !base.path().ends_with('/') {
        let with_slash = format!("{}/", base.path());
        base.set_path(&with_slash);
    }
    base.join(path).map_err(|e| {
        ConfigError::new(
            "verification.base_url",
            format!("cannot form the endpoint URL: {e}"),
        )
    })
}

/// A request that got no HTTP answer.
pub(crate) enum TransportFailure {
    /// No connection was made: the server never saw the request. The text is scrubbed.
    NotSent(String),
    /// The request may have reached the server (a timeout, a reset, a broken answer).
    NoAnswer(String),
}

impl TransportFailure {
    fn of(error: &reqwest::Error, timeout: Duration) -> Self {
        let text = describe(error, timeout);
        if error.is_connect() {
            Self::NotSent(text)
        } else {
            Self::NoAnswer(text)
        }
    }
}

impl fmt::Display for TransportFailure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::NotSent(text) | Self::NoAnswer(text) => f.write_str(text),
        }
    }
}

/// A transport failure in words, with its causes, scrubbed.
fn describe(error: &reqwest::Error, timeout: Duration) -> String {
    if error.is_timeout() {
        return format!("no answer within {} s", timeout.as_secs_f64());
    }
    let mut text = if error.is_connect() {
        "could not connect".to_owned()
    } else if error.is_body() || error.is_decode() {
        "the answer broke off".to_owned()
    } else {
        "the request failed in transit".to_owned()
    };
    let mut source = std::error::Error::source(error);
    while let Some(cause) = source {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        source = cause.source();
    }
    scrub_phone_numbers(&text)
}

#[cfg(test)]
mod tests {
    use super::*;
    use ca_notify_domain::{DedupSecret, PhoneParser};

    fn item(phone: &str, record: &str) -> IssueItem {
        let phone = PhoneParser::default().parse(phone).expect("phone");
        let secret = DedupSecret::new("a long enough test secret".to_owned().into()).expect("s");
        let test_date = chrono::NaiveDate::from_ymd_opt(2021, 6, 14);
        IssueItem {
            uuid: DedupKey::derive(&secret, &phone, test_date, &record.into()),
            phone,
            test_type: None,
            test_date,
            symptom_date: None,
            tz_offset: 0,
        }
    }

    #[test]
    fn duplicates_are_sent_once_and_answered_as_already_existing() {
        let items = [
            item("+12065550101", "a"),
            item("+12065550102", "b"),
            item("(206) 555-0101", "c"),
            item("+12065550101", "d"),
        ];
        let plan = UniquePlan::new(&items);
        assert_eq!(plan.unique, vec![0, 1]);
        assert_eq!(plan.slot_of, vec![0, 1, 0, 0]);
        let answers = plan.fan_out(vec![ItemAnswer::Issued, ItemAnswer::failed("sms_failure")]);
        assert_eq!(
            answers,
            vec![
                ItemAnswer::Issued,
                ItemAnswer::failed("sms_failure"),
                ItemAnswer::AlreadyExists,
                ItemAnswer::AlreadyExists,
            ]
        );
        let answers = plan.fan_out(vec![ItemAnswer::failed("sms_failure"), ItemAnswer::Issued]);
        assert_eq!(
            answers[2],
            ItemAnswer::failed("sms_failure"),
            "a failure is shared"
        );
    }

    #[test]
    fn the_endpoint_keeps_a_path_prefix() {
        let base = Url::parse("https://h.example/prefix").expect("url");
        assert_eq!(
            join(&base, "api/batch-issue").expect("join").as_str(),
            "https://h.example/prefix/api/batch-issue"
        );
        let base = Url::parse("https://h.example").expect("url");
        assert_eq!(
            join(&base, "api/batch-issue").expect("join").as_str(),
            "https://h.example/api/batch-issue"
        );
    }
}
