//! The built binary against the Twilio Lookup and verification-server simulators over
//! real HTTP: a wrong API key, and faults at trace level without a phone number in the
//! output. The library facing the same simulators is in `tests/integration/simulated.rs`.

use ca_notify_integration_tests::people;
use ca_notify_simulators::twilio::TwilioSimConfig;
use ca_notify_simulators::verification::{Faults, SimConfig};

use crate::harness::World;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_wrong_api_key_exits_non_zero_and_marks_nothing() {
    let world = World::start(30, TwilioSimConfig::default(), SimConfig::default()).await;
    let cli = world
        .cli()
        .env("CA_NOTIFY__VERIFICATION__API_KEY", "not-the-realm-key");
    let out = world.dir.path().join("out.csv");
    let (run, export) = tokio::task::spawn_blocking({
        let out = out.display().to_string();
        move || {
            (
                cli.run(&["run", "--log-format", "json"]),
                cli.run(&["export", &out]),
            )
        }
    })
    .await
    .expect("cli");
    assert_eq!(run.code, Some(3), "{}", run.all());
    assert!(run.stderr.contains("API key"), "{}", run.stderr);
    assert!(run.stderr.contains("allow-list"), "{}", run.stderr);
    assert_eq!(export.code, Some(0), "{}", export.all());
    let exported = std::fs::read_to_string(out).expect("export");
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
    assert_eq!(world.verification.ledger().total(), 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_run_with_faults_at_trace_level_logs_no_phone_number() {
    let world = World::start_with(
        Vec::new(),
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
    let people = people(60);
    let today = chrono::Utc::now().date_naive();
    let mut text = String::from("id,phone,test_date\n");
    for (i, person) in people.iter().enumerate() {
        // The numbers in the formats real files hold.
        let n = &person.national;
        let shown = match i % 3 {
            0 => n.clone(),
            1 => format!("({}) {}-{}", &n[..3], &n[3..6], &n[6..]),
            _ => format!("+1 {}.{}.{}", &n[..3], &n[3..6], &n[6..]),
        };
        text.push_str(&format!("{},\"{shown}\",{today}\n", person.id));
    }
    let csv = world.dir.path().join("formatted.csv");
    std::fs::write(&csv, text).expect("csv");
    let cli = world.cli().env("RUST_LOG", "trace");
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
    for person in &people {
        let subscriber = &person.national[3..];
        assert!(
            !output.contains(subscriber),
            "the phone of {} appears in the output",
            person.id
        );
    }
    assert!(
        world.verification.ledger().total() > 0,
        "the run did text people"
    );
}
