//! The statements of the operator's commands on Snowflake (`admin.rs` runs them and reads
//! their rows). Built here, one function per statement, so that the sqlglot check
//! (`sqlglot_check.rs`) parses every one of them as it does the claim's.
//!
//! Values are bound; page sizes are integer literals no larger than [`MAX_PAGE`]
//! (Snowflake takes only a constant after `LIMIT`). Leases and stamps are on Snowflake's
//! clock (`SYSDATE()`), as the claims write them. A pending record may have no state row
//! yet (the first claim makes it), so the counts of every record read the source table
//! beside the state table.

use ca_notify_domain::{DedupKey, NotSentKind, RecordId};
use ca_notify_ports::admin::{CONFIRMED_BY_CLAIM, MAX_PAGE};
use chrono::{DateTime, Utc};

use crate::config::Names;
use crate::sql::{backlog_select, Sql, Value};

/// Snowflake's clock, in UTC (as [`crate::sql`] stamps leases).
const NOW: &str = "SYSDATE()";

/// How times travel as binds: text cast by `TO_TIMESTAMP_NTZ` (UTC, the session's zone).
const TIME_FORMAT: &str = "%Y-%m-%d %H:%M:%S%.3f";

fn text(t: impl Into<String>) -> Value {
    Value::Text(Some(t.into()))
}

fn time(t: DateTime<Utc>) -> Value {
    text(t.format(TIME_FORMAT).to_string())
}

fn placeholders(n: usize) -> String {
    vec!["?"; n].join(", ")
}

/// The source id as the state table's key (as [`crate::sql`] spells it).
fn key(names: &Names) -> String {
    format!("TO_VARCHAR(src.{})", names.source.id.sql())
}

/// Every record id the store knows: the source's and the state table's.
fn all_ids(names: &Names) -> String {
    format!(
        "(SELECT {key} AS RECORD_ID FROM {source} AS src WHERE src.{id} IS NOT NULL \
          UNION SELECT RECORD_ID FROM {state})",
        key = key(names),
        source = names.source.table.sql(),
        id = names.source.id.sql(),
        state = names.state.sql(),
    )
}

/// An optional source column as `src.COLUMN`, or a typed `NULL` when it is not configured.
fn optional_column(column: Option<&crate::ident::Ident>, null: &str) -> String {
    column.map_or_else(|| null.to_owned(), |c| format!("src.{}", c.sql()))
}

/// A page size as the literal after `LIMIT`: at most [`MAX_PAGE`].
fn page(limit: usize) -> usize {
    limit.min(MAX_PAGE)
}

/// Which finished, not-texted records a requeue takes.
#[derive(Debug, Clone, Copy)]
pub(crate) enum RequeueFilter<'a> {
    /// These ids (at most [`MAX_PAGE`] a statement).
    Ids(&'a [&'a str]),
    /// Not sent for this reason kind.
    Reason(NotSentKind),
    /// Written `unconfirmed`.
    Unconfirmed,
}

impl RequeueFilter<'_> {
    fn condition(self) -> (String, Vec<Value>) {
        match self {
            Self::Ids(ids) => (
                format!("RECORD_ID IN ({})", placeholders(ids.len())),
                ids.iter().map(|id| text(*id)).collect(),
            ),
            Self::Reason(kind) => (
                "OUTCOME = 'not_sent' AND (REASON = ? OR STARTSWITH(REASON, ?))".to_owned(),
                vec![text(kind.code()), text(format!("{}:", kind.code()))],
            ),
            Self::Unconfirmed => ("OUTCOME = 'unconfirmed'".to_owned(), Vec::new()),
        }
    }
}

/// The state of each of `ids` (`RECORD_ID, SENT, OUTCOME`), to refuse a requeue by id.
pub(crate) fn requeue_candidates(names: &Names, ids: &[RecordId]) -> Sql {
    Sql {
        text: format!(
            "SELECT RECORD_ID, SENT, OUTCOME FROM {state} WHERE RECORD_ID IN ({list})",
            state = names.state.sql(),
            list = placeholders(ids.len()),
        ),
        binds: ids.iter().map(|id| text(id.as_str())).collect(),
    }
}

/// Which of `ids` the source table holds (`RECORD_ID` as the state table spells it): a
/// record no claim has reached has no state row, and is pending all the same.
pub(crate) fn source_ids(names: &Names, ids: &[&str]) -> Sql {
    Sql {
        text: format!(
            "SELECT DISTINCT {key} FROM {source} AS src WHERE {key} IN ({list})",
            key = key(names),
            source = names.source.table.sql(),
            list = placeholders(ids.len()),
        ),
        binds: ids.iter().map(|id| text(*id)).collect(),
    }
}

/// How many records `filter` would put back to pending (never a texted one).
pub(crate) fn count_requeueable(names: &Names, filter: RequeueFilter<'_>) -> Sql {
    let (condition, binds) = filter.condition();
    Sql {
        text: format!(
            "SELECT COUNT(*) FROM {state} WHERE SENT = 0 AND OUTCOME IS NOT NULL AND {condition}",
            state = names.state.sql(),
        ),
        binds,
    }
}

/// Puts the records `filter` selects back to pending, only where not texted.
pub(crate) fn requeue(names: &Names, filter: RequeueFilter<'_>) -> Sql {
    let (condition, binds) = filter.condition();
    Sql {
        text: format!(
            "UPDATE {state} SET SENT = NULL, OUTCOME = NULL, REASON = NULL, PROCESSED_AT = NULL, \
               PROCESSED_BY = NULL, LAST_DEFERRAL = NULL, CLAIM_TOKEN = NULL, CLAIMED_BY = NULL, \
               LEASE_UNTIL = NULL, UPDATED_AT = {NOW} \
             WHERE SENT = 0 AND OUTCOME IS NOT NULL AND {condition}",
            state = names.state.sql(),
        ),
        binds,
    }
}

/// `status`'s counts in one row: `TOTAL, PENDING, CLAIMED, EXPIRE, SENT, UNCONFIRMED,
/// OLDEST` (the backlog's count and oldest arrival as the run's metrics read them).
pub(crate) fn status_counts(names: &Names) -> Sql {
    Sql {
        text: format!(
            "SELECT \
               (SELECT COUNT(*) FROM {ids}) AS TOTAL, \
               b.PENDING, \
               (SELECT COUNT(*) FROM {state} WHERE OUTCOME IS NULL AND LEASE_UNTIL >= {NOW}) AS CLAIMED, \
               (SELECT MAX(LEASE_UNTIL) FROM {state} WHERE OUTCOME IS NULL AND LEASE_UNTIL >= {NOW}) AS EXPIRE, \
               (SELECT COUNT(*) FROM {state} WHERE SENT = 1) AS SENT, \
               (SELECT COUNT(*) FROM {state} WHERE OUTCOME = 'unconfirmed') AS UNCONFIRMED, \
               b.OLDEST \
             FROM (SELECT {backlog}) AS b",
            ids = all_ids(names),
            state = names.state.sql(),
            backlog = backlog_select(names),
        ),
        binds: Vec::new(),
    }
}

/// Not-texted records by reason kind (the code before the first `:`).
pub(crate) fn not_sent_by_kind(names: &Names) -> Sql {
    Sql {
        text: format!(
            "SELECT SPLIT_PART(REASON, ':', 1) AS KIND, COUNT(*) FROM {state} \
             WHERE OUTCOME = 'not_sent' GROUP BY KIND",
            state = names.state.sql(),
        ),
        binds: Vec::new(),
    }
}

/// Claimable records a run handed back, by their last deferral.
pub(crate) fn deferred_by_reason(names: &Names) -> Sql {
    Sql {
        text: format!(
            "SELECT LAST_DEFERRAL, COUNT(*) FROM {state} WHERE OUTCOME IS NULL \
             AND LAST_DEFERRAL IS NOT NULL AND (LEASE_UNTIL IS NULL OR LEASE_UNTIL < {NOW}) \
             GROUP BY LAST_DEFERRAL",
            state = names.state.sql(),
        ),
        binds: Vec::new(),
    }
}

/// Finished records past `cutoff`, and how many of them were texted.
pub(crate) fn count_purgeable(names: &Names, cutoff: DateTime<Utc>) -> Sql {
    Sql {
        text: format!(
            "SELECT COUNT(*), COALESCE(SUM(CASE WHEN SENT = 1 THEN 1 ELSE 0 END), 0) FROM {state} \
             WHERE OUTCOME IS NOT NULL AND PROCESSED_AT < TO_TIMESTAMP_NTZ(?)",
            state = names.state.sql(),
        ),
        binds: vec![time(cutoff)],
    }
}

/// One page of the export after record id `after` (`""`: from the first), in id order:
/// `RECORD_ID, SENT, OUTCOME, REASON, ATTEMPTS, PROCESSED_AT, FIRST_AT, RUN_ID` (the reason
/// of a pending record is its last deferral).
pub(crate) fn export_page(names: &Names, after: &str, limit: usize) -> Sql {
    Sql {
        text: format!(
            "SELECT ids.RECORD_ID, s.SENT, s.OUTCOME, \
               CASE WHEN s.OUTCOME IS NULL THEN s.LAST_DEFERRAL ELSE s.REASON END, \
               COALESCE(s.ATTEMPTS, 0), s.PROCESSED_AT, a.FIRST_AT, s.RUN_ID \
             FROM (SELECT DISTINCT RECORD_ID FROM {ids} AS u) AS ids \
             LEFT JOIN {state} AS s ON s.RECORD_ID = ids.RECORD_ID \
             LEFT JOIN (SELECT RECORD_ID, MIN(RECORDED_AT) AS FIRST_AT FROM {log} GROUP BY RECORD_ID) AS a \
               ON a.RECORD_ID = ids.RECORD_ID \
             WHERE ids.RECORD_ID > ? ORDER BY ids.RECORD_ID LIMIT {limit}",
            ids = all_ids(names),
            state = names.state.sql(),
            log = names.attempts.sql(),
            limit = page(limit),
        ),
        binds: vec![text(after)],
    }
}

/// One page of `unconfirmed` records after record id `after`: `RECORD_ID, DEDUP_UUID`.
pub(crate) fn unconfirmed_page(names: &Names, after: &str, limit: usize) -> Sql {
    Sql {
        text: format!(
            "SELECT RECORD_ID, DEDUP_UUID FROM {state} WHERE OUTCOME = 'unconfirmed' \
             AND RECORD_ID > ? ORDER BY RECORD_ID LIMIT {limit}",
            state = names.state.sql(),
            limit = page(limit),
        ),
        binds: vec![text(after)],
    }
}

/// Marks record `id` sent, confirmed by a claimed code, only while it is still
/// `unconfirmed` under `key`.
pub(crate) fn confirm_sent(names: &Names, id: &RecordId, key: &DedupKey) -> Sql {
    Sql {
        text: format!(
            "UPDATE {state} SET SENT = 1, OUTCOME = 'sent', REASON = ?, \
               PROCESSED_AT = {NOW}, UPDATED_AT = {NOW} \
             WHERE RECORD_ID = ? AND OUTCOME = 'unconfirmed' AND DEDUP_UUID = ?",
            state = names.state.sql(),
        ),
        binds: vec![
            text(CONFIRMED_BY_CLAIM),
            text(id.as_str()),
            text(key.as_uuid().hyphenated().to_string()),
        ],
    }
}

/// The report's records: every pending one and those finished since `since`:
/// `TEST_DATE, PROCESSED_AT, SENT, OUTCOME, REASON, ARRIVED_AT` (`NULL` for a column the
/// source does not have).
pub(crate) fn report_records(names: &Names, since: DateTime<Utc>) -> Sql {
    Sql {
        text: format!(
            "SELECT {test_date}, s.PROCESSED_AT, s.SENT, s.OUTCOME, s.REASON, {arrived_at} \
             FROM {source} AS src LEFT JOIN {state} AS s ON s.RECORD_ID = {key} \
             WHERE src.{id} IS NOT NULL \
               AND (s.OUTCOME IS NULL OR s.PROCESSED_AT >= TO_TIMESTAMP_NTZ(?))",
            test_date = optional_column(names.source.test_date.as_ref(), "NULL"),
            arrived_at = optional_column(
                names.source.arrived_at.as_ref(),
                "CAST(NULL AS TIMESTAMP_NTZ)"
            ),
            source = names.source.table.sql(),
            state = names.state.sql(),
            key = key(names),
            id = names.source.id.sql(),
        ),
        binds: vec![time(since)],
    }
}
