//! [`StoreAdmin`] on Snowflake: the operator's counts and corrections over the state
//! table this crate owns.
//!
//! The source table is the state's (the health department's): ca-notify reads it and
//! never writes it, so a `purge` here erases nothing in it — the state table and the
//! attempt log hold no phone number and no date of the person, only ids, outcomes and
//! dedup uuids, which must stay so that no one is texted twice. `purge` counts what is
//! past retention and reports no erased columns; erasing the source rows is the owner's
//! retention job (docs/store-snowflake.md).
//!
//! A pending record may have no state row yet (state rows are made by the first claim),
//! so counts of pending records read the source table beside the state table. Leases are
//! on Snowflake's clock (`SYSDATE()`), as the claims stamp them. Values are bound; the
//! page sizes are integer literals checked against [`MAX_PAGE`].

use std::collections::BTreeMap;

use async_trait::async_trait;
use ca_notify_domain::{DedupKey, NotSentKind, RecordId};
use ca_notify_ports::admin::{
    AdminError, ExportRow, PurgeReport, ReportRecord, RequeueReport, RequeueSelection, StoreAdmin,
    StoreStatus, CONFIRMED_BY_CLAIM, LAST_RUNS, MAX_PAGE,
};
use ca_notify_ports::{RunCounts, RunEnd, RunLog, RunStart};
use chrono::{DateTime, NaiveDate, Utc};
use snowflake_connector_rs::CellValue;

use crate::config::Names;
use crate::connection::Answer;
use crate::decode::{self, DecodeError};
use crate::error::StoreError;
use crate::sql::{Sql, Value};
use crate::store::{decode_error, first_count, rows_changed, SnowflakeStore};

/// Snowflake's clock, in UTC (as [`crate::sql`] stamps leases).
const NOW: &str = "SYSDATE()";

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

fn sql(text: String, binds: Vec<Value>) -> Sql {
    Sql { text, binds }
}

fn text(t: impl Into<String>) -> Value {
    Value::Text(Some(t.into()))
}

fn limit_literal(limit: usize) -> usize {
    limit.min(MAX_PAGE)
}

fn cell_text(cell: &CellValue, what: &str) -> Result<Option<String>, StoreError> {
    decode::text(cell, what).map_err(decode_error)
}

fn cell_count(cell: &CellValue, what: &str) -> Result<u64, StoreError> {
    decode::count(cell, what).map_err(decode_error)
}

fn cells(answer: &Answer) -> impl Iterator<Item = &[CellValue]> {
    answer.rows.iter().map(|r| r.values())
}

fn expect_cells(row: &[CellValue], n: usize) -> Result<&[CellValue], StoreError> {
    if row.len() == n {
        Ok(row)
    } else {
        Err(decode_error(DecodeError(format!(
            "an admin row has {} columns, expected {n}",
            row.len()
        ))))
    }
}

/// Counts grouped by a text key: rows of `(key, count)`.
fn grouped(answer: &Answer, what: &str) -> Result<BTreeMap<String, u64>, StoreError> {
    let mut out = BTreeMap::new();
    for row in cells(answer) {
        let row = expect_cells(row, 2)?;
        let key = cell_text(&row[0], what)?.unwrap_or_default();
        *out.entry(key).or_insert(0) += cell_count(&row[1], what)?;
    }
    Ok(out)
}

impl SnowflakeStore {
    async fn admin_run(&self, what: &str, statement: &Sql) -> Result<Answer, AdminError> {
        Ok(self.conn.run(what, statement).await?)
    }

    /// The ids of `ids` that cannot be requeued, by problem.
    async fn refuse_ids(&self, ids: &[RecordId]) -> Result<Option<String>, AdminError> {
        let names = &self.names;
        let mut problems: BTreeMap<String, Vec<String>> = BTreeMap::new();
        for chunk in ids.chunks(MAX_PAGE) {
            let list = vec!["?"; chunk.len()].join(", ");
            let statement = sql(
                format!(
                    "SELECT RECORD_ID, SENT, OUTCOME FROM {state} WHERE RECORD_ID IN ({list})",
                    state = names.state.sql()
                ),
                chunk.iter().map(|id| text(id.as_str())).collect(),
            );
            let answer = self
                .admin_run("reading records to requeue", &statement)
                .await?;
            let mut known = BTreeMap::new();
            for row in cells(&answer) {
                let row = expect_cells(row, 3)?;
                let id = cell_text(&row[0], "record id")?.unwrap_or_default();
                let sent = cell_text(&row[1], "sent flag")?;
                let outcome = cell_text(&row[2], "outcome")?;
                known.insert(id, (sent, outcome));
            }
            for id in chunk {
                let problem = match known.get(id.as_str()) {
                    None => Some("unknown"),
                    Some((_, None)) => Some("pending"),
                    Some((Some(sent), _)) if sent == "1" => Some("texted"),
                    Some(_) => None,
                };
                if let Some(problem) = problem {
                    let entry = problems.entry(problem.to_owned()).or_default();
                    if !entry.contains(&id.0) {
                        entry.push(id.0.clone());
                    }
                }
            }
        }
        Ok(ca_notify_ports::admin::describe_refusal(&problems))
    }

    /// Back to pending, only where not texted; the number changed.
    async fn requeue_where(
        &self,
        filter: &str,
        binds: Vec<Value>,
        apply: bool,
    ) -> Result<u64, AdminError> {
        let state = self.names.state.sql();
        if !apply {
            let statement = sql(
                format!("SELECT COUNT(*) FROM {state} WHERE SENT = 0 AND OUTCOME IS NOT NULL AND {filter}"),
                binds,
            );
            let answer = self
                .admin_run("counting records to requeue", &statement)
                .await?;
            return Ok(first_count(&answer, "count of records to requeue")?);
        }
        let statement = sql(
            format!(
                "UPDATE {state} SET SENT = NULL, OUTCOME = NULL, REASON = NULL, PROCESSED_AT = NULL, \
                   PROCESSED_BY = NULL, LAST_DEFERRAL = NULL, CLAIM_TOKEN = NULL, CLAIMED_BY = NULL, \
                   LEASE_UNTIL = NULL, UPDATED_AT = {NOW} \
                 WHERE SENT = 0 AND OUTCOME IS NOT NULL AND {filter}"
            ),
            binds,
        );
        let answer = self.admin_run("requeueing records", &statement).await?;
        Ok(rows_changed(&answer)?)
    }
}

#[async_trait]
impl StoreAdmin for SnowflakeStore {
    async fn status(&self, _now: DateTime<Utc>) -> Result<StoreStatus, AdminError> {
        let names = &self.names;
        let state = names.state.sql();
        let counts = sql(
            format!(
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
                backlog = crate::sql::backlog_select(names),
            ),
            Vec::new(),
        );
        let answer = self.admin_run("counting records", &counts).await?;
        let row = answer
            .rows
            .first()
            .map(|r| r.values())
            .ok_or_else(|| decode_error(DecodeError("no counts in the answer".to_owned())))?;
        let row = expect_cells(row, 7)?;
        let mut status = StoreStatus {
            total: cell_count(&row[0], "total")?,
            pending: cell_count(&row[1], "pending count")?,
            claimed: cell_count(&row[2], "claimed count")?,
            claims_expire_by: decode::instant(&row[3]),
            sent: cell_count(&row[4], "sent count")?,
            unconfirmed: cell_count(&row[5], "unconfirmed count")?,
            oldest_pending_since: decode::instant(&row[6]),
            ..StoreStatus::default()
        };
        let by_kind = sql(
            format!(
                "SELECT SPLIT_PART(REASON, ':', 1) AS KIND, COUNT(*) FROM {state} \
                 WHERE OUTCOME = 'not_sent' GROUP BY KIND"
            ),
            Vec::new(),
        );
        let answer = self
            .admin_run("counting records not sent", &by_kind)
            .await?;
        status.not_sent = grouped(&answer, "reason")?;
        let deferred = sql(
            format!(
                "SELECT LAST_DEFERRAL, COUNT(*) FROM {state} WHERE OUTCOME IS NULL \
                 AND LAST_DEFERRAL IS NOT NULL AND (LEASE_UNTIL IS NULL OR LEASE_UNTIL < {NOW}) \
                 GROUP BY LAST_DEFERRAL"
            ),
            Vec::new(),
        );
        let answer = self
            .admin_run("counting deferred records", &deferred)
            .await?;
        status.deferred = grouped(&answer, "deferral")?;
        status.last_runs = RunLog::recent_runs(self, LAST_RUNS).await?;
        Ok(status)
    }

    async fn requeue(
        &self,
        selection: &RequeueSelection,
        apply: bool,
    ) -> Result<RequeueReport, AdminError> {
        let requeued = match selection {
            RequeueSelection::Ids(ids) => {
                if ids.is_empty() {
                    return Err(AdminError::Refused("the id list is empty".to_owned()));
                }
                if let Some(refusal) = self.refuse_ids(ids).await? {
                    return Err(AdminError::Refused(refusal));
                }
                let mut unique: Vec<&str> = ids.iter().map(RecordId::as_str).collect();
                unique.sort_unstable();
                unique.dedup();
                let mut total = 0;
                for chunk in unique.chunks(MAX_PAGE) {
                    let list = vec!["?"; chunk.len()].join(", ");
                    total += self
                        .requeue_where(
                            &format!("RECORD_ID IN ({list})"),
                            chunk.iter().map(|id| text(*id)).collect(),
                            apply,
                        )
                        .await?;
                }
                total
            }
            RequeueSelection::Reason(NotSentKind::Unconfirmed) => return Err(AdminError::Refused(
                "`unconfirmed` is an outcome, not a reason: select it with --outcome unconfirmed"
                    .to_owned(),
            )),
            RequeueSelection::Reason(kind) => {
                self.requeue_where(
                    "OUTCOME = 'not_sent' AND (REASON = ? OR STARTSWITH(REASON, ?))",
                    vec![text(kind.code()), text(format!("{}:", kind.code()))],
                    apply,
                )
                .await?
            }
            RequeueSelection::Unconfirmed => {
                self.requeue_where("OUTCOME = 'unconfirmed'", Vec::new(), apply)
                    .await?
            }
        };
        if apply {
            tracing::info!(requeued, "Requeued records.");
        }
        Ok(RequeueReport {
            requeued,
            skipped_purged: 0,
            applied: apply,
        })
    }

    async fn purge(
        &self,
        cutoff: DateTime<Utc>,
        apply: bool,
        run: &RunStart,
    ) -> Result<PurgeReport, AdminError> {
        let statement = sql(
            format!(
                "SELECT COUNT(*), COALESCE(SUM(CASE WHEN SENT = 1 THEN 1 ELSE 0 END), 0) FROM {state} \
                 WHERE OUTCOME IS NOT NULL AND PROCESSED_AT < TO_TIMESTAMP_NTZ(?)",
                state = self.names.state.sql()
            ),
            vec![text(cutoff.format("%Y-%m-%d %H:%M:%S%.3f").to_string())],
        );
        let answer = self
            .admin_run("counting finished records", &statement)
            .await?;
        let row = answer
            .rows
            .first()
            .map(|r| r.values())
            .ok_or_else(|| decode_error(DecodeError("no counts in the answer".to_owned())))?;
        let row = expect_cells(row, 2)?;
        let report = PurgeReport {
            records: cell_count(&row[0], "finished count")?,
            sent: cell_count(&row[1], "texted count")?,
            erased_columns: Vec::new(),
            already_purged: 0,
            applied: apply,
        };
        if apply {
            // Nothing is erased here (the module docs say why); the run still records
            // that a purge ran and found nothing of ours to erase.
            RunLog::start_run(self, run).await?;
            let end = RunEnd {
                ended_at: Utc::now(),
                succeeded: true,
                stop: "purge".to_owned(),
                counts: RunCounts::default(),
            };
            RunLog::finish_run(self, &run.id, &end).await?;
        }
        Ok(report)
    }

    async fn export_page(
        &self,
        after: Option<String>,
        limit: usize,
    ) -> Result<Vec<ExportRow>, AdminError> {
        let names = &self.names;
        let statement = sql(
            format!(
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
                limit = limit_literal(limit),
            ),
            vec![text(after.unwrap_or_default())],
        );
        let answer = self.admin_run("reading the export", &statement).await?;
        let mut rows = Vec::with_capacity(answer.rows.len());
        for row in cells(&answer) {
            let row = expect_cells(row, 8)?;
            let sent = cell_text(&row[1], "sent flag")?;
            rows.push(ExportRow {
                id: cell_text(&row[0], "record id")?.unwrap_or_default(),
                sent: sent.map(|s| u8::from(s == "1")),
                outcome: cell_text(&row[2], "outcome")?.unwrap_or_else(|| "pending".to_owned()),
                reason: cell_text(&row[3], "reason")?.unwrap_or_default(),
                attempts: u32::try_from(cell_count(&row[4], "attempts")?).unwrap_or(u32::MAX),
                run_id: cell_text(&row[7], "run id")?,
                first_attempt_at: decode::instant(&row[6]),
                processed_at: decode::instant(&row[5]),
            });
        }
        Ok(rows)
    }

    async fn unconfirmed(
        &self,
        after: Option<String>,
        limit: usize,
    ) -> Result<Vec<(RecordId, DedupKey)>, AdminError> {
        let statement = sql(
            format!(
                "SELECT RECORD_ID, DEDUP_UUID FROM {state} WHERE OUTCOME = 'unconfirmed' \
                 AND RECORD_ID > ? ORDER BY RECORD_ID LIMIT {limit}",
                state = self.names.state.sql(),
                limit = limit_literal(limit),
            ),
            vec![text(after.unwrap_or_default())],
        );
        let answer = self
            .admin_run("reading unconfirmed records", &statement)
            .await?;
        let mut out = Vec::new();
        for row in cells(&answer) {
            let row = expect_cells(row, 2)?;
            let id = cell_text(&row[0], "record id")?.unwrap_or_default();
            let key = cell_text(&row[1], "dedup uuid")?
                .and_then(|u| DedupKey::parse(&u).ok())
                .ok_or_else(|| {
                    AdminError::Unknown(anyhow::anyhow!(
                        "unconfirmed record {id} has no valid dedup uuid in the state table"
                    ))
                })?;
            out.push((RecordId::new(id), key));
        }
        Ok(out)
    }

    async fn confirm_sent(&self, records: &[(RecordId, DedupKey)]) -> Result<u64, AdminError> {
        let state = self.names.state.sql();
        let mut written = 0;
        // One statement per record: each is atomic and checks the record is still
        // unconfirmed under that uuid, so a partial run leaves only true rows behind.
        for (id, key) in records {
            let statement = sql(
                format!(
                    "UPDATE {state} SET SENT = 1, OUTCOME = 'sent', REASON = ?, \
                       PROCESSED_AT = {NOW}, UPDATED_AT = {NOW} \
                     WHERE RECORD_ID = ? AND OUTCOME = 'unconfirmed' AND DEDUP_UUID = ?"
                ),
                vec![
                    text(CONFIRMED_BY_CLAIM),
                    text(id.as_str()),
                    text(key.as_uuid().hyphenated().to_string()),
                ],
            );
            let answer = self.admin_run("confirming a record", &statement).await?;
            written += rows_changed(&answer)?;
        }
        Ok(written)
    }

    async fn report_records(&self, since: DateTime<Utc>) -> Result<Vec<ReportRecord>, AdminError> {
        let names = &self.names;
        let test_date = names
            .source
            .test_date
            .as_ref()
            .map_or_else(|| "NULL".to_owned(), |c| format!("src.{}", c.sql()));
        let arrived_at = names.source.arrived_at.as_ref().map_or_else(
            || "CAST(NULL AS TIMESTAMP_NTZ)".to_owned(),
            |c| format!("src.{}", c.sql()),
        );
        let statement = sql(
            format!(
                "SELECT {test_date}, s.PROCESSED_AT, s.SENT, s.OUTCOME, s.REASON, {arrived_at} \
                 FROM {source} AS src LEFT JOIN {state} AS s ON s.RECORD_ID = {key} \
                 WHERE src.{id} IS NOT NULL \
                   AND (s.OUTCOME IS NULL OR s.PROCESSED_AT >= TO_TIMESTAMP_NTZ(?))",
                source = names.source.table.sql(),
                state = names.state.sql(),
                key = key(names),
                id = names.source.id.sql(),
            ),
            vec![text(since.format("%Y-%m-%d %H:%M:%S%.3f").to_string())],
        );
        let answer = self.admin_run("reading the report", &statement).await?;
        let mut out = Vec::new();
        for row in cells(&answer) {
            let row = expect_cells(row, 6)?;
            let sent = cell_text(&row[2], "sent flag")?;
            let outcome = cell_text(&row[3], "outcome")?;
            let reason = cell_text(&row[4], "reason")?;
            let not_sent_kind = match outcome.as_deref() {
                Some("unconfirmed") => Some("unconfirmed".to_owned()),
                Some("not_sent") => {
                    reason.map(|r| r.split(':').next().unwrap_or_default().to_owned())
                }
                _ => None,
            };
            out.push(ReportRecord {
                arrived_at: decode::instant(&row[5]),
                test_date: cell_text(&row[0], "test date")?
                    .and_then(|t| NaiveDate::parse_from_str(t.get(..10)?, "%Y-%m-%d").ok()),
                processed_at: decode::instant(&row[1]),
                sent: sent.map(|s| u8::from(s == "1")),
                not_sent_kind,
            });
        }
        Ok(out)
    }
}
