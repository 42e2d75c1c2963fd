//! `SmsIssuer`: asks the verification server to issue codes and text them.

use std::time::Duration;

use async_trait::async_trait;
use ca_notify_domain::{DedupKey, ItemAnswer, PhoneNumber, TestType};
use chrono::NaiveDate;
use tokio::time::Instant;

/// The verification server's batch limit (`handle_issue_batch.go:30`).
pub const MAX_BATCH_ITEMS: usize = 10;

/// One code to issue.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IssueItem {
    /// Where the SMS goes.
    pub phone: PhoneNumber,
    /// The idempotency handle: the same for every attempt, run and release.
    pub uuid: DedupKey,
    /// The record's test type; `None` means the issuer's configured default.
    pub test_type: Option<TestType>,
    /// The test date, already checked against the server's window.
    pub test_date: Option<NaiveDate>,
    /// The symptom onset date, likewise.
    pub symptom_date: Option<NaiveDate>,
    /// Offset in minutes of the user's time zone.
    pub tz_offset: i32,
}

/// Why a whole batch request failed (per-item failures are [`ItemAnswer`]s instead).
#[derive(Debug, thiserror::Error)]
pub enum IssueError {
    /// The server's request limiter said 429, or its reset comes after the caller's
    /// deadline; nothing was issued. Ask again no sooner than `until`.
    #[error("the verification server is rate limiting us")]
    RateLimited {
        /// When the limiter resets (from `Retry-After`).
        until: Instant,
    },
    /// `quota_exceeded` for the whole request: the realm's daily quota is spent. The run
    /// stops; records are released, not marked 0.
    #[error("the realm's daily code quota is exhausted")]
    QuotaExhausted,
    /// `maintenance_mode`, `sms_queue_full`, or failures that provably reached no handler
    /// (a connection never made) past the retry budget or deadline.
    /// Nothing was issued. Records are released.
    #[error("the verification server is unavailable: {0}")]
    Unavailable(String),
    /// The request reached, or may have reached, the server, but no answer for its items
    /// came back (a timeout, a dropped connection, a 5xx or 2xx without `codes`): anything
    /// may have happened, a text included. Never retried by the adapter.
    #[error("the verification server gave no answer for the items: {message}")]
    NoAnswer {
        /// What happened, scrubbed.
        message: String,
        /// Whether the server may still be working on the request (the connection was
        /// lost, or a gateway gave up waiting), so that nobody may send its uuids again
        /// before [`SmsIssuer::max_request_duration`] has passed since it was sent. False
        /// when the server itself answered, and so has finished.
        may_still_run: bool,
    },
    /// No attempt could start early enough to finish before `deadline` (a request once
    /// sent is never cut short); nothing was sent. The records are deferred to a later run.
    #[error("no batch-issue request could finish before the deadline; nothing was sent")]
    NoTimeLeft,
    /// 401/403: the API key is wrong, or we are outside the realm's IP allow-list. The
    /// run stops with nothing marked.
    #[error("the verification server refused our API key (check the key and the realm's IP allow-list): {0}")]
    Unauthorized(String),
    /// A permanent whole-request refusal (bulk issue disabled, too many items, an
    /// unparsable request). Our bug or the realm's configuration; the run stops.
    #[error("the verification server rejected the request: {0}")]
    Rejected(String),
    /// Anything else. Records are released.
    #[error(transparent)]
    Unknown(#[from] anyhow::Error),
}

/// Issues verification codes, which the server texts.
#[cfg_attr(feature = "mock", mockall::automock)]
#[async_trait]
pub trait SmsIssuer: Send + Sync {
    /// Issues one batch of at most [`MAX_BATCH_ITEMS`] codes with a single request and
    /// returns one answer per item, in request order. Failures that provably reached no
    /// handler (a connection never made) are retried inside the adapter with the same
    /// uuids, inside `deadline`; a request that may have reached the server and got no
    /// answer for its items is never retried ([`IssueError::NoAnswer`]). A request once
    /// started runs to its own timeout, whatever `deadline` says.
    ///
    /// The issuer alone decides when its requests may leave: it paces them to the
    /// server's budget and, after a 429 or a spent window, holds every caller's request
    /// until the reset, waiting inside the call when the reset comes in time and returning
    /// [`IssueError::RateLimited`] when it does not. Callers keep no pause of their own.
    ///
    /// # Errors
    /// [`IssueError::RateLimited`] for the limiter's 429; [`IssueError::QuotaExhausted`]
    /// for a whole-request `quota_exceeded`; [`IssueError::Unavailable`] for maintenance,
    /// a full SMS queue, or transport failures past the retry budget;
    /// [`IssueError::NoAnswer`] when a request that may have reached the server got no
    /// answer; [`IssueError::Unauthorized`] for 401/403; [`IssueError::Rejected`] for a permanent
    /// whole-request 400. An adapter MUST return per-item failures (including 409
    /// `uuid_already_exists`) as [`ItemAnswer`]s, never as an error.
    async fn issue_batch(
        &self,
        items: &[IssueItem],
        deadline: Instant,
    ) -> Result<Vec<ItemAnswer>, IssueError>;

    /// The longest one attempt of [`SmsIssuer::issue_batch`] can run once sent (the
    /// adapter's request timeout). The pipeline starts no request that could end after
    /// the run's deadline, because cutting one short would disconnect the server in the
    /// middle of its sends: a text may go out while the code is deleted.
    fn max_request_duration(&self) -> Duration;
}
