//! What a store crate provides so the contract suite can run against it.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use ca_notify_domain::{ClaimToken, RecipientRecord, RecordId};
use ca_notify_ports::{PhoneSource, ResultSink, RunLog};

/// The pipeline's state for one record, as the store holds it. Read only by the suite,
/// to see what the ports do not return (attempts, the stored outcome, the claim).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RecordState {
    /// The seed's sent flag: `Some(1)` sent or already sent, `Some(0)` not sent, `None`
    /// while the record has no final outcome.
    pub sent: Option<u8>,
    /// The outcome label (`sent`, `already_sent`, `not_sent`, `unconfirmed`), `None` without
    /// a final outcome.
    pub outcome: Option<String>,
    /// The reason code; `None` and `Some("")` are treated alike.
    pub reason: Option<String>,
    /// The dedup uuid written with the outcome, hyphenated.
    pub dedup_key: Option<String>,
    /// Write-backs that reached this record with `Deferred` (and, in stores that count
    /// them, with a final outcome). A release does not count.
    pub attempts: u32,
    /// The token of the current claim, expired or not; `None` when unclaimed, and when a
    /// `Deferred { NoAnswer }` write-back turned the claim into a hold (the lease stays,
    /// the token goes, so no claim takes the record and no write or release by the old
    /// token touches it until the lease ends).
    pub claim_token: Option<ClaimToken>,
    /// Whether a processed time is stored.
    pub processed: bool,
    /// The run whose write-back last reached the record (the state row's run id).
    pub run_id: Option<String>,
}

/// Time a harness has moved its stores' clock forward: a store built on it reads its own
/// clock plus this offset. Clones share the offset.
#[derive(Debug, Clone, Default)]
pub struct ClockOffset(Arc<AtomicU64>);

impl ClockOffset {
    /// A zero offset.
    pub fn new() -> Self {
        Self::default()
    }

    /// Moves the clock forward by `d` (to the millisecond).
    pub fn advance(&self, d: Duration) {
        let ms = u64::try_from(d.as_millis()).unwrap_or(u64::MAX);
        self.0.fetch_add(ms, Ordering::SeqCst);
    }

    /// How far the clock was moved.
    pub fn get(&self) -> Duration {
        Duration::from_millis(self.0.load(Ordering::SeqCst))
    }
}

/// Builds stores for the suite. Each call to [`StoreHarness::fresh`] must give a store
/// that shares nothing with earlier ones (a new file, schema or table name).
#[async_trait]
pub trait StoreHarness: Send + Sync {
    /// The store under test.
    type Store: PhoneSource + ResultSink + RunLog + 'static;

    /// A new, empty store whose source holds exactly `records` (ids are unique and
    /// numeric-looking; dates are `YYYY-MM-DD` or `None`; `tz_offset` is `None`).
    async fn fresh(&self, records: Vec<RecipientRecord>) -> Self::Store;

    /// Another worker on the same data: a separate connection or session, as a second
    /// process would have. Used by the concurrency and lease checks.
    async fn second_handle(&self, store: &Self::Store) -> Self::Store;

    /// A lease short enough to wait out in a test, long enough that one claim statement
    /// finishes well inside it (in real time).
    fn short_lease(&self) -> Duration;

    /// Lets `d` pass on the clock the stores read their leases from. The default sleeps
    /// in real time, for a store whose clock nobody can move (a database server's); a
    /// harness whose stores read an injected clock moves it forward instead (see
    /// [`ClockOffset`]), so lease expiry costs no waiting.
    async fn pass(&self, d: Duration) {
        tokio::time::sleep(d).await;
    }

    /// The pipeline state of `id` (all `None`/0 when the store has no state for it).
    async fn inspect(&self, store: &Self::Store, id: &RecordId) -> RecordState;

    /// Whether the store remembers which claim wrote each record last, so a write-back
    /// repeated by the same claim (a retry after a lost answer) reports the rows it had
    /// already written as written or released, as the first call did, instead of
    /// `not_owned`. The Snowflake store does (issue 15); the others report `not_owned`.
    /// Either way a repeat changes nothing.
    fn repeats_report_as_first_written(&self) -> bool {
        false
    }

    /// Whether the runs table lists a run from its start (with no end until it ends). The
    /// Snowflake store writes a run's row once, at its end, so that an idle run keeps the
    /// warehouse busy for as few statements as it can (issue 15's cost rule); a run that
    /// never ended is then not listed. The others write the start when it happens.
    fn lists_runs_from_their_start(&self) -> bool {
        true
    }

    /// Whether the store knows when each record arrived, so the backlog is dated (SQLite
    /// stamps arrivals; the Snowflake harness configures `arrived_at_column`; the memory
    /// store keeps none).
    fn knows_arrival_times(&self) -> bool {
        true
    }
}
