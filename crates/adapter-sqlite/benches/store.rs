//! SQLite store benchmark: claim + read of 100 records and write-back of 10 outcomes at a
//! time (10 writes per claim), at 1k, 100k and 1M recipients, plus 1M with 99 % already
//! processed. Prints a table; asserts nothing.
//!
//! Goals (issue 5): at least 5,000 recipients/s end to end through claim and write, and
//! claim latency flat as the table grows. Run with `cargo bench -p ca-notify-adapter-sqlite`.

use std::io::{BufWriter, Write};
use std::path::Path;
use std::time::{Duration, Instant};

use ca_notify_adapter_sqlite::{import_csv, SqliteConfig, SqliteStore};
use ca_notify_domain::{AttemptAnswer, DedupKey, NotSentReason, Outcome, RecordOutcome};
use ca_notify_ports::{PhoneSource, ResultSink};

const CLAIM: usize = 100;
const WRITE: usize = 10;
const LEASE: Duration = Duration::from_secs(300);
const WARM_UP: usize = 5;

struct Row {
    label: String,
    import: Duration,
    rows: usize,
    claim: Vec<Duration>,
    write: Vec<Duration>,
    recipients: usize,
    total: Duration,
}

fn main() {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime");
    let mut table = Vec::new();
    for size in sizes() {
        let dir = tempfile::tempdir().expect("temp dir");
        let (store, import) = runtime.block_on(load(dir.path(), size));
        table.push(runtime.block_on(measure(&store, thousands(size), size, import)));
        if size == 1_000_000 {
            // The same file after a long history: 99 % of its records already processed.
            let pending = runtime.block_on(store.counts()).expect("counts").pending as usize;
            mark_processed(store.path(), pending - size / 100);
            let label = "1M, 99% processed".to_owned();
            table.push(runtime.block_on(measure(&store, label, size, import)));
        }
    }
    println!();
    println!(
        "| recipients | import (rows/s) | claim+read 100: p50 / p99 ms | write 10: p50 / p99 ms | end to end recipients/s | at p50 latencies |"
    );
    println!("|---|---|---|---|---|---|");
    for r in &table {
        // What one worker does when the machine is quiet: one claim, ten writes, at the
        // median latencies (the wall-clock column includes every neighbour's hiccup).
        let at_p50 = CLAIM as f64
            / (percentile(&r.claim, 50) + percentile(&r.write, 50) * (CLAIM / WRITE) as u32)
                .as_secs_f64();
        println!(
            "| {} | {:.1} s ({:.0}/s) | {:.2} / {:.2} | {:.2} / {:.2} | {:.0} | {:.0} |",
            r.label,
            r.import.as_secs_f64(),
            r.rows as f64 / r.import.as_secs_f64(),
            ms(percentile(&r.claim, 50)),
            ms(percentile(&r.claim, 99)),
            ms(percentile(&r.write, 50)),
            ms(percentile(&r.write, 99)),
            r.recipients as f64 / r.total.as_secs_f64(),
            at_p50,
        );
    }
}

async fn load(dir: &Path, size: usize) -> (SqliteStore, Duration) {
    let csv = dir.join("recipients.csv");
    write_csv(&csv, size);
    let store = SqliteStore::open(SqliteConfig::at(dir.join("bench.db")))
        .await
        .expect("open");
    let started = Instant::now();
    let report = import_csv(&store, &csv).await.expect("import");
    let import = started.elapsed();
    assert_eq!(report.imported as usize, size);
    (store, import)
}

async fn measure(store: &SqliteStore, label: String, size: usize, import: Duration) -> Row {
    let pending = store.counts().await.expect("counts").pending as usize;
    // Warm the connection, statement cache and blocking pool before timing anything.
    for _ in 0..WARM_UP.min(pending / CLAIM / 5) {
        let claim = store.claim(CLAIM, LEASE).await.expect("claim");
        store
            .release(&claim.token, &ids(&claim))
            .await
            .expect("release");
    }
    // Enough claims for stable percentiles, and never more than the pending rows.
    let rounds = (pending / CLAIM).min(300);
    let mut claim_times = Vec::with_capacity(rounds);
    let mut write_times = Vec::with_capacity(rounds * CLAIM / WRITE);
    let mut recipients = 0;
    let all = Instant::now();
    for _ in 0..rounds {
        let t = Instant::now();
        let claim = store.claim(CLAIM, LEASE).await.expect("claim");
        claim_times.push(t.elapsed());
        assert_eq!(claim.records.len(), CLAIM);
        for chunk in claim.records.chunks(WRITE) {
            let outcomes: Vec<RecordOutcome> = chunk
                .iter()
                .enumerate()
                .map(|(i, r)| {
                    let key = DedupKey::parse("00000000-0000-8000-8000-000000000001").ok();
                    if i % 5 == 0 {
                        let bad = Outcome::not_sent(NotSentReason::InvalidNumber {
                            detail: "too_short".into(),
                        });
                        RecordOutcome::new(r.id.clone(), key, bad)
                    } else {
                        // As the pipeline writes a text: with the answer of its one attempt.
                        RecordOutcome {
                            attempts: vec![AttemptAnswer::Issued],
                            ..RecordOutcome::new(r.id.clone(), key, Outcome::Sent)
                        }
                    }
                })
                .collect();
            let t = Instant::now();
            let receipt = store
                .write_back(&claim.token, &outcomes)
                .await
                .expect("write");
            write_times.push(t.elapsed());
            assert_eq!(receipt.written, chunk.len());
        }
        recipients += claim.records.len();
    }
    let total = all.elapsed();
    eprintln!("{label}: done");
    Row {
        label,
        import,
        rows: size,
        claim: claim_times,
        write: write_times,
        recipients,
        total,
    }
}

/// 1k, 100k and 1M, or the sizes in `CA_NOTIFY_BENCH_SIZES` (comma-separated) for a
/// quicker look.
fn sizes() -> Vec<usize> {
    std::env::var("CA_NOTIFY_BENCH_SIZES")
        .ok()
        .map(|v| v.split(',').filter_map(|s| s.trim().parse().ok()).collect())
        .unwrap_or_else(|| vec![1_000, 100_000, 1_000_000])
}

fn write_csv(path: &Path, size: usize) {
    let mut out = BufWriter::new(std::fs::File::create(path).expect("csv"));
    writeln!(out, "id,phone,test_date,symptom_date,test_type").expect("write");
    for i in 0..size {
        writeln!(
            out,
            "{},+1415{:07},2021-06-{:02},,confirmed",
            1_000_000_000 + i,
            i % 10_000_000,
            1 + i % 28
        )
        .expect("write");
    }
    out.flush().expect("flush");
}

/// Gives `n` pending records a final outcome directly, as a long history would.
fn mark_processed(path: &Path, n: usize) {
    let conn = rusqlite::Connection::open(path).expect("open");
    conn.execute(
        "UPDATE ca_notify_state SET sent = 1, outcome = 'sent', processed_at = '2021-06-01T00:00:00Z', attempts = 1
          WHERE record_id IN (SELECT record_id FROM ca_notify_state WHERE outcome IS NULL LIMIT ?1)",
        [n as i64],
    )
    .expect("mark processed");
}

fn ids(claim: &ca_notify_ports::Claim) -> Vec<ca_notify_domain::RecordId> {
    claim.records.iter().map(|r| r.id.clone()).collect()
}

fn percentile(samples: &[Duration], p: usize) -> Duration {
    let mut sorted = samples.to_vec();
    sorted.sort();
    sorted
        .get((sorted.len().saturating_sub(1)) * p / 100)
        .copied()
        .unwrap_or_default()
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

fn thousands(n: usize) -> String {
    match n {
        n if n >= 1_000_000 => format!("{}M", n / 1_000_000),
        n if n >= 1_000 => format!("{}k", n / 1_000),
        n => n.to_string(),
    }
}
