//! `RunLog`: the store's own record of runs, so "when did this last succeed" has an answer
//! without a metrics system, and every outcome written names the run that wrote it.
//!
//! A run is one `Job::run`: the job makes its [`RunId`] (the domain and the stores make
//! none), tells the store when the run starts ([`RunLog::start_run`]) and how it ended
//! ([`RunLog::finish_run`]). Between the two, every outcome the same store value writes
//! carries the run id in its state row, so an operator can tell which run texted whom.
//! A run that never finishes (a killed process) stays listed with no end. The same port
//! answers how many records wait for a claim (the backlog), for the run's metrics.

use std::fmt;

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::sink::SinkError;

/// The id of one run: short printable text (letters, digits, `-`, `_`; at most 64
/// characters), made by the job, written on each log line, in the summary, in the runs
/// table and on each outcome. The job makes time-ordered UUIDs (version 7).
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct RunId(String);

/// A run id that is empty, too long or holds a character outside `[A-Za-z0-9_-]`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("a run id is 1 to 64 letters, digits, '-' or '_'")]
pub struct InvalidRunId;

impl RunId {
    /// The longest run id, in characters.
    pub const MAX_LEN: usize = 64;

    /// Checks and wraps `text`.
    ///
    /// # Errors
    /// [`InvalidRunId`] when `text` is empty, longer than [`RunId::MAX_LEN`] or holds a
    /// character other than an ASCII letter, digit, `-` or `_`.
    pub fn parse(text: impl Into<String>) -> Result<Self, InvalidRunId> {
        let text = text.into();
        let ok = !text.is_empty()
            && text.len() <= Self::MAX_LEN
            && text
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_');
        if ok {
            Ok(Self(text))
        } else {
            Err(InvalidRunId)
        }
    }

    /// The id text.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for RunId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl TryFrom<String> for RunId {
    type Error = InvalidRunId;

    fn try_from(text: String) -> Result<Self, Self::Error> {
        Self::parse(text)
    }
}

impl From<RunId> for String {
    fn from(id: RunId) -> Self {
        id.0
    }
}

/// A run as it starts.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RunStart {
    /// The run.
    pub id: RunId,
    /// The worker that runs it (the store's `worker_id`: host name and process id unless
    /// configured).
    pub worker: String,
    /// When it started.
    pub started_at: DateTime<Utc>,
}

/// Record counts of a finished run, as the runs table keeps them.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct RunCounts {
    /// Records claimed.
    pub claimed: u64,
    /// Codes issued and texted.
    pub sent: u64,
    /// Records the server or the ledger already knew as texted.
    pub already_sent: u64,
    /// Records not texted for good, `unconfirmed` included.
    pub not_sent: u64,
    /// Of `not_sent`, records whose text nobody can confirm (for an operator).
    pub unconfirmed: u64,
    /// Records handed back undecided.
    pub deferred: u64,
}

/// How a run ended.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RunEnd {
    /// When it ended.
    pub ended_at: DateTime<Utc>,
    /// Whether the run succeeded (the command exits 0): it stopped at its deadline, on
    /// a shutdown or with the source drained, and it was not a run that settled nothing
    /// because a peer could not serve.
    pub succeeded: bool,
    /// Why it stopped: the stable code of the run's stop reason (`deadline`, `drained`,
    /// `misconfigured`, …).
    pub stop: String,
    /// What it did.
    pub counts: RunCounts,
}

/// The stop code of a run that found nothing to claim: the pipeline's "drained". A store
/// that learns before a run that nothing waits may record the run's end in advance as
/// [`RunEnd::nothing_to_claim`], and then owes no write when the run ends so.
pub const NOTHING_TO_CLAIM_STOP: &str = "drained";

impl RunEnd {
    /// The end of a run that found nothing to claim, at `at`: succeeded, stopped
    /// [`NOTHING_TO_CLAIM_STOP`], nothing counted.
    pub fn nothing_to_claim(at: DateTime<Utc>) -> Self {
        Self {
            ended_at: at,
            succeeded: true,
            stop: NOTHING_TO_CLAIM_STOP.to_owned(),
            counts: RunCounts::default(),
        }
    }

    /// Whether this end is [`RunEnd::nothing_to_claim`]'s, whenever it happened.
    pub fn is_nothing_to_claim(&self) -> bool {
        self.succeeded && self.stop == NOTHING_TO_CLAIM_STOP && self.counts == RunCounts::default()
    }
}

/// The records waiting for a claim, for the run's metrics and `status`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Backlog {
    /// Records with no final outcome that a claim could take now.
    pub records: u64,
    /// When the oldest of them arrived in the store, when the store knows arrival times
    /// (SQLite stamps each record's arrival; Snowflake reads `source.arrived_at_column`
    /// when configured); `None` when it does not, or when nothing waits.
    pub oldest_arrival: Option<DateTime<Utc>>,
}

/// One row of the runs table.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RunRecord {
    /// The run, its worker and its start.
    #[serde(flatten)]
    pub start: RunStart,
    /// Its end; `None` while it runs, or when its process died before finishing.
    pub end: Option<RunEnd>,
}

/// Where runs are recorded: the store, beside the outcomes.
#[cfg_attr(feature = "mock", mockall::automock)]
#[async_trait]
pub trait RunLog: Send + Sync {
    /// Records `run` as started, and makes it this store value's current run: every
    /// outcome this value writes from now on (final or deferred) carries `run.id` in its
    /// state row, until another `start_run`. Starting the same run twice changes nothing.
    ///
    /// # Errors
    /// [`SinkError::Unavailable`] when the store cannot be reached (retryable);
    /// [`SinkError::Misconfigured`] when the runs table is missing (a store not
    /// migrated); [`SinkError::Unknown`] for anything else.
    async fn start_run(&self, run: &RunStart) -> Result<(), SinkError>;

    /// Records how run `id` ended. Finishing a run twice keeps the last end; finishing
    /// a run that was never started records it as started when it ended, by worker `""`.
    ///
    /// # Errors
    /// As [`RunLog::start_run`].
    async fn finish_run(&self, id: &RunId, end: &RunEnd) -> Result<(), SinkError>;

    /// The last `limit` runs, newest start first.
    ///
    /// # Errors
    /// As [`RunLog::start_run`].
    async fn recent_runs(&self, limit: usize) -> Result<Vec<RunRecord>, SinkError>;

    /// The run that most recently ended successfully (latest end), if any.
    ///
    /// # Errors
    /// As [`RunLog::start_run`].
    async fn last_success(&self) -> Result<Option<RunRecord>, SinkError>;

    /// The backlog: records with no final outcome that a claim could take now (no live
    /// claim or hold on them), and when the oldest of them arrived. Read at the end of a
    /// run for the metrics.
    ///
    /// # Errors
    /// As [`RunLog::start_run`].
    async fn backlog(&self) -> Result<Backlog, SinkError>;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_run_that_found_nothing_is_known_by_its_end_alone() {
        let at = DateTime::parse_from_rfc3339("2026-03-01T00:00:00Z")
            .expect("time")
            .with_timezone(&Utc);
        let idle = RunEnd::nothing_to_claim(at);
        assert!(idle.is_nothing_to_claim());
        let later = RunEnd {
            ended_at: at + chrono::Duration::seconds(3),
            ..idle.clone()
        };
        assert!(later.is_nothing_to_claim(), "the time does not matter");
        let mut busy = idle.clone();
        busy.counts.claimed = 1;
        assert!(!busy.is_nothing_to_claim());
        let failed = RunEnd {
            succeeded: false,
            ..idle.clone()
        };
        assert!(!failed.is_nothing_to_claim());
        let deadline = RunEnd {
            stop: "deadline".into(),
            ..idle
        };
        assert!(!deadline.is_nothing_to_claim());
    }

    #[test]
    fn run_ids_are_short_printable_text() {
        assert!(RunId::parse("0193a1b2-7c3d-7e4f-8a9b-0c1d2e3f4a5b").is_ok());
        assert!(RunId::parse("nightly_1").is_ok());
        for bad in ["", "a b", "a;DROP", "ü", &"x".repeat(65)] {
            assert_eq!(RunId::parse(bad), Err(InvalidRunId), "{bad:?}");
        }
        assert_eq!(
            RunId::try_from("r-1".to_owned()).map(String::from),
            Ok("r-1".to_owned())
        );
    }
}
