//! How fast the operator's `status` (and an export page) answers on a store of a million
//! records: 1,000,000 source rows, 90 % decided (sent, not sent by four reasons,
//! unconfirmed), 10 % pending with some deferred and some claimed. Prints the figures
//! (`docs/benchmarks.md`); asserts nothing about time.
//!
//! `cargo bench -p ca-notify-adapter-sqlite --bench admin` (`ADMIN_BENCH_ROWS` to change
//! the size).

use std::time::Instant;

use ca_notify_adapter_sqlite::{SqliteConfig, SqliteStore};
use ca_notify_ports::admin::StoreAdmin;
use chrono::Utc;
use rusqlite::Connection;

fn seed(path: &std::path::Path, rows: u64) {
    let conn = Connection::open(path).expect("open");
    conn.execute_batch("PRAGMA synchronous = OFF;")
        .expect("pragma");
    let started = Instant::now();
    conn.execute_batch(&format!(
        "BEGIN;
         WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < {rows})
         INSERT INTO recipients (id, phone, test_date)
         SELECT printf('r%09d', i), printf('+1415%07d', i % 10000000), '2026-11-30' FROM n;
         UPDATE ca_notify_state SET
             sent = CASE WHEN rowid_mod < 80 THEN 1 ELSE 0 END,
             outcome = CASE WHEN rowid_mod < 80 THEN 'sent'
                            WHEN rowid_mod < 89 THEN 'not_sent' ELSE 'unconfirmed' END,
             reason = CASE WHEN rowid_mod < 80 THEN NULL
                           WHEN rowid_mod < 83 THEN 'not_sms_capable:landline'
                           WHEN rowid_mod < 86 THEN 'invalid_number:too_short'
                           WHEN rowid_mod < 88 THEN 'rejected:phone_number_invalid'
                           WHEN rowid_mod < 89 THEN 'gave_up:unavailable'
                           ELSE 'uuid_exists_after_failure' END,
             processed_at = '2026-12-01T00:00:00.000Z', attempts = 1
           FROM (SELECT record_id AS rid, CAST(substr(record_id, 2) AS INTEGER) % 100 AS rowid_mod
                   FROM ca_notify_state) AS m
          WHERE m.rid = ca_notify_state.record_id AND m.rowid_mod < 90;
         UPDATE ca_notify_state SET last_deferral = 'issuer_unavailable', attempts = 1
          WHERE outcome IS NULL AND CAST(substr(record_id, 2) AS INTEGER) % 100 = 95;
         UPDATE ca_notify_state SET claim_token = 't', claimed_by = 'w', lease_until = 9999999999999
          WHERE outcome IS NULL AND CAST(substr(record_id, 2) AS INTEGER) % 100 = 99;
         COMMIT;"
    ))
    .expect("seed");
    println!(
        "seeded {rows} records in {:.1} s",
        started.elapsed().as_secs_f64()
    );
}

fn main() {
    let rows: u64 = std::env::var("ADMIN_BENCH_ROWS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(1_000_000);
    let runtime = tokio::runtime::Runtime::new().expect("runtime");
    let dir = tempfile::tempdir().expect("dir");
    let path = dir.path().join("bench.db");
    runtime.block_on(async {
        drop(
            SqliteStore::open(SqliteConfig::at(&path))
                .await
                .expect("store"),
        );
        seed(&path, rows);
        let store = SqliteStore::open(SqliteConfig::at(&path))
            .await
            .expect("store");
        let mut times = Vec::new();
        let mut status = None;
        for _ in 0..7 {
            let started = Instant::now();
            status = Some(store.status(Utc::now()).await.expect("status"));
            times.push(started.elapsed().as_secs_f64() * 1000.0);
        }
        times.sort_by(f64::total_cmp);
        let status = status.expect("status");
        assert_eq!(status.total, rows);
        println!(
            "status on {rows} records: median {:.0} ms, best {:.0} ms, worst {:.0} ms \
             (pending {}, claimed {}, sent {}, unconfirmed {})",
            times[times.len() / 2],
            times[0],
            times[times.len() - 1],
            status.pending,
            status.claimed,
            status.sent,
            status.unconfirmed
        );
        let started = Instant::now();
        let mut after = None;
        let mut exported = 0;
        loop {
            let page = store.export_page(after.take(), 5_000).await.expect("page");
            exported += page.len();
            match page.last() {
                Some(last) if page.len() == 5_000 => after = Some(last.id.clone()),
                _ => break,
            }
        }
        let secs = started.elapsed().as_secs_f64();
        println!(
            "export pages: {exported} rows in {secs:.1} s ({:.0} rows/s)",
            exported as f64 / secs
        );
    });
}
