//! SQLite-specific behaviour beyond the contract: schema and migrations, adoption of
//! source rows, configured tables, errors, query plans, busy handling.

mod support;

use std::time::Duration;

use ca_notify_adapter_sqlite::schema::{SCHEMA_VERSION, STATE_TABLE};
use ca_notify_adapter_sqlite::{SourceTable, SqliteConfig, SqliteStore, StoreCounts, StoreError};
use ca_notify_domain::scrub::MAX_REASON_CHARS;
use ca_notify_domain::{NotSentReason, Outcome, RecordId, RecordOutcome};
use ca_notify_ports::{PhoneSource, ResultSink, SinkError, SourceError};
use ca_notify_store_contract::fixtures::{deferred, invalid_number, records, sent};
use rusqlite::Connection;
use support::{open, seed, state, Harness};

const LEASE: Duration = Duration::from_secs(600);

#[tokio::test]
async fn open_creates_the_file_and_reopening_migrates_nothing() {
    let h = Harness::new();
    let path = h.new_path();
    assert!(!path.exists());
    let store = open(&path, "a").await;
    assert!(path.exists());
    drop(store);
    let again = open(&path, "b").await;
    let report = again.check().await.expect("check");
    assert_eq!(report.schema_version, SCHEMA_VERSION);
    assert_eq!(report.journal_mode, "wal");
    assert_eq!(
        report.source_columns,
        ["id", "phone", "test_date", "symptom_date", "test_type"]
    );
    let conn = Connection::open(&path).expect("raw");
    let migrations: i64 = conn
        .query_row("SELECT max(version) FROM ca_notify_migrations", [], |r| {
            r.get(0)
        })
        .expect("count");
    assert_eq!(migrations, SCHEMA_VERSION);
}

#[tokio::test]
async fn a_database_from_a_newer_build_is_refused() {
    let h = Harness::new();
    let path = h.new_path();
    drop(open(&path, "a").await);
    Connection::open(&path)
        .expect("raw")
        .execute(
            "INSERT INTO ca_notify_migrations VALUES (999, 'future', '2030-01-01T00:00:00Z')",
            [],
        )
        .expect("future version");
    let err = SqliteStore::open(SqliteConfig::at(&path))
        .await
        .expect_err("newer schema");
    assert!(matches!(err, StoreError::Misconfigured(_)), "{err}");
    assert!(err.to_string().contains("999"), "{err}");
}

#[tokio::test]
async fn one_database_serves_one_source_table() {
    let h = Harness::new();
    let path = h.new_path();
    drop(open(&path, "a").await);
    let other = SqliteConfig {
        table: SourceTable {
            name: "people".into(),
            ..SourceTable::default()
        },
        ..SqliteConfig::at(&path)
    };
    let err = SqliteStore::open(other).await.expect_err("other table");
    assert!(matches!(err, StoreError::Misconfigured(_)), "{err}");
    assert!(err.to_string().contains("recipients"), "{err}");
}

#[tokio::test]
async fn a_configured_table_with_integer_ids_and_absent_columns_is_adopted_as_it_stands() {
    let h = Harness::new();
    let path = h.new_path();
    {
        let conn = Connection::open(&path).expect("raw");
        conn.execute_batch(
            "CREATE TABLE Patients (PatientId INTEGER PRIMARY KEY, Mobile TEXT, TestedOn TEXT);
             INSERT INTO Patients VALUES (7, '4155550107', '2021-06-07'), (8, NULL, NULL);
             INSERT INTO Patients VALUES (9, 4155550109, '2021-06-09');",
        )
        .expect("foreign table");
    }
    let config = SqliteConfig {
        table: SourceTable {
            name: "main.Patients".into(),
            id_column: "PatientId".into(),
            phone_column: "Mobile".into(),
            test_date_column: Some("TestedOn".into()),
            symptom_date_column: None,
            test_type_column: None,
            tz_offset_column: None,
            arrived_at_column: None,
        },
        ..SqliteConfig::at(&path)
    };
    let store = SqliteStore::open(config.clone()).await.expect("open");
    Connection::open(&path)
        .expect("raw")
        .execute("INSERT INTO Patients VALUES (10, '+14155550110', NULL)", [])
        .expect("insert after open");
    let claim = store.claim(10, LEASE).await.expect("claim");
    let mut got: Vec<(String, Option<String>, Option<String>)> = claim
        .records
        .iter()
        .map(|r| {
            assert_eq!(r.symptom_date, None);
            assert_eq!(r.test_type, None);
            (
                r.id.to_string(),
                r.phone.as_ref().map(|p| p.expose().to_owned()),
                r.test_date.clone(),
            )
        })
        .collect();
    got.sort();
    assert_eq!(
        got,
        vec![
            ("10".into(), Some("+14155550110".into()), None),
            (
                "7".into(),
                Some("4155550107".into()),
                Some("2021-06-07".into())
            ),
            ("8".into(), None, None),
            (
                "9".into(),
                Some("4155550109".into()),
                Some("2021-06-09".into())
            ),
        ]
    );
    let outcomes: Vec<RecordOutcome> = claim.records.iter().map(|r| sent(&r.id)).collect();
    let receipt = store
        .write_back(&claim.token, &outcomes)
        .await
        .expect("write");
    assert_eq!(receipt.written, 4);
    // Reopening finds adoption in place and adopts nothing twice.
    let again = SqliteStore::open(config).await.expect("reopen");
    assert_eq!(again.counts().await.expect("counts").sent, 4);
    assert!(again
        .claim(10, LEASE)
        .await
        .expect("claim")
        .records
        .is_empty());
}

/// A foreign table may hold an id twice: the claim and the peek take one record per id
/// (its first row) and every other id whole, with the ids around it in place.
#[tokio::test]
async fn an_id_held_twice_by_a_foreign_table_is_read_once() {
    let h = Harness::new();
    let path = h.new_path();
    {
        let conn = Connection::open(&path).expect("raw");
        conn.execute_batch(
            "CREATE TABLE Contacts (Ref TEXT, Mobile TEXT);
             INSERT INTO Contacts VALUES ('1', 'first of 1'), ('2', 'first of 2'),
                                         ('2', 'second of 2'), ('3', 'first of 3');",
        )
        .expect("foreign table");
    }
    let config = SqliteConfig {
        table: support::id_and_phone("Contacts", "Ref", "Mobile"),
        ..SqliteConfig::at(&path)
    };
    let store = SqliteStore::open(config).await.expect("open");
    let read = |records: &[ca_notify_domain::RecipientRecord]| -> Vec<(String, String)> {
        records
            .iter()
            .map(|r| {
                let phone = r.phone.as_ref().map(|p| p.expose().to_owned());
                (r.id.to_string(), phone.unwrap_or_default())
            })
            .collect()
    };
    let expected = vec![
        ("1".to_owned(), "first of 1".to_owned()),
        ("2".to_owned(), "first of 2".to_owned()),
        ("3".to_owned(), "first of 3".to_owned()),
    ];
    assert_eq!(read(&store.peek(10).await.expect("peek")), expected);
    let claim = store.claim(10, LEASE).await.expect("claim");
    assert_eq!(read(&claim.records), expected);
}

#[tokio::test]
async fn insert_or_replace_into_the_source_keeps_the_ledger() {
    let h = Harness::new();
    let path = h.new_path();
    let store = open(&path, "a").await;
    seed(&path, &records(1, 2));
    let claim = store.claim(2, LEASE).await.expect("claim");
    let ids: Vec<RecordId> = claim.records.iter().map(|r| r.id.clone()).collect();
    store
        .write_back(&claim.token, &[sent(&ids[0]), deferred(&ids[1])])
        .await
        .expect("write");
    let conn = Connection::open(&path).expect("raw");
    for id in &ids {
        conn.execute(
            "INSERT OR REPLACE INTO recipients (id, phone) VALUES (?1, '+14155550000')",
            [id.as_str()],
        )
        .expect("replace source row");
    }
    let kept = state(&path, &ids[0]);
    assert_eq!(kept.sent, Some(1), "the ledger lost a sent record");
    assert_eq!(state(&path, &ids[1]).attempts, 1, "the attempts were reset");
    let again = store.claim(10, LEASE).await.expect("claim");
    assert_eq!(
        again.records.len(),
        1,
        "only the deferred record is pending"
    );
    assert_eq!(again.records[0].id, ids[1]);
}

#[tokio::test]
async fn state_of_a_deleted_source_row_is_forgotten_and_the_claim_stays_whole() {
    let h = Harness::new();
    let path = h.new_path();
    let store = open(&path, "a").await;
    seed(&path, &records(1, 6));
    let conn = Connection::open(&path).expect("raw");
    conn.execute("DELETE FROM recipients WHERE id IN ('1', '2')", [])
        .expect("delete");
    let claim = store.claim(10, LEASE).await.expect("claim");
    let mut ids: Vec<String> = claim.records.iter().map(|r| r.id.to_string()).collect();
    ids.sort();
    assert_eq!(ids, ["3", "4", "5", "6"]);
    let orphans: i64 = conn
        .query_row(
            "SELECT count(*) FROM ca_notify_state WHERE record_id IN ('1', '2')",
            [],
            |r| r.get(0),
        )
        .expect("count");
    assert_eq!(orphans, 0);
    // A row that comes back is adopted afresh.
    conn.execute("INSERT INTO recipients (id, phone) VALUES ('1', 'x')", [])
        .expect("re-insert");
    assert_eq!(
        store.claim(10, LEASE).await.expect("claim").records.len(),
        1
    );
}

#[tokio::test]
async fn final_outcomes_of_a_deleted_row_stay_in_the_ledger() {
    let h = Harness::new();
    let path = h.new_path();
    let store = open(&path, "a").await;
    seed(&path, &records(1, 1));
    let claim = store.claim(1, LEASE).await.expect("claim");
    store
        .write_back(&claim.token, &[sent(&claim.records[0].id)])
        .await
        .expect("write");
    let conn = Connection::open(&path).expect("raw");
    conn.execute("DELETE FROM recipients", []).expect("delete");
    conn.execute("INSERT INTO recipients (id, phone) VALUES ('1', 'x')", [])
        .expect("re-insert");
    assert!(
        store
            .claim(1, LEASE)
            .await
            .expect("claim")
            .records
            .is_empty(),
        "a record already texted came back after its source row was re-inserted"
    );
}

/// Reasons can carry outside text (a server's `errorCode`, a validator's line type): the
/// ledger gets it on one line, without phone numbers, and bounded.
#[tokio::test]
async fn reasons_are_written_scrubbed_and_bounded() {
    let h = Harness::new();
    let path = h.new_path();
    let store = open(&path, "a").await;
    seed(&path, &records(1, 2));
    let claim = store.claim(2, LEASE).await.expect("claim");
    let outside = format!(
        "The 'To' number +1 (415) 555-0123\nis not valid {}",
        "x".repeat(5_000)
    );
    let rejected = |id: &RecordId, text: &str| {
        RecordOutcome::new(
            id.clone(),
            None,
            Outcome::not_sent(NotSentReason::Rejected {
                error_code: text.to_owned(),
            }),
        )
    };
    store
        .write_back(
            &claim.token,
            &[
                rejected(&claim.records[0].id, &outside),
                rejected(&claim.records[1].id, "phone_number_invalid"),
            ],
        )
        .await
        .expect("write");
    let long = state(&path, &claim.records[0].id).reason.expect("a reason");
    assert!(
        long.starts_with("rejected:The 'To' number [phone] is not valid xxx"),
        "{long}"
    );
    assert_eq!(long.chars().count(), MAX_REASON_CHARS);
    assert!(!long.contains("555"));
    assert_eq!(
        state(&path, &claim.records[1].id).reason.as_deref(),
        Some("rejected:phone_number_invalid"),
        "a short code is written as it is"
    );
}

#[tokio::test]
async fn counts_follow_the_records() {
    let h = Harness::new();
    let path = h.new_path();
    let store = open(&path, "a").await;
    seed(&path, &records(1, 10));
    let claim = store.claim(6, LEASE).await.expect("claim");
    let ids: Vec<RecordId> = claim.records.iter().map(|r| r.id.clone()).collect();
    store
        .write_back(
            &claim.token,
            &[
                sent(&ids[0]),
                sent(&ids[1]),
                invalid_number(&ids[2]),
                deferred(&ids[3]),
            ],
        )
        .await
        .expect("write");
    assert_eq!(
        store.counts().await.expect("counts"),
        StoreCounts {
            total: 10,
            pending: 5,
            claimed: 2,
            sent: 2,
            not_sent: 1
        }
    );
}

#[tokio::test]
async fn bad_configured_names_are_rejected_before_any_sql() {
    let h = Harness::new();
    let path = h.new_path();
    for table in [
        SourceTable {
            name: "recipients\"; DROP TABLE x; --".into(),
            ..SourceTable::default()
        },
        SourceTable {
            phone_column: "phone' OR '1'='1".into(),
            ..SourceTable::default()
        },
        SourceTable {
            test_type_column: Some("a b".into()),
            ..SourceTable::default()
        },
    ] {
        let err = SqliteStore::open(SqliteConfig {
            table,
            ..SqliteConfig::at(&path)
        })
        .await
        .expect_err("bad name");
        assert!(matches!(err, StoreError::InvalidIdentifier(_)), "{err}");
    }
    assert!(
        !path.exists(),
        "a rejected configuration still touched the file"
    );
}

#[tokio::test]
async fn a_missing_column_is_misconfigured_at_open() {
    let h = Harness::new();
    let path = h.new_path();
    Connection::open(&path)
        .expect("raw")
        .execute_batch("CREATE TABLE recipients (id TEXT PRIMARY KEY, mobile TEXT)")
        .expect("table");
    let err = SqliteStore::open(SqliteConfig::at(&path))
        .await
        .expect_err("no phone column");
    assert!(matches!(err, StoreError::Misconfigured(_)), "{err}");
    assert!(err.to_string().contains("phone"), "{err}");
}

#[tokio::test]
async fn a_file_that_is_not_a_database_is_misconfigured() {
    let h = Harness::new();
    let path = h.new_path();
    std::fs::write(&path, vec![b'x'; 4096]).expect("junk");
    let err = SqliteStore::open(SqliteConfig::at(&path))
        .await
        .expect_err("junk file");
    assert!(matches!(err, StoreError::Misconfigured(_)), "{err}");
    let missing_dir = h.dir().join("no/such/dir/x.db");
    let err = SqliteStore::open(SqliteConfig::at(&missing_dir))
        .await
        .expect_err("missing directory");
    assert!(matches!(err, StoreError::Misconfigured(_)), "{err}");
}

#[tokio::test]
async fn check_notices_a_re_created_source_table() {
    let h = Harness::new();
    let path = h.new_path();
    let store = open(&path, "a").await;
    store.check().await.expect("healthy");
    Connection::open(&path)
        .expect("raw")
        .execute_batch(
            "DROP TABLE recipients;
             CREATE TABLE recipients (id TEXT PRIMARY KEY, phone TEXT, test_date TEXT,
                                      symptom_date TEXT, test_type TEXT);",
        )
        .expect("re-create");
    let err = store.check().await.expect_err("triggers gone");
    assert!(err.to_string().contains("adoption"), "{err}");
    // Opening again reinstalls adoption.
    drop(open(&path, "b").await);
    store.check().await.expect("healthy again");
}

#[tokio::test]
async fn a_held_write_lock_makes_the_store_unavailable_not_broken() {
    let h = Harness::new();
    let path = h.new_path();
    drop(open(&path, "setup").await);
    seed(&path, &records(1, 3));
    let store = SqliteStore::open(SqliteConfig {
        busy_timeout: Duration::from_millis(50),
        ..SqliteConfig::at(&path)
    })
    .await
    .expect("open");
    let mut blocker = Connection::open(&path).expect("raw");
    let tx = blocker
        .transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)
        .expect("hold the write lock");
    let err = store.claim(3, LEASE).await.expect_err("busy");
    assert!(matches!(err, SourceError::Unavailable(_)), "{err}");
    let err = store
        .write_back(
            &ca_notify_domain::ClaimToken::new("any"),
            &[sent(&"1".into())],
        )
        .await
        .expect_err("busy");
    assert!(matches!(err, SinkError::Unavailable(_)), "{err}");
    // Reads still work beside a writer (WAL).
    assert_eq!(store.peek(3).await.expect("peek").len(), 3);
    tx.rollback().expect("release the lock");
    assert_eq!(store.claim(3, LEASE).await.expect("claim").records.len(), 3);
}

#[tokio::test]
async fn sql_looking_ids_and_values_round_trip_verbatim() {
    let h = Harness::new();
    let path = h.new_path();
    let store = open(&path, "a").await;
    let id = "1'); DROP TABLE ca_notify_state; --";
    let phone = "\"; DELETE FROM recipients; --";
    Connection::open(&path)
        .expect("raw")
        .execute(
            "INSERT INTO recipients (id, phone, test_type) VALUES (?1, ?2, ?1)",
            [id, phone],
        )
        .expect("insert");
    let claim = store.claim(5, LEASE).await.expect("claim");
    assert_eq!(claim.records.len(), 1);
    let r = &claim.records[0];
    assert_eq!(r.id.as_str(), id);
    assert_eq!(r.phone.as_ref().map(|p| p.expose()), Some(phone));
    assert_eq!(r.test_type.as_deref(), Some(id));
    let receipt = store
        .write_back(&claim.token, &[invalid_number(&r.id)])
        .await
        .expect("write");
    assert_eq!(receipt.written, 1);
    store.check().await.expect("both tables still there");
}

#[tokio::test]
async fn claims_and_read_back_use_the_indexes_not_a_scan() {
    let h = Harness::new();
    let path = h.new_path();
    drop(open(&path, "a").await);
    let conn = Connection::open(&path).expect("raw");
    let plan = |sql: &str| -> String {
        let mut stmt = conn
            .prepare(&format!("EXPLAIN QUERY PLAN {sql}"))
            .expect("explain");
        let rows = stmt
            .query_map([], |r| r.get::<_, String>(3))
            .expect("plan")
            .collect::<Result<Vec<_>, _>>()
            .expect("rows");
        rows.join("\n")
    };
    let claim = plan(
        "SELECT record_id FROM ca_notify_state WHERE outcome IS NULL AND lease_until <= 5
          ORDER BY lease_until LIMIT 100",
    );
    assert!(claim.contains("ca_notify_state_pending"), "{claim}");
    assert!(!claim.contains("TEMP B-TREE"), "{claim}");
    let read = plan(
        "SELECT r.phone FROM ca_notify_state AS s JOIN recipients AS r ON r.id = s.record_id
          WHERE s.claim_token = 'x'",
    );
    assert!(read.contains("ca_notify_state_claim"), "{read}");
    assert!(!read.contains("SCAN"), "{read}");
    assert!(STATE_TABLE.starts_with("ca_notify_"));
}
