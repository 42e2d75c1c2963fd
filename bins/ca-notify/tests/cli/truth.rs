//! Truth under servers that fail the way the verification server's source says they do:
//! the built binary on a SQLite file, over real sockets. A record is written sent only
//! with proof; a misconfigured realm stops the run and finalises nothing; a slow server
//! and an overlapping worker never text anyone twice; the store's ledger outlives the
//! server's memory of uuids; a run that cannot reach the server says so with its exit
//! code.

use std::collections::BTreeMap;
use std::process::Stdio;
use std::time::Duration;

use ca_notify_simulators::twilio::{AccountState, TwilioSimConfig};
use ca_notify_simulators::verification::{Fault, Faults, SimConfig, SmsProvider};

use crate::harness::{people, Kind, Person, World};

const DEADLINE: &str = "CA_NOTIFY__PIPELINE__DEADLINE_SECS";
const LEASE_MARGIN: &str = "CA_NOTIFY__PIPELINE__LEASE_MARGIN_SECS";
const REQUEST_TIMEOUT: &str = "CA_NOTIFY__VERIFICATION__REQUEST_TIMEOUT_SECS";
const EPOCH_COUNT: &str = "CA_NOTIFY__PIPELINE__EPOCH_COUNT";

/// The exit code of a misconfigured realm or account (`docs/operations.md`).
const EXIT_MISCONFIGURED: i32 = 8;
/// The exit code of a peer that could not serve.
const EXIT_UNAVAILABLE: i32 = 9;

/// Records by outcome (`pending` while undecided).
fn outcomes(world: &World) -> BTreeMap<String, usize> {
    let mut counts = BTreeMap::new();
    for row in world.state().values() {
        let outcome = row.outcome.clone().unwrap_or_else(|| "pending".to_owned());
        *counts.entry(outcome).or_default() += 1;
    }
    counts
}

/// Nobody is recorded as texted without a text: every record whose outcome says sent or
/// already sent belongs to a phone the server's ledger holds a usable text for.
fn assert_no_sent_without_a_text(world: &World) {
    let state = world.state();
    let ledger = world.verification.ledger();
    for p in &world.people {
        let outcome = state[&p.id].outcome.as_deref().unwrap_or("pending");
        if outcome == "sent" || outcome == "already_sent" {
            assert_eq!(
                ledger.live_texts_to(&p.e164()),
                1,
                "{} is recorded {outcome} but holds no usable text",
                p.id
            );
        }
    }
    assert_eq!(
        ledger.phones_with_more_than_one_live_text(),
        0,
        "{ledger:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_slow_server_a_short_deadline_and_an_overlapping_worker_text_nobody_twice() {
    // Answers take 1.5 s; a run may last 4 s and waits at most 2 s for an answer, so it
    // starts no request after about 1.8 s. A second worker starts while the first one's
    // requests are still running; neither may cut a send short or take a record the other
    // may still be sending to.
    let world = World::start(
        100,
        TwilioSimConfig::default(),
        SimConfig {
            latency: Duration::from_millis(1_500),
            ..SimConfig::default()
        },
    )
    .await;
    let cli = world
        .cli()
        .env(DEADLINE, "4")
        .env(LEASE_MARGIN, "1")
        .env(REQUEST_TIMEOUT, "2");
    let mut first = cli
        .command(&["run", "--until-drained"])
        .stdout(Stdio::null())
        .stderr(world.log("first.log"))
        .spawn()
        .expect("first worker starts");
    // Real time: the first worker is another process, mid-way through its requests.
    tokio::time::sleep(Duration::from_millis(1_200)).await;
    let second = crate::run(&cli, &["run", "--until-drained"]).await;
    let first = tokio::task::spawn_blocking(move || first.wait())
        .await
        .expect("joined")
        .expect("first worker ends");
    assert!(first.success(), "{first}: {}", world.log_tail("first.log"));
    assert_eq!(second.code, Some(0), "{}", second.all());
    let stats = world.verification.stats();
    assert_eq!(stats.cancelled_sends, 0, "no send was cut short: {stats:?}");
    assert_no_sent_without_a_text(&world);
    // Drain the rest (each run takes what the leases let go), then every invariant holds.
    let mut runs = 0;
    while let Some(wait) = world.next_claimable_in() {
        runs += 1;
        assert!(runs <= 10, "not drained after 10 more runs");
        tokio::time::sleep(wait).await;
        let out = crate::run(&cli, &["run", "--until-drained"]).await;
        assert_eq!(out.code, Some(0), "{}", out.all());
    }
    world.assert_exactly_once();
    assert_eq!(world.verification.stats().cancelled_sends, 0);
}

/// `count` recipients who are all mobiles with distinct phones, so that every outcome
/// depends on the verification server.
fn all_mobiles(count: usize) -> Vec<Person> {
    people(count * 2)
        .into_iter()
        .filter(|p| p.kind == Kind::Mobile)
        .take(count)
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_realm_without_an_sms_provider_mid_backlog_stops_with_its_exit_code_and_finalises_nothing(
) {
    let world = World::start_with(
        all_mobiles(200),
        TwilioSimConfig::default(),
        SimConfig::default(),
    )
    .await;
    let cli = world.cli().env(EPOCH_COUNT, "1");
    let out = cli.run(&["run"]);
    assert_eq!(out.code, Some(0), "{}", out.all());
    let finalised = world.written();
    assert!(finalised > 0 && finalised < 200, "{:?}", outcomes(&world));

    world.verification.set_sms_provider(SmsProvider::Missing);
    let out = cli.run(&["run"]);
    assert_eq!(out.code, Some(EXIT_MISCONFIGURED), "{}", out.all());
    assert!(out.stderr.contains("SMS provider"), "{}", out.stderr);
    assert_eq!(
        world.written(),
        finalised,
        "no record was finalised: {:?}",
        outcomes(&world)
    );
    assert!(
        world.state().values().all(|row| !row.claimed),
        "the records went back untouched"
    );
    assert_no_sent_without_a_text(&world);

    // Once the realm is fixed, the backlog goes out as if nothing had happened.
    world.verification.set_sms_provider(SmsProvider::Configured);
    let out = world.cli().run(&["run", "--until-drained"]);
    assert_eq!(out.code, Some(0), "{}", out.all());
    world.assert_exactly_once();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_template_the_realm_cannot_build_records_nobody_as_texted() {
    // The realm knows only its default template and "Spanish"; the job asks for "German".
    // The server stores each code, fails to build the message, texts nobody, and answers
    // 409 to every retry of those uuids.
    let world = World::start_with(
        all_mobiles(40),
        TwilioSimConfig::default(),
        SimConfig {
            sms_template_labels: vec!["Spanish".into()],
            ..SimConfig::default()
        },
    )
    .await;
    let wrong = world
        .cli()
        .env("CA_NOTIFY__VERIFICATION__SMS_TEMPLATE_LABEL", "German");
    let out = wrong.run(&["run", "--until-drained"]);
    assert_eq!(out.code, Some(EXIT_MISCONFIGURED), "{}", out.all());
    assert!(out.stderr.contains("sms_template_label"), "{}", out.stderr);
    assert_eq!(world.written(), 0, "{:?}", outcomes(&world));
    assert_eq!(world.verification.ledger().total(), 0);

    // Fixed: the rows the failed builds left behind answer 409, which proves a row, not a
    // text. Those records are unconfirmed (sent = 0), never sent; everyone else is texted.
    let right = world
        .cli()
        .env("CA_NOTIFY__VERIFICATION__SMS_TEMPLATE_LABEL", "Spanish");
    let out = right.run(&["run", "--until-drained"]);
    assert_eq!(out.code, Some(0), "{}", out.all());
    let counts = outcomes(&world);
    let unconfirmed = counts.get("unconfirmed").copied().unwrap_or(0);
    assert!(unconfirmed > 0, "{counts:?}");
    assert_eq!(
        counts.get("sent").copied().unwrap_or(0) + unconfirmed,
        40,
        "{counts:?}"
    );
    assert_no_sent_without_a_text(&world);
    let ledger = world.verification.ledger();
    let state = world.state();
    for p in &world.people {
        if state[&p.id].outcome.as_deref() == Some("unconfirmed") {
            assert_eq!(ledger.texts_to(&p.e164()), 0, "{}", p.id);
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_409_after_a_failed_send_whose_row_stayed_is_unconfirmed() {
    // The server's delete after a failed send fails, so the row stays: the retry's 409
    // comes although nobody was texted.
    let world = World::start_with(
        all_mobiles(10),
        TwilioSimConfig::default(),
        SimConfig {
            delete_fails: true,
            faults: Faults::scripted([Fault::SmsFailure(vec![0, 1])]),
            ..SimConfig::default()
        },
    )
    .await;
    let out = world.cli().run(&["run", "--until-drained"]);
    assert_eq!(out.code, Some(0), "{}", out.all());
    let counts = outcomes(&world);
    assert_eq!(counts.get("unconfirmed"), Some(&2), "{counts:?}");
    assert_eq!(counts.get("sent"), Some(&8), "{counts:?}");
    assert_no_sent_without_a_text(&world);
    assert_eq!(world.verification.ledger().total(), 8);
    // Never retried automatically.
    let out = world.cli().run(&["run", "--until-drained"]);
    assert_eq!(out.code, Some(0), "{}", out.all());
    assert_eq!(outcomes(&world).get("unconfirmed"), Some(&2));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_purge_and_a_re_import_under_new_ids_text_nobody_twice() {
    let world = World::start(100, TwilioSimConfig::default(), SimConfig::default()).await;
    let out = world.cli().run(&["run", "--until-drained"]);
    assert_eq!(out.code, Some(0), "{}", out.all());
    world.assert_exactly_once();
    let texts = world.verification.ledger().total();

    // The server forgets every uuid (VERIFICATION_CODE_STATUS_MAX_AGE passed), and the
    // same people arrive again under new record ids.
    assert!(world.verification.purge_uuids() > 0);
    let today = chrono::Utc::now().date_naive().to_string();
    let mut csv = String::from("id,phone,test_date\n");
    for p in &world.people {
        csv.push_str(&format!("again-{},{},{today}\n", p.id, p.national));
    }
    let path = world.dir.path().join("again.csv");
    std::fs::write(&path, csv).expect("csv written");
    let out = world.cli().run(&["import", &path.display().to_string()]);
    assert_eq!(out.code, Some(0), "{}", out.all());

    let out = world.cli().run(&["run", "--until-drained"]);
    assert_eq!(out.code, Some(0), "{}", out.all());
    assert_eq!(
        world.verification.ledger().total(),
        texts,
        "nobody was texted a second time"
    );
    assert_eq!(
        world.verification.ledger().phones_texted_more_than_once(),
        0
    );
    let state = world.state();
    for p in &world.people {
        if matches!(p.kind, Kind::Mobile | Kind::Duplicate) {
            let again = &state[&format!("again-{}", p.id)];
            assert_eq!(again.outcome.as_deref(), Some("already_sent"), "{}", p.id);
            assert_eq!(again.reason.as_deref(), Some("texted_before"), "{}", p.id);
        }
    }
    assert_eq!(
        world.verification.stats().already_exists,
        0,
        "no request was needed to know"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unreachable_verification_server_is_a_non_zero_exit() {
    let world = World::start_with(
        all_mobiles(30),
        TwilioSimConfig::default(),
        SimConfig::default(),
    )
    .await;
    // A port nobody listens on.
    let closed = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let address = closed.local_addr().expect("address");
    drop(closed);
    let out = world
        .cli()
        .env(
            "CA_NOTIFY__VERIFICATION__BASE_URL",
            format!("http://{address}"),
        )
        .run(&["run"]);
    assert_eq!(out.code, Some(EXIT_UNAVAILABLE), "{}", out.all());
    assert_eq!(world.written(), 0, "{:?}", outcomes(&world));
    assert!(world.state().values().all(|row| !row.claimed));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mobiles_in_recently_opened_area_codes_reach_the_authority() {
    // Area codes opened after the offline metadata was cut: valid mobiles that an
    // offline range check would call invalid for good.
    let today = chrono::Utc::now().date_naive().to_string();
    let people: Vec<Person> = ["2745550101", "4725550102", "9835550103"]
        .iter()
        .enumerate()
        .map(|(i, national)| Person {
            id: format!("new{i}"),
            national: (*national).to_owned(),
            kind: Kind::Mobile,
        })
        .collect();
    let world = World::start_with(people, TwilioSimConfig::default(), SimConfig::default()).await;
    let _ = today;
    let out = world.cli().run(&["run", "--until-drained"]);
    assert_eq!(out.code, Some(0), "{}", out.all());
    for (id, row) in world.state() {
        let reason = row.reason.as_deref().unwrap_or("");
        assert!(
            !reason.starts_with("invalid_number:offline"),
            "{id} was judged invalid offline for good ({reason})"
        );
    }
    assert!(world.twilio.stats().lookups >= 3, "Twilio was asked");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_twilio_account_without_line_type_intelligence_stops_the_run_and_finalises_nothing() {
    let world = World::start(60, TwilioSimConfig::default(), SimConfig::default()).await;
    world
        .twilio
        .set_account_state(AccountState::LineTypeIntelligenceNotEnabled);
    let out = world.cli().run(&["run"]);
    assert_eq!(out.code, Some(EXIT_MISCONFIGURED), "{}", out.all());
    assert!(out.stderr.contains("60606"), "{}", out.stderr);
    // Invalid numbers are the records' own fault (the pre-filter's structural checks, or
    // Lookup's free validity check, which needs no package); nothing else may be final.
    for (id, row) in world.state() {
        if let Some(outcome) = row.outcome.as_deref() {
            let reason = row.reason.as_deref().unwrap_or("");
            assert!(
                outcome == "not_sent" && reason.starts_with("invalid_number:"),
                "{id} was finalised as {outcome} {reason} because of the account"
            );
        }
    }
    assert_eq!(world.verification.ledger().total(), 0);
    assert!(world.state().values().all(|row| !row.claimed));
}
