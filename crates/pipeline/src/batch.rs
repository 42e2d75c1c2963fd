//! `execute_single_batch`: one packed batch-issue request and its re-sends, then every
//! record back into its epoch's book.
//!
//! A batch holds one of the run's `max_batches_in_flight` request slots from its first
//! request to its last answer. It carries up to ten records that passed their phone
//! check, possibly from two epochs' claims. It writes nothing itself: the epochs do, once
//! all their records are settled (`book.rs`), so the store never sits between two
//! requests.

use std::panic::AssertUnwindSafe;
use std::sync::Arc;

use ca_notify_domain::DeferReason;
use futures::FutureExt;
use tokio::sync::OwnedSemaphorePermit;
use tokio::time::Instant;
use tracing::{error, info};

use crate::book::Settled;
use crate::context::RunCtx;
use crate::failure::StopReason;
use crate::issue::call_verification_server;
use crate::pack::Packed;
use crate::report::{Counts, DeferredKind};

/// Issues one packed batch and settles its records into their epochs' books.
pub(crate) async fn execute_single_batch(
    ctx: Arc<RunCtx>,
    batch: Vec<Packed>,
    _slot: OwnedSemaphorePermit,
) {
    // A request once sent is never cut short, so none starts that could still be running
    // at the deadline; entries that cannot be sent are handed back untouched.
    let longest = ctx.parts.issuer.max_request_duration();
    if ctx.stop_sending() {
        batch.into_iter().for_each(|p| p.untouched(&ctx));
        return;
    }
    if Instant::now() + longest > ctx.work_deadline() {
        info!("No batch-issue request could end before the deadline; handing the batch back.");
        ctx.stop_with(StopReason::Deadline);
        for p in batch {
            p.book
                .settle(p.index, Settled::untouched(p.entry, DeferReason::Deadline));
        }
        return;
    }
    let mut places = Vec::with_capacity(batch.len());
    let mut entries = Vec::with_capacity(batch.len());
    let mut owners = Vec::with_capacity(batch.len());
    for p in batch {
        places.push((p.book, p.index, p.ahead));
        entries.push(p.entry);
        owners.push(
            p.owner
                .expect("the packer makes every batched entry its key's owner"),
        );
    }
    let mut tally = Counts {
        batches: 1,
        ..Counts::default()
    };
    let issued = AssertUnwindSafe(call_verification_server(
        &ctx,
        &mut entries,
        owners,
        &mut tally,
    ))
    .catch_unwind()
    .await;
    if let Some((book, _, _)) = places.first() {
        book.count(|t| t.merge(&tally));
    }
    let panicked = issued.is_err();
    if panicked {
        error!(
            records = entries.len(),
            "A batch-issue task panicked; releasing its records."
        );
    }
    let reason = ctx.halt_reason();
    for ((book, index, _ahead), entry) in places.into_iter().zip(entries) {
        let settled = if panicked {
            Settled::untouched(entry, DeferredKind::BatchPanicked)
        } else {
            Settled::from_entry(entry, reason)
        };
        book.settle(index, settled);
    }
}
