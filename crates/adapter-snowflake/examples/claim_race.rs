//! Checks on a real Snowflake account that concurrent claims never overlap — the one
//! property of the claim protocol fakesnow cannot prove, because it serialises statements
//! (docs/store-snowflake.md, "First run on a real account", step 4).
//!
//! It creates a scratch source table of `--records` rows in the configured database and
//! schema, runs `--workers` workers (each with its own session) that claim `--batch`
//! records at a time and write them back, and exits non-zero if any record was claimed
//! twice, lost, or left pending. The scratch tables are dropped at the end unless
//! `--keep`. It prints what it measured.
//!
//! Configuration comes from the environment: `CA_NOTIFY_SNOWFLAKE_ACCOUNT`, `_USER`,
//! `_PRIVATE_KEY_PATH` (with `_PRIVATE_KEY_PASSPHRASE` for an encrypted key),
//! `_PROGRAMMATIC_ACCESS_TOKEN` or `_PASSWORD`, `_DATABASE`, `_SCHEMA`, and optionally `_WAREHOUSE`, `_ROLE`, `_BASE_URL` (e.g. a
//! fakesnow shim on 127.0.0.1, for a dry run).

use std::collections::BTreeMap;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::{Duration, Instant};

use ca_notify_adapter_snowflake::{
    SnowflakeAuth, SnowflakeConfig, SnowflakeStore, SourceTable, StoreError,
};
use ca_notify_domain::{NotSentReason, Outcome, RecordId, RecordOutcome};
use ca_notify_ports::{PhoneSource, ResultSink, SinkError, SourceError};
use secrecy::ExposeSecret;
use snowflake_connector_rs::{
    AuthConfig, Client, ClientConfig, EndpointConfig, KeyPairConfig, Session, SessionConfig,
    Statement,
};

const LEASE: Duration = Duration::from_secs(600);
const RETRY_PAUSE: Duration = Duration::from_millis(200);
const MAX_RETRIES: u32 = 300;

struct Args {
    workers: usize,
    records: usize,
    batch: usize,
    keep: bool,
}

fn parse_args() -> Result<Args, String> {
    let mut args = Args {
        workers: 4,
        records: 1000,
        batch: 50,
        keep: false,
    };
    let mut it = std::env::args().skip(1);
    while let Some(flag) = it.next() {
        let mut number = |name: &str| -> Result<usize, String> {
            it.next()
                .and_then(|v| v.parse().ok())
                .filter(|n: &usize| *n > 0)
                .ok_or_else(|| format!("{name} needs a positive number"))
        };
        match flag.as_str() {
            "--workers" => args.workers = number("--workers")?,
            "--records" => args.records = number("--records")?,
            "--batch" => args.batch = number("--batch")?,
            "--keep" => args.keep = true,
            other => return Err(format!("unknown argument {other}")),
        }
    }
    Ok(args)
}

fn env(name: &str) -> Option<String> {
    std::env::var(format!("CA_NOTIFY_SNOWFLAKE_{name}"))
        .ok()
        .filter(|v| !v.trim().is_empty())
}

fn config(source: &str, state: &str, worker: usize) -> Result<SnowflakeConfig, String> {
    let required = |name: &str| env(name).ok_or(format!("set CA_NOTIFY_SNOWFLAKE_{name}"));
    let auth = match (env("PASSWORD"), env("PRIVATE_KEY_PATH")) {
        _ if env("PROGRAMMATIC_ACCESS_TOKEN").is_some() => SnowflakeAuth::ProgrammaticAccessToken(
            env("PROGRAMMATIC_ACCESS_TOKEN").unwrap_or_default().into(),
        ),
        (_, Some(path)) => SnowflakeAuth::KeyPair {
            private_key_pem: std::fs::read_to_string(&path)
                .map_err(|e| format!("{path}: {e}"))?
                .into(),
            passphrase: env("PRIVATE_KEY_PASSPHRASE").map(Into::into),
        },
        (Some(password), None) => SnowflakeAuth::Password(password.into()),
        (None, None) => {
            return Err(
                "set CA_NOTIFY_SNOWFLAKE_PASSWORD or CA_NOTIFY_SNOWFLAKE_PRIVATE_KEY_PATH".into(),
            )
        }
    };
    Ok(SnowflakeConfig {
        account: required("ACCOUNT")?,
        user: required("USER")?,
        auth,
        warehouse: env("WAREHOUSE"),
        database: required("DATABASE")?,
        schema: required("SCHEMA")?,
        role: env("ROLE"),
        base_url: env("BASE_URL"),
        table: SourceTable::new(source, "ID", "PHONE"),
        state_table: state.to_owned(),
        worker_id: format!("claim-race-{worker}"),
        lock_timeout_secs: 60,
        statement_timeout_secs: 300,
        run_id: None,
    })
}

/// A plain session for creating and dropping the scratch tables.
async fn admin(config: &SnowflakeConfig) -> Result<Session, String> {
    let auth = match &config.auth {
        SnowflakeAuth::Password(p) | SnowflakeAuth::ProgrammaticAccessToken(p) => {
            AuthConfig::password(p.expose_secret().to_owned())
        }
        SnowflakeAuth::KeyPair {
            private_key_pem,
            passphrase,
        } => {
            let pem = private_key_pem.expose_secret().to_owned();
            AuthConfig::key_pair(match passphrase {
                Some(p) => {
                    KeyPairConfig::from_encrypted_pem(pem, p.expose_secret().as_bytes().to_vec())
                }
                None => KeyPairConfig::from_pem(pem),
            })
        }
    };
    let mut session = SessionConfig::new()
        .with_database(config.database.clone())
        .with_schema(config.schema.clone())
        .with_session_parameter("QUERY_TAG", "ca-notify-claim-race".into());
    if let Some(w) = &config.warehouse {
        session = session.with_warehouse(w.clone());
    }
    if let Some(r) = &config.role {
        session = session.with_role(r.clone());
    }
    let mut client_config =
        ClientConfig::new(config.user.clone(), config.account.clone(), auth).with_session(session);
    if let Some(url) = &config.base_url {
        let url = url.parse().map_err(|e| format!("base URL: {e}"))?;
        client_config = client_config.with_endpoint(EndpointConfig::custom_base_url(url));
    }
    let client = Client::new(client_config).map_err(|e| e.to_string())?;
    client.create_session().await.map_err(|e| e.to_string())
}

async fn run_sql(session: &Session, sql: String, binds: Vec<Option<String>>) -> Result<(), String> {
    let result = if binds.is_empty() {
        session.query(sql.clone()).await
    } else {
        let mut statement = Statement::new_positional(sql.clone());
        for b in binds {
            statement = statement.bind(b);
        }
        session.query(statement).await
    };
    result.map(|_| ()).map_err(|e| format!("{e} ({sql})"))
}

#[derive(Default)]
struct WorkerReport {
    claimed: Vec<RecordId>,
    claims: usize,
    retries: u32,
    not_owned: usize,
    slowest_claim: Duration,
}

async fn worker(store: Arc<SnowflakeStore>, batch: usize) -> Result<WorkerReport, String> {
    let mut report = WorkerReport::default();
    let mut retries_in_a_row = 0;
    loop {
        let started = Instant::now();
        let claim = match store.claim(batch, LEASE).await {
            Ok(c) => c,
            Err(SourceError::Unavailable(_)) if retries_in_a_row < MAX_RETRIES => {
                retries_in_a_row += 1;
                report.retries += 1;
                tokio::time::sleep(RETRY_PAUSE).await;
                continue;
            }
            Err(e) => return Err(format!("claim: {e}")),
        };
        retries_in_a_row = 0;
        report.slowest_claim = report.slowest_claim.max(started.elapsed());
        if claim.records.is_empty() {
            return Ok(report);
        }
        report.claims += 1;
        let outcomes: Vec<RecordOutcome> = claim
            .records
            .iter()
            .map(|r| {
                RecordOutcome::new(
                    r.id.clone(),
                    None,
                    Outcome::not_sent(NotSentReason::InvalidNumber {
                        detail: "claim_race_check".into(),
                    }),
                )
            })
            .collect();
        loop {
            match store.write_back(&claim.token, &outcomes).await {
                Ok(receipt) => {
                    report.not_owned += receipt.not_owned;
                    break;
                }
                Err(SinkError::Unavailable(_)) if retries_in_a_row < MAX_RETRIES => {
                    retries_in_a_row += 1;
                    report.retries += 1;
                    tokio::time::sleep(RETRY_PAUSE).await;
                }
                Err(e) => return Err(format!("write-back: {e}")),
            }
        }
        report
            .claimed
            .extend(claim.records.into_iter().map(|r| r.id));
    }
}

async fn race(args: &Args, source: &str, state: &str) -> Result<bool, String> {
    let admin_config = config(source, state, 0)?;
    admin_config.validate().map_err(|e| e.to_string())?;
    let session = admin(&admin_config).await?;
    // The admin session's current database and schema are the configured ones.
    let qualified = |t: &str| format!("\"{t}\"");
    run_sql(
        &session,
        format!(
            "CREATE TABLE {} (ID NUMBER(38,0), PHONE VARCHAR)",
            qualified(source)
        ),
        Vec::new(),
    )
    .await?;
    let result = async {
        for chunk_start in (0..args.records).step_by(500) {
            let chunk_end = (chunk_start + 500).min(args.records);
            let values = vec!["(?, ?)"; chunk_end - chunk_start].join(", ");
            let mut binds = Vec::new();
            for id in chunk_start..chunk_end {
                binds.push(Some(id.to_string()));
                // Fictional numbers (555-01xx).
                binds.push(Some(format!("+1202555{:04}", 100 + id % 100)));
            }
            run_sql(
                &session,
                format!(
                    "INSERT INTO {} (ID, PHONE) VALUES {values}",
                    qualified(source)
                ),
                binds,
            )
            .await?;
        }
        let first = SnowflakeStore::connect(admin_config.clone())
            .await
            .map_err(|e| e.to_string())?;
        first.migrate().await.map_err(|e| e.to_string())?;

        let mut stores = Vec::with_capacity(args.workers);
        for w in 0..args.workers {
            let store = SnowflakeStore::connect(config(source, state, w)?)
                .await
                .map_err(|e| e.to_string())?;
            stores.push(Arc::new(store));
        }
        let started = Instant::now();
        let tasks: Vec<_> = stores
            .into_iter()
            .map(|s| tokio::spawn(worker(s, args.batch)))
            .collect();
        let mut reports = Vec::new();
        for t in tasks {
            reports.push(t.await.map_err(|e| e.to_string())??);
        }
        let elapsed = started.elapsed();

        let mut owners: BTreeMap<RecordId, Vec<usize>> = BTreeMap::new();
        for (w, r) in reports.iter().enumerate() {
            for id in &r.claimed {
                owners.entry(id.clone()).or_default().push(w);
            }
        }
        let overlaps: Vec<_> = owners.iter().filter(|(_, w)| w.len() > 1).collect();
        let missing = args.records - owners.len();
        let pending = first
            .check()
            .await
            .map_err(|e: StoreError| e.to_string())?
            .pending_records
            .unwrap_or(0);
        let claims: usize = reports.iter().map(|r| r.claims).sum();
        let retries: u32 = reports.iter().map(|r| r.retries).sum();
        let not_owned: usize = reports.iter().map(|r| r.not_owned).sum();
        let slowest = reports
            .iter()
            .map(|r| r.slowest_claim)
            .max()
            .unwrap_or_default();
        println!("records              {}", args.records);
        println!("workers × batch      {} × {}", args.workers, args.batch);
        println!("claims               {claims}");
        println!("elapsed              {:.2} s", elapsed.as_secs_f64());
        println!(
            "records/s            {:.0} (claim + read back + write back)",
            args.records as f64 / elapsed.as_secs_f64()
        );
        println!("slowest claim        {} ms", slowest.as_millis());
        println!("retries (lock waits) {retries}");
        println!("claimed twice        {}", overlaps.len());
        println!("never claimed        {missing}");
        println!("not owned at write   {not_owned}");
        println!("still pending        {pending}");
        for (id, workers) in overlaps.iter().take(10) {
            println!("  record {id} claimed by workers {workers:?}");
        }
        Ok(overlaps.is_empty() && missing == 0 && not_owned == 0 && pending == 0)
    }
    .await;
    if !args.keep {
        for table in [
            source.to_owned(),
            state.to_owned(),
            format!("{state}_MIGRATIONS"),
            format!("{state}_META"),
        ] {
            if let Err(e) = run_sql(
                &session,
                format!("DROP TABLE IF EXISTS {}", qualified(&table)),
                Vec::new(),
            )
            .await
            {
                eprintln!("could not drop {table}: {e}");
            }
        }
    }
    result
}

#[tokio::main]
async fn main() -> ExitCode {
    let args = match parse_args() {
        Ok(a) => a,
        Err(e) => {
            eprintln!("claim_race: {e}\nusage: claim_race [--workers N] [--records N] [--batch N] [--keep]");
            return ExitCode::from(2);
        }
    };
    let suffix = uuid::Uuid::new_v4().simple().to_string()[..8].to_ascii_uppercase();
    let source = format!("CA_NOTIFY_RACE_SRC_{suffix}");
    let state = format!("CA_NOTIFY_RACE_STATE_{suffix}");
    match race(&args, &source, &state).await {
        Ok(true) => {
            println!("OK: no record was claimed twice, lost or left pending.");
            ExitCode::SUCCESS
        }
        Ok(false) => {
            println!(
                "FAILED: claims overlapped or records were lost; see docs/store-snowflake.md."
            );
            ExitCode::FAILURE
        }
        Err(e) => {
            eprintln!("claim_race: {e}");
            ExitCode::from(2)
        }
    }
}
