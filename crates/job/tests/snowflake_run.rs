//! `run` on Snowflake as a new user meets it: an empty schema. The job, built from its
//! configuration against fakesnow (the adapter's shim, started by
//! `crates/adapter-snowflake/tests/support/fakesnow.rs`), checks the schema version
//! before its first claim, migrates when `snowflake.auto_migrate` allows, and otherwise
//! refuses with a message naming `ca-notify migrate`. Fails, never skips, without fakesnow
//! (`scripts/start-fakesnow.sh --install-only`).

#[path = "../../adapter-snowflake/tests/support/fakesnow.rs"]
#[allow(dead_code)]
mod fakesnow;

use std::sync::Arc;

use ca_notify_adapter_memory::{MemoryIssuer, MemoryValidator};
use ca_notify_job::{Job, JobConfig, JobError, StoreKind};
use secrecy::SecretString;
use snowflake_connector_rs::{AuthConfig, Client, ClientConfig, EndpointConfig, SessionConfig};
use tokio_util::sync::CancellationToken;

use fakesnow::fakesnow;

fn unique(prefix: &str) -> String {
    format!(
        "{prefix}_{}_{}",
        std::process::id(),
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .expect("time")
            .as_nanos()
    )
}

/// A fresh database holding a source table of `phones` (ids 1..), each tested today.
async fn source_with(phones: &[&str]) -> (String, String) {
    let base_url = tokio::task::spawn_blocking(|| fakesnow().base_url.clone())
        .await
        .expect("fakesnow starts");
    let client = Client::new(
        ClientConfig::new("job_admin", "fake", AuthConfig::password("fake"))
            .with_session(SessionConfig::new())
            .with_endpoint(EndpointConfig::custom_base_url(
                base_url.parse().expect("a URL"),
            )),
    )
    .expect("client");
    let admin = client.create_session().await.expect("admin login");
    let database = unique("JOB_RUN");
    let table = format!("\"{database}\".\"PUBLIC\".\"POSITIVES\"");
    let today = chrono::Utc::now().date_naive().to_string();
    for sql in [
        format!("CREATE DATABASE IF NOT EXISTS \"{database}\""),
        format!("CREATE SCHEMA IF NOT EXISTS \"{database}\".\"PUBLIC\""),
        format!("CREATE TABLE {table} (ID NUMBER(38,0), PHONE VARCHAR, TEST_DATE DATE)"),
    ] {
        admin.query(sql).await.expect("setup");
    }
    for (i, phone) in phones.iter().enumerate() {
        let statement = snowflake_connector_rs::Statement::new_positional(format!(
            "INSERT INTO {table} (ID, PHONE, TEST_DATE) VALUES (?, ?, ?)"
        ))
        .bind(Some((i + 1).to_string()))
        .bind(Some((*phone).to_owned()))
        .bind(Some(today.clone()));
        admin.query(statement).await.expect("insert");
    }
    (database, base_url)
}

fn config(database: &str, base_url: &str, auto_migrate: bool) -> JobConfig {
    let mut config = JobConfig::default();
    config.store.kind = StoreKind::Snowflake;
    config.source.table = "POSITIVES".to_owned();
    config.source.id_column = "ID".to_owned();
    config.source.phone_column = "PHONE".to_owned();
    config.source.test_date_column = "TEST_DATE".to_owned();
    config.source.symptom_date_column = String::new();
    config.source.test_type_column = String::new();
    let sf = &mut config.snowflake;
    sf.account = "fake".to_owned();
    sf.user = unique("job_run");
    sf.password = Some(SecretString::from("not-checked-by-fakesnow"));
    sf.database = database.to_owned();
    sf.schema = "PUBLIC".to_owned();
    sf.base_url = Some(base_url.to_owned());
    sf.auto_migrate = auto_migrate;
    config.dedup.secret = Some(SecretString::from("a-secret-of-16-bytes-or-more"));
    config
}

async fn build(config: JobConfig) -> Result<Job, JobError> {
    Job::builder(config)
        .validator(Arc::new(MemoryValidator::new()))
        .issuer(Arc::new(MemoryIssuer::new()))
        .build()
        .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn run_on_an_empty_schema_migrates_first_and_texts_everyone_once() {
    let (database, base_url) = source_with(&["4152000011", "4152000021"]).await;
    let job = build(config(&database, &base_url, true))
        .await
        .expect("the job builds on an empty schema");
    let report = job.run(CancellationToken::new()).await.expect("ran");
    assert_eq!((report.claimed, report.sent), (2, 2), "{report:?}");
    // The next scheduled run finds nothing: one statement, from login to exit.
    let idle = config(&database, &base_url, true);
    let user = idle.snowflake.user.clone();
    let job = build(idle).await.expect("built again");
    let run_id = job.run_id().to_string();
    let again = job.run(CancellationToken::new()).await.expect("ran again");
    assert_eq!((again.claimed, again.sent), (0, 0), "{again:?}");
    let sent = tokio::task::spawn_blocking(move || fakesnow().statements_of(&user))
        .await
        .expect("statements");
    assert_eq!(
        sent.len(),
        1,
        "an idle run cost more than one statement: {sent:#?}"
    );
    assert!(sent[0].starts_with("INSERT INTO"), "{sent:#?}");
    assert!(sent[0].contains("_RUNS"), "{sent:#?}");
    // …which recorded the run as finished, having found nothing.
    let store = ca_notify_job::compose::Store::open(&config(&database, &base_url, true))
        .await
        .expect("open");
    let runs = store.run_log().recent_runs(5).await.expect("runs");
    let idle_run = runs
        .iter()
        .find(|r| r.start.id.to_string() == run_id)
        .expect("the idle run is recorded");
    assert!(
        idle_run
            .end
            .as_ref()
            .is_some_and(|e| e.is_nothing_to_claim()),
        "{idle_run:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_auto_migrate_an_empty_schema_stops_the_run_naming_ca_notify_migrate() {
    let (database, base_url) = source_with(&["4152000031"]).await;
    let config = config(&database, &base_url, false);
    match build(config.clone()).await {
        Err(JobError::Store(message)) => {
            assert!(message.contains("ca-notify migrate"), "{message}");
        }
        Err(other) => panic!("expected a store refusal, got {other}"),
        Ok(_) => panic!("the job built without its state tables"),
    }
    let done = ca_notify_job::migrate::migrate(&config)
        .await
        .expect("migrate");
    assert!(done.contains("from schema version 0 to 4"), "{done}");
    let again = ca_notify_job::migrate::migrate(&config)
        .await
        .expect("migrate twice");
    assert!(again.contains("already at schema version 4"), "{again}");
    let report = build(config)
        .await
        .expect("builds once migrated")
        .run(CancellationToken::new())
        .await
        .expect("ran");
    assert_eq!(report.sent, 1, "{report:?}");
}
