//! Every contract fixture, served by wiremock over real HTTP, decoded and mapped to the
//! right per-item answer or whole-request error; and the request we send checked
//! against the fixture requests.

mod common;

use std::time::{Duration, SystemTime};

use ca_notify_adapter_verification::VerificationClient;
use ca_notify_domain::{evaluate_response, ItemAnswer, NotSentReason, Outcome, RetryBudget};
use ca_notify_ports::{IssueError, IssueItem, SmsIssuer};
use common::{client, far, fixture, fixture_json, item_from_fixture, items, API_KEY};
use serde_json::Value;
use tokio::time::Instant;
use wiremock::matchers::{header, method, path};
use wiremock::{Mock, MockServer, ResponseTemplate};

fn answer(status: u16, fixture_name: &str) -> ResponseTemplate {
    ResponseTemplate::new(status).set_body_raw(fixture(fixture_name), "application/json")
}

async fn serve(status: u16, fixture_name: &str, expected_calls: u64) -> MockServer {
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .and(path("/api/batch-issue"))
        .respond_with(answer(status, fixture_name))
        .expect(expected_calls)
        .mount(&server)
        .await;
    server
}

fn issuer(server: &MockServer) -> VerificationClient {
    client(&server.uri(), API_KEY)
}

fn fixture_items(request_fixture: &str) -> Vec<IssueItem> {
    fixture_json(request_fixture)["codes"]
        .as_array()
        .expect("codes")
        .iter()
        .map(item_from_fixture)
        .collect()
}

/// A fixture item as we would send it: everything but `externalIssuerID`, which
/// ca-notify has no use for.
fn without_issuer_id(code: &Value) -> Value {
    let mut code = code.clone();
    code.as_object_mut()
        .expect("object")
        .remove("externalIssuerID");
    code
}

#[tokio::test]
async fn the_request_matches_the_contract_fixture() {
    let server = serve(200, "batch-all-success.response.json", 1).await;
    let items = fixture_items("batch-all-success.request.json");
    let answers = issuer(&server)
        .issue_batch(&items, far())
        .await
        .expect("answers");
    assert_eq!(answers, vec![ItemAnswer::Issued; 3]);

    let requests = server.received_requests().await.expect("recorded");
    let request = &requests[0];
    let headers = &request.headers;
    assert_eq!(headers.get("x-api-key").expect("key"), API_KEY);
    assert_eq!(
        headers.get("content-type").expect("type"),
        "application/json"
    );
    assert_eq!(headers.get("accept").expect("accept"), "application/json");
    let sent: Value = request.body_json().expect("JSON body");
    let sent = sent.as_object().expect("object");
    assert_eq!(
        sent.keys().map(String::as_str).collect::<Vec<_>>(),
        ["codes", "padding"]
    );
    let padding = sent["padding"].as_str().expect("padding");
    assert!(!padding.is_empty() && padding.len() < 64, "{padding}");
    let want: Vec<Value> = fixture_json("batch-all-success.request.json")["codes"]
        .as_array()
        .expect("codes")
        .iter()
        .map(without_issuer_id)
        .collect();
    assert_eq!(sent["codes"], Value::Array(want));
}

#[tokio::test]
async fn the_single_issue_fixture_item_is_what_we_send_and_its_409_is_already_exists() {
    let server = serve(409, "issue-duplicate-uuid.response.json", 1).await;
    let request = fixture_json("issue-duplicate-uuid.request.json");
    let item = item_from_fixture(&request);
    let answers = issuer(&server)
        .issue_batch(std::slice::from_ref(&item), far())
        .await
        .expect("answers");
    assert_eq!(answers, vec![ItemAnswer::AlreadyExists]);
    let sent: Value = server.received_requests().await.expect("recorded")[0]
        .body_json()
        .expect("json");
    let mut want = without_issuer_id(&request);
    want.as_object_mut().expect("object").remove("padding");
    assert_eq!(sent["codes"][0], want);
}

#[tokio::test]
async fn the_duplicate_batch_fixture_is_already_exists_for_every_item() {
    let server = serve(409, "batch-duplicate-uuid.response.json", 1).await;
    let items = fixture_items("batch-all-success.request.json");
    let answers = issuer(&server)
        .issue_batch(&items, far())
        .await
        .expect("answers");
    assert_eq!(answers, vec![ItemAnswer::AlreadyExists; 3]);
    let evaluation = evaluate_response(3, &answers, &[], 0, &RetryBudget::default());
    assert!(evaluation
        .settled
        .iter()
        .all(|(_, o)| *o == Outcome::AlreadySent));
}

#[tokio::test]
async fn the_partial_failure_fixture_is_judged_item_by_item_despite_its_400() {
    let server = serve(400, "batch-partial-invalid-phone.response.json", 1).await;
    let answers = issuer(&server)
        .issue_batch(&items(1, 3), far())
        .await
        .expect("answers, not an error");
    let codes: Vec<Option<&str>> = answers
        .iter()
        .map(|a| match a {
            ItemAnswer::Failed { error_code, .. } => Some(error_code.as_str()),
            _ => None,
        })
        .collect();
    assert_eq!(codes, vec![None, Some("phone_number_invalid"), None]);
    assert_eq!(answers[0], ItemAnswer::Issued);
    let evaluation = evaluate_response(3, &answers, &[], 0, &RetryBudget::default());
    assert!(
        evaluation.retry.is_empty(),
        "nothing that was issued is resent"
    );
    assert_eq!(
        evaluation.settled[1].1,
        Outcome::not_sent(NotSentReason::Rejected {
            error_code: "phone_number_invalid".into()
        })
    );
}

#[tokio::test]
async fn the_quota_fixture_is_quota_exhausted_and_not_retried() {
    let server = serve(429, "batch-quota-exceeded.response.json", 1).await;
    let items = fixture_items("batch-quota-exceeded.request.json");
    let error = issuer(&server)
        .issue_batch(&items, far())
        .await
        .expect_err("quota");
    assert!(matches!(error, IssueError::QuotaExhausted), "{error:?}");
}

#[tokio::test]
async fn the_maintenance_fixture_is_unavailable_and_not_retried() {
    let server = serve(429, "maintenance-mode.response.json", 1).await;
    let error = issuer(&server)
        .issue_batch(&items(1, 2), far())
        .await
        .expect_err("maintenance");
    match error {
        IssueError::Unavailable(text) => assert!(text.contains("maintenance_mode"), "{text}"),
        other => panic!("{other:?}"),
    }
}

#[tokio::test]
async fn the_too_large_and_bulk_disabled_fixtures_are_rejected_and_not_retried() {
    for (name, words) in [
        (
            "batch-too-large.response.json",
            "batch size limit [10] exceeded",
        ),
        ("bulk-disabled.response.json", "bulk issuing is not enabled"),
    ] {
        let server = serve(400, name, 1).await;
        let error = issuer(&server)
            .issue_batch(&items(1, 2), far())
            .await
            .expect_err(name);
        match error {
            IssueError::Rejected(text) => assert!(text.contains(words), "{text}"),
            other => panic!("{name}: {other:?}"),
        }
    }
}

#[tokio::test]
async fn the_unauthorized_fixture_stops_with_advice_and_is_not_retried() {
    let server = serve(401, "unauthorized.response.json", 1).await;
    let error = issuer(&server)
        .issue_batch(&items(1, 2), far())
        .await
        .expect_err("401");
    assert!(matches!(error, IssueError::Unauthorized(_)), "{error:?}");
    let shown = error.to_string();
    assert!(
        shown.contains("API key") && shown.contains("IP allow-list"),
        "{shown}"
    );
}

#[tokio::test]
async fn the_internal_error_fixture_is_no_answer_and_not_retried() {
    // A 500 without `codes` may follow issuing (a panic, a proxy): it says nothing about
    // the items, so the adapter never sends them again by itself.
    let server = serve(500, "issue-internal-error.response.json", 1).await;
    let error = issuer(&server)
        .issue_batch(&fixture_items("batch-all-success.request.json"), far())
        .await
        .expect_err("no answer for the items");
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
}

#[tokio::test]
async fn a_request_the_server_never_read_is_retried_with_the_same_body_until_the_budget() {
    // 408: the client was too slow to send the request; the server read nothing.
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .respond_with(ResponseTemplate::new(408))
        .expect(4)
        .mount(&server)
        .await;
    // max_retries 3 in the test settings: four attempts in all.
    let error = issuer(&server)
        .issue_batch(&items(1, 2), far())
        .await
        .expect_err("unavailable");
    match error {
        IssueError::Unavailable(text) => assert!(text.contains("4 attempts"), "{text}"),
        other => panic!("{other:?}"),
    }
    let bodies: Vec<Vec<u8>> = server
        .received_requests()
        .await
        .expect("recorded")
        .into_iter()
        .map(|r| r.body)
        .collect();
    assert!(
        bodies.iter().all(|b| *b == bodies[0]),
        "same uuids, same body"
    );
}

#[tokio::test]
async fn a_timeout_is_no_answer_that_may_still_run_and_is_not_retried() {
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .respond_with(
            answer(200, "batch-all-success.response.json").set_delay(Duration::from_secs(2)),
        )
        .expect(1)
        .mount(&server)
        .await;
    let mut config = common::config(&server.uri(), API_KEY);
    config.request_timeout = Duration::from_millis(200);
    let client = VerificationClient::new(config).expect("client");
    let error = client
        .issue_batch(&items(1, 1), far())
        .await
        .expect_err("timeout");
    match error {
        IssueError::NoAnswer {
            message,
            may_still_run: true,
        } => assert!(message.contains("no answer within"), "{message}"),
        other => panic!("{other:?}"),
    }
}

/// The fixture's limiter headers, with the dates moved to `at` (the fixture's own
/// dates are in 2021).
fn limiter_headers(at: Option<SystemTime>) -> ResponseTemplate {
    let headers = fixture_json("ratelimit-429.headers.json");
    let date = at.map(|t| {
        chrono::DateTime::<chrono::Utc>::from(t)
            .format("%a, %d %b %Y %H:%M:%S UTC")
            .to_string()
    });
    let mut template = ResponseTemplate::new(429).set_body_raw(
        fixture("ratelimit-429.body.txt"),
        "text/plain; charset=utf-8",
    );
    for (name, value) in headers.as_object().expect("map") {
        let value = value.as_str().expect("text");
        let value = match (name.as_str(), &date) {
            ("Retry-After" | "X-RateLimit-Reset", Some(date)) => date.clone(),
            _ => value.to_owned(),
        };
        if name != "Content-Type" {
            template = template.insert_header(name.as_str(), value.as_str());
        }
    }
    template
}

#[tokio::test]
async fn the_limiter_fixture_is_rate_limited_until_its_retry_after() {
    let server = MockServer::start().await;
    let retry_at = SystemTime::now() + Duration::from_secs(30);
    Mock::given(method("POST"))
        .and(header("x-api-key", API_KEY))
        .respond_with(limiter_headers(Some(retry_at)))
        .expect(1)
        .mount(&server)
        .await;
    let client = issuer(&server);
    let before = Instant::now();
    let error = client
        .issue_batch(&items(1, 2), far())
        .await
        .expect_err("429");
    let IssueError::RateLimited { until } = error else {
        panic!("{error:?}");
    };
    // The date is truncated to the second and we add the second back: 29–31 s ahead.
    let ahead = until - before;
    assert!(
        ahead >= Duration::from_secs(29) && ahead <= Duration::from_millis(31_500),
        "{ahead:?}"
    );
    // The pacer now holds: a call that must finish sooner sends nothing.
    let error = client
        .issue_batch(&items(3, 1), Instant::now() + Duration::from_secs(10))
        .await
        .expect_err("held");
    assert!(
        matches!(error, IssueError::RateLimited { until: u } if u == until),
        "{error:?}"
    );
    assert_eq!(server.received_requests().await.expect("recorded").len(), 1);
}

#[tokio::test]
async fn the_limiter_fixture_as_recorded_is_a_wait_that_is_already_over() {
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .respond_with(limiter_headers(None))
        .mount(&server)
        .await;
    let error = issuer(&server)
        .issue_batch(&items(1, 1), far())
        .await
        .expect_err("429");
    let IssueError::RateLimited { until } = error else {
        panic!("{error:?}");
    };
    assert!(
        until <= Instant::now() + Duration::from_secs(1),
        "a 2021 date is past"
    );
}

#[tokio::test]
async fn a_spent_window_holds_the_next_request_until_the_reset() {
    let server = MockServer::start().await;
    let reset = SystemTime::now() + Duration::from_secs(20);
    let reset = chrono::DateTime::<chrono::Utc>::from(reset)
        .format("%a, %d %b %Y %H:%M:%S UTC")
        .to_string();
    Mock::given(method("POST"))
        .respond_with(
            answer(200, "batch-all-success.response.json")
                .insert_header("X-RateLimit-Limit", "60")
                .insert_header("X-RateLimit-Remaining", "0")
                .insert_header("X-RateLimit-Reset", reset.as_str()),
        )
        .expect(1)
        .mount(&server)
        .await;
    let client = issuer(&server);
    let items = fixture_items("batch-all-success.request.json");
    client.issue_batch(&items, far()).await.expect("issued");
    let error = client
        .issue_batch(
            &common::items(10, 1),
            Instant::now() + Duration::from_secs(10),
        )
        .await
        .expect_err("held");
    let IssueError::RateLimited { until } = error else {
        panic!("{error:?}");
    };
    assert!(
        until > Instant::now() + Duration::from_secs(18),
        "{until:?}"
    );
}

#[tokio::test]
async fn check_reachable_sends_an_empty_batch_and_reports_what_it_proved() {
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .and(path("/api/batch-issue"))
        .respond_with(
            ResponseTemplate::new(200)
                .set_body_raw(r#"{"padding":"eHl6"}"#, "application/json")
                .insert_header("X-RateLimit-Limit", "60")
                .insert_header("X-RateLimit-Remaining", "59")
                .insert_header("X-RateLimit-Reset", "Tue, 15 Jun 2021 18:01:00 UTC"),
        )
        .expect(1)
        .mount(&server)
        .await;
    let report = issuer(&server).check_reachable().await.expect("reachable");
    assert!(report.contains("API key accepted"), "{report}");
    assert!(report.contains("request limit 60"), "{report}");
    let sent: Value = server.received_requests().await.expect("recorded")[0]
        .body_json()
        .expect("json");
    assert_eq!(sent["codes"], Value::Array(Vec::new()), "nothing to issue");

    for (status, name, words) in [
        (401, "unauthorized.response.json", "IP allow-list"),
        (
            400,
            "bulk-disabled.response.json",
            "bulk issuing is not enabled",
        ),
        (429, "maintenance-mode.response.json", "maintenance"),
    ] {
        let server = serve(status, name, 1).await;
        let problem = issuer(&server).check_reachable().await.expect_err(name);
        assert!(problem.contains(words), "{problem}");
    }
    let nobody = common::client("http://127.0.0.1:9", API_KEY);
    let problem = nobody.check_reachable().await.expect_err("closed port");
    assert!(problem.contains("could not reach"), "{problem}");
}

#[tokio::test]
async fn no_request_is_sent_for_an_empty_or_oversized_batch_or_a_passed_deadline() {
    let server = serve(200, "batch-all-success.response.json", 0).await;
    let client = issuer(&server);
    assert_eq!(
        client.issue_batch(&[], far()).await.expect("empty"),
        Vec::new()
    );
    let error = client
        .issue_batch(&items(1, 11), far())
        .await
        .expect_err("eleven");
    assert!(matches!(error, IssueError::Rejected(_)), "{error:?}");
    let error = client
        .issue_batch(&items(1, 2), Instant::now())
        .await
        .expect_err("deadline passed");
    assert!(matches!(error, IssueError::NoTimeLeft), "{error:?}");
}

#[tokio::test]
async fn no_retry_starts_that_would_end_after_the_deadline() {
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .respond_with(ResponseTemplate::new(408))
        .expect(1..=2)
        .mount(&server)
        .await;
    let mut config = common::config(&server.uri(), API_KEY);
    config.transport_backoff.base = Duration::from_secs(30);
    config.transport_backoff.cap = Duration::from_secs(30);
    let client = VerificationClient::new(config).expect("client");
    let started = Instant::now();
    // A request may start until one request timeout (5 s) before the deadline: 300 ms
    // here. The full-jitter wait is uniform in [0, 30 s]: it almost never fits in them,
    // and when it does, the second attempt still starts in time.
    let error = client
        .issue_batch(&items(1, 2), Instant::now() + Duration::from_millis(5_300))
        .await
        .expect_err("unavailable");
    assert!(started.elapsed() < Duration::from_millis(400));
    assert!(matches!(error, IssueError::Unavailable(_)), "{error:?}");
}

#[tokio::test]
async fn pacing_that_cannot_fit_before_the_deadline_is_rate_limited_without_sending() {
    let server = serve(200, "batch-all-success.response.json", 1).await;
    let mut config = common::config(&server.uri(), API_KEY);
    config.requests_per_minute = Some(1);
    let client = VerificationClient::new(config).expect("client");
    let items = fixture_items("batch-all-success.request.json");
    client.issue_batch(&items, far()).await.expect("first slot");
    let error = client
        .issue_batch(&items, Instant::now() + Duration::from_secs(10))
        .await
        .expect_err("next slot is a minute away");
    let IssueError::RateLimited { until } = error else {
        panic!("{error:?}");
    };
    assert!(
        until > Instant::now() + Duration::from_secs(55),
        "{until:?}"
    );
}
