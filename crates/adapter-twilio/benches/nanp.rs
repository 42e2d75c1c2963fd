//! The offline finding on North American numbers ([`finding_of`]: the plan's structure,
//! then the compiled ranges of [`ca_notify_adapter_twilio::nanp`]) against the `phonenumber`
//! crate the ranges replay, over a million random `+1` numbers: how many findings differ
//! from the crate (must be none, except the exchange faults where the crate's patterns are
//! looser than the plan; the process exits 1 otherwise), the time of each per number, and
//! how the findings spread. Run with `cargo bench -p ca-notify-adapter-twilio --bench nanp`
//! (`NANP_COUNT=…` for another sample size).

use std::collections::BTreeMap;
use std::time::Instant;

use ca_notify_adapter_twilio::nanp::{crate_verdict, RangeVerdict};
use ca_notify_adapter_twilio::offline::{finding_of, Finding};
use ca_notify_adapter_twilio::structure::StructuralFault;
use phonenumber::Type;
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

/// The process's peak RSS (`VmHWM`), KiB; 0 where it cannot be read.
fn peak_rss_kib() -> u64 {
    ca_notify_simulators::process::peak_rss_kib().unwrap_or(0)
}

fn main() {
    let count: usize = std::env::var("NANP_COUNT")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(1_000_000);
    let mut rng = StdRng::seed_from_u64(12_345);
    let numbers: Vec<String> = (0..count)
        .map(|_| {
            let first: u32 = rng.random_range(2..10);
            let rest: u32 = rng.random_range(0..1_000_000_000);
            format!("+1{first}{rest:09}")
        })
        .collect();
    // Compile outside the timing, as a run does once; the metadata itself is loaded first
    // so the RSS step is the compiled patterns alone.
    let _ = phonenumber::metadata::DATABASE.region(&1);
    let before = peak_rss_kib();
    let _ = finding_of(&numbers[0]);
    let compiled_kib = peak_rss_kib().saturating_sub(before);
    let started = Instant::now();
    let fast: Vec<Finding> = numbers.iter().map(|e| finding_of(e)).collect();
    let fast_time = started.elapsed();
    let started = Instant::now();
    let reference: Vec<RangeVerdict> = numbers
        .iter()
        .map(|e| crate_verdict(e).expect("a +1 number parses"))
        .collect();
    let crate_time = started.elapsed();

    let mut spread: BTreeMap<String, usize> = BTreeMap::new();
    let mut differ = 0;
    let mut looser = 0;
    for ((number, fast), reference) in numbers.iter().zip(&fast).zip(&reference) {
        *spread.entry(format!("{fast:?}")).or_default() += 1;
        let agrees = match fast {
            Finding::Range(verdict) => verdict == reference,
            Finding::Structural(_) if *reference == RangeVerdict::Invalid => true,
            Finding::Structural(fault) => {
                // The crate's patterns are looser than the plan about exchanges only: N11
                // exchanges, and 0/1 exchanges its Dominican toll-free patterns type.
                let n11 = &number[6..8] == "11";
                let toll_free = *reference == RangeVerdict::Valid(Type::TollFree);
                let explained = *fault == StructuralFault::Exchange && (n11 || toll_free);
                looser += usize::from(explained);
                explained
            }
        };
        if !agrees {
            differ += 1;
            if differ <= 5 {
                // Synthetic numbers, not anyone's.
                eprintln!("{number}: offline {fast:?}, crate {reference:?}");
            }
        }
    }
    let per = |d: std::time::Duration| d.as_secs_f64() * 1e6 / count as f64;
    println!(
        "| numbers | differing findings | looser crate (exchanges) | offline | crate | speed-up |"
    );
    println!("|---:|---:|---:|---:|---:|---:|");
    println!(
        "| {count} | {differ} | {looser} | {:.2} µs | {:.2} µs | {:.0}× |",
        per(fast_time),
        per(crate_time),
        crate_time.as_secs_f64() / fast_time.as_secs_f64()
    );
    println!("Findings: {spread:?}");
    println!(
        "Peak RSS grew {:.1} MiB when the patterns were compiled, {:.1} MiB in all.",
        compiled_kib as f64 / 1024.0,
        peak_rss_kib() as f64 / 1024.0
    );
    if differ > 0 {
        std::process::exit(1);
    }
}
