//! `SqliteStore`: one connection to the store file, used off the async runtime.
//!
//! Each handle owns one connection behind a mutex, and every call runs on tokio's
//! blocking pool, so a slow disk never stalls the runtime. Several handles (in one
//! process or in several) may share a file: writes that claim or decide records run in
//! `BEGIN IMMEDIATE` transactions, which SQLite serialises across processes, and WAL mode
//! lets reads (peek, counts, export) proceed beside them.

use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, PoisonError};

use rusqlite::config::DbConfig;
use rusqlite::{Connection, OpenFlags};

use crate::clock::{system_clock, Clock};
use crate::config::{SqliteConfig, ValidTable};
use crate::durability;
use crate::error::StoreError;
use crate::schema;
use crate::statements::{SourceSql, COUNTS};

/// Pages the WAL may hold before a commit checkpoints it (SQLite's default is 1,000):
/// about 40 MiB of log at the default page size, removed when the last connection to the
/// file closes.
const WAL_PAGES: i64 = 10_000;

/// The connection's page cache, in KiB (SQLite's default is 2,000).
const CACHE_KIB: i64 = 8 * 1024;

/// The embedded SQLite store: recipients source and outcome ledger in one file.
#[derive(Clone)]
pub struct SqliteStore {
    inner: Arc<Inner>,
}

pub(crate) struct Inner {
    conn: Mutex<Connection>,
    pub config: SqliteConfig,
    pub table: ValidTable,
    pub sql: SourceSql,
    clock: Clock,
    /// The run this handle's write-backs stamp (`RunLog::start_run`).
    current_run: Mutex<Option<String>>,
}

impl Inner {
    /// The run id write-backs stamp now.
    pub fn current_run(&self) -> Option<String> {
        self.current_run
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }

    /// Makes `id` the run this handle's write-backs stamp.
    pub fn set_current_run(&self, id: &str) {
        *self
            .current_run
            .lock()
            .unwrap_or_else(PoisonError::into_inner) = Some(id.to_owned());
    }

    /// Now on this store's clock, in Unix milliseconds.
    pub fn now_ms(&self) -> i64 {
        (self.clock)()
    }
}

/// What [`SqliteStore::check`] found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CheckReport {
    /// The database file.
    pub path: PathBuf,
    /// The SQLite library version.
    pub sqlite_version: String,
    /// `wal`, unless the file system refused it.
    pub journal_mode: String,
    /// The applied state schema version.
    pub schema_version: i64,
    /// The source table as configured.
    pub source_table: String,
    /// The source table's columns, lower-cased.
    pub source_columns: Vec<String>,
}

/// Record totals, for the CLI's summary.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct StoreCounts {
    /// Records the store knows (one state row per source id).
    pub total: u64,
    /// No final outcome, and claimable now.
    pub pending: u64,
    /// No final outcome, under a live lease.
    pub claimed: u64,
    /// Written with sent = 1 (sent or already sent).
    pub sent: u64,
    /// Written with sent = 0.
    pub not_sent: u64,
}

impl SqliteStore {
    /// Opens (creating if needed) the database file, switches it to WAL, migrates the
    /// state schema, creates the source table if it is missing, and installs adoption of
    /// source rows.
    ///
    /// # Errors
    /// [`StoreError::InvalidIdentifier`] for a bad configured name;
    /// [`StoreError::Misconfigured`] when the file cannot be opened or is not a database,
    /// the source table lacks a configured column, or the database belongs to another
    /// source table; [`StoreError::Unavailable`] when another process held the write lock
    /// past the busy timeout.
    pub async fn open(config: SqliteConfig) -> Result<Self, StoreError> {
        Self::open_with_clock(config, system_clock()).await
    }

    /// [`SqliteStore::open`], with leases read from and written on `clock` instead of the
    /// system clock (for tests that move time forward instead of waiting).
    ///
    /// # Errors
    /// As [`SqliteStore::open`].
    pub async fn open_with_clock(config: SqliteConfig, clock: Clock) -> Result<Self, StoreError> {
        let table = ValidTable::new(&config.table)?;
        // The caller's span (a run's id) follows the work onto the blocking thread.
        let span = tracing::Span::current();
        tokio::task::spawn_blocking(move || {
            span.in_scope(|| Self::open_blocking(config, table, clock))
        })
        .await?
    }

    fn open_blocking(
        config: SqliteConfig,
        table: ValidTable,
        clock: Clock,
    ) -> Result<Self, StoreError> {
        let in_file = |e: StoreError| match e {
            StoreError::Misconfigured(text) => {
                StoreError::Misconfigured(format!("{}: {text}", config.path.display()))
            }
            other => other,
        };
        let flags = OpenFlags::SQLITE_OPEN_READ_WRITE
            | OpenFlags::SQLITE_OPEN_CREATE
            | OpenFlags::SQLITE_OPEN_NO_MUTEX;
        let mut conn = Connection::open_with_flags(&config.path, flags)
            .map_err(|e| in_file(StoreError::from(e)))?;
        conn.busy_timeout(config.busy_timeout)?;
        let mode: String = conn
            .pragma_update_and_check(None, "journal_mode", "WAL", |row| row.get(0))
            .map_err(|e| in_file(StoreError::from(e)))?;
        if !mode.eq_ignore_ascii_case("wal") {
            tracing::warn!(journal_mode = %mode, "The database file refused WAL mode; readers will wait for writers.");
        }
        // Every commit on disk before it returns, but a claim's (the `durability` module).
        durability::force_commits(&conn)?;
        // The ledger's two uuid-keyed trees take a write at a random page per record, so
        // a write-back dirties about two pages a record. A WAL of up to WAL_PAGES
        // between checkpoints lets a checkpoint copy a page written by many commits
        // once, and a page cache of CACHE_KIB keeps those trees' pages in memory instead
        // of reading them back from the OS for every write (`docs/store.md`, *Durability and
        // I/O*).
        conn.pragma_update(None, "wal_autocheckpoint", WAL_PAGES)?;
        conn.pragma_update(None, "cache_size", -CACHE_KIB)?;
        // One plan per statement, whatever its bound values: without this, a bound
        // `LIMIT` (the claim's size) is compiled into the plan, and every new binding
        // prepares the statement again (SQLite's `sqlite3ExprIsInteger` marks the
        // parameter; `sqlite3_bind_*` then expires the statement).
        conn.set_db_config(DbConfig::SQLITE_DBCONFIG_ENABLE_QPSG, true)?;
        // Statement journals (every insert that fires the adoption trigger needs one)
        // stay in memory instead of a temporary file per statement.
        conn.pragma_update(None, "temp_store", "MEMORY")?;
        let prepared = schema::prepare(&mut conn, &table).map_err(in_file)?;
        tracing::debug!(
            path = %config.path.display(),
            schema_version = prepared.version,
            created_source = prepared.created_source,
            adopted = ?prepared.adopted,
            "Opened the SQLite store."
        );
        let sql = SourceSql::new(&table);
        Ok(Self {
            inner: Arc::new(Inner {
                conn: Mutex::new(conn),
                config,
                table,
                sql,
                clock,
                current_run: Mutex::new(None),
            }),
        })
    }

    /// The settings this handle was opened with.
    pub fn config(&self) -> &SqliteConfig {
        &self.inner.config
    }

    /// The database file.
    pub fn path(&self) -> &Path {
        &self.inner.config.path
    }

    /// Runs `SELECT 1` and verifies that the source table, its configured columns, the
    /// state table at this build's schema version, and adoption are all in place.
    ///
    /// # Errors
    /// [`StoreError::Misconfigured`] naming what is missing; [`StoreError::Unavailable`]
    /// when the file cannot be read now.
    pub async fn check(&self) -> Result<CheckReport, StoreError> {
        self.run(|conn, inner| {
            let one: i64 = conn.query_row("SELECT 1", [], |row| row.get(0))?;
            debug_assert_eq!(one, 1);
            schema::check_columns(conn, &inner.table)?;
            let schema_version = schema::applied_version(conn)?;
            if schema_version != schema::SCHEMA_VERSION {
                return Err(StoreError::Misconfigured(format!(
                    "state schema version {schema_version}, expected {}",
                    schema::SCHEMA_VERSION
                )));
            }
            conn.query_row("SELECT count(*) FROM ca_notify_state LIMIT 1", [], |_| {
                Ok(())
            })?;
            if !schema::adoption_installed(conn, &inner.table)? {
                return Err(StoreError::Misconfigured(format!(
                    "the adoption triggers on {} are gone (was the table re-created?); \
                     open the store again to reinstall them",
                    inner.table.name
                )));
            }
            Ok(CheckReport {
                path: inner.config.path.clone(),
                sqlite_version: rusqlite::version().to_owned(),
                journal_mode: conn.query_row("PRAGMA journal_mode", [], |row| row.get(0))?,
                schema_version,
                source_table: inner.table.name.as_str().to_owned(),
                source_columns: schema::source_columns(conn, &inner.table)?,
            })
        })
        .await
    }

    /// Record totals.
    ///
    /// # Errors
    /// As [`SqliteStore::check`].
    pub async fn counts(&self) -> Result<StoreCounts, StoreError> {
        self.run(|conn, inner| {
            let now = inner.now_ms();
            let counts = conn.prepare_cached(COUNTS)?.query_row([now], |row| {
                let n = |i| row.get::<_, i64>(i).map(|v| u64::try_from(v).unwrap_or(0));
                Ok(StoreCounts {
                    total: n(0)?,
                    pending: n(1)?,
                    claimed: n(2)?,
                    sent: n(3)?,
                    not_sent: n(4)?,
                })
            })?;
            Ok(counts)
        })
        .await
    }

    /// Runs `f` with this handle's connection on the blocking pool.
    pub(crate) async fn run<T, F>(&self, f: F) -> Result<T, StoreError>
    where
        T: Send + 'static,
        F: FnOnce(&mut Connection, &Inner) -> Result<T, StoreError> + Send + 'static,
    {
        let inner = Arc::clone(&self.inner);
        let span = tracing::Span::current();
        tokio::task::spawn_blocking(move || {
            let _entered = span.enter();
            // A panic mid-call leaves no open transaction (rusqlite rolls back on drop),
            // so a poisoned connection is still a good one.
            let mut conn = inner.conn.lock().unwrap_or_else(PoisonError::into_inner);
            f(&mut conn, &inner)
        })
        .await?
    }
}

impl fmt::Debug for SqliteStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SqliteStore")
            .field("path", &self.inner.config.path)
            .field("table", &self.inner.table.name)
            .field("worker_id", &self.inner.config.worker_id)
            .finish()
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use ca_notify_ports::PhoneSource;

    use super::*;

    /// A new store in a temporary directory, which lives as long as the returned guard.
    async fn fresh_store() -> (tempfile::TempDir, SqliteStore) {
        let dir = tempfile::tempdir().expect("dir");
        let store = SqliteStore::open(SqliteConfig::at(dir.path().join("store.db")))
            .await
            .expect("open");
        (dir, store)
    }

    async fn setting(store: &SqliteStore, pragma: &'static str) -> i64 {
        store
            .run(move |conn, _| {
                Ok(conn.query_row(&format!("PRAGMA {pragma}"), [], |row| row.get(0))?)
            })
            .await
            .expect("pragma")
    }

    #[tokio::test]
    async fn the_connection_forces_commits_after_a_claim_and_keeps_a_large_log_and_cache() {
        let (_dir, store) = fresh_store().await;
        const FULL: i64 = 2;
        assert_eq!(setting(&store, "synchronous").await, FULL);
        assert_eq!(setting(&store, "wal_autocheckpoint").await, WAL_PAGES);
        assert_eq!(setting(&store, "cache_size").await, -CACHE_KIB);
        store
            .claim(10, Duration::from_secs(60))
            .await
            .expect("claim");
        assert_eq!(setting(&store, "synchronous").await, FULL);
    }

    /// A claim binds its size to `LIMIT ?2`; without the planner's stability guarantee
    /// SQLite compiles the value into the plan and prepares the statement again whenever
    /// it is bound anew, that is on every claim.
    #[tokio::test]
    async fn claims_reuse_their_prepared_statement() {
        let (_dir, store) = fresh_store().await;
        for max in [10, 7, 10] {
            store
                .claim(max, Duration::from_secs(60))
                .await
                .expect("claim");
        }
        let reprepared = store
            .run(|conn, _| {
                let stmt = conn.prepare_cached(crate::statements::CLAIMABLE)?;
                Ok(stmt.get_status(rusqlite::StatementStatus::RePrepare))
            })
            .await
            .expect("status");
        assert_eq!(reprepared, 0);
    }
}
