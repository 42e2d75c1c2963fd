//! `ResultSink` for SQLite: one transaction per batch, only under the live claim token, and
//! the ledger by dedup key.
//!
//! Each record's update carries `claim_token = ?` and `outcome IS NULL` in its WHERE
//! clause and clears the claim token when it applies, so it applies at most once: a repeat
//! of the same batch, or a write by a worker whose lease ended and whose records were
//! claimed again, matches no row and is counted as not owned. A deferral whose reason holds
//! the claim clears the token but keeps the lease: a hold, which no claim passes before
//! `lease_until`.
//!
//! In the same transaction, every outcome's attempt answers are appended to the attempt
//! log of its dedup uuid, whether or not the record is still the writer's (an attempt is a
//! fact about the uuid: a request was made). The log's key (uuid, claim token, record id,
//! attempt index) makes a repeated write-back append nothing.
//!
//! Every row a write-back reaches gets the store's current run id (`run_id`), set by
//! [`RunLog::start_run`](ca_notify_ports::RunLog::start_run).

use std::collections::HashMap;

use async_trait::async_trait;
use ca_notify_domain::{ClaimToken, DedupKey, KeyHistory, Outcome, RecordOutcome};
use ca_notify_ports::{ResultSink, SinkError, WriteReceipt};
use rusqlite::{params, Connection, TransactionBehavior};

use crate::clock::now_rfc3339;
use crate::error::StoreError;
use crate::statements::{APPEND_ATTEMPT, KEY_HISTORIES, WRITE_DEFERRED, WRITE_FINAL, WRITE_HELD};
use crate::store::SqliteStore;

#[async_trait]
impl ResultSink for SqliteStore {
    async fn key_histories(&self, keys: &[DedupKey]) -> Result<Vec<KeyHistory>, SinkError> {
        if keys.is_empty() {
            return Ok(Vec::new());
        }
        let texts: Vec<String> = keys.iter().map(ToString::to_string).collect();
        let asked = serde_json::Value::from(texts.clone()).to_string();
        let ledger = self.run(move |conn, _| read_ledger(conn, &asked)).await?;
        Ok(texts
            .iter()
            .map(|k| ledger.get(k).copied().unwrap_or_default())
            .collect())
    }

    async fn write_back(
        &self,
        token: &ClaimToken,
        outcomes: &[RecordOutcome],
    ) -> Result<WriteReceipt, SinkError> {
        if outcomes.is_empty() {
            return Ok(WriteReceipt::default());
        }
        let token = token.clone();
        let outcomes = outcomes.to_vec();
        let receipt = self
            .run(move |conn, inner| {
                let run_id = inner.current_run();
                let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
                let processed_at = now_rfc3339();
                let mut receipt = WriteReceipt::default();
                {
                    let mut final_stmt = tx.prepare_cached(WRITE_FINAL)?;
                    let mut deferred_stmt = tx.prepare_cached(WRITE_DEFERRED)?;
                    let mut held_stmt = tx.prepare_cached(WRITE_HELD)?;
                    let mut attempt_stmt = tx.prepare_cached(APPEND_ATTEMPT)?;
                    for o in &outcomes {
                        match o.dedup_key {
                            Some(key) => {
                                let key = key.to_string();
                                for (index, answer) in o.attempts.iter().enumerate() {
                                    attempt_stmt.execute(params![
                                        key,
                                        token.as_str(),
                                        o.id.as_str(),
                                        i64::try_from(index).unwrap_or(i64::MAX),
                                        answer.code(),
                                        processed_at,
                                    ])?;
                                }
                            }
                            None if !o.attempts.is_empty() => tracing::warn!(
                                record_id = %o.id,
                                "An outcome carries attempts but no dedup uuid; they cannot be kept."
                            ),
                            None => {}
                        }
                        // Some reasons carry outside text; reason_code() is the one way
                        // to write them: one line, scrubbed of phone numbers, bounded.
                        let reason = o.outcome.reason_code();
                        let changed = match &o.outcome {
                            Outcome::Deferred { reason: why } => {
                                let stmt = if why.holds_the_claim() {
                                    &mut held_stmt
                                } else {
                                    &mut deferred_stmt
                                };
                                stmt.execute(params![
                                    o.id.as_str(),
                                    token.as_str(),
                                    reason,
                                    run_id
                                ])?
                            }
                            outcome => final_stmt.execute(params![
                                o.id.as_str(),
                                token.as_str(),
                                outcome.sent_flag(),
                                outcome.label(),
                                Some(reason).filter(|r| !r.is_empty()),
                                o.dedup_key.map(|k| k.to_string()),
                                processed_at,
                                run_id,
                            ])?,
                        };
                        match (changed, o.outcome.is_final()) {
                            (0, _) => receipt.not_owned += 1,
                            (_, true) => receipt.written += 1,
                            (_, false) => receipt.released += 1,
                        }
                    }
                }
                tx.commit()?;
                Ok(receipt)
            })
            .await?;
        tracing::debug!(
            written = receipt.written,
            released = receipt.released,
            not_owned = receipt.not_owned,
            "Wrote back outcomes."
        );
        Ok(receipt)
    }
}

/// Sums the attempt log and the texted flag of the uuids in the JSON array `asked`.
fn read_ledger(
    conn: &mut Connection,
    asked: &str,
) -> Result<HashMap<String, KeyHistory>, StoreError> {
    let mut stmt = conn.prepare_cached(KEY_HISTORIES)?;
    let mut rows = stmt.query([asked])?;
    let mut ledger: HashMap<String, KeyHistory> = HashMap::new();
    while let Some(row) = rows.next()? {
        let key: String = row.get(0)?;
        let answer: Option<String> = row.get(1)?;
        let count: i64 = row.get(2)?;
        ledger
            .entry(key)
            .or_default()
            .record_stored(answer.as_deref(), u64::try_from(count).unwrap_or(0))
            .map_err(|e| StoreError::Misconfigured(e.to_string()))?;
    }
    Ok(ledger)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::SourceTable;

    /// A write-back's statements run once per record: none may build a temporary index
    /// (SQLite does for an IN list of more than two constants, a CHECK's included).
    #[test]
    fn writing_a_record_builds_no_temporary_index() {
        let conn = Connection::open_in_memory().expect("memory");
        conn.execute_batch(&crate::schema::ddl(&SourceTable::default()).expect("ddl"))
            .expect("schema");
        for sql in [WRITE_FINAL, WRITE_DEFERRED, WRITE_HELD, APPEND_ATTEMPT] {
            assert!(
                !crate::schema::tests::builds_a_temporary_index(&conn, sql),
                "{sql}"
            );
        }
    }

    /// The ledger read must stay an index lookup per key, at any history length.
    #[test]
    fn the_ledger_read_uses_the_uuid_indexes_not_a_scan() {
        let conn = Connection::open_in_memory().expect("memory");
        conn.execute_batch(&crate::schema::ddl(&SourceTable::default()).expect("ddl"))
            .expect("schema");
        let mut stmt = conn
            .prepare(&format!("EXPLAIN QUERY PLAN {KEY_HISTORIES}"))
            .expect("explain");
        let plan = stmt
            .query_map(["[]"], |r| r.get::<_, String>(3))
            .expect("plan")
            .collect::<Result<Vec<_>, _>>()
            .expect("rows")
            .join("\n");
        assert!(
            plan.contains("SEARCH s USING COVERING INDEX ca_notify_state_texted (dedup_uuid=?)"),
            "{plan}"
        );
        assert!(
            plan.contains("SEARCH a USING PRIMARY KEY (dedup_uuid=?)"),
            "{plan}"
        );
        assert!(!plan.contains("SCAN s"), "{plan}");
        assert!(!plan.contains("SCAN a"), "{plan}");
    }
}
