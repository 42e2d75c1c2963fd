//! `RunLog` for SQLite: the `ca_notify_runs` table (schema migration 3).
//!
//! A run's start is an insert that ignores a repeat; its end an upsert, so finishing twice
//! keeps the last end. Times are RFC 3339 UTC with milliseconds, fixed width, so the text
//! order of the indexed columns is time order. Starting a run also makes it the handle's
//! current run, whose id every write-back stamps on the rows it reaches.

use async_trait::async_trait;
use ca_notify_ports::{Backlog, RunCounts, RunEnd, RunId, RunLog, RunRecord, RunStart, SinkError};
use chrono::{DateTime, SecondsFormat, Utc};
use rusqlite::{params, Row};

use crate::error::StoreError;
use crate::store::SqliteStore;

const START_RUN: &str = "INSERT INTO ca_notify_runs (run_id, worker, started_at)
    VALUES (?1, ?2, ?3) ON CONFLICT (run_id) DO NOTHING";

const FINISH_RUN: &str = "INSERT INTO ca_notify_runs (run_id, worker, started_at, ended_at,
        succeeded, stop, claimed, sent, already_sent, not_sent, unconfirmed, deferred)
    VALUES (?1, '', ?2, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10)
    ON CONFLICT (run_id) DO UPDATE SET ended_at = excluded.ended_at,
        succeeded = excluded.succeeded, stop = excluded.stop, claimed = excluded.claimed,
        sent = excluded.sent, already_sent = excluded.already_sent,
        not_sent = excluded.not_sent, unconfirmed = excluded.unconfirmed,
        deferred = excluded.deferred";

/// The claimable records and the oldest arrival among them (`adopted_at`, schema 4).
const BACKLOG: &str = "SELECT count(*), min(adopted_at) FROM ca_notify_state
    WHERE outcome IS NULL AND lease_until <= ?1";

const COLUMNS: &str = "run_id, worker, started_at, ended_at, succeeded, stop, claimed, sent,
    already_sent, not_sent, unconfirmed, deferred";

fn timestamp(t: &DateTime<Utc>) -> String {
    t.to_rfc3339_opts(SecondsFormat::Millis, true)
}

fn count(n: u64) -> i64 {
    i64::try_from(n).unwrap_or(i64::MAX)
}

/// One row of `COLUMNS`.
fn run_record(row: &Row<'_>) -> Result<RunRecord, StoreError> {
    let bad = |what: &str, e: &dyn std::fmt::Display| {
        StoreError::Misconfigured(format!("ca_notify_runs holds a bad {what}: {e}"))
    };
    let time = |i: usize, what: &str| -> Result<Option<DateTime<Utc>>, StoreError> {
        row.get::<_, Option<String>>(i)?
            .map(|text| {
                DateTime::parse_from_rfc3339(&text)
                    .map(|t| t.with_timezone(&Utc))
                    .map_err(|e| bad(what, &e))
            })
            .transpose()
    };
    let n = |i: usize| -> Result<u64, StoreError> {
        Ok(u64::try_from(row.get::<_, Option<i64>>(i)?.unwrap_or(0)).unwrap_or(0))
    };
    let id: String = row.get(0)?;
    let start = RunStart {
        id: RunId::parse(id).map_err(|e| bad("run id", &e))?,
        worker: row.get(1)?,
        started_at: time(2, "start time")?.ok_or_else(|| bad("start time", &"NULL"))?,
    };
    let end = match time(3, "end time")? {
        None => None,
        Some(ended_at) => Some(RunEnd {
            ended_at,
            succeeded: row.get::<_, Option<bool>>(4)?.unwrap_or(false),
            stop: row.get::<_, Option<String>>(5)?.unwrap_or_default(),
            counts: RunCounts {
                claimed: n(6)?,
                sent: n(7)?,
                already_sent: n(8)?,
                not_sent: n(9)?,
                unconfirmed: n(10)?,
                deferred: n(11)?,
            },
        }),
    };
    Ok(RunRecord { start, end })
}

#[async_trait]
impl RunLog for SqliteStore {
    async fn start_run(&self, run: &RunStart) -> Result<(), SinkError> {
        let run = run.clone();
        self.run(move |conn, inner| {
            conn.prepare_cached(START_RUN)?.execute(params![
                run.id.as_str(),
                run.worker,
                timestamp(&run.started_at)
            ])?;
            inner.set_current_run(run.id.as_str());
            Ok(())
        })
        .await?;
        Ok(())
    }

    async fn finish_run(&self, id: &RunId, end: &RunEnd) -> Result<(), SinkError> {
        let (id, end) = (id.clone(), end.clone());
        self.run(move |conn, _| {
            let c = end.counts;
            conn.prepare_cached(FINISH_RUN)?.execute(params![
                id.as_str(),
                timestamp(&end.ended_at),
                end.succeeded,
                end.stop,
                count(c.claimed),
                count(c.sent),
                count(c.already_sent),
                count(c.not_sent),
                count(c.unconfirmed),
                count(c.deferred),
            ])?;
            Ok(())
        })
        .await?;
        Ok(())
    }

    async fn recent_runs(&self, limit: usize) -> Result<Vec<RunRecord>, SinkError> {
        let limit = i64::try_from(limit).unwrap_or(i64::MAX);
        let runs = self
            .run(move |conn, _| {
                let mut stmt = conn.prepare_cached(&format!(
                    "SELECT {COLUMNS} FROM ca_notify_runs
                      ORDER BY started_at DESC, run_id DESC LIMIT ?1"
                ))?;
                let mut rows = stmt.query([limit])?;
                let mut runs = Vec::new();
                while let Some(row) = rows.next()? {
                    runs.push(run_record(row)?);
                }
                Ok(runs)
            })
            .await?;
        Ok(runs)
    }

    async fn last_success(&self) -> Result<Option<RunRecord>, SinkError> {
        let run = self
            .run(move |conn, _| {
                let mut stmt = conn.prepare_cached(&format!(
                    "SELECT {COLUMNS} FROM ca_notify_runs WHERE succeeded = 1
                      ORDER BY ended_at DESC, run_id DESC LIMIT 1"
                ))?;
                let mut rows = stmt.query([])?;
                rows.next()?.map(run_record).transpose()
            })
            .await?;
        Ok(run)
    }

    async fn backlog(&self) -> Result<Backlog, SinkError> {
        let (records, oldest) = self
            .run(move |conn, inner| {
                let (n, oldest): (i64, Option<String>) = conn
                    .prepare_cached(BACKLOG)?
                    .query_row([inner.now_ms()], |row| Ok((row.get(0)?, row.get(1)?)))?;
                Ok((u64::try_from(n).unwrap_or(0), oldest))
            })
            .await?;
        let oldest_arrival = oldest
            .map(|text| {
                DateTime::parse_from_rfc3339(&text)
                    .map(|t| t.with_timezone(&Utc))
                    .map_err(|e| {
                        StoreError::Misconfigured(format!(
                            "ca_notify_state holds a bad arrival time: {e}"
                        ))
                    })
            })
            .transpose()?;
        Ok(Backlog {
            records,
            oldest_arrival,
        })
    }
}
