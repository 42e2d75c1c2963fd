//! The adapter against the verification server simulator: what the SMS ledger says
//! after partial failures, lost answers, limiter refusals, quota exhaustion and
//! duplicate rows. The ledger is the ground truth: every person texted exactly once.

mod common;

use std::time::Duration;

use ca_notify_adapter_verification::VerificationClient;
use ca_notify_domain::{
    evaluate_response, AttemptAnswer, ItemAnswer, KeyHistory, Outcome, RetryBudget, StopSignal,
};
use ca_notify_ports::{IssueError, IssueItem, SmsIssuer};
use ca_notify_simulators::verification::{
    Fault, Faults, RateLimit, RunningSim, SimConfig, VerificationSimulator,
};
use common::{far, items};
use tokio::time::Instant;

async fn start(config: SimConfig) -> (RunningSim, VerificationClient) {
    let sim = VerificationSimulator::start(config)
        .await
        .expect("simulator");
    let client = common::client(&sim.base_url(), &sim.api_key());
    (sim, client)
}

/// The answers without their error texts, to compare codes.
fn bare(answers: Vec<ItemAnswer>) -> Vec<ItemAnswer> {
    answers
        .into_iter()
        .map(|answer| match answer {
            ItemAnswer::Failed { error_code, .. } => ItemAnswer::failed(error_code),
            other => other,
        })
        .collect()
}

fn assert_texted_once(sim: &RunningSim, items: &[IssueItem]) {
    for item in items {
        assert_eq!(
            sim.texts_to(item.phone.expose_e164()),
            1,
            "{} must get exactly one text",
            item.phone
        );
    }
}

#[tokio::test]
async fn partial_failure_resends_only_the_failed_indices() {
    let (sim, client) = start(SimConfig {
        faults: Faults::scripted([Fault::SmsFailure(vec![1, 3])]),
        ..SimConfig::default()
    })
    .await;
    let batch = items(100, 5);
    let answers = client.issue_batch(&batch, far()).await.expect("answers");
    assert_eq!(
        bare(answers.clone()),
        vec![
            ItemAnswer::Issued,
            ItemAnswer::failed("sms_failure"),
            ItemAnswer::Issued,
            ItemAnswer::failed("sms_failure"),
            ItemAnswer::Issued,
        ]
    );
    let evaluation = evaluate_response(batch.len(), &answers, &[], 0, &RetryBudget::default());
    assert_eq!(evaluation.retry, vec![1, 3]);
    let resend: Vec<IssueItem> = evaluation.retry.iter().map(|&i| batch[i].clone()).collect();
    let answers = client.issue_batch(&resend, far()).await.expect("answers");
    assert_eq!(answers, vec![ItemAnswer::Issued; 2]);
    assert_texted_once(&sim, &batch);
    assert_eq!(sim.stats().items, 7, "5 sent, then only the 2 failed ones");
}

#[tokio::test]
async fn an_error_after_issuing_ends_with_one_text_each_and_already_exists() {
    let (sim, client) = start(SimConfig {
        faults: Faults::scripted([Fault::ErrorAfterIssue]),
        ..SimConfig::default()
    })
    .await;
    let batch = items(200, 4);
    let error = client
        .issue_batch(&batch, far())
        .await
        .expect_err("a 500 without codes says nothing about the items");
    assert!(
        matches!(
            error,
            IssueError::NoAnswer {
                may_still_run: false,
                ..
            }
        ),
        "{error:?}"
    );
    let answers = client.issue_batch(&batch, far()).await.expect("answers");
    assert_eq!(
        answers,
        vec![ItemAnswer::AlreadyExists; 4],
        "the re-send met 409s"
    );
    assert_texted_once(&sim, &batch);
    let stats = sim.stats();
    assert_eq!((stats.batches, stats.already_exists), (2, 4));
}

#[tokio::test]
async fn a_dropped_connection_is_no_answer_and_the_later_resend_meets_409() {
    let (sim, client) = start(SimConfig {
        faults: Faults::scripted([Fault::DropAfterIssue]),
        ..SimConfig::default()
    })
    .await;
    let batch = items(300, 3);
    let error = client
        .issue_batch(&batch, far())
        .await
        .expect_err("no answer");
    assert!(matches!(error, IssueError::NoAnswer { .. }), "{error:?}");
    assert_eq!(
        sim.stats().batches,
        1,
        "the adapter never re-sends after no answer"
    );
    // The pipeline re-sends once the first request must have ended.
    let answers = client.issue_batch(&batch, far()).await.expect("answers");
    assert_eq!(answers, vec![ItemAnswer::AlreadyExists; 3]);
    assert_texted_once(&sim, &batch);
    assert_eq!(sim.stats().dropped_connections, 1);
}

#[tokio::test]
async fn a_drop_before_issuing_and_a_500_without_codes_are_no_answer() {
    let (sim, client) = start(SimConfig {
        faults: Faults::scripted([Fault::DropBeforeIssue, Fault::ErrorBeforeIssue]),
        ..SimConfig::default()
    })
    .await;
    let batch = items(400, 3);
    // The client cannot tell a drop before issuing from one after.
    let error = client
        .issue_batch(&batch, far())
        .await
        .expect_err("no answer");
    assert!(matches!(error, IssueError::NoAnswer { .. }), "{error:?}");
    // A plain-text 500 from the limiter's backend is no answer either: the client cannot
    // tell it from one after issuing.
    let error = client
        .issue_batch(&batch, far())
        .await
        .expect_err("no answer");
    assert!(matches!(error, IssueError::NoAnswer { .. }), "{error:?}");
    let answers = client.issue_batch(&batch, far()).await.expect("answers");
    assert_eq!(answers, vec![ItemAnswer::Issued; 3]);
    assert_texted_once(&sim, &batch);
}

#[tokio::test]
async fn a_refused_connection_is_retried_inside_the_adapter() {
    // Bind a port, then free it: nothing listens there.
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let address = listener.local_addr().expect("address");
    drop(listener);
    let mut config = common::config(&format!("http://{address}"), "key");
    config.transport_backoff.max_retries = 2;
    config.transport_backoff.base = Duration::from_millis(1);
    config.transport_backoff.cap = Duration::from_millis(2);
    let client = VerificationClient::new(config).expect("client");
    let error = client
        .issue_batch(&items(450, 1), far())
        .await
        .expect_err("nobody listens");
    match error {
        IssueError::Unavailable(text) => assert!(text.contains("3 attempts"), "{text}"),
        other => panic!("{other:?}"),
    }
}

#[tokio::test]
async fn the_same_person_twice_in_one_batch_is_texted_once() {
    let (sim, client) = start(SimConfig::default()).await;
    let person = common::item("+12065550500");
    let other = common::item("+12065550501");
    // Two store rows for the same phone and test date carry the same dedup key.
    let mut twin = person.clone();
    twin.tz_offset = -420;
    let answers = client
        .issue_batch(&[person.clone(), other, twin], far())
        .await
        .expect("answers");
    assert_eq!(
        answers,
        vec![
            ItemAnswer::Issued,
            ItemAnswer::Issued,
            ItemAnswer::AlreadyExists
        ]
    );
    assert_eq!(sim.texts_to(person.phone.expose_e164()), 1);
    assert_eq!(sim.stats().items, 2, "the twin was not even sent");
}

#[tokio::test]
async fn a_limiter_429_says_until_when_and_the_pacer_waits_for_it() {
    let (sim, client) = start(SimConfig {
        rate_limit: Some(RateLimit {
            tokens: 1,
            interval: Duration::from_secs(2),
        }),
        ..SimConfig::default()
    })
    .await;
    client
        .issue_batch(&items(500, 2), far())
        .await
        .expect("first window");
    // The server's window is spent (Remaining 0), so the pacer already holds; a second
    // client knows nothing of it (another process behind the same IP) and provokes the
    // 429 itself.
    let unaware =
        VerificationClient::new(common::config(&sim.base_url(), &sim.api_key())).expect("client");
    let before = Instant::now();
    let error = unaware
        .issue_batch(&items(510, 2), far())
        .await
        .expect_err("limited");
    let IssueError::RateLimited { until } = error else {
        panic!("{error:?}");
    };
    assert!(until > before, "{:?}", until - before);
    assert!(
        until <= before + Duration::from_secs(4),
        "{:?}",
        until - before
    );
    assert_eq!(sim.stats().rate_limited, 1);

    // Retried at once, the call waits out the hold instead of earning another 429.
    let batch = items(510, 2);
    let answers = unaware
        .issue_batch(&batch, far())
        .await
        .expect("after the wait");
    assert!(Instant::now() >= until);
    assert_eq!(answers, vec![ItemAnswer::Issued; 2]);
    assert_eq!(sim.stats().rate_limited, 1, "no second 429");
    assert_texted_once(&sim, &batch);
}

#[tokio::test]
async fn a_spent_window_is_waited_out_without_a_429() {
    let (sim, client) = start(SimConfig {
        rate_limit: Some(RateLimit {
            tokens: 2,
            interval: Duration::from_secs(1),
        }),
        ..SimConfig::default()
    })
    .await;
    let mut all = Vec::new();
    for n in 0..4 {
        let batch = items(600 + n * 10, 3);
        let answers = client.issue_batch(&batch, far()).await.expect("issued");
        assert_eq!(answers, vec![ItemAnswer::Issued; 3]);
        all.extend(batch);
    }
    assert_eq!(sim.stats().rate_limited, 0);
    assert_texted_once(&sim, &all);
}

#[tokio::test]
async fn the_servers_headers_keep_many_callers_under_its_limiter() {
    let (sim, client) = start(SimConfig {
        rate_limit: Some(RateLimit {
            tokens: 10,
            interval: Duration::from_secs(2),
        }),
        ..SimConfig::default()
    })
    .await;
    // 25 requests from 25 callers at once against 10 a window, with default settings:
    // the pacer learns the window from the first answer and spreads the rest over three.
    let client = std::sync::Arc::new(client);
    let started = Instant::now();
    let tasks: Vec<_> = (0..25u32)
        .map(|n| {
            let client = client.clone();
            tokio::spawn(async move { client.issue_batch(&items(700 + n * 10, 2), far()).await })
        })
        .collect();
    for task in tasks {
        let answers = task.await.expect("task").expect("answers");
        assert_eq!(answers, vec![ItemAnswer::Issued; 2]);
    }
    assert_eq!(sim.stats().rate_limited, 0, "not one 429");
    assert_eq!(sim.ledger().total(), 50);
    assert!(started.elapsed() >= Duration::from_secs(4), "three windows");
}

#[tokio::test]
async fn quota_exhaustion_stops_issuing_and_marks_nothing_zero() {
    let (sim, client) = start(SimConfig {
        daily_quota: Some(2),
        ..SimConfig::default()
    })
    .await;
    let batch = items(800, 3);
    let answers = client.issue_batch(&batch, far()).await.expect("answers");
    assert_eq!(
        bare(answers.clone()),
        vec![
            ItemAnswer::Issued,
            ItemAnswer::Issued,
            ItemAnswer::failed("quota_exceeded")
        ]
    );
    let evaluation = evaluate_response(3, &answers, &[], 0, &RetryBudget::default());
    assert_eq!(evaluation.stop, Some(StopSignal::QuotaExhausted));
    assert!(evaluation
        .settled
        .iter()
        .all(|(_, outcome)| outcome.sent_flag() != Some(0)));
    assert!(matches!(evaluation.settled[2].1, Outcome::Deferred { .. }));

    let error = client
        .issue_batch(&items(810, 2), far())
        .await
        .expect_err("spent");
    assert!(matches!(error, IssueError::QuotaExhausted), "{error:?}");
    assert_eq!(sim.ledger().total(), 2);
}

#[tokio::test]
async fn a_wrong_api_key_stops_at_once() {
    let sim = VerificationSimulator::start(SimConfig::default())
        .await
        .expect("simulator");
    let client = common::client(&sim.base_url(), "not-the-key");
    let error = client
        .issue_batch(&items(900, 2), far())
        .await
        .expect_err("401");
    assert!(matches!(error, IssueError::Unauthorized(_)), "{error:?}");
    assert_eq!(sim.stats().requests, 1, "not retried");
    assert_eq!(sim.ledger().total(), 0);
    let problem = client.check_reachable().await.expect_err("401");
    assert!(problem.contains("verification.api_key"), "{problem}");
}

#[tokio::test]
async fn maintenance_is_unavailable() {
    let (sim, client) = start(SimConfig {
        maintenance: true,
        ..SimConfig::default()
    })
    .await;
    let error = client
        .issue_batch(&items(950, 2), far())
        .await
        .expect_err("maintenance");
    assert!(matches!(error, IssueError::Unavailable(_)), "{error:?}");
    assert_eq!(sim.ledger().total(), 0);
}

#[tokio::test]
async fn check_reachable_issues_nothing() {
    let (sim, client) = start(SimConfig {
        rate_limit: Some(RateLimit::per_minute(60)),
        ..SimConfig::default()
    })
    .await;
    let report = client.check_reachable().await.expect("reachable");
    assert!(report.contains("request limit 60"), "{report}");
    let stats = sim.stats();
    assert_eq!((stats.requests, stats.issued), (1, 0));
}

#[tokio::test]
async fn random_faults_never_text_anyone_twice() {
    let (sim, client) = start(SimConfig {
        seed: 42,
        faults: Faults {
            error_after_issue: 0.15,
            drop_after_issue: 0.15,
            drop_before_issue: 0.1,
            sms_failure: 0.1,
            ..Faults::default()
        },
        ..SimConfig::default()
    })
    .await;
    let mut config = common::config(&sim.base_url(), &sim.api_key());
    config.transport_backoff.max_retries = 8;
    let client_many = VerificationClient::new(config).expect("client");
    drop(client);
    let mut everyone = Vec::new();
    let mut unconfirmed = 0;
    for n in 0..20u32 {
        let mut pending = items(1000 + n * 10, 10);
        let mut histories = vec![KeyHistory::default(); pending.len()];
        everyone.extend(pending.clone());
        for retries_done in 0..8 {
            if pending.is_empty() {
                break;
            }
            // As the pipeline does: a request without an answer is sent again (once it
            // must have ended: the simulator's requests are over when the drop is seen).
            let answers = match client_many.issue_batch(&pending, far()).await {
                Ok(answers) => answers,
                Err(IssueError::NoAnswer { .. }) => {
                    for history in &mut histories {
                        history.record(AttemptAnswer::NoAnswer);
                    }
                    continue;
                }
                Err(other) => panic!("{other:?}"),
            };
            let evaluation = evaluate_response(
                pending.len(),
                &answers,
                &histories,
                retries_done,
                &RetryBudget {
                    max_item_retries: 8,
                },
            );
            for (k, attempt) in evaluation.attempts.iter().enumerate() {
                histories[k].record(*attempt);
            }
            // A 409 after a failed send and a lost answer is unconfirmed: the client
            // cannot tell which attempt left the row. Never sent twice, either way.
            unconfirmed += evaluation
                .settled
                .iter()
                .filter(|(_, o)| *o == Outcome::Unconfirmed)
                .count();
            let keep: Vec<usize> = evaluation.retry.clone();
            pending = keep.iter().map(|&i| pending[i].clone()).collect();
            histories = keep.iter().map(|&i| histories[i]).collect();
        }
        assert!(pending.is_empty());
    }
    assert_texted_once(&sim, &everyone);
    assert_eq!(sim.ledger().phones_texted_more_than_once(), 0);
    assert!(
        unconfirmed < everyone.len() / 10,
        "{unconfirmed} unconfirmed"
    );
    let stats = sim.stats();
    assert!(
        stats.dropped_connections > 0 && stats.injected_errors > 0,
        "{stats:?}"
    );
}

#[tokio::test]
async fn a_timeout_is_no_answer_and_never_re_sent_by_the_adapter() {
    let sim = VerificationSimulator::start(SimConfig {
        faults: Faults::scripted([Fault::Delay(Duration::from_millis(800))]),
        ..SimConfig::default()
    })
    .await
    .expect("simulator");
    let mut config = common::config(&sim.base_url(), &sim.api_key());
    config.request_timeout = Duration::from_millis(300);
    let client = VerificationClient::new(config).expect("client");
    let batch = items(1200, 2);
    let error = client
        .issue_batch(&batch, far())
        .await
        .expect_err("no answer in time");
    assert!(matches!(error, IssueError::NoAnswer { .. }), "{error:?}");
    assert_eq!(
        sim.stats().batches,
        1,
        "a re-send now would meet the request the server may still be running"
    );
}

#[tokio::test]
async fn no_request_starts_that_could_outlive_the_deadline() {
    let (sim, client) = start(SimConfig::default()).await;
    // The common client's timeout is longer than the time left.
    let error = client
        .issue_batch(&items(1300, 1), Instant::now() + Duration::from_millis(100))
        .await
        .expect_err("no time to finish");
    assert!(matches!(error, IssueError::NoTimeLeft), "{error:?}");
    assert_eq!(sim.stats().requests, 0, "nothing was sent");
}
