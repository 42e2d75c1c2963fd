//! `PhoneSource`: where recipients come from, under a claim and a lease.
//!
//! A claim stamps a fresh token and a lease expiry on up to N records that have no final
//! outcome and are unclaimed (or whose lease ran out), so several workers never hold the
//! same record and a crashed worker's records come back once its lease ends.

use std::time::Duration;

use async_trait::async_trait;
use ca_notify_domain::{ClaimToken, RecipientRecord, RecordId};

/// Records claimed by this worker.
#[derive(Debug, Clone)]
pub struct Claim {
    /// The token every write-back and release of these records must carry.
    pub token: ClaimToken,
    /// The records, as the store holds them (possibly fewer than asked; none when drained).
    pub records: Vec<RecipientRecord>,
}

/// Why the source could not answer.
#[derive(Debug, thiserror::Error)]
pub enum SourceError {
    /// The store is unreachable or busy (lock timeout, lost session, network). Retryable:
    /// nothing was claimed, or the claim is invisible and will expire with its lease.
    #[error("the store is unavailable: {0}")]
    Unavailable(String),
    /// Credentials refused, or the configured table or columns do not exist. Fatal.
    #[error("the store refused the request: {0}")]
    Misconfigured(String),
    /// Anything else. Fatal for the run.
    #[error(transparent)]
    Unknown(#[from] anyhow::Error),
}

/// Where recipients come from.
#[cfg_attr(feature = "mock", mockall::automock)]
#[async_trait]
pub trait PhoneSource: Send + Sync {
    /// Claims up to `max` unprocessed records for `lease`, in one atomic step, and reads
    /// them back (one read per epoch).
    ///
    /// # Errors
    /// [`SourceError::Unavailable`] when the store cannot be reached or a lock timed out
    /// (retryable); [`SourceError::Misconfigured`] for refused credentials or a missing
    /// table or column; [`SourceError::Unknown`] for anything else. An adapter MUST NOT
    /// return records it did not claim.
    async fn claim(&self, max: usize, lease: Duration) -> Result<Claim, SourceError>;

    /// Hands records of a claim back untouched: the claim is cleared, no outcome is
    /// written, and the attempt count is unchanged. Records no longer held by `token`
    /// are left alone. Releasing twice changes nothing.
    ///
    /// # Errors
    /// As [`PhoneSource::claim`]. A failed release is not a loss: the lease expires.
    async fn release(&self, token: &ClaimToken, ids: &[RecordId]) -> Result<(), SourceError>;

    /// Reads up to `max` records the next claim would take, without claiming them (for
    /// `run --dry-run`).
    ///
    /// # Errors
    /// As [`PhoneSource::claim`].
    async fn peek(&self, max: usize) -> Result<Vec<RecipientRecord>, SourceError>;
}
