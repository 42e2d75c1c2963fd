//! The Snowflake store against hand-written Snowflake answers (`tests/fixtures/wire/`),
//! served over real HTTP on 127.0.0.1 by wiremock.
//!
//! fakesnow's answers pass through the project's shim, so the fakesnow tests only prove
//! that the store decodes what the shim makes. These fixtures are written in the driver
//! protocol's JSON form as a real account sends it (typed `rowtype`, dates as days since
//! 1970, timestamps as epoch seconds, narrow `NUMBER`s), and check the requests the store
//! sends: binds typed and in order, the same token in the claim and its read-back.

use std::time::Duration;

use ca_notify_adapter_snowflake::{
    SnowflakeAuth, SnowflakeConfig, SnowflakeStore, SourceTable, StoreError,
};
use ca_notify_domain::{ClaimToken, NotSentReason, Outcome, RawPhone, RecordId, RecordOutcome};
use ca_notify_ports::{PhoneSource, ResultSink, SinkError, SourceError};
use serde_json::Value;
use wiremock::matchers::{body_string_contains, method, path};
use wiremock::{Mock, MockServer, Request, ResponseTemplate};

const LEASE: Duration = Duration::from_secs(300);

fn fixture(name: &str) -> String {
    let path = format!("{}/tests/fixtures/wire/{name}", env!("CARGO_MANIFEST_DIR"));
    std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{path}: {e}"))
}

fn answer(name: &str) -> ResponseTemplate {
    ResponseTemplate::new(200).set_body_raw(fixture(name), "application/json")
}

fn config(server: &MockServer) -> SnowflakeConfig {
    SnowflakeConfig {
        account: "myorg-myaccount".into(),
        user: "CA_NOTIFY".into(),
        auth: SnowflakeAuth::Password("fixture-password".to_owned().into()),
        warehouse: Some("NOTIFY_WH".into()),
        database: "COVID".into(),
        schema: "PUBLIC".into(),
        role: Some("NOTIFIER".into()),
        base_url: Some(server.uri()),
        table: SourceTable {
            test_date_column: Some("TEST_DATE".into()),
            symptom_date_column: Some("SYMPTOM_DATE".into()),
            test_type_column: Some("TEST_TYPE".into()),
            tz_offset_column: Some("TZ_OFFSET".into()),
            arrived_at_column: None,
            ..SourceTable::new("POSITIVES", "ID", "PHONE")
        },
        state_table: "CA_NOTIFY_STATE".into(),
        worker_id: "worker-1".into(),
        lock_timeout_secs: 60,
        statement_timeout_secs: 120,
        run_id: None,
    }
}

/// A mock account that accepts `logins` logins.
async fn account(logins: u64) -> MockServer {
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .and(path("/session/v1/login-request"))
        .respond_with(answer("login_ok.json"))
        .expect(logins)
        .mount(&server)
        .await;
    server
}

async fn query_answer(server: &MockServer, sql_fragment: &str, fixture_name: &str) {
    Mock::given(method("POST"))
        .and(path("/queries/v1/query-request"))
        .and(body_string_contains(sql_fragment))
        .respond_with(answer(fixture_name))
        .mount(server)
        .await;
}

/// The JSON bodies of the statements the store sent.
async fn statements(server: &MockServer) -> Vec<Value> {
    server
        .received_requests()
        .await
        .expect("recording is on")
        .iter()
        .filter(|r: &&Request| r.url.path() == "/queries/v1/query-request")
        .map(|r| serde_json::from_slice(&r.body).expect("a JSON body"))
        .collect()
}

fn invalid(id: &str) -> RecordOutcome {
    RecordOutcome::new(
        RecordId::new(id),
        None,
        Outcome::not_sent(NotSentReason::InvalidNumber {
            detail: "too_short".into(),
        }),
    )
}

/// Answers for every statement of a claim that finds records: the hint, the transaction
/// (`BEGIN`, the lock, the new rows, the stamps, `COMMIT`) and the read-back.
async fn claim_answers(server: &MockServer) {
    query_answer(server, "SELECT 1 AS PENDING", "claim_hint_pending.json").await;
    query_answer(server, "BEGIN TRANSACTION", "statement_ok.json").await;
    query_answer(server, "SET HOLDER = ?", "dml_updated_1.json").await;
    query_answer(
        server,
        "(RECORD_ID, ATTEMPTS, UPDATED_AT)",
        "adopt_inserted_2.json",
    )
    .await;
    query_answer(
        server,
        "SET CLAIM_TOKEN = c.CLAIM_TOKEN",
        "claim_updated_3.json",
    )
    .await;
    query_answer(server, "COMMIT", "statement_ok.json").await;
    query_answer(server, "QUALIFY ROW_NUMBER()", "read_claimed.json").await;
}

#[tokio::test]
async fn a_claim_decodes_snowflake_typed_rows_and_binds_one_token_throughout() {
    let server = account(1).await;
    claim_answers(&server).await;
    let store = SnowflakeStore::connect(config(&server))
        .await
        .expect("connect");

    let claim = store.claim(10, LEASE).await.expect("claim");

    let r = &claim.records;
    assert_eq!(r.len(), 3);
    assert_eq!(r[0].id, RecordId::new("1001"));
    assert!(r[0].phone == Some(RawPhone::new("(415) 555-0101")));
    assert_eq!(r[0].test_date.as_deref(), Some("2021-06-01"));
    assert_eq!(r[0].symptom_date.as_deref(), Some("2021-05-30 00:00:00"));
    assert_eq!(r[0].test_type.as_deref(), Some("confirmed"));
    assert_eq!(r[0].tz_offset, Some(-420));
    assert_eq!(r[1].id, RecordId::new("1002"));
    assert_eq!(
        (&r[1].phone, &r[1].test_date, &r[1].symptom_date),
        (&None, &None, &None)
    );
    assert_eq!((&r[1].test_type, r[1].tz_offset), (&None, None));
    assert_eq!(r[2].id, RecordId::new("x'); DROP TABLE POSITIVES; --"));
    assert_eq!(r[2].test_date.as_deref(), Some("2021-05-28"));

    let sent = statements(&server).await;
    let texts: Vec<&str> = sent
        .iter()
        .map(|s| s["sqlText"].as_str().expect("sql"))
        .collect();
    assert_eq!(texts.len(), 7, "{texts:#?}");
    assert!(texts[0].starts_with("SELECT 1 AS PENDING"), "{texts:#?}");
    assert_eq!(texts[1], "BEGIN TRANSACTION");
    assert!(texts[2].contains("SET HOLDER = ?"), "{texts:#?}");
    assert!(texts[3].starts_with("INSERT INTO"), "{texts:#?}");
    assert!(
        texts[4].contains("SET CLAIM_TOKEN = c.CLAIM_TOKEN"),
        "{texts:#?}"
    );
    assert_eq!(texts[5], "COMMIT");
    let (lock, stamp, read) = (&sent[2], &sent[4], &sent[6]);
    assert_eq!(lock["bindings"]["1"]["value"], "worker-1");
    let types: Vec<&str> = (1..=3)
        .map(|i| {
            stamp["bindings"][i.to_string()]["type"]
                .as_str()
                .expect("typed")
        })
        .collect();
    assert_eq!(types, ["TEXT", "TEXT", "FIXED"]);
    assert!(stamp["bindings"].get("4").is_none(), "the LIMIT is no bind");
    assert_eq!(stamp["bindings"]["1"]["value"], claim.token.as_str());
    assert_eq!(stamp["bindings"]["2"]["value"], "worker-1");
    assert_eq!(
        stamp["bindings"]["3"]["value"], "300000",
        "lease in milliseconds"
    );
    assert!(texts[4].contains("LIMIT 10)"), "{}", texts[4]);
    assert!(texts[3].contains("LIMIT 10"), "{}", texts[3]);
    assert_eq!(read["bindings"]["1"]["value"], claim.token.as_str());
    assert!(texts[4].contains("\"COVID\".\"PUBLIC\".\"CA_NOTIFY_STATE\""));
    assert!(!texts[4].contains(claim.token.as_str()));
}

#[tokio::test]
async fn a_claim_with_nothing_waiting_is_one_statement_and_takes_no_lock() {
    let server = account(1).await;
    Mock::given(method("POST"))
        .and(path("/queries/v1/query-request"))
        .and(body_string_contains("SELECT 1 AS PENDING"))
        .respond_with(answer("claim_hint_none.json"))
        .expect(1)
        .mount(&server)
        .await;
    let store = SnowflakeStore::connect(config(&server))
        .await
        .expect("connect");
    let claim = store.claim(10, LEASE).await.expect("claim");
    assert!(claim.records.is_empty());
    assert_eq!(statements(&server).await.len(), 1);
}

#[tokio::test]
async fn an_expired_session_logs_in_again_and_the_statement_is_sent_again() {
    let server = account(2).await;
    Mock::given(method("POST"))
        .and(path("/queries/v1/query-request"))
        .respond_with(answer("error_session_expired.json"))
        .up_to_n_times(1)
        .with_priority(1)
        .mount(&server)
        .await;
    query_answer(&server, "UPDATE", "dml_updated_2.json").await;
    let store = SnowflakeStore::connect(config(&server))
        .await
        .expect("connect");
    store
        .release(
            &ClaimToken::new("3f0c6a52-6c1e-4a55-9a43-2b1d8e0f7c11"),
            &[RecordId::new("1"), RecordId::new("2")],
        )
        .await
        .expect("release after a new login");
    let sent = statements(&server).await;
    assert_eq!(sent.len(), 2);
    assert_eq!(sent[0], sent[1], "the same statement, sent again");
}

#[tokio::test]
async fn write_back_counts_from_the_merge_answer_and_tallies_a_partial_one() {
    let server = account(1).await;
    Mock::given(method("POST"))
        .and(path("/queries/v1/query-request"))
        .and(body_string_contains("MERGE INTO"))
        .respond_with(answer("dml_updated_2.json"))
        .up_to_n_times(1)
        .with_priority(1)
        .mount(&server)
        .await;
    query_answer(&server, "MERGE INTO", "dml_updated_1.json").await;
    query_answer(&server, "AS RELEASED", "tally_written_1_released_0.json").await;
    let store = SnowflakeStore::connect(config(&server))
        .await
        .expect("connect");
    let token = ClaimToken::new("3f0c6a52-6c1e-4a55-9a43-2b1d8e0f7c11");

    let full = store
        .write_back(&token, &[invalid("1"), invalid("2")])
        .await
        .expect("write");
    assert_eq!((full.written, full.released, full.not_owned), (2, 0, 0));

    let partial = store
        .write_back(&token, &[invalid("3"), invalid("4")])
        .await
        .expect("write");
    assert_eq!(
        (partial.written, partial.released, partial.not_owned),
        (1, 0, 1)
    );

    let sent = statements(&server).await;
    let merge = &sent[0];
    assert_eq!(merge["bindings"]["1"]["value"], token.as_str());
    assert_eq!(
        merge["bindings"]["2"]["value"],
        Value::Null,
        "no run started on this store: no run id"
    );
    assert_eq!(merge["bindings"]["3"]["value"], "1", "record id");
    assert_eq!(merge["bindings"]["4"]["type"], "FIXED", "sent flag");
    assert_eq!(merge["bindings"]["4"]["value"], "0");
    assert_eq!(merge["bindings"]["6"]["value"], "invalid_number:too_short");
    assert_eq!(
        merge["bindings"]["7"]["value"],
        Value::Null,
        "no dedup uuid"
    );
    assert!(!merge["sqlText"]
        .as_str()
        .expect("sql")
        .contains("too_short"));
}

#[tokio::test]
async fn a_refused_login_is_a_misconfiguration() {
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .and(path("/session/v1/login-request"))
        .respond_with(answer("login_refused.json"))
        .mount(&server)
        .await;
    match SnowflakeStore::connect(config(&server)).await {
        Err(StoreError::Misconfigured(m)) => {
            assert!(m.contains("Incorrect username or password"), "{m}");
            assert!(!m.contains("fixture-password"), "{m}");
        }
        other => panic!("expected a misconfiguration, got {other:?}"),
    }
}

#[tokio::test]
async fn lock_waits_and_outages_are_retryable_and_missing_objects_are_not() {
    let server = account(1).await;
    Mock::given(method("POST"))
        .and(path("/queries/v1/query-request"))
        .respond_with(answer("error_lock_timeout.json"))
        .up_to_n_times(1)
        .with_priority(1)
        .mount(&server)
        .await;
    Mock::given(method("POST"))
        .and(path("/queries/v1/query-request"))
        .respond_with(ResponseTemplate::new(503).set_body_string("Service Unavailable"))
        .up_to_n_times(1)
        .with_priority(2)
        .mount(&server)
        .await;
    query_answer(&server, "", "error_object_missing.json").await;
    let store = SnowflakeStore::connect(config(&server))
        .await
        .expect("connect");
    let token = ClaimToken::new("3f0c6a52-6c1e-4a55-9a43-2b1d8e0f7c11");

    assert!(matches!(
        store.claim(5, LEASE).await,
        Err(SourceError::Unavailable(_))
    ));
    assert!(matches!(
        store.write_back(&token, &[invalid("1")]).await,
        Err(SinkError::Unavailable(_))
    ));
    match store.claim(5, LEASE).await {
        Err(SourceError::Misconfigured(m)) => assert!(m.contains("CA_NOTIFY_STATE"), "{m}"),
        other => panic!("expected a misconfiguration, got {other:?}"),
    }
}

#[tokio::test]
async fn an_unreachable_account_is_unavailable() {
    let server = MockServer::start().await;
    let mut config = config(&server);
    // A port nothing listens on (wiremock keeps dropped servers alive in a pool).
    let closed = std::net::TcpListener::bind("127.0.0.1:0").expect("a free port");
    config.base_url = Some(format!("http://{}", closed.local_addr().expect("bound")));
    drop(closed);
    match SnowflakeStore::connect(config).await {
        Err(e) => assert!(e.is_retryable(), "{e}"),
        Ok(_) => panic!("connected to nothing"),
    }
}
