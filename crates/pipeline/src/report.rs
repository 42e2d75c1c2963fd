//! What a run, an epoch and a batch did, in counts an operator or an embedder can act on.
//!
//! Every claimed record is counted exactly once: as settled (sent, already sent, not sent)
//! once its batch's write-back succeeded, or as deferred (written back as `Deferred`, or
//! released untouched). So `claimed == settled() + deferred_total()` holds for every run
//! that returns, which is the engine's "none lost" promise in numbers.

use std::collections::BTreeMap;
use std::time::Duration;

use ca_notify_domain::Outcome;
use serde::Serialize;

/// Deferred-map key for records whose batch could not be written (the store failed);
/// they stay claimed until their lease ends and then come back.
pub const WRITE_FAILED: &str = "write_failed";

/// Counts for a whole run.
#[derive(Serialize, Clone, Debug, Default, PartialEq)]
pub struct RunReport {
    /// Epochs that claimed at least one record.
    pub epochs: u32,
    /// Batches started.
    pub batches: u64,
    /// Records claimed.
    pub claimed: u64,
    /// Codes issued and texted.
    pub sent: u64,
    /// Records whose code the server already held, or that the store's ledger says were
    /// texted before (no new text).
    pub already_sent: u64,
    /// Records not texted, for good, by `NotSentReason::kind()`, plus `unconfirmed`:
    /// records whose code the server holds although an earlier attempt failed, so nobody
    /// knows whether they got a text (an operator decides).
    pub not_sent: BTreeMap<String, u64>,
    /// Records handed back undecided, by `DeferReason::code()` (plus `write_failed`),
    /// including records released untouched at a shutdown, deadline or stop.
    pub deferred: BTreeMap<String, u64>,
    /// Batch-issue requests made (first sends, re-sends and rate-limited repeats).
    pub issue_requests: u64,
    /// Items re-sent after a transient per-item failure.
    pub item_retries: u64,
    /// Phone checks made.
    pub validator_calls: u64,
    /// Records the store refused to write because this run's claim on them was gone (the
    /// lease ran out and another worker took them). They are still counted above as the
    /// run decided them; the other worker settles them for good.
    pub not_owned: u64,
    /// Wall time of the run.
    pub elapsed_secs: f64,
    /// Settled records per second of wall time.
    pub records_per_sec: f64,
    /// Why the run ended early, if it did: `deadline`, `shutdown`, `drained`,
    /// `issuer_unavailable`, or the code of a fatal cause.
    pub stop: Option<String>,
}

impl RunReport {
    /// Records not texted, for good, whatever the reason.
    pub fn not_sent_total(&self) -> u64 {
        self.not_sent.values().sum()
    }

    /// Records handed back undecided, whatever the reason.
    pub fn deferred_total(&self) -> u64 {
        self.deferred.values().sum()
    }

    /// Records with a final outcome written back.
    pub fn settled(&self) -> u64 {
        self.sent + self.already_sent + self.not_sent_total()
    }
}

/// Counts for one epoch (one claim and its batches).
#[derive(Serialize, Clone, Debug, Default, PartialEq)]
pub struct EpochReport {
    /// The epoch's number in its run, from 1.
    pub epoch: u32,
    /// Records claimed (0 when the source is drained).
    pub claimed: usize,
    /// Batches started.
    pub batches: u64,
    /// Codes issued and texted.
    pub sent: u64,
    /// Records whose code the server already held.
    pub already_sent: u64,
    /// Records not texted, by kind.
    pub not_sent: BTreeMap<String, u64>,
    /// Records handed back undecided, by reason.
    pub deferred: BTreeMap<String, u64>,
    /// Batch-issue requests made.
    pub issue_requests: u64,
    /// Items re-sent.
    pub item_retries: u64,
    /// Phone checks made.
    pub validator_calls: u64,
    /// Records the store refused to write because the claim was gone.
    pub not_owned: u64,
    /// From the claim to the last write-back.
    #[serde(with = "secs")]
    pub elapsed: Duration,
    /// Why the epoch (and its run) ended early, if it did.
    pub stop: Option<String>,
}

impl EpochReport {
    /// Records not texted, for good.
    pub fn not_sent_total(&self) -> u64 {
        self.not_sent.values().sum()
    }

    /// Records handed back undecided.
    pub fn deferred_total(&self) -> u64 {
        self.deferred.values().sum()
    }

    /// Records with a final outcome written back.
    pub fn settled(&self) -> u64 {
        self.sent + self.already_sent + self.not_sent_total()
    }
}

/// What one batch did, handed to [`crate::RunObserver::on_batch_written`].
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

/// Running counts, merged from batches into epochs and the run. Keys are the domain's
/// static codes, so counting allocates nothing.
#[derive(Clone, Debug, Default)]
pub(crate) struct Tally {
    pub claimed: u64,
    pub batches: u64,
    pub sent: u64,
    pub already_sent: u64,
    pub not_sent: BTreeMap<&'static str, u64>,
    pub deferred: BTreeMap<&'static str, u64>,
    pub issue_requests: u64,
    pub item_retries: u64,
    pub validator_calls: u64,
    pub not_owned: u64,
}

impl Tally {
    pub fn count_outcome(&mut self, outcome: &Outcome) {
        match outcome {
            Outcome::Sent => self.sent += 1,
            Outcome::AlreadySent | Outcome::TextedBefore => self.already_sent += 1,
            Outcome::NotSent { reason } => *self.not_sent.entry(reason.kind()).or_default() += 1,
            // Final and written as sent = 0, but not a verdict on the record: counted under
            // its own key so an operator sees it.
            Outcome::Unconfirmed => *self.not_sent.entry(outcome.label()).or_default() += 1,
            Outcome::Deferred { reason } => *self.deferred.entry(reason.code()).or_default() += 1,
        }
    }

    pub fn defer(&mut self, code: &'static str, records: usize) {
        if records > 0 {
            *self.deferred.entry(code).or_default() += records as u64;
        }
    }

    pub fn merge(&mut self, other: &Self) {
        self.claimed += other.claimed;
        self.batches += other.batches;
        self.sent += other.sent;
        self.already_sent += other.already_sent;
        for (k, v) in &other.not_sent {
            *self.not_sent.entry(k).or_default() += v;
        }
        for (k, v) in &other.deferred {
            *self.deferred.entry(k).or_default() += v;
        }
        self.issue_requests += other.issue_requests;
        self.item_retries += other.item_retries;
        self.validator_calls += other.validator_calls;
        self.not_owned += other.not_owned;
    }

    pub fn settled(&self) -> u64 {
        self.sent + self.already_sent + self.not_sent.values().sum::<u64>()
    }

    pub fn run_report(&self, epochs: u32, elapsed: Duration, stop: Option<String>) -> RunReport {
        let secs = elapsed.as_secs_f64();
        RunReport {
            epochs,
            batches: self.batches,
            claimed: self.claimed,
            sent: self.sent,
            already_sent: self.already_sent,
            not_sent: owned_keys(&self.not_sent),
            deferred: owned_keys(&self.deferred),
            issue_requests: self.issue_requests,
            item_retries: self.item_retries,
            validator_calls: self.validator_calls,
            not_owned: self.not_owned,
            elapsed_secs: secs,
            records_per_sec: if secs > 0.0 {
                self.settled() as f64 / secs
            } else {
                0.0
            },
            stop,
        }
    }

    pub fn epoch_report(&self, epoch: u32, elapsed: Duration, stop: Option<String>) -> EpochReport {
        EpochReport {
            epoch,
            claimed: usize::try_from(self.claimed).unwrap_or(usize::MAX),
            batches: self.batches,
            sent: self.sent,
            already_sent: self.already_sent,
            not_sent: owned_keys(&self.not_sent),
            deferred: owned_keys(&self.deferred),
            issue_requests: self.issue_requests,
            item_retries: self.item_retries,
            validator_calls: self.validator_calls,
            not_owned: self.not_owned,
            elapsed,
            stop,
        }
    }
}

fn owned_keys(map: &BTreeMap<&'static str, u64>) -> BTreeMap<String, u64> {
    map.iter().map(|(k, v)| ((*k).to_owned(), *v)).collect()
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
    use ca_notify_domain::{DeferReason, NotSentReason};

    use super::*;

    #[test]
    fn totals_add_up_and_serialise_with_string_keys() {
        let mut t = Tally {
            claimed: 5,
            ..Tally::default()
        };
        t.count_outcome(&Outcome::Sent);
        t.count_outcome(&Outcome::AlreadySent);
        t.count_outcome(&Outcome::not_sent(NotSentReason::InvalidTestType));
        t.count_outcome(&Outcome::deferred(DeferReason::Deadline));
        t.defer(DeferReason::Shutdown.code(), 1);
        let r = t.run_report(1, Duration::from_secs(2), Some("shutdown".into()));
        assert_eq!(r.settled(), 3);
        assert_eq!(r.deferred_total(), 2);
        assert_eq!(r.claimed, r.settled() + r.deferred_total());
        assert!((r.records_per_sec - 1.5).abs() < 1e-9);
        let json = serde_json::to_value(&r).expect("serialises");
        assert_eq!(json["not_sent"]["invalid_test_type"], 1);
        assert_eq!(json["deferred"]["deadline"], 1);
        assert_eq!(json["stop"], "shutdown");
    }
}
