//! The verification server simulator over real HTTP: each behaviour of the contract
//! that clients depend on, checked from the outside.

use std::time::Duration;

use ca_notify_simulators::verification::{
    Fault, Faults, RateLimit, RunningSim, SimConfig, SmsProvider, SmsSigning, VerificationSimulator,
};
use serde_json::{json, Value};

fn today() -> String {
    chrono::Utc::now()
        .date_naive()
        .format("%Y-%m-%d")
        .to_string()
}

fn item(phone: &str, uuid: &str) -> Value {
    json!({"testDate": today(), "testType": "confirmed", "tzOffset": 0, "phone": phone, "uuid": uuid})
}

fn uuid(n: u32) -> String {
    format!("00000000-0000-4000-8000-{n:012}")
}

struct Answer {
    status: u16,
    headers: reqwest::header::HeaderMap,
    text: String,
}

impl Answer {
    fn json(&self) -> Value {
        serde_json::from_str(&self.text).unwrap_or_else(|e| panic!("{e}: {}", self.text))
    }

    fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|v| v.to_str().ok())
    }
}

async fn post_raw(
    sim: &RunningSim,
    key: &str,
    content_type: &str,
    body: String,
) -> Result<Answer, reqwest::Error> {
    let response = reqwest::Client::new()
        .post(format!("{}/api/batch-issue", sim.base_url()))
        .header("X-API-Key", key)
        .header("Content-Type", content_type)
        .header("Accept", "application/json")
        .body(body)
        .send()
        .await?;
    Ok(Answer {
        status: response.status().as_u16(),
        headers: response.headers().clone(),
        text: response.text().await?,
    })
}

/// A client that gives up after `timeout`, closing its connection, as a timed-out
/// client does.
async fn post_giving_up_after(
    sim: &RunningSim,
    codes: Vec<Value>,
    timeout: Duration,
) -> Result<Answer, reqwest::Error> {
    let response = reqwest::Client::builder()
        .timeout(timeout)
        .build()?
        .post(format!("{}/api/batch-issue", sim.base_url()))
        .header("X-API-Key", sim.api_key())
        .header("Content-Type", "application/json")
        .body(json!({ "codes": codes }).to_string())
        .send()
        .await?;
    Ok(Answer {
        status: response.status().as_u16(),
        headers: response.headers().clone(),
        text: response.text().await?,
    })
}

async fn post(sim: &RunningSim, codes: Vec<Value>) -> Answer {
    let body = json!({"padding": "cGFkZGluZw==", "codes": codes}).to_string();
    post_raw(sim, &sim.api_key(), "application/json", body)
        .await
        .expect("answer")
}

async fn start(config: SimConfig) -> RunningSim {
    VerificationSimulator::start(config)
        .await
        .expect("simulator")
}

#[tokio::test]
async fn a_wrong_api_key_is_401_without_limiter_headers() {
    let sim = start(SimConfig::default()).await;
    let answer = post_raw(&sim, "wrong", "application/json", r#"{"codes":[]}"#.into())
        .await
        .expect("answer");
    assert_eq!(answer.status, 401);
    assert_eq!(
        answer.json(),
        json!({"error": "unauthorized", "errorCode": "", "error_code": ""})
    );
    assert_eq!(answer.header("x-ratelimit-limit"), None);
    assert_eq!(sim.stats().unauthorized, 1);
}

#[tokio::test]
async fn bad_requests_are_refused_as_the_server_does() {
    let sim = start(SimConfig::default()).await;
    let key = sim.api_key();
    let wrong_type = post_raw(&sim, &key, "text/plain", r#"{"codes":[]}"#.into())
        .await
        .expect("answer");
    assert_eq!(wrong_type.status, 400);
    assert_eq!(wrong_type.json()["errorCode"], "unparsable_request");

    let mut unknown = item("+12065550100", &uuid(1));
    unknown["color"] = json!("red");
    let answer = post(&sim, vec![unknown]).await;
    assert_eq!(answer.status, 400);
    assert_eq!(answer.json()["errorCode"], "unparsable_request");
    assert_eq!(answer.json()["error"], "json: unknown field \"color\"");

    let eleven = (0..11).map(|i| item("+12065550100", &uuid(i))).collect();
    let answer = post(&sim, eleven).await;
    assert_eq!(answer.status, 400);
    assert_eq!(
        answer.json(),
        json!({"error": "batch size limit [10] exceeded", "errorCode": "", "error_code": ""})
    );
    assert_eq!(sim.ledger().total(), 0);
}

#[tokio::test]
async fn an_empty_batch_is_200_with_nothing_issued() {
    let sim = start(SimConfig::default()).await;
    let answer = post(&sim, Vec::new()).await;
    assert_eq!(answer.status, 200);
    let body = answer.json();
    assert!(body.get("codes").is_none(), "{body}");
    assert!(body["padding"].as_str().is_some_and(|p| p.len() > 1000));
    assert_eq!(sim.stats().issued, 0);
}

#[tokio::test]
async fn partial_failure_takes_the_first_failing_items_status() {
    let sim = start(SimConfig::default()).await;
    let answer = post(
        &sim,
        vec![
            item("+12068675310", &uuid(1)),
            item("not-a-phone", &uuid(2)),
            item("+12025550177", &uuid(3)),
            json!({"testDate": today(), "testType": "antibody", "phone": "+12025550178", "uuid": uuid(4)}),
        ],
    )
    .await;
    assert_eq!(answer.status, 400);
    let body = answer.json();
    assert_eq!(body["errorCode"], "phone_number_invalid");
    assert_eq!(
        body["error"],
        "Failed to issue 2 codes. Issued 2 codes successfully.See each error status in the codes array."
    );
    let codes = body["codes"].as_array().expect("codes");
    assert_eq!(codes[0]["uuid"], uuid(1));
    assert_eq!(codes[0]["padding"], "");
    assert!(codes[0]["code"].as_str().is_some_and(|c| c.len() == 8));
    assert!(codes[0]["expiresAt"]
        .as_str()
        .is_some_and(|t| t.ends_with(" UTC")));
    assert_eq!(codes[1]["errorCode"], "phone_number_invalid");
    // No `omitempty` on these in the server's struct: a failed item has them empty.
    assert_eq!(codes[1]["uuid"], "");
    assert_eq!(codes[1]["code"], "");
    assert_eq!(codes[1]["expiresAtTimestamp"], 0);
    assert!(codes[1].get("longExpiresAt").is_none());
    assert_eq!(
        codes[1]["error"],
        "phonenumbers.Parse: the phone number supplied is not a number"
    );
    assert_eq!(codes[3]["errorCode"], "invalid_test_type");
    assert_eq!(sim.texts_to("+12068675310"), 1);
    assert_eq!(sim.texts_to("+12025550177"), 1);
    assert_eq!(sim.ledger().total(), 2);
}

#[tokio::test]
async fn a_repeated_uuid_is_409_and_not_texted_again() {
    let sim = start(SimConfig::default()).await;
    let batch = vec![
        item("+12065550101", &uuid(1)),
        item("+12065550102", &uuid(2)),
    ];
    assert_eq!(post(&sim, batch.clone()).await.status, 200);
    let again = post(&sim, batch).await;
    assert_eq!(again.status, 409);
    let body = again.json();
    assert_eq!(body["errorCode"], "uuid_already_exists");
    assert_eq!(
        body["codes"][0]["error"],
        format!("code for {} already exists", uuid(1))
    );
    assert_eq!(sim.ledger().total(), 2);
    assert!(sim.is_issued(&uuid(1)));

    // The same uuid twice in one batch: commits run in order, the second finds the first.
    let twice = post(
        &sim,
        vec![
            item("+12065550103", &uuid(3)),
            item("+12065550103", &uuid(3)),
        ],
    )
    .await;
    assert_eq!(twice.status, 409);
    assert_eq!(twice.json()["codes"][0]["errorCode"], Value::Null);
    assert_eq!(sim.texts_to("+12065550103"), 1);
}

#[tokio::test]
async fn the_limiter_answers_plain_text_429_with_a_utc_retry_after() {
    let sim = start(SimConfig {
        rate_limit: Some(RateLimit::per_minute(2)),
        ..SimConfig::default()
    })
    .await;
    let first = post(&sim, Vec::new()).await;
    assert_eq!(first.header("x-ratelimit-limit"), Some("2"));
    assert_eq!(first.header("x-ratelimit-remaining"), Some("1"));
    let reset = first.header("x-ratelimit-reset").expect("reset").to_owned();
    assert!(reset.ends_with(" UTC"), "{reset}");
    assert_eq!(first.header("retry-after"), None);
    post(&sim, Vec::new()).await;
    let limited = post(&sim, vec![item("+12065550100", &uuid(1))]).await;
    assert_eq!(limited.status, 429);
    assert_eq!(limited.text, "Too Many Requests\n");
    assert_eq!(
        limited.header("content-type"),
        Some("text/plain; charset=utf-8")
    );
    assert_eq!(limited.header("retry-after"), Some(reset.as_str()));
    assert_eq!(limited.header("x-ratelimit-remaining"), Some("0"));
    assert!(limited.header("date").is_some(), "the 429 is dated too");
    let stats = sim.stats();
    assert_eq!((stats.rate_limited, stats.issued), (1, 0));
}

/// An RFC 1123 date with `UTC` or `GMT`, as seconds since the epoch.
fn epoch_secs(date: &str) -> i64 {
    let gmt = date
        .trim_end_matches(" UTC")
        .trim_end_matches(" GMT")
        .to_owned()
        + " GMT";
    chrono::DateTime::parse_from_rfc2822(&gmt)
        .unwrap_or_else(|e| panic!("{date}: {e}"))
        .timestamp()
}

#[tokio::test]
async fn the_limiter_announces_its_window_on_every_answer_against_the_date() {
    for per_minute in [60u32, 120] {
        let sim = start(SimConfig {
            rate_limit: Some(RateLimit::per_minute(per_minute)),
            ..SimConfig::default()
        })
        .await;
        let first = post(&sim, vec![item("+12065550100", &uuid(1))]).await;
        assert_eq!(first.status, 200);
        let limit = per_minute.to_string();
        let left = (per_minute - 1).to_string();
        assert_eq!(first.header("x-ratelimit-limit"), Some(limit.as_str()));
        assert_eq!(first.header("x-ratelimit-remaining"), Some(left.as_str()));
        // The window is one minute from the bucket's first use, on the server's clock,
        // which the answer's Date shows (both truncated to the second).
        let reset = epoch_secs(first.header("x-ratelimit-reset").expect("reset"));
        let date = epoch_secs(first.header("date").expect("every answer is dated"));
        assert!((59..=61).contains(&(reset - date)), "{}", reset - date);
        // An answer refused by the handler still went through the limiter.
        let refused = post(&sim, vec![item("+12065550101", "not-a-uuid")]).await;
        assert_eq!(refused.header("x-ratelimit-limit"), Some(limit.as_str()));
        let after_two = (per_minute - 2).to_string();
        assert_eq!(
            refused.header("x-ratelimit-remaining"),
            Some(after_two.as_str())
        );
    }
}

#[tokio::test]
async fn the_daily_quota_is_taken_per_item() {
    let sim = start(SimConfig {
        daily_quota: Some(2),
        ..SimConfig::default()
    })
    .await;
    let answer = post(
        &sim,
        (1..=3)
            .map(|i| item(&format!("+1206555010{i}"), &uuid(i)))
            .collect(),
    )
    .await;
    assert_eq!(answer.status, 429);
    let body = answer.json();
    assert_eq!(body["errorCode"], "quota_exceeded");
    assert_eq!(body["codes"][2]["errorCode"], "quota_exceeded");
    assert!(body["codes"][1]["code"].is_string());
    assert_eq!(sim.ledger().total(), 2);
    // A repeat does not spend quota: the lookup comes first.
    assert_eq!(
        post(&sim, vec![item("+12065550101", &uuid(1))])
            .await
            .status,
        409
    );
}

#[tokio::test]
async fn maintenance_refuses_the_whole_request() {
    let sim = start(SimConfig::default()).await;
    sim.set_maintenance(true);
    let answer = post(&sim, vec![item("+12065550100", &uuid(1))]).await;
    assert_eq!(answer.status, 429);
    assert_eq!(
        answer.json(),
        json!({"error": "server is read-only for maintenance", "errorCode": "maintenance_mode", "error_code": "maintenance_mode"})
    );
    assert_eq!(sim.ledger().total(), 0);
}

#[tokio::test]
async fn a_uuid_another_request_is_still_sending_is_409_as_its_row_is_committed() {
    let sim = start(SimConfig {
        latency: Duration::from_millis(400),
        ..SimConfig::default()
    })
    .await;
    let first = {
        let body = json!({"codes": [item("+12065550100", &uuid(1))]}).to_string();
        let (url, key) = (sim.base_url(), sim.api_key());
        tokio::spawn(async move {
            reqwest::Client::new()
                .post(format!("{url}/api/batch-issue"))
                .header("X-API-Key", key)
                .header("Content-Type", "application/json")
                .body(body)
                .send()
                .await
                .map(|r| r.status().as_u16())
        })
    };
    // Wait (at most 10 s) until the first request has committed and is in its sends.
    for waited in 0.. {
        if sim.stats().batches > 0 {
            break;
        }
        assert!(waited < 2_000, "the first request never committed");
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    let second = post(&sim, vec![item("+12065550100", &uuid(1))]).await;
    assert_eq!(second.status, 409);
    assert_eq!(
        second.json()["codes"][0]["errorCode"],
        "uuid_already_exists"
    );
    assert_eq!(first.await.expect("task").expect("answer"), 200);
    assert_eq!(sim.texts_to("+12065550100"), 1);
    assert!(sim.is_issued(&uuid(1)));
    let stats = sim.stats();
    assert_eq!((stats.already_exists, stats.in_flight_conflicts), (1, 1));
}

#[tokio::test]
async fn faults_after_issuing_still_text_and_register() {
    let sim = start(SimConfig {
        faults: Faults::scripted([Fault::ErrorAfterIssue, Fault::DropAfterIssue]),
        ..SimConfig::default()
    })
    .await;
    let error = post(&sim, vec![item("+12065550101", &uuid(1))]).await;
    assert_eq!(error.status, 500);
    assert_eq!(error.json(), json!({"error": "Internal Server Error"}));
    assert_eq!(sim.texts_to("+12065550101"), 1);

    let body = json!({"codes": [item("+12065550102", &uuid(2))]}).to_string();
    let dropped = post_raw(&sim, &sim.api_key(), "application/json", body).await;
    assert!(dropped.is_err(), "the connection closes with no answer");
    assert_eq!(sim.texts_to("+12065550102"), 1);
    assert!(sim.is_issued(&uuid(2)));
    let stats = sim.stats();
    assert_eq!((stats.injected_errors, stats.dropped_connections), (1, 1));
}

#[tokio::test]
async fn a_drop_before_issuing_does_nothing() {
    let sim = start(SimConfig {
        faults: Faults::scripted([Fault::DropBeforeIssue]),
        rate_limit: Some(RateLimit::per_minute(10)),
        ..SimConfig::default()
    })
    .await;
    let body = json!({"codes": [item("+12065550101", &uuid(1))]}).to_string();
    assert!(post_raw(&sim, &sim.api_key(), "application/json", body)
        .await
        .is_err());
    assert_eq!(sim.ledger().total(), 0);
    assert!(!sim.is_issued(&uuid(1)));
    let next = post(&sim, Vec::new()).await;
    assert_eq!(
        next.header("x-ratelimit-remaining"),
        Some("8"),
        "the dropped request took its token"
    );
}

#[tokio::test]
async fn a_failed_send_deletes_the_code_so_a_retry_texts() {
    let sim = start(SimConfig {
        faults: Faults::scripted([Fault::SmsFailure(vec![1])]),
        ..SimConfig::default()
    })
    .await;
    let batch = vec![
        item("+12065550101", &uuid(1)),
        item("+12065550102", &uuid(2)),
    ];
    let answer = post(&sim, batch.clone()).await;
    assert_eq!(answer.status, 400);
    let failed = &answer.json()["codes"][1];
    assert_eq!(failed["errorCode"], "sms_failure");
    assert!(
        failed["error"]
            .as_str()
            .is_some_and(|e| e.contains("+12065550102")),
        "Twilio's text names the number, as the real server's does"
    );
    assert!(!sim.is_issued(&uuid(2)));
    let retry = post(&sim, batch).await;
    let codes = retry.json()["codes"].clone();
    assert_eq!(codes[0]["errorCode"], "uuid_already_exists");
    assert!(codes[1]["code"].is_string());
    assert_eq!(sim.texts_to("+12065550101"), 1);
    assert_eq!(sim.texts_to("+12065550102"), 1);
}

#[tokio::test]
async fn an_unknown_template_keeps_the_code_and_sends_nothing() {
    let sim = start(SimConfig {
        sms_template_labels: vec!["Spanish".into()],
        ..SimConfig::default()
    })
    .await;
    let mut known = item("+12065550101", &uuid(1));
    known["smsTemplateLabel"] = json!("Spanish");
    let mut unknown = item("+12065550102", &uuid(2));
    unknown["smsTemplateLabel"] = json!("Klingon");
    let answer = post(&sim, vec![known, unknown.clone()]).await;
    assert_eq!(answer.status, 400, "SendSMS sets 400");
    let body = answer.json();
    assert_eq!(body["errorCode"], "sms_failure");
    assert_eq!(
        body["error"],
        "Failed to issue 1 codes. Issued 1 codes successfully.See each error status in the codes array."
    );
    assert_eq!(
        body["codes"][1],
        json!({
            "padding": "", "uuid": "", "code": "", "expiresAt": "", "expiresAtTimestamp": 0,
            "error": "failed to send sms: failed to build sms message: no template found for label Klingon",
            "errorCode": "sms_failure",
        })
    );
    assert_eq!(sim.texts_to("+12065550101"), 1);
    assert_eq!(sim.texts_to("+12065550102"), 0);
    assert!(sim.is_issued(&uuid(2)), "the build fails before any delete");
    // The server's trap: the retry is a 409 with no text ever sent.
    let retry = post(&sim, vec![unknown]).await;
    assert_eq!(retry.status, 409);
    assert_eq!(retry.json()["codes"][0]["errorCode"], "uuid_already_exists");
    assert_eq!(sim.texts_to("+12065550102"), 0);
    let stats = sim.stats();
    assert_eq!((stats.build_failures, stats.sms_failures), (1, 1));
}

#[tokio::test]
async fn a_realm_without_alternate_templates_sends_any_label_with_the_default() {
    let sim = start(SimConfig::default()).await;
    let mut labelled = item("+12065550101", &uuid(1));
    labelled["smsTemplateLabel"] = json!("Klingon");
    assert_eq!(post(&sim, vec![labelled]).await.status, 200);
    assert_eq!(sim.texts_to("+12065550101"), 1);
}

#[tokio::test]
async fn signing_that_fails_closed_keeps_every_row_and_texts_nobody() {
    let sim = start(SimConfig {
        sms_signing: SmsSigning::FailsClosed,
        ..SimConfig::default()
    })
    .await;
    let batch = vec![
        item("+12065550101", &uuid(1)),
        item("+12065550102", &uuid(2)),
    ];
    let answer = post(&sim, batch.clone()).await;
    assert_eq!(answer.status, 400);
    let body = answer.json();
    for failed in body["codes"].as_array().expect("codes") {
        assert_eq!(failed["errorCode"], "sms_failure");
        assert!(
            failed["error"]
                .as_str()
                .is_some_and(|e| e.starts_with("failed to send sms: failed to sign sms: ")),
            "{failed}"
        );
    }
    assert_eq!(sim.ledger().total(), 0);
    assert!(sim.is_issued(&uuid(1)) && sim.is_issued(&uuid(2)));
    // Fixing the realm does not help these two: their rows stand.
    sim.set_sms_signing(SmsSigning::Off);
    assert_eq!(post(&sim, batch).await.status, 409);
    assert_eq!(sim.ledger().total(), 0);
    assert_eq!(sim.stats().build_failures, 2);
}

#[tokio::test]
async fn a_failed_delete_keeps_the_row_so_the_retry_is_409_without_a_text() {
    let sim = start(SimConfig {
        delete_fails: true,
        faults: Faults::scripted([Fault::SmsFailure(vec![0])]),
        ..SimConfig::default()
    })
    .await;
    let answer = post(&sim, vec![item("+12065550101", &uuid(1))]).await;
    assert_eq!(answer.status, 400);
    assert_eq!(answer.json()["codes"][0]["errorCode"], "sms_failure");
    assert_eq!(sim.texts_to("+12065550101"), 0);
    assert!(sim.is_issued(&uuid(1)), "the delete failed");
    assert_eq!(
        post(&sim, vec![item("+12065550101", &uuid(1))])
            .await
            .status,
        409
    );
    assert_eq!(sim.texts_to("+12065550101"), 0);

    // Random send failures too; and once deletes work again, a failed send is retried.
    sim.set_faults(Faults {
        sms_failure: 1.0,
        ..Faults::default()
    });
    post(&sim, vec![item("+12065550102", &uuid(2))]).await;
    assert!(sim.is_issued(&uuid(2)));
    sim.set_delete_fails(false);
    post(&sim, vec![item("+12065550103", &uuid(3))]).await;
    assert!(!sim.is_issued(&uuid(3)));
    sim.set_faults(Faults::default());
    assert_eq!(
        post(&sim, vec![item("+12065550103", &uuid(3))])
            .await
            .status,
        200
    );
    assert_eq!(sim.ledger().total(), 1);
    let stats = sim.stats();
    assert_eq!((stats.failed_deletes, stats.sms_failures), (2, 3));
}

#[tokio::test]
async fn a_realm_without_an_sms_provider_answers_400_with_no_error_code() {
    let sim = start(SimConfig::default()).await;
    assert_eq!(
        post(&sim, vec![item("+12065550101", &uuid(1))])
            .await
            .status,
        200
    );
    sim.set_sms_provider(SmsProvider::Missing);
    let no_phone = json!({"testDate": today(), "testType": "confirmed", "uuid": uuid(3)});
    let answer = post(
        &sim,
        vec![
            item("+12065550101", &uuid(1)),
            item("+12065550102", &uuid(2)),
            no_phone,
        ],
    )
    .await;
    assert_eq!(answer.status, 400);
    let body = answer.json();
    assert!(body.get("errorCode").is_none(), "{body}");
    for index in [0, 1] {
        let failed = &body["codes"][index];
        assert_eq!(
            failed["error"],
            "phone provided, but no sms provider is configured"
        );
        assert!(failed.get("errorCode").is_none(), "{failed}");
    }
    // The provider check comes before the uuid lookup: even a stored uuid gets the 400.
    assert!(sim.is_issued(&uuid(1)));
    assert!(!sim.is_issued(&uuid(2)), "nothing stored");
    assert!(sim.is_issued(&uuid(3)), "no phone, no provider needed");
    assert_eq!(sim.ledger().total(), 1);
    assert_eq!(sim.stats().no_sms_provider, 2);
}

#[tokio::test]
async fn a_provider_failing_to_load_after_the_commits_answers_every_item_internal_error() {
    let sim = start(SimConfig {
        daily_quota: Some(3),
        sms_provider: SmsProvider::LoadFails,
        ..SimConfig::default()
    })
    .await;
    let batch = vec![
        item("+12065550101", &uuid(1)),
        item("+12065550102", &uuid(2)),
    ];
    let answer = post(&sim, batch.clone()).await;
    // errorAll leaves each item's HTTP status alone: committed items keep 200.
    assert_eq!(answer.status, 200);
    let body = answer.json();
    assert_eq!(body["errorCode"], "internal_server_error");
    assert_eq!(
        body["error"],
        "Failed to issue 2 codes.See each error status in the codes array."
    );
    for failed in body["codes"].as_array().expect("codes") {
        assert_eq!(failed["error"], "internal error");
        assert_eq!(failed["errorCode"], "internal_server_error");
        assert_eq!(failed["uuid"], "");
    }
    assert_eq!(sim.ledger().total(), 0);
    assert!(
        sim.is_issued(&uuid(1)) && sim.is_issued(&uuid(2)),
        "committed"
    );

    // A stored uuid first: its 409 status comes through, under errorAll's code.
    let mixed = post(
        &sim,
        vec![
            item("+12065550101", &uuid(1)),
            item("+12065550103", &uuid(3)),
        ],
    )
    .await;
    assert_eq!(mixed.status, 409);
    assert_eq!(mixed.json()["errorCode"], "internal_server_error");
    assert_eq!(
        mixed.json()["codes"][0]["errorCode"],
        "internal_server_error"
    );

    sim.set_sms_provider(SmsProvider::Configured);
    let retry = post(&sim, batch).await;
    assert_eq!(retry.status, 409, "the rows stand, untexted");
    let quota = post(&sim, vec![item("+12065550104", &uuid(4))]).await;
    assert_eq!(
        quota.json()["codes"][0]["errorCode"],
        "quota_exceeded",
        "the three commits took the quota"
    );
    assert_eq!(sim.ledger().total(), 0);
    assert_eq!(sim.stats().error_all_items, 4);
}

#[tokio::test]
async fn a_provider_that_never_loads_stores_nothing_for_a_phone() {
    let sim = start(SimConfig {
        sms_provider: SmsProvider::LoadFailsBeforeCommit,
        ..SimConfig::default()
    })
    .await;
    let no_phone = json!({"testDate": today(), "testType": "confirmed", "uuid": uuid(2)});
    let answer = post(&sim, vec![item("+12065550101", &uuid(1)), no_phone]).await;
    assert_eq!(answer.status, 500);
    let body = answer.json();
    for failed in body["codes"].as_array().expect("codes") {
        assert_eq!(failed["error"], "internal error");
        assert_eq!(failed["errorCode"], "internal_server_error");
    }
    assert!(!sim.is_issued(&uuid(1)));
    assert!(sim.is_issued(&uuid(2)), "stored, then errorAll");
    assert_eq!(sim.ledger().total(), 0);
}

#[tokio::test]
async fn a_client_gone_before_the_provider_accepted_texts_nobody_and_deletes_the_codes() {
    let sim = start(SimConfig {
        latency: Duration::from_secs(3),
        sms_accept_after: Duration::from_millis(1500),
        ..SimConfig::default()
    })
    .await;
    let batch = vec![
        item("+12065550101", &uuid(1)),
        item("+12065550102", &uuid(2)),
    ];
    let gave_up = post_giving_up_after(&sim, batch.clone(), Duration::from_millis(300)).await;
    assert!(gave_up.is_err_and(|e| e.is_timeout()));
    sim.settled().await;
    assert_eq!(sim.ledger().total(), 0);
    assert!(!sim.is_issued(&uuid(1)) && !sim.is_issued(&uuid(2)));
    let stats = sim.stats();
    assert_eq!(
        (stats.cancelled_sends, stats.texts_on_cancelled_sends),
        (2, 0)
    );
    // The retry starts afresh and texts each person once.
    sim.set_latency(Duration::ZERO);
    let retry = post(&sim, batch).await;
    assert_eq!(retry.status, 200);
    assert_eq!(sim.texts_to("+12065550101"), 1);
    assert_eq!(sim.texts_to("+12065550102"), 1);
}

#[tokio::test]
async fn a_client_gone_after_the_provider_accepted_leaves_a_text_and_no_code() {
    let sim = start(SimConfig {
        latency: Duration::from_secs(3),
        ..SimConfig::default()
    })
    .await;
    let batch = vec![item("+12065550101", &uuid(1))];
    let gave_up = post_giving_up_after(&sim, batch.clone(), Duration::from_millis(300)).await;
    assert!(gave_up.is_err_and(|e| e.is_timeout()));
    sim.settled().await;
    assert_eq!(sim.texts_to("+12065550101"), 1, "the provider had it");
    assert_eq!(
        sim.ledger().dead_texts_to("+12065550101"),
        1,
        "its code was deleted"
    );
    assert!(
        !sim.is_issued(&uuid(1)),
        "the cancelled send deleted the code"
    );
    let stats = sim.stats();
    assert_eq!(
        (stats.cancelled_sends, stats.texts_on_cancelled_sends),
        (1, 1)
    );
    // The next attempt issues a fresh code and texts the person again.
    sim.set_latency(Duration::ZERO);
    assert_eq!(post(&sim, batch).await.status, 200);
    assert_eq!(sim.texts_to("+12065550101"), 2);
    assert_eq!(sim.ledger().live_texts_to("+12065550101"), 1);
    assert_eq!(sim.ledger().phones_with_more_than_one_live_text(), 0);
}

#[tokio::test]
async fn a_client_gone_with_a_failing_delete_leaves_a_row_and_no_text() {
    let sim = start(SimConfig {
        latency: Duration::from_secs(3),
        sms_accept_after: Duration::from_secs(2),
        delete_fails: true,
        ..SimConfig::default()
    })
    .await;
    let batch = vec![item("+12065550101", &uuid(1))];
    assert!(
        post_giving_up_after(&sim, batch.clone(), Duration::from_millis(300))
            .await
            .is_err()
    );
    sim.settled().await;
    assert!(sim.is_issued(&uuid(1)));
    sim.set_latency(Duration::ZERO);
    assert_eq!(post(&sim, batch).await.status, 409);
    assert_eq!(sim.ledger().total(), 0);
    assert_eq!(sim.stats().failed_deletes, 1);
}

#[tokio::test]
async fn a_patient_client_gets_its_answer_and_the_drop_fault_cancels_nothing() {
    let sim = start(SimConfig {
        latency: Duration::from_millis(300),
        sms_accept_after: Duration::from_millis(100),
        faults: Faults::scripted([Fault::None, Fault::DropAfterIssue]),
        ..SimConfig::default()
    })
    .await;
    let answer = post_giving_up_after(
        &sim,
        vec![item("+12065550101", &uuid(1))],
        Duration::from_secs(30),
    )
    .await
    .expect("answer");
    assert_eq!(answer.status, 200);
    // The server itself drops this one, after its sends finished.
    assert!(post_giving_up_after(
        &sim,
        vec![item("+12065550102", &uuid(2))],
        Duration::from_secs(30)
    )
    .await
    .is_err());
    sim.settled().await;
    assert!(sim.is_issued(&uuid(1)) && sim.is_issued(&uuid(2)));
    assert_eq!(sim.ledger().total(), 2);
    assert_eq!(sim.stats().cancelled_sends, 0);
}

#[tokio::test]
async fn a_purge_forgets_uuids_so_the_same_uuid_is_texted_again() {
    let sim = start(SimConfig::default()).await;
    let batch = vec![item("+12065550101", &uuid(1))];
    assert_eq!(post(&sim, batch.clone()).await.status, 200);
    assert_eq!(post(&sim, batch.clone()).await.status, 409);
    assert_eq!(sim.purge_uuids(), 1);
    assert!(!sim.is_issued(&uuid(1)));
    assert_eq!(sim.texts_to("+12065550101"), 1, "the ledger is kept");
    assert_eq!(post(&sim, batch).await.status, 200);
    assert_eq!(sim.texts_to("+12065550101"), 2);
    let stats = sim.stats();
    assert_eq!((stats.purges, stats.purged_uuids), (1, 1));
}

#[tokio::test]
async fn checkcodestatus_reports_issued_codes() {
    let sim = start(SimConfig::default()).await;
    post(&sim, vec![item("+12065550101", &uuid(1))]).await;
    let client = reqwest::Client::new();
    for (id, want) in [(uuid(1), 200), (uuid(9), 404)] {
        let response = client
            .post(format!("{}/api/checkcodestatus", sim.base_url()))
            .header("X-API-Key", sim.api_key())
            .header("Content-Type", "application/json")
            .body(json!({"uuid": id}).to_string())
            .send()
            .await
            .expect("answer");
        assert_eq!(response.status().as_u16(), want);
    }
}

#[tokio::test]
async fn random_faults_are_reproducible_from_the_seed() {
    async fn outcomes(seed: u64) -> Vec<u16> {
        let sim = start(SimConfig {
            seed,
            faults: Faults {
                error_after_issue: 0.3,
                ..Faults::default()
            },
            ..SimConfig::default()
        })
        .await;
        let mut statuses = Vec::new();
        for i in 0..20 {
            statuses.push(
                post(&sim, vec![item("+12065550100", &uuid(100 + i))])
                    .await
                    .status,
            );
        }
        statuses
    }
    let a = outcomes(7).await;
    assert_eq!(a, outcomes(7).await);
    assert!(a.contains(&500) && a.contains(&200), "{a:?}");
}
