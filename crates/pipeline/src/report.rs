//! What a run, an epoch and a batch did, in counts an operator or an embedder can act on.
//!
//! Every claimed record is counted exactly once: as settled (sent, already sent, not sent)
//! once its batch's write-back succeeded, or as deferred (written back as `Deferred`, or
//! released untouched). So `claimed == settled() + deferred_total()` holds for every run
//! that returns, which is the engine's "none lost" promise in numbers.

use std::collections::BTreeMap;
use std::fmt;
use std::ops::Deref;
use std::time::Duration;

use ca_notify_domain::{DeferReason, NotSentKind, Outcome};
use serde::{Serialize, Serializer};

use crate::failure::StopReason;

/// Why records were handed back undecided, as the report counts them: a [`DeferReason`]
/// written to the store, or a record the run could not write at all. Serialised as its
/// [`code`](DeferredKind::code).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum DeferredKind {
    /// Written back (or released) as deferred for this reason.
    Reason(DeferReason),
    /// The batch's write-back failed (the store failed); the records stay claimed until
    /// their lease ends and then come back.
    WriteFailed,
    /// The batch's task panicked; its records were released.
    BatchPanicked,
}

impl DeferredKind {
    /// A stable code: the [`DeferReason`]'s, `write_failed` or `batch_panicked`.
    pub fn code(self) -> &'static str {
        match self {
            Self::Reason(reason) => reason.code(),
            Self::WriteFailed => "write_failed",
            Self::BatchPanicked => "batch_panicked",
        }
    }
}

impl From<DeferReason> for DeferredKind {
    fn from(reason: DeferReason) -> Self {
        Self::Reason(reason)
    }
}

impl fmt::Display for DeferredKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.code())
    }
}

impl Serialize for DeferredKind {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(self.code())
    }
}

/// Ordered by code, so the JSON summary lists reasons alphabetically.
impl Ord for DeferredKind {
    fn cmp(&self, other: &Self) -> std::cmp::Ordering {
        self.code().cmp(other.code())
    }
}

impl PartialOrd for DeferredKind {
    fn partial_cmp(&self, other: &Self) -> Option<std::cmp::Ordering> {
        Some(self.cmp(other))
    }
}

/// The counters of a run, an epoch or a stretch of either; [`RunReport`] and
/// [`EpochReport`] carry one each (and read through to it), batches add theirs in.
#[derive(Serialize, Clone, Debug, Default, PartialEq)]
pub struct Counts {
    /// Batches started.
    pub batches: u64,
    /// Records claimed (0 for an epoch that found the source drained).
    pub claimed: u64,
    /// Codes issued and texted.
    pub sent: u64,
    /// Records whose code the server already held, or that the store's ledger says were
    /// texted before (no new text).
    pub already_sent: u64,
    /// Records not texted, for good, by kind; [`NotSentKind::Unconfirmed`] counts records
    /// whose code the server holds although an earlier attempt failed, so nobody knows
    /// whether they got a text (an operator decides).
    pub not_sent: BTreeMap<NotSentKind, u64>,
    /// Records handed back undecided, by reason, including records released untouched at
    /// a shutdown, deadline or stop.
    pub deferred: BTreeMap<DeferredKind, u64>,
    /// Batch-issue requests made (first sends, re-sends and rate-limited repeats).
    pub issue_requests: u64,
    /// Items re-sent after a transient per-item failure.
    pub item_retries: u64,
    /// Batch-issue requests the server answered with a rate limit (429), waited out or
    /// deferred.
    pub rate_limited: u64,
    /// Phone checks made.
    pub validator_calls: u64,
    /// Records the store refused to write because this run's claim on them was gone (the
    /// lease ran out and another worker took them). They are still counted above as the
    /// run decided them; the other worker settles them for good.
    pub not_owned: u64,
}

impl Counts {
    /// Records not texted, for good, whatever the reason.
    pub fn not_sent_total(&self) -> u64 {
        self.not_sent.values().sum()
    }

    /// Records not texted for this kind of reason (0 when none).
    pub fn not_sent_for(&self, kind: NotSentKind) -> u64 {
        self.not_sent.get(&kind).copied().unwrap_or(0)
    }

    /// Records handed back undecided, whatever the reason.
    pub fn deferred_total(&self) -> u64 {
        self.deferred.values().sum()
    }

    /// Records handed back undecided for this reason (0 when none).
    pub fn deferred_for(&self, kind: impl Into<DeferredKind>) -> u64 {
        self.deferred.get(&kind.into()).copied().unwrap_or(0)
    }

    /// Records with a final outcome written back.
    pub fn settled(&self) -> u64 {
        self.sent + self.already_sent + self.not_sent_total()
    }

    /// Adds `other`'s counts to these.
    pub fn merge(&mut self, other: &Self) {
        self.claimed += other.claimed;
        self.batches += other.batches;
        self.sent += other.sent;
        self.already_sent += other.already_sent;
        for (k, v) in &other.not_sent {
            *self.not_sent.entry(*k).or_default() += v;
        }
        for (k, v) in &other.deferred {
            *self.deferred.entry(*k).or_default() += v;
        }
        self.issue_requests += other.issue_requests;
        self.item_retries += other.item_retries;
        self.rate_limited += other.rate_limited;
        self.validator_calls += other.validator_calls;
        self.not_owned += other.not_owned;
    }

    pub(crate) fn count_outcome(&mut self, outcome: &Outcome) {
        match outcome {
            Outcome::Sent => self.sent += 1,
            Outcome::AlreadySent | Outcome::TextedBefore => self.already_sent += 1,
            Outcome::NotSent { reason } => *self.not_sent.entry(reason.kind()).or_default() += 1,
            // Final and written as sent = 0, but not a verdict on the record: counted under
            // its own kind so an operator sees it.
            Outcome::Unconfirmed => {
                *self.not_sent.entry(NotSentKind::Unconfirmed).or_default() += 1;
            }
            Outcome::Deferred { reason } => {
                *self.deferred.entry((*reason).into()).or_default() += 1;
            }
        }
    }

    pub(crate) fn defer(&mut self, kind: impl Into<DeferredKind>, records: usize) {
        if records > 0 {
            *self.deferred.entry(kind.into()).or_default() += records as u64;
        }
    }

    pub(crate) fn run_report(
        &self,
        epochs: u32,
        elapsed: Duration,
        stop: Option<StopReason>,
    ) -> RunReport {
        let secs = elapsed.as_secs_f64();
        RunReport {
            epochs,
            counts: self.clone(),
            elapsed_secs: secs,
            records_per_sec: if secs > 0.0 {
                self.settled() as f64 / secs
            } else {
                0.0
            },
            stop,
        }
    }

    pub(crate) fn epoch_report(
        &self,
        epoch: u32,
        elapsed: Duration,
        stop: Option<StopReason>,
    ) -> EpochReport {
        EpochReport {
            epoch,
            counts: self.clone(),
            elapsed,
            stop,
        }
    }
}

/// Counts for a whole run. Reads through to its [`Counts`] (`report.sent`).
#[derive(Serialize, Clone, Debug, Default, PartialEq)]
pub struct RunReport {
    /// Epochs that claimed at least one record.
    pub epochs: u32,
    /// What the run did.
    #[serde(flatten)]
    pub counts: Counts,
    /// Wall time of the run.
    pub elapsed_secs: f64,
    /// Settled records per second of wall time.
    pub records_per_sec: f64,
    /// Why the run ended early, if it did.
    pub stop: Option<StopReason>,
}

impl Deref for RunReport {
    type Target = Counts;

    fn deref(&self) -> &Counts {
        &self.counts
    }
}

/// Counts for one epoch (one claim and its batches). Reads through to its [`Counts`].
#[derive(Serialize, Clone, Debug, Default, PartialEq)]
pub struct EpochReport {
    /// The epoch's number in its run, from 1.
    pub epoch: u32,
    /// What the epoch did.
    #[serde(flatten)]
    pub counts: Counts,
    /// From the claim to the last write-back.
    #[serde(with = "secs")]
    pub elapsed: Duration,
    /// Why the epoch (and its run) ended early, if it did.
    pub stop: Option<StopReason>,
}

impl Deref for EpochReport {
    type Target = Counts;

    fn deref(&self) -> &Counts {
        &self.counts
    }
}

/// What one write-back (an epoch's outcomes, in one write) held, handed to
/// [`crate::RunObserver::on_batch_written`].
#[derive(Serialize, Clone, Debug, Default, PartialEq, Eq)]
pub struct BatchReport {
    /// Records in the batch.
    pub records: usize,
    /// Codes issued and texted.
    pub sent: usize,
    /// Codes the server already held.
    pub already_sent: usize,
    /// Records not texted, for good.
    pub not_sent: usize,
    /// Records handed back undecided.
    pub deferred: usize,
    /// From the start of validation to the end of the write-back.
    #[serde(with = "secs")]
    pub elapsed: Duration,
}

mod secs {
    use std::time::Duration;

    use serde::Serializer;

    pub fn serialize<S: Serializer>(d: &Duration, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_f64(d.as_secs_f64())
    }
}

#[cfg(test)]
mod tests {
    use ca_notify_domain::NotSentReason;

    use super::*;

    #[test]
    fn totals_add_up_and_serialise_with_string_keys() {
        let mut t = Counts {
            claimed: 5,
            ..Counts::default()
        };
        t.count_outcome(&Outcome::Sent);
        t.count_outcome(&Outcome::AlreadySent);
        t.count_outcome(&Outcome::not_sent(NotSentReason::InvalidTestType));
        t.count_outcome(&Outcome::deferred(DeferReason::Deadline));
        t.defer(DeferReason::Shutdown, 1);
        let r = t.run_report(1, Duration::from_secs(2), Some(StopReason::Shutdown));
        assert_eq!(r.settled(), 3);
        assert_eq!(r.deferred_total(), 2);
        assert_eq!(r.claimed, r.settled() + r.deferred_total());
        assert!((r.records_per_sec - 1.5).abs() < 1e-9);
        let json = serde_json::to_value(&r).expect("serialises");
        assert_eq!(json["not_sent"]["invalid_test_type"], 1);
        assert_eq!(json["deferred"]["deadline"], 1);
        assert_eq!(json["stop"], "shutdown");
    }

    #[test]
    fn the_summary_keeps_its_keys_and_their_order() {
        let mut t = Counts::default();
        t.count_outcome(&Outcome::Unconfirmed);
        t.count_outcome(&Outcome::not_sent(NotSentReason::GaveUp {
            last_error: "x".into(),
        }));
        t.defer(DeferredKind::WriteFailed, 2);
        t.defer(DeferredKind::BatchPanicked, 1);
        t.defer(DeferReason::NoAnswer, 1);
        let r = t.run_report(0, Duration::ZERO, Some(StopReason::Sink));
        let json = serde_json::to_string(&r).expect("serialises");
        assert_eq!(
            json,
            "{\"epochs\":0,\"batches\":0,\"claimed\":0,\"sent\":0,\"already_sent\":0,\
             \"not_sent\":{\"gave_up\":1,\"unconfirmed\":1},\
             \"deferred\":{\"batch_panicked\":1,\"no_answer\":1,\"write_failed\":2},\
             \"issue_requests\":0,\"item_retries\":0,\"rate_limited\":0,\"validator_calls\":0,\"not_owned\":0,\
             \"elapsed_secs\":0.0,\"records_per_sec\":0.0,\"stop\":\"sink_failed\"}"
        );
        let epoch = t.epoch_report(2, Duration::from_millis(1500), None);
        let json = serde_json::to_value(&epoch).expect("serialises");
        assert_eq!(json["epoch"], 2);
        assert_eq!(json["elapsed"], 1.5);
        assert_eq!(json["deferred"]["write_failed"], 2);
        assert!(json["stop"].is_null());
    }
}
