//! Stops: refused credentials, quota, an unavailable server, failing stores, deadline and
//! shutdown. In every case nothing is lost and nothing is marked 0 for a reason that is not
//! the record's own.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use ca_notify_adapter_memory::{
    IssuerFault, MemoryIssuer, MemoryValidator, Scripted, StoreFault, ValidatorFault,
};
use ca_notify_domain::ItemAnswer;
use ca_notify_ports::{
    MockPhoneSource, PhoneVerdict, SinkError, SourceError, ValidationError, WriteReceipt,
};
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use super::*;
use crate::FatalCause;

fn settings(epochs: u32) -> Settings {
    Settings {
        epoch_count: epochs,
        ..Settings::default()
    }
}

/// No record of the store is marked 0 (a final `NotSent`).
fn assert_no_zeros(m: &Memory) {
    assert_eq!(m.store.counts().not_sent, 0, "a record was marked 0");
}

#[tokio::test(start_paused = true)]
async fn an_unauthorized_validator_stops_the_run_without_marking_zeros() {
    let validator = MemoryValidator::new();
    validator.set_fault(Some(ValidatorFault::Unauthorized));
    let m = memory_with(records(300), validator, MemoryIssuer::new(), settings(3));
    let failure = m
        .pipeline
        .run(CancellationToken::new())
        .await
        .expect_err("stops");
    assert!(matches!(
        failure.cause,
        FatalCause::ValidatorUnauthorized(_)
    ));
    assert_eq!(failure.report.stop, Some(StopReason::ValidatorUnauthorized));
    assert_eq!(m.issuer.requests(), 0);
    assert_no_zeros(&m);
    assert_nothing_lost(&m.store, &failure.report);
    assert!(failure.report.deferred_for(DeferReason::Unauthorized) > 0);
    assert!(
        m.store.calls().claims <= 2,
        "no claims after the stop but a prefetch"
    );
}

#[tokio::test(start_paused = true)]
async fn an_unauthorized_issuer_stops_the_run_and_says_what_to_check() {
    let issuer = MemoryIssuer::new();
    issuer.script([Scripted::Fail(IssuerFault::Unauthorized)]);
    let m = memory_with(
        records(100),
        MemoryValidator::new(),
        issuer,
        Settings {
            max_batches_in_flight: 1,
            ..settings(3)
        },
    );
    let failure = m
        .pipeline
        .run(CancellationToken::new())
        .await
        .expect_err("stops");
    assert!(matches!(failure.cause, FatalCause::IssuerUnauthorized(_)));
    let text = failure.to_string();
    assert!(
        text.contains("API key") && text.contains("IP allow-list"),
        "{text}"
    );
    assert_eq!(m.issuer.requests(), 1, "no request after the refusal");
    assert_no_zeros(&m);
    assert_eq!(m.store.counts().sent, 0);
    assert_nothing_lost(&m.store, &failure.report);
    // The batch in flight was written back deferred, the rest released untouched.
    assert_eq!(failure.report.deferred_for(DeferReason::Unauthorized), 100);
    assert_eq!(failure.report.deferred_total(), 100);
    let written_back = m
        .store
        .open_ids()
        .into_iter()
        .filter(|id| m.store.attempts(id) == Some(1))
        .count();
    assert_eq!(written_back, 10);
}

#[tokio::test(start_paused = true)]
async fn an_exhausted_quota_releases_the_rest() {
    let issuer = MemoryIssuer::new();
    issuer.script([Scripted::Fail(IssuerFault::QuotaExhausted)]);
    let m = memory_with(
        records(100),
        MemoryValidator::new(),
        issuer,
        Settings {
            max_batches_in_flight: 1,
            ..settings(3)
        },
    );
    let failure = m
        .pipeline
        .run(CancellationToken::new())
        .await
        .expect_err("stops");
    assert!(matches!(failure.cause, FatalCause::QuotaExhausted));
    assert_eq!(
        failure.report.deferred_for(DeferReason::QuotaExhausted),
        100
    );
    assert_eq!(failure.report.deferred_total(), 100);
    assert_no_zeros(&m);
    assert_nothing_lost(&m.store, &failure.report);
    let untouched = m
        .store
        .open_ids()
        .into_iter()
        .filter(|id| m.store.attempts(id) == Some(0))
        .count();
    assert_eq!(
        untouched, 90,
        "records no batch started are released untouched"
    );
}

#[tokio::test(start_paused = true)]
async fn a_per_item_quota_exceeded_stops_issuing_too() {
    let m = memory_with(
        records(30),
        MemoryValidator::new(),
        MemoryIssuer::new().with_quota(15),
        Settings {
            max_batches_in_flight: 1,
            ..settings(1)
        },
    );
    let failure = m
        .pipeline
        .run(CancellationToken::new())
        .await
        .expect_err("stops");
    assert!(matches!(failure.cause, FatalCause::QuotaExhausted));
    assert_eq!(failure.report.sent, 15);
    // Five answered quota_exceeded, ten were never started.
    assert_eq!(failure.report.deferred_for(DeferReason::QuotaExhausted), 15);
    assert_eq!(failure.report.deferred_total(), 15);
    assert_no_zeros(&m);
    assert_nothing_lost(&m.store, &failure.report);
}

#[tokio::test(start_paused = true)]
async fn an_unavailable_server_stops_the_run_with_a_failure_a_scheduler_sees() {
    let issuer = MemoryIssuer::new();
    issuer.script([Scripted::Answers(vec![
        ItemAnswer::Issued,
        ItemAnswer::failed("maintenance_mode"),
    ])]);
    let m = memory_with(
        records(100),
        MemoryValidator::new(),
        issuer,
        Settings {
            max_batches_in_flight: 1,
            ..settings(3)
        },
    );
    let failure = m
        .pipeline
        .run(CancellationToken::new())
        .await
        .expect_err("the run could not make progress");
    assert!(matches!(failure.cause, FatalCause::IssuerUnavailable(_)));
    let report = failure.report;
    assert_eq!(report.stop, Some(StopReason::IssuerUnavailable));
    assert_eq!(m.issuer.requests(), 1);
    assert_eq!(report.sent, 1);
    assert_eq!(report.deferred_total(), 99);
    assert_no_zeros(&m);
    assert_nothing_lost(&m.store, &report);
}

#[tokio::test(start_paused = true)]
async fn a_rejected_request_is_fatal() {
    let issuer = MemoryIssuer::new();
    issuer.script([Scripted::Fail(IssuerFault::Rejected)]);
    let m = memory_with(records(10), MemoryValidator::new(), issuer, settings(1));
    let failure = m
        .pipeline
        .run(CancellationToken::new())
        .await
        .expect_err("stops");
    assert!(matches!(failure.cause, FatalCause::IssueRejected(_)));
    assert_no_zeros(&m);
    assert_nothing_lost(&m.store, &failure.report);
}

#[tokio::test(start_paused = true)]
async fn a_misconfigured_source_fails_the_run_before_anything_happens() {
    let mut source = MockPhoneSource::new();
    source
        .expect_claim()
        .times(1)
        .returning(|_, _| Err(SourceError::Misconfigured("no such table".into())));
    let mut sink = mock_sink();
    sink.expect_write_back().never();
    let p = pipeline(
        Arc::new(source),
        Arc::new(all_mobile()),
        Arc::new(issues_everything()),
        Arc::new(sink),
        settings(3),
    );
    let failure = p.run(CancellationToken::new()).await.expect_err("fails");
    assert!(matches!(failure.cause, FatalCause::Source(_)));
    assert_eq!(failure.report.claimed, 0);
    assert_eq!(failure.report.stop, Some(StopReason::Source));
}

#[tokio::test(start_paused = true)]
async fn an_unavailable_source_is_claimed_again() {
    let m = memory(records(10), settings(1));
    m.store.fail_next_claims(2, StoreFault::Unavailable);
    let report = m.pipeline.run(CancellationToken::new()).await.expect("run");
    assert_eq!(m.store.calls().claims, 3);
    assert_eq!(report.sent, 10);
    assert_nothing_lost(&m.store, &report);
}

#[tokio::test(start_paused = true)]
async fn an_unavailable_sink_gets_the_same_write_again() {
    let mut sink = mock_sink();
    let calls = Arc::new(AtomicU64::new(0));
    let seen = calls.clone();
    let first: Arc<std::sync::Mutex<Option<Vec<ca_notify_domain::RecordOutcome>>>> = Arc::default();
    sink.expect_write_back()
        .times(3)
        .returning(move |_, outcomes| {
            let mut first = first.lock().expect("lock");
            let expected = first.get_or_insert_with(|| outcomes.to_vec());
            assert_eq!(expected.as_slice(), outcomes, "the very same write");
            if seen.fetch_add(1, Ordering::SeqCst) < 2 {
                Err(SinkError::Unavailable("busy".into()))
            } else {
                Ok(WriteReceipt {
                    written: outcomes.len(),
                    ..WriteReceipt::default()
                })
            }
        });
    let p = pipeline(
        Arc::new(scripted_source(vec![records(10)])),
        Arc::new(all_mobile()),
        Arc::new(issues_everything()),
        Arc::new(sink),
        settings(1),
    );
    let report = p.run(CancellationToken::new()).await.expect("run");
    assert_eq!(calls.load(Ordering::SeqCst), 3);
    assert_eq!(report.sent, 10);
}

#[tokio::test(start_paused = true)]
async fn a_failing_sink_stops_the_run_and_releases_the_batch() {
    let m = memory(
        records(30),
        Settings {
            max_batches_in_flight: 1,
            ..settings(1)
        },
    );
    m.store.fail_next_writes(1, StoreFault::Misconfigured);
    let failure = m
        .pipeline
        .run(CancellationToken::new())
        .await
        .expect_err("fails");
    assert!(matches!(failure.cause, FatalCause::Sink(_)));
    // The epoch writes once: all its 30 records went unwritten, and were released.
    assert_eq!(failure.report.deferred_for(DeferredKind::WriteFailed), 30);
    assert_eq!(failure.report.deferred_total(), 30);
    assert_eq!(
        m.store.calls().writes,
        1,
        "no more batches after the failure"
    );
    assert_no_zeros(&m);
    assert_nothing_lost(&m.store, &failure.report);
}

#[tokio::test(start_paused = true)]
async fn shutdown_finishes_in_flight_batches_and_releases_the_rest() {
    let shutdown = CancellationToken::new();
    let store = Arc::new(ca_notify_adapter_memory::MemoryStore::with_records(
        records(300),
    ));
    let issuer = Arc::new(MemoryIssuer::new().with_latency(Duration::from_millis(500)));
    let p = pipeline(
        store.clone(),
        Arc::new(MemoryValidator::new()),
        issuer.clone(),
        store.clone(),
        settings(3),
    );
    // The shutdown comes while the first four requests are in flight.
    let stop = shutdown.clone();
    tokio::spawn(async move {
        tokio::time::sleep(Duration::from_millis(250)).await;
        stop.cancel();
    });
    let report = p.run(shutdown).await.expect("a shutdown is not a failure");
    assert_eq!(report.stop, Some(StopReason::Shutdown));
    // The four requests in flight finished and were written; nothing else was sent.
    assert_eq!(report.batches, 4);
    assert_eq!(report.sent, 40);
    assert_eq!(
        report.deferred_for(DeferReason::Shutdown),
        report.claimed - 40
    );
    assert_eq!(store.counts().sent, 40);
    assert!(store.claimed_ids().is_empty());
    assert_eq!(report.claimed, report.settled() + report.deferred_total());
    assert!(store
        .open_ids()
        .iter()
        .all(|id| store.attempts(id) == Some(0)));
}

#[tokio::test(start_paused = true)]
async fn shutdown_before_the_run_claims_nothing() {
    let m = memory(records(10), settings(3));
    let shutdown = CancellationToken::new();
    shutdown.cancel();
    let report = m.pipeline.run(shutdown).await.expect("run");
    assert_eq!(report.claimed, 0);
    assert_eq!(m.store.calls().claims, 0);
    assert_eq!(report.stop, Some(StopReason::Shutdown));
}

#[tokio::test(start_paused = true)]
async fn the_deadline_starts_no_batch_that_cannot_be_written_in_time() {
    let m = memory_with(
        records(100),
        MemoryValidator::new(),
        MemoryIssuer::new().with_latency(Duration::from_secs(2)),
        Settings {
            deadline: Duration::from_secs(5),
            max_batches_in_flight: 1,
            ..settings(1)
        },
    );
    let started = Instant::now();
    let report = m.pipeline.run(CancellationToken::new()).await.expect("run");
    assert!(
        started.elapsed() <= Duration::from_secs(5),
        "{:?}",
        started.elapsed()
    );
    assert_eq!(report.stop, Some(StopReason::Deadline));
    assert_eq!(
        report.sent, 20,
        "batches at 0 s and 2 s fit, one at 4 s would not"
    );
    assert_eq!(report.deferred_for(DeferReason::Deadline), 80);
    assert_no_zeros(&m);
    assert_nothing_lost(&m.store, &report);
    assert!(m
        .store
        .open_ids()
        .iter()
        .all(|id| m.store.attempts(id) == Some(0)));
}

#[tokio::test(start_paused = true)]
async fn the_deadline_cuts_a_slow_validator_and_loses_nothing() {
    let m = memory_with(
        records(100),
        MemoryValidator::new().with_latency(Duration::from_secs(3)),
        MemoryIssuer::new(),
        Settings {
            deadline: Duration::from_secs(2),
            ..settings(3)
        },
    );
    // Nothing settled, but the deadline, not only the validator, is why: not a failure.
    // The ten checks in flight (one per validation slot) ran out of time; no other started.
    let report = m.pipeline.run(CancellationToken::new()).await.expect("run");
    assert_eq!(report.sent, 0);
    assert_eq!(report.deferred_for(DeferReason::ValidationUnavailable), 10);
    assert_eq!(report.deferred_for(DeferReason::Deadline), 90);
    assert_no_zeros(&m);
    assert_nothing_lost(&m.store, &report);
}

#[tokio::test(start_paused = true)]
async fn a_panicking_adapter_costs_its_record_not_the_run() {
    struct Panicky;
    #[async_trait::async_trait]
    impl ca_notify_ports::PhoneValidator for Panicky {
        async fn check(
            &self,
            phone: &ca_notify_domain::PhoneNumber,
            _deadline: Instant,
        ) -> Result<PhoneVerdict, ValidationError> {
            assert!(phone.expose_e164() != mobile(2), "an adapter bug");
            Ok(PhoneVerdict::SmsCapable {
                line_type: "mobile".into(),
            })
        }
    }
    let store = Arc::new(ca_notify_adapter_memory::MemoryStore::with_records(
        records(30),
    ));
    let p = pipeline(
        store.clone(),
        Arc::new(Panicky),
        Arc::new(MemoryIssuer::new()),
        store.clone(),
        settings(1),
    );
    let report = p.run(CancellationToken::new()).await.expect("run");
    assert_eq!(report.deferred_for(DeferredKind::BatchPanicked), 1);
    assert_eq!(report.sent, 29);
    assert_nothing_lost(&store, &report);
}
