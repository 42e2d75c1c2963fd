//! End to end on the in-memory adapters: several epochs, several workers, failures and
//! re-runs, checked against the exactly-once invariants: nobody is texted twice, every
//! record is written at most once with a final outcome, nothing is left claimed, and the
//! reports add up.

use std::sync::Arc;
use std::time::Duration;

use ca_notify_adapter_memory::{
    IssuerFault, MemoryIssuer, MemoryStore, MemoryValidator, Scripted, StoreFault,
};
use ca_notify_domain::{
    DedupSecret, DeferReason, Outcome, PhoneParser, RawPhone, RecipientRecord, RecordId,
};
use ca_notify_pipeline::{FatalCause, Pipeline, RunReport, Settings, StopReason};
use ca_notify_ports::PhoneSource;
use chrono::NaiveDate;
use tokio_util::sync::CancellationToken;

fn today() -> NaiveDate {
    NaiveDate::from_ymd_opt(2021, 6, 15).expect("date")
}

/// 500 records: mostly mobiles in every format a spreadsheet holds, with landlines
/// (`…00`), dead numbers (`…99`), garbage, stale dates, and 40 people listed twice.
fn population() -> Vec<RecipientRecord> {
    let mut records = Vec::new();
    for i in 0..500u32 {
        let line = 1000 + i;
        let phone = match i % 5 {
            0 => format!("+1415555{line:04}"),
            1 => format!("(415) 555-{line:04}"),
            2 => format!("415.555.{line:04}"),
            3 => format!("1415555{line:04}"),
            _ => format!(" 415 555 {line:04} "),
        };
        let mut record =
            RecipientRecord::new(format!("rec-{i:03}"), phone).with_test_date("2021-06-14");
        match i {
            7 | 77 => record.phone = Some(RawPhone::new("n/a")),
            8 => record.test_date = Some("2021-01-01".into()),
            9 => record.test_date = Some("14/06/2021".into()),
            _ => {}
        }
        records.push(record);
    }
    // The same person and test again, in another format, far down the list.
    for i in 0..40u32 {
        records.push(
            RecipientRecord::new(format!("dup-{i:03}"), format!("415-555-{:04}", 1010 + i))
                .with_test_date("2021-06-14"),
        );
    }
    records
}

struct World {
    store: Arc<MemoryStore>,
    validator: Arc<MemoryValidator>,
    issuer: Arc<MemoryIssuer>,
}

impl World {
    fn new(records: Vec<RecipientRecord>) -> Self {
        Self {
            store: Arc::new(MemoryStore::with_records(records)),
            validator: Arc::new(MemoryValidator::new()),
            issuer: Arc::new(MemoryIssuer::new()),
        }
    }

    fn pipeline(&self, settings: Settings) -> Pipeline {
        Pipeline::builder()
            .source(self.store.clone())
            .validator(self.validator.clone())
            .issuer(self.issuer.clone())
            .sink(self.store.clone())
            .settings(settings)
            .dedup_secret(
                DedupSecret::new("the integration suite's secret".to_owned().into()).expect("long"),
            )
            .today(Arc::new(today))
            .build()
            .expect("pipeline")
    }

    /// The invariants that must hold after any run, finished or not.
    fn assert_exactly_once(&self) {
        assert!(
            self.store.claimed_ids().is_empty(),
            "left claimed: {:?}",
            self.store.claimed_ids()
        );
        assert!(
            self.store.max_writes_per_record() <= 1,
            "a record written twice"
        );
        assert!(
            self.issuer.max_texts_per_phone() <= 1,
            "a person texted twice"
        );
    }

    /// Everyone settled. `recognised` records were texted by a run that could not record
    /// it, so the run that did record it found their uuids already issued.
    fn assert_all_settled(&self, recognised: usize) {
        let counts = self.store.counts();
        assert_eq!(counts.open, 0, "open: {:?}", self.store.open_ids());
        // 500 distinct people minus 2 garbage numbers, 2 bad dates, 5 landlines and 5
        // dead numbers: 486 texts, and the 40 listed twice are AlreadySent.
        assert_eq!(self.issuer.total_texts(), 486);
        assert_eq!(self.issuer.phones_texted(), 486);
        assert_eq!(counts.sent, 486 - recognised);
        assert_eq!(counts.already_sent, 40 + recognised);
        assert_eq!(counts.not_sent, 14);
    }
}

fn adds_up(report: &RunReport) {
    assert_eq!(
        report.claimed,
        report.settled() + report.deferred_total(),
        "{report:?}"
    );
}

#[tokio::test(start_paused = true)]
async fn several_epochs_settle_everyone_exactly_once() {
    let world = World::new(population());
    let report = world
        .pipeline(Settings {
            epoch_count: 6,
            ..Settings::default()
        })
        .run(CancellationToken::new())
        .await
        .expect("run");
    assert_eq!(report.epochs, 6);
    assert_eq!(report.claimed, 540);
    assert_eq!(report.stop, None);
    adds_up(&report);
    world.assert_exactly_once();
    world.assert_all_settled(0);
    assert_eq!(world.store.calls().claims, 6, "one claim per epoch");
    assert_eq!(world.store.calls().writes, 6, "one write per epoch");
    assert_eq!(world.store.calls().releases, 0);
    // A listed-twice person: one record Sent, the other already sent (the dedup gate or
    // the ledger knew it), same uuid.
    let first = world.store.result(&"rec-010".into()).expect("written");
    let second = world.store.result(&"dup-000".into()).expect("written");
    assert_eq!(first.outcome, Outcome::Sent);
    assert_eq!(second.outcome, Outcome::TextedBefore);
    assert_eq!(first.dedup_key, second.dedup_key);
    let phone = PhoneParser::default().parse("415 555 1010").expect("valid");
    assert_eq!(world.issuer.texts_to(&phone), 1);
}

#[tokio::test(start_paused = true)]
async fn two_workers_on_one_store_never_share_a_record() {
    let world = World::new(population());
    let settings = Settings {
        until_drained: true,
        epoch_size: 37,
        max_batches_in_flight: 3,
        ..Settings::default()
    };
    let a = world.pipeline(settings.clone());
    let b = world.pipeline(settings);
    let (ra, rb) = tokio::join!(
        a.run(CancellationToken::new()),
        b.run(CancellationToken::new())
    );
    let (ra, rb) = (ra.expect("a"), rb.expect("b"));
    adds_up(&ra);
    adds_up(&rb);
    assert_eq!(
        ra.claimed + rb.claimed,
        540,
        "every record claimed by exactly one"
    );
    assert!(ra.claimed > 0 && rb.claimed > 0, "both workers took part");
    world.assert_exactly_once();
    world.assert_all_settled(0);
}

#[tokio::test(start_paused = true)]
async fn a_run_that_dies_after_issuing_is_finished_by_the_next_without_a_second_text() {
    let world = World::new(population());
    // The store refuses the first write for good: the codes of that epoch were issued
    // (texts sent) but their outcomes never recorded. (The next epoch's requests may
    // have been answered, and written, before the failure stopped the run.)
    world.store.fail_next_writes(1, StoreFault::Misconfigured);
    let settings = Settings {
        epoch_count: 10,
        max_batches_in_flight: 1,
        ..Settings::default()
    };
    let failure = world
        .pipeline(settings.clone())
        .run(CancellationToken::new())
        .await
        .expect_err("the sink failed");
    assert!(matches!(failure.cause, FatalCause::Sink(_)));
    adds_up(&failure.report);
    world.assert_exactly_once();
    let texted_before = world.issuer.total_texts();
    let recorded = world.store.counts().sent as u64;
    assert!(
        recorded < texted_before,
        "the failed write's texts are unrecorded"
    );

    let report = world
        .pipeline(settings)
        .run(CancellationToken::new())
        .await
        .expect("the next run");
    adds_up(&report);
    world.assert_exactly_once();
    world.assert_all_settled((texted_before - recorded) as usize);
    // The first epoch's people were recognised by their uuids, not texted again.
    assert_eq!(report.sent + texted_before, 486);
    assert_eq!(report.already_sent, 40 + texted_before - recorded);
}

#[tokio::test(start_paused = true)]
async fn stops_and_outages_defer_and_a_later_run_picks_up() {
    let world = World::new(population());
    world.issuer.script([
        Scripted::Answers(vec![]),
        Scripted::Fail(IssuerFault::Unavailable),
    ]);
    let settings = Settings {
        until_drained: true,
        max_batches_in_flight: 1,
        ..Settings::default()
    };
    let failure = world
        .pipeline(settings.clone())
        .run(CancellationToken::new())
        .await
        .expect_err("an outage is a failure a scheduler sees");
    assert!(matches!(failure.cause, FatalCause::IssuerUnavailable(_)));
    let report = failure.report;
    assert_eq!(report.stop, Some(StopReason::IssuerUnavailable));
    adds_up(&report);
    world.assert_exactly_once();
    // The first epoch: five records settled by their own fault before the outage (two
    // garbage numbers, two bad dates, a landline), the ten of the one request the server
    // could not take handed back, nothing marked 0 for the outage; the rest released
    // untouched.
    assert_eq!(world.store.counts().not_sent, 5);
    let deferred: Vec<RecordId> = world
        .store
        .open_ids()
        .into_iter()
        .filter(|id| world.store.attempts(id) == Some(1))
        .collect();
    assert_eq!(deferred.len(), 10);
    assert_eq!(world.issuer.total_texts(), 0);

    // Quota next: the run stops with everything it could not do released.
    world
        .issuer
        .script([Scripted::Fail(IssuerFault::QuotaExhausted)]);
    let failure = world
        .pipeline(settings.clone())
        .run(CancellationToken::new())
        .await
        .expect_err("quota");
    assert!(matches!(failure.cause, FatalCause::QuotaExhausted));
    adds_up(&failure.report);
    world.assert_exactly_once();

    let report = world
        .pipeline(settings)
        .run(CancellationToken::new())
        .await
        .expect("recovered");
    adds_up(&report);
    world.assert_exactly_once();
    world.assert_all_settled(0);
}

#[tokio::test(start_paused = true)]
async fn a_crashed_workers_records_come_back_after_its_lease() {
    let world = World::new(population());
    // A worker claims 100 records and dies without writing or releasing.
    let lease = Duration::from_secs(170);
    let orphan = world.store.claim(100, lease).await.expect("claim");
    assert_eq!(orphan.records.len(), 100);

    let settings = Settings {
        until_drained: true,
        ..Settings::default()
    };
    let report = world
        .pipeline(settings.clone())
        .run(CancellationToken::new())
        .await
        .expect("run");
    assert_eq!(
        report.claimed, 440,
        "the orphaned records are not taken early"
    );
    assert_eq!(world.store.claimed_ids().len(), 100);

    tokio::time::advance(lease).await;
    let report = world
        .pipeline(settings)
        .run(CancellationToken::new())
        .await
        .expect("run");
    assert_eq!(report.claimed, 100);
    world.assert_exactly_once();
    world.assert_all_settled(0);
}

#[tokio::test(start_paused = true)]
async fn shutdown_mid_run_loses_nothing() {
    let world = World {
        issuer: Arc::new(MemoryIssuer::new().with_latency(Duration::from_millis(500))),
        ..World::new(population())
    };
    let shutdown = CancellationToken::new();
    let pipeline = world.pipeline(Settings {
        until_drained: true,
        ..Settings::default()
    });
    let stopper = shutdown.clone();
    tokio::spawn(async move {
        tokio::time::sleep(Duration::from_millis(1200)).await;
        stopper.cancel();
    });
    let report = pipeline.run(shutdown).await.expect("run");
    assert_eq!(report.stop, Some(StopReason::Shutdown));
    assert!(
        report.sent > 0 && report.deferred_for(DeferReason::Shutdown) > 0,
        "{report:?}"
    );
    adds_up(&report);
    world.assert_exactly_once();
    assert_eq!(
        world.store.counts().not_sent as u64,
        report.not_sent_total()
    );
}
