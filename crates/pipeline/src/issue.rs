//! `call_verification_server`: one batch-issue request per packed batch, re-sends of only
//! the items the answer says to retry, and the run-wide reactions to what the server says.
//!
//! Every entry arrives with what the store's ledger knew of its key (the epoch's one
//! ledger read, `ledger.rs`), which goes into the judgement of a 409. The per-item judgement
//! is the domain's `evaluate_response`; this module only decides when to ask again, and
//! keeps what every attempt proved for the write-back. Re-sends carry the same uuids.
//! No request starts that could still be running at the deadline, and none is ever cut
//! short. After a request that got no answer, its uuids are sent again only once the
//! request must have ended on the server (its start plus the issuer's longest request);
//! the batch keeps the records claimed until then, and a stop that cuts that wait short
//! leaves them claimed until their lease ends.
//! When another round would not be written before the deadline, the items it would re-send
//! are deferred (released for the next run), not given up: only a spent retry budget ends
//! an item as `GaveUp`.
//! A rate limit makes the batch that met it wait for the server's reset and ask again, or
//! defer its items when the reset comes too late for the deadline; the issuer itself holds
//! every other request until then (it is the one owner of pacing). A spent quota,
//! refused credentials or a refused request stop the run; an unavailable server ends
//! issuing for the rest of the run. In every stopping case the undecided records are
//! deferred (released), never marked 0.

use std::time::Duration;

use ca_notify_domain::{
    evaluate_response, scrub_phone_numbers, AttemptAnswer, DeferReason, KeyHistory, Outcome,
    StopSignal,
};
use ca_notify_ports::{IssueError, IssueItem};
use tokio::time::{sleep_until, Instant};
use tracing::{debug, warn};

use crate::context::RunCtx;
use crate::dedup_gate::{Ownership, Resolution};
use crate::failure::FatalCause;
use crate::pre_check::BatchEntry;
use crate::report::Counts;

/// Shortest pause after a 429, so a limiter that names a reset in the past cannot make
/// us spin.
const MIN_RATE_LIMIT_PAUSE: Duration = Duration::from_millis(50);

/// Issues every issuable entry of a batch and tells each key's waiting duplicates what
/// became of it. The entries may come from several epochs' claims; the packer made each
/// the owner of its dedup key (`owners[i]` is `entries[i]`'s), so no two carry one key.
pub(crate) async fn call_verification_server(
    ctx: &RunCtx,
    entries: &mut [BatchEntry],
    owners: Vec<Ownership>,
    tally: &mut Counts,
) {
    let indices: Vec<usize> = (0..entries.len())
        .filter(|&index| entries[index].issuable())
        .collect();
    if !indices.is_empty() {
        issue_round(ctx, entries, &indices, tally).await;
    }
    for (entry, owner) in entries.iter_mut().zip(owners) {
        let history = entry.key_history();
        let outcome = entry.outcome.get_or_insert_with(|| {
            // issue_round settles every index it is given; this is a safety net.
            Outcome::deferred(ctx.halt_reason())
        });
        owner.publish(Resolution::of(outcome, history));
    }
}

/// Sends `indices` until each is settled: answered, given up, or deferred.
async fn issue_round(
    ctx: &RunCtx,
    entries: &mut [BatchEntry],
    indices: &[usize],
    tally: &mut Counts,
) {
    let settings = ctx.settings();
    let backoff = settings.issue_retry_backoff;
    let longest_request = ctx.parts.issuer.max_request_duration();
    let mut pending = indices.to_vec();
    let mut retries_done = 0u32;
    while !pending.is_empty() {
        if let Err(reason) = ready_to_issue(ctx) {
            defer(entries, &pending, reason);
            return;
        }
        // A request once sent is never cut short (a disconnect can leave a text sent and
        // its code deleted), so none starts that could still be running at the deadline.
        if Instant::now() + longest_request > ctx.work_deadline() {
            defer(entries, &pending, DeferReason::Deadline);
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
        let answer = ctx
            .parts
            .issuer
            .issue_batch(&items, ctx.work_deadline())
            .await;
        ctx.latency.issue.observe(sent_at.elapsed());
        let answers = match answer {
            Ok(answers) => answers,
            Err(IssueError::NoAnswer {
                message,
                may_still_run,
            }) => {
                for &index in &pending {
                    entries[index].attempts.push(AttemptAnswer::NoAnswer);
                }
                // When the server may still be working on the request, nobody may send
                // these uuids again before it must have ended. The records stay claimed by
                // this batch meanwhile (the wait ends before the deadline, since the
                // request was only started because it would); a stop cuts the wait short
                // and leaves them claimed until their lease ends. A server that answered
                // (without codes) has finished: the usual backoff will do.
                let resend_at = if may_still_run {
                    sent_at + longest_request
                } else {
                    Instant::now() + backoff.delay(retries_done, rand::random())
                };
                warn!(
                    items = items.len(),
                    error = %scrub_phone_numbers(&message),
                    may_still_run,
                    wait_ms = resend_at.saturating_duration_since(Instant::now()).as_millis() as u64,
                    "Batch-issue request got no answer for its items; its uuids go again only once it must have ended."
                );
                if let Err(reason) = wait_unless_stopped(ctx, resend_at).await {
                    let reason = if may_still_run {
                        DeferReason::NoAnswer
                    } else {
                        reason
                    };
                    defer(entries, &pending, reason);
                    return;
                }
                if retries_done >= backoff.max_retries {
                    defer(entries, &pending, DeferReason::IssuerUnavailable);
                    return;
                }
                retries_done += 1;
                tally.item_retries += pending.len() as u64;
                continue;
            }
            Err(IssueError::RateLimited { until }) => {
                tally.rate_limited += 1;
                if let Err(reason) = wait_for_rate_limit(ctx, until).await {
                    defer(entries, &pending, reason);
                    return;
                }
                continue;
            }
            Err(error) => {
                let reason = react_to_error(ctx, error);
                defer(entries, &pending, reason);
                return;
            }
        };

        // Would a re-send round still be written before the deadline? If not, the items
        // that would be re-sent are deferred: the deadline is not the record's fault, so
        // it must not end as GaveUp (marked 0).
        let next_round = backoff.ceiling(retries_done) + longest_request;
        let round_fits = Instant::now() + next_round <= ctx.work_deadline();
        let histories: Vec<KeyHistory> = pending
            .iter()
            .map(|&index| entries[index].key_history())
            .collect();
        let evaluation = evaluate_response(
            items.len(),
            &answers,
            &histories,
            retries_done,
            &settings.retry_budget(),
        );
        for (k, attempt) in evaluation.attempts.iter().enumerate() {
            entries[pending[k]].attempts.push(*attempt);
        }
        for (k, outcome) in evaluation.settled {
            entries[pending[k]].outcome = Some(outcome);
        }
        match evaluation.stop {
            Some(StopSignal::QuotaExhausted) => ctx.fail(FatalCause::QuotaExhausted),
            Some(StopSignal::Unavailable) => {
                warn!("Verification server cannot send now; issuing stops for this run.");
                ctx.fail(FatalCause::IssuerUnavailable(
                    "the server answered sms_queue_full or maintenance_mode".to_owned(),
                ));
            }
            Some(StopSignal::Misconfigured { fault, error_code }) => {
                warn!(
                    fault = fault.code(),
                    error_code = %error_code,
                    "The verification server's realm is misconfigured; the run stops and finalises nothing."
                );
                ctx.fail(FatalCause::Misconfigured { fault, error_code });
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
        if let Err(reason) = wait_unless_stopped(ctx, Instant::now() + delay).await {
            defer(entries, &pending, reason);
            return;
        }
    }
}

/// Maps a whole-request error other than a rate limit to the run's reaction: the reason
/// to defer the batch's pending items.
fn react_to_error(ctx: &RunCtx, error: IssueError) -> DeferReason {
    match error {
        IssueError::RateLimited { .. } => {
            // Handled by the caller; kept here so the match stays total.
            DeferReason::RateLimited
        }
        IssueError::QuotaExhausted => {
            ctx.fail(FatalCause::QuotaExhausted);
            DeferReason::QuotaExhausted
        }
        IssueError::Unavailable(message) => {
            let message = scrub_phone_numbers(&message);
            warn!(error = %message, "Verification server unavailable; issuing stops for this run.");
            ctx.fail(FatalCause::IssuerUnavailable(message));
            DeferReason::IssuerUnavailable
        }
        IssueError::NoTimeLeft => DeferReason::Deadline,
        IssueError::NoAnswer { message, .. } => {
            // Handled by the caller; kept here so the match stays total.
            warn!(error = %scrub_phone_numbers(&message), "Batch-issue request got no answer.");
            DeferReason::NoAnswer
        }
        IssueError::Unauthorized(message) => {
            ctx.fail(FatalCause::IssuerUnauthorized(scrub_phone_numbers(
                &message,
            )));
            DeferReason::Unauthorized
        }
        IssueError::Rejected(message) => {
            ctx.fail(FatalCause::IssueRejected(scrub_phone_numbers(&message)));
            DeferReason::IssuerUnavailable
        }
        IssueError::Unknown(error) => {
            warn!(error = %scrub_phone_numbers(&format!("{error:#}")), "Batch-issue request failed; the batch is deferred.");
            DeferReason::IssuerUnavailable
        }
    }
}

/// Whether a request may start: refuses when the run is stopping issuing or the work
/// deadline has come.
fn ready_to_issue(ctx: &RunCtx) -> Result<(), DeferReason> {
    if ctx.stop_issuing.is_cancelled() {
        Err(ctx.halt_reason())
    } else if Instant::now() < ctx.work_deadline() {
        Ok(())
    } else {
        Err(DeferReason::Deadline)
    }
}

/// Reacts to the issuer's rate limit: waits until `until` and lets the caller ask again,
/// or refuses when the reset would come too late to issue and write, or a stop cuts the
/// wait. The issuer holds its other requests meanwhile; nothing is kept here.
async fn wait_for_rate_limit(ctx: &RunCtx, until: Instant) -> Result<(), DeferReason> {
    let until = until.max(Instant::now() + MIN_RATE_LIMIT_PAUSE);
    if until + ctx.latency.issue.estimate() > ctx.work_deadline() {
        return Err(DeferReason::RateLimited);
    }
    warn!(
        wait_ms = until.saturating_duration_since(Instant::now()).as_millis() as u64,
        "Verification server rate limit hit; this batch waits for the reset."
    );
    wait_unless_stopped(ctx, until).await
}

/// Sleeps until `until`, unless a shutdown or a stop of issuing comes first: then the
/// reason to defer with. Every wait of a batch between requests goes through here.
async fn wait_unless_stopped(ctx: &RunCtx, until: Instant) -> Result<(), DeferReason> {
    tokio::select! {
        () = sleep_until(until) => Ok(()),
        () = ctx.shutdown.cancelled() => Err(DeferReason::Shutdown),
        () = ctx.stop_issuing.cancelled() => Err(ctx.halt_reason()),
    }
}

fn defer(entries: &mut [BatchEntry], indices: &[usize], reason: DeferReason) {
    for &index in indices {
        entries[index].outcome = Some(Outcome::deferred(reason));
    }
}
