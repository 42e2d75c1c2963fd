//! The pipeline's own tables, their versioned migrations, and the tie to the source table.
//!
//! Everything here runs once per [`SqliteStore::open`](crate::SqliteStore::open), inside
//! one `BEGIN IMMEDIATE` transaction, so two processes opening the same new file at once
//! cannot both migrate it, and a failed open leaves the file as it was.
//!
//! The state table holds one row per source record, created by *adoption*: two triggers
//! on the source table insert the state row in the same transaction as any insert (or id
//! change) of a source row, and the transaction that creates the triggers adopts every row
//! already there. A claim therefore only ever reads the state table's partial index of
//! pending rows, whose size does not grow with the processed history. `docs/store.md`
//! has the DDL and the proof.
//!
//! The ledger by dedup key has two parts: the partial index of texted state rows by dedup
//! uuid (was this person texted, under any record id?) and the attempt log, every issue
//! attempt's answer per dedup uuid, keyed so that a repeated write-back appends nothing.

use rusqlite::{params, Connection, OptionalExtension, Transaction};

use crate::config::{SourceTable, ValidTable};
use crate::error::StoreError;
use crate::identifier::InvalidIdentifier;

/// The state table: outcome, dedup uuid, attempts and claim per record id. No phones.
pub const STATE_TABLE: &str = "ca_notify_state";
/// The attempt log: every issue attempt's answer, per dedup uuid.
pub const ATTEMPTS_TABLE: &str = "ca_notify_attempts";
/// The applied migrations, one row per version.
pub const MIGRATIONS_TABLE: &str = "ca_notify_migrations";
/// The runs: one row per run, its start, end, counts and stop reason.
pub const RUNS_TABLE: &str = "ca_notify_runs";
/// Facts about this database (which source table its state belongs to).
pub const META_TABLE: &str = "ca_notify_meta";
/// The newest schema version this build knows.
pub const SCHEMA_VERSION: i64 = MIGRATIONS[MIGRATIONS.len() - 1].0;

const INSERT_TRIGGER: &str = "ca_notify_adopt_insert";
const UPDATE_TRIGGER: &str = "ca_notify_adopt_update";
const SOURCE_ID_INDEX: &str = "ca_notify_source_id";

/// `(version, description, DDL)`. Never edit a released entry; append a new one.
const MIGRATIONS: &[(i64, &str, &str)] = &[
    (
        1,
        "state table with pending and claim indexes; meta table",
        MIGRATION_1,
    ),
    (
        2,
        "outcome unconfirmed; the texted index by dedup uuid; the attempt log",
        MIGRATION_2,
    ),
    (
        3,
        "the run id on each state row; the runs table",
        MIGRATION_3,
    ),
    (
        4,
        "arrival and purge times on the state table; the attempt log by record; purges in the runs table",
        MIGRATION_4,
    ),
    (
        5,
        "the state table's outcome check as comparisons, not a temporary index per row written",
        MIGRATION_5,
    ),
];

const MIGRATION_1: &str = "\
-- One row per source record id. No phone numbers.
CREATE TABLE ca_notify_state (
    record_id     TEXT    NOT NULL PRIMARY KEY,  -- the source id, as text
    sent          INTEGER CHECK (sent IN (0, 1)),  -- 1 sent or already sent, 0 not, NULL undecided
    outcome       TEXT    CHECK (outcome IN ('sent', 'already_sent', 'not_sent')),
    reason        TEXT,                          -- stable reason code of the outcome
    dedup_uuid    TEXT,                          -- the uuid sent to the verification server
    attempts      INTEGER NOT NULL DEFAULT 0 CHECK (attempts >= 0),  -- write-backs that reached it
    last_deferral TEXT,                          -- why the last run deferred it
    processed_at  TEXT,                          -- RFC 3339 UTC, when the outcome was written
    claim_token   TEXT,                          -- the current claim, NULL when unclaimed
    claimed_by    TEXT,                          -- the worker holding it
    lease_until   INTEGER NOT NULL DEFAULT 0,    -- Unix ms when the claim lapses; 0 unclaimed
    CHECK ((sent IS NULL) = (outcome IS NULL))
) WITHOUT ROWID;
-- What a claim reads: pending records only, unclaimed (0) first, then the oldest lapsed
-- leases. Processed rows are not in it, so a claim costs the same at any history length.
CREATE INDEX ca_notify_state_pending ON ca_notify_state (lease_until)
    WHERE outcome IS NULL;
-- What a read-back, write-back and release look up.
CREATE INDEX ca_notify_state_claim ON ca_notify_state (claim_token)
    WHERE claim_token IS NOT NULL;
-- Facts about this database: the source table (and id column) whose ledger it keeps.
CREATE TABLE ca_notify_meta (
    key   TEXT NOT NULL PRIMARY KEY,
    value TEXT NOT NULL
) WITHOUT ROWID;";

const MIGRATION_2: &str = "\
-- SQLite cannot change a CHECK in place, so the state table is rebuilt (same columns, same
-- rows) to admit the outcome 'unconfirmed'. The adoption triggers name the table: they
-- are dropped first, and reinstalled with the adoption of existing rows right after the
-- migrations, in the same transaction.
DROP TRIGGER IF EXISTS ca_notify_adopt_insert;
DROP TRIGGER IF EXISTS ca_notify_adopt_update;
CREATE TABLE ca_notify_state_v2 (
    record_id     TEXT    NOT NULL PRIMARY KEY,  -- the source id, as text
    sent          INTEGER CHECK (sent IN (0, 1)),  -- 1 sent or already sent, 0 not, NULL undecided
    outcome       TEXT    CHECK (outcome IN ('sent', 'already_sent', 'not_sent', 'unconfirmed')),
    reason        TEXT,                          -- stable reason code of the outcome
    dedup_uuid    TEXT,                          -- the uuid sent to the verification server
    attempts      INTEGER NOT NULL DEFAULT 0 CHECK (attempts >= 0),  -- write-backs that reached it
    last_deferral TEXT,                          -- why the last run deferred it
    processed_at  TEXT,                          -- RFC 3339 UTC, when the outcome was written
    claim_token   TEXT,                          -- the current claim, NULL when unclaimed or held
    claimed_by    TEXT,                          -- the worker holding it
    lease_until   INTEGER NOT NULL DEFAULT 0,    -- Unix ms when the claim or hold lapses; 0 unclaimed
    CHECK ((sent IS NULL) = (outcome IS NULL))
) WITHOUT ROWID;
INSERT INTO ca_notify_state_v2 (record_id, sent, outcome, reason, dedup_uuid, attempts,
                                last_deferral, processed_at, claim_token, claimed_by, lease_until)
SELECT record_id, sent, outcome, reason, dedup_uuid, attempts,
       last_deferral, processed_at, claim_token, claimed_by, lease_until
  FROM ca_notify_state;
DROP TABLE ca_notify_state;
ALTER TABLE ca_notify_state_v2 RENAME TO ca_notify_state;
CREATE INDEX ca_notify_state_pending ON ca_notify_state (lease_until)
    WHERE outcome IS NULL;
CREATE INDEX ca_notify_state_claim ON ca_notify_state (claim_token)
    WHERE claim_token IS NOT NULL;
-- The ledger by dedup key: was this person (phone and test date) ever texted, under any
-- record id? Only texted rows are in it.
CREATE INDEX ca_notify_state_texted ON ca_notify_state (dedup_uuid)
    WHERE sent = 1;
-- Every issue attempt's answer, per dedup uuid, so that a later 409 for the uuid can be
-- judged (docs/adapters/verification.md). Append-only; the key makes a repeated
-- write-back append nothing, and leads with the uuid, which is how it is read.
CREATE TABLE ca_notify_attempts (
    dedup_uuid  TEXT    NOT NULL,                -- the uuid the attempt sent
    claim_token TEXT    NOT NULL,                -- the claim of the write-back that kept it
    record_id   TEXT    NOT NULL,                -- the record the attempt was for
    attempt_index INTEGER NOT NULL CHECK (attempt_index >= 0),  -- its place among the record's attempts
    answer      TEXT    NOT NULL,                -- issued, already_exists, failed_after_commit, refused, no_answer
    recorded_at TEXT    NOT NULL,                -- RFC 3339 UTC
    PRIMARY KEY (dedup_uuid, claim_token, record_id, attempt_index)
) WITHOUT ROWID;";

const MIGRATION_3: &str = "\
-- The run whose write-back last reached the record (final or deferred); NULL before any.
ALTER TABLE ca_notify_state ADD COLUMN run_id TEXT;
-- One row per run, so 'when did this last succeed' has an answer without a metrics
-- system. Times are RFC 3339 UTC with milliseconds, fixed width, so text order is time
-- order. A run whose process died keeps ended_at NULL.
CREATE TABLE ca_notify_runs (
    run_id       TEXT    NOT NULL PRIMARY KEY,   -- made by the job (a UUID v7)
    worker       TEXT    NOT NULL,               -- the worker id that ran it
    started_at   TEXT    NOT NULL,
    ended_at     TEXT,
    succeeded    INTEGER CHECK (succeeded IN (0, 1)),  -- 1 when the command exited 0
    stop         TEXT,                           -- the stop reason code (deadline, drained, misconfigured, ...)
    claimed      INTEGER,
    sent         INTEGER,
    already_sent INTEGER,
    not_sent     INTEGER,                        -- unconfirmed included
    unconfirmed  INTEGER,
    deferred     INTEGER,
    CHECK ((ended_at IS NULL) = (succeeded IS NULL))
) WITHOUT ROWID;
CREATE INDEX ca_notify_runs_started ON ca_notify_runs (started_at);
CREATE INDEX ca_notify_runs_succeeded ON ca_notify_runs (ended_at) WHERE succeeded = 1;";

// Issue 17's migration (3 is issue 16's runs table).
const MIGRATION_4: &str = "\
-- The state table is rebuilt (same rows) for a column whose default is the time of the
-- insert, which ALTER TABLE cannot add: adopted_at, when the record arrived (the adoption
-- trigger inserts the row in the source insert's transaction; NULL for rows adopted
-- before this version). purged_at: when `purge` erased the record's personal data.
DROP TRIGGER IF EXISTS ca_notify_adopt_insert;
DROP TRIGGER IF EXISTS ca_notify_adopt_update;
CREATE TABLE ca_notify_state_v4 (
    record_id     TEXT    NOT NULL PRIMARY KEY,  -- the source id, as text
    sent          INTEGER CHECK (sent IN (0, 1)),  -- 1 sent or already sent, 0 not, NULL undecided
    outcome       TEXT    CHECK (outcome IN ('sent', 'already_sent', 'not_sent', 'unconfirmed')),
    reason        TEXT,                          -- stable reason code of the outcome
    dedup_uuid    TEXT,                          -- the uuid sent to the verification server
    attempts      INTEGER NOT NULL DEFAULT 0 CHECK (attempts >= 0),  -- write-backs that reached it
    last_deferral TEXT,                          -- why the last run deferred it
    processed_at  TEXT,                          -- RFC 3339 UTC, when the outcome was written
    claim_token   TEXT,                          -- the current claim, NULL when unclaimed or held
    claimed_by    TEXT,                          -- the worker holding it
    lease_until   INTEGER NOT NULL DEFAULT 0,    -- Unix ms when the claim or hold lapses; 0 unclaimed
    run_id        TEXT,                          -- the run whose write-back last reached it
    adopted_at    TEXT DEFAULT (strftime('%Y-%m-%dT%H:%M:%fZ', 'now')),  -- RFC 3339 UTC, arrival
    purged_at     TEXT,                          -- RFC 3339 UTC, when purge erased its personal data
    CHECK ((sent IS NULL) = (outcome IS NULL)),
    CHECK (purged_at IS NULL OR outcome IS NOT NULL)
) WITHOUT ROWID;
INSERT INTO ca_notify_state_v4 (record_id, sent, outcome, reason, dedup_uuid, attempts,
                                last_deferral, processed_at, claim_token, claimed_by, lease_until,
                                run_id, adopted_at)
SELECT record_id, sent, outcome, reason, dedup_uuid, attempts,
       last_deferral, processed_at, claim_token, claimed_by, lease_until, run_id, NULL
  FROM ca_notify_state;
DROP TABLE ca_notify_state;
ALTER TABLE ca_notify_state_v4 RENAME TO ca_notify_state;
CREATE INDEX ca_notify_state_pending ON ca_notify_state (lease_until)
    WHERE outcome IS NULL;
CREATE INDEX ca_notify_state_claim ON ca_notify_state (claim_token)
    WHERE claim_token IS NOT NULL;
CREATE INDEX ca_notify_state_texted ON ca_notify_state (dedup_uuid)
    WHERE sent = 1;
-- What purge reads: finished records not yet purged, by when they were written.
CREATE INDEX ca_notify_state_purgeable ON ca_notify_state (processed_at)
    WHERE outcome IS NOT NULL AND purged_at IS NULL;
-- What export reads for a record's first attempt.
CREATE INDEX ca_notify_attempts_record ON ca_notify_attempts (record_id, recorded_at);
-- A purge is recorded as a run (stop 'purge') with the number of records it erased.
ALTER TABLE ca_notify_runs ADD COLUMN purged INTEGER;";

// The write-back's cost (issue 14, item 7). SQLite evaluates `x IN (a, b, c, …)` with more
// than two constants by filling a temporary index with the list (libsqlite3-sys 0.35's
// SQLite 3.50.2, `sqlite3.c` lines 113654-113668, `sqlite3FindInIndex`), and a CHECK
// constraint is evaluated for every row a statement writes, so the outcome check built and
// dropped such an index for every record written: about 8 % of the command's instructions
// (docs/benchmarks.md). The same check as four comparisons builds nothing.
const MIGRATION_5: &str = "\
-- The state table is rebuilt (same columns, same rows, same constraints) for one CHECK:
-- outcome as four comparisons instead of an IN list, which SQLite evaluates by building a
-- temporary index every time the check runs (once per record written back).
DROP TRIGGER IF EXISTS ca_notify_adopt_insert;
DROP TRIGGER IF EXISTS ca_notify_adopt_update;
CREATE TABLE ca_notify_state_v5 (
    record_id     TEXT    NOT NULL PRIMARY KEY,  -- the source id, as text
    sent          INTEGER CHECK (sent IN (0, 1)),  -- 1 sent or already sent, 0 not, NULL undecided
    outcome       TEXT    CHECK (outcome = 'sent' OR outcome = 'already_sent'
                                 OR outcome = 'not_sent' OR outcome = 'unconfirmed'),
    reason        TEXT,                          -- stable reason code of the outcome
    dedup_uuid    TEXT,                          -- the uuid sent to the verification server
    attempts      INTEGER NOT NULL DEFAULT 0 CHECK (attempts >= 0),  -- write-backs that reached it
    last_deferral TEXT,                          -- why the last run deferred it
    processed_at  TEXT,                          -- RFC 3339 UTC, when the outcome was written
    claim_token   TEXT,                          -- the current claim, NULL when unclaimed or held
    claimed_by    TEXT,                          -- the worker holding it
    lease_until   INTEGER NOT NULL DEFAULT 0,    -- Unix ms when the claim or hold lapses; 0 unclaimed
    run_id        TEXT,                          -- the run whose write-back last reached it
    adopted_at    TEXT DEFAULT (strftime('%Y-%m-%dT%H:%M:%fZ', 'now')),  -- RFC 3339 UTC, arrival
    purged_at     TEXT,                          -- RFC 3339 UTC, when purge erased its personal data
    CHECK ((sent IS NULL) = (outcome IS NULL)),
    CHECK (purged_at IS NULL OR outcome IS NOT NULL)
) WITHOUT ROWID;
INSERT INTO ca_notify_state_v5 (record_id, sent, outcome, reason, dedup_uuid, attempts,
                                last_deferral, processed_at, claim_token, claimed_by, lease_until,
                                run_id, adopted_at, purged_at)
SELECT record_id, sent, outcome, reason, dedup_uuid, attempts,
       last_deferral, processed_at, claim_token, claimed_by, lease_until, run_id, adopted_at,
       purged_at
  FROM ca_notify_state;
DROP TABLE ca_notify_state;
ALTER TABLE ca_notify_state_v5 RENAME TO ca_notify_state;
CREATE INDEX ca_notify_state_pending ON ca_notify_state (lease_until)
    WHERE outcome IS NULL;
CREATE INDEX ca_notify_state_claim ON ca_notify_state (claim_token)
    WHERE claim_token IS NOT NULL;
CREATE INDEX ca_notify_state_texted ON ca_notify_state (dedup_uuid)
    WHERE sent = 1;
CREATE INDEX ca_notify_state_purgeable ON ca_notify_state (processed_at)
    WHERE outcome IS NOT NULL AND purged_at IS NULL;";

/// Migrates the state tables, creates the source table if it is missing, checks its
/// columns, and installs adoption. One transaction; idempotent. When a read-only look
/// finds everything in place (the usual case) it takes no write lock at all, so opening a
/// store never queues behind busy workers.
pub(crate) fn prepare(conn: &mut Connection, table: &ValidTable) -> Result<Prepared, StoreError> {
    if is_prepared(conn, table)? {
        check_columns(conn, table)?;
        return Ok(Prepared {
            version: SCHEMA_VERSION,
            created_source: false,
            adopted: None,
        });
    }
    let tx = conn.transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)?;
    let version = migrate(&tx)?;
    bind_source_table(&tx, table)?;
    let created_source = ensure_source_table(&tx, table)?;
    check_columns(&tx, table)?;
    ensure_id_index(&tx, table)?;
    let adopted = ensure_adoption(&tx, table)?;
    tx.commit()?;
    Ok(Prepared {
        version,
        created_source,
        adopted,
    })
}

/// Whether a previous [`prepare`] left this database at this build's version, bound to
/// this source table, with adoption installed (which it does in one transaction).
fn is_prepared(conn: &Connection, table: &ValidTable) -> Result<bool, StoreError> {
    let has_migrations: bool = conn.query_row(
        "SELECT EXISTS (SELECT 1 FROM sqlite_schema WHERE type = 'table' AND name = 'ca_notify_migrations')",
        [],
        |row| row.get(0),
    )?;
    if !has_migrations || applied_version(conn)? != SCHEMA_VERSION {
        return Ok(false);
    }
    let bound: Option<String> = conn
        .query_row(
            "SELECT value FROM ca_notify_meta WHERE key = 'source_table'",
            [],
            |row| row.get(0),
        )
        .optional()?;
    Ok(bound.as_deref() == Some(binding(table).as_str()) && adoption_installed(conn, table)?)
}

fn binding(table: &ValidTable) -> String {
    format!("{}({})", table.name, table.id).to_ascii_lowercase()
}

/// What [`prepare`] did.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Prepared {
    pub version: i64,
    pub created_source: bool,
    /// Source rows given a state row because adoption was (re)installed; `None` when it
    /// was already in place.
    pub adopted: Option<usize>,
}

fn migrate(tx: &Transaction<'_>) -> Result<i64, StoreError> {
    tx.execute_batch(
        "CREATE TABLE IF NOT EXISTS ca_notify_migrations (
             version     INTEGER NOT NULL PRIMARY KEY,
             description TEXT    NOT NULL,
             applied_at  TEXT    NOT NULL
         );",
    )?;
    let current: i64 = tx.query_row(
        "SELECT coalesce(max(version), 0) FROM ca_notify_migrations",
        [],
        |row| row.get(0),
    )?;
    if current > SCHEMA_VERSION {
        return Err(StoreError::Misconfigured(format!(
            "the database has schema version {current}, newer than this build's {SCHEMA_VERSION}; \
             use a newer ca-notify"
        )));
    }
    for &(version, description, ddl) in MIGRATIONS.iter().filter(|m| m.0 > current) {
        tx.execute_batch(ddl)?;
        tx.execute(
            "INSERT INTO ca_notify_migrations (version, description, applied_at) VALUES (?1, ?2, ?3)",
            params![version, description, crate::clock::now_rfc3339()],
        )?;
        tracing::info!(version, description, "Migrated the SQLite state schema.");
    }
    Ok(SCHEMA_VERSION)
}

/// One database holds the state of one source table: the ledger of table A must never
/// decide who in table B gets texted.
fn bind_source_table(tx: &Transaction<'_>, table: &ValidTable) -> Result<(), StoreError> {
    let binding = binding(table);
    let existing: Option<String> = tx
        .query_row(
            "SELECT value FROM ca_notify_meta WHERE key = 'source_table'",
            [],
            |row| row.get(0),
        )
        .optional()?;
    match existing {
        Some(existing) if existing != binding => Err(StoreError::Misconfigured(format!(
            "this database's state belongs to source table {existing}, not {binding}; \
             use another database file for another table"
        ))),
        Some(_) => Ok(()),
        None => {
            tx.execute(
                "INSERT INTO ca_notify_meta (key, value) VALUES ('source_table', ?1)",
                [binding],
            )?;
            Ok(())
        }
    }
}

/// Creates the source table with the configured columns when it does not exist.
fn ensure_source_table(tx: &Transaction<'_>, table: &ValidTable) -> Result<bool, StoreError> {
    let kind: Option<String> = tx
        .query_row(
            "SELECT type FROM sqlite_schema WHERE type IN ('table', 'view') AND name = ?1 COLLATE NOCASE",
            [table.name.as_str()],
            |row| row.get(0),
        )
        .optional()?;
    match kind.as_deref() {
        Some("table") => Ok(false),
        Some(_) => Err(StoreError::Misconfigured(format!(
            "source {} is a view; the store needs a table (it installs adoption triggers on it)",
            table.name
        ))),
        None => {
            tx.execute_batch(&source_table_ddl(table))?;
            tracing::info!(table = %table.name, "Created the source table.");
            Ok(true)
        }
    }
}

/// The names of the source table's columns, lower-cased.
pub(crate) fn source_columns(
    conn: &Connection,
    table: &ValidTable,
) -> Result<Vec<String>, StoreError> {
    let mut stmt = conn.prepare("SELECT lower(name) FROM pragma_table_info(?1)")?;
    let names = stmt
        .query_map([table.name.as_str()], |row| row.get::<_, String>(0))?
        .collect::<Result<Vec<_>, _>>()?;
    Ok(names)
}

pub(crate) fn check_columns(conn: &Connection, table: &ValidTable) -> Result<(), StoreError> {
    let present = source_columns(conn, table)?;
    if present.is_empty() {
        return Err(StoreError::Misconfigured(format!(
            "source table {} does not exist",
            table.name
        )));
    }
    let missing: Vec<&str> = table
        .columns()
        .iter()
        .flatten()
        .map(|c| c.as_str())
        .filter(|c| !present.contains(&c.to_ascii_lowercase()))
        .collect();
    if missing.is_empty() {
        Ok(())
    } else {
        Err(StoreError::Misconfigured(format!(
            "source table {} has no column(s) {}",
            table.name,
            missing.join(", ")
        )))
    }
}

/// Claims read source rows back by id; without an index on it every read scans the table.
fn ensure_id_index(tx: &Transaction<'_>, table: &ValidTable) -> Result<(), StoreError> {
    let indexed: bool = tx.query_row(
        "SELECT EXISTS (
             SELECT 1 FROM pragma_index_list(?1) AS il, pragma_index_info(il.name) AS ii
              WHERE ii.seqno = 0 AND ii.name = ?2 COLLATE NOCASE)
         OR EXISTS (
             SELECT 1 FROM pragma_table_info(?1)
              WHERE name = ?2 COLLATE NOCASE AND pk = 1 AND upper(type) = 'INTEGER'
                AND (SELECT count(*) FROM pragma_table_info(?1) WHERE pk > 0) = 1)",
        params![table.name.as_str(), table.id.as_str()],
        |row| row.get(0),
    )?;
    if !indexed {
        tx.execute_batch(&id_index_ddl(table))?;
        tracing::info!(table = %table.name, "Indexed the source table's id column.");
    }
    Ok(())
}

/// Installs the adoption triggers if either is missing (a new database, or a source table
/// that was dropped and re-created, which drops its triggers) and adopts every source row
/// that has no state row yet, in the same transaction.
fn ensure_adoption(tx: &Transaction<'_>, table: &ValidTable) -> Result<Option<usize>, StoreError> {
    let installed: i64 = tx.query_row(
        "SELECT count(*) FROM sqlite_schema WHERE type = 'trigger' AND tbl_name = ?1 COLLATE NOCASE
            AND name IN (?2, ?3)",
        params![table.name.as_str(), INSERT_TRIGGER, UPDATE_TRIGGER],
        |row| row.get(0),
    )?;
    if installed == 2 {
        return Ok(None);
    }
    tx.execute_batch(&format!(
        "DROP TRIGGER IF EXISTS {INSERT_TRIGGER}; DROP TRIGGER IF EXISTS {UPDATE_TRIGGER};"
    ))?;
    tx.execute_batch(&adoption_ddl(table))?;
    let adopted = tx.execute(&adopt_existing_sql(table), [])?;
    tracing::info!(table = %table.name, adopted, "Installed adoption of source rows.");
    Ok(Some(adopted))
}

/// The source table as [`SqliteStore::open`](crate::SqliteStore::open) creates it when it
/// is missing: the configured columns, all `TEXT`, the id the primary key.
fn source_table_ddl(table: &ValidTable) -> String {
    let mut columns = vec![format!("{} TEXT NOT NULL PRIMARY KEY", table.id.quoted())];
    columns.extend(
        table.columns()[1..]
            .iter()
            .flatten()
            .map(|c| format!("{} TEXT", c.quoted())),
    );
    format!(
        "CREATE TABLE IF NOT EXISTS {} (\n    {}\n);",
        table.name.quoted(),
        columns.join(",\n    ")
    )
}

fn id_index_ddl(table: &ValidTable) -> String {
    format!(
        "CREATE INDEX IF NOT EXISTS {SOURCE_ID_INDEX} ON {} ({});",
        table.name.quoted(),
        table.id.quoted()
    )
}

/// The two adoption triggers.
///
/// An upsert's DO NOTHING, not INSERT OR IGNORE: a trigger statement's own conflict
/// clause is overridden by the firing statement's (an `INSERT OR REPLACE` into the source
/// would then replace, and so wipe, the record's state; sqlite.org/lang_createtrigger.html),
/// while an upsert clause always wins (`sqlite3GenerateConstraintChecks`). VALUES rather
/// than INSERT … SELECT … NOT EXISTS also spares a temporary table per inserted row.
fn adoption_ddl(table: &ValidTable) -> String {
    let src = table.name.quoted();
    let id = table.id.quoted();
    let adopt_new = format!(
        "INSERT INTO ca_notify_state (record_id) VALUES (CAST(NEW.{id} AS TEXT))\n        \
         ON CONFLICT (record_id) DO NOTHING;"
    );
    format!(
        "CREATE TRIGGER {INSERT_TRIGGER} AFTER INSERT ON {src} WHEN NEW.{id} IS NOT NULL\n\
         BEGIN\n    {adopt_new}\nEND;\n\
         CREATE TRIGGER {UPDATE_TRIGGER} AFTER UPDATE OF {id} ON {src} WHEN NEW.{id} IS NOT NULL\n\
         BEGIN\n    {adopt_new}\nEND;"
    )
}

/// Gives every source row that has none its state row (run with the triggers' creation).
fn adopt_existing_sql(table: &ValidTable) -> String {
    let src = table.name.quoted();
    let id = table.id.quoted();
    format!(
        "INSERT INTO ca_notify_state (record_id)\n\
         SELECT DISTINCT CAST(r.{id} AS TEXT) FROM {src} AS r\n \
         WHERE r.{id} IS NOT NULL\n   \
         AND NOT EXISTS (SELECT 1 FROM ca_notify_state AS s WHERE s.record_id = CAST(r.{id} AS TEXT));"
    )
}

/// Everything [`SqliteStore::open`](crate::SqliteStore::open) may create for `table`, in
/// order, for a DBA to review: the state schema's migrations, then the source table (only
/// if missing), the id index (only if the id column has none), the adoption triggers and
/// the adoption of existing rows. `docs/store.md` shows it for the default table.
///
/// # Errors
/// [`InvalidIdentifier`] for a bad configured name.
pub fn ddl(table: &SourceTable) -> Result<String, InvalidIdentifier> {
    let table = ValidTable::new(table)?;
    let mut out = String::from(
        "-- Applied schema versions.\n\
         CREATE TABLE IF NOT EXISTS ca_notify_migrations (\n    \
         version     INTEGER NOT NULL PRIMARY KEY,\n    \
         description TEXT    NOT NULL,\n    \
         applied_at  TEXT    NOT NULL\n);\n",
    );
    for (version, description, sql) in MIGRATIONS {
        out.push_str(&format!(
            "\n-- Migration {version}: {description}.\n{sql}\n"
        ));
    }
    out.push_str(&format!(
        "\n-- The source table, only when it does not exist.\n{}\n\
         \n-- Only when the id column has no index of its own.\n{}\n\
         \n-- Adoption: every source row gets its state row in the transaction that inserts it.\n{}\n\
         \n-- Run with the triggers' creation: adopts the rows already there.\n{}\n",
        source_table_ddl(&table),
        id_index_ddl(&table),
        adoption_ddl(&table),
        adopt_existing_sql(&table)
    ));
    Ok(out)
}

/// The applied schema version, for `check`.
pub(crate) fn applied_version(conn: &Connection) -> Result<i64, StoreError> {
    Ok(conn.query_row(
        "SELECT coalesce(max(version), 0) FROM ca_notify_migrations",
        [],
        |row| row.get(0),
    )?)
}

/// Whether both adoption triggers are installed on the source table, for `check`.
pub(crate) fn adoption_installed(
    conn: &Connection,
    table: &ValidTable,
) -> Result<bool, StoreError> {
    let installed: i64 = conn.query_row(
        "SELECT count(*) FROM sqlite_schema WHERE type = 'trigger' AND tbl_name = ?1 COLLATE NOCASE
            AND name IN (?2, ?3)",
        params![table.name.as_str(), INSERT_TRIGGER, UPDATE_TRIGGER],
        |row| row.get(0),
    )?;
    Ok(installed == 2)
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    /// `docs/store.md` shows the DDL for review; it must be what the code runs.
    #[test]
    fn the_documented_ddl_is_the_ddl() {
        let doc = std::fs::read_to_string(
            std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../docs/store.md"),
        )
        .expect("docs/store.md");
        let begin = "<!-- sqlite-ddl:begin -->\n```sql\n";
        let block = doc
            .split_once(begin)
            .and_then(|(_, rest)| rest.split_once("```\n<!-- sqlite-ddl:end -->"))
            .map(|(block, _)| block)
            .expect("a sqlite-ddl block in docs/store.md");
        let ddl = ddl(&SourceTable::default()).expect("default table");
        assert_eq!(
            block.trim(),
            ddl.trim(),
            "regenerate the block from schema::ddl"
        );
    }

    /// A database that build v1 left, with decided, claimed and pending records, comes out
    /// of migration 2 with every state row as it was, adoption working, `unconfirmed`
    /// accepted and the new index and table in place.
    #[test]
    fn migration_2_keeps_every_state_row_and_reinstalls_adoption() {
        let table = ValidTable::new(&SourceTable::default()).expect("default table");
        let mut conn = Connection::open_in_memory().expect("memory");
        conn.execute_batch(&format!(
            "CREATE TABLE ca_notify_migrations (version INTEGER NOT NULL PRIMARY KEY,
                 description TEXT NOT NULL, applied_at TEXT NOT NULL);
             {MIGRATION_1}
             INSERT INTO ca_notify_migrations VALUES (1, 'v1', '2026-01-01T00:00:00Z');
             INSERT INTO ca_notify_meta VALUES ('source_table', '{}');
             {}
             {}
             INSERT INTO recipients (id, phone) VALUES ('1', 'a'), ('2', 'b'), ('3', 'c');
             UPDATE ca_notify_state SET sent = 1, outcome = 'sent', reason = NULL,
                 dedup_uuid = '00000000-0000-8000-8000-000000000001', attempts = 2,
                 processed_at = '2026-01-02T00:00:00Z' WHERE record_id = '1';
             UPDATE ca_notify_state SET claim_token = 't', claimed_by = 'w',
                 lease_until = 99, last_deferral = 'deadline', attempts = 1
               WHERE record_id = '2';",
            binding(&table),
            source_table_ddl(&table),
            adoption_ddl(&table),
        ))
        .expect("a v1 database");
        let rows = |conn: &Connection| {
            rows_as_text(
                conn,
                "SELECT record_id, sent, outcome, reason, dedup_uuid, attempts, last_deferral,
                        processed_at, claim_token, claimed_by, lease_until
                   FROM ca_notify_state ORDER BY record_id",
            )
        };
        let before = rows(&conn);
        assert_eq!(before.len(), 3);

        let prepared = prepare(&mut conn, &table).expect("migrates");
        assert_eq!(prepared.version, SCHEMA_VERSION);
        assert_eq!(
            prepared.adopted,
            Some(0),
            "adoption reinstalled, nothing to adopt"
        );
        assert_eq!(rows(&conn), before, "the rebuild changed a state row");
        assert!(adoption_installed(&conn, &table).expect("triggers"));
        conn.execute("INSERT INTO recipients (id, phone) VALUES ('4', 'd')", [])
            .expect("insert");
        assert_eq!(rows(&conn).len(), 4, "a new source row was not adopted");
        conn.execute(
            "UPDATE ca_notify_state SET sent = 0, outcome = 'unconfirmed' WHERE record_id = '3'",
            [],
        )
        .expect("unconfirmed is an outcome");
        let objects: i64 = conn
            .query_row(
                "SELECT count(*) FROM sqlite_schema WHERE name IN
                    ('ca_notify_state_texted', 'ca_notify_attempts', 'ca_notify_state_pending',
                     'ca_notify_state_claim')",
                [],
                |r| r.get(0),
            )
            .expect("schema");
        assert_eq!(objects, 4);
        assert!(
            is_prepared(&conn, &table).expect("look"),
            "a second open migrates again"
        );
    }

    /// A database that build v4 left, with records in every state, comes out of migration 5
    /// with every state row as it was (all fourteen columns), adoption working, the
    /// outcome check as strict as before, and the write-back's statement building no
    /// temporary index.
    #[test]
    fn migration_5_keeps_every_state_row_and_the_outcome_check() {
        let table = ValidTable::new(&SourceTable::default()).expect("default table");
        let mut conn = Connection::open_in_memory().expect("memory");
        conn.execute_batch(&format!(
            "CREATE TABLE ca_notify_migrations (version INTEGER NOT NULL PRIMARY KEY,
                 description TEXT NOT NULL, applied_at TEXT NOT NULL);
             {MIGRATION_1} {MIGRATION_2} {MIGRATION_3} {MIGRATION_4}
             INSERT INTO ca_notify_migrations VALUES (4, 'v4', '2026-01-01T00:00:00Z');
             INSERT INTO ca_notify_meta VALUES ('source_table', '{}');
             {}
             {}
             INSERT INTO recipients (id, phone) VALUES ('1', 'a'), ('2', 'b'), ('3', 'c'), ('4', 'd');
             UPDATE ca_notify_state SET sent = 1, outcome = 'sent', dedup_uuid = 'u1', attempts = 1,
                 processed_at = '2026-01-02T00:00:00.000Z', run_id = 'r1',
                 purged_at = '2026-02-01T00:00:00.000Z' WHERE record_id = '1';
             UPDATE ca_notify_state SET claim_token = 't', claimed_by = 'w', lease_until = 99,
                 last_deferral = 'deadline', attempts = 1 WHERE record_id = '2';
             UPDATE ca_notify_state SET sent = 0, outcome = 'not_sent', reason = 'landline',
                 dedup_uuid = 'u3', processed_at = '2026-01-03T00:00:00.000Z' WHERE record_id = '3';",
            binding(&table),
            source_table_ddl(&table),
            adoption_ddl(&table),
        ))
        .expect("a v4 database");
        let rows = |conn: &Connection| {
            let width = conn
                .prepare("SELECT * FROM ca_notify_state")
                .expect("select")
                .column_count();
            assert_eq!(width, 14, "every column of the state table");
            rows_as_text(conn, "SELECT * FROM ca_notify_state ORDER BY record_id")
        };
        let before = rows(&conn);
        assert_eq!(before.len(), 4);
        assert!(
            builds_a_temporary_index(&conn, crate::statements::WRITE_FINAL),
            "version 4's outcome check builds one per record written"
        );

        let prepared = prepare(&mut conn, &table).expect("migrates");
        assert_eq!(prepared.version, SCHEMA_VERSION);
        assert_eq!(
            prepared.adopted,
            Some(0),
            "adoption reinstalled, nothing to adopt"
        );
        assert_eq!(rows(&conn), before, "the rebuild changed a state row");
        conn.execute("INSERT INTO recipients (id, phone) VALUES ('5', 'e')", [])
            .expect("insert");
        assert_eq!(rows(&conn).len(), 5, "a new source row was not adopted");
        for outcome in ["sent", "already_sent", "not_sent", "unconfirmed"] {
            conn.execute(
                "UPDATE ca_notify_state SET sent = 0, outcome = ?1 WHERE record_id = '5'",
                [outcome],
            )
            .expect("an outcome");
        }
        let refused = conn
            .execute(
                "UPDATE ca_notify_state SET sent = 0, outcome = 'texted' WHERE record_id = '5'",
                [],
            )
            .expect_err("not an outcome");
        assert!(refused.to_string().contains("CHECK"), "{refused}");
        let indexes: i64 = conn
            .query_row(
                "SELECT count(*) FROM sqlite_schema WHERE type = 'index' AND tbl_name = 'ca_notify_state'
                    AND name IN ('ca_notify_state_pending', 'ca_notify_state_claim',
                                 'ca_notify_state_texted', 'ca_notify_state_purgeable')",
                [],
                |r| r.get(0),
            )
            .expect("schema");
        assert_eq!(indexes, 4);
        assert!(!builds_a_temporary_index(
            &conn,
            crate::statements::WRITE_FINAL
        ));
        assert!(
            is_prepared(&conn, &table).expect("look"),
            "a second open migrates again"
        );
    }

    /// Each row of `sql`, every column rendered and joined by `|`, to compare a table
    /// before and after a migration.
    fn rows_as_text(conn: &Connection, sql: &str) -> Vec<String> {
        let mut stmt = conn.prepare(sql).expect("select");
        let width = stmt.column_count();
        stmt.query_map([], |r| {
            let cells = (0..width)
                .map(|i| {
                    r.get::<_, rusqlite::types::Value>(i)
                        .map(|v| format!("{v:?}"))
                })
                .collect::<Result<Vec<_>, _>>()?;
            Ok(cells.join("|"))
        })
        .expect("rows")
        .collect::<Result<_, _>>()
        .expect("rows")
    }

    /// Whether the program of `sql` opens an ephemeral table (a temporary index).
    pub(crate) fn builds_a_temporary_index(conn: &Connection, sql: &str) -> bool {
        let mut stmt = conn.prepare(&format!("EXPLAIN {sql}")).expect("explain");
        let unbound = vec![rusqlite::types::Null; stmt.parameter_count()];
        let opcodes = stmt
            .query_map(rusqlite::params_from_iter(unbound), |r| {
                r.get::<_, String>(1)
            })
            .expect("program")
            .collect::<Result<Vec<_>, _>>()
            .expect("opcodes");
        opcodes.iter().any(|op| op == "OpenEphemeral")
    }

    #[test]
    fn the_ddl_runs_on_an_empty_database() {
        let conn = Connection::open_in_memory().expect("memory");
        conn.execute_batch(&ddl(&SourceTable::default()).expect("ddl"))
            .expect("the documented DDL runs");
    }
}
