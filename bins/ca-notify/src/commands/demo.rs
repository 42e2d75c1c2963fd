//! `ca-notify demo`: the whole job with nothing to configure.
//!
//! A fresh SQLite file in a temporary folder is seeded (through the real CSV import) with
//! synthetic recipients; the Twilio Lookup and verification-server simulators start
//! in-process on 127.0.0.1 with realistic latencies; the real adapters and the pipeline
//! run until the store is drained; the summary is printed. `--in-memory` does the same
//! on the in-memory adapters. Nothing leaves the machine.

use std::io::Write as _;
use std::sync::Arc;
use std::time::Duration;

use ca_notify_adapter_memory::{MemoryIssuer, MemoryStore, MemoryValidator};
use ca_notify_adapter_sqlite::{import_csv, SqliteConfig, SqliteStore};
use ca_notify_domain::RecipientRecord;
use ca_notify_job::{Job, JobConfig, RunObserver, StoreKind, ValidatorKind};
use ca_notify_simulators::twilio::{TwilioSimConfig, TwilioSimulator};
use ca_notify_simulators::verification::{SimConfig, VerificationSimulator};
use secrecy::SecretString;

use crate::cli::DemoArgs;
use crate::exit::{self, Failure};
use crate::progress::ProgressObserver;
use crate::synthetic::{self, LineKind};

/// Lookup latency of the Twilio simulator (Twilio answers in 100–300 ms).
const LOOKUP_LATENCY: Duration = Duration::from_millis(120);
/// Batch latency of the verification simulator (it texts each item through Twilio).
const ISSUE_LATENCY: Duration = Duration::from_millis(300);
/// How long the demo waits for a batch-issue answer, in seconds (the simulator's latency,
/// with room).
const DEMO_REQUEST_TIMEOUT_SECS: u64 = 5;

/// The demo's configuration: a drained run inside 25 s, fast simulated peers, a
/// throwaway dedup secret (the demo's store is deleted with its folder).
fn demo_config() -> JobConfig {
    let mut config = JobConfig::default();
    config.dedup.secret = Some(SecretString::from(random_secret()));
    let p = &mut config.pipeline;
    p.epoch_size = 500;
    p.validation_concurrency = 50;
    p.max_batches_in_flight = 24;
    p.deadline_secs = 25;
    config.store.kind = StoreKind::Sqlite;
    config
}

/// Runs the demo and prints its summary.
///
/// # Errors
/// When a simulator or the store cannot start, or the run fails.
pub async fn execute(args: &DemoArgs) -> Result<(), Failure> {
    let today = chrono::Utc::now().date_naive();
    let internal = |e: &dyn std::fmt::Display| Failure::new(exit::INTERNAL, format!("demo: {e}"));
    let progress = Arc::new(ProgressObserver::new(Some(args.recipients as u64)));
    let mut config = demo_config();

    if args.in_memory {
        println!(
            "Demo: {} synthetic recipients on the in-memory adapters.",
            args.recipients
        );
        let records = synthetic::recipients(args.recipients, today, memory_number);
        // Every port is the embedder's own: the configuration gives only the settings.
        let builder = Job::builder(config)
            .until_drained(true)
            .store(Arc::new(MemoryStore::with_records(records)))
            .validator(Arc::new(
                MemoryValidator::new().with_latency(LOOKUP_LATENCY),
            ))
            .issuer(Arc::new(MemoryIssuer::new().with_latency(ISSUE_LATENCY)))
            .observer(Arc::clone(&progress) as Arc<dyn RunObserver>);
        return super::run::run_and_report(builder, &progress, args.summary_json.as_deref()).await;
    }

    let folder = tempfile::tempdir().map_err(|e| internal(&e))?;
    let db = folder.path().join("demo.db");
    println!(
        "Demo: {} synthetic recipients in {}, with the Twilio Lookup and verification-server simulators on 127.0.0.1.",
        args.recipients,
        db.display()
    );
    let store = SqliteStore::open(SqliteConfig::at(&db))
        .await
        .map_err(|e| internal(&e))?;
    let csv = folder.path().join("recipients.csv");
    write_csv(
        &csv,
        &synthetic::recipients(args.recipients, today, simulator_number),
    )
    .map_err(|e| internal(&e))?;
    let imported = import_csv(&store, &csv).await.map_err(|e| internal(&e))?;
    println!("Imported {} recipients.", imported.imported);

    let twilio = TwilioSimulator::start(TwilioSimConfig {
        latency: LOOKUP_LATENCY,
        latency_jitter: LOOKUP_LATENCY / 2,
        ..TwilioSimConfig::default()
    })
    .await
    .map_err(|e| internal(&e))?;
    let verification = VerificationSimulator::start(SimConfig {
        latency: ISSUE_LATENCY,
        ..SimConfig::default()
    })
    .await
    .map_err(|e| internal(&e))?;

    // The real adapters, built from configuration as in production, against the
    // simulators.
    config.store.path.clone_from(&db);
    config.validator.kind = Some(ValidatorKind::Twilio);
    let t = &mut config.twilio;
    t.base_url = twilio.base_url();
    t.account_sid = Some(twilio.account_sid().to_owned());
    t.auth_token = Some(SecretString::from(twilio.auth_token().to_owned()));
    t.concurrency = config.pipeline.validation_concurrency;
    let v = &mut config.verification;
    v.base_url = Some(verification.base_url());
    v.api_key = Some(SecretString::from(verification.api_key()));
    // The simulator answers in ISSUE_LATENCY; no request may start that could outlive
    // the demo's deadline, so the demo waits for answers a little over that.
    v.request_timeout_secs = DEMO_REQUEST_TIMEOUT_SECS;
    let store = Arc::new(store);
    let builder = Job::builder(config)
        .until_drained(true)
        .store(Arc::clone(&store))
        .observer(Arc::clone(&progress) as Arc<dyn RunObserver>);
    let result = super::run::run_and_report(builder, &progress, args.summary_json.as_deref()).await;
    let ledger = verification.ledger();
    println!(
        "Simulated SMS: {} texts to {} phones; {} phones texted more than once.",
        ledger.total(),
        ledger.phones(),
        ledger.phones_texted_more_than_once()
    );
    if let Ok(counts) = store.counts().await {
        println!(
            "Store: {} records, {} sent, {} not sent, {} pending.",
            counts.total, counts.sent, counts.not_sent, counts.pending
        );
    }
    twilio.shutdown().await;
    verification.shutdown().await.map_err(|e| internal(&e))?;
    result
}

/// Numbers the in-memory validator judges as `kind` (`…00` landline, `…99` invalid).
/// Distinct serials give distinct numbers.
fn memory_number(kind: LineKind, serial: usize) -> String {
    match kind {
        LineKind::Mobile => format!(
            "415{:06}{}",
            200_000 + (serial / 8) % 800_000,
            1 + serial % 8
        ),
        LineKind::Landline => format!("212{:05}00", 20_000 + serial % 80_000),
        LineKind::Invalid => format!("646{:05}99", 20_000 + serial % 80_000),
    }
}

/// Numbers the Twilio simulator judges as `kind` (by the last digit: 0–4 mobile,
/// 5 landline, 9 invalid), never in an N11 exchange the pre-filter would refuse. Distinct
/// serials (below `numbers::DISTINCT`) give distinct numbers.
fn simulator_number(kind: LineKind, serial: usize) -> String {
    let (prefix, last) = match kind {
        LineKind::Mobile => (serial / 5, serial % 5),
        LineKind::Landline => (serial, 5),
        LineKind::Invalid => (serial, 9),
    };
    ca_notify_simulators::numbers::national(prefix, last)
}

fn write_csv(path: &std::path::Path, records: &[RecipientRecord]) -> std::io::Result<()> {
    let mut file = std::io::BufWriter::new(std::fs::File::create(path)?);
    writeln!(file, "id,phone,test_date")?;
    for r in records {
        let phone = r.phone.as_ref().map(|p| p.expose()).unwrap_or_default();
        writeln!(
            file,
            "{},\"{}\",{}",
            r.id,
            phone.replace('"', "\"\""),
            r.test_date.as_deref().unwrap_or_default()
        )?;
    }
    file.flush()
}

/// A throwaway dedup secret: the demo's store is deleted with its folder.
fn random_secret() -> String {
    use rand::Rng as _;
    let mut rng = rand::rng();
    (0..32)
        .map(|_| char::from(b'a' + rng.random_range(0..26u8)))
        .collect()
}
