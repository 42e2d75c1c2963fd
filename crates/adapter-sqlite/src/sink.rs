//! `ResultSink` for SQLite: one transaction per batch, only under the live claim token.
//!
//! Each record's update carries `claim_token = ?` and `outcome IS NULL` in its WHERE
//! clause and clears the claim when it applies, so it applies at most once: a repeat of
//! the same batch, or a write by a worker whose lease ended and whose records were
//! claimed again, matches no row and is counted as not owned.

use async_trait::async_trait;
use ca_notify_domain::{ClaimToken, RecordOutcome};
use ca_notify_ports::{ResultSink, SinkError, WriteReceipt};
use rusqlite::{params, TransactionBehavior};

use crate::clock::now_rfc3339;
use crate::statements::{WRITE_DEFERRED, WRITE_FINAL};
use crate::store::SqliteStore;

#[async_trait]
impl ResultSink for SqliteStore {
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
            .run(move |conn, _| {
                let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
                let processed_at = now_rfc3339();
                let mut receipt = WriteReceipt::default();
                {
                    let mut final_stmt = tx.prepare_cached(WRITE_FINAL)?;
                    let mut deferred_stmt = tx.prepare_cached(WRITE_DEFERRED)?;
                    for o in &outcomes {
                        // Some reasons carry outside text; reason_code() is the one way
                        // to write them: one line, scrubbed of phone numbers, bounded.
                        let reason = o.outcome.reason_code();
                        let changed = match o.outcome.sent_flag() {
                            Some(flag) => final_stmt.execute(params![
                                o.id.as_str(),
                                token.as_str(),
                                flag,
                                o.outcome.label(),
                                Some(reason).filter(|r| !r.is_empty()),
                                o.dedup_key.map(|k| k.to_string()),
                                processed_at,
                            ])?,
                            None => deferred_stmt.execute(params![
                                o.id.as_str(),
                                token.as_str(),
                                reason
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
