//! The statements the store sends, built from validated names with every value bound.
//!
//! Nothing here executes anything: each function returns a [`Sql`] (text with `?`
//! placeholders plus the values for them, in order), so the statements can be read and
//! unit-tested on their own. Identifiers come only from [`Names`] (validated and quoted);
//! ids, tokens, outcomes, limits and leases travel as bound values and never appear in
//! the text.
//!
//! Two rules keep the statements portable between Snowflake and its offline stand-in,
//! fakesnow, which emulates `MERGE` with several DuckDB statements: all placeholders of a
//! `MERGE` sit inside its `USING` subquery (the `SET` and `INSERT` clauses refer to
//! source columns instead), and each timestamp is Snowflake's `SYSDATE()` (UTC, no time
//! zone), read on the server so that workers with skewed clocks agree on every lease.

use std::fmt;

use ca_notify_domain::{ClaimToken, RecordId};

use crate::config::Names;

/// Snowflake's clock, in UTC.
const NOW: &str = "SYSDATE()";

/// One statement and its bound values.
#[derive(Clone, PartialEq, Eq)]
pub(crate) struct Sql {
    pub text: String,
    pub binds: Vec<Value>,
}

impl fmt::Debug for Sql {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // Bound values are record data; the text alone says what ran.
        f.debug_struct("Sql")
            .field("text", &self.text)
            .field("binds", &self.binds.len())
            .finish()
    }
}

/// A bound value.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Value {
    /// `TEXT`, or NULL.
    Text(Option<String>),
    /// `FIXED`, or NULL.
    Int(Option<i64>),
}

impl Value {
    fn text(text: impl Into<String>) -> Self {
        Self::Text(Some(text.into()))
    }

    fn int(n: i64) -> Self {
        Self::Int(Some(n))
    }
}

/// What a write-back does to one record it still holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum WriteAction {
    /// A final outcome: sent flag, outcome, reason, uuid and processed time; claim cleared.
    Final,
    /// A deferral: an attempt counted, the reason kept, the claim cleared.
    Release,
    /// A deferral that holds the claim (a request may still be running): an attempt
    /// counted and the reason kept; the token cleared, the lease and worker kept.
    Hold,
}

impl WriteAction {
    /// The code the write-back statement switches on.
    fn code(self) -> i64 {
        match self {
            Self::Release => 0,
            Self::Final => 1,
            Self::Hold => 2,
        }
    }

    /// Whether the record gets a final outcome.
    pub fn is_final(self) -> bool {
        self == Self::Final
    }
}

/// One outcome row of a write-back.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct OutcomeRow {
    pub id: RecordId,
    /// The sent flag, `None` for a deferral.
    pub sent: Option<u8>,
    /// The outcome label, `None` for a deferral.
    pub outcome: Option<String>,
    /// The reason code (the defer reason for a deferral), `None` when empty.
    pub reason: Option<String>,
    pub dedup_uuid: Option<String>,
    pub action: WriteAction,
}

/// One entry of the attempt log.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct AttemptRow {
    pub dedup_uuid: String,
    pub id: RecordId,
    /// Its place among the record's attempts in this write-back.
    pub index: i64,
    /// `AttemptAnswer::code`.
    pub answer: &'static str,
}

/// `?, ?, ?` for `n` values.
fn placeholders(n: usize) -> String {
    vec!["?"; n].join(", ")
}

/// The source columns every read returns, in a fixed order:
/// id (as text), phone, test date, symptom date, test type, time-zone offset. Absent
/// optional columns read as NULL.
fn source_columns(names: &Names, alias: &str) -> String {
    let src = &names.source;
    let optional = |column: &Option<crate::ident::Ident>| match column {
        Some(c) => format!("{alias}.{}", c.sql()),
        None => "NULL".to_owned(),
    };
    format!(
        "{alias}.{phone} AS PHONE, {test_date} AS TEST_DATE, {symptom_date} AS SYMPTOM_DATE, {test_type} AS TEST_TYPE, {tz} AS TZ_OFFSET",
        phone = src.phone.sql(),
        test_date = optional(&src.test_date),
        symptom_date = optional(&src.symptom_date),
        test_type = optional(&src.test_type),
        tz = optional(&src.tz_offset),
    )
}

/// The source id as the state table's key.
fn source_key(names: &Names, alias: &str) -> String {
    format!("TO_VARCHAR({alias}.{})", names.source.id.sql())
}

/// Rows a claim may take: a non-NULL id, no final outcome, and no live lease (a claim or
/// a hold; a released or written row has no lease).
fn claimable(names: &Names) -> String {
    format!(
        "FROM {source} AS src \
         LEFT JOIN {state} AS s ON s.RECORD_ID = {key} \
         WHERE src.{id} IS NOT NULL AND s.OUTCOME IS NULL \
         AND (s.LEASE_UNTIL IS NULL OR s.LEASE_UNTIL < {NOW})",
        source = names.source.table.sql(),
        state = names.state.sql(),
        key = source_key(names, "src"),
        id = names.source.id.sql(),
    )
}

/// A row count written into the statement text: Snowflake takes only a constant after
/// `LIMIT` (a bind is refused), so the count is a validated integer, never a value from
/// outside, and rendered as a literal.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Limit(u32);

impl Limit {
    /// Most rows one claim or peek takes.
    pub const MAX: u32 = 100_000;

    /// `n` rows, at least one and at most [`Limit::MAX`].
    pub fn clamped(n: usize) -> Self {
        Self(u32::try_from(n).unwrap_or(Self::MAX).clamp(1, Self::MAX))
    }

    /// The count.
    pub fn get(self) -> u32 {
        self.0
    }
}

impl fmt::Display for Limit {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.0)
    }
}

/// Whether any record is waiting for a claim: one cheap read, sent before a claim takes
/// the lock, so that a run with nothing to do costs one statement and takes no lock.
/// Only a hint: the claim itself checks every condition again under the lock.
pub(crate) fn claim_hint(names: &Names) -> Sql {
    Sql {
        text: format!(
            "SELECT 1 AS PENDING {claimable} LIMIT 1",
            claimable = claimable(names)
        ),
        binds: Vec::new(),
    }
}

/// The schema version and whether any record waits, in one statement: what a run asks
/// first. Fails (object missing) before the state tables exist.
pub(crate) fn run_status(names: &Names) -> Sql {
    Sql {
        text: format!(
            "SELECT (SELECT COALESCE(MAX(VERSION), 0) FROM {migrations}) AS VERSION, \
                    (SELECT COUNT(*) FROM (SELECT 1 AS ONE {claimable} LIMIT 1) AS w) AS PENDING",
            migrations = names.migrations.sql(),
            claimable = claimable(names),
        ),
        binds: Vec::new(),
    }
}

/// Opens the claim's explicit transaction.
pub(crate) fn begin() -> Sql {
    Sql {
        text: "BEGIN TRANSACTION".to_owned(),
        binds: Vec::new(),
    }
}

/// Commits it.
pub(crate) fn commit() -> Sql {
    Sql {
        text: "COMMIT".to_owned(),
        binds: Vec::new(),
    }
}

/// Rolls it back after a failed statement.
pub(crate) fn rollback() -> Sql {
    Sql {
        text: "ROLLBACK".to_owned(),
        binds: Vec::new(),
    }
}

/// The claim transaction's first statement: an `UPDATE` of the lock row, which takes the
/// lock table's lock until the transaction ends. Another claim's `UPDATE` waits here (up
/// to `LOCK_TIMEOUT`), so the statements after it begin only once every earlier claim has
/// committed, and see its stamps.
pub(crate) fn take_claim_lock(names: &Names, worker: &str) -> Sql {
    Sql {
        text: format!(
            "UPDATE {lock} SET HOLDER = ?, TAKEN_AT = {NOW} WHERE NAME = '{row}'",
            lock = names.lock.sql(),
            row = crate::schema::CLAIM_LOCK_ROW,
        ),
        binds: vec![Value::text(worker)],
    }
}

/// Under the lock: gives up to `limit` source records that have no state row yet one (no
/// claim, no outcome). No two rows for one id can appear: the source side is `DISTINCT`,
/// and the anti-join sees every row an earlier claim inserted, because this statement
/// began after that claim committed (Snowflake enforces no primary key).
pub(crate) fn adopt(names: &Names, limit: Limit) -> Sql {
    Sql {
        text: format!(
            "INSERT INTO {state} (RECORD_ID, ATTEMPTS, UPDATED_AT) \
             SELECT DISTINCT {key} AS RECORD_ID, 0, {NOW} \
             FROM {source} AS src LEFT JOIN {state} AS s ON s.RECORD_ID = {key} \
             WHERE src.{id} IS NOT NULL AND s.RECORD_ID IS NULL \
             ORDER BY RECORD_ID LIMIT {limit}",
            state = names.state.sql(),
            source = names.source.table.sql(),
            key = source_key(names, "src"),
            id = names.source.id.sql(),
        ),
        binds: Vec::new(),
    }
}

/// Under the lock: stamps `token`, the worker and a lease of `lease_ms` on up to `limit`
/// state rows of records still in the source that have no outcome and no live lease. The
/// `WHERE` of the `UPDATE` checks outcome and lease again on the row it changes, so a
/// claim of an expired lease is decided in the same statement that takes it.
pub(crate) fn claim(
    names: &Names,
    token: &ClaimToken,
    worker: &str,
    lease_ms: i64,
    limit: Limit,
) -> Sql {
    let text = format!(
        "UPDATE {state} AS st SET CLAIM_TOKEN = c.CLAIM_TOKEN, CLAIMED_BY = c.CLAIMED_BY, \
           LEASE_UNTIL = c.LEASE_UNTIL, UPDATED_AT = {NOW} \
         FROM (\
           SELECT s.RECORD_ID, ? AS CLAIM_TOKEN, ? AS CLAIMED_BY, DATEADD(millisecond, ?, {NOW}) AS LEASE_UNTIL \
           FROM {state} AS s \
           WHERE s.OUTCOME IS NULL AND (s.LEASE_UNTIL IS NULL OR s.LEASE_UNTIL < {NOW}) \
             AND s.RECORD_ID IN (SELECT {key} FROM {source} AS src WHERE src.{id} IS NOT NULL) \
           ORDER BY s.RECORD_ID LIMIT {limit}\
         ) AS c \
         WHERE st.RECORD_ID = c.RECORD_ID AND st.OUTCOME IS NULL \
           AND (st.LEASE_UNTIL IS NULL OR st.LEASE_UNTIL < {NOW})",
        state = names.state.sql(),
        source = names.source.table.sql(),
        key = source_key(names, "src"),
        id = names.source.id.sql(),
    );
    Sql {
        text,
        binds: vec![
            Value::text(token.as_str()),
            Value::text(worker),
            Value::int(lease_ms),
        ],
    }
}

/// Reads back the records `token` holds, one row per record id (the first source row by
/// phone when the source repeats an id), with the number of source rows sharing the id.
pub(crate) fn read_claimed(names: &Names, token: &ClaimToken) -> Sql {
    let text = format!(
        "SELECT st.RECORD_ID AS RECORD_ID, {columns}, COUNT(*) OVER (PARTITION BY st.RECORD_ID) AS SOURCE_ROWS \
         FROM {state} AS st JOIN {source} AS src ON {key} = st.RECORD_ID \
         WHERE st.CLAIM_TOKEN = ? AND st.OUTCOME IS NULL \
         QUALIFY ROW_NUMBER() OVER (PARTITION BY st.RECORD_ID ORDER BY src.{phone}) = 1 \
         ORDER BY st.RECORD_ID",
        columns = source_columns(names, "src"),
        state = names.state.sql(),
        source = names.source.table.sql(),
        key = source_key(names, "src"),
        phone = names.source.phone.sql(),
    );
    Sql {
        text,
        binds: vec![Value::text(token.as_str())],
    }
}

/// Up to `limit` records the next claim would take, without claiming them.
pub(crate) fn peek(names: &Names, limit: Limit) -> Sql {
    let text = format!(
        "SELECT {key} AS RECORD_ID, {columns}, COUNT(*) OVER (PARTITION BY {key}) AS SOURCE_ROWS \
         {claimable} \
         QUALIFY ROW_NUMBER() OVER (PARTITION BY {key} ORDER BY src.{phone}) = 1 \
         ORDER BY RECORD_ID LIMIT {limit}",
        key = source_key(names, "src"),
        columns = source_columns(names, "src"),
        claimable = claimable(names),
        phone = names.source.phone.sql(),
    );
    Sql {
        text,
        binds: Vec::new(),
    }
}

/// The backlog as a select list with its `FROM`: how many records wait for a claim
/// (`PENDING`) and when the oldest of them arrived (`OLDEST`, from the source's
/// `arrived_at_column`; `NULL` when none is configured or nothing waits).
pub(crate) fn backlog_select(names: &Names) -> String {
    let oldest = names.source.arrived_at.as_ref().map_or_else(
        || "CAST(NULL AS TIMESTAMP_NTZ)".to_owned(),
        |column| format!("MIN(src.{})", column.sql()),
    );
    format!(
        "COUNT(DISTINCT {key}) AS PENDING, {oldest} AS OLDEST {claimable}",
        key = source_key(names, "src"),
        claimable = claimable(names),
    )
}

/// A condition true when no record waits for a claim.
pub(crate) fn nothing_waits(names: &Names) -> String {
    format!(
        "NOT EXISTS (SELECT 1 AS ONE {claimable})",
        claimable = claimable(names)
    )
}

/// The backlog (for `check` and the run's metrics): [`backlog_select`]'s one row.
pub(crate) fn backlog(names: &Names) -> Sql {
    Sql {
        text: format!("SELECT {}", backlog_select(names)),
        binds: Vec::new(),
    }
}

/// Clears `token`'s claim on `ids` without an outcome and without counting an attempt.
pub(crate) fn release(names: &Names, token: &ClaimToken, ids: &[RecordId]) -> Sql {
    let text = format!(
        "UPDATE {state} SET CLAIM_TOKEN = NULL, CLAIMED_BY = NULL, LEASE_UNTIL = NULL, UPDATED_AT = {NOW} \
         WHERE CLAIM_TOKEN = ? AND OUTCOME IS NULL AND RECORD_ID IN ({ids})",
        state = names.state.sql(),
        ids = placeholders(ids.len()),
    );
    let mut binds = vec![Value::text(token.as_str())];
    binds.extend(ids.iter().map(|id| Value::text(id.as_str())));
    Sql { text, binds }
}

/// Columns of one `VALUES` row of a write-back.
const OUTCOME_COLUMNS: usize = 6;

/// Writes a batch in one `MERGE`, only on records `token` still holds: final outcomes set
/// the sent flag, outcome, reason, dedup uuid and processed time; deferrals keep their
/// reason. All count an attempt, clear the claim token and remember `token` in
/// `LAST_TOKEN`, which is how a partly applied write is tallied (see [`tally_write`]);
/// finals and releases clear the lease too, a hold keeps it (and the worker). Every row
/// reached gets `run_id` (the store's current run, NULL outside one) in `RUN_ID`.
pub(crate) fn write_back(
    names: &Names,
    token: &ClaimToken,
    run_id: Option<&str>,
    rows: &[OutcomeRow],
) -> Sql {
    let values = vec![format!("({})", placeholders(OUTCOME_COLUMNS)); rows.len()].join(", ");
    let text = format!(
        "MERGE INTO {state} AS st USING (\
           SELECT column1 AS RECORD_ID, column2 AS SENT, column3 AS OUTCOME, column4 AS REASON, \
                  column5 AS DEDUP_UUID, column6 AS ACTION, ? AS CLAIM_TOKEN, ? AS RUN_ID \
           FROM VALUES {values}\
         ) AS o ON st.RECORD_ID = o.RECORD_ID AND st.CLAIM_TOKEN = o.CLAIM_TOKEN AND st.OUTCOME IS NULL \
         WHEN MATCHED AND o.ACTION = {final_} THEN UPDATE SET \
           SENT = o.SENT, OUTCOME = o.OUTCOME, REASON = o.REASON, DEDUP_UUID = o.DEDUP_UUID, \
           ATTEMPTS = st.ATTEMPTS + 1, PROCESSED_AT = {NOW}, PROCESSED_BY = st.CLAIMED_BY, LAST_TOKEN = o.CLAIM_TOKEN, \
           RUN_ID = o.RUN_ID, \
           CLAIM_TOKEN = NULL, CLAIMED_BY = NULL, LEASE_UNTIL = NULL, UPDATED_AT = {NOW} \
         WHEN MATCHED AND o.ACTION = {release} THEN UPDATE SET \
           ATTEMPTS = st.ATTEMPTS + 1, LAST_DEFERRAL = o.REASON, LAST_TOKEN = o.CLAIM_TOKEN, \
           RUN_ID = o.RUN_ID, CLAIM_TOKEN = NULL, CLAIMED_BY = NULL, LEASE_UNTIL = NULL, UPDATED_AT = {NOW} \
         WHEN MATCHED AND o.ACTION = {hold} THEN UPDATE SET \
           ATTEMPTS = st.ATTEMPTS + 1, LAST_DEFERRAL = o.REASON, LAST_TOKEN = o.CLAIM_TOKEN, \
           RUN_ID = o.RUN_ID, CLAIM_TOKEN = NULL, UPDATED_AT = {NOW}",
        state = names.state.sql(),
        final_ = WriteAction::Final.code(),
        release = WriteAction::Release.code(),
        hold = WriteAction::Hold.code(),
    );
    let mut binds = Vec::with_capacity(2 + rows.len() * OUTCOME_COLUMNS);
    binds.push(Value::text(token.as_str()));
    binds.push(Value::Text(run_id.map(str::to_owned)));
    for row in rows {
        binds.push(Value::text(row.id.as_str()));
        binds.push(Value::Int(row.sent.map(i64::from)));
        binds.push(Value::Text(row.outcome.clone()));
        binds.push(Value::Text(row.reason.clone()));
        binds.push(Value::Text(row.dedup_uuid.clone()));
        binds.push(Value::int(row.action.code()));
    }
    Sql { text, binds }
}

/// Columns of one `VALUES` row of the attempt log.
const ATTEMPT_COLUMNS: usize = 4;

/// Appends attempt answers to the log, each unless the log already holds its key (dedup
/// uuid, claim token, record id, index), so a repeated write-back appends nothing. An
/// `INSERT`, not a `MERGE`: inserts write new micro-partitions and need not wait for the
/// state table's writers, or each other's.
pub(crate) fn append_attempts(names: &Names, token: &ClaimToken, rows: &[AttemptRow]) -> Sql {
    let values = vec![format!("({})", placeholders(ATTEMPT_COLUMNS)); rows.len()].join(", ");
    let text = format!(
        "INSERT INTO {log} (DEDUP_UUID, CLAIM_TOKEN, RECORD_ID, ATTEMPT_INDEX, ANSWER, RECORDED_AT) \
         SELECT a.DEDUP_UUID, a.CLAIM_TOKEN, a.RECORD_ID, a.ATTEMPT_INDEX, a.ANSWER, {NOW} \
         FROM (\
           SELECT column1 AS DEDUP_UUID, column2 AS RECORD_ID, column3 AS ATTEMPT_INDEX, column4 AS ANSWER, \
                  ? AS CLAIM_TOKEN \
           FROM VALUES {values}\
         ) AS a \
         WHERE NOT EXISTS (SELECT 1 FROM {log} AS l \
           WHERE l.DEDUP_UUID = a.DEDUP_UUID AND l.CLAIM_TOKEN = a.CLAIM_TOKEN \
             AND l.RECORD_ID = a.RECORD_ID AND l.ATTEMPT_INDEX = a.ATTEMPT_INDEX)",
        log = names.attempts.sql(),
    );
    let mut binds = Vec::with_capacity(1 + rows.len() * ATTEMPT_COLUMNS);
    binds.push(Value::text(token.as_str()));
    for row in rows {
        binds.push(Value::text(row.dedup_uuid.as_str()));
        binds.push(Value::text(row.id.as_str()));
        binds.push(Value::int(row.index));
        binds.push(Value::text(row.answer));
    }
    Sql { text, binds }
}

/// The ledger of `uuids` (distinct): one row per (uuid, answer) of the attempt log with
/// its count `N`, and one row with a NULL answer per uuid some state row was written
/// texted (`SENT = 1`) under. Plain `IN` lists, the point lookups Snowflake's search
/// optimization serves when a DBA enables it on `DEDUP_UUID`.
pub(crate) fn key_histories(names: &Names, uuids: &[String]) -> Sql {
    let list = placeholders(uuids.len());
    let text = format!(
        "SELECT DEDUP_UUID, ANSWER, COUNT(*) AS N FROM {log} \
         WHERE DEDUP_UUID IN ({list}) GROUP BY DEDUP_UUID, ANSWER \
         UNION ALL \
         SELECT DISTINCT DEDUP_UUID, NULL, 1 FROM {state} \
         WHERE SENT = 1 AND DEDUP_UUID IN ({list})",
        log = names.attempts.sql(),
        state = names.state.sql(),
    );
    let binds = uuids
        .iter()
        .chain(uuids)
        .map(|u| Value::text(u.as_str()))
        .collect();
    Sql { text, binds }
}

/// After a write-back that applied to only part of its batch: how many of `ids` now
/// carry a final outcome, and how many a release, written under `token`.
pub(crate) fn tally_write(names: &Names, token: &ClaimToken, ids: &[RecordId]) -> Sql {
    let text = format!(
        "SELECT COALESCE(SUM(IFF(OUTCOME IS NOT NULL, 1, 0)), 0) AS WRITTEN, \
                COALESCE(SUM(IFF(OUTCOME IS NULL, 1, 0)), 0) AS RELEASED \
         FROM {state} WHERE LAST_TOKEN = ? AND RECORD_ID IN ({ids})",
        state = names.state.sql(),
        ids = placeholders(ids.len()),
    );
    let mut binds = vec![Value::text(token.as_str())];
    binds.extend(ids.iter().map(|id| Value::text(id.as_str())));
    Sql { text, binds }
}

/// `SELECT 1`, the cheapest proof that the session works.
pub(crate) fn select_one() -> Sql {
    Sql {
        text: "SELECT 1 AS ONE".to_owned(),
        binds: Vec::new(),
    }
}

/// Selects `columns` (already quoted) from `table` without reading a row, to prove that
/// they exist and are granted.
pub(crate) fn probe(table: &str, columns: &[String]) -> Sql {
    let list = if columns.is_empty() {
        "1 AS ONE".to_owned()
    } else {
        columns.join(", ")
    };
    Sql {
        text: format!("SELECT {list} FROM {table} LIMIT 0"),
        binds: Vec::new(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::tests::config;

    fn names() -> Names {
        config().names().expect("valid")
    }

    fn count_placeholders(text: &str) -> usize {
        text.matches('?').count()
    }

    #[test]
    fn every_statement_binds_as_many_values_as_it_has_placeholders() {
        let n = names();
        let token = ClaimToken::new("3f0c6a52-6c1e-4a55-9a43-2b1d8e0f7c11");
        let ids = [RecordId::new("1"), RecordId::new("2")];
        let rows = vec![
            OutcomeRow {
                id: RecordId::new("1"),
                sent: Some(1),
                outcome: Some("sent".into()),
                reason: None,
                dedup_uuid: Some("00000000-0000-8000-8000-000000000001".into()),
                action: WriteAction::Final,
            },
            OutcomeRow {
                id: RecordId::new("2"),
                sent: None,
                outcome: None,
                reason: Some("deadline".into()),
                dedup_uuid: None,
                action: WriteAction::Hold,
            },
        ];
        let attempts = vec![attempt("1", 0), attempt("1", 1)];
        let uuids = vec!["a".to_owned(), "b".to_owned(), "c".to_owned()];
        for sql in [
            claim(&n, &token, "w", 60_000, Limit::clamped(100)),
            claim_hint(&n),
            run_status(&n),
            take_claim_lock(&n, "w"),
            adopt(&n, Limit::clamped(100)),
            read_claimed(&n, &token),
            peek(&n, Limit::clamped(10)),
            backlog(&n),
            release(&n, &token, &ids),
            write_back(&n, &token, Some("run-1"), &rows),
            append_attempts(&n, &token, &attempts),
            key_histories(&n, &uuids),
            tally_write(&n, &token, &ids),
            select_one(),
        ] {
            assert_eq!(
                count_placeholders(&sql.text),
                sql.binds.len(),
                "{}",
                sql.text
            );
        }
    }

    #[test]
    fn values_never_reach_the_statement_text() {
        let n = names();
        let token = ClaimToken("x'); DROP TABLE t; --".to_owned());
        let id = RecordId::new("1' OR '1'='1");
        let rows = vec![OutcomeRow {
            id: id.clone(),
            sent: Some(0),
            outcome: Some("not_sent".into()),
            reason: Some("invalid_number:'; DELETE FROM x; --".into()),
            dedup_uuid: None,
            action: WriteAction::Final,
        }];
        let attempts = vec![AttemptRow {
            dedup_uuid: "u'; DROP TABLE t; --".to_owned(),
            id: id.clone(),
            index: 0,
            answer: "issued",
        }];
        for sql in [
            claim(&n, &token, "worker'--", 1, Limit::clamped(1)),
            take_claim_lock(&n, "worker'--"),
            append_attempts(&n, &token, &attempts),
            key_histories(&n, &["1' OR '1'='1".to_owned()]),
            read_claimed(&n, &token),
            release(&n, &token, std::slice::from_ref(&id)),
            write_back(&n, &token, Some("run-1"), &rows),
            tally_write(&n, &token, std::slice::from_ref(&id)),
        ] {
            for needle in ["DROP", "DELETE", "OR '1'", "worker'"] {
                assert!(!sql.text.contains(needle), "{needle} in {}", sql.text);
            }
        }
    }

    #[test]
    fn merge_placeholders_sit_inside_the_using_subquery() {
        let n = names();
        let token = ClaimToken::new("3f0c6a52-6c1e-4a55-9a43-2b1d8e0f7c11");
        let rows = vec![OutcomeRow {
            id: RecordId::new("1"),
            sent: Some(1),
            outcome: Some("sent".into()),
            reason: None,
            dedup_uuid: None,
            action: WriteAction::Final,
        }];
        let sql = write_back(&n, &token, Some("run-1"), &rows);
        let (_, after_using) = sql
            .text
            .split_once(" ON st.RECORD_ID")
            .expect("a USING subquery");
        assert!(
            !after_using.contains('?'),
            "a placeholder outside USING: {}",
            sql.text
        );
    }

    #[test]
    fn limits_are_integer_literals_within_bounds() {
        assert_eq!(Limit::clamped(0).get(), 1);
        assert_eq!(Limit::clamped(100).get(), 100);
        assert_eq!(Limit::clamped(usize::MAX).get(), Limit::MAX);
        let n = names();
        let token = ClaimToken::new("3f0c6a52-6c1e-4a55-9a43-2b1d8e0f7c11");
        for (sql, want) in [
            (claim(&n, &token, "w", 1, Limit::clamped(100)), "LIMIT 100)"),
            (adopt(&n, Limit::clamped(100)), "LIMIT 100"),
            (peek(&n, Limit::clamped(7)), "LIMIT 7"),
            (claim_hint(&n), "LIMIT 1"),
        ] {
            assert!(sql.text.contains(want), "{want} not in {}", sql.text);
            assert!(!sql.text.contains("LIMIT ?"), "{}", sql.text);
        }
    }

    #[test]
    fn a_claim_checks_outcome_and_lease_on_the_row_it_changes() {
        let sql = claim(
            &names(),
            &ClaimToken::new("3f0c6a52-6c1e-4a55-9a43-2b1d8e0f7c11"),
            "w",
            1,
            Limit::clamped(1),
        )
        .text;
        let (_, outer_where) = sql.rsplit_once(") AS c WHERE").expect("an outer WHERE");
        assert!(outer_where.contains("st.OUTCOME IS NULL"), "{outer_where}");
        assert!(
            outer_where.contains("st.LEASE_UNTIL IS NULL OR st.LEASE_UNTIL < SYSDATE()"),
            "{outer_where}"
        );
    }

    fn attempt(id: &str, index: i64) -> AttemptRow {
        AttemptRow {
            dedup_uuid: "00000000-0000-8000-8000-000000000001".into(),
            id: RecordId::new(id),
            index,
            answer: "no_answer",
        }
    }

    #[test]
    fn a_hold_keeps_the_lease_and_every_other_write_clears_it() {
        let sql = write_back(
            &names(),
            &ClaimToken::new("3f0c6a52-6c1e-4a55-9a43-2b1d8e0f7c11"),
            None,
            &[],
        )
        .text;
        let clause = |action: WriteAction| -> &str {
            let start = format!("WHEN MATCHED AND o.ACTION = {} THEN", action.code());
            let (_, rest) = sql.split_once(&start).expect("a clause per action");
            rest.split(" WHEN ").next().expect("clause text")
        };
        for action in [WriteAction::Final, WriteAction::Release] {
            assert!(clause(action).contains("LEASE_UNTIL = NULL"), "{action:?}");
            assert!(clause(action).contains("CLAIMED_BY = NULL"), "{action:?}");
        }
        let hold = clause(WriteAction::Hold);
        assert!(hold.contains("CLAIM_TOKEN = NULL"), "{hold}");
        assert!(hold.contains("ATTEMPTS = st.ATTEMPTS + 1"), "{hold}");
        assert!(!hold.contains("LEASE_UNTIL"), "{hold}");
        assert!(!hold.contains("CLAIMED_BY"), "{hold}");
        assert!(
            claimable(&names()).contains("s.LEASE_UNTIL IS NULL OR s.LEASE_UNTIL <"),
            "a held row (no token, a live lease) must not be claimable"
        );
    }

    #[test]
    fn absent_optional_columns_read_as_null() {
        let mut c = config();
        c.table.test_date_column = None;
        let n = c.names().expect("valid");
        let sql = read_claimed(&n, &ClaimToken::new("3f0c6a52-6c1e-4a55-9a43-2b1d8e0f7c11"));
        assert!(sql.text.contains("NULL AS TEST_DATE"), "{}", sql.text);
        assert!(sql.text.contains("src.\"PHONE\" AS PHONE"), "{}", sql.text);
    }
}
