//! The schedule: one claim, one ledger read and one write per epoch, requests packed with
//! ten checked records, overlap, pacing, draining, and what the engine shows the world
//! (reports, observers, logs, Debug).

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use ca_notify_adapter_memory::{MemoryIssuer, MemoryValidator};
use ca_notify_domain::{ClaimToken, ItemAnswer};
use ca_notify_ports::{Claim, MockPhoneSource, WriteReceipt};
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use super::*;
use crate::{BatchReport, BuildError, RunObserver};

#[tokio::test(start_paused = true)]
async fn one_claim_one_ledger_read_and_one_write_per_epoch() {
    let mut seq = mockall::Sequence::new();
    let mut source = MockPhoneSource::new();
    let next = Arc::new(AtomicUsize::new(0));
    let n = next.clone();
    source
        .expect_claim()
        .times(3)
        .withf(|max, _| *max == 25)
        .returning(move |_, _| {
            let epoch = n.fetch_add(1, Ordering::SeqCst);
            Ok(Claim {
                token: ClaimToken::new("claim"),
                records: records(75)[epoch * 25..(epoch + 1) * 25].to_vec(),
            })
        });
    source.expect_release().never();
    let mut sink = MockResultSink::new();
    // Each epoch asks the ledger once, about all 25 keys of its claim, before anything
    // of it is checked or issued.
    let ledger_reads: Arc<Mutex<Vec<usize>>> = Arc::default();
    let reads = ledger_reads.clone();
    sink.expect_key_histories().times(3).returning(move |keys| {
        reads.lock().expect("lock").push(keys.len());
        Ok(vec![ca_notify_domain::KeyHistory::default(); keys.len()])
    });
    let sizes: Arc<Mutex<Vec<usize>>> = Arc::default();
    let log = sizes.clone();
    sink.expect_write_back()
        .times(3)
        .returning(move |_, outcomes| {
            log.lock().expect("lock").push(outcomes.len());
            Ok(WriteReceipt {
                written: outcomes.len(),
                ..WriteReceipt::default()
            })
        });
    // Requests carry ten checked records each, across epoch boundaries: 75 = 7 × 10 + 5.
    let mut issuer = mock_issuer();
    issuer
        .expect_issue_batch()
        .times(7)
        .in_sequence(&mut seq)
        .withf(|items, _| items.len() == 10)
        .returning(|items, _| Ok(vec![ItemAnswer::Issued; items.len()]));
    issuer
        .expect_issue_batch()
        .times(1)
        .in_sequence(&mut seq)
        .withf(|items, _| items.len() == 5)
        .returning(|items, _| Ok(vec![ItemAnswer::Issued; items.len()]));
    let p = pipeline(
        Arc::new(source),
        Arc::new(all_mobile()),
        Arc::new(issuer),
        Arc::new(sink),
        Settings {
            epoch_count: 3,
            epoch_size: 25,
            ..Settings::default()
        },
    );
    let report = p.run(CancellationToken::new()).await.expect("run");
    assert_eq!(*sizes.lock().expect("lock"), vec![25, 25, 25]);
    assert_eq!(*ledger_reads.lock().expect("lock"), vec![25, 25, 25]);
    assert_eq!((report.epochs, report.batches, report.claimed), (3, 8, 75));
    assert_eq!(report.sent, 75);
    assert_eq!(
        report.issue_requests, 8,
        "one batch-issue call per ten records"
    );
    assert_eq!(report.stop, None);
}

#[tokio::test(start_paused = true)]
async fn requests_carry_ten_records_that_passed_their_check() {
    // Every third number is a landline, and every tenth record lists the person before it
    // again: cut before the check (the seed's way), a batch of ten would carry about six
    // codes. Packed after the check and the dedup gate, every request but the last
    // carries ten.
    let mut validator = MockPhoneValidator::new();
    validator.expect_check().returning(|phone, _| {
        let landline = (0..300)
            .step_by(3)
            .any(|i| phone.expose_e164() == mobile(i));
        Ok(if landline {
            PhoneVerdict::NotSmsCapable {
                line_type: "landline".into(),
            }
        } else {
            PhoneVerdict::SmsCapable {
                line_type: "mobile".into(),
            }
        })
    });
    let sizes: Arc<Mutex<Vec<usize>>> = Arc::default();
    let log = sizes.clone();
    let mut issuer = mock_issuer();
    issuer.expect_issue_batch().returning(move |items, _| {
        log.lock().expect("lock").push(items.len());
        Ok(vec![ItemAnswer::Issued; items.len()])
    });
    let mut listed = records(300);
    for i in (5..300).step_by(10) {
        listed[i].phone = listed[i - 1].phone.clone();
    }
    let twins = (5..300).step_by(10).filter(|i| (i - 1) % 3 != 0).count() as u64;
    let store = Arc::new(ca_notify_adapter_memory::MemoryStore::with_records(listed));
    let p = pipeline(
        store.clone(),
        Arc::new(validator),
        Arc::new(issuer),
        store.clone(),
        Settings::default(),
    );
    let report = p.run(CancellationToken::new()).await.expect("run");
    let sizes = sizes.lock().expect("lock").clone();
    assert_eq!(
        report.already_sent, twins,
        "each twin of a mobile, without a request"
    );
    assert_eq!(sizes.iter().sum::<usize>() as u64, report.sent);
    let (last, full) = sizes.split_last().expect("requests");
    assert!(full.iter().all(|&n| n == 10), "{sizes:?}");
    assert!(*last <= 10);
    assert_nothing_lost(&store, &report);
}

#[tokio::test(start_paused = true)]
async fn batches_overlap_up_to_the_limit() {
    let in_flight = Arc::new(AtomicUsize::new(0));
    let peak = Arc::new(AtomicUsize::new(0));
    struct Slow {
        now: Arc<AtomicUsize>,
        peak: Arc<AtomicUsize>,
    }
    #[async_trait::async_trait]
    impl ca_notify_ports::SmsIssuer for Slow {
        async fn issue_batch(
            &self,
            items: &[ca_notify_ports::IssueItem],
            _deadline: Instant,
        ) -> Result<Vec<ItemAnswer>, ca_notify_ports::IssueError> {
            let current = self.now.fetch_add(1, Ordering::SeqCst) + 1;
            self.peak.fetch_max(current, Ordering::SeqCst);
            tokio::time::sleep(Duration::from_millis(500)).await;
            self.now.fetch_sub(1, Ordering::SeqCst);
            Ok(vec![ItemAnswer::Issued; items.len()])
        }

        fn max_request_duration(&self) -> Duration {
            Duration::from_millis(500)
        }
    }
    let store = Arc::new(ca_notify_adapter_memory::MemoryStore::with_records(
        records(200),
    ));
    let p = pipeline(
        store.clone(),
        Arc::new(MemoryValidator::new()),
        Arc::new(Slow {
            now: in_flight.clone(),
            peak: peak.clone(),
        }),
        store.clone(),
        Settings {
            epoch_count: 2,
            max_batches_in_flight: 4,
            ..Settings::default()
        },
    );
    let started = Instant::now();
    let report = p.run(CancellationToken::new()).await.expect("run");
    assert_eq!(report.sent, 200);
    assert_eq!(peak.load(Ordering::SeqCst), 4);
    // 20 batches of 500 ms, four at a time, with epochs overlapping: 2.5 s, not 10 s.
    assert_eq!(started.elapsed(), Duration::from_millis(2500));
}

#[tokio::test(start_paused = true)]
async fn epochs_are_paced_but_never_past_the_deadline() {
    let claims: Arc<Mutex<Vec<Instant>>> = Arc::default();
    let mut source = MockPhoneSource::new();
    let log = claims.clone();
    source.expect_claim().times(2).returning(move |_, _| {
        log.lock().expect("lock").push(Instant::now());
        Ok(Claim {
            token: ClaimToken::new("claim"),
            records: records(10),
        })
    });
    let (sink, _writes) = recording_sink();
    let p = pipeline(
        Arc::new(source),
        Arc::new(all_mobile()),
        Arc::new(issues_everything()),
        Arc::new(sink),
        Settings {
            epoch_count: 3,
            min_epoch_duration: Some(Duration::from_secs(60)),
            deadline: Duration::from_secs(110),
            ..Settings::default()
        },
    );
    let started = Instant::now();
    let report = p.run(CancellationToken::new()).await.expect("run");
    let claims = claims.lock().expect("lock").clone();
    assert_eq!(claims[0], started);
    assert!(
        claims[1] >= started + Duration::from_secs(59),
        "{:?}",
        claims[1] - started
    );
    assert_eq!(report.epochs, 2, "a third epoch would start at 120 s");
    assert_eq!(report.stop, Some(StopReason::Deadline));
    assert!(started.elapsed() < Duration::from_secs(110));
}

#[tokio::test(start_paused = true)]
async fn until_drained_runs_until_a_claim_comes_back_empty() {
    let m = memory(
        records(250),
        Settings {
            until_drained: true,
            epoch_count: 1,
            ..Settings::default()
        },
    );
    let report = m.pipeline.run(CancellationToken::new()).await.expect("run");
    assert_eq!(report.epochs, 3);
    assert_eq!(report.sent, 250);
    assert_eq!(m.store.calls().claims, 4, "the last one came back empty");
    assert_eq!(report.stop, None);
    assert_nothing_lost(&m.store, &report);
    assert_eq!(m.store.counts().open, 0);
}

fn one_request_a_second(records: usize, settings: Settings) -> Memory {
    memory_with(
        super::records(records),
        MemoryValidator::new(),
        MemoryIssuer::new().with_latency(Duration::from_secs(1)),
        Settings {
            max_batches_in_flight: 1,
            deadline: Duration::from_secs(5),
            ..settings
        },
    )
}

#[tokio::test(start_paused = true)]
async fn until_drained_goes_on_past_one_deadline_until_nothing_is_left() {
    // A stretch of 5 s fits four requests of 1 s (one at 4 s could not end before the
    // write reserve): 40 records in 4 s. 300 need eight stretches, back to back: seven
    // of 4 s and a last one of 2 s.
    let m = one_request_a_second(
        300,
        Settings {
            until_drained: true,
            ..Settings::default()
        },
    );
    let started = Instant::now();
    let report = m.pipeline.run(CancellationToken::new()).await.expect("run");
    assert_eq!(report.sent, 300);
    assert_eq!(report.stop, None, "drained");
    assert_eq!(started.elapsed(), Duration::from_secs(30));
    assert_nothing_lost(&m.store, &report);
    assert_eq!(m.store.counts().open, 0);
}

#[tokio::test(start_paused = true)]
async fn until_drained_keeps_an_explicit_deadline() {
    let m = one_request_a_second(
        300,
        Settings {
            until_drained: true,
            drain_limit: Some(Duration::from_secs(12)),
            ..Settings::default()
        },
    );
    let started = Instant::now();
    let report = m.pipeline.run(CancellationToken::new()).await.expect("run");
    assert!(
        started.elapsed() <= Duration::from_secs(12),
        "{:?}",
        started.elapsed()
    );
    assert_eq!(report.stop, Some(StopReason::Deadline));
    assert!(
        report.sent >= 80 && report.sent < 300,
        "two stretches and a short third: {report:?}"
    );
    assert_nothing_lost(&m.store, &report);
    assert_eq!(m.store.counts().open as u64, 300 - report.sent);
}

#[tokio::test(start_paused = true)]
async fn a_scheduled_run_keeps_its_deadline() {
    let m = one_request_a_second(300, settings_epochs(3));
    let started = Instant::now();
    let report = m.pipeline.run(CancellationToken::new()).await.expect("run");
    assert!(started.elapsed() <= Duration::from_secs(5));
    assert_eq!(report.stop, Some(StopReason::Deadline));
    assert_eq!(report.sent, 40);
    assert_nothing_lost(&m.store, &report);
}

fn settings_epochs(epoch_count: u32) -> Settings {
    Settings {
        epoch_count,
        ..Settings::default()
    }
}

#[tokio::test(start_paused = true)]
async fn a_short_source_stops_the_run_as_drained() {
    let m = memory(records(150), Settings::default());
    let report = m.pipeline.run(CancellationToken::new()).await.expect("run");
    assert_eq!(report.epochs, 2);
    assert_eq!(report.stop, Some(StopReason::Drained));
    assert_eq!(report.sent, 150);
}

#[tokio::test(start_paused = true)]
async fn run_epoch_drains_deterministically() {
    let m = memory(records(250), Settings::default());
    let shutdown = CancellationToken::new();
    let mut claimed = Vec::new();
    loop {
        let epoch = m.pipeline.run_epoch(&shutdown).await.expect("epoch");
        if epoch.claimed == 0 {
            assert_eq!(epoch.stop, Some(StopReason::Drained));
            break;
        }
        assert_eq!(
            epoch.settled() + epoch.deferred_total(),
            epoch.claimed as u64
        );
        claimed.push(epoch.claimed);
    }
    assert_eq!(claimed, vec![100, 100, 50]);
    assert_eq!(m.store.calls().claims, 4, "exactly one claim per epoch");
    assert_eq!(m.store.calls().writes, 3, "exactly one write per epoch");
    assert_eq!(m.issuer.total_texts(), 250);
}

#[tokio::test(start_paused = true)]
async fn the_observer_sees_claims_and_written_epochs() {
    #[derive(Default)]
    struct Counts {
        claimed: AtomicUsize,
        batches: AtomicUsize,
        records: AtomicUsize,
    }
    impl RunObserver for Counts {
        fn on_claimed(&self, records: usize) {
            self.claimed.fetch_add(records, Ordering::SeqCst);
        }
        fn on_batch_written(&self, batch: &BatchReport) {
            self.batches.fetch_add(1, Ordering::SeqCst);
            self.records.fetch_add(batch.records, Ordering::SeqCst);
        }
    }
    let counts = Arc::new(Counts::default());
    let store = Arc::new(ca_notify_adapter_memory::MemoryStore::with_records(
        records(195),
    ));
    let p = Pipeline::builder()
        .source(store.clone())
        .validator(Arc::new(MemoryValidator::new()))
        .issuer(Arc::new(MemoryIssuer::new()))
        .sink(store)
        .dedup_secret(secret())
        .today(Arc::new(today))
        .observer(counts.clone())
        .build()
        .expect("pipeline");
    p.run(CancellationToken::new()).await.expect("run");
    assert_eq!(counts.claimed.load(Ordering::SeqCst), 195);
    assert_eq!(
        counts.batches.load(Ordering::SeqCst),
        2,
        "one write per epoch"
    );
    assert_eq!(counts.records.load(Ordering::SeqCst), 195);
}

#[test]
fn the_builder_names_what_is_missing_or_wrong() {
    let err = Pipeline::builder()
        .settings(Settings {
            batch_size: 11,
            ..Settings::default()
        })
        .build()
        .expect_err("bad settings");
    match err {
        BuildError::Settings(e) => assert_eq!(e.key, "pipeline.batch_size"),
        other => panic!("{other}"),
    }
    let err = Pipeline::builder()
        .settings(Settings {
            batch_size: 0,
            ..Settings::default()
        })
        .build()
        .expect_err("bad settings");
    assert!(
        err.to_string().starts_with("pipeline.batch_size = 0:"),
        "{err}"
    );
    let store = Arc::new(ca_notify_adapter_memory::MemoryStore::new());
    let err = Pipeline::builder()
        .source(store.clone())
        .sink(store.clone())
        .build()
        .expect_err("no validator");
    assert!(matches!(err, BuildError::MissingPort("validator")));
    let err = Pipeline::builder()
        .source(store.clone())
        .sink(store)
        .validator(Arc::new(MemoryValidator::new()))
        .issuer(Arc::new(MemoryIssuer::new()))
        .build()
        .expect_err("no secret");
    assert!(matches!(err, BuildError::MissingDedupSecret));
}

#[test]
fn debug_never_shows_the_dedup_secret() {
    let m = memory(Vec::new(), Settings::default());
    let shown = format!("{:?}", m.pipeline);
    assert!(shown.contains("[REDACTED]"), "{shown}");
    assert!(!shown.contains(SECRET), "{shown}");
}

#[tokio::test(start_paused = true)]
async fn the_lookups_stay_busy_across_epochs_and_a_slow_store() {
    // The benchmark's latencies in virtual time (lookups 150 ms, issue 500 ms), on a
    // store that takes 300 ms for every claim and every write. Ten
    // lookups in flight allow 66.7 records/s: 1600 records ideally take 24 s. Claims and
    // ledger reads are made ahead and writes off the critical path, so neither the 16
    // epoch boundaries nor the store cost more than a tenth.
    let store = Arc::new(
        ca_notify_adapter_memory::MemoryStore::with_records(records(1600))
            .with_claim_latency(Duration::from_millis(300))
            .with_write_latency(Duration::from_millis(300)),
    );
    let p = pipeline(
        store.clone(),
        Arc::new(MemoryValidator::new().with_latency(Duration::from_millis(150))),
        Arc::new(MemoryIssuer::new().with_latency(Duration::from_millis(500))),
        store.clone(),
        Settings {
            until_drained: true,
            ..Settings::default()
        },
    );
    let started = Instant::now();
    let report = p.run(CancellationToken::new()).await.expect("run");
    assert_eq!(report.sent, 1600);
    assert_eq!(report.epochs, 16);
    assert_eq!(report.issue_requests, 160, "every request carries ten");
    let ceiling = Duration::from_secs(24);
    assert!(
        started.elapsed().as_secs_f64() <= ceiling.as_secs_f64() / 0.9,
        "{:?}, ideally {ceiling:?}",
        started.elapsed()
    );
}

#[tokio::test(start_paused = true)]
async fn deciding_there_is_no_time_for_the_next_epoch_does_not_cut_the_current_one() {
    // Epoch 2 starts at 60 s; while its ten batches are dispatched, the prefetch for
    // epoch 3 finds that 120 s is past the deadline. Epoch 2 still runs to the end.
    let m = memory_with(
        records(300),
        MemoryValidator::new(),
        MemoryIssuer::new().with_latency(Duration::from_millis(500)),
        Settings {
            epoch_count: 3,
            max_batches_in_flight: 1,
            min_epoch_duration: Some(Duration::from_secs(60)),
            deadline: Duration::from_secs(100),
            ..Settings::default()
        },
    );
    let report = m.pipeline.run(CancellationToken::new()).await.expect("run");
    assert_eq!(report.epochs, 2);
    assert_eq!(report.sent, 200, "{report:?}");
    assert_eq!(report.stop, Some(StopReason::Deadline));
    assert_eq!(report.claimed, 200, "no third claim");
    assert_nothing_lost(&m.store, &report);
}
