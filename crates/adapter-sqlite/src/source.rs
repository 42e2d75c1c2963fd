//! `PhoneSource` for SQLite: claim under a lease, release, peek.
//!
//! A claim is one `BEGIN IMMEDIATE` transaction: pick up to N pending state rows, stamp a
//! fresh token and lease on each, read the source rows back by that token, commit. SQLite admits one
//! such transaction at a time across every connection and process on the file, so no two
//! claims can stamp the same row (proof in `docs/store.md`).

use std::collections::HashSet;
use std::time::Duration;

use async_trait::async_trait;
use ca_notify_domain::{ClaimToken, RawPhone, RecipientRecord, RecordId};
use ca_notify_ports::{Claim, PhoneSource, SourceError};
use rusqlite::types::ValueRef;
use rusqlite::{params, Connection, TransactionBehavior};

use crate::clock::lease_until;
use crate::durability;
use crate::error::StoreError;
use crate::statements::{CLAIMABLE, RELEASE, STAMP};
use crate::store::{Inner, SqliteStore};

#[async_trait]
impl PhoneSource for SqliteStore {
    async fn claim(&self, max: usize, lease: Duration) -> Result<Claim, SourceError> {
        // Random, because workers in other processes claim from the same table.
        let token = ClaimToken::new(uuid::Uuid::new_v4().to_string());
        if max == 0 {
            return Ok(Claim {
                token,
                records: Vec::new(),
            });
        }
        let claim_token = token.clone();
        let records = self
            .run(move |conn, inner| claim_blocking(conn, inner, &claim_token, max, lease))
            .await?;
        tracing::debug!(token = %token, records = records.len(), "Claimed records.");
        Ok(Claim { token, records })
    }

    async fn release(&self, token: &ClaimToken, ids: &[RecordId]) -> Result<(), SourceError> {
        if ids.is_empty() {
            return Ok(());
        }
        let token = token.clone();
        let ids = ids.to_vec();
        let released = self
            .run(move |conn, _| {
                let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
                let mut released = 0;
                {
                    let mut stmt = tx.prepare_cached(RELEASE)?;
                    for id in &ids {
                        released += stmt.execute(params![id.as_str(), token.as_str()])?;
                    }
                }
                tx.commit()?;
                Ok(released)
            })
            .await?;
        tracing::debug!(released, "Released records.");
        Ok(())
    }

    async fn peek(&self, max: usize) -> Result<Vec<RecipientRecord>, SourceError> {
        if max == 0 {
            return Ok(Vec::new());
        }
        let records = self
            .run(move |conn, inner| {
                let mut stmt = conn.prepare_cached(&inner.sql.peek)?;
                let rows = stmt.query(params![inner.now_ms(), limit(max)])?;
                let mut records = distinct_records(rows)?;
                records.truncate(max);
                Ok(records)
            })
            .await?;
        Ok(records)
    }
}

fn claim_blocking(
    conn: &mut Connection,
    inner: &Inner,
    token: &ClaimToken,
    max: usize,
    lease: Duration,
) -> Result<Vec<RecipientRecord>, StoreError> {
    // A claim decides nothing the ledger keeps, so its commit is not forced to disk
    // (the `durability` module): the next write-back's `fsync` carries it.
    durability::unforced(conn, |conn| stamp_and_read(conn, inner, token, max, lease))
}

/// The claim's transaction: stamp, read back, forget orphans, commit.
fn stamp_and_read(
    conn: &mut Connection,
    inner: &Inner,
    token: &ClaimToken,
    max: usize,
    lease: Duration,
) -> Result<Vec<RecipientRecord>, StoreError> {
    let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
    let now = inner.now_ms();
    let claimable: Vec<String> = {
        let mut stmt = tx.prepare_cached(CLAIMABLE)?;
        let ids = stmt.query_map(params![now, limit(max)], |row| row.get(0))?;
        ids.collect::<Result<_, _>>()?
    };
    let mut stamped = Vec::with_capacity(claimable.len());
    {
        let mut stmt = tx.prepare_cached(STAMP)?;
        let (worker, until) = (&inner.config.worker_id, lease_until(now, lease));
        for id in claimable {
            if stmt.execute(params![id, token.as_str(), worker, until, now])? == 1 {
                stamped.push(id);
            }
        }
    }
    let records = {
        let mut stmt = tx.prepare_cached(&inner.sql.read_by_token)?;
        let records = distinct_records(stmt.query([token.as_str()])?)?;
        records
    };
    if records.len() < stamped.len() {
        let read: HashSet<&str> = records.iter().map(|r| r.id.as_str()).collect();
        let mut stmt = tx.prepare_cached(&inner.sql.drop_orphan)?;
        for id in stamped.iter().filter(|id| !read.contains(id.as_str())) {
            if stmt.execute([id])? == 1 {
                tracing::info!(record_id = %id, "Forgot the pending state of a record whose source row is gone.");
            } else {
                // Left claimed, so its lease keeps it out of the next claims for a while.
                tracing::error!(record_id = %id, "A claimed record cannot be read back by its id; check the id column's values.");
            }
        }
    }
    tx.commit()?;
    Ok(records)
}

/// Decodes read-back rows, keeping the first row of an id that a foreign source table
/// holds twice (the import never creates duplicates; `docs/store.md`). Both reads order
/// their rows by the state row, so the rows of one id come one after another.
fn distinct_records(mut rows: rusqlite::Rows<'_>) -> Result<Vec<RecipientRecord>, StoreError> {
    let mut records: Vec<RecipientRecord> = Vec::new();
    while let Some(row) = rows.next()? {
        let id: String = row.get(0)?;
        if records.last().is_some_and(|last| last.id.as_str() == id) {
            tracing::warn!(record_id = %id, "The source table holds this id more than once; using its first row.");
            continue;
        }
        records.push(RecipientRecord {
            id: RecordId::new(id),
            phone: text(row.get_ref(1)?).map(RawPhone::new),
            test_date: text(row.get_ref(2)?),
            symptom_date: text(row.get_ref(3)?),
            test_type: text(row.get_ref(4)?),
            tz_offset: None,
        });
    }
    Ok(records)
}

/// A source cell as text, whatever its storage class: a phone kept as an INTEGER reads
/// as its digits, a REAL without a fraction as an integer, a BLOB as lossy UTF-8.
fn text(value: ValueRef<'_>) -> Option<String> {
    match value {
        ValueRef::Null => None,
        ValueRef::Integer(i) => Some(i.to_string()),
        ValueRef::Real(f) if f.fract() == 0.0 && f.abs() < 1e15 => Some(format!("{f:.0}")),
        ValueRef::Real(f) => Some(f.to_string()),
        ValueRef::Text(t) | ValueRef::Blob(t) => Some(String::from_utf8_lossy(t).into_owned()),
    }
}

fn limit(max: usize) -> i64 {
    i64::try_from(max).unwrap_or(i64::MAX)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cells_of_any_storage_class_read_as_text() {
        assert_eq!(text(ValueRef::Null), None);
        assert_eq!(
            text(ValueRef::Integer(4_155_550_123)).as_deref(),
            Some("4155550123")
        );
        assert_eq!(
            text(ValueRef::Real(4_155_550_123.0)).as_deref(),
            Some("4155550123")
        );
        assert_eq!(text(ValueRef::Real(1.5)).as_deref(), Some("1.5"));
        assert_eq!(
            text(ValueRef::Text(b"' OR 1=1")).as_deref(),
            Some("' OR 1=1")
        );
        assert_eq!(text(ValueRef::Blob(b"\xff1")).as_deref(), Some("\u{fffd}1"));
    }
}
