//! `check_reachable`: proves, for `ca-notify check`, that the server can be reached and
//! will accept our batches, without issuing anything.
//!
//! It sends `POST /api/batch-issue` with an empty `codes` array. The server allows 0 to
//! 10 items and answers an empty batch 200 with nothing issued (`pkg/api/api.go:293`,
//! `handle_issue_batch.go:115-119`), after running everything a real batch meets first:
//! the API key and firewall (401), the request limiter (429), server maintenance and the
//! realm's "bulk issue" switch (400). So a 200 here means a real batch would get as far
//! as per-item validation. `/api/checkcodestatus` with a random uuid would prove less:
//! it passes with bulk issuing disabled. The cost is one limiter token.

use tokio::time::Instant;

use crate::classify::{self, Judgement};
use crate::client::VerificationClient;
use crate::pacing::RateLimitHeaders;
use crate::wire::{self, BatchIssueRequest};
use ca_notify_ports::IssueError;

impl VerificationClient {
    /// Reaches the server without issuing anything; `Ok` describes what was proven,
    /// `Err` says what is wrong and which setting to look at.
    ///
    /// # Errors
    /// A sentence for the operator: unreachable, refused key, bulk issue disabled, …
    pub async fn check_reachable(&self) -> Result<String, String> {
        let base = self.base_url.as_str();
        let request = BatchIssueRequest {
            padding: wire::random_padding(),
            codes: Vec::new(),
        };
        let body = self.encode(&request).map_err(|e| e.to_string())?;
        let far = Instant::now() + std::time::Duration::from_secs(120);
        let ticket =
            self.pacer().acquire(far).await.map_err(|_| {
                format!("{base}: our own pacing holds requests for over two minutes")
            })?;
        let exchange = self
            .exchange(body)
            .await
            .map_err(|e| format!("could not reach the verification server at {base}: {e}"))?;
        let limits = RateLimitHeaders::from_headers(&exchange.headers);
        ticket.answered(limits.as_ref(), exchange.at.wall, exchange.at.instant);
        let limiter = match limits {
            Some(l) if l.limit > 0 => format!(
                "request limit {} per window, {} left in this one",
                l.limit, l.remaining
            ),
            _ => "no request limit reported".to_owned(),
        };
        let status = exchange.status.as_u16();
        match classify::judge(
            exchange.status,
            &exchange.headers,
            &exchange.body,
            &[],
            exchange.at,
        ) {
            Judgement::Answered(_) => Ok(format!(
                "{base}: API key accepted, bulk issuing enabled, {limiter}"
            )),
            Judgement::Failed(IssueError::RateLimited { .. }) => Ok(format!(
                "{base}: API key accepted; the request limiter is spent right now ({limiter})"
            )),
            Judgement::Failed(IssueError::Unauthorized(detail)) => Err(format!(
                "{base} refused the API key ({detail}): check verification.api_key (an ADMIN key \
                 of the realm) and the realm's IP allow-list for the admin API"
            )),
            Judgement::Failed(IssueError::Unavailable(detail)) => {
                Err(format!("{base} cannot issue codes now: {detail}"))
            }
            Judgement::Failed(error) => Err(format!("{base} (HTTP {status}): {error}")),
            Judgement::Transient(detail) | Judgement::NoAnswer { text: detail, .. } => {
                Err(format!("{base} failed: {detail}"))
            }
        }
    }
}
