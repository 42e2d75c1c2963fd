//! The verification server simulator over real HTTP: each behaviour of the contract
//! that clients depend on, checked from the outside.

use std::time::Duration;

use ca_notify_simulators::verification::{
    Fault, Faults, RateLimit, RunningSim, SimConfig, VerificationSimulator,
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
    let stats = sim.stats();
    assert_eq!((stats.rate_limited, stats.issued), (1, 0));
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
async fn a_uuid_in_flight_elsewhere_is_a_500_item() {
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
    // Wait until the first request has committed and is in its sends.
    while sim.stats().batches == 0 {
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    let second = post(&sim, vec![item("+12065550100", &uuid(1))]).await;
    assert_eq!(second.status, 500);
    assert_eq!(
        second.json()["codes"][0]["errorCode"],
        "internal_server_error"
    );
    assert_eq!(first.await.expect("task").expect("answer"), 200);
    assert_eq!(sim.texts_to("+12065550100"), 1);
    assert_eq!(sim.stats().in_flight_conflicts, 1);
    assert_eq!(
        post(&sim, vec![item("+12065550100", &uuid(1))])
            .await
            .status,
        409
    );
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
    assert_eq!(answer.json()["codes"][1]["errorCode"], "sms_failure");
    assert_eq!(sim.texts_to("+12065550101"), 1);
    assert_eq!(sim.texts_to("+12065550102"), 0);
    // The server's trap (contract §5.2): the retry is a 409 with no text ever sent.
    assert_eq!(post(&sim, vec![unknown]).await.status, 409);
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
