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

use rusqlite::{params, Connection, OptionalExtension, Transaction};

use crate::config::ValidTable;
use crate::error::StoreError;

/// The state table: outcome, dedup uuid, attempts and claim per record id. No phones.
pub const STATE_TABLE: &str = "ca_notify_state";
/// The applied migrations, one row per version.
pub const MIGRATIONS_TABLE: &str = "ca_notify_migrations";
/// Facts about this database (which source table its state belongs to).
pub const META_TABLE: &str = "ca_notify_meta";
/// The newest schema version this build knows.
pub const SCHEMA_VERSION: i64 = MIGRATIONS[MIGRATIONS.len() - 1].0;

const INSERT_TRIGGER: &str = "ca_notify_adopt_insert";
const UPDATE_TRIGGER: &str = "ca_notify_adopt_update";
const SOURCE_ID_INDEX: &str = "ca_notify_source_id";

/// `(version, description, DDL)`. Never edit a released entry; append a new one.
const MIGRATIONS: &[(i64, &str, &str)] = &[(
    1,
    "state table with pending and claim indexes; meta table",
    "CREATE TABLE ca_notify_state (
         record_id      TEXT    NOT NULL PRIMARY KEY,
         sent           INTEGER CHECK (sent IN (0, 1)),
         outcome        TEXT    CHECK (outcome IN ('sent', 'already_sent', 'not_sent')),
         reason         TEXT,
         dedup_uuid     TEXT,
         attempts       INTEGER NOT NULL DEFAULT 0 CHECK (attempts >= 0),
         last_deferral  TEXT,
         processed_at   TEXT,
         claim_token    TEXT,
         claimed_by     TEXT,
         lease_until    INTEGER NOT NULL DEFAULT 0,
         CHECK ((sent IS NULL) = (outcome IS NULL))
     ) WITHOUT ROWID;
     CREATE INDEX ca_notify_state_pending ON ca_notify_state (lease_until)
         WHERE outcome IS NULL;
     CREATE INDEX ca_notify_state_claim ON ca_notify_state (claim_token)
         WHERE claim_token IS NOT NULL;
     CREATE TABLE ca_notify_meta (
         key   TEXT NOT NULL PRIMARY KEY,
         value TEXT NOT NULL
     ) WITHOUT ROWID;",
)];

/// Migrates the state tables, creates the source table if it is missing, checks its
/// columns, and installs adoption. One transaction; idempotent.
pub(crate) fn prepare(conn: &mut Connection, table: &ValidTable) -> Result<Prepared, StoreError> {
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
    let binding = format!("{}({})", table.name, table.id).to_ascii_lowercase();
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
            let mut columns = vec![format!("{} TEXT NOT NULL PRIMARY KEY", table.id.quoted())];
            columns.extend(
                table.columns()[1..]
                    .iter()
                    .flatten()
                    .map(|c| format!("{} TEXT", c.quoted())),
            );
            tx.execute_batch(&format!(
                "CREATE TABLE {} ({})",
                table.name.quoted(),
                columns.join(", ")
            ))?;
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
        tx.execute_batch(&format!(
            "CREATE INDEX IF NOT EXISTS {SOURCE_ID_INDEX} ON {} ({})",
            table.name.quoted(),
            table.id.quoted()
        ))?;
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
    let src = table.name.quoted();
    let id = table.id.quoted();
    // NOT EXISTS instead of INSERT OR IGNORE: a trigger's conflict clause is overridden by
    // the firing statement's (an `INSERT OR REPLACE` into the source would then replace,
    // and so wipe, the record's state; sqlite.org/lang_createtrigger.html).
    let adopt_new = format!(
        "INSERT INTO ca_notify_state (record_id) SELECT CAST(NEW.{id} AS TEXT)
          WHERE NOT EXISTS (SELECT 1 FROM ca_notify_state WHERE record_id = CAST(NEW.{id} AS TEXT));"
    );
    tx.execute_batch(&format!(
        "DROP TRIGGER IF EXISTS {INSERT_TRIGGER};
         DROP TRIGGER IF EXISTS {UPDATE_TRIGGER};
         CREATE TRIGGER {INSERT_TRIGGER} AFTER INSERT ON {src} WHEN NEW.{id} IS NOT NULL
         BEGIN {adopt_new} END;
         CREATE TRIGGER {UPDATE_TRIGGER} AFTER UPDATE OF {id} ON {src} WHEN NEW.{id} IS NOT NULL
         BEGIN {adopt_new} END;"
    ))?;
    let adopted = tx.execute(
        &format!(
            "INSERT INTO ca_notify_state (record_id)
             SELECT DISTINCT CAST(r.{id} AS TEXT) FROM {src} AS r
              WHERE r.{id} IS NOT NULL
                AND NOT EXISTS (SELECT 1 FROM ca_notify_state AS s
                                 WHERE s.record_id = CAST(r.{id} AS TEXT))"
        ),
        [],
    )?;
    tracing::info!(table = %table.name, adopted, "Installed adoption of source rows.");
    Ok(Some(adopted))
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
