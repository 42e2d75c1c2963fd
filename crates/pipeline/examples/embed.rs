//! Another service embedding the ca-notify engine with adapters of its own.
//!
//! A lab's results service keeps its positive results in its own table (here a vector
//! behind a mutex) and wants them texted. It implements `PhoneSource` and `ResultSink` on
//! that table (claim tokens and leases included, so two copies of the service never text
//! the same row), borrows the in-memory validator and issuer as stand-ins for Twilio and
//! the verification server, builds the pipeline with the builder, wires Ctrl-C to the
//! shutdown token, and prints the run report.
//!
//! Run with `cargo run -p ca-notify-pipeline --example embed`.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;
use ca_notify_adapter_memory::{MemoryIssuer, MemoryValidator};
use ca_notify_domain::{
    ClaimToken, DedupKey, DedupSecret, KeyHistory, Outcome, RecipientRecord, RecordId,
    RecordOutcome,
};
use ca_notify_pipeline::{BatchReport, Pipeline, RunObserver, Settings};
use ca_notify_ports::{Claim, PhoneSource, ResultSink, SinkError, SourceError, WriteReceipt};
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

/// One row of the lab's own results table.
struct LabResult {
    accession: String,
    phone: String,
    collected_on: String,
    claim: Option<(ClaimToken, Instant)>,
    texted: Option<Outcome>,
}

/// The lab's table, with just enough claim logic to be safe with several workers.
#[derive(Default)]
struct LabResults {
    rows: Mutex<Vec<LabResult>>,
    /// The ledger by dedup key: who was texted, and what each attempt proved.
    ledger: Mutex<HashMap<DedupKey, KeyHistory>>,
    /// Claims made, which numbers each claim's token.
    claims: AtomicU64,
}

impl LabResults {
    fn add(&self, accession: &str, phone: &str, collected_on: &str) {
        self.rows.lock().expect("lock").push(LabResult {
            accession: accession.to_owned(),
            phone: phone.to_owned(),
            collected_on: collected_on.to_owned(),
            claim: None,
            texted: None,
        });
    }

    fn summary(&self) -> (usize, usize, usize) {
        let rows = self.rows.lock().expect("lock");
        let sent = rows
            .iter()
            .filter(|r| r.texted.as_ref().and_then(Outcome::sent_flag) == Some(1))
            .count();
        let not_sent = rows
            .iter()
            .filter(|r| r.texted.as_ref().and_then(Outcome::sent_flag) == Some(0))
            .count();
        (sent, not_sent, rows.len() - sent - not_sent)
    }
}

#[async_trait]
impl PhoneSource for LabResults {
    async fn claim(&self, max: usize, lease: Duration) -> Result<Claim, SourceError> {
        let now = Instant::now();
        let token = ClaimToken::new(format!(
            "lab-claim-{}",
            self.claims.fetch_add(1, Ordering::Relaxed)
        ));
        let mut rows = self.rows.lock().expect("lock");
        let records = rows
            .iter_mut()
            .filter(|r| {
                r.texted.is_none() && r.claim.as_ref().is_none_or(|(_, until)| *until <= now)
            })
            .take(max)
            .map(|r| {
                r.claim = Some((token.clone(), now + lease));
                RecipientRecord::new(r.accession.clone(), r.phone.clone())
                    .with_test_date(r.collected_on.clone())
            })
            .collect();
        Ok(Claim { token, records })
    }

    async fn release(&self, token: &ClaimToken, ids: &[RecordId]) -> Result<(), SourceError> {
        let mut rows = self.rows.lock().expect("lock");
        for row in rows
            .iter_mut()
            .filter(|r| ids.iter().any(|id| id.as_str() == r.accession))
        {
            if row.claim.as_ref().is_some_and(|(t, _)| t == token) {
                row.claim = None;
            }
        }
        Ok(())
    }

    async fn peek(&self, max: usize) -> Result<Vec<RecipientRecord>, SourceError> {
        let rows = self.rows.lock().expect("lock");
        Ok(rows
            .iter()
            .filter(|r| r.texted.is_none() && r.claim.is_none())
            .take(max)
            .map(|r| RecipientRecord::new(r.accession.clone(), r.phone.clone()))
            .collect())
    }
}

#[async_trait]
impl ResultSink for LabResults {
    async fn key_histories(&self, keys: &[DedupKey]) -> Result<Vec<KeyHistory>, SinkError> {
        let ledger = self.ledger.lock().expect("lock");
        Ok(keys
            .iter()
            .map(|key| ledger.get(key).copied().unwrap_or_default())
            .collect())
    }

    async fn write_back(
        &self,
        token: &ClaimToken,
        outcomes: &[RecordOutcome],
    ) -> Result<WriteReceipt, SinkError> {
        let mut receipt = WriteReceipt::default();
        let mut rows = self.rows.lock().expect("lock");
        let mut ledger = self.ledger.lock().expect("lock");
        for outcome in outcomes {
            if let Some(key) = outcome.dedup_key {
                let history = ledger.entry(key).or_default();
                *history = history.with(&outcome.attempts);
                history.texted |= outcome.outcome.is_texted();
            }
            let row = rows
                .iter_mut()
                .find(|r| r.accession == outcome.id.as_str())
                .filter(|r| r.claim.as_ref().is_some_and(|(t, _)| t == token));
            let Some(row) = row else {
                receipt.not_owned += 1;
                continue;
            };
            row.claim = None;
            if outcome.outcome.is_final() {
                row.texted = Some(outcome.outcome.clone());
                receipt.written += 1;
            } else {
                receipt.released += 1;
            }
        }
        Ok(receipt)
    }
}

/// Progress on stderr: counts only, never a number.
struct Progress;

impl RunObserver for Progress {
    fn on_claimed(&self, records: usize) {
        eprintln!("claimed {records} results");
    }

    fn on_batch_written(&self, batch: &BatchReport) {
        eprintln!(
            "batch of {}: {} sent, {} already sent, {} not sent, {} deferred",
            batch.records, batch.sent, batch.already_sent, batch.not_sent, batch.deferred
        );
    }
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let lab = Arc::new(LabResults::default());
    let today = chrono::Utc::now().date_naive();
    let yesterday = today.pred_opt().unwrap_or(today).to_string();
    for i in 0..45u32 {
        // Numbers ending in 00 are landlines to the memory validator.
        let line = if i % 15 == 0 {
            100 * (i / 15 + 1)
        } else {
            1000 + i
        };
        lab.add(
            &format!("ACC-{i:04}"),
            &format!("(415) 555-{line:04}"),
            &yesterday,
        );
    }
    lab.add("ACC-BAD", "not a phone", &yesterday);

    let secret = std::env::var("DEDUP_SECRET")
        .unwrap_or_else(|_| "example secret, set DEDUP_SECRET in real use".to_owned());
    let pipeline = Pipeline::builder()
        .source(lab.clone())
        .sink(lab.clone())
        .validator(Arc::new(
            MemoryValidator::new().with_latency(Duration::from_millis(20)),
        ))
        .issuer(Arc::new(
            MemoryIssuer::new().with_latency(Duration::from_millis(50)),
        ))
        .settings(Settings {
            epoch_size: 20,
            until_drained: true,
            deadline: Duration::from_secs(30),
            ..Settings::default()
        })
        .dedup_secret(DedupSecret::new(secret.into())?)
        .observer(Arc::new(Progress))
        .build()?;

    let shutdown = CancellationToken::new();
    let on_ctrl_c = shutdown.clone();
    tokio::spawn(async move {
        if tokio::signal::ctrl_c().await.is_ok() {
            on_ctrl_c.cancel();
        }
    });

    let report = match pipeline.run(shutdown).await {
        Ok(report) => report,
        Err(failure) => {
            eprintln!("run stopped: {failure}");
            failure.report
        }
    };
    println!("{}", serde_json::to_string_pretty(&report)?);
    let (sent, not_sent, open) = lab.summary();
    println!("lab table: {sent} texted, {not_sent} not textable, {open} left for a later run");
    Ok(())
}
