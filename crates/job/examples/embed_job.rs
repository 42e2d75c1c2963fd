//! A state service embedding the whole ca-notify job, two ways.
//!
//! 1. **From a configuration value**: the same TOML an operator writes (here built in
//!    code, pointing at the local verification-server simulator), turned into a ready job
//!    with `Job::from_config`; the job opens the SQLite store and builds the validator and
//!    the verification client itself.
//! 2. **With its own ports**: `Job::builder` takes the service's own store, validator and
//!    issuer (here the in-memory adapters) and uses the configuration for the settings.
//!
//! Run with `cargo run -p ca-notify-job --example embed_job`.

use std::sync::Arc;

use ca_notify_adapter_memory::{MemoryIssuer, MemoryStore, MemoryValidator};
use ca_notify_domain::RecipientRecord;
use ca_notify_job::{Job, JobConfig};
use ca_notify_simulators::verification::{SimConfig, VerificationSimulator};
use tokio_util::sync::CancellationToken;

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let today = chrono::Utc::now().date_naive().to_string();
    let folder = tempfile::tempdir()?;
    let server = VerificationSimulator::start(SimConfig::default()).await?;

    // 1. From a configuration value. `JobConfig::load(path, env)` reads the same from a
    //    file and CA_NOTIFY__SECTION__KEY variables.
    let config: JobConfig = toml::from_str(&format!(
        r#"
        [store]
        path = {db:?}
        [validator]
        kind = "offline"
        [verification]
        base_url = "{url}"
        api_key = "{key}"
        [dedup]
        secret = "a-state-secret-kept-forever"
        "#,
        db = folder.path().join("embed.db"),
        url = server.base_url(),
        key = server.api_key(),
    ))?;
    let csv = folder.path().join("positives.csv");
    std::fs::write(
        &csv,
        format!("id,phone,test_date\nlab-1,4152000011,{today}\nlab-2,4152000022,{today}\n"),
    )?;
    let store = ca_notify_job::compose::sqlite_only(&config, "the example loads SQLite").await?;
    ca_notify_adapter_sqlite::import_csv(&store, &csv).await?;
    let report = Job::from_config(&config)
        .await?
        .run(CancellationToken::new())
        .await?;
    println!(
        "From configuration: {} sent, {} not sent.",
        report.sent,
        report.not_sent_total()
    );

    // 2. With its own ports: every port here is the service's; the configuration gives the
    //    engine's settings and the dedup secret.
    let records = [("own-1", "4152000033"), ("own-2", "not a phone")]
        .map(|(id, phone)| RecipientRecord::new(id, phone).with_test_date(&today));
    let report = Job::builder(config)
        .store(Arc::new(MemoryStore::with_records(records)))
        .validator(Arc::new(MemoryValidator::new()))
        .issuer(Arc::new(MemoryIssuer::new()))
        .build()
        .await?
        .run(CancellationToken::new())
        .await?;
    println!(
        "With own ports: {} sent, {} not sent.",
        report.sent,
        report.not_sent_total()
    );
    server.shutdown().await?;
    Ok(())
}
