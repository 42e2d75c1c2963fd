//! Shared helpers of the SQLite store's integration tests: the contract harness, seeding
//! and a raw view of the state table.

#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use ca_notify_adapter_sqlite::{Clock, SourceTable, SqliteConfig, SqliteStore};
use ca_notify_domain::{ClaimToken, RecipientRecord, RecordId};
use ca_notify_store_contract::{ClockOffset, RecordState, StoreHarness};
use rusqlite::{params, Connection, OptionalExtension};

/// Fresh stores in one temporary directory.
pub struct Harness {
    dir: tempfile::TempDir,
    next: AtomicUsize,
    /// How far the contract checks moved the stores' clock instead of waiting.
    offset: ClockOffset,
}

impl Harness {
    pub fn new() -> Self {
        Self {
            dir: tempfile::tempdir().expect("temp dir"),
            next: AtomicUsize::new(0),
            offset: ClockOffset::new(),
        }
    }

    pub fn new_path(&self) -> PathBuf {
        let n = self.next.fetch_add(1, Ordering::Relaxed);
        self.dir.path().join(format!("store-{n}.db"))
    }

    pub fn dir(&self) -> &Path {
        self.dir.path()
    }

    /// A handle on `path` whose leases run on the system clock plus the checks' offset.
    async fn open_on_clock(&self, path: &Path, worker: &str) -> SqliteStore {
        let offset = self.offset.clone();
        let system = ca_notify_adapter_sqlite::clock::system_clock();
        let clock: Clock = Arc::new(move || {
            system() + i64::try_from(offset.get().as_millis()).unwrap_or(i64::MAX)
        });
        SqliteStore::open_with_clock(
            SqliteConfig {
                worker_id: worker.to_owned(),
                ..SqliteConfig::at(path)
            },
            clock,
        )
        .await
        .expect("open store")
    }
}

/// Opens a store at `path` with a named worker.
pub async fn open(path: &Path, worker: &str) -> SqliteStore {
    SqliteStore::open(SqliteConfig {
        worker_id: worker.to_owned(),
        ..SqliteConfig::at(path)
    })
    .await
    .expect("open store")
}

/// A source table of someone else's, configured by name with only its id and phone
/// columns (no dates, no test type).
pub fn id_and_phone(name: &str, id: &str, phone: &str) -> SourceTable {
    SourceTable {
        name: name.into(),
        id_column: id.into(),
        phone_column: phone.into(),
        test_date_column: None,
        symptom_date_column: None,
        test_type_column: None,
        tz_offset_column: None,
        arrived_at_column: None,
    }
}

/// Inserts records into the default source table, NULLs kept as NULL.
pub fn seed(path: &Path, records: &[RecipientRecord]) {
    let mut conn = Connection::open(path).expect("open for seeding");
    let tx = conn.transaction().expect("tx");
    {
        let mut stmt = tx
            .prepare(
                "INSERT INTO recipients (id, phone, test_date, symptom_date, test_type)
                 VALUES (?1, ?2, ?3, ?4, ?5)",
            )
            .expect("prepare");
        for r in records {
            stmt.execute(params![
                r.id.as_str(),
                r.phone.as_ref().map(|p| p.expose().to_owned()),
                r.test_date,
                r.symptom_date,
                r.test_type
            ])
            .expect("seed row");
        }
    }
    tx.commit().expect("commit seed");
}

/// The state row of `id`, read with a separate connection.
pub fn state(path: &Path, id: &RecordId) -> RecordState {
    let conn = Connection::open(path).expect("open for inspection");
    conn.query_row(
        "SELECT sent, outcome, reason, dedup_uuid, attempts, claim_token, processed_at, run_id
           FROM ca_notify_state WHERE record_id = ?1",
        [id.as_str()],
        |row| {
            Ok(RecordState {
                sent: row.get::<_, Option<u8>>(0)?,
                outcome: row.get(1)?,
                reason: row.get(2)?,
                dedup_key: row.get(3)?,
                attempts: row.get(4)?,
                claim_token: row.get::<_, Option<String>>(5)?.map(ClaimToken),
                processed: row.get::<_, Option<String>>(6)?.is_some(),
                run_id: row.get(7)?,
            })
        },
    )
    .optional()
    .expect("inspect")
    .unwrap_or_default()
}

#[async_trait]
impl StoreHarness for Harness {
    type Store = SqliteStore;

    async fn fresh(&self, records: Vec<RecipientRecord>) -> SqliteStore {
        let path = self.new_path();
        let store = self.open_on_clock(&path, "worker-a").await;
        seed(&path, &records);
        store
    }

    async fn second_handle(&self, store: &SqliteStore) -> SqliteStore {
        let n = self.next.fetch_add(1, Ordering::Relaxed);
        self.open_on_clock(store.path(), &format!("worker-{n}"))
            .await
    }

    fn short_lease(&self) -> Duration {
        Duration::from_millis(300)
    }

    async fn pass(&self, d: Duration) {
        self.offset.advance(d);
    }

    async fn inspect(&self, store: &SqliteStore, id: &RecordId) -> RecordState {
        state(store.path(), id)
    }
}
