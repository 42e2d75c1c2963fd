//! The packer: fills every batch-issue request with up to `batch_size` (10) recipients
//! that passed their phone check, whichever epoch's claim they came from.
//!
//! The verification server's limiter charges one token per request however many codes it
//! carries, so a request cut before the checks (the seed's way, ~8 codes once landlines
//! and invalid numbers drop out) wastes a fifth of the budget. Checked entries arrive here
//! one by one; a full batch leaves as soon as one of the `max_batches_in_flight` request
//! slots is free. A partial batch leaves only when no check is under way or announced,
//! i.e. when nothing else could fill it soon: at the end of the backlog, or when the next
//! claim is late. Epochs announce their number of checks before the first one starts, so
//! an epoch boundary does not count as "nothing under way".
//!
//! Once the run is shut down or stops issuing, whatever is still waiting here is handed
//! back untouched (no request was made for it); a run that only stops claiming (no time
//! for another epoch, a drained source) still sends what it checked. The packer ends when every sender is gone and every batch it started
//! has settled its records.

use std::sync::Arc;

use tokio::sync::{mpsc, OwnedSemaphorePermit};
use tokio::task::JoinHandle;
use tracing::{error, info_span, Instrument};

use crate::batch::execute_single_batch;
use crate::book::{EpochBook, Settled};
use crate::context::RunCtx;
use crate::pre_check::{BatchEntry, IdList};

/// A checked entry on its way to a request, with its place in its epoch's book and its
/// share of the run's bound on entries checked ahead of issuing.
pub(crate) struct Packed {
    pub book: Arc<EpochBook>,
    pub index: usize,
    pub entry: BatchEntry,
    pub ahead: OwnedSemaphorePermit,
}

impl Packed {
    /// Hands the entry back untouched (no request made), for the reason the run halts.
    pub fn untouched(self, ctx: &RunCtx) {
        self.book.settle(
            self.index,
            Settled::untouched(self.entry, ctx.halt_reason()),
        );
    }
}

/// What the packer hears. Nearly every message is a `Checked`; boxing it would cost an
/// allocation per record to shrink the rare `Expect`.
#[allow(clippy::large_enum_variant)]
pub(crate) enum ToPacker {
    /// This many more checks will report (negative: announced ones that will not).
    Expect(isize),
    /// A check finished: the entry when it passed, `None` when the check settled it.
    Checked(Option<Packed>),
}

/// The running packer.
pub(crate) struct Packer {
    tx: mpsc::UnboundedSender<ToPacker>,
    task: JoinHandle<()>,
}

impl Packer {
    pub fn start(ctx: &Arc<RunCtx>) -> Self {
        let (tx, rx) = mpsc::unbounded_channel();
        let ctx = Arc::clone(ctx);
        let task = tokio::spawn(async move { pack(ctx, rx).await }.in_current_span());
        Self { tx, task }
    }

    pub fn sender(&self) -> mpsc::UnboundedSender<ToPacker> {
        self.tx.clone()
    }

    /// No more epochs: waits until every checked entry was issued (or handed back).
    pub async fn close(self) {
        drop(self.tx);
        if let Err(e) = self.task.await {
            error!(error = %e, "The packer panicked.");
        }
    }
}

async fn pack(ctx: Arc<RunCtx>, mut rx: mpsc::UnboundedReceiver<ToPacker>) {
    let batch_size = ctx.settings().batch_size;
    let mut expected: isize = 0;
    let mut buffer: Vec<Packed> = Vec::with_capacity(batch_size);
    let mut batches: Vec<JoinHandle<()>> = Vec::new();
    let mut number = 0u64;
    loop {
        let message = if !buffer.is_empty() && expected <= 0 {
            match rx.try_recv() {
                Ok(message) => Some(message),
                Err(mpsc::error::TryRecvError::Empty) => {
                    // Nothing else is under way: a partial batch beats an idle slot.
                    dispatch(&ctx, &mut buffer, &mut batches, &mut number).await;
                    continue;
                }
                Err(mpsc::error::TryRecvError::Disconnected) => None,
            }
        } else {
            rx.recv().await
        };
        let Some(message) = message else { break };
        match message {
            ToPacker::Expect(n) => expected += n,
            ToPacker::Checked(entry) => {
                expected -= 1;
                if let Some(packed) = entry {
                    buffer.push(packed);
                }
            }
        }
        if buffer.len() >= batch_size {
            dispatch(&ctx, &mut buffer, &mut batches, &mut number).await;
        }
    }
    if !buffer.is_empty() {
        dispatch(&ctx, &mut buffer, &mut batches, &mut number).await;
    }
    for batch in batches {
        if let Err(e) = batch.await {
            error!(error = %e, "A batch task panicked.");
        }
    }
}

/// Starts the buffered entries as one request once a request slot is free, or hands them
/// back untouched when the run halts first.
async fn dispatch(
    ctx: &Arc<RunCtx>,
    buffer: &mut Vec<Packed>,
    batches: &mut Vec<JoinHandle<()>>,
    number: &mut u64,
) {
    let batch = std::mem::replace(buffer, Vec::with_capacity(ctx.settings().batch_size));
    let slot = tokio::select! {
        biased;
        () = ctx.shutdown.cancelled() => None,
        () = ctx.stop_issuing.cancelled() => None,
        slot = Arc::clone(&ctx.batch_slots).acquire_owned() => slot.ok(),
    };
    let Some(slot) = slot.filter(|_| !ctx.stop_sending()) else {
        for packed in batch {
            packed.untouched(ctx);
        }
        return;
    };
    *number += 1;
    let span = info_span!(
        "batch",
        batch = *number,
        records = batch.len(),
        record_ids = %IdList(batch.iter().map(|p| &p.entry.id).collect())
    );
    batches.retain(|b| !b.is_finished());
    let ctx = Arc::clone(ctx);
    batches.push(tokio::spawn(
        async move { execute_single_batch(ctx, batch, slot).await }.instrument(span),
    ));
}
