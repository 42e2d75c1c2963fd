//! Throughput of the verification adapter against the in-process simulator, with
//! default settings; prints a table, asserts nothing.
//!
//! 1. Paced by the server: two simulators answer after 500 ms and announce a fixed-window
//!    limiter of 60 and of 120 requests a minute in their `X-RateLimit-*` headers, as the
//!    real server does; a client with **default settings** (no `requests_per_minute`) is
//!    driven by enough concurrent callers for two whole windows. Reported: requests the
//!    server accepted as a share of the two windows' budget (goal ≥ 0.95), codes per
//!    second, and the 429s our pacing caused (goal 0). The two run side by side.
//! 2. Loopback: no latency, no limiter (`X-RateLimit-Limit: 0`), defaults: codes per
//!    second the adapter and simulator sustain together on this machine, and the peak RSS.
//!
//! `cargo bench -p ca-notify-adapter-verification --bench issue`; set
//! `ISSUE_BENCH_WINDOWS` (2) / `ISSUE_BENCH_LOOPBACK_SECS` (10) to change the runs.

use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use ca_notify_adapter_verification::{VerificationClient, VerificationConfig};
use ca_notify_domain::{DedupKey, DedupSecret, ItemAnswer, PhoneParser};
use ca_notify_ports::{IssueItem, SmsIssuer};
use ca_notify_simulators::verification::{RateLimit, SimConfig, VerificationSimulator};
use tokio::time::Instant;

/// Hands out distinct, valid phone numbers (`+1 206 NXX XXXX`) with their dedup keys.
struct People {
    next: AtomicU32,
    parser: PhoneParser,
    secret: DedupSecret,
    today: chrono::NaiveDate,
}

impl People {
    fn new() -> Self {
        Self {
            next: AtomicU32::new(0),
            parser: PhoneParser::default(),
            secret: DedupSecret::new("benchmark dedup secret, long enough".to_owned().into())
                .expect("secret"),
            today: chrono::Utc::now().date_naive(),
        }
    }

    fn batch(&self, size: u32) -> Vec<IssueItem> {
        (0..size)
            .map(|_| {
                let n = self.next.fetch_add(1, Ordering::Relaxed);
                // Exchanges 200–999, lines 0000–9999: 8 million numbers.
                let raw = format!("+1206{:03}{:04}", 200 + n / 10_000, n % 10_000);
                let phone = self.parser.parse(&raw).expect("valid phone");
                let test_date = Some(self.today);
                IssueItem {
                    uuid: DedupKey::derive(&self.secret, &phone, test_date, &"bench".into()),
                    phone,
                    test_type: None,
                    test_date,
                    symptom_date: None,
                    tz_offset: 0,
                }
            })
            .collect()
    }
}

struct Run {
    codes: u64,
    requests: u64,
    elapsed: Duration,
}

/// `callers` tasks issue 10-item batches; none starts after `duration` has passed.
async fn drive(client: Arc<VerificationClient>, callers: usize, duration: Duration) -> Run {
    let people = Arc::new(People::new());
    let codes = Arc::new(AtomicU64::new(0));
    let requests = Arc::new(AtomicU64::new(0));
    let start = Instant::now();
    let stop_at = start + duration;
    // A request may start until `stop_at` and then run its whole timeout.
    let deadline = stop_at + ca_notify_adapter_verification::config::DEFAULT_REQUEST_TIMEOUT;
    let last_done = Arc::new(std::sync::Mutex::new(start));
    let tasks: Vec<_> = (0..callers)
        .map(|_| {
            let (client, people, codes, requests, last_done) = (
                client.clone(),
                people.clone(),
                codes.clone(),
                requests.clone(),
                last_done.clone(),
            );
            tokio::spawn(async move {
                while Instant::now() < stop_at {
                    let batch = people.batch(10);
                    // The deadline stops callers from waiting on the pacer past the run.
                    match client.issue_batch(&batch, deadline).await {
                        Ok(answers) => {
                            let issued = answers
                                .iter()
                                .filter(|a| matches!(a, ItemAnswer::Issued))
                                .count();
                            codes.fetch_add(issued as u64, Ordering::Relaxed);
                            requests.fetch_add(1, Ordering::Relaxed);
                            *last_done.lock().expect("lock") = Instant::now();
                        }
                        Err(ca_notify_ports::IssueError::RateLimited { until })
                            if until >= stop_at =>
                        {
                            break
                        }
                        Err(error) => eprintln!("batch failed: {error}"),
                    }
                }
            })
        })
        .collect();
    for task in tasks {
        task.await.expect("caller");
    }
    let elapsed = *last_done.lock().expect("lock") - start;
    Run {
        codes: codes.load(Ordering::Relaxed),
        requests: requests.load(Ordering::Relaxed),
        elapsed,
    }
}

/// Default settings, as a new user would run them.
fn config(base_url: &str, api_key: &str) -> VerificationConfig {
    VerificationConfig::new(base_url, api_key.to_owned().into())
}

/// One paced run: a simulator with a `per_minute` limiter and 500 ms answers, a client
/// with default settings, `windows` whole windows from the first request.
async fn paced(per_minute: u32, windows: u32) -> anyhow::Result<(Run, u64)> {
    let sim = VerificationSimulator::start(SimConfig {
        latency: Duration::from_millis(500),
        rate_limit: Some(RateLimit::per_minute(per_minute)),
        ..SimConfig::default()
    })
    .await?;
    let client = Arc::new(VerificationClient::new(config(
        &sim.base_url(),
        &sim.api_key(),
    ))?);
    let run = drive(client, 4, Duration::from_secs(60) * windows).await;
    assert_eq!(sim.ledger().phones_texted_more_than_once(), 0);
    Ok((run, sim.stats().rate_limited))
}

fn peak_rss_mib() -> Option<f64> {
    ca_notify_simulators::process::peak_rss_kib().map(|kib| kib as f64 / 1024.0)
}

fn seconds(var: &str, default: u64) -> Duration {
    Duration::from_secs(
        std::env::var(var)
            .ok()
            .and_then(|v| v.parse().ok())
            .unwrap_or(default),
    )
}

fn main() -> anyhow::Result<()> {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    runtime.block_on(async {
        // 1. Paced by the server's headers, 60 and 120 a minute side by side.
        let windows = std::env::var("ISSUE_BENCH_WINDOWS")
            .ok()
            .and_then(|v| v.parse().ok())
            .unwrap_or(2u32);
        let (sixty, one_twenty) = tokio::join!(paced(60, windows), paced(120, windows));
        let paced_runs = [(60u32, sixty?), (120u32, one_twenty?)];

        // 2. Loopback, nothing in the way.
        let loopback_for = seconds("ISSUE_BENCH_LOOPBACK_SECS", 10);
        let sim = VerificationSimulator::start(SimConfig::default()).await?;
        let client = Arc::new(VerificationClient::new(config(
            &sim.base_url(),
            &sim.api_key(),
        ))?);
        let callers = 32;
        let loopback = drive(client, callers, loopback_for).await;
        let loopback_stats = sim.stats();
        let loopback_rate = loopback.codes as f64 / loopback.elapsed.as_secs_f64();

        println!();
        println!("verification adapter against the simulator");
        println!("{:-<78}", "");
        println!("{:<44} {:>14}  goal", "figure", "value");
        println!("{:-<78}", "");
        for (per_minute, (run, rate_limited)) in &paced_runs {
            let budget = u64::from(*per_minute) * u64::from(windows);
            let label = format!("defaults, limiter {per_minute}/min, 500 ms");
            println!(
                "{:<44} {:>14.3}  >= 0.95",
                format!("{label}: share of budget"),
                run.requests as f64 / budget as f64
            );
            println!(
                "{:<44} {:>14}  ",
                "  requests accepted / budget",
                format!("{} / {budget}", run.requests)
            );
            println!(
                "{:<44} {:>14.2}  ",
                "  codes/s (10 per request)",
                run.codes as f64 / run.elapsed.as_secs_f64()
            );
            println!("{:<44} {:>14}  0", "  limiter 429s received", rate_limited);
            println!(
                "{:<44} {:>14.1}  ",
                "  seconds measured",
                run.elapsed.as_secs_f64()
            );
        }
        println!(
            "{:<44} {:>14.0}  ",
            format!("loopback: codes/s ({callers} callers, no limiter)"),
            loopback_rate
        );
        println!(
            "{:<44} {:>14.0}  ",
            "loopback: requests/s",
            loopback.requests as f64 / loopback.elapsed.as_secs_f64()
        );
        println!(
            "{:<44} {:>14}  ",
            "loopback: codes issued (simulator count)", loopback_stats.issued
        );
        match peak_rss_mib() {
            Some(mib) => println!(
                "{:<44} {:>14.1}  ",
                "peak RSS, whole process (VmHWM, MiB)", mib
            ),
            None => println!("{:<44} {:>14}  ", "peak RSS (VmHWM)", "n/a"),
        }
        println!("{:-<78}", "");
        anyhow::Ok(())
    })
}
