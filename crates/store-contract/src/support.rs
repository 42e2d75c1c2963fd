//! Port calls that retry what the port contracts call retryable, so a store that
//! answers `Unavailable` under contention (fakesnow does) is judged on its semantics.

use std::time::Duration;

use ca_notify_domain::RecipientRecord;
use ca_notify_domain::{ClaimToken, DedupKey, KeyHistory, RecordId, RecordOutcome};
use ca_notify_ports::{Claim, PhoneSource, ResultSink, SinkError, SourceError, WriteReceipt};

const ATTEMPTS: usize = 200;
const PAUSE: Duration = Duration::from_millis(25);

/// A token no store ever hands out (stores make random or numbered ones).
pub fn stranger_token() -> ClaimToken {
    ClaimToken::new("a token no store issued")
}

/// A lease no check ever waits out.
pub const LONG_LEASE: Duration = Duration::from_secs(600);

pub async fn claim<S: PhoneSource + ?Sized>(store: &S, max: usize, lease: Duration) -> Claim {
    for _ in 0..ATTEMPTS {
        match store.claim(max, lease).await {
            Ok(claim) => return claim,
            Err(SourceError::Unavailable(_)) => tokio::time::sleep(PAUSE).await,
            Err(e) => panic!("claim failed: {e}"),
        }
    }
    panic!("claim stayed unavailable through {ATTEMPTS} attempts");
}

pub async fn write<S: ResultSink + ?Sized>(
    store: &S,
    token: &ClaimToken,
    outcomes: &[RecordOutcome],
) -> WriteReceipt {
    for _ in 0..ATTEMPTS {
        match store.write_back(token, outcomes).await {
            Ok(receipt) => return receipt,
            Err(SinkError::Unavailable(_)) => tokio::time::sleep(PAUSE).await,
            Err(e) => panic!("write-back failed: {e}"),
        }
    }
    panic!("write-back stayed unavailable through {ATTEMPTS} attempts");
}

pub async fn histories<S: ResultSink + ?Sized>(store: &S, keys: &[DedupKey]) -> Vec<KeyHistory> {
    for _ in 0..ATTEMPTS {
        match store.key_histories(keys).await {
            Ok(histories) => return histories,
            Err(SinkError::Unavailable(_)) => tokio::time::sleep(PAUSE).await,
            Err(e) => panic!("key_histories failed: {e}"),
        }
    }
    panic!("key_histories stayed unavailable through {ATTEMPTS} attempts");
}

pub async fn release<S: PhoneSource + ?Sized>(store: &S, token: &ClaimToken, ids: &[RecordId]) {
    for _ in 0..ATTEMPTS {
        match store.release(token, ids).await {
            Ok(()) => return,
            Err(SourceError::Unavailable(_)) => tokio::time::sleep(PAUSE).await,
            Err(e) => panic!("release failed: {e}"),
        }
    }
    panic!("release stayed unavailable through {ATTEMPTS} attempts");
}

pub async fn peek<S: PhoneSource + ?Sized>(store: &S, max: usize) -> Vec<RecipientRecord> {
    for _ in 0..ATTEMPTS {
        match store.peek(max).await {
            Ok(records) => return records,
            Err(SourceError::Unavailable(_)) => tokio::time::sleep(PAUSE).await,
            Err(e) => panic!("peek failed: {e}"),
        }
    }
    panic!("peek stayed unavailable through {ATTEMPTS} attempts");
}

pub fn ids(records: &[RecipientRecord]) -> Vec<RecordId> {
    let mut ids: Vec<RecordId> = records.iter().map(|r| r.id.clone()).collect();
    ids.sort();
    ids
}

pub fn sorted(mut records: Vec<RecipientRecord>) -> Vec<RecipientRecord> {
    records.sort_by(|a, b| a.id.cmp(&b.id));
    records
}
