//! `call_verification_server`: one batch-issue request per batch, re-sends of only the
//! items the answer says to retry, and the run-wide reactions to what the server says.
//!
//! The per-item judgement is the domain's `evaluate_response`; this module only decides
//! when to ask again. Re-sends carry the same uuids, so a re-send can never text twice.
//! When another round would not be written before the deadline, the items it would re-send
//! are deferred (released for the next run), not given up: only a spent retry budget ends
//! an item as `GaveUp`.
//! A rate limit pauses every batch's issuing until the server's reset; a spent quota,
//! refused credentials or a refused request stop the run; an unavailable server ends
//! issuing for the rest of the run. In every stopping case the undecided records are
//! deferred (released), never marked 0.

use std::time::Duration;

use ca_notify_domain::{evaluate_response, scrub_phone_numbers, DeferReason, Outcome, StopSignal};
use ca_notify_ports::{IssueError, IssueItem};
use tokio::time::{sleep, sleep_until, timeout_at, Instant};
use tracing::{debug, warn};

use crate::context::RunCtx;
use crate::dedup_gate::{self, Entry, Ownership, Resolution};
use crate::failure::{FatalCause, StopKind};
use crate::pre_check::BatchEntry;
use crate::report::Tally;

/// Shortest pause after a 429, so a limiter that names a reset in the past cannot make
/// us spin.
const MIN_RATE_LIMIT_PAUSE: Duration = Duration::from_millis(50);

/// Issues every issuable entry of a batch, one key owner at a time.
pub(crate) async fn call_verification_server(
    ctx: &RunCtx,
    epoch: u32,
    entries: &mut [BatchEntry],
    tally: &mut Tally,
) {
    let mut owned: Vec<(usize, Ownership)> = Vec::new();
    let mut waiting = Vec::new();
    for (index, entry) in entries.iter_mut().enumerate() {
        if let (true, Some(key)) = (entry.issuable(), entry.dedup_key) {
            match ctx.dedup.enter(key, epoch) {
                Entry::Owner(owner) => owned.push((index, owner)),
                Entry::Waiter(rx) => waiting.push((index, rx)),
                Entry::Delivered => entry.outcome = Some(Outcome::AlreadySent),
            }
        }
    }
    loop {
        if !owned.is_empty() {
            let indices: Vec<usize> = owned.iter().map(|(index, _)| *index).collect();
            issue_round(ctx, entries, &indices, tally).await;
            for (index, owner) in owned.drain(..) {
                let outcome = entries[index].outcome.get_or_insert_with(|| {
                    // issue_round settles every index it is given; this is a safety net.
                    Outcome::deferred(ctx.halt_reason())
                });
                owner.publish(Resolution::of(outcome));
            }
        }
        if waiting.is_empty() {
            break;
        }
        // Owners never wait while holding an unpublished key, so this cannot deadlock.
        for (index, rx) in std::mem::take(&mut waiting) {
            let entry = &mut entries[index];
            match dedup_gate::wait(rx).await {
                Resolution::Delivered => entry.outcome = Some(Outcome::AlreadySent),
                Resolution::Deferred(reason) => entry.outcome = Some(Outcome::deferred(reason)),
                Resolution::NotSent => {
                    let key = entry.dedup_key.expect("issuable entries have a key");
                    match ctx.dedup.enter(key, epoch) {
                        Entry::Owner(owner) => owned.push((index, owner)),
                        Entry::Waiter(rx) => waiting.push((index, rx)),
                        Entry::Delivered => entry.outcome = Some(Outcome::AlreadySent),
                    }
                }
            }
        }
    }
}

/// Sends `indices` until each is settled: answered, given up, or deferred.
async fn issue_round(
    ctx: &RunCtx,
    entries: &mut [BatchEntry],
    indices: &[usize],
    tally: &mut Tally,
) {
    let settings = ctx.settings();
    let backoff = settings.issue_retry_backoff;
    let mut pending = indices.to_vec();
    let mut retries_done = 0u32;
    while !pending.is_empty() {
        if let Err(reason) = ready_to_issue(ctx).await {
            defer(entries, &pending, reason);
            return;
        }
        let items: Vec<IssueItem> = pending
            .iter()
            .map(|&index| {
                entries[index]
                    .item
                    .clone()
                    .expect("issuable entries carry an item")
            })
            .collect();
        tally.issue_requests += 1;
        let sent_at = Instant::now();
        let answer = timeout_at(
            ctx.deadline,
            ctx.parts.issuer.issue_batch(&items, ctx.work_deadline()),
        )
        .await;
        ctx.latency.issue.observe(sent_at.elapsed());
        let answers = match answer {
            Err(_) => {
                warn!(
                    items = items.len(),
                    "Batch-issue request outlived the deadline; the records are deferred."
                );
                defer(entries, &pending, DeferReason::Deadline);
                return;
            }
            Ok(Ok(answers)) => answers,
            Ok(Err(error)) => {
                if let Some(reason) = react_to_error(ctx, error) {
                    defer(entries, &pending, reason);
                    return;
                }
                continue;
            }
        };

        // Would a re-send round still be written before the deadline? If not, the items
        // that would be re-sent are deferred: the deadline is not the record's fault, so
        // it must not end as GaveUp (marked 0).
        let next_round = backoff.ceiling(retries_done) + ctx.latency.issue.estimate();
        let round_fits = Instant::now() + next_round <= ctx.work_deadline();
        let evaluation =
            evaluate_response(items.len(), &answers, retries_done, &settings.retry_budget);
        for (k, outcome) in evaluation.settled {
            entries[pending[k]].outcome = Some(outcome);
        }
        match evaluation.stop {
            Some(StopSignal::QuotaExhausted) => ctx.fail(FatalCause::QuotaExhausted),
            Some(StopSignal::Unavailable) => {
                warn!("Verification server cannot send now; issuing stops for this run.");
                ctx.stop_with(StopKind::IssuerUnavailable);
            }
            None => {}
        }
        pending = evaluation.retry.iter().map(|&k| pending[k]).collect();
        if pending.is_empty() {
            return;
        }
        if !round_fits {
            defer(entries, &pending, DeferReason::Deadline);
            return;
        }
        if ctx.stop_issuing.is_cancelled() || ctx.shutdown.is_cancelled() {
            defer(entries, &pending, ctx.halt_reason());
            return;
        }
        let delay = backoff.delay(retries_done, rand::random());
        retries_done += 1;
        tally.item_retries += pending.len() as u64;
        debug!(
            items = pending.len(),
            delay_ms = delay.as_millis() as u64,
            "Re-sending items after transient failures."
        );
        tokio::select! {
            () = sleep(delay) => {}
            () = ctx.shutdown.cancelled() => {
                defer(entries, &pending, DeferReason::Shutdown);
                return;
            }
            () = ctx.stop_issuing.cancelled() => {
                defer(entries, &pending, ctx.halt_reason());
                return;
            }
        }
    }
}

/// Maps a whole-request error to the run's reaction. `None` means "ask again" (after the
/// rate-limit pause it set); `Some` is the reason to defer the batch's pending items.
fn react_to_error(ctx: &RunCtx, error: IssueError) -> Option<DeferReason> {
    match error {
        IssueError::RateLimited { until } => {
            let until = until.max(Instant::now() + MIN_RATE_LIMIT_PAUSE);
            let wait_ms = until.saturating_duration_since(Instant::now()).as_millis() as u64;
            warn!(
                wait_ms,
                "Verification server rate limit hit; issuing pauses."
            );
            ctx.pause_issuing(until);
            None
        }
        IssueError::QuotaExhausted => {
            ctx.fail(FatalCause::QuotaExhausted);
            Some(DeferReason::QuotaExhausted)
        }
        IssueError::Unavailable(message) => {
            warn!(error = %scrub_phone_numbers(&message), "Verification server unavailable; issuing stops for this run.");
            ctx.stop_with(StopKind::IssuerUnavailable);
            Some(DeferReason::IssuerUnavailable)
        }
        IssueError::Unauthorized(message) => {
            ctx.fail(FatalCause::IssuerUnauthorized(scrub_phone_numbers(
                &message,
            )));
            Some(DeferReason::Unauthorized)
        }
        IssueError::Rejected(message) => {
            ctx.fail(FatalCause::IssueRejected(scrub_phone_numbers(&message)));
            Some(DeferReason::IssuerUnavailable)
        }
        IssueError::Unknown(error) => {
            warn!(error = %scrub_phone_numbers(&format!("{error:#}")), "Batch-issue request failed; the batch is deferred.");
            Some(DeferReason::IssuerUnavailable)
        }
    }
}

/// Waits out a rate-limit pause. Refuses when the run is stopping issuing, when the pause
/// would end too late to issue and write, or when a shutdown cuts the wait.
async fn ready_to_issue(ctx: &RunCtx) -> Result<(), DeferReason> {
    loop {
        if ctx.stop_issuing.is_cancelled() {
            return Err(ctx.halt_reason());
        }
        let now = Instant::now();
        let pause = ctx.issue_pause().filter(|until| *until > now);
        let Some(until) = pause else {
            return if now < ctx.work_deadline() {
                Ok(())
            } else {
                Err(DeferReason::Deadline)
            };
        };
        if until + ctx.latency.issue.estimate() > ctx.work_deadline() {
            return Err(DeferReason::RateLimited);
        }
        tokio::select! {
            () = sleep_until(until) => {}
            () = ctx.shutdown.cancelled() => return Err(DeferReason::Shutdown),
            () = ctx.stop_issuing.cancelled() => return Err(ctx.halt_reason()),
        }
    }
}

fn defer(entries: &mut [BatchEntry], indices: &[usize], reason: DeferReason) {
    for &index in indices {
        entries[index].outcome = Some(Outcome::deferred(reason));
    }
}
