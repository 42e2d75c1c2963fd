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
//! The statements are built in `admin_sql.rs` (where the sqlglot check reaches them); this
//! module runs them and reads their rows.

use std::collections::{BTreeMap, BTreeSet};

use async_trait::async_trait;
use ca_notify_domain::{DedupKey, NotSentKind, RecordId};
use ca_notify_ports::admin::{
    AdminError, ExportRow, PurgeReport, ReportRecord, RequeueReport, RequeueSelection, StoreAdmin,
    StoreStatus, LAST_RUNS, MAX_PAGE,
};
use ca_notify_ports::{RunCounts, RunEnd, RunLog, RunStart};
use chrono::{DateTime, NaiveDate, Utc};
use snowflake_connector_rs::CellValue;

use crate::admin_sql::{self, RequeueFilter};
use crate::connection::Answer;
use crate::decode::{self, DecodeError};
use crate::error::StoreError;
use crate::sql::Sql;
use crate::store::{decode_error, first_count, rows_changed, SnowflakeStore};

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
    /// Runs one statement. The operator's commands make no table (unlike a run with
    /// `auto_migrate`), so a table that is missing or not granted is named with the two
    /// commands that tell which and make the state tables.
    async fn admin_run(&self, what: &str, statement: &Sql) -> Result<Answer, AdminError> {
        self.conn.run(what, statement).await.map_err(|e| match e {
            StoreError::Misconfigured(m) => AdminError::Misconfigured(format!(
                "{m}; `ca-notify check` says which table is missing or not granted, \
                     and `ca-notify migrate` makes the state tables"
            )),
            other => other.into(),
        })
    }

    /// The ids of `ids` that cannot be requeued, by problem.
    async fn refuse_ids(&self, ids: &[RecordId]) -> Result<Option<String>, AdminError> {
        let mut problems: BTreeMap<String, Vec<String>> = BTreeMap::new();
        for chunk in ids.chunks(MAX_PAGE) {
            let statement = admin_sql::requeue_candidates(&self.names, chunk);
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
            let in_source = self.in_source_only(chunk, &known).await?;
            for id in chunk {
                let problem = match known.get(id.as_str()) {
                    None if in_source.contains(id.as_str()) => Some("pending"),
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

    /// Of `ids` without a state row (`known` holds those with one), the ones the source
    /// table holds: records no claim has reached yet, pending rather than unknown.
    async fn in_source_only(
        &self,
        ids: &[RecordId],
        known: &BTreeMap<String, (Option<String>, Option<String>)>,
    ) -> Result<BTreeSet<String>, AdminError> {
        let missing: Vec<&str> = ids
            .iter()
            .map(RecordId::as_str)
            .filter(|id| !known.contains_key(*id))
            .collect();
        if missing.is_empty() {
            return Ok(BTreeSet::new());
        }
        let statement = admin_sql::source_ids(&self.names, &missing);
        let answer = self
            .admin_run("reading source records to requeue", &statement)
            .await?;
        let mut found = BTreeSet::new();
        for row in cells(&answer) {
            let row = expect_cells(row, 1)?;
            found.insert(cell_text(&row[0], "record id")?.unwrap_or_default());
        }
        Ok(found)
    }

    /// Back to pending, only where not texted; the number changed.
    async fn requeue_where(
        &self,
        filter: RequeueFilter<'_>,
        apply: bool,
    ) -> Result<u64, AdminError> {
        if !apply {
            let statement = admin_sql::count_requeueable(&self.names, filter);
            let answer = self
                .admin_run("counting records to requeue", &statement)
                .await?;
            return Ok(first_count(&answer, "count of records to requeue")?);
        }
        let statement = admin_sql::requeue(&self.names, filter);
        let answer = self.admin_run("requeueing records", &statement).await?;
        Ok(rows_changed(&answer)?)
    }
}

#[async_trait]
impl StoreAdmin for SnowflakeStore {
    async fn status(&self, _now: DateTime<Utc>) -> Result<StoreStatus, AdminError> {
        let counts = admin_sql::status_counts(&self.names);
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
        let by_kind = admin_sql::not_sent_by_kind(&self.names);
        let answer = self
            .admin_run("counting records not sent", &by_kind)
            .await?;
        status.not_sent = grouped(&answer, "reason")?;
        let deferred = admin_sql::deferred_by_reason(&self.names);
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
                    total += self.requeue_where(RequeueFilter::Ids(chunk), apply).await?;
                }
                total
            }
            RequeueSelection::Reason(NotSentKind::Unconfirmed) => return Err(AdminError::Refused(
                "`unconfirmed` is an outcome, not a reason: select it with --outcome unconfirmed"
                    .to_owned(),
            )),
            RequeueSelection::Reason(kind) => {
                self.requeue_where(RequeueFilter::Reason(*kind), apply)
                    .await?
            }
            RequeueSelection::Unconfirmed => {
                self.requeue_where(RequeueFilter::Unconfirmed, apply)
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
        let statement = admin_sql::count_purgeable(&self.names, cutoff);
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
        let statement = admin_sql::export_page(&self.names, &after.unwrap_or_default(), limit);
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
        let statement = admin_sql::unconfirmed_page(&self.names, &after.unwrap_or_default(), limit);
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
        let mut written = 0;
        // One statement per record: each is atomic and checks the record is still
        // unconfirmed under that uuid, so a partial run leaves only true rows behind.
        for (id, key) in records {
            let statement = admin_sql::confirm_sent(&self.names, id, key);
            let answer = self.admin_run("confirming a record", &statement).await?;
            written += rows_changed(&answer)?;
        }
        Ok(written)
    }

    async fn report_records(&self, since: DateTime<Utc>) -> Result<Vec<ReportRecord>, AdminError> {
        let statement = admin_sql::report_records(&self.names, since);
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
