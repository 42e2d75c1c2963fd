//! `execute_single_batch` and `write_back`: one batch from its records to one write.
//!
//! A batch runs `pre_check_and_annotate` → `call_verification_server` →
//! `evaluate_response` (inside the latter) → `write_back`, and writes every one of its
//! records exactly once, in a single write: final outcomes and `Deferred` ones alike (the
//! sink releases the deferred). A store that is briefly unavailable gets the same write
//! again after a backoff (writes are idempotent); one that stays down stops the run, and
//! the batch's records are released or, failing that, come back when their lease ends.

use std::sync::Arc;

use ca_notify_domain::{
    scrub_phone_numbers, ClaimToken, Outcome, RecipientRecord, RecordId, RecordOutcome,
};
use ca_notify_ports::WriteReceipt;
use tokio::time::Instant;
use tracing::{debug, info, warn};

use crate::context::RunCtx;
use crate::failure::FatalCause;
use crate::issue::call_verification_server;
use crate::pre_check::pre_check_and_annotate;
use crate::report::{BatchReport, Counts, DeferredKind};
use crate::store_retry::retry_sink;

/// Runs one batch to its write-back and returns its counts (already added to the run's).
pub(crate) async fn execute_single_batch(
    ctx: Arc<RunCtx>,
    epoch: u32,
    token: ClaimToken,
    records: Vec<RecipientRecord>,
) -> Counts {
    let started = Instant::now();
    let mut tally = Counts {
        batches: 1,
        ..Counts::default()
    };
    let mut entries = pre_check_and_annotate(&ctx, records, &mut tally).await;
    call_verification_server(&ctx, epoch, &mut entries, &mut tally).await;

    let outcomes: Vec<RecordOutcome> = entries
        .into_iter()
        .map(|entry| RecordOutcome {
            id: entry.id,
            dedup_key: entry.dedup_key,
            outcome: entry
                .outcome
                .unwrap_or_else(|| Outcome::deferred(ctx.halt_reason())),
            attempts: entry.attempts,
        })
        .collect();
    let written = write_back(&ctx, &token, &outcomes).await;
    let elapsed = started.elapsed();
    ctx.latency.batch.observe(elapsed);
    match written {
        Some(receipt) => {
            let mut report = BatchReport {
                records: outcomes.len(),
                elapsed,
                ..BatchReport::default()
            };
            for o in &outcomes {
                debug!(record_id = %o.id, outcome = %o.outcome, "Record settled.");
                tally.count_outcome(&o.outcome);
                match &o.outcome {
                    Outcome::Sent => report.sent += 1,
                    Outcome::AlreadySent | Outcome::TextedBefore => report.already_sent += 1,
                    Outcome::NotSent { .. } | Outcome::Unconfirmed => report.not_sent += 1,
                    Outcome::Deferred { .. } => report.deferred += 1,
                }
            }
            tally.not_owned += receipt.not_owned as u64;
            info!(
                records = report.records,
                sent = report.sent,
                already_sent = report.already_sent,
                not_sent = report.not_sent,
                deferred = report.deferred,
                elapsed_ms = elapsed.as_millis() as u64,
                "Batch written."
            );
            if let Some(observer) = &ctx.parts.observer {
                observer.on_batch_written(&report);
            }
        }
        None => tally.defer(DeferredKind::WriteFailed, outcomes.len()),
    }
    ctx.add_totals(&tally);
    tally
}

/// The batch's single write. `None` when the store failed for good (the run is stopping
/// and the records were released where the source allowed).
async fn write_back(
    ctx: &RunCtx,
    token: &ClaimToken,
    outcomes: &[RecordOutcome],
) -> Option<WriteReceipt> {
    let written = retry_sink(ctx, "writing the batch", || async {
        let started = Instant::now();
        let result = ctx.parts.sink.write_back(token, outcomes).await;
        ctx.latency.write.observe(started.elapsed());
        result
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
            Some(receipt)
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
                    "Could not release an unwritten batch; its records come back when the lease ends."
                );
            }
            None
        }
    }
}
