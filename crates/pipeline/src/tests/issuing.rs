//! Issuing: re-sends of failed items only, the retry budget, rate limits.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use ca_notify_adapter_memory::{IssuerFault, MemoryIssuer, MemoryValidator, Scripted};
use ca_notify_domain::{DedupKey, ItemAnswer, NotSentReason, Outcome};
use ca_notify_ports::IssueError;
use mockall::Sequence;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use super::*;

fn one_epoch() -> Settings {
    Settings {
        epoch_count: 1,
        ..Settings::default()
    }
}

#[tokio::test(start_paused = true)]
async fn a_partial_failure_re_sends_only_the_failed_items_with_the_same_uuids() {
    let first_uuids: Arc<Mutex<Vec<DedupKey>>> = Arc::default();
    let mut issuer = mock_issuer();
    let mut seq = Sequence::new();
    let seen = first_uuids.clone();
    issuer
        .expect_issue_batch()
        .times(1)
        .in_sequence(&mut seq)
        .withf(|items, _| items.len() == 4)
        .returning(move |items, _| {
            seen.lock()
                .expect("lock")
                .extend(items.iter().map(|i| i.uuid));
            Ok(vec![
                ItemAnswer::Issued,
                ItemAnswer::failed("sms_failure"),
                ItemAnswer::failed("phone_number_invalid"),
                ItemAnswer::failed("internal_server_error"),
            ])
        });
    let seen = first_uuids.clone();
    issuer
        .expect_issue_batch()
        .times(1)
        .in_sequence(&mut seq)
        .withf(move |items, _| {
            let first = seen.lock().expect("lock");
            items.len() == 2 && items[0].uuid == first[1] && items[1].uuid == first[3]
        })
        .returning(|_, _| Ok(vec![ItemAnswer::Issued, ItemAnswer::AlreadyExists]));
    let (sink, writes) = recording_sink();
    let p = pipeline(
        Arc::new(scripted_source(vec![records(4)])),
        Arc::new(all_mobile()),
        Arc::new(issuer),
        Arc::new(sink),
        one_epoch(),
    );
    let report = p.run(CancellationToken::new()).await.expect("run");
    assert_eq!(writes.lock().expect("lock").len(), 1);
    assert_eq!(outcome_of(&writes, "r0"), Outcome::Sent);
    assert_eq!(outcome_of(&writes, "r1"), Outcome::Sent);
    assert_eq!(
        outcome_of(&writes, "r2"),
        Outcome::not_sent(NotSentReason::Rejected {
            error_code: "phone_number_invalid".into()
        })
    );
    // A 409 after an explicit failure of the same uuid proves a row, not a text.
    assert_eq!(outcome_of(&writes, "r3"), Outcome::Unconfirmed);
    assert_eq!((report.issue_requests, report.item_retries), (2, 2));
}

#[tokio::test(start_paused = true)]
async fn transient_failures_give_up_when_the_budget_is_spent() {
    let issuer = MemoryIssuer::new();
    issuer.script((0..3).map(|_| Scripted::Answers(vec![ItemAnswer::failed("sms_failure")])));
    let m = memory_with(
        records(1),
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
    let report = m.pipeline.run(CancellationToken::new()).await.expect("run");
    assert_eq!(m.issuer.requests(), 3, "the first send and two re-sends");
    assert_eq!(
        m.store.outcome(&"r0".into()),
        Some(Outcome::not_sent(NotSentReason::GaveUp {
            last_error: "sms_failure".into()
        }))
    );
    assert_eq!(report.item_retries, 2);
    assert_nothing_lost(&m.store, &report);
}

#[tokio::test(start_paused = true)]
async fn transient_failures_are_deferred_when_the_deadline_leaves_no_room_to_re_send() {
    let issuer = MemoryIssuer::new().with_latency(Duration::from_secs(4));
    issuer.script([Scripted::Answers(vec![ItemAnswer::failed("sms_failure")])]);
    let m = memory_with(
        records(1),
        MemoryValidator::new(),
        issuer,
        Settings {
            deadline: Duration::from_secs(6),
            ..one_epoch()
        },
    );
    let report = m.pipeline.run(CancellationToken::new()).await.expect("run");
    assert_eq!(
        m.issuer.requests(),
        1,
        "a second 4 s request would end past the deadline"
    );
    assert!(
        !report.not_sent.contains_key(&NotSentKind::GaveUp),
        "{report:?}"
    );
    assert_eq!(
        report.deferred_for(DeferReason::Deadline),
        1,
        "the next run tries again"
    );
    assert_eq!(m.store.outcome(&"r0".into()), None);
    assert_nothing_lost(&m.store, &report);
}

#[tokio::test(start_paused = true)]
async fn rate_limited_pauses_issuing_until_the_reset() {
    let started = Instant::now();
    let until = started + Duration::from_secs(30);
    let calls: Arc<Mutex<Vec<Instant>>> = Arc::default();
    let mut issuer = mock_issuer();
    let log = calls.clone();
    issuer
        .expect_issue_batch()
        .times(3)
        .returning(move |items, _| {
            let mut log = log.lock().expect("lock");
            log.push(Instant::now());
            if log.len() == 1 {
                Err(IssueError::RateLimited { until })
            } else {
                Ok(vec![ItemAnswer::Issued; items.len()])
            }
        });
    let (sink, writes) = recording_sink();
    let p = pipeline(
        Arc::new(scripted_source(vec![records(20)])),
        Arc::new(all_mobile()),
        Arc::new(issuer),
        Arc::new(sink),
        Settings {
            max_batches_in_flight: 1,
            ..one_epoch()
        },
    );
    let report = p.run(CancellationToken::new()).await.expect("run");
    let calls = calls.lock().expect("lock");
    assert_eq!(calls[0], started, "the first request goes at once");
    assert!(calls[1] >= until, "the repeat waits for the reset");
    assert!(calls[2] >= until);
    assert_eq!(report.sent, 20);
    assert_eq!(report.issue_requests, 3);
    assert_eq!(written(&writes).len(), 20);
}

#[tokio::test(start_paused = true)]
async fn a_rate_limit_past_the_deadline_defers_instead_of_waiting() {
    let issuer = MemoryIssuer::new();
    issuer.script([Scripted::Fail(IssuerFault::RateLimited {
        until: Instant::now() + Duration::from_secs(600),
    })]);
    let m = memory_with(records(10), MemoryValidator::new(), issuer, one_epoch());
    let started = Instant::now();
    let report = m.pipeline.run(CancellationToken::new()).await.expect("run");
    assert_eq!(m.issuer.requests(), 1);
    assert_eq!(report.rate_limited, 1, "the 429 is counted");
    assert_eq!(report.deferred_for(DeferReason::RateLimited), 10);
    assert!(
        started.elapsed() < Duration::from_secs(1),
        "no pointless wait"
    );
    assert_nothing_lost(&m.store, &report);
    assert!(m
        .store
        .open_ids()
        .iter()
        .all(|id| m.store.attempts(id) == Some(1)));
}

#[tokio::test(start_paused = true)]
async fn an_unknown_issue_error_defers_the_batch_and_the_run_goes_on() {
    let issuer = MemoryIssuer::new();
    issuer.script([Scripted::Fail(IssuerFault::Unknown)]);
    let m = memory_with(
        records(30),
        MemoryValidator::new(),
        issuer,
        Settings {
            max_batches_in_flight: 1,
            ..one_epoch()
        },
    );
    let report = m.pipeline.run(CancellationToken::new()).await.expect("run");
    assert_eq!(report.deferred_for(DeferReason::IssuerUnavailable), 10);
    assert_eq!(report.sent, 20);
    assert_eq!(report.stop, None);
    assert_nothing_lost(&m.store, &report);
}
