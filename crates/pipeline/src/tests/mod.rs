//! Unit tests of the engine: mockall mocks where call counts and order matter, the
//! in-memory adapters where only the end state does. Time is paused wherever the engine
//! waits, so every deadline, backoff and pause is exact and instant.

use std::sync::{Arc, Mutex};

use ca_notify_adapter_memory::{MemoryIssuer, MemoryStore, MemoryValidator};
use ca_notify_domain::ClaimToken;
use ca_notify_domain::{DedupSecret, Outcome, RecipientRecord, RecordOutcome};
use ca_notify_ports::{
    Claim, MockPhoneSource, MockPhoneValidator, MockResultSink, MockSmsIssuer, PhoneSource,
    PhoneValidator, PhoneVerdict, ResultSink, SmsIssuer, WriteReceipt,
};
use chrono::NaiveDate;

use crate::{Pipeline, RunReport, Settings};
// The report's typed keys, for every test module.
pub(super) use crate::{DeferredKind, StopReason};
pub(super) use ca_notify_domain::{DeferReason, NotSentKind};

mod checks;
mod issuing;
mod schedule;
mod stops;
mod truth;

const SECRET: &str = "a unit-test dedup secret";

pub(super) fn secret() -> DedupSecret {
    DedupSecret::new(SECRET.to_owned().into()).expect("long enough")
}

pub(super) fn today() -> NaiveDate {
    NaiveDate::from_ymd_opt(2021, 6, 15).expect("date")
}

/// A canonical mobile number (never ending in 00 or 99).
pub(super) fn mobile(i: usize) -> String {
    format!("+1415{:07}", 2_000_001 + i * 10)
}

pub(super) fn records(n: usize) -> Vec<RecipientRecord> {
    (0..n)
        .map(|i| RecipientRecord::new(format!("r{i}"), mobile(i)).with_test_date("2021-06-14"))
        .collect()
}

pub(super) fn pipeline(
    source: Arc<dyn PhoneSource>,
    validator: Arc<dyn PhoneValidator>,
    issuer: Arc<dyn SmsIssuer>,
    sink: Arc<dyn ResultSink>,
    settings: Settings,
) -> Pipeline {
    Pipeline::builder()
        .source(source)
        .validator(validator)
        .issuer(issuer)
        .sink(sink)
        .settings(settings)
        .dedup_secret(secret())
        .today(Arc::new(today))
        .build()
        .expect("valid pipeline")
}

/// The in-memory adapter set around `store`.
pub(super) struct Memory {
    pub store: Arc<MemoryStore>,
    pub validator: Arc<MemoryValidator>,
    pub issuer: Arc<MemoryIssuer>,
    pub pipeline: Pipeline,
}

pub(super) fn memory_with(
    records: Vec<RecipientRecord>,
    validator: MemoryValidator,
    issuer: MemoryIssuer,
    settings: Settings,
) -> Memory {
    let store = Arc::new(MemoryStore::with_records(records));
    let validator = Arc::new(validator);
    let issuer = Arc::new(issuer);
    let pipeline = pipeline(
        store.clone(),
        validator.clone(),
        issuer.clone(),
        store.clone(),
        settings,
    );
    Memory {
        store,
        validator,
        issuer,
        pipeline,
    }
}

pub(super) fn memory(records: Vec<RecipientRecord>, settings: Settings) -> Memory {
    memory_with(
        records,
        MemoryValidator::new(),
        MemoryIssuer::new(),
        settings,
    )
}

/// Every claimed record is written or released, and the report adds up.
pub(super) fn assert_nothing_lost(store: &MemoryStore, report: &RunReport) {
    assert!(
        store.claimed_ids().is_empty(),
        "records left claimed: {:?}",
        store.claimed_ids()
    );
    assert_eq!(
        report.claimed,
        report.settled() + report.deferred_total(),
        "every claimed record is settled or deferred: {report:?}"
    );
    assert!(store.max_writes_per_record() <= 1, "a record written twice");
}

/// A source that hands out `claims` in order, then empty claims; counts every call.
pub(super) fn scripted_source(claims: Vec<Vec<RecipientRecord>>) -> MockPhoneSource {
    let mut source = MockPhoneSource::new();
    let queue = Arc::new(Mutex::new(claims.into_iter()));
    source.expect_claim().returning(move |_, _| {
        let records = queue.lock().expect("lock").next().unwrap_or_default();
        Ok(Claim {
            token: ClaimToken::new("claim"),
            records,
        })
    });
    source
}

/// A validator that calls every number a mobile.
pub(super) fn all_mobile() -> MockPhoneValidator {
    let mut validator = MockPhoneValidator::new();
    validator.expect_check().returning(|_, _| {
        Ok(PhoneVerdict::SmsCapable {
            line_type: "mobile".into(),
        })
    });
    validator
}

/// A mock issuer whose requests take at most a second; expectations for `issue_batch`
/// are the test's.
pub(super) fn mock_issuer() -> MockSmsIssuer {
    let mut issuer = MockSmsIssuer::new();
    issuer
        .expect_max_request_duration()
        .return_const(std::time::Duration::from_secs(1));
    issuer
}

/// A mock sink whose ledger knows nothing yet; expectations for `write_back` are the
/// test's.
pub(super) fn mock_sink() -> MockResultSink {
    let mut sink = MockResultSink::new();
    sink.expect_key_histories()
        .returning(|keys| Ok(vec![ca_notify_domain::KeyHistory::default(); keys.len()]));
    sink
}

/// An issuer that issues every item.
pub(super) fn issues_everything() -> MockSmsIssuer {
    let mut issuer = mock_issuer();
    issuer
        .expect_issue_batch()
        .returning(|items, _| Ok(vec![ca_notify_domain::ItemAnswer::Issued; items.len()]));
    issuer
}

/// Every write-back, in call order.
pub(super) type Writes = Arc<Mutex<Vec<Vec<RecordOutcome>>>>;

/// A sink that accepts every write and records it.
pub(super) fn recording_sink() -> (MockResultSink, Writes) {
    let writes: Writes = Arc::default();
    let mut sink = mock_sink();
    let log = writes.clone();
    sink.expect_write_back().returning(move |_, outcomes| {
        log.lock().expect("lock").push(outcomes.to_vec());
        let released = outcomes.iter().filter(|o| !o.outcome.is_final()).count();
        Ok(WriteReceipt {
            written: outcomes.len() - released,
            released,
            not_owned: 0,
        })
    });
    (sink, writes)
}

/// All outcomes written, flattened.
pub(super) fn written(writes: &Writes) -> Vec<RecordOutcome> {
    writes
        .lock()
        .expect("lock")
        .iter()
        .flatten()
        .cloned()
        .collect()
}

pub(super) fn outcome_of(writes: &Writes, id: &str) -> Outcome {
    written(writes)
        .into_iter()
        .find(|o| o.id.as_str() == id)
        .unwrap_or_else(|| panic!("{id} was not written"))
        .outcome
}
