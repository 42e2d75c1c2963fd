//! Engine benchmark: prints figures, asserts nothing.
//!
//! 1. Zero latency: 100,000 and 1,000,000 recipients from a source that generates records
//!    as they are claimed (so the input costs no memory), through the memory validator
//!    and a ledger-less memory issuer, into a sink that checks every record is written
//!    exactly once. Records/s and peak RSS (`VmHWM`), each size in a fresh child process
//!    so the peaks are independent. Goal: ≥ 200,000 records/s and ≤ 64 MiB, flat.
//! 2. Simulated latencies (lookup 150 ms, issue 500 ms, write 100 ms, acquire 300 ms):
//!    throughput as a ratio to the stage-capacity limit the settings allow (goal ≥ 0.9),
//!    and, side by side in the same process, the seed's strictly sequential schedule (one
//!    batch at a time, 10 lookups in parallel, 60 s epochs): goal ≥ 10× its throughput.
//!
//! Run with `cargo bench -p ca-notify-pipeline`. `CA_NOTIFY_BENCH_RECORDS=…` overrides the
//! sizes of part 1 (comma-separated), `CA_NOTIFY_BENCH_SKIP_LATENCY=1` skips part 2.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;
use ca_notify_adapter_memory::{MemoryIssuer, MemoryStore, MemoryValidator};
use ca_notify_domain::{
    ClaimToken, DedupKey, DedupSecret, KeyHistory, RecipientRecord, RecordId, RecordOutcome,
};
use ca_notify_pipeline::{Pipeline, RunReport, Settings};
use ca_notify_ports::{Claim, PhoneSource, ResultSink, SinkError, SourceError, WriteReceipt};
use chrono::NaiveDate;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

const CHILD_ENV: &str = "CA_NOTIFY_BENCH_CHILD";
const LOOKUP: Duration = Duration::from_millis(150);
const ISSUE: Duration = Duration::from_millis(500);
const WRITE: Duration = Duration::from_millis(100);
const ACQUIRE: Duration = Duration::from_millis(300);
const SEED_EPOCH: Duration = Duration::from_secs(60);

fn main() {
    if let Ok(spec) = std::env::var(CHILD_ENV) {
        let records: u64 = spec.parse().expect("record count");
        let line = zero_latency_child(records);
        println!("{line}");
        return;
    }
    println!("ca-notify engine benchmark ({} CPUs)", cpus());
    println!();
    zero_latency_table();
    if std::env::var_os("CA_NOTIFY_BENCH_SKIP_LATENCY").is_none() {
        println!();
        latency_table();
    }
}

fn cpus() -> usize {
    std::thread::available_parallelism().map_or(1, usize::from)
}

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(cpus())
        .enable_all()
        .build()
        .expect("runtime")
}

fn today() -> NaiveDate {
    NaiveDate::from_ymd_opt(2021, 6, 15).expect("date")
}

fn secret() -> DedupSecret {
    DedupSecret::new("the benchmark's dedup secret".to_owned().into()).expect("long")
}

// ---------------------------------------------------------------------------------------
// Part 1: zero latency.

/// Generates records as they are claimed: canonical `+1NXXNXXXXXX` numbers, every 50th
/// in a spreadsheet format, every 1000th unusable. Also the sink, which checks that every
/// record is written exactly once with a bitset (1 bit per record).
struct Synthetic {
    total: u64,
    next: AtomicU64,
    written: Mutex<Vec<u64>>,
    duplicates: AtomicU64,
    released: AtomicU64,
    writes: AtomicU64,
}

impl Synthetic {
    fn new(total: u64) -> Self {
        Self {
            total,
            next: AtomicU64::new(0),
            written: Mutex::new(vec![0; total.div_ceil(64) as usize]),
            duplicates: AtomicU64::new(0),
            released: AtomicU64::new(0),
            writes: AtomicU64::new(0),
        }
    }

    fn record(n: u64) -> RecipientRecord {
        let exchange = 200 + (n / 10_000) % 800;
        let line = n % 10_000;
        let phone = match n % 1000 {
            999 => "12345".to_owned(),
            k if k % 50 == 7 => format!("(415) {exchange}-{line:04}"),
            _ => format!("+1415{exchange}{line:04}"),
        };
        RecipientRecord::new(format!("s{n}"), phone).with_test_date("2021-06-14")
    }

    fn unwritten(&self) -> u64 {
        let bits = self.written.lock().expect("lock");
        let set: u64 = bits.iter().map(|w| u64::from(w.count_ones())).sum();
        self.total - set
    }
}

#[async_trait]
impl PhoneSource for Synthetic {
    async fn claim(&self, max: usize, _lease: Duration) -> Result<Claim, SourceError> {
        let start = self
            .next
            .fetch_add(max as u64, Ordering::Relaxed)
            .min(self.total);
        let end = (start + max as u64).min(self.total);
        Ok(Claim {
            token: ClaimToken(String::new()),
            records: (start..end).map(Self::record).collect(),
        })
    }

    async fn release(&self, _token: &ClaimToken, ids: &[RecordId]) -> Result<(), SourceError> {
        self.released.fetch_add(ids.len() as u64, Ordering::Relaxed);
        Ok(())
    }

    async fn peek(&self, _max: usize) -> Result<Vec<RecipientRecord>, SourceError> {
        Ok(Vec::new())
    }
}

#[async_trait]
impl ResultSink for Synthetic {
    /// Every synthetic record is new: no earlier run texted anyone.
    async fn key_histories(&self, keys: &[DedupKey]) -> Result<Vec<KeyHistory>, SinkError> {
        Ok(vec![KeyHistory::default(); keys.len()])
    }

    async fn write_back(
        &self,
        _token: &ClaimToken,
        outcomes: &[RecordOutcome],
    ) -> Result<WriteReceipt, SinkError> {
        self.writes.fetch_add(1, Ordering::Relaxed);
        let mut receipt = WriteReceipt::default();
        let mut bits = self.written.lock().expect("lock");
        for o in outcomes {
            let n: usize = o.id.as_str()[1..].parse().expect("synthetic id");
            let (word, bit) = (n / 64, 1u64 << (n % 64));
            if bits[word] & bit != 0 {
                self.duplicates.fetch_add(1, Ordering::Relaxed);
            }
            bits[word] |= bit;
            if o.outcome.is_final() {
                receipt.written += 1;
            } else {
                receipt.released += 1;
            }
        }
        Ok(receipt)
    }
}

fn zero_latency_settings() -> Settings {
    let env = |name: &str, default: usize| {
        std::env::var(name)
            .ok()
            .and_then(|v| v.parse().ok())
            .unwrap_or(default)
    };
    let defaults = Settings::default();
    Settings {
        until_drained: true,
        deadline: Duration::from_secs(600),
        epoch_size: env("CA_NOTIFY_BENCH_EPOCH_SIZE", defaults.epoch_size),
        max_batches_in_flight: env("CA_NOTIFY_BENCH_IN_FLIGHT", defaults.max_batches_in_flight),
        ..defaults
    }
}

/// Runs in a child process; prints one line: records, secs, records/s, VmHWM KiB, checks.
fn zero_latency_child(records: u64) -> String {
    let rt = runtime();
    let synthetic = Arc::new(Synthetic::new(records));
    let pipeline = Pipeline::builder()
        .source(synthetic.clone())
        .validator(Arc::new(MemoryValidator::new()))
        .issuer(Arc::new(MemoryIssuer::without_ledger()))
        .sink(synthetic.clone())
        .settings(zero_latency_settings())
        .dedup_secret(secret())
        .today(Arc::new(today))
        .build()
        .expect("pipeline");
    let report = rt
        .block_on(pipeline.run(CancellationToken::new()))
        .expect("run");
    format!(
        "{} {:.3} {:.0} {} {} {} {} {}",
        report.claimed,
        report.elapsed_secs,
        report.claimed as f64 / report.elapsed_secs,
        peak_rss_kib(),
        synthetic.unwritten(),
        synthetic.duplicates.load(Ordering::Relaxed),
        report.sent,
        report.settled(),
    )
}

fn peak_rss_kib() -> u64 {
    ca_notify_simulators::process::peak_rss_kib().unwrap_or(0)
}

fn zero_latency_table() {
    let sizes: Vec<u64> = std::env::var("CA_NOTIFY_BENCH_RECORDS")
        .ok()
        .map(|s| s.split(',').filter_map(|n| n.trim().parse().ok()).collect())
        .unwrap_or_else(|| vec![100_000, 1_000_000]);
    let s = zero_latency_settings();
    println!(
        "1. Zero latency (epoch_size {}, batch_size {}, max_batches_in_flight {}, validation_concurrency {}, {} worker threads)",
        s.epoch_size, s.batch_size, s.max_batches_in_flight, s.validation_concurrency, cpus()
    );
    println!(
        "   {:>10} {:>9} {:>12} {:>14} {:>10} {:>10} {:>9}",
        "records", "secs", "records/s", "peak RSS MiB", "unwritten", "twice", "sent"
    );
    let exe = std::env::current_exe().expect("own path");
    for size in sizes {
        let out = std::process::Command::new(&exe)
            .env(CHILD_ENV, size.to_string())
            .output()
            .expect("child runs");
        let text = String::from_utf8_lossy(&out.stdout);
        let fields: Vec<&str> = text.split_whitespace().collect();
        if !out.status.success() || fields.len() < 8 {
            println!(
                "   {size:>10} failed: {}",
                String::from_utf8_lossy(&out.stderr)
            );
            continue;
        }
        let rss_mib = fields[3].parse::<f64>().unwrap_or(0.0) / 1024.0;
        println!(
            "   {:>10} {:>9} {:>12} {:>14.1} {:>10} {:>10} {:>9}",
            fields[0], fields[1], fields[2], rss_mib, fields[4], fields[5], fields[6]
        );
    }
    println!("   goal: >= 200,000 records/s and peak RSS <= 64 MiB, flat as the input grows");
}

// ---------------------------------------------------------------------------------------
// Part 2: simulated latencies.

/// The most records/s the settings allow, stage by stage.
struct Capacity {
    validation: f64,
    batches: f64,
    claims: f64,
}

impl Capacity {
    fn of(s: &Settings) -> Self {
        let lookup_rounds = s.batch_size.div_ceil(s.validation_concurrency) as f64;
        let batch_life =
            lookup_rounds * LOOKUP.as_secs_f64() + ISSUE.as_secs_f64() + WRITE.as_secs_f64();
        Self {
            validation: s.validation_concurrency as f64 / LOOKUP.as_secs_f64(),
            batches: (s.max_batches_in_flight * s.batch_size) as f64 / batch_life,
            claims: s.epoch_size as f64 / ACQUIRE.as_secs_f64(),
        }
    }

    fn limit(&self) -> f64 {
        self.validation.min(self.batches).min(self.claims)
    }
}

fn simulated(
    records: usize,
    settings: Settings,
) -> (Pipeline, Arc<MemoryStore>, Arc<MemoryIssuer>) {
    let store = Arc::new(
        MemoryStore::with_records((0..records).map(|n| Synthetic::record(n as u64 * 7 + 1)))
            .with_claim_latency(ACQUIRE)
            .with_write_latency(WRITE),
    );
    let issuer = Arc::new(MemoryIssuer::new().with_latency(ISSUE));
    let pipeline = Pipeline::builder()
        .source(store.clone())
        .validator(Arc::new(MemoryValidator::new().with_latency(LOOKUP)))
        .issuer(issuer.clone())
        .sink(store.clone())
        .settings(settings)
        .dedup_secret(secret())
        .today(Arc::new(today))
        .build()
        .expect("pipeline");
    (pipeline, store, issuer)
}

fn latency_table() {
    let rt = runtime();
    let engine_default = Settings {
        until_drained: true,
        ..Settings::default()
    };
    let engine_wide = Settings {
        max_batches_in_flight: 8,
        until_drained: true,
        ..Settings::default()
    };
    let seed = Settings {
        max_batches_in_flight: 1,
        validation_concurrency: 10,
        epoch_size: 100,
        batch_size: 10,
        epoch_count: 1,
        min_epoch_duration: Some(SEED_EPOCH),
        ..Settings::default()
    };
    println!(
        "2. Simulated latencies: lookup {} ms, issue {} ms, write {} ms, acquire {} ms",
        LOOKUP.as_millis(),
        ISSUE.as_millis(),
        WRITE.as_millis(),
        ACQUIRE.as_millis()
    );
    // Sized to end well inside the 110 s default deadline.
    let (a, a_store, a_issuer) = simulated(1_600, engine_default.clone());
    let (b, b_store, b_issuer) = simulated(2_000, engine_wide.clone());
    let (c, c_store, _c_issuer) = simulated(100, seed.clone());
    let (first, wide, seed_epoch) = rt.block_on(async {
        let token = CancellationToken::new();
        // The seed runs side by side with the first engine configuration.
        let (first, seed_epoch) = tokio::join!(a.run(token.clone()), async {
            let started = Instant::now();
            let epoch = c.run_epoch(&token).await.expect("seed epoch");
            (epoch, started.elapsed())
        });
        let wide = b.run(token.clone()).await;
        (
            first.expect("engine run"),
            wide.expect("engine run"),
            seed_epoch,
        )
    });
    println!(
        "   {:<44} {:>9} {:>9} {:>11} {:>9} {:>7}",
        "schedule", "records", "secs", "records/s", "limit/s", "ratio"
    );
    let row = |name: &str, report: &RunReport, settings: &Settings| {
        let cap = Capacity::of(settings);
        println!(
            "   {:<44} {:>9} {:>9.2} {:>11.2} {:>9.2} {:>7.3}",
            name,
            report.settled(),
            report.elapsed_secs,
            report.records_per_sec,
            cap.limit(),
            report.records_per_sec / cap.limit()
        );
    };
    row(
        "engine, defaults (4 batches in flight)",
        &first,
        &engine_default,
    );
    row("engine, 8 batches in flight", &wide, &engine_wide);
    let (seed_report, seed_busy) = seed_epoch;
    let seed_records = seed_report.settled() as f64;
    let seed_paced = seed_records / seed_busy.as_secs_f64().max(SEED_EPOCH.as_secs_f64());
    let seed_unpaced = seed_records / seed_busy.as_secs_f64();
    println!(
        "   {:<44} {:>9} {:>9.2} {:>11.2} {:>9} {:>7}",
        "seed: 1 batch at a time, 1 epoch measured",
        seed_report.settled(),
        seed_busy.as_secs_f64(),
        seed_unpaced,
        "-",
        "-"
    );
    println!(
        "   {:<44} {:>9} {:>9.2} {:>11.2} {:>9} {:>7}",
        "seed: same, paced to 60 s epochs",
        seed_report.settled(),
        SEED_EPOCH.as_secs_f64().max(seed_busy.as_secs_f64()),
        seed_paced,
        "-",
        "-"
    );
    for (name, settings) in [("defaults", &engine_default), ("8 in flight", &engine_wide)] {
        let cap = Capacity::of(settings);
        println!(
            "   limit ({name}) = min(validation {:.1}, batches in flight {:.1}, claims {:.1}) = {:.1} records/s",
            cap.validation,
            cap.batches,
            cap.claims,
            cap.limit()
        );
    }
    println!(
        "   engine (defaults) vs seed: {:.1}x the 60 s-paced seed, {:.1}x the unpaced sequential schedule",
        first.records_per_sec / seed_paced,
        first.records_per_sec / seed_unpaced
    );
    println!(
        "   checks: left claimed {}/{}/{}, max texts per phone {}/{}",
        a_store.claimed_ids().len(),
        b_store.claimed_ids().len(),
        c_store.claimed_ids().len(),
        a_issuer.max_texts_per_phone(),
        b_issuer.max_texts_per_phone()
    );
    println!("   goal: ratio >= 0.9 and >= 10x the seed's schedule");
}
