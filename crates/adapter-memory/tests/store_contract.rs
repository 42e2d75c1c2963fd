//! The store contract suite, run against `MemoryStore`: the in-memory store keeps the same
//! promises as the SQLite and Snowflake stores, so tests on it prove something.

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use ca_notify_adapter_memory::MemoryStore;
use ca_notify_domain::{
    ClaimToken, DedupKey, KeyHistory, RecipientRecord, RecordId, RecordOutcome,
};
use ca_notify_ports::{
    Backlog, Claim, PhoneSource, ResultSink, RunEnd, RunId, RunLog, RunRecord, RunStart, SinkError,
    SourceError, WriteReceipt,
};
use ca_notify_store_contract::{ClockOffset, RecordState, StoreHarness};

/// A handle on a shared memory store: a "second worker" is another handle on the same
/// store, as a second process would hold another connection.
#[derive(Clone)]
struct Handle(Arc<MemoryStore>);

#[async_trait]
impl PhoneSource for Handle {
    async fn claim(&self, max: usize, lease: Duration) -> Result<Claim, SourceError> {
        self.0.claim(max, lease).await
    }

    async fn release(&self, token: &ClaimToken, ids: &[RecordId]) -> Result<(), SourceError> {
        self.0.release(token, ids).await
    }

    async fn peek(&self, max: usize) -> Result<Vec<RecipientRecord>, SourceError> {
        self.0.peek(max).await
    }
}

#[async_trait]
impl ResultSink for Handle {
    async fn key_histories(&self, keys: &[DedupKey]) -> Result<Vec<KeyHistory>, SinkError> {
        self.0.key_histories(keys).await
    }

    async fn write_back(
        &self,
        token: &ClaimToken,
        outcomes: &[RecordOutcome],
    ) -> Result<WriteReceipt, SinkError> {
        self.0.write_back(token, outcomes).await
    }
}

#[async_trait]
impl RunLog for Handle {
    async fn start_run(&self, run: &RunStart) -> Result<(), SinkError> {
        self.0.start_run(run).await
    }

    async fn finish_run(&self, id: &RunId, end: &RunEnd) -> Result<(), SinkError> {
        self.0.finish_run(id, end).await
    }

    async fn recent_runs(&self, limit: usize) -> Result<Vec<RunRecord>, SinkError> {
        self.0.recent_runs(limit).await
    }

    async fn last_success(&self) -> Result<Option<RunRecord>, SinkError> {
        self.0.last_success().await
    }

    async fn backlog(&self) -> Result<Backlog, SinkError> {
        self.0.backlog().await
    }
}

/// Stores on one clock the checks move forward instead of waiting out leases.
#[derive(Default)]
struct Memory {
    offset: ClockOffset,
}

#[async_trait]
impl StoreHarness for Memory {
    type Store = Handle;

    async fn fresh(&self, records: Vec<RecipientRecord>) -> Handle {
        let offset = self.offset.clone();
        let store = MemoryStore::with_records(records)
            .with_clock(Arc::new(move || tokio::time::Instant::now() + offset.get()));
        Handle(Arc::new(store))
    }

    async fn second_handle(&self, store: &Handle) -> Handle {
        store.clone()
    }

    fn short_lease(&self) -> Duration {
        Duration::from_millis(100)
    }

    async fn pass(&self, d: Duration) {
        self.offset.advance(d);
    }

    async fn inspect(&self, store: &Handle, id: &RecordId) -> RecordState {
        let result = store.0.result(id);
        RecordState {
            sent: result.as_ref().map(|r| r.sent_flag),
            outcome: result.as_ref().map(|r| r.outcome.label().to_owned()),
            reason: result.as_ref().map(|r| r.outcome.reason_code()),
            dedup_key: result
                .as_ref()
                .and_then(|r| r.dedup_key.map(|k| k.to_string())),
            attempts: store.0.attempts(id).unwrap_or(0),
            claim_token: store.0.claim_token(id),
            processed: result.is_some(),
            run_id: store.0.run_id(id).map(String::from),
        }
    }

    fn knows_arrival_times(&self) -> bool {
        false
    }
}

ca_notify_store_contract::store_contract_tests!(Memory::default());

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn many_workers_never_overlap() {
    ca_notify_store_contract::concurrent_claimers_never_overlap_with(
        &Memory::default(),
        8,
        2_000,
        13,
    )
    .await;
}
