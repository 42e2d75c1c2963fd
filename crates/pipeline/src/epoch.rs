//! `orchestrate_epochs`, `acquire_data` and `execute_single_epoch`: the run's outer loop.
//!
//! Each epoch makes exactly one claim (`acquire_data`), runs the local checks over it and
//! asks the store's ledger about all its dedup keys in one read (`ledger.rs`); all three
//! happen ahead, while the previous epoch runs, so a slow store costs the run no time.
//! `execute_single_epoch` then starts a phone check for each record still undecided, in
//! order, each under one of the run-wide validation slots and within the run's bound on
//! entries checked ahead of issuing; checked entries go to the packer (`pack.rs`), which
//! fills requests with ten. The next epoch's checks queue right behind the current
//! epoch's, so the validator never idles at a boundary. Each epoch writes all its outcomes
//! in one write once its last record is settled (`book.rs`), off the critical path.
//!
//! A check is started only if a request could still follow it and end before the
//! deadline; once the run halts (shutdown, deadline, a stop), the records no check has
//! started are released untouched with the epoch's write. Every claimed record therefore
//! ends up written or released, and the run returns only once every epoch is written.

use std::collections::VecDeque;
use std::panic::AssertUnwindSafe;
use std::sync::Arc;
use std::time::Duration;

use ca_notify_domain::{scrub_phone_numbers, Backoff, ClaimToken, DeferReason, RecordId};
use ca_notify_ports::{Claim, SourceError};
use futures::FutureExt;
use tokio::sync::mpsc;
use tokio::task::JoinHandle;
use tokio::time::{sleep, sleep_until, Instant};
use tracing::{error, info, info_span, warn, Instrument, Span};

use crate::book::{EpochBook, Settled};
use crate::context::RunCtx;
use crate::failure::{FatalCause, StopReason};
use crate::ledger::consult_ledger;
use crate::pack::{Packed, Packer, ToPacker};
use crate::pre_check::{annotate_claim, pre_check_and_annotate, BatchEntry, Checked};
use crate::report::{Counts, DeferredKind, EpochReport};
use crate::store_retry::store_wait;

/// Claims again while the store is unavailable.
const CLAIM_BACKOFF: Backoff = Backoff {
    base: Duration::from_millis(200),
    cap: Duration::from_secs(5),
    max_retries: 4,
};

/// A claim, checked locally and against the ledger, ready to run as an epoch.
pub(crate) struct Prepared {
    pub number: u32,
    pub token: ClaimToken,
    pub entries: Vec<BatchEntry>,
}

impl Prepared {
    /// Records that wait for a phone check.
    fn checks(&self) -> isize {
        self.entries.iter().filter(|e| e.needs_check()).count() as isize
    }

    /// Tells the packer how many checks this claim will bring, as soon as it is ready
    /// (while the previous epoch still runs), so a partial batch at the boundary waits
    /// for them instead of leaving short.
    fn announce(self, packer: &mpsc::UnboundedSender<ToPacker>) -> Self {
        let _ = packer.send(ToPacker::Expect(self.checks()));
        self
    }
}

/// Runs epochs until the count (`only_one`: a single epoch), a drained source, the
/// deadline, a shutdown or a stop, and waits until every epoch is written. Returns the
/// number of epochs that claimed records and the first epoch's report.
pub(crate) async fn orchestrate_epochs(
    ctx: &Arc<RunCtx>,
    only_one: bool,
) -> (u32, Option<EpochReport>) {
    let settings = ctx.settings();
    let pacing = settings.min_epoch_duration.unwrap_or(Duration::ZERO);
    let wants_epoch = |done: u32| {
        !(only_one && done > 0) && (settings.until_drained || done < settings.epoch_count)
    };
    let packer = Packer::start(ctx);
    let mut epochs = 0u32;
    let mut first: Option<JoinHandle<EpochReport>> = None;
    // Finished epochs are reaped as the run goes, so a long run holds only the epochs
    // still in flight.
    let mut finishing: VecDeque<JoinHandle<EpochReport>> = VecDeque::new();
    let mut prefetched: Option<JoinHandle<Result<Prepared, NoClaim>>> = None;
    loop {
        let prepared = match prefetched.take() {
            Some(handle) => handle.await.unwrap_or_else(|e| {
                error!(error = %e, "Prefetching a claim panicked.");
                Err(NoClaim::Halted)
            }),
            None if wants_epoch(epochs) && epochs == 0 => acquire_when_fit(ctx, 1)
                .await
                .map(|p| p.announce(&packer.sender())),
            None => break,
        };
        // A prefetch decides nothing for the run itself: its verdict is applied here,
        // once the epoch before it is fully dispatched.
        let prepared = match prepared {
            Ok(prepared) => prepared,
            Err(no_claim) => {
                no_claim.apply(ctx);
                break;
            }
        };
        if ctx.halt.is_cancelled() {
            release_claim(ctx, &packer.sender(), prepared).await;
            break;
        }
        if prepared.entries.is_empty() {
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
            let number = epochs + 1;
            let announce = packer.sender();
            prefetched = Some(tokio::spawn(
                async move {
                    prefetch(&ctx, number, next_start)
                        .await
                        .map(|p| p.announce(&announce))
                }
                .instrument(span),
            ));
        }
        let handle = execute_single_epoch(ctx, &packer.sender(), prepared).await;
        if first.is_none() {
            first = Some(handle);
        } else {
            finishing.push_back(handle);
        }
        while finishing.front().is_some_and(JoinHandle::is_finished) {
            if let Some(Err(e)) = finishing.pop_front().and_then(FutureExt::now_or_never) {
                error!(error = %e, "An epoch's bookkeeping task panicked.");
            }
        }
    }
    if let Some(handle) = prefetched.take() {
        match handle.await {
            Ok(Ok(prepared)) => release_claim(ctx, &packer.sender(), prepared).await,
            // A source that failed for good is reported even when the run was ending.
            Ok(Err(failed @ NoClaim::Failed(_))) => failed.apply(ctx),
            Ok(Err(_)) | Err(_) => {}
        }
    }
    packer.close().await;
    for handle in finishing {
        if let Err(e) = handle.await {
            error!(error = %e, "An epoch's bookkeeping task panicked.");
        }
    }
    let first = match first {
        Some(handle) => match handle.await {
            Ok(report) => Some(report),
            Err(e) => {
                error!(error = %e, "An epoch's bookkeeping task panicked.");
                None
            }
        },
        None => None,
    };
    (epochs, first)
}

/// Releases a whole claim that no epoch will run (prefetched when the run halted).
async fn release_claim(ctx: &RunCtx, packer: &mpsc::UnboundedSender<ToPacker>, prepared: Prepared) {
    let _ = packer.send(ToPacker::Expect(-prepared.checks()));
    let mut tally = Counts {
        claimed: prepared.entries.len() as u64,
        ..Counts::default()
    };
    let ids = prepared.entries.into_iter().map(|e| e.id).collect();
    release_untouched(ctx, &prepared.token, ids, &mut tally).await;
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

/// The next epoch's claim and ledger read, made while the current epoch runs, but not
/// before the seed's pacing allows (less the time a claim takes).
async fn prefetch(ctx: &RunCtx, number: u32, next_start: Instant) -> Result<Prepared, NoClaim> {
    let claim_at = next_start
        .checked_sub(ctx.latency.claim.estimate())
        .unwrap_or(next_start);
    if next_start > Instant::now() {
        if next_start + ctx.latency.record() > ctx.deadline {
            info!("The next paced epoch would not finish before the deadline; the run ends after this one.");
            return Err(NoClaim::Stop(StopReason::Deadline));
        }
        tokio::select! {
            () = sleep_until(claim_at) => {}
            () = ctx.halt.cancelled() => return Err(NoClaim::Halted),
        }
    }
    let prepared = acquire_when_fit(ctx, number).await?;
    // Only sleep when there is time to sleep out: a timer, even one already due, fires
    // on the driver's next tick, which would cost every unpaced epoch a millisecond.
    if !prepared.entries.is_empty() && next_start > Instant::now() {
        // A claim that came back early still starts no sooner than the pacing says.
        tokio::select! {
            () = sleep_until(next_start) => {}
            () = ctx.halt.cancelled() => {}
        }
    }
    Ok(prepared)
}

/// `acquire_data` and the ledger read, if a claim and one record's way through still fit
/// before the deadline.
async fn acquire_when_fit(ctx: &RunCtx, number: u32) -> Result<Prepared, NoClaim> {
    if ctx.halt.is_cancelled() {
        return Err(NoClaim::Halted);
    }
    let needed = ctx.latency.claim.estimate() + ctx.latency.record();
    if Instant::now() + needed > ctx.deadline || Instant::now() >= ctx.work_deadline() {
        info!("No time left for another epoch before the deadline; the run ends.");
        return Err(NoClaim::Stop(StopReason::Deadline));
    }
    let claim = acquire_data(ctx).await?;
    prepare(ctx, number, claim).await
}

/// The local checks and the epoch's one ledger read. A ledger that failed for good
/// releases the claim and stops the run.
pub(crate) async fn prepare(ctx: &RunCtx, number: u32, claim: Claim) -> Result<Prepared, NoClaim> {
    let Claim { token, records } = claim;
    let mut entries = annotate_claim(ctx, number, records);
    ctx.note_prepared(number);
    if let Err(cause) = consult_ledger(ctx, &mut entries).await {
        let ids: Vec<RecordId> = entries.into_iter().map(|e| e.id).collect();
        if let Err(e) = ctx.parts.source.release(&token, &ids).await {
            warn!(error = %scrub_phone_numbers(&e.to_string()), "Could not release a claim whose ledger read failed; its records come back when the lease ends.");
        }
        let mut tally = Counts {
            claimed: ids.len() as u64,
            ..Counts::default()
        };
        tally.defer(cause.stop_reason().defer_reason(), ids.len());
        ctx.add_totals(&tally);
        return Err(NoClaim::Failed(cause));
    }
    Ok(Prepared {
        number,
        token,
        entries,
    })
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

/// Runs one prepared epoch: settles what needs no check, starts a check for every other
/// record (in order, as validation slots free up and the bound on entries ahead allows),
/// and returns once all are started (or released), with the task that writes the epoch.
pub(crate) async fn execute_single_epoch(
    ctx: &Arc<RunCtx>,
    packer: &mpsc::UnboundedSender<ToPacker>,
    prepared: Prepared,
) -> JoinHandle<EpochReport> {
    let Prepared {
        number,
        token,
        entries,
    } = prepared;
    let span = info_span!("epoch", epoch = number, claimed = entries.len());
    let started = Instant::now();
    let (book, complete) = EpochBook::new(number, token, entries.len());
    let finisher = {
        let ctx = Arc::clone(ctx);
        let book = Arc::clone(&book);
        tokio::spawn(
            async move { book.finish(&ctx, complete, started).await }.instrument(span.clone()),
        )
    };
    async {
        info!(claimed = entries.len(), "Epoch claimed its records.");
        if let Some(observer) = &ctx.parts.observer {
            observer.on_claimed(entries.len());
        }
        // The checks were announced to the packer when the claim was prepared.
        let checks = entries.iter().filter(|e| e.needs_check()).count();
        let mut started_checks = 0usize;
        let mut halted = false;
        for (index, entry) in entries.into_iter().enumerate() {
            if !entry.needs_check() {
                let reason = ctx.halt_reason();
                book.settle(index, Settled::from_entry(entry, reason));
                continue;
            }
            if !halted {
                match start_check(ctx, packer, &book, index, entry).await {
                    Ok(()) => {
                        started_checks += 1;
                        continue;
                    }
                    Err(entry) => {
                        halted = true;
                        book.settle(index, Settled::untouched(entry, ctx.halt_reason()));
                        continue;
                    }
                }
            }
            book.settle(index, Settled::untouched(entry, ctx.halt_reason()));
        }
        if started_checks < checks {
            let _ = packer.send(ToPacker::Expect(-((checks - started_checks) as isize)));
        }
    }
    .instrument(span)
    .await;
    finisher
}

/// Starts one record's phone check once a validation slot and room ahead of issuing are
/// free and a request could still follow it before the deadline. Gives the entry back
/// when the run halts first (or this check decides it must).
async fn start_check(
    ctx: &Arc<RunCtx>,
    packer: &mpsc::UnboundedSender<ToPacker>,
    book: &Arc<EpochBook>,
    index: usize,
    mut entry: BatchEntry,
) -> Result<(), BatchEntry> {
    let permits = tokio::select! {
        biased;
        () = ctx.halt.cancelled() => None,
        () = sleep_until(ctx.work_deadline()) => {
            ctx.stop_with(StopReason::Deadline);
            None
        }
        permits = async {
            let ahead = Arc::clone(&ctx.ahead).acquire_owned().await.ok()?;
            let slot = Arc::clone(&ctx.validation_slots).acquire_owned().await.ok()?;
            Some((ahead, slot))
        } => permits,
    };
    let Some((ahead, slot)) = permits.filter(|_| !ctx.halt.is_cancelled()) else {
        return Err(entry);
    };
    if !ctx.check_fits() {
        info!("A request after the next phone check would not end before the deadline; releasing the rest of the claim.");
        ctx.stop_with(StopReason::Deadline);
        return Err(entry);
    }
    let ctx = Arc::clone(ctx);
    let packer = packer.clone();
    let book = Arc::clone(book);
    tokio::spawn(
        async move {
            let checked = AssertUnwindSafe(pre_check_and_annotate(&ctx, &mut entry))
                .catch_unwind()
                .await;
            drop(slot);
            let reason = ctx.halt_reason();
            let passed = match checked {
                Ok(Checked::Issuable) => {
                    book.count(|t| t.validator_calls += 1);
                    Some(Packed {
                        book,
                        index,
                        entry,
                        ahead,
                        owner: None,
                    })
                }
                Ok(Checked::Settled) => {
                    book.count(|t| t.validator_calls += 1);
                    book.settle(index, Settled::from_entry(entry, reason));
                    None
                }
                Ok(Checked::Skipped) => {
                    book.settle(index, Settled::untouched(entry, reason));
                    None
                }
                Err(_) => {
                    error!(record_id = %entry.id, "A phone check panicked; releasing its record.");
                    book.settle(
                        index,
                        Settled::untouched(entry, DeferredKind::BatchPanicked),
                    );
                    None
                }
            };
            if let Err(mpsc::error::SendError(ToPacker::Checked(Some(packed)))) =
                packer.send(ToPacker::Checked(passed))
            {
                packed.untouched(&ctx);
            }
        }
        .in_current_span(),
    );
    Ok(())
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
