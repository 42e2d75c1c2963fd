//! The retry decision for Twilio requests, in one place: what one attempt came to, and how
//! long to wait before the next one.
//!
//! The policy is the domain's [`Backoff::next_retry`]: retryable failures (408, 5xx,
//! timeouts, resets, the package rate limit 60616) wait a full-jitter exponential delay
//! and spend the retry budget; a 429/20429 is Twilio pushing back, not a failure of the
//! request ("aren't processed and are safe to retry", twilio.com/docs/api/errors/20429),
//! so it waits the same kind of delay by [`Backoff::next_throttled_retry`] and is retried
//! until the deadline, whatever the budget (the `pace` module slows the lookups meanwhile);
//! when Twilio sends
//! `Retry-After` (parsed by `ca-notify-http`) the wait is `max(Retry-After, backoff)`
//! (Twilio does not promise the header for Lookup, so it is a floor, never the plan). A
//! wait that would reach the caller's deadline is not taken: the lookup gives up at once
//! as `Unavailable`, and the pipeline defers the record.

use std::future::Future;
use std::time::Duration;

use ca_notify_domain::{Backoff, GiveUp};
use ca_notify_ports::ValidationError;
use tokio::time::Instant;

/// What one attempt came to.
#[derive(Debug)]
pub(crate) enum Attempt<T> {
    /// A usable answer.
    Done(T),
    /// A transient failure; `retry_after` is Twilio's `Retry-After`, if it sent one.
    Retry {
        reason: String,
        retry_after: Option<Duration>,
    },
    /// Twilio pushed back (429): the request was not processed; retried until the
    /// deadline without spending the budget of failures.
    Throttled {
        reason: String,
        retry_after: Option<Duration>,
    },
    /// A failure no retry can fix (credentials, a malformed answer, a 4xx).
    Fail(ValidationError),
}

/// Runs `attempt` until it is done, fails for good, the retry budget is spent, or the next
/// wait would pass `deadline`. `attempt` receives the attempt number (0 for the first);
/// `jitter` gives uniform numbers in `[0, 1]`.
pub(crate) async fn run_with_retries<T, F, Fut>(
    backoff: &Backoff,
    deadline: Instant,
    mut jitter: impl FnMut() -> f64,
    mut attempt: F,
) -> Result<T, ValidationError>
where
    F: FnMut(u32) -> Fut,
    Fut: Future<Output = Attempt<T>>,
{
    let mut retries_done = 0;
    let mut throttles = 0;
    loop {
        if Instant::now() >= deadline {
            return Err(ValidationError::Unavailable(format!(
                "the deadline passed after {retries_done} retries"
            )));
        }
        let (reason, retry_after, throttled) = match attempt(retries_done + throttles).await {
            Attempt::Done(value) => return Ok(value),
            Attempt::Fail(error) => return Err(error),
            Attempt::Retry {
                reason,
                retry_after,
            } => (reason, retry_after, false),
            Attempt::Throttled {
                reason,
                retry_after,
            } => (reason, retry_after, true),
        };
        let now = Instant::now();
        let room = deadline.saturating_duration_since(now);
        let decision = if throttled {
            backoff.next_throttled_retry(throttles, jitter(), retry_after, room)
        } else {
            backoff.next_retry(retries_done, jitter(), retry_after, room)
        };
        let wait = match decision {
            Ok(wait) if now + wait < deadline => wait,
            Ok(wait) | Err(GiveUp::PastDeadline(wait)) => {
                tracing::warn!(
                    attempts = retries_done + 1,
                    wait_ms = wait.as_millis() as u64,
                    error = %reason,
                    "Twilio Lookup failed and the next retry would pass the deadline; giving up on this number for now."
                );
                return Err(ValidationError::Unavailable(format!(
                    "the next retry would pass the deadline; last error: {reason}"
                )));
            }
            Err(GiveUp::BudgetSpent) => {
                tracing::warn!(
                    attempts = retries_done + 1,
                    error = %reason,
                    "Twilio Lookup kept failing; giving up on this number for now."
                );
                return Err(ValidationError::Unavailable(format!(
                    "gave up after {} attempts; last error: {reason}",
                    retries_done + 1
                )));
            }
        };
        tracing::debug!(
            attempt = retries_done + 1,
            wait_ms = wait.as_millis() as u64,
            retry_after_ms = retry_after.map(|d| d.as_millis() as u64),
            error = %reason,
            "Twilio Lookup failed transiently; retrying after a backoff."
        );
        tokio::time::sleep(wait).await;
        if throttled {
            throttles += 1;
        } else {
            retries_done += 1;
        }
    }
}

#[cfg(test)]
mod tests {
    use std::cell::Cell;
    use std::rc::Rc;

    use super::*;

    fn backoff() -> Backoff {
        Backoff {
            base: Duration::from_millis(100),
            cap: Duration::from_secs(1),
            max_retries: 3,
        }
    }

    fn retry(after: Option<Duration>) -> Attempt<&'static str> {
        Attempt::Retry {
            reason: "HTTP 429, Twilio code 20429".into(),
            retry_after: after,
        }
    }

    #[tokio::test(start_paused = true)]
    async fn waits_the_full_jitter_ceiling_between_attempts() {
        let start = Instant::now();
        let calls = Rc::new(Cell::new(Vec::new()));
        let seen = calls.clone();
        let result = run_with_retries(
            &backoff(),
            start + Duration::from_secs(60),
            || 1.0,
            |n| {
                let seen = seen.clone();
                async move {
                    let mut v = seen.take();
                    v.push(start.elapsed());
                    seen.set(v);
                    if n < 2 {
                        retry(None)
                    } else {
                        Attempt::Done("ok")
                    }
                }
            },
        )
        .await;
        assert_eq!(result.expect("succeeds"), "ok");
        // Jitter 1.0 takes each ceiling: 100 ms, then 200 ms.
        assert_eq!(
            calls.take(),
            vec![
                Duration::ZERO,
                Duration::from_millis(100),
                Duration::from_millis(300)
            ]
        );
    }

    #[tokio::test(start_paused = true)]
    async fn zero_jitter_retries_at_once() {
        let start = Instant::now();
        let result = run_with_retries(
            &backoff(),
            start + Duration::from_secs(60),
            || 0.0,
            |n| async move {
                if n < 3 {
                    retry(None)
                } else {
                    Attempt::Done("ok")
                }
            },
        )
        .await;
        assert_eq!(result.expect("succeeds"), "ok");
        assert_eq!(start.elapsed(), Duration::ZERO);
    }

    #[tokio::test(start_paused = true)]
    async fn retry_after_is_a_floor_under_the_backoff() {
        let start = Instant::now();
        let result = run_with_retries(
            &backoff(),
            start + Duration::from_secs(60),
            || 0.5,
            |n| async move {
                if n == 0 {
                    retry(Some(Duration::from_secs(3)))
                } else {
                    Attempt::Done("ok")
                }
            },
        )
        .await;
        assert_eq!(result.expect("succeeds"), "ok");
        assert_eq!(start.elapsed(), Duration::from_secs(3));
    }

    #[tokio::test(start_paused = true)]
    async fn spent_budget_is_unavailable_with_the_last_reason() {
        let start = Instant::now();
        let calls = Rc::new(Cell::new(0));
        let counter = calls.clone();
        let result: Result<&str, _> = run_with_retries(
            &backoff(),
            start + Duration::from_secs(60),
            || 1.0,
            |_| {
                counter.set(counter.get() + 1);
                async { retry(None) }
            },
        )
        .await;
        let err = result.expect_err("gives up");
        assert!(
            matches!(err, ValidationError::Unavailable(ref m) if m.contains("20429")),
            "{err}"
        );
        assert_eq!(calls.get(), 4, "one attempt and three retries");
        assert_eq!(start.elapsed(), Duration::from_millis(100 + 200 + 400));
    }

    #[tokio::test(start_paused = true)]
    async fn never_waits_past_the_deadline() {
        let start = Instant::now();
        let deadline = start + Duration::from_secs(2);
        let result: Result<&str, _> = run_with_retries(
            &backoff(),
            deadline,
            || 0.0,
            |_| async { retry(Some(Duration::from_secs(30))) },
        )
        .await;
        assert!(matches!(result, Err(ValidationError::Unavailable(_))));
        assert_eq!(start.elapsed(), Duration::ZERO, "gave up without sleeping");

        let expired: Result<&str, _> = run_with_retries(
            &backoff(),
            start,
            || 0.0,
            |_| async { Attempt::Done("never") },
        )
        .await;
        assert!(matches!(expired, Err(ValidationError::Unavailable(_))));
    }

    #[tokio::test(start_paused = true)]
    async fn failures_are_not_retried() {
        let calls = Rc::new(Cell::new(0));
        let counter = calls.clone();
        let result: Result<&str, _> = run_with_retries(
            &backoff(),
            Instant::now() + Duration::from_secs(60),
            || 1.0,
            |_| {
                counter.set(counter.get() + 1);
                async { Attempt::Fail(ValidationError::Unauthorized("HTTP 401".into())) }
            },
        )
        .await;
        assert!(matches!(result, Err(ValidationError::Unauthorized(_))));
        assert_eq!(calls.get(), 1);
    }
}
