//! Truth: a record is written sent only with proof, a misconfigured realm finalises
//! nothing, no request is ever cut short, and the ledger outlives the server's memory.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use ca_notify_adapter_memory::{
    IssuerFault, MemoryIssuer, MemoryValidator, Scripted, ValidatorFault,
};
use ca_notify_domain::{AttemptAnswer, DeferReason, ItemAnswer, KeyHistory, Outcome, RealmFault};
use mockall::Sequence;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use super::*;
use crate::FatalCause;

fn one_epoch() -> Settings {
    Settings {
        epoch_count: 1,
        ..Settings::default()
    }
}

fn attempts_of(writes: &Writes, id: &str) -> Vec<AttemptAnswer> {
    written(writes)
        .into_iter()
        .find(|o| o.id.as_str() == id)
        .unwrap_or_else(|| panic!("{id} was not written"))
        .attempts
}

/// A sink whose ledger answers `history` for every key, recording every write.
fn sink_with_ledger(history: KeyHistory) -> (MockResultSink, Writes) {
    let writes: Writes = Arc::default();
    let mut sink = MockResultSink::new();
    sink.expect_key_histories()
        .returning(move |keys| Ok(vec![history; keys.len()]));
    let log = writes.clone();
    sink.expect_write_back().returning(move |_, outcomes| {
        log.lock().expect("lock").push(outcomes.to_vec());
        Ok(WriteReceipt {
            written: outcomes.len(),
            released: 0,
            not_owned: 0,
        })
    });
    (sink, writes)
}

#[tokio::test(start_paused = true)]
async fn a_409_after_an_explicit_failure_is_unconfirmed_and_never_sent() {
    // The server kept the row of a failed send (its delete failed): the re-send gets 409
    // although nobody was texted.
    let mut issuer = mock_issuer();
    let mut seq = Sequence::new();
    issuer
        .expect_issue_batch()
        .times(1)
        .in_sequence(&mut seq)
        .returning(|_, _| Ok(vec![ItemAnswer::failed("sms_failure"), ItemAnswer::Issued]));
    issuer
        .expect_issue_batch()
        .times(1)
        .in_sequence(&mut seq)
        .withf(|items, _| items.len() == 1)
        .returning(|_, _| Ok(vec![ItemAnswer::AlreadyExists]));
    let (sink, writes) = recording_sink();
    let p = pipeline(
        Arc::new(scripted_source(vec![records(2)])),
        Arc::new(all_mobile()),
        Arc::new(issuer),
        Arc::new(sink),
        one_epoch(),
    );
    let report = p.run(CancellationToken::new()).await.expect("run");
    assert_eq!(outcome_of(&writes, "r0"), Outcome::Unconfirmed);
    assert_eq!(Outcome::Unconfirmed.sent_flag(), Some(0));
    assert_eq!(
        attempts_of(&writes, "r0"),
        vec![
            AttemptAnswer::FailedAfterCommit,
            AttemptAnswer::AlreadyExists
        ],
        "both attempts are kept for the uuid"
    );
    assert_eq!(outcome_of(&writes, "r1"), Outcome::Sent);
    assert_eq!(report.not_sent_for(NotSentKind::Unconfirmed), 1);
    assert_eq!(report.sent, 1);
}

#[tokio::test(start_paused = true)]
async fn a_409_judges_the_ledgers_history_of_earlier_runs() {
    for (history, expected) in [
        (
            KeyHistory::default().with(&[AttemptAnswer::NoAnswer]),
            Outcome::AlreadySent,
        ),
        (
            KeyHistory::default().with(&[AttemptAnswer::FailedAfterCommit]),
            Outcome::Unconfirmed,
        ),
    ] {
        let mut issuer = mock_issuer();
        issuer
            .expect_issue_batch()
            .times(1)
            .returning(|items, _| Ok(vec![ItemAnswer::AlreadyExists; items.len()]));
        let (sink, writes) = sink_with_ledger(history);
        let p = pipeline(
            Arc::new(scripted_source(vec![records(1)])),
            Arc::new(all_mobile()),
            Arc::new(issuer),
            Arc::new(sink),
            one_epoch(),
        );
        p.run(CancellationToken::new()).await.expect("run");
        assert_eq!(outcome_of(&writes, "r0"), expected, "{history:?}");
    }
}

#[tokio::test(start_paused = true)]
async fn the_ledger_settles_a_key_texted_under_another_id_with_no_request() {
    let mut issuer = mock_issuer();
    issuer.expect_issue_batch().times(0);
    let texted = KeyHistory {
        texted: true,
        ..KeyHistory::default()
    };
    let (sink, writes) = sink_with_ledger(texted);
    let p = pipeline(
        Arc::new(scripted_source(vec![records(3)])),
        Arc::new(all_mobile()),
        Arc::new(issuer),
        Arc::new(sink),
        one_epoch(),
    );
    let report = p.run(CancellationToken::new()).await.expect("run");
    for id in ["r0", "r1", "r2"] {
        assert_eq!(outcome_of(&writes, id), Outcome::TextedBefore);
        assert!(attempts_of(&writes, id).is_empty());
    }
    assert_eq!((report.already_sent, report.issue_requests), (3, 0));
}

#[tokio::test(start_paused = true)]
async fn a_realm_without_an_sms_provider_stops_the_run_and_finalises_nothing() {
    let issuer = MemoryIssuer::new();
    issuer.script([Scripted::Answers(vec![ItemAnswer::failed(""); 10])]);
    let m = memory_with(records(200), MemoryValidator::new(), issuer, one_epoch());
    let failure = m
        .pipeline
        .run(CancellationToken::new())
        .await
        .expect_err("a misconfigured realm is a failure");
    assert!(
        matches!(
            failure.cause,
            FatalCause::Misconfigured {
                fault: RealmFault::NoSmsProvider,
                ..
            }
        ),
        "{:?}",
        failure.cause
    );
    assert!(failure.cause.to_string().contains("SMS provider"));
    assert_eq!(failure.report.stop, Some(StopReason::Misconfigured));
    let counts = m.store.counts();
    assert_eq!(
        (counts.sent, counts.not_sent),
        (0, 0),
        "nothing finalised: {counts:?}"
    );
    assert!(failure.report.deferred_for(DeferReason::Misconfigured) >= 10);
    assert_nothing_lost(&m.store, &failure.report);
}

#[tokio::test(start_paused = true)]
async fn a_template_the_realm_cannot_build_stops_the_run_instead_of_recording_texts() {
    let build = ItemAnswer::failed_with(
        "sms_failure",
        "failed to send sms: failed to build sms message: no template found for label x",
    );
    let issuer = MemoryIssuer::new();
    issuer.script([
        Scripted::Answers(vec![build.clone(); 10]),
        Scripted::Answers(vec![ItemAnswer::AlreadyExists; 10]),
    ]);
    let m = memory_with(records(20), MemoryValidator::new(), issuer, one_epoch());
    let failure = m
        .pipeline
        .run(CancellationToken::new())
        .await
        .expect_err("misconfigured");
    assert!(matches!(
        failure.cause,
        FatalCause::Misconfigured {
            fault: RealmFault::MessageNotBuilt,
            ..
        }
    ));
    assert_eq!(failure.report.sent + failure.report.already_sent, 0);
    assert_eq!(m.store.counts().sent, 0, "nobody recorded as texted");
    assert_eq!(
        m.issuer.requests(),
        1,
        "the 409s of a re-send are never asked for"
    );
}

#[tokio::test(start_paused = true)]
async fn no_request_starts_that_could_end_past_the_deadline() {
    let issuer = MemoryIssuer::new().with_latency(Duration::from_secs(40));
    let m = memory_with(
        records(100),
        MemoryValidator::new(),
        issuer,
        Settings {
            deadline: Duration::from_secs(110),
            ..one_epoch()
        },
    );
    let started = Instant::now();
    let report = m.pipeline.run(CancellationToken::new()).await.expect("run");
    // Four batches in flight: two waves of 40 s fit into 110 s less the write reserve;
    // a third wave would end at 120 s.
    assert_eq!(m.issuer.requests(), 8, "{report:?}");
    assert_eq!(report.sent, 80);
    assert_eq!(report.deferred_for(DeferReason::Deadline), 20);
    assert!(
        started.elapsed() <= Duration::from_secs(110),
        "every request finished in time"
    );
    assert_nothing_lost(&m.store, &report);
}

/// An issuer whose requests may run 30 s: the first gets no answer (at once, as a dropped
/// connection does), the next ones are issued. Logs when each call came.
fn no_answer_then_issued(calls: Arc<Mutex<Vec<Instant>>>) -> MockSmsIssuer {
    let mut issuer = MockSmsIssuer::new();
    issuer
        .expect_max_request_duration()
        .return_const(Duration::from_secs(30));
    issuer.expect_issue_batch().returning(move |items, _| {
        let mut calls = calls.lock().expect("lock");
        calls.push(Instant::now());
        if calls.len() == 1 {
            Err(ca_notify_ports::IssueError::NoAnswer {
                message: "connection reset".into(),
                may_still_run: true,
            })
        } else {
            Ok(vec![ItemAnswer::Issued; items.len()])
        }
    });
    issuer
}

#[tokio::test(start_paused = true)]
async fn a_request_without_an_answer_is_sent_again_only_once_it_must_have_ended() {
    let calls: Arc<Mutex<Vec<Instant>>> = Arc::default();
    let (sink, writes) = recording_sink();
    let p = pipeline(
        Arc::new(scripted_source(vec![records(3)])),
        Arc::new(all_mobile()),
        Arc::new(no_answer_then_issued(calls.clone())),
        Arc::new(sink),
        one_epoch(),
    );
    let report = p.run(CancellationToken::new()).await.expect("run");
    let calls = calls.lock().expect("lock").clone();
    assert_eq!(calls.len(), 2);
    assert!(
        calls[1] - calls[0] >= Duration::from_secs(30),
        "re-sent after {:?}, while the first request could still run",
        calls[1] - calls[0]
    );
    assert_eq!(outcome_of(&writes, "r0"), Outcome::Sent);
    assert_eq!(
        attempts_of(&writes, "r0"),
        vec![AttemptAnswer::NoAnswer, AttemptAnswer::Issued]
    );
    assert_eq!(report.sent, 3);
}

#[tokio::test(start_paused = true)]
async fn a_shutdown_while_a_request_may_still_run_leaves_its_records_claimed() {
    let calls: Arc<Mutex<Vec<Instant>>> = Arc::default();
    let (sink, writes) = recording_sink();
    let p = pipeline(
        Arc::new(scripted_source(vec![records(3)])),
        Arc::new(all_mobile()),
        Arc::new(no_answer_then_issued(calls.clone())),
        Arc::new(sink),
        one_epoch(),
    );
    let shutdown = CancellationToken::new();
    let stop = shutdown.clone();
    tokio::spawn(async move {
        tokio::time::sleep(Duration::from_secs(10)).await;
        stop.cancel();
    });
    let report = p.run(shutdown).await.expect("a shutdown is not a failure");
    assert_eq!(calls.lock().expect("lock").len(), 1, "never re-sent");
    assert_eq!(
        outcome_of(&writes, "r0"),
        Outcome::deferred(DeferReason::NoAnswer),
        "the sink keeps it claimed until its lease ends"
    );
    assert!(DeferReason::NoAnswer.holds_the_claim());
    assert_eq!(attempts_of(&writes, "r0"), vec![AttemptAnswer::NoAnswer]);
    assert_eq!(report.deferred_for(DeferReason::NoAnswer), 3);
}

#[tokio::test(start_paused = true)]
async fn a_server_that_never_answers_is_a_failure_and_holds_nothing_wrongly() {
    let issuer = MemoryIssuer::new();
    issuer.script((0..3).map(|_| Scripted::Fail(IssuerFault::NoAnswer)));
    let m = memory_with(records(10), MemoryValidator::new(), issuer, one_epoch());
    let failure = m
        .pipeline
        .run(CancellationToken::new())
        .await
        .expect_err("no progress is a failure");
    assert!(
        matches!(failure.cause, FatalCause::IssuerUnavailable(_)),
        "{:?}",
        failure.cause
    );
    assert_eq!(m.issuer.requests(), 3, "the first send and two re-sends");
    assert_eq!(m.issuer.total_texts(), 0);
    assert_eq!(
        m.store.counts().not_sent,
        0,
        "no answer is never the record's fault"
    );
}

#[tokio::test(start_paused = true)]
async fn a_whole_batch_of_internal_errors_is_a_realm_fault() {
    let issuer = MemoryIssuer::new();
    issuer.script([Scripted::Answers(vec![
        ItemAnswer::failed(
            "internal_server_error"
        );
        10
    ])]);
    let m = memory_with(
        records(10),
        MemoryValidator::new(),
        issuer,
        Settings {
            issue_retry_backoff: ca_notify_domain::Backoff {
                max_retries: 2,
                ..ca_notify_domain::Backoff::default()
            },
            ..one_epoch()
        },
    );
    let failure = m
        .pipeline
        .run(CancellationToken::new())
        .await
        .expect_err("misconfigured");
    assert!(matches!(
        failure.cause,
        FatalCause::Misconfigured {
            fault: RealmFault::WholeBatchFailed,
            ..
        }
    ));
    assert_eq!(m.issuer.requests(), 1);
    assert_eq!(m.store.counts().not_sent, 0);
}

#[tokio::test(start_paused = true)]
async fn duplicates_in_a_claim_share_what_the_owner_learned() {
    // r0 and r1 are the same person and test: one uuid. The owner's send fails and keeps
    // its row; the re-send gets 409. Both records are unconfirmed, and only one request
    // per round carries the uuid.
    let mut recs = records(1);
    recs.push(RecipientRecord::new("r1", mobile(0)).with_test_date("2021-06-14"));
    let calls: Arc<Mutex<Vec<usize>>> = Arc::default();
    let log = calls.clone();
    let mut issuer = mock_issuer();
    let mut seq = Sequence::new();
    issuer
        .expect_issue_batch()
        .times(1)
        .in_sequence(&mut seq)
        .returning(move |items, _| {
            log.lock().expect("lock").push(items.len());
            Ok(vec![ItemAnswer::failed("sms_failure"); items.len()])
        });
    issuer
        .expect_issue_batch()
        .times(1)
        .in_sequence(&mut seq)
        .returning(|items, _| Ok(vec![ItemAnswer::AlreadyExists; items.len()]));
    let (sink, writes) = recording_sink();
    let p = pipeline(
        Arc::new(scripted_source(vec![recs])),
        Arc::new(all_mobile()),
        Arc::new(issuer),
        Arc::new(sink),
        one_epoch(),
    );
    p.run(CancellationToken::new()).await.expect("run");
    assert_eq!(*calls.lock().expect("lock"), vec![1]);
    assert_eq!(outcome_of(&writes, "r0"), Outcome::Unconfirmed);
    assert_eq!(outcome_of(&writes, "r1"), Outcome::Unconfirmed);
}

#[test]
fn a_deadline_inside_one_request_is_a_configuration_error() {
    let issuer = MemoryIssuer::new().with_latency(Duration::from_secs(60));
    let store = Arc::new(ca_notify_adapter_memory::MemoryStore::new());
    let error = Pipeline::builder()
        .source(store.clone())
        .sink(store)
        .validator(Arc::new(MemoryValidator::new()))
        .issuer(Arc::new(issuer))
        .settings(Settings {
            deadline: Duration::from_secs(60),
            ..Settings::default()
        })
        .dedup_secret(secret())
        .build()
        .expect_err("nothing could ever be issued");
    let text = error.to_string();
    assert!(text.contains("pipeline.deadline_secs"), "{text}");
    assert!(text.contains("verification.request_timeout_secs"), "{text}");
}

#[tokio::test(start_paused = true)]
async fn a_validator_account_that_cannot_look_up_stops_the_run_and_marks_nothing() {
    let validator = MemoryValidator::new();
    validator.set_fault(Some(ValidatorFault::Misconfigured));
    let m = memory_with(records(30), validator, MemoryIssuer::new(), one_epoch());
    let failure = m
        .pipeline
        .run(CancellationToken::new())
        .await
        .expect_err("misconfigured");
    assert!(
        matches!(failure.cause, FatalCause::ValidatorMisconfigured(_)),
        "{:?}",
        failure.cause
    );
    assert_eq!(failure.report.stop, Some(StopReason::Misconfigured));
    assert_eq!(m.issuer.requests(), 0);
    let counts = m.store.counts();
    assert_eq!((counts.sent, counts.not_sent), (0, 0), "{counts:?}");
    assert_nothing_lost(&m.store, &failure.report);
}
