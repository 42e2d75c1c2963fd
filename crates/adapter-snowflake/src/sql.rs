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

/// One outcome row of a write-back.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct OutcomeRow {
    pub id: RecordId,
    /// The sent flag, `None` for a release.
    pub sent: Option<u8>,
    /// The outcome label, `None` for a release.
    pub outcome: Option<String>,
    /// The reason code (the defer reason for a release), `None` when empty.
    pub reason: Option<String>,
    pub dedup_uuid: Option<String>,
    /// Final outcome (`true`) or release with an attempt counted (`false`).
    pub is_final: bool,
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

/// Rows a claim may take: a non-NULL id, no final outcome, and no live lease.
fn claimable(names: &Names) -> String {
    format!(
        "FROM {source} AS src \
         LEFT JOIN {state} AS s ON s.RECORD_ID = {key} \
         WHERE src.{id} IS NOT NULL AND s.OUTCOME IS NULL \
         AND (s.CLAIM_TOKEN IS NULL OR s.LEASE_UNTIL < {NOW})",
        source = names.source.table.sql(),
        state = names.state.sql(),
        key = source_key(names, "src"),
        id = names.source.id.sql(),
    )
}

/// Stamps `token` and a lease of `lease_ms` on up to `max` claimable records, in one
/// autocommitted statement. Records seen for the first time get their state row here.
pub(crate) fn claim(
    names: &Names,
    token: &ClaimToken,
    worker: &str,
    lease_ms: i64,
    max: i64,
) -> Sql {
    let text = format!(
        "MERGE INTO {state} AS st USING (\
           SELECT f.RECORD_ID, ? AS CLAIM_TOKEN, ? AS CLAIMED_BY, DATEADD(millisecond, ?, {NOW}) AS LEASE_UNTIL \
           FROM (SELECT DISTINCT {key} AS RECORD_ID {claimable} ORDER BY RECORD_ID LIMIT ?) AS f\
         ) AS c ON st.RECORD_ID = c.RECORD_ID \
         WHEN MATCHED AND st.OUTCOME IS NULL THEN UPDATE SET \
           CLAIM_TOKEN = c.CLAIM_TOKEN, CLAIMED_BY = c.CLAIMED_BY, LEASE_UNTIL = c.LEASE_UNTIL, UPDATED_AT = {NOW} \
         WHEN NOT MATCHED THEN INSERT (RECORD_ID, ATTEMPTS, CLAIM_TOKEN, CLAIMED_BY, LEASE_UNTIL, UPDATED_AT) \
           VALUES (c.RECORD_ID, 0, c.CLAIM_TOKEN, c.CLAIMED_BY, c.LEASE_UNTIL, {NOW})",
        state = names.state.sql(),
        key = source_key(names, "src"),
        claimable = claimable(names),
    );
    Sql {
        text,
        binds: vec![
            Value::text(token.as_str()),
            Value::text(worker),
            Value::int(lease_ms),
            Value::int(max),
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

/// Up to `max` records the next claim would take, without claiming them.
pub(crate) fn peek(names: &Names, max: i64) -> Sql {
    let text = format!(
        "SELECT {key} AS RECORD_ID, {columns}, COUNT(*) OVER (PARTITION BY {key}) AS SOURCE_ROWS \
         {claimable} \
         QUALIFY ROW_NUMBER() OVER (PARTITION BY {key} ORDER BY src.{phone}) = 1 \
         ORDER BY RECORD_ID LIMIT ?",
        key = source_key(names, "src"),
        columns = source_columns(names, "src"),
        claimable = claimable(names),
        phone = names.source.phone.sql(),
    );
    Sql {
        text,
        binds: vec![Value::int(max)],
    }
}

/// How many records are waiting for a claim (for `check`).
pub(crate) fn count_claimable(names: &Names) -> Sql {
    Sql {
        text: format!(
            "SELECT COUNT(DISTINCT {key}) AS PENDING {claimable}",
            key = source_key(names, "src"),
            claimable = claimable(names),
        ),
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
/// reason. Both count an attempt and clear the claim and remember `token` in `LAST_TOKEN`, which is how a
/// partly applied write is tallied (see [`tally_write`]).
pub(crate) fn write_back(names: &Names, token: &ClaimToken, rows: &[OutcomeRow]) -> Sql {
    let values = vec![format!("({})", placeholders(OUTCOME_COLUMNS)); rows.len()].join(", ");
    let text = format!(
        "MERGE INTO {state} AS st USING (\
           SELECT column1 AS RECORD_ID, column2 AS SENT, column3 AS OUTCOME, column4 AS REASON, \
                  column5 AS DEDUP_UUID, column6 AS IS_FINAL, ? AS CLAIM_TOKEN \
           FROM VALUES {values}\
         ) AS o ON st.RECORD_ID = o.RECORD_ID AND st.CLAIM_TOKEN = o.CLAIM_TOKEN AND st.OUTCOME IS NULL \
         WHEN MATCHED AND o.IS_FINAL = 1 THEN UPDATE SET \
           SENT = o.SENT, OUTCOME = o.OUTCOME, REASON = o.REASON, DEDUP_UUID = o.DEDUP_UUID, \
           ATTEMPTS = st.ATTEMPTS + 1, PROCESSED_AT = {NOW}, PROCESSED_BY = st.CLAIMED_BY, LAST_TOKEN = o.CLAIM_TOKEN, \
           CLAIM_TOKEN = NULL, CLAIMED_BY = NULL, LEASE_UNTIL = NULL, UPDATED_AT = {NOW} \
         WHEN MATCHED AND o.IS_FINAL = 0 THEN UPDATE SET \
           ATTEMPTS = st.ATTEMPTS + 1, LAST_DEFERRAL = o.REASON, LAST_TOKEN = o.CLAIM_TOKEN, \
           CLAIM_TOKEN = NULL, CLAIMED_BY = NULL, LEASE_UNTIL = NULL, UPDATED_AT = {NOW}",
        state = names.state.sql(),
    );
    let mut binds = Vec::with_capacity(1 + rows.len() * OUTCOME_COLUMNS);
    binds.push(Value::text(token.as_str()));
    for row in rows {
        binds.push(Value::text(row.id.as_str()));
        binds.push(Value::Int(row.sent.map(i64::from)));
        binds.push(Value::Text(row.outcome.clone()));
        binds.push(Value::Text(row.reason.clone()));
        binds.push(Value::Text(row.dedup_uuid.clone()));
        binds.push(Value::int(i64::from(row.is_final)));
    }
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
        let token = ClaimToken::generate();
        let ids = [RecordId::new("1"), RecordId::new("2")];
        let rows = vec![
            OutcomeRow {
                id: RecordId::new("1"),
                sent: Some(1),
                outcome: Some("sent".into()),
                reason: None,
                dedup_uuid: Some("00000000-0000-8000-8000-000000000001".into()),
                is_final: true,
            },
            OutcomeRow {
                id: RecordId::new("2"),
                sent: None,
                outcome: None,
                reason: Some("deadline".into()),
                dedup_uuid: None,
                is_final: false,
            },
        ];
        for sql in [
            claim(&n, &token, "w", 60_000, 100),
            read_claimed(&n, &token),
            peek(&n, 10),
            count_claimable(&n),
            release(&n, &token, &ids),
            write_back(&n, &token, &rows),
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
            is_final: true,
        }];
        for sql in [
            claim(&n, &token, "worker'--", 1, 1),
            read_claimed(&n, &token),
            release(&n, &token, std::slice::from_ref(&id)),
            write_back(&n, &token, &rows),
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
        let token = ClaimToken::generate();
        let rows = vec![OutcomeRow {
            id: RecordId::new("1"),
            sent: Some(1),
            outcome: Some("sent".into()),
            reason: None,
            dedup_uuid: None,
            is_final: true,
        }];
        for sql in [claim(&n, &token, "w", 1, 1), write_back(&n, &token, &rows)] {
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
    }

    #[test]
    fn absent_optional_columns_read_as_null() {
        let mut c = config();
        c.table.test_date_column = None;
        let n = c.names().expect("valid");
        let sql = read_claimed(&n, &ClaimToken::generate());
        assert!(sql.text.contains("NULL AS TEST_DATE"), "{}", sql.text);
        assert!(sql.text.contains("src.\"PHONE\" AS PHONE"), "{}", sql.text);
    }
}
