//! The Snowflake store: claims recipients from the configured table and keeps the ledger
//! of outcomes in its own state table, through the `PhoneSource` and `ResultSink` ports.
//!
//! Claim protocol (docs/store-snowflake.md has the full argument, from Snowflake's
//! documented rules):
//! 0. one cheap `SELECT … LIMIT 1` asks whether anything waits; when nothing does, the
//!    claim ends there (an idle run costs one statement and takes no lock);
//! 1. one explicit transaction: `UPDATE` of the claim lock row (claims queue here), then
//!    an `INSERT` giving new source records their state row, then an `UPDATE` stamping a
//!    fresh token and a lease on up to N rows with no outcome and no live lease (checked
//!    again on each row it changes), then `COMMIT`. Every statement after the lock began
//!    after the previous claim committed, so it sees that claim's rows and stamps;
//! 2. one `SELECT` reads back exactly the records that carry the token;
//! 3. one `INSERT` appends the batch's attempt answers to the attempt log (each unless
//!    the log holds it already), then one `MERGE` writes the outcomes, only where the
//!    token still holds, so a worker whose lease ran out cannot overwrite a record someone
//!    else took, and a repeated write finds nothing left to change.
//!
//! The two statements of a write-back are not one transaction (fakesnow cannot run a
//! `MERGE` inside one, and a transaction would hold the state table's lock across round
//! trips); the log goes first, and both are idempotent, so every prefix of a write-back
//! is true (attempts are facts whether or not the state follows), and the retry that
//! `Unavailable` asks for completes it without doubling anything.

use std::collections::{HashMap, HashSet};
use std::fmt;
use std::time::Duration;

use async_trait::async_trait;
use ca_notify_domain::{
    ClaimToken, DedupKey, KeyHistory, Outcome, RecipientRecord, RecordId, RecordOutcome,
};
use ca_notify_ports::{Claim, PhoneSource, ResultSink, SinkError, SourceError, WriteReceipt};

use crate::config::{Names, SnowflakeConfig};
use crate::connection::{Answer, Connection};
use crate::decode::{self, DecodeError};
use crate::error::StoreError;
use crate::report::{CheckReport, ColumnReport, MigrationReport};
use crate::schema::{self, MIGRATIONS};
use crate::sql::{self, AttemptRow, Limit, OutcomeRow, Sql, WriteAction};

/// Most ids in one `IN (…)` list, and most outcomes in one write-back statement; larger
/// requests are split into statements of this size, each atomic and idempotent.
const MAX_ROWS_PER_STATEMENT: usize = 1000;
/// Longest lease we stamp (a longer one is surely a mistake, and would hide a crash).
const MAX_LEASE: Duration = Duration::from_secs(7 * 24 * 3600);

/// `PhoneSource` and `ResultSink` over Snowflake. One session per handle; open one handle
/// per concurrent worker.
pub struct SnowflakeStore {
    pub(crate) conn: Connection,
    pub(crate) names: Names,
    worker_id: String,
    run_id: String,
    /// What the last statement said about waiting records, so a claim can skip its hint
    /// (see [`Hint`]).
    hint: std::sync::Mutex<Hint>,
    /// The run whose id write-backs stamp (`RunLog::start_run`); its start is written
    /// with its end, in one statement (`runs.rs`).
    current_run: std::sync::Mutex<Option<ca_notify_ports::RunStart>>,
    /// The run [`SnowflakeStore::prepare_for_run`] recorded in advance as finding nothing
    /// to claim, while no claim statement has run since: its end costs no statement when
    /// it ends so, and its backlog is known to be empty (`runs.rs`).
    pub(crate) idle_run: std::sync::Mutex<Option<ca_notify_ports::RunId>>,
}

/// What the store knows about waiting records before a claim.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Hint {
    /// Nothing: the claim asks first (`claim_hint`).
    Unknown,
    /// Records wait (the run's status said so, or the last claim was full): the claim
    /// goes straight to its transaction.
    Waiting,
    /// The run's status just said nothing waits: the next claim is empty without a
    /// statement (a record arriving since is taken by the next run, as if it had arrived
    /// a moment later).
    Idle,
}

/// What [`SnowflakeStore::prepare_for_run`] found and did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RunReadiness {
    /// The schema version found (0: no state tables).
    pub found_version: u32,
    /// The schema version now.
    pub version: u32,
    /// Whether any record waits for a claim (`None` when a migration ran first).
    pub waiting: Option<bool>,
}

impl fmt::Debug for SnowflakeStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SnowflakeStore")
            .field("connection", &self.conn)
            .field("source_table", &self.names.source.table)
            .field("state_table", &self.names.state)
            .field("worker_id", &self.worker_id)
            .finish()
    }
}

impl SnowflakeStore {
    /// Validates the configuration and logs in.
    ///
    /// # Errors
    /// [`StoreError::Misconfigured`] for an invalid configuration or refused credentials;
    /// [`StoreError::Unavailable`] when Snowflake cannot be reached.
    pub async fn connect(config: SnowflakeConfig) -> Result<Self, StoreError> {
        config
            .validate()
            .map_err(|e| StoreError::Misconfigured(e.to_string()))?;
        let names = config
            .names()
            .map_err(|e| StoreError::Misconfigured(e.to_string()))?;
        let run_id = config
            .run_id
            .as_deref()
            .map(str::trim)
            .map_or_else(|| uuid::Uuid::new_v4().to_string(), str::to_owned);
        let conn = Connection::new(&config, &run_id)?;
        conn.ensure_session().await?;
        Ok(Self {
            conn,
            names,
            worker_id: config.worker_id.trim().to_owned(),
            run_id,
            hint: std::sync::Mutex::new(Hint::Unknown),
            current_run: std::sync::Mutex::new(None),
            idle_run: std::sync::Mutex::new(None),
        })
    }

    /// The run id in this handle's `QUERY_TAG`.
    pub fn run_id(&self) -> &str {
        &self.run_id
    }

    /// The `QUERY_TAG` every statement of this handle carries.
    pub fn query_tag(&self) -> &str {
        self.conn.query_tag()
    }

    /// What a run does first. Given the `run` about to start, one statement records it
    /// in the runs table as a run that found nothing to claim — only if the schema is
    /// this build's and nothing waits — and that is the whole cost of an idle run: its
    /// first claim, its end ([`RunEnd::is_nothing_to_claim`]) and its backlog then cost
    /// no statement. Otherwise (or without a `run`) one statement reads the schema
    /// version and whether anything waits; a state table behind this build is migrated
    /// when `auto_migrate` allows, and otherwise refused with a message naming
    /// `ca-notify migrate`. When nothing waits, the run's first claim costs no statement.
    ///
    /// [`RunEnd::is_nothing_to_claim`]: ca_notify_ports::RunEnd::is_nothing_to_claim
    ///
    /// # Errors
    /// [`StoreError::Misconfigured`] for a schema this build cannot run on (missing or
    /// older with `auto_migrate` off, or newer); as [`SnowflakeStore::migrate`] otherwise.
    pub async fn prepare_for_run(
        &self,
        auto_migrate: bool,
        run: Option<&ca_notify_ports::RunStart>,
    ) -> Result<RunReadiness, StoreError> {
        let latest = schema::latest_version();
        if let Some(run) = run {
            if self.record_idle_run(run, latest).await {
                return Ok(RunReadiness {
                    found_version: latest,
                    version: latest,
                    waiting: Some(false),
                });
            }
        }
        let (found, waiting) = match self
            .conn
            .run("reading the run status", &sql::run_status(&self.names))
            .await
        {
            Ok(answer) => {
                let cell = |i: usize, what: &str| -> Result<u64, StoreError> {
                    let cell = answer
                        .rows
                        .first()
                        .and_then(|row| row.values().get(i))
                        .ok_or_else(|| {
                            decode_error(DecodeError(format!("no {what} in the run status")))
                        })?;
                    decode::count(cell, what).map_err(decode_error)
                };
                let version = u32::try_from(cell(0, "schema version")?).unwrap_or(u32::MAX);
                (version, Some(cell(1, "waiting records")? > 0))
            }
            // No state tables (or not all of them) yet: ask for the version alone. When
            // the tables are all there, the status failed for another reason (the source
            // table, a grant): that is the error to report.
            Err(StoreError::Misconfigured(m)) => match self.schema_version().await? {
                Some(version) if version >= latest => {
                    return Err(self.hint_migration(StoreError::Misconfigured(m)))
                }
                version => (version.unwrap_or(0), None),
            },
            Err(e) => return Err(e),
        };
        if found > latest {
            return Err(StoreError::Misconfigured(format!(
                "the state table {} is at schema version {found}, newer than this build knows ({latest}); upgrade ca-notify",
                self.names.state
            )));
        }
        if found == latest && waiting.is_some() {
            self.set_hint(if waiting == Some(true) {
                Hint::Waiting
            } else {
                Hint::Idle
            });
            return Ok(RunReadiness {
                found_version: found,
                version: found,
                waiting,
            });
        }
        if !auto_migrate {
            return Err(StoreError::Misconfigured(format!(
                "the state table {} is at schema version {found}, this build needs {latest}, and snowflake.auto_migrate is off; run `ca-notify migrate` (or have a DBA run `ca-notify migrate --print`)",
                self.names.state
            )));
        }
        let report = self.migrate().await?;
        Ok(RunReadiness {
            found_version: found,
            version: report.to_version,
            waiting: None,
        })
    }

    /// Records `run` as a run that found nothing to claim, if the schema is `latest` and
    /// nothing waits; whether it did. A failed statement (tables missing, a grant, the
    /// network) records nothing: the run status that follows reports what is wrong.
    async fn record_idle_run(&self, run: &ca_notify_ports::RunStart, latest: u32) -> bool {
        let statement = crate::runs::record_idle_run(&self.names, latest, run);
        let recorded = match self.conn.run("recording an idle run", &statement).await {
            Ok(answer) => rows_changed(&answer).is_ok_and(|n| n == 1),
            Err(e) => {
                tracing::debug!(error = %e, "Could not record an idle run; reading the run status.");
                false
            }
        };
        if recorded {
            self.set_hint(Hint::Idle);
            *self
                .idle_run
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner) = Some(run.id.clone());
        }
        recorded
    }

    /// Forgets the idle run: a claim statement is about to run, so what it knew about
    /// waiting records no longer holds.
    fn forget_idle_run(&self) {
        *self
            .idle_run
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner) = None;
    }

    fn set_hint(&self, hint: Hint) {
        *self
            .hint
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner) = hint;
    }

    /// The hint for this claim; an `Idle` hint is used once.
    fn take_hint(&self) -> Hint {
        let mut slot = self
            .hint
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let hint = *slot;
        if hint == Hint::Idle {
            *slot = Hint::Unknown;
        }
        hint
    }

    /// Runs `SELECT 1`, checks that the source table and every configured column exist
    /// and are readable, and reports the state table's schema version and the number of
    /// records waiting.
    ///
    /// # Errors
    /// [`StoreError::Misconfigured`] naming the missing table or columns; as
    /// [`SnowflakeStore::connect`] otherwise.
    pub async fn check(&self) -> Result<CheckReport, StoreError> {
        self.conn
            .run("running SELECT 1", &sql::select_one())
            .await?;
        let source = self.names.source.table.sql();
        self.conn
            .run("reading the source table", &sql::probe(&source, &[]))
            .await
            .map_err(|e| misconfigured_with(e, &format!("the source table {source}")))?;
        let columns = self.source_columns();
        let quoted: Vec<String> = columns.iter().map(|(_, c)| c.sql()).collect();
        let answer = match self
            .conn
            .run("reading the source columns", &sql::probe(&source, &quoted))
            .await
        {
            Ok(answer) => answer,
            Err(StoreError::Misconfigured(_)) => return Err(self.name_missing_columns().await),
            Err(e) => return Err(e),
        };
        let source_columns = columns
            .iter()
            .zip(&answer.columns)
            .map(|((role, ident), (_, ty))| ColumnReport {
                role,
                name: ident.name().to_owned(),
                snowflake_type: ty.clone(),
            })
            .collect();
        let schema_version = self.schema_version().await?;
        let pending_records = match schema_version {
            Some(v) if v >= 1 => {
                self.verify_binding().await?;
                let state = self.names.state.sql();
                let state_columns: Vec<String> = schema::STATE_COLUMNS
                    .iter()
                    .map(|c| (*c).to_owned())
                    .collect();
                self.conn
                    .run(
                        "reading the state table",
                        &sql::probe(&state, &state_columns),
                    )
                    .await
                    .map_err(|e| misconfigured_with(e, &format!("the state table {state}")))?;
                if v >= 2 {
                    let log = self.names.attempts.sql();
                    let log_columns: Vec<String> = schema::ATTEMPT_COLUMNS
                        .iter()
                        .map(|c| (*c).to_owned())
                        .collect();
                    self.conn
                        .run("reading the attempt log", &sql::probe(&log, &log_columns))
                        .await
                        .map_err(|e| misconfigured_with(e, &format!("the attempt log {log}")))?;
                }
                if v >= 3 {
                    let lock = self.names.lock.sql();
                    self.conn
                        .run(
                            "reading the claim lock",
                            &sql::probe(&lock, &["NAME".to_owned(), "HOLDER".to_owned()]),
                        )
                        .await
                        .map_err(|e| misconfigured_with(e, &format!("the claim lock {lock}")))?;
                }
                if v >= 4 {
                    let runs = self.names.runs.sql();
                    let run_columns: Vec<String> = schema::RUN_COLUMNS
                        .iter()
                        .map(|c| (*c).to_owned())
                        .collect();
                    self.conn
                        .run("reading the runs table", &sql::probe(&runs, &run_columns))
                        .await
                        .map_err(|e| misconfigured_with(e, &format!("the runs table {runs}")))?;
                }
                let answer = self
                    .conn
                    .run("counting waiting records", &sql::backlog(&self.names))
                    .await?;
                Some(first_count(&answer, "count of waiting records")?)
            }
            _ => None,
        };
        Ok(CheckReport {
            source_table: source,
            source_columns,
            state_table: self.names.state.sql(),
            schema_version,
            latest_schema_version: schema::latest_version(),
            pending_records,
        })
    }

    /// Creates the state table, or brings it up to this build's schema version. Safe to
    /// run again, and from several workers at once.
    ///
    /// # Errors
    /// [`StoreError::Misconfigured`] when the role may not create tables in the schema, or
    /// the table is at a newer version than this build knows; as
    /// [`SnowflakeStore::connect`] otherwise.
    pub async fn migrate(&self) -> Result<MigrationReport, StoreError> {
        self.conn
            .run(
                "creating the migrations table",
                &schema::create_migrations_table(&self.names),
            )
            .await?;
        let from = self.schema_version().await?.unwrap_or(0);
        let latest = schema::latest_version();
        if from > latest {
            return Err(StoreError::Misconfigured(format!(
                "the state table {} is at schema version {from}, newer than this build knows ({latest}); upgrade ca-notify",
                self.names.state
            )));
        }
        for migration in MIGRATIONS.iter().filter(|m| m.version > from) {
            for statement in (migration.statements)(&self.names) {
                let ddl = Sql {
                    text: statement,
                    binds: Vec::new(),
                };
                self.conn.run("migrating the state table", &ddl).await?;
            }
            self.conn
                .run(
                    "recording the schema version",
                    &schema::record_version(&self.names, migration, &self.worker_id),
                )
                .await?;
            tracing::info!(
                version = migration.version,
                description = migration.description,
                state_table = %self.names.state,
                "Applied a state table migration."
            );
        }
        self.conn
            .run(
                "recording the source table",
                &schema::record_binding(&self.names),
            )
            .await?;
        self.verify_binding().await?;
        Ok(MigrationReport {
            from_version: from,
            to_version: latest.max(from),
        })
    }

    /// Fails unless the state table belongs to the configured source table: record ids
    /// of two tables can collide, and the ledger of one must never decide who in the
    /// other is texted.
    async fn verify_binding(&self) -> Result<(), StoreError> {
        let answer = self
            .conn
            .run(
                "reading the state table's source",
                &schema::read_binding(&self.names),
            )
            .await?;
        let ours = schema::binding(&self.names);
        for row in &answer.rows {
            let recorded = row
                .values()
                .first()
                .map(|cell| decode::text(cell, "source table"))
                .transpose()
                .map_err(decode_error)?
                .flatten()
                .unwrap_or_default();
            if recorded != ours {
                return Err(StoreError::Misconfigured(format!(
                    "the state table {} keeps the ledger of source table {recorded}, not {ours}; \
                     configure another snowflake.state_table for another source table",
                    self.names.state
                )));
            }
        }
        Ok(())
    }

    /// The state table's schema version, `None` when the migrations table does not exist.
    async fn schema_version(&self) -> Result<Option<u32>, StoreError> {
        match self
            .conn
            .run(
                "reading the schema version",
                &schema::current_version(&self.names),
            )
            .await
        {
            Ok(answer) => {
                let v = first_count(&answer, "schema version")?;
                Ok(Some(u32::try_from(v).unwrap_or(u32::MAX)).filter(|v| *v > 0))
            }
            Err(StoreError::Misconfigured(_)) => Ok(None),
            Err(e) => Err(e),
        }
    }

    fn source_columns(&self) -> Vec<(&'static str, &crate::ident::Ident)> {
        let s = &self.names.source;
        let mut columns = vec![("id", &s.id), ("phone", &s.phone)];
        let optional = [
            ("test_date", s.test_date.as_ref()),
            ("symptom_date", s.symptom_date.as_ref()),
            ("test_type", s.test_type.as_ref()),
            ("tz_offset", s.tz_offset.as_ref()),
        ];
        columns.extend(optional.into_iter().filter_map(|(r, c)| c.map(|c| (r, c))));
        columns
    }

    /// Probes each configured column alone, so the error names every missing one.
    async fn name_missing_columns(&self) -> StoreError {
        let source = self.names.source.table.sql();
        let mut missing = Vec::new();
        for (role, column) in self.source_columns() {
            let probe = sql::probe(&source, &[column.sql()]);
            match self.conn.run("reading a source column", &probe).await {
                Ok(_) => {}
                Err(StoreError::Misconfigured(_)) => {
                    missing.push(format!("{} (snowflake.table.{role}_column)", column.sql()));
                }
                Err(e) => return e,
            }
        }
        StoreError::Misconfigured(format!(
            "the source table {source} has no readable column {}",
            missing.join(", ")
        ))
    }

    /// Makes `id` the run whose id this store's write-backs stamp.
    pub(crate) fn set_current_run(&self, run: &ca_notify_ports::RunStart) {
        *self
            .current_run
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner) = Some(run.clone());
    }

    /// The run recorded in advance as idle, while no claim statement has run since.
    pub(crate) fn idle_run(&self) -> Option<ca_notify_ports::RunId> {
        self.idle_run
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .clone()
    }

    /// The current run's start, if it is `id`.
    pub(crate) fn run_start(
        &self,
        id: &ca_notify_ports::RunId,
    ) -> Option<ca_notify_ports::RunStart> {
        self.current_run
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .clone()
            .filter(|run| &run.id == id)
    }

    fn current_run(&self) -> Option<String> {
        self.current_run
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .as_ref()
            .map(|run| run.id.to_string())
    }

    pub(crate) fn hint_migration(&self, e: StoreError) -> StoreError {
        match e {
            StoreError::Misconfigured(m) => StoreError::Misconfigured(format!(
                "{m} (does the state table {} exist? run the migration to create it)",
                self.names.state
            )),
            other => other,
        }
    }

    async fn read_records(
        &self,
        what: &str,
        query: &Sql,
    ) -> Result<Vec<RecipientRecord>, StoreError> {
        let answer = self.conn.run(what, query).await?;
        let mut records = Vec::with_capacity(answer.rows.len());
        for row in &answer.rows {
            let row = decode::source_row(row.values()).map_err(decode_error)?;
            if row.source_rows > 1 {
                tracing::warn!(
                    record_id = %row.record.id,
                    source_rows = row.source_rows,
                    "The source table has several rows with this id; only one of them is processed."
                );
            }
            if row.bad_tz_offset {
                tracing::warn!(
                    record_id = %row.record.id,
                    "The time-zone offset column does not hold whole minutes; the record is read without one."
                );
            }
            records.push(row.record);
        }
        Ok(records)
    }
}

fn misconfigured_with(e: StoreError, what: &str) -> StoreError {
    match e {
        StoreError::Misconfigured(m) => {
            StoreError::Misconfigured(format!("{what} does not exist or is not readable: {m}"))
        }
        other => other,
    }
}

pub(crate) fn decode_error(e: DecodeError) -> StoreError {
    StoreError::Unknown(anyhow::Error::new(e))
}

/// The first cell of the first row, as a count.
pub(crate) fn first_count(answer: &Answer, what: &str) -> Result<u64, StoreError> {
    let cell = answer
        .rows
        .first()
        .and_then(|row| row.values().first())
        .ok_or_else(|| decode_error(DecodeError(format!("no {what} in the answer"))))?;
    decode::count(cell, what).map_err(decode_error)
}

/// Rows a DML statement changed: Snowflake answers one row with a column per action
/// (`number of rows inserted`, `number of rows updated`, `number of rows deleted`).
pub(crate) fn rows_changed(answer: &Answer) -> Result<u64, StoreError> {
    const ACTIONS: [&str; 3] = [
        "number of rows inserted",
        "number of rows updated",
        "number of rows deleted",
    ];
    let Some(row) = answer.rows.first() else {
        return Ok(0);
    };
    let mut total = 0;
    let mut recognised = false;
    for ((name, _), cell) in answer.columns.iter().zip(row.values()) {
        if ACTIONS.iter().any(|a| name.eq_ignore_ascii_case(a)) {
            recognised = true;
            total += decode::count(cell, name).map_err(decode_error)?;
        }
    }
    if recognised {
        Ok(total)
    } else {
        first_count(answer, "row count")
    }
}

/// The lease in whole milliseconds, at least one and at most [`MAX_LEASE`].
fn lease_millis(lease: Duration) -> i64 {
    i64::try_from(lease.min(MAX_LEASE).as_millis())
        .unwrap_or(i64::MAX)
        .max(1)
}

/// What a write-back sends: one outcome row per record id (the first wins), the attempt
/// log entries of those outcomes, and how many duplicates were dropped.
struct WriteRows {
    outcomes: Vec<OutcomeRow>,
    attempts: Vec<AttemptRow>,
    duplicates: usize,
}

fn write_rows(outcomes: &[RecordOutcome]) -> WriteRows {
    let mut seen = HashSet::with_capacity(outcomes.len());
    let mut rows = Vec::with_capacity(outcomes.len());
    let mut attempts = Vec::new();
    for o in outcomes {
        if !seen.insert(&o.id) {
            tracing::warn!(
                record_id = %o.id,
                "A write-back batch holds this record twice; only the first outcome is written."
            );
            continue;
        }
        let dedup_uuid = o.dedup_key.map(|k| k.to_string());
        match &dedup_uuid {
            Some(uuid) => {
                attempts.extend(o.attempts.iter().enumerate().map(|(i, answer)| AttemptRow {
                    dedup_uuid: uuid.clone(),
                    id: o.id.clone(),
                    index: i64::try_from(i).unwrap_or(i64::MAX),
                    answer: answer.code(),
                }))
            }
            None if !o.attempts.is_empty() => tracing::warn!(
                record_id = %o.id,
                "An outcome carries attempts but no dedup uuid; they cannot be kept."
            ),
            None => {}
        }
        let action = match &o.outcome {
            Outcome::Deferred { reason } if reason.holds_the_claim() => WriteAction::Hold,
            Outcome::Deferred { .. } => WriteAction::Release,
            _ => WriteAction::Final,
        };
        rows.push(OutcomeRow {
            id: o.id.clone(),
            sent: o.outcome.sent_flag(),
            outcome: action.is_final().then(|| o.outcome.label().to_owned()),
            reason: Some(o.outcome.reason_code()).filter(|r| !r.is_empty()),
            dedup_uuid,
            action,
        });
    }
    WriteRows {
        duplicates: outcomes.len() - rows.len(),
        outcomes: rows,
        attempts,
    }
}

/// Adds one answer row of [`sql::key_histories`] (uuid, answer or NULL for texted, count)
/// to `ledger`.
fn add_ledger_row(
    ledger: &mut HashMap<String, KeyHistory>,
    row: &[snowflake_connector_rs::CellValue],
) -> Result<(), StoreError> {
    let cell = |i: usize| {
        row.get(i)
            .ok_or_else(|| decode_error(DecodeError(format!("no column {i} in a ledger row"))))
    };
    let uuid = decode::text(cell(0)?, "dedup uuid")
        .map_err(decode_error)?
        .ok_or_else(|| decode_error(DecodeError("a ledger row without a uuid".into())))?;
    let answer = decode::text(cell(1)?, "attempt answer").map_err(decode_error)?;
    let count = decode::count(cell(2)?, "attempt count").map_err(decode_error)?;
    ledger
        .entry(uuid)
        .or_default()
        .record_stored(answer.as_deref(), count)
        .map_err(|e| StoreError::Misconfigured(e.to_string()))
}

#[async_trait]
impl PhoneSource for SnowflakeStore {
    async fn claim(&self, max: usize, lease: Duration) -> Result<Claim, SourceError> {
        // Random, because workers in other processes claim from the same table.
        let token = ClaimToken::new(uuid::Uuid::new_v4().to_string());
        if max == 0 {
            return Ok(Claim {
                token,
                records: Vec::new(),
            });
        }
        let limit = Limit::clamped(max);
        match self.take_hint() {
            Hint::Idle => {
                return Ok(Claim {
                    token,
                    records: Vec::new(),
                })
            }
            Hint::Waiting => self.forget_idle_run(),
            Hint::Unknown => {
                self.forget_idle_run();
                let answer = self
                    .conn
                    .run("asking whether records wait", &sql::claim_hint(&self.names))
                    .await
                    .map_err(|e| self.hint_migration(e))?;
                if answer.rows.is_empty() {
                    return Ok(Claim {
                        token,
                        records: Vec::new(),
                    });
                }
            }
        }
        let answers = self
            .conn
            .transaction(
                "claiming records",
                &[
                    sql::take_claim_lock(&self.names, &self.worker_id),
                    sql::adopt(&self.names, limit),
                    sql::claim(
                        &self.names,
                        &token,
                        &self.worker_id,
                        lease_millis(lease),
                        limit,
                    ),
                ],
            )
            .await
            .map_err(|e| self.hint_migration(e))?;
        let stamped = answers.last().map(rows_changed).transpose()?.unwrap_or(0);
        // A full claim suggests more wait: the next claim skips its hint.
        self.set_hint(if stamped >= u64::from(limit.get()) {
            Hint::Waiting
        } else {
            Hint::Unknown
        });
        let records = if stamped == 0 {
            Vec::new()
        } else {
            self.read_records(
                "reading claimed records",
                &sql::read_claimed(&self.names, &token),
            )
            .await?
        };
        tracing::debug!(
            claim_token = %token,
            stamped,
            returned = records.len(),
            "Claimed records."
        );
        Ok(Claim { token, records })
    }

    async fn release(&self, token: &ClaimToken, ids: &[RecordId]) -> Result<(), SourceError> {
        for chunk in ids.chunks(MAX_ROWS_PER_STATEMENT) {
            let answer = self
                .conn
                .run(
                    "releasing records",
                    &sql::release(&self.names, token, chunk),
                )
                .await
                .map_err(|e| self.hint_migration(e))?;
            tracing::debug!(
                claim_token = %token,
                asked = chunk.len(),
                released = rows_changed(&answer).unwrap_or_default(),
                "Released records."
            );
        }
        Ok(())
    }

    async fn peek(&self, max: usize) -> Result<Vec<RecipientRecord>, SourceError> {
        if max == 0 {
            return Ok(Vec::new());
        }
        self.read_records(
            "peeking at records",
            &sql::peek(&self.names, Limit::clamped(max)),
        )
        .await
        .map_err(|e| self.hint_migration(e).into())
    }
}

#[async_trait]
impl ResultSink for SnowflakeStore {
    async fn key_histories(&self, keys: &[DedupKey]) -> Result<Vec<KeyHistory>, SinkError> {
        let asked: Vec<String> = keys.iter().map(ToString::to_string).collect();
        let mut distinct: Vec<String> = Vec::with_capacity(asked.len());
        let mut seen = HashSet::with_capacity(asked.len());
        for uuid in &asked {
            if seen.insert(uuid.as_str()) {
                distinct.push(uuid.clone());
            }
        }
        let mut ledger: HashMap<String, KeyHistory> = HashMap::new();
        for chunk in distinct.chunks(MAX_ROWS_PER_STATEMENT) {
            let answer = self
                .conn
                .run(
                    "reading the ledger by dedup uuid",
                    &sql::key_histories(&self.names, chunk),
                )
                .await
                .map_err(|e| self.hint_migration(e))?;
            for row in &answer.rows {
                add_ledger_row(&mut ledger, row.values())?;
            }
        }
        Ok(asked
            .iter()
            .map(|uuid| ledger.get(uuid).copied().unwrap_or_default())
            .collect())
    }

    async fn write_back(
        &self,
        token: &ClaimToken,
        outcomes: &[RecordOutcome],
    ) -> Result<WriteReceipt, SinkError> {
        let WriteRows {
            outcomes: rows,
            attempts,
            duplicates,
        } = write_rows(outcomes);
        // The log first: if the state write then fails, the attempts are still true facts,
        // and the retry appends none of them again.
        for chunk in attempts.chunks(MAX_ROWS_PER_STATEMENT) {
            self.conn
                .run(
                    "appending to the attempt log",
                    &sql::append_attempts(&self.names, token, chunk),
                )
                .await
                .map_err(|e| self.hint_migration(e))?;
        }
        let mut receipt = WriteReceipt {
            not_owned: duplicates,
            ..WriteReceipt::default()
        };
        let run_id = self.current_run();
        for chunk in rows.chunks(MAX_ROWS_PER_STATEMENT) {
            let finals = chunk.iter().filter(|r| r.action.is_final()).count();
            let releases = chunk.len() - finals;
            let answer = self
                .conn
                .run(
                    "writing outcomes",
                    &sql::write_back(&self.names, token, run_id.as_deref(), chunk),
                )
                .await
                .map_err(|e| self.hint_migration(e))?;
            let applied = usize::try_from(rows_changed(&answer)?).unwrap_or(usize::MAX);
            let (written, released) = if applied >= chunk.len() {
                (finals, releases)
            } else {
                // Only part of the batch (or none of it) changed now: ask which part
                // carries this claim's write. Rows a lost answer already wrote under this
                // token count as written, so a retried write-back reports them as its own
                // instead of `not_owned`.
                let ids: Vec<RecordId> = chunk.iter().map(|r| r.id.clone()).collect();
                let tally = self
                    .conn
                    .run(
                        "tallying a partial write-back",
                        &sql::tally_write(&self.names, token, &ids),
                    )
                    .await?;
                let row = tally
                    .rows
                    .first()
                    .map(|r| r.values().to_vec())
                    .unwrap_or_default();
                let count = |i: usize| -> Result<usize, StoreError> {
                    let n = row
                        .get(i)
                        .map(|c| decode::count(c, "write-back tally"))
                        .transpose()
                        .map_err(decode_error)?
                        .unwrap_or(0);
                    Ok(usize::try_from(n).unwrap_or(usize::MAX))
                };
                (count(0)?.min(finals), count(1)?.min(releases))
            };
            receipt.written += written;
            receipt.released += released;
            receipt.not_owned += chunk.len() - written - released;
        }
        tracing::debug!(
            claim_token = %token,
            written = receipt.written,
            released = receipt.released,
            not_owned = receipt.not_owned,
            "Wrote outcomes."
        );
        Ok(receipt)
    }
}

#[cfg(test)]
mod tests {
    use ca_notify_domain::{AttemptAnswer, DedupKey, DeferReason, NotSentReason, Outcome};

    use super::*;

    #[test]
    fn outcome_rows_follow_the_domain_and_drop_duplicates() {
        let key = DedupKey::parse("00000000-0000-8000-8000-000000000001").expect("uuid");
        let outcomes = vec![
            RecordOutcome {
                attempts: vec![AttemptAnswer::FailedAfterCommit, AttemptAnswer::Issued],
                ..RecordOutcome::new(RecordId::new("1"), Some(key), Outcome::Sent)
            },
            RecordOutcome::new(
                RecordId::new("2"),
                None,
                Outcome::not_sent(NotSentReason::InvalidNumber {
                    detail: "too_short".into(),
                }),
            ),
            RecordOutcome::new(
                RecordId::new("3"),
                Some(key),
                Outcome::deferred(DeferReason::Deadline),
            ),
            RecordOutcome {
                attempts: vec![AttemptAnswer::NoAnswer],
                ..RecordOutcome::new(RecordId::new("1"), None, Outcome::AlreadySent)
            },
            RecordOutcome {
                attempts: vec![AttemptAnswer::NoAnswer],
                ..RecordOutcome::new(
                    RecordId::new("4"),
                    Some(key),
                    Outcome::deferred(DeferReason::NoAnswer),
                )
            },
            RecordOutcome::new(RecordId::new("5"), Some(key), Outcome::Unconfirmed),
        ];
        let WriteRows {
            outcomes: rows,
            attempts,
            duplicates,
        } = write_rows(&outcomes);
        assert_eq!(duplicates, 1);
        assert_eq!(rows.len(), 5);
        assert_eq!(
            rows[0],
            OutcomeRow {
                id: RecordId::new("1"),
                sent: Some(1),
                outcome: Some("sent".into()),
                reason: None,
                dedup_uuid: Some(key.to_string()),
                action: WriteAction::Final,
            }
        );
        assert_eq!(rows[1].sent, Some(0));
        assert_eq!(rows[1].reason.as_deref(), Some("invalid_number:too_short"));
        assert_eq!(rows[2].sent, None);
        assert_eq!(rows[2].outcome, None);
        assert_eq!(rows[2].reason.as_deref(), Some("deadline"));
        assert_eq!(rows[2].action, WriteAction::Release);
        assert_eq!(rows[3].action, WriteAction::Hold);
        assert_eq!(rows[3].reason.as_deref(), Some("no_answer"));
        assert_eq!(
            (rows[4].sent, rows[4].outcome.as_deref(), rows[4].action),
            (Some(0), Some("unconfirmed"), WriteAction::Final)
        );
        let logged: Vec<(&str, i64, &str)> = attempts
            .iter()
            .map(|a| (a.id.as_str(), a.index, a.answer))
            .collect();
        assert_eq!(
            logged,
            vec![
                ("1", 0, "failed_after_commit"),
                ("1", 1, "issued"),
                ("4", 0, "no_answer")
            ],
            "the duplicate's attempts are dropped with it"
        );
        assert!(attempts.iter().all(|a| a.dedup_uuid == key.to_string()));
    }

    #[test]
    fn leases_are_whole_milliseconds_within_bounds() {
        assert_eq!(lease_millis(Duration::ZERO), 1);
        assert_eq!(lease_millis(Duration::from_micros(1500)), 1);
        assert_eq!(lease_millis(Duration::from_secs(300)), 300_000);
        assert_eq!(lease_millis(Duration::MAX), 7 * 24 * 3600 * 1000);
    }
}
