//! `RunLog` for Snowflake: the `<STATE>_RUNS` table (schema migration 4).
//!
//! A run's row is written once, at its end, by one `MERGE` that inserts it with the start
//! the store kept in memory (or updates it, so finishing twice keeps the last end). The
//! start costs no statement because every statement keeps a warehouse awake and billed
//! (docs/store-snowflake.md, "Cost"); the price is that a run that crashed leaves no row
//! here — its outcomes still carry its `RUN_ID`. An idle run costs one statement in all:
//! before it starts, [`record_idle_run`] inserts its finished row only if the schema is
//! current and nothing waits; its end then costs nothing when it ends so, and its backlog
//! is known to be empty. A run that claims after all updates the row at its end. Times travel as bound text cast to `TIMESTAMP_NTZ` (UTC, the job's clock: a
//! run's times are the job's, not the server's) and come back as `TIMESTAMP_NTZ`.
//! Starting a run makes it the store's current run, whose id every write-back stamps in
//! `RUN_ID`.

use async_trait::async_trait;
use ca_notify_ports::{Backlog, RunCounts, RunEnd, RunId, RunLog, RunRecord, RunStart, SinkError};
use chrono::{DateTime, NaiveDateTime, Utc};
use snowflake_connector_rs::CellValue;

use crate::config::Names;
use crate::decode::{self, DecodeError};
use crate::error::StoreError;
use crate::schema::RUN_COLUMNS;
use crate::sql::{self, Sql, Value};
use crate::store::{decode_error, first_count, SnowflakeStore};

const TIME_FORMAT: &str = "%Y-%m-%d %H:%M:%S%.3f";

fn time_text(t: &DateTime<Utc>) -> Value {
    Value::Text(Some(t.naive_utc().format(TIME_FORMAT).to_string()))
}

fn count(n: u64) -> Value {
    Value::Int(Some(i64::try_from(n).unwrap_or(i64::MAX)))
}

/// Records a run's end, inserting the run (with `start`, or as started when it ended
/// and by no known worker) unless it is recorded.
pub(crate) fn finish_run(names: &Names, id: &RunId, start: Option<&RunStart>, end: &RunEnd) -> Sql {
    let c = end.counts;
    Sql {
        text: format!(
            "MERGE INTO {runs} AS r USING (\
               SELECT ? AS RUN_ID, ? AS WORKER, CAST(? AS TIMESTAMP_NTZ) AS STARTED_AT, \
                      CAST(? AS TIMESTAMP_NTZ) AS ENDED_AT, ? AS SUCCEEDED, ? AS STOP, \
                      ? AS CLAIMED, ? AS SENT, ? AS ALREADY_SENT, ? AS NOT_SENT, \
                      ? AS UNCONFIRMED, ? AS DEFERRED\
             ) AS e ON r.RUN_ID = e.RUN_ID \
             WHEN MATCHED THEN UPDATE SET ENDED_AT = e.ENDED_AT, SUCCEEDED = e.SUCCEEDED, \
               STOP = e.STOP, CLAIMED = e.CLAIMED, SENT = e.SENT, ALREADY_SENT = e.ALREADY_SENT, \
               NOT_SENT = e.NOT_SENT, UNCONFIRMED = e.UNCONFIRMED, DEFERRED = e.DEFERRED \
             WHEN NOT MATCHED THEN INSERT (RUN_ID, WORKER, STARTED_AT, ENDED_AT, SUCCEEDED, STOP, \
               CLAIMED, SENT, ALREADY_SENT, NOT_SENT, UNCONFIRMED, DEFERRED) \
             VALUES (e.RUN_ID, e.WORKER, e.STARTED_AT, e.ENDED_AT, e.SUCCEEDED, e.STOP, e.CLAIMED, \
               e.SENT, e.ALREADY_SENT, e.NOT_SENT, e.UNCONFIRMED, e.DEFERRED)",
            runs = names.runs.sql(),
        ),
        binds: vec![
            Value::Text(Some(id.to_string())),
            Value::Text(Some(start.map(|s| s.worker.clone()).unwrap_or_default())),
            time_text(&start.map_or(end.ended_at, |s| s.started_at)),
            time_text(&end.ended_at),
            Value::Int(Some(i64::from(end.succeeded))),
            Value::Text(Some(end.stop.clone())),
            count(c.claimed),
            count(c.sent),
            count(c.already_sent),
            count(c.not_sent),
            count(c.unconfirmed),
            count(c.deferred),
        ],
    }
}

/// Records `run` as finished when it started, having found nothing to claim
/// ([`RunEnd::nothing_to_claim`]), only if the state tables are at schema `latest` and no
/// record waits: one statement that reads both and writes the row. One row inserted means
/// the run is idle; none, that something waits or the schema is not this build's.
pub(crate) fn record_idle_run(names: &Names, latest: u32, run: &RunStart) -> Sql {
    let end = RunEnd::nothing_to_claim(run.started_at);
    Sql {
        text: format!(
            "INSERT INTO {runs} (RUN_ID, WORKER, STARTED_AT, ENDED_AT, SUCCEEDED, STOP, \
               CLAIMED, SENT, ALREADY_SENT, NOT_SENT, UNCONFIRMED, DEFERRED) \
             SELECT ?, ?, CAST(? AS TIMESTAMP_NTZ), CAST(? AS TIMESTAMP_NTZ), ?, ?, 0, 0, 0, 0, 0, 0 \
             FROM (SELECT COALESCE(MAX(VERSION), 0) AS VERSION FROM {migrations}) AS m \
             WHERE m.VERSION = {latest} AND {nothing_waits}",
            runs = names.runs.sql(),
            migrations = names.migrations.sql(),
            nothing_waits = sql::nothing_waits(names),
        ),
        binds: vec![
            Value::Text(Some(run.id.to_string())),
            Value::Text(Some(run.worker.clone())),
            time_text(&run.started_at),
            time_text(&end.ended_at),
            Value::Int(Some(i64::from(end.succeeded))),
            Value::Text(Some(end.stop)),
        ],
    }
}

/// The last `limit` runs, newest start first.
pub(crate) fn recent_runs(names: &Names, limit: usize) -> Sql {
    Sql {
        text: format!(
            "SELECT {columns} FROM {runs} ORDER BY STARTED_AT DESC, RUN_ID DESC LIMIT {limit}",
            columns = RUN_COLUMNS.join(", "),
            runs = names.runs.sql(),
            limit = sql::Limit::clamped(limit),
        ),
        binds: Vec::new(),
    }
}

/// The successful run that ended last.
pub(crate) fn last_success(names: &Names) -> Sql {
    Sql {
        text: format!(
            "SELECT {columns} FROM {runs} WHERE SUCCEEDED = 1 \
             ORDER BY ENDED_AT DESC, RUN_ID DESC LIMIT 1",
            columns = RUN_COLUMNS.join(", "),
            runs = names.runs.sql(),
        ),
        binds: Vec::new(),
    }
}

fn time(cell: &CellValue, what: &str) -> Result<Option<DateTime<Utc>>, DecodeError> {
    decode::text(cell, what)?
        .map(|text| {
            NaiveDateTime::parse_from_str(&text.replace('T', " "), "%Y-%m-%d %H:%M:%S%.f")
                .map(|t| t.and_utc())
                .map_err(|e| DecodeError(format!("the {what} is not a timestamp: {e}")))
        })
        .transpose()
}

/// One row of [`RUN_COLUMNS`].
fn run_record(row: &[CellValue]) -> Result<RunRecord, DecodeError> {
    let cell = |i: usize| {
        row.get(i)
            .ok_or_else(|| DecodeError(format!("no column {i} in a run row")))
    };
    let text = |i: usize, what: &str| -> Result<Option<String>, DecodeError> {
        decode::text(cell(i)?, what)
    };
    let n = |i: usize, what: &str| decode::count(cell(i)?, what);
    let id = text(0, "run id")?.ok_or_else(|| DecodeError("a run without an id".into()))?;
    let start = RunStart {
        id: RunId::parse(id).map_err(|e| DecodeError(e.to_string()))?,
        worker: text(1, "worker")?.unwrap_or_default(),
        started_at: time(cell(2)?, "start time")?
            .ok_or_else(|| DecodeError("a run without a start".into()))?,
    };
    let end = match time(cell(3)?, "end time")? {
        None => None,
        Some(ended_at) => Some(RunEnd {
            ended_at,
            succeeded: n(4, "success flag")? == 1,
            stop: text(5, "stop reason")?.unwrap_or_default(),
            counts: RunCounts {
                claimed: n(6, "claimed count")?,
                sent: n(7, "sent count")?,
                already_sent: n(8, "already sent count")?,
                not_sent: n(9, "not sent count")?,
                unconfirmed: n(10, "unconfirmed count")?,
                deferred: n(11, "deferred count")?,
            },
        }),
    };
    Ok(RunRecord { start, end })
}

impl SnowflakeStore {
    async fn read_runs(&self, what: &str, query: &Sql) -> Result<Vec<RunRecord>, StoreError> {
        let answer = self
            .conn
            .run(what, query)
            .await
            .map_err(|e| self.hint_migration(e))?;
        answer
            .rows
            .iter()
            .map(|row| run_record(row.values()).map_err(decode_error))
            .collect()
    }
}

#[async_trait]
impl RunLog for SnowflakeStore {
    async fn start_run(&self, run: &RunStart) -> Result<(), SinkError> {
        self.set_current_run(run);
        Ok(())
    }

    async fn finish_run(&self, id: &RunId, end: &RunEnd) -> Result<(), SinkError> {
        if end.is_nothing_to_claim() && self.idle_run().as_ref() == Some(id) {
            return Ok(());
        }
        let start = self.run_start(id);
        self.conn
            .run(
                "recording a run",
                &finish_run(&self.names, id, start.as_ref(), end),
            )
            .await
            .map_err(|e| self.hint_migration(e))?;
        Ok(())
    }

    async fn recent_runs(&self, limit: usize) -> Result<Vec<RunRecord>, SinkError> {
        Ok(self
            .read_runs("reading the runs", &recent_runs(&self.names, limit))
            .await?)
    }

    async fn last_success(&self) -> Result<Option<RunRecord>, SinkError> {
        Ok(self
            .read_runs("reading the last success", &last_success(&self.names))
            .await?
            .into_iter()
            .next())
    }

    async fn backlog(&self) -> Result<Backlog, SinkError> {
        if self.idle_run().is_some() {
            return Ok(Backlog::default());
        }
        let answer = self
            .conn
            .run("counting waiting records", &sql::backlog(&self.names))
            .await
            .map_err(|e| self.hint_migration(e))?;
        let records = first_count(&answer, "count of waiting records")?;
        let oldest_arrival = answer
            .rows
            .first()
            .and_then(|row| row.values().get(1))
            .and_then(decode::instant);
        Ok(Backlog {
            records,
            oldest_arrival,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::tests::config;

    #[test]
    fn run_statements_bind_every_value_and_name_only_the_runs_table() {
        let names = config().names().expect("valid");
        let id = RunId::parse("run-1").expect("valid");
        let at = DateTime::parse_from_rfc3339("2026-03-01T00:00:00.125Z")
            .expect("time")
            .with_timezone(&Utc);
        let run = RunStart {
            id: id.clone(),
            worker: "w'--".into(),
            started_at: at,
        };
        let end = RunEnd {
            ended_at: at,
            succeeded: true,
            stop: "deadline".into(),
            counts: RunCounts::default(),
        };
        for sql in [
            finish_run(&names, &id, Some(&run), &end),
            finish_run(&names, &id, None, &end),
            recent_runs(&names, 5),
            last_success(&names),
        ] {
            assert_eq!(
                sql.text.matches('?').count(),
                sql.binds.len(),
                "{}",
                sql.text
            );
            assert!(sql.text.contains(&names.runs.sql()));
            assert!(!sql.text.contains("run-1") && !sql.text.contains("w'"));
        }
        assert!(recent_runs(&names, 5).text.ends_with("LIMIT 5"));
        assert_eq!(
            time_text(&at),
            Value::Text(Some("2026-03-01 00:00:00.125".into()))
        );
    }
}
