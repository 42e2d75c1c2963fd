//! Shared helpers of the Snowflake store's integration tests: fakesnow, a scratch
//! database per test binary, source tables filled through bound statements, and a
//! contract-suite harness.

#![allow(dead_code)]

pub mod fakesnow;

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use async_trait::async_trait;
use ca_notify_adapter_snowflake::{
    SnowflakeAuth, SnowflakeConfig, SnowflakeStore, SourceTable, StoreError,
};
use ca_notify_domain::{
    ClaimToken, DedupKey, KeyHistory, RecipientRecord, RecordId, RecordOutcome,
};
use ca_notify_ports::{
    Backlog, Claim, PhoneSource, ResultSink, RunEnd, RunId, RunLog, RunRecord, RunStart, SinkError,
    SourceError, WriteReceipt,
};
use ca_notify_store_contract::{RecordState, StoreHarness};
use snowflake_connector_rs::{
    AuthConfig, CellValue, Client, ClientConfig, DynamicRow, EndpointConfig, Session,
    SessionConfig, Statement,
};
use tokio::sync::OnceCell;

pub use fakesnow::fakesnow;

/// A name no other test (or test binary) uses.
pub fn unique(prefix: &str) -> String {
    static NEXT: AtomicU64 = AtomicU64::new(0);
    let random = uuid::Uuid::new_v4().simple().to_string();
    format!(
        "{prefix}_{}_{}",
        &random[..8].to_ascii_uppercase(),
        NEXT.fetch_add(1, Ordering::Relaxed)
    )
}

/// The scratch database of this test binary, with an admin session of this test's own
/// (a session's HTTP connections belong to the runtime that made them, and every
/// `#[tokio::test]` has its own runtime).
pub struct TestDb {
    pub database: String,
    pub schema: String,
    admin: Session,
}

async fn admin_session() -> Session {
    let base_url = tokio::task::spawn_blocking(|| fakesnow().base_url.clone())
        .await
        .expect("fakesnow starts");
    let client = Client::new(
        ClientConfig::new("ca_notify_admin", "fake", AuthConfig::password("fake"))
            .with_session(SessionConfig::new().with_session_parameter("TIMEZONE", "UTC".into()))
            .with_endpoint(EndpointConfig::custom_base_url(
                base_url.parse().expect("a URL"),
            )),
    )
    .expect("admin client");
    client.create_session().await.expect("admin login")
}

impl TestDb {
    /// The scratch database (created by the first test that asks) and a new admin session.
    pub async fn new() -> Self {
        static NAMES: OnceCell<(String, String)> = OnceCell::const_new();
        let admin = admin_session().await;
        let (database, schema) = NAMES
            .get_or_init(|| async {
                let database = unique("CA_NOTIFY_TEST");
                let schema = "PUBLIC".to_owned();
                for ddl in [
                    format!("CREATE DATABASE IF NOT EXISTS \"{database}\""),
                    format!("CREATE SCHEMA IF NOT EXISTS \"{database}\".\"{schema}\""),
                ] {
                    admin.query(ddl).await.expect("scratch database");
                }
                (database, schema)
            })
            .await
            .clone();
        Self {
            database,
            schema,
            admin,
        }
    }
}

/// How a test source table stores its columns: the id as a number, the test date as a
/// `DATE` and the symptom date as text, so both decoding paths run.
pub const SOURCE_DDL: &str = "ID NUMBER(38,0), PHONE VARCHAR, TEST_DATE DATE, SYMPTOM_DATE VARCHAR, TEST_TYPE VARCHAR, TZ_OFFSET NUMBER(10,0), ARRIVED_AT TIMESTAMP_NTZ";

impl TestDb {
    /// `"DB"."SCHEMA"."NAME"`.
    pub fn qualified(&self, table: &str) -> String {
        format!("\"{}\".\"{}\".\"{table}\"", self.database, self.schema)
    }

    /// Runs one admin statement with positional binds.
    pub async fn exec(&self, sql: &str, binds: Vec<Option<String>>) -> Vec<DynamicRow> {
        let cursor = if binds.is_empty() {
            self.admin.query(sql.to_owned()).await
        } else {
            let mut statement = Statement::new_positional(sql.to_owned());
            for b in binds {
                statement = statement.bind(b);
            }
            self.admin.query(statement).await
        };
        cursor
            .unwrap_or_else(|e| panic!("admin statement failed: {e}\n{sql}"))
            .collect()
            .await
            .expect("rows")
    }

    /// Creates a source table holding `records`, inserted through bound parameters.
    pub async fn create_source(&self, table: &str, records: &[RecipientRecord]) {
        let name = self.qualified(table);
        self.exec(&format!("CREATE TABLE {name} ({SOURCE_DDL})"), Vec::new())
            .await;
        for chunk in records.chunks(50) {
            // Each record arrives now, on Snowflake's clock (as a loading job stamps it).
            let values = vec!["(?, ?, ?, ?, ?, ?, SYSDATE())"; chunk.len()].join(", ");
            let mut binds = Vec::with_capacity(chunk.len() * 6);
            for r in chunk {
                binds.push(Some(r.id.as_str().to_owned()));
                binds.push(r.phone.as_ref().map(|p| p.expose().to_owned()));
                binds.push(r.test_date.clone());
                binds.push(r.symptom_date.clone());
                binds.push(r.test_type.clone());
                binds.push(r.tz_offset.map(|t| t.to_string()));
            }
            self.exec(
                &format!(
                    "INSERT INTO {name} (ID, PHONE, TEST_DATE, SYMPTOM_DATE, TEST_TYPE, TZ_OFFSET, ARRIVED_AT) VALUES {values}"
                ),
                binds,
            )
            .await;
        }
    }

    /// A store configuration for `source` and `state` in this database, logging in as
    /// `user` (fakesnow checks no password; the name lets a test find its own logins).
    pub fn config(&self, user: &str, source: &str, state: &str) -> SnowflakeConfig {
        SnowflakeConfig {
            account: "fake".to_owned(),
            user: user.to_owned(),
            auth: SnowflakeAuth::Password("not-checked-by-fakesnow".to_owned().into()),
            warehouse: Some("test_wh".to_owned()),
            database: self.database.clone(),
            schema: self.schema.clone(),
            role: Some("test_role".to_owned()),
            base_url: Some(fakesnow().base_url.clone()),
            table: SourceTable {
                test_date_column: Some("test_date".to_owned()),
                symptom_date_column: Some("symptom_date".to_owned()),
                test_type_column: Some("test_type".to_owned()),
                tz_offset_column: Some("tz_offset".to_owned()),
                arrived_at_column: Some("arrived_at".to_owned()),
                ..SourceTable::new(source, "id", "phone")
            },
            state_table: state.to_owned(),
            worker_id: format!("{user}-worker"),
            lock_timeout_secs: 30,
            statement_timeout_secs: 60,
            run_id: None,
        }
    }

    /// The state row of `id` in `state`, as the contract suite reads it.
    pub async fn inspect(&self, state: &str, id: &RecordId) -> RecordState {
        let rows = self
            .exec(
                &format!(
                    "SELECT SENT, OUTCOME, REASON, DEDUP_UUID, ATTEMPTS, CLAIM_TOKEN, PROCESSED_AT, RUN_ID FROM {} WHERE RECORD_ID = ?",
                    self.qualified(state)
                ),
                vec![Some(id.as_str().to_owned())],
            )
            .await;
        let Some(row) = rows.first() else {
            return RecordState::default();
        };
        let v = row.values();
        RecordState {
            sent: int(&v[0]).map(|n| u8::try_from(n).expect("a flag")),
            outcome: text(&v[1]),
            reason: text(&v[2]),
            dedup_key: text(&v[3]),
            attempts: int(&v[4]).map_or(0, |n| u32::try_from(n).expect("a count")),
            claim_token: text(&v[5]).map(ClaimToken),
            processed: !v[6].is_null(),
            run_id: text(&v[7]),
        }
    }
}

fn text(cell: &CellValue) -> Option<String> {
    match cell {
        CellValue::Null => None,
        CellValue::String(s) => Some(s.clone()),
        other => panic!("expected text, got {other:?}"),
    }
}

fn int(cell: &CellValue) -> Option<i128> {
    match cell {
        CellValue::Null => None,
        CellValue::Integer(i) => Some(*i),
        CellValue::Decimal(d) => Some(
            d.raw()
                .split('.')
                .next()
                .unwrap_or("0")
                .parse()
                .expect("int"),
        ),
        other => panic!("expected a number, got {other:?}"),
    }
}

/// A store under test, with the configuration that opened it (for second handles).
pub struct TestStore {
    pub store: SnowflakeStore,
    pub config: SnowflakeConfig,
}

impl TestStore {
    /// Connects and migrates.
    pub async fn open(config: SnowflakeConfig) -> Self {
        let store = SnowflakeStore::connect(config.clone())
            .await
            .unwrap_or_else(|e| panic!("connect: {e}"));
        store
            .migrate()
            .await
            .unwrap_or_else(|e| panic!("migrate: {e}"));
        Self { store, config }
    }
}

#[async_trait]
impl PhoneSource for TestStore {
    async fn claim(&self, max: usize, lease: Duration) -> Result<Claim, SourceError> {
        self.store.claim(max, lease).await
    }

    async fn release(&self, token: &ClaimToken, ids: &[RecordId]) -> Result<(), SourceError> {
        self.store.release(token, ids).await
    }

    async fn peek(&self, max: usize) -> Result<Vec<RecipientRecord>, SourceError> {
        self.store.peek(max).await
    }
}

#[async_trait]
impl ResultSink for TestStore {
    async fn key_histories(&self, keys: &[DedupKey]) -> Result<Vec<KeyHistory>, SinkError> {
        self.store.key_histories(keys).await
    }

    async fn write_back(
        &self,
        token: &ClaimToken,
        outcomes: &[RecordOutcome],
    ) -> Result<WriteReceipt, SinkError> {
        self.store.write_back(token, outcomes).await
    }
}

#[async_trait]
impl RunLog for TestStore {
    async fn start_run(&self, run: &RunStart) -> Result<(), SinkError> {
        self.store.start_run(run).await
    }

    async fn finish_run(&self, id: &RunId, end: &RunEnd) -> Result<(), SinkError> {
        self.store.finish_run(id, end).await
    }

    async fn recent_runs(&self, limit: usize) -> Result<Vec<RunRecord>, SinkError> {
        self.store.recent_runs(limit).await
    }

    async fn last_success(&self) -> Result<Option<RunRecord>, SinkError> {
        self.store.last_success().await
    }

    async fn backlog(&self) -> Result<Backlog, SinkError> {
        self.store.backlog().await
    }
}

/// The contract suite's view of the Snowflake store on fakesnow.
pub struct Harness {
    pub db: TestDb,
}

impl Harness {
    pub async fn new() -> Self {
        Self {
            db: TestDb::new().await,
        }
    }
}

#[async_trait]
impl StoreHarness for Harness {
    type Store = TestStore;

    async fn fresh(&self, records: Vec<RecipientRecord>) -> TestStore {
        let db = &self.db;
        let source = unique("SRC");
        db.create_source(&source, &records).await;
        let config = db.config(&unique("contract"), &source, &unique("STATE"));
        TestStore::open(config).await
    }

    async fn second_handle(&self, store: &TestStore) -> TestStore {
        let mut config = store.config.clone();
        config.worker_id = format!("{}-second", config.worker_id);
        TestStore {
            store: SnowflakeStore::connect(config.clone())
                .await
                .unwrap_or_else(|e| panic!("second connect: {e}")),
            config,
        }
    }

    fn short_lease(&self) -> Duration {
        Duration::from_millis(2500)
    }

    async fn inspect(&self, store: &TestStore, id: &RecordId) -> RecordState {
        self.db.inspect(&store.config.state_table, id).await
    }

    fn repeats_report_as_first_written(&self) -> bool {
        true
    }

    fn lists_runs_from_their_start(&self) -> bool {
        false
    }
}

/// Panics unless `e` is retryable.
pub fn assert_unavailable(e: &StoreError) {
    assert!(e.is_retryable(), "expected a retryable error, got {e}");
}
