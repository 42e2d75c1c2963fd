//! `POST /api/checkcodestatus`: whether the code issued under a uuid was claimed, for
//! `ca-notify reconcile`.
//!
//! The server's contract (google/exposure-notifications-verification-server):
//! * served on the admin API beside `/api/batch-issue`, behind the same ADMIN API key
//!   and the same request limiter keyed by that key (`internal/routes/adminapi.go:93-117`),
//!   so every check spends the issuing budget: it waits on the client's one [`Pacer`];
//! * request `{"uuid", "padding"}`, answer `{"claimed", "expiresAtTimestamp",
//!   "longExpiresAtTimestamp"}` (`pkg/api/api.go:299-325`, `docs/api.md` §checkcodestatus);
//! * `claimed` is true once someone used the code to get a token (`pkg/api/api.go:314`),
//!   which only the person who received the text can do;
//! * a uuid the realm does not hold answers 404 `code_not_found` ("it may have expired
//!   and been removed", `pkg/controller/codes/logic.go:39-45`); a code issued by another
//!   app answers 401 `code_user_unauthorized` unless the key is an admin key
//!   (`logic.go:59-63`);
//! * the cleanup job deletes a code row once both expiries are older than
//!   `VERIFICATION_CODE_STATUS_MAX_AGE` (default 336 h; `pkg/config/cleanup_server_config.go:74-76`,
//!   `pkg/database/vercode.go:461-470`): about 15 days after issue, a uuid is unknown.

use std::time::Duration;

use reqwest::header::{ACCEPT, CONTENT_TYPE};
use reqwest::StatusCode;
use serde::{Deserialize, Serialize};
use tokio::time::Instant;

use ca_notify_domain::DedupKey;

use crate::classify::{self, ReceivedAt};
use crate::client::{join, VerificationClient, X_API_KEY};
use crate::pacing::{NotBefore, RateLimitHeaders};
use crate::wire;

/// What the server knows of one uuid.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CodeStatus {
    /// A code row exists.
    Found {
        /// The person used the code: they received the text.
        claimed: bool,
        /// When the short code expires (Unix seconds).
        expires_at: i64,
    },
    /// No code row: never issued under this uuid, or expired and removed.
    NotFound,
}

/// Why the status could not be read. Nothing was changed on the server either way.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CodeStatusError {
    /// The key was refused (or did not issue the code and is not an admin key).
    #[error("the verification server refused the API key: {0}")]
    Unauthorized(String),
    /// The server's limiter is spent until `until`, past the caller's deadline.
    #[error("the verification server's request budget is spent for now")]
    RateLimited {
        /// When a request could go.
        until: Instant,
    },
    /// No request can finish before the deadline.
    #[error("no time left before the deadline")]
    NoTimeLeft,
    /// The server could not be reached or failed.
    #[error("the verification server is unavailable: {0}")]
    Unavailable(String),
    /// The server refused the request as malformed.
    #[error("the verification server rejected the request: {0}")]
    Rejected(String),
}

#[derive(Serialize)]
struct StatusRequest<'a> {
    uuid: &'a str,
    padding: String,
}

#[derive(Deserialize)]
struct StatusResponse {
    #[serde(default)]
    claimed: bool,
    #[serde(default, rename = "expiresAtTimestamp")]
    expires_at: i64,
    #[serde(default)]
    error: Option<String>,
    #[serde(default, rename = "errorCode")]
    error_code: Option<String>,
}

impl VerificationClient {
    /// Asks whether the code of `uuid` was claimed, waiting on the pacer; no request
    /// starts unless it can end (its timeout) before `deadline`. No retries: the caller
    /// decides what an unavailable server means for the rest of its work.
    ///
    /// # Errors
    /// [`CodeStatusError`]; a 429 also holds the pacer for every other caller.
    pub async fn check_code_status(
        &self,
        uuid: &DedupKey,
        deadline: Instant,
    ) -> Result<CodeStatus, CodeStatusError> {
        let latest_start = deadline
            .checked_sub(self.request_timeout)
            .filter(|t| Instant::now() <= *t)
            .ok_or(CodeStatusError::NoTimeLeft)?;
        let ticket = self
            .pacer()
            .acquire(latest_start)
            .await
            .map_err(|NotBefore(until)| CodeStatusError::RateLimited { until })?;
        let url = join(&self.base_url, "api/checkcodestatus")
            .map_err(|e| CodeStatusError::Rejected(e.to_string()))?;
        let uuid_text = uuid.as_uuid().hyphenated().to_string();
        let body = serde_json::to_vec(&StatusRequest {
            uuid: &uuid_text,
            padding: wire::random_padding(),
        })
        .map_err(|e| CodeStatusError::Rejected(e.to_string()))?;
        let response = self
            .http
            .post(url)
            .header(&X_API_KEY, self.api_key.clone())
            .header(CONTENT_TYPE, "application/json")
            .header(ACCEPT, "application/json")
            .body(body)
            .send()
            .await;
        let response = match response {
            Ok(response) => response,
            Err(e) => {
                if e.is_connect() {
                    ticket.not_sent();
                }
                // Otherwise the ticket drops unsettled: the request may have taken a token.
                return Err(CodeStatusError::Unavailable(transport_text(&e)));
            }
        };
        let at = ReceivedAt::now();
        let status = response.status();
        let headers = response.headers().clone();
        ticket.answered(
            RateLimitHeaders::from_headers(&headers).as_ref(),
            at.wall,
            at.instant,
        );
        let bytes = response
            .bytes()
            .await
            .map_err(|e| CodeStatusError::Unavailable(transport_text(&e)))?;
        let parsed: Option<StatusResponse> = serde_json::from_slice(&bytes).ok();
        let quoted = classify::quote(parsed.as_ref().and_then(|p| p.error.as_deref()), &bytes);
        let code = parsed
            .as_ref()
            .and_then(|p| p.error_code.as_deref())
            .unwrap_or("");
        match status {
            StatusCode::OK => match parsed {
                Some(p) if p.error.is_none() => Ok(CodeStatus::Found {
                    claimed: p.claimed,
                    expires_at: p.expires_at,
                }),
                _ => Err(CodeStatusError::Unavailable(format!(
                    "HTTP 200 with an unreadable answer: {quoted}"
                ))),
            },
            StatusCode::NOT_FOUND if code == "code_not_found" => Ok(CodeStatus::NotFound),
            StatusCode::UNAUTHORIZED | StatusCode::FORBIDDEN => Err(CodeStatusError::Unauthorized(
                format!("HTTP {} {code}: {quoted}", status.as_u16()),
            )),
            StatusCode::TOO_MANY_REQUESTS => {
                let until = classify::limiter_until(&headers, at);
                self.pacer().hold_until(until);
                if until <= latest_start {
                    Err(CodeStatusError::Unavailable(
                        "the request limiter refused the check; try again".to_owned(),
                    ))
                } else {
                    Err(CodeStatusError::RateLimited { until })
                }
            }
            s if s.is_client_error() => Err(CodeStatusError::Rejected(format!(
                "HTTP {} {code}: {quoted}",
                s.as_u16()
            ))),
            s => Err(CodeStatusError::Unavailable(format!(
                "HTTP {} {code}: {quoted}",
                s.as_u16()
            ))),
        }
    }

    /// The timeout every request of this client runs under.
    pub fn request_timeout(&self) -> Duration {
        self.request_timeout
    }
}

fn transport_text(e: &reqwest::Error) -> String {
    ca_notify_domain::scrub_phone_numbers(&e.to_string())
}
