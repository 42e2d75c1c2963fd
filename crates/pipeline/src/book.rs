//! An epoch's book and `write_back`: every record of a claim is settled into its epoch's
//! book, wherever it went (the local checks, the ledger, a phone check, whichever packed
//! batch-issue request carried it), and once the last one is in, the epoch writes all its
//! outcomes in **one** write and releases what no request touched in one release.
//!
//! The write runs in the epoch's own task, so the next epochs' checks and requests never
//! wait for the store; the run waits for every epoch's write before it returns, so
//! nothing is left unwritten at a deadline, shutdown or fatal stop. A store that is
//! briefly unavailable gets the same write again after a backoff (writes are
//! idempotent); one that stays down stops the run, and the records are released or,
//! failing that, come back when their lease ends.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};

use ca_notify_domain::{
    scrub_phone_numbers, ClaimToken, DeferReason, Outcome, RecordId, RecordOutcome,
};
use tokio::sync::oneshot;
use tokio::time::Instant;
use tracing::{debug, info, warn};

use crate::context::RunCtx;
use crate::failure::FatalCause;
use crate::pre_check::BatchEntry;
use crate::report::{BatchReport, Counts, DeferredKind, EpochReport};
use crate::store_retry::retry_sink;

/// How one record left the run's hands.
#[derive(Debug)]
pub(crate) enum Settled {
    /// An outcome to write (final, or deferred with a reason the store records).
    Outcome(RecordOutcome),
    /// No request was made for it: released untouched (attempts unchanged).
    Untouched(RecordId, DeferredKind),
}

impl Settled {
    /// The entry's outcome, or untouched for `reason` when nothing decided it.
    pub fn from_entry(entry: BatchEntry, reason: DeferReason) -> Self {
        match entry.outcome {
            Some(outcome) => Self::Outcome(RecordOutcome {
                id: entry.id,
                dedup_key: entry.dedup_key,
                outcome,
                attempts: entry.attempts,
            }),
            None => Self::Untouched(entry.id, reason.into()),
        }
    }

    /// An entry no request touched, handed back for `kind`.
    pub fn untouched(entry: BatchEntry, kind: impl Into<DeferredKind>) -> Self {
        Self::Untouched(entry.id, kind.into())
    }
}

/// One epoch's records, as they are settled.
pub(crate) struct EpochBook {
    pub number: u32,
    pub token: ClaimToken,
    inner: Mutex<Inner>,
}

struct Inner {
    settled: Vec<Option<Settled>>,
    remaining: usize,
    tally: Counts,
    complete: Option<oneshot::Sender<()>>,
}

impl EpochBook {
    /// A book for `records` records; the receiver fires when the last one is settled.
    pub fn new(
        number: u32,
        token: ClaimToken,
        records: usize,
    ) -> (Arc<Self>, oneshot::Receiver<()>) {
        let (tx, rx) = oneshot::channel();
        let book = Arc::new(Self {
            number,
            token,
            inner: Mutex::new(Inner {
                settled: (0..records).map(|_| None).collect(),
                remaining: records,
                tally: Counts {
                    claimed: records as u64,
                    ..Counts::default()
                },
                complete: Some(tx),
            }),
        });
        if records == 0 {
            book.lock().complete.take().map(|tx| tx.send(()));
        }
        (book, rx)
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Adds counts of the epoch's work (checks, requests) to its tally.
    pub fn count(&self, f: impl FnOnce(&mut Counts)) {
        f(&mut self.lock().tally);
    }

    /// Settles record `index`. Each record is settled exactly once.
    pub fn settle(&self, index: usize, settled: Settled) {
        let mut inner = self.lock();
        let slot = &mut inner.settled[index];
        debug_assert!(slot.is_none(), "a record settled twice");
        if slot.replace(settled).is_none() {
            inner.remaining -= 1;
        }
        if inner.remaining == 0 {
            if let Some(tx) = inner.complete.take() {
                let _ = tx.send(());
            }
        }
    }

    /// Waits for every record, then makes the epoch's one write and, if any record was
    /// not touched, its one release. Returns the epoch's report (already in the run's
    /// totals).
    pub async fn finish(
        self: Arc<Self>,
        ctx: &RunCtx,
        complete: oneshot::Receiver<()>,
        started: Instant,
    ) -> EpochReport {
        // The sender lives in the book, which this task holds: it cannot be dropped first.
        let _ = complete.await;
        let (settled, mut tally) = {
            let mut inner = self.lock();
            (
                std::mem::take(&mut inner.settled),
                std::mem::take(&mut inner.tally),
            )
        };
        let mut outcomes = Vec::with_capacity(settled.len());
        let mut untouched: BTreeMap<DeferredKind, Vec<RecordId>> = BTreeMap::new();
        for s in settled.into_iter().flatten() {
            match s {
                Settled::Outcome(o) => outcomes.push(o),
                Settled::Untouched(id, kind) => untouched.entry(kind).or_default().push(id),
            }
        }
        let write_started = Instant::now();
        if !outcomes.is_empty() {
            match write_back(ctx, &self.token, &outcomes).await {
                Some(not_owned) => {
                    let mut report = BatchReport {
                        records: outcomes.len(),
                        elapsed: started.elapsed(),
                        ..BatchReport::default()
                    };
                    for o in &outcomes {
                        debug!(record_id = %o.id, outcome = %o.outcome, "Record settled.");
                        tally.count_outcome(&o.outcome);
                        match &o.outcome {
                            Outcome::Sent => report.sent += 1,
                            Outcome::AlreadySent | Outcome::TextedBefore => {
                                report.already_sent += 1;
                            }
                            Outcome::NotSent { .. } | Outcome::Unconfirmed => report.not_sent += 1,
                            Outcome::Deferred { .. } => report.deferred += 1,
                        }
                    }
                    tally.not_owned += not_owned as u64;
                    if let Some(observer) = &ctx.parts.observer {
                        observer.on_batch_written(&report);
                    }
                }
                None => {
                    // The records were released where the source allowed (write_back).
                    tally.defer(DeferredKind::WriteFailed, outcomes.len());
                }
            }
            ctx.latency.write.observe(write_started.elapsed());
        }
        let released: Vec<RecordId> = untouched.values().flatten().cloned().collect();
        if !released.is_empty() {
            info!(
                records = released.len(),
                "Releasing records no request has touched."
            );
            if let Err(e) = ctx.parts.source.release(&self.token, &released).await {
                warn!(
                    records = released.len(),
                    error = %scrub_phone_numbers(&e.to_string()),
                    "Could not release records; they come back when the lease ends."
                );
            }
            for (kind, ids) in untouched {
                tally.defer(kind, ids.len());
            }
        }
        ctx.add_totals(&tally);
        ctx.epoch_finished(self.number);
        let report = tally.epoch_report(self.number, started.elapsed(), ctx.stop_kind());
        info!(
            epoch = self.number,
            claimed = report.claimed,
            sent = report.sent,
            already_sent = report.already_sent,
            not_sent = report.not_sent_total(),
            deferred = report.deferred_total(),
            elapsed_ms = report.elapsed.as_millis() as u64,
            "Epoch written."
        );
        report
    }
}

/// The epoch's single write. `Some(not_owned)` when written; `None` when the store
/// failed for good (the run is stopping and the records were released where the source
/// allowed).
async fn write_back(ctx: &RunCtx, token: &ClaimToken, outcomes: &[RecordOutcome]) -> Option<usize> {
    let written = retry_sink(ctx, "writing the epoch", || {
        ctx.parts.sink.write_back(token, outcomes)
    })
    .await;
    match written {
        Ok(receipt) => {
            if receipt.not_owned > 0 {
                warn!(
                    not_owned = receipt.not_owned,
                    "Some records were no longer claimed by this run; their outcomes were not written."
                );
            }
            Some(receipt.not_owned)
        }
        Err(error) => {
            ctx.fail(FatalCause::Sink(error));
            // A record whose request got no answer stays claimed until its lease ends: the
            // server may still be working on it.
            let ids: Vec<RecordId> = outcomes
                .iter()
                .filter(|o| !matches!(o.outcome, Outcome::Deferred { reason } if reason.holds_the_claim()))
                .map(|o| o.id.clone())
                .collect();
            if let Err(e) = ctx.parts.source.release(token, &ids).await {
                warn!(
                    records = ids.len(),
                    error = %scrub_phone_numbers(&e.to_string()),
                    "Could not release an unwritten epoch; its records come back when the lease ends."
                );
            }
            None
        }
    }
}
