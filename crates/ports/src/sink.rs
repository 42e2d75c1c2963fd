//! `ResultSink`: the lasting ledger of what was sent.
//!
//! The verification server forgets uuids about 14 days after a code expires; this ledger
//! does not, so it is what keeps a person from being texted twice in the long run.

use async_trait::async_trait;
use ca_notify_domain::{ClaimToken, DedupKey, KeyHistory, RecordOutcome};

/// What one write-back did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct WriteReceipt {
    /// Records that got a final outcome in this write.
    pub written: usize,
    /// `Deferred` records released back to the store (attempts incremented).
    pub released: usize,
    /// Records not written because this worker's claim on them was gone (lease expired
    /// and another worker took them, or — in a store that does not remember the last
    /// writer of a record — already written by an earlier identical call; the Snowflake
    /// store reports such a repeat as the first call did).
    pub not_owned: usize,
}

/// Why a write-back failed.
#[derive(Debug, thiserror::Error)]
pub enum SinkError {
    /// The store is unreachable or busy. Retryable: the write is atomic and idempotent,
    /// so the same batch may be written again.
    #[error("the store is unavailable: {0}")]
    Unavailable(String),
    /// Credentials refused, or the state table is missing. Fatal.
    #[error("the store refused the write: {0}")]
    Misconfigured(String),
    /// Anything else. Fatal for the run.
    #[error(transparent)]
    Unknown(#[from] anyhow::Error),
}

/// Where outcomes go.
#[cfg_attr(feature = "mock", mockall::automock)]
#[async_trait]
pub trait ResultSink: Send + Sync {
    /// What the ledger knows of each dedup key, one [`KeyHistory`] per key in order:
    /// whether any record with that key, under any record id and however long ago, was
    /// written as texted (`sent = 1`), and the sum of the attempt answers kept for the key
    /// by earlier write-backs. A key the store has never seen has the default history.
    /// Stores keep an index on the dedup key, so this is one cheap read per batch.
    ///
    /// # Errors
    /// As [`ResultSink::write_back`].
    async fn key_histories(&self, keys: &[DedupKey]) -> Result<Vec<KeyHistory>, SinkError>;

    /// Writes one batch of outcomes in a single atomic write, only for records still
    /// claimed by `token`. Final outcomes set the sent flag, outcome, reason, dedup uuid
    /// and processed time and clear the claim; `Deferred` outcomes release the record
    /// (claim cleared, attempts incremented) without an outcome, except a reason whose
    /// [`DeferReason::holds_the_claim`] is true: that record keeps its claim until its
    /// lease ends (attempts incremented), because a request for it may still be running.
    /// Every outcome's `attempts` are appended to the attempt log of its `dedup_key`
    /// (whatever the outcome, and whether or not the token still holds the record: they
    /// are facts about the uuid). A store whose state and log cannot share one transaction
    /// writes the log first, so a half-done write only ever records attempts that
    /// happened, and the retried write completes it. Writing the same batch twice changes
    /// nothing, the attempt log included.
    ///
    /// [`DeferReason::holds_the_claim`]: ca_notify_domain::DeferReason::holds_the_claim
    ///
    /// # Errors
    /// [`SinkError::Unavailable`] when the store cannot be reached (retryable, nothing or
    /// everything was written); [`SinkError::Misconfigured`] and [`SinkError::Unknown`]
    /// are fatal.
    async fn write_back(
        &self,
        token: &ClaimToken,
        outcomes: &[RecordOutcome],
    ) -> Result<WriteReceipt, SinkError>;
}
