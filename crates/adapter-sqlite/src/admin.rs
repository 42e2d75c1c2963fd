//! [`StoreAdmin`] on SQLite: the operator's counts and corrections over the state table,
//! and the erasure of the personal data the source table (ours, in this store) holds.
//!
//! Every correction is one `BEGIN IMMEDIATE` transaction, so it is all or nothing and
//! serialised with the workers' claims and write-backs. Reads are one statement each
//! (one WAL snapshot). `docs/operations.md` ("The operator's day") says when to use what.

use std::collections::BTreeMap;

use async_trait::async_trait;
use ca_notify_domain::{DedupKey, NotSentKind, RecordId};
use ca_notify_ports::admin::{
    AdminError, ExportRow, PurgeReport, ReportRecord, RequeueReport, RequeueSelection, StoreAdmin,
    StoreStatus, CONFIRMED_BY_CLAIM, LAST_RUNS, MAX_PAGE,
};
use ca_notify_ports::{RunLog, RunStart};
use chrono::{DateTime, NaiveDate, SecondsFormat, Utc};
use rusqlite::{params, Connection, TransactionBehavior};

use crate::config::ValidTable;
use crate::error::StoreError;
use crate::store::SqliteStore;

/// Counts in one pass over the state table; `?1` is now in Unix ms.
const STATUS: &str = "SELECT count(*),
        count(*) FILTER (WHERE outcome IS NULL AND lease_until <= ?1),
        count(*) FILTER (WHERE outcome IS NULL AND lease_until > ?1),
        max(lease_until) FILTER (WHERE outcome IS NULL AND lease_until > ?1),
        count(*) FILTER (WHERE sent = 1),
        count(*) FILTER (WHERE outcome = 'unconfirmed'),
        min(adopted_at) FILTER (WHERE outcome IS NULL AND lease_until <= ?1),
        count(*) FILTER (WHERE purged_at IS NOT NULL)
    FROM ca_notify_state";

/// Not-texted records by reason kind (the code before the first `:`).
const NOT_SENT_BY_KIND: &str = "SELECT substr(reason, 1, instr(reason || ':', ':') - 1), count(*)
    FROM ca_notify_state WHERE outcome = 'not_sent' GROUP BY 1";

/// Claimable records a run handed back, by their last deferral; `?1` is now.
const DEFERRED_BY_REASON: &str = "SELECT last_deferral, count(*) FROM ca_notify_state
    WHERE outcome IS NULL AND lease_until <= ?1 AND last_deferral IS NOT NULL GROUP BY 1";

/// Where a requeue selection by reason kind `?1` matches (`?1` or `?1:…`); plain string
/// comparison, since LIKE would read the codes' underscores as wildcards.
const BY_KIND: &str =
    "outcome = 'not_sent' AND (reason = ?1 OR substr(reason, 1, length(?1) + 1) = ?1 || ':')";

/// Back to pending; `sent = 0` again here so that no selection can ever reach a texted
/// record. Attempts and the attempt log stay.
const REQUEUE_SET: &str = "UPDATE ca_notify_state
    SET sent = NULL, outcome = NULL, reason = NULL, processed_at = NULL, last_deferral = NULL,
        claim_token = NULL, claimed_by = NULL, lease_until = 0";

/// One page of the export, with the first attempt from the attempt log's record index.
const EXPORT_PAGE: &str = "SELECT s.record_id, s.sent, s.outcome,
        CASE WHEN s.outcome IS NULL THEN s.last_deferral ELSE s.reason END,
        s.attempts, s.processed_at,
        (SELECT min(a.recorded_at) FROM ca_notify_attempts AS a WHERE a.record_id = s.record_id),
        s.run_id
    FROM ca_notify_state AS s WHERE s.record_id > ?1 ORDER BY s.record_id LIMIT ?2";

const UNCONFIRMED_PAGE: &str = "SELECT record_id, dedup_uuid FROM ca_notify_state
    WHERE outcome = 'unconfirmed' AND record_id > ?1 ORDER BY record_id LIMIT ?2";

const CONFIRM: &str = "UPDATE ca_notify_state
    SET sent = 1, outcome = 'sent', reason = ?3, processed_at = ?4
    WHERE record_id = ?1 AND outcome = 'unconfirmed' AND dedup_uuid = ?2";

/// Finished records written before `?1` and not yet purged: total, texted.
const PURGEABLE: &str = "SELECT count(*), count(*) FILTER (WHERE sent = 1) FROM ca_notify_state
    WHERE outcome IS NOT NULL AND purged_at IS NULL AND processed_at < ?1";

const ALREADY_PURGED: &str = "SELECT count(*) FROM ca_notify_state
    WHERE purged_at IS NOT NULL AND processed_at < ?1";

/// The purge as a run: `?1` id, `?2` worker, `?3` start, `?4` end, `?5` records erased.
const RECORD_PURGE: &str = "INSERT INTO ca_notify_runs (run_id, worker, started_at, ended_at,
        succeeded, stop, purged)
    VALUES (?1, ?2, ?3, ?4, 1, 'purge', ?5)";

const MARK_PURGED: &str = "UPDATE ca_notify_state SET purged_at = ?2
    WHERE outcome IS NOT NULL AND purged_at IS NULL AND processed_at < ?1";

/// The first id of an export page: every id sorts after the empty string.
const BEFORE_ALL: &str = "";

fn rfc3339(at: DateTime<Utc>) -> String {
    at.to_rfc3339_opts(SecondsFormat::Millis, true)
}

fn parse_time(text: Option<String>) -> Option<DateTime<Utc>> {
    text.and_then(|t| DateTime::parse_from_rfc3339(&t).ok())
        .map(|t| t.with_timezone(&Utc))
}

fn ms_to_time(ms: i64) -> Option<DateTime<Utc>> {
    DateTime::from_timestamp_millis(ms)
}

fn count(v: i64) -> u64 {
    u64::try_from(v).unwrap_or(0)
}

fn page_limit(limit: usize) -> i64 {
    i64::try_from(limit.min(MAX_PAGE)).unwrap_or(0)
}

/// A source date as the stores keep it: `YYYY-MM-DD`, or a timestamp starting so.
fn parse_date(text: Option<String>) -> Option<NaiveDate> {
    let text = text?;
    NaiveDate::parse_from_str(text.get(..10)?, "%Y-%m-%d").ok()
}

/// The source columns a purge erases: the phone (to the empty string, which the
/// pipeline reads as an invalid number, and which a `NOT NULL` phone column accepts)
/// and the person's dates (to NULL). The id and the test type stay.
fn purge_source_sql(t: &ValidTable) -> (String, Vec<String>) {
    let mut sets = vec![format!("{} = ''", t.phone.quoted())];
    let mut names = vec![t.phone.as_str().to_owned()];
    for c in [&t.test_date, &t.symptom_date].into_iter().flatten() {
        sets.push(format!("{} = NULL", c.quoted()));
        names.push(c.as_str().to_owned());
    }
    let sql = format!(
        "UPDATE {} SET {} WHERE {} IN (SELECT record_id FROM ca_notify_state
           WHERE outcome IS NOT NULL AND purged_at IS NULL AND processed_at < ?1)",
        t.name.quoted(),
        sets.join(", "),
        t.id.quoted()
    );
    (sql, names)
}

fn status_blocking(conn: &Connection, now_ms: i64) -> Result<StoreStatus, StoreError> {
    let mut status = conn.prepare_cached(STATUS)?.query_row([now_ms], |r| {
        Ok(StoreStatus {
            total: count(r.get(0)?),
            pending: count(r.get(1)?),
            claimed: count(r.get(2)?),
            claims_expire_by: r.get::<_, Option<i64>>(3)?.and_then(ms_to_time),
            sent: count(r.get(4)?),
            unconfirmed: count(r.get(5)?),
            oldest_pending_since: parse_time(r.get(6)?),
            purged: count(r.get(7)?),
            ..StoreStatus::default()
        })
    })?;
    let mut stmt = conn.prepare_cached(NOT_SENT_BY_KIND)?;
    let rows = stmt.query_map([], |r| Ok((r.get::<_, String>(0)?, count(r.get(1)?))))?;
    status.not_sent = rows.collect::<Result<BTreeMap<_, _>, _>>()?;
    let mut stmt = conn.prepare_cached(DEFERRED_BY_REASON)?;
    let rows = stmt.query_map([now_ms], |r| Ok((r.get::<_, String>(0)?, count(r.get(1)?))))?;
    status.deferred = rows.collect::<Result<BTreeMap<_, _>, _>>()?;
    Ok(status)
}

/// Why the listed ids cannot be requeued: unknown, pending, texted, purged (at most a few
/// of each, with the count), or `None` when every one can.
fn refuse_ids(conn: &Connection, ids: &[RecordId]) -> Result<Option<String>, StoreError> {
    let json = serde_json::to_string(&ids.iter().map(RecordId::as_str).collect::<Vec<_>>())
        .map_err(|e| StoreError::Unknown(e.to_string()))?;
    let mut stmt = conn.prepare(
        "WITH k(id) AS (SELECT DISTINCT value FROM json_each(?1))
         SELECT k.id, CASE
                 WHEN s.record_id IS NULL THEN 'unknown'
                 WHEN s.outcome IS NULL THEN 'pending'
                 WHEN s.sent = 1 THEN 'texted'
                 WHEN s.purged_at IS NOT NULL THEN 'purged'
                 ELSE NULL END
           FROM k LEFT JOIN ca_notify_state AS s ON s.record_id = k.id ORDER BY k.id",
    )?;
    let mut problems: BTreeMap<String, Vec<String>> = BTreeMap::new();
    let rows = stmt.query_map([json], |r| {
        Ok((r.get::<_, String>(0)?, r.get::<_, Option<String>>(1)?))
    })?;
    for row in rows {
        let (id, problem) = row?;
        if let Some(problem) = problem {
            problems.entry(problem).or_default().push(id);
        }
    }
    Ok(ca_notify_ports::admin::describe_refusal(&problems))
}

fn requeue_blocking(
    conn: &mut Connection,
    selection: &RequeueSelection,
    apply: bool,
) -> Result<Result<RequeueReport, String>, StoreError> {
    let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
    let report = match selection {
        RequeueSelection::Ids(ids) => {
            if ids.is_empty() {
                return Ok(Err("the id list is empty".to_owned()));
            }
            if let Some(refusal) = refuse_ids(&tx, ids)? {
                return Ok(Err(refusal));
            }
            let json = serde_json::to_string(&ids.iter().map(RecordId::as_str).collect::<Vec<_>>())
                .map_err(|e| StoreError::Unknown(e.to_string()))?;
            let requeued = if apply {
                tx.execute(
                    &format!(
                        "{REQUEUE_SET} WHERE record_id IN (SELECT value FROM json_each(?1))
                           AND sent = 0 AND purged_at IS NULL"
                    ),
                    [json],
                )? as u64
            } else {
                tx.query_row(
                    "SELECT count(DISTINCT value) FROM json_each(?1)",
                    [json],
                    |r| r.get::<_, i64>(0),
                )
                .map(count)?
            };
            RequeueReport {
                requeued,
                skipped_purged: 0,
                applied: apply,
            }
        }
        RequeueSelection::Reason(NotSentKind::Unconfirmed) => {
            return Ok(Err(
                "`unconfirmed` is an outcome, not a reason: select it with --outcome unconfirmed"
                    .to_owned(),
            ))
        }
        RequeueSelection::Reason(kind) => requeue_where(&tx, BY_KIND, Some(kind.code()), apply)?,
        RequeueSelection::Unconfirmed => {
            requeue_where(&tx, "outcome = 'unconfirmed'", None, apply)?
        }
    };
    if apply {
        tx.commit()?;
    }
    Ok(Ok(report))
}

/// Requeues (or counts) the not-texted, unpurged records `filter` selects.
fn requeue_where(
    tx: &Connection,
    filter: &str,
    arg: Option<&str>,
    apply: bool,
) -> Result<RequeueReport, StoreError> {
    let args = rusqlite::params_from_iter(arg);
    let (eligible, purged): (i64, i64) = tx.query_row(
        &format!(
            "SELECT count(*) FILTER (WHERE purged_at IS NULL),
                    count(*) FILTER (WHERE purged_at IS NOT NULL)
               FROM ca_notify_state WHERE sent = 0 AND {filter}"
        ),
        args.clone(),
        |r| Ok((r.get(0)?, r.get(1)?)),
    )?;
    let requeued = if apply {
        tx.execute(
            &format!("{REQUEUE_SET} WHERE sent = 0 AND purged_at IS NULL AND {filter}"),
            args,
        )? as u64
    } else {
        count(eligible)
    };
    Ok(RequeueReport {
        requeued,
        skipped_purged: count(purged),
        applied: apply,
    })
}

fn purge_blocking(
    conn: &mut Connection,
    table: &ValidTable,
    cutoff: DateTime<Utc>,
    now: DateTime<Utc>,
    apply: Option<&RunStart>,
) -> Result<PurgeReport, StoreError> {
    let cutoff = rfc3339(cutoff);
    let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
    let (records, sent): (i64, i64) =
        tx.query_row(PURGEABLE, [&cutoff], |r| Ok((r.get(0)?, r.get(1)?)))?;
    let already_purged: i64 = tx.query_row(ALREADY_PURGED, [&cutoff], |r| r.get(0))?;
    let (erase, erased_columns) = purge_source_sql(table);
    if let Some(run) = apply {
        tx.execute(&erase, [&cutoff])?;
        tx.execute(MARK_PURGED, params![cutoff, rfc3339(now)])?;
        tx.execute(
            RECORD_PURGE,
            params![
                run.id.as_str(),
                run.worker,
                rfc3339(run.started_at),
                rfc3339(now),
                records
            ],
        )?;
        tx.commit()?;
    }
    Ok(PurgeReport {
        records: count(records),
        sent: count(sent),
        erased_columns,
        already_purged: count(already_purged),
        applied: apply.is_some(),
    })
}

fn export_page_blocking(
    conn: &Connection,
    after: &str,
    limit: i64,
) -> Result<Vec<ExportRow>, StoreError> {
    let mut stmt = conn.prepare_cached(EXPORT_PAGE)?;
    let rows = stmt.query_map(params![after, limit], |r| {
        let sent: Option<i64> = r.get(1)?;
        Ok(ExportRow {
            id: r.get(0)?,
            sent: sent.map(|s| u8::from(s == 1)),
            outcome: r
                .get::<_, Option<String>>(2)?
                .unwrap_or_else(|| "pending".to_owned()),
            reason: r.get::<_, Option<String>>(3)?.unwrap_or_default(),
            attempts: u32::try_from(r.get::<_, i64>(4)?).unwrap_or(u32::MAX),
            run_id: r.get(7)?,
            first_attempt_at: parse_time(r.get(6)?),
            processed_at: parse_time(r.get(5)?),
        })
    })?;
    Ok(rows.collect::<Result<_, _>>()?)
}

fn report_sql(t: &ValidTable) -> String {
    let test_date = t
        .test_date
        .as_ref()
        .map_or_else(|| "NULL".to_owned(), |c| format!("r.{}", c.quoted()));
    format!(
        "SELECT s.adopted_at, {test_date}, s.processed_at, s.sent, s.outcome, s.reason
           FROM ca_notify_state AS s LEFT JOIN {} AS r ON r.{} = s.record_id
          WHERE s.outcome IS NULL OR s.processed_at >= ?1 OR s.adopted_at >= ?1",
        t.name.quoted(),
        t.id.quoted()
    )
}

#[async_trait]
impl StoreAdmin for SqliteStore {
    async fn status(&self, now: DateTime<Utc>) -> Result<StoreStatus, AdminError> {
        let now_ms = now.timestamp_millis();
        let mut status = self
            .run(move |conn, _| status_blocking(conn, now_ms))
            .await?;
        status.last_runs = RunLog::recent_runs(self, LAST_RUNS).await?;
        Ok(status)
    }

    async fn requeue(
        &self,
        selection: &RequeueSelection,
        apply: bool,
    ) -> Result<RequeueReport, AdminError> {
        let selection = selection.clone();
        let report = self
            .run(move |conn, _| requeue_blocking(conn, &selection, apply))
            .await?
            .map_err(AdminError::Refused)?;
        if report.applied {
            tracing::info!(requeued = report.requeued, "Requeued records.");
        }
        Ok(report)
    }

    async fn purge(
        &self,
        cutoff: DateTime<Utc>,
        apply: bool,
        run: &RunStart,
    ) -> Result<PurgeReport, AdminError> {
        let now = Utc::now();
        let run = apply.then(|| run.clone());
        let report = self
            .run(move |conn, inner| purge_blocking(conn, &inner.table, cutoff, now, run.as_ref()))
            .await?;
        if report.applied {
            tracing::info!(records = report.records, "Purged personal data.");
        }
        Ok(report)
    }

    async fn export_page(
        &self,
        after: Option<String>,
        limit: usize,
    ) -> Result<Vec<ExportRow>, AdminError> {
        let after = after.unwrap_or_else(|| BEFORE_ALL.to_owned());
        let limit = page_limit(limit);
        Ok(self
            .run(move |conn, _| export_page_blocking(conn, &after, limit))
            .await?)
    }

    async fn unconfirmed(
        &self,
        after: Option<String>,
        limit: usize,
    ) -> Result<Vec<(RecordId, DedupKey)>, AdminError> {
        let after = after.unwrap_or_else(|| BEFORE_ALL.to_owned());
        let limit = page_limit(limit);
        let rows = self
            .run(move |conn, _| {
                let mut stmt = conn.prepare_cached(UNCONFIRMED_PAGE)?;
                let rows = stmt.query_map(params![after, limit], |r| {
                    Ok((r.get::<_, String>(0)?, r.get::<_, Option<String>>(1)?))
                })?;
                Ok(rows.collect::<Result<Vec<_>, _>>()?)
            })
            .await?;
        rows.into_iter()
            .map(|(id, uuid)| {
                let key = uuid
                    .as_deref()
                    .and_then(|u| DedupKey::parse(u).ok())
                    .ok_or_else(|| {
                        AdminError::Unknown(anyhow::anyhow!(
                            "unconfirmed record {id} has no valid dedup uuid in the state table"
                        ))
                    })?;
                Ok((RecordId::new(id), key))
            })
            .collect()
    }

    async fn confirm_sent(&self, records: &[(RecordId, DedupKey)]) -> Result<u64, AdminError> {
        let records: Vec<(String, String)> = records
            .iter()
            .map(|(id, key)| {
                (
                    id.as_str().to_owned(),
                    key.as_uuid().hyphenated().to_string(),
                )
            })
            .collect();
        let now = rfc3339(Utc::now());
        Ok(self
            .run(move |conn, _| {
                let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
                let mut written = 0u64;
                {
                    let mut stmt = tx.prepare_cached(CONFIRM)?;
                    for (id, uuid) in &records {
                        written += stmt.execute(params![id, uuid, CONFIRMED_BY_CLAIM, now])? as u64;
                    }
                }
                tx.commit()?;
                Ok(written)
            })
            .await?)
    }

    async fn report_records(&self, since: DateTime<Utc>) -> Result<Vec<ReportRecord>, AdminError> {
        let since = rfc3339(since);
        Ok(self
            .run(move |conn, inner| {
                let mut stmt = conn.prepare(&report_sql(&inner.table))?;
                let rows = stmt.query_map([since], |r| {
                    let sent: Option<i64> = r.get(3)?;
                    let outcome: Option<String> = r.get(4)?;
                    let reason: Option<String> = r.get(5)?;
                    let not_sent_kind = match outcome.as_deref() {
                        Some("unconfirmed") => Some("unconfirmed".to_owned()),
                        Some("not_sent") => {
                            reason.map(|r| r.split(':').next().unwrap_or_default().to_owned())
                        }
                        _ => None,
                    };
                    Ok(ReportRecord {
                        arrived_at: parse_time(r.get(0)?),
                        test_date: parse_date(r.get::<_, Option<String>>(1).ok().flatten()),
                        processed_at: parse_time(r.get(2)?),
                        sent: sent.map(|s| u8::from(s == 1)),
                        not_sent_kind,
                    })
                })?;
                Ok(rows.collect::<Result<Vec<_>, _>>()?)
            })
            .await?)
    }
}
