//! Lookup throughput against the in-process Twilio simulator, printed as a table.
//!
//! * Defaults (concurrency 10, no rate cap, default backoff), 150 ms of simulated latency,
//!   Twilio not pushing back (the simulator's account ceiling of 100): lookups per second
//!   as a ratio to the ideal `concurrency / latency` (goal ≥ 0.9).
//! * Defaults, 150 ms, Twilio pushing back (it accepts 4 at a time and answers 429/20429
//!   above that): every lookup must still end in a verdict (goal: none lost), and the rate
//!   is shown against what Twilio accepts (4 / 150 ms).
//! * Tuned (concurrency 50), labelled as such.
//! * With zero latency, lookups per second over loopback (client and simulator share the
//!   machine's cores, so this is a floor for the client's own cost), with and without the
//!   offline pre-filter, and the offline validator alone.
//! * Peak RSS (`VmHWM`) of the whole process, simulator included.
//!
//! Every lookup is of a distinct number, since the per-run cache would otherwise hide the
//! work. Run with `cargo bench -p ca-notify-adapter-twilio --bench lookup`.

use std::sync::Arc;
use std::time::{Duration, Instant};

use ca_notify_adapter_twilio::{prefiltered, OfflineValidator, TwilioConfig, TwilioValidator};
use ca_notify_domain::{Backoff, PhoneNumber, PhoneParser};
use ca_notify_ports::PhoneValidator;
use ca_notify_simulators::twilio::{RunningTwilioSim, TwilioSimConfig, TwilioSimulator};
use secrecy::SecretString;

/// Real US area codes, so every number is valid to libphonenumber too.
const AREA_CODES: &[u32] = &[
    201, 202, 203, 205, 206, 207, 208, 209, 210, 212, 213, 214, 215, 216, 217, 218, 219, 224, 225,
    228, 229, 231, 234, 239, 240, 248, 251, 252, 253, 254, 256, 260, 262, 267, 269, 270, 301, 302,
    303, 304, 305, 307, 308, 309, 310, 312, 313, 314, 315, 316, 317, 318, 319, 320, 401, 402, 404,
    405, 406, 407, 408, 409, 410, 412, 413, 414, 415, 417, 419, 423, 425, 430, 501, 502, 503, 504,
    505, 507, 508, 509, 510, 512, 513, 515, 516, 517, 518, 520, 530, 540, 601, 602, 603, 605, 606,
    607, 608, 609, 610, 612, 614, 615, 616, 617, 618, 619, 620, 623, 701, 702, 703, 704, 706, 707,
    708, 712, 713, 714, 715, 716, 717, 718, 719, 720, 724, 727, 801, 802, 803, 804, 805, 806, 808,
    810, 812, 813, 814, 815, 816, 817, 818, 828, 830, 831, 901, 903, 904, 906, 907, 908, 909, 910,
    912, 913, 914, 915, 916, 917, 918, 919, 920, 925,
];

/// `count` distinct numbers, starting at `offset` (so phases never share a number).
fn numbers(offset: usize, count: usize) -> Vec<PhoneNumber> {
    let parser = PhoneParser::default();
    (offset..offset + count)
        .map(|i| {
            let area = AREA_CODES[i % AREA_CODES.len()];
            let rest = i / AREA_CODES.len();
            let exchange = 200 + (rest / 10_000) % 700;
            let line = rest % 10_000;
            parser
                .parse(&format!("+1{area}{exchange}{line:04}"))
                .expect("a valid number")
        })
        .collect()
}

/// The adapter with default settings, or with `concurrency` and a short backoff (tuned).
fn twilio(sim: &RunningTwilioSim, concurrency: Option<usize>) -> TwilioValidator {
    let defaults = TwilioConfig {
        base_url: sim.base_url(),
        ..TwilioConfig::new(sim.account_sid(), SecretString::from(sim.auth_token()))
    };
    let config = match concurrency {
        None => defaults,
        Some(concurrency) => TwilioConfig {
            concurrency,
            backoff: Backoff {
                base: Duration::from_millis(20),
                cap: Duration::from_millis(500),
                max_retries: 4,
            },
            ..defaults
        },
    };
    TwilioValidator::new(config).expect("valid config")
}

/// Checks every number at once (tasks on the multi-thread runtime); returns the time taken
/// and how many checks failed.
async fn check_all(
    validator: Arc<dyn PhoneValidator>,
    numbers: &[PhoneNumber],
) -> (Duration, usize) {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(600);
    let started = Instant::now();
    let mut tasks = tokio::task::JoinSet::new();
    for number in numbers {
        let (validator, number) = (validator.clone(), number.clone());
        tasks.spawn(async move { validator.check(&number, deadline).await.is_ok() });
    }
    let mut failed = 0;
    while let Some(ok) = tasks.join_next().await {
        if !ok.unwrap_or(false) {
            failed += 1;
        }
    }
    (started.elapsed(), failed)
}

fn peak_rss_mib() -> f64 {
    ca_notify_simulators::process::peak_rss_kib().map_or(f64::NAN, |kib| kib as f64 / 1024.0)
}

struct Row {
    scenario: String,
    concurrency: usize,
    latency_ms: u64,
    lookups: usize,
    seconds: f64,
    ideal: Option<f64>,
    rejections: u64,
    max_in_flight: usize,
    failed: usize,
}

fn print(rows: &[Row]) {
    println!(
        "| scenario | concurrency | latency | lookups | seconds | lookups/s | ideal/s | ratio | 429s | max in flight | lost (no verdict) |"
    );
    println!("|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|");
    for r in rows {
        let rate = r.lookups as f64 / r.seconds;
        let (ideal, ratio) = r.ideal.map_or(("—".to_owned(), "—".to_owned()), |i| {
            (format!("{i:.1}"), format!("{:.3}", rate / i))
        });
        println!(
            "| {} | {} | {} ms | {} | {:.2} | {:.1} | {} | {} | {} | {} | {} |",
            r.scenario,
            r.concurrency,
            r.latency_ms,
            r.lookups,
            r.seconds,
            rate,
            ideal,
            ratio,
            r.rejections,
            r.max_in_flight,
            r.failed
        );
    }
}

/// 150 ms lookups; `tuned` sets the concurrency (else defaults, 10); `accepts` is the
/// simulated account's concurrency ceiling (429/20429 above it).
async fn latency_phase(tuned: Option<usize>, accepts: usize, lookups: usize, offset: usize) -> Row {
    let latency = Duration::from_millis(150);
    let sim = TwilioSimulator::start(TwilioSimConfig {
        latency,
        concurrency_limit: Some(accepts),
        ..TwilioSimConfig::default()
    })
    .await
    .expect("simulator");
    let validator = twilio(&sim, tuned);
    let concurrency = tuned.unwrap_or(TwilioConfig::default().concurrency);
    let validator: Arc<dyn PhoneValidator> = Arc::new(validator);
    let batch = numbers(offset, lookups);
    let (elapsed, failed) = check_all(validator, &batch).await;
    let stats = sim.stats();
    let label = if tuned.is_some() { "tuned" } else { "defaults" };
    let pushback = if accepts < concurrency {
        format!(", Twilio accepts {accepts} at a time")
    } else {
        String::new()
    };
    Row {
        scenario: format!("{label}: Twilio, 150 ms latency{pushback}"),
        concurrency,
        latency_ms: 150,
        lookups,
        seconds: elapsed.as_secs_f64(),
        ideal: Some(concurrency.min(accepts) as f64 / latency.as_secs_f64()),
        rejections: stats.concurrency_rejections,
        max_in_flight: stats.max_concurrency,
        failed,
    }
}

async fn loopback_phase(
    concurrency: usize,
    lookups: usize,
    offset: usize,
    with_prefilter: bool,
) -> Row {
    let sim = TwilioSimulator::start(TwilioSimConfig {
        concurrency_limit: Some(concurrency),
        ..TwilioSimConfig::default()
    })
    .await
    .expect("simulator");
    let twilio: Arc<dyn PhoneValidator> = Arc::new(twilio(&sim, Some(concurrency)));
    let validator = if with_prefilter {
        prefiltered(twilio)
    } else {
        twilio
    };
    let batch = numbers(offset, lookups);
    let (elapsed, failed) = check_all(validator, &batch).await;
    let stats = sim.stats();
    Row {
        scenario: if with_prefilter {
            "tuned: offline pre-filter + Twilio, loopback".into()
        } else {
            "tuned: Twilio, loopback".into()
        },
        concurrency,
        latency_ms: 0,
        lookups,
        seconds: elapsed.as_secs_f64(),
        ideal: None,
        rejections: stats.concurrency_rejections,
        max_in_flight: stats.max_concurrency,
        failed,
    }
}

fn offline_phase(count: usize, offset: usize) -> (usize, f64) {
    let batch = numbers(offset, count);
    let offline = OfflineValidator::new();
    // Load the metadata before timing.
    let _ = offline.judge(&batch[0]);
    let started = Instant::now();
    let mut capable = 0;
    for number in &batch {
        if matches!(
            offline.judge(number),
            ca_notify_ports::PhoneVerdict::SmsCapable { .. }
        ) {
            capable += 1;
        }
    }
    (capable, count as f64 / started.elapsed().as_secs_f64())
}

fn main() {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("runtime");
    let started = Instant::now();
    let (offline_capable, offline_rate) = offline_phase(50_000, 10_000_000);
    let rows = runtime.block_on(async {
        vec![
            latency_phase(None, 100, 1_000, 0).await,
            latency_phase(None, 4, 400, 500_000).await,
            latency_phase(Some(50), 100, 2_000, 1_000).await,
            loopback_phase(10, 20_000, 100_000, false).await,
            loopback_phase(50, 20_000, 200_000, false).await,
            loopback_phase(10, 20_000, 300_000, true).await,
        ]
    });
    println!();
    println!("Twilio Lookup adapter against the in-process simulator (distinct numbers):");
    println!();
    print(&rows);
    println!();
    println!(
        "Offline validator alone: {offline_rate:.0} numbers/s on one core ({offline_capable} of 50000 SMS-capable)."
    );
    println!(
        "Peak RSS (VmHWM, simulator included): {:.1} MiB",
        peak_rss_mib()
    );
    println!("Total bench time: {:.1} s", started.elapsed().as_secs_f64());
}
