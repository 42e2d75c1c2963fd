//! Retries of the pipeline's calls to the result sink (the ledger read before issuing and
//! the write-back after): a store that is briefly unavailable is asked again after a
//! backoff, inside the run's deadline; any other failure is final at once. The decision
//! is the domain's [`Backoff::next_retry`], the policy every retry shares.

use std::future::Future;
use std::time::Duration;

use ca_notify_domain::{scrub_phone_numbers, Backoff};
use ca_notify_ports::SinkError;
use tokio::time::{sleep, Instant};
use tracing::warn;

use crate::context::RunCtx;

/// Re-tries of one sink call while the store is unavailable.
const SINK_BACKOFF: Backoff = Backoff {
    base: Duration::from_millis(100),
    cap: Duration::from_secs(2),
    max_retries: 4,
};

/// The wait before store call retry `attempt` (0-based), or `None` when the failure is
/// final: not an unavailable store, the budget spent, or the wait would pass the deadline.
pub(crate) fn store_wait(
    ctx: &RunCtx,
    policy: &Backoff,
    attempt: u32,
    unavailable: bool,
) -> Option<Duration> {
    let room = ctx.deadline.saturating_duration_since(Instant::now());
    unavailable
        .then(|| policy.next_retry(attempt, rand::random(), None, room).ok())
        .flatten()
}

/// Calls `op` until it succeeds, fails for good, or the backoff or the deadline runs out.
/// `what` names the call in the log ("writing the batch", "reading the ledger").
pub(crate) async fn retry_sink<T, F, Fut>(
    ctx: &RunCtx,
    what: &'static str,
    mut op: F,
) -> Result<T, SinkError>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<T, SinkError>>,
{
    let mut attempt = 0;
    loop {
        let error = match op().await {
            Ok(value) => return Ok(value),
            Err(error) => error,
        };
        let unavailable = matches!(error, SinkError::Unavailable(_));
        let Some(delay) = store_wait(ctx, &SINK_BACKOFF, attempt, unavailable) else {
            return Err(error);
        };
        warn!(
            attempt = attempt + 1,
            error = %scrub_phone_numbers(&error.to_string()),
            "Store unavailable; {what} again."
        );
        attempt += 1;
        sleep(delay).await;
    }
}
