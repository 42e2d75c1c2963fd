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
//! A record enters the dedup gate here: only a key's owner goes into a batch; a duplicate
//! whose twin is in flight waits beside the batches (holding no place in a request) and is
//! settled from the twin's answer, or packed after all when the twin ended not sent. So
//! people listed twice leave no holes in a request either.
//!
//! Once the run is shut down or stops issuing, whatever is still waiting here is handed
//! back untouched (no request was made for it); a run that only stops claiming (no time
//! for another epoch, a drained source) still sends what it checked. The packer ends when every sender is gone and every batch it started
//! has settled its records.

use std::sync::Arc;

use ca_notify_domain::Outcome;
use futures::future::BoxFuture;
use futures::stream::{FuturesUnordered, StreamExt};
use futures::FutureExt;
use tokio::sync::{mpsc, OwnedSemaphorePermit};
use tokio::task::JoinHandle;
use tracing::{error, info_span, Instrument};

use crate::batch::execute_single_batch;
use crate::book::{EpochBook, Settled};
use crate::context::RunCtx;
use crate::dedup_gate::{self, Entry, Ownership, Resolution};
use crate::pre_check::{BatchEntry, IdList};

/// A checked entry on its way to a request, with its place in its epoch's book and its
/// share of the run's bound on entries checked ahead of issuing.
pub(crate) struct Packed {
    pub book: Arc<EpochBook>,
    pub index: usize,
    pub entry: BatchEntry,
    pub ahead: OwnedSemaphorePermit,
    /// The entry's hold on its dedup key, taken when it is packed.
    pub owner: Option<Ownership>,
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

/// A duplicate waiting for its key's owner.
type Waiting = FuturesUnordered<BoxFuture<'static, (Packed, Resolution)>>;

async fn pack(ctx: Arc<RunCtx>, mut rx: mpsc::UnboundedReceiver<ToPacker>) {
    let batch_size = ctx.settings().batch_size;
    let mut expected: isize = 0;
    let mut closed = false;
    let mut buffer: Vec<Packed> = Vec::with_capacity(batch_size);
    let mut waiting: Waiting = FuturesUnordered::new();
    let mut batches: Vec<JoinHandle<()>> = Vec::new();
    let mut number = 0u64;
    loop {
        let ready = if closed {
            None
        } else {
            match rx.try_recv() {
                Ok(message) => Some(message),
                Err(mpsc::error::TryRecvError::Empty) => None,
                Err(mpsc::error::TryRecvError::Disconnected) => {
                    closed = true;
                    None
                }
            }
        };
        let message = match ready {
            Some(message) => message,
            None => {
                if !buffer.is_empty() && (closed || expected <= 0) {
                    // Nothing else is under way: a partial batch beats an idle slot.
                    dispatch(&ctx, &mut buffer, &mut batches, &mut number).await;
                    continue;
                }
                if closed && waiting.is_empty() {
                    break;
                }
                tokio::select! {
                    message = rx.recv(), if !closed => match message {
                        Some(message) => message,
                        None => {
                            closed = true;
                            continue;
                        }
                    },
                    Some((packed, resolution)) = waiting.next(), if !waiting.is_empty() => {
                        resolve(&ctx, packed, resolution, &mut buffer, &mut waiting);
                        if buffer.len() >= batch_size {
                            dispatch(&ctx, &mut buffer, &mut batches, &mut number).await;
                        }
                        continue;
                    }
                }
            }
        };
        match message {
            ToPacker::Expect(n) => expected += n,
            ToPacker::Checked(entry) => {
                expected -= 1;
                if let Some(packed) = entry {
                    admit(&ctx, packed, &mut buffer, &mut waiting);
                }
            }
        }
        if buffer.len() >= batch_size {
            dispatch(&ctx, &mut buffer, &mut batches, &mut number).await;
        }
    }
    for batch in batches {
        if let Err(e) = batch.await {
            error!(error = %e, "A batch task panicked.");
        }
    }
}

/// Takes a checked entry into the buffer as its key's owner, settles it when its key was
/// delivered in this run, or sets it waiting for the key's owner.
fn admit(ctx: &RunCtx, mut packed: Packed, buffer: &mut Vec<Packed>, waiting: &mut Waiting) {
    if ctx.stop_sending() {
        packed.untouched(ctx);
        return;
    }
    let key = packed
        .entry
        .dedup_key
        .expect("a checked entry has its dedup key");
    match ctx.dedup.enter(key, packed.entry.epoch) {
        Entry::Owner(owner) => {
            packed.owner = Some(owner);
            buffer.push(packed);
        }
        Entry::Delivered => settle(ctx, packed, Outcome::AlreadySent),
        Entry::Waiter(rx) => {
            waiting.push(async move { (packed, dedup_gate::wait(rx).await) }.boxed());
        }
    }
}

/// A duplicate's owner answered: what it learned settles the duplicate, or, when the
/// owner was not sent for a reason of its own, the duplicate is tried itself, knowing the
/// owner's attempts (facts about the same uuid).
fn resolve(
    ctx: &RunCtx,
    mut packed: Packed,
    resolution: Resolution,
    buffer: &mut Vec<Packed>,
    waiting: &mut Waiting,
) {
    match resolution {
        Resolution::Delivered => settle(ctx, packed, Outcome::AlreadySent),
        Resolution::Unconfirmed => settle(ctx, packed, Outcome::Unconfirmed),
        Resolution::Deferred(reason) => settle(ctx, packed, Outcome::deferred(reason)),
        Resolution::NotSent(history) => {
            packed.entry.history = history;
            admit(ctx, packed, buffer, waiting);
        }
    }
}

fn settle(ctx: &RunCtx, mut packed: Packed, outcome: Outcome) {
    packed.entry.outcome = Some(outcome);
    packed.book.settle(
        packed.index,
        Settled::from_entry(packed.entry, ctx.halt_reason()),
    );
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
