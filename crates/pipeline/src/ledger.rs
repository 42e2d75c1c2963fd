//! The epoch's one ledger read: before any of a claim's records is checked or issued, the
//! store's ledger is asked, in one read, what it knows of every dedup key of the claim.
//!
//! A key texted under any record id, however long ago, settles its record as
//! `TextedBefore` with neither a phone check nor a request; the others carry their
//! history into the judgement of a 409. One read per epoch rather than one per batch is
//! what a store that answers in hundreds of milliseconds (Snowflake) can afford, and the
//! read is made while the previous epoch is still running, so it costs no time either.

use ca_notify_domain::{DedupKey, Outcome};
use ca_notify_ports::SinkError;
use tracing::debug;

use crate::context::RunCtx;
use crate::failure::FatalCause;
use crate::pre_check::BatchEntry;
use crate::store_retry::retry_sink;

/// Asks the ledger about every key of the claim's undecided entries, in one read.
///
/// # Errors
/// The fatal cause when the store failed for good (or answered the wrong number of
/// histories); the caller releases the claim and stops the run.
pub(crate) async fn consult_ledger(
    ctx: &RunCtx,
    entries: &mut [BatchEntry],
) -> Result<(), FatalCause> {
    let asked: Vec<(usize, DedupKey)> = entries
        .iter()
        .enumerate()
        .filter(|(_, entry)| entry.outcome.is_none())
        .filter_map(|(index, entry)| entry.dedup_key.map(|key| (index, key)))
        .collect();
    if asked.is_empty() {
        return Ok(());
    }
    let keys: Vec<DedupKey> = asked.iter().map(|(_, key)| *key).collect();
    let sink = &ctx.parts.sink;
    let histories = retry_sink(ctx, "reading the ledger", || sink.key_histories(&keys))
        .await
        .map_err(FatalCause::Sink)?;
    if histories.len() != keys.len() {
        return Err(FatalCause::Sink(SinkError::Misconfigured(format!(
            "the ledger answered {} histories for {} keys (a store bug)",
            histories.len(),
            keys.len()
        ))));
    }
    for ((index, _), history) in asked.into_iter().zip(histories) {
        let entry = &mut entries[index];
        // A 200 once answered for the uuid is proof too, even if the write of its
        // outcome never landed (the attempt log is written first).
        if history.texted || history.issued > 0 {
            debug!(record_id = %entry.id, "The ledger says this person was texted before; no check, no request.");
            entry.outcome = Some(Outcome::TextedBefore);
        } else {
            entry.history = history;
        }
    }
    Ok(())
}
