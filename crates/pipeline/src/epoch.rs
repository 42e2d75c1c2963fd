//! `orchestrate_epochs`, `execute_single_epoch`, `acquire_data` and `orchestrate_batches`:
//! the run's outer loop.
//!
//! Each epoch makes exactly one claim (`acquire_data`) and cuts it into batches that are
//! dispatched as batch slots free up, so batches overlap within an epoch and across the
//! boundary to the next: the next epoch's claim is prefetched while the current epoch's
//! batches run, and its batches start as soon as the current epoch's are all dispatched.
//! A batch is started only if the latencies seen so far say it will be written before the
//! deadline; once the run halts (shutdown, deadline, a stop), the records no batch has
//! started are released untouched, one release per claim. Every claimed record therefore
//! ends up written or released.

use std::collections::VecDeque;
use std::sync::Arc;
use std::time::Duration;

use ca_notify_domain::{scrub_phone_numbers, Backoff, ClaimToken, DeferReason, RecordId};
use ca_notify_ports::{Claim, SourceError};
use futures::FutureExt;
use tokio::task::JoinHandle;
use tokio::time::{sleep, sleep_until, Instant};
use tracing::{error, info, info_span, warn, Instrument, Span};

use crate::batch::execute_single_batch;
use crate::context::RunCtx;
use crate::failure::{FatalCause, StopReason};
use crate::pre_check::IdList;
use crate::report::{Counts, DeferredKind, EpochReport};
use crate::store_retry::store_wait;

/// Claims again while the store is unavailable.
const CLAIM_BACKOFF: Backoff = Backoff {
    base: Duration::from_millis(200),
    cap: Duration::from_secs(5),
    max_retries: 4,
};

/// Runs epochs until the count, a drained source, the deadline, a shutdown or a stop.
/// Returns the number of epochs that claimed records.
pub(crate) async fn orchestrate_epochs(ctx: &Arc<RunCtx>) -> u32 {
    let settings = ctx.settings();
    let pacing = settings.min_epoch_duration.unwrap_or(Duration::ZERO);
    let wants_epoch = |done: u32| settings.until_drained || done < settings.epoch_count;
    let mut epochs = 0u32;
    // Finished epochs are reaped as the run goes, so a long run holds only the epochs
    // still in flight.
    let mut finishing: VecDeque<JoinHandle<EpochReport>> = VecDeque::new();
    let mut prefetched: Option<JoinHandle<Result<Claim, NoClaim>>> = None;
    loop {
        let claim = match prefetched.take() {
            Some(handle) => handle.await.unwrap_or_else(|e| {
                error!(error = %e, "Prefetching a claim panicked.");
                Err(NoClaim::Halted)
            }),
            None if wants_epoch(epochs) && epochs == 0 => acquire_when_fit(ctx).await,
            None => break,
        };
        // A prefetch decides nothing for the run itself: its verdict is applied here,
        // once the epoch before it is fully dispatched.
        let claim = match claim {
            Ok(claim) => claim,
            Err(no_claim) => {
                no_claim.apply(ctx);
                break;
            }
        };
        if ctx.halt.is_cancelled() {
            release_claim(ctx, claim).await;
            break;
        }
        if claim.records.is_empty() {
            if !settings.until_drained {
                ctx.stop_with(StopReason::Drained);
            }
            break;
        }
        epochs += 1;
        let next_start = Instant::now() + pacing;
        if wants_epoch(epochs) && !ctx.halt.is_cancelled() {
            let ctx = Arc::clone(ctx);
            let span = Span::current();
            prefetched = Some(tokio::spawn(
                async move { prefetch(&ctx, next_start).await }.instrument(span),
            ));
        }
        finishing.push_back(execute_single_epoch(ctx, epochs, claim).await);
        while finishing.front().is_some_and(JoinHandle::is_finished) {
            if let Some(Err(e)) = finishing.pop_front().and_then(FutureExt::now_or_never) {
                error!(error = %e, "An epoch's bookkeeping task panicked.");
            }
        }
    }
    if let Some(handle) = prefetched.take() {
        match handle.await {
            Ok(Ok(claim)) => release_claim(ctx, claim).await,
            // A source that failed for good is reported even when the run was ending.
            Ok(Err(failed @ NoClaim::Failed(_))) => failed.apply(ctx),
            Ok(Err(_)) | Err(_) => {}
        }
    }
    for handle in finishing {
        if let Err(e) = handle.await {
            error!(error = %e, "An epoch's bookkeeping task panicked.");
        }
    }
    epochs
}

/// Releases a whole claim that no epoch will run (prefetched when the run halted).
async fn release_claim(ctx: &RunCtx, claim: Claim) {
    let mut tally = Counts {
        claimed: claim.records.len() as u64,
        ..Counts::default()
    };
    let ids = claim.records.into_iter().map(|r| r.id).collect();
    release_untouched(ctx, &claim.token, ids, &mut tally).await;
    ctx.add_totals(&tally);
}

/// Why a claim was not made or came back with nothing usable.
#[derive(Debug)]
pub(crate) enum NoClaim {
    /// The run halted before claiming.
    Halted,
    /// The run must stop (no time left for another epoch).
    Stop(StopReason),
    /// The source failed for good.
    Failed(FatalCause),
}

impl NoClaim {
    /// Applies the verdict to the run.
    pub fn apply(self, ctx: &RunCtx) {
        match self {
            Self::Halted => {}
            Self::Stop(kind) => ctx.stop_with(kind),
            Self::Failed(cause) => ctx.fail(cause),
        }
    }
}

/// The next epoch's claim, made while the current epoch's batches run, but not before
/// the seed's pacing allows (less the time a claim takes).
async fn prefetch(ctx: &RunCtx, next_start: Instant) -> Result<Claim, NoClaim> {
    let claim_at = next_start
        .checked_sub(ctx.latency.claim.estimate())
        .unwrap_or(next_start);
    if next_start > Instant::now() {
        if next_start + ctx.latency.batch.estimate() > ctx.deadline {
            info!("The next paced epoch would not finish before the deadline; the run ends after this one.");
            return Err(NoClaim::Stop(StopReason::Deadline));
        }
        tokio::select! {
            () = sleep_until(claim_at) => {}
            () = ctx.halt.cancelled() => return Err(NoClaim::Halted),
        }
    }
    let claim = acquire_when_fit(ctx).await?;
    // Only sleep when there is time to sleep out: a timer, even one already due, fires
    // on the driver's next tick, which would cost every unpaced epoch a millisecond.
    if !claim.records.is_empty() && next_start > Instant::now() {
        // A claim that came back early still starts no sooner than the pacing says.
        tokio::select! {
            () = sleep_until(next_start) => {}
            () = ctx.halt.cancelled() => {}
        }
    }
    Ok(claim)
}

/// `acquire_data` if a claim and one batch still fit before the deadline.
async fn acquire_when_fit(ctx: &RunCtx) -> Result<Claim, NoClaim> {
    if ctx.halt.is_cancelled() {
        return Err(NoClaim::Halted);
    }
    let needed = ctx.latency.claim.estimate() + ctx.latency.batch.estimate();
    if Instant::now() + needed > ctx.deadline || Instant::now() >= ctx.work_deadline() {
        info!("No time left for another epoch before the deadline; the run ends.");
        return Err(NoClaim::Stop(StopReason::Deadline));
    }
    acquire_data(ctx).await
}

/// The epoch's one claim: up to `epoch_size` records, leased for the rest of the run plus
/// the margin. Retries an unavailable store. Changes nothing in the run: the caller
/// applies a [`NoClaim`].
pub(crate) async fn acquire_data(ctx: &RunCtx) -> Result<Claim, NoClaim> {
    let settings = ctx.settings();
    let mut attempt = 0;
    loop {
        if ctx.halt.is_cancelled() {
            return Err(NoClaim::Halted);
        }
        let started = Instant::now();
        let lease = ctx.deadline.saturating_duration_since(started) + settings.lease_margin;
        let error = match ctx.parts.source.claim(settings.epoch_size, lease).await {
            Ok(claim) => {
                ctx.latency.claim.observe(started.elapsed());
                return Ok(claim);
            }
            Err(error) => error,
        };
        let unavailable = matches!(error, SourceError::Unavailable(_));
        if let Some(delay) = store_wait(ctx, &CLAIM_BACKOFF, attempt, unavailable) {
            warn!(
                attempt = attempt + 1,
                error = %scrub_phone_numbers(&error.to_string()),
                "Store unavailable; claiming again."
            );
            attempt += 1;
            tokio::select! {
                () = sleep(delay) => continue,
                () = ctx.halt.cancelled() => return Err(NoClaim::Halted),
            }
        }
        return Err(NoClaim::Failed(FatalCause::Source(error)));
    }
}

/// Starts one epoch: dispatches all its batches and returns the task that collects them.
pub(crate) async fn execute_single_epoch(
    ctx: &Arc<RunCtx>,
    epoch: u32,
    claim: Claim,
) -> JoinHandle<EpochReport> {
    let span = info_span!("epoch", epoch, claimed = claim.records.len());
    let started = Instant::now();
    let dispatched = async {
        info!(claimed = claim.records.len(), "Epoch claimed its records.");
        if let Some(observer) = &ctx.parts.observer {
            observer.on_claimed(claim.records.len());
        }
        orchestrate_batches(ctx, epoch, claim).await
    }
    .instrument(span.clone())
    .await;
    let ctx = Arc::clone(ctx);
    tokio::spawn(async move { dispatched.finish(&ctx, epoch, started).await }.instrument(span))
}

/// An epoch whose batches are all dispatched (or released).
pub(crate) struct Dispatched {
    token: ClaimToken,
    own: Counts,
    batches: Vec<(JoinHandle<Counts>, Vec<RecordId>)>,
}

impl Dispatched {
    /// Waits for the epoch's batches and sums them up.
    pub async fn finish(self, ctx: &RunCtx, epoch: u32, started: Instant) -> EpochReport {
        let mut tally = self.own;
        for (handle, ids) in self.batches {
            match handle.await {
                Ok(batch) => tally.merge(&batch),
                Err(e) => {
                    error!(error = %e, records = ids.len(), "A batch task panicked; releasing its records.");
                    let mut lost = Counts {
                        batches: 1,
                        ..Counts::default()
                    };
                    lost.defer(DeferredKind::BatchPanicked, ids.len());
                    if let Err(e) = ctx.parts.source.release(&self.token, &ids).await {
                        warn!(error = %scrub_phone_numbers(&e.to_string()), "Could not release the records of a panicked batch; they come back when the lease ends.");
                    }
                    ctx.add_totals(&lost);
                    tally.merge(&lost);
                }
            }
        }
        ctx.dedup.forget_epoch(epoch);
        let report = tally.epoch_report(epoch, started.elapsed(), ctx.stop_kind());
        info!(
            claimed = report.claimed,
            sent = report.sent,
            already_sent = report.already_sent,
            not_sent = report.not_sent_total(),
            deferred = report.deferred_total(),
            elapsed_ms = report.elapsed.as_millis() as u64,
            "Epoch finished."
        );
        report
    }
}

/// Cuts the claim into batches and starts each when a batch slot is free and it still
/// fits before the deadline. Whatever cannot start is released.
pub(crate) async fn orchestrate_batches(ctx: &Arc<RunCtx>, epoch: u32, claim: Claim) -> Dispatched {
    let Claim { token, records } = claim;
    let batch_size = ctx.settings().batch_size;
    let mut own = Counts {
        claimed: records.len() as u64,
        ..Counts::default()
    };
    ctx.add_totals(&own);
    let mut batches = Vec::with_capacity(records.len().div_ceil(batch_size));
    let mut records = records.into_iter();
    let mut number = 0u32;
    loop {
        let chunk: Vec<_> = records.by_ref().take(batch_size).collect();
        if chunk.is_empty() {
            break;
        }
        let permit = tokio::select! {
            biased;
            () = ctx.halt.cancelled() => None,
            () = sleep_until(ctx.work_deadline()) => {
                ctx.stop_with(StopReason::Deadline);
                None
            }
            permit = Arc::clone(&ctx.batch_slots).acquire_owned() => permit.ok(),
        };
        let startable = permit.is_some()
            && !ctx.halt.is_cancelled()
            && {
                let fits = ctx.batch_fits();
                if !fits {
                    info!("The next batch would not be written before the deadline; releasing the rest of the claim.");
                    ctx.stop_with(StopReason::Deadline);
                }
                fits
            };
        if !startable {
            let ids = chunk.into_iter().chain(records).map(|r| r.id).collect();
            let mut released = Counts::default();
            release_untouched(ctx, &token, ids, &mut released).await;
            ctx.add_totals(&released);
            own.merge(&released);
            break;
        }
        number += 1;
        let ids = chunk.iter().map(|r| r.id.clone()).collect();
        let span = info_span!(
            "batch",
            epoch,
            batch = number,
            records = chunk.len(),
            record_ids = %IdList(&chunk)
        );
        let task = {
            let ctx = Arc::clone(ctx);
            let token = token.clone();
            async move {
                let _slot = permit;
                execute_single_batch(ctx, epoch, token, chunk).await
            }
        };
        batches.push((tokio::spawn(task.instrument(span)), ids));
    }
    Dispatched {
        token,
        own,
        batches,
    }
}

/// Hands records back untouched (attempts unchanged) and counts them as deferred for the
/// reason the run is halting. A failed release is only logged: the lease brings them back.
async fn release_untouched(
    ctx: &RunCtx,
    token: &ClaimToken,
    ids: Vec<RecordId>,
    tally: &mut Counts,
) {
    if ids.is_empty() {
        return;
    }
    let reason: DeferReason = ctx.halt_reason();
    info!(
        records = ids.len(),
        reason = reason.code(),
        "Releasing records no batch has started."
    );
    if let Err(e) = ctx.parts.source.release(token, &ids).await {
        warn!(
            records = ids.len(),
            error = %scrub_phone_numbers(&e.to_string()),
            "Could not release records; they come back when the lease ends."
        );
    }
    tally.defer(reason, ids.len());
}
