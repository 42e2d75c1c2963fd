//! End-to-end runs against the Twilio Lookup and verification-server simulators over real
//! HTTP: faults, a spent quota and a wrong API key, with the exactly-once invariants.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use ca_notify_adapter_memory::MemoryStore;
use ca_notify_adapter_twilio::{phone_validator, TwilioConfig};
use ca_notify_adapter_verification::{VerificationClient, VerificationConfig};
use ca_notify_domain::{DedupSecret, NotSentReason, Outcome, PhoneParser, RecipientRecord};
use ca_notify_integration_tests::Cli;
use ca_notify_pipeline::{FatalCause, Pipeline, Settings};
use ca_notify_simulators::twilio::{RunningTwilioSim, TwilioSimConfig, TwilioSimulator};
use ca_notify_simulators::verification::{Faults, RunningSim, SimConfig, VerificationSimulator};
use secrecy::SecretString;
use tokio_util::sync::CancellationToken;

const SECRET: &str = "integration-test-dedup-secret";

/// A national number the Twilio simulator answers by its last digit (0–4 mobile,
/// 5 landline, 9 invalid).
fn number(serial: usize, last_digit: usize) -> String {
    format!("415{:06}{last_digit}", 200_000 + serial)
}

/// `count` recipients: mostly mobiles, some landlines and invalid numbers, and every
/// tenth a duplicate of an earlier mobile (same phone and test date).
fn recipients(count: usize) -> Vec<(RecipientRecord, String)> {
    let today = chrono::Utc::now().date_naive().to_string();
    (0..count)
        .map(|i| {
            let national = match i % 10 {
                7 => number(i, 5),
                8 => number(i, 9),
                // The same person as record i-3, a mobile with the same test date.
                9 => number(i - 3, 1),
                _ => number(i, 1),
            };
            let record = RecipientRecord::new(format!("r{i:05}"), national.clone())
                .with_test_date(today.clone());
            (record, national)
        })
        .collect()
}

async fn simulators(
    twilio: TwilioSimConfig,
    verification: SimConfig,
) -> (RunningTwilioSim, RunningSim) {
    let twilio = TwilioSimulator::start(twilio)
        .await
        .expect("twilio simulator");
    let verification = VerificationSimulator::start(verification)
        .await
        .expect("verification simulator");
    (twilio, verification)
}

fn pipeline(
    store: Arc<MemoryStore>,
    twilio: &RunningTwilioSim,
    verification: &RunningSim,
    api_key: String,
) -> Pipeline {
    let validator = phone_validator(Some(TwilioConfig {
        base_url: twilio.base_url(),
        account_sid: twilio.account_sid().to_owned(),
        auth_token: SecretString::from(twilio.auth_token().to_owned()),
        requests_per_second: 1_000,
        ..TwilioConfig::default()
    }))
    .expect("twilio config");
    let issuer = VerificationClient::new(VerificationConfig {
        requests_per_minute: 60_000,
        ..VerificationConfig::new(verification.base_url(), SecretString::from(api_key))
    })
    .expect("verification config");
    Pipeline::builder()
        .source(store.clone())
        .sink(store)
        .validator(validator)
        .issuer(Arc::new(issuer))
        .settings(Settings {
            until_drained: true,
            deadline: Duration::from_secs(50),
            ..Settings::default()
        })
        .phone_parser(PhoneParser::default())
        .dedup_secret(DedupSecret::new(SecretString::from(SECRET)).expect("secret"))
        .build()
        .expect("pipeline")
}

fn e164(national: &str) -> String {
    format!("+1{national}")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn faulty_peers_still_text_each_person_exactly_once() {
    let (twilio, verification) = simulators(
        TwilioSimConfig {
            fault_rate_429: 0.05,
            fault_rate_500: 0.02,
            ..TwilioSimConfig::default()
        },
        SimConfig {
            faults: Faults {
                error_after_issue: 0.05,
                drop_after_issue: 0.03,
                drop_before_issue: 0.03,
                ..Faults::default()
            },
            ..SimConfig::default()
        },
    )
    .await;
    let people = recipients(300);
    let store = Arc::new(MemoryStore::with_records(
        people.iter().map(|(r, _)| r.clone()),
    ));
    let report = pipeline(
        store.clone(),
        &twilio,
        &verification,
        verification.api_key(),
    )
    .run(CancellationToken::new())
    .await
    .expect("the run survives the faults");

    assert_eq!(report.claimed, 300, "{report:?}");
    let mut deferred = 0;
    for (record, national) in &people {
        let texts = verification.texts_to(&e164(national));
        assert!(texts <= 1, "{} texted {texts} times", record.id);
        match store.outcome(&record.id) {
            Some(Outcome::Sent | Outcome::AlreadySent) => {
                assert_eq!(texts, 1, "{} is marked sent but was not texted", record.id);
            }
            Some(Outcome::NotSent { reason }) => {
                if !matches!(reason, NotSentReason::GaveUp { .. }) {
                    assert_eq!(texts, 0, "{} not sent ({reason:?}) but texted", record.id);
                }
            }
            Some(Outcome::Deferred { .. }) | None => deferred += 1,
        }
    }
    assert_eq!(
        verification.ledger().phones_texted_more_than_once(),
        0,
        "no phone is texted twice"
    );
    assert!(
        store.claimed_ids().is_empty(),
        "nothing is left claimed after the run"
    );
    assert!(
        deferred <= 5,
        "almost everything is settled despite the faults ({deferred} deferred): {report:?}"
    );
    // Landlines and invalid numbers never reached the verification server.
    for (record, national) in people
        .iter()
        .filter(|(_, n)| n.ends_with('5') || n.ends_with('9'))
    {
        assert_eq!(verification.texts_to(&e164(national)), 0, "{}", record.id);
    }
    assert!(
        verification.stats().already_exists > 0,
        "{:?}",
        verification.stats()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_spent_quota_stops_the_run_and_marks_nothing_zero_for_it() {
    let (twilio, verification) = simulators(
        TwilioSimConfig::default(),
        SimConfig {
            daily_quota: Some(25),
            ..SimConfig::default()
        },
    )
    .await;
    let people = recipients(200);
    let store = Arc::new(MemoryStore::with_records(
        people.iter().map(|(r, _)| r.clone()),
    ));
    let failure = pipeline(
        store.clone(),
        &twilio,
        &verification,
        verification.api_key(),
    )
    .run(CancellationToken::new())
    .await
    .expect_err("the quota stops the run");
    assert!(
        matches!(failure.cause, FatalCause::QuotaExhausted),
        "{failure}"
    );
    assert_eq!(
        verification.ledger().total(),
        25,
        "the quota allowed 25 codes"
    );
    for (record, _) in &people {
        if let Some(Outcome::NotSent { reason }) = store.outcome(&record.id) {
            assert!(
                matches!(
                    reason,
                    NotSentReason::NotSmsCapable { .. } | NotSentReason::InvalidNumber { .. }
                ),
                "{} was marked 0 for {reason:?}, not for a reason of its own",
                record.id
            );
        }
    }
    assert!(store.claimed_ids().is_empty(), "the rest was released");
    assert!(
        !store.open_ids().is_empty(),
        "unsent records stay open for the next run"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_wrong_api_key_exits_non_zero_and_marks_nothing() {
    let (twilio, verification) = simulators(TwilioSimConfig::default(), SimConfig::default()).await;
    let dir = tempfile::tempdir().expect("tempdir");
    let csv = dir.path().join("in.csv");
    let people = recipients(30);
    let mut text = String::from("id,phone,test_date\n");
    for (record, national) in &people {
        text.push_str(&format!(
            "{},{national},{}\n",
            record.id,
            record.test_date.as_deref().unwrap_or_default()
        ));
    }
    std::fs::write(&csv, text).expect("csv");
    let env = env_for(&twilio, &verification, dir.path(), "not-the-realm-key");
    let cli = env
        .iter()
        .fold(Cli::new(), |cli, (k, v)| cli.env(k, v.clone()));
    let (import, run, export) = tokio::task::spawn_blocking({
        let csv = csv.display().to_string();
        let out = dir.path().join("out.csv").display().to_string();
        move || {
            (
                cli.run(&["import", &csv]),
                cli.run(&["run", "--log-format", "json"]),
                cli.run(&["export", &out]),
            )
        }
    })
    .await
    .expect("cli");
    assert_eq!(import.code, Some(0), "{}", import.all());
    assert_eq!(run.code, Some(3), "{}", run.all());
    assert!(run.stderr.contains("API key"), "{}", run.stderr);
    assert!(run.stderr.contains("allow-list"), "{}", run.stderr);
    assert_eq!(export.code, Some(0), "{}", export.all());
    let exported = std::fs::read_to_string(dir.path().join("out.csv")).expect("export");
    let rows: Vec<&str> = exported.lines().skip(1).collect();
    assert_eq!(rows.len(), 30);
    for row in rows {
        // Landlines and invalid numbers checked before the refusal keep their own verdict;
        // nobody is marked sent, and nobody is marked 0 because of our key.
        let own_verdict = row.contains(",0,not_sent,not_sms_capable:")
            || row.contains(",0,not_sent,invalid_number:");
        assert!(
            row.contains(",,pending,") || own_verdict,
            "a record was marked because of the refused key: {row}"
        );
    }
    assert_eq!(verification.ledger().total(), 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_run_with_faults_at_trace_level_logs_no_phone_number() {
    let (twilio, verification) = simulators(
        TwilioSimConfig {
            fault_rate_429: 0.05,
            fault_rate_500: 0.05,
            ..TwilioSimConfig::default()
        },
        SimConfig {
            faults: Faults {
                error_after_issue: 0.05,
                drop_after_issue: 0.05,
                drop_before_issue: 0.05,
                sms_failure: 0.05,
                ..Faults::default()
            },
            ..SimConfig::default()
        },
    )
    .await;
    let dir = tempfile::tempdir().expect("tempdir");
    let people = recipients(60);
    let csv = dir.path().join("in.csv");
    let mut text = String::from("id,phone,test_date\n");
    for (i, (record, national)) in people.iter().enumerate() {
        // The same numbers in the formats real files hold.
        let shown = match i % 3 {
            0 => national.clone(),
            1 => format!(
                "({}) {}-{}",
                &national[..3],
                &national[3..6],
                &national[6..]
            ),
            _ => format!(
                "+1 {}.{}.{}",
                &national[..3],
                &national[3..6],
                &national[6..]
            ),
        };
        text.push_str(&format!(
            "{},\"{shown}\",{}\n",
            record.id,
            record.test_date.as_deref().unwrap_or_default()
        ));
    }
    std::fs::write(&csv, text).expect("csv");
    let env = env_for(&twilio, &verification, dir.path(), &verification.api_key());
    let cli = env
        .iter()
        .fold(Cli::new(), |cli, (k, v)| cli.env(k, v.clone()))
        .env("RUST_LOG", "trace");
    let (import, run) = tokio::task::spawn_blocking({
        let csv = csv.display().to_string();
        move || {
            (
                cli.run(&["import", &csv]),
                cli.run(&["run", "--until-drained", "--log-format", "json"]),
            )
        }
    })
    .await
    .expect("cli");
    assert_eq!(import.code, Some(0), "{}", import.all());
    assert_eq!(run.code, Some(0), "{}", run.all());
    assert!(run.stderr.lines().count() > 100, "TRACE logs were captured");
    let output = run.all();
    for (record, national) in &people {
        let subscriber = &national[3..];
        assert!(
            !output.contains(subscriber),
            "the phone of {} appears in the output",
            record.id
        );
    }
    assert!(verification.ledger().total() > 0, "the run did text people");
}

fn env_for(
    twilio: &RunningTwilioSim,
    verification: &RunningSim,
    dir: &std::path::Path,
    api_key: &str,
) -> HashMap<String, String> {
    [
        (
            "CA_NOTIFY__STORE__PATH",
            dir.join("store.db").display().to_string(),
        ),
        ("CA_NOTIFY__TWILIO__BASE_URL", twilio.base_url()),
        (
            "CA_NOTIFY__TWILIO__ACCOUNT_SID",
            twilio.account_sid().to_owned(),
        ),
        (
            "CA_NOTIFY__TWILIO__AUTH_TOKEN",
            twilio.auth_token().to_owned(),
        ),
        ("CA_NOTIFY__TWILIO__REQUESTS_PER_SECOND", "1000".to_owned()),
        ("CA_NOTIFY__VERIFICATION__BASE_URL", verification.base_url()),
        ("CA_NOTIFY__VERIFICATION__API_KEY", api_key.to_owned()),
        (
            "CA_NOTIFY__VERIFICATION__REQUESTS_PER_MINUTE",
            "60000".to_owned(),
        ),
        ("CA_NOTIFY__DEDUP__SECRET", SECRET.to_owned()),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_owned(), v))
    .collect()
}
