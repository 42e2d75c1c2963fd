//! Pre-checks: what never reaches the validator or the issuer, and what the validator says.

use std::sync::Arc;

use ca_notify_adapter_memory::{MemoryIssuer, MemoryValidator, ValidatorFault};
use ca_notify_domain::{DateField, NotSentReason, Outcome, RecipientRecord};
use ca_notify_ports::{MockPhoneValidator, PhoneVerdict, ValidationError};
use tokio_util::sync::CancellationToken;

use super::*;

#[tokio::test(start_paused = true)]
async fn invalid_and_landline_numbers_never_reach_the_issuer() {
    let claim = vec![
        RecipientRecord::new("bad-phone", "call me maybe"),
        RecipientRecord::new("landline", "+14155550100"),
        RecipientRecord::new("dead", "+14155550199"),
        RecipientRecord::new("old", mobile(1)).with_test_date("2021-01-01"),
        RecipientRecord {
            test_type: Some("antibody".into()),
            ..RecipientRecord::new("odd-type", mobile(2))
        },
        RecipientRecord::new("good", "(415) 200-0123"),
    ];
    let mut validator = MockPhoneValidator::new();
    validator.expect_check().times(3).returning(|phone, _| {
        Ok(match &phone.expose_e164()[10..] {
            "00" => PhoneVerdict::NotSmsCapable {
                line_type: "landline".into(),
            },
            "99" => PhoneVerdict::Invalid {
                detail: "twilio:TOO_SHORT".into(),
            },
            _ => PhoneVerdict::SmsCapable {
                line_type: "mobile".into(),
            },
        })
    });
    let mut issuer = mock_issuer();
    issuer
        .expect_issue_batch()
        .times(1)
        .withf(|items, _| items.len() == 1 && items[0].phone.expose_e164() == "+14152000123")
        .returning(|items, _| Ok(vec![ca_notify_domain::ItemAnswer::Issued; items.len()]));
    let (sink, writes) = recording_sink();
    let source = scripted_source(vec![claim]);
    let settings = Settings {
        epoch_count: 1,
        ..Settings::default()
    };
    let p = pipeline(
        Arc::new(source),
        Arc::new(validator),
        Arc::new(issuer),
        Arc::new(sink),
        settings,
    );
    let report = p.run(CancellationToken::new()).await.expect("run");

    assert_eq!(writes.lock().expect("lock").len(), 1, "one write per epoch");
    assert_eq!(
        outcome_of(&writes, "bad-phone"),
        Outcome::not_sent(NotSentReason::InvalidNumber {
            detail: "unexpected_character".into()
        })
    );
    assert_eq!(
        outcome_of(&writes, "landline"),
        Outcome::not_sent(NotSentReason::NotSmsCapable {
            line_type: "landline".into()
        })
    );
    assert_eq!(
        outcome_of(&writes, "dead"),
        Outcome::not_sent(NotSentReason::InvalidNumber {
            detail: "twilio:TOO_SHORT".into()
        })
    );
    assert_eq!(
        outcome_of(&writes, "old"),
        Outcome::not_sent(NotSentReason::InvalidDate {
            field: DateField::TestDate,
            detail: "too_old".into()
        })
    );
    assert_eq!(
        outcome_of(&writes, "odd-type"),
        Outcome::not_sent(NotSentReason::InvalidTestType)
    );
    assert_eq!(outcome_of(&writes, "good"), Outcome::Sent);
    let good = written(&writes)
        .into_iter()
        .find(|o| o.id.as_str() == "good")
        .expect("written");
    assert!(good.dedup_key.is_some(), "the uuid sent is recorded");
    assert_eq!(report.sent, 1);
    assert_eq!(report.not_sent_total(), 5);
    assert_eq!(report.not_sent_for(NotSentKind::InvalidNumber), 2);
    assert_eq!(report.validator_calls, 3);
    assert_eq!(report.issue_requests, 1);
    assert_eq!(report.stop, None);
}

#[tokio::test(start_paused = true)]
async fn an_unavailable_validator_defers_only_the_records_it_failed() {
    let validator = MemoryValidator::new();
    validator.fail_next(2, ValidatorFault::Unavailable);
    let m = memory_with(
        records(10),
        validator,
        MemoryIssuer::new(),
        Settings {
            epoch_count: 1,
            validation_concurrency: 1,
            ..Settings::default()
        },
    );
    let report = m.pipeline.run(CancellationToken::new()).await.expect("run");
    assert_eq!(report.sent, 8);
    assert_eq!(report.deferred_for(DeferReason::ValidationUnavailable), 2);
    assert_nothing_lost(&m.store, &report);
    let deferred: Vec<_> = m
        .store
        .open_ids()
        .into_iter()
        .map(|id| (m.store.attempts(&id), id))
        .collect();
    assert_eq!(deferred.len(), 2);
    assert!(deferred.iter().all(|(attempts, _)| *attempts == Some(1)));
    assert_eq!(m.issuer.items_received(), 8);
    assert_eq!(m.validator.calls(), 10);
    assert_eq!(report.validator_calls, 10);
}

#[tokio::test(start_paused = true)]
async fn duplicates_in_one_claim_are_issued_once() {
    // r0/r5 share a batch; r1/r11 sit in different batches of the same claim.
    let mut claim = records(12);
    claim[5].phone = claim[0].phone.clone();
    claim[11].phone = claim[1].phone.clone();
    let m = memory(
        claim,
        Settings {
            epoch_count: 1,
            ..Settings::default()
        },
    );
    let report = m.pipeline.run(CancellationToken::new()).await.expect("run");
    assert_eq!(m.issuer.items_received(), 10, "no uuid was sent twice");
    assert_eq!(m.issuer.total_texts(), 10);
    assert_eq!(m.issuer.max_texts_per_phone(), 1);
    assert_eq!(report.sent, 10);
    assert_eq!(report.already_sent, 2);
    // A twin in the same batch waits for its owner (AlreadySent); one in a later batch
    // finds the owner's outcome in the ledger (TextedBefore). Either way: no request.
    for (a, b) in [("r0", "r5"), ("r1", "r11")] {
        let label = |id: &str| m.store.outcome(&id.into()).map(|o| o.label());
        let mut pair = [label(a), label(b)];
        pair.sort();
        assert_eq!(pair, [Some("already_sent"), Some("sent")], "{a}/{b}");
    }
    assert_nothing_lost(&m.store, &report);
}

#[tokio::test(start_paused = true)]
async fn a_duplicate_follows_its_deferred_twin() {
    let mut claim = records(2);
    claim[1].phone = claim[0].phone.clone();
    let issuer = MemoryIssuer::new();
    issuer.script([ca_notify_adapter_memory::Scripted::Fail(
        ca_notify_adapter_memory::IssuerFault::Unknown,
    )]);
    let m = memory_with(
        claim,
        MemoryValidator::new(),
        issuer,
        Settings {
            epoch_count: 1,
            ..Settings::default()
        },
    );
    let failure = m
        .pipeline
        .run(CancellationToken::new())
        .await
        .expect_err("a run that settled nothing because of the issuer is a failure");
    let report = failure.report;
    assert_eq!(m.issuer.requests(), 1, "the twin was not issued on its own");
    assert_eq!(report.deferred_for(DeferReason::IssuerUnavailable), 2);
    assert_nothing_lost(&m.store, &report);
}

#[tokio::test(start_paused = true)]
async fn a_duplicate_whose_twin_was_rejected_is_issued_itself() {
    let mut claim = records(2);
    claim[1].phone = claim[0].phone.clone();
    let issuer = MemoryIssuer::new();
    issuer.script([ca_notify_adapter_memory::Scripted::Answers(vec![
        ca_notify_domain::ItemAnswer::failed("phone_number_invalid"),
    ])]);
    let m = memory_with(
        claim,
        MemoryValidator::new(),
        issuer,
        Settings {
            epoch_count: 1,
            ..Settings::default()
        },
    );
    let report = m.pipeline.run(CancellationToken::new()).await.expect("run");
    assert_eq!(m.issuer.requests(), 2, "one at a time");
    assert_eq!(m.issuer.items_received(), 2);
    assert_eq!(report.sent, 1);
    assert_eq!(report.not_sent_for(NotSentKind::Rejected), 1);
    assert_nothing_lost(&m.store, &report);
}

#[tokio::test(start_paused = true)]
async fn validation_is_bounded_run_wide() {
    use std::sync::atomic::{AtomicUsize, Ordering};
    let now = Arc::new(AtomicUsize::new(0));
    let peak = Arc::new(AtomicUsize::new(0));
    struct Counting {
        now: Arc<AtomicUsize>,
        peak: Arc<AtomicUsize>,
    }
    #[async_trait::async_trait]
    impl ca_notify_ports::PhoneValidator for Counting {
        async fn check(
            &self,
            _phone: &ca_notify_domain::PhoneNumber,
            _deadline: tokio::time::Instant,
        ) -> Result<PhoneVerdict, ValidationError> {
            let current = self.now.fetch_add(1, Ordering::SeqCst) + 1;
            self.peak.fetch_max(current, Ordering::SeqCst);
            tokio::time::sleep(std::time::Duration::from_millis(150)).await;
            self.now.fetch_sub(1, Ordering::SeqCst);
            Ok(PhoneVerdict::SmsCapable {
                line_type: "mobile".into(),
            })
        }
    }
    let store = Arc::new(ca_notify_adapter_memory::MemoryStore::with_records(
        records(200),
    ));
    let p = pipeline(
        store.clone(),
        Arc::new(Counting {
            now: now.clone(),
            peak: peak.clone(),
        }),
        Arc::new(MemoryIssuer::new()),
        store.clone(),
        Settings {
            epoch_count: 2,
            validation_concurrency: 7,
            max_batches_in_flight: 8,
            ..Settings::default()
        },
    );
    let report = p.run(CancellationToken::new()).await.expect("run");
    assert_eq!(report.sent, 200);
    assert_eq!(peak.load(Ordering::SeqCst), 7);
}
